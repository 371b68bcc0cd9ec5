//! Every `darkwatch-collector` and `darkwatch-agent` command shown in
//! README.md and docs/*.md, run against a scratch database, so that the
//! examples cannot rot: a renamed flag, a subcommand gone, a path that moved
//! fails here. Each file's commands run in order in a directory of their
//! own (one scratch database, the input files the examples name); paths the
//! docs use (`/etc/darkwatch/agent.toml`) map to fixtures made from the
//! shipped configs. A server started with `&` is started on a free port and
//! stopped once it listens. What is not run (probes outside a lab) or needs
//! data a scratch database lacks is listed below with its reason, and each
//! entry must still match a documented command, so the lists stay true.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use darkwatch_tests::doccmds::{commands, invocation, DocCommand, Invocation};
use darkwatch_tests::harness::workspace_bin;

/// Commands not run, by a piece of their text, and why.
const SKIPPED: &[(&str, &str)] = &[
    (
        "darkwatch-agent run ",
        "probes from raw sockets and reports to a collector: the lab scenarios run it in namespaces",
    ),
    (
        "darkwatch-agent --log-format json run ",
        "the daemon, as above (its --log-format is checked by the agent's cli tests)",
    ),
    (
        "darkwatch-agent probe ",
        "probes a real country's space: tests send no packet outside their own namespaces",
    ),
    (
        "darkwatch-agent trace ",
        "traces to a real address: tests send no packet outside their own namespaces",
    ),
];

/// Commands that need data a scratch database does not have: they run (so
/// their arguments parse and the store is opened) and must fail with this.
const NEED_DATA: &[(&str, &str)] = &[(" signals --scope ", "no summaries for")];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

/// Every documented command, README.md first.
fn documented() -> Vec<DocCommand> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
        .iter()
        .flat_map(|f| {
            let name = f.strip_prefix(root()).unwrap().display().to_string();
            commands(&name, &std::fs::read_to_string(f).expect("a doc"))
        })
        .collect()
}

/// A scratch directory with what the examples name: input files, configs,
/// and the map from the docs' paths to them.
struct Scratch {
    dir: tempfile::TempDir,
    paths: BTreeMap<&'static str, PathBuf>,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let write = |name: &str, text: &str| std::fs::write(d.join(name), text).unwrap();
        write(
            "delegated-apnic-latest",
            "2|apnic|20240101|1|19830613|20240101|+1000\n\
             apnic|KP|ipv4|175.45.176.0|1024|20091222|allocated\n",
        );
        write("kp-v6.txt", "2a01:9d00::1\n175.45.176.1\n");
        // CAIDA's as-org2info, gzipped as published.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(
            &mut gz,
            b"# format:aut|changed|aut_name|org_id|opaque_id|source\n\
              131279|20240101|STAR-KP|@org-1|x|APNIC\n\
              # format:org_id|changed|org_name|country|source\n\
              @org-1|20240101|Star Joint Venture|KP|APNIC\n",
        )
        .unwrap();
        std::fs::write(d.join("20241001.as-org2info.txt.gz"), gz.finish().unwrap()).unwrap();
        write("agent.token", &"ab".repeat(32));
        let agent = std::fs::read_to_string(root().join("deploy/config/agent.toml"))
            .unwrap()
            .replace("/etc/darkwatch/", &format!("{}/", d.display()))
            .replace(
                "/var/lib/darkwatch-agent",
                &d.join("spool").display().to_string(),
            );
        write("agent.toml", &agent);
        std::fs::copy(
            root().join("deploy/config/collector.toml"),
            d.join("collector.toml"),
        )
        .unwrap();
        let db = d.join("collector.sqlite");
        let paths = BTreeMap::from([
            ("$DB", db.clone()),
            ("/var/lib/darkwatch/collector.sqlite", db.clone()),
            ("/tmp/dw-demo-XXXXXX/collector.sqlite", db),
            ("/etc/darkwatch/agent.toml", d.join("agent.toml")),
            ("/etc/darkwatch/collector.toml", d.join("collector.toml")),
        ]);
        let s = Scratch { dir, paths };
        // The database exists, as it does wherever the docs read one
        // (read commands never create it).
        s.given(&["--agents".into(), "docs-scratch".into()]);
        s
    }

    fn db(&self) -> &Path {
        &self.paths["$DB"]
    }

    /// `word` with the docs' paths and variables replaced; an absolute
    /// path or a variable without a fixture is an error.
    fn word(&self, word: &str) -> Result<String, String> {
        if let Some(p) = self.paths.get(word) {
            return Ok(p.display().to_string());
        }
        if word == "$FROM" {
            return Ok("1h".into());
        }
        if word.starts_with('/') || word.contains('$') {
            return Err(format!("{word}: no fixture for it in tests/it/docs.rs"));
        }
        Ok(word.to_string())
    }

    fn command(&self, argv: &[String]) -> Result<Command, String> {
        let bin = workspace_bin(&argv[0]).map_err(|e| e.to_string())?;
        let mut c = Command::new(bin);
        for w in &argv[1..] {
            c.arg(self.word(w)?);
        }
        c.current_dir(self.dir.path())
            .env("DARKWATCH_DB", self.db())
            .stdin(Stdio::null());
        Ok(c)
    }

    /// The agents a command names (`--agents a,b`, `agents revoke NAME`)
    /// registered first, as the docs assume.
    fn given(&self, argv: &[String]) {
        let mut names = Vec::new();
        for (i, w) in argv.iter().enumerate() {
            match w.as_str() {
                "--agents" => names.extend(argv.get(i + 1).into_iter().flat_map(|l| l.split(','))),
                "revoke" | "rotate" | "remove" if i > 0 && argv[i - 1] == "agents" => {
                    names.extend(argv.get(i + 1).map(String::as_str))
                }
                _ => {}
            }
        }
        for name in names {
            // Already registered is fine.
            let _ = Command::new(workspace_bin("darkwatch-collector").unwrap())
                .args([
                    "--db",
                    &self.db().display().to_string(),
                    "agents",
                    "add",
                    name,
                ])
                .output();
        }
    }
}

