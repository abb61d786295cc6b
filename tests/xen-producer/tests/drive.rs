//! The C producer driven as Xen's scheduler drives it (`Sched`: Xen's
//! `vcpu_runstate_change()` on a model of each vCPU's runstate, then the
//! record update), checked by the invariant checker (`vstats-invariants`)
//! after every step, with the fake `NOW()` given to it as the table's
//! clock; and read by the consumer while the C writer is held at each of
//! its barriers, on this thread and from another one.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc::{self, RecvTimeoutError},
        Arc,
    },
    thread,
    time::Duration,
};

use vstats_abi::{
    record::{DOMAIN_STATS_SIZE, VCPU_STATS_SIZE},
    Rule, DOMAIN_STATS_MAGIC, VCPU_STATS_MAGIC,
};
use vstats_consumer::{Error as ConsumerError, RecordSnapshot, RecordStatus, Table};
use vstats_invariants::{report::Status, CheckOptions, Checker, Report, TableReport, Target};
use vstats_xen_producer_tests::{with_wmb_hook, CTable, Rng, Sched, VcpuRunstateInfo};

/// Rules every drive of a vCPU table must PASS (checked, never violated),
/// not merely not fail.
const VCPU_RULES: &[Rule] = &[
    Rule::R1,
    Rule::R2,
    Rule::R3,
    Rule::R4,
    Rule::R5,
    Rule::R6,
    Rule::R7,
    Rule::R8,
    Rule::R9,
    Rule::R16,
    Rule::R19,
    Rule::R20,
    Rule::R21,
    Rule::R22,
    Rule::R24,
    Rule::R25,
    Rule::P1,
    Rule::P4,
    Rule::P9,
    Rule::P10,
    Rule::P11,
    Rule::P13,
    Rule::P15,
    Rule::D1,
    Rule::D2,
    Rule::D3,
    Rule::D5,
    Rule::D6,
    Rule::D7,
    Rule::D9,
    Rule::D10,
];

fn target(label: &str, table: &CTable) -> Target {
    Target::Memory {
        label: label.into(),
        raw: table.view(),
        clock: None,
    }
}

#[track_caller]
fn assert_passes(report: TableReport, must_pass: &[Rule]) -> usize {
    let passed: Vec<Rule> = report
        .rules
        .iter()
        .filter(|r| r.status == Status::Pass)
        .map(|r| r.rule)
        .collect();
    let missing: Vec<&Rule> = must_pass.iter().filter(|r| !passed.contains(r)).collect();
    let ok = report.passed() && missing.is_empty();
    let n = passed.len();
    assert!(
        ok,
        "rules not passed: {missing:?}\n{}",
        Report::new(vec![report])
    );
    n
}

/// `changes` runstate changes of `nr` vCPUs, the checker sampling after
/// every step with `NOW()` as "now", then retirement.
fn drive(nr: u32, seed: u64, changes: u64) -> (Sched, usize) {
    let mut s = Sched::new(nr, seed, 0x5eed_0000 + seed);
    s.table.publish(VCPU_STATS_MAGIC);
    let opts = CheckOptions {
        vcpus: Some(nr),
        ..CheckOptions::default()
    };
    let mut checker = Checker::attach(target("C vCPU table", &s.table), &opts);
    checker.sample_at(s.now);
    let mut steps = 0;
    while s.changes < changes {
        s.step();
        checker.sample_at(s.now);
        steps += 1;
    }
    s.retire();
    checker.sample_at(s.now);
    let report = checker.finish();
    if std::env::var_os("SHOW_REPORT").is_some() {
        eprintln!("{}", Report::new(vec![report.clone()]));
    }
    assert_eq!(report.samples, steps + 2, "every step was sampled");
    let passed = assert_passes(report, VCPU_RULES);
    (s, passed)
}

#[test]
fn four_vcpus_forty_thousand_changes_pass_every_rule() {
    let (s, passed) = drive(4, 4, 40_000);
    assert_eq!(s.changes, 40_000);
    // Every state was visited by the model (the drive is not degenerate).
    for v in &s.vcpus {
        assert!(
            v.runstate.time.iter().filter(|&&t| t > 0).count() >= 3,
            "{v:?}"
        );
    }
    eprintln!(
        "4 vCPUs: {} changes, {} record writes, {passed} rules passed",
        s.changes, s.writes
    );
}

#[test]
fn seventy_vcpus_over_two_frames_pass_every_rule() {
    let (s, passed) = drive(70, 70, 20_000);
    // Every vCPU changed state, in both frames.
    assert!(
        s.vcpus.iter().all(|v| v.seq > 2),
        "some vCPU was never written"
    );
    eprintln!(
        "70 vCPUs: {} changes, {} record writes, {passed} rules passed",
        s.changes, s.writes
    );
}

