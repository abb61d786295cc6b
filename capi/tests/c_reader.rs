//! The C reader API (`include/vstats_reader.h`): a C sampler
//! (`tests/c/reader.c`) built against the library reads the tables of a
//! live synthetic producer, and what it prints is compared, value for
//! value, with what the Rust consumer reads from the same tables at the
//! same moment (the producer writes between rounds, never during one).
//! While the producer writes without pause, every record the C sampler
//! reads is consistent. Hostile inputs give the documented error codes.

mod common;

use std::{
    fmt::Write as _,
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread,
};

use common::{c_source, compile, have, run, TempDir};
use vstats_abi::{
    header::CLOCK_HOST_MONOTONIC,
    layout::{Layout, LayoutParams},
    record::{vcpu_off, INACTIVE, RECORD_PREFIX},
    VCPU_STATS_MAGIC,
};
use vstats_consumer::{
    runstate::{Runstate, TimeBase},
    RecordStatus, Snapshot, Table,
};
use vstats_producer::synth::Synth;

/// Checks `reader hostile` makes (each must give its documented code).
const HOSTILE_CHECKS: u32 = 63;

/// What `reader dump PATH NOW_NS` prints, from the Rust consumer (R26's
/// computation: `vstats_consumer::runstate`).
fn rust_dump(path: &Path, now_ns: u64) -> String {
    let t = Table::open(path).unwrap();
    let mut o = String::new();
    let counters = t.counters();
    writeln!(
        o,
        "table kind={} records={} generation={} clock={} counters={}",
        t.info().header.magic,
        t.nr_records(),
        t.generation(),
        t.info().clock,
        counters.len()
    )
    .unwrap();
    for (i, c) in counters.iter().enumerate() {
        writeln!(
            o,
            "counter {i} {} offset={} count={} kind={} unit={} base={} exp={} bucket={}",
            c.name(),
            c.offset(),
            c.count(),
            c.kind().0,
            c.unit().0,
            c.base().0,
            c.exponent(),
            c.bucket_size()
        )
        .unwrap();
    }
    let mut snap = Snapshot::new(&t);
    let busy = t.snapshot(&mut snap);
    writeln!(o, "take {busy}").unwrap();
    for (i, rec) in (0u32..).zip(snap.records()) {
        let status = match rec.status() {
            RecordStatus::Consistent if rec.is_unused() => "unused",
            RecordStatus::Consistent => "ok",
            RecordStatus::Busy { .. } => "busy",
            RecordStatus::NotRead => "notread",
        };
        writeln!(o, "rec {i} {status}").unwrap();
        if !rec.is_consistent() {
            continue;
        }
        for c in counters {
            write!(o, "val {i} {}", c.name()).unwrap();
            let values: Vec<Option<u64>> = if c.is_histogram() {
                match rec.histogram(c) {
                    Some(b) => b.iter().copied().map(Some).collect(),
                    None => vec![None; c.count() as usize],
                }
            } else {
                vec![rec.get(c)]
            };
            for v in values {
                match v {
                    Some(v) => write!(o, " {v}").unwrap(),
                    None => o.push_str(" -"),
                }
            }
            o.push('\n');
        }
        if t.is_vcpu() {
            let rs = runstate(&t, rec.words(), now_ns);
            let [t0, t1, t2, t3] = rs.times_ns.map(|t| t.unwrap_or(INACTIVE));
            let state = rs
                .state
                .and_then(|s| u32::try_from(s).ok())
                .unwrap_or(u32::MAX);
            let ext = u8::from(rs.extrapolated);
            writeln!(
                o,
                "runstate {i} state={state} extrapolated={ext} {t0} {t1} {t2} {t3}"
            )
            .unwrap();
        }
    }
    o
}

