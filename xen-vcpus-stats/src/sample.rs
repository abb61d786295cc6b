//! Sampling: two snapshots an interval apart become one [`Sample`]:
//! per-vCPU runstate shares, raw runstate times, every counter's value and
//! every cumulative counter's rate, aggregates across vCPUs, and the
//! domain table's values and rates.

use std::{
    io::{self, Write},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant, SystemTime},
};

use vstats_consumer::{
    delta,
    follow::{Event, Source},
    rate,
    watch::{Stuck, StuckWatch},
    Aggregate, Counter, Delta, Kind, RecordSnapshot, RecordStatus, Snapshot, Table,
};

use crate::{
    error::{Error, Result},
    filter::{NameFilter, VcpuList},
    output::{self, Format},
    sys,
    target::{self, Target, Vm},
};

/// Names of the four standard runstate counters, in Xen's order.
pub const RUNSTATE_COUNTERS: [&str; 4] = [
    "runstate_running_time",
    "runstate_runnable_time",
    "runstate_blocked_time",
    "runstate_offline_time",
];

/// Short names of the four runstates, in Xen's order.
pub const RUNSTATES: [&str; 4] = ["running", "runnable", "blocked", "offline"];

/// A counter's reading in one record.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Absent: busy or unused record, counter inactive or outside the
    /// record.
    Absent,
    /// A scalar.
    Scalar(u64),
    /// A histogram's buckets.
    Histogram(Vec<u64>),
}

impl Value {
    /// The scalar, if this is one.
    pub fn scalar(&self) -> Option<u64> {
        match self {
            Value::Scalar(v) => Some(*v),
            _ => None,
        }
    }
}

/// How a record read in this sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordState {
    /// Read consistently, rates computed where possible.
    Ok,
    /// Mid-update for every read attempt: no values.
    Busy {
        /// The last seq seen.
        seq: u32,
    },
    /// Every counter inactive: no vCPU in this slot.
    Unused,
    /// The record's seq went backwards: no rates this time.
    Reset,
}

impl RecordState {
    /// `"ok"`, `"busy"`, `"unused"` or `"reset"`.
    pub fn name(self) -> &'static str {
        match self {
            RecordState::Ok => "ok",
            RecordState::Busy { .. } => "busy",
            RecordState::Unused => "unused",
            RecordState::Reset => "reset",
        }
    }
}

/// One vCPU in a sample.
#[derive(Clone, Debug, PartialEq)]
pub struct VcpuSample {
    /// The vCPU (record index).
    pub vcpu: u32,
    /// How its record read.
    pub state: RecordState,
    /// Raw runstate times (ns) now, Xen order.
    pub runstate_ns: [Option<u64>; 4],
    /// Share of the interval in each runstate: the runstate's delta over
    /// the sum of the four deltas. `None` when a delta is missing (busy,
    /// reset, absent counter) or the four deltas sum to 0 (the producer
    /// did not update the record during the interval).
    pub shares: Option<[f64; 4]>,
    /// Every selected counter's value, parallel to
    /// [`Sample::vcpu_counters`].
    pub values: Vec<Value>,
    /// Per-second rate (raw units) of every selected cumulative scalar
    /// counter, `None` for others and when absent; parallel to
    /// [`Sample::vcpu_counters`].
    pub rates: Vec<Option<f64>>,
}

/// A scalar counter aggregated across the selected vCPUs (statsfs-style).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CounterAggregate {
    /// Of the values.
    pub values: Aggregate,
    /// Of the rates, for cumulative counters.
    pub rates: Option<Aggregate<f64>>,
}

/// The domain table's part of a sample.
#[derive(Clone, Debug, PartialEq)]
pub struct DomainSample {
    /// How the record read.
    pub state: RecordState,
    /// The selected counters.
    pub counters: Vec<Counter>,
    /// Their values.
    pub values: Vec<Value>,
    /// Rates of the cumulative ones.
    pub rates: Vec<Option<f64>>,
}

