//! `schema`: every counter of a target's tables with its kind, unit and
//! scale, from the descriptors (QEMU's `query-stats-schemas`).

use std::io::{self, Write};

use vstats_consumer::{follow::Source, Counter};

use crate::{
    filter::NameFilter,
    output::{grid::Grid, json, kind_name, openmetrics, qmp, unit_name, Format},
    target::Vm,
};

fn counters<'a>(s: Option<&'a Source>, names: &NameFilter) -> Vec<&'a Counter> {
    s.map(|s| {
        s.table
            .counters()
            .iter()
            .filter(|c| names.matches(c.name()))
            .collect()
    })
    .unwrap_or_default()
}

fn write_table(
    out: &mut dyn Write,
    what: &str,
    s: Option<&Source>,
    names: &NameFilter,
) -> io::Result<()> {
    let Some(src) = s else {
        return writeln!(out, "{what} table: none\n");
    };
    let cs = counters(s, names);
    writeln!(
        out,
        "{what} table: {}  ({} slots, {} counters, generation {:#x})",
        src.describe(),
        src.table.nr_records(),
        cs.len(),
        src.table.generation()
    )?;
    let mut g = Grid::new("<<<>", ["NAME", "KIND", "UNIT", "SCALE", "OFFSET", "WORDS"]);
    for c in cs {
        g.row([
            c.name().to_owned(),
            kind_name(c.kind()),
            unit_name(c.unit()),
            format!("{}^{}", c.base().0, c.exponent()),
            c.offset().to_string(),
            c.count().to_string(),
        ]);
    }
    g.write(out)?;
    writeln!(out)
}

/// Writes the schema of `att` in `format`: a table per table, one JSON
/// object, OpenMetrics metadata lines, or a `query-stats-schemas` answer.
///
/// # Errors
///
/// I/O errors of `out`.
pub fn write(att: &Vm, format: Format, names: &NameFilter, out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Table => {
            writeln!(out, "vm {}  ({})\n", att.name, att.origin)?;
            write_table(out, "vCPU", att.vcpu.as_ref(), names)?;
            write_table(out, "domain", att.domain.as_ref(), names)
        }
        Format::Qmp => qmp::write_schema(att, names, out),
        Format::Json => {
            serde_json::to_writer(&mut *out, &json::schema_json(att, names))?;
            writeln!(out)
        }
        Format::Openmetrics => {
            let owned = |s: Option<&Source>| -> Vec<Counter> {
                counters(s, names).into_iter().cloned().collect()
            };
            let text =
                openmetrics::schema_text(&owned(att.vcpu.as_ref()), &owned(att.domain.as_ref()));
            out.write_all(text.as_bytes())
        }
    }
}
