//! A real Xen in the test suite: boots Debian's Xen 4.17 with a Linux PV
//! dom0 inside QEMU (TCG: full emulation, as these machines' KVM cannot run
//! Xen), runs the project's release binaries in dom0 against a PV domU
//! that keeps its vCPU busy, and reads their results back from the serial
//! log.
//!
//! The mechanics are shell scripts beside this crate: `install.sh` (Debian
//! packages, run by `scripts/test`), `initrd.sh` (the dom0 initrd with the
//! toolstack, the domU and the payload), `boot.sh` (QEMU) and
//! `dom0/checks.sh` (what dom0 runs). This library drives them and parses
//! the markers `dom0/checks.sh` prints:
//!
//! ```text
//! VSTATS-XEN: <a step of dom0's /init>
//! VSTATS-XEN-RUN <name> BEGIN
//! VSTATS-XEN-OUT <name> <a line of stdout>
//! VSTATS-XEN-ERR <name> <a line of stderr>
//! VSTATS-XEN-RUN <name> END rc=<exit status>
//! ```
//!
//! ```
//! let log = "VSTATS-XEN-RUN list BEGIN\nVSTATS-XEN-OUT list a\nVSTATS-XEN-RUN list END rc=0\n";
//! let r = vstats_xen_tests::parse(log);
//! assert_eq!(r.runs["list"].stdout, ["a"]);
//! assert_eq!(r.runs["list"].rc, Some(0));
//! ```
//!
//! `XEN_IMAGE=path` boots another hypervisor image (the uncompressed
//! multiboot ELF, `xen/xen` after a build) with the same harness.

use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

/// Errors of the harness: a step that could not run or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A command could not be started.
    #[error("{step}: cannot run {program}: {io}")]
    Spawn {
        /// The step.
        step: &'static str,
        /// The program.
        program: String,
        /// Why.
        io: io::Error,
    },
    /// A command failed.
    #[error("{step} failed ({status}): {output}")]
    Failed {
        /// The step.
        step: &'static str,
        /// Its exit status.
        status: String,
        /// The end of its output.
        output: String,
    },
    /// A file operation failed.
    #[error("{step}: {}: {io}", .path.display())]
    Io {
        /// The step.
        step: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        io: io::Error,
    },
}

/// Result type of the harness.
pub type Result<T> = std::result::Result<T, Error>;

/// The directory of the scripts (this crate's).
pub fn scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace's top directory.
pub fn workspace_dir() -> PathBuf {
    scripts_dir().join("../..")
}

/// What the boot needs and this machine lacks, one reason each; empty when
/// it can boot. Installing is `install.sh`'s job (`scripts/test` runs it).
pub fn missing_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    let on_path = |prog: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
    };
    for prog in ["qemu-system-x86_64", "cpio", "gzip", "ldd", "timeout"] {
        if !on_path(prog) {
            missing.push(format!("no {prog} on PATH"));
        }
    }
    match std::env::var_os("XEN_IMAGE") {
        Some(img) if !Path::new(&img).is_file() => {
            missing.push(format!(
                "XEN_IMAGE={}: no such file",
                Path::new(&img).display()
            ));
        }
        Some(_) => {}
        None if !Path::new("/boot/xen-4.17-amd64.gz").is_file() => {
            missing.push("no /boot/xen-4.17-amd64.gz (xen-hypervisor-4.17-amd64)".to_owned());
        }
        None => {}
    }
    for (file, package) in [
        ("/usr/lib/xen-4.17/bin/xl", "xen-utils-4.17"),
        ("/bin/busybox", "busybox-static"),
    ] {
        if !Path::new(file).is_file() {
            missing.push(format!("no {file} ({package})"));
        }
    }
    let kernel = std::fs::read_dir("/boot").is_ok_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
    });
    if !kernel {
        missing.push("no /boot/vmlinuz-* (linux-image-amd64)".to_owned());
    }
    missing
}

fn run(step: &'static str, cmd: &mut Command) -> Result<()> {
    let o = cmd.output().map_err(|io| Error::Spawn {
        step,
        program: format!("{:?}", cmd.get_program()),
        io,
    })?;
    if o.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&o.stderr));
    Err(Error::Failed {
        step,
        status: o.status.to_string(),
        output: tail(&text, 30),
    })
}

