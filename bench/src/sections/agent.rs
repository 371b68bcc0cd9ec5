//! The agent's sections: `steady` (the probing model), `memory` (heap per
//! tracked block), `agent-scale` (4.2M blocks in one process) and
//! `agent-e2e` (a real agent and collector on 127/8).

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use anyhow::Result;
use darkwatch_agent::belief::BlockTracker;
use darkwatch_agent::tracked::Trackers;
use ipnet::{IpNet, Ipv4Net};

use crate::alloc::{live, peak, reset_peak, LIVE};
use crate::{agent_e2e, agent_scale, stats, steady};
use crate::{f, yes, Args, Row};

pub(crate) fn steady_rows(rows: &mut Vec<Row>) {
    for (label, avail) in [("A = 1 (lab)", (1.0, 1.0)), ("A ∈ [0.5, 1]", (0.5, 1.0))] {
        let m = steady::Model {
            blocks: 20_000,
            rounds: 20,
            availability: avail,
            outage_share: 0.2,
        };
        let r = steady::simulate(&m, 42);
        rows.push(Row {
            what: format!("steady rounds, {label}: probes/block/round up / down"),
            darkwatch: format!(
                "{:.2} / {:.2} (false down {:.3} %, false up {:.3} %)",
                r.up_mean(),
                r.down_mean(),
                100.0 * r.false_down as f64 / r.up_rounds.max(1) as f64,
                100.0 * r.false_up as f64 / r.down_rounds.max(1) as f64
            ),
            peers: "Trinocular ≈ 1 for up blocks".into(),
            goal: "≤ 1.5 for up blocks".into(),
            met: yes(r.up_mean() <= 1.5),
        });
    }
}

pub(crate) fn memory_rows(rows: &mut Vec<Row>) {
    const N: u32 = 100_000;
    for hosts in [1u32, 16, 256] {
        let before = LIVE.load(Ordering::Relaxed);
        // What the daemon holds per campaign (`Trackers`, index-addressed;
        // a `BTreeMap` before, which cost ~20 B more per block).
        let map: Trackers = (0..N)
            .map(|b| {
                let base = (0x0a00_0000 + b) << 8;
                let block =
                    IpNet::V4(Ipv4Net::new(std::net::Ipv4Addr::from(base), 24).expect("a /24"));
                let addrs: Vec<IpAddr> =
                    (0..hosts).map(|h| IpAddr::V4((base + h).into())).collect();
                (block, BlockTracker::from_discovery(block, addrs))
            })
            .collect();
        let per = (LIVE.load(Ordering::Relaxed) - before) as f64 / f64::from(N);
        drop(map);
        rows.push(Row {
            what: format!("memory per tracked block, 100k blocks, {hosts} responsive each"),
            darkwatch: format!("{per:.0} B"),
            peers: "–".into(),
            goal: "≤ 200 B".into(),
            met: yes(per <= 200.0),
        });
    }
}

pub(crate) fn agent_scale_rows(args: &Args, rows: &mut Vec<Row>) -> Result<()> {
    eprintln!(
        "agent-scale: {} blocks, {} rounds",
        args.agent_scale_blocks, args.agent_scale_rounds
    );
    let r = agent_scale::run(
        args.agent_scale_blocks,
        args.agent_scale_rounds,
        live,
        peak,
        reset_peak,
    )?;
    let n = format!("{:.1}M blocks", r.blocks as f64 / 1e6);
    let mut row = |what: String, got: String, goal: &str, met: bool| {
        rows.push(Row {
            what: format!("agent at {n}: {what}"),
            darkwatch: got,
            peers: "–".into(),
            goal: goal.into(),
            met: yes(met),
        })
    };
    row(
        "heap per block, held / peak in a round".into(),
        format!("{:.0} B / {:.0} B", r.held_per_block, r.peak_per_block),
        "≤ 200 B",
        r.peak_per_block <= 200.0,
    );
    row(
        "CPU per round: probing (no kernel send) / packing / saving state".into(),
        format!(
            "{:.2} s / {:.2} s / {:.2} s ({} probes)",
            r.cpu_round_s, r.cpu_pack_s, r.cpu_save_s, r.probes_per_round
        ),
        "≤ 5 s in all",
        r.cpu_round_s + r.cpu_pack_s + r.cpu_save_s <= 5.0,
    );
    row(
        "state on disk per block: sets / beliefs (uniform random sets)".into(),
        format!("{:.1} B / {:.2} B", r.sets_per_block, r.belief_per_block),
        "≤ 16 B",
        r.sets_per_block + r.belief_per_block <= 16.0,
    );
    row(
        "state on disk per block: sets / beliefs (clustered sets)".into(),
        format!(
            "{:.1} B / {:.2} B",
            r.sets_clustered_per_block, r.belief_per_block
        ),
        "≤ 16 B",
        r.sets_clustered_per_block + r.belief_per_block <= 16.0,
    );
    row(
        "wire bytes per block per round (packed)".into(),
        format!("{:.3} B", r.wire_per_block),
        "≤ 1 B",
        r.wire_per_block <= 1.0,
    );
    Ok(())
}

