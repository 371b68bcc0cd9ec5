//! Trinocular-style belief about one block, as a pure state machine: no I/O,
//! no clock, randomness injected by the caller.
//!
//! A [`BlockTracker`] knows the block's ever-responsive addresses (from
//! discovery), a belief `B = P(block up)` and an availability `A` (the share of
//! those addresses that answer when the block is up). A round is
//! `start_round`, then `next_target` / `on_reply` / `on_loss` until
//! `next_target` returns `None`, then `finish_round`. A reply means up (down
//! blocks do not answer); a loss is weak evidence of down, weighted by `A`:
//! `B' = (1−A)B / ((1−A)B + (1−B))`. The round stops at the first reply or
//! after `max_probes` probes. Silence alone never ends a round early: under
//! heavy random loss a few lost probes in a row are common (three in a row
//! one time in eight at 50 % loss), so a block is called down only once the
//! whole probe budget went unanswered, cycling through its known addresses
//! again when it has fewer than the budget. An ICMP unreachable from a router
//! outside the block is different: the path is cut there, so once `B ≤ 0.1`
//! with such an error in the round, the round ends. `B` is clamped into
//! [0.01, 0.99] between rounds so it can always move.
//!
//! An agent keeps one tracker per block for hundreds of thousands of blocks,
//! so the ever-responsive set is a [`Responsive`]: a 32-byte bitmap of host
//! octets for IPv4 /24 blocks, and a round's state is a few counters (no
//! heap, nothing collected or shuffled per round).

use std::net::IpAddr;
use std::num::NonZeroU32;

use darkwatch_schema::rtt::Rtt;
use darkwatch_schema::BlockState;
use ipnet::IpNet;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Trinocular's per-round probe budget.
pub const DEFAULT_MAX_PROBES: u32 = 15;
/// `B` at or above this is `up`.
pub const UP_THRESHOLD: f64 = 0.9;
/// `B` at or below this is `down`.
pub const DOWN_THRESHOLD: f64 = 0.1;
/// Bounds of `B` between rounds.
pub const BELIEF_MIN: f64 = 0.01;
pub const BELIEF_MAX: f64 = 0.99;
/// Bounds of `A`: never certain that an address answers, nor that none does.
pub const AVAIL_MIN: f64 = 0.1;
pub const AVAIL_MAX: f64 = 0.95;
/// Weight of one probe outcome in the availability EWMA.
pub const AVAIL_ALPHA: f64 = 0.05;

/// The outcome of one block's round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundOutcome {
    pub block: IpNet,
    pub state: BlockState,
    pub probes: u32,
    pub replies: u32,
    /// Belief after the round, in [0.01, 0.99].
    pub belief: f64,
    pub availability: f64,
    /// The replies' round-trip times, noted by the prober
    /// (`round::probe_block`), not the tracker (two bytes; the outcome
    /// stays 48).
    #[serde(default)]
    pub rtt: Rtt,
}

/// The routers' ICMP errors (unreachable, time exceeded) to one block's
/// probes in one round: the router they came from (the last one, should
/// several answer) and how many came. Noted by the prober
/// (`round::probe_block`), not the tracker, so that a tracker's round state
/// stays a few bytes, and kept beside the round's outcomes rather than in
/// each (few blocks draw errors; an outcome stays 48 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockErrors {
    pub block: IpNet,
    pub from: IpAddr,
    pub errors: u32,
}

/// The ever-responsive addresses of one block, without duplicates, iterated
/// in ascending order. Addresses of one IPv4 /24 are a bitmap of their last
/// octet (32 bytes, no heap, whatever their number); anything else is a
/// sorted list. Serialized as the sorted list of addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<IpAddr>", into = "Vec<IpAddr>")]
pub enum Responsive {
    V4Block { net: [u8; 3], hosts: [u64; 4] },
    List(Vec<IpAddr>),
}

impl Default for Responsive {
    fn default() -> Self {
        Responsive::List(Vec::new())
    }
}

impl From<Vec<IpAddr>> for Responsive {
    fn from(mut addrs: Vec<IpAddr>) -> Self {
        let net = match addrs.first() {
            Some(IpAddr::V4(a)) => {
                let o = a.octets();
                Some([o[0], o[1], o[2]])
            }
            _ => None,
        };
        if let Some(net) = net {
            let mut hosts = [0u64; 4];
            let one_block = addrs.iter().all(|a| match a {
                IpAddr::V4(v) if v.octets()[..3] == net => {
                    let h = v.octets()[3];
                    hosts[usize::from(h >> 6)] |= 1u64 << (h & 63);
                    true
                }
                _ => false,
            });
            if one_block {
                return Responsive::V4Block { net, hosts };
            }
        }
        addrs.sort_unstable();
        addrs.dedup();
        Responsive::List(addrs)
    }
}

