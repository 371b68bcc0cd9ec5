//! Kernel-side reply filters (classic BPF, `SO_ATTACH_FILTER`, and
//! `ICMP6_FILTER`) for raw ICMPv4 and ICMPv6 sockets.
//!
//! Every raw ICMP socket of a network namespace receives a copy of every
//! incoming ICMP packet (`notes/probing.md`). Without a filter the rounds'
//! socket reads, parses and throws away every reply of a discovery sweep
//! running beside it (up to the discovery's whole pps share), and on a busy
//! machine its receive buffer overflows, so that the rounds' own replies are
//! dropped and their blocks probed again. The programs here let the kernel
//! hand each socket only the packets it asked for, matched on the ICMP
//! identifier, as zmap and scamper do: a sweep's socket its own echo replies,
//! the rounds' socket the echo replies and ICMP errors of its own probes.
//!
//! IPv6 gets the same: [`echo6_replies`] (a raw ICMPv6 socket's program sees
//! the packet from the ICMPv6 header on, without the IPv6 header) and the
//! socket's ICMPv6 type filter ([`set_icmp6_filter`]). trippy's traceroute
//! sockets are not reachable through its API; their identifiers (the high
//! half) are dropped by these programs, so rounds never see their replies.
//!
//! The programs are pure data ([`sweep_replies`], [`echo_replies`],
//! [`echo6_replies`]) and are checked in tests by a small interpreter of the
//! few instructions they use.

use std::io;
use std::os::fd::RawFd;

/// One classic BPF instruction (`struct sock_filter`).
pub type Insn = libc::sock_filter;

// Classic BPF opcodes (linux/bpf_common.h, linux/filter.h).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const H: u16 = 0x08;
const B: u16 = 0x10;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MSH: u16 = 0xa0;
const SUB: u16 = 0x10;
const AND: u16 = 0x50;
const JA: u16 = 0x00;
const JEQ: u16 = 0x10;
const JGE: u16 = 0x30;
const JSET: u16 = 0x40;
const K: u16 = 0x00;

/// `SO_ATTACH_FILTER` (the same value on every Linux architecture).
const SO_ATTACH_FILTER: libc::c_int = 26;

/// What an accepting program returns: keep the whole packet.
const ACCEPT: u32 = 0xffff_ffff;

const fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

/// ICMP types of the errors that quote one of our probes.
const ERROR_TYPES: [u32; 3] = [
    3,  // destination unreachable
    11, // time exceeded
    12, // parameter problem
];

/// Accepts only echo replies carrying identifier `ident` (a sweep's
/// receiving socket). The packet, as a raw IPv4 socket sees it, starts with
/// the IPv4 header.
pub fn sweep_replies(ident: u16) -> Vec<Insn> {
    vec![
        // X = IPv4 header length.
        stmt(LDX | B | MSH, 0),
        // Type: echo reply (0), else drop.
        stmt(LD | B | IND, 0),
        jump(JMP | JEQ | K, 0, 0, 3),
        // Identifier.
        stmt(LD | H | IND, 4),
        jump(JMP | JEQ | K, u32::from(ident), 0, 1),
        stmt(RET | K, ACCEPT),
        stmt(RET | K, 0),
    ]
}

/// Accepts the packets a pinger whose identifiers are
/// `base, base+1, ... base+width-1` (modulo 2^15, high bit clear) needs:
/// echo replies carrying one of them, and ICMP errors (unreachable, time
/// exceeded, parameter problem) quoting an echo request that carried one.
/// Everything else is dropped: other sockets' replies, echo requests (which
/// raw sockets also see on loopback), other ICMP types. An error quoting a
/// header with IPv4 options (which our probes never carry) is dropped.
pub fn echo_replies(base: u16, width: u16) -> Vec<Insn> {
    // Jumps are relative: `jt`/`jf`/`k` count the instructions skipped.
    let [e1, e2, e3] = ERROR_TYPES;
    vec![
        /* 0 */ stmt(LDX | B | MSH, 0),
        /* 1 */ stmt(LD | B | IND, 0),
        /* 2 */ jump(JMP | JEQ | K, 0, 4, 0), // reply -> 7
        /* 3 */ jump(JMP | JEQ | K, e1, 5, 0), // error -> 9
        /* 4 */ jump(JMP | JEQ | K, e2, 4, 0),
        /* 5 */ jump(JMP | JEQ | K, e3, 3, 0),
        /* 6 */ stmt(RET | K, 0),
        /* 7 */ stmt(LD | H | IND, 4),
        /* 8 */ stmt(JMP | JA, 7), // -> 16
        // The quoted datagram starts 8 bytes into the error: a 20-byte IPv4
        // header carrying ICMP, then the echo request's header.
        /* 9 */
        stmt(LD | B | IND, 8),
        /* 10 */ jump(JMP | JEQ | K, 0x45, 0, 10), // else -> 21
        /* 11 */ stmt(LD | B | IND, 8 + 9),
        /* 12 */ jump(JMP | JEQ | K, 1, 0, 8), // else -> 21
        /* 13 */ stmt(LD | B | IND, 8 + 20),
        /* 14 */ jump(JMP | JEQ | K, 8, 0, 6), // else -> 21
        /* 15 */ stmt(LD | H | IND, 8 + 20 + 4),
        /* 16 */ jump(JMP | JSET | K, 0x8000, 4, 0), // high half -> 21
        /* 17 */ stmt(ALU | SUB | K, u32::from(base)),
        /* 18 */ stmt(ALU | AND | K, 0x7fff),
        /* 19 */ jump(JMP | JGE | K, u32::from(width), 1, 0), // out of range -> 21
        /* 20 */ stmt(RET | K, ACCEPT),
        /* 21 */ stmt(RET | K, 0),
    ]
}

