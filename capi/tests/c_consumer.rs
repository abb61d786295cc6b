//! A C consumer written only from `docs/abi.md` (`tests/c/consumer.c`)
//! reads a table the Rust producer updates concurrently, without ever
//! accepting a torn record, and refuses broken tables with the number of
//! the rule they break, the same number `vstats_abi::validate` gives.

mod common;

use std::{
    collections::HashMap,
    fs,
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
    thread,
};

use common::{c_source, compile, have, run, TempDir};
use vstats_abi::{
    desc::DESCRIPTOR_SIZE,
    layout::{Layout, LayoutParams},
    record::{VCPU_STATS_SIZE_R2, VCPU_STD_DESCRIPTORS},
    validate::validate,
    VCPU_STATS_MAGIC,
};
use vstats_producer::{shm::ShmTable, TableSpec};

/// Records of the live table: 0..6 follow the pattern (record 0 updated
/// eight times as often), 6 too but with word 5 inactive, 7 is never
/// written (unused).
const NR: u32 = 8;
/// 16 counter words per record.
const WORDS: u32 = 16;
const SNAPSHOTS: &str = "3000";

/// Word `j` of record `i` at update `v`: every word carries `v`, so a
/// record copied across two updates shows two different `v`s.
fn pattern(i: u32, j: u32, v: u64) -> u64 {
    (u64::from(j) << 52) | (u64::from(i) << 44) | v
}

struct Rec {
    seq: u32,
    words: Vec<Option<u64>>,
}

/// Parses the C consumer's `rec I ok seq=S W...` lines, per snapshot.
fn parse(out: &str) -> (Vec<HashMap<u32, Rec>>, HashMap<u32, String>) {
    let mut snaps: Vec<HashMap<u32, Rec>> = Vec::new();
    let mut status = HashMap::new();
    for line in out.lines() {
        let mut f = line.split(' ');
        match f.next() {
            Some("snap") => snaps.push(HashMap::new()),
            Some("rec") => {
                let i: u32 = f.next().unwrap().parse().unwrap();
                let st = f.next().unwrap().to_owned();
                let seq = f
                    .next()
                    .unwrap()
                    .strip_prefix("seq=")
                    .unwrap()
                    .parse()
                    .unwrap();
                if st == "ok" {
                    let words = f.map(|w| w.parse().ok()).collect();
                    snaps.last_mut().unwrap().insert(i, Rec { seq, words });
                }
                status.insert(i, st);
            }
            _ => {}
        }
    }
    (snaps, status)
}

/// What the checker found in the C consumer's output.
#[derive(Debug, Default)]
struct Seen {
    /// Records read consistently (as the consumer claims).
    ok: usize,
    /// Of those, records whose words carry different update numbers.
    torn: usize,
    /// Times a record's update number moved forward between snapshots.
    advanced: usize,
}

