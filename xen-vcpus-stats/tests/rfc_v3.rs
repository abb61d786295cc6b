//! A genuine RFC v3 page (the compatibility matrix's r1 writer, zero
//! filled as v3 fills): `sample`, `list` and `top` show vCPU 0 alone, with
//! its value, and say once that the vCPU count is the toolstack's
//! (docs/abi.md 9.1).

mod common;

use std::path::Path;

use common::{json_lines, stderr, stdout, tool, Scratch};
use vstats_consumer::mem::MemViewMut;
use vstats_invariants::compat::r1;
use vstats_producer::publish::LivenessLock;

const NOTE: &str = "RFC v3 table: only vCPU 0 is meaningful; vCPU count from the toolstack";

/// Publishes a v3 page of 4 vCPUs at `dir/vcpu`: everything after the
/// header zero (v3's fill), then vCPU 0's running time 5000 and, at the
/// record a vstats reader would take for vCPU 1, 7000. The directory's
/// liveness lock is held too (v3 had none; the tool reads only live VMs).
fn v3_page(dir: &Path) -> (r1::Producer, LivenessLock) {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("vcpu");
    let mut p = r1::Producer::create(&path, 4).unwrap();
    let raw = MemViewMut::map_file(&path).unwrap();
    let (offset, len) = (u64::from(raw.load::<u32>(4).unwrap()), raw.len() as u64);
    for off in (offset..len).step_by(4) {
        assert!(raw.store::<u32>(off, 0));
    }
    p.update(0, |_| 5_000);
    p.update(1, |_| 7_000);
    (p, LivenessLock::take(dir).unwrap())
}

#[test]
fn sample_shows_vcpu_0_alone_and_the_note_once() {
    let s = Scratch::new("v3-sample");
    let _p = v3_page(s.path());
    let path = s.join("vcpu");
    let args = ["--path", path.to_str().unwrap(), "--interval", "0.05"];
    let o = tool()
        .args(args)
        .args(["--count", "2", "--format", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains(NOTE),
        "JSON carries it: {}",
        stderr(&o)
    );
    for l in json_lines(&o) {
        let vcpus = l["vcpus"].as_array().unwrap();
        assert_eq!(vcpus.len(), 1, "{l:#}");
        assert_eq!(vcpus[0]["vcpu"], 0);
        assert_eq!(vcpus[0]["values"]["runstate_running_time"], 5_000, "{l:#}");
        assert_eq!(l["note"], NOTE);
    }
    // The table format: the note once on stderr, vCPU 0's row alone.
    let o = tool().args(args).args(["--count", "2"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o).matches(NOTE).count(), 1, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(!out.contains(NOTE), "{out}");
    // A vCPU beyond 0 is unknown, not selectable.
    let o = tool()
        .args(args)
        .args(["--count", "1", "--vcpus", "1"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stderr(&o).contains("no vCPU 1"), "{}", stderr(&o));
}

#[test]
fn list_and_top_count_one_vcpu_with_the_note() {
    let root = Scratch::new("v3-list");
    let _p = v3_page(&root.join("v3vm"));
    let root_s = root.path().to_str().unwrap();
    let o = tool()
        .args(["list", "--format", "json", "--root", root_s])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let l = &json_lines(&o)[0];
    assert_eq!(
        (l["name"].as_str(), l["vcpus"].as_u64()),
        (Some("v3vm"), Some(1)),
        "{l:#}"
    );
    assert_eq!(l["note"], NOTE);
    let o = tool().args(["list", "--root", root_s]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o).matches(NOTE).count(), 1, "{}", stderr(&o));
    let o = tool()
        .args(["top", "--csv", "-d", "0.1", "-n", "2", "--root", root_s])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    for f in rows {
        assert_eq!((f[2], f[5], f[12]), ("v3vm", "1", NOTE), "{out}");
    }
}
