//! The dashboard and the read-only JSON API, end to end.
//!
//! A fixture SQLite database is built through the collector's own store and
//! correlation code: three vantage points watch a country campaign for 20
//! rounds, and in the middle every block goes dark for six rounds while the
//! VPs' traceroutes stop at the same upstream router, so a `blackout` verdict
//! with a localization is recorded. The real `darkwatch-collector serve`
//! then runs on 127.0.0.1 with that database. `read_api_matches_the_cli`
//! checks that `/v1/outages`, `/v1/timeline` and `/v1/status` return what
//! the CLI's `--json` prints and that bad parameters get a 400;
//! `dashboard_renders_in_chromium` opens `/` in headless Chromium, checks
//! the rendered DOM (plot, blackout band, verdict row with its localization,
//! agents) and saves a screenshot.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use darkwatch_collector::correlation::{self, last_complete_round, CorrelationSettings};
use darkwatch_collector::store::{CampaignSpec, SqlStore, Store};
use darkwatch_collector::tokens;
use darkwatch_schema::{
    round_start_ms, ApiError, BlockObservation, BlockState, Coverage, Hop, ReportBatch, SkipReason,
    Skipped, TraceObservation,
};
use ipnet::IpNet;
use reqwest::StatusCode;

use crate::common::{cli_ok, random_hex, Db, Server};
use darkwatch_correlate::{Kind, Scope};

const INTERVAL: u64 = 60;
const ROUNDS: u64 = 20;
/// Rounds (counted from the first) during which every block is dark.
const DARK: Range<u64> = 8..14;
/// The same for a blackout still going on at the fixture's last round.
const DARK_ONGOING: Range<u64> = 14..ROUNDS;
const VPS: [&str; 3] = ["vp-ams", "vp-fra", "vp-sin"];
/// Where every VP's path toward the dark country ends (upstream of it).
const BORDER: &str = "203.0.113.1";

// ---------- fixture ----------

/// A fixture database with a recorded blackout of country KP.
struct Fixture {
    db: Db,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn net(s: &str) -> IpNet {
    s.parse().expect("valid prefix")
}

fn addr(s: &str) -> IpAddr {
    s.parse().expect("valid address")
}

/// One VP's report of every round: observations of each block and one
/// traceroute per round toward the country.
fn vp_batch(
    vp: usize,
    blocks: &[IpNet],
    rounds: std::ops::RangeInclusive<u64>,
    dark_rounds: &Range<u64>,
    half_dark: &Range<u64>,
) -> ReportBatch {
    let first = *rounds.start();
    let mut observations = Vec::new();
    let mut traces = Vec::new();
    for round in rounds {
        let ts = round_start_ms(round, INTERVAL) + 5_000 + vp as i64 * 100;
        let dark = dark_rounds.contains(&(round - first));
        let second_half_dark = half_dark.contains(&(round - first));
        for (i, &block) in blocks.iter().enumerate() {
            // vp-sin also loses one block for two rounds on its own (too
            // few VPs to count as down, but its line shows the dip).
            let down = dark
                || (second_half_dark && i >= blocks.len() / 2)
                || (vp == 2 && i == 0 && (3..5).contains(&(round - first)));
            observations.push(BlockObservation {
                campaign: "kp".into(),
                round,
                block,
                state: if down {
                    BlockState::Down
                } else {
                    BlockState::Up
                },
                probes: if down { 3 } else { 1 },
                replies: if down { 0 } else { 1 },
                belief: if down { 0.02 } else { 0.98 },
                availability: if down { 0.0 } else { 0.9 },
                control: false,
                ts_ms: ts,
            });
        }
        let first_hop = addr(&format!("192.0.2.{}", 10 + vp));
        let target = addr("198.18.0.1");
        let hops: Vec<Hop> = if dark {
            vec![
                Hop {
                    ttl: 1,
                    addr: Some(first_hop),
                    rtt_ms: Some(1.0),
                    unreachable: None,
                },
                Hop {
                    ttl: 2,
                    addr: Some(addr(BORDER)),
                    rtt_ms: Some(20.0),
                    unreachable: None,
                },
                Hop {
                    ttl: 3,
                    addr: None,
                    rtt_ms: None,
                    unreachable: None,
                },
                Hop {
                    ttl: 4,
                    addr: None,
                    rtt_ms: None,
                    unreachable: None,
                },
            ]
        } else {
            vec![
                Hop {
                    ttl: 1,
                    addr: Some(first_hop),
                    rtt_ms: Some(1.0),
                    unreachable: None,
                },
                Hop {
                    ttl: 2,
                    addr: Some(addr(BORDER)),
                    rtt_ms: Some(20.0),
                    unreachable: None,
                },
                Hop {
                    ttl: 3,
                    addr: Some(target),
                    rtt_ms: Some(25.0),
                    unreachable: None,
                },
            ]
        };
        traces.push(TraceObservation {
            campaign: "kp".into(),
            round,
            target,
            last_responding: TraceObservation::derive_last_responding(&hops),
            reached: !dark,
            hops,
            ts_ms: ts + 50,
        });
    }
    ReportBatch {
        batch_id: random_hex(8),
        created_ms: now_ms(),
        observations,
        traces,
        coverage: Vec::new(),
        census: Vec::new(),
        packed: Vec::new(),
        rounds: Vec::new(),
    }
}

impl Fixture {
    /// Every block is dark in `dark` (rounds counted from the first).
    async fn build(dark: Range<u64>) -> Fixture {
        Self::build_with(dark, 0..0).await
    }

