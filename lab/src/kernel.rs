//! The one host-wide kernel knob the scenario lab needs.
//!
//! Linux rate-limits the ICMP unreachables it sends for routing failures
//! (`ip_error`: one per second per source address, burst of five), and unlike
//! the `icmp_*` limits these sysctls (`net.ipv4.route.error_cost`,
//! `error_burst`) exist only in the initial namespace. A withdrawn prefix is a
//! routing failure at the lab's border: without this, the border answers the
//! first few probes and traceroutes then seem to end one hop early. The old
//! value is saved and put back when the last lab on the machine is torn down.

use std::fs;
use std::path::Path;

const KNOB: &str = "/proc/sys/net/ipv4/route/error_cost";
const SAVED: &str = "/run/darkwatch-lab.route-error-cost";

/// Turns the routing-error rate limit off (saving the old value once).
pub fn relax_route_error_limit() {
    let Ok(cur) = fs::read_to_string(KNOB) else {
        return;
    };
    if cur.trim() == "0" {
        return;
    }
    if !Path::new(SAVED).exists() {
        let _ = fs::write(SAVED, cur.trim());
    }
    if let Err(e) = fs::write(KNOB, "0") {
        tracing::warn!("cannot set net.ipv4.route.error_cost=0 ({e}): the border's unreachables will be rate-limited");
    }
}

/// Puts the saved value back once no lab is left on the machine.
pub(crate) fn restore_route_error_limit_if_last() {
    let labs_left = crate::netns::list_namespaces()
        .map(|all| all.iter().any(|n| crate::parse_lab_name(n).is_some()))
        .unwrap_or(true);
    if !labs_left {
        restore_route_error_limit();
    }
}

fn restore_route_error_limit() {
    if let Ok(old) = fs::read_to_string(SAVED) {
        if fs::write(KNOB, old.trim()).is_ok() {
            let _ = fs::remove_file(SAVED);
        }
    }
}
