//! End-to-end tests of the real binary against real sockets, inside a
//! namespace lab of our own (see `common`). They skip outside CI when the lab
//! cannot be built, and fail in CI.

use crate::common::{describe, json_lines, Lab};

const FAST: &[&str] = &[
    "--json",
    "--allow",
    "198.18.0.0/15",
    "--timeout-ms",
    "500",
    "--pps",
    "20000",
];

fn probe(lab: &Lab, targets: &[&str]) -> std::process::Output {
    let args: Vec<&str> = ["probe"]
        .iter()
        .chain(FAST)
        .chain(targets)
        .copied()
        .collect();
    lab.agent(&args)
}

#[test]
fn probe_reports_a_responsive_block_up() {
    let Some(lab) = Lab::or_skip() else { return };
    lab.respond("198.18.1.0/24");
    let out = probe(&lab, &["198.18.1.0/24"]);
    assert!(out.status.success(), "{}", describe(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{}", describe(&out));
    let l = &lines[0];
    assert_eq!(l["block"], "198.18.1.0/24");
    assert_eq!(l["state"], "up", "{}", describe(&out));
    assert_eq!(l["responsive"], 256);
    assert_eq!(l["replies"], 1);
    assert!(l["probes"].as_u64().unwrap() >= 1);
    assert!(l["belief"].as_f64().unwrap() >= 0.9);
}

#[test]
fn probe_reports_an_unreachable_prefix_down() {
    let Some(lab) = Lab::or_skip() else { return };
    lab.respond("198.18.2.0/24");
    // Withdrawn before the agent ever saw it answer: r1 says unreachable.
    lab.route(&lab.r1, "unreachable", "198.18.2.0/24");
    let out = probe(&lab, &["198.18.2.0/24"]);
    assert!(out.status.success(), "{}", describe(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{}", describe(&out));
    assert_eq!(lines[0]["state"], "down", "{}", describe(&out));
    assert_eq!(lines[0]["replies"], 0);
    assert_eq!(lines[0]["responsive"], 0);
    assert_eq!(lines[0]["probes"], 256);
}

#[test]
fn probe_tells_live_and_dark_blocks_apart_in_one_run() {
    let Some(lab) = Lab::or_skip() else { return };
    lab.respond("198.18.4.0/24");
    // Only part of a block answers: a sparse block is still up.
    lab.respond("198.18.5.0/28");
    lab.route(&lab.r2, "blackhole", "198.18.6.0/24");
    let out = probe(&lab, &["198.18.4.0/24", "198.18.5.0/24", "198.18.6.0/24"]);
    assert!(out.status.success(), "{}", describe(&out));
    let lines = json_lines(&out);
    let states: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l["block"].as_str().unwrap(), l["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        vec![
            ("198.18.4.0/24", "up"),
            ("198.18.5.0/24", "up"),
            ("198.18.6.0/24", "down")
        ],
        "{}",
        describe(&out)
    );
    assert_eq!(lines[1]["responsive"], 16);
}

fn trace(lab: &Lab, addr: &str) -> (std::process::Output, serde_json::Value) {
    let out = lab.agent(&[
        "trace",
        "--json",
        "--max-ttl",
        "8",
        "--rounds",
        "2",
        "--timeout-ms",
        "500",
        addr,
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let v = json_lines(&out)
        .pop()
        .unwrap_or_else(|| panic!("no output: {}", describe(&out)));
    (out, v)
}

#[test]
fn trace_lists_the_routers_and_reaches_the_target() {
    let Some(lab) = Lab::or_skip() else { return };
    lab.respond("198.18.1.0/24");
    let (out, v) = trace(&lab, "198.18.1.1");
    assert_eq!(v["reached"], true, "{}", describe(&out));
    assert_eq!(v["last_responding"], "198.18.1.1");
    let addrs: Vec<&str> = v["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["addr"].as_str().unwrap_or("*"))
        .collect();
    assert_eq!(
        addrs,
        vec!["192.0.2.2", "198.51.100.2", "198.18.1.1"],
        "{}",
        describe(&out)
    );
    assert_eq!(v["hops"][0]["ttl"], 1);
    assert!(v["hops"][0]["rtt_ms"].as_f64().is_some());
}

#[test]
fn trace_into_a_blackhole_ends_at_the_hop_before() {
    let Some(lab) = Lab::or_skip() else { return };
    lab.respond("198.18.3.0/24");
    lab.route(&lab.r2, "blackhole", "198.18.3.0/24");
    let (out, v) = trace(&lab, "198.18.3.1");
    assert_eq!(v["reached"], false, "{}", describe(&out));
    assert_eq!(v["last_responding"], "192.0.2.2", "{}", describe(&out));
    let hops = v["hops"].as_array().unwrap();
    assert_eq!(hops.last().unwrap()["addr"], "192.0.2.2");
}

#[test]
fn missing_privileges_exit_77_with_the_fix() {
    let Some(lab) = Lab::or_skip() else { return };
    // Same binary, run as nobody without capabilities (nothing is sent: the
    // privilege check comes first).
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.prober,
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_darkwatch-agent"))
        .args(["probe", "--allow", "198.18.0.0/15", "198.18.1.0/24"])
        .output()
        .expect("run setpriv");
    assert_eq!(out.status.code(), Some(77), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CAP_NET_RAW") && err.contains("setcap cap_net_raw+ep"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
