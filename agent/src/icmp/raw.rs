//! The rounds' IPv4 echo transport: one raw socket that every round probe
//! is sent on, straight from the calling future (no channel, no task per
//! probe), and one receiving thread that drains it, matches what it reads
//! in the sans-IO [`EchoCore`] and completes each probe's future; the same
//! thread times probes out from the core's deadline heap, sleeping in
//! `poll(2)` until the next deadline or the next packet.
//!
//! The socket has the kernel filter of the pinger's identifier range
//! ([`filter::echo_replies`]) and an `ICMP_FILTER` for echo replies and
//! errors, so that it never sees a sweep's replies nor its own requests.

use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::sync::oneshot;

use super::echo::EchoCore;
use super::{filter, raise_recv_buffer, Outcome, RECV_BUFFER_BYTES};

/// The longest the receiving thread sleeps: how soon it notices that the
/// pinger is gone, and how late a probe with a deadline closer than this,
/// started while the thread sleeps with nothing in flight, may time out.
const MAX_WAIT: Duration = Duration::from_millis(50);
/// Retries of a send while the stack has no buffer space, and their pause.
const SEND_RETRIES: u32 = 200;
const SEND_RETRY_PAUSE: Duration = Duration::from_micros(200);

type Waiter = oneshot::Sender<Outcome>;

struct Shared {
    core: Mutex<EchoCore<Waiter>>,
    stop: AtomicBool,
}

impl Shared {
    fn core(&self) -> MutexGuard<'_, EchoCore<Waiter>> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The rounds' raw IPv4 echo pinger (see the module docs).
pub struct RawEcho {
    sock: Arc<Socket>,
    shared: Arc<Shared>,
    receiver: Option<JoinHandle<()>>,
}

impl RawEcho {
    /// Opens the socket for identifiers `base..base + width` (modulo 2^15)
    /// and starts the receiving thread.
    pub fn open(base: u16, width: u16) -> io::Result<Self> {
        let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
        // Echo replies (0), unreachable (3), time exceeded (11), parameter
        // problem (12): the kernel drops every other type.
        super::sweeper::set_icmp_filter(&sock, !(1 << 0 | 1 << 3 | 1 << 11 | 1 << 12));
        if let Err(e) = filter::attach(sock.as_raw_fd(), &filter::echo_replies(base, width)) {
            tracing::warn!(
                "cannot filter the rounds' ICMP socket: {e}; a discovery sweep will load it"
            );
        }
        raise_recv_buffer(sock.as_raw_fd(), RECV_BUFFER_BYTES);
        sock.set_nonblocking(true)?;
        let sock = Arc::new(sock);
        let shared = Arc::new(Shared {
            core: Mutex::new(EchoCore::new(base, width)),
            stop: AtomicBool::new(false),
        });
        let receiver = std::thread::Builder::new()
            .name("dw-echo-rx".into())
            .spawn({
                let (sock, shared) = (sock.clone(), shared.clone());
                move || receive(&sock, &shared)
            })?;
        Ok(Self {
            sock,
            shared,
            receiver: Some(receiver),
        })
    }

    /// The socket, for its kernel drop count.
    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Sends one echo request to `dst` and waits for its outcome.
    pub async fn echo(&self, dst: Ipv4Addr, timeout: Duration) -> Outcome {
        let (tx, rx) = oneshot::channel();
        let (key, pkt) = self.shared.core().start(dst, Instant::now(), timeout, tx);
        let to = SockAddr::from(SocketAddrV4::new(dst, 0));
        let mut retries = 0;
        loop {
            match self.sock.send_to(&pkt, &to) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if (e.raw_os_error() == Some(libc::ENOBUFS)
                        || e.kind() == io::ErrorKind::WouldBlock)
                        && retries < SEND_RETRIES =>
                {
                    retries += 1;
                    tokio::time::sleep(SEND_RETRY_PAUSE).await;
                }
                Err(e) => {
                    self.shared.core().cancel(key);
                    tracing::debug!(%dst, "echo failed: {e}");
                    return Outcome::Failed(e.to_string());
                }
            }
        }
        rx.await
            .unwrap_or_else(|_| Outcome::Failed("the ICMP receiver stopped".into()))
    }
}

impl Drop for RawEcho {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.receiver.take() {
            let _ = r.join();
        }
    }
}

/// The receiving thread: waits for a packet or the next deadline, drains
/// the socket, times out what is due, until the pinger is dropped.
fn receive(sock: &Socket, shared: &Shared) {
    let mut buf = [0u8; 1500];
    let mut due = Vec::new();
    let mut reader = sock;
    while !shared.stop.load(Ordering::Relaxed) {
        let next = shared.core().next_deadline();
        let wait = next.map_or(MAX_WAIT, |d| {
            d.saturating_duration_since(Instant::now()).min(MAX_WAIT)
        });
        wait_readable(sock.as_raw_fd(), wait);
        loop {
            match reader.read(&mut buf) {
                Ok(n) => {
                    let hit = shared.core().on_packet(&buf[..n], Instant::now());
                    if let Some((waiter, outcome)) = hit {
                        // The prober may have given up (its future dropped).
                        let _ = waiter.send(outcome);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!("ICMP receive error: {e}");
                    std::thread::sleep(MAX_WAIT);
                    break;
                }
            }
        }
        shared.core().expire(Instant::now(), &mut due);
        for waiter in due.drain(..) {
            let _ = waiter.send(Outcome::Timeout);
        }
    }
}

/// Sleeps until `fd` is readable or `wait` has passed (rounded up to a
/// millisecond, so that a deadline is never woken for early in a loop).
#[allow(unsafe_code)]
fn wait_readable(fd: RawFd, wait: Duration) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    // SAFETY: one valid pollfd for the duration of the call; `fd` stays
    // open (the socket outlives this thread).
    unsafe { libc::poll(&mut pfd, 1, ms) };
}
