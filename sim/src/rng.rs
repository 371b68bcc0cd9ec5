//! Stateless randomness: every draw of the simulator is a hash of the seed
//! and of what it is about (block, VP, round, probe), so the network's answer
//! to a probe is a pure function and a run is the same whatever order it is
//! computed in.

/// The splitmix64 finalizer: a good 64-bit mix of `z`.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A hash of several values (order matters).
pub fn hash(parts: &[u64]) -> u64 {
    parts.iter().fold(0x5151_5eed, |h, &p| mix(h ^ p))
}

/// A uniform number in [0, 1) from a hash.
pub fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// A sequential generator (splitmix64) for building the population.
#[derive(Debug, Clone)]
pub struct Seq(u64);

impl Seq {
    pub fn new(seed: u64) -> Seq {
        Seq(mix(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        unit(self.next_u64())
    }

    /// Uniform in `lo..hi` (`lo` when empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.next_u64() % (hi - lo)
        }
    }

    /// Log-uniform in `[lo, hi]` (both at least 1): as many short as long
    /// durations per factor of two.
    pub fn log_range(&mut self, lo: u64, hi: u64) -> u64 {
        let (l, h) = ((lo.max(1) as f64).ln(), (hi.max(lo).max(1) as f64).ln());
        ((l + self.unit() * (h - l)).exp().round() as u64).clamp(lo, hi.max(lo))
    }

    /// An index in `0..weights.len()` drawn in proportion to `weights`.
    pub fn pick(&mut self, cumulative: &[f64]) -> usize {
        let total = cumulative.last().copied().unwrap_or(0.0);
        let x = self.unit() * total;
        cumulative
            .partition_point(|&c| c <= x)
            .min(cumulative.len().saturating_sub(1))
    }
}

/// Cumulative Zipf weights `1 / k^s` for ranks `1..=n`.
pub fn zipf_cumulative(n: usize, s: f64) -> Vec<f64> {
    let mut acc = 0.0;
    (1..=n)
        .map(|k| {
            acc += 1.0 / (k as f64).powf(s);
            acc
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_deterministic_and_order_sensitive() {
        assert_eq!(hash(&[1, 2, 3]), hash(&[1, 2, 3]));
        assert_ne!(hash(&[1, 2, 3]), hash(&[3, 2, 1]));
    }

    #[test]
    fn log_range_stays_in_bounds() {
        let mut s = Seq::new(7);
        for _ in 0..1000 {
            let v = s.log_range(1, 432);
            assert!((1..=432).contains(&v));
        }
    }
}
