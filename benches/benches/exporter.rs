//! Section 6: the exporter's scrape path at 1, 100 and 1,000 VMs of 64
//! vCPUs (the standard fields and the KVM monitor's counters, see
//! `vstats_benches::host`), against the same series encoded through the
//! `prometheus` crate's registry.
//!
//! Per scrape, untimed first: every producer writes every record with new
//! values. Timed:
//!
//! * **vstats**: `Scraper::scrape` into a reused `Exposition` and `String`,
//!   exactly what `GET /metrics` runs (find the VMs, open and snapshot
//!   every table, encode), without the HTTP layer; in the text format
//!   0.0.4 (what the `prometheus` crate writes) and in OpenMetrics 1.0;
//! * **read only**: the same discovery, opening and snapshots, no encoding
//!   (the difference is the encoder's share);
//! * **HTTP**: `GET /metrics` round trips (connect, request, whole answer)
//!   to the exporter's own server on 127.0.0.1, at most 100 per VM count;
//! * **prometheus crate**: a `Collector` registered in a `Registry` that
//!   does the same discovery and snapshots at `collect()` and builds the
//!   same families (`MetricFamily`, one `Metric` per series), then
//!   `Registry::gather` and `TextEncoder::encode_utf8` into a reused
//!   `String`: what a Rust exporter does today.
//!
//! Memory comes from a counting global allocator (bytes and blocks
//! allocated per scrape, peak live bytes during the scrape, bytes still
//! live after it) and from RSS, at scrapes 1, 10, 100 and 1,000. Scrape
//! counts per VM count: `VSTATS_EXPORTER_SCRAPES` (default `1000,100,10`,
//! see the docs for why fewer at scale); `--test` runs a tiny host.

use std::{
    collections::HashMap,
    fmt::Write as _,
    hint::black_box,
    io::{Read, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::Instant,
};

use anyhow::Result;
use prometheus::{
    core::{Collector, Desc},
    proto::{self, LabelPair, MetricFamily},
    Registry, TextEncoder,
};
use serde_json::{json, Value};
use vstats_benches::{
    alloc::{self, Counting},
    host::{kvm_descriptors, Host},
    out,
    raw::raise_fd_limit,
    report::{fmt_ns, sig3},
};
use vstats_consumer::{
    discover,
    encode::openmetrics::{family_name, metric_type, runstate_of, Exposition, MetricType, Syntax},
    live::Liveness,
    Counter, Kind, Snapshot, TableKind,
};
use vstats_exporter::{scrape::Scraper, serve};

#[global_allocator]
static ALLOC: Counting = Counting;

const VCPUS: u32 = 64;
const CHECKPOINTS: [usize; 4] = [1, 10, 100, 1000];

/// What one run of `n` scrapes measured.
#[derive(Debug, Default)]
struct Run {
    times_ns: Vec<f64>,
    bytes: usize,
    /// (scrape, allocated bytes, blocks, peak live - live before, live after, rss)
    memory: Vec<[u64; 6]>,
}

impl Run {
    fn median(&self) -> f64 {
        quantile(&self.times_ns, 0.5)
    }

    fn json(&self) -> Value {
        json!({
            "scrapes": self.times_ns.len(),
            "median_ns": self.median(),
            "p99_ns": quantile(&self.times_ns, 0.99),
            "max_ns": quantile(&self.times_ns, 1.0),
            "bytes": self.bytes,
            "memory": self.memory.iter().map(|m| json!({
                "scrape": m[0], "allocated": m[1], "blocks": m[2],
                "peak_extra": m[3], "live_after": m[4], "rss": m[5],
            })).collect::<Vec<_>>(),
        })
    }
}

fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let i = ((s.len() - 1) as f64 * q).round() as usize;
    s[i.min(s.len() - 1)]
}

