//! Retention of raw rounds: the loop deletes each held campaign's raw
//! rounds past `[retention] raw_days` after its pass, through the
//! [`VerdictSink`], in small statements so that ingest is never stalled.

use darkwatch_schema::round_of;
use serde::Deserialize;

use super::edges::VerdictSink;
use crate::store::{Campaign, StoreError};

/// Settings of raw-data retention (`[retention]` in collector.toml).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Days raw rounds (packed rounds, per-block observations, traces) are
    /// kept. Verdicts, their evidence and VP faults are kept forever.
    pub raw_days: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings { raw_days: 30 }
    }
}

/// Longest retention accepted (100 years: "forever" without overflow).
pub const MAX_RAW_DAYS: u32 = 36_500;

impl RetentionSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_RAW_DAYS).contains(&self.raw_days) {
            return Err(format!(
                "raw_days must lie in 1..={MAX_RAW_DAYS}, got {}",
                self.raw_days
            ));
        }
        Ok(())
    }

    /// The first round of a campaign kept at `now_ms`: rounds before it
    /// ended more than `raw_days` ago.
    pub fn first_kept_round(&self, now_ms: i64, interval_secs: u64) -> u64 {
        let keep_ms = i64::from(self.raw_days) * 86_400_000;
        let t = now_ms.saturating_sub(keep_ms);
        if t <= 0 {
            0
        } else {
            round_of(t, interval_secs)
        }
    }
}

/// Rows one retention statement deletes per raw table: small enough that
/// the SQLite write lock is held for milliseconds.
pub const PURGE_ROWS: u64 = 1000;
/// Statements per campaign and pass: the rest waits for the next pass.
pub const PURGE_STATEMENTS: u32 = 20;

/// Deletes a campaign's raw rounds older than the retention, in small
/// statements, yielding between them so that ingest is never stalled.
pub async fn purge_old_rounds<W: VerdictSink>(
    sink: &W,
    campaign: &Campaign,
    retention: &RetentionSettings,
    now_ms: i64,
) -> Result<u64, StoreError> {
    let before = retention.first_kept_round(now_ms, campaign.interval_secs);
    let mut deleted = 0;
    for _ in 0..PURGE_STATEMENTS {
        let n = sink
            .purge_raw_rounds(&campaign.name, before, PURGE_ROWS)
            .await?;
        deleted += n;
        if n == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_keeps_the_rounds_of_the_last_raw_days() {
        let r = RetentionSettings { raw_days: 2 };
        let day = 86_400_000i64;
        // 60 s rounds: two days are 2,880 rounds.
        assert_eq!(r.first_kept_round(10 * day, 60), 8 * 1440);
        assert_eq!(r.first_kept_round(day, 60), 0);
        assert!(r.validate().is_ok());
        assert!(RetentionSettings { raw_days: 0 }.validate().is_err());
        assert_eq!(RetentionSettings::default().raw_days, 30);
    }
}
