//! Publishing a VM's statistics live through vstats tables.
//!
//! A [`Publisher`] owns a VM that has not started yet and two tables,
//! published with `vstats-producer` as files in one directory (default
//! `<root>/<name>/`, see [`default_dir`]):
//!
//! * `vcpu`: one record per vCPU, an r3 table (clock: the host's
//!   `CLOCK_MONOTONIC`). Words 0..6 (bytes 8..56) are the standard record
//!   of `docs/abi.md`: the four runstate times (running, runnable, blocked,
//!   offline, in nanoseconds, accrued up to the last checkpoint), the base
//!   state and the checkpoint time as its entry time. Then, in the
//!   producer-specific area, every word of KVM's vCPU binary statistics in
//!   KVM's descriptor order, each statistic described by an r3 descriptor
//!   with KVM's name, kind, unit, base, exponent, size and bucket size.
//! * `domain`: one record: `vcpus_online`, `vcpus_max`, `uptime` (ns), then
//!   in the producer-specific area every word of KVM's VM-wide statistics,
//!   described the same way.
//!
//! KVM's cumulative counters can be reset (written through debugfs); the
//! published values are continued across a reset, never decreasing (P14,
//! [`crate::stats::Continued`]).
//!
//! # Who writes what
//!
//! Each record has exactly one writer at any time (P5 of the spec is a
//! single-writer protocol):
//!
//! * before the VM runs, [`Publisher::new`] writes every record once from
//!   the calling thread (every vCPU offline since creation, KVM counters as
//!   read), before the tables are renamed into place (P10), so no slot of
//!   an existing vCPU ever reads as unused;
//! * while the VM runs ([`Publisher::run`]), vCPU i's
//!   [`RecordWriter`] is mutably lent to a [`VcpuSink`] that vCPU i's
//!   thread owns: every report of that thread (a checkpoint) becomes one
//!   seq update of the four times, the state and its entry time, plus the
//!   KVM words when the report carries freshly read
//!   stats (the thread re-reads them at most once per
//!   [`crate::VmConfig::stats_refresh`]). The vCPU threads run inside a
//!   [`std::thread::scope`] opened by `run` ([`Vm::run_scoped`]), so the
//!   writers, which borrow the tables, provably outlive them: no `'static`
//!   and no `unsafe` are needed. The domain record is written by the thread
//!   that called `run`, every `period`;
//! * after [`crate::RunningVm::stop`] has joined the vCPU threads, the
//!   writers are back with `run`, which writes the final values of every
//!   record as of [`StoppedVm::stopped_ns`]: the tables then equal the
//!   [`StoppedVm`] that `run` returns.
//!
//! # Page size
//!
//! A record must lie inside one page. When the KVM words make a record
//! larger than 4 KiB, the table uses the smallest power-of-two page size
//! that holds it (the layout records it in `page_shift`; consumers check
//! records against it), rather than dropping histograms: every counter KVM
//! offers is published. On Linux 6.18 x86-64 a vCPU record is 1160 bytes
//! (140 KVM words, three 32-bucket histograms among them), so 4 KiB pages.
//!
//! # Examples
//!
//! ```
//! use std::ops::ControlFlow;
//! use vstats_kvm_vmm::{publish::Publisher, Error, Vm, VmConfig};
//!
//! let vm = match Vm::create(VmConfig::new(2)) {
//!     Err(Error::KvmUnavailable { .. }) => return,
//!     other => other.unwrap(),
//! };
//! let dir = std::env::temp_dir().join(format!("vstats-doc-{}", std::process::id()));
//! let mut publisher = Publisher::new(vm, &dir).unwrap();
//! assert!(dir.join("vcpu").exists() && dir.join("domain").exists());
//! let mut ticks = 0;
//! let period = std::time::Duration::from_millis(10);
//! let stopped = publisher
//!     .run(period, |_running| {
//!         ticks += 1;
//!         if ticks < 5 { ControlFlow::Continue(()) } else { ControlFlow::Break(()) }
//!     })
//!     .unwrap();
//! assert_eq!(stopped.vm.vcpus_online, 0);
//! publisher.remove().unwrap();
//! assert!(!dir.exists());
//! ```

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use vstats_abi::desc::{Base, Descriptor, DescriptorBuilder, Kind, Unit};
use vstats_abi::layout::Layout;
pub use vstats_abi::publish::{DEFAULT_ROOT, DOMAIN_FILE, MAX_NAME_LEN, VCPU_FILE};
use vstats_abi::record::{RECORD_PREFIX, VCPU_STATS_SIZE};
use vstats_abi::TableKind;
use vstats_producer::builder::{domain, vcpu, CounterId, TableBuilder};
use vstats_producer::publish::{root_from_env, Publication, PublishOptions};
use vstats_producer::shm::ShmTable;
use vstats_producer::{RecordWriter, TableSpec};

