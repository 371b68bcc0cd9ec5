//! The census in compact form: known-responsive addresses as sorted offsets
//! inside their block, in memory and on the wire.
//!
//! A census of a /8 where every address answers is 16.7 M addresses. As a
//! JSON list of [`CensusBlock`]s that is ~200 MB of text, and as
//! `Vec<IpAddr>` 17 bytes per address; a [`CensusSet`] holds one byte per
//! IPv4 address (its offset in the /24) and ten per IPv6 address (its low
//! 80 bits in the /48), plus 8 (IPv4) or 12 (IPv6) bytes per block.
//!
//! On the wire (`GET /v1/census/{campaign}`, see `docs/api.md`) the set
//! travels as [`CensusSet::encode`]: a version byte, then blocks in order,
//! each as the gap from the previous block and its offsets as gaps from the
//! previous offset (LEB128 varints), zstd-compressed. A dense block is a
//! run of 1-gaps, which zstd shrinks to almost nothing. JSON documents
//! (the inline census of `/v1/assignments`, for agents that do not ask for
//! the compact one) keep the old list form: [`as_list`] reads and writes it
//! straight from and to a [`CensusSet`].

use std::fmt;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::{CensusBlock, BLOCK_LEN_V4, BLOCK_LEN_V6};

/// Version of the encoded layout (the first byte of the decompressed data).
pub const CENSUS_VERSION: u8 = 1;

/// `Content-Type` of an encoded census.
pub const CENSUS_CONTENT_TYPE: &str = "application/vnd.darkwatch.census.v1+zstd";

/// Query an agent adds to `GET /v1/assignments` to say it fetches the
/// census from `/v1/census/{campaign}`: the collector then leaves the
/// inline census out and names the census by its tag
/// ([`crate::CampaignAssignment::census_tag`]).
pub const CENSUS_QUERY: (&str, &str) = ("census", "v1");

/// Largest decompressed census accepted: a guard against decompression
/// bombs (a /8 with every address answering is ~17 MB).
pub const MAX_DECODED_BYTES: u64 = 1 << 30;

/// Most addresses per IPv6 block a decoder accepts.
const MAX_V6_PER_BLOCK: u64 = 1 << 16;

/// Why an encoded census was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CensusError {
    #[error("census: cannot decompress: {0}")]
    Decompress(String),
    #[error("census: version {0} is not known here (this build reads {CENSUS_VERSION})")]
    Version(u8),
    #[error("census: malformed at byte {0}")]
    Malformed(usize),
}

/// Known-responsive addresses by block, sorted, without duplicates (see
/// the module's docs).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CensusSet {
    /// (`address >> 8`, end of the block's offsets in `v4_offsets`), by block.
    v4: Vec<(u32, u32)>,
    v4_offsets: Vec<u8>,
    /// (`address >> 80`, end of the block's offsets in `v6_offsets`), by block.
    v6: Vec<(u64, u32)>,
    /// Low 80 bits of each address, big-endian.
    v6_offsets: Vec<[u8; 10]>,
}

impl fmt::Debug for CensusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CensusSet")
            .field("blocks", &self.block_count())
            .field("addrs", &self.addr_count())
            .finish()
    }
}

