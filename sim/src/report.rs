//! The scorer's figures as rows against the goals of issue 29, for the
//! bench's table and `docs/verdicts.md`.

use crate::score::{Score, Tally};

/// One figure against its goal.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub what: String,
    pub measured: String,
    pub goal: String,
    /// `None` where there is no goal to meet.
    pub met: Option<bool>,
}

fn tally(t: Option<&Tally>) -> String {
    match t {
        Some(t) if t.total > 0 => format!(
            "{:.3} ({}/{})",
            t.right as f64 / t.total as f64,
            t.right,
            t.total
        ),
        _ => "– (0)".into(),
    }
}

fn at_least(t: Option<&Tally>, goal: f64) -> Option<bool> {
    t.and_then(Tally::ratio).map(|r| r >= goal)
}

/// The rows of `s`, goals first, then the figures without a goal.
pub fn rows(s: &Score) -> Vec<Row> {
    let mut rows = vec![];
    let mut push = |what: &str, measured: String, goal: &str, met: Option<bool>| {
        rows.push(Row {
            what: what.into(),
            measured,
            goal: goal.into(),
            met,
        })
    };
    for scope in ["country", "asn"] {
        let r = s.recall.get(scope);
        push(
            &format!("recall, {scope} blackouts ≥ 1 round"),
            tally(r),
            "≥ 0.99",
            at_least(r, 0.99),
        );
        let p = s.precision.get(&("blackout".into(), scope.into()));
        push(
            &format!("precision, {scope} blackouts"),
            tally(p),
            "≥ 0.99",
            at_least(p, 0.99),
        );
    }
    let r = s.recall.get("prefix");
    push(
        "recall, prefix blackouts ≥ 2 rounds",
        tally(r),
        "≥ 0.95",
        at_least(r, 0.95),
    );
    let p = s.precision.get(&("blackout".into(), "prefix".into()));
    push(
        "precision, prefix blackouts",
        tally(p),
        "≥ 0.95",
        at_least(p, 0.95),
    );
    push(
        "false country blackouts",
        format!(
            "{} in {:.1} country-months",
            s.false_country_blackouts, s.country_months
        ),
        "0",
        Some(s.false_country_blackouts == 0),
    );
    let per = s.false_block_outages as f64 / s.block_days.max(1.0) * 10_000.0;
    push(
        "false block outages per 10,000 block-days",
        format!(
            "{per:.2} ({} in {:.0} block-days)",
            s.false_block_outages, s.block_days
        ),
        "≤ 1",
        Some(per <= 1.0),
    );
    push(
        "false prefix blackouts with diurnal / renumbered blocks",
        format!("{} / {}", s.false_diurnal, s.false_renumbered),
        "0 / 0",
        Some(s.false_diurnal == 0 && s.false_renumbered == 0),
    );
    push(
        "flapping 1–8 rounds: instability, no blackout train",
        tally(Some(&s.flapping_handled)),
        "≥ 0.95",
        at_least(Some(&s.flapping_handled), 0.95),
    );
    push(
        "onset error, s (median / p95)",
        format!(
            "{:.0} / {:.0} (n = {})",
            s.onset_error_s.median, s.onset_error_s.p95, s.onset_error_s.n
        ),
        "≤ 60 / ≤ 120 (staggered VPs)",
        (s.onset_error_s.n > 0)
            .then_some(s.onset_error_s.median <= 60.0 && s.onset_error_s.p95 <= 120.0),
    );
    push(
        "probes per block per hour (per VP, mean)",
        format!("{:.2}", s.probes_per_block_hour),
        "≤ 20",
        Some(s.probes_per_block_hour <= 20.0),
    );
    push(
        "end error, s (median / p95)",
        format!(
            "{:.0} / {:.0} (n = {})",
            s.end_error_s.median, s.end_error_s.p95, s.end_error_s.n
        ),
        "–",
        None,
    );
    push(
        "flapping with an instability verdict",
        tally(Some(&s.flapping_instability)),
        "–",
        None,
    );
    push(
        "partial outages found (partial or blackout)",
        tally(Some(&s.partial_recall)),
        "–",
        None,
    );
    push(
        "degradations found (partial or blackout)",
        tally(Some(&s.degradation_recall)),
        "–",
        None,
    );
    push(
        "heavy loss 30–70 % found (instability)",
        tally(Some(&s.heavy_loss_recall)),
        "–",
        None,
    );
    push(
        "isolated VP judged faulty (per country)",
        tally(Some(&s.isolated_vp_flagged)),
        "–",
        None,
    );
    for ((kind, scope), t) in &s.precision {
        if kind != "blackout" {
            push(
                &format!("precision, {scope} {kind}"),
                tally(Some(t)),
                "–",
                None,
            );
        }
    }
    let causes: Vec<String> = s
        .false_instability_causes
        .iter()
        .map(|(c, n)| format!("{c}: {n}"))
        .collect();
    push(
        "false prefix instability verdicts, by the first trait that may explain them",
        causes.join(", "),
        "–",
        None,
    );
    push(
        "CPU per simulated round, s",
        format!("{:.3}", s.cpu_per_round_s),
        "–",
        None,
    );
    rows
}

/// `rows` as a markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let mut t = String::from("| figure | measured | goal | met |\n|---|---|---|---|\n");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        t.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.what, r.measured, r.goal, met
        ));
    }
    t
}
