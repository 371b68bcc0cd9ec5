//! The lab itself, tested in real network namespaces (run as root): reachability,
//! the traceroute path, every fault and its undo, and cleanup after panics,
//! of spawned children and of stale labs.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use darkwatch_tests::{clean_stale, lab_or_skip, Lab, LabConfig, Node, PingOutcome};
use ipnet::Ipv4Net;

fn lab() -> Option<Lab> {
    lab_or_skip(LabConfig::default())
}

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn namespaces() -> BTreeSet<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

fn ping(lab: &Lab, node: Node, addr: Ipv4Addr) -> PingOutcome {
    lab.ping(node, addr).unwrap()
}

/// A responsive host in the middle of the block's list, not always the first.
fn some_host(lab: &Lab, block: Ipv4Net) -> Ipv4Addr {
    let hosts = lab.responsive_hosts(block);
    hosts[hosts.len() / 2]
}

/// True if `pid` exists and is not a zombie (a killed orphan waits for init to reap it).
fn running(pid: &str) -> bool {
    match std::fs::read_to_string(Path::new("/proc").join(pid).join("stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                != Some("Z")
        }
        Err(_) => false,
    }
}

fn hop(node: Node) -> Ipv4Addr {
    node.hop_addr().unwrap()
}

#[test]
fn every_vp_reaches_responsive_hosts_and_control_but_not_silent_space() {
    let Some(lab) = lab() else { return };
    let mut probes = Vec::new();
    let mut expect = Vec::new();
    for vp in lab.vps() {
        for block in lab.blocks() {
            for h in lab.responsive_hosts(block) {
                probes.push((vp, h, None));
                expect.push(PingOutcome::Reply);
            }
            probes.push((vp, lab.unresponsive_host(block).unwrap(), None));
            expect.push(PingOutcome::Silent);
        }
        // Inside the country's space but outside every block: dropped by ctry's blackhole.
        probes.push((vp, Ipv4Addr::new(198, 18, 200, 1), None));
        expect.push(PingOutcome::Unreachable {
            from: hop(Node::Border),
            reason: "Destination Net Unreachable".into(),
        });
        probes.push((vp, lab.control_prefix().hosts().next().unwrap(), None));
        expect.push(PingOutcome::Reply);
        probes.push((vp, lab.collector_addr(), None));
        expect.push(PingOutcome::Reply);
    }
    let got = lab.ping_all(&probes).unwrap();
    for ((p, want), got) in probes.iter().zip(&expect).zip(&got) {
        assert_eq!(got, want, "ping {} from {}", p.1, p.0);
    }
    assert_eq!(lab.blocks().len(), 6);
    lab.teardown().unwrap();
}

