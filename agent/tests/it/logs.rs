//! What the agent writes to stderr when it is not a terminal (a pipe here,
//! like systemd's journal or a log file): plain text without colour codes,
//! or with `--log-format json` one JSON object per line, up to and
//! including the error that ends the run. `probe` with a target file
//! holding a bad line logs a warning and then fails (its only target is
//! reserved space), so nothing is sent and no privilege is needed.

use std::process::{Command, Output};

use darkwatch_netlab::checks::{assert_no_escapes, json_log_lines};

fn probe_with_a_bad_line(extra: &[&str], env: &[(&str, &str)]) -> (Output, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("targets.txt");
    std::fs::write(&file, "not an address\n198.18.0.0/24\n").expect("write targets");
    let out = Command::new(env!("CARGO_BIN_EXE_darkwatch-agent"))
        .args(extra)
        .arg("probe")
        .arg("--file")
        .arg(&file)
        .env_remove("RUST_LOG")
        .env_remove("DARKWATCH_LOG_FORMAT")
        .envs(env.iter().copied())
        .output()
        .expect("run darkwatch-agent");
    assert_eq!(out.status.code(), Some(65), "{out:?}");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, log)
}

#[test]
fn logs_to_a_pipe_are_plain_text() {
    let (_, log) = probe_with_a_bad_line(&[], &[]);
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("targets.txt:1")),
        "{log}"
    );
    assert!(log.contains("darkwatch-agent: no targets left"), "{log}");
    assert_no_escapes(&log);
}

#[test]
fn json_logs_are_one_object_per_line_to_the_end() {
    for (flag, env) in [
        (&["--log-format", "json"][..], &[][..]),
        (&[][..], &[("DARKWATCH_LOG_FORMAT", "json")][..]),
    ] {
        let (_, log) = probe_with_a_bad_line(flag, env);
        let lines = json_log_lines(&log);
        assert!(
            lines.iter().any(|l| l["level"] == "WARN"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("targets.txt:1"))),
            "{log}"
        );
        let last = lines.last().expect("at least the error");
        assert_eq!(last["level"], "ERROR", "{log}");
        assert!(
            last["message"]
                .as_str()
                .is_some_and(|m| m.contains("no targets left")),
            "{log}"
        );
    }
}

#[test]
fn an_unknown_log_format_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_darkwatch-agent"))
        .args(["--log-format", "yaml", "validate-config", "-c", "x.toml"])
        .output()
        .expect("run darkwatch-agent");
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("text or json"), "{err}");
}
