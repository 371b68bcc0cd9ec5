//! The BMP listener under a full table (issue 30's done-when): a router
//! streams a full table (1M IPv4 routes by default) on session start, then 50 updates a
//! second. The messages are real BMP route monitoring (RFC 7854 headers,
//! BGP updates encoded by `bgpkit-parser`), written over loopback TCP to
//! the collector's own listener and hub, in this process. Measured: the
//! time until the last route is applied and the heap it grew by; the CPU
//! share of the steady 50 updates/s; the time to close a round holding the
//! whole table.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bgpkit_parser::models::{
    AsPath, Asn, AsnLength, BgpMessage, BgpUpdateMessage, ElemType, NetworkPrefix,
};
use bgpkit_parser::BgpElem;
use darkwatch_collector::bgp::{hub::BgpHub, listen};
use darkwatch_collector::clock::SystemClock;
use tokio::io::AsyncWriteExt;

use crate::alloc::{live, peak, reset_peak};
use crate::{yes, Row};

const UPDATES_PER_SEC: u32 = 50;
const STEADY_SECS: u64 = 10;
const PEER: [u8; 4] = [192, 0, 2, 1];

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![3];
    m.extend(((6 + 42 + body.len()) as u32).to_be_bytes());
    m.push(kind);
    // Per-peer header: global peer, IPv4, 4-byte ASNs, no timestamp.
    m.extend([0u8; 22]);
    m.extend(PEER);
    m.extend(64500u32.to_be_bytes());
    m.extend(PEER);
    m.extend([0u8; 8]);
    m.extend(body);
    m
}

fn route(i: u32, kind: ElemType) -> Result<Vec<u8>> {
    // /24s from 1.0.0.0 up; origins spread over 60k ASes.
    let net = Ipv4Addr::from((1u32 << 24) + (i << 8));
    let elem = BgpElem {
        elem_type: kind,
        peer_ip: IpAddr::from(PEER),
        peer_asn: Asn::new_32bit(64500),
        prefix: NetworkPrefix::new(ipnet::IpNet::V4(ipnet::Ipv4Net::new(net, 24)?), None),
        next_hop: Some(IpAddr::from(PEER)),
        as_path: (kind == ElemType::ANNOUNCE)
            .then(|| AsPath::from_sequence([64500, 3356, 1 + i % 60_000])),
        ..Default::default()
    };
    let update = BgpMessage::Update(BgpUpdateMessage::from(&elem))
        .encode(AsnLength::Bits32)
        .map_err(|e| anyhow::anyhow!("encoding an update: {e:?}"))?;
    Ok(message(0, &update))
}

fn peer_up() -> Vec<u8> {
    let open = |asn: u32| {
        BgpMessage::Open(bgpkit_parser::models::BgpOpenMessage {
            version: 4,
            asn: Asn::new_32bit(asn),
            hold_time: 180,
            bgp_identifier: Ipv4Addr::from(PEER),
            extended_length: false,
            opt_params: vec![],
        })
        .encode(AsnLength::Bits32)
        .map(|b| b.to_vec())
        .unwrap_or_default()
    };
    let mut body = vec![0u8; 12];
    body.extend([192, 0, 2, 2]);
    body.extend(179u16.to_be_bytes());
    body.extend(40000u16.to_be_bytes());
    body.extend(open(64501));
    body.extend(open(64500));
    message(3, &body)
}

fn cpu_s() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0.0, |u| {
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        t(u.user_time()) + t(u.system_time())
    })
}

pub fn rows(rows: &mut Vec<Row>, routes: u32) -> Result<()> {
    let routes = routes.max(1);
    eprintln!("bgp: encoding a full table of {routes} routes");
    let mut table = peer_up();
    for i in 0..routes {
        table.extend(route(i, ElemType::ANNOUNCE)?);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let clock = SystemClock::shared();
        let hub = Arc::new(BgpHub::new(600));
        let listener = listen::bind_bmp("127.0.0.1:0".parse()?).await?;
        let addr = listener.local_addr()?;
        tokio::spawn(listen::serve_bmp(listener, hub.clone(), clock.clone()));
        let mut router = tokio::net::TcpStream::connect(addr).await?;

        let before = live();
        reset_peak();
        let t = Instant::now();
        router.write_all(&table).await?;
        let want = u64::from(routes) + 1;
        while hub.counters.events.load(Ordering::Relaxed) < want {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let load_s = t.elapsed().as_secs_f64();
        let load_mib = (peak() - before) as f64 / (1024.0 * 1024.0);
        drop(table);
        rows.push(Row {
            what: format!("BMP full table: {routes} routes on session start, applied"),
            darkwatch: format!("{load_s:.1} s, {load_mib:.0} MiB"),
            peers: "–".into(),
            goal: "≤ 60 s, ≤ 1024 MiB".into(),
            met: yes(load_s <= 60.0 && load_mib <= 1024.0),
        });

        let cpu0 = cpu_s();
        let t = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1) / UPDATES_PER_SEC);
        let n = UPDATES_PER_SEC as u64 * STEADY_SECS;
        for k in 0..n {
            tick.tick().await;
            let i = ((k / 2) * 7919 % u64::from(routes)) as u32;
            let kind = if k % 2 == 0 {
                ElemType::WITHDRAW
            } else {
                ElemType::ANNOUNCE
            };
            router.write_all(&route(i, kind)?).await?;
        }
        while hub.counters.events.load(Ordering::Relaxed) < want + n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let share = (cpu_s() - cpu0) / t.elapsed().as_secs_f64() * 100.0;
        rows.push(Row {
            what: format!("BMP steady: {UPDATES_PER_SEC} updates/s over a full table, CPU"),
            darkwatch: format!("{share:.1} % of a core"),
            peers: "–".into(),
            goal: "≤ 5 %".into(),
            met: yes(share <= 5.0),
        });

        let t = Instant::now();
        hub.tick(clock.now_ms() + 600_000);
        let close_s = t.elapsed().as_secs_f64();
        rows.push(Row {
            what: format!("BGP round close over a full table ({routes} prefixes)"),
            darkwatch: format!("{close_s:.2} s"),
            peers: "–".into(),
            goal: "≤ 5 s".into(),
            met: yes(close_s <= 5.0),
        });
        anyhow::Ok(())
    })
    .context("bgp section")
}
