//! Unit tests of the whole reading path: tables built with the ABI
//! crate's layout code, read through raw memory (runs under Miri) or
//! through temporary files (not under Miri: it cannot mmap).

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use proptest::prelude::*;
use vstats_abi::{
    desc::Descriptor,
    header::Header,
    layout::{Layout, LayoutParams},
    record::{
        DOMAIN_STD_DESCRIPTORS, INACTIVE, PAD_INACTIVE, VCPU_STATS_SIZE, VCPU_STD_DESCRIPTORS,
    },
    seqlock::SeqWriter,
    Base, Kind, Unit, DOMAIN_STATS_MAGIC, VCPU_STATS_MAGIC,
};

use crate::{
    delta, rate,
    raw::test_mem::SharedMem,
    runstate::{Runstate, TimeBase},
    Aggregate, Delta, Error, RecordSnapshot, RecordStatus, Snapshot, Source, Table,
    DEFAULT_MAX_ATTEMPTS,
};

// ---------------------------------------------------------------- helpers

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_header(b: &mut [u8], h: Header) {
    for (k, v) in [h.magic, h.offset, h.size, h.stride]
        .into_iter()
        .enumerate()
    {
        put32(b, 4 * k, v);
    }
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

/// A table image: headers from `Layout::write_headers`, every record with
/// seq 0, pad inactive and counter k of record i set to `100 * i + k`.
fn image(p: &LayoutParams, magic: u32, generation: u64, descs: &[Descriptor]) -> (Layout, Vec<u8>) {
    let l = Layout::compute(p).unwrap();
    let mut b = vec![0u8; l.mapping_len() as usize];
    l.write_headers(&mut b, magic, generation, descs).unwrap();
    for i in 0..l.nr_records {
        let r = l.record_offset(i).unwrap() as usize;
        put32(&mut b, r + 4, PAD_INACTIVE);
        for k in 0..(l.size as usize - 8) / 8 {
            put64(&mut b, r + 8 + 8 * k, 100 * u64::from(i) + k as u64);
        }
    }
    (l, b)
}

fn vcpu_image(n: u32, generation: u64) -> (Layout, Vec<u8>) {
    image(
        &LayoutParams::vcpu_r2(n),
        VCPU_STATS_MAGIC,
        generation,
        VCPU_STD_DESCRIPTORS,
    )
}

/// Byte offset of counter `k` of record `i`.
fn word(l: &Layout, i: u32, k: usize) -> usize {
    l.record_offset(i).unwrap() as usize + 8 + 8 * k
}

fn seq_off(l: &Layout, i: u32) -> usize {
    l.record_offset(i).unwrap() as usize
}

/// What RFC v3's Xen writes: a 16-byte header, offset 64, a 16-byte
/// record (seq, pad, running time), one page.
fn v3_image() -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    put_header(
        &mut b,
        Header {
            magic: VCPU_STATS_MAGIC,
            offset: 64,
            size: 16,
            stride: 64,
        },
    );
    for i in 0..63 {
        put64(&mut b, 64 + 64 * i + 8, 7 + i as u64);
    }
    b
}

/// A file in the temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, bytes: &[u8]) -> TempFile {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("vstats-consumer-{}-{n}-{tag}", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        TempFile(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn abi_err(e: &Error) -> vstats_abi::Error {
    match e {
        Error::Invalid { error, .. } => *error,
        other => panic!("not an ABI error: {other:?}"),
    }
}

// ------------------------------------------------------------- opening

#[test]
#[cfg_attr(miri, ignore = "Miri cannot mmap files")]
fn opens_a_file_and_reads_it() {
    let (l, b) = vcpu_image(3, 42);
    let f = TempFile::new("ok", &b);
    let t = Table::open(f.path()).unwrap();
    assert_eq!(t.path(), Some(f.path()));
    assert_eq!(t.nr_records(), 3);
    assert!(t.is_vcpu());
    assert_eq!(t.generation(), 42);
    assert_eq!(t.head().len(), l.offset as usize);
    let names: Vec<&str> = t.counters().iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        [
            "runstate_running_time",
            "runstate_runnable_time",
            "runstate_blocked_time",
            "runstate_offline_time"
        ]
    );
    let c = t.counter("runstate_blocked_time").unwrap();
    assert_eq!(c.source(), Source::Descriptor(2));
    assert_eq!((c.offset(), c.count(), c.kind()), (24, 1, Kind::CUMULATIVE));
    assert_eq!(
        (c.unit(), c.base(), c.exponent()),
        (Unit::SECONDS, Base::POW10, -9)
    );
    assert!((c.scale() - 1e-9).abs() < 1e-20);
    assert!(t.counter("nope").is_none());

    let mut s = Snapshot::new(&t);
    assert!(!s.is_complete());
    assert_eq!(t.snapshot(&mut s), 0);
    assert!(s.is_complete());
    let r2 = s.record(2).unwrap();
    assert_eq!(r2.get(c), Some(202));
    assert_eq!(
        (r2.running(), r2.runnable(), r2.blocked(), r2.offline()),
        (Some(200), Some(201), Some(202), Some(203))
    );
    assert!(!t.is_stale());
    assert!(!t.file_replaced().unwrap());
    let again = t.reopen().unwrap();
    assert_eq!(again.generation(), 42);
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot mmap files")]
fn bad_magic_in_a_file_names_the_rule_and_the_path() {
    let (_, mut b) = vcpu_image(1, 1);
    put32(&mut b, 0, 0x1234_5678);
    let f = TempFile::new("magic", &b);
    let e = Table::open(f.path()).unwrap_err();
    assert_eq!(
        abi_err(&e),
        vstats_abi::Error::BadMagic { found: 0x1234_5678 }
    );
    assert_eq!(e.rule(), Some(vstats_abi::Rule::R2));
    let msg = e.to_string();
    assert!(msg.contains(&*f.path().to_string_lossy()), "{msg}");
    assert!(msg.contains("R2: magic 0x12345678"), "{msg}");
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot mmap files")]
fn truncated_files_are_refused() {
    let (l, b) = vcpu_image(4, 1);
    // Shorter than the header.
    for n in [0, 8, 15] {
        let f = TempFile::new("short", &b[..n]);
        let e = Table::open(f.path()).unwrap_err();
        assert_eq!(
            abi_err(&e),
            vstats_abi::Error::MappingTooShort { len: n as u64 }
        );
    }
    // The head is cut.
    let f = TempFile::new("head", &b[..100]);
    let e = Table::open(f.path()).unwrap_err();
    assert_eq!(
        abi_err(&e),
        vstats_abi::Error::MappingTooSmall {
            need: u64::from(l.offset),
            len: 100
        }
    );
    // The last record is cut.
    let end = l.record_offset(3).unwrap() as usize + 8;
    let f = TempFile::new("records", &b[..end]);
    let e = Table::open(f.path()).unwrap_err();
    assert_eq!(e.rule(), Some(vstats_abi::Rule::R7), "{e}");
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot open files")]
fn missing_file_is_an_io_error_with_the_path() {
    let p = std::env::temp_dir().join("vstats-consumer-does-not-exist");
    let e = Table::open(&p).unwrap_err();
    assert!(
        matches!(&e, Error::Io { path, io } if path == &p && io.kind() == std::io::ErrorKind::NotFound),
        "{e:?}"
    );
    // Permission denied cannot be provoked here (tests run as root); the
    // mapping of that error kind is tested in `error.rs` with a synthetic
    // io::Error.
}

#[test]
fn from_raw_reads_and_checks_the_pointer() {
    let (_, b) = vcpu_image(2, 9);
    let mem = SharedMem::from_bytes(&b);
    let t = mem.table_raw(b.len()).unwrap();
    assert_eq!(t.path(), None);
    assert_eq!(t.generation(), 9);
    let mut s = Snapshot::new(&t);
    assert_eq!(t.snapshot(&mut s), 0);
    assert_eq!(s.record(1).unwrap().running(), Some(100));
    assert!(matches!(t.reopen(), Err(Error::NotFileBacked)));
    assert!(matches!(t.file_replaced(), Err(Error::NotFileBacked)));
}

#[test]
fn from_view_reads_and_lends_the_whole_mapping() {
    let (l, b) = vcpu_image(2, 9);
    let t = Table::from_view(crate::mem::MemView::from_bytes(&b)).unwrap();
    assert_eq!(t.path(), None);
    assert_eq!(t.generation(), 9);
    let mut s = Snapshot::new(&t);
    assert_eq!(t.snapshot(&mut s), 0);
    assert_eq!(s.record(1).unwrap().running(), Some(100));
    // The view lent by the table sees every byte, records included.
    let v = t.view();
    assert_eq!(v.len(), b.len());
    assert_eq!(v.copy_prefix(b.len()).as_deref(), Some(&b[..]));
    assert_eq!(v.load::<u64>(word(&l, 1, 0) as u64), Some(100));
    // A view that is not a table is refused like any raw memory.
    let e = Table::from_view(crate::mem::MemView::from_bytes(&[0u8; 64])).unwrap_err();
    assert!(matches!(e, Error::Invalid { path: None, .. }), "{e:?}");
}

#[test]
fn from_owned_drops_the_owner_with_the_table() {
    let (_, b) = vcpu_image(1, 1);
    let mem = SharedMem::from_bytes(&b);
    let t = mem.table().unwrap();
    drop(mem);
    // The table's owner (an Arc clone) keeps the memory alive.
    let mut s = Snapshot::new(&t);
    assert_eq!(t.snapshot(&mut s), 0);
    assert_eq!(s.record(0).unwrap().running(), Some(0));
}

#[test]
fn raw_errors_have_no_path() {
    let mem = SharedMem::from_bytes(&[0u8; 64]);
    let e = mem.table().unwrap_err();
    assert_eq!(abi_err(&e), vstats_abi::Error::BadMagic { found: 0 });
    assert!(e.to_string().starts_with("<raw mapping>: "), "{e}");
}

#[test]
#[cfg_attr(miri, ignore = "allocates 16 MiB; too slow under Miri")]
fn head_and_record_limits() {
    // A head larger than MAX_HEAD_LEN.
    let off = (crate::MAX_HEAD_LEN + 8) as u32;
    let mut b = vec![0u8; off as usize + 64];
    put_header(
        &mut b,
        Header {
            magic: VCPU_STATS_MAGIC,
            offset: off,
            size: 16,
            stride: 64,
        },
    );
    let e = SharedMem::from_bytes(&b).table().unwrap_err();
    assert!(
        matches!(e, Error::HeadTooLarge { need, cap, .. } if need == u64::from(off) && cap == crate::MAX_HEAD_LEN),
        "{e:?}"
    );
    // A v3 table with more slots than MAX_RECORDS (stride 16, the least
    // a vCPU record may have (R22): 2^20 + 1).
    let len = 64 + 16 * (crate::MAX_RECORDS as usize + 1);
    let mut b = vec![0u8; len];
    put_header(
        &mut b,
        Header {
            magic: VCPU_STATS_MAGIC,
            offset: 64,
            size: 16,
            stride: 16,
        },
    );
    let e = SharedMem::from_bytes(&b).table().unwrap_err();
    assert!(
        matches!(e, Error::TooManyRecords { nr_records, .. } if nr_records == crate::MAX_RECORDS + 1),
        "{e:?}"
    );
}

// ------------------------------------------------------- busy and bounds

#[test]
fn odd_seq_is_busy_after_exactly_the_configured_attempts() {
    let (l, b) = vcpu_image(3, 1);
    let mem = SharedMem::from_bytes(&b);
    let mut t = mem.table().unwrap();
    assert_eq!(t.max_attempts(), DEFAULT_MAX_ATTEMPTS);
    mem.store_u32(seq_off(&l, 1), 7);

    let mut r = RecordSnapshot::new(&t);
    assert_eq!(r.status(), RecordStatus::NotRead);
    let e = t.snapshot_record(1, &mut r).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Busy {
                record: 1,
                seq: 7,
                attempts: DEFAULT_MAX_ATTEMPTS
            }
        ),
        "{e:?}"
    );
    for n in [1, 5, 17] {
        t.set_max_attempts(n);
        let e = t.snapshot_record(1, &mut r).unwrap_err();
        assert!(
            matches!(e, Error::Busy { record: 1, seq: 7, attempts } if attempts == n),
            "{e:?}"
        );
        assert_eq!(
            r.status(),
            RecordStatus::Busy {
                seq: 7,
                attempts: n
            }
        );
        assert_eq!(r.get(t.counter("runstate_running_time").unwrap()), None);
        assert_eq!(r.running(), None);
        assert!(r.words().is_empty());
        assert!(!r.is_unused());
    }
    t.set_max_attempts(0);
    assert_eq!(t.max_attempts(), 1);

    // The whole-table snapshot reads the other records and says which
    // one was busy.
    t.set_max_attempts(3);
    let mut s = Snapshot::new(&t);
    assert_eq!(t.snapshot(&mut s), 1);
    assert_eq!(s.busy_count(), 1);
    assert!(!s.is_complete());
    assert_eq!(
        s.busy().collect::<Vec<_>>(),
        [(
            1,
            RecordStatus::Busy {
                seq: 7,
                attempts: 3
            }
        )]
    );
    assert_eq!(s.record(0).unwrap().running(), Some(0));
    assert_eq!(s.record(2).unwrap().running(), Some(200));
    let running = t.counter("runstate_running_time").unwrap();
    let agg = s.aggregate(running);
    assert_eq!((agg.present, agg.absent), (2, 1));

    // The writer finishes: everything is consistent again.
    mem.store_u32(seq_off(&l, 1), 8);
    assert_eq!(t.snapshot(&mut s), 0);
    assert!(s.is_complete());
    assert_eq!(s.record(1).unwrap().seq(), 8);
    t.snapshot_record(1, &mut r).unwrap();
    assert_eq!(r.status(), RecordStatus::Consistent);
    assert_eq!((r.index(), r.seq(), r.running()), (1, 8, Some(100)));
}

