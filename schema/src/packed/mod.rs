//! Packed rounds: one vantage point's judgement of many blocks of a campaign
//! in one round, at well under a byte per block on the wire.
//!
//! A JSON [`BlockObservation`] costs ~160 bytes per block, so a round of a
//! million blocks does not fit in a request. A [`PackedRound`] instead names
//! blocks by their index in the campaign's [`BlockSpace`] (the blocks of its
//! prefixes in a fixed order, which both sides compute from the prefix list
//! alone) and stores the per-block fields as columns: the gaps between
//! indices, states, probes, replies, belief and availability. A typical round
//! (most blocks up, one probe and one reply each) makes every column nearly
//! constant, which zstd then shrinks to a few bits per block.
//!
//! The envelope stays JSON (inside [`crate::ReportBatch::packed`]), with the
//! columns as base64 text, so batches keep their ids, their idempotence and
//! their debuggability. Indices refer to a space by its [`BlockSpace::digest`]:
//! a collector that does not know the digest (the campaign changed, or the
//! agent's prefix list differs) refuses the batch with
//! [`ERROR_UNKNOWN_BLOCK_SPACE`], and the agent resends the same blocks as
//! plain observations ([`PackedRound::to_observations`]).
//!
//! Belief and availability travel quantized to 1/255: the collector's
//! verdicts use states, probes and replies; the two estimates are for display.
//!
//! Version 2 adds the reply times ([`Rtt`], a byte for the median and a byte
//! for its distance to the minimum), only for blocks with replies: latency
//! and loss signals at no probing cost. Version 1 rounds (stored before)
//! still decode, with no times.

use std::io::Read;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::rtt::Rtt;
use crate::{BlockObservation, BlockState};

mod space;

pub use space::{BlockSpace, Spaces};

/// Version of the column layout (the first byte of the decompressed data)
/// that this side writes: 2, with reply times.
pub const PACKED_VERSION: u8 = 2;

/// Oldest column layout still read: 1, without reply times.
pub const PACKED_VERSION_MIN: u8 = 1;

/// Most blocks in one packed round (one chunk). A round with more blocks is
/// split into chunks ([`pack_chunks`]), each a packed round of its own.
pub const MAX_BLOCKS_PER_PACKED: usize = 1 << 20;

/// Largest decompressed column data accepted per block: a guard against
/// decompression bombs (the real figure is 6 to about 22 bytes).
const MAX_BYTES_PER_BLOCK: usize = 42;

/// `ApiError::code` of a batch whose packed rounds name a block space the
/// collector does not know: resend the blocks as plain observations.
pub const ERROR_UNKNOWN_BLOCK_SPACE: &str = "unknown_block_space";

/// One block's fields in a packed round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackedBlock {
    /// Index in the campaign's [`BlockSpace`].
    pub index: u64,
    pub state: BlockState,
    pub probes: u32,
    pub replies: u32,
    /// Belief that the block is up, quantized: `belief / 255`.
    pub belief: u8,
    /// Availability, quantized: `availability / 255`.
    pub availability: u8,
    /// Reply times ([`Rtt::NONE`] when no reply came).
    pub rtt: Rtt,
}

impl PackedBlock {
    /// Quantizes a share in [0, 1] to a byte.
    pub fn quantize(share: f64) -> u8 {
        (share.clamp(0.0, 1.0) * 255.0).round() as u8
    }

    /// The plain observation this block stands for in `campaign`'s `round`
    /// (`None`: its index is outside `space`).
    pub fn to_observation(
        &self,
        campaign: &str,
        round: u64,
        space: &BlockSpace,
        ts_ms: i64,
    ) -> Option<BlockObservation> {
        Some(BlockObservation {
            campaign: campaign.to_string(),
            round,
            block: space.block_at(self.index)?,
            state: self.state,
            probes: self.probes,
            replies: self.replies,
            belief: f64::from(self.belief) / 255.0,
            availability: f64::from(self.availability) / 255.0,
            control: false,
            rtt_min_ms: self.rtt.min_ms(),
            rtt_median_ms: self.rtt.median_ms(),
            ts_ms,
        })
    }
}

