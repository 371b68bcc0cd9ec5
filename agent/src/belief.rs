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
//! octets for IPv4 /24 blocks, and the round's state is boxed and exists
//! only while a round runs.

use std::net::IpAddr;

use darkwatch_schema::BlockState;
use ipnet::IpNet;
use rand::seq::SliceRandom;
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
    round: Option<Box<RoundProgress>>,
}

#[derive(Debug, Clone, PartialEq)]
struct RoundProgress {
    order: Vec<IpAddr>,
    next: usize,
    max_probes: u32,
    /// Outcome of each probe, in order (true = reply).
    outcomes: Vec<bool>,
    /// An ICMP unreachable from outside the block came back this round.
    cut: bool,
    done: bool,
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

    /// Begins a round: shuffles the known addresses (no repeats within a round).
    pub fn start_round<R: Rng + ?Sized>(&mut self, max_probes: u32, rng: &mut R) {
        let mut order: Vec<IpAddr> = self.responsive.iter().collect();
        order.shuffle(rng);
        self.belief = self.belief.clamp(BELIEF_MIN, BELIEF_MAX);
        self.round = Some(Box::new(RoundProgress {
            order,
            next: 0,
            max_probes,
            outcomes: Vec::new(),
            cut: false,
            done: false,
        }));
    }

    /// The next address to probe, or `None` once the round has decided.
    /// Each returned address must be answered by `on_reply` or `on_loss`
    /// before calling this again.
    pub fn next_target(&mut self) -> Option<IpAddr> {
        let r = self.round.as_mut()?;
        if r.done
            || r.order.is_empty()
            || r.outcomes.len() as u32 >= r.max_probes
            || r.next > r.outcomes.len()
        {
            return None;
        }
        // Past the end of the known addresses, start over: against random
        // loss a second probe to the same address is fresh evidence.
        let addr = r.order[r.next % r.order.len()];
        r.next += 1;
        Some(addr)
    }

