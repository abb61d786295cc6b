//! Instructions per hot-path operation, counted by valgrind's callgrind:
//! stable on a noisy machine where times are not.
//!
//! Without arguments it runs itself under `valgrind --tool=callgrind` for
//! every operation, N and 2N times (default N = 200,000), and writes
//! `icount.json` (instructions per operation = the difference of the two
//! totals divided by N, so set-up and start-up cancel) to the results
//! directory. `--op NAME --n N` performs one operation N times (what the
//! valgrind runs do). `--list` prints the operations.

use std::{hint::black_box, process::Command, process::ExitCode};

use anyhow::{bail, Context, Result};
use vstats_abi::seqlock::SeqWriter;
use vstats_benches::{
    fixture::ShmFixture,
    hot::{self, PlainRecord, SeqRecord},
    out,
};
use vstats_consumer::{
    mem::{set_copy_path, CopyPath},
    RecordSnapshot, Snapshot,
};

/// A reading of a table's clock for `snapshot_at`, as a sampler takes once
/// per tick after its last table (a constant: reading the clock here would
/// run rustix's vDSO code, which faults under valgrind).
const TICK_NS: u64 = 1 << 40;

const OPS: [&str; 18] = [
    "plain_atomic",
    "seqlock",
    "producer_update",
    "producer_update_words",
    "memcpy_record",
    "read_words",
    "snapshot_record",
    "memcpy_64",
    "sweep_raw_64",
    "snapshot_64",
    "snapshot_64_atomic",
    "snapshot_64_scalar",
    "snapshot_64_sse2",
    "snapshot_64_avx2",
    "snapshot_64_at",
    "memcpy_kvm4",
    "snapshot_kvm4_at",
    "subset_kvm4_at",
];

/// A table shaped like a live 4-vCPU KVM VM's (4 runstate times, 44
/// scalars and three 32-bucket histograms: 142 counter words a record),
/// as the alternatives benchmark's synthetic table.
fn kvm4() -> Result<ShmFixture> {
    use vstats_kvm_vmm::{publish::TablePlan, stats, KvmStatDesc};
    let desc = |name: String, kind, size| KvmStatDesc {
        name,
        kind,
        unit: 0,
        base: 10,
        exponent: 0,
        size,
        offset: 0,
        bucket_size: 0,
    };
    let mut descs: Vec<KvmStatDesc> = (0..44)
        .map(|i| desc(format!("stat_{i}"), stats::KIND_CUMULATIVE, 1))
        .collect();
    descs.extend((0..3).map(|i| desc(format!("hist_{i}"), stats::KIND_LOG_HIST, 32)));
    let plan = TablePlan::vcpu(4, &descs)?;
    let mut fx = ShmFixture::new("icount-kvm4", plan.layout, &plan.descriptors)?;
    fx.fill();
    Ok(fx)
}

