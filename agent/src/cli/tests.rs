//! Argument parsing and output of the agent CLI.

use super::*;
use crate::belief::RoundOutcome;
use std::collections::BTreeMap;

fn probe_args(args: &[&str]) -> ProbeArgs {
    let cli = Cli::try_parse_from([&["darkwatch-agent", "probe"], args].concat()).unwrap();
    let Command::Probe(a) = cli.command else {
        panic!("not probe")
    };
    a
}

#[test]
fn published_delegated_file_gives_the_ipv4_space_and_skips_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("delegated-apnic-extended-latest");
    std::fs::write(
        &d,
        "2|apnic|20241122|6|19830613|20241121|+1000\n\
         apnic|*|ipv4|*|4|summary\n\
         apnic|KP|ipv4|198.18.4.0|768|20071109|allocated|A1\n\
         apnic|KP|ipv4|198.18.8.0|256|20071109|available|\n\
         apnic|KP|ipv4|198.18.9.0|many|20071109|allocated|A1\n\
         apnic||ipv4|198.18.10.0|256||reserved|\n\
         apnic|KP|ipv6|2400:8b00::|32|20110216|allocated|A1\n",
    )
    .unwrap();
    let d = d.to_str().unwrap();
    let args = probe_args(&[
        "--delegated",
        d,
        "--country",
        "kp",
        "--allow",
        "198.18.0.0/15",
    ]);
    let set = target_set(&args).unwrap();
    assert_eq!(
        set.prefixes(),
        ["198.18.4.0/23", "198.18.6.0/24"]
            .map(|s| s.parse::<IpNet>().unwrap())
            .to_vec()
    );
    // A file of nothing but broken records is refused, naming the line.
    std::fs::write(
        dir.path().join("bad"),
        "apnic|KP|ipv4|198.18.9.0|many|20071109|allocated\n",
    )
    .unwrap();
    let bad = dir.path().join("bad");
    let args = probe_args(&["--delegated", bad.to_str().unwrap(), "--country", "KP"]);
    let e = target_set(&args).unwrap_err();
    assert_eq!(e.code, exit::DATAERR);
    assert!(
        e.message.contains(&format!("{}:1: ", bad.display())),
        "{}",
        e.message
    );
}

#[test]
fn target_files_skip_broken_lines_and_exclusion_files_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("targets.txt");
    std::fs::write(&t, "198.18.0.0/24\nnonsense\n198.18.1.0/24\n").unwrap();
    let x = dir.path().join("exclude.txt");
    std::fs::write(&x, "198.18.1.0/24\n").unwrap();
    let (t, x) = (t.to_str().unwrap(), x.to_str().unwrap());
    let allow = ["--allow", "198.18.0.0/15"];
    let set = target_set(&probe_args(
        &[&["--file", t, "--exclude", x], &allow[..]].concat(),
    ))
    .unwrap();
    assert_eq!(
        set.prefixes(),
        vec!["198.18.0.0/24".parse::<IpNet>().unwrap()]
    );
    std::fs::write(x, "198.18.1.0/24\n198.18.1.0/33\n").unwrap();
    let e = target_set(&probe_args(
        &[&["--file", t, "--exclude", x], &allow[..]].concat(),
    ))
    .unwrap_err();
    assert_eq!(e.code, exit::DATAERR);
    assert!(e.message.contains(&format!("{x}:2: ")), "{}", e.message);
}

#[test]
fn blocks_without_responsive_addresses_are_judged_down_from_the_sweep() {
    let spec = TargetSpec {
        include: vec![
            "198.18.1.0/24".parse().unwrap(),
            "198.18.2.0/25".parse().unwrap(),
        ],
        allow: vec!["198.18.0.0/15".parse().unwrap()],
        ..TargetSpec::default()
    };
    let (set, _) = TargetSet::build(&spec).unwrap();
    let (b1, b2): (IpNet, IpNet) = (
        "198.18.1.0/24".parse().unwrap(),
        "198.18.2.0/24".parse().unwrap(),
    );
    let found = BTreeMap::from([(b1, vec!["198.18.1.9".parse().unwrap()]), (b2, vec![])]);
    let outcomes = [RoundOutcome {
        block: b1,
        state: BlockState::Up,
        probes: 1,
        replies: 1,
        belief: 0.99,
        availability: 0.95,
        rtt: Default::default(),
    }];
    let r = block_reports(&set, &found, &outcomes);
    assert_eq!(
        (r[0].state, r[0].probes, r[0].responsive),
        (BlockState::Up, 1, 1)
    );
    assert_eq!(
        (r[1].state, r[1].probes, r[1].replies, r[1].responsive),
        (BlockState::Down, 128, 0, 0)
    );
    let line = serde_json::to_string(&r[1]).unwrap();
    assert!(
        line.contains("\"state\":\"down\"") && line.contains("\"block\":\"198.18.2.0/24\""),
        "{line}"
    );
}
