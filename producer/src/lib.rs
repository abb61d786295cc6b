//! The writer side of a vstats table, for hypervisors.
//!
//! `no_std`, no allocation, no locks: a hypervisor gives the producer the
//! frames that back the table (one region, or a list of pages that need
//! not be virtually contiguous), the producer lays the table out, publishes
//! the header last, and hands out one [`RecordWriter`] per record. A writer
//! updates its record with the seq protocol of
//! [`vstats_abi::seqlock`]: seq goes odd, counters are stored, seq goes
//! even. Writing a counter is one plain store; there is no atomic
//! read-modify-write on the update path (a writer does two when it is
//! dropped, once in its life, to hand its seq on to the next split).
//!
//! The producer never reads shared memory back: its seq numbers and the
//! enable switch are private, so a consumer that scribbles on a writable
//! mapping cannot change what the producer does next.
//!
//! # Examples
//!
//! ```
//! use core::ptr::NonNull;
//! use vstats_abi::{layout::{Layout, LayoutParams}, record::VCPU_STD_DESCRIPTORS, VCPU_STATS_MAGIC};
//! use vstats_producer::{Frames, Table, TableSpec};
//!
//! let layout = Layout::compute(&LayoutParams::vcpu(2)).unwrap();
//! let mut mem = vec![0u64; layout.mapping_len() as usize / 8];
//! let base = NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap();
//! // SAFETY: `mem` outlives the table, is 8-aligned and is only accessed
//! // through the table until the table is dropped.
//! let frames = unsafe { Frames::contiguous(base, mem.len() * 8) };
//! let spec = TableSpec { magic: VCPU_STATS_MAGIC, layout, descriptors: VCPU_STD_DESCRIPTORS, generation: 1 };
//! let mut table = Table::init(frames, &spec).unwrap();
//! let (_control, mut writers) = table.split();
//! let mut vcpu0 = writers.next().unwrap();
//! vcpu0.update(|u| {
//!     u.set(0, 1_000); // runstate_running_time
//!     u.set(1, 20);    // runstate_runnable_time
//! });
//! ```
#![no_std]
#![deny(unsafe_code)]

#[cfg(feature = "std")]
extern crate std;

mod raw;
#[cfg(feature = "std")]
pub mod shm;

use core::{
    cell::Cell,
    fmt,
    marker::PhantomData,
    sync::atomic::{fence, AtomicBool, Ordering},
};

pub use raw::Frames;
use vstats_abi::{
    desc::Descriptor,
    header::{EXT_HEADER_OFFSET, HEADER_SIZE},
    layout::Layout,
    record::{INACTIVE, INACTIVE_BIT, PAD_INACTIVE, RECORD_PREFIX},
    seqlock::{AtomicU32, AtomicU64, SeqWriter},
    validate::{check_descriptor_set, check_record_count},
};
use zerocopy::IntoBytes;

/// Why a table could not be initialised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The frames hold fewer bytes than the layout needs.
    FramesTooSmall {
        /// Bytes needed.
        need: u64,
        /// Bytes given.
        have: u64,
    },
    /// A frame is not 8-byte aligned.
    FramesMisaligned,
    /// The frame list's page size differs from the layout's.
    PageSizeMismatch {
        /// The layout's page size.
        layout: u32,
        /// The frames' page size.
        frames: u64,
    },
    /// The magic is not a table magic of this revision.
    BadMagic {
        /// The magic asked for.
        magic: u32,
    },
    /// The layout or the descriptors break a rule of the ABI.
    Abi(vstats_abi::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::FramesTooSmall { need, have } => {
                write!(f, "frames hold {have} bytes, the table needs {need}")
            }
            Error::FramesMisaligned => f.write_str("a frame is not 8-byte aligned"),
            Error::PageSizeMismatch { layout, frames } => {
                write!(
                    f,
                    "frames are {frames}-byte pages, the layout uses {layout}-byte pages"
                )
            }
            Error::BadMagic { magic } => write!(f, "{magic:#010x} is not a stats table magic"),
            Error::Abi(e) => write!(f, "invalid table: {e}"),
        }
    }
}

