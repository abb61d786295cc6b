//! `xen-vcpus-stats check`: the invariant checker through the tool, on a
//! live table, on tables broken on purpose (by the invariant crate's
//! fault-injecting producer), through the Xen stand-in, and its errors.

mod common;

use std::{
    path::Path,
    process::{Command, Output},
    time::Duration,
};

use common::{assert_error, run, run_while, run_while_mapped, standin, stdout, tool, Scratch};
use serde_json::Value;
use vstats_invariants::fault::{with_fault_table, Fault};
use vstats_producer::synth::Synth;

fn check_cmd(target: &[&str], json: bool) -> Command {
    check_for(target, json, "0.3")
}

fn check_for(target: &[&str], json: bool, seconds: &str) -> Command {
    let mut c = tool();
    c.arg("check")
        .args(target)
        .args(["--duration", seconds, "--interval", "0.01"]);
    if json {
        c.arg("--json");
    }
    c
}

fn report(o: &Output) -> Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// The ids of the rules that failed, over every table of a JSON report.
fn failed(r: &Value) -> Vec<String> {
    let mut ids: Vec<String> = r["tables"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["rules"].as_array().unwrap().iter())
        .filter(|rule| rule["status"] == "FAIL")
        .map(|rule| rule["id"].as_str().unwrap().to_owned())
        .collect();
    ids.dedup();
    ids
}

