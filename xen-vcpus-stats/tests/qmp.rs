//! `--format qmp`: `sample`, `schema` and `demo` answer in the shapes of
//! QEMU's `query-stats` and `query-stats-schemas`. The checker below is
//! written from the field names and enums of QEMU's `qapi/stats.json`
//! (`StatsResult`, `Stats`, `StatsValue`, `StatsSchema`,
//! `StatsSchemaValue`, `StatsType`, `StatsUnit`, `StatsProvider`,
//! `StatsTarget`), not from vstats' encoder: it is strict (required
//! fields present, no unknown field, enum values valid, integer ranges,
//! histogram values are arrays), and it is shown to reject broken
//! answers.

mod common;

use std::{
    collections::HashMap,
    process::{Output, Stdio},
    time::{Duration, Instant},
};

use common::{stdout, tool, Scratch};
use serde_json::{json, Map, Value};
use vstats_producer::synth::Synth;

const PROVIDERS: [&str; 2] = ["kvm", "cryptodev"];
const TARGETS: [&str; 3] = ["vm", "vcpu", "cryptodev"];
const TYPES: [&str; 5] = [
    "cumulative",
    "instant",
    "peak",
    "linear-histogram",
    "log2-histogram",
];
const UNITS: [&str; 4] = ["bytes", "seconds", "cycles", "boolean"];

type Checked = Result<(), String>;
/// A named way to break an answer.
type Breaker = (&'static str, fn(&mut Value));
/// A named way to break a `query-stats` answer, given where its
/// histogram is.
type StatsBreaker = (&'static str, fn(&mut Value, usize));

/// An object with exactly the `required` fields and any of `optional`.
fn fields<'a>(
    v: &'a Value,
    what: &str,
    required: &[&str],
    optional: &[&str],
) -> Result<&'a Map<String, Value>, String> {
    let o = v
        .as_object()
        .ok_or_else(|| format!("{what}: not an object: {v}"))?;
    for r in required {
        if !o.contains_key(*r) {
            return Err(format!("{what}: missing {r:?}: {v}"));
        }
    }
    for k in o.keys() {
        if !required.contains(&k.as_str()) && !optional.contains(&k.as_str()) {
            return Err(format!("{what}: unknown field {k:?}: {v}"));
        }
    }
    Ok(o)
}

fn one_of(v: &Value, what: &str, allowed: &[&str]) -> Checked {
    match v.as_str() {
        Some(s) if allowed.contains(&s) => Ok(()),
        _ => Err(format!("{what}: {v} is not one of {allowed:?}")),
    }
}

fn int_in(v: &Value, what: &str, lo: i64, hi: i64) -> Checked {
    match v.as_i64() {
        Some(x) if (lo..=hi).contains(&x) => Ok(()),
        _ => Err(format!("{what}: {v} is not an integer in [{lo}, {hi}]")),
    }
}

fn array<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<Value>, String> {
    v.as_array()
        .ok_or_else(|| format!("{what}: not an array: {v}"))
}

/// The `return` of a QMP success response.
fn qmp_return(v: &Value) -> Result<&Value, String> {
    Ok(&fields(v, "response", &["return"], &[])?["return"])
}

