//! The host-wide view, as `xentop` shows it: one row per VM of
//! [`discover::host`] (the directories under a root, then the Xen
//! domains), with per-vCPU rows beneath. The model every front end shares
//! (`xen-vcpus-stats top`, batch or interactive); printing is theirs.
//!
//! An [`Overview`] rescans the root on every [`Overview::refresh`]: VMs
//! that appear get a [`Sampler`] (their first row has no rates: the
//! refresh took their baseline), VMs already known keep theirs, VMs that
//! went away are dropped, and a producer that restarted is re-attached by
//! its sampler. A row's [`VmRow::state`] is the producer's liveness
//! probed during that scan ([`crate::live`]).
//!
//! # Columns
//!
//! - CPU%, runnable% and blocked% are runstate shares of the interval
//!   between two refreshes, summed over the VM's vCPUs and times 100, as
//!   xentop's CPU%: a VM of 4 busy vCPUs shows 400, and for each VM
//!   CPU% + runnable% + blocked% + offline% = 100 x its vCPUs.
//! - Rates are the cumulative counters' changes per second, summed over
//!   the vCPUs, busiest first ([`VmRow::rates`]).
//! - "Since reset" values are kept by the reader ([`Overview::reset`],
//!   [`Sampler::reset`]): the producer's table is not touched.
//!
//! No producer process id is shown: the publication's liveness lock is an
//! open file description lock, whose owner the kernel does not report
//! (`F_OFD_GETLK` gives pid -1), and the ABI carries none. Xen domains
//! have their domid.
//!
//! # Examples
//!
//! ```no_run
//! use vstats_consumer::overview::{Overview, SortKey, View};
//!
//! let mut top = Overview::new("/dev/shm/vstats".as_ref(), Default::default());
//! top.refresh()?; // baselines
//! std::thread::sleep(std::time::Duration::from_secs(1));
//! let mut frame = top.refresh()?;
//! View { sort: SortKey::Cpu, ..View::default() }.apply(&mut frame.rows);
//! for r in &frame.rows {
//!     println!("{} {:?} {}", r.name, r.cpu, r.state_name());
//! }
//! # Ok::<(), vstats_consumer::Error>(())
//! ```

use std::{
    cmp::Ordering,
    collections::HashMap,
    fmt,
    path::{Path, PathBuf},
};

use crate::{
    discover::{self, Backend},
    filter,
    follow::Event,
    live::Liveness,
    sample::{RecordState, Sample, SampleOptions, Sampler, Step, RUNSTATE_COUNTERS},
    Counter, Distribution, Kind, Result,
};

/// A cumulative counter's rate, summed over a VM's vCPUs (or one vCPU's).
#[derive(Clone, Debug, PartialEq)]
pub struct Rate {
    /// The counter (name, unit, scale).
    pub counter: Counter,
    /// Change per second, raw units (times [`Counter::scale`] for its
    /// unit).
    pub per_sec: f64,
    /// The value since the last reset ([`Sampler::since_reset`]), raw
    /// units; `None` when absent, and for domain table counters.
    pub since_reset: Option<u64>,
}

impl Rate {
    /// Change per second in the counter's [`Counter::unit`] (raw times
    /// [`Counter::scale`]): seconds per second for a time in
    /// nanoseconds.
    pub fn scaled(&self) -> f64 {
        self.per_sec * self.counter.scale()
    }
}

/// A histogram of one vCPU since the last reset.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    /// The counter.
    pub counter: Counter,
    /// Its buckets since the last reset.
    pub buckets: Vec<u64>,
    /// Their distribution.
    pub distribution: Distribution,
}

