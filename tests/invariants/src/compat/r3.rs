//! Revision r3: ABI r3 as `docs/abi.md` defines it, written from the spec
//! (and `docs/abi-r3-design.md`) only. The v3 header, the extension
//! header grown to 72 bytes (`clock`, the producer-specific area, the r3
//! descriptor array), the 56-byte vCPU record with `runstate` and
//! `runstate_entry_time`, producer-specific counters in their own area
//! after `size`, and the domain table's own magic `0xd057a75e`.
//!
//! Its consumer validates with the r3 rules (R1-R13, R18-R23), reads r2
//! tables with the r2 rules (`abi_size`, R17), reads only vCPU 0 of a
//! genuine v3 table (section 9.1), keeps producer-specific counters apart
//! from standard fields, and computes up-to-date runstate times at a
//! given `now` (R26).
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
pub const DOMAIN_STATS_MAGIC: u32 = 0xd057_a75e;
/// Magic of an r2 domain table, read as legacy.
pub const DOMAIN_STATS_MAGIC_R2: u32 = 0xaabb_ccde;
/// The frozen presence marker at byte 16 (`"vsx1"`).
pub const HDR_MARKER: u32 = 0x3178_7376;
/// `clock`: unnamed (r1, r2).
pub const CLOCK_NONE: u32 = 0;
/// `clock`: the host's `CLOCK_MONOTONIC`, ns.
pub const CLOCK_HOST_MONOTONIC: u32 = 1;
/// `clock`: Xen system time, ns.
pub const CLOCK_XEN_SYSTEM: u32 = 2;

/// The table header (bytes 0..16), v3's.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// [`VCPU_STATS_MAGIC`] or [`DOMAIN_STATS_MAGIC`].
    pub magic: u32,
    /// Where record 0 starts.
    pub offset: u32,
    /// `sizeof` of the standard record.
    pub size: u32,
    /// Distance between records.
    pub stride: u32,
}
// size: 16 bytes

/// The extension header (bytes 16..88): r2's 40 bytes, then r3's 32.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtHeader {
    /// [`HDR_MARKER`]; 0 on a v3 page.
    pub hdr_marker: u32,
    /// Bytes of extension header the producer knows: 72.
    pub ext_size: u32,
    /// Record slots.
    pub nr_records: u32,
    /// log2 of the page size.
    pub page_shift: u32,
    /// `== size` (R21).
    pub abi_size: u32,
    /// The r2 descriptor array: 0 in r3 (R21).
    pub desc_offset: u32,
    /// 0 in r3 (R21).
    pub desc_count: u32,
    /// 0 in r3 (R21).
    pub desc_stride: u32,
    /// Differs between two tables published under one name.
    pub generation: u64,
    /// Time base of every ns value.
    pub clock: u32,
    /// Zero.
    pub _rsvd0: u32,
    /// Record-relative start of the producer-specific area, 0 when none.
    pub xstats_offset: u32,
    /// Its bytes.
    pub xstats_size: u32,
    /// Where the r3 descriptor array starts, 0 when none.
    pub xdesc_offset: u32,
    /// Number of r3 descriptors.
    pub xdesc_count: u32,
    /// Distance between r3 descriptors.
    pub xdesc_stride: u32,
    /// Zero.
    pub _rsvd1: u32,
}
// size: 72 bytes

/// The r3 vCPU record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuStats {
    /// Odd while an update is in progress.
    pub seq: u32,
    /// Padding, all ones.
    pub _pad: u32,
    /// Time running, ns, accrued up to `runstate_entry_time`.
    pub runstate_running_time: u64,
    /// Time runnable, ns, idem.
    pub runstate_runnable_time: u64,
    /// Time blocked, ns, idem.
    pub runstate_blocked_time: u64,
    /// Time offline, ns, idem.
    pub runstate_offline_time: u64,
    /// The current state: 0 running, 1 runnable, 2 blocked, 3 offline.
    pub runstate: u64,
    /// When the current state was entered, ns in the table's clock.
    pub runstate_entry_time: u64,
}
// size: 56 bytes

