//! A table builder for the usual shape of a table: the standard fields of
//! the table kind, then the producer's own counters appended one after
//! another in the producer-specific area (feature `alloc`).
//!
//! The built table is r3 (`docs/abi.md`): the standard record is exactly
//! this revision's [`VcpuStats`] or [`DomainStats`] (`size` 56 or 32), the
//! appended counters lie in the producer-specific area that follows it
//! (`xstats_offset = size`), and only they are described, by the r3
//! descriptor array; standard fields are known by position, so no
//! descriptor names them. The table's clock is
//! [`CLOCK_HOST_MONOTONIC`] unless [`TableBuilder::clock`] says otherwise.
//!
//! Offsets are derived, never written by hand: the standard fields' come
//! from `core::mem::offset_of!` on [`VcpuStats`] and [`DomainStats`], each
//! appended counter starts where the previous one ends, and every counter
//! is known by a typed [`CounterId`] that an [`Update`] stores through.
//!
//! # Examples
//!
//! ```
//! use vstats_abi::desc::{Descriptor, Kind};
//! use vstats_producer::builder::{vcpu, TableBuilder};
//!
//! let mut b = TableBuilder::vcpu(4);
//! let exits = b.counter(Descriptor::builder("exits")).unwrap();
//! let hist = b
//!     .counter(Descriptor::builder("halt_wait_hist").histogram(Kind::LOG2_HIST, 32, 0).nanoseconds())
//!     .unwrap();
//! let plan = b.build().unwrap();
//! assert_eq!(vcpu::RUNNING.offset(), 8);
//! assert_eq!(exits.offset(), 56);
//! assert_eq!(hist.offset(), 64);
//! assert_eq!(plan.layout.size, 56);
//! assert_eq!((plan.layout.xstats_offset, plan.layout.xstats_size), (56, 8 + 32 * 8));
//! assert_eq!(plan.descriptors.len(), 2);
//! ```

use alloc::vec::Vec;
use core::mem::{offset_of, size_of};

use vstats_abi::{
    desc::{Descriptor, DescriptorBuilder},
    header::{CLOCK_HOST_MONOTONIC, EXT_HEADER_SIZE, EXT_HEADER_SIZE_R3},
    layout::{Layout, LayoutParams, DEFAULT_CACHELINE, DEFAULT_PAGE_SIZE},
    record::{DomainStats, RunState, VcpuStats, RECORD_PREFIX},
    validate::{check_descriptor_set, check_xdescriptor_set},
    TableKind, DOMAIN_STATS_MAGIC, VCPU_STATS_MAGIC,
};

use crate::{Error, Result, TableSpec, Update};

/// A counter of a record: its first word and how many words it spans.
/// Made by a [`TableBuilder`] (or the constants of [`vcpu`] and
/// [`domain`]), so its offset is right by construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CounterId {
    offset: u32,
    count: u32,
}

impl CounterId {
    const fn field(offset: usize, count: u32) -> CounterId {
        CounterId {
            offset: offset as u32,
            count,
        }
    }

    /// Byte offset of the counter's first word in the record (its
    /// descriptor's `offset`).
    pub const fn offset(self) -> u32 {
        self.offset
    }

    /// Index of the counter's first word among the record's counter words
    /// (word 0 is at byte 8), as [`Update::set`] takes it.
    pub const fn word(self) -> usize {
        ((self.offset - RECORD_PREFIX) / 8) as usize
    }

    /// Number of words (1, or a histogram's buckets).
    pub const fn count(self) -> u32 {
        self.count
    }
}

/// The standard vCPU fields ([`VcpuStats`]).
pub mod vcpu {
    use super::*;

    /// `runstate_running_time`.
    pub const RUNNING: CounterId =
        CounterId::field(offset_of!(VcpuStats, runstate_running_time), 1);
    /// `runstate_runnable_time`.
    pub const RUNNABLE: CounterId =
        CounterId::field(offset_of!(VcpuStats, runstate_runnable_time), 1);
    /// `runstate_blocked_time`.
    pub const BLOCKED: CounterId =
        CounterId::field(offset_of!(VcpuStats, runstate_blocked_time), 1);
    /// `runstate_offline_time`.
    pub const OFFLINE: CounterId =
        CounterId::field(offset_of!(VcpuStats, runstate_offline_time), 1);
    /// The four runstate times as one run of words, in Xen's order
    /// (running, runnable, blocked, offline).
    pub const RUNSTATE: CounterId = CounterId::field(
        offset_of!(VcpuStats, runstate_running_time),
        RunState::COUNT as u32,
    );
    /// `runstate`: the current [`RunState`] (r3).
    pub const STATE: CounterId = CounterId::field(offset_of!(VcpuStats, runstate), 1);
    /// `runstate_entry_time`: when the current state was entered (r3).
    pub const ENTRY_TIME: CounterId =
        CounterId::field(offset_of!(VcpuStats, runstate_entry_time), 1);
}