/// R26 for a record's words, from the fields the table's record has.
fn runstate(t: &Table, words: &[u64], now_ns: u64) -> Runstate {
    let word = |off: u32| {
        if t.info().has_std_field(off) {
            words[((off - RECORD_PREFIX) / 8) as usize]
        } else {
            INACTIVE
        }
    };
    let times = [
        vcpu_off::RUNNING,
        vcpu_off::RUNNABLE,
        vcpu_off::BLOCKED,
        vcpu_off::OFFLINE,
    ]
    .map(word);
    if !t.info().has_std_field(vcpu_off::ENTRY) {
        return Runstate::from_times(times);
    }
    let base = TimeBase::from_clock(t.info().clock);
    Runstate::from_words(
        times,
        word(vcpu_off::RUNSTATE),
        word(vcpu_off::ENTRY),
        base,
        Some(now_ns),
    )
}

/// Runs the C sampler and returns its standard output; fails on an error.
fn c_run(prog: &Path, args: &[&str]) -> String {
    let out = run(prog, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "reader {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn c_sampler_reads_what_the_rust_consumer_reads() {
    if !have("gcc", "c_sampler_reads_what_the_rust_consumer_reads") {
        return;
    }
    let dir = TempDir::new("reader");
    let prog = compile(dir.path(), "reader", &[c_source("reader.c")], true);
    let vm = dir.path().join("vm");
    let mut synth = Synth::new(&vm, 5).unwrap();
    for round in 0..4u64 {
        synth.update();
        // A fixed "now" far ahead of every entry time, so that both sides
        // extrapolate alike.
        let now = (1 << 50) + round;
        for file in ["vcpu", "domain"] {
            let path = vm.join(file);
            let c = c_run(&prog, &["dump", path.to_str().unwrap(), &now.to_string()]);
            let rust = rust_dump(&path, now);
            assert_eq!(c, rust, "round {round}, {file}");
            assert!(c.contains("\nrec 0 ok\n"), "{c}");
            assert_eq!(
                c.lines().filter(|l| l.starts_with("runstate ")).count(),
                if file == "vcpu" { 5 } else { 0 },
                "{c}"
            );
            assert!(c.lines().filter(|l| l.starts_with("val ")).count() > 0);
        }
    }
    synth.remove().unwrap();
}

/// An r3 vCPU table written by hand from the abi crate's layout (chosen
/// states and entry times, which a live producer would not hold): `clock`
/// host-monotonic, record `i` in state `i % 4` since `1000 * (i + 1)` ns,
/// and with record 3 unused.
fn r3_table(path: &Path) {
    let p = LayoutParams {
        clock: CLOCK_HOST_MONOTONIC,
        ..LayoutParams::vcpu_r3(5)
    };
    let l = Layout::compute(&p).unwrap();
    let mut buf = vec![0u8; usize::try_from(l.mapping_len()).unwrap()];
    l.fill_records(&mut buf).unwrap();
    l.write_headers(&mut buf, VCPU_STATS_MAGIC, 9, &[]).unwrap();
    for i in 0..5u32 {
        if i == 3 {
            continue;
        }
        let at = usize::try_from(l.record_offset(i).unwrap()).unwrap();
        let k = u64::from(i);
        let words = [10 + k, 20 + k, 30 + k, 40 + k, k % 4, 1000 * (k + 1)];
        buf[at..at + 4].copy_from_slice(&2u32.to_ne_bytes());
        for (j, w) in words.iter().enumerate() {
            let o = at + 8 + 8 * j;
            buf[o..o + 8].copy_from_slice(&w.to_ne_bytes());
        }
    }
    std::fs::write(path, buf).unwrap();
}

#[test]
fn c_sampler_brings_r3_runstate_times_up_to_date_as_the_rust_consumer() {
    if !have(
        "gcc",
        "c_sampler_brings_r3_runstate_times_up_to_date_as_the_rust_consumer",
    ) {
        return;
    }
    let dir = TempDir::new("reader-r3");
    let prog = compile(dir.path(), "reader", &[c_source("reader.c")], true);
    let path = dir.path().join("vcpu");
    r3_table(&path);
    for now in [1u64, 2500, 1 << 40] {
        let c = c_run(&prog, &["dump", path.to_str().unwrap(), &now.to_string()]);
        assert_eq!(c, rust_dump(&path, now), "now {now}");
        assert!(c.starts_with("table kind=2864434397 records=5 generation=9 clock=1 "));
        assert!(c.contains("\nrec 3 unused\n"), "{c}");
        // Record 1: runnable since 2000 ns, 21 ns accrued there.
        let want = if now >= 2000 { 21 + now - 2000 } else { 21 };
        assert!(
            c.contains(&format!(
                "\nrunstate 1 state=1 extrapolated=1 11 {want} 31 41\n"
            )),
            "now {now}: {c}"
        );
    }
}

#[test]
fn c_sampler_sees_only_consistent_records_while_the_producer_writes() {
    if !have(
        "gcc",
        "c_sampler_sees_only_consistent_records_while_the_producer_writes",
    ) {
        return;
    }
    let dir = TempDir::new("reader-live");
    let prog = compile(dir.path(), "reader", &[c_source("reader.c")], true);
    let vm = dir.path().join("vm");
    let synth = Arc::new(Mutex::new(Synth::new(&vm, 8).unwrap()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (synth, stop) = (Arc::clone(&synth), Arc::clone(&stop));
        thread::spawn(move || {
            // At least one update, however the threads are scheduled.
            let mut n: u64 = 0;
            loop {
                synth.lock().unwrap().update();
                n += 1;
                if stop.load(Ordering::Relaxed) {
                    break n;
                }
            }
        })
    };
    let out = c_run(&prog, &["live", vm.join("vcpu").to_str().unwrap(), "2000"]);
    stop.store(true, Ordering::Relaxed);
    let updates = writer.join().unwrap();
    assert!(updates > 0);
    assert!(out.starts_with("live snapshots=2000 torn=0 "), "{out}");
    Arc::into_inner(synth)
        .unwrap()
        .into_inner()
        .unwrap()
        .remove()
        .unwrap();
}

#[test]
fn hostile_inputs_give_the_documented_errors() {
    if !have("gcc", "hostile_inputs_give_the_documented_errors") {
        return;
    }
    let dir = TempDir::new("reader-hostile");
    let prog = compile(dir.path(), "reader", &[c_source("reader.c")], true);
    let vm = dir.path().join("vm");
    let synth = Synth::new(&vm, 3).unwrap();
    let scratch = dir.path().join("scratch");
    let out = c_run(
        &prog,
        &[
            "hostile",
            vm.join("vcpu").to_str().unwrap(),
            scratch.to_str().unwrap(),
        ],
    );
    assert!(out.starts_with("hostile checks="), "{out}");
    let n: u32 = out["hostile checks=".len()..].trim().parse().unwrap();
    assert_eq!(n, HOSTILE_CHECKS, "{out}");
    synth.remove().unwrap();
}

/// Each header of the split stands alone, as C11 and as C++11, under the
/// strictest warnings, and the three together (the shim includes the
/// producer header; the reader header may come before or after).
#[test]
fn each_header_compiles_alone_in_c_and_cxx() {
    if !have("gcc", "each_header_compiles_alone_in_c_and_cxx") {
        return;
    }
    let dir = TempDir::new("reader-headers");
    let sets: [&[&str]; 5] = [
        &["vstats_reader.h"],
        &["vstats_producer.h"],
        &["vstats.h"],
        &["vstats_reader.h", "vstats.h"],
        &["vstats.h", "vstats_reader.h", "vstats_producer.h"],
    ];
    for (n, set) in sets.iter().enumerate() {
        let src = dir.path().join(format!("h{n}.c"));
        let mut text: String = set.iter().map(|h| format!("#include \"{h}\"\n")).collect();
        text.push_str("int main(void) { return VSTATS_OK; }\n");
        std::fs::write(&src, text).unwrap();
        for (cc, std) in [("gcc", "-std=c11"), ("g++", "-std=c++11")] {
            if !have(cc, "each_header_compiles_alone_in_c_and_cxx") {
                continue;
            }
            let o = std::process::Command::new(cc)
                .args([
                    std,
                    "-Wall",
                    "-Wextra",
                    "-Wpedantic",
                    "-Werror",
                    "-fsyntax-only",
                ])
                .args(["-x", if cc == "gcc" { "c" } else { "c++" }, "-I"])
                .arg(common::include_dir())
                .arg(&src)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{cc} {set:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}
