//! Section 3: a snapshot of every vCPU of a live KVM VM from the vstats
//! table, against what samplers use today on the same VM and the same
//! counters: KVM's binary stats fd (one `pread` per vCPU), one tmpfs file
//! per statistic (open, read, parse, close), and a QEMU `query-stats`
//! JSON document (serialise, parse).
//!
//! The VM is `vstats-kvm-vmm`'s, published by its `Publisher` (the four
//! runstate times and every KVM vCPU statistic per record), tuned to idle
//! most of the time (guest computes ~200 us, then halts 20 ms) so that its
//! vCPU threads do not compete with the benchmark for the CPUs. Without a
//! usable `/dev/kvm` the benchmark falls back to a synthetic table of the
//! same shape (and says so in `alternatives.json`); the KVM row is then
//! not run.

use std::{hint::black_box, ops::ControlFlow, thread, time::Duration};

use anyhow::{Context, Result};
use criterion::Criterion;
use serde_json::json;
use vstats_benches::{
    alt::{self, FileTree, QueryStatsReply},
    criterion_config,
    fixture::{records_in, ScratchDir, ShmFixture},
    hot, out,
};
use vstats_consumer::{mem::MemView, Snapshot, Table};
use vstats_kvm_vmm::{
    publish::TablePlan, stats::KIND_CUMULATIVE, Error as VmmError, KvmStatDesc, Publisher,
    RunningVm, Vm, VmConfig,
};

const VCPUS: u32 = 4;

fn bench_all(
    c: &mut Criterion,
    table: &Table,
    vm: Option<&RunningVm<'_>>,
    source: &str,
) -> Result<()> {
    let mut snap = Snapshot::new(table);
    table.snapshot(&mut snap);
    let stats = alt::stats_of(table, &snap);
    let files_dir = ScratchDir::new("alternatives-files")?;
    let tree = FileTree::create(files_dir.path(), &stats)?;
    let doc = alt::qemu_document(&stats);
    let json_text = serde_json::to_vec(&doc)?;
    let mut kvm_bufs: Vec<Vec<u64>> = match vm {
        Some(vm) => (0..VCPUS)
            .map(|i| vm.vcpu_stats(i).map(|s| s.new_buffer()))
            .collect::<Option<_>>()
            .context("a vCPU without KVM stats")?,
        None => Vec::new(),
    };
    let words = snap
        .records()
        .iter()
        .map(|r| r.words().len())
        .sum::<usize>();
    out::write_json(
        "alternatives",
        &json!({
            "source": source,
            "vcpus": VCPUS,
            "table_words": words,
            "kvm_words": kvm_bufs.iter().map(Vec::len).sum::<usize>(),
            "files": tree.len(),
            "file_values": alt::value_count(&stats),
            "json_bytes": json_text.len(),
            "json_stats": stats.iter().map(Vec::len).sum::<usize>(),
        }),
    )?;

    let (view, _) = MemView::map_file(table.path().context("a table opened from a file")?)?;
    let recs = records_in(&view, table.info());
    let per = recs.first().map_or(0, |r| r.words.len());
    let mut raw_out = vec![0u64; per * recs.len()];

    let mut g = c.benchmark_group("alternatives");
    g.bench_function("table_snapshot", |b| {
        b.iter(|| table.snapshot(black_box(&mut snap)))
    });
    // The four runstate words of every vCPU, nothing else.
    let runstate: Vec<_> = [
        "runstate_running_time",
        "runstate_runnable_time",
        "runstate_blocked_time",
        "runstate_offline_time",
    ]
    .iter()
    .filter_map(|n| table.counter(n))
    .collect();
    let mut subset = Snapshot::of_counters(table, runstate.iter().copied());
    g.bench_function("table_subset_runstate", |b| {
        b.iter(|| table.snapshot(black_box(&mut subset)))
    });
    // The same without the clock read (the sampler stamps its tick once,
    // as the KVM `pread`s are not timed either).
    // The table clock's reading too: once per tick, after the last table.
    let at = std::time::Instant::now();
    let now = Some(vstats_abi::clock::monotonic_ns());
    g.bench_function("table_subset_runstate_at", |b| {
        b.iter(|| table.snapshot_at(black_box(&mut subset), at, now))
    });
    g.bench_function("table_snapshot_at", |b| {
        b.iter(|| table.snapshot_at(black_box(&mut snap), at, now))
    });
    // The hardware limit for all counters: a `memcpy` of the same records'
    // bytes (every record's extent, as the snapshot copies), from a private
    // copy of them (the live table is being written by the VM's monitor).
    let info = table.info();
    let records: Vec<u8> = {
        let end = u64::from(info.header.offset)
            + u64::from(info.nr_records) * u64::from(info.header.stride);
        let head = view
            .copy_prefix(usize::try_from(end)?)
            .context("the records")?;
        head[info.header.offset as usize..].to_vec()
    };
    let mut records_out = vec![0u8; records.len()];
    g.bench_function("memcpy_records", |b| {
        b.iter(|| {
            records_out.copy_from_slice(black_box(&records));
            black_box(&mut records_out);
        })
    });
    g.bench_function("table_raw", |b| {
        b.iter(|| hot::sweep_raw(black_box(&recs), &mut raw_out, per))
    });
    if let Some(vm) = vm {
        g.bench_function("kvm_pread", |b| {
            b.iter(|| {
                for (i, buf) in (0..VCPUS).zip(kvm_bufs.iter_mut()) {
                    if let Some(s) = vm.vcpu_stats(i) {
                        s.read(buf).expect("pread of the KVM stats fd");
                    }
                }
                black_box(&mut kvm_bufs);
            })
        });
    }
    let (mut buf, mut vals) = (Vec::new(), Vec::new());
    g.bench_function("files", |b| {
        b.iter(|| {
            tree.read_all(&mut buf, &mut vals)
                .expect("reading the files");
            black_box(&mut vals);
        })
    });
    let mut ser = Vec::with_capacity(json_text.len() * 2);
    g.bench_function("json_serialise", |b| {
        b.iter(|| {
            ser.clear();
            serde_json::to_writer(&mut ser, black_box(&doc)).expect("serialising");
            black_box(&mut ser);
        })
    });
    g.bench_function("json_parse", |b| {
        b.iter(|| {
            serde_json::from_slice::<QueryStatsReply>(black_box(&json_text)).expect("parsing")
        })
    });
    g.bench_function("json_round_trip", |b| {
        b.iter(|| {
            ser.clear();
            serde_json::to_writer(&mut ser, black_box(&doc)).expect("serialising");
            serde_json::from_slice::<QueryStatsReply>(&ser).expect("parsing")
        })
    });
    g.finish();
    Ok(())
}

