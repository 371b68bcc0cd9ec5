//! The batch sweeper: discovery's fast path, zmap-style. One thread sends an
//! echo request to every address, paced by the global rate limiter and never
//! waiting on a reply; another reads replies from its own raw socket as they
//! come and matches them on (identifier, payload); the sweep ends `timeout`
//! after the last send. Nothing is kept per probe in flight, so a dead fifth
//! of the space costs one timeout in total, not one per address.
//!
//! Packet building and reply matching are pure functions ([`echo_request`],
//! [`parse_echo_reply`]), tested without sockets.

use std::collections::HashSet;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::{
    filter, raise_recv_buffer, socket_error, BatchSweep, IcmpError, PINGER_IDENTS,
    RECV_BUFFER_BYTES,
};
use crate::ratelimit::RateLimiter;

/// Marks a sweep probe's payload; followed by the destination address, which
/// the reply must echo back from that same address.
const MAGIC: &[u8; 8] = b"dwsweep\0";
/// ICMP header (8) + magic (8) + destination (4) + padding (4).
pub const REQUEST_LEN: usize = 24;
/// How often the receiver drains its socket.
const RECV_POLL: Duration = Duration::from_millis(2);
/// Send buffer asked for: room for bursts while the stack catches up.
const SEND_BUFFER_BYTES: usize = 4 << 20;
/// Retries of one packet while the stack reports no buffer space.
const MAX_NOBUFS_RETRIES: u32 = 200;

/// Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The ICMP echo request (no IP header) a sweep sends to `dst`.
pub fn echo_request(ident: u16, seq: u16, dst: Ipv4Addr) -> [u8; REQUEST_LEN] {
    marked_echo_request(MAGIC, ident, seq, dst)
}

/// An ICMP echo request (no IP header) whose payload is `magic` and the
/// destination `dst` (the rounds' probes carry their own magic).
pub fn marked_echo_request(
    magic: &[u8; 8],
    ident: u16,
    seq: u16,
    dst: Ipv4Addr,
) -> [u8; REQUEST_LEN] {
    let mut p = [0u8; REQUEST_LEN];
    p[0] = 8; // echo request, code 0
    p[4..6].copy_from_slice(&ident.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..16].copy_from_slice(magic);
    p[16..20].copy_from_slice(&dst.octets());
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// Matches a packet read from a raw ICMPv4 socket (IPv4 header included)
/// against this sweep: an echo reply with our identifier and payload, sent
/// by the address the payload names. Returns that address.
pub fn parse_echo_reply(pkt: &[u8], ident: u16) -> Option<Ipv4Addr> {
    let first = *pkt.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < 20 || pkt.len() < ihl + REQUEST_LEN || pkt[9] != 1 {
        return None;
    }
    let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
    let icmp = &pkt[ihl..];
    if icmp[0] != 0 || icmp[1] != 0 || icmp[4..6] != ident.to_be_bytes() {
        return None;
    }
    if &icmp[8..16] != MAGIC || icmp[16..20] != src.octets() {
        return None;
    }
    Some(src)
}

/// How many identifiers sweeps take turns on: the low half's share that
/// echo probes leave ([`PINGER_IDENTS`]).
const SWEEP_IDENTS: u16 = 0x8000 - PINGER_IDENTS;

/// The real batch sweeper over a raw ICMPv4 socket of its own, opened for
/// each sweep. Each sweep takes the next identifier from `base` on (modulo
/// 2^15), so that sweeps running at once (discovery keeps two chunks in
/// flight) never take each other's replies; the range must not overlap the
/// identifiers of echo probes and traceroutes (see
/// [`super::SurgePinger::new`]).
#[derive(Debug)]
pub struct RawSweeper {
    base: u16,
    next: AtomicU16,
}

impl RawSweeper {
    pub fn new(base: u16) -> Self {
        Self {
            base,
            next: AtomicU16::new(0),
        }
    }

    /// The identifier of the next sweep.
    fn next_ident(&self) -> u16 {
        let k = self.next.fetch_add(1, Ordering::Relaxed) % SWEEP_IDENTS;
        self.base.wrapping_add(k) & 0x7fff
    }
}

impl BatchSweep for RawSweeper {
    fn sweep_v4(
        &self,
        addrs: Vec<Ipv4Addr>,
        limiter: Arc<RateLimiter>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Vec<Ipv4Addr>, IcmpError>> {
        let ident = self.next_ident();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || run_sweep(ident, &addrs, &limiter, timeout))
                .await
                .map_err(|e| {
                    socket_error(
                        "IPv4",
                        io::Error::other(format!("sweep thread failed: {e}")),
                    )
                })?
        })
    }
}

