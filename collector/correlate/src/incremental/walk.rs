//! Stage 1 to 2 over the window: bringing every round's consensus product
//! up to date, recomputing only the rounds whose inputs changed.
//!
//! A product depends on its round's data, the round's health row and its
//! flaps; the flaps depend on every (VP, block)'s last judged state before
//! the round. The walk (see the `incremental` module docs for why it is
//! exact) carries those last states through the window: in full from the
//! earliest change, then only at the positions that may still differ
//! ("D-mode"), then from the kept tail for new rounds.

use std::collections::HashMap;

use super::input::RoundRaw;
use super::row::Row;
use super::{at_least, Incremental, Slot};
use crate::cells::{DOWN, NONE, STATE, UP};
use crate::consensus::{round_product, Product};

impl Incremental {
    /// Brings every product of the window up to date (see the module docs).
    pub(super) fn walk(&mut self, healthy_of: &dyn Fn(u64) -> Vec<bool>) {
        let (first, last, nb) = (self.first, self.last, self.nb);
        let nvi = self.vp_names.len();
        let mut recomputed = 0;
        let rounds: Vec<u64> = self.slots.range(first..=last).map(|x| *x.0).collect();
        let health: HashMap<u64, Vec<bool>> = rounds.iter().map(|&r| (r, healthy_of(r))).collect();
        if let Some((_, at, t)) = self.tail.as_mut() {
            if *at != nb {
                // Blocks were added: the same states, laid out anew.
                let mut grown = vec![NONE; nvi * nb];
                // None known before (a campaign's first rounds may come
                // before its agents found any block): nothing to carry.
                if *at > 0 {
                    for (v, old) in t.chunks(*at).enumerate().take(nvi) {
                        grown[v * nb..v * nb + old.len()].copy_from_slice(old);
                    }
                }
                *t = grown;
                *at = nb;
            }
        }
        let tail_round = self.tail.as_ref().map(|t| t.0);
        let changed = |s: &Slot, h: &[bool]| {
            s.dirty
                || s.product
                    .as_ref()
                    .is_none_or(|p| !same_health(&p.healthy, h))
        };
        // Rounds walked before (up to the tail) and which of them changed.
        let old: Vec<u64> = match tail_round {
            Some(t) => rounds.iter().copied().filter(|&r| r <= t).collect(),
            None => vec![],
        };
        let changed_old: Vec<u64> = old
            .iter()
            .copied()
            .filter(|r| changed(&self.slots[r], &health[r]))
            .collect();
        let slide = self.walked_first != Some(first);
        let mut cur = vec![NONE; nvi * nb];
        if tail_round.is_some() {
            let mut i = 0;
            if let (Some(&s), Some(&e)) = (changed_old.first(), changed_old.last()) {
                // Full mode from the window start (slid) or the first change.
                let start = if slide {
                    first
                } else {
                    self.last_states_before(s, &health, &mut cur);
                    s
                };
                while i < old.len() && old[i] < start {
                    i += 1;
                }
                while i < old.len() && old[i] <= e {
                    let r = old[i];
                    let h = &health[&r];
                    let slot = &self.slots[&r];
                    let flaps = full_flaps(&slot.raw, h, &mut cur, nb);
                    let stale =
                        changed(slot, h) || slot.product.as_ref().is_none_or(|p| p.flaps != flaps);
                    if stale {
                        let p = self.product(r, h, flaps);
                        self.slots.get_mut(&r).expect("round").product = Some(p);
                        recomputed += 1;
                    }
                    i += 1;
                }
            } else if !slide {
                // Nothing changed among the walked rounds: the tail stands.
                i = old.len();
            }
            // D-mode over the rest of the walked rounds.
            let words = nb.div_ceil(64);
            let mut d: Vec<Vec<u64>> = vec![full_bits(nb, words); nvi];
            let mut d_count = vec![nb; nvi];
            if i == old.len() && changed_old.is_empty() && !slide {
                d_count.fill(0);
            }
            while i < old.len() && d_count.iter().any(|&c| c > 0) {
                let r = old[i];
                let h = &health[&r];
                let slot = &self.slots[&r];
                let product = slot.product.as_ref().expect("walked");
                let mut new_flaps: Option<Vec<Vec<u32>>> = None;
                for v in 0..nvi {
                    if d_count[v] == 0 || !h.get(v).copied().unwrap_or(false) {
                        continue;
                    }
                    let Some(row) = slot.raw.row(v) else { continue };
                    let mut qualified = Vec::new();
                    let mut flapped = Vec::new();
                    for (w, word) in d[v].iter_mut().enumerate() {
                        let mut bits = *word;
                        while bits != 0 {
                            let b = w * 64 + bits.trailing_zeros() as usize;
                            bits &= bits - 1;
                            let s = cell(row, b);
                            if s == UP || s == DOWN {
                                let p = v * nb + b;
                                if cur[p] != NONE && cur[p] != s {
                                    flapped.push(b as u32);
                                }
                                cur[p] = s;
                                qualified.push(b as u32);
                                *word &= !(1u64 << (b % 64));
                            }
                        }
                    }
                    d_count[v] -= qualified.len();
                    if qualified.is_empty() {
                        continue;
                    }
                    let old_v = product.flaps.get(v).map(Vec::as_slice).unwrap_or(&[]);
                    let mut merged: Vec<u32> = old_v
                        .iter()
                        .copied()
                        .filter(|b| qualified.binary_search(b).is_err())
                        .chain(flapped)
                        .collect();
                    merged.sort_unstable();
                    if merged != old_v {
                        let nf = new_flaps.get_or_insert_with(|| {
                            let mut f = product.flaps.clone();
                            at_least(&mut f, nvi, Vec::new());
                            f
                        });
                        nf[v] = merged;
                    }
                }
                if let Some(flaps) = new_flaps {
                    let p = self.product(r, h, flaps);
                    self.slots.get_mut(&r).expect("round").product = Some(p);
                    recomputed += 1;
                }
                i += 1;
            }
            // The new tail: the old one, except where D still holds.
            let (_, _, tail) = self.tail.as_mut().expect("tail");
            at_least(tail, nvi * nb, NONE);
            for v in 0..nvi {
                if d_count[v] == 0 {
                    continue;
                }
                for (w, &word) in d[v].iter().enumerate() {
                    let mut bits = word;
                    while bits != 0 {
                        let b = w * 64 + bits.trailing_zeros() as usize;
                        bits &= bits - 1;
                        tail[v * nb + b] = cur[v * nb + b];
                    }
                }
            }
            if old.is_empty() {
                // Nothing walked is left in the window: no last states.
                tail.fill(NONE);
            }
            cur = std::mem::take(tail);
        }
        // New rounds: full mode from the tail.
        let mut tail_round = self.tail.as_ref().map(|t| t.0);
        for &r in &rounds {
            if tail_round.is_some_and(|t| r <= t) {
                continue;
            }
            let h = &health[&r];
            let flaps = full_flaps(&self.slots[&r].raw, h, &mut cur, nb);
            let p = self.product(r, h, flaps);
            self.slots.get_mut(&r).expect("round").product = Some(p);
            recomputed += 1;
            tail_round = Some(r);
        }
        for &r in &rounds {
            self.slots.get_mut(&r).expect("round").dirty = false;
        }
        self.tail = tail_round.map(|t| (t, nb, cur));
        self.walked_first = Some(first);
        self.recomputed = recomputed;
    }

