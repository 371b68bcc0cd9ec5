//! Per block and round: one state from the healthy VPs, plus the marks that
//! instability needs (flaps and losses).
//!
//! `up` if any healthy VP saw the block up; `down` if at least
//! min(`quorum`, healthy VPs that reported the block that round) healthy VPs
//! saw it down and none up; otherwise undecided. "Reported" counts uncertain
//! reports too: they are neither up nor down, but they are a VP that looked
//! and could not confirm the loss, which is what the quorum guards against.
//! (Counting only up/down reports would make the quorum a no-op: without any
//! up report, every judging VP saw it down.)

use crate::grid::{Grid, DOWN, FLAP, LOSSY, NONE, STATE, UNCERTAIN, UP};
use crate::health::Health;
use crate::{Input, Params};

/// Per-round totals of one prefix (or, summed, of any scope).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Agg {
    /// Blocks with a consensus (up or down).
    pub judged: u32,
    pub down: u32,
    /// Blocks that some healthy VP saw change state since its previous
    /// judged state.
    pub flapped: u32,
    /// Blocks that flapped or lost probes while believed up.
    pub unstable: u32,
    /// Probes (healthy VPs that did not see the block down) to blocks whose
    /// consensus was up...
    pub probes_up: u64,
    /// ...and how many of them went unanswered.
    pub unanswered_up: u64,
}

impl std::ops::AddAssign for Agg {
    fn add_assign(&mut self, o: Agg) {
        self.judged += o.judged;
        self.down += o.down;
        self.flapped += o.flapped;
        self.unstable += o.unstable;
        self.probes_up += o.probes_up;
        self.unanswered_up += o.unanswered_up;
    }
}

impl Agg {
    pub fn down_share(&self) -> Option<f64> {
        (self.judged > 0).then(|| f64::from(self.down) / f64::from(self.judged))
    }
}

pub(crate) struct Consensus {
    /// `[prefix * rounds + round]`.
    pub prefix_aggs: Vec<Agg>,
    /// Per prefix: blocks that had a consensus in at least one round.
    pub prefix_judged_blocks: Vec<u32>,
}

pub(crate) fn compute(
    input: &Input,
    grid: &mut Grid,
    health: &Health,
    params: &Params,
) -> Consensus {
    let (nr, nv, nb) = (grid.rounds, grid.vps, grid.blocks);
    let quorum = params.quorum.max(1) as u32;
    // `[round * blocks + block]`: `NONE` (nobody healthy reported), `UP`,
    // `DOWN`, or `UNCERTAIN` (reported but undecided).
    let mut state = vec![NONE; nr * nb];
    let mut flags = vec![0u8; nr * nb];
    let (mut ups, mut downs, mut reps) = (vec![0u32; nb], vec![0u32; nb], vec![0u32; nb]);
    // Last judged state of each (VP, block), carried across rounds without
    // data so that a gap does not look like a change.
    let mut last = vec![NONE; nv * nb];
    for r in 0..nr {
        ups.fill(0);
        downs.fill(0);
        reps.fill(0);
        for v in 0..nv {
            if !health.healthy(r, v) {
                continue;
            }
            let row = grid.row_mut(r, v);
            let last = &mut last[v * nb..(v + 1) * nb];
            for b in 0..nb {
                let s = row[b] & STATE;
                match s {
                    UP => ups[b] += 1,
                    DOWN => downs[b] += 1,
                    _ => {}
                }
                if s != NONE {
                    reps[b] += 1;
                }
                if s == UP || s == DOWN {
                    if last[b] != NONE && last[b] != s {
                        row[b] |= FLAP;
                        flags[r * nb + b] |= FLAP;
                    }
                    last[b] = s;
                }
            }
        }
        let st = &mut state[r * nb..(r + 1) * nb];
        for b in 0..nb {
            st[b] = if ups[b] > 0 {
                UP
            } else if downs[b] > 0 && downs[b] >= quorum.min(reps[b]) {
                DOWN
            } else if reps[b] > 0 {
                UNCERTAIN
            } else {
                NONE
            };
        }
    }

    let np = input.prefixes.len();
    let mut prefix_aggs = vec![Agg::default(); np * nr];
    // Losses: probes of healthy VPs that did not see the block down, to
    // blocks whose consensus was up. A VP that reports the block down while
    // others see it up has a path problem of its own (steady, not loss); its
    // lost probes would otherwise make the block look lossy for as long as
    // that lasts. Its down blips still count, as flaps.
    // Per-block sums of the round, folded into the prefixes once per round:
    // the inner loop is branch-free over three byte arrays.
    let (mut acc_p, mut acc_l) = (vec![0u32; nb], vec![0u32; nb]);
    for r in 0..nr {
        acc_p.fill(0);
        acc_l.fill(0);
        let st = &state[r * nb..(r + 1) * nb];
        let fl = &mut flags[r * nb..(r + 1) * nb];
        for v in 0..nv {
            if !health.healthy(r, v) {
                continue;
            }
            let base = grid.idx(r, v, 0);
            let cells = &mut grid.cells[base..base + nb];
            let loss = &grid.loss[base..base + nb];
            for b in 0..nb {
                let counts = (u8::from(st[b] == UP && cells[b] & STATE != DOWN) * 0xff) & loss[b];
                let lost = counts & 15;
                acc_p[b] += u32::from(counts >> 4);
                acc_l[b] += u32::from(lost);
                let mark = u8::from(lost > 0) * LOSSY;
                cells[b] |= mark;
                fl[b] |= mark;
            }
        }
        for b in 0..nb {
            if acc_p[b] > 0 {
                let a = &mut prefix_aggs[input.blocks[b].prefix as usize * nr + r];
                a.probes_up += u64::from(acc_p[b]);
                a.unanswered_up += u64::from(acc_l[b]);
            }
        }
    }
    let mut ever = vec![false; nb];
    for r in 0..nr {
        for b in 0..nb {
            let (s, f) = (state[r * nb + b], flags[r * nb + b]);
            let a = &mut prefix_aggs[input.blocks[b].prefix as usize * nr + r];
            if s == UP || s == DOWN {
                a.judged += 1;
                ever[b] = true;
            }
            if s == DOWN {
                a.down += 1;
            }
            if f & FLAP != 0 {
                a.flapped += 1;
            }
            if f & (FLAP | LOSSY) != 0 {
                a.unstable += 1;
            }
        }
    }
    let mut prefix_judged_blocks = vec![0u32; np];
    for (b, e) in ever.iter().enumerate() {
        if *e {
            prefix_judged_blocks[input.blocks[b].prefix as usize] += 1;
        }
    }
    Consensus {
        prefix_aggs,
        prefix_judged_blocks,
    }
}
