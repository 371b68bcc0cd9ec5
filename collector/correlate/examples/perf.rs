//! Rough timing of one correlation pass over 10k blocks x 5 VPs x 50 rounds
//! (2.5M observations) with background loss, an isolated VP and a dark
//! prefix. Run with `cargo run --release -p darkwatch-correlate --example perf`;
//! `PERF_BLOCKS`, `PERF_VPS`, `PERF_ROUNDS` override the sizes (the later goal
//! is 100000 x 10 x 100, which needs ~4 GB for the observations alone).

use std::net::Ipv4Addr;
use std::time::Instant;

use darkwatch_correlate::{correlate, BlockInfo, Input, Obs, Params, PrefixInfo};
use darkwatch_schema::BlockState;
use ipnet::{IpNet, Ipv4Net};

const BLOCKS_PER_PREFIX: usize = 16;

fn size(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Err(_) => default,
        Ok(s) => s.parse().unwrap_or_else(|_| {
            eprintln!("error: {var}={s:?} is not a number");
            std::process::exit(2)
        }),
    }
}

fn main() {
    let blocks = size("PERF_BLOCKS", 10_000) as usize;
    let vps = size("PERF_VPS", 5) as usize;
    let rounds = size("PERF_ROUNDS", 50);
    if blocks < BLOCKS_PER_PREFIX || vps == 0 || rounds == 0 || blocks > 1 << 24 {
        eprintln!("error: need 16 <= PERF_BLOCKS <= 16777216, PERF_VPS >= 1, PERF_ROUNDS >= 1");
        std::process::exit(2);
    }
    let mut input = Input {
        target: "ZZ".into(),
        is_country: true,
        vps: (0..vps).map(|v| format!("vp{v}")).collect(),
        first_round: 0,
        last_round: rounds - 1,
        ..Input::default()
    };
    // 10.0.0.0/8 holds 65536 /24s, and addresses past it wrap into 11.x and
    // beyond: these are labels only, nothing is sent anywhere.
    for p in 0..blocks / BLOCKS_PER_PREFIX {
        let base = u32::from(Ipv4Addr::new(10, 0, 0, 0)) + (p * BLOCKS_PER_PREFIX * 256) as u32;
        let net = Ipv4Net::new(Ipv4Addr::from(base), 20).expect("valid length");
        input.prefixes.push(PrefixInfo {
            net: IpNet::V4(net),
            asns: vec![64500 + (p % 20) as u32],
        });
        for i in 0..BLOCKS_PER_PREFIX {
            let block =
                Ipv4Net::new(Ipv4Addr::from(base + (i * 256) as u32), 24).expect("valid length");
            input.blocks.push(BlockInfo {
                net: IpNet::V4(block),
                prefix: p as u32,
            });
        }
    }
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for round in 0..rounds {
        for vp in 0..vps as u32 {
            for block in 0..(blocks / BLOCKS_PER_PREFIX * BLOCKS_PER_PREFIX) as u32 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let lost = x % 100 < 10;
                let dark = (vp == 0 && (20..30).contains(&round))
                    || (block < 160 && (10..20).contains(&round));
                let (state, probes, replies) = if dark {
                    (BlockState::Down, 2, 0)
                } else if lost {
                    (BlockState::Up, 2, 1)
                } else {
                    (BlockState::Up, 1, 1)
                };
                input.obs.push(Obs {
                    vp,
                    block,
                    round,
                    state,
                    probes,
                    replies,
                });
            }
        }
    }
    let params = Params::default();
    let t = Instant::now();
    let out = correlate(&input, &params);
    let took = t.elapsed();
    println!(
        "{} blocks x {} VPs x {} rounds ({} observations): {:.3} s, {} verdicts, {} VP faults",
        input.blocks.len(),
        vps,
        rounds,
        input.obs.len(),
        took.as_secs_f64(),
        out.verdicts.len(),
        out.vp_faults.len()
    );
}
