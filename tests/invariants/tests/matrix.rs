//! The compatibility matrix (`docs/abi-r3-design.md` section 9.2): every
//! producer revision (r1 = RFC v3, r2, r3, r4x = r3 plus a standard field
//! appended, and the real `vstats-producer`) against every consumer
//! revision (the same five, with the real `vstats-consumer`, plus the
//! spec-only C consumer of `capi/tests/c/consumer.c`); the checker on every
//! producer's table; the domain tables; and a deliberately incompatible
//! magic refused by every consumer with a clear error.
//!
//! Per cell: every standard field both sides know equals
//! [`value_for`]; a field the consumer knows and the producer lacks is
//! absent, never 0; a producer-specific counter is never returned under a
//! standard name (its values, [`producer_value_for`], differ from every
//! standard value), and is seen only through descriptors, keyed apart. On a
//! genuine v3 page only vCPU 0 is asserted for every consumer (section
//! 9.1); what each consumer makes of the other vCPUs is pinned separately.

mod common;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
};

use common::{step_opts, Scratch};
use vstats_abi::{desc::Descriptor, Rule, TableKind};
use vstats_consumer::runstate::{Runstate, TimeBase};
use vstats_invariants::{
    compat::{
        incompatible, producer_value_for, r1, r2, r3, r4x, up_to_date_for, value_for, CompatError,
        Reading,
    },
    report::EXIT_VIOLATION,
    Checker, Report, Status, Target,
};
use vstats_producer::{
    builder::{vcpu, TableBuilder},
    shm::ShmTable,
};

const VCPUS: u32 = 4;
/// The `now` at which consumers that implement R26 extrapolate: after
/// every entry time [`value_for`] gives (at most about 4.002 ms).
const NOW: u64 = 10_000_000;
/// The producer-specific counters the real producer's table carries in
/// the matrix: `preemptions` is not a standard name in r2 or r3, and is
/// one in r4x.
const VSTATS_XCOUNTERS: &[&str] = &["halt_successful_poll", "preemptions"];
/// The standard fields of the r3 vCPU record.
const R3_FIELDS: [&str; 6] = [
    "runstate_running_time",
    "runstate_runnable_time",
    "runstate_blocked_time",
    "runstate_offline_time",
    "runstate",
    "runstate_entry_time",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Rev {
    R1,
    R2,
    R3,
    R4x,
    /// The workspace's own producer or consumer.
    Vstats,
    /// The spec-only C consumer (r2 rules; consumer only).
    C,
}

const PRODUCERS: [Rev; 5] = [Rev::R1, Rev::R2, Rev::R3, Rev::R4x, Rev::Vstats];
const CONSUMERS: [Rev; 6] = [Rev::R1, Rev::R2, Rev::R3, Rev::R4x, Rev::Vstats, Rev::C];

/// The header words at 16 and 20 of the table at `path` (marker,
/// `ext_size`): which revision the real producer wrote.
fn marker_and_ext_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    let w = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().unwrap());
    (w(16), w(20))
}

/// Whether the table at `path` has the r3 header.
fn is_r3_table(path: &Path) -> bool {
    let (marker, ext_size) = marker_and_ext_size(path);
    marker != 0 && ext_size >= 72
}

/// A published table and what its producer wrote.
struct Published {
    path: PathBuf,
    rev: Rev,
    /// The standard fields of the producer's record.
    fields: Vec<&'static str>,
    /// The producer-specific counters, by name.
    xcounters: &'static [&'static str],
    /// Whether the table names a clock (r3 header, `clock` 1).
    clock: bool,
    /// The producer, alive until the cell is done (a producer may retire
    /// its table when dropped).
    _live: Box<dyn std::any::Any>,
}

fn values(xs: &'static [&'static str]) -> impl Fn(u32, &str) -> u64 {
    move |v, name| {
        if xs.contains(&name) {
            producer_value_for(v, name)
        } else {
            value_for(v, name)
        }
    }
}

