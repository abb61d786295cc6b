//! The reader half of the seq protocol, as `vstats_abi::seqlock` defines
//! it, with only `Relaxed` loads of the shared memory.
//!
//! `vstats_abi::seqlock::read_words` does step R1 as `seq.load(Acquire)`.
//! The standard library guarantees only `Relaxed` atomic loads on
//! read-only memory (see [`crate::raw`]), and file tables are mapped
//! read-only, so this copy does R1 as `seq.load(Relaxed)` followed by
//! `fence(Acquire)`. That is the same ordering: an acquire fence after a
//! relaxed load that read the value of a release store synchronizes with
//! that store (W4), exactly as an acquire load would. Steps R2-R4 are the
//! ABI crate's, unchanged:
//!
//! | step | here                                                      |
//! |------|-----------------------------------------------------------|
//! | R1   | `s1 = seq.load(Relaxed)`; `fence(Acquire)`; odd: retry    |
//! | R2   | each counter word `load(Relaxed)`                         |
//! | R3   | `fence(Acquire)` (pairs with the writer's W2 release fence) |
//! | R4   | `s2 = seq.load(Relaxed)`; `s1 != s2`: retry               |
//!
//! Between attempts the reader calls [`core::hint::spin_loop`]. The number
//! of attempts is bounded by the caller, so a writer that died between W1
//! and W4 (seq left odd) makes the read fail, never hang.

use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

pub use vstats_abi::seqlock::Busy;

/// Copies `words` into `out` (as many as both hold) inside one even seq
/// value, making at most `attempts` attempts (at least one). Returns the
/// seq value the copy is consistent with.
///
/// # Errors
///
/// [`Busy`] with the last seq seen and the attempts made, when no attempt
/// was consistent.
pub(crate) fn read_words(
    seq: &AtomicU32,
    words: &[AtomicU64],
    out: &mut [u64],
    attempts: u32,
) -> Result<u32, Busy> {
    let attempts = attempts.max(1);
    let mut last = 0;
    for _ in 0..attempts {
        // R1.
        let s1 = seq.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        last = s1;
        if s1 & 1 == 0 {
            // R2.
            for (o, w) in out.iter_mut().zip(words) {
                *o = w.load(Ordering::Relaxed);
            }
            // R3, R4.
            fence(Ordering::Acquire);
            let s2 = seq.load(Ordering::Relaxed);
            if s1 == s2 {
                return Ok(s1);
            }
            last = s2;
        }
        core::hint::spin_loop();
    }
    Err(Busy {
        seq: last,
        attempts,
    })
}

#[cfg(test)]
mod tests {
    use vstats_abi::seqlock::SeqWriter;

    use super::*;

    #[test]
    fn copies_when_even_busy_when_odd() {
        let seq = AtomicU32::new(4);
        let words = [AtomicU64::new(1), AtomicU64::new(2)];
        let mut out = [0u64; 3];
        assert_eq!(read_words(&seq, &words, &mut out, 1), Ok(4));
        assert_eq!(out, [1, 2, 0]);
        seq.store(5, Ordering::Relaxed);
        assert_eq!(
            read_words(&seq, &words, &mut out, 7),
            Err(Busy {
                seq: 5,
                attempts: 7
            })
        );
        // Zero attempts is taken as one.
        assert_eq!(
            read_words(&seq, &words, &mut out, 0),
            Err(Busy {
                seq: 5,
                attempts: 1
            })
        );
    }

    #[test]
    fn consistent_against_the_abi_writer_across_threads() {
        // Small enough for Miri; Miri checks every access for data races.
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
                if read_words(&seq, &words, &mut out, 64).is_ok() {
                    assert!(out.iter().all(|&x| x == out[0]), "torn read {out:?}");
                    assert!(out[0] >= seen, "went back from {seen} to {}", out[0]);
                    seen = out[0];
                }
            }
        });
    }
}