impl core::error::Error for Error {}

impl From<vstats_abi::Error> for Error {
    fn from(e: vstats_abi::Error) -> Error {
        Error::Abi(e)
    }
}

/// Result type of this crate.
pub type Result<T> = core::result::Result<T, Error>;

/// What to publish.
#[derive(Clone, Copy, Debug)]
pub struct TableSpec<'a> {
    /// [`vstats_abi::VCPU_STATS_MAGIC`] or [`vstats_abi::DOMAIN_STATS_MAGIC`].
    pub magic: u32,
    /// From [`Layout::compute`].
    pub layout: Layout,
    /// Exactly `layout.desc_count` descriptors.
    pub descriptors: &'a [Descriptor],
    /// Differs from the generation of any earlier table published under the
    /// same name, so consumers notice a restart.
    pub generation: u64,
}

/// The producer's private switches, shared by the table's writers.
#[derive(Debug)]
pub struct Control {
    enabled: AtomicBool,
}

impl Control {
    /// Turns updating on or off. While off, [`RecordWriter::update`] and
    /// [`RecordWriter::begin`] do nothing; a hypervisor turns it off while
    /// no consumer has the table mapped. Because writers store absolute
    /// values, the first update after turning it on is complete again.
    #[inline]
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    /// Whether updating is on.
    #[inline]
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }
}

/// An initialised, published table.
#[derive(Debug)]
pub struct Table<'f> {
    frames: Frames<'f>,
    layout: Layout,
    control: Control,
    seqs: SeqCarry,
}

/// Carries the writers' seq numbers from one [`Table::split`] to the next,
/// without reading the table back and without per-record storage.
///
/// Every writer of a split starts at the same even `base`. A writer that is
/// dropped records how far it advanced (wrapping, rounded up to even) in
/// `max_advance`; the next split starts every writer at `base +
/// max_advance`, which is at or ahead of every record's last seq in
/// serial-number arithmetic, so seq never steps back (rule P5), as long as
/// no record was updated 2^31 times more than another between two splits
/// (beyond that, serial-number arithmetic cannot tell ahead from behind). A
/// writer that is leaked (`mem::forget`) never reports, so its record's seq is
/// unknown: `handed != dropped` then, and later splits hand out no writers.
#[derive(Debug)]
struct SeqCarry {
    base: u32,
    max_advance: AtomicU32,
    handed: AtomicU32,
    dropped: AtomicU32,
}

