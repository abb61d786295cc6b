//! Up-to-date runstate times through the tool (ABI r3, R26; design 4.5
//! step 5): a synthetic r3 producer whose vCPU 0 has been running since
//! its entry time and never writes again, as a KVM guest spinning without
//! exits. `sample --format json` shows it running for the whole interval,
//! from the up-to-date times in the table's clock; `--format openmetrics`
//! shows the current state. Deterministic: with no producer write, the
//! running delta is the table-clock interval by construction.

mod common;

use common::{json_lines, stdout, tool, write_frozen_r3, Scratch};

#[test]
fn a_frozen_running_vcpu_shows_a_full_running_share() {
    let s = Scratch::new("fresh");
    let dir = s.join("spin");
    let e = vstats_abi::clock::monotonic_ns();
    let _live = write_frozen_r3(&dir, &[([1000, 10, 20, 0], 0, e), ([0, 0, 500, 0], 2, e)]);
    let o = tool()
        .args(["sample", "--path", dir.to_str().unwrap()])
        .args(["--interval", "0.2", "--count", "2", "--format", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 2);
    let mut last_running = 0;
    for l in &lines {
        let v = &l["vcpus"][0];
        assert_eq!(v["status"], "ok", "{v}");
        assert_eq!(v["extrapolated"], true, "{v}");
        assert_eq!(v["current_runstate"], "running", "{v}");
        assert_eq!(v["runstate_entry_time"], e, "{v}");
        assert_eq!(v["share_base"], "clock", "{v}");
        let sh = &v["runstate"];
        assert!(sh["running"].as_f64().unwrap() >= 0.99, "{sh}");
        let others: f64 = ["runnable", "blocked", "offline"]
            .iter()
            .map(|k| sh[k].as_f64().unwrap())
            .sum();
        assert!(others <= 0.01, "{sh}");
        // The running time grows although the record is never written.
        let running = v["runstate_ns"]["running"].as_u64().unwrap();
        assert!(running > 1000 && running > last_running, "{v}");
        assert_eq!(v["values"]["runstate_running_time"], running, "{v}");
        assert_eq!(v["runstate_ns"]["blocked"], 20, "{v}");
        last_running = running;
        // vCPU 1 is blocked for the whole interval.
        let v1 = &l["vcpus"][1];
        assert_eq!(v1["current_runstate"], "blocked", "{v1}");
        assert!(v1["runstate"]["blocked"].as_f64().unwrap() >= 0.99, "{v1}");
    }
    // OpenMetrics: the current state as a stateset.
    let o = tool()
        .args(["sample", "--path", dir.to_str().unwrap()])
        .args([
            "--interval",
            "0.05",
            "--count",
            "1",
            "--format",
            "openmetrics",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    let text = stdout(&o);
    for line in [
        "vstats_vcpu_runstate{vm=\"spin\",vcpu=\"0\",vstats_vcpu_runstate=\"running\"} 1",
        "vstats_vcpu_runstate{vm=\"spin\",vcpu=\"0\",vstats_vcpu_runstate=\"blocked\"} 0",
        "vstats_vcpu_runstate{vm=\"spin\",vcpu=\"1\",vstats_vcpu_runstate=\"blocked\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in {text}");
    }
}

/// A producer that died leaves its last record behind: its times are
/// final and never brought up to date, or a dead VM's vCPU would look
/// running for ever (docs/abi.md section 10). The library marks the
/// tables when it opens the directory and when it probes liveness; the
/// exporter and `top`, which show dead VMs, read through it.
#[test]
fn a_dead_producers_times_are_final() {
    use vstats_consumer::{follow::Vm, live::Liveness, Snapshot};
    let s = Scratch::new("fresh-dead");
    let dir = s.join("dead");
    let e = vstats_abi::clock::monotonic_ns();
    let live = write_frozen_r3(&dir, &[([1000, 10, 20, 0], 0, e)]);
    let running = |vm: &Vm| {
        let t = &vm.vcpu.as_ref().unwrap().table;
        let mut snap = Snapshot::new(t);
        t.snapshot(&mut snap);
        let up = snap.record(0).unwrap().up_to_date();
        (up.extrapolated, up.times_ns[0])
    };
    let mut probed = Vm::open_dir(&dir, "dead".into()).unwrap();
    assert_eq!(probed.liveness(), Some(Liveness::Live));
    let (extrapolated, t) = running(&probed);
    assert!(extrapolated && t.unwrap() > 1000, "{t:?}");
    live.abandon();
    // The lock is gone once no process holds its open file description: a
    // child that another test of this binary forks at that moment holds it
    // until its exec (close-on-exec), so the death is awaited, bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while probed.probe_liveness() != Some(Liveness::Dead) {
        assert!(
            std::time::Instant::now() < deadline,
            "the producer never died"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Opened after the death, and probed by a reader that opened it before.
    let opened = Vm::open_dir(&dir, "dead".into()).unwrap();
    assert_eq!(opened.liveness(), Some(Liveness::Dead));
    for vm in [&opened, &probed] {
        assert_eq!(running(vm), (false, Some(1000)), "the time as written");
    }
}

/// A table in Xen system time (clock 2) on a host where that clock cannot
/// be read (no Xen here): the tool says why once, on stderr, and shows the
/// times as written, not extrapolated.
#[test]
fn an_unreadable_xen_clock_is_said_once_and_not_extrapolated() {
    let s = Scratch::new("fresh-xenclock");
    let dir = s.join("xenclock");
    let _live = write_frozen_r3(&dir, &[([1000, 10, 20, 0], 0, 5)]);
    let path = dir.join("vcpu");
    let mut b = std::fs::read(&path).unwrap();
    let at = vstats_abi::header::R3_HEADER_OFFSET as usize;
    b[at..at + 4].copy_from_slice(&vstats_abi::header::CLOCK_XEN_SYSTEM.to_ne_bytes());
    std::fs::write(&path, &b).unwrap();
    let o = tool()
        .args(["sample", "--path", dir.to_str().unwrap()])
        .args(["--interval", "0.05", "--count", "2", "--format", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    let err = common::stderr(&o);
    assert_eq!(
        err.matches("Xen system time cannot be read").count(),
        1,
        "{err}"
    );
    for l in json_lines(&o) {
        let v = &l["vcpus"][0];
        assert_eq!(v["extrapolated"], false, "{v}");
        assert_eq!(v["runstate_ns"]["running"], 1000, "{v}");
    }
}
