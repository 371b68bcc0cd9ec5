//! A campaign's probing state on disk: compact, incremental, crash-safe.
//!
//! Three files per campaign in `spool_dir/state/`, each replaced whole with
//! [`write_atomic`] (a crash leaves the old file or the new one):
//! - `campaign-NAME.sets`: the responsive sets of every block (an IPv4 /24 as
//!   its 32-byte bitmap, or its host octets when fewer than 32; anything else
//!   as an address list) with a snapshot of each block's belief, zstd
//!   compressed. Rewritten only when discovery, the census or a change of
//!   campaign or policy changed the sets: at most every few rounds, not every
//!   round.
//! - `campaign-NAME.belief`: belief and availability of every block, each
//!   quantized to 16 bits, 4 bytes per block in the order of the sets file
//!   (whose id it carries). Rewritten every round.
//! - `campaign-NAME.meta.json`: everything else (prefixes, last round done,
//!   coverage sent, ...), small.
//!
//! The sets are written before the beliefs, and carry the beliefs of their
//! round. A belief file that is torn, unreadable or written for other sets is
//! ignored, and the sets' snapshot stands: a crash loses at most the belief
//! updates since the sets were last written, never a responsive set. The
//! JSON state of earlier versions (`campaign-NAME.json`) is read once, when
//! no binary state exists, and removed once the binary state is written.
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

const SETS_MAGIC: &[u8; 4] = b"DWS1";
const BELIEF_MAGIC: &[u8; 4] = b"DWB1";
/// Record kinds in the sets file (bit 0: a control block).
const V4_BITMAP: u8 = 0 << 1;
const V4_HOSTS: u8 = 1 << 1;
const LIST: u8 = 2 << 1;
const CONTROL: u8 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    #[error("not a darkwatch state file (bad magic)")]
    Magic,
    #[error("truncated or corrupt state file: {0}")]
    Corrupt(&'static str),
    #[error("belief file written for other sets")]
    OtherSets,
}

/// Quantizes `x` in `[lo, hi]` to 16 bits.
fn quantize(x: f64, lo: f64, hi: f64) -> u16 {
    (((x.clamp(lo, hi) - lo) / (hi - lo)) * f64::from(u16::MAX)).round() as u16
}

fn unquantize(q: u16, lo: f64, hi: f64) -> f64 {
    lo + f64::from(q) / f64::from(u16::MAX) * (hi - lo)
}

fn push_belief(out: &mut Vec<u8>, t: &BlockTracker) {
    out.extend_from_slice(&quantize(t.belief, BELIEF_MIN, BELIEF_MAX).to_le_bytes());
    out.extend_from_slice(&quantize(t.availability, AVAIL_MIN, AVAIL_MAX).to_le_bytes());
}

fn set_belief(t: &mut BlockTracker, b: [u8; 4]) {
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

/// Every tracker of `st` in file order: targets, then controls.
fn all(st: &CampaignState) -> impl Iterator<Item = (bool, &BlockTracker)> {
    let targets = st.trackers.values().map(|t| (false, t));
    targets.chain(st.control_trackers.values().map(|t| (true, t)))
}

/// The sets file for `st`, identified by `id`.
pub fn encode_sets(st: &CampaignState, id: u64) -> Vec<u8> {
    let mut raw = Vec::with_capacity(st.trackers.len() * 40);
    for (control, t) in all(st) {
        let flag = if control { CONTROL } else { 0 };
        match (&t.block, &t.responsive) {
            (IpNet::V4(b), Responsive::V4Block { net, hosts })
                if b.prefix_len() == 24 && b.network().octets()[..3] == net[..] =>
            {
                let n: u32 = hosts.iter().map(|w| w.count_ones()).sum();
                if n < 32 {
                    raw.push(V4_HOSTS | flag);
                    raw.extend_from_slice(net);
                    raw.push(n as u8);
                    raw.extend(t.responsive.iter().map(|a| match a {
                        IpAddr::V4(a) => a.octets()[3],
                        IpAddr::V6(_) => 0,
                    }));
                } else {
                    raw.push(V4_BITMAP | flag);
                    raw.extend_from_slice(net);
                    for w in hosts {
                        raw.extend_from_slice(&w.to_le_bytes());
                    }
                }
            }
            (block, r) => {
                raw.push(LIST | flag);
                push_addr(&mut raw, block.network());
                raw.push(block.prefix_len());
                raw.extend_from_slice(&(r.len() as u32).to_le_bytes());
                for a in r.iter() {
                    push_addr(&mut raw, a);
                }
            }
        }
        push_belief(&mut raw, t);
    }
    let mut out = Vec::with_capacity(raw.len() / 4 + 16);
    out.extend_from_slice(SETS_MAGIC);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(raw.len() as u64).to_le_bytes());
    // zstd on a Vec cannot fail short of memory exhaustion.
    out.extend(zstd::bulk::compress(&raw, 3).unwrap_or_default());
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

    fn addr(&mut self) -> Result<IpAddr, StateError> {
        match self.u8()? {
            4 => Ok(IpAddr::V4(Ipv4Addr::from(self.array::<4>()?))),
            6 => Ok(IpAddr::V6(Ipv6Addr::from(self.array::<16>()?))),
            _ => Err(StateError::Corrupt("bad address family")),
        }
    }
}

