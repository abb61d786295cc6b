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
use vstats_consumer::{discover, follow::Source, Snapshot};

use crate::{
    output::{grid::Grid, Format},
    target::Vm,
    xen::{Xen, XenStore},
};

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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    /// vCPU slots in use (read consistently, not unused).
    pub vcpus: u32,
    /// vCPU slots.
    pub slots: u32,
    /// Counters of the vCPU table.
    pub counters: usize,
    /// Whether a domain table is there.
    pub domain_table: bool,
    /// Generation of the vCPU (else domain) table.
    pub generation: u64,
}

fn info(att: &Vm) -> Info {
    let (vcpus, slots, counters) = att.vcpu.as_ref().map_or((0, 0, 0), |s: &Source| {
        let mut snap = Snapshot::new(&s.table);
        s.table.snapshot(&mut snap);
        let used = snap
            .records()
            .iter()
            .filter(|r| r.is_consistent() && !r.is_unused())
            .count();
        (used as u32, s.table.nr_records(), s.table.counters().len())
    });
    Info {
        vcpus,
        slots,
        counters,
        domain_table: att.domain.is_some(),
        generation: att.generation(),
    }
}

/// The tables under `root` (each subdirectory), sorted by name; an empty
/// list when `root` does not exist.
///
/// # Errors
///
/// I/O errors reading `root` other than "not found".
pub fn files(root: &Path) -> io::Result<Vec<Entry>> {
    let vms = discover::list(root).map_err(|e| match e {
        vstats_consumer::Error::Io { io, .. }
        | vstats_consumer::Error::PermissionDenied { io, .. } => {
            io::Error::new(io.kind(), format!("{}: {io}", root.display()))
        }
        e => io::Error::other(e),
    })?;
    Ok(vms
        .into_iter()
        .map(|vm| Entry {
            backend: "file",
            source: vm.dir.display().to_string(),
            domid: None,
            producer: live::probe(&vm.dir).ok(),
            info: vm.open().map(|a| info(&a)).map_err(|e| e.to_string()),
            name: vm.name,
        })
        .collect())
}

/// The Xen domains (via xenstore) and what their tables hold; `Err` with
/// the reason when Xen is not available here.
pub fn xen() -> Result<Vec<Entry>, String> {
    let xen = Xen::load().map_err(|e| e.to_string())?;
    let xs = XenStore::open().map_err(|e| format!("cannot list domains: {e}"))?;
    let domains = xs
        .domains()
        .map_err(|e| format!("cannot list domains: {e}"))?;
    Ok(domains
        .into_iter()
        .map(|d| {
            let opened = Vm::open_domain(&xen, d.domid, String::new());
            Entry {
                backend: "xen",
                name: d
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("domain-{}", d.domid)),
                source: format!("domain {}", d.domid),
                domid: Some(d.domid),
                producer: match &opened {
                    Ok(_) => Some(Liveness::Live),
                    Err(e) => live::xen_liveness(e),
                },
                info: opened.map(|vm| info(&vm)).map_err(|e| e.to_string()),
            }
        })
        .collect())
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
    })
}

/// Writes the listing: aligned columns, or one JSON object per line
/// (`openmetrics` is not a listing format and prints JSON too).
///
/// # Errors
///
/// I/O errors of `out`.
pub fn write(
    entries: &[Entry],
    xen_note: Option<&str>,
    format: Format,
    out: &mut dyn Write,
) -> io::Result<()> {
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
    if let Some(note) = xen_note {
        writeln!(out, "(Xen: {note})")?;
    }
    Ok(())
}

/// Removes the directories under `root` whose producer is dead or
/// stopped ([`vstats_consumer::live::prune`]: only directories of this
/// user whose lock is free and which hold nothing but vstats tables),
/// writing one line per directory to `notices`: pruned, or why not.
/// Live producers' directories are not touched. Returns the number of
/// directories that were refused.
///
/// # Errors
///
/// I/O errors reading `root`, and writing `notices`.
pub fn prune(root: &Path, notices: &mut dyn Write) -> io::Result<usize> {
    let mut refused = 0;
    for e in files(root)? {
        let Some(state @ (Liveness::Dead | Liveness::Stopped)) = e.producer else {
            continue;
        };
        let Some(name) = Path::new(&e.source).file_name() else {
            continue;
        };
        match live::prune(root, name) {
            Ok(_) => writeln!(
                notices,
                "xen-vcpus-stats: pruned {}: its producer was {state}",
                e.source.escape_debug()
            )?,
            Err(err) => {
                refused += 1;
                writeln!(
                    notices,
                    "xen-vcpus-stats: {}",
                    err.to_string().escape_debug()
                )?;
            }
        }
    }
    Ok(refused)
}
