//! The sampling engine: a [`Sampler`] follows a VM ([`Vm`]) and turns
//! two snapshots an interval apart into one [`Sample`]: per-vCPU runstate
//! shares, raw runstate times, every counter's value and every cumulative
//! counter's rate, aggregates across vCPUs ([`Aggregate`] of values and of
//! rates), and the domain table's values and rates. Selection: counters
//! by name pattern ([`NameFilter`]), vCPUs by index ([`VcpuList`]).
//! A record that stays busy ends sampling ([`Error::Stuck`],
//! [`crate::watch`]); a producer that restarts is re-attached
//! ([`Step::Event`]).
//!
//! # Examples
//!
//! One sample a second of a VM published under the root:
//!
//! ```no_run
//! use vstats_consumer::{
//!     follow::Vm,
//!     sample::{SampleOptions, Sampler, Step},
//! };
//!
//! let vm = Vm::open_dir("/dev/shm/vstats/vm1".as_ref(), "vm1".into())?;
//! let mut sampler = Sampler::new(vm, &SampleOptions::default())?;
//! loop {
//!     std::thread::sleep(std::time::Duration::from_secs(1));
//!     if let Step::Sample(s) = sampler.step()? {
//!         for v in &s.vcpus {
//!             println!("vcpu{} running {:?}", v.vcpu, v.shares.map(|sh| sh[0]));
//!         }
//!     }
//! }
//! # Ok::<(), vstats_consumer::Error>(())
//! ```

use std::time::{Duration, Instant, SystemTime};

use crate::{
    delta,
    filter::{NameFilter, VcpuList},
    follow::{Event, Source, Vm},
    rate,
    watch::{Stuck, StuckWatch},
    Aggregate, Counter, Delta, Error, Kind, RecordStatus, RecordView, Result, Snapshot, Summable,
    Table,
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
    /// [`crate::follow::RFC_V3_NOTE`] for an RFC v3 vCPU table, whose
    /// vCPU 0 alone is sampled ([`Vm::note`]).
    pub note: Option<&'static str>,
}

/// Whether every one of the aggregated values is present and 0.
fn all_zero<T: Summable>(a: &Aggregate<T>) -> bool {
    a.present > 0 && a.absent == 0 && a.zero == a.present
}

/// Whether a counter is read as a rate: a cumulative scalar.
fn reads_as_rate(c: &Counter) -> bool {
    c.kind() == Kind::CUMULATIVE && !c.is_histogram()
}

impl CounterAggregate {
    /// Sum, min, max and average (of the rates for a cumulative counter,
    /// else of the values) and how many of them are 0.
    pub fn summary(&self) -> ([Option<f64>; 4], u32) {
        match &self.rates {
            Some(r) => ([Some(r.sum), r.min, r.max, r.average()], r.zero),
            None => {
                let (v, f) = (&self.values, |x: Option<u64>| x.map(|x| x as f64));
                let stats = [Some(v.sum as f64), f(v.min), f(v.max), v.average()];
                (stats, v.zero)
            }
        }
    }
}

impl Sample {
    /// Whether vCPU counter `k` (an index into [`Sample::vcpu_counters`])
    /// reads 0 on every vCPU in use: its rate for a cumulative scalar, its
    /// value for others. Never true for a histogram, nor when a vCPU has
    /// no value or no rate for it (busy, reset, first sample).
    pub fn is_zero(&self, k: usize) -> bool {
        match (self.vcpu_counters.get(k), self.aggregates.get(k)) {
            (Some(c), Some(Some(a))) if reads_as_rate(c) => a.rates.as_ref().is_some_and(all_zero),
            (Some(_), Some(Some(a))) => all_zero(&a.values),
            _ => false,
        }
    }

    /// Whether vCPU counter `k` is one of [`RUNSTATE_COUNTERS`], which
    /// [`VcpuSample::shares`] already states as shares of the interval.
    pub fn is_runstate(&self, k: usize) -> bool {
        self.vcpu_counters
            .get(k)
            .is_some_and(|c| RUNSTATE_COUNTERS.contains(&c.name()))
    }
}