/// Builds the release binaries the dom0 runs (`xen-vcpus-stats` and this
/// crate's `xen-variant-probe`) into `target_dir`, and puts them with
/// `dom0/checks.sh` into `payload` (emptied first).
///
/// # Errors
///
/// When cargo fails or a file cannot be copied.
pub fn build_payload(target_dir: &Path, payload: &Path) -> Result<()> {
    build_payload_with(target_dir, payload, "checks.sh")
}

/// As [`build_payload`], with the dom0 script `dom0/<script>` as the
/// payload's `checks.sh` (what dom0's `/init` runs), beside `dom0/run.sh`,
/// which it sources.
///
/// # Errors
///
/// When cargo fails or a file cannot be copied.
pub fn build_payload_with(target_dir: &Path, payload: &Path, script: &str) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(
        "cargo build --release",
        Command::new(cargo)
            .args(["build", "--release", "--locked", "--quiet"])
            .args(["-p", "xen-vcpus-stats", "-p", "vstats-xen-tests", "--bins"])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(workspace_dir()),
    )?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |io| Error::Io {
            step: "payload",
            path,
            io,
        }
    };
    let _ = std::fs::remove_dir_all(payload);
    std::fs::create_dir_all(payload).map_err(io(payload))?;
    let release = target_dir.join("release");
    for (from, name) in [
        (release.join("xen-vcpus-stats"), "xen-vcpus-stats"),
        (release.join("xen-variant-probe"), "xen-variant-probe"),
        (scripts_dir().join("dom0").join(script), "checks.sh"),
        (scripts_dir().join("dom0/run.sh"), "run.sh"),
    ] {
        std::fs::copy(&from, payload.join(name)).map_err(io(&from))?;
    }
    Ok(())
}

/// Builds the dom0 initrd into `work` with `payload` in `/opt/vstats`.
///
/// # Errors
///
/// When `initrd.sh` fails.
pub fn build_initrd(work: &Path, payload: &Path) -> Result<()> {
    build_initrd_with(work, payload, 1, 1)
}

/// As [`build_initrd`], with a domU of `domu_vcpus` vCPUs (1 to 9): its
/// vCPU 0 spins, the others block; and `max_vcpus` in all (xl's
/// `maxvcpus`, up to 128): the vCPUs from `domu_vcpus` on exist in Xen but
/// stay offline.
///
/// # Errors
///
/// When `initrd.sh` fails.
pub fn build_initrd_with(
    work: &Path,
    payload: &Path,
    domu_vcpus: u32,
    max_vcpus: u32,
) -> Result<()> {
    run(
        "initrd.sh",
        Command::new("bash")
            .arg(scripts_dir().join("initrd.sh"))
            .arg(work)
            .arg(payload)
            .env("DOMU_VCPUS", domu_vcpus.to_string())
            .env("DOMU_MAXVCPUS", max_vcpus.to_string()),
    )
}

/// One boot.
#[derive(Debug)]
pub struct Boot {
    /// The serial log.
    pub log: String,
    /// Its file.
    pub log_path: PathBuf,
    /// QEMU's exit status (124: the timeout).
    pub status: Option<i32>,
    /// How long it took.
    pub elapsed: Duration,
}

/// Boots once (`boot.sh`), serial log in `log_path`, QEMU stopped after
/// `timeout`.
///
/// # Errors
///
/// When `boot.sh` cannot be started or the log cannot be read.
pub fn boot(work: &Path, log_path: &Path, timeout: Duration) -> Result<Boot> {
    boot_image(work, log_path, timeout, None)
}

/// As [`boot`], booting `image` when given (else `$XEN_IMAGE`, else
/// Debian's 4.17).
///
/// # Errors
///
/// When `boot.sh` cannot be started or the log cannot be read.
pub fn boot_image(
    work: &Path,
    log_path: &Path,
    timeout: Duration,
    image: Option<&Path>,
) -> Result<Boot> {
    let t0 = Instant::now();
    let mut cmd = Command::new("bash");
    if let Some(image) = image {
        cmd.env("XEN_IMAGE", image);
    }
    let o = cmd
        .arg(scripts_dir().join("boot.sh"))
        .arg(work)
        .arg(log_path)
        .arg(timeout.as_secs().to_string())
        .output()
        .map_err(|io| Error::Spawn {
            step: "boot",
            program: "boot.sh".to_owned(),
            io,
        })?;
    let bytes = std::fs::read(log_path).map_err(|io| Error::Io {
        step: "boot",
        path: log_path.to_owned(),
        io,
    })?;
    let mut log = String::from_utf8_lossy(&bytes).replace('\r', "");
    if !o.stderr.is_empty() {
        log.push_str("\n[boot.sh stderr]\n");
        log.push_str(&String::from_utf8_lossy(&o.stderr));
    }
    Ok(Boot {
        log,
        log_path: log_path.to_owned(),
        status: o.status.code(),
        elapsed: t0.elapsed(),
    })
}

