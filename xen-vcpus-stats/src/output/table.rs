//! The readable table: one block per sample, counters as rows and vCPUs
//! as columns (like `kvm_stat`, which lists counters as rows), then the
//! aggregates across vCPUs, then the domain table.
//!
//! Cumulative counters are shown as rates per second, instant and peak
//! counters as values, both scaled to their unit (`s`, `B`, `cyc`);
//! absent values are `-`, busy records `busy`. Histograms are left to
//! `--format json` and `--format openmetrics`.

use std::io::{self, Write};

use vstats_consumer::Counter;

use super::{rfc3339, shows_rate, unit_symbol};
use crate::sample::{RecordState, Sample, Value, RUNSTATES};

/// A number in at most about 10 characters.
pub fn num(x: f64) -> String {
    let a = x.abs();
    if !x.is_finite() {
        "-".to_owned()
    } else if a == 0.0 {
        "0".to_owned()
    } else if !(1e-3..1e9).contains(&a) {
        format!("{x:.3e}")
    } else if a >= 1000.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

fn unit_label(c: &Counter) -> String {
    let u = unit_symbol(c.unit());
    if shows_rate(c) {
        format!("{u}/s")
    } else {
        u.to_owned()
    }
}

/// What a counter shows in a record: its scaled rate or value.
fn cell(c: &Counter, v: &Value, rate: Option<f64>) -> String {
    if shows_rate(c) {
        rate.map_or_else(|| "-".to_owned(), |x| num(x * c.scale()))
    } else {
        match v.scalar() {
            None => "-".to_owned(),
            Some(x) if c.exponent() == 0 => x.to_string(),
            Some(x) => num(x as f64 * c.scale()),
        }
    }
}

/// Whether a row is worth printing: something other than `0` in it, or
/// `--names` asked for it.
fn interesting(cells: &[String], all: bool) -> bool {
    all || cells.iter().any(|c| c != "0")
}

struct Grid {
    rows: Vec<Vec<String>>,
}

impl Grid {
    fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let width: Vec<usize> = (0..cols)
            .map(|i| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(String::len)
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for r in &self.rows {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                if i == 0 {
                    line.push_str(&format!("{c:<w$}", w = width[0]));
                } else if i == 1 {
                    line.push_str(&format!("  {c:<w$}", w = width[1]));
                } else {
                    line.push_str(&format!("  {c:>w$}", w = width[i]));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// Writes one sample as aligned columns, followed by a blank line.
/// Counters that are 0 on every vCPU (or in the domain) are counted, not
/// listed, unless `all` (`--names` was given).
///
/// # Errors
///
/// I/O errors of `out`.
pub fn write_sample(s: &Sample, all: bool, out: &mut dyn Write) -> io::Result<()> {
    let mut zero_rows = 0;
    let used: Vec<_> = s
        .vcpus
        .iter()
        .filter(|v| v.state != RecordState::Unused)
        .collect();
    write!(
        out,
        "sample {}  {}  vm {}  interval {:.3} s",
        s.number,
        rfc3339(s.wall),
        s.vm,
        s.interval
    )?;
    if s.nr_slots > 0 {
        write!(out, "  vCPUs {} shown of {} slots", used.len(), s.nr_slots)?;
    }
    writeln!(out)?;
    if let Some(d) = &s.domain {
        let get = |n: &str| {
            d.counters
                .iter()
                .position(|c| c.name() == n)
                .and_then(|i| Some((d.values[i].scalar()?, &d.counters[i])))
        };
        let mut line = format!("domain: {}", d.state.name());
        for n in ["vcpus_online", "vcpus_max"] {
            if let Some((v, _)) = get(n) {
                line.push_str(&format!("  {n} {v}"));
            }
        }
        if let Some((v, c)) = get("uptime") {
            line.push_str(&format!("  uptime {} s", num(v as f64 * c.scale())));
        }
        writeln!(out, "{line}")?;
    }
    let head = |first: &str, second: &str| {
        let mut r = vec![first.to_owned(), second.to_owned()];
        r.extend(used.iter().map(|v| format!("vcpu{}", v.vcpu)));
        r
    };
    if !used.is_empty() {
        let mut g = Grid {
            rows: vec![head("RUNSTATE", "")],
        };
        for (i, n) in RUNSTATES.iter().enumerate() {
            let mut r = vec![(*n).to_owned(), "%".to_owned()];
            r.extend(used.iter().map(|v| match (v.state, v.shares) {
                (RecordState::Busy { .. }, _) => "busy".to_owned(),
                (_, Some(sh)) => format!("{:.1}", sh[i] * 100.0),
                (_, None) => "-".to_owned(),
            }));
            g.rows.push(r);
        }
        g.write(out)?;
    }
    let scalars: Vec<usize> = (0..s.vcpu_counters.len())
        .filter(|&k| !s.vcpu_counters[k].is_histogram())
        .collect();
    if !used.is_empty() && !scalars.is_empty() {
        let mut top = head("COUNTER", "UNIT");
        top.extend(["sum", "min", "max", "avg", "zero"].map(str::to_owned));
        let mut g = Grid { rows: vec![top] };
        for &k in &scalars {
            let c = &s.vcpu_counters[k];
            let cells: Vec<String> = used
                .iter()
                .map(|v| match v.state {
                    RecordState::Busy { .. } => "busy".to_owned(),
                    _ => cell(c, &v.values[k], v.rates[k]),
                })
                .collect();
            if !interesting(&cells, all) {
                zero_rows += 1;
                continue;
            }
            let mut r = vec![c.name().to_owned(), unit_label(c)];
            r.extend(cells);
            let scale = c.scale();
            let f = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |x| num(x * scale));
            match &s.aggregates[k] {
                Some(a) => match &a.rates {
                    Some(ra) => r.extend([
                        f(Some(ra.sum)),
                        f(ra.min),
                        f(ra.max),
                        f(ra.average()),
                        ra.zero.to_string(),
                    ]),
                    None => r.extend([
                        f(Some(a.values.sum as f64)),
                        f(a.values.min.map(|x| x as f64)),
                        f(a.values.max.map(|x| x as f64)),
                        f(a.values.average()),
                        a.values.zero.to_string(),
                    ]),
                },
                None => r.extend(std::iter::repeat_n("-".to_owned(), 5)),
            }
            g.rows.push(r);
        }
        g.write(out)?;
    }
    if let Some(d) = &s.domain {
        let rows: Vec<Vec<String>> = d
            .counters
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.is_histogram())
            .map(|(k, c)| {
                let v = match d.state {
                    RecordState::Busy { .. } => "busy".to_owned(),
                    _ => cell(c, &d.values[k], d.rates[k]),
                };
                vec![c.name().to_owned(), unit_label(c), v]
            })
            .filter(|r| {
                let keep = interesting(&r[2..], all);
                zero_rows += usize::from(!keep);
                keep
            })
            .collect();
        if !rows.is_empty() {
            let mut g = Grid {
                rows: vec![vec!["DOMAIN".into(), "UNIT".into(), "value".into()]],
            };
            g.rows.extend(rows);
            g.write(out)?;
        }
    }
    let hists = s.vcpu_counters.iter().filter(|c| c.is_histogram()).count()
        + s.domain.as_ref().map_or(0, |d| {
            d.counters.iter().filter(|c| c.is_histogram()).count()
        });
    if hists > 0 {
        writeln!(
            out,
            "({hists} histograms not shown: see --format json or openmetrics)"
        )?;
    }
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::num;

    #[test]
    fn numbers() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(0.372), "0.372");
        assert_eq!(num(12.345), "12.3");
        assert_eq!(num(123_456.7), "123457");
        assert_eq!(num(2.5e9), "2.500e9");
        assert_eq!(num(1e-5), "1.000e-5");
        assert_eq!(num(f64::NAN), "-");
    }
}