#[test]
fn the_domain_table_passes_every_rule() {
    let t = CTable::format(1, DOMAIN_STATS_SIZE, 99);
    let mut seq = 0;
    let mut rng = Rng::new(11);
    t.write_domain(&mut seq, 1, 8, 0);
    t.publish(DOMAIN_STATS_MAGIC);
    let mut checker = Checker::attach(target("C domain table", &t), &CheckOptions::default());
    let mut uptime = 0;
    for _ in 0..5_000 {
        uptime += rng.below(1_000_000);
        t.write_domain(&mut seq, 1 + rng.below(8), 8, uptime);
        checker.sample();
    }
    t.retire_record(0, &mut seq);
    t.unpublish();
    checker.sample();
    let rules = [
        Rule::R1,
        Rule::R2,
        Rule::R7,
        Rule::R8,
        Rule::R9,
        Rule::R18,
        Rule::R23,
        Rule::P1,
        Rule::P4,
        Rule::P13,
        Rule::P15,
        Rule::D1,
        Rule::D3,
        Rule::D5,
        Rule::D6,
        Rule::D7,
    ];
    assert_passes(checker.finish(), &rules);
}

/// What the consumer read of one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Busy { seq: u32 },
    Consistent { seq: u32, running: Option<u64> },
}

fn read(t: &Table, i: u32) -> Seen {
    let mut out = RecordSnapshot::new(t);
    let r = t.snapshot_record(i, &mut out);
    let view = out.view();
    match (r, view.status()) {
        (Err(ConsumerError::Busy { seq, .. }), RecordStatus::Busy { .. }) => Seen::Busy { seq },
        (Ok(()), RecordStatus::Consistent) => Seen::Consistent {
            seq: view.seq(),
            running: view.running(),
        },
        (r, s) => panic!("record {i}: {r:?} with status {s:?}"),
    }
}

fn consumer(table: &CTable) -> Table {
    let mut t = Table::from_view(table.view()).expect("a published table opens");
    // A held record is busy for ever: give up quickly.
    t.set_max_attempts(8);
    t
}

#[test]
fn a_record_held_at_either_barrier_reads_busy() {
    let mut s = Sched::new(3, 3, 3);
    s.table.publish(VCPU_STATS_MAGIC);
    let t = consumer(&s.table);
    for round in 0..50u64 {
        let i = (round % 3) as u32;
        let before = s.vcpus[i as usize];
        let mut rs: VcpuRunstateInfo = before.runstate;
        rs.time[0] += 1_000 * (round + 1);
        let mut seq = before.seq;
        let mut seen = Vec::new();
        with_wmb_hook(
            || seen.push([read(&t, 0), read(&t, 1), read(&t, 2)]),
            || s.table.write_vcpu(i, &mut seq, &rs),
        );
        s.vcpus[i as usize].runstate = rs;
        s.vcpus[i as usize].seq = seq;
        // Two barriers: after W1 (seq odd, counters old) and before W4
        // (counters new, seq still odd). At both the record reads busy
        // with the odd seq, and the other records read consistent.
        assert_eq!(seen.len(), 2, "round {round}: barriers {seen:?}");
        for at in &seen {
            for (k, r) in at.iter().enumerate() {
                if k as u32 == i {
                    assert_eq!(
                        *r,
                        Seen::Busy {
                            seq: before.seq + 1
                        },
                        "round {round}"
                    );
                } else {
                    assert!(matches!(r, Seen::Consistent { .. }), "round {round}: {r:?}");
                }
            }
        }
        assert_eq!(
            read(&t, i),
            Seen::Consistent {
                seq: before.seq + 2,
                running: Some(rs.time[0])
            }
        );
    }
}

#[test]
fn a_reader_thread_held_against_the_writer_at_every_barrier() {
    // The writer (this thread) hands control to a reader thread at each
    // barrier and waits for its read; the reader reads with the consumer
    // and answers. Generous timeouts: they only turn a hang into a
    // failure.
    const ROUNDS: u64 = 200;
    let mut s = Sched::new(2, 8, 8);
    s.table.publish(VCPU_STATS_MAGIC);
    let t = consumer(&s.table);
    let (to_reader, reader_rx) = mpsc::channel::<Option<u32>>();
    let (to_writer, writer_rx) = mpsc::channel::<Seen>();
    let reader = thread::spawn(move || {
        while let Ok(Some(i)) = reader_rx.recv() {
            if to_writer.send(read(&t, i)).is_err() {
                break;
            }
        }
    });
    let timeout = Duration::from_secs(120);
    // (round, the odd seq the held record must show, what the reader saw)
    let mut log: Vec<(u64, u32, Result<Seen, RecvTimeoutError>)> = Vec::new();
    for round in 0..ROUNDS {
        let i = (round % 2) as u32;
        let v = s.vcpus[i as usize];
        let mut rs = v.runstate;
        rs.time[0] += 7 + round;
        let mut seq = v.seq;
        with_wmb_hook(
            || {
                // Never panics (it runs inside the C call): the outcome
                // is logged and checked below.
                let r = match to_reader.send(Some(i)) {
                    Ok(()) => writer_rx.recv_timeout(timeout),
                    Err(_) => Err(RecvTimeoutError::Disconnected),
                };
                log.push((round, v.seq + 1, r));
            },
            || s.table.write_vcpu(i, &mut seq, &rs),
        );
        s.vcpus[i as usize].seq = seq;
        s.vcpus[i as usize].runstate = rs;
        to_reader.send(Some(i)).expect("the reader is alive");
        let after = writer_rx.recv_timeout(timeout).expect("the reader answers");
        assert_eq!(
            after,
            Seen::Consistent {
                seq: v.seq + 2,
                running: Some(rs.time[0])
            }
        );
    }
    to_reader.send(None).expect("the reader is alive");
    reader.join().expect("the reader thread");
    assert_eq!(log.len() as u64, 2 * ROUNDS);
    for (round, odd, r) in log {
        match r {
            Ok(seen) => assert_eq!(seen, Seen::Busy { seq: odd }, "round {round}"),
            Err(e) => panic!("round {round}: no answer from the reader: {e}"),
        }
    }
}

