//! Faults with real processes and real shared memory: a producer killed
//! (SIGKILL) in the middle of an update, a producer restarted under the
//! same name, and a consumer that writes into a table it mapped writable.
//!
//! Bounds are in attempts and samples; the only waits are for a child
//! process to print a line, or polls of a producer that updates every
//! millisecond, bounded generously (seconds) only so that a broken test
//! fails instead of hanging.

mod common;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use common::{step_opts, Scratch};
use vstats_abi::Rule;
use vstats_consumer::{
    delta, mem::MemViewMut, Delta, Error, RecordSnapshot, RecordStatus, RecordView, Snapshot,
    Table, DEFAULT_MAX_ATTEMPTS,
};
use vstats_invariants::{
    fault::{with_fault_table, Fault},
    report::EXIT_VIOLATION,
    Checker, Status, Target,
};

/// A child process killed (SIGKILL) and reaped on drop.
struct Proc {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Proc {
    /// Starts `vstats-fault-producer` with `args` and waits for it to print
    /// `published <path>`.
    fn producer(path: &Path, args: &[&str]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vstats-fault-producer"))
            .arg("--path")
            .arg(path)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut p = Proc { child, out };
        let line = p.line();
        assert_eq!(line, format!("published {}", path.display()));
        p
    }

    /// The next line the child prints (panics at end of output).
    fn line(&mut self) -> String {
        let mut s = String::new();
        let n = self.out.read_line(&mut s).unwrap();
        assert!(n > 0, "the producer exited early");
        s.trim_end().to_owned()
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Record `i`'s running time and runnable time are consistent with one
/// step of the fault producer (running = k * (1000 + i), runnable = k *
/// 100): a torn read would mix two steps.
fn consistent_step<'a>(snap: impl Into<RecordView<'a>>) -> Option<u64> {
    let snap = snap.into();
    let i = u64::from(snap.index());
    let (run, runnable) = (snap.running()?, snap.runnable()?);
    let k = run / (1000 + i);
    assert_eq!(run, k * (1000 + i), "record {i} torn: running {run}");
    assert_eq!(
        runnable,
        k * 100,
        "record {i} torn: running {run}, runnable {runnable}"
    );
    Some(k)
}

#[test]
fn a_producer_killed_mid_update_reads_as_busy_and_the_checker_flags_it() {
    let scratch = Scratch::new("kill");
    let path = scratch.path("vcpu");
    let mut p = Proc::producer(&path, &["--hold-at", "3", "--interval-ms", "1"]);
    let line = p.line();
    assert!(line.starts_with("mid-update record 1 seq "), "{line}");
    let seq: u32 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(seq % 2, 1);
    p.kill();

    // The consumer: record 1 busy after exactly the documented number of
    // attempts, never a hang; the other records still read.
    let t = Table::open(&path).unwrap();
    let mut rec = RecordSnapshot::new(&t);
    match t.snapshot_record(1, &mut rec) {
        Err(Error::Busy {
            record: 1,
            seq: s,
            attempts,
        }) => {
            assert_eq!(s, seq);
            assert_eq!(attempts, DEFAULT_MAX_ATTEMPTS);
        }
        other => panic!("record 1 not busy: {other:?}"),
    }
    assert_eq!(
        rec.status(),
        RecordStatus::Busy {
            seq,
            attempts: DEFAULT_MAX_ATTEMPTS
        }
    );
    assert_eq!(rec.running(), None, "a busy record has no values");
    let mut snap = Snapshot::new(&t);
    assert_eq!(t.snapshot(&mut snap), 1);
    assert_eq!(snap.busy().map(|(i, _)| i).collect::<Vec<_>>(), [1]);
    for i in [0, 2, 3] {
        assert_eq!(consistent_step(snap.record(i).unwrap()), Some(2));
    }

    // The checker, as a process: D2 fails on record 1, nothing else.
    let out = Command::new(env!("CARGO_BIN_EXE_vstats-invariants"))
        .arg("--path")
        .arg(&path)
        .args([
            "--seconds",
            "0.3",
            "--interval-ms",
            "10",
            "--odd-bound-ms",
            "100",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(i32::from(EXIT_VIOLATION)));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules = json["tables"][0]["rules"].as_array().unwrap();
    let failed: Vec<_> = rules
        .iter()
        .filter(|r| r["status"] == "FAIL")
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["D2"], "{json:#}");
    let d2 = rules.iter().find(|r| r["id"] == "D2").unwrap();
    assert_eq!(d2["evidence"][0]["record"], 1);
}

#[test]
fn a_producer_killed_at_any_moment_never_yields_a_torn_record() {
    let scratch = Scratch::new("kill-any");
    let path = scratch.path("vcpu");
    for round in 0..5u64 {
        let mut p = Proc::producer(&path, &["--interval-ms", "0"]);
        std::thread::sleep(Duration::from_millis(5 + 7 * round));
        p.kill();
        let t = Table::open(&path).unwrap();
        let mut snap = Snapshot::new(&t);
        let busy = t.snapshot(&mut snap);
        for rec in snap.records() {
            match rec.status() {
                RecordStatus::Consistent => {
                    assert_eq!(rec.seq() % 2, 0);
                    consistent_step(rec);
                }
                RecordStatus::Busy { seq, attempts } => {
                    assert_eq!(seq % 2, 1, "busy only because the writer died mid-update");
                    assert_eq!(attempts, DEFAULT_MAX_ATTEMPTS);
                }
                RecordStatus::NotRead => panic!("record {} not read", rec.index()),
            }
        }
        assert!(
            busy <= 1,
            "one writer thread: at most one record mid-update"
        );
    }
}

#[test]
fn a_restarted_producer_is_followed_and_old_values_are_never_new() {
    let scratch = Scratch::new("restart");
    let path = scratch.path("vcpu");
    let mut a = Proc::producer(&path, &["--interval-ms", "1"]);
    let mut checker = Checker::attach(Target::Path(path.clone()), &step_opts());
    let old = Table::open(&path).unwrap();
    // Let the first producer's counters grow well past where a new one
    // starts.
    let mut before = RecordSnapshot::new(&old);
    let until = Instant::now() + Duration::from_secs(60); // a bound against a hang only
    loop {
        checker.sample();
        old.snapshot_record(0, &mut before).unwrap();
        if consistent_step(&before).is_some_and(|k| k >= 50) || Instant::now() > until {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(consistent_step(&before).unwrap() >= 50);
    a.kill();
    assert!(!old.file_replaced().unwrap(), "killed, not yet replaced");

    // The new producer does one update round, then waits a minute: its
    // values stay those of step 1 while the test reads them.
    let _b = Proc::producer(&path, &["--interval-ms", "60000"]);
    // The consumer notices and re-attaches.
    assert!(old.file_replaced().unwrap());
    let new = old.reopen().unwrap();
    assert_ne!(new.generation(), old.generation());
    let mut after = RecordSnapshot::new(&new);
    new.snapshot_record(0, &mut after).unwrap();
    let running = new.counter("runstate_running_time").unwrap();
    assert_eq!(
        consistent_step(&after),
        Some(1),
        "the new producer starts over"
    );
    assert!(after.running() < before.running());
    assert_eq!(
        delta(&before, &after, running),
        Delta::Reset,
        "values of the new table are not continuations of the old one"
    );
    // The checker follows the file and checks the new table from scratch.
    for _ in 0..5 {
        checker.sample();
        std::thread::sleep(Duration::from_millis(2));
    }
    let r = checker.finish();
    assert!(r.passed(), "{r}");
    assert_eq!(r.attachments.len(), 2, "{r}");
    assert_ne!(r.attachments[0].generation, r.attachments[1].generation);
    assert_eq!(r.rule(Rule::D8).unwrap().status, Status::Pass, "{r}");
    assert_eq!(r.rule(Rule::D3).unwrap().status, Status::Pass, "{r}");
    assert!(r.events.iter().any(|e| e.what.contains("replaced")), "{r}");
}

#[test]
fn a_scribbling_consumer_cannot_mislead_the_producer() {
    // In process, step by step: the producer's own seq and counts after a
    // consumer overwrote them.
    let scratch = Scratch::new("scribble");
    let path = scratch.path("vcpu");
    with_fault_table(&path, Fault::None, 1, 4, |d| {
        d.step();
        d.step();
        let hostile = MemViewMut::map_file(&path).unwrap();
        let r1 = d.layout().record_offset(1).unwrap();
        let r0 = d.layout().record_offset(0).unwrap();
        assert!(hostile.store::<u32>(r1, 0x7fff_ffff), "seq odd");
        assert!(hostile.store::<u64>(r1 + 8, 5), "running time");
        assert!(hostile.store::<u64>(r1 + 16, u64::MAX), "runnable time");
        assert!(hostile.store::<u32>(r0, 1000), "seq far ahead");
        d.step();
        let t = Table::open(&path).unwrap();
        let mut snap = Snapshot::new(&t);
        assert_eq!(t.snapshot(&mut snap), 0, "no record left busy");
        for i in [0, 1] {
            let rec = snap.record(i).unwrap();
            assert_eq!(
                Some(rec.seq()),
                d.seq(i),
                "seq from the producer's own count"
            );
            assert_eq!(rec.seq(), 6, "three updates");
            assert_eq!(rec.running(), d.running(i));
            assert_eq!(consistent_step(rec), Some(3));
        }
    })
    .unwrap();
}

#[test]
fn a_scribbling_process_cannot_mislead_a_producer_process() {
    let scratch = Scratch::new("scribble-proc");
    let path = scratch.path("vcpu");
    let _p = Proc::producer(&path, &["--interval-ms", "1"]);
    let t = Table::open(&path).unwrap();
    let r1 = t.info().record_offset(1).unwrap();
    let hostile = MemViewMut::map_file(&path).unwrap();
    for _ in 0..100 {
        hostile.store::<u32>(r1, 0x7fff_ffff);
        hostile.store::<u64>(r1 + 8, 5);
        hostile.store::<u64>(r1 + 16, 1 << 40);
    }
    // Within a few of the producer's updates every record reads
    // consistently again with the producer's own values.
    let mut rec = RecordSnapshot::new(&t);
    let until = Instant::now() + Duration::from_secs(60); // a bound against a hang only
    let k = loop {
        if t.snapshot_record(1, &mut rec).is_ok() && rec.seq() < 0x7fff_ffff {
            if let Some(k) = consistent_step(&rec) {
                break k;
            }
        }
        assert!(
            Instant::now() < until,
            "the producer never recovered: {rec:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(k > 0);
    assert_eq!(
        rec.seq(),
        2 * k as u32,
        "seq is the producer's count of updates"
    );
}

/// The new rules' faults whose breach is there from publication on, each
/// as a real producer process checked by the checker process (with the
/// toolstack's vCPU count): the checker names exactly the fault's rule.
/// (The faults that strike at a step are checked step by step in
/// `tests/corpus.rs`, where a sample before and after the strike is
/// certain.)
#[test]
fn published_faults_of_the_new_rules_are_named_by_the_checker_process() {
    let scratch = Scratch::new("new-rules");
    for fault in [
        Fault::StdNamePastAbiSize,
        Fault::XstatsPastStride,
        Fault::XdescStandardName,
        Fault::R3LegacyDescriptors,
        Fault::VcpuSize8,
        Fault::DomainWithoutExt,
        Fault::VcpuIdShifted,
        Fault::UnseededVcpu,
        Fault::TailSeqOdd,
    ] {
        let path = scratch.path(fault.name());
        let _p = Proc::producer(&path, &["--fault", fault.name(), "--vcpus", "4"]);
        let vcpus = fault.toolstack_vcpus(4).to_string();
        let out = Command::new(env!("CARGO_BIN_EXE_vstats-invariants"))
            .arg("--path")
            .arg(&path)
            .args(["--seconds", "0.05", "--vcpus", &vcpus, "--json"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(i32::from(EXIT_VIOLATION)),
            "{}",
            fault.name()
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let failed: Vec<_> = json["tables"][0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "FAIL")
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            failed,
            [fault.rule().unwrap().id()],
            "{}: {json:#}",
            fault.name()
        );
        // A validation fault: the consumer refuses the table with the rule.
        if fault.invalidates() {
            match Table::open(&path) {
                Err(Error::Invalid { error, .. }) => {
                    assert_eq!(Some(error.rule()), fault.rule(), "{}", fault.name())
                }
                other => panic!("{}: not refused: {other:?}", fault.name()),
            }
        } else {
            assert!(Table::open(&path).is_ok(), "{}", fault.name());
        }
    }
}
