//! `demo`: the README's run command. It starts a producer child (a live
//! KVM VM, or without /dev/kvm the VM-less producer), samples it, stops
//! it, and leaves nothing behind.

mod common;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use common::{json_lines, stderr, tool, Scratch};

fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

fn empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

/// The example: three JSON Lines samples of a 2-vCPU VM, exit 0.
#[test]
fn demo_two_vcpus_three_json_samples() {
    let s = Scratch::new("demo");
    let o = tool()
        .args([
            "demo",
            "--vcpus",
            "2",
            "--interval",
            "0.5",
            "--count",
            "3",
            "--format",
            "json",
        ])
        .env("VSTATS_ROOT", s.path())
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 3, "exactly three lines");
    for (n, l) in lines.iter().enumerate() {
        assert_eq!(l["sample"], n as u64 + 1);
        assert_eq!(l["vcpu_slots"], 2);
        assert_eq!(l["vcpus"].as_array().unwrap().len(), 2);
        assert_eq!(l["domain"]["values"]["vcpus_max"], 2);
        for v in l["vcpus"].as_array().unwrap() {
            assert_eq!(v["status"], "ok", "{v}");
            assert!(v["values"]["exits"].as_u64().unwrap() > 0, "{v}");
        }
    }
    if kvm_usable() {
        assert!(!err.contains("VM-less"), "{err}");
        // KVM's own counters are there.
        assert!(lines[0]["vcpus"][0]["values"].get("halt_exits").is_some());
        println!("demo ran a live KVM VM");
    } else {
        assert!(err.contains("SYNTHETIC DATA"), "{err}");
        assert!(lines[0]["vm"].as_str().unwrap().ends_with("-synthetic"));
        println!("skipped the KVM part: /dev/kvm unavailable; demo ran the VM-less producer");
    }
    assert!(empty(s.path()), "the producer removed its tables");
}

/// Without a usable KVM device, demo says so and runs the VM-less
/// producer.
#[test]
fn demo_without_kvm_falls_back() {
    let s = Scratch::new("demo-nokvm");
    let o = tool()
        .args([
            "demo",
            "--kvm",
            "/nonexistent/kvm",
            "--vcpus",
            "3",
            "--interval",
            "0.1",
            "--count",
            "1",
        ])
        .args(["--format", "json", "--name", "fallback"])
        .env("VSTATS_ROOT", s.path())
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("no /nonexistent/kvm (KVM unavailable: open /nonexistent/kvm: ")
            && err.contains("): running the VM-less producer"),
        "{err}"
    );
    // Marked synthetic: a banner on stderr, and the VM's name in the data.
    assert!(
        err.contains("SYNTHETIC DATA: ")
            && err.contains("/fallback-synthetic is no VM: made-up values"),
        "{err}"
    );
    let l = &json_lines(&o)[0];
    assert_eq!(l["vm"], "fallback-synthetic");
    assert_eq!(l["vcpus"].as_array().unwrap().len(), 3);
    assert!(empty(s.path()));
}

/// Ctrl-C (SIGINT to demo) ends an unbounded demo cleanly: exit 0, the
/// child stopped, its tables removed.
#[test]
fn demo_stops_on_sigint() {
    let s = Scratch::new("demo-int");
    let mut child = tool()
        .args([
            "demo",
            "--no-kvm",
            "--vcpus",
            "1",
            "--interval",
            "0.1",
            "--format",
            "json",
            "--only-vcpus",
            "0",
        ])
        .env("VSTATS_ROOT", s.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.starts_with("{\"sample\":1,"), "{first}");
    let dirs: Vec<_> = std::fs::read_dir(s.path()).unwrap().collect();
    assert_eq!(dirs.len(), 1, "one published VM while it runs");
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // It stops on SIGINT: a bound only against a hang, not a timing.
    let until = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < until, "the demo ignored SIGINT");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
    assert!(empty(s.path()), "the producer removed its tables");
}

/// The fallback is marked in every format that names the VM: the table's
/// heading and OpenMetrics' `vm` label too.
#[test]
fn the_synthetic_fallback_is_marked_in_every_format() {
    for (format, needle) in [
        ("table", "vm marked-synthetic "),
        ("openmetrics", "vm=\"marked-synthetic\""),
    ] {
        let s = Scratch::new("demo-mark");
        let o = tool()
            .args(["demo", "--no-kvm", "--vcpus", "1", "--interval", "0.05"])
            .args(["--count", "1", "--name", "marked", "--format", format])
            .env("VSTATS_ROOT", s.path())
            .output()
            .unwrap();
        let err = stderr(&o);
        assert!(o.status.success(), "{err}");
        assert!(err.contains("SYNTHETIC DATA"), "{err}");
        let out = common::stdout(&o);
        assert!(out.contains(needle), "{format}: {out}");
        assert!(!out.contains("\"marked\""), "{format}: {out}");
        assert!(empty(s.path()));
    }
}

/// A /dev/kvm this user may not open is reported as such, not as
/// missing. Needs a user without access: as root, the demo runs as
/// nobody (setpriv), for whom the real root:kvm 0660 device is denied.
#[test]
fn a_denied_kvm_device_is_not_called_missing() {
    let denied_kvm = Path::new("/dev/kvm");
    let s = Scratch::new("demo-denied");
    // The producer (as nobody) publishes here.
    std::fs::set_permissions(
        s.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let mut cmd = if common::is_root() {
        let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        // A device others may open would not be denied to nobody.
        let closed = std::fs::metadata(denied_kvm)
            .is_ok_and(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o006 == 0);
        let (Some(setpriv), true) = (setpriv, closed) else {
            println!("skipped: needs setpriv and a /dev/kvm closed to others to run as nobody");
            return;
        };
        let mut c = std::process::Command::new(setpriv);
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            common::BIN,
        ]);
        c
    } else {
        tool()
    };
    // Not root: a device file nobody may open stands in for /dev/kvm.
    let stand_in = s.join("kvm");
    std::fs::write(&stand_in, b"").unwrap();
    std::fs::set_permissions(
        &stand_in,
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let kvm = if common::is_root() {
        denied_kvm
    } else {
        &stand_in
    };
    let o = cmd
        .args(["demo", "--kvm", kvm.to_str().unwrap(), "--vcpus", "1"])
        .args(["--interval", "0.05", "--count", "1", "--name", "denied"])
        .args(["--format", "json"])
        .env("VSTATS_ROOT", s.path())
        .output()
        .unwrap();
    let err = stderr(&o);
    let kvm = kvm.display().to_string();
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "{kvm}: permission denied: this user may not open it"
        )),
        "{err}"
    );
    assert!(!err.contains(&format!("no {kvm}")), "{err}");
    assert!(err.contains("SYNTHETIC DATA"), "{err}");
    assert_eq!(json_lines(&o)[0]["vm"], "denied-synthetic");
}