/// The standard domain fields ([`DomainStats`]).
pub mod domain {
    use super::*;

    /// `vcpus_online`.
    pub const VCPUS_ONLINE: CounterId = CounterId::field(offset_of!(DomainStats, vcpus_online), 1);
    /// `vcpus_max`.
    pub const VCPUS_MAX: CounterId = CounterId::field(offset_of!(DomainStats, vcpus_max), 1);
    /// `uptime`.
    pub const UPTIME: CounterId = CounterId::field(offset_of!(DomainStats, uptime), 1);
}

impl Update<'_> {
    /// Stores a one-word counter (as [`Update::set`]). Returns false when
    /// the counter lies beyond this record (an id of another table).
    #[inline]
    pub fn put(&mut self, id: CounterId, v: u64) -> bool {
        self.set(id.word(), v)
    }

    /// Stores the words of a counter (a histogram, or a run such as
    /// [`vcpu::RUNSTATE`]), at most `id.count()` of them, as
    /// [`Update::set_words`]; returns how many were stored.
    #[inline]
    pub fn put_words(&mut self, id: CounterId, values: &[u64]) -> usize {
        let n = values.len().min(id.count as usize);
        self.set_words(id.word(), values.get(..n).unwrap_or_default())
    }
}

/// What a built table holds: its magic, layout and descriptors. Lends a
/// [`TableSpec`] for any generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TablePlan {
    /// The table's magic.
    pub magic: u32,
    /// The layout (record size, producer-specific area, page size, ...).
    pub layout: Layout,
    /// The descriptors the table publishes, in record order: one per
    /// appended counter (the r3 array; standard fields are not described),
    /// or, for a [`TableBuilder::bare`] table, the r2 array.
    pub descriptors: Vec<Descriptor>,
}

impl TablePlan {
    /// The spec to publish this plan under `generation`.
    pub fn spec(&self, generation: u64) -> TableSpec<'_> {
        TableSpec {
            magic: self.magic,
            layout: self.layout,
            descriptors: &self.descriptors,
            generation,
        }
    }
}

/// The builder's default page size for records of `record_size` bytes:
/// 4 KiB, or the smallest power of two that holds one record (a record
/// never straddles a page; `Layout::compute` refuses sizes above 1 GiB).
pub const fn page_size_for(record_size: u32) -> u32 {
    let fit = match record_size.checked_next_power_of_two() {
        Some(p) => p,
        None => u32::MAX,
    };
    if fit > DEFAULT_PAGE_SIZE {
        fit
    } else {
        DEFAULT_PAGE_SIZE
    }
}

/// Builds a table: the standard fields, then appended counters. See the
/// [module](self) docs.
#[derive(Clone, Debug)]
pub struct TableBuilder {
    magic: u32,
    nr_records: u32,
    abi_size: u32,
    size: u32,
    /// Names a descriptor may not take: the standard fields of the kind.
    std: &'static [Descriptor],
    descriptors: Vec<Descriptor>,
    page_size: Option<u32>,
    cacheline: u32,
    clock: u32,
    /// An r2 table ([`TableBuilder::bare`]): descriptors in the r2 array.
    r2: bool,
}

impl TableBuilder {
    /// A vCPU table of `nr_vcpus` records: the standard [`VcpuStats`]
    /// fields ([`vcpu`]).
    pub fn vcpu(nr_vcpus: u32) -> TableBuilder {
        TableBuilder::with_fields(
            VCPU_STATS_MAGIC,
            nr_vcpus,
            size_of::<VcpuStats>() as u32,
            TableKind::Vcpu.std_descriptors_r3(),
            false,
        )
    }

    /// The domain table (one record): the standard [`DomainStats`] fields
    /// ([`domain`]).
    pub fn domain() -> TableBuilder {
        TableBuilder::with_fields(
            DOMAIN_STATS_MAGIC,
            1,
            size_of::<DomainStats>() as u32,
            TableKind::Domain.std_descriptors_r3(),
            false,
        )
    }

