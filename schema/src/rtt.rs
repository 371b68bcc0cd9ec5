//! Round-trip times of a block's replies in one round, in one byte each.
//!
//! The probes a round already sends time their replies; keeping the minimum
//! and the median per block lets the collector see throttling (queues fill,
//! replies slow and go missing) without a probe more. A byte per figure
//! keeps packed rounds small: a logarithmic scale from 0.1 ms in steps of
//! 5 % (code 1 is 0.1 ms, code 255 about 24 s; 0 means no reply), so the
//! error is at most 2.5 % of the time, whatever its size: ratios ("4.1×
//! baseline") survive, absolute microseconds do not matter.

use serde::{Deserialize, Serialize};

/// Ratio between neighbouring codes.
const STEP: f64 = 1.05;
/// The time of code 1, in milliseconds.
const FLOOR_MS: f64 = 0.1;

/// A block's reply times in one round, quantized ([`quantize_ms`]); both 0
/// when no probe was answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rtt {
    pub min: u8,
    pub median: u8,
}

impl Rtt {
    /// No reply, no times.
    pub const NONE: Rtt = Rtt { min: 0, median: 0 };

    /// The summary of `samples_ms` (any order; empty gives [`Rtt::NONE`]).
    /// The median of an even count is the lower middle: a reply time that
    /// was seen.
    pub fn of(samples_ms: &mut [f64]) -> Rtt {
        if samples_ms.is_empty() {
            return Rtt::NONE;
        }
        samples_ms.sort_unstable_by(f64::total_cmp);
        Rtt {
            min: quantize_ms(samples_ms[0]),
            median: quantize_ms(samples_ms[(samples_ms.len() - 1) / 2]),
        }
    }

    pub fn is_none(&self) -> bool {
        self.median == 0
    }

    pub fn min_ms(&self) -> Option<f64> {
        ms(self.min)
    }

    pub fn median_ms(&self) -> Option<f64> {
        ms(self.median)
    }

    /// From plain milliseconds (a JSON observation's), quantized.
    pub fn from_ms(min_ms: Option<f64>, median_ms: Option<f64>) -> Rtt {
        match (min_ms, median_ms) {
            (Some(min), Some(median)) => Rtt {
                min: quantize_ms(min.min(median)),
                median: quantize_ms(median),
            },
            (None, Some(t)) | (Some(t), None) => Rtt {
                min: quantize_ms(t),
                median: quantize_ms(t),
            },
            (None, None) => Rtt::NONE,
        }
    }
}

/// The code of a reply time in milliseconds (1..=255; anything at or below
/// 0.1 ms is 1, anything above ~24 s is 255, NaN is 1).
pub fn quantize_ms(ms: f64) -> u8 {
    if ms.is_nan() || ms <= FLOOR_MS {
        return 1;
    }
    let code = 1.0 + (ms / FLOOR_MS).ln() / STEP.ln();
    code.round().clamp(1.0, 255.0) as u8
}

/// The time a code stands for, in milliseconds (`None` for 0).
pub fn ms(code: u8) -> Option<f64> {
    (code != 0).then(|| FLOOR_MS * STEP.powi(i32::from(code) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keep_times_within_a_few_percent() {
        for t in [0.2, 1.0, 3.7, 42.0, 150.0, 999.0, 4_000.0, 20_000.0] {
            let back = ms(quantize_ms(t)).unwrap();
            assert!((back / t - 1.0).abs() <= 0.026, "{t} ms came back {back}");
        }
        assert_eq!(quantize_ms(0.0), 1);
        assert_eq!(quantize_ms(f64::NAN), 1);
        assert_eq!(quantize_ms(1e9), 255);
        assert_eq!(ms(0), None);
    }

    #[test]
    fn summary_is_min_and_lower_median() {
        assert_eq!(Rtt::of(&mut []), Rtt::NONE);
        let r = Rtt::of(&mut [30.0, 10.0, 20.0, 400.0]);
        assert_eq!(r.min, quantize_ms(10.0));
        assert_eq!(r.median, quantize_ms(20.0));
        assert!(!r.is_none());
        assert_eq!(
            Rtt::from_ms(None, Some(5.0)),
            Rtt {
                min: quantize_ms(5.0),
                median: quantize_ms(5.0)
            }
        );
    }
}
