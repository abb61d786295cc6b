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

/// The tables under `root` (each subdirectory), sorted by name; an empty
/// list when `root` does not exist.
///
/// # Errors
///
/// I/O errors reading `root` other than "not found".
pub fn files(root: &Path) -> io::Result<Vec<Entry>> {
    let vms = discover::list(root).map_err(|e| list_error(root, e))?;
    Ok(vms
        .into_iter()
        .map(|vm| Entry {
            backend: "file",
            source: vm.dir.display().to_string(),
            domid: None,
            producer: live::probe(&vm.dir).ok(),
            info: vm.open().map(|a| a.summary()).map_err(|e| e.to_string()),
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
                info: opened.map(|vm| vm.summary()).map_err(|e| e.to_string()),
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
