//! The readable table: one block per sample, made to fit 80 columns at
//! any vCPU count. vCPUs are rows: one per vCPU with its runstate shares;
//! then one row per counter with its aggregates across the vCPUs (like
//! `kvm_stat`, which lists counters as rows); then the domain's counters.
//!
//! Number formats, one per column: shares are percentages with one
//! decimal (`37.5`); `ZERO` is a count; every other number, rates and
//! values alike, is [`super::si`]: 3 significant digits with an SI
//! prefix (`1.66k`, `2.00m`).
//! Cumulative counters are shown as rates per second, instant and peak
//! counters as values, both scaled to their unit (`s`, `B`, `cyc`);
//! absent values are `-`, busy records `busy`. The runstate counters are
//! the shares, and `vcpus_online`, `vcpus_max` and `uptime` are on the
//! `domain:` line, so neither gets a row again. Counters that are 0
//! everywhere are counted and hidden unless `all` (`--all`, `--names`);
//! histograms are left to the other formats and counted.

use std::io::{self, Write};

use vstats_consumer::Counter;

use super::{
    grid::{Grid, SCREEN_WIDTH},
    rfc3339, shows_rate, si as num, unit_symbol,
};
use crate::sample::{DomainSample, RecordState, Sample, Value, VcpuSample, RUNSTATES};

/// The domain counters the `domain:` line shows.
const DOMAIN_LINE: [&str; 3] = ["vcpus_online", "vcpus_max", "uptime"];

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
        v.scalar()
            .map_or_else(|| "-".to_owned(), |x| num(x as f64 * c.scale()))
    }
}

/// Writes one sample, followed by a blank line. Counters that are 0 on
/// every vCPU (or in the domain) are counted and left out unless `all`.
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
    let mut hidden = 0;
    if !used.is_empty() {
        write_runstates(&used, out)?;
        hidden += write_vcpu_counters(s, all, out)?;
    }
    if let Some(d) = &s.domain {
        hidden += write_domain_counters(d, all, out)?;
    }
    write_notes(s, hidden, out)?;
    writeln!(out)
}

/// The sample line, the interval line, and the domain line with its
/// standard counters.
fn write_heading(s: &Sample, shown: usize, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "sample {}  vm {}  {}", s.number, s.vm, rfc3339(s.wall))?;
    write!(out, "interval {:.3} s", s.interval)?;
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
        line.push_str(&format!("  uptime {:.3} s", v as f64 * c.scale()));
    }
    writeln!(out, "{line}")
}

/// One row per vCPU: its record's state and each runstate's share of the
/// interval, in percent.
fn write_runstates(used: &[&VcpuSample], out: &mut dyn Write) -> io::Result<()> {
    let mut top = vec!["VCPU".to_owned(), "STATE".to_owned()];
    top.extend(RUNSTATES.iter().map(|n| format!("{}%", n.to_uppercase())));
    let mut g = Grid::new("<<>", top).fit(SCREEN_WIDTH);
    for v in used {
        let mut r = vec![v.vcpu.to_string(), v.state.name().to_owned()];
        r.extend((0..RUNSTATES.len()).map(|i| match (v.state, v.shares) {
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
    let Some((stats, zero)) = s.aggregates[k].as_ref().map(|a| a.summary()) else {
        return vec!["-".to_owned(); 5];
    };
    let mut cells: Vec<String> = stats
        .iter()
        .map(|x| x.map_or_else(|| "-".to_owned(), |x| num(x * scale)))
        .collect();
    cells.push(zero.to_string());
    cells
}

/// One row per vCPU counter (histograms and runstates apart) with its
/// aggregates across the vCPUs in use; returns how many were hidden as 0.
fn write_vcpu_counters(s: &Sample, all: bool, out: &mut dyn Write) -> io::Result<usize> {
    let mut g = Grid::new(
        "<<>",
        ["COUNTER", "UNIT", "SUM", "MIN", "MAX", "AVG", "ZERO"],
    )
    .fit(SCREEN_WIDTH);
    let (mut shown, mut hidden) = (0, 0);
    for (k, c) in s.vcpu_counters.iter().enumerate() {
        if c.is_histogram() || s.is_runstate(k) {
            continue;
        }
        if !all && s.is_zero(k) {
            hidden += 1;
            continue;
        }
        let mut r = vec![c.name().to_owned(), unit_label(c)];
        r.extend(aggregate_cells(s, k, c.scale()));
        g.row(r);
        shown += 1;
    }
    if shown > 0 {
        g.write(out)?;
    }
    Ok(hidden)
}

/// The domain's counters (histograms and the `domain:` line's apart);
/// returns how many were hidden as 0.
fn write_domain_counters(d: &DomainSample, all: bool, out: &mut dyn Write) -> io::Result<usize> {
    let mut g = Grid::new("<<>", ["DOMAIN", "UNIT", "VALUE"]).fit(SCREEN_WIDTH);
    let (mut shown, mut hidden) = (0, 0);
    for (k, c) in d.counters.iter().enumerate() {
        if c.is_histogram() || DOMAIN_LINE.contains(&c.name()) {
            continue;
        }
        if !all && d.is_zero(k) {
            hidden += 1;
            continue;
        }
        let v = match d.state {
            RecordState::Busy { .. } => "busy".to_owned(),
            _ => cell(c, &d.values[k], d.rates[k]),
        };
        g.row([c.name().to_owned(), unit_label(c), v]);
        shown += 1;
    }
    if shown > 0 {
        g.write(out)?;
    }
    Ok(hidden)
}

/// What is not shown: histograms, and counters hidden as 0.
fn write_notes(s: &Sample, hidden: usize, out: &mut dyn Write) -> io::Result<()> {
    let count = |cs: &[Counter]| cs.iter().filter(|c| c.is_histogram()).count();
    let hists = count(&s.vcpu_counters) + s.domain.as_ref().map_or(0, |d| count(&d.counters));
    if hists > 0 {
        let s = if hists == 1 { "" } else { "s" };
        writeln!(
            out,
            "({hists} histogram{s} not shown: see --format json, openmetrics or qmp)"
        )?;
    }
    if hidden > 0 {
        let s = if hidden == 1 { "" } else { "s" };
        writeln!(out, "({hidden} counter{s} zero: --all shows them)")?;
    }
    Ok(())
}
