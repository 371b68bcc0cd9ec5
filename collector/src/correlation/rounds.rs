//! Round arithmetic of the loop: which rounds a pass may judge now. Pure
//! (time passed in), shared with the evidence pages that show the same
//! "last complete round".

use std::collections::BTreeSet;

use darkwatch_schema::round_of;

/// Round `r` is complete (every agent had time to report it) once half an
/// interval has passed after round `r + 1` started.
pub fn last_complete_round(now_ms: i64, interval_secs: u64) -> Option<u64> {
    let i = interval_secs.max(1) as i64 * 1000;
    let t = now_ms - i - i / 2;
    (t >= 0).then(|| round_of(t, interval_secs))
}

/// The last round a pass may correlate: the last complete round by the
/// clock, or a later one (the round just ended, or the one in progress) once
/// every agent that reported the round before it has reported it too. An
/// agent sends a whole round in one batch, so waiting out the deadline only
/// matters for a late agent; not waiting saves most of a round of verdict
/// latency. `reported` is `(round, agent)` for rounds up to `current`.
pub fn last_round_to_correlate(
    by_time: Option<u64>,
    current: u64,
    reported: &[(u64, String)],
) -> Option<u64> {
    let agents = |r: u64| {
        reported
            .iter()
            .filter(|(x, _)| *x == r)
            .map(|(_, a)| a.as_str())
            .collect::<BTreeSet<_>>()
    };
    for r in (current.saturating_sub(1)..=current).rev() {
        if r == 0 || by_time.is_some_and(|t| r <= t) {
            break;
        }
        let (now, before) = (agents(r), agents(r - 1));
        if !before.is_empty() && before.is_subset(&now) {
            return Some(r);
        }
    }
    by_time
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_end_early_once_every_agent_reported() {
        let rep = |v: &[(u64, &str)]| {
            v.iter()
                .map(|(r, a)| (*r, a.to_string()))
                .collect::<Vec<_>>()
        };
        // Round 10 in progress, 8 complete by the clock.
        let all = rep(&[(8, "a"), (8, "b"), (9, "a"), (9, "b"), (10, "a"), (10, "b")]);
        assert_eq!(last_round_to_correlate(Some(8), 10, &all), Some(10));
        // b has not reported round 10 yet: round 9 is the last one both sent.
        let late = rep(&[(8, "a"), (8, "b"), (9, "a"), (9, "b"), (10, "a")]);
        assert_eq!(last_round_to_correlate(Some(8), 10, &late), Some(9));
        // Nobody reported 9 or 10 (collector down, agents spooling): wait for the clock.
        assert_eq!(
            last_round_to_correlate(Some(8), 10, &rep(&[(8, "a")])),
            Some(8)
        );
        // A new agent in round 10 does not hold it back; a missing one does.
        let joined = rep(&[(9, "a"), (10, "a"), (10, "c")]);
        assert_eq!(last_round_to_correlate(Some(8), 10, &joined), Some(10));
        assert_eq!(last_round_to_correlate(None, 0, &[]), None);
    }

    #[test]
    fn rounds_complete_after_half_an_interval_more() {
        // interval 10 s: round 5 spans [50 s, 60 s) and is complete at 65 s.
        assert_eq!(last_complete_round(64_999, 10), Some(4));
        assert_eq!(last_complete_round(65_000, 10), Some(5));
        assert_eq!(last_complete_round(1_000, 10), None);
    }
}
