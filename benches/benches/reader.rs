//! Section 2: what a consistent read costs a sampler: one record, and a
//! sweep of every record of tables of 64 to 65,536 records, each against a
//! `memcpy` of the same bytes in the same run (the hardware limit).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use vstats_benches::{criterion_config, fixture::ShmFixture, hot};
use vstats_consumer::{
    mem::{copy_path, set_copy_path, CopyPath},
    RecordSnapshot, Snapshot,
};

fn one_record(c: &mut Criterion) {
    let mut fx = ShmFixture::vcpu("reader-record", 64, 64).expect("a table in /dev/shm");
    fx.fill();
    let mut g = c.benchmark_group("reader_record");
    let stride = fx.layout().stride as usize;
    let (area, _) = fx.record_area();
    let mut buf = vec![0u8; stride];
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            let ok = fx.memcpy(black_box(area), &mut buf);
            black_box(&mut buf);
            ok
        })
    });
    let recs = fx.records();
    let mut out = vec![0u64; fx.words_per_record()];
    g.bench_function("read_words", |b| {
        b.iter(|| hot::read_record_raw(black_box(&recs[0]), &mut out))
    });
    let table = fx.consumer();
    let mut rec = RecordSnapshot::new(table);
    g.bench_function("snapshot_record", |b| {
        b.iter(|| table.snapshot_record(black_box(0), &mut rec).is_ok())
    });
    g.finish();
}

fn sweep(c: &mut Criterion) {
    let mut g = c.benchmark_group("reader_sweep");
    for n in [64u32, 512, 4096, 65536] {
        let mut fx =
            ShmFixture::vcpu(&format!("reader-sweep-{n}"), n, 64).expect("a table in /dev/shm");
        fx.fill();
        let (off, len) = fx.record_area();
        g.throughput(Throughput::Bytes(len as u64));
        let mut buf = vec![0u8; len];
        g.bench_with_input(BenchmarkId::new("memcpy", n), &n, |b, _| {
            b.iter(|| {
                let ok = fx.memcpy(black_box(off), &mut buf);
                black_box(&mut buf);
                ok
            })
        });
        let recs = fx.records();
        let words = fx.words_per_record();
        let mut out = vec![0u64; words * n as usize];
        g.bench_with_input(BenchmarkId::new("raw", n), &n, |b, _| {
            b.iter(|| hot::sweep_raw(black_box(&recs), &mut out, words))
        });
        let table = fx.consumer();
        let mut snap = Snapshot::new(table);
        g.bench_with_input(BenchmarkId::new("snapshot", n), &n, |b, _| {
            b.iter(|| table.snapshot(black_box(&mut snap)))
        });
        // The same snapshot on each copy path this machine runs.
        let best = copy_path();
        for path in CopyPath::available() {
            set_copy_path(path);
            let id = format!("snapshot_{}", path.name());
            g.bench_with_input(BenchmarkId::new(id, n), &n, |b, _| {
                b.iter(|| table.snapshot(black_box(&mut snap)))
            });
        }
        set_copy_path(best);
    }
    g.finish();
}

fn main() {
    let mut c = criterion_config();
    one_record(&mut c);
    sweep(&mut c);
    c.final_summary();
}
