//! A whole window at once: [`crate::correlate`]'s [`Input`] given to a
//! fresh engine, round by round.
//!
//! This is the oracle the engine's incremental updates are tested against,
//! and what callers with a window in hand use. The observations are grouped
//! by round and VP first (a counting sort of their indices: 4 bytes each,
//! the input itself is 32), so that each VP's row of a round is given at
//! once ([`crate::incremental::RoundInput::observe_all`]).

use std::collections::BTreeMap;

use crate::{CorrelateError, Incremental, Input, Output, Params};

/// [`crate::try_correlate`] once the window and its size are checked.
pub(crate) fn correlate(input: &Input, params: &Params) -> Result<Output, CorrelateError> {
    let (first, last) = (input.first_round, input.last_round);
    let mut engine = Incremental::new(input, params)?;
    engine.set_window(first, last)?;
    let nv = input.vps.len();
    for name in &input.vps {
        engine.vp_id(name);
    }
    if u32::try_from(input.obs.len()).is_err() {
        // Indices are u32 (128 GiB of observations).
        return Err(CorrelateError::TooLarge {
            rounds: last - first + 1,
            vps: nv,
            blocks: input.blocks.len(),
            limit: crate::cells::MAX_CELLS,
        });
    }
    let mut skipped = 0;
    // `[round * vps + vp]` groups of observation indices.
    let key = |round: u64, vp: u32| -> Option<usize> {
        let r = round.checked_sub(first).filter(|_| round <= last)?;
        ((vp as usize) < nv).then(|| r as usize * nv + vp as usize)
    };
    let groups = input
        .obs
        .iter()
        .filter_map(|o| key(o.round, o.vp))
        .max()
        .map_or(0, |k| k + 1);
    let mut start = vec![0u32; groups + 1];
    for o in &input.obs {
        match key(o.round, o.vp) {
            Some(k) => start[k + 1] += 1,
            None => skipped += 1,
        }
    }
    for k in 0..groups {
        start[k + 1] += start[k];
    }
    let mut next = start.clone();
    let mut order = vec![0u32; start[groups] as usize];
    for (i, o) in input.obs.iter().enumerate() {
        if let Some(k) = key(o.round, o.vp) {
            order[next[k] as usize] = i as u32;
            next[k] += 1;
        }
    }
    let mut control: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, c) in input.control.iter().enumerate() {
        match key(c.round, c.vp) {
            Some(_) => control.entry(c.round).or_default().push(i),
            None => skipped += 1,
        }
    }
    let mut rounds: Vec<u64> = (0..groups)
        .filter(|&k| start[k + 1] > start[k])
        .map(|k| first + (k / nv) as u64)
        .chain(control.keys().copied())
        .collect();
    rounds.sort_unstable();
    rounds.dedup();
    for round in rounds {
        let mut ri = engine.round(round);
        let ids: Vec<u32> = input.vps.iter().map(|n| ri.vp(n)).collect();
        let r = (round - first) as usize;
        for (v, &id) in ids.iter().enumerate() {
            let k = r * nv + v;
            if k >= groups {
                break;
            }
            let group = &order[start[k] as usize..start[k + 1] as usize];
            if group.is_empty() {
                continue;
            }
            ri.observe_all(
                id,
                group.iter().map(|&i| {
                    let o = &input.obs[i as usize];
                    (o.block, o.state, o.probes, o.replies)
                }),
            );
        }
        for &i in control.get(&round).map_or(&[][..], Vec::as_slice) {
            let c = &input.control[i];
            ri.control(ids[c.vp as usize], c.state);
        }
        ri.finish();
    }
    // VP ids are the input's; localization reads every trace and error.
    let evidence = (&input.traces[..], &input.probe_errors[..]);
    let mut out = engine.output_for(Some(&input.vps), Some(evidence));
    out.skipped_observations += skipped;
    Ok(out)
}
