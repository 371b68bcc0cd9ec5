//! Runs the real darkwatch binaries inside the lab: a collector in the `hub`
//! namespace, agents in the VP namespaces, and the operator CLI from the root
//! namespace (it reads the same database). Used by the scenario tests and the
//! demo; nothing here is a mock.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::lab::{Lab, Node, COLLECTOR_ADDR};

/// Campaign name and country code the lab watches.
pub const CAMPAIGN: &str = "lab";
pub const COUNTRY: &str = "ZZ";

pub use darkwatch_netlab::workspace_bin;

/// Polls `f` until it returns `Some`, or fails after `timeout`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A database for one run: a SQLite file in the run's directory, or a fresh
/// PostgreSQL database (dropped on drop) when `DARKWATCH_TEST_PG` names a server.
pub struct Db {
    pub url: String,
    pg: Option<(String, String)>,
}

impl Db {
    pub fn sqlite(dir: &Path) -> Db {
        Db {
            url: dir.join("collector.sqlite").display().to_string(),
            pg: None,
        }
    }

    /// `base` is a postgres URL of a role that may create databases.
    pub fn postgres(base: &str) -> Result<Db> {
        let name = format!("dw_{}_{:08x}", std::process::id(), rand::random::<u32>());
        psql(base, &format!("CREATE DATABASE {name}"))?;
        let url = swap_db(base, &name);
        Ok(Db {
            url,
            pg: Some((base.to_string(), name)),
        })
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some((base, name)) = &self.pg {
            let _ = psql(
                base,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
}

/// The PostgreSQL server named by `DARKWATCH_TEST_PG`, or None (skip)
/// outside CI; with `CI=true` a missing server fails the test.
pub fn pg_or_skip() -> Option<String> {
    let url = std::env::var("DARKWATCH_TEST_PG")
        .ok()
        .filter(|u| !u.is_empty())
        .ok_or("DARKWATCH_TEST_PG is not set: run `bash .ci/postgres`");
    darkwatch_netlab::or_skip("PostgreSQL", url)
}

/// Replaces the database name of a postgres URL (`.../postgres?x` → `.../NAME?x`).
fn swap_db(url: &str, name: &str) -> String {
    let (head, query) = url
        .split_once('?')
        .map_or((url, None), |(h, q)| (h, Some(q)));
    let head = head
        .rsplit_once('/')
        .map_or(head.to_string(), |(h, _)| format!("{h}/{name}"));
    match query {
        Some(q) => format!("{head}?{q}"),
        None => head,
    }
}

fn psql(url: &str, sql: &str) -> Result<()> {
    let out = Command::new("psql")
        .arg(url)
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()?;
    if !out.status.success() {
        bail!(
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Lab timing: short rounds so that scenarios fit in CI's time.
#[derive(Debug, Clone)]
pub struct Timing {
    pub interval_secs: u64,
    pub correlate_every_secs: f64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            interval_secs: 4,
            correlate_every_secs: 1.0,
        }
    }
}

/// The collector, running in the lab's `hub` namespace.
pub struct Collector<'a> {
    lab: &'a Lab,
    pub db_url: String,
    pub dir: PathBuf,
    pub port: u16,
    pid: Option<i32>,
    starts: u32,
    extra: Vec<String>,
}

impl<'a> Collector<'a> {
    pub fn new(lab: &'a Lab, db_url: &str, dir: &Path, timing: &Timing) -> Result<Collector<'a>> {
        Self::new_at(lab, db_url, dir, timing, 8080, "")
    }

    /// Like [`Collector::new`], listening on `port` (several collectors can
    /// share the hub), with `correlation_extra` appended to the config's
    /// `[correlation]` table (e.g. `lease_ttl_secs = 3`).
    pub fn new_at(
        lab: &'a Lab,
        db_url: &str,
        dir: &Path,
        timing: &Timing,
        port: u16,
        correlation_extra: &str,
    ) -> Result<Collector<'a>> {
        fs::create_dir_all(dir)?;
        let cfg = dir.join("collector.toml");
        fs::write(
            &cfg,
            format!(
                "[correlation]\nevery_secs = {}\nwindow_rounds = 200\n{correlation_extra}\n",
                timing.correlate_every_secs
            ),
        )?;
        Ok(Collector {
            lab,
            db_url: db_url.to_string(),
            dir: dir.to_path_buf(),
            port,
            pid: None,
            starts: 0,
            extra: vec!["--config".into(), cfg.display().to_string()],
        })
    }

    pub fn url(&self) -> String {
        format!("http://{COLLECTOR_ADDR}:{}", self.port)
    }

    /// Process id of the running collector (None when stopped).
    pub fn pid(&self) -> Option<i32> {
        self.pid
    }

    /// Starts `serve` in the hub namespace and waits until it answers.
    pub fn start(&mut self) -> Result<()> {
        self.starts += 1;
        let log = fs::File::create(self.dir.join(format!("collector-{}.log", self.starts)))?;
        let mut cmd = self
            .lab
            .command(Node::Hub, workspace_bin("darkwatch-collector")?);
        cmd.arg("serve")
            .args([
                "--db",
                &self.db_url,
                "--listen",
                &format!("{COLLECTOR_ADDR}:{}", self.port),
            ])
            .args(&self.extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = self.lab.spawn(Node::Hub, cmd)?;
        self.pid = Some(child.id() as i32);
        // Reap the child in the background so it never lingers as a zombie.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        let url = format!("{}/v1/health", self.url());
        wait_for("the collector to answer", Duration::from_secs(30), || {
            let out = self
                .lab
                .command(Node::Hub, "curl")
                .args(["-sf", "-m", "2", &url])
                .output()?;
            Ok(out.status.success().then_some(()))
        })
    }

    /// Stops the collector: SIGKILL (a crash) or SIGTERM (an orderly stop).
    pub fn stop(&mut self, crash: bool) -> Result<()> {
        stop_group(self.pid.take(), crash, "the collector")
    }

    /// Schedules the lab country as campaign [`CAMPAIGN`]: its prefixes
    /// from a delegated-stats file written into `dir`, the lab's control
    /// prefix, rounds of `timing.interval_secs`.
    pub fn add_lab_campaign(&self, dir: &Path, timing: &Timing) -> Result<()> {
        let delegated = dir.join("delegated-lab.txt");
        fs::write(&delegated, self.lab.delegated_stats(COUNTRY))?;
        self.cli_ok(&[
            "campaign",
            "add",
            CAMPAIGN,
            "--country",
            COUNTRY,
            "--delegated",
            &delegated.display().to_string(),
            "--interval",
            &timing.interval_secs.to_string(),
            "--control",
            &self.lab.control_prefix().to_string(),
            // The lab lives in benchmarking and documentation space.
            "--allow-special-purpose",
        ])?;
        // The file is in the published format, with reserved and available
        // space between the country's prefixes and an IPv6 allocation: the
        // campaign must hold the country's IPv4 prefixes and its IPv6 one,
        // nothing else.
        let list: serde_json::Value =
            serde_json::from_str(&self.cli_ok(&["campaign", "list", "--json"])?)?;
        let got: Vec<String> = list
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == CAMPAIGN))
            .and_then(|c| c["prefixes"].as_array())
            .map(|p| {
                p.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        // Adjacent prefixes that make one allocation (four /24s of a /22)
        // are one line of the file: compare the space, not the list.
        let v4: Vec<ipnet::Ipv4Net> = got.iter().filter_map(|p| p.parse().ok()).collect();
        let mut got: Vec<String> = ipnet::Ipv4Net::aggregate(&v4)
            .iter()
            .map(|p| p.to_string())
            .chain(got.into_iter().filter(|p| p.contains(':')))
            .collect();
        got.sort();
        let mut want: Vec<String> = ipnet::Ipv4Net::aggregate(&self.lab.country_prefixes())
            .iter()
            .map(|p| p.to_string())
            .chain(["3fff:100::/32".to_string()])
            .collect();
        want.sort();
        ensure!(
            got == want,
            "campaign from the delegated file holds {got:?}, expected {want:?}"
        );
        Ok(())
    }

    /// Runs the operator CLI against the collector's database.
    pub fn cli(&self, args: &[&str]) -> Result<Output> {
        let out = Command::new(workspace_bin("darkwatch-collector")?)
            .args(args)
            .args(["--db", &self.db_url])
            .output()?;
        Ok(out)
    }

    /// Like [`Collector::cli`], failing on a non-zero exit; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.cli(args)?;
        if !out.status.success() {
            bail!(
                "darkwatch-collector {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Issues a token for a new agent.
    pub fn add_agent(&self, name: &str) -> Result<String> {
        let out = self.cli_ok(&["agents", "add", name])?;
        out.split_whitespace()
            .find(|w| w.len() >= 32 && w.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no token in `agents add` output: {out:?}"))
    }

    /// `outages --json`, parsed.
    pub fn outages(&self) -> Result<Vec<Value>> {
        let out = self.cli_ok(&["outages", "--json"])?;
        let v: Value = serde_json::from_str(&out)
            .with_context(|| format!("outages --json printed {out:?}"))?;
        v.as_array()
            .cloned()
            .ok_or_else(|| anyhow!("outages --json is not an array: {out}"))
    }

    /// `status --json`, parsed.
    pub fn status(&self) -> Result<Value> {
        Ok(serde_json::from_str(&self.cli_ok(&["status", "--json"])?)?)
    }
}

impl Drop for Collector<'_> {
    fn drop(&mut self) {
        let _ = self.stop(false);
    }
}

/// Signals the process group of `pid` (the lab spawns children in their own
/// group: the whole of it goes) and waits until `pid` is gone.
fn stop_group(pid: Option<i32>, crash: bool, what: &str) -> Result<()> {
    if let Some(pid) = pid {
        let sig = if crash {
            Signal::SIGKILL
        } else {
            Signal::SIGTERM
        };
        let _ = kill(Pid::from_raw(-pid), sig);
        wait_for(&format!("{what} to exit"), Duration::from_secs(20), || {
            Ok(kill(Pid::from_raw(pid), None).is_err().then_some(()))
        })?;
    }
    Ok(())
}

/// Prints the last `lines` lines of every `*.log` under `dir`, so that a
/// failed lab test's CI output says what the processes did.
pub fn dump_logs(dir: &Path, lines: usize) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "log") {
                let text = fs::read_to_string(&p).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(lines).collect();
                eprintln!("==== {} (last {} lines)", p.display(), tail.len());
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// Settings of a lab agent.
#[derive(Debug, Clone)]
pub struct AgentOpts {
    pub pps: u32,
    pub timeout_ms: u64,
    pub max_probes: u32,
    pub traces_per_round: usize,
}

impl Default for AgentOpts {
    fn default() -> Self {
        AgentOpts {
            pps: 2000,
            timeout_ms: 300,
            max_probes: 8,
            traces_per_round: 4,
        }
    }
}

/// An agent daemon in one VP namespace.
pub struct Agent<'a> {
    lab: &'a Lab,
    pub vp: u8,
    pub name: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pid: Option<i32>,
    starts: u32,
}

impl<'a> Agent<'a> {
    pub fn new(
        lab: &'a Lab,
        vp: u8,
        collector_url: &str,
        token: &str,
        dir: &Path,
        o: &AgentOpts,
    ) -> Result<Agent<'a>> {
        fs::create_dir_all(dir)?;
        let config = dir.join("agent.toml");
        fs::write(
            &config,
            format!(
                r#"collector = "{collector_url}"
token = "{token}"
spool_dir = "spool"
pps = {pps}
# The lab lives in the benchmarking range, which agents refuse by default.
allow = ["198.18.0.0/15"]

[probe]
timeout_ms = {timeout}
max_probes = {maxp}

[trace]
per_round = {traces}
max_ttl = 8
rounds = 2
max_round_ms = 400

[report]
poll_secs = 2
retry_max_secs = 2
http_timeout_secs = 5
"#,
                pps = o.pps,
                timeout = o.timeout_ms,
                maxp = o.max_probes,
                traces = o.traces_per_round
            ),
        )?;
        Ok(Agent {
            lab,
            vp,
            name: format!("vp{vp}"),
            dir: dir.to_path_buf(),
            config,
            pid: None,
            starts: 0,
        })
    }

    pub fn start(&mut self) -> Result<()> {
        self.starts += 1;
        let log = fs::File::create(self.dir.join(format!("agent-{}.log", self.starts)))?;
        let mut cmd = self
            .lab
            .command(Node::Vp(self.vp), workspace_bin("darkwatch-agent")?);
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = self.lab.spawn(Node::Vp(self.vp), cmd)?;
        self.pid = Some(child.id() as i32);
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        Ok(())
    }

    /// Stops the agent: SIGKILL (a crash) or SIGTERM (an orderly stop).
    pub fn stop(&mut self, crash: bool) -> Result<()> {
        stop_group(self.pid.take(), crash, "the agent")
    }

    /// Batches waiting in the agent's spool: committed files only, not a
    /// write in progress (`.tmp-*`, renamed into place once complete).
    pub fn spooled(&self) -> usize {
        fs::read_dir(self.dir.join("spool/outbox"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| is_spooled_batch(&e.path()))
                    .count()
            })
            .unwrap_or(0)
    }
}

impl Drop for Agent<'_> {
    fn drop(&mut self) {
        let _ = self.stop(false);
    }
}

/// The name of the lab's prefix-to-AS file ([`Lab::pfx2as`]).
pub const PFX2AS_FILE: &str = "routeviews-rv2-lab.pfx2as";

/// A whole lab deployment: collector, campaign over the lab country, agents.
pub struct Deployment<'a> {
    pub lab: &'a Lab,
    pub collector: Collector<'a>,
    pub agents: Vec<Agent<'a>>,
    pub timing: Timing,
    pub dir: PathBuf,
}

impl<'a> Deployment<'a> {
    /// Starts a collector on `db_url`, issues one token per VP, schedules
    /// the lab country as a campaign (from a delegated-stats file, with the
    /// lab's control prefix), and starts one agent per VP.
    pub fn start(lab: &'a Lab, db_url: &str, dir: &Path, timing: Timing) -> Result<Deployment<'a>> {
        Self::start_with(lab, db_url, dir, timing, false)
    }

    /// Like [`Deployment::start`]; with `pfx2as`, the collector groups the
    /// country's prefixes by origin AS from a file in CAIDA's published
    /// format ([`Lab::pfx2as`]), so AS-scope verdicts are made.
    pub fn start_with(
        lab: &'a Lab,
        db_url: &str,
        dir: &Path,
        timing: Timing,
        pfx2as: bool,
    ) -> Result<Deployment<'a>> {
        let file = pfx2as.then(|| PFX2AS_FILE.to_string());
        let bytes = lab.pfx2as().into_bytes();
        let file = file.as_deref().map(|f| (f, bytes.as_slice()));
        Self::start_with_pfx2as(lab, db_url, dir, timing, file)
    }

