//! The one error type of the ABI crate: every rule a table or a layout can
//! break, with the values that broke it.

use core::fmt;

use crate::Rule;

/// A rule of `docs/abi.md` that a table, a layout request or a descriptor
/// breaks. The rule number in `docs/abi.md` is given by [`Error::rule`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The mapping is shorter than the 16-byte header.
    MappingTooShort {
        /// Mapped length in bytes.
        len: u64,
    },
    /// The magic is none this revision knows.
    BadMagic {
        /// The magic found.
        found: u32,
    },
    /// `offset < sizeof(Header)`, or the extension header does not fit
    /// below `offset`.
    OffsetBelowHeader {
        /// The header's offset.
        offset: u32,
        /// The smallest offset allowed.
        min: u32,
    },
    /// `size` is below the 8 bytes of seq and pad.
    SizeBelowSeq {
        /// The header's size.
        size: u32,
    },
    /// `size` is not a multiple of 8.
    SizeNotMultipleOf8 {
        /// The header's size.
        size: u32,
    },
    /// `stride < size`.
    StrideBelowSize {
        /// The header's stride.
        stride: u32,
        /// The header's size.
        size: u32,
    },
    /// `offset` or `stride` is not a multiple of 8, so counters would not
    /// be naturally aligned.
    Misaligned {
        /// `"offset"` or `"stride"`.
        field: &'static str,
        /// Its value.
        value: u32,
    },
    /// An arithmetic step overflowed.
    Overflow {
        /// What was being computed.
        what: &'static str,
    },
    /// The mapping is too small for the records (`offset + nr * stride`).
    MappingTooSmall {
        /// Bytes needed.
        need: u64,
        /// Bytes mapped.
        len: u64,
    },
    /// A record crosses a page boundary.
    RecordStraddlesPage {
        /// Record index.
        record: u32,
        /// Byte offset of the record in the table.
        start: u64,
        /// Page size in bytes.
        page_size: u32,
    },
    /// The extension header is malformed.
    BadExtHeader {
        /// Which of its fields.
        field: &'static str,
        /// Its value.
        value: u32,
    },
    /// The caller's copy of the table's head is shorter than `offset`.
    HeadTruncated {
        /// Bytes needed (the header's offset).
        need: u32,
        /// Bytes given.
        have: u64,
    },
    /// The descriptor array is outside `[56, offset)` or misaligned.
    DescTableOutOfBounds {
        /// `desc_offset`.
        desc_offset: u32,
        /// `desc_count`.
        desc_count: u32,
        /// `desc_stride`.
        desc_stride: u32,
        /// The header's offset.
        offset: u32,
    },
    /// A descriptor name has no NUL.
    DescNameUnterminated {
        /// Descriptor index.
        index: u32,
    },
    /// A descriptor name is empty.
    DescNameEmpty {
        /// Descriptor index.
        index: u32,
    },
    /// A descriptor name holds a byte that is not printable ASCII.
    DescNameInvalid {
        /// Descriptor index.
        index: u32,
        /// Byte position in the name.
        at: u32,
    },
    /// A byte after a name's NUL is not zero.
    DescNameNotPadded {
        /// Descriptor index.
        index: u32,
        /// Byte position in the name.
        at: u32,
    },
    /// Two descriptors share a name.
    DescNameDuplicate {
        /// Descriptor index.
        index: u32,
        /// Index of the earlier one with the same name.
        other: u32,
    },
    /// Unknown kind.
    DescUnknownKind {
        /// Descriptor index.
        index: u32,
        /// The kind.
        kind: u8,
    },
    /// Unknown unit.
    DescUnknownUnit {
        /// Descriptor index.
        index: u32,
        /// The unit.
        unit: u8,
    },
    /// Unknown base.
    DescUnknownBase {
        /// Descriptor index.
        index: u32,
        /// The base.
        base: u8,
    },
    /// The exponent's sign does not fit the unit.
    DescBadExponent {
        /// Descriptor index.
        index: u32,
        /// The unit.
        unit: u8,
        /// The exponent.
        exponent: i8,
    },
    /// `count` is 0, or not 1 for a scalar kind.
    DescBadCount {
        /// Descriptor index.
        index: u32,
        /// The kind.
        kind: u8,
        /// The count.
        count: u32,
    },
    /// `bucket_size` is 0 for a linear histogram or non-zero otherwise.
    DescBadBucketSize {
        /// Descriptor index.
        index: u32,
        /// The bucket size.
        bucket_size: u32,
    },
    /// A counter's offset is below 8 or not a multiple of 8.
    DescOffsetMisaligned {
        /// Descriptor index.
        index: u32,
        /// The offset.
        offset: u32,
    },
    /// A counter does not end inside `size`.
    DescOutsideRecord {
        /// Descriptor index.
        index: u32,
        /// The offset.
        offset: u32,
        /// The count.
        count: u32,
        /// The header's size.
        size: u32,
    },
    /// Two descriptors cover the same bytes.
    DescOverlap {
        /// Descriptor index.
        index: u32,
        /// Index of the other.
        other: u32,
    },
    /// A descriptor uses the name of a standard field at another offset or
    /// with a count other than 1.
    DescStdMismatch {
        /// Descriptor index.
        index: u32,
        /// The offset it gives.
        offset: u32,
        /// The standard field's offset.
        std_offset: u32,
    },
    /// A domain table does not have exactly one record.
    DomainRecordCount {
        /// The number of records it has.
        nr_records: u32,
    },
    /// A layout request is out of range.
    BadLayoutParam {
        /// Which parameter.
        param: &'static str,
        /// Its value.
        value: u64,
    },
}

