//! The collector's sections: `correlation` (the `perf` example), `ingest`
//! (the load generator), `latency` (verdicts in the scenario lab) and
//! `scale` (a synthetic fleet's history).

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use darkwatch_netlab::workspace_bin;

use crate::{collector_scale, stats};
use crate::{f, yes, Args, Row};

pub(crate) fn correlation_rows(rows: &mut Vec<Row>) -> Result<()> {
    let perf = workspace_bin("examples/perf")
        .context("cargo build --release -p darkwatch-correlate --example perf")?;
    let out = Command::new(&perf)
        .env("PERF_BLOCKS", "100000")
        .env("PERF_VPS", "10")
        .env("PERF_ROUNDS", "100")
        .output()
        .with_context(|| {
            format!(
                "cannot run {} (cargo build --release -p darkwatch-correlate --example perf)",
                perf.display()
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let secs = text
        .split(": ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse::<f64>().ok());
    rows.push(Row {
        what: "correlation 100k blocks × 10 VPs × 100 rounds".into(),
        darkwatch: format!("{} s", f(secs, 2)),
        peers: "–".into(),
        goal: "< 2 s".into(),
        met: yes(secs.is_some_and(|s| s < 2.0)),
    });
    Ok(())
}

pub(crate) fn ingest_rows(args: &Args, rows: &mut Vec<Row>) -> Result<()> {
    let loadgen = ["darkwatch-loadgen", "loadgen"]
        .iter()
        .find_map(|n| workspace_bin(n).ok());
    let Some(loadgen) = loadgen else {
        rows.push(Row {
            what: "collector ingest, obs/s".into(),
            darkwatch: "not run: darkwatch-loadgen not built (see docs/reliability.md)".into(),
            peers: "–".into(),
            goal: "50k/s SQLite".into(),
            met: "–".into(),
        });
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let mut dbs = vec![(
        "SQLite",
        vec![
            "--db".to_string(),
            dir.path().join("ingest.db").display().to_string(),
        ],
    )];
    if let Ok(pg) = std::env::var("DARKWATCH_TEST_PG") {
        dbs.push(("PostgreSQL", vec!["--pg".into(), pg]));
    }
    for (name, db) in dbs {
        let secs = args.ingest_seconds.to_string();
        let out = Command::new(&loadgen)
            .args(&db)
            .args(["--seconds", &secs, "--json"])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Option<serde_json::Value> = text
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok());
        let rate = v.as_ref().and_then(find_rate);
        rows.push(Row {
            what: format!("collector ingest into {name}, obs/s stored (loadgen, 200 agents)"),
            darkwatch: match rate {
                Some(r) => format!("{r:.0}"),
                None => format!(
                    "failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .last()
                        .unwrap_or("")
                ),
            },
            peers: "–".into(),
            goal: if name == "SQLite" {
                "≥ 50 000/s".into()
            } else {
                "–".into()
            },
            met: if name == "SQLite" {
                yes(rate.is_some_and(|r| r >= 50_000.0))
            } else {
                "–".into()
            },
        });
    }
    Ok(())
}

/// The first `observations_per_sec` anywhere in the load generator's JSON.
pub(crate) fn find_rate(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Object(m) => m
            .get("observations_per_sec")
            .and_then(|x| x.as_f64())
            .or_else(|| m.values().find_map(find_rate)),
        serde_json::Value::Array(a) => a.iter().find_map(find_rate),
        _ => None,
    }
}

pub(crate) fn latency_rows(args: &Args, rows: &mut Vec<Row>) -> Result<()> {
    use darkwatch_tests::harness::{self, verdicts, Db, Deployment, Timing, COUNTRY};
    let lab = darkwatch_tests::Lab::build(darkwatch_tests::LabConfig::default())?;
    let dir = tempfile::tempdir()?;
    let db = Db::sqlite(dir.path());
    let mut d = Deployment::start(&lab, &db.url, dir.path(), Timing::default())?;
    d.wait_reporting(Duration::from_secs(90))?;
    d.rounds(2);
    let interval = d.interval().as_secs_f64();
    let blackout = |all: &[serde_json::Value]| {
        verdicts(all, "blackout", "country", Some(COUNTRY))
            .first()
            .map(|v| (*v).clone())
    };
    let (mut opens, mut closes) = (Vec::new(), Vec::new());
    for rep in 0..args.latency_reps {
        let t0 = Instant::now();
        for p in lab.country_prefixes() {
            lab.withdraw(p)?;
        }
        harness::wait_for("a country blackout", d.interval() * 12, || {
            Ok(d.outages()?
                .iter()
                .any(|v| blackout(std::slice::from_ref(v)).is_some() && v["end"].is_null())
                .then_some(()))
        })?;
        opens.push(t0.elapsed().as_secs_f64() / interval);
        let t1 = Instant::now();
        for p in lab.country_prefixes() {
            lab.announce(p)?;
        }
        harness::wait_for("the blackout to end", d.interval() * 12, || {
            let all = d.outages()?;
            let open = verdicts(&all, "blackout", "country", Some(COUNTRY))
                .iter()
                .any(|v| v["end"].is_null());
            Ok((!open).then_some(()))
        })?;
        closes.push(t1.elapsed().as_secs_f64() / interval);
        eprintln!(
            "  latency rep {}: open {:.2} rounds, close {:.2} rounds",
            rep + 1,
            opens[rep],
            closes[rep]
        );
        d.rounds(2);
    }
    d.stop()?;
    let max = |v: &[f64]| {
        v.iter()
            .copied()
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
    };
    rows.push(Row {
        what: format!("verdict latency, country blackout ({}-s rounds, {} reps): open / close, rounds (median, max)", interval, opens.len()),
        darkwatch: format!(
            "{} ({}) / {} ({})",
            f(stats::median(&opens), 2),
            f(max(&opens), 2),
            f(stats::median(&closes), 2),
            f(max(&closes), 2)
        ),
        peers: "–".into(),
        goal: "≤ 2 each".into(),
        met: yes(max(&opens).is_some_and(|x| x <= 2.0) && max(&closes).is_some_and(|x| x <= 2.0)),
    });
    Ok(())
}

pub(crate) fn scale_rows(args: &Args, rows: &mut Vec<Row>, detail: &mut String) -> Result<()> {
    for backend in &args.scale_db {
        let (label, postgres) = match backend.as_str() {
            "sqlite" => ("SQLite", None),
            "postgres" => (
                "PostgreSQL",
                Some(
                    std::env::var("DARKWATCH_TEST_PG")
                        .context("--scale-db postgres needs DARKWATCH_TEST_PG")?,
                ),
            ),
            other => bail!("unknown --scale-db {other:?} (sqlite, postgres)"),
        };
        let mut results = Vec::new();
        for &blocks in &args.sizes {
            let cfg = collector_scale::ScaleConfig {
                blocks,
                vps: args.scale_vps,
                rounds: args.scale_rounds,
                cap: Duration::from_secs_f64(args.scale_cap_secs),
                rss_cap_mib: args.scale_rss_cap_mib,
                postgres: postgres.clone(),
            };
            eprintln!(
                "scale, {label}: {blocks} blocks × {} VPs × {} rounds",
                cfg.vps, cfg.rounds
            );
            let r = collector_scale::run(&cfg)?;
            let what = |m: &str| format!("scale, {label}, {blocks} blocks × {} VPs: {m}", cfg.vps);
            let round_cpu = r.round.map(|w| w.cpu_text()).unwrap_or_else(|| {
                format!("{} in the first pass, unfinished", r.first_pass.cpu_text())
            });
            let row = |what: String, value: String, goal: &str, met: String| Row {
                what,
                darkwatch: value,
                peers: "–".into(),
                goal: goal.into(),
                met,
            };
            if blocks == 1_000_000 {
                rows.push(row(
                    what("CPU-seconds per 10-minute round (ingest + correlation)"),
                    round_cpu.clone(),
                    "≤ 2",
                    yes(r
                        .round
                        // Counted from before the posts: ingest included.
                        .is_some_and(|w| w.done() && w.cpu() <= 2.0)),
                ));
                rows.push(row(
                    what("collector peak RSS, MiB"),
                    r.peak_text(),
                    "≤ 2048",
                    yes(r.peak_rss_mib <= 2048.0 && r.first_pass.done()),
                ));
            }
            rows.push(row(
                what("bytes on disk per stored observation"),
                format!("{:.3}", r.bytes_per_obs),
                "≤ 1",
                yes(r.bytes_per_obs <= 1.0),
            ));
            results.push(r);
        }
        let f = |x: f64| {
            if x >= 100.0 {
                format!("{x:.0}")
            } else {
                format!("{x:.2}")
            }
        };
        let table_rows: Vec<Vec<String>> = results
            .iter()
            .map(|r| {
                vec![
                    format!("{} × {}", r.blocks, r.vps),
                    format!(
                        "{:.1} M ({:.0} s)",
                        r.history_observations as f64 / 1e6,
                        r.seed_secs
                    ),
                    format!("{:.3}", r.bytes_per_obs),
                    format!("{:.0}", r.ingest_per_sec),
                    f(r.ingest_cpu),
                    r.round
                        .map(|w| w.cpu_text())
                        .unwrap_or_else(|| "not measured".into()),
                    r.idle_cpu_per_pass.map_or("–".into(), f),
                    format!("{:.2}", r.ready_secs),
                    format!("{} / {}", r.first_pass.secs_text(), r.first_pass.cpu_text()),
                    r.peak_text(),
                ]
            })
            .collect();
        detail.push_str(&format!(
            "\nCollector at scale, {label}, {} rounds of {}-minute history, {} s passes \
         (release build when run from target/release):\n\n",
            args.scale_rounds,
            collector_scale::INTERVAL_SECS / 60,
            collector_scale::EVERY_SECS
        ));
        detail.push_str(&stats::markdown_table(
            &[
                "blocks × VPs",
                "history obs (seeded in)",
                "bytes/obs",
                "ingest obs/s",
                "ingest CPU s/round",
                "ingest + correlation CPU s/round",
                "idle CPU s/pass",
                "ready s",
                "first pass s / CPU s",
                "peak RSS MiB",
            ],
            &table_rows,
        ));
        // Ratios between successive sizes: how each figure grows with N.
        let mut ratios = Vec::new();
        for w in results.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            let cpu =
                |r: &collector_scale::ScaleResult| r.round.filter(|w| w.done()).map(|w| w.cpu());
            let ratio = |x: Option<f64>, y: Option<f64>| match (x, y) {
                (Some(x), Some(y)) if x > 0.0 => format!("× {:.1}", y / x),
                _ => "–".into(),
            };
            ratios.push(vec![
                format!("{} → {}", a.blocks, b.blocks),
                format!("× {:.1}", b.blocks as f64 / a.blocks as f64),
                ratio(cpu(a), cpu(b)),
                ratio(Some(a.ingest_cpu), Some(b.ingest_cpu)),
                ratio(
                    a.killed_at_mib.is_none().then_some(a.peak_rss_mib),
                    b.killed_at_mib.is_none().then_some(b.peak_rss_mib),
                ),
                ratio(Some(a.bytes_per_obs), Some(b.bytes_per_obs)),
            ]);
        }
        if !ratios.is_empty() {
            detail.push('\n');
            detail.push_str(&stats::markdown_table(
                &[
                    "sizes",
                    "blocks",
                    "correlation CPU/round",
                    "ingest CPU/round",
                    "peak RSS",
                    "bytes/obs",
                ],
                &ratios,
            ));
        }
    }
    Ok(())
}
