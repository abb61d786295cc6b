//! What the C producer (`tests/c/producer.c`) must publish, however it was
//! built and linked: against the build tree's archive (`c_producer.rs`) or
//! against the installed libraries through pkg-config (`install.rs`).

use std::{fs, path::Path};

use vstats_abi::{
    record::vcpu_off,
    validate::{first_nonzero_reserved, validate},
};
use vstats_consumer::{Snapshot, Table};

use super::run;

/// Records in the producer's table (`NR` in `producer.c`).
const NR: u32 = 64;
/// The step of its counter pattern (`K` in `producer.c`).
const K: u64 = 100;

/// Checks the table `producer.c` wrote to `path`.
fn check_table(path: &Path) {
    // The file validates with the ABI crate, reserved bytes are zero (P1).
    let bytes = fs::read(path).unwrap();
    let info = validate(&bytes, bytes.len() as u64).unwrap();
    assert_eq!(first_nonzero_reserved(&bytes, &info), None);
    assert_eq!(info.nr_records, NR);

    // And the Rust consumer reads the pattern back.
    let table = Table::open(path).unwrap();
    assert!(table.is_vcpu());
    assert_eq!(table.nr_records(), NR);
    assert_eq!(table.generation(), 42);
    let custom = table.counter("c_custom_events").expect("the C descriptor");
    let offline = table.counter("runstate_offline_time").unwrap();
    let mut snap = Snapshot::new(&table);
    assert_eq!(table.snapshot(&mut snap), 0, "no record busy");
    for i in 0..NR - 2 {
        let r = snap.record(i).unwrap();
        let b = 1000 * u64::from(i);
        assert!(r.is_consistent() && !r.is_unused(), "record {i}");
        assert_eq!(r.running(), Some(b + K), "record {i}");
        assert_eq!(r.runnable(), Some(b + 2 * K), "record {i}");
        assert_eq!(r.blocked(), Some(b + 3 * K), "record {i}");
        let want_offline = (i % 2 == 0 || i == 3).then_some(b + 4 * K);
        assert_eq!(r.offline(), want_offline, "record {i}");
        assert_eq!(r.get(offline), want_offline, "record {i}");
        assert_eq!(r.get(custom), Some(u64::from(i) * K), "record {i}");
        assert_eq!(r.seq() % 2, 0);
    }
    // The state and its entry time (vstats_writer_set_runstate, or the
    // whole-record update of record 3), read by position (r3).
    assert!(info.is_r3() && info.desc_count() == 0 && info.xdesc_count == 1);
    let word = |i: u32, off: u32| {
        let at = (info.record_offset(i).unwrap() + u64::from(off)) as usize;
        u64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap())
    };
    for i in 0..NR - 2 {
        assert_eq!(word(i, vcpu_off::RUNSTATE), u64::from(i % 4), "record {i}");
        assert_eq!(word(i, vcpu_off::ENTRY), K, "record {i}");
    }
    assert!(snap.record(NR - 2).unwrap().is_unused(), "hot-unplugged");
    assert!(snap.record(NR - 1).unwrap().is_unused(), "never handed out");
}

/// Runs the C producer `prog` in both of its modes (frames contiguous and
/// scattered), each into a file in `dir`, and checks what the Rust consumer
/// reads there.
pub fn check_runs(prog: &Path, dir: &Path) {
    for mode in ["contig", "pages"] {
        let path = dir.join(format!("vcpu-{mode}"));
        let out = run(prog, &[path.to_str().unwrap(), mode]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.starts_with("ok frames=2"),
            "{mode}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        check_table(&path);
    }
    assert_eq!(
        fs::read(dir.join("vcpu-contig")).unwrap(),
        fs::read(dir.join("vcpu-pages")).unwrap(),
        "scattered frames hold the same table"
    );
}
