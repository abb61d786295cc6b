//! A VM-less producer: a synthetic VM's vCPU and domain tables, published
//! through [`Publication`] with plausible made-up values. For demos on
//! hosts without a hypervisor, and for tests of consumers (a front end,
//! an exporter) that need a live, changing table without a VM.
//!
//! The counters follow a fixed model of the time since creation
//! ([`vcpu_words`], [`domain_words`]), so runstate times add up to the
//! wall time exactly and every cumulative counter grows at a known rate.
//! Each update stamps the vCPU's state (running) with the update's host
//! `CLOCK_MONOTONIC` time as its entry time, and every record is written
//! before the tables are published (P10).
//!
//! The vCPU table names no clock ([`CLOCK_NONE`]): a model vCPU splits
//! every interval between its states, so no single current state is true
//! between two updates, and a consumer that extrapolated (R26) would charge
//! the time since the last update to `running` and show shares that depend
//! on when it sampled. Without a clock, consumers take the model's times as
//! written (their shares are the model's fractions) and still read the
//! state and entry time.
//!
//! ```
//! use vstats_producer::synth::Synth;
//! # if cfg!(miri) { return Ok(()); } // files: beyond Miri's isolation
//!
//! let dir = std::env::temp_dir().join(format!("synth-doc-{}", std::process::id()));
//! let mut vm = Synth::new(&dir, 2)?;
//! assert!(dir.join("vcpu").exists() && dir.join("domain").exists());
//! vm.update(); // the model's values as of now
//! vm.remove()?;
//! # Ok::<(), vstats_producer::publish::PublishError>(())
//! ```

use std::{
    path::{Path, PathBuf},
    time::Instant,
    vec,
    vec::Vec,
};

use crate::{
    builder::{TableBuilder, TablePlan},
    publish::{Publication, PublishError, PublishOptions},
    shm::ShmTable,
    RecordWriter,
};
use vstats_abi::{
    desc::{Descriptor, Kind},
    header::CLOCK_NONE,
    publish::{DOMAIN_FILE, VCPU_FILE},
    RunState,
};

/// One record of [`frozen_r3`]: the four runstate times, the current state
/// and its entry time.
pub type FrozenRecord = ([u64; 4], u64, u64);

/// The bytes of an r3 vCPU table whose record `i` holds `records[i]` with
/// seq `seq` (even: written once), in time base `clock`, for tests of
/// up-to-date times (R26): a vCPU that stays in one state and is never
/// written again, as a KVM guest spinning without exits.
///
/// # Errors
///
/// The abi crate's layout errors, as [`crate::Error`]: too many records
/// for a layout.
pub fn frozen_r3_image(clock: u32, seq: u32, records: &[FrozenRecord]) -> crate::Result<Vec<u8>> {
    use vstats_abi::{
        layout::{Layout, LayoutParams},
        record::PAD_INACTIVE,
        VCPU_STATS_MAGIC,
    };
    let nr = u32::try_from(records.len()).unwrap_or(u32::MAX);
    let p = LayoutParams {
        clock,
        ..LayoutParams::vcpu_r3(nr)
    };
    let l = Layout::compute(&p)?;
    let len = usize::try_from(l.mapping_len()).unwrap_or(usize::MAX);
    let mut b = vec![0u8; len];
    l.write_headers(&mut b, VCPU_STATS_MAGIC, 1, &[])?;
    l.fill_records(&mut b)?;
    for (i, (times, state, entry)) in (0u32..).zip(records) {
        let Some(r) = l.record_offset(i).and_then(|r| usize::try_from(r).ok()) else {
            continue;
        };
        b[r..r + 4].copy_from_slice(&seq.to_ne_bytes());
        b[r + 4..r + 8].copy_from_slice(&PAD_INACTIVE.to_ne_bytes());
        for (k, w) in times.iter().chain([state, entry]).enumerate() {
            b[r + 8 + 8 * k..r + 16 + 8 * k].copy_from_slice(&w.to_ne_bytes());
        }
    }
    Ok(b)
}