/// Runs the C consumer for `SNAPSHOTS` snapshots of a table the Rust
/// producer (`ShmTable`) updates all the while, then checks its output.
/// Returns the checker's counts and the consumer's output.
fn live_run(prog: &Path, path: &Path) -> (Seen, String) {
    // One live run at a time: on a small machine, parallel tests would
    // take turns on the cores instead of racing producer and consumer.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let layout = Layout::compute(&LayoutParams {
        record_size: 8 + 8 * WORDS,
        ..LayoutParams::vcpu_r2(NR)
    })
    .unwrap();
    let spec = TableSpec {
        magic: VCPU_STATS_MAGIC,
        layout,
        descriptors: VCPU_STD_DESCRIPTORS,
        generation: 0x5eed,
    };
    let mut shm = ShmTable::create(path, &spec).unwrap();
    let (_, writers) = shm.split();
    let mut writers: Vec<_> = writers.take(NR as usize - 1).collect();
    let stop = AtomicBool::new(false);
    let write = |w: &mut vstats_producer::RecordWriter<'_>, v: u64| {
        let i = w.index();
        w.update(|u| {
            // Last word first: the reader copies first word first, so a
            // reader that skips a check meets the writer in the middle of
            // the record sooner.
            for j in (0..WORDS).rev() {
                if i == 6 && j == 5 {
                    u.set_inactive(5);
                } else {
                    u.set(j as usize, pattern(i, j, v));
                }
            }
        });
    };
    // Every written record holds update 1 before the consumer starts, so
    // that no snapshot sees them unused, whenever the producer thread
    // first gets a CPU.
    for w in &mut writers {
        write(w, 1);
    }
    let (out, last_v) = thread::scope(|s| {
        let producer = s.spawn(|| {
            let mut v = 1u64;
            while !stop.load(Ordering::Relaxed) || v < 16 {
                v += 1;
                // Record 0 at every round, so that it is nearly always
                // being written; the others at every eighth.
                for w in writers.iter_mut().filter(|w| w.index() == 0 || v % 8 == 0) {
                    write(w, v);
                }
            }
            v
        });
        let out = run(prog, &[path.to_str().unwrap(), SNAPSHOTS]);
        stop.store(true, Ordering::Relaxed);
        (out, producer.join().unwrap())
    });
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with(&format!(
        "table magic=0xaabbccdd offset={} size={} stride={} records={NR} page=4096 abi_size={} ext=1 generation={} descs=4\n",
        layout.offset,
        8 + 8 * WORDS,
        layout.stride,
        VCPU_STATS_SIZE_R2,
        0x5eed
    )));
    assert!(stdout.contains(
        "desc 0 runstate_running_time offset=8 count=1 kind=0 unit=2 base=10 exp=-9 bucket=0\n"
    ));

    let (snaps, status) = parse(&stdout);
    assert_eq!(snaps.len(), SNAPSHOTS.parse::<usize>().unwrap());
    assert_eq!(status.get(&(NR - 1)).map(String::as_str), Some("unused"));
    let mut seen = Seen::default();
    let mut last_seen = [0u64; NR as usize];
    for snap in &snaps {
        for (&i, r) in snap {
            assert!(i < NR - 1, "record 7 is never written, so never 'ok'");
            assert_eq!(r.seq % 2, 0);
            assert_eq!(r.words.len(), WORDS as usize);
            seen.ok += 1;
            // Not torn: every active word carries the same update number.
            let v = r.words[0].unwrap_or(0) & ((1 << 44) - 1);
            let torn = r.words.iter().enumerate().any(|(j, w)| {
                let j = j as u32;
                if i == 6 && j == 5 {
                    w.is_some()
                } else {
                    *w != Some(pattern(i, j, v))
                }
            });
            if torn {
                seen.torn += 1;
                continue;
            }
            // Values never go back and never run ahead of the producer.
            assert!(v >= last_seen[i as usize], "record {i} went back");
            assert!(v <= last_v);
            if v > last_seen[i as usize] {
                seen.advanced += 1;
            }
            last_seen[i as usize] = v;
        }
    }
    let done = stdout.lines().last().unwrap();
    assert!(done.starts_with(&format!(
        "done snapshots={SNAPSHOTS} ok={} unused={SNAPSHOTS}",
        seen.ok
    )));
    // The standard fields of the last snapshot, by position (R17).
    let last = snaps.last().unwrap();
    for line in stdout.lines().filter(|l| l.starts_with("vcpu ")) {
        let f: Vec<&str> = line.split(' ').collect();
        let r = &last[&f[1].parse::<u32>().unwrap()];
        for (k, name) in ["running", "runnable", "blocked", "offline"]
            .iter()
            .enumerate()
        {
            let v = f[2 + k].strip_prefix(&format!("{name}=")[..]).unwrap();
            assert_eq!(v.parse().ok(), r.words[k], "{line}");
        }
    }
    eprintln!("{done}; {seen:?}; the producer made {last_v} updates of each record");
    (seen, stdout)
}

