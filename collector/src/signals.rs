//! Per-round signals: the share of blocks up per scope (country or
//! campaign, origin AS, prefix) and VP, from the summaries each correlation
//! pass stores, never by recorrelating.
//!
//! Writing (`write`): [`store_summary_rounds`] runs after each pass. It rewrites the rounds
//! whose input changed, from the earliest such round to the end of the
//! window, and no other: a round's summaries depend on that round's reports
//! and, through each VP's baseline (health), on the rounds before it, never
//! on later ones. A late report (a spool draining after an outage) changes
//! its round's digest, so that round and every later one are rewritten; a
//! round whose reports did not change keeps the summaries computed when it
//! was last written, with the most history behind it (the window sliding
//! past its baseline does not rewrite it). Digests also cover the campaign's
//! prefixes, origins and the correlation parameters, so changing those
//! rewrites the window once. The first pass of a collector over an old
//! database writes the whole window. A pass writes at most
//! [`MAX_ROWS_PER_PASS`] rows and forgets the digests of the rounds it
//! leaves, so the next passes go on from there (a cascade from a late round
//! is never cut short).
//!
//! Reading: [`signals`] (`GET /v1/signals`, `darkwatch-collector signals`),
//! [`timeline`] (`GET /v1/timeline`, `timeline`) and [`scope_gauges`]
//! (`/metrics`). Query parsing is pure and shared by the API and the CLI.

use std::fmt::Write as _;
use std::ops::RangeInclusive;

use darkwatch_correlate::{Kind, Scope};
use darkwatch_schema::inputs::asnames::AsNames;
use darkwatch_schema::{round_of, round_start_ms};
use serde::{Deserialize, Serialize};

use crate::correlation::feed::top_target;
use crate::store::{ScopeSummary, Store, StoreError, SummaryKey};

/// Most rounds one signals request returns (a week of 1-minute rounds).
pub const MAX_ROUNDS: u64 = 10_080;

/// Default range of a signals request: the last 24 hours (fewer if that is
/// more than [`MAX_ROUNDS`] rounds).
pub const DEFAULT_RANGE_MS: i64 = 24 * 3_600_000;

/// Prefix scopes exposed per campaign on `/metrics`: beyond this the
/// campaign's prefix series are left out (one series per prefix is a
/// cardinality risk for Prometheus); country/campaign and AS series stay.
pub const METRICS_MAX_PREFIXES: usize = 100;

// ---------- the signals query ----------

/// A parsed signals request (`GET /v1/signals`, `darkwatch-collector signals`).
#[derive(Debug, Clone, PartialEq)]
pub struct SignalsQuery {
    pub scope: Scope,
    /// Normalized: upper-case country, `AS64500`, canonical prefix.
    pub target: String,
    pub campaign: Option<String>,
    pub from_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Only these VPs in `per_vp` (all when empty).
    pub vps: Vec<String>,
}

/// Parses a scope name as the API spells it.
pub fn parse_scope(s: &str) -> Result<Scope, String> {
    match s {
        "country" => Ok(Scope::Country),
        "campaign" => Ok(Scope::Campaign),
        "asn" => Ok(Scope::Asn),
        "unrouted" => Ok(Scope::Unrouted),
        "prefix" => Ok(Scope::Prefix),
        _ => Err(format!(
            "scope={s:?} is not one of country, campaign, asn, unrouted, prefix"
        )),
    }
}

