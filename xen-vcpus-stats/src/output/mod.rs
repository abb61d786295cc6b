//! Output formats: a readable table, JSON Lines, OpenMetrics text, QEMU's
//! `query-stats` JSON.

use std::io::{self, Write};

pub use vstats_consumer::encode::{
    json, kind_name, openmetrics, qmp, rfc3339, shows_rate, si, unit_name,
};
use vstats_consumer::Unit;

use crate::sample::Sample;

pub mod grid;
pub mod table;

/// `--format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// One JSON object per line (JSON Lines).
    Json,
    /// OpenMetrics 1.0: an exposition ending in `# EOF` per sample, or one
    /// of timestamped points for `--count` N > 1.
    Openmetrics,
    /// QEMU's QMP answers, one per line: `query-stats` (samples),
    /// `query-stats-schemas` (`schema`).
    Qmp,
}

/// Writes one sample in `format`; `all`: show every counter in the table
/// format, even those at 0 everywhere (`--all`, or `--names`).
///
/// # Errors
///
/// I/O errors of `out`.
pub fn write_sample(format: Format, s: &Sample, all: bool, out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Table => table::write_sample(s, all, out),
        Format::Json => json::write_sample(s, out),
        Format::Openmetrics => openmetrics::write_sample(s, out),
        Format::Qmp => qmp::write_sample(s, out),
    }
}

/// A short unit symbol for tables: `""` for counts, `s`, `B`, `cyc`,
/// `bool`.
pub fn unit_symbol(u: Unit) -> &'static str {
    match u {
        Unit::SECONDS => "s",
        Unit::BYTES => "B",
        Unit::CYCLES => "cyc",
        Unit::BOOLEAN => "bool",
        _ => "",
    }
}