use crate::error::{Error, Result};
use crate::report::{VcpuReport, VcpuSink, VmReport};
use crate::stats::{Continued, KvmStatDesc, KvmStats};
use crate::vm::{RunningVm, StoppedVm, Vm};

/// Counter words of the standard vCPU record (the four times, the state
/// and its entry time); KVM's words follow, in the producer-specific area.
pub const VCPU_STD_WORDS: usize = ((VCPU_STATS_SIZE - RECORD_PREFIX) / 8) as usize;
/// Counter words of the standard domain fields; KVM's words follow.
pub const DOMAIN_STD_WORDS: usize = domain::UPTIME.word() + 1;
/// Longest sleep of [`Publisher::run_until`] between two checks of its
/// stop request.
pub const STOP_POLL: Duration = Duration::from_millis(20);
/// The domain record's default update period.
pub const DEFAULT_DOMAIN_PERIOD: Duration = Duration::from_millis(100);

/// Checks that `name` can name a publication directory, by the one rule
/// of [`vstats_abi::publish::check_name`]: 1 to [`MAX_NAME_LEN`] ASCII
/// letters, digits, `.`, `_`, `-`, `+` or `:`, and not `.` or `..`.
///
/// # Errors
///
/// [`Error::InvalidName`] with the rule broken.
pub fn check_name(name: &str) -> Result<()> {
    vstats_abi::publish::check_name(name).map_err(|reason| Error::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// `<root>/<name>`, after [`check_name`], where the root is
/// `$VSTATS_ROOT` when set, else this user's default root
/// ([`vstats_abi::publish::default_root`]: [`DEFAULT_ROOT`] for root).
///
/// # Errors
///
/// [`Error::InvalidName`].
pub fn default_dir(name: &str) -> Result<PathBuf> {
    check_name(name)?;
    Ok(root_from_env().join(name))
}

/// The vstats description of a KVM statistic, without its offset: KVM's
/// name, kind, unit, base and size, its exponent narrowed to `i8`, its
/// bucket size.
fn kvm_counter(d: &KvmStatDesc) -> Result<DescriptorBuilder<'_>> {
    let bad = |reason: String| Error::UnpublishableStat {
        name: d.name.clone(),
        reason,
    };
    let base = match d.base {
        10 => Base::POW10,
        2 => Base::POW2,
        _ => return Err(bad("its base is neither 10 nor 2".into())),
    };
    let exponent = i8::try_from(d.exponent)
        .map_err(|_| bad(format!("exponent {} does not fit an i8", d.exponent)))?;
    Ok(Descriptor::builder(&d.name)
        .count(d.size)
        .kind(Kind(d.kind))
        .unit(Unit(d.unit))
        .scale(base, exponent)
        .bucket_size(d.bucket_size))
}

/// The vstats descriptor of a KVM statistic whose first word lies at byte
/// `offset` of the record: KVM's name, kind, unit, base and size, its
/// exponent narrowed to `i8`, its bucket size.
///
/// # Errors
///
/// [`Error::UnpublishableStat`] when the base is not 10 or 2, the exponent
/// does not fit an `i8`, or the descriptor breaks a rule of the spec (R11,
/// R12: the name, an unknown kind or unit, an exponent of the wrong sign
/// for the unit, a bad size or bucket size).
pub fn kvm_descriptor(d: &KvmStatDesc, offset: u32) -> Result<Descriptor> {
    kvm_counter(d)?
        .at(offset)
        .map_err(|e| Error::UnpublishableStat {
            name: d.name.clone(),
            reason: e.to_string(),
        })
}

/// What a table will hold: its descriptors and its layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TablePlan {
    /// One r3 descriptor per KVM statistic, in record order (standard
    /// fields are not described).
    pub descriptors: Vec<Descriptor>,
    /// The layout (record size, page size, ...).
    pub layout: Layout,
    /// The table's magic.
    pub magic: u32,
}

