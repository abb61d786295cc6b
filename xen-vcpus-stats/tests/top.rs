//! `top`: batch and CSV output against live synthetic producers, and the
//! interactive view in a real terminal (tmux at 80x24).

mod common;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{stdout, tool, Scratch, BIN};

/// How long a condition may take before the test is declared hung.
const HANG: Duration = Duration::from_secs(60);

/// A VM-less producer (`__produce --no-kvm`), killed on drop.
struct Producer(Child);

impl Producer {
    /// Starts one publishing `root/name` with `vcpus` vCPUs and waits
    /// until it has published.
    fn start(root: &Path, name: &str, vcpus: u32) -> Producer {
        let mut child = tool()
            .args([
                "__produce",
                "--no-kvm",
                "--vcpus",
                &vcpus.to_string(),
                "--dir",
            ])
            .arg(root.join(name))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("published "), "{line:?}");
        Producer(child)
    }

    /// Kills it (SIGKILL): its tables stay, its lock is free: dead.
    fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `vm00`..: 4 vCPUs for even numbers, 16 for odd ones.
fn producers(root: &Path, n: u32) -> Vec<Producer> {
    (0..n)
        .map(|i| Producer::start(root, &format!("vm{i:02}"), if i % 2 == 0 { 4 } else { 16 }))
        .collect()
}

/// The VM name a row line starts with, if it is one.
fn row_name(line: &str) -> Option<&str> {
    line.split_whitespace()
        .next()
        .filter(|w| w.starts_with("vm") && w.len() == 4)
}

#[test]
fn batch_prints_every_vm_three_times_within_80_columns() {
    let root = Scratch::new("top-batch");
    let mut vms = producers(root.path(), 3);
    vms[2].kill();
    let o = tool()
        .args(["top", "-b", "-d", "1", "-n", "3", "--root"])
        .arg(root.path())
        .env("VSTATS_XENFOREIGNMEMORY_LIB", "/nonexistent.so")
        .output()
        .unwrap();
    let out = stdout(&o);
    let err = common::stderr(&o);
    assert!(o.status.success(), "{out}{err}");
    // Why no Xen domain is listed: once, on stderr (as `list` says it).
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "xen-vcpus-stats: note: no Xen domains listed: Xen backend unavailable: \
             /nonexistent.so not found"
        ),
        "{err}"
    );
    assert!(!out.contains("Xen backend"), "not on stdout: {out}");
    for l in out.lines() {
        assert!(l.chars().count() <= 80, "wider than 80: {l:?}");
    }
    let frames: Vec<&str> = out.split("vstats top ").filter(|f| !f.is_empty()).collect();
    assert_eq!(frames.len(), 3, "{out}");
    for f in frames {
        let rows: Vec<&str> = f.lines().filter(|l| row_name(l).is_some()).collect();
        let names: Vec<&str> = rows.iter().filter_map(|l| row_name(l)).collect();
        assert_eq!(names, ["vm00", "vm01", "vm02"], "{f}");
        assert!(rows[0].contains(" live"), "{f}");
        assert!(rows[1].contains(" live"), "{f}");
        assert!(rows[2].contains(" dead"), "{f}");
        // The header names the columns.
        assert!(f.contains("CPU%") && f.contains("RDY%") && f.contains("BLK%"));
        // vm01's 16 vCPUs: its vCPU column.
        assert_eq!(rows[1].split_whitespace().nth(2), Some("16"), "{f}");
    }
}

#[test]
fn batch_vcpu_rows_show_histograms() {
    let root = Scratch::new("top-vcpus");
    let _vms = producers(root.path(), 2);
    let o = tool()
        .args(["top", "-b", "-d", "0.2", "-n", "1", "--vcpus", "-f", "vm01"])
        .arg("--root")
        .arg(root.path())
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    let names: Vec<&str> = out.lines().filter_map(row_name).collect();
    assert_eq!(names, ["vm01"], "the filter: {out}");
    assert_eq!(out.matches("  vcpu").count(), 16, "{out}");
    assert_eq!(out.matches("halt_wait_hist n=").count(), 16, "{out}");
    assert!(out.contains("p50<") && out.contains("p99<"), "{out}");
    assert!(out.contains("  since reset: exits "), "{out}");
    for l in out.lines() {
        assert!(l.chars().count() <= 80, "wider than 80: {l:?}");
    }
}

