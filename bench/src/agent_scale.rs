//! The agent at Internet scale, without a network: one campaign of `blocks`
//! IPv4 /24s (4.2M, IODA's whole active-probing set, by default) with
//! synthetic responsive sets, tracked by the agent's own code. A round is
//! the daemon's: blocks in `schedule` slices, each slice one
//! `round::run_trackers` over copies of its trackers, the outcomes applied
//! at the round's end (`round::apply_outcomes`), as the daemon does,
//! against an instant in-process pinger, so the CPU counted is the agent's
//! own (tasks, belief updates), not the kernel's send cost. Measures live
//! heap per block (held between rounds, and peak during a round), CPU per
//! round, the state files' bytes per block (`state`; also for sets of
//! clustered hosts), and the bytes per block of the round packed for the
//! wire (`schema::packed`).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use darkwatch_agent::belief::BlockTracker;
use darkwatch_agent::campaign::CampaignState;
use darkwatch_agent::icmp::{Outcome, Pinger};
use darkwatch_agent::ratelimit::RateLimiter;
use darkwatch_agent::schedule::{SliceQueue, SLICES};
use darkwatch_agent::tracked::Trackers;
use darkwatch_agent::{round, state, ProbeSettings};
use darkwatch_schema::packed::{self, BlockSpace};
use futures::future::BoxFuture;
use ipnet::{IpNet, Ipv4Net};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The campaign: 64.0.0.0/2 holds 4,194,304 /24s.
const SPACE: &str = "64.0.0.0/2";

/// Answers at once: blocks whose third octet is 0 are dark (1 in 256),
/// everything else replies.
struct Instant0;

impl Pinger for Instant0 {
    fn echo(&self, addr: IpAddr, _timeout: Duration) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            match addr {
                IpAddr::V4(a) if a.octets()[2] == 0 => Outcome::Timeout,
                _ => Outcome::Reply {
                    rtt: Duration::from_millis(1),
                },
            }
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct ScaleResult {
    pub blocks: u64,
    /// Live heap per block between rounds, and at the round's peak.
    pub held_per_block: f64,
    pub peak_per_block: f64,
    /// Process CPU seconds of one round (median of the rounds after the
    /// first), and of saving its state.
    pub cpu_round_s: f64,
    pub cpu_save_s: f64,
    pub probes_per_round: u64,
    /// Bytes per block: the sets file, the belief file.
    pub sets_per_block: f64,
    pub belief_per_block: f64,
    /// Bytes per block of the sets file when each block's hosts are
    /// clustered as in real address space (see [`clustered`]), over a
    /// tenth of the blocks.
    pub sets_clustered_per_block: f64,
    /// Bytes per block of the round packed (JSON envelopes included), and
    /// the CPU seconds of packing.
    pub wire_per_block: f64,
    pub cpu_pack_s: f64,
}

fn cpu_s() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0.0, |u| {
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        t(u.user_time()) + t(u.system_time())
    })
}

/// The trackers: every /24 of [`SPACE`] with 4 to 64 random responsive hosts.
fn trackers(blocks: u32) -> Trackers {
    let mut rng = StdRng::seed_from_u64(7);
    let base = u32::from(Ipv4Addr::new(64, 0, 0, 0)) >> 8;
    (0..blocks)
        .map(|i| {
            let net = (base + i) << 8;
            let block = IpNet::V4(Ipv4Net::new(Ipv4Addr::from(net), 24).expect("a /24"));
            let n = rng.gen_range(4..=64u32);
            let addrs: Vec<IpAddr> = (0..n)
                .map(|_| IpAddr::V4(Ipv4Addr::from(net + rng.gen_range(1..255u32))))
                .collect();
            (block, BlockTracker::from_discovery(block, addrs))
        })
        .collect()
}

/// The same counts of hosts as [`trackers`] (4 to 64 per block), placed as
/// real /24s tend to hold them: the gateway (.1) and one to three runs of
/// consecutive addresses (a server range, a DHCP pool) at random offsets.
/// An assumption, not a measurement: uniform random sets ([`trackers`]) are
/// the worst case, whose entropy alone is ~16.5 B per block.
fn clustered(blocks: u32) -> Trackers {
    let mut rng = StdRng::seed_from_u64(11);
    let base = u32::from(Ipv4Addr::new(64, 0, 0, 0)) >> 8;
    (0..blocks)
        .map(|i| {
            let net = (base + i) << 8;
            let block = IpNet::V4(Ipv4Net::new(Ipv4Addr::from(net), 24).expect("a /24"));
            let n = rng.gen_range(4..=64u32);
            let runs = rng.gen_range(1..=3u32);
            let mut addrs = vec![IpAddr::V4(Ipv4Addr::from(net + 1))];
            for r in 0..runs {
                let len = (n - 1) / runs + u32::from(r < (n - 1) % runs);
                let start = rng.gen_range(2..255 - len);
                addrs.extend((start..start + len).map(|h| IpAddr::V4(Ipv4Addr::from(net + h))));
            }
            (block, BlockTracker::from_discovery(block, addrs))
        })
        .collect()
}

