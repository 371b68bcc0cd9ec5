//! A campaign's probing state on disk: compact, incremental, crash-safe.
//!
//! Three files per campaign in `spool_dir/state/`, each replaced whole with
//! [`write_atomic`] (a crash leaves the old file or the new one):
//! - `campaign-NAME.sets`: the responsive sets of every block (an IPv4 /24 as
//!   its host octets, delta-coded, or its 32-byte bitmap when dense;
//!   anything else as an address list) with a snapshot of each block's
//!   belief, in columns (see `Columns`), as one zstd frame. Rewritten only
//!   when discovery, the census or a change of campaign or policy changed
//!   the sets: at most every few rounds, not every round.
//! - `campaign-NAME.belief`: belief and availability of every block, each
//!   quantized to 8 bits, in the order of the sets file (whose id it
//!   carries), zstd compressed. Rewritten every round.
//! - `campaign-NAME.meta.json`: everything else (prefixes, last round done,
//!   coverage sent, ...), small.
//!
//! The sets are written before the beliefs, and carry the beliefs of their
//! round. A belief file that is torn, unreadable or written for other sets is
//! ignored, and the sets' snapshot stands: a crash loses at most the belief
//! updates since the sets were last written, never a responsive set. The
//! JSON state of earlier versions (`campaign-NAME.json`) is read once, when
//! no binary state exists, and removed once the binary state is written;
//! the previous binary format (`DWS1`/`DWB1`: uncompressed 16-bit beliefs,
//! host octets not delta-coded) is read, and rewritten in this one at the
//! next save.
//!
//! Encoding and decoding are pure functions ([`encode_sets`],
//! [`decode_sets`], [`encode_beliefs`], [`apply_beliefs`]); [`load`] and
//! [`save`] do the file I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use crate::belief::{BlockTracker, Responsive, AVAIL_MAX, AVAIL_MIN, BELIEF_MAX, BELIEF_MIN};
use crate::campaign::CampaignState;
use crate::spool::write_atomic;

const SETS_MAGIC: &[u8; 4] = b"DWS2";
const BELIEF_MAGIC: &[u8; 4] = b"DWB2";
/// The previous binary format (read, never written).
const SETS_MAGIC_V1: &[u8; 4] = b"DWS1";
const BELIEF_MAGIC_V1: &[u8; 4] = b"DWB1";
/// Record kinds in the sets file (bit 0: a control block).
const V4_BITMAP: u8 = 0 << 1;
const V4_HOSTS: u8 = 1 << 1;
const LIST: u8 = 2 << 1;
const CONTROL: u8 = 1;
/// An IPv4 /24 with fewer hosts than this is stored as its host octets,
/// delta-coded; a denser one as its 32-byte bitmap. Compressed, a gap costs
/// about its entropy (~4 bits at 34 hosts of 254), less than a bitmap's 32
/// bytes up to about this many hosts.
const GAPS_BELOW: u32 = 96;
/// zstd level of the sets file (rewritten only when the sets change).
const SETS_LEVEL: i32 = 3;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    #[error("not a darkwatch state file (bad magic)")]
    Magic,
    #[error("truncated or corrupt state file: {0}")]
    Corrupt(&'static str),
    #[error("belief file written for other sets")]
    OtherSets,
}

/// Quantizes `x` in `[lo, hi]` to 16 bits (format 1, written by tests only).
#[cfg(test)]
fn quantize(x: f64, lo: f64, hi: f64) -> u16 {
    (((x.clamp(lo, hi) - lo) / (hi - lo)) * f64::from(u16::MAX)).round() as u16
}

fn unquantize(q: u16, lo: f64, hi: f64) -> f64 {
    lo + f64::from(q) / f64::from(u16::MAX) * (hi - lo)
}

/// Quantizes `x` in `[lo, hi]` to 8 bits (format 2): a restart resumes
/// from `B` and `A` within 0.2 % and 0.17 % of their range, less than
/// one round's update of either.
fn quantize8(x: f64, lo: f64, hi: f64) -> u8 {
    (((x.clamp(lo, hi) - lo) / (hi - lo)) * 255.0).round() as u8
}

