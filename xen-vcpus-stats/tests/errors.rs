//! Every error the issue lists, triggered on purpose through the binary:
//! one line on stderr, a non-zero exit code (1 error, 2 usage, 3 bad
//! table).

mod common;

use std::{os::unix::fs::PermissionsExt, os::unix::process::CommandExt, time::Duration};

use common::{assert_error, json_lines, run, standin, tool, Scratch};
use vstats_abi::{
    layout::{Layout, LayoutParams},
    record::VCPU_STD_DESCRIPTORS,
    VCPU_STATS_MAGIC,
};
use vstats_producer::synth::Synth;
use vstats_producer::{shm::ShmTable, TableSpec};

#[test]
fn missing_path_says_no_such_file() {
    let s = Scratch::new("missing");
    let p = s.join("nope");
    let o = run(&["--path", p.to_str().unwrap(), "--count", "1"]);
    let line = assert_error(&o, 1, &[p.to_str().unwrap()]);
    assert!(line.to_lowercase().contains("no such file"), "{line}");
}

#[test]
fn non_table_files_name_the_rule() {
    let s = Scratch::new("notable");
    // Zeros: the magic is wrong (R2).
    let zeros = s.join("zeros");
    std::fs::write(&zeros, vec![0u8; 8192]).unwrap();
    let o = run(&["--path", zeros.to_str().unwrap(), "--count", "1"]);
    assert_error(
        &o,
        3,
        &[
            zeros.to_str().unwrap(),
            "not a valid stats table",
            "R2: magic 0x00000000",
            "[rule R2: the magic is 0xaabbccdd",
        ],
    );
    // Shorter than the header (R1).
    let short = s.join("short");
    std::fs::write(&short, b"abcd").unwrap();
    let o = run(&["schema", "--path", short.to_str().unwrap()]);
    assert_error(
        &o,
        3,
        &[
            "not a valid stats table",
            "R1",
            "[rule R1: the mapping holds the 16-byte header]",
        ],
    );
    // A header whose records run past the end of the file (R7).
    let layout = Layout::compute(&LayoutParams::vcpu_r2(2)).unwrap();
    let mut bytes = vec![0u8; layout.mapping_len() as usize];
    layout
        .write_headers(&mut bytes, VCPU_STATS_MAGIC, 1, VCPU_STD_DESCRIPTORS)
        .unwrap();
    let stride = u32::from_ne_bytes(bytes[12..16].try_into().unwrap());
    bytes[24..28].copy_from_slice(&(layout.mapping_len() as u32 / stride + 1).to_ne_bytes()); // nr_records
    let big = s.join("big");
    std::fs::write(&big, &bytes).unwrap();
    let o = run(&["--path", big.to_str().unwrap(), "--count", "1"]);
    assert_error(&o, 3, &["R7", "[rule R7: the records"]);
}

/// A table whose record 1 is left mid-update (begin without finish): the
/// samples show it busy, then the run ends with "table busy".
#[test]
fn a_record_left_mid_update_is_busy() {
    let s = Scratch::new("busy");
    let path = s.join("vcpu");
    let layout = Layout::compute(&LayoutParams::vcpu_r2(2)).unwrap();
    let spec = TableSpec {
        magic: VCPU_STATS_MAGIC,
        layout,
        descriptors: VCPU_STD_DESCRIPTORS,
        generation: 7,
    };
    let mut table = ShmTable::create(&path, &spec).unwrap();
    // This test is the producer: readers see it live.
    let _live = vstats_producer::publish::LivenessLock::take(s.path()).unwrap();
    {
        let (_, writers) = table.split();
        for mut w in writers {
            w.update(|u| {
                for k in 0..4 {
                    u.set(k, 1000);
                }
            });
            if w.index() == 1 {
                // The writer "dies" mid-update: seq stays odd.
                let _ = w.begin();
            }
        }
    }
    let o = tool()
        .args([
            "--path",
            path.to_str().unwrap(),
            "--interval",
            "0.1",
            "--busy-timeout",
            "0.3",
        ])
        .args(["--count", "100", "--format", "json"])
        .output()
        .unwrap();
    assert_error(
        &o,
        3,
        &[path.to_str().unwrap(), "table busy", "record 1", "seq 3"],
    );
    let lines = json_lines(&o);
    assert!(
        !lines.is_empty() && lines.len() < 10,
        "{} samples",
        lines.len()
    );
    for l in &lines {
        assert_eq!(l["vcpus"][0]["status"], "ok");
        assert_eq!(l["vcpus"][1]["status"], "busy");
        assert!(l["vcpus"][1]["values"]["runstate_running_time"].is_null());
        assert_eq!(l["aggregates"]["runstate_running_time"]["absent"], 1);
    }
    drop(table);
}

#[test]
fn no_such_vm_name() {
    let s = Scratch::new("noname");
    let o = tool()
        .args(["--name", "ghost", "--count", "1"])
        .env("VSTATS_ROOT", s.path())
        .output()
        .unwrap();
    assert_error(
        &o,
        1,
        &["no VM named \"ghost\"", s.path().to_str().unwrap()],
    );
    let o = run(&["--name", "../etc", "--count", "1"]);
    assert_error(&o, 1, &["invalid VM name", "'/'"]);
}

