//! Stage 0 storage: one VP's round of cells, packed for the window.
//!
//! The engine holds every round of the window; at two bytes a block
//! (state and loss cell) that would dominate its memory at 100k blocks. A
//! typical report is "up, one probe, answered", so a row keeps two bits of
//! state per block and lists only the loss cells that differ from what the
//! state implies.

use crate::cells::{NONE, STATE, UP};

/// One VP's cells and losses of one round, packed:
/// two bits of state per block, and the loss cells that differ from what
/// the state implies (one probe answered for an up block, nothing
/// otherwise) as exceptions. About a quarter of a byte per block for a
/// typical round, instead of two.
#[derive(Debug, Clone)]
pub(super) struct Row {
    len: usize,
    states: Vec<u8>,
    /// Blocks whose loss cell is not the usual one, ascending.
    odd: OddBlocks,
    /// Their loss cells, in the same order.
    odd_loss: Vec<u8>,
}

/// Which blocks of a row have an unusual loss cell: a list when few do,
/// a bitset when more than one in 32 do (a typical round retries a
/// block's probe now and then: a list of 4 bytes per such block would
/// then cost more than the cells).
#[derive(Debug, Clone)]
enum OddBlocks {
    List(Vec<u32>),
    Bits(Vec<u64>),
}

/// The loss cell a block of this state usually has: one probe, answered,
/// for an up block; none for the others (down reports add no loss).
fn usual_loss(state: u8) -> u8 {
    if state == UP {
        0x10
    } else {
        0
    }
}

impl Row {
    pub(super) fn pack(cells: &[u8], loss: &[u8]) -> Row {
        let mut states = vec![0u8; cells.len().div_ceil(4)];
        let mut list = Vec::new();
        let mut odd_loss = Vec::new();
        for (b, (&c, &l)) in cells.iter().zip(loss).enumerate() {
            let s = c & STATE;
            states[b / 4] |= s << ((b % 4) * 2);
            if l != usual_loss(s) {
                list.push(b as u32);
                odd_loss.push(l);
            }
        }
        let odd = if list.len() > cells.len() / 32 {
            let mut bits = vec![0u64; cells.len().div_ceil(64)];
            for &b in &list {
                bits[b as usize / 64] |= 1 << (b % 64);
            }
            OddBlocks::Bits(bits)
        } else {
            list.shrink_to_fit();
            OddBlocks::List(list)
        };
        odd_loss.shrink_to_fit();
        Row {
            len: cells.len(),
            states,
            odd,
            odd_loss,
        }
    }

    /// State of block `b` (`NONE` for a block added after the row).
    pub(super) fn state(&self, b: usize) -> u8 {
        if b >= self.len {
            NONE
        } else {
            (self.states[b / 4] >> ((b % 4) * 2)) & STATE
        }
    }

    pub(super) fn cells(&self) -> Vec<u8> {
        let mut cells = Vec::with_capacity(self.len);
        for &byte in &self.states {
            for k in 0..4 {
                cells.push((byte >> (k * 2)) & STATE);
            }
        }
        cells.truncate(self.len);
        cells
    }

    /// Cells and loss cells, unpacked.
    pub(super) fn unpack(&self) -> (Vec<u8>, Vec<u8>) {
        let cells = self.cells();
        let mut loss: Vec<u8> = cells.iter().map(|&s| usual_loss(s)).collect();
        let mut values = self.odd_loss.iter();
        match &self.odd {
            OddBlocks::List(list) => {
                for (&b, &l) in list.iter().zip(values) {
                    loss[b as usize] = l;
                }
            }
            OddBlocks::Bits(bits) => {
                for (w, &word) in bits.iter().enumerate() {
                    let mut word = word;
                    while word != 0 {
                        let b = w * 64 + word.trailing_zeros() as usize;
                        word &= word - 1;
                        loss[b] = *values.next().expect("one loss cell per odd block");
                    }
                }
            }
        }
        (cells, loss)
    }
}

#[cfg(test)]
mod row_tests {
    use super::*;
    use crate::cells::{DOWN, UNCERTAIN};

    /// A row unpacks to the cells and loss cells it was packed from,
    /// with few unusual loss cells (kept as a list) and many (a bitset).
    #[test]
    fn rows_unpack_to_what_was_packed() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for (len, odd_in) in [(1000usize, 200u64), (1000, 5), (1001, 1000), (3, 2), (0, 1)] {
            let mut cells = Vec::with_capacity(len);
            let mut loss = Vec::with_capacity(len);
            for _ in 0..len {
                let s = [UP, DOWN, UNCERTAIN, NONE][(next() % 4) as usize];
                cells.push(s);
                loss.push(if next() % odd_in == 0 {
                    (next() % 256) as u8
                } else {
                    usual_loss(s)
                });
            }
            let row = Row::pack(&cells, &loss);
            let odd = loss
                .iter()
                .zip(&cells)
                .filter(|(&l, &c)| l != usual_loss(c))
                .count();
            match (&row.odd, odd > len / 32) {
                (OddBlocks::Bits(_), true) | (OddBlocks::List(_), false) => {}
                (o, _) => panic!("{len} blocks, {odd} odd: {o:?}"),
            }
            assert_eq!(row.unpack(), (cells.clone(), loss.clone()), "{len}, {odd}");
            for (b, &c) in cells.iter().enumerate() {
                assert_eq!(row.state(b), c);
            }
            assert_eq!(row.state(len), NONE);
        }
    }
}