impl<'f> Table<'f> {
    /// Lays out and publishes a table in `frames`: the magic is cleared
    /// first, then the header fields, extension header, descriptors and
    /// records are written (every counter and every padding byte of the
    /// record area inactive, every seq 0), and the magic is stored last,
    /// after a release fence, so a consumer that sees it sees the rest
    /// (RFC v3 lacked that barrier).
    ///
    /// # Errors
    ///
    /// [`Error`] when the frames cannot hold the layout or the spec breaks
    /// a rule; nothing is published then.
    pub fn init(frames: Frames<'f>, spec: &TableSpec<'_>) -> Result<Table<'f>> {
        let l = spec.layout;
        if spec.magic != vstats_abi::VCPU_STATS_MAGIC
            && spec.magic != vstats_abi::DOMAIN_STATS_MAGIC
        {
            return Err(Error::BadMagic { magic: spec.magic });
        }
        if spec.descriptors.len() != l.desc_count as usize {
            return Err(Error::Abi(vstats_abi::Error::BadLayoutParam {
                param: vstats_abi::error::LayoutParam::DescriptorCount,
                value: spec.descriptors.len() as u64,
            }));
        }
        check_record_count(spec.magic, l.nr_records)?;
        check_descriptor_set(l.desc_count, spec.magic, l.size, |i| {
            spec.descriptors
                .get(i as usize)
                .copied()
                .ok_or(vstats_abi::Error::BadLayoutParam {
                    param: vstats_abi::error::LayoutParam::DescriptorIndex,
                    value: i.into(),
                })
        })?;
        let need = l.mapping_len();
        if (frames.len() as u64) < need {
            return Err(Error::FramesTooSmall {
                need,
                have: frames.len() as u64,
            });
        }
        if !frames.aligned() {
            return Err(Error::FramesMisaligned);
        }
        if let Some(ps) = frames.page_size() {
            if ps as u64 != u64::from(l.page_size) {
                return Err(Error::PageSizeMismatch {
                    layout: l.page_size,
                    frames: ps as u64,
                });
            }
        }
        let table = Table {
            frames,
            layout: l,
            control: Control {
                enabled: AtomicBool::new(true),
            },
            seqs: SeqCarry {
                base: 0,
                max_advance: AtomicU32::new(0),
                handed: AtomicU32::new(0),
                dropped: AtomicU32::new(0),
            },
        };
        table.write_all(spec)?;
        Ok(table)
    }

    fn store32(&self, off: u64, v: u32) -> Result<()> {
        let w = usize::try_from(off)
            .ok()
            .and_then(|o| self.frames.u32_at(o))
            .ok_or(Error::FramesTooSmall {
                need: off + 4,
                have: self.frames.len() as u64,
            })?;
        w.store(v, Ordering::Relaxed);
        Ok(())
    }

    /// Stores `bytes` (a multiple of 4 long) at table offset `off`, word by
    /// word so that a head spanning several frames works.
    fn store_bytes(&self, off: u32, bytes: &[u8]) -> Result<()> {
        let mut at = u64::from(off);
        for c in bytes.chunks_exact(4) {
            self.store32(at, u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))?;
            at += 4;
        }
        Ok(())
    }

    fn write_all(&self, spec: &TableSpec<'_>) -> Result<()> {
        let l = &self.layout;
        // Unpublish whatever was there.
        self.store32(0, 0)?;
        fence(Ordering::Release);
        // The head: header fields after the magic, then zeros, the extension
        // header and the descriptors.
        let header = l.header(spec.magic);
        self.store_bytes(4, &header.as_bytes()[4..])?;
        let mut off = u64::from(HEADER_SIZE);
        while off < u64::from(l.offset) {
            self.store32(off, 0)?;
            off += 4;
        }
        self.store_bytes(EXT_HEADER_OFFSET, l.ext_header(spec.generation).as_bytes())?;
        for (i, d) in spec.descriptors.iter().enumerate() {
            self.store_bytes(l.desc_offset + i as u32 * 64, d.as_bytes())?;
        }
        // The record area: inactive everywhere but the seq words.
        let end = l.mapping_len();
        let mut off = u64::from(l.offset);
        while off < end {
            let rel = off - u64::from(l.offset);
            let is_seq_word = rel % u64::from(l.stride) == 0
                && rel / u64::from(l.stride) < u64::from(l.nr_records);
            if is_seq_word {
                // seq = 0 and _pad = PAD_INACTIVE, stored as two u32 so the
                // result does not depend on byte order.
                self.store32(off, 0)?;
                self.store32(off + 4, PAD_INACTIVE)?;
            } else {
                let word = self
                    .frames
                    .u64_at(off as usize)
                    .ok_or(Error::FramesTooSmall {
                        need: end,
                        have: self.frames.len() as u64,
                    })?;
                word.store(INACTIVE, Ordering::Relaxed);
            }
            off += 8;
        }
        // Publish: everything above happens-before a consumer's acquire load
        // that sees the magic.
        fence(Ordering::Release);
        self.frames
            .u32_at(0)
            .ok_or(Error::FramesTooSmall {
                need: 4,
                have: self.frames.len() as u64,
            })?
            .store(spec.magic, Ordering::Release);
        Ok(())
    }

    /// The table's layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Splits the table into its control switches and one writer per
    /// record, each handed out exactly once (the table stays borrowed
    /// while they live).
    ///
    /// A table may be split again once the writers of the last split are
    /// gone: each record's seq then continues from at or beyond where its
    /// last writer left it, never restarting (rule P5). If a writer was
    /// leaked instead of dropped, its record's last seq is unknown and the
    /// iterator is empty: see [`Table::writers_lost`].
    pub fn split(&mut self) -> (&Control, Writers<'_>) {
        let lost = self.writers_lost();
        let c = &mut self.seqs;
        if !lost {
            // Even: every advance is rounded up to even.
            c.base = c.base.wrapping_add(c.max_advance.load(Ordering::Relaxed));
            c.max_advance.store(0, Ordering::Relaxed);
            c.handed.store(0, Ordering::Relaxed);
            c.dropped.store(0, Ordering::Relaxed);
        }
        let next = if lost { self.layout.nr_records } else { 0 };
        (&self.control, Writers { table: self, next })
    }

    /// Whether a writer of an earlier split was leaked (forgotten rather
    /// than dropped). Its record's seq is then unknown to the producer,
    /// which never reads it back, so [`Table::split`] hands out no more
    /// writers: re-initialise the table instead.
    pub fn writers_lost(&self) -> bool {
        let c = &self.seqs;
        c.handed.load(Ordering::Relaxed) != c.dropped.load(Ordering::Relaxed)
    }
}