/// One sample: everything the output formats print.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// 1, 2, ...
    pub number: u64,
    /// Wall-clock time of the snapshot.
    pub wall: SystemTime,
    /// `CLOCK_MONOTONIC` nanoseconds of the snapshot (the KVM monitor's
    /// clock).
    pub monotonic_ns: u64,
    /// Seconds between this snapshot and the previous one.
    pub interval: f64,
    /// The VM's name.
    pub vm: String,
    /// The target as given (path or `domain N`).
    pub source: String,
    /// The Xen domain id.
    pub domid: Option<u16>,
    /// The producer's generation: the vCPU table's, else the domain
    /// table's.
    pub generation: u64,
    /// vCPU slots of the table.
    pub nr_slots: u32,
    /// The selected vCPU counters.
    pub vcpu_counters: Vec<Counter>,
    /// The selected vCPUs.
    pub vcpus: Vec<VcpuSample>,
    /// Per selected vCPU counter, across the selected vCPUs in use; `None`
    /// for histograms.
    pub aggregates: Vec<Option<CounterAggregate>>,
    /// The domain table, when there is one.
    pub domain: Option<DomainSample>,
}

/// What to sample and how.
#[derive(Clone, Debug)]
pub struct SampleOptions {
    /// Time between samples.
    pub interval: Duration,
    /// Samples to print; `None`: until interrupted.
    pub count: Option<u64>,
    /// Output format.
    pub format: Format,
    /// `--names`.
    pub names: NameFilter,
    /// `--vcpus`.
    pub vcpus: Option<VcpuList>,
    /// A record busy in at least [`BUSY_MIN_SNAPSHOTS`] consecutive
    /// snapshots spanning this long ends the run with "table busy".
    pub busy_timeout: Duration,
}

/// Consecutive busy snapshots needed, besides `busy_timeout`, before a
/// record is declared stuck.
pub const BUSY_MIN_SNAPSHOTS: u32 = 3;

/// Converts snapshot instants to wall and monotonic time.
#[derive(Clone, Copy, Debug)]
struct Clock {
    instant: Instant,
    mono: u64,
    wall: SystemTime,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            instant: Instant::now(),
            mono: sys::monotonic_ns(),
            wall: SystemTime::now(),
        }
    }

    fn at(&self, t: Instant) -> (u64, SystemTime) {
        let d = t.saturating_duration_since(self.instant);
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        (self.mono.saturating_add(ns), self.wall + d)
    }
}

/// Which vCPUs and counters to show.
#[derive(Clone, Debug, Default)]
struct Selection {
    vcpus: Vec<u32>,
    vcpu_counters: Vec<Counter>,
    domain_counters: Vec<Counter>,
    runstate: [Option<Counter>; 4],
}

