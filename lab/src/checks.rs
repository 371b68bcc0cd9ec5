//! Checks that the agent's and the collector's tests share about what the
//! binaries write for other tools: `promtool` on Prometheus metrics and
//! alert rules, and the format of log lines (plain text without terminal
//! escapes, or one JSON object per line).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// `promtool` (Debian package `prometheus`, installed by `.ci/setup`), or
/// None (skip) outside CI when it is missing; with `CI=true` a missing
/// promtool fails the test.
fn promtool() -> Option<Command> {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .map_err(|e| format!("promtool: {e} (apt install prometheus)"));
    crate::or_skip("promtool", found).map(|_| Command::new("promtool"))
}

/// Output of a promtool run, or its complaint.
fn finish(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<String, String> {
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("promtool: {e}"))?;
    if let (Some(body), Some(mut w)) = (stdin, child.stdin.take()) {
        w.write_all(body)
            .map_err(|e| format!("promtool stdin: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("promtool: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// `promtool check metrics` on a text exposition: None when skipped,
/// else what promtool said (Err if it found problems, lint included).
pub fn promtool_check_metrics(text: &str) -> Option<Result<String, String>> {
    let mut cmd = promtool()?;
    cmd.args(["check", "metrics"]);
    Some(finish(&mut cmd, Some(text.as_bytes())))
}

/// `promtool check rules FILE`: None when skipped, else promtool's verdict.
pub fn promtool_check_rules(file: &Path) -> Option<Result<String, String>> {
    let mut cmd = promtool()?;
    cmd.args(["check", "rules"]).arg(file);
    Some(finish(&mut cmd, None))
}

/// `promtool test rules FILE` (alert rule unit tests): None when skipped,
/// else promtool's verdict.
pub fn promtool_test_rules(file: &Path) -> Option<Result<String, String>> {
    let mut cmd = promtool()?;
    cmd.args(["test", "rules"]).arg(file);
    Some(finish(&mut cmd, None))
}

/// Fails (naming the line) if `log` holds a terminal escape (ESC), as
/// colours written into a file or a pipe would.
pub fn assert_no_escapes(log: &str) {
    if let Some(l) = log.lines().find(|l| l.contains('\u{1b}')) {
        panic!("log line with a terminal escape: {l:?}\nfull log:\n{log}");
    }
}

/// Parses every line of `log` as a JSON object with string `level` and
/// `message` fields, failing on the first that is not; returns them.
pub fn json_log_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l:?}\nfull log:\n{log}"));
            assert!(
                v["level"].is_string() && v["message"].is_string(),
                "log line lacks level or message: {l}"
            );
            v
        })
        .collect()
}