    /// Like [`Fixture::build`], and the second prefix's blocks are dark in
    /// `half_dark`.
    async fn build_with(dark: Range<u64>, half_dark: Range<u64>) -> Fixture {
        let db = Db::sqlite();
        let store = SqlStore::open(&db.url).await.expect("open fixture store");
        let now = now_ms();
        for vp in VPS {
            store
                .add_agent(vp, &tokens::hash(&tokens::generate()), now)
                .await
                .expect("add agent");
            store.touch_agent(vp, now).await.expect("touch agent");
        }
        store
            .add_agent("vp-spare", &tokens::hash(&tokens::generate()), now)
            .await
            .expect("add agent");
        let prefixes = vec![net("198.18.0.0/22"), net("198.18.4.0/22")];
        let campaign = store
            .put_campaign(
                &CampaignSpec {
                    name: "kp".into(),
                    country: Some("KP".into()),
                    interval_secs: INTERVAL,
                    prefixes: prefixes.clone(),
                    control: vec![],
                    agents: vec![],
                },
                false,
                now,
            )
            .await
            .expect("put campaign");
        let blocks: Vec<IpNet> = prefixes
            .iter()
            .flat_map(|p| p.subnets(24).expect("/24s"))
            .collect();
        // Only complete rounds, so the timeline does not change as time passes.
        let last = last_complete_round(now, INTERVAL).expect("clock after 1970");
        let rounds = last + 1 - ROUNDS..=last;
        for (i, vp) in VPS.iter().enumerate() {
            let ack = store
                .ingest(
                    vp,
                    &vp_batch(i, &blocks, rounds.clone(), &dark, &half_dark),
                    now,
                )
                .await
                .expect("ingest");
            assert_eq!(ack.observations_stored, ROUNDS * blocks.len() as u64);
        }
        // vp-ams watches less than it was asked to (its coverage says why).
        let coverage = ReportBatch {
            batch_id: random_hex(8),
            created_ms: now,
            observations: vec![],
            traces: vec![],
            coverage: vec![Coverage {
                campaign: "kp".into(),
                generation: campaign.generation,
                blocks_tracked: 6,
                addresses_targeted: 1536,
                skipped: vec![Skipped {
                    reason: SkipReason::Reserved,
                    addresses: 512,
                    examples: vec![net("198.18.4.0/23")],
                }],
            }],
            census: vec![],
            packed: Vec::new(),
            rounds: Vec::new(),
        };
        store
            .ingest(VPS[0], &coverage, now)
            .await
            .expect("ingest coverage");
        correlation::pass(
            &store,
            &campaign,
            &CorrelationSettings::default(),
            None,
            now,
        )
        .await
        .expect("correlation pass");
        let verdicts = store
            .list_verdicts(None, None)
            .await
            .expect("list verdicts");
        assert!(
            dark.is_empty()
                || verdicts.iter().any(|v| v.kind == Kind::Blackout
                    && v.scope == Scope::Country
                    && v.target == "KP"),
            "fixture must record a country blackout, got {verdicts:#?}"
        );
        store.close().await;
        Fixture { db }
    }
}

fn cli_json(db: &str, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&cli_ok(db, args)).expect("CLI prints JSON")
}

