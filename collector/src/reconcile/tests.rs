//! Reconciliation over many passes: a small in-memory store applies each
//! pass's changes the way `correlation::apply` does, and the tests count
//! alert events per verdict id.

use std::collections::BTreeMap;

use darkwatch_correlate::{Kind, Scope};

use super::*;

const NOW: i64 = 1_800_000_000_000;

fn campaign() -> Campaign {
    Campaign {
        name: "kp".into(),
        country: Some("KP".into()),
        interval_secs: 60,
        prefixes: vec!["198.18.0.0/22".parse().expect("net")],
        control: vec![],
        agents: vec![],
        generation: 1,
        created_ms: NOW,
    }
}

fn verdict(kind: Kind, start: u64, end: Option<u64>) -> core::Verdict {
    core::Verdict {
        scope: Scope::Country,
        target: "KP".into(),
        kind,
        start_round: start,
        end_round: end,
        blocks_affected: 4,
        blocks_total: 4,
        prefixes: vec!["198.18.0.0/22".parse().expect("net")],
        vantage_points: vec!["a".into(), "b".into()],
        localization: None,
        change: None,
    }
}

fn blackout(start: u64, end: Option<u64>) -> core::Verdict {
    verdict(Kind::Blackout, start, end)
}

/// Stored rows, and every event given so far as (verdict id, kind).
#[derive(Default)]
struct Sim {
    rows: Vec<Verdict>,
    faults: Vec<VpFault>,
    next_id: i64,
    events: Vec<(i64, EventKind)>,
    passes: i64,
}

impl Sim {
    /// One pass whose window ends at `last` (288 rounds long).
    fn pass(&mut self, verdicts: Vec<core::Verdict>, last: u64) -> Changes {
        self.pass_with(verdicts, vec![], last)
    }

    fn pass_with(
        &mut self,
        verdicts: Vec<core::Verdict>,
        vp_faults: Vec<core::VpFault>,
        last: u64,
    ) -> Changes {
        self.passes += 1;
        let out = core::Output {
            verdicts,
            vp_faults,
            ..Default::default()
        };
        let window = Window {
            first_round: last.saturating_sub(287),
            last_round: last,
        };
        let now = NOW + self.passes;
        let (changes, events) = reconcile(&campaign(), &self.rows, &self.faults, &out, window, now);
        let mut ids = Vec::new();
        for v in &changes.verdicts {
            let mut v = v.clone();
            if v.id == 0 {
                self.next_id += 1;
                v.id = self.next_id;
                self.rows.push(v.clone());
            } else {
                let slot = self.rows.iter_mut().find(|r| r.id == v.id).expect("row");
                *slot = v.clone();
            }
            ids.push(v.id);
        }
        for f in &changes.faults {
            let mut f = f.clone();
            if f.id == 0 {
                self.next_id += 1;
                f.id = self.next_id;
                self.faults.push(f);
            } else {
                let slot = self
                    .faults
                    .iter_mut()
                    .find(|r| r.id == f.id)
                    .expect("fault");
                *slot = f;
            }
        }
        for e in events {
            self.events.push((ids[e.change], e.kind));
        }
        changes
    }

    /// (opens, closes) per verdict id.
    fn counts(&self) -> BTreeMap<i64, (usize, usize)> {
        let mut m: BTreeMap<i64, (usize, usize)> =
            self.rows.iter().map(|r| (r.id, (0, 0))).collect();
        for (id, k) in &self.events {
            let c = m.entry(*id).or_default();
            match k {
                EventKind::Open => c.0 += 1,
                EventKind::Close => c.1 += 1,
            }
        }
        m
    }

    fn row(&self, id: i64) -> &Verdict {
        self.rows.iter().find(|r| r.id == id).expect("row")
    }
}

