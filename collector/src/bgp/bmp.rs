//! BMP (RFC 7854) messages to BGP events, for the listener routers stream
//! to.
//!
//! BMP is a stream of length-prefixed messages over TCP. [`frame_len`]
//! finds where one ends (from the common header, as `bgpkit-parser` reads
//! it) so the listener can cut the stream; [`decode`] turns one message
//! into events: peer up, peer down (which clears the peer's routes in the
//! core) and the announcements and withdrawals of route monitoring. BGP
//! itself is decoded by `bgpkit-parser`, never here. A message that does
//! not decode is an error for that message only; the framing (its length)
//! still holds, so the stream goes on.

use bgpkit_parser::models::Asn;
use bgpkit_parser::parser::bmp::messages::{
    parse_bmp_common_header, BmpMessageBody, BmpPerPeerHeader,
};
use bgpkit_parser::{parse_bmp_msg, Elementor};
use bytes::Bytes;

use super::mrt::elem_event;
use super::state::{Event, PeerKey};

/// Common header: version (1), length (4), type (1).
pub const HEADER_LEN: usize = 6;

/// Largest message accepted: a BGP message is at most 64 KiB (RFC 8654)
/// and a peer-up carries two; more means the stream is not BMP.
pub const MAX_MESSAGE: usize = 256 * 1024;

/// The length of the message at the start of `buf`, once its common
/// header is there (None: read more). An error means the stream cannot be
/// framed (not BMP version 3, a length out of bounds, an unknown type) and
/// the connection should close.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, String> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let mut head = Bytes::copy_from_slice(&buf[..HEADER_LEN]);
    let header = parse_bmp_common_header(&mut head)
        .map_err(|e| format!("BMP common header is not valid: {e}"))?;
    let len = header.msg_len as usize;
    if !(HEADER_LEN..=MAX_MESSAGE).contains(&len) {
        return Err(format!(
            "BMP message length {len} is out of bounds ({HEADER_LEN} to {MAX_MESSAGE})"
        ));
    }
    Ok((buf.len() >= len).then_some(len))
}

/// What one message means for the core. `router` names the monitored
/// router (its address), so two routers' views of one peer stay apart.
pub fn decode(msg: &[u8], router: &str) -> Result<Vec<Event>, String> {
    let mut data = Bytes::copy_from_slice(msg);
    let parsed = parse_bmp_msg(&mut data).map_err(|e| format!("BMP message: {e}"))?;
    let Some(peer_header) = parsed.per_peer_header else {
        // Initiation, termination: no peer state in them.
        return Ok(Vec::new());
    };
    let peer = peer_key(&peer_header, router);
    Ok(match parsed.message_body {
        BmpMessageBody::PeerUpNotification(_) => vec![Event::PeerUp(peer)],
        BmpMessageBody::PeerDownNotification(_) => vec![Event::PeerDown(peer)],
        BmpMessageBody::RouteMonitoring(rm) => Elementor::bgp_to_elems_iter(
            rm.bgp_message,
            peer_header.timestamp,
            &peer_header.peer_ip,
            &peer_header.peer_asn,
        )
        .map(|elems| elems.map(|e| elem_event(e, router)).collect())
        .unwrap_or_default(),
        _ => Vec::new(),
    })
}

fn peer_key(h: &BmpPerPeerHeader, router: &str) -> PeerKey {
    PeerKey {
        source: router.to_string(),
        ip: h.peer_ip,
        asn: Asn::to_u32(&h.peer_asn),
    }
}

#[cfg(test)]
mod tests;