/// What one agent judged of (part of) one campaign in one round, packed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackedRound {
    pub campaign: String,
    pub round: u64,
    /// [`BlockSpace::digest`] of the space the indices refer to.
    pub space: String,
    /// When the round's probing ended (every block's `ts_ms`).
    pub ts_ms: i64,
    /// This chunk's number, from 0, and how many chunks the round has: the
    /// collector knows a round is whole once it holds every chunk.
    pub chunk: u32,
    pub chunks: u32,
    /// Blocks in `data`.
    pub blocks: u32,
    /// Base64 (standard alphabet) of the zstd-compressed columns.
    pub data: String,
    /// When the round's slices started, so that each block's probing time
    /// is known to its slice (`crate::phase`); absent from agents before
    /// phases (their blocks are timed to the round only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<crate::phase::RoundSchedule>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PackedError {
    #[error("packed round holds {0} blocks, more than the limit of {MAX_BLOCKS_PER_PACKED}")]
    TooManyBlocks(usize),
    #[error("packed data is not valid base64")]
    Base64,
    #[error("packed data does not decompress: {0}")]
    Decompress(String),
    #[error(
        "packed data has version {0}, this side knows {PACKED_VERSION_MIN} to {PACKED_VERSION}"
    )]
    Version(u8),
    #[error("packed data is truncated or malformed ({0})")]
    Malformed(&'static str),
    #[error("packed data says {found} blocks, the envelope {expected}")]
    Count { expected: u32, found: u64 },
    #[error("block index {index} lies outside the block space of {len} blocks")]
    Index { index: u64, len: u64 },
    #[error("block index {0} is listed twice or out of order")]
    Order(u64),
    #[error("block index {0}: more replies than probes")]
    Replies(u64),
    #[error("chunk {chunk} of {chunks} is impossible")]
    Chunk { chunk: u32, chunks: u32 },
    #[error("unknown block space {0}")]
    UnknownSpace(String),
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, PackedError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(PackedError::Malformed("ends early"))?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, PackedError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(PackedError::Malformed("varint too long"))
    }
}

fn state_code(s: BlockState) -> u8 {
    match s {
        BlockState::Up => 0,
        BlockState::Down => 1,
        BlockState::Uncertain => 2,
    }
}

/// The uncompressed columns of `blocks` (sorted by index, no repeats) in
/// layout `version` (1 or 2).
fn columns(blocks: &[PackedBlock], version: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(blocks.len() * 7 + 8);
    out.push(version);
    put_varint(&mut out, blocks.len() as u64);
    let mut next = 0u64;
    for b in blocks {
        put_varint(&mut out, b.index - next);
        next = b.index + 1;
    }
    out.extend(blocks.iter().map(|b| state_code(b.state)));
    for b in blocks {
        put_varint(&mut out, b.probes.into());
    }
    for b in blocks {
        // Replies never exceed probes: the shortfall is smaller and mostly 0.
        put_varint(&mut out, (b.probes - b.replies.min(b.probes)).into());
    }
    out.extend(blocks.iter().map(|b| b.belief));
    out.extend(blocks.iter().map(|b| b.availability));
    if version < 2 {
        return out;
    }
    // Reply times of the blocks with replies only: the median, then how
    // many steps the minimum lies below it (mostly 0: one reply).
    let timed = || blocks.iter().filter(|b| b.replies > 0);
    out.extend(timed().map(|b| b.rtt.median));
    out.extend(timed().map(|b| b.rtt.median.saturating_sub(b.rtt.min)));
    out
}

impl PackedRound {
    /// Packs `blocks` as chunk `chunk` of `chunks`. The blocks are sorted by
    /// index here; indices must be unique.
    pub fn pack(
        campaign: &str,
        round: u64,
        space: &BlockSpace,
        ts_ms: i64,
        chunk: (u32, u32),
        blocks: Vec<PackedBlock>,
    ) -> Result<PackedRound, PackedError> {
        Self::pack_as(PACKED_VERSION, campaign, round, space, ts_ms, chunk, blocks)
    }