/// Decoded sets: the id, then each tracker with whether it is a control.
pub type Sets = (u64, Vec<(bool, BlockTracker)>);

pub fn decode_sets(bytes: &[u8]) -> Result<Sets, StateError> {
    let mut r = Reader(bytes);
    if r.take(4).map_err(|_| StateError::Magic)? != SETS_MAGIC {
        return Err(StateError::Magic);
    }
    let id = u64::from_le_bytes(r.array()?);
    let len = u64::from_le_bytes(r.array()?);
    let raw = zstd::bulk::decompress(r.0, usize::try_from(len).unwrap_or(usize::MAX))
        .map_err(|_| StateError::Corrupt("bad compressed data"))?;
    if raw.len() as u64 != len {
        return Err(StateError::Corrupt("length mismatch"));
    }
    let mut r = Reader(&raw);
    let mut out = Vec::new();
    while !r.0.is_empty() {
        let kind = r.u8()?;
        let (block, addrs) = match kind & !CONTROL {
            V4_BITMAP | V4_HOSTS => {
                let net: [u8; 3] = r.array()?;
                let block = IpNet::V4(
                    ipnet::Ipv4Net::new(Ipv4Addr::new(net[0], net[1], net[2], 0), 24)
                        .expect("24 is a valid length"),
                );
                let hosts: Vec<u8> = if kind & !CONTROL == V4_HOSTS {
                    let n = r.u8()?;
                    r.take(usize::from(n))?.to_vec()
                } else {
                    let bits: [u8; 32] = r.array()?;
                    (0..=255u8)
                        .filter(|h| bits[usize::from(h / 8)] & (1 << (h % 8)) != 0)
                        .collect()
                };
                let addrs = hosts
                    .into_iter()
                    .map(|h| IpAddr::from([net[0], net[1], net[2], h]))
                    .collect();
                (block, addrs)
            }
            LIST => {
                let net = r.addr()?;
                let len = r.u8()?;
                let block = IpNet::new(net, len).map_err(|_| StateError::Corrupt("bad prefix"))?;
                let n = u32::from_le_bytes(r.array()?);
                let mut addrs = Vec::new();
                for _ in 0..n {
                    addrs.push(r.addr()?);
                }
                (block, addrs)
            }
            _ => return Err(StateError::Corrupt("bad record kind")),
        };
        let mut t = BlockTracker::from_discovery(block, addrs);
        set_belief(&mut t, r.array()?);
        out.push((kind & CONTROL != 0, t));
    }
    Ok((id, out))
}

/// The belief file for `st`, whose sets file has id `sets_id`.
pub fn encode_beliefs(st: &CampaignState, sets_id: u64) -> Vec<u8> {
    let n = st.trackers.len() + st.control_trackers.len();
    let mut out = Vec::with_capacity(16 + 4 * n);
    out.extend_from_slice(BELIEF_MAGIC);
    out.extend_from_slice(&sets_id.to_le_bytes());
    out.extend_from_slice(&(n as u32).to_le_bytes());
    for (_, t) in all(st) {
        push_belief(&mut out, t);
    }
    out
}

/// Applies a belief file to `st` (loaded from the sets `sets_id`), or
/// leaves `st` untouched if the file does not fit.
pub fn apply_beliefs(st: &mut CampaignState, sets_id: u64, bytes: &[u8]) -> Result<(), StateError> {
    let mut r = Reader(bytes);
    if r.take(4).map_err(|_| StateError::Magic)? != BELIEF_MAGIC {
        return Err(StateError::Magic);
    }
    if u64::from_le_bytes(r.array()?) != sets_id {
        return Err(StateError::OtherSets);
    }
    let n = u32::from_le_bytes(r.array()?) as usize;
    if n != st.trackers.len() + st.control_trackers.len() || r.0.len() != 4 * n {
        return Err(StateError::Corrupt("wrong number of blocks"));
    }
    let targets = st.trackers.values_mut();
    for (t, b) in targets
        .chain(st.control_trackers.values_mut())
        .zip(r.0.chunks_exact(4))
    {
        set_belief(t, [b[0], b[1], b[2], b[3]]);
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
    match std::fs::read(&files.sets)
        .map_err(|e| e.to_string())
        .and_then(|b| decode_sets(&b).map_err(|e| e.to_string()))
    {
        Ok((id, trackers)) => {
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
