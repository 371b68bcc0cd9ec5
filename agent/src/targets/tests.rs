//! Target sets: exclusions, reserved space, limits and blocks.

use super::*;

fn nets(v: &[&str]) -> Vec<IpNet> {
    v.iter().map(|s| parse_target(s).unwrap()).collect()
}

fn spec(include: &[&str], exclude: &[&str], allow: &[&str]) -> TargetSpec {
    TargetSpec {
        include: nets(include),
        exclude: nets(exclude),
        allow: nets(allow),
        ..TargetSpec::default()
    }
}

/// The set as a one-shot command builds it (an error if nothing is left).
fn build(include: &[&str], exclude: &[&str], allow: &[&str]) -> Result<TargetSet, TargetError> {
    TargetSet::build_strict(&spec(include, exclude, allow)).map(|(set, _)| set)
}

#[test]
fn exclusion_lists_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("exclude.txt");
    std::fs::write(&f, "# ours\n198.18.4.0/24\n198.18.5.0/33\n").unwrap();
    let err = read_exclusions(&f).unwrap_err();
    assert!(
        matches!(err, TargetError::Exclusion(ref e) if e.line == 3),
        "{err}"
    );
    assert!(err.to_string().contains(":3: "), "{err}");
    std::fs::write(&f, "# ours\n198.18.4.0/24\n").unwrap();
    assert_eq!(read_exclusions(&f).unwrap(), nets(&["198.18.4.0/24"]));
    std::fs::write(&f, "# nothing excluded\n").unwrap();
    assert!(read_exclusions(&f).unwrap().is_empty());
    assert!(matches!(
        read_exclusions(&dir.path().join("missing.txt")),
        Err(TargetError::Input(InputError::Io { .. }))
    ));
}

#[test]
fn single_targets_clear_host_bits() {
    // Host bits are cleared like ZMap does.
    assert_eq!(
        parse_target("198.18.0.77/24").unwrap().to_string(),
        "198.18.0.0/24"
    );
    assert!(parse_target_arg("198.18.0.300").is_err());
}

#[test]
fn reserved_space_is_excluded_unless_allowed() {
    assert!(matches!(
        build(&["198.18.0.0/24"], &[], &[]),
        Err(TargetError::AllExcluded)
    ));
    let set = build(&["198.18.0.0/24"], &[], &["198.18.0.0/15"]).unwrap();
    assert_eq!(set.address_count(), 256);
    // 10/8 is carved out of a /7 that spans it.
    let set = build(&["10.0.0.0/7"], &[], &[]).unwrap();
    assert_eq!(set.prefixes(), nets(&["11.0.0.0/8"]));
    let set = build(&["9.255.255.0/24", "10.0.0.0/24", "11.0.0.0/24"], &[], &[]).unwrap();
    assert_eq!(set.prefixes(), nets(&["9.255.255.0/24", "11.0.0.0/24"]));
    // IPv6 documentation space likewise.
    assert!(matches!(
        build(&["2001:db8::1"], &[], &[]),
        Err(TargetError::AllExcluded)
    ));
    assert!(build(&["2001:db8::1"], &[], &["2001:db8::/32"]).is_ok());
}

#[test]
fn exclusions_win_over_allow_and_split_prefixes() {
    let set = build(
        &["198.18.0.0/22"],
        &["198.18.1.0/24", "198.18.2.128/25"],
        &["198.18.0.0/15"],
    )
    .unwrap();
    assert_eq!(
        set.prefixes(),
        nets(&["198.18.0.0/24", "198.18.2.0/25", "198.18.3.0/24"])
    );
    assert_eq!(set.address_count(), 256 + 128 + 256);
    assert_eq!(
        set.blocks(),
        nets(&["198.18.0.0/24", "198.18.2.0/24", "198.18.3.0/24"])
    );
    assert_eq!(
        set.addresses_in(&"198.18.2.0/24".parse().unwrap()).len(),
        128
    );
    assert!(set.contains("198.18.3.9".parse().unwrap()));
    assert!(!set.contains("198.18.1.9".parse().unwrap()));
    assert!(!set.contains("198.18.2.200".parse().unwrap()));
}

#[test]
fn small_prefixes_map_to_their_block() {
    let set = build(
        &["198.18.5.7", "198.18.5.9", "198.18.6.0/28"],
        &[],
        &["198.18.0.0/15"],
    )
    .unwrap();
    assert_eq!(set.blocks(), nets(&["198.18.5.0/24", "198.18.6.0/24"]));
    let addrs = set.addresses_in(&"198.18.5.0/24".parse().unwrap());
    assert_eq!(
        addrs,
        vec![
            "198.18.5.7".parse::<IpAddr>().unwrap(),
            "198.18.5.9".parse().unwrap()
        ]
    );
}

#[test]
fn ipv6_sweeps_are_limited_to_slash_120() {
    let err = build(&["2400:1::/64"], &[], &[]).unwrap_err();
    assert!(matches!(err, TargetError::Ipv6TooLarge(_)));
    assert!(err.to_string().contains("2400:1::/64"));
    let set = build(&["2400:1::/120", "2400:1::1:5"], &[], &[]).unwrap();
    assert_eq!(set.address_count(), 257);
    assert_eq!(set.blocks(), nets(&["2400:1::/48"]));
    // A wide prefix that is entirely reserved is just excluded, not refused.
    assert!(matches!(
        build(&["fe80::/64"], &[], &[]),
        Err(TargetError::AllExcluded)
    ));
}

