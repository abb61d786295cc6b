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
//! A table is laid out as `docs/abi.md` says for this revision (r3): the
//! header, the record area formatted as unused slots up to the end of the
//! mapping (P4, P13). A producer writes every existing vCPU's record before
//! it hands the table out (P10: a file producer before the file is renamed
//! into place, see [`shm`]); when a [`Table`] is dropped it retires the
//! table (P15: every record made unused, then the magic cleared), unless
//! [`Table::forsake`] leaves it as a dying producer would.
//!
//! # Examples
//!
//! ```
//! use core::ptr::NonNull;
//! use vstats_abi::{layout::{Layout, LayoutParams}, RunState, VCPU_STATS_MAGIC};
//! use vstats_producer::{Frames, Table, TableSpec};
//!
//! let layout = Layout::compute(&LayoutParams::vcpu(2)).unwrap();
//! let mut mem = vec![0u64; layout.mapping_len() as usize / 8];
//! let base = NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap();
//! // SAFETY: `mem` outlives the table, is 8-aligned and is only accessed
//! // through the table until the table is dropped.
//! let frames = unsafe { Frames::contiguous(base, mem.len() * 8) };
//! let spec = TableSpec { magic: VCPU_STATS_MAGIC, layout, descriptors: &[], generation: 1 };
//! let mut table = Table::init(frames, &spec).unwrap();
//! let (_control, mut writers) = table.split();
//! let mut vcpu0 = writers.next().unwrap();
//! vcpu0.update(|u| {
//!     u.set(0, 1_000); // runstate_running_time
//!     u.set(1, 20);    // runstate_runnable_time
//!     u.set_runstate(RunState::RUNNING, 1_020);
//! });
//! ```
#![no_std]
#![deny(unsafe_code)]

#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "alloc")]
extern crate alloc;

#[cfg(feature = "alloc")]
pub mod builder;
mod error;
#[cfg(feature = "std")]
pub mod publish;
mod raw;
#[cfg(feature = "std")]
pub mod shm;
#[cfg(feature = "std")]
pub mod synth;
mod writer;

use core::sync::atomic::{fence, AtomicBool, Ordering};

pub use error::{Error, Result};
pub use raw::Frames;
/// The time base producers on a host stamp with (`CLOCK_MONOTONIC`).
#[cfg(feature = "std")]
pub use vstats_abi::clock::monotonic_ns;
use vstats_abi::{
    desc::Descriptor,
    header::{EXT_HEADER_OFFSET, HEADER_SIZE, R3_HEADER_OFFSET},
    layout::Layout,
    record::RECORD_PREFIX,
    seqlock::{AtomicU32, SeqWriter},
    validate::{check_descriptor_set, check_record_count, check_xdescriptor_set},
};
pub use writer::{RawRecordWriter, RecordWriter, Update, Writers};
use zerocopy::IntoBytes;