/// Publishes a vCPU table of `rev` at `path` with every vCPU's fields set
/// to [`value_for`] and its producer counters to [`producer_value_for`].
fn publish(rev: Rev, path: &Path) -> Published {
    let names = |f: &[(&'static str, u32)]| f.iter().map(|f| f.0).collect::<Vec<_>>();
    let (fields, xcounters, clock, live): (_, &'static [&'static str], _, Box<dyn std::any::Any>) =
        match rev {
            Rev::R1 => {
                let mut p = r1::Producer::create(path, VCPUS).unwrap();
                (0..VCPUS).for_each(|v| p.update(v, |f| value_for(v, f)));
                (names(r1::FIELDS), &[], false, Box::new(p))
            }
            Rev::R2 => {
                let mut p = r2::Producer::create(path, VCPUS, 2).unwrap();
                let val = values(r2::XCOUNTERS);
                (0..VCPUS).for_each(|v| p.update(v, |f| val(v, f)));
                let f = r2::FIELDS.iter().map(|f| f.0).collect();
                (f, r2::XCOUNTERS, false, Box::new(p))
            }
            Rev::R3 => {
                let p = r3::Producer::create(path, VCPUS, 3, values(r3::XCOUNTERS)).unwrap();
                (names(r3::FIELDS), r3::XCOUNTERS, true, Box::new(p))
            }
            Rev::R4x => {
                let p = r4x::Producer::create(path, VCPUS, 5, values(r4x::XCOUNTERS)).unwrap();
                (names(r4x::FIELDS), r4x::XCOUNTERS, true, Box::new(p))
            }
            Rev::Vstats => {
                let shm = publish_vstats(path);
                let r3 = is_r3_table(path);
                let fields = if r3 {
                    R3_FIELDS[..].to_vec()
                } else {
                    R3_FIELDS[..4].to_vec()
                };
                (fields, VSTATS_XCOUNTERS, r3, Box::new(shm))
            }
            Rev::C => unreachable!("the C program is a consumer only"),
        };
    Published {
        path: path.to_owned(),
        rev,
        fields,
        xcounters,
        clock,
        _live: live,
    }
}

/// The real producer's vCPU table: the standard record of whatever
/// revision `vstats-producer` writes on this branch, plus
/// [`VSTATS_XCOUNTERS`] declared through its builder (r2: appended in
/// `[abi_size, size)`; r3: in the producer-specific area).
fn publish_vstats(path: &Path) -> ShmTable {
    let mut b = TableBuilder::vcpu(VCPUS);
    let ids: Vec<_> = VSTATS_XCOUNTERS
        .iter()
        .map(|n| b.counter(Descriptor::builder(n)).unwrap())
        .collect();
    let plan = b.build().unwrap();
    let mut shm = ShmTable::create(path, &plan.spec(4)).unwrap();
    let r3 = is_r3_table(path);
    let (_, writers) = shm.split();
    for mut w in writers {
        let v = w.index();
        assert!(w.update(|u| {
            for (id, name) in [
                (vcpu::RUNNING, "runstate_running_time"),
                (vcpu::RUNNABLE, "runstate_runnable_time"),
                (vcpu::BLOCKED, "runstate_blocked_time"),
                (vcpu::OFFLINE, "runstate_offline_time"),
            ] {
                assert!(u.put(id, value_for(v, name)));
            }
            if r3 {
                // The r3 record's runstate and entry time, by offset
                // (docs/abi.md section 2.4).
                assert!(u.set_at(40, value_for(v, "runstate")));
                assert!(u.set_at(48, value_for(v, "runstate_entry_time")));
            }
            for (id, name) in ids.iter().zip(VSTATS_XCOUNTERS) {
                assert!(u.put(*id, producer_value_for(v, name)));
            }
        }));
    }
    shm
}

/// Reads of every vCPU of one table by one consumer, by vCPU.
type Reads = Vec<Result<Reading, CompatError>>;

/// Reads every vCPU of the table at `path` with a consumer of `rev`
/// (`now` for the consumers that implement R26); the toolstack's count is
/// [`VCPUS`]. `None` when the consumer cannot run here (no C compiler).
fn consume(rev: Rev, path: &Path) -> Option<Reads> {
    let all = |f: &dyn Fn(u32) -> Result<Reading, CompatError>| (0..VCPUS).map(f).collect();
    Some(match rev {
        Rev::R1 => match r1::Consumer::open(path, VCPUS) {
            Ok(c) => all(&|v| c.read(v)),
            Err(e) => vec![Err(e)],
        },
        Rev::R2 => match r2::Consumer::open(path, VCPUS) {
            Ok(c) => all(&|v| c.read(v)),
            Err(e) => vec![Err(e)],
        },
        Rev::R3 => match r3::Consumer::open(path, VCPUS) {
            Ok(c) => all(&|v| c.read_at(v, Some(NOW))),
            Err(e) => vec![Err(e)],
        },
        Rev::R4x => match r4x::Consumer::open(path, VCPUS) {
            Ok(c) => all(&|v| c.read_at(v, Some(NOW))),
            Err(e) => vec![Err(e)],
        },
        Rev::Vstats => consume_vstats(path),
        Rev::C => return consume_c(path),
    })
}

/// The real consumer: the standard fields it knows by position, through
/// its accessors, and the other counters it lists (by descriptor), keyed
/// apart.
fn consume_vstats(path: &Path) -> Reads {
    let t = match vstats_consumer::Table::open(path) {
        Ok(t) => t,
        Err(e) => return vec![Err(CompatError::Invalid(e.to_string()))],
    };
    let standard = |n: &str| R3_FIELDS.contains(&n);
    // The table's clock (0 without an r3 header).
    let (r3, clock) = (t.info().is_r3(), t.info().clock);
    (0..VCPUS)
        .map(|v| {
            let mut snap = vstats_consumer::RecordSnapshot::new(&t);
            t.snapshot_record(v, &mut snap)
                .map_err(|e| CompatError::Invalid(e.to_string()))?;
            let fields = vec![
                ("runstate_running_time", snap.running()),
                ("runstate_runnable_time", snap.runnable()),
                ("runstate_blocked_time", snap.blocked()),
                ("runstate_offline_time", snap.offline()),
            ];
            let producer = t
                .counters()
                .iter()
                .filter(|c| !standard(c.name()) && !c.is_histogram())
                .map(|c| (c.name().to_owned(), snap.get(c)))
                .collect();
            // R26 with the consumer library's computation, over the
            // record's words (times at 8..40, state at 40, entry at 48),
            // at the matrix's `now`. (Wiring it into snapshots with a `now`
            // read after the copy is the rest of step 5.)
            let w = snap.words();
            let up_to_date = (r3 && w.len() >= 6)
                .then(|| {
                    Runstate::from_words(
                        [w[0], w[1], w[2], w[3]],
                        w[4],
                        w[5],
                        TimeBase::from_clock(clock),
                        Some(NOW),
                    )
                })
                .filter(|r| r.extrapolated)
                .map(|r| r.times_ns);
            Ok(Reading {
                seq: snap.seq(),
                fields,
                producer,
                up_to_date,
            })
        })
        .collect()
}

/// The C compiler, or `None` (printing why the C cells are skipped) when
/// there is none and `VSTATS_CLIENTS_REQUIRED` is not 1.
fn c_compiler() -> Option<&'static str> {
    let ok = Command::new("cc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert_ne!(
            std::env::var("VSTATS_CLIENTS_REQUIRED").as_deref(),
            Ok("1"),
            "no C compiler (cc) for the spec-only C consumer"
        );
        eprintln!("skipped: the C consumer's cells (no `cc` found)");
        return None;
    }
    Some("cc")
}