/// Runs one command; `Err` says what went wrong.
fn run(s: &Scratch, cmd: &DocCommand, inv: &Invocation) -> Result<(), String> {
    if inv.synopsis {
        return synopsis(s, inv);
    }
    s.given(&inv.argv);
    let mut c = s.command(&inv.argv)?;
    if inv.background || inv.argv.iter().any(|w| w == "serve") {
        // A server: on a free port, stopped once it listens.
        c.args(["--listen", "127.0.0.1:0"]).stdout(Stdio::piped());
        let mut child = darkwatch_netlab::KillOnDrop(c.spawn().map_err(|e| e.to_string())?);
        return darkwatch_netlab::announced_url(&mut child.0, Duration::from_secs(120))
            .map(drop)
            .map_err(|e| format!("did not start listening: {e}"));
    }
    let out = output(c)?;
    if let Some(f) = &inv.stdout_to {
        std::fs::write(s.dir.path().join(f), &out.stdout).map_err(|e| e.to_string())?;
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    match NEED_DATA.iter().find(|(p, _)| cmd.text.contains(p)) {
        Some((_, want)) if !out.status.success() && stderr.contains(want) => Ok(()),
        Some((_, want)) => Err(format!(
            "expected a failure saying {want:?}, got {}: {stderr}",
            out.status
        )),
        None if out.status.success() => Ok(()),
        None => Err(format!("{}: {stderr}", out.status)),
    }
}

/// What `c` printed; a command that runs past a minute is killed and
/// fails (none of these should take seconds).
fn output(mut c: Command) -> Result<std::process::Output, String> {
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.map_err(|e| e.to_string()),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            Err("still running after 60 s (killed)".into())
        }
    }
}

/// A synopsis (`[--from T]`): every flag it shows is in the subcommand's
/// `--help`.
fn synopsis(s: &Scratch, inv: &Invocation) -> Result<(), String> {
    let sub: Vec<String> = inv.argv[1..]
        .iter()
        .take_while(|w| !w.starts_with('-') && !w.starts_with('['))
        .cloned()
        .collect();
    let mut argv = vec![inv.argv[0].clone()];
    argv.extend(sub);
    argv.push("--help".into());
    let out = output(s.command(&argv)?)?;
    let help = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&str> = inv
        .argv
        .iter()
        .map(|w| w.trim_start_matches('['))
        .filter(|w| w.starts_with("--"))
        .map(|w| w.trim_end_matches(']'))
        .filter(|f| !help.contains(&format!("{f} ")) && !help.contains(&format!("{f}=")))
        .collect();
    if out.status.success() && missing.is_empty() {
        Ok(())
    } else {
        Err(format!("flags not in --help: {missing:?}"))
    }
}

#[test]
fn every_documented_command_runs() {
    let all = documented();
    assert!(
        all.len() >= 20,
        "found only {} commands: {all:?}",
        all.len()
    );
    let mut failures = Vec::new();
    let mut ran = 0;
    let mut scratch: Option<(String, Scratch)> = None;
    for cmd in &all {
        // One scratch directory per file: its commands build on each other.
        let file = cmd.at.split(':').next().unwrap().to_string();
        if scratch.as_ref().is_none_or(|(f, _)| *f != file) {
            scratch = Some((file.clone(), Scratch::new()));
        }
        let s = &scratch.as_ref().unwrap().1;
        if SKIPPED.iter().any(|(p, _)| cmd.text.starts_with(p)) {
            continue;
        }
        let Some(inv) = invocation(&cmd.text) else {
            failures.push(format!("{}: unbalanced quotes: {}", cmd.at, cmd.text));
            continue;
        };
        ran += 1;
        if let Err(why) = run(s, cmd, &inv) {
            failures.push(format!("{}: {}\n    {why}", cmd.at, cmd.text));
        }
    }
    // The lists stay true: each entry still matches a documented command.
    for (p, _) in SKIPPED.iter().chain(NEED_DATA) {
        if !all
            .iter()
            .any(|c| c.text.starts_with(p) || c.text.contains(p))
        {
            failures.push(format!(
                "{p:?} is listed in tests/it/docs.rs but no doc shows it"
            ));
        }
    }
    assert!(ran >= 15, "ran only {ran} commands");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
