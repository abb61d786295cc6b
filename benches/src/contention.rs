//! The contention experiment (section 4 of `docs/benchmarks.md`): one
//! writer updating one record as fast as it can, pinned to one CPU, while
//! something else runs pinned to the other:
//!
//! - **same**: a reader snapshotting the same record in a tight loop. Each
//!   snapshot counts its attempts exactly: the reader calls
//!   `vstats_abi::seqlock::read_consistent` with one attempt at a time (the
//!   library's own loop makes the same attempts, with the same
//!   `spin_loop` between them), so an attempt that saw an odd seq counts
//!   as well as one whose copy was overtaken. Each copy is also checked
//!   for tearing (the writer stores `v, v+1, v+2, v+3`).
//! - **sampler**: a realistic sampler, a whole-table
//!   `vstats_consumer::Table::snapshot` every millisecond (1 kHz).
//! - **neighbour**: a tight reader of the *next* record, to see whether
//!   sharing a cacheline pair (adjacent-line prefetch) slows the writer.
//! - **two writers**: a second writer updating the next record on the
//!   other CPU, as two vCPUs on two physical CPUs do; once with each
//!   writer's private state (its `RecordWriter`, which holds its seq) on
//!   cachelines of its own, once with the two `RecordWriter`s side by side
//!   in one `Vec` (how `vstats-kvm-vmm`'s `Publisher` keeps them).
//!
//! Each is run with a 64-byte and a 128-byte stride. The writer's
//! slowdown is its update rate alone divided by its rate in the scenario,
//! minus one; trials alternate (alone, scenario, alone, ...) and each
//! scenario is compared with the mean of the alone trials either side of
//! it, so slow drifts of a shared machine cancel; the median over rounds
//! is reported with its range.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Barrier,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Result};
use serde::Serialize;
use vstats_abi::seqlock::read_consistent;
use vstats_consumer::{Snapshot, DEFAULT_MAX_ATTEMPTS};
use vstats_producer::RecordWriter;

use crate::{
    fixture::{RecordRef, ShmFixture},
    hot,
    raw::{allowed_cpus, pin_to_cpu},
};

/// Attempts beyond which a tight reader gives up on one snapshot (and
/// counts it busy) so that a trial always ends.
pub const ATTEMPT_CAP: u32 = 1 << 20;

/// How long and how often.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Config {
    /// Length of one trial.
    pub trial_ms: u64,
    /// Rounds of (alone, scenario, alone, ...) per stride.
    pub rounds: u32,
    /// Sampler period in the `sampler` scenario.
    pub sampler_period_us: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            trial_ms: 250,
            rounds: 5,
            sampler_period_us: 1000,
        }
    }
}

/// Attempts per snapshot, exact up to [`ATTEMPT_CAP`].
#[derive(Clone, Debug, Default)]
pub struct AttemptHistogram {
    counts: Vec<u64>,
    max: u32,
}

impl AttemptHistogram {
    /// Counts one snapshot that took `attempts` attempts.
    pub fn add(&mut self, attempts: u32) {
        let i = attempts as usize;
        if self.counts.len() <= i {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        self.max = self.max.max(attempts);
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &AttemptHistogram) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.max = self.max.max(other.max);
    }

    /// Number of snapshots.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The smallest attempt count with at least `q` of the snapshots at or
    /// below it (`q` in `[0, 1]`); 0 when empty.
    pub fn quantile(&self, q: f64) -> u32 {
        let total = self.total();
        if total == 0 {
            return 0;
        }
        let want = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return i as u32;
            }
        }
        self.max
    }

    /// Snapshots that needed more than `bound` attempts.
    pub fn above(&self, bound: u32) -> u64 {
        self.counts.iter().skip(bound as usize + 1).sum()
    }

    /// Summary for the report.
    pub fn summary(&self) -> AttemptSummary {
        let total = self.total();
        let sum: f64 = self
            .counts
            .iter()
            .enumerate()
            .map(|(i, &c)| i as f64 * c as f64)
            .sum();
        AttemptSummary {
            snapshots: total,
            mean: if total == 0 { 0.0 } else { sum / total as f64 },
            median: self.quantile(0.5),
            p99: self.quantile(0.99),
            max: self.max,
            above_default_bound: self.above(DEFAULT_MAX_ATTEMPTS),
        }
    }
}

/// Attempts per snapshot: distribution summary.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct AttemptSummary {
    /// Snapshots taken.
    pub snapshots: u64,
    /// Mean attempts.
    pub mean: f64,
    /// Median attempts (1 = no retry).
    pub median: u32,
    /// 99th percentile.
    pub p99: u32,
    /// Maximum.
    pub max: u32,
    /// Snapshots the consumer (1024 attempts by default) would have
    /// reported busy.
    pub above_default_bound: u64,
}