impl TablePlan {
    /// The vCPU table of `nr_vcpus` vCPUs whose KVM statistics `kvm`
    /// describes.
    ///
    /// # Errors
    ///
    /// [`Error::UnpublishableStat`] for a statistic that cannot be
    /// described, [`Error::InvalidTable`] when the layout or the descriptor
    /// set breaks a rule (e.g. a record that no page of up to 1 GiB
    /// holds).
    pub fn vcpu(nr_vcpus: u32, kvm: &[KvmStatDesc]) -> Result<TablePlan> {
        plan(TableKind::Vcpu, TableBuilder::vcpu(nr_vcpus), kvm)
    }

    /// The domain table (one record) whose KVM statistics `kvm` describes.
    ///
    /// # Errors
    ///
    /// As [`TablePlan::vcpu`].
    pub fn domain(kvm: &[KvmStatDesc]) -> Result<TablePlan> {
        plan(TableKind::Domain, TableBuilder::domain(), kvm)
    }

    fn spec(&self, generation: u64) -> TableSpec<'_> {
        TableSpec {
            magic: self.magic,
            layout: self.layout,
            descriptors: &self.descriptors,
            generation,
        }
    }
}

/// The standard fields of `b`, then KVM's statistics in KVM's order; a
/// record larger than 4 KiB gets the smallest power-of-two page that
/// holds it (the builder's default).
fn plan(table: TableKind, mut b: TableBuilder, kvm: &[KvmStatDesc]) -> Result<TablePlan> {
    let invalid = |source| Error::InvalidTable { table, source };
    for d in kvm {
        let counter = kvm_counter(d)?;
        let _: CounterId = b.counter(counter).map_err(|e| match e {
            vstats_producer::Error::NameTaken { .. } => Error::UnpublishableStat {
                name: d.name.clone(),
                reason: format!("its name is already used in the {table} table"),
            },
            vstats_producer::Error::BadCounter { source, .. } => Error::UnpublishableStat {
                name: d.name.clone(),
                reason: source.to_string(),
            },
            other => invalid(other),
        })?;
    }
    let p = b.build().map_err(invalid)?;
    Ok(TablePlan {
        descriptors: p.descriptors,
        layout: p.layout,
        magic: p.magic,
    })
}

/// A vCPU's state as the record holds it (Xen's numbering, which
/// [`crate::RunState`] shares).
fn abi_state(state: crate::RunState) -> vstats_abi::RunState {
    vstats_abi::RunState(state.index() as u64)
}

/// One seq update of a vCPU record: the four times accrued up to
/// `entry_ns`, the state entered then (P11), and the KVM words when given.
fn write_vcpu(
    w: &mut RecordWriter<'_>,
    times: &[u64; 4],
    state: crate::RunState,
    entry_ns: u64,
    kvm: Option<&[u64]>,
) {
    w.update(|u| {
        u.put_words(vcpu::RUNSTATE, times);
        u.set_runstate(abi_state(state), entry_ns);
        u.set_words(VCPU_STD_WORDS, kvm.unwrap_or_default());
    });
}

/// One seq update of a vCPU record from a report: its times as of its
/// checkpoint (`now_ns`), the base state and the checkpoint as the entry
/// time (design 4.4: between checkpoints a consumer charges the base
/// state, as Xen does).
fn write_vcpu_report(w: &mut RecordWriter<'_>, r: &VcpuReport, kvm: Option<&[u64]>) {
    write_vcpu(w, &r.runstate_ns, r.state, r.now_ns, kvm);
}

/// One seq update of the domain record.
fn write_domain(w: &mut RecordWriter<'_>, online: u32, max: u32, uptime: u64, kvm: &[u64]) {
    w.update(|u| {
        u.put(domain::VCPUS_ONLINE, online.into());
        u.put(domain::VCPUS_MAX, max.into());
        u.put(domain::UPTIME, uptime);
        u.set_words(DOMAIN_STD_WORDS, kvm);
    });
}

fn write_domain_report(w: &mut RecordWriter<'_>, r: &VmReport) {
    write_domain(w, r.vcpus_online, r.vcpus_max, r.uptime_ns, &r.stats);
}

