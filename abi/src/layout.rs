//! Layout arithmetic: where everything lives, computed once by the
//! producer from a few parameters.
//!
//! The rules (`docs/abi.md`, section "Layout"): the stride is the record
//! size rounded up to the cacheline and then to a power of two, so it
//! divides the page; record 0 starts at the head (header, extension header,
//! descriptors) rounded up to the stride. Every record therefore starts at
//! a multiple of the stride and no record crosses a page boundary, which is
//! what lets a hypervisor back the table with frames that are not
//! virtually contiguous.
//!
//! An r3 layout (`ext_size` = [`EXT_HEADER_SIZE_R3`]) differs in three
//! ways (`docs/abi-r3-design.md` section 3.9): the head is 88 bytes, the
//! optional descriptors follow it as the r3 array (the r2 array is empty
//! and `abi_size == size`), and the stride covers the standard record
//! plus the optional producer-specific area after it:
//!
//! ```text
//! xstats_offset = x > 0 ? s : 0
//! stride        = next_power_of_two(roundup(s + x, cacheline))
//! xdesc_offset  = d > 0 ? 88 : 0
//! offset        = roundup(88 + 64 * d, stride)
//! ```

use zerocopy::IntoBytes;

use crate::{
    desc::{Descriptor, DESCRIPTOR_SIZE},
    error::{LayoutParam, Quantity},
    header::{
        ExtHeader, Header, R3Header, CLOCK_NONE, EXT_HEADER_END, EXT_HEADER_OFFSET,
        EXT_HEADER_SIZE, EXT_HEADER_SIZE_R3, EXT_MAGIC, HEADER_R3_END, R3_HEADER_OFFSET,
        R3_HEADER_SIZE,
    },
    record::{
        DOMAIN_STATS_SIZE, INACTIVE, PAD_INACTIVE, RECORD_PREFIX, VCPU_STATS_SIZE_R2,
        VCPU_STATS_SIZE_R3,
    },
    Error, Result,
};

/// Smallest page size a layout accepts.
pub const MIN_PAGE_SIZE: u32 = 4096;
/// Largest page size a layout accepts (1 GiB).
pub const MAX_PAGE_SIZE: u32 = 1 << 30;
/// Most descriptors an r2 table may carry in its (r2) descriptor array
/// (bounds a consumer's checks). r3 descriptors have no ABI bound.
pub const MAX_DESCRIPTORS: u32 = 1024;
/// The default cacheline of the producer, in bytes.
pub const DEFAULT_CACHELINE: u32 = 64;
/// The default page size, in bytes.
pub const DEFAULT_PAGE_SIZE: u32 = 4096;

/// What a producer asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayoutParams {
    /// Number of record slots.
    pub nr_records: u32,
    /// Bytes of each record the producer writes (seq word included).
    pub record_size: u32,
    /// Bytes of the record defined by the ABI revision (the rest are
    /// producer-specific counters).
    pub abi_size: u32,
    /// Number of descriptors.
    pub desc_count: u32,
    /// Page size: a power of two in `[4096, 1 GiB]`.
    pub page_size: u32,
    /// Cacheline: a power of two in `[8, page_size]`.
    pub cacheline: u32,
    /// The header's `ext_size`, which selects the revision of the layout:
    /// [`EXT_HEADER_SIZE`] (r2) or [`EXT_HEADER_SIZE_R3`] (r3).
    pub ext_size: u32,
    /// r3: the table's clock ([`crate::header::CLOCK_NONE`] and friends);
    /// 0 in an r2 layout.
    pub clock: u32,
    /// r3: bytes of the producer-specific area after the standard record,
    /// a multiple of 8; 0 when none, and in an r2 layout.
    pub xstats_size: u32,
    /// r3: number of r3 descriptors (they describe the producer-specific
    /// area; no ABI bound); 0 in an r2 layout.
    pub xdesc_count: u32,
}

impl LayoutParams {
    /// A vCPU table of this revision (r3): [`LayoutParams::vcpu_r3`].
    pub const fn vcpu(nr_vcpus: u32) -> LayoutParams {
        LayoutParams::vcpu_r3(nr_vcpus)
    }

