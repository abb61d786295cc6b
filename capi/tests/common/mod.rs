//! Shared by the integration tests: compiling the C programs of `tests/c/`
//! with `gcc` (skipping with a printed reason where there is none), finding
//! the static library cargo built next to the test executable, and
//! temporary directories; what the C producer must publish (`producer`).
#![allow(dead_code)]

pub mod producer;

use std::{
    env,
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = env::temp_dir().join(format!(
            "vstats-capi-{tag}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Whether `cc` (gcc, g++) runs; prints why the test is skipped if not.
pub fn have(cc: &str, test: &str) -> bool {
    let ok = Command::new(cc)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED {test}: `{cc}` not found; install it to run the C side of this test");
    }
    ok
}

/// `capi/tests/c/<name>`.
pub fn c_source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(name)
}

/// `capi/include`.
pub fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include")
}

/// The `libvstats_capi.a` cargo built for this test run: the newest of
/// `target/<profile>/libvstats_capi.a`, `target/<profile>/deps/libvstats_capi.a`
/// (the name cargo gives it since the crate is also a `cdylib`) and
/// `target/<profile>/deps/libvstats_capi-*.a` (the test executable lives in
/// `target/<profile>/deps/`).
pub fn staticlib() -> PathBuf {
    let exe = env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let profile = deps.parent().unwrap();
    let mut found: Vec<PathBuf> = vec![
        profile.join("libvstats_capi.a"),
        deps.join("libvstats_capi.a"),
    ];
    if let Ok(rd) = fs::read_dir(deps) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("libvstats_capi-") && name.ends_with(".a") {
                found.push(e.path());
            }
        }
    }
    found
        .into_iter()
        .filter_map(|p| Some((fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("no libvstats_capi.a in {} or its deps/", profile.display()))
}

/// Compiles C sources into `dir/name` with strict warnings; links the
/// static library when `link` is set.
pub fn compile(dir: &Path, name: &str, sources: &[PathBuf], link: bool) -> PathBuf {
    compile_with(dir, name, sources, link, &[])
}

/// [`compile`] with extra `gcc` arguments (`-D...`).
pub fn compile_with(
    dir: &Path,
    name: &str,
    sources: &[PathBuf],
    link: bool,
    extra: &[&str],
) -> PathBuf {
    let mut cflags: Vec<OsString> = extra.iter().map(OsString::from).collect();
    cflags.extend(["-I".into(), include_dir().into()]);
    let mut libs: Vec<OsString> = Vec::new();
    if link {
        libs.push(staticlib().into());
        libs.extend(["-lpthread", "-ldl", "-lm"].map(OsString::from));
    }
    compile_flags(dir, name, sources, &cflags, &libs)
}

/// Compiles C sources into `dir/name` with strict warnings, `cflags` before
/// the sources and `libs` after them (no include directory or library of
/// its own).
pub fn compile_flags(
    dir: &Path,
    name: &str,
    sources: &[PathBuf],
    cflags: &[OsString],
    libs: &[OsString],
) -> PathBuf {
    let out = dir.join(name);
    let mut cmd = Command::new("gcc");
    cmd.args(cflags)
        .args([
            "-std=c11",
            "-O2",
            "-g",
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
        ])
        .args(sources)
        .arg("-o")
        .arg(&out)
        .args(libs);
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "gcc failed for {name}:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Runs a program and returns its output.
pub fn run(prog: &Path, args: &[&str]) -> Output {
    Command::new(prog).args(args).output().unwrap()
}