/// The sink a vCPU thread owns while the VM runs: it holds the vCPU's
/// record writer and the continuation of its KVM counters (both lent by
/// [`Publisher::run`]) and turns each report into one seq update.
struct RecordSink<'w, 't> {
    writer: &'w mut RecordWriter<'t>,
    continued: &'w mut Continued,
    /// The continued KVM words (reused: no allocation per update).
    words: Vec<u64>,
}

impl VcpuSink for RecordSink<'_, '_> {
    fn on_update(&mut self, r: &VcpuReport) {
        let kvm = if r.stats_fresh {
            self.words.clone_from(&r.stats);
            self.continued.apply(&mut self.words);
            Some(self.words.as_slice())
        } else {
            None
        };
        write_vcpu_report(self.writer, r, kvm);
    }
}

/// A VM and the two tables that publish it. See the [module](self) docs.
///
/// Dropping a `Publisher` removes the tables and the directory (if empty),
/// like [`Publisher::remove`] but ignoring errors.
pub struct Publisher {
    vm: Option<Vm>,
    vcpu_plan: TablePlan,
    domain_plan: TablePlan,
    // Dropped (unmapped) before the publication removes them.
    vcpu: ShmTable,
    domain: ShmTable,
    /// Per vCPU, then for the VM: KVM's counters continued across resets
    /// (P14).
    vcpu_continued: Vec<Continued>,
    domain_continued: Continued,
    /// The locked directory; `None` once removed.
    publication: Option<Publication>,
    dir: PathBuf,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("dir", &self.dir)
            .field("vcpu_layout", &self.vcpu_plan.layout)
            .field("domain_layout", &self.domain_plan.layout)
            .field("vm_taken", &self.vm.is_none())
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// Publishes `vm`'s tables in `dir` (created if missing, then locked
    /// against other producers) and writes every record once: each vCPU
    /// offline since the VM's creation, KVM's counters as read now, the
    /// domain with 0 vCPUs online.
    ///
    /// # Errors
    ///
    /// [`Error::UnpublishableStat`] or [`Error::InvalidTable`] when KVM's
    /// statistics cannot be described (checked before anything is created);
    /// [`Error::Publish`] when the directory or a table file cannot be
    /// created (with the path); [`Error::DirectoryInUse`]; an I/O error
    /// reading KVM's stats. Nothing is left behind on error.
    pub fn new(vm: Vm, dir: impl Into<PathBuf>) -> Result<Publisher> {
        Publisher::with_options(vm, dir, PublishOptions::default())
    }

    /// As [`Publisher::new`], with the modes and group of `opts` for the
    /// directory and the tables.
    ///
    /// # Errors
    ///
    /// As [`Publisher::new`].
    pub fn with_options(
        vm: Vm,
        dir: impl Into<PathBuf>,
        opts: PublishOptions,
    ) -> Result<Publisher> {
        let dir = dir.into();
        let nr_vcpus = vm.nr_vcpus();
        let first = vm.vcpu_stats(0).ok_or(Error::NoSuchVcpu(0))?;
        for id in 1..nr_vcpus {
            if vm.vcpu_stats(id).map(KvmStats::descs) != Some(first.descs()) {
                return Err(Error::MalformedStats(format!(
                    "vCPU {id}'s statistics differ from vCPU 0's; one table cannot describe both"
                )));
            }
        }
        let vcpu_plan = TablePlan::vcpu(nr_vcpus, first.descs())?;
        let domain_plan = TablePlan::domain(vm.vm_stats().descs())?;

        // Every record's first values, written before the tables are
        // renamed into place (P10): offline since creation, KVM's counters
        // as read now.
        let read = |stats: &KvmStats, what| {
            let mut buf = stats.new_buffer();
            stats.read(&mut buf).map_err(|e| Error::io(what, e))?;
            Ok::<_, Error>(buf)
        };
        let vcpu_values = (0..nr_vcpus)
            .map(|id| {
                let stats = vm.vcpu_stats(id).ok_or(Error::NoSuchVcpu(id))?;
                read(stats, "reading vCPU KVM stats")
            })
            .collect::<Result<Vec<_>>>()?;
        let mut vcpu_values = vcpu_values;
        let mut vm_values = read(vm.vm_stats(), "reading VM KVM stats")?;
        // The continuations start from the values published first.
        let mut vcpu_continued = vec![Continued::new(first.descs()); vcpu_values.len()];
        for (c, v) in vcpu_continued.iter_mut().zip(&mut vcpu_values) {
            c.apply(v);
        }
        let mut domain_continued = Continued::new(vm.vm_stats().descs());
        domain_continued.apply(&mut vm_values);
        let now = crate::monotonic_ns();
        let offline = now.saturating_sub(vm.created_ns());

        // On error, dropping the publication removes what it created.
        let mut publication = Publication::create_dir(&dir, opts)?;
        let generation = publication.generation();
        let vcpu =
            publication.publish_spec_seeded(VCPU_FILE, &vcpu_plan.spec(generation), |writers| {
                for (mut w, values) in writers.zip(&vcpu_values) {
                    let times = [0, 0, 0, offline];
                    write_vcpu(&mut w, &times, crate::RunState::Offline, now, Some(values));
                }
            })?;
        let domain = publication.publish_spec_seeded(
            DOMAIN_FILE,
            &domain_plan.spec(generation),
            |mut writers| {
                if let Some(mut w) = writers.next() {
                    write_domain(&mut w, 0, nr_vcpus, offline, &vm_values);
                }
            },
        )?;
        Ok(Publisher {
            vm: Some(vm),
            vcpu_plan,
            domain_plan,
            vcpu,
            domain,
            vcpu_continued,
            domain_continued,
            publication: Some(publication),
            dir,
        })
    }

