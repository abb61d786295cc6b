//! The corpus of broken tables: one fault-injecting producer per rule, each
//! of which the checker must report with exactly that rule failing (and a
//! correct producer, r2 and r3, with none failing); and the reading
//! fixtures of the consumer rules R26-R28, each a table plus the reading
//! every consumer must make of it.

mod common;

use common::{step_opts, Scratch};
use vstats_abi::Rule;
use vstats_invariants::{
    fault::{with_fault_table, with_r3_table, Fault},
    CheckOptions, Checker, Status, TableReport, Target,
};

const VCPUS: u32 = 4;
const STEPS: usize = 8;

/// The checker's options for the fault's table: the toolstack's vCPU
/// count for r3 tables (whose producers seed every vCPU, P10).
fn fault_opts(fault: Fault) -> CheckOptions {
    CheckOptions {
        vcpus: fault.is_r3().then(|| fault.toolstack_vcpus(VCPUS)),
        ..step_opts()
    }
}

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
        let mut c = Checker::attach(Target::Path(path.clone()), &fault_opts(fault));
        for _ in 0..STEPS {
            d.step();
            c.sample();
        }
        c.finish()
    })
    .unwrap()
}

/// The rules a correct r2 producer's table leaves unchecked, besides those
/// not observable by attaching: the r3 header's and record's rules, the
/// toolstack's count (not given), a retirement (an r3 rule).
const R2_SKIPS: &[Rule] = &[
    Rule::R19,
    Rule::R20,
    Rule::R21,
    Rule::R24,
    Rule::R25,
    Rule::P10,
    Rule::P11,
    Rule::P13,
    Rule::P15,
    Rule::D9,
    Rule::D10,
];

#[test]
fn a_correct_producer_passes_every_rule() {
    let r = check_fault(Fault::None);
    assert!(r.passed(), "{r}");
    for rule in &r.rules {
        match rule.rule {
            // Not observable by attaching; no restart happened.
            Rule::P7 | Rule::P8 | Rule::D8 => assert_eq!(rule.status, Status::Skip, "{r}"),
            // Consumer rules: the reading fixtures below.
            Rule::R26 | Rule::R27 | Rule::R28 => assert_eq!(rule.status, Status::Skip, "{r}"),
            // r3's rules, on an r2 table.
            r3 if R2_SKIPS.contains(&r3) => assert_eq!(rule.status, Status::Skip, "{r}"),
            _ => assert_eq!(rule.status, Status::Pass, "{r}"),
        }
    }
    assert_eq!(r.samples, STEPS as u64);
}

/// An r3 table (clock 1, every vCPU seeded, vCPU 0 idle in running, the
/// others changing state) checked with the toolstack's count passes every
/// rule but those of a retirement and a restart, which did not happen.
#[test]
fn a_correct_r3_producer_passes_every_rule() {
    let scratch = Scratch::new("r3-none");
    let path = scratch.path("vcpu");
    let opts = CheckOptions {
        vcpus: Some(VCPUS),
        ..step_opts()
    };
    let r = with_r3_table(&path, 7, VCPUS, |d| {
        let mut c = Checker::attach(Target::Path(path.clone()), &opts);
        for _ in 0..STEPS {
            d.step();
            c.sample();
        }
        c.finish()
    })
    .unwrap();
    assert!(r.passed(), "{r}");
    for rule in &r.rules {
        match rule.rule {
            Rule::P7 | Rule::P8 | Rule::D8 | Rule::P15 => {
                assert_eq!(rule.status, Status::Skip, "{r}")
            }
            Rule::R26 | Rule::R27 | Rule::R28 => assert_eq!(rule.status, Status::Skip, "{r}"),
            _ => assert_eq!(rule.status, Status::Pass, "{}: {r}", rule.id),
        }
    }
}