fn unquantize8(q: u8, lo: f64, hi: f64) -> f64 {
    lo + f64::from(q) / 255.0 * (hi - lo)
}

/// Appends the beliefs of `trackers` as two columns: every `B`, then every
/// `A`, a byte each (columns compress better than pairs).
fn push_beliefs<'a>(out: &mut Vec<u8>, trackers: impl Iterator<Item = &'a BlockTracker> + Clone) {
    out.extend(
        trackers
            .clone()
            .map(|t| quantize8(t.belief, BELIEF_MIN, BELIEF_MAX)),
    );
    out.extend(trackers.map(|t| quantize8(t.availability, AVAIL_MIN, AVAIL_MAX)));
}

/// Sets `B` and `A` of `trackers` from the two columns `b` (2 bytes a tracker).
fn set_beliefs<'a>(trackers: impl Iterator<Item = &'a mut BlockTracker>, b: &[u8]) {
    let (beliefs, avails) = b.split_at(b.len() / 2);
    for ((t, &q), &a) in trackers.zip(beliefs).zip(avails) {
        t.belief = unquantize8(q, BELIEF_MIN, BELIEF_MAX);
        t.availability = unquantize8(a, AVAIL_MIN, AVAIL_MAX);
    }
}

fn set_belief_v1(t: &mut BlockTracker, b: [u8; 4]) {
    t.belief = unquantize(u16::from_le_bytes([b[0], b[1]]), BELIEF_MIN, BELIEF_MAX);
    t.availability = unquantize(u16::from_le_bytes([b[2], b[3]]), AVAIL_MIN, AVAIL_MAX);
}

fn push_addr(out: &mut Vec<u8>, a: IpAddr) {
    match a {
        IpAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.octets());
        }
    }
}

/// LEB128.
fn push_varint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

/// Every tracker of `st` in file order: targets, then controls.
fn all(st: &CampaignState) -> impl Iterator<Item = (bool, &BlockTracker)> + Clone {
    let targets = st.trackers.values().map(|t| (false, t));
    targets.chain(st.control_trackers.values().map(|t| (true, t)))
}

/// The columns of a sets file, each homogeneous, so that zstd's entropy
/// coder fits each: record kinds; the /24s as the difference from the
/// previous one (1 for consecutive blocks, which compress to nothing);
/// host counts; host octets as gaps (the first octet, then each one's
/// distance to the previous, less one); bitmaps; other blocks as address
/// lists; the beliefs' snapshot. Raw, it is a count of records, the
/// columns' lengths, then the columns.
#[derive(Default)]
struct Columns {
    kinds: Vec<u8>,
    nets: Vec<u8>,
    counts: Vec<u8>,
    gaps: Vec<u8>,
    bitmaps: Vec<u8>,
    lists: Vec<u8>,
    beliefs: Vec<u8>,
}

impl Columns {
    fn all(&self) -> [&Vec<u8>; 7] {
        [
            &self.kinds,
            &self.nets,
            &self.counts,
            &self.gaps,
            &self.bitmaps,
            &self.lists,
            &self.beliefs,
        ]
    }
}

