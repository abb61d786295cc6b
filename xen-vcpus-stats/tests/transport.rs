//! Attacks on the file transport, with real processes (issue 10, items 2
//! to 4): a table truncated while the tool reads it, files that are not
//! regular files where a table is expected, and sparse files whose size
//! says nothing about the table in them.
//!
//! The order of events is forced by handshakes (the tool's first output
//! line, its `/proc/PID/maps` naming the table), never by sleeping; a
//! deadline only keeps a regression from hanging the suite.

mod common;

use std::{
    io::{BufRead, BufReader, Read},
    os::unix::{fs::symlink, process::ExitStatusExt},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use common::{tool, Scratch};
use vstats_abi::{
    layout::{Layout, LayoutParams},
    record::VCPU_STD_DESCRIPTORS,
    VCPU_STATS_MAGIC,
};
use vstats_producer::{publish::LivenessLock, shm::ShmTable, TableSpec};

/// A live vCPU table of `n` vCPUs at `dir/vcpu` (several pages for 400).
/// A table of `n` vCPUs in `dir/vcpu`, from a live producer: the returned
/// lock is the producer's liveness (readers refuse a dead producer).
fn publish(dir: &Path, n: u32) -> (ShmTable, LivenessLock) {
    let live = LivenessLock::take(dir).unwrap();
    let spec = TableSpec {
        magic: VCPU_STATS_MAGIC,
        layout: Layout::compute(&LayoutParams::vcpu_r2(n)).unwrap(),
        descriptors: VCPU_STD_DESCRIPTORS,
        generation: 1,
    };
    (ShmTable::create(&dir.join("vcpu"), &spec).unwrap(), live)
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// Waits for `child` to exit, failing (and killing it) after 60 s: a
/// safety net against hangs, not a timing assertion.
fn wait_bounded(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the tool did not exit (hung)");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `c` to completion under the hang safety net; (status, stdout,
/// stderr).
fn run_bounded(mut c: Command) -> (ExitStatus, String, String) {
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let mut e = String::new();
    err.read_to_string(&mut e).unwrap();
    let st = wait_bounded(&mut child);
    (st, t.join().unwrap(), e)
}

/// A new length for a file of the given length.
type Cut = fn(u64) -> u64;

/// How the table is cut.
const CUTS: [(&str, Cut); 3] = [
    ("zero", |_| 0),
    ("half", |len| len / 2),
    ("odd", |_| 4096 + 100),
];

#[test]
fn sample_survives_its_table_being_truncated() {
    for (what, cut) in CUTS {
        let s = Scratch::new("trunc-sample");
        let (t, _live) = publish(s.path(), 400);
        let len = std::fs::metadata(t.path()).unwrap().len();
        let mut c = tool();
        c.args(["sample", "--format", "json", "--interval", "0.01", "--path"])
            .arg(s.path());
        let mut child = c
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Handshake: the first sample is printed, so the table is mapped
        // and read; then cut it.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("a first sample").unwrap();
        assert!(first.starts_with('{'), "{first}");
        truncate(t.path(), cut(len));
        let rest: Vec<String> = lines.map(Result::unwrap).collect();
        let st = wait_bounded(&mut child);
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(
            st.signal(),
            None,
            "{what}: killed by a signal; stderr {err:?}"
        );
        assert_eq!(st.code(), Some(1), "{what}: stderr {err:?}, rest {rest:?}");
        assert_eq!(err.lines().count(), 1, "{what}: one line: {err:?}");
        assert!(
            err.contains("truncated while mapped") && err.contains("vcpu"),
            "{what}: {err}"
        );
        drop(t);
    }
}

#[test]
fn check_survives_its_table_being_truncated() {
    // The three cuts in parallel: the checker keeps sampling for its
    // whole duration, which must outlast the handshake by far.
    std::thread::scope(|sc| {
        for (what, cut) in CUTS {
            sc.spawn(move || check_truncated(what, cut));
        }
    });
}

fn check_truncated(what: &str, cut: Cut) {
    let s = Scratch::new("trunc-check");
    let (t, _live) = publish(s.path(), 400);
    let len = std::fs::metadata(t.path()).unwrap().len();
    let mut c = tool();
    c.args(["check", "--duration", "10", "--interval", "0.01", "--path"])
        .arg(s.path());
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Handshake: the checker has the table mapped.
    let maps = format!("/proc/{}/maps", child.id());
    let name = t.path().to_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&maps).is_ok_and(|m| m.contains(&name)) {
        assert!(child.try_wait().unwrap().is_none(), "{what}: ended early");
        assert!(Instant::now() < deadline, "{what}: never mapped");
        std::thread::sleep(Duration::from_millis(2));
    }
    truncate(t.path(), cut(len));
    let st = wait_bounded(&mut child);
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(st.signal(), None, "{what}: killed by a signal: {out} {err}");
    assert_ne!(
        st.code(),
        Some(0),
        "{what}: a lost table is not a pass: {out} {err}"
    );
    drop(t);
}

/// A root holding VM `vm1`, whose `vcpu` is made by `plant`.
fn planted(tag: &str, plant: impl FnOnce(&Path)) -> Scratch {
    let s = Scratch::new(tag);
    std::fs::create_dir(s.join("vm1")).unwrap();
    plant(&s.join("vm1").join("vcpu"));
    s
}

fn mkfifo(p: &Path) {
    let st = Command::new("mkfifo").arg(p).status().unwrap();
    assert!(st.success());
}

/// `list`, `sample --name`, `schema --name` and `check --path` on a root
/// whose `vm1/vcpu` is not a regular file: each ends, without a signal,
/// saying what the file is; none reads it.
fn refused_everywhere(s: &Scratch, kind: &str, secret: Option<&str>) {
    let root = s.path().to_str().unwrap();
    let dir = s.join("vm1");
    let runs: Vec<Vec<&str>> = vec![
        vec!["list", "--root", root],
        vec!["sample", "--count", "1", "--root", root, "--name", "vm1"],
        vec!["schema", "--root", root, "--name", "vm1"],
        vec![
            "check",
            "--duration",
            "0.01",
            "--path",
            dir.to_str().unwrap(),
        ],
    ];
    for args in runs {
        let mut c = tool();
        c.args(&args);
        let (st, out, err) = run_bounded(c);
        assert_eq!(st.signal(), None, "{args:?}");
        let all = format!("{out}{err}");
        assert!(all.contains(kind), "{args:?}: {kind:?} not in {all:?}");
        if let Some(secret) = secret {
            assert!(!all.contains(secret), "{args:?} read the target: {all}");
        }
        if args[0] != "list" {
            assert_ne!(st.code(), Some(0), "{args:?}: {all}");
        }
    }
}

#[test]
fn a_fifo_as_a_table_does_not_hang_anything() {
    let s = planted("fifo", mkfifo);
    refused_everywhere(&s, "FIFO", None);
}

#[test]
fn a_directory_named_vcpu_is_refused() {
    let s = planted("dir", |p| std::fs::create_dir(p).unwrap());
    refused_everywhere(&s, "directory", None);
}

#[test]
fn symlinks_under_the_root_are_not_followed() {
    let secret = Scratch::new("secret");
    let target = secret.join("shadow");
    // Starts like a table's magic would, so a reader that followed the
    // link would print its first bytes in an error.
    std::fs::write(&target, b"root:SECRETHASH:19000:0:99999:7:::\n").unwrap();
    let s = planted("symlink", |p| symlink(&target, p).unwrap());
    refused_everywhere(&s, "symbolic link", Some("SECRETHASH"));
    let s = planted("devnull", |p| symlink("/dev/null", p).unwrap());
    refused_everywhere(&s, "symbolic link", None);
    // A VM directory that is a symlink is not a VM of the root either.
    let real = Scratch::new("realvm");
    let _t = publish(real.path(), 1);
    let s = Scratch::new("linkedvm");
    symlink(real.path(), s.join("vm2")).unwrap();
    let mut c = tool();
    c.args(["list", "--root", s.path().to_str().unwrap()]);
    let (st, out, _) = run_bounded(c);
    assert_eq!(st.signal(), None);
    assert!(!out.contains("vm2"), "{out}");
}

#[test]
fn an_explicit_path_is_followed_and_a_device_refused() {
    // The user names the path: following a link is their choice.
    let real = Scratch::new("explicit");
    let (t, _live) = publish(real.path(), 1);
    let s = Scratch::new("explicit-link");
    let link = s.join("mine");
    symlink(t.path(), &link).unwrap();
    let mut c = tool();
    c.args(["sample", "--count", "1", "--path"]).arg(&link);
    let (st, out, err) = run_bounded(c);
    assert_eq!(st.code(), Some(0), "{out} {err}");
    // A device is refused without being read, FIFOs without blocking.
    for (path, kind) in [
        (PathBuf::from("/dev/null"), "character device"),
        (PathBuf::from("/dev/zero"), "character device"),
    ] {
        let mut c = tool();
        c.args(["sample", "--count", "1", "--path"]).arg(&path);
        let (st, out, err) = run_bounded(c);
        assert_eq!(st.signal(), None);
        assert_ne!(st.code(), Some(0), "{out}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(kind), "{err}");
    }
    let fifo = s.join("fifo");
    mkfifo(&fifo);
    let mut c = tool();
    c.args(["sample", "--count", "1", "--path"]).arg(&fifo);
    let (st, _, err) = run_bounded(c);
    assert_ne!(st.code(), Some(0));
    assert!(err.contains("FIFO"), "{err}");
}

/// The tool under an address-space limit of 512 MiB (`prlimit --as`):
/// whatever it maps or allocates must fit, so a reader that mapped or
/// copied a sparse 1 GiB file cannot pass.
fn limited(args: &[&str]) -> (ExitStatus, String, String) {
    let mut c = Command::new("prlimit");
    c.arg(format!("--as={}", 512u64 << 20))
        .arg("--")
        .arg(common::BIN)
        .args(args)
        .env_remove("VSTATS_ROOT");
    run_bounded(c)
}

#[test]
fn a_sparse_gigabyte_costs_no_more_than_the_table() {
    // A valid table, its file grown to a sparse 1 GiB.
    let s = Scratch::new("sparse");
    let dir = s.join("vm1");
    std::fs::create_dir(&dir).unwrap();
    let (t, _live) = publish(&dir, 4);
    truncate(t.path(), 1 << 30);
    let root = s.path().to_str().unwrap();
    let (st, out, err) = limited(&["sample", "--count", "1", "--root", root, "--name", "vm1"]);
    assert_eq!(st.code(), Some(0), "{out} {err}");
    let (st, out, err) = limited(&["list", "--root", root]);
    assert_eq!(st.code(), Some(0), "{out} {err}");
    assert!(out.contains("vm1"), "{out}");
    let vm1 = dir.to_str().unwrap();
    let (st, out, err) = limited(&["check", "--duration", "0.05", "--path", vm1]);
    assert_eq!(
        st.code(),
        Some(0),
        "the checker maps only the table: {out} {err}"
    );

    // A 16-byte v3 header (no record count: the file's size would give
    // it) in a sparse 1 GiB file: refused by the cap on counter words.
    let v3 = Scratch::new("sparse-v3");
    let dir = v3.join("vm1");
    std::fs::create_dir(&dir).unwrap();
    let mut head = Vec::new();
    for w in [VCPU_STATS_MAGIC, 4096, 4096, 4096] {
        head.extend_from_slice(&w.to_ne_bytes());
    }
    std::fs::write(dir.join("vcpu"), &head).unwrap();
    truncate(&dir.join("vcpu"), 1 << 30);
    let root = v3.path().to_str().unwrap();
    let (st, out, err) = limited(&["sample", "--count", "1", "--root", root, "--name", "vm1"]);
    assert_eq!(st.signal(), None, "{out} {err}");
    assert_eq!(st.code(), Some(1), "{out} {err}");
    assert!(err.contains("counter words"), "{err}");
    let (st, out, err) = limited(&["list", "--root", root]);
    assert_eq!(st.signal(), None, "{out} {err}");
    assert!(
        format!("{out}{err}").contains("counter words"),
        "{out} {err}"
    );
    // The checker maps at most what a table within the limits can need
    // (56 MiB), and says the table is beyond them: not ENOMEM, no signal.
    let vm1 = dir.to_str().unwrap();
    let (st, out, err) = limited(&["check", "--duration", "0.05", "--path", vm1]);
    assert_eq!(st.signal(), None, "{out} {err}");
    assert_eq!(st.code(), Some(1), "{out} {err}");
    assert!(out.contains("counter words"), "{out} {err}");
    drop(t);
}
