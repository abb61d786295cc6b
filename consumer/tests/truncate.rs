//! A library reader in its own process, attached to a live table whose
//! file is then truncated (to nothing, to half, to a size that is not a
//! whole page): the reader sees the table lost, reports one error line,
//! and exits non-zero, never killed by `SIGBUS`.
//!
//! The reader is this test binary run again (`reader_child`, active only
//! with `VSTATS_TRUNC_CHILD` set). Order is forced by a handshake: the
//! child prints `READY` after its first snapshot and takes its second
//! only when the parent, having cut the file, writes a line to its stdin.

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
    table.snapshot(&mut snap);
    let lost = snap.records().iter().filter(|r| !r.is_consistent()).count();
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
    let cuts: [(&str, Cut); 3] = [
        ("zero", |_| 0),
        ("half", |len| len / 2),
        ("odd", |_| 4096 + 100),
    ];
    for (what, cut) in cuts {
        let dir = std::env::temp_dir().join(format!("vstats-trunc-{}-{what}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let spec = TableSpec {
            magic: VCPU_STATS_MAGIC,
            layout: Layout::compute(&LayoutParams::vcpu(400)).unwrap(),
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
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
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
