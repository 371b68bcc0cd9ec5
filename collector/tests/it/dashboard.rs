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
//!
//! The views of the dashboard, each in Chromium with a screenshot:
//! `time_ticks_read_well_at_every_round_length` runs the time-axis functions
//! (`assets/axis.js`) over round lengths and ranges;
//! `time_range_scopes_and_vps_follow_the_url` opens presets, a from/until
//! range, scope lines (country, AS, prefix; the fixture then has a
//! prefix-to-AS file) and VP lines as the URL names them, and checks the
//! values drawn; `verdict_page_shows_the_evidence` checks
//! `GET /v1/verdicts/{id}` and the verdict's page (timeline, each VP's view,
//! where the traceroutes ended, blocks, alerts);
//! `without_signals_the_page_draws_the_timeline` checks that a collector
//! without `/v1/signals` still gets its plot; `controls_rewrite_the_url`
//! clicks the toggles and types a range. Screenshots go to
//! `$DARKWATCH_ARTIFACTS/` or the target directory; their paths are printed.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use darkwatch_collector::correlation::{last_complete_round, CorrelationSettings, Correlator};
use darkwatch_collector::store::{CampaignSpec, SqlStore, Store};
use darkwatch_collector::tokens;
use darkwatch_schema::inputs::pfx2as::Pfx2As;
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
pub(super) const DARK_ONGOING: Range<u64> = 14..ROUNDS;
const VPS: [&str; 3] = ["vp-ams", "vp-fra", "vp-sin"];
/// Where every VP's path toward the dark country ends (upstream of it).
const BORDER: &str = "203.0.113.1";

// ---------- fixture ----------

/// Prefix-to-AS lines of the fixture's two prefixes, one AS each.
const PFX2AS: &str = "198.18.0.0\t22\t64500\n198.18.4.0\t22\t64501\n";

/// The fixture's AS names, in CAIDA's as-org2info layout: AS64501 takes
/// its organisation's name, AS64500 (no organisation) its aut_name.
const AS_ORG2INFO: &str = "\
# format:org_id|changed|org_name|country|source
ORG-TWO|20241001|Example Net Two|KP|APNIC
# format:aut|changed|aut_name|org_id|opaque_id|source
64500|20241001|EXAMPLE-ONE|||APNIC
64501|20241001|EXAMPLE-TWO|ORG-TWO||APNIC
";

/// A fixture database with a recorded blackout of country KP.
pub(super) struct Fixture {
    pub(super) db: Db,
    /// The fixture's first round.
    first_round: u64,
    /// With [`Fixture::build_asns`]: a collector config naming the
    /// prefix-to-AS file (in `_dir`).
    config: Option<PathBuf>,
    /// With [`Fixture::build_asns`]: the AS names file the config names.
    as_names: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
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
                rtt_min_ms: None,
                rtt_median_ms: None,
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
        observations,
        traces,
        ..ReportBatch::new(random_hex(8), now_ms())
    }
}

impl Fixture {
    /// Every block is dark in `dark` (rounds counted from the first).
    pub(super) async fn build(dark: Range<u64>) -> Fixture {
        Self::build_with(dark, 0..0).await
    }

    /// Like [`Fixture::build`], and the second prefix's blocks are dark in
    /// `half_dark`.
    async fn build_with(dark: Range<u64>, half_dark: Range<u64>) -> Fixture {
        Self::build_full(dark, half_dark, false).await
    }

    /// Like [`Fixture::build_with`], correlated with [`PFX2AS`] (so AS
    /// scopes exist), which the collector started by [`Fixture::server`]
    /// loads too.
    async fn build_asns(dark: Range<u64>, half_dark: Range<u64>) -> Fixture {
        Self::build_full(dark, half_dark, true).await
    }

    async fn build_full(dark: Range<u64>, half_dark: Range<u64>, asns: bool) -> Fixture {
        let (dir, config, pfx2as, as_names) = if asns {
            let dir = tempfile::tempdir().expect("temp dir");
            let pfx = dir.path().join("fixture.pfx2as");
            std::fs::write(&pfx, PFX2AS).expect("write pfx2as");
            let names = dir.path().join("fixture.as-org2info.txt");
            std::fs::write(&names, AS_ORG2INFO).expect("write AS names");
            let config = dir.path().join("collector.toml");
            std::fs::write(
                &config,
                format!(
                    "[correlation]\npfx2as = \"{}\"\nas_names = \"{}\"\n",
                    pfx.display(),
                    names.display()
                ),
            )
            .expect("write config");
            let (m, _) = Pfx2As::parse(PFX2AS, "fixture").expect("pfx2as parses");
            (Some(dir), Some(config), Some(m), Some(names))
        } else {
            (None, None, None, None)
        };
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
            ..ReportBatch::new(random_hex(8), now)
        };
        store
            .ingest(VPS[0], &coverage, now)
            .await
            .expect("ingest coverage");
        Correlator::default()
            .pass(
                &store,
                &store,
                &campaign,
                &CorrelationSettings::default(),
                pfx2as.as_ref(),
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
        Fixture {
            db,
            first_round: *rounds.start(),
            config,
            as_names,
            _dir: dir,
        }
    }