#[test]
fn no_such_record() {
    let (_, b) = vcpu_image(2, 1);
    let mem = SharedMem::from_bytes(&b);
    let t = mem.table().unwrap();
    let mut r = RecordSnapshot::new(&t);
    let e = t.snapshot_record(2, &mut r).unwrap_err();
    assert!(matches!(
        e,
        Error::NoSuchRecord {
            record: 2,
            nr_records: 2
        }
    ));
    assert_eq!(r.status(), RecordStatus::NotRead);
    assert!(t.snapshot_record(u32::MAX, &mut r).is_err());
}

#[test]
fn snapshots_reshape_for_another_table() {
    let (_, b2) = vcpu_image(2, 1);
    let (_, b5) = vcpu_image(5, 1);
    let (m2, m5) = (SharedMem::from_bytes(&b2), SharedMem::from_bytes(&b5));
    let (t2, t5) = (m2.table().unwrap(), m5.table().unwrap());
    let mut s = Snapshot::new(&t2);
    assert_eq!(t5.snapshot(&mut s), 0);
    assert_eq!(s.records().len(), 5);
    assert_eq!(s.record(4).unwrap().running(), Some(400));
    // A record buffer of a domain table (other size) is reshaped too.
    let (_, bd) = image(
        &LayoutParams::domain_r2(),
        DOMAIN_STATS_MAGIC,
        1,
        DOMAIN_STD_DESCRIPTORS,
    );
    let md = SharedMem::from_bytes(&bd);
    let td = md.table().unwrap();
    let mut r = RecordSnapshot::new(&td);
    t5.snapshot_record(3, &mut r).unwrap();
    assert_eq!(r.words().len(), 4);
    assert_eq!(r.offline(), Some(303));
}

#[test]
fn concurrent_writer_never_gives_a_torn_record() {
    // The writer sets every counter of a record to the same value inside
    // one seq update; a consistent snapshot must see them all equal.
    const ROUNDS: u64 = if cfg!(miri) { 6 } else { 5_000 };
    let (l, b) = vcpu_image(2, 1);
    let mem = SharedMem::from_bytes(&b);
    let t = mem.table().unwrap();
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let mut w = [SeqWriter::new(0), SeqWriter::new(0)];
            for v in 1..=ROUNDS {
                for (i, w) in (0..2).zip(w.iter_mut()) {
                    let seq = mem.u32_at(seq_off(&l, i));
                    w.begin(seq);
                    for k in 0..4 {
                        mem.store_u64(word(&l, i, k), v);
                    }
                    w.end(seq);
                }
            }
        });
        let mut s = Snapshot::new(&t);
        let mut last = [0u64; 2];
        while last.iter().any(|&v| v < ROUNDS) {
            t.snapshot(&mut s);
            for r in s.records().iter().filter(|r| r.is_consistent()) {
                let w = r.words();
                if w[0] == 100 * u64::from(r.index()) {
                    continue; // Not yet updated.
                }
                assert!(w.iter().all(|&x| x == w[0]), "torn: {w:?}");
                let i = r.index() as usize;
                assert!(w[0] >= last[i]);
                last[i] = w[0];
            }
        }
    });
}

// ----------------------------------------------- absent, inactive, unused

