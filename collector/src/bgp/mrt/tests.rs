//! MRT bytes are made by `bgpkit-parser`'s own encoder, so the tests read
//! the real wire format, not a hand-made approximation.

use std::io::Write;
use std::net::IpAddr;

use bgpkit_parser::encoder::{MrtRibEncoder, MrtUpdatesEncoder};
use bgpkit_parser::models::{
    AsPath, Asn, Bgp4MpStateChange, Bgp4MpType, CommonHeader, EntryType, MrtRecord, NetworkPrefix,
};

use super::*;

const PEER: [u8; 4] = [192, 0, 2, 1];

fn elem(t: f64, kind: ElemType, prefix: &str, path: &[u32]) -> BgpElem {
    BgpElem {
        timestamp: t,
        elem_type: kind,
        peer_ip: IpAddr::from(PEER),
        peer_asn: Asn::new_32bit(64500),
        prefix: NetworkPrefix::new(prefix.parse().unwrap(), None),
        next_hop: Some(IpAddr::from(PEER)),
        as_path: (!path.is_empty()).then(|| AsPath::from_sequence(path)),
        origin_asns: None,
        ..Default::default()
    }
}

fn updates(elems: &[BgpElem]) -> Vec<u8> {
    let mut enc = MrtUpdatesEncoder::new();
    for e in elems {
        enc.process_elem(e);
    }
    enc.export_bytes().unwrap().to_vec()
}

fn state_change(t: u32, old: BgpState, new: BgpState) -> Vec<u8> {
    let change = Bgp4MpStateChange {
        msg_type: Bgp4MpType::StateChangeAs4,
        peer_asn: Asn::new_32bit(64500),
        local_asn: Asn::new_32bit(64501),
        interface_index: 0,
        peer_ip: IpAddr::from(PEER),
        local_addr: IpAddr::from([192, 0, 2, 2]),
        old_state: old,
        new_state: new,
    };
    MrtRecord {
        common_header: CommonHeader {
            timestamp: t,
            microsecond_timestamp: None,
            entry_type: EntryType::BGP4MP,
            entry_subtype: Bgp4MpType::StateChangeAs4 as u16,
            length: 0,
        },
        message: MrtMessage::Bgp4Mp(Bgp4MpEnum::StateChange(change)),
    }
    .encode()
    .unwrap()
    .to_vec()
}

fn sample() -> Vec<u8> {
    let mut bytes = state_change(100, BgpState::OpenConfirm, BgpState::Established);
    bytes.extend(updates(&[
        elem(101.5, ElemType::ANNOUNCE, "198.18.1.0/24", &[64500, 65001]),
        elem(102.0, ElemType::ANNOUNCE, "198.18.2.0/24", &[64500, 65002]),
        elem(103.0, ElemType::WITHDRAW, "198.18.2.0/24", &[]),
    ]));
    bytes.extend(state_change(104, BgpState::Established, BgpState::Idle));
    bytes
}

fn peer() -> PeerKey {
    PeerKey {
        source: "rv".into(),
        ip: IpAddr::from(PEER),
        asn: 64500,
    }
}

#[test]
fn update_file_gives_state_changes_announcements_and_withdrawals_in_order() {
    let d = decode(sample(), "rv");
    assert_eq!(d.error, None);
    assert_eq!(d.records, 5);
    let got: Vec<(i64, Event)> = d.events.into_iter().map(|e| (e.at_ms, e.event)).collect();
    assert_eq!(
        got,
        vec![
            (100_000, Event::PeerUp(peer())),
            (
                101_500,
                Event::Announce {
                    peer: peer(),
                    prefix: "198.18.1.0/24".parse().unwrap(),
                    origin: Some(65001)
                }
            ),
            (
                102_000,
                Event::Announce {
                    peer: peer(),
                    prefix: "198.18.2.0/24".parse().unwrap(),
                    origin: Some(65002)
                }
            ),
            (
                103_000,
                Event::Withdraw {
                    peer: peer(),
                    prefix: "198.18.2.0/24".parse().unwrap()
                }
            ),
            (104_000, Event::PeerDown(peer())),
        ]
    );
}

#[test]
fn compressed_files_read_like_plain_ones() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&sample()).unwrap();
    let d = decode(gz.finish().unwrap(), "rv");
    assert_eq!((d.error, d.records, d.events.len()), (None, 5, 5));
}

#[test]
fn truncated_file_keeps_the_records_before_the_cut_and_says_which_broke() {
    let bytes = sample();
    let cut = bytes.len() - 5;
    let d = decode(bytes[..cut].to_vec(), "rv");
    assert_eq!(d.records, 4);
    assert_eq!(d.events.len(), 4);
    let e = d.error.expect("an error");
    assert!(e.contains("MRT record 5"), "{e}");
    assert!(e.contains("4 record(s) before it kept"), "{e}");
}

#[test]
fn garbage_and_bad_compression_are_errors_not_panics() {
    let d = decode(vec![0x1f, 0x8b, 0, 1, 2, 3], "rv");
    assert!(d.error.unwrap().contains("cannot decompress"));
    let d = decode(b"not an MRT file at all, just text\n".to_vec(), "rv");
    assert!(d.events.is_empty());
    assert!(d.error.is_some());
    let d = decode(Vec::new(), "rv");
    assert_eq!((d.records, d.error), (0, None));
}

#[test]
fn rib_dump_entries_are_announcements_at_the_dump_time() {
    let mut enc = MrtRibEncoder::new();
    // The first entry's time is the dump's; the second route was learnt
    // long before it.
    enc.process_elem(&elem(
        7200.0,
        ElemType::ANNOUNCE,
        "198.18.1.0/24",
        &[64500, 65001],
    ))
    .unwrap();
    enc.process_elem(&elem(
        60.0,
        ElemType::ANNOUNCE,
        "198.18.2.0/24",
        &[64500, 65002],
    ))
    .unwrap();
    let d = decode(enc.export_bytes().unwrap().to_vec(), "rv");
    assert_eq!(d.error, None);
    let mut got: Vec<(i64, Option<u32>)> = d
        .events
        .iter()
        .map(|e| match &e.event {
            Event::Announce { origin, .. } => (e.at_ms, *origin),
            other => panic!("{other:?}"),
        })
        .collect();
    got.sort();
    assert_eq!(got, [(7_200_000, Some(65001)), (7_200_000, Some(65002))]);
}
