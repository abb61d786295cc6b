//! Helpers shared by the integration tests: the binary, scratch
//! directories, the Xen stand-in library, JSON Lines.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::{
        atomic::{AtomicU32, Ordering},
        OnceLock,
    },
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