    /// The last target answered: the block is up.
    pub fn on_reply(&mut self) {
        if let Some(r) = self.round.as_mut() {
            r.outcomes.push(true);
            r.done = true;
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
            r.outcomes.push(false);
            r.cut |= cut;
            let b = self.belief;
            let num = (1.0 - a) * b;
            self.belief = num / (num + (1.0 - b));
            if r.cut && self.belief <= DOWN_THRESHOLD {
                r.done = true;
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

    /// Ends the round: clamps `B`, updates `A` when the block was up, and
    /// returns the outcome. Without a round in progress, reports zero probes.
    pub fn finish_round(&mut self) -> RoundOutcome {
        let outcomes = self.round.take().map(|r| r.outcomes).unwrap_or_default();
        self.belief = self.belief.clamp(BELIEF_MIN, BELIEF_MAX);
        let state = state_of(self.belief);
        // Losses only say something about availability while the block is up;
        // counting them during an outage would make the next outage look
        // like a sparse block and delay its detection.
        if state == BlockState::Up {
            for &ok in &outcomes {
                let x = if ok { 1.0 } else { 0.0 };
                self.availability =
                    clamp_avail((1.0 - AVAIL_ALPHA) * self.availability + AVAIL_ALPHA * x);
            }
        }
        RoundOutcome {
            block: self.block,
            state,
            probes: outcomes.len() as u32,
            replies: outcomes.iter().filter(|&&ok| ok).count() as u32,
            belief: self.belief,
            availability: self.availability,
        }
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
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn block() -> IpNet {
        "198.18.7.0/24".parse().unwrap()
    }

    fn hosts(n: u8) -> Vec<IpAddr> {
        (1..=n).map(|i| IpAddr::from([198, 18, 7, i])).collect()
    }

    /// Runs one round where `answers(addr, rng)` decides each probe.
    fn round<F: FnMut(IpAddr, &mut StdRng) -> bool>(
        t: &mut BlockTracker,
        rng: &mut StdRng,
        mut answers: F,
    ) -> RoundOutcome {
        t.start_round(DEFAULT_MAX_PROBES, rng);
        let mut seen = Vec::new();
        while let Some(a) = t.next_target() {
            let known = t.responsive.len();
            let pass = &seen[seen.len() / known * known..];
            assert!(
                !pass.contains(&a),
                "address {a} repeated before every known address was tried"
            );
            seen.push(a);
            if answers(a, rng) {
                t.on_reply()
            } else {
                t.on_loss()
            }
        }
        t.finish_round()
    }

    #[test]
    fn unreachable_from_upstream_settles_down_despite_low_availability() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut t = BlockTracker::from_discovery(block(), hosts(20));
        // Heavy loss has worn the availability down to its floor.
        t.availability = AVAIL_MIN;
        t.start_round(8, &mut rng);
        let mut probes = 0;
        while t.next_target().is_some() {
            probes += 1;
            t.on_unreachable();
        }
        let o = t.finish_round();
        assert_eq!(o.state, BlockState::Down, "{o:?}");
        assert!(probes <= 4, "{probes} probes");
        // The same losses as timeouts cannot conclude down at this `A`.
        let mut t = BlockTracker::from_discovery(block(), hosts(20));
        t.availability = AVAIL_MIN;
        let o = round(&mut t, &mut rng, |_, _| false);
        assert_ne!(o.state, BlockState::Down, "{o:?}");
        // And a reply after unreachables still means up.
        let mut t = BlockTracker::from_discovery(block(), hosts(20));
        t.start_round(8, &mut rng);
        t.next_target();
        t.on_unreachable();
        t.next_target();
        t.on_reply();
        assert_eq!(t.finish_round().state, BlockState::Up);
    }

    #[test]
    fn heavy_random_loss_does_not_make_a_block_down() {
        // 16 responsive hosts behind a path that drops 60 % of packets,
        // probed by a tracker whose availability had settled high.
        let mut rng = StdRng::seed_from_u64(7);
        let mut t = BlockTracker::from_discovery(block(), hosts(16));
        let mut downs = 0;
        let mut probes = 0;
        for _ in 0..1000 {
            let o = round(&mut t, &mut rng, |_, rng| rng.gen_bool(0.4));
            downs += u32::from(o.state == BlockState::Down);
            probes += o.probes;
        }
        // P(15 losses in a row) = 0.6^15 ≈ 5e-4 per round.
        assert!(downs <= 3, "{downs} of 1000 rounds judged down");
        // Stopping at the first reply still keeps the cost low.
        assert!(probes < 1000 * 3, "{probes} probes");
    }

    #[test]
    fn a_sparse_block_cycles_its_addresses_before_concluding_down() {
        let mut rng = StdRng::seed_from_u64(8);
        let mut t = BlockTracker::from_discovery(block(), hosts(3));
        let o = round(&mut t, &mut rng, |_, _| false);
        assert_eq!((o.state, o.probes), (BlockState::Down, DEFAULT_MAX_PROBES));
        // A reply on the second pass over the three addresses means up.
        let mut n = 0;
        let o = round(&mut t, &mut rng, |_, _| {
            n += 1;
            n == 5
        });
        assert_eq!((o.state, o.probes, o.replies), (BlockState::Up, 5, 1));
    }

    #[test]
    fn always_up_block_takes_one_probe_per_round() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut t = BlockTracker::from_discovery(block(), hosts(200));
        for _ in 0..50 {
            let o = round(&mut t, &mut rng, |_, _| true);
            assert_eq!((o.state, o.probes, o.replies), (BlockState::Up, 1, 1));
        }
        assert!(t.availability >= AVAIL_MAX - 1e-9);
    }

    #[test]
    fn dead_block_goes_down_after_the_whole_budget() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut t = BlockTracker::from_discovery(block(), hosts(200));
        let o = round(&mut t, &mut rng, |_, _| false);
        assert_eq!(o.state, BlockState::Down);
        assert_eq!(o.probes, DEFAULT_MAX_PROBES);
        assert_eq!(o.replies, 0);
        // Already believed down: still the whole budget, so that one round's
        // conclusion does not make the next one cheaper to reach by loss.
        let o = round(&mut t, &mut rng, |_, _| false);
        assert_eq!((o.state, o.probes), (BlockState::Down, DEFAULT_MAX_PROBES));
        // And it comes back up at the first reply.
        let o = round(&mut t, &mut rng, |_, _| true);
        assert_eq!((o.state, o.probes), (BlockState::Up, 1));
    }

    #[test]
    fn sparse_blocks_work() {
        let mut rng = StdRng::seed_from_u64(3);
        for n in 1..=3u8 {
            let mut t = BlockTracker::from_discovery(block(), hosts(n));
            let o = round(&mut t, &mut rng, |_, _| true);
            assert_eq!(o.state, BlockState::Up);
            // Its few addresses are probed again until the budget is spent,
            // so a sparse block that falls silent is down in the first round.
            for _ in 0..4 {
                let o = round(&mut t, &mut rng, |_, _| false);
                assert_eq!(
                    (o.state, o.probes),
                    (BlockState::Down, DEFAULT_MAX_PROBES),
                    "n={n}"
                );
            }
        }
        // A block with no known address cannot be probed at all.
        let mut t = BlockTracker::from_discovery(block(), vec![]);
        let o = round(&mut t, &mut rng, |_, _| true);
        assert_eq!((o.probes, o.state), (0, BlockState::Uncertain));
    }

    #[test]
    fn ten_percent_loss_rarely_yields_down() {
        let mut downs = 0;
        let mut total_probes = 0;
        let rounds_per_seed = 500;
        for seed in 0..20 {
            let mut rng = StdRng::seed_from_u64(100 + seed);
            let mut t = BlockTracker::from_discovery(block(), hosts(100));
            for _ in 0..rounds_per_seed {
                let o = round(&mut t, &mut rng, |_, r| r.gen::<f64>() >= 0.1);
                total_probes += o.probes;
                if o.state == BlockState::Down {
                    downs += 1;
                }
            }
        }
        let rounds = 20 * rounds_per_seed;
        // Three losses in a row (p = 0.001) are needed for down.
        assert!(
            downs * 1000 <= rounds * 3,
            "{downs} false downs in {rounds} rounds"
        );
        assert!(
            total_probes < rounds * 2,
            "{total_probes} probes in {rounds} rounds"
        );
    }

    #[test]
    fn inconsistent_answers_leave_the_block_uncertain() {
        let mut rng = StdRng::seed_from_u64(4);
        // Only a fifth of the known addresses answer: A converges low, so a
        // round of silence is not enough evidence for down.
        let mut t = BlockTracker::from_discovery(block(), hosts(200));
        let live: Vec<IpAddr> = hosts(40);
        for _ in 0..300 {
            round(&mut t, &mut rng, |a, _| live.contains(&a));
        }
        assert!(
            t.availability > 0.15 && t.availability < 0.36,
            "A = {}",
            t.availability
        );
        let o = round(&mut t, &mut rng, |_, _| false);
        assert_eq!(o.state, BlockState::Uncertain, "{o:?}");
        assert_eq!(o.probes, DEFAULT_MAX_PROBES);

        // The same from a fixed state: 15 losses at A = 0.25 take B from
        // 0.99 to about 0.56, short of both thresholds.
        let mut t = BlockTracker::from_discovery(block(), hosts(200));
        t.availability = 0.25;
        let o = round(&mut t, &mut rng, |_, _| false);
        assert_eq!(
            (o.state, o.probes, o.replies),
            (BlockState::Uncertain, DEFAULT_MAX_PROBES, 0)
        );
        let expected = {
            let odds = 99.0 * 0.75f64.powi(15);
            odds / (1.0 + odds)
        };
        assert!(
            (o.belief - expected).abs() < 1e-9,
            "{} vs {expected}",
            o.belief
        );
        // Uncertain rounds do not move availability.
        assert_eq!(o.availability, 0.25);
    }

    #[test]
    fn availability_converges() {
        for seed in 0..5 {
            let mut rng = StdRng::seed_from_u64(200 + seed);
            let mut t = BlockTracker::from_discovery(block(), hosts(200));
            let mut sum = 0.0;
            for i in 0..1500 {
                round(&mut t, &mut rng, |_, r| r.gen::<f64>() < 0.5);
                if i >= 1000 {
                    sum += t.availability;
                }
            }
            let mean = sum / 500.0;
            assert!((mean - 0.5).abs() < 0.08, "seed {seed}: mean A = {mean}");
        }
    }

    #[test]
    fn belief_is_clamped_and_tracker_round_trips_as_json() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut t = BlockTracker::from_discovery(block(), hosts(10));
        for _ in 0..5 {
            round(&mut t, &mut rng, |_, _| false);
        }
        assert!(t.belief >= BELIEF_MIN && t.belief <= DOWN_THRESHOLD);
        let json = serde_json::to_string(&t).unwrap();
        let back: BlockTracker = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        assert!(!json.contains("round"));
    }

