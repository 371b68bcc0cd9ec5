//! CPU of incremental correlation per round at scale (the pure engine, no
//! store): N blocks (in /16 prefixes of 256 /24s) × V VPs, a window of W
//! rounds filled first, then M rounds appended one by one with the window
//! sliding (each: `set_window`, `update_round`, `output`), then one late
//! round replaced in the middle of the window.
//!
//! `cargo run --release -p darkwatch-correlate --example incremental_scale -- N V W M`
//! (defaults 100000 10 288 5). Prints CPU milliseconds per step (this
//! process's user + system time, read from /proc) and peak RSS.

use std::net::Ipv4Addr;

use darkwatch_correlate::{BlockInfo, Incremental, Input, Obs, Params, PrefixInfo};
use darkwatch_schema::BlockState;
use ipnet::{IpNet, Ipv4Net};

fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 (12 and 13 after the name).
    let ticks: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    ticks * 10.0
}

fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// One round's reports: every block up (one probe answered), 1 % of
/// reports with a lost probe first, and prefixes 0..3 dark in rounds
/// 40..45 of every 100.
fn round_obs(rng: &mut Rng, round: u64, blocks: u32, vps: u32, late: bool) -> Vec<Obs> {
    let mut obs = Vec::with_capacity((blocks * vps) as usize);
    let dark_round = (40..45).contains(&(round % 100)) || late;
    for vp in 0..vps {
        for block in 0..blocks {
            let dark = dark_round && block < 3 * 256;
            let lossy = rng.next() % 100 == 0;
            obs.push(Obs {
                vp,
                block,
                round,
                state: if dark {
                    BlockState::Down
                } else {
                    BlockState::Up
                },
                probes: if dark { 15 } else { 1 + u32::from(lossy) },
                replies: u32::from(!dark),
            });
        }
    }
    obs
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers: N V W M"))
        .collect();
    let arg = |i: usize, d: u64| args.get(i).copied().unwrap_or(d);
    let (n, v, w, m) = (
        arg(0, 100_000) as u32,
        arg(1, 10) as u32,
        arg(2, 288),
        arg(3, 5),
    );
    let np = n.div_ceil(256);
    let prefixes: Vec<PrefixInfo> = (0..np)
        .map(|p| PrefixInfo {
            net: IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000u32 + (p << 16)), 16).unwrap()),
            asns: vec![64500 + p % 50],
        })
        .collect();
    let blocks: Vec<BlockInfo> = (0..n)
        .map(|b| BlockInfo {
            net: IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000u32 + (b << 8)), 24).unwrap()),
            prefix: b / 256,
        })
        .collect();
    let campaign = Input {
        target: "XX".into(),
        is_country: true,
        prefixes,
        blocks,
        ..Input::default()
    };
    let params = Params::default();
    let mut engine = Incremental::new(&campaign, &params).expect("engine");
    let vps: Vec<String> = (0..v).map(|i| format!("vp{i:02}")).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let first = 1000u64;
    println!("incremental correlation: {n} blocks x {v} VPs, window {w} rounds, {np} prefixes");
    let (mut fill_update, mut fill_output) = (0.0, 0.0);
    let step = |engine: &mut Incremental, rng: &mut Rng, round: u64, late: bool| {
        let obs = round_obs(rng, round, n, v, late);
        let c0 = cpu_ms();
        engine.update_round(round, &vps, &obs, &[], &[], &[]);
        let c1 = cpu_ms();
        let out = engine.output();
        let c2 = cpu_ms();
        (c1 - c0, c2 - c1, out.verdicts.len())
    };
    // Fill the window (one round at a time, judged once at the end).
    let c0 = cpu_ms();
    for r in first..first + w {
        engine.set_window(first, r).unwrap();
        let obs = round_obs(&mut rng, r, n, v, false);
        let c = cpu_ms();
        engine.update_round(r, &vps, &obs, &[], &[], &[]);
        fill_update += cpu_ms() - c;
    }
    let c = cpu_ms();
    let out = engine.output();
    fill_output += cpu_ms() - c;
    println!(
        "fill: {w} rounds in {:.1} CPU-s ({:.0} ms per update_round, generation excluded); first output {:.0} ms, {} verdicts; total incl. generation {:.1} s",
        fill_update / 1000.0,
        fill_update / w as f64,
        fill_output,
        out.verdicts.len(),
        (cpu_ms() - c0) / 1000.0
    );
    let mut total = 0.0;
    for i in 0..m {
        let r = first + w + i;
        engine.set_window(r + 1 - w, r).unwrap();
        let (u, o, verdicts) = step(&mut engine, &mut rng, r, false);
        total += u + o;
        println!(
            "new round {r}: update_round {u:.0} ms + output {o:.0} ms = {:.0} CPU-ms; {} rounds recomputed; {verdicts} verdicts",
            u + o,
            engine.recomputed()
        );
    }
    println!("mean per new round: {:.0} CPU-ms", total / m.max(1) as f64);
    let late = first + w + m - 1 - w / 2;
    let (u, o, verdicts) = step(&mut engine, &mut rng, late, true);
    println!(
        "late round {late} replaced (now dark): update_round {u:.0} ms + output {o:.0} ms = {:.0} CPU-ms; {} rounds recomputed; {verdicts} verdicts",
        u + o,
        engine.recomputed()
    );
    println!("peak RSS {:.0} MiB", peak_rss_mib());
}
