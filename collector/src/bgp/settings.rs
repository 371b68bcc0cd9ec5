//! `[bgp]` in collector.toml: where BGP comes from and how it is binned.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// `[bgp]`; every key optional, unknown keys refused.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpSettings {
    /// Address of the BMP listener (RFC 7854: routers connect to it).
    pub bmp_listen: Option<SocketAddr>,
    /// Directory watched for MRT update files (RouteViews/RIS layout).
    pub mrt_dir: Option<PathBuf>,
    /// Round length in seconds: the campaigns' interval, so BGP rounds line
    /// up with probe rounds [default: 600, a campaign's default].
    #[serde(default = "default_round_secs")]
    pub round_secs: u64,
    /// How often the MRT directory is scanned for new files [default: 60].
    #[serde(default = "default_scan_secs")]
    pub mrt_scan_secs: f64,
}

fn default_round_secs() -> u64 {
    600
}

fn default_scan_secs() -> f64 {
    60.0
}

impl Default for BgpSettings {
    fn default() -> Self {
        BgpSettings {
            bmp_listen: None,
            mrt_dir: None,
            round_secs: default_round_secs(),
            mrt_scan_secs: default_scan_secs(),
        }
    }
}

impl BgpSettings {
    /// Semantic checks (the file already parsed).
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=86_400).contains(&self.round_secs) {
            return Err(format!(
                "round_secs must be 1 to 86400, got {}",
                self.round_secs
            ));
        }
        if !self.mrt_scan_secs.is_finite() || self.mrt_scan_secs <= 0.0 {
            return Err(format!(
                "mrt_scan_secs must be positive, got {}",
                self.mrt_scan_secs
            ));
        }
        if self.bmp_listen.is_none() && self.mrt_dir.is_none() {
            return Err("give bmp_listen, mrt_dir or both".into());
        }
        Ok(())
    }
}
