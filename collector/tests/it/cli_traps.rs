//! The command line as a new operator meets it: commands that only read
//! never create a database and never exit 0 on a path where none exists.

use crate::common::cli;

#[test]
fn read_commands_refuse_a_missing_database_and_create_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("darkwatch.sqlite");
    let url = db.to_str().expect("utf-8 path");
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["outages"],
        &["timeline"],
        &["signals", "--scope", "country", "--target", "KP"],
    ] {
        let out = cli(url, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(66), "{args:?}: {out:?}");
        assert!(err.contains("no database at"), "{args:?}: {err}");
        assert!(!db.exists(), "{args:?} created {}", db.display());
    }
}

/// `--agents` names registered agents only, and `--replace` changes only
/// what is given: a campaign restricted to two agents used to become "all
/// agents" (and lose its country and controls) on `--replace --interval`.
#[test]
fn campaign_agents_are_checked_and_replace_keeps_what_is_not_given() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("dw.sqlite");
    let db = db.to_str().expect("utf-8 path");
    let kp = [
        "campaign",
        "add",
        "kp",
        "--country",
        "KP",
        "--prefix",
        "198.18.0.0/22",
        "--control",
        "192.0.2.0/24",
        "--interval",
        "60",
        "--agents",
        "vp-a,vp-b",
    ];
    let out = cli(db, &kp);
    assert_eq!(out.status.code(), Some(65), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("vp-a, vp-b") && err.contains("agents add"),
        "{err}"
    );
    for vp in ["vp-a", "vp-b"] {
        crate::common::cli_ok(db, &["agents", "add", vp]);
    }
    crate::common::cli_ok(db, &kp);
    let out = cli(
        db,
        &[
            "campaign",
            "add",
            "kp",
            "--replace",
            "--agents",
            "vp-a,ghost",
        ],
    );
    assert_eq!(out.status.code(), Some(65), "{out:?}");

    crate::common::cli_ok(
        db,
        &["campaign", "add", "kp", "--replace", "--interval", "120"],
    );
    let list: serde_json::Value =
        serde_json::from_str(&crate::common::cli_ok(db, &["campaign", "list", "--json"]))
            .expect("json");
    let c = &list[0];
    assert_eq!(c["interval_secs"], 120, "{c}");
    assert_eq!(c["agents"], serde_json::json!(["vp-a", "vp-b"]), "{c}");
    assert_eq!(c["country"], "KP", "{c}");
    assert_eq!(c["prefixes"], serde_json::json!(["198.18.0.0/22"]), "{c}");
    assert_eq!(c["control"], serde_json::json!(["192.0.2.0/24"]), "{c}");

    // --all-agents undoes --agents.
    crate::common::cli_ok(db, &["campaign", "add", "kp", "--replace", "--all-agents"]);
    let list: serde_json::Value =
        serde_json::from_str(&crate::common::cli_ok(db, &["campaign", "list", "--json"]))
            .expect("json");
    assert_eq!(list[0]["agents"], serde_json::json!([]), "{}", list[0]);
    assert_eq!(list[0]["interval_secs"], 120);
}

/// `agents rotate` issues a new token and the old one stops working at
/// once; `agents remove` deletes an agent, refused while a campaign names it.
#[tokio::test]
async fn agents_rotate_and_remove() {
    use crate::common::{cli_ok, Server};
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("dw.sqlite");
    let db = db.to_str().expect("utf-8 path");
    let old = cli_ok(db, &["agents", "add", "vp1"]).trim().to_string();
    cli_ok(
        db,
        &[
            "campaign",
            "add",
            "kp",
            "--prefix",
            "198.18.0.0/24",
            "--agents",
            "vp1",
        ],
    );
    let srv = Server::start(db, &[]);
    let http = reqwest::Client::new();
    let status = |token: String| {
        let req = http.get(srv.url("/v1/assignments")).bearer_auth(token);
        async move { req.send().await.expect("request").status().as_u16() }
    };
    assert_eq!(status(old.clone()).await, 200);

    let new = cli_ok(db, &["agents", "rotate", "vp1"]).trim().to_string();
    assert_ne!(new, old);
    assert_eq!(status(old.clone()).await, 401);
    assert_eq!(status(new.clone()).await, 200);

    let out = cli(db, &["agents", "remove", "vp1"]);
    assert_eq!(out.status.code(), Some(65), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("kp"),
        "{out:?}"
    );
    assert_eq!(status(new.clone()).await, 200);
    cli_ok(db, &["campaign", "add", "kp", "--replace", "--all-agents"]);
    cli_ok(db, &["agents", "remove", "vp1"]);
    assert_eq!(status(new).await, 401);
    assert!(!cli_ok(db, &["agents", "list"]).contains("vp1"));
    assert_eq!(
        cli(db, &["agents", "rotate", "vp1"]).status.code(),
        Some(65)
    );
}

/// `/v1/assignments` answers with an `ETag`; sent back in `If-None-Match`
/// it gets `304 Not Modified` and no body until a campaign changes.
#[tokio::test]
async fn assignments_are_sent_only_when_changed() {
    use crate::common::{cli_ok, Server};
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("dw.sqlite");
    let db = db.to_str().expect("utf-8 path");
    let token = cli_ok(db, &["agents", "add", "vp1"]).trim().to_string();
    cli_ok(db, &["campaign", "add", "kp", "--prefix", "198.18.0.0/24"]);
    let srv = Server::start(db, &[]);
    let http = reqwest::Client::new();
    let get = |etag: Option<String>| {
        let mut req = http.get(srv.url("/v1/assignments")).bearer_auth(&token);
        if let Some(t) = etag {
            req = req.header("if-none-match", t);
        }
        async move {
            let r = req.send().await.expect("request");
            let status = r.status().as_u16();
            let etag = r
                .headers()
                .get("etag")
                .map(|v| v.to_str().unwrap().to_string());
            (status, etag, r.bytes().await.expect("body").len())
        }
    };
    let (status, etag, len) = get(None).await;
    assert_eq!(status, 200);
    assert!(len > 0);
    let etag = etag.expect("an ETag");
    assert_eq!(get(Some(etag.clone())).await, (304, Some(etag.clone()), 0));
    assert_eq!(get(Some("\"other\"".into())).await.0, 200);
    cli_ok(
        db,
        &["campaign", "add", "kp", "--replace", "--interval", "120"],
    );
    let (status, new, _) = get(Some(etag.clone())).await;
    assert_eq!(status, 200, "the campaign changed");
    assert_ne!(new, Some(etag));
}