/// The stored spelling of a target: `KP`, `AS64500` (from `64500`,
/// `as64500`), a prefix in canonical form.
pub fn normalize_target(scope: Scope, t: &str) -> Result<String, String> {
    let t = t.trim();
    let bad = |why: &str| Err(format!("target={t:?} {why}"));
    match scope {
        Scope::Country if t.len() == 2 && t.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Ok(t.to_ascii_uppercase())
        }
        Scope::Country => bad("is not a two-letter country code"),
        Scope::Asn => {
            let n = t
                .strip_prefix("AS")
                .or_else(|| t.strip_prefix("as"))
                .unwrap_or(t);
            match n.parse::<u32>() {
                Ok(n) => Ok(format!("AS{n}")),
                Err(_) => bad("is not an AS number (AS64500 or 64500)"),
            }
        }
        Scope::Prefix => match t.parse::<ipnet::IpNet>() {
            Ok(n) if n == n.trunc() => Ok(n.to_string()),
            Ok(n) => bad(&format!("has host bits set (did you mean {}?)", n.trunc())),
            Err(_) => bad("is not a prefix such as 175.45.176.0/24"),
        },
        Scope::Unrouted if t == darkwatch_correlate::UNROUTED => Ok(t.to_string()),
        Scope::Unrouted => bad("is not `unrouted`"),
        Scope::Campaign | Scope::Block if t.is_empty() => bad("is empty"),
        Scope::Campaign | Scope::Block => Ok(t.to_string()),
    }
}

impl SignalsQuery {
    /// From query pairs (`vp` repeatable or comma-separated); names the
    /// offending parameter on error. Times in [`crate::timespec`]'s syntax,
    /// ages counted back from `now_ms`.
    pub fn from_pairs(pairs: &[(String, String)], now_ms: i64) -> Result<SignalsQuery, String> {
        let (mut scope, mut target, mut campaign, mut from, mut until) =
            (None, None, None, None, None);
        let mut vps = Vec::new();
        for (k, v) in pairs {
            let once = |slot: &Option<String>| match slot {
                Some(_) => Err(format!("query parameter {k} is given twice")),
                None => Ok(Some(v.clone())),
            };
            match k.as_str() {
                "scope" => scope = once(&scope)?,
                "target" => target = once(&target)?,
                "campaign" => campaign = once(&campaign)?,
                "from" => from = once(&from)?,
                "until" => until = once(&until)?,
                "vp" => vps.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from),
                ),
                _ => {
                    return Err(format!(
                        "unknown query parameter {k:?} (scope, target, campaign, from, until, vp)"
                    ))
                }
            }
        }
        let scope = parse_scope(&scope.ok_or("query parameter scope is required")?)?;
        let target = normalize_target(scope, &target.ok_or("query parameter target is required")?)?;
        let time = |name: &str, v: Option<String>| {
            v.map(|s| {
                crate::timespec::parse_time(&s, now_ms)
                    .map_err(|e| format!("query parameter {name}: {e}"))
            })
            .transpose()
        };
        Ok(SignalsQuery {
            scope,
            target,
            campaign,
            from_ms: time("from", from)?,
            until_ms: time("until", until)?,
            vps,
        })
    }
}

/// One VP's or the consensus's counts in a round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub blocks_judged: u64,
    pub blocks_up: u64,
    /// `blocks_up / blocks_judged`, null when nothing was judged.
    pub share_up: Option<f64>,
    pub probes: u64,
    pub replies: u64,
}

