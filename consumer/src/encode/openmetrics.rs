//! OpenMetrics text: every counter of every vCPU and of the domain, raw
//! (rates are the scraper's job: `rate()` in PromQL), scaled to base units
//! (seconds, bytes) with the descriptor's base and exponent.
//!
//! * families are named `vstats_vcpu_<counter>` and
//!   `vstats_domain_<counter>`, with the unit appended as OpenMetrics asks
//!   (`vstats_vcpu_runstate_running_time_seconds`);
//! * cumulative counters are `counter`s (samples end in `_total`), instant
//!   and peak ones `gauge`s, histograms `histogram`s (cumulative `_bucket`
//!   samples with `le` bounds in the unit, then `_count`);
//! * labels: `vm`, `vcpu` (vCPU families), `domid` (Xen targets);
//! * absent values (busy or unused records, inactive counters) have no
//!   sample; each exposition ends with `# EOF`.

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    io::{self, Write},
};

use vstats_consumer::{Counter, Kind, Snapshot, Table, TableKind, Unit};

use super::{kind_name, unit_name};
use crate::sample::{RecordState, Sample, Value};

/// The OpenMetrics type of a counter.
pub fn metric_type(c: &Counter) -> &'static str {
    match c.kind() {
        Kind::CUMULATIVE => "counter",
        Kind::INSTANT | Kind::PEAK => "gauge",
        Kind::LINEAR_HIST | Kind::LOG2_HIST => "histogram",
        _ => "unknown",
    }
}

/// The OpenMetrics unit of a counter (`None`: no unit line).
pub fn metric_unit(c: &Counter) -> Option<&'static str> {
    match c.unit() {
        Unit::SECONDS => Some("seconds"),
        Unit::BYTES => Some("bytes"),
        Unit::CYCLES => Some("cycles"),
        _ => None,
    }
}

