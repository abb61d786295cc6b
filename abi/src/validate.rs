//! Validation of a table as a consumer sees it: hostile bytes in, a
//! [`TableInfo`] whose every record is in bounds out, or the first rule
//! broken.
//!
//! The consumer copies the head of the mapping (`[0, offset)`) into private
//! memory first and validates the copy: the producer cannot change what was
//! checked after the check (no double fetch).
//!
//! Three header shapes are read: a v3 page (no extension header), an r2
//! header (`ext_size < 72`, validated exactly as before r3), and an r3
//! header (`ext_size >= 72`), whose r2 descriptor fields must be empty
//! (R21) and which adds the producer-specific area (R19) and the r3
//! descriptor array (R20).

use core::ops::ControlFlow;

use zerocopy::FromBytes;

use crate::{
    desc::{Descriptor, DESCRIPTOR_SIZE},
    error::{ExtField, HeaderField, Quantity},
    header::{
        ExtHeader, Header, R3Header, EXT_HEADER_END, EXT_HEADER_OFFSET, EXT_HEADER_SIZE,
        EXT_HEADER_SIZE_R3, EXT_MAGIC, HEADER_SIZE, R3_HEADER_OFFSET,
    },
    layout::{DEFAULT_PAGE_SIZE, MAX_DESCRIPTORS},
    record::{RECORD_PREFIX, VCPU_STATS_SIZE_R3},
    Error, Result, Rule, RuleSet, TableKind, VCPU_STATS_MAGIC,
};

/// Smallest `page_shift` accepted (4 KiB).
pub const MIN_PAGE_SHIFT: u32 = 12;
/// Largest `page_shift` accepted (1 GiB).
pub const MAX_PAGE_SHIFT: u32 = 30;

/// A validated table's geometry: every record slot `i < nr_records` lies in
/// `[record_offset(i), record_offset(i) + record_extent())` inside the
/// mapping and inside one page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableInfo {
    /// The header as validated.
    pub header: Header,
    /// The extension header, `None` for a table without one (RFC v3).
    pub ext: Option<ExtHeader>,
    /// Number of record slots: from the extension header, or for a v3
    /// table as many whole strides as the mapping holds after `offset`.
    pub nr_records: u32,
    /// Page size the containment rule was checked with (4096 without an
    /// extension header).
    pub page_size: u32,
    /// Bytes of each record defined by the producer's ABI revision (the
    /// header's size without an extension header).
    pub abi_size: u32,
    /// Mapped length the table was validated against.
    pub mapped_len: u64,
    /// The time base of the table's nanosecond values
    /// ([`crate::header::CLOCK_NONE`] without an r3 header).
    pub clock: u32,
    /// Record-relative start of the producer-specific area, 0 when there
    /// is none (always without an r3 header).
    pub xstats_offset: u32,
    /// Bytes of the producer-specific area, 0 when there is none.
    pub xstats_size: u32,
    /// Table offset of the r3 descriptor array, 0 when there is none.
    pub xdesc_offset: u32,
    /// Number of r3 descriptors (0 without an r3 header).
    pub xdesc_count: u32,
    /// Distance between r3 descriptors (0 when there are none).
    pub xdesc_stride: u32,
}

impl TableInfo {
    /// Byte offset of record `i`, `None` when `i` is not a slot.
    #[inline]
    pub fn record_offset(&self, i: u32) -> Option<u64> {
        (i < self.nr_records)
            .then(|| u64::from(self.header.offset) + u64::from(i) * u64::from(self.header.stride))
    }

    /// The table's kind (its magic passed R2, so it is one of the two).
    #[inline]
    pub fn kind(&self) -> TableKind {
        if self.header.magic == VCPU_STATS_MAGIC {
            TableKind::Vcpu
        } else {
            TableKind::Domain
        }
    }

    /// Whether the table is a vCPU table (else a domain table).
    #[inline]
    pub fn is_vcpu(&self) -> bool {
        self.kind() == TableKind::Vcpu
    }

    /// Whether a standard field at byte `offset` of the record, known to
    /// the consumer by its fixed position, exists in this table: it must
    /// end within the producer's ABI part of the record.
    #[inline]
    pub fn has_std_field(&self, offset: u32) -> bool {
        offset >= RECORD_PREFIX && offset.checked_add(8).is_some_and(|e| e <= self.abi_size)
    }

    /// Number of descriptors (0 without an extension header).
    #[inline]
    pub fn desc_count(&self) -> u32 {
        self.ext.map_or(0, |e| e.desc_count)
    }

    /// Descriptor `i`, read from `head`, the same copy that was validated.
    pub fn descriptor(&self, head: &[u8], i: u32) -> Option<Descriptor> {
        let ext = self.ext?;
        if i >= ext.desc_count {
            return None;
        }
        let at = u64::from(ext.desc_offset) + u64::from(i) * u64::from(ext.desc_stride);
        let at = usize::try_from(at).ok()?;
        let bytes = head.get(at..)?;
        Descriptor::read_from_prefix(bytes).ok().map(|(d, _)| d)
    }

    /// The producer's generation (0 without an extension header).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.ext.map_or(0, |e| e.generation)
    }

    /// Whether the table has the r3 header (`ext_size >= 72`): its
    /// standard fields are read by position within `size`, its r2
    /// descriptor array is empty, and its producer-specific counters are
    /// described by the r3 descriptors.
    #[inline]
    pub fn is_r3(&self) -> bool {
        self.ext.is_some_and(|e| e.ext_size >= EXT_HEADER_SIZE_R3)
    }

    /// Bytes of each slot under the record's seq word: `max(size,
    /// xstats_offset + xstats_size)`.
    #[inline]
    pub fn record_extent(&self) -> u32 {
        // R19 held: xstats_offset + xstats_size <= stride, no overflow.
        self.header
            .size
            .max(self.xstats_offset.saturating_add(self.xstats_size))
    }

    /// r3 descriptor `i`, read from `head`, the same copy that was
    /// validated; `None` when `i` is not one.
    pub fn xdescriptor(&self, head: &[u8], i: u32) -> Option<Descriptor> {
        if i >= self.xdesc_count {
            return None;
        }
        let at = u64::from(self.xdesc_offset) + u64::from(i) * u64::from(self.xdesc_stride);
        let bytes = head.get(usize::try_from(at).ok()?..)?;
        Descriptor::read_from_prefix(bytes).ok().map(|(d, _)| d)
    }
}

/// R22's least vCPU record of a v3 or r2 table: the seq pair and the
/// running time.
pub const VCPU_RECORD_MIN: u32 = RECORD_PREFIX + 8;

/// Reads a `u32` at `at` from `b`, `None` when out of range.
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let bytes = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

/// Validates a table.
///
/// `head` is a private copy of the start of the mapping, at least the
/// header's `offset` bytes long (the whole mapping also works), and
/// `mapped_len` is the mapping's length. Rules are checked in the order of
/// `docs/abi.md` (the order of [`violations`]); the first broken one is
/// returned.
///
/// # Errors
///
/// The first rule the table breaks. [`Error::HeadTruncated`] means only
/// that `head` is too short: copy `need` bytes and call again.
pub fn validate(head: &[u8], mapped_len: u64) -> Result<TableInfo> {
    let mut checked = RuleSet::EMPTY;
    match walk(head, mapped_len, &mut checked, &mut ControlFlow::Break) {
        Ok(info) => Ok(info),
        Err(Halt::Broken(e) | Halt::Stopped(e)) => Err(e),
    }
}

/// What [`violations`] checked and found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validation {
    /// The table's geometry, `None` when a violation made the rest of the
    /// table unreadable (R1 to R6, `offset` beyond the mapping, R9, R10, a
    /// head copy too short) or the visitor stopped the walk. With
    /// violations of R7, R8, R11 to R13 or R18 to R23 it is the geometry
    /// the header claims: do not read records with it.
    pub info: Option<TableInfo>,
    /// The rules that were checked: the others were not, because a broken
    /// rule they depend on (or the visitor) stopped the walk, or because
    /// they concern a header the table does not have (R19 to R21 are
    /// checked only on a table with the r3 header).
    pub checked: RuleSet,
}

