//! Stage 0: the cell encoding every later stage reads.
//!
//! One VP's report of one block in one round is a cell of one byte: its
//! state in the low two bits. Rows of cells (one per VP and round, indexed
//! by block) are what the consensus scans: the data path must scale to 100k
//! blocks x 10 VPs x 100 rounds, and a linear scan over a byte array is what
//! makes that cheap. Beside each cell, a loss cell packs the probes sent and
//! the probes unanswered. Reports are merged into cells here, once: the
//! engine's round input ([`crate::incremental::RoundInput`]) is the only
//! writer.

use darkwatch_schema::BlockState;

/// No report from this VP for this block and round.
pub(crate) const NONE: u8 = 0;
pub(crate) const UP: u8 = 1;
pub(crate) const DOWN: u8 = 2;
/// Reported, but neither up nor down.
pub(crate) const UNCERTAIN: u8 = 3;
/// The bits of a cell that hold the state.
pub(crate) const STATE: u8 = 3;

/// Largest window [`crate::try_correlate`] takes (rounds x VPs x blocks,
/// 4 Gi cells): beyond this the caller must split the window.
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
pub(crate) fn merge(a: u8, b: u8) -> u8 {
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
/// health, fault runs and the timeline read.
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