    /// The publication directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the vCPU table.
    pub fn vcpu_path(&self) -> &Path {
        self.vcpu.path()
    }

    /// Path of the domain table.
    pub fn domain_path(&self) -> &Path {
        self.domain.path()
    }

    /// What the vCPU table holds.
    pub fn vcpu_plan(&self) -> &TablePlan {
        &self.vcpu_plan
    }

    /// What the domain table holds.
    pub fn domain_plan(&self) -> &TablePlan {
        &self.domain_plan
    }

    /// Runs the VM and publishes it until `tick` says stop, then stops the
    /// VM and writes the final values.
    ///
    /// The vCPU threads start inside a thread scope, each owning a sink
    /// that holds its vCPU's record writer. The calling thread then loops:
    /// it writes the domain record (vCPUs online and max, uptime, freshly
    /// read KVM VM stats: one seq update), calls `tick` with the running
    /// VM, and sleeps until the next multiple of `period`. When `tick`
    /// returns [`ControlFlow::Break`], the VM is stopped (every vCPU thread
    /// finishes its current update, goes offline, writes its final update
    /// and is joined); then every vCPU record and the domain record get
    /// their values as of [`StoppedVm::stopped_ns`], so the tables equal
    /// the returned [`StoppedVm`]. The tables stay published until
    /// [`Publisher::remove`] (or drop).
    ///
    /// `tick` is called at once after the first domain update: a caller
    /// can announce there that the tables are live. A stop it requests is
    /// noticed within one `period`; [`Publisher::run_until`] notices one
    /// sooner.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if the VM already ran; the errors of
    /// [`Vm::run_scoped`]; an I/O error reading the VM's KVM stats (the VM
    /// is stopped then). vCPU failures do not make `run` fail: see
    /// [`StoppedVm::vcpu_errors`].
    pub fn run(
        &mut self,
        period: Duration,
        tick: impl FnMut(&RunningVm<'_>) -> ControlFlow<()>,
    ) -> Result<StoppedVm> {
        self.run_until(period, || false, tick)
    }

    /// As [`Publisher::run`], and also stops when `stop` returns true:
    /// between two domain updates the calling thread sleeps at most
    /// [`STOP_POLL`] at a time and asks `stop`, so a stop request (a
    /// signal's flag, a deadline) is noticed within [`STOP_POLL`] whatever
    /// `period` is (even [`Duration::MAX`]).
    ///
    /// # Errors
    ///
    /// As [`Publisher::run`].
    pub fn run_until(
        &mut self,
        period: Duration,
        mut stop: impl FnMut() -> bool,
        mut tick: impl FnMut(&RunningVm<'_>) -> ControlFlow<()>,
    ) -> Result<StoppedVm> {
        let vm = self
            .vm
            .take()
            .ok_or_else(|| Error::InvalidConfig("the publisher's VM has already run".into()))?;
        let (_, writers) = self.vcpu.split();
        // One writer per padded cacheline (128 bytes on x86-64, where the
        // adjacent-line prefetcher pulls lines in pairs): each vCPU thread
        // updates its writer's private seq, and writers sharing a
        // cacheline slow each other.
        let mut vcpu_writers: Vec<CachePadded<RecordWriter<'_>>> =
            writers.map(CachePadded::new).collect();
        let (_, mut writers) = self.domain.split();
        let mut domain_writer = writers.next().ok_or(Error::InvalidConfig(
            "the domain table has no record".into(),
        ))?;

        let vcpu_continued = &mut self.vcpu_continued;
        let domain_continued = &mut self.domain_continued;
        let stopped = std::thread::scope(|scope| {
            let sinks = vcpu_writers
                .iter_mut()
                .zip(vcpu_continued.iter_mut())
                .map(|(writer, continued)| {
                    let sink: Box<dyn VcpuSink + '_> = Box::new(RecordSink {
                        writer,
                        continued,
                        words: Vec::new(),
                    });
                    Some(sink)
                })
                .collect();
            let running = vm.run_scoped(scope, sinks)?;
            // `None`: the next update is beyond what an Instant holds.
            let mut next = Some(Instant::now());
            'updates: loop {
                let mut report = running.vm_report()?;
                domain_continued.apply(&mut report.stats);
                write_domain_report(&mut domain_writer, &report);
                if tick(&running).is_break() || stop() {
                    break;
                }
                next = next.and_then(|n| n.checked_add(period));
                loop {
                    let now = Instant::now();
                    let wait = match next {
                        Some(n) if n <= now => {
                            next = Some(now);
                            break;
                        }
                        Some(n) => n.duration_since(now).min(STOP_POLL),
                        None => STOP_POLL,
                    };
                    std::thread::sleep(wait);
                    if stop() {
                        break 'updates;
                    }
                }
            }
            running.stop()
        })?;