fn perform(op: &str, n: u64) -> Result<()> {
    let mut fx = ShmFixture::vcpu("icount", 64, 64)?;
    fx.fill();
    match op {
        "plain_atomic" => {
            let p = PlainRecord::default();
            for v in 0..n {
                hot::plain_atomic_store4(&p, black_box(v));
            }
        }
        "seqlock" => {
            let r = SeqRecord::default();
            let mut sw = SeqWriter::new(0);
            for v in 0..n {
                hot::seqlock_update4(&mut sw, &r, black_box(v));
            }
        }
        "producer_update" => {
            let mut ws = fx.writers();
            let mut w = ws.next().context("record 0")?;
            for v in 0..n {
                hot::producer_update4(&mut w, black_box(v));
            }
        }
        "producer_update_words" => {
            let mut ws = fx.writers();
            let mut w = ws.next().context("record 0")?;
            for v in 0..n {
                hot::producer_update_words4(&mut w, black_box(v));
            }
        }
        "memcpy_record" | "memcpy_64" => {
            let (off, len) = fx.record_area();
            let len = if op == "memcpy_record" { 64 } else { len };
            let mut buf = vec![0u8; len];
            for _ in 0..n {
                black_box(fx.memcpy(black_box(off), &mut buf));
            }
        }
        "read_words" => {
            let recs = fx.records();
            let mut out = vec![0u64; fx.words_per_record()];
            for _ in 0..n {
                let _ = black_box(hot::read_record_raw(black_box(&recs[0]), &mut out));
            }
        }
        "snapshot_record" => {
            let t = fx.consumer();
            let mut rec = RecordSnapshot::new(t);
            for _ in 0..n {
                let _ = black_box(t.snapshot_record(black_box(0), &mut rec));
            }
        }
        "sweep_raw_64" => {
            let recs = fx.records();
            let words = fx.words_per_record();
            let mut out = vec![0u64; words * recs.len()];
            for _ in 0..n {
                black_box(hot::sweep_raw(black_box(&recs), &mut out, words));
            }
        }
        "snapshot_64" | "snapshot_64_atomic" | "snapshot_64_scalar" | "snapshot_64_sse2"
        | "snapshot_64_avx2" => {
            if let Some(name) = op.strip_prefix("snapshot_64_") {
                let path = CopyPath::available()
                    .into_iter()
                    .find(|p| p.name() == name)
                    .with_context(|| format!("copy path {name} does not run here"))?;
                set_copy_path(path);
            }
            let t = fx.consumer();
            let mut snap = Snapshot::new(t);
            for _ in 0..n {
                black_box(t.snapshot(black_box(&mut snap)));
            }
        }
        "snapshot_64_at" => {
            let t = fx.consumer();
            let mut snap = Snapshot::new(t);
            let at = std::time::Instant::now();
            for _ in 0..n {
                black_box(t.snapshot_at(black_box(&mut snap), at, Some(TICK_NS)));
            }
        }
        "memcpy_kvm4" => {
            let fx = kvm4()?;
            let (off, len) = fx.record_area();
            let mut buf = vec![0u8; len];
            for _ in 0..n {
                black_box(fx.memcpy(black_box(off), &mut buf));
            }
        }
        // (No `snapshot` of this clock-1 table: it reads the table's clock
        // through rustix's vDSO code, which faults under valgrind, that
        // gives no vDSO.)
        "snapshot_kvm4_at" | "subset_kvm4_at" => {
            let fx = kvm4()?;
            let t = fx.consumer();
            let mut snap = if op == "subset_kvm4_at" {
                let names = [
                    "runstate_running_time",
                    "runstate_runnable_time",
                    "runstate_blocked_time",
                    "runstate_offline_time",
                ];
                Snapshot::of_counters(t, names.iter().filter_map(|c| t.counter(c)))
            } else {
                Snapshot::new(t)
            };
            let at = std::time::Instant::now();
            // The sampler's one reading of the table clock per tick (its
            // value does not change the work).
            let now = Some(TICK_NS);
            for _ in 0..n {
                black_box(t.snapshot_at(black_box(&mut snap), at, now));
            }
        }
        other => bail!("unknown operation {other:?} (try --list)"),
    }
    Ok(())
}

/// Instructions callgrind counted for `--op op --n n`.
fn count(op: &str, n: u64) -> Result<f64> {
    let exe = std::env::current_exe()?;
    let o = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(&exe)
        .args(["--op", op, "--n", &n.to_string()])
        .output()
        .context("running valgrind (is it installed?)")?;
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() {
        bail!("valgrind failed for {op}: {err}");
    }
    err.lines()
        .find_map(|l| {
            let rest = l.split_once("Collected :")?.1;
            rest.trim().parse::<f64>().ok()
        })
        .with_context(|| format!("no \"Collected :\" line from callgrind for {op}"))
}

fn run() -> Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
    };
    if args.iter().any(|a| a == "--list") {
        for op in OPS {
            println!("{op}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(op) = arg("--op") {
        let n = arg("--n").map_or(Ok(1000), |s| s.parse()).context("--n")?;
        perform(op, n)?;
        return Ok(ExitCode::SUCCESS);
    }
    let n: u64 = arg("--n")
        .map_or(Ok(200_000), |s| s.parse())
        .context("--n")?;
    let mut per = serde_json::Map::new();
    for op in OPS {
        let one = count(op, n)?;
        let two = count(op, 2 * n)?;
        let v = (two - one) / n as f64;
        println!("{op:>16}: {v:8.1} instructions");
        per.insert(op.into(), v.into());
    }
    let p = out::write_json("icount", &per)?;
    println!("icount: results in {}", p.display());
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    match run() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vstats-bench-icount: {e:#}");
            ExitCode::FAILURE
        }
    }
}