/// The spec-only C consumer, built once per test process.
fn c_consumer() -> Option<PathBuf> {
    static BIN: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let cc = c_compiler()?;
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../capi/tests/c/consumer.c");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("matrix-c-consumer-{}", std::process::id()));
        let st = Command::new(cc)
            .args(["-std=c11", "-O2", "-Wall", "-Werror", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .unwrap();
        assert!(st.success(), "building {}", src.display());
        Some(out)
    })
    .clone()
}

/// Runs the C consumer on `path`: its `vcpu I running=V ...` lines as
/// readings (the four times; `absent` and `inactive` read as `None`), or
/// its refusal (`invalid R<n>: ...`, exit 2) as [`CompatError::Invalid`].
fn consume_c(path: &Path) -> Option<Reads> {
    let bin = c_consumer()?;
    let out = Command::new(bin).arg(path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.code() == Some(2) {
        return Some(vec![Err(CompatError::Invalid(text.trim().to_owned()))]);
    }
    assert!(
        out.status.success(),
        "C consumer on {}: {text}",
        path.display()
    );
    let mut seqs = HashMap::new();
    let mut by_vcpu = HashMap::new();
    for line in text.lines() {
        let mut f = line.split(' ');
        match f.next() {
            Some("rec") => {
                let i: u32 = f.next().unwrap().parse().unwrap();
                let _status = f.next();
                let seq = f.next().and_then(|s| s.strip_prefix("seq=")).unwrap();
                seqs.insert(i, seq.parse::<u32>().unwrap());
            }
            Some("vcpu") => {
                let i: u32 = f.next().unwrap().parse().unwrap();
                let fields = f
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap();
                        let name = match k {
                            "running" => "runstate_running_time",
                            "runnable" => "runstate_runnable_time",
                            "blocked" => "runstate_blocked_time",
                            "offline" => "runstate_offline_time",
                            _ => panic!("C consumer: unknown field {k}"),
                        };
                        (name, v.parse().ok())
                    })
                    .collect();
                by_vcpu.insert(i, fields);
            }
            _ => {}
        }
    }
    Some(
        (0..VCPUS)
            .map(|v| {
                let fields = by_vcpu
                    .remove(&v)
                    .ok_or_else(|| CompatError::Invalid(format!("no vcpu {v} line: {text}")))?;
                Ok(Reading::standard(seqs[&v], fields))
            })
            .collect(),
    )
}

/// The standard fields a consumer of `rev` knows.
fn consumer_fields(rev: Rev) -> Vec<&'static str> {
    match rev {
        Rev::R1 => r1::FIELDS.iter().map(|f| f.0).collect(),
        Rev::R2 => r2::FIELDS.iter().map(|f| f.0).collect(),
        Rev::R3 => r3::FIELDS.iter().map(|f| f.0).collect(),
        Rev::R4x => r4x::FIELDS.iter().map(|f| f.0).collect(),
        Rev::Vstats | Rev::C => R3_FIELDS[..4].to_vec(),
    }
}

