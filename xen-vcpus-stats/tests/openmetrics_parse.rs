//! `sample --format openmetrics --count 2` and `list --format openmetrics`
//! read back by the reference OpenMetrics parser (Python
//! `prometheus_client`): one valid exposition each. Without the parser the
//! test prints "skipped: ..." (fails when `VSTATS_CLIENTS_REQUIRED=1`).

mod common;

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Stdio,
};

use common::{run_while, stdout, tool, Scratch};
use vstats_producer::synth::Synth;

fn python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-venv/bin/python");
    let py = std::env::var_os("VSTATS_PYTHON")
        .map(PathBuf::from)
        .or_else(|| venv.is_file().then_some(venv));
    if py.is_none() {
        let required = std::env::var_os("VSTATS_CLIENTS_REQUIRED").is_some_and(|v| v == "1");
        assert!(!required, "prometheus_client is required (VSTATS_PYTHON)");
        println!("skipped: Python with prometheus_client not found (VSTATS_PYTHON)");
    }
    py
}

/// (families, samples) the OpenMetrics parser reads from `text`.
fn parse(py: &Path, text: &str) -> (usize, usize) {
    let script = "import sys\nfrom prometheus_client.openmetrics import parser as om\n\
                  f = list(om.text_string_to_metric_families(sys.stdin.read()))\n\
                  print(len(f), sum(len(x.samples) for x in f))\n";
    let mut c = std::process::Command::new(py)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "rejected: {}\n{text}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let mut n = out.split_whitespace().map(|x| x.parse().unwrap());
    (n.next().unwrap(), n.next().unwrap())
}

#[test]
fn sample_and_list_parse_as_openmetrics() {
    let s = Scratch::new("om-parse");
    let dir = s.join("vm1");
    let mut synth = Synth::new(&dir, 2).unwrap();
    let mut c = tool();
    c.args(["sample", "--path", dir.to_str().unwrap()]).args([
        "--interval",
        "0.05",
        "--count",
        "2",
        "--format",
        "openmetrics",
    ]);
    let o = run_while(c, || synth.update());
    assert!(o.status.success(), "{}", common::stderr(&o));
    let text = stdout(&o);
    assert_eq!(text.matches("# EOF").count(), 1);
    assert!(text.ends_with("# EOF\n"));

    let mut c = tool();
    c.args([
        "list",
        "--root",
        s.path().to_str().unwrap(),
        "--format",
        "openmetrics",
    ]);
    let l = c.output().unwrap();
    assert!(l.status.success());
    let list = stdout(&l);
    assert!(
        list.contains("vstats_vm_info{vm=\"vm1\",backend=\"file\",source=\"")
            && list.contains("vstats_vm_producer{vm=\"vm1\",state=\"live\"} 1\n")
            && list.ends_with("# EOF\n"),
        "{list}"
    );

    let Some(py) = python() else { return };
    let (families, samples) = parse(&py, &text);
    assert!(families >= 10, "{families}");
    // Two points of every scalar series: at least the 4 runstates of 2
    // vCPUs, twice.
    assert!(samples >= 16, "{samples}");
    assert_eq!(parse(&py, &list), (2, 4));
    synth.remove().unwrap();
}

/// `--count 1` is one snapshot, as a scrape is: one exposition without
/// timestamps (what a push or a file-based collector needs; timestamped
/// points are for `--count` 2 and more).
#[test]
fn one_sample_is_a_snapshot_without_timestamps() {
    let s = Scratch::new("om-one");
    let dir = s.join("vm1");
    let mut synth = Synth::new(&dir, 2).unwrap();
    let mut c = tool();
    c.args(["sample", "--path", dir.to_str().unwrap()]).args([
        "--interval",
        "0.05",
        "--count",
        "1",
        "--format",
        "openmetrics",
    ]);
    let o = run_while(c, || synth.update());
    assert!(o.status.success(), "{}", common::stderr(&o));
    let text = stdout(&o);
    assert_eq!(text.matches("# EOF").count(), 1);
    assert!(text.ends_with("# EOF\n"));
    let points: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(points.len() >= 8, "{text}");
    for p in &points {
        // name{labels} value: no timestamp after the value.
        let (_, value) = p.rsplit_once("} ").unwrap_or_else(|| panic!("{p}"));
        assert!(!value.contains(' '), "a timestamp: {p}");
    }
    if let Some(py) = python() {
        let (families, samples) = parse(&py, &text);
        assert!(
            families >= 10 && samples == points.len(),
            "{families} {samples}"
        );
    }
    synth.remove().unwrap();
}

/// An r3 table's current runstate is a stateset the reference parser
/// accepts (its state label is named after the family), in one sample and
/// in a timestamped stream of two.
#[test]
fn the_runstate_stateset_parses() {
    let s = Scratch::new("om-stateset");
    let dir = s.join("spin");
    let e = vstats_abi::clock::monotonic_ns();
    let _live = common::write_frozen_r3(&dir, &[([1000, 0, 0, 0], 0, e), ([0, 0, 9, 0], 2, e)]);
    for count in ["1", "2"] {
        let o = tool()
            .args(["sample", "--path", dir.to_str().unwrap()])
            .args(["--interval", "0.05", "--count", count])
            .args(["--format", "openmetrics"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", common::stderr(&o));
        let text = stdout(&o);
        assert!(
            text.contains("# TYPE vstats_vcpu_runstate stateset\n"),
            "{text}"
        );
        let states = text
            .lines()
            .filter(|l| l.starts_with("vstats_vcpu_runstate{"))
            .count();
        assert_eq!(states, 8 * count.parse::<usize>().unwrap(), "{text}");
        if let Some(py) = python() {
            let (families, samples) = parse(&py, &text);
            assert!(families >= 2 && samples >= states, "{families} {samples}");
        }
    }
}
