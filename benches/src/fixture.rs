//! Tables published exactly as a producer publishes them: a file under
//! `/dev/shm` created with [`ShmTable`], opened by the consumer with
//! [`Table::open`] (its own read-only mapping), plus a third read-only
//! mapping (a [`MemView`]) for the protocol-only loops and the `memcpy`
//! baseline. Dropping a fixture removes its files.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
};

use anyhow::{anyhow, Context, Result};
use vstats_abi::{
    desc::Descriptor,
    layout::{Layout, LayoutParams},
    record::RECORD_PREFIX,
    VCPU_STATS_MAGIC,
};
use vstats_consumer::{mem::MemView, Table};
use vstats_producer::{shm::ShmTable, TableSpec, Writers};

use crate::raw::record_ref;

/// A directory of its own for one benchmark's files: under `/dev/shm`
/// (tmpfs) when it exists, else the temporary directory. Removed, with
/// everything in it, on drop.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `<shm>/vstats-bench-<pid>-<n>-<name>`.
    ///
    /// # Errors
    ///
    /// Creating the directory.
    pub fn new(name: &str) -> Result<ScratchDir> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let root = Path::new("/dev/shm");
        let root = if root.is_dir() {
            root.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = root.join(format!("vstats-bench-{}-{n}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(ScratchDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// One record seen through a [`MemView`]: its seq word and its counter
/// words `[8, size)`.
///
/// The mapping is read-only: only `Relaxed` loads through these (and the
/// seq protocol's reader, which does nothing else). Any other atomic
/// operation on read-only memory is undefined behaviour.
#[derive(Clone, Copy, Debug)]
pub struct RecordRef<'a> {
    /// The seq word.
    pub seq: &'a AtomicU32,
    /// The counter words.
    pub words: &'a [AtomicU64],
}

/// A published table with a consumer attached. Field order is drop order:
/// the mappings go before the directory.
#[derive(Debug)]
pub struct ShmFixture {
    table: ShmTable,
    consumer: Table,
    pub(crate) view: MemView<'static>,
    layout: Layout,
    dir: ScratchDir,
}

impl ShmFixture {
    /// A vCPU table of `nr` standard r3 records (56 bytes: the four
    /// runstate times, the state and its entry time), laid out for a
    /// `cacheline`-byte cacheline (the stride is `max(64, cacheline)`
    /// rounded to a power of two).
    ///
    /// # Errors
    ///
    /// An invalid layout, or creating, mapping or opening the file.
    pub fn vcpu(name: &str, nr: u32, cacheline: u32) -> Result<ShmFixture> {
        let params = LayoutParams {
            cacheline,
            ..LayoutParams::vcpu(nr)
        };
        let layout = Layout::compute(&params).map_err(|e| anyhow!("layout: {e}"))?;
        ShmFixture::new(name, layout, &[])
    }

    /// A vCPU table of any layout and descriptors (e.g. a KVM VMM's plan).
    ///
    /// # Errors
    ///
    /// As [`ShmFixture::vcpu`].
    pub fn new(name: &str, layout: Layout, descriptors: &[Descriptor]) -> Result<ShmFixture> {
        let dir = ScratchDir::new(name)?;
        let path = dir.path().join("vcpu");
        let spec = TableSpec {
            magic: VCPU_STATS_MAGIC,
            layout,
            descriptors,
            generation: 1,
        };
        let table = ShmTable::create(&path, &spec)?;
        let consumer = Table::open(&path)?;
        let (view, _) = MemView::map_file(&path)?;
        Ok(ShmFixture {
            table,
            consumer,
            view,
            layout,
            dir,
        })
    }

    /// One writer per record.
    pub fn writers(&mut self) -> Writers<'_> {
        self.table.split().1
    }

    /// The writers, the consumer and the records at once (for writer
    /// threads and reader threads).
    pub fn split(&mut self) -> (Writers<'_>, &Table, Vec<RecordRef<'_>>) {
        let words = self.words_per_record();
        let records = records_of(&self.view, &self.layout, words);
        (self.table.split().1, &self.consumer, records)
    }

    /// The consumer's table.
    pub fn consumer(&self) -> &Table {
        &self.consumer
    }

    /// The extra read-only mapping.
    pub fn view(&self) -> &MemView<'static> {
        &self.view
    }

    /// The layout the producer used.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The table file.
    pub fn path(&self) -> &Path {
        self.table.path()
    }

    /// The fixture's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Counter words per record (`(size - 8) / 8`).
    pub fn words_per_record(&self) -> usize {
        ((self.layout.size - RECORD_PREFIX) / 8) as usize
    }

    /// Every record through [`ShmFixture::view`], in index order.
    pub fn records(&self) -> Vec<RecordRef<'_>> {
        records_of(&self.view, &self.layout, self.words_per_record())
    }

    /// The record area `[offset, offset + nr * stride)`: what a `memcpy`
    /// of every record copies.
    pub fn record_area(&self) -> (usize, usize) {
        let l = &self.layout;
        (l.offset as usize, l.nr_records as usize * l.stride as usize)
    }

    /// Writes every record once: word `k` of record `i` gets
    /// `1000 * i + k + 1`, so no slot reads as unused.
    pub fn fill(&mut self) {
        for (i, mut w) in (0u64..).zip(self.writers()) {
            let n = w.len();
            w.update(|u| {
                for k in 0..n {
                    u.set(k, 1000 * i + k as u64 + 1);
                }
            });
        }
    }
}

/// Every record of a table the consumer opened, through a [`MemView`] of
/// the same file.
pub fn records_in<'a>(view: &'a MemView<'_>, info: &vstats_abi::TableInfo) -> Vec<RecordRef<'a>> {
    let words = (info.header.size.saturating_sub(RECORD_PREFIX) / 8) as usize;
    (0..info.nr_records)
        .filter_map(|i| record_ref(view, usize::try_from(info.record_offset(i)?).ok()?, words))
        .collect()
}

fn records_of<'a>(view: &'a MemView<'_>, l: &Layout, words: usize) -> Vec<RecordRef<'a>> {
    (0..l.nr_records)
        .filter_map(|i| record_ref(view, usize::try_from(l.record_offset(i)?).ok()?, words))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_round_trip_and_cleanup() {
        let dir;
        {
            let mut fx = ShmFixture::vcpu("test-fixture", 3, 128).unwrap();
            assert_eq!(fx.layout().stride, 128);
            fx.fill();
            let recs = fx.records();
            assert_eq!(recs.len(), 3);
            assert_eq!(recs[2].words[0].load(Ordering::Relaxed), 2001);
            assert_eq!(recs[2].seq.load(Ordering::Relaxed), 2);
            let mut snap = vstats_consumer::Snapshot::new(fx.consumer());
            assert_eq!(fx.consumer().snapshot(&mut snap), 0);
            assert_eq!(snap.record(1).unwrap().running(), Some(1001));
            let (off, len) = fx.record_area();
            assert_eq!((off, len), (fx.layout().offset as usize, 3 * 128));
            dir = fx.dir().to_path_buf();
            assert!(dir.join("vcpu").exists());
        }
        assert!(!dir.exists(), "removed on drop");
    }
}