/// `vstats_<table>_<name>[_<unit>]`, `<table>` being the kind's file name
/// (`vcpu`, `domain`), with characters outside `[A-Za-z0-9_]` replaced by
/// `_`.
pub fn family_name(table: TableKind, c: &Counter) -> String {
    let mut s = format!("vstats_{}_", table.file_name());
    s.extend(c.name().chars().map(|ch| {
        if ch.is_ascii_alphanumeric() || ch == '_' {
            ch
        } else {
            '_'
        }
    }));
    if let Some(u) = metric_unit(c) {
        s.push('_');
        s.push_str(u);
    }
    s
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
/// (which is `+Inf`): log2 bucket i >= 1 counts `[2^(i-1), 2^i)`, so
/// integers up to `2^i - 1`; linear bucket i counts `[i*w, (i+1)*w)`.
/// Bounds that do not fit 63 bits end the list (their buckets fold into
/// `+Inf`).
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

/// One metric family: a counter of one table, and its points.
#[derive(Debug)]
struct Family {
    name: String,
    /// The table the counter belongs to.
    table: TableKind,
    counter: Counter,
    /// (labels, value) per record.
    points: Vec<(String, Value)>,
}

fn write_family(f: &Family, out: &mut String) {
    let c = &f.counter;
    let t = metric_type(c);
    let _ = writeln!(out, "# TYPE {} {t}", f.name);
    if let Some(u) = metric_unit(c) {
        let _ = writeln!(out, "# UNIT {} {u}", f.name);
    }
    let _ = writeln!(
        out,
        "# HELP {} {}: {} {} per {}",
        f.name,
        c.name(),
        kind_name(c.kind()),
        help_unit(c),
        f.table,
    );
    for (labels, v) in &f.points {
        match (t, v) {
            ("counter", Value::Scalar(x)) => {
                let _ = writeln!(out, "{}_total{{{labels}}} {}", f.name, scaled(*x, c));
            }
            ("histogram", Value::Histogram(h)) => {
                let bounds = bucket_bounds(c);
                let mut acc: u64 = 0;
                for (i, n) in h.iter().enumerate() {
                    acc = acc.saturating_add(*n);
                    let le = bounds
                        .get(i)
                        .map_or_else(|| "+Inf".to_owned(), |&b| scaled(b, c));
                    let _ = writeln!(out, "{}_bucket{{{labels},le=\"{le}\"}} {acc}", f.name);
                }
                let _ = writeln!(out, "{}_count{{{labels}}} {acc}", f.name);
            }
            (_, Value::Scalar(x)) => {
                let _ = writeln!(out, "{}{{{labels}}} {}", f.name, scaled(*x, c));
            }
            _ => {}
        }
    }
}

/// An OpenMetrics exposition being built from any number of VMs: add
/// snapshots ([`Exposition::add_snapshot`], what a scrape needs: one
/// snapshot, cumulative values) or samples ([`Exposition::add_sample`]),
/// then [`Exposition::finish`]. A counter of the same table and name in
/// several VMs is one family with a point per VM (and vCPU).
#[derive(Debug, Default)]
pub struct Exposition {
    families: Vec<Family>,
    /// (table, counter name) -> index in `families`.
    by_counter: HashMap<(TableKind, String), usize>,
    /// Family names in use.
    names: HashSet<String>,
}

/// `vm="..."[,domid="..."]`.
fn base_labels(vm: &str, domid: Option<u16>) -> String {
    let mut base = format!("vm=\"{}\"", escape_label(vm));
    if let Some(d) = domid {
        base.push_str(&format!(",domid=\"{d}\""));
    }
    base
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// The family of counter `c` (number `k` of its table's list), made
    /// on first use; a name already taken by another counter gets `_k`.
    fn family(&mut self, table: TableKind, k: usize, c: &Counter) -> &mut Family {
        let key = (table, c.name().to_owned());
        let i = match self.by_counter.get(&key) {
            Some(&i) => i,
            None => {
                let mut name = family_name(table, c);
                if !self.names.insert(name.clone()) {
                    name = format!("{name}_{k}");
                    self.names.insert(name.clone());
                }
                self.families.push(Family {
                    name,
                    table,
                    counter: c.clone(),
                    points: Vec::new(),
                });
                self.by_counter.insert(key, self.families.len() - 1);
                self.families.len() - 1
            }
        };
        &mut self.families[i]
    }

    /// Adds the counters of a table with the records' values: `records`
    /// holds, per record, its labels and one value per counter.
    fn add(&mut self, table: TableKind, counters: &[Counter], records: &[(String, Vec<Value>)]) {
        for (k, c) in counters.iter().enumerate() {
            let f = self.family(table, k, c);
            f.points.extend(
                records
                    .iter()
                    .filter_map(|(labels, vals)| Some((labels.clone(), vals.get(k)?.clone()))),
            );
        }
    }

    /// Adds the metadata (`# TYPE`, `# UNIT`, `# HELP`) of counters of a
    /// table of kind `table`, with no points.
    pub fn add_counters(&mut self, table: TableKind, counters: &[Counter]) {
        self.add(table, counters, &[]);
    }

    /// Adds a sample's values (its second snapshot; rates are the
    /// scraper's job).
    pub fn add_sample(&mut self, s: &Sample) {
        let base = base_labels(&s.vm, s.domid);
        let vrecords: Vec<(String, Vec<Value>)> = s
            .vcpus
            .iter()
            .filter(|v| matches!(v.state, RecordState::Ok | RecordState::Reset))
            .map(|v| (format!("{base},vcpu=\"{}\"", v.vcpu), v.values.clone()))
            .collect();
        self.add(TableKind::Vcpu, &s.vcpu_counters, &vrecords);
        if let Some(d) = &s.domain {
            let records = match d.state {
                RecordState::Ok | RecordState::Reset => vec![(base, d.values.clone())],
                _ => Vec::new(),
            };
            self.add(TableKind::Domain, &d.counters, &records);
        }
    }

    /// Adds every counter of one snapshot of `table`, a table of VM `vm`
    /// (Xen domain `domid`): the records read consistently and in use.
    pub fn add_snapshot(&mut self, vm: &str, domid: Option<u16>, table: &Table, snap: &Snapshot) {
        let base = base_labels(vm, domid);
        let kind = table.info().kind();
        let records: Vec<(String, Vec<Value>)> = snap
            .records()
            .iter()
            .filter(|r| r.is_consistent() && !r.is_unused())
            .map(|r| {
                let labels = if kind == TableKind::Vcpu {
                    format!("{base},vcpu=\"{}\"", r.index())
                } else {
                    base.clone()
                };
                let vals = table.counters().iter().map(|c| Value::of(r, c)).collect();
                (labels, vals)
            })
            .collect();
        self.add(kind, table.counters(), &records);
    }

    /// The exposition text, ending in `# EOF`.
    pub fn finish(&self) -> String {
        let mut out = String::new();
        for f in &self.families {
            write_family(f, &mut out);
        }
        out.push_str("# EOF\n");
        out
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    #[cfg_attr(miri, ignore = "files are beyond Miri's isolation")]
    fn one_snapshot_of_two_vms_is_one_exposition() {
        use vstats_abi::{
            layout::{Layout, LayoutParams},
            record::VCPU_STD_DESCRIPTORS,
            VCPU_STATS_MAGIC,
        };
        let layout = Layout::compute(&LayoutParams::vcpu(2)).unwrap();
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
        let mut snap = Snapshot::new(&table);
        table.snapshot(&mut snap);
        let mut e = Exposition::new();
        e.add_snapshot("a", None, &table, &snap);
        e.add_snapshot("b", Some(7), &table, &snap);
        let text = e.finish();
        let family = "vstats_vcpu_runstate_running_time_seconds";
        assert_eq!(text.matches(&format!("# TYPE {family} counter")).count(), 1);
        for line in [
            format!("{family}_total{{vm=\"a\",vcpu=\"1\"}} 0.000005"),
            format!("{family}_total{{vm=\"b\",domid=\"7\",vcpu=\"1\"}} 0.000005"),
            format!("{family}_total{{vm=\"b\",domid=\"7\",vcpu=\"0\"}} 0"),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        assert!(text.ends_with("# EOF\n") && text.matches("# EOF").count() == 1);
    }

    #[test]
    fn label_escaping() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(fmt_f64(f64::INFINITY), "+Inf");
        assert_eq!(fmt_f64(0.5), "0.5");
    }
}