#[test]
fn a_live_vm_directory_passes_every_rule() {
    let s = Scratch::new("check-live");
    let dir = s.join("vm");
    let mut synth = Synth::new(&dir, 3).unwrap();
    let o = run_while(check_cmd(&["--path", dir.to_str().unwrap()], true), || {
        synth.update()
    });
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    let r = report(&o);
    assert_eq!(r["passed"], true, "{r:#}");
    let tables = r["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 2, "the vcpu and the domain table");
    for t in tables {
        assert!(t["samples"].as_u64().unwrap() >= 2, "{t:#}");
        let passed = t["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|rule| rule["status"] == "PASS")
            .count();
        assert!(passed >= 20, "{passed} rules passed: {t:#}");
    }
    // The same by name under a root, as text.
    let mut c = check_cmd(&["--name", "vm"], false);
    c.env("VSTATS_ROOT", s.path());
    let o = run_while(c, || synth.update());
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    assert!(stdout(&o).contains("PASS"), "{}", stdout(&o));
    synth.remove().unwrap();
}

/// A static fault (a reserved byte set) and a dynamic one (a cumulative
/// counter that goes down), each reported as exactly its rule, exit 3.
///
/// The dynamic fault is visible between two producer steps only (the step
/// after it makes the counter larger again), so the producer steps every
/// 50 ms while the checker samples every 10 ms.
#[test]
fn broken_tables_fail_with_their_rule() {
    for fault in [Fault::ReservedNonzero, Fault::CumulativeDecrements] {
        let s = Scratch::new("check-fault");
        let path = s.join("vcpu");
        let o = with_fault_table(&path, fault, 1, 2, |d| {
            d.step();
            let c = check_for(&["--path", path.to_str().unwrap()], true, "0.8");
            run_while_mapped(c, Some(&path), Duration::from_millis(50), || d.step())
        })
        .unwrap();
        assert_eq!(o.status.code(), Some(3), "{}", common::stderr(&o));
        let r = report(&o);
        assert_eq!(r["passed"], false);
        assert_eq!(failed(&r), [fault.rule().unwrap().id()], "{r:#}");
    }
}

#[test]
fn errors_of_check() {
    let s = Scratch::new("check-errors");
    let o = run(&[
        "check",
        "--name",
        "nope",
        "--root",
        s.path().to_str().unwrap(),
    ]);
    assert_error(&o, 1, &["nope"]);
    let o = run(&["check"]);
    assert_error(&o, 2, &["no target"]);
    let empty = s.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = run(&["check", "--path", empty.to_str().unwrap()]);
    assert_error(&o, 1, &[empty.to_str().unwrap()]);
    let o = run(&["check", "--path", s.join("missing").to_str().unwrap()]);
    assert_error(&o, 1, &["missing"]);
}

/// The rule `id`'s status in a JSON report's first table.
fn status(r: &Value, id: &str) -> String {
    let rules = r["tables"][0]["rules"].as_array().unwrap();
    let rule = rules.iter().find(|rule| rule["id"] == id).unwrap();
    rule["status"].as_str().unwrap().to_owned()
}

/// `--vcpus N`, the toolstack's count, reaches the checker: R24 passes on
/// a table of 2 used vCPUs with 2, fails alone with 1 (exit status 3),
/// and is skipped without it.
#[test]
fn vcpus_from_the_toolstack_check_r24() {
    let s = Scratch::new("check-vcpus");
    let dir = s.join("vm");
    let mut synth = Synth::new(&dir, 2).unwrap();
    let vcpu = dir.join("vcpu");
    let path = vcpu.to_str().unwrap();
    let o = run_while(check_cmd(&["--path", path, "--vcpus", "2"], true), || {
        synth.update()
    });
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let r = report(&o);
    assert_eq!(
        (status(&r, "R24"), status(&r, "P10")),
        ("PASS".into(), "PASS".into())
    );
    let o = run_while(check_cmd(&["--path", path, "--vcpus", "1"], true), || {
        synth.update()
    });
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert_eq!(failed(&report(&o)), ["R24"], "{}", stdout(&o));
    let o = run_while(check_cmd(&["--path", path], true), || synth.update());
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(status(&report(&o), "R24"), "SKIP");
    synth.remove().unwrap();
}

fn xen_check(dir: &Path, domid: &str) -> Command {
    let mut c = check_cmd(&["--domid", domid], true);
    c.env("VSTATS_XENFOREIGNMEMORY_LIB", standin(true))
        .env("VSTATS_XENSTORE_LIB", standin(true))
        .env("VSTATS_XEN_STANDIN_DIR", dir)
        .env("VSTATS_XEN_STANDIN_LOG", dir.join("log"));
    c
}

/// Through the Xen stand-in (no Xen host was available): a good domain
/// passes; a domain whose vCPU table breaks a static rule that makes it
/// invalid (R9, a page_shift of 11) is still mapped, and the report names
/// the rule.
#[test]
fn xen_domains_are_checked_through_raw_mappings() {
    let s = Scratch::new("check-xen");
    let d = s.join("7");
    let mut synth = Synth::new(&d, 2).unwrap();
    std::os::unix::fs::symlink("vcpu", d.join("3-0")).unwrap();
    std::os::unix::fs::symlink("domain", d.join("3-1")).unwrap();
    let o = run_while(xen_check(s.path(), "7"), || synth.update());
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    let r = report(&o);
    assert_eq!(r["passed"], true, "{r:#}");
    let labels: Vec<&str> = r["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        ["domain 7 vCPU stats table", "domain 7 domain stats table"]
    );
    assert_eq!(status(&r, "R24"), "SKIP", "no cpu directory in xenstore");
    // The vCPU count from xenstore's /local/domain/7/cpu: 2 passes; 1
    // fails R24, unless --vcpus says 2.
    for n in ["0", "1"] {
        std::fs::create_dir_all(d.join("cpu").join(n)).unwrap();
    }
    let o = run_while(xen_check(s.path(), "7"), || synth.update());
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(status(&report(&o), "R24"), "PASS");
    std::fs::remove_dir(d.join("cpu/1")).unwrap();
    let o = run_while(xen_check(s.path(), "7"), || synth.update());
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert_eq!(failed(&report(&o)), ["R24"], "{}", stdout(&o));
    let mut c = xen_check(s.path(), "7");
    c.args(["--vcpus", "2"]);
    let o = run_while(c, || synth.update());
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));

    let bad = s.join("8");
    std::fs::create_dir(&bad).unwrap();
    let o = with_fault_table(&bad.join("vcpu"), Fault::BadPageShift, 1, 2, |_| {
        std::os::unix::fs::symlink("vcpu", bad.join("3-0")).unwrap();
        xen_check(s.path(), "8").output().unwrap()
    })
    .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", common::stderr(&o));
    assert_eq!(failed(&report(&o)), ["R9"], "{}", stdout(&o));
    synth.remove().unwrap();
}
