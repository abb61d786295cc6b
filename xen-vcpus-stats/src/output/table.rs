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

use super::{grid::Grid, rfc3339, shows_rate, unit_symbol};
use crate::sample::{DomainSample, RecordState, Sample, Value, VcpuSample, RUNSTATES};

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

/// Writes one sample as aligned columns, followed by a blank line.
/// Counters that are 0 on every vCPU (or in the domain) are left out
/// unless `all` (`--names` was given).
///
/// # Errors
///
/// I/O errors of `out`.
pub fn write_sample(s: &Sample, all: bool, out: &mut dyn Write) -> io::Result<()> {
    let used: Vec<&VcpuSample> = s
        .vcpus
        .iter()
        .filter(|v| v.state != RecordState::Unused)
        .collect();
    write_heading(s, used.len(), out)?;
    if !used.is_empty() {
        write_runstates(&used, out)?;
        write_vcpu_counters(s, &used, all, out)?;
    }
    if let Some(d) = &s.domain {
        write_domain_counters(d, all, out)?;
    }
    write_histogram_note(s, out)?;
    writeln!(out)
}

/// The sample line, and the domain line with its standard counters.
fn write_heading(s: &Sample, shown: usize, out: &mut dyn Write) -> io::Result<()> {
    write!(
        out,
        "sample {}  {}  vm {}  interval {:.3} s",
        s.number,
        rfc3339(s.wall),
        s.vm,
        s.interval
    )?;
    if s.nr_slots > 0 {
        write!(out, "  vCPUs {shown} shown of {} slots", s.nr_slots)?;
    }
    writeln!(out)?;
    let Some(d) = &s.domain else {
        return Ok(());
    };
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
    writeln!(out, "{line}")
}

/// A header row: two label columns, then one per shown vCPU.
fn header(first: &str, second: &str, used: &[&VcpuSample]) -> Vec<String> {
    let mut r = vec![first.to_owned(), second.to_owned()];
    r.extend(used.iter().map(|v| format!("vcpu{}", v.vcpu)));
    r
}

/// Each runstate's share of the interval, in percent, per vCPU.
fn write_runstates(used: &[&VcpuSample], out: &mut dyn Write) -> io::Result<()> {
    let mut g = Grid::new("<<>", header("RUNSTATE", "", used));
    for (i, n) in RUNSTATES.iter().enumerate() {
        let mut r = vec![(*n).to_owned(), "%".to_owned()];
        r.extend(used.iter().map(|v| match (v.state, v.shares) {
            (RecordState::Busy { .. }, _) => "busy".to_owned(),
            (_, Some(sh)) => format!("{:.1}", sh[i] * 100.0),
            (_, None) => "-".to_owned(),
        }));
        g.row(r);
    }
    g.write(out)
}

/// The aggregate columns of counter `k`: sum, min, max, avg, zero.
fn aggregate_cells(s: &Sample, k: usize, scale: f64) -> Vec<String> {
    let Some(a) = &s.aggregates[k] else {
        return vec!["-".to_owned(); 5];
    };
    let (stats, zero) = match &a.rates {
        Some(r) => ([Some(r.sum), r.min, r.max, r.average()], r.zero),
        None => {
            let v = &a.values;
            let f = |x: Option<u64>| x.map(|x| x as f64);
            (
                [Some(v.sum as f64), f(v.min), f(v.max), v.average()],
                v.zero,
            )
        }
    };
    let mut cells: Vec<String> = stats
        .iter()
        .map(|x| x.map_or_else(|| "-".to_owned(), |x| num(x * scale)))
        .collect();
    cells.push(zero.to_string());
    cells
}

/// Each vCPU counter (histograms apart) per vCPU, then its aggregates.
fn write_vcpu_counters(
    s: &Sample,
    used: &[&VcpuSample],
    all: bool,
    out: &mut dyn Write,
) -> io::Result<()> {
    let scalars: Vec<usize> = (0..s.vcpu_counters.len())
        .filter(|&k| !s.vcpu_counters[k].is_histogram())
        .collect();
    if scalars.is_empty() {
        return Ok(());
    }
    let mut top = header("COUNTER", "UNIT", used);
    top.extend(["sum", "min", "max", "avg", "zero"].map(str::to_owned));
    let mut g = Grid::new("<<>", top);
    for k in scalars {
        let c = &s.vcpu_counters[k];
        let cells: Vec<String> = used
            .iter()
            .map(|v| match v.state {
                RecordState::Busy { .. } => "busy".to_owned(),
                _ => cell(c, &v.values[k], v.rates[k]),
            })
            .collect();
        if interesting(&cells, all) {
            let mut r = vec![c.name().to_owned(), unit_label(c)];
            r.extend(cells);
            r.extend(aggregate_cells(s, k, c.scale()));
            g.row(r);
        }
    }
    g.write(out)
}

/// The domain's counters (histograms apart), when any is worth a row.
fn write_domain_counters(d: &DomainSample, all: bool, out: &mut dyn Write) -> io::Result<()> {
    let mut g = Grid::new("<<>", ["DOMAIN", "UNIT", "value"]);
    let mut shown = 0;
    for (k, c) in d.counters.iter().enumerate() {
        let v = match d.state {
            RecordState::Busy { .. } => "busy".to_owned(),
            _ => cell(c, &d.values[k], d.rates[k]),
        };
        if !c.is_histogram() && interesting(std::slice::from_ref(&v), all) {
            g.row([c.name().to_owned(), unit_label(c), v]);
            shown += 1;
        }
    }
    if shown > 0 {
        g.write(out)?;
    }
    Ok(())
}

/// Histograms are not shown: say how many.
fn write_histogram_note(s: &Sample, out: &mut dyn Write) -> io::Result<()> {
    let count = |cs: &[Counter]| cs.iter().filter(|c| c.is_histogram()).count();
    let hists = count(&s.vcpu_counters) + s.domain.as_ref().map_or(0, |d| count(&d.counters));
    if hists > 0 {
        writeln!(
            out,
            "({hists} histograms not shown: see --format json or openmetrics)"
        )?;
    }
    Ok(())
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
