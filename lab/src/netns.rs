//! System side of a lab: running `ip`, finding the processes inside a
//! namespace, and removing namespaces (ours or those of dead processes).
//!
//! Lab namespaces are named `dw{pid}x{4 hex}-{node}`; the pid is what lets a
//! later run tell a stale lab (creator dead) from a live one.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::Error;

/// Where `ip netns` keeps its namespace handles.
pub const NETNS_DIR: &str = "/var/run/netns";

/// Moves the calling thread into network namespace `name` (setns changes
/// only this thread): sockets it opens afterwards live in that namespace,
/// and stay there when handed to other threads.
pub fn enter(name: &str) -> Result<(), Error> {
    let path = Path::new(NETNS_DIR).join(name);
    let ns = std::fs::File::open(&path).map_err(|source| Error::Io {
        what: format!("opening namespace {}", path.display()),
        source,
    })?;
    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| Error::Command {
        what: format!("entering namespace {name}"),
        detail: e.to_string(),
    })
}

/// Runs a command to completion and turns failure into a one-line error.
pub fn run(cmd: &mut Command, what: &str) -> Result<Output, Error> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Io {
            what: format!("{what}: cannot run {:?}", cmd.get_program()),
            source,
        })?;
    check(out, what)
}

fn check(out: Output, what: &str) -> Result<Output, Error> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::Command {
            what: what.to_string(),
            detail: failure_detail(&out),
        })
    }
}

fn failure_detail(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    let msg: Vec<&str> = err
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(3)
        .collect();
    if msg.is_empty() {
        out.status.to_string()
    } else {
        format!("{} ({})", msg.join("; "), out.status)
    }
}

/// Starts `ip [-n ns] [-force] -batch -` fed with `lines`; wait with [`finish`].
pub fn start_batch(
    ns: Option<&str>,
    lines: &[String],
    force: bool,
) -> Result<(Child, String), Error> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    if force {
        cmd.arg("-force");
    }
    cmd.args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("ip batch in {}", ns.unwrap_or("root namespace"));
    let mut child = cmd.spawn().map_err(|source| Error::Io {
        what: format!("{what}: cannot run ip"),
        source,
    })?;
    let mut text = lines.join("\n");
    text.push('\n');
    if let Some(mut stdin) = child.stdin.take() {
        // A write error means ip exited early; its status and stderr say why.
        let _ = stdin.write_all(text.as_bytes());
    }
    Ok((child, what))
}

/// Waits for a child started by [`start_batch`] or [`start`].
pub fn finish(child: Child, what: &str) -> Result<Output, Error> {
    let out = child.wait_with_output().map_err(|source| Error::Io {
        what: format!("{what}: waiting"),
        source,
    })?;
    check(out, what)
}

/// Runs one `ip -batch` to completion.
pub fn batch(ns: Option<&str>, lines: &[String], force: bool) -> Result<(), Error> {
    if lines.is_empty() {
        return Ok(());
    }
    let (child, what) = start_batch(ns, lines, force)?;
    finish(child, &what).map(drop)
}

/// Runs `ip -force -batch` and ignores its failures: for deletions of things
/// that may already be gone.
pub fn batch_best_effort(ns: Option<&str>, lines: &[String]) {
    if let Err(e) = batch(ns, lines, true) {
        tracing::debug!("ignored: {e}");
    }
}

/// Starts a command with captured output; wait with [`finish`].
pub fn start(cmd: &mut Command, what: &str) -> Result<Child, Error> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Io {
            what: format!("{what}: cannot run {:?}", cmd.get_program()),
            source,
        })
}

/// Names of all namespaces `ip netns` knows.
pub fn list_namespaces() -> Result<Vec<String>, Error> {
    let dir = match std::fs::read_dir(NETNS_DIR) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Io {
                what: format!("listing {NETNS_DIR}"),
                source,
            })
        }
    };
    let mut v: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    Ok(v)
}

pub fn namespace_exists(name: &str) -> bool {
    Path::new(NETNS_DIR).join(name).exists()
}

/// The lab prefix and creator pid of a lab namespace name
/// (`dw1234xab12-edge` → `("dw1234xab12", 1234)`), `None` for other names.
pub fn parse_lab_name(name: &str) -> Option<(&str, i32)> {
    let (prefix, node) = name.split_once('-')?;
    if node.is_empty() {
        return None;
    }
    let (pid, tag) = prefix.strip_prefix("dw")?.split_once('x')?;
    let valid_pid = !pid.is_empty() && pid.len() <= 10 && pid.bytes().all(|b| b.is_ascii_digit());
    let valid_tag = tag.len() == 4 && tag.bytes().all(|b| b.is_ascii_hexdigit());
    if !(valid_pid && valid_tag) {
        return None;
    }
    Some((prefix, pid.parse().ok()?))
}