impl From<&ScopeSummary> for Counts {
    fn from(s: &ScopeSummary) -> Counts {
        Counts {
            blocks_judged: s.blocks_judged,
            blocks_up: s.blocks_up,
            share_up: (s.blocks_judged > 0).then(|| s.blocks_up as f64 / s.blocks_judged as f64),
            probes: s.probes,
            replies: s.replies,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VpCounts {
    pub vp: String,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalRound {
    pub round: u64,
    pub start_ms: i64,
    /// The consensus of the healthy VPs (probes and replies: every VP's).
    #[serde(flatten)]
    pub counts: Counts,
    pub per_vp: Vec<VpCounts>,
}

/// The answer of `GET /v1/signals`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalsJson {
    pub scope: Scope,
    pub target: String,
    /// What people call the target (`crate::names`), null when unknown.
    #[serde(default)]
    pub name: Option<String>,
    pub campaign: String,
    pub interval_secs: u64,
    pub rounds: Vec<SignalRound>,
}

/// Why a signals request has no answer.
#[derive(Debug, thiserror::Error)]
pub enum SignalsError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The campaign a query is about: the one named, or the only one with
/// summaries for its scope and target.
async fn resolve_campaign<S: Store>(store: &S, q: &SignalsQuery) -> Result<String, SignalsError> {
    let keys = store.summary_scopes(q.campaign.as_deref()).await?;
    let mut names: Vec<&str> = keys
        .iter()
        .filter(|k| k.scope == q.scope && k.target == q.target)
        .map(|k| k.campaign.as_str())
        .collect();
    names.dedup();
    match names.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(SignalsError::NotFound(format!(
            "no summaries for scope={} target={}{} (GET /v1/scopes lists those that have some)",
            crate::views::label(&q.scope),
            q.target,
            q.campaign
                .as_deref()
                .map(|c| format!(" in campaign {c}"))
                .unwrap_or_default()
        ))),
        many => Err(SignalsError::BadRequest(format!(
            "target {} is watched by campaigns {}: add campaign=NAME",
            q.target,
            many.join(", ")
        ))),
    }
}

/// The round range of a query: `from`..`until` (default: the last 24 hours
/// up to now, at most [`MAX_ROUNDS`] rounds).
pub fn round_range(
    from_ms: Option<i64>,
    until_ms: Option<i64>,
    interval_secs: u64,
    now_ms: i64,
) -> Result<RangeInclusive<u64>, String> {
    let until = until_ms.unwrap_or(now_ms);
    let last = round_of(until, interval_secs);
    let first = match from_ms {
        Some(f) => round_of(f, interval_secs),
        None => round_of(until.saturating_sub(DEFAULT_RANGE_MS), interval_secs)
            .max(last.saturating_sub(MAX_ROUNDS - 1)),
    };
    if from_ms.is_some_and(|f| f > until) {
        return Err("from is after until".into());
    }
    if last - first >= MAX_ROUNDS {
        return Err(format!(
            "from..until spans {} rounds of {interval_secs} s; a request returns at most {MAX_ROUNDS}: narrow the range",
            last - first + 1
        ));
    }
    Ok(first..=last)
}

/// Groups summary rows (ordered by round, consensus first) into rounds,
/// keeping only the VPs in `vps` (all when empty).
pub fn group_rounds(rows: &[ScopeSummary], interval_secs: u64, vps: &[String]) -> Vec<SignalRound> {
    let mut out: Vec<SignalRound> = Vec::new();
    for r in rows {
        if r.vp.is_empty() {
            out.push(SignalRound {
                round: r.round,
                start_ms: round_start_ms(r.round, interval_secs),
                counts: r.into(),
                per_vp: Vec::new(),
            });
        } else if vps.is_empty() || vps.contains(&r.vp) {
            if let Some(last) = out.last_mut().filter(|l| l.round == r.round) {
                last.per_vp.push(VpCounts {
                    vp: r.vp.clone(),
                    counts: r.into(),
                });
            }
        }
    }
    out
}

/// The interval of a campaign: as defined now, or as last summarized if it
/// was removed since.
async fn interval_of<S: Store>(store: &S, campaign: &str) -> Result<u64, StoreError> {
    if let Some(c) = store
        .list_campaigns()
        .await?
        .into_iter()
        .find(|c| c.name == campaign)
    {
        return Ok(c.interval_secs);
    }
    Ok(store
        .latest_summary_rounds()
        .await?
        .into_iter()
        .find(|(c, _)| c == campaign)
        .map_or(600, |(_, r)| r.interval_secs))
}

/// Answers a signals query from the stored summaries.
pub async fn signals<S: Store>(
    store: &S,
    q: &SignalsQuery,
    now_ms: i64,
    as_names: &AsNames,
) -> Result<SignalsJson, SignalsError> {
    let campaign = resolve_campaign(store, q).await?;
    let interval_secs = interval_of(store, &campaign).await?;
    let rounds = round_range(q.from_ms, q.until_ms, interval_secs, now_ms)
        .map_err(SignalsError::BadRequest)?;
    let rows = store
        .scope_summaries(&campaign, q.scope, &q.target, rounds)
        .await?;
    Ok(SignalsJson {
        scope: q.scope,
        target: q.target.clone(),
        name: crate::names::name_of(as_names, q.scope, &q.target),
        campaign,
        interval_secs,
        rounds: group_rounds(&rows, interval_secs, &q.vps),
    })
}

/// The CSV header of `darkwatch-collector signals --format csv`.
pub const CSV_HEADER: &str =
    "campaign,scope,target,round,start_ms,start,vp,blocks_judged,blocks_up,share_up,probes,replies,name";

/// One CSV line per round and VP, the consensus first with an empty `vp`.
pub fn to_csv(s: &SignalsJson) -> String {
    let field = |v: &str| {
        if v.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", v.replace('"', "\"\""))
        } else {
            v.to_string()
        }
    };
    let mut out = format!("{CSV_HEADER}\n");
    let scope = crate::views::label(&s.scope);
    for r in &s.rounds {
        let start = crate::views::rfc3339(r.start_ms);
        let rows = std::iter::once(("", &r.counts))
            .chain(r.per_vp.iter().map(|v| (v.vp.as_str(), &v.counts)));
        for (vp, c) in rows {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{},{}",
                field(&s.campaign),
                scope,
                field(&s.target),
                r.round,
                r.start_ms,
                start,
                field(vp),
                c.blocks_judged,
                c.blocks_up,
                c.share_up.map(|x| x.to_string()).unwrap_or_default(),
                c.probes,
                c.replies,
                field(s.name.as_deref().unwrap_or_default())
            );
        }
    }
    out
}

