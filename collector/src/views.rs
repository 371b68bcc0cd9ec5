//! The read model: what `outages`, `status` and `timeline` show, as JSON
//! rows (served alike by the CLI's `--json` and the API's `/v1/...` views)
//! and as tables for people. Verdicts come from the store (the server's
//! correlation loop keeps them current); the timeline's rows are read from
//! the per-round summaries the same loop stores (`crate::signals`).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use darkwatch_correlate::{Kind, Localization, Scope};
use serde::Serialize;

use crate::causes;
use crate::fleet;
use crate::names::name_of;
use crate::store::{Campaign, ReportedTiming, Store, StoreError, Verdict};
use darkwatch_schema::inputs::asnames::AsNames;

pub(crate) fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn duration(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// A verdict as `outages --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct OutageJson {
    /// The verdict's stable identity (its row in the store).
    pub id: i64,
    pub scope: Scope,
    pub target: String,
    /// What people call the target (`crate::names`): the ISO 3166 name of
    /// a country, the AS names file's name of an AS; null when unknown.
    pub name: Option<String>,
    pub kind: Kind,
    pub campaign: String,
    pub start: String,
    pub end: Option<String>,
    pub start_round: u64,
    pub end_round: Option<u64>,
    pub duration_secs: Option<i64>,
    pub blocks_affected: u64,
    pub blocks_total: u64,
    pub prefixes: Vec<String>,
    pub vantage_points: Vec<String>,
    pub localization: Option<Localization>,
    /// A degradation's change at its worst; absent for the other kinds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
    /// The blackouts that fully explain this verdict (see [`crate::causes`]):
    /// empty for a headline, the cause, which the table and the dashboard
    /// show once with what it explains nested under it.
    pub explained_by: Vec<Cause>,
}

/// A verdict that explains another, as `outages --json` names it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cause {
    pub id: i64,
    pub scope: Scope,
    pub target: String,
    /// As [`OutageJson::name`].
    pub name: Option<String>,
    pub kind: Kind,
}

impl From<&Verdict> for OutageJson {
    fn from(v: &Verdict) -> Self {
        OutageJson {
            id: v.id,
            scope: v.scope,
            target: v.target.clone(),
            name: None,
            kind: v.kind,
            campaign: v.campaign.clone(),
            start: rfc3339(v.start_ms),
            end: v.end_ms.map(rfc3339),
            start_round: v.start_round,
            end_round: v.end_round,
            duration_secs: v.end_ms.map(|e| (e - v.start_ms) / 1000),
            blocks_affected: v.blocks_affected,
            blocks_total: v.blocks_total,
            prefixes: v.prefixes.iter().map(|p| p.to_string()).collect(),
            vantage_points: v.vantage_points.clone(),
            localization: v.localization.clone(),
            change: v.change.clone(),
            explained_by: Vec::new(),
        }
    }
}

/// Fills `explained_by` of every verdict from the whole list: a cause may
/// lie outside what a filter keeps, so this runs before filtering. Names
/// every verdict and cause from `as_names` (and ISO 3166).
pub(crate) fn with_causes(verdicts: &[Verdict], as_names: &AsNames) -> Vec<OutageJson> {
    let events: Vec<causes::Event> = verdicts
        .iter()
        .map(|v| causes::Event {
            campaign: &v.campaign,
            scope: v.scope,
            kind: v.kind,
            start_round: v.start_round,
            end_round: v.end_round,
            prefixes: &v.prefixes,
        })
        .collect();
    causes::explained_by(&events)
        .into_iter()
        .zip(verdicts)
        .map(|(by, v)| OutageJson {
            explained_by: by
                .into_iter()
                .map(|i| {
                    let c = &verdicts[i];
                    Cause {
                        id: c.id,
                        scope: c.scope,
                        target: c.target.clone(),
                        name: name_of(as_names, c.scope, &c.target),
                        kind: c.kind,
                    }
                })
                .collect(),
            name: name_of(as_names, v.scope, &v.target),
            ..OutageJson::from(v)
        })
        .collect()
}

/// Filters of `outages`.
#[derive(Debug, Clone, Default)]
pub struct OutageFilter {
    pub country: Option<String>,
    pub ongoing: bool,
    pub since_ms: Option<i64>,
}