/// Whether a consumer of `rev` reads producer-specific counters at all
/// (through descriptors).
fn reads_producer_counters(rev: Rev) -> bool {
    matches!(rev, Rev::R3 | Rev::R4x | Rev::Vstats)
}

/// The assertions of one cell on vCPU `v`'s reading.
fn check_reading(p: &Published, c: Rev, v: u32, r: &Reading) -> String {
    let cell = format!("producer {:?}, consumer {c:?}, vCPU {v}", p.rev);
    assert_eq!(r.seq, 2, "{cell}: one update");
    let mut common = 0;
    for name in consumer_fields(c) {
        // Fields both know are read; fields only the consumer knows are
        // absent (never 0); fields only the producer knows are not even
        // asked for.
        let want = p.fields.contains(&name).then(|| value_for(v, name));
        common += usize::from(want.is_some());
        assert_eq!(r.get(name), Some(want), "{cell}, field {name}");
    }
    // No producer counter under a standard name: no standard value equals
    // one of the producer's counters (r4x's `preemptions` included).
    for (name, value) in &r.fields {
        for x in p.xcounters {
            assert_ne!(
                *value,
                Some(producer_value_for(v, x)),
                "{cell}: {x} read as {name}"
            );
        }
    }
    // Producer counters: only through descriptors, keyed apart, with
    // their own values; never a name the consumer made standard.
    for (name, value) in &r.producer {
        assert!(
            p.xcounters.contains(&name.as_str()),
            "{cell}: unexpected producer counter {name}"
        );
        assert_eq!(
            *value,
            Some(producer_value_for(v, name)),
            "{cell}: producer counter {name}"
        );
    }
    if reads_producer_counters(c) && p.rev != Rev::R1 {
        let seen: Vec<_> = r.producer.iter().map(|(n, _)| n.as_str()).collect();
        // The real consumer does not read r3 descriptors before step 5 of
        // the r3 plan: on an r3 table it may see none, never wrong ones.
        if c != Rev::Vstats || !p.clock {
            assert_eq!(seen, p.xcounters, "{cell}: producer counters");
        }
    }
    // R26: consumers that implement it extrapolate exactly when the
    // table names a clock; the others report times as of the last update.
    let want =
        (matches!(c, Rev::R3 | Rev::R4x | Rev::Vstats) && p.clock).then(|| up_to_date_for(v, NOW));
    assert_eq!(r.up_to_date, want, "{cell}: up-to-date times");
    format!(
        "{common} common, {} absent",
        consumer_fields(c).len() - common
    )
}

#[test]
fn every_producer_and_consumer_interoperate() {
    let scratch = Scratch::new("matrix");
    let mut results = Vec::new();
    for prev in PRODUCERS {
        let p = publish(prev, &scratch.path(&format!("{prev:?}")));
        for c in CONSUMERS {
            let Some(reads) = consume(c, &p.path) else {
                continue;
            };
            assert_eq!(reads.len(), VCPUS as usize, "{prev:?} -> {c:?}: {reads:?}");
            let mut summary = String::new();
            for (v, r) in (0..VCPUS).zip(&reads) {
                if prev == Rev::R1 && v > 0 {
                    check_v3_beyond_vcpu0(c, v, r);
                    continue;
                }
                // v3's reader finds vCPU i at offset + size * i + 16 * i:
                // right for vCPU 0 only, on any table (section 9.1).
                if c == Rev::R1 && v > 0 {
                    continue;
                }
                let r = r
                    .as_ref()
                    .unwrap_or_else(|e| panic!("{prev:?} -> {c:?}, vCPU {v}: {e}"));
                summary = check_reading(&p, c, v, r);
            }
            results.push(format!("{prev:?} -> {c:?}: {summary}"));
        }
    }
    assert!(results.len() >= 25, "{results:?}");
    println!("{}", results.join("\n"));
}

/// vCPUs 1 and above of a genuine v3 page (v3's writer put vCPU i at
/// `offset + 16 * stride * i`, zero fill): what each consumer makes of
/// them.
fn check_v3_beyond_vcpu0(c: Rev, v: u32, r: &Result<Reading, CompatError>) {
    let cell = format!("v3 page, consumer {c:?}, vCPU {v}");
    match c {
        // v3's own reader: its address is wrong; nothing to assert.
        Rev::R1 => {}
        // r3 (and later): unknown, never absent or zero (section 9.1).
        Rev::R3 | Rev::R4x => {
            assert!(
                matches!(r, Err(CompatError::Unknown { vcpu }) if *vcpu == v),
                "{cell}: {r:?}"
            );
        }
        // r2's rules (the r2 model and the spec-only C consumer, which
        // follows r2's spec) read slot v at offset + v * stride: the
        // zero fill, read as a running time of 0. This is the r2 defect
        // that r3's section 9.1 corrects; pinned so that it shows.
        Rev::R2 | Rev::C => {
            let r = r.as_ref().unwrap();
            assert_eq!(r.get("runstate_running_time"), Some(Some(0)), "{cell}");
        }
        // The real consumer: section 9.1 says vCPU 0 only, the count from
        // the toolstack, the rest unknown. Until it does (issue 12 step
        // 7), it reads slot v as r2 did: a phantom vCPU with zero times.
        Rev::Vstats => match r {
            Ok(r) => assert_eq!(r.get("runstate_running_time"), Some(Some(0)), "{cell}"),
            Err(e) => {
                let e = e.to_string().to_lowercase();
                assert!(e.contains("v3") || e.contains("unknown"), "{cell}: {e}");
            }
        },
    }
}