/// The sets file for `st`, identified by `id` (format 2).
pub fn encode_sets(st: &CampaignState, id: u64) -> Vec<u8> {
    let n = st.trackers.len() + st.control_trackers.len();
    let mut c = Columns {
        kinds: Vec::with_capacity(n),
        nets: Vec::with_capacity(n),
        counts: Vec::with_capacity(n),
        gaps: Vec::with_capacity(n * 16),
        ..Columns::default()
    };
    let mut prev: u32 = 0;
    for (control, t) in all(st) {
        let flag = if control { CONTROL } else { 0 };
        match (&t.block, &t.responsive) {
            (IpNet::V4(b), Responsive::V4Block { net, hosts })
                if b.prefix_len() == 24 && b.network().octets()[..3] == net[..] =>
            {
                let index = u32::from_be_bytes([0, net[0], net[1], net[2]]);
                // Zigzag: controls follow the targets and may go back.
                let delta = i64::from(index) - i64::from(prev);
                push_varint(&mut c.nets, ((delta << 1) ^ (delta >> 63)) as u64);
                prev = index;
                let count: u32 = hosts.iter().map(|w| w.count_ones()).sum();
                push_varint(&mut c.counts, u64::from(count));
                if count < GAPS_BELOW {
                    c.kinds.push(V4_HOSTS | flag);
                    let mut last: Option<u8> = None;
                    for a in t.responsive.iter() {
                        let IpAddr::V4(a) = a else { continue };
                        let h = a.octets()[3];
                        c.gaps.push(match last {
                            None => h,
                            Some(l) => h.wrapping_sub(l).wrapping_sub(1),
                        });
                        last = Some(h);
                    }
                } else {
                    c.kinds.push(V4_BITMAP | flag);
                    for w in hosts {
                        c.bitmaps.extend_from_slice(&w.to_le_bytes());
                    }
                }
            }
            (block, r) => {
                c.kinds.push(LIST | flag);
                push_addr(&mut c.lists, block.network());
                c.lists.push(block.prefix_len());
                c.lists.extend_from_slice(&(r.len() as u32).to_le_bytes());
                for a in r.iter() {
                    push_addr(&mut c.lists, a);
                }
            }
        }
    }
    push_beliefs(&mut c.beliefs, all(st).map(|(_, t)| t));
    let cols = c.all();
    let mut raw =
        Vec::with_capacity(8 + 8 * cols.len() + cols.iter().map(|v| v.len()).sum::<usize>());
    raw.extend_from_slice(&(n as u64).to_le_bytes());
    for col in cols {
        raw.extend_from_slice(&(col.len() as u64).to_le_bytes());
    }
    for col in cols {
        raw.extend_from_slice(col);
    }
    let mut out = Vec::with_capacity(raw.len() / 2 + 24);
    out.extend_from_slice(SETS_MAGIC);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(raw.len() as u64).to_le_bytes());
    // zstd on a Vec cannot fail short of memory exhaustion.
    out.extend(zstd::bulk::compress(&raw, SETS_LEVEL).unwrap_or_default());
    out
}

/// A cursor over a decoded file.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StateError> {
        if self.0.len() < n {
            return Err(StateError::Corrupt("record cut short"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, StateError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StateError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u64(&mut self) -> Result<u64, StateError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn varint(&mut self) -> Result<u64, StateError> {
        let mut x = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            x |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(x);
            }
        }
        Err(StateError::Corrupt("bad varint"))
    }

    fn addr(&mut self) -> Result<IpAddr, StateError> {
        match self.u8()? {
            4 => Ok(IpAddr::V4(Ipv4Addr::from(self.array::<4>()?))),
            6 => Ok(IpAddr::V6(Ipv6Addr::from(self.array::<16>()?))),
            _ => Err(StateError::Corrupt("bad address family")),
        }
    }

    fn list(&mut self) -> Result<(IpNet, Vec<IpAddr>), StateError> {
        let net = self.addr()?;
        let len = self.u8()?;
        let block = IpNet::new(net, len).map_err(|_| StateError::Corrupt("bad prefix"))?;
        let n = u32::from_le_bytes(self.array()?);
        let mut addrs = Vec::new();
        for _ in 0..n {
            addrs.push(self.addr()?);
        }
        Ok((block, addrs))
    }
}

/// Decoded sets: the id, then each tracker with whether it is a control.
pub type Sets = (u64, Vec<(bool, BlockTracker)>);

fn v4_block(index: u32) -> IpNet {
    let [_, a, b, c] = index.to_be_bytes();
    IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::new(a, b, c, 0), 24).expect("24 is a valid length"))
}

fn bitmap_hosts(bits: &[u8]) -> Vec<u8> {
    (0..=255u8)
        .filter(|h| bits[usize::from(h / 8)] & (1 << (h % 8)) != 0)
        .collect()
}

