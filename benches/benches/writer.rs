//! Section 1: what one record update costs the writer, against the same
//! four stores into a plain struct with no seq (see `vstats_benches::hot`).

use std::hint::black_box;

use criterion::Criterion;
use vstats_abi::seqlock::SeqWriter;
use vstats_benches::{
    criterion_config,
    fixture::ShmFixture,
    hot::{self, PlainRecord, PlainRecordNa, SeqRecord},
};
use vstats_producer::RecordWriter;

fn writer(c: &mut Criterion) {
    let mut fx = ShmFixture::vcpu("writer", 64, 64).expect("a table in /dev/shm");
    let mut writers: Vec<RecordWriter<'_>> = fx.writers().collect();
    let (w, others) = writers.split_first_mut().expect("record 0");
    let mut g = c.benchmark_group("writer");

    let plain = Box::new(PlainRecord::default());
    let mut v = 0u64;
    g.bench_function("plain_atomic", |b| {
        b.iter(|| {
            v = v.wrapping_add(1);
            hot::plain_atomic_store4(&plain, black_box(v));
        })
    });

    let seq = Box::new(SeqRecord::default());
    let mut sw = SeqWriter::new(0);
    g.bench_function("seqlock", |b| {
        b.iter(|| {
            v = v.wrapping_add(1);
            hot::seqlock_update4(&mut sw, &seq, black_box(v));
        })
    });

    g.bench_function("producer_update", |b| {
        b.iter(|| {
            v = v.wrapping_add(1);
            hot::producer_update4(w, black_box(v))
        })
    });

    g.bench_function("producer_update_words", |b| {
        b.iter(|| {
            v = v.wrapping_add(1);
            hot::producer_update_words4(w, black_box(v))
        })
    });

    // Round robin over 64 records (64 vCPUs, say): consecutive updates do
    // not depend on each other through the writer's private seq, so this
    // is the cost of an update rather than the latency of the chain
    // store -> load of that seq from one update to the next.
    let plains: Vec<PlainRecord> = (0..64).map(|_| PlainRecord::default()).collect();
    let mut i = 0;
    g.bench_function("plain_atomic_rr64", |b| {
        b.iter(|| {
            v = v.wrapping_add(1);
            i = (i + 1) % plains.len();
            hot::plain_atomic_store4(&plains[i], black_box(v));
        })
    });
    let mut all: Vec<&mut RecordWriter<'_>> = std::iter::once(w).chain(others.iter_mut()).collect();
    g.bench_function("producer_update_rr64", |b| {
        b.iter(|| {
            v = v.wrapping_add(1);
            i = (i + 1) % all.len();
            hot::producer_update4(all[i], black_box(v))
        })
    });
    g.bench_function("producer_update_words_rr64", |b| {
        b.iter(|| {
            v = v.wrapping_add(1);
            i = (i + 1) % all.len();
            hot::producer_update_words4(all[i], black_box(v))
        })
    });

    let mut na = Box::new(PlainRecordNa::default());
    g.bench_function("plain_nonatomic", |b| {
        b.iter(|| {
            v = v.wrapping_add(1);
            hot::plain_store4(&mut na, black_box(v));
            black_box(&mut *na);
        })
    });
    g.finish();
}

fn main() {
    let mut c = criterion_config();
    writer(&mut c);
    c.final_summary();
}
