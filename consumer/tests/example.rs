//! Runs the `running_share` example against a live table: a producer
//! thread keeps updating two vCPUs, one running 3/4 of the time and the
//! other 1/4, and the example must print exactly those shares.
// Real processes and file mappings: beyond Miri, which runs the unit tests.
#![cfg(not(miri))]

use std::{
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use vstats_abi::{
    layout::{Layout, LayoutParams},
    record::VCPU_STD_DESCRIPTORS,
    VCPU_STATS_MAGIC,
};
use vstats_producer::{shm::ShmTable, TableSpec};

/// The example's executable: built beside this test by `cargo test`, else
/// built now with the cargo that runs the test.
fn example() -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let dir = deps.parent().unwrap().parent().unwrap();
    let exe = dir.join("examples").join("running_share");
    if !exe.exists() {
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args([
                "build",
                "-p",
                "vstats-consumer",
                "--example",
                "running_share",
            ])
            .arg("--target-dir")
            .arg(dir.parent().unwrap());
        if dir.ends_with("release") {
            cargo.arg("--release");
        }
        let status = cargo.status().unwrap();
        assert!(status.success(), "building the example failed");
    }
    exe
}

#[test]
fn prints_the_running_share_of_every_vcpu() {
    let root = std::env::temp_dir().join(format!("vstats-example-{}", std::process::id()));
    let spec = TableSpec {
        magic: VCPU_STATS_MAGIC,
        layout: Layout::compute(&LayoutParams::vcpu_r2(2)).unwrap(),
        descriptors: VCPU_STD_DESCRIPTORS,
        generation: 1,
    };
    let mut table = ShmTable::create(&root.join("vm1").join("vcpu"), &spec).unwrap();
    let stop = AtomicBool::new(false);
    let out = std::thread::scope(|s| {
        let (_, writers) = table.split();
        let stop = &stop;
        s.spawn(move || {
            let mut writers: Vec<_> = writers.collect();
            // Per update: vCPU 0 runs 3 ns of 4, vCPU 1 runs 1 of 4 (the
            // rest blocked); the shares do not depend on how many updates
            // fall in a second.
            let mut t = 0u64;
            while !stop.load(Ordering::Relaxed) {
                t += 1;
                for (w, running) in writers.iter_mut().zip([3, 1]) {
                    w.update(|u| {
                        u.set(0, running * t);
                        u.set(1, 0);
                        u.set(2, (4 - running) * t);
                        u.set(3, 0);
                    });
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let out = Command::new(example())
            .arg("2")
            .env("VSTATS_ROOT", &root)
            .output()
            .unwrap();
        stop.store(true, Ordering::Relaxed);
        out
    });
    std::fs::remove_dir_all(&root).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "two samples of two vCPUs: {stdout}");
    // A record the reader catches mid-update in every one of its attempts
    // reads as `-`; every other line shows the exact share.
    for (line, (vcpu, share)) in lines.iter().zip([(0, "75.0%"), (1, "25.0%")].repeat(2)) {
        let prefix = format!("vm1 vcpu{vcpu} running ");
        let value = line.strip_prefix(&prefix).expect(&stdout);
        assert!(value == share || value == "-", "{stdout}");
    }
    assert!(
        stdout.contains("75.0%") && stdout.contains("25.0%"),
        "{stdout}"
    );
}
