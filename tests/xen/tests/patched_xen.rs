//! The Xen backend against a Xen 4.17 with the vstats series (`xen/`:
//! `build.sh` and `patches/*.patch`), booted under QEMU with TCG: the
//! tables and the time frame as the hypervisor publishes them, read in dom0
//! through Debian's real libxenforeignmemory.
//!
//! The hypervisor and the series' tools are built by the series' own
//! script, `xen/build.sh --source debian` (Debian's source package of the
//! upstream commit the series is written against; the script installs its
//! build dependencies), and cached under the target directory by the
//! SHA-256 of `build.sh` and the patches: rebuilt only when they change. The
//! domU has two vCPUs: vCPU 0 spins, vCPU 1 has nothing to run and blocks;
//! and 68 more that exist but stay offline (`maxvcpus = 70`), so that its
//! vCPU table spans two frames.
//! dom0 runs `dom0/patched.sh`: `xl vcpu-list`, `xen-vcpus-stats sample`,
//! `check` and `top`, the probe's reading of the time frame, and the
//! series' own C programs (`test-vcpu-stats`: its selftest and the live
//! domain; the `xen-vcpus-stats` reader of `tools/misc`).
//!
//! Skipped, with the reason, when QEMU, the Debian packages or the series
//! are missing; with `VSTATS_XEN_REQUIRED=1` (set by `scripts/test` once
//! `tests/xen/install.sh` succeeded) that fails instead.
//! `VSTATS_SKIP_XEN=1` skips it; `VSTATS_XEN_SERIES=DIR` takes the series
//! from DIR. A boot that does not finish is retried (three boots at most).

use std::{collections::BTreeMap, time::Instant};

use serde_json::Value;
use vstats_xen_tests::{
    boot_timeout, boot_until_complete, build_initrd_with, build_payload_with, patched_image,
    series_dir, should_run, tail, target_dir, Report, Run, BOOTS,
};

const LOG_TAIL: usize = 120;
/// The domU's vCPUs: 0 spins, 1 blocks.
const DOMU_VCPUS: u32 = 2;
/// The domU's maximum (xl's `maxvcpus`): vCPUs 2 to 69 exist in Xen and
/// stay offline. 70 records need a second frame (62 fit in frame 0), so
/// the tool maps and reads a table larger than a frame.
const DOMU_MAX_VCPUS: u32 = 70;

/// How far the table's running time may lie outside the interval that the
/// two `xl vcpu-list` around it bracket, in seconds: xl prints tenths
/// (0.05 s of rounding each side), and the table's time is brought up to
/// date with the time frame's extrapolation of Xen's clock rather than
/// with `NOW()` itself.
const XL_TOLERANCE_S: f64 = 0.25;

/// Every command `dom0/patched.sh` runs.
const RUNS: &[&str] = &[
    "libs",
    "xl-vcpu-list-before",
    "sample",
    "check",
    "top",
    "xl-vcpu-list-after",
    "cmp-xl-1",
    "cmp-sample",
    "cmp-xl-2",
    "clock",
    "probe",
    "c-selftest",
    "c-test",
    "c-reader",
];

/// `xl vcpu-list DOMID`'s Time(s) column by vCPU:
/// `Name ID VCPU CPU State Time(s) Affinity...`.
fn xl_times(run: &Run, domid: u16) -> BTreeMap<u32, f64> {
    run.stdout
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.get(1)?.parse::<u16>().ok()? != domid {
                return None;
            }
            Some((f.get(2)?.parse().ok()?, f.get(5)?.parse().ok()?))
        })
        .collect()
}

/// The JSON lines a command printed.
fn json_lines(run: &Run, ctx: &dyn Fn(&str) -> String) -> Vec<Value> {
    run.stdout
        .iter()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{}", ctx(&format!("{e}: {l}"))))
        })
        .collect()
}