    /// An r2 table of `magic` with no standard fields (record `abi_size` 8:
    /// seq and pad only), every counter the producer's own and described
    /// by the r2 descriptor array, for tests of the seq protocol. r3 has no
    /// such table (its vCPU record is at least the standard one), so this
    /// one stays r2, which consumers still read.
    pub fn bare(magic: u32, nr_records: u32) -> TableBuilder {
        TableBuilder::with_fields(magic, nr_records, RECORD_PREFIX, &[], true)
    }

    fn with_fields(
        magic: u32,
        nr_records: u32,
        abi_size: u32,
        std: &'static [Descriptor],
        r2: bool,
    ) -> TableBuilder {
        TableBuilder {
            magic,
            nr_records,
            abi_size,
            size: abi_size,
            std,
            descriptors: Vec::new(),
            page_size: None,
            cacheline: DEFAULT_CACHELINE,
            clock: if r2 { 0 } else { CLOCK_HOST_MONOTONIC },
            r2,
        }
    }

    /// Uses `clock` as the table's time base (r3 header field `clock`):
    /// [`CLOCK_HOST_MONOTONIC`] by default, for producers that stamp with
    /// [`crate::monotonic_ns`]-style host time. Ignored by a
    /// [`TableBuilder::bare`] (r2) table, which names no clock.
    pub fn clock(&mut self, clock: u32) -> &mut Self {
        if !self.r2 {
            self.clock = clock;
        }
        self
    }

    /// Appends a counter after the last one and returns its id.
    ///
    /// # Errors
    ///
    /// [`Error::NameTaken`] when an earlier descriptor has the name,
    /// [`Error::BadCounter`] when the descriptor breaks a rule of the spec
    /// on its own, [`Error::Abi`] (overflow) when the record would exceed
    /// 4 GiB. The builder is unchanged then.
    pub fn counter(&mut self, d: DescriptorBuilder<'_>) -> Result<CounterId> {
        // Indices as the spec's checks count them: the standard fields
        // first (they hold their names), then the appended counters.
        let nstd = self.std.len();
        let index = u32::try_from(nstd + self.descriptors.len()).unwrap_or(u32::MAX);
        if let Some(first) = self
            .std
            .iter()
            .chain(&self.descriptors)
            .position(|e| e.name_str() == Some(d.name))
        {
            return Err(Error::NameTaken {
                index,
                first: u32::try_from(first).unwrap_or(u32::MAX),
            });
        }
        let overflow = vstats_abi::Error::Overflow {
            what: vstats_abi::error::Quantity::RecordSize,
        };
        let desc = d
            .at(self.size)
            .map_err(|source| Error::BadCounter { index, source })?;
        let len = desc.byte_len().ok_or(overflow)?;
        let end = self.size.checked_add(len).ok_or(overflow)?;
        let id = CounterId {
            offset: self.size,
            count: desc.count,
        };
        self.descriptors.push(desc);
        self.size = end;
        Ok(id)
    }

    /// Uses `page_size` for the layout instead of the default: 4 KiB, or
    /// the smallest power of two that holds one record when a record is
    /// larger (a record never straddles a page).
    pub fn page_size(&mut self, page_size: u32) -> &mut Self {
        self.page_size = Some(page_size);
        self
    }

    /// Uses `cacheline` (default 64) for the layout.
    pub fn cacheline(&mut self, cacheline: u32) -> &mut Self {
        self.cacheline = cacheline;
        self
    }

    /// The record so far, in bytes: the standard record and the counters
    /// appended after it (what a writer of a record covers).
    pub fn record_size(&self) -> u32 {
        self.size
    }