    /// The last judged state of every (VP, block) before round `round` in
    /// the window (healthy rounds only), scanning back from it.
    fn last_states_before(&self, round: u64, health: &HashMap<u64, Vec<bool>>, cur: &mut [u8]) {
        let (nb, nvi) = (self.nb, self.vp_names.len());
        let words = nb.div_ceil(64);
        let mut open: Vec<Vec<u64>> = vec![full_bits(nb, words); nvi];
        let mut left = vec![nb; nvi];
        cur.fill(NONE);
        for (r, slot) in self.slots.range(self.first..round).rev() {
            if left.iter().all(|&l| l == 0) {
                break;
            }
            let h = &health[r];
            for v in 0..nvi {
                if left[v] == 0 || !h.get(v).copied().unwrap_or(false) {
                    continue;
                }
                let Some(row) = slot.raw.row(v) else { continue };
                for (w, word) in open[v].iter_mut().enumerate() {
                    let mut bits = *word;
                    while bits != 0 {
                        let b = w * 64 + bits.trailing_zeros() as usize;
                        bits &= bits - 1;
                        let s = cell(row, b);
                        if s == UP || s == DOWN {
                            cur[v * nb + b] = s;
                            *word &= !(1u64 << (b % 64));
                            left[v] -= 1;
                        }
                    }
                }
            }
        }
    }

    /// The consensus product of round `round` (the one per-round consensus:
    /// [`round_product`]).
    fn product(&self, round: u64, healthy: &[bool], flaps: Vec<Vec<u32>>) -> Product {
        let raw = &self.slots[&round].raw;
        let rows: Vec<Option<(Vec<u8>, Vec<u8>)>> = (0..self.vp_names.len())
            .map(|v| raw.row(v).map(Row::unpack))
            .collect();
        round_product(
            &rows,
            healthy,
            flaps,
            &self.block_prefix,
            self.prefixes.len(),
            self.params.quorum,
        )
    }
}

/// A row's state of block `b` (`NONE` for a block added after the row).
fn cell(row: &Row, b: usize) -> u8 {
    row.state(b)
}

/// Health rows agree (a VP seen later is absent, so unhealthy, before).
fn same_health(a: &[bool], b: &[bool]) -> bool {
    let n = a.len().max(b.len());
    (0..n).all(|v| a.get(v).copied().unwrap_or(false) == b.get(v).copied().unwrap_or(false))
}

fn full_bits(nb: usize, words: usize) -> Vec<u64> {
    let mut bits = vec![u64::MAX; words];
    if nb % 64 != 0 {
        if let Some(l) = bits.last_mut() {
            *l = (1u64 << (nb % 64)) - 1;
        }
    }
    bits
}

/// Every healthy VP's flaps in one round against the last states `cur`,
/// which it then moves past the round.
fn full_flaps(raw: &RoundRaw, healthy: &[bool], cur: &mut [u8], nb: usize) -> Vec<Vec<u32>> {
    let nvi = healthy.len();
    let mut flaps = vec![Vec::new(); nvi];
    for (v, f) in flaps.iter_mut().enumerate() {
        if !healthy[v] {
            continue;
        }
        let Some(row) = raw.row(v) else { continue };
        let last = &mut cur[v * nb..(v + 1) * nb];
        for (b, (&c, l)) in row.cells().iter().zip(last.iter_mut()).enumerate() {
            let s = c & STATE;
            if s == UP || s == DOWN {
                if *l != NONE && *l != s {
                    f.push(b as u32);
                }
                *l = s;
            }
        }
    }
    flaps
}
