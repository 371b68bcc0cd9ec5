//! What `serve` writes to stderr when it is not a terminal (a pipe here,
//! like systemd's journal or a log file): plain text without colour codes,
//! or with `--log-format json` one JSON object per line, from the start to
//! an orderly stop on SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;

use darkwatch_netlab::announced_url;
use darkwatch_netlab::checks::{assert_no_escapes, json_log_lines};

use crate::common::{Db, BIN};

/// Runs `serve` at info level with `extra` global flags until it listens,
/// stops it with SIGTERM, and returns its stderr.
fn serve_log(extra: &[&str]) -> String {
    let db = Db::sqlite();
    let mut child = Command::new(BIN)
        .args(extra)
        .args(["serve", "--db", &db.url, "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env_remove("DARKWATCH_DB")
        .env_remove("DARKWATCH_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn collector");
    let url = announced_url(&mut child, Duration::from_secs(120));
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(term.success());
    let out = child.wait_with_output().expect("collector output");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    url.unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert!(out.status.success(), "{:?}\n{log}", out.status);
    log
}

#[test]
fn serve_logs_to_a_pipe_in_plain_text() {
    let log = serve_log(&[]);
    assert!(log.lines().any(|l| l.contains(" INFO ")), "{log}");
    assert_no_escapes(&log);
}

#[test]
fn serve_logs_json_lines_with_log_format_json() {
    let log = serve_log(&["--log-format", "json"]);
    let lines = json_log_lines(&log);
    assert!(
        lines.len() >= 2 && lines.iter().all(|l| l["timestamp"].is_string()),
        "{log}"
    );
    assert!(lines.iter().any(|l| l["level"] == "INFO"), "{log}");
}
