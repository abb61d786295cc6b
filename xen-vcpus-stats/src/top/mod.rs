//! `top`: the host-wide live view, like `xentop`. The model is
//! [`vstats_consumer::overview`]; this module holds the options, the
//! column layout shared by the batch output ([`batch`]) and the
//! interactive view ([`tui`]), and the number formats.

pub mod batch;
pub mod tui;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Args;
use vstats_consumer::{
    overview::{Rate, SortKey, VcpuRow, View, VmRow},
    Counter, Unit,
};

/// `top`'s options.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// Batch mode: print the rows as plain text every --delay, no
    /// terminal control (like `xentop -b`).
    #[arg(short, long)]
    pub batch: bool,
    /// Seconds between refreshes (fractions allowed).
    #[arg(short, long, value_name = "SECONDS", default_value = "1",
          value_parser = crate::cli::parse_seconds, allow_negative_numbers = true)]
    pub delay: Duration,
    /// Refreshes, then exit [default: until q, or interrupted].
    #[arg(short = 'n', long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub iterations: Option<u64>,
    /// Batch mode, as CSV: a header line once, then one line per VM per
    /// refresh (no per-vCPU lines: not with --vcpus).
    #[arg(long, conflicts_with = "vcpus")]
    pub csv: bool,
    /// Sort by this column: name, id, vcpus, cpu, runnable, blocked, rate,
    /// state (numbers highest first).
    #[arg(short, long, value_name = "KEY", default_value_t = SortKey::Name)]
    pub sort: SortKey,
    /// Reverse the sort order.
    #[arg(short, long)]
    pub reverse: bool,
    /// Only VMs whose name contains this (case-insensitive), or matches
    /// it when it has `*` or `?`.
    #[arg(short, long, value_name = "PATTERN", default_value = "")]
    pub filter: String,
    /// Batch mode: also a line per vCPU, and its histograms.
    #[arg(long)]
    pub vcpus: bool,
    /// Batch mode: the width of a line.
    #[arg(short, long, value_name = "COLUMNS", default_value_t = 80,
          value_parser = clap::value_parser!(u16).range(54..=1000))]
    pub width: u16,
    /// The directory of published VMs: $VSTATS_ROOT, else /dev/shm/vstats
    /// for root and $XDG_RUNTIME_DIR/vstats (or /dev/shm/vstats-UID) for
    /// others.
    #[arg(long, value_name = "DIR", default_value_os_t = vstats_consumer::discover::root())]
    pub root: PathBuf,
}

impl TopArgs {
    /// The initial sort and filter.
    pub fn view(&self) -> View {
        View {
            sort: self.sort,
            reverse: self.reverse,
            filter: self.filter.clone(),
        }
    }
}