/// ICMPv6 types of the errors that quote one of our probes.
const ERROR6_TYPES: [u32; 3] = [
    1, // destination unreachable
    3, // time exceeded
    4, // parameter problem
];

/// [`echo_replies`] for a raw ICMPv6 socket, whose packets start at the
/// ICMPv6 header: echo replies (129) carrying one of the identifiers, and
/// ICMPv6 errors quoting an echo request (128) that carried one (the quoted
/// IPv6 header without extension headers, as our probes are sent).
pub fn echo6_replies(base: u16, width: u16) -> Vec<Insn> {
    let [e1, e2, e3] = ERROR6_TYPES;
    vec![
        /* 0 */ stmt(LD | B | ABS, 0),
        /* 1 */ jump(JMP | JEQ | K, 129, 4, 0), // reply -> 6
        /* 2 */ jump(JMP | JEQ | K, e1, 5, 0), // error -> 8
        /* 3 */ jump(JMP | JEQ | K, e2, 4, 0),
        /* 4 */ jump(JMP | JEQ | K, e3, 3, 0),
        /* 5 */ stmt(RET | K, 0),
        /* 6 */ stmt(LD | H | ABS, 4),
        /* 7 */ stmt(JMP | JA, 5), // -> 13
        // The quoted datagram starts 8 bytes into the error: a 40-byte IPv6
        // header whose next header is ICMPv6, then the echo request.
        /* 8 */
        stmt(LD | B | ABS, 8 + 6),
        /* 9 */ jump(JMP | JEQ | K, 58, 0, 8), // else -> 18
        /* 10 */ stmt(LD | B | ABS, 8 + 40),
        /* 11 */ jump(JMP | JEQ | K, 128, 0, 6), // else -> 18
        /* 12 */ stmt(LD | H | ABS, 8 + 40 + 4),
        /* 13 */ jump(JMP | JSET | K, 0x8000, 4, 0), // high half -> 18
        /* 14 */ stmt(ALU | SUB | K, u32::from(base)),
        /* 15 */ stmt(ALU | AND | K, 0x7fff),
        /* 16 */ jump(JMP | JGE | K, u32::from(width), 1, 0), // out of range -> 18
        /* 17 */ stmt(RET | K, ACCEPT),
        /* 18 */ stmt(RET | K, 0),
    ]
}

/// The `ICMP6_FILTER` blocking mask (bit set: blocked, as Linux's
/// `struct icmp6_filter`) that passes only `types`.
pub fn icmp6_pass_only(types: &[u8]) -> [u32; 8] {
    let mut mask = [!0u32; 8];
    for &t in types {
        mask[usize::from(t >> 5)] &= !(1 << (t & 31));
    }
    mask
}

