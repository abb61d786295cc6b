//! Measures what a read costs: a consistent record, a whole snapshot, and
//! a record whose writer died mid-update (seq left odd), which costs
//! `max_attempts` attempts before `Error::Busy`.
//!
//! `cargo run --release -p vstats-consumer --example busy_bound`

use std::{hint::black_box, time::Instant};

use vstats_abi::{
    layout::{Layout, LayoutParams},
    record::VCPU_STD_DESCRIPTORS,
    VCPU_STATS_MAGIC,
};
use vstats_consumer::{RecordSnapshot, Snapshot, Table, DEFAULT_MAX_ATTEMPTS};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const VCPUS: u32 = 64;
    let layout = Layout::compute(&LayoutParams::vcpu_r2(VCPUS))?;
    let mut bytes = vec![0u8; usize::try_from(layout.mapping_len())?];
    layout.write_headers(&mut bytes, VCPU_STATS_MAGIC, 1, VCPU_STD_DESCRIPTORS)?;
    // Record 1's writer died between its two seq stores.
    let busy_at = usize::try_from(layout.record_offset(1).ok_or("no record 1")?)?;
    bytes[busy_at..busy_at + 4].copy_from_slice(&1u32.to_ne_bytes());
    let path = std::env::temp_dir().join(format!("vstats-busy-bound-{}", std::process::id()));
    std::fs::write(&path, &bytes)?;
    let table = Table::open(&path);
    std::fs::remove_file(&path)?;
    let table = table?;

    let mut rec = RecordSnapshot::new(&table);
    let n = 1_000_000u32;
    let t0 = Instant::now();
    for _ in 0..n {
        table.snapshot_record(0, &mut rec)?;
        black_box(&rec);
    }
    let per = t0.elapsed() / n;
    println!("consistent record read: {per:?} (including Instant::now())");

    let mut snap = Snapshot::new(&table);
    let n = 1000u32;
    let t0 = Instant::now();
    let mut busy = 0;
    for _ in 0..n {
        busy = table.snapshot(&mut snap);
    }
    let per = t0.elapsed() / n;
    println!("snapshot of {VCPUS} records with {busy} busy: {per:?}");

    let n = 1000u32;
    let t0 = Instant::now();
    for _ in 0..n {
        let r = table.snapshot_record(1, &mut rec);
        black_box(r.is_err());
    }
    let per = t0.elapsed() / n;
    println!(
        "busy record: {per:?} for {DEFAULT_MAX_ATTEMPTS} attempts, {:?} per attempt",
        per / DEFAULT_MAX_ATTEMPTS
    );
    Ok(())
}
