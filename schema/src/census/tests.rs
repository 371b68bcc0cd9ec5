use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn set(addrs: &[&str]) -> CensusSet {
    addrs.iter().map(|a| ip(a)).collect()
}

#[test]
fn addresses_are_kept_sorted_and_deduplicated_by_their_own_block() {
    let s = set(&[
        "198.18.3.9",
        "2001:db8:1::1",
        "198.18.3.1",
        "198.18.3.9",
        "198.18.0.255",
        "2001:db8:1:ffff::1",
        "2001:db8::7",
    ]);
    assert_eq!(s.block_count(), 4);
    assert_eq!(s.addr_count(), 6);
    let blocks: Vec<(String, Vec<String>)> = s
        .blocks()
        .map(|b| {
            (
                b.block.to_string(),
                b.addrs().map(|a| a.to_string()).collect(),
            )
        })
        .collect();
    let want = [
        ("198.18.0.0/24", vec!["198.18.0.255"]),
        ("198.18.3.0/24", vec!["198.18.3.1", "198.18.3.9"]),
        ("2001:db8::/48", vec!["2001:db8::7"]),
        (
            "2001:db8:1::/48",
            vec!["2001:db8:1::1", "2001:db8:1:ffff::1"],
        ),
    ];
    let want: Vec<(String, Vec<String>)> = want
        .iter()
        .map(|(b, a)| (b.to_string(), a.iter().map(|s| s.to_string()).collect()))
        .collect();
    assert_eq!(blocks, want);
}

#[test]
fn encoding_round_trips() {
    let mut addrs: Vec<IpAddr> = (0u32..(1 << 16))
        .map(|i| IpAddr::V4(Ipv4Addr::from(0x7f00_0000 | (i * 7))))
        .collect();
    addrs.push(ip("0.0.0.0"));
    addrs.push(ip("255.255.255.255"));
    addrs.push(ip("::"));
    addrs.push(ip("2001:db8::1"));
    addrs.push(ip("2001:db8:0:ffff:ffff:ffff:ffff:ffff"));
    addrs.push(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    let s: CensusSet = addrs.iter().copied().collect();
    let back = CensusSet::decode(&s.encode()).expect("decodes");
    assert_eq!(back, s);
    assert_eq!(
        CensusSet::decode(&CensusSet::default().encode()),
        Ok(CensusSet::default())
    );
}

#[test]
fn a_dense_census_is_small_on_the_wire_and_in_memory() {
    // 127.0.0.0/16 with every address answering: 65,536 addresses.
    let s: CensusSet = (0u32..(1 << 16))
        .map(|i| IpAddr::V4(Ipv4Addr::from(0x7f00_0000 | i)))
        .collect();
    assert_eq!(s.addr_count(), 65_536);
    assert!(s.heap_bytes() <= 65_536 + 256 * 8, "{}", s.heap_bytes());
    let wire = s.encode().len();
    assert!(wire < 2_000, "{wire} bytes");
}

#[test]
fn json_keeps_the_list_form() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Doc {
        #[serde(with = "as_list")]
        census: CensusSet,
    }
    let json = r#"{"census":[{"block":"198.18.3.0/24","addrs":["198.18.3.9","198.18.3.1"]},{"block":"198.18.3.0/24","addrs":["198.18.4.1"]}]}"#;
    let d: Doc = serde_json::from_str(json).unwrap();
    assert_eq!(d.census, set(&["198.18.3.1", "198.18.3.9", "198.18.4.1"]));
    assert_eq!(
        serde_json::to_string(&d).unwrap(),
        r#"{"census":[{"block":"198.18.3.0/24","addrs":["198.18.3.1","198.18.3.9"]},{"block":"198.18.4.0/24","addrs":["198.18.4.1"]}]}"#
    );
}

#[test]
fn malformed_data_is_refused() {
    let s = set(&["198.18.3.1", "198.18.3.9", "198.18.5.1", "2001:db8::1"]);
    let raw = s.raw();
    assert_eq!(CensusSet::from_raw(&raw), Ok(s.clone()));
    // Every truncation is refused, never misread.
    for n in 0..raw.len() {
        assert!(CensusSet::from_raw(&raw[..n]).is_err(), "truncated at {n}");
    }
    // Trailing bytes.
    let mut long = raw.clone();
    long.push(0);
    assert!(CensusSet::from_raw(&long).is_err());
    // Written by hand: version, one IPv4 block (0.0.5.0/24) with offsets 1
    // and 1 + 8, no IPv6 block.
    assert_eq!(
        CensusSet::from_raw(&[1, 1, 5, 1, 1, 8, 0]),
        Ok(set(&["0.0.5.1", "0.0.5.9"]))
    );
    // A repeated offset (a gap of 0) inside a block.
    assert!(CensusSet::from_raw(&[1, 1, 5, 1, 1, 0, 0]).is_err());
    // Offsets past the end of the block.
    assert!(CensusSet::from_raw(&[1, 1, 5, 1, 200, 100, 0]).is_err());
    // Two blocks with the same key.
    assert!(CensusSet::from_raw(&[1, 2, 5, 0, 1, 0, 0, 2, 0]).is_err());
    // An unknown version.
    let mut v = raw.clone();
    v[0] = 2;
    assert_eq!(CensusSet::from_raw(&v), Err(CensusError::Version(2)));
    // Not zstd at all.
    assert!(matches!(
        CensusSet::decode(b"nonsense"),
        Err(CensusError::Decompress(_))
    ));
}