#[test]
fn inactive_and_unused() {
    let (l, mut b) = vcpu_image(3, 1);
    // Record 1: its blocked time is inactive (overflowed).
    put64(&mut b, word(&l, 1, 2), 1 << 63);
    // Record 2: an unused slot.
    for k in 0..4 {
        put64(&mut b, word(&l, 2, k), INACTIVE);
    }
    let mem = SharedMem::from_bytes(&b);
    let t = mem.table().unwrap();
    let mut s = Snapshot::new(&t);
    assert_eq!(t.snapshot(&mut s), 0);
    let blocked = t.counter("runstate_blocked_time").unwrap();
    let (r0, r1, r2) = (
        s.record(0).unwrap(),
        s.record(1).unwrap(),
        s.record(2).unwrap(),
    );
    assert!(!r0.is_unused() && !r1.is_unused() && r2.is_unused());
    assert_eq!(r1.get(blocked), None);
    assert_eq!(r1.blocked(), None);
    assert_eq!(r1.running(), Some(100));
    assert_eq!(r2.running(), None);
    assert_eq!(r2.words(), [INACTIVE; 4]);
    let a = s.aggregate(blocked);
    assert_eq!((a.present, a.absent, a.sum), (1, 2, 2));
    // A scalar read as a histogram and vice versa is absent.
    assert_eq!(r0.histogram(blocked), None);
    assert!(s.record(3).is_none());
}

#[test]
fn rfc_v3_table_uses_the_standard_fields_that_fit() {
    let mem = SharedMem::from_bytes(&v3_image());
    let t = mem.table().unwrap();
    assert_eq!(t.info().ext, None);
    assert_eq!(t.generation(), 0);
    assert_eq!(t.nr_records(), 63);
    let names: Vec<&str> = t.counters().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["runstate_running_time"]);
    assert_eq!(t.counters()[0].source(), Source::Standard);
    let mut s = Snapshot::new(&t);
    assert_eq!(t.snapshot(&mut s), 0);
    let r = s.record(5).unwrap();
    assert_eq!(r.running(), Some(12));
    // Beyond the v3 producer's record: absent, not garbage.
    assert_eq!((r.runnable(), r.blocked(), r.offline()), (None, None, None));
    // A counter of a newer table used on the v3 snapshot is absent too.
    let (_, b) = vcpu_image(1, 1);
    let newer_mem = SharedMem::from_bytes(&b);
    let newer = newer_mem.table().unwrap();
    assert_eq!(r.get(newer.counter("runstate_offline_time").unwrap()), None);
    assert_eq!(
        r.get(newer.counter("runstate_running_time").unwrap()),
        Some(12)
    );
}

#[test]
fn abi_size_bounds_standard_fields_without_descriptors() {
    // A producer of an older revision: records of 24 bytes (running,
    // runnable), no descriptors.
    let p = LayoutParams {
        record_size: 24,
        abi_size: 24,
        desc_count: 0,
        ..LayoutParams::vcpu_r2(2)
    };
    let (_, b) = image(&p, VCPU_STATS_MAGIC, 3, &[]);
    let mem = SharedMem::from_bytes(&b);
    let t = mem.table().unwrap();
    let names: Vec<&str> = t.counters().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["runstate_running_time", "runstate_runnable_time"]);
    let mut r = RecordSnapshot::new(&t);
    t.snapshot_record(1, &mut r).unwrap();
    assert_eq!(
        (r.running(), r.runnable(), r.blocked()),
        (Some(100), Some(101), None)
    );
    assert_eq!(r.vcpus_online(), None, "not a domain table");
}

#[test]
fn r3_producer_counters_are_listed_by_their_r3_descriptors_keyed_apart() {
    // An r3 table as the producers now write it: the standard record read
    // by position, a scalar and a 2-bucket histogram in the producer area,
    // described only by r3 descriptors.
    let exits = Descriptor::builder("exits").at(VCPU_STATS_SIZE).unwrap();
    let hist = Descriptor::builder("halt_hist")
        .histogram(Kind::LOG2_HIST, 2, 0)
        .at(VCPU_STATS_SIZE + 8)
        .unwrap();
    let p = LayoutParams {
        xstats_size: 24,
        xdesc_count: 2,
        ..LayoutParams::vcpu(2)
    };
    let l = Layout::compute(&p).unwrap();
    let mut b = vec![0u8; l.mapping_len() as usize];
    l.write_headers(&mut b, VCPU_STATS_MAGIC, 3, &[exits, hist])
        .unwrap();
    l.fill_records(&mut b).unwrap();
    for i in 0..2u32 {
        let r = l.record_offset(i).unwrap() as usize;
        for k in 0..(l.record_extent() as usize - 8) / 8 {
            put64(&mut b, r + 8 + 8 * k, 100 * u64::from(i) + k as u64);
        }
    }
    let mem = SharedMem::from_bytes(&b);
    let t = mem.table().unwrap();
    let names: Vec<&str> = t.counters().iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        [
            "runstate_running_time",
            "runstate_runnable_time",
            "runstate_blocked_time",
            "runstate_offline_time",
            "exits",
            "halt_hist"
        ]
    );
    let e = t.counter("exits").unwrap();
    assert_eq!(e.source(), Source::Producer(0));
    assert_eq!(
        t.counter("halt_hist").unwrap().source(),
        Source::Producer(1)
    );
    assert_eq!(t.counters()[0].source(), Source::Standard);
    let mut r = RecordSnapshot::new(&t);
    t.snapshot_record(1, &mut r).unwrap();
    assert_eq!(r.running(), Some(100));
    // Word 6 (byte 56) is the first of the producer area.
    assert_eq!(r.get(e), Some(106));
    let h = t.counter("halt_hist").unwrap();
    assert_eq!(r.histogram(h).map(|v| v.to_vec()), Some(vec![107, 108]));
}

#[test]
fn descriptors_describe_producer_counters_and_histograms() {
    // Standard fields, then a producer-specific scalar and a 4-bucket
    // log2 histogram beyond abi_size.
    let mut descs = VCPU_STD_DESCRIPTORS.to_vec();
    descs.push(Descriptor::scalar(
        "exits",
        40,
        Kind::INSTANT,
        Unit::NONE,
        Base::POW10,
        0,
    ));
    let hist = Descriptor::builder("halt_poll_ns")
        .histogram(Kind::LOG2_HIST, 4, 0)
        .unit(Unit::SECONDS)
        .scale(Base::POW10, -9)
        .at(48)
        .unwrap();
    descs.push(hist);
    let p = LayoutParams {
        record_size: VCPU_STATS_SIZE + 8 + 32,
        abi_size: VCPU_STATS_SIZE,
        desc_count: descs.len() as u32,
        ..LayoutParams::vcpu_r2(2)
    };
    let (l, mut b) = image(&p, VCPU_STATS_MAGIC, 1, &descs);
    put64(&mut b, word(&l, 1, 6), INACTIVE); // one bucket of record 1
    let mem = SharedMem::from_bytes(&b);
    let t = mem.table().unwrap();
    assert_eq!(t.counters().len(), 6);
    let exits = t.counter("exits").unwrap();
    let h = t.counter("halt_poll_ns").unwrap();
    assert!(h.is_histogram() && !exits.is_histogram());
    assert!(!exits.is_monotonic());
    let mut s = Snapshot::new(&t);
    assert_eq!(t.snapshot(&mut s), 0);
    let (r0, r1) = (s.record(0).unwrap(), s.record(1).unwrap());
    assert_eq!(r0.get(exits), Some(4));
    assert_eq!(r0.histogram(h), Some(&[5, 6, 7, 8][..]));
    assert_eq!(r0.get(h), None, "a histogram is not a scalar");
    assert_eq!(r1.histogram(h), None, "an inactive bucket");
    assert_eq!(delta(r0, r0, h), Delta::Absent);
}

#[test]
fn domain_table() {
    let (l, b) = image(
        &LayoutParams::domain_r2(),
        DOMAIN_STATS_MAGIC,
        5,
        DOMAIN_STD_DESCRIPTORS,
    );
    let mem = SharedMem::from_bytes(&b);
    let t = mem.table().unwrap();
    assert!(!t.is_vcpu());
    let mut r = RecordSnapshot::new(&t);
    t.snapshot_record(0, &mut r).unwrap();
    assert_eq!(
        (r.vcpus_online(), r.vcpus_max(), r.uptime()),
        (Some(0), Some(1), Some(2))
    );
    assert_eq!(r.running(), None, "not a vCPU table");
    assert!(!r.is_vcpu());
    assert_eq!(r.generation(), 5);
    mem.store_u64(word(&l, 0, 0), INACTIVE);
    t.snapshot_record(0, &mut r).unwrap();
    assert_eq!(r.vcpus_online(), None);
}

// ------------------------------------------- r3: up-to-date runstate (R26)

/// An r3 vCPU table of `n` records with header `clock`: every record
/// running since `entry` with times `[1000 * (i + 1), 10, 20, 0]`.
fn r3_image(n: u32, clock: u32, entry: u64) -> (Layout, Vec<u8>) {
    let p = LayoutParams {
        clock,
        ..LayoutParams::vcpu_r3(n)
    };
    let (l, mut b) = image(&p, VCPU_STATS_MAGIC, 3, &[]);
    for i in 0..n {
        let words = [1000 * u64::from(i + 1), 10, 20, 0, 0, entry];
        for (k, w) in words.into_iter().enumerate() {
            put64(&mut b, word(&l, i, k), w);
        }
    }
    (l, b)
}