async fn api_json(server: &Server, path: &str) -> serde_json::Value {
    let resp = reqwest::get(server.url(path)).await.expect("GET");
    assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
    resp.json().await.expect("JSON body")
}

// ---------- API ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_api_matches_the_cli() {
    let fx = Fixture::build(DARK).await;
    let server = Server::start(&fx.db.url, &[]);
    let db = fx.db.url.as_str();

    let pairs: [(&str, &[&str]); 9] = [
        ("/v1/outages", &["outages", "--json"]),
        (
            "/v1/outages?country=kp",
            &["outages", "--json", "--country", "kp"],
        ),
        (
            "/v1/outages?country=FR",
            &["outages", "--json", "--country", "FR"],
        ),
        (
            "/v1/outages?ongoing=true",
            &["outages", "--json", "--ongoing"],
        ),
        (
            "/v1/outages?ongoing=false&since=2h",
            &["outages", "--json", "--since", "2h"],
        ),
        (
            "/v1/outages?since=1m",
            &["outages", "--json", "--since", "1m"],
        ),
        ("/v1/timeline", &["timeline", "--json"]),
        (
            "/v1/timeline?country=KP",
            &["timeline", "--json", "--country", "KP"],
        ),
        ("/v1/status", &["status", "--json"]),
    ];
    for (path, args) in pairs {
        let api = api_json(&server, path).await;
        let cli = cli_json(db, args);
        assert_eq!(api, cli, "GET {path} differs from `{}`", args.join(" "));
    }

    // The answers hold the recorded blackout, not just the same nothing.
    let outages = api_json(&server, "/v1/outages?country=KP").await;
    let blackout = outages
        .as_array()
        .expect("array")
        .iter()
        .find(|v| v["kind"] == "blackout" && v["scope"] == "country")
        .unwrap_or_else(|| panic!("no country blackout in {outages:#}"));
    assert_eq!(blackout["target"], "KP");
    assert_eq!(blackout["blocks_affected"], 8);
    assert_eq!(blackout["localization"]["last_hop"], BORDER);
    assert_eq!(blackout["localization"]["inside_target"], false);
    assert!(blackout["duration_secs"].as_i64().is_some_and(|d| d > 0));
    assert_eq!(
        api_json(&server, "/v1/outages?country=FR").await,
        serde_json::json!([])
    );
    // The blackout ended 6 rounds before the fixture's last round.
    assert_eq!(
        api_json(&server, "/v1/outages?ongoing=true").await,
        serde_json::json!([])
    );
    let timeline = api_json(&server, "/v1/timeline?country=kp").await;
    assert_eq!(timeline[0]["campaign"], "kp");
    assert_eq!(
        timeline[0]["rounds"].as_array().map(Vec::len),
        Some(ROUNDS as usize)
    );
    let status = api_json(&server, "/v1/status").await;
    assert_eq!(status["agents"].as_array().map(Vec::len), Some(4));
    assert_eq!(status["agents"][0]["name"], VPS[0]);
    assert_eq!(
        status["agents"][0]["coverage"][0]["summary"],
        "kp: 6 blocks, 1536 addresses, skipped 512 reserved (198.18.4.0/23)"
    );
    assert_eq!(status["agents"][1]["coverage"], serde_json::json!([]));
    assert_eq!(
        status["agents"][1]["coverage_missing"],
        serde_json::json!(["kp"])
    );
    assert_eq!(
        status["agents"][0]["coverage_missing"],
        serde_json::json!([])
    );

    // Bad parameters: 400 with a JSON message that names the problem.
    for (path, needle) in [
        ("/v1/outages?since=yesterday", "since"),
        ("/v1/outages?ongoing=maybe", "ongoing"),
        ("/v1/outages?country=KPX", "country"),
        ("/v1/outages?colour=red", "colour"),
        ("/v1/timeline?country=1", "country"),
        ("/v1/timeline?window=9", "window"),
        ("/v1/status?verbose=1", "verbose"),
    ] {
        let resp = reqwest::get(server.url(path)).await.expect("GET");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "GET {path}");
        let err: ApiError = resp.json().await.expect("ApiError JSON");
        assert!(err.error.contains(needle), "GET {path}: {:?}", err.error);
    }

    // The page and its assets are served by the collector itself.
    let resp = reqwest::get(server.url("/")).await.expect("GET /");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    assert!(resp.text().await.unwrap().contains("/assets/app.js"));
    let resp = reqwest::get(server.url("/assets/app.js"))
        .await
        .expect("GET app.js");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let resp = reqwest::get(server.url("/assets/nope.js"))
        .await
        .expect("GET nope.js");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

