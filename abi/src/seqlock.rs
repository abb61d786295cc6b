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
//!
//! # 32-bit consumers
//!
//! A reader loads each 64-bit word either with one 64-bit atomic load or
//! with two 32-bit atomic loads (either order), all of them between S1 and
//! S4 (`docs/abi.md`, "The seq protocol"; design r3, section 6). Through
//! [`Word::load_relaxed`] this crate takes the second form on every
//! 32-bit target ([`WORDS_IN_HALVES`], selected by
//! `cfg(target_pointer_width = "32")`) and the first elsewhere:
//!
//! - Why: consumers map the table read-only, and Rust guarantees relaxed
//!   atomic loads on read-only memory only up to the pointer width
//!   (`core::sync::atomic`, "Atomic accesses to read-only memory"), even
//!   where `target_has_atomic = "64"` holds, as on i686. What a 64-bit
//!   atomic load becomes there is not promised: today's i686 code is an
//!   SSE2 `movq` (or an x87 `fild`), but without those units it is a
//!   `lock cmpxchg8b` or a library call, which writes and faults on a
//!   read-only mapping. Two aligned 32-bit loads are plain loads on every
//!   32-bit target.
//! - Why it stays consistent: the writer's stores to both halves of a word
//!   (one 64-bit store, or two 32-bit ones from a 32-bit producer) all
//!   happen between W1 and W4. The W2/S3 fence pairing argues per load,
//!   not per word: a reader whose S2 load of either half saw any W3 store
//!   of an update also sees that update's W1 at S4 and retries. So an
//!   accepted copy never joins halves of two different updates, exactly as
//!   it never joins two words of different updates.
//! - The halves are joined by byte order (`cfg(target_endian)`): the half
//!   at the lower address is the low half on little-endian targets and the
//!   high half on big-endian ones, so the joined value is the one a 64-bit
//!   load of the same bytes returns.
//! - The memory model's part: a 64-bit store raced by two 32-bit loads is
//!   a mixed-size access, which neither C11 nor Rust defines inside one
//!   program. The producer is another process or the hypervisor, the
//!   table is memory changed from outside the program (as for every read
//!   of it), and aligned 32-bit loads are single-copy atomic on every
//!   architecture concerned (x86, Arm32, Arm64). The tests follow suit:
//!   the loom model gives its writer two 32-bit stores per word
//!   ([`SplitWord`], what a 32-bit producer does, the case loom can
//!   express), and the torn-halves test of `vstats-consumer` runs its
//!   64-bit writer in a separate process.
//! - Outside the seq window no 64-bit value is read in halves: nothing
//!   here reads one there.

use crate::primitive::{fence, spin_loop, Ordering};
pub use crate::primitive::{AtomicU32, AtomicU64};

/// Whether this build reads every 64-bit word in two 32-bit halves
/// ([`Word::load_relaxed`] on a `core` `AtomicU64`): true on 32-bit
/// targets. See the module docs, "32-bit consumers".
pub const WORDS_IN_HALVES: bool = cfg!(target_pointer_width = "32");

mod sealed {
    /// Keeps [`super::Word`] implemented only here.
    pub trait Sealed {}
}

/// One 64-bit word of a record as the reader loads it at S2: the word
/// types [`read_words`] copies.
///
/// Implemented for `core`'s `AtomicU64` (the words of a mapped table; one
/// 64-bit load, or two 32-bit loads where [`WORDS_IN_HALVES`]), for
/// [`SplitWord`] (always two 32-bit loads) and, under `--cfg loom`, for
/// loom's `AtomicU64`. Sealed.
pub trait Word: sealed::Sealed {
    /// A relaxed atomic load of the word, valid on read-only memory: one
    /// 64-bit load, or two 32-bit loads joined by byte order. Only inside
    /// a seq window (S1 to S4) is a value loaded in halves meaningful.
    fn load_relaxed(&self) -> u64;
}

/// Joins the halves of a word, the one at the lower address first.
#[cfg(target_endian = "little")]
#[inline]
const fn join_halves([first, second]: [u32; 2]) -> u64 {
    (second as u64) << 32 | first as u64
}

/// Joins the halves of a word, the one at the lower address first.
#[cfg(target_endian = "big")]
#[inline]
const fn join_halves([first, second]: [u32; 2]) -> u64 {
    (first as u64) << 32 | second as u64
}

/// Splits a word into its halves, the one at the lower address first.
#[cfg(target_endian = "little")]
#[inline]
const fn split_halves(v: u64) -> [u32; 2] {
    [v as u32, (v >> 32) as u32]
}

/// Splits a word into its halves, the one at the lower address first.
#[cfg(target_endian = "big")]
#[inline]
const fn split_halves(v: u64) -> [u32; 2] {
    [(v >> 32) as u32, v as u32]
}

