//! QEMU-shaped JSON: a sample as the answer to QMP's `query-stats`, a
//! VM's descriptors as the answer to `query-stats-schemas` (QEMU's
//! `qapi/stats.json`), so that a client written for QEMU reads them
//! unchanged.
//!
//! # The mapping
//!
//! - Each answer is a QMP success response, `{"return": [...]}`, on one
//!   line; QMP client libraries hand back the `return` value.
//! - `provider` is always `"kvm"`: the only `StatsProvider` of QEMU's
//!   enum for VM and vCPU statistics, and the format vstats' descriptors
//!   follow (KVM's binary statistics), whichever hypervisor published the
//!   table (a Xen domain too).
//! - Target `vm` is the domain table, target `vcpu` the vCPU table. In
//!   `query-stats` a `vm` result has no `qom-path` (as QEMU answers); a
//!   `vcpu` result has `qom-path` `/machine/unattached/device[N]` ([`vcpu_qom_path`]),
//!   N being the vCPU's index in the table. There is no QOM tree behind
//!   it: it is the path QEMU gives vCPU N on the usual x86 machine types,
//!   where the CPUs are the first unattached devices.
//! - Values are the raw counter values, as QEMU gives them (cumulative
//!   counters as totals, not rates), in `unit` times `base^exponent`.
//!   Histograms are arrays of buckets; counters of unit `boolean` are JSON
//!   booleans (QEMU's `StatsValue` alternate); absent values (a busy
//!   record, an inactive counter) are left out of `stats`; unused vCPU
//!   slots have no result.
//! - Kinds map to `StatsType` (`linear-hist` to `linear-histogram`,
//!   `log2-hist` to `log2-histogram`); unit `none` has no `unit` field;
//!   `base` is present only when `exponent` is not 0, `bucket-size` only
//!   for linear histograms. A counter of a kind or unit this revision does
//!   not know cannot be expressed and is left out of both answers.

use std::io::{self, Write};

use serde_json::{json, Map, Value as Json};

use crate::{
    filter::NameFilter,
    follow::Vm,
    sample::{RecordState, Sample, Value},
    Counter, Kind, Unit,
};

/// The `provider` of every result and schema.
pub const PROVIDER: &str = "kvm";

/// QEMU's `StatsType` of a kind; `None` for a kind this revision does not
/// know.
pub fn stats_type(k: Kind) -> Option<&'static str> {
    match k {
        Kind::CUMULATIVE => Some("cumulative"),
        Kind::INSTANT => Some("instant"),
        Kind::PEAK => Some("peak"),
        Kind::LINEAR_HIST => Some("linear-histogram"),
        Kind::LOG2_HIST => Some("log2-histogram"),
        _ => None,
    }
}

/// QEMU's `StatsUnit` of a unit: `Some(None)` for a plain number (no
/// `unit` field), `None` for a unit this revision does not know.
pub fn stats_unit(u: Unit) -> Option<Option<&'static str>> {
    match u {
        Unit::NONE => Some(None),
        Unit::BYTES => Some(Some("bytes")),
        Unit::SECONDS => Some(Some("seconds")),
        Unit::CYCLES => Some(Some("cycles")),
        Unit::BOOLEAN => Some(Some("boolean")),
        _ => None,
    }
}

/// The `qom-path` of vCPU `vcpu`: `/machine/unattached/device[vcpu]`.
pub fn vcpu_qom_path(vcpu: u32) -> String {
    format!("/machine/unattached/device[{vcpu}]")
}

/// Whether the counter can be expressed in QEMU's schema.
fn expressible(c: &Counter) -> bool {
    stats_type(c.kind()).is_some() && stats_unit(c.unit()).is_some()
}

