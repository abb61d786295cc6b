//! The corpus of broken tables: one fault-injecting producer per rule, each
//! of which the checker must report with exactly that rule failing (and a
//! correct producer with none failing).

mod common;

use common::{step_opts, Scratch};
use vstats_abi::Rule;
use vstats_invariants::{
    fault::{with_fault_table, Fault},
    Checker, Status, TableReport, Target,
};

const VCPUS: u32 = 4;
const STEPS: usize = 8;

/// Publishes the fault's table, attaches the checker before the first
/// update, then alternates one update round and one sample.
fn check_fault(fault: Fault) -> TableReport {
    let scratch = Scratch::new(fault.name());
    let path = scratch.path("vcpu");
    if fault == Fault::RestartSameGeneration {
        // Two producers, one after the other, under one name and with one
        // generation; the checker follows the file across.
        let mut checker = with_fault_table(&path, Fault::None, 7, VCPUS, |d| {
            d.step();
            let mut c = Checker::attach(Target::Path(path.clone()), &step_opts());
            for _ in 0..3 {
                d.step();
                c.sample();
            }
            c
        })
        .unwrap();
        with_fault_table(&path, Fault::None, 7, VCPUS, |d| {
            for _ in 0..3 {
                d.step();
                checker.sample();
            }
        })
        .unwrap();
        return checker.finish();
    }
    with_fault_table(&path, fault, 7, VCPUS, |d| {
        let mut c = Checker::attach(Target::Path(path.clone()), &step_opts());
        for _ in 0..STEPS {
            d.step();
            c.sample();
        }
        c.finish()
    })
    .unwrap()
}

#[test]
fn a_correct_producer_passes_every_rule() {
    let r = check_fault(Fault::None);
    assert!(r.passed(), "{r}");
    for rule in &r.rules {
        match rule.rule {
            // Not observable by attaching; no restart happened.
            Rule::P7 | Rule::P8 | Rule::D8 => assert_eq!(rule.status, Status::Skip, "{r}"),
            _ => assert_eq!(rule.status, Status::Pass, "{r}"),
        }
    }
    assert_eq!(r.samples, STEPS as u64);
}

#[test]
fn every_fault_fails_exactly_its_rule() {
    let mut covered = Vec::new();
    for &fault in Fault::ALL {
        let r = check_fault(fault);
        let rule = fault.rule().unwrap();
        assert_eq!(
            r.failed(),
            vec![rule],
            "fault {} ({}) must fail exactly {rule}:\n{r}",
            fault.name(),
            fault.describe()
        );
        let result = r.rule(rule).unwrap();
        assert!(!result.evidence.is_empty(), "{r}");
        assert!(r.error.is_none(), "{r}");
        covered.push(rule);
    }
    // One fault per rule that can be observed by attaching.
    for check in vstats_invariants::plan::PLAN {
        let observable = check.when != vstats_invariants::plan::When::NotObservable;
        assert_eq!(
            covered.contains(&check.rule),
            observable,
            "rule {} has no fault in the corpus",
            check.rule
        );
    }
}

#[test]
fn evidence_names_record_field_and_values() {
    let r = check_fault(Fault::CumulativeDecrements);
    let e = &r.rule(Rule::D3).unwrap().evidence[0];
    assert_eq!(e.record, Some(0));
    assert_eq!(e.field.as_deref(), Some("runstate_running_time"));
    // Step 2 left 2 * 1000; step 3 added 1000 and took 1500 away.
    assert!(e.detail.contains("from 2000 to 1500"), "{}", e.detail);

    let r = check_fault(Fault::DescriptorChanged);
    let e = &r.rule(Rule::D6).unwrap().evidence[0];
    assert_eq!(
        e.field.as_deref(),
        Some("descriptor 1 (runstate_runnable_time).kind/unit/base/exponent")
    );

    let r = check_fault(Fault::WritesPastRecord);
    let e = &r.rule(Rule::D7).unwrap().evidence[0];
    assert_eq!(e.record, Some(0));
    assert!(e.field.as_deref().unwrap().contains("padding"), "{e:?}");

    let r = check_fault(Fault::V3RecordAddress);
    let p9 = r.rule(Rule::P9).unwrap();
    let records: Vec<_> = p9.evidence.iter().map(|e| e.record).collect();
    assert_eq!(records, [Some(1), Some(2), Some(3)], "{r}");
    assert!(p9.evidence[0].detail.contains("RFC v3"), "{r}");

    let r = check_fault(Fault::SeqStuckOdd);
    let e = &r.rule(Rule::D2).unwrap().evidence[0];
    assert_eq!(e.record, Some(1));
    assert!(
        e.detail.contains("busy after 1024 attempts"),
        "{}",
        e.detail
    );

    let r = check_fault(Fault::BadMagic);
    let e = &r.rule(Rule::R2).unwrap().evidence[0];
    assert!(e.detail.contains("0xaabbcce0"), "{}", e.detail);
    assert_eq!(r.rule(Rule::R1).unwrap().status, Status::Pass);
    assert_eq!(r.rule(Rule::R3).unwrap().status, Status::Skip);
}

