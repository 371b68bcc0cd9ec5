//! Server settings: the optional `collector.toml` and how flags override it.
//!
//! Precedence is command-line flag (or its environment variable), then the
//! config file, then the built-in default. Merging is pure and tested here;
//! reading the file is the CLI's job.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

pub const DEFAULT_DB: &str = "darkwatch.sqlite";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Default cap on request bodies.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;

/// The `collector.toml` file; every key optional, unknown keys refused.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub db: Option<String>,
    pub listen: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub max_body: Option<usize>,
    /// Verdict logic and the correlation loop (`[correlation]`).
    #[serde(default)]
    pub correlation: crate::correlation::CorrelationSettings,
    /// Webhook alerts on verdict open/close (`[alerts]`).
    #[serde(default)]
    pub alerts: Option<AlertsConfig>,
    /// How long raw rounds are kept (`[retention]`).
    #[serde(default)]
    pub retention: crate::correlation::RetentionSettings,
    /// BGP input: BMP listener, watched MRT directory (`[bgp]`).
    #[serde(default)]
    pub bgp: Option<crate::bgp::settings::BgpSettings>,
}

/// `[alerts]`: defined with the alerts it configures.
pub use crate::alerts::AlertsConfig;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("config file: {0}")]
    Parse(String),
    #[error("TLS needs both a certificate and a key (got only the {0})")]
    HalfTls(&'static str),
    #[error("max_body must be at least 1024 bytes, got {0}")]
    MaxBody(usize),
    #[error("[correlation]: {0}")]
    Correlation(String),
    #[error("[retention]: {0}")]
    Retention(String),
    #[error("[alerts] webhook must be an http(s) URL, got {0:?}")]
    Webhook(String),
    #[error("[alerts]: {0}")]
    Alerts(String),
    #[error("[bgp]: {0}")]
    Bgp(String),
}

impl FileConfig {
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        // toml's message spans several lines; keep the error to one.
        toml::from_str(text)
            .map_err(|e| ConfigError::Parse(e.to_string().replace('\n', " ").trim().to_string()))
    }
}

/// Effective settings of `serve`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    pub db: String,
    pub listen: SocketAddr,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub max_body: usize,
    pub correlation: crate::correlation::CorrelationSettings,
    pub alerts: Option<AlertsConfig>,
    pub retention: crate::correlation::RetentionSettings,
    pub bgp: Option<crate::bgp::settings::BgpSettings>,
}

/// Flags as given (None = not given).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServeFlags {
    pub db: Option<String>,
    pub listen: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub max_body: Option<usize>,
}