#[test]
fn traceroute_sees_edge_t1_border_then_target() {
    let Some(lab) = lab() else { return };
    let target = some_host(&lab, lab.blocks()[3]);
    for vp in lab.vps() {
        let got: Vec<PingOutcome> = lab
            .ping_all(
                &(1..=4)
                    .map(|ttl| (vp, target, Some(ttl)))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        assert_eq!(
            got,
            [
                PingOutcome::TimeExceeded {
                    from: lab.router_hop_addr(Node::Edge).unwrap()
                },
                PingOutcome::TimeExceeded {
                    from: lab.router_hop_addr(Node::T1).unwrap()
                },
                PingOutcome::TimeExceeded {
                    from: lab.router_hop_addr(Node::Border).unwrap()
                },
                PingOutcome::Reply,
            ],
            "path from {vp}"
        );
    }
}

#[test]
fn withdraw_gets_unreachable_from_border_and_announce_restores() {
    let Some(lab) = lab() else { return };
    let prefix = net("198.18.2.0/24");
    let other = some_host(&lab, net("198.18.4.0/24"));
    let target = some_host(&lab, prefix);
    lab.withdraw(prefix).unwrap();
    lab.withdraw(prefix).unwrap();
    let got = lab
        .ping_all(&[(Node::Vp(1), target, None), (Node::Vp(2), other, None)])
        .unwrap();
    assert_eq!(
        got[0],
        PingOutcome::Unreachable {
            from: hop(Node::Border),
            reason: "Destination Net Unreachable".into()
        }
    );
    assert_eq!(got[1], PingOutcome::Reply, "other prefixes stay announced");
    lab.announce(prefix).unwrap();
    lab.announce(prefix).unwrap();
    assert_eq!(ping(&lab, Node::Vp(1), target), PingOutcome::Reply);
    assert!(
        lab.withdraw(net("198.18.3.0/24")).is_err(),
        "198.18.3.0/24 is no prefix of the lab"
    );
}

#[test]
fn blackhole_silences_at_a_router_and_at_local_addresses() {
    let Some(lab) = lab() else { return };
    let prefix = net("198.18.6.0/23");
    let target = some_host(&lab, net("198.18.7.0/24"));
    let other = some_host(&lab, net("198.18.0.0/24"));
    lab.blackhole(Node::Border, prefix).unwrap();
    lab.blackhole(Node::Border, prefix).unwrap();
    let got = lab
        .ping_all(&[
            (Node::Vp(1), target, None),
            (Node::Vp(1), target, Some(3)),
            (Node::Vp(1), other, None),
        ])
        .unwrap();
    assert_eq!(
        got,
        [PingOutcome::Silent, PingOutcome::Silent, PingOutcome::Reply],
        "border drops silently, even TTL expiry"
    );
    lab.unblackhole(Node::Border, prefix).unwrap();
    lab.unblackhole(Node::Border, prefix).unwrap();
    assert_eq!(ping(&lab, Node::Vp(1), target), PingOutcome::Reply);

    // Local addresses: the country's hosts and edge's control prefix.
    let block = net("198.18.1.0/24");
    let host = some_host(&lab, block);
    let control = lab.control_prefix().hosts().next().unwrap();
    lab.blackhole(Node::Ctry, block).unwrap();
    lab.blackhole(Node::Edge, lab.control_prefix()).unwrap();
    let got = lab
        .ping_all(&[(Node::Vp(2), host, None), (Node::Vp(2), control, None)])
        .unwrap();
    assert_eq!(got, [PingOutcome::Silent, PingOutcome::Silent]);
    lab.unblackhole(Node::Ctry, block).unwrap();
    lab.unblackhole(Node::Edge, lab.control_prefix()).unwrap();
    let got = lab
        .ping_all(&[(Node::Vp(2), host, None), (Node::Vp(2), control, None)])
        .unwrap();
    assert_eq!(got, [PingOutcome::Reply, PingOutcome::Reply]);
}

#[test]
fn cutting_a_primary_link_reroutes_through_t2_and_restoring_it_returns() {
    let Some(lab) = lab() else { return };
    let target = some_host(&lab, lab.blocks()[0]);
    let path = |lab: &Lab| -> Vec<PingOutcome> {
        lab.ping_all(
            &(1..=4)
                .map(|ttl| (Node::Vp(3), target, Some(ttl)))
                .collect::<Vec<_>>(),
        )
        .unwrap()
    };
    let via = |transit: Node| {
        vec![
            PingOutcome::TimeExceeded {
                from: hop(Node::Edge),
            },
            PingOutcome::TimeExceeded { from: hop(transit) },
            PingOutcome::TimeExceeded {
                from: hop(Node::Border),
            },
            PingOutcome::Reply,
        ]
    };
    for (a, b) in [(Node::Edge, Node::T1), (Node::Border, Node::T1)] {
        lab.link_down(a, b).unwrap();
        lab.link_down(a, b).unwrap();
        assert_eq!(path(&lab), via(Node::T2), "after cutting {a}-{b}");
        lab.link_up(a, b).unwrap();
        lab.link_up(a, b).unwrap();
        assert_eq!(path(&lab), via(Node::T1), "after restoring {a}-{b}");
    }
    // Both transits cut: the country is gone, the control prefix is not.
    lab.link_down(Node::T1, Node::Edge).unwrap();
    lab.link_down(Node::T2, Node::Edge).unwrap();
    let control = lab.control_prefix().hosts().next().unwrap();
    let got = lab
        .ping_all(&[(Node::Vp(1), target, None), (Node::Vp(1), control, None)])
        .unwrap();
    assert!(!got[0].is_reply(), "{:?}", got[0]);
    assert_eq!(got[1], PingOutcome::Reply);
    lab.link_up(Node::T1, Node::Edge).unwrap();
    lab.link_up(Node::T2, Node::Edge).unwrap();
    assert_eq!(path(&lab), via(Node::T1));
    assert!(
        lab.link_down(Node::Vp(1), Node::T1).is_err(),
        "there is no vp1-t1 link"
    );
}

#[test]
fn isolated_vp_loses_the_country_but_keeps_the_collector() {
    let Some(lab) = lab() else { return };
    let target = some_host(&lab, lab.blocks()[1]);
    let control = lab.control_prefix().hosts().nth(2).unwrap();
    let hub = lab.collector_addr();
    lab.isolate_vp(1).unwrap();
    lab.isolate_vp(1).unwrap();
    let probes: Vec<(Node, Ipv4Addr, Option<u8>)> = lab
        .vps()
        .into_iter()
        .flat_map(|vp| [(vp, target, None), (vp, control, None), (vp, hub, None)])
        .collect();
    let got = lab.ping_all(&probes).unwrap();
    for (p, g) in probes.iter().zip(&got) {
        let isolated_data = p.0 == Node::Vp(1) && p.1 != hub;
        assert_eq!(
            g.is_reply(),
            !isolated_data,
            "ping {} from {}: {g:?}",
            p.1,
            p.0
        );
    }
    lab.reconnect_vp(1).unwrap();
    lab.reconnect_vp(1).unwrap();
    let got = lab
        .ping_all(&[
            (Node::Vp(1), target, None),
            (Node::Vp(1), control, None),
            (Node::Vp(1), hub, None),
        ])
        .unwrap();
    assert!(got.iter().all(PingOutcome::is_reply), "{got:?}");
    assert!(lab.isolate_vp(4).is_err(), "the default lab has three VPs");
}

#[test]
fn full_loss_on_border_to_ctry_then_clear() {
    let Some(lab) = lab() else { return };
    let target = some_host(&lab, lab.blocks()[5]);
    lab.netem(Node::Border, Node::Ctry, 100.0, 0).unwrap();
    lab.netem(Node::Border, Node::Ctry, 100.0, 0).unwrap();
    // Loss only on the way in: the border itself still answers TTL expiry.
    let got = lab
        .ping_all(&[(Node::Vp(2), target, None), (Node::Vp(2), target, Some(3))])
        .unwrap();
    assert_eq!(
        got,
        [
            PingOutcome::Silent,
            PingOutcome::TimeExceeded {
                from: hop(Node::Border)
            }
        ]
    );
    lab.clear_netem(Node::Border, Node::Ctry).unwrap();
    lab.clear_netem(Node::Border, Node::Ctry).unwrap();
    assert_eq!(ping(&lab, Node::Vp(2), target), PingOutcome::Reply);
    // The other direction: replies leaving ctry are lost.
    lab.netem(Node::Ctry, Node::Border, 100.0, 0).unwrap();
    assert_eq!(ping(&lab, Node::Vp(2), target), PingOutcome::Silent);
    lab.netem(Node::Ctry, Node::Border, 0.0, 0).unwrap();
    assert_eq!(ping(&lab, Node::Vp(2), target), PingOutcome::Reply);
    assert!(lab.netem(Node::Ctry, Node::Border, 101.0, 0).is_err());
}

#[test]
fn spawned_children_die_with_the_lab() {
    let Some(lab) = lab() else { return };
    let mut cmd = lab.command(Node::Hub, "sleep");
    cmd.arg("60");
    let mut tracked = lab.spawn(Node::Hub, cmd).unwrap();
    let mut plain = Command::new("sleep");
    plain.arg("61");
    let mut rewrapped = lab.spawn(Node::Vp(2), plain).unwrap();
    // Started without spawn: still inside a lab namespace, still killed.
    let mut untracked = lab.command(Node::Ctry, "sleep").arg("62").spawn().unwrap();
    // spawn really runs the command inside the node's namespace.
    let ns_of = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let vp2_shell = lab
        .command(Node::Vp(2), "readlink")
        .arg("/proc/self/ns/net")
        .output()
        .unwrap();
    for _ in 0..100 {
        // `ip netns exec` switches namespace before exec'ing sleep.
        if ns_of(rewrapped.id()).to_string_lossy().trim()
            == String::from_utf8_lossy(&vp2_shell.stdout).trim()
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        ns_of(rewrapped.id()).to_string_lossy().trim(),
        String::from_utf8_lossy(&vp2_shell.stdout).trim()
    );
    let names = lab.namespaces();
    lab.teardown().unwrap();
    for child in [&mut tracked, &mut rewrapped, &mut untracked] {
        let status = child.try_wait().unwrap();
        assert!(
            status.is_some_and(|s| !s.success()),
            "child {} still running or exited cleanly: {status:?}",
            child.id()
        );
    }
    let left = namespaces();
    assert!(
        names.iter().all(|n| !left.contains(n)),
        "left behind: {left:?}"
    );
}

/// Run by `a_panicking_test_still_removes_its_lab` in a child process.
#[test]
#[ignore = "helper: run by a_panicking_test_still_removes_its_lab"]
// The child is never waited for on purpose: the lab's teardown must kill it.
#[allow(clippy::zombie_processes)]
fn helper_build_lab_then_panic() {
    let lab = Lab::build(LabConfig {
        vps: 1,
        ..LabConfig::default()
    })
    .expect("lab builds");
    let mut cmd = lab.command(Node::Vp(1), "sleep");
    cmd.arg("60");
    let child = lab.spawn(Node::Vp(1), cmd).unwrap();
    println!("LAB_PREFIX={} CHILD_PID={}", lab.prefix(), child.id());
    panic!("deliberate panic with the lab up");
}

#[test]
fn a_panicking_test_still_removes_its_lab() {
    if lab().is_none() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "lab::helper_build_lab_then_panic",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "helper should fail by panicking: {stdout}"
    );
    let field = |key: &str| -> String {
        stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in helper output: {stdout}"))
            .to_string()
    };
    let prefix = field("LAB_PREFIX=");
    let pid = field("CHILD_PID=");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("deliberate panic")
            || stdout.contains("deliberate panic")
    );
    let left: Vec<String> = namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .collect();
    assert!(left.is_empty(), "namespaces left after panic: {left:?}");
    assert!(!running(&pid), "child {pid} outlived the panicking test");
}