/// The verdicts `f` keeps, named from `as_names` (and ISO 3166).
pub async fn outages<S: Store>(
    store: &S,
    f: &OutageFilter,
    as_names: &AsNames,
) -> Result<Vec<OutageJson>, StoreError> {
    let campaigns = store.list_campaigns().await?;
    let mut out: Vec<OutageJson> =
        with_causes(&store.list_verdicts(None, f.since_ms).await?, as_names)
            .into_iter()
            .filter(|v| !f.ongoing || v.end_round.is_none())
            .filter(|v| match &f.country {
                None => true,
                Some(cc) => campaigns.iter().any(|c| {
                    c.name == v.campaign
                        && c.country
                            .as_deref()
                            .is_some_and(|x| x.eq_ignore_ascii_case(cc))
                }),
            })
            .collect();
    out.sort_by(|a, b| {
        a.start
            .cmp(&b.start)
            .then_with(|| label(&a.scope).cmp(&label(&b.scope)))
            .then(a.target.cmp(&b.target))
    });
    Ok(out)
}

/// The name a scope or kind has in JSON (`country`, `blackout`, ...).
pub fn label<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".into(),
    }
}

fn localization_text(l: Option<&Localization>) -> String {
    match l.and_then(|l| l.last_hop.map(|hop| (hop, l.inside_target))) {
        Some((hop, inside)) => {
            format!("{hop} ({})", if inside { "inside" } else { "upstream" })
        }
        None => "-".into(),
    }
}

/// The outages as a table: each headline once, with the verdicts it fully
/// explains nested under it (` └ `), in the order given.
pub fn outages_table(rows: &[OutageJson], now_ms: i64) -> String {
    if rows.is_empty() {
        return "no outages\n".into();
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<14} {:<8} {:<18} {:<20} {:<20} {:>9} {:>9}  {:<14} {:<24} NAME",
        "KIND", "SCOPE", "TARGET", "START", "END", "DURATION", "BLOCKS", "VPS", "LOCALIZATION"
    );
    // A nested row goes under the first of its causes that is listed;
    // one whose causes are all filtered out is a headline here.
    let listed = |id: i64| rows.iter().any(|r| r.id == id);
    let parent = |r: &OutageJson| r.explained_by.iter().map(|c| c.id).find(|&id| listed(id));
    let mut row = |r: &OutageJson, nested: bool| {
        let start_ms = DateTime::parse_from_rfc3339(&r.start)
            .map(|t| t.timestamp_millis())
            .unwrap_or(now_ms);
        let dur = match r.duration_secs {
            Some(d) => duration(d * 1000),
            None => format!("{}+", duration(now_ms - start_ms)),
        };
        let kind = if nested {
            format!(" └ {}", label(&r.kind))
        } else {
            label(&r.kind)
        };
        let _ = writeln!(
            s,
            "{:<14} {:<8} {:<18} {:<20} {:<20} {:>9} {:>9}  {:<14} {:<24} {}",
            kind,
            label(&r.scope),
            r.target,
            r.start,
            r.end.clone().unwrap_or_else(|| "ongoing".into()),
            dur,
            format!("{}/{}", r.blocks_affected, r.blocks_total),
            r.vantage_points.join(","),
            // A degradation has no path end; its change says more.
            r.change
                .clone()
                .unwrap_or_else(|| localization_text(r.localization.as_ref())),
            r.name.as_deref().unwrap_or("-")
        );
    };
    for head in rows.iter().filter(|r| parent(r).is_none()) {
        row(head, false);
        for child in rows.iter().filter(|r| parent(r) == Some(head.id)) {
            row(child, true);
        }
    }
    s
}

#[derive(Debug, Clone, Serialize)]
pub struct AgentStatus {
    pub name: String,
    pub last_seen: Option<String>,
    pub revoked: bool,
    /// `ok`, `stale` (missed two rounds of a campaign it runs), `faulty` (a
    /// VP fault is open), `revoked` or `never-seen` (`crate::fleet`).
    pub health: String,
    /// What it watches of each campaign, as it last reported.
    pub coverage: Vec<crate::coverage::CoverageJson>,
    /// Campaigns assigned to it of which it reported no coverage (empty
    /// for agents never seen or revoked).
    pub coverage_missing: Vec<String>,
    /// How its latest round of each campaign ran, and the share of its
    /// recent rounds that were late.
    pub rounds: Vec<RoundStatusJson>,
}

/// Rounds that started this long before now count toward `late_share`.
pub const LATE_WINDOW_MS: i64 = 24 * 3_600_000;