#[test]
fn the_real_consumer_on_a_v3_page_today() {
    // Pins what vstats-consumer does with a genuine v3 page today: it has
    // no way to take the vCPU count from the toolstack and counts slots
    // from the mapping, 63 in one 4 KiB page (offset 64, stride 64), so
    // vCPU 1 of the v3 writer (at slot 16) is reported under id 16 and
    // ids 1-15 are phantoms with zero times. Section 9.1 requires record
    // 0 only; the front-end change is step 7's.
    let scratch = Scratch::new("v3-real");
    let p = publish(Rev::R1, &scratch.path("v3"));
    let t = vstats_consumer::Table::open(&p.path).unwrap();
    assert_eq!(t.info().ext, None);
    let mut snap = vstats_consumer::RecordSnapshot::new(&t);
    t.snapshot_record(0, &mut snap).unwrap();
    assert_eq!(snap.running(), Some(value_for(0, "runstate_running_time")));
    if t.nr_records() == 63 {
        t.snapshot_record(16, &mut snap).unwrap();
        assert_eq!(snap.running(), Some(value_for(1, "runstate_running_time")));
        t.snapshot_record(1, &mut snap).unwrap();
        assert_eq!(snap.running(), Some(0));
    } else {
        // The consumer learned section 9.1: vCPU 0 only.
        assert_eq!(t.nr_records(), 1);
    }
}

#[test]
fn r3_consumer_extrapolation_edges() {
    let scratch = Scratch::new("r26");
    let p = publish(Rev::R3, &scratch.path("r3"));
    let c = r3::Consumer::open(&p.path, VCPUS).unwrap();
    assert_eq!(c.clock(), r3::CLOCK_HOST_MONOTONIC);
    for v in 0..VCPUS {
        // now before the entry time (clocks that disagree): clamped to 0.
        let r = c.read_at(v, Some(0)).unwrap();
        let times = [
            "runstate_running_time",
            "runstate_runnable_time",
            "runstate_blocked_time",
            "runstate_offline_time",
        ];
        assert_eq!(r.up_to_date, Some(times.map(|n| Some(value_for(v, n)))));
        // No now: times as of the last update.
        assert_eq!(c.read(v).unwrap().up_to_date, None);
        // The state's own time grows, the others do not.
        let r = c.read_at(v, Some(NOW)).unwrap();
        let t = r.up_to_date.unwrap();
        let s = value_for(v, "runstate") as usize;
        for (k, name) in times.iter().enumerate() {
            let base = value_for(v, name);
            if k == s {
                assert_eq!(t[k], Some(base + NOW - value_for(v, "runstate_entry_time")));
            } else {
                assert_eq!(t[k], Some(base));
            }
        }
    }
    // An r2 table names no clock: never extrapolated, even with now.
    let p = publish(Rev::R2, &scratch.path("r2"));
    let c = r3::Consumer::open(&p.path, VCPUS).unwrap();
    assert_eq!(c.clock(), r3::CLOCK_NONE);
    assert_eq!(c.read_at(0, Some(NOW)).unwrap().up_to_date, None);
}

#[test]
fn a_producer_counter_is_never_a_later_standard_field() {
    // The case issue 12 item 3 found, for every table that carries a
    // producer counter where a later revision has a standard field: r2's
    // `halt_successful_poll` at byte 40 (r3's `runstate`) and r3's
    // producer counter named `preemptions` at byte 64 (r4x's standard
    // `preemptions` is at 56, past r3's size).
    let scratch = Scratch::new("collide");
    for prev in [Rev::R2, Rev::R3, Rev::Vstats] {
        let p = publish(prev, &scratch.path(&format!("{prev:?}")));
        let r = r4x::Consumer::open(&p.path, VCPUS)
            .unwrap()
            .read(1)
            .unwrap();
        assert_eq!(r.get("preemptions"), Some(None), "{prev:?}");
        assert_eq!(
            r.producer_counter("preemptions"),
            Some(Some(producer_value_for(1, "preemptions"))),
            "{prev:?}"
        );
        let r = r3::Consumer::open(&p.path, VCPUS).unwrap().read(1).unwrap();
        if !p.clock {
            assert_eq!(
                r.get("runstate"),
                Some(None),
                "{prev:?}: r2 has no runstate"
            );
        }
    }
}

