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

/// The fuzz seed's BMP session (peer up, an announcement, a withdrawal, a
/// peer down), cut into its messages by the collector's own framing.
fn bmp_messages() -> Vec<Vec<u8>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds/bmp/session.bmp");
    let mut rest = &std::fs::read(path).unwrap()[..];
    let mut out = Vec::new();
    while let Some(len) = darkwatch_collector::bgp::bmp::frame_len(rest).unwrap() {
        out.push(rest[..len].to_vec());
        rest = &rest[len..];
    }
    assert!(rest.is_empty());
    out
}

async fn bgp_state(server: &crate::common::Server) -> serde_json::Value {
    reqwest::get(server.url("/v1/bgp?prefix=198.18.0.0/15"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls `/v1/bgp` until `done` holds of the open round (a guard against a
/// hang, not a timing assertion).
async fn until(server: &crate::common::Server, done: impl Fn(&serde_json::Value) -> bool) {
    for _ in 0..600 {
        let v = bgp_state(server).await;
        if done(&v["current"]) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("BGP state never reached: {}", bgp_state(server).await);
}

#[tokio::test]
async fn bmp_listener_keeps_per_peer_state_and_a_closed_connection_takes_its_peers_down() {
    use tokio::io::AsyncWriteExt;
    let db = crate::common::Db::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.path().join("collector.toml");
    std::fs::write(
        &cfg,
        format!("[bgp]\nbmp_listen = \"127.0.0.1:{port}\"\nround_secs = 86400\n"),
    )
    .unwrap();
    let server = crate::common::Server::start(&db.url, &["--config", cfg.to_str().unwrap()]);
    let msgs = bmp_messages();
    assert_eq!(msgs.len(), 4);

    let mut router = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    // Peer up and the announcement, in one write with the next message's
    // first bytes: framing must wait for the rest.
    let first = [msgs[0].clone(), msgs[1].clone(), msgs[2][..3].to_vec()].concat();
    router.write_all(&first).await.unwrap();
    let prefix = |c: &serde_json::Value| c["prefixes"][0].clone();
    until(&server, |c| {
        c["peers_up"] == 1
            && prefix(c)["announced_by"] == 1
            && prefix(c)["origins"] == serde_json::json!([65001])
    })
    .await;
    // The rest of the withdrawal, then the announcement again: a cycle
    // (rounds of a day, so both fall in one).
    router.write_all(&msgs[2][3..]).await.unwrap();
    router.write_all(&msgs[1]).await.unwrap();
    until(&server, |c| prefix(c)["cycles"] == 1).await;
    // The router goes away without a peer down: its peer is down.
    drop(router);
    until(&server, |c| {
        c["peers_up"] == 0 && prefix(c)["announced_by"] == 0 && prefix(c)["known_peers"] == 1
    })
    .await;

    // Not BMP: closed and counted; the listener goes on.
    let mut junk = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let metrics = || async {
        reqwest::get(server.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    for _ in 0..600 {
        if metrics().await.contains("darkwatch_bgp_bmp_errors_total 1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let text = metrics().await;
    assert!(text.contains("darkwatch_bgp_bmp_errors_total 1"), "{text}");
    assert!(
        text.contains("darkwatch_bgp_prefixes_withdrawn 1"),
        "{text}"
    );
    assert!(
        text.contains("darkwatch_bgp_bmp_connections_total 2"),
        "{text}"
    );
    let mut again = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    again.write_all(&msgs[0]).await.unwrap();
    until(&server, |c| c["peers_up"] == 1).await;
}

#[tokio::test]
async fn bgp_endpoint_says_when_there_is_no_bgp_input() {
    let db = crate::common::Db::sqlite();
    let server = crate::common::Server::start(&db.url, &[]);
    let resp = reqwest::get(server.url("/v1/bgp")).await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.text().await.unwrap().contains("[bgp]"));
}

/// `serve` stores the BMP session's rounds; `signals --source bgp` reads
/// them back for a prefix, an AS and a country scope.
async fn bgp_rounds_are_stored_and_read_as_signals(db: crate::common::Db) {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.path().join("collector.toml");
    // One-second rounds, so rounds close while the test runs.
    std::fs::write(
        &cfg,
        format!("[bgp]\nbmp_listen = \"127.0.0.1:{port}\"\nround_secs = 1\n"),
    )
    .unwrap();
    crate::common::cli_ok(
        &db.url,
        &[
            "campaign",
            "add",
            "kp",
            "--country",
            "KP",
            "--prefix",
            "198.18.0.0/22",
        ],
    );
    let server = crate::common::Server::start(&db.url, &["--config", cfg.to_str().unwrap()]);
    let msgs = bmp_messages();
    let mut router = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    router
        .write_all(&[msgs[0].clone(), msgs[1].clone()].concat())
        .await
        .unwrap();
    let signal = |scope: &str, target: &str| {
        let out = crate::common::cli(
            &db.url,
            &[
                "signals",
                "--source",
                "bgp",
                "--round-secs",
                "1",
                "--from",
                "10m",
                "--scope",
                scope,
                "--target",
                target,
                "--format",
                "jsonl",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        rounds(&out.stdout)
    };
    let mut seen = false;
    for _ in 0..600 {
        if signal("prefix", "198.18.1.0/24")
            .iter()
            .any(|r| r["announced"] == 1)
        {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(seen, "the announcement was never stored");
    router.write_all(&msgs[3]).await.unwrap();
    let withdrawn = |r: &Vec<serde_json::Value>| {
        r.last()
            .is_some_and(|l| l["withdrawn_routes"] == 1 && l["announced"] == 0)
    };
    let mut last = Vec::new();
    for _ in 0..600 {
        last = signal("asn", "AS65001");
        if withdrawn(&last) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(withdrawn(&last), "{last:?}");
    let country = signal("country", "kp");
    assert_eq!(
        country.last().unwrap()["withdrawn_routes"],
        1,
        "{country:?}"
    );
    assert_eq!(country.last().unwrap()["prefixes"], 1);

    // The same through the API.
    let get = |q: &str| {
        let url = server.url(&format!("/v1/signals?{q}"));
        async move { reqwest::get(url).await.unwrap() }
    };
    let resp = get("source=bgp&scope=country&target=KP&round_secs=1&from=10m").await;
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["source"], "bgp");
    let last = v["rounds"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["withdrawn_routes"].clone(), last["prefixes"].clone()),
        (1.into(), 1.into()),
        "{v}"
    );
    assert!(last["start_ms"].as_i64().unwrap() > 0);
    let resp = get("source=radar&scope=country&target=KP").await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("probes or bgp"));
    let resp = get("source=bgp&scope=country&target=KP&vp=a").await;
    assert_eq!(resp.status(), 400);
    // source=probes is the probe signal, as without source.
    let with = get("source=probes&scope=country&target=KP").await;
    let without = get("scope=country&target=KP").await;
    assert_eq!(with.status(), without.status());
    assert_eq!(with.text().await.unwrap(), without.text().await.unwrap());
    drop(server);
}

#[tokio::test]
async fn bgp_rounds_are_stored_and_read_as_signals_sqlite() {
    bgp_rounds_are_stored_and_read_as_signals(crate::common::Db::sqlite()).await;
}

#[tokio::test]
async fn bgp_rounds_are_stored_and_read_as_signals_postgres() {
    if let Some(db) = crate::common::Db::postgres().await {
        bgp_rounds_are_stored_and_read_as_signals(db).await;
    }
}
