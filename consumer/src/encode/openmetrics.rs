//! The one metrics encoder of vstats (the exporter's `/metrics` and the
//! tool's `--format openmetrics`): every counter of every vCPU and of the
//! domain, raw (rates are the scraper's job: `rate()` in PromQL), scaled
//! to base units (seconds, bytes) with the descriptor's base and exponent,
//! in either of two syntaxes ([`Syntax`]): OpenMetrics 1.0 or the
//! Prometheus text format 0.0.4.
//!
//! # Names
//!
//! * families are named `vstats_vcpu_<counter>` and
//!   `vstats_domain_<counter>`; when the counter has a unit the unit is
//!   appended (`vstats_domain_uptime_seconds`) and an abbreviated unit at
//!   the end of the descriptor's name is dropped first (KVM's
//!   `halt_wait_ns` becomes `vstats_vcpu_halt_wait_seconds`, not
//!   `..._ns_seconds`);
//! * the four standard runstate counters (`runstate_<state>_time`) are one
//!   family, `vstats_vcpu_runstate_seconds`, with a `state` label
//!   (`running`, `runnable`, `blocked`, `offline`), as node_exporter's
//!   `node_cpu_seconds_total{mode}`: `rate(...{state="running"}[1m])` is a
//!   vCPU's running share;
//! * the runstate times are up to date (ABI r3, rule R26: brought to the
//!   snapshot's clock reading, [`vstats_consumer::RecordView::up_to_date`]);
//!   the state a vCPU is in (r3 `runstate`) is the stateset
//!   `vstats_vcpu_runstate` ([`RUNSTATE_FAMILY`]), whose state label is
//!   named after the family as OpenMetrics requires
//!   (`vstats_vcpu_runstate{vm,vcpu,vstats_vcpu_runstate="running"} 1`,
//!   0 for the other three; a `gauge` in the text format); the entry time
//!   is not exported (a timestamp, not a quantity);
//! * a counter whose name maps to a family another counter (or another
//!   type or unit) already has gets `_<k>` appended, `k` being its index in
//!   its table, so no series is written twice;
//! * cumulative counters are `counter`s whose samples end in `_total`,
//!   instant and peak ones `gauge`s, histograms `histogram`s;
//! * labels: `vm`, `domid` (Xen domains), `vcpu` (vCPU families), `state`
//!   (runstates);
//! * every family has `# HELP`, written from its descriptor (name, kind,
//!   unit, table); OpenMetrics also gets `# UNIT` for seconds and bytes.
//!
//! # Histograms without a sum
//!
//! KVM's log2 and linear histograms count events per bucket, but nothing
//! records the sum of the observed values, and OpenMetrics requires
//! `_sum` whenever `_count` is present (the reference parser rejects a
//! `_count` alone). A made-up sum would be wrong, so a histogram is
//! written as its cumulative `_bucket` samples only, ending with the
//! `le="+Inf"` bucket, which holds the count: no `_count`, no `_sum`.
//! Both syntaxes and both reference parsers accept that, and
//! `histogram_quantile()` needs only the buckets. Log2 bucket `i >= 1`
//! counts `[2^(i-1), 2^i)`, so its bound is `2^i - 1` raw units (bucket 0
//! counts zeros: `le="0"`); linear bucket `i` counts `[i*w, (i+1)*w)`,
//! bound `(i+1)*w - 1`. The last bucket, and any bucket whose bound does
//! not fit 63 bits, fold into `+Inf`.
//!
//! # Syntaxes
//!
//! * [`Syntax::OpenMetrics`]: `# TYPE`, `# UNIT`, `# HELP` per family,
//!   timestamps in seconds, and `# EOF` once, at the end;
//! * [`Syntax::Text`] (Prometheus text 0.0.4): no `# UNIT`, no `# EOF`; a
//!   counter's `# TYPE` and `# HELP` name the `_total` series, timestamps
//!   are in milliseconds.
//!
//! # Streams of samples
//!
//! One exposition may hold several points of a series when each is
//! timestamped ([`Exposition::add_sample_at`]): the points of one series
//! are written together, oldest first, so `sample --count N` prints one
//! valid exposition. A histogram series keeps only its latest point: the
//! reference parser (Python `prometheus_client`) takes the buckets of a
//! second point for duplicates of the first's and drops them, so several
//! points of one histogram cannot be read back. `sample` without a count
//! writes one exposition (no timestamps, `# EOF`) per sample instead: a
//! stream of expositions, each valid on its own. Absent values (busy or
//! unused records, inactive counters) have no sample.
//!
//! # Reuse
//!
//! [`Exposition::clear`] drops the points and keeps the families and every
//! buffer: an exporter that encodes N tables per scrape into one reused
//! exposition and one reused output `String` ([`Exposition::encode`])
//! reaches a steady size after the first scrape.

use std::{
    collections::HashMap,
    fmt::Write as _,
    io::{self, Write},
    ops::Range,
    time::{SystemTime, UNIX_EPOCH},
};

use vstats_consumer::{live::Liveness, Counter, Kind, Snapshot, Table, TableKind, Unit};

use super::{kind_name, unit_name};
use crate::sample::{RecordState, Sample, Value, RUNSTATES, RUNSTATE_COUNTERS};

/// The exposition syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// OpenMetrics 1.0 (`application/openmetrics-text`).
    OpenMetrics,
    /// Prometheus text format 0.0.4 (`text/plain`).
    Text,
}

impl Syntax {
    /// The `Content-Type` of an exposition in this syntax.
    pub fn content_type(self) -> &'static str {
        match self {
            Syntax::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Syntax::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// The syntax a scraper asks for in its `Accept` header: OpenMetrics
    /// when it accepts `application/openmetrics-text` (with a non-zero
    /// quality), the text format otherwise (and with no header).
    pub fn negotiate(accept: Option<&str>) -> Syntax {
        let wants_om = accept.is_some_and(|a| {
            a.split(',').any(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next().unwrap_or("");
                media.eq_ignore_ascii_case("application/openmetrics-text")
                    && !parts.any(|p| {
                        p.strip_prefix("q=")
                            .and_then(|q| q.parse::<f64>().ok())
                            .is_some_and(|q| q <= 0.0)
                    })
            })
        });
        if wants_om {
            Syntax::OpenMetrics
        } else {
            Syntax::Text
        }
    }
}

/// A family's metric type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    /// A monotonic counter (samples end in `_total`).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Cumulative buckets.
    Histogram,
    /// One sample per state, 1 for the state held and 0 for the others
    /// (OpenMetrics `stateset`; a `gauge` in the text format).
    StateSet,
    /// A kind this revision does not know.
    Unknown,
}