impl DomainSample {
    /// Whether domain counter `k` reads 0: its rate for a cumulative
    /// scalar, its value for others; never for a histogram or an absent
    /// value.
    pub fn is_zero(&self, k: usize) -> bool {
        match self.counters.get(k) {
            Some(c) if reads_as_rate(c) => self.rates.get(k) == Some(&Some(0.0)),
            Some(c) if !c.is_histogram() => self.values.get(k) == Some(&Value::Scalar(0)),
            _ => false,
        }
    }
}

/// What to sample.
#[derive(Clone, Debug)]
pub struct SampleOptions {
    /// The counters (every one when empty); each pattern must match a
    /// counter of the VM.
    pub names: NameFilter,
    /// The vCPUs (every slot when `None`).
    pub vcpus: Option<VcpuList>,
    /// A record busy in at least [`BUSY_MIN_SNAPSHOTS`] consecutive
    /// snapshots spanning this long is stuck ([`Error::Stuck`]).
    pub busy_timeout: Duration,
}

impl Default for SampleOptions {
    /// Every counter of every vCPU; stuck after 2 s busy.
    fn default() -> SampleOptions {
        SampleOptions {
            names: NameFilter::default(),
            vcpus: None,
            busy_timeout: Duration::from_secs(2),
        }
    }
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
            mono: vstats_abi::clock::monotonic_ns(),
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
                target: att.origin.clone(),
            });
        }
    }
    // Of an RFC v3 table, record 0 only (`Vm::vcpu_records`).
    let shown = att.vcpu_records();
    let vcpus = match (vt, vcpus) {
        (Some(_), Some(list)) => {
            if let Some(&v) = list.0.iter().find(|&&v| v >= shown) {
                return Err(Error::NoSuchVcpu {
                    vcpu: v,
                    target: att.origin.clone(),
                    nr_records: shown,
                });
            }
            list.0.clone()
        }
        (Some(_), None) => (0..shown).collect(),
        (None, Some(_)) => {
            return Err(Error::NoVcpuTable {
                target: att.origin.clone(),
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

impl Value {
    /// Counter `c`'s value in record `r`.
    pub fn of<'r>(r: impl Into<RecordView<'r>>, c: &Counter) -> Value {
        let r = r.into();
        if c.is_histogram() {
            r.histogram(c)
                .map_or(Value::Absent, |h| Value::Histogram(h.to_vec()))
        } else {
            r.get(c).map_or(Value::Absent, Value::Scalar)
        }
    }
}

/// The rate of a cumulative scalar counter, `None` for other kinds.
fn cumulative_rate(prev: RecordView<'_>, cur: RecordView<'_>, c: &Counter) -> Option<f64> {
    (c.kind() == Kind::CUMULATIVE && !c.is_histogram())
        .then(|| rate(prev, cur, c))
        .flatten()
}

fn state(prev: RecordView<'_>, cur: RecordView<'_>, any: Option<&Counter>) -> RecordState {
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
    prev: RecordView<'_>,
    cur: RecordView<'_>,
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
        values: sel
            .vcpu_counters
            .iter()
            .map(|c| Value::of(cur, c))
            .collect(),
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

/// [`Error::Stuck`] for a stuck record found by [`StuckWatch::update`].
fn stuck(src: &Source, found: Option<Stuck>) -> Result<()> {
    match found {
        Some(s) => Err(Error::Stuck {
            table: src.describe(),
            record: s.record,
            seq: s.seq,
            busy_for: s.busy_for,
            snapshots: s.snapshots,
        }),
        None => Ok(()),
    }
}

/// A VM being sampled.
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
    /// The vCPU table's snapshot at the last [`Sampler::reset`].
    reset: Option<Snapshot>,
}

/// What [`Sampler::step`] produced.
#[derive(Debug)]
pub enum Step {
    /// A sample.
    Sample(Box<Sample>),
    /// What following the VM noticed instead of a sample: on
    /// [`Event::Restarted`] the sampler re-attached and took a new
    /// baseline (the next step gives a sample again); on
    /// [`Event::Removed`] the VM is gone and later steps see the old
    /// tables only.
    Event(Event),
}

impl Sampler {
    /// Checks the selection against `att` and takes the baseline
    /// snapshot.
    ///
    /// # Errors
    ///
    /// A pattern that matches no counter ([`Error::NoSuchCounter`]), a
    /// vCPU the table does not have ([`Error::NoSuchVcpu`],
    /// [`Error::NoVcpuTable`]); a record stuck busy ([`Error::Stuck`]).
    pub fn new(att: Vm, opts: &SampleOptions) -> Result<Sampler> {
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
            reset: None,
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

    /// The VM.
    pub fn vm(&self) -> &Vm {
        &self.att
    }

    /// Resets the cumulative values [`Sampler::since_reset`] reports, as
    /// writing 0 to a statsfs counter does, without touching the
    /// producer: the reader keeps the vCPU table's latest snapshot as a
    /// baseline.
    pub fn reset(&mut self) {
        self.reset = self.vtrack.as_ref().map(|t| t.prev.clone());
    }

    /// Scalar counter `c` of vCPU `vcpu` since the last
    /// [`Sampler::reset`] (since the producer started when there was
    /// none, or when the producer restarted since), as of the latest
    /// snapshot; `None` when absent or when it went down (see [`delta`]).
    pub fn since_reset(&self, vcpu: u32, c: &Counter) -> Option<u64> {
        let cur = self.vtrack.as_ref()?.prev.record(vcpu)?;
        match self.reset.as_ref().and_then(|s| s.record(vcpu)) {
            None => cur.get(c),
            Some(base) => match delta(base, cur, c) {
                Delta::Value(v) => Some(v),
                Delta::Reset => cur.get(c),
                Delta::Absent | Delta::Decreased { .. } => None,
            },
        }
    }

    /// Histogram counter `c`'s buckets for vCPU `vcpu` since the last
    /// [`Sampler::reset`], as [`Sampler::since_reset`] for scalars.
    pub fn histogram_since_reset(&self, vcpu: u32, c: &Counter) -> Option<Vec<u64>> {
        let cur = self.vtrack.as_ref()?.prev.record(vcpu)?;
        let now = cur.histogram(c)?;
        let base = self.reset.as_ref().and_then(|s| s.record(vcpu));
        match base {
            Some(b) if b.is_consistent() && b.generation() == cur.generation() => {
                crate::stats::histogram_delta(b.histogram(c)?, now)
            }
            _ => Some(now.to_vec()),
        }
    }

    /// Takes a snapshot of every table and returns the sample since the
    /// previous one, or re-attaches when the producer restarted (checked
    /// after the snapshot, so that no sample mixes two producers).
    ///
    /// # Errors
    ///
    /// A record stuck busy ([`Error::Stuck`]); re-attaching failed, or the
    /// selection no longer fits the restarted producer's tables.
    pub fn step(&mut self) -> Result<Step> {
        if let (Some(tr), Some(src)) = (self.vtrack.as_mut(), self.att.vcpu.as_ref()) {
            tr.take(src)?;
        }
        if let (Some(tr), Some(src)) = (self.dtrack.as_mut(), self.att.domain.as_ref()) {
            tr.take(src)?;
        }
        match self.att.follow()? {
            None => {}
            Some(e @ Event::Restarted { .. }) => {
                self.sel = select(&self.att, &self.names, self.vcpus.as_ref())?;
                self.baseline()?;
                return Ok(Step::Event(e));
            }
            Some(e) => return Ok(Step::Event(e)),
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
                        values: sel
                            .domain_counters
                            .iter()
                            .map(|k| Value::of(c, k))
                            .collect(),
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
            note: self.att.note(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_aggregate_like_values() {
        let a: Aggregate<f64> = [Some(0.0), Some(2.0), None].into_iter().collect();
        assert_eq!((a.present, a.zero, a.absent), (2, 1, 1));
        assert_eq!((a.sum, a.min, a.max), (2.0, Some(0.0), Some(2.0)));
        assert_eq!(a.average(), Some(1.0));
        assert_eq!(Aggregate::<f64>::default().average(), None);
    }
}
