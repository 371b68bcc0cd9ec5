//! One round of one campaign, sequenced without I/O (in the style of
//! quinn-proto and ntp-proto): [`RoundDriver`] decides what happens next —
//! take in what the discovery sweep found, start a sweep, wait for a
//! slice's start, probe a slice's blocks and the controls, traceroute,
//! report — and the daemon carries out each [`Action`] and hands the results
//! back as plain values. Time comes in as `now` (Unix ms) at
//! [`RoundDriver::poll`]; nothing here sleeps, spawns or touches a socket
//! or a file. The sequencing of a round was once 220 lines of `select!` in
//! the daemon, testable only with tokio, temporary directories and a
//! manual clock; here whole rounds are driven by tests with plain values.
//!
//! The driver sits between `campaign`'s pure pair: [`campaign::plan`]
//! opens the round and [`campaign::record`] turns its outcomes into report
//! batches; `schedule` says when each slice starts.
//!
//! The contract with whoever carries out the actions:
//! - an action is carried out before the next `poll`: a [`Action::Sweep`]
//!   is started, [`Action::FinishSweep`] waited out, and
//!   [`Action::Discover`] answered with [`RoundDriver::discovered`];
//! - [`Action::Probe`] and [`Action::Trace`] jobs run side by side and are
//!   answered with [`RoundDriver::complete`] whenever each finishes;
//! - [`Action::Wait`]: wait until its time (if any) or until a job
//!   finishes, whichever comes first, then poll again;
//! - [`Action::Report`]: spool its batches; [`Action::Done`]: the round is
//!   over (at once, without a report, when it was done already).

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use darkwatch_schema::phase::RoundSchedule;
use darkwatch_schema::{round_start_ms, BlockState, CampaignAssignment, ReportBatch, RoundInfo};
use ipnet::IpNet;

use crate::belief::{BlockErrors, BlockTracker, RoundOutcome};
use crate::campaign::{self, CampaignState, NoRound, Policy, RoundPlan, RoundResults, Sweep, Wire};
use crate::discovery::Progress;
use crate::metrics::RoundStats;
use crate::round::Probed;
use crate::schedule::{self, RoundTiming, SliceQueue};
use crate::trace::TraceResult;

/// How this agent runs its rounds (its configuration and mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// Slices a round is spread over (`schedule`).
    pub slices: u32,
    /// Let a running sweep finish before probing: `--once` (cron) has no
    /// next round in the same process to protect, so it sweeps to the end
    /// first (and probes in one slice).
    pub finish_sweep: bool,
    /// The longest one block's round may take (every probe timing out).
    pub worst_block_ms: u64,
    /// How the round's observations travel.
    pub wire: Wire,
    /// The collector takes the routers' ICMP errors to the probes.
    pub report_errors: bool,
    /// This VP's phase in the campaign, in slices (`schedule::phase_in`).
    pub phase: u32,
    /// The collector takes packed rounds' `schedule` (it assigns phases;
    /// an older one refuses the field).
    pub report_schedule: bool,
}

/// Which round of the campaign, and what runs already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundStart {
    pub round: u64,
    /// When the round was found due (Unix ms): the report's timestamp.
    pub started_ms: i64,
    /// A sweep of the campaign runs already (started in an earlier round).
    pub sweeping: bool,
}

/// Names a job the driver asked for, to hand its result back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(u32);

/// Probe these trackers (copies: discovery may update the originals while
/// they are probed; each outcome is applied to its original as it is then,
/// see [`RoundOutcome::apply_to`]).
#[derive(Debug, Clone)]
pub struct ProbeJob {
    pub id: JobId,
    pub trackers: Vec<BlockTracker>,
    /// Probes each block that answers gets at least.
    pub min_probes: u32,
    /// Seed of the probe order.
    pub seed: u64,
}

/// Traceroute these targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceJob {
    pub id: JobId,
    pub targets: Vec<IpAddr>,
}