#[test]
fn no_such_domain() {
    let s = Scratch::new("nodom");
    let o = tool()
        .args(["--domid", "42", "--count", "1"])
        .env("VSTATS_XENFOREIGNMEMORY_LIB", standin(true))
        .env("VSTATS_XEN_STANDIN_DIR", s.path())
        .output()
        .unwrap();
    assert_error(&o, 1, &["domain 42: no such domain"]);
}

#[test]
fn xen_library_missing() {
    let o = tool()
        .args(["--domid", "1", "--count", "1"])
        .env(
            "VSTATS_XENFOREIGNMEMORY_LIB",
            "/nonexistent/libxenforeignmemory.so.1",
        )
        .output()
        .unwrap();
    assert_error(
        &o,
        1,
        &[
            "Xen backend unavailable: /nonexistent/libxenforeignmemory.so.1 not found",
            "not a Xen host",
        ],
    );
}

/// Permission denied: as root every file opens, so the tool runs as
/// `nobody` (uid 65534) on files only root may read. Without root, a file
/// of mode 000 does it.
#[test]
fn permission_denied() {
    let s = Scratch::new("perm");
    let dir = s.join("vm");
    let synth = Synth::new(&dir, 1).unwrap();
    let vcpu = dir.join("vcpu");
    std::fs::set_permissions(&vcpu, std::fs::Permissions::from_mode(0o000)).unwrap();
    let as_user = |c: &mut std::process::Command| {
        if common::is_root() {
            c.uid(65534).gid(65534);
        }
    };
    let mut c = tool();
    c.args(["--path", vcpu.to_str().unwrap(), "--count", "1"]);
    as_user(&mut c);
    assert_error(
        &c.output().unwrap(),
        1,
        &[vcpu.to_str().unwrap(), "permission denied"],
    );

    // A root directory nobody may enter: --name cannot even look.
    let root = s.join("private");
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(root.join("vm1")).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut c = tool();
    c.args(["--name", "vm1", "--count", "1"])
        .env("VSTATS_ROOT", &root);
    as_user(&mut c);
    if common::is_root() {
        assert_error(&c.output().unwrap(), 1, &["permission denied"]);
    }

    // The Xen path: the stand-in's open(2) of its privcmd file fails
    // (EACCES), as /dev/xen/privcmd (root only) refuses an unprivileged
    // caller.
    let xen = s.join("xen");
    std::fs::create_dir_all(xen.join("3")).unwrap();
    std::fs::copy(&vcpu, xen.join("3/3-0")).unwrap();
    std::fs::write(xen.join("privcmd"), "").unwrap();
    std::fs::set_permissions(xen.join("privcmd"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut c = tool();
    c.args(["--domid", "3", "--count", "1"])
        .env("VSTATS_XENFOREIGNMEMORY_LIB", standin(true))
        .env("VSTATS_XEN_STANDIN_DIR", &xen);
    as_user(&mut c);
    assert_error(
        &c.output().unwrap(),
        1,
        &[
            "cannot open the Xen foreign-memory interface: Permission denied",
            "(run as root in dom0)",
        ],
    );
    synth.remove().unwrap();
}

#[test]
fn usage_errors() {
    let o = run(&[]);
    assert_error(&o, 2, &["no target", "--path", "--name", "--domid"]);
    let o = run(&["--interval", "0", "--name", "x"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["--format", "xml", "--name", "x"]);
    assert_eq!(o.status.code(), Some(2));
    // A negative number is read as a value, and refused as one (not as an
    // unknown option "-1").
    for (args, needle) in [
        (
            &["top", "-b", "-d", "-1"][..],
            "-1 is not between 0 (excluded) and 86400",
        ),
        (
            &["top", "-b", "-n", "-1"],
            "invalid value '-1' for '--iterations <N>'",
        ),
        (
            &["--name", "x", "--interval", "-0.5"],
            "-0.5 is not between 0",
        ),
        (
            &["--name", "x", "--count", "-2"],
            "invalid value '-2' for '--count <N>'",
        ),
        (
            &["check", "--name", "x", "--duration", "-1"],
            "-1 is not between 0",
        ),
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = common::stderr(&o);
        assert!(
            err.contains(needle) && !err.contains("unexpected argument"),
            "{err}"
        );
    }
}

#[test]
fn unknown_filters() {
    let s = Scratch::new("filters");
    let synth = Synth::new(s.path(), 2).unwrap();
    let p = s.path().to_str().unwrap();
    let o = run(&["--path", p, "--vcpus", "0,5", "--count", "1"]);
    assert_error(&o, 1, &["no vCPU 5", "2 vCPU slots"]);
    let o = run(&["--path", p, "--names", "exits,bogus*", "--count", "1"]);
    assert_error(&o, 1, &["no counter matches \"bogus*\""]);
    drop(synth);
    std::thread::sleep(Duration::from_millis(1));
}