#[test]
fn a_verdict_opens_extends_and_closes_with_one_event_each() {
    let mut sim = Sim::default();
    sim.pass(vec![blackout(100, None)], 101);
    assert_eq!(sim.rows.len(), 1);
    let id = sim.rows[0].id;
    for last in 102..110 {
        sim.pass(vec![blackout(100, None)], last);
    }
    sim.pass(vec![blackout(100, Some(110))], 111);
    for last in 112..130 {
        sim.pass(vec![blackout(100, Some(110))], last);
    }
    assert_eq!(sim.rows.len(), 1, "one verdict, one row");
    assert_eq!(sim.rows[0].id, id, "identity is stable");
    assert_eq!(sim.rows[0].end_round, Some(110));
    assert_eq!(sim.counts()[&id], (1, 1));
    assert!(sim.rows[0].alerted.open && sim.rows[0].alerted.close);
}

#[test]
fn a_pass_that_changes_nothing_writes_nothing() {
    let mut sim = Sim::default();
    let first = sim.pass(vec![blackout(100, None)], 101);
    assert_eq!(first.verdicts.len(), 1);
    let again = sim.pass(vec![blackout(100, None)], 101);
    assert!(again.verdicts.is_empty(), "{again:?}");
}

#[test]
fn a_verdict_already_over_when_first_seen_opens_and_closes_once() {
    let mut sim = Sim::default();
    sim.pass(vec![blackout(100, Some(103))], 105);
    sim.pass(vec![blackout(100, Some(103))], 106);
    let id = sim.rows[0].id;
    assert_eq!(sim.counts()[&id], (1, 1));
    assert_eq!(
        sim.events,
        [(id, EventKind::Open), (id, EventKind::Close)],
        "open before close"
    );
}

/// Issue 17 part 4: two recomputed runs overlapping one stored row used to
/// both be written onto it, each pass flipping the row and closing it again.
#[test]
fn two_recomputed_runs_over_one_stored_row_do_not_overwrite_each_other() {
    let mut sim = Sim::default();
    sim.pass(vec![blackout(100, None)], 110);
    let first = sim.rows[0].id;
    // Late reports split the run in two, then merge it again, and so on.
    for i in 0..20u64 {
        let last = 111 + i;
        if i % 2 == 0 {
            sim.pass(vec![blackout(100, Some(103)), blackout(104, None)], last);
        } else {
            sim.pass(vec![blackout(100, None)], last);
        }
    }
    assert_eq!(sim.rows.len(), 2, "{:#?}", sim.rows);
    assert!(
        sim.row(first).end_round.is_none(),
        "the longer run continues the stored row"
    );
    for (id, (opens, closes)) in sim.counts() {
        assert_eq!(opens, 1, "verdict {id} opened once");
        assert!(closes <= 1, "verdict {id} closed {closes} times");
    }
    assert_eq!(sim.counts()[&first], (1, 0));
    // The split-off run ended before it was first seen: one open, one close.
    let other = sim.rows.iter().find(|r| r.id != first).expect("other");
    assert_eq!(sim.counts()[&other.id], (1, 1));
    // Rows of one scope, target and kind stay disjoint.
    let (a, b) = (sim.row(first), other);
    assert!(!overlaps(
        a.start_round,
        a.end_round.map(|e| e - 1),
        b.start_round,
        b.end_round.map(|e| e - 1)
    ));

    // The run finally ends: the first row closes, exactly once.
    for last in 140..150 {
        sim.pass(
            vec![blackout(100, Some(103)), blackout(104, Some(139))],
            last,
        );
    }
    assert_eq!(sim.counts()[&first], (1, 1));
    assert_eq!(sim.row(first).end_round, Some(139));
    assert_eq!(sim.rows.len(), 2);
}

#[test]
fn a_late_report_reopens_the_same_verdict_without_new_alerts() {
    let mut sim = Sim::default();
    sim.pass(vec![blackout(100, None)], 104);
    let id = sim.rows[0].id;
    sim.pass(vec![blackout(100, Some(105))], 106);
    assert_eq!(sim.counts()[&id], (1, 1));
    // A spooled agent's reports show the blocks were still down.
    sim.pass(vec![blackout(100, None)], 107);
    assert_eq!(sim.rows.len(), 1);
    assert_eq!(sim.row(id).end_round, None, "reopened in place");
    sim.pass(vec![blackout(100, Some(109))], 110);
    assert_eq!(sim.row(id).end_round, Some(109));
    assert_eq!(sim.rows.len(), 1);
    assert_eq!(
        sim.counts()[&id],
        (1, 1),
        "one open and one close in its life"
    );
}

