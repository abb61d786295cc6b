//! The exporter as scrapers see it: the real binary on 127.0.0.1, real
//! producers under a scratch root, and the reference clients (Python
//! `prometheus_client`'s two parsers, `promtool check metrics`, a real
//! Prometheus server). A missing client skips its test with "skipped: ...",
//! or fails it when `VSTATS_CLIENTS_REQUIRED=1` (as `scripts/test` sets).

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use vstats_producer::synth::Synth;

const BIN: &str = env!("CARGO_BIN_EXE_vstats-exporter");
/// Bounds that only stop a hung test (a loaded machine may be slow).
const HANG: Duration = Duration::from_secs(60);
const OPENMETRICS: &str = "application/openmetrics-text;version=1.0.0,text/plain;q=0.5";

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("vstats-exp-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running exporter, killed on drop.
struct Exporter {
    child: Child,
    port: u16,
}

impl Exporter {
    fn start(root: &Path) -> Exporter {
        let mut child = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--root"])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so that the exporter never blocks on stderr.
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        });
        let line = rx.recv_timeout(HANG).expect("no listening line");
        let port = line
            .trim()
            .strip_prefix("vstats-exporter: listening on http://127.0.0.1:")
            .and_then(|r| r.strip_suffix("/metrics"))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("listening line: {line:?}"));
        Exporter { child, port }
    }

    fn stop(mut self) -> std::process::ExitStatus {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        wait_bounded(&mut self.child)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_bounded(child: &mut Child) -> std::process::ExitStatus {
    let until = Instant::now() + HANG;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < until, "the process did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One HTTP/1.1 request: (status, headers lower-cased, body).
fn http(port: u16, method: &str, path: &str, accept: Option<&str>) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(HANG)).unwrap();
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let head = head.to_ascii_lowercase();
    if method != "HEAD" {
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap_or_else(|| panic!("no Content-Length: {head}"));
        assert_eq!(length.parse::<usize>().unwrap(), body.len(), "{head}");
    }
    (status, head, body.to_owned())
}

fn clients_required() -> bool {
    std::env::var_os("VSTATS_CLIENTS_REQUIRED").is_some_and(|v| v == "1")
}

fn skip(what: &str) -> Option<PathBuf> {
    assert!(
        !clients_required(),
        "{what} is required (VSTATS_CLIENTS_REQUIRED=1)"
    );
    println!("skipped: {what} not found (scripts/install-test-deps.sh installs it)");
    None
}

/// A program on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

/// Python with `prometheus_client`: `VSTATS_PYTHON`, else the
/// workspace's venv.
fn python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-venv/bin/python");
    let py = std::env::var_os("VSTATS_PYTHON")
        .map(PathBuf::from)
        .or_else(|| venv.is_file().then_some(venv));
    py.or_else(|| skip("Python with prometheus_client (VSTATS_PYTHON)"))
}

const PARSE: &str = r#"
import sys
from prometheus_client.openmetrics import parser as om
from prometheus_client import parser as text
data = sys.stdin.read()
fams = list((om if sys.argv[1] == "openmetrics" else text).text_string_to_metric_families(data))
print(len(fams), sum(len(f.samples) for f in fams))
"#;

/// Parses `body` with the reference parser of `syntax`: (families,
/// samples); panics with the parser's error.
fn parse(py: &Path, syntax: &str, body: &str) -> (usize, usize) {
    let mut c = Command::new(py)
        .args(["-c", PARSE, syntax])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "the {syntax} parser rejected the exposition: {}\n{body}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut n = out.split_whitespace().map(|x| x.parse().unwrap());
    (n.next().unwrap(), n.next().unwrap())
}

/// `promtool check metrics` on `body`: must report no problem.
fn promtool_check(promtool: &Path, body: &str) {
    let mut c = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.success() && all.trim().is_empty(),
        "promtool: {all}"
    );
}

/// A synthetic r3 producer that never writes again, as a KVM vCPU
/// spinning without exits (design 4.5 step 5, deterministic): `dir/vcpu`
/// with clock 1, record `i` written once as `(times, state, entry)`. The
/// directory's liveness lock is held while the returned value lives.
fn frozen_r3(
    dir: &Path,
    records: &[vstats_producer::synth::FrozenRecord],
) -> vstats_producer::publish::Publication {
    vstats_producer::synth::frozen_r3(dir, records).unwrap()
}