// ---------- browser ----------

/// Debian's `chromium` (or `DARKWATCH_CHROMIUM`), or None when the test
/// should skip: only outside CI, where a missing browser fails.
fn chromium() -> Option<PathBuf> {
    let bin =
        PathBuf::from(std::env::var("DARKWATCH_CHROMIUM").unwrap_or_else(|_| "chromium".into()));
    let found = Command::new(&bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some(bin);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {} cannot run: install Debian's chromium (.ci/setup)",
        bin.display()
    );
    eprintln!(
        "skipping the browser test: {} not found (apt-get install chromium)",
        bin.display()
    );
    None
}

/// Runs headless Chromium with `args` and returns its stdout.
fn run_chromium(bin: &Path, profile: &Path, args: &[String]) -> String {
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chromium");
    let mut stdout = child.stdout.take().expect("stdout piped");
    let mut stderr = child.stderr.take().expect("stderr piped");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    // A generous guard against a hung browser, not a timing assertion.
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for chromium") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish: {}",
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    assert!(status.success(), "chromium failed ({status}): {stderr}");
    stdout
}

/// Start tags named `tag` in serialized HTML: their attributes and the text
/// up to the matching close tag (tags removed, entities left as they are).
fn elements(dom: &str, tag: &str) -> Vec<(BTreeMap<String, String>, String)> {
    let open = format!("<{tag} ");
    let close = format!("</{tag}>");
    let mut found = Vec::new();
    let mut rest = dom;
    while let Some(i) = rest.find(&open) {
        rest = &rest[i + open.len()..];
        let Some(end) = rest.find('>') else { break };
        let attrs = parse_attrs(&rest[..end]);
        let inner = match rest.find(&close) {
            Some(c) if c > end => &rest[end + 1..c],
            _ => "",
        };
        found.push((attrs, strip_tags(inner)));
    }
    found
}

fn parse_attrs(s: &str) -> BTreeMap<String, String> {
    let mut attrs = BTreeMap::new();
    let mut rest = s.trim_end_matches('/').trim();
    while !rest.is_empty() {
        let name_end = rest.find(['=', ' ']).unwrap_or(rest.len());
        let name = rest[..name_end].to_string();
        rest = &rest[name_end..];
        if let Some(r) = rest.strip_prefix("=\"") {
            let q = r.find('"').unwrap_or(r.len());
            attrs.insert(name, r[..q].to_string());
            rest = r.get(q + 1..).unwrap_or("");
        } else {
            attrs.insert(name, String::new());
        }
        rest = rest.trim_start();
    }
    attrs
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

fn has_class(attrs: &BTreeMap<String, String>, class: &str) -> bool {
    attrs
        .get("class")
        .is_some_and(|c| c.split_whitespace().any(|x| x == class))
}

/// Where to save a screenshot: in `$DARKWATCH_ARTIFACTS/` or the target dir.
fn screenshot_path(file: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("DARKWATCH_ARTIFACTS") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("create DARKWATCH_ARTIFACTS");
        return dir.join(file);
    }
    // The test binary lives in <target>/<profile>/deps/.
    let exe = std::env::current_exe().expect("test binary path");
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join(file)
}