#[test]
fn csv_has_a_header_once_and_the_columns() {
    let root = Scratch::new("top-csv");
    let mut vms = producers(root.path(), 2);
    vms[0].kill();
    let o = tool()
        .args([
            "top", "--csv", "-d", "0.3", "-n", "2", "--sort", "cpu", "--root",
        ])
        .arg(root.path())
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    assert_eq!(
        header,
        [
            "iteration",
            "time",
            "name",
            "backend",
            "domid",
            "vcpus",
            "cpu_pct",
            "runnable_pct",
            "blocked_pct",
            "state",
            "busiest",
            "busiest_per_sec",
            "note"
        ]
    );
    assert_eq!(out.matches("iteration,").count(), 1, "header once");
    assert_eq!(lines.len(), 1 + 2 * 2, "{out}");
    for (k, l) in lines[1..].iter().enumerate() {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!(f.len(), header.len(), "{l}");
        assert_eq!(f[0], (k / 2 + 1).to_string());
        f[1].parse::<f64>().unwrap();
        assert_eq!(f[3], "file");
        f[5].parse::<u32>().unwrap();
        // Sorted by CPU: the live 16-vCPU VM, then the dead one (unknown
        // CPU% last).
        if k % 2 == 0 {
            assert_eq!((f[2], f[5], f[9]), ("vm01", "16", "live"), "{l}");
            let cpu: f64 = f[6].parse().unwrap();
            assert!((0.0..=1600.0).contains(&cpu), "{l}");
            f[7].parse::<f64>().unwrap();
            f[8].parse::<f64>().unwrap();
            assert!(!f[10].is_empty(), "{l}");
            f[11].parse::<f64>().unwrap();
        } else {
            assert_eq!((f[2], f[5], f[9], f[6]), ("vm00", "4", "dead", ""), "{l}");
            // Frozen values have no rate (not a rate of 0).
            assert_eq!((f[10], f[11]), ("", ""), "{l}");
        }
    }
    // CSV has no per-vCPU lines: asking for them is a usage error.
    let o = tool()
        .args(["top", "--csv", "--vcpus", "-n", "1", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot be used with"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A private tmux server, killed on drop (even when the test fails).
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        self.cmd().args(args).output().unwrap()
    }

    /// The pane's text, wrapped lines joined (`-J`), so a line longer than
    /// the pane shows as one line.
    fn capture(&self) -> String {
        stdout(&self.run(&["capture-pane", "-p", "-J", "-t", "top"]))
    }

    fn keys(&self, keys: &str) {
        assert!(self.run(&["send-keys", "-t", "top", keys]).status.success());
    }

    /// Polls the pane until `ok` holds; the last capture.
    fn wait(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + HANG;
        loop {
            let pane = self.capture();
            if ok(&pane) {
                return pane;
            }
            assert!(Instant::now() < deadline, "{what}: never seen in\n{pane}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Whether tmux is there; without it the test skips, unless
/// `VSTATS_CLIENTS_REQUIRED=1`.
fn have_tmux() -> bool {
    let found = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("VSTATS_CLIENTS_REQUIRED").as_deref() != Ok("1"),
            "tmux is required (VSTATS_CLIENTS_REQUIRED=1): scripts/install-test-deps.sh installs it"
        );
        eprintln!("skipped: no tmux (scripts/install-test-deps.sh installs it)");
    }
    found
}

/// The row names in the pane, top to bottom.
fn pane_rows(pane: &str) -> Vec<&str> {
    pane.lines().filter_map(row_name).collect()
}

#[test]
fn interactive_in_a_real_terminal() {
    if !have_tmux() {
        return;
    }
    let root = Scratch::new("top-tmux");
    let mut vms = producers(root.path(), 10);
    let tmux = Tmux {
        socket: format!("vstats-top-{}", std::process::id()),
    };
    let cmd = format!("{BIN} top -d 0.5 --root {}", root.path().display());
    let o = tmux.run(&[
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "80",
        "-y",
        "24",
        &cmd,
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let all: Vec<String> = (0..10).map(|i| format!("vm{i:02}")).collect();

    // Every VM has its row, with its CPU% once two refreshes passed.
    let pane = tmux.wait("every VM live with a CPU%", |p| {
        let rows: Vec<&str> = p.lines().filter(|l| row_name(l).is_some()).collect();
        rows.len() == 10
            && rows.iter().all(|l| {
                let cpu = l.split_whitespace().nth(3).map(str::parse::<f64>);
                l.contains(" live") && matches!(cpu, Some(Ok(_)))
            })
    });
    assert_eq!(pane_rows(&pane), all, "sorted by name:\n{pane}");
    for l in pane.lines() {
        assert!(l.chars().count() <= 80, "wider than 80 (wrapped): {l:?}");
    }
    assert!(pane.lines().count() <= 24, "{pane}");

    // `c` sorts by CPU%: the 16-vCPU VMs (4 x 170%) before the 4-vCPU
    // ones (170%).
    tmux.keys("c");
    let pane = tmux.wait("sorted by CPU%", |p| p.contains("sort cpu"));
    let rows = pane_rows(&pane);
    assert_eq!(rows.len(), 10, "{pane}");
    assert!(
        rows[..5]
            .iter()
            .all(|n| n.ends_with(['1', '3', '5', '7', '9'])),
        "16-vCPU VMs first:\n{pane}"
    );
    assert_ne!(rows, all, "reordered");

    // A VM killed mid-run shows as dead.
    vms[3].kill();
    let pane = tmux.wait("vm03 dead", |p| {
        p.lines()
            .any(|l| row_name(l) == Some("vm03") && l.contains(" dead"))
    });
    for l in pane.lines() {
        assert!(l.chars().count() <= 80, "wider than 80 (wrapped): {l:?}");
    }
    assert_eq!(pane_rows(&pane).len(), 10, "{pane}");

    // Enter expands the selected VM into its vCPUs.
    tmux.keys("Enter");
    tmux.wait("vCPU rows", |p| {
        p.contains("  vcpu0 ") && p.contains("  since reset: ") && p.contains("p50<")
    });

    // `z` resets the reader's baselines.
    tmux.keys("z");
    tmux.wait("the reset", |p| p.contains("reset: totals and histograms"));

    // `q` quits: the session ends with the tool.
    tmux.keys("q");
    let deadline = Instant::now() + HANG;
    while tmux.run(&["has-session", "-t", "top"]).status.success() {
        assert!(Instant::now() < deadline, "q did not quit");
        std::thread::sleep(Duration::from_millis(100));
    }
}