#[test]
fn the_generic_consumer_shows_counters_it_was_not_built_with() {
    // The real consumer lists an r2 table's producer counters from their
    // descriptors, with the kinds the descriptors give.
    let scratch = Scratch::new("generic");
    let p = publish(Rev::R2, &scratch.path("r2"));
    let t = vstats_consumer::Table::open(&p.path).unwrap();
    let mut snap = vstats_consumer::Snapshot::new(&t);
    assert_eq!(t.snapshot(&mut snap), 0);
    for (name, kind) in [
        ("halt_successful_poll", vstats_abi::Kind::CUMULATIVE),
        ("preemptions", vstats_abi::Kind::CUMULATIVE),
        ("max_halt_wait_ns", vstats_abi::Kind::PEAK),
    ] {
        let c = t.counter(name).expect(name);
        assert_eq!(c.kind(), kind);
        assert_eq!(
            snap.record(2).unwrap().get(c),
            Some(producer_value_for(2, name))
        );
    }
    // A v3 table has no descriptors: only the standard field that fits.
    let p = publish(Rev::R1, &scratch.path("r1"));
    let t = vstats_consumer::Table::open(&p.path).unwrap();
    let names: Vec<_> = t.counters().iter().map(|c| c.name().to_owned()).collect();
    assert_eq!(names, ["runstate_running_time"]);
    assert_eq!(t.info().ext, None);
}

#[test]
fn every_producers_table_passes_the_checker() {
    let scratch = Scratch::new("checked");
    for prev in PRODUCERS {
        let p = publish(prev, &scratch.path(&format!("{prev:?}")));
        let mut c = Checker::attach(Target::Path(p.path.clone()), &step_opts());
        for _ in 0..3 {
            c.sample();
        }
        let r = c.finish();
        assert!(r.passed(), "{prev:?}:\n{r}");
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
            // The RFC v3 table gets the checker's v3 profile (design 9.1):
            // no extension header, zero fill, only vCPU 0 meaningful.
            let v3_profile =
                prev == Rev::R1 && matches!(id, Rule::R13 | Rule::P1 | Rule::P4 | Rule::P9);
            let want = if v3_profile {
                Status::Skip
            } else {
                Status::Pass
            };
            assert_eq!(r.rule(id).unwrap().status, want, "{prev:?} {id}:\n{r}");
        }
        if prev == Rev::R1 {
            assert_eq!(r.notes, [vstats_invariants::checker::V3_NOTE], "{r}");
        }
    }
}

/// A domain table of `rev`: `vcpus_online` 3, `vcpus_max` 4, `uptime`
/// 5 s.
fn domain_value(name: &str) -> u64 {
    match name {
        "vcpus_online" => 3,
        "vcpus_max" => 4,
        "uptime" => 5_000_000_000,
        _ => panic!("{name}"),
    }
}

fn publish_domain(rev: Rev, path: &Path) -> Box<dyn std::any::Any> {
    match rev {
        Rev::R2 => r2::publish_domain(path, 2, domain_value).map(|()| Box::new(()) as _),
        Rev::R3 => r3::publish_domain(path, 3, domain_value).map(|()| Box::new(()) as _),
        Rev::Vstats => {
            let plan = TableBuilder::domain().build().unwrap();
            let mut shm = ShmTable::create(path, &plan.spec(4)).unwrap();
            {
                let (_, mut writers) = shm.split();
                let mut w = writers.next().unwrap();
                assert!(w.update(|u| {
                    use vstats_producer::builder::domain::{UPTIME, VCPUS_MAX, VCPUS_ONLINE};
                    assert!(u.put(VCPUS_ONLINE, domain_value("vcpus_online")));
                    assert!(u.put(VCPUS_MAX, domain_value("vcpus_max")));
                    assert!(u.put(UPTIME, domain_value("uptime")));
                }));
            }
            Ok(Box::new(shm) as _)
        }
        _ => unreachable!(),
    }
    .unwrap()
}

fn domain_magic(path: &Path) -> u32 {
    let b = std::fs::read(path).unwrap();
    u32::from_ne_bytes(b[..4].try_into().unwrap())
}