    /// Like [`Deployment::start`], with the collector's prefix-to-AS file
    /// `pfx2as` (its file name and bytes, as published: possibly
    /// compressed) if given.
    pub fn start_with_pfx2as(
        lab: &'a Lab,
        db_url: &str,
        dir: &Path,
        timing: Timing,
        pfx2as: Option<(&str, &[u8])>,
    ) -> Result<Deployment<'a>> {
        let extra = match pfx2as {
            Some((name, bytes)) => {
                let file = dir.join(name);
                fs::write(&file, bytes)?;
                format!("pfx2as = {:?}", file.display().to_string())
            }
            None => String::new(),
        };
        let mut collector =
            Collector::new_at(lab, db_url, &dir.join("collector"), &timing, 8080, &extra)?;
        collector.start()?;
        collector.add_lab_campaign(dir, &timing)?;
        let mut agents = Vec::new();
        for (i, _) in lab.vp_namespaces().iter().enumerate() {
            let vp = (i + 1) as u8;
            let token = collector.add_agent(&format!("vp{vp}"))?;
            let mut a = Agent::new(
                lab,
                vp,
                &collector.url(),
                &token,
                &dir.join(format!("vp{vp}")),
                &AgentOpts::default(),
            )?;
            a.start()?;
            agents.push(a);
        }
        Ok(Deployment {
            lab,
            collector,
            agents,
            timing,
            dir: dir.to_path_buf(),
        })
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.timing.interval_secs)
    }

    /// Sleeps `n` rounds.
    pub fn rounds(&self, n: u32) {
        std::thread::sleep(self.interval() * n);
    }

    /// Waits until every agent has reported at least one round to the
    /// collector with at least `min_up` blocks up.
    pub fn wait_reporting(&self, timeout: Duration) -> Result<()> {
        let db = self.collector.db_url.clone();
        wait_for("every agent to report", timeout, || {
            let out = Command::new(workspace_bin("darkwatch-collector")?)
                .args(["status", "--json", "--db", &db])
                .output()?;
            if !out.status.success() {
                return Ok(None);
            }
            let v: Value = serde_json::from_slice(&out.stdout)?;
            let seen = v["agents"].as_array().map_or(0, |a| {
                a.iter().filter(|a| !a["last_seen"].is_null()).count()
            });
            Ok((seen == self.agents.len()).then_some(()))
        })
    }

    /// Current verdicts (`outages --json`).
    pub fn outages(&self) -> Result<Vec<Value>> {
        self.collector.outages()
    }

    /// Stops agents then the collector (orderly).
    pub fn stop(&mut self) -> Result<()> {
        for a in &mut self.agents {
            a.stop(false)?;
        }
        self.collector.stop(false)
    }
}

