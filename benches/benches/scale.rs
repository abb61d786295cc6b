//! Section 5: one sampler and 1,000 domains of 64 vCPUs, each domain a
//! vCPU table file of its own under /dev/shm (as a VMM publishes it), each
//! mapped once by the sampler. Times one full sampling pass (a consistent
//! snapshot of every record of every table) with caches warm, and with the
//! tables and the snapshot buffers evicted from every cache level first
//! (`clflush` of every line), which is closer to what a 1 Hz sampler
//! meets (the TLB stays warm: user space cannot flush it); the CPU share
//! of a 1 Hz sampler is the pass time over one second.

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use serde_json::json;
use vstats_benches::{
    criterion_config,
    fixture::ShmFixture,
    out,
    raw::{flush_view, flush_words, raise_fd_limit},
};
use vstats_consumer::{Snapshot, Table};

const DOMAINS: usize = 1000;
const VCPUS: u32 = 64;

fn main() {
    if out::list_mode() {
        println!("scale/pass_warm: benchmark");
        println!("scale/pass_cold: benchmark");
        return;
    }
    let mut c = criterion_config();
    // A producer keeps each table's file open, and 1,000 of them exceed
    // the usual soft limit of 1,024 descriptors.
    if let Err(e) = raise_fd_limit() {
        eprintln!("scale: cannot raise the file descriptor limit: {e}");
    }
    let domains = if out::test_mode() { 10 } else { DOMAINS };
    // The producers: write every record once, then stay (files stay
    // published while the fixtures live).
    let mut fixtures: Vec<ShmFixture> = (0..domains)
        .map(|d| {
            let mut fx = ShmFixture::vcpu(&format!("scale-{d}"), VCPUS, 64).expect("a table");
            fx.fill();
            fx
        })
        .collect();
    // The sampler: open (map, copy the head, validate) every table.
    let t0 = Instant::now();
    let tables: Vec<Table> = fixtures
        .iter()
        .map(|fx| Table::open(fx.path()).expect("opening a table"))
        .collect();
    let open_all = t0.elapsed();
    let mut snaps: Vec<Snapshot> = tables.iter().map(Snapshot::new).collect();
    let table_bytes = std::fs::metadata(fixtures[0].path()).map_or(0, |m| m.len());
    let _ = out::write_json(
        "scale",
        &json!({
            "tables": domains,
            "vcpus": VCPUS,
            "table_bytes": table_bytes,
            "open_all_ns": open_all.as_nanos() as f64,
        }),
    );
    let pass = |snaps: &mut Vec<Snapshot>| {
        let mut busy = 0;
        for (t, s) in tables.iter().zip(snaps.iter_mut()) {
            busy += t.snapshot(s);
        }
        busy
    };
    let mut g = c.benchmark_group("scale");
    g.sample_size(10);
    g.bench_function("pass_warm", |b| b.iter(|| pass(black_box(&mut snaps))));
    // The baseline: a `memcpy` of every table's record area (the same
    // bytes), warm.
    let mut bufs: Vec<Vec<u8>> = fixtures
        .iter()
        .map(|fx| vec![0u8; fx.record_area().1])
        .collect();
    g.bench_function("memcpy_warm", |b| {
        b.iter(|| {
            let mut ok = true;
            for (fx, buf) in fixtures.iter().zip(bufs.iter_mut()) {
                ok &= fx.memcpy(black_box(fx.record_area().0), buf);
            }
            black_box(&mut bufs);
            ok
        })
    });
    g.bench_function("pass_cold", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for fx in &fixtures {
                    flush_view(fx.view());
                }
                for s in &snaps {
                    for r in s.records() {
                        flush_words(r.words());
                    }
                }
                let t = Instant::now();
                black_box(pass(&mut snaps));
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
    drop(tables);
    fixtures.clear();
    c.final_summary();
}
