//! Revision r2: ABI r2 as `docs/abi.md` defined it before r3. The v3
//! header and record prefix, the four runstate times, an extension header
//! (record count, page size, `abi_size`, generation) and descriptors in
//! the header's reserved area; producer-specific counters appended to the
//! record in `[abi_size, size)`, described by descriptors; a domain table
//! with magic `0xaabbccde`.
//!
//! Its consumer reads a table without extension header (RFC v3) as r2
//! said: `nr_vcpus` from the toolstack, vCPU i at `offset + i * stride`.
//! On a genuine v3 page that is right only for vCPU 0 (v3's writer used
//! another address, `docs/abi.md` section 9.1): the defect r3 corrects.
//!
//! Everything below is this revision's own copy of the definitions; it
//! shares no code with `vstats-abi` on purpose.

use std::{
    path::Path,
    sync::atomic::{fence, Ordering},
};

use super::{CompatError, Reading};
use vstats_consumer::mem::{MemView, MemViewMut};

/// Magic of a vCPU table.
pub const VCPU_STATS_MAGIC: u32 = 0xaabb_ccdd;
/// Magic of a domain table.
pub const DOMAIN_STATS_MAGIC: u32 = 0xaabb_ccde;
/// Magic of the extension header (`"vsx1"`).
pub const EXT_MAGIC: u32 = u32::from_le_bytes(*b"vsx1");

/// The table header.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// [`VCPU_STATS_MAGIC`].
    pub magic: u32,
    /// Where record 0 starts.
    pub offset: u32,
    /// `sizeof(VcpuStats)` of the producer.
    pub size: u32,
    /// Distance between records.
    pub stride: u32,
}
// size: 16 bytes

/// The extension header at byte 16.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtHeader {
    /// [`EXT_MAGIC`], 0 when absent.
    pub ext_magic: u32,
    /// `sizeof(ExtHeader)` of the producer.
    pub ext_size: u32,
    /// Record slots.
    pub nr_records: u32,
    /// log2 of the page size.
    pub page_shift: u32,
    /// Bytes of the record the producer's revision defines.
    pub abi_size: u32,
    /// Where the descriptors start.
    pub desc_offset: u32,
    /// Number of descriptors.
    pub desc_count: u32,
    /// Distance between descriptors.
    pub desc_stride: u32,
    /// Changes when the producer restarts.
    pub generation: u64,
}
// size: 40 bytes

/// The vCPU record of r2.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuStats {
    /// Odd while an update is in progress.
    pub seq: u32,
    /// Padding, all ones.
    pub _pad: u32,
    /// Time running, ns.
    pub runstate_running_time: u64,
    /// Time runnable, ns.
    pub runstate_runnable_time: u64,
    /// Time blocked, ns.
    pub runstate_blocked_time: u64,
    /// Time offline, ns.
    pub runstate_offline_time: u64,
}
// size: 40 bytes

const _: () = {
    assert!(core::mem::size_of::<Header>() == 16);
    assert!(core::mem::size_of::<ExtHeader>() == 40);
    assert!(core::mem::offset_of!(ExtHeader, generation) == 32);
    assert!(core::mem::size_of::<VcpuStats>() == 40);
    assert!(core::mem::offset_of!(VcpuStats, runstate_offline_time) == 32);
};