/// A correct retirement (every record made unused, then the magic
/// cleared) passes P15.
#[test]
fn a_correct_retirement_passes_p15() {
    use vstats_abi::record::INACTIVE;

    let scratch = Scratch::new("r3-retire");
    let path = scratch.path("vcpu");
    let r = with_r3_table(&path, 7, VCPUS, |d| {
        let mut c = Checker::attach(Target::Path(path.clone()), &step_opts());
        d.step();
        c.sample();
        let raw = d.raw();
        for i in 0..VCPUS {
            let at = d.layout().record_offset(i).unwrap();
            let seq = raw.load::<u32>(at).unwrap();
            raw.store::<u32>(at, seq + 1);
            for k in 0..6 {
                raw.store::<u64>(at + 8 + 8 * k, INACTIVE);
            }
            raw.store::<u32>(at, seq + 2);
        }
        raw.store::<u32>(0, 0);
        c.sample();
        c.finish()
    })
    .unwrap();
    assert!(r.passed(), "{r}");
    assert_eq!(r.rule(Rule::P15).unwrap().status, Status::Pass, "{r}");
    assert!(r.events.iter().any(|e| e.what.contains("retired")), "{r}");
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
                clock: None,
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

/// The new rules' evidence names the record, the field and the values.
#[test]
fn r3_evidence_names_record_field_and_values() {
    let r = check_fault(Fault::ExtrapolationDecreases);
    let e = &r.rule(Rule::D10).unwrap().evidence[0];
    assert_eq!(e.record, Some(0), "{r}");
    assert!(e.detail.contains("decreased by"), "{r}");

    let r = check_fault(Fault::EntryTimeFuture);
    let e = &r.rule(Rule::P11).unwrap().evidence[0];
    assert_eq!(e.record, Some(1), "{r}");
    assert_eq!(e.field.as_deref(), Some("runstate_entry_time"), "{r}");

    let r = check_fault(Fault::EntryTimeBackwards);
    assert!(
        r.rule(Rule::D10)
            .unwrap()
            .reason
            .as_deref()
            .unwrap()
            .contains("no clock"),
        "{r}"
    );

    let r = check_fault(Fault::VcpuIdShifted);
    let records: Vec<_> = r
        .rule(Rule::R24)
        .unwrap()
        .evidence
        .iter()
        .map(|e| e.record)
        .collect();
    assert_eq!(records, [Some(2)], "{r}");
    assert_eq!(r.rule(Rule::P10).unwrap().status, Status::Pass, "{r}");

    let r = check_fault(Fault::UnseededVcpu);
    let e = &r.rule(Rule::P10).unwrap().evidence;
    assert_eq!(e.len(), 1, "{r}");
    assert_eq!(e[0].record, Some(1), "{r}");

    let r = check_fault(Fault::RunstateOutOfRange);
    let e = &r.rule(Rule::R25).unwrap().evidence[0];
    assert!(e.detail.contains("runstate is 7"), "{r}");

    let r = check_fault(Fault::RetireLeavesUsed);
    assert_eq!(
        r.rule(Rule::P15).unwrap().violations,
        u64::from(VCPUS),
        "{r}"
    );

    let r = check_fault(Fault::TailSeqOdd);
    let e = &r.rule(Rule::P13).unwrap().evidence[0];
    assert!(
        e.field.as_deref().unwrap().contains("seq of a tail slot"),
        "{r}"
    );
    assert_eq!(r.rule(Rule::P4).unwrap().status, Status::Pass, "{r}");

    let r = check_fault(Fault::StdNamePastAbiSize);
    assert_eq!(r.rule(Rule::R17).unwrap().violations, 3, "{r}");

    let r = check_fault(Fault::PartialHistogram);
    let e = &r.rule(Rule::P12).unwrap().evidence[0];
    assert_eq!(
        (e.record, e.field.as_deref()),
        (Some(0), Some("exit_hist")),
        "{r}"
    );

    let r = check_fault(Fault::CounterResetPublished);
    let e = &r.rule(Rule::D3).unwrap().evidence[0];
    assert_eq!(e.field.as_deref(), Some("exits"), "{r}");

    for (fault, rule) in [
        (Fault::XstatsPastStride, Rule::R19),
        (Fault::XdescStandardName, Rule::R20),
        (Fault::R3LegacyDescriptors, Rule::R21),
        (Fault::VcpuSize8, Rule::R22),
        (Fault::DomainWithoutExt, Rule::R23),
    ] {
        let r = check_fault(fault);
        assert_eq!(r.failed(), [rule], "{r}");
        assert!(fault.invalidates(), "{}", fault.name());
        assert_eq!(r.rule(Rule::P4).unwrap().status, Status::Skip, "{r}");
    }
    for f in [
        Fault::VcpuIdShifted,
        Fault::RunstateOutOfRange,
        Fault::StdNamePastAbiSize,
    ] {
        assert!(!f.invalidates(), "{}", f.name());
    }
}

/// The bucket ranges of a histogram by the spec's definition (R28),
/// computed here from the descriptor alone: linear bucket i counts `[i *
/// w, (i + 1) * w)`, log2 bucket 0 counts 0 and bucket i `[2^(i-1), 2^i)`;
/// the last bucket is open-ended.
fn spec_ranges(kind: vstats_abi::Kind, count: u32, width: u32) -> Vec<(u64, Option<u64>)> {
    (0..u64::from(count))
        .map(|i| {
            let (lo, hi) = if kind == vstats_abi::Kind::LINEAR_HIST {
                (i * u64::from(width), (i + 1) * u64::from(width))
            } else if i == 0 {
                (0, 1)
            } else {
                (1 << (i - 1), 1 << i)
            };
            (lo, (i + 1 < u64::from(count)).then_some(hi))
        })
        .collect()
}

/// The reading fixtures of the consumer rules: each table read by
/// `vstats-consumer` must give the stored expected reading. R26 compares
/// with the consumer's normative computation
/// (`vstats_consumer::runstate::Runstate::from_words` over a snapshot),
/// R27 with `RecordView::histogram`, R28 with the spec's definition
/// computed from the descriptors the consumer reads and with the
/// consumer's bucket bounds (`vstats_consumer::bucket_bound`, the `le` its
/// encoders write).
#[test]
fn reading_fixtures_read_as_expected() {
    use vstats_consumer::runstate::{Runstate, TimeBase};
    use vstats_invariants::fault::{ExpectedReading, ReadingFixture};

    let scratch = Scratch::new("fixtures");
    for &fx in ReadingFixture::ALL {
        let path = scratch.path(fx.name());
        fx.write(&path).unwrap();
        let t = vstats_consumer::Table::open(&path).unwrap();
        let mut snap = vstats_consumer::Snapshot::new(&t);
        assert_eq!(t.snapshot(&mut snap), 0, "{}", fx.name());
        match fx.expected() {
            ExpectedReading::UpToDate { now_ns, times } => {
                assert_eq!(fx.rule(), Rule::R26);
                assert_eq!(t.nr_records() as usize, times.len());
                let base = TimeBase::from_clock(t.info().clock);
                assert_eq!(base, TimeBase::HostMonotonic);
                for (i, want) in times.iter().enumerate() {
                    let w = snap.record(i as u32).unwrap().words();
                    let r = Runstate::from_words(
                        [w[0], w[1], w[2], w[3]],
                        w[4],
                        w[5],
                        base,
                        Some(now_ns),
                    );
                    assert_eq!(&r.times_ns, want, "{} vCPU {i}", fx.name());
                    assert!(r.extrapolated, "{} vCPU {i}", fx.name());
                }
            }
            ExpectedReading::HistogramAbsent {
                name,
                absent_in,
                present,
            } => {
                assert_eq!(fx.rule(), Rule::R27);
                let c = t.counter(name).unwrap();
                let rec = snap.record(absent_in).unwrap();
                assert!(rec.is_consistent());
                assert_eq!(rec.histogram(c), None, "{}", fx.name());
                for (i, buckets) in present {
                    let got = snap.record(i).unwrap().histogram(c).map(<[u64]>::to_vec);
                    assert_eq!(got, Some(buckets), "{} record {i}", fx.name());
                }
            }
            ExpectedReading::BucketRanges(hists) => {
                assert_eq!(fx.rule(), Rule::R28);
                for (name, ranges) in hists {
                    let c = t.counter(name).unwrap();
                    assert!(c.is_histogram());
                    assert_eq!(c.count() as usize, ranges.len(), "{name}");
                    assert_eq!(
                        spec_ranges(c.kind(), c.count(), c.bucket_size()),
                        ranges,
                        "{name}"
                    );
                    assert_eq!(ranges.last().unwrap().1, None, "{name}: open-ended");
                    // The consumer's bounds (its encoders' `le`) are the
                    // ranges' upper ends, infinite for the last bucket.
                    let n = ranges.len();
                    for (i, &(_, hi)) in ranges.iter().enumerate() {
                        let want = hi.map_or(f64::INFINITY, |h| h as f64);
                        assert_eq!(
                            vstats_consumer::bucket_bound(c.kind(), c.bucket_size(), i, n),
                            Some(want),
                            "{name} bucket {i}"
                        );
                    }
                    // Every bucket is active: the histogram reads whole.
                    assert!(snap.record(0).unwrap().histogram(c).is_some(), "{name}");
                }
            }
        }
    }
}

/// D10's other half: up-to-date times that grow faster than the clock (a
/// producer that adds 10 s of running time in an update, in a few
/// microseconds of the clock) fail D10, and only D10.
#[test]
fn d10_catches_times_that_outrun_the_clock() {
    let scratch = Scratch::new("d10-fast");
    let path = scratch.path("vcpu");
    let r = with_r3_table(&path, 7, VCPUS, |d| {
        let mut c = Checker::attach(Target::Path(path.clone()), &step_opts());
        d.step();
        c.sample();
        // Record 2, written by hand with the seq protocol (the driver
        // writes it no more).
        let raw = d.raw();
        let at = d.layout().record_offset(2).unwrap();
        let seq = raw.load::<u32>(at).unwrap();
        let running = raw.load::<u64>(at + 8).unwrap();
        raw.store::<u32>(at, seq + 1);
        raw.store::<u64>(at + 8, running + 10_000_000_000);
        raw.store::<u32>(at, seq + 2);
        c.sample();
        c.finish()
    })
    .unwrap();
    assert_eq!(r.failed(), [Rule::D10], "{r}");
    let e = &r.rule(Rule::D10).unwrap().evidence[0];
    assert_eq!(e.record, Some(2), "{r}");
    assert!(e.detail.contains("grew by"), "{r}");
}