/// What to publish.
#[derive(Clone, Copy, Debug)]
pub struct TableSpec<'a> {
    /// [`vstats_abi::VCPU_STATS_MAGIC`] or [`vstats_abi::DOMAIN_STATS_MAGIC`]
    /// (an r2 layout may also carry the legacy
    /// [`vstats_abi::DOMAIN_STATS_MAGIC_R2`]).
    pub magic: u32,
    /// From [`Layout::compute`].
    pub layout: Layout,
    /// The descriptors of the layout's array: exactly `layout.xdesc_count`
    /// r3 descriptors (each in the producer-specific area) for an r3
    /// layout, `layout.desc_count` r2 descriptors for an r2 one.
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
    /// Retire the table when dropped (P15); off after [`Table::forsake`]
    /// or once retired.
    retire: bool,
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
        // r3 producers write the r3 domain magic; the legacy one only
        // heads an r2 layout.
        let known = spec.magic == vstats_abi::VCPU_STATS_MAGIC
            || spec.magic == vstats_abi::DOMAIN_STATS_MAGIC
            || (!l.is_r3() && spec.magic == vstats_abi::DOMAIN_STATS_MAGIC_R2);
        if !known {
            return Err(Error::BadMagic { magic: spec.magic });
        }
        let count = if l.is_r3() {
            l.xdesc_count
        } else {
            l.desc_count
        };
        if spec.descriptors.len() != count as usize {
            return Err(Error::DescriptorCount {
                given: spec.descriptors.len(),
                layout: count,
            });
        }
        check_record_count(spec.magic, l.nr_records)?;
        let get = |i: u32| {
            spec.descriptors
                .get(i as usize)
                .copied()
                .ok_or(vstats_abi::Error::BadLayoutParam {
                    param: vstats_abi::error::LayoutParam::DescriptorIndex,
                    value: i.into(),
                })
        };
        if l.is_r3() {
            check_xdescriptor_set(count, spec.magic, l.xstats_offset, l.xstats_size, get)?;
        } else {
            check_descriptor_set(count, spec.magic, l.size, get)?;
        }
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
            retire: false,
        };
        table.write_all(spec)?;
        let mut table = table;
        table.retire = true;
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
        let desc_at = match l.r3_header() {
            Some(r3) => {
                self.store_bytes(R3_HEADER_OFFSET, r3.as_bytes())?;
                l.xdesc_offset
            }
            None => l.desc_offset,
        };
        for (i, d) in spec.descriptors.iter().enumerate() {
            self.store_bytes(desc_at + i as u32 * 64, d.as_bytes())?;
        }
        // The record area (P4, P13): the layout's fill, word by word (seq 0
        // and `_pad` all ones at slot positions, the inactive marker
        // everywhere else), so a table on frames that are not contiguous
        // works.
        let end = l.mapping_len();
        let mut off = u64::from(l.offset);
        while off < end {
            let word = self
                .frames
                .u64_at(off as usize)
                .ok_or(Error::FramesTooSmall {
                    need: end,
                    have: self.frames.len() as u64,
                })?;
            word.store(l.fill_word(off), Ordering::Relaxed);
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
        (&self.control, Writers::new(self, next))
    }

    /// Retires the table (P15), as dropping it does: one update per record
    /// that makes every counter word inactive (the slot reads as unused),
    /// a release fence, then the magic set to 0 with release ordering.
    /// Afterwards nothing is written, and [`Table::split`] hands out no
    /// writers. A consumer that validated the table earlier reads every
    /// record as unused and the magic as 0 (retired).
    ///
    /// Each record's seq continues from at or beyond its last writer's; if
    /// a writer was leaked ([`Table::writers_lost`]) its record's seq is
    /// unknown, and the update uses the carry's next base anyway (a
    /// consumer may then see that one record's seq step back once, on a
    /// table it is about to find retired).
    pub fn retire(&mut self) {
        if !self.retire {
            return;
        }
        self.retire = false;
        let c = &self.seqs;
        let base = c.base.wrapping_add(c.max_advance.load(Ordering::Relaxed));
        let l = self.layout;
        let words = ((l.record_extent() - RECORD_PREFIX) / 8) as usize;
        for i in 0..l.nr_records {
            let Some(off) = l.record_offset(i).and_then(|o| usize::try_from(o).ok()) else {
                continue;
            };
            let (Some(seq), Some(run)) = (
                self.frames.u32_at(off),
                self.frames.u64s_at(off + RECORD_PREFIX as usize, words),
            ) else {
                continue;
            };
            let mut sw = SeqWriter::new(base);
            sw.write(seq, || {
                for w in run {
                    w.store(vstats_abi::INACTIVE, Ordering::Relaxed);
                }
            });
        }
        fence(Ordering::Release);
        if let Some(magic) = self.frames.u32_at(0) {
            magic.store(0, Ordering::Release);
        }
        // No more writers: as if one were lost.
        self.seqs.handed.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops the table without retiring it, as a producer that dies
    /// leaves it: the magic stays, and the records keep their last values
    /// (a consumer learns the producer is gone from elsewhere, e.g. the
    /// liveness lock of a file).
    pub fn forsake(mut self) {
        self.retire = false;
    }

    /// Whether the table was retired ([`Table::retire`]).
    pub fn is_retired(&self) -> bool {
        !self.retire
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

impl Drop for Table<'_> {
    /// Retires the table (P15) unless it was forsaken.
    fn drop(&mut self) {
        self.retire();
    }
}

#[cfg(test)]
mod tests;