/// What a job hands back.
#[derive(Debug)]
pub enum JobResult {
    Probed(Probed),
    Traced(Vec<TraceResult>),
}

/// The end of a round: what to spool, and what to log, count and show.
#[derive(Debug)]
pub struct RoundReport {
    pub batches: Vec<ReportBatch>,
    pub info: RoundInfo,
    pub stats: RoundStats,
    /// Blocks judged up.
    pub up: usize,
}

/// What the driver asks for next (see the module's docs for the contract).
#[derive(Debug)]
pub enum Action {
    /// Hand over what the running sweep found since it was last asked.
    Discover,
    /// Start a discovery sweep of this space beside the rounds (replacing
    /// any sweep still running).
    Sweep(Sweep),
    /// Wait until the running sweep has swept everything.
    FinishSweep,
    Probe(ProbeJob),
    Trace(TraceJob),
    /// Nothing to start: wait until `until` (ms; none: no deadline) or until
    /// a job finishes, whichever comes first.
    Wait {
        until: Option<i64>,
    },
    Report(Box<RoundReport>),
    Done,
}

/// Where the round is, in the order it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Take in a running sweep's findings before planning.
    Start,
    /// `campaign::plan`: the round is run or was done already.
    Plan,
    /// The planned sweep started; `--once` lets it finish.
    Sweep,
    /// Spread the blocks known now over the slices.
    Layout,
    /// Slice by slice, then until every job came back, then the report.
    Slices,
    Over,
}

/// What a job in flight was for.
#[derive(Debug)]
enum Job {
    /// The blocks' trackers at these indices.
    Blocks(Vec<u32>),
    Controls,
    Traces,
}

/// What a slice's start decided, in the order it leaves.
#[derive(Debug)]
enum Out {
    Go(JobId, Job, Action),
    /// Nothing after this leaves until every job in flight has come back.
    Barrier,
}

/// One round of one campaign (see the module's docs).
pub struct RoundDriver<'a> {
    c: &'a CampaignAssignment,
    st: &'a mut CampaignState,
    policy: &'a Policy,
    setup: Setup,
    round: u64,
    started_ms: i64,
    new_id: Box<dyn FnMut() -> String + Send + 'a>,
    stage: Stage,
    /// A sweep runs (as far as the driver was told).
    sweeping: bool,
    plan: Option<RoundPlan>,
    /// Blocks by slice, once laid out.
    queue: Option<SliceQueue>,
    /// Ms from the round's start over which slices start.
    span_ms: u64,
    /// When slice 0 starts.
    anchor_ms: i64,
    /// The slice that goes with the controls and the traceroutes.
    middle: u32,
    /// The slice whose findings were asked for last.
    asked: Option<u32>,
    outbox: VecDeque<Out>,
    pending: BTreeMap<JobId, Job>,
    next_job: u32,
    /// Blocks' outcomes by tracker index, applied when the round is over.
    slots: Vec<Option<RoundOutcome>>,
    controls: Vec<RoundOutcome>,
    errors: Vec<BlockErrors>,
    traces: Vec<TraceResult>,
    /// What discovery found during the round (for the census).
    found: BTreeMap<IpNet, Vec<IpAddr>>,
}

impl<'a> RoundDriver<'a> {
    /// Round `start.round` of `c` (which passed
    /// [`campaign::campaign_acceptable`]), over its state `st`. Report
    /// batches are named by `new_id`.
    pub fn new(
        c: &'a CampaignAssignment,
        st: &'a mut CampaignState,
        policy: &'a Policy,
        start: RoundStart,
        setup: Setup,
        new_id: Box<dyn FnMut() -> String + Send + 'a>,
    ) -> Self {
        RoundDriver {
            c,
            st,
            policy,
            setup,
            round: start.round,
            started_ms: start.started_ms,
            new_id,
            stage: Stage::Start,
            sweeping: start.sweeping,
            plan: None,
            queue: None,
            span_ms: 0,
            anchor_ms: start.started_ms,
            middle: 0,
            asked: None,
            outbox: VecDeque::new(),
            pending: BTreeMap::new(),
            next_job: 0,
            slots: Vec::new(),
            controls: Vec::new(),
            errors: Vec::new(),
            traces: Vec::new(),
            found: BTreeMap::new(),
        }
    }

