//! A discovery sweep beside a round, with real ICMP in a loopback-only
//! namespace (127.0.0.0/8 answers on `lo`): the sweep's echo replies must
//! not reach the rounds' socket (a kernel filter on the ICMP identifier
//! keeps each socket to its own replies), so that a round where every
//! address answers needs exactly one probe per block and no reply is lost
//! while the sweep runs, and the sweep still gets every one of its own.
//! Through that filter, the rounds' socket still gets its replies and the
//! routers' ICMP errors about its probes (a two-router lab).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use darkwatch_agent::belief::BlockTracker;
use darkwatch_agent::icmp::{Outcome, Pinger, SurgePinger};
use darkwatch_agent::ratelimit::RateLimiter;
use darkwatch_agent::round::run_trackers;
use darkwatch_agent::ProbeSettings;
use darkwatch_schema::BlockState;
use ipnet::IpNet;

use crate::common::Lab;
use crate::loopback::Netns;

/// Blocks 127.1.0.0/24, 127.1.1.0/24, ...: the rounds' (the sweep takes
/// 127.16.0.0/14, elsewhere).
fn round_blocks(n: u16) -> Vec<BlockTracker> {
    (0..n)
        .map(|i| {
            let [hi, lo] = i.to_be_bytes();
            let block: IpNet = format!("127.{}.{lo}.0/24", 1 + hi).parse().unwrap();
            let hosts = (1..=254)
                .map(|h| IpAddr::from([127, 1 + hi, lo, h]))
                .collect();
            BlockTracker::from_discovery(block, hosts)
        })
        .collect()
}

#[test]
fn a_sweep_beside_rounds_takes_none_of_their_replies() {
    let Some(ns) = Netns::or_skip("sweepbeside") else {
        return;
    };
    let name = ns.name();
    let outcome = std::thread::spawn(move || {
        darkwatch_netlab::netns::enter(&name).expect("enter the namespace");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let pinger = Arc::new(SurgePinger::new().expect("raw sockets (run as root)"));
            let timeout = Duration::from_secs(1);
            // Opens the rounds' IPv4 socket before the sweep starts.
            assert!(pinger
                .echo("127.0.0.1".parse().unwrap(), timeout)
                .await
                .is_reply());
            let sweep_space: Vec<Ipv4Addr> = "127.16.0.0/14"
                .parse::<ipnet::Ipv4Net>()
                .unwrap()
                .hosts()
                .collect();
            let swept = sweep_space.len();
            let sweeper = pinger.clone();
            let sweep = tokio::spawn(async move {
                sweeper
                    .batch_sweeper()
                    .expect("the real pinger sweeps in batches")
                    .sweep_v4(
                        sweep_space,
                        Arc::new(RateLimiter::new(100_000, 1000)),
                        Duration::from_secs(1),
                    )
                    .await
                    .expect("sweep")
            });
            let settings = ProbeSettings {
                timeout,
                ..ProbeSettings::default()
            };
            let limiter = RateLimiter::new(20_000, 100);
            // Rounds one after another for as long as the sweep runs.
            let (mut rounds, mut per_block) = (0u32, Vec::new());
            while !sweep.is_finished() {
                let mut trackers = round_blocks(1024);
                let outcomes =
                    run_trackers(&mut trackers, pinger.as_ref(), &limiter, &settings, 7).await;
                per_block
                    .extend((outcomes.outcomes.iter()).map(|(_, o)| (o.block, o.probes, o.state)));
                rounds += 1;
            }
            let found = sweep.await.unwrap();
            (
                found.len(),
                swept,
                rounds,
                per_block,
                pinger.receive_drops(),
            )
        })
    })
    .join()
    .expect("test thread");
    let (found, swept, rounds, per_block, drops) = outcome;
    assert!(rounds >= 2, "the sweep ended before rounds ran beside it");
    assert_eq!(found, swept, "the sweep lost replies");
    let reprobed: Vec<_> = per_block
        .iter()
        .filter(|(_, probes, state)| *probes != 1 || *state != BlockState::Up)
        .collect();
    assert!(
        reprobed.is_empty(),
        "{} of {} block rounds needed more than one probe or were not up beside the sweep \
         (first: {:?}); receive drops on the rounds' socket: {drops:?}",
        reprobed.len(),
        per_block.len(),
        reprobed.first()
    );
    assert_eq!(drops, Some(0), "replies dropped on the rounds' socket");
}