#[test]
fn max_targets_caps_the_set() {
    let spec = TargetSpec {
        include: nets(&["11.0.0.0/8", "12.0.0.0/31"]),
        ..TargetSpec::default()
    };
    let err = TargetSet::build_strict(&spec).unwrap_err();
    assert!(
        matches!(
            err,
            TargetError::TooMany {
                count: 16_777_218,
                ..
            }
        ),
        "{err}"
    );
    let spec = TargetSpec {
        include: nets(&["11.0.0.0/8"]),
        ..TargetSpec::default()
    };
    assert_eq!(TargetSet::build(&spec).unwrap().0.blocks().len(), 65_536);
    assert!(matches!(
        TargetSet::build(&TargetSpec::default()),
        Err(TargetError::NoTargets)
    ));
}

fn skips(include: &[&str], exclude: &[&str], max_targets: u64) -> (TargetSet, Vec<Skipped>) {
    TargetSet::build(&TargetSpec {
        max_targets,
        ..spec(include, exclude, &["198.18.0.0/15"])
    })
    .unwrap()
}

#[test]
fn build_keeps_what_it_can_and_says_what_it_skipped_and_why() {
    // Reserved, excluded and too-wide IPv6 space is skipped; the rest stays.
    let (set, skipped) = skips(
        &[
            "198.18.0.0/23",
            "10.0.0.0/24",
            "2400:1::/32",
            "2400:2::/120",
        ],
        &["198.18.1.0/24"],
        1 << 20,
    );
    assert_eq!(set.prefixes(), nets(&["198.18.0.0/24", "2400:2::/120"]));
    let got: Vec<(SkipReason, u64, Vec<IpNet>)> = skipped
        .iter()
        .map(|s| (s.reason, s.addresses, s.examples.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (SkipReason::Excluded, 256, nets(&["198.18.1.0/24"])),
            (SkipReason::Reserved, 256, nets(&["10.0.0.0/24"])),
            (SkipReason::Ipv6TooLarge, u64::MAX, nets(&["2400:1::/32"])),
        ]
    );
    // Over max_targets: the first addresses in order are kept.
    let (set, skipped) = skips(
        &["198.18.0.0/24", "198.18.2.0/24", "2400:2::/120"],
        &[],
        300,
    );
    assert_eq!(
        set.prefixes(),
        nets(&[
            "198.18.0.0/24",
            "198.18.2.0/27",
            "198.18.2.32/29",
            "198.18.2.40/30"
        ])
    );
    assert_eq!(set.address_count(), 300);
    assert_eq!(skipped.len(), 1);
    assert_eq!(
        (skipped[0].reason, skipped[0].addresses),
        (SkipReason::OverMaxTargets, 212 + 256)
    );
    assert!(skipped[0].examples.len() <= MAX_SKIP_EXAMPLES);
    assert_eq!(
        skipped[0].examples[0],
        "198.18.2.44/30".parse::<IpNet>().unwrap()
    );
    // Examples are capped.
    let many: Vec<String> = (0..40).map(|i| format!("10.0.{}.0/24", i * 2)).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let (set, skipped) = skips(&many, &[], 1 << 20);
    assert!(set.is_empty());
    assert_eq!(
        (skipped[0].addresses, skipped[0].examples.len()),
        (40 * 256, MAX_SKIP_EXAMPLES)
    );
    // A strict build refuses what was cut short, names what is empty.
    assert!(matches!(
        TargetSet::build_strict(&TargetSpec {
            max_targets: 300,
            ..spec(&["198.18.0.0/23"], &[], &["198.18.0.0/15"])
        }),
        Err(TargetError::TooMany {
            count: 512,
            max: 300
        })
    ));
    let (set, skipped) = TargetSet::build_strict(&spec(
        &["198.18.0.0/24", "2400:1::/32"],
        &[],
        &["198.18.0.0/15"],
    ))
    .unwrap();
    assert_eq!(set.address_count(), 256);
    assert_eq!(skipped[0].reason, SkipReason::Ipv6TooLarge);
}

#[test]
fn the_address_filter_follows_the_spec() {
    let f = spec(
        &["198.18.0.0/23", "10.0.0.0/24", "2400:1::/32"],
        &["198.18.1.0/24"],
        &[],
    )
    .filter();
    let check = |a: &str| f.check(a.parse().unwrap());
    assert_eq!(check("198.18.1.5"), Err(SkipReason::Excluded));
    assert_eq!(check("198.18.0.5"), Err(SkipReason::Reserved));
    assert_eq!(check("10.0.0.5"), Err(SkipReason::Reserved));
    assert_eq!(check("10.0.1.5"), Err(SkipReason::OutsideCampaign));
    assert_eq!(check("2400:1:ffff::5"), Ok(()));
    assert_eq!(check("2400:2::5"), Err(SkipReason::OutsideCampaign));
    let without = skips(&["198.18.0.0/22"], &[], 1 << 20)
        .0
        .without(&nets(&["198.18.1.0/24", "198.18.3.0/24"]));
    assert_eq!(
        without.prefixes(),
        nets(&["198.18.0.0/24", "198.18.2.0/24"])
    );
}

#[test]
fn range_subtraction_handles_edges() {
    assert_eq!(subtract(&[(0, 10)], &[(0, 10)]), vec![]);
    assert_eq!(subtract(&[(0, 10)], &[(5, 5)]), vec![(0, 4), (6, 10)]);
    assert_eq!(
        subtract(&[(0, 10), (20, 30)], &[(8, 22)]),
        vec![(0, 7), (23, 30)]
    );
    assert_eq!(subtract(&[(5, 10)], &[(0, 1), (12, 13)]), vec![(5, 10)]);
    assert_eq!(
        normalize(vec![(5, 6), (0, 4), (8, 9)]),
        vec![(0, 6), (8, 9)]
    );
    assert_eq!(
        normalize(vec![(0, u128::MAX), (3, 4)]),
        vec![(0, u128::MAX)]
    );
}
