//! One cause, one headline: which verdicts another verdict fully explains.
//!
//! A single withdrawn /24 makes three verdicts: a blackout of the prefix, a
//! partial outage of its AS and one of the country. All three are true, but
//! they are one event, and the operator should read it once. A blackout of a
//! scope accounts for everything inside that scope, so a verdict whose
//! affected prefixes all lie in blackouts that overlap it in time (same
//! campaign) is explained by them: a country partial by its prefix's
//! blackout, a prefix blackout by the country's blackout. Where several
//! blackouts could explain a verdict, the widest scope wins, so that chains
//! collapse onto one headline. Instability is its own headline: a flapping
//! prefix is not explained by anything else, nor does it explain anything.
//! A degradation is explained by a blackout that overlaps it or follows it
//! within [`FOLLOWS_WITHIN`] rounds: throttling that ends in a shutdown is
//! that shutdown's prelude, as 2014's instability preceded the blackout.
//!
//! Pure: it looks only at the verdicts given, and the same list always gives
//! the same answer.

use darkwatch_correlate::{Kind, Scope};
use ipnet::IpNet;

/// What nesting needs to know of a verdict.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub campaign: &'a str,
    pub scope: Scope,
    pub kind: Kind,
    pub start_round: u64,
    /// First round after the verdict (`None` while it is open).
    pub end_round: Option<u64>,
    pub prefixes: &'a [IpNet],
}

fn overlaps(a: &Event, b: &Event) -> bool {
    a.start_round < b.end_round.unwrap_or(u64::MAX)
        && b.start_round < a.end_round.unwrap_or(u64::MAX)
}

/// Rounds after a degradation's end within which a blackout that starts
/// still follows it (a round the fault straddles is neither).
pub const FOLLOWS_WITHIN: u64 = 2;

/// True if blackout `b` overlaps `v` or, for a degradation, follows it.
fn same_event(b: &Event, v: &Event) -> bool {
    overlaps(b, v)
        || (v.kind == Kind::Degradation
            && b.start_round >= v.start_round
            && v.end_round
                .is_none_or(|e| b.start_round <= e.saturating_add(FOLLOWS_WITHIN)))
}

