//! The I/O edge of BGP input in `serve`: the BMP listener (RFC 7854, TCP),
//! the watched MRT directory and the timer that closes rounds with no
//! event, and the writer of closed rounds to the store. Each only moves
//! bytes into the pure parts ([`super::bmp`], [`super::mrt`],
//! [`super::compact`]) and their events into the [`BgpHub`].
//!
//! A BMP connection is one monitored router, named by its address. When
//! it ends, every peer it reported goes down: RFC 7854 §3.3 makes the
//! router's routes stale then, and a router that comes back sends its
//! peers up and tables again. A message that does not decode is logged,
//! counted and skipped by its length; a stream that cannot be framed is
//! closed.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use super::compact::Compactor;
use super::hub::BgpHub;
use super::state::{Event, PeerKey};
use super::{bmp, mrt};
use crate::clock::SharedClock;

/// Binds the BMP listener (before the HTTP server, so a taken port stops
/// `serve` at start).
pub async fn bind_bmp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Accepts BMP connections for ever, one task each.
pub async fn serve_bmp(listener: TcpListener, hub: Arc<BgpHub>, clock: SharedClock) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                hub.counters.bmp_connections.fetch_add(1, Ordering::Relaxed);
                tracing::info!(router = %remote, "BMP connection");
                tokio::spawn(connection(
                    stream,
                    remote.ip().to_string(),
                    hub.clone(),
                    clock.clone(),
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "BMP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Peers a connection has reported up and not down.
fn track(peers: &mut HashSet<PeerKey>, events: &[Event]) {
    for e in events {
        match e {
            Event::PeerUp(p) | Event::Announce { peer: p, .. } => {
                peers.insert(p.clone());
            }
            Event::PeerDown(p) => {
                peers.remove(p);
            }
            Event::Withdraw { .. } => {}
        }
    }
}

async fn connection(mut stream: TcpStream, router: String, hub: Arc<BgpHub>, clock: SharedClock) {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut chunk = vec![0u8; 1 << 16];
    let mut peers = HashSet::new();
    let why = 'read: loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) => break "closed by the router".to_string(),
            Ok(n) => n,
            Err(e) => break format!("read failed: {e}"),
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        let mut events = Vec::new();
        let mut fatal = None;
        loop {
            match bmp::frame_len(&buf[start..]) {
                Ok(Some(len)) => {
                    match bmp::decode(&buf[start..start + len], &router) {
                        Ok(ev) => {
                            hub.counters.bmp_messages.fetch_add(1, Ordering::Relaxed);
                            track(&mut peers, &ev);
                            events.extend(ev);
                        }
                        Err(e) => {
                            hub.counters.bmp_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(%router, error = %e, "BMP message skipped");
                        }
                    }
                    start += len;
                }
                Ok(None) => break,
                Err(e) => {
                    hub.counters.bmp_errors.fetch_add(1, Ordering::Relaxed);
                    fatal = Some(e);
                    break;
                }
            }
        }
        buf.drain(..start);
        hub.apply(clock.now_ms(), events);
        if let Some(e) = fatal {
            break 'read e;
        }
    };
    tracing::info!(%router, reason = %why, peers = peers.len(), "BMP connection ended: its peers are down");
    hub.apply(clock.now_ms(), peers.into_iter().map(Event::PeerDown));
}

/// Closes rounds while nothing arrives, a few times a round.
pub async fn tick(hub: Arc<BgpHub>, clock: SharedClock, round_secs: u64) {
    let every = Duration::from_secs(round_secs.clamp(1, 5));
    loop {
        tokio::time::sleep(every).await;
        hub.tick(clock.now_ms());
    }
}

/// Writes the hub's closed rounds to the store (the rows `compact` picks)
/// and deletes those older than `keep_days`, for ever.
pub async fn persist(
    hub: Arc<BgpHub>,
    store: Arc<crate::store::SqlStore>,
    round_secs: u64,
    keep_days: u64,
    clock: SharedClock,
) {
    let mut compactor = Compactor::new(keyframe_rounds(round_secs));
    let mut purged_day = None;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        for r in hub.take_closed() {
            let rows = compactor.rows(&r);
            if let Err(e) = store.save_bgp_round(round_secs, &r, &rows).await {
                tracing::warn!(round = r.round, error = %e, "cannot store a BGP round");
            }
        }
        let now = clock.now_ms();
        let day = now / 86_400_000;
        if purged_day != Some(day) {
            let cutoff_ms = now - keep_days as i64 * 86_400_000;
            let before = darkwatch_schema::round_of(cutoff_ms, round_secs);
            match store.purge_bgp(round_secs, before).await {
                Ok(n) => {
                    purged_day = Some(day);
                    if n > 0 {
                        tracing::info!(rows = n, "old BGP rounds deleted");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot delete old BGP rounds"),
            }
        }
    }
}

/// A keyframe a day (at least every round).
pub fn keyframe_rounds(round_secs: u64) -> u64 {
    (86_400 / round_secs.max(1)).max(1)
}

/// A file in the watched directory: name, size, modification time.
pub type Listing = HashMap<PathBuf, (u64, Option<SystemTime>)>;

/// The files of `now` to import: not imported yet, and the same size and
/// time as at the previous scan (a file still being written waits a scan).
/// Oldest name first: RouteViews and RIS names sort by time.
pub fn ready(prev: &Listing, now: &Listing, done: &HashSet<PathBuf>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = now
        .iter()
        .filter(|(p, meta)| !done.contains(*p) && prev.get(*p) == Some(meta))
        .map(|(p, _)| p.clone())
        .collect();
    out.sort();
    out
}

fn list(dir: &Path) -> std::io::Result<Listing> {
    let mut out = Listing::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        let meta = entry.metadata()?;
        if meta.is_file() && !hidden {
            out.insert(entry.path(), (meta.len(), meta.modified().ok()));
        }
    }
    Ok(out)
}

/// Imports the files that appear in `dir`, every `every`.
pub async fn watch_mrt(dir: PathBuf, every: Duration, hub: Arc<BgpHub>) {
    let mut prev = Listing::new();
    let mut done = HashSet::new();
    loop {
        let d = dir.clone();
        let now = match tokio::task::spawn_blocking(move || list(&d)).await {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot list the MRT directory");
                Listing::new()
            }
            Err(_) => Listing::new(),
        };
        for path in ready(&prev, &now, &done) {
            done.insert(path.clone());
            let p = path.clone();
            let decoded = tokio::task::spawn_blocking(move || {
                std::fs::read(&p).map(|b| mrt::decode(b, "mrt"))
            })
            .await;
            match decoded {
                Ok(Ok(d)) => {
                    hub.counters.mrt_files.fetch_add(1, Ordering::Relaxed);
                    if let Some(e) = &d.error {
                        hub.counters.mrt_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(file = %path.display(), error = %e, "MRT file read in part");
                    }
                    tracing::info!(file = %path.display(), records = d.records, "MRT file imported");
                    hub.apply_timed(d.events);
                }
                Ok(Err(e)) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot read MRT file")
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "MRT import task failed")
                }
            }
        }
        prev = now;
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_imported_once_its_size_and_time_hold_for_a_scan() {
        let t = Some(SystemTime::UNIX_EPOCH);
        let a = PathBuf::from("updates.20141222.0000.bz2");
        let b = PathBuf::from("updates.20141222.0015.bz2");
        let mut done = HashSet::new();
        let first: Listing = [(a.clone(), (10, t))].into();
        assert!(ready(&Listing::new(), &first, &done).is_empty());
        let second: Listing = [(a.clone(), (10, t)), (b.clone(), (5, t))].into();
        assert_eq!(ready(&first, &second, &done), vec![a.clone()]);
        done.insert(a.clone());
        // b grew: still being written.
        let third: Listing = [(a.clone(), (10, t)), (b.clone(), (9, t))].into();
        assert!(ready(&second, &third, &done).is_empty());
        assert_eq!(ready(&third, &third, &done), vec![b]);
    }
}
