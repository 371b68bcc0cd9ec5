//! The discovery-sweep benchmark: darkwatch-agent, fping, zmap and scamper
//! sweep the same lab prefix, alternating, `reps` times each. Wall time is
//! measured around the child, CPU time from `getrusage(RUSAGE_CHILDREN)`
//! deltas (`ip netns exec` execs the tool, so the tool is that child).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ipnet::Ipv4Net;
use nix::sys::resource::{getrusage, UsageWho};

use crate::netlab::{SweepLab, PROBER_ADDR};
use crate::stats::{self, median, Accuracy, BlockCounts};

/// The tools compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Darkwatch,
    Fping,
    Zmap,
    Scamper,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Darkwatch => "darkwatch-agent",
            Tool::Fping => "fping",
            Tool::Zmap => "zmap",
            Tool::Scamper => "scamper",
        }
    }
}

/// One run of one tool.
#[derive(Debug, Clone)]
pub struct Run {
    pub wall: Duration,
    pub cpu: Duration,
    pub completed: bool,
    pub accuracy: Accuracy,
    pub probes: u64,
    pub note: String,
}

/// Medians over the repetitions of one tool.
#[derive(Debug, Clone)]
pub struct Summary {
    pub tool: Tool,
    pub wall_s: Option<f64>,
    pub cpu_s: Option<f64>,
    pub pps: Option<f64>,
    pub share: Option<f64>,
    pub false_positives: u64,
    pub completed: String,
    pub note: String,
}

pub struct SweepConfig {
    pub space: Ipv4Net,
    pub silent_share: f64,
    pub reps: usize,
    pub timeout_ms: u64,
    pub agent: PathBuf,
    pub tools: Vec<Tool>,
    pub dw_pps: u32,
}