#[test]
fn r3_snapshots_read_the_table_clock_after_the_copy() {
    let entry = vstats_abi::clock::monotonic_ns();
    let (l, b) = r3_image(2, vstats_abi::header::CLOCK_HOST_MONOTONIC, entry);
    let mem = SharedMem::from_bytes(&b);
    let t = mem.table().unwrap();
    let mut s = Snapshot::new(&t);
    assert_eq!(s.taken_at_ns(), None, "not taken yet");
    assert_eq!(s.time_base(), TimeBase::HostMonotonic);
    let before = vstats_abi::clock::monotonic_ns();
    assert_eq!(t.snapshot(&mut s), 0);
    let after = vstats_abi::clock::monotonic_ns();
    let at = s.taken_at_ns().expect("clock 1 is readable");
    assert!(before <= at && at <= after, "{before} {at} {after}");
    let r = s.record(1).unwrap();
    assert_eq!(r.taken_at_ns(), Some(at));
    assert_eq!(
        (r.runstate(), r.runstate_entry_time()),
        (Some(0), Some(entry))
    );
    let up = r.up_to_date();
    assert!(up.extrapolated && !up.clamped);
    assert_eq!(up.state_name(), Some("running"));
    assert_eq!(up.entry_ns, Some(entry));
    assert_eq!(
        up.times_ns,
        [Some(2000 + (at - entry)), Some(10), Some(20), Some(0)]
    );
    assert_eq!(
        crate::runstate::up_to_date(r, Some(entry + 5)).times_ns[0],
        Some(2005)
    );
    // The same through one record's own copy.
    let mut one = RecordSnapshot::new(&t);
    t.snapshot_record(0, &mut one).unwrap();
    let at1 = one.taken_at_ns().unwrap();
    assert!(at1 >= at);
    assert_eq!(one.up_to_date().times_ns[0], Some(1000 + (at1 - entry)));
    // snapshot_at: the caller's reading of the table clock (once per tick,
    // after its last table) instead of a read of its own.
    t.snapshot_at(&mut s, std::time::Instant::now(), Some(entry + 7));
    assert_eq!(s.taken_at_ns(), Some(entry + 7));
    assert_eq!(s.record(1).unwrap().up_to_date().times_ns[0], Some(2007));
    t.snapshot_at(&mut s, std::time::Instant::now(), None);
    assert_eq!(s.taken_at_ns(), None);
    assert!(!s.record(1).unwrap().up_to_date().extrapolated);
    // Another state: blocked since `entry`.
    mem.store_u64(word(&l, 0, 4), 2);
    t.snapshot(&mut s);
    let at2 = s.taken_at_ns().unwrap();
    let up = s.record(0).unwrap().up_to_date();
    assert_eq!(
        up.times_ns,
        [Some(1000), Some(10), Some(20 + (at2 - entry)), Some(0)]
    );
}

#[test]
fn runstate_snapshots_copy_the_state_and_entry_of_r3_tables() {
    let entry = vstats_abi::clock::monotonic_ns();
    let (_, b) = r3_image(2, vstats_abi::header::CLOCK_HOST_MONOTONIC, entry);
    let mem = SharedMem::from_bytes(&b);
    let t = mem.table().unwrap();
    let mut s = Snapshot::of_runstate(&t);
    assert!(s.is_subset());
    t.snapshot(&mut s);
    let at = s.taken_at_ns().unwrap();
    let r = s.record(1).unwrap();
    let up = r.up_to_date();
    assert!(up.extrapolated);
    assert_eq!(up.times_ns[0], Some(2000 + (at - entry)));
    // Only those six words: nothing past them would be copied (an r3
    // record has none, so check the count).
    assert_eq!(s.words_per_record(), 6);
    assert_eq!(r.words().len(), 6);
    // An r2 table: the four times only, never extrapolated.
    let (_, b) = vcpu_image(2, 1);
    let mem2 = SharedMem::from_bytes(&b);
    let t2 = mem2.table().unwrap();
    let mut s2 = Snapshot::of_runstate(&t2);
    t2.snapshot(&mut s2);
    let up = s2.record(1).unwrap().up_to_date();
    assert!(!up.extrapolated);
    assert_eq!(up.times_ns, [Some(100), Some(101), Some(102), Some(103)]);
}

#[test]
fn r3_records_without_a_readable_clock_are_not_extrapolated() {
    // clock 0 (unnamed) and an unknown clock: no clock read at all.
    for clock in [0, 7] {
        let (_, b) = r3_image(1, clock, 5);
        let mem = SharedMem::from_bytes(&b);
        let t = mem.table().unwrap();
        let mut s = Snapshot::new(&t);
        t.snapshot(&mut s);
        assert_eq!(s.taken_at_ns(), None, "clock {clock}");
        let up = s.record(0).unwrap().up_to_date();
        assert!(!up.extrapolated);
        assert_eq!(up.state, Some(0), "the state is still reported");
        assert_eq!(up.times_ns, [Some(1000), Some(10), Some(20), Some(0)]);
    }
    // An inactive state (an unused slot, or a producer that does not
    // know it): the times as read.
    let (l, b) = r3_image(1, 1, 5);
    let mem = SharedMem::from_bytes(&b);
    mem.store_u64(word(&l, 0, 4), INACTIVE);
    let t = mem.table().unwrap();
    let mut s = Snapshot::new(&t);
    t.snapshot(&mut s);
    assert!(s.taken_at_ns().is_some());
    let up = s.record(0).unwrap().up_to_date();
    assert!(!up.extrapolated);
    assert_eq!(up.times_ns[0], Some(1000));
}

/// A clock that answers what a test sets (`u64::MAX`: unreadable) and
/// counts its readings.
#[derive(Default)]
struct SetClock {
    now: std::sync::atomic::AtomicU64,
    reads: AtomicU32,
}

impl crate::runstate::Clock for SetClock {
    fn now_ns(&self) -> Option<u64> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let now = self.now.load(Ordering::Relaxed);
        (now != u64::MAX).then_some(now)
    }
}

#[test]
fn a_clock_attached_to_a_table_stamps_its_snapshots() {
    // A Xen-clock table: without a reader of its own, this process has no
    // Xen system time (no Xen here), so nothing is brought up to date.
    let (_, b) = r3_image(2, vstats_abi::header::CLOCK_XEN_SYSTEM, 5);
    let mem = SharedMem::from_bytes(&b);
    let mut t = mem.table().unwrap();
    let mut s = Snapshot::new(&t);
    let mut one = RecordSnapshot::new(&t);
    assert_eq!(t.clock_name(), None);
    t.snapshot(&mut s);
    assert_eq!(s.taken_at_ns(), None);
    assert!(!s.record(0).unwrap().up_to_date().extrapolated);
    // The reader the backend attaches (the domain's time frame) is asked
    // once per snapshot, after the copy, for the whole table and for one
    // record.
    let clock = std::sync::Arc::new(SetClock::default());
    clock.now.store(105, Ordering::Relaxed);
    t.set_clock(clock.clone(), "a test clock");
    assert_eq!(t.clock_name(), Some("a test clock"));
    assert_eq!(t.clock_now(), Some(105));
    t.snapshot(&mut s);
    assert_eq!(s.taken_at_ns(), Some(105));
    let up = s.record(1).unwrap().up_to_date();
    assert!(up.extrapolated);
    assert_eq!(up.times_ns, [Some(2100), Some(10), Some(20), Some(0)]);
    clock.now.store(205, Ordering::Relaxed);
    t.snapshot_record(0, &mut one).unwrap();
    assert_eq!(one.taken_at_ns(), Some(205));
    assert_eq!(one.up_to_date().times_ns[0], Some(1200));
    assert_eq!(clock.reads.load(Ordering::Relaxed), 3);
    // The caller's reading wins over the reader (snapshot_at).
    t.snapshot_at(&mut s, std::time::Instant::now(), Some(9));
    assert_eq!(s.taken_at_ns(), Some(9));
    assert_eq!(clock.reads.load(Ordering::Relaxed), 3);
    // An unreadable clock (a stale frame): times as written.
    clock.now.store(u64::MAX, Ordering::Relaxed);
    t.snapshot(&mut s);
    assert_eq!(s.taken_at_ns(), None);
    assert!(!s.record(0).unwrap().up_to_date().extrapolated);
    // A dead producer's times are final: the reader is not even asked.
    clock.now.store(305, Ordering::Relaxed);
    t.set_producer_gone(true);
    let reads = clock.reads.load(Ordering::Relaxed);
    t.snapshot(&mut s);
    assert_eq!(s.taken_at_ns(), None);
    assert_eq!(t.clock_now(), None);
    assert_eq!(clock.reads.load(Ordering::Relaxed), reads);
    // A table of clock 0 takes no time from an attached reader either.
    let (_, b) = r3_image(1, vstats_abi::header::CLOCK_NONE, 5);
    let mem = SharedMem::from_bytes(&b);
    let mut t = mem.table().unwrap();
    t.set_clock(clock.clone(), "a test clock");
    let mut s = Snapshot::new(&t);
    t.snapshot(&mut s);
    assert_eq!((s.taken_at_ns(), t.clock_now()), (None, None));
}

