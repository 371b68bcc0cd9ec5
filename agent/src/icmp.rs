//! The probe transport: an ICMP echo behind the [`Pinger`] trait, so that
//! discovery and rounds run the same against the real network
//! ([`SurgePinger`]) and against a simulated one (`sim::SimPinger`, built for
//! tests and with the `sim` feature).
//!
//! Which path the real pinger takes:
//! - IPv4 echo probes (rounds, the ad hoc `probe` command, discovery of
//!   single addresses): [`raw::RawEcho`], one raw socket sent on straight
//!   from the probing futures and one receiving thread that matches replies
//!   and ICMP errors by (identifier, sequence) in the sans-IO
//!   [`echo::EchoCore`] and times probes out from a deadline heap: no task,
//!   timer or socket registration per probe, which is what a round of one
//!   probe per block costs most at scale.
//! - IPv4 discovery sweeps: [`RawSweeper`], batch sends and a polling
//!   receiver of its own.
//! - IPv6 echo probes: surge-ping (few blocks; its per-probe cost does not
//!   matter there).
//!
//! Every socket has a kernel filter ([`filter`]): identifiers of echo
//! probes, sweeps and traceroutes come from disjoint ranges, and each socket
//! gets only the replies and errors of its own probes, so that a sweep's
//! replies never reach the rounds' socket. Receive buffers are raised (an
//! overflowing buffer drops replies silently).

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use socket2_06::{Domain, Protocol, Socket, Type};
use surge_ping::{Client, Config, IcmpPacket, PingIdentifier, PingSequence, SurgeError, ICMP};

use crate::ratelimit::RateLimiter;

pub mod echo;
pub mod filter;
pub mod raw;
pub mod sweeper;
pub use sweeper::RawSweeper;

/// What became of one echo request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// An echo reply came back from the target.
    Reply { rtt: Duration },
    /// An ICMP error (unreachable, time exceeded, ...) came back from `from`.
    Unreachable { from: IpAddr },
    /// Nothing came back in time.
    Timeout,
    /// The probe could not be sent (no route, no socket for the family, ...).
    Failed(String),
}

impl Outcome {
    /// Only an echo reply counts as the target being alive.
    pub fn is_reply(&self) -> bool {
        matches!(self, Outcome::Reply { .. })
    }
}

/// Sends one echo request and waits for its outcome. Implementations must
/// allow many concurrent calls (discovery keeps thousands in flight).
pub trait Pinger: Send + Sync {
    fn echo(&self, addr: IpAddr, timeout: Duration) -> BoxFuture<'_, Outcome>;

    /// Replies the kernel dropped so far because the receiving socket's
    /// buffer was full (IPv4), if this pinger can tell.
    fn receive_drops(&self) -> Option<u64> {
        None
    }

    /// A batch transport for discovery sweeps of IPv4 addresses, if this
    /// pinger has one: it sends without waiting on any reply and matches
    /// replies as they come (see [`RawSweeper`]). `None` (the default) makes
    /// discovery fall back to one [`Pinger::echo`] per address.
    fn batch_sweeper(&self) -> Option<&dyn BatchSweep> {
        None
    }
}

