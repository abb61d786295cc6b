//! The seq protocol between real processes over real shared memory: a
//! producer process updates records as fast as it can, a consumer process
//! takes a million snapshots and checks each against the pattern; a writer
//! killed with SIGKILL mid-update makes readers report busy, not hang.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Instant,
};

use vstats_consumer::{Error, RecordSnapshot, Table, DEFAULT_MAX_ATTEMPTS};

const PRODUCER: &str = env!("CARGO_BIN_EXE_vstats-pattern-producer");
const CONSUMER: &str = env!("CARGO_BIN_EXE_vstats-pattern-consumer");

/// A producer process, killed and reaped on drop.
struct Producer(Child);

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A scratch directory holding the table file, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("vstats-xproc-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn table(&self) -> PathBuf {
        self.0.join("vcpu")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts the producer and waits for its readiness line.
fn start_producer(path: &Path, records: u32, mode: &str, ready: &str) -> Producer {
    let mut child = Command::new(PRODUCER)
        .arg(path)
        .arg(records.to_string())
        .arg(mode)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn producer");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), ready, "producer did not get ready");
    Producer(child)
}

/// Runs the consumer process; returns its summary as (key, value) pairs and
/// its exit code.
fn run_consumer(path: &Path, snapshots: u64, extra: &[&str]) -> (Vec<(String, u64)>, i32) {
    run_consumer_on(path, snapshots, extra, None)
}

/// As `run_consumer`, with the consumer's record copies on `copy_path`
/// (`VSTATS_COPY_PATH`), which it must confirm.
fn run_consumer_on(
    path: &Path,
    snapshots: u64,
    extra: &[&str],
    copy_path: Option<&str>,
) -> (Vec<(String, u64)>, i32) {
    let mut cmd = Command::new(CONSUMER);
    cmd.arg(path).arg(snapshots.to_string()).args(extra);
    if let Some(p) = copy_path {
        cmd.env("VSTATS_COPY_PATH", p);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("consumer: {stdout}{stderr}");
    if let Some(p) = copy_path {
        assert!(
            stderr.contains(&format!("copy_path={p}")),
            "the consumer did not copy on {p}"
        );
    }
    let summary = stdout
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
        .collect();
    (summary, out.status.code().unwrap_or(-1))
}

fn get(summary: &[(String, u64)], key: &str) -> u64 {
    summary
        .iter()
        .find(|(k, _)| k == key)
        .map(|&(_, v)| v)
        .unwrap_or_else(|| panic!("no {key}"))
}

/// A million snapshots; `VSTATS_LONG=1` takes fifty million.
#[test]
fn a_million_snapshots_across_processes_none_torn() {
    let n: u64 = if std::env::var_os("VSTATS_LONG").is_some_and(|v| v == "1") {
        50_000_000
    } else {
        1_000_000
    };
    let dir = Scratch::new("million");
    let path = dir.table();
    let _producer = start_producer(&path, 4, "run", "ready");
    // The default path (the vector assembly on Linux x86-64), then each
    // path by name (those this machine cannot run are skipped).
    for copy_path in [
        None,
        Some("atomic"),
        Some("scalar"),
        Some("sse2"),
        Some("avx2"),
    ] {
        if copy_path.is_some_and(|p| !path_runs_here(p)) {
            eprintln!("skipped: copy path {copy_path:?} does not run here");
            continue;
        }
        let (summary, code) = run_consumer_on(&path, n, &[], copy_path);
        assert_eq!(get(&summary, "snapshots"), n, "{copy_path:?}");
        assert_eq!(
            get(&summary, "torn"),
            0,
            "a torn snapshot was accepted ({copy_path:?})"
        );
        assert_eq!(code, 0, "{copy_path:?}");
        // The reader really saw the writer move: many distinct published
        // updates, not one frozen value.
        assert!(get(&summary, "consistent") > 0, "{copy_path:?}");
        assert!(
            get(&summary, "distinct") > 100,
            "the producer did not visibly update ({copy_path:?})"
        );
    }
}

/// Whether the copy path called `name` runs in this build on this CPU.
fn path_runs_here(name: &str) -> bool {
    vstats_consumer::mem::CopyPath::available()
        .iter()
        .any(|p| p.name() == name)
}

#[test]
fn a_producer_without_the_odd_phase_is_caught_tearing() {
    // The same consumer against a broken producer must report torn
    // snapshots: the check above can fail. Up to 50 million snapshots,
    // stopping at the first torn one.
    let dir = Scratch::new("noseq");
    let path = dir.table();
    let _producer = start_producer(&path, 4, "no-seq", "ready");
    let (summary, code) = run_consumer(&path, 50_000_000, &["until-torn"]);
    assert!(
        get(&summary, "torn") > 0,
        "the broken producer was never caught"
    );
    assert_eq!(code, 1);
}

#[test]
fn a_writer_killed_mid_update_reads_as_busy_within_the_bound() {
    let dir = Scratch::new("killed");
    let path = dir.table();
    let mut producer = start_producer(&path, 3, "hang", "odd");
    // A real SIGKILL while record 0's seq is odd.
    producer.0.kill().unwrap();
    let status = producer.0.wait().unwrap();
    assert!(!status.success());

    let table = Table::open(&path).unwrap();
    assert_eq!(table.max_attempts(), DEFAULT_MAX_ATTEMPTS);
    let mut rec = RecordSnapshot::new(&table);
    let start = Instant::now();
    let err = table.snapshot_record(0, &mut rec).unwrap_err();
    let elapsed = start.elapsed();
    match err {
        Error::Busy {
            record,
            seq,
            attempts,
        } => {
            assert_eq!(record, 0);
            assert_eq!(seq % 2, 1, "left odd by the dead writer");
            assert_eq!(
                attempts, DEFAULT_MAX_ATTEMPTS,
                "gave up after exactly the bound"
            );
        }
        other => panic!("expected Busy, got {other}"),
    }
    // Reported, not asserted: the machine is shared.
    eprintln!("busy after {DEFAULT_MAX_ATTEMPTS} attempts in {elapsed:?}");
    // The other records are still readable and consistent.
    for i in 1..3 {
        table.snapshot_record(i, &mut rec).unwrap();
        assert!(vstats_testprocs::is_consistent(rec.seq(), rec.words()));
    }
    // A smaller bound is honoured too.
    let mut table = table;
    table.set_max_attempts(5);
    assert!(matches!(
        table.snapshot_record(0, &mut rec),
        Err(Error::Busy { attempts: 5, .. })
    ));
}
