//! The output formats, schema, list, filters and restarts, on tables the
//! producer crate publishes (the VM-less producer's model, whose values
//! are known exactly).

mod common;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Output, Stdio},
    time::{Duration, Instant},
};

use common::{json_lines, stdout, tool, Scratch};
use serde_json::Value;
use vstats_abi::{
    layout::{Layout, LayoutParams},
    record::VCPU_STD_DESCRIPTORS,
    VCPU_STATS_MAGIC,
};
use vstats_producer::synth::Synth;
use vstats_producer::{shm::ShmTable, TableSpec};

/// Runs the tool with `args` while `synth` keeps updating (every 5 ms).
fn sample_live(synth: &mut Synth, args: &[&str]) -> Output {
    let child = tool()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    keep_updating(synth, child)
}

fn keep_updating(synth: &mut Synth, mut child: Child) -> Output {
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the tool did not finish");
        synth.update();
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-12)
}

#[test]
fn json_lines_shape_and_values() {
    let s = Scratch::new("json");
    let dir = s.join("vm3");
    let mut synth = Synth::new(&dir, 3).unwrap();
    let o = sample_live(
        &mut synth,
        &[
            "--path",
            dir.to_str().unwrap(),
            "--interval",
            "0.1",
            "--count",
            "2",
            "--format",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 2);
    for (n, l) in lines.iter().enumerate() {
        let keys: Vec<&str> = l.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "sample",
                "timestamp",
                "monotonic_ns",
                "interval",
                "vm",
                "source",
                "domid",
                "generation",
                "vcpu_slots",
                "vcpus",
                "aggregates",
                "domain"
            ]
        );
        assert_eq!(l["sample"], n as u64 + 1);
        assert!(l["timestamp"].as_str().unwrap().ends_with('Z'));
        // Ticks are at fixed deadlines from the start, so on a loaded
        // machine a late tick makes the next interval short: only its sign
        // is certain.
        assert!(l["interval"].as_f64().unwrap() > 0.0, "{}", l["interval"]);
        assert_eq!(l["vm"], "vm3");
        assert_eq!(l["domid"], Value::Null);
        assert_eq!(l["vcpu_slots"], 3);
        let vcpus = l["vcpus"].as_array().unwrap();
        assert_eq!(vcpus.len(), 3);
        for (i, v) in vcpus.iter().enumerate() {
            let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(
                keys,
                [
                    "vcpu",
                    "status",
                    "runstate",
                    "share_base",
                    "runstate_ns",
                    "current_runstate",
                    "runstate_entry_time",
                    "extrapolated",
                    "rates",
                    "values"
                ]
            );
            // Extrapolated (r3 with a clock) or not (r2), the shares say
            // which denominator they used.
            let extrapolated = v["extrapolated"].as_bool().unwrap();
            let base = v["share_base"].as_str().unwrap();
            assert!(["clock", "deltas"].contains(&base), "{base}");
            if extrapolated {
                assert!(v["runstate_entry_time"].is_u64(), "{v}");
                assert!(v["current_runstate"].is_string(), "{v}");
            }
            assert_eq!(v["vcpu"], i as u64);
            assert_eq!(v["status"], "ok");
            // Runstate shares: the model's fractions, summing to 1.
            let sh = &v["runstate"];
            let total: f64 = ["running", "runnable", "blocked", "offline"]
                .iter()
                .map(|k| sh[k].as_f64().unwrap())
                .sum();
            assert!((total - 1.0).abs() < 1e-9, "{sh}");
            let pct = f64::from(20 + (15 * i as u32) % 60) / 100.0;
            assert!((sh["running"].as_f64().unwrap() - pct).abs() < 1e-6, "{sh}");
            assert!(
                (sh["runnable"].as_f64().unwrap() - 0.03).abs() < 1e-6,
                "{sh}"
            );
            // Raw runstate times add up to the time since creation.
            let ns: u64 = ["running", "runnable", "blocked", "offline"]
                .iter()
                .map(|k| v["runstate_ns"][k].as_u64().unwrap())
                .sum();
            assert!(ns > 0);
            // Rates of cumulative counters only, per second, raw units.
            let rates = v["rates"].as_object().unwrap();
            let names: Vec<&str> = rates.keys().map(String::as_str).collect();
            assert_eq!(
                names,
                [
                    "runstate_running_time",
                    "runstate_runnable_time",
                    "runstate_blocked_time",
                    "runstate_offline_time",
                    "exits",
                    "io_exits",
                    "halt_exits",
                    "halt_wait_ns"
                ]
            );
            let exits = rates["exits"].as_f64().unwrap();
            assert!(
                close(exits, 1000.0 * (i as f64 + 1.0), 0.25),
                "vCPU {i}: {exits}"
            );
            assert!(close(
                rates["runstate_running_time"].as_f64().unwrap(),
                pct * 1e9,
                0.25
            ));
            // Values: every counter, histograms as arrays.
            let vals = &v["values"];
            assert_eq!(vals.as_object().unwrap().len(), 11);
            assert_eq!(vals["halt_wait_hist"].as_array().unwrap().len(), 32);
            assert_eq!(vals["pending_irqs"], u64::from(i as u32 % 2));
            assert_eq!(vals["runstate_running_time"], v["runstate_ns"]["running"]);
        }
        // Aggregates across vCPUs (statsfs-style).
        let ag = &l["aggregates"];
        assert!(
            ag.get("halt_wait_hist").is_none(),
            "no aggregate of histograms"
        );
        let e = &ag["exits"];
        let sum: u64 = vcpus
            .iter()
            .map(|v| v["values"]["exits"].as_u64().unwrap())
            .sum();
        assert_eq!(e["sum"], sum);
        assert_eq!(e["count"], 3);
        assert_eq!(e["absent"], 0);
        assert_eq!(e["min"], vcpus[0]["values"]["exits"]);
        assert_eq!(e["max"], vcpus[2]["values"]["exits"]);
        assert!(close(
            e["average"].as_f64().unwrap(),
            sum as f64 / 3.0,
            1e-9
        ));
        assert!(
            close(e["rate"]["sum"].as_f64().unwrap(), 6000.0, 0.25),
            "{e}"
        );
        assert_eq!(e["rate"]["count"], 3);
        let p = &ag["pending_irqs"];
        assert_eq!((p["zero"].as_u64(), p["sum"].as_u64()), (Some(2), Some(1)));
        assert_eq!(p["rate"], Value::Null, "instant counters have no rate");
        // The domain table.
        let d = &l["domain"];
        assert_eq!(d["status"], "ok");
        assert_eq!(d["values"]["vcpus_online"], 3);
        assert_eq!(d["values"]["vcpus_max"], 3);
        assert!(close(d["rates"]["uptime"].as_f64().unwrap(), 1e9, 0.25));
        assert!(d["rates"].get("vcpus_online").is_none());
    }
    let (t0, t1) = (
        lines[0]["monotonic_ns"].as_u64().unwrap(),
        lines[1]["monotonic_ns"].as_u64().unwrap(),
    );
    assert!(t1 > t0, "{t0} {t1}");
    synth.remove().unwrap();
}

