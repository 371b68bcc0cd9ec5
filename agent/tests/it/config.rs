//! The shipped example config parses and validates with the real binary,
//! and a broken one is refused with a clear message and exit code 78.

use std::process::Command;

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_darkwatch-agent"))
}

#[test]
fn example_config_validates() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/config/agent.toml");
    let out = agent()
        .args(["validate-config", "-c", path])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn typo_in_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("agent.toml");
    std::fs::write(&p, "collector = \"http://192.0.2.1:8080\"\ntoken = \"x\"\nspool_dir = \"s\"\n[probe]\ntimeout = 5\n").unwrap();
    let out = agent()
        .args(["validate-config", "-c"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("timeout") && err.lines().count() == 1, "{err}");
}
