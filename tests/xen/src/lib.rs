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
        (scripts_dir().join("dom0/checks.sh"), "checks.sh"),
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
    run(
        "initrd.sh",
        Command::new("bash")
            .arg(scripts_dir().join("initrd.sh"))
            .arg(work)
            .arg(payload),
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
    let t0 = Instant::now();
    let o = Command::new("bash")
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
    fn tails() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }
}
