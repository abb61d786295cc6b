//! The seq protocol catches tearing, shown deterministically: the producer
//! is held mid-update at a chosen instant inside the reader's copy, not
//! left to the scheduler.
//!
//! The record's seq sits at the end of one page and its counter words at
//! the start of the next, which is made inaccessible. The reader loads the
//! seq (even), then its first load of a counter word faults (`SIGSEGV`);
//! the test's handler plays the producer: it begins an update (seq odd),
//! stores half of the new words, makes the page readable again and returns,
//! leaving the update unfinished. The copy then resumes and reads a
//! half-updated record. A sound copy path sees the seq changed and never
//! accepts it; the deliberately broken path (no seq re-read, feature
//! `broken-copy`) accepts the torn copy, every time.
//!
//! One test in its own binary: the `SIGSEGV` handler is process-wide.
#![cfg(all(
    feature = "broken-copy",
    target_os = "linux",
    target_arch = "x86_64",
    not(miri)
))]

use std::{
    ptr,
    sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering},
};

use vstats_consumer::mem::{copy_path, set_copy_path, CopyPath, MemView};

const PAGE: usize = 4096;
const WORDS: usize = 4;
/// The seq's offset: 8 bytes before the second page.
const SEQ: usize = PAGE - 8;

/// The mapping's address, for the handler.
static BASE: AtomicUsize = AtomicUsize::new(0);
/// Faults the handler served.
static FAULTS: AtomicUsize = AtomicUsize::new(0);

fn seq_word(base: usize) -> &'static AtomicU32 {
    // SAFETY: `base + SEQ` is 4-aligned inside the test's mapping, which
    // stays mapped until the end of the test; accessed only atomically.
    unsafe { AtomicU32::from_ptr((base + SEQ) as *mut u32) }
}

fn counter(base: usize, k: usize) -> &'static AtomicU64 {
    // SAFETY: as for `seq_word`: 8-aligned, in the mapping, atomic only.
    unsafe { AtomicU64::from_ptr((base + PAGE + 8 * k) as *mut u64) }
}

fn protect(base: usize, prot: i32) {
    // SAFETY: the second page of our own mapping.
    let r = unsafe { libc::mprotect((base + PAGE) as *mut libc::c_void, PAGE, prot) };
    assert_eq!(r, 0);
}

/// The producer, run at the reader's first touch of the counters: begins
/// an update, stores half of it, and stops there.
extern "C" fn on_segv(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: the kernel passes a valid `siginfo_t` with `SA_SIGINFO`.
    let info = unsafe { &*info };
    // SAFETY: a `SIGSEGV`'s `siginfo_t` holds the faulting address.
    let addr = unsafe { info.si_addr() } as usize;
    if base == 0 || !(base + PAGE..base + 2 * PAGE).contains(&addr) {
        // Not ours: die of it as a fault would.
        // SAFETY: restoring the default action and raising the signal
        // again; both async-signal safe.
        unsafe {
            libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        }
        // SAFETY: as above.
        unsafe { libc::raise(libc::SIGSEGV) };
        return;
    }
    FAULTS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the second page of our mapping; `mprotect` is a system call,
    // async-signal safe.
    unsafe {
        libc::mprotect(
            (base + PAGE) as *mut libc::c_void,
            PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
        );
    }
    let s = seq_word(base).load(Ordering::Relaxed);
    seq_word(base).store(s + 1, Ordering::Relaxed);
    for k in 0..WORDS / 2 {
        counter(base, k).store(2, Ordering::Relaxed);
    }
}

/// Seq 2, every word 1, the counters' page inaccessible.
fn arm(base: usize) {
    protect(base, libc::PROT_READ | libc::PROT_WRITE);
    seq_word(base).store(2, Ordering::Relaxed);
    for k in 0..WORDS {
        counter(base, k).store(1, Ordering::Relaxed);
    }
    protect(base, libc::PROT_NONE);
}

#[test]
fn a_copy_without_the_seq_re_read_is_caught_tearing_and_the_real_paths_are_not() {
    // SAFETY: a fresh private anonymous mapping of two pages.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            2 * PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    let base = p as usize;
    BASE.store(base, Ordering::Relaxed);
    // SAFETY: zeroed is a valid `sigaction`; the handler only uses atomics
    // and `mprotect`.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = on_segv as *const () as usize;
    act.sa_flags = libc::SA_SIGINFO;
    // SAFETY: zeroed is a valid `sigaction`.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: installing a valid action, keeping the old one.
    assert_eq!(unsafe { libc::sigaction(libc::SIGSEGV, &act, &mut old) }, 0);
    // SAFETY: the mapping stays mapped until the `munmap` below, after the
    // view's last use; this process writes it only atomically.
    let view = unsafe { MemView::from_raw_parts(p.cast(), 2 * PAGE, None) }.unwrap();
    let best = copy_path();
    let mut out = [0u64; WORDS];

    // The broken path accepts the half-updated copy.
    assert!(set_copy_path(CopyPath::BrokenNoRecheck));
    arm(base);
    let r = view.read_seq_words(SEQ as u64, PAGE as u64, &mut out, 4);
    assert_eq!(
        FAULTS.load(Ordering::Relaxed),
        1,
        "the producer ran inside the copy"
    );
    assert_eq!(r, Some(Ok(2)), "the broken path accepts the copy");
    assert_eq!(out, [2, 2, 1, 1], "and it is torn");

    // Every real path sees the update and never accepts it.
    let paths: Vec<CopyPath> = CopyPath::available()
        .into_iter()
        .filter(|p| *p != CopyPath::Atomic)
        .collect();
    assert!(!paths.is_empty());
    for (n, path) in paths.iter().enumerate() {
        assert!(set_copy_path(*path));
        arm(base);
        out = [0; WORDS];
        let r = view.read_seq_words(SEQ as u64, PAGE as u64, &mut out, 4);
        assert_eq!(FAULTS.load(Ordering::Relaxed), n + 2, "{path:?}");
        let busy = r.unwrap().unwrap_err();
        assert_eq!((busy.seq, busy.attempts), (3, 4), "{path:?}");
        // The producer finishes: the record reads consistently.
        for k in WORDS / 2..WORDS {
            counter(base, k).store(2, Ordering::Relaxed);
        }
        seq_word(base).store(4, Ordering::Relaxed);
        assert_eq!(
            view.read_seq_words(SEQ as u64, PAGE as u64, &mut out, 4),
            Some(Ok(4)),
            "{path:?}"
        );
        assert_eq!(out, [2; WORDS], "{path:?}");
    }

    assert!(set_copy_path(best));
    drop(view);
    // SAFETY: restoring the handler that was there.
    unsafe { libc::sigaction(libc::SIGSEGV, &old, ptr::null_mut()) };
    BASE.store(0, Ordering::Relaxed);
    // SAFETY: our mapping, no longer used.
    assert_eq!(unsafe { libc::munmap(p, 2 * PAGE) }, 0);
}
