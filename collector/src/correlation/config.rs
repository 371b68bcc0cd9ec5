//! Settings of the correlation loop (`[correlation]` in collector.toml),
//! apart from the loop so that the config file, the API and the checks read
//! them without depending on how the loop runs.

use darkwatch_correlate as core;
use serde::Deserialize;

/// Settings of the correlation loop (`[correlation]` in collector.toml).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorrelationSettings {
    /// Thresholds of the verdict logic.
    pub params: core::Params,
    /// Rounds looked at per pass (older verdicts are kept as stored).
    pub window_rounds: u64,
    /// Seconds between correlation passes.
    pub every_secs: f64,
    /// Optional CAIDA prefix-to-AS file, to group prefixes by origin AS.
    pub pfx2as: Option<std::path::PathBuf>,
    /// Optional AS names file (CAIDA as-org2info, or `ASN name` lines), to
    /// show AS scopes by name (`crate::names`); display only.
    pub as_names: Option<std::path::PathBuf>,
    /// Seconds the correlator lease lasts without renewal: how long a dead
    /// correlator blocks the others (default: 3 × `every_secs`, at least 3 s).
    pub lease_ttl_secs: Option<f64>,
}

impl Default for CorrelationSettings {
    fn default() -> Self {
        CorrelationSettings {
            params: core::Params::default(),
            window_rounds: 288,
            every_secs: 10.0,
            pfx2as: None,
            as_names: None,
            lease_ttl_secs: None,
        }
    }
}

impl CorrelationSettings {
    /// Lifetime of the correlator lease in milliseconds: the configured
    /// `lease_ttl_secs`, or three passes (at least 3 s) so that one slow pass
    /// does not hand the lease over.
    pub fn lease_ttl_ms(&self) -> i64 {
        match self.lease_ttl_secs {
            Some(s) if s.is_finite() && s > 0.0 => (s * 1000.0) as i64,
            _ => ((self.every_secs.max(0.1) * 3000.0) as i64).max(3000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_ttl_is_configured_or_three_passes() {
        let mut s = CorrelationSettings {
            every_secs: 2.0,
            ..Default::default()
        };
        assert_eq!(s.lease_ttl_ms(), 6000);
        s.every_secs = 0.5;
        assert_eq!(s.lease_ttl_ms(), 3000);
        s.lease_ttl_secs = Some(1.5);
        assert_eq!(s.lease_ttl_ms(), 1500);
    }
}
