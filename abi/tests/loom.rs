//! A loom model of the seq protocol: one writer, one reader, every
//! interleaving and every value the memory model lets a relaxed load
//! return. Run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p vstats-abi --test loom --release`.
//!
//! The model accepts a snapshot only if it is one the writer really
//! published: both counters equal and equal to the number of updates the
//! snapshot's seq says were finished. The same model run on a writer whose
//! final store is weakened to `Relaxed`, or a reader missing its acquire
//! fence, must fail: that shows the model can catch a broken ordering.
//!
//! The split model checks 32-bit reads (`vstats_abi::seqlock`, "32-bit
//! consumers"): its writer stores each word as two 32-bit halves
//! ([`SplitWord::store_in_halves`], what a 32-bit producer does) and its
//! reader loads them with two 32-bit loads ([`seqlock::Word`], the code
//! i686 runs). The halves of every value it writes are equal, so an
//! accepted copy that joins halves of two different writes shows.
#![cfg(loom)]

use loom::{sync::Arc, thread};
use vstats_abi::seqlock::{self, AtomicU32, AtomicU64, SeqWriter, SplitWord, Word};

struct Record {
    seq: AtomicU32,
    a: AtomicU64,
    b: AtomicU64,
}

#[derive(Clone, Copy)]
enum Variant {
    Correct,
    /// The writer's batched form, `SeqWriter::write`.
    Batched,
    WeakWriterEnd,
    WeakReaderFence,
}

const UPDATES: u64 = 2;

fn model(variant: Variant) {
    loom::model(move || {
        let rec = Arc::new(Record {
            seq: AtomicU32::new(0),
            a: AtomicU64::new(0),
            b: AtomicU64::new(0),
        });
        let w = rec.clone();
        let writer = thread::spawn(move || {
            let mut sw = SeqWriter::new(0);
            for v in 1..=UPDATES {
                if let Variant::Batched = variant {
                    sw.write(&w.seq, || {
                        w.a.store(v, loom::sync::atomic::Ordering::Relaxed);
                        w.b.store(v, loom::sync::atomic::Ordering::Relaxed);
                    });
                    continue;
                }
                sw.begin(&w.seq);
                w.a.store(v, loom::sync::atomic::Ordering::Relaxed);
                w.b.store(v, loom::sync::atomic::Ordering::Relaxed);
                match variant {
                    Variant::WeakWriterEnd => sw.end_weakened(&w.seq),
                    _ => sw.end(&w.seq),
                }
            }
        });
        let body = || {
            (
                rec.a.load(loom::sync::atomic::Ordering::Relaxed),
                rec.b.load(loom::sync::atomic::Ordering::Relaxed),
            )
        };
        let got = match variant {
            Variant::WeakReaderFence => seqlock::read_consistent_weakened(&rec.seq, 2, body),
            _ => seqlock::read_consistent(&rec.seq, 2, body),
        };
        if let Ok((seq, (a, b))) = got {
            assert_eq!(seq % 2, 0, "accepted an odd seq");
            assert_eq!(a, b, "torn snapshot accepted: a={a} b={b} seq={seq}");
            assert_eq!(
                a,
                u64::from(seq / 2),
                "snapshot does not match its seq {seq}"
            );
        }
        writer.join().unwrap();
    });
}

#[test]
fn no_torn_snapshot_is_accepted() {
    model(Variant::Correct);
}

#[test]
fn no_torn_snapshot_is_accepted_from_a_batched_writer() {
    model(Variant::Batched);
}

/// Runs the model on a broken variant and returns its failure message.
fn failure_of(variant: Variant) -> String {
    let err = std::panic::catch_unwind(|| model(variant))
        .expect_err("the model accepted a broken ordering");
    err.downcast_ref::<String>().cloned().unwrap_or_default()
}

#[test]
fn model_catches_a_relaxed_writer_end() {
    let msg = failure_of(Variant::WeakWriterEnd);
    assert!(msg.contains("snapshot"), "failed for another reason: {msg}");
}

#[test]
fn model_catches_a_reader_without_its_fence() {
    let msg = failure_of(Variant::WeakReaderFence);
    assert!(msg.contains("snapshot"), "failed for another reason: {msg}");
}

/// A record whose two words are held as 32-bit halves.
struct SplitRecord {
    seq: AtomicU32,
    words: [SplitWord; 2],
}

/// Update `v`'s value: the same `v` in both halves (`v + 2^32 v`).
fn halves_value(v: u64) -> u64 {
    v * ((1 << 32) + 1)
}

fn split_model(weak_reader: bool) {
    loom::model(move || {
        let rec = Arc::new(SplitRecord {
            seq: AtomicU32::new(0),
            words: [SplitWord::new(0), SplitWord::new(0)],
        });
        let w = rec.clone();
        let writer = thread::spawn(move || {
            let mut sw = SeqWriter::new(0);
            for v in 1..=UPDATES {
                sw.write(&w.seq, || {
                    for word in &w.words {
                        word.store_in_halves(halves_value(v));
                    }
                });
            }
        });
        let mut out = [0u64; 2];
        let got = if weak_reader {
            seqlock::read_consistent_weakened(&rec.seq, 2, || {
                for (o, w) in out.iter_mut().zip(&rec.words) {
                    *o = w.load_relaxed();
                }
            })
            .map(|(s, ())| s)
        } else {
            seqlock::read_words(&rec.seq, &rec.words, &mut out, 2)
        };
        if let Ok(seq) = got {
            assert_eq!(seq % 2, 0, "accepted an odd seq");
            for w in out {
                assert_eq!(
                    w >> 32,
                    w & 0xffff_ffff,
                    "snapshot mixes halves of two writes: {w:#x} at seq {seq}"
                );
            }
            assert_eq!(
                out,
                [halves_value(u64::from(seq / 2)); 2],
                "snapshot does not match its seq {seq}"
            );
        }
        writer.join().unwrap();
    });
}

#[test]
fn no_snapshot_mixes_halves_of_two_writes() {
    split_model(false);
}

#[test]
fn split_model_catches_a_reader_without_its_fence() {
    let err = std::panic::catch_unwind(|| split_model(true))
        .expect_err("the split model accepted a reader without its fence");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("snapshot"), "failed for another reason: {msg}");
}
