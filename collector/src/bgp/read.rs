//! The BGP signal of a scope as the CLI (`signals --source bgp`) and the
//! API (`/v1/signals?source=bgp`) serve it: parse the query, resolve the
//! scope (a country through its campaigns), read the stored rows through
//! the narrow [`BgpRows`] trait, expand and sum them ([`super::compact`],
//! [`super::signal`]).

use std::future::Future;

use super::signal::{self, BgpScope, BgpSignalRound};
use super::{compact, listen::keyframe_rounds, state::PrefixRound};
use crate::signals::SignalsError;
use crate::store::{SqlStore, Store, StoreError};

/// The stored BGP rounds (SQL in `store::bgp`).
pub trait BgpRows {
    fn bgp_rows(
        &self,
        round_secs: u64,
        since: u64,
        to: u64,
    ) -> impl Future<Output = Result<Vec<(u64, PrefixRound)>, StoreError>> + Send;
}

impl BgpRows for SqlStore {
    async fn bgp_rows(
        &self,
        round_secs: u64,
        since: u64,
        to: u64,
    ) -> Result<Vec<(u64, PrefixRound)>, StoreError> {
        SqlStore::bgp_rows(self, round_secs, since, to).await
    }
}

/// A BGP signal query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpQuery {
    pub scope: String,
    pub target: String,
    pub from_ms: i64,
    pub until_ms: i64,
    pub round_secs: u64,
}

/// One round of the answer, with its start.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BgpSignalRow {
    pub start_ms: i64,
    #[serde(flatten)]
    pub signal: BgpSignalRound,
}

/// The answer: the query echoed and the rounds, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BgpSignalJson {
    pub source: &'static str,
    pub scope: String,
    pub target: String,
    pub round_secs: u64,
    pub rounds: Vec<BgpSignalRow>,
}

/// At most this many rounds per query, as the probe signals.
pub const MAX_ROUNDS: u64 = 10_000;

impl BgpQuery {
    /// From `key=value` pairs (`source` is the caller's): scope, target,
    /// from, until (as `/v1/signals`), round_secs [600].
    pub fn from_pairs(pairs: &[(String, String)], now_ms: i64) -> Result<BgpQuery, String> {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        for (k, _) in pairs {
            if !["source", "scope", "target", "from", "until", "round_secs"].contains(&k.as_str()) {
                return Err(format!(
                    "unknown query parameter {k:?} for source=bgp (scope, target, from, until, round_secs)"
                ));
            }
        }
        let time = |k: &str| {
            get(k)
                .map(|v| {
                    crate::timespec::parse_time(&v, now_ms)
                        .map_err(|e| format!("query parameter {k}: {e}"))
                })
                .transpose()
        };
        let until_ms = time("until")?.unwrap_or(now_ms);
        let from_ms = time("from")?.unwrap_or(until_ms - 86_400_000);
        let round_secs = match get("round_secs") {
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|s| (1..=86_400).contains(s))
                .ok_or_else(|| format!("query parameter round_secs: 1 to 86400, got {v:?}"))?,
            None => 600,
        };
        Ok(BgpQuery {
            scope: get("scope").ok_or("query parameter scope is required")?,
            target: get("target").ok_or("query parameter target is required")?,
            from_ms,
            until_ms,
            round_secs,
        })
    }
}

async fn resolve<S: Store>(store: &S, q: &BgpQuery) -> Result<BgpScope, SignalsError> {
    let bad = |m: String| SignalsError::BadRequest(m);
    Ok(match q.scope.as_str() {
        "prefix" => BgpScope::Prefix(
            q.target
                .parse()
                .map_err(|_| bad(format!("target {} is not a prefix", q.target)))?,
        ),
        "asn" => BgpScope::Asn(
            q.target
                .trim_start_matches(['A', 'a'])
                .trim_start_matches(['S', 's'])
                .parse()
                .map_err(|_| bad(format!("target {} is not an AS number", q.target)))?,
        ),
        "country" => {
            let code = q.target.to_ascii_uppercase();
            let prefixes: Vec<_> = store
                .list_campaigns()
                .await?
                .into_iter()
                .filter(|c| c.country.as_deref().map(str::to_ascii_uppercase) == Some(code.clone()))
                .flat_map(|c| c.prefixes)
                .collect();
            if prefixes.is_empty() {
                return Err(SignalsError::NotFound(format!(
                    "no campaign watches country {code}"
                )));
            }
            BgpScope::Prefixes(prefixes)
        }
        other => {
            return Err(bad(format!(
                "scope {other}: BGP signals have country, asn and prefix scopes"
            )))
        }
    })
}

/// The BGP signal `q` asks for.
pub async fn bgp_signal<S: Store + BgpRows>(
    store: &S,
    q: &BgpQuery,
) -> Result<BgpSignalJson, SignalsError> {
    if q.from_ms > q.until_ms {
        return Err(SignalsError::BadRequest("from is after until".into()));
    }
    let scope = resolve(store, q).await?;
    let secs = q.round_secs;
    let first = darkwatch_schema::round_of(q.from_ms, secs);
    let last = darkwatch_schema::round_of(q.until_ms, secs);
    if last - first >= MAX_ROUNDS {
        return Err(SignalsError::BadRequest(format!(
            "{} rounds asked, at most {MAX_ROUNDS} per query",
            last - first + 1
        )));
    }
    let since = first.saturating_sub(2 * keyframe_rounds(secs));
    let rows = store.bgp_rows(secs, since, last).await?;
    let rounds = compact::expand(&rows, first, last);
    Ok(BgpSignalJson {
        source: "bgp",
        scope: q.scope.clone(),
        target: q.target.clone(),
        round_secs: secs,
        rounds: signal::signal(&scope, &rounds)
            .into_iter()
            .map(|s| BgpSignalRow {
                start_ms: darkwatch_schema::round_start_ms(s.round, secs),
                signal: s,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn queries_default_to_a_day_of_600_second_rounds_and_refuse_unknown_keys() {
        let q = BgpQuery::from_pairs(
            &pairs(&[("source", "bgp"), ("scope", "asn"), ("target", "AS65001")]),
            100_000_000,
        )
        .unwrap();
        assert_eq!(
            (q.from_ms, q.until_ms, q.round_secs),
            (13_600_000, 100_000_000, 600)
        );
        let e = BgpQuery::from_pairs(&pairs(&[("scope", "asn"), ("vp", "x")]), 0).unwrap_err();
        assert!(e.contains("unknown query parameter \"vp\""), "{e}");
        let e =
            BgpQuery::from_pairs(&pairs(&[("target", "x"), ("round_secs", "0")]), 0).unwrap_err();
        assert!(e.contains("round_secs"), "{e}");
    }
}