/// One block of a [`CensusSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef<'a> {
    pub block: IpNet,
    offsets: Offsets<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offsets<'a> {
    V4(u32, &'a [u8]),
    V6(u64, &'a [[u8; 10]]),
}

impl<'a> BlockRef<'a> {
    pub fn len(&self) -> usize {
        match self.offsets {
            Offsets::V4(_, o) => o.len(),
            Offsets::V6(_, o) => o.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The block's addresses, ascending.
    pub fn addrs(&self) -> impl Iterator<Item = IpAddr> + 'a {
        let (v4, v6) = match self.offsets {
            Offsets::V4(k, o) => (Some((k, o)), None),
            Offsets::V6(k, o) => (None, Some((k, o))),
        };
        let v4 = v4.into_iter().flat_map(|(k, o)| {
            o.iter()
                .map(move |&b| IpAddr::V4(Ipv4Addr::from((k << 8) | u32::from(b))))
        });
        let v6 = v6.into_iter().flat_map(|(k, o)| {
            o.iter()
                .map(move |s| IpAddr::V6(Ipv6Addr::from((u128::from(k) << 80) | suffix(s))))
        });
        v4.chain(v6)
    }
}

fn suffix(s: &[u8; 10]) -> u128 {
    let mut b = [0u8; 16];
    b[6..].copy_from_slice(s);
    u128::from_be_bytes(b)
}

fn suffix_bytes(x: u128) -> [u8; 10] {
    let b = x.to_be_bytes();
    let mut s = [0u8; 10];
    s.copy_from_slice(&b[6..]);
    s
}

fn v4_block(key: u32) -> IpNet {
    IpNet::V4(Ipv4Net::new(Ipv4Addr::from(key << 8), BLOCK_LEN_V4).expect("24 is a valid length"))
}

fn v6_block(key: u64) -> IpNet {
    IpNet::V6(
        Ipv6Net::new(Ipv6Addr::from(u128::from(key) << 80), BLOCK_LEN_V6)
            .expect("48 is a valid length"),
    )
}

/// Collects addresses in any order into a [`CensusSet`].
#[derive(Debug, Default)]
pub struct CensusBuilder {
    v4: Vec<u32>,
    v6: Vec<u128>,
}

impl CensusBuilder {
    pub fn push(&mut self, a: IpAddr) {
        match a {
            IpAddr::V4(a) => self.v4.push(u32::from(a)),
            IpAddr::V6(a) => self.v6.push(u128::from(a)),
        }
    }

    pub fn build(mut self) -> CensusSet {
        self.v4.sort_unstable();
        self.v4.dedup();
        self.v6.sort_unstable();
        self.v6.dedup();
        let mut s = CensusSet {
            v4_offsets: Vec::with_capacity(self.v4.len()),
            v6_offsets: Vec::with_capacity(self.v6.len()),
            ..CensusSet::default()
        };
        for a in self.v4 {
            let key = a >> 8;
            if s.v4.last().is_none_or(|l| l.0 != key) {
                s.v4.push((key, 0));
            }
            s.v4_offsets.push(a as u8);
            s.v4.last_mut().expect("pushed").1 = s.v4_offsets.len() as u32;
        }
        for a in self.v6 {
            let key = (a >> 80) as u64;
            if s.v6.last().is_none_or(|l| l.0 != key) {
                s.v6.push((key, 0));
            }
            s.v6_offsets.push(suffix_bytes(a & ((1u128 << 80) - 1)));
            s.v6.last_mut().expect("pushed").1 = s.v6_offsets.len() as u32;
        }
        s.v4.shrink_to_fit();
        s.v6.shrink_to_fit();
        s
    }
}

impl FromIterator<IpAddr> for CensusSet {
    fn from_iter<T: IntoIterator<Item = IpAddr>>(iter: T) -> Self {
        let mut b = CensusBuilder::default();
        iter.into_iter().for_each(|a| b.push(a));
        b.build()
    }
}

impl CensusSet {
    /// The set of every address of `blocks`, each filed under its own
    /// block (whatever block it was listed under).
    pub fn from_blocks<'a>(blocks: impl IntoIterator<Item = &'a CensusBlock>) -> CensusSet {
        blocks
            .into_iter()
            .flat_map(|b| b.addrs.iter().copied())
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    pub fn block_count(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn addr_count(&self) -> u64 {
        (self.v4_offsets.len() + self.v6_offsets.len()) as u64
    }

    /// Heap bytes held (for the agent's memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.v4.capacity() * 8
            + self.v4_offsets.capacity()
            + self.v6.capacity() * 16
            + self.v6_offsets.capacity() * 10
    }

    /// The blocks in order (IPv4, then IPv6), each with its addresses.
    pub fn blocks(&self) -> impl Iterator<Item = BlockRef<'_>> + '_ {
        let v4 = self.v4.iter().enumerate().map(|(i, &(k, end))| {
            let start = if i == 0 { 0 } else { self.v4[i - 1].1 };
            BlockRef {
                block: v4_block(k),
                offsets: Offsets::V4(k, &self.v4_offsets[start as usize..end as usize]),
            }
        });
        let v6 = self.v6.iter().enumerate().map(|(i, &(k, end))| {
            let start = if i == 0 { 0 } else { self.v6[i - 1].1 };
            BlockRef {
                block: v6_block(k),
                offsets: Offsets::V6(k, &self.v6_offsets[start as usize..end as usize]),
            }
        });
        v4.chain(v6)
    }

    /// Every address, ascending (IPv4 first, as `IpAddr` orders them).
    pub fn addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.blocks().flat_map(|b| b.addrs())
    }

    /// The set as a list of blocks (the JSON form).
    pub fn to_blocks(&self) -> Vec<CensusBlock> {
        self.blocks()
            .map(|b| CensusBlock {
                block: b.block,
                addrs: b.addrs().collect(),
            })
            .collect()
    }

    /// The raw layout (before compression): see the module's docs.
    fn raw(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.v4.len() * 3 + self.v4_offsets.len());
        out.push(CENSUS_VERSION);
        put_varint(&mut out, self.v4.len() as u128);
        let mut prev_key = 0u32;
        let mut start = 0usize;
        for &(k, end) in &self.v4 {
            put_varint(&mut out, u128::from(k - prev_key));
            prev_key = k;
            let offs = &self.v4_offsets[start..end as usize];
            start = end as usize;
            put_varint(&mut out, (offs.len() - 1) as u128);
            let mut prev = 0u8;
            for (i, &o) in offs.iter().enumerate() {
                out.push(if i == 0 { o } else { o - prev });
                prev = o;
            }
        }
        put_varint(&mut out, self.v6.len() as u128);
        let mut prev_key = 0u64;
        let mut start = 0usize;
        for &(k, end) in &self.v6 {
            put_varint(&mut out, u128::from(k - prev_key));
            prev_key = k;
            let offs = &self.v6_offsets[start..end as usize];
            start = end as usize;
            put_varint(&mut out, (offs.len() - 1) as u128);
            let mut prev = 0u128;
            for o in offs {
                let x = suffix(o);
                put_varint(&mut out, x - prev);
                prev = x;
            }
        }
        out
    }

    /// The raw layout, zstd-compressed: what `GET /v1/census/{campaign}`
    /// answers.
    pub fn encode(&self) -> Vec<u8> {
        zstd::bulk::compress(&self.raw(), 3).expect("compressing into memory cannot fail")
    }

    /// Reads what [`Self::encode`] wrote, checking that blocks and offsets
    /// strictly increase and stay inside their family's space.
    pub fn decode(data: &[u8]) -> Result<CensusSet, CensusError> {
        let mut raw = Vec::new();
        zstd::stream::read::Decoder::new(data)
            .map_err(|e| CensusError::Decompress(e.to_string()))?
            .take(MAX_DECODED_BYTES + 1)
            .read_to_end(&mut raw)
            .map_err(|e| CensusError::Decompress(e.to_string()))?;
        if raw.len() as u64 > MAX_DECODED_BYTES {
            return Err(CensusError::Decompress("larger than the limit".into()));
        }
        Self::from_raw(&raw)
    }

    fn from_raw(raw: &[u8]) -> Result<CensusSet, CensusError> {
        let mut r = Reader { data: raw, pos: 0 };
        let version = r.byte()?;
        if version != CENSUS_VERSION {
            return Err(CensusError::Version(version));
        }
        let mut s = CensusSet::default();
        let blocks = r.count()?;
        s.v4.reserve(blocks);
        let mut key: u64 = 0;
        for i in 0..blocks {
            let gap = r.varint()?;
            key = r.check(key.checked_add(u64::try_from(gap).unwrap_or(u64::MAX)))?;
            if (i > 0 && gap == 0) || key >= 1 << 24 {
                return Err(r.bad());
            }
            let n = r.varint()? + 1;
            if n > 256 {
                return Err(r.bad());
            }
            let mut off: u16 = 0;
            for j in 0..n {
                let g = u16::from(r.byte()?);
                if j > 0 && g == 0 {
                    return Err(r.bad());
                }
                off = if j == 0 { g } else { off + g };
                if off > 255 {
                    return Err(r.bad());
                }
                s.v4_offsets.push(off as u8);
            }
            s.v4.push((key as u32, s.v4_offsets.len() as u32));
        }
        let blocks = r.count()?;
        s.v6.reserve(blocks);
        let mut key: u64 = 0;
        for i in 0..blocks {
            let gap = r.varint()?;
            key = r.check(key.checked_add(u64::try_from(gap).unwrap_or(u64::MAX)))?;
            if (i > 0 && gap == 0) || key >= 1 << 48 {
                return Err(r.bad());
            }
            let n = r.varint()? + 1;
            if n > u128::from(MAX_V6_PER_BLOCK) {
                return Err(r.bad());
            }
            let mut off: u128 = 0;
            for j in 0..n {
                let g = r.varint()?;
                if j > 0 && g == 0 {
                    return Err(r.bad());
                }
                off = r.check(off.checked_add(g))?;
                if off >= 1 << 80 {
                    return Err(r.bad());
                }
                s.v6_offsets.push(suffix_bytes(off));
            }
            s.v6.push((key, s.v6_offsets.len() as u32));
        }
        if r.pos != raw.len() {
            return Err(r.bad());
        }
        Ok(s)
    }
}