/// Lists every rule violation of a table, in the order [`validate`]
/// checks them (its first error is the first violation here), calling
/// `visit` with each; `visit` returns [`ControlFlow::Break`] to stop.
///
/// A violation that leaves the rest of the table unreadable stops the walk
/// (a bad header field, R9, R10, `offset` beyond the mapping, a head copy
/// too short: [`Error::HeadTruncated`]). Violations of R7, R8, R18 and
/// R19 to R23 do not: the descriptors are still checked (the r3 ones
/// unless their array itself breaks R20). Each r2 descriptor is checked on
/// its own fields (R11, R12, R13), then for duplicate names (R11) and
/// overlaps (R13) against each earlier descriptor whose own fields held,
/// then for the standard-name rule (R13); each r3 descriptor on its own
/// fields (R11, R12), its place in the producer-specific area and the
/// standard-name ban (R20), then for duplicate names (R11) and overlaps
/// (R20). Allocates nothing; the work is bounded by the head's length (at
/// most 1024 r2 descriptors, R9; the r3 array has no ABI bound and its
/// pairwise checks are quadratic in its count, so a consumer bounds the
/// head it copies).
///
/// # Examples
///
/// ```
/// use std::ops::ControlFlow;
/// use vstats_abi::{validate::violations, Rule};
///
/// let mut rules = Vec::new();
/// let v = violations(&[0u8; 64], 64, |e| {
///     rules.push(e.rule());
///     ControlFlow::Continue(())
/// });
/// assert_eq!(rules, [Rule::R2]);
/// assert!(v.info.is_none() && v.checked.contains(Rule::R1) && !v.checked.contains(Rule::R3));
/// ```
pub fn violations(
    head: &[u8],
    mapped_len: u64,
    mut visit: impl FnMut(Error) -> ControlFlow<()>,
) -> Validation {
    let mut checked = RuleSet::EMPTY;
    let info = match walk(head, mapped_len, &mut checked, &mut visit) {
        Ok(info) => Some(info),
        Err(Halt::Broken(e)) => {
            let _ = visit(e);
            None
        }
        Err(Halt::Stopped(())) => None,
    };
    Validation { info, checked }
}

/// Why [`walk`] ended early.
enum Halt<B> {
    /// A violation that leaves the rest unreadable (not yet visited).
    Broken(Error),
    /// The visitor said stop.
    Stopped(B),
}

impl<B> From<Error> for Halt<B> {
    fn from(e: Error) -> Halt<B> {
        Halt::Broken(e)
    }
}

/// Reports `e` to `visit`, ending the walk when it says so.
fn report<B>(
    visit: &mut impl FnMut(Error) -> ControlFlow<B>,
    e: Error,
) -> core::result::Result<(), Halt<B>> {
    match visit(e) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(b) => Err(Halt::Stopped(b)),
    }
}

/// Every rule in the order of `docs/abi.md` section 3: the header rules
/// (stopping at the first broken one), then those the rest of the table
/// can still be read after (reported to `visit`).
fn walk<B>(
    head: &[u8],
    mapped_len: u64,
    checked: &mut RuleSet,
    visit: &mut impl FnMut(Error) -> ControlFlow<B>,
) -> core::result::Result<TableInfo, Halt<B>> {
    let header = check_header(head, mapped_len, checked)?;
    let Header {
        magic,
        offset,
        size,
        stride,
    } = header;
    let head = match usize::try_from(mapped_len) {
        Ok(l) if l < head.len() => &head[..l],
        _ => head,
    };
    // R9, R10: the extension header, when its marker says it is there.
    checked.insert(Rule::R9);
    let parsed = parse_ext(head, &header).inspect_err(|e| {
        if e.rule() == Rule::R10 {
            checked.insert(Rule::R10);
        }
    })?;
    checked.insert(Rule::R10);
    let (ext, r3) = match parsed {
        Some((e, r3)) => (Some(e), r3),
        None => (None, None),
    };
    let kind = TableKind::from_magic(magic);
    // R23: a domain table has the extension header.
    checked.insert(Rule::R23);
    if kind == Some(TableKind::Domain) && ext.is_none() {
        let marker = if offset >= EXT_HEADER_OFFSET + 4 {
            u32_at(head, EXT_HEADER_OFFSET as usize).unwrap_or(0)
        } else {
            0
        };
        report(visit, Error::DomainWithoutExt { marker, offset })?;
    }
    let (nr_records, page_size, abi_size) = match ext {
        Some(e) => (e.nr_records, 1u32 << e.page_shift, e.abi_size),
        // A v3 table: as many whole strides as the mapping holds.
        None => {
            let n = (mapped_len - u64::from(offset)) / u64::from(stride);
            (
                u32::try_from(n).unwrap_or(u32::MAX),
                DEFAULT_PAGE_SIZE,
                size,
            )
        }
    };
    // R21, R19, R22: the r3 header's own rules. The extent R8 checks
    // covers the producer-specific area once R19 says it is sound.
    let mut extent = size;
    if let (Some(e), Some(r)) = (ext, r3) {
        checked.insert(Rule::R21);
        for (field, value, expected) in [
            (ExtField::AbiSize, e.abi_size, size),
            (ExtField::DescOffset, e.desc_offset, 0),
            (ExtField::DescCount, e.desc_count, 0),
            (ExtField::DescStride, e.desc_stride, 0),
        ] {
            if value != expected {
                report(
                    visit,
                    Error::R3LegacyField {
                        field,
                        value,
                        expected,
                    },
                )?;
            }
        }
        checked.insert(Rule::R19);
        match check_xstats(&r, size, stride, page_size) {
            Ok(()) => extent = extent.max(r.xstats_offset + r.xstats_size),
            Err(e) => report(visit, e)?,
        }
    }
    // R22: a vCPU record holds the running time (`size >= 16`, every
    // revision), an r3 one the whole r3 record.
    checked.insert(Rule::R22);
    let min = if r3.is_some() {
        VCPU_STATS_SIZE_R3
    } else {
        VCPU_RECORD_MIN
    };
    if kind == Some(TableKind::Vcpu) && size < min {
        report(visit, Error::VcpuRecordTooSmall { size, min })?;
    }
    // R7: the records fit the mapping.
    checked.insert(Rule::R7);
    match u64::from(nr_records)
        .checked_mul(stride.into())
        .and_then(|r| r.checked_add(offset.into()))
    {
        None => report(
            visit,
            Error::Overflow {
                what: Quantity::RecordsEnd,
            },
        )?,
        Some(need) if need > mapped_len => report(
            visit,
            Error::MappingTooSmall {
                need,
                len: mapped_len,
            },
        )?,
        Some(_) => {}
    }
    // R8: no record (with its producer-specific area) crosses a page
    // boundary.
    checked.insert(Rule::R8);
    if let Err(e) = check_pages(offset, extent, stride, nr_records, page_size) {
        report(visit, e)?;
    }
    // R18: exactly one record (a domain table without the extension header
    // broke R23 instead: its record count is only the mapping's).
    checked.insert(Rule::R18);
    if ext.is_some() {
        if let Err(e) = check_record_count(magic, nr_records) {
            report(visit, e)?;
        }
    }
    // R11-R13: the r2 descriptors; R11, R12 and R20: the r3 descriptors.
    checked.insert(Rule::R11);
    checked.insert(Rule::R12);
    checked.insert(Rule::R13);
    let r = r3.unwrap_or_default();
    match (ext, r3) {
        (Some(e), None) => walk_descriptors(head, &e, magic, size, visit)?,
        (Some(e), Some(r)) => {
            checked.insert(Rule::R20);
            match check_xdesc_table(&e, &r, offset) {
                Ok(()) => walk_xdescriptors(head, &r, magic, visit)?,
                Err(e) => report(visit, e)?,
            }
        }
        (None, _) => {}
    }
    Ok(TableInfo {
        header,
        ext,
        nr_records,
        page_size,
        abi_size,
        mapped_len,
        clock: r.clock,
        xstats_offset: r.xstats_offset,
        xstats_size: r.xstats_size,
        xdesc_offset: r.xdesc_offset,
        xdesc_count: r.xdesc_count,
        xdesc_stride: r.xdesc_stride,
    })
}

/// R19: the producer-specific area `[xstats_offset, xstats_offset +
/// xstats_size)` lies after the standard record, 8-aligned, inside the
/// stride and the page; without an area both fields are 0.
fn check_xstats(r: &R3Header, size: u32, stride: u32, page: u32) -> Result<()> {
    let end = u64::from(r.xstats_offset) + u64::from(r.xstats_size);
    let ok = if r.xstats_size == 0 {
        r.xstats_offset == 0
    } else {
        r.xstats_offset >= size
            && r.xstats_offset % 8 == 0
            && r.xstats_size % 8 == 0
            && end <= u64::from(stride)
            && end <= u64::from(page)
    };
    if ok {
        Ok(())
    } else {
        Err(Error::XstatsOutOfBounds {
            xstats_offset: r.xstats_offset,
            xstats_size: r.xstats_size,
            size,
            stride,
            page_size: page,
        })
    }
}