/// Median and range of a set of values.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
}

impl Spread {
    /// Of `values` (NaN-free); all zero when empty.
    pub fn of(values: &[f64]) -> Spread {
        if values.is_empty() {
            return Spread {
                median: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Spread {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }
}

/// What runs beside the writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Nothing: the baseline.
    Alone,
    /// A tight reader of the writer's record.
    Same,
    /// A whole-table snapshot every sampler period.
    Sampler,
    /// A tight reader of the next record.
    Neighbour,
    /// A second writer on the next record, each writer's private state on
    /// cachelines of its own.
    TwoWriters,
    /// The same, with the two writers' private states (`RecordWriter`s)
    /// next to each other in one `Vec`.
    TwoWritersSharedState,
}

impl Scenario {
    /// The scenarios compared with [`Scenario::Alone`].
    pub const COMPARED: [Scenario; 4] = [
        Scenario::Same,
        Scenario::Sampler,
        Scenario::Neighbour,
        Scenario::TwoWriters,
    ];
}

/// One trial's outcome.
#[derive(Clone, Debug, Default)]
struct Trial {
    /// Updates per second of the writer of record 0.
    rate: f64,
    /// Updates per second of the second writer, if any.
    rate2: Option<f64>,
    /// The tight same-record reader's attempts.
    attempts: AttemptHistogram,
    /// Torn copies the tight reader accepted (must be 0).
    torn: u64,
    /// Snapshots by the reader (any scenario with one).
    reads: u64,
    /// Busy records seen by the sampler.
    busy: u64,
}

/// The results of one scenario at one stride.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioResult {
    /// Which.
    pub scenario: Scenario,
    /// Writer slowdown (`rate_alone / rate - 1`) over the rounds.
    pub slowdown: Spread,
    /// The second writer's slowdown (two-writer scenario).
    pub slowdown2: Option<Spread>,
    /// Attempts per snapshot of the tight same-record reader.
    pub attempts: Option<AttemptSummary>,
    /// Torn snapshots accepted (must be 0).
    pub torn: u64,
    /// Reader snapshots per second (median over rounds).
    pub reads_per_s: f64,
    /// Busy records the sampler saw in all.
    pub busy: u64,
}

/// The results at one stride.
#[derive(Clone, Debug, Serialize)]
pub struct StrideResult {
    /// The table's stride in bytes.
    pub stride: u32,
    /// Writer updates per second alone (median of every alone trial).
    pub alone_rate: Spread,
    /// One per compared scenario.
    pub scenarios: Vec<ScenarioResult>,
}

/// Everything the experiment found.
#[derive(Clone, Debug, Serialize)]
pub struct ContentionResults {
    /// The CPUs the writer and the other thread were pinned to.
    pub cpus: [usize; 2],
    /// The settings.
    pub config: Config,
    /// One per stride.
    pub strides: Vec<StrideResult>,
}

fn run_writer(w: &mut RecordWriter<'_>, cpu: usize, stop: &AtomicBool, go: &Barrier) -> f64 {
    let _ = pin_to_cpu(cpu);
    go.wait();
    let t0 = Instant::now();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..64 {
            hot::producer_update4(w, n);
            n += 1;
        }
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

fn run_same_reader(rec: RecordRef<'_>, cpu: usize, stop: &AtomicBool, go: &Barrier) -> Trial {
    let _ = pin_to_cpu(cpu);
    let mut out = vec![0u64; rec.words.len()];
    let mut t = Trial::default();
    go.wait();
    while !stop.load(Ordering::Relaxed) {
        let mut attempts = 0;
        let ok = loop {
            attempts += 1;
            let r = read_consistent(rec.seq, 1, || {
                for (o, w) in out.iter_mut().zip(rec.words) {
                    *o = w.load(Ordering::Relaxed);
                }
            });
            if r.is_ok() {
                break true;
            }
            if attempts >= ATTEMPT_CAP {
                break false;
            }
        };
        t.attempts.add(attempts);
        t.reads += 1;
        // Before the writer's first update the record holds the inactive
        // marker everywhere (P4); after it, `v, v+1, v+2, v+3`.
        let fresh = out.iter().all(|&w| w == vstats_abi::INACTIVE);
        if ok && !fresh && (1..4).any(|k| out[k] != out[0].wrapping_add(k as u64)) {
            t.torn += 1;
        }
    }
    t
}

fn run_neighbour_reader(rec: RecordRef<'_>, cpu: usize, stop: &AtomicBool, go: &Barrier) -> Trial {
    let _ = pin_to_cpu(cpu);
    let mut out = vec![0u64; rec.words.len()];
    let mut t = Trial::default();
    go.wait();
    while !stop.load(Ordering::Relaxed) {
        if hot::read_record_raw(&rec, &mut out).is_err() {
            t.busy += 1;
        }
        t.reads += 1;
    }
    t
}

fn run_sampler(
    table: &vstats_consumer::Table,
    period: Duration,
    cpu: usize,
    stop: &AtomicBool,
    go: &Barrier,
) -> Trial {
    let _ = pin_to_cpu(cpu);
    let mut snap = Snapshot::new(table);
    let mut t = Trial::default();
    go.wait();
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        t.busy += u64::from(table.snapshot(&mut snap));
        t.reads += 1;
        next += period;
        match next.checked_duration_since(Instant::now()) {
            Some(d) => thread::sleep(d),
            None => next = Instant::now(),
        }
    }
    t
}

/// A value on cachelines of its own (128 bytes: a pair of lines, which
/// the adjacent-line prefetcher treats as one).
#[derive(Debug)]
#[repr(align(128))]
struct Padded<T>(T);

/// What one trial runs on: the writer of record 0, the writer of record
/// 1 (two-writer scenarios), the consumer and the records.
struct Rig<'a, 't> {
    w0: &'a mut RecordWriter<'t>,
    w1: &'a mut RecordWriter<'t>,
    table: &'a vstats_consumer::Table,
    recs: &'a [RecordRef<'a>],
}