fn cpu_children() -> Duration {
    match getrusage(UsageWho::RUSAGE_CHILDREN) {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| {
                Duration::new(
                    tv.tv_sec().max(0) as u64,
                    (tv.tv_usec().max(0) as u32) * 1000,
                )
            };
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

/// Runs `cmd`, capturing stdout to a file; returns (wall, cpu, success, stdout, stderr).
fn timed(mut cmd: Command, out: &Path) -> Result<(Duration, Duration, bool, String, String)> {
    let file = std::fs::File::create(out)?;
    let cpu0 = cpu_children();
    let t0 = Instant::now();
    let o = cmd
        .stdout(Stdio::from(file))
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .output()
        .context("cannot start the tool")?;
    let wall = t0.elapsed();
    let cpu = cpu_children().saturating_sub(cpu0);
    let stdout = std::fs::read_to_string(out).unwrap_or_default();
    Ok((
        wall,
        cpu,
        o.status.success(),
        stdout,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    ))
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .chars()
        .take(80)
        .collect()
}

fn run_tool(
    tool: Tool,
    lab: &SweepLab,
    cfg: &SweepConfig,
    dir: &Path,
    silent: &BTreeSet<u32>,
) -> Result<Run> {
    let space = cfg.space.to_string();
    let timeout_ms = cfg.timeout_ms.to_string();
    let out = dir.join(format!("{}.out", tool.name()));
    // What the tool is asked to probe: the whole space, except fping's `-g`,
    // which leaves out the network and broadcast addresses of the prefix.
    let mut probed_count = cfg.space.hosts().count() as u64;
    if cfg.space.prefix_len() < 31 {
        probed_count += 2;
    }
    let (cmd, truth) = match tool {
        Tool::Darkwatch => {
            let pps = cfg.dw_pps.to_string();
            let agent = cfg.agent.display().to_string();
            let mut c = lab.in_prober(&[
                &agent,
                "probe",
                "--json",
                "--pps",
                &pps,
                "--timeout-ms",
                &timeout_ms,
                "--allow",
                &space,
                &space,
            ]);
            c.env("RUST_LOG", "warn");
            (c, stats::truth_of(&[cfg.space], silent))
        }
        Tool::Fping => {
            let secs = "0";
            let c = lab.in_prober(&[
                "fping",
                "-a",
                "-q",
                "-i",
                secs,
                "-r",
                "0",
                "-t",
                &timeout_ms,
                "-g",
                &space,
            ]);
            let hosts: Vec<Ipv4Net> = cfg
                .space
                .hosts()
                .map(|h| Ipv4Net::new(h, 32).expect("a /32"))
                .collect();
            probed_count = hosts.len() as u64;
            (c, stats::truth_of(&hosts, silent))
        }
        Tool::Zmap => {
            let empty = dir.join("empty-blocklist.txt");
            std::fs::write(&empty, "")?;
            let cooldown = cfg.timeout_ms.div_ceil(1000).max(1).to_string();
            let c = lab.in_prober(&[
                "zmap",
                "-M",
                "icmp_echoscan",
                "-r",
                "0",
                "-c",
                &cooldown,
                "-q",
                "--disable-syslog",
                "-i",
                &lab.prober_if,
                "-G",
                &lab.gateway_mac,
                "-S",
                PROBER_ADDR,
                "-b",
                &empty.display().to_string(),
                "-o",
                "-",
                &space,
            ]);
            (c, stats::truth_of(&[cfg.space], silent))
        }
        Tool::Scamper => {
            let list = dir.join("scamper-targets.txt");
            let text: String = (u32::from(cfg.space.network())..=u32::from(cfg.space.broadcast()))
                .map(|a| format!("{}\n", std::net::Ipv4Addr::from(a)))
                .collect();
            std::fs::write(&list, text)?;
            let wait = cfg.timeout_ms.div_ceil(1000).max(1).to_string();
            let ping = format!("ping -c 1 -W {wait}");
            let c = lab.in_prober(&[
                "scamper",
                "-O",
                "json",
                "-p",
                "10000",
                "-c",
                &ping,
                "-f",
                &list.display().to_string(),
            ]);
            (c, stats::truth_of(&[cfg.space], silent))
        }
    };
    let (wall, cpu, ok, stdout, stderr) = timed(cmd, &out)?;
    let found: BlockCounts = match tool {
        Tool::Darkwatch => stats::parse_darkwatch(&stdout),
        Tool::Fping | Tool::Zmap => stats::count_addrs(stats::parse_addr_lines(&stdout)),
        Tool::Scamper => stats::count_addrs(stats::parse_scamper_json(&stdout)),
    };
    let accuracy = stats::score(&found, &truth);
    // fping exits 1 when some hosts are unreachable: that is a finished sweep.
    let completed = match tool {
        Tool::Fping => !stderr.contains("not enough sequence numbers") && accuracy.found > 0,
        _ => ok,
    };
    Ok(Run {
        wall,
        cpu,
        completed,
        accuracy,
        probes: probed_count,
        note: if completed {
            String::new()
        } else {
            last_line(&stderr)
        },
    })
}

fn summarize(tool: Tool, runs: &[Run]) -> Summary {
    let done: Vec<&Run> = runs.iter().filter(|r| r.completed).collect();
    let med = |f: &dyn Fn(&Run) -> f64| median(&done.iter().map(|r| f(r)).collect::<Vec<_>>());
    Summary {
        tool,
        wall_s: med(&|r| r.wall.as_secs_f64()),
        cpu_s: med(&|r| r.cpu.as_secs_f64()),
        pps: med(&|r| r.probes as f64 / r.wall.as_secs_f64().max(1e-9)),
        share: med(&|r| r.accuracy.share()),
        false_positives: runs
            .iter()
            .map(|r| r.accuracy.false_positives)
            .max()
            .unwrap_or(0),
        completed: format!("{}/{}", done.len(), runs.len()),
        note: runs
            .iter()
            .map(|r| r.note.clone())
            .find(|n| !n.is_empty())
            .unwrap_or_default(),
    }
}

/// Runs the whole sweep benchmark for one space.
pub fn bench(cfg: &SweepConfig) -> Result<Vec<Summary>> {
    let silent = stats::silent_blocks(cfg.space, cfg.silent_share, 0x5eed);
    let lab = SweepLab::build(cfg.space, &silent)?;
    let dir = tempfile::tempdir()?;
    let mut runs: Vec<(Tool, Vec<Run>)> = cfg.tools.iter().map(|t| (*t, Vec::new())).collect();
    for rep in 0..cfg.reps {
        for (tool, list) in runs.iter_mut() {
            let r = run_tool(*tool, &lab, cfg, dir.path(), &silent)
                .with_context(|| format!("{} sweep of {}", tool.name(), cfg.space))?;
            eprintln!(
                "  {} rep {}: {:.2} s wall, {:.2} s cpu, {}/{} found, completed {}{}",
                tool.name(),
                rep + 1,
                r.wall.as_secs_f64(),
                r.cpu.as_secs_f64(),
                r.accuracy.found,
                r.accuracy.truth,
                r.completed,
                if r.note.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", r.note)
                }
            );
            list.push(r);
            // Let the lab drain between tools.
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    Ok(runs.iter().map(|(t, rs)| summarize(*t, rs)).collect())
}