impl MetricType {
    /// The `# TYPE` word in `syntax`.
    pub fn name(self, syntax: Syntax) -> &'static str {
        match (self, syntax) {
            (MetricType::Counter, _) => "counter",
            (MetricType::Gauge, _) => "gauge",
            (MetricType::Histogram, _) => "histogram",
            (MetricType::StateSet, Syntax::OpenMetrics) => "stateset",
            (MetricType::StateSet, Syntax::Text) => "gauge",
            (MetricType::Unknown, Syntax::OpenMetrics) => "unknown",
            (MetricType::Unknown, Syntax::Text) => "untyped",
        }
    }
}

/// The metric type of a counter.
pub fn metric_type(c: &Counter) -> MetricType {
    match c.kind() {
        Kind::CUMULATIVE if !c.is_histogram() => MetricType::Counter,
        Kind::INSTANT | Kind::PEAK if !c.is_histogram() => MetricType::Gauge,
        Kind::LINEAR_HIST | Kind::LOG2_HIST => MetricType::Histogram,
        _ => MetricType::Unknown,
    }
}

/// The unit of a counter, as a name suffix (`None`: no unit).
pub fn metric_unit(c: &Counter) -> Option<&'static str> {
    match c.unit() {
        Unit::SECONDS => Some("seconds"),
        Unit::BYTES => Some("bytes"),
        Unit::CYCLES => Some("cycles"),
        _ => None,
    }
}

/// Name endings that spell a unit, dropped before the unit is appended.
const UNIT_SUFFIXES: &[&str] = &[
    "_nanoseconds",
    "_microseconds",
    "_milliseconds",
    "_seconds",
    "_nsec",
    "_usec",
    "_msec",
    "_secs",
    "_sec",
    "_ns",
    "_us",
    "_ms",
    "_s",
    "_bytes",
    "_kib",
    "_mib",
    "_kb",
    "_mb",
    "_b",
    "_cycles",
];

/// The runstate (`running`, ...) of a standard runstate counter of the
/// vCPU table.
pub fn runstate_of(table: TableKind, c: &Counter) -> Option<&'static str> {
    if table != TableKind::Vcpu || metric_type(c) != MetricType::Counter {
        return None;
    }
    let i = RUNSTATE_COUNTERS.iter().position(|&n| n == c.name())?;
    RUNSTATES.get(i).copied()
}

/// The family of a vCPU's current runstate: a stateset whose samples carry
/// the state in a label of the family's own name (OpenMetrics requires
/// it): `vstats_vcpu_runstate{vm="a",vcpu="0",vstats_vcpu_runstate="running"} 1`.
pub const RUNSTATE_FAMILY: &str = "vstats_vcpu_runstate";

/// Whether counter `c` of a table of kind `table` is exported as a family
/// of its own: every counter but the r3 standard fields `runstate` (the
/// [`RUNSTATE_FAMILY`] stateset says it) and `runstate_entry_time` (a
/// timestamp, not a quantity: design 4.3), should a table list them.
fn exported(table: TableKind, c: &Counter) -> bool {
    !(table == TableKind::Vcpu
        && c.source() == vstats_consumer::Source::Standard
        && matches!(c.name(), "runstate" | "runstate_entry_time"))
}

/// The family name of counter `c` of a table of kind `table`:
/// `vstats_<table>_<name>[_<unit>]` (see the module docs), characters
/// outside `[A-Za-z0-9_]` replaced by `_`, no `_total`.
pub fn family_name(table: TableKind, c: &Counter) -> String {
    if runstate_of(table, c).is_some() {
        return "vstats_vcpu_runstate_seconds".to_owned();
    }
    compose_name(table, c.name(), metric_unit(c))
}

