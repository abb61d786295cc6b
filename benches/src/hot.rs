//! The hot paths the benchmarks time, each behind `#[inline(never)]` so
//! that every variant pays the same call and its machine code can be read
//! on its own (`docs/benchmarks.md`, "Assembly").
//!
//! Writer side, four 8-byte counters each:
//!
//! - [`producer_update4`]: the producer's API, `RecordWriter::update` with
//!   four `Update::set` (seq to odd, four stores, seq to even);
//! - [`seqlock_update4`]: the protocol alone, `vstats_abi::seqlock`'s
//!   `SeqWriter` around four relaxed stores, without the producer's enable
//!   switch, bounds checks or inactive-bit check;
//! - [`plain_atomic_store4`]: the baseline, the same four stores into a
//!   plain struct with no seq: relaxed atomic stores, i.e. what C's plain
//!   `p->c[k] = v` compiles to on x86-64 (one `mov` each), but legal in
//!   Rust while another thread reads the struct;
//! - [`plain_store4`]: four non-atomic stores through `&mut`, which the
//!   compiler may merge into vector stores. Shown for reference only: no
//!   other thread may read that memory while it is written.
//!
//! Reader side: [`read_record_raw`] and [`sweep_raw`] are the seq
//! protocol alone (`vstats_abi::seqlock::read_words` per record), against
//! which the consumer API (`Table::snapshot_record`, `Table::snapshot`)
//! and a `memcpy` of the same bytes are timed.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use vstats_abi::seqlock::{read_words, Busy, SeqWriter};
use vstats_consumer::DEFAULT_MAX_ATTEMPTS;
use vstats_producer::RecordWriter;

use crate::fixture::RecordRef;

/// A record with a seq word, outside any table: what
/// [`seqlock_update4`] writes.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub struct SeqRecord {
    /// The seq word.
    pub seq: AtomicU32,
    /// Padding, as in a table record.
    pub pad: AtomicU32,
    /// Four counters.
    pub counters: [AtomicU64; 4],
}

/// A plain struct of four counters, no seq, on a cacheline of its own:
/// the writer baseline.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub struct PlainRecord {
    /// Four counters.
    pub counters: [AtomicU64; 4],
}

/// The same struct with non-atomic counters.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub struct PlainRecordNa {
    /// Four counters.
    pub counters: [u64; 4],
}

/// One producer update of counters 0..4 to `v, v+1, v+2, v+3`. Returns
/// whether it ran (false while the table is disabled).
#[inline(never)]
pub fn producer_update4(w: &mut RecordWriter<'_>, v: u64) -> bool {
    w.update(|u| {
        u.set(0, v);
        u.set(1, v.wrapping_add(1));
        u.set(2, v.wrapping_add(2));
        u.set(3, v.wrapping_add(3));
    })
}

/// The same update through the batched API: `RecordWriter::update_words`
/// of the four values (seq kept in a register, one bounds check).
#[inline(never)]
pub fn producer_update_words4(w: &mut RecordWriter<'_>, v: u64) -> bool {
    w.update_words(
        0,
        &[v, v.wrapping_add(1), v.wrapping_add(2), v.wrapping_add(3)],
    )
    .is_some()
}

/// The seq protocol around the same four stores, without the producer's
/// API: W1 seq odd, W2 release fence, W3 four relaxed stores, W4 seq even
/// (release).
#[inline(never)]
pub fn seqlock_update4(sw: &mut SeqWriter, r: &SeqRecord, v: u64) {
    sw.begin(&r.seq);
    r.counters[0].store(v, Ordering::Relaxed);
    r.counters[1].store(v.wrapping_add(1), Ordering::Relaxed);
    r.counters[2].store(v.wrapping_add(2), Ordering::Relaxed);
    r.counters[3].store(v.wrapping_add(3), Ordering::Relaxed);
    sw.end(&r.seq);
}

/// The baseline: the same four stores into a plain struct, no seq, no
/// fence (relaxed atomic stores: a plain `mov` each on x86-64).
#[inline(never)]
pub fn plain_atomic_store4(r: &PlainRecord, v: u64) {
    r.counters[0].store(v, Ordering::Relaxed);
    r.counters[1].store(v.wrapping_add(1), Ordering::Relaxed);
    r.counters[2].store(v.wrapping_add(2), Ordering::Relaxed);
    r.counters[3].store(v.wrapping_add(3), Ordering::Relaxed);
}

/// Four non-atomic stores (reference only: unreadable by other threads
/// while written).
#[inline(never)]
pub fn plain_store4(r: &mut PlainRecordNa, v: u64) {
    r.counters = [v, v.wrapping_add(1), v.wrapping_add(2), v.wrapping_add(3)];
}

/// One consistent read of a record with the seq protocol alone, at most
/// the consumer's default number of attempts. Returns the seq.
///
/// # Errors
///
/// [`Busy`] when every attempt found the record mid-update.
#[inline(never)]
pub fn read_record_raw(r: &RecordRef<'_>, out: &mut [u64]) -> Result<u32, Busy> {
    read_words(r.seq, r.words, out, DEFAULT_MAX_ATTEMPTS)
}

/// Every record read consistently into `out` (`words` words per record,
/// record order) with the seq protocol alone. Returns the number of busy
/// records.
#[inline(never)]
pub fn sweep_raw(records: &[RecordRef<'_>], out: &mut [u64], words: usize) -> u32 {
    let mut busy = 0;
    for (r, o) in records.iter().zip(out.chunks_exact_mut(words.max(1))) {
        if read_words(r.seq, r.words, o, DEFAULT_MAX_ATTEMPTS).is_err() {
            busy += 1;
        }
    }
    busy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_store_the_same_values() {
        let s = SeqRecord::default();
        let mut sw = SeqWriter::new(0);
        seqlock_update4(&mut sw, &s, 5);
        assert_eq!(s.seq.load(Ordering::Relaxed), 2);
        let p = PlainRecord::default();
        plain_atomic_store4(&p, 5);
        let mut n = PlainRecordNa::default();
        plain_store4(&mut n, 5);
        for k in 0..4 {
            assert_eq!(s.counters[k].load(Ordering::Relaxed), 5 + k as u64);
            assert_eq!(p.counters[k].load(Ordering::Relaxed), 5 + k as u64);
            assert_eq!(n.counters[k], 5 + k as u64);
        }
    }

    #[test]
    fn raw_sweep_matches_the_consumer() {
        let mut fx = crate::fixture::ShmFixture::vcpu("test-hot", 4, 64).unwrap();
        fx.fill();
        let words = fx.words_per_record();
        let mut out = vec![0; 4 * words];
        assert_eq!(sweep_raw(&fx.records(), &mut out, words), 0);
        let mut snap = vstats_consumer::Snapshot::new(fx.consumer());
        fx.consumer().snapshot(&mut snap);
        let api: Vec<u64> = snap
            .records()
            .iter()
            .flat_map(|r| r.words().to_vec())
            .collect();
        assert_eq!(api, out);
    }
}