/// One vCPU of a VM's row.
#[derive(Clone, Debug, PartialEq)]
pub struct VcpuRow {
    /// The vCPU (record index).
    pub vcpu: u32,
    /// Running share of the interval x100; `None` when not known this
    /// time (busy record, producer restarted, no update).
    pub cpu: Option<f64>,
    /// Runnable share x100.
    pub runnable: Option<f64>,
    /// Blocked share x100.
    pub blocked: Option<f64>,
    /// Rates of its cumulative counters, busiest first.
    pub rates: Vec<Rate>,
    /// Its histograms since the last reset.
    pub histograms: Vec<Histogram>,
}

/// One VM.
#[derive(Clone, Debug, PartialEq)]
pub struct VmRow {
    /// Its name.
    pub name: String,
    /// Where it comes from.
    pub backend: Backend,
    /// Its Xen domain id.
    pub domid: Option<u16>,
    /// vCPUs in use.
    pub vcpus: u32,
    /// Running shares summed over the vCPUs x100 (xentop's CPU%); `None`
    /// when no vCPU's shares are known this time.
    pub cpu: Option<f64>,
    /// Runnable shares summed x100: ready to run, not running (the
    /// contention signal).
    pub runnable: Option<f64>,
    /// Blocked shares summed x100.
    pub blocked: Option<f64>,
    /// Rates of the cumulative counters (vCPU counters summed over the
    /// vCPUs, then the domain table's), busiest ([`Rate::scaled`]) first.
    /// Runstate times are not repeated here.
    pub rates: Vec<Rate>,
    /// The producer's liveness; `None` when it cannot be told.
    pub state: Option<Liveness>,
    /// What else happened this refresh: a restart, an error; else
    /// [`crate::follow::RFC_V3_NOTE`] for an RFC v3 vCPU table.
    pub note: Option<String>,
    /// Its vCPUs.
    pub vcpu_rows: Vec<VcpuRow>,
}

impl VmRow {
    /// `live`, `stopped`, `dead`, or `?` when not known.
    pub fn state_name(&self) -> &'static str {
        self.state.map_or("?", Liveness::as_str)
    }

    /// The busiest rate, if any.
    pub fn busiest(&self) -> Option<&Rate> {
        self.rates.first()
    }
}

/// One refresh: every VM's row, in discovery order (by name, then Xen
/// domains by domid).
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// The rows.
    pub rows: Vec<VmRow>,
    /// Why Xen domains are not listed ([`discover::Host::xen_unavailable`]).
    pub xen_unavailable: Option<String>,
}

/// Identifies a VM across refreshes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    xen: bool,
    name: String,
    domid: Option<u16>,
}

/// The host-wide view: a sampler per VM, kept across refreshes.
#[derive(Debug)]
pub struct Overview {
    root: PathBuf,
    opts: SampleOptions,
    vms: HashMap<Key, Sampler>,
}

impl Overview {
    /// A view of the VMs under `root` (and the Xen domains), each sampled
    /// with `opts` (every counter of every vCPU by default). Nothing is
    /// read before the first [`Overview::refresh`].
    pub fn new(root: &Path, opts: SampleOptions) -> Overview {
        Overview {
            root: root.to_owned(),
            opts,
            vms: HashMap::new(),
        }
    }

    /// VMs being sampled.
    pub fn len(&self) -> usize {
        self.vms.len()
    }

    /// Whether no VM is being sampled.
    pub fn is_empty(&self) -> bool {
        self.vms.is_empty()
    }

    /// Resets every VM's "since reset" values ([`Sampler::reset`]); VMs
    /// that appear later count from their producer's start.
    pub fn reset(&mut self) {
        self.vms.values_mut().for_each(Sampler::reset);
    }