    /// The domain table of this revision (r3): [`LayoutParams::domain_r3`].
    pub const fn domain() -> LayoutParams {
        LayoutParams::domain_r3()
    }

    /// An r2 vCPU table: r2's 40-byte record with its four standard
    /// descriptors, 4 KiB pages and 64-byte cachelines (what r2 producers
    /// published; consumers still read it).
    pub const fn vcpu_r2(nr_vcpus: u32) -> LayoutParams {
        LayoutParams {
            nr_records: nr_vcpus,
            record_size: VCPU_STATS_SIZE_R2,
            abi_size: VCPU_STATS_SIZE_R2,
            desc_count: crate::record::VCPU_STD_DESCRIPTORS.len() as u32,
            page_size: DEFAULT_PAGE_SIZE,
            cacheline: DEFAULT_CACHELINE,
            ext_size: EXT_HEADER_SIZE,
            clock: 0,
            xstats_size: 0,
            xdesc_count: 0,
        }
    }

    /// An r2 domain table (one record) with its standard descriptors.
    pub const fn domain_r2() -> LayoutParams {
        LayoutParams {
            nr_records: 1,
            record_size: DOMAIN_STATS_SIZE,
            abi_size: DOMAIN_STATS_SIZE,
            desc_count: crate::record::DOMAIN_STD_DESCRIPTORS.len() as u32,
            page_size: DEFAULT_PAGE_SIZE,
            cacheline: DEFAULT_CACHELINE,
            ext_size: EXT_HEADER_SIZE,
            clock: 0,
            xstats_size: 0,
            xdesc_count: 0,
        }
    }

    /// An r3 vCPU table: the 56-byte r3 record, no producer-specific area,
    /// no descriptors, clock [`CLOCK_NONE`] (set `clock` to the producer's
    /// time base), 4 KiB pages and 64-byte cachelines. This is the Xen
    /// hypervisor's table.
    ///
    /// # Examples
    ///
    /// ```
    /// use vstats_abi::layout::{Layout, LayoutParams};
    ///
    /// let l = Layout::compute(&LayoutParams::vcpu_r3(4)).unwrap();
    /// assert_eq!((l.size, l.stride, l.offset), (56, 64, 128));
    /// ```
    pub const fn vcpu_r3(nr_vcpus: u32) -> LayoutParams {
        LayoutParams {
            nr_records: nr_vcpus,
            record_size: VCPU_STATS_SIZE_R3,
            abi_size: VCPU_STATS_SIZE_R3,
            desc_count: 0,
            page_size: DEFAULT_PAGE_SIZE,
            cacheline: DEFAULT_CACHELINE,
            ext_size: EXT_HEADER_SIZE_R3,
            clock: CLOCK_NONE,
            xstats_size: 0,
            xdesc_count: 0,
        }
    }

    /// An r3 domain table (one record), as [`LayoutParams::vcpu_r3`].
    pub const fn domain_r3() -> LayoutParams {
        LayoutParams {
            nr_records: 1,
            record_size: DOMAIN_STATS_SIZE,
            abi_size: DOMAIN_STATS_SIZE,
            desc_count: 0,
            page_size: DEFAULT_PAGE_SIZE,
            cacheline: DEFAULT_CACHELINE,
            ext_size: EXT_HEADER_SIZE_R3,
            clock: CLOCK_NONE,
            xstats_size: 0,
            xdesc_count: 0,
        }
    }
}