/// Absent counters are `null`, unused slots `unused`, and a record the
/// producer did not update during the interval has no shares.
#[test]
fn absent_unused_and_idle() {
    let s = Scratch::new("absent");
    let path = s.join("vcpu");
    let spec = TableSpec {
        magic: VCPU_STATS_MAGIC,
        layout: Layout::compute(&LayoutParams::vcpu_r2(3)).unwrap(),
        descriptors: VCPU_STD_DESCRIPTORS,
        generation: 1,
    };
    let mut t = ShmTable::create(&path, &spec).unwrap();
    // This test is the producer: readers see it live.
    let _live = vstats_producer::publish::LivenessLock::take(s.path()).unwrap();
    {
        let (_, mut w) = t.split();
        let mut w0 = w.next().unwrap();
        let mut w1 = w.next().unwrap();
        w0.update(|u| {
            for k in 0..4 {
                u.set(k, 1000 * (k as u64 + 1));
            }
        });
        w1.update(|u| {
            for k in 0..3 {
                u.set(k, 5);
            }
            u.set_inactive(3);
        });
        // Record 2 is never written: an unused slot.
    }
    let o = tool()
        .args([
            "--path",
            path.to_str().unwrap(),
            "--interval",
            "0.05",
            "--count",
            "1",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    let l = &json_lines(&o)[0];
    let v = &l["vcpus"];
    assert_eq!(v[0]["status"], "ok");
    assert_eq!(v[0]["runstate_ns"]["blocked"], 3000);
    assert_eq!(
        v[0]["runstate"]["running"],
        Value::Null,
        "no update in the interval: no shares"
    );
    assert_eq!(v[0]["rates"]["runstate_running_time"], 0.0);
    assert_eq!(v[1]["status"], "ok");
    assert_eq!(v[1]["runstate_ns"]["offline"], Value::Null);
    assert_eq!(v[1]["values"]["runstate_offline_time"], Value::Null);
    assert_eq!(v[1]["rates"]["runstate_offline_time"], Value::Null);
    assert_eq!(v[2]["status"], "unused");
    assert_eq!(v[2]["values"]["runstate_running_time"], Value::Null);
    let ag = &l["aggregates"]["runstate_offline_time"];
    assert_eq!(
        (ag["count"].as_u64(), ag["absent"].as_u64()),
        (Some(1), Some(1)),
        "unused slots are not counted"
    );
    assert_eq!(
        l["domain"],
        Value::Null,
        "a lone vcpu file has no domain table"
    );
    // The table format shows absent values as '-'.
    let o = tool()
        .args([
            "--path",
            path.to_str().unwrap(),
            "--interval",
            "0.05",
            "--count",
            "1",
            "--names",
            "runstate_*",
        ])
        .output()
        .unwrap();
    let text = stdout(&o);
    // vCPU 1's row: VCPU STATE RUNNING% RUNNABLE% BLOCKED% OFFLINE%.
    let row = text.lines().find(|l| l.starts_with("1 ")).unwrap();
    assert_eq!(row.split_whitespace().nth(5), Some("-"), "{text}");
    assert!(text.contains("vCPUs 2 shown of 3 slots"), "{text}");
    drop(t);
}

#[test]
fn openmetrics_exposition() {
    let s = Scratch::new("om");
    let dir = s.join("om-vm");
    let mut synth = Synth::new(&dir, 2).unwrap();
    let o = sample_live(
        &mut synth,
        &[
            "--path",
            dir.to_str().unwrap(),
            "--interval",
            "0.05",
            "--count",
            "2",
            "--format",
            "openmetrics",
        ],
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    let text = stdout(&o);
    let expositions: Vec<&str> = text.split_inclusive("# EOF\n").collect();
    assert_eq!(expositions.len(), 1, "one exposition for --count 2");
    let e = expositions[0];
    assert!(e.ends_with("# EOF\n"));
    let mut types = std::collections::HashMap::new();
    // series -> (timestamps, last value)
    let mut points: std::collections::HashMap<String, Vec<f64>> = Default::default();
    for line in e.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, t) = rest.split_once(' ').unwrap();
            assert!(
                types.insert(name.to_owned(), t.to_owned()).is_none(),
                "{name} twice"
            );
            assert!(
                name.starts_with("vstats_vcpu_") || name.starts_with("vstats_domain_"),
                "{name}"
            );
        } else if let Some(rest) = line.strip_prefix("# UNIT ") {
            let (name, unit) = rest.split_once(' ').unwrap();
            assert!(
                name.ends_with(&format!("_{unit}")),
                "the unit is the name's suffix: {line}"
            );
        } else if line.starts_with("# HELP ") || line == "# EOF" {
        } else {
            // name{labels} value timestamp
            let (point, ts) = line.rsplit_once(' ').unwrap();
            let ts: f64 = ts.parse().unwrap_or_else(|_| panic!("{line}"));
            let (series, value) = point.rsplit_once(' ').unwrap();
            value.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
            points.entry(series.to_owned()).or_default().push(ts);
            let name = series.split('{').next().unwrap();
            let family = types
                .keys()
                .filter(|f| name.starts_with(f.as_str()))
                .max_by_key(|f| f.len())
                .unwrap_or_else(|| panic!("no # TYPE before {line}"));
            match types[family].as_str() {
                "counter" => assert_eq!(name, format!("{family}_total"), "{line}"),
                "gauge" | "stateset" => assert_eq!(name, family, "{line}"),
                "histogram" => assert!(name.ends_with("_bucket"), "{line}"),
                t => panic!("type {t}"),
            }
            assert!(series.contains("vm=\"om-vm\""), "{line}");
            assert!(!name.contains("_ns_"), "no abbreviated unit: {line}");
        }
    }
    // Two timestamped points per scalar series, oldest first; one (the
    // latest) per histogram series.
    for (series, ts) in &points {
        let n = if series.contains("_bucket{") { 1 } else { 2 };
        assert_eq!(ts.len(), n, "{series}");
        assert!(ts.windows(2).all(|w| w[0] < w[1]), "{series}: {ts:?}");
    }
    let family = "vstats_vcpu_runstate_seconds";
    assert_eq!(types[family], "counter");
    assert!(e.contains(&format!("# UNIT {family} seconds\n")));
    assert!(e.contains("# HELP vstats_vcpu_exits exits: cumulative count per vCPU\n"));
    assert_eq!(types["vstats_vcpu_pending_irqs"], "gauge");
    assert_eq!(types["vstats_vcpu_max_halt_wait_seconds"], "gauge");
    assert_eq!(types["vstats_vcpu_halt_wait_hist_seconds"], "histogram");
    assert_eq!(types["vstats_domain_uptime_seconds"], "counter");
    assert_eq!(types["vstats_domain_vcpus_online"], "gauge");
    let has = |prefix: &str| e.lines().any(|l| l.starts_with(prefix));
    assert!(has("vstats_vcpu_pending_irqs{vm=\"om-vm\",vcpu=\"1\"} 1 "));
    assert!(has("vstats_domain_vcpus_max{vm=\"om-vm\"} 2 "));
    assert!(
        has("vstats_vcpu_max_halt_wait_seconds{vm=\"om-vm\",vcpu=\"0\"} 0.002 "),
        "{e}"
    );
    // Base units: nanoseconds become seconds exactly; the runstates are
    // one family with a state label.
    for state in ["running", "runnable", "blocked", "offline"] {
        assert!(has(&format!(
            "{family}_total{{vm=\"om-vm\",vcpu=\"1\",state=\"{state}\"}} "
        )));
    }
    let running = e
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "{family}_total{{vm=\"om-vm\",vcpu=\"0\",state=\"running\"}}"
            ))
        })
        .unwrap();
    let secs: f64 = running.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(secs > 0.0 && secs < 60.0, "{running}");
    // Histogram: cumulative buckets with le bounds in seconds, +Inf; no
    // _count or _sum (no sum exists).
    assert!(has(
        "vstats_vcpu_halt_wait_hist_seconds_bucket{vm=\"om-vm\",vcpu=\"0\",le=\"0\"} 0 "
    ));
    assert!(e.contains("le=\"0.000000001\"}"));
    assert!(
        e.contains("le=\"0.002097151\"}"),
        "bucket 21: [2^20, 2^21) ns"
    );
    let inf = e
        .lines()
        .find(|l| {
            l.starts_with(
                "vstats_vcpu_halt_wait_hist_seconds_bucket{vm=\"om-vm\",vcpu=\"0\",le=\"+Inf\"}",
            )
        })
        .unwrap();
    let bucket_values: Vec<u64> = e
        .lines()
        .filter(|l| {
            l.starts_with("vstats_vcpu_halt_wait_hist_seconds_bucket{vm=\"om-vm\",vcpu=\"0\",")
        })
        .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(bucket_values.windows(2).all(|w| w[0] <= w[1]), "cumulative");
    assert_eq!(
        inf.split(' ').nth(1).unwrap().parse::<u64>().unwrap(),
        *bucket_values.last().unwrap(),
        "+Inf holds the count"
    );
    assert!(!e.contains("_count{") && !e.contains("_sum{"));
    synth.remove().unwrap();
}