/// Run by `lab_or_skip_skips_only_outside_ci` in a child process.
#[test]
#[ignore = "helper: run by lab_or_skip_skips_only_outside_ci"]
fn helper_lab_or_skip_with_unbuildable_lab() {
    // An invalid config stands in for a machine where the lab cannot be built.
    assert!(lab_or_skip(LabConfig {
        vps: 0,
        ..LabConfig::default()
    })
    .is_none());
}

#[test]
fn lab_or_skip_skips_only_outside_ci() {
    let exe = std::env::current_exe().unwrap();
    let run = |ci: &str| {
        Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "lab::helper_lab_or_skip_with_unbuildable_lab",
                "--nocapture",
            ])
            .env("CI", ci)
            .output()
            .unwrap()
    };
    let skipped = run("false");
    assert!(skipped.status.success());
    assert!(String::from_utf8_lossy(&skipped.stderr).contains("SKIP"));
    let failed = run("true");
    assert!(
        !failed.status.success(),
        "with CI=true an unbuildable lab must fail the test"
    );
}

#[test]
fn stale_labs_of_dead_processes_are_removed_and_live_ones_kept() {
    if lab().is_none() {
        return;
    }
    let mut dead = Command::new("true").spawn().unwrap();
    dead.wait().unwrap();
    let mut alive = Command::new("sleep").arg("30").spawn().unwrap();
    let stale = format!("dw{}xbeef-edge", dead.id());
    let live = format!("dw{}xbeef-edge", alive.id());
    for n in [&stale, &live] {
        assert!(Command::new("ip")
            .args(["netns", "add", n])
            .status()
            .unwrap()
            .success());
    }
    // A process left inside the stale namespace must not block its removal.
    let mut squatter = Command::new("ip")
        .args(["netns", "exec", &stale, "sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    clean_stale().unwrap();
    let left = namespaces();
    let live_kept = left.contains(&live);
    alive.kill().unwrap();
    alive.wait().unwrap();
    clean_stale().unwrap();
    assert!(
        !left.contains(&stale),
        "stale lab namespace {stale} survived"
    );
    assert!(
        live_kept,
        "lab namespace {live} of a live process was removed"
    );
    assert!(
        !namespaces().contains(&live),
        "{live} not removed once its process died"
    );
    assert!(
        squatter.try_wait().unwrap().is_some(),
        "process in the stale namespace survived"
    );
}

#[test]
fn delay_is_applied_as_netem_or_refused_as_unsupported() {
    let Some(lab) = lab() else { return };
    let ns = lab.namespace(Node::Edge);
    let qdisc = || {
        let out = Command::new("tc")
            .args(["-n", &ns, "qdisc", "show", "dev", "t1"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("netem")
    };
    match lab.netem(Node::Edge, Node::T1, 0.0, 20) {
        Ok(()) => {
            assert!(qdisc(), "netem qdisc missing after netem()");
            lab.clear_netem(Node::Edge, Node::T1).unwrap();
            assert!(!qdisc(), "netem qdisc left after clear_netem()");
        }
        Err(darkwatch_tests::LabError::Unsupported(why)) => {
            eprintln!("delay unsupported here: {why}")
        }
        Err(e) => panic!("netem delay failed: {e}"),
    }
    // Whatever happened, the path still works.
    let target = some_host(&lab, lab.blocks()[0]);
    assert_eq!(ping(&lab, Node::Vp(1), target), PingOutcome::Reply);
}

#[test]
fn largest_configured_lab_serves_every_vp() {
    let cfg = LabConfig {
        vps: 8,
        country_prefixes: vec![net("198.18.10.0/24"), net("198.18.12.0/22")],
        responsive_per_block: vec![1, 64],
    };
    let Some(lab) = lab_or_skip(cfg) else { return };
    assert_eq!(lab.vp_namespaces().len(), 8);
    let counts: Vec<usize> = lab
        .blocks()
        .into_iter()
        .map(|b| lab.responsive_hosts(b).len())
        .collect();
    assert_eq!(counts, [1, 64, 1, 64, 1]);
    let mut probes = Vec::new();
    for vp in lab.vps() {
        for b in lab.blocks() {
            probes.push((vp, *lab.responsive_hosts(b).last().unwrap(), None));
        }
        probes.push((vp, lab.collector_addr(), None));
    }
    let got = lab.ping_all(&probes).unwrap();
    for (p, g) in probes.iter().zip(&got) {
        assert_eq!(*g, PingOutcome::Reply, "ping {} from {}", p.1, p.0);
    }
    // Each VP has its own addresses on both links.
    let addrs: BTreeSet<Ipv4Addr> = (1..=8)
        .flat_map(|i| [lab.vp_addr(i).unwrap(), lab.vp_mgmt_addr(i).unwrap()])
        .collect();
    assert_eq!(addrs.len(), 16);
    let stats = lab.delegated_stats("KP");
    assert!(
        stats.contains("apnic|KP|ipv4|198.18.12.0|1024|20141222|allocated|A91E0F1A"),
        "{stats}"
    );
}