impl From<Responsive> for Vec<IpAddr> {
    fn from(r: Responsive) -> Self {
        match r {
            Responsive::List(v) => v,
            r => r.iter().collect(),
        }
    }
}

impl Responsive {
    pub fn len(&self) -> usize {
        match self {
            Responsive::V4Block { hosts, .. } => {
                hosts.iter().map(|w| w.count_ones() as usize).sum()
            }
            Responsive::List(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, addr: &IpAddr) -> bool {
        match (self, addr) {
            (Responsive::V4Block { net, hosts }, IpAddr::V4(v)) => {
                let o = v.octets();
                o[..3] == net[..] && hosts[usize::from(o[3] >> 6)] & (1 << (o[3] & 63)) != 0
            }
            (Responsive::V4Block { .. }, IpAddr::V6(_)) => false,
            (Responsive::List(l), a) => l.binary_search(a).is_ok(),
        }
    }

    /// The `i`-th address in ascending order, without iterating.
    pub fn nth(&self, i: usize) -> Option<IpAddr> {
        match self {
            Responsive::V4Block { net, hosts } => {
                let mut i = u32::try_from(i).ok()?;
                for (w, &word) in hosts.iter().enumerate() {
                    let ones = word.count_ones();
                    if i < ones {
                        // Clear the lowest `i` set bits; the next is the one.
                        let mut x = word;
                        for _ in 0..i {
                            x &= x - 1;
                        }
                        let h = (w as u32) * 64 + x.trailing_zeros();
                        return Some(IpAddr::from([net[0], net[1], net[2], h as u8]));
                    }
                    i -= ones;
                }
                None
            }
            Responsive::List(v) => v.get(i).copied(),
        }
    }

    /// The addresses, in ascending order.
    pub fn iter(&self) -> ResponsiveIter<'_> {
        match self {
            Responsive::V4Block { net, hosts } => ResponsiveIter::Bits {
                net: *net,
                hosts: *hosts,
                next: 0,
            },
            Responsive::List(v) => ResponsiveIter::List(v.iter()),
        }
    }

    /// Adds addresses (duplicates are ignored).
    pub fn extend_from_slice(&mut self, more: &[IpAddr]) {
        if more.is_empty() {
            return;
        }
        let mut all: Vec<IpAddr> = self.iter().collect();
        all.extend_from_slice(more);
        *self = Responsive::from(all);
    }
}

/// Iterator over a [`Responsive`] set, yielding addresses by value.
#[derive(Debug, Clone)]
pub enum ResponsiveIter<'a> {
    Bits {
        net: [u8; 3],
        hosts: [u64; 4],
        next: u16,
    },
    List(std::slice::Iter<'a, IpAddr>),
}

impl Iterator for ResponsiveIter<'_> {
    type Item = IpAddr;

    fn next(&mut self) -> Option<IpAddr> {
        match self {
            ResponsiveIter::Bits { net, hosts, next } => {
                while *next < 256 {
                    let h = *next as u8;
                    *next += 1;
                    if hosts[usize::from(h >> 6)] & (1 << (h & 63)) != 0 {
                        return Some(IpAddr::from([net[0], net[1], net[2], h]));
                    }
                }
                None
            }
            ResponsiveIter::List(it) => it.next().copied(),
        }
    }
}

/// Per-block state persisted between rounds (and between cron runs, as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockTracker {
    pub block: IpNet,
    /// Ever-responsive addresses (serialized as a sorted list).
    pub responsive: Responsive,
    /// `B`: belief that the block is up.
    pub belief: f64,
    /// `A`: share of `responsive` that answers while the block is up.
    pub availability: f64,
    /// State of the round in progress; not persisted (a round never spans runs).
    #[serde(skip)]
    round: Option<RoundProgress>,
}

/// A round in progress, without heap: the round's probe order is a random
/// walk over the `n` known addresses, `start, start + stride, ...` (mod
/// `n`, `stride` coprime with `n`), so no address repeats before all were
/// probed and the first probe is uniform over them; nothing is collected
/// or shuffled. A round ends at its first reply, unless the block is to get
/// `min_probes` (a small campaign's probes that measure the path's loss):
/// then it goes on to that many, and `replies` counts the replies.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RoundProgress {
    /// The walk over the `n` = `responsive.len()` addresses (`n` is not
    /// stored: 12 bytes keep a tracker within 88).
    start: u32,
    stride: NonZeroU32,
    /// Outcomes received (at most `max_probes` or `min_probes`, each
    /// capped at 255); the target handed out and not yet answered is
    /// [`PENDING`], so the walk's next step is `answered`.
    answered: u8,
    /// Before the first reply, the probe budget (`max_probes`); from it on,
    /// the replies counted, since the budget is then `min_probes`. One
    /// byte for both keeps the round in 12 bytes, a tracker in 88.
    max_or_replies: u8,
    /// Probes an answered block gets at least (see
    /// [`BlockTracker::start_round_min`]).
    min_probes: u8,
    /// [`REPLIED`], [`CUT`], [`DONE`], [`PENDING`].
    flags: u8,
}