/// Runs `top`: batch (or CSV) output, else the interactive view.
///
/// # Errors
///
/// The root cannot be read; the terminal or stdout failed.
pub fn run(args: &TopArgs) -> anyhow::Result<ExitCode> {
    if args.batch || args.csv {
        let stop = crate::cli::stop_flag()?;
        batch::run(args, &mut std::io::stdout().lock(), &stop)?;
    } else {
        tui::run(args)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Column widths for a line width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The name column.
    pub name: usize,
    /// Busiest rates shown per row.
    pub rates: usize,
}

/// Width of everything but the name and the rates.
const FIXED: usize = 5 + 1 + 4 + 1 + 6 + 1 + 6 + 1 + 6 + 1 + 7;
/// Width of one rate: value and counter name.
const RATE: usize = 1 + 7 + 1 + 13;

impl Layout {
    /// The layout for lines of `width` columns: a name of 14 to 32
    /// columns, then as many rates as fit (one at 80 columns, none below
    /// 76); at least 54 columns.
    pub fn for_width(width: usize) -> Layout {
        let name = (width.saturating_sub(FIXED + RATE + 1)).clamp(14, 32);
        let rates = width.saturating_sub(FIXED + name + 1) / RATE;
        Layout { name, rates }
    }

    /// The column header.
    pub fn header(&self) -> String {
        let mut s = format!(
            "{:<w$} {:>5} {:>4} {:>6} {:>6} {:>6} {:<7}",
            "NAME",
            "ID",
            "VCPU",
            "CPU%",
            "RDY%",
            "BLK%",
            "STATE",
            w = self.name
        );
        for i in 0..self.rates {
            let label = if i == 0 { "BUSIEST/s" } else { "NEXT/s" };
            s.push_str(&format!(" {label:>7} {:<13}", ""));
        }
        s.trim_end().to_owned()
    }

    /// A VM's line.
    pub fn vm_line(&self, r: &VmRow) -> String {
        let mut s = format!(
            "{:<w$} {:>5} {:>4} {:>6} {:>6} {:>6} {:<7}",
            elide(&r.name, self.name),
            r.domid.map_or("-".to_owned(), |d| d.to_string()),
            r.vcpus,
            pct(r.cpu),
            pct(r.runnable),
            pct(r.blocked),
            r.state_name(),
            w = self.name
        );
        self.push_rates(&mut s, &r.rates);
        s.trim_end().to_owned()
    }

    /// The VM's cumulative counters since the last reset (since the
    /// producer started before any), busiest first; `None` when there
    /// are none.
    pub fn totals_line(&self, r: &VmRow) -> Option<String> {
        let parts: Vec<String> = r
            .rates
            .iter()
            .filter_map(|x| {
                let v = x.since_reset? as f64 * x.counter.scale();
                Some(format!("{} {}", x.counter.name(), quantity(v, &x.counter)))
            })
            .collect();
        (!parts.is_empty()).then(|| {
            elide(
                &format!("  since reset: {}", parts.join("  ")),
                self.width(),
            )
        })
    }

    /// A vCPU's line, then one line per histogram (its distribution since
    /// the last reset).
    pub fn vcpu_lines(&self, v: &VcpuRow) -> Vec<String> {
        let mut s = format!(
            "{:<w$} {:>5} {:>4} {:>6} {:>6} {:>6} {:<7}",
            elide(&format!("  vcpu{}", v.vcpu), self.name),
            "",
            "",
            pct(v.cpu),
            pct(v.runnable),
            pct(v.blocked),
            "",
            w = self.name
        );
        self.push_rates(&mut s, &v.rates);
        let mut lines = vec![s.trim_end().to_owned()];
        let width = self.width();
        for h in &v.histograms {
            let d = &h.distribution;
            let bound = |b: Option<f64>| {
                b.map_or("-".to_owned(), |b| {
                    format!("<{}", quantity(b * h.counter.scale(), &h.counter))
                })
            };
            let line = format!(
                "    {} n={} p50{} p90{} p99{} {}",
                elide(h.counter.name(), 18),
                count(d.count),
                bound(d.p50),
                bound(d.p90),
                bound(d.p99),
                vstats_consumer::sparkline(&h.buckets)
            );
            // The sparkline's blocks are one column each.
            lines.push(line.chars().take(width).collect());
        }
        lines
    }

    /// The widest line.
    pub fn width(&self) -> usize {
        FIXED + self.name + 1 + self.rates * RATE
    }

    fn push_rates(&self, s: &mut String, rates: &[Rate]) {
        for r in rates.iter().take(self.rates) {
            s.push_str(&format!(
                " {:>7} {:<13}",
                quantity(r.scaled(), &r.counter),
                elide(r.counter.name(), 13)
            ));
        }
    }
}

/// `name` as printable ASCII (anything else as `?`: a hostile name cannot
/// move the cursor), at most `width` columns, its end elided as `~`.
pub fn elide(name: &str, width: usize) -> String {
    let clean: Vec<char> = name
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    if clean.len() <= width {
        return clean.into_iter().collect();
    }
    let mut s: String = clean[..width.saturating_sub(1)].iter().collect();
    s.push('~');
    s
}

/// A percentage in at most 6 columns: one decimal below 1000; `-` when
/// unknown.
pub fn pct(v: Option<f64>) -> String {
    match v {
        None => "-".to_owned(),
        Some(v) if v < 999.95 => format!("{v:.1}"),
        Some(v) => format!("{v:.0}"),
    }
}

/// A number in at most 7 columns: `999.9`, `12.3k`, `4.5M`, ... `1.2E`.
pub fn compact(v: f64) -> String {
    if !v.is_finite() {
        return if v > 0.0 { "inf".into() } else { "-".into() };
    }
    let neg = if v < 0.0 { "-" } else { "" };
    let mut a = v.abs();
    for suffix in ["", "k", "M", "G", "T", "P"] {
        if a < 999.95 {
            return format!("{neg}{a:.1}{suffix}");
        }
        a /= 1000.0;
    }
    format!("{neg}{a:.1}E")
}

/// A count in at most 7 columns: exact below 1000, else [`compact`].
pub fn count(n: u64) -> String {
    if n < 1000 {
        n.to_string()
    } else {
        compact(n as f64)
    }
}

/// A value in `c`'s unit, already scaled: seconds as `ns`/`us`/`ms`/`s`,
/// bytes with `B`, anything else as [`compact`].
pub fn quantity(v: f64, c: &Counter) -> String {
    if !v.is_finite() {
        return "inf".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    match c.unit() {
        Unit::SECONDS => {
            let (x, u) = if v < 1e-6 {
                (v * 1e9, "ns")
            } else if v < 1e-3 {
                (v * 1e6, "us")
            } else if v < 1.0 {
                (v * 1e3, "ms")
            } else {
                (v, "s")
            };
            format!("{}{u}", compact(x))
        }
        Unit::BYTES => format!("{}B", compact(v)),
        _ => compact(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_compact() {
        assert_eq!(compact(0.0), "0.0");
        assert_eq!(compact(999.9), "999.9");
        assert_eq!(compact(12_345.0), "12.3k");
        assert_eq!(compact(-4.5e6), "-4.5M");
        assert!(compact(f64::MAX).len() <= 7 + 300, "no panic");
        assert_eq!(pct(Some(25_600.0)), "25600");
        assert_eq!(pct(Some(99.96)), "100.0");
        assert_eq!(pct(None), "-");
    }

    #[test]
    fn names_are_elided_and_clean() {
        assert_eq!(elide("vm1", 5), "vm1");
        assert_eq!(elide("a-very-long-name", 6), "a-ver~");
        assert_eq!(elide("\x1b[2Jx\u{e9}", 10), "?[2Jx?");
    }

    #[test]
    fn layouts_fit() {
        for w in [60, 80, 100, 132, 200, 400] {
            let l = Layout::for_width(w);
            assert!(l.width() <= w, "{w}: {l:?} is {}", l.width());
            assert!(l.header().len() <= w);
        }
        assert_eq!(Layout::for_width(80).rates, 1);
    }
}