/// Iterator over the writers of a table's records, in record order.
#[derive(Debug)]
pub struct Writers<'t> {
    table: &'t Table<'t>,
    next: u32,
}

impl<'t> Iterator for Writers<'t> {
    type Item = RecordWriter<'t>;

    fn next(&mut self) -> Option<RecordWriter<'t>> {
        let t = self.table;
        let i = self.next;
        let off = usize::try_from(t.layout.record_offset(i)?).ok()?;
        let seq = t.frames.u32_at(off)?;
        let words = t.frames.u64s_at(
            off + RECORD_PREFIX as usize,
            ((t.layout.size - RECORD_PREFIX) / 8) as usize,
        )?;
        self.next += 1;
        // Only this iterator hands writers out, so a plain load and store
        // count them.
        let handed = &t.seqs.handed;
        handed.store(handed.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        Some(RecordWriter {
            index: i,
            seq,
            words,
            sw: SeqWriter::new(t.seqs.base),
            carry: &t.seqs,
            control: &t.control,
            _not_sync: PhantomData,
        })
    }
}

/// The single writer of one record. `Send` (it may move to the vCPU's
/// thread) but neither `Sync` nor `Clone`: exactly one party writes a
/// record.
///
/// Its private seq changes on every update: writers used by different CPUs
/// should not share a cacheline, or they slow each other down
/// (docs/benchmarks.md, section 4). The type is kept small (48 bytes on
/// 64-bit hosts, so that it fits the C API's 64-byte `struct
/// vstats_writer`) rather than padded; a caller that keeps writers side by
/// side in one array pads them, as the C API's slots and
/// `vstats-kvm-vmm` do.
#[derive(Debug)]
pub struct RecordWriter<'t> {
    index: u32,
    seq: &'t AtomicU32,
    words: &'t [AtomicU64],
    sw: SeqWriter,
    carry: &'t SeqCarry,
    control: &'t Control,
    _not_sync: PhantomData<Cell<()>>,
}

