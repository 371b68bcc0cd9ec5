//! MRT files (RFC 6396) to BGP events, as RouteViews and RIPE RIS publish
//! them: update files (BGP4MP messages and state changes) and RIB dumps
//! (TABLE_DUMP_V2, read as announcements at the dump's time), plain or
//! compressed.
//!
//! Decoding is `bgpkit-parser`'s; this module only maps its records to
//! [`Event`]s with their time. A file that is malformed or cut short keeps
//! every event decoded before the bad record: [`Decoded::error`] says
//! which record broke and why, and the caller decides what to do with both.

use std::io::Cursor;

use bgpkit_parser::models::{Bgp4MpEnum, BgpState, ElemType, MrtMessage};
use bgpkit_parser::{BgpElem, BgpkitParser, Elementor, ParserError};
use darkwatch_schema::inputs::text::decompress;

use super::state::{Event, PeerKey};

/// An event and when it happened (Unix milliseconds, from the record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedEvent {
    pub at_ms: i64,
    pub event: Event,
}

/// What a file gave: its events in file order, how many records were read
/// and, if it stopped early, why.
#[derive(Debug, Default)]
pub struct Decoded {
    pub events: Vec<TimedEvent>,
    pub records: u64,
    pub error: Option<String>,
}

/// Decodes an MRT file's bytes (compression sniffed from the magic bytes).
/// `source` names the collector the file comes from in every [`PeerKey`],
/// so the successive files of one collector share their peers.
pub fn decode(bytes: Vec<u8>, source: &str) -> Decoded {
    let mut out = Decoded::default();
    let bytes = match decompress(bytes) {
        Ok(b) => b,
        Err(e) => {
            out.error = Some(format!("cannot decompress: {e}"));
            return out;
        }
    };
    let mut parser = BgpkitParser::from_reader(Cursor::new(bytes));
    let mut elementor = Elementor::new();
    loop {
        let record = match parser.next_record() {
            Ok(r) => r,
            Err(e) if matches!(e.error, ParserError::EofExpected) => break,
            Err(e) => {
                let what = e.error.to_string();
                let what = what.strip_prefix("Error: ").unwrap_or(&what);
                out.error = Some(format!(
                    "MRT record {} is malformed or truncated: {what} ({} record(s) before it kept)",
                    out.records + 1,
                    out.records
                ));
                break;
            }
        };
        out.records += 1;
        let header_ms = record.common_header.timestamp as i64 * 1000
            + record.common_header.microsecond_timestamp.unwrap_or(0) as i64 / 1000;
        if let MrtMessage::Bgp4Mp(Bgp4MpEnum::StateChange(change)) = &record.message {
            let peer = PeerKey {
                source: source.to_string(),
                ip: change.peer_ip,
                asn: change.peer_asn.to_u32(),
            };
            let event = match (change.old_state, change.new_state) {
                (_, BgpState::Established) => Event::PeerUp(peer),
                (BgpState::Established, _) => Event::PeerDown(peer),
                _ => continue,
            };
            out.events.push(TimedEvent {
                at_ms: header_ms,
                event,
            });
            continue;
        }
        // A RIB dump's entries carry when each route was learnt (days
        // before, often); the table is the state at the dump's time.
        let rib = !matches!(record.message, MrtMessage::Bgp4Mp(_));
        for elem in elementor.record_to_elems(record) {
            out.events.push(TimedEvent {
                at_ms: if rib {
                    header_ms
                } else {
                    (elem.timestamp * 1000.0) as i64
                },
                event: elem_event(elem, source),
            });
        }
    }
    out
}

/// One announced or withdrawn prefix as a core event. The origin is the
/// last AS of the path (the smallest of an AS_SET there).
pub fn elem_event(elem: BgpElem, source: &str) -> Event {
    let peer = PeerKey {
        source: source.to_string(),
        ip: elem.peer_ip,
        asn: elem.peer_asn.to_u32(),
    };
    let prefix = elem.prefix.prefix;
    match elem.elem_type {
        ElemType::ANNOUNCE => Event::Announce {
            peer,
            prefix,
            origin: elem
                .origin_asns
                .and_then(|o| o.iter().map(|a| a.to_u32()).min()),
        },
        ElemType::WITHDRAW => Event::Withdraw { peer, prefix },
    }
}

#[cfg(test)]
mod tests;
