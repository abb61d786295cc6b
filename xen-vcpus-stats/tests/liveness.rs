//! Liveness with real processes: the VM-less producer (`__produce
//! --no-kvm`) killed with SIGKILL is dead in `list`, `sample`, `check` and
//! the library's follower, and `list --prune` removes its directory only;
//! one stopped with SIGTERM is stopped; a live one is live; a producer
//! starting while readers probe never fails. Synchronisation is on the
//! producer's readiness line and on `waitpid`, never on sleeps.

mod common;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use common::{json_lines, run, stderr, stdout, Scratch, BIN};
use vstats_consumer::{
    follow::{Event, Vm},
    live::{self, Liveness},
};

/// A `__produce --no-kvm` child, ready (its tables are published).
struct Producer {
    child: Child,
    dir: PathBuf,
}

impl Producer {
    fn start(dir: &Path) -> Producer {
        let mut child = Command::new(BIN)
            .args(["__produce", "--no-kvm", "--vcpus", "2", "--dir"])
            .arg(dir)
            .env_remove("VSTATS_ROOT")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("published "), "not ready: {line:?}");
        Producer {
            child,
            dir: dir.to_owned(),
        }
    }

    /// SIGKILL, then `waitpid`: the process is gone, its files are not.
    fn kill(mut self) {
        self.child.kill().unwrap();
        let st = self.child.wait().unwrap();
        assert!(!st.success());
        assert!(
            self.dir.join("vcpu").exists(),
            "a killed producer cleans nothing"
        );
    }

    /// SIGTERM, then `waitpid`: a clean stop.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let st = self.child.wait().unwrap();
        assert!(st.success(), "{st}");
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn states(root: &Path) -> Vec<(String, String)> {
    let o = run(&["list", "--root", root.to_str().unwrap(), "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    json_lines(&o)
        .into_iter()
        .filter(|e| e["backend"] == "file")
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["producer"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect()
}

fn pair(name: &str, state: &str) -> (String, String) {
    (name.to_owned(), state.to_owned())
}

#[test]
fn a_killed_producer_is_dead_everywhere_and_pruned_alone() {
    let s = Scratch::new("live-kill");
    let root = s.path();
    let (d1, d2) = (root.join("vm1"), root.join("vm2"));
    let p1 = Producer::start(&d1);
    let p2 = Producer::start(&d2);

    let mut follower = Vm::open_dir(&d1, "vm1".into()).unwrap();
    assert_eq!(follower.liveness(), Some(Liveness::Live));
    follower.set_probe_interval(Duration::ZERO);
    assert_eq!(follower.follow().unwrap(), None, "live: nothing to report");
    assert_eq!(states(root), [pair("vm1", "live"), pair("vm2", "live")]);
    let o = run(&[
        "--path",
        d1.to_str().unwrap(),
        "--count",
        "1",
        "--interval",
        "0.01",
    ]);
    assert!(
        o.status.success(),
        "a live producer samples: {}",
        stderr(&o)
    );

    p1.kill();

    assert_eq!(
        follower.follow().unwrap(),
        Some(Event::ProducerDied { dir: d1.clone() })
    );
    assert_eq!(follower.liveness(), Some(Liveness::Dead));
    assert_eq!(live::probe(&d1).unwrap(), Liveness::Dead);
    assert_eq!(states(root), [pair("vm1", "dead"), pair("vm2", "live")]);
    let table = stdout(&run(&["list", "--root", root.to_str().unwrap()]));
    assert!(
        table.lines().next().is_some_and(|h| h.contains("PRODUCER")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.contains("vm1") && l.contains("dead")),
        "{table}"
    );

    // sample: not silently ok.
    let o = run(&[
        "--path",
        d1.to_str().unwrap(),
        "--count",
        "1",
        "--interval",
        "0.01",
    ]);
    common::assert_error(&o, 1, &["producer is dead", "frozen"]);
    assert_eq!(stdout(&o), "", "no sample of frozen values");

    // check: the rules pass on frozen values, and the report says why.
    let o = run(&[
        "check",
        "--path",
        d1.to_str().unwrap(),
        "--duration",
        "0.05",
        "--interval",
        "0.01",
    ]);
    assert!(stdout(&o).contains("producer: dead"), "{}", stdout(&o));
    assert!(stdout(&o).contains("frozen"), "{}", stdout(&o));
    let o = run(&[
        "check",
        "--path",
        d1.to_str().unwrap(),
        "--duration",
        "0.05",
        "--interval",
        "0.01",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["producer"], "dead");
    let o = run(&[
        "check",
        "--path",
        d2.to_str().unwrap(),
        "--duration",
        "0.05",
        "--interval",
        "0.01",
    ]);
    assert!(stdout(&o).contains("producer: live"), "{}", stdout(&o));

    // --prune removes the dead one only.
    let o = run(&[
        "list",
        "--root",
        root.to_str().unwrap(),
        "--prune",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("pruned"), "{}", stderr(&o));
    assert!(stderr(&o).contains("vm1"), "{}", stderr(&o));
    assert!(!d1.exists(), "the dead producer's directory is gone");
    assert!(d2.join("vcpu").exists(), "the live one's is untouched");
    assert_eq!(states(root), [pair("vm2", "live")]);

    // A clean stop removes the tables: stopped.
    p2.stop();
    assert_eq!(live::probe(&d2).unwrap(), Liveness::Stopped);
    assert_eq!(states(root), []);
}

#[test]
fn a_clean_stop_is_stopped_in_list_and_the_follower() {
    let s = Scratch::new("live-stop");
    let root = s.path();
    let dir = root.join("vm");
    // Made beforehand: the producer leaves a directory it did not create.
    std::fs::create_dir(&dir).unwrap();
    let p = Producer::start(&dir);
    let mut follower = Vm::open_dir(&dir, "vm".into()).unwrap();
    follower.set_probe_interval(Duration::ZERO);
    assert_eq!(states(root), [pair("vm", "live")]);
    p.stop();
    assert!(matches!(
        follower.follow().unwrap(),
        Some(Event::Removed { .. })
    ));
    assert_eq!(follower.probe_liveness(), Some(Liveness::Stopped));
    assert_eq!(states(root), [pair("vm", "stopped")]);
    // A stopped producer's empty directory is pruned too.
    let o = run(&["list", "--root", root.to_str().unwrap(), "--prune"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!dir.exists());
}

#[test]
fn prune_refuses_what_is_not_a_dead_producers() {
    let s = Scratch::new("live-refuse");
    let root = s.path();
    let dir = root.join("vm");
    Producer::start(&dir).kill();
    std::fs::write(dir.join("notes"), b"an admin's file").unwrap();
    let o = run(&["list", "--root", root.to_str().unwrap(), "--prune"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("not pruned"), "{}", stderr(&o));
    assert!(stderr(&o).contains("notes"), "{}", stderr(&o));
    assert!(dir.join("vcpu").exists() && dir.join("notes").exists());
}

#[test]
fn a_producer_starting_while_readers_probe_never_fails() {
    let s = Scratch::new("live-race");
    let dir = s.join("vm");
    let done = Arc::new(AtomicBool::new(false));
    let probes = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (done, probes, dir) = (Arc::clone(&done), Arc::clone(&probes), dir.clone());
            std::thread::spawn(move || {
                loop {
                    // A probe while the directory is being made, locked,
                    // published or removed: never a lock taken.
                    let _ = live::probe(&dir);
                    probes.fetch_add(1, Ordering::Relaxed);
                    if done.load(Ordering::Relaxed) {
                        break;
                    }
                }
            })
        })
        .collect();
    for _ in 0..10 {
        // `start` asserts the readiness line: the producer's LOCK_EX
        // never failed because of a reader.
        let p = Producer::start(&dir);
        assert_eq!(live::probe(&dir).unwrap(), Liveness::Live);
        p.stop();
    }
    done.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert!(probes.load(Ordering::Relaxed) >= 2, "each reader probed");
}
