//! Runs of bad rounds: the hysteresis that turns a scope's bad and good
//! rounds into outage runs, and the run type the verdict stages share.
//!
//! Its own module so that `verdicts` and `instability` both read it and
//! neither imports the other's internals (stage 4 stays one-way:
//! `runs` <- `instability` <- `verdicts`).

use crate::Params;

/// Round indices: `start` is the first bad round, `end` the first good one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    pub start: usize,
    pub end: Option<usize>,
}

impl Run {
    pub fn covers(&self, r: usize) -> bool {
        self.start <= r && self.end.is_none_or(|e| r < e)
    }

    pub fn contains(&self, o: &Run) -> bool {
        self.start <= o.start
            && match (self.end, o.end) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(a), Some(b)) => b <= a,
            }
    }
}

/// Open after `open_after` consecutive bad rounds (the run starts at the
/// first of them), close after `close_after` consecutive good rounds (the run
/// ends at the first of those).
pub(crate) struct Hysteresis {
    open_after: u32,
    close_after: u32,
    bad: u32,
    bad_start: usize,
    open: Option<usize>,
    good: u32,
    good_start: usize,
}

impl Hysteresis {
    pub fn new(p: &Params) -> Self {
        Hysteresis {
            open_after: p.open_after.max(1),
            close_after: p.close_after.max(1),
            bad: 0,
            bad_start: 0,
            open: None,
            good: 0,
            good_start: 0,
        }
    }

    pub fn step(&mut self, r: usize, bad: bool) -> Option<Run> {
        match self.open {
            None if bad => {
                if self.bad == 0 {
                    self.bad_start = r;
                }
                self.bad += 1;
                if self.bad >= self.open_after {
                    self.open = Some(self.bad_start);
                    self.good = 0;
                }
                None
            }
            None => {
                self.bad = 0;
                None
            }
            Some(_) if bad => {
                self.good = 0;
                None
            }
            Some(start) => {
                if self.good == 0 {
                    self.good_start = r;
                }
                self.good += 1;
                if self.good < self.close_after {
                    return None;
                }
                self.open = None;
                self.bad = 0;
                Some(Run {
                    start,
                    end: Some(self.good_start),
                })
            }
        }
    }

    /// Ends an open run at `r` (something else now explains the rounds).
    pub fn force_close(&mut self, r: usize) -> Option<Run> {
        self.bad = 0;
        self.good = 0;
        self.open.take().map(|start| Run {
            start,
            end: Some(r),
        })
    }

    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    pub fn finish(self) -> Option<Run> {
        self.open.map(|start| Run { start, end: None })
    }
}
