//! BMP bytes: the common and per-peer headers are laid out here (RFC 7854
//! §4.1–4.2, fixed fields); every BGP message inside is encoded by
//! `bgpkit-parser`.

use std::net::{IpAddr, Ipv4Addr};

use bgpkit_parser::models::{
    AsPath, AsnLength, BgpMessage, BgpOpenMessage, BgpUpdateMessage, ElemType, NetworkPrefix,
};
use bgpkit_parser::BgpElem;

use super::*;

const PEER: [u8; 4] = [192, 0, 2, 1];

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![3];
    m.extend(((HEADER_LEN + 42 + body.len()) as u32).to_be_bytes());
    m.push(kind);
    // Per-peer header: global peer, IPv4, 4-byte ASNs.
    m.extend([0, 0]);
    m.extend([0; 8]);
    m.extend([0; 12]);
    m.extend(PEER);
    m.extend(64500u32.to_be_bytes());
    m.extend(PEER);
    m.extend(1_000u32.to_be_bytes());
    m.extend(0u32.to_be_bytes());
    m.extend(body);
    m
}

fn open(asn: u32) -> Vec<u8> {
    BgpMessage::Open(BgpOpenMessage {
        version: 4,
        asn: Asn::new_32bit(asn),
        hold_time: 180,
        bgp_identifier: Ipv4Addr::from(PEER),
        extended_length: false,
        opt_params: vec![],
    })
    .encode(AsnLength::Bits32)
    .unwrap()
    .to_vec()
}

fn peer_up() -> Vec<u8> {
    let mut body = vec![0; 12];
    body.extend([192, 0, 2, 2]);
    body.extend(179u16.to_be_bytes());
    body.extend(40000u16.to_be_bytes());
    body.extend(open(64501));
    body.extend(open(64500));
    message(3, &body)
}

fn peer_down() -> Vec<u8> {
    // Reason 4: the remote system closed the session, no data.
    message(2, &[4])
}

fn route(kind: ElemType, prefix: &str) -> Vec<u8> {
    let elem = BgpElem {
        elem_type: kind,
        peer_ip: IpAddr::from(PEER),
        peer_asn: Asn::new_32bit(64500),
        prefix: NetworkPrefix::new(prefix.parse().unwrap(), None),
        next_hop: Some(IpAddr::from(PEER)),
        as_path: (kind == ElemType::ANNOUNCE).then(|| AsPath::from_sequence([64500, 65001])),
        ..Default::default()
    };
    let update = BgpMessage::Update(BgpUpdateMessage::from(&elem))
        .encode(AsnLength::Bits32)
        .unwrap();
    message(0, &update)
}

fn peer() -> PeerKey {
    PeerKey {
        source: "198.51.100.1".into(),
        ip: IpAddr::from(PEER),
        asn: 64500,
    }
}

#[test]
fn peer_up_routes_and_peer_down_become_core_events() {
    let r = "198.51.100.1";
    assert_eq!(decode(&peer_up(), r).unwrap(), vec![Event::PeerUp(peer())]);
    assert_eq!(
        decode(&route(ElemType::ANNOUNCE, "198.18.1.0/24"), r).unwrap(),
        vec![Event::Announce {
            peer: peer(),
            prefix: "198.18.1.0/24".parse().unwrap(),
            origin: Some(65001)
        }]
    );
    assert_eq!(
        decode(&route(ElemType::WITHDRAW, "198.18.1.0/24"), r).unwrap(),
        vec![Event::Withdraw {
            peer: peer(),
            prefix: "198.18.1.0/24".parse().unwrap()
        }]
    );
    assert_eq!(
        decode(&peer_down(), r).unwrap(),
        vec![Event::PeerDown(peer())]
    );
}

#[test]
fn a_stream_is_cut_into_messages_by_their_length() {
    let mut stream = peer_up();
    let first = stream.len();
    stream.extend(route(ElemType::ANNOUNCE, "198.18.1.0/24"));
    assert_eq!(frame_len(&stream[..3]), Ok(None));
    assert_eq!(frame_len(&stream[..first - 1]), Ok(None));
    assert_eq!(frame_len(&stream), Ok(Some(first)));
    let rest = &stream[first..];
    assert_eq!(frame_len(rest), Ok(Some(rest.len())));
}

#[test]
fn unframeable_streams_and_broken_messages_are_clear_errors() {
    let e = frame_len(b"GET / HTTP/1.1\r\n").unwrap_err();
    assert!(e.contains("BMP common header"), "{e}");
    let e = frame_len(&[3, 0xff, 0xff, 0xff, 0xff, 0]).unwrap_err();
    assert!(e.contains("out of bounds"), "{e}");
    // A route monitoring message whose BGP update is cut: framing holds
    // (the length says where it ends), the message is refused.
    let mut m = route(ElemType::ANNOUNCE, "198.18.1.0/24");
    m.truncate(m.len() - 4);
    let len = (m.len() as u32).to_be_bytes();
    m[1..5].copy_from_slice(&len);
    assert_eq!(frame_len(&m), Ok(Some(m.len())));
    let e = decode(&m, "r").unwrap_err();
    assert!(e.starts_with("BMP message"), "{e}");
}