/// The domain record (r2 and r3 alike).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DomainStats {
    /// Odd while an update is in progress.
    pub seq: u32,
    /// Padding, all ones.
    pub _pad: u32,
    /// vCPUs online.
    pub vcpus_online: u64,
    /// vCPUs the domain may have.
    pub vcpus_max: u64,
    /// ns since domain creation.
    pub uptime: u64,
}
// size: 32 bytes

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<Header>() == 16);
    assert!(size_of::<ExtHeader>() == 72);
    assert!(offset_of!(ExtHeader, generation) == 32);
    assert!(offset_of!(ExtHeader, clock) == 40);
    assert!(offset_of!(ExtHeader, xstats_offset) == 48);
    assert!(offset_of!(ExtHeader, xdesc_offset) == 56);
    assert!(offset_of!(ExtHeader, _rsvd1) == 68);
    assert!(size_of::<VcpuStats>() == 56);
    assert!(offset_of!(VcpuStats, runstate_offline_time) == 32);
    assert!(offset_of!(VcpuStats, runstate) == 40);
    assert!(offset_of!(VcpuStats, runstate_entry_time) == 48);
    assert!(size_of::<DomainStats>() == 32);
    assert!(offset_of!(DomainStats, uptime) == 24);
};

/// The standard vCPU fields this revision knows: `(name, offset)`.
pub const FIELDS: &[(&str, u32)] = &[
    ("runstate_running_time", 8),
    ("runstate_runnable_time", 16),
    ("runstate_blocked_time", 24),
    ("runstate_offline_time", 32),
    ("runstate", 40),
    ("runstate_entry_time", 48),
];

/// The standard domain fields: `(name, offset)`.
pub const DOMAIN_FIELDS: &[(&str, u32)] = &[("vcpus_online", 8), ("vcpus_max", 16), ("uptime", 24)];

/// The producer-specific counters this revision's producer publishes in
/// its area (counts, one word each). `preemptions` is not a standard name
/// in r3, so R20 allows it; a later revision's standard `preemptions`
/// ([`super::r4x`]) must never be confused with it.
pub const XCOUNTERS: &[&str] = &["halt_successful_poll", "preemptions"];

const HEADER_SIZE: u32 = 16;
const EXT_OFFSET: u64 = 16;
/// `ext_size` of r2.
const EXT_SIZE_R2: u32 = 40;
/// `ext_size` of r3.
const EXT_SIZE: u32 = 72;
/// End of the r3 header: `16 + 72`.
const HEADER_END: u64 = 88;
const DESC_SIZE: u32 = 64;
const NAME_LEN: usize = 48;
/// `sizeof` of the r3 vCPU record (R22: an r3 vCPU table's `size` is at
/// least this).
const VCPU_SIZE: u32 = 56;
/// The running time must be in every vCPU record (R22).
const VCPU_MIN_SIZE: u32 = 16;
const DOMAIN_SIZE: u32 = 32;
const CACHELINE: u64 = 64;
const PAGE_SHIFT: u32 = 12;
const PAGE: u64 = 1 << PAGE_SHIFT;
const INACTIVE: u64 = u64::MAX;
const INACTIVE_BIT: u64 = 1 << 63;
const ATTEMPTS: u32 = 1024;

const fn roundup(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// A descriptor's 64 bytes (section 2.3).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Desc {
    name: String,
    offset: u32,
    count: u32,
    kind: u8,
    unit: u8,
    base: u8,
    exponent: i8,
    bucket_size: u32,
    /// The name has a NUL within 48 bytes and only zeros after it.
    terminated: bool,
}

/// A one-word count: kind cumulative, unit none, base 10, exponent 0.
fn count_descriptor(name: &str, offset: u32) -> [u8; 64] {
    let mut d = [0u8; 64];
    d[..name.len()].copy_from_slice(name.as_bytes());
    d[48..52].copy_from_slice(&offset.to_ne_bytes());
    d[52..56].copy_from_slice(&1u32.to_ne_bytes());
    d[58] = 10;
    d
}

fn ext_bytes(e: &ExtHeader) -> Vec<u8> {
    let mut b = Vec::with_capacity(EXT_SIZE as usize);
    for w in [
        e.hdr_marker,
        e.ext_size,
        e.nr_records,
        e.page_shift,
        e.abi_size,
        e.desc_offset,
        e.desc_count,
        e.desc_stride,
    ] {
        b.extend_from_slice(&w.to_ne_bytes());
    }
    b.extend_from_slice(&e.generation.to_ne_bytes());
    for w in [
        e.clock,
        e._rsvd0,
        e.xstats_offset,
        e.xstats_size,
        e.xdesc_offset,
        e.xdesc_count,
        e.xdesc_stride,
        e._rsvd1,
    ] {
        b.extend_from_slice(&w.to_ne_bytes());
    }
    b
}

/// The layout of a table (section 8 of the spec).
#[derive(Clone, Copy, Debug)]
struct Layout {
    size: u64,
    xstats_offset: u64,
    xstats_size: u64,
    stride: u64,
    xdesc_offset: u64,
    offset: u64,
    len: u64,
}