#[test]
fn readable_table() {
    let s = Scratch::new("table");
    let dir = s.join("tvm");
    let mut synth = Synth::new(&dir, 2).unwrap();
    let o = sample_live(
        &mut synth,
        &[
            "--path",
            dir.to_str().unwrap(),
            "--interval",
            "0.05",
            "--count",
            "1",
        ],
    );
    assert!(o.status.success());
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("sample 1  ") && lines[0].contains("vm tvm"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("domain: ok  vcpus_online 2  vcpus_max 2  uptime "),
        "{text}"
    );
    let head = |first: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(first))
            .copied()
            .unwrap_or_else(|| panic!("{first}: {text}"))
    };
    let words = |first: &str| head(first).split_whitespace().collect::<Vec<_>>();
    // vCPUs are rows.
    assert_eq!(
        words("VCPU "),
        [
            "VCPU",
            "STATE",
            "RUNNING%",
            "RUNNABLE%",
            "BLOCKED%",
            "OFFLINE%"
        ]
    );
    assert_eq!(words("0 "), ["0", "ok", "20.0", "3.0", "77.0", "0.0"]);
    assert_eq!(words("1 "), ["1", "ok", "35.0", "3.0", "62.0", "0.0"]);
    assert_eq!(
        words("COUNTER"),
        ["COUNTER", "UNIT", "SUM", "MIN", "MAX", "AVG", "ZERO"]
    );
    assert!(head("exits ").contains(" /s "), "{text}");
    assert!(head("remote_tlb_flush ").contains(" /s "), "{text}");
    // The runstates are not repeated as rates, nor the domain line's
    // counters (uptime was a constant `s/s 1.000` row).
    for gone in ["runstate_", "uptime ", "vcpus_online ", "vcpus_max "] {
        assert!(!lines.iter().any(|l| l.starts_with(gone)), "{gone}: {text}");
    }
    assert!(text.contains("(1 histogram not shown"), "{text}");
    synth.remove().unwrap();
}

