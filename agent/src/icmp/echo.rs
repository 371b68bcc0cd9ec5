//! The rounds' echo matching, sans-IO: which probes are in flight, which
//! packet answers which probe, and which probes have timed out, with the
//! time passed in. The socket side ([`super::raw`]) only sends the packets
//! this core builds, feeds it what the socket reads, and asks it for the
//! probes whose deadline passed.
//!
//! Why not a task or a timer per probe: a round sends one probe per block
//! (millions at scale), and surge-ping's per-probe registration, timer and
//! channel cost several times fping's whole round. Here a probe in flight
//! is one hash-map entry and one entry in a deadline heap; a reply is
//! matched by (identifier, sequence) and checked against the probed
//! address, an ICMP error by the echo request it quotes.
//!
//! Identifiers: a probe number `n` (counting up, modulo `width × 2^16`)
//! gives identifier `base + n / 2^16` (modulo 2^15) and sequence `n mod
//! 2^16`, so every probe in flight has its own pair, and the kernel filter
//! ([`super::filter::echo_replies`]) passes exactly this range.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use super::sweeper::marked_echo_request;
use super::Outcome;

/// Marks a round probe's payload (then the probed address, as sweeps do).
pub const MAGIC: &[u8; 8] = b"dwround\0";

/// A probe in flight.
#[derive(Debug)]
struct Probe<T> {
    dst: Ipv4Addr,
    sent: Instant,
    deadline: Instant,
    waiter: T,
}

/// The in-flight table of one pinger's IPv4 echo probes. `T` is whatever
/// the caller completes when the probe's outcome is known (a channel's
/// sending half in the real pinger, a label in tests).
#[derive(Debug)]
pub struct EchoCore<T> {
    base: u16,
    width: u16,
    next: u32,
    in_flight: HashMap<u32, Probe<T>>,
    /// (deadline, key) of every probe started; entries of probes already
    /// answered stay until their deadline and are skipped then.
    deadlines: BinaryHeap<Reverse<(Instant, u32)>>,
}

impl<T> EchoCore<T> {
    /// A core using identifiers `base, base+1, ... base+width-1` (modulo
    /// 2^15); `width` must be at least 1.
    pub fn new(base: u16, width: u16) -> Self {
        Self {
            base: base & 0x7fff,
            width: width.max(1),
            next: 0,
            in_flight: HashMap::new(),
            deadlines: BinaryHeap::new(),
        }
    }

    fn keys(&self) -> u32 {
        u32::from(self.width) << 16
    }

    fn ident_seq(&self, key: u32) -> (u16, u16) {
        let ident = self.base.wrapping_add((key >> 16) as u16) & 0x7fff;
        (ident, key as u16)
    }

    /// The key of (identifier, sequence), if the identifier is ours.
    fn key_of(&self, ident: u16, seq: u16) -> Option<u32> {
        if ident & 0x8000 != 0 {
            return None;
        }
        let k = ident.wrapping_sub(self.base) & 0x7fff;
        (k < self.width).then(|| u32::from(k) << 16 | u32::from(seq))
    }

    /// Starts a probe of `dst` at `now` that times out after `timeout`.
    /// Returns its key (for [`EchoCore::cancel`]) and the ICMP echo request
    /// to send (no IP header).
    pub fn start(
        &mut self,
        dst: Ipv4Addr,
        now: Instant,
        timeout: Duration,
        waiter: T,
    ) -> (u32, [u8; super::sweeper::REQUEST_LEN]) {
        let key = self.next;
        self.next = (self.next + 1) % self.keys();
        let (ident, seq) = self.ident_seq(key);
        let deadline = now + timeout;
        // A key comes back after width × 2^16 probes: far more than are ever
        // in flight at once; should it still be taken, the newer probe wins.
        self.in_flight.insert(
            key,
            Probe {
                dst,
                sent: now,
                deadline,
                waiter,
            },
        );
        self.deadlines.push(Reverse((deadline, key)));
        (key, marked_echo_request(MAGIC, ident, seq, dst))
    }