fn layout(n: u32, s: u32, x: u64, d: u64) -> Layout {
    let s = u64::from(s);
    let xstats_offset = if x > 0 { s } else { 0 };
    let stride = roundup(s + x, CACHELINE).next_power_of_two();
    let offset = roundup(HEADER_END + u64::from(DESC_SIZE) * d, stride);
    Layout {
        size: s,
        xstats_offset,
        xstats_size: x,
        stride,
        xdesc_offset: if d > 0 { HEADER_END } else { 0 },
        offset,
        len: roundup(offset + u64::from(n) * stride, PAGE),
    }
}

/// Lays a table out in a new file: header (magic 0), extension header,
/// descriptors, and the record area formatted by P4 and P13 (seq 0 and
/// `_pad` all ones at every slot position, all ones elsewhere).
fn lay_out(
    tmp: &Path,
    l: &Layout,
    nr: u32,
    generation: u64,
    xcounters: &[&str],
) -> std::io::Result<MemViewMut<'static>> {
    let map = MemViewMut::create_file(tmp, l.len)?;
    map.store::<u32>(4, l.offset as u32);
    map.store::<u32>(8, l.size as u32);
    map.store::<u32>(12, l.stride as u32);
    let d = xcounters.len() as u32;
    let ext = ExtHeader {
        hdr_marker: HDR_MARKER,
        ext_size: EXT_SIZE,
        nr_records: nr,
        page_shift: PAGE_SHIFT,
        abi_size: l.size as u32,
        generation,
        clock: CLOCK_HOST_MONOTONIC,
        xstats_offset: l.xstats_offset as u32,
        xstats_size: l.xstats_size as u32,
        xdesc_offset: l.xdesc_offset as u32,
        xdesc_count: d,
        xdesc_stride: if d > 0 { DESC_SIZE } else { 0 },
        ..ExtHeader::default()
    };
    map.store_bytes(EXT_OFFSET, &ext_bytes(&ext));
    for (i, name) in (0u32..).zip(xcounters) {
        map.store_bytes(
            l.xdesc_offset + u64::from(i * DESC_SIZE),
            &count_descriptor(name, l.xstats_offset as u32 + 8 * i),
        );
    }
    let mut off = l.offset;
    while off < l.len {
        if (off - l.offset) % l.stride == 0 {
            map.store::<u32>(off, 0);
            map.store::<u32>(off + 4, u32::MAX);
        } else {
            map.store::<u64>(off, INACTIVE);
        }
        off += 8;
    }
    Ok(map)
}

/// Stores the magic with release semantics after a release fence (P7) and
/// renames the file into place.
fn publish(map: &MemViewMut<'static>, magic: u32, tmp: &Path, path: &Path) -> std::io::Result<()> {
    fence(Ordering::Release);
    if let Some(m) = map.atomic::<u32>(0) {
        m.store(magic, Ordering::Release);
    }
    std::fs::rename(tmp, path)
}

/// A producer built from this revision: a vCPU table with the r3 record,
/// `clock` 1 (the host's `CLOCK_MONOTONIC`), and [`XCOUNTERS`] in a
/// producer-specific area after the standard record, described by r3
/// descriptors.
#[derive(Debug)]
pub struct Producer {
    map: MemViewMut<'static>,
    layout: Layout,
    seqs: Vec<u32>,
}

impl Producer {
    /// Publishes a table of `nr` vCPUs at `path` with `generation`: laid
    /// out in a temporary file, every vCPU's record seeded with
    /// `value(vcpu, name)` (P10: standard fields and producer counters;
    /// their names differ in this revision), the magic stored last, then
    /// renamed into place.
    ///
    /// # Errors
    ///
    /// I/O errors creating, mapping or renaming the file.
    pub fn create(
        path: &Path,
        nr: u32,
        generation: u64,
        value: impl Fn(u32, &str) -> u64,
    ) -> std::io::Result<Producer> {
        let x = 8 * XCOUNTERS.len() as u64;
        let layout = layout(nr, VCPU_SIZE, x, XCOUNTERS.len() as u64);
        let tmp = path.with_extension("r3-tmp");
        let map = lay_out(&tmp, &layout, nr, generation, XCOUNTERS)?;
        let mut p = Producer {
            map,
            layout,
            seqs: vec![0; nr as usize],
        };
        for v in 0..nr {
            p.update(v, |f| value(v, f));
        }
        publish(&p.map, VCPU_STATS_MAGIC, &tmp, path)?;
        Ok(p)
    }

