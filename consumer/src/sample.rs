//! The sampling engine: a [`Sampler`] follows a VM ([`Vm`]) and turns
//! two snapshots an interval apart into one [`Sample`]: per-vCPU runstate
//! shares, raw runstate times, every counter's value and every cumulative
//! counter's rate, aggregates across vCPUs ([`Aggregate`] of values and of
//! rates), and the domain table's values and rates. Selection: counters
//! by name pattern ([`NameFilter`]), vCPUs by index ([`VcpuList`]).
//! Runstate shares are computed here and nowhere else: from the
//! up-to-date times (R26, [`crate::RecordView::up_to_date`]) at each
//! snapshot's [`Snapshot::taken_at_ns`], over the time between the two in
//! the table's clock ([`ShareBase::TableClock`]); for r1/r2 tables and
//! when the clock cannot be read, over the sum of the four deltas as
//! before ([`ShareBase::DeltaSum`]). [`Sampler::diagnostics`] counts
//! which, and the negative per-state deltas clamped to 0.
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
    runstate::{self, Runstate},
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

/// What the denominator of [`VcpuSample::shares`] was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareBase {
    /// The time between the two snapshots in the table's clock (the
    /// difference of their [`Snapshot::taken_at_ns`]), over up-to-date
    /// times (R26) at those instants: numerator and denominator in one
    /// clock, right for a vCPU that stayed in one state.
    TableClock,
    /// The fallback (r1 and r2 tables, an unreadable or unknown clock, a
    /// state not extrapolated): the sum of the four deltas of the times
    /// as last written, which is 0, hence no shares, when the producer
    /// did not write the record during the interval.
    DeltaSum,
}

