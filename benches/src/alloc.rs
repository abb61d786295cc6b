//! A counting global allocator for memory measurements: the system
//! allocator, plus counts of the bytes and blocks allocated and of the
//! bytes live now and at the peak. A benchmark binary installs it with
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: vstats_benches::alloc::Counting = vstats_benches::alloc::Counting;
//! ```
//!
//! and reads [`stats`] around what it measures ([`reset_peak`] first).
//! Every count is a relaxed atomic: exact in a single-threaded
//! measurement, approximate while other threads allocate.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicU64, Ordering},
};

static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static BLOCKS: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

/// The system allocator, counting (see the [module](self) docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct Counting;

fn on_alloc(size: usize) {
    let size = size as u64;
    ALLOCATED.fetch_add(size, Ordering::Relaxed);
    BLOCKS.fetch_add(1, Ordering::Relaxed);
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

fn on_free(size: usize) {
    LIVE.fetch_sub(size as u64, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are this allocator's; the counting
// touches only atomics and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract,
        // which is `System::alloc`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a block this allocator (that is,
        // `System`) returned, with its layout.
        unsafe { System.dealloc(ptr, layout) };
        on_free(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract,
        // which is `System::realloc`'s.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            on_free(layout.size());
            on_alloc(new_size);
        }
        p
    }
}

/// The counts since the program started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// Bytes allocated (a `realloc` counts its new size).
    pub allocated: u64,
    /// Blocks allocated (a `realloc` counts one).
    pub blocks: u64,
    /// Bytes live now.
    pub live: u64,
    /// The most bytes live at once since the last [`reset_peak`].
    pub peak: u64,
}

/// The counts now (all zero when [`Counting`] is not the global
/// allocator).
pub fn stats() -> AllocStats {
    AllocStats {
        allocated: ALLOCATED.load(Ordering::Relaxed),
        blocks: BLOCKS.load(Ordering::Relaxed),
        live: LIVE.load(Ordering::Relaxed),
        peak: PEAK.load(Ordering::Relaxed),
    }
}

/// Starts a new peak from the bytes live now.
pub fn reset_peak() {
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// This process's resident set size in bytes (`/proc/self/statm`), or 0
/// when it cannot be read.
pub fn rss_bytes() -> u64 {
    let page = 4096;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page)
}