#[test]
fn domain_tables() {
    let scratch = Scratch::new("domain");
    let want: Vec<_> = ["vcpus_online", "vcpus_max", "uptime"]
        .map(|n| (n, Some(domain_value(n))))
        .to_vec();
    let mut results = Vec::new();
    for prev in [Rev::R2, Rev::R3, Rev::Vstats] {
        let path = scratch.path(&format!("{prev:?}"));
        let _live = publish_domain(prev, &path);
        let magic = domain_magic(&path);
        let r3_magic = magic == r3::DOMAIN_STATS_MAGIC;
        // r2: only its own magic; an r3 domain table is refused with R2
        // (unknown magic), a clear refusal and never a misread.
        match r2::DomainConsumer::open(&path) {
            Ok(c) => {
                assert!(!r3_magic, "{prev:?}");
                assert_eq!(c.read().unwrap().fields, want, "{prev:?} -> r2");
            }
            Err(CompatError::Incompatible { found, expected }) => {
                assert!(r3_magic, "{prev:?}");
                assert_eq!((found, expected), (0xd057_a75e, 0xaabb_ccde));
            }
            Err(e) => panic!("{prev:?} -> r2: {e}"),
        }
        // r3 and r4x: both magics.
        let c = r3::DomainConsumer::open(&path).unwrap();
        assert_eq!(c.magic(), magic);
        assert_eq!(c.read().unwrap().fields, want, "{prev:?} -> r3");
        let c = r4x::DomainConsumer::open(&path).unwrap();
        assert_eq!(c.read().unwrap().fields, want, "{prev:?} -> r4x");
        // The real consumer: both magics (since step 1).
        assert!(TableKind::from_magic(magic).is_some_and(|k| k == TableKind::Domain));
        let t = vstats_consumer::Table::open(&path).unwrap();
        assert!(!t.is_vcpu());
        let mut snap = vstats_consumer::RecordSnapshot::new(&t);
        t.snapshot_record(0, &mut snap).unwrap();
        let got = vec![
            ("vcpus_online", snap.vcpus_online()),
            ("vcpus_max", snap.vcpus_max()),
            ("uptime", snap.uptime()),
        ];
        assert_eq!(got, want, "{prev:?} -> vstats");
        // The spec-only C consumer follows r2's spec: it refuses the r3
        // magic with R2.
        if let Some(bin) = c_consumer() {
            let out = Command::new(bin).arg(&path).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            if r3_magic {
                assert_eq!(out.status.code(), Some(2), "{text}");
                assert!(text.starts_with("invalid R2: magic 0xd057a75e"), "{text}");
            } else {
                assert!(out.status.success(), "{text}");
                let words = text
                    .lines()
                    .find(|l| l.starts_with("rec 0 ok seq=2 "))
                    .unwrap();
                assert_eq!(words, "rec 0 ok seq=2 3 4 5000000000", "{text}");
            }
        }
        results.push(format!("{prev:?}: magic {magic:#010x}"));
    }
    println!("{}", results.join("\n"));
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
    refused(r4x::Consumer::open(&path, VCPUS).unwrap_err());
    let e = vstats_consumer::Table::open(&path).unwrap_err();
    assert_eq!(e.rule(), Some(Rule::R2), "{e}");
    assert!(e.to_string().contains("magic 0xaabbcce0"), "{e}");
    if let Some(bin) = c_consumer() {
        let out = Command::new(bin).arg(&path).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(text.starts_with("invalid R2: magic 0xaabbcce0"), "{text}");
    }
    let mut c = Checker::attach(Target::Path(path.clone()), &step_opts());
    c.sample();
    let report = Report::new(vec![c.finish()]);
    assert_eq!(report.tables[0].failed(), [Rule::R2], "{report}");
    assert_eq!(report.exit_code(), EXIT_VIOLATION);
}

/// A copy of the table at `src` at `dst` with the `u32` words `patch`
/// (byte offset, value) changed.
fn patched(src: &Path, dst: &Path, patch: &[(usize, u32)]) {
    let mut b = std::fs::read(src).unwrap();
    for &(o, v) in patch {
        b[o..o + 4].copy_from_slice(&v.to_ne_bytes());
    }
    std::fs::write(dst, b).unwrap();
}