pub(crate) fn agent_e2e_rows(args: &Args, rows: &mut Vec<Row>, detail: &mut String) -> Result<()> {
    let cfg = agent_e2e::E2eConfig {
        space: args.e2e_space,
        rounds: args.rounds,
        round_secs: args.round_secs,
        pps: args.e2e_pps,
        peer: true,
        sparse: (args.e2e_sparse > 0).then_some(args.e2e_sparse),
    };
    eprintln!(
        "agent-e2e: {} ({} rounds of {} s counted, pps {}, answering per /24: {})",
        cfg.space,
        cfg.rounds,
        cfg.round_secs,
        cfg.pps,
        cfg.sparse.map_or("all".into(), |n| n.to_string())
    );
    let r = agent_e2e::run(&cfg)?;
    let s = r.round_secs as f64;
    let n = r.blocks;
    let mut row = |what: String, got: String, peers: String, goal: &str, met: String| {
        rows.push(Row {
            what: format!(
                "agent e2e{}, {n} blocks, {}-s rounds: {what}",
                cfg.sparse
                    .map_or(String::new(), |k| format!(" sparse ({k} per /24)")),
                r.round_secs
            ),
            darkwatch: got,
            peers,
            goal: goal.into(),
            met,
        })
    };
    let secs_rounds =
        |x: Option<f64>| x.map_or("–".into(), |x| format!("{x:.0} s ({:.2} rounds)", x / s));
    row(
        "agent start to first stored round / to first round of every block / first sweep done"
            .into(),
        format!(
            "{} / {} / {}",
            secs_rounds(r.first_round_s),
            secs_rounds(r.first_full_s),
            secs_rounds(r.first_discovery_s)
        ),
        "–".into(),
        "first ≤ 2 rounds",
        yes(r.first_round_s.is_some_and(|x| x <= 2.0 * s)),
    );
    let share = agent_e2e::E2eResult::on_time_share(&r.counted, r.round_secs);
    let during = r.counted.iter().filter(|x| x.sweeping).count();
    let rediscovered = r
        .counted
        .iter()
        .any(|x| r.rediscovery_rounds.contains(&x.round));
    row(
        format!(
            "rounds reported on time, of {} counted ({} beside a sweep, rediscovery among them: {}); all rounds since start",
            r.counted.len(),
            during,
            if rediscovered { "yes" } else { "no" }
        ),
        format!(
            "{:.0} % ; {:.0} % of {} (the first, with no block yet, not counted)",
            share * 100.0,
            agent_e2e::E2eResult::on_time_share(&r.all_rounds, r.round_secs) * 100.0,
            r.all_rounds.iter().filter(|x| x.blocks > 0).count()
        ),
        "–".into(),
        "100 %, a rediscovery among them",
        yes(share >= 1.0 && rediscovered && r.counted.len() == args.rounds as usize),
    );
    row(
        "agent peak RSS".into(),
        format!(
            "{:.0} MiB ({:.0} B per block)",
            r.peak_rss_mib,
            r.peak_rss_mib * 1048576.0 / n as f64
        ),
        "–".into(),
        "–",
        "–".into(),
    );
    let (quiet, busy) = r.cpu_per_round();
    let peer_cpu = r.peer.as_ref().map(|p| p.cpu_s);
    let ratio = match (quiet, peer_cpu) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let fping = r.peer.as_ref().map_or("–".into(), |p| {
        format!(
            "fping, 1 address per /24 ({}): {:.2} CPU-s, {:.1} s wall, {} answered",
            p.addresses, p.cpu_s, p.wall_s, p.answered
        )
    });
    row(
        "agent CPU-s per round: median without a sweep / most with one".into(),
        format!("{} / {}", f(quiet, 2), f(busy, 2)),
        fping.clone(),
        "–",
        "–".into(),
    );
    // The round path's cost against fping's for the same probes, same run.
    row(
        "agent CPU per round without a sweep, as a ratio to fping's round".into(),
        ratio.map_or("–".into(), |x| format!("{x:.2}× fping")),
        fping,
        "≤ 1.2× fping",
        ratio.map_or("–".into(), |x| yes(x <= 1.2)),
    );
    let state = r.state_bytes as f64 / n as f64;
    row(
        "state on disk per block".into(),
        format!("{state:.1} B"),
        "–".into(),
        "≤ 16 B",
        yes(state <= 16.0),
    );
    let wire = r.wire_per_block();
    row(
        "wire bytes per block per round (packed columns, base64)".into(),
        format!("{} B", f(wire, 3)),
        "–".into(),
        "≤ 1 B",
        yes(wire.is_some_and(|w| w <= 1.0)),
    );
    detail.push_str(&format!(
        "\nagent-e2e rounds ({} blocks, {}-s rounds; stored = s from the round's start until the collector held every block):\n\n",
        n, r.round_secs
    ));
    let table: Vec<Vec<String>> = r
        .all_rounds
        .iter()
        .map(|x| {
            vec![
                x.round.to_string(),
                if r.counted.iter().any(|c| c.round == x.round) {
                    "yes"
                } else {
                    ""
                }
                .into(),
                x.blocks.to_string(),
                x.probes.to_string(),
                format!("{:.1}", x.took_s),
                x.on_time.to_string(),
                f(x.stored_after_s, 1),
                f(x.cpu_s, 2),
                if r.rediscovery_rounds.contains(&x.round) {
                    "rediscovery".into()
                } else if x.sweeping {
                    "first sweep".into()
                } else {
                    String::new()
                },
                x.packed_bytes.to_string(),
                x.drops.map_or("–".into(), |d| d.to_string()),
                f(x.rss_mib, 0),
            ]
        })
        .collect();
    detail.push_str(&stats::markdown_table(
        &[
            "round", "counted", "blocks", "probes", "took s", "on time", "stored s", "CPU s",
            "sweep", "packed B", "drops", "RSS MiB",
        ],
        &table,
    ));
    detail.push_str(&format!(
        "\nagent CPU in all: {:.1} s; state files {} B; the collector's `status`: {}\n",
        r.cpu_total_s,
        r.state_bytes,
        r.status_line.as_deref().unwrap_or("–")
    ));
    Ok(())
}