/// `vstats_<table>_<name>[_<unit>]` from a descriptor's name.
fn compose_name(table: TableKind, raw: &str, unit: Option<&str>) -> String {
    let mut name: String = raw
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '_' {
                ch.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if let Some(stem) = name.strip_suffix("_total") {
        name.truncate(stem.len());
    }
    if unit.is_some() {
        if let Some(s) = UNIT_SUFFIXES.iter().find(|s| name.ends_with(*s)) {
            name.truncate(name.len() - s.len());
        }
    }
    let mut s = format!("vstats_{}_{name}", table.file_name());
    if let Some(u) = unit {
        s.push('_');
        s.push_str(u);
    }
    s
}

fn push_escaped_label(out: &mut String, v: &str) {
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help(v: &str, syntax: Syntax) -> String {
    let mut out = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if syntax == Syntax::OpenMetrics => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// A raw value scaled to the unit, exactly for powers of ten (the decimal
/// point moves), as a float for powers of two.
pub fn scaled(raw: u64, c: &Counter) -> String {
    scale_text(raw, c.base().0, c.exponent())
}

/// `raw * base^e` as text: see [`scaled`].
pub fn scale_text(raw: u64, base: u8, e: i8) -> String {
    if e == 0 {
        return raw.to_string();
    }
    if base == 10 {
        if e > 0 {
            if let Some(v) = 10u128
                .checked_pow(u32::from(e.unsigned_abs()))
                .and_then(|p| p.checked_mul(u128::from(raw)))
            {
                return v.to_string();
            }
        } else {
            let shift = usize::from(e.unsigned_abs());
            let digits = format!("{raw:0>width$}", width = shift + 1);
            let (int, frac) = digits.split_at(digits.len() - shift);
            let frac = frac.trim_end_matches('0');
            return if frac.is_empty() {
                int.to_owned()
            } else {
                format!("{int}.{frac}")
            };
        }
    }
    if base == 2 {
        // Powers of two are exact: a shift, or a division by an exact
        // power of two (`powi` need not be exact, and under Miri is not).
        let k = u32::from(e.unsigned_abs());
        let p = 1u128.checked_shl(k);
        if let Some(p) = p {
            if e > 0 {
                if let Some(v) = p.checked_mul(u128::from(raw)) {
                    return v.to_string();
                }
            } else {
                return fmt_f64(raw as f64 / p as f64);
            }
        }
    }
    fmt_f64(raw as f64 * f64::from(base).powi(i32::from(e)))
}

/// Appends `raw * base^e` as text to `out`: exactly what [`scale_text`]
/// returns, without allocating for the common cases (no scale, and
/// negative powers of ten, such as nanoseconds to seconds).
fn push_scaled(out: &mut String, raw: u64, base: u8, e: i8) {
    if e == 0 {
        let _ = write!(out, "{raw}");
        return;
    }
    if base != 10 || e > 0 {
        out.push_str(&scale_text(raw, base, e));
        return;
    }
    // The decimal digits of `raw`, then the point moved `shift` places
    // left, trailing zeros of the fraction dropped.
    let mut buf = [0u8; 20];
    let mut start = buf.len();
    let mut n = raw;
    loop {
        start -= 1;
        if let Some(b) = buf.get_mut(start) {
            *b = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || start == 0 {
            break;
        }
    }
    let digits = buf.get(start..).unwrap_or_default();
    let shift = usize::from(e.unsigned_abs());
    let (int, frac) = digits.split_at(digits.len().saturating_sub(shift));
    let frac_zeros = shift.saturating_sub(digits.len());
    let frac = match frac.iter().rposition(|&d| d != b'0') {
        Some(last) => frac.get(..=last).unwrap_or_default(),
        None => &[],
    };
    let digit = |d: &u8| char::from(*d);
    if int.is_empty() {
        out.push('0');
    } else {
        out.extend(int.iter().map(digit));
    }
    if !frac.is_empty() {
        out.push('.');
        out.extend(std::iter::repeat_n('0', frac_zeros));
        out.extend(frac.iter().map(digit));
    }
}

/// The unit for a `# HELP` line: `count` for unit none.
fn help_unit(c: &Counter) -> String {
    match c.unit() {
        Unit::NONE => "count".to_owned(),
        u => unit_name(u),
    }
}

fn fmt_f64(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else if x.is_nan() {
        "NaN".to_owned()
    } else if x > 0.0 {
        "+Inf".to_owned()
    } else {
        "-Inf".to_owned()
    }
}

/// Upper bounds (`le`, raw units) of a histogram's buckets but the last
/// (see the module docs); bounds that do not fit 63 bits end the list.
fn bucket_bounds(c: &Counter) -> Vec<u64> {
    let n = c.count().saturating_sub(1);
    (0..n)
        .map_while(|i| match c.kind() {
            Kind::LOG2_HIST => 1u64.checked_shl(i).filter(|&p| p <= 1 << 62).map(|p| p - 1),
            _ => u64::from(i + 1)
                .checked_mul(u64::from(c.bucket_size()))?
                .checked_sub(1),
        })
        .collect()
}

/// What a point holds.
#[derive(Clone, Debug)]
enum PointValue {
    /// A raw counter value, scaled by the family's counter `usize`.
    Raw(usize, u64),
    /// Buckets (a range of [`Exposition::buckets`]) of counter `usize`.
    Hist(usize, Range<usize>),
    /// A value in base units (self-metrics, info).
    Float(f64),
}

#[derive(Clone, Debug)]
struct Point {
    /// A range of [`Exposition::labels`].
    labels: Range<usize>,
    /// Milliseconds since the epoch.
    ts_ms: Option<u64>,
    value: PointValue,
}

/// One metric family and its points.
#[derive(Debug)]
struct Family {
    name: String,
    ty: MetricType,
    unit: Option<&'static str>,
    help: String,
    /// The counters whose points this family holds (the four runstates,
    /// or one counter as each VM's descriptor gives it).
    counters: Vec<Counter>,
    points: Vec<Point>,
}

/// The metadata of a family that does not come from a descriptor (an
/// exporter's own metrics, `vstats_vm_info`).
#[derive(Clone, Copy, Debug)]
pub struct Meta<'a> {
    /// The family name (a counter's without `_total`).
    pub name: &'a str,
    /// Its type.
    pub ty: MetricType,
    /// Its unit (the name must end with it), if any.
    pub unit: Option<&'static str>,
    /// The `# HELP` text.
    pub help: &'a str,
}

/// An exposition being built from any number of VMs: add snapshots
/// ([`Exposition::add_snapshot`], what a scrape needs: one snapshot,
/// cumulative values), samples ([`Exposition::add_sample`],
/// [`Exposition::add_sample_at`]) or values of other families
/// ([`Exposition::add_value`]), then encode it ([`Exposition::encode`],
/// [`Exposition::finish`]). A counter of the same table and name in
/// several VMs is one family with a point per VM (and vCPU).
#[derive(Debug, Default)]
pub struct Exposition {
    families: Vec<Family>,
    /// Family name -> index in `families`.
    by_name: HashMap<String, usize>,
    /// The label text of every point.
    labels: String,
    /// The buckets of every histogram point.
    buckets: Vec<u64>,
    /// Some point has a timestamp: points are grouped per series when
    /// encoded.
    timestamped: bool,
}

/// `vm="..."[,domid="..."]` appended to `out`.
fn push_base_labels(out: &mut String, vm: &str, domid: Option<u16>) {
    out.push_str("vm=\"");
    push_escaped_label(out, vm);
    out.push('"');
    if let Some(d) = domid {
        let _ = write!(out, ",domid=\"{d}\"");
    }
}

fn counter_help(table: TableKind, c: &Counter) -> String {
    if runstate_of(table, c).is_some() {
        return format!(
            "Time each vCPU spent in each runstate (descriptors {}: cumulative seconds per vCPU)",
            RUNSTATE_COUNTERS.join(", ")
        );
    }
    format!(
        "{}: {} {} per {}",
        c.name(),
        kind_name(c.kind()),
        help_unit(c),
        table
    )
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Drops every point, keeping the families (their metadata) and the
    /// buffers, for the next scrape.
    pub fn clear(&mut self) {
        for f in &mut self.families {
            f.points.clear();
        }
        self.labels.clear();
        self.buckets.clear();
        self.timestamped = false;
    }

    /// The index of family `name`, made on first use. A family of that
    /// name that does not fit (another type or unit, or `accept` refuses
    /// it: another counter's family) is left alone: the name becomes
    /// `<name>_<k>`, then `<name>_<k>_<j>`, until one fits or is free.
    fn family_index(
        &mut self,
        name: &str,
        k: usize,
        ty: MetricType,
        unit: Option<&'static str>,
        accept: impl Fn(&Family) -> bool,
        help: impl FnOnce() -> String,
    ) -> usize {
        let fits = |f: &Family| f.ty == ty && f.unit == unit && accept(f);
        let mut candidate = name.to_owned();
        // Each refused candidate is a distinct existing family, so this
        // ends within `families.len() + 1` tries.
        for j in 0..=self.families.len() {
            match self.by_name.get(&candidate) {
                None => break,
                Some(&i) if self.families.get(i).is_some_and(&fits) => return i,
                Some(_) if j == 0 => candidate = format!("{name}_{k}"),
                Some(_) => candidate = format!("{name}_{k}_{j}"),
            }
        }
        self.push_family(candidate, ty, unit, help())
    }

    fn push_family(
        &mut self,
        name: String,
        ty: MetricType,
        unit: Option<&'static str>,
        help: String,
    ) -> usize {
        self.families.push(Family {
            name: name.clone(),
            ty,
            unit,
            help,
            counters: Vec::new(),
            points: Vec::new(),
        });
        let i = self.families.len() - 1;
        self.by_name.insert(name, i);
        i
    }

    /// The family of counter `c` (number `k` of its table's list), and
    /// the index of `c` in its counters.
    fn counter_family(&mut self, table: TableKind, k: usize, c: &Counter) -> (usize, usize) {
        let name = family_name(table, c);
        let runstate = runstate_of(table, c).is_some();
        // One counter per family (in any VM's version of it), but for the
        // four runstates, which the `state` label tells apart: two
        // counters whose names map to one family name would write the
        // same series twice.
        let accept = |f: &Family| {
            f.counters
                .iter()
                .all(|x| x.name() == c.name() || (runstate && runstate_of(table, x).is_some()))
        };
        let fi = self.family_index(&name, k, metric_type(c), metric_unit(c), accept, || {
            counter_help(table, c)
        });
        let Some(f) = self.families.get_mut(fi) else {
            return (fi, 0);
        };
        let ci = match f.counters.iter().position(|x| x == c) {
            Some(ci) => ci,
            None => {
                f.counters.push(c.clone());
                f.counters.len() - 1
            }
        };
        (fi, ci)
    }

    /// Adds one record's values of `counters` (`value(k, c)` gives the
    /// value of counter `k`) with labels `base` (+ `state` for runstates).
    /// `slots` caches each counter's family across the records of one
    /// table (one entry per counter, `None` until its first value).
    fn add_record<'v>(
        &mut self,
        table: TableKind,
        counters: &[Counter],
        slots: &mut Vec<Option<Slot>>,
        base: &str,
        ts_ms: Option<u64>,
        mut value: impl FnMut(usize, &Counter) -> Option<ValueRef<'v>>,
    ) {
        slots.resize(counters.len(), None);
        for ((k, c), slot) in counters.iter().enumerate().zip(slots.iter_mut()) {
            if !exported(table, c) {
                continue;
            }
            let Some(v) = value(k, c) else { continue };
            let Slot {
                family: fi,
                counter: ci,
                state,
            } = *slot.get_or_insert_with(|| {
                let (family, counter) = self.counter_family(table, k, c);
                Slot {
                    family,
                    counter,
                    state: runstate_of(table, c),
                }
            });
            let start = self.labels.len();
            self.labels.push_str(base);
            if let Some(state) = state {
                self.labels.push_str(",state=\"");
                self.labels.push_str(state);
                self.labels.push('"');
            }
            let labels = start..self.labels.len();
            let value = match v {
                ValueRef::Scalar(x) => PointValue::Raw(ci, x),
                ValueRef::Hist(h) => {
                    let b = self.buckets.len();
                    self.buckets.extend_from_slice(h);
                    PointValue::Hist(ci, b..self.buckets.len())
                }
            };
            if let Some(f) = self.families.get_mut(fi) {
                f.points.push(Point {
                    labels,
                    ts_ms,
                    value,
                });
            }
        }
    }

    /// Adds the metadata (`# TYPE`, `# UNIT`, `# HELP`) of counters of a
    /// table of kind `table`, with no points.
    pub fn add_counters(&mut self, table: TableKind, counters: &[Counter]) {
        for (k, c) in counters.iter().enumerate() {
            if exported(table, c) {
                self.counter_family(table, k, c);
            }
        }
    }

    /// Adds a vCPU's current runstate (`state`, the r3 record's
    /// `runstate` word) to the [`RUNSTATE_FAMILY`] stateset: one point per
    /// state, 1 for `state` and 0 for the others, with labels `labels`
    /// (`vm`, `vcpu`, ...). Nothing for an absent or unknown state (r1 and
    /// r2 tables have none).
    pub fn add_runstate(&mut self, labels: &str, state: Option<u64>, ts_ms: Option<u64>) {
        let Some(current) = state.filter(|&s| s < RUNSTATES.len() as u64) else {
            return;
        };
        let fi = self.family_index(
            RUNSTATE_FAMILY,
            0,
            MetricType::StateSet,
            None,
            |f| f.counters.is_empty(),
            || "The runstate each vCPU is in (1) and those it is not in (0)".to_owned(),
        );
        for (i, name) in (0u64..).zip(RUNSTATES) {
            let start = self.labels.len();
            self.labels.push_str(labels);
            if !labels.is_empty() {
                self.labels.push(',');
            }
            let _ = write!(self.labels, "{RUNSTATE_FAMILY}=\"{name}\"");
            let labels = start..self.labels.len();
            if let Some(f) = self.families.get_mut(fi) {
                f.points.push(Point {
                    labels,
                    ts_ms,
                    value: PointValue::Float(if i == current { 1.0 } else { 0.0 }),
                });
            }
        }
    }

    /// Adds a sample's values (its second snapshot; rates are the
    /// scraper's job), with no timestamp.
    pub fn add_sample(&mut self, s: &Sample) {
        self.add_sample_ts(s, None);
    }

    /// Adds a sample's values timestamped with its wall-clock time, so
    /// that several samples of a VM make one exposition.
    pub fn add_sample_at(&mut self, s: &Sample) {
        self.timestamped = true;
        self.add_sample_ts(s, Some(epoch_ms(s.wall)));
    }

    fn add_sample_ts(&mut self, s: &Sample, ts_ms: Option<u64>) {
        let mut base = String::new();
        push_base_labels(&mut base, &s.vm, s.domid);
        let mut labels = String::new();
        let mut slots = Vec::new();
        for v in &s.vcpus {
            if !matches!(v.state, RecordState::Ok | RecordState::Reset) {
                continue;
            }
            labels.clear();
            let _ = write!(labels, "{base},vcpu=\"{}\"", v.vcpu);
            let counters = &s.vcpu_counters;
            self.add_record(
                TableKind::Vcpu,
                counters,
                &mut slots,
                &labels,
                ts_ms,
                |k, _| v.values.get(k).and_then(ValueRef::of),
            );
            self.add_runstate(&labels, v.runstate.state, ts_ms);
        }
        if let Some(d) = &s.domain {
            if matches!(d.state, RecordState::Ok | RecordState::Reset) {
                let mut slots = Vec::new();
                let counters = &d.counters;
                self.add_record(
                    TableKind::Domain,
                    counters,
                    &mut slots,
                    &base,
                    ts_ms,
                    |k, _| d.values.get(k).and_then(ValueRef::of),
                );
            } else {
                self.add_counters(TableKind::Domain, &d.counters);
            }
        }
        if s.vcpus.is_empty() {
            self.add_counters(TableKind::Vcpu, &s.vcpu_counters);
        }
    }

    /// Adds every counter of one snapshot of `table`, a table of VM `vm`
    /// (Xen domain `domid`): the records read consistently and in use.
    pub fn add_snapshot(&mut self, vm: &str, domid: Option<u16>, table: &Table, snap: &Snapshot) {
        let kind = table.info().kind();
        let mut base = String::new();
        push_base_labels(&mut base, vm, domid);
        let mut labels = String::new();
        self.add_counters(kind, table.counters());
        let mut slots = Vec::new();
        for r in snap.records() {
            if !r.is_consistent() || r.is_unused() {
                continue;
            }
            labels.clear();
            labels.push_str(&base);
            // The runstate times up to the snapshot's clock reading (R26).
            let up = (kind == TableKind::Vcpu).then(|| r.up_to_date());
            if kind == TableKind::Vcpu {
                let _ = write!(labels, ",vcpu=\"{}\"", r.index());
            }
            self.add_record(kind, table.counters(), &mut slots, &labels, None, |_, c| {
                let state =
                    runstate_of(kind, c).and_then(|n| RUNSTATES.iter().position(|&x| x == n));
                match (state, &up) {
                    (Some(k), Some(up)) if up.extrapolated => {
                        up.times_ns.get(k).copied().flatten().map(ValueRef::Scalar)
                    }
                    _ if c.is_histogram() => r.histogram(c).map(ValueRef::Hist),
                    _ => r.get(c).map(ValueRef::Scalar),
                }
            });
            if let Some(up) = up {
                self.add_runstate(&labels, up.state, None);
            }
        }
    }

    /// Adds a point of a family of its own (`meta`), with `labels`
    /// (name, value) and a value in base units.
    pub fn add_value(&mut self, meta: &Meta<'_>, labels: &[(&str, &str)], value: f64) {
        let fi = self.family_index(
            meta.name,
            0,
            meta.ty,
            meta.unit,
            |f| f.counters.is_empty(),
            || meta.help.to_owned(),
        );
        let start = self.labels.len();
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                self.labels.push(',');
            }
            self.labels.push_str(k);
            self.labels.push_str("=\"");
            push_escaped_label(&mut self.labels, v);
            self.labels.push('"');
        }
        let labels = start..self.labels.len();
        if let Some(f) = self.families.get_mut(fi) {
            f.points.push(Point {
                labels,
                ts_ms: None,
                value: PointValue::Float(value),
            });
        }
    }

    /// Adds a VM of the host: `vstats_vm_info{vm,backend,source[,domid]} 1`
    /// and its producer's liveness as `vstats_vm_producer{vm,state}`, 1
    /// for the state it is in and 0 for the others (no point when it
    /// cannot be told).
    pub fn add_vm_info(
        &mut self,
        vm: &str,
        backend: &str,
        source: &str,
        domid: Option<u16>,
        producer: Option<Liveness>,
    ) {
        let d = domid.map(|d| d.to_string());
        let mut labels = vec![("vm", vm), ("backend", backend), ("source", source)];
        if let Some(d) = &d {
            labels.push(("domid", d));
        }
        self.add_value(
            &Meta {
                name: "vstats_vm_info",
                ty: MetricType::Gauge,
                unit: None,
                help: "A VM of this host (always 1): where its tables come from",
            },
            &labels,
            1.0,
        );
        if let Some(p) = producer {
            for s in [Liveness::Live, Liveness::Stopped, Liveness::Dead] {
                self.add_value(
                    &Meta {
                        name: "vstats_vm_producer",
                        ty: MetricType::Gauge,
                        unit: None,
                        help: "The producer's liveness: 1 for the state it is in (live, stopped, dead), 0 for the others",
                            },
                    &[("vm", vm), ("state", s.as_str())],
                    if s == p { 1.0 } else { 0.0 },
                );
            }
        }
    }

    /// Appends the exposition in `syntax` to `out` (OpenMetrics ends with
    /// `# EOF`). Families with no points are written too (their metadata).
    pub fn encode(&mut self, syntax: Syntax, out: &mut String) {
        if self.timestamped {
            let labels = &self.labels;
            for f in &mut self.families {
                // Stable: the points of a series stay in the order added
                // (oldest first). A stateset's point is all its states
                // (the last label), kept together per timestamp.
                let key = |p: &Point| {
                    let l = labels.get(p.labels.clone()).unwrap_or("");
                    match f.ty {
                        MetricType::StateSet => l.rfind(RUNSTATE_FAMILY).map_or(l, |i| &l[..i]),
                        _ => l,
                    }
                };
                f.points.sort_by(|a, b| key(a).cmp(key(b)));
            }
        }
        for f in &self.families {
            self.write_family(f, syntax, out);
        }
        if syntax == Syntax::OpenMetrics {
            out.push_str("# EOF\n");
        }
    }

    /// The exposition in OpenMetrics, ending in `# EOF`.
    pub fn finish(&mut self) -> String {
        let mut out = String::new();
        self.encode(Syntax::OpenMetrics, &mut out);
        out
    }

    fn write_family(&self, f: &Family, syntax: Syntax, out: &mut String) {
        let text_counter = syntax == Syntax::Text && f.ty == MetricType::Counter;
        let meta_name = if text_counter {
            format!("{}_total", f.name)
        } else {
            f.name.clone()
        };
        let _ = writeln!(out, "# TYPE {meta_name} {}", f.ty.name(syntax));
        if let (Some(u), Syntax::OpenMetrics) = (f.unit, syntax) {
            let _ = writeln!(out, "# UNIT {meta_name} {u}");
        }
        let _ = writeln!(out, "# HELP {meta_name} {}", escape_help(&f.help, syntax));
        // The `le` texts of the last histogram counter written.
        let mut bounds: Option<(usize, Vec<String>)> = None;
        for (pi, p) in f.points.iter().enumerate() {
            let labels = self.labels.get(p.labels.clone()).unwrap_or("");
            // A histogram series keeps only its latest point (see the
            // module docs).
            let superseded = || {
                f.points.get(pi + 1).is_some_and(|n| {
                    self.labels
                        .get(n.labels.clone())
                        .is_some_and(|l| l == labels)
                })
            };
            if matches!(p.value, PointValue::Hist(..)) && self.timestamped && superseded() {
                continue;
            }
            let ts = match (p.ts_ms, syntax) {
                (None, _) => String::new(),
                (Some(ms), Syntax::Text) => format!(" {ms}"),
                (Some(ms), Syntax::OpenMetrics) => format!(" {}.{:03}", ms / 1000, ms % 1000),
            };
            let suffix = if f.ty == MetricType::Counter {
                "_total"
            } else {
                ""
            };
            // `name{labels} ` (no braces without labels).
            let head = |out: &mut String| {
                out.push_str(&f.name);
                out.push_str(suffix);
                if !labels.is_empty() {
                    out.push('{');
                    out.push_str(labels);
                    out.push('}');
                }
                out.push(' ');
            };
            match &p.value {
                PointValue::Raw(ci, x) => {
                    head(out);
                    match f.counters.get(*ci) {
                        Some(c) => push_scaled(out, *x, c.base().0, c.exponent()),
                        None => {
                            let _ = write!(out, "{x}");
                        }
                    }
                    out.push_str(&ts);
                    out.push('\n');
                }
                PointValue::Float(x) => {
                    head(out);
                    out.push_str(&fmt_f64(*x));
                    out.push_str(&ts);
                    out.push('\n');
                }
                PointValue::Hist(ci, r) => {
                    let Some(c) = f.counters.get(*ci) else {
                        continue;
                    };
                    if bounds.as_ref().is_none_or(|(i, _)| i != ci) {
                        let le = bucket_bounds(c).into_iter().map(|b| scaled(b, c)).collect();
                        bounds = Some((*ci, le));
                    }
                    let b = bounds.as_ref().map_or(&[][..], |(_, b)| b.as_slice());
                    let h = self.buckets.get(r.clone()).unwrap_or(&[]);
                    let sep = if labels.is_empty() { "" } else { "," };
                    let mut acc: u64 = 0;
                    let bucket = |out: &mut String, le: &str, acc: u64| {
                        out.push_str(&f.name);
                        out.push_str("_bucket{");
                        out.push_str(labels);
                        out.push_str(sep);
                        out.push_str("le=\"");
                        out.push_str(le);
                        let _ = write!(out, "\"}} {acc}");
                        out.push_str(&ts);
                        out.push('\n');
                    };
                    for (i, n) in h.iter().enumerate() {
                        acc = acc.saturating_add(*n);
                        if let Some(le) = b.get(i).filter(|_| i + 1 < h.len()) {
                            bucket(out, le, acc);
                        }
                    }
                    bucket(out, "+Inf", acc);
                }
            }
        }
    }
}