        // The vCPU threads are joined: their writers are ours again.
        for ((w, r), c) in vcpu_writers
            .iter_mut()
            .zip(&stopped.vcpus)
            .zip(&mut self.vcpu_continued)
        {
            let mut words = r.stats.clone();
            c.apply(&mut words);
            write_vcpu_report(w, r, Some(&words));
        }
        let mut words = stopped.vm.stats.clone();
        self.domain_continued.apply(&mut words);
        let vm = &stopped.vm;
        write_domain(
            &mut domain_writer,
            vm.vcpus_online,
            vm.vcpus_max,
            vm.uptime_ns,
            &words,
        );
        Ok(stopped)
    }

    /// Removes both tables and the directory if it is then empty.
    /// Consumers that have a table mapped keep their mapping.
    ///
    /// # Errors
    ///
    /// [`Error::Publish`] naming the file or directory that could not be
    /// removed (a directory that is not empty is left, without error).
    pub fn remove(mut self) -> Result<()> {
        self.remove_files()
    }

    fn remove_files(&mut self) -> Result<()> {
        match self.publication.take() {
            Some(p) => Ok(p.remove()?),
            None => Ok(()),
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.remove_files();
    }
}

#[cfg(test)]
mod tests {
    use vstats_producer::builder::page_size_for;

    use super::*;
    use crate::stats::{KIND_CUMULATIVE, KIND_LOG_HIST, UNIT_NONE, UNIT_SECONDS};

    fn kvm(name: &str, kind: u8, unit: u8, exponent: i16, size: u32) -> KvmStatDesc {
        KvmStatDesc {
            name: name.into(),
            kind,
            unit,
            base: 10,
            exponent,
            size,
            offset: 0,
            bucket_size: 0,
        }
    }

