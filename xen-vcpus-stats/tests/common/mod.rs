//! Helpers shared by the integration tests: the binary, scratch
//! directories, the Xen stand-in library, JSON Lines.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        OnceLock,
    },
    time::{Duration, Instant},
};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_xen-vcpus-stats");

/// A fresh, empty scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "xvs-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The tool with a clean environment for the variables it reads.
pub fn tool() -> Command {
    let mut c = Command::new(BIN);
    for v in [
        "VSTATS_ROOT",
        "VSTATS_XENFOREIGNMEMORY_LIB",
        "VSTATS_XENSTORE_LIB",
        "VSTATS_XEN_STANDIN_DIR",
        "VSTATS_XEN_STANDIN_LOG",
        "VSTATS_XEN_STANDIN_XEN",
    ] {
        c.env_remove(v);
    }
    c
}

/// Runs the tool with `args`.
pub fn run(args: &[&str]) -> Output {
    tool().args(args).output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a failure with exit code `code` and one line on stderr that
/// contains every one of `needles`; returns the line.
pub fn assert_error(o: &Output, code: i32, needles: &[&str]) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("xen-vcpus-stats: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in {err:?}");
    }
    err
}

/// Parses stdout as JSON Lines.
pub fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Builds the Xen stand-in library (once per test binary): with or
/// without `xenforeignmemory_resource_size`.
pub fn standin(with_size: bool) -> PathBuf {
    static WITH: OnceLock<PathBuf> = OnceLock::new();
    static WITHOUT: OnceLock<PathBuf> = OnceLock::new();
    let cell = if with_size { &WITH } else { &WITHOUT };
    cell.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standin/xenstandin.c");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(dir).unwrap();
        let name = if with_size {
            "standin"
        } else {
            "standin-nosize"
        };
        let tmp = dir.join(format!("lib{name}.{}.so", std::process::id()));
        let out = dir.join(format!("lib{name}.so"));
        let mut gcc = Command::new("gcc");
        gcc.args([
            "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror", "-o",
        ])
        .arg(&tmp)
        .arg(&src);
        if !with_size {
            gcc.arg("-DSTANDIN_NO_RESOURCE_SIZE");
        }
        let o = gcc
            .output()
            .expect("gcc is needed to build the Xen stand-in");
        assert!(
            o.status.success(),
            "gcc: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::fs::rename(&tmp, &out).unwrap();
        out
    })
    .clone()
}

/// Whether we are root (permission tests then run the tool as `nobody`).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Runs `c` to completion, calling `step` every 5 ms meanwhile (the
/// producer keeps publishing while the checker samples).
pub fn run_while(c: Command, step: impl FnMut()) -> Output {
    run_while_mapped(c, None, Duration::from_millis(5), step)
}

/// As [`run_while`], calling `step` every `period`; when `mapped` is
/// given, `step` is first called only once the child has that file mapped
/// (its `/proc/PID/maps` names it) and had 50 ms to take its first
/// sample, so that a fault that strikes on an early step is seen
/// happening.
pub fn run_while_mapped(
    mut c: Command,
    mapped: Option<&Path>,
    period: Duration,
    mut step: impl FnMut(),
) -> Output {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    if let Some(path) = mapped {
        let maps = format!("/proc/{}/maps", child.id());
        let name = path.to_str().unwrap();
        while !std::fs::read_to_string(&maps).is_ok_and(|m| m.contains(name)) {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the check ended before mapping {name}"
            );
            assert!(Instant::now() < deadline, "{name} never mapped");
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the check did not end");
        step();
        std::thread::sleep(period);
    }
    child.wait_with_output().unwrap()
}

/// A synthetic r3 producer that never writes again: `dir/vcpu`, an r3
/// vCPU table with clock 1 (host `CLOCK_MONOTONIC`), every record written
/// once (seq 2) as `(times, state, entry)`. What a KVM vCPU spinning
/// without exits looks like to a consumer (design 4.5), deterministically.
/// The directory is a live publication (its liveness lock held) for as
/// long as the returned value lives.
pub fn write_frozen_r3(
    dir: &Path,
    records: &[vstats_producer::synth::FrozenRecord],
) -> vstats_producer::publish::Publication {
    vstats_producer::synth::frozen_r3(dir, records).unwrap()
}