    /// Writes vCPU `vcpu`'s standard fields and producer counters with
    /// `value(name)` under the seq protocol (W1-W4).
    pub fn update(&mut self, vcpu: u32, value: impl Fn(&str) -> u64) {
        let Some(s) = self.seqs.get_mut(vcpu as usize) else {
            return;
        };
        let base = self.layout.offset + u64::from(vcpu) * self.layout.stride;
        let Some(seq) = self.map.atomic::<u32>(base) else {
            return;
        };
        seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (name, off) in FIELDS {
            self.map
                .store::<u64>(base + u64::from(*off), value(name) & !INACTIVE_BIT);
        }
        for (i, name) in (0u64..).zip(XCOUNTERS) {
            self.map.store::<u64>(
                base + self.layout.xstats_offset + 8 * i,
                value(name) & !INACTIVE_BIT,
            );
        }
        *s = s.wrapping_add(2);
        seq.store(*s, Ordering::Release);
    }
}

/// Publishes this revision's domain table at `path`: magic
/// [`DOMAIN_STATS_MAGIC`], the r3 header with `clock` 1, one 32-byte
/// record with [`DOMAIN_FIELDS`] set to `value(name)`, no producer area.
///
/// # Errors
///
/// I/O errors creating, mapping or renaming the file.
pub fn publish_domain(
    path: &Path,
    generation: u64,
    value: impl Fn(&str) -> u64,
) -> std::io::Result<()> {
    let l = layout(1, DOMAIN_SIZE, 0, 0);
    let tmp = path.with_extension("r3-tmp");
    let map = lay_out(&tmp, &l, 1, generation, &[])?;
    map.store::<u32>(l.offset, 1);
    for (name, o) in DOMAIN_FIELDS {
        map.store::<u64>(l.offset + u64::from(*o), value(name) & !INACTIVE_BIT);
    }
    map.store::<u32>(l.offset, 2);
    publish(&map, DOMAIN_STATS_MAGIC, &tmp, path)
}

/// The validated private copy of a head.
#[derive(Clone, Debug)]
struct Head {
    header: Header,
    /// `None` for a genuine v3 table.
    ext: Option<ExtHeader>,
    /// Record slots: `nr_records`, or the toolstack's count for v3.
    nr: u32,
    /// Where standard fields end for R17: `abi_size` (`size` in r3 and
    /// v3).
    abi_size: u32,
    /// Producer-specific counters: from the r3 array (r3 tables) or the r2
    /// array's non-standard entries (r2 tables).
    xdescs: Vec<Desc>,
}

impl Head {
    fn is_r3(&self) -> bool {
        self.ext.is_some_and(|e| e.ext_size >= EXT_SIZE)
    }

    fn clock(&self) -> u32 {
        self.ext
            .filter(|e| e.ext_size >= EXT_SIZE)
            .map_or(CLOCK_NONE, |e| e.clock)
    }
}

fn invalid<T>(rule: &str, why: String) -> Result<T, CompatError> {
    Err(CompatError::Invalid(format!("{rule}: {why}")))
}

