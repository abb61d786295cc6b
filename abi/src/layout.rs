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

use zerocopy::IntoBytes;

use crate::{
    desc::{Descriptor, DESCRIPTOR_SIZE},
    error::{LayoutParam, Quantity},
    header::{ExtHeader, Header, EXT_HEADER_END, EXT_HEADER_OFFSET, EXT_HEADER_SIZE, EXT_MAGIC},
    record::{DOMAIN_STATS_SIZE, RECORD_PREFIX, VCPU_STATS_SIZE},
    Error, Result,
};

/// Smallest page size a layout accepts.
pub const MIN_PAGE_SIZE: u32 = 4096;
/// Largest page size a layout accepts (1 GiB).
pub const MAX_PAGE_SIZE: u32 = 1 << 30;
/// Most descriptors a table may carry (bounds a consumer's checks).
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
}

impl LayoutParams {
    /// A vCPU table of this revision's standard record with its standard
    /// descriptors, 4 KiB pages and 64-byte cachelines.
    pub const fn vcpu(nr_vcpus: u32) -> LayoutParams {
        LayoutParams {
            nr_records: nr_vcpus,
            record_size: VCPU_STATS_SIZE,
            abi_size: VCPU_STATS_SIZE,
            desc_count: crate::record::VCPU_STD_DESCRIPTORS.len() as u32,
            page_size: DEFAULT_PAGE_SIZE,
            cacheline: DEFAULT_CACHELINE,
        }
    }

    /// A domain table (one record) of this revision's standard record.
    pub const fn domain() -> LayoutParams {
        LayoutParams {
            nr_records: 1,
            record_size: DOMAIN_STATS_SIZE,
            abi_size: DOMAIN_STATS_SIZE,
            desc_count: crate::record::DOMAIN_STD_DESCRIPTORS.len() as u32,
            page_size: DEFAULT_PAGE_SIZE,
            cacheline: DEFAULT_CACHELINE,
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
}

fn bad(param: LayoutParam, value: u64) -> Error {
    Error::BadLayoutParam { param, value }
}

fn ovf(what: Quantity) -> Error {
    Error::Overflow { what }
}

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
        // record_size <= page and page is a power of two, so neither
        // rounding can exceed page.
        let line =
            round_up(p.record_size.into(), p.cacheline.into()).ok_or(ovf(Quantity::Stride))?;
        let stride = line.next_power_of_two();
        let desc_offset = if p.desc_count == 0 { 0 } else { EXT_HEADER_END };
        let head_end =
            u64::from(EXT_HEADER_END) + u64::from(p.desc_count) * u64::from(DESCRIPTOR_SIZE);
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
        })
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

    /// The extension header to publish.
    pub const fn ext_header(&self, generation: u64) -> ExtHeader {
        ExtHeader {
            ext_magic: EXT_MAGIC,
            ext_size: EXT_HEADER_SIZE,
            nr_records: self.nr_records,
            page_shift: self.page_shift(),
            abi_size: self.abi_size,
            desc_offset: self.desc_offset,
            desc_count: self.desc_count,
            desc_stride: DESCRIPTOR_SIZE,
            generation,
        }
    }

    /// Writes the header, extension header and descriptors into `buf`, a
    /// private image of the start of the table (at least `offset` bytes),
    /// zeroing the reserved bytes. Records are not touched.
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
        if descs.len() != self.desc_count as usize {
            return Err(bad(LayoutParam::DescriptorCount, descs.len() as u64));
        }
        buf[..head].fill(0);
        buf[..16].copy_from_slice(self.header(magic).as_bytes());
        let ext = EXT_HEADER_OFFSET as usize;
        buf[ext..ext + EXT_HEADER_SIZE as usize]
            .copy_from_slice(self.ext_header(generation).as_bytes());
        let mut at = self.desc_offset as usize;
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
        let l = Layout::compute(&LayoutParams::vcpu(4)).unwrap();
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
            abi_size: 40,
            desc_count: 60,
            ..LayoutParams::vcpu(64)
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
            ..LayoutParams::vcpu(4096)
        };
        let l = Layout::compute(&p).unwrap();
        assert_eq!(l.mapping_len() % 65536, 0);
        assert!(l.mapping_len() >= u64::from(l.offset) + 4096 * 64);
    }

    #[test]
    fn bad_params_rejected() {
        let ok = LayoutParams::vcpu(1);
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
        };
        let l = Layout::compute(&huge).unwrap();
        assert_eq!(l.offset, 1 << 30);
        assert_eq!(l.mapping_len(), (1u64 << 30) * (u64::from(u32::MAX) + 1));
    }
}