    /// Forgets a probe that could not be sent; returns its waiter.
    pub fn cancel(&mut self, key: u32) -> Option<T> {
        self.in_flight.remove(&key).map(|p| p.waiter)
    }

    /// Matches a packet read from a raw ICMPv4 socket (IPv4 header
    /// included) at `now`: an echo reply to one of our probes from the
    /// probed address, or an ICMP error quoting one of our probes. Returns
    /// the probe's waiter and outcome; `None` for anything else (foreign
    /// identifiers, late replies, duplicates, echo requests, garbage).
    pub fn on_packet(&mut self, pkt: &[u8], now: Instant) -> Option<(T, Outcome)> {
        let (src, icmp) = ipv4_icmp(pkt)?;
        match icmp.get(..8)? {
            [0, 0, _, _, i0, i1, s0, s1] => {
                if icmp.get(8..16)? != MAGIC {
                    return None;
                }
                let key = self.key_of(
                    u16::from_be_bytes([*i0, *i1]),
                    u16::from_be_bytes([*s0, *s1]),
                )?;
                let probe = self.take_if(key, src)?;
                let rtt = now.saturating_duration_since(probe.sent);
                Some((probe.waiter, Outcome::Reply { rtt }))
            }
            [3 | 11 | 12, ..] => {
                // The quoted datagram: our probe's IPv4 header and at least
                // the first 8 bytes of its ICMP header (RFC 792).
                let (_, quoted) = ipv4_icmp(icmp.get(8..)?)?;
                let qdst = quoted_dst(&icmp[8..])?;
                let [8, 0, _, _, i0, i1, s0, s1] = *quoted.get(..8)? else {
                    return None;
                };
                let key =
                    self.key_of(u16::from_be_bytes([i0, i1]), u16::from_be_bytes([s0, s1]))?;
                let probe = self.take_if(key, qdst)?;
                Some((
                    probe.waiter,
                    Outcome::Unreachable {
                        from: IpAddr::V4(src),
                    },
                ))
            }
            _ => None,
        }
    }

    /// Removes probe `key` if it is in flight to `dst`.
    fn take_if(&mut self, key: u32, dst: Ipv4Addr) -> Option<Probe<T>> {
        match self.in_flight.get(&key) {
            Some(p) if p.dst == dst => self.in_flight.remove(&key),
            _ => None,
        }
    }

    /// Moves the waiters of the probes whose deadline is at or before `now`
    /// into `out` (their outcome is [`Outcome::Timeout`]).
    pub fn expire(&mut self, now: Instant, out: &mut Vec<T>) {
        while let Some(&Reverse((deadline, key))) = self.deadlines.peek() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();
            if self
                .in_flight
                .get(&key)
                .is_some_and(|p| p.deadline == deadline)
            {
                out.extend(self.in_flight.remove(&key).map(|p| p.waiter));
            }
        }
        if self.in_flight.is_empty() {
            // Nothing left to time out: drop the answered probes' entries.
            self.deadlines.clear();
        }
    }

    /// The earliest deadline still pending, if any (may be one of an
    /// answered probe: waking for it early costs one empty check).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((d, _))| *d)
    }

    /// Probes in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

/// The source and ICMP part of an IPv4 packet carrying ICMP.
fn ipv4_icmp(pkt: &[u8]) -> Option<(Ipv4Addr, &[u8])> {
    let first = *pkt.first()?;
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < 20 || pkt.len() < 20 || pkt[9] != 1 {
        return None;
    }
    let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
    Some((src, pkt.get(ihl..)?))
}