pub fn merge(flags: ServeFlags, file: FileConfig) -> Result<ServeConfig, ConfigError> {
    let default_listen: SocketAddr = DEFAULT_LISTEN.parse().expect("constant address parses");
    let cert = flags.tls_cert.or(file.tls_cert);
    let key = flags.tls_key.or(file.tls_key);
    let tls = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (Some(_), None) => return Err(ConfigError::HalfTls("certificate")),
        (None, Some(_)) => return Err(ConfigError::HalfTls("key")),
        (None, None) => None,
    };
    let max_body = flags.max_body.or(file.max_body).unwrap_or(DEFAULT_MAX_BODY);
    if max_body < 1024 {
        return Err(ConfigError::MaxBody(max_body));
    }
    file.correlation
        .params
        .validate()
        .map_err(|e| ConfigError::Correlation(e.to_string()))?;
    if file.correlation.window_rounds == 0
        || !file.correlation.every_secs.is_finite()
        || file.correlation.every_secs <= 0.0
    {
        return Err(ConfigError::Correlation(
            "window_rounds and every_secs must be positive".into(),
        ));
    }
    if let Some(ttl) = file.correlation.lease_ttl_secs {
        // A lease shorter than a pass would lapse between renewals and hop
        // from collector to collector.
        if ttl.is_nan() || ttl <= file.correlation.every_secs {
            return Err(ConfigError::Correlation(format!(
                "lease_ttl_secs ({ttl}) must be longer than every_secs ({})",
                file.correlation.every_secs
            )));
        }
    }
    file.retention.validate().map_err(ConfigError::Retention)?;
    if let Some(a) = &file.alerts {
        if let Some(w) = a.webhook.as_ref().filter(|w| !crate::alerts::is_http(w)) {
            return Err(ConfigError::Webhook(w.clone()));
        }
        a.validate().map_err(ConfigError::Alerts)?;
    }
    if let Some(b) = &file.bgp {
        b.validate().map_err(ConfigError::Bgp)?;
    }
    Ok(ServeConfig {
        db: flags
            .db
            .or(file.db)
            .unwrap_or_else(|| DEFAULT_DB.to_string()),
        listen: flags.listen.or(file.listen).unwrap_or(default_listen),
        tls,
        max_body,
        correlation: file.correlation,
        alerts: file.alerts,
        retention: file.retention,
        bgp: file.bgp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_over_defaults() {
        let file = FileConfig::parse(
            "db = \"file.sqlite\"\nlisten = \"127.0.0.1:9000\"\nmax_body = 2048\n",
        )
        .unwrap();
        let flags = ServeFlags {
            listen: Some("127.0.0.1:7000".parse().unwrap()),
            ..Default::default()
        };
        let c = merge(flags, file).unwrap();
        assert_eq!(c.db, "file.sqlite");
        assert_eq!(c.listen.port(), 7000);
        assert_eq!(c.max_body, 2048);
        assert_eq!(c.tls, None);

        let c = merge(ServeFlags::default(), FileConfig::default()).unwrap();
        assert_eq!(c.db, DEFAULT_DB);
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.max_body, DEFAULT_MAX_BODY);
    }

    #[test]
    fn refuses_unknown_keys_and_half_tls() {
        let e = FileConfig::parse("dbb = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("dbb"), "{e}");
        assert!(!e.to_string().contains('\n'));
        let file = FileConfig {
            tls_cert: Some("c.pem".into()),
            ..Default::default()
        };
        assert_eq!(
            merge(ServeFlags::default(), file),
            Err(ConfigError::HalfTls("certificate"))
        );
        let flags = ServeFlags {
            max_body: Some(10),
            ..Default::default()
        };
        assert_eq!(
            merge(flags, FileConfig::default()),
            Err(ConfigError::MaxBody(10))
        );
    }

    #[test]
    fn lease_ttl_must_outlast_a_pass() {
        let file =
            FileConfig::parse("[correlation]\nevery_secs = 2.0\nlease_ttl_secs = 1.0\n").unwrap();
        let e = merge(ServeFlags::default(), file).unwrap_err();
        assert!(e.to_string().contains("lease_ttl_secs"), "{e}");
        let file =
            FileConfig::parse("[correlation]\nevery_secs = 2.0\nlease_ttl_secs = 6.5\n").unwrap();
        let c = merge(ServeFlags::default(), file).unwrap();
        assert_eq!(c.correlation.lease_ttl_ms(), 6500);
    }

    #[test]
    fn retention_defaults_to_30_days_and_is_validated() {
        let c = merge(ServeFlags::default(), FileConfig::default()).unwrap();
        assert_eq!(c.retention.raw_days, 30);
        let file = FileConfig::parse("[retention]\nraw_days = 7\n").unwrap();
        assert_eq!(
            merge(ServeFlags::default(), file)
                .unwrap()
                .retention
                .raw_days,
            7
        );
        for bad in ["raw_days = 0", "raw_days = 40000"] {
            let file = FileConfig::parse(&format!("[retention]\n{bad}\n")).unwrap();
            let e = merge(ServeFlags::default(), file).unwrap_err();
            assert!(e.to_string().contains("raw_days"), "{e}");
        }
        let e = FileConfig::parse("[retention]\ndays = 3\n").unwrap_err();
        assert!(e.to_string().contains("days"), "{e}");
    }

    #[test]
    fn bgp_takes_a_listener_or_a_directory_with_valid_settings() {
        let ok = |t: &str| merge(ServeFlags::default(), FileConfig::parse(t).unwrap());
        let c = ok("[bgp]\nbmp_listen = \"127.0.0.1:11019\"\n").unwrap();
        let b = c.bgp.unwrap();
        assert_eq!((b.round_secs, b.mrt_dir), (600, None));
        ok("[bgp]\nmrt_dir = \"/var/lib/mrt\"\nround_secs = 60\n").unwrap();
        for (bad, says) in [
            ("round_secs = 60", "give bmp_listen, mrt_dir"),
            ("mrt_dir = \"d\"\nround_secs = 0", "round_secs"),
            ("mrt_dir = \"d\"\nmrt_scan_secs = -1.0", "mrt_scan_secs"),
        ] {
            let e = ok(&format!("[bgp]\n{bad}\n")).unwrap_err();
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
        let e = FileConfig::parse("[bgp]\nbmp = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("bmp"), "{e}");
    }

    #[test]
    fn alerts_take_a_webhook_or_alertmanager_with_valid_settings() {
        let ok = |t: &str| merge(ServeFlags::default(), FileConfig::parse(t).unwrap());
        let c = ok("[alerts]\nalertmanager = \"http://127.0.0.1:9093\"\n").unwrap();
        let a = c.alerts.unwrap();
        assert_eq!((a.resend_secs, a.max_attempts, a.webhook), (60.0, 8, None));
        ok("[alerts]\nwebhook = \"https://h/x\"\nsecret = \"k\"\n").unwrap();
        for (bad, says) in [
            ("max_attempts = 3", "give webhook, alertmanager"),
            ("webhook = \"ftp://h\"", "webhook must be an http(s) URL"),
            ("alertmanager = \"h:9093\"", "alertmanager must be"),
            (
                "webhook = \"http://h\"\nexternal_url = \"dw\"",
                "external_url must be",
            ),
            (
                "alertmanager = \"http://h\"\nsecret = \"k\"",
                "needs webhook",
            ),
            ("webhook = \"http://h\"\nsecret = \"\"", "must not be empty"),
            (
                "webhook = \"http://h\"\nsecret = \"k\"\nsecret_file = \"f\"",
                "not both",
            ),
            (
                "alertmanager = \"http://h\"\nresend_secs = 0.5",
                "resend_secs",
            ),
        ] {
            let e = ok(&format!("[alerts]\n{bad}\n")).unwrap_err();
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
    }
}
