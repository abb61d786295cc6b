//! The compatibility matrix: every producer revision against every consumer
//! revision (r1 = RFC v3, r2 = this revision, r3 = two counters appended),
//! plus the real `vstats-producer` and `vstats-consumer`; the checker on
//! every producer's table; and a deliberately incompatible magic refused by
//! every consumer with a clear error.

mod common;

use std::path::Path;

use common::{step_opts, Scratch};
use vstats_abi::{
    layout::{Layout, LayoutParams},
    record::VCPU_STD_DESCRIPTORS,
    Rule, VCPU_STATS_MAGIC,
};
use vstats_invariants::{
    compat::{incompatible, r1, r2, r3, value_for, CompatError, Reading},
    report::EXIT_VIOLATION,
    Checker, Report, Status, Target,
};
use vstats_producer::{shm::ShmTable, TableSpec};

const VCPUS: u32 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rev {
    R1,
    R2,
    R3,
    /// The workspace's own producer or consumer (revision r2).
    Vstats,
}

const REVS: [Rev; 4] = [Rev::R1, Rev::R2, Rev::R3, Rev::Vstats];

/// The fields a revision's record has.
fn fields(rev: Rev) -> Vec<&'static str> {
    match rev {
        Rev::R1 => r1::FIELDS.iter().map(|f| f.0).collect(),
        Rev::R2 => r2::FIELDS.iter().map(|f| f.0).collect(),
        Rev::R3 => r3::FIELDS.iter().map(|f| f.0).collect(),
        Rev::Vstats => VCPU_STD_DESCRIPTORS
            .iter()
            .filter_map(|d| d.name_str())
            .collect(),
    }
}

/// Publishes a table of `rev` at `path` with every vCPU's fields set to
/// `value_for`.
fn publish(rev: Rev, path: &Path) {
    match rev {
        Rev::R1 => {
            let mut p = r1::Producer::create(path, VCPUS).unwrap();
            (0..VCPUS).for_each(|v| p.update(v, |f| value_for(v, f)));
        }
        Rev::R2 => {
            let mut p = r2::Producer::create(path, VCPUS, 2).unwrap();
            (0..VCPUS).for_each(|v| p.update(v, |f| value_for(v, f)));
        }
        Rev::R3 => {
            let mut p = r3::Producer::create(path, VCPUS, 3).unwrap();
            (0..VCPUS).for_each(|v| p.update(v, |f| value_for(v, f)));
        }
        Rev::Vstats => {
            let layout = Layout::compute(&LayoutParams::vcpu_r2(VCPUS)).unwrap();
            let spec = TableSpec {
                magic: VCPU_STATS_MAGIC,
                layout,
                descriptors: VCPU_STD_DESCRIPTORS,
                generation: 4,
            };
            let mut shm = ShmTable::create(path, &spec).unwrap();
            let (_, writers) = shm.split();
            for mut w in writers {
                let v = w.index();
                w.update(|u| {
                    for (k, name) in fields(Rev::Vstats).iter().enumerate() {
                        u.set(k, value_for(v, name));
                    }
                });
            }
            // Left as written (not retired, P15), for the consumers.
            shm.forsake();
        }
    }
}

/// Reads vCPU `v` with a consumer of `rev`: `(field, value)` for every
/// field that consumer knows.
fn consume(rev: Rev, path: &Path, v: u32) -> Reading {
    match rev {
        Rev::R1 => r1::Consumer::open(path, VCPUS).unwrap().read(v).unwrap(),
        Rev::R2 => r2::Consumer::open(path, VCPUS).unwrap().read(v).unwrap(),
        Rev::R3 => r3::Consumer::open(path, VCPUS).unwrap().read(v).unwrap(),
        Rev::Vstats => {
            let t = vstats_consumer::Table::open(path).unwrap();
            let mut snap = vstats_consumer::RecordSnapshot::new(&t);
            t.snapshot_record(v, &mut snap).unwrap();
            // The fields this consumer knows by position (its revision's
            // standard fields), through its own accessors.
            let fields = vec![
                ("runstate_running_time", snap.running()),
                ("runstate_runnable_time", snap.runnable()),
                ("runstate_blocked_time", snap.blocked()),
                ("runstate_offline_time", snap.offline()),
            ];
            Reading {
                seq: snap.seq(),
                fields,
            }
        }
    }
}

