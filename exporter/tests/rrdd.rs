//! `vstats-exporter rrdd` against a reader written here from the protocol's
//! description (xcp-rrdd's plugin protocol v2), independent of the
//! writer's code: the reader is a Python script using Python's own
//! `zlib.crc32` and `struct`, and it keeps repeated JSON keys in order as
//! xcp-rrdd's reader does. Producers are in-process publications whose
//! runstate times the test sets, so the values are exact.

use std::{
    fs,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant, SystemTime},
};

use serde_json::Value as Json;
use vstats_producer::{builder::TableBuilder, publish::Publication, shm::ShmTable};

const EXE: &str = env!("CARGO_BIN_EXE_vstats-exporter");
/// Only stops a hung test; never a timing assertion.
const HANG: Duration = Duration::from_secs(60);

/// The reader. Exit 0 and a JSON document on stdout for a valid file,
/// exit 3 and the reason on stderr for an invalid one.
const READER: &str = r#"
import json, struct, sys, zlib

def fail(why):
    sys.stderr.write(why + "\n")
    sys.exit(3)

data = open(sys.argv[1], "rb").read()
if len(data) < 31:
    fail("truncated: no room for the fixed fields")
if data[0:11] != b"DATASOURCES":
    fail("bad header")
data_crc, meta_crc, count = struct.unpack(">III", data[11:23])
values_end = 31 + 8 * count
if len(data) < values_end + 4:
    fail("truncated: values")
if zlib.crc32(data[23:values_end]) & 0xffffffff != data_crc:
    fail("bad data crc")
(timestamp,) = struct.unpack(">d", data[23:31])
(meta_len,) = struct.unpack(">I", data[values_end:values_end + 4])
meta = data[values_end + 4:values_end + 4 + meta_len]
if len(meta) != meta_len:
    fail("truncated: metadata")
if zlib.crc32(meta) & 0xffffffff != meta_crc:
    fail("bad metadata crc")
doc = json.loads(meta.decode("utf-8"), object_pairs_hook=lambda pairs: pairs)
if len(doc) != 1 or doc[0][0] != "datasources":
    fail("metadata is not {datasources: ...}")
dss = doc[0][1]
if len(dss) != count:
    fail("count %d but %d datasources in the metadata" % (count, len(dss)))
out = []
for i, (name, fields) in enumerate(dss):
    fields = dict(fields)
    raw = data[31 + 8 * i:39 + 8 * i]
    if fields.get("value_type") == "float":
        (value,) = struct.unpack(">d", raw)
    elif fields.get("value_type") == "int64":
        (value,) = struct.unpack(">q", raw)
    else:
        fail("bad value_type for " + name)
    out.append({"name": name, "fields": fields, "value": value})
json.dump({"timestamp": timestamp, "count": count, "datasources": out}, sys.stdout)
"#;

/// The Python to run the reader with, or `None` (test skipped) when
/// there is none and clients are not required.
fn python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-venv/bin/python");
    let found = std::env::var_os("VSTATS_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([venv, PathBuf::from("/usr/bin/python3")])
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var("VSTATS_CLIENTS_REQUIRED").as_deref() != Ok("1"),
            "no Python for the reader (VSTATS_CLIENTS_REQUIRED=1)"
        );
        eprintln!("skipped: no Python for the reader (set VSTATS_PYTHON)");
    }
    found
}