impl Error {
    /// The rule of `docs/abi.md` this error reports.
    pub const fn rule(&self) -> Rule {
        match self {
            Error::MappingTooShort { .. } => Rule::R1,
            Error::BadMagic { .. } => Rule::R2,
            Error::OffsetBelowHeader { .. } => Rule::R3,
            Error::SizeBelowSeq { .. } | Error::SizeNotMultipleOf8 { .. } => Rule::R4,
            Error::StrideBelowSize { .. } => Rule::R5,
            Error::Misaligned { .. } => Rule::R6,
            Error::Overflow { .. } | Error::MappingTooSmall { .. } => Rule::R7,
            Error::RecordStraddlesPage { .. } => Rule::R8,
            Error::BadExtHeader { .. } | Error::HeadTruncated { .. } => Rule::R9,
            Error::DescTableOutOfBounds { .. } => Rule::R10,
            Error::DescNameUnterminated { .. }
            | Error::DescNameEmpty { .. }
            | Error::DescNameInvalid { .. }
            | Error::DescNameNotPadded { .. }
            | Error::DescNameDuplicate { .. } => Rule::R11,
            Error::DescUnknownKind { .. }
            | Error::DescUnknownUnit { .. }
            | Error::DescUnknownBase { .. }
            | Error::DescBadExponent { .. }
            | Error::DescBadCount { .. }
            | Error::DescBadBucketSize { .. } => Rule::R12,
            Error::DescOffsetMisaligned { .. }
            | Error::DescOutsideRecord { .. }
            | Error::DescOverlap { .. }
            | Error::DescStdMismatch { .. } => Rule::R13,
            Error::DomainRecordCount { .. } => Rule::R18,
            Error::BadLayoutParam { .. } => Rule::L1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.rule())?;
        match *self {
            Error::MappingTooShort { len } => {
                write!(f, "mapping of {len} bytes is shorter than the 16-byte header")
            }
            Error::BadMagic { found } => write!(
                f,
                "magic {found:#010x} is not a stats table this revision reads \
                 (vCPU {:#010x}, domain {:#010x})",
                crate::VCPU_STATS_MAGIC,
                crate::DOMAIN_STATS_MAGIC
            ),
            Error::OffsetBelowHeader { offset, min } => {
                write!(f, "offset {offset} is below the header size {min}")
            }
            Error::SizeBelowSeq { size } => {
                write!(f, "record size {size} is below the 8 bytes of seq and pad")
            }
            Error::SizeNotMultipleOf8 { size } => {
                write!(f, "record size {size} is not a multiple of 8")
            }
            Error::StrideBelowSize { stride, size } => {
                write!(f, "stride {stride} is below record size {size}")
            }
            Error::Misaligned { field, value } => {
                write!(f, "{field} {value} is not a multiple of 8")
            }
            Error::Overflow { what } => write!(f, "arithmetic overflow computing {what}"),
            Error::MappingTooSmall { need, len } => {
                write!(f, "mapping of {len} bytes is too small for the records ({need} needed)")
            }
            Error::RecordStraddlesPage { record, start, page_size } => write!(
                f,
                "record {record} at byte {start} crosses a {page_size}-byte page boundary"
            ),
            Error::BadExtHeader { field, value } => {
                write!(f, "extension header field {field} has invalid value {value}")
            }
            Error::HeadTruncated { need, have } => {
                write!(f, "copy of the table head has {have} bytes, {need} needed")
            }
            Error::DescTableOutOfBounds { desc_offset, desc_count, desc_stride, offset } => write!(
                f,
                "descriptor array at {desc_offset} ({desc_count} x {desc_stride} bytes) \
                 is not inside [56, {offset}) or is misaligned"
            ),
            Error::DescNameUnterminated { index } => {
                write!(f, "descriptor {index}: name has no NUL terminator")
            }
            Error::DescNameEmpty { index } => write!(f, "descriptor {index}: empty name"),
            Error::DescNameInvalid { index, at } => {
                write!(f, "descriptor {index}: name byte {at} is not printable ASCII")
            }
            Error::DescNameNotPadded { index, at } => {
                write!(f, "descriptor {index}: name byte {at} after the NUL is not zero")
            }
            Error::DescNameDuplicate { index, other } => {
                write!(f, "descriptor {index}: same name as descriptor {other}")
            }
            Error::DescUnknownKind { index, kind } => {
                write!(f, "descriptor {index}: unknown kind {kind}")
            }
            Error::DescUnknownUnit { index, unit } => {
                write!(f, "descriptor {index}: unknown unit {unit}")
            }
            Error::DescUnknownBase { index, base } => {
                write!(f, "descriptor {index}: unknown base {base}")
            }
            Error::DescBadExponent { index, unit, exponent } => {
                write!(f, "descriptor {index}: exponent {exponent} does not fit unit {unit}")
            }
            Error::DescBadCount { index, kind, count } => {
                write!(f, "descriptor {index}: count {count} is invalid for kind {kind}")
            }
            Error::DescBadBucketSize { index, bucket_size } => {
                write!(f, "descriptor {index}: bucket size {bucket_size} does not fit its kind")
            }
            Error::DescOffsetMisaligned { index, offset } => write!(
                f,
                "descriptor {index}: offset {offset} is below 8 or not a multiple of 8"
            ),
            Error::DescOutsideRecord { index, offset, count, size } => write!(
                f,
                "descriptor {index}: {count} word(s) at offset {offset} do not fit record size {size}"
            ),
            Error::DescOverlap { index, other } => {
                write!(f, "descriptor {index}: overlaps descriptor {other}")
            }
            Error::DescStdMismatch { index, offset, std_offset } => write!(
                f,
                "descriptor {index}: standard field name at offset {offset}, \
                 the standard offset is {std_offset} (count 1)"
            ),
            Error::DomainRecordCount { nr_records } => {
                write!(f, "a domain table has exactly one record, this one has {nr_records}")
            }
            Error::BadLayoutParam { param, value } => {
                write!(f, "layout parameter {param} = {value} is out of range")
            }
        }
    }
}

impl core::error::Error for Error {}