/// Probes many IPv4 addresses once each without waiting on each reply.
pub trait BatchSweep: Send + Sync {
    /// Sends one echo request to every address of `addrs`, paced by
    /// `limiter`, keeps collecting replies until `timeout` after the last
    /// send, and returns the addresses that sent an echo reply (any order,
    /// no duplicates).
    fn sweep_v4(
        &self,
        addrs: Vec<Ipv4Addr>,
        limiter: Arc<RateLimiter>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Vec<Ipv4Addr>, IcmpError>>;
}

/// The message for a missing CAP_NET_RAW, shared by every entry point; it
/// names this binary's path so that the fix can be pasted as is.
pub fn no_privilege_message() -> String {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/path/to/darkwatch-agent".into());
    format!(
        "darkwatch-agent needs CAP_NET_RAW to send ICMP: run it as root, or `setcap cap_net_raw+ep {exe}`, \
         or under systemd `AmbientCapabilities=CAP_NET_RAW` (see deploy/systemd/)"
    )
}

#[derive(Debug, thiserror::Error)]
pub enum IcmpError {
    #[error("{}", no_privilege_message())]
    NoPrivilege,
    #[error("cannot open an {family} ICMP socket: {source}")]
    Socket {
        family: &'static str,
        #[source]
        source: io::Error,
    },
}

pub(crate) fn socket_error(family: &'static str, source: io::Error) -> IcmpError {
    if source.kind() == io::ErrorKind::PermissionDenied {
        IcmpError::NoPrivilege
    } else {
        IcmpError::Socket { family, source }
    }
}

/// Checks that a raw ICMP socket can be opened (nothing is sent).
pub fn check_privileges() -> Result<(), IcmpError> {
    Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
        .map(drop)
        .map_err(|e| socket_error("IPv4", e))
}

/// Receive buffer asked for on each raw socket: room for tens of thousands of
/// replies while the receiving task catches up.
pub const RECV_BUFFER_BYTES: usize = 16 << 20;

/// Echo payload: recognisable in packet captures.
const PAYLOAD: &[u8; 16] = b"darkwatch-probe\0";

/// The real pinger, over surge-ping.
pub struct SurgePinger {
    /// The IPv4 client, opened at the first echo: a discovery sweep (which
    /// has its own sockets) comes first, and an open raw socket would get a
    /// copy of every sweep reply to read and discard.
    v4: OnceLock<Result<raw::RawEcho, String>>,
    v6: Result<Client, String>,
    ident_base: u16,
    counter: AtomicU32,
    sweeper: RawSweeper,
}

impl SurgePinger {
    /// Checks that raw IPv4 sockets can be opened and opens the IPv6 one.
    /// Must be called inside a tokio runtime (surge-ping spawns its receive
    /// task). An IPv6 socket that cannot be opened for a reason other than
    /// privileges only makes IPv6 probes fail.
    pub fn new() -> Result<Self, IcmpError> {
        check_privileges()?;
        // Identifiers from the low half; traceroutes take theirs from the
        // high half (see `trace`), so the two never claim each other's
        // replies. Of the low half, echo probes use `PINGER_IDENTS` from
        // `ident_base` on and sweeps the rest (see `RawSweeper`).
        let ident_base = rand::random::<u16>() & 0x7fff;
        let v6 = match open_client(ICMP::V6, Some(ident_base)) {
            Ok(c) => Ok(c),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(IcmpError::NoPrivilege)
            }
            Err(e) => {
                tracing::warn!("IPv6 probing disabled: cannot open an ICMPv6 socket: {e}");
                Err(format!("no ICMPv6 socket: {e}"))
            }
        };
        Ok(Self {
            v4: OnceLock::new(),
            v6,
            ident_base,
            counter: AtomicU32::new(0),
            // Sweeps take identifiers just past this pinger's range.
            sweeper: RawSweeper::new(ident_base.wrapping_add(PINGER_IDENTS) & 0x7fff),
        })
    }

