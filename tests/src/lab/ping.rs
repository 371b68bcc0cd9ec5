//! One-shot reachability checks with iputils `ping`, for tests and demos.
//!
//! `parse` is pure (it reads ping's output); running ping is `Lab::ping`.

use std::net::Ipv4Addr;

/// What a single echo request got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PingOutcome {
    /// An echo reply.
    Reply,
    /// ICMP destination unreachable, from the router that sent it.
    Unreachable { from: Ipv4Addr, reason: String },
    /// ICMP time exceeded (the TTL ran out at `from`).
    TimeExceeded { from: Ipv4Addr },
    /// Nothing came back before the timeout.
    Silent,
    /// The request could not be sent (e.g. no route at the sender).
    LocalError(String),
}

impl PingOutcome {
    pub fn is_reply(&self) -> bool {
        matches!(self, PingOutcome::Reply)
    }
}

/// Reads the output of `ping -n -c1`: the first reply or error line decides.
pub fn parse(stdout: &str, stderr: &str) -> PingOutcome {
    for line in stdout.lines() {
        if line.contains(" bytes from ") && line.contains("icmp_seq=") {
            return PingOutcome::Reply;
        }
        if let Some(rest) = line.strip_prefix("From ") {
            let mut words = rest.split_whitespace();
            let Some(from) = words
                .next()
                .and_then(|w| w.trim_end_matches(':').parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let reason: Vec<&str> = words.filter(|w| !w.starts_with("icmp_seq=")).collect();
            let reason = reason.join(" ");
            if reason.contains("Time to live exceeded") {
                return PingOutcome::TimeExceeded { from };
            }
            return PingOutcome::Unreachable { from, reason };
        }
    }
    let err = stderr.lines().map(str::trim).find(|l| !l.is_empty());
    match err {
        Some(e) => PingOutcome::LocalError(e.to_string()),
        None => PingOutcome::Silent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply() {
        let out = "PING 198.18.0.1 (198.18.0.1) 56(84) bytes of data.\n64 bytes from 198.18.0.1: icmp_seq=1 ttl=61 time=0.081 ms\n\n--- 198.18.0.1 ping statistics ---\n1 packets transmitted, 1 received, 0% packet loss, time 0ms\n";
        assert_eq!(parse(out, ""), PingOutcome::Reply);
    }

    #[test]
    fn unreachable_names_the_router() {
        let out = "PING 198.18.2.1 (198.18.2.1) 56(84) bytes of data.\nFrom 203.0.113.244 icmp_seq=1 Destination Net Unreachable\n\n--- 198.18.2.1 ping statistics ---\n1 packets transmitted, 0 received, +1 errors, 100% packet loss, time 0ms\n";
        assert_eq!(
            parse(out, ""),
            PingOutcome::Unreachable {
                from: Ipv4Addr::new(203, 0, 113, 244),
                reason: "Destination Net Unreachable".into()
            }
        );
    }

    #[test]
    fn time_exceeded() {
        let out = "PING 198.18.2.1 (198.18.2.1) 56(84) bytes of data.\nFrom 203.0.113.241 icmp_seq=1 Time to live exceeded\n";
        assert_eq!(
            parse(out, ""),
            PingOutcome::TimeExceeded {
                from: Ipv4Addr::new(203, 0, 113, 241)
            }
        );
    }

    #[test]
    fn silence_and_local_errors() {
        let out = "PING 198.18.0.2 (198.18.0.2) 56(84) bytes of data.\n\n--- 198.18.0.2 ping statistics ---\n1 packets transmitted, 0 received, 100% packet loss, time 0ms\n";
        assert_eq!(parse(out, ""), PingOutcome::Silent);
        assert_eq!(
            parse("", "ping: connect: Network is unreachable\n"),
            PingOutcome::LocalError("ping: connect: Network is unreachable".into())
        );
    }
}
