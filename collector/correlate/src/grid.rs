//! Dense per-round arrays built from the observation list.
//!
//! Everything downstream works on `cells[(round * vps + vp) * blocks + block]`
//! (one byte per VP, block and round) instead of maps keyed by tuples: the
//! data path must scale to 100k blocks x 10 VPs x 100 rounds, and a linear
//! scan over a byte array is what makes that cheap.

use darkwatch_schema::BlockState;

use crate::{CorrelateError, Input};

/// No report from this VP for this block and round.
pub(crate) const NONE: u8 = 0;
pub(crate) const UP: u8 = 1;
pub(crate) const DOWN: u8 = 2;
/// Reported, but neither up nor down.
pub(crate) const UNCERTAIN: u8 = 3;
/// The low two bits of a cell hold the state...
pub(crate) const STATE: u8 = 3;
/// ...and higher bits are marks set by later passes: the VP's judged state
/// differs from its previous judged state for the block,
pub(crate) const FLAP: u8 = 4;
/// and the VP had unanswered probes to a block believed up.
pub(crate) const LOSSY: u8 = 8;

/// Largest grid we allocate (4 GiB of cells): beyond this the caller must
/// split the window.
pub(crate) const MAX_CELLS: u64 = 1 << 32;

pub(crate) fn code(state: BlockState) -> u8 {
    match state {
        BlockState::Up => UP,
        BlockState::Down => DOWN,
        BlockState::Uncertain => UNCERTAIN,
    }
}

/// Two reports of the same VP, block and round (a re-sent batch, say) merge
/// the same way whatever their order: up wins, then down, then uncertain.
fn merge(a: u8, b: u8) -> u8 {
    if a == UP || b == UP {
        UP
    } else if a == DOWN || b == DOWN {
        DOWN
    } else if a == UNCERTAIN || b == UNCERTAIN {
        UNCERTAIN
    } else {
        NONE
    }
}

/// Adds `probes` and `lost` to a packed loss cell, saturating each at 15.
#[inline]
pub(crate) fn add_loss(cell: u8, probes: u32, lost: u32) -> u8 {
    let p = (u32::from(cell >> 4) + probes).min(15) as u8;
    let l = (u32::from(cell & 15) + lost).min(15) as u8;
    (p << 4) | l
}

/// One VP's totals in one round.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct VpRound {
    pub up: u32,
    pub down: u32,
    pub uncertain: u32,
    pub ctl_up: u32,
    pub ctl_down: u32,
    pub ctl_uncertain: u32,
}

impl VpRound {
    pub fn judged(&self) -> u32 {
        self.up + self.down
    }

    pub fn ctl_total(&self) -> u32 {
        self.ctl_up + self.ctl_down + self.ctl_uncertain
    }

    pub fn has_data(&self) -> bool {
        self.up + self.down + self.uncertain + self.ctl_total() > 0
    }

    /// Share of this VP's judged blocks that it saw up.
    pub fn share_up(&self) -> Option<f64> {
        (self.judged() > 0).then(|| f64::from(self.up) / f64::from(self.judged()))
    }
}

/// Per-VP round totals of a window, `[round * vps + vp]`: all that VP
/// health, fault runs and the timeline read (the batch grid and the
/// incremental engine both provide them).
#[derive(Clone, Copy)]
pub(crate) struct VpRounds<'a> {
    pub rounds: usize,
    pub vps: usize,
    pub first_round: u64,
    pub data: &'a [VpRound],
}

impl VpRounds<'_> {
    pub fn get(&self, r: usize, v: usize) -> VpRound {
        self.data[r * self.vps + v]
    }

    pub fn round_number(&self, r: usize) -> u64 {
        self.first_round + r as u64
    }
}

pub(crate) struct Grid {
    pub rounds: usize,
    pub vps: usize,
    pub blocks: usize,
    pub first_round: u64,
    pub cells: Vec<u8>,
    /// Per cell, probes sent (high nibble) and probes unanswered (low
    /// nibble) in reports that did not say down, each saturating at 15 (a
    /// Trinocular round sends at most 15). The loss pass reads these
    /// sequentially instead of the observation list, which is 32 bytes an
    /// observation and dominated the pass.
    pub loss: Vec<u8>,
    /// `[round * vps + vp]`.
    pub vp_rounds: Vec<VpRound>,
    pub skipped: usize,
}

