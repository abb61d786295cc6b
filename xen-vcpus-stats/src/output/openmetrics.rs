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
    collections::HashSet,
    fmt::Write as _,
    io::{self, Write},
};

use vstats_consumer::{Counter, Kind, Unit};

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

/// `vstats_<table>_<name>[_<unit>]`, with characters outside
/// `[A-Za-z0-9_]` replaced by `_`.
pub fn family_name(table: &str, c: &Counter) -> String {
    let mut s = format!("vstats_{table}_");
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

struct Family<'a> {
    name: String,
    counter: &'a Counter,
    /// (labels, value) per record.
    points: Vec<(String, &'a Value)>,
}

fn write_family(f: &Family<'_>, table: &str, out: &mut String) {
    let c = f.counter;
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
        if table == "vcpu" { "vCPU" } else { "domain" },
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

/// Writes the families of one table; `names` de-duplicates family names.
fn families<'a>(
    table: &str,
    counters: &'a [Counter],
    records: &[(String, &'a [Value])],
    names: &mut HashSet<String>,
    out: &mut String,
) {
    for (k, c) in counters.iter().enumerate() {
        let mut name = family_name(table, c);
        if !names.insert(name.clone()) {
            name = format!("{name}_{k}");
            names.insert(name.clone());
        }
        let points = records
            .iter()
            .filter_map(|(labels, vals)| Some((labels.clone(), vals.get(k)?)))
            .collect();
        write_family(
            &Family {
                name,
                counter: c,
                points,
            },
            table,
            out,
        );
    }
}

/// The sample as one OpenMetrics exposition, ending in `# EOF`.
pub fn to_text(s: &Sample) -> String {
    let mut base = format!("vm=\"{}\"", escape_label(&s.vm));
    if let Some(d) = s.domid {
        base.push_str(&format!(",domid=\"{d}\""));
    }
    let mut out = String::new();
    let mut names = HashSet::new();
    let vrecords: Vec<(String, &[Value])> = s
        .vcpus
        .iter()
        .filter(|v| matches!(v.state, RecordState::Ok | RecordState::Reset))
        .map(|v| (format!("{base},vcpu=\"{}\"", v.vcpu), v.values.as_slice()))
        .collect();
    families("vcpu", &s.vcpu_counters, &vrecords, &mut names, &mut out);
    if let Some(d) = &s.domain {
        let records: Vec<(String, &[Value])> = match d.state {
            RecordState::Ok | RecordState::Reset => vec![(base.clone(), d.values.as_slice())],
            _ => Vec::new(),
        };
        families("domain", &d.counters, &records, &mut names, &mut out);
    }
    out.push_str("# EOF\n");
    out
}

/// The metadata (`# TYPE`, `# UNIT`, `# HELP`) of every counter, then
/// `# EOF`: the `schema` command's OpenMetrics form.
pub fn schema_text(vcpu: &[Counter], domain: &[Counter]) -> String {
    let mut out = String::new();
    let mut names = HashSet::new();
    families("vcpu", vcpu, &[], &mut names, &mut out);
    families("domain", domain, &[], &mut names, &mut out);
    out.push_str("# EOF\n");
    out
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
        assert_eq!(scale_text(42, 10, 0), "42");
    }

    #[test]
    fn label_escaping() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(fmt_f64(f64::INFINITY), "+Inf");
        assert_eq!(fmt_f64(0.5), "0.5");
    }
}