#[test]
fn a_table_whose_producer_is_gone_is_never_brought_up_to_date() {
    // A crashed producer leaves its last record: a vCPU "running since
    // entry" would look running for ever (docs/abi.md section 10). Marked
    // gone, the table's snapshots name no clock and the times are final.
    let (_, b) = r3_image(1, vstats_abi::header::CLOCK_HOST_MONOTONIC, 5);
    let mem = SharedMem::from_bytes(&b);
    let t = mem.table().unwrap();
    let mut s = Snapshot::new(&t);
    let mut one = RecordSnapshot::new(&t);
    t.snapshot(&mut s);
    assert!(
        s.record(0).unwrap().up_to_date().extrapolated,
        "live: extrapolated"
    );
    t.set_producer_gone(true);
    assert!(t.producer_gone());
    t.snapshot(&mut s);
    t.snapshot_record(0, &mut one).unwrap();
    for (what, r) in [("snapshot", s.record(0).unwrap()), ("record", one.view())] {
        assert_eq!(r.time_base(), TimeBase::Unnamed, "{what}");
        assert_eq!(r.taken_at_ns(), None, "{what}");
        let up = r.up_to_date();
        assert!(!up.extrapolated, "{what}");
        assert_eq!(
            up.times_ns,
            [Some(1000), Some(10), Some(20), Some(0)],
            "{what}"
        );
    }
    // Nor does a caller's reading of the clock bring it up to date.
    t.snapshot_at(&mut s, std::time::Instant::now(), Some(u64::MAX >> 2));
    assert_eq!(s.taken_at_ns(), None);
    assert!(!s.record(0).unwrap().up_to_date().extrapolated);
    // Back (a restarted producer reuses nothing of this table, but the flag
    // is not sticky).
    t.set_producer_gone(false);
    t.snapshot(&mut s);
    assert!(s.record(0).unwrap().up_to_date().extrapolated);
}

#[test]
fn r2_tables_cost_no_clock_read_and_are_never_extrapolated() {
    let (_, b) = vcpu_image(2, 1);
    let mem = SharedMem::from_bytes(&b);
    let t = mem.table().unwrap();
    let mut s = Snapshot::new(&t);
    t.snapshot(&mut s);
    assert_eq!(s.taken_at_ns(), None);
    assert_eq!(s.time_base(), TimeBase::Unnamed);
    let r = s.record(1).unwrap();
    assert_eq!((r.runstate(), r.runstate_entry_time()), (None, None));
    let up = r.up_to_date_at(Some(u64::MAX >> 2));
    assert_eq!(
        up,
        Runstate::from_times([100, 101, 102, 103]),
        "an r2 record has no state to extrapolate"
    );
    // A domain table has no runstate at all.
    let (_, b) = image(
        &LayoutParams::domain_r2(),
        DOMAIN_STATS_MAGIC,
        5,
        DOMAIN_STD_DESCRIPTORS,
    );
    let mem = SharedMem::from_bytes(&b);
    let t = mem.table().unwrap();
    let mut r = RecordSnapshot::new(&t);
    t.snapshot_record(0, &mut r).unwrap();
    assert_eq!(r.up_to_date().times_ns, [None; 4]);
}

// --------------------------------------------- deltas, rates, aggregates

#[test]
fn deltas_and_rates() {
    let (l, mut b) = image(
        &LayoutParams {
            record_size: 48,
            desc_count: 5,
            ..LayoutParams::vcpu_r2(2)
        },
        VCPU_STATS_MAGIC,
        1,
        &{
            let mut d = VCPU_STD_DESCRIPTORS.to_vec();
            d.push(Descriptor::scalar(
                "gauge",
                40,
                Kind::INSTANT,
                Unit::NONE,
                Base::POW10,
                0,
            ));
            d
        },
    );
    put32(&mut b, seq_off(&l, 0), 10);
    let mem = SharedMem::from_bytes(&b);
    let t = mem.table().unwrap();
    let running = t.counter("runstate_running_time").unwrap();
    let offline = t.counter("runstate_offline_time").unwrap();
    let runnable = t.counter("runstate_runnable_time").unwrap();
    let gauge = t.counter("gauge").unwrap();
    let mut prev = RecordSnapshot::new(&t);
    let mut cur = RecordSnapshot::new(&t);
    assert_eq!(delta(&prev, &cur, running), Delta::Absent, "never read");
    t.snapshot_record(0, &mut prev).unwrap();

    // One update: running +1500, runnable goes down (an anomaly),
    // offline becomes inactive, the gauge drops by 4.
    mem.store_u32(seq_off(&l, 0), 12);
    mem.store_u64(word(&l, 0, 0), 1500);
    mem.store_u64(word(&l, 0, 1), 0);
    mem.store_u64(word(&l, 0, 3), INACTIVE);
    mem.store_u64(word(&l, 0, 4), 0);
    std::thread::sleep(Duration::from_millis(2));
    t.snapshot_record(0, &mut cur).unwrap();
    assert_eq!(delta(&prev, &cur, running), Delta::Value(1500));
    assert_eq!(delta(&prev, &cur, running).value(), Some(1500));
    assert_eq!(
        delta(&prev, &cur, runnable),
        Delta::Decreased { from: 1, to: 0 }
    );
    assert_eq!(delta(&prev, &cur, runnable).value(), None);
    assert_eq!(delta(&prev, &cur, offline), Delta::Absent);
    assert_eq!(
        delta(&prev, &cur, gauge),
        Delta::Decreased { from: 4, to: 0 }
    );

    let secs = cur
        .taken()
        .unwrap()
        .duration_since(prev.taken().unwrap())
        .as_secs_f64();
    assert!(secs > 0.0);
    let r = rate(&prev, &cur, running).unwrap();
    assert!(
        (r - 1500.0 / secs).abs() <= 1e-9 * r,
        "{r} vs {}",
        1500.0 / secs
    );
    assert_eq!(rate(&prev, &cur, runnable), None, "cumulative decrease");
    let g = rate(&prev, &cur, gauge).unwrap();
    assert!((g + 4.0 / secs).abs() <= 1e-9 * g.abs(), "gauge rate {g}");
    assert_eq!(rate(&prev, &cur, offline), None);
    assert_eq!(rate(&cur, &prev, running), None, "time goes forward");

    // Seq went backwards: the producer restarted.
    mem.store_u32(seq_off(&l, 0), 2);
    let mut after = RecordSnapshot::new(&t);
    t.snapshot_record(0, &mut after).unwrap();
    assert_eq!(delta(&cur, &after, running), Delta::Reset);
    // Another record index.
    t.snapshot_record(1, &mut after).unwrap();
    assert_eq!(delta(&cur, &after, running), Delta::Reset);

    // Another generation (a new table at the same place).
    let (_, b2) = vcpu_image(2, 2);
    let m2 = SharedMem::from_bytes(&b2);
    let t2 = m2.table().unwrap();
    let mut other = RecordSnapshot::new(&t2);
    t2.snapshot_record(0, &mut other).unwrap();
    assert_eq!(delta(&prev, &other, running), Delta::Reset);

    // A busy reading is absent.
    mem.store_u32(seq_off(&l, 0), 13);
    let mut busy = RecordSnapshot::new(&t);
    assert!(t.snapshot_record(0, &mut busy).is_err());
    assert_eq!(delta(&prev, &busy, running), Delta::Absent);
}

#[test]
fn seq_wraps_forward() {
    let (l, mut b) = vcpu_image(1, 1);
    put32(&mut b, seq_off(&l, 0), u32::MAX - 1);
    let mem = SharedMem::from_bytes(&b);
    let t = mem.table().unwrap();
    let running = t.counter("runstate_running_time").unwrap();
    let (mut prev, mut cur) = (RecordSnapshot::new(&t), RecordSnapshot::new(&t));
    t.snapshot_record(0, &mut prev).unwrap();
    mem.store_u32(seq_off(&l, 0), 2);
    mem.store_u64(word(&l, 0, 0), 10);
    t.snapshot_record(0, &mut cur).unwrap();
    assert_eq!(delta(&prev, &cur, running), Delta::Value(10));
}