/// A counter's `StatsSchemaValue`; `None` when it cannot be expressed.
pub fn schema_value(c: &Counter) -> Option<Json> {
    let mut m = Map::new();
    m.insert("name".into(), json!(c.name()));
    m.insert("type".into(), json!(stats_type(c.kind())?));
    if let Some(unit) = stats_unit(c.unit())? {
        m.insert("unit".into(), json!(unit));
    }
    if c.exponent() != 0 {
        m.insert("base".into(), json!(c.base().0));
    }
    m.insert("exponent".into(), json!(c.exponent()));
    if c.kind() == Kind::LINEAR_HIST {
        m.insert("bucket-size".into(), json!(c.bucket_size()));
    }
    Some(Json::Object(m))
}

fn schema(target: &str, counters: &[Counter], names: &NameFilter) -> Json {
    let stats: Vec<Json> = counters
        .iter()
        .filter(|c| names.matches(c.name()))
        .filter_map(schema_value)
        .collect();
    json!({"provider": PROVIDER, "target": target, "stats": stats})
}

/// The `return` value of `query-stats-schemas` for `vm`: one
/// `StatsSchema` per table (target `vm` for the domain table, `vcpu` for
/// the vCPU table), holding the counters `names` matches.
pub fn query_stats_schemas(vm: &Vm, names: &NameFilter) -> Json {
    let mut out = Vec::new();
    if let Some(d) = &vm.domain {
        out.push(schema("vm", d.table.counters(), names));
    }
    if let Some(v) = &vm.vcpu {
        out.push(schema("vcpu", v.table.counters(), names));
    }
    Json::Array(out)
}

/// `[{name, value}]` of the present values of expressible counters.
fn stats(counters: &[Counter], values: &[Value]) -> Json {
    let stats: Vec<Json> = counters
        .iter()
        .zip(values)
        .filter(|(c, _)| expressible(c))
        .filter_map(|(c, v)| {
            let value = match v {
                Value::Absent => return None,
                Value::Scalar(x) if c.unit() == Unit::BOOLEAN => json!(*x != 0),
                Value::Scalar(x) => json!(x),
                Value::Histogram(h) => json!(h),
            };
            Some(json!({"name": c.name(), "value": value}))
        })
        .collect();
    Json::Array(stats)
}

/// The `return` value of `query-stats` for a sample: the domain table's
/// result (target `vm`, no `qom-path`), then one result per vCPU in use
/// (target `vcpu`, [`vcpu_qom_path`]).
pub fn query_stats(s: &Sample) -> Json {
    let mut out = Vec::new();
    if let Some(d) = &s.domain {
        out.push(json!({"provider": PROVIDER, "stats": stats(&d.counters, &d.values)}));
    }
    for v in s.vcpus.iter().filter(|v| v.state != RecordState::Unused) {
        out.push(json!({
            "provider": PROVIDER,
            "qom-path": vcpu_qom_path(v.vcpu),
            "stats": stats(&s.vcpu_counters, &v.values),
        }));
    }
    Json::Array(out)
}

/// A QMP success response: `{"return": value}`.
pub fn response(value: Json) -> Json {
    json!({ "return": value })
}

/// Writes the sample as one `query-stats` response on one line.
///
/// # Errors
///
/// I/O errors of `out`.
pub fn write_sample(s: &Sample, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &response(query_stats(s)))?;
    out.write_all(b"\n")
}

/// Writes `vm`'s schema as one `query-stats-schemas` response on one line.
///
/// # Errors
///
/// I/O errors of `out`.
pub fn write_schema(vm: &Vm, names: &NameFilter, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &response(query_stats_schemas(vm, names)))?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_units_use_qemus_spellings() {
        assert_eq!(stats_type(Kind::LINEAR_HIST), Some("linear-histogram"));
        assert_eq!(stats_type(Kind::LOG2_HIST), Some("log2-histogram"));
        assert_eq!(stats_type(Kind(9)), None);
        assert_eq!(stats_unit(Unit::NONE), Some(None));
        assert_eq!(stats_unit(Unit::BOOLEAN), Some(Some("boolean")));
        assert_eq!(stats_unit(Unit(9)), None);
        assert_eq!(vcpu_qom_path(3), "/machine/unattached/device[3]");
    }
}
