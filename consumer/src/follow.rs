//! Following a VM's tables: its vCPU table and its domain table, where
//! they came from, and, in one call ([`Vm::follow`]), what happened to
//! them since: a producer that restarted (a new generation or header in
//! place, a new file under the same name) is re-attached and reported as
//! [`Event::Restarted`]; tables that went away as [`Event::Removed`].
//!
//! A VM directory's producer is also probed for liveness
//! ([`crate::live`]) when the VM is opened and then at most every
//! [`crate::live::PROBE_INTERVAL`] by [`Vm::follow`], which reports a
//! producer that died as [`Event::ProducerDied`] and other changes as
//! [`Event::LivenessChanged`].
//!
//! [`FileWatch`] is the file half of it for callers that need the raw
//! mapping of whatever file is at a path, valid table or not (a checker
//! listing every violation of an invalid table).

use std::{
    io,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::{
    live::{Liveness, PROBE_INTERVAL},
    mem::{FileId, MemView},
    Error, Result, Table, TableKind,
};

pub use vstats_abi::publish::{DOMAIN_FILE, VCPU_FILE};

/// What front ends say about a genuine RFC v3 vCPU table
/// ([`Table::is_rfc_v3`], docs/abi.md 9.1), whose vCPUs other than 0 they
/// do not show.
pub const RFC_V3_NOTE: &str =
    "RFC v3 table: only vCPU 0 is meaningful; vCPU count from the toolstack";

/// What a VM's tables hold ([`Vm::summary`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmSummary {
    /// vCPU slots in use (read consistently, not unused); of an RFC v3
    /// table, record 0 only.
    pub vcpus: u32,
    /// vCPU slots.
    pub slots: u32,
    /// Counters of the vCPU table.
    pub counters: usize,
    /// Whether a domain table is there.
    pub domain_table: bool,
    /// Generation of the vCPU (else domain) table.
    pub generation: u64,
    /// [`RFC_V3_NOTE`] for an RFC v3 vCPU table ([`Vm::note`]).
    pub note: Option<&'static str>,
}

/// Where a table comes from, and how to open it again.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Origin {
    /// A file.
    File(PathBuf),
    /// A Xen resource.
    #[cfg(feature = "xen")]
    Xen {
        /// The loaded library.
        xen: crate::xen::Xen,
        /// The domain.
        domid: u16,
        /// Which of its tables.
        kind: TableKind,
    },
}

/// One open table and where it came from.
#[derive(Debug)]
pub struct Source {
    /// The table.
    pub table: Table,
    /// Where it came from.
    pub origin: Origin,
}

impl Source {
    /// Opens the table file at `path`.
    ///
    /// # Errors
    ///
    /// As [`Table::open`].
    pub fn open_file(path: &Path) -> Result<Source> {
        Ok(Source {
            table: Table::open(path)?,
            origin: Origin::File(path.to_owned()),
        })
    }

    /// As [`Source::open_file`], refusing a symbolic link
    /// ([`Table::open_nofollow`]): for the table files of a VM directory.
    ///
    /// # Errors
    ///
    /// As [`Table::open_nofollow`].
    pub fn open_file_nofollow(path: &Path) -> Result<Source> {
        Ok(Source {
            table: Table::open_nofollow(path)?,
            origin: Origin::File(path.to_owned()),
        })
    }

    /// Which table this is, as its magic says.
    pub fn kind(&self) -> TableKind {
        self.table.info().kind()
    }

    /// A description for messages: the path, or `domain N vCPU stats
    /// table`.
    pub fn describe(&self) -> String {
        match &self.origin {
            Origin::File(p) => p.display().to_string(),
            #[cfg(feature = "xen")]
            Origin::Xen { domid, kind, .. } => format!("domain {domid} {kind} stats table"),
        }
    }

    /// Whether the producer restarted since the table was opened: the
    /// header or generation changed in place ([`Table::is_stale`]), or, for
    /// a file, a new file took its name or it was removed
    /// ([`Table::file_replaced`]).
    ///
    /// # Errors
    ///
    /// An I/O error checking the file.
    pub fn restarted(&self) -> Result<bool> {
        // Reading the header to tell staleness faults on a file truncated
        // under it, which marks the table lost: that is the truncation
        // below, not a restart to reopen.
        let stale = !self.table.is_lost() && self.table.is_stale();
        if self.table.is_lost() {
            // A truncated file that a new one replaced is a restart;
            // truncated in place, the table is gone.
            return match self.origin {
                Origin::File(_) if self.table.file_replaced()? => Ok(true),
                _ => self.table.check_lost().map(|()| true),
            };
        }
        if stale {
            return Ok(true);
        }
        match self.origin {
            Origin::File(_) => self.table.file_replaced(),
            #[cfg(feature = "xen")]
            Origin::Xen { .. } => Ok(false),
        }
    }

