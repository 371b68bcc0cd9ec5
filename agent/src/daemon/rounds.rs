//! Carrying out a round: the daemon's side of [`RoundDriver`]. The driver
//! decides what the round does next; this loop does it (a sweep on a
//! background task, probes and traceroutes as futures of the round's task,
//! waits on tokio's clock), hands the results back, and once the round is
//! over spools its batches and saves the campaign's state. Apart from the
//! rest of the daemon (assignments, the schedule of rounds, the sender)
//! because it is the part that runs inside one round.

use std::time::Duration;

use anyhow::{Context, Result};
use darkwatch_schema::{Assignments, CampaignAssignment, RoundInfo};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::time::Instant;

use super::{new_batch_id, save_json, Agent, CampaignRun, Due, Mode};
use crate::discovery::Background;
use crate::driver::{
    Action, JobId, JobResult, ProbeJob, RoundDriver, RoundReport, RoundStart, Setup, TraceJob,
};
use crate::trace::{TraceOptions, TraceResult};
use crate::ProbeSettings;

impl Agent {
    /// Runs round `due` of its campaign in `a` as [`RoundDriver`] says, and
    /// spools its batches. Returns how the round went, if one was run.
    pub(super) async fn campaign_round(
        &self,
        a: &Assignments,
        due: Due,
        mode: Mode,
    ) -> Result<Option<RoundInfo>> {
        let c = &a.campaigns[due.index];
        let files = self.state_files(&c.name);
        let run = self.run_of(&c.name);
        let mut run = run.lock().await;
        let CampaignRun { st, discovery } = &mut *run;
        let st = st.get_or_insert_with(|| crate::state::load(&files));
        // The driver's clock: the round's start, then tokio's clock, which
        // paces the slices (and which tests pause).
        let t0 = Instant::now();
        let now = || due.started_ms + t0.elapsed().as_millis() as i64;
        let at =
            |ms: i64| t0 + Duration::from_millis(ms.saturating_sub(due.started_ms).max(0) as u64);
        let (wire, report_errors) = *self.wire.lock().unwrap_or_else(|e| e.into_inner());
        let slices = match mode {
            Mode::Daemon => self.cfg.probe.slices,
            Mode::Once => 1,
        };
        let setup = Setup {
            slices,
            finish_sweep: mode == Mode::Once,
            worst_block_ms: self.settings.timeout.as_millis() as u64
                * u64::from(self.settings.max_probes),
            wire,
            report_errors,
            phase: crate::schedule::phase_in(a, &c.name, slices),
            report_schedule: a.phases.contains_key(&c.name),
        };
        let mut driver = RoundDriver::new(
            c,
            st,
            &self.policy,
            RoundStart {
                round: due.round,
                started_ms: due.started_ms,
                sweeping: discovery.is_some(),
            },
            setup,
            Box::new(new_batch_id),
        );
        let mut running: FuturesUnordered<BoxFuture<'_, (JobId, JobResult)>> =
            FuturesUnordered::new();
        let mut info = None;
        // The round's process CPU, and whether a sweep ran beside it
        // (rediscovery's cost, for the metrics).
        let cpu0 = crate::metrics::process_cpu_secs();
        let mut sweeping = discovery.is_some();
        loop {
            match driver.poll(now()) {
                Action::Discover => {
                    let p = discovery.as_ref().map(Background::take).unwrap_or_default();
                    if p.done {
                        *discovery = None;
                    }
                    driver.discovered(p);
                }
                Action::Sweep(sweep) => {
                    sweeping = true;
                    tracing::info!(campaign = %c.name, round = due.round, "discovery starts");
                    *discovery = Some(Background::spawn(
                        self.pinger.clone(),
                        self.discovery_limiter.clone(),
                        sweep.targets,
                        sweep.control,
                        self.settings.clone(),
                        due.round,
                    ));
                }
                Action::FinishSweep => {
                    if let Some(bg) = discovery.as_ref() {
                        crate::discovery::wait_done(bg, Duration::from_millis(100)).await;
                    }
                }
                Action::Probe(job) => running.push(self.probe(job)),
                Action::Trace(TraceJob { id, targets }) => running.push(Box::pin(async move {
                    (id, JobResult::Traced(self.traces(targets).await))
                })),
                Action::Wait { until } => {
                    let done = match until {
                        Some(t) => tokio::select! {
                            _ = tokio::time::sleep_until(at(t)) => None,
                            Some(d) = running.next() => Some(d),
                        },
                        None => Some(running.next().await.context("the round waits for no job")?),
                    };
                    if let Some((id, result)) = done {
                        driver.complete(id, result);
                    }
                }
                Action::Report(report) => info = Some(self.spool_round(c, *report)?),
                Action::Done => break,
            }
        }
        drop(driver);
        let Some(info) = info else {
            return Ok(None);
        };
        if let (Some(a), Some(b)) = (cpu0, crate::metrics::process_cpu_secs()) {
            let cpu_secs = (b - a).max(0.0);
            tracing::info!(campaign = %c.name, round = due.round, cpu_secs, sweeping, "round CPU");
            self.metrics.round_cpu(&c.name, cpu_secs, sweeping);
        }
        crate::state::save(&files, st)
            .with_context(|| format!("saving the state of {}", c.name))?;
        let rounds = {
            let mut last = self.last_rounds.lock().unwrap_or_else(|e| e.into_inner());
            last.insert(c.name.clone(), info.clone());
            last.clone()
        };
        if let Err(e) = save_json(&self.state_dir.join("rounds.json"), &rounds) {
            tracing::warn!(error = %e, "cannot write the round status");
        }
        Ok(Some(info))
    }

