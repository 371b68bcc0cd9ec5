//! The agent's TOML configuration (`darkwatch-agent run --config agent.toml`).
//!
//! Parsing is strict (`deny_unknown_fields`): a typo in a key is an error,
//! not a silently ignored setting. `Config::validate` holds the semantic
//! checks; `darkwatch-agent validate-config` runs them without starting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Top level of `agent.toml`. Every field is documented in
/// `deploy/config/agent.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Base URL of the collector, e.g. `https://collector.example.org:8443`.
    pub collector: String,
    /// Bearer token from `darkwatch-collector agents add NAME`.
    #[serde(default)]
    pub token: Option<String>,
    /// File holding the token (preferred over `token`: keeps it out of the config).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Directory for the outgoing spool and the per-campaign probing state.
    pub spool_dir: PathBuf,
    /// Global cap on packets per second, whatever the collector asks.
    #[serde(default = "defaults::pps")]
    pub pps: u32,
    /// Largest number of addresses the agent will accept to watch.
    #[serde(default = "defaults::max_targets")]
    pub max_targets: u64,
    /// Ranges carved back out of the reserved (special-purpose) list.
    #[serde(default)]
    pub allow: Vec<IpNet>,
    /// Local exclusion list (one address or CIDR a line); never probed,
    /// whatever the collector assigns.
    #[serde(default)]
    pub exclude_file: Option<PathBuf>,
    #[serde(default)]
    pub probe: ProbeConfig,
    #[serde(default)]
    pub trace: TraceConfig,
    #[serde(default)]
    pub spool: SpoolConfig,
    #[serde(default)]
    pub report: ReportConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// How long to wait for each echo reply.
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    /// Most probes sent to one block in one round.
    #[serde(default = "defaults::max_probes")]
    pub max_probes: u32,
    /// Rounds between re-discovery sweeps of a campaign's space (0: never).
    /// A re-discovery sweeps stale and changed blocks fully and a sample of
    /// the other blocks' unknown addresses (see `rediscovery`).
    #[serde(default = "defaults::rediscover_rounds")]
    pub rediscover_rounds: u64,
    /// Re-discoveries after which a block's census is stale and it is swept
    /// fully (each block in its own re-discovery; 1: every block every time,
    /// as a first discovery does).
    #[serde(default = "defaults::rediscover_stale_after")]
    pub rediscover_stale_after: u64,
    /// Share of a block's unknown addresses a re-discovery samples, in
    /// thousandths.
    #[serde(default = "defaults::rediscover_sample_per_mille")]
    pub rediscover_sample_per_mille: u32,
    /// Slices a daemon round's probes are spread over (trinarkular's 60:
    /// each block is probed at its own instant of the interval and the
    /// packet rate stays flat). 1 probes every block at the round's start.
    #[serde(default = "defaults::slices")]
    pub slices: u32,
    /// Probes a round sends at least to each campaign, spread over its
    /// blocks: an answered block is probed on past its first reply up to
    /// its share. Costs nothing in a large campaign (a share below one
    /// probe); a country of one to a few blocks gets enough probes a round
    /// for the collector to tell heavy loss from background loss.
    #[serde(default = "defaults::min_campaign_probes")]
    pub min_campaign_probes: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceConfig {
    /// Traceroutes per campaign per round (one per prefix, rotating). 0 disables.
    #[serde(default = "defaults::traces_per_round")]
    pub per_round: usize,
    #[serde(default = "defaults::max_ttl")]
    pub max_ttl: u8,
    /// Probe rounds per traceroute (more rounds ride out packet loss).
    #[serde(default = "defaults::trace_rounds")]
    pub rounds: usize,
    /// Longest wait for silent hops in each traceroute round.
    #[serde(default = "defaults::trace_max_round_ms")]
    pub max_round_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Spool size cap; when full, the OLDEST batches are dropped (and logged)
    /// so that the newest rounds, the ones that show what is happening now,
    /// always get through.
    #[serde(default = "defaults::spool_max_bytes")]
    pub max_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// Seconds between pulls of the agent's campaign assignments.
    #[serde(default = "defaults::poll_secs")]
    pub poll_secs: u64,
    /// Longest wait between retries while the collector is unreachable.
    #[serde(default = "defaults::retry_max_secs")]
    pub retry_max_secs: u64,
    /// HTTP request timeout.
    #[serde(default = "defaults::http_timeout_secs")]
    pub http_timeout_secs: u64,
    /// Send block observations packed (a fraction of a byte per block)
    /// when the collector supports it. `false` sends plain JSON, to read
    /// batches by eye.
    #[serde(default = "defaults::packed")]
    pub packed: bool,
    /// Most blocks per packed chunk; each chunk travels in a batch of its
    /// own. Lower it if the collector's `max_body` is small.
    #[serde(default = "defaults::max_blocks_per_batch")]
    pub max_blocks_per_batch: usize,
    /// Largest clock offset from the collector (s, measured from its
    /// answers' `Date` header) at which rounds are still reported: beyond
    /// it, this host's round numbers cannot be trusted, and batches stay
    /// spooled until its clock is fixed.
    #[serde(default = "defaults::max_clock_offset_secs")]
    pub max_clock_offset_secs: u64,
}