/// For each event, the indices of the blackouts that explain it (empty for a
/// headline). Every index returned is itself a headline.
pub fn explained_by(events: &[Event]) -> Vec<Vec<usize>> {
    // A blackout explains `v` when it overlaps `v` in time and covers at
    // least one of its prefixes; `v` is explained when such blackouts cover
    // all of them.
    let direct = |i: usize| -> Vec<usize> {
        let v = &events[i];
        if v.kind == Kind::Instability || v.prefixes.is_empty() {
            return Vec::new();
        }
        let mut causes: Vec<usize> = (0..events.len())
            .filter(|&j| {
                let b = &events[j];
                j != i
                    && b.kind == Kind::Blackout
                    && b.campaign == v.campaign
                    && same_event(b, v)
                    && v.prefixes.iter().any(|p| b.prefixes.contains(p))
                    // A blackout is explained only by a wider one.
                    && !(v.kind == Kind::Blackout && b.scope >= v.scope)
            })
            .collect();
        let covered = v
            .prefixes
            .iter()
            .all(|p| causes.iter().any(|&j| events[j].prefixes.contains(p)));
        if !covered {
            return Vec::new();
        }
        // Widest scope first; keep only what each prefix needs.
        causes.sort_by_key(|&j| (events[j].scope, events[j].start_round, j));
        let mut needed = Vec::new();
        for &j in &causes {
            let adds = v.prefixes.iter().any(|p| {
                events[j].prefixes.contains(p)
                    && !needed
                        .iter()
                        .any(|&k: &usize| events[k].prefixes.contains(p))
            });
            if adds {
                needed.push(j);
            }
        }
        needed
    };
    let direct: Vec<Vec<usize>> = (0..events.len()).map(direct).collect();
    // Follow chains to their headlines (a prefix blackout under an AS
    // blackout under the country's); no cycle can form, since a blackout is
    // only explained by a blackout of a strictly wider scope.
    (0..events.len())
        .map(|i| {
            let mut roots: Vec<usize> = Vec::new();
            let mut stack = direct[i].clone();
            let mut seen = vec![false; events.len()];
            seen[i] = true;
            while let Some(j) = stack.pop() {
                if std::mem::replace(&mut seen[j], true) {
                    continue;
                }
                if direct[j].is_empty() {
                    roots.push(j);
                } else {
                    stack.extend(direct[j].iter().copied());
                }
            }
            roots.sort_unstable();
            roots.dedup();
            roots
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn ev<'a>(
        scope: Scope,
        kind: Kind,
        start: u64,
        end: Option<u64>,
        prefixes: &'a [IpNet],
    ) -> Event<'a> {
        Event {
            campaign: "kp",
            scope,
            kind,
            start_round: start,
            end_round: end,
            prefixes,
        }
    }

    #[test]
    fn one_withdrawn_prefix_is_one_headline() {
        let p = nets(&["198.18.2.0/24"]);
        let events = [
            ev(Scope::Country, Kind::Partial, 10, Some(20), &p),
            ev(Scope::Asn, Kind::Partial, 10, Some(20), &p),
            ev(Scope::Prefix, Kind::Blackout, 10, Some(20), &p),
        ];
        let want: Vec<Vec<usize>> = vec![vec![2], vec![2], vec![]];
        assert_eq!(explained_by(&events), want);
    }

    #[test]
    fn a_country_blackout_heads_its_prefixes_blackouts() {
        let all = nets(&["198.18.0.0/23", "198.18.2.0/24"]);
        let events = [
            ev(Scope::Prefix, Kind::Blackout, 11, None, &all[..1]),
            ev(Scope::Country, Kind::Blackout, 10, None, &all),
            ev(Scope::Asn, Kind::Blackout, 10, None, &all),
            ev(Scope::Prefix, Kind::Blackout, 10, None, &all[1..]),
        ];
        let want: Vec<Vec<usize>> = vec![vec![1], vec![], vec![1], vec![1]];
        assert_eq!(explained_by(&events), want);
    }

    #[test]
    fn a_partial_explained_by_two_blackouts_names_both() {
        let p = nets(&["198.18.2.0/24", "198.18.4.0/24"]);
        let events = [
            ev(Scope::Country, Kind::Partial, 10, Some(20), &p),
            ev(Scope::Prefix, Kind::Blackout, 10, Some(20), &p[..1]),
            ev(Scope::Prefix, Kind::Blackout, 12, Some(18), &p[1..]),
        ];
        let want: Vec<Vec<usize>> = vec![vec![1, 2], vec![], vec![]];
        assert_eq!(explained_by(&events), want);
    }

    #[test]
    fn a_degradation_nests_under_the_blackout_that_follows_it() {
        let p = nets(&["198.18.0.0/22"]);
        let events = [
            ev(Scope::Country, Kind::Degradation, 10, Some(14), &p),
            ev(Scope::Country, Kind::Blackout, 14, Some(22), &p),
            // One straddled round later still follows; three do not.
            ev(Scope::Country, Kind::Degradation, 30, Some(34), &p),
            ev(Scope::Country, Kind::Blackout, 35, Some(40), &p),
            ev(Scope::Country, Kind::Degradation, 50, Some(54), &p),
            ev(Scope::Country, Kind::Blackout, 57, Some(60), &p),
            // A blackout before it is not its cause.
            ev(Scope::Country, Kind::Degradation, 23, Some(28), &p),
        ];
        let want: Vec<Vec<usize>> = vec![vec![1], vec![], vec![3], vec![], vec![], vec![], vec![]];
        assert_eq!(explained_by(&events), want);
    }

    #[test]
    fn what_is_not_fully_explained_stays_a_headline() {
        let p = nets(&["198.18.2.0/24", "198.18.4.0/24"]);
        let events = [
            // The partial names a prefix that no blackout covers.
            ev(Scope::Country, Kind::Partial, 10, Some(20), &p),
            ev(Scope::Prefix, Kind::Blackout, 10, Some(20), &p[..1]),
            // Disjoint in time: not the same event.
            ev(Scope::Asn, Kind::Partial, 30, Some(35), &p[..1]),
            // Instability is never nested.
            ev(Scope::Prefix, Kind::Instability, 10, Some(20), &p[..1]),
            // Another campaign's blackout explains nothing here.
            Event {
                campaign: "other",
                ..ev(Scope::Country, Kind::Blackout, 0, None, &p)
            },
        ];
        let none: Vec<Vec<usize>> = vec![vec![]; 5];
        assert_eq!(explained_by(&events), none);
    }
}