/// The page's DOM after 8 s of virtual time. Virtual time runs the page's
/// timers (and refreshes) without waiting; it pauses while the page's
/// fetches are in flight.
async fn dump_dom(bin: &Path, profile: &Path, url: &str) -> String {
    let (bin, profile, url) = (bin.to_path_buf(), profile.to_path_buf(), url.to_string());
    tokio::task::spawn_blocking(move || {
        run_chromium(
            &bin,
            &profile,
            &[
                "--virtual-time-budget=8000".into(),
                "--dump-dom".into(),
                url,
            ],
        )
    })
    .await
    .expect("chromium thread")
}

/// Saves a 1280x900 screenshot of `url` as `file` (see [`screenshot_path`])
/// and checks that it is a PNG with content.
async fn screenshot(bin: &Path, profile: &Path, url: &str, file: &str) {
    let shot = screenshot_path(file);
    let _ = std::fs::remove_file(&shot);
    let args = vec![
        "--virtual-time-budget=8000".to_string(),
        "--window-size=1280,900".into(),
        format!("--screenshot={}", shot.display()),
        url.to_string(),
    ];
    let (bin, profile) = (bin.to_path_buf(), profile.to_path_buf());
    tokio::task::spawn_blocking(move || run_chromium(&bin, &profile, &args))
        .await
        .expect("chromium thread");
    let png =
        std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", shot.display()));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let dim = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().expect("4 bytes"));
    assert_eq!((dim(16), dim(20)), (1280, 900), "screenshot size");
    // A blank page compresses to a few KB; plot, text and tables do not.
    assert!(png.len() > 30_000, "screenshot is only {} bytes", png.len());
    eprintln!("dashboard screenshot: {}", shot.display());
}