    /// What to do next, at `now_ms`.
    pub fn poll(&mut self, now_ms: i64) -> Action {
        loop {
            match self.stage {
                Stage::Start => {
                    self.stage = Stage::Plan;
                    // What a sweep found after the last round's last slice
                    // (or all of it, if it ended then) is taken in before
                    // planning, so that a finished sweep is not mistaken
                    // for an interrupted one.
                    if self.sweeping {
                        return Action::Discover;
                    }
                }
                Stage::Plan => {
                    self.st.discovering = self.sweeping;
                    let mut plan = match campaign::plan(self.c, self.st, self.round, self.policy) {
                        Ok(p) => p,
                        Err(NoRound::Done) => {
                            self.stage = Stage::Over;
                            return Action::Done;
                        }
                    };
                    let sweep = plan.sweep.take();
                    self.plan = Some(plan);
                    self.stage = Stage::Sweep;
                    if let Some(sweep) = sweep {
                        self.sweeping = true;
                        self.st.discovering = true;
                        return Action::Sweep(sweep);
                    }
                }
                Stage::Sweep => {
                    self.stage = Stage::Layout;
                    if self.setup.finish_sweep && self.sweeping {
                        return Action::FinishSweep;
                    }
                }
                Stage::Layout => {
                    self.lay_out();
                    self.stage = Stage::Slices;
                }
                Stage::Slices => {
                    if let Some(a) = self.step(now_ms) {
                        return a;
                    }
                }
                Stage::Over => return Action::Done,
            }
        }
    }

    /// Folds what discovery found since it was last asked into the
    /// trackers and the round's census; blocks that became probeable join
    /// the round's slices. Ends the sweep once it is done.
    pub fn discovered(&mut self, p: Progress) {
        let st = &mut *self.st;
        campaign::merge_found(&mut st.control_trackers, &p.control);
        st.sets_changed |= !p.targets.is_empty() || !p.control.is_empty();
        for (block, addrs) in p.targets {
            let new = !st.trackers.contains_key(&block);
            // A block a rediscovery only sampled: its census (which the
            // collector replaces block by block) is the known set with
            // what the sample added, sent only if it added something.
            let sampled = st.sampled_blocks.binary_search(&block).is_ok();
            let news = st
                .trackers
                .get(&block)
                .is_none_or(|t| addrs.iter().any(|a| !t.responsive.contains(a)));
            campaign::merge_found(&mut st.trackers, &BTreeMap::from([(block, addrs.clone())]));
            // A new tracker goes after the others: the round's indices hold.
            if let (true, Some(i), Some(q)) = (new, st.trackers.index_of(&block), &mut self.queue) {
                q.join(i, &block);
            }
            match (sampled, st.trackers.get(&block)) {
                (false, _) => {
                    self.found.insert(block, addrs);
                }
                (true, Some(t)) if news && !addrs.is_empty() => {
                    self.found.insert(block, t.responsive.iter().collect());
                }
                (true, _) => {}
            }
        }
        if p.done {
            st.discovery_pending = false;
            st.discovering = false;
            self.sweeping = false;
            tracing::info!(
                campaign = %self.c.name,
                tracked = st.trackers.len(),
                controls = st.control_trackers.len(),
                "discovery done"
            );
        }
    }

