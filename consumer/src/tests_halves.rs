//! The torn-halves test: a writer in another process stores every counter
//! word with one 64-bit store, and its words' two 32-bit halves always
//! change together (`v` in both: `v + 2^32 v`); the reader, this process,
//! must never accept a copy whose word joins halves of two writes. On
//! 32-bit targets the reader loads each word as two 32-bit halves
//! (`vstats_abi::seqlock`, "32-bit consumers"), which is what the test is
//! for; elsewhere it checks the 64-bit copy paths the same way.
//!
//! The writer is this test binary run again ([`writer_process`], ignored
//! unless the parent names a table for it): a separate process, so the
//! mixed-size race (its 64-bit stores, our 32-bit loads) happens between
//! programs, as between a producer and a consumer, never inside one.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use vstats_abi::record::INACTIVE;
use vstats_producer::{
    builder::TableBuilder,
    publish::{Publication, PublishOptions},
};

use crate::{Snapshot, Table};

/// The environment variable that names the writer's publication directory.
const DIR_VAR: &str = "VSTATS_TORN_HALVES_DIR";
/// The table's file name in that directory.
const FILE: &str = "halves";
/// Records of the table.
const RECORDS: u32 = 2;
/// Counter words of a vCPU record.
const WORDS: usize = 4;
/// Distinct values the reader must accept per record before it stops.
const WANTED: usize = 2_000;
/// The hang bound: no assertion on timing, only a limit for a writer that
/// never gets anywhere.
const HANG: Duration = Duration::from_secs(60);

/// Update `v`'s word: `v` in both halves (`v < 2^31`, below the inactive
/// bit).
fn both_halves(v: u64) -> u64 {
    v * ((1 << 32) + 1)
}

/// Whether `w` holds the same value in both halves.
fn halves_agree(w: u64) -> bool {
    w >> 32 == w & 0xffff_ffff
}

/// The writer: publishes a vCPU table in the directory the parent named
/// and updates every record with [`both_halves`] values until the parent
/// kills it (or dies). Does nothing when run without the parent.
#[test]
#[ignore = "the writer process of `no_copy_mixes_halves_of_two_writes`, which runs it"]
fn writer_process() {
    let Some(dir) = std::env::var_os(DIR_VAR) else {
        return;
    };
    let parent = std::os::unix::process::parent_id();
    let plan = TableBuilder::vcpu(RECORDS).build().unwrap();
    let mut publication =
        Publication::create_dir(Path::new(&dir), PublishOptions::default()).unwrap();
    let mut table = publication.publish(FILE, &plan).unwrap();
    let (_, writers) = table.split();
    let mut writers: Vec<_> = writers.collect();
    let mut v: u64 = 0;
    loop {
        v = v % ((1 << 31) - 1) + 1;
        for w in &mut writers {
            w.update_words(0, &[both_halves(v); WORDS]);
        }
        if v % 4096 == 0 && std::os::unix::process::parent_id() != parent {
            return; // The parent died without killing us.
        }
    }
}

/// Kills and reaps the writer, and removes its directory, on every exit.
struct Writer {
    child: Child,
    dir: PathBuf,
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot run processes or mmap files")]
fn no_copy_mixes_halves_of_two_writes() {
    let dir = std::env::temp_dir().join(format!("vstats-torn-halves-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "tests_halves::writer_process",
            "--exact",
            "--ignored",
            "--test-threads=1",
        ])
        .env(DIR_VAR, &dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut writer = Writer {
        child,
        dir: dir.clone(),
    };
    let deadline = Instant::now() + HANG;
    let path = dir.join(FILE);
    let table = loop {
        if let Ok(t) = Table::open(&path) {
            break t;
        }
        if let Some(status) = writer.child.try_wait().unwrap() {
            panic!("the writer process exited ({status}) before publishing");
        }
        assert!(Instant::now() < deadline, "no table at {}", path.display());
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut snap = Snapshot::new(&table);
    let mut last = [0u64; RECORDS as usize];
    let mut accepted = [0usize; RECORDS as usize];
    while accepted.iter().any(|&n| n < WANTED) {
        assert!(
            Instant::now() < deadline,
            "the writer made no progress: {accepted:?} values accepted"
        );
        table.snapshot(&mut snap);
        for r in snap.records().iter().filter(|r| r.is_consistent()) {
            let w = r.words();
            if r.seq() == 0 || w[..WORDS].iter().all(|&x| x == INACTIVE) {
                continue; // As the producer seeded it, before its first update.
            }
            for &x in &w[..WORDS] {
                assert!(
                    halves_agree(x),
                    "record {} word {x:#x} joins halves of two writes (seq {}): {w:x?}",
                    r.index(),
                    r.seq()
                );
            }
            assert!(
                w[..WORDS].iter().all(|&x| x == w[0]),
                "record {} torn across words: {w:x?}",
                r.index()
            );
            let i = r.index() as usize;
            assert!(w[0] >= last[i], "record {i} went back: {w:x?}");
            if w[0] != last[i] {
                accepted[i] += 1;
                last[i] = w[0];
            }
        }
    }
    assert!(
        writer.child.try_wait().unwrap().is_none(),
        "the writer died"
    );
    drop(writer);
}

#[test]
fn thirty_two_bit_builds_copy_in_halves_on_the_atomic_path() {
    use crate::mem::{copy_path, CopyPath, SURVIVES_TRUNCATION};
    let bits32 = cfg!(target_pointer_width = "32");
    assert_eq!(vstats_abi::seqlock::WORDS_IN_HALVES, bits32);
    // The fault-guarded assembly is x86-64 only.
    let guarded = cfg!(all(target_os = "linux", target_arch = "x86_64", not(miri)));
    assert_eq!(SURVIVES_TRUNCATION, guarded);
    if bits32 {
        assert_eq!(CopyPath::available(), [CopyPath::Atomic]);
        assert_eq!(copy_path(), CopyPath::Atomic);
    }
}
