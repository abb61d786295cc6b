//! The C side of the producer API: a C program publishes a table through
//! `libvstats_capi.a` into a file it maps itself, and the Rust consumer
//! reads it; the header's constants and layouts match the Rust crates.

mod common;

use std::{collections::HashMap, fs};

use common::{c_source, compile, have, producer, run, TempDir};
use vstats_abi::{
    header::{EXT_HEADER_OFFSET, EXT_HEADER_SIZE, HEADER_SIZE},
    layout::{DEFAULT_CACHELINE, DEFAULT_PAGE_SIZE, MAX_DESCRIPTORS},
    record::{
        DOMAIN_STATS_SIZE, DOMAIN_STD_DESCRIPTORS, PAD_INACTIVE, RECORD_PREFIX, VCPU_STATS_SIZE,
        VCPU_STD_DESCRIPTORS,
    },
    validate::{first_nonzero_reserved, validate},
    DOMAIN_STATS_MAGIC, DOMAIN_STATS_MAGIC_R2, EXT_MAGIC, VCPU_STATS_MAGIC,
    XENMEM_RESOURCE_STATS_TABLE, XENMEM_RESOURCE_STATS_TABLE_ID_DOMSTATS,
    XENMEM_RESOURCE_STATS_TABLE_ID_VCPUSTATS,
};
use vstats_capi::*;
use vstats_consumer::{Snapshot, Table};

#[test]
fn c_producer_publishes_what_the_rust_consumer_reads() {
    if !have("gcc", "c_producer_publishes_what_the_rust_consumer_reads") {
        return;
    }
    let dir = TempDir::new("producer");
    let prog = compile(dir.path(), "producer", &[c_source("producer.c")], true);
    producer::check_runs(&prog, dir.path());
}