/// Boots tried before a test fails ([`boot_until_complete`]).
pub const BOOTS: u32 = 3;

/// How long one emulated boot may take: 10 minutes (emulated boots are
/// slow, and slower still under load) unless `VSTATS_XEN_BOOT_TIMEOUT`
/// (seconds) says otherwise.
pub fn boot_timeout() -> Duration {
    let secs = std::env::var("VSTATS_XEN_BOOT_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    Duration::from_secs(secs)
}

/// The target directory the running test binary was built into
/// (`.../target`, from `target/<profile>/deps/<test>-<hash>`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<binary>")
        .to_owned()
}

/// Boots `image` ([`boot_image`]) up to `boots` times until a boot's
/// report is `complete` (what
/// counts as a usable run is the caller's: under TCG on a loaded machine
/// the emulated environment itself has failed now and then); serial logs
/// `work/serial-<n>.log`. Each boot is told on stderr.
///
/// # Errors
///
/// Every boot's failure (QEMU's status, whether dom0 finished, the log's
/// last `log_tail` lines), when none completed; a boot that could not run.
pub fn boot_until_complete(
    work: &Path,
    image: Option<&Path>,
    boots: u32,
    timeout: Duration,
    log_tail: usize,
    complete: impl Fn(&Report) -> bool,
) -> std::result::Result<(Report, Boot), String> {
    let mut failures = Vec::new();
    for attempt in 1..=boots {
        let log = work.join(format!("serial-{attempt}.log"));
        let b = boot_image(work, &log, timeout, image).map_err(|e| e.to_string())?;
        let r = parse(&b.log);
        eprintln!(
            "Xen boot {attempt}: QEMU status {:?} after {:.1} s, serial log {}",
            b.status,
            b.elapsed.as_secs_f64(),
            b.log_path.display()
        );
        if complete(&r) {
            return Ok((r, b));
        }
        failures.push(format!(
            "boot {attempt}: QEMU status {:?} after {:.1} s, dom0 {}; serial log {}, its tail:\n{}",
            b.status,
            b.elapsed.as_secs_f64(),
            if r.done() {
                "finished"
            } else {
                "did not finish"
            },
            b.log_path.display(),
            tail(&b.log, log_tail)
        ));
    }
    Err(format!(
        "the Xen boot did not complete in {boots} attempts:\n{}",
        failures.join("\n\n")
    ))
}

/// The vstats Xen series: `build.sh` and `patches/*.patch`, the directory
/// `$VSTATS_XEN_SERIES` or the workspace's `xen/`.
pub fn series_dir() -> PathBuf {
    std::env::var_os("VSTATS_XEN_SERIES").map_or_else(|| workspace_dir().join("xen"), PathBuf::from)
}

/// A hypervisor built from the series, its tools, and how they were
/// obtained.
#[derive(Debug)]
pub struct PatchedImage {
    /// `xen/xen`, the uncompressed multiboot ELF (for `XEN_IMAGE`).
    pub image: PathBuf,
    /// The series' own programs, built with it against the tree's
    /// libraries (dom0 runs them with Debian's, of the same sonames):
    /// `tools/tests/vcpu-stats/test-vcpu-stats` and `tools/misc/
    /// xen-vcpus-stats`, the latter cached as `xen-vcpus-stats-c` beside
    /// the project's tool of the same name.
    pub tools: [PathBuf; 2],
    /// The cache key: SHA-256 of `build.sh` and of each patch, in name
    /// order, names included.
    pub key: String,
    /// Whether this call built it (`false`: the cached image).
    pub built: bool,
    /// How long the build took (zero when cached).
    pub elapsed: Duration,
}

/// The files the series' image depends on: `build.sh`, then each
/// `patches/NNNN-*.patch` in name order.
fn series_files(series: &Path) -> Result<Vec<PathBuf>> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |io| Error::Io {
            step: "series",
            path,
            io,
        }
    };
    let dir = series.join("patches");
    let mut patches: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(io(&dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "patch"))
        .collect();
    patches.sort();
    let mut files = vec![series.join("build.sh")];
    files.extend(patches);
    Ok(files)
}