    fn v4(&self) -> Result<&raw::RawEcho, String> {
        self.v4
            .get_or_init(|| {
                raw::RawEcho::open(self.ident_base, PINGER_IDENTS).map_err(|e| {
                    tracing::error!("cannot open an IPv4 ICMP socket: {e}");
                    format!("no ICMPv4 socket: {e}")
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// How many identifiers echo probes use (from the pinger's base on,
/// modulo 2^15); sweeps use the other `0x8000 - PINGER_IDENTS` of the low
/// half.
pub const PINGER_IDENTS: u16 = 0x4000;

/// Opens a client; for IPv6 (`v6_base` given) with the kernel filters that
/// pass only the replies and errors of identifiers
/// `v6_base..v6_base + PINGER_IDENTS`.
fn open_client(kind: ICMP, v6_base: Option<u16>) -> io::Result<Client> {
    let config = Config::builder()
        .kind(kind)
        .sock_type_hint(Type::RAW)
        .build();
    let client = Client::new(&config)?;
    let socket = client.get_socket();
    if socket.get_type() != Type::RAW {
        tracing::debug!(
            ?kind,
            "raw ICMP socket unavailable, surge-ping fell back to a datagram socket"
        );
    }
    let fd = socket.get_native_sock();
    raise_recv_buffer(fd, RECV_BUFFER_BYTES);
    if let (Some(base), Type::RAW) = (v6_base, socket.get_type()) {
        // Without them, this socket receives (and its task parses and
        // drops) every ICMPv6 packet of the namespace: other pingers'
        // replies, traceroutes', neighbour discovery.
        let filtered = filter::set_icmp6_filter(fd)
            .and_then(|()| filter::attach(fd, &filter::echo6_replies(base, PINGER_IDENTS)));
        if let Err(e) = filtered {
            tracing::warn!("cannot filter the ICMPv6 socket's replies: {e}");
        }
    }
    Ok(client)
}

/// Raises the socket's receive buffer, beyond `net.core.rmem_max` when the
/// process may (SO_RCVBUFFORCE needs CAP_NET_ADMIN), else up to it.
#[allow(unsafe_code)]
pub(crate) fn raise_recv_buffer(fd: std::os::fd::RawFd, bytes: usize) {
    use std::os::fd::BorrowedFd;
    // SAFETY: `fd` belongs to a surge-ping client that the caller holds, so it
    // stays open for the duration of this function; we only set options on it.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let size = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: valid fd, pointer and length of a c_int option value.
    let forced = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    } == 0;
    let sock = socket2_06::SockRef::from(&fd);
    if !forced {
        if let Err(e) = sock.set_recv_buffer_size(bytes) {
            tracing::warn!("cannot raise the ICMP receive buffer: {e}");
        }
    }
    match sock.recv_buffer_size() {
        Ok(got) if got < bytes / 4 => tracing::warn!(
            "ICMP receive buffer is only {got} bytes; replies may be lost in large sweeps (raise net.core.rmem_max)"
        ),
        Ok(got) => tracing::debug!("ICMP receive buffer: {got} bytes"),
        Err(e) => tracing::debug!("cannot read the ICMP receive buffer size: {e}"),
    }
}

/// The kernel's count of packets dropped on the raw IPv4 socket `fd` (the
/// `drops` column of the calling thread's namespace's `/proc/net/raw`, found
/// by the socket's inode).
pub fn socket_drops(fd: std::os::fd::RawFd) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(format!("/proc/self/fd/{fd}")).ok()?.ino();
    let table = std::fs::read_to_string("/proc/thread-self/net/raw").ok()?;
    raw_table_drops(&table, inode)
}

/// The `drops` of socket `inode` in a `/proc/net/raw` table.
pub fn raw_table_drops(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
        (cols.get(9)?.parse::<u64>().ok()? == inode).then(|| cols.get(12)?.parse().ok())?
    })
}

impl Pinger for SurgePinger {
    fn batch_sweeper(&self) -> Option<&dyn BatchSweep> {
        Some(&self.sweeper)
    }

    fn receive_drops(&self) -> Option<u64> {
        socket_drops(self.v4.get()?.as_ref().ok()?.fd())
    }

    fn echo(&self, addr: IpAddr, timeout: Duration) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let client = match (addr, &self.v6) {
                (IpAddr::V4(a), _) => match self.v4() {
                    Ok(raw) => return raw.echo(a, timeout).await,
                    Err(e) => return Outcome::Failed(e),
                },
                (IpAddr::V6(_), Ok(c)) => c,
                (IpAddr::V6(_), Err(e)) => return Outcome::Failed(e.clone()),
            };
            // A 32-bit counter split over identifier and sequence keeps every
            // probe in flight distinct even across 65536 probes to one host.
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let k = (n >> 16) as u16 % PINGER_IDENTS;
            let ident = PingIdentifier(self.ident_base.wrapping_add(k) & 0x7fff);
            let mut pinger = client.pinger(addr, ident).await;
            pinger.timeout(timeout);
            match pinger.ping(PingSequence(n as u16), PAYLOAD).await {
                Ok((IcmpPacket::V4(p), rtt)) => {
                    if p.get_icmp_type().0 == 0 {
                        Outcome::Reply { rtt }
                    } else {
                        Outcome::Unreachable {
                            from: IpAddr::V4(p.get_source()),
                        }
                    }
                }
                Ok((IcmpPacket::V6(p), rtt)) => {
                    if p.get_icmpv6_type().0 == 129 {
                        Outcome::Reply { rtt }
                    } else {
                        Outcome::Unreachable {
                            from: IpAddr::V6(p.get_source()),
                        }
                    }
                }
                Err(SurgeError::Timeout { .. }) => Outcome::Timeout,
                Err(e) => {
                    tracing::debug!(%addr, "echo failed: {e}");
                    Outcome::Failed(e.to_string())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimPinger;

    #[tokio::test(start_paused = true)]
    async fn simulated_replies_slower_than_the_timeout_are_losses() {
        let p = SimPinger::new(|addr, _| match addr {
            IpAddr::V4(a) if a.octets()[3] == 1 => Outcome::Reply {
                rtt: Duration::from_millis(5),
            },
            IpAddr::V4(a) if a.octets()[3] == 2 => Outcome::Reply {
                rtt: Duration::from_secs(5),
            },
            _ => Outcome::Unreachable {
                from: "192.0.2.1".parse().unwrap(),
            },
        });
        let t = Duration::from_secs(1);
        assert!(p.echo("198.18.0.1".parse().unwrap(), t).await.is_reply());
        assert_eq!(
            p.echo("198.18.0.2".parse().unwrap(), t).await,
            Outcome::Timeout
        );
        assert!(!p.echo("198.18.0.3".parse().unwrap(), t).await.is_reply());
        assert_eq!(p.total_sent(), 3);
    }

    #[test]
    fn drops_are_read_from_the_sockets_row() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
 1: 00000000:0001 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17\n\
 1: 00000000:0001 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 999 2 0000000000000000 0\n";
        assert_eq!(raw_table_drops(table, 4242), Some(17));
        assert_eq!(raw_table_drops(table, 999), Some(0));
        assert_eq!(raw_table_drops(table, 1), None);
    }

    #[test]
    fn no_privilege_message_names_the_fix() {
        let msg = IcmpError::NoPrivilege.to_string();
        assert!(msg.contains("CAP_NET_RAW") && msg.contains("setcap cap_net_raw+ep"));
        let e = socket_error("IPv4", io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(matches!(e, IcmpError::NoPrivilege));
    }
}