#[test]
fn header_constants_and_layouts_match_the_rust_crates() {
    if !have("gcc", "header_constants_and_layouts_match_the_rust_crates") {
        return;
    }
    let dir = TempDir::new("header");
    let prog = compile(
        dir.path(),
        "header_check",
        &[c_source("header_check.c")],
        false,
    );
    let out = run(&prog, &[]);
    assert!(out.status.success());
    let got: HashMap<String, i64> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect();
    let word = |off: u32| i64::from((off - RECORD_PREFIX) / 8);
    let want: &[(&str, i64)] = &[
        (
            "VSTATS_XENMEM_RESOURCE_STATS_TABLE",
            XENMEM_RESOURCE_STATS_TABLE.into(),
        ),
        (
            "VSTATS_XENMEM_RESOURCE_STATS_TABLE_ID_VCPUSTATS",
            XENMEM_RESOURCE_STATS_TABLE_ID_VCPUSTATS.into(),
        ),
        (
            "VSTATS_XENMEM_RESOURCE_STATS_TABLE_ID_DOMSTATS",
            XENMEM_RESOURCE_STATS_TABLE_ID_DOMSTATS.into(),
        ),
        ("VSTATS_VCPU_STATS_MAGIC", VCPU_STATS_MAGIC.into()),
        ("VSTATS_DOMAIN_STATS_MAGIC", DOMAIN_STATS_MAGIC.into()),
        ("VSTATS_DOMAIN_STATS_MAGIC_R2", DOMAIN_STATS_MAGIC_R2.into()),
        ("VSTATS_EXT_MAGIC", EXT_MAGIC.into()),
        ("VSTATS_HEADER_SIZE", HEADER_SIZE.into()),
        ("VSTATS_EXT_HEADER_OFFSET", EXT_HEADER_OFFSET.into()),
        ("VSTATS_EXT_HEADER_SIZE", EXT_HEADER_SIZE.into()),
        ("VSTATS_DESC_SIZE", vstats_abi::desc::DESCRIPTOR_SIZE.into()),
        ("VSTATS_DESC_NAME_LEN", vstats_abi::desc::NAME_LEN as i64),
        ("VSTATS_MAX_DESCRIPTORS", MAX_DESCRIPTORS.into()),
        ("VSTATS_RECORD_PREFIX", RECORD_PREFIX.into()),
        ("VSTATS_DEFAULT_PAGE_SIZE", DEFAULT_PAGE_SIZE.into()),
        ("VSTATS_DEFAULT_CACHELINE", DEFAULT_CACHELINE.into()),
        ("VSTATS_INACTIVE == UINT64_MAX", 1),
        ("VSTATS_INACTIVE_BIT == (UINT64_C(1) << 63)", 1),
        ("VSTATS_PAD_INACTIVE", PAD_INACTIVE.into()),
        (
            "VSTATS_KIND_CUMULATIVE",
            vstats_abi::Kind::CUMULATIVE.0.into(),
        ),
        ("VSTATS_KIND_INSTANT", vstats_abi::Kind::INSTANT.0.into()),
        ("VSTATS_KIND_PEAK", vstats_abi::Kind::PEAK.0.into()),
        (
            "VSTATS_KIND_LINEAR_HIST",
            vstats_abi::Kind::LINEAR_HIST.0.into(),
        ),
        (
            "VSTATS_KIND_LOG2_HIST",
            vstats_abi::Kind::LOG2_HIST.0.into(),
        ),
        ("VSTATS_UNIT_NONE", vstats_abi::Unit::NONE.0.into()),
        ("VSTATS_UNIT_BYTES", vstats_abi::Unit::BYTES.0.into()),
        ("VSTATS_UNIT_SECONDS", vstats_abi::Unit::SECONDS.0.into()),
        ("VSTATS_UNIT_CYCLES", vstats_abi::Unit::CYCLES.0.into()),
        ("VSTATS_UNIT_BOOLEAN", vstats_abi::Unit::BOOLEAN.0.into()),
        ("VSTATS_BASE_POW10", vstats_abi::Base::POW10.0.into()),
        ("VSTATS_BASE_POW2", vstats_abi::Base::POW2.0.into()),
        ("sizeof(struct vstats_vcpu_stats)", VCPU_STATS_SIZE.into()),
        (
            "sizeof(struct vstats_domain_stats)",
            DOMAIN_STATS_SIZE.into(),
        ),
        (
            "VSTATS_VCPU_W_RUNNING",
            word(vstats_abi::record::vcpu_off::RUNNING),
        ),
        (
            "VSTATS_VCPU_W_RUNNABLE",
            word(vstats_abi::record::vcpu_off::RUNNABLE),
        ),
        (
            "VSTATS_VCPU_W_BLOCKED",
            word(vstats_abi::record::vcpu_off::BLOCKED),
        ),
        (
            "VSTATS_VCPU_W_OFFLINE",
            word(vstats_abi::record::vcpu_off::OFFLINE),
        ),
        (
            "VSTATS_VCPU_W_RUNSTATE",
            word(vstats_abi::record::vcpu_off::RUNSTATE),
        ),
        (
            "VSTATS_VCPU_W_ENTRY",
            word(vstats_abi::record::vcpu_off::ENTRY),
        ),
        ("VSTATS_VCPU_STATS_SIZE", VCPU_STATS_SIZE.into()),
        (
            "VSTATS_RUNSTATE_RUNNING",
            vstats_abi::RunState::RUNNING.0 as i64,
        ),
        (
            "VSTATS_RUNSTATE_RUNNABLE",
            vstats_abi::RunState::RUNNABLE.0 as i64,
        ),
        (
            "VSTATS_RUNSTATE_BLOCKED",
            vstats_abi::RunState::BLOCKED.0 as i64,
        ),
        (
            "VSTATS_RUNSTATE_OFFLINE",
            vstats_abi::RunState::OFFLINE.0 as i64,
        ),
        (
            "VSTATS_VCPU_W_RUNSTATE_ENTRY",
            word(vstats_abi::record::vcpu_off::ENTRY),
        ),
        (
            "VSTATS_DOMAIN_W_VCPUS_ONLINE",
            word(vstats_abi::record::domain_off::VCPUS_ONLINE),
        ),
        (
            "VSTATS_DOMAIN_W_VCPUS_MAX",
            word(vstats_abi::record::domain_off::VCPUS_MAX),
        ),
        (
            "VSTATS_DOMAIN_W_UPTIME",
            word(vstats_abi::record::domain_off::UPTIME),
        ),
        (
            "VSTATS_VCPU_STD_DESC_COUNT",
            VCPU_STD_DESCRIPTORS.len() as i64,
        ),
        (
            "VSTATS_DOMAIN_STD_DESC_COUNT",
            DOMAIN_STD_DESCRIPTORS.len() as i64,
        ),
        ("VSTATS_OK", VSTATS_OK.into()),
        ("VSTATS_EAGAIN", VSTATS_EAGAIN.into()),
        ("VSTATS_EFAULT", VSTATS_EFAULT.into()),
        ("VSTATS_EBUSY", VSTATS_EBUSY.into()),
        ("VSTATS_EINVAL", VSTATS_EINVAL.into()),
        ("VSTATS_ENOSPC", VSTATS_ENOSPC.into()),
        ("VSTATS_ERANGE", VSTATS_ERANGE.into()),
        ("VSTATS_EPROTO", VSTATS_EPROTO.into()),
        ("VSTATS_EBADMSG", VSTATS_EBADMSG.into()),
        ("VSTATS_EOVERFLOW", VSTATS_EOVERFLOW.into()),
        ("VSTATS_ENOENT", VSTATS_ENOENT.into()),
        ("VSTATS_EIO", VSTATS_EIO.into()),
        ("VSTATS_E2BIG", VSTATS_E2BIG.into()),
        ("VSTATS_ENODATA", VSTATS_ENODATA.into()),
        ("VSTATS_ESTALE", VSTATS_ESTALE.into()),
        ("VSTATS_ENOTRECOVERABLE", VSTATS_ENOTRECOVERABLE.into()),
        (
            "sizeof(struct vstats_layout)",
            size_of::<VstatsLayout>() as i64,
        ),
        (
            "sizeof(struct vstats_table)",
            size_of::<VstatsTable>() as i64,
        ),
        (
            "sizeof(struct vstats_writer)",
            size_of::<VstatsWriter>() as i64,
        ),
        (
            "ALIGNOF(struct vstats_writer)",
            align_of::<VstatsWriter>() as i64,
        ),
    ];
    for (name, value) in want {
        assert_eq!(got.get(*name), Some(value), "{name}");
    }
    assert_eq!(got.len(), want.len(), "every printed line is checked");

    // The header is also valid C++.
    if have(
        "g++",
        "header_constants_and_layouts_match_the_rust_crates (C++ part)",
    ) {
        let o = std::process::Command::new("g++")
            .args(["-std=c++11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"])
            .args(["-fsyntax-only", "-x", "c++", "-I"])
            .arg(common::include_dir())
            .arg(c_source("header_check.c"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

/// A C producer publishes its table as a file through
/// `vstats_publication_*`: the Rust consumer reads it while it runs, with
/// the modes asked for, and closing removes the file and the directory.
#[test]
fn c_producer_publishes_a_file_safely() {
    use std::{
        io::{BufRead, BufReader, Write},
        os::unix::fs::PermissionsExt,
        process::{Command, Stdio},
    };

    if !have("gcc", "c_producer_publishes_a_file_safely") {
        return;
    }
    let dir = TempDir::new("publisher");
    let prog = compile(dir.path(), "publisher", &[c_source("publisher.c")], true);
    let vm = dir.path().join("root/vm1");
    let mut child = Command::new(&prog)
        .arg(&vm)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let Some(generation) = line.trim_end().strip_prefix("ok generation=") else {
        let _ = child.kill();
        let o = child.wait_with_output().unwrap();
        panic!("{line}{}", String::from_utf8_lossy(&o.stderr));
    };
    let generation: u64 = generation.parse().unwrap();
    let path = vm.join("vcpu");
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&vm), 0o750);
    assert_eq!(mode(&path), 0o640);
    assert_eq!(
        fs::read_dir(&vm).unwrap().count(),
        1,
        "no temporary file is left"
    );

    let bytes = fs::read(&path).unwrap();
    let info = validate(&bytes, bytes.len() as u64).unwrap();
    assert_eq!(first_nonzero_reserved(&bytes, &info), None);
    assert_eq!(info.generation(), generation);
    let table = Table::open(&path).unwrap();
    assert_eq!(table.nr_records(), 8);
    let custom = table.counter("c_custom_events").unwrap();
    let mut snap = Snapshot::new(&table);
    assert_eq!(table.snapshot(&mut snap), 0);
    for i in 0..8u32 {
        let r = snap.record(i).unwrap();
        let b = 1000 * u64::from(i);
        assert_eq!(r.running(), Some(b + 1), "record {i}");
        assert_eq!(r.runnable(), Some(b + 2), "record {i}");
        assert_eq!(r.blocked(), Some(b + 3), "record {i}");
        assert_eq!(r.offline(), Some(b + 4), "record {i}");
        assert_eq!(r.get(custom), Some(u64::from(i)), "record {i}");
        let at = info.record_offset(i).unwrap() as usize;
        let word = |off: u32| {
            let at = at + off as usize;
            u64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap())
        };
        let state = word(vstats_abi::record::vcpu_off::RUNSTATE);
        assert_eq!(state, vstats_abi::RunState::OFFLINE.0, "record {i}");
        assert_eq!(
            word(vstats_abi::record::vcpu_off::ENTRY),
            b + 5,
            "record {i}"
        );
    }
    drop(table);

    child.stdin.take().unwrap().write_all(b"close\n").unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success() && line == "closed\n", "{line}");
    assert!(!path.exists(), "the table is removed");
    assert!(!vm.exists(), "the directory it created is removed");
    assert!(dir.path().join("root").exists(), "its parent stays");
}