    /// Rescans the root and samples every VM: the rows since the last
    /// refresh. A VM seen for the first time has no shares or rates yet;
    /// one whose producer is dead or stopped has no rates (its values are
    /// frozen).
    /// A VM that cannot be opened or sampled still has its row, with the
    /// reason in [`VmRow::note`].
    ///
    /// # Errors
    ///
    /// As [`discover::host`]: the root cannot be read.
    pub fn refresh(&mut self) -> Result<Frame> {
        let host = discover::host(&self.root)?;
        let mut kept = HashMap::with_capacity(host.vms.len());
        let mut rows = Vec::with_capacity(host.vms.len());
        for hvm in host.vms {
            let key = Key {
                xen: hvm.backend == Backend::Xen,
                name: hvm.name.clone(),
                domid: hvm.domid,
            };
            let mut row = VmRow {
                name: hvm.name,
                backend: hvm.backend,
                domid: hvm.domid,
                vcpus: 0,
                cpu: None,
                runnable: None,
                blocked: None,
                rates: Vec::new(),
                state: hvm.producer,
                note: None,
                vcpu_rows: Vec::new(),
            };
            let sampler = match (self.vms.remove(&key), hvm.vm) {
                (Some(mut s), _) => match s.step() {
                    Ok(Step::Sample(sample)) => {
                        fill(&mut row, &s, &sample);
                        Some(s)
                    }
                    Ok(Step::Event(e)) => {
                        row.note = Some(describe(&e));
                        row.vcpus = s.vm().summary().vcpus;
                        (!matches!(e, Event::Removed { .. })).then_some(s)
                    }
                    Err(e) => {
                        row.note = Some(e.to_string());
                        None
                    }
                },
                (None, Ok(vm)) => match Sampler::new(vm, &self.opts) {
                    Ok(s) => {
                        row.vcpus = s.vm().summary().vcpus;
                        Some(s)
                    }
                    Err(e) => {
                        row.note = Some(e.to_string());
                        None
                    }
                },
                (None, Err(e)) => {
                    // A stopped producer's directory without tables is
                    // what "stopped" means: no note.
                    if row.state != Some(Liveness::Stopped) {
                        row.note = Some(e.to_string());
                    }
                    None
                }
            };
            if matches!(row.state, Some(Liveness::Dead | Liveness::Stopped)) {
                // Frozen values: a rate of 0 would claim an idle VM.
                row.rates.clear();
                row.vcpu_rows.iter_mut().for_each(|v| v.rates.clear());
            }
            if let Some(s) = sampler {
                // An RFC v3 table's note, when nothing else happened.
                row.note = row.note.or_else(|| s.vm().note().map(str::to_owned));
                kept.insert(key, s);
            }
            rows.push(row);
        }
        self.vms = kept;
        Ok(Frame {
            rows,
            xen_unavailable: host.xen_unavailable,
        })
    }
}

fn describe(e: &Event) -> String {
    match e {
        Event::Restarted { new_generation, .. } => {
            format!("producer restarted (generation {new_generation})")
        }
        Event::Removed { .. } => "tables removed".to_owned(),
        Event::ProducerDied { .. } => "producer died".to_owned(),
        Event::LivenessChanged { new, .. } => format!("producer {new}"),
    }
}

/// Whether `c` is a cumulative scalar counter other than a runstate time.
fn is_rate_counter(c: &Counter) -> bool {
    c.kind() == Kind::CUMULATIVE && !c.is_histogram() && !RUNSTATE_COUNTERS.contains(&c.name())
}

/// Busiest first, then by name.
fn sort_rates(rates: &mut [Rate]) {
    rates.sort_by(|a, b| {
        b.scaled()
            .total_cmp(&a.scaled())
            .then_with(|| a.counter.name().cmp(b.counter.name()))
    });
}

/// Sums `x100` over `items`; `None` when every item is `None`.
fn sum_pct(items: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    items
        .flatten()
        .fold(None, |s, v| Some(s.unwrap_or(0.0) + v * 100.0))
}