/// Where everything lives. All fields fit the header's `u32`s; the mapping
/// length is a whole number of pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Byte offset of record 0.
    pub offset: u32,
    /// `sizeof(record)` as written to the header.
    pub size: u32,
    /// Distance between records; a power of two dividing the page.
    pub stride: u32,
    /// Number of record slots.
    pub nr_records: u32,
    /// Bytes of the record defined by the ABI revision.
    pub abi_size: u32,
    /// Page size in bytes.
    pub page_size: u32,
    /// Byte offset of the descriptor array, 0 without descriptors.
    pub desc_offset: u32,
    /// Number of descriptors.
    pub desc_count: u32,
    /// Number of pages (frames) the table occupies.
    pub frames: u64,
    /// The header's `ext_size`: [`EXT_HEADER_SIZE`] (r2) or
    /// [`EXT_HEADER_SIZE_R3`] (r3).
    pub ext_size: u32,
    /// r3: the table's clock (0 in an r2 layout).
    pub clock: u32,
    /// r3: record-relative start of the producer-specific area, 0 when
    /// none.
    pub xstats_offset: u32,
    /// r3: bytes of the producer-specific area, 0 when none.
    pub xstats_size: u32,
    /// r3: byte offset of the r3 descriptor array, 0 without descriptors.
    pub xdesc_offset: u32,
    /// r3: number of r3 descriptors.
    pub xdesc_count: u32,
}

fn bad(param: LayoutParam, value: u64) -> Error {
    Error::BadLayoutParam { param, value }
}

fn ovf(what: Quantity) -> Error {
    Error::Overflow { what }
}

/// The first 8 bytes of a slot as laid out: seq 0, `_pad` all ones, in
/// native byte order.
const SLOT_FILL: u64 = {
    let pad = PAD_INACTIVE.to_ne_bytes();
    u64::from_ne_bytes([0, 0, 0, 0, pad[0], pad[1], pad[2], pad[3]])
};

/// Rounds `v` up to a multiple of the power of two `align`, `None` on
/// overflow.
pub const fn round_up(v: u64, align: u64) -> Option<u64> {
    match v.checked_add(align - 1) {
        Some(x) => Some(x & !(align - 1)),
        None => None,
    }
}