/// The 32-bit reader's load: both halves with relaxed loads, the lower
/// address first, joined by byte order. One function for the real words
/// and the model's, so loom checks the code i686 runs.
#[inline]
fn load_pair<H>(halves: &[H; 2], load: impl Fn(&H) -> u32) -> u64 {
    let [first, second] = halves;
    let first = load(first);
    let second = load(second);
    join_halves([first, second])
}

/// A relaxed load of `word` as two relaxed 32-bit loads, on any target:
/// the path [`Word::load_relaxed`] takes where [`WORDS_IN_HALVES`] (for
/// tests of that path on 64-bit hosts). Meaningful only inside a seq
/// window, where a torn pair is caught at S4.
#[inline]
pub fn load_in_halves(word: &core::sync::atomic::AtomicU64) -> u64 {
    load_pair(crate::primitive::halves(word), |h| {
        h.load(core::sync::atomic::Ordering::Relaxed)
    })
}

impl sealed::Sealed for core::sync::atomic::AtomicU64 {}
impl Word for core::sync::atomic::AtomicU64 {
    #[cfg(target_pointer_width = "32")]
    #[inline]
    fn load_relaxed(&self) -> u64 {
        load_in_halves(self)
    }

    #[cfg(not(target_pointer_width = "32"))]
    #[inline]
    fn load_relaxed(&self) -> u64 {
        self.load(core::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(loom)]
impl sealed::Sealed for loom::sync::atomic::AtomicU64 {}
#[cfg(loom)]
impl Word for loom::sync::atomic::AtomicU64 {
    fn load_relaxed(&self) -> u64 {
        self.load(Ordering::Relaxed)
    }
}

/// A 64-bit word held as two 32-bit atomics (loom's under `--cfg loom`):
/// the word as a 32-bit producer stores it, two halves inside the seq
/// window, and the word of the loom model of 32-bit reads.
#[derive(Debug)]
pub struct SplitWord {
    halves: [AtomicU32; 2],
}

impl SplitWord {
    /// A word holding `v`.
    pub fn new(v: u64) -> SplitWord {
        let [first, second] = split_halves(v);
        SplitWord {
            halves: [AtomicU32::new(first), AtomicU32::new(second)],
        }
    }

    /// Stores `v` as two relaxed 32-bit stores, the half at the lower
    /// address first: a W3 store of a 32-bit producer, so only between
    /// W1 and W4.
    pub fn store_in_halves(&self, v: u64) {
        let [first, second] = &self.halves;
        let [a, b] = split_halves(v);
        first.store(a, Ordering::Relaxed);
        second.store(b, Ordering::Relaxed);
    }
}

impl sealed::Sealed for SplitWord {}
impl Word for SplitWord {
    #[inline]
    fn load_relaxed(&self) -> u64 {
        load_pair(&self.halves, |h| h.load(Ordering::Relaxed))
    }
}

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

/// Copies `words` into `out` (as many as both hold) consistently, each
/// word with [`Word::load_relaxed`] (two 32-bit loads on 32-bit targets).
///
/// # Errors
///
/// [`Busy`] as for [`read_consistent`].
#[inline]
pub fn read_words<W: Word>(
    seq: &AtomicU32,
    words: &[W],
    out: &mut [u64],
    attempts: u32,
) -> Result<u32, Busy> {
    read_consistent(seq, attempts, || {
        for (o, w) in out.iter_mut().zip(words) {
            *o = w.load_relaxed();
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
    fn halves_join_to_the_word_a_64_bit_load_sees() {
        for v in [
            0,
            1,
            u64::MAX,
            0x0123_4567_89ab_cdef,
            0xffff_ffff,
            1 << 32,
            (1 << 32) + 1,
        ] {
            let split = split_halves(v);
            let mut bytes = [0u8; 8];
            bytes[..4].copy_from_slice(&split[0].to_ne_bytes());
            bytes[4..].copy_from_slice(&split[1].to_ne_bytes());
            assert_eq!(u64::from_ne_bytes(bytes), v, "split {v:#x}");
            assert_eq!(join_halves(split), v, "join {v:#x}");
            let word = AtomicU64::new(v);
            assert_eq!(load_in_halves(&word), v, "halves of {v:#x}");
            assert_eq!(word.load_relaxed(), v, "word {v:#x}");
            let s = SplitWord::new(0);
            s.store_in_halves(v);
            assert_eq!(s.load_relaxed(), v, "split word {v:#x}");
            assert_eq!(SplitWord::new(v).load_relaxed(), v);
        }
        assert_eq!(WORDS_IN_HALVES, cfg!(target_pointer_width = "32"));
    }

    #[test]
    fn reader_copies_split_words() {
        let seq = AtomicU32::new(2);
        let words = [SplitWord::new(u64::MAX - 1), SplitWord::new(1 << 32)];
        let mut out = [0u64; 2];
        assert_eq!(read_words(&seq, &words, &mut out, 1), Ok(2));
        assert_eq!(out, [u64::MAX - 1, 1 << 32]);
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
