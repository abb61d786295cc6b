//! The VM-less producer: synthetic vCPU and domain tables published with
//! `vstats-producer`, for `demo` on hosts without `/dev/kvm` and for
//! tests. Its counters follow a fixed model of the time since creation,
//! so that runstate times add up to the wall time exactly and every
//! cumulative counter grows at a known rate.

use std::{
    fs, io,
    path::{Path, PathBuf},
    time::Instant,
};

use vstats_abi::{
    desc::{Base, Descriptor, Kind, Unit},
    layout::{Layout, LayoutParams, DEFAULT_CACHELINE, DEFAULT_PAGE_SIZE},
    record::{DOMAIN_STATS_SIZE, DOMAIN_STD_DESCRIPTORS, VCPU_STATS_SIZE, VCPU_STD_DESCRIPTORS},
    DOMAIN_STATS_MAGIC, VCPU_STATS_MAGIC,
};
use vstats_producer::{
    shm::{fresh_generation, ShmTable},
    RecordWriter, TableSpec,
};

use crate::target::{DOMAIN_FILE, VCPU_FILE};

/// Buckets of the synthetic `halt_wait_hist` (as KVM's).
pub const HIST_BUCKETS: u32 = 32;

fn push(
    descs: &mut Vec<Descriptor>,
    next: &mut u32,
    name: &str,
    count: u32,
    kind: Kind,
    unit: Unit,
    exp: i8,
) -> io::Result<()> {
    let d = Descriptor::new(name, *next, count, kind, unit, Base::POW10, exp, 0)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    descs.push(d);
    *next += 8 * count;
    Ok(())
}

/// The vCPU table's descriptors: the four standard runstate times, then
/// `exits`, `io_exits`, `halt_exits` (counts), `halt_wait_ns` (ns),
/// `halt_wait_hist` (log2 histogram, ns), `max_halt_wait_ns` (peak, ns),
/// `pending_irqs` (instant). Returns them and the record size.
///
/// # Errors
///
/// Never in practice (the descriptors are valid); an `InvalidInput` error
/// otherwise.
pub fn vcpu_descriptors() -> io::Result<(Vec<Descriptor>, u32)> {
    let mut d = VCPU_STD_DESCRIPTORS.to_vec();
    let mut next = VCPU_STATS_SIZE;
    for n in ["exits", "io_exits", "halt_exits"] {
        push(&mut d, &mut next, n, 1, Kind::CUMULATIVE, Unit::NONE, 0)?;
    }
    push(
        &mut d,
        &mut next,
        "halt_wait_ns",
        1,
        Kind::CUMULATIVE,
        Unit::SECONDS,
        -9,
    )?;
    push(
        &mut d,
        &mut next,
        "halt_wait_hist",
        HIST_BUCKETS,
        Kind::LOG2_HIST,
        Unit::SECONDS,
        -9,
    )?;
    push(
        &mut d,
        &mut next,
        "max_halt_wait_ns",
        1,
        Kind::PEAK,
        Unit::SECONDS,
        -9,
    )?;
    push(
        &mut d,
        &mut next,
        "pending_irqs",
        1,
        Kind::INSTANT,
        Unit::NONE,
        0,
    )?;
    Ok((d, next))
}

/// The domain table's descriptors: the standard `vcpus_online`,
/// `vcpus_max`, `uptime`, then `remote_tlb_flush` (count). Returns them
/// and the record size.
///
/// # Errors
///
/// As [`vcpu_descriptors`].
pub fn domain_descriptors() -> io::Result<(Vec<Descriptor>, u32)> {
    let mut d = DOMAIN_STD_DESCRIPTORS.to_vec();
    let mut next = DOMAIN_STATS_SIZE;
    push(
        &mut d,
        &mut next,
        "remote_tlb_flush",
        1,
        Kind::CUMULATIVE,
        Unit::NONE,
        0,
    )?;
    Ok((d, next))
}