/// The cache key of the series' image: the SHA-256 of the `sha256sum`
/// lines of its files ([`series_files`], names relative to the series).
fn series_key(series: &Path) -> Result<String> {
    let files = series_files(series)?;
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(series).unwrap_or(f).display().to_string())
        .collect();
    let o = Command::new("bash")
        .arg("-c")
        .arg(r#"set -o pipefail; sha256sum "$@" | sha256sum"#)
        .arg("bash")
        .args(&names)
        .current_dir(series)
        .output()
        .map_err(|io| Error::Spawn {
            step: "series key",
            program: "sha256sum".to_owned(),
            io,
        })?;
    let key = String::from_utf8_lossy(&o.stdout);
    let key = key.split_whitespace().next().unwrap_or_default();
    if !o.status.success() || key.len() != 64 {
        return Err(Error::Failed {
            step: "series key (sha256sum)",
            status: o.status.to_string(),
            output: String::from_utf8_lossy(&o.stderr).into_owned(),
        });
    }
    Ok(key.to_owned())
}

/// Names, in the cache, of the series' tools ([`PatchedImage::tools`]),
/// and the names `build.sh --out` gives them.
const SERIES_TOOLS: [(&str, &str); 2] = [
    ("test-vcpu-stats", "test-vcpu-stats"),
    ("xen-vcpus-stats", "xen-vcpus-stats-c"),
];

/// The hypervisor and tools of the series at `series` ([`series_dir`]),
/// built with its `build.sh --source debian` (Debian's source package of
/// the upstream commit the series is written against; the script installs
/// its build dependencies) into `cache/<key>/` ([`PatchedImage::key`]), or
/// taken from there when a build of the same files exists; a build removes
/// the images of other keys. The build's
/// output goes to `cache/<key>/build.log`, not to the test's; its source
/// tree is removed afterwards.
///
/// # Errors
///
/// The series is missing ([`Error::Io`]); the build failed (the log's
/// tail).
pub fn patched_image(series: &Path, cache: &Path) -> Result<PatchedImage> {
    let key = series_key(series)?;
    let dir = cache.join(&key);
    let image = dir.join("xen");
    let tools = SERIES_TOOLS.map(|(_, cached)| dir.join(cached));
    if image.is_file() && tools.iter().all(|t| t.is_file()) {
        return Ok(PatchedImage {
            image,
            tools,
            key,
            built: false,
            elapsed: Duration::ZERO,
        });
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |io| Error::Io {
            step: "patched Xen",
            path,
            io,
        }
    };
    let out = dir.join("out");
    // Images of other versions of the series are not kept.
    if let Ok(entries) = std::fs::read_dir(cache) {
        for e in entries.flatten() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let log_path = dir.join("build.log");
    let log = std::fs::File::create(&log_path).map_err(io(&log_path))?;
    let log2 = log.try_clone().map_err(io(&log_path))?;
    let t0 = Instant::now();
    let status = Command::new("bash")
        .arg(series.join("build.sh"))
        .args(["--source", "debian", "--out"])
        .arg(&out)
        .arg("--work")
        .arg(&dir)
        .stdout(log)
        .stderr(log2)
        .status()
        .map_err(|io| Error::Spawn {
            step: "patched Xen",
            program: "build.sh".to_owned(),
            io,
        })?;
    let elapsed = t0.elapsed();
    if !status.success() {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        return Err(Error::Failed {
            step: "xen/build.sh --source debian",
            status: status.to_string(),
            output: format!("{} (log {})", tail(&text, 30), log_path.display()),
        });
    }
    let missing: Vec<String> = std::iter::once("xen")
        .chain(SERIES_TOOLS.iter().map(|(built, _)| *built))
        .filter(|f| !out.join(f).is_file())
        .map(str::to_owned)
        .collect();
    if !missing.is_empty() {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        return Err(Error::Failed {
            step: "xen/build.sh --source debian",
            status: format!(
                "{status}, but it left no {} in {}",
                missing.join(", "),
                out.display()
            ),
            output: format!("{} (log {})", tail(&text, 30), log_path.display()),
        });
    }
    std::fs::rename(out.join("xen"), &image).map_err(io(&image))?;
    for ((built, _), to) in SERIES_TOOLS.iter().zip(&tools) {
        std::fs::rename(out.join(built), to).map_err(io(to))?;
    }
    // The source tree and objects are not kept: only the image and the
    // tools are cached.
    let _ = std::fs::remove_dir_all(dir.join("xen-build"));
    let _ = std::fs::remove_dir_all(&out);
    Ok(PatchedImage {
        image,
        tools,
        key,
        built: true,
        elapsed,
    })
}

/// Whether a test of the real Xen runs: `Ok(())`, or `Err(reason)` to skip
/// (`VSTATS_SKIP_XEN=1`, or a prerequisite missing without
/// `VSTATS_XEN_REQUIRED=1`). Panics when `VSTATS_XEN_REQUIRED=1` and a
/// prerequisite is missing.
pub fn should_run(extra_missing: Vec<String>) -> std::result::Result<(), String> {
    if std::env::var_os("VSTATS_SKIP_XEN").is_some_and(|v| v == "1") {
        return Err("VSTATS_SKIP_XEN=1".to_owned());
    }
    let mut missing = missing_prerequisites();
    missing.extend(extra_missing);
    if missing.is_empty() {
        return Ok(());
    }
    let why = missing.join("; ");
    if std::env::var_os("VSTATS_XEN_REQUIRED").is_some_and(|v| v == "1") {
        panic!("VSTATS_XEN_REQUIRED=1 but the Xen boot cannot run: {why}");
    }
    Err(format!(
        "{why} (tests/xen/install.sh installs what is missing)"
    ))
}

/// One command dom0 ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Run {
    /// Its stdout, line by line.
    pub stdout: Vec<String>,
    /// Its stderr, line by line.
    pub stderr: Vec<String>,
    /// Its exit status, once its END marker was seen.
    pub rc: Option<i32>,
}