    /// Takes the result of job `id` (a job not asked for is ignored).
    pub fn complete(&mut self, id: JobId, result: JobResult) {
        let Some(job) = self.pending.remove(&id) else {
            return;
        };
        match (job, result) {
            // Blocks' outcomes are applied once the round is over, by
            // index (`Trackers::finish_round`); the few controls' at once.
            (Job::Controls, JobResult::Probed(p)) => {
                for (_, out) in p.outcomes {
                    if let Some(cur) = self.st.control_trackers.get_mut(&out.block) {
                        out.apply_to(cur);
                    }
                    self.controls.push(out);
                }
            }
            (Job::Blocks(indices), JobResult::Probed(p)) => {
                for (pos, out) in p.outcomes {
                    let i = indices[pos as usize] as usize;
                    if i >= self.slots.len() {
                        self.slots.resize(i + 1, None);
                    }
                    self.slots[i] = Some(out);
                }
                self.errors.extend(p.errors);
            }
            (Job::Traces, JobResult::Traced(t)) => self.traces = t,
            (job, _) => debug_assert!(false, "the wrong result for {job:?}"),
        }
    }

    /// Jobs in flight.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Spreads the round's blocks (by the index of their trackers: `plan`
    /// settled them) over its slices.
    fn lay_out(&mut self) {
        let interval_ms = self.c.interval_secs.saturating_mul(1000);
        self.span_ms = schedule::span_ms(interval_ms, self.setup.worst_block_ms);
        // Slices keep to the round's boundaries: a round started late (a
        // busy agent, a restart) takes the slices already due at once.
        self.anchor_ms = round_start_ms(self.round, self.c.interval_secs).min(self.started_ms);
        let st = &*self.st;
        self.queue = Some(SliceQueue::new(
            self.setup.slices,
            self.setup.phase,
            st.trackers.indexed().map(|(i, t)| (i, &t.block)),
        ));
        self.slots = vec![None; st.trackers.len()];
        // Controls and traceroutes go with the first slice, before this
        // round's probes to silent blocks draw on the routers' ICMP error
        // budgets (a border that rate-limits its unreachables would answer
        // the probes and not the traces); with the middle slice while a
        // sweep runs, once its first findings are in.
        self.middle = if st.discovering {
            self.setup.slices / 2
        } else {
            0
        };
    }

    /// The next action of the slices' stage; `None` to look again.
    fn step(&mut self, now_ms: i64) -> Option<Action> {
        while let Some(out) = self.outbox.pop_front() {
            match out {
                Out::Barrier if !self.pending.is_empty() => {
                    self.outbox.push_front(Out::Barrier);
                    return Some(Action::Wait { until: None });
                }
                Out::Barrier => {}
                Out::Go(id, job, action) => {
                    self.pending.insert(id, job);
                    return Some(action);
                }
            }
        }
        let queue = self.queue.as_ref().expect("laid out");
        let k = queue.next_slice();
        if k < self.setup.slices {
            let due = self.anchor_ms
                + schedule::slice_start_ms(k, self.setup.slices, self.span_ms) as i64;
            if now_ms < due {
                return Some(Action::Wait { until: Some(due) });
            }
            if self.sweeping && self.asked != Some(k) {
                self.asked = Some(k);
                return Some(Action::Discover);
            }
            self.take_slice();
            return None;
        }
        if !self.pending.is_empty() {
            return Some(Action::Wait { until: None });
        }
        self.stage = Stage::Over;
        Some(Action::Report(Box::new(self.finish(now_ms))))
    }

    fn job_id(&mut self) -> JobId {
        self.next_job += 1;
        JobId(self.next_job)
    }