#[test]
fn patched_xen_tables_and_time_frame() {
    let t0 = Instant::now();
    let series = series_dir();
    let mut extra = Vec::new();
    if !series.join("build.sh").is_file() {
        extra.push(format!(
            "no vstats Xen series at {} (build.sh and patches/)",
            series.display()
        ));
    }
    if let Err(why) = should_run(extra) {
        eprintln!("patched Xen test skipped: {why}");
        return;
    }
    let target = target_dir();
    let img = patched_image(&series, &target.join("xen-patched")).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "patched Xen: {} ({}, key {})",
        img.image.display(),
        if img.built {
            format!("built in {:.1} s", img.elapsed.as_secs_f64())
        } else {
            "cached".to_owned()
        },
        &img.key[..16]
    );
    let work = target.join("xen-boot-patched");
    let payload = work.join("payload");
    build_payload_with(&target, &payload, "patched.sh").unwrap_or_else(|e| panic!("{e}"));
    // The series' own C programs, beside the project's tool.
    for tool in &img.tools {
        let name = tool.file_name().unwrap();
        std::fs::copy(tool, payload.join(name))
            .unwrap_or_else(|e| panic!("copying {}: {e}", tool.display()));
    }
    build_initrd_with(&work, &payload, DOMU_VCPUS, DOMU_MAX_VCPUS)
        .unwrap_or_else(|e| panic!("{e}"));
    let (r, boot) = boot_until_complete(
        &work,
        Some(&img.image),
        BOOTS,
        boot_timeout(),
        LOG_TAIL,
        |r: &Report| r.complete(RUNS),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "patched Xen: boot {:.1} s, whole test so far {:.1} s",
        boot.elapsed.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    let log = boot.log;
    let ctx = |what: &str| format!("{what}\nserial log tail:\n{}", tail(&log, LOG_TAIL));
    let show = |name: &str| {
        let run = &r.runs[name];
        eprintln!("--- dom0: {name} (rc {:?})", run.rc);
        for l in run.stdout.iter().chain(&run.stderr) {
            eprintln!("    {l}");
        }
    };
    for name in RUNS {
        show(name);
    }

    // dom0 privileged; the domU up with its two vCPUs.
    assert_eq!(r.step("capabilities"), Some("control_d"), "{}", ctx("dom0"));
    let console = r.step("domU console:").unwrap_or_default();
    assert!(
        console.ends_with(&format!("{DOMU_VCPUS} vCPUs")),
        "{}",
        ctx(&format!("domU console: {console}"))
    );
    let domu: u16 = r
        .step("domU id")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{}", ctx("no domU id")));
    assert_ne!(domu, 0);

    // Debian's libraries are the only ones in dom0: the tool's
    // libxenforeignmemory.so.1 is the real one.
    let libs = &r.runs["libs"];
    assert!(
        libs.stdout
            .iter()
            .any(|l| l.starts_with("libxenforeignmemory.so.1")),
        "{}",
        ctx(&format!("{libs:?}"))
    );

    // The time frame as a program sees it: mapped, fresh, and the clock of
    // the vCPU table (clock 2), which moves.
    let clock = &r.runs["clock"];
    assert_eq!(clock.rc, Some(0), "{}", ctx(&format!("{clock:?}")));
    let line = |key: &str| {
        clock
            .stdout
            .iter()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{}", ctx(&format!("no {key} in {clock:?}"))))
    };
    assert_eq!(line("library"), "libxenforeignmemory.so.1");
    assert_eq!(line("time-frame"), format!("{domu} Ok"));
    let frame_now: u64 = line("frame-now")
        .strip_prefix(&format!("{domu} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{}", ctx("the time frame gave no time")));
    assert!(frame_now > 0);
    assert_eq!(
        line("table-clock"),
        format!("{domu} 2 Xen's time frame of domain {domu}")
    );
    let now: Vec<u64> = line("now")
        .split_whitespace()
        .skip(1)
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{}", ctx("clock unreadable")))
        })
        .collect();
    assert!(
        now.len() == 2 && now[0] >= frame_now && now[1] > now[0],
        "{}",
        ctx(&format!("the table's clock does not move: {now:?}"))
    );
    let probe = &r.runs["probe"];
    assert_eq!(probe.rc, Some(0), "{}", ctx(&format!("{probe:?}")));
    for what in ["vCPU", "domain", "both", "time-frame"] {
        let want = format!("variant {what} {domu} Ok");
        assert!(
            probe.stdout.contains(&want),
            "{}",
            ctx(&format!("{want}: {probe:?}"))
        );
    }
    assert!(
        probe
            .stdout
            .contains(&"variant vCPU 0 OwnDomain".to_owned()),
        "{probe:?}"
    );

    // sample: the shares of the up-to-date times, read with the time frame
    // only (dom0's shared_info route was disabled for the run: no
    // libxenctrl), vCPU 0 mostly running, vCPU 1 mostly blocked.
    let sample = &r.runs["sample"];
    assert_eq!(sample.rc, Some(0), "{}", ctx(&format!("{sample:?}")));
    assert!(
        sample.stderr.iter().all(|l| !l.contains("cannot be read")),
        "{}",
        ctx(&format!("{sample:?}"))
    );
    let lines = json_lines(sample, &ctx);
    assert_eq!(lines.len(), 3, "{}", ctx(&format!("{sample:?}")));
    // The mean of each vCPU's shares over the three samples: vCPU 1's
    // kernel wakes up now and then (under TCG a wake-up costs), and vCPU 0
    // waits for a physical CPU while dom0 runs, so a single sample may
    // stray; the mean over six seconds does not.
    let mut mean = [[0.0f64; 4]; 2];
    for l in &lines {
        assert_eq!(l["domid"], domu, "{l}");
        assert_eq!(l["vcpu_slots"], DOMU_MAX_VCPUS, "{l}");
        let v = l["vcpus"].as_array().unwrap();
        assert_eq!(v.len(), DOMU_MAX_VCPUS as usize, "{l}");
        // The vCPUs that exist but are down: offline, up to date, in both
        // frames (the last ones live in frame 1).
        for x in &v[DOMU_VCPUS as usize..] {
            assert_eq!(x["status"], "ok", "{x}");
            assert_eq!(x["current_runstate"], "offline", "{x}");
            assert_eq!(x["extrapolated"], true, "{x}");
        }
        for (i, x) in v.iter().take(DOMU_VCPUS as usize).enumerate() {
            assert_eq!(x["status"], "ok", "{x}");
            assert_eq!(x["extrapolated"], true, "up to date: {x}");
            assert_eq!(x["share_base"], "clock", "shares over the table clock: {x}");
            for (k, s) in ["running", "runnable", "blocked", "offline"]
                .iter()
                .enumerate()
            {
                let share = x["runstate"][s]
                    .as_f64()
                    .unwrap_or_else(|| panic!("no {s} share: {x}"));
                mean[i][k] += share / lines.len() as f64;
            }
        }
        // The spinning vCPU never blocks.
        let blocked0 = v[0]["runstate"]["blocked"].as_f64().unwrap();
        assert!(blocked0 < 0.1, "vCPU 0 spins: {l}");
        assert!(
            ["running", "runnable"].contains(&v[0]["current_runstate"].as_str().unwrap_or("")),
            "{l}"
        );
    }
    eprintln!(
        "mean shares (running, runnable, blocked, offline): vCPU 0 {:.3?}, vCPU 1 {:.3?}",
        mean[0], mean[1]
    );
    assert!(mean[0][0] > 0.5, "vCPU 0 mostly running: {mean:?}");
    assert!(mean[1][2] > 0.5, "vCPU 1 mostly blocked: {mean:?}");
    assert!(mean[1][0] < mean[0][0], "{mean:?}");

    // check: every rule holds.
    let check = &r.runs["check"];
    assert_eq!(check.rc, Some(0), "{}", ctx(&format!("{check:?}")));
    assert!(
        check.stdout.iter().any(|l| l == "result: PASS"),
        "{}",
        ctx(&format!("{check:?}"))
    );
    assert!(
        check.stdout.iter().all(|l| !l.contains("FAIL")),
        "{check:?}"
    );
    // The rules that need "now" in Xen's time (P11: no entry time in the
    // future; D10: the up-to-date times grow by at most the elapsed time)
    // are checked through the domain's time frame, not skipped.
    for rule in ["P11", "D10"] {
        assert!(
            check.stdout.iter().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.first() == Some(&"PASS") && f.get(1) == Some(&rule)
            }),
            "{rule} was not checked: {}",
            ctx(&format!("{check:?}"))
        );
    }

    // The series' own programs in dom0, with Debian's libraries: the
    // invariant test's selftest catches every broken input, the test
    // passes on the live domain's tables, and the reader prints every
    // vCPU, the last ones (in frame 1) offline.
    let c = |name: &str| {
        let run = &r.runs[name];
        assert_eq!(run.rc, Some(0), "{}", ctx(&format!("{name}: {run:?}")));
        run
    };
    let selftest = c("c-selftest");
    assert!(
        selftest
            .stdout
            .iter()
            .any(|l| l == "selftest: every broken input caught"),
        "{selftest:?}"
    );
    let test = c("c-test");
    assert!(
        test.stdout.iter().all(|l| !l.starts_with("FAIL")),
        "{test:?}"
    );
    assert!(
        test.stdout
            .iter()
            .any(|l| l.contains(&format!("samples of {DOMU_MAX_VCPUS} records"))),
        "{test:?}"
    );
    let reader = c("c-reader");
    let last = format!("vcpu{}", DOMU_MAX_VCPUS - 1);
    let rows = |id: &str| {
        reader
            .stdout
            .iter()
            .filter(|l| l.split_whitespace().next() == Some(id))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(rows("vcpu0").len(), 3, "{reader:?}");
    assert!(
        rows(&last).len() == 3 && rows(&last).iter().all(|l| l.contains("offline")),
        "{reader:?}"
    );

    // top: the domU's row.
    let top = &r.runs["top"];
    assert_eq!(top.rc, Some(0), "{}", ctx(&format!("{top:?}")));
    // NAME ID VCPU CPU% RDY% BLK% STATE ...: VCPU counts the table's slots
    // (70, as xentop counts up to the highest vCPU id); CPU% and BLK% are
    // sums over the vCPUs (the offline ones add to neither). In one of the
    // two frames at least, the spinning vCPU shows in CPU% and the blocked
    // one in BLK%.
    let rows: Vec<Vec<&str>> = top
        .stdout
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.first() == Some(&"vstats-busy"))
        .collect();
    assert_eq!(rows.len(), 2, "{}", ctx(&format!("{top:?}")));
    let col = |f: &Vec<&str>, i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    assert!(
        rows.iter()
            .all(|f| f.get(2) == Some(&DOMU_MAX_VCPUS.to_string().as_str())
                && f.get(6) == Some(&"live")),
        "{top:?}"
    );
    assert!(
        rows.iter()
            .any(|f| col(f, 3).is_some_and(|c| c > 50.0) && col(f, 5).is_some_and(|b| b > 50.0)),
        "{top:?}"
    );

    // xl and the table agree on each vCPU's running time: the table's,
    // read between two `xl vcpu-list`, lies between their times.
    let (xl1, xl2) = (
        xl_times(&r.runs["cmp-xl-1"], domu),
        xl_times(&r.runs["cmp-xl-2"], domu),
    );
    let cmp = json_lines(&r.runs["cmp-sample"], &ctx);
    assert_eq!(cmp.len(), 1, "{}", ctx("cmp-sample"));
    for vcpu in 0..DOMU_VCPUS {
        let (Some(&a), Some(&b)) = (xl1.get(&vcpu), xl2.get(&vcpu)) else {
            panic!("{}", ctx(&format!("xl vcpu-list lacks vCPU {vcpu}")));
        };
        let v = &cmp[0]["vcpus"][vcpu as usize];
        assert_eq!(v["extrapolated"], true, "{v}");
        let table = v["runstate_ns"]["running"].as_u64().unwrap() as f64 / 1e9;
        eprintln!("vCPU {vcpu}: xl {a:.1} s, table {table:.3} s, xl {b:.1} s (running time)");
        assert!(
            a - XL_TOLERANCE_S <= table && table <= b + XL_TOLERANCE_S,
            "vCPU {vcpu}: the table's running time {table:.3} s is not between xl's {a} s \
             and {b} s"
        );
    }
    // And the spinning vCPU ran during the run, the blocked one hardly.
    let (before, after) = (
        xl_times(&r.runs["xl-vcpu-list-before"], domu),
        xl_times(&r.runs["xl-vcpu-list-after"], domu),
    );
    assert!(after[&0] > before[&0], "{before:?} {after:?}");
    assert!(
        after[&1] - before[&1] < after[&0] - before[&0],
        "{before:?} {after:?}"
    );
    eprintln!(
        "patched Xen: whole test {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}