/// What the serial log says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The `VSTATS-XEN:` lines of dom0's `/init`, without the prefix.
    pub steps: Vec<String>,
    /// The commands, by name.
    pub runs: BTreeMap<String, Run>,
}

impl Report {
    /// Whether dom0 got to the end of its `/init`.
    pub fn done(&self) -> bool {
        self.steps.iter().any(|s| s == "done")
    }

    /// Whether a boot gave a usable run: dom0 finished, the domU was
    /// created and ran (the emulated environment's part: under TCG on a
    /// loaded machine `xl create` itself has been seen to crash once), and
    /// every command of `runs` ran. Anything short of that is the
    /// emulator's, and worth another boot; what the commands printed is
    /// judged afterwards.
    pub fn complete(&self, runs: &[&str]) -> bool {
        self.done()
            && self.steps.iter().any(|s| s == "xl create rc=0")
            && self.steps.iter().any(|s| s == "domU running")
            && runs
                .iter()
                .all(|n| self.runs.get(*n).is_some_and(|x| x.rc.is_some()))
    }

    /// The value of the step `"<key> <value>"`, when there is one.
    pub fn step(&self, key: &str) -> Option<&str> {
        self.steps
            .iter()
            .find_map(|s| s.strip_prefix(key)?.strip_prefix(' '))
    }
}