/// An agent's latest round of one campaign, as `status` shows it (from the
/// `RoundInfo` agents send with each round).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundStatusJson {
    pub campaign: String,
    pub last_round: u64,
    /// When its probing started and ended (RFC 3339).
    pub started: String,
    pub ended: String,
    /// Ended before the next round began.
    pub on_time: bool,
    pub blocks: u64,
    pub probes: u64,
    /// Rounds reported that started within the last [`LATE_WINDOW_MS`],
    /// how many of them were late, and that share (0 with no round).
    pub recent_rounds: u64,
    pub recent_late: u64,
    pub late_share: f64,
    /// The same in one line for people.
    pub summary: String,
}

impl From<&ReportedTiming> for RoundStatusJson {
    fn from(t: &ReportedTiming) -> Self {
        let r = &t.last;
        let late_share = if t.rounds == 0 {
            0.0
        } else {
            t.late as f64 / t.rounds as f64
        };
        let summary = format!(
            "{}: round {} started {}, {} (took {}, {} blocks, {} probes); {} of {} rounds late in {}h ({:.1} %)",
            r.campaign,
            r.round,
            rfc3339(r.started_ms),
            if r.on_time { "on time" } else { "LATE" },
            duration(r.ended_ms - r.started_ms),
            r.blocks,
            r.probes,
            t.late,
            t.rounds,
            LATE_WINDOW_MS / 3_600_000,
            late_share * 100.0
        );
        RoundStatusJson {
            campaign: r.campaign.clone(),
            last_round: r.round,
            started: rfc3339(r.started_ms),
            ended: rfc3339(r.ended_ms),
            on_time: r.on_time,
            blocks: r.blocks,
            probes: r.probes,
            recent_rounds: t.rounds,
            recent_late: t.late,
            late_share,
            summary,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub agents: Vec<AgentStatus>,
    pub campaigns: Vec<Campaign>,
    pub open_verdicts: Vec<OutageJson>,
}

/// The latest round each agent timed of each campaign, for [`fleet`].
pub fn last_rounds(timings: &[ReportedTiming]) -> Vec<fleet::LastRound> {
    timings
        .iter()
        .map(|t| (t.agent.clone(), t.last.campaign.clone(), t.last.round))
        .collect()
}

/// Each agent's health per campaign (`/metrics`), and when it last sent a
/// timed round (0: never).
pub async fn fleet<S: Store>(
    store: &S,
    now_ms: i64,
) -> Result<(Vec<fleet::AgentCampaign>, Vec<(String, i64)>), StoreError> {
    let agents = store.list_agents().await?;
    let campaigns = store.list_campaigns().await?;
    let faults = store.list_vp_faults(None, None).await?;
    let timings = store.round_timings(now_ms - LATE_WINDOW_MS).await?;
    let per = fleet::per_campaign(&agents, &campaigns, &faults, &last_rounds(&timings), now_ms);
    let last = agents
        .iter()
        .filter(|a| !a.revoked)
        .map(|a| {
            let ms = timings
                .iter()
                .filter(|t| t.agent == a.name)
                .map(|t| t.received_ms)
                .max()
                .unwrap_or(0);
            (a.name.clone(), ms)
        })
        .collect();
    Ok((per, last))
}

pub async fn status<S: Store>(
    store: &S,
    now_ms: i64,
    as_names: &AsNames,
) -> Result<Status, StoreError> {
    let campaigns = store.list_campaigns().await?;
    let faults = store.list_vp_faults(None, None).await?;
    let coverage = store.list_coverage().await?;
    let timings = store.round_timings(now_ms - LATE_WINDOW_MS).await?;
    let agents = store.list_agents().await?;
    let per = fleet::per_campaign(&agents, &campaigns, &faults, &last_rounds(&timings), now_ms);
    let agents = agents
        .into_iter()
        .map(|a| {
            let health = fleet::of_agent(&a, &per, now_ms).as_str();
            AgentStatus {
                rounds: timings
                    .iter()
                    .filter(|t| t.agent == a.name)
                    .map(RoundStatusJson::from)
                    .collect(),
                coverage: crate::coverage::for_agent(&a.name, &coverage, &campaigns, rfc3339),
                coverage_missing: if a.revoked || a.last_seen_ms.is_none() {
                    Vec::new()
                } else {
                    crate::coverage::missing(&a.name, &coverage, &campaigns)
                },
                name: a.name,
                last_seen: a.last_seen_ms.map(rfc3339),
                revoked: a.revoked,
                health: health.into(),
            }
        })
        .collect();
    let open_verdicts = outages(
        store,
        &OutageFilter {
            ongoing: true,
            ..Default::default()
        },
        as_names,
    )
    .await?;
    Ok(Status {
        agents,
        campaigns,
        open_verdicts,
    })
}

pub fn status_text(s: &Status, now_ms: i64) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "AGENTS");
    for a in &s.agents {
        let _ = writeln!(
            out,
            "  {:<20} {:<10} last seen {}",
            a.name,
            a.health,
            a.last_seen.as_deref().unwrap_or("never")
        );
        for c in &a.coverage {
            let _ = writeln!(out, "    {}", c.summary);
        }
        for c in &a.coverage_missing {
            let _ = writeln!(out, "    {c}: no coverage reported");
        }
        for r in &a.rounds {
            let _ = writeln!(out, "    {}", r.summary);
        }
    }
    let _ = writeln!(out, "CAMPAIGNS");
    for c in &s.campaigns {
        let _ = writeln!(
            out,
            "  {:<20} {:<4} every {}s, {} prefixes, agents: {}",
            c.name,
            c.country.as_deref().unwrap_or("-"),
            c.interval_secs,
            c.prefixes.len(),
            if c.agents.is_empty() {
                "all".to_string()
            } else {
                c.agents.join(",")
            }
        );
    }
    let _ = writeln!(out, "OPEN VERDICTS");
    out.push_str(&outages_table(&s.open_verdicts, now_ms));
    out
}

