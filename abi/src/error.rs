//! The one error type of the ABI crate: every rule a table or a layout can
//! break, with the values that broke it.

use core::fmt;

use crate::Rule;

/// A rule of `docs/abi.md` that a table, a layout request or a descriptor
/// breaks. The rule number in `docs/abi.md` is given by [`Error::rule`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The mapping is shorter than the 16-byte header.
    #[error("R1: mapping of {len} bytes is shorter than the 16-byte header")]
    MappingTooShort {
        /// Mapped length in bytes.
        len: u64,
    },
    /// The magic is none this revision knows.
    #[error(
        "R2: magic {found:#010x} is not a stats table this revision reads \
         (vCPU {:#010x}, domain {:#010x} or the legacy {:#010x})",
        crate::VCPU_STATS_MAGIC,
        crate::DOMAIN_STATS_MAGIC,
        crate::DOMAIN_STATS_MAGIC_R2
    )]
    BadMagic {
        /// The magic found.
        found: u32,
    },
    /// `offset < sizeof(Header)`, or the extension header does not fit
    /// below `offset`.
    #[error("R3: offset {offset} is below the header size {min}")]
    OffsetBelowHeader {
        /// The header's offset.
        offset: u32,
        /// The smallest offset allowed.
        min: u32,
    },
    /// `size` is below the 8 bytes of seq and pad.
    #[error("R4: record size {size} is below the 8 bytes of seq and pad")]
    SizeBelowSeq {
        /// The header's size.
        size: u32,
    },
    /// `size` is not a multiple of 8.
    #[error("R4: record size {size} is not a multiple of 8")]
    SizeNotMultipleOf8 {
        /// The header's size.
        size: u32,
    },
    /// `stride < size`.
    #[error("R5: stride {stride} is below record size {size}")]
    StrideBelowSize {
        /// The header's stride.
        stride: u32,
        /// The header's size.
        size: u32,
    },
    /// `offset` or `stride` is not a multiple of 8, so counters would not
    /// be naturally aligned.
    #[error("R6: {field} {value} is not a multiple of 8")]
    Misaligned {
        /// [`HeaderField::Offset`] or [`HeaderField::Stride`].
        field: HeaderField,
        /// Its value.
        value: u32,
    },
    /// An arithmetic step overflowed.
    #[error("R7: arithmetic overflow computing {what}")]
    Overflow {
        /// What was being computed.
        what: Quantity,
    },
    /// The mapping is too small for the records (`offset + nr * stride`).
    #[error("R7: mapping of {len} bytes is too small for the records ({need} needed)")]
    MappingTooSmall {
        /// Bytes needed.
        need: u64,
        /// Bytes mapped.
        len: u64,
    },
    /// A record crosses a page boundary.
    #[error("R8: record {record} at byte {start} crosses a {page_size}-byte page boundary")]
    RecordStraddlesPage {
        /// Record index.
        record: u32,
        /// Byte offset of the record in the table.
        start: u64,
        /// Page size in bytes.
        page_size: u32,
    },
    /// The extension header is malformed.
    #[error("R9: extension header field {field} has invalid value {value}")]
    BadExtHeader {
        /// Which of its fields.
        field: ExtField,
        /// Its value.
        value: u32,
    },
    /// The caller's copy of the table's head is shorter than `offset`.
    #[error("R9: copy of the table head has {have} bytes, {need} needed")]
    HeadTruncated {
        /// Bytes needed (the header's offset).
        need: u32,
        /// Bytes given.
        have: u64,
    },
    /// The descriptor array is outside `[56, offset)` or misaligned.
    #[error(
        "R10: descriptor array at {desc_offset} ({desc_count} x {desc_stride} bytes) \
         is not inside [56, {offset}) or is misaligned"
    )]
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
    #[error("R11: descriptor {index}: name has no NUL terminator")]
    DescNameUnterminated {
        /// Descriptor index.
        index: u32,
    },
    /// A descriptor name is empty.
    #[error("R11: descriptor {index}: empty name")]
    DescNameEmpty {
        /// Descriptor index.
        index: u32,
    },
    /// A descriptor name holds a byte that is not printable ASCII.
    #[error("R11: descriptor {index}: name byte {at} is not printable ASCII")]
    DescNameInvalid {
        /// Descriptor index.
        index: u32,
        /// Byte position in the name.
        at: u32,
    },
    /// A byte after a name's NUL is not zero.
    #[error("R11: descriptor {index}: name byte {at} after the NUL is not zero")]
    DescNameNotPadded {
        /// Descriptor index.
        index: u32,
        /// Byte position in the name.
        at: u32,
    },
    /// Two descriptors share a name.
    #[error("R11: descriptor {index}: same name as descriptor {other}")]
    DescNameDuplicate {
        /// Descriptor index.
        index: u32,
        /// Index of the earlier one with the same name.
        other: u32,
    },
    /// Unknown kind.
    #[error("R12: descriptor {index}: unknown kind {kind}")]
    DescUnknownKind {
        /// Descriptor index.
        index: u32,
        /// The kind.
        kind: u8,
    },
    /// Unknown unit.
    #[error("R12: descriptor {index}: unknown unit {unit}")]
    DescUnknownUnit {
        /// Descriptor index.
        index: u32,
        /// The unit.
        unit: u8,
    },
    /// Unknown base.
    #[error("R12: descriptor {index}: unknown base {base}")]
    DescUnknownBase {
        /// Descriptor index.
        index: u32,
        /// The base.
        base: u8,
    },
    /// The exponent's sign does not fit the unit.
    #[error("R12: descriptor {index}: exponent {exponent} does not fit unit {unit}")]
    DescBadExponent {
        /// Descriptor index.
        index: u32,
        /// The unit.
        unit: u8,
        /// The exponent.
        exponent: i8,
    },
    /// `count` is 0, or not 1 for a scalar kind.
    #[error("R12: descriptor {index}: count {count} is invalid for kind {kind}")]
    DescBadCount {
        /// Descriptor index.
        index: u32,
        /// The kind.
        kind: u8,
        /// The count.
        count: u32,
    },
    /// `bucket_size` is 0 for a linear histogram or non-zero otherwise.
    #[error("R12: descriptor {index}: bucket size {bucket_size} does not fit its kind")]
    DescBadBucketSize {
        /// Descriptor index.
        index: u32,
        /// The bucket size.
        bucket_size: u32,
    },
    /// A counter's offset is below 8 or not a multiple of 8.
    #[error("R13: descriptor {index}: offset {offset} is below 8 or not a multiple of 8")]
    DescOffsetMisaligned {
        /// Descriptor index.
        index: u32,
        /// The offset.
        offset: u32,
    },
    /// A counter does not end inside `size`.
    #[error(
        "R13: descriptor {index}: {count} word(s) at offset {offset} do not fit record size {size}"
    )]
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
    #[error("R13: descriptor {index}: overlaps descriptor {other}")]
    DescOverlap {
        /// Descriptor index.
        index: u32,
        /// Index of the other.
        other: u32,
    },
    /// A descriptor uses the name of a standard field at another offset or
    /// with a count other than 1.
    #[error(
        "R13: descriptor {index}: standard field name at offset {offset}, \
         the standard offset is {std_offset} (count 1)"
    )]
    DescStdMismatch {
        /// Descriptor index.
        index: u32,
        /// The offset it gives.
        offset: u32,
        /// The standard field's offset.
        std_offset: u32,
    },
    /// A domain table does not have exactly one record.
    #[error("R18: a domain table has exactly one record, this one has {nr_records}")]
    DomainRecordCount {
        /// The number of records it has.
        nr_records: u32,
    },
    /// R19: the producer-specific area is not after the standard record,
    /// not inside the stride or the page, or misaligned (or has an offset
    /// but no size).
    #[error(
        "R19: producer-specific area of {xstats_size} bytes at record byte {xstats_offset} \
         is not 8-aligned after the {size}-byte record inside the {stride}-byte stride \
         and the {page_size}-byte page"
    )]
    XstatsOutOfBounds {
        /// `xstats_offset`.
        xstats_offset: u32,
        /// `xstats_size`.
        xstats_size: u32,
        /// The header's size.
        size: u32,
        /// The header's stride.
        stride: u32,
        /// The page size.
        page_size: u32,
    },
    /// R20: the r3 descriptor array is not inside `[16 + ext_size,
    /// offset)`, is misaligned, or its fields are not all zero when empty.
    #[error(
        "R20: r3 descriptor array at {xdesc_offset} ({xdesc_count} x {xdesc_stride} bytes) \
         is not inside [{head_end}, {offset}) or is misaligned"
    )]
    XdescTableOutOfBounds {
        /// `xdesc_offset`.
        xdesc_offset: u32,
        /// `xdesc_count`.
        xdesc_count: u32,
        /// `xdesc_stride`.
        xdesc_stride: u32,
        /// End of the header, `16 + ext_size`.
        head_end: u32,
        /// The header's offset.
        offset: u32,
    },
    /// R20: an r3 descriptor's counter is not inside the producer-specific
    /// area (or is misaligned, or there is no area).
    #[error(
        "R20: r3 descriptor {index}: {count} word(s) at record byte {offset} are not inside \
         the producer-specific area [{xstats_offset}, {xstats_offset} + {xstats_size})"
    )]
    XdescOutsideArea {
        /// Descriptor index.
        index: u32,
        /// The counter's record-relative offset.
        offset: u32,
        /// Its number of words.
        count: u32,
        /// `xstats_offset`.
        xstats_offset: u32,
        /// `xstats_size`.
        xstats_size: u32,
    },
    /// R20: an r3 descriptor carries the name of a standard field.
    #[error("R20: r3 descriptor {index}: carries the name of standard field {std_index}")]
    XdescStandardName {
        /// Descriptor index.
        index: u32,
        /// Index of the standard field in the kind's r3 record
        /// ([`crate::TableKind::std_descriptors_r3`]).
        std_index: u32,
    },
    /// R20: two r3 descriptors cover the same bytes.
    #[error("R20: r3 descriptor {index}: overlaps r3 descriptor {other}")]
    XdescOverlap {
        /// Descriptor index.
        index: u32,
        /// Index of the earlier one.
        other: u32,
    },
    /// R21: an r3 header uses a field of r2's descriptor scheme.
    #[error("R21: an r3 header has {field} {value}, it must be {expected}")]
    R3LegacyField {
        /// [`ExtField::AbiSize`], [`ExtField::DescOffset`],
        /// [`ExtField::DescCount`] or [`ExtField::DescStride`].
        field: ExtField,
        /// Its value.
        value: u32,
        /// The value r3 requires (`size` for `abi_size`, else 0).
        expected: u32,
    },
    /// R22: a vCPU table's record is too small.
    #[error("R22: vCPU record size {size} is below {min}")]
    VcpuRecordTooSmall {
        /// The header's size.
        size: u32,
        /// The smallest size allowed (16, or 56 in an r3 table).
        min: u32,
    },
    /// R23: a domain table without the extension header.
    #[error(
        "R23: a domain table has the extension header, this one has none \
         (marker {marker:#010x}, offset {offset})"
    )]
    DomainWithoutExt {
        /// The word at byte 16 (0 when `offset` leaves no room for it).
        marker: u32,
        /// The header's offset.
        offset: u32,
    },
    /// A layout request is out of range.
    #[error("L1: layout parameter {param} = {value} is out of range")]
    BadLayoutParam {
        /// Which parameter.
        param: LayoutParam,
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
            Error::XstatsOutOfBounds { .. } => Rule::R19,
            Error::XdescTableOutOfBounds { .. }
            | Error::XdescOutsideArea { .. }
            | Error::XdescStandardName { .. }
            | Error::XdescOverlap { .. } => Rule::R20,
            Error::R3LegacyField { .. } => Rule::R21,
            Error::VcpuRecordTooSmall { .. } => Rule::R22,
            Error::DomainWithoutExt { .. } => Rule::R23,
            Error::BadLayoutParam { .. } => Rule::L1,
        }
    }
}