fn trial(rig: &mut Rig<'_, '_>, scenario: Scenario, cpus: [usize; 2], cfg: &Config) -> Trial {
    let stop = AtomicBool::new(false);
    let go = Barrier::new(match scenario {
        Scenario::Alone => 2,
        _ => 3,
    });
    let (stop, go) = (&stop, &go);
    let (w0, w1, table) = (&mut *rig.w0, &mut *rig.w1, rig.table);
    let (rec0, rec1) = (rig.recs[0], rig.recs[1]);
    thread::scope(|s| {
        let writer = s.spawn(move || run_writer(w0, cpus[0], stop, go));
        let other = match scenario {
            Scenario::Alone => None,
            Scenario::Same => Some(s.spawn(move || run_same_reader(rec0, cpus[1], stop, go))),
            Scenario::Neighbour => {
                Some(s.spawn(move || run_neighbour_reader(rec1, cpus[1], stop, go)))
            }
            Scenario::Sampler => {
                let period = Duration::from_micros(cfg.sampler_period_us);
                Some(s.spawn(move || run_sampler(table, period, cpus[1], stop, go)))
            }
            Scenario::TwoWriters | Scenario::TwoWritersSharedState => {
                Some(s.spawn(move || Trial {
                    rate2: Some(run_writer(w1, cpus[1], stop, go)),
                    ..Trial::default()
                }))
            }
        };
        go.wait();
        let t0 = Instant::now();
        thread::sleep(Duration::from_millis(cfg.trial_ms));
        stop.store(true, Ordering::Relaxed);
        let rate = writer.join().unwrap_or(0.0);
        let mut t = other
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        let secs = t0.elapsed().as_secs_f64();
        t.rate = rate;
        t.reads = (t.reads as f64 / secs) as u64;
        t
    })
}

/// Per scenario over the rounds: slowdowns, second-writer slowdowns,
/// reads per second, and the merged reader counts.
#[derive(Clone, Debug, Default)]
struct Acc(Vec<f64>, Vec<f64>, Vec<f64>, Trial);

/// Rounds of (alone, scenario, alone, scenario, ...) on one rig.
fn rounds(
    rig: &mut Rig<'_, '_>,
    scenarios: &[Scenario],
    cpus: [usize; 2],
    cfg: &Config,
) -> (Spread, Vec<ScenarioResult>) {
    let mut alone_all = Vec::new();
    let mut per = vec![Acc::default(); scenarios.len()];
    for _ in 0..cfg.rounds {
        let mut before = trial(rig, Scenario::Alone, cpus, cfg).rate;
        alone_all.push(before);
        for (k, &sc) in scenarios.iter().enumerate() {
            let t = trial(rig, sc, cpus, cfg);
            let after = trial(rig, Scenario::Alone, cpus, cfg).rate;
            alone_all.push(after);
            let alone = (before + after) / 2.0;
            let Acc(slow, slow2, reads, acc) = &mut per[k];
            slow.push(alone / t.rate - 1.0);
            if let Some(r2) = t.rate2 {
                slow2.push(alone / r2 - 1.0);
            }
            reads.push(t.reads as f64);
            acc.attempts.merge(&t.attempts);
            acc.torn += t.torn;
            acc.busy += t.busy;
            before = after;
        }
    }
    let results = scenarios
        .iter()
        .zip(per)
        .map(|(&scenario, Acc(slow, slow2, reads, acc))| ScenarioResult {
            scenario,
            slowdown: Spread::of(&slow),
            slowdown2: (!slow2.is_empty()).then(|| Spread::of(&slow2)),
            attempts: (scenario == Scenario::Same).then(|| acc.attempts.summary()),
            torn: acc.torn,
            reads_per_s: Spread::of(&reads).median,
            busy: acc.busy,
        })
        .collect();
    (Spread::of(&alone_all), results)
}

