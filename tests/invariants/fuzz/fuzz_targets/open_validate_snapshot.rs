//! Arbitrary bytes as a table: `vstats_abi::validate`, the consumer's open
//! (copy, validate, counters), a whole-table snapshot and every read of it,
//! restart detection, and the invariant checker's static rules and two
//! samples. None may panic, hang or read out of bounds (the address
//! sanitizer cargo-fuzz builds with catches the last).
//!
//! An input whose first byte is odd is not the table itself but edits of a
//! valid one (`(u16 offset, u8 value)` triples over a table of `1 + byte /
//! 2 % 64` vCPUs), so the fuzzer gets past validation often.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vstats_abi::{
    layout::{Layout, LayoutParams},
    record::VCPU_STD_DESCRIPTORS,
    VCPU_STATS_MAGIC,
};
use vstats_consumer::{Snapshot, Table};
use vstats_invariants::{CheckOptions, Checker, MemView, Target};

/// A valid vCPU table of `nr` records, as a producer publishes it, with
/// `edits` applied.
fn edited_table(nr: u32, edits: &[u8]) -> Vec<u8> {
    let Ok(l) = Layout::compute(&LayoutParams::vcpu_r2(nr)) else {
        return Vec::new();
    };
    let mut b = vec![0u8; l.mapping_len() as usize];
    if l.write_headers(&mut b, VCPU_STATS_MAGIC, 1, VCPU_STD_DESCRIPTORS).is_err() {
        return Vec::new();
    }
    b[l.offset as usize..].fill(0xff);
    for i in 0..nr {
        let at = l.record_offset(i).unwrap_or(0) as usize;
        b[at..at + 4].fill(0);
    }
    for e in edits.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([e[0], e[1]]));
        if let Some(byte) = b.get_mut(at) {
            *byte = e[2];
        }
    }
    b
}

fuzz_target!(|input: &[u8]| {
    let edited;
    let data = match input.split_first() {
        Some((&mode, edits)) if mode & 1 == 1 => {
            edited = edited_table(1 + u32::from(mode >> 1) % 64, edits);
            &edited[..]
        }
        _ => input,
    };
    let _ = vstats_abi::validate(data, data.len() as u64);

    // A private, 8-aligned copy, as a mapping of `data.len()` bytes.
    let raw = MemView::from_bytes(data);
    if let Ok(mut table) = Table::from_view(raw.clone()) {
        table.set_max_attempts(2);
        let mut snap = Snapshot::new(&table);
        table.snapshot(&mut snap);
        for c in table.counters() {
            let _ = snap.aggregate(c);
            for r in snap.records() {
                let _ = (r.get(c), r.histogram(c), r.is_unused());
            }
        }
        let _ = table.is_stale();
    }

    let opts = CheckOptions {
        max_attempts: 2,
        ..CheckOptions::default()
    };
    let mut checker = Checker::attach(
        Target::Memory {
            label: "fuzz".into(),
            raw,
            clock: None,
        },
        &opts,
    );
    checker.sample();
    checker.sample();
    let report = checker.finish();
    let _ = report.to_string();
});