/// The value of the sample line that starts with `head` (`name{labels}`).
fn value_of(body: &str, head: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(head)?.strip_prefix(' ')?.parse().ok())
}

/// Scrapes show up-to-date runstate times (R26) and the current state:
/// a vCPU whose record is never written again still accrues running
/// time from one scrape to the next, in the table's clock.
#[test]
fn scrapes_show_up_to_date_runstate_times_and_the_current_state() {
    let s = Scratch::new("fresh");
    let e0 = vstats_abi::clock::monotonic_ns();
    let _live = frozen_r3(
        &s.0.join("spin"),
        &[([1000, 0, 0, 0], 0, e0), ([0, 0, 7, 0], 2, e0)],
    );
    let e = Exporter::start(&s.0);
    let run = "vstats_vcpu_runstate_seconds_total{vm=\"spin\",vcpu=\"0\",state=\"running\"}";
    let (status, _, om1) = http(e.port, "GET", "/metrics", Some(OPENMETRICS));
    assert_eq!(status, 200);
    let (_, _, om2) = http(e.port, "GET", "/metrics", Some(OPENMETRICS));
    let (r1, r2) = (value_of(&om1, run).unwrap(), value_of(&om2, run).unwrap());
    assert!(r1 > 1e-6 && r2 > r1, "{r1} {r2}: {om2}");
    // Its blocked time, and vCPU 1's running time, do not move.
    let blk = "vstats_vcpu_runstate_seconds_total{vm=\"spin\",vcpu=\"0\",state=\"blocked\"}";
    assert_eq!(value_of(&om2, blk), Some(0.0));
    let run1 = "vstats_vcpu_runstate_seconds_total{vm=\"spin\",vcpu=\"1\",state=\"running\"}";
    assert_eq!(value_of(&om2, run1), Some(0.0));
    assert!(
        om2.contains("# TYPE vstats_vcpu_runstate stateset\n"),
        "{om2}"
    );
    for (v, st, x) in [
        ("0", "running", 1),
        ("0", "blocked", 0),
        ("1", "blocked", 1),
    ] {
        let line = format!(
            "vstats_vcpu_runstate{{vm=\"spin\",vcpu=\"{v}\",vstats_vcpu_runstate=\"{st}\"}} {x}\n"
        );
        assert!(om2.contains(&line), "{line} in {om2}");
    }
    assert!(!om2.contains("entry"), "no entry time: {om2}");
    let (_, _, text) = http(e.port, "GET", "/metrics", None);
    assert!(
        text.contains("# TYPE vstats_vcpu_runstate gauge\n"),
        "{text}"
    );
    if let Some(py) = python() {
        parse(&py, "openmetrics", &om2);
        parse(&py, "text", &text);
    }
    match on_path("promtool") {
        Some(promtool) => promtool_check(&promtool, &text),
        None => {
            skip("promtool");
        }
    }
    assert!(e.stop().success(), "SIGTERM: exit 0");
}