/// A reply came this round.
const REPLIED: u8 = 1;
/// An ICMP unreachable from outside the block came back this round.
const CUT: u8 = 2;
/// The round has decided.
const DONE: u8 = 4;
/// A target was handed out and its outcome has not come yet.
const PENDING: u8 = 8;

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn clamp_avail(a: f64) -> f64 {
    a.clamp(AVAIL_MIN, AVAIL_MAX)
}

impl BlockTracker {
    /// A tracker for a block whose discovery sweep found `responsive`. A block
    /// that just answered discovery starts as up, with the highest availability
    /// a single sweep can justify.
    pub fn from_discovery(block: IpNet, responsive: Vec<IpAddr>) -> Self {
        let responsive = Responsive::from(responsive);
        let belief = if responsive.is_empty() {
            0.5
        } else {
            BELIEF_MAX
        };
        Self {
            block,
            responsive,
            belief,
            availability: AVAIL_MAX,
            round: None,
        }
    }

    /// Folds a later discovery sweep in: new addresses join the ever-responsive
    /// set, and the share of that set found this time nudges `A`.
    pub fn merge_discovery(&mut self, found: &[IpAddr]) {
        if found.is_empty() && self.responsive.is_empty() {
            return;
        }
        let before = self.responsive.len();
        self.responsive.extend_from_slice(found);
        let share = found.len() as f64 / self.responsive.len() as f64;
        self.availability = if before == 0 {
            clamp_avail(share)
        } else {
            clamp_avail(0.5 * self.availability + 0.5 * share)
        };
    }

    /// The state `B` stands for.
    pub fn state(&self) -> BlockState {
        state_of(self.belief)
    }

    /// Begins a round: a random walk over the known addresses (no repeats
    /// within a round until every one was probed; see [`RoundProgress`]).
    pub fn start_round<R: Rng + ?Sized>(&mut self, max_probes: u32, rng: &mut R) {
        self.start_round_min(max_probes, 1, rng);
    }

    /// [`Self::start_round`], where a block that answers is probed on after
    /// its first reply until `min_probes` probes went out: a reply settles
    /// the belief, and the later probes only measure the path's loss (what
    /// the collector's instability test pools), so that a campaign of a few
    /// blocks still sends enough probes a round to tell heavy loss from
    /// background loss. A silent block still gets at most `max_probes`.
    pub fn start_round_min<R: Rng + ?Sized>(
        &mut self,
        max_probes: u32,
        min_probes: u32,
        rng: &mut R,
    ) {
        let n = u32::try_from(self.responsive.len()).unwrap_or(u32::MAX);
        let (start, stride) = if n > 1 {
            let start = rng.gen_range(0..n);
            // Uniform over 1..n, then the next stride coprime with n.
            let mut stride = rng.gen_range(1..n);
            while gcd(stride, n) != 1 {
                stride = stride % (n - 1) + 1;
            }
            (start, stride)
        } else {
            (0, 1)
        };
        self.belief = self.belief.clamp(BELIEF_MIN, BELIEF_MAX);
        self.round = Some(RoundProgress {
            start,
            stride: NonZeroU32::new(stride).unwrap_or(NonZeroU32::MIN),
            answered: 0,
            max_or_replies: u8::try_from(max_probes).unwrap_or(u8::MAX),
            min_probes: u8::try_from(min_probes.max(1)).unwrap_or(u8::MAX),
            flags: 0,
        });
    }

    /// The next address to probe, or `None` once the round has decided.
    /// Each returned address must be answered by `on_reply` or `on_loss`
    /// before calling this again.
    pub fn next_target(&mut self) -> Option<IpAddr> {
        let r = self.round.as_mut()?;
        let n = self.responsive.len() as u64;
        let budget = if r.flags & REPLIED != 0 {
            r.min_probes
        } else {
            r.max_or_replies
        };
        if r.flags & (DONE | PENDING) != 0 || n == 0 || r.answered >= budget {
            return None;
        }
        // Past the end of the known addresses, start over: against random
        // loss a second probe to the same address is fresh evidence.
        let i = (u64::from(r.start) + u64::from(r.answered) * u64::from(r.stride.get())) % n;
        r.flags |= PENDING;
        self.responsive.nth(i as usize)
    }

