//! `darkwatch-demo`: the December 2014 North Korean event, replayed at lab
//! speed, end to end with the real binaries.
//!
//! Builds the lab, starts a collector (embedded SQLite) and three agents,
//! schedules the lab country from a delegated-stats file, then plays the
//! event's shape on the border: a stretch of growing instability (rising
//! loss, prefixes flapping), every prefix withdrawn (the blackout), and
//! restoration. The collector's dashboard is relayed to 127.0.0.1 of the
//! host (see `forward`), and its URL is the first line printed, so the
//! outage can be watched unfolding on the page. It prints what the collector
//! concludes as it happens and the final `outages` table, and tears
//! everything down, also on Ctrl-C; with `--keep` it leaves the lab and the
//! dashboard up until Ctrl-C.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{Context, Result};
use clap::Parser;
use darkwatch_tests::forward::Forward;
use darkwatch_tests::harness::{self, Db, Deployment, Timing, COUNTRY};
use darkwatch_tests::{Lab, LabConfig, Node, COLLECTOR_ADDR};
use serde_json::Value;

/// The collector's port inside the lab (`hub`).
const COLLECTOR_PORT: u16 = 8080;

#[derive(Debug, Parser)]
#[command(
    name = "darkwatch-demo",
    version,
    about = "Replay the shape of North Korea's December 2014 blackout in a lab of network namespaces, with the real collector and agents",
    long_about = "Replay the shape of North Korea's December 2014 blackout in a lab of \
network namespaces, with the real collector and three real agents: agents settle, \
loss grows on the border and prefixes flap, every prefix is withdrawn (the \
blackout), then restored. The collector's dashboard is served on \
http://127.0.0.1:PORT/ while the replay runs (its URL is printed first): open it \
to watch the outage unfold. Probes never leave the lab; only the dashboard is \
relayed to the host's loopback. Run as root. Ctrl-C tears everything down."
)]
struct Args {
    /// Seconds per lab round (the real event's rounds are 10 minutes; the
    /// replay lasts about 25 rounds plus the agents' start).
    #[arg(long, value_name = "SECS", default_value_t = Timing::default().interval_secs,
          value_parser = clap::value_parser!(u64).range(2..=600))]
    round_secs: u64,
    /// Port of the dashboard on the host's 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// After the replay, leave the lab, the agents and the dashboard up
    /// until Ctrl-C.
    #[arg(long)]
    keep: bool,
}

struct Watcher {
    seen: BTreeMap<String, Value>,
    t0: Instant,
}

impl Watcher {
    fn key(v: &Value) -> String {
        format!(
            "{}|{}|{}|{}",
            v["kind"], v["scope"], v["target"], v["start_round"]
        )
    }

    fn loc(v: &Value) -> String {
        match v["localization"]["last_hop"].as_str() {
            Some(h) => format!(
                "paths end at {h} ({})",
                if v["localization"]["inside_target"].as_bool() == Some(true) {
                    "inside the country"
                } else {
                    "upstream of the country"
                }
            ),
            None => "no traceroute evidence yet".into(),
        }
    }

    /// Prints verdicts that opened or closed since the last poll.
    fn poll(&mut self, d: &Deployment) -> Result<()> {
        for v in d.outages()? {
            let k = Self::key(&v);
            let t = self.t0.elapsed().as_secs();
            let was = self.seen.get(&k).cloned();
            let what = format!(
                "{} {} {}",
                v["kind"].as_str().unwrap_or("?"),
                v["scope"].as_str().unwrap_or("?"),
                v["target"].as_str().unwrap_or("?")
            );
            if was.is_none() {
                println!(
                    "[{t:>4}s] OPEN   {what}: {}/{} blocks, since {}, seen by {}; {}",
                    v["blocks_affected"],
                    v["blocks_total"],
                    v["start"].as_str().unwrap_or("?"),
                    v["vantage_points"]
                        .as_array()
                        .map(|a| a
                            .iter()
                            .filter_map(|x| x.as_str())
                            .collect::<Vec<_>>()
                            .join(","))
                        .unwrap_or_default(),
                    Self::loc(&v)
                );
            }
            if !v["end"].is_null() && was.as_ref().is_none_or(|w| w["end"].is_null()) {
                println!(
                    "[{t:>4}s] CLOSE  {what}: lasted {} s ({} rounds)",
                    v["duration_secs"],
                    v["end_round"]
                        .as_u64()
                        .unwrap_or(0)
                        .saturating_sub(v["start_round"].as_u64().unwrap_or(0))
                );
            }
            self.seen.insert(k, v);
        }
        Ok(())
    }
}

fn phase(name: &str, t0: Instant) {
    println!("[{:>4}s] ---- {name}", t0.elapsed().as_secs());
}