    /// [`PackedRound::pack`] in column layout `version`, for a collector
    /// that accepts only an older one (version 1 leaves the times out).
    pub fn pack_as(
        version: u8,
        campaign: &str,
        round: u64,
        space: &BlockSpace,
        ts_ms: i64,
        (chunk, chunks): (u32, u32),
        mut blocks: Vec<PackedBlock>,
    ) -> Result<PackedRound, PackedError> {
        if !(PACKED_VERSION_MIN..=PACKED_VERSION).contains(&version) {
            return Err(PackedError::Version(version));
        }
        if blocks.len() > MAX_BLOCKS_PER_PACKED {
            return Err(PackedError::TooManyBlocks(blocks.len()));
        }
        if chunks == 0 || chunk >= chunks {
            return Err(PackedError::Chunk { chunk, chunks });
        }
        blocks.sort_unstable_by_key(|b| b.index);
        if let Some(w) = blocks.windows(2).find(|w| w[0].index == w[1].index) {
            return Err(PackedError::Order(w[1].index));
        }
        if let Some(b) = blocks.iter().find(|b| b.index >= space.len()) {
            return Err(PackedError::Index {
                index: b.index,
                len: space.len(),
            });
        }
        let raw = columns(&blocks, version);
        let compressed = zstd::bulk::compress(&raw, 3)
            .map_err(|e| PackedError::Decompress(format!("compress: {e}")))?;
        Ok(PackedRound {
            campaign: campaign.to_string(),
            round,
            space: space.digest(),
            ts_ms,
            chunk,
            chunks,
            blocks: blocks.len() as u32,
            data: base64::engine::general_purpose::STANDARD.encode(compressed),
            schedule: None,
        })
    }

    /// Bytes of `data` once base64 is undone (what the columns cost).
    pub fn compressed_len(&self) -> usize {
        self.data.len() / 4 * 3
    }

    /// The compressed columns: `data` with base64 undone (what a collector
    /// stores, and [`unpack_columns`] reads back).
    pub fn compressed(&self) -> Result<Vec<u8>, PackedError> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.data)
            .map_err(|_| PackedError::Base64)
    }

    /// Unpacks the blocks, checking every index against `space` (the caller
    /// has matched `self.space` to it) and every count against the envelope.
    pub fn unpack(&self, space: &BlockSpace) -> Result<Vec<PackedBlock>, PackedError> {
        if self.chunks == 0 || self.chunk >= self.chunks {
            return Err(PackedError::Chunk {
                chunk: self.chunk,
                chunks: self.chunks,
            });
        }
        unpack_columns(&self.compressed()?, self.blocks, space)
    }

    /// The blocks as plain observations: what an agent resends when the
    /// collector does not know the space, and what a collector that stores
    /// rows makes of a packed round.
    pub fn to_observations(
        &self,
        space: &BlockSpace,
    ) -> Result<Vec<BlockObservation>, PackedError> {
        Ok(self
            .unpack(space)?
            .into_iter()
            .filter_map(|b| b.to_observation(&self.campaign, self.round, space, self.ts_ms))
            .collect())
    }
}

