//! The monitoring examples under `deploy/` against what darkwatch exports:
//! the Prometheus alert rules pass `promtool check rules` and their unit
//! tests (`promtool test rules`), and every metric the rules and the
//! Grafana dashboard name exists, in the agent's renderer
//! (`darkwatch_agent::metrics::names`) or among the collector's per-scope
//! gauges and counters listed here. The rules and the dashboard each use
//! all of those and the agent's lateness.

use std::collections::BTreeSet;
use std::path::PathBuf;

use darkwatch_netlab::checks::{promtool_check_rules, promtool_test_rules};

/// The collector's gauges the examples use (exported by its `/metrics`).
const COLLECTOR_METRICS: &[&str] = &[
    "darkwatch_verdicts_open",
    "darkwatch_scope_blocks_up_ratio",
    "darkwatch_last_correlated_round_age_seconds",
    "darkwatch_vp_healthy",
    "darkwatch_agent_up",
];

/// The collector's counters the examples use.
const COLLECTOR_COUNTERS: &[&str] = &["darkwatch_correlation_panics_total"];

fn deploy(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(rel)
}

fn read(rel: &str) -> String {
    let p = deploy(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The `darkwatch_*` metric names a PromQL expression (or any text) uses.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("darkwatch_") {
        let preceded = rest[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        if !preceded {
            names.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

fn known() -> BTreeSet<String> {
    darkwatch_agent::metrics::names()
        .into_iter()
        .chain(COLLECTOR_METRICS.iter().map(|s| s.to_string()))
        .chain(COLLECTOR_COUNTERS.iter().map(|s| s.to_string()))
        .collect()
}

#[test]
fn metric_names_are_found_in_promql() {
    assert_eq!(
        metric_names("rate(darkwatch_a_total{x=\"darkwatch_no\"}[5m]) / my_darkwatch_b"),
        BTreeSet::from(["darkwatch_a_total".to_string(), "darkwatch_no".to_string()])
    );
}

#[test]
fn alert_rules_pass_promtool_and_name_existing_metrics() {
    let rules = read("prometheus/darkwatch-rules.yml");
    let used = metric_names(&rules);
    let known = known();
    let unknown: Vec<_> = used.difference(&known).collect();
    assert!(unknown.is_empty(), "rules use unknown metrics {unknown:?}");
    for m in COLLECTOR_METRICS
        .iter()
        .chain(COLLECTOR_COUNTERS)
        .copied()
        .chain(["darkwatch_agent_rounds_late_total"])
    {
        assert!(used.contains(m), "no rule uses {m}");
    }
    for kind in ["kind=\"blackout\"", "kind=\"partial\""] {
        assert!(rules.contains(kind), "no rule for {kind}");
    }
    if let Some(checked) = promtool_check_rules(&deploy("prometheus/darkwatch-rules.yml")) {
        let said = checked.unwrap_or_else(|e| panic!("promtool check rules: {e}"));
        assert!(said.contains("SUCCESS"), "{said}");
    }
}

#[test]
fn alert_rules_pass_their_promtool_unit_tests() {
    let tests = deploy("prometheus/darkwatch-rules.test.yml");
    if let Some(tested) = promtool_test_rules(&tests) {
        let said = tested.unwrap_or_else(|e| panic!("promtool test rules: {e}"));
        assert!(said.contains("SUCCESS"), "{said}");
    }
}

#[test]
fn grafana_dashboard_panels_query_existing_metrics() {
    let text = read("grafana/darkwatch.json");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let panels = dash["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    let known = known();
    let mut used = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().expect("every panel has a title");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title:?} queries nothing");
        for t in targets {
            let expr = t["expr"].as_str().expect("every target has an expr");
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{title:?}: {expr} names no metric");
            let unknown: Vec<_> = names.difference(&known).collect();
            assert!(
                unknown.is_empty(),
                "{title:?}: {expr} uses unknown {unknown:?}"
            );
            used.extend(names);
        }
    }
    for m in COLLECTOR_METRICS
        .iter()
        .chain(COLLECTOR_COUNTERS)
        .copied()
        .chain(["darkwatch_agent_rounds_late_total"])
    {
        assert!(used.contains(m), "no panel shows {m}");
    }
    // Template variables query existing metrics too.
    for v in dash["templating"]["list"].as_array().expect("templating") {
        let q = v["definition"].as_str().unwrap_or_default();
        let unknown: Vec<_> = metric_names(q).difference(&known).cloned().collect();
        assert!(unknown.is_empty(), "variable {}: {unknown:?}", v["name"]);
    }
}
