//! Validation of a table as a consumer sees it: hostile bytes in, a
//! [`TableInfo`] whose every record is in bounds out, or the first rule
//! broken.
//!
//! The consumer copies the head of the mapping (`[0, offset)`) into private
//! memory first and validates the copy: the producer cannot change what was
//! checked after the check (no double fetch).

use core::ops::ControlFlow;

use zerocopy::FromBytes;

use crate::{
    desc::{Descriptor, DESCRIPTOR_SIZE},
    error::{ExtField, HeaderField, Quantity},
    header::{
        ExtHeader, Header, EXT_HEADER_END, EXT_HEADER_OFFSET, EXT_HEADER_SIZE, EXT_MAGIC,
        HEADER_SIZE,
    },
    layout::{DEFAULT_PAGE_SIZE, MAX_DESCRIPTORS},
    record::RECORD_PREFIX,
    Error, Result, Rule, RuleSet, TableKind, VCPU_STATS_MAGIC,
};

/// Smallest `page_shift` accepted (4 KiB).
pub const MIN_PAGE_SHIFT: u32 = 12;
/// Largest `page_shift` accepted (1 GiB).
pub const MAX_PAGE_SHIFT: u32 = 30;

/// A validated table's geometry: every record slot `i < nr_records` lies in
/// `[record_offset(i), record_offset(i) + size)` inside the mapping and
/// inside one page.
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
}

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
    /// violations of R7, R8, R18 or R11 to R13 it is the geometry the
    /// header claims: do not read records with it.
    pub info: Option<TableInfo>,
    /// The rules that were checked: the others were not, because a broken
    /// rule they depend on (or the visitor) stopped the walk.
    pub checked: RuleSet,
}

/// Lists every rule violation of a table, in the order [`validate`]
/// checks them (its first error is the first violation here), calling
/// `visit` with each; `visit` returns [`ControlFlow::Break`] to stop.
///
/// A violation that leaves the rest of the table unreadable stops the walk
/// (a bad header field, R9, R10, `offset` beyond the mapping, a head copy
/// too short: [`Error::HeadTruncated`]). Violations of R7, R8 and R18 do
/// not: the descriptors are still checked. Each descriptor is checked on
/// its own fields (R11, R12, R13), then for duplicate names (R11) and
/// overlaps (R13) against each earlier descriptor whose own fields held,
/// then for the standard-name rule (R13). Allocates nothing; the work is
/// bounded by the head's length (at most 1024 descriptors, R9).
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
    // R9, R10: the extension header, when its magic says it is there.
    checked.insert(Rule::R9);
    let ext = parse_ext(head, &header).inspect_err(|e| {
        if e.rule() == Rule::R10 {
            checked.insert(Rule::R10);
        }
    })?;
    checked.insert(Rule::R10);
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
    // R8: no record crosses a page boundary.
    checked.insert(Rule::R8);
    if let Err(e) = check_pages(offset, size, stride, nr_records, page_size) {
        report(visit, e)?;
    }
    checked.insert(Rule::R18);
    if let Err(e) = check_record_count(magic, nr_records) {
        report(visit, e)?;
    }
    // R11-R13: the descriptors.
    checked.insert(Rule::R11);
    checked.insert(Rule::R12);
    checked.insert(Rule::R13);
    if let Some(e) = ext {
        walk_descriptors(head, &e, magic, size, visit)?;
    }
    Ok(TableInfo {
        header,
        ext,
        nr_records,
        page_size,
        abi_size,
        mapped_len,
    })
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

fn parse_ext(head: &[u8], h: &Header) -> Result<Option<ExtHeader>> {
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
    Ok(Some(e))
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
    let at = u64::from(e.desc_offset) + u64::from(i) * u64::from(e.desc_stride);
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
/// index below [`MAX_DESCRIPTORS`] (R9 bounds a table's count by it; a
/// producer's larger set is checked with [`Descriptor::check_self`] again).
struct SelfOk([u64; MAX_DESCRIPTORS as usize / 64]);

impl SelfOk {
    fn set(&mut self, i: u32) {
        if let Some(w) = self.0.get_mut(i as usize / 64) {
            *w |= 1 << (i % 64);
        }
    }

    fn get(&self, i: u32, d: &Descriptor, size: u32) -> bool {
        match self.0.get(i as usize / 64) {
            Some(w) => w & (1 << (i % 64)) != 0,
            None => d.check_self(i, size).is_ok(),
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
            if !ok.get(j, &o, size) {
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

/// Offsets of reserved bytes in `[16, offset)` that are not zero: bytes
/// outside the extension header and the descriptors. The consumer does not
/// enforce this (a later revision may define them); the invariant checker
/// does. Returns the first such offset.
pub fn first_nonzero_reserved(head: &[u8], info: &TableInfo) -> Option<u32> {
    let end = (info.header.offset as usize).min(head.len());
    let mut used = [(0usize, 0usize); 2];
    if let Some(e) = info.ext {
        used[0] = (
            EXT_HEADER_OFFSET as usize,
            (EXT_HEADER_OFFSET + e.ext_size) as usize,
        );
        used[1] = (
            e.desc_offset as usize,
            e.desc_offset as usize + (e.desc_count * e.desc_stride) as usize,
        );
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
        DOMAIN_STATS_MAGIC,
    };

    fn table(n: u32) -> Vec<u8> {
        let l = Layout::compute(&LayoutParams::vcpu(n)).unwrap();
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
        let l = Layout::compute(&LayoutParams::vcpu(1)).unwrap();
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
        let l = Layout::compute(&LayoutParams::vcpu(1)).unwrap();
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
            ..LayoutParams::domain()
        };
        let l = Layout::compute(&p).unwrap();
        let mut b = vec![0u8; 4096];
        l.write_headers(
            &mut b,
            DOMAIN_STATS_MAGIC,
            1,
            crate::record::DOMAIN_STD_DESCRIPTORS,
        )
        .unwrap();
        assert_eq!(err(&b), Error::DomainRecordCount { nr_records: 2 });
        let l = Layout::compute(&LayoutParams::domain()).unwrap();
        l.write_headers(
            &mut b,
            DOMAIN_STATS_MAGIC,
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
            ..LayoutParams::vcpu(2)
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
            ..LayoutParams::domain()
        };
        let l = Layout::compute(&p).unwrap();
        let mut b = vec![0u8; 4096];
        l.write_headers(
            &mut b,
            DOMAIN_STATS_MAGIC,
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
