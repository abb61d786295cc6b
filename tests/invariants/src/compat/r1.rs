//! Revision r1: the RFC v3 `stats_table` (October 2023), as Xen's patch
//! and its `xen-vcpus-stats` tool defined it: a 16-byte header and a
//! 16-byte record; no extension header, no descriptors, no inactive
//! marker. Modelled faithfully, defects included (`docs/abi.md` section
//! 9.1):
//!
//! * v3's **writer** puts vCPU i at `offset + 16 * stride * i` and
//!   zero-fills the page (`pad0`, padding and unused slots are 0);
//! * v3's **reader** reads vCPU i at `offset + size * i + 16 * i`, rejects
//!   a table only when `8 > size`, and takes the vCPU count from the
//!   toolstack.
//!
//! The two agree only for vCPU 0, on v3's tables and on every later
//! revision's: the matrix asserts vCPU 0 only for this revision.
//!
//! Everything below is this revision's own copy of the definitions.

use std::{
    path::Path,
    sync::atomic::{fence, Ordering},
};

use super::{CompatError, Reading};
use vstats_consumer::mem::{MemView, MemViewMut};

/// `VCPU_STATS_MAGIC` of RFC v3.
pub const VCPU_STATS_MAGIC: u32 = 0xaabb_ccdd;

/// RFC v3's `struct vcpu_shmem_stats`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuShmemStats {
    /// [`VCPU_STATS_MAGIC`].
    pub magic: u32,
    /// `roundup(sizeof(vcpu_shmem_stats), cacheline)`.
    pub offset: u32,
    /// `sizeof(vcpu_stats)`.
    pub size: u32,
    /// `roundup(sizeof(vcpu_stats), cacheline)`.
    pub stride: u32,
}
// size: 16 bytes

/// RFC v3's `struct vcpu_stats`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuStats {
    /// Odd while an update is in progress.
    pub seq: u32,
    /// Padding (v3 leaves it 0).
    pub pad0: u32,
    /// Time running, ns.
    pub runstate_running_time: u64,
}
// size: 16 bytes

const _: () = {
    assert!(core::mem::size_of::<VcpuShmemStats>() == 16);
    assert!(core::mem::size_of::<VcpuStats>() == 16);
    assert!(core::mem::offset_of!(VcpuStats, runstate_running_time) == 8);
};

/// The fields this revision knows: `(name, offset)`.
pub const FIELDS: &[(&str, u32)] = &[("runstate_running_time", 8)];

const HEADER_SIZE: u64 = 16;
const CACHELINE: u64 = 64;
const PAGE: u64 = 4096;
const ATTEMPTS: u32 = 1024;