/// The destination of a quoted IPv4 header.
fn quoted_dst(ip: &[u8]) -> Option<Ipv4Addr> {
    let d = ip.get(16..20)?;
    Some(Ipv4Addr::new(d[0], d[1], d[2], d[3]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::icmp::sweeper::checksum;

    /// A simulated network around the core: it keeps what was "sent" and
    /// builds what a host or router would send back.
    struct SimSocket {
        sent: Vec<(Ipv4Addr, Vec<u8>)>,
    }

    fn ip(src: Ipv4Addr, dst: Ipv4Addr, icmp: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[9] = 1;
        p[12..16].copy_from_slice(&src.octets());
        p[16..20].copy_from_slice(&dst.octets());
        p.extend_from_slice(icmp);
        p
    }

    const ME: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);

    impl SimSocket {
        fn new() -> Self {
            Self { sent: Vec::new() }
        }

        fn send(
            &mut self,
            core: &mut EchoCore<&'static str>,
            dst: Ipv4Addr,
            now: Instant,
            label: &'static str,
        ) -> u32 {
            let (key, pkt) = core.start(dst, now, Duration::from_secs(1), label);
            self.sent.push((dst, pkt.to_vec()));
            key
        }

        /// The host's echo reply to the `i`th probe sent.
        fn reply(&self, i: usize) -> Vec<u8> {
            let (dst, req) = &self.sent[i];
            let mut r = req.clone();
            r[0] = 0;
            r[2..4].fill(0);
            let c = checksum(&r);
            r[2..4].copy_from_slice(&c.to_be_bytes());
            ip(*dst, ME, &r)
        }

        /// Router `from`'s ICMP error of `kind` about the `i`th probe.
        fn error(&self, i: usize, kind: u8, from: Ipv4Addr) -> Vec<u8> {
            let (dst, req) = &self.sent[i];
            let mut icmp = vec![kind, 1, 0, 0, 0, 0, 0, 0];
            icmp.extend_from_slice(&ip(ME, *dst, req)[..28]);
            ip(from, ME, &icmp)
        }
    }

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn replies_are_matched_to_their_probe_with_its_rtt() {
        let t0 = Instant::now();
        let mut core = EchoCore::new(0x1000, 4);
        let mut net = SimSocket::new();
        let a = Ipv4Addr::new(198, 18, 0, 1);
        let b = Ipv4Addr::new(198, 18, 1, 1);
        net.send(&mut core, a, t0, "a");
        net.send(&mut core, b, at(t0, 5), "b");
        assert_eq!(core.in_flight(), 2);
        // Out of order: b first.
        assert_eq!(
            core.on_packet(&net.reply(1), at(t0, 25)),
            Some((
                "b",
                Outcome::Reply {
                    rtt: Duration::from_millis(20)
                }
            ))
        );
        assert_eq!(
            core.on_packet(&net.reply(0), at(t0, 40)),
            Some((
                "a",
                Outcome::Reply {
                    rtt: Duration::from_millis(40)
                }
            ))
        );
        assert_eq!(core.in_flight(), 0);
        let mut out = Vec::new();
        core.expire(at(t0, 5000), &mut out);
        assert!(out.is_empty(), "answered probes never time out");
    }

    #[test]
    fn duplicates_late_replies_and_timeouts() {
        let t0 = Instant::now();
        let mut core = EchoCore::new(0x1000, 4);
        let mut net = SimSocket::new();
        for (i, label) in ["a", "b", "c"].into_iter().enumerate() {
            net.send(
                &mut core,
                Ipv4Addr::new(198, 18, 0, i as u8 + 1),
                at(t0, i as u64 * 100),
                label,
            );
        }
        assert!(core.on_packet(&net.reply(0), at(t0, 10)).is_some());
        assert_eq!(
            core.on_packet(&net.reply(0), at(t0, 11)),
            None,
            "a duplicate"
        );
        let mut out = Vec::new();
        core.expire(at(t0, 999), &mut out);
        assert!(out.is_empty(), "nothing is due before its deadline");
        assert_eq!(core.next_deadline(), Some(at(t0, 1000)));
        core.expire(at(t0, 1100), &mut out);
        assert_eq!(
            out,
            ["b"],
            "b's deadline passed (1.1 s), c's not yet (1.2 s)"
        );
        assert_eq!(
            core.on_packet(&net.reply(1), at(t0, 1150)),
            None,
            "b's late reply"
        );
        out.clear();
        core.expire(at(t0, 1200), &mut out);
        assert_eq!(out, ["c"]);
        assert_eq!((core.in_flight(), core.next_deadline()), (0, None));
    }

    #[test]
    fn errors_quoting_a_probe_name_the_router() {
        let t0 = Instant::now();
        let mut core = EchoCore::new(0x1000, 4);
        let mut net = SimSocket::new();
        let router = Ipv4Addr::new(192, 0, 2, 2);
        for i in 0..3 {
            net.send(
                &mut core,
                Ipv4Addr::new(198, 18, 2, i + 1),
                t0,
                ["a", "b", "c"][usize::from(i)],
            );
        }
        for (i, kind) in [(0, 3), (1, 11), (2, 12)] {
            let got = core.on_packet(&net.error(i, kind, router), at(t0, 3));
            assert_eq!(
                got.map(|(_, o)| o),
                Some(Outcome::Unreachable {
                    from: router.into()
                }),
                "type {kind}"
            );
        }
        // An error quoting a probe, but to another address than the one
        // probed under that (identifier, sequence), is not ours.
        net.send(&mut core, Ipv4Addr::new(198, 18, 2, 9), t0, "d");
        let mut forged = net.error(3, 3, router);
        forged[20 + 8 + 19] ^= 1;
        assert_eq!(core.on_packet(&forged, at(t0, 4)), None);
        // Other ICMP types (a redirect quoting our probe) are not outcomes.
        assert_eq!(core.on_packet(&net.error(3, 5, router), at(t0, 4)), None);
        // A truncated quote.
        let e = net.error(3, 3, router);
        for n in 0..e.len() {
            assert_eq!(core.on_packet(&e[..n], at(t0, 4)), None, "cut to {n}");
        }
        assert!(core.on_packet(&e, at(t0, 4)).is_some());
    }

    #[test]
    fn foreign_identifiers_payloads_and_sources_are_ignored() {
        let t0 = Instant::now();
        let mut core = EchoCore::new(0x7ffe, 4);
        let mut net = SimSocket::new();
        let dst = Ipv4Addr::new(198, 18, 3, 1);
        net.send(&mut core, dst, t0, "a");
        let reply = net.reply(0);
        // Another process's identifier (and the high half of traceroutes).
        for ident in [0x7ffdu16, 0x0002, 0x8000 | 0x7ffe] {
            let mut r = reply.clone();
            r[24..26].copy_from_slice(&ident.to_be_bytes());
            assert_eq!(core.on_packet(&r, at(t0, 1)), None, "{ident:#x}");
        }
        // Our identifier, someone else's payload (a sweep's magic).
        let mut r = reply.clone();
        r[28..36].copy_from_slice(b"dwsweep\0");
        assert_eq!(core.on_packet(&r, at(t0, 1)), None);
        // From another host than the one probed.
        let mut r = reply.clone();
        r[15] ^= 1;
        assert_eq!(core.on_packet(&r, at(t0, 1)), None);
        // Our own echo request, as a raw socket sees it on loopback.
        let req = ip(ME, dst, &net.sent[0].1);
        assert_eq!(core.on_packet(&req, at(t0, 1)), None);
        assert_eq!(core.on_packet(&reply, at(t0, 1)).map(|(w, _)| w), Some("a"));
    }

    #[test]
    fn identifiers_wrap_within_the_range_and_keys_stay_distinct() {
        let t0 = Instant::now();
        let mut core = EchoCore::new(0x7fff, 2);
        let mut net = SimSocket::new();
        let mut idents = std::collections::BTreeSet::new();
        for i in 0..(2u32 << 16) + 3 {
            let key = net.send(&mut core, Ipv4Addr::from(0xc612_0000 + i), t0, "x");
            let pkt = &net.sent.last().unwrap().1;
            idents.insert(u16::from_be_bytes([pkt[4], pkt[5]]));
            assert!(key < 2 << 16);
        }
        assert_eq!(idents.into_iter().collect::<Vec<_>>(), [0, 0x7fff]);
        // The first keys were taken again by the last probes: the newer
        // probe is the one in flight.
        assert_eq!(core.in_flight(), 2 << 16);
        assert_eq!(core.on_packet(&net.reply(0), at(t0, 1)), None);
        assert!(core.on_packet(&net.reply(2 << 16), at(t0, 1)).is_some());
        assert_eq!(core.cancel(1), Some("x"));
        assert_eq!(core.cancel(1), None);
    }
}