/// Runs `scrape` `n` times, updating every table before each, and
/// returns the run; `scrape` returns the bytes it produced.
fn measure(host: &mut Host, n: usize, mut scrape: impl FnMut() -> usize) -> Run {
    // Sized up front: the harness's own buffers must not grow between
    // the memory checkpoints.
    let mut run = Run {
        times_ns: Vec::with_capacity(n),
        memory: Vec::with_capacity(CHECKPOINTS.len() + 1),
        ..Run::default()
    };
    for i in 1..=n {
        host.update(i as u64);
        alloc::reset_peak();
        let a0 = alloc::stats();
        let t = Instant::now();
        let bytes = black_box(scrape());
        let dt = t.elapsed().as_nanos() as f64;
        let a1 = alloc::stats();
        run.times_ns.push(dt);
        run.bytes = bytes;
        if CHECKPOINTS.contains(&i) || i == n {
            run.memory.push([
                i as u64,
                a1.allocated - a0.allocated,
                a1.blocks - a0.blocks,
                a1.peak.saturating_sub(a0.live),
                a1.live,
                alloc::rss_bytes(),
            ]);
        }
    }
    run
}

/// Discovery, opening and snapshots of every table, as a scrape does
/// them, without encoding. Returns the records read.
fn read_only(root: &Path) -> usize {
    let mut records = 0;
    if let Ok(host) = discover::host(root) {
        for v in host.vms {
            if v.producer == Some(Liveness::Dead) {
                continue;
            }
            let Ok(vm) = v.vm else { continue };
            for s in vm.sources() {
                let mut snap = Snapshot::new(&s.table);
                s.table.snapshot(&mut snap);
                records += snap.records().len();
            }
        }
    }
    records
}