/// A field: name, offset, kind (0 cumulative, 1 instant, 2 peak), unit (0
/// none, 2 seconds), exponent.
pub type Field = (&'static str, u32, u8, u8, i8);

/// The standard fields this revision knows.
pub const FIELDS: &[Field] = &[
    ("runstate_running_time", 8, 0, 2, -9),
    ("runstate_runnable_time", 16, 0, 2, -9),
    ("runstate_blocked_time", 24, 0, 2, -9),
    ("runstate_offline_time", 32, 0, 2, -9),
];

/// The producer-specific counters this revision's producer appends after
/// the standard record, at `[abi_size, size)` (counts). `preemptions` is a
/// producer counter here; a later revision may make the same name a
/// standard field (see [`super::r4x`]).
pub const XCOUNTERS: &[&str] = &["halt_successful_poll", "preemptions", "max_halt_wait_ns"];

/// Kind, unit and exponent of a producer counter: `max_halt_wait_ns` is a
/// peak in ns, the others are counts.
fn xcounter_kind(name: &str) -> (u8, u8, i8) {
    if name == "max_halt_wait_ns" {
        (2, 2, -9)
    } else {
        (0, 0, 0)
    }
}

/// The standard fields of the domain record: `(name, offset)`.
pub const DOMAIN_FIELDS: &[(&str, u32)] = &[("vcpus_online", 8), ("vcpus_max", 16), ("uptime", 24)];

/// `sizeof` of the domain record.
const DOMAIN_SIZE: u32 = 32;

const HEADER_SIZE: u32 = 16;
const EXT_OFFSET: u64 = 16;
const EXT_SIZE: u32 = 40;
const DESC_SIZE: u32 = 64;
const CACHELINE: u64 = 64;
const PAGE: u64 = 4096;
const INACTIVE: u64 = u64::MAX;
const ATTEMPTS: u32 = 1024;

const fn roundup(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// The 64 bytes of a descriptor.
fn descriptor(f: &Field) -> [u8; 64] {
    let (name, offset, kind, unit, exponent) = *f;
    let mut d = [0u8; 64];
    d[..name.len()].copy_from_slice(name.as_bytes());
    d[48..52].copy_from_slice(&offset.to_ne_bytes());
    d[52..56].copy_from_slice(&1u32.to_ne_bytes());
    d[56] = kind;
    d[57] = unit;
    d[58] = 10;
    d[59] = exponent as u8;
    d
}

/// The descriptors a producer of this revision publishes: the standard
/// fields, then [`XCOUNTERS`] from `abi_size` on.
fn descriptors(abi_size: u32) -> Vec<Field> {
    let mut d = FIELDS.to_vec();
    for (i, name) in (0u32..).zip(XCOUNTERS) {
        let (kind, unit, exponent) = xcounter_kind(name);
        d.push((name, abi_size + 8 * i, kind, unit, exponent));
    }
    d
}

/// A producer built from this revision.
#[derive(Debug)]
pub struct Producer {
    map: MemViewMut<'static>,
    offset: u64,
    stride: u64,
    descs: Vec<Field>,
    seqs: Vec<u32>,
}

impl Producer {
    /// Publishes a table of `nr` vCPUs at `path` with `generation`: built
    /// in a temporary file (header, extension header, descriptors of the
    /// standard fields and of [`XCOUNTERS`], every counter and padding
    /// word inactive), magic stored last after a release fence, then
    /// renamed into place. `size` covers the producer counters, `abi_size`
    /// the standard record.
    ///
    /// # Errors
    ///
    /// I/O errors creating, mapping or renaming the file.
    pub fn create(path: &Path, nr: u32, generation: u64) -> std::io::Result<Producer> {
        let abi_size = core::mem::size_of::<VcpuStats>() as u64;
        let size = abi_size + 8 * XCOUNTERS.len() as u64;
        let stride = roundup(size, CACHELINE).next_power_of_two();
        let descs = descriptors(abi_size as u32);
        let desc_offset = EXT_OFFSET + u64::from(EXT_SIZE);
        let offset = roundup(
            desc_offset + descs.len() as u64 * u64::from(DESC_SIZE),
            stride,
        );
        let len = roundup(offset + u64::from(nr) * stride, PAGE);
        let tmp = path.with_extension("r2-tmp");
        let map = MemViewMut::create_file(&tmp, len)?;
        map.store::<u32>(0, 0);
        map.store::<u32>(4, offset as u32);
        map.store::<u32>(8, size as u32);
        map.store::<u32>(12, stride as u32);
        let mut ext = Vec::with_capacity(40);
        for w in [
            EXT_MAGIC,
            EXT_SIZE,
            nr,
            PAGE.trailing_zeros(),
            abi_size as u32,
            desc_offset as u32,
            descs.len() as u32,
            DESC_SIZE,
        ] {
            ext.extend_from_slice(&w.to_ne_bytes());
        }
        ext.extend_from_slice(&generation.to_ne_bytes());
        map.store_bytes(EXT_OFFSET, &ext);
        for (i, f) in descs.iter().enumerate() {
            map.store_bytes(
                desc_offset + i as u64 * u64::from(DESC_SIZE),
                &descriptor(f),
            );
        }
        let mut off = offset;
        while off < len {
            let rel = off - offset;
            if rel % stride == 0 && rel / stride < u64::from(nr) {
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
            descs,
            seqs: vec![0; nr as usize],
        })
    }

    /// Writes vCPU `vcpu`'s fields, standard and producer-specific (their
    /// names differ in this revision), with `value(name)`.
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
        for (name, off, ..) in &self.descs {
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
    header: Header,
    abi_size: u32,
    nr: u32,
}

impl Consumer {
    /// Maps the table at `path` read-only and checks its header and
    /// extension header (when present). `nr_vcpus` is the toolstack's vCPU
    /// count, used only for a table without extension header (RFC v3).
    ///
    /// # Errors
    ///
    /// [`CompatError::Incompatible`] for another magic,
    /// [`CompatError::Invalid`] for a header that breaks a layout rule.
    pub fn open(path: &Path, nr_vcpus: u32) -> Result<Consumer, CompatError> {
        let (view, _) = MemView::map_file(path)?;
        let word = |o| {
            view.load::<u32>(o)
                .ok_or_else(|| CompatError::Invalid(format!("no word at {o}")))
        };
        let magic = word(0)?;
        fence(Ordering::Acquire);
        if magic != VCPU_STATS_MAGIC {
            return Err(CompatError::Incompatible {
                found: magic,
                expected: VCPU_STATS_MAGIC,
            });
        }
        let h = Header {
            magic,
            offset: word(4)?,
            size: word(8)?,
            stride: word(12)?,
        };
        let bad = |what: &str| Err(CompatError::Invalid(format!("{what}: {h:?}")));
        if h.offset < HEADER_SIZE || h.offset % 8 != 0 {
            return bad("offset");
        }
        if h.size < 8 || h.size % 8 != 0 || h.stride < h.size || h.stride % 8 != 0 {
            return bad("size or stride");
        }
        let has_ext =
            u64::from(h.offset) >= EXT_OFFSET + u64::from(EXT_SIZE) && word(EXT_OFFSET)? != 0;
        let (abi_size, nr) = if has_ext {
            if word(EXT_OFFSET)? != EXT_MAGIC {
                return bad("extension header magic");
            }
            let abi = word(EXT_OFFSET + 16)?;
            if abi < 8 || abi % 8 != 0 || abi > h.size {
                return bad("abi_size");
            }
            (abi, word(EXT_OFFSET + 8)?)
        } else {
            (h.size, nr_vcpus)
        };
        let end = u64::from(h.offset) + u64::from(nr) * u64::from(h.stride);
        if end > view.len() as u64 {
            return bad("the records do not fit the mapping");
        }
        Ok(Consumer {
            view,
            header: h,
            abi_size,
            nr,
        })
    }

    /// Record slots.
    pub fn nr_vcpus(&self) -> u32 {
        self.nr
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
                .map(|&(name, off, ..)| {
                    // R17: a standard field exists only inside abi_size.
                    let present = off + 8 <= self.abi_size;
                    let v = present
                        .then(|| self.view.load::<u64>(base + u64::from(off)))
                        .flatten()
                        .filter(|v| v >> 63 == 0);
                    (name, v)
                })
                .collect();
            fence(Ordering::Acquire);
            if self.view.load::<u32>(base) == Some(s1) {
                return Ok(Reading::standard(s1, fields));
            }
        }
        Err(CompatError::Busy { vcpu })
    }
}

/// Publishes this revision's domain table at `path`: one 32-byte record
/// with [`DOMAIN_FIELDS`] set to `value(name)`, magic
/// [`DOMAIN_STATS_MAGIC`] stored last.
///
/// # Errors
///
/// I/O errors creating, mapping or renaming the file.
pub fn publish_domain(
    path: &Path,
    generation: u64,
    value: impl Fn(&str) -> u64,
) -> std::io::Result<()> {
    let stride = roundup(u64::from(DOMAIN_SIZE), CACHELINE).next_power_of_two();
    let offset = roundup(EXT_OFFSET + u64::from(EXT_SIZE), stride);
    let len = roundup(offset + stride, PAGE);
    let tmp = path.with_extension("r2-tmp");
    let map = MemViewMut::create_file(&tmp, len)?;
    map.store::<u32>(4, offset as u32);
    map.store::<u32>(8, DOMAIN_SIZE);
    map.store::<u32>(12, stride as u32);
    let mut ext = Vec::with_capacity(40);
    for w in [
        EXT_MAGIC,
        EXT_SIZE,
        1,
        PAGE.trailing_zeros(),
        DOMAIN_SIZE,
        0,
        0,
        0,
    ] {
        ext.extend_from_slice(&w.to_ne_bytes());
    }
    ext.extend_from_slice(&generation.to_ne_bytes());
    map.store_bytes(EXT_OFFSET, &ext);
    let mut off = offset;
    while off < len {
        map.store::<u64>(off, INACTIVE);
        off += 8;
    }
    map.store::<u32>(offset, 0);
    for (name, o) in DOMAIN_FIELDS {
        map.store::<u64>(offset + u64::from(*o), value(name) & !(1 << 63));
    }
    map.store::<u32>(offset, 2);
    fence(Ordering::Release);
    if let Some(m) = map.atomic::<u32>(0) {
        m.store(DOMAIN_STATS_MAGIC, Ordering::Release);
    }
    std::fs::rename(&tmp, path)
}

/// A domain-table consumer built from this revision: it knows the magic
/// [`DOMAIN_STATS_MAGIC`] and no other.
#[derive(Debug)]
pub struct DomainConsumer {
    view: MemView<'static>,
    offset: u64,
    abi_size: u32,
}

impl DomainConsumer {
    /// Maps the domain table at `path` read-only and checks its header.
    ///
    /// # Errors
    ///
    /// [`CompatError::Incompatible`] for another magic (rule R2 of this
    /// revision), [`CompatError::Invalid`] for a header that breaks a
    /// layout rule (R18: one record, with the extension header).
    pub fn open(path: &Path) -> Result<DomainConsumer, CompatError> {
        let (view, _) = MemView::map_file(path)?;
        let word = |o| {
            view.load::<u32>(o)
                .ok_or_else(|| CompatError::Invalid(format!("no word at {o}")))
        };
        let magic = word(0)?;
        fence(Ordering::Acquire);
        if magic != DOMAIN_STATS_MAGIC {
            return Err(CompatError::Incompatible {
                found: magic,
                expected: DOMAIN_STATS_MAGIC,
            });
        }
        let (offset, size, stride) = (word(4)?, word(8)?, word(12)?);
        let bad = |what: &str| {
            Err(CompatError::Invalid(format!(
                "{what}: offset {offset} size {size} stride {stride}"
            )))
        };
        if offset % 8 != 0 || size < 8 || size % 8 != 0 || stride < size || stride % 8 != 0 {
            return bad("R3-R6");
        }
        if u64::from(offset) < EXT_OFFSET + u64::from(EXT_SIZE) || word(EXT_OFFSET)? != EXT_MAGIC {
            return bad("R18: a domain table has the extension header");
        }
        let abi = word(EXT_OFFSET + 16)?;
        if abi < 8 || abi % 8 != 0 || abi > size {
            return bad("abi_size");
        }
        if word(EXT_OFFSET + 8)? != 1 {
            return bad("R18: one record");
        }
        if u64::from(offset) + u64::from(stride) > view.len() as u64 {
            return bad("the record does not fit the mapping");
        }
        Ok(DomainConsumer {
            view,
            offset: u64::from(offset),
            abi_size: abi,
        })
    }

    /// Reads the domain record consistently (at most 1024 attempts).
    ///
    /// # Errors
    ///
    /// [`CompatError::Busy`].
    pub fn read(&self) -> Result<Reading, CompatError> {
        let base = self.offset;
        for _ in 0..ATTEMPTS {
            let s1 = self.view.load::<u32>(base).unwrap_or(1);
            fence(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let fields: Vec<_> = DOMAIN_FIELDS
                .iter()
                .map(|&(name, off)| {
                    let v = (off + 8 <= self.abi_size)
                        .then(|| self.view.load::<u64>(base + u64::from(off)))
                        .flatten()
                        .filter(|v| v >> 63 == 0);
                    (name, v)
                })
                .collect();
            fence(Ordering::Acquire);
            if self.view.load::<u32>(base) == Some(s1) {
                return Ok(Reading::standard(s1, fields));
            }
        }
        Err(CompatError::Busy { vcpu: 0 })
    }
}