/// Sleeps `rounds` rounds while printing verdict changes; stops early on Ctrl-C.
fn watch(d: &Deployment, w: &mut Watcher, rounds: u32, stop: &AtomicBool) -> Result<()> {
    let until = Instant::now() + d.interval() * rounds;
    while Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            anyhow::bail!("interrupted");
        }
        w.poll(d)?;
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

fn run(args: &Args, stop: Arc<AtomicBool>) -> Result<()> {
    let t0 = Instant::now();
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let hub_port = SocketAddr::from((COLLECTOR_ADDR, COLLECTOR_PORT));
    let lab = Lab::build(LabConfig::default()).context("building the lab (run as root)")?;
    let web = Forward::start(listen, &lab.namespace(Node::Hub), hub_port)
        .context("serving the dashboard (--port picks another port)")?;
    println!(
        "dashboard: http://{}/  (open it now: it shows the outage as it unfolds)",
        web.addr()
    );
    println!(
        "lab {} built: {} VPs, country {COUNTRY} = {:?}",
        lab.prefix(),
        lab.vp_namespaces().len(),
        lab.country_prefixes()
    );
    let dir = harness::run_dir("demo")?;
    let db = Db::sqlite(dir.path());
    let timing = Timing {
        interval_secs: args.round_secs,
        ..Timing::default()
    };
    println!(
        "1 lab round = {} s (the real event: 9 h 31 min of blackout)",
        timing.interval_secs
    );
    let d = Deployment::start(&lab, &db.url, dir.path(), timing)?;
    let mut w = Watcher {
        seen: BTreeMap::new(),
        t0,
    };
    phase(
        "agents discover the country's responsive hosts and settle",
        t0,
    );
    d.wait_reporting(Duration::from_secs(60))?;
    watch(&d, &mut w, 4, &stop)?;

    phase(
        "growing instability: loss on the border rises, prefixes flap",
        t0,
    );
    let prefixes = lab.country_prefixes();
    for (i, loss) in [10.0, 20.0, 30.0].into_iter().enumerate() {
        lab.netem(Node::Border, Node::Ctry, loss, 0)?;
        lab.netem(Node::Ctry, Node::Border, loss, 0)?;
        let flap = prefixes[i % prefixes.len()];
        lab.withdraw(flap)?;
        watch(&d, &mut w, 1, &stop)?;
        lab.announce(flap)?;
        watch(&d, &mut w, 2, &stop)?;
    }

    phase("blackout: every prefix withdrawn at the border", t0);
    lab.clear_netem(Node::Border, Node::Ctry)?;
    lab.clear_netem(Node::Ctry, Node::Border)?;
    for p in &prefixes {
        lab.withdraw(*p)?;
    }
    watch(&d, &mut w, 7, &stop)?;

    phase("restoration: prefixes announced again", t0);
    for p in &prefixes {
        lab.announce(*p)?;
    }
    watch(&d, &mut w, 5, &stop)?;

    println!("\nfinal `darkwatch-collector outages`:");
    print!("{}", d.collector.cli_ok(&["outages"])?);
    println!("\ntimeline (`darkwatch-collector timeline --country {COUNTRY}`):");
    print!(
        "{}",
        d.collector.cli_ok(&["timeline", "--country", COUNTRY])?
    );
    if args.keep {
        println!(
            "\n--keep: the lab, the agents and the dashboard (http://{}/) stay up; Ctrl-C tears them down",
            web.addr()
        );
        while !stop.load(Ordering::SeqCst) {
            w.poll(&d)?;
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    drop(web);
    drop(d);
    lab.teardown()?;
    println!("lab torn down after {} s", t0.elapsed().as_secs());
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook_registry_free::SIGINT,
        signal_hook_registry_free::SIGTERM,
    ] {
        signal_hook_registry_free::flag(sig, stop.clone());
    }
    match run(&args, stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("darkwatch-demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C sets a flag that the demo's loops check, so the lab's Drop guard
/// tears everything down on the way out.
mod signal_hook_registry_free {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, OnceLock};

    pub use nix::sys::signal::Signal::{SIGINT, SIGTERM};

    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

    extern "C" fn on_signal(_: i32) {
        if let Some(f) = FLAG.get() {
            f.store(true, Ordering::SeqCst);
        }
    }

    pub fn flag(sig: nix::sys::signal::Signal, f: Arc<AtomicBool>) {
        let _ = FLAG.set(f);
        let action = nix::sys::signal::SigAction::new(
            nix::sys::signal::SigHandler::Handler(on_signal),
            nix::sys::signal::SaFlags::empty(),
            nix::sys::signal::SigSet::empty(),
        );
        #[allow(unsafe_code)]
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            let _ = nix::sys::signal::sigaction(sig, &action);
        }
    }
}