/// `n` round trips of `GET /metrics` (OpenMetrics asked for, as a
/// Prometheus server does) to the exporter's own server
/// (`serve::serve`, on 127.0.0.1, port picked by the system): connect,
/// send, read the whole answer. Times in ns; the bytes of the last body.
fn http_round_trips(host: &mut Host, root: &Path, n: usize) -> Result<(Vec<f64>, usize)> {
    let server = serve::bind("127.0.0.1:0".parse()?)?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| anyhow::anyhow!("the server has no IP address"))?;
    let scraper = Scraper::new(root.to_path_buf());
    let stop = AtomicBool::new(false);
    let mut times = Vec::with_capacity(n);
    let mut answer = Vec::new();
    let r = std::thread::scope(|s| {
        s.spawn(|| serve::serve(&server, &scraper, &stop));
        let r = (|| -> Result<()> {
            for i in 1..=n {
                host.update(i as u64);
                answer.clear();
                let t = Instant::now();
                let mut c = TcpStream::connect(addr)?;
                c.write_all(
                    b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\
                      Accept: application/openmetrics-text; version=1.0.0\r\n\
                      Connection: close\r\n\r\n",
                )?;
                c.read_to_end(&mut answer)?;
                times.push(t.elapsed().as_nanos() as f64);
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        r
    });
    r?;
    let body = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |h| answer.len() - h - 4);
    Ok((times, body))
}

/// The same series as the exporter's, built at `collect()` for the
/// `prometheus` crate's registry.
#[derive(Debug)]
struct VstatsCollector {
    root: PathBuf,
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut l = LabelPair::default();
    l.set_name(name.to_owned());
    l.set_value(value.to_owned());
    l
}

/// One counter's family in the collector: its index, factor to base
/// units, histogram bounds (base units) and runstate.
struct Slot {
    family: usize,
    factor: f64,
    bounds: Vec<f64>,
    state: Option<&'static str>,
}

struct Families {
    list: Vec<MetricFamily>,
    by_name: HashMap<String, usize>,
}

impl Families {
    fn family(
        &mut self,
        name: String,
        ty: proto::MetricType,
        help: impl FnOnce() -> String,
    ) -> usize {
        if let Some(&i) = self.by_name.get(&name) {
            return i;
        }
        let mut f = MetricFamily::default();
        f.set_name(name.clone());
        f.set_help(help());
        f.set_field_type(ty);
        self.list.push(f);
        self.by_name.insert(name, self.list.len() - 1);
        self.list.len() - 1
    }

    fn gauge(&mut self, name: &str, help: &str, labels: Vec<LabelPair>, v: f64) {
        let i = self.family(name.to_owned(), proto::MetricType::GAUGE, || {
            help.to_owned()
        });
        let mut g = proto::Gauge::default();
        g.set_value(v);
        let mut m = proto::Metric::from_label(labels);
        m.set_gauge(g);
        self.list[i].mut_metric().push(m);
    }

    fn slot(&mut self, table: TableKind, c: &Counter) -> Slot {
        let ty = metric_type(c);
        let mut name = family_name(table, c);
        let pty = match ty {
            MetricType::Counter => {
                name.push_str("_total");
                proto::MetricType::COUNTER
            }
            MetricType::Gauge | MetricType::StateSet => proto::MetricType::GAUGE,
            MetricType::Histogram => proto::MetricType::HISTOGRAM,
            MetricType::Unknown => proto::MetricType::UNTYPED,
        };
        let family = self.family(name, pty, || format!("{}: per {}", c.name(), table));
        let factor = f64::from(c.base().0).powi(i32::from(c.exponent()));
        let n = c.count().saturating_sub(1);
        let bounds = (0..n)
            .map_while(|i| match c.kind() {
                Kind::LOG2_HIST => 1u64.checked_shl(i).filter(|&p| p <= 1 << 62).map(|p| p - 1),
                _ => u64::from(i + 1)
                    .checked_mul(u64::from(c.bucket_size()))?
                    .checked_sub(1),
            })
            .map(|b| b as f64 * factor)
            .collect();
        Slot {
            family,
            factor,
            bounds,
            state: runstate_of(table, c),
        }
    }
}

impl Collector for VstatsCollector {
    fn desc(&self) -> Vec<&Desc> {
        Vec::new()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut f = Families {
            list: Vec::new(),
            by_name: HashMap::new(),
        };
        let Ok(host) = discover::host(&self.root) else {
            return f.list;
        };
        for v in host.vms {
            let mut info = vec![
                label("vm", &v.name),
                label("backend", v.backend.as_str()),
                label("source", &v.source),
            ];
            if let Some(d) = v.domid {
                info.push(label("domid", &d.to_string()));
            }
            f.gauge("vstats_vm_info", "A VM of this host (always 1)", info, 1.0);
            if let Some(p) = v.producer {
                for s in [Liveness::Live, Liveness::Stopped, Liveness::Dead] {
                    let l = vec![label("vm", &v.name), label("state", s.as_str())];
                    let x = if s == p { 1.0 } else { 0.0 };
                    f.gauge("vstats_vm_producer", "The producer's liveness", l, x);
                }
            }
            if v.producer == Some(Liveness::Dead) {
                continue;
            }
            let Ok(vm) = v.vm else { continue };
            for s in vm.sources() {
                let mut snap = Snapshot::new(&s.table);
                s.table.snapshot(&mut snap);
                let kind = s.table.info().kind();
                let counters = s.table.counters();
                let slots: Vec<Slot> = counters.iter().map(|c| f.slot(kind, c)).collect();
                for r in snap.records() {
                    if !r.is_consistent() || r.is_unused() {
                        continue;
                    }
                    let vcpu = (kind == TableKind::Vcpu).then(|| r.index().to_string());
                    for (c, slot) in counters.iter().zip(&slots) {
                        let mut labels = vec![label("vm", &vm.name)];
                        if let Some(d) = vm.domid {
                            labels.push(label("domid", &d.to_string()));
                        }
                        if let Some(i) = &vcpu {
                            labels.push(label("vcpu", i));
                        }
                        if let Some(st) = slot.state {
                            labels.push(label("state", st));
                        }
                        let mut m = proto::Metric::from_label(labels);
                        if c.is_histogram() {
                            let Some(h) = r.histogram(c) else { continue };
                            let mut acc = 0u64;
                            let mut buckets = Vec::with_capacity(h.len());
                            for (i, x) in h.iter().enumerate() {
                                acc = acc.saturating_add(*x);
                                if let Some(&le) = slot.bounds.get(i).filter(|_| i + 1 < h.len()) {
                                    let mut b = proto::Bucket::default();
                                    b.set_upper_bound(le);
                                    b.set_cumulative_count(acc);
                                    buckets.push(b);
                                }
                            }
                            let mut hist = proto::Histogram::default();
                            hist.set_bucket(buckets);
                            hist.set_sample_count(acc);
                            m.set_histogram(hist);
                        } else {
                            let Some(x) = r.get(c) else { continue };
                            let x = x as f64 * slot.factor;
                            match metric_type(c) {
                                MetricType::Counter => {
                                    let mut p = proto::Counter::default();
                                    p.set_value(x);
                                    m.set_counter(p);
                                }
                                _ => {
                                    let mut p = proto::Gauge::default();
                                    p.set_value(x);
                                    m.set_gauge(p);
                                }
                            }
                        }
                        if let Some(fam) = f.list.get_mut(slot.family) {
                            fam.mut_metric().push(m);
                        }
                    }
                }
            }
        }
        f.list
    }
}

/// Lines of `text` that are samples (not comments).
fn samples(text: &str) -> usize {
    text.lines().filter(|l| !l.starts_with('#')).count()
}

fn scenario(vms: usize, scrapes: usize, d: &vstats_benches::host::KvmDescriptors) -> Result<Value> {
    eprintln!("exporter: {vms} VMs of {VCPUS} vCPUs, {scrapes} scrapes each way");
    let t = Instant::now();
    let mut host = Host::new(&format!("exporter-{vms}"), vms, VCPUS, d)?;
    let publish_ns = t.elapsed().as_nanos() as f64;
    let root = host.root().to_path_buf();

    let scraper = Scraper::new(root.clone());
    let (mut e, mut text) = (Exposition::new(), String::new());
    let vstats_text = measure(&mut host, scrapes, || {
        scraper.scrape(&mut e, Syntax::Text, &mut text);
        text.len()
    });
    let text_samples = samples(&text);
    drop((e, text));
    let (mut e, mut om) = (Exposition::new(), String::new());
    let vstats_om = measure(&mut host, scrapes, || {
        scraper.scrape(&mut e, Syntax::OpenMetrics, &mut om);
        om.len()
    });
    drop((e, om));
    let reads = measure(&mut host, scrapes.min(100), || read_only(&root));

    let registry = Registry::new();
    registry.register(Box::new(VstatsCollector { root: root.clone() }))?;
    let enc = TextEncoder::new();
    let mut ptext = String::new();
    let prom = measure(&mut host, scrapes, || {
        ptext.clear();
        let mfs = registry.gather();
        if let Err(err) = enc.encode_utf8(&mfs, &mut ptext) {
            eprintln!("exporter: prometheus TextEncoder: {err}");
        }
        ptext.len()
    });
    let prom_samples = samples(&ptext);
    drop(ptext);
    // Last: the server's worker threads leave their allocator arenas in
    // the RSS of whatever is measured after them.
    let (http, http_bytes) = http_round_trips(&mut host, &root, scrapes.min(100))?;

    Ok(json!({
        "vms": vms,
        "vcpus": VCPUS,
        "publish_ns": publish_ns,
        "records": read_only(&root),
        "text_samples": text_samples,
        "prometheus_samples": prom_samples,
        "vstats_text": vstats_text.json(),
        "vstats_openmetrics": vstats_om.json(),
        "read_only": reads.json(),
        "http": {
            "requests": http.len(),
            "median_ns": quantile(&http, 0.5),
            "p99_ns": quantile(&http, 0.99),
            "body_bytes": http_bytes,
        },
        "prometheus": prom.json(),
    }))
}

fn mib(b: f64) -> String {
    format!("{} MiB", sig3(b / 1048576.0))
}

fn bytes(b: f64) -> String {
    if b >= 1048576.0 {
        mib(b)
    } else if b >= 1024.0 {
        format!("{} KiB", sig3(b / 1024.0))
    } else {
        format!("{b} B")
    }
}

/// The markdown the report generator includes as section 6.
fn markdown(d_live: bool, runs: &[Value]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "VMs of {VCPUS} vCPUs published under a temporary root by in-process producers \
         (the standard fields and {} KVM counters per vCPU), every value rewritten \
         before each scrape. Times are per scrape (median, p99); text is Prometheus \
         text 0.0.4 unless said.\n",
        if d_live {
            "a live KVM VM's"
        } else {
            "SYNTHETIC (no usable /dev/kvm)"
        }
    );
    s += "| VMs | scrapes | series (text) | vstats text: median / p99 | bytes | vstats OpenMetrics: median | read only (find, open, snapshot) | `GET /metrics` over HTTP (OpenMetrics): median | `prometheus` crate: median / p99 | bytes | prometheus / vstats |\n";
    s += "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n";
    for r in runs {
        let t = &r["vstats_text"];
        let p = &r["prometheus"];
        let f = |v: &Value| v.as_f64().map_or("?".into(), fmt_ns);
        let ratio = p["median_ns"].as_f64().unwrap_or(f64::NAN)
            / t["median_ns"].as_f64().unwrap_or(f64::NAN);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} / {} | {} | {} | {} | {} ({}) | {} / {} | {} | {}x |",
            r["vms"],
            t["scrapes"],
            r["text_samples"],
            f(&t["median_ns"]),
            f(&t["p99_ns"]),
            bytes(t["bytes"].as_f64().unwrap_or(0.0)),
            f(&r["vstats_openmetrics"]["median_ns"]),
            f(&r["read_only"]["median_ns"]),
            f(&r["http"]["median_ns"]),
            bytes(r["http"]["body_bytes"].as_f64().unwrap_or(0.0)),
            f(&p["median_ns"]),
            f(&p["p99_ns"]),
            bytes(p["bytes"].as_f64().unwrap_or(0.0)),
            sig3(ratio),
        );
    }
    s += "\nMemory per scrape (counting global allocator; \"retained\" is every byte \
          live after the scrape, the host's fixtures included; RSS of the whole \
          benchmark process):\n\n";
    s += "| VMs | encoder | scrape | allocated | allocations | peak above the start | retained after | RSS |\n";
    s += "|--:|---|--:|--:|--:|--:|--:|--:|\n";
    for r in runs {
        for (key, label) in [("vstats_text", "vstats"), ("prometheus", "`prometheus`")] {
            if let Some(mem) = r[key]["memory"].as_array() {
                for m in mem {
                    let g = |k: &str| m[k].as_f64().unwrap_or(0.0);
                    let _ = writeln!(
                        s,
                        "| {} | {label} | {} | {} | {} | {} | {} | {} |",
                        r["vms"],
                        m["scrape"],
                        bytes(g("allocated")),
                        m["blocks"],
                        bytes(g("peak_extra")),
                        bytes(g("live_after")),
                        bytes(g("rss")),
                    );
                }
            }
        }
    }
    s
}