/// Copies and checks the head of the table in `view`, in the spec's order
/// (section 3). `domain` says which table kind the caller reads and
/// `nr_vcpus` is the toolstack's count (used for a v3 table only).
fn validate(view: &MemView<'static>, domain: bool, nr_vcpus: u32) -> Result<Head, CompatError> {
    let len = view.len() as u64;
    let word = |o: u64| {
        view.load::<u32>(o)
            .ok_or_else(|| CompatError::Invalid(format!("R1/R7: no word at {o}")))
    };
    if len < u64::from(HEADER_SIZE) {
        return invalid("R1", format!("{len}-byte mapping"));
    }
    let magic = word(0)?;
    fence(Ordering::Acquire);
    let known = if domain {
        magic == DOMAIN_STATS_MAGIC || magic == DOMAIN_STATS_MAGIC_R2
    } else {
        magic == VCPU_STATS_MAGIC
    };
    if !known {
        return Err(CompatError::Incompatible {
            found: magic,
            expected: if domain {
                DOMAIN_STATS_MAGIC
            } else {
                VCPU_STATS_MAGIC
            },
        });
    }
    let h = Header {
        magic,
        offset: word(4)?,
        size: word(8)?,
        stride: word(12)?,
    };
    if h.offset < HEADER_SIZE {
        return invalid("R3", format!("{h:?}"));
    }
    if h.size < 8 || h.size % 8 != 0 {
        return invalid("R4", format!("{h:?}"));
    }
    if h.stride < h.size {
        return invalid("R5", format!("{h:?}"));
    }
    if h.offset % 8 != 0 || h.stride % 8 != 0 {
        return invalid("R6", format!("{h:?}"));
    }
    let offset = u64::from(h.offset);
    if offset > len {
        return invalid(
            "R7",
            format!("offset {offset} beyond the {len}-byte mapping"),
        );
    }
    // The extension header: present when offset >= 56 and the marker is
    // not zero; fields past 16 + ext_size are absent (zero).
    let ext = if offset >= EXT_OFFSET + u64::from(EXT_SIZE_R2) && word(EXT_OFFSET)? != 0 {
        let mut w = [0u32; 18];
        for (i, x) in (0u64..).zip(w.iter_mut().take(10)) {
            *x = word(EXT_OFFSET + 4 * i)?;
        }
        // The r3 fields exist when the producer knows them and they lie
        // inside the head (R9 checks `16 + ext_size <= offset` below).
        if w[1] >= EXT_SIZE && offset >= HEADER_END {
            for (i, x) in (10u64..).zip(w.iter_mut().skip(10)) {
                *x = word(EXT_OFFSET + 4 * i)?;
            }
        }
        Some(ExtHeader {
            hdr_marker: w[0],
            ext_size: w[1],
            nr_records: w[2],
            page_shift: w[3],
            abi_size: w[4],
            desc_offset: w[5],
            desc_count: w[6],
            desc_stride: w[7],
            generation: u64::from(w[8]) | u64::from(w[9]) << 32,
            clock: w[10],
            _rsvd0: w[11],
            xstats_offset: w[12],
            xstats_size: w[13],
            xdesc_offset: w[14],
            xdesc_count: w[15],
            xdesc_stride: w[16],
            _rsvd1: w[17],
        })
    } else {
        None
    };
    if let Some(e) = ext {
        if e.hdr_marker != HDR_MARKER {
            return invalid("R9", format!("marker {:#010x}", e.hdr_marker));
        }
        if e.ext_size < EXT_SIZE_R2
            || e.ext_size % 8 != 0
            || u64::from(HEADER_SIZE) + u64::from(e.ext_size) > offset
        {
            return invalid("R9", format!("ext_size {} (offset {offset})", e.ext_size));
        }
        if !(12..=30).contains(&e.page_shift) {
            return invalid("R9", format!("page_shift {}", e.page_shift));
        }
        if e.abi_size < 8 || e.abi_size % 8 != 0 || e.abi_size > h.size {
            return invalid("R9", format!("abi_size {} (size {})", e.abi_size, h.size));
        }
        if e.desc_count > 0
            && (e.desc_stride < DESC_SIZE
                || e.desc_stride % 8 != 0
                || u64::from(e.desc_offset) < u64::from(HEADER_SIZE) + u64::from(e.ext_size)
                || e.desc_offset % 8 != 0
                || u64::from(e.desc_offset) + u64::from(e.desc_count) * u64::from(e.desc_stride)
                    > offset)
        {
            return invalid("R10", format!("{e:?}"));
        }
    }
    let (nr, page, abi_size) = match ext {
        Some(e) => (e.nr_records, 1u64 << e.page_shift, e.abi_size),
        None => (nr_vcpus, PAGE, h.size),
    };
    let stride = u64::from(h.stride);
    // R7 and R8 count a v3 table's slots from the mapping length.
    let slots = match ext {
        Some(_) => u64::from(nr),
        None if stride > 0 => (len - offset) / stride,
        None => 0,
    };
    if offset + slots * stride > len {
        return invalid(
            "R7",
            format!("{slots} slots of {stride} beyond {len} bytes"),
        );
    }
    let (xoff, xsize) = ext.filter(|e| e.ext_size >= EXT_SIZE).map_or((0, 0), |e| {
        (u64::from(e.xstats_offset), u64::from(e.xstats_size))
    });
    let extent = u64::from(h.size).max(xoff + xsize);
    let period = page / gcd(stride, page);
    for i in 0..slots.min(period) {
        let start = offset + i * stride;
        if start / page != (start + extent - 1) / page {
            return invalid("R8", format!("slot {i} at {start} crosses a page"));
        }
    }
    if domain && nr != 1 {
        return invalid("R18", format!("{nr} records"));
    }
    let r3 = ext.is_some_and(|e| e.ext_size >= EXT_SIZE);
    let mut xdescs = Vec::new();
    if let Some(e) = ext.filter(|_| r3) {
        if e.xstats_size > 0 {
            if xoff < u64::from(h.size) || xoff % 8 != 0 || xsize % 8 != 0 || xoff + xsize > stride
            {
                return invalid(
                    "R19",
                    format!("area [{xoff}, +{xsize}) (size {}, stride {stride})", h.size),
                );
            }
        } else if xoff != 0 {
            return invalid("R19", format!("xstats_offset {xoff} with no area"));
        }
        if e.xdesc_count > 0 {
            if e.xstats_size == 0
                || e.xdesc_stride < DESC_SIZE
                || e.xdesc_stride % 8 != 0
                || u64::from(e.xdesc_offset) < u64::from(HEADER_SIZE) + u64::from(e.ext_size)
                || e.xdesc_offset % 8 != 0
                || u64::from(e.xdesc_offset) + u64::from(e.xdesc_count) * u64::from(e.xdesc_stride)
                    > offset
            {
                return invalid("R20", format!("{e:?}"));
            }
        } else if e.xdesc_offset != 0 || e.xdesc_stride != 0 {
            return invalid("R20", format!("{e:?}"));
        }
        if e.abi_size != h.size || e.desc_offset != 0 || e.desc_count != 0 || e.desc_stride != 0 {
            return invalid("R21", format!("{e:?}"));
        }
    }
    if !domain && (h.size < VCPU_MIN_SIZE || (r3 && h.size < VCPU_SIZE)) {
        return invalid("R22", format!("size {}", h.size));
    }
    if domain && ext.is_none() {
        return invalid("R23", "a domain table without the extension header".into());
    }
    let std_fields = if domain { DOMAIN_FIELDS } else { FIELDS };
    let std_offset = |name: &str| std_fields.iter().find(|f| f.0 == name).map(|f| f.1);
    if let Some(e) = ext {
        let (at, count, step, rule) = if r3 {
            (e.xdesc_offset, e.xdesc_count, e.xdesc_stride, "R20")
        } else {
            (e.desc_offset, e.desc_count, e.desc_stride, "R13")
        };
        let mut descs: Vec<Desc> = Vec::new();
        for i in 0..count {
            let d = read_desc(view, u64::from(at) + u64::from(i) * u64::from(step))?;
            check_desc(&d, i)?;
            let end = u64::from(d.offset) + 8 * u64::from(d.count);
            let (lo, hi) = if r3 {
                (xoff, xoff + xsize)
            } else {
                (8, u64::from(h.size))
            };
            if d.offset % 8 != 0 || u64::from(d.offset) < lo || end > hi {
                return invalid(
                    rule,
                    format!("descriptor {i} ({}) outside [{lo}, {hi})", d.name),
                );
            }
            for (j, o) in descs.iter().enumerate() {
                let o_end = u64::from(o.offset) + 8 * u64::from(o.count);
                if o.name == d.name {
                    return invalid("R11", format!("descriptors {j} and {i} share a name"));
                }
                if u64::from(d.offset) < o_end && u64::from(o.offset) < end {
                    return invalid(rule, format!("descriptors {j} and {i} overlap"));
                }
            }
            if let Some(o) = std_offset(&d.name) {
                // R20 forbids the standard names of the producer's
                // revision: those of the fields inside its `size`. A name
                // this revision made standard past that `size` is a
                // producer counter of an earlier revision, valid there.
                if r3 && o + 8 <= h.size {
                    return invalid(
                        "R20",
                        format!("descriptor {i} has the standard name {}", d.name),
                    );
                }
                // R13: a standard name keeps its offset, for the standard
                // fields the producer's revision has (inside abi_size); a
                // name this revision made standard later is, in an r2
                // table, a producer counter (R17).
                if o + 8 <= abi_size && (d.offset != o || d.count != 1) {
                    return invalid("R13", format!("descriptor {i}: {} moved", d.name));
                }
            }
            descs.push(d);
        }
        // Standard fields are known by position; what else a descriptor
        // describes is a producer-specific counter, keyed apart (R17: a
        // standard name past abi_size is not the standard field either).
        xdescs = descs
            .into_iter()
            .filter(|d| std_offset(&d.name).is_none_or(|o| o + 8 > abi_size))
            .collect();
    }
    Ok(Head {
        header: h,
        ext,
        nr,
        abi_size,
        xdescs,
    })
}

const fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let r = a % b;
        a = b;
        b = r;
    }
    if a == 0 {
        1
    } else {
        a
    }
}

fn read_desc(view: &MemView<'static>, at: u64) -> Result<Desc, CompatError> {
    let mut raw = [0u8; 64];
    for (i, chunk) in (0u64..).zip(raw.chunks_exact_mut(4)) {
        let w = view
            .load::<u32>(at + 4 * i)
            .ok_or_else(|| CompatError::Invalid(format!("R20: descriptor at {at} unreadable")))?;
        chunk.copy_from_slice(&w.to_ne_bytes());
    }
    let name_len = raw[..NAME_LEN]
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(NAME_LEN);
    let u32_at = |o: usize| u32::from_ne_bytes([raw[o], raw[o + 1], raw[o + 2], raw[o + 3]]);
    Ok(Desc {
        name: String::from_utf8_lossy(&raw[..name_len]).into_owned(),
        offset: u32_at(48),
        count: u32_at(52),
        kind: raw[56],
        unit: raw[57],
        base: raw[58],
        exponent: raw[59] as i8,
        bucket_size: u32_at(60),
        terminated: name_len < NAME_LEN && raw[name_len..NAME_LEN].iter().all(|b| *b == 0),
    })
}

/// R11 (name form) and R12 (kind, unit, base, exponent, count).
fn check_desc(d: &Desc, i: u32) -> Result<(), CompatError> {
    if !d.terminated || d.name.is_empty() || !d.name.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return invalid("R11", format!("descriptor {i}: name {:?}", d.name));
    }
    let hist = d.kind == 3 || d.kind == 4;
    let exponent_fits = match d.unit {
        2 => d.exponent <= 0,
        4 => d.exponent == 0,
        _ => d.exponent >= 0,
    };
    if d.kind > 4
        || d.unit > 4
        || (d.base != 10 && d.base != 2)
        || !exponent_fits
        || d.count < 1
        || (!hist && d.count != 1)
        || ((d.kind == 3) != (d.bucket_size > 0))
    {
        return invalid("R12", format!("descriptor {i}: {d:?}"));
    }
    Ok(())
}