fn layout(nr: u32, size: u32, abi: u32, descs: usize) -> io::Result<Layout> {
    Layout::compute(&LayoutParams {
        nr_records: nr,
        record_size: size,
        abi_size: abi,
        desc_count: descs as u32,
        page_size: DEFAULT_PAGE_SIZE,
        cacheline: DEFAULT_CACHELINE,
    })
    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

/// Publishes a synthetic vCPU table of `nr_vcpus` slots at `vcpu` and a
/// domain table at `domain` (either path may be anywhere), one
/// generation for both. Records are not written yet (every slot unused).
///
/// # Errors
///
/// I/O errors creating the files.
pub fn create_tables(
    vcpu: &Path,
    domain: &Path,
    nr_vcpus: u32,
) -> io::Result<(ShmTable, ShmTable)> {
    let generation = fresh_generation();
    let (vd, vsize) = vcpu_descriptors()?;
    let (dd, dsize) = domain_descriptors()?;
    let v = ShmTable::create(
        vcpu,
        &TableSpec {
            magic: VCPU_STATS_MAGIC,
            layout: layout(nr_vcpus, vsize, VCPU_STATS_SIZE, vd.len())?,
            descriptors: &vd,
            generation,
        },
    )?;
    let d = ShmTable::create(
        domain,
        &TableSpec {
            magic: DOMAIN_STATS_MAGIC,
            layout: layout(1, dsize, DOMAIN_STATS_SIZE, dd.len())?,
            descriptors: &dd,
            generation,
        },
    )?;
    Ok((v, d))
}

/// The model: what every counter of vCPU `i` of `n` holds `t` ns after
/// creation, in record word order (word 0 at byte 8).
pub fn vcpu_words(i: u32, t: u64) -> Vec<u64> {
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
        for (k, &v) in words.iter().enumerate() {
            u.set(k, v);
        }
    });
}

/// A running synthetic producer: two tables in a directory and the time
/// they were created.
#[derive(Debug)]
pub struct Synth {
    dir: PathBuf,
    vcpu: ShmTable,
    domain: ShmTable,
    nr_vcpus: u32,
    created: Instant,
}

impl Synth {
    /// Publishes `<dir>/vcpu` and `<dir>/domain` and writes every record
    /// once (time 0).
    ///
    /// # Errors
    ///
    /// I/O errors creating the directory or the files.
    pub fn new(dir: &Path, nr_vcpus: u32) -> io::Result<Synth> {
        let (vcpu, domain) = create_tables(&dir.join(VCPU_FILE), &dir.join(DOMAIN_FILE), nr_vcpus)?;
        let mut s = Synth {
            dir: dir.to_owned(),
            vcpu,
            domain,
            nr_vcpus,
            created: Instant::now(),
        };
        s.update();
        Ok(s)
    }

    /// Writes every record with the model's values as of now.
    pub fn update(&mut self) {
        let t = u64::try_from(self.created.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let (_, writers) = self.vcpu.split();
        for (i, mut w) in (0u32..).zip(writers) {
            write(&mut w, &vcpu_words(i, t));
        }
        let (_, mut writers) = self.domain.split();
        if let Some(mut w) = writers.next() {
            write(&mut w, &domain_words(self.nr_vcpus, t));
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes both tables and the directory (if then empty).
    ///
    /// # Errors
    ///
    /// I/O errors removing the files.
    pub fn remove(self) -> io::Result<()> {
        self.vcpu.unlink()?;
        self.domain.unlink()?;
        match fs::remove_dir(&self.dir) {
            Err(e)
                if e.kind() != io::ErrorKind::DirectoryNotEmpty
                    && e.kind() != io::ErrorKind::NotFound =>
            {
                Err(e)
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_adds_up() {
        let (vd, vsize) = vcpu_descriptors().unwrap();
        assert_eq!(vcpu_words(0, 0).len() as u32, (vsize - 8) / 8);
        assert_eq!(vd.len(), 4 + 7);
        for i in 0..8 {
            let w = vcpu_words(i, 1_234_567_891);
            assert_eq!(w[..4].iter().sum::<u64>(), 1_234_567_891);
        }
        let (dd, dsize) = domain_descriptors().unwrap();
        assert_eq!(domain_words(2, 5).len() as u32, (dsize - 8) / 8);
        assert_eq!(dd.len(), 4);
    }
}
