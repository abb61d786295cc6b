//! `list`: the tables published under the root directory and, when the
//! Xen libraries load, the domains of this Xen host, each with its
//! producer's liveness ([`vstats_consumer::live`]); `--prune` removes dead
//! producers' directories first ([`prune`]).

use std::{
    io::{self, Write},
    path::Path,
};

use vstats_consumer::live::{self, Liveness};

use serde_json::{json, Value as Json};
use vstats_consumer::discover;

use crate::output::{grid::Grid, Format};

/// One line of the listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `"file"` or `"xen"`.
    pub backend: &'static str,
    /// The VM name (directory name or Xen domain name).
    pub name: String,
    /// Directory, or `domain N`.
    pub source: String,
    /// The Xen domain id.
    pub domid: Option<u16>,
    /// The producer's liveness; `None` when it cannot be told.
    pub producer: Option<Liveness>,
    /// What opening it gave.
    pub info: Result<Info, String>,
}

/// What a target holds.
pub use vstats_consumer::follow::VmSummary as Info;

fn list_error(root: &Path, e: vstats_consumer::Error) -> io::Error {
    match e {
        vstats_consumer::Error::Io { io, .. }
        | vstats_consumer::Error::PermissionDenied { io, .. } => {
            io::Error::new(io.kind(), format!("{}: {io}", root.display()))
        }
        e => io::Error::other(e),
    }
}

/// Every VM of this host ([`discover::host`]) as listing entries, and why
/// Xen domains are missing when they are.
///
/// # Errors
///
/// I/O errors reading `root` other than "not found".
pub fn host(root: &Path) -> io::Result<(Vec<Entry>, Option<String>)> {
    let host = discover::host(root).map_err(|e| list_error(root, e))?;
    let entries = host
        .vms
        .into_iter()
        .map(|v| Entry {
            backend: v.backend.as_str(),
            name: v.name,
            source: v.source,
            domid: v.domid,
            producer: v.producer,
            info: v.vm.map(|vm| vm.summary()).map_err(|e| e.to_string()),
        })
        .collect();
    Ok((entries, host.xen_unavailable))
}

fn entry_json(e: &Entry) -> Json {
    let info = e.info.as_ref().ok();
    json!({
        "backend": e.backend,
        "name": e.name,
        "source": e.source,
        "domid": e.domid,
        "producer": e.producer.map(Liveness::as_str),
        "vcpus": info.map(|i| i.vcpus),
        "vcpu_slots": info.map(|i| i.slots),
        "counters": info.map(|i| i.counters),
        "domain_table": info.map(|i| i.domain_table),
        "generation": info.map(|i| i.generation),
        "error": e.info.as_ref().err(),
        "note": info.and_then(|i| i.note),
    })
}

/// Writes the listing: aligned columns, one JSON object per line (also
/// for `qmp`: QEMU has no listing to mimic), or an
/// OpenMetrics exposition (`vstats_vm_info` and `vstats_vm_producer`).
///
/// # Errors
///
/// I/O errors of `out`.
pub fn write(entries: &[Entry], format: Format, out: &mut dyn Write) -> io::Result<()> {
    if format == Format::Openmetrics {
        let mut om = vstats_consumer::encode::openmetrics::Exposition::new();
        for e in entries {
            om.add_vm_info(&e.name, e.backend, &e.source, e.domid, e.producer);
        }
        return out.write_all(om.finish().as_bytes());
    }
    if format != Format::Table {
        for e in entries {
            serde_json::to_writer(&mut *out, &entry_json(e))?;
            writeln!(out)?;
        }
        return Ok(());
    }
    let mut g = Grid::new(
        "<<<>>><<",
        [
            "BACKEND",
            "NAME",
            "PRODUCER",
            "VCPUS",
            "SLOTS",
            "COUNTERS",
            "DOMAIN",
            "SOURCE / ERROR",
        ],
    );
    for e in entries {
        let mut r = vec![
            e.backend.to_owned(),
            e.name.clone(),
            e.producer.map_or("?", Liveness::as_str).to_owned(),
        ];
        match &e.info {
            Ok(i) => r.extend([
                i.vcpus.to_string(),
                i.slots.to_string(),
                i.counters.to_string(),
                (if i.domain_table { "yes" } else { "no" }).to_owned(),
                e.source.clone(),
            ]),
            Err(m) => r.extend(["-", "-", "-", "-", m].map(str::to_owned)),
        }
        g.row(r);
    }
    g.write(out)?;
    if entries.is_empty() {
        writeln!(out, "(no tables)")?;
    }
    Ok(())
}

/// Removes the directories under `root` whose producer is dead or
/// stopped ([`vstats_consumer::live::prune_root`]), writing one line per
/// directory to `notices`: pruned, or why not. Returns the number of
/// directories that were refused.
///
/// # Errors
///
/// I/O errors reading `root`, and writing `notices`.
pub fn prune(root: &Path, notices: &mut dyn Write) -> io::Result<usize> {
    let mut refused = 0;
    for p in live::prune_root(root).map_err(|e| list_error(root, e))? {
        match p.result {
            Ok(_) => writeln!(
                notices,
                "xen-vcpus-stats: pruned {}: its producer was {}",
                p.dir.display().to_string().escape_debug(),
                p.state
            )?,
            Err(err) => {
                refused += 1;
                let err = err.to_string();
                writeln!(notices, "xen-vcpus-stats: {}", err.escape_debug())?;
            }
        }
    }
    Ok(refused)
}