/// The agent's own metrics (see `metrics`); both outputs are optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `GET /metrics` on this address (daemon mode only).
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Rewrite this node-exporter textfile (`*.prom`) after every round and
    /// spool drain; the way to export metrics from `run --once`.
    #[serde(default)]
    pub textfile: Option<PathBuf>,
}

mod defaults {
    pub fn max_clock_offset_secs() -> u64 {
        60
    }
    pub fn pps() -> u32 {
        500
    }
    pub fn max_targets() -> u64 {
        1 << 24
    }
    pub fn timeout_ms() -> u64 {
        1000
    }
    pub fn max_probes() -> u32 {
        15
    }
    pub fn min_campaign_probes() -> u32 {
        16
    }
    pub fn rediscover_rounds() -> u64 {
        144
    }
    pub fn rediscover_stale_after() -> u64 {
        crate::rediscovery::Rediscovery::default().stale_after
    }
    pub fn rediscover_sample_per_mille() -> u32 {
        crate::rediscovery::Rediscovery::default().sample_per_mille
    }
    pub fn traces_per_round() -> usize {
        4
    }
    pub fn max_ttl() -> u8 {
        30
    }
    pub fn trace_rounds() -> usize {
        3
    }
    pub fn trace_max_round_ms() -> u64 {
        1000
    }
    pub fn spool_max_bytes() -> u64 {
        256 << 20
    }
    pub fn poll_secs() -> u64 {
        60
    }
    pub fn retry_max_secs() -> u64 {
        300
    }
    pub fn http_timeout_secs() -> u64 {
        30
    }
    pub fn slices() -> u32 {
        crate::schedule::SLICES
    }
    pub fn packed() -> bool {
        true
    }
    pub fn max_blocks_per_batch() -> usize {
        darkwatch_schema::packed::MAX_BLOCKS_PER_PACKED
    }
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            timeout_ms: defaults::timeout_ms(),
            max_probes: defaults::max_probes(),
            rediscover_rounds: defaults::rediscover_rounds(),
            rediscover_stale_after: defaults::rediscover_stale_after(),
            rediscover_sample_per_mille: defaults::rediscover_sample_per_mille(),
            slices: defaults::slices(),
            min_campaign_probes: defaults::min_campaign_probes(),
        }
    }
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            per_round: defaults::traces_per_round(),
            max_ttl: defaults::max_ttl(),
            rounds: defaults::trace_rounds(),
            max_round_ms: defaults::trace_max_round_ms(),
        }
    }
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            max_bytes: defaults::spool_max_bytes(),
        }
    }
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            poll_secs: defaults::poll_secs(),
            retry_max_secs: defaults::retry_max_secs(),
            http_timeout_secs: defaults::http_timeout_secs(),
            packed: defaults::packed(),
            max_blocks_per_batch: defaults::max_blocks_per_batch(),
            max_clock_offset_secs: defaults::max_clock_offset_secs(),
        }
    }
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        // Relative paths are relative to the config file, not to wherever
        // cron or systemd happened to start us.
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.spool_dir = base.join(&cfg.spool_dir);
        cfg.token_file = cfg.token_file.map(|p| base.join(p));
        cfg.exclude_file = cfg.exclude_file.map(|p| base.join(p));
        cfg.metrics.textfile = cfg.metrics.textfile.map(|p| base.join(p));
        cfg.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        if !(self.collector.starts_with("http://") || self.collector.starts_with("https://")) {
            return Err(format!(
                "collector must be an http:// or https:// URL, got {:?}",
                self.collector
            ));
        }
        if self.collector.parse::<reqwest::Url>().is_err() {
            return Err(format!(
                "collector is not a valid URL: {:?}",
                self.collector
            ));
        }
        match (&self.token, &self.token_file) {
            (None, None) => return Err("set `token` or `token_file`".into()),
            (Some(_), Some(_)) => return Err("set only one of `token` and `token_file`".into()),
            _ => {}
        }
        if self.pps == 0 {
            return Err("pps must be at least 1".into());
        }
        if self.probe.timeout_ms == 0 || self.probe.timeout_ms > 60_000 {
            return Err("probe.timeout_ms must lie in 1..=60000".into());
        }
        if self.probe.slices == 0 || self.probe.slices > 3600 {
            return Err("probe.slices must lie in 1..=3600".into());
        }
        if self.probe.max_probes == 0 || self.probe.max_probes > 64 {
            return Err("probe.max_probes must lie in 1..=64".into());
        }
        if self.probe.min_campaign_probes > 1024 {
            return Err("probe.min_campaign_probes must lie in 0..=1024".into());
        }
        if self.trace.max_ttl == 0 || self.trace.max_ttl > 64 {
            return Err("trace.max_ttl must lie in 1..=64".into());
        }
        if self.trace.rounds == 0 || self.trace.rounds > 16 || self.trace.max_round_ms == 0 {
            return Err(
                "trace.rounds must lie in 1..=16 and trace.max_round_ms must be positive".into(),
            );
        }
        if self.spool.max_bytes < 1 << 20 {
            return Err("spool.max_bytes must be at least 1 MiB".into());
        }
        if self.report.poll_secs == 0
            || self.report.retry_max_secs == 0
            || self.report.http_timeout_secs == 0
            || self.report.max_clock_offset_secs == 0
        {
            return Err("report.* durations must be positive".into());
        }
        let max = darkwatch_schema::packed::MAX_BLOCKS_PER_PACKED;
        if !(1..=max).contains(&self.report.max_blocks_per_batch) {
            return Err(format!("report.max_blocks_per_batch must lie in 1..={max}"));
        }
        if let Some(p) = &self.metrics.textfile {
            // The node exporter's textfile collector reads `*.prom` only.
            if p.extension().is_none_or(|e| e != "prom") {
                return Err(format!(
                    "metrics.textfile must end in .prom (the node exporter reads only those), got {}",
                    p.display()
                ));
            }
        }
        Ok(())
    }

    /// The bearer token, read from `token_file` if that is how it was given.
    pub fn token(&self) -> Result<String, ConfigError> {
        if let Some(t) = &self.token {
            return Ok(t.trim().to_string());
        }
        let path = self
            .token_file
            .as_ref()
            .expect("validate() ensures one of token/token_file");
        let t = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let t = t.trim().to_string();
        if t.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.clone(),
                message: "token file is empty".into(),
            });
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, Path::new("/etc/darkwatch/agent.toml"))
    }

    #[test]
    fn minimal_config_gets_defaults_and_absolute_paths() {
        let c = parse(
            "collector = \"http://192.0.2.1:8080\"\ntoken = \"abc\"\nspool_dir = \"spool\"\n",
        )
        .unwrap();
        assert_eq!(c.pps, 500);
        assert_eq!(c.probe.max_probes, 15);
        assert_eq!(c.spool_dir, Path::new("/etc/darkwatch/spool"));
        assert_eq!(c.token().unwrap(), "abc");
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        let e = parse("collector = \"http://x\"\ntoken = \"a\"\nspool_dir = \"s\"\npsp = 3\n")
            .unwrap_err();
        assert!(e.to_string().contains("psp"), "{e}");
        let e = parse("collector = \"ftp://x\"\ntoken = \"a\"\nspool_dir = \"s\"\n").unwrap_err();
        assert!(e.to_string().contains("http"), "{e}");
        let e = parse("collector = \"http://x\"\nspool_dir = \"s\"\n").unwrap_err();
        assert!(e.to_string().contains("token"), "{e}");
        let e = parse("collector = \"http://x\"\ntoken = \"a\"\nspool_dir = \"s\"\npps = 0\n")
            .unwrap_err();
        assert!(e.to_string().contains("pps"), "{e}");
    }

    #[test]
    fn metrics_outputs_are_optional_and_checked() {
        const BASE: &str = "collector = \"http://x\"\ntoken = \"a\"\nspool_dir = \"s\"\n";
        let c = parse(BASE).unwrap();
        assert!(c.metrics.listen.is_none() && c.metrics.textfile.is_none());
        let c = parse(&format!(
            "{BASE}[metrics]\nlisten = \"127.0.0.1:9108\"\ntextfile = \"prom/darkwatch.prom\"\n"
        ))
        .unwrap();
        assert_eq!(c.metrics.listen, Some("127.0.0.1:9108".parse().unwrap()));
        assert_eq!(
            c.metrics.textfile.as_deref(),
            Some(Path::new("/etc/darkwatch/prom/darkwatch.prom"))
        );
        for (bad, needle) in [
            ("textfile = \"/var/lib/x.txt\"", ".prom"),
            ("listen = \"localhost\"", "listen"),
            ("listne = \"127.0.0.1:9108\"", "listne"),
        ] {
            let e = parse(&format!("{BASE}[metrics]\n{bad}\n")).unwrap_err();
            assert!(e.to_string().contains(needle), "{bad}: {e}");
        }
    }
}