/// Sets the socket's ICMP_FILTER: ICMP types whose bit is set in `mask` are
/// dropped by the kernel before they reach the socket.
#[allow(unsafe_code)]
pub(crate) fn set_icmp_filter(sock: &Socket, mask: u32) {
    const SOL_RAW: libc::c_int = 255;
    const ICMP_FILTER: libc::c_int = 1;
    // SAFETY: a valid open fd, and a pointer to a u32 with its exact length.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            SOL_RAW,
            ICMP_FILTER,
            &mask as *const u32 as *const libc::c_void,
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!("ICMP_FILTER not set: {}", io::Error::last_os_error());
    }
}

/// The sending socket: it receives nothing (every raw ICMP socket gets a
/// copy of every incoming ICMP packet unless filtered).
fn open_send_socket() -> Result<Socket, IcmpError> {
    let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
        .map_err(|e| socket_error("IPv4", e))?;
    set_icmp_filter(&sock, !0);
    if let Err(e) = sock.set_send_buffer_size(SEND_BUFFER_BYTES) {
        tracing::debug!("cannot raise the sweep's send buffer: {e}");
    }
    Ok(sock)
}

/// The receiving socket: this sweep's echo replies only (the kernel drops
/// the rest, rounds' and other sweeps' replies included), a large buffer,
/// non-blocking (the receiver drains it every [`RECV_POLL`] instead of
/// waking per packet).
fn open_recv_socket(ident: u16) -> Result<Socket, IcmpError> {
    let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
        .map_err(|e| socket_error("IPv4", e))?;
    set_icmp_filter(&sock, !1);
    if let Err(e) = filter::attach(sock.as_raw_fd(), &filter::sweep_replies(ident)) {
        tracing::debug!("sweep socket unfiltered: {e}");
    }
    raise_recv_buffer(sock.as_raw_fd(), RECV_BUFFER_BYTES);
    sock.set_nonblocking(true)
        .map_err(|e| socket_error("IPv4", e))?;
    Ok(sock)
}

fn run_sweep(
    ident: u16,
    addrs: &[Ipv4Addr],
    limiter: &RateLimiter,
    timeout: Duration,
) -> Result<Vec<Ipv4Addr>, IcmpError> {
    let rx_sock = open_recv_socket(ident)?;
    let tx_sock = open_send_socket()?;
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let (found, stats) = std::thread::scope(|s| {
        let receiver = s.spawn(|| receive(&rx_sock, ident, &stop, addrs.len()));
        let stats = send_all(&tx_sock, ident, addrs, limiter);
        std::thread::sleep(timeout);
        stop.store(true, Ordering::Relaxed);
        let found = receiver.join().unwrap_or_else(|_| {
            tracing::error!("sweep receiver thread panicked");
            HashSet::new()
        });
        (found, stats)
    });
    tracing::debug!(
        sent = stats.sent,
        failed = stats.failed,
        replies = found.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "batch sweep done"
    );
    if stats.failed > 0 {
        tracing::warn!(
            failed = stats.failed,
            "some sweep probes could not be sent: {}",
            stats.last_error.unwrap_or_default()
        );
    }
    Ok(found.into_iter().map(Ipv4Addr::from).collect())
}

#[derive(Debug, Default)]
struct SendStats {
    sent: u64,
    failed: u64,
    last_error: Option<String>,
}

/// Sends one probe per address, in batches of about a millisecond's worth
/// of the rate cap.
fn send_all(sock: &Socket, ident: u16, addrs: &[Ipv4Addr], limiter: &RateLimiter) -> SendStats {
    let batch = match limiter.pps() {
        0 => 256,
        pps => (pps / 1000).clamp(1, 256) as usize,
    };
    let mut stats = SendStats::default();
    for (chunk_no, chunk) in addrs.chunks(batch).enumerate() {
        let wait = limiter.reserve_n(u32::try_from(chunk.len()).unwrap_or(u32::MAX));
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        for (i, &dst) in chunk.iter().enumerate() {
            let seq = (chunk_no * batch + i) as u16;
            let pkt = echo_request(ident, seq, dst);
            let to = SockAddr::from(SocketAddrV4::new(dst, 0));
            let mut retries = 0;
            loop {
                match sock.send_to(&pkt, &to) {
                    Ok(_) => {
                        stats.sent += 1;
                        break;
                    }
                    Err(e)
                        if (e.raw_os_error() == Some(libc::ENOBUFS)
                            || e.kind() == io::ErrorKind::WouldBlock)
                            && retries < MAX_NOBUFS_RETRIES =>
                    {
                        retries += 1;
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        stats.failed += 1;
                        stats.last_error = Some(format!("{dst}: {e}"));
                        break;
                    }
                }
            }
        }
    }
    stats
}