/// One round over `st` in slices (without waiting between them), as the
/// daemon runs it: each slice's trackers copied by index, probed, their
/// outcomes put in slots by index and applied at the round's end
/// (`Trackers::finish_round`). Returns the outcomes, in block order.
async fn one_round(
    st: &mut CampaignState,
    seed: u64,
) -> Vec<darkwatch_agent::belief::RoundOutcome> {
    let pinger: Arc<dyn Pinger> = Arc::new(Instant0);
    let limiter = Arc::new(RateLimiter::unlimited());
    let settings = ProbeSettings {
        max_probes: 15,
        ..ProbeSettings::default()
    };
    let mut queue = SliceQueue::new(SLICES, 0, st.trackers.indexed().map(|(i, t)| (i, &t.block)));
    let mut slots = vec![None; st.trackers.len()];
    while let Some((_, indices)) = queue.take() {
        let mut slice: Vec<BlockTracker> =
            indices.iter().map(|&i| st.trackers.at(i).clone()).collect();
        let probed = round::run_trackers(
            &mut slice,
            pinger.as_ref(),
            limiter.as_ref(),
            &settings,
            seed,
        )
        .await;
        for (pos, o) in probed.outcomes {
            slots[indices[pos as usize] as usize] = Some(o);
        }
    }
    st.trackers.finish_round(slots)
}

/// Runs `rounds` rounds over `blocks` blocks. `live` and `peak` read the
/// heap counters, `reset_peak` restarts the peak from the live figure.
pub fn run(
    blocks: u32,
    rounds: u32,
    live: fn() -> isize,
    peak: fn() -> isize,
    reset_peak: fn(),
) -> Result<ScaleResult> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let before = live();
    let mut st = CampaignState {
        prefixes: vec![SPACE.parse()?],
        trackers: trackers(blocks),
        ..CampaignState::default()
    };
    let n = f64::from(blocks);
    let mut r = ScaleResult {
        blocks: u64::from(blocks),
        held_per_block: (live() - before) as f64 / n,
        ..ScaleResult::default()
    };
    let space = BlockSpace::new(&st.prefixes);
    let dir = tempfile::tempdir()?;
    let files = state::Files::new(dir.path(), "scale");
    let (mut cpu_rounds, mut cpu_saves, mut cpu_packs) = (Vec::new(), Vec::new(), Vec::new());
    let mut peak_seen = 0isize;
    for k in 0..rounds.max(2) {
        reset_peak();
        let t = Instant::now();
        let c0 = cpu_s();
        let outcomes = rt.block_on(one_round(&mut st, u64::from(k)));
        let c1 = cpu_s();
        peak_seen = peak_seen.max(peak() - before);
        r.probes_per_round = outcomes.iter().map(|o| u64::from(o.probes)).sum();
        // Packing for the wire (what the report sends for this round).
        let (packed, _) = darkwatch_agent::campaign::packed_blocks(&space, &outcomes);
        drop(outcomes);
        let chunks = packed::pack_chunks(
            "scale",
            u64::from(k),
            &space,
            0,
            packed,
            packed::MAX_BLOCKS_PER_PACKED,
        )?;
        let wire: usize = chunks
            .iter()
            .map(|c| serde_json::to_vec(c).map_or(0, |v| v.len()))
            .sum();
        let c2 = cpu_s();
        st.sets_changed = k == 0;
        state::save(&files, &mut st)?;
        let c3 = cpu_s();
        eprintln!(
            "  scale round {k}: {:.1} s wall, {:.2} CPU-s probing, {:.2} packing, {:.2} saving",
            t.elapsed().as_secs_f64(),
            c1 - c0,
            c2 - c1,
            c3 - c2
        );
        r.wire_per_block = wire as f64 / n;
        if k > 0 {
            cpu_rounds.push(c1 - c0);
            cpu_packs.push(c2 - c1);
            cpu_saves.push(c3 - c2);
        }
    }
    r.peak_per_block = peak_seen as f64 / n;
    let median = |v: &[f64]| crate::stats::median(v).unwrap_or(f64::NAN);
    r.cpu_round_s = median(&cpu_rounds);
    r.cpu_pack_s = median(&cpu_packs);
    r.cpu_save_s = median(&cpu_saves);
    r.sets_per_block = std::fs::metadata(&files.sets)?.len() as f64 / n;
    r.belief_per_block = std::fs::metadata(&files.belief)?.len() as f64 / n;
    drop(st);
    let tenth = (blocks / 10).max(1);
    let st = CampaignState {
        prefixes: vec![SPACE.parse()?],
        trackers: clustered(tenth),
        ..CampaignState::default()
    };
    r.sets_clustered_per_block = state::encode_sets(&st, 1).len() as f64 / f64::from(tenth);
    Ok(r)
}
