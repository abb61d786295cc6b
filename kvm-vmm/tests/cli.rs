//! The `vstats-vmm` binary: publication, clean stop on SIGTERM and SIGINT,
//! clear one-line errors.
//!
//! Tests that need a VM print "skipped: /dev/kvm unavailable: <reason>" and
//! return when KVM cannot be used.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::{kvm_or_skip, start, wait_bounded, BIN};
use vstats_abi::validate::validate;

fn temp_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("vstats-vmm-cli-{tag}-{}", std::process::id()))
}

fn name(tag: &str) -> String {
    format!("t-{}-{tag}", std::process::id())
}

fn check_tables(dir: &Path, vcpus: u32) {
    for (file, records) in [("vcpu", vcpus), ("domain", 1)] {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let info = validate(&bytes, bytes.len() as u64).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(info.nr_records, records, "{file}");
    }
}

fn stops_cleanly_on(signal: i32, tag: &str) {
    if !kvm_or_skip() {
        return;
    }
    let root = temp_dir(tag);
    let dir = root.join("vm");
    let (mut child, line) = start(&[
        "--name",
        &name(tag),
        "--vcpus",
        "2",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(line.trim_end(), format!("published {}", dir.display()));
    check_tables(&dir, 2);

    // A second producer for the same directory is refused, leaving it be.
    let out = Command::new(BIN)
        .args(["--name", "other", "--dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{out:?}"
    );
    check_tables(&dir, 2);

    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: `pid` is our child, not yet waited for, so not reused.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    let status = wait_bounded(&mut child);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{status:?}; stderr: {stderr}");
    assert!(!dir.exists(), "the directory is removed");
    std::fs::remove_dir(&root).unwrap();
}

#[test]
fn sigterm_stops_cleanly() {
    stops_cleanly_on(libc::SIGTERM, "term");
}

#[test]
fn sigint_stops_cleanly() {
    stops_cleanly_on(libc::SIGINT, "int");
}

#[test]
fn seconds_stops_by_itself() {
    if !kvm_or_skip() {
        return;
    }
    let dir = temp_dir("secs");
    let (mut child, _) = start(&[
        "--name",
        &name("secs"),
        "--dir",
        dir.to_str().unwrap(),
        "--seconds",
        "0.3",
        "--stats-refresh-ms",
        "20",
        "--halt-ms",
        "1",
    ]);
    assert!(wait_bounded(&mut child).success());
    assert!(!dir.exists());
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// A failure with exactly one line on stderr that contains every `needle`.
fn assert_one_line_error(out: &Output, needles: &[&str]) {
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr:?}");
    }
    assert!(out.stdout.is_empty());
}

#[test]
fn invalid_name_is_refused() {
    let out = run(&["--name", "a/b"]);
    assert_one_line_error(&out, &["invalid VM name \"a/b\"", "'/'"]);
    let out = run(&["--name", ".."]);
    assert_one_line_error(&out, &["invalid VM name"]);
}

#[test]
fn missing_kvm_is_said_so() {
    let out = run(&["--name", "x", "--kvm", "/nonexistent/kvm"]);
    assert_one_line_error(&out, &["KVM unavailable", "/nonexistent/kvm"]);
}

#[test]
fn directory_under_a_file_is_refused() {
    if !kvm_or_skip() {
        return;
    }
    let file = temp_dir("file");
    std::fs::write(&file, b"x").unwrap();
    let dir = file.join("vm");
    let out = run(&["--name", "x", "--dir", dir.to_str().unwrap()]);
    std::fs::remove_file(&file).unwrap();
    assert_one_line_error(
        &out,
        &[
            "cannot create directory",
            dir.to_str().unwrap(),
            "Not a directory",
        ],
    );
}