/// Drains replies every [`RECV_POLL`] until `stop` is set, returning the
/// answering addresses. Polling (rather than a blocking read per packet)
/// spares a thread wake-up per reply, which dominated the sweep's CPU time.
fn receive(sock: &Socket, ident: u16, stop: &AtomicBool, expected: usize) -> HashSet<u32> {
    let mut found = HashSet::with_capacity(expected.min(1 << 20));
    let mut buf = [0u8; 1500];
    let mut reader = sock;
    loop {
        // Read the stop flag before draining, so that replies which arrived
        // before it was set are still counted.
        let last = stop.load(Ordering::Relaxed);
        loop {
            match reader.read(&mut buf) {
                Ok(n) => {
                    if let Some(a) = parse_echo_reply(&buf[..n], ident) {
                        found.insert(u32::from(a));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!("sweep receiver stopped: {e}");
                    return found;
                }
            }
        }
        if last {
            return found;
        }
        std::thread::sleep(RECV_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wraps an ICMP message into a minimal IPv4 packet from `src`.
    fn ip_packet(src: Ipv4Addr, icmp: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[9] = 1;
        p[12..16].copy_from_slice(&src.octets());
        p.extend_from_slice(icmp);
        p
    }

    /// What a host does with an echo request: type 0, checksum redone.
    fn reply_to(req: &[u8]) -> Vec<u8> {
        let mut r = req.to_vec();
        r[0] = 0;
        r[2] = 0;
        r[3] = 0;
        let c = checksum(&r);
        r[2..4].copy_from_slice(&c.to_be_bytes());
        r
    }

    #[test]
    fn sweeps_take_distinct_identifiers_that_the_pingers_filter_drops() {
        let pinger_base = 0x7000u16;
        let sweeper = RawSweeper::new(pinger_base.wrapping_add(PINGER_IDENTS) & 0x7fff);
        let pinger = filter::echo_replies(pinger_base, PINGER_IDENTS);
        let dst = Ipv4Addr::new(198, 18, 3, 7);
        let mut seen = HashSet::new();
        for _ in 0..SWEEP_IDENTS {
            let id = sweeper.next_ident();
            assert!(seen.insert(id), "identifier {id:#x} given twice");
            let reply = ip_packet(dst, &reply_to(&echo_request(id, 1, dst)));
            assert_eq!(parse_echo_reply(&reply, id), Some(dst));
            assert_eq!(filter::tests::run(&pinger, &reply), 0, "id {id:#x}");
            assert_ne!(filter::tests::run(&filter::sweep_replies(id), &reply), 0);
        }
        // Then the turn starts over.
        assert!(seen.contains(&sweeper.next_ident()));
    }

    #[test]
    fn request_has_a_valid_checksum_and_names_its_target() {
        let dst = Ipv4Addr::new(198, 18, 3, 7);
        let p = echo_request(0x1234, 9, dst);
        assert_eq!(checksum(&p), 0, "a packet with its checksum sums to zero");
        assert_eq!((p[0], p[1]), (8, 0));
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 9]);
        assert_eq!(&p[16..20], &dst.octets());
        // Odd lengths pad with a zero byte.
        assert_eq!(checksum(&[0xff]), !0xff00);
    }

    #[test]
    fn matches_only_our_replies_from_the_probed_address() {
        let dst = Ipv4Addr::new(198, 18, 3, 7);
        let reply = reply_to(&echo_request(77, 1, dst));
        assert_eq!(parse_echo_reply(&ip_packet(dst, &reply), 77), Some(dst));
        // Another sweep's identifier.
        assert_eq!(parse_echo_reply(&ip_packet(dst, &reply), 78), None);
        // A reply from another address than the one probed.
        assert_eq!(
            parse_echo_reply(&ip_packet(Ipv4Addr::new(198, 18, 3, 8), &reply), 77),
            None
        );
        // The echo request itself (seen on a raw socket) is not a reply.
        let req = echo_request(77, 1, dst);
        assert_eq!(parse_echo_reply(&ip_packet(dst, &req), 77), None);
        // Someone else's echo reply with our identifier but another payload.
        let mut foreign = reply.clone();
        foreign[8] = b'x';
        assert_eq!(parse_echo_reply(&ip_packet(dst, &foreign), 77), None);
    }

    #[test]
    fn never_panics_on_short_or_odd_packets() {
        let dst = Ipv4Addr::new(198, 18, 3, 7);
        let full = ip_packet(dst, &reply_to(&echo_request(5, 5, dst)));
        for n in 0..full.len() {
            assert_eq!(parse_echo_reply(&full[..n], 5), None, "length {n}");
        }
        let mut v6 = full.clone();
        v6[0] = 0x65;
        assert_eq!(parse_echo_reply(&v6, 5), None);
        let mut long_header = full.clone();
        long_header[0] = 0x4f; // IHL 60 bytes: the ICMP part is cut short
        assert_eq!(parse_echo_reply(&long_header, 5), None);
        let mut udp = full;
        udp[9] = 17;
        assert_eq!(parse_echo_reply(&udp, 5), None);
    }
}