/// Unpacks compressed columns said to hold `blocks` blocks of `space`: what
/// [`PackedRound::unpack`] does once base64 is undone, and what a collector
/// runs on the bytes it stored.
pub fn unpack_columns(
    compressed: &[u8],
    blocks: u32,
    space: &BlockSpace,
) -> Result<Vec<PackedBlock>, PackedError> {
    let n = blocks as usize;
    if n > MAX_BLOCKS_PER_PACKED {
        return Err(PackedError::TooManyBlocks(n));
    }
    // Stream with a hard cap, whatever size the frame header claims.
    let cap = 16 + n * MAX_BYTES_PER_BLOCK;
    let mut raw = Vec::new();
    zstd::stream::read::Decoder::new(compressed)
        .map_err(|e| PackedError::Decompress(e.to_string()))?
        .take(cap as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(|e| PackedError::Decompress(e.to_string()))?;
    if raw.len() > cap {
        return Err(PackedError::Malformed("columns larger than their blocks"));
    }
    let mut c = Cursor { buf: &raw, pos: 0 };
    let version = c.byte()?;
    if !(PACKED_VERSION_MIN..=PACKED_VERSION).contains(&version) {
        return Err(PackedError::Version(version));
    }
    let count = c.varint()?;
    if count != u64::from(blocks) {
        return Err(PackedError::Count {
            expected: blocks,
            found: count,
        });
    }
    let mut out = Vec::with_capacity(n);
    let mut next = 0u64;
    for _ in 0..n {
        let index = next
            .checked_add(c.varint()?)
            .ok_or(PackedError::Malformed("index overflows"))?;
        if index >= space.len() {
            return Err(PackedError::Index {
                index,
                len: space.len(),
            });
        }
        next = index + 1;
        out.push(PackedBlock {
            index,
            state: BlockState::Up,
            probes: 0,
            replies: 0,
            belief: 0,
            availability: 0,
            rtt: Rtt::NONE,
        });
    }
    for b in &mut out {
        b.state = match c.byte()? {
            0 => BlockState::Up,
            1 => BlockState::Down,
            2 => BlockState::Uncertain,
            _ => return Err(PackedError::Malformed("unknown state")),
        };
    }
    for b in &mut out {
        b.probes =
            u32::try_from(c.varint()?).map_err(|_| PackedError::Malformed("probes overflow"))?;
    }
    for b in &mut out {
        let lost = c.varint()?;
        if lost > u64::from(b.probes) {
            return Err(PackedError::Replies(b.index));
        }
        b.replies = b.probes - lost as u32;
    }
    for b in &mut out {
        b.belief = c.byte()?;
    }
    for b in &mut out {
        b.availability = c.byte()?;
    }
    if version >= 2 {
        // A median of 0: replies whose times were not kept (a plain
        // observation without them, repacked).
        for b in out.iter_mut().filter(|b| b.replies > 0) {
            b.rtt.median = c.byte()?;
        }
        for b in out.iter_mut().filter(|b| b.replies > 0) {
            let below = c.byte()?;
            b.rtt.min = match b.rtt.median.checked_sub(below) {
                Some(0) if below > 0 => None,
                m => m,
            }
            .ok_or(PackedError::Malformed("minimum time below the scale"))?;
        }
    }
    if c.pos != raw.len() {
        return Err(PackedError::Malformed("trailing bytes"));
    }
    Ok(out)
}

/// A synthetic typical round of blocks `0..blocks`, varied by `seed` (the
/// round, say): nearly every block up with one or two probes answered, one
/// in 97 down, availability spread over 40 levels. What the size goal
/// (under a byte per block) is measured on, in tests and benchmarks.
pub fn typical_round(blocks: u64, seed: u64) -> Vec<PackedBlock> {
    (0..blocks)
        .map(|i| {
            let down = (i + seed) % 97 == 0;
            PackedBlock {
                index: i,
                state: if down {
                    BlockState::Down
                } else {
                    BlockState::Up
                },
                probes: if down { 15 } else { 1 + u32::from(i % 11 == 0) },
                replies: u32::from(!down),
                belief: if down { 0 } else { 255 },
                availability: (200 + ((i ^ seed).wrapping_mul(2_654_435_761) % 40)) as u8,
                rtt: if down {
                    Rtt::NONE
                } else {
                    typical_rtt(i, seed)
                },
            }
        })
        .collect()
}

/// Reply times of block `i` in a typical round: blocks share a path per
/// /16 (64 ms to about 250 ms, a few codes apart), one in eight differs by
/// a code of jitter between rounds, and one in eleven (two probes) has a
/// minimum a code below its median.
fn typical_rtt(i: u64, seed: u64) -> Rtt {
    let path = 10.0 * f64::from(((i >> 8).wrapping_mul(0x9E37_79B9) % 29) as u32);
    let base = crate::rtt::quantize_ms(64.0 + path);
    let jitter = u8::from((i.wrapping_mul(31) ^ seed) % 8 == 0);
    let median = base + jitter;
    Rtt {
        min: median - u8::from(i % 11 == 0),
        median,
    }
}

/// Packs a whole round into chunks of at most `max_blocks` blocks each.
pub fn pack_chunks(
    campaign: &str,
    round: u64,
    space: &BlockSpace,
    ts_ms: i64,
    blocks: Vec<PackedBlock>,
    max_blocks: usize,
) -> Result<Vec<PackedRound>, PackedError> {
    pack_chunks_as(
        PACKED_VERSION,
        campaign,
        round,
        space,
        ts_ms,
        blocks,
        max_blocks,
    )
}

/// [`pack_chunks`] in column layout `version` ([`PackedRound::pack_as`]).
pub fn pack_chunks_as(
    version: u8,
    campaign: &str,
    round: u64,
    space: &BlockSpace,
    ts_ms: i64,
    mut blocks: Vec<PackedBlock>,
    max_blocks: usize,
) -> Result<Vec<PackedRound>, PackedError> {
    let max_blocks = max_blocks.clamp(1, MAX_BLOCKS_PER_PACKED);
    blocks.sort_unstable_by_key(|b| b.index);
    let chunks = blocks.len().div_ceil(max_blocks).max(1);
    let chunks_u32 = u32::try_from(chunks).map_err(|_| PackedError::TooManyBlocks(blocks.len()))?;
    let mut out = Vec::with_capacity(chunks);
    let mut rest = blocks.as_slice();
    for chunk in 0..chunks_u32 {
        let (now, later) = rest.split_at(rest.len().min(max_blocks));
        rest = later;
        out.push(PackedRound::pack_as(
            version,
            campaign,
            round,
            space,
            ts_ms,
            (chunk, chunks_u32),
            now.to_vec(),
        )?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
