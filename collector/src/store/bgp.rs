//! BGP rounds of [`SqlStore`] (migration 13): the rows
//! `bgp::compact::Compactor` picks, one per prefix and round where its
//! state changed or moved, and the sessions per round. Rounds are keyed by
//! their length (`round_secs`), so a change of `[bgp] round_secs` starts a
//! new series instead of mixing two. Retention deletes rows before a cutoff
//! round (the daily keyframes keep a baseline in every kept day).

use sqlx::Row;

use super::codec::{clamp, to_u64};
use super::sql::SqlStore;
use super::StoreError;
use crate::bgp::state::{PrefixRound, RoundState};

/// A stored round's sessions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BgpSessions {
    pub round: u64,
    pub peers_up: u32,
    pub peers_known: u32,
}

fn to_u32(v: i64, what: &'static str) -> Result<u32, StoreError> {
    u32::try_from(to_u64(v, what)?).map_err(|_| StoreError::Corrupt {
        what,
        why: format!("{v} out of range"),
    })
}

impl SqlStore {
    /// Stores `round`'s sessions and the `rows` picked for it, in one
    /// transaction; a round stored again replaces its rows.
    pub async fn save_bgp_round(
        &self,
        round_secs: u64,
        round: &RoundState,
        rows: &[PrefixRound],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let (secs, r) = (clamp(round_secs), clamp(round.round));
        sqlx::query(
            "INSERT INTO bgp_sessions (round_secs, round, peers_up, peers_known)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (round_secs, round) DO UPDATE
             SET peers_up = excluded.peers_up, peers_known = excluded.peers_known",
        )
        .bind(secs)
        .bind(r)
        .bind(i64::from(round.peers_up))
        .bind(i64::from(round.peers_known))
        .execute(&mut *tx)
        .await?;
        for p in rows {
            let origins = serde_json::to_string(&p.origins).expect("a list of integers");
            sqlx::query(
                "INSERT INTO bgp_rounds (round_secs, round, prefix, announced_by, known_peers,
                    origins, announcements, withdrawals, cycles)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (round_secs, prefix, round) DO UPDATE
                 SET announced_by = excluded.announced_by, known_peers = excluded.known_peers,
                     origins = excluded.origins, announcements = excluded.announcements,
                     withdrawals = excluded.withdrawals, cycles = excluded.cycles",
            )
            .bind(secs)
            .bind(r)
            .bind(p.prefix.to_string())
            .bind(i64::from(p.announced_by))
            .bind(i64::from(p.known_peers))
            .bind(origins)
            .bind(i64::from(p.announcements))
            .bind(i64::from(p.withdrawals))
            .bind(i64::from(p.cycles))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stored rows of the rounds in `since..=to`, oldest first. `since` is
    /// before the rounds wanted by a keyframe interval or more, so that
    /// `expand` finds each prefix's baseline.
    pub async fn bgp_rows(
        &self,
        round_secs: u64,
        since: u64,
        to: u64,
    ) -> Result<Vec<(u64, PrefixRound)>, StoreError> {
        let rows = sqlx::query(
            "SELECT round, prefix, announced_by, known_peers, origins, announcements,
                    withdrawals, cycles
             FROM bgp_rounds WHERE round_secs = $1 AND round >= $2 AND round <= $3
             ORDER BY round, prefix",
        )
        .bind(clamp(round_secs))
        .bind(clamp(since))
        .bind(clamp(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let prefix: String = r.try_get("prefix")?;
                let origins: String = r.try_get("origins")?;
                let corrupt = |what: &'static str, why: String| StoreError::Corrupt { what, why };
                Ok((
                    to_u64(r.try_get("round")?, "bgp round")?,
                    PrefixRound {
                        prefix: prefix
                            .parse()
                            .map_err(|_| corrupt("bgp prefix", prefix.clone()))?,
                        announced_by: to_u32(r.try_get("announced_by")?, "bgp announced_by")?,
                        known_peers: to_u32(r.try_get("known_peers")?, "bgp known_peers")?,
                        origins: serde_json::from_str(&origins)
                            .map_err(|e| corrupt("bgp origins", e.to_string()))?,
                        announcements: to_u32(r.try_get("announcements")?, "bgp announcements")?,
                        withdrawals: to_u32(r.try_get("withdrawals")?, "bgp withdrawals")?,
                        cycles: to_u32(r.try_get("cycles")?, "bgp cycles")?,
                    },
                ))
            })
            .collect()
    }

    /// Sessions of the rounds in `from..=to`, oldest first.
    pub async fn bgp_sessions(
        &self,
        round_secs: u64,
        from: u64,
        to: u64,
    ) -> Result<Vec<BgpSessions>, StoreError> {
        let rows = sqlx::query(
            "SELECT round, peers_up, peers_known FROM bgp_sessions
             WHERE round_secs = $1 AND round >= $2 AND round <= $3 ORDER BY round",
        )
        .bind(clamp(round_secs))
        .bind(clamp(from))
        .bind(clamp(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BgpSessions {
                    round: to_u64(r.try_get("round")?, "bgp round")?,
                    peers_up: to_u32(r.try_get("peers_up")?, "bgp peers_up")?,
                    peers_known: to_u32(r.try_get("peers_known")?, "bgp peers_known")?,
                })
            })
            .collect()
    }

    /// Deletes the BGP rounds before `before_round`; returns the rows gone.
    pub async fn purge_bgp(&self, round_secs: u64, before_round: u64) -> Result<u64, StoreError> {
        let mut n = 0;
        for table in ["bgp_rounds", "bgp_sessions"] {
            n += sqlx::query(&format!(
                "DELETE FROM {table} WHERE round_secs = $1 AND round < $2"
            ))
            .bind(clamp(round_secs))
            .bind(clamp(before_round))
            .execute(&self.pool)
            .await?
            .rows_affected();
        }
        Ok(n)
    }
}