/// Has the kernel drop, on the raw ICMPv6 socket `fd`, every ICMPv6 type
/// but echo replies and the errors [`echo6_replies`] takes.
#[allow(unsafe_code)]
pub fn set_icmp6_filter(fd: RawFd) -> io::Result<()> {
    const ICMP6_FILTER: libc::c_int = 1;
    let mask = icmp6_pass_only(&[129, 1, 3, 4]);
    // SAFETY: an open socket the caller holds; a pointer to the 32-byte
    // filter with its exact length.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_ICMPV6,
            ICMP6_FILTER,
            mask.as_ptr() as *const libc::c_void,
            std::mem::size_of_val(&mask) as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Attaches `prog` to the socket `fd`.
#[allow(unsafe_code)]
pub fn attach(fd: RawFd, prog: &[Insn]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| io::Error::other("BPF program too long"))?,
        filter: prog.as_ptr() as *mut Insn,
    };
    // SAFETY: `fd` is an open socket the caller holds; `fprog` points at
    // `prog`, which outlives the call (the kernel copies the program).
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_ATTACH_FILTER,
            &fprog as *const libc::sock_fprog as *const libc::c_void,
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::icmp::sweeper::{checksum, echo_request};
    use std::net::Ipv4Addr;

    /// Runs a classic BPF program over `pkt` the way the kernel does, for
    /// the instructions the programs above use. An out-of-bounds load
    /// drops the packet, as in the kernel.
    pub(crate) fn run(prog: &[Insn], pkt: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let byte = |off: u32| pkt.get(off as usize).copied().map(u32::from);
        let half = |off: u32| {
            let o = off as usize;
            pkt.get(o..o + 2)
                .map(|b| u32::from(u16::from_be_bytes([b[0], b[1]])))
        };
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                c if c == LDX | B | MSH => match byte(i.k) {
                    Some(b) => x = 4 * (b & 0xf),
                    None => return 0,
                },
                c if c == LD | B | ABS => match byte(i.k) {
                    Some(b) => a = b,
                    None => return 0,
                },
                c if c == LD | H | ABS => match half(i.k) {
                    Some(h) => a = h,
                    None => return 0,
                },
                c if c == LD | B | IND => match byte(x + i.k) {
                    Some(b) => a = b,
                    None => return 0,
                },
                c if c == LD | H | IND => match half(x + i.k) {
                    Some(h) => a = h,
                    None => return 0,
                },
                c if c == ALU | SUB | K => a = a.wrapping_sub(i.k),
                c if c == ALU | AND | K => a &= i.k,
                c if c == JMP | JA => pc += i.k as usize,
                c if c & 0x07 == JMP => {
                    let taken = match c & 0xf0 {
                        JEQ => a == i.k,
                        JGE => a >= i.k,
                        JSET => a & i.k != 0,
                        op => panic!("unsupported jump {op:#x}"),
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                c if c == RET | K => return i.k,
                c => panic!("unsupported instruction {c:#x}"),
            }
            assert!(pc < prog.len(), "ran off the end of the program");
        }
    }

    fn ip(src: Ipv4Addr, icmp: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[9] = 1;
        p[12..16].copy_from_slice(&src.octets());
        p.extend_from_slice(icmp);
        p
    }

    fn reply(ident: u16, seq: u16) -> Vec<u8> {
        let dst = Ipv4Addr::new(198, 18, 0, 1);
        let mut r = echo_request(ident, seq, dst).to_vec();
        r[0] = 0;
        ip(dst, &r)
    }

    fn request(ident: u16) -> Vec<u8> {
        ip(
            Ipv4Addr::new(198, 18, 0, 1),
            &echo_request(ident, 1, Ipv4Addr::new(198, 18, 0, 1)),
        )
    }

    /// An ICMP error of `kind` from a router, quoting our echo request
    /// with identifier `ident` (IP header + first 8 bytes, as RFC 792 has).
    fn error(kind: u8, ident: u16) -> Vec<u8> {
        let quoted = request(ident);
        let mut icmp = vec![kind, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&quoted[..28]);
        let c = checksum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        ip(Ipv4Addr::new(192, 0, 2, 1), &icmp)
    }

    #[test]
    fn a_sweep_socket_takes_only_its_own_echo_replies() {
        let p = sweep_replies(0x4321);
        assert_eq!(run(&p, &reply(0x4321, 7)), ACCEPT);
        assert_eq!(run(&p, &reply(0x4322, 7)), 0, "another sweep's reply");
        assert_eq!(run(&p, &request(0x4321)), 0, "the request on loopback");
        assert_eq!(run(&p, &error(3, 0x4321)), 0, "errors are not replies");
        // IPv4 options move the ICMP header: X follows the IHL.
        let mut opts = reply(0x4321, 7);
        opts[0] = 0x46;
        opts.splice(20..20, [1, 1, 1, 1]);
        assert_eq!(run(&p, &opts), ACCEPT);
        for n in 0..24 {
            assert_eq!(run(&p, &reply(0x4321, 7)[..n]), 0, "truncated to {n}");
        }
    }

    #[test]
    fn a_pinger_socket_takes_its_replies_and_errors_only() {
        // A range that wraps past 0x7fff: 0x7ffe, 0x7fff, 0, 1.
        let p = echo_replies(0x7ffe, 4);
        for id in [0x7ffe, 0x7fff, 0, 1] {
            assert_eq!(run(&p, &reply(id, 3)), ACCEPT, "reply id {id:#x}");
            for kind in [3, 11, 12] {
                assert_eq!(run(&p, &error(kind, id)), ACCEPT, "error {kind} id {id:#x}");
            }
        }
        for id in [2, 0x7ffd, 0x4000, 0x8000, 0xfffe, 0xffff] {
            assert_eq!(run(&p, &reply(id, 3)), 0, "reply id {id:#x}");
            assert_eq!(run(&p, &error(3, id)), 0, "error id {id:#x}");
        }
        assert_eq!(run(&p, &request(0)), 0, "echo requests seen on loopback");
        assert_eq!(run(&p, &error(5, 0)), 0, "a redirect");
        // An error quoting something other than an echo request of ours.
        let mut udp = error(3, 0);
        udp[20 + 8 + 9] = 17;
        assert_eq!(run(&p, &udp), 0);
        let mut not_echo = error(3, 0);
        not_echo[20 + 8 + 20] = 13;
        assert_eq!(run(&p, &not_echo), 0);
        // Cut short before the quoted identifier.
        let e = error(3, 0);
        assert_eq!(run(&p, &e[..e.len() - 4]), 0);
    }

    #[test]
    fn the_sweep_identifier_is_outside_the_pingers_range() {
        let base = 0x1234;
        let p = echo_replies(base, 0x4000);
        assert_eq!(run(&p, &reply(base + 0x3fff, 1)), ACCEPT);
        assert_eq!(run(&p, &reply(base + 0x4000, 1)), 0);
        assert_eq!(run(&p, &reply(base - 1, 1)), 0);
    }

    /// An ICMPv6 echo reply as a raw ICMPv6 socket reads it (no IP header).
    fn reply6(ident: u16, seq: u16) -> Vec<u8> {
        let mut r = vec![129, 0, 0, 0];
        r.extend_from_slice(&ident.to_be_bytes());
        r.extend_from_slice(&seq.to_be_bytes());
        r.extend_from_slice(b"darkwatch-probe\0");
        r
    }

    /// An ICMPv6 error of `kind` quoting our echo request `ident`.
    fn error6(kind: u8, ident: u16) -> Vec<u8> {
        let mut e = vec![kind, 0, 0, 0, 0, 0, 0, 0];
        let mut ip6 = vec![0u8; 40];
        ip6[0] = 0x60;
        ip6[6] = 58;
        ip6[7] = 64;
        e.extend_from_slice(&ip6);
        let mut req = reply6(ident, 1);
        req[0] = 128;
        e.extend_from_slice(&req);
        e
    }

    #[test]
    fn an_ipv6_pinger_socket_takes_its_replies_and_errors_only() {
        let p = echo6_replies(0x7ffe, 4);
        for id in [0x7ffe, 0x7fff, 0, 1] {
            assert_eq!(run(&p, &reply6(id, 3)), ACCEPT, "reply id {id:#x}");
            for kind in [1, 3, 4] {
                assert_eq!(
                    run(&p, &error6(kind, id)),
                    ACCEPT,
                    "error {kind} id {id:#x}"
                );
            }
        }
        // Other identifiers: another pinger's, traceroutes' (high half).
        for id in [2, 0x7ffd, 0x4000, 0x8000, 0xfffe, 0xffff] {
            assert_eq!(run(&p, &reply6(id, 3)), 0, "reply id {id:#x}");
            assert_eq!(run(&p, &error6(1, id)), 0, "error id {id:#x}");
        }
        let mut req = reply6(0, 1);
        req[0] = 128;
        assert_eq!(run(&p, &req), 0, "echo requests seen on loopback");
        assert_eq!(run(&p, &error6(137, 0)), 0, "a redirect");
        assert_eq!(run(&p, &error6(135, 0)), 0, "neighbour solicitation");
        let mut udp = error6(1, 0);
        udp[8 + 6] = 17;
        assert_eq!(run(&p, &udp), 0, "an error quoting UDP");
        let mut not_echo = error6(1, 0);
        not_echo[8 + 40] = 129;
        assert_eq!(run(&p, &not_echo), 0, "an error quoting a reply");
        let e = error6(1, 0);
        assert_eq!(run(&p, &e[..8 + 40 + 5]), 0, "cut before the identifier");
        assert_eq!(run(&p, &reply6(0, 1)[..5]), 0);
    }

    #[test]
    fn the_icmp6_type_filter_passes_replies_and_errors_only() {
        let m = icmp6_pass_only(&[129, 1, 3, 4]);
        let blocked = |t: u8| m[usize::from(t >> 5)] & (1 << (t & 31)) != 0;
        for t in [129, 1, 3, 4] {
            assert!(!blocked(t), "{t}");
        }
        for t in [0, 2, 128, 130, 133, 134, 135, 136, 137, 255] {
            assert!(blocked(t), "{t}");
        }
    }
}