/// Fills `row` from a sample of `s`.
fn fill(row: &mut VmRow, s: &Sampler, sample: &Sample) {
    let in_use: Vec<_> = sample
        .vcpus
        .iter()
        .filter(|v| v.state != RecordState::Unused)
        .collect();
    row.vcpus = u32::try_from(in_use.len()).unwrap_or(u32::MAX);
    let share = |k: usize| {
        let in_use = &in_use;
        move || sum_pct(in_use.iter().map(move |v| v.shares.map(|sh| sh[k])))
    };
    row.cpu = share(0)();
    row.runnable = share(1)();
    row.blocked = share(2)();
    for v in &in_use {
        let mut rates = Vec::new();
        let mut histograms = Vec::new();
        for (k, c) in sample.vcpu_counters.iter().enumerate() {
            if is_rate_counter(c) {
                if let Some(Some(r)) = v.rates.get(k) {
                    rates.push(Rate {
                        counter: c.clone(),
                        per_sec: *r,
                        since_reset: s.since_reset(v.vcpu, c),
                    });
                }
            } else if c.is_histogram() {
                if let Some(buckets) = s.histogram_since_reset(v.vcpu, c) {
                    if let Some(distribution) = Distribution::of(c, &buckets) {
                        histograms.push(Histogram {
                            counter: c.clone(),
                            buckets,
                            distribution,
                        });
                    }
                }
            }
        }
        sort_rates(&mut rates);
        let pct = |k: usize| v.shares.map(|sh| sh[k] * 100.0);
        row.vcpu_rows.push(VcpuRow {
            vcpu: v.vcpu,
            cpu: pct(0),
            runnable: pct(1),
            blocked: pct(2),
            rates,
            histograms,
        });
    }
    for (k, c) in sample.vcpu_counters.iter().enumerate() {
        let Some(Some(agg)) = sample.aggregates.get(k) else {
            continue;
        };
        let Some(rates) = agg.rates.filter(|r| r.present > 0) else {
            continue;
        };
        if !is_rate_counter(c) {
            continue;
        }
        let since_reset = in_use
            .iter()
            .map(|v| s.since_reset(v.vcpu, c))
            .try_fold(0u64, |sum, x| x.map(|x| sum.saturating_add(x)));
        row.rates.push(Rate {
            counter: c.clone(),
            per_sec: rates.sum,
            since_reset,
        });
    }
    if let Some(d) = &sample.domain {
        for (c, r) in d.counters.iter().zip(&d.rates) {
            if let (true, Some(r)) = (is_rate_counter(c), r) {
                row.rates.push(Rate {
                    counter: c.clone(),
                    per_sec: *r,
                    since_reset: None,
                });
            }
        }
    }
    sort_rates(&mut row.rates);
}

/// A column to sort VMs by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SortKey {
    /// By name, A to Z.
    #[default]
    Name,
    /// By domid, smallest first (VMs without one last).
    Id,
    /// By vCPUs, most first.
    Vcpus,
    /// By CPU%, highest first.
    Cpu,
    /// By runnable%, highest first.
    Runnable,
    /// By blocked%, highest first.
    Blocked,
    /// By the busiest rate, highest first.
    Rate,
    /// By state: dead, then stopped, then live, then unknown.
    State,
}

impl SortKey {
    /// Every key, in column order.
    pub const ALL: [SortKey; 8] = [
        SortKey::Name,
        SortKey::Id,
        SortKey::Vcpus,
        SortKey::Cpu,
        SortKey::Runnable,
        SortKey::Blocked,
        SortKey::Rate,
        SortKey::State,
    ];