#[test]
fn aggregate_math() {
    let a: Aggregate = [Some(0), Some(5), None, Some(10)].into_iter().collect();
    assert_eq!(
        a,
        Aggregate {
            present: 3,
            absent: 1,
            zero: 1,
            sum: 15,
            min: Some(0),
            max: Some(10)
        }
    );
    assert_eq!(a.average(), Some(5.0));
    let none: Aggregate = [None, None].into_iter().collect();
    assert_eq!((none.present, none.absent, none.average()), (0, 2, None));
    assert_eq!((none.min, none.max), (None, None));
    // No overflow with the largest active values.
    let big: Aggregate = [Some((1u64 << 63) - 1); 4].into_iter().collect();
    assert_eq!(big.sum, 4 * u128::from((1u64 << 63) - 1));
}

// ----------------------------------------------------- restart detection

#[test]
fn is_stale_sees_header_and_generation_changes() {
    let (l, b) = vcpu_image(2, 1);
    let check = |off: usize, v: u64, wide: bool| {
        let mem = SharedMem::from_bytes(&b);
        let t = mem.table().unwrap();
        assert!(!t.is_stale());
        // Records changing is not staleness.
        mem.store_u64(word(&l, 1, 0), 99);
        assert!(!t.is_stale());
        if wide {
            // Two u32 stores, as the producer writes head fields.
            let bytes = v.to_ne_bytes();
            let (lo, hi) = bytes.split_at(4);
            mem.store_u32(off, u32::from_ne_bytes(lo.try_into().unwrap()));
            mem.store_u32(off + 4, u32::from_ne_bytes(hi.try_into().unwrap()));
        } else {
            mem.store_u32(off, v as u32);
        }
        assert!(t.is_stale(), "change at {off}");
    };
    check(0, 0x1234, false); // magic
    check(4, 512, false); // offset
    check(8, 48, false); // size
    check(12, 128, false); // stride
    check(24, 3, false); // nr_records
    check(48, 2, true); // generation

    // A v3 table gaining an extension header.
    let mem = SharedMem::from_bytes(&v3_image());
    let t = mem.table().unwrap();
    assert!(!t.is_stale());
    mem.store_u32(16, vstats_abi::EXT_MAGIC);
    assert!(t.is_stale());
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot mmap files")]
fn restart_by_replacing_the_file() {
    let (_, b1) = vcpu_image(2, 1);
    let f = TempFile::new("restart", &b1);
    let t = Table::open(f.path()).unwrap();
    let running = t.counter("runstate_running_time").unwrap().clone();
    let mut before = RecordSnapshot::new(&t);
    t.snapshot_record(1, &mut before).unwrap();

    // The producer restarts: writes a new file and renames it over.
    let (_, b2) = vcpu_image(2, 2);
    let tmp = TempFile::new("restart-new", &b2);
    std::fs::rename(tmp.path(), f.path()).unwrap();
    assert!(!t.is_stale(), "the old mapping is unchanged");
    assert!(t.file_replaced().unwrap());
    let t2 = t.reopen().unwrap();
    assert_eq!(t2.generation(), 2);
    assert!(!t2.file_replaced().unwrap());
    let mut after = RecordSnapshot::new(&t2);
    t2.snapshot_record(1, &mut after).unwrap();
    assert_eq!(delta(&before, &after, &running), Delta::Reset);

    std::fs::remove_file(f.path()).unwrap();
    assert!(t2.file_replaced().unwrap(), "removed counts as replaced");
    assert!(matches!(t2.reopen(), Err(Error::Io { .. })));
}

// -------------------------------------------------------------- proptest

fn config() -> ProptestConfig {
    // PROPTEST_CASES raises the default of 256; Miri runs a few.
    let mut c = ProptestConfig::default();
    if cfg!(miri) {
        c.cases = 16;
    }
    c.failure_persistence = None;
    c
}

/// Reads everything an accepted table offers and checks it stays inside
/// the geometry; `len` is the mapping's length.
fn exercise(t: &Table, len: usize) {
    let info = *t.info();
    assert_eq!(info.mapped_len, len as u64);
    let n_words = (info.header.size as usize - 8) / 8;
    for i in 0..info.nr_records {
        let end = info.record_offset(i).unwrap() + u64::from(info.header.size);
        assert!(end <= len as u64);
    }
    for c in t.counters() {
        assert!(c.offset() >= 8);
        assert!(c.offset() as usize + 8 * c.count() as usize <= info.header.size as usize);
    }
    let mut s = Snapshot::new(t);
    let busy = t.snapshot(&mut s);
    assert_eq!(s.records().len(), info.nr_records as usize);
    assert_eq!(busy, s.busy_count());
    assert_eq!(busy as usize, s.busy().count());
    for r in s.records() {
        if r.is_consistent() {
            assert_eq!(r.words().len(), n_words);
        }
        for c in t.counters() {
            if let Some(v) = r.get(c) {
                assert!(vstats_abi::record::is_active(v));
            }
            if let Some(h) = r.histogram(c) {
                assert_eq!(h.len(), c.count() as usize);
            }
            let _ = delta(r, r, c);
            let _ = rate(r, r, c);
        }
        let _ = (
            r.running(),
            r.runnable(),
            r.blocked(),
            r.offline(),
            r.is_unused(),
        );
        let _ = (r.vcpus_online(), r.vcpus_max(), r.uptime());
    }
    for c in t.counters() {
        let a = s.aggregate(c);
        assert_eq!(a.present + a.absent, info.nr_records);
    }
    if let Some(i) = info.nr_records.checked_sub(1) {
        let mut r = RecordSnapshot::new(t);
        let _ = t.snapshot_record(i, &mut r);
    }
    assert!(!t.is_stale());
}

/// Bytes that get past the first checks often: a valid table of a few
/// records, or a v3 header, with arbitrary byte patches, or plain noise
/// behind a valid magic.
fn table_bytes() -> impl Strategy<Value = Vec<u8>> {
    let patched = (
        1u32..6,
        prop::collection::vec((0usize..4096, any::<u8>()), 0..12),
        any::<bool>(),
    )
        .prop_map(|(n, patches, v3)| {
            let mut b = if v3 { v3_image() } else { vcpu_image(n, 1).1 };
            for (at, v) in patches {
                let at = at % b.len();
                // Mostly the head, where the geometry lives.
                let at = if at % 4 == 0 { at } else { at % 400 };
                b[at] = v;
            }
            b
        });
    let noise = (
        prop::collection::vec(any::<u8>(), 0..1024),
        prop::sample::select(vec![VCPU_STATS_MAGIC, DOMAIN_STATS_MAGIC, 0]),
    )
        .prop_map(|(mut b, magic)| {
            if b.len() >= 4 && magic != 0 {
                put32(&mut b, 0, magic);
            }
            b
        });
    prop_oneof![patched, noise]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_memory_never_panics(bytes in table_bytes(), cut in 0usize..64) {
        let mem = SharedMem::from_bytes(&bytes);
        // Also a mapping shorter than the memory, by up to 63 bytes.
        for len in [bytes.len(), bytes.len().saturating_sub(cut)] {
            if let Ok(t) = mem.table_raw(len) {
                exercise(&t, len);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: config().cases.min(64), ..config() })]

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot mmap files")]
    fn arbitrary_files_never_panic(bytes in table_bytes()) {
        let f = TempFile::new("prop", &bytes);
        if let Ok(t) = Table::open(f.path()) {
            exercise(&t, bytes.len());
        }
    }
}

#[test]
fn produced_tables_of_many_shapes_are_read_back() {
    // Page sizes, cachelines and record sizes the layout accepts.
    for (page, line, size, n) in [
        (4096, 64, 40, 1),
        (4096, 8, 16, 100),
        (65536, 128, 40, 3),
        (4096, 64, 1096, 3),
    ] {
        let p = LayoutParams {
            page_size: page,
            cacheline: line,
            record_size: size,
            abi_size: size.min(VCPU_STATS_SIZE),
            desc_count: 0,
            nr_records: n,
            ext_size: vstats_abi::header::EXT_HEADER_SIZE,
            clock: 0,
            xstats_size: 0,
            xdesc_count: 0,
        };
        let (l, b) = image(&p, VCPU_STATS_MAGIC, 1, &[]);
        let mem = SharedMem::from_bytes(&b);
        let t = mem.table().unwrap();
        assert_eq!(t.nr_records(), n);
        exercise(&t, b.len());
        let mut s = Snapshot::new(&t);
        t.snapshot(&mut s);
        let last = s.record(n - 1).unwrap();
        assert_eq!(last.running(), Some(100 * u64::from(n - 1)));
        assert_eq!(last.words().len(), (l.size as usize - 8) / 8);
        assert_eq!(
            last.get(t.counter("runstate_running_time").unwrap()),
            last.running()
        );
    }
}

// ------------------------------------------- transport: truncation, files

/// A table of `n` vCPUs in a file, opened, with one good snapshot taken.
fn open_live(tag: &str, n: u32) -> (Layout, TempFile, Table, Snapshot) {
    let (l, b) = vcpu_image(n, 3);
    let f = TempFile::new(tag, &b);
    let t = Table::open(f.path()).unwrap();
    let mut s = Snapshot::new(&t);
    assert_eq!(t.snapshot(&mut s), 0);
    assert!(s.records().iter().all(|r| r.is_consistent()));
    assert!(!t.is_lost());
    (l, f, t, s)
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot mmap files")]
fn a_table_truncated_while_mapped_is_lost_not_fatal() {
    if !crate::mem::SURVIVES_TRUNCATION {
        return;
    }
    // Sizes: nothing left, half the table, and one not a whole page (the
    // rest of the last page reads as zeros, the pages after it fault).
    for cut in [Cut::Zero, Cut::Half, Cut::Odd] {
        let (l, f, t, mut s) = open_live("trunc", 400);
        let follower = crate::follow::Source::open_file(f.path()).unwrap();
        let len = l.mapping_len();
        assert!(len > 3 * 4096, "several pages: {len}");
        let new_len = match cut {
            Cut::Zero => 0,
            Cut::Half => len / 2,
            Cut::Odd => 4096 + 100,
        };
        std::fs::OpenOptions::new()
            .write(true)
            .open(f.path())
            .unwrap()
            .set_len(new_len)
            .unwrap();
        // The loads of the lost pages fault; the process lives on.
        t.snapshot(&mut s);
        assert!(t.is_lost(), "{cut:?}");
        let last = s.record(l.nr_records - 1).unwrap();
        assert_eq!(last.status(), RecordStatus::NotRead, "{cut:?}");
        assert_eq!(last.running(), None, "{cut:?}");
        if cut != Cut::Zero {
            // Records on pages still backed by the file are read.
            assert!(s.record(0).unwrap().is_consistent(), "{cut:?}");
        }
        // Once lost, nothing is read again, not even what is still backed
        // (as `Table::is_lost` says): no fault per record per snapshot.
        t.snapshot(&mut s);
        assert_eq!(
            s.record(0).unwrap().status(),
            RecordStatus::NotRead,
            "{cut:?}"
        );
        let e = t.check_lost().unwrap_err();
        assert!(
            matches!(e, Error::Truncated { path: Some(ref p) } if p == f.path()),
            "{e:?}"
        );
        assert!(e.to_string().contains("truncated while mapped"), "{e}");
        if cut == Cut::Zero {
            assert!(t.is_stale(), "the header is gone");
        }
        // A follower reports it as an error, not as a restart.
        follower.table.snapshot(&mut s);
        let e = follower.restarted().unwrap_err();
        assert!(matches!(e, Error::Truncated { .. }), "{cut:?}: {e:?}");
        let mut e2 = RecordSnapshot::new(&t);
        let r = t.snapshot_record(l.nr_records - 1, &mut e2);
        assert!(r.is_ok() || matches!(r, Err(Error::Busy { .. })));
        assert_eq!(e2.status(), RecordStatus::NotRead);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    Zero,
    Half,
    Odd,
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot mmap files")]
fn guarded_loads_of_a_truncated_mapping_fail() {
    if !crate::mem::SURVIVES_TRUNCATION {
        return;
    }
    let mut bytes = [7u8; 3 * 4096];
    bytes[..4].fill(0); // an even seq at 0
    let f = TempFile::new("guard", &bytes);
    let (v, _) = crate::mem::MemView::map_file(f.path()).unwrap();
    assert_eq!(v.load::<u64>(2 * 4096), Some(u64::from_ne_bytes([7; 8])));
    std::fs::OpenOptions::new()
        .write(true)
        .open(f.path())
        .unwrap()
        .set_len(10)
        .unwrap();
    // The first page still reads (zeros past the end of the file)...
    assert_eq!(v.load::<u8>(9), Some(7));
    assert_eq!(v.load::<u8>(10), Some(0));
    assert_eq!(v.load::<u32>(4092), Some(0));
    // ...the pages past it fault, at every width and in a seq read.
    assert_eq!(v.load::<u8>(4096), None);
    assert_eq!(v.load::<u16>(4096), None);
    assert_eq!(v.load::<u32>(8192), None);
    assert_eq!(v.load::<u64>(8192), None);
    assert_eq!(v.copy_prefix(3 * 4096), None);
    let mut out = [0u64; 4];
    assert_eq!(v.read_seq_words(4096, 4104, &mut out, 3), None);
    assert_eq!(
        v.read_seq_words(0, 4072, &mut out, 1),
        None,
        "words cross into a lost page"
    );
    assert_eq!(
        v.read_seq_words(0, 8, &mut out, 1),
        Some(Ok(0)),
        "page left"
    );
    assert_eq!(out, [u64::from_ne_bytes([7, 7, 0, 0, 0, 0, 0, 0]), 0, 0, 0]);
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot open files")]
fn non_regular_files_are_refused_without_blocking_or_reading() {
    use std::os::unix::fs::symlink;
    let dir = std::env::temp_dir().join(format!("vstats-nonreg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (_, b) = vcpu_image(2, 1);
    let real = dir.join("real");
    std::fs::write(&real, &b).unwrap();
    // A FIFO: opening it blocking would hang until a writer came.
    let fifo = dir.join("fifo");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    let link = dir.join("link");
    symlink(&real, &link).unwrap();
    let sub = dir.join("vcpu-dir");
    std::fs::create_dir(&sub).unwrap();
    let kind = |r: crate::Result<Table>| match r {
        Err(Error::NotRegularFile { kind, .. }) => kind,
        other => panic!("not refused: {other:?}"),
    };
    let opens: [fn(&Path) -> crate::Result<Table>; 2] =
        [|p| Table::open(p), |p| Table::open_nofollow(p)];
    for open in opens {
        assert_eq!(kind(open(&fifo)), "FIFO");
        assert_eq!(kind(open(Path::new("/dev/null"))), "character device");
        assert_eq!(kind(open(&sub)), "directory");
    }
    // A path the user names is followed; a derived name is not.
    assert!(Table::open(&link).is_ok());
    assert_eq!(kind(Table::open_nofollow(&link)), "symbolic link");
    let e = Table::open_nofollow(&fifo).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}: not a regular file (FIFO); refused", fifo.display())
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot mmap files")]
fn only_the_described_extent_of_a_sparse_file_is_mapped() {
    let (l, b) = vcpu_image(2, 1);
    let f = TempFile::new("sparse", &b);
    std::fs::OpenOptions::new()
        .write(true)
        .open(f.path())
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let t = Table::open(f.path()).unwrap();
    assert_eq!(t.nr_records(), 2);
    let extent = l.mapping_len() as usize;
    assert!(
        t.mapped_len() >= extent && t.mapped_len() <= extent + 4096,
        "mapped {} for an extent of {extent}",
        t.mapped_len()
    );
    let mut s = Snapshot::new(&t);
    assert_eq!(t.snapshot(&mut s), 0);
    assert_eq!(s.record(1).unwrap().running(), Some(100));
    // A v3 header (no record count: the file's size gives it) in a
    // sparse 1 GiB file: refused by the cap on counter words, having
    // mapped no more than the head window.
    let mut v3 = v3_image();
    put_header(
        &mut v3,
        Header {
            magic: VCPU_STATS_MAGIC,
            offset: 4096,
            size: 4096,
            stride: 4096,
        },
    );
    let g = TempFile::new("sparse-v3", &v3[..16]);
    std::fs::OpenOptions::new()
        .write(true)
        .open(g.path())
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let e = Table::open(g.path()).unwrap_err();
    assert!(
        matches!(e, Error::TooManyCounterWords { cap, .. } if cap == crate::MAX_COUNTER_WORDS)
            || matches!(e, Error::TooManyRecords { .. }),
        "{e:?}"
    );
}

// ------------------------------------------- flat and subset snapshots

#[test]
fn flat_snapshot_is_one_buffer_refilled_in_place() {
    let (l, b) = vcpu_image(3, 1);
    let mem = SharedMem::from_bytes(&b);
    let t = mem.table().unwrap();
    let n = (l.size as usize - 8) / 8;
    let mut s = Snapshot::new(&t);
    assert_eq!(
        (s.len(), s.words_per_record(), s.words().len()),
        (3, n, 3 * n)
    );
    assert!(!s.is_subset() && !s.is_empty());
    assert_eq!(s.record(1).unwrap().status(), RecordStatus::NotRead);
    assert_eq!(t.snapshot(&mut s), 0);
    assert_eq!(s.words()[2 * n + 1], 201);
    let (words, seqs) = (s.words().as_ptr(), s.records().len());
    mem.store_u64(word(&l, 2, 1), 7);
    assert_eq!(t.snapshot(&mut s), 0);
    assert_eq!(
        s.words().as_ptr(),
        words,
        "refilled in place, not reallocated"
    );
    assert_eq!(s.records().len(), seqs);
    let r = s.record(2).unwrap();
    assert_eq!(
        (r.index(), r.runnable(), r.taken()),
        (2, Some(7), s.taken())
    );
    assert_eq!(r.words(), &s.words()[2 * n..3 * n]);
    // Views from a snapshot and from a record snapshot read alike.
    let mut one = RecordSnapshot::new(&t);
    t.snapshot_record(2, &mut one).unwrap();
    assert_eq!(one.view().words(), r.words());
    let c = t.counter("runstate_runnable_time").unwrap();
    assert_eq!(delta(&one, r, c), Delta::Value(0));
    let back: Vec<u32> = s.records().rev().map(|r| r.index()).collect();
    assert_eq!(back, [2, 1, 0]);
    assert_eq!(s.records().get(1).map(|r| r.running()), Some(Some(100)));
}

#[test]
fn subset_snapshot_copies_only_the_named_counters() {
    let (l, b) = vcpu_image(3, 1);
    let mem = SharedMem::from_bytes(&b);
    let mut t = mem.table().unwrap();
    t.set_max_attempts(2);
    let [run, rnb, blk] = [
        "runstate_running_time",
        "runstate_runnable_time",
        "runstate_blocked_time",
    ]
    .map(|n| t.counter(n).unwrap().clone());
    let mut s = Snapshot::of_counters(&t, [&blk, &run]);
    assert!(s.is_subset());
    assert_eq!(t.snapshot(&mut s), 0);
    assert!(s.is_complete());
    let r = s.record(2).unwrap();
    assert_eq!(
        (r.get(&run), r.get(&blk), r.get(&rnb)),
        (Some(200), Some(202), None)
    );
    assert_eq!((r.running(), r.runnable()), (Some(200), None));
    assert_eq!(r.words()[1], INACTIVE, "a word not named is not copied");
    assert!(!r.is_unused());

    // Busy records are found and retried as in a full snapshot.
    mem.store_u32(seq_off(&l, 1), 7);
    mem.store_u64(word(&l, 0, 0), 5);
    assert_eq!(t.snapshot(&mut s), 1);
    assert_eq!(
        s.record(1).unwrap().status(),
        RecordStatus::Busy {
            seq: 7,
            attempts: 2
        }
    );
    assert_eq!(s.record(1).unwrap().running(), None);
    assert_eq!(s.record(0).unwrap().running(), Some(5));
    assert_eq!(s.aggregate(&run).present, 2);
    // Stamped with the caller's time.
    let at = std::time::Instant::now();
    assert_eq!(t.snapshot_at(&mut s, at, None), 1);
    assert_eq!(
        (s.taken(), s.record(0).unwrap().taken()),
        (Some(at), Some(at))
    );
    // Reshaped for another table, the subset is kept.
    let (_, b2) = vcpu_image(5, 1);
    let mem2 = SharedMem::from_bytes(&b2);
    let t2 = mem2.table().unwrap();
    assert_eq!(t2.snapshot(&mut s), 0);
    assert!(s.is_subset());
    assert_eq!(s.len(), 5);
    let r4 = s.record(4).unwrap();
    assert_eq!((r4.running(), r4.runnable()), (Some(400), None));
}

/// A snapshot keeps its sweep's plan (bounds checked once, routine chosen
/// once) only for the mapping, geometry and copy path it was made for:
/// refilled from another table of the same shape, from a shorter mapping
/// of the same memory, or after the copy path changed, it reads what a
/// fresh snapshot reads.
#[test]
fn a_snapshot_refilled_elsewhere_reads_what_a_fresh_one_reads() {
    use crate::mem::{copy_path, set_copy_path, CopyPath};
    let (l, b1) = vcpu_image(4, 1);
    let mut b2 = b1.clone();
    for i in 0..4 {
        for k in 0..(l.size as usize - 8) / 8 {
            put64(
                &mut b2,
                word(&l, i, k),
                7000 + 100 * u64::from(i) + k as u64,
            );
        }
    }
    let (m1, m2) = (SharedMem::from_bytes(&b1), SharedMem::from_bytes(&b2));
    let (t1, t2) = (m1.table().unwrap(), m2.table().unwrap());
    let t1_short = m1.table_raw(b1.len() - 8).unwrap();
    let words =
        |s: &Snapshot| -> Vec<Vec<u64>> { s.records().map(|r| r.words().to_vec()).collect() };
    let fresh = |t: &Table, runstate: bool| {
        let mut f = if runstate {
            Snapshot::of_runstate(t)
        } else {
            Snapshot::new(t)
        };
        assert_eq!(t.snapshot(&mut f), 0);
        words(&f)
    };
    assert_ne!(fresh(&t1, false), fresh(&t2, false));
    let mut s = Snapshot::new(&t1);
    let mut sub = Snapshot::of_runstate(&t1);
    let mut rec = RecordSnapshot::new(&t1);
    for t in [&t1, &t2, &t1_short, &t1, &t2] {
        assert_eq!(t.snapshot(&mut s), 0);
        assert_eq!(words(&s), fresh(t, false));
        assert_eq!(t.snapshot(&mut sub), 0);
        assert_eq!(words(&sub), fresh(t, true));
        for i in [3, 0] {
            t.snapshot_record(i, &mut rec).unwrap();
            assert_eq!(rec.words(), &fresh(t, false)[i as usize][..]);
        }
    }
    // A table of another record count: the plan's records are not its.
    let (_, b8) = vcpu_image(8, 1);
    let m8 = SharedMem::from_bytes(&b8);
    let t8 = m8.table().unwrap();
    t8.snapshot_record(7, &mut rec).unwrap();
    assert_eq!(rec.words(), &fresh(&t8, false)[7][..]);
    t1.snapshot_record(3, &mut rec).unwrap();
    assert_eq!(rec.words(), &fresh(&t1, false)[3][..]);
    // The copy path changes between refills (not to the atomic path on a
    // guarded build: other tests of this process truncate mapped files).
    let best = copy_path();
    for p in CopyPath::available()
        .into_iter()
        .filter(|p| *p != CopyPath::Atomic || !crate::mem::SURVIVES_TRUNCATION)
    {
        assert!(set_copy_path(p), "{p:?}");
        for t in [&t1, &t2] {
            assert_eq!(t.snapshot(&mut s), 0);
            assert_eq!(words(&s), fresh(t, false), "{p:?}");
            assert_eq!(t.snapshot(&mut sub), 0);
            assert_eq!(words(&sub), fresh(t, true), "{p:?}");
        }
    }
    assert!(set_copy_path(best));
}

/// Every copy path this build runs reads the same values and never a torn
/// record. (Not the atomic path on a guarded build: it is not
/// fault-guarded, and other tests of this process truncate mapped files;
/// it is the only path under Miri, where it runs here.)
#[test]
fn every_copy_path_reads_alike_and_never_torn() {
    use crate::mem::{copy_path, set_copy_path, CopyPath};
    const ROUNDS: u64 = if cfg!(miri) { 4 } else { 2_000 };
    let best = copy_path();
    let paths: Vec<CopyPath> = CopyPath::available()
        .into_iter()
        .filter(|p| *p != CopyPath::Atomic || !crate::mem::SURVIVES_TRUNCATION)
        .collect();
    assert!(!paths.is_empty());
    for p in paths {
        assert!(set_copy_path(p), "{p:?}");
        let (l, b) = vcpu_image(4, 1);
        let mem = SharedMem::from_bytes(&b);
        let t = mem.table().unwrap();
        let mut s = Snapshot::new(&t);
        assert_eq!(t.snapshot(&mut s), 0, "{p:?}");
        for i in 0..4u32 {
            let want: Vec<u64> = (0..(l.size as u64 - 8) / 8)
                .map(|k| 100 * u64::from(i) + k)
                .collect();
            assert_eq!(s.record(i).unwrap().words(), want, "{p:?}");
        }
        std::thread::scope(|sc| {
            sc.spawn(|| {
                let mut w = SeqWriter::new(0);
                for v in 1..=ROUNDS {
                    let seq = mem.u32_at(seq_off(&l, 3));
                    w.begin(seq);
                    for k in 0..(l.size as usize - 8) / 8 {
                        mem.store_u64(word(&l, 3, k), v);
                    }
                    w.end(seq);
                }
            });
            let mut last = 0;
            while last < ROUNDS {
                t.snapshot(&mut s);
                let r = s.record(3).unwrap();
                if !r.is_consistent() || r.words()[0] == 300 {
                    continue;
                }
                let w = r.words();
                assert!(w.iter().all(|&x| x == w[0]), "{p:?} torn: {w:?}");
                assert!(w[0] >= last);
                last = w[0];
            }
        });
    }
    assert!(set_copy_path(best));
}
