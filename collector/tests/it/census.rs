//! Coverage, census and hitlists end to end, through the real
//! `darkwatch-collector` binary (server and CLI).
//!
//! An agent reports what it watches (coverage) and what its discovery found
//! (census); `status` then shows the coverage and the skipped space, and a
//! second agent's assignment carries the census, screened to the campaign's
//! prefixes. A hitlist file (IPv6 and IPv4 addresses and a broken line)
//! seeds the census inside the campaign's prefixes, skipping and counting
//! addresses outside them; a campaign of hitlists alone takes their blocks.
//! `campaign add` and `campaign show` print what the campaign holds.
//! Every body runs against SQLite, and against PostgreSQL when
//! `DARKWATCH_TEST_PG` is set (see `common`).

use std::net::IpAddr;

use darkwatch_collector::store::{SqlStore, Store};
use darkwatch_schema::{
    Assignments, CampaignAssignment, CampaignCensus, CensusBlock, CensusSet, Coverage, ReportBatch,
    SkipReason, Skipped,
};
use ipnet::IpNet;
use reqwest::StatusCode;

use crate::common::{cli, cli_ok, random_hex, Server};

fn add_agent(db: &str, name: &str) -> String {
    cli_ok(db, &["agents", "add", name]).trim().to_string()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn block(net: &str, addrs: &[&str]) -> CensusBlock {
    CensusBlock {
        block: net.parse().expect("block"),
        addrs: addrs.iter().map(|a| a.parse().expect("addr")).collect(),
    }
}

/// A batch with no observations: only coverage and census.
fn extras(coverage: Vec<Coverage>, census: Vec<CampaignCensus>) -> ReportBatch {
    ReportBatch {
        coverage,
        census,
        ..ReportBatch::new(random_hex(16), now_ms())
    }
}

async fn post(srv: &Server, token: &str, batch: &ReportBatch) {
    let resp = reqwest::Client::new()
        .post(srv.url("/v1/reports"))
        .bearer_auth(token)
        .json(batch)
        .send()
        .await
        .expect("request");
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{}",
        resp.text().await.unwrap_or_default()
    );
}