    #[test]
    fn names() {
        for ok in ["vm1", "t-123", "a.b_c+d:e", &"x".repeat(64)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a/b",
            "/",
            ".",
            "..",
            "a b",
            "é",
            &"x".repeat(65),
            "a\0",
        ] {
            assert!(
                matches!(check_name(bad), Err(Error::InvalidName { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            default_dir("vm1").unwrap(),
            Path::new("/dev/shm/vstats/vm1")
        );
    }

    #[test]
    fn kvm_words_follow_the_standard_fields() {
        let descs = [
            kvm("exits", KIND_CUMULATIVE, UNIT_NONE, 0, 1),
            kvm("halt_wait_hist", KIND_LOG_HIST, UNIT_SECONDS, -9, 32),
            kvm("io_exits", KIND_CUMULATIVE, UNIT_NONE, 0, 1),
        ];
        let p = TablePlan::vcpu(4, &descs).unwrap();
        // Only KVM's statistics are described (r3), in the producer area
        // right after the 56-byte standard record.
        let std = VCPU_STATS_SIZE;
        assert_eq!(p.descriptors.len(), 3);
        assert_eq!(p.descriptors[0].name_str(), Some("exits"));
        assert_eq!(p.descriptors[0].offset, std);
        assert_eq!(p.descriptors[1].offset, std + 8);
        assert_eq!(p.descriptors[1].count, 32);
        assert_eq!(p.descriptors[1].kind, Kind::LOG2_HIST);
        assert_eq!(p.descriptors[1].exponent, -9);
        assert_eq!(p.descriptors[2].offset, std + 8 + 256);
        assert_eq!(p.layout.record_extent(), std + 8 + 256 + 8);
        assert_eq!((p.layout.size, p.layout.abi_size), (std, std));
        assert_eq!((p.layout.xstats_offset, p.layout.xdesc_count), (std, 3));
        assert_eq!(p.layout.clock, vstats_abi::header::CLOCK_HOST_MONOTONIC);
        assert_eq!(p.layout.page_size, 4096);
        assert_eq!(VCPU_STD_WORDS, 6);
        let d = TablePlan::domain(&descs[..1]).unwrap();
        assert_eq!(
            d.descriptors[0].offset,
            vstats_abi::record::DOMAIN_STATS_SIZE
        );
        assert_eq!(d.layout.nr_records, 1);
    }

    #[test]
    fn big_records_get_big_pages() {
        // 600 words: 4840-byte record, 8 KiB pages.
        let descs = [kvm("big_hist", KIND_LOG_HIST, UNIT_NONE, 0, 600)];
        let p = TablePlan::vcpu(2, &descs).unwrap();
        assert_eq!(p.layout.page_size, 8192);
        assert_eq!(page_size_for(4096), 4096);
        assert_eq!(page_size_for(4097), 8192);
        assert_eq!(page_size_for(8), 4096);
    }

    #[test]
    fn unpublishable_stats_are_refused_by_name() {
        let mut wide = kvm("wide", KIND_CUMULATIVE, UNIT_SECONDS, -200, 1);
        let err = TablePlan::vcpu(1, &[wide.clone()]).unwrap_err();
        assert!(
            err.to_string().contains("\"wide\"") && err.to_string().contains("i8"),
            "{err}"
        );
        wide.exponent = 3; // seconds scale down only (R12)
        assert!(matches!(
            TablePlan::vcpu(1, &[wide.clone()]),
            Err(Error::UnpublishableStat { .. })
        ));
        wide.exponent = 0;
        wide.base = 0;
        assert!(matches!(
            TablePlan::vcpu(1, &[wide]),
            Err(Error::UnpublishableStat { .. })
        ));
        let clash = kvm("uptime", KIND_CUMULATIVE, UNIT_NONE, 0, 1);
        assert!(matches!(
            TablePlan::domain(&[clash]),
            Err(Error::UnpublishableStat { .. })
        ));
        let twice = kvm("exits", KIND_CUMULATIVE, UNIT_NONE, 0, 1);
        assert!(TablePlan::vcpu(1, &[twice.clone(), twice]).is_err());
        // r3 bounds no descriptor count: 1021 statistics are fine; a
        // record no page of up to 1 GiB holds is not.
        let many: Vec<_> = (0..1021)
            .map(|i| kvm(&format!("s{i}"), KIND_CUMULATIVE, UNIT_NONE, 0, 1))
            .collect();
        assert!(TablePlan::vcpu(1, &many).is_ok());
        let huge: Vec<_> = (0..5)
            .map(|i| kvm(&format!("h{i}"), KIND_LOG_HIST, UNIT_NONE, 0, 1 << 25))
            .collect();
        assert!(matches!(
            TablePlan::vcpu(1, &huge),
            Err(Error::InvalidTable {
                table: TableKind::Vcpu,
                ..
            })
        ));
    }
}