/// Late reports fill the gap between a closed verdict and the open one
/// after it: the open one (whose `open` alert is out) goes on, neither is
/// closed by the merge, and no alert is given.
#[test]
fn a_merged_run_continues_the_open_verdict() {
    let mut sim = Sim::default();
    sim.pass(vec![blackout(100, Some(125))], 126);
    sim.pass(vec![blackout(100, Some(125)), blackout(127, None)], 130);
    let (closed, open) = (sim.rows[0].id, sim.rows[1].id);
    let before = sim.events.len();
    sim.pass(vec![blackout(100, None)], 130);
    assert_eq!(sim.events.len(), before, "{:?}", &sim.events[before..]);
    assert_eq!(sim.rows.len(), 2);
    assert_eq!(sim.row(open).end_round, None);
    assert_eq!(sim.row(closed).end_round, Some(125));
    assert_eq!(
        sim.row(open).start_round,
        125,
        "moved back to where the closed one ends"
    );
}

#[test]
fn a_verdict_the_data_no_longer_supports_is_closed_once() {
    let mut sim = Sim::default();
    sim.pass(vec![blackout(100, None)], 103);
    let id = sim.rows[0].id;
    // Late reports show the blocks were up: the recomputation finds nothing.
    let changes = sim.pass(vec![], 104);
    assert_eq!(changes.verdicts.len(), 1);
    assert_eq!(sim.row(id).end_round, Some(105), "closed after the window");
    for last in 105..120 {
        assert!(sim.pass(vec![], last).verdicts.is_empty());
    }
    assert_eq!(sim.counts()[&id], (1, 1));
}

#[test]
fn a_verdict_that_left_the_window_is_left_alone() {
    let mut sim = Sim::default();
    sim.pass(vec![blackout(100, Some(110))], 120);
    sim.pass(vec![blackout(300, None)], 301);
    let (old, ongoing) = (sim.rows[0].clone(), sim.rows[1].clone());
    // Both now start before the window (first round 313): the recomputation
    // sees neither the old one nor the onset of the ongoing one.
    for last in 600..610 {
        sim.pass(vec![], last);
    }
    assert_eq!(sim.row(old.id), &old);
    assert_eq!(sim.row(ongoing.id), &ongoing, "out of sight, not closed");
    // The ongoing one, seen again from the window's first round, keeps its
    // identity and its start.
    sim.pass(vec![blackout(323, None)], 610);
    assert_eq!(sim.rows.len(), 2);
    assert_eq!(sim.row(ongoing.id).start_round, 300);
    assert_eq!(sim.counts()[&old.id], (1, 1));
    assert_eq!(sim.counts()[&ongoing.id], (1, 0));
}

#[test]
fn many_passes_of_shifting_recomputations_give_one_open_and_one_close_per_verdict() {
    // An instability verdict whose recomputed onset and shape wobble from
    // pass to pass (issue 17: one verdict was closed 20 times), next to a
    // blackout of another scope.
    let instab = |s, e| verdict(Kind::Instability, s, e);
    let mut prefix = blackout(102, None);
    prefix.scope = Scope::Prefix;
    prefix.target = "198.18.0.0/24".into();
    let mut sim = Sim::default();
    let shapes: [Vec<core::Verdict>; 4] = [
        vec![instab(100, None)],
        vec![instab(101, None)],
        vec![instab(100, Some(104)), instab(106, None)],
        vec![instab(99, Some(105)), instab(107, None)],
    ];
    for pass in 0..40u64 {
        let mut out = shapes[(pass % 4) as usize].clone();
        out.push(prefix.clone());
        sim.pass(out, 110 + pass);
    }
    // Then everything ends.
    prefix.end_round = Some(160);
    for last in 161..170 {
        sim.pass(
            vec![
                instab(100, Some(104)),
                instab(106, Some(158)),
                prefix.clone(),
            ],
            last,
        );
    }
    let counts = sim.counts();
    assert!(sim.rows.len() <= 3, "{:#?}", sim.rows);
    for (id, c) in &counts {
        assert_eq!(*c, (1, 1), "verdict {id}: (opens, closes)");
    }
    assert!(sim.rows.iter().all(|r| r.end_round.is_some()));
}