#[test]
fn publication_and_retirement_order() {
    // Publication: at the barrier before the magic store, the table is
    // complete but not published, and a consumer refuses it.
    let s = Sched::new(2, 5, 5);
    let mut at_barrier = Vec::new();
    with_wmb_hook(
        || at_barrier.push(Table::from_view(s.table.view()).map(|_| ())),
        || s.table.publish(VCPU_STATS_MAGIC),
    );
    assert_eq!(at_barrier.len(), 1);
    assert!(
        at_barrier[0].is_err(),
        "opened before the magic: {at_barrier:?}"
    );
    let t = consumer(&s.table);
    assert!(matches!(read(&t, 1), Seen::Consistent { .. }));

    // Retirement: at the barrier before the magic is cleared, every
    // record already reads unused.
    let mut s = s;
    for (i, v) in s.vcpus.iter_mut().enumerate() {
        s.table.retire_record(i as u32, &mut v.seq);
    }
    let mut unused = Vec::new();
    with_wmb_hook(
        || {
            let mut out = RecordSnapshot::new(&t);
            for i in 0..2 {
                let ok = t.snapshot_record(i, &mut out).is_ok();
                unused.push((ok, out.view().is_unused(), s.table.load_u32(0)));
            }
        },
        || s.table.unpublish(),
    );
    assert_eq!(
        unused,
        vec![
            (true, true, VCPU_STATS_MAGIC),
            (true, true, VCPU_STATS_MAGIC)
        ]
    );
    assert_eq!(s.table.load_u32(0), 0);
}

#[test]
fn a_concurrent_checker_sees_no_violation() {
    // A free-running checker thread samples while this thread drives the
    // producer: any interleaving the machine produces. The checker reads
    // the clock itself (none for clock 2), so P11 and D10 are the
    // deterministic drives' business; everything else is checked here.
    let mut s = Sched::new(4, 12, 12);
    s.table.publish(VCPU_STATS_MAGIC);
    let opts = CheckOptions {
        vcpus: Some(4),
        ..CheckOptions::default()
    };
    let mut checker = Checker::attach(target("C vCPU table, concurrent", &s.table), &opts);
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let samples = Arc::new(AtomicU64::new(0));
    let taken = Arc::clone(&samples);
    let sampler = thread::spawn(move || {
        // Until told to stop, then one last sample.
        while let Err(mpsc::TryRecvError::Empty) = stop_rx.try_recv() {
            checker.sample();
            taken.fetch_add(1, Ordering::Relaxed);
        }
        checker.sample();
        checker.finish()
    });
    // At least 200 000 changes, and on until the sampler has taken 100
    // samples, however the two threads are scheduled.
    while s.changes < 200_000 || samples.load(Ordering::Relaxed) < 100 {
        s.step();
    }
    s.retire();
    stop_tx.send(()).expect("the sampler is alive");
    let report = sampler.join().expect("the sampler thread");
    let n = samples.load(Ordering::Relaxed);
    let rules = [
        Rule::D1,
        Rule::D2,
        Rule::D3,
        Rule::D5,
        Rule::D6,
        Rule::D7,
        Rule::D9,
        Rule::R16,
        Rule::R25,
    ];
    assert_passes(report, &rules);
    eprintln!("concurrent: {} changes, {n} samples", s.changes);
}

#[test]
fn the_producer_was_built_from_the_series() {
    // What was compiled: both files from the series in xen/patches.
    let sources = vstats_xen_producer_tests::SOURCES;
    assert!(sources.contains("xen/common/stats_table.c "), "{sources}");
    assert!(
        sources.contains("xen/include/xen/stats_table.h "),
        "{sources}"
    );
    // api.md: the C may include only these headers.
    let allowed = [
        "<xen/stats_table.h>",
        "<xen/string.h>",
        "<xen/types.h>",
        "<asm/atomic.h>",
        "<asm/system.h>",
        "<xen/lib.h>",
        "<public/vcpu.h>",
        "<xen/mm.h>",
        "<asm/page.h>",
    ];
    for line in vstats_xen_producer_tests::PRODUCER_C.lines() {
        if let Some(h) = line.strip_prefix("#include ") {
            assert!(allowed.contains(&h.trim()), "stats_table.c includes {h}");
        }
    }
    assert_eq!(
        vstats_xen_producer_tests::nr_frames(62, VCPU_STATS_SIZE),
        1,
        "62 records of 64 bytes after a 128-byte head fill one page"
    );
}