/// Verdicts of `kind` at `scope` (optionally for `target`).
/// True for a committed batch file of an agent's spool outbox (`*.json`,
/// not a `.tmp-*` write that a kill may have interrupted).
pub fn is_spooled_batch(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.ends_with(".json") && !name.starts_with('.')
}

pub fn verdicts<'v>(
    all: &'v [Value],
    kind: &str,
    scope: &str,
    target: Option<&str>,
) -> Vec<&'v Value> {
    all.iter()
        .filter(|v| {
            v["kind"] == kind && v["scope"] == scope && target.is_none_or(|t| v["target"] == t)
        })
        .collect()
}

/// A per-run directory for logs and databases, kept when a test fails
/// (so its logs can be read) under `$DARKWATCH_TEST_OUT` if set.
pub fn run_dir(name: &str) -> Result<tempfile::TempDir> {
    let base = std::env::var_os("DARKWATCH_TEST_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    fs::create_dir_all(&base)?;
    Ok(tempfile::Builder::new()
        .prefix(&format!("dw-{name}-"))
        .tempdir_in(base)?)
}

/// Runs one SQL query against the run's database (sqlite3 or psql CLI) and
/// returns its rows, fields split on `|`.
pub fn db_query(db_url: &str, sql: &str) -> Result<Vec<Vec<String>>> {
    let out = if db_url.starts_with("postgres") {
        Command::new("psql")
            .arg(db_url)
            .args(["-qtA", "-F|", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()?
    } else {
        let path = db_url.strip_prefix("sqlite://").unwrap_or(db_url);
        Command::new("sqlite3")
            .args(["-readonly", path, sql])
            .output()?
    };
    if !out.status.success() {
        bail!(
            "query {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect())
}

/// The current round of the lab campaign.
pub fn current_round(interval_secs: u64) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    darkwatch_schema::round_of(now, interval_secs)
}

/// The collector's stored block observations as rows of (`agent`,
/// `campaign`, `round`, `control`, `n` blocks), whether they came plain
/// (one row each) or packed (one record per round chunk), for `FROM`.
pub const STORED_BLOCKS: &str = "(SELECT agent, campaign, round, control, COUNT(*) AS n \
     FROM observations GROUP BY agent, campaign, round, control \
     UNION ALL SELECT agent, campaign, round, 0 AS control, SUM(blocks) AS n \
     FROM round_records GROUP BY agent, campaign, round) AS stored";

/// Rounds stored per agent: `agent -> (round -> observation count)`.
pub fn stored_rounds(
    db_url: &str,
) -> Result<std::collections::BTreeMap<String, std::collections::BTreeMap<u64, u64>>> {
    let mut m: std::collections::BTreeMap<String, std::collections::BTreeMap<u64, u64>> =
        Default::default();
    let q = format!(
        "SELECT agent, round, SUM(n) FROM {STORED_BLOCKS} GROUP BY agent, round ORDER BY agent, round"
    );
    for r in db_query(db_url, &q)? {
        if r.len() == 3 {
            m.entry(r[0].clone())
                .or_default()
                .insert(r[1].parse()?, r[2].parse()?);
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_db_keeps_query() {
        assert_eq!(
            swap_db("postgres://u:p@h:5432/postgres", "x"),
            "postgres://u:p@h:5432/x"
        );
        assert_eq!(
            swap_db(
                "postgres://u:p@localhost/postgres?host=/var/run/postgresql",
                "x"
            ),
            "postgres://u:p@localhost/x?host=/var/run/postgresql"
        );
    }
}