#[test]
fn every_producer_and_consumer_interoperate() {
    let scratch = Scratch::new("matrix");
    let mut results = Vec::new();
    for p in REVS {
        let path = scratch.path(&format!("{p:?}"));
        publish(p, &path);
        let produced = fields(p);
        for c in REVS {
            for v in 0..VCPUS {
                let r = consume(c, &path, v);
                assert_eq!(r.seq, 2, "{p:?} -> {c:?}: one update");
                for name in fields(c) {
                    // Fields both know are read; fields only the consumer
                    // knows are absent; fields only the producer knows are
                    // not even asked for.
                    let want = produced.contains(&name).then(|| value_for(v, name));
                    assert_eq!(
                        r.get(name),
                        Some(want),
                        "producer {p:?}, consumer {c:?}, vCPU {v}, field {name}"
                    );
                }
            }
            let common = fields(c).iter().filter(|f| produced.contains(f)).count();
            results.push(format!(
                "{p:?} -> {c:?}: {common} common fields read, {} absent",
                fields(c).len() - common
            ));
        }
    }
    assert_eq!(results.len(), 16);
    println!("{}", results.join("\n"));
}

#[test]
fn the_generic_consumer_shows_counters_it_was_not_built_with() {
    let scratch = Scratch::new("generic");
    let path = scratch.path("r3");
    publish(Rev::R3, &path);
    let t = vstats_consumer::Table::open(&path).unwrap();
    let mut snap = vstats_consumer::Snapshot::new(&t);
    assert_eq!(t.snapshot(&mut snap), 0);
    for (name, kind) in [
        ("preemptions", vstats_abi::Kind::CUMULATIVE),
        ("max_runnable_latency", vstats_abi::Kind::PEAK),
    ] {
        let c = t.counter(name).expect(name);
        assert_eq!(c.kind(), kind);
        assert_eq!(snap.record(2).unwrap().get(c), Some(value_for(2, name)));
    }
    // A v3 table has no descriptors: only the standard field that fits.
    let path = scratch.path("r1");
    publish(Rev::R1, &path);
    let t = vstats_consumer::Table::open(&path).unwrap();
    let names: Vec<_> = t.counters().iter().map(|c| c.name().to_owned()).collect();
    assert_eq!(names, ["runstate_running_time"]);
    assert_eq!(t.info().ext, None);
}

#[test]
fn every_producers_table_passes_the_checker() {
    let scratch = Scratch::new("checked");
    for p in REVS {
        let path = scratch.path(&format!("{p:?}"));
        publish(p, &path);
        let mut c = Checker::attach(Target::Path(path.clone()), &step_opts());
        for _ in 0..3 {
            c.sample();
        }
        let r = c.finish();
        assert!(r.passed(), "{p:?}:\n{r}");
        for id in [
            Rule::R1,
            Rule::R13,
            Rule::P1,
            Rule::P4,
            Rule::D1,
            Rule::D3,
            Rule::D5,
            Rule::D6,
            Rule::D7,
            Rule::P9,
        ] {
            assert_eq!(r.rule(id).unwrap().status, Status::Pass, "{p:?} {id}:\n{r}");
        }
    }
}

#[test]
fn an_incompatible_magic_is_refused_by_every_consumer() {
    let scratch = Scratch::new("incompatible");
    let path = scratch.path("vcpu");
    incompatible::publish(&path, VCPUS, |v| 1000 * u64::from(v)).unwrap();
    let refused = |e: CompatError| match e {
        CompatError::Incompatible { found, expected } => {
            assert_eq!((found, expected), (0xaabb_cce0, 0xaabb_ccdd));
            let msg = e.to_string();
            assert!(
                msg.contains("incompatible table: magic 0xaabbcce0"),
                "{msg}"
            );
        }
        e => panic!("not refused as incompatible: {e}"),
    };
    refused(r1::Consumer::open(&path, VCPUS).unwrap_err());
    refused(r2::Consumer::open(&path, VCPUS).unwrap_err());
    refused(r3::Consumer::open(&path, VCPUS).unwrap_err());
    let e = vstats_consumer::Table::open(&path).unwrap_err();
    assert_eq!(e.rule(), Some(Rule::R2), "{e}");
    assert!(e.to_string().contains("magic 0xaabbcce0"), "{e}");
    let mut c = Checker::attach(Target::Path(path.clone()), &step_opts());
    c.sample();
    let report = Report::new(vec![c.finish()]);
    assert_eq!(report.tables[0].failed(), [Rule::R2], "{report}");
    assert_eq!(report.exit_code(), EXIT_VIOLATION);
}