const fn roundup(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// Where v3's writer puts vCPU `vcpu`: `offset + 16 * stride * vcpu`.
const fn writer_address(offset: u64, stride: u64, vcpu: u32) -> u64 {
    offset + 16 * stride * vcpu as u64
}

/// Where v3's reader looks for vCPU `vcpu`: `offset + size * vcpu + 16 *
/// vcpu`.
const fn reader_address(offset: u64, size: u64, vcpu: u32) -> u64 {
    offset + size * vcpu as u64 + 16 * vcpu as u64
}

/// A producer built from this revision (v3's hypervisor side): publishes
/// a zero-filled table and updates vCPU records with the seq protocol, at
/// v3's writer addresses.
#[derive(Debug)]
pub struct Producer {
    map: MemViewMut<'static>,
    offset: u64,
    stride: u64,
    seqs: Vec<u32>,
}

impl Producer {
    /// Publishes a table of `nr` vCPUs at `path`: zero-filled, the header
    /// written (magic last, after a release fence, which v3 did not have
    /// but which does not change a byte), then renamed into place. The
    /// mapping holds vCPU `nr - 1` at v3's writer address.
    ///
    /// # Errors
    ///
    /// I/O errors creating, mapping or renaming the file.
    pub fn create(path: &Path, nr: u32) -> std::io::Result<Producer> {
        let size = core::mem::size_of::<VcpuStats>() as u64;
        let offset = roundup(HEADER_SIZE, CACHELINE);
        let stride = roundup(size, CACHELINE);
        let end = writer_address(offset, stride, nr.saturating_sub(1)) + stride;
        let len = roundup(end, PAGE);
        let tmp = path.with_extension("r1-tmp");
        // A new file reads as zeros: v3's zero fill.
        let map = MemViewMut::create_file(&tmp, len)?;
        map.store::<u32>(4, offset as u32);
        map.store::<u32>(8, size as u32);
        map.store::<u32>(12, stride as u32);
        fence(Ordering::Release);
        if let Some(m) = map.atomic::<u32>(0) {
            m.store(VCPU_STATS_MAGIC, Ordering::Release);
        }
        std::fs::rename(&tmp, path)?;
        Ok(Producer {
            map,
            offset,
            stride,
            seqs: vec![0; nr as usize],
        })
    }

    /// Writes vCPU `vcpu`'s fields with `value(name)`, at v3's writer
    /// address.
    pub fn update(&mut self, vcpu: u32, value: impl Fn(&str) -> u64) {
        let Some(s) = self.seqs.get_mut(vcpu as usize) else {
            return;
        };
        let base = writer_address(self.offset, self.stride, vcpu);
        let Some(seq) = self.map.atomic::<u32>(base) else {
            return;
        };
        seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (name, off) in FIELDS {
            self.map.store::<u64>(base + u64::from(*off), value(name));
        }
        *s = s.wrapping_add(2);
        seq.store(*s, Ordering::Release);
    }
}

/// A consumer built from this revision (v3's `xen-vcpus-stats`).
#[derive(Debug)]
pub struct Consumer {
    view: MemView<'static>,
    header: VcpuShmemStats,
    nr: u32,
}

impl Consumer {
    /// Maps the table at `path` read-only and checks its header as v3
    /// did: the magic, and `8 > size` rejected. `nr_vcpus` is the
    /// toolstack's vCPU count (v3's header does not carry it).
    ///
    /// # Errors
    ///
    /// [`CompatError::Incompatible`] for another magic,
    /// [`CompatError::Invalid`] for a mapping shorter than the header or
    /// `size < 8`.
    pub fn open(path: &Path, nr_vcpus: u32) -> Result<Consumer, CompatError> {
        let (view, _) = MemView::map_file(path)?;
        let word = |o| {
            view.load::<u32>(o)
                .ok_or_else(|| CompatError::Invalid("shorter than the header".into()))
        };
        let magic = word(0)?;
        fence(Ordering::Acquire);
        if magic != VCPU_STATS_MAGIC {
            return Err(CompatError::Incompatible {
                found: magic,
                expected: VCPU_STATS_MAGIC,
            });
        }
        let header = VcpuShmemStats {
            magic,
            offset: word(4)?,
            size: word(8)?,
            stride: word(12)?,
        };
        // v3's only check of the layout.
        if 8 > header.size {
            return Err(CompatError::Invalid(format!("8 > size: {header:?}")));
        }
        Ok(Consumer {
            view,
            header,
            nr: nr_vcpus,
        })
    }

    /// Reads vCPU `vcpu` consistently (at most 1024 attempts; v3 looped
    /// without a bound) at v3's reader address. The value is taken as it
    /// is: v3 has no inactive marker.
    ///
    /// # Errors
    ///
    /// [`CompatError::NoSuchVcpu`] for a vCPU beyond the toolstack's count,
    /// [`CompatError::Invalid`] when the address lies outside the mapping,
    /// [`CompatError::Busy`].
    pub fn read(&self, vcpu: u32) -> Result<Reading, CompatError> {
        if vcpu >= self.nr {
            return Err(CompatError::NoSuchVcpu { vcpu, nr: self.nr });
        }
        let base = reader_address(
            u64::from(self.header.offset),
            u64::from(self.header.size),
            vcpu,
        );
        let outside =
            || CompatError::Invalid(format!("vCPU {vcpu} at {base}: outside the mapping"));
        for _ in 0..ATTEMPTS {
            let s1 = self.view.load::<u32>(base).ok_or_else(outside)?;
            fence(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let mut fields = Vec::with_capacity(FIELDS.len());
            for &(name, off) in FIELDS {
                let v = self
                    .view
                    .load::<u64>(base + u64::from(off))
                    .ok_or_else(outside)?;
                fields.push((name, Some(v)));
            }
            fence(Ordering::Acquire);
            if self.view.load::<u32>(base) == Some(s1) {
                return Ok(Reading::standard(s1, fields));
            }
        }
        Err(CompatError::Busy { vcpu })
    }
}