impl Grid {
    pub fn build(input: &Input) -> Result<Grid, CorrelateError> {
        let (first, last) = (input.first_round, input.last_round);
        if first > last {
            return Err(CorrelateError::InvertedWindow { first, last });
        }
        let (vps, blocks) = (input.vps.len(), input.blocks.len());
        let rounds64 = (last - first).saturating_add(1);
        let too_large = CorrelateError::TooLarge {
            rounds: rounds64,
            vps,
            blocks,
            limit: MAX_CELLS,
        };
        // Also bound the rounds alone: the per-round arrays exist even
        // without blocks.
        let cells = rounds64
            .checked_mul(vps.max(1) as u64)
            .and_then(|n| n.checked_mul(blocks.max(1) as u64))
            .filter(|&n| n <= MAX_CELLS)
            .ok_or(too_large)?;
        for (i, b) in input.blocks.iter().enumerate() {
            if b.prefix as usize >= input.prefixes.len() {
                return Err(CorrelateError::BlockPrefix {
                    block: i,
                    prefix: b.prefix,
                    count: input.prefixes.len(),
                });
            }
        }
        let rounds = rounds64 as usize;
        let ncells = if vps == 0 || blocks == 0 {
            0
        } else {
            cells as usize
        };
        let mut grid = Grid {
            rounds,
            vps,
            blocks,
            first_round: first,
            cells: vec![NONE; ncells],
            loss: vec![0; ncells],
            vp_rounds: vec![VpRound::default(); rounds * vps],
            skipped: 0,
        };
        for o in &input.obs {
            let Some(r) = grid.round_index(o.round) else {
                grid.skipped += 1;
                continue;
            };
            if o.vp as usize >= vps || o.block as usize >= blocks {
                grid.skipped += 1;
                continue;
            }
            let i = grid.idx(r, o.vp as usize, o.block as usize);
            grid.cells[i] = merge(grid.cells[i], code(o.state));
            if o.state != BlockState::Down {
                grid.loss[i] = add_loss(grid.loss[i], o.probes, o.probes.saturating_sub(o.replies));
            }
        }
        for c in &input.control {
            let r = grid.round_index(c.round);
            match r {
                Some(r) if (c.vp as usize) < vps => {
                    let vr = &mut grid.vp_rounds[r * vps + c.vp as usize];
                    match c.state {
                        BlockState::Up => vr.ctl_up += 1,
                        BlockState::Down => vr.ctl_down += 1,
                        BlockState::Uncertain => vr.ctl_uncertain += 1,
                    }
                }
                _ => grid.skipped += 1,
            }
        }
        // Count after merging, so duplicates do not weigh twice.
        for r in 0..rounds {
            for v in 0..vps {
                let (mut up, mut down, mut unc) = (0u32, 0u32, 0u32);
                for &c in grid.row(r, v) {
                    match c & STATE {
                        UP => up += 1,
                        DOWN => down += 1,
                        UNCERTAIN => unc += 1,
                        _ => {}
                    }
                }
                let vr = &mut grid.vp_rounds[r * vps + v];
                vr.up = up;
                vr.down = down;
                vr.uncertain = unc;
            }
        }
        Ok(grid)
    }

    pub fn round_index(&self, round: u64) -> Option<usize> {
        let r = round.checked_sub(self.first_round)?;
        (r < self.rounds as u64).then_some(r as usize)
    }

    #[inline]
    pub fn idx(&self, r: usize, v: usize, b: usize) -> usize {
        (r * self.vps + v) * self.blocks + b
    }

    /// One VP's cells for every block in one round.
    pub fn row(&self, r: usize, v: usize) -> &[u8] {
        let start = self.idx(r, v, 0);
        &self.cells[start..start + self.blocks]
    }

    pub fn row_mut(&mut self, r: usize, v: usize) -> &mut [u8] {
        let start = self.idx(r, v, 0);
        &mut self.cells[start..start + self.blocks]
    }

    pub fn vp_view(&self) -> VpRounds<'_> {
        VpRounds {
            rounds: self.rounds,
            vps: self.vps,
            first_round: self.first_round,
            data: &self.vp_rounds,
        }
    }
}

#[cfg(test)]
mod unit {
    use super::add_loss;

    #[test]
    fn loss_cells_pack_and_saturate() {
        let c = add_loss(0, 3, 2);
        assert_eq!((c >> 4, c & 15), (3, 2));
        let c = add_loss(c, 4, 0);
        assert_eq!((c >> 4, c & 15), (7, 2));
        let c = add_loss(c, 100, 20);
        assert_eq!((c >> 4, c & 15), (15, 15));
    }
}
