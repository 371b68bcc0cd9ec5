//! The binary's answers to bad input: one line on stderr, a sysexits code,
//! never a panic. Every case fails before anything is sent.

use std::process::{Command, Output};

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_darkwatch-agent"))
        .args(args)
        .output()
        .expect("run darkwatch-agent")
}

fn assert_fails(out: &Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.stdout.is_empty());
}

fn one_line(out: &Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn bad_targets_are_usage_errors() {
    let out = agent(&["probe", "198.18.0.300"]);
    assert_fails(&out, 64, "bad target \"198.18.0.300\"");
    one_line(&out);
    assert_fails(&agent(&["probe"]), 64, "no targets given");
    assert_fails(&agent(&["trace", "not-an-address"]), 64, "not-an-address");
    assert_fails(
        &agent(&["probe", "--delegated", "x.txt", "198.18.0.1"]),
        64,
        "--country",
    );
    assert_fails(
        &agent(&["probe", "--pps", "lots", "198.18.0.1"]),
        64,
        "--pps",
    );
}

#[test]
fn missing_files_are_no_input() {
    let out = agent(&["probe", "--file", "/nonexistent/targets.txt"]);
    assert_fails(&out, 66, "/nonexistent/targets.txt");
    one_line(&out);
}

#[test]
fn malformed_files_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("targets.txt");
    // Nothing usable: refused in one line that names the broken line.
    std::fs::write(&f, "# lab\nnonsense\n").unwrap();
    let out = agent(&["probe", "--file", f.to_str().unwrap()]);
    assert_fails(&out, 65, &format!("{}:2:", f.display()));
    one_line(&out);
    // A broken line among good ones is skipped and named; the rest is used
    // (here it is reserved space, so nothing is left and nothing is probed).
    std::fs::write(&f, "# lab\n198.18.0.0/24\nnonsense\n").unwrap();
    let out = agent(&["probe", "--file", f.to_str().unwrap()]);
    assert_fails(&out, 65, &format!("{}:3:", f.display()));
    assert_fails(&out, 65, "--allow");

    let d = dir.path().join("delegated.txt");
    std::fs::write(&d, "2|apnic|20240101|1|19830613|20231231|+1000\napnic|KP|ipv4|175.45.176.0|many|20091217|allocated\n").unwrap();
    let out = agent(&[
        "probe",
        "--delegated",
        d.to_str().unwrap(),
        "--country",
        "KP",
    ]);
    assert_fails(&out, 65, &format!("{}:2:", d.display()));
    one_line(&out);
}

#[test]
fn unsweepable_or_excluded_sets_are_data_errors() {
    let out = agent(&["probe", "2400:1::/64"]);
    assert_fails(&out, 65, "/120");
    one_line(&out);
    // Benchmarking space is reserved unless --allow carves it back in.
    assert_fails(&agent(&["probe", "198.18.0.0/24"]), 65, "--allow");
    assert_fails(
        &agent(&[
            "probe",
            "--max-targets",
            "100",
            "--allow",
            "198.18.0.0/15",
            "198.18.0.0/24",
        ]),
        65,
        "256 target addresses exceed the limit of 100",
    );
}

#[test]
fn help_explains_the_options() {
    let out = agent(&["probe", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--json",
        "--file",
        "--delegated",
        "--country",
        "--exclude",
        "--allow",
        "--pps",
        "--timeout-ms",
        "--max-probes",
        "responsive = 0",
    ] {
        assert!(help.contains(opt), "--help lacks {opt}: {help}");
    }
}

/// The agent as a user without CAP_NET_RAW: `nobody` via setpriv when the
/// test runs as root (capabilities dropped, bounding set emptied), itself
/// otherwise. None when neither is possible (root without setpriv).
fn unprivileged(args: &[&std::ffi::OsStr]) -> Option<Output> {
    let bin = env!("CARGO_BIN_EXE_darkwatch-agent");
    // Owner of /proc/self is the effective uid.
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").ok()?) == 0;
    let out = if root {
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--",
            ])
            .arg(bin)
            .args(args)
            .output()
            .ok()?
    } else {
        Command::new(bin).args(args).output().ok()?
    };
    Some(out)
}

#[test]
fn refuses_to_start_without_cap_net_raw_and_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    // Readable by `nobody`, so that the capability check is what fails.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = dir.path().join("agent.toml");
    // The privilege check runs before anything is sent: this collector
    // address (TEST-NET-1) is never contacted.
    std::fs::write(
        &cfg,
        "collector = \"http://192.0.2.1:8080\"\ntoken = \"x\"\nspool_dir = \"spool\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    for once in [false, true] {
        let mut args = vec![
            std::ffi::OsStr::new("run"),
            "--config".as_ref(),
            cfg.as_os_str(),
        ];
        if once {
            args.push("--once".as_ref());
        }
        let Some(out) = unprivileged(&args) else {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "setpriv (util-linux) missing and CI=true"
            );
            eprintln!("SKIP: cannot drop privileges (no setpriv)");
            return;
        };
        assert_fails(&out, 77, "CAP_NET_RAW");
        assert_fails(&out, 77, "setcap cap_net_raw+ep");
        one_line(&out);
    }
}