impl ShareBase {
    /// `"clock"` or `"deltas"`.
    pub fn name(self) -> &'static str {
        match self {
            ShareBase::TableClock => "clock",
            ShareBase::DeltaSum => "deltas",
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
    /// Runstate times (ns) now, Xen order: brought up to the snapshot's
    /// time when [`Runstate::extrapolated`] (R26), else as last written.
    pub runstate_ns: [Option<u64>; 4],
    /// The up-to-date runstate now: current state, its entry time, the
    /// times of [`VcpuSample::runstate_ns`], and whether they were
    /// extrapolated.
    pub runstate: Runstate,
    /// Share of the interval in each runstate: the runstate's delta over
    /// the interval ([`VcpuSample::share_base`] says which). `None` when a
    /// delta is missing (busy, reset, absent counter) or, on the
    /// fallback, the four deltas sum to 0.
    pub shares: Option<[f64; 4]>,
    /// The shares' denominator, `None` when there are no shares.
    pub share_base: Option<ShareBase>,
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

/// What the runstate computations of a [`Sampler`] did, cumulated over
/// its samples: for a front end's diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleDiagnostics {
    /// The up-to-date runstates of the vCPUs sampled (extrapolated or
    /// not, clamped `now < entry`, saturated).
    pub runstate: runstate::Diagnostics,
    /// vCPU samples whose shares used the table's clock
    /// ([`ShareBase::TableClock`]).
    pub shares_by_clock: u64,
    /// vCPU samples whose shares fell back to the sum of the deltas
    /// ([`ShareBase::DeltaSum`]).
    pub shares_by_deltas: u64,
    /// Per-state deltas of up-to-date times that were negative and
    /// clamped to 0 (a producer moved time between states, design 4.3).
    pub negative_deltas: u64,
}

/// The deltas of the up-to-date times between the two snapshots' clock
/// readings (negative ones clamped to 0 and counted), and the time between
/// those readings, ns: when both were extrapolated and the clock moved
/// forward.
fn clock_deltas(
    prev: RecordView<'_>,
    cur: RecordView<'_>,
    (a, b): (&Runstate, &Runstate),
    diag: &mut SampleDiagnostics,
) -> Option<([u64; 4], u64)> {
    if !(a.extrapolated && b.extrapolated) {
        return None;
    }
    let elapsed = cur.taken_at_ns()?.checked_sub(prev.taken_at_ns()?)?;
    if elapsed == 0 {
        return None;
    }
    let mut deltas = [0u64; 4];
    for (d, (p, c)) in deltas.iter_mut().zip(a.times_ns.iter().zip(b.times_ns)) {
        let (p, c) = ((*p)?, c?);
        *d = c.checked_sub(p).unwrap_or_else(|| {
            diag.negative_deltas += 1;
            0
        });
    }
    Some((deltas, elapsed))
}

/// Which of the four standard runstate times counter `c` is, if any.
fn runstate_index(sel: &Selection, c: &Counter) -> Option<usize> {
    sel.runstate.iter().position(|r| r.as_ref() == Some(c))
}

fn vcpu_sample(
    prev: RecordView<'_>,
    cur: RecordView<'_>,
    sel: &Selection,
    any: Option<&Counter>,
    diag: &mut SampleDiagnostics,
) -> VcpuSample {
    let state = state(prev, cur, any);
    let runstate = cur.up_to_date();
    diag.runstate.count(&runstate);
    let clocked = match state {
        RecordState::Ok => clock_deltas(prev, cur, (&prev.up_to_date(), &runstate), diag),
        _ => None,
    };
    let (shares, share_base) = match clocked {
        Some((deltas, elapsed)) => {
            diag.shares_by_clock += 1;
            let sh = deltas.map(|d| (d as f64 / elapsed as f64).min(1.0));
            (Some(sh), Some(ShareBase::TableClock))
        }
        None => {
            diag.shares_by_deltas += 1;
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
            (shares, shares.map(|_| ShareBase::DeltaSum))
        }
    };
    // The four standard times as the sampler found them: up to date where
    // the record's counters are the standard runstate fields.
    let runstate_ns = if runstate.extrapolated {
        runstate.times_ns
    } else {
        sel.runstate
            .each_ref()
            .map(|c| c.as_ref().and_then(|c| cur.get(c)))
    };
    VcpuSample {
        vcpu: cur.index(),
        state,
        runstate_ns,
        runstate,
        shares,
        share_base,
        // A standard runstate counter reads up to date, and its rate is
        // its up-to-date delta over the table-clock interval, so that
        // values, rates and shares agree.
        values: sel
            .vcpu_counters
            .iter()
            .map(|c| match runstate_index(sel, c) {
                Some(k) if runstate.extrapolated => {
                    runstate.times_ns[k].map_or(Value::Absent, Value::Scalar)
                }
                _ => Value::of(cur, c),
            })
            .collect(),
        rates: sel
            .vcpu_counters
            .iter()
            .map(|c| match (runstate_index(sel, c), clocked) {
                (Some(k), Some((deltas, elapsed))) => {
                    Some(deltas[k] as f64 / (elapsed as f64 / 1e9))
                }
                _ => cumulative_rate(prev, cur, c),
            })
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
    diagnostics: SampleDiagnostics,
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
            diagnostics: SampleDiagnostics::default(),
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

    /// What the runstate computations did so far (extrapolated or not,
    /// clamped, which share denominator, negative deltas clamped).
    pub fn diagnostics(&self) -> &SampleDiagnostics {
        &self.diagnostics
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
        let diag = &mut self.diagnostics;
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
                        diag,
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
    use std::{os::unix::fs::FileExt, path::PathBuf};

    use vstats_abi::header::CLOCK_HOST_MONOTONIC;

    use super::*;

    /// A frozen r3 vCPU table in `dir/vcpu` (clock `clock`): record `i`
    /// is `records[i]` = (times, state, entry), seq `seq`. The file is
    /// rewritten in place, so a mapped table sees the new words.
    fn write_r3(dir: &std::path::Path, clock: u32, seq: u32, records: &[([u64; 4], u64, u64)]) {
        let b = vstats_producer::synth::frozen_r3_image(clock, seq, records).unwrap();
        let path = dir.join("vcpu");
        match std::fs::OpenOptions::new().write(true).open(&path) {
            Ok(f) => f.write_all_at(&b, 0).unwrap(),
            Err(_) => std::fs::write(&path, &b).unwrap(),
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vstats-sample-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Steps until a sample comes (a producer-less directory has no
    /// events but these).
    fn sample(s: &mut Sampler) -> Box<Sample> {
        // The clock moves on between the two snapshots: shares need a
        // non-zero interval in the table's clock.
        std::thread::sleep(Duration::from_millis(2));
        match s.step().unwrap() {
            Step::Sample(x) => x,
            Step::Event(e) => panic!("{e:?}"),
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot mmap files")]
    fn a_frozen_record_gets_shares_from_the_table_clock() {
        let dir = temp_dir("frozen");
        // A live producer: a dead one's times are final (not extrapolated).
        let _live = vstats_producer::publish::LivenessLock::take(&dir).unwrap();
        let e = vstats_abi::clock::monotonic_ns();
        // vCPU 0 running, vCPU 1 blocked, vCPU 2 unused, all since `e`,
        // never written again (a guest spinning without exits).
        let inactive = [vstats_abi::record::INACTIVE; 4];
        let recs = [
            ([1000, 10, 20, 0], 0, e),
            ([1000, 10, 20, 0], 2, e),
            (
                inactive,
                vstats_abi::record::INACTIVE,
                vstats_abi::record::INACTIVE,
            ),
        ];
        write_r3(&dir, CLOCK_HOST_MONOTONIC, 2, &recs);
        let vm = Vm::open_dir(&dir, "frozen".into()).unwrap();
        let mut s = Sampler::new(vm, &SampleOptions::default()).unwrap();
        for _ in 0..2 {
            let x = sample(&mut s);
            let (v0, v1, v2) = (&x.vcpus[0], &x.vcpus[1], &x.vcpus[2]);
            // The running delta is exactly the elapsed table time.
            assert_eq!(v0.shares, Some([1.0, 0.0, 0.0, 0.0]));
            assert_eq!(v0.share_base, Some(ShareBase::TableClock));
            assert_eq!(v1.shares, Some([0.0, 0.0, 1.0, 0.0]));
            assert!(v0.runstate.extrapolated && v1.runstate.extrapolated);
            assert_eq!(v0.runstate.state_name(), Some("running"));
            assert_eq!(v1.runstate.entry_ns, Some(e));
            let now = vstats_abi::clock::monotonic_ns();
            let run = v0.runstate_ns[0].unwrap();
            assert!(run > 1000 && run <= 1000 + (now - e), "{run}");
            assert_eq!(v0.runstate_ns[1..], [Some(10), Some(20), Some(0)]);
            assert_eq!(v1.runstate_ns[0], Some(1000));
            // Values and rates of the runstate counters agree with it.
            let k = x
                .vcpu_counters
                .iter()
                .position(|c| c.name() == "runstate_running_time");
            let k = k.unwrap();
            assert_eq!(v0.values[k], Value::Scalar(run));
            let rate = v0.rates[k].unwrap();
            assert!((rate - 1e9).abs() < 1.0, "{rate} ns/s");
            assert_eq!(v1.rates[k], Some(0.0));
            assert_eq!(v2.state, RecordState::Unused);
            assert_eq!((v2.shares, v2.share_base), (None, None));
            assert!(!v2.runstate.extrapolated);
        }
        let d = s.diagnostics();
        assert_eq!((d.shares_by_clock, d.shares_by_deltas), (4, 2));
        assert_eq!(
            (d.runstate.extrapolated, d.runstate.not_extrapolated),
            (4, 2)
        );
        assert_eq!((d.negative_deltas, d.runstate.clamped), (0, 0));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot mmap files")]
    fn without_a_clock_shares_fall_back_to_the_delta_sum() {
        let dir = temp_dir("noclock");
        // Clock 0: as an r2 table, nothing is extrapolated; a frozen
        // record has no shares (the deltas sum to 0).
        write_r3(&dir, 0, 2, &[([1000, 10, 20, 0], 0, 5)]);
        let vm = Vm::open_dir(&dir, "noclock".into()).unwrap();
        let mut s = Sampler::new(vm, &SampleOptions::default()).unwrap();
        let x = sample(&mut s);
        let v = &x.vcpus[0];
        assert!(!v.runstate.extrapolated);
        assert_eq!((v.shares, v.share_base), (None, None));
        assert_eq!(v.runstate_ns, [Some(1000), Some(10), Some(20), Some(0)]);
        // The producer writes: shares from the deltas, as before r3.
        write_r3(&dir, 0, 4, &[([1300, 110, 20, 0], 0, 5)]);
        let x = sample(&mut s);
        let v = &x.vcpus[0];
        assert_eq!(v.share_base, Some(ShareBase::DeltaSum));
        assert_eq!(v.shares, Some([0.75, 0.25, 0.0, 0.0]));
        assert_eq!(s.diagnostics().shares_by_clock, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot mmap files")]
    fn negative_state_deltas_are_clamped_and_counted() {
        let dir = temp_dir("negative");
        let _live = vstats_producer::publish::LivenessLock::take(&dir).unwrap();
        let e = vstats_abi::clock::monotonic_ns();
        let big = 1_000_000_000_000; // 1000 s: more than any test's interval
        write_r3(&dir, CLOCK_HOST_MONOTONIC, 2, &[([big, 0, 0, 0], 0, e)]);
        let vm = Vm::open_dir(&dir, "negative".into()).unwrap();
        let mut s = Sampler::new(vm, &SampleOptions::default()).unwrap();
        // The producer moves the running time to runnable (as the KVM
        // monitor does with a run delay it learns late): running's
        // up-to-date time steps back.
        write_r3(&dir, CLOCK_HOST_MONOTONIC, 4, &[([0, big, 0, 0], 0, e)]);
        let x = sample(&mut s);
        let v = &x.vcpus[0];
        assert_eq!(v.share_base, Some(ShareBase::TableClock));
        let sh = v.shares.unwrap();
        assert_eq!(sh[0], 0.0, "clamped, never negative");
        assert_eq!(sh[1], 1.0, "at most the whole interval");
        assert_eq!(s.diagnostics().negative_deltas, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rates_aggregate_like_values() {
        let a: Aggregate<f64> = [Some(0.0), Some(2.0), None].into_iter().collect();
        assert_eq!((a.present, a.zero, a.absent), (2, 1, 1));
        assert_eq!((a.sum, a.min, a.max), (2.0, Some(0.0), Some(2.0)));
        assert_eq!(a.average(), Some(1.0));
        assert_eq!(Aggregate::<f64>::default().average(), None);
    }
}
