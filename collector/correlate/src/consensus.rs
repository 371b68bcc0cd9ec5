//! Stage 2: per block and round, one state from the healthy VPs, plus the
//! marks that instability needs (flaps and losses), folded into per-prefix
//! totals. [`round_product`] is the one implementation: the engine calls it
//! for each round whose inputs changed, and keeps its [`Product`].
//!
//! `up` if any healthy VP saw the block up; `down` if at least
//! min(`quorum`, healthy VPs that reported the block that round) healthy VPs
//! saw it down and none up; otherwise undecided. "Reported" counts uncertain
//! reports too: they are neither up nor down, but they are a VP that looked
//! and could not confirm the loss, which is what the quorum guards against.
//! (Counting only up/down reports would make the quorum a no-op: without any
//! up report, every judging VP saw it down.)

use crate::cells::{DOWN, NONE, STATE, UNCERTAIN, UP};

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

/// The per-prefix series of a window, as `scopes` reads them.
pub(crate) struct Consensus {
    /// `[prefix * rounds + round]`.
    pub prefix_aggs: Vec<Agg>,
    /// Per prefix: blocks that had a consensus in at least one round.
    pub prefix_judged_blocks: Vec<u32>,
}

/// One round's consensus, reduced to what the window stage reads: per
/// prefix totals and, per VP, the prefixes it saw down and its marks.
/// Vectors indexed by VP use the engine's internal VP ids.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Product {
    /// Healthy VPs it was computed with.
    pub healthy: Vec<bool>,
    /// Per VP: blocks it saw flap (sorted).
    pub flaps: Vec<Vec<u32>>,
    /// Per prefix.
    pub aggs: Vec<Agg>,
    /// Blocks with a consensus (up or down), as a bitset.
    pub judged: Vec<u64>,
    /// Per VP: prefixes where it saw a block down (sorted).
    pub down: Vec<Vec<u32>>,
    /// Per healthy VP: (prefix, blocks it marked flapping or lossy).
    pub marks: Vec<Vec<(u32, u32)>>,
}

/// One round's reports, unpacked: per VP, its cells and loss cells (a row
/// may be shorter than `block_prefix` for blocks added after it).
pub(crate) type Rows = [Option<(Vec<u8>, Vec<u8>)>];

/// The consensus of one round: `rows` are the VPs' reports, `healthy` the
/// VPs healthy in it, `flaps` each VP's flapped blocks (against its last
/// judged state before the round: the engine's walk finds them), and
/// `block_prefix` each block's prefix of `np`.
///
/// `up` if any healthy VP saw the block up; `down` if at least
/// min(`quorum`, healthy VPs that reported it) healthy VPs saw it down and
/// none up; otherwise undecided (no consensus).
///
/// Losses: probes of healthy VPs that did not see the block down, to blocks
/// whose consensus was up. A VP that reports the block down while others see
/// it up has a path problem of its own (steady, not loss); its lost probes
/// would otherwise make the block look lossy for as long as that lasts. Its
/// down blips still count, as flaps.
pub(crate) fn round_product(
    rows: &Rows,
    healthy: &[bool],
    flaps: Vec<Vec<u32>>,
    block_prefix: &[u32],
    np: usize,
    quorum: usize,
) -> Product {
    let nb = block_prefix.len();
    let nvi = rows.len();
    let quorum = quorum.max(1) as u32;
    let is_healthy = |v: usize| healthy.get(v).copied().unwrap_or(false);
    let (mut ups, mut downs, mut reps) = (vec![0u32; nb], vec![0u32; nb], vec![0u32; nb]);
    for (v, row) in rows.iter().enumerate() {
        if !is_healthy(v) {
            continue;
        }
        let Some((cells, _)) = row else { continue };
        for (b, &c) in cells.iter().enumerate() {
            let s = c & STATE;
            ups[b] += u32::from(s == UP);
            downs[b] += u32::from(s == DOWN);
            reps[b] += u32::from(s != NONE);
        }
    }
    let mut flap_any = vec![false; nb];
    for (v, f) in flaps.iter().enumerate() {
        if is_healthy(v) {
            for &b in f {
                flap_any[b as usize] = true;
            }
        }
    }
    let state: Vec<u8> = (0..nb)
        .map(|b| {
            if ups[b] > 0 {
                UP
            } else if downs[b] > 0 && downs[b] >= quorum.min(reps[b]) {
                DOWN
            } else if reps[b] > 0 {
                UNCERTAIN
            } else {
                NONE
            }
        })
        .collect();
    let mut aggs = vec![Agg::default(); np];
    // Per-block sums of the round, folded into the prefixes once: the inner
    // loop is branch-free over the cells.
    let (mut acc_p, mut acc_l) = (vec![0u32; nb], vec![0u32; nb]);
    let mut lossy_any = vec![false; nb];
    let mut marks = vec![Vec::new(); nvi];
    let mut down = vec![Vec::new(); nvi];
    let mut count = vec![0u32; np];
    let mut touched: Vec<u32> = Vec::new();
    for v in 0..nvi {
        let Some((cells, loss)) = &rows[v] else {
            continue;
        };
        // Prefixes with a block this VP saw down (health aside).
        for (b, &c) in cells.iter().enumerate() {
            if c & STATE == DOWN {
                let p = block_prefix[b];
                if count[p as usize] == 0 {
                    touched.push(p);
                }
                count[p as usize] = 1;
            }
        }
        touched.sort_unstable();
        for &p in &touched {
            count[p as usize] = 0;
        }
        down[v] = std::mem::take(&mut touched);
        if !is_healthy(v) {
            continue;
        }
        let vflaps = flaps.get(v).map(Vec::as_slice).unwrap_or(&[]);
        let mut fi = 0;
        for b in 0..cells.len() {
            let c = cells[b];
            let counts = (u8::from(state[b] == UP && c & STATE != DOWN) * 0xff) & loss[b];
            let lost = counts & 15;
            acc_p[b] += u32::from(counts >> 4);
            acc_l[b] += u32::from(lost);
            let flap = fi < vflaps.len() && vflaps[fi] as usize == b;
            if flap {
                fi += 1;
            }
            if lost > 0 {
                lossy_any[b] = true;
            }
            if flap || lost > 0 {
                let p = block_prefix[b];
                if count[p as usize] == 0 {
                    touched.push(p);
                }
                count[p as usize] += 1;
            }
        }
        touched.sort_unstable();
        marks[v] = touched
            .iter()
            .map(|&p| (p, std::mem::take(&mut count[p as usize])))
            .collect();
        touched.clear();
    }
    let mut judged = vec![0u64; nb.div_ceil(64)];
    for b in 0..nb {
        let a = &mut aggs[block_prefix[b] as usize];
        if acc_p[b] > 0 {
            a.probes_up += u64::from(acc_p[b]);
            a.unanswered_up += u64::from(acc_l[b]);
        }
        let s = state[b];
        if s == UP || s == DOWN {
            a.judged += 1;
            judged[b / 64] |= 1 << (b % 64);
        }
        if s == DOWN {
            a.down += 1;
        }
        if flap_any[b] {
            a.flapped += 1;
        }
        if flap_any[b] || lossy_any[b] {
            a.unstable += 1;
        }
    }
    Product {
        healthy: healthy.to_vec(),
        flaps,
        aggs,
        judged,
        down,
        marks,
    }
}