/// Copies the words `[8, 8 + 8 * n)` of the record at `base` between S1
/// and S4 (at most 1024 attempts): `(seq, words)`.
fn read_record(view: &MemView<'static>, base: u64, n: u64) -> Option<(u32, Vec<u64>)> {
    let mut words = vec![0u64; n as usize];
    for _ in 0..ATTEMPTS {
        let s1 = view.load::<u32>(base)?;
        fence(Ordering::Acquire);
        if s1 & 1 == 1 {
            std::hint::spin_loop();
            continue;
        }
        for (k, w) in (0u64..).zip(words.iter_mut()) {
            *w = view.load::<u64>(base + 8 + 8 * k)?;
        }
        fence(Ordering::Acquire);
        if view.load::<u32>(base) == Some(s1) {
            return Some((s1, words));
        }
    }
    None
}

/// The word at record-relative `off` of a copy, `None` when inactive or
/// outside the copy.
fn word_at(words: &[u64], off: u32) -> Option<u64> {
    let k = usize::try_from(off.checked_sub(8)? / 8).ok()?;
    words.get(k).copied().filter(|v| v & INACTIVE_BIT == 0)
}

/// R26: the up-to-date runstate times of a copy, or `None` (not up to
/// date) when the clock is not 1 or 2, `now` is not given, the state or
/// entry time is inactive or unknown, or the current state's time is
/// inactive.
fn up_to_date(
    clock: u32,
    now: Option<u64>,
    std: &[(&'static str, Option<u64>)],
) -> Option<[Option<u64>; 4]> {
    if clock != CLOCK_HOST_MONOTONIC && clock != CLOCK_XEN_SYSTEM {
        return None;
    }
    let now = now?;
    let get = |name: &str| std.iter().find(|(n, _)| *n == name).and_then(|(_, v)| *v);
    let s = usize::try_from(get("runstate")?).ok().filter(|s| *s <= 3)?;
    let e = get("runstate_entry_time")?;
    let mut t = [0, 1, 2, 3].map(|k| std.get(k).and_then(|(_, v)| *v));
    let ts = t[s]?;
    let v = ts.saturating_add(now.saturating_sub(e));
    t[s] = (v & INACTIVE_BIT == 0).then_some(v);
    Some(t)
}

/// A vCPU-table consumer built from this revision.
#[derive(Debug)]
pub struct Consumer {
    view: MemView<'static>,
    head: Head,
}

impl Consumer {
    /// Maps the vCPU table at `path` read-only and validates a copy of its
    /// head with the r3 rules (r2 rules for an r2 table). `nr_vcpus` is
    /// the toolstack's vCPU count, used only for a genuine v3 table.
    ///
    /// # Errors
    ///
    /// [`CompatError::Incompatible`] for another magic (R2),
    /// [`CompatError::Invalid`] naming the rule the head breaks.
    pub fn open(path: &Path, nr_vcpus: u32) -> Result<Consumer, CompatError> {
        let (view, _) = MemView::map_file(path)?;
        let head = validate(&view, false, nr_vcpus)?;
        Ok(Consumer { view, head })
    }

    /// Record slots (vCPU ids): `nr_records`, or the toolstack's count
    /// for a v3 table.
    pub fn nr_vcpus(&self) -> u32 {
        self.head.nr
    }

    /// The table's clock (`CLOCK_NONE` for r1 and r2 tables).
    pub fn clock(&self) -> u32 {
        self.head.clock()
    }

    /// Whether the table has the r3 header.
    pub fn is_r3(&self) -> bool {
        self.head.is_r3()
    }

    /// Reads vCPU `vcpu` without `now`: times as of the producer's last
    /// update (as [`Consumer::read_at`] with `None`).
    ///
    /// # Errors
    ///
    /// As [`Consumer::read_at`].
    pub fn read(&self, vcpu: u32) -> Result<Reading, CompatError> {
        self.read_at(vcpu, None)
    }

    /// Reads vCPU `vcpu` consistently (at most 1024 attempts): the
    /// standard fields that fit `abi_size`, the producer counters through
    /// descriptors, and, given `now` in the table's clock read after the
    /// copy, the up-to-date runstate times (R26).
    ///
    /// # Errors
    ///
    /// [`CompatError::Unknown`] for vCPU 1 and above of a genuine v3
    /// table, [`CompatError::NoSuchVcpu`], [`CompatError::Busy`].
    pub fn read_at(&self, vcpu: u32, now: Option<u64>) -> Result<Reading, CompatError> {
        if self.head.ext.is_none() && vcpu > 0 {
            return Err(CompatError::Unknown { vcpu });
        }
        if vcpu >= self.head.nr {
            return Err(CompatError::NoSuchVcpu {
                vcpu,
                nr: self.head.nr,
            });
        }
        let h = &self.head.header;
        let base = u64::from(h.offset) + u64::from(vcpu) * u64::from(h.stride);
        let (xoff, xsize) = self
            .head
            .ext
            .filter(|_| self.head.is_r3())
            .map_or((0, 0), |e| {
                (u64::from(e.xstats_offset), u64::from(e.xstats_size))
            });
        let extent = u64::from(h.size).max(xoff + xsize);
        let (seq, words) =
            read_record(&self.view, base, (extent - 8) / 8).ok_or(CompatError::Busy { vcpu })?;
        let fields: Vec<_> = FIELDS
            .iter()
            .map(|&(name, off)| {
                // R17: a standard field exists only inside abi_size.
                let v = (off + 8 <= self.head.abi_size)
                    .then(|| word_at(&words, off))
                    .flatten();
                (name, v)
            })
            .collect();
        let producer = self
            .head
            .xdescs
            .iter()
            .filter(|d| d.count == 1)
            .map(|d| (d.name.clone(), word_at(&words, d.offset)))
            .collect();
        let up_to_date = up_to_date(self.head.clock(), now, &fields);
        Ok(Reading {
            seq,
            fields,
            producer,
            up_to_date,
        })
    }
}

/// A domain-table consumer built from this revision: it reads both the
/// r3 magic and the r2 one (legacy).
#[derive(Debug)]
pub struct DomainConsumer {
    view: MemView<'static>,
    head: Head,
}

impl DomainConsumer {
    /// Maps the domain table at `path` read-only and validates it.
    ///
    /// # Errors
    ///
    /// [`CompatError::Incompatible`] for another magic (R2),
    /// [`CompatError::Invalid`] naming the rule the head breaks.
    pub fn open(path: &Path) -> Result<DomainConsumer, CompatError> {
        let (view, _) = MemView::map_file(path)?;
        let head = validate(&view, true, 1)?;
        Ok(DomainConsumer { view, head })
    }

    /// The magic the table carries.
    pub fn magic(&self) -> u32 {
        self.head.header.magic
    }

    /// Reads the domain record consistently.
    ///
    /// # Errors
    ///
    /// [`CompatError::Busy`].
    pub fn read(&self) -> Result<Reading, CompatError> {
        let h = &self.head.header;
        let (seq, words) = read_record(&self.view, u64::from(h.offset), u64::from(h.size - 8) / 8)
            .ok_or(CompatError::Busy { vcpu: 0 })?;
        let fields = DOMAIN_FIELDS
            .iter()
            .map(|&(name, off)| {
                let v = (off + 8 <= self.head.abi_size)
                    .then(|| word_at(&words, off))
                    .flatten();
                (name, v)
            })
            .collect();
        Ok(Reading::standard(seq, fields))
    }
}
