//! A verdict's onset and end to the probing time, not the round.
//!
//! Verdicts open and close on rounds: an outage that began at round `r` began
//! somewhere between the previous round's samples and this one's, so timed
//! to the round it is known to ± a round. But each VP probes a block at its
//! own phase of the round (`darkwatch_schema::phase`), so N VPs sample a
//! scope N times a round. The onset then lies between the latest probing
//! time at which the scope was still seen up and the earliest at which it was
//! seen down, across VPs: that interval's midpoint is the estimate and its
//! half-width the uncertainty. With N evenly spread VPs the interval is
//! about a round over N wide. The end is the mirror image: between the
//! latest time seen down and the earliest seen up again.
//!
//! Pure: samples in, an interval out. The caller picks the samples (the
//! scope's blocks, as each VP judged them, in the rounds either side of the
//! transition) and their times (`RoundSchedule::slice_start_ms_of`).

use serde::{Deserialize, Serialize};

/// One VP's judgement of a scope (or a block) at its probing time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When it was probed (Unix ms).
    pub at_ms: i64,
    /// Seen up (`false`: seen down).
    pub up: bool,
}

/// A time known to an interval: `estimate_ms ± uncertainty_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Estimate {
    pub estimate_ms: i64,
    pub uncertainty_ms: i64,
}

impl Estimate {
    /// The midpoint and half-width of `[from_ms, to_ms]`.
    pub fn between(from_ms: i64, to_ms: i64) -> Estimate {
        let (lo, hi) = (from_ms.min(to_ms), from_ms.max(to_ms));
        Estimate {
            estimate_ms: lo + (hi - lo) / 2,
            uncertainty_ms: (hi - lo + 1) / 2,
        }
    }
}

/// When the samples went from up to down: between the latest up sample
/// before the earliest down one and that down one. `None` without a down
/// sample, or without an up sample before it (the outage began before the
/// samples do).
pub fn onset(samples: &[Sample]) -> Option<Estimate> {
    transition(samples, true)
}

/// When the samples went from down to up: between the latest down sample
/// before the earliest up one and that up one. `None` as [`onset`], mirrored.
pub fn end(samples: &[Sample]) -> Option<Estimate> {
    transition(samples, false)
}

/// The change from `from` (up or down) to the other state.
fn transition(samples: &[Sample], from: bool) -> Option<Estimate> {
    let first_new = samples
        .iter()
        .filter(|s| s.up != from)
        .map(|s| s.at_ms)
        .min()?;
    let last_old = samples
        .iter()
        .filter(|s| s.up == from && s.at_ms <= first_new)
        .map(|s| s.at_ms)
        .max()?;
    Some(Estimate::between(last_old, first_new))
}

#[cfg(test)]
mod tests {
    use darkwatch_schema::phase::{PhaseSlot, RoundSchedule};
    use ipnet::IpNet;

    use super::*;

    fn s(at_ms: i64, up: bool) -> Sample {
        Sample { at_ms, up }
    }

    #[test]
    fn the_interval_is_between_the_last_old_and_first_new_sample() {
        let samples = [
            s(0, true),
            s(40, true),
            s(70, false),
            s(100, false),
            s(55, true),
        ];
        let e = onset(&samples).unwrap();
        assert_eq!((e.estimate_ms, e.uncertainty_ms), (62, 8));
        assert_eq!(end(&samples), None, "never up again");
        assert_eq!(
            onset(&[s(5, false), s(9, false)]),
            None,
            "down from the start"
        );
        assert_eq!(onset(&[s(5, true)]), None, "never down");
        // A late up sample (a VP that still reached it) does not move the
        // start past the first down one.
        let e = onset(&[s(10, true), s(20, false), s(30, true)]).unwrap();
        assert_eq!(e, Estimate::between(10, 20));
        let e = end(&[s(10, false), s(25, false), s(35, true), s(50, true)]).unwrap();
        assert_eq!((e.estimate_ms, e.uncertainty_ms), (30, 5));
    }

    /// Ten VPs at evenly spread phases, a block outage at many instants of
    /// the round: the estimate holds the truth, and is known to about a
    /// tenth of the round (the first and last VP's samples in a round are
    /// further apart than the rest, across the end of the span).
    #[test]
    fn ten_staggered_vps_time_an_onset_to_about_a_tenth_of_the_round() {
        let interval_ms: i64 = 600_000;
        // 10-minute rounds, 2 s a block at worst: `schedule::span_ms`.
        let span_ms = 600_000 - (2_000 + 60_000);
        let block: IpNet = "198.18.7.0/24".parse().unwrap();
        let mut worst = 0;
        let mut uncertainties = Vec::new();
        for k in 0..200 {
            let outage_at = interval_ms + k * interval_ms / 200 + 1;
            let mut samples = Vec::new();
            for rank in 0..10 {
                for round in 0..3 {
                    let sch = RoundSchedule {
                        anchor_ms: round * interval_ms,
                        span_ms,
                        slices: 60,
                        phase: PhaseSlot { rank, of: 10 }.phase(60),
                    };
                    let at_ms = sch.slice_start_ms_of(&block);
                    samples.push(s(at_ms, at_ms < outage_at));
                }
            }
            let e = onset(&samples).expect("an onset");
            assert!(
                (e.estimate_ms - outage_at).abs() <= e.uncertainty_ms,
                "{e:?} vs {outage_at}"
            );
            worst = worst.max(e.uncertainty_ms);
            uncertainties.push(e.uncertainty_ms);
        }
        uncertainties.sort_unstable();
        assert!(worst <= interval_ms / 10, "{worst}");
        // Most onsets fall between two VPs a tenth of the span apart.
        assert!(uncertainties[100] <= interval_ms / 20, "{uncertainties:?}");
        // One VP alone knows it to half a round.
        let lone: Vec<Sample> = samples_of_one(interval_ms, span_ms, &block, interval_ms + 1);
        assert!(onset(&lone).unwrap().uncertainty_ms >= interval_ms / 2 - 1);
    }

    fn samples_of_one(
        interval_ms: i64,
        span_ms: u64,
        block: &IpNet,
        outage_at: i64,
    ) -> Vec<Sample> {
        (0..3)
            .map(|round| {
                let sch = RoundSchedule {
                    anchor_ms: round * interval_ms,
                    span_ms,
                    slices: 60,
                    phase: 0,
                };
                let at_ms = sch.slice_start_ms_of(block);
                s(at_ms, at_ms < outage_at)
            })
            .collect()
    }
}