#[test]
fn scrapes_parse_with_the_reference_parsers_and_promtool() {
    let s = Scratch::new("parse");
    let a = Synth::new(&s.0.join("alpha"), 2).unwrap();
    let mut b = Synth::new(&s.0.join("beta \"quoted\""), 3).unwrap();
    b.update();
    let dead = Synth::new(&s.0.join("gone"), 1).unwrap();
    dead.crash();
    let e = Exporter::start(&s.0);

    let (status, head, om) = http(e.port, "GET", "/metrics", Some(OPENMETRICS));
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "{head}"
    );
    assert!(om.ends_with("# EOF\n") && om.matches("# EOF").count() == 1);
    let (status, head, text) = http(e.port, "GET", "/metrics", None);
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
    let (_, _, text2) = http(
        e.port,
        "GET",
        "/metrics?x=1",
        Some("text/plain;version=0.0.4"),
    );
    assert!(!text2.contains("# EOF"));

    // Every VM, one runstate family with a state label, self-metrics;
    // the dead producer's frozen values are not exported.
    for vm in ["alpha", "beta \\\"quoted\\\""] {
        assert!(
            om.contains(&format!(
                "vstats_vcpu_runstate_seconds_total{{vm=\"{vm}\",vcpu=\"1\",state=\"running\"}} "
            )),
            "{om}"
        );
    }
    assert!(
        om.contains("vstats_vm_producer{vm=\"gone\",state=\"dead\"} 1\n"),
        "{om}"
    );
    assert!(!om.contains("vstats_vcpu_runstate_seconds_total{vm=\"gone\""));
    assert!(om.contains("\nvstats_exporter_dead_producers 1\n"), "{om}");
    assert!(om.contains("\nvstats_exporter_scrape_tables 4\n"), "{om}");
    assert!(om.contains("\nvstats_exporter_scrape_errors 0\n"), "{om}");
    assert!(om.contains("# TYPE vstats_exporter_scrape_duration_seconds gauge\n"));
    for name in ["_ns_", "_ns{", "_ns ", "_us_", "_ms_"] {
        assert!(!om.contains(name), "abbreviated unit {name}: {om}");
    }
    for line in om.lines().filter(|l| l.starts_with("# TYPE ")) {
        let family = line.split(' ').nth(2).unwrap();
        assert!(
            om.contains(&format!("# HELP {family} ")),
            "no HELP for {family}"
        );
    }

    if let Some(py) = python() {
        let (fams, samples) = parse(&py, "openmetrics", &om);
        assert!(fams > 10 && samples > 50, "{fams} {samples}");
        let (tf, ts) = parse(&py, "text", &text);
        assert!(tf >= fams && ts >= samples, "{tf} {ts}");
    }
    match on_path("promtool") {
        Some(promtool) => promtool_check(&promtool, &text),
        None => {
            skip("promtool");
        }
    }
    drop(a);
    assert!(e.stop().success(), "SIGTERM: exit 0");
}