/// Decodes a sets file of either format (the previous one is read once,
/// after an upgrade; [`load`] then rewrites the sets).
pub fn decode_sets(bytes: &[u8]) -> Result<Sets, StateError> {
    let mut r = Reader(bytes);
    let magic = r.take(4).map_err(|_| StateError::Magic)?;
    let v1 = match magic {
        m if m == SETS_MAGIC => false,
        m if m == SETS_MAGIC_V1 => true,
        _ => return Err(StateError::Magic),
    };
    let id = r.u64()?;
    let len = r.u64()?;
    // A length no file of ours could have: refuse it before allocating.
    if len > (r.0.len() as u64).saturating_mul(1024).max(1 << 20) {
        return Err(StateError::Corrupt("length mismatch"));
    }
    let raw = zstd::bulk::decompress(r.0, usize::try_from(len).unwrap_or(usize::MAX))
        .map_err(|_| StateError::Corrupt("bad compressed data"))?;
    if raw.len() as u64 != len {
        return Err(StateError::Corrupt("length mismatch"));
    }
    let out = if v1 {
        decode_v1(&raw)?
    } else {
        decode_v2(&raw)?
    };
    Ok((id, out))
}

fn decode_v2(raw: &[u8]) -> Result<Vec<(bool, BlockTracker)>, StateError> {
    let mut r = Reader(raw);
    let n = usize::try_from(r.u64()?).map_err(|_| StateError::Corrupt("too many records"))?;
    let mut lens = [0usize; 7];
    for l in &mut lens {
        *l = usize::try_from(r.u64()?).map_err(|_| StateError::Corrupt("bad column"))?;
    }
    let mut col = |l: usize| r.take(l).map(Reader);
    let mut kinds = col(lens[0])?;
    let mut nets = col(lens[1])?;
    let mut counts = col(lens[2])?;
    let mut gaps = col(lens[3])?;
    let mut bitmaps = col(lens[4])?;
    let mut lists = col(lens[5])?;
    let beliefs = col(lens[6])?;
    if !r.0.is_empty() || kinds.0.len() != n || beliefs.0.len() != 2 * n {
        return Err(StateError::Corrupt("columns do not fit"));
    }
    let mut out = Vec::with_capacity(n);
    let mut prev: i64 = 0;
    let mut hosts: Vec<u8> = Vec::with_capacity(256);
    for _ in 0..n {
        let kind = kinds.u8()?;
        let (block, addrs) = match kind & !CONTROL {
            V4_BITMAP | V4_HOSTS => {
                let z = nets.varint()?;
                let delta = (z >> 1) as i64 ^ -((z & 1) as i64);
                prev += delta;
                let index = u32::try_from(prev)
                    .ok()
                    .filter(|i| *i < 1 << 24)
                    .ok_or(StateError::Corrupt("bad block"))?;
                let count = counts.varint()?;
                if count > 256 {
                    return Err(StateError::Corrupt("bad host count"));
                }
                hosts.clear();
                if kind & !CONTROL == V4_HOSTS {
                    let mut next: u32 = 0;
                    for (i, &g) in gaps.take(count as usize)?.iter().enumerate() {
                        let h = if i == 0 {
                            u32::from(g)
                        } else {
                            next + u32::from(g)
                        };
                        if h > 255 {
                            return Err(StateError::Corrupt("bad host gap"));
                        }
                        hosts.push(h as u8);
                        next = h + 1;
                    }
                } else {
                    hosts.extend(bitmap_hosts(bitmaps.take(32)?));
                }
                let [_, a, b, c] = index.to_be_bytes();
                let addrs = hosts.iter().map(|&h| IpAddr::from([a, b, c, h])).collect();
                (v4_block(index), addrs)
            }
            LIST => lists.list()?,
            _ => return Err(StateError::Corrupt("bad record kind")),
        };
        out.push((
            kind & CONTROL != 0,
            BlockTracker::from_discovery(block, addrs),
        ));
    }
    set_beliefs(out.iter_mut().map(|(_, t)| t), beliefs.0);
    Ok(out)
}