/// A fresh per-run prefix `dw{pid}x{4 hex}`, unique within this process:
/// a counter from a random start, so that a stale lab of an earlier process
/// with the same pid is unlikely to collide either.
pub fn new_prefix() -> String {
    static START: OnceLock<u16> = OnceLock::new();
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = *START.get_or_init(rand::random::<u16>);
    let tag = start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed));
    format!("dw{}x{tag:04x}", std::process::id())
}

pub fn pid_alive(pid: i32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Pids of processes whose network namespace is one of `names`.
pub fn pids_in(names: &[String]) -> BTreeSet<i32> {
    let ids: BTreeSet<(u64, u64)> = names
        .iter()
        .filter_map(|n| std::fs::metadata(Path::new(NETNS_DIR).join(n)).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    let mut pids = BTreeSet::new();
    if ids.is_empty() {
        return pids;
    }
    let Ok(proc_dir) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for e in proc_dir.filter_map(|e| e.ok()) {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        // Zombies and exited processes have no readable ns link: skipped.
        if let Ok(m) = std::fs::metadata(e.path().join("ns/net")) {
            if ids.contains(&(m.dev(), m.ino())) {
                pids.insert(pid);
            }
        }
    }
    pids
}

/// Terminates every process inside `names`: SIGTERM, then SIGKILL for what is
/// still there after `grace`.
pub fn kill_all_in(names: &[String], grace: Duration) {
    let pids = pids_in(names);
    if pids.is_empty() {
        return;
    }
    for &p in &pids {
        let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if pids_in(names).is_empty() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    for p in pids_in(names) {
        tracing::warn!("process {p} ignored SIGTERM; killing it");
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && !pids_in(names).is_empty() {
        thread::sleep(Duration::from_millis(20));
    }
}

/// Kills the processes in `names` and deletes the namespaces. Errors only if
/// a namespace is still there afterwards.
pub fn remove_namespaces(names: &[String]) -> Result<(), Error> {
    let present: Vec<String> = names
        .iter()
        .filter(|n| namespace_exists(n))
        .cloned()
        .collect();
    if present.is_empty() {
        return Ok(());
    }
    kill_all_in(&present, Duration::from_secs(1));
    let lines: Vec<String> = present.iter().map(|n| format!("netns del {n}")).collect();
    batch_best_effort(None, &lines);
    let left: Vec<&String> = present.iter().filter(|n| namespace_exists(n)).collect();
    if left.is_empty() {
        Ok(())
    } else {
        Err(Error::Command {
            what: "deleting lab namespaces".into(),
            detail: format!(
                "still present: {}",
                left.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }
}

/// Removes lab namespaces whose creator is dead (all lab namespaces with
/// `all`); returns the names removed.
pub fn clean(all: bool) -> Result<Vec<String>, Error> {
    let me = std::process::id() as i32;
    let stale: Vec<String> = list_namespaces()?
        .into_iter()
        .filter(|n| match parse_lab_name(n) {
            Some((_, pid)) => all || (pid != me && !pid_alive(pid)),
            None => false,
        })
        .collect();
    remove_namespaces(&stale)?;
    Ok(stale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_names_parse_and_others_do_not() {
        assert_eq!(
            parse_lab_name("dw1234xab12-edge"),
            Some(("dw1234xab12", 1234))
        );
        assert_eq!(parse_lab_name("dw7x0000-vp1"), Some(("dw7x0000", 7)));
        for other in [
            "dw1234xab12",
            "dw1234xab1-edge",
            "dwx1234-edge",
            "dw12a4xab12-edge",
            "lab-edge",
            "dw1234xabcz-t1",
            "dw1xabcd-",
        ] {
            assert_eq!(parse_lab_name(other), None, "{other}");
        }
    }

    #[test]
    fn new_prefixes_are_lab_names_and_distinct() {
        let (a, b) = (new_prefix(), new_prefix());
        assert_ne!(a, b);
        for p in [&a, &b] {
            let name = format!("{p}-vp1");
            assert_eq!(
                parse_lab_name(&name),
                Some((p.as_str(), std::process::id() as i32))
            );
        }
    }

    #[test]
    fn our_own_pid_is_alive() {
        assert!(pid_alive(std::process::id() as i32));
    }
}
