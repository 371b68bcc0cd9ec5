//! The deployment files under `deploy/` are checked against the code they
//! configure: the example collector.toml is accepted by the collector's own
//! config code (and `check-config`), documents every option with its true
//! default, the systemd units pass `systemd-analyze verify` against the
//! built binaries, the cron line runs the agent's `--once` mode, and the
//! container files point at paths and binaries that exist. Docker itself is
//! not needed (nor run).

use std::path::{Path, PathBuf};
use std::process::Command;

use darkwatch_collector::config::{self, FileConfig, ServeFlags};
use darkwatch_collector::correlation::CorrelationSettings;
use darkwatch_correlate::Params;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn deploy(rel: &str) -> PathBuf {
    root().join("deploy").join(rel)
}

fn read(rel: &str) -> String {
    let p = deploy(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

fn collector() -> Command {
    Command::new(env!("CARGO_BIN_EXE_darkwatch-collector"))
}

/// The agent binary of the same build, if it was built (CI builds the
/// whole workspace before testing).
fn agent_bin() -> Option<PathBuf> {
    darkwatch_netlab::workspace_bin("darkwatch-agent").ok()
}

/// Skips (returns false) outside CI when `what` is missing; fails in CI.
fn available_or_skip(ok: bool, what: &str) -> bool {
    if !ok {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "{what} is missing and CI=true forbids skipping"
        );
        eprintln!("SKIP: {what} is missing; set CI=true to make this fail");
    }
    ok
}

/// Comment marks removed from every commented-out `key = value` line and
/// `[table]` header: the file with every documented option switched on.
fn uncomment_options(text: &str) -> String {
    text.lines()
        .map(|l| {
            let body = l.strip_prefix("# ").unwrap_or(l);
            let key = body.split(" = ").next().unwrap_or("");
            let is_option = !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            let is_table = body.starts_with('[') && body.ends_with(']') && !body.contains(' ');
            if l.starts_with("# ") && (is_option && body.contains(" = ") || is_table) {
                body
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn example_collector_config_is_accepted_by_check_config() {
    let path = deploy("config/collector.toml");
    let out = collector()
        .arg("check-config")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
}

#[test]
fn example_collector_config_states_the_true_defaults() {
    let file = FileConfig::parse(&read("config/collector.toml")).unwrap();
    let cfg = config::merge(ServeFlags::default(), file.clone()).unwrap();
    let defaults = config::merge(ServeFlags::default(), FileConfig::default()).unwrap();
    assert_eq!(
        cfg, defaults,
        "the example's active settings must be the built-in defaults it documents"
    );
    assert_eq!(file.correlation.params, Params::default());
}

#[test]
fn example_collector_config_documents_every_option() {
    let text = read("config/collector.toml");
    let full = uncomment_options(&text);
    let file = FileConfig::parse(&full)
        .unwrap_or_else(|e| panic!("a commented-out option is wrong: {e}\n{full}"));
    // Exhaustive destructuring: a new field fails to compile until it is
    // documented here and in the example.
    let FileConfig {
        db,
        listen,
        tls_cert,
        tls_key,
        max_body,
        correlation,
        alerts,
        retention: _,
        bgp,
    } = file;
    for (key, set) in [
        ("db", db.is_some()),
        ("listen", listen.is_some()),
        ("tls_cert", tls_cert.is_some()),
        ("tls_key", tls_key.is_some()),
        ("max_body", max_body.is_some()),
        ("[alerts]", alerts.is_some()),
        ("[bgp]", bgp.is_some()),
    ] {
        assert!(set, "collector.toml does not document {key}");
    }
    let CorrelationSettings {
        params: _,
        window_rounds: _,
        every_secs: _,
        pfx2as,
        as_names,
        lease_ttl_secs,
    } = correlation;
    assert!(
        pfx2as.is_some() && as_names.is_some() && lease_ttl_secs.is_some(),
        "[correlation] options missing"
    );
    for key in [
        "every_secs",
        "window_rounds",
        "max_attempts",
        "webhook",
        "[retention]",
        "raw_days",
        "bmp_listen",
        "mrt_dir",
        "round_secs",
        "mrt_scan_secs",
    ] {
        assert!(
            text.contains(&format!("{key} = ")) || text.contains(&format!("\n{key}\n")),
            "collector.toml does not document {key}"
        );
    }
    let params = serde_json::to_value(Params::default()).unwrap();
    for key in params.as_object().unwrap().keys() {
        assert!(
            text.contains(&format!("\n{key} = ")),
            "[correlation.params] lacks {key}"
        );
    }
}

#[test]
fn broken_collector_config_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("collector.toml");
    std::fs::write(&p, "[correlation]\nevery_sec = 5\n").unwrap();
    let out = collector()
        .arg("check-config")
        .arg("--config")
        .arg(&p)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("every_sec") && err.trim().lines().count() == 1,
        "{err}"
    );
    std::fs::write(&p, "[correlation]\nevery_secs = 5\nlease_ttl_secs = 2\n").unwrap();
    let out = collector()
        .arg("check-config")
        .arg("--config")
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lease_ttl_secs"));
    let out = collector()
        .args(["check-config", "--config", "/nonexistent/collector.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(66));
}

#[test]
fn check_config_loads_a_published_pfx2as_file_and_counts_skipped_lines() {
    let dir = tempfile::tempdir().unwrap();
    let pfx = dir.path().join("routeviews-rv2-20241122-1200.pfx2as");
    // As CAIDA publishes it: single origins, a multi-origin prefix, AS sets
    // with and without braces; one line is broken.
    std::fs::write(
        &pfx,
        "175.45.176.0\t22\t131279\n\
         192.0.2.0\t24\t64500_64501\n\
         198.51.100.0\t24\t{64502,64503}\n\
         203.0.113.0\t24\t64500_{64501,64502}\n\
         198.18.0.0\t24\t64504,64505\n\
         198.18.1.0\t33\t64500\n",
    )
    .unwrap();
    let cfg = dir.path().join("collector.toml");
    std::fs::write(
        &cfg,
        format!("[correlation]\npfx2as = \"{}\"\n", pfx.display()),
    )
    .unwrap();
    let out = collector()
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains(": ok"), "{stdout}");
    assert!(
        stdout.contains("5 prefixes, 1 unparseable line(s) skipped"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("{}:6: bad prefix length 33", pfx.display())),
        "{stderr}"
    );
    // Nothing usable: the file is refused, in one line naming the lines.
    std::fs::write(&pfx, "175.45.176.0\t22\tASx\n").unwrap();
    let out = collector()
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains(&format!("{}:1: ", pfx.display())), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn a_gzip_pfx2as_file_is_read_and_a_broken_one_stops_serve_and_check_config() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    // As CAIDA publishes it: gzip-compressed, whatever the name says.
    let pfx = dir.path().join("routeviews-rv2-20141222-1200.pfx2as.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"175.45.176.0\t24\t131279\n175.45.177.0\t24\t131279\n")
        .unwrap();
    let bytes = gz.finish().unwrap();
    std::fs::write(&pfx, &bytes).unwrap();
    let cfg = dir.path().join("collector.toml");
    std::fs::write(
        &cfg,
        format!("[correlation]\npfx2as = \"{}\"\n", pfx.display()),
    )
    .unwrap();
    let check = || {
        collector()
            .args(["check-config", "--config"])
            .arg(&cfg)
            .output()
            .unwrap()
    };
    let out = check();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 prefixes, 0 unparseable"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A truncated download: both commands refuse it, in the same words.
    std::fs::write(&pfx, &bytes[..bytes.len() - 10]).unwrap();
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("cannot decompress") && err.contains("gzip data"),
        "{err}"
    );
    let db = format!("sqlite://{}", dir.path().join("c.sqlite").display());
    let out = collector()
        .args(["--db", &db, "serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let serve_err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{serve_err}");
    assert!(
        serve_err.contains("prefix-to-AS file (correlation.pfx2as): cannot decompress"),
        "{serve_err}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
    // A missing file too.
    std::fs::remove_file(&pfx).unwrap();
    let out = collector()
        .args(["--db", &db, "serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(66),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_as_names_file_is_checked_like_pfx2as_and_a_broken_one_stops_serve() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let names = dir.path().join("20241001.as-org2info.txt.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(
        b"# format:org_id|changed|org_name|country|source\n\
          STAR-KP|20170208|Star Joint Venture|KP|APNIC\n\
          # format:aut|changed|aut_name|org_id|opaque_id|source\n\
          131279|20170208|STAR-KP|STAR-KP||APNIC\n\
          x64500|20170208|BROKEN|STAR-KP||APNIC\n",
    )
    .unwrap();
    std::fs::write(&names, gz.finish().unwrap()).unwrap();
    let cfg = dir.path().join("collector.toml");
    std::fs::write(
        &cfg,
        format!("[correlation]\nas_names = \"{}\"\n", names.display()),
    )
    .unwrap();
    let out = collector()
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("1 ASes named, 1 unparseable line(s) skipped"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("{}:5: bad AS number", names.display())),
        "{stderr}"
    );
    // Not one usable line: check-config and serve both refuse it.
    std::fs::write(&names, "not a list\n").unwrap();
    let out = collector()
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("AS names file (correlation.as_names)"),
        "{err}"
    );
    let db = format!("sqlite://{}", dir.path().join("c.sqlite").display());
    let out = collector()
        .args(["--db", &db, "serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let serve_err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{serve_err}");
    assert!(
        serve_err.contains(&format!("{}:1: bad AS number", names.display())),
        "{serve_err}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
}

/// `Key=value` settings of a unit file (all occurrences, in order).
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn systemd_units_are_hardened_and_match_the_configs() {
    let agent_cfg = read("config/agent.toml");
    for name in [
        "darkwatch-agent.service",
        "darkwatch-agent-once.service",
        "darkwatch-collector.service",
    ] {
        let unit = read(&format!("systemd/{name}"));
        let user = unit_values(&unit, "User");
        assert!(
            user.len() == 1 && user[0] != "root",
            "{name} runs as a non-root user"
        );
        for (k, v) in [
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
        ] {
            assert_eq!(unit_values(&unit, k), [v], "{name}: {k}");
        }
        let exec = unit_values(&unit, "ExecStart");
        assert_eq!(exec.len(), 1, "{name}");
        assert!(
            exec[0].contains("--config /etc/darkwatch/"),
            "{name} reads its config from /etc/darkwatch"
        );
        if name.starts_with("darkwatch-agent") {
            assert_eq!(
                unit_values(&unit, "AmbientCapabilities"),
                ["CAP_NET_RAW"],
                "{name}"
            );
            assert_eq!(
                unit_values(&unit, "CapabilityBoundingSet"),
                ["CAP_NET_RAW"],
                "{name}"
            );
            // The spool lives in the unit's state directory.
            let state = unit_values(&unit, "StateDirectory");
            assert_eq!(state.len(), 1, "{name}");
            assert!(
                agent_cfg.contains(&format!("spool_dir = \"/var/lib/{}\"", state[0])),
                "agent.toml's spool_dir is /var/lib/{}",
                state[0]
            );
            assert_eq!(
                exec[0].contains(" --once"),
                name.contains("once"),
                "{name}: --once only in the oneshot"
            );
        } else {
            assert_eq!(
                unit_values(&unit, "CapabilityBoundingSet"),
                [""],
                "the collector needs no capability"
            );
        }
    }
    let timer = read("systemd/darkwatch-agent-once.timer");
    assert_eq!(
        unit_values(&timer, "Unit"),
        ["darkwatch-agent-once.service"]
    );
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let have = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available_or_skip(have, "systemd-analyze (package systemd)") {
        return;
    }
    let Some(agent) = agent_bin() else {
        available_or_skip(
            false,
            "the darkwatch-agent binary (cargo build -p darkwatch-agent)",
        );
        return;
    };
    // verify checks that ExecStart is executable: point the units at the
    // binaries of this build instead of /usr/local/bin.
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for e in std::fs::read_dir(deploy("systemd")).unwrap() {
        let p = e.unwrap().path();
        let ext = p.extension().and_then(|x| x.to_str()).unwrap_or("");
        if ext != "service" && ext != "timer" {
            continue;
        }
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace(
                "/usr/local/bin/darkwatch-agent",
                &agent.display().to_string(),
            )
            .replace(
                "/usr/local/bin/darkwatch-collector",
                env!("CARGO_BIN_EXE_darkwatch-collector"),
            );
        assert!(
            unit_values(&text, "ExecStart")
                .iter()
                .all(|e| !e.contains("/usr/local/bin/")),
            "{}: unknown binary",
            p.display()
        );
        let copy = dir.path().join(p.file_name().unwrap());
        std::fs::write(&copy, text).unwrap();
        units.push(copy);
    }
    assert!(
        units.len() >= 4,
        "agent, agent-once (+timer) and collector units"
    );
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Unknown keys and bad values are only warnings: any line about our
    // units is a failure.
    let ours: Vec<&str> = err.lines().filter(|l| l.contains("darkwatch")).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify:\n{err}"
    );
}

#[test]
fn cron_example_runs_the_agent_once_as_a_user() {
    let cron = read("cron/darkwatch-agent");
    let jobs: Vec<&str> = cron
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty() && !l.contains('='))
        .collect();
    assert_eq!(jobs.len(), 1, "one job: {jobs:?}");
    let fields: Vec<&str> = jobs[0].split_whitespace().collect();
    assert!(
        fields.len() > 6,
        "five time fields, a user and a command: {}",
        jobs[0]
    );
    assert!(
        fields[5] != "root" && !fields[5].contains('/'),
        "runs as a user: {}",
        jobs[0]
    );
    assert!(
        jobs[0].contains("darkwatch-agent run --once --config /etc/darkwatch/agent.toml"),
        "{}",
        jobs[0]
    );
}

/// Top-level directories of the workspace members (from the root Cargo.toml).
fn member_dirs() -> Vec<String> {
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).unwrap()).unwrap();
    let mut dirs: Vec<String> = manifest["workspace"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m.as_str()?.split('/').next().map(str::to_string))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

#[test]
fn dockerfiles_copy_the_whole_workspace_and_build_real_binaries() {
    let members = member_dirs();
    for (file, bin) in [
        ("Dockerfile.agent", "darkwatch-agent"),
        ("Dockerfile.collector", "darkwatch-collector"),
    ] {
        let text = read(&format!("container/{file}"));
        let mut copied = Vec::new();
        for l in text
            .lines()
            .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
        {
            let args: Vec<&str> = l.split_whitespace().skip(1).collect();
            for src in &args[..args.len() - 1] {
                assert!(
                    root().join(src).exists(),
                    "{file}: COPY source {src} does not exist"
                );
                copied.push(src.to_string());
            }
        }
        for m in &members {
            assert!(
                copied.contains(m),
                "{file} does not copy workspace member {m}"
            );
        }
        for f in ["Cargo.toml", "Cargo.lock"] {
            assert!(copied.iter().any(|c| c == f), "{file} copies {f}");
        }
        // The package and binary exist with these names.
        let pkg_manifest = root()
            .join(bin.trim_start_matches("darkwatch-"))
            .join("Cargo.toml");
        let pkg = std::fs::read_to_string(&pkg_manifest).unwrap();
        assert!(
            pkg.contains(&format!("name = \"{bin}\"")),
            "{} builds {bin}",
            pkg_manifest.display()
        );
        assert!(
            text.contains(&format!("-p {bin} --bin {bin}")),
            "{file} builds {bin}"
        );
        // Multi-stage, slim runtime, non-root.
        let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
        assert_eq!(froms.len(), 2, "{file}: builder and runtime stages");
        assert!(froms[1].contains("-slim"), "{file}: small runtime image");
        let user = text
            .lines()
            .filter_map(|l| l.strip_prefix("USER "))
            .next_back();
        assert!(
            user.is_some_and(|u| u != "root" && u != "0"),
            "{file}: runs as a user"
        );
        assert!(
            text.contains(&format!("ENTRYPOINT [\"/usr/local/bin/{bin}\"]")),
            "{file}"
        );
        assert!(
            deploy(&format!("container/{file}.dockerignore")).is_file(),
            "{file} has its own .dockerignore"
        );
    }
    assert!(read("container/Dockerfile.agent")
        .contains("setcap cap_net_raw+ep /usr/local/bin/darkwatch-agent"));
}

#[test]
fn compose_file_references_existing_files_and_gives_agents_net_raw() {
    let text = read("container/compose.yaml");
    let here = deploy("container");
    for l in text.lines().map(str::trim) {
        if let Some(df) = l.strip_prefix("dockerfile: ") {
            assert!(
                root().join(df).is_file(),
                "compose: dockerfile {df} missing"
            );
        }
        if let Some(ctx) = l.strip_prefix("context: ") {
            assert!(
                here.join(ctx).join("Cargo.toml").is_file(),
                "compose: context {ctx} is not the repository root"
            );
        }
        // Bind mounts (`- ./x:/y` or `- ../x:/y`) must exist.
        if let Some(src) = l
            .strip_prefix("- ")
            .and_then(|v| v.split(':').next())
            .filter(|s| s.starts_with('.'))
        {
            assert!(here.join(src).exists(), "compose: bind mount {src} missing");
        }
    }
    for svc in [
        "postgres:",
        "collector-1:",
        "collector-2:",
        "agent-1:",
        "agent-2:",
    ] {
        assert!(
            text.lines()
                .any(|l| l.trim_start() == svc || l.starts_with(&format!("  {svc}"))),
            "compose lacks {svc}"
        );
    }
    assert!(text.contains("cap_add: [NET_RAW]"), "agents get NET_RAW");
    assert!(
        text.contains("DARKWATCH_DB=\"postgres://"),
        "collectors share PostgreSQL"
    );
    // The load balancer points at both collectors.
    let lb = read("container/nginx.conf");
    assert!(lb.contains("server collector-1:8080") && lb.contains("server collector-2:8080"));
}

#[test]
fn agent_configs_of_the_deployment_validate_with_the_agent() {
    let Some(agent) = agent_bin() else {
        available_or_skip(
            false,
            "the darkwatch-agent binary (cargo build -p darkwatch-agent)",
        );
        return;
    };
    for rel in ["config/agent.toml", "container/agent.toml"] {
        let out = Command::new(&agent)
            .args(["validate-config", "-c"])
            .arg(deploy(rel))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{rel}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn uncommenting_finds_options_and_tables_only() {
    let text =
        "# A comment = not an option\n# key_a = 1\n# [alerts]\n# see [the docs]\nkey_b = 2\n";
    assert_eq!(
        uncomment_options(text),
        "# A comment = not an option\nkey_a = 1\n[alerts]\n# see [the docs]\nkey_b = 2"
    );
}