    /// Opens the table again (after a restart); `Ok(None)` when its file
    /// no longer exists.
    ///
    /// # Errors
    ///
    /// As when it was first opened.
    pub fn reopen(&self) -> Result<Option<Source>> {
        let table = match &self.origin {
            Origin::File(_) => match self.table.reopen() {
                Ok(t) => t,
                Err(Error::Io { io, .. }) if io.kind() == io::ErrorKind::NotFound => {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            },
            #[cfg(feature = "xen")]
            Origin::Xen { xen, domid, kind } => xen.map_table(*domid, *kind)?,
        };
        Ok(Some(Source {
            table,
            origin: self.origin.clone(),
        }))
    }
}

/// What [`Vm::follow`] noticed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A table's producer restarted: every table of the VM was opened
    /// again.
    Restarted {
        /// The table that changed ([`Source::describe`]).
        table: String,
        /// Which table it is.
        kind: TableKind,
        /// Its generation before.
        old_generation: u64,
        /// The generation now (of the vCPU table, else the domain table).
        new_generation: u64,
    },
    /// A table file went away and nothing replaced it: the VM's producer
    /// stopped. The [`Vm`] keeps its old tables, which no longer change.
    Removed {
        /// The file.
        path: PathBuf,
    },
    /// The VM directory's producer died: its liveness lock is free and its
    /// tables are still there ([`Liveness::Dead`]). The [`Vm`] keeps its
    /// tables, whose values are frozen.
    ProducerDied {
        /// The VM directory.
        dir: PathBuf,
    },
    /// The producer's liveness changed otherwise (say a new producer took
    /// a dead one's directory, before it replaced the tables).
    LivenessChanged {
        /// The VM directory.
        dir: PathBuf,
        /// The state before.
        old: Liveness,
        /// The state now.
        new: Liveness,
    },
}

/// The liveness probe a [`Vm`] carries.
#[derive(Debug)]
struct LiveProbe {
    /// The VM directory, for file-backed VMs.
    dir: Option<PathBuf>,
    /// The last state seen; `None` when it cannot be told.
    state: Option<Liveness>,
    interval: Duration,
    last: Instant,
}

impl LiveProbe {
    /// Probes `dir` now (a directory that cannot be probed gives `None`).
    fn dir(dir: &Path) -> LiveProbe {
        LiveProbe {
            dir: Some(dir.to_owned()),
            state: crate::live::probe(dir).ok(),
            interval: PROBE_INTERVAL,
            last: Instant::now(),
        }
    }

    /// A Xen domain that was just mapped: live.
    #[cfg(feature = "xen")]
    fn xen() -> LiveProbe {
        LiveProbe {
            dir: None,
            state: Some(Liveness::Live),
            interval: PROBE_INTERVAL,
            last: Instant::now(),
        }
    }
}

/// A VM's tables: its vCPU table and its domain table, either of which
/// may be missing (not both).
#[derive(Debug)]
pub struct Vm {
    /// The VM's name (the `vm` label): directory name, or the Xen domain's
    /// name.
    pub name: String,
    /// What was opened, for messages: a path or `domain N`.
    pub origin: String,
    /// The Xen domain id, for Xen domains.
    pub domid: Option<u16>,
    /// The vCPU table.
    pub vcpu: Option<Source>,
    /// The domain table.
    pub domain: Option<Source>,
    live: LiveProbe,
}