    /// Lays the table out and checks the descriptor set as a consumer
    /// would.
    ///
    /// # Errors
    ///
    /// [`Error::Abi`] when the layout or the descriptor set breaks a rule
    /// (e.g. an area that does not fit a page, or more than 1024
    /// descriptors in a [`TableBuilder::bare`] table).
    pub fn build(self) -> Result<TablePlan> {
        let count = u32::try_from(self.descriptors.len()).map_err(|_| {
            Error::Abi(vstats_abi::Error::Overflow {
                what: vstats_abi::error::Quantity::DescriptorCount,
            })
        })?;
        let page_size = self.page_size.unwrap_or(page_size_for(self.size));
        let get = |i: u32| {
            self.descriptors
                .get(i as usize)
                .copied()
                .ok_or(vstats_abi::Error::Overflow {
                    what: vstats_abi::error::Quantity::DescriptorIndex,
                })
        };
        let layout = if self.r2 {
            let layout = Layout::compute(&LayoutParams {
                nr_records: self.nr_records,
                record_size: self.size,
                abi_size: self.abi_size,
                desc_count: count,
                page_size,
                cacheline: self.cacheline,
                ext_size: EXT_HEADER_SIZE,
                clock: 0,
                xstats_size: 0,
                xdesc_count: 0,
            })?;
            check_descriptor_set(count, self.magic, self.size, get)?;
            layout
        } else {
            let layout = Layout::compute(&LayoutParams {
                nr_records: self.nr_records,
                record_size: self.abi_size,
                abi_size: self.abi_size,
                desc_count: 0,
                page_size,
                cacheline: self.cacheline,
                ext_size: EXT_HEADER_SIZE_R3,
                clock: self.clock,
                xstats_size: self.size - self.abi_size,
                xdesc_count: count,
            })?;
            check_xdescriptor_set(
                count,
                self.magic,
                layout.xstats_offset,
                layout.xstats_size,
                get,
            )?;
            layout
        };
        Ok(TablePlan {
            magic: self.magic,
            layout,
            descriptors: self.descriptors,
        })
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use vstats_abi::{
        desc::Kind,
        record::{
            domain_off, vcpu_off, DOMAIN_STATS_SIZE, INACTIVE, VCPU_STATS_SIZE,
            VCPU_STD_DESCRIPTORS,
        },
    };

    use super::*;

    #[test]
    fn standard_ids_match_the_abi_offsets() {
        assert_eq!(vcpu::RUNNING.offset(), vcpu_off::RUNNING);
        assert_eq!(vcpu::RUNNABLE.offset(), vcpu_off::RUNNABLE);
        assert_eq!(vcpu::BLOCKED.offset(), vcpu_off::BLOCKED);
        assert_eq!(vcpu::OFFLINE.offset(), vcpu_off::OFFLINE);
        assert_eq!((vcpu::RUNSTATE.word(), vcpu::RUNSTATE.count()), (0, 4));
        assert_eq!(vcpu::STATE.offset(), vcpu_off::RUNSTATE);
        assert_eq!(vcpu::ENTRY_TIME.offset(), vcpu_off::ENTRY);
        assert_eq!((vcpu::STATE.word(), vcpu::ENTRY_TIME.word()), (4, 5));
        assert_eq!(domain::VCPUS_ONLINE.offset(), domain_off::VCPUS_ONLINE);
        assert_eq!(domain::VCPUS_MAX.offset(), domain_off::VCPUS_MAX);
        assert_eq!(domain::UPTIME.offset(), domain_off::UPTIME);
        assert_eq!(domain::UPTIME.word(), 2);
        for (d, id) in VCPU_STD_DESCRIPTORS.iter().zip([
            vcpu::RUNNING,
            vcpu::RUNNABLE,
            vcpu::BLOCKED,
            vcpu::OFFLINE,
        ]) {
            assert_eq!(d.offset, id.offset());
        }
        assert_eq!(TableBuilder::vcpu(1).record_size(), VCPU_STATS_SIZE);
        assert_eq!(TableBuilder::domain().record_size(), DOMAIN_STATS_SIZE);
    }

    #[test]
    fn counters_follow_each_other() {
        let mut b = TableBuilder::domain();
        let a = b.counter(Descriptor::builder("a")).unwrap();
        let h = b
            .counter(Descriptor::builder("h").histogram(Kind::LINEAR_HIST, 3, 10))
            .unwrap();
        let c = b
            .counter(Descriptor::builder("c").kind(Kind::PEAK))
            .unwrap();
        assert_eq!((a.offset(), a.word()), (32, 3));
        assert_eq!((h.offset(), h.count()), (40, 3));
        assert_eq!(c.offset(), 64);
        let p = b.build().unwrap();
        assert_eq!(p.magic, DOMAIN_STATS_MAGIC);
        // r3: the standard record, then the area of the appended counters.
        assert_eq!(p.layout.size, DOMAIN_STATS_SIZE);
        assert_eq!((p.layout.xstats_offset, p.layout.xstats_size), (32, 40));
        assert_eq!(p.layout.record_extent(), 72);
        assert_eq!(p.layout.abi_size, 32);
        assert_eq!(p.layout.nr_records, 1);
        assert_eq!(p.layout.clock, CLOCK_HOST_MONOTONIC);
        // Only the appended counters are described.
        assert_eq!(p.descriptors.len(), 3);
        assert_eq!(p.descriptors[1].bucket_size, 10);
        assert_eq!(p.spec(9).generation, 9);
    }

    #[test]
    fn refusals_leave_the_builder_unchanged() {
        let mut b = TableBuilder::vcpu(2);
        assert_eq!(
            b.counter(Descriptor::builder("runstate_blocked_time")),
            Err(Error::NameTaken { index: 6, first: 2 })
        );
        // r3's standard fields are taken too (R20).
        assert_eq!(
            b.counter(Descriptor::builder("runstate_entry_time")),
            Err(Error::NameTaken { index: 6, first: 5 })
        );
        assert!(matches!(
            b.counter(
                Descriptor::builder("bad")
                    .unit(vstats_abi::desc::Unit::SECONDS)
                    .scale(vstats_abi::desc::Base::POW10, 3)
            ),
            Err(Error::BadCounter { index: 6, .. })
        ));
        assert!(matches!(
            b.counter(Descriptor::builder(&"x".repeat(60))),
            Err(Error::BadCounter { index: 6, .. })
        ));
        assert_eq!(b.record_size(), VCPU_STATS_SIZE);
        let ok = b.counter(Descriptor::builder("ok")).unwrap();
        assert_eq!(ok.offset(), VCPU_STATS_SIZE);
    }

    #[test]
    fn big_records_get_big_pages_unless_told() {
        let mut b = TableBuilder::vcpu(2);
        b.counter(Descriptor::builder("big").histogram(Kind::LOG2_HIST, 600, 0))
            .unwrap();
        assert_eq!(b.clone().build().unwrap().layout.page_size, 8192);
        let mut small = TableBuilder::vcpu(2);
        small.counter(Descriptor::builder("one")).unwrap();
        assert_eq!(small.build().unwrap().layout.page_size, 4096);
        b.page_size(4096);
        assert!(matches!(b.build(), Err(Error::Abi(_))));
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "a thousand descriptors, each checked against the others: minutes under Miri"
    )]
    fn too_many_descriptors_are_refused_at_build() {
        // An r2 (bare) table: at most 1024 descriptors (R9 of r2).
        let mut b = TableBuilder::bare(VCPU_STATS_MAGIC, 1);
        for i in 0..1025 {
            b.counter(Descriptor::builder(&std::format!("s{i}")))
                .unwrap();
        }
        assert!(matches!(b.build(), Err(Error::Abi(_))));
        // r3 has no such bound: the same count in the producer area.
        let mut b = TableBuilder::vcpu(1);
        for i in 0..1025 {
            b.counter(Descriptor::builder(&std::format!("s{i}")))
                .unwrap();
        }
        let plan = b.build().unwrap();
        assert_eq!(plan.layout.xdesc_count, 1025);
    }