/// One JSON object per line: each element of `rounds`, as the API gives it.
pub fn to_jsonl(s: &SignalsJson) -> Result<String, serde_json::Error> {
    let mut out = String::new();
    for r in &s.rounds {
        out.push_str(&serde_json::to_string(r)?);
        out.push('\n');
    }
    Ok(out)
}

/// The scopes with summaries (`GET /v1/scopes`).
pub async fn scopes<S: Store>(
    store: &S,
    campaign: Option<&str>,
) -> Result<Vec<SummaryKey>, StoreError> {
    store.summary_scopes(campaign).await
}

// ---------- the timeline ----------

/// Per round, the top scope's share of blocks up, overall and per VP, for
/// every campaign of `country` (or every campaign): the last `window_rounds`
/// rounds up to now, from the stored summaries.
pub async fn timeline<S: Store>(
    store: &S,
    country: Option<&str>,
    window_rounds: u64,
    now_ms: i64,
) -> Result<Vec<crate::views::TimelineJson>, StoreError> {
    let mut out = Vec::new();
    for c in store.list_campaigns().await? {
        if country.is_some_and(|cc| {
            !c.country
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(cc))
        }) {
            continue;
        }
        let (target, is_country) = top_target(&c);
        let scope = if is_country {
            Scope::Country
        } else {
            Scope::Campaign
        };
        let last = round_of(now_ms, c.interval_secs);
        let first = last.saturating_sub(window_rounds.max(1) - 1);
        let rows = store
            .scope_summaries(&c.name, scope, &target, first..=last)
            .await?;
        let vantage_points: Vec<String> = rows
            .iter()
            .filter(|r| !r.vp.is_empty())
            .map(|r| r.vp.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let rounds = group_rounds(&rows, c.interval_secs, &[])
            .into_iter()
            .map(|r| crate::views::TimelineRowJson {
                round: r.round,
                time: crate::views::rfc3339(r.start_ms),
                overall: r.counts.share_up,
                per_vp: vantage_points
                    .iter()
                    .map(|vp| {
                        let share = r.per_vp.iter().find(|v| &v.vp == vp);
                        (vp.clone(), share.and_then(|v| v.counts.share_up))
                    })
                    .collect(),
            })
            .collect();
        out.push(crate::views::TimelineJson {
            campaign: c.name.clone(),
            target,
            vantage_points,
            rounds,
        });
    }
    Ok(out)
}