fn select(att: &Vm, names: &NameFilter, vcpus: Option<&VcpuList>) -> Result<Selection> {
    let vt = att.vcpu.as_ref().map(|s| &s.table);
    let dt = att.domain.as_ref().map(|s| &s.table);
    let pick = |t: Option<&Table>| -> Vec<Counter> {
        t.map(|t| {
            t.counters()
                .iter()
                .filter(|c| names.matches(c.name()))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
    };
    let (vcpu_counters, domain_counters) = (pick(vt), pick(dt));
    for p in names.patterns() {
        let one = NameFilter::new(&[p]);
        let any = vt
            .iter()
            .chain(dt.iter())
            .any(|t| t.counters().iter().any(|c| one.matches(c.name())));
        if !any {
            return Err(Error::NoSuchCounter {
                pattern: p.clone(),
                origin: att.origin.clone(),
            });
        }
    }
    let vcpus = match (vt, vcpus) {
        (Some(t), Some(list)) => {
            if let Some(&v) = list.0.iter().find(|&&v| v >= t.nr_records()) {
                return Err(Error::NoSuchVcpu {
                    vcpu: v,
                    origin: att.origin.clone(),
                    nr_records: t.nr_records(),
                });
            }
            list.0.clone()
        }
        (Some(t), None) => (0..t.nr_records()).collect(),
        (None, Some(_)) => {
            return Err(Error::NoVcpuTable {
                origin: att.origin.clone(),
            })
        }
        (None, None) => Vec::new(),
    };
    let runstate = RUNSTATE_COUNTERS.map(|n| vt.and_then(|t| t.counter(n)).cloned());
    Ok(Selection {
        vcpus,
        vcpu_counters,
        domain_counters,
        runstate,
    })
}

/// A counter's value in a record.
fn value(r: &RecordSnapshot, c: &Counter) -> Value {
    if c.is_histogram() {
        r.histogram(c)
            .map_or(Value::Absent, |h| Value::Histogram(h.to_vec()))
    } else {
        r.get(c).map_or(Value::Absent, Value::Scalar)
    }
}

/// The rate of a cumulative scalar counter, `None` for other kinds.
fn cumulative_rate(prev: &RecordSnapshot, cur: &RecordSnapshot, c: &Counter) -> Option<f64> {
    (c.kind() == Kind::CUMULATIVE && !c.is_histogram())
        .then(|| rate(prev, cur, c))
        .flatten()
}

fn state(prev: &RecordSnapshot, cur: &RecordSnapshot, any: Option<&Counter>) -> RecordState {
    match cur.status() {
        RecordStatus::Busy { seq, .. } => RecordState::Busy { seq },
        _ if cur.is_unused() => RecordState::Unused,
        _ => match any {
            Some(c) if delta(prev, cur, c) == Delta::Reset => RecordState::Reset,
            _ => RecordState::Ok,
        },
    }
}

fn vcpu_sample(
    prev: &RecordSnapshot,
    cur: &RecordSnapshot,
    sel: &Selection,
    any: Option<&Counter>,
) -> VcpuSample {
    let state = state(prev, cur, any);
    let runstate_ns = sel
        .runstate
        .each_ref()
        .map(|c| c.as_ref().and_then(|c| cur.get(c)));
    let deltas = sel
        .runstate
        .each_ref()
        .map(|c| c.as_ref().and_then(|c| delta(prev, cur, c).value()));
    let shares = match deltas {
        [Some(a), Some(b), Some(c), Some(d)] => {
            let total = u128::from(a) + u128::from(b) + u128::from(c) + u128::from(d);
            (total > 0).then(|| [a, b, c, d].map(|x| x as f64 / total as f64))
        }
        _ => None,
    };
    VcpuSample {
        vcpu: cur.index(),
        state,
        runstate_ns,
        shares,
        values: sel.vcpu_counters.iter().map(|c| value(cur, c)).collect(),
        rates: sel
            .vcpu_counters
            .iter()
            .map(|c| cumulative_rate(prev, cur, c))
            .collect(),
    }
}

/// One table's snapshots and busy tracking.
#[derive(Debug)]
struct Track {
    prev: Snapshot,
    cur: Snapshot,
    busy: StuckWatch,
}

impl Track {
    fn new(src: &Source, timeout: Duration) -> Result<Track> {
        let mut t = Track {
            prev: Snapshot::new(&src.table),
            cur: Snapshot::new(&src.table),
            busy: StuckWatch::new(timeout, BUSY_MIN_SNAPSHOTS),
        };
        src.table.snapshot(&mut t.prev);
        stuck(src, t.busy.update(&t.prev))?;
        Ok(t)
    }

    fn take(&mut self, src: &Source) -> Result<()> {
        src.table.snapshot(&mut self.cur);
        stuck(src, self.busy.update(&self.cur))
    }

    fn advance(&mut self) {
        std::mem::swap(&mut self.prev, &mut self.cur);
    }
}

/// [`Error::TableBusy`] for a stuck record found by [`StuckWatch::update`].
fn stuck(src: &Source, found: Option<Stuck>) -> Result<()> {
    match found {
        Some(s) => Err(Error::TableBusy {
            origin: src.describe(),
            record: s.record,
            seq: s.seq,
            secs: s.busy_for.as_secs_f64(),
            snapshots: s.snapshots,
        }),
        None => Ok(()),
    }
}

/// An attached target being sampled.
#[derive(Debug)]
pub struct Sampler {
    att: Vm,
    names: NameFilter,
    vcpus: Option<VcpuList>,
    busy_timeout: Duration,
    sel: Selection,
    vtrack: Option<Track>,
    dtrack: Option<Track>,
    clock: Clock,
    number: u64,
}

/// What [`Sampler::step`] produced.
#[derive(Debug)]
pub enum Step {
    /// A sample.
    Sample(Box<Sample>),
    /// The producer restarted: re-attached, new baseline taken; the
    /// notice says what happened.
    Restarted(String),
}

impl Sampler {
    /// Opens `target`, checks the filters against it and takes the
    /// baseline snapshot.
    ///
    /// # Errors
    ///
    /// As [`target::open`]; unknown `--names` or `--vcpus`.
    pub fn attach(target: &Target, opts: &SampleOptions) -> Result<Sampler> {
        let att = target::open(target)?;
        Sampler::with(att, opts)
    }

    /// As [`Sampler::attach`] with an already attached target.
    ///
    /// # Errors
    ///
    /// Unknown `--names` or `--vcpus`; a record stuck busy.
    pub fn with(att: Vm, opts: &SampleOptions) -> Result<Sampler> {
        let sel = select(&att, &opts.names, opts.vcpus.as_ref())?;
        let mut s = Sampler {
            att,
            names: opts.names.clone(),
            vcpus: opts.vcpus.clone(),
            busy_timeout: opts.busy_timeout,
            sel,
            vtrack: None,
            dtrack: None,
            clock: Clock::new(),
            number: 0,
        };
        s.baseline()?;
        Ok(s)
    }

    fn baseline(&mut self) -> Result<()> {
        let t = self.busy_timeout;
        self.vtrack = self
            .att
            .vcpu
            .as_ref()
            .map(|s| Track::new(s, t))
            .transpose()?;
        self.dtrack = self
            .att
            .domain
            .as_ref()
            .map(|s| Track::new(s, t))
            .transpose()?;
        Ok(())
    }

    /// The attached target.
    pub fn attached(&self) -> &Vm {
        &self.att
    }

    /// Takes a snapshot of every table and returns the sample since the
    /// previous one, or re-attaches when the producer restarted (checked
    /// after the snapshot, so that no sample mixes two producers).
    ///
    /// # Errors
    ///
    /// A record stuck busy ([`Error::TableBusy`]); re-attaching failed
    /// (e.g. [`Error::TableRemoved`]).
    pub fn step(&mut self) -> Result<Step> {
        if let (Some(tr), Some(src)) = (self.vtrack.as_mut(), self.att.vcpu.as_ref()) {
            tr.take(src)?;
        }
        if let (Some(tr), Some(src)) = (self.dtrack.as_mut(), self.att.domain.as_ref()) {
            tr.take(src)?;
        }
        match self.att.follow()? {
            None => {}
            Some(Event::Removed { path }) => return Err(Error::TableRemoved { path }),
            Some(Event::Restarted {
                table,
                old_generation: old,
                new_generation: new,
                ..
            }) => {
                self.sel = select(&self.att, &self.names, self.vcpus.as_ref())?;
                self.baseline()?;
                return Ok(Step::Restarted(format!(
                    "{table}: producer restarted (generation {old:#x} -> {new:#x}): \
                     re-attached, rates resume at the next sample"
                )));
            }
            Some(e) => return Ok(Step::Restarted(format!("{e:?}"))),
        }
        let sample = self.sample();
        if let Some(tr) = self.vtrack.as_mut() {
            tr.advance();
        }
        if let Some(tr) = self.dtrack.as_mut() {
            tr.advance();
        }
        Ok(Step::Sample(Box::new(sample)))
    }

    fn sample(&mut self) -> Sample {
        self.number += 1;
        let sel = &self.sel;
        let taken = [self.vtrack.as_ref(), self.dtrack.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|t| Some((t.prev.taken()?, t.cur.taken()?)));
        let (interval, (mono, wall)) = match taken {
            Some((p, c)) => (
                c.saturating_duration_since(p).as_secs_f64(),
                self.clock.at(c),
            ),
            None => (0.0, self.clock.at(Instant::now())),
        };
        let vtable = self.att.vcpu.as_ref().map(|s| &s.table);
        let any_v = vtable.and_then(|t| t.counters().first());
        let vcpus: Vec<VcpuSample> = match &self.vtrack {
            Some(tr) => sel
                .vcpus
                .iter()
                .filter_map(|&i| {
                    Some(vcpu_sample(
                        tr.prev.record(i)?,
                        tr.cur.record(i)?,
                        sel,
                        any_v,
                    ))
                })
                .collect(),
            None => Vec::new(),
        };
        let aggregates = sel
            .vcpu_counters
            .iter()
            .enumerate()
            .map(|(k, c)| {
                if c.is_histogram() {
                    return None;
                }
                let in_use = || vcpus.iter().filter(|v| v.state != RecordState::Unused);
                let values = in_use().map(|v| v.values[k].scalar()).collect();
                let rates = (c.kind() == Kind::CUMULATIVE).then(|| {
                    let mut a = Aggregate::default();
                    in_use().for_each(|v| a.add(v.rates[k]));
                    a
                });
                Some(CounterAggregate { values, rates })
            })
            .collect();
        let domain = match (&self.dtrack, self.att.domain.as_ref()) {
            (Some(tr), Some(src)) => {
                let any = src.table.counters().first();
                tr.prev
                    .record(0)
                    .zip(tr.cur.record(0))
                    .map(|(p, c)| DomainSample {
                        state: state(p, c, any),
                        counters: sel.domain_counters.clone(),
                        values: sel.domain_counters.iter().map(|k| value(c, k)).collect(),
                        rates: sel
                            .domain_counters
                            .iter()
                            .map(|k| cumulative_rate(p, c, k))
                            .collect(),
                    })
            }
            _ => None,
        };
        Sample {
            number: self.number,
            wall,
            monotonic_ns: mono,
            interval,
            vm: self.att.name.clone(),
            source: self.att.origin.clone(),
            domid: self.att.domid,
            generation: self
                .att
                .sources()
                .next()
                .map_or(0, |s| s.table.generation()),
            nr_slots: vtable.map_or(0, Table::nr_records),
            vcpu_counters: sel.vcpu_counters.clone(),
            vcpus,
            aggregates,
            domain,
        }
    }
}

/// How a sampling run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Samples printed.
    pub samples: u64,
    /// Stopped by a signal (or the reader of the output went away) before
    /// `--count` was reached.
    pub interrupted: bool,
}

/// Sleeps until `deadline`, waking every 20 ms to check `stop`; returns
/// false when stopped.
pub fn sleep_until(deadline: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        let Some(left) = deadline.checked_duration_since(now) else {
            return true;
        };
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}

/// Samples an attached target every `opts.interval`, `opts.count` times
/// (or until `stop`), writing each sample to `out` in `opts.format` and
/// notices (restarts) to `notices`.
///
/// The first sample comes one interval after attaching: every sample is
/// the difference of two snapshots. A reader of `out` that goes away
/// (broken pipe) ends the run like a signal.
///
/// # Errors
///
/// As [`Sampler::step`], and write errors other than a broken pipe.
pub fn run(
    sampler: &mut Sampler,
    opts: &SampleOptions,
    out: &mut dyn Write,
    notices: &mut dyn Write,
    stop: &AtomicBool,
) -> anyhow::Result<Outcome> {
    let start = Instant::now();
    let mut outcome = Outcome {
        samples: 0,
        interrupted: false,
    };
    let mut tick: u32 = 0;
    while opts.count.is_none_or(|n| outcome.samples < n) {
        tick = tick.saturating_add(1);
        let deadline = start + opts.interval.saturating_mul(tick);
        if !sleep_until(deadline, stop) {
            outcome.interrupted = true;
            break;
        }
        match sampler.step()? {
            Step::Restarted(notice) => {
                let _ = writeln!(notices, "xen-vcpus-stats: {notice}");
            }
            Step::Sample(sample) => {
                let written =
                    output::write_sample(opts.format, &sample, !opts.names.is_empty(), out)
                        .and_then(|()| out.flush());
                match written {
                    Ok(()) => outcome.samples += 1,
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                        outcome.interrupted = true;
                        break;
                    }
                    Err(e) => return Err(anyhow::Error::new(e).context("writing the output")),
                }
            }
        }
    }
    Ok(outcome)
}