impl Layout {
    /// Computes the layout of a table.
    ///
    /// # Errors
    ///
    /// [`Error::BadLayoutParam`] for a parameter out of range,
    /// [`Error::Overflow`] when the table would not fit the header's
    /// 32-bit fields or a 64-bit length.
    pub fn compute(p: &LayoutParams) -> Result<Layout> {
        let page = p.page_size;
        if !page.is_power_of_two() || !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&page) {
            return Err(bad(LayoutParam::PageSize, page.into()));
        }
        if !p.cacheline.is_power_of_two() || p.cacheline < 8 || p.cacheline > page {
            return Err(bad(LayoutParam::Cacheline, p.cacheline.into()));
        }
        if p.record_size < RECORD_PREFIX || p.record_size % 8 != 0 || p.record_size > page {
            return Err(bad(LayoutParam::RecordSize, p.record_size.into()));
        }
        if p.abi_size < RECORD_PREFIX || p.abi_size % 8 != 0 || p.abi_size > p.record_size {
            return Err(bad(LayoutParam::AbiSize, p.abi_size.into()));
        }
        if p.desc_count > MAX_DESCRIPTORS {
            return Err(bad(LayoutParam::DescCount, p.desc_count.into()));
        }
        let r3 = match p.ext_size {
            EXT_HEADER_SIZE => {
                // An r2 layout has none of the r3 header's fields.
                for (param, v) in [
                    (LayoutParam::Clock, p.clock),
                    (LayoutParam::XstatsSize, p.xstats_size),
                    (LayoutParam::XdescCount, p.xdesc_count),
                ] {
                    if v != 0 {
                        return Err(bad(param, v.into()));
                    }
                }
                false
            }
            EXT_HEADER_SIZE_R3 => {
                // R21: the standard record is all the ABI part, and the r2
                // descriptor array is empty.
                if p.abi_size != p.record_size {
                    return Err(bad(LayoutParam::AbiSize, p.abi_size.into()));
                }
                if p.desc_count != 0 {
                    return Err(bad(LayoutParam::DescCount, p.desc_count.into()));
                }
                // R19: the area follows the record inside the page (L1).
                let extent = u64::from(p.record_size) + u64::from(p.xstats_size);
                if p.xstats_size % 8 != 0 || extent > u64::from(page) {
                    return Err(bad(LayoutParam::XstatsSize, p.xstats_size.into()));
                }
                true
            }
            other => return Err(bad(LayoutParam::ExtSize, other.into())),
        };
        // record_size + xstats_size <= page (0 in r2) and page is a power
        // of two, so neither rounding can exceed page.
        let extent = u64::from(p.record_size) + u64::from(p.xstats_size);
        let line = round_up(extent, p.cacheline.into()).ok_or(ovf(Quantity::Stride))?;
        let stride = line.next_power_of_two();
        let (head, count, desc_offset, xdesc_offset) = if r3 {
            let at = if p.xdesc_count == 0 { 0 } else { HEADER_R3_END };
            (HEADER_R3_END, p.xdesc_count, 0, at)
        } else {
            let at = if p.desc_count == 0 { 0 } else { EXT_HEADER_END };
            (EXT_HEADER_END, p.desc_count, at, 0)
        };
        // At most 88 + 64 * (2^32 - 1): no overflow in 64 bits.
        let head_end = u64::from(head) + u64::from(count) * u64::from(DESCRIPTOR_SIZE);
        let offset = round_up(head_end, stride).ok_or(ovf(Quantity::Offset))?;
        let end = u64::from(p.nr_records)
            .checked_mul(stride)
            .and_then(|r| r.checked_add(offset))
            .ok_or(ovf(Quantity::RecordsEnd))?;
        let frames = end.div_ceil(page.into()).max(1);
        frames
            .checked_mul(page.into())
            .ok_or(ovf(Quantity::MappingLength))?;
        Ok(Layout {
            offset: u32::try_from(offset).map_err(|_| ovf(Quantity::Offset))?,
            size: p.record_size,
            stride: u32::try_from(stride).map_err(|_| ovf(Quantity::Stride))?,
            nr_records: p.nr_records,
            abi_size: p.abi_size,
            page_size: page,
            desc_offset,
            desc_count: p.desc_count,
            frames,
            ext_size: p.ext_size,
            clock: p.clock,
            xstats_offset: if p.xstats_size > 0 { p.record_size } else { 0 },
            xstats_size: p.xstats_size,
            xdesc_offset,
            xdesc_count: p.xdesc_count,
        })
    }

    /// Whether the layout is r3's (an 88-byte header).
    pub const fn is_r3(&self) -> bool {
        self.ext_size >= EXT_HEADER_SIZE_R3
    }

    /// Bytes of each slot a record's writer covers: the standard record
    /// and the producer-specific area after it, `max(size, xstats_offset +
    /// xstats_size)` (what R8 keeps inside one page).
    pub const fn record_extent(&self) -> u32 {
        let area = self.xstats_offset + self.xstats_size;
        if area > self.size {
            area
        } else {
            self.size
        }
    }

    /// Bytes of the mapping: `frames * page_size`.
    pub const fn mapping_len(&self) -> u64 {
        self.frames * self.page_size as u64
    }

    /// Byte offset of record `i` in the table, `None` when `i` is not a
    /// slot.
    pub const fn record_offset(&self, i: u32) -> Option<u64> {
        if i >= self.nr_records {
            return None;
        }
        Some(self.offset as u64 + i as u64 * self.stride as u64)
    }

    /// `(frame index, offset in that frame)` of record `i`, for tables
    /// backed by frames that are not virtually contiguous.
    pub const fn record_location(&self, i: u32) -> Option<(u64, u32)> {
        match self.record_offset(i) {
            Some(off) => {
                let page = self.page_size as u64;
                Some((off / page, (off % page) as u32))
            }
            None => None,
        }
    }

    /// log2 of the page size.
    pub const fn page_shift(&self) -> u32 {
        self.page_size.trailing_zeros()
    }

    /// The header to publish.
    pub const fn header(&self, magic: u32) -> Header {
        Header {
            magic,
            offset: self.offset,
            size: self.size,
            stride: self.stride,
        }
    }

    /// The extension header to publish. In an r3 layout its r2 descriptor
    /// fields are zero (R21).
    pub const fn ext_header(&self, generation: u64) -> ExtHeader {
        ExtHeader {
            ext_magic: EXT_MAGIC,
            ext_size: self.ext_size,
            nr_records: self.nr_records,
            page_shift: self.page_shift(),
            abi_size: self.abi_size,
            desc_offset: self.desc_offset,
            desc_count: self.desc_count,
            desc_stride: if self.is_r3() { 0 } else { DESCRIPTOR_SIZE },
            generation,
        }
    }

    /// The r3 header to publish, `None` for an r2 layout.
    pub const fn r3_header(&self) -> Option<R3Header> {
        if !self.is_r3() {
            return None;
        }
        Some(R3Header {
            clock: self.clock,
            _rsvd0: 0,
            xstats_offset: self.xstats_offset,
            xstats_size: self.xstats_size,
            xdesc_offset: self.xdesc_offset,
            xdesc_count: self.xdesc_count,
            xdesc_stride: if self.xdesc_count > 0 {
                DESCRIPTOR_SIZE
            } else {
                0
            },
            _rsvd1: 0,
        })
    }

    /// Whether table offset `off` is a slot position whose seq word the
    /// fill sets to 0 (P4, P13): `offset + k * stride` for a slot `k <
    /// nr_records` in an r2 layout; in an r3 layout for every `k` whose
    /// whole stride lies inside the mapping, so that the tail after the
    /// last slot reads as unused slots with an even seq to a consumer that
    /// counts slots by the mapping's length.
    pub const fn is_slot_position(&self, off: u64) -> bool {
        let (offset, stride) = (self.offset as u64, self.stride as u64);
        if off < offset || (off - offset) % stride != 0 {
            return false;
        }
        let k = (off - offset) / stride;
        if self.is_r3() {
            off + stride <= self.mapping_len()
        } else {
            k < self.nr_records as u64
        }
    }

    /// The 8 bytes at table offset `off` (a multiple of 8 in `[offset,
    /// mapping_len())`) when the table is laid out: seq 0 and `_pad`
    /// [`PAD_INACTIVE`] at a slot position, the inactive marker
    /// everywhere else (P4, P13). As a native-endian `u64`.
    pub const fn fill_word(&self, off: u64) -> u64 {
        if self.is_slot_position(off) {
            SLOT_FILL
        } else {
            INACTIVE
        }
    }

    /// Lays out the record area of `buf`, a private image of the whole
    /// table from byte 0: every 8-byte word of `[offset, mapping_len())`
    /// becomes [`Layout::fill_word`]. The head is not touched (see
    /// [`Layout::write_headers`]).
    ///
    /// # Errors
    ///
    /// [`Error::BadLayoutParam`] when `buf` is shorter than the mapping.
    pub fn fill_records(&self, buf: &mut [u8]) -> Result<()> {
        let len = self.mapping_len();
        let Some(area) = usize::try_from(len)
            .ok()
            .and_then(|l| buf.get_mut(self.offset as usize..l))
        else {
            return Err(bad(LayoutParam::BufferLength, buf.len() as u64));
        };
        let mut off = u64::from(self.offset);
        for w in area.chunks_exact_mut(8) {
            w.copy_from_slice(&self.fill_word(off).to_ne_bytes());
            off += 8;
        }
        Ok(())
    }

    /// Writes the header, extension header, the r3 header (r3 layouts) and
    /// the descriptors into `buf`, a private image of the start of the
    /// table (at least `offset` bytes), zeroing the reserved bytes. Records
    /// are not touched. `descs` go to the layout's descriptor array: the
    /// r2 array of an r2 layout, the r3 array of an r3 layout.
    ///
    /// # Errors
    ///
    /// [`Error::BadLayoutParam`] when `buf` is too short or `descs.len()`
    /// differs from the layout's descriptor count.
    pub fn write_headers(
        &self,
        buf: &mut [u8],
        magic: u32,
        generation: u64,
        descs: &[Descriptor],
    ) -> Result<()> {
        let head = self.offset as usize;
        if buf.len() < head {
            return Err(bad(LayoutParam::BufferLength, buf.len() as u64));
        }
        let (count, at) = match self.r3_header() {
            Some(_) => (self.xdesc_count, self.xdesc_offset),
            None => (self.desc_count, self.desc_offset),
        };
        if descs.len() != count as usize {
            return Err(bad(LayoutParam::DescriptorCount, descs.len() as u64));
        }
        buf[..head].fill(0);
        buf[..16].copy_from_slice(self.header(magic).as_bytes());
        let ext = EXT_HEADER_OFFSET as usize;
        buf[ext..ext + EXT_HEADER_SIZE as usize]
            .copy_from_slice(self.ext_header(generation).as_bytes());
        if let Some(r3) = self.r3_header() {
            let at = R3_HEADER_OFFSET as usize;
            buf[at..at + R3_HEADER_SIZE as usize].copy_from_slice(r3.as_bytes());
        }
        let mut at = at as usize;
        for d in descs {
            buf[at..at + DESCRIPTOR_SIZE as usize].copy_from_slice(d.as_bytes());
            at += DESCRIPTOR_SIZE as usize;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcpu_default_layout() {
        let l = Layout::compute(&LayoutParams::vcpu_r2(4)).unwrap();
        assert_eq!(l.stride, 64);
        // 56 + 4 * 64 = 312, rounded to 64.
        assert_eq!(l.offset, 320);
        assert_eq!(l.frames, 1);
        assert_eq!(l.record_offset(3), Some(320 + 3 * 64));
        assert_eq!(l.record_offset(4), None);
    }

    #[test]
    fn large_record_gets_power_of_two_stride() {
        let p = LayoutParams {
            record_size: 1096,
            abi_size: VCPU_STATS_SIZE_R2,
            desc_count: 60,
            ..LayoutParams::vcpu_r2(64)
        };
        let l = Layout::compute(&p).unwrap();
        assert_eq!(l.stride, 2048);
        assert_eq!(l.offset % l.stride, 0);
        for i in 0..64 {
            let (_, in_page) = l.record_location(i).unwrap();
            assert!(in_page + l.size <= l.page_size);
        }
    }

    #[test]
    fn sixty_four_k_pages() {
        let p = LayoutParams {
            page_size: 65536,
            ..LayoutParams::vcpu_r2(4096)
        };
        let l = Layout::compute(&p).unwrap();
        assert_eq!(l.mapping_len() % 65536, 0);
        assert!(l.mapping_len() >= u64::from(l.offset) + 4096 * 64);
    }

    #[test]
    fn bad_params_rejected() {
        let ok = LayoutParams::vcpu_r2(1);
        for p in [
            LayoutParams {
                page_size: 3000,
                ..ok
            },
            LayoutParams {
                page_size: 2048,
                ..ok
            },
            LayoutParams {
                cacheline: 48,
                ..ok
            },
            LayoutParams { cacheline: 4, ..ok },
            LayoutParams {
                record_size: 4,
                ..ok
            },
            LayoutParams {
                record_size: 44,
                ..ok
            },
            LayoutParams {
                record_size: 8192,
                ..ok
            },
            LayoutParams { abi_size: 48, ..ok },
            LayoutParams {
                desc_count: MAX_DESCRIPTORS + 1,
                ..ok
            },
        ] {
            assert!(
                matches!(Layout::compute(&p), Err(Error::BadLayoutParam { .. })),
                "{p:?}"
            );
        }
        let huge = LayoutParams {
            nr_records: u32::MAX,
            record_size: 4096,
            page_size: 4096,
            ..ok
        };
        assert!(Layout::compute(&huge).is_ok());
        // The largest request the bounds allow still fits: offset <= 1 GiB
        // and the end stays far below 2^64.
        let huge = LayoutParams {
            nr_records: u32::MAX,
            desc_count: MAX_DESCRIPTORS,
            record_size: 1 << 30,
            abi_size: 8,
            page_size: 1 << 30,
            cacheline: 64,
            ..ok
        };
        let l = Layout::compute(&huge).unwrap();
        assert_eq!(l.offset, 1 << 30);
        assert_eq!(l.mapping_len(), (1u64 << 30) * (u64::from(u32::MAX) + 1));
    }

    #[test]
    fn r2_layouts_have_no_r3_fields() {
        let l = Layout::compute(&LayoutParams::vcpu_r2(4)).unwrap();
        assert!(!l.is_r3());
        assert_eq!(l.r3_header(), None);
        assert_eq!(l.ext_header(1).ext_size, EXT_HEADER_SIZE);
        assert_eq!(l.record_extent(), l.size);
        let ok = LayoutParams::vcpu_r2(1);
        for (p, param) in [
            (LayoutParams { clock: 1, ..ok }, LayoutParam::Clock),
            (
                LayoutParams {
                    xstats_size: 8,
                    ..ok
                },
                LayoutParam::XstatsSize,
            ),
            (
                LayoutParams {
                    xdesc_count: 1,
                    ..ok
                },
                LayoutParam::XdescCount,
            ),
            (LayoutParams { ext_size: 48, ..ok }, LayoutParam::ExtSize),
        ] {
            assert!(
                matches!(Layout::compute(&p), Err(Error::BadLayoutParam { param: q, .. }) if q == param),
                "{p:?}"
            );
        }
    }

    #[test]
    fn this_revisions_layouts_are_r3() {
        assert_eq!(LayoutParams::vcpu(7), LayoutParams::vcpu_r3(7));
        assert_eq!(LayoutParams::domain(), LayoutParams::domain_r3());
        assert_eq!(LayoutParams::vcpu(7).record_size, VCPU_STATS_SIZE_R3);
        assert!(Layout::compute(&LayoutParams::vcpu(7)).unwrap().is_r3());
    }

    #[test]
    fn r3_arithmetic_of_the_design() {
        // Section 3.9: the Xen hypervisor's vCPU table.
        let l = Layout::compute(&LayoutParams::vcpu_r3(200)).unwrap();
        assert!(l.is_r3());
        assert_eq!((l.size, l.stride, l.offset), (56, 64, 128));
        assert_eq!((l.xstats_offset, l.xstats_size, l.xdesc_offset), (0, 0, 0));
        // 62 vCPUs in frame 0, 64 per further frame.
        assert_eq!(l.record_location(61), Some((0, 4032)));
        assert_eq!(l.record_location(62), Some((1, 0)));
        assert_eq!(l.frames, 1 + (200 - 62u64).div_ceil(64));
        let e = l.ext_header(5);
        assert_eq!(
            (
                e.ext_size,
                e.abi_size,
                e.desc_offset,
                e.desc_count,
                e.desc_stride
            ),
            (72, 56, 0, 0, 0)
        );
        // The KVM monitor with 40 counter words and 40 descriptors.
        let p = LayoutParams {
            xstats_size: 40 * 8,
            xdesc_count: 40,
            clock: crate::header::CLOCK_HOST_MONOTONIC,
            ..LayoutParams::vcpu_r3(4)
        };
        let l = Layout::compute(&p).unwrap();
        assert_eq!(l.record_extent(), 376);
        assert_eq!(l.stride, 512);
        assert_eq!((l.xstats_offset, l.xstats_size), (56, 320));
        assert_eq!(l.xdesc_offset, 88);
        assert_eq!(l.offset, 3072); // roundup(88 + 64 * 40, 512)
        let r3 = l.r3_header().unwrap();
        assert_eq!((r3.clock, r3.xdesc_count, r3.xdesc_stride), (1, 40, 64));
        // No ABI bound on r3 descriptors; only the header's u32s bound them.
        let p = LayoutParams {
            xstats_size: 8,
            xdesc_count: 5000,
            ..LayoutParams::vcpu_r3(1)
        };
        assert_eq!(Layout::compute(&p).unwrap().offset, 320_128);
        let p = LayoutParams {
            xdesc_count: u32::MAX,
            ..LayoutParams::vcpu_r3(1)
        };
        assert_eq!(
            Layout::compute(&p),
            Err(Error::Overflow {
                what: Quantity::Offset
            })
        );
        // The domain table.
        let l = Layout::compute(&LayoutParams::domain_r3()).unwrap();
        assert_eq!((l.size, l.stride, l.offset, l.nr_records), (32, 64, 128, 1));
    }

    #[test]
    fn r3_bad_params_rejected() {
        let ok = LayoutParams::vcpu_r3(1);
        for (p, param) in [
            (
                LayoutParams {
                    abi_size: VCPU_STATS_SIZE_R2,
                    ..ok
                },
                LayoutParam::AbiSize,
            ),
            (
                LayoutParams {
                    desc_count: 4,
                    ..ok
                },
                LayoutParam::DescCount,
            ),
            (
                LayoutParams {
                    xstats_size: 12,
                    ..ok
                },
                LayoutParam::XstatsSize,
            ),
            (
                LayoutParams {
                    xstats_size: 4096 - 48,
                    ..ok
                },
                LayoutParam::XstatsSize,
            ),
        ] {
            assert!(
                matches!(Layout::compute(&p), Err(Error::BadLayoutParam { param: q, .. }) if q == param),
                "{p:?}"
            );
        }
        // The largest area still fits a page.
        let l = Layout::compute(&LayoutParams {
            xstats_size: 4096 - 56,
            ..ok
        })
        .unwrap();
        assert_eq!((l.stride, l.offset), (4096, 4096));
    }

    fn seq_pad(b: &[u8], at: usize) -> (u32, u32) {
        let w = |i: usize| u32::from_ne_bytes(b[i..i + 4].try_into().unwrap());
        (w(at), w(at + 4))
    }

    #[test]
    fn r3_fill_formats_the_tail_as_unused_slots() {
        let l = Layout::compute(&LayoutParams::vcpu_r3(3)).unwrap();
        let mut b = std::vec![0u8; l.mapping_len() as usize];
        l.write_headers(&mut b, crate::VCPU_STATS_MAGIC, 1, &[])
            .unwrap();
        l.fill_records(&mut b).unwrap();
        let (offset, stride) = (l.offset as usize, l.stride as usize);
        // Every whole stride of the mapping is a slot position (P13).
        let slots = (b.len() - offset) / stride;
        assert_eq!(slots, 62);
        for k in 0..slots {
            let at = offset + k * stride;
            assert_eq!(seq_pad(&b, at), (0, u32::MAX), "slot {k}");
            assert!(
                b[at + 8..at + stride].iter().all(|&x| x == 0xff),
                "slot {k}"
            );
        }
        // An r2 layout: the tail is all ones, as today.
        let l2 = Layout::compute(&LayoutParams::vcpu_r2(3)).unwrap();
        let mut b = std::vec![0u8; l2.mapping_len() as usize];
        l2.fill_records(&mut b).unwrap();
        let at = |k: u32| l2.offset as usize + k as usize * l2.stride as usize;
        assert_eq!(seq_pad(&b, at(2)), (0, u32::MAX));
        assert!(b[at(3)..].iter().all(|&x| x == 0xff));
        assert!(b[..l2.offset as usize].iter().all(|&x| x == 0));
        // Too short a buffer.
        assert!(matches!(
            l2.fill_records(&mut b[..100]),
            Err(Error::BadLayoutParam {
                param: LayoutParam::BufferLength,
                ..
            })
        ));
    }

    #[test]
    fn r3_headers_are_written() {
        use crate::desc::{Base, Kind, Unit};
        let p = LayoutParams {
            xstats_size: 16,
            xdesc_count: 2,
            clock: 2,
            ..LayoutParams::vcpu_r3(2)
        };
        let l = Layout::compute(&p).unwrap();
        let d = |n, off| Descriptor::scalar(n, off, Kind::CUMULATIVE, Unit::NONE, Base::POW10, 0);
        let mut b = std::vec![0xaau8; l.mapping_len() as usize];
        assert!(l.write_headers(&mut b, 1, 1, &[d("a", 56)]).is_err());
        l.write_headers(&mut b, 1, 1, &[d("a", 56), d("b", 64)])
            .unwrap();
        assert_eq!(&b[56..88], l.r3_header().unwrap().as_bytes());
        assert_eq!(&b[88..152], d("a", 56).as_bytes());
        assert_eq!(&b[152..216], d("b", 64).as_bytes());
        assert!(b[216..l.offset as usize].iter().all(|&x| x == 0));
    }
}