/// Where a counter's points go: its family, its index in the family's
/// counters, its runstate (the `state` label).
#[derive(Clone, Copy, Debug)]
struct Slot {
    family: usize,
    counter: usize,
    state: Option<&'static str>,
}

/// A borrowed value of a record.
#[derive(Clone, Copy, Debug)]
enum ValueRef<'a> {
    Scalar(u64),
    Hist(&'a [u64]),
}

impl<'a> ValueRef<'a> {
    fn of(v: &'a Value) -> Option<ValueRef<'a>> {
        match v {
            Value::Absent => None,
            Value::Scalar(x) => Some(ValueRef::Scalar(*x)),
            Value::Histogram(h) => Some(ValueRef::Hist(h)),
        }
    }
}

/// The sample as one OpenMetrics exposition, ending in `# EOF`.
pub fn to_text(s: &Sample) -> String {
    let mut e = Exposition::new();
    e.add_sample(s);
    e.finish()
}

/// The metadata (`# TYPE`, `# UNIT`, `# HELP`) of every counter, then
/// `# EOF`: the `schema` command's OpenMetrics form.
pub fn schema_text(vcpu: &[Counter], domain: &[Counter]) -> String {
    let mut e = Exposition::new();
    e.add_counters(TableKind::Vcpu, vcpu);
    e.add_counters(TableKind::Domain, domain);
    e.finish()
}

/// Writes the sample as an OpenMetrics exposition.
///
/// # Errors
///
/// I/O errors of `out`.
pub fn write_sample(s: &Sample, out: &mut dyn Write) -> io::Result<()> {
    out.write_all(to_text(s).as_bytes())
}

/// Milliseconds since the epoch of `t` (0 before it).
pub fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(
        miri,
        ignore = "Miri computes powi/log2 imprecisely on purpose, and these compare exact floats"
    )]
    fn push_scaled_writes_what_scale_text_returns() {
        let raws = [
            0u64,
            1,
            5,
            9,
            10,
            100,
            1_000_000_000,
            1_234_567_891,
            999_999_999,
            1_000_000_001,
            u64::MAX,
            (1 << 63) - 1,
        ];
        let mut out = String::new();
        for raw in raws {
            for base in [10u8, 2, 3] {
                for e in [
                    -128i8, -30, -20, -19, -10, -9, -6, -3, -1, 0, 1, 3, 9, 30, 127,
                ] {
                    out.clear();
                    out.push_str("x ");
                    push_scaled(&mut out, raw, base, e);
                    assert_eq!(
                        out,
                        format!("x {}", scale_text(raw, base, e)),
                        "{raw} {base}^{e}"
                    );
                }
            }
        }
        assert_eq!(scale_text(1_500_000_000, 10, -9), "1.5");
        assert_eq!(scale_text(5, 10, -3), "0.005");
    }

    #[test]
    fn exact_decimal_scaling() {
        assert_eq!(scale_text(3, 10, -9), "0.000000003");
        assert_eq!(scale_text(1_500_000_000, 10, -9), "1.5");
        assert_eq!(scale_text(2_000_000_000, 10, -9), "2");
        assert_eq!(scale_text(0, 10, -9), "0");
        assert_eq!(scale_text(7, 10, 3), "7000");
        assert_eq!(scale_text(7, 2, 10), "7168");
        assert_eq!(scale_text(3, 2, -1), "1.5");
        assert_eq!(scale_text(42, 10, 0), "42");
    }

    fn two_vcpu_table() -> Table {
        use vstats_abi::{
            layout::{Layout, LayoutParams},
            record::VCPU_STD_DESCRIPTORS,
            VCPU_STATS_MAGIC,
        };
        let layout = Layout::compute(&LayoutParams::vcpu_r2(2)).unwrap();
        let mut bytes = vec![0u8; layout.mapping_len() as usize];
        layout
            .write_headers(&mut bytes, VCPU_STATS_MAGIC, 1, VCPU_STD_DESCRIPTORS)
            .unwrap();
        // vCPU 1 ran for 5000 ns.
        let rec1 = layout.record_offset(1).unwrap() as usize;
        bytes[rec1 + 8..rec1 + 16].copy_from_slice(&5000u64.to_ne_bytes());
        let path = std::env::temp_dir().join(format!("vstats-om-{}", std::process::id()));
        std::fs::write(&path, &bytes).unwrap();
        let table = Table::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        table
    }

    #[test]
    #[cfg_attr(miri, ignore = "files are beyond Miri's isolation")]
    fn one_snapshot_of_two_vms_is_one_exposition() {
        let table = two_vcpu_table();
        let mut snap = Snapshot::new(&table);
        table.snapshot(&mut snap);
        let mut e = Exposition::new();
        e.add_snapshot("a", None, &table, &snap);
        e.add_snapshot("b", Some(7), &table, &snap);
        let text = e.finish();
        let family = "vstats_vcpu_runstate_seconds";
        assert_eq!(text.matches(&format!("# TYPE {family} counter")).count(), 1);
        for line in [
            format!("{family}_total{{vm=\"a\",vcpu=\"1\",state=\"running\"}} 0.000005"),
            format!("{family}_total{{vm=\"b\",domid=\"7\",vcpu=\"1\",state=\"running\"}} 0.000005"),
            format!("{family}_total{{vm=\"b\",domid=\"7\",vcpu=\"0\",state=\"running\"}} 0"),
            format!("{family}_total{{vm=\"a\",vcpu=\"0\",state=\"offline\"}} 0"),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        assert!(text.ends_with("# EOF\n") && text.matches("# EOF").count() == 1);
        assert_eq!(text.matches("# TYPE ").count(), 1, "one family: {text}");
        assert!(text.contains(&format!("# UNIT {family} seconds\n")));
        assert!(text.contains(&format!("# HELP {family} ")));

        // The text format: no UNIT, no EOF, the counter's TYPE names the
        // _total series; a cleared exposition holds no points.
        let mut t = String::new();
        e.encode(Syntax::Text, &mut t);
        assert!(
            t.contains(&format!("# TYPE {family}_total counter\n")),
            "{t}"
        );
        assert!(t.contains(&format!("# HELP {family}_total ")), "{t}");
        assert!(!t.contains("# UNIT") && !t.contains("# EOF"), "{t}");
        e.clear();
        let empty = e.finish();
        assert!(!empty.contains("vm=\""), "{empty}");
        e.add_snapshot("a", None, &table, &snap);
        assert_eq!(e.finish(), {
            let mut f = Exposition::new();
            f.add_snapshot("a", None, &table, &snap);
            f.finish()
        });
    }

    /// An r3 vCPU table of 3 records, clock 1: vCPU 0 running and vCPU 1
    /// blocked since `entry` with 1000 ns accrued in each state, vCPU 2
    /// unused.
    fn r3_table(entry: u64) -> Table {
        use vstats_abi::{
            header::CLOCK_HOST_MONOTONIC,
            layout::{Layout, LayoutParams},
            record::{INACTIVE, PAD_INACTIVE},
            VCPU_STATS_MAGIC,
        };
        let p = LayoutParams {
            clock: CLOCK_HOST_MONOTONIC,
            ..LayoutParams::vcpu_r3(3)
        };
        let layout = Layout::compute(&p).unwrap();
        let mut bytes = vec![0u8; layout.mapping_len() as usize];
        layout
            .write_headers(&mut bytes, VCPU_STATS_MAGIC, 1, &[])
            .unwrap();
        layout.fill_records(&mut bytes).unwrap();
        let recs = [
            [1000, 1000, 1000, 0, 0, entry],
            [1000, 1000, 1000, 0, 2, entry],
        ];
        for (i, words) in (0u32..).zip(recs) {
            let r = layout.record_offset(i).unwrap() as usize;
            bytes[r + 4..r + 8].copy_from_slice(&PAD_INACTIVE.to_ne_bytes());
            for (k, w) in words.into_iter().enumerate() {
                bytes[r + 8 + 8 * k..r + 16 + 8 * k].copy_from_slice(&w.to_ne_bytes());
            }
        }
        assert_eq!(
            u64::from_ne_bytes(
                bytes[layout.record_offset(2).unwrap() as usize + 8..][..8]
                    .try_into()
                    .unwrap()
            ),
            INACTIVE
        );
        Table::from_view(vstats_consumer::mem::MemView::from_bytes(&bytes)).unwrap()
    }

    /// The value of the sample whose line starts with `head`.
    fn value_of(text: &str, head: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(head)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn r3_snapshots_export_up_to_date_times_and_the_current_state() {
        let entry = vstats_abi::clock::monotonic_ns();
        let table = r3_table(entry);
        let mut snap = Snapshot::new(&table);
        table.snapshot(&mut snap);
        let at = snap.taken_at_ns().unwrap();
        let mut e = Exposition::new();
        e.add_snapshot("a", None, &table, &snap);
        let text = e.finish();
        let family = "vstats_vcpu_runstate_seconds";
        // vCPU 0's running time and vCPU 1's blocked time grow from the
        // entry time to the snapshot's clock reading; the others stay.
        let up = (1000 + (at - entry)) as f64 * 1e-9;
        let run0 = value_of(
            &text,
            &format!("{family}_total{{vm=\"a\",vcpu=\"0\",state=\"running\"}}"),
        );
        assert!((run0.unwrap() - up).abs() < 1e-12, "{run0:?} {up} {text}");
        let blk1 = value_of(
            &text,
            &format!("{family}_total{{vm=\"a\",vcpu=\"1\",state=\"blocked\"}}"),
        );
        assert!((blk1.unwrap() - up).abs() < 1e-12, "{blk1:?} {up}");
        for (v, s) in [("0", "blocked"), ("1", "running"), ("0", "runnable")] {
            let line = format!("{family}_total{{vm=\"a\",vcpu=\"{v}\",state=\"{s}\"}} 0.000001");
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        // The current state as a stateset, labelled by the family's name;
        // no entry time; nothing for the unused vCPU 2.
        assert!(
            text.contains("# TYPE vstats_vcpu_runstate stateset\n"),
            "{text}"
        );
        for (v, s, x) in [
            ("0", "running", 1),
            ("0", "blocked", 0),
            ("1", "blocked", 1),
            ("1", "offline", 0),
        ] {
            let line = format!(
                "vstats_vcpu_runstate{{vm=\"a\",vcpu=\"{v}\",vstats_vcpu_runstate=\"{s}\"}} {x}"
            );
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        assert_eq!(text.matches("vstats_vcpu_runstate{").count(), 8, "{text}");
        assert!(!text.contains("entry"), "{text}");
        // The text format calls it a gauge.
        let mut t = String::new();
        e.encode(Syntax::Text, &mut t);
        assert!(t.contains("# TYPE vstats_vcpu_runstate gauge\n"), "{t}");
    }

    #[test]
    #[cfg_attr(miri, ignore = "files are beyond Miri's isolation")]
    fn r2_snapshots_have_no_runstate_stateset() {
        let table = two_vcpu_table();
        let mut snap = Snapshot::new(&table);
        table.snapshot(&mut snap);
        let mut e = Exposition::new();
        e.add_snapshot("a", None, &table, &snap);
        let text = e.finish();
        assert!(!text.contains("vstats_vcpu_runstate{"), "{text}");
        assert!(!text.contains("stateset"), "{text}");
    }

    /// R27: a histogram with any inactive bucket is absent as a whole; R28:
    /// bucket `le` bounds, the last bucket open-ended (`+Inf`).
    #[test]
    fn histograms_follow_r27_and_r28() {
        use vstats_abi::{
            desc::Descriptor,
            layout::{Layout, LayoutParams},
            record::{INACTIVE, VCPU_STATS_SIZE_R2, VCPU_STD_DESCRIPTORS},
            VCPU_STATS_MAGIC,
        };
        let mut descs = VCPU_STD_DESCRIPTORS.to_vec();
        let lin = Descriptor::builder("lin")
            .histogram(Kind::LINEAR_HIST, 3, 10)
            .at(40)
            .unwrap();
        let log = Descriptor::builder("log")
            .histogram(Kind::LOG2_HIST, 4, 0)
            .at(64)
            .unwrap();
        descs.extend([lin, log]);
        let p = LayoutParams {
            record_size: VCPU_STATS_SIZE_R2 + 56,
            abi_size: VCPU_STATS_SIZE_R2,
            desc_count: descs.len() as u32,
            ..LayoutParams::vcpu_r2(2)
        };
        let l = Layout::compute(&p).unwrap();
        let mut b = vec![0u8; l.mapping_len() as usize];
        l.write_headers(&mut b, VCPU_STATS_MAGIC, 1, &descs)
            .unwrap();
        // Record 0: lin = [1, 2, 3], log = [4, 5, 6, 7]; record 1 the same
        // but one inactive bucket in each histogram.
        for i in 0..2 {
            let r = l.record_offset(i).unwrap() as usize;
            let mut words = vec![0u64, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7];
            if i == 1 {
                words[5] = INACTIVE;
                words[10] = INACTIVE;
            }
            for (k, w) in words.into_iter().enumerate() {
                b[r + 8 + 8 * k..r + 16 + 8 * k].copy_from_slice(&w.to_ne_bytes());
            }
        }
        let table = Table::from_view(vstats_consumer::mem::MemView::from_bytes(&b)).unwrap();
        let mut snap = Snapshot::new(&table);
        table.snapshot(&mut snap);
        let mut e = Exposition::new();
        e.add_snapshot("a", None, &table, &snap);
        let text = e.finish();
        let want = [
            // Linear, width 10: [0, 10) has le 9, [10, 20) le 19, the last
            // counts everything from 20 up.
            "vstats_vcpu_lin_bucket{vm=\"a\",vcpu=\"0\",le=\"9\"} 1",
            "vstats_vcpu_lin_bucket{vm=\"a\",vcpu=\"0\",le=\"19\"} 3",
            "vstats_vcpu_lin_bucket{vm=\"a\",vcpu=\"0\",le=\"+Inf\"} 6",
            // Log2: 0, [1, 2), [2, 4), then everything from 4 up.
            "vstats_vcpu_log_bucket{vm=\"a\",vcpu=\"0\",le=\"0\"} 4",
            "vstats_vcpu_log_bucket{vm=\"a\",vcpu=\"0\",le=\"1\"} 9",
            "vstats_vcpu_log_bucket{vm=\"a\",vcpu=\"0\",le=\"3\"} 15",
            "vstats_vcpu_log_bucket{vm=\"a\",vcpu=\"0\",le=\"+Inf\"} 22",
        ];
        for line in want {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        assert_eq!(text.matches("vstats_vcpu_lin_bucket{").count(), 3, "{text}");
        assert_eq!(text.matches("vstats_vcpu_log_bucket{").count(), 4, "{text}");
        // Record 1: each histogram has an inactive bucket: no bucket of
        // it at all, not the active ones.
        assert!(!text.contains("vcpu=\"1\",le="), "{text}");
        assert!(text.contains("vcpu=\"1\",state=\"running\"} 0"), "{text}");
    }

    /// Counters whose names map to one family name (and a counter named
    /// like the runstate family) get families of their own: no series is
    /// written twice.
    #[test]
    #[cfg_attr(miri, ignore = "files are beyond Miri's isolation")]
    fn colliding_names_get_their_own_families() {
        use vstats_abi::{
            desc::Descriptor,
            layout::{Layout, LayoutParams},
            record::VCPU_STD_DESCRIPTORS,
            Base, VCPU_STATS_MAGIC,
        };
        let mut descs = VCPU_STD_DESCRIPTORS.to_vec();
        let extra = [
            ("halt_wait_ns", 40),
            ("halt_wait", 48),
            ("runstate_seconds", 56),
        ];
        for (name, off) in extra {
            descs.push(Descriptor::scalar(
                name,
                off,
                Kind::CUMULATIVE,
                Unit::SECONDS,
                Base::POW10,
                -9,
            ));
        }
        let params = LayoutParams {
            record_size: 64,
            desc_count: descs.len() as u32,
            ..LayoutParams::vcpu_r2(1)
        };
        let layout = Layout::compute(&params).unwrap();
        let mut bytes = vec![0u8; layout.mapping_len() as usize];
        layout
            .write_headers(&mut bytes, VCPU_STATS_MAGIC, 1, &descs)
            .unwrap();
        let path = std::env::temp_dir().join(format!("vstats-om-col-{}", std::process::id()));
        std::fs::write(&path, &bytes).unwrap();
        let table = Table::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let mut snap = Snapshot::new(&table);
        table.snapshot(&mut snap);
        let mut e = Exposition::new();
        e.add_snapshot("a", None, &table, &snap);
        let text = e.finish();
        let mut series: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.rsplit_once(' ').unwrap().0)
            .collect();
        assert_eq!(series.len(), 7, "{text}");
        series.sort_unstable();
        series.dedup();
        assert_eq!(series.len(), 7, "a series written twice: {text}");
        for family in [
            "vstats_vcpu_halt_wait_seconds",
            "vstats_vcpu_halt_wait_seconds_5",
            "vstats_vcpu_runstate_seconds_6",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} counter\n")),
                "{text}"
            );
        }
    }

    #[test]
    fn label_escaping() {
        let mut s = String::new();
        push_escaped_label(&mut s, "a\"b\\c\nd");
        assert_eq!(s, "a\\\"b\\\\c\\nd");
        assert_eq!(fmt_f64(f64::INFINITY), "+Inf");
        assert_eq!(fmt_f64(0.5), "0.5");
        assert_eq!(escape_help("a\"b", Syntax::Text), "a\"b");
        assert_eq!(escape_help("a\"b", Syntax::OpenMetrics), "a\\\"b");
    }

    #[test]
    fn names_drop_abbreviated_units() {
        let secs = Some("seconds");
        let cases = [
            ("halt_wait_ns", secs, "vstats_vcpu_halt_wait_seconds"),
            (
                "halt_poll_success_hist",
                secs,
                "vstats_vcpu_halt_poll_success_hist_seconds",
            ),
            ("uptime", secs, "vstats_vcpu_uptime_seconds"),
            ("exits_total", None, "vstats_vcpu_exits"),
            ("rx_bytes", Some("bytes"), "vstats_vcpu_rx_bytes"),
            ("a-B", None, "vstats_vcpu_a_b"),
            ("rx_ns", None, "vstats_vcpu_rx_ns"),
        ];
        for (raw, unit, name) in cases {
            assert_eq!(compose_name(TableKind::Vcpu, raw, unit), name);
        }
    }

    #[test]
    fn negotiation() {
        assert_eq!(Syntax::negotiate(None), Syntax::Text);
        assert_eq!(Syntax::negotiate(Some("text/plain")), Syntax::Text);
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                    version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Syntax::negotiate(Some(prom)), Syntax::OpenMetrics);
        assert_eq!(
            Syntax::negotiate(Some("application/openmetrics-text;q=0")),
            Syntax::Text
        );
    }
}