/// Attribute `name` of an element, if present.
fn attr<'a>(attrs: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    attrs.get(name).map(String::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_renders_in_chromium() {
    let Some(bin) = chromium() else { return };
    let fx = Fixture::build(DARK).await;
    let server = Server::start(&fx.db.url, &[]);
    let profile = tempfile::tempdir().expect("chromium profile dir");
    let url = server.url("/");

    let dom = dump_dom(&bin, profile.path(), &url).await;

    let updated = elements(&dom, "span")
        .into_iter()
        .find(|(a, _)| a.get("id").map(String::as_str) == Some("updated"));
    let (attrs, text) = updated.expect("#updated in the page");
    assert_eq!(
        attrs.get("data-state").map(String::as_str),
        Some("ok"),
        "page did not load its data: {text}"
    );
    // It keeps refreshing: with 8 s of virtual time and a 5 s period, the
    // data was loaded at least twice.
    let refreshes: u32 = attrs
        .get("data-refreshes")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(refreshes >= 2, "page loaded its data {refreshes} times");

    // The plot of campaign kp: an overall line, per-VP lines, one point per round.
    let svgs = elements(&dom, "svg");
    assert!(
        svgs.iter().any(|(a, _)| has_class(a, "timeline")
            && a.get("data-campaign").map(String::as_str) == Some("kp")),
        "no timeline plot for kp in:\n{dom}"
    );
    let paths = elements(&dom, "path");
    let series = |name: &str| {
        paths
            .iter()
            .find(|(a, _)| {
                has_class(a, "series") && a.get("data-series").map(String::as_str) == Some(name)
            })
            .and_then(|(a, _)| a.get("d").cloned())
            .unwrap_or_else(|| panic!("no {name} line in the plot"))
    };
    let overall = series("overall");
    assert_eq!(
        overall.matches(['M', 'L']).count(),
        ROUNDS as usize,
        "overall line: {overall}"
    );
    for vp in VPS {
        assert!(series(vp).contains('L'), "line of {vp}");
    }
    let points: Vec<_> = elements(&dom, "circle")
        .into_iter()
        .filter(|(a, _)| has_class(a, "point"))
        .collect();
    assert_eq!(points.len(), ROUNDS as usize);
    let zeros = points
        .iter()
        .filter(|(a, _)| a.get("data-value").map(String::as_str) == Some("0"))
        .count();
    assert_eq!(
        zeros as u64,
        DARK.end - DARK.start,
        "rounds plotted at 0% up"
    );

    // The blackout as a full-height band of the country.
    let bands: Vec<_> = elements(&dom, "rect")
        .into_iter()
        .filter(|(a, _)| has_class(a, "band"))
        .collect();
    let band = bands
        .iter()
        .find(|(a, _)| {
            a.get("data-kind").map(String::as_str) == Some("blackout")
                && a.get("data-scope").map(String::as_str) == Some("country")
        })
        .unwrap_or_else(|| panic!("no blackout band among {bands:?}"));
    assert!(has_class(&band.0, "band-blackout") && !has_class(&band.0, "band-sub"));
    assert!(
        band.0
            .get("width")
            .and_then(|w| w.parse::<f64>().ok())
            .is_some_and(|w| w > 50.0),
        "band {band:?}"
    );

    // The verdict list: the country blackout with its localization.
    let rows = elements(&dom, "tr");
    let (row, text) = rows
        .iter()
        .find(|(a, _)| {
            has_class(a, "verdict")
                && a.get("data-kind").map(String::as_str) == Some("blackout")
                && a.get("data-scope").map(String::as_str) == Some("country")
        })
        .unwrap_or_else(|| panic!("no blackout row in the verdict list:\n{dom}"));
    assert_eq!(row.get("data-target").map(String::as_str), Some("KP"));
    assert_eq!(row.get("data-ongoing").map(String::as_str), Some("false"));
    assert!(text.contains("8/8"), "blocks affected in {text:?}");
    assert!(
        text.contains(&format!("{BORDER} (upstream)")),
        "localization in {text:?}"
    );
    assert!(text.contains("6m00s"), "duration in {text:?}");
    assert!(VPS.iter().all(|vp| text.contains(vp)), "VPs in {text:?}");
    let loc = elements(&dom, "td")
        .into_iter()
        .find(|(a, _)| a.get("data-last-hop").is_some());
    assert_eq!(
        loc.map(|(a, _)| (a["data-last-hop"].clone(), a["data-inside"].clone())),
        Some((BORDER.into(), "false".into()))
    );

    // The agents with their health.
    let health = |name: &str| {
        rows.iter()
            .find(|(a, _)| {
                has_class(a, "agent") && a.get("data-agent").map(String::as_str) == Some(name)
            })
            .and_then(|(a, _)| a.get("data-health").cloned())
    };
    for vp in VPS {
        assert_eq!(health(vp).as_deref(), Some("ok"), "{vp}");
    }
    assert_eq!(health("vp-spare").as_deref(), Some("never-seen"));
    // What each agent watches: only vp-ams reported, and it skipped space;
    // the other two VPs seen have not said.
    let (missing, coverage): (Vec<_>, Vec<_>) = elements(&dom, "div")
        .into_iter()
        .filter(|(a, _)| has_class(a, "campaign-coverage"))
        .partition(|(a, _)| has_class(a, "missing"));
    assert_eq!(coverage.len(), 1, "coverage lines in:\n{dom}");
    assert_eq!(missing.len(), 2, "missing coverage lines in:\n{dom}");
    assert!(missing
        .iter()
        .all(|(_, t)| t.contains("kp: no coverage reported")));
    let (a, text) = &coverage[0];
    assert_eq!(attr(a, "data-campaign"), Some("kp"));
    assert_eq!(attr(a, "data-partial"), Some("true"));
    assert!(has_class(a, "partial"));
    assert!(
        text.contains("6 blocks, 1536 addresses, skipped 512 reserved (198.18.4.0/23)"),
        "coverage in {text:?}"
    );

    screenshot(&bin, profile.path(), &url, "dashboard-screenshot.png").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ongoing_blackout_is_shown_open() {
    let Some(bin) = chromium() else { return };
    let fx = Fixture::build(DARK_ONGOING).await;
    let server = Server::start(&fx.db.url, &[]);

    // The API and the CLI agree that it is open.
    let api = api_json(&server, "/v1/outages?ongoing=true&country=KP").await;
    assert_eq!(
        api,
        cli_json(
            &fx.db.url,
            &["outages", "--json", "--ongoing", "--country", "KP"]
        )
    );
    let open = api.as_array().expect("array");
    assert!(
        open.iter()
            .any(|v| v["kind"] == "blackout" && v["scope"] == "country" && v["end"].is_null()),
        "no open country blackout in {api:#}"
    );
    let status = api_json(&server, "/v1/status").await;
    assert!(status["open_verdicts"]
        .as_array()
        .is_some_and(|v| !v.is_empty()));

    let profile = tempfile::tempdir().expect("chromium profile dir");
    let dom = dump_dom(&bin, profile.path(), &server.url("/")).await;
    let rows = elements(&dom, "tr");
    let (row, text) = rows
        .iter()
        .find(|(a, _)| {
            has_class(a, "verdict")
                && attr(a, "data-kind") == Some("blackout")
                && attr(a, "data-scope") == Some("country")
        })
        .unwrap_or_else(|| panic!("no blackout row in the verdict list:\n{dom}"));
    assert!(has_class(row, "ongoing"));
    assert_eq!(attr(row, "data-ongoing"), Some("true"));
    assert!(text.contains("ongoing"), "end in {text:?}");
    assert!(text.contains("+"), "open duration in {text:?}");
    let bands = elements(&dom, "rect");
    assert!(
        bands.iter().any(|(a, _)| has_class(a, "band")
            && attr(a, "data-kind") == Some("blackout")
            && attr(a, "data-ongoing") == Some("true")),
        "no open blackout band in:\n{dom}"
    );
    screenshot(
        &bin,
        profile.path(),
        &server.url("/"),
        "dashboard-ongoing.png",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dark_prefix_is_one_headline_with_the_country_partial_nested() {
    let fx = Fixture::build_with(0..0, DARK).await;
    let server = Server::start(&fx.db.url, &[]);
    let api = api_json(&server, "/v1/outages").await;
    assert_eq!(api, cli_json(&fx.db.url, &["outages", "--json"]));
    let all = api.as_array().expect("array");
    let find = |kind: &str, scope: &str| {
        all.iter()
            .find(|v| v["kind"] == kind && v["scope"] == scope)
            .unwrap_or_else(|| panic!("no {kind} of a {scope} in {api:#}"))
    };
    let cause = find("blackout", "prefix");
    assert_eq!(cause["target"], "198.18.4.0/22");
    assert_eq!(cause["explained_by"], serde_json::json!([]));
    let partial = find("partial", "country");
    assert_eq!(partial["explained_by"][0]["id"], cause["id"]);
    assert_eq!(partial["explained_by"][0]["kind"], "blackout");
    // The table prints the cause once with the partial nested under it.
    let table = cli_ok(&fx.db.url, &["outages"]);
    let lines: Vec<&str> = table.lines().collect();
    let head = lines
        .iter()
        .position(|l| l.starts_with("blackout") && l.contains("198.18.4.0/22"))
        .unwrap_or_else(|| panic!("no headline in:\n{table}"));
    assert!(
        lines[head + 1].starts_with(" └ partial") && lines[head + 1].contains("country"),
        "{table}"
    );

    let Some(bin) = chromium() else { return };
    let profile = tempfile::tempdir().expect("chromium profile dir");
    let dom = dump_dom(&bin, profile.path(), &server.url("/")).await;
    let rows: Vec<_> = elements(&dom, "tr")
        .into_iter()
        .filter(|(a, _)| has_class(a, "verdict"))
        .collect();
    let at = rows
        .iter()
        .position(|(a, _)| attr(a, "data-kind") == Some("blackout"))
        .unwrap_or_else(|| panic!("no blackout row:\n{dom}"));
    let id = cause["id"].to_string();
    assert_eq!(attr(&rows[at].0, "data-id"), Some(id.as_str()));
    let (nested, text) = &rows[at + 1];
    assert!(has_class(nested, "nested"), "{dom}");
    assert_eq!(attr(nested, "data-scope"), Some("country"));
    assert_eq!(attr(nested, "data-explained-by"), Some(id.as_str()));
    assert!(text.contains("└"), "{text:?}");
}
