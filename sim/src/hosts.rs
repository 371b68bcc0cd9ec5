//! How a block's hosts answer while nothing is wrong with it: how many
//! addresses ever answer, how often each does, whether the block sleeps at
//! night, whether its hosts come and go. Parameters, from published
//! measurements where there are some (the figures are the simulator's
//! choices within what those papers report, not fits to their data):
//!
//! - **Responsive addresses per block** (`E(b)`): heavy-tailed with many
//!   sparse blocks. Trinocular (Quan, Heidemann, Pradkin, SIGCOMM 2013)
//!   tracks blocks with `A ≥ 0.1` and finds many with few ever-responsive
//!   addresses; Full Block Scanning (Baltra, Heidemann, PAM 2020) adds the
//!   sparse blocks Trinocular skipped and reports a true-positive rate of
//!   about 86 % on them. Here 35 % of IPv4 blocks have 1–3 addresses, 30 %
//!   4–15, 35 % 16–254 (log-uniform).
//! - **Availability** `A` (the chance that an ever-responsive address answers
//!   a probe while the block is up): 0.3–0.95 per block, each address
//!   within ±50 % of its block's (Trinocular's A spans this range).
//! - **Flaky hosts**: 8 % of blocks have `A` of 0.1–0.3 and, on top, lose
//!   a random share (up to 80 %) of their hosts each round.
//! - **Diurnal blocks** follow their country's local time: from 00:00 to
//!   06:00 their hosts answer at a tenth of their daytime rate, with one-hour
//!   ramps either side ("When the Internet Sleeps", Quan, Heidemann, Pradkin,
//!   IMC 2013: diurnal blocks are common in some countries — Asia, South
//!   America, Eastern Europe — and rare in others; here 0–30 % of a
//!   country's IPv4 blocks).
//! - **IPv6 /48s** from hitlists: 1–8 responsive addresses, `A` 0.5–0.95,
//!   never diurnal (hitlists keep addresses seen stable).

use crate::rng::{hash, unit, Seq};

/// A block's hosts (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hosts {
    /// Ever-responsive addresses (`E(b)`), what discovery would find.
    pub responsive: u32,
    /// `A`: daytime chance that one of them answers a probe.
    pub availability: f32,
    pub diurnal: bool,
    pub flaky: bool,
}

/// Draws a block's hosts.
pub fn draw(seq: &mut Seq, v6: bool, diurnal_share: f64) -> Hosts {
    if v6 {
        return Hosts {
            responsive: seq.range(1, 9) as u32,
            availability: (0.5 + 0.45 * seq.unit()) as f32,
            diurnal: false,
            flaky: false,
        };
    }
    let r = seq.unit();
    let responsive = if r < 0.35 {
        seq.range(1, 4)
    } else if r < 0.65 {
        seq.range(4, 16)
    } else {
        seq.log_range(16, 254)
    } as u32;
    let flaky = seq.unit() < 0.08;
    let availability = if flaky {
        0.1 + 0.2 * seq.unit()
    } else {
        0.3 + 0.65 * seq.unit()
    } as f32;
    Hosts {
        responsive,
        availability,
        diurnal: seq.unit() < diurnal_share,
        flaky,
    }
}

/// Share of a diurnal block's daytime availability at `hour` (local, 0–24).
pub fn diurnal_factor(hour: f64) -> f64 {
    const NIGHT: f64 = 0.1;
    match hour {
        h if h < 0.0 || h >= 24.0 => diurnal_factor(h.rem_euclid(24.0)),
        h if h < 6.0 => NIGHT,
        h if h < 7.0 => NIGHT + (1.0 - NIGHT) * (h - 6.0),
        h if h < 23.0 => 1.0,
        h => 1.0 - (1.0 - NIGHT) * (h - 23.0),
    }
}

/// The chance that host `host` of block `block` (index, for hashing)
/// answers a probe at `t_ms` in round `round`, from its hosts alone (no
/// path, no event): per-address spread, diurnal factor, flaky round factor.
pub fn answer_chance(
    seed: u64,
    block: u32,
    h: &Hosts,
    host: u32,
    round: u64,
    t_ms: i64,
    utc_offset_h: i32,
) -> f64 {
    let spread = 0.5 + unit(hash(&[seed, 1, u64::from(block), u64::from(host)]));
    let mut p = (f64::from(h.availability) * spread).min(1.0);
    if h.diurnal {
        let hour = (t_ms as f64 / 3_600_000.0 + f64::from(utc_offset_h)).rem_euclid(24.0);
        p *= diurnal_factor(hour);
    }
    if h.flaky {
        p *= 1.0 - 0.8 * unit(hash(&[seed, 2, u64::from(block), round]));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(n: usize, share: f64) -> Vec<Hosts> {
        let mut s = Seq::new(3);
        (0..n).map(|_| draw(&mut s, false, share)).collect()
    }

    #[test]
    fn many_blocks_are_sparse_and_some_dense() {
        let h = hosts(10_000, 0.0);
        let sparse = h.iter().filter(|h| h.responsive <= 3).count();
        let dense = h.iter().filter(|h| h.responsive >= 100).count();
        assert!((3_000..4_000).contains(&sparse), "{sparse}");
        assert!(dense > 300, "{dense}");
    }

    #[test]
    fn per_address_availability_differs_within_a_block() {
        let h = Hosts {
            responsive: 50,
            availability: 0.6,
            diurnal: false,
            flaky: false,
        };
        let p: Vec<f64> = (0..50)
            .map(|i| answer_chance(1, 7, &h, i, 0, 0, 0))
            .collect();
        let (lo, hi) = p
            .iter()
            .fold((1.0f64, 0.0f64), |(l, u), &x| (l.min(x), u.max(x)));
        assert!(lo < 0.4 && hi > 0.8, "{lo}..{hi}");
    }

    #[test]
    fn diurnal_block_is_quiet_at_local_night() {
        let h = Hosts {
            responsive: 10,
            availability: 0.9,
            diurnal: true,
            flaky: false,
        };
        // 03:00 UTC is 03:00 local at offset 0, 12:00 at offset +9.
        let three = 3 * 3_600_000;
        let night = answer_chance(1, 7, &h, 0, 0, three, 0);
        let day = answer_chance(1, 7, &h, 0, 0, three, 9);
        assert!(night < 0.15 * day, "night {night} day {day}");
        let shares = hosts(10_000, 0.3).iter().filter(|h| h.diurnal).count();
        assert!((2_700..3_300).contains(&shares), "{shares}");
    }

    #[test]
    fn flaky_blocks_vary_from_round_to_round() {
        let h = Hosts {
            responsive: 10,
            availability: 0.3,
            diurnal: false,
            flaky: true,
        };
        let p: Vec<f64> = (0..100)
            .map(|r| answer_chance(1, 7, &h, 0, r, 0, 0))
            .collect();
        let (lo, hi) = p
            .iter()
            .fold((1.0f64, 0.0f64), |(l, u), &x| (l.min(x), u.max(x)));
        assert!(hi > 3.0 * lo, "{lo}..{hi}");
        let n = hosts(10_000, 0.0).iter().filter(|h| h.flaky).count();
        assert!((600..1_000).contains(&n), "{n}");
    }
}
