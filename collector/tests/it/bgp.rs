//! `bgp import` and `[bgp]` through the real binary: MRT files written by
//! `bgpkit-parser`'s encoder (the wire format RouteViews and RIS publish),
//! gzip-compressed and cut short.

use std::io::Write;
use std::net::IpAddr;
use std::process::Command;

use bgpkit_parser::encoder::MrtUpdatesEncoder;
use bgpkit_parser::models::{AsPath, Asn, ElemType, NetworkPrefix};
use bgpkit_parser::BgpElem;

use crate::common::BIN;

fn elem(t: f64, kind: ElemType, prefix: &str) -> BgpElem {
    BgpElem {
        timestamp: t,
        elem_type: kind,
        peer_ip: IpAddr::from([192, 0, 2, 1]),
        peer_asn: Asn::new_32bit(64500),
        prefix: NetworkPrefix::new(prefix.parse().unwrap(), None),
        next_hop: Some(IpAddr::from([192, 0, 2, 1])),
        as_path: (kind == ElemType::ANNOUNCE).then(|| AsPath::from_sequence([64500, 65001])),
        ..Default::default()
    }
}

fn mrt(elems: &[BgpElem]) -> Vec<u8> {
    let mut enc = MrtUpdatesEncoder::new();
    elems.iter().for_each(|e| enc.process_elem(e));
    enc.export_bytes().unwrap().to_vec()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn rounds(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn bgp_import_gives_per_round_prefix_state_and_keeps_what_came_before_a_truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    // Round 0 (60 s rounds): announced; round 1: withdrawn; round 2: the
    // second file, announced again, cut in its last record.
    let first = dir.path().join("updates.20141222.0000.gz");
    std::fs::write(
        &first,
        gzip(&mrt(&[
            elem(10.0, ElemType::ANNOUNCE, "198.18.1.0/24"),
            elem(70.0, ElemType::WITHDRAW, "198.18.1.0/24"),
        ])),
    )
    .unwrap();
    let second = dir.path().join("updates.20141222.0015");
    let bytes = mrt(&[
        elem(130.0, ElemType::ANNOUNCE, "198.18.1.0/24"),
        elem(131.0, ElemType::ANNOUNCE, "198.18.2.0/24"),
    ]);
    std::fs::write(&second, &bytes[..bytes.len() - 3]).unwrap();

    let out = Command::new(BIN)
        .args(["bgp", "import", "--round-secs", "60"])
        .arg(&second)
        .arg(&first)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{err}");
    assert!(
        err.contains("updates.20141222.0015") && err.contains("MRT record 2"),
        "{err}"
    );
    let r = rounds(&out.stdout);
    let state = |i: usize| &r[i]["prefixes"][0];
    assert_eq!(r.len(), 3, "{r:?}");
    assert_eq!(state(0)["announced_by"], 1);
    assert_eq!(state(0)["origins"], serde_json::json!([65001]));
    assert_eq!(
        (
            state(1)["announced_by"].as_u64(),
            state(1)["withdrawals"].as_u64()
        ),
        (Some(0), Some(1))
    );
    assert_eq!(state(1)["known_peers"], 1);
    // The record before the cut is kept; the one after is not invented.
    assert_eq!(r[2]["prefixes"].as_array().unwrap().len(), 1);
    assert_eq!(state(2)["announcements"], 1);

    let out = Command::new(BIN)
        .args(["bgp", "import", "--round-secs", "60"])
        .arg(&first)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(rounds(&out.stdout).len(), 2);
}

#[test]
fn check_config_refuses_a_bgp_section_without_input_or_with_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("collector.toml");
    let check = |text: String| {
        std::fs::write(&p, text).unwrap();
        Command::new(BIN)
            .args(["check-config", "--config"])
            .arg(&p)
            .output()
            .unwrap()
    };
    let out = check("[bgp]\nround_secs = 60\n".into());
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("give bmp_listen, mrt_dir"));
    let out = check("[bgp]\nmrt_dir = \"/nonexistent/mrt\"\n".into());
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mrt_dir"));
    let out = check(format!("[bgp]\nmrt_dir = {:?}\n", dir.path()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("bgp mrt_dir"));
}
