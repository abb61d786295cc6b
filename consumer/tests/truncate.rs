//! A library reader in its own process, attached to a live table whose
//! file is then truncated (to nothing, to half, to a size that is not a
//! whole page): the reader sees the table lost, reports one error line,
//! and exits non-zero, never killed by `SIGBUS`.
//!
//! The reader is this test binary run again (`reader_child`, active only
//! with `VSTATS_TRUNC_CHILD` set). Order is forced by a handshake: the
//! child prints `READY` after its first snapshot and takes its second
//! only when the parent, having cut the file, writes a line to its stdin.
// Real processes and file mappings: beyond Miri, which runs the unit tests.
#![cfg(not(miri))]

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::process::ExitStatusExt,
    path::Path,
    process::{Command, Stdio},
};

use vstats_abi::{
    layout::{Layout, LayoutParams},
    record::VCPU_STD_DESCRIPTORS,
    VCPU_STATS_MAGIC,
};
use vstats_consumer::{follow::Vm, mem::SURVIVES_TRUNCATION, Snapshot};
use vstats_producer::{shm::ShmTable, TableSpec};

const CHILD: &str = "VSTATS_TRUNC_CHILD";

/// The reader: a VM directory followed as a front end would.
#[test]
fn reader_child() {
    let Some(dir) = std::env::var_os(CHILD) else {
        return;
    };
    let mut vm = Vm::open_dir(Path::new(&dir), "vm".into()).unwrap();
    let table = &vm.vcpu.as_ref().unwrap().table;
    let mut snap = Snapshot::new(table);
    assert_eq!(table.snapshot(&mut snap), 0);
    println!("READY");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    // "follow": the follower looks first (its header check meets the cut),
    // as a sampler whose sleep the cut fell into; else a snapshot does.
    let lost = if line.trim() == "follow" {
        0
    } else {
        table.snapshot(&mut snap);
        snap.records().iter().filter(|r| !r.is_consistent()).count()
    };
    match vm.follow() {
        Err(e) => {
            eprintln!("reader: {e} ({lost} records not read)");
            std::process::exit(3);
        }
        Ok(ev) => {
            println!("still here: {ev:?}");
            std::process::exit(0);
        }
    }
}

#[test]
fn a_library_reader_survives_truncation() {
    if !SURVIVES_TRUNCATION {
        return;
    }
    type Cut = fn(u64) -> u64;
    // The last case lets the follower meet the cut before any snapshot: a
    // file cut to nothing fails its header check, which is the truncation
    // too, not a restart whose new file would fail rule R1.
    let cuts: [(&str, Cut, &[u8]); 4] = [
        ("zero", |_| 0, b"go\n"),
        ("half", |len| len / 2, b"go\n"),
        ("odd", |_| 4096 + 100, b"go\n"),
        ("zero, follow first", |_| 0, b"follow\n"),
    ];
    for (what, cut, go) in cuts {
        let dir = std::env::temp_dir().join(format!(
            "vstats-trunc-{}-{}",
            std::process::id(),
            what.replace([' ', ','], "")
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let spec = TableSpec {
            magic: VCPU_STATS_MAGIC,
            layout: Layout::compute(&LayoutParams::vcpu_r2(400)).unwrap(),
            descriptors: VCPU_STD_DESCRIPTORS,
            generation: 1,
        };
        let table = ShmTable::create(&dir.join("vcpu"), &spec).unwrap();
        let len = std::fs::metadata(table.path()).unwrap().len();
        assert!(len > 3 * 4096);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["reader_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, &dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        // The harness prints "test reader_child ... " before it.
        while !line.trim_end().ends_with("READY") {
            line.clear();
            assert_ne!(out.read_line(&mut line).unwrap(), 0, "{what}: no READY");
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(table.path())
            .unwrap()
            .set_len(cut(len))
            .unwrap();
        child.stdin.take().unwrap().write_all(go).unwrap();
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.signal(), None, "{what}: killed: {err}");
        assert_eq!(o.status.code(), Some(3), "{what}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("reader: ")).collect();
        assert_eq!(lines.len(), 1, "{what}: {err}");
        assert!(
            lines[0].contains("truncated while mapped") && lines[0].contains("vcpu"),
            "{what}: {err}"
        );
        drop(table);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

const RAW_CHILD: &str = "VSTATS_RAW_FAULT_CHILD";

/// A child that faults outside the guarded loads: through the unguarded
/// atomic reference of `MemView::atomic`, on a page its file lost.
#[test]
fn raw_fault_child() {
    let Some(path) = std::env::var_os(RAW_CHILD) else {
        return;
    };
    let (view, _) = vstats_consumer::mem::MemView::map_file(Path::new(&path)).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    assert_eq!(view.load::<u64>(4096), None, "the guarded load survives");
    // SAFETY: the reference is used for one relaxed load only, as
    // `MemView::atomic` asks; that the page is gone is the point.
    let a = unsafe { view.atomic::<u64>(4096) }.unwrap();
    let v = a.load(std::sync::atomic::Ordering::Relaxed);
    println!("not reached: {v}");
}

#[test]
fn a_fault_outside_the_guarded_loads_still_kills() {
    if !SURVIVES_TRUNCATION {
        return;
    }
    let path = std::env::temp_dir().join(format!("vstats-rawfault-{}", std::process::id()));
    std::fs::write(&path, vec![0u8; 2 * 4096]).unwrap();
    let o = Command::new(std::env::current_exe().unwrap())
        .args([
            "raw_fault_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(RAW_CHILD, &path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("not reached"), "{out}");
    // The handler passed it on to the Rust runtime's, which restores the
    // default action: the child dies of SIGBUS as it would without us.
    assert_eq!(
        o.status.signal(),
        Some(libc::SIGBUS),
        "{:?} {out}",
        o.status
    );
}
