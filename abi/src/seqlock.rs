//! The seq protocol: one writer per record, any number of readers, no
//! locks and no atomic read-modify-write.
//!
//! Encoding: a record's `seq` word is even at rest and odd while an update
//! is in progress. It only grows (modulo 2^32, which keeps the parity).
//!
//! Call order and orderings (`docs/abi.md`, "The seq protocol"):
//!
//! | writer ([`SeqWriter`])              | reader ([`read_consistent`])             |
//! |-------------------------------------|------------------------------------------|
//! | W1 `seq.store(s+1, Relaxed)`        | S1 `s1 = seq.load(Relaxed)`; `fence(Acquire)`; odd: retry |
//! | W2 `fence(Release)`                 | S2 counters: `load(Relaxed)` each        |
//! | W3 counters: `store(Relaxed)` each  | S3 `fence(Acquire)`                      |
//! | W4 `seq.store(s+2, Release)`        | S4 `s2 = seq.load(Relaxed)`; `s1 != s2`: retry |
//!
//! Pairings: W4 (release store) with S1 (relaxed load then acquire fence):
//! a reader that sees `s+2` sees every counter stored before it. S1 is a
//! relaxed load plus a fence rather than an acquire load because Rust
//! guarantees only `Relaxed` atomic loads on read-only memory, and
//! consumers map the table read-only; the ordering is the same. W2 (release fence) with S3
//! (acquire fence): a reader whose S2 saw any counter stored at W3 of an
//! update also sees W1 of that update at S4, so `s2 != s1` and it retries.
//! On x86-64 every one of these is a plain `mov`; the fences only stop the
//! compiler from reordering.
//!
//! Counters are read with atomic loads, never plain ones: the writer
//! stores to them concurrently, and a plain read racing a write is
//! undefined behaviour in Rust (and C11), even if the value is then
//! thrown away.
//!
//! The writer keeps its seq privately and never reads the shared word
//! back: a consumer that scribbles on the table cannot change what the
//! producer writes next.

use crate::primitive::{fence, spin_loop, Ordering};
pub use crate::primitive::{AtomicU32, AtomicU64};

/// The writer's private seq for one record. Not `Clone`: one writer per
/// record.
#[derive(Debug)]
pub struct SeqWriter {
    seq: u32,
}

impl SeqWriter {
    /// A writer whose record's seq currently holds `initial` (even; an odd
    /// value is made even by rounding up).
    pub const fn new(initial: u32) -> SeqWriter {
        SeqWriter {
            seq: initial.wrapping_add(initial & 1),
        }
    }

    /// The seq value the shared word holds after the writer's last store.
    #[inline]
    pub const fn current(&self) -> u32 {
        self.seq
    }

    /// Whether an update is in progress (between `begin` and `end`).
    #[inline]
    pub const fn in_update(&self) -> bool {
        self.seq & 1 == 1
    }

    /// W1 and W2: marks the record as being updated. Idempotent while an
    /// update is already in progress.
    #[inline]
    pub fn begin(&mut self, seq: &AtomicU32) {
        if self.in_update() {
            return;
        }
        self.seq = self.seq.wrapping_add(1);
        seq.store(self.seq, Ordering::Relaxed);
        fence(Ordering::Release);
    }

    /// W4: publishes the update. Does nothing when no update is in
    /// progress.
    #[inline]
    pub fn end(&mut self, seq: &AtomicU32) {
        self.end_with(seq, Ordering::Release);
    }

    #[inline]
    fn end_with(&mut self, seq: &AtomicU32, order: Ordering) {
        if !self.in_update() {
            return;
        }
        self.seq = self.seq.wrapping_add(1);
        seq.store(self.seq, order);
    }

    /// W1 to W4 around `stores` (which must only do relaxed atomic stores
    /// of the record's counters), with the seq kept in a local variable
    /// (a register) across the update and written back to `self` once, at
    /// the end: `begin`, the stores and `end` in one call, without the
    /// reload of the private seq that the fence after W1 forces on
    /// separate `begin` and `end` calls. An update already in progress
    /// (begun, not ended) is finished by it, as `end` would.
    #[inline]
    pub fn write<R>(&mut self, seq: &AtomicU32, stores: impl FnOnce() -> R) -> R {
        let s = self.seq;
        let odd = s | 1;
        if s & 1 == 0 {
            seq.store(odd, Ordering::Relaxed);
            fence(Ordering::Release);
        }
        let r = stores();
        let even = odd.wrapping_add(1);
        seq.store(even, Ordering::Release);
        self.seq = even;
        r
    }

    /// The model's deliberately broken writer: W4 with `Relaxed` instead of
    /// `Release`. Exists only under `--cfg loom`, to show that the loom
    /// model catches a weakened ordering.
    #[cfg(loom)]
    pub fn end_weakened(&mut self, seq: &AtomicU32) {
        self.end_with(seq, Ordering::Relaxed);
    }
}

/// The record stayed odd, or kept changing, for every attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Busy {
    /// The last seq value seen.
    pub seq: u32,
    /// Attempts made.
    pub attempts: u32,
}