/// The previous format: records of kind, block, hosts and a 4-byte belief.
fn decode_v1(raw: &[u8]) -> Result<Vec<(bool, BlockTracker)>, StateError> {
    let mut r = Reader(raw);
    let mut out = Vec::new();
    while !r.0.is_empty() {
        let kind = r.u8()?;
        let (block, addrs) = match kind & !CONTROL {
            V4_BITMAP | V4_HOSTS => {
                let net: [u8; 3] = r.array()?;
                let index = u32::from_be_bytes([0, net[0], net[1], net[2]]);
                let hosts: Vec<u8> = if kind & !CONTROL == V4_HOSTS {
                    let n = r.u8()?;
                    r.take(usize::from(n))?.to_vec()
                } else {
                    bitmap_hosts(r.take(32)?)
                };
                let addrs = hosts
                    .into_iter()
                    .map(|h| IpAddr::from([net[0], net[1], net[2], h]))
                    .collect();
                (v4_block(index), addrs)
            }
            LIST => r.list()?,
            _ => return Err(StateError::Corrupt("bad record kind")),
        };
        let mut t = BlockTracker::from_discovery(block, addrs);
        set_belief_v1(&mut t, r.array()?);
        out.push((kind & CONTROL != 0, t));
    }
    Ok(out)
}

/// The belief file for `st`, whose sets file has id `sets_id` (format 2:
/// the two columns of [`push_beliefs`], zstd compressed; in a steady round
/// most blocks share `B` = 0.99 and close `A`s, which compress well).
pub fn encode_beliefs(st: &CampaignState, sets_id: u64) -> Vec<u8> {
    let n = st.trackers.len() + st.control_trackers.len();
    let mut raw = Vec::with_capacity(2 * n);
    push_beliefs(&mut raw, all(st).map(|(_, t)| t));
    let mut out = Vec::with_capacity(24 + n / 2);
    out.extend_from_slice(BELIEF_MAGIC);
    out.extend_from_slice(&sets_id.to_le_bytes());
    out.extend_from_slice(&(n as u32).to_le_bytes());
    out.extend(zstd::bulk::compress(&raw, 1).unwrap_or_default());
    out
}

/// Applies a belief file (either format) to `st` (loaded from the sets
/// `sets_id`), or leaves `st` untouched if the file does not fit.
pub fn apply_beliefs(st: &mut CampaignState, sets_id: u64, bytes: &[u8]) -> Result<(), StateError> {
    let mut r = Reader(bytes);
    let magic = r.take(4).map_err(|_| StateError::Magic)?;
    let v1 = match magic {
        m if m == BELIEF_MAGIC => false,
        m if m == BELIEF_MAGIC_V1 => true,
        _ => return Err(StateError::Magic),
    };
    if r.u64()? != sets_id {
        return Err(StateError::OtherSets);
    }
    let n = u32::from_le_bytes(r.array()?) as usize;
    if n != st.trackers.len() + st.control_trackers.len() {
        return Err(StateError::Corrupt("wrong number of blocks"));
    }
    let trackers = st
        .trackers
        .values_mut()
        .chain(st.control_trackers.values_mut());
    if v1 {
        if r.0.len() != 4 * n {
            return Err(StateError::Corrupt("wrong number of blocks"));
        }
        for (t, b) in trackers.zip(r.0.chunks_exact(4)) {
            set_belief_v1(t, [b[0], b[1], b[2], b[3]]);
        }
    } else {
        let raw = zstd::bulk::decompress(r.0, 2 * n)
            .map_err(|_| StateError::Corrupt("bad compressed data"))?;
        if raw.len() != 2 * n {
            return Err(StateError::Corrupt("wrong number of blocks"));
        }
        set_beliefs(trackers, &raw);
    }
    Ok(())
}

