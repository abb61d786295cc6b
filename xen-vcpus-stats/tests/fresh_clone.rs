//! The README's run command from a fresh clone of the committed tree:
//! `cargo run --locked -p xen-vcpus-stats -- demo ...`. Ignored by default
//! (it builds the workspace from scratch: a minute or more); run it with
//! `cargo test -p xen-vcpus-stats --test fresh_clone -- --ignored`.

use std::{path::Path, process::Command};

#[test]
#[ignore = "builds the whole workspace in a fresh clone (slow)"]
fn readme_run_command_works_from_a_fresh_clone() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let top = Command::new("git")
        .args(["rev-parse", "--show-toplevel"])
        .current_dir(here)
        .output()
        .unwrap();
    assert!(top.status.success());
    let top = String::from_utf8(top.stdout).unwrap();
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let clone = tmp.join(format!("fresh-clone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&clone);
    let st = Command::new("git")
        .args(["clone", "-q", top.trim()])
        .arg(&clone)
        .status()
        .unwrap();
    assert!(st.success());
    let root = tmp.join(format!("fresh-clone-root-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let o = Command::new(env!("CARGO"))
        .args([
            "run",
            "--locked",
            "--release",
            "-q",
            "-p",
            "xen-vcpus-stats",
            "--",
        ])
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
        .current_dir(&clone)
        // A target directory of its own, kept between runs.
        .env("CARGO_TARGET_DIR", tmp.join("fresh-clone-target"))
        .env("VSTATS_ROOT", &root)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&clone);
    let _ = std::fs::remove_dir_all(&root);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(out.lines().count(), 3, "{out}");
    for l in out.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["vcpus"].as_array().unwrap().len(), 2);
    }
}