    #[test]
    fn update_puts_through_ids() {
        let mut b = TableBuilder::vcpu(1);
        let h = b
            .counter(Descriptor::builder("h").histogram(Kind::LOG2_HIST, 2, 0))
            .unwrap();
        let plan = b.build().unwrap();
        let mut mem = std::vec![0u64; plan.layout.mapping_len() as usize / 8];
        let base = core::ptr::NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap();
        #[allow(unsafe_code)]
        // SAFETY: `mem` outlives the table, is 8-aligned, and is only
        // accessed through the table until it is dropped.
        let frames = unsafe { crate::Frames::contiguous(base, mem.len() * 8) };
        {
            let mut t = crate::Table::init(frames, &plan.spec(1)).unwrap();
            {
                let (_, mut ws) = t.split();
                let mut w = ws.next().unwrap();
                w.update(|u| {
                    assert_eq!(u.put_words(vcpu::RUNSTATE, &[1, 2, 3, 4, 5]), 4);
                    assert!(u.put(vcpu::BLOCKED, 30));
                    assert_eq!(u.put_words(h, &[7, 8, 9]), 2);
                });
            }
            // Read below as the producer left it, not retired.
            t.forsake();
        }
        let off = (plan.layout.offset / 8) as usize;
        assert_eq!(&mem[off + 1..off + 5], &[1, 2, 30, 4]);
        // State and entry time not written yet; the area follows them.
        assert_eq!(&mem[off + 5..off + 7], &[INACTIVE, INACTIVE]);
        assert_eq!(&mem[off + 7..off + 9], &[7, 8]);
    }
}