#[test]
fn fault_names_round_trip() {
    for &f in Fault::ALL {
        assert_eq!(Fault::from_name(f.name()), Some(f));
    }
    assert_eq!(Fault::from_name("none"), Some(Fault::None));
    assert_eq!(Fault::from_name("nonsense"), None);
}

/// A producer that splits its table a second time (after dropping the
/// first writers) continues every record's seq: 2, then 4. The producer
/// once restarted each writer at seq 0, so the second update re-used seq 2
/// with new counters, a reader straddling it accepted a torn record, and
/// this test saw D1 fail ("seq 2 read twice, 0x64 then 0xc8"). The
/// `seq-backwards` fault of the corpus shows D1 still fails when seq goes back.
#[test]
fn a_producer_that_splits_twice_keeps_seq_growing() {
    use vstats_abi::{
        layout::{Layout, LayoutParams},
        record::VCPU_STD_DESCRIPTORS,
        VCPU_STATS_MAGIC,
    };
    use vstats_producer::{shm::ShmTable, TableSpec};

    let scratch = Scratch::new("split-twice");
    let path = scratch.path("vcpu");
    let spec = TableSpec {
        magic: VCPU_STATS_MAGIC,
        layout: Layout::compute(&LayoutParams::vcpu_r2(2)).unwrap(),
        descriptors: VCPU_STD_DESCRIPTORS,
        generation: 1,
    };
    let mut shm = ShmTable::create(&path, &spec).unwrap();
    let update = |shm: &mut ShmTable, v: u64| {
        let (_, writers) = shm.split();
        writers
            .map(|mut w| {
                w.update(|u| {
                    u.set(0, v);
                });
                w.seq()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(update(&mut shm, 100), [2, 2]);
    let mut c = Checker::attach(Target::Path(path.clone()), &step_opts());
    c.sample();
    assert_eq!(update(&mut shm, 200), [4, 4]);
    c.sample();
    let r = c.finish();
    assert!(r.passed(), "{r}");
}

/// A producer that re-initialises its table in place (magic cleared, new
/// generation, magic stored again) is re-attached through a raw view; one
/// that keeps its generation fails D8.
#[test]
fn a_table_re_initialised_in_place_is_re_attached() {
    use vstats_consumer::mem::{MemView, MemViewMut};

    for (new_generation, failed) in [(8u64, vec![]), (7, vec![Rule::D8])] {
        let scratch = Scratch::new("in-place");
        let path = scratch.path("vcpu");
        let r = with_fault_table(&path, Fault::None, 7, VCPUS, |d| {
            d.step();
            let (raw, _) = MemView::map_file(&path).unwrap();
            let target = Target::Memory {
                label: "in place".into(),
                raw,
            };
            let mut c = Checker::attach(target, &step_opts());
            c.sample();
            let w = MemViewMut::map_file(&path).unwrap();
            w.store::<u32>(0, 0);
            c.sample();
            w.store_bytes(48, &new_generation.to_ne_bytes());
            w.store::<u32>(0, vstats_abi::VCPU_STATS_MAGIC);
            c.sample();
            d.step();
            c.sample();
            c.finish()
        })
        .unwrap();
        assert_eq!(r.failed(), failed, "{r}");
        assert_eq!(r.attachments.len(), 2, "{r}");
        assert!(r.events[0].what.contains("magic cleared"), "{r}");
    }
}

/// An opened consumer table without a raw view: what needs the whole
/// mapping is skipped with the reason, the rest is checked.
#[test]
fn a_consumer_table_alone_is_checked_without_the_raw_rules() {
    let scratch = Scratch::new("table-only");
    let path = scratch.path("vcpu");
    let r = with_fault_table(&path, Fault::None, 7, VCPUS, |d| {
        let table = vstats_consumer::Table::open(&path).unwrap();
        let target = Target::Table {
            label: "consumer table".into(),
            table: Box::new(table),
        };
        let mut c = Checker::attach(target, &step_opts());
        for _ in 0..3 {
            d.step();
            c.sample();
        }
        c.finish()
    })
    .unwrap();
    assert!(r.passed(), "{r}");
    for id in [Rule::P4, Rule::D7, Rule::P9] {
        let rule = r.rule(id).unwrap();
        assert_eq!(rule.status, Status::Skip, "{r}");
        assert!(
            rule.reason.as_deref().unwrap().contains("no raw view"),
            "{r}"
        );
    }
    for id in [Rule::R13, Rule::P1, Rule::R17, Rule::D1, Rule::D3, Rule::D6] {
        assert_eq!(r.rule(id).unwrap().status, Status::Pass, "{id}: {r}");
    }
}