/// R20, the array: the r3 descriptors lie in `[16 + ext_size, offset)`,
/// 8-aligned, at least 64 bytes apart; without descriptors its offset and
/// stride are 0.
fn check_xdesc_table(e: &ExtHeader, r: &R3Header, offset: u32) -> Result<()> {
    let head_end = EXT_HEADER_OFFSET.saturating_add(e.ext_size);
    let ok = if r.xdesc_count == 0 {
        r.xdesc_offset == 0 && r.xdesc_stride == 0
    } else {
        let end = u64::from(r.xdesc_count)
            .checked_mul(r.xdesc_stride.into())
            .and_then(|l| l.checked_add(r.xdesc_offset.into()));
        r.xdesc_stride >= DESCRIPTOR_SIZE
            && r.xdesc_stride % 8 == 0
            && r.xdesc_offset >= head_end
            && r.xdesc_offset % 8 == 0
            && end.is_some_and(|end| end <= u64::from(offset))
    };
    if ok {
        Ok(())
    } else {
        Err(Error::XdescTableOutOfBounds {
            xdesc_offset: r.xdesc_offset,
            xdesc_count: r.xdesc_count,
            xdesc_stride: r.xdesc_stride,
            head_end,
            offset,
        })
    }
}

/// R1 to R6 and `offset <= mapped_len` (part of R7), on the header; then
/// that `head` holds `offset` bytes.
fn check_header(head: &[u8], mapped_len: u64, checked: &mut RuleSet) -> Result<Header> {
    // R1: the header fits.
    checked.insert(Rule::R1);
    if mapped_len < u64::from(HEADER_SIZE) {
        return Err(Error::MappingTooShort { len: mapped_len });
    }
    let head = match usize::try_from(mapped_len) {
        Ok(l) if l < head.len() => &head[..l],
        _ => head,
    };
    let Ok((header, _)) = Header::read_from_prefix(head) else {
        return Err(Error::HeadTruncated {
            need: HEADER_SIZE,
            have: head.len() as u64,
        });
    };
    let Header {
        magic,
        offset,
        size,
        stride,
    } = header;
    // R2: magic.
    checked.insert(Rule::R2);
    if TableKind::from_magic(magic).is_none() {
        return Err(Error::BadMagic { found: magic });
    }
    // R3: offset.
    checked.insert(Rule::R3);
    if offset < HEADER_SIZE {
        return Err(Error::OffsetBelowHeader {
            offset,
            min: HEADER_SIZE,
        });
    }
    // R4: size.
    checked.insert(Rule::R4);
    if size < RECORD_PREFIX {
        return Err(Error::SizeBelowSeq { size });
    }
    if size % 8 != 0 {
        return Err(Error::SizeNotMultipleOf8 { size });
    }
    // R5: stride.
    checked.insert(Rule::R5);
    if stride < size {
        return Err(Error::StrideBelowSize { stride, size });
    }
    // R6: alignment.
    checked.insert(Rule::R6);
    if offset % 8 != 0 {
        return Err(Error::Misaligned {
            field: HeaderField::Offset,
            value: offset,
        });
    }
    if stride % 8 != 0 {
        return Err(Error::Misaligned {
            field: HeaderField::Stride,
            value: stride,
        });
    }
    // R7, first part: the head lies in the mapping.
    if u64::from(offset) > mapped_len {
        checked.insert(Rule::R7);
        return Err(Error::MappingTooSmall {
            need: offset.into(),
            len: mapped_len,
        });
    }
    if (head.len() as u64) < u64::from(offset) {
        return Err(Error::HeadTruncated {
            need: offset,
            have: head.len() as u64,
        });
    }
    Ok(header)
}