/// `query-stats-schemas`: `[StatsSchema]`. Returns the type of each
/// statistic by (target, name).
fn check_schemas(answer: &Value) -> Result<HashMap<(String, String), String>, String> {
    let mut types = HashMap::new();
    for s in array(qmp_return(answer)?, "return")? {
        let o = fields(s, "StatsSchema", &["provider", "target", "stats"], &[])?;
        one_of(&o["provider"], "provider", &PROVIDERS)?;
        one_of(&o["target"], "target", &TARGETS)?;
        for st in array(&o["stats"], "stats")? {
            let v = fields(
                st,
                "StatsSchemaValue",
                &["name", "type", "exponent"],
                &["unit", "base", "bucket-size"],
            )?;
            let name = v["name"].as_str().ok_or("name: not a string")?;
            one_of(&v["type"], "type", &TYPES)?;
            int_in(&v["exponent"], "exponent", i16::MIN.into(), i16::MAX.into())?;
            if let Some(u) = v.get("unit") {
                one_of(u, "unit", &UNITS)?;
            }
            match v.get("base") {
                Some(b) => int_in(b, "base", i8::MIN.into(), i8::MAX.into())?,
                // "Only present if @exponent is non-zero".
                None if v["exponent"] != 0 => return Err(format!("{name}: exponent without base")),
                None => {}
            }
            let linear = v["type"] == "linear-histogram";
            match v.get("bucket-size") {
                Some(b) if linear => int_in(b, "bucket-size", 0, u32::MAX.into())?,
                Some(_) => return Err(format!("{name}: bucket-size on a {}", v["type"])),
                None if linear => {
                    return Err(format!("{name}: linear-histogram without bucket-size"))
                }
                None => {}
            }
            let key = (
                o["target"].as_str().unwrap_or("").to_owned(),
                name.to_owned(),
            );
            let t = v["type"].as_str().unwrap_or("").to_owned();
            if types.insert(key, t).is_some() {
                return Err(format!("{name}: twice in one target"));
            }
        }
    }
    Ok(types)
}

/// `query-stats`: `[StatsResult]`, checked against the schema's types
/// (results with a `qom-path` are vCPUs, those without the VM, as QEMU
/// answers).
fn check_stats(answer: &Value, types: &HashMap<(String, String), String>) -> Checked {
    for r in array(qmp_return(answer)?, "return")? {
        let o = fields(r, "StatsResult", &["provider", "stats"], &["qom-path"])?;
        one_of(&o["provider"], "provider", &PROVIDERS)?;
        let target = match o.get("qom-path") {
            Some(p) if p.is_string() => "vcpu",
            Some(p) => return Err(format!("qom-path: not a string: {p}")),
            None => "vm",
        };
        for st in array(&o["stats"], "stats")? {
            let s = fields(st, "Stats", &["name", "value"], &[])?;
            let name = s["name"].as_str().ok_or("name: not a string")?;
            let ty = types
                .get(&(target.to_owned(), name.to_owned()))
                .ok_or_else(|| format!("{target} {name}: not in the schema"))?;
            let value = &s["value"];
            let u64_ok = |v: &Value| v.is_u64();
            // StatsValue: uint64, bool, or a list of uint64.
            let ok = if ty.ends_with("-histogram") {
                value.as_array().is_some_and(|a| a.iter().all(u64_ok))
            } else {
                u64_ok(value) || value.is_boolean()
            };
            if !ok {
                return Err(format!("{target} {name} ({ty}): bad value {value}"));
            }
        }
    }
    Ok(())
}