/// S1 to S4: runs `body` (which must only do relaxed atomic loads of the
/// record) until it ran entirely inside one even seq value, at most
/// `attempts` times (0 is taken as 1), and returns that seq and the body's
/// result. Between attempts it calls `core::hint::spin_loop`.
///
/// # Errors
///
/// [`Busy`] when no attempt was consistent: the writer is mid-update (or
/// died mid-update) or updating faster than the reader can copy.
#[inline]
pub fn read_consistent<R>(
    seq: &AtomicU32,
    attempts: u32,
    mut body: impl FnMut() -> R,
) -> Result<(u32, R), Busy> {
    read_with(seq, attempts, true, &mut body)
}

#[inline]
fn read_with<R>(
    seq: &AtomicU32,
    attempts: u32,
    with_fence: bool,
    body: &mut impl FnMut() -> R,
) -> Result<(u32, R), Busy> {
    let attempts = attempts.max(1);
    let mut last = 0;
    for _ in 0..attempts {
        // S1.
        let s1 = seq.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        last = s1;
        if s1 & 1 == 0 {
            let r = body();
            if with_fence {
                fence(Ordering::Acquire);
            }
            let s2 = seq.load(Ordering::Relaxed);
            if s1 == s2 {
                return Ok((s1, r));
            }
            last = s2;
        }
        spin_loop();
    }
    Err(Busy {
        seq: last,
        attempts,
    })
}

/// The model's deliberately broken reader: without S3. Exists only under
/// `--cfg loom`.
#[cfg(loom)]
pub fn read_consistent_weakened<R>(
    seq: &AtomicU32,
    attempts: u32,
    mut body: impl FnMut() -> R,
) -> Result<(u32, R), Busy> {
    read_with(seq, attempts, false, &mut body)
}

/// Copies `words` into `out` (as many as both hold) consistently.
///
/// # Errors
///
/// [`Busy`] as for [`read_consistent`].
#[inline]
pub fn read_words(
    seq: &AtomicU32,
    words: &[AtomicU64],
    out: &mut [u64],
    attempts: u32,
) -> Result<u32, Busy> {
    read_consistent(seq, attempts, || {
        for (o, w) in out.iter_mut().zip(words) {
            *o = w.load(Ordering::Relaxed);
        }
    })
    .map(|(s, ())| s)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn writer_parity() {
        let seq = AtomicU32::new(0);
        let mut w = SeqWriter::new(0);
        w.begin(&seq);
        assert_eq!(seq.load(Ordering::Relaxed), 1);
        w.begin(&seq);
        assert_eq!(seq.load(Ordering::Relaxed), 1, "begin is idempotent");
        w.end(&seq);
        assert_eq!(seq.load(Ordering::Relaxed), 2);
        w.end(&seq);
        assert_eq!(
            seq.load(Ordering::Relaxed),
            2,
            "end without begin does nothing"
        );
        assert_eq!(w.write(&seq, || 5), 5);
        assert_eq!((seq.load(Ordering::Relaxed), w.current()), (4, 4));
        w.begin(&seq);
        w.write(&seq, || ());
        assert_eq!(
            (seq.load(Ordering::Relaxed), w.current()),
            (6, 6),
            "write finishes an update in progress"
        );
        assert_eq!(SeqWriter::new(5).current(), 6);
        let mut w = SeqWriter::new(u32::MAX - 1);
        w.begin(&seq);
        w.end(&seq);
        assert_eq!(seq.load(Ordering::Relaxed), 0, "wraps keeping parity");
    }

    #[test]
    fn reader_copies_when_even_and_reports_busy_when_odd() {
        let seq = AtomicU32::new(4);
        let words = [AtomicU64::new(1), AtomicU64::new(2)];
        let mut out = [0u64; 3];
        assert_eq!(read_words(&seq, &words, &mut out, 1), Ok(4));
        assert_eq!(out, [1, 2, 0]);
        seq.store(5, Ordering::Relaxed);
        let busy = |attempts| Err(Busy { seq: 5, attempts });
        assert_eq!(read_words(&seq, &words, &mut out, 10), busy(10));
        assert_eq!(
            read_words(&seq, &words, &mut out, 0),
            busy(1),
            "0 attempts means 1"
        );
    }

    #[test]
    fn reader_retries_when_seq_moves_during_the_copy() {
        let seq = AtomicU32::new(2);
        let mut calls = 0;
        let r = read_consistent(&seq, 4, || {
            calls += 1;
            if calls == 1 {
                // A whole update happens while the first copy runs.
                seq.store(4, Ordering::Relaxed);
            }
            calls
        });
        assert_eq!(r, Ok((4, 2)));
    }

    #[test]
    fn consistent_against_the_writer_across_threads() {
        extern crate std;
        // Small enough for Miri, which checks every access for data races.
        const UPDATES: u64 = if cfg!(miri) { 20 } else { 20_000 };
        let seq = AtomicU32::new(0);
        let words = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut w = SeqWriter::new(0);
                for v in 1..=UPDATES {
                    w.begin(&seq);
                    for word in &words {
                        word.store(v, Ordering::Relaxed);
                    }
                    w.end(&seq);
                }
            });
            let mut out = [0u64; 3];
            let mut seen = 0;
            while seen < UPDATES {
                if let Ok(s) = read_words(&seq, &words, &mut out, 64) {
                    assert!(out.iter().all(|&x| x == out[0]), "torn read {out:?}");
                    assert_eq!(u64::from(s / 2), out[0], "values do not match seq {s}");
                    assert!(out[0] >= seen, "went back from {seen} to {}", out[0]);
                    seen = out[0];
                }
            }
        });
    }
}