/// R9 and, for an r2 header, R10: the extension header, and the r3 header
/// when `ext_size` says it is there (`None` for a v3 table).
fn parse_ext(head: &[u8], h: &Header) -> Result<Option<(ExtHeader, Option<R3Header>)>> {
    // No room for an extension header below offset: a v3 table.
    if h.offset < EXT_HEADER_END {
        return Ok(None);
    }
    let at = EXT_HEADER_OFFSET as usize;
    match u32_at(head, at) {
        Some(0) | None => return Ok(None),
        Some(EXT_MAGIC) => {}
        Some(other) => {
            return Err(Error::BadExtHeader {
                field: ExtField::ExtMagic,
                value: other,
            })
        }
    }
    let Some(Ok((e, _))) = head.get(at..).map(ExtHeader::read_from_prefix) else {
        return Err(Error::HeadTruncated {
            need: EXT_HEADER_END,
            have: head.len() as u64,
        });
    };
    let bad = |field, value| Err(Error::BadExtHeader { field, value });
    let ext_end = u64::from(EXT_HEADER_OFFSET) + u64::from(e.ext_size);
    if e.ext_size < EXT_HEADER_SIZE || e.ext_size % 8 != 0 || ext_end > u64::from(h.offset) {
        return bad(ExtField::ExtSize, e.ext_size);
    }
    if !(MIN_PAGE_SHIFT..=MAX_PAGE_SHIFT).contains(&e.page_shift) {
        return bad(ExtField::PageShift, e.page_shift);
    }
    if e.ext_size >= EXT_HEADER_SIZE_R3 {
        // An r3 header: it lies below offset (ext_end <= offset), which the
        // head holds. Its r2 descriptor fields are R21's, not checked here.
        let at = R3_HEADER_OFFSET as usize;
        let Some(Ok((r3, _))) = head.get(at..).map(R3Header::read_from_prefix) else {
            return Err(Error::HeadTruncated {
                need: EXT_HEADER_OFFSET + EXT_HEADER_SIZE_R3,
                have: head.len() as u64,
            });
        };
        return Ok(Some((e, Some(r3))));
    }
    if e.abi_size < RECORD_PREFIX || e.abi_size % 8 != 0 || e.abi_size > h.size {
        return bad(ExtField::AbiSize, e.abi_size);
    }
    if e.desc_count > MAX_DESCRIPTORS {
        return bad(ExtField::DescCount, e.desc_count);
    }
    if e.desc_count > 0 {
        let end = u64::from(e.desc_count)
            .checked_mul(e.desc_stride.into())
            .and_then(|l| l.checked_add(e.desc_offset.into()));
        let ok = e.desc_stride >= DESCRIPTOR_SIZE
            && e.desc_stride % 8 == 0
            && u64::from(e.desc_offset) >= ext_end
            && e.desc_offset % 8 == 0
            && end.is_some_and(|end| end <= u64::from(h.offset));
        if !ok {
            return Err(Error::DescTableOutOfBounds {
                desc_offset: e.desc_offset,
                desc_count: e.desc_count,
                desc_stride: e.desc_stride,
                offset: h.offset,
            });
        }
    }
    Ok(Some((e, None)))
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// R8. Record i starts at `offset + i * stride`; its position in its page
/// repeats with period `page / gcd(stride, page)`, so checking that many
/// records (at most `page / 8`) checks them all.
fn check_pages(offset: u32, size: u32, stride: u32, nr: u32, page: u32) -> Result<()> {
    let (page64, stride64) = (u64::from(page), u64::from(stride));
    let period = page64 / gcd(stride64 % page64, page64).max(1);
    let n = u64::from(nr).min(period);
    for i in 0..n {
        let start = u64::from(offset) + i * stride64;
        if start % page64 + u64::from(size) > page64 {
            return Err(Error::RecordStraddlesPage {
                record: i as u32,
                start,
                page_size: page,
            });
        }
    }
    Ok(())
}

/// Reads descriptor `i` of the extension header `e` from `head`.
fn read_descriptor(head: &[u8], e: &ExtHeader, i: u32) -> Result<Descriptor> {
    descriptor_at(head, e.desc_offset, e.desc_stride, i)
}

/// Reads descriptor `i` of an array at `offset` with `stride` from `head`
/// (the r2 array and the r3 one have the same descriptor layout).
fn descriptor_at(head: &[u8], offset: u32, stride: u32, i: u32) -> Result<Descriptor> {
    let at = u64::from(offset) + u64::from(i) * u64::from(stride);
    usize::try_from(at)
        .ok()
        .and_then(|at| head.get(at..))
        .and_then(|b| Descriptor::read_from_prefix(b).ok())
        .map(|(d, _)| d)
        .ok_or(Error::HeadTruncated {
            need: u32::try_from(at + u64::from(DESCRIPTOR_SIZE)).unwrap_or(u32::MAX),
            have: head.len() as u64,
        })
}

fn walk_descriptors<B>(
    head: &[u8],
    e: &ExtHeader,
    magic: u32,
    size: u32,
    visit: &mut impl FnMut(Error) -> ControlFlow<B>,
) -> core::result::Result<(), Halt<B>> {
    descriptor_walk(
        e.desc_count,
        magic,
        size,
        |i| read_descriptor(head, e, i),
        visit,
    )
}

/// R18: a domain table has exactly one record. Used by [`validate`] on a
/// table and by the producer on what it is about to publish.
///
/// # Errors
///
/// [`Error::DomainRecordCount`].
pub fn check_record_count(magic: u32, nr_records: u32) -> Result<()> {
    if TableKind::from_magic(magic) == Some(TableKind::Domain) && nr_records != 1 {
        return Err(Error::DomainRecordCount { nr_records });
    }
    Ok(())
}

/// Checks `count` descriptors of a record of `size` bytes in a table with
/// `magic` against every descriptor rule (R11 to R13), fetching descriptor
/// `i` with `get`. Used by [`validate`] on a table and by the producer on
/// what it is about to publish.
///
/// # Errors
///
/// The first rule broken (in the order of [`violations`]), or whatever
/// `get` returns.
pub fn check_descriptor_set(
    count: u32,
    magic: u32,
    size: u32,
    get: impl Fn(u32) -> Result<Descriptor>,
) -> Result<()> {
    match descriptor_walk(count, magic, size, get, &mut ControlFlow::Break) {
        Ok(()) => Ok(()),
        Err(Halt::Broken(e) | Halt::Stopped(e)) => Err(e),
    }
}

/// Descriptors whose own fields held, for the pairwise checks: one bit per
/// index below [`MAX_DESCRIPTORS`] (R9 bounds an r2 table's count by it; a
/// larger set, a producer's or an r3 array, is checked again by `again`).
struct SelfOk([u64; MAX_DESCRIPTORS as usize / 64]);

impl SelfOk {
    fn set(&mut self, i: u32) {
        if let Some(w) = self.0.get_mut(i as usize / 64) {
            *w |= 1 << (i % 64);
        }
    }

    fn get(&self, i: u32, again: impl FnOnce() -> bool) -> bool {
        match self.0.get(i as usize / 64) {
            Some(w) => w & (1 << (i % 64)) != 0,
            None => again(),
        }
    }
}

/// The descriptor rules in the order of [`violations`].
fn descriptor_walk<B>(
    count: u32,
    magic: u32,
    size: u32,
    get: impl Fn(u32) -> Result<Descriptor>,
    visit: &mut impl FnMut(Error) -> ControlFlow<B>,
) -> core::result::Result<(), Halt<B>> {
    let std = TableKind::from_magic(magic).map_or(&[][..], TableKind::std_descriptors);
    let mut ok = SelfOk([0; MAX_DESCRIPTORS as usize / 64]);
    for i in 0..count {
        let d = get(i)?;
        if let Err(e) = d.check_self(i, size) {
            report(visit, e)?;
            continue;
        }
        ok.set(i);
        // check_self proved offset + 8 * count <= size: no overflow below.
        let (lo, hi) = (d.offset, d.offset + 8 * d.count);
        for j in 0..i {
            let o = get(j)?;
            if !ok.get(j, || o.check_self(j, size).is_ok()) {
                continue;
            }
            if o.name == d.name {
                report(visit, Error::DescNameDuplicate { index: i, other: j })?;
            }
            if lo < o.offset + 8 * o.count && o.offset < hi {
                report(visit, Error::DescOverlap { index: i, other: j })?;
            }
        }
        if let Some(s) = std.iter().find(|s| s.name == d.name) {
            if s.offset != d.offset || d.count != 1 {
                report(
                    visit,
                    Error::DescStdMismatch {
                        index: i,
                        offset: d.offset,
                        std_offset: s.offset,
                    },
                )?;
            }
        }
    }
    Ok(())
}

/// Reads r3 descriptor `i` of the r3 header `r` from `head`.
fn read_xdescriptor(head: &[u8], r: &R3Header, i: u32) -> Result<Descriptor> {
    descriptor_at(head, r.xdesc_offset, r.xdesc_stride, i)
}

fn walk_xdescriptors<B>(
    head: &[u8],
    r: &R3Header,
    magic: u32,
    visit: &mut impl FnMut(Error) -> ControlFlow<B>,
) -> core::result::Result<(), Halt<B>> {
    xdescriptor_walk(
        r.xdesc_count,
        magic,
        r.xstats_offset,
        r.xstats_size,
        |i| read_xdescriptor(head, r, i),
        visit,
    )
}

/// Checks `count` r3 descriptors of a table with `magic` whose
/// producer-specific area is `[xstats_offset, xstats_offset +
/// xstats_size)` against every r3 descriptor rule (R11, R12, R20),
/// fetching descriptor `i` with `get`. For a producer about to publish an
/// r3 table.
///
/// The pairwise checks (duplicate names, overlaps) are quadratic in
/// `count`, which r3 does not bound: a consumer bounds it by the head it
/// is willing to copy.
///
/// # Errors
///
/// The first rule broken (in the order of [`violations`]), or whatever
/// `get` returns.
pub fn check_xdescriptor_set(
    count: u32,
    magic: u32,
    xstats_offset: u32,
    xstats_size: u32,
    get: impl Fn(u32) -> Result<Descriptor>,
) -> Result<()> {
    match xdescriptor_walk(
        count,
        magic,
        xstats_offset,
        xstats_size,
        get,
        &mut ControlFlow::Break,
    ) {
        Ok(()) => Ok(()),
        Err(Halt::Broken(e) | Halt::Stopped(e)) => Err(e),
    }
}

/// R20 for one r3 descriptor whose own fields (R11, R12) held: its
/// counter lies inside the producer-specific area.
fn xdesc_placement(d: &Descriptor, index: u32, xstats_offset: u32, xstats_size: u32) -> Result<()> {
    let end = u64::from(d.offset) + 8 * u64::from(d.count);
    let area_end = u64::from(xstats_offset) + u64::from(xstats_size);
    if xstats_size == 0 || d.offset < xstats_offset || end > area_end {
        return Err(Error::XdescOutsideArea {
            index,
            offset: d.offset,
            count: d.count,
            xstats_offset,
            xstats_size,
        });
    }
    Ok(())
}

/// The r3 descriptor rules in the order of [`violations`]: per descriptor
/// its own fields (R11, R12; a misplaced counter is R20, not R13), its
/// placement in the area (R20), the standard-name ban (R20), then
/// duplicate names (R11) and overlaps (R20) against each earlier
/// descriptor that held.
fn xdescriptor_walk<B>(
    count: u32,
    magic: u32,
    xstats_offset: u32,
    xstats_size: u32,
    get: impl Fn(u32) -> Result<Descriptor>,
    visit: &mut impl FnMut(Error) -> ControlFlow<B>,
) -> core::result::Result<(), Halt<B>> {
    let std = TableKind::from_magic(magic).map_or(&[][..], TableKind::std_descriptors_r3);
    let placed = |d: &Descriptor, i: u32| {
        // u32::MAX as the record size: check_self then checks only the
        // descriptor's own fields and its alignment.
        d.check_self(i, u32::MAX).is_ok()
            && xdesc_placement(d, i, xstats_offset, xstats_size).is_ok()
    };
    let mut ok = SelfOk([0; MAX_DESCRIPTORS as usize / 64]);
    for i in 0..count {
        let d = get(i)?;
        match d.check_self(i, u32::MAX) {
            Ok(()) => {}
            // Alignment or an offset that overflows: a counter not in the
            // area.
            Err(e) if e.rule() == Rule::R13 => {
                report(
                    visit,
                    Error::XdescOutsideArea {
                        index: i,
                        offset: d.offset,
                        count: d.count,
                        xstats_offset,
                        xstats_size,
                    },
                )?;
                continue;
            }
            Err(e) => {
                report(visit, e)?;
                continue;
            }
        }
        let inside = xdesc_placement(&d, i, xstats_offset, xstats_size);
        if let Some(k) = std.iter().position(|s| s.name == d.name) {
            report(
                visit,
                Error::XdescStandardName {
                    index: i,
                    std_index: k as u32,
                },
            )?;
        }
        if let Err(e) = inside {
            report(visit, e)?;
            continue;
        }
        ok.set(i);
        // Placement proved offset + 8 * count <= 2^33: no overflow below.
        let (lo, hi) = (
            u64::from(d.offset),
            u64::from(d.offset) + 8 * u64::from(d.count),
        );
        for j in 0..i {
            let o = get(j)?;
            if !ok.get(j, || placed(&o, j)) {
                continue;
            }
            if o.name == d.name {
                report(visit, Error::DescNameDuplicate { index: i, other: j })?;
            }
            let (olo, ohi) = (
                u64::from(o.offset),
                u64::from(o.offset) + 8 * u64::from(o.count),
            );
            if lo < ohi && olo < hi {
                report(visit, Error::XdescOverlap { index: i, other: j })?;
            }
        }
    }
    Ok(())
}

/// Offsets of reserved bytes in `[16, offset)` that are not zero: bytes
/// outside the extension header and the descriptors, and the r3 header's
/// `_rsvd0` and `_rsvd1` (P1). The consumer does not enforce this (a later
/// revision may define them); the invariant checker does. Returns the
/// first such offset.
pub fn first_nonzero_reserved(head: &[u8], info: &TableInfo) -> Option<u32> {
    let end = (info.header.offset as usize).min(head.len());
    let mut used = [(0usize, 0usize); 5];
    if let Some(e) = info.ext {
        let ext_end = (EXT_HEADER_OFFSET + e.ext_size) as usize;
        used[0] = (EXT_HEADER_OFFSET as usize, ext_end);
        used[1] = (
            e.desc_offset as usize,
            e.desc_offset as usize + e.desc_count.saturating_mul(e.desc_stride) as usize,
        );
        if info.is_r3() {
            // The r3 header minus its two reserved words.
            let r3 = R3_HEADER_OFFSET as usize;
            used[0] = (EXT_HEADER_OFFSET as usize, r3 + 4);
            used[2] = (r3 + 8, r3 + 28);
            used[3] = (r3 + 32, ext_end);
            used[4] = (
                info.xdesc_offset as usize,
                (info.xdesc_offset as usize)
                    .saturating_add(info.xdesc_count.saturating_mul(info.xdesc_stride) as usize),
            );
        }
    }
    (HEADER_SIZE as usize..end)
        .find(|&i| head[i] != 0 && !used.iter().any(|&(lo, hi)| (lo..hi).contains(&i)))
        .map(|i| i as u32)
}

#[cfg(test)]
mod tests {
    use std::{vec, vec::Vec};

    use zerocopy::IntoBytes;

    use super::*;
    use crate::{
        desc::{Base, Kind, Unit},
        layout::{Layout, LayoutParams},
        record::VCPU_STD_DESCRIPTORS,
        DOMAIN_STATS_MAGIC, DOMAIN_STATS_MAGIC_R2,
    };

    fn table(n: u32) -> Vec<u8> {
        let l = Layout::compute(&LayoutParams::vcpu_r2(n)).unwrap();
        let mut b = vec![0u8; l.mapping_len() as usize];
        l.write_headers(&mut b, VCPU_STATS_MAGIC, 7, VCPU_STD_DESCRIPTORS)
            .unwrap();
        b
    }

    fn put32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    }

    fn err(b: &[u8]) -> Error {
        validate(b, b.len() as u64).unwrap_err()
    }

    #[test]
    fn accepts_a_produced_table() {
        let b = table(4);
        let info = validate(&b, b.len() as u64).unwrap();
        assert_eq!(info.nr_records, 4);
        assert_eq!(info.generation(), 7);
        assert_eq!(info.desc_count(), 4);
        assert_eq!(
            info.descriptor(&b, 0).unwrap().name_str(),
            Some("runstate_running_time")
        );
        assert!(info.has_std_field(32));
        assert!(!info.has_std_field(40));
        assert_eq!(first_nonzero_reserved(&b, &info), None);
    }

    #[test]
    fn accepts_a_v3_table() {
        // What RFC v3's Xen writes: 16-byte header, offset 64, one record.
        let mut b = vec![0u8; 4096];
        b[..16].copy_from_slice(
            Header {
                magic: VCPU_STATS_MAGIC,
                offset: 64,
                size: 16,
                stride: 64,
            }
            .as_bytes(),
        );
        let info = validate(&b, 4096).unwrap();
        assert_eq!(info.ext, None);
        assert_eq!(info.nr_records, (4096 - 64) / 64);
        assert!(info.has_std_field(8));
        assert!(!info.has_std_field(16));
    }

    #[test]
    fn each_header_rule_fails_on_purpose() {
        assert_eq!(validate(&[0; 8], 8), Err(Error::MappingTooShort { len: 8 }));
        let good = table(2);

        let mut b = good.clone();
        put32(&mut b, 0, 0x1234_5678);
        assert_eq!(err(&b), Error::BadMagic { found: 0x1234_5678 });

        let mut b = good.clone();
        put32(&mut b, 4, 8);
        assert_eq!(err(&b), Error::OffsetBelowHeader { offset: 8, min: 16 });

        let mut b = good.clone();
        put32(&mut b, 8, 4);
        assert_eq!(err(&b), Error::SizeBelowSeq { size: 4 });

        let mut b = good.clone();
        put32(&mut b, 8, 36);
        assert_eq!(err(&b), Error::SizeNotMultipleOf8 { size: 36 });

        let mut b = good.clone();
        put32(&mut b, 12, 32);
        assert_eq!(
            err(&b),
            Error::StrideBelowSize {
                stride: 32,
                size: 40
            }
        );

        let mut b = good.clone();
        put32(&mut b, 4, 324);
        assert_eq!(
            err(&b),
            Error::Misaligned {
                field: HeaderField::Offset,
                value: 324
            }
        );

        let mut b = good.clone();
        put32(&mut b, 12, 68);
        assert_eq!(
            err(&b),
            Error::Misaligned {
                field: HeaderField::Stride,
                value: 68
            }
        );

        let mut b = good.clone();
        put32(&mut b, 16 + 8, u32::MAX);
        put32(&mut b, 12, u32::MAX - 7);
        assert!(matches!(err(&b), Error::MappingTooSmall { .. }));

        // Records end past the mapping.
        let mut b = good.clone();
        put32(&mut b, 16 + 8, 100);
        assert_eq!(
            err(&b),
            Error::MappingTooSmall {
                need: 320 + 100 * 64,
                len: 4096
            }
        );

        // offset beyond the mapping.
        let mut b = good.clone();
        put32(&mut b, 4, 8192);
        assert_eq!(
            err(&b),
            Error::MappingTooSmall {
                need: 8192,
                len: 4096
            }
        );

        // A stride that makes record 1 cross the first page boundary.
        let mut b = vec![0u8; 8192];
        b[..16].copy_from_slice(
            Header {
                magic: VCPU_STATS_MAGIC,
                offset: 64,
                size: 40,
                stride: 4008,
            }
            .as_bytes(),
        );
        assert_eq!(
            err(&b),
            Error::RecordStraddlesPage {
                record: 1,
                start: 4072,
                page_size: 4096
            }
        );

        // The copy of the head is shorter than offset.
        assert_eq!(
            validate(&good[..100], 4096),
            Err(Error::HeadTruncated {
                need: 320,
                have: 100
            })
        );
    }

    #[test]
    fn huge_counts_do_not_wrap() {
        // offset + nr * stride with 32-bit inputs is at most 2^64 - 2^32 in
        // 64-bit arithmetic: it cannot wrap, and a huge table is refused as
        // too big for the mapping rather than accepted modulo 2^64.
        let mut b = table(1);
        put32(&mut b, 12, 0xffff_fff8);
        put32(&mut b, 16 + 8, u32::MAX);
        assert!(
            matches!(err(&b), Error::MappingTooSmall { need, .. } if need > u64::from(u32::MAX))
        );
    }

    #[test]
    fn each_ext_rule_fails_on_purpose() {
        let good = table(2);
        let cases: &[(usize, u32, Error)] = &[
            (
                16,
                0xdead_beef,
                Error::BadExtHeader {
                    field: ExtField::ExtMagic,
                    value: 0xdead_beef,
                },
            ),
            (
                20,
                32,
                Error::BadExtHeader {
                    field: ExtField::ExtSize,
                    value: 32,
                },
            ),
            (
                20,
                4096,
                Error::BadExtHeader {
                    field: ExtField::ExtSize,
                    value: 4096,
                },
            ),
            (
                28,
                11,
                Error::BadExtHeader {
                    field: ExtField::PageShift,
                    value: 11,
                },
            ),
            (
                28,
                31,
                Error::BadExtHeader {
                    field: ExtField::PageShift,
                    value: 31,
                },
            ),
            (
                32,
                48,
                Error::BadExtHeader {
                    field: ExtField::AbiSize,
                    value: 48,
                },
            ),
            (
                32,
                4,
                Error::BadExtHeader {
                    field: ExtField::AbiSize,
                    value: 4,
                },
            ),
            (
                40,
                2000,
                Error::BadExtHeader {
                    field: ExtField::DescCount,
                    value: 2000,
                },
            ),
        ];
        for (at, v, e) in cases {
            let mut b = good.clone();
            put32(&mut b, *at, *v);
            assert_eq!(err(&b), *e, "field at {at} = {v}");
        }
        let mut b = good.clone();
        put32(&mut b, 36, 8);
        assert!(matches!(err(&b), Error::DescTableOutOfBounds { .. }));
        let mut b = good.clone();
        put32(&mut b, 40, 5);
        assert!(matches!(err(&b), Error::DescTableOutOfBounds { .. }));
        let mut b = good.clone();
        put32(&mut b, 44, 32);
        assert!(matches!(err(&b), Error::DescTableOutOfBounds { .. }));
    }

    #[test]
    fn descriptor_set_rules_fail_on_purpose() {
        let l = Layout::compute(&LayoutParams::vcpu_r2(1)).unwrap();
        let mk = |descs: &[Descriptor]| {
            let mut b = vec![0u8; 4096];
            l.write_headers(&mut b, VCPU_STATS_MAGIC, 1, descs).unwrap();
            err(&b)
        };
        let d = |n, off| Descriptor::scalar(n, off, Kind::CUMULATIVE, Unit::NONE, Base::POW10, 0);
        assert_eq!(
            mk(&[d("a", 8), d("b", 16), d("a", 24), d("c", 32)]),
            Error::DescNameDuplicate { index: 2, other: 0 }
        );
        assert_eq!(
            mk(&[d("a", 8), d("b", 16), d("c", 16), d("d", 32)]),
            Error::DescOverlap { index: 2, other: 1 }
        );
        let mut bad = d("x", 8);
        bad.unit = Unit(99);
        assert_eq!(
            mk(&[d("a", 8), bad, d("c", 24), d("d", 32)]),
            Error::DescUnknownUnit { index: 1, unit: 99 }
        );
        assert!(matches!(
            mk(&[d("a", 8), d("b", 16), d("c", 24), d("d", 40)]),
            Error::DescOutsideRecord { index: 3, .. }
        ));
    }

    #[test]
    fn standard_names_keep_their_offsets() {
        let l = Layout::compute(&LayoutParams::vcpu_r2(1)).unwrap();
        let mut descs = VCPU_STD_DESCRIPTORS.to_vec();
        descs.swap(0, 1);
        (descs[0].offset, descs[1].offset) = (8, 16);
        let mut b = vec![0u8; 4096];
        l.write_headers(&mut b, VCPU_STATS_MAGIC, 1, &descs)
            .unwrap();
        assert_eq!(
            err(&b),
            Error::DescStdMismatch {
                index: 0,
                offset: 8,
                std_offset: 16
            }
        );
    }

    #[test]
    fn a_domain_table_has_one_record() {
        let p = LayoutParams {
            nr_records: 2,
            ..LayoutParams::domain_r2()
        };
        let l = Layout::compute(&p).unwrap();
        let mut b = vec![0u8; 4096];
        l.write_headers(
            &mut b,
            DOMAIN_STATS_MAGIC_R2,
            1,
            crate::record::DOMAIN_STD_DESCRIPTORS,
        )
        .unwrap();
        assert_eq!(err(&b), Error::DomainRecordCount { nr_records: 2 });
        let l = Layout::compute(&LayoutParams::domain_r2()).unwrap();
        l.write_headers(
            &mut b,
            DOMAIN_STATS_MAGIC_R2,
            1,
            crate::record::DOMAIN_STD_DESCRIPTORS,
        )
        .unwrap();
        assert_eq!(validate(&b, 4096).unwrap().nr_records, 1);
    }

    fn all(b: &[u8]) -> (Vec<Error>, Validation) {
        let mut errors = Vec::new();
        let v = violations(b, b.len() as u64, |e| {
            errors.push(e);
            ControlFlow::Continue(())
        });
        (errors, v)
    }

    #[test]
    fn violations_lists_every_descriptor_error_and_starts_with_validates() {
        let l = Layout::compute(&LayoutParams {
            record_size: 48,
            desc_count: 5,
            ..LayoutParams::vcpu_r2(2)
        })
        .unwrap();
        let d = |n, off| Descriptor::scalar(n, off, Kind::CUMULATIVE, Unit::NONE, Base::POW10, 0);
        let mut bad_unit = d("u", 24);
        bad_unit.unit = Unit(99);
        let descs = [
            d("runstate_running_time", 8),
            d("a", 16),
            bad_unit,
            d("a", 32),
            d("z", 32),
        ];
        let mut b = vec![0u8; l.mapping_len() as usize];
        l.write_headers(&mut b, VCPU_STATS_MAGIC, 9, &descs)
            .unwrap();
        let (errors, v) = all(&b);
        assert_eq!(
            errors,
            [
                Error::DescUnknownUnit { index: 2, unit: 99 },
                Error::DescNameDuplicate { index: 3, other: 1 },
                Error::DescOverlap { index: 4, other: 3 },
            ]
        );
        assert_eq!(validate(&b, b.len() as u64), Err(errors[0]));
        assert_eq!(v.info.map(|i| i.nr_records), Some(2));
        assert!(v.checked.contains(Rule::R18) && v.checked.contains(Rule::R13));
        // Stopping after the first.
        let mut n = 0;
        violations(&b, b.len() as u64, |_| {
            n += 1;
            ControlFlow::Break(())
        });
        assert_eq!(n, 1);
    }

    #[test]
    fn violations_go_past_the_record_rules_but_not_the_header_rules() {
        // R7 and R18 broken, the descriptors still checked.
        let p = LayoutParams {
            nr_records: 2,
            ..LayoutParams::domain_r2()
        };
        let l = Layout::compute(&p).unwrap();
        let mut b = vec![0u8; 4096];
        l.write_headers(
            &mut b,
            DOMAIN_STATS_MAGIC_R2,
            1,
            crate::record::DOMAIN_STD_DESCRIPTORS,
        )
        .unwrap();
        put32(&mut b, 16 + 8, 100);
        let (errors, v) = all(&b);
        let rules: Vec<_> = errors.iter().map(Error::rule).collect();
        assert_eq!(rules, [Rule::R7, Rule::R18]);
        assert_eq!(validate(&b, 4096), Err(errors[0]));
        assert!(v.checked.contains(Rule::R13));
        // offset beyond the mapping: R9 and R10 not checked.
        let mut b = table(2);
        put32(&mut b, 4, 8192);
        let (errors, v) = all(&b);
        assert_eq!(
            errors,
            [Error::MappingTooSmall {
                need: 8192,
                len: 4096
            }]
        );
        assert!(v.info.is_none());
        let checked: Vec<_> = v.checked.iter().collect();
        use Rule::*;
        assert_eq!(checked, [R1, R2, R3, R4, R5, R6, R7]);
        // A bad extension header: R10 and later not checked.
        let mut b = table(2);
        put32(&mut b, 28, 11);
        let (errors, v) = all(&b);
        assert_eq!(errors.len(), 1);
        assert!(v.checked.contains(R9) && !v.checked.contains(R10) && !v.checked.contains(R7));
    }

    // ------------------------------------------------------------- r3

    const R3_AREA: u32 = 8 * 8;

    fn xd(name: &str, offset: u32) -> Descriptor {
        Descriptor::scalar(name, offset, Kind::CUMULATIVE, Unit::NONE, Base::POW10, 0)
    }

    /// A laid-out r3 table: header, descriptors and fill, as a producer
    /// writes it.
    fn r3_image(p: &LayoutParams, magic: u32, descs: &[Descriptor]) -> (Layout, Vec<u8>) {
        let l = Layout::compute(p).unwrap();
        let mut b = vec![0u8; l.mapping_len() as usize];
        l.write_headers(&mut b, magic, 11, descs).unwrap();
        l.fill_records(&mut b).unwrap();
        (l, b)
    }

    /// An r3 vCPU table of 3 vCPUs with an 8-word producer area and two
    /// descriptors in it.
    fn r3_good() -> (Layout, Vec<u8>) {
        let p = LayoutParams {
            xstats_size: R3_AREA,
            xdesc_count: 2,
            clock: crate::header::CLOCK_HOST_MONOTONIC,
            ..LayoutParams::vcpu_r3(3)
        };
        r3_image(&p, VCPU_STATS_MAGIC, &[xd("exits", 56), xd("halts", 64)])
    }

    fn rules(b: &[u8]) -> Vec<Rule> {
        all(b).0.iter().map(Error::rule).collect()
    }

    #[test]
    fn accepts_r3_tables() {
        let (l, b) = r3_good();
        let info = validate(&b, b.len() as u64).unwrap();
        assert!(info.is_r3());
        assert_eq!(info.clock, 1);
        assert_eq!((info.xstats_offset, info.xstats_size), (56, R3_AREA));
        assert_eq!(
            (info.xdesc_offset, info.xdesc_count, info.xdesc_stride),
            (88, 2, 64)
        );
        assert_eq!(info.record_extent(), 120);
        assert_eq!(info.desc_count(), 0, "no r2 descriptors");
        assert_eq!(info.descriptor(&b, 0), None);
        assert_eq!(info.xdescriptor(&b, 1).unwrap().name_str(), Some("halts"));
        assert_eq!(info.xdescriptor(&b, 2), None);
        assert!(info.has_std_field(crate::record::vcpu_off::ENTRY));
        assert!(!info.has_std_field(56));
        assert_eq!(info.nr_records, 3);
        assert_eq!(first_nonzero_reserved(&b, &info), None);
        assert_eq!(l.stride, 128);
        // Every rule checked, none broken.
        let (errors, v) = all(&b);
        assert!(errors.is_empty());
        for r in [
            Rule::R19,
            Rule::R20,
            Rule::R21,
            Rule::R22,
            Rule::R23,
            Rule::R18,
        ] {
            assert!(v.checked.contains(r), "{r}");
        }
        // The Xen hypervisor's table: nothing optional.
        let (_, b) = r3_image(&LayoutParams::vcpu_r3(64), VCPU_STATS_MAGIC, &[]);
        let info = validate(&b, b.len() as u64).unwrap();
        assert!(info.is_r3() && info.xstats_size == 0 && info.xdesc_count == 0);
        // Domain tables, with the r3 magic and with the legacy one.
        for magic in [crate::header::DOMAIN_STATS_MAGIC_R2, DOMAIN_STATS_MAGIC] {
            let (_, b) = r3_image(&LayoutParams::domain_r3(), magic, &[]);
            let info = validate(&b, b.len() as u64).unwrap();
            assert_eq!(info.kind(), TableKind::Domain);
        }
        // An r2 table has none of the r3 fields and is not checked by them.
        let b = table(2);
        let (errors, v) = all(&b);
        assert!(errors.is_empty());
        let info = v.info.unwrap();
        assert!(!info.is_r3());
        assert_eq!((info.clock, info.xstats_size, info.xdesc_count), (0, 0, 0));
        assert!(!v.checked.contains(Rule::R19) && v.checked.contains(Rule::R23));
    }

    #[test]
    fn r2_layout_accepts_the_r3_domain_magic() {
        let l = Layout::compute(&LayoutParams::domain_r2()).unwrap();
        let mut b = vec![0u8; 4096];
        l.write_headers(
            &mut b,
            DOMAIN_STATS_MAGIC,
            1,
            crate::record::DOMAIN_STD_DESCRIPTORS,
        )
        .unwrap();
        assert_eq!(validate(&b, 4096).unwrap().kind(), TableKind::Domain);
        put32(&mut b, 0, DOMAIN_STATS_MAGIC_R2);
        assert_eq!(validate(&b, 4096).unwrap().kind(), TableKind::Domain);
        put32(&mut b, 0, 0xaabb_ccdf);
        assert_eq!(rules(&b), [Rule::R2]);
    }

    #[test]
    fn r19_the_area_lies_after_the_record_inside_the_stride() {
        let (_, good) = r3_good();
        // The corpus fault: xstats_offset = size, xstats_size = stride.
        let mut b = good.clone();
        put32(&mut b, 68, 128);
        assert_eq!(
            err(&b),
            Error::XstatsOutOfBounds {
                xstats_offset: 56,
                xstats_size: 128,
                size: 56,
                stride: 128,
                page_size: 4096
            }
        );
        assert_eq!(rules(&b), [Rule::R19]);
        for (at, v) in [
            (64, 48), // inside the standard record
            (64, 60), // misaligned
            (68, 12), // size misaligned
            (64, 0),  // an area without its offset
        ] {
            let mut b = good.clone();
            put32(&mut b, at, v);
            let r = rules(&b);
            assert_eq!(r.first(), Some(&Rule::R19), "{at} = {v}: {r:?}");
            assert!(!r.contains(&Rule::R8), "{at} = {v}: {r:?}");
        }
        // An offset without an area.
        let (_, mut b) = r3_image(&LayoutParams::vcpu_r3(1), VCPU_STATS_MAGIC, &[]);
        put32(&mut b, 64, 56);
        assert_eq!(rules(&b), [Rule::R19]);
    }

    #[test]
    fn r8_counts_the_producer_area() {
        // Record 30 at byte 4032: its 56 standard bytes end in the page,
        // its area (to byte 120 of the record) does not.
        let p = LayoutParams {
            xstats_size: 64,
            ..LayoutParams::vcpu_r3(40)
        };
        let l = Layout::compute(&p).unwrap();
        assert_eq!((l.stride, l.offset, l.frames), (128, 128, 2));
        let mut b = vec![0u8; l.mapping_len() as usize];
        l.write_headers(&mut b, VCPU_STATS_MAGIC, 1, &[]).unwrap();
        assert!(validate(&b, b.len() as u64).is_ok());
        put32(&mut b, 4, 192);
        assert_eq!(
            err(&b),
            Error::RecordStraddlesPage {
                record: 30,
                start: 4032,
                page_size: 4096
            }
        );
        assert_eq!(rules(&b), [Rule::R8]);
        // Without the area the same geometry is fine.
        put32(&mut b, 64, 0);
        put32(&mut b, 68, 0);
        assert!(validate(&b, b.len() as u64).is_ok());
    }

    #[test]
    fn r20_the_descriptor_array_lies_in_the_head() {
        let (_, good) = r3_good();
        for (at, v) in [
            (72, 56),  // inside the header
            (72, 92),  // misaligned
            (76, 100), // past offset
            (80, 32),  // stride below 64
        ] {
            let mut b = good.clone();
            put32(&mut b, at, v);
            let e = err(&b);
            assert!(
                matches!(e, Error::XdescTableOutOfBounds { head_end: 88, .. }),
                "{at} = {v}: {e:?}"
            );
            assert_eq!(rules(&b), [Rule::R20], "{at} = {v}");
        }
        // No descriptors: offset and stride are 0.
        let (_, mut b) = r3_image(&LayoutParams::vcpu_r3(1), VCPU_STATS_MAGIC, &[]);
        put32(&mut b, 80, 64);
        assert_eq!(rules(&b), [Rule::R20]);
    }

    #[test]
    fn r20_descriptors_describe_only_the_area() {
        let p = LayoutParams {
            xstats_size: R3_AREA,
            xdesc_count: 2,
            ..LayoutParams::vcpu_r3(2)
        };
        let mk = |descs: &[Descriptor]| r3_image(&p, VCPU_STATS_MAGIC, descs).1;
        // The corpus fault: a standard name in the area.
        let b = mk(&[xd("exits", 56), xd("runstate_running_time", 64)]);
        assert_eq!(
            err(&b),
            Error::XdescStandardName {
                index: 1,
                std_index: 0
            }
        );
        assert_eq!(rules(&b), [Rule::R20]);
        // r3 names too: runstate_entry_time is standard in r3.
        let b = mk(&[xd("exits", 56), xd("runstate_entry_time", 64)]);
        assert_eq!(
            err(&b),
            Error::XdescStandardName {
                index: 1,
                std_index: 5
            }
        );
        // A counter in the standard record (R13 would have let it through
        // in an r2 table: offset 8 is inside size).
        let b = mk(&[xd("exits", 56), xd("mine", 8)]);
        assert_eq!(
            err(&b),
            Error::XdescOutsideArea {
                index: 1,
                offset: 8,
                count: 1,
                xstats_offset: 56,
                xstats_size: R3_AREA
            }
        );
        assert_eq!(rules(&b), [Rule::R20]);
        // Past the area, and misaligned.
        let b = mk(&[xd("exits", 56), xd("mine", 56 + R3_AREA)]);
        assert_eq!(rules(&b), [Rule::R20]);
        let b = mk(&[xd("exits", 56), xd("mine", 60)]);
        assert!(matches!(err(&b), Error::XdescOutsideArea { index: 1, .. }));
        // Overlap, and a duplicate name (R11 as in r2).
        let b = mk(&[xd("exits", 56), xd("halts", 56)]);
        assert_eq!(err(&b), Error::XdescOverlap { index: 1, other: 0 });
        assert_eq!(rules(&b), [Rule::R20]);
        let b = mk(&[xd("exits", 56), xd("exits", 64)]);
        assert_eq!(rules(&b), [Rule::R11]);
        // A descriptor without an area.
        let p = LayoutParams {
            xdesc_count: 1,
            ..LayoutParams::vcpu_r3(1)
        };
        let (_, b) = r3_image(&p, VCPU_STATS_MAGIC, &[xd("exits", 56)]);
        assert!(matches!(
            err(&b),
            Error::XdescOutsideArea { xstats_size: 0, .. }
        ));
        // The producer's check agrees with the table's.
        let descs = [xd("exits", 56), xd("runstate", 64)];
        assert_eq!(
            check_xdescriptor_set(2, VCPU_STATS_MAGIC, 56, R3_AREA, |i| Ok(descs[i as usize])),
            Err(Error::XdescStandardName {
                index: 1,
                std_index: 4
            })
        );
        assert_eq!(
            check_xdescriptor_set(1, VCPU_STATS_MAGIC, 56, R3_AREA, |i| Ok(descs[i as usize])),
            Ok(())
        );
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "1100 descriptors checked pairwise: over a million name compares, minutes under Miri"
    )]
    fn r9_no_descriptor_cap_in_r3() {
        // 1100 r3 descriptors (r2 caps its array at 1024), one per word of
        // a 64 KiB-page record's area.
        let n = 1100u32;
        let p = LayoutParams {
            xstats_size: 8 * n,
            xdesc_count: n,
            page_size: 65536,
            ..LayoutParams::vcpu_r3(2)
        };
        let names: Vec<std::string::String> = (0..n).map(|i| std::format!("c{i}")).collect();
        let descs: Vec<_> = (0..n).map(|i| xd(&names[i as usize], 56 + 8 * i)).collect();
        let (_, b) = r3_image(&p, VCPU_STATS_MAGIC, &descs);
        let info = validate(&b, b.len() as u64).unwrap();
        assert_eq!(info.xdesc_count, n);
        // The last descriptor overlapping the first is still found past
        // the 1024 tracked by bits.
        let mut descs = descs;
        descs[n as usize - 1].offset = 56;
        let (_, b) = r3_image(&p, VCPU_STATS_MAGIC, &descs);
        assert_eq!(
            err(&b),
            Error::XdescOverlap {
                index: n - 1,
                other: 0
            }
        );
    }

    #[test]
    fn r21_an_r3_header_has_no_r2_descriptors() {
        let (_, good) = r3_good();
        // The corpus fault: desc_count = 4.
        let mut b = good.clone();
        put32(&mut b, 40, 4);
        assert_eq!(
            err(&b),
            Error::R3LegacyField {
                field: ExtField::DescCount,
                value: 4,
                expected: 0
            }
        );
        assert_eq!(rules(&b), [Rule::R21]);
        // abi_size below size: R21, not r2's R9 (which allows it).
        let mut b = good.clone();
        put32(&mut b, 32, 40);
        assert_eq!(rules(&b), [Rule::R21]);
        // abi_size above size: R21 too, not R9.
        let mut b = good.clone();
        put32(&mut b, 32, 64);
        assert_eq!(rules(&b), [Rule::R21]);
        for at in [36, 44] {
            let mut b = good.clone();
            put32(&mut b, at, 88);
            assert_eq!(rules(&b), [Rule::R21], "{at}");
        }
    }

    #[test]
    fn r22_an_r3_vcpu_record_holds_the_r3_fields() {
        let p = LayoutParams {
            record_size: 48,
            abi_size: 48,
            ..LayoutParams::vcpu_r3(2)
        };
        let (_, b) = r3_image(&p, VCPU_STATS_MAGIC, &[]);
        assert_eq!(err(&b), Error::VcpuRecordTooSmall { size: 48, min: 56 });
        assert_eq!(rules(&b), [Rule::R22]);
        // A domain record is not a vCPU record.
        let (_, b) = r3_image(&LayoutParams::domain_r3(), DOMAIN_STATS_MAGIC, &[]);
        assert!(validate(&b, b.len() as u64).is_ok());
    }

    #[test]
    fn r22_a_v3_or_r2_vcpu_record_holds_the_running_time() {
        // The corpus fault `vcpu-size-8`, r2 header: seq and pad only.
        let p = LayoutParams {
            record_size: 8,
            abi_size: 8,
            desc_count: 0,
            ..LayoutParams::vcpu_r2(2)
        };
        let l = Layout::compute(&p).unwrap();
        let mut b = vec![0u8; l.mapping_len() as usize];
        l.write_headers(&mut b, VCPU_STATS_MAGIC, 1, &[]).unwrap();
        assert_eq!(err(&b), Error::VcpuRecordTooSmall { size: 8, min: 16 });
        assert_eq!(rules(&b), [Rule::R22]);
        // 16 bytes are enough.
        let p = LayoutParams {
            record_size: 16,
            abi_size: 16,
            ..p
        };
        let l = Layout::compute(&p).unwrap();
        l.write_headers(&mut b, VCPU_STATS_MAGIC, 1, &[]).unwrap();
        assert!(validate(&b, b.len() as u64).is_ok());
        // A v3 page (no extension header) with size 8.
        let mut b = vec![0u8; 4096];
        b[..16].copy_from_slice(
            Header {
                magic: VCPU_STATS_MAGIC,
                offset: 64,
                size: 8,
                stride: 64,
            }
            .as_bytes(),
        );
        assert_eq!(err(&b), Error::VcpuRecordTooSmall { size: 8, min: 16 });
        // A domain table of an r2 producer is not held to it.
        let p = LayoutParams {
            record_size: 8,
            abi_size: 8,
            desc_count: 0,
            ..LayoutParams::domain_r2()
        };
        let l = Layout::compute(&p).unwrap();
        let mut b = vec![0u8; l.mapping_len() as usize];
        l.write_headers(&mut b, DOMAIN_STATS_MAGIC_R2, 1, &[])
            .unwrap();
        assert!(validate(&b, b.len() as u64).is_ok());
    }

    #[test]
    fn r23_a_domain_table_has_the_extension_header_r18_only_counts() {
        // A v3-style domain table: 16-byte header, no extension header.
        for magic in [DOMAIN_STATS_MAGIC, crate::header::DOMAIN_STATS_MAGIC_R2] {
            let mut b = vec![0u8; 4096];
            b[..16].copy_from_slice(
                Header {
                    magic,
                    offset: 64,
                    size: 32,
                    stride: 64,
                }
                .as_bytes(),
            );
            assert_eq!(
                err(&b),
                Error::DomainWithoutExt {
                    marker: 0,
                    offset: 64
                }
            );
            // R23, and not R18: the record count of a table without the
            // extension header is only the mapping's.
            assert_eq!(rules(&b), [Rule::R23]);
        }
        // Too little room below offset for the marker.
        let mut b = vec![0u8; 4096];
        b[..16].copy_from_slice(
            Header {
                magic: DOMAIN_STATS_MAGIC,
                offset: 16,
                size: 32,
                stride: 4080,
            }
            .as_bytes(),
        );
        assert_eq!(
            err(&b),
            Error::DomainWithoutExt {
                marker: 0,
                offset: 16
            }
        );
        // An r3 domain table with two records is R18's.
        let p = LayoutParams {
            nr_records: 2,
            ..LayoutParams::domain_r3()
        };
        let (_, b) = r3_image(&p, crate::header::DOMAIN_STATS_MAGIC_R2, &[]);
        assert_eq!(rules(&b), [Rule::R18]);
    }

    #[test]
    fn r3_reserved_words_are_p1() {
        let (_, b) = r3_good();
        let info = validate(&b, b.len() as u64).unwrap();
        for at in [60usize, 84] {
            let mut b = b.clone();
            put32(&mut b, at, 1);
            assert_eq!(first_nonzero_reserved(&b, &info), Some(at as u32));
        }
        // Between the r3 descriptors and offset.
        let mut b = b.clone();
        b[216] = 1;
        assert_eq!(first_nonzero_reserved(&b, &info), Some(216));
    }

    #[test]
    fn reserved_bytes_found() {
        let mut b = table(1);
        let info = validate(&b, 4096).unwrap();
        b[info.header.offset as usize - 1] = 1;
        assert_eq!(
            first_nonzero_reserved(&b, &info),
            Some(info.header.offset - 1)
        );
    }
}