/// Publishes `dir/vcpu` as [`frozen_r3_image`] with clock 1 (the host's
/// `CLOCK_MONOTONIC`); the directory's liveness lock is held while the
/// returned [`Publication`] lives.
///
/// # Errors
///
/// As [`frozen_r3_image`] and [`Publication::create_dir`], and writing
/// the file.
pub fn frozen_r3(dir: &Path, records: &[FrozenRecord]) -> Result<Publication, PublishError> {
    let path = dir.join(VCPU_FILE);
    let b = frozen_r3_image(vstats_abi::header::CLOCK_HOST_MONOTONIC, 2, records).map_err(
        |source| PublishError::Table {
            path: path.clone(),
            source,
        },
    )?;
    let publication = Publication::create_dir(dir, PublishOptions::default())?;
    std::fs::write(&path, &b).map_err(|source| PublishError::Io {
        op: crate::publish::Op::Create,
        path,
        source,
    })?;
    Ok(publication)
}

/// What [`marked_dir`] appends to a directory's name.
pub const SYNTHETIC_SUFFIX: &str = "-synthetic";

/// `dir` with [`SYNTHETIC_SUFFIX`] appended to its last component: where a
/// front end that falls back to a [`Synth`] in place of a VM published as
/// `dir` publishes it, so that the VM's name (the directory's) says that
/// its values are made up.
pub fn marked_dir(dir: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(dir.file_name().unwrap_or_default());
    name.push(SYNTHETIC_SUFFIX);
    dir.with_file_name(name)
}

/// Buckets of the synthetic `halt_wait_hist` (as KVM's).
pub const HIST_BUCKETS: u32 = 32;

/// The vCPU table of `nr_vcpus` records, with no clock (see the module
/// docs): the standard record (four runstate times, state, entry time),
/// then in the producer area `exits`, `io_exits`, `halt_exits` (counts), `halt_wait_ns`
/// (ns), `halt_wait_hist` (log2 histogram, ns), `max_halt_wait_ns` (peak,
/// ns), `pending_irqs` (instant).
///
/// # Errors
///
/// Never in practice (the descriptors are valid); the producer's error
/// otherwise.
pub fn vcpu_plan(nr_vcpus: u32) -> crate::Result<TablePlan> {
    let mut b = TableBuilder::vcpu(nr_vcpus);
    b.clock(CLOCK_NONE);
    for n in ["exits", "io_exits", "halt_exits"] {
        b.counter(Descriptor::builder(n))?;
    }
    b.counter(Descriptor::builder("halt_wait_ns").nanoseconds())?;
    b.counter(
        Descriptor::builder("halt_wait_hist")
            .histogram(Kind::LOG2_HIST, HIST_BUCKETS, 0)
            .nanoseconds(),
    )?;
    b.counter(
        Descriptor::builder("max_halt_wait_ns")
            .kind(Kind::PEAK)
            .nanoseconds(),
    )?;
    b.counter(Descriptor::builder("pending_irqs").kind(Kind::INSTANT))?;
    b.build()
}

/// The domain table: the standard `vcpus_online`, `vcpus_max`, `uptime`,
/// then `remote_tlb_flush` (count).
///
/// # Errors
///
/// As [`vcpu_plan`].
pub fn domain_plan() -> crate::Result<TablePlan> {
    let mut b = TableBuilder::domain();
    b.counter(Descriptor::builder("remote_tlb_flush"))?;
    b.build()
}

/// The model: what every counter of vCPU `i` holds `t` ns after
/// creation, in record word order (word 0 at byte 8), for a VM created at
/// `created_ns` (host `CLOCK_MONOTONIC`): the state is running, entered at
/// `created_ns + t`.
pub fn vcpu_words(i: u32, t: u64, created_ns: u64) -> Vec<u64> {
    let pct = u64::from(20 + (15 * i) % 60);
    let running = t / 100 * pct;
    let runnable = t / 100 * 3;
    let blocked = t - running - runnable;
    let exits = t / 1_000_000 * u64::from(i + 1);
    let halts = exits / 4;
    let mut w = vec![
        running,
        runnable,
        blocked,
        0,
        RunState::RUNNING.0,
        created_ns.saturating_add(t),
        exits,
        exits / 2,
        halts,
        blocked,
    ];
    let mut hist = vec![0u64; HIST_BUCKETS as usize];
    hist[21] = halts; // about 1 ms each: [2^20, 2^21) ns
    w.extend(hist);
    w.push(if halts > 0 { 2_000_000 } else { 0 });
    w.push(u64::from(i % 2));
    w
}

/// The model of the domain record `t` ns after creation, `n` vCPUs.
pub fn domain_words(n: u32, t: u64) -> Vec<u64> {
    vec![u64::from(n), u64::from(n), t, t / 10_000_000]
}