fn main() {
    if out::list_mode() {
        println!("exporter/scrape: benchmark");
        return;
    }
    if let Err(e) = raise_fd_limit() {
        eprintln!("exporter: cannot raise the file descriptor limit: {e}");
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then
    // only check that it runs, on a tiny host (as criterion does).
    let test = out::test_mode() || !std::env::args().any(|a| a == "--bench");
    let plan: Vec<(usize, usize)> = if test {
        vec![(1, 3), (2, 2)]
    } else {
        let counts: Vec<usize> = std::env::var("VSTATS_EXPORTER_SCRAPES")
            .unwrap_or_else(|_| "1000,100,10".into())
            .split(',')
            .filter_map(|x| x.trim().parse().ok())
            .collect();
        [1, 100, 1000]
            .into_iter()
            .zip(counts)
            .filter(|&(_, n)| n > 0)
            .collect()
    };
    let r = (|| -> Result<()> {
        let d = kvm_descriptors()?;
        let mut runs = Vec::new();
        for (vms, n) in plan {
            let run = scenario(vms, n, &d)?;
            eprintln!(
                "exporter: {vms} VMs: vstats {} per scrape, prometheus crate {}",
                fmt_ns(run["vstats_text"]["median_ns"].as_f64().unwrap_or(f64::NAN)),
                fmt_ns(run["prometheus"]["median_ns"].as_f64().unwrap_or(f64::NAN)),
            );
            runs.push(run);
        }
        let md = markdown(d.live, &runs);
        println!("{md}");
        out::write_json(
            "exporter",
            &json!({ "kvm_live": d.live, "runs": runs, "markdown": md }),
        )?;
        Ok(())
    })();
    if let Err(e) = r {
        eprintln!("exporter: {e:#}");
        std::process::exit(1);
    }
}
