//! JSON Lines: one object per sample. The shape is documented in the
//! crate's README ("JSON Lines").

use std::io::{self, Write};

use serde_json::{json, Map, Value as Json};
use vstats_consumer::{Aggregate, Counter};

use super::{kind_name, rfc3339, shows_rate, unit_name};
use crate::{
    filter::NameFilter,
    follow::{Source, Vm},
    sample::{Sample, ShareBase, Value, VcpuSample, RUNSTATES},
};

fn value(v: &Value) -> Json {
    match v {
        Value::Absent => Json::Null,
        Value::Scalar(x) => json!(x),
        Value::Histogram(h) => json!(h),
    }
}

/// `{name: value}` for every counter.
fn values(counters: &[Counter], vals: &[Value]) -> Json {
    let m: Map<String, Json> = counters
        .iter()
        .zip(vals)
        .map(|(c, v)| (c.name().to_owned(), value(v)))
        .collect();
    Json::Object(m)
}

/// `{name: rate}` for every cumulative scalar counter (`null` when absent).
fn rates(counters: &[Counter], rates: &[Option<f64>]) -> Json {
    let m: Map<String, Json> = counters
        .iter()
        .zip(rates)
        .filter(|(c, _)| shows_rate(c))
        .map(|(c, r)| (c.name().to_owned(), json!(r)))
        .collect();
    Json::Object(m)
}

fn vcpu(v: &VcpuSample, counters: &[Counter]) -> Json {
    let shares: Map<String, Json> = RUNSTATES
        .iter()
        .enumerate()
        .map(|(i, n)| ((*n).to_owned(), json!(v.shares.map(|s| s[i]))))
        .collect();
    let ns: Map<String, Json> = RUNSTATES
        .iter()
        .zip(v.runstate_ns)
        .map(|(n, x)| ((*n).to_owned(), json!(x)))
        .collect();
    json!({
        "vcpu": v.vcpu,
        "status": v.state.name(),
        "runstate": shares,
        "share_base": v.share_base.map(ShareBase::name),
        "runstate_ns": ns,
        "current_runstate": v.runstate.state_name(),
        "runstate_entry_time": v.runstate.entry_ns,
        "extrapolated": v.runstate.extrapolated,
        "rates": rates(counters, &v.rates),
        "values": values(counters, &v.values),
    })
}

/// A `u128` sum as a JSON number: exact up to 2^64, else a float.
fn big(v: u128) -> Json {
    u64::try_from(v).map_or_else(|_| json!(v as f64), |x| json!(x))
}

fn aggregate(a: &Aggregate, r: Option<&Aggregate<f64>>) -> Json {
    json!({
        "sum": big(a.sum),
        "min": a.min,
        "max": a.max,
        "average": a.average(),
        "zero": a.zero,
        "count": a.present,
        "absent": a.absent,
        "rate": r.map(|r| json!({
            "sum": r.sum,
            "min": r.min,
            "max": r.max,
            "average": r.average(),
            "zero": r.zero,
            "count": r.present,
        })),
    })
}

/// The sample as one JSON object (no newline).
pub fn to_json(s: &Sample) -> Json {
    let aggregates: Map<String, Json> = s
        .vcpu_counters
        .iter()
        .zip(&s.aggregates)
        .filter_map(|(c, a)| {
            Some((
                c.name().to_owned(),
                aggregate(&a.as_ref()?.values, a.as_ref()?.rates.as_ref()),
            ))
        })
        .collect();
    let domain = s.domain.as_ref().map(|d| {
        json!({
            "status": d.state.name(),
            "rates": rates(&d.counters, &d.rates),
            "values": values(&d.counters, &d.values),
        })
    });
    let mut j = json!({
        "sample": s.number,
        "timestamp": rfc3339(s.wall),
        "monotonic_ns": s.monotonic_ns,
        "interval": s.interval,
        "vm": s.vm,
        "source": s.source,
        "domid": s.domid,
        "generation": s.generation,
        "vcpu_slots": s.nr_slots,
        "vcpus": s.vcpus.iter().map(|v| vcpu(v, &s.vcpu_counters)).collect::<Vec<_>>(),
        "aggregates": aggregates,
        "domain": domain,
    });
    if let (Some(obj), Some(note)) = (j.as_object_mut(), s.note) {
        obj.insert("note".into(), note.into());
    }
    j
}

/// Writes the sample as one line of JSON.
///
/// # Errors
///
/// I/O errors of `out`.
pub fn write_sample(s: &Sample, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &to_json(s))?;
    out.write_all(b"\n")
}

/// A counter's descriptor as one JSON object: name, kind, unit, scale
/// (`base`, `exponent`), offset, words (`count`) and bucket size.
pub fn counter_json(c: &Counter) -> Json {
    json!({
        "name": c.name(),
        "kind": kind_name(c.kind()),
        "unit": unit_name(c.unit()),
        "base": c.base().0,
        "exponent": c.exponent(),
        "offset": c.offset(),
        "count": c.count(),
        "bucket_size": c.bucket_size(),
    })
}

fn table_schema(s: Option<&Source>, names: &NameFilter) -> Json {
    s.map_or(Json::Null, |src| {
        let counters = src
            .table
            .counters()
            .iter()
            .filter(|c| names.matches(c.name()));
        json!({
            "source": src.describe(),
            "slots": src.table.nr_records(),
            "generation": src.table.generation(),
            "counters": counters.map(counter_json).collect::<Vec<_>>(),
        })
    })
}

/// The schema of `vm`'s tables as one JSON object: the VM (`vm`,
/// `source`, `domid`) and, per table (`vcpu`, `domain`; `null` when
/// absent), its source, slots, generation and the counters `names`
/// matches ([`counter_json`]).
pub fn schema_json(vm: &Vm, names: &NameFilter) -> Json {
    json!({
        "vm": vm.name,
        "source": vm.origin,
        "domid": vm.domid,
        "vcpu": table_schema(vm.vcpu.as_ref(), names),
        "domain": table_schema(vm.domain.as_ref(), names),
    })
}
