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
        assert!(err.contains("no /dev/kvm ("), "{err}");
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
        err.contains("no /dev/kvm (KVM unavailable: open /nonexistent/kvm: ")
            && err.contains("): running the VM-less producer"),
        "{err}"
    );
    let l = &json_lines(&o)[0];
    assert_eq!(l["vm"], "fallback");
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