fn put_varint(out: &mut Vec<u8>, mut x: u128) {
    loop {
        let b = (x & 0x7f) as u8;
        x >>= 7;
        if x == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn bad(&self) -> CensusError {
        CensusError::Malformed(self.pos)
    }

    fn check<T>(&self, v: Option<T>) -> Result<T, CensusError> {
        v.ok_or_else(|| self.bad())
    }

    fn byte(&mut self) -> Result<u8, CensusError> {
        let b = *self.data.get(self.pos).ok_or_else(|| self.bad())?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u128, CensusError> {
        let mut x: u128 = 0;
        for shift in (0..128).step_by(7) {
            let b = self.byte()?;
            x |= u128::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(x);
            }
        }
        Err(self.bad())
    }

    /// A count of blocks, bounded by the bytes left (each takes at least two).
    fn count(&mut self) -> Result<usize, CensusError> {
        let n = self.varint()?;
        let left = (self.data.len() - self.pos) as u128;
        if n > left / 2 + 1 {
            return Err(self.bad());
        }
        Ok(n as usize)
    }
}

/// Serde for a [`CensusSet`] as the JSON list of [`CensusBlock`]s
/// (`#[serde(with = "census::as_list")]`): read block by block into the
/// compact form, never held as a list.
pub mod as_list {
    use serde::de::{SeqAccess, Visitor};
    use serde::ser::SerializeSeq;
    use serde::{Deserializer, Serializer};

    use super::{CensusBuilder, CensusSet};
    use crate::CensusBlock;

    pub fn serialize<S: Serializer>(set: &CensusSet, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(set.block_count()))?;
        for b in set.blocks() {
            seq.serialize_element(&CensusBlock {
                block: b.block,
                addrs: b.addrs().collect(),
            })?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<CensusSet, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CensusSet;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of census blocks")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CensusSet, A::Error> {
                let mut b = CensusBuilder::default();
                while let Some(block) = seq.next_element::<CensusBlock>()? {
                    block.addrs.into_iter().for_each(|a| b.push(a));
                }
                Ok(b.build())
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests;