/// Whether `path` exists; an error when that cannot be told (a directory
/// on the way is not searchable).
fn exists(path: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

impl Vm {
    /// Opens a VM directory: its `vcpu` and `domain` files, whichever
    /// exist; `name` is the VM's name.
    ///
    /// # Errors
    ///
    /// [`Error::NoTable`] when neither exists, I/O errors (permission
    /// denied apart), an invalid table.
    pub fn open_dir(dir: &Path, name: String) -> Result<Vm> {
        let vcpu_path = dir.join(VCPU_FILE);
        let domain_path = dir.join(DOMAIN_FILE);
        let vcpu = exists(&vcpu_path)?
            .then(|| Source::open_file_nofollow(&vcpu_path))
            .transpose()?;
        let domain = exists(&domain_path)?
            .then(|| Source::open_file_nofollow(&domain_path))
            .transpose()?;
        if vcpu.is_none() && domain.is_none() {
            // Distinguish "not there" from "cannot look" (permission).
            if let Err(e) = std::fs::read_dir(dir) {
                return Err(Error::io(dir, e));
            }
            return Err(Error::NoTable {
                dir: dir.to_owned(),
            });
        }
        Ok(Vm {
            name,
            origin: dir.display().to_string(),
            domid: None,
            vcpu,
            domain,
            live: LiveProbe::dir(dir),
        }
        .with_liveness())
    }

    /// Opens a path: a directory is a VM directory named after itself; a
    /// file is a vCPU or domain table, as its magic says, and a vCPU table
    /// file named `vcpu` brings its sibling `domain` along when there is
    /// one. The VM is named after the file's directory.
    ///
    /// # Errors
    ///
    /// As [`Vm::open_dir`] and [`Table::open`].
    pub fn open_path(p: &Path) -> Result<Vm> {
        if p.is_dir() {
            let name = file_name(&std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned()));
            return Vm::open_dir(p, name);
        }
        let src = Source::open_file(p)?;
        let dir = p.parent().unwrap_or(Path::new("."));
        let name = file_name(&std::fs::canonicalize(dir).unwrap_or_else(|_| dir.into()));
        let origin = p.display().to_string();
        if src.kind() == TableKind::Domain {
            return Ok(Vm {
                name,
                origin,
                domid: None,
                vcpu: None,
                domain: Some(src),
                live: LiveProbe::dir(dir),
            }
            .with_liveness());
        }
        let sibling = dir.join(DOMAIN_FILE);
        let domain = if p.file_name() == Some(VCPU_FILE.as_ref()) && exists(&sibling)? {
            Some(Source::open_file(&sibling)?)
        } else {
            None
        };
        Ok(Vm {
            name,
            origin,
            domid: None,
            vcpu: Some(src),
            domain,
            live: LiveProbe::dir(dir),
        }
        .with_liveness())
    }

    /// Maps Xen domain `domid`'s tables; `name` is its name.
    ///
    /// # Errors
    ///
    /// As [`crate::xen::Xen::map_domain`].
    #[cfg(feature = "xen")]
    pub fn open_domain(xen: &crate::xen::Xen, domid: u16, name: String) -> Result<Vm> {
        let (vcpu, domain) = xen.map_domain(domid)?;
        let src = |table, kind| Source {
            table,
            origin: Origin::Xen {
                xen: xen.clone(),
                domid,
                kind,
            },
        };
        Ok(Vm {
            name,
            origin: format!("domain {domid}"),
            domid: Some(domid),
            vcpu: Some(src(vcpu, TableKind::Vcpu)),
            domain: domain.map(|t| src(t, TableKind::Domain)),
            live: LiveProbe::xen(),
        })
    }

    /// The tables, vCPU table first.
    pub fn sources(&self) -> impl Iterator<Item = &Source> {
        self.vcpu.iter().chain(self.domain.iter())
    }

    /// The producer's generation: the vCPU table's, else the domain
    /// table's.
    pub fn generation(&self) -> u64 {
        self.sources().next().map_or(0, |s| s.table.generation())
    }

    /// The records front ends show as vCPUs: every slot of the vCPU
    /// table, or only record 0 of an RFC v3 table (its other records are
    /// unknown, docs/abi.md 9.1); 0 without a vCPU table.
    pub fn vcpu_records(&self) -> u32 {
        self.vcpu.as_ref().map_or(0, |s| match s.table.is_rfc_v3() {
            true => s.table.nr_records().min(1),
            false => s.table.nr_records(),
        })
    }

    /// [`RFC_V3_NOTE`] when the vCPU table is an RFC v3 table
    /// ([`Table::is_rfc_v3`]), for front ends to show once.
    pub fn note(&self) -> Option<&'static str> {
        let v3 = self.vcpu.as_ref().is_some_and(|s| s.table.is_rfc_v3());
        v3.then_some(RFC_V3_NOTE)
    }

    /// Why the vCPU table's runstate times are not brought up to date
    /// (R26), when its clock is Xen system time and that clock cannot be
    /// read here (docs/abi.md 2.6); for front ends to show once. A table
    /// with a reader of its own ([`Table::set_clock`]: the Xen backend
    /// attaches the domain's time frame) is asked once now.
    pub fn clock_note(&self) -> Option<String> {
        use crate::runstate::{xen_clock_unavailable, TimeBase};
        let s = self.vcpu.as_ref()?;
        if TimeBase::from_clock(s.table.info().clock) != TimeBase::XenSystem
            || s.table.producer_gone()
        {
            return None;
        }
        let why = match s.table.clock_name() {
            Some(_) if s.table.clock_now().is_some() => return None,
            Some(name) => format!("{name} gives no current time"),
            None => xen_clock_unavailable()?.to_owned(),
        };
        Some(format!(
            "Xen system time cannot be read ({why}): runstate times are as of each vCPU's last \
             state change"
        ))
    }

    /// What the VM's tables hold, read now (one snapshot of the vCPU
    /// table): a listing's line.
    pub fn summary(&self) -> VmSummary {
        let shown = self.vcpu_records() as usize;
        let (vcpus, slots, counters) = self.vcpu.as_ref().map_or((0, 0, 0), |s| {
            let mut snap = crate::Snapshot::new(&s.table);
            s.table.snapshot(&mut snap);
            let used = snap
                .records()
                .iter()
                .take(shown)
                .filter(|r| r.is_consistent() && !r.is_unused())
                .count();
            (used as u32, s.table.nr_records(), s.table.counters().len())
        });
        VmSummary {
            vcpus,
            slots,
            counters,
            domain_table: self.domain.is_some(),
            generation: self.generation(),
            note: self.note(),
        }
    }

    /// The producer's liveness as last probed ([`crate::live`]); `None`
    /// when it cannot be told (the directory cannot be opened). A Xen
    /// domain is [`Liveness::Live`] once mapped; one that went away makes
    /// re-mapping fail with `xen::Error::NoSuchDomain`, which
    /// `live::xen_liveness` (feature `xen`) maps to [`Liveness::Stopped`].
    pub fn liveness(&self) -> Option<Liveness> {
        self.live.state
    }

    /// Probes the producer's liveness now (see [`Vm::liveness`]) and
    /// returns it; [`Vm::follow`] does so at most every
    /// [`Vm::set_probe_interval`].
    pub fn probe_liveness(&mut self) -> Option<Liveness> {
        if let Some(dir) = &self.live.dir {
            self.live.state = crate::live::probe(dir).ok();
            self.live.last = Instant::now();
            self.mark_gone();
        }
        self.live.state
    }

    /// Tells the tables whether their producer is gone, from the liveness
    /// last probed ([`Table::set_producer_gone`]): a dead producer's times
    /// are final, never brought up to date.
    fn mark_gone(&self) {
        let gone = matches!(self.live.state, Some(Liveness::Dead | Liveness::Stopped));
        for s in self.sources() {
            s.table.set_producer_gone(gone);
        }
    }

    fn with_liveness(self) -> Vm {
        self.mark_gone();
        self
    }

    /// How often [`Vm::follow`] probes liveness at most
    /// ([`PROBE_INTERVAL`] unless set; zero probes on every call).
    pub fn set_probe_interval(&mut self, interval: Duration) {
        self.live.interval = interval;
    }

    /// Probes liveness when the interval has passed; the event for a
    /// change.
    fn follow_liveness(&mut self) -> Option<Event> {
        let dir = self.live.dir.clone()?;
        if self.live.last.elapsed() < self.live.interval {
            return None;
        }
        let old = self.live.state;
        let new = self.probe_liveness();
        match (old, new) {
            (Some(old), Some(new)) if old != new => Some(if new == Liveness::Dead {
                Event::ProducerDied { dir }
            } else {
                Event::LivenessChanged { dir, old, new }
            }),
            (None, Some(Liveness::Dead)) => Some(Event::ProducerDied { dir }),
            _ => None,
        }
    }

    /// Checks whether a producer restarted (see [`Source::restarted`]) and
    /// if so opens every table again; otherwise probes the producer's
    /// liveness when [`PROBE_INTERVAL`] (or [`Vm::set_probe_interval`])
    /// has passed since the last probe, and reports a change
    /// ([`Event::ProducerDied`], [`Event::LivenessChanged`]). `Ok(None)`:
    /// nothing changed.
    ///
    /// Call it after taking snapshots and before using them, so that no
    /// result mixes two producers: on `Some`, the snapshots are of the old
    /// tables.
    ///
    /// # Errors
    ///
    /// An I/O error checking a file; re-opening failed (as when first
    /// opened). On error the VM keeps its old tables.
    pub fn follow(&mut self) -> Result<Option<Event>> {
        let mut changed = None;
        for s in self.sources() {
            if s.restarted()? {
                changed = Some((s.describe(), s.kind(), s.table.generation()));
                break;
            }
        }
        let Some((table, kind, old_generation)) = changed else {
            return Ok(self.follow_liveness());
        };
        let reopen = |s: &Option<Source>| -> Result<std::result::Result<Option<Source>, PathBuf>> {
            let Some(s) = s else { return Ok(Ok(None)) };
            Ok(match s.reopen()? {
                Some(new) => Ok(Some(new)),
                None => Err(match &s.origin {
                    Origin::File(p) => p.clone(),
                    #[cfg(feature = "xen")]
                    Origin::Xen { .. } => PathBuf::new(),
                }),
            })
        };
        let vcpu = match reopen(&self.vcpu)? {
            Ok(v) => v,
            Err(path) => return Ok(Some(Event::Removed { path })),
        };
        let domain = match reopen(&self.domain)? {
            Ok(d) => d,
            Err(path) => return Ok(Some(Event::Removed { path })),
        };
        self.vcpu = vcpu;
        self.domain = domain;
        self.probe_liveness();
        Ok(Some(Event::Restarted {
            table,
            kind,
            old_generation,
            new_generation: self.generation(),
        }))
    }
}