    /// Logs the round's end, spools its batches and counts it.
    fn spool_round(&self, c: &CampaignAssignment, report: RoundReport) -> Result<RoundInfo> {
        let RoundReport {
            batches,
            info,
            stats,
            up,
        } = report;
        let traced: usize = batches.iter().map(|b| b.traces.len()).sum();
        // Replies the kernel dropped on the rounds' socket so far (a full
        // receive buffer): lost replies make blocks be probed again.
        let receive_drops = self.pinger.receive_drops();
        tracing::info!(campaign = %c.name, round = info.round, blocks = info.blocks, probes = info.probes, up,
            traces = traced, on_time = info.on_time, took_ms = info.ended_ms - info.started_ms, receive_drops,
            "round done");
        if !info.on_time {
            tracing::warn!(campaign = %c.name, round = info.round, "round ended after the next one began");
        }
        if batches.iter().any(|b| !b.packed.is_empty()) {
            self.spool.remember_space(&c.prefixes)?;
        }
        for batch in &batches {
            let dropped = self.spool.push(batch)?;
            if dropped > 0 {
                tracing::warn!(dropped, "spool full: dropped the oldest batches");
            }
        }
        self.metrics.round_done(&c.name, &stats);
        Ok(info)
    }

    /// Probes the job's trackers.
    fn probe(&self, job: ProbeJob) -> BoxFuture<'_, (JobId, JobResult)> {
        Box::pin(async move {
            let ProbeJob {
                id,
                mut trackers,
                min_probes,
                seed,
            } = job;
            let settings = ProbeSettings {
                min_probes,
                ..self.settings.clone()
            };
            let probed = crate::round::run_trackers(
                &mut trackers,
                self.pinger.as_ref(),
                self.limiter.as_ref(),
                &settings,
                seed,
            )
            .await;
            (id, JobResult::Probed(probed))
        })
    }

    async fn traces(&self, targets: Vec<std::net::IpAddr>) -> Vec<TraceResult> {
        let opts = TraceOptions {
            max_ttl: self.cfg.trace.max_ttl,
            rounds: self.cfg.trace.rounds,
            max_round: Duration::from_millis(self.cfg.trace.max_round_ms),
            ..TraceOptions::default()
        };
        let runs = targets.into_iter().map(|t| {
            let opts = &opts;
            async move { (t, self.tracer.trace(t, opts, Some(&self.limiter)).await) }
        });
        let mut out = Vec::new();
        for (target, res) in futures::future::join_all(runs).await {
            match res {
                Ok(r) => out.push(r),
                Err(e) => tracing::warn!(%target, error = %e, "traceroute failed"),
            }
        }
        out
    }
}
