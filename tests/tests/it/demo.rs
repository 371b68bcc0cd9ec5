//! `darkwatch-demo` as a newcomer meets it: `--help` explains the options
//! without building anything, and a run prints the dashboard's URL first,
//! serves the live collector's dashboard and API there on the host's
//! loopback while the replay runs, and leaves no namespace behind after
//! Ctrl-C.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use darkwatch_tests::harness::wait_for;

const DEMO: &str = env!("CARGO_BIN_EXE_darkwatch-demo");

#[test]
fn demo_help_prints_the_options_and_runs_nothing() {
    let out = Command::new(DEMO)
        .arg("--help")
        .output()
        .expect("run darkwatch-demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for needle in ["--round-secs", "--port", "--keep", "127.0.0.1", "Ctrl-C"] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    assert!(!text.contains("built"), "--help built a lab:\n{text}");
    let bad = Command::new(DEMO)
        .args(["--round-secs", "0"])
        .output()
        .expect("run darkwatch-demo");
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
}

/// `deploy/demo.sh --help` answers at once: no package install, no release
/// build (it used to run `.ci/setup` and `cargo build --release` first).
/// With cargo off the PATH, anything that tries to build fails the test.
#[test]
fn demo_script_help_builds_nothing() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new("/bin/bash")
        .arg(format!("{root}/deploy/demo.sh"))
        .arg("--help")
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/nonexistent")
        .output()
        .expect("run deploy/demo.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("North Korea"), "no description in:\n{text}");
    assert!(text.contains("--round-secs"), "no options in:\n{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("setup:") && !err.contains("Compiling"),
        "{err}"
    );
}

/// GET through curl (the host side, root namespace): status and body.
fn get(url: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sf", "-m", "5", url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn lab_namespaces(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

#[test]
fn demo_serves_the_dashboard_on_the_host_and_cleans_up_on_ctrl_c() {
    let root = if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err("the demo needs root")
    };
    if darkwatch_netlab::or_skip("the demo", root).is_none() {
        return;
    }
    let _serial = crate::serial();
    let mut demo = darkwatch_netlab::KillOnDrop(
        Command::new(DEMO)
            .args(["--port", "0", "--round-secs", "3"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start darkwatch-demo"),
    );
    let (tx, lines) = mpsc::channel();
    let stdout = demo.0.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    // Generous guards against a hung start, not timing assertions.
    let first = lines
        .recv_timeout(Duration::from_secs(120))
        .expect("the demo prints a first line");
    let url = first
        .strip_prefix("dashboard: ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("first line is not the dashboard URL: {first:?}"))
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let lab_line = lines
        .recv_timeout(Duration::from_secs(60))
        .expect("the lab line");
    let prefix = lab_line
        .strip_prefix("lab ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no lab prefix in {lab_line:?}"))
        .to_string();

    let page = wait_for(
        "the dashboard on the host",
        Duration::from_secs(120),
        || Ok(get(&url)),
    )
    .expect("dashboard");
    assert!(
        page.contains("<html") && page.contains("darkwatch"),
        "{page}"
    );
    // The live collector behind it: its agents report through the lab.
    wait_for("the agents in /v1/status", Duration::from_secs(120), || {
        let status: Option<serde_json::Value> =
            get(&format!("{url}v1/status")).and_then(|s| serde_json::from_str(&s).ok());
        Ok(status.filter(|s| {
            s["agents"]
                .as_array()
                .is_some_and(|a| a.len() == 3 && a.iter().all(|x| !x["last_seen"].is_null()))
        }))
    })
    .expect("agents reporting");

    let sigint = Command::new("kill")
        .args(["-INT", &demo.0.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(sigint.success());
    let started = Instant::now();
    let status = loop {
        if let Some(s) = demo.0.try_wait().expect("wait") {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the demo did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status.code(), Some(130), "interrupted, not failed");
    // The rest of its output, up to the end of the pipe.
    let mut said = Vec::new();
    while let Ok(l) = lines.recv_timeout(Duration::from_secs(10)) {
        said.push(l);
    }
    assert_eq!(
        said.last().map(String::as_str),
        Some("interrupted: lab torn down"),
        "{said:?}"
    );
    assert_eq!(lab_namespaces(&prefix), Vec::<String>::new());
    assert!(get(&url).is_none(), "the dashboard is still served");
}