#[test]
fn http_behaviour_and_concurrent_scrapes() {
    let s = Scratch::new("http");
    let _a = Synth::new(&s.0.join("alpha"), 4).unwrap();
    let e = Exporter::start(&s.0);
    assert_eq!(http(e.port, "GET", "/", None).0, 404);
    assert_eq!(http(e.port, "GET", "/metricsx", None).0, 404);
    let (status, head, _) = http(e.port, "POST", "/metrics", None);
    assert_eq!(status, 405);
    assert!(head.contains("allow: get, head"), "{head}");
    let (status, head, body) = http(e.port, "HEAD", "/metrics", None);
    assert_eq!((status, body.as_str()), (200, ""));
    assert!(head.contains("content-type: text/plain"));

    let port = e.port;
    let answers: Vec<(u16, String)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                sc.spawn(move || {
                    let accept = (i % 2 == 0).then_some(OPENMETRICS);
                    (0..5)
                        .map(|_| {
                            let (st, _, b) = http(port, "GET", "/metrics", accept);
                            (st, b)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(answers.len(), 40);
    for (st, b) in &answers {
        assert_eq!(*st, 200);
        assert!(b.contains("vstats_vcpu_runstate_seconds_total{vm=\"alpha\",vcpu=\"3\""));
    }
    let mut sig = e;
    // SIGINT too ends it with status 0.
    let pid = rustix::process::Pid::from_child(&sig.child);
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    assert!(wait_bounded(&mut sig.child).success());
}

#[test]
fn bad_or_busy_listen_address_is_a_clear_error() {
    let o = Command::new(BIN)
        .args(["--listen", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--listen not-an-address: not an address"),
        "{err}"
    );

    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let o = Command::new(BIN)
        .args(["--listen", &addr])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

/// `rate(vstats_vcpu_runstate_seconds_total{state="running"}[10s])` from
/// a real Prometheus that scrapes the exporter every second while a live
/// KVM VM runs: one series per vCPU, each in [0, 1].
#[test]
fn prometheus_scrapes_a_live_kvm_vm() {
    use std::ops::ControlFlow;

    use vstats_kvm_vmm::{Error as KvmError, Publisher, Vm, VmConfig};

    const VCPUS: u32 = 2;
    let vm = match Vm::create(VmConfig::new(VCPUS)) {
        Ok(vm) => vm,
        Err(e @ (KvmError::KvmUnavailable { .. } | KvmError::StatsUnsupported)) => {
            println!("skipped: no KVM here: {e}");
            return;
        }
        Err(e) => panic!("Vm::create: {e}"),
    };
    let Some(prometheus) = on_path("prometheus").or_else(|| skip("prometheus")) else {
        return;
    };
    let s = Scratch::new("prom");
    let dir = s.0.join("root").join("kvm-vm");
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    let mut publisher = Publisher::new(vm, &dir).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|sc| {
        let vm_thread = sc.spawn(|| {
            let r = publisher.run_until(
                Duration::from_millis(100),
                || stop.load(std::sync::atomic::Ordering::Relaxed),
                |_| ControlFlow::Continue(()),
            );
            r.map(|_| ())
        });
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            scrape_with_prometheus(&prometheus, &s.0, VCPUS)
        }));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        vm_thread.join().unwrap().unwrap();
        if let Err(p) = result {
            std::panic::resume_unwind(p);
        }
    });
    publisher.remove().unwrap();
}

fn scrape_with_prometheus(prometheus: &Path, scratch: &Path, vcpus: u32) {
    let e = Exporter::start(&scratch.join("root"));
    // KVM's own counters and histograms pass the parsers and promtool too.
    let (_, _, om) = http(e.port, "GET", "/metrics", Some(OPENMETRICS));
    let (_, _, text) = http(e.port, "GET", "/metrics", None);
    assert!(
        om.contains("# TYPE vstats_vcpu_halt_wait_hist_seconds histogram\n"),
        "{om}"
    );
    if let Some(py) = python() {
        parse(&py, "openmetrics", &om);
        parse(&py, "text", &text);
    }
    if let Some(promtool) = on_path("promtool") {
        promtool_check(&promtool, &text);
    }
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let prom_port = free.local_addr().unwrap().port();
    drop(free);
    let config = scratch.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  \
             - job_name: vstats\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            e.port
        ),
    )
    .unwrap();
    let log = std::fs::File::create(scratch.join("prometheus.log")).unwrap();
    let mut prom = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .arg(format!(
            "--storage.tsdb.path={}",
            scratch.join("tsdb").display()
        ))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _prom = Kill(&mut prom);
    let query = |q: &str| -> Vec<serde_json::Value> {
        let answer = TcpStream::connect(("127.0.0.1", prom_port))
            .ok()
            .map(|_| http(prom_port, "GET", &format!("/api/v1/query?query={q}"), None));
        match answer {
            Some((200, _, body)) => {
                let j: serde_json::Value = serde_json::from_str(&body).unwrap();
                j["data"]["result"].as_array().cloned().unwrap_or_default()
            }
            _ => Vec::new(),
        }
    };
    // count_over_time(up{job="vstats"}[1m]) >= 20: twenty scrapes, about
    // 20 s at one a second.
    let scrapes = "count_over_time(up%7Bjob%3D%22vstats%22%7D%5B1m%5D)%20%3E%3D%2020";
    let rate = "rate(vstats_vcpu_runstate_seconds_total%7Bstate%3D%22running%22%7D%5B10s%5D)";
    // Poll the API until Prometheus scraped twenty times and every vCPU's
    // series exists (the bound only stops a hang).
    let until = Instant::now() + Duration::from_secs(90);
    let series = loop {
        if !query(scrapes).is_empty() {
            let r = query(rate);
            if r.len() == vcpus as usize {
                break r;
            }
        }
        assert!(
            Instant::now() < until,
            "no {vcpus} series from Prometheus; its log: {}",
            std::fs::read_to_string(scratch.join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let mut seen: Vec<String> = Vec::new();
    for r in &series {
        let m = &r["metric"];
        assert_eq!(m["vm"], "kvm-vm", "{r}");
        assert_eq!(m["state"], "running", "{r}");
        seen.push(m["vcpu"].as_str().unwrap().to_owned());
        let v: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
        assert!((0.0..=1.0).contains(&v), "a running share: {r}");
    }
    seen.sort();
    println!("rates: {series:?}");
    let up = query("up%7Bjob%3D%22vstats%22%7D");
    assert_eq!(up.len(), 1);
    assert_eq!(up[0]["value"][1], "1", "the last scrape succeeded");
    let want: Vec<String> = (0..vcpus).map(|i| i.to_string()).collect();
    assert_eq!(seen, want);
    assert!(e.stop().success());
}