/// The files of one campaign's state.
#[derive(Debug, Clone)]
pub struct Files {
    pub sets: PathBuf,
    pub belief: PathBuf,
    pub meta: PathBuf,
    /// The JSON state of earlier versions.
    pub legacy: PathBuf,
}

impl Files {
    /// `campaign` must be a valid campaign name (it becomes a file name).
    pub fn new(dir: &Path, campaign: &str) -> Files {
        let f = |ext: &str| dir.join(format!("campaign-{campaign}.{ext}"));
        Files {
            sets: f("sets"),
            belief: f("belief"),
            meta: f("meta.json"),
            legacy: f("json"),
        }
    }
}

/// The id of the sets file in memory (kept in `CampaignState::sets_id`).
fn new_id() -> u64 {
    rand::random::<u64>() | 1
}

/// Loads a campaign's state (default if none): binary state, or the JSON
/// state of an earlier version. A damaged belief file costs the beliefs
/// since the sets were written; damaged sets, a rediscovery.
pub fn load(files: &Files) -> CampaignState {
    let warn = |path: &Path, e: &dyn std::fmt::Display| {
        tracing::warn!(file = %path.display(), error = %e, "ignoring unreadable state file");
    };
    let Ok(meta) = std::fs::read(&files.meta) else {
        return match std::fs::read(&files.legacy) {
            Ok(bytes) => match serde_json::from_slice::<CampaignState>(&bytes) {
                Ok(mut st) => {
                    tracing::info!(file = %files.legacy.display(), "migrating the JSON state");
                    st.sets_changed = true;
                    st
                }
                Err(e) => {
                    warn(&files.legacy, &e);
                    CampaignState::default()
                }
            },
            Err(_) => CampaignState::default(),
        };
    };
    let mut st: CampaignState = match serde_json::from_slice(&meta) {
        Ok(st) => st,
        Err(e) => {
            warn(&files.meta, &e);
            return CampaignState::default();
        }
    };
    st.trackers.clear();
    st.control_trackers.clear();
    let sets = std::fs::read(&files.sets).map_err(|e| e.to_string());
    // Sets of the previous format are rewritten in this one.
    let v1 = matches!(&sets, Ok(b) if b.starts_with(SETS_MAGIC_V1));
    match sets.and_then(|b| decode_sets(&b).map_err(|e| e.to_string())) {
        Ok((id, trackers)) => {
            st.sets_changed |= v1;
            for (control, t) in trackers {
                let map = if control {
                    &mut st.control_trackers
                } else {
                    &mut st.trackers
                };
                map.insert(t.block, t);
            }
            st.sets_id = id;
            if let Ok(b) = std::fs::read(&files.belief) {
                if let Err(e) = apply_beliefs(&mut st, id, &b) {
                    warn(&files.belief, &e);
                }
            }
        }
        Err(e) => {
            // Without sets, nothing is known: sweep again.
            warn(&files.sets, &e);
            st.discovered_round = None;
            st.sets_changed = true;
        }
    }
    st
}

/// Saves `st`: its sets if they changed (with a new id), its beliefs, then
/// the rest. Removes the JSON state of an earlier version once replaced.
pub fn save(files: &Files, st: &mut CampaignState) -> std::io::Result<()> {
    // The files list blocks in order.
    st.trackers.settle();
    st.control_trackers.settle();
    if st.sets_changed || st.sets_id == 0 {
        let id = new_id();
        write_atomic(&files.sets, &encode_sets(st, id))?;
        st.sets_id = id;
        st.sets_changed = false;
    }
    write_atomic(&files.belief, &encode_beliefs(st, st.sets_id))?;
    let trackers = std::mem::take(&mut st.trackers);
    let controls = std::mem::take(&mut st.control_trackers);
    let meta = serde_json::to_vec(&*st);
    st.trackers = trackers;
    st.control_trackers = controls;
    write_atomic(&files.meta, &meta.map_err(std::io::Error::other)?)?;
    if files.legacy.exists() {
        std::fs::remove_file(&files.legacy)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