/// Runs the experiment at strides 64 and 128 and returns what it found.
///
/// The writers are split off each table once and kept for the whole run
/// (a second `split` would restart their private seq at 0). Each writer's
/// private state (`RecordWriter`, which holds its seq) sits on cachelines
/// of its own, except in [`Scenario::TwoWritersSharedState`], where the
/// two writers are neighbours in one `Vec` as `vstats-kvm-vmm`'s
/// `Publisher` keeps them.
///
/// # Errors
///
/// Fewer than two CPUs to pin to, or a fixture that cannot be created.
pub fn run(cfg: &Config) -> Result<ContentionResults> {
    let cpus = allowed_cpus();
    if cpus.len() < 2 {
        bail!("needs two CPUs to pin a writer and a reader to; this process may use {cpus:?}");
    }
    let cpus = [cpus[0], cpus[1]];
    let mut strides = Vec::new();
    for cacheline in [64, 128] {
        let mut fx = ShmFixture::vcpu(&format!("contention-{cacheline}"), 2, cacheline)?;
        let stride = fx.layout().stride;
        let (writers, table, recs) = fx.split();
        let mut ws = writers.map(|w| Box::new(Padded(w)));
        let (Some(mut w0), Some(mut w1)) = (ws.next(), ws.next()) else {
            bail!("a table of two records has fewer writers");
        };
        let mut rig = Rig {
            w0: &mut w0.0,
            w1: &mut w1.0,
            table,
            recs: &recs,
        };
        let (alone_rate, mut scenarios) = rounds(&mut rig, &Scenario::COMPARED, cpus, cfg);
        if cacheline == 64 {
            let mut fx = ShmFixture::vcpu("contention-shared-state", 2, cacheline)?;
            let (writers, table, recs) = fx.split();
            let mut ws: Vec<RecordWriter<'_>> = writers.collect();
            let [w0, w1, ..] = ws.as_mut_slice() else {
                bail!("a table of two records has fewer writers");
            };
            let mut rig = Rig {
                w0,
                w1,
                table,
                recs: &recs,
            };
            let (_, more) = rounds(&mut rig, &[Scenario::TwoWritersSharedState], cpus, cfg);
            scenarios.extend(more);
        }
        strides.push(StrideResult {
            stride,
            alone_rate,
            scenarios,
        });
    }
    Ok(ContentionResults {
        cpus,
        config: *cfg,
        strides,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles() {
        let mut h = AttemptHistogram::default();
        for _ in 0..98 {
            h.add(1);
        }
        h.add(2);
        h.add(2000);
        let s = h.summary();
        assert_eq!((s.snapshots, s.median, s.p99, s.max), (100, 1, 2, 2000));
        assert_eq!(s.above_default_bound, 1);
        let mut g = AttemptHistogram::default();
        g.merge(&h);
        assert_eq!(g.summary(), s);
        assert_eq!(AttemptHistogram::default().quantile(0.5), 0);
    }

    #[test]
    fn spread() {
        let s = Spread::of(&[3.0, 1.0, 2.0, 10.0]);
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 10.0));
    }

    #[test]
    fn a_short_run_finds_no_torn_snapshot() {
        if allowed_cpus().len() < 2 {
            eprintln!("skipped: fewer than two CPUs");
            return;
        }
        let cfg = Config {
            trial_ms: 20,
            rounds: 1,
            sampler_period_us: 1000,
        };
        let r = run(&cfg).unwrap();
        assert_eq!(r.strides.len(), 2);
        assert_eq!(r.strides[1].stride, 128);
        for s in &r.strides {
            assert!(s.alone_rate.median > 0.0);
            let same = &s.scenarios[0];
            assert_eq!(same.torn, 0);
            assert!(same.attempts.unwrap().snapshots > 0);
        }
    }
}