    /// Its name on a command line: `name`, `id`, `vcpus`, `cpu`,
    /// `runnable`, `blocked`, `rate`, `state`.
    pub fn as_str(self) -> &'static str {
        match self {
            SortKey::Name => "name",
            SortKey::Id => "id",
            SortKey::Vcpus => "vcpus",
            SortKey::Cpu => "cpu",
            SortKey::Runnable => "runnable",
            SortKey::Blocked => "blocked",
            SortKey::Rate => "rate",
            SortKey::State => "state",
        }
    }

    /// The next key, in column order (wrapping): what a "next column" key
    /// selects.
    pub fn next(self) -> SortKey {
        let i = SortKey::ALL.iter().position(|&k| k == self).unwrap_or(0);
        SortKey::ALL[(i + 1) % SortKey::ALL.len()]
    }

    /// Compares two rows by this key, in its natural order (see each
    /// key), unknown values last; ties by name, then domid. Percentages
    /// are compared to one decimal, as they are shown.
    pub fn compare(self, a: &VmRow, b: &VmRow) -> Ordering {
        /// A percentage at the resolution a view shows (one decimal), so
        /// that VMs that look alike keep their order (by name) instead of
        /// trading places at every refresh on noise below 0.05.
        fn shown(v: Option<f64>) -> Option<f64> {
            v.map(|v| (v * 10.0).round())
        }
        /// Highest first, `None` last.
        fn desc(a: Option<f64>, b: Option<f64>) -> Ordering {
            match (a, b) {
                (Some(a), Some(b)) => b.total_cmp(&a),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            }
        }
        let state = |r: &VmRow| match r.state {
            Some(Liveness::Dead) => 0,
            Some(Liveness::Stopped) => 1,
            Some(Liveness::Live) => 2,
            None => 3,
        };
        let primary = match self {
            SortKey::Name => Ordering::Equal,
            SortKey::Id => match (a.domid, b.domid) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            },
            SortKey::Vcpus => b.vcpus.cmp(&a.vcpus),
            SortKey::Cpu => desc(shown(a.cpu), shown(b.cpu)),
            SortKey::Runnable => desc(shown(a.runnable), shown(b.runnable)),
            SortKey::Blocked => desc(shown(a.blocked), shown(b.blocked)),
            SortKey::Rate => desc(a.busiest().map(Rate::scaled), b.busiest().map(Rate::scaled)),
            SortKey::State => state(a).cmp(&state(b)),
        };
        primary
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.domid.cmp(&b.domid))
    }
}

impl fmt::Display for SortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SortKey {
    type Err = String;

    /// One of [`SortKey::as_str`]'s names.
    fn from_str(s: &str) -> std::result::Result<SortKey, String> {
        SortKey::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = SortKey::ALL.iter().map(|k| k.as_str()).collect();
                format!("{s:?} is not a sort key (one of {})", names.join(", "))
            })
    }
}

/// How rows are shown: sorted by a column, filtered by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// The column.
    pub sort: SortKey,
    /// Whether to reverse its natural order.
    pub reverse: bool,
    /// Only VMs whose name matches ([`filter::name_matches`]: a substring,
    /// or a `*`/`?` pattern); everything when empty.
    pub filter: String,
}