    /// `darkwatch-collector serve` on this database (with its config, if any).
    fn server(&self) -> Server {
        match &self.config {
            Some(c) => Server::start(&self.db.url, &["--config", c.to_str().expect("utf-8 path")]),
            None => Server::start(&self.db.url, &[]),
        }
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
    screenshot_sized(bin, profile, url, file, 900).await
}

/// Like [`screenshot`], `height` pixels high.
async fn screenshot_sized(bin: &Path, profile: &Path, url: &str, file: &str, height: u32) {
    let shot = screenshot_path(file);
    let _ = std::fs::remove_file(&shot);
    let args = vec![
        "--virtual-time-budget=8000".to_string(),
        format!("--window-size=1280,{height}"),
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
    assert_eq!((dim(16), dim(20)), (1280, height), "screenshot size");
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
    // Named from ISO 3166, under the code.
    assert_eq!(
        row.get("data-name").map(String::as_str),
        Some("Korea (Democratic People's Republic of)")
    );
    assert!(
        text.contains("KPKorea (Democratic People's Republic of)"),
        "name in {text:?}"
    );
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

/// Names (issue 27): with `[correlation] as_names`, `/v1/outages`,
/// `/v1/verdicts/{id}` and `/v1/signals` name AS scopes from the file and
/// countries from ISO 3166, next to the unchanged keys; the CLI given the
/// same file (`--as-names`) prints the same; the dashboard shows the names
/// in the verdict list and on the verdict page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ases_and_countries_are_named_in_api_cli_and_dashboard() {
    let fx = Fixture::build_asns(0..0, DARK).await;
    let server = fx.server();
    let db = fx.db.url.as_str();
    let names = fx.as_names.as_ref().expect("AS names file");
    let names = names.to_str().expect("utf-8 path");
    let api = api_json(&server, "/v1/outages").await;
    let all = api.as_array().expect("array");
    let find = |kind: &str, scope: &str| {
        all.iter()
            .find(|v| v["kind"] == kind && v["scope"] == scope)
            .unwrap_or_else(|| panic!("no {kind} of a {scope} in {api:#}"))
    };
    let asn = find("blackout", "asn");
    assert_eq!(asn["target"], "AS64501");
    assert_eq!(asn["name"], "Example Net Two");
    let country = find("partial", "country");
    assert_eq!(country["target"], "KP");
    assert_eq!(country["name"], "Korea (Democratic People's Republic of)");
    // The AS blackout explains the country partial, named there too.
    let cause = &country["explained_by"][0];
    assert_eq!(cause["target"], "AS64501", "{country:#}");
    assert_eq!(cause["name"], "Example Net Two");
    // The CLI with the same file prints the same; without it, ASes are
    // unnamed and countries still named.
    assert_eq!(
        cli_json(db, &["outages", "--json", "--as-names", names]),
        api
    );
    let bare = cli_json(db, &["outages", "--json"]);
    let bare_asn = bare
        .as_array()
        .expect("array")
        .iter()
        .find(|v| v["id"] == asn["id"])
        .expect("the AS verdict");
    assert_eq!(bare_asn["name"], serde_json::Value::Null);
    let table = cli_ok(db, &["outages", "--as-names", names]);
    assert!(
        table
            .lines()
            .any(|l| l.contains("AS64501") && l.ends_with(" Example Net Two")),
        "{table}"
    );
    // The verdict's evidence and the signals.
    let id = asn["id"].as_i64().expect("id");
    let ev = api_json(&server, &format!("/v1/verdicts/{id}")).await;
    assert_eq!(ev["verdict"]["target"], "AS64501");
    assert_eq!(ev["verdict"]["name"], "Example Net Two");
    let sig = api_json(&server, "/v1/signals?scope=asn&target=AS64501").await;
    assert_eq!(sig["target"], "AS64501");
    assert_eq!(sig["name"], "Example Net Two");
    let csv = cli_ok(
        db,
        &[
            "signals",
            "--scope",
            "asn",
            "--target",
            "AS64501",
            "--as-names",
            names,
        ],
    );
    let row = csv.lines().nth(1).expect("a CSV row");
    assert!(row.ends_with(",Example Net Two"), "{csv}");

    let Some(bin) = chromium() else { return };
    let profile = tempfile::tempdir().expect("chromium profile dir");
    let dom = dump_dom(&bin, profile.path(), &server.url("/")).await;
    let (row, text) = elements(&dom, "tr")
        .into_iter()
        .find(|(a, _)| has_class(a, "verdict") && attr(a, "data-scope") == Some("asn"))
        .unwrap_or_else(|| panic!("no AS row:\n{dom}"));
    assert_eq!(attr(&row, "data-target"), Some("AS64501"));
    assert_eq!(attr(&row, "data-name"), Some("Example Net Two"));
    assert!(text.contains("AS64501Example Net Two"), "{text:?}");
    let dom = dump_dom(&bin, profile.path(), &server.url(&format!("/verdict/{id}"))).await;
    let (_, fact) = elements(&dom, "tr")
        .into_iter()
        .find(|(a, _)| has_class(a, "fact") && has_class(a, "name"))
        .unwrap_or_else(|| panic!("no name fact on the verdict page:\n{dom}"));
    assert!(fact.contains("Example Net Two"), "{fact:?}");
}

// ---------- time range, lines, verdict page ----------

/// The first element `tag` whose `id` is `id`.
fn by_id(dom: &str, tag: &str, id: &str) -> (BTreeMap<String, String>, String) {
    elements(dom, tag)
        .into_iter()
        .find(|(a, _)| attr(a, "id") == Some(id))
        .unwrap_or_else(|| panic!("no <{tag} id={id}> in:\n{dom}"))
}

/// `data-values` of the plotted line `key` (`overall`, a VP, `scope:target`).
fn line_values(dom: &str, key: &str) -> Option<Vec<String>> {
    elements(dom, "path")
        .into_iter()
        .find(|(a, _)| has_class(a, "series") && attr(a, "data-series") == Some(key))
        .map(|(a, _)| a["data-values"].split(',').map(String::from).collect())
}

/// Labels of the time axis, checked to be distinct and non-empty.
fn x_ticks(dom: &str) -> Vec<String> {
    let labels: Vec<String> = elements(dom, "text")
        .into_iter()
        .filter(|(a, _)| has_class(a, "x-tick"))
        .map(|(_, t)| t)
        .collect();
    assert!(labels.len() >= 2, "time axis labels {labels:?}");
    let distinct: std::collections::BTreeSet<&String> = labels.iter().collect();
    assert_eq!(distinct.len(), labels.len(), "repeated labels {labels:?}");
    labels
}

/// Does `s` look like `pattern` (`9` a digit, anything else itself)?
fn shaped(s: &str, pattern: &str) -> bool {
    s.len() == pattern.len()
        && s.chars()
            .zip(pattern.chars())
            .all(|(c, p)| if p == '9' { c.is_ascii_digit() } else { c == p })
}

/// `input` toggles of the plots: (data-key or data-vp, checked).
fn toggles(dom: &str) -> BTreeMap<String, bool> {
    elements(dom, "input")
        .into_iter()
        .filter_map(|(a, _)| {
            let key = a.get("data-key").or(a.get("data-vp"))?.clone();
            Some((key, a.contains_key("checked")))
        })
        .collect()
}

fn utc_minute(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("valid time")
        .format("%Y-%m-%dT%H:%MZ")
        .to_string()
}

/// The tick functions of axis.js, run in Chromium over round lengths from
/// 1 s to 1 h and ranges from 20 rounds to 30 days: at most 8 ticks, never
/// finer than a round, distinct labels, each the tick's own UTC time in the
/// format its step and the span call for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_ticks_read_well_at_every_round_length() {
    let Some(bin) = chromium() else { return };
    let db = Db::sqlite();
    let server = Server::start(&db.url, &[]);
    const DAY: i64 = 86_400_000;
    let x0: i64 = 1_764_670_123_456; // 2025-12-02T10:08:43.456Z, not aligned
    let mut cases = Vec::new();
    for interval_s in [1i64, 2, 10, 60, 300, 600, 3600] {
        let i = interval_s * 1000;
        for span in [
            20 * i,
            288 * i,
            3_600_000,
            6 * 3_600_000,
            DAY,
            7 * DAY,
            30 * DAY,
        ] {
            cases.push(serde_json::json!({"x0": x0, "x1": x0 + span, "interval": i}));
        }
    }
    let page = format!(
        "<!doctype html><html><body><pre id=\"out\"></pre>\
         <script src=\"{}\"></script><script>\
         const cases = {};\
         document.getElementById('out').textContent = JSON.stringify(cases.map((c) => {{\
           const ticks = timeTicks(c.x0, c.x1, c.interval, 8);\
           return {{ ...c, ticks, caption: axisCaption(c.x0, c.x1, ticks) }};\
         }}));</script></body></html>",
        server.url("/assets/axis.js"),
        serde_json::Value::Array(cases.clone())
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("ticks.html");
    std::fs::write(&file, page).expect("write page");
    let dom = dump_dom(&bin, dir.path(), &format!("file://{}", file.display())).await;
    let (_, out) = by_id(&dom, "pre", "out");
    let results: Vec<serde_json::Value> =
        serde_json::from_str(&out.replace("&amp;", "&")).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(results.len(), cases.len());
    let fmt = |ms: i64, f: &str| {
        chrono::DateTime::from_timestamp_millis(ms)
            .expect("time")
            .format(f)
            .to_string()
    };
    for r in &results {
        let (a, b, i) = (
            r["x0"].as_i64().unwrap(),
            r["x1"].as_i64().unwrap(),
            r["interval"].as_i64().unwrap(),
        );
        let span = b - a;
        let ticks: Vec<(i64, String)> = r["ticks"]
            .as_array()
            .expect("ticks")
            .iter()
            .map(|t| {
                (
                    t["ms"].as_i64().unwrap(),
                    t["label"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let case = format!("round {i} ms, span {span} ms: {ticks:?}");
        assert!(
            (2..=8).contains(&ticks.len()) || (span < 4 * i && !ticks.is_empty()),
            "{case}"
        );
        let labels: std::collections::BTreeSet<&String> = ticks.iter().map(|(_, l)| l).collect();
        assert_eq!(labels.len(), ticks.len(), "repeated labels, {case}");
        assert!(ticks.iter().all(|(ms, _)| (a..=b).contains(ms)), "{case}");
        if ticks.len() < 2 {
            continue;
        }
        let step = ticks[1].0 - ticks[0].0;
        assert!(step >= i.min(DAY), "ticks finer than a round, {case}");
        assert!(ticks.windows(2).all(|w| w[1].0 - w[0].0 == step), "{case}");
        assert!(
            ticks.iter().all(|(ms, _)| ms % step == 0),
            "unaligned, {case}"
        );
        let format = if step >= DAY {
            "%m-%d"
        } else if step < 60_000 {
            "%H:%M:%S"
        } else if span >= DAY {
            "%m-%d %H:%M"
        } else {
            "%H:%M"
        };
        for (ms, label) in &ticks {
            assert_eq!(label, &fmt(*ms, format), "{case}");
        }
        let caption = r["caption"].as_str().unwrap();
        if format.starts_with("%H") {
            assert!(
                caption.contains(&fmt(a, "%Y-%m-%d")),
                "caption {caption:?}, {case}"
            );
        } else {
            assert_eq!(caption, "UTC", "{case}");
        }
    }
}

/// The overview follows its URL: a preset range, a from/until range, which
/// scopes have lines (the country, each AS, each prefix) and which VPs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_range_scopes_and_vps_follow_the_url() {
    let Some(bin) = chromium() else { return };
    // Prefix 198.18.4.0/22 (AS64501) is dark in DARK: half the country.
    let fx = Fixture::build_asns(0..0, DARK).await;
    let server = fx.server();
    let profile = tempfile::tempdir().expect("chromium profile dir");
    let dark = |dark_value: &str| -> Vec<String> {
        (0..ROUNDS)
            .map(|r| if DARK.contains(&r) { dark_value } else { "1" }.to_string())
            .collect()
    };

    // What the page draws comes from /v1/scopes and /v1/signals.
    let scopes = api_json(&server, "/v1/scopes?campaign=kp").await;
    let keys: Vec<String> = scopes
        .as_array()
        .expect("array")
        .iter()
        .map(|s| {
            format!(
                "{}:{}",
                s["scope"].as_str().unwrap(),
                s["target"].as_str().unwrap()
            )
        })
        .collect();
    for k in [
        "country:KP",
        "asn:AS64500",
        "asn:AS64501",
        "prefix:198.18.0.0/22",
        "prefix:198.18.4.0/22",
    ] {
        assert!(keys.iter().any(|x| x == k), "{k} not in {keys:?}");
    }

    // Preset: the last hour, every round of the fixture in it.
    let url = server.url("/?range=1h");
    let dom = dump_dom(&bin, profile.path(), &url).await;
    let (a, _) = by_id(&dom, "span", "updated");
    assert_eq!(attr(&a, "data-state"), Some("ok"), "{dom}");
    let presets: Vec<_> = elements(&dom, "a")
        .into_iter()
        .filter(|(a, _)| has_class(a, "preset"))
        .collect();
    let active: Vec<_> = presets
        .iter()
        .filter(|(a, _)| has_class(a, "active"))
        .collect();
    assert_eq!(active.len(), 1, "{presets:?}");
    assert_eq!(attr(&active[0].0, "data-range"), Some("1h"));
    assert_eq!(attr(&active[0].0, "aria-current"), Some("true"));
    // Each preset link keeps the rest of the view (here: nothing else).
    assert!(
        presets
            .iter()
            .any(|(a, _)| attr(a, "href") == Some("/?range=7d")),
        "{presets:?}"
    );
    let (a, text) = by_id(&dom, "span", "range-text");
    assert_eq!(attr(&a, "data-range"), Some("1h"));
    assert!(text.starts_with("last 1 h: "), "{text:?}");
    let plot = elements(&dom, "svg")
        .into_iter()
        .find(|(a, _)| has_class(a, "timeline"))
        .expect("plot");
    let x = |k: &str| {
        attr(&plot.0, k)
            .and_then(|v| v.parse::<i64>().ok())
            .expect("x0/x1")
    };
    assert_eq!(x("data-x1") - x("data-x0"), 3_600_000);
    assert_eq!(line_values(&dom, "overall"), Some(dark("0.5")));
    let ticks = x_ticks(&dom);
    assert!(ticks.iter().all(|t| shaped(t, "99:99")), "{ticks:?}");
    screenshot(&bin, profile.path(), &url, "dashboard-range-1h.png").await;

    // Presets of a day and a week: labels with dates.
    let dom = dump_dom(&bin, profile.path(), &server.url("/?range=24h")).await;
    let ticks = x_ticks(&dom);
    assert!(ticks.iter().all(|t| shaped(t, "99-99 99:99")), "{ticks:?}");
    let url = server.url("/?range=7d");
    let dom = dump_dom(&bin, profile.path(), &url).await;
    // A week is redrawn every minute, not every 5 s: loaded once in 8 s.
    assert_eq!(
        attr(&by_id(&dom, "span", "updated").0, "data-refreshes"),
        Some("1")
    );
    let ticks = x_ticks(&dom);
    assert!(ticks.iter().all(|t| shaped(t, "99-99")), "{ticks:?}");
    assert_eq!(line_values(&dom, "overall"), Some(dark("0.5")));
    // A week of 1-minute rounds is more than one signals request gives:
    // the page asks for the last rounds and says so.
    assert!(
        elements(&dom, "span")
            .iter()
            .any(|(a, t)| has_class(a, "clipped") && t.contains("at most 10000 rounds")),
        "no note of the rounds left out in:\n{dom}"
    );
    screenshot(&bin, profile.path(), &url, "dashboard-range-7d.png").await;

    // From/until in the URL: ten rounds, from two before the dark ones.
    let from = round_start_ms(fx.first_round + 6, INTERVAL);
    let until = round_start_ms(fx.first_round + 16, INTERVAL);
    let url = server.url(&format!(
        "/?from={}&until={}",
        utc_minute(from),
        utc_minute(until)
    ));
    let dom = dump_dom(&bin, profile.path(), &url).await;
    let (a, _) = by_id(&dom, "span", "range-text");
    assert_eq!(attr(&a, "data-range"), Some("custom"));
    let plot = elements(&dom, "svg")
        .into_iter()
        .find(|(a, _)| has_class(a, "timeline"))
        .expect("plot");
    assert_eq!(attr(&plot.0, "data-x0"), Some(from.to_string().as_str()));
    assert_eq!(attr(&plot.0, "data-x1"), Some(until.to_string().as_str()));
    let values = line_values(&dom, "overall").expect("overall line");
    assert_eq!(values, dark("0.5")[6..16].to_vec());
    let points = elements(&dom, "circle")
        .into_iter()
        .filter(|(a, _)| has_class(a, "point"))
        .count();
    assert_eq!(points, 10);
    let (a, _) = by_id(&dom, "input", "range-from");
    assert_eq!(
        attr(&a, "value"),
        None,
        "a field's typed value is not an attribute"
    );
    assert!(
        !presets_active(&dom),
        "no preset is active on a custom range"
    );
    x_ticks(&dom);
    screenshot(&bin, profile.path(), &url, "dashboard-from-until.png").await;

    // A bad range is named, and the latest rounds are shown instead.
    let dom = dump_dom(&bin, profile.path(), &server.url("/?range=2w")).await;
    let (a, text) = by_id(&dom, "span", "range-error");
    assert!(
        !a.contains_key("hidden") && text.contains("unknown range 2w"),
        "{text:?}"
    );
    assert_eq!(line_values(&dom, "overall"), Some(dark("0.5")));

    // Scope lines toggled on in the URL: the dark prefix and its AS at 0,
    // the country at half; the other prefix and AS off. One VP's line.
    let url = server.url("/?range=1h&show=country:KP,prefix:198.18.4.0/22,asn:AS64501&vps=vp-sin");
    let dom = dump_dom(&bin, profile.path(), &url).await;
    assert_eq!(line_values(&dom, "overall"), Some(dark("0.5")));
    assert_eq!(line_values(&dom, "prefix:198.18.4.0/22"), Some(dark("0")));
    assert_eq!(line_values(&dom, "asn:AS64501"), Some(dark("0")));
    assert_eq!(line_values(&dom, "prefix:198.18.0.0/22"), None);
    assert_eq!(line_values(&dom, "asn:AS64500"), None);
    assert!(line_values(&dom, "vp-sin").is_some());
    assert_eq!(line_values(&dom, "vp-ams"), None);
    let t = toggles(&dom);
    let expect: BTreeMap<String, bool> = [
        ("country:KP", true),
        ("asn:AS64500", false),
        ("asn:AS64501", true),
        ("prefix:198.18.0.0/22", false),
        ("prefix:198.18.4.0/22", true),
        ("vp-ams", false),
        ("vp-fra", false),
        ("vp-sin", true),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(t, expect);
    screenshot(&bin, profile.path(), &url, "dashboard-scopes.png").await;

    // Lines of each VP (the default): vp-sin alone lost one of 8 blocks
    // for two rounds; the country line off shows the VPs' lines still.
    let url = server.url("/?show=prefix:198.18.0.0/22");
    let dom = dump_dom(&bin, profile.path(), &url).await;
    assert_eq!(line_values(&dom, "overall"), None);
    assert_eq!(line_values(&dom, "prefix:198.18.0.0/22"), Some(dark("1")));
    for vp in VPS {
        let v = line_values(&dom, vp).unwrap_or_else(|| panic!("no line of {vp}"));
        let mut want = dark("0.5");
        if vp == "vp-sin" {
            want[3] = "0.875".into();
            want[4] = "0.875".into();
        }
        assert_eq!(v, want, "{vp}");
        assert_eq!(toggles(&dom).get(vp), Some(&true));
    }
    assert_eq!(toggles(&dom).get("country:KP"), Some(&false));
    screenshot(&bin, profile.path(), &url, "dashboard-vps.png").await;
    let dom = dump_dom(&bin, profile.path(), &server.url("/?vps=none")).await;
    assert!(VPS.iter().all(|vp| line_values(&dom, vp).is_none()));
    assert!(line_values(&dom, "overall").is_some());
}

fn presets_active(dom: &str) -> bool {
    elements(dom, "a")
        .iter()
        .any(|(a, _)| has_class(a, "preset") && has_class(a, "active"))
}

/// `GET /v1/verdicts/{id}` and the verdict's page: its timeline, each VP's
/// view, where the traceroutes ended before and during, the blocks, the
/// alerts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdict_page_shows_the_evidence() {
    let fx = Fixture::build(DARK).await;
    let server = fx.server();
    let outages = api_json(&server, "/v1/outages").await;
    let v = outages
        .as_array()
        .expect("array")
        .iter()
        .find(|v| v["kind"] == "blackout" && v["scope"] == "country")
        .unwrap_or_else(|| panic!("no country blackout in {outages:#}"))
        .clone();
    let id = v["id"].as_i64().expect("id");

    // The evidence.
    let ev = api_json(&server, &format!("/v1/verdicts/{id}")).await;
    assert_eq!(ev["verdict"], v);
    assert_eq!(
        ev["top_scope"],
        serde_json::json!({"scope": "country", "target": "KP"})
    );
    assert_eq!(ev["interval_secs"], INTERVAL);
    let rounds = ev["rounds"].as_array().expect("rounds");
    let phases: Vec<&str> = rounds
        .iter()
        .map(|r| r["phase"].as_str().unwrap())
        .collect();
    let want: Vec<&str> = (0..ROUNDS)
        .map(|r| {
            if r < DARK.start {
                "before"
            } else if DARK.contains(&r) {
                "during"
            } else {
                "after"
            }
        })
        .collect();
    assert_eq!(phases, want);
    assert!(rounds
        .iter()
        .all(|r| r["blocks_judged"] == 8 && r["per_vp"].as_array().map(Vec::len) == Some(3)));
    let during: Vec<&serde_json::Value> =
        rounds.iter().filter(|r| r["phase"] == "during").collect();
    assert!(during
        .iter()
        .all(|r| r["blocks_up"] == 0 && r["share_up"] == 0.0));
    assert_eq!(ev["affected_blocks"].as_array().map(Vec::len), Some(8));
    assert_eq!(
        ev["affected_blocks"][0]["rounds_down"],
        DARK.end - DARK.start
    );
    let traces = ev["traces"].as_array().expect("traces");
    assert_eq!(
        traces
            .iter()
            .map(|t| t["vp"].as_str().unwrap())
            .collect::<Vec<_>>(),
        VPS
    );
    assert!(traces
        .iter()
        .all(|t| t["traces"].as_array().map(Vec::len) == Some(ROUNDS as usize)));
    let ending = |phase: &str| {
        ev["endings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["phase"] == phase)
            .unwrap_or_else(|| panic!("no {phase} ending in {:#}", ev["endings"]))
            .clone()
    };
    let dark_traces = 3 * (DARK.end - DARK.start);
    let e = ending("during");
    assert_eq!(
        (e["last_hop"].as_str(), e["reached"].as_bool()),
        (Some(BORDER), Some(false))
    );
    assert_eq!(
        (e["traces"].as_u64(), e["of"].as_u64()),
        (Some(dark_traces), Some(dark_traces))
    );
    let e = ending("before");
    assert_eq!(
        (e["last_hop"].as_str(), e["reached"].as_bool()),
        (Some("198.18.0.1"), Some(true))
    );
    assert_eq!(e["traces"].as_u64(), Some(3 * DARK.start));
    let alerts: Vec<(&str, bool)> = ev["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["event"].as_str().unwrap(), a["given"].as_bool().unwrap()))
        .collect();
    assert_eq!(alerts, [("open", true), ("close", true)]);
    for (path, status) in [
        ("/v1/verdicts/999999".to_string(), StatusCode::NOT_FOUND),
        ("/v1/verdicts/abc".into(), StatusCode::BAD_REQUEST),
        (
            format!("/v1/verdicts/{id}?around=1000"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/v1/verdicts/{id}?colour=red"),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let resp = reqwest::get(server.url(&path)).await.expect("GET");
        assert_eq!(resp.status(), status, "GET {path}");
        let err: ApiError = resp.json().await.expect("ApiError JSON");
        assert!(!err.error.is_empty());
    }
    let short = api_json(&server, &format!("/v1/verdicts/{id}?around=2")).await;
    assert_eq!(short["first_round"], v["start_round"].as_u64().unwrap() - 2);

    let Some(bin) = chromium() else { return };
    let profile = tempfile::tempdir().expect("chromium profile dir");
    // The overview links each verdict to its page.
    let dom = dump_dom(&bin, profile.path(), &server.url("/")).await;
    let href = format!("/verdict/{id}");
    assert!(
        elements(&dom, "a")
            .iter()
            .any(|(a, _)| has_class(a, "verdict-link") && attr(a, "href") == Some(href.as_str())),
        "no link to {href} in:\n{dom}"
    );

    let url = server.url(&href);
    let dom = dump_dom(&bin, profile.path(), &url).await;
    let (a, _) = by_id(&dom, "span", "updated");
    assert_eq!(attr(&a, "data-state"), Some("ok"), "{dom}");
    let (page, _) = by_id(&dom, "div", "verdict-page");
    assert!(!page.contains_key("hidden"));
    assert_eq!(attr(&page, "data-kind"), Some("blackout"));
    assert_eq!(attr(&page, "data-scope"), Some("country"));
    assert_eq!(attr(&page, "data-target"), Some("KP"));
    assert!(by_id(&dom, "div", "overview").0.contains_key("hidden"));
    let (a, _) = by_id(&dom, "a", "verdict-overview");
    let first = round_start_ms(ev["first_round"].as_u64().unwrap(), INTERVAL);
    let after = round_start_ms(ev["last_round"].as_u64().unwrap() + 1, INTERVAL);
    // (Serialized HTML escapes `&` in attributes.) The window may have
    // grown by a round since the API was asked: `until` is at least its end.
    let href = attr(&a, "href").expect("href").replace("&amp;", "&");
    let until = href
        .strip_prefix(&format!("/?from={}&until=", utc_minute(first)))
        .and_then(|r| r.strip_suffix("&show=country:KP"))
        .unwrap_or_else(|| panic!("overview link {href:?}"));
    let until = chrono::DateTime::parse_from_rfc3339(&until.replace('Z', ":00Z"))
        .unwrap_or_else(|e| panic!("until {until:?}: {e}"));
    assert!(until.timestamp_millis() >= after, "{href}");
    let (_, title) = by_id(&dom, "h2", "verdict-title");
    assert_eq!(title, "blackout of country KP");
    let rows = elements(&dom, "tr");
    let row = |class: &str| -> Vec<(BTreeMap<String, String>, String)> {
        rows.iter()
            .filter(|(a, _)| has_class(a, class))
            .cloned()
            .collect()
    };
    let loc = &v["localization"];
    let (_, facts) = row("localization").pop().expect("localization fact");
    assert!(
        facts.contains(&format!(
            "paths end at {BORDER} (upstream of the scope): {} of {} traces agree",
            loc["agreeing"], loc["traces"]
        )),
        "{facts:?}"
    );
    assert!(row("blocks")[0].1.contains("8/8"));
    // Timeline: every round, the verdict as a band.
    let points = elements(&dom, "circle")
        .into_iter()
        .filter(|(a, _)| has_class(a, "point"))
        .count();
    assert_eq!(points, ROUNDS as usize);
    assert!(elements(&dom, "rect")
        .iter()
        .any(|(a, _)| has_class(a, "band-blackout")
            && attr(a, "data-id") == Some(id.to_string().as_str())));
    x_ticks(&dom);
    // Each VP's view: all up before (vp-sin lost a block for two rounds),
    // nothing during.
    let views = row("vp-view");
    assert_eq!(views.len(), 3);
    for (a, text) in &views {
        let vp = attr(a, "data-vp").unwrap();
        let before = if vp == "vp-sin" {
            "97% (62/64)"
        } else {
            "100% (64/64)"
        };
        assert!(
            text.contains(before) && text.contains("0% (0/48)"),
            "{vp}: {text:?}"
        );
        assert!(text.contains(&format!("{BORDER} ×6")), "{vp}: {text:?}");
    }
    // Where the paths ended.
    let endings = row("ending");
    let (a, text) = endings
        .iter()
        .find(|(a, _)| attr(a, "data-phase") == Some("during"))
        .expect("during ending");
    assert_eq!(attr(a, "data-last-hop"), Some(BORDER));
    assert!(
        text.contains(&format!("{dark_traces} of {dark_traces}")),
        "{text:?}"
    );
    assert!(endings
        .iter()
        .any(|(a, _)| attr(a, "data-phase") == Some("before")
            && attr(a, "data-reached") == Some("true")));
    let paths = row("trace");
    assert_eq!(paths.len(), 6, "latest path before and during of each VP");
    for (a, text) in &paths {
        if attr(a, "data-phase") == Some("during") {
            assert!(text.contains(&format!("{BORDER} → * → *")), "{text:?}");
            assert_eq!(attr(a, "data-last-hop"), Some(BORDER));
        } else {
            assert!(text.contains("reached 198.18.0.1"), "{text:?}");
        }
    }
    // Blocks and prefixes.
    let blocks = row("affected-block");
    assert_eq!(blocks.len(), 8);
    assert!(blocks.iter().all(|(_, t)| t.contains("6 of 6")));
    assert_eq!(attr(&blocks[0].0, "data-prefix"), Some("198.18.0.0/22"));
    let (_, prefixes) = by_id(&dom, "p", "verdict-prefixes");
    assert!(
        prefixes.contains("198.18.0.0/22, 198.18.4.0/22"),
        "{prefixes:?}"
    );
    // Alerts.
    let alerts = row("alert");
    assert_eq!(alerts.len(), 2);
    assert!(alerts
        .iter()
        .all(|(a, t)| attr(a, "data-given") == Some("true") && t.contains("given")));
    screenshot_sized(&bin, profile.path(), &url, "dashboard-verdict.png", 1900).await;

    // An unknown verdict says so.
    let dom = dump_dom(&bin, profile.path(), &server.url("/verdict/999999")).await;
    let (a, text) = by_id(&dom, "span", "updated");
    assert_eq!(attr(&a, "data-state"), Some("error"));
    assert!(text.contains("no verdict with id 999999"), "{text:?}");
}

/// The dashboard's own page, run from a file: its scripts come from
/// `server`, its requests go there (Chromium then runs without same-origin
/// checks), except those whose path matches the JS regular expression
/// `missing`, answered 404 as by a collector without them. `script` runs
/// after the page's own. Returns the DOM after `budget_ms` of virtual time.
async fn run_as_file(
    bin: &Path,
    server: &Server,
    missing: &str,
    query: &str,
    script: &str,
    budget_ms: u32,
) -> String {
    let html = reqwest::get(server.url("/"))
        .await
        .expect("GET /")
        .text()
        .await
        .expect("page");
    let base = server.url("");
    let shim = format!(
        "<script>const realFetch = window.fetch; window.fetch = (path, opts) => \
         /{missing}/.test(path) \
         ? Promise.resolve(new Response('{{\"error\":\"no such endpoint\"}}', \
             {{ status: 404, headers: {{ 'Content-Type': 'application/json' }} }})) \
         : realFetch('{base}' + path, opts);</script>"
    );
    let page = html
        .replace("href=\"/assets/", &format!("href=\"{base}/assets/"))
        .replace(
            "<script src=\"/assets/axis.js\">",
            &format!("{shim}<script src=\"{base}/assets/axis.js\">"),
        )
        .replace(
            "<script src=\"/assets/app.js\"></script>",
            &format!("<script src=\"{base}/assets/app.js\"></script><script>{script}</script>"),
        );
    assert!(page.contains("realFetch") && page.contains(&format!("{base}/assets/app.js")));
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("dashboard.html");
    std::fs::write(&file, page).expect("write page");
    let profile = dir.path().join("profile");
    let url = format!("file://{}{query}", file.display());
    let bin = bin.to_path_buf();
    tokio::task::spawn_blocking(move || {
        run_chromium(
            &bin,
            &profile,
            &[
                // The file's page asks the collector's origin.
                "--disable-web-security".into(),
                format!("--virtual-time-budget={budget_ms}"),
                "--dump-dom".into(),
                url,
            ],
        )
    })
    .await
    .expect("chromium thread")
}

/// A collector without `/v1/signals` and `/v1/scopes` (older than them)
/// still gets its plot: the page draws `/v1/timeline`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_signals_the_page_draws_the_timeline() {
    let Some(bin) = chromium() else { return };
    let fx = Fixture::build(DARK).await;
    let server = fx.server();
    let dom = run_as_file(&bin, &server, "^\\/v1\\/(signals|scopes)", "", "", 8000).await;
    let (a, text) = by_id(&dom, "span", "updated");
    assert_eq!(attr(&a, "data-state"), Some("ok"), "{text}");
    let (plot, _) = by_id(&dom, "div", "plot-kp");
    assert_eq!(attr(&plot, "data-source"), Some("timeline"));
    let want: Vec<String> = (0..ROUNDS)
        .map(|r| if DARK.contains(&r) { "0" } else { "1" }.to_string())
        .collect();
    assert_eq!(line_values(&dom, "overall"), Some(want));
    assert!(VPS.iter().all(|vp| line_values(&dom, vp).is_some()));
    assert!(
        elements(&dom, "span")
            .iter()
            .any(|(_, t)| t.contains("per-scope lines need /v1/signals")),
        "{dom}"
    );
    x_ticks(&dom);
}

/// The controls rewrite the URL and the view: the page (run from a file,
/// see [`run_as_file`]) gets a scope toggle, a VP toggle and the country's
/// toggle clicked, then a from/until range typed in, and after each step
/// records its query, its preset links and the lines it drew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controls_rewrite_the_url() {
    let Some(bin) = chromium() else { return };
    let fx = Fixture::build_asns(0..0, DARK).await;
    let server = fx.server();
    let from = utc_minute(round_start_ms(fx.first_round + 6, INTERVAL));
    let until = utc_minute(round_start_ms(fx.first_round + 16, INTERVAL));
    let script = format!(
        r#"
const out = [];
const pre = document.createElement("pre");
pre.id = "steps";
document.body.appendChild(pre);
const record = (step) => out.push({{
  step,
  search: decodeURIComponent(location.search),
  preset: document.querySelector('a.preset[data-range="6h"]').getAttribute("href"),
  lines: [...document.querySelectorAll("path.series")].map((p) => p.getAttribute("data-series")),
  x0: document.querySelector("svg.timeline").getAttribute("data-x0"),
}});
const steps = [
  () => document.querySelector('input[data-key="prefix:198.18.4.0/22"]').click(),
  () => {{ record("scope on"); document.querySelector('input[data-vp="vp-ams"]').click(); }},
  () => {{ record("vp off"); document.querySelector('input[data-key="country:KP"]').click(); }},
  () => {{
    record("country off");
    document.getElementById("range-from").value = "{from}";
    document.getElementById("range-until").value = "{until}";
    document.getElementById("range-apply").click();
  }},
  () => record("from/until"),
];
steps.forEach((s, i) => setTimeout(() => {{
  try {{ s(); }} catch (e) {{ out.push({{ step: "error: " + e }}); }}
  pre.textContent = JSON.stringify(out);
}}, 2500 * (i + 1)));
"#
    );
    let dom = run_as_file(&bin, &server, "^$", "?range=1h", &script, 15000).await;
    let (_, out) = by_id(&dom, "pre", "steps");
    let steps: Vec<serde_json::Value> =
        serde_json::from_str(&out.replace("&amp;", "&")).unwrap_or_else(|e| panic!("{e}: {dom}"));
    let step = |name: &str| {
        steps
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("no step {name:?} in {steps:#?}"))
            .clone()
    };
    let lines = |s: &serde_json::Value| -> Vec<String> {
        let mut l: Vec<String> = s["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect();
        l.sort();
        l
    };
    let s = step("scope on");
    assert_eq!(
        s["search"],
        "?range=1h&show=country:KP,prefix:198.18.4.0/22"
    );
    assert_eq!(
        lines(&s),
        [
            "overall",
            "prefix:198.18.4.0/22",
            "vp-ams",
            "vp-fra",
            "vp-sin"
        ]
    );
    let s = step("vp off");
    assert_eq!(
        s["search"],
        "?range=1h&show=country:KP,prefix:198.18.4.0/22&vps=vp-fra,vp-sin"
    );
    assert_eq!(
        lines(&s),
        ["overall", "prefix:198.18.4.0/22", "vp-fra", "vp-sin"]
    );
    let s = step("country off");
    assert_eq!(
        s["search"],
        "?range=1h&show=prefix:198.18.4.0/22&vps=vp-fra,vp-sin"
    );
    assert_eq!(lines(&s), ["prefix:198.18.4.0/22", "vp-fra", "vp-sin"]);
    // A preset keeps the lines chosen.
    assert_eq!(
        s["preset"],
        "/?range=6h&show=prefix:198.18.4.0/22&vps=vp-fra,vp-sin"
    );
    let s = step("from/until");
    assert_eq!(
        s["search"],
        format!("?show=prefix:198.18.4.0/22&vps=vp-fra,vp-sin&from={from}&until={until}")
    );
    assert_eq!(
        s["x0"],
        round_start_ms(fx.first_round + 6, INTERVAL).to_string()
    );
}