fn write(w: &mut RecordWriter<'_>, words: &[u64]) {
    w.update(|u| {
        u.set_words(0, words);
    });
}

/// A running synthetic producer: two tables in a locked publication
/// directory and the time they were created.
#[derive(Debug)]
pub struct Synth {
    // Dropped (unmapped) before the publication removes them.
    vcpu: ShmTable,
    domain: ShmTable,
    publication: Publication,
    nr_vcpus: u32,
    created: Instant,
    created_ns: u64,
}

impl Synth {
    /// Publishes `<dir>/vcpu` and `<dir>/domain` (one generation for
    /// both, the directory locked against other producers) and writes
    /// every record once (time 0).
    ///
    /// # Errors
    ///
    /// The publication's errors: creating or locking the directory (one
    /// producer per directory), creating the files.
    pub fn new(dir: &Path, nr_vcpus: u32) -> Result<Synth, PublishError> {
        let mut publication = Publication::create_dir(dir, PublishOptions::default())?;
        let table = |e| PublishError::Table {
            path: dir.to_path_buf(),
            source: e,
        };
        let (created, created_ns) = (Instant::now(), crate::monotonic_ns());
        // P10: every record is written before its table is published.
        let vcpu = publication.publish_seeded(
            VCPU_FILE,
            &vcpu_plan(nr_vcpus).map_err(table)?,
            |writers| {
                for (i, mut w) in (0u32..).zip(writers) {
                    write(&mut w, &vcpu_words(i, 0, created_ns));
                }
            },
        )?;
        let domain = publication.publish_seeded(
            DOMAIN_FILE,
            &domain_plan().map_err(table)?,
            |mut writers| {
                if let Some(mut w) = writers.next() {
                    write(&mut w, &domain_words(nr_vcpus, 0));
                }
            },
        )?;
        let mut s = Synth {
            vcpu,
            domain,
            publication,
            nr_vcpus,
            created,
            created_ns,
        };
        s.update();
        Ok(s)
    }

    /// Writes every record with the model's values as of now.
    pub fn update(&mut self) {
        let t = u64::try_from(self.created.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let (_, writers) = self.vcpu.split();
        for (i, mut w) in (0u32..).zip(writers) {
            write(&mut w, &vcpu_words(i, t, self.created_ns));
        }
        let (_, mut writers) = self.domain.split();
        if let Some(mut w) = writers.next() {
            write(&mut w, &domain_words(self.nr_vcpus, t));
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        self.publication.dir()
    }

    /// Removes both tables (those this producer created) and the
    /// directory (if it created it and it is then empty).
    ///
    /// # Errors
    ///
    /// The publication's error removing a file or the directory.
    pub fn remove(self) -> Result<(), PublishError> {
        let Synth {
            vcpu,
            domain,
            publication,
            ..
        } = self;
        drop((vcpu, domain));
        publication.remove()
    }

    /// Stops as a killed producer would: the tables stay as they are (not
    /// retired) and the lock is released, so a new producer can take the
    /// name over (a restart).
    pub fn crash(self) {
        let Synth {
            vcpu,
            domain,
            publication,
            ..
        } = self;
        vcpu.forsake();
        domain.forsake();
        publication.abandon();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_adds_up() {
        let v = vcpu_plan(3).unwrap();
        assert_eq!(
            vcpu_words(0, 0, 0).len() as u32,
            (v.layout.record_extent() - 8) / 8
        );
        // Only the producer's 7 counters are described (r3).
        assert_eq!(v.descriptors.len(), 7);
        assert_eq!(v.layout.clock, CLOCK_NONE, "nothing to extrapolate");
        for i in 0..8 {
            let w = vcpu_words(i, 1_234_567_891, 5);
            assert_eq!(w[..4].iter().sum::<u64>(), 1_234_567_891);
            assert_eq!(w[4..6], [RunState::RUNNING.0, 1_234_567_896]);
        }
        let d = domain_plan().unwrap();
        assert_eq!(
            domain_words(2, 5).len() as u32,
            (d.layout.record_extent() - 8) / 8
        );
        assert_eq!(d.descriptors.len(), 1);
    }

    #[test]
    fn marked_dirs_say_synthetic() {
        assert_eq!(
            marked_dir(Path::new("/r/demo-7")),
            Path::new("/r/demo-7-synthetic")
        );
    }
}