#[test]
fn c_consumer_reads_a_live_rust_table_without_tearing() {
    if !have("gcc", "c_consumer_reads_a_live_rust_table_without_tearing") {
        return;
    }
    let dir = TempDir::new("consumer");
    let prog = compile(dir.path(), "consumer", &[c_source("consumer.c")], false);
    // Whether the producer thread gets a CPU while the consumer runs is up
    // to the scheduler (on a loaded machine it may not, for a whole run).
    // So runs are repeated, each on a fresh table and each checked in full,
    // until the table has been seen changing under the reader, within a
    // generous hang bound. The interleaving itself is forced by
    // `a_c_consumer_with_r4_retries_a_copy_interrupted_by_an_update`.
    let start = std::time::Instant::now();
    let mut advanced = 0;
    for round in 0.. {
        let (seen, _) = live_run(&prog, &dir.path().join(format!("vcpu{round}")));
        assert_eq!(seen.torn, 0, "a torn record was accepted");
        assert!(seen.ok >= SNAPSHOTS.parse().unwrap(), "records were read");
        advanced += seen.advanced;
        if advanced > NR as usize {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "the table was never seen changing while read in {} runs",
            round + 1
        );
    }
}

/// Runs the consumer built with `TEST_PAUSE_MID_COPY` for one snapshot of
/// a table whose records carry update 1, and forces the interleaving: the
/// consumer stops halfway through its copy of record 0 and waits, the test
/// then makes a whole update (update 2) of record 0, and lets it go on.
/// Returns record 0 as the consumer printed it (`None` when not `ok`) and
/// the consumer's retry count.
fn forced_run(prog: &Path, path: &Path) -> (Option<Vec<Option<u64>>>, u64) {
    let layout = Layout::compute(&LayoutParams {
        record_size: 8 + 8 * WORDS,
        ..LayoutParams::vcpu_r2(NR)
    })
    .unwrap();
    let spec = TableSpec {
        magic: VCPU_STATS_MAGIC,
        layout,
        descriptors: VCPU_STD_DESCRIPTORS,
        generation: 1,
    };
    let mut shm = ShmTable::create(path, &spec).unwrap();
    let (_, writers) = shm.split();
    let mut writers: Vec<_> = writers.take(NR as usize - 1).collect();
    let update = |w: &mut vstats_producer::RecordWriter<'_>, v: u64| {
        let i = w.index();
        w.update(|u| {
            for j in 0..WORDS {
                u.set(j as usize, pattern(i, j, v));
            }
        });
    };
    for w in &mut writers {
        update(w, 1);
    }
    let mut child = Command::new(prog)
        .args([path.to_str().unwrap(), "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        let n = stderr.read_line(&mut line).unwrap();
        assert!(
            n > 0,
            "the consumer ended without pausing in record 0's copy"
        );
        if line == "paused\n" {
            break;
        }
    }
    // The reader holds the first half of record 0 at update 1.
    update(&mut writers[0], 2);
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    let (snaps, _) = parse(&stdout);
    assert_eq!(snaps.len(), 1, "{stdout}");
    let retries = stdout
        .lines()
        .last()
        .and_then(|l| l.split(" retries=").nth(1))
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no retry count in {stdout}"));
    (snaps[0].get(&0).map(|r| r.words.clone()), retries)
}

/// Whether record 0's words are a torn copy (not all of one update), and
/// which update they carry if not.
fn update_of_record0(words: &[Option<u64>]) -> Result<u64, ()> {
    let v = words[0].ok_or(())? & ((1 << 44) - 1);
    let whole = (0..WORDS).all(|j| words[j as usize] == Some(pattern(0, j, v)));
    if whole {
        Ok(v)
    } else {
        Err(())
    }
}

/// The checker above is able to see tearing: the same consumer without S4
/// (the second seq read) accepts the torn record of a forced interleaving,
/// every time: half of update 1 and half of update 2.
#[test]
fn a_c_consumer_without_r4_is_caught_tearing() {
    if !have("gcc", "a_c_consumer_without_r4_is_caught_tearing") {
        return;
    }
    let dir = TempDir::new("consumer-no-r4");
    let prog = common::compile_with(
        dir.path(),
        "consumer",
        &[c_source("consumer.c")],
        false,
        &["-DTEST_SKIP_S4", "-DTEST_PAUSE_MID_COPY"],
    );
    let (rec0, retries) = forced_run(&prog, &dir.path().join("vcpu"));
    let words = rec0.expect("the broken reader accepts record 0");
    assert_eq!(update_of_record0(&words), Err(()), "a torn copy: {words:?}");
    let half = (WORDS / 2) as usize;
    assert!(words[..half]
        .iter()
        .all(|w| w.map(|w| w & 0xfff) == Some(1)));
    assert!(words[half..]
        .iter()
        .all(|w| w.map(|w| w & 0xfff) == Some(2)));
    assert_eq!(retries, 0, "nothing made it retry");
}