// ---------- gauges ----------

/// What `/metrics` exposes per watched scope, read from summaries and
/// verdicts at scrape time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScopeGauges {
    /// `(campaign, scope, target, blocks_judged, blocks_up)` in the latest round.
    pub scopes: Vec<(String, Scope, String, u64, u64)>,
    /// `(campaign, kind, scope, target)` per open verdict.
    pub verdicts_open: Vec<(String, Kind, Scope, String)>,
    /// `(agent, campaign, healthy)` for the VPs of the latest round.
    pub vp_healthy: Vec<(String, String, bool)>,
    /// `(campaign, seconds since the latest summarized round started, interval)`.
    pub rounds: Vec<(String, f64, u64)>,
}

/// Reads the gauges: for each campaign, its latest summarized round
/// (country/campaign and AS scopes, prefixes up to
/// [`METRICS_MAX_PREFIXES`]), its VPs' health then, and open verdicts.
pub async fn scope_gauges<S: Store>(store: &S, now_ms: i64) -> Result<ScopeGauges, StoreError> {
    let mut g = ScopeGauges::default();
    let latest_rounds = store.latest_summary_rounds().await?;
    // Only faults still open or ended after the oldest latest round matter.
    let since = latest_rounds
        .iter()
        .map(|(_, r)| round_start_ms(r.round, r.interval_secs))
        .min()
        .unwrap_or(i64::MAX);
    let faults = store.list_vp_faults(None, Some(since)).await?;
    for (campaign, latest) in latest_rounds {
        let round = latest.round;
        g.rounds.push((
            campaign.clone(),
            (now_ms - round_start_ms(round, latest.interval_secs)) as f64 / 1000.0,
            latest.interval_secs,
        ));
        let mut rows = Vec::new();
        for scope in [Scope::Country, Scope::Campaign] {
            rows.extend(
                store
                    .round_summaries(&campaign, round, scope, false, usize::MAX)
                    .await?,
            );
        }
        for r in rows.iter().filter(|r| !r.vp.is_empty()) {
            let faulty = faults.iter().any(|f| {
                f.campaign == campaign
                    && f.agent == r.vp
                    && f.start_round <= round
                    && f.end_round.is_none_or(|e| e > round)
            });
            g.vp_healthy.push((r.vp.clone(), campaign.clone(), !faulty));
        }
        rows.retain(|r| r.vp.is_empty());
        rows.extend(
            store
                .round_summaries(&campaign, round, Scope::Asn, true, usize::MAX)
                .await?,
        );
        let prefixes = store
            .round_summaries(
                &campaign,
                round,
                Scope::Prefix,
                true,
                METRICS_MAX_PREFIXES + 1,
            )
            .await?;
        if prefixes.len() <= METRICS_MAX_PREFIXES {
            rows.extend(prefixes);
        }
        g.scopes.extend(
            rows.into_iter()
                .map(|r| (r.campaign, r.scope, r.target, r.blocks_judged, r.blocks_up)),
        );
    }
    // Every campaign has its top scope's series from its creation, judged
    // 0 until data comes, so that a rule can tell "no data" from no series.
    for c in store.list_campaigns().await? {
        let (target, country) = top_target(&c);
        let scope = if country {
            Scope::Country
        } else {
            Scope::Campaign
        };
        if !g
            .scopes
            .iter()
            .any(|(campaign, s, t, _, _)| *campaign == c.name && *s == scope && *t == target)
        {
            g.scopes.push((c.name.clone(), scope, target, 0, 0));
        }
    }
    g.verdicts_open = store
        .list_verdicts(None, Some(i64::MAX))
        .await?
        .into_iter()
        .filter(|v| v.end_round.is_none())
        .map(|v| (v.campaign, v.kind, v.scope, v.target))
        .collect();
    Ok(g)
}

mod write;

pub use write::{
    first_changed, last_round_within, store_summary_rounds, summary_rows, MAX_ROWS_PER_PASS,
};

#[cfg(test)]
mod tests;