/// Runs everything on a live VM. `Ok(None)` when KVM is unavailable.
fn live(c: &mut Criterion) -> Result<Option<()>> {
    let config = VmConfig {
        guest_compute: Some(Duration::from_micros(200)),
        halt_wake: Duration::from_millis(20),
        ..VmConfig::new(VCPUS)
    };
    let vm = match Vm::create(config) {
        Ok(vm) => vm,
        Err(e @ VmmError::KvmUnavailable { .. }) => {
            eprintln!("alternatives: no usable KVM ({e}); falling back to a synthetic table");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let dir = ScratchDir::new("alternatives-vm")?;
    let mut publisher = Publisher::new(vm, dir.path().join("vm"))?;
    let table = Table::open(publisher.vcpu_path())?;
    let mut result = Ok(());
    publisher.run(Duration::from_millis(100), |running| {
        // Let every vCPU run and publish a few times first.
        thread::sleep(Duration::from_millis(300));
        let source = format!(
            "a live KVM VM of {VCPUS} vCPUs (vstats-kvm-vmm), its tables published by \
             `Publisher`, {} counter words per vCPU record",
            table
                .counters()
                .iter()
                .map(|c| c.count() as usize)
                .sum::<usize>()
        );
        result = bench_all(c, &table, Some(running), &source);
        ControlFlow::Break(())
    })?;
    publisher.remove()?;
    result.map(Some)
}

/// A table shaped like the live one (4 runstate times, 44 scalars and
/// three 32-bucket log2 histograms, as Linux 6.18 x86-64 offers) without
/// KVM.
fn synthetic(c: &mut Criterion) -> Result<()> {
    let mut descs: Vec<KvmStatDesc> = (0..44)
        .map(|i| KvmStatDesc {
            name: format!("stat_{i}"),
            kind: KIND_CUMULATIVE,
            unit: 0,
            base: 10,
            exponent: 0,
            size: 1,
            offset: 0,
            bucket_size: 0,
        })
        .collect();
    for i in 0..3 {
        descs.push(KvmStatDesc {
            name: format!("hist_{i}"),
            kind: vstats_kvm_vmm::stats::KIND_LOG_HIST,
            unit: vstats_kvm_vmm::stats::UNIT_SECONDS,
            base: 10,
            exponent: -9,
            size: 32,
            offset: 0,
            bucket_size: 0,
        });
    }
    let plan = TablePlan::vcpu(VCPUS, &descs)?;
    let mut fx = ShmFixture::new("alternatives-synthetic", plan.layout, &plan.descriptors)?;
    fx.fill();
    bench_all(
        c,
        fx.consumer(),
        None,
        "a SYNTHETIC table (no usable /dev/kvm): same shape as a live VM's, no KVM stats fd row",
    )
}

fn main() {
    if out::list_mode() {
        for n in [
            "table_snapshot",
            "kvm_pread",
            "files",
            "json_serialise",
            "json_parse",
            "json_round_trip",
        ] {
            println!("alternatives/{n}: benchmark");
        }
        return;
    }
    let mut c = criterion_config();
    let r = match live(&mut c) {
        Ok(Some(())) => Ok(()),
        Ok(None) => synthetic(&mut c),
        Err(e) => Err(e),
    };
    if let Err(e) = r {
        eprintln!("alternatives: {e:#}");
        std::process::exit(1);
    }
    c.final_summary();
}