/// At 4 and 16 vCPUs, with and without `--all`, no line of the table is
/// wider than 80 columns; counters at 0 everywhere are announced and
/// `--all` shows them.
#[test]
fn table_fits_80_columns_and_counts_hidden_zeros() {
    for vcpus in [4, 16] {
        let s = Scratch::new("wide");
        let dir = s.join("w");
        let mut synth = Synth::new(&dir, vcpus).unwrap();
        let path = dir.to_str().unwrap();
        let args = ["--path", path, "--interval", "0.05", "--count", "2"];
        let default = sample_live(&mut synth, &args);
        let all = sample_live(&mut synth, &[&args[..], &["--all"]].concat());
        for o in [&default, &all] {
            assert!(o.status.success(), "{}", common::stderr(o));
            let text = stdout(o);
            assert_eq!(text.matches("\nVCPU ").count(), 2, "{text}");
            for l in text.lines() {
                assert!(l.chars().count() <= 80, "{vcpus} vCPUs: {l:?}");
            }
            let rows = text.lines().filter(|l| l.starts_with(char::is_numeric));
            assert_eq!(rows.count(), 2 * vcpus as usize, "{text}");
        }
        // No counter of the VM-less producer is 0 on every vCPU, once the
        // producer has updated between the tool's two snapshots (this test
        // updates it every 5 ms, but whether it gets a CPU inside a 50 ms
        // interval is up to the scheduler: runs repeat, within a hang
        // bound, until one saw an update)...
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut t = stdout(&default);
        while t.contains("counters zero") {
            assert!(Instant::now() < deadline, "{t}");
            t = stdout(&sample_live(&mut synth, &args));
        }
        // ... but pending_irqs is (vCPU % 2) on vCPUs 0 and 2: counted
        // and hidden, shown by --all.
        let even = [&args[..], &["--vcpus", "0,2"]].concat();
        let t = stdout(&sample_live(&mut synth, &even));
        assert!(t.contains("\n(1 counter zero: --all shows them)\n"), "{t}");
        assert!(!t.contains("\npending_irqs "), "{t}");
        let t = stdout(&sample_live(&mut synth, &[&even[..], &["--all"]].concat()));
        assert!(!t.contains("counters zero"), "{t}");
        let row = t.lines().find(|l| l.starts_with("pending_irqs ")).unwrap();
        assert!(row.ends_with(" 2"), "ZERO is 2: {t}");
        drop(synth);
    }
}

