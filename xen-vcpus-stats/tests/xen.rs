//! The Xen backend, through the stand-in library: `tests/standin/
//! xenstandin.c`, compiled here with gcc, exports the symbols of
//! libxenforeignmemory and libxenstore over files in a directory. No Xen
//! host was available; this is the only way the Xen path was tested.

mod common;

use std::{path::Path, process::Command};

use common::{assert_error, json_lines, run_while, standin, stdout, tool, Scratch};
use vstats_abi::{
    desc::Descriptor,
    layout::{Layout, LayoutParams},
    record::{VCPU_STATS_SIZE_R2, VCPU_STD_DESCRIPTORS},
    VCPU_STATS_MAGIC,
};
use vstats_producer::synth::Synth;
use vstats_producer::{shm::ShmTable, TableSpec};

/// The tool pointed at the stand-in serving `dir`, logging to `dir/log`.
fn xen_tool(dir: &Path, with_size: bool) -> Command {
    let mut c = tool();
    c.env("VSTATS_XENFOREIGNMEMORY_LIB", standin(with_size))
        .env("VSTATS_XENSTORE_LIB", standin(with_size))
        .env("VSTATS_XEN_STANDIN_DIR", dir)
        .env("VSTATS_XEN_STANDIN_LOG", dir.join("log"));
    c
}

/// Publishes a synthetic domain `domid` (its tables as resources 3-0 and
/// 3-1, named `name`).
fn domain(xen: &Path, domid: u16, vcpus: u32, name: &str) -> Synth {
    let d = xen.join(domid.to_string());
    let synth = Synth::new(&d, vcpus).unwrap();
    std::os::unix::fs::symlink("vcpu", d.join("3-0")).unwrap();
    std::os::unix::fs::symlink("domain", d.join("3-1")).unwrap();
    std::fs::write(d.join("name"), format!("{name}\n")).unwrap();
    synth
}

fn log(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn maps_read_only_samples_and_unmaps() {
    let s = Scratch::new("xen-map");
    let mut synth = domain(s.path(), 5, 3, "guest5");
    let mut c = xen_tool(s.path(), true);
    c.args([
        "--domid",
        "5",
        "--interval",
        "0.1",
        "--count",
        "2",
        "--format",
        "json",
    ]);
    let o = run_while(c, || synth.update());
    assert!(o.status.success(), "{}", common::stderr(&o));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 2);
    for l in &lines {
        assert_eq!(l["vm"], "guest5", "the name comes from xenstore");
        assert_eq!(l["domid"], 5);
        assert_eq!(l["source"], "domain 5");
        assert_eq!(l["vcpu_slots"], 3);
        for (i, v) in l["vcpus"].as_array().unwrap().iter().enumerate() {
            assert_eq!(v["status"], "ok");
            let pct = f64::from(20 + (15 * i as u32) % 60) / 100.0;
            assert!(
                (v["runstate"]["running"].as_f64().unwrap() - pct).abs() < 1e-6,
                "{v}"
            );
        }
        assert_eq!(l["domain"]["values"]["vcpus_max"], 3);
    }
    // Read-only mappings, each undone, the handle closed, the library's
    // logging replaced by ours.
    let log = log(s.path());
    assert_eq!(
        log.first().map(String::as_str),
        Some("open logger=set flags=0")
    );
    let maps: Vec<&String> = log.iter().filter(|l| l.starts_with("map ")).collect();
    assert_eq!(maps.len(), 2, "{log:?}");
    assert!(
        maps[0].starts_with("map domid=5 type=3 id=0 frame=0 nr_frames=1 prot=1 flags=0"),
        "{log:?}"
    );
    assert!(maps[1].starts_with("map domid=5 type=3 id=1 "), "{log:?}");
    assert!(
        maps.iter().all(|m| m.ends_with("prot=1 flags=0")),
        "PROT_READ only: {log:?}"
    );
    assert_eq!(
        log.iter().filter(|l| l.starts_with("unmap ")).count(),
        2,
        "{log:?}"
    );
    assert_eq!(log.last().map(String::as_str), Some("close"));
    synth.remove().unwrap();
}