/// What is broken, the `u32` words changed (byte offset, value), and the
/// rule that refuses it.
type R3Fault = (&'static str, &'static [(usize, u32)], &'static str);

/// Broken variants of the r3 model's table (4 vCPUs, size 56, area [56,
/// 72), stride 128, two r3 descriptors at 88, offset 256): what is
/// broken, the words changed, and the rule that refuses it.
const R3_FAULTS: &[R3Fault] = &[
    ("abi_size < size", &[(32, 48)], "R21"),
    (
        "an r2 descriptor count",
        &[(40, 1), (36, 88), (44, 64)],
        "R21",
    ),
    ("area past the stride", &[(68, 128)], "R19"),
    ("area inside the record", &[(64, 48)], "R19"),
    ("a descriptor with no area", &[(64, 0), (68, 0)], "R20"),
    ("a descriptor outside the area", &[(88 + 48, 72)], "R20"),
    (
        "a descriptor named runstate",
        &[
            (88, 0x736e_7572),
            (92, 0x6574_6174),
            (96, 0),
            (100, 0),
            (104, 0),
            (108, 0),
            (112, 0),
            (116, 0),
            (120, 0),
            (124, 0),
            (128, 0),
            (132, 0),
        ],
        "R20",
    ),
    ("size 48 in an r3 table", &[(8, 48), (32, 48)], "R22"),
    (
        "a marker that is not the frozen one",
        &[(16, 0x3278_7376)],
        "R9",
    ),
];

#[test]
fn the_r3_model_refuses_what_the_r3_rules_refuse() {
    // The r3 consumer of the matrix is a model written from the spec: it
    // must refuse what the spec's rules refuse, or its passing cells say
    // little.
    let scratch = Scratch::new("r3-rules");
    let p = publish(Rev::R3, &scratch.path("r3"));
    for (what, patch, rule) in R3_FAULTS {
        let dst = scratch.path("patched");
        patched(&p.path, &dst, patch);
        match r3::Consumer::open(&dst, VCPUS) {
            Err(CompatError::Invalid(why)) => {
                assert!(why.starts_with(&format!("{rule}:")), "{what}: {why}")
            }
            r => panic!("{what}: not refused with {rule}: {r:?}"),
        }
    }
    // A domain table is not read as a vCPU table (R2 for this kind).
    let dst = scratch.path("domain");
    r3::publish_domain(&dst, 1, domain_value).unwrap();
    assert!(matches!(
        r3::Consumer::open(&dst, VCPUS),
        Err(CompatError::Incompatible {
            found: 0xd057_a75e,
            ..
        })
    ));
}

#[test]
fn the_abi_validator_agrees_with_the_r3_model() {
    // The model and vstats-abi share no code: they agree on every
    // producer's table (valid) and on each broken r3 table (the same
    // rule), for the rules the abi crate on this branch knows.
    let scratch = Scratch::new("r3-abi");
    let validate = |path: &Path| {
        let b = std::fs::read(path).unwrap();
        let offset = u32::from_ne_bytes(b[4..8].try_into().unwrap()) as usize;
        vstats_abi::validate(&b[..offset.min(b.len())], b.len() as u64)
    };
    for prev in PRODUCERS {
        let p = publish(prev, &scratch.path(&format!("{prev:?}")));
        if let Err(e) = validate(&p.path) {
            panic!("{prev:?}: {e}");
        }
    }
    let p = publish(Rev::R3, &scratch.path("r3"));
    for (what, patch, rule) in R3_FAULTS {
        let dst = scratch.path("patched");
        patched(&p.path, &dst, patch);
        let e = validate(&dst).expect_err(what);
        assert_eq!(Some(e.rule()), Rule::from_id(rule), "{what}: {e}");
    }
}

#[test]
fn the_r3_model_and_the_abi_crate_agree_on_every_number() {
    // Written apart (the model from the spec, the crate by step 1): the
    // numbers they share must be equal.
    use vstats_abi::{header, record};
    assert_eq!(r3::VCPU_STATS_MAGIC, vstats_abi::VCPU_STATS_MAGIC);
    assert_eq!(r3::DOMAIN_STATS_MAGIC, header::DOMAIN_STATS_MAGIC_R3);
    assert_eq!(r3::DOMAIN_STATS_MAGIC, vstats_abi::DOMAIN_STATS_MAGIC);
    assert_eq!(r3::DOMAIN_STATS_MAGIC_R2, vstats_abi::DOMAIN_STATS_MAGIC_R2);
    assert_eq!(r3::HDR_MARKER, header::HDR_MARKER);
    assert_eq!(
        [
            r3::CLOCK_NONE,
            r3::CLOCK_HOST_MONOTONIC,
            r3::CLOCK_XEN_SYSTEM
        ],
        [
            header::CLOCK_NONE,
            header::CLOCK_HOST_MONOTONIC,
            header::CLOCK_XEN_SYSTEM
        ]
    );
    assert_eq!(
        16 + size_of::<r3::ExtHeader>() as u32,
        header::HEADER_R3_END
    );
    assert_eq!(
        size_of::<r3::ExtHeader>() as u32,
        header::EXT_HEADER_SIZE_R3
    );
    assert_eq!(size_of::<r3::VcpuStats>(), size_of::<record::VcpuStatsR3>());
    assert_eq!(
        size_of::<r3::VcpuStats>() as u32,
        record::VCPU_STATS_SIZE_R3
    );
    let offset = |name: &str| r3::FIELDS.iter().find(|f| f.0 == name).unwrap().1;
    assert_eq!(offset("runstate"), record::vcpu_off::RUNSTATE);
    assert_eq!(offset("runstate_entry_time"), record::vcpu_off::ENTRY);
    assert_eq!(
        (size_of::<r3::DomainStats>(), size_of::<r3::Header>()),
        (
            size_of::<vstats_abi::DomainStats>(),
            size_of::<vstats_abi::header::Header>()
        )
    );
}