#[test]
fn the_filtered_rounds_socket_still_gets_replies_and_routers_errors() {
    let Some(lab) = Lab::or_skip() else {
        return;
    };
    lab.respond("198.18.1.0/24");
    lab.route(&lab.r1, "unreachable", "198.18.2.0/24");
    let prober = lab.prober.clone();
    let (reply, error) = std::thread::spawn(move || {
        darkwatch_netlab::netns::enter(&prober).expect("enter the prober namespace");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let p = SurgePinger::new().expect("raw sockets (run as root)");
            let t = Duration::from_secs(2);
            (
                p.echo("198.18.1.7".parse().unwrap(), t).await,
                p.echo("198.18.2.7".parse().unwrap(), t).await,
            )
        })
    })
    .join()
    .expect("test thread");
    assert!(reply.is_reply(), "{reply:?}");
    // r1 answers from its address towards the prober.
    assert_eq!(
        error,
        Outcome::Unreachable {
            from: "192.0.2.2".parse().unwrap()
        }
    );
}

/// The IPv6 rounds' socket has the same kernel filters as the IPv4 one: a
/// raw ICMPv6 socket with them gets the echo replies of its identifiers
/// only (not a sweep's, not a traceroute's, not the echo requests it sees
/// on loopback), and the real pinger still gets its IPv6 replies through
/// them.
#[test]
fn the_ipv6_rounds_socket_takes_only_its_own_replies() {
    use darkwatch_agent::icmp::filter;
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    use std::net::{Ipv6Addr, SocketAddrV6};
    use std::os::fd::AsRawFd;

    let Some(ns) = Netns::or_skip("v6filter") else {
        return;
    };
    let name = ns.name();
    let (seen, reply) = std::thread::spawn(move || {
        darkwatch_netlab::netns::enter(&name).expect("enter the namespace");
        let base: u16 = 0x1000;
        let rx = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).expect("raw socket");
        filter::set_icmp6_filter(rx.as_raw_fd()).expect("ICMP6_FILTER");
        filter::attach(rx.as_raw_fd(), &filter::echo6_replies(base, 4)).expect("BPF");
        rx.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let tx = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).expect("raw socket");
        let to = SockAddr::from(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 0, 0, 0));
        // Ours (first and last of the range), a sweep's, below the range,
        // a traceroute's (high half).
        for ident in [base, base + 3, base + 4, base - 1, 0x8000 | base] {
            let mut req = vec![128u8, 0, 0, 0];
            req.extend_from_slice(&ident.to_be_bytes());
            req.extend_from_slice(&[0, 1]);
            req.extend_from_slice(b"darkwatch-test\0\0");
            tx.send_to(&req, &to).expect("send");
        }
        let mut seen = Vec::new();
        let mut b = [0u8; 1500];
        while let Ok(n) = std::io::Read::read(&mut &rx, &mut b) {
            assert!(n >= 8, "a short packet");
            seen.push((b[0], u16::from_be_bytes([b[4], b[5]])));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let reply = rt.block_on(async {
            let p = SurgePinger::new().expect("raw sockets (run as root)");
            p.echo("::1".parse().unwrap(), Duration::from_secs(2)).await
        });
        (seen, reply)
    })
    .join()
    .expect("test thread");
    assert_eq!(seen, [(129, 0x1000), (129, 0x1003)]);
    assert!(reply.is_reply(), "{reply:?}");
}
