//! An in-memory store behind the loop's edges, for tests: campaigns and
//! raw rounds put in by hand, verdicts, faults, summary writes and leases
//! kept in maps, and reads of chosen campaigns made to fail. Leases follow
//! the SQL store's rules (taken if free, expired or already held).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::sync::{Mutex, MutexGuard};

use super::edges::{RoundSource, StoredRounds, SummaryWrite, VerdictSink};
use crate::store::{Campaign, StoreError, StoredSpace, Verdict, VpFault};

/// One summary write the sink received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRecord {
    pub campaign: String,
    pub window: RangeInclusive<u64>,
    /// Rounds of the window with data (a nonzero digest).
    pub rounds: usize,
}

#[derive(Default)]
struct Inner {
    campaigns: BTreeMap<String, Campaign>,
    rounds: BTreeMap<String, StoredRounds>,
    spaces: BTreeMap<String, Vec<StoredSpace>>,
    verdicts: Vec<Verdict>,
    faults: Vec<VpFault>,
    summaries: Vec<SummaryRecord>,
    /// Lease name -> (holder, expiry).
    leases: BTreeMap<String, (String, i64)>,
    failing: BTreeSet<String>,
    next_id: i64,
}

/// A [`RoundSource`] and [`VerdictSink`] in memory.
#[derive(Default)]
pub struct MemoryStore(Mutex<Inner>);

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds or replaces a campaign.
    pub fn put_campaign(&self, c: Campaign) {
        self.lock().campaigns.insert(c.name.clone(), c);
    }

    /// Adds reports of `campaign` (any rounds).
    pub fn add_rounds(&self, campaign: &str, more: StoredRounds) {
        let mut g = self.lock();
        let r = g.rounds.entry(campaign.to_string()).or_default();
        r.rows.extend(more.rows);
        r.records.extend(more.records);
        r.control.extend(more.control);
        r.traces.extend(more.traces);
        r.probe_errors.extend(more.probe_errors);
    }

    /// Adds a block space of `campaign` (how its packed records decode).
    pub fn add_space(&self, campaign: &str, space: StoredSpace) {
        let mut g = self.lock();
        g.spaces
            .entry(campaign.to_string())
            .or_default()
            .push(space);
    }

    /// Makes every read of `campaign`'s stored rounds fail (a database
    /// error in the middle of a pass: after its state was built).
    pub fn set_failing(&self, campaign: &str, failing: bool) {
        let mut g = self.lock();
        if failing {
            g.failing.insert(campaign.to_string());
        } else {
            g.failing.remove(campaign);
        }
    }

    /// The verdicts written for `campaign`.
    pub fn verdicts(&self, campaign: &str) -> Vec<Verdict> {
        let g = self.lock();
        g.verdicts
            .iter()
            .filter(|v| v.campaign == campaign)
            .cloned()
            .collect()
    }

    /// The summary writes received, in order.
    pub fn summary_writes(&self) -> Vec<SummaryRecord> {
        self.lock().summaries.clone()
    }

    /// Who holds lease `name` unexpired at `now_ms`.
    pub fn lease_holder(&self, name: &str, now_ms: i64) -> Option<String> {
        let g = self.lock();
        g.leases
            .get(name)
            .filter(|(_, exp)| *exp >= now_ms)
            .map(|(h, _)| h.clone())
    }

    fn read(&self, campaign: &str) -> Result<MutexGuard<'_, Inner>, StoreError> {
        let g = self.lock();
        if g.failing.contains(campaign) {
            return Err(StoreError::Unavailable(format!("{campaign}: reads fail")));
        }
        Ok(g)
    }
}

/// Writes `items` as the SQL store does: id 0 inserts with a new id, any
/// other id replaces that row. `id` reads a row's id, `set` assigns one.
fn upsert<T: Clone>(
    rows: &mut Vec<T>,
    next_id: &mut i64,
    items: &[T],
    id: fn(&T) -> i64,
    set: fn(&mut T, i64),
) -> Vec<i64> {
    items
        .iter()
        .map(|item| {
            let mut item = item.clone();
            if id(&item) == 0 {
                *next_id += 1;
                set(&mut item, *next_id);
            }
            let key = id(&item);
            match rows.iter().position(|r| id(r) == key) {
                Some(i) => rows[i] = item,
                None => rows.push(item),
            }
            key
        })
        .collect()
}