impl View {
    /// Filters and sorts `rows`.
    pub fn apply(&self, rows: &mut Vec<VmRow>) {
        rows.retain(|r| filter::name_matches(&self.filter, &r.name));
        rows.sort_by(|a, b| {
            let o = self.sort.compare(a, b);
            if self.reverse {
                o.reverse()
            } else {
                o
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, cpu: Option<f64>, state: Option<Liveness>) -> VmRow {
        VmRow {
            name: name.into(),
            backend: Backend::File,
            domid: None,
            vcpus: 1,
            cpu,
            runnable: None,
            blocked: None,
            rates: Vec::new(),
            state,
            note: None,
            vcpu_rows: Vec::new(),
        }
    }

    #[test]
    fn sorts_and_filters() {
        let live = Some(Liveness::Live);
        let rows = vec![
            row("b", Some(10.0), live),
            row("a", None, Some(Liveness::Dead)),
            row("c", Some(250.0), live),
        ];
        let names = |v: &View| {
            let mut r = rows.clone();
            v.apply(&mut r);
            r.into_iter().map(|r| r.name).collect::<Vec<_>>()
        };
        assert_eq!(names(&View::default()), ["a", "b", "c"]);
        let mut v = View {
            sort: SortKey::Cpu,
            ..View::default()
        };
        assert_eq!(names(&v), ["c", "b", "a"], "highest first, unknown last");
        v.reverse = true;
        assert_eq!(names(&v), ["a", "b", "c"]);
        v = View {
            sort: SortKey::State,
            ..View::default()
        };
        assert_eq!(names(&v), ["a", "b", "c"], "dead first");
        v.filter = "B".into();
        assert_eq!(names(&v), ["b"]);
        // Percentages that show alike (170.0) sort by name, whatever the
        // noise below the decimal shown.
        let alike = vec![
            row("y", Some(170.04), live),
            row("x", Some(169.96), live),
            row("z", Some(170.2), live),
        ];
        let mut r = alike.clone();
        View {
            sort: SortKey::Cpu,
            ..View::default()
        }
        .apply(&mut r);
        let order: Vec<&str> = r.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(order, ["z", "x", "y"]);
    }

    #[test]
    fn sort_keys_parse_and_cycle() {
        for k in SortKey::ALL {
            assert_eq!(k.as_str().parse::<SortKey>(), Ok(k));
        }
        assert!("x".parse::<SortKey>().is_err());
        let mut k = SortKey::Name;
        for _ in 0..SortKey::ALL.len() {
            k = k.next();
        }
        assert_eq!(k, SortKey::Name);
    }

    #[test]
    fn percentages_sum() {
        assert_eq!(sum_pct([None, None].into_iter()), None);
        assert_eq!(
            sum_pct([Some(0.5), None, Some(1.0)].into_iter()),
            Some(150.0)
        );
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "Miri computes powi/log2 imprecisely on purpose, and these compare exact floats"
    )]
    fn distributions_and_sparklines() {
        let log2 = Counter::for_tests("h", Kind::LOG2_HIST, 8, 0);
        // 0 once, [1, 2) once, [4, 8) 98 times.
        let d = Distribution::of(&log2, &[1, 1, 0, 98, 0, 0, 0, 0]).unwrap();
        assert_eq!(d.count, 100);
        assert_eq!((d.p50, d.p90, d.p99), (Some(8.0), Some(8.0), Some(8.0)));
        let d = Distribution::of(&log2, &[50, 40, 9, 1, 0, 0, 0, 0]).unwrap();
        assert_eq!((d.p50, d.p90, d.p99), (Some(1.0), Some(2.0), Some(4.0)));
        let d = Distribution::of(&log2, &[0; 8]).unwrap();
        assert_eq!((d.count, d.p50), (0, None));
        let lin = Counter::for_tests("l", Kind::LINEAR_HIST, 4, 10);
        let d = Distribution::of(&lin, &[1, 0, 0, 1]).unwrap();
        assert_eq!((d.p50, d.p99), (Some(10.0), Some(f64::INFINITY)));
        // R28: the last bucket is open-ended, log2 as linear.
        let d = Distribution::of(&log2, &[0, 0, 0, 0, 0, 0, 0, 1]).unwrap();
        assert_eq!(d.p50, Some(f64::INFINITY));
        assert_eq!(crate::bucket_bound(Kind::LOG2_HIST, 0, 6, 8), Some(64.0));
        assert_eq!(
            crate::bucket_bound(Kind::LOG2_HIST, 0, 7, 8),
            Some(f64::INFINITY)
        );
        assert_eq!(crate::bucket_bound(Kind::LINEAR_HIST, 10, 2, 4), Some(30.0));
        assert_eq!(
            crate::bucket_bound(Kind::LINEAR_HIST, 10, 3, 4),
            Some(f64::INFINITY)
        );
        let scalar = Counter::for_tests("s", Kind::CUMULATIVE, 1, 0);
        assert_eq!(Distribution::of(&scalar, &[1]), None);
        assert_eq!(crate::histogram_delta(&[1, 2], &[3, 2]), Some(vec![2, 0]));
        assert_eq!(crate::histogram_delta(&[1, 2], &[0, 2]), None);
        assert_eq!(crate::histogram_delta(&[1], &[1, 2]), None);
        assert_eq!(
            crate::sparkline(&[0, 0, 1, 0, 8, 4, 0]),
            "\u{2581} \u{2588}\u{2584}"
        );
        assert_eq!(crate::sparkline(&[0, 0]), "");
    }

    #[test]
    #[cfg_attr(miri, ignore = "files and locks are beyond Miri's isolation")]
    fn follows_a_host() {
        use vstats_producer::synth::Synth;
        let root = std::env::temp_dir().join(format!("vstats-overview-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let mut a = Synth::new(&root.join("a"), 2).unwrap();
        let mut b = Synth::new(&root.join("b"), 4).unwrap();
        let mut top = Overview::new(&root, SampleOptions::default());
        let f = top.refresh().unwrap();
        let names: Vec<&str> = f.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!((f.rows[0].vcpus, f.rows[1].vcpus), (2, 4));
        assert!(f.rows.iter().all(|r| r.cpu.is_none()), "baselines only");
        assert_eq!(f.rows[0].state, Some(Liveness::Live));
        assert_eq!(top.len(), 2);

        std::thread::sleep(std::time::Duration::from_millis(20));
        a.update();
        b.update();
        let f = top.refresh().unwrap();
        // The model: vCPU i runs (20 + 15 i % 60)% of the time, 3% runnable.
        let near = |x: Option<f64>, want: f64| (x.unwrap() - want).abs() < 1.0;
        assert!(near(f.rows[0].cpu, 55.0), "{:?}", f.rows[0].cpu);
        assert!(near(f.rows[0].runnable, 6.0), "{:?}", f.rows[0].runnable);
        assert!(near(f.rows[1].cpu, 20.0 + 35.0 + 50.0 + 65.0));
        let busiest = f.rows[1].busiest().unwrap();
        assert_eq!(busiest.counter.name(), "exits", "in counts per second");
        assert_eq!(f.rows[1].vcpu_rows.len(), 4);
        let v = &f.rows[1].vcpu_rows[3];
        assert!(near(v.cpu, 65.0));
        assert_eq!(v.histograms.len(), 1);
        assert_eq!(v.histograms[0].counter.name(), "halt_wait_hist");

        // Reset: the reader's baseline is the latest snapshot, so nothing
        // new counts 0, and what the producer counts next counts again.
        let exits = |f: &Frame| {
            f.rows[1]
                .rates
                .iter()
                .find(|r| r.counter.name() == "exits")
                .and_then(|r| r.since_reset)
        };
        assert!(exits(&f).unwrap() > 0, "since the producer started");
        top.reset();
        let f = top.refresh().unwrap();
        assert_eq!(f.rows[1].cpu, None, "no update: no shares");
        assert!(f.rows[1].rates.iter().all(|r| r.per_sec == 0.0));
        assert_eq!(exits(&f), Some(0), "nothing since the reset");
        let v = &top.vms[&Key {
            xen: false,
            name: "b".into(),
            domid: None,
        }];
        let c = v
            .vm()
            .vcpu
            .as_ref()
            .unwrap()
            .table
            .counter("exits")
            .unwrap();
        assert_eq!(v.since_reset(0, c), Some(0), "nothing since the reset");
        let h = v
            .vm()
            .vcpu
            .as_ref()
            .unwrap()
            .table
            .counter("halt_wait_hist")
            .unwrap();
        let hist = v.histogram_since_reset(0, h).unwrap();
        assert!(hist.iter().all(|&b| b == 0), "{hist:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
        b.update();
        let f = top.refresh().unwrap();
        assert!(exits(&f).unwrap() > 0, "counting again");

        // One crashes (dead), the other stops (gone).
        a.crash();
        b.remove().unwrap();
        let f = top.refresh().unwrap();
        assert_eq!(f.rows.len(), 1);
        assert_eq!(f.rows[0].state, Some(Liveness::Dead));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