/// Parses the markers out of a serial log. A marker may follow other
/// console output on its line (Xen's messages share the console).
pub fn parse(log: &str) -> Report {
    let mut r = Report::default();
    for line in log.lines() {
        let Some(at) = line.find("VSTATS-XEN") else {
            continue;
        };
        let m = &line[at..];
        if let Some(step) = m.strip_prefix("VSTATS-XEN: ") {
            r.steps.push(step.trim_end().to_owned());
        } else if let Some(rest) = m.strip_prefix("VSTATS-XEN-RUN ") {
            let mut words = rest.split_whitespace();
            let (Some(name), Some(what)) = (words.next(), words.next()) else {
                continue;
            };
            let run = r.runs.entry(name.to_owned()).or_default();
            if what == "END" {
                run.rc = words
                    .next()
                    .and_then(|w| w.strip_prefix("rc="))
                    .and_then(|v| v.parse().ok());
            }
        } else if let Some((rest, out)) = m
            .strip_prefix("VSTATS-XEN-OUT ")
            .map(|r| (r, true))
            .or_else(|| m.strip_prefix("VSTATS-XEN-ERR ").map(|r| (r, false)))
        {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            let run = r.runs.entry(name.to_owned()).or_default();
            if out {
                run.stdout.push(text.to_owned());
            } else {
                run.stderr.push(text.to_owned());
            }
        }
    }
    r
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let skip = text.lines().count().saturating_sub(n);
    text.lines().skip(skip).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_amid_console_noise() {
        let log = "(XEN) boot\nVSTATS-XEN: dom0 up\n\
                   VSTATS-XEN-RUN a BEGIN\n\
                   VSTATS-XEN-OUT a one two\n\
                   (XEN) d1v0 x VSTATS-XEN-ERR a err line\n\
                   VSTATS-XEN-OUT a \n\
                   VSTATS-XEN-RUN a END rc=3\n\
                   VSTATS-XEN-RUN b BEGIN\n\
                   VSTATS-XEN: domU id 1\n\
                   VSTATS-XEN: done\n";
        let r = parse(log);
        assert_eq!(r.steps, ["dom0 up", "domU id 1", "done"]);
        assert!(r.done());
        assert_eq!(r.step("domU id"), Some("1"));
        assert_eq!(r.step("nothing"), None);
        assert_eq!(
            r.runs["a"],
            Run {
                stdout: vec!["one two".into(), String::new()],
                stderr: vec!["err line".into()],
                rc: Some(3),
            }
        );
        assert_eq!(r.runs["b"].rc, None, "no END: not finished");
        assert!(!parse("VSTATS-XEN: dom0 up").done());
    }

    #[test]
    fn the_image_cache_is_keyed_by_the_series_files() {
        let dir = std::env::temp_dir().join(format!("vstats-xen-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let series = dir.join("series");
        std::fs::create_dir_all(series.join("patches")).unwrap();
        // No build.sh: no key.
        assert!(series_key(&series).is_err());
        std::fs::write(series.join("build.sh"), "echo build\n").unwrap();
        std::fs::write(series.join("patches/0001-a.patch"), "a\n").unwrap();
        std::fs::write(series.join("patches/notes.txt"), "not a patch\n").unwrap();
        let k1 = series_key(&series).unwrap();
        assert_eq!(k1.len(), 64);
        assert_eq!(series_key(&series).unwrap(), k1, "stable");
        // Not a patch: no change.
        std::fs::write(series.join("patches/notes.txt"), "other\n").unwrap();
        assert_eq!(series_key(&series).unwrap(), k1);
        // A patch changed, added, or the script changed: another key.
        std::fs::write(series.join("patches/0001-a.patch"), "b\n").unwrap();
        let k2 = series_key(&series).unwrap();
        assert_ne!(k2, k1);
        std::fs::write(series.join("patches/0002-b.patch"), "c\n").unwrap();
        let k3 = series_key(&series).unwrap();
        assert_ne!(k3, k2);
        std::fs::write(series.join("build.sh"), "echo other\n").unwrap();
        let k4 = series_key(&series).unwrap();
        assert_ne!(k4, k3);
        // A cached image of the current key is taken without building
        // (this build.sh would fail: it is not the series' script).
        let cache = dir.join("cache");
        std::fs::create_dir_all(cache.join(&k4)).unwrap();
        std::fs::write(cache.join(&k4).join("xen"), "ELF").unwrap();
        // The image alone is not a complete cache: the tools are missing,
        // so the script runs (and this one fails).
        let e = patched_image(&series, &cache).unwrap_err().to_string();
        assert!(
            e.contains("xen/build.sh") && e.contains("left no xen, test-vcpu-stats"),
            "{e}"
        );
        std::fs::create_dir_all(cache.join(&k4)).unwrap();
        for name in ["xen", "test-vcpu-stats", "xen-vcpus-stats-c"] {
            std::fs::write(cache.join(&k4).join(name), "ELF").unwrap();
        }
        let img = patched_image(&series, &cache).unwrap();
        assert_eq!((img.built, img.key.as_str()), (false, k4.as_str()));
        assert_eq!(img.image, cache.join(&k4).join("xen"));
        assert_eq!(img.tools[1], cache.join(&k4).join("xen-vcpus-stats-c"));
        // Another key: the script runs, and its failure is reported.
        std::fs::write(series.join("build.sh"), "echo no image; exit 3\n").unwrap();
        let e = patched_image(&series, &cache).unwrap_err().to_string();
        assert!(
            e.contains("exit status: 3") && e.contains("no image"),
            "{e}"
        );
        assert!(
            !cache.join(&k4).exists(),
            "the other key's image was removed"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tails() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }
}