/// Declares a field-name enum: its variants, and the name each displays.
macro_rules! names {
    ($(#[$doc:meta])* $ty:ident { $($(#[$vdoc:meta])* $variant:ident => $name:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $ty {
            $($(#[$vdoc])* $variant,)*
        }

        impl $ty {
            /// The name as `docs/abi.md` and the error messages spell it.
            pub const fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)*
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

names! {
    /// A field of the 16-byte [`crate::Header`].
    HeaderField {
        /// `magic`.
        Magic => "magic",
        /// `offset`.
        Offset => "offset",
        /// `size`.
        Size => "size",
        /// `stride`.
        Stride => "stride",
    }
}

names! {
    /// A field of the [`crate::ExtHeader`].
    ExtField {
        /// `ext_magic`.
        ExtMagic => "ext_magic",
        /// `ext_size`.
        ExtSize => "ext_size",
        /// `nr_records`.
        NrRecords => "nr_records",
        /// `page_shift`.
        PageShift => "page_shift",
        /// `abi_size`.
        AbiSize => "abi_size",
        /// `desc_offset`.
        DescOffset => "desc_offset",
        /// `desc_count`.
        DescCount => "desc_count",
        /// `desc_stride`.
        DescStride => "desc_stride",
        /// `generation`.
        Generation => "generation",
    }
}

names! {
    /// A quantity computed from a table's or a layout's fields, which can
    /// overflow.
    Quantity {
        /// The records' offset.
        Offset => "offset",
        /// The stride.
        Stride => "stride",
        /// The end of the records, `offset + nr_records * stride`.
        RecordsEnd => "offset + nr_records * stride",
        /// The mapping's length in bytes.
        MappingLength => "mapping length",
        /// A record's size in bytes (standard fields plus appended
        /// counters).
        RecordSize => "record size",
        /// A descriptor's index.
        DescriptorIndex => "descriptor index",
        /// The number of descriptors.
        DescriptorCount => "descriptor count",
    }
}

names! {
    /// A parameter of a layout request ([`crate::layout::LayoutParams`],
    /// [`crate::layout::Layout::write_headers`]) or of a table a producer
    /// is asked to publish.
    LayoutParam {
        /// [`crate::layout::LayoutParams::page_size`].
        PageSize => "page_size",
        /// [`crate::layout::LayoutParams::cacheline`].
        Cacheline => "cacheline",
        /// [`crate::layout::LayoutParams::record_size`].
        RecordSize => "record_size",
        /// [`crate::layout::LayoutParams::abi_size`].
        AbiSize => "abi_size",
        /// [`crate::layout::LayoutParams::desc_count`].
        DescCount => "desc_count",
        /// The length of the buffer the headers are written to.
        BufferLength => "buffer length",
        /// The number of descriptors given (not the layout's `desc_count`).
        DescriptorCount => "descriptor count",
        /// The index of a descriptor that was not given.
        DescriptorIndex => "descriptor index",
        /// [`crate::layout::LayoutParams::ext_size`].
        ExtSize => "ext_size",
        /// [`crate::layout::LayoutParams::clock`].
        Clock => "clock",
        /// [`crate::layout::LayoutParams::xstats_size`].
        XstatsSize => "xstats_size",
        /// [`crate::layout::LayoutParams::xdesc_count`].
        XdescCount => "xdesc_count",
    }
}

#[cfg(test)]
mod tests {
    use std::{string::ToString, vec::Vec};

    use super::*;

    #[test]
    fn every_message_starts_with_its_rule() {
        let errors = [
            Error::MappingTooShort { len: 8 },
            Error::BadMagic { found: 1 },
            Error::OffsetBelowHeader { offset: 8, min: 16 },
            Error::SizeBelowSeq { size: 4 },
            Error::SizeNotMultipleOf8 { size: 36 },
            Error::StrideBelowSize {
                stride: 32,
                size: 40,
            },
            Error::Misaligned {
                field: HeaderField::Stride,
                value: 68,
            },
            Error::Overflow {
                what: Quantity::RecordsEnd,
            },
            Error::MappingTooSmall { need: 2, len: 1 },
            Error::RecordStraddlesPage {
                record: 1,
                start: 4072,
                page_size: 4096,
            },
            Error::BadExtHeader {
                field: ExtField::PageShift,
                value: 11,
            },
            Error::HeadTruncated {
                need: 320,
                have: 100,
            },
            Error::DescTableOutOfBounds {
                desc_offset: 56,
                desc_count: 2,
                desc_stride: 32,
                offset: 320,
            },
            Error::DescNameUnterminated { index: 0 },
            Error::DescNameEmpty { index: 0 },
            Error::DescNameInvalid { index: 0, at: 1 },
            Error::DescNameNotPadded { index: 0, at: 5 },
            Error::DescNameDuplicate { index: 2, other: 0 },
            Error::DescUnknownKind { index: 0, kind: 9 },
            Error::DescUnknownUnit { index: 0, unit: 99 },
            Error::DescUnknownBase { index: 0, base: 7 },
            Error::DescBadExponent {
                index: 0,
                unit: 1,
                exponent: 3,
            },
            Error::DescBadCount {
                index: 0,
                kind: 0,
                count: 2,
            },
            Error::DescBadBucketSize {
                index: 0,
                bucket_size: 0,
            },
            Error::DescOffsetMisaligned {
                index: 0,
                offset: 4,
            },
            Error::DescOutsideRecord {
                index: 3,
                offset: 40,
                count: 1,
                size: 40,
            },
            Error::DescOverlap { index: 2, other: 1 },
            Error::DescStdMismatch {
                index: 0,
                offset: 8,
                std_offset: 16,
            },
            Error::DomainRecordCount { nr_records: 2 },
            Error::BadLayoutParam {
                param: LayoutParam::DescriptorIndex,
                value: 4,
            },
            Error::XstatsOutOfBounds {
                xstats_offset: 56,
                xstats_size: 64,
                size: 56,
                stride: 64,
                page_size: 4096,
            },
            Error::XdescTableOutOfBounds {
                xdesc_offset: 64,
                xdesc_count: 1,
                xdesc_stride: 64,
                head_end: 88,
                offset: 192,
            },
            Error::XdescOutsideArea {
                index: 0,
                offset: 8,
                count: 1,
                xstats_offset: 56,
                xstats_size: 8,
            },
            Error::XdescStandardName {
                index: 0,
                std_index: 0,
            },
            Error::XdescOverlap { index: 1, other: 0 },
            Error::R3LegacyField {
                field: ExtField::DescCount,
                value: 4,
                expected: 0,
            },
            Error::VcpuRecordTooSmall { size: 8, min: 56 },
            Error::DomainWithoutExt {
                marker: 0,
                offset: 64,
            },
        ];
        let rules: Vec<_> = errors.iter().map(Error::rule).collect();
        for (e, rule) in errors.iter().zip(&rules) {
            let text = e.to_string();
            assert!(text.starts_with(&std::format!("{rule}: ")), "{text}");
        }
        assert!(Rule::ALL[..13].iter().all(|r| rules.contains(r)));
        assert_eq!(
            errors[6].to_string(),
            "R6: stride 68 is not a multiple of 8"
        );
        assert_eq!(
            errors[7].to_string(),
            "R7: arithmetic overflow computing offset + nr_records * stride"
        );
        assert_eq!(
            errors[10].to_string(),
            "R9: extension header field page_shift has invalid value 11"
        );
        assert_eq!(
            errors[29].to_string(),
            "L1: layout parameter descriptor index = 4 is out of range"
        );
        assert_eq!(
            errors[1].to_string(),
            "R2: magic 0x00000001 is not a stats table this revision reads \
             (vCPU 0xaabbccdd, domain 0xd057a75e or the legacy 0xaabbccde)"
        );
        assert_eq!(
            errors[35].to_string(),
            "R21: an r3 header has desc_count 4, it must be 0"
        );
        for r in [Rule::R19, Rule::R20, Rule::R21, Rule::R22, Rule::R23] {
            assert!(rules.contains(&r), "{r}");
        }
        assert_eq!(HeaderField::Magic.to_string(), "magic");
        assert_eq!(ExtField::Generation.name(), "generation");
    }
}