#[test]
fn filters_select_vcpus_and_counters() {
    let s = Scratch::new("filter");
    let dir = s.join("f");
    let mut synth = Synth::new(&dir, 4).unwrap();
    let o = sample_live(
        &mut synth,
        &[
            "--path",
            dir.to_str().unwrap(),
            "--interval",
            "0.05",
            "--count",
            "1",
            "--format",
            "json",
            "--vcpus",
            "0,2-3",
            "--names",
            "exits,halt_*,vcpus_*",
        ],
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    let l = &json_lines(&o)[0];
    let ids: Vec<u64> = l["vcpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["vcpu"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [0, 2, 3]);
    let keys: Vec<&str> = l["vcpus"][0]["values"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["exits", "halt_exits", "halt_wait_ns", "halt_wait_hist"]
    );
    assert!(
        l["vcpus"][1]["runstate"]["running"].is_f64(),
        "runstate shares are always shown"
    );
    assert_eq!(l["aggregates"]["exits"]["count"], 3);
    let dkeys: Vec<&str> = l["domain"]["values"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(dkeys, ["vcpus_online", "vcpus_max"]);
    synth.remove().unwrap();
}

/// A producer restart (a new file under the same name, a new generation)
/// is noticed: a notice on stderr, re-attached, and no rate is computed
/// across the two producers.
#[test]
fn restart_reattaches_without_crossing_deltas() {
    let s = Scratch::new("restart");
    let dir = s.join("r");
    let mut first = Synth::new(&dir, 2).unwrap();
    std::thread::sleep(Duration::from_millis(300)); // counters well above 0
    first.update();
    let mut child = tool()
        .args([
            "--path",
            dir.to_str().unwrap(),
            "--interval",
            "0.5",
            "--count",
            "4",
            "--format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // The first producer runs until the tool has printed a sample of it.
    let first_line = loop {
        first.update();
        match rx.recv_timeout(Duration::from_millis(5)) {
            Ok(line) => break line,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(e) => panic!("the tool ended before its first sample: {e}"),
        }
    };
    // The tool is held (SIGSTOP) while the old producer dies (its tables
    // stay, its lock goes) and the new one's files replace them
    // atomically (rename): the restart falls between two of its samples,
    // however the machine schedules it.
    let signal = |sig: &str| {
        let st = std::process::Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill {sig}");
    };
    signal("-STOP");
    first.crash();
    let mut second = Synth::new(&dir, 2).unwrap();
    let gen2 = vstats_consumer::Table::open(dir.join("vcpu"))
        .unwrap()
        .generation();
    signal("-CONT");
    let o = keep_updating(&mut second, child);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let lines: Vec<Value> = std::iter::once(first_line)
        .chain(rx.iter())
        .map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let err = common::stderr(&o);
    assert!(
        err.contains("producer restarted (generation") && err.contains("re-attached"),
        "{err}"
    );
    assert!(err.contains(&format!("-> {gen2:#x})")), "{err}");
    assert_eq!(lines.len(), 4);
    assert_ne!(lines[0]["generation"], gen2);
    assert_eq!(lines[3]["generation"], gen2);
    for l in &lines {
        for v in l["vcpus"].as_array().unwrap() {
            assert_eq!(v["status"], "ok", "{l}");
            for (k, r) in v["rates"].as_object().unwrap() {
                let r = r.as_f64().unwrap_or_else(|| panic!("{k}: {l}"));
                assert!(r >= 0.0, "{k} {r}");
            }
            // A delta across producers would be the new producer's small
            // counters minus the old one's large ones: never a share.
            let sh = v["runstate"]["running"].as_f64().unwrap();
            assert!(sh > 0.15 && sh < 0.4, "{sh}");
        }
    }
    second.remove().unwrap();
}

fn schema(dir: &Path, format: &str) -> Output {
    tool()
        .args([
            "schema",
            "--path",
            dir.to_str().unwrap(),
            "--format",
            format,
        ])
        .output()
        .unwrap()
}

#[test]
fn schema_in_three_formats() {
    let s = Scratch::new("schema");
    let dir = s.join("sch");
    let synth = Synth::new(&dir, 2).unwrap();
    let o = schema(&dir, "table");
    assert!(o.status.success());
    let t = stdout(&o);
    let row = |n: &str| {
        t.lines()
            .find(|l| l.split_whitespace().next() == Some(n))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("{n}: {t}"))
    };
    assert_eq!(
        row("runstate_running_time"),
        [
            "runstate_running_time",
            "cumulative",
            "seconds",
            "10^-9",
            "8",
            "1"
        ]
    );
    assert_eq!(
        row("halt_wait_hist")[1..4],
        ["log2-hist", "seconds", "10^-9"]
    );
    assert_eq!(row("halt_wait_hist")[5], "32");
    assert_eq!(row("pending_irqs")[1..3], ["instant", "none"]);
    assert_eq!(row("vcpus_online")[1], "instant");
    assert!(
        t.contains("vCPU table: ") && t.contains("(2 slots, 11 counters"),
        "{t}"
    );
    let j: Value = serde_json::from_str(stdout(&schema(&dir, "json")).trim()).unwrap();
    let c0 = &j["vcpu"]["counters"][0];
    assert_eq!(c0["name"], "runstate_running_time");
    assert_eq!(c0["kind"], "cumulative");
    assert_eq!(c0["unit"], "seconds");
    assert_eq!(
        (c0["base"].as_u64(), c0["exponent"].as_i64()),
        (Some(10), Some(-9))
    );
    assert_eq!(j["vcpu"]["counters"].as_array().unwrap().len(), 11);
    assert_eq!(j["domain"]["counters"][2]["name"], "uptime");
    let om = stdout(&schema(&dir, "openmetrics"));
    assert!(
        om.contains("# TYPE vstats_vcpu_exits counter\n") && om.ends_with("# EOF\n"),
        "{om}"
    );
    assert!(
        !om.lines().any(|l| !l.starts_with('#')),
        "metadata only: {om}"
    );
    drop(synth);
}

#[test]
fn list_tables_under_the_root() {
    let s = Scratch::new("list");
    let a = Synth::new(&s.join("alpha"), 2).unwrap();
    let b = Synth::new(&s.join("beta"), 3).unwrap();
    std::fs::create_dir(s.join("junk")).unwrap();
    std::fs::write(s.join("junk/vcpu"), vec![0u8; 4096]).unwrap();
    let o = tool()
        .args(["list", "--format", "json"])
        .env("VSTATS_ROOT", s.path())
        .env("VSTATS_XENFOREIGNMEMORY_LIB", "/nonexistent.so")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    // The Xen note is on stderr in JSON too, and stdout is only data.
    let err = common::stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "xen-vcpus-stats: note: no Xen domains listed: Xen backend unavailable: \
             /nonexistent.so not found"
        ),
        "{err}"
    );
    let l = json_lines(&o);
    let names: Vec<&str> = l.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "beta", "junk"]);
    assert_eq!(
        (l[0]["vcpus"].as_u64(), l[0]["vcpu_slots"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(l[1]["vcpus"], 3);
    assert_eq!(l[1]["domain_table"], true);
    assert_eq!(l[1]["backend"], "file");
    assert!(l[2]["error"].as_str().unwrap().contains("R2"), "{}", l[2]);
    let o = tool()
        .arg("list")
        .env("VSTATS_ROOT", s.path())
        .env("VSTATS_XENFOREIGNMEMORY_LIB", "/nonexistent.so")
        .output()
        .unwrap();
    let t = stdout(&o);
    assert!(t.lines().next().unwrap().starts_with("BACKEND"), "{t}");
    assert!(!t.contains("Xen"), "the note is not on stdout: {t}");
    assert!(
        common::stderr(&o).contains(
            "note: no Xen domains listed: Xen backend unavailable: /nonexistent.so not found"
        ),
        "{}",
        common::stderr(&o)
    );
    drop((a, b));
}