#[test]
fn recomputed_vp_faults_keep_their_row() {
    let fault = |s, e| core::VpFault {
        vp: "a".into(),
        start_round: s,
        end_round: e,
        reason: "control targets unreachable".into(),
    };
    let mut sim = Sim::default();
    sim.pass_with(vec![], vec![fault(100, None)], 101);
    let id = sim.faults[0].id;
    sim.pass_with(vec![], vec![fault(100, Some(102)), fault(103, None)], 104);
    sim.pass_with(vec![], vec![fault(100, None)], 105);
    sim.pass_with(vec![], vec![fault(100, Some(102)), fault(103, None)], 106);
    assert_eq!(sim.faults.len(), 2);
    assert!(sim.faults.iter().any(|f| f.id == id));
    assert_eq!(
        sim.faults.iter().filter(|f| f.end_round.is_none()).count(),
        1
    );
    // The VP recovered and late reports erase the fault: it is closed.
    sim.pass_with(vec![], vec![fault(100, Some(102))], 107);
    assert!(sim.faults.iter().all(|f| f.end_round.is_some()));
    assert!(sim
        .pass_with(vec![], vec![fault(100, Some(102))], 108)
        .faults
        .is_empty());
}

#[test]
fn overlap_handles_open_ends() {
    assert!(overlaps(5, None, 9, Some(12)));
    assert!(!overlaps(5, Some(8), 9, None));
    assert!(overlaps(5, Some(9), 9, None));
}

#[test]
fn a_blackout_that_a_wider_one_now_contains_stays_open_and_closes_with_it() {
    let prefix = |start, end| core::Verdict {
        scope: Scope::Prefix,
        target: "198.18.0.0/24".into(),
        prefixes: vec!["198.18.0.0/24".parse().expect("net")],
        blocks_affected: 1,
        blocks_total: 1,
        ..blackout(start, end)
    };
    let mut sim = Sim::default();
    // The fault fell inside round 100: one prefix was dark for all of that
    // round's probes, the rest of the country from round 101 on.
    sim.pass(vec![prefix(100, None)], 101);
    let id = sim.rows[0].id;
    // The country's blackout reaches back over it; the core drops the
    // prefix's as explained. Its blocks are still dark: it stays open, and
    // takes the country's localization, which combines every round since.
    let localized = |end| core::Verdict {
        localization: Some(core::Localization {
            last_hop: Some("203.0.113.244".parse().expect("addr")),
            inside_target: false,
            vantage_points: vec!["a".into(), "b".into()],
            traces: 8,
            agreeing: 2,
            probe_errors: 0,
            probe_errors_agreeing: 0,
            working_paths: 0,
        }),
        ..blackout(100, end)
    };
    for last in 102..110 {
        let changes = sim.pass(vec![localized(None)], last);
        assert_eq!(sim.row(id).end_round, None, "pass ending {last}");
        if last > 102 {
            assert!(changes.verdicts.is_empty(), "pass ending {last} rewrote");
        }
    }
    assert_eq!(sim.row(id).localization, localized(None).localization);
    sim.pass(vec![localized(Some(110))], 111);
    assert_eq!(sim.row(id).end_round, Some(110), "ends with the country's");
    for last in 112..120 {
        sim.pass(vec![localized(Some(110))], last);
    }
    assert!(
        sim.counts().values().all(|&c| c == (1, 1)),
        "{:?}",
        sim.counts()
    );

    // A wider partial does not account for it: the prefix's verdict the data
    // no longer shows is closed.
    let mut sim = Sim::default();
    sim.pass(vec![prefix(100, None)], 101);
    let id = sim.rows[0].id;
    sim.pass(vec![verdict(Kind::Partial, 100, None)], 102);
    assert_eq!(sim.row(id).end_round, Some(103));
}