/// One campaign's timeline (`crate::signals::timeline` reads it from the
/// stored summaries of its top scope).
#[derive(Debug, Clone, Serialize)]
pub struct TimelineJson {
    pub campaign: String,
    pub target: String,
    pub vantage_points: Vec<String>,
    pub rounds: Vec<TimelineRowJson>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineRowJson {
    pub round: u64,
    pub time: String,
    pub overall: Option<f64>,
    pub per_vp: std::collections::BTreeMap<String, Option<f64>>,
}

pub fn timeline_text(t: &[TimelineJson]) -> String {
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{:.0}%", x * 100.0));
    let mut s = String::new();
    for c in t {
        let _ = writeln!(s, "{} ({})", c.campaign, c.target);
        let _ = write!(s, "  {:<22} {:>8}", "ROUND START", "OVERALL");
        for vp in &c.vantage_points {
            let _ = write!(s, " {vp:>10}");
        }
        s.push('\n');
        for r in &c.rounds {
            let _ = write!(s, "  {:<22} {:>8}", r.time, pct(r.overall));
            for vp in &c.vantage_points {
                let _ = write!(s, " {:>10}", pct(r.per_vp.get(vp).copied().flatten()));
            }
            s.push('\n');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(id: i64, scope: Scope, target: &str, kind: Kind, prefixes: &[&str]) -> Verdict {
        Verdict {
            id,
            scope,
            target: target.into(),
            kind,
            campaign: "kp".into(),
            start_round: 10,
            end_round: Some(20),
            start_ms: 1_800_000_000_000,
            end_ms: Some(1_800_000_600_000),
            blocks_affected: 1,
            blocks_total: 4,
            prefixes: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
            vantage_points: vec!["vp1".into(), "vp2".into()],
            localization: None,
            updated_ms: 1_800_000_600_000,
            change: None,
            alerted: Default::default(),
        }
    }

    #[test]
    fn throttling_before_a_blackout_nests_under_it_with_its_change() {
        let p = "198.18.0.0/22";
        let change = "median RTT 4.1× baseline, loss 38 % (baseline 2 %)";
        let rows = with_causes(
            &[
                Verdict {
                    start_round: 6,
                    end_round: Some(10),
                    change: Some(change.into()),
                    ..verdict(3, Scope::Country, "KP", Kind::Degradation, &[p])
                },
                verdict(4, Scope::Country, "KP", Kind::Blackout, &[p]),
            ],
            &AsNames::default(),
        );
        assert_eq!(rows[0].explained_by[0].id, 4);
        let json = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(
            (&json["kind"], &json["change"]),
            (&"degradation".into(), &change.into())
        );
        let blackout = serde_json::to_value(&rows[1]).unwrap();
        assert!(blackout.get("change").is_none(), "{blackout}");
        let table = outages_table(&rows, 1_800_000_600_000);
        let lines: Vec<&str> = table.lines().skip(1).collect();
        assert!(lines[0].starts_with("blackout"), "{table}");
        assert!(lines[1].starts_with(" └ degradation"), "{table}");
        assert!(lines[1].contains(change), "{table}");
    }

    #[test]
    fn one_withdrawn_prefix_is_one_headline_with_its_wider_scopes_nested() {
        let p = "198.18.2.0/24";
        let rows = with_causes(
            &[
                verdict(7, Scope::Country, "KP", Kind::Partial, &[p]),
                verdict(8, Scope::Asn, "AS64500", Kind::Partial, &[p]),
                verdict(9, Scope::Prefix, p, Kind::Blackout, &[p]),
                verdict(
                    10,
                    Scope::Prefix,
                    "198.18.4.0/24",
                    Kind::Instability,
                    &["198.18.4.0/24"],
                ),
            ],
            &AsNames::default(),
        );
        let cause = Cause {
            id: 9,
            scope: Scope::Prefix,
            target: p.into(),
            name: None,
            kind: Kind::Blackout,
        };
        assert_eq!(rows[0].explained_by, vec![cause.clone()]);
        assert_eq!(rows[1].explained_by, vec![cause]);
        assert!(rows[2].explained_by.is_empty() && rows[3].explained_by.is_empty());
        let json = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(json["explained_by"][0]["id"], 9);
        assert_eq!(json["explained_by"][0]["kind"], "blackout");

        // The table shows the cause once, the partials under it, and the
        // unrelated instability as its own headline.
        let table = outages_table(&rows, 1_800_000_600_000);
        let kinds: Vec<&str> = table
            .lines()
            .skip(1)
            .map(|l| l.split("  ").next().unwrap_or("").trim_end())
            .collect();
        assert_eq!(
            kinds,
            ["blackout", " └ partial", " └ partial", "instability"]
        );
        assert!(table.lines().nth(2).unwrap().contains("country"), "{table}");
        // Filtered without its cause, a nested verdict is a headline.
        let alone = outages_table(&rows[..1], 1_800_000_600_000);
        assert!(
            alone.lines().nth(1).unwrap().starts_with("partial"),
            "{alone}"
        );
    }

    #[test]
    fn verdicts_and_causes_carry_names_in_json_and_table() {
        let names: AsNames = [(64500, "Example Net".to_string())].into_iter().collect();
        let p = "198.18.2.0/24";
        let rows = with_causes(
            &[
                verdict(7, Scope::Asn, "AS64500", Kind::Blackout, &[p]),
                verdict(8, Scope::Country, "KP", Kind::Partial, &[p]),
                verdict(9, Scope::Asn, "AS64501", Kind::Partial, &["198.18.4.0/24"]),
            ],
            &names,
        );
        assert_eq!(rows[0].name.as_deref(), Some("Example Net"));
        assert_eq!(
            rows[1].name.as_deref(),
            Some("Korea (Democratic People's Republic of)")
        );
        assert_eq!(rows[1].explained_by[0].name.as_deref(), Some("Example Net"));
        // An AS the file does not name: null, never a guess.
        assert_eq!(rows[2].name, None);
        let json = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(json["name"], "Example Net");
        assert!(serde_json::to_value(&rows[2]).unwrap()["name"].is_null());
        let table = outages_table(&rows, 1_800_000_600_000);
        assert!(table.lines().next().unwrap().ends_with(" NAME"), "{table}");
        assert!(
            table.lines().nth(1).unwrap().ends_with(" Example Net"),
            "{table}"
        );
        assert!(
            table
                .lines()
                .nth(2)
                .unwrap()
                .ends_with(" Korea (Democratic People's Republic of)"),
            "{table}"
        );
    }

    #[test]
    fn a_round_timing_reads_as_one_line_with_its_late_share() {
        let t = ReportedTiming {
            agent: "vp1".into(),
            last: darkwatch_schema::RoundInfo {
                campaign: "kp".into(),
                round: 30_000_000,
                started_ms: 1_800_000_000_000,
                ended_ms: 1_800_000_061_000,
                on_time: false,
                blocks: 65_536,
                probes: 70_000,
            },
            received_ms: 1_800_000_062_000,
            rounds: 4,
            late: 1,
        };
        let j = RoundStatusJson::from(&t);
        assert_eq!(j.late_share, 0.25);
        assert_eq!(j.started, "2027-01-15T08:00:00Z");
        assert_eq!(
            j.summary,
            "kp: round 30000000 started 2027-01-15T08:00:00Z, LATE (took 1m01s, 65536 blocks, 70000 probes); 1 of 4 rounds late in 24h (25.0 %)"
        );
        let none = RoundStatusJson::from(&ReportedTiming {
            rounds: 0,
            late: 0,
            ..t
        });
        assert_eq!(none.late_share, 0.0);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(34_260_000), "9h31m");
        assert_eq!(duration(59_000), "59s");
        assert_eq!(duration(61_000), "1m01s");
    }
}