    /// Takes the next slice's blocks and decides its jobs.
    fn take_slice(&mut self) {
        let Some((k, indices)) = self.queue.as_mut().and_then(SliceQueue::take) else {
            return;
        };
        let seed = self.plan.as_ref().map_or(0, |p| p.seed);
        if k == self.middle {
            let targets = campaign::trace_targets(self.c, self.st, self.round, self.policy);
            if !targets.is_empty() {
                let first = self.pending.is_empty();
                let id = self.job_id();
                let trace = Action::Trace(TraceJob { id, targets });
                self.outbox.push_back(Out::Go(id, Job::Traces, trace));
                if first {
                    // Nothing in flight yet: trace before this slice's
                    // probes leave, so that they do not queue behind them
                    // at the rate limiter and reach a dark prefix's border
                    // after its ICMP errors went to the probes.
                    self.outbox.push_back(Out::Barrier);
                }
            }
            let controls: Vec<BlockTracker> = self.st.control_trackers.values().cloned().collect();
            if !controls.is_empty() {
                let id = self.job_id();
                let probe = Action::Probe(ProbeJob {
                    id,
                    trackers: controls,
                    min_probes: 1,
                    seed,
                });
                self.outbox.push_back(Out::Go(id, Job::Controls, probe));
            }
        }
        if indices.is_empty() {
            return;
        }
        let trackers = indices
            .iter()
            .map(|&i| self.st.trackers.at(i).clone())
            .collect();
        // The campaign's minimum of probes is shared by the blocks tracked
        // now: while a sweep runs, blocks join during the round, and the
        // count at its start (none, in the first round) would give each of
        // them the whole minimum.
        let min_probes =
            campaign::min_probes_per_block(self.policy.min_campaign_probes, self.st.trackers.len())
                .min(self.plan.as_ref().map_or(u32::MAX, |p| p.min_probes));
        let id = self.job_id();
        let probe = Action::Probe(ProbeJob {
            id,
            trackers,
            min_probes,
            seed,
        });
        self.outbox
            .push_back(Out::Go(id, Job::Blocks(indices), probe));
    }

    /// Ends the round at `now_ms`: outcomes applied, the round recorded
    /// in the state and its batches built.
    fn finish(&mut self, now_ms: i64) -> RoundReport {
        let mut controls = std::mem::take(&mut self.controls);
        controls.sort_unstable_by_key(|o| o.block);
        // Blocks whose state the round changed are swept fully next
        // (see `rediscovery`).
        let changed = self.st.trackers.changed_by(&self.slots);
        self.st.state_changed.extend(changed);
        self.st.state_changed.sort_unstable();
        self.st.state_changed.dedup();
        let outcomes = self
            .st
            .trackers
            .finish_round(std::mem::take(&mut self.slots));
        let timing = RoundTiming {
            round: self.round,
            interval_secs: self.c.interval_secs,
            started_ms: self.started_ms,
            ended_ms: now_ms,
            blocks: outcomes.iter().filter(|o| o.probes > 0).count() as u64,
            probes: outcomes
                .iter()
                .chain(&controls)
                .map(|o| u64::from(o.probes))
                .sum(),
        };
        let info = timing.info(&self.c.name);
        let results = RoundResults {
            outcomes,
            controls,
            errors: std::mem::take(&mut self.errors),
            traces: std::mem::take(&mut self.traces),
            found: std::mem::take(&mut self.found),
            info: Some(info.clone()),
            report_errors: self.setup.report_errors,
        };
        let stats = RoundStats::of(&results, &self.st.skipped, now_ms);
        let up = results
            .outcomes
            .iter()
            .filter(|o| o.probes > 0 && o.state == BlockState::Up)
            .count();
        let plan = self.plan.take().expect("planned before the slices");
        let mut batches = campaign::record(
            self.c,
            self.st,
            &plan,
            results,
            self.started_ms,
            self.setup.wire,
            &mut *self.new_id,
        );
        // Packed rounds say once when their slices started, so that the
        // collector times each block to its slice.
        let schedule = RoundSchedule {
            anchor_ms: self.anchor_ms,
            span_ms: self.span_ms,
            slices: self.setup.slices,
            phase: self.setup.phase,
        };
        if self.setup.report_schedule {
            for p in batches.iter_mut().flat_map(|b| &mut b.packed) {
                p.schedule = Some(schedule);
            }
        }
        RoundReport {
            batches,
            info,
            stats,
            up,
        }
    }
}

#[cfg(test)]
mod tests;