/// Reads `file` with the reader: `Ok(document)` or `Err(reason)`.
fn read(py: &Path, file: &Path) -> Result<Json, String> {
    let out = Command::new(py)
        .args(["-c", READER])
        .arg(file)
        .output()
        .expect("run the reader");
    match out.status.code() {
        Some(0) => Ok(serde_json::from_slice(&out.stdout).expect("the reader's JSON")),
        Some(3) => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        _ => panic!("reader crashed: {out:?}"),
    }
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("vstats-rrdd-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o700)).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A producer: a VM directory with a vCPU table whose runstate times
/// (ns, Xen order) are `times[vcpu]`.
struct Vm {
    publication: Publication,
    _table: ShmTable,
}

fn publish(root: &Path, name: &str, times: &[[u64; 4]]) -> Vm {
    let mut publication = Publication::create(root, name).unwrap();
    let plan = TableBuilder::vcpu(times.len() as u32).build().unwrap();
    let mut table = publication.publish("vcpu", &plan).unwrap();
    let (_, writers) = table.split();
    for (mut w, t) in writers.zip(times) {
        w.update(|u| {
            assert_eq!(u.set_words(0, t), 4);
        });
    }
    Vm {
        publication,
        _table: table,
    }
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn wait(child: &mut Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(start.elapsed() < HANG, "the exporter hangs");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn rrdd(root: &Path, out: &Path, extra: &[&str]) -> Output {
    let child = Command::new(EXE)
        .arg("rrdd")
        .arg("--root")
        .arg(root)
        .arg("--out")
        .arg(out)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = child;
    wait(&mut child);
    child.wait_with_output().unwrap()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The datasources of `vm` in a reader document: (name, fields, value).
fn of_vm<'a>(doc: &'a Json, vm: &str) -> Vec<(&'a str, &'a Json, f64)> {
    let owner = format!("vm {vm}");
    doc["datasources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["fields"]["owner"] == owner.as_str())
        .map(|d| {
            (
                d["name"].as_str().unwrap(),
                &d["fields"],
                d["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

const A: [[u64; 4]; 2] = [
    [7_250_000_000, 1_500_000_000, 11_000_000_000, 0],
    [3_000_000_001, 250_000_000, 16_749_999_999, 1_000_000],
];
const B: [[u64; 4]; 1] = [[42_000_000_000, 2_000_000_000, 5_500_000_000, 500_000_000]];

/// One write (`--count 1`) of two VMs; returns the file and the scratch.
fn one_write(tag: &str) -> (Scratch, PathBuf, f64, f64) {
    let s = Scratch::new(tag);
    let root = s.0.join("root");
    let out = s.0.join("metrics");
    let _a = publish(&root, "vm-a", &A);
    let _b = publish(&root, "vm-b", &B);
    let before = unix_now();
    let o = rrdd(
        &root,
        &out,
        &["--interval", "1", "--count", "1", "--no-xen"],
    );
    let after = unix_now();
    assert!(o.status.success(), "{o:?}");
    (s, out.join("vstats"), before, after)
}

#[test]
fn one_write_holds_every_vcpu_exactly() {
    let Some(py) = python() else { return };
    let (_s, file, before, after) = one_write("exact");
    let doc = read(&py, &file).expect("a valid plugin file");
    let ts = doc["timestamp"].as_f64().unwrap();
    assert!(before <= ts && ts <= after, "{before} <= {ts} <= {after}");
    assert_eq!(doc["count"], doc["datasources"].as_array().unwrap().len());

    let a = of_vm(&doc, "vm-a");
    let names: Vec<&str> = a.iter().map(|d| d.0).collect();
    assert_eq!(
        names,
        [
            "cpu0",
            "cpu1",
            "cpu0_runnable",
            "cpu0_blocked",
            "cpu0_offline",
            "cpu1_runnable",
            "cpu1_blocked",
            "cpu1_offline",
            "cpu_usage"
        ]
    );
    let expect_a = [
        secs(A[0][0]),
        secs(A[1][0]),
        secs(A[0][1]),
        secs(A[0][2]),
        secs(A[0][3]),
        secs(A[1][1]),
        secs(A[1][2]),
        secs(A[1][3]),
        secs(A[0][0] + A[1][0]) / 2.0,
    ];
    for ((name, fields, value), want) in a.iter().zip(expect_a) {
        assert_eq!(*value, want, "{name}");
        assert_eq!(fields["value_type"], "float", "{name}");
        assert_eq!(fields["type"], "derive", "{name}");
        assert_eq!(fields["units"], "(fraction)", "{name}");
        assert_eq!(fields["min"], "0.00", "{name}");
        assert_eq!(fields["max"], "1.00", "{name}");
        let default = if name.contains('_') && *name != "cpu_usage" {
            "false"
        } else {
            "true"
        };
        assert_eq!(fields["default"], default, "{name}");
        assert!(
            !fields["description"].as_str().unwrap().is_empty(),
            "{name}"
        );
    }
    assert_eq!(a[0].1["description"], "CPU0 usage");

    // One vCPU: the domain runstates are exact.
    let b = of_vm(&doc, "vm-b");
    let get = |n: &str| b.iter().find(|d| d.0 == n).map(|d| d.2);
    assert_eq!(get("cpu0"), Some(secs(B[0][0])));
    assert_eq!(get("cpu_usage"), Some(secs(B[0][0])));
    assert_eq!(get("runstate_fullrun"), Some(secs(B[0][0])));
    assert_eq!(get("runstate_full_contention"), Some(secs(B[0][1])));
    assert_eq!(get("runstate_blocked"), Some(secs(B[0][2] + B[0][3])));
    for n in [
        "runstate_concurrency_hazard",
        "runstate_partial_run",
        "runstate_partial_contention",
    ] {
        assert_eq!(get(n), Some(0.0), "{n}");
    }
    assert_eq!(get("runnable_any"), Some(secs(B[0][1])));
    assert_eq!(b.len(), 1 + 3 + 1 + 7);
    // Only these two VMs.
    assert_eq!(
        doc["datasources"].as_array().unwrap().len(),
        a.len() + b.len()
    );
}

#[test]
fn corrupted_files_are_rejected() {
    let Some(py) = python() else { return };
    let (s, file, _, _) = one_write("corrupt");
    let good = fs::read(&file).unwrap();
    read(&py, &file).expect("the original is valid");
    let count = u32::from_be_bytes(good[19..23].try_into().unwrap()) as usize;
    let meta_at = 31 + 8 * count + 4;
    let meta_len = u32::from_be_bytes(good[meta_at - 4..meta_at].try_into().unwrap()) as usize;
    let bad = s.0.join("bad");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("value", flip(&good, 31 + 3), "bad data crc"),
        ("timestamp", flip(&good, 25), "bad data crc"),
        ("data crc", flip(&good, 12), "bad data crc"),
        (
            "metadata",
            flip(&good, meta_at + meta_len / 2),
            "bad metadata crc",
        ),
        ("metadata crc", flip(&good, 16), "bad metadata crc"),
        ("header", flip(&good, 0), "bad header"),
        (
            "cut in the metadata",
            good[..meta_at + meta_len - 1].to_vec(),
            "truncated: metadata",
        ),
        (
            "cut in the values",
            good[..40].to_vec(),
            "truncated: values",
        ),
        ("cut in the header", good[..20].to_vec(), "truncated"),
    ];
    for (what, bytes, why) in cases {
        fs::write(&bad, &bytes).unwrap();
        let e = read(&py, &bad).expect_err(what);
        assert!(e.starts_with(why), "{what}: {e}");
    }
}

fn flip(b: &[u8], at: usize) -> Vec<u8> {
    let mut v = b.to_vec();
    v[at] ^= 0x10;
    v
}

/// Polls the file until the reader's document satisfies `ok` (a read that
/// races a write fails a CRC and is simply read again).
fn until(py: &Path, file: &Path, what: &str, ok: impl Fn(&Json) -> bool) -> Json {
    let start = Instant::now();
    loop {
        if let Ok(doc) = read(py, file) {
            if ok(&doc) {
                return doc;
            }
        }
        assert!(start.elapsed() < HANG, "never saw: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn vms_come_and_go_in_place_and_sigterm_exits_0() {
    let Some(py) = python() else { return };
    let s = Scratch::new("loop");
    let root = s.0.join("root");
    let out = s.0.join("metrics");
    let a = publish(&root, "vm-a", &A);
    let mut child = Command::new(EXE)
        .args(["rrdd", "--interval", "0.1", "--name", "plug"])
        .arg("--root")
        .arg(&root)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let file = out.join("plug");
    let has = |doc: &Json, vm: &str| !of_vm(doc, vm).is_empty();
    until(&py, &file, "vm-a", |d| has(d, "vm-a"));
    let ino = fs::metadata(&file).unwrap().ino();

    let c = publish(&root, "vm-c", &B);
    until(&py, &file, "vm-c added", |d| {
        has(d, "vm-a") && has(d, "vm-c")
    });
    a.publication.remove().unwrap();
    let doc = until(&py, &file, "vm-a removed", |d| {
        !has(d, "vm-a") && has(d, "vm-c")
    });
    assert_eq!(of_vm(&doc, "vm-c")[0].2, secs(B[0][0]));
    // Written in place: the inode xcp-rrdd maps is the one it keeps.
    assert_eq!(fs::metadata(&file).unwrap().ino(), ino);
    assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o600);

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = wait(&mut child);
    assert_eq!(status.code(), Some(0), "{status:?}");
    // The file stays, valid, after SIGTERM.
    read(&py, &file).expect("still valid after SIGTERM");
    drop(c);
}

fn refused(root: &Path, out: &Path, extra: &[&str], msg: &str) {
    let o = rrdd(root, out, extra);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{extra:?}: {err}");
    assert!(err.contains(msg), "{extra:?}: {err}");
}

#[test]
fn bad_options_and_unsafe_outputs_are_refused() {
    let s = Scratch::new("bad");
    let root = s.0.join("root");
    fs::create_dir(&root).unwrap();
    let out = s.0.join("metrics");
    for i in ["0", "-5", "nan", "inf"] {
        refused(&root, &out, &["--interval", i], "invalid --interval");
    }
    // As short as typed, not as 300 digits.
    refused(
        &root,
        &out,
        &["--interval", "1e300"],
        "invalid --interval 1e300: ",
    );
    refused(&root, &out, &["--count", "0"], "invalid --count");
    refused(&root, &out, &["--name", "a/b"], "invalid --name");
    refused(&root, &out, &["--name", ".."], "invalid --name");
    refused(&root, &out, &["--name", "x.tmp"], "xcp-rrdd ignores");
    refused(&root, &out, &["--name", "tap-x"], "xcp-rrdd ignores");

    // A symlinked directory.
    let link = s.0.join("link");
    std::os::unix::fs::symlink(&s.0, &link).unwrap();
    refused(&root, &link, &["--count", "1"], "symbolic link");
    // A directory writable by others, without the sticky bit.
    let open = s.0.join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    refused(&root, &open, &["--count", "1"], "writable by other users");
    // A regular file on the way: the OS error is said once.
    let file = s.0.join("file");
    fs::write(&file, b"").unwrap();
    let o = rrdd(&root, &file.join("metrics"), &["--count", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("Not a directory").count(), 1, "{err}");
    // A symlink as the file.
    fs::create_dir(&out).unwrap();
    let target = s.0.join("target");
    fs::write(&target, b"keep").unwrap();
    std::os::unix::fs::symlink(&target, out.join("vstats")).unwrap();
    refused(&root, &out, &["--count", "1"], "symbolic link");
    // A hard link as the file.
    fs::hard_link(&target, out.join("hard")).unwrap();
    refused(
        &root,
        &out,
        &["--count", "1", "--name", "hard"],
        "hard links",
    );
    // Not a regular file.
    fs::create_dir(out.join("dir")).unwrap();
    refused(
        &root,
        &out,
        &["--count", "1", "--name", "dir"],
        "cannot open",
    );
    assert_eq!(fs::read(&target).unwrap(), b"keep");
}