/// The same forced interleaving with the real reader: S4 sees the seq
/// move, the copy is retried, and record 0 is read whole at update 2.
#[test]
fn a_c_consumer_with_r4_retries_a_copy_interrupted_by_an_update() {
    if !have(
        "gcc",
        "a_c_consumer_with_r4_retries_a_copy_interrupted_by_an_update",
    ) {
        return;
    }
    let dir = TempDir::new("consumer-r4-forced");
    let prog = common::compile_with(
        dir.path(),
        "consumer",
        &[c_source("consumer.c")],
        false,
        &["-DTEST_PAUSE_MID_COPY"],
    );
    let (rec0, retries) = forced_run(&prog, &dir.path().join("vcpu"));
    let words = rec0.expect("record 0 is read");
    assert_eq!(update_of_record0(&words), Ok(2), "{words:?}");
    assert_eq!(retries, 1, "exactly one retry, after the interrupted copy");
}

/// The bytes of a valid table of 80 vCPU records (two 4 KiB pages) with its
/// standard descriptors, records inactive.
fn valid_table() -> (Layout, Vec<u8>) {
    let layout = Layout::compute(&LayoutParams::vcpu_r2(80)).unwrap();
    let mut b = vec![0xffu8; layout.mapping_len() as usize];
    layout
        .write_headers(&mut b, VCPU_STATS_MAGIC, 9, VCPU_STD_DESCRIPTORS)
        .unwrap();
    for i in 0..80 {
        let r = layout.record_offset(i).unwrap() as usize;
        b[r..r + 4].fill(0);
    }
    (layout, b)
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

/// Runs the C consumer on `bytes`: `None` if it accepts the table, else
/// the rule number it reports.
fn c_rule(prog: &Path, dir: &Path, name: &str, bytes: &[u8]) -> Option<u32> {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    let out = run(prog, &[path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    match out.status.code() {
        Some(0) => None,
        Some(2) => {
            let line = stdout.lines().find(|l| l.starts_with("invalid R")).unwrap();
            let n = &line["invalid R".len()..line.find(':').unwrap()];
            Some(n.parse().unwrap())
        }
        _ => panic!("{name}: {stdout}{}", String::from_utf8_lossy(&out.stderr)),
    }
}

fn rust_rule(bytes: &[u8]) -> Option<u32> {
    validate(bytes, bytes.len() as u64)
        .err()
        .map(|e| e.rule().id()[1..].parse().unwrap())
}

#[test]
fn c_consumer_rejects_broken_tables_with_the_rule_number() {
    if !have(
        "gcc",
        "c_consumer_rejects_broken_tables_with_the_rule_number",
    ) {
        return;
    }
    let dir = TempDir::new("broken");
    let prog = compile(dir.path(), "consumer", &[c_source("consumer.c")], false);
    let (l, good) = valid_table();
    let desc_offset = l.desc_offset as usize;
    let desc = move |i: usize| desc_offset + i * DESCRIPTOR_SIZE as usize;
    type Mutation = Box<dyn Fn(&mut Vec<u8>)>;
    // (name, rule, mutation) for rules R1-R13.
    let cases: Vec<(&str, Option<u32>, Mutation)> = vec![
        ("valid", None, Box::new(|_| {})),
        (
            "v3-no-ext-header",
            None,
            Box::new(move |b| b[16..l.offset as usize].fill(0)),
        ),
        ("short", Some(1), Box::new(|b| b.truncate(12))),
        ("bad-magic", Some(2), Box::new(|b| put32(b, 0, 0xdeadbeef))),
        ("offset-below-header", Some(3), Box::new(|b| put32(b, 4, 8))),
        ("size-odd", Some(4), Box::new(|b| put32(b, 8, 44))),
        ("size-zero", Some(4), Box::new(|b| put32(b, 8, 0))),
        ("stride-below-size", Some(5), Box::new(|b| put32(b, 12, 32))),
        ("offset-misaligned", Some(6), Box::new(|b| put32(b, 4, 324))),
        ("too-many-records", Some(7), Box::new(|b| put32(b, 24, 200))),
        (
            "offset-beyond-mapping",
            Some(7),
            Box::new(|b| put32(b, 4, 1 << 20)),
        ),
        // Stride 48: record 78 starts at 320 + 78 * 48 = 4064 and ends at
        // 4104, across the first page boundary.
        (
            "record-straddles-page",
            Some(8),
            Box::new(|b| put32(b, 12, 48)),
        ),
        (
            "bad-ext-magic",
            Some(9),
            Box::new(|b| put32(b, 16, 0x12345678)),
        ),
        ("ext-size-small", Some(9), Box::new(|b| put32(b, 20, 32))),
        (
            "abi-size-above-size",
            Some(9),
            Box::new(|b| put32(b, 32, 48)),
        ),
        ("too-many-descs", Some(9), Box::new(|b| put32(b, 40, 1025))),
        (
            "desc-stride-small",
            Some(10),
            Box::new(|b| put32(b, 44, 32)),
        ),
        ("desc-past-offset", Some(10), Box::new(|b| put32(b, 40, 5))),
        ("name-empty", Some(11), Box::new(move |b| b[desc(1)] = 0)),
        (
            "name-unprintable",
            Some(11),
            Box::new(move |b| b[desc(1)] = b' '),
        ),
        (
            "name-not-padded",
            Some(11),
            Box::new(move |b| b[desc(1) + 40] = b'x'),
        ),
        (
            "name-duplicate",
            Some(11),
            Box::new(move |b| b.copy_within(desc(0)..desc(0) + 48, desc(2))),
        ),
        (
            "kind-unknown",
            Some(12),
            Box::new(move |b| b[desc(1) + 56] = 9),
        ),
        (
            "seconds-positive-exponent",
            Some(12),
            Box::new(move |b| b[desc(1) + 59] = 1),
        ),
        (
            "scalar-count-2",
            Some(12),
            Box::new(move |b| put32(b, desc(3) + 52, 2)),
        ),
        (
            "counter-in-seq-word",
            Some(13),
            Box::new(move |b| put32(b, desc(1) + 48, 0)),
        ),
        (
            "counter-past-size",
            Some(13),
            Box::new(move |b| put32(b, desc(3) + 48, 40)),
        ),
        (
            "counters-overlap",
            Some(13),
            Box::new(move |b| put32(b, desc(1) + 48, 8)),
        ),
    ];
    let mut failures = Vec::new();
    for (name, rule, mutate) in &cases {
        let mut b = good.clone();
        mutate(&mut b);
        let c = c_rule(&prog, dir.path(), name, &b);
        let rust = rust_rule(&b);
        if c != *rule || rust != *rule {
            failures.push(format!(
                "{name}: expected {rule:?}, C says {c:?}, Rust says {rust:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Tables where the spec leaves room: several rules broken at once (which
/// one is reported depends on the order of the checks), and tables the
/// rules accept though the prose says otherwise. Pins what the C consumer
/// (the spec read literally: R1..R13 in number order, each rule over all
/// descriptors before the next) and `vstats_abi::validate` (R9 and R10
/// before R7 and R8, rules R11-R13 descriptor by descriptor) report.
#[test]
fn spec_corner_cases_c_versus_rust() {
    if !have("gcc", "spec_corner_cases_c_versus_rust") {
        return;
    }
    let dir = TempDir::new("corner");
    let prog = compile(dir.path(), "consumer", &[c_source("consumer.c")], false);
    let (l, good) = valid_table();
    let desc_offset = l.desc_offset as usize;
    let desc = move |i: usize| desc_offset + i * DESCRIPTOR_SIZE as usize;
    type Mutation = Box<dyn Fn(&mut Vec<u8>)>;
    let straddle = |b: &mut Vec<u8>| put32(b, 12, 48);
    // (name, C consumer's rule, Rust validator's rule, mutation)
    let cases: Vec<(&str, Option<u32>, Option<u32>, Mutation)> = vec![
        // Order of R7/R8 against R9/R10: R7 and R8 use nr_records and
        // page_shift from the extension header that R9 validates.
        (
            "bad-ext-magic+too-many-records",
            Some(7),
            Some(9),
            Box::new(|b| {
                put32(b, 16, 0x1234_5678);
                put32(b, 24, 200);
            }),
        ),
        (
            "abi-size-above-size+too-many-records",
            Some(7),
            Some(9),
            Box::new(|b| {
                put32(b, 32, 48);
                put32(b, 24, 200);
            }),
        ),
        (
            "abi-size-above-size+straddle",
            Some(8),
            Some(9),
            Box::new(move |b| {
                put32(b, 32, 48);
                straddle(b);
            }),
        ),
        (
            "desc-stride-small+straddle",
            Some(8),
            Some(10),
            Box::new(move |b| {
                put32(b, 44, 32);
                straddle(b);
            }),
        ),
        // A page_shift R8 cannot use: both report R9 first.
        (
            "page-shift-40+straddle",
            Some(9),
            Some(9),
            Box::new(move |b| {
                put32(b, 28, 40);
                straddle(b);
            }),
        ),
        (
            "name-empty+straddle",
            Some(8),
            Some(8),
            Box::new(move |b| {
                b[desc(1)] = 0;
                straddle(b);
            }),
        ),
        // Rules R11-R13: all descriptors per rule, or rules per descriptor?
        (
            "r12-in-desc0+r11-in-desc1",
            Some(11),
            Some(12),
            Box::new(move |b| {
                b[desc(0) + 56] = 9;
                b[desc(1)] = 0;
            }),
        ),
        (
            "r13-in-desc0+r11-in-desc1",
            Some(11),
            Some(13),
            Box::new(move |b| {
                put32(b, desc(0) + 48, 4);
                b[desc(1)] = 0;
            }),
        ),
        (
            "duplicate-names-0-3+r12-in-desc1",
            Some(11),
            Some(12),
            Box::new(move |b| {
                b.copy_within(desc(0)..desc(0) + 48, desc(3));
                b[desc(1) + 56] = 9;
            }),
        ),
        (
            "overlap-0-1+r12-in-desc2",
            Some(12),
            Some(13),
            Box::new(move |b| {
                put32(b, desc(1) + 48, 8);
                b[desc(2) + 56] = 9;
            }),
        ),
        // R18: a domain table has exactly one record.
        (
            "domain-table-80-records",
            Some(18),
            Some(18),
            Box::new(|b| put32(b, 0, vstats_abi::DOMAIN_STATS_MAGIC_R2)),
        ),
        // desc_offset set without descriptors: "with descriptors" read as
        // desc_count > 0 by both.
        (
            "desc-offset-without-descs",
            None,
            None,
            Box::new(|b| {
                put32(b, 40, 0);
                put32(b, 36, 3);
            }),
        ),
        (
            "descs-at-offset-0",
            Some(10),
            Some(10),
            Box::new(|b| put32(b, 36, 0)),
        ),
        ("nr-records-zero", None, None, Box::new(|b| put32(b, 24, 0))),
        // ext_magic 0 with the other fields set: absent (a v3 table).
        (
            "ext-magic-zero-fields-set",
            None,
            None,
            Box::new(|b| put32(b, 16, 0)),
        ),
        // The mapping need not be whole pages.
        (
            "file-not-page-multiple",
            None,
            None,
            Box::new(|b| b.truncate(8000)),
        ),
        (
            "ext-header-past-mapping",
            Some(7),
            Some(7),
            Box::new(|b| b.truncate(40)),
        ),
    ];
    let mut failures = Vec::new();
    for (name, want_c, want_rust, mutate) in &cases {
        let mut b = good.clone();
        mutate(&mut b);
        let c = c_rule(&prog, dir.path(), name, &b);
        let rust = rust_rule(&b);
        if (c, rust) != (*want_c, *want_rust) {
            failures.push(format!(
                "{name}: C {c:?} (expected {want_c:?}), Rust {rust:?} (expected {want_rust:?})"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