/// What [`FileWatch::poll`] noticed at a table file's path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileChange {
    /// Another file than the one mapped last is there: a restarted
    /// producer published a new one (or the first one appeared).
    Replaced,
    /// The file is gone: its producer stopped, or is restarting. Reported
    /// once, until a file is mapped there again.
    Removed,
}

/// The file at a table's path, as mapped last, for callers that need the
/// raw mapping of whatever is there, valid table or not (a checker
/// reporting every violation of an invalid table), where [`Source`] holds
/// only valid tables.
#[derive(Debug)]
pub struct FileWatch {
    path: PathBuf,
    /// The file mapped last (or found there but not mappable).
    seen: Option<FileId>,
    /// No file is there, and the caller knows.
    gone: bool,
}

impl FileWatch {
    /// Watches `path`; nothing is mapped yet.
    pub fn new(path: impl Into<PathBuf>) -> FileWatch {
        FileWatch {
            path: path.into(),
            seen: None,
            gone: false,
        }
    }

    /// The path watched.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Maps the file at the path now, read-only, and remembers it as the
    /// one seen; `Ok(None)` when there is no file. Only what the table
    /// describes is mapped ([`MemView::map_table_file`]), and a symbolic
    /// link, FIFO, device or directory at the path is refused unopened.
    ///
    /// # Errors
    ///
    /// The file cannot be mapped (it is remembered anyway, so that
    /// [`FileWatch::poll`] waits for another one).
    pub fn map(&mut self) -> Result<Option<MemView<'static>>> {
        match MemView::map_table_file(&self.path) {
            Ok((view, id)) => {
                self.seen = Some(id);
                self.gone = false;
                Ok(Some(view))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.seen = None;
                self.gone = true;
                Ok(None)
            }
            Err(e) => {
                self.seen = FileId::of(&self.path).ok();
                Err(Error::io(&self.path, e))
            }
        }
    }

    /// Whether the file at the path changed since [`FileWatch::map`]: one
    /// `stat` system call. Nothing is mapped: call [`FileWatch::map`] on
    /// [`FileChange::Replaced`].
    ///
    /// # Errors
    ///
    /// An I/O error other than "not found" looking at the path.
    pub fn poll(&mut self) -> Result<Option<FileChange>> {
        match FileId::of(&self.path) {
            Ok(id) if Some(id) != self.seen => Ok(Some(FileChange::Replaced)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let first = !self.gone;
                self.gone = true;
                Ok(first.then_some(FileChange::Removed))
            }
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use vstats_abi::{
        layout::{Layout, LayoutParams},
        record::VCPU_STD_DESCRIPTORS,
        VCPU_STATS_MAGIC,
    };

    use super::*;

    /// Publishes a 2-vCPU table of `generation` at `dir/vcpu` (temp file,
    /// then rename, as producers do).
    fn publish(dir: &Path, generation: u64) {
        let layout = Layout::compute(&LayoutParams::vcpu_r2(2)).unwrap();
        let mut bytes = vec![0u8; layout.mapping_len() as usize];
        layout
            .write_headers(
                &mut bytes,
                VCPU_STATS_MAGIC,
                generation,
                VCPU_STD_DESCRIPTORS,
            )
            .unwrap();
        let tmp = dir.join(".vcpu.tmp");
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(tmp, dir.join(VCPU_FILE)).unwrap();
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "directories, files and locks are beyond Miri's isolation"
    )]
    fn follows_a_restart_then_a_removal() {
        let dir = std::env::temp_dir().join(format!("vstats-follow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(matches!(
            Vm::open_dir(&dir, "vm".into()),
            Err(Error::NoTable { .. })
        ));
        publish(&dir, 1);
        let mut vm = Vm::open_dir(&dir, "vm".into()).unwrap();
        assert_eq!((vm.generation(), vm.domain.is_none()), (1, true));
        assert_eq!(vm.follow().unwrap(), None, "nothing changed");
        publish(&dir, 2);
        assert_eq!(
            vm.follow().unwrap(),
            Some(Event::Restarted {
                table: dir.join(VCPU_FILE).display().to_string(),
                kind: TableKind::Vcpu,
                old_generation: 1,
                new_generation: 2,
            })
        );
        assert_eq!(vm.generation(), 2, "re-attached");
        assert_eq!(vm.follow().unwrap(), None);
        std::fs::remove_file(dir.join(VCPU_FILE)).unwrap();
        assert_eq!(
            vm.follow().unwrap(),
            Some(Event::Removed {
                path: dir.join(VCPU_FILE)
            })
        );
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "directories, files and locks are beyond Miri's isolation"
    )]
    fn an_rfc_v3_table_shows_vcpu_0_only_with_the_note() {
        use crate::sample::{SampleOptions, Sampler, Step, Value};
        let dir = std::env::temp_dir().join(format!("vstats-follow-v3-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // v3's page: the 16-byte header (offset 64, size 16, stride 64),
        // zero fill, vCPU 0 written (seq 2, running time 5000); vCPU 1's
        // record as v3's writer would leave it, zero but for its time.
        let mut page = vec![0u8; 4096];
        for (at, v) in [(0, VCPU_STATS_MAGIC), (4, 64), (8, 16), (12, 64), (64, 2)] {
            page[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        }
        page[72..80].copy_from_slice(&5_000u64.to_ne_bytes());
        page[136..144].copy_from_slice(&7_000u64.to_ne_bytes());
        std::fs::write(dir.join(VCPU_FILE), &page).unwrap();
        let vm = Vm::open_dir(&dir, "v3".into()).unwrap();
        assert!(vm.vcpu.as_ref().unwrap().table.is_rfc_v3());
        assert_eq!(vm.vcpu.as_ref().unwrap().table.nr_records(), 63);
        assert_eq!((vm.vcpu_records(), vm.note()), (1, Some(RFC_V3_NOTE)));
        let sum = vm.summary();
        assert_eq!((sum.vcpus, sum.slots, sum.note), (1, 63, Some(RFC_V3_NOTE)));
        let mut s = Sampler::new(vm, &SampleOptions::default()).unwrap();
        let Step::Sample(sample) = s.step().unwrap() else {
            panic!("a sample")
        };
        assert_eq!(sample.vcpus.len(), 1);
        assert_eq!(sample.vcpus[0].vcpu, 0);
        assert_eq!(sample.vcpus[0].values, [Value::Scalar(5_000)]);
        assert_eq!(sample.note, Some(RFC_V3_NOTE));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "directories, files and locks are beyond Miri's isolation"
    )]
    fn a_file_watch_sees_a_new_file_and_a_removal_once() {
        let dir = std::env::temp_dir().join(format!("vstats-filewatch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(VCPU_FILE);
        let mut w = FileWatch::new(&path);
        assert_eq!(w.path(), path);
        assert!(w.map().unwrap().is_none(), "no file yet");
        assert_eq!(w.poll().unwrap(), None, "its absence is known");
        std::fs::write(&path, b"not a table").unwrap();
        assert_eq!(w.poll().unwrap(), Some(FileChange::Replaced));
        let view = w.map().unwrap().expect("mapped, valid or not");
        assert_eq!(view.len(), 11);
        assert_eq!(w.poll().unwrap(), None, "the file mapped last");
        publish(&dir, 1);
        assert_eq!(w.poll().unwrap(), Some(FileChange::Replaced));
        // Kept mapped, as a follower does: the inode stays in use, so a
        // new file cannot reuse it.
        let _table = w.map().unwrap().expect("mapped");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(w.poll().unwrap(), Some(FileChange::Removed));
        assert_eq!(w.poll().unwrap(), None, "reported once");
        publish(&dir, 2);
        assert_eq!(w.poll().unwrap(), Some(FileChange::Replaced));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