/// A table of several frames whose head alone is larger than a frame:
/// without `xenforeignmemory_resource_size`, the backend maps one frame,
/// learns the head's size, then the records' extent, and remaps; with it,
/// it maps the right size at once.
#[test]
fn multi_frame_tables_are_remapped_to_size() {
    let s = Scratch::new("xen-big");
    let d = s.join("9");
    std::fs::create_dir(&d).unwrap();
    let mut descs = VCPU_STD_DESCRIPTORS.to_vec();
    for i in 0..100u32 {
        descs.push(
            Descriptor::builder(&format!("c{i}"))
                .at(VCPU_STATS_SIZE_R2 + 8 * i)
                .unwrap(),
        );
    }
    let layout = Layout::compute(&LayoutParams {
        record_size: VCPU_STATS_SIZE_R2 + 800,
        desc_count: descs.len() as u32,
        ..LayoutParams::vcpu_r2(8)
    })
    .unwrap();
    assert!(layout.offset > 4096 && layout.frames == 4, "{layout:?}");
    let spec = TableSpec {
        magic: VCPU_STATS_MAGIC,
        layout,
        descriptors: &descs,
        generation: 3,
    };
    let mut t = ShmTable::create(&d.join("3-0"), &spec).unwrap();
    {
        let (_, writers) = t.split();
        for mut w in writers {
            let i = w.index();
            w.update(|u| {
                u.set(0, 10);
                u.set(4 + 42, 4200 + u64::from(i));
            });
        }
    }
    for with_size in [false, true] {
        let _ = std::fs::remove_file(s.join("log"));
        let o = xen_tool(s.path(), with_size)
            .args([
                "--domid",
                "9",
                "--interval",
                "0.02",
                "--count",
                "1",
                "--format",
                "json",
                "--names",
                "c42",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", common::stderr(&o));
        let l = &json_lines(&o)[0];
        assert_eq!(l["vcpus"][7]["values"]["c42"], 4207);
        assert_eq!(
            l["domain"],
            serde_json::Value::Null,
            "no 3-1: no domain table"
        );
        let frames: Vec<String> = log(s.path())
            .iter()
            .filter(|l| l.starts_with("map ") && l.contains("id=0"))
            .map(|l| {
                l.split_whitespace()
                    .find(|w| w.starts_with("nr_frames="))
                    .unwrap()
                    .to_owned()
            })
            .collect();
        if with_size {
            assert_eq!(frames, ["nr_frames=4"]);
        } else {
            assert_eq!(frames, ["nr_frames=1", "nr_frames=2", "nr_frames=4"]);
        }
        // Every mapping of 3-0 (the probes too) is undone; 3-1 never mapped.
        let log = log(s.path());
        let unmaps = log.iter().filter(|l| l.starts_with("unmap ")).count();
        assert_eq!(unmaps, frames.len(), "{log:?}");
        assert_eq!(log.last().map(String::as_str), Some("close"));
    }
    drop(t);
}

#[test]
fn errors_of_the_xen_path() {
    let s = Scratch::new("xen-err");
    std::fs::create_dir(s.join("4")).unwrap();
    let o = xen_tool(s.path(), true)
        .args(["--domid", "4", "--count", "1"])
        .output()
        .unwrap();
    assert_error(
        &o,
        1,
        &[
            "domain 4: the hypervisor does not offer the vCPU stats table resource \
             (XENMEM_resource_stats_table id 0, EOPNOTSUPP)",
        ],
    );
    std::fs::create_dir(s.join("6")).unwrap();
    std::fs::write(s.join("6/3-0"), vec![0u8; 4096]).unwrap();
    let o = xen_tool(s.path(), false)
        .args(["schema", "--domid", "6"])
        .output()
        .unwrap();
    assert_error(
        &o,
        3,
        &[
            "domain 6: vCPU stats table: not a valid stats table: R2",
            "[rule R2",
        ],
    );
    let o = xen_tool(s.path(), true)
        .args(["--domid", "65535", "--count", "1"])
        .output()
        .unwrap();
    assert_error(&o, 1, &["domain 65535: no such domain"]);
    let o = tool().args(["--domid", "70000"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "domids are 16-bit");
}

#[test]
fn list_and_schema_through_xen() {
    let s = Scratch::new("xen-list");
    let root = Scratch::new("xen-list-root");
    let a = domain(s.path(), 1, 2, "web");
    let b = domain(s.path(), 12, 4, "db");
    std::fs::create_dir(s.join("3")).unwrap(); // a domain without tables
    let o = xen_tool(s.path(), true)
        .args(["list", "--format", "json"])
        .env("VSTATS_ROOT", root.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    let l = json_lines(&o);
    let got: Vec<(u64, &str, Option<u64>)> = l
        .iter()
        .map(|e| {
            (
                e["domid"].as_u64().unwrap(),
                e["name"].as_str().unwrap(),
                e["vcpus"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, "web", Some(2)),
            (3, "domain-3", None),
            (12, "db", Some(4))
        ]
    );
    assert!(l.iter().all(|e| e["backend"] == "xen"));
    assert!(l[1]["error"]
        .as_str()
        .unwrap()
        .contains("the hypervisor does not offer the vCPU stats table resource"));
    let o = xen_tool(s.path(), true)
        .args(["schema", "--domid", "12"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let t = stdout(&o);
    assert!(t.starts_with("vm db  (domain 12)"), "{t}");
    assert!(
        t.contains("vCPU table: domain 12 vCPU stats table  (4 slots, 11 counters"),
        "{t}"
    );
    drop((a, b));
}

/// What the real libxenforeignmemory answers on a hypervisor without stats
/// tables (Xen 4.17: the size query "succeeds" with -EOPNOTSUPP as its
/// frame count; Xen 4.18 and later: EINVAL; mapping: EOPNOTSUPP), and on
/// a library without the size query: every command says, in one line, that
/// the hypervisor does not offer the table. No size, no advice.
#[test]
fn a_hypervisor_without_stats_tables() {
    let s = Scratch::new("xen-none");
    std::fs::create_dir(s.join("1")).unwrap();
    std::fs::write(s.join("1/name"), "plain\n").unwrap();
    for (with_size, xen, errno) in [
        (true, "4.17", "EOPNOTSUPP"),
        (true, "4.18", "EINVAL"),
        (false, "4.17", "EOPNOTSUPP"),
    ] {
        for args in [
            &["sample", "--domid", "1", "--count", "1"][..],
            &["check", "--domid", "1"],
            &["schema", "--domid", "1"],
        ] {
            let o = xen_tool(s.path(), with_size)
                .args(args)
                .env("VSTATS_XEN_STANDIN_XEN", xen)
                .output()
                .unwrap();
            let line = assert_error(
                &o,
                1,
                &[
                    "domain 1: the hypervisor does not offer the vCPU stats table resource",
                    errno,
                ],
            );
            for bad in ["bytes", "frames", "run as root"] {
                assert!(!line.contains(bad), "{args:?} {xen}: {line}");
            }
            assert_eq!(
                line.matches("does not offer").count(),
                1,
                "said once, not repeated by an error chain: {line}"
            );
        }
        let o = xen_tool(s.path(), with_size)
            .args(["list", "--format", "json"])
            .env("VSTATS_XEN_STANDIN_XEN", xen)
            .env("VSTATS_ROOT", s.join("no-root"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", common::stderr(&o));
        let l = json_lines(&o);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0]["name"], "plain");
        assert!(
            l[0]["error"]
                .as_str()
                .unwrap()
                .starts_with("domain 1: the hypervisor does not offer the vCPU stats table"),
            "{}",
            l[0]
        );
    }
}

/// Refusals, by errno, as Xen and privcmd mean them.
#[test]
fn refusals_are_told_apart() {
    let s = Scratch::new("xen-refuse");
    let one = |domid: &str, with_size: bool| {
        xen_tool(s.path(), with_size)
            .args(["--domid", domid, "--count", "1"])
            .output()
            .unwrap()
    };
    // The caller's own domain (Xen refuses it with EPERM): this host is
    // not Xen's control domain, so EPERM means it is not privileged.
    std::fs::create_dir(s.join("0")).unwrap();
    std::fs::write(s.join("0/self"), "").unwrap();
    let line = assert_error(
        &one("0", true),
        1,
        &[
            "domain 0: Xen refused to map its vCPU stats table: only the control domain or \
             the domain's device model may map it (EPERM)",
        ],
    );
    assert!(!line.contains("run as root"), "{line}");
    let cases = [
        (
            "13",
            "Xen refused to map its vCPU stats table: Xen maps resources only into PV \
             domains and the hardware domain (EACCES)",
        ),
        (
            "2",
            "the hypervisor does not offer the vCPU stats table resource \
             (XENMEM_resource_stats_table id 0, ENOENT)",
        ),
        (
            "38",
            "the hypervisor does not offer the vCPU stats table resource \
             (XENMEM_resource_stats_table id 0, ENOSYS)",
        ),
        (
            "22",
            "the hypervisor does not offer the vCPU stats table resource \
             (XENMEM_resource_stats_table id 0, EINVAL)",
        ),
        ("3", "no such domain"),
        (
            "12",
            "asking Xen the size of its vCPU stats table failed: Cannot allocate memory",
        ),
    ];
    for (i, (errno, want)) in cases.iter().enumerate() {
        let d = format!("{}", 10 + i);
        std::fs::create_dir(s.join(&d)).unwrap();
        std::fs::write(s.join(&d).join("errno"), errno).unwrap();
        assert_error(&one(&d, true), 1, &[&format!("domain {d}: {want}")]);
    }
    // Without the size query, the one-frame probe stands in for it: EINVAL
    // there is no table either; other errnos fail the mapping.
    assert_error(
        &one("13", false),
        1,
        &["domain 13: the hypervisor does not offer the vCPU stats table resource"],
    );
    assert_error(
        &one("15", false),
        1,
        &["domain 15: mapping 1 frames of its vCPU stats table failed: Cannot allocate memory"],
    );
}

/// Sizes are bounded before they are trusted: an empty resource is none;
/// a huge one is refused before anything is mapped.
#[test]
fn sizes_are_bounded() {
    let s = Scratch::new("xen-size");
    std::fs::create_dir(s.join("2")).unwrap();
    std::fs::write(s.join("2/3-0"), "").unwrap();
    assert_error(
        &xen_tool(s.path(), true)
            .args(["--domid", "2", "--count", "1"])
            .output()
            .unwrap(),
        1,
        &[
            "domain 2: the hypervisor does not offer the vCPU stats table resource",
            "EINVAL",
        ],
    );
    std::fs::create_dir(s.join("5")).unwrap();
    let f = std::fs::File::create(s.join("5/3-0")).unwrap();
    f.set_len(2 << 30).unwrap();
    assert_error(
        &xen_tool(s.path(), true)
            .args(["--domid", "5", "--count", "1"])
            .output()
            .unwrap(),
        1,
        &["domain 5: vCPU stats table claims 2147483648 bytes, more than 262144 frames"],
    );
    assert!(
        !log(s.path()).iter().any(|l| l.starts_with("map domid=5")),
        "nothing mapped: {:?}",
        log(s.path())
    );
}

/// A library that is missing, one that exists but does not load, and one
/// without the symbols, each with its own message.
#[test]
fn libraries_that_do_not_serve() {
    let s = Scratch::new("xen-lib");
    let with = |lib: &str| {
        tool()
            .args(["--domid", "1", "--count", "1"])
            .env("VSTATS_XENFOREIGNMEMORY_LIB", lib)
            .output()
            .unwrap()
    };
    assert_error(
        &with("libvstats-no-such-library.so.1"),
        1,
        &["Xen backend unavailable: libvstats-no-such-library.so.1 not found (not a Xen host"],
    );
    let junk = s.join("libjunk.so");
    std::fs::write(&junk, "not a library").unwrap();
    let line = assert_error(
        &with(junk.to_str().unwrap()),
        1,
        &[&format!(
            "Xen backend unavailable: {} exists but cannot be loaded",
            junk.display()
        )],
    );
    assert!(!line.contains("not a Xen host"), "{line}");
    let libc_path = "libc.so.6";
    assert_error(
        &with(libc_path),
        1,
        &["libc.so.6: no symbol xenforeignmemory_open (not the library the Xen backend needs)"],
    );
}

/// The TSC, as the tool reads it (`rdtsc`).
#[cfg(target_arch = "x86_64")]
fn rdtsc() -> u64 {
    // SAFETY: rdtsc exists on every x86-64 CPU and touches no memory.
    #[allow(unused_unsafe)]
    unsafe {
        std::arch::x86_64::_rdtsc()
    }
}

/// A time frame (resource 3-2, `struct xen_stats_time`) stamped at TSC
/// `tsc` with Xen system time `system_time`, half a ns per tick, in a
/// 4 KiB frame.
fn time_frame(magic: u32, tsc: u64, system_time: u64) -> Vec<u8> {
    use vstats_abi::header::{time_off, STATS_TIME_SIZE};
    let mut f = vec![0u8; 4096];
    let mut put = |at: usize, b: &[u8]| f[at..at + b.len()].copy_from_slice(b);
    put(time_off::MAGIC, &magic.to_ne_bytes());
    put(time_off::SIZE, &STATS_TIME_SIZE.to_ne_bytes());
    put(time_off::TIME_VERSION, &2u32.to_ne_bytes());
    put(time_off::TSC_TIMESTAMP, &tsc.to_ne_bytes());
    put(time_off::SYSTEM_TIME, &system_time.to_ne_bytes());
    put(time_off::TSC_TO_SYSTEM_MUL, &(1u32 << 31).to_ne_bytes());
    f
}

/// A clock-2 table (Xen system time) whose domain has a time frame: the
/// tool maps the frame (resource id 2, read-only) and brings the times up
/// to date with it; without a frame, with a stale one or a bad one it
/// falls back to dom0's `shared_info` (which this host has not: no Xen)
/// and says once that the times are as of the last change.
#[cfg(target_arch = "x86_64")]
#[test]
fn the_time_frame_is_the_clock_of_xen_tables() {
    use vstats_abi::header::{CLOCK_XEN_SYSTEM, R3_HEADER_OFFSET, STATS_TIME_MAGIC};
    let s = Scratch::new("xen-timeframe");
    let d = s.join("6");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("name"), "timed\n").unwrap();
    // vCPU 0 running since Xen time 5 s, 1000 ns accrued there before.
    let entry = 5_000_000_000;
    let mut b = vstats_producer::synth::frozen_r3_image(
        CLOCK_XEN_SYSTEM,
        2,
        &[([1000, 10, 20, 0], 0, entry)],
    )
    .unwrap();
    let at = R3_HEADER_OFFSET as usize;
    assert_eq!(b[at..at + 4], CLOCK_XEN_SYSTEM.to_ne_bytes());
    std::fs::write(d.join("3-0"), &b).unwrap();
    b.clear();
    let sample = |with_size: bool| {
        let _ = std::fs::remove_file(s.join("log"));
        let o = xen_tool(s.path(), with_size)
            .args(["sample", "--domid", "6", "--interval", "0.05"])
            .args(["--count", "2", "--format", "json"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", common::stderr(&o));
        (json_lines(&o), common::stderr(&o))
    };
    for with_size in [true, false] {
        // A live frame, stamped now at the entry time: the running time
        // grows by the frame's clock.
        let frame = time_frame(STATS_TIME_MAGIC, rdtsc(), entry);
        std::fs::write(d.join("3-2"), &frame).unwrap();
        let (lines, err) = sample(with_size);
        assert!(!err.contains("cannot be read"), "{err}");
        let mut last = 1000;
        for l in &lines {
            let v = &l["vcpus"][0];
            assert_eq!(v["extrapolated"], true, "{v}");
            assert_eq!(v["share_base"], "clock", "{v}");
            let running = v["runstate_ns"]["running"].as_u64().unwrap();
            assert!(running > last, "{v}");
            last = running;
        }
        assert!(
            lines[1]["vcpus"][0]["runstate"]["running"]
                .as_f64()
                .unwrap()
                >= 0.99,
            "{}",
            lines[1]
        );
        let log = log(s.path());
        let frames: Vec<&String> = log
            .iter()
            .filter(|l| l.starts_with("map domid=6 type=3 id=2 "))
            .collect();
        assert!(!frames.is_empty(), "{log:?}");
        assert!(
            frames
                .iter()
                .all(|m| m.contains("nr_frames=1 ") && m.ends_with("prot=1 flags=0")),
            "one frame, read-only: {log:?}"
        );
        // Refused frames: the table keeps the process's clock (here none)
        // and the tool says so once.
        for (what, frame) in [
            (
                "stale",
                time_frame(STATS_TIME_MAGIC, rdtsc() - (1 << 40), entry),
            ),
            ("unpublished", time_frame(0, rdtsc(), entry)),
            ("absent", Vec::new()),
        ] {
            match frame.is_empty() {
                true => std::fs::remove_file(d.join("3-2")).unwrap(),
                false => std::fs::write(d.join("3-2"), &frame).unwrap(),
            }
            let (lines, err) = sample(with_size);
            assert_eq!(
                err.matches("Xen system time cannot be read").count(),
                1,
                "{what}: {err}"
            );
            if what == "stale" {
                assert!(err.contains("Xen's time frame of domain 6"), "{err}");
            }
            for l in &lines {
                let v = &l["vcpus"][0];
                assert_eq!(v["extrapolated"], false, "{what}: {v}");
                assert_eq!(v["runstate_ns"]["running"], 1000, "{what}: {v}");
            }
        }
    }
}
