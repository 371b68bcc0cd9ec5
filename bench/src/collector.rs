//! Starting the collector the end-to-end and scale benchmarks report to.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use darkwatch_netlab::{announced_url, KillOnDrop};

/// Runs `darkwatch-collector serve` on an ephemeral port of 127.0.0.1 over
/// the store `db` (a SQLite path or a PostgreSQL URL), with `config` if
/// given, and returns it once it announces its URL (within `timeout`).
/// `cmd` is the collector binary or a wrapper that runs it (a namespace's
/// `ip netns exec`); where its stderr goes is left to the caller. The
/// collector logs warnings only, and ignores an inherited `DARKWATCH_DB`
/// so that `db` is the store measured.
pub fn serve(
    mut cmd: Command,
    db: impl AsRef<std::ffi::OsStr>,
    config: Option<&Path>,
    timeout: Duration,
) -> Result<(KillOnDrop, String)> {
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(db);
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd.env("RUST_LOG", "warn")
        .env_remove("DARKWATCH_DB")
        .stdout(Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().context("start the collector")?);
    let url = announced_url(&mut child.0, timeout)?;
    Ok((child, url))
}