async fn assignment(srv: &Server, token: &str, campaign: &str) -> CampaignAssignment {
    let resp = reqwest::Client::new()
        .get(srv.url("/v1/assignments"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    let a: Assignments = resp.json().await.expect("assignments");
    a.campaigns
        .into_iter()
        .find(|c| c.name == campaign)
        .unwrap_or_else(|| panic!("no campaign {campaign} assigned"))
}

/// The campaign's assignment asked for with the census apart
/// (`?census=v1`), and its census from `/v1/census/{campaign}`.
async fn compact(srv: &Server, token: &str, campaign: &str) -> (CampaignAssignment, CensusSet) {
    let http = reqwest::Client::new();
    let resp = http
        .get(srv.url("/v1/assignments?census=v1"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    let a: Assignments = resp.json().await.expect("assignments");
    let c = a
        .campaigns
        .into_iter()
        .find(|c| c.name == campaign)
        .expect("assigned");
    assert!(c.census.is_empty(), "the census travels apart");
    let tag = c.census_tag.clone().expect("a census tag");
    let url = srv.url(&format!("/v1/census/{campaign}"));
    let resp = http
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["etag"].to_str().expect("etag"), tag);
    assert_eq!(
        resp.headers()["content-type"].to_str().expect("type"),
        darkwatch_schema::census::CENSUS_CONTENT_TYPE
    );
    let census = CensusSet::decode(&resp.bytes().await.expect("body")).expect("decodes");
    // Unchanged: 304 to its tag, no body.
    let resp = http
        .get(&url)
        .bearer_auth(token)
        .header("if-none-match", &tag)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    (c, census)
}

async fn stored_census(db: &str, campaign: &str) -> Vec<CensusBlock> {
    let store = SqlStore::open(db).await.expect("open store");
    let c = store.census(campaign).await.expect("census");
    store.close().await;
    c
}

fn all_addrs(blocks: &[CensusBlock]) -> Vec<IpAddr> {
    blocks.iter().flat_map(|b| b.addrs.clone()).collect()
}

// ---------- test bodies, generic over the database ----------

async fn census_and_coverage_reach_other_agents_and_status(db: &str) {
    let vp1 = add_agent(db, "vp-fra1");
    let vp2 = add_agent(db, "vp-ams1");
    let generation = {
        cli_ok(
            db,
            &[
                "campaign",
                "add",
                "kp",
                "--prefix",
                "198.18.0.0/16",
                "--prefix",
                "2001:db8::/32",
                "--interval",
                "60",
            ],
        );
        let list: serde_json::Value =
            serde_json::from_str(&cli_ok(db, &["campaign", "list", "--json"])).expect("json");
        list[0]["generation"].as_u64().expect("generation")
    };
    let srv = Server::start(db, &[]);

    // Before any report, a new agent gets no census.
    assert!(assignment(&srv, &vp2, "kp").await.census.is_empty());

    let coverage = Coverage {
        campaign: "kp".into(),
        generation,
        blocks_tracked: 4,
        addresses_targeted: 1024,
        skipped: vec![
            Skipped {
                reason: SkipReason::Ipv6TooLarge,
                addresses: u64::MAX,
                examples: vec!["2001:db8::/32".parse().expect("net")],
            },
            Skipped {
                reason: SkipReason::Reserved,
                addresses: 256,
                examples: vec![],
            },
        ],
    };
    let census = CampaignCensus {
        campaign: "kp".into(),
        blocks: vec![
            // 198.18.1.0/24 is in the campaign; 203.0.113.0/24 is not, nor is
            // the address filed under the wrong block.
            block(
                "198.18.1.0/24",
                &["198.18.1.5", "198.18.1.1", "203.0.113.9"],
            ),
            block("203.0.113.0/24", &["203.0.113.1"]),
            block("2001:db8:7::/48", &["2001:db8:7::1"]),
        ],
    };
    post(&srv, &vp1, &extras(vec![coverage], vec![census])).await;

    // The second agent's assignment carries the census, only inside the campaign.
    let a = assignment(&srv, &vp2, "kp").await;
    assert_eq!(
        a.census.to_blocks(),
        [
            block("198.18.1.0/24", &["198.18.1.1", "198.18.1.5"]),
            block("2001:db8:7::/48", &["2001:db8:7::1"])
        ]
    );
    let outside: IpNet = "203.0.113.0/24".parse().expect("net");
    let stored = stored_census(db, "kp").await;
    assert!(
        !all_addrs(&stored).iter().any(|a| outside.contains(a)),
        "an address outside the campaign was stored: {stored:?}"
    );
    assert_eq!(stored.len(), 2);
    // The same census, compact and apart, to an agent that asks for it so;
    // not to an agent the campaign is not assigned to.
    let (apart, census) = compact(&srv, &vp2, "kp").await;
    assert_eq!(census, a.census);
    let resp = reqwest::Client::new()
        .get(srv.url("/v1/census/nosuch"))
        .bearer_auth(&vp2)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // A later report replaces the block's set.
    post(
        &srv,
        &vp2,
        &extras(
            vec![],
            vec![CampaignCensus {
                campaign: "kp".into(),
                blocks: vec![block("198.18.1.0/24", &["198.18.1.77"])],
            }],
        ),
    )
    .await;
    assert_eq!(
        assignment(&srv, &vp1, "kp").await.census.to_blocks()[0],
        block("198.18.1.0/24", &["198.18.1.77"])
    );
    let (later, census) = compact(&srv, &vp1, "kp").await;
    assert_ne!(
        later.census_tag, apart.census_tag,
        "a new census, a new tag"
    );
    assert_eq!(
        census.to_blocks()[0],
        block("198.18.1.0/24", &["198.18.1.77"])
    );

    // status shows the coverage and the skipped space, per agent.
    let text = cli_ok(db, &["status"]);
    assert!(
        text.contains(
            "    kp: 4 blocks, 1024 addresses, skipped 2^64+ ipv6_too_large (2001:db8::/32), 256 reserved"
        ),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&cli_ok(db, &["status", "--json"])).expect("json");
    let agent = |name: &str| {
        json["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .find(|a| a["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no agent {name} in {json:#}"))
    };
    let cov = &agent("vp-fra1")["coverage"][0];
    assert_eq!(cov["campaign"], "kp");
    assert_eq!(cov["partial"], true);
    assert_eq!(cov["current"], true);
    assert_eq!(cov["blocks_tracked"], 4);
    assert_eq!(cov["skipped"][0]["reason"], "ipv6_too_large");
    assert_eq!(cov["skipped"][0]["addresses"], u64::MAX);
    assert_eq!(cov["skipped"][1]["reason"], "reserved");
    assert_eq!(agent("vp-ams1")["coverage"], serde_json::json!([]));
    assert_eq!(
        agent("vp-ams1")["coverage_missing"],
        serde_json::json!(["kp"])
    );
    assert!(text.contains("    kp: no coverage reported"), "{text}");
    let api: serde_json::Value = reqwest::get(srv.url("/v1/status"))
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(
        api["agents"]
            .as_array()
            .map(|a| a.iter().map(|x| x["coverage"].clone()).collect::<Vec<_>>()),
        json["agents"]
            .as_array()
            .map(|a| a.iter().map(|x| x["coverage"].clone()).collect::<Vec<_>>()),
        "/v1/status shows what status --json prints"
    );

    // Once the campaign changes, the old coverage is marked as such.
    cli_ok(
        db,
        &[
            "campaign",
            "add",
            "kp",
            "--prefix",
            "198.18.0.0/16",
            "--interval",
            "60",
            "--replace",
        ],
    );
    let json: serde_json::Value =
        serde_json::from_str(&cli_ok(db, &["status", "--json"])).expect("json");
    let vp = json["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == "vp-fra1"))
        .expect("agent");
    assert_eq!(vp["coverage"][0]["current"], false);
    // The narrowed campaign no longer hands out its former IPv6 census.
    assert_eq!(
        assignment(&srv, &vp2, "kp").await.census.to_blocks(),
        [block("198.18.1.0/24", &["198.18.1.77"])]
    );
}

async fn hitlist_campaign_from_a_file(db: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("kp-v6.txt");
    std::fs::write(
        &file,
        "# known KP hosts\n\
         2001:db8:5::1\n\
         this is not an address\n\
         2001:db8:5:7::20   # a web server\n\
         198.18.9.4\n\
         198.19.0.1\n\
         175.45.180.1 # outside the campaign\n\
         10.1.2.3 # private, outside the campaign\n",
    )
    .expect("write hitlist");
    let path = file.display().to_string();
    let out = cli(
        db,
        &[
            "campaign",
            "add",
            "v6",
            "--hitlist",
            &path,
            "--prefix",
            "198.19.0.0/16",
            "--prefix",
            "198.18.9.0/24",
            "--prefix",
            "2001:db8:5::/48",
            "--interval",
            "60",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("{path}:3: ")), "{stderr}");
    assert!(stderr.contains("1 lines skipped"), "{stderr}");
    // Addresses outside the campaign's space are skipped and counted, never
    // added (issue 27); before, their blocks joined the prefixes.
    assert!(
        stderr.contains("4 addresses in 3 blocks seeded the census, 0 blocks added"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 addresses outside the campaign and 1 special-purpose addresses skipped"),
        "{stderr}"
    );
    // What was built: 256 + 1 /24s, one tracked /48, four census addresses.
    assert!(
        stderr.contains("campaign v6: 3 prefixes: 257 IPv4 /24s, 1 IPv6 /48s tracked (1 allocated), 4 census addresses in 3 blocks"),
        "{stderr}"
    );
    let show: serde_json::Value =
        serde_json::from_str(&cli_ok(db, &["campaign", "show", "v6", "--json"])).expect("json");
    assert_eq!(show["figures"]["ipv4_blocks"], 257, "{show}");
    assert_eq!(show["figures"]["ipv6_blocks_tracked"], 1, "{show}");
    assert_eq!(show["figures"]["census_addresses"], 4, "{show}");
    assert!(show["warning"].is_null(), "{show}");
    let text = cli_ok(
        db,
        &["campaign", "show", "v6", "--agent-max-targets", "1000"],
    );
    assert!(text.contains("257 IPv4 /24s"), "{text}");
    assert!(
        text.contains("warning: the campaign targets 65794 addresses per agent"),
        "{text}"
    );

    // The given prefixes stay as they were.
    let list: serde_json::Value =
        serde_json::from_str(&cli_ok(db, &["campaign", "list", "--json"])).expect("json");
    assert_eq!(
        list[0]["prefixes"],
        serde_json::json!(["198.19.0.0/16", "198.18.9.0/24", "2001:db8:5::/48"])
    );

    let token = add_agent(db, "vp1");
    let srv = Server::start(db, &[]);
    let a = assignment(&srv, &token, "v6").await;
    assert_eq!(
        a.census.to_blocks(),
        [
            block("198.18.9.0/24", &["198.18.9.4"]),
            block("198.19.0.0/24", &["198.19.0.1"]),
            block("2001:db8:5::/48", &["2001:db8:5::1", "2001:db8:5:7::20"]),
        ]
    );

    // An agent's census of a block outside the hitlist's blocks is not stored.
    post(
        &srv,
        &token,
        &extras(
            vec![],
            vec![CampaignCensus {
                campaign: "v6".into(),
                blocks: vec![block("2001:db8:6::/48", &["2001:db8:6::1"])],
            }],
        ),
    )
    .await;
    assert_eq!(stored_census(db, "v6").await.len(), 3);

    // A campaign of hitlists alone takes their blocks; special-purpose
    // addresses only when allowed (all but one here are).
    let out = cli(db, &["campaign", "add", "alone", "--hitlist", &path]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("1 addresses in 1 blocks seeded the census, 1 blocks added"),
        "{stderr}"
    );
    assert!(
        stderr.contains("0 addresses outside the campaign and 5 special-purpose addresses skipped"),
        "{stderr}"
    );
    // The same list gzip-compressed, as hitlists are published.
    let gz_path = dir.path().join("kp-v6.txt.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &std::fs::read(&file).expect("read")).expect("gzip");
    std::fs::write(&gz_path, gz.finish().expect("gzip")).expect("write");
    cli_ok(
        db,
        &[
            "campaign",
            "add",
            "alone",
            "--hitlist",
            &gz_path.display().to_string(),
            "--allow-special-purpose",
            "--replace",
        ],
    );
    let show: serde_json::Value =
        serde_json::from_str(&cli_ok(db, &["campaign", "show", "alone", "--json"])).expect("json");
    assert_eq!(show["figures"]["prefixes"], 5, "{show}");
    cli_ok(db, &["campaign", "remove", "alone"]);

    // A file with nothing usable is refused, and nothing is saved.
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "# nothing\nnope\n").expect("write");
    let out = cli(
        db,
        &[
            "campaign",
            "add",
            "empty",
            "--hitlist",
            &bad.display().to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(65));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no usable address") && stderr.contains("bad.txt:2: "),
        "{stderr}"
    );
    assert!(!cli_ok(db, &["campaign", "list"]).contains("empty"));

    // Removing the campaign forgets its census.
    cli_ok(db, &["campaign", "remove", "v6"]);
    assert!(stored_census(db, "v6").await.is_empty());
}

db_tests!(
    census_and_coverage_reach_other_agents_and_status,
    hitlist_campaign_from_a_file
);