impl RoundSource for MemoryStore {
    async fn read_campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        Ok(self.lock().campaigns.values().cloned().collect())
    }

    async fn reporting_agents(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let g = self.lock();
        let Some(r) = g.rounds.get(campaign) else {
            return Ok(Vec::new());
        };
        let seen: BTreeSet<(u64, String)> = r
            .rows
            .iter()
            .map(|o| (o.obs.round, o.agent.clone()))
            .chain(r.records.iter().map(|x| (x.round, x.agent.clone())))
            .filter(|(round, _)| rounds.contains(round))
            .collect();
        Ok(seen.into_iter().collect())
    }

    async fn round_fingerprints(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> Result<Vec<(u64, u64)>, StoreError> {
        let g = self.lock();
        let mut n: BTreeMap<u64, u64> = BTreeMap::new();
        if let Some(r) = g.rounds.get(campaign) {
            let all = r
                .rows
                .iter()
                .chain(&r.control)
                .map(|o| o.obs.round)
                .chain(r.records.iter().map(|x| x.round))
                .chain(r.traces.iter().map(|t| t.trace.round))
                .chain(r.probe_errors.iter().map(|p| p.errors.round));
            for round in all.filter(|x| rounds.contains(x)) {
                *n.entry(round).or_default() += 1;
            }
        }
        Ok(n.into_iter().collect())
    }

    async fn stored_rounds(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> Result<StoredRounds, StoreError> {
        let g = self.read(campaign)?;
        let Some(r) = g.rounds.get(campaign) else {
            return Ok(StoredRounds::default());
        };
        let within = |round: &u64| rounds.contains(round);
        Ok(StoredRounds {
            rows: r
                .rows
                .iter()
                .filter(|o| within(&o.obs.round))
                .cloned()
                .collect(),
            records: r
                .records
                .iter()
                .filter(|x| within(&x.round))
                .cloned()
                .collect(),
            control: r
                .control
                .iter()
                .filter(|o| within(&o.obs.round))
                .cloned()
                .collect(),
            traces: r
                .traces
                .iter()
                .filter(|t| within(&t.trace.round))
                .cloned()
                .collect(),
            probe_errors: r
                .probe_errors
                .iter()
                .filter(|p| within(&p.errors.round))
                .cloned()
                .collect(),
        })
    }

    async fn campaign_spaces(&self, campaign: &str) -> Result<Vec<StoredSpace>, StoreError> {
        let g = self.lock();
        Ok(g.spaces.get(campaign).cloned().unwrap_or_default())
    }

    async fn stored_verdicts(&self, campaign: &str) -> Result<Vec<Verdict>, StoreError> {
        Ok(self.verdicts(campaign))
    }

    async fn stored_vp_faults(&self, campaign: &str) -> Result<Vec<VpFault>, StoreError> {
        let g = self.lock();
        Ok(g.faults
            .iter()
            .filter(|f| f.campaign == campaign)
            .cloned()
            .collect())
    }
}

impl VerdictSink for MemoryStore {
    async fn write_verdicts(&self, vs: &[Verdict]) -> Result<Vec<i64>, StoreError> {
        let mut g = self.lock();
        let Inner {
            verdicts, next_id, ..
        } = &mut *g;
        Ok(upsert(verdicts, next_id, vs, |v| v.id, |v, id| v.id = id))
    }

    async fn write_vp_faults(&self, fs: &[VpFault]) -> Result<(), StoreError> {
        let mut g = self.lock();
        let Inner {
            faults, next_id, ..
        } = &mut *g;
        upsert(faults, next_id, fs, |f| f.id, |f, id| f.id = id);
        Ok(())
    }

    async fn write_summaries(&self, s: SummaryWrite<'_>) -> Result<usize, StoreError> {
        let rounds = s.digests.iter().filter(|d| **d != 0).count();
        self.lock().summaries.push(SummaryRecord {
            campaign: s.campaign.name.clone(),
            window: s.window,
            rounds,
        });
        Ok(rounds)
    }

    async fn purge_raw_rounds(
        &self,
        campaign: &str,
        before_round: u64,
        limit: u64,
    ) -> Result<u64, StoreError> {
        fn purge<T>(v: &mut Vec<T>, limit: u64, old: impl Fn(&T) -> bool) -> u64 {
            let mut n = 0;
            v.retain(|x| {
                let go = n < limit && old(x);
                n += u64::from(go);
                !go
            });
            n
        }
        let mut g = self.lock();
        let Some(r) = g.rounds.get_mut(campaign) else {
            return Ok(0);
        };
        let b = before_round;
        Ok(purge(&mut r.rows, limit, |o| o.obs.round < b)
            + purge(&mut r.records, limit, |x| x.round < b)
            + purge(&mut r.control, limit, |o| o.obs.round < b)
            + purge(&mut r.traces, limit, |t| t.trace.round < b)
            + purge(&mut r.probe_errors, limit, |p| p.errors.round < b))
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut g = self.lock();
        let free = g
            .leases
            .get(name)
            .is_none_or(|(h, exp)| h == holder || *exp < now_ms);
        if free {
            g.leases.insert(
                name.to_string(),
                (holder.to_string(), now_ms.saturating_add(ttl_ms)),
            );
        }
        Ok(free)
    }

    async fn hand_back_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let mut g = self.lock();
        if g.leases.get(name).is_some_and(|(h, _)| h == holder) {
            g.leases.remove(name);
        }
        Ok(())
    }

    async fn lease_holders(&self, prefix: &str, now_ms: i64) -> Result<Vec<String>, StoreError> {
        let g = self.lock();
        let holders: BTreeSet<String> = g
            .leases
            .iter()
            .filter(|(name, (_, exp))| name.starts_with(prefix) && *exp >= now_ms)
            .map(|(_, (h, _))| h.clone())
            .collect();
        Ok(holders.into_iter().collect())
    }
}
