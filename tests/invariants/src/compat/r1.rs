//! Revision r1: the RFC v3 `stats_table` (October 2023), as Xen's patch
//! and its `xen-vcpus-stats` tool defined it: a 16-byte header and a
//! 16-byte record; no extension header, no descriptors. The consumer gets
//! the number of vCPUs from the toolstack.
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
    /// Padding.
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

const HEADER_SIZE: u32 = 16;
const CACHELINE: u32 = 64;
const PAGE: u64 = 4096;
const INACTIVE: u64 = u64::MAX;
const ATTEMPTS: u32 = 1024;

const fn roundup(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// A producer built from this revision: publishes a table and updates
/// vCPU records with the seq protocol.
#[derive(Debug)]
pub struct Producer {
    map: MemViewMut<'static>,
    offset: u64,
    stride: u64,
    seqs: Vec<u32>,
}

impl Producer {
    /// Publishes a table of `nr` vCPUs at `path`: built in a temporary
    /// file, every counter and padding word inactive, the magic stored
    /// last (after a release fence), then renamed into place.
    ///
    /// # Errors
    ///
    /// I/O errors creating, mapping or renaming the file.
    pub fn create(path: &Path, nr: u32) -> std::io::Result<Producer> {
        let size = core::mem::size_of::<VcpuStats>() as u64;
        let offset = roundup(u64::from(HEADER_SIZE), u64::from(CACHELINE));
        let stride = roundup(size, u64::from(CACHELINE));
        let len = roundup(offset + u64::from(nr) * stride, PAGE);
        let tmp = path.with_extension("r1-tmp");
        let map = MemViewMut::create_file(&tmp, len)?;
        map.store::<u32>(0, 0);
        map.store::<u32>(4, offset as u32);
        map.store::<u32>(8, size as u32);
        map.store::<u32>(12, stride as u32);
        // Without an extension header a consumer takes every whole stride
        // of the mapping as a slot: every one starts unused (seq 0, pad and
        // counters inactive), not only the first `nr`.
        let slots = (len - offset) / stride;
        let mut off = offset;
        while off < len {
            let rel = off - offset;
            if rel % stride == 0 && rel / stride < slots {
                map.store::<u32>(off, 0);
                map.store::<u32>(off + 4, u32::MAX);
            } else {
                map.store::<u64>(off, INACTIVE);
            }
            off += 8;
        }
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

    /// Writes vCPU `vcpu`'s fields with `value(name)`.
    pub fn update(&mut self, vcpu: u32, value: impl Fn(&str) -> u64) {
        let Some(s) = self.seqs.get_mut(vcpu as usize) else {
            return;
        };
        let base = self.offset + u64::from(vcpu) * self.stride;
        let Some(seq) = self.map.atomic::<u32>(base) else {
            return;
        };
        seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (name, off) in FIELDS {
            self.map
                .store::<u64>(base + u64::from(*off), value(name) & !(1 << 63));
        }
        *s = s.wrapping_add(2);
        seq.store(*s, Ordering::Release);
    }
}

/// A consumer built from this revision.
#[derive(Debug)]
pub struct Consumer {
    view: MemView<'static>,
    header: VcpuShmemStats,
    nr: u32,
}

impl Consumer {
    /// Maps the table at `path` read-only and checks its header; `nr_vcpus`
    /// is the toolstack's vCPU count (v3's header does not carry it).
    ///
    /// # Errors
    ///
    /// [`CompatError::Incompatible`] for another magic,
    /// [`CompatError::Invalid`] for a header that breaks a layout rule.
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
        let bad = |what: &str| Err(CompatError::Invalid(format!("{what}: {header:?}")));
        if header.offset < HEADER_SIZE || header.offset % 8 != 0 {
            return bad("offset");
        }
        if header.size < 8
            || header.size % 8 != 0
            || header.stride < header.size
            || header.stride % 8 != 0
        {
            return bad("size or stride");
        }
        let end = u64::from(header.offset) + u64::from(nr_vcpus) * u64::from(header.stride);
        if end > view.len() as u64 {
            return bad("the vCPUs do not fit the mapping");
        }
        Ok(Consumer {
            view,
            header,
            nr: nr_vcpus,
        })
    }

    /// Reads vCPU `vcpu` consistently (at most 1024 attempts).
    ///
    /// # Errors
    ///
    /// [`CompatError::NoSuchVcpu`], [`CompatError::Busy`].
    pub fn read(&self, vcpu: u32) -> Result<Reading, CompatError> {
        if vcpu >= self.nr {
            return Err(CompatError::NoSuchVcpu { vcpu, nr: self.nr });
        }
        let base = u64::from(self.header.offset) + u64::from(vcpu) * u64::from(self.header.stride);
        for _ in 0..ATTEMPTS {
            let s1 = self.view.load::<u32>(base).unwrap_or(1);
            fence(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let fields: Vec<_> = FIELDS
                .iter()
                .map(|&(name, off)| {
                    // v3's rule: read a field only if it lies inside size.
                    let present = off + 8 <= self.header.size;
                    let v = present
                        .then(|| self.view.load::<u64>(base + u64::from(off)))
                        .flatten()
                        .filter(|v| v >> 63 == 0);
                    (name, v)
                })
                .collect();
            fence(Ordering::Acquire);
            if self.view.load::<u32>(base) == Some(s1) {
                return Ok(Reading { seq: s1, fields });
            }
        }
        Err(CompatError::Busy { vcpu })
    }
}