    /// The last target answered: the block is up.
    pub fn on_reply(&mut self) {
        if let Some(r) = self.round.as_mut() {
            r.answered = r.answered.saturating_add(1);
            r.flags &= !PENDING;
            if r.flags & REPLIED != 0 {
                r.max_or_replies = r.max_or_replies.saturating_add(1);
            } else {
                r.flags |= REPLIED;
                r.max_or_replies = 1;
            }
            if r.answered >= r.min_probes {
                r.flags |= DONE;
            }
            // P(reply | down) = 0, so one reply settles it.
            self.belief = BELIEF_MAX;
        }
    }

    /// The last target did not answer (timeout or ICMP error).
    pub fn on_loss(&mut self) {
        self.lose(self.availability, false);
    }

    /// A probe without a reply, weighted by availability `a`:
    /// `B' = (1−a)B / ((1−a)B + (1−B))`. `cut` marks an unreachable from
    /// outside the block, the only silence that may end a round early.
    fn lose(&mut self, a: f64, cut: bool) {
        if let Some(r) = self.round.as_mut() {
            r.answered = r.answered.saturating_add(1);
            r.flags &= !PENDING;
            if r.flags & REPLIED != 0 {
                // Up already: a later loss is the path's, not the block's.
                return;
            }
            if cut {
                r.flags |= CUT;
            }
            let b = self.belief;
            let num = (1.0 - a) * b;
            self.belief = num / (num + (1.0 - b));
            if r.flags & CUT != 0 && self.belief <= DOWN_THRESHOLD {
                r.flags |= DONE;
            }
        }
    }

    /// The last target's probe drew an ICMP error from a router outside the
    /// block (network/host unreachable): the path to the block is cut there,
    /// which a timeout cannot tell apart from loss. It counts as a loss from
    /// a fully available block (`A` = [`AVAIL_MAX`]), so a few of them
    /// settle a round as down even when transient loss has lowered `A`;
    /// a single reply still overrides them. Errors from inside the block
    /// (its own gateway failing to reach one host) are ordinary losses.
    pub fn on_unreachable(&mut self) {
        self.lose(AVAIL_MAX, true);
    }

    /// The last target's probe drew an ICMP error (unreachable, time
    /// exceeded) from `from`: judged as [`Self::on_unreachable`] from
    /// outside the block, as an ordinary loss from inside it. (Where the
    /// error came from is noted by the prober, `round::probe_block`.)
    pub fn on_error(&mut self, from: IpAddr) {
        if self.block.contains(&from) {
            self.on_loss();
        } else {
            self.on_unreachable();
        }
    }

    /// Ends the round: clamps `B`, updates `A` when the block was up, and
    /// returns the outcome. Without a round in progress, reports zero probes.
    pub fn finish_round(&mut self) -> RoundOutcome {
        let (probes, replies) = self.round.take().map_or((0, 0), |r| {
            let replies = if r.flags & REPLIED != 0 {
                r.max_or_replies
            } else {
                0
            };
            (u32::from(r.answered), u32::from(replies))
        });
        self.belief = self.belief.clamp(BELIEF_MIN, BELIEF_MAX);
        let state = state_of(self.belief);
        self.availability = fold_availability(self.availability, state, probes, replies);
        RoundOutcome {
            block: self.block,
            state,
            probes,
            replies,
            belief: self.belief,
            availability: self.availability,
            rtt: Rtt::NONE,
        }
    }
}

/// `A` after a round of `probes` probes with `replies` replies that ended
/// in `state`, from `A` = `availability` before it, the losses folded
/// first and the replies last (a round without a minimum has at most one
/// reply, its last outcome, so this is exact there). Losses only say
/// something about availability while the block is up; counting them
/// during an outage would make the next outage look like a sparse block
/// and delay its detection.
pub fn fold_availability(availability: f64, state: BlockState, probes: u32, replies: u32) -> f64 {
    let mut a = availability;
    if state == BlockState::Up {
        let losses = probes.saturating_sub(replies);
        for i in 0..probes {
            let x = if i < losses { 0.0 } else { 1.0 };
            a = clamp_avail((1.0 - AVAIL_ALPHA) * a + AVAIL_ALPHA * x);
        }
    }
    a
}

impl RoundOutcome {
    /// Writes this round's evidence into `t`, the block's tracker as it is
    /// now: the belief the round ended with, and the round's availability
    /// update applied to `t`'s `A` (which a discovery sweep may have
    /// nudged while the round ran on a copy).
    pub fn apply_to(&self, t: &mut BlockTracker) {
        t.belief = self.belief;
        t.availability = fold_availability(t.availability, self.state, self.probes, self.replies);
    }
}

/// Maps a belief to a state with the Trinocular thresholds.
pub fn state_of(belief: f64) -> BlockState {
    if belief >= UP_THRESHOLD {
        BlockState::Up
    } else if belief <= DOWN_THRESHOLD {
        BlockState::Down
    } else {
        BlockState::Uncertain
    }
}

#[cfg(test)]
mod tests;