impl Drop for RecordWriter<'_> {
    /// Hands this writer's seq on to the table's next split. A writer
    /// dropped mid-update leaves the record odd (busy) until the next
    /// split's writer begins its first update.
    fn drop(&mut self) {
        let advance = self.sw.current().wrapping_sub(self.carry.base);
        let advance = advance.wrapping_add(advance & 1);
        self.carry.max_advance.fetch_max(advance, Ordering::Relaxed);
        self.carry.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

impl<'t> RecordWriter<'t> {
    /// The record's index.
    #[inline]
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Number of counter words in the record (`(size - 8) / 8`).
    #[inline]
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether the record has no counter words.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Starts an update: seq goes odd. `None` while the table is disabled
    /// (see [`Control::set_enabled`]), unless an update is already open
    /// (begun and not finished), which is handed back so it can be
    /// finished. The update must be finished with
    /// [`Update::finish`]; an update that is dropped instead (a panic, or
    /// a fault-injection test) leaves seq odd, so readers report the record
    /// busy rather than accept a half-written record; the next update
    /// finishes it.
    #[inline]
    pub fn begin(&mut self) -> Option<Update<'_, 't>> {
        // An update already open is handed back even while disabled, so it
        // can be finished.
        if !self.sw.in_update() && !self.control.is_enabled() {
            return None;
        }
        self.sw.begin(self.seq);
        Some(Update { w: self })
    }

    /// Runs `f` inside an update; returns whether it ran (false while the
    /// table is disabled).
    #[inline]
    pub fn update(&mut self, f: impl FnOnce(&mut Update<'_, 't>)) -> bool {
        match self.begin() {
            Some(mut u) => {
                f(&mut u);
                u.finish();
                true
            }
            None => false,
        }
    }

    /// The seq value this writer last stored (its private copy).
    #[inline]
    pub fn seq(&self) -> u32 {
        self.sw.current()
    }
}

/// An update in progress on one record.
#[derive(Debug)]
#[must_use = "an update that is not finished leaves the record busy"]
pub struct Update<'w, 't> {
    w: &'w mut RecordWriter<'t>,
}

impl Update<'_, '_> {
    /// Stores counter word `i` (word 0 is at byte 8 of the record). A value
    /// with the top bit set (an overflow) stores the inactive marker
    /// instead, never a wrapped value. Returns false, storing nothing, when
    /// `i` is beyond the record.
    #[inline]
    pub fn set(&mut self, i: usize, v: u64) -> bool {
        match self.w.words.get(i) {
            Some(word) => {
                let v = if v & INACTIVE_BIT != 0 { INACTIVE } else { v };
                word.store(v, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Stores `values` into counter words `first, first + 1, ...`, each as
    /// [`Update::set`] would (a value with the top bit set stores the
    /// inactive marker), with one bounds check for the whole run. Words
    /// that would lie beyond the record are not stored; returns how many
    /// were.
    #[inline]
    pub fn set_words(&mut self, first: usize, values: &[u64]) -> usize {
        let words = self.w.words.get(first..).unwrap_or_default();
        for (word, &v) in words.iter().zip(values) {
            let v = if v & INACTIVE_BIT != 0 { INACTIVE } else { v };
            word.store(v, Ordering::Relaxed);
        }
        words.len().min(values.len())
    }

    /// Stores counter word `i` given by its byte offset in the record (a
    /// descriptor's `offset`).
    #[inline]
    pub fn set_at(&mut self, offset: u32, v: u64) -> bool {
        match offset.checked_sub(RECORD_PREFIX) {
            Some(rel) if rel % 8 == 0 => self.set((rel / 8) as usize, v),
            _ => false,
        }
    }

    /// Marks counter word `i` inactive. Returns false when `i` is beyond the
    /// record.
    #[inline]
    pub fn set_inactive(&mut self, i: usize) -> bool {
        match self.w.words.get(i) {
            Some(word) => {
                word.store(INACTIVE, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Marks every counter of the record inactive: the slot reads as
    /// unused (a vCPU that went away).
    pub fn set_unused(&mut self) {
        for w in self.w.words {
            w.store(INACTIVE, Ordering::Relaxed);
        }
    }

    /// Ends the update: seq goes even and the new values are visible.
    #[inline]
    pub fn finish(self) {
        self.w.sw.end(self.w.seq);
    }
}

#[cfg(test)]
mod tests;
