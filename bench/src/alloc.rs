//! A counting global allocator: live heap bytes and their peak, to
//! measure memory per tracked block (`memory`, `agent-scale`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// Counts live heap bytes, to measure memory per tracked block.
struct Counting;

pub(crate) static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Highest `LIVE` since the last [`reset_peak`].
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn add_live(by: isize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

pub(crate) fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

pub(crate) fn peak() -> isize {
    PEAK.load(Ordering::Relaxed)
}

pub(crate) fn reset_peak() {
    PEAK.store(live(), Ordering::Relaxed);
}

// SAFETY: forwards every call to the system allocator unchanged and only
// keeps a byte count on the side.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        add_live(l.size() as isize);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        add_live(new as isize - l.size() as isize);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;