    #[test]
    fn responsive_sets_are_compact_sorted_and_deduplicated() {
        let mut hs = hosts(200);
        hs.reverse();
        hs.push(hs[0]);
        let r = Responsive::from(hs);
        assert!(matches!(r, Responsive::V4Block { .. }));
        assert_eq!(r.len(), 200);
        assert_eq!(r.iter().collect::<Vec<_>>(), hosts(200));
        assert!(r.contains(&IpAddr::from([198, 18, 7, 200])));
        assert!(!r.contains(&IpAddr::from([198, 18, 7, 201])));
        assert!(!r.contains(&IpAddr::from([198, 18, 8, 1])));
        // Host octets 0 and 255 and every word boundary survive.
        let edge: Vec<IpAddr> = [0u8, 63, 64, 127, 128, 255]
            .iter()
            .map(|&h| IpAddr::from([10, 0, 0, h]))
            .collect();
        assert_eq!(
            Responsive::from(edge.clone()).iter().collect::<Vec<_>>(),
            edge
        );
        // Mixed /24s or families fall back to a sorted list.
        let mixed = vec![
            IpAddr::from([198, 18, 8, 1]),
            IpAddr::from([198, 18, 7, 1]),
            "2001:db8::1".parse().unwrap(),
            IpAddr::from([198, 18, 7, 1]),
        ];
        let r = Responsive::from(mixed);
        assert!(matches!(r, Responsive::List(_)));
        assert_eq!(r.len(), 3);
        assert_eq!(r.iter().next(), Some(IpAddr::from([198, 18, 7, 1])));
        assert!(Responsive::from(vec![]).is_empty());
        // JSON is the sorted list, as before the compact form.
        let json = serde_json::to_string(&Responsive::from(hosts(2))).unwrap();
        assert_eq!(json, r#"["198.18.7.1","198.18.7.2"]"#);
    }

    #[test]
    fn tracker_stays_small() {
        // The map entry of 100k tracked blocks: no heap for IPv4 /24 sets.
        assert!(
            std::mem::size_of::<BlockTracker>() <= 96,
            "{}",
            std::mem::size_of::<BlockTracker>()
        );
    }

    #[test]
    fn later_discovery_grows_the_set_and_moves_availability() {
        let mut t = BlockTracker::from_discovery(block(), hosts(10));
        t.merge_discovery(&hosts(20)[10..]);
        assert_eq!(t.responsive.len(), 20);
        // Half the ever-responsive set answered this sweep.
        assert!((t.availability - (0.5 * AVAIL_MAX + 0.25)).abs() < 1e-9);
        let mut empty = BlockTracker::from_discovery(block(), vec![]);
        empty.merge_discovery(&hosts(4));
        assert_eq!(empty.responsive.len(), 4);
        assert_eq!(empty.availability, AVAIL_MAX);
    }
}