fn one_json(o: &Output) -> Vec<Value> {
    assert!(o.status.success(), "{}", common::stderr(o));
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The schema and two samples of a 3-vCPU synthetic producer, in qmp.
fn synth_answers(s: &Scratch) -> (Value, Vec<Value>) {
    let dir = s.join("q3");
    let mut synth = Synth::new(&dir, 3).unwrap();
    let path = dir.to_str().unwrap();
    let schema = tool()
        .args(["schema", "--path", path, "--format", "qmp"])
        .output()
        .unwrap();
    let mut child = tool()
        .args([
            "sample",
            "--path",
            path,
            "--interval",
            "0.05",
            "--count",
            "2",
        ])
        .args(["--format", "qmp"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the tool did not finish");
        synth.update();
        std::thread::sleep(Duration::from_millis(5));
    }
    let samples = one_json(&child.wait_with_output().unwrap());
    synth.remove().unwrap();
    let mut schema = one_json(&schema);
    assert_eq!(schema.len(), 1);
    (schema.remove(0), samples)
}

#[test]
fn answers_pass_the_stats_json_checker() {
    let s = Scratch::new("qmp");
    let (schema, samples) = synth_answers(&s);
    let types = check_schemas(&schema).unwrap();
    assert_eq!(samples.len(), 2);
    for a in &samples {
        check_stats(a, &types).unwrap();
    }
    // The mapping: the domain table is target vm, the vCPU table vcpu.
    let ret = schema["return"].as_array().unwrap();
    let targets: Vec<&str> = ret.iter().map(|s| s["target"].as_str().unwrap()).collect();
    assert_eq!(targets, ["vm", "vcpu"]);
    assert_eq!(
        types[&("vcpu".into(), "halt_wait_hist".into())],
        "log2-histogram"
    );
    assert_eq!(types[&("vcpu".into(), "exits".into())], "cumulative");
    let running = ret[1]["stats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "runstate_running_time")
        .unwrap();
    assert_eq!(
        running,
        &json!({"name": "runstate_running_time", "type": "cumulative",
                "unit": "seconds", "base": 10, "exponent": -9})
    );
    let exits = ret[1]["stats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "exits")
        .unwrap();
    assert_eq!(
        exits,
        &json!({"name": "exits", "type": "cumulative", "exponent": 0})
    );
    // One vm result, then one per vCPU, with QEMU's vCPU qom-paths.
    let results = samples[1]["return"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert!(results[0].get("qom-path").is_none());
    let paths: Vec<&str> = results[1..]
        .iter()
        .map(|r| r["qom-path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/machine/unattached/device[0]",
            "/machine/unattached/device[1]",
            "/machine/unattached/device[2]"
        ]
    );
    let hist = results[1]["stats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "halt_wait_hist")
        .unwrap();
    assert_eq!(hist["value"].as_array().unwrap().len(), 32);
    let uptime = results[0]["stats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "uptime")
        .unwrap();
    assert!(
        uptime["value"].as_u64().unwrap() > 0,
        "raw totals: {uptime}"
    );
}

#[test]
fn the_checker_rejects_broken_answers() {
    let s = Scratch::new("qmpbad");
    let (schema, samples) = synth_answers(&s);
    let types = check_schemas(&schema).unwrap();
    let sample = &samples[0];
    let broken_schema: [Breaker; 7] = [
        ("bare array", |v| *v = v["return"].take()),
        ("unknown field", |v| v["return"][0]["vm"] = json!("x")),
        ("missing provider", |v| {
            v["return"][0].as_object_mut().unwrap().remove("provider");
        }),
        ("bad target", |v| v["return"][0]["target"] = json!("domain")),
        ("vstats kind name", |v| {
            v["return"][1]["stats"][0]["type"] = json!("log2-hist")
        }),
        ("unit none", |v| {
            v["return"][1]["stats"][0]["unit"] = json!("none")
        }),
        ("snake case", |v| {
            let st = &mut v["return"][1]["stats"][0];
            st["bucket_size"] = json!(0);
        }),
    ];
    for (what, breaks) in broken_schema {
        let mut b = schema.clone();
        breaks(&mut b);
        assert!(check_schemas(&b).is_err(), "{what} accepted: {b}");
    }
    let hist_at = |v: &Value| {
        v["return"][1]["stats"]
            .as_array()
            .unwrap()
            .iter()
            .position(|s| s["name"] == "halt_wait_hist")
            .unwrap()
    };
    let broken_stats: [StatsBreaker; 6] = [
        ("histogram as a scalar", |v, h| {
            v["return"][1]["stats"][h]["value"] = json!(5)
        }),
        ("null value", |v, _| {
            v["return"][1]["stats"][0]["value"] = Value::Null
        }),
        ("negative value", |v, _| {
            v["return"][1]["stats"][0]["value"] = json!(-1)
        }),
        ("unknown provider", |v, _| {
            v["return"][0]["provider"] = json!("vstats")
        }),
        ("unknown stat", |v, _| {
            v["return"][1]["stats"][0]["name"] = json!("nope")
        }),
        ("extra field", |v, _| {
            v["return"][1]["target"] = json!("vcpu")
        }),
    ];
    for (what, breaks) in broken_stats {
        let mut b = sample.clone();
        let h = hist_at(&b);
        breaks(&mut b, h);
        assert!(check_stats(&b, &types).is_err(), "{what} accepted: {b}");
    }
    // And the linear-histogram rule, on a schema entry made linear.
    let mut b = schema.clone();
    b["return"][1]["stats"][0]["type"] = json!("linear-histogram");
    assert!(check_schemas(&b).is_err(), "bucket-size missing accepted");
}

/// A live KVM VM of 16 vCPUs (skipped without /dev/kvm): KVM's own
/// counters (booleans, log2 histograms) pass the checker, and the table
/// of its sample fits 80 columns with and without `--all`.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn a_kvm_vms_answers_pass_and_its_table_fits() {
    use std::ops::ControlFlow;

    use vstats_kvm_vmm::{Error, Publisher, Vm, VmConfig};

    let vm = match Vm::create(VmConfig::new(16)) {
        Ok(vm) => vm,
        Err(e @ (Error::KvmUnavailable { .. } | Error::StatsUnsupported)) => {
            println!("skipped: /dev/kvm unavailable: {e}");
            return;
        }
        Err(e) => panic!("Vm::create: {e}"),
    };
    let s = Scratch::new("qmpkvm");
    let dir = s.join("kvm16");
    let path = dir.to_str().unwrap().to_owned();
    let mut publisher = Publisher::new(vm, &dir).unwrap();
    let start = Instant::now();
    // Files, not pipes: nobody reads a pipe while the VM runs.
    let runs: [(&str, &[&str]); 4] = [
        ("schema", &["schema", "--format", "qmp"]),
        ("qmp", &["sample", "--format", "qmp", "--count", "2"]),
        ("table", &["sample", "--count", "2"]),
        ("all", &["sample", "--all", "--count", "2"]),
    ];
    let mut children = Vec::new();
    publisher
        .run(Duration::from_millis(20), |_| {
            if children.is_empty() {
                for (name, args) in runs {
                    let child = tool()
                        .args(args)
                        .args(["--path", &path])
                        .args(if args[0] == "sample" {
                            &["--interval", "0.2"][..]
                        } else {
                            &[]
                        })
                        .stdout(std::fs::File::create(s.join(name)).unwrap())
                        .stderr(std::fs::File::create(s.join(&format!("{name}.err"))).unwrap())
                        .spawn()
                        .unwrap();
                    children.push(child);
                }
            }
            let done = children.iter_mut().all(|c| c.try_wait().unwrap().is_some());
            // Until every run is done (a bound only against a hang).
            if done || start.elapsed() > Duration::from_secs(60) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    publisher.remove().unwrap();
    for (c, (name, _)) in children.iter_mut().zip(runs) {
        let status = c.wait().unwrap();
        let err = std::fs::read_to_string(s.join(&format!("{name}.err"))).unwrap();
        assert!(status.success(), "{name}: {err}");
    }
    let read = |name: &str| std::fs::read_to_string(s.join(name)).unwrap();
    let schema: Value = serde_json::from_str(read("schema").trim()).unwrap();
    let types = check_schemas(&schema).unwrap();
    assert_eq!(
        types[&("vcpu".into(), "halt_wait_hist".into())],
        "log2-histogram"
    );
    let samples: Vec<Value> = read("qmp")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(samples.len(), 2);
    for a in &samples {
        check_stats(a, &types).unwrap();
        // The vm result and 16 vCPUs.
        assert_eq!(a["return"].as_array().unwrap().len(), 17, "{a}");
    }
    for name in ["table", "all"] {
        let text = read(name);
        for l in text.lines() {
            assert!(l.chars().count() <= 80, "{name}: {l:?}\n{text}");
        }
        let vcpu_rows = text.lines().filter(|l| l.starts_with(char::is_numeric));
        assert_eq!(vcpu_rows.count(), 32, "{text}");
    }
    assert!(read("all").lines().count() > read("table").lines().count());
}
