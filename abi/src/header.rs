//! The table header (`Header`, v3-compatible), the vstats extension
//! header (`ExtHeader`, r2) that lives in the header's reserved area, and
//! the r3 header (`R3Header`) appended to it at byte 56.
//!
//! ```text
//! 0        16                      56                      88
//! +--------+-----------------------+-----------------------+
//! | Header | ExtHeader (r2)        | R3Header (r3)         |
//! | 16 B   | 40 B: marker..gen     | 32 B: clock..         |
//! +--------+-----------------------+-----------------------+
//! ```
//!
//! A table is "r3 or later" when its marker at byte 16 is [`HDR_MARKER`]
//! and its `ext_size` is at least [`EXT_HEADER_SIZE_R3`]; fields past
//! `16 + ext_size` are absent and read as zero.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Xen's acquire-resource type of a stats table (`XENMEM_resource_stats_table`,
/// RFC v3).
pub const XENMEM_RESOURCE_STATS_TABLE: u32 = 3;
/// Resource id of the per-vCPU stats table (RFC v3).
pub const XENMEM_RESOURCE_STATS_TABLE_ID_VCPUSTATS: u32 = 0;
/// Resource id of the per-domain stats table (vstats; v3 had none).
pub const XENMEM_RESOURCE_STATS_TABLE_ID_DOMSTATS: u32 = 1;
/// Resource id of the time frame ([`StatsTime`]): one frame through which
/// Xen publishes its system time for readers of clock-2 tables
/// ([`CLOCK_XEN_SYSTEM`]; docs/abi.md section 2.6).
pub const XENMEM_RESOURCE_STATS_TABLE_ID_TIME: u32 = 2;

/// [`StatsTime::magic`] once Xen published the frame (0 before).
pub const STATS_TIME_MAGIC: u32 = 0xc10c_57a7;
/// [`StatsTime::size`] as this revision's Xen writes it: `sizeof(struct
/// xen_stats_time)`. A reader refuses a frame whose size is smaller.
pub const STATS_TIME_SIZE: u32 = 40;
/// Byte of the frame where the fields with the layout and meaning of
/// Xen's `struct vcpu_time_info` start ([`StatsTime::time_version`] is its
/// `version`): a pvclock reader reads them there.
pub const STATS_TIME_INFO_OFFSET: u32 = 8;
/// Seconds of extrapolation past which a reader refuses the frame's copy
/// (Xen stopped updating it): `XEN_STATS_TIME_MAX_AGE_S`.
pub const STATS_TIME_MAX_AGE_S: u32 = 10;
/// [`StatsTime::flags`]: every CPU's TSC agrees (the value of Xen's
/// `XEN_PVCLOCK_TSC_STABLE_BIT`).
pub const STATS_TIME_TSC_STABLE: u8 = 1;

/// The time frame, resource id [`XENMEM_RESOURCE_STATS_TABLE_ID_TIME`]
/// (`struct xen_stats_time` of the public header): Xen system time for
/// clock-2 readers, as pvclock fields under a seqlock. Bytes
/// [`STATS_TIME_INFO_OFFSET`]..40 are laid out as `struct vcpu_time_info`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct StatsTime {
    /// [`STATS_TIME_MAGIC`] once published (stored last, P7's order), 0
    /// before.
    pub magic: u32,
    /// Bytes of this structure the producer writes: [`STATS_TIME_SIZE`].
    pub size: u32,
    /// Odd while Xen updates the fields below (`vcpu_time_info.version`).
    pub time_version: u32,
    /// Padding (`vcpu_time_info.pad0`).
    pub _pad0: u32,
    /// TSC at the last update.
    pub tsc_timestamp: u64,
    /// Xen system time (ns since boot) at `tsc_timestamp`.
    pub system_time: u64,
    /// ns per (shifted) TSC tick, a 32.32 fraction.
    pub tsc_to_system_mul: u32,
    /// The shift applied to a TSC delta first (negative: right).
    pub tsc_shift: i8,
    /// [`STATS_TIME_TSC_STABLE`] when every CPU's TSC agrees.
    pub flags: u8,
    /// Padding.
    pub _pad1: [u8; 2],
}
// size: 40 bytes

/// Byte offsets of [`StatsTime`]'s fields.
pub mod time_off {
    /// `magic`.
    pub const MAGIC: usize = 0;
    /// `size`.
    pub const SIZE: usize = 4;
    /// `time_version`.
    pub const TIME_VERSION: usize = 8;
    /// `tsc_timestamp`.
    pub const TSC_TIMESTAMP: usize = 16;
    /// `system_time`.
    pub const SYSTEM_TIME: usize = 24;
    /// `tsc_to_system_mul`.
    pub const TSC_TO_SYSTEM_MUL: usize = 32;
    /// `tsc_shift`.
    pub const TSC_SHIFT: usize = 36;
    /// `flags`.
    pub const FLAGS: usize = 37;
}

const _: () = {
    assert!(core::mem::size_of::<StatsTime>() == STATS_TIME_SIZE as usize);
    assert!(core::mem::offset_of!(StatsTime, magic) == time_off::MAGIC);
    assert!(core::mem::offset_of!(StatsTime, size) == time_off::SIZE);
    assert!(core::mem::offset_of!(StatsTime, time_version) == time_off::TIME_VERSION);
    assert!(core::mem::offset_of!(StatsTime, time_version) == STATS_TIME_INFO_OFFSET as usize);
    assert!(core::mem::offset_of!(StatsTime, tsc_timestamp) == time_off::TSC_TIMESTAMP);
    assert!(core::mem::offset_of!(StatsTime, system_time) == time_off::SYSTEM_TIME);
    assert!(core::mem::offset_of!(StatsTime, tsc_to_system_mul) == time_off::TSC_TO_SYSTEM_MUL);
    assert!(core::mem::offset_of!(StatsTime, tsc_shift) == time_off::TSC_SHIFT);
    assert!(core::mem::offset_of!(StatsTime, flags) == time_off::FLAGS);
};

/// Magic of a per-vCPU stats table: RFC v3's `VCPU_STATS_MAGIC`. It doubles
/// as the ABI version and changes only for a deliberate break.
pub const VCPU_STATS_MAGIC: u32 = 0xaabb_ccdd;
/// Magic of a per-domain stats table as this revision's (r3) producers
/// write it: unrelated to [`VCPU_STATS_MAGIC`], so it never reads as "the
/// next version" of the vCPU table.
pub const DOMAIN_STATS_MAGIC: u32 = 0xd057_a75e;
/// [`DOMAIN_STATS_MAGIC`] under the name step 1 of r3 gave it.
pub const DOMAIN_STATS_MAGIC_R3: u32 = DOMAIN_STATS_MAGIC;
/// Magic of a per-domain stats table as r2 producers wrote it
/// (`VCPU_STATS_MAGIC + 1`). Consumers still accept it (the legacy domain
/// magic, rule R2); producers write [`DOMAIN_STATS_MAGIC`].
pub const DOMAIN_STATS_MAGIC_R2: u32 = 0xaabb_ccde;
/// Magic of the extension header (`"vsx1"` read as little-endian bytes).
pub const EXT_MAGIC: u32 = u32::from_le_bytes(*b"vsx1");
/// The word at byte 16 of an r2 or later header (`hdr_marker`, r2's
/// `ext_magic`): frozen at `"vsx1"`, not a version. 0 only on a v3 page.
pub const HDR_MARKER: u32 = EXT_MAGIC;

/// Size of [`Header`] in bytes.
pub const HEADER_SIZE: u32 = 16;
/// Byte offset of [`ExtHeader`] in the table.
pub const EXT_HEADER_OFFSET: u32 = HEADER_SIZE;
/// Size of [`ExtHeader`] in bytes, as this revision defines it.
pub const EXT_HEADER_SIZE: u32 = 40;
/// First byte after the extension header.
pub const EXT_HEADER_END: u32 = EXT_HEADER_OFFSET + EXT_HEADER_SIZE;
/// Byte offset of [`R3Header`] in the table (right after the r2 extension
/// header).
pub const R3_HEADER_OFFSET: u32 = EXT_HEADER_END;
/// Size of [`R3Header`] in bytes.
pub const R3_HEADER_SIZE: u32 = 32;
/// First byte after the r3 header: the end of an r3 table's header.
pub const HEADER_R3_END: u32 = R3_HEADER_OFFSET + R3_HEADER_SIZE;
/// `ext_size` of an r3 header: the bytes after byte 16 an r3 producer
/// knows (r2's 40 plus the r3 header's 32).
pub const EXT_HEADER_SIZE_R3: u32 = HEADER_R3_END - EXT_HEADER_OFFSET;

/// [`R3Header::clock`]: the time base is not named (r1 and r2 tables); a
/// consumer does not extrapolate.
pub const CLOCK_NONE: u32 = 0;
/// [`R3Header::clock`]: the host's `CLOCK_MONOTONIC`, in nanoseconds.
pub const CLOCK_HOST_MONOTONIC: u32 = 1;
/// [`R3Header::clock`]: Xen system time (`NOW()`), in nanoseconds.
pub const CLOCK_XEN_SYSTEM: u32 = 2;

/// The table header at byte 0, identical to RFC v3's `vcpu_shmem_stats`.
///
/// Written once by the producer before the table is published (the magic
/// last, with release ordering) and never changed after.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct Header {
    /// [`VCPU_STATS_MAGIC`] or [`DOMAIN_STATS_MAGIC`].
    pub magic: u32,
    /// Byte offset of record 0 from the start of the table.
    pub offset: u32,
    /// The producer's `sizeof(record)`: bytes of each record it may write.
    pub size: u32,
    /// Distance in bytes between the starts of consecutive records.
    pub stride: u32,
}
// size: 16 bytes

/// The vstats extension header at byte 16, inside the reserved area
/// `[16, offset)` of a v3 header. All zero means absent (a v3 producer).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct ExtHeader {
    /// [`EXT_MAGIC`] when present, 0 when absent.
    pub ext_magic: u32,
    /// `sizeof(ExtHeader)` as the producer knew it (>= [`EXT_HEADER_SIZE`]).
    pub ext_size: u32,
    /// Number of record slots in the table.
    pub nr_records: u32,
    /// log2 of the page size the producer laid the table out for.
    pub page_shift: u32,
    /// Bytes at the start of each record defined by the ABI revision the
    /// producer was built with; producer-specific counters (described only
    /// by descriptors) live in `[abi_size, size)`.
    pub abi_size: u32,
    /// Byte offset of the descriptor array, 0 when there are none.
    pub desc_offset: u32,
    /// Number of descriptors.
    pub desc_count: u32,
    /// Distance between descriptors (>= 64, `sizeof(Descriptor)`).
    pub desc_stride: u32,
    /// A value that differs between two tables published under one name:
    /// a consumer that sees it change knows the producer restarted.
    pub generation: u64,
}
// size: 40 bytes

/// The r3 header at byte 56, after the [`ExtHeader`]: the table's clock,
/// the producer-specific area of every record and the r3 descriptor array.
/// Present when `ext_size >= 72`; otherwise every field reads as zero.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct R3Header {
    /// Time base of every nanosecond value in the table: [`CLOCK_NONE`],
    /// [`CLOCK_HOST_MONOTONIC`] or [`CLOCK_XEN_SYSTEM`]; a consumer does
    /// not extrapolate with another value (R26).
    pub clock: u32,
    /// Reserved, zero (P1).
    pub _rsvd0: u32,
    /// Record-relative start of the producer-specific area, 0 when there
    /// is none; `>= size` and a multiple of 8 (R19).
    pub xstats_offset: u32,
    /// Bytes of the producer-specific area, a multiple of 8, 0 when none.
    pub xstats_size: u32,
    /// Table offset of the r3 descriptor array, 0 when there is none.
    pub xdesc_offset: u32,
    /// Number of r3 descriptors (no ABI maximum).
    pub xdesc_count: u32,
    /// Distance between r3 descriptors: `>= 64` when `xdesc_count > 0`,
    /// 0 otherwise.
    pub xdesc_stride: u32,
    /// Reserved, zero (P1).
    pub _rsvd1: u32,
}
// size: 32 bytes

const _: () = {
    assert!(core::mem::size_of::<R3Header>() == R3_HEADER_SIZE as usize);
    assert!(core::mem::offset_of!(R3Header, clock) == 0);
    assert!(core::mem::offset_of!(R3Header, _rsvd0) == 4);
    assert!(core::mem::offset_of!(R3Header, xstats_offset) == 8);
    assert!(core::mem::offset_of!(R3Header, xstats_size) == 12);
    assert!(core::mem::offset_of!(R3Header, xdesc_offset) == 16);
    assert!(core::mem::offset_of!(R3Header, xdesc_count) == 20);
    assert!(core::mem::offset_of!(R3Header, xdesc_stride) == 24);
    assert!(core::mem::offset_of!(R3Header, _rsvd1) == 28);
    assert!(R3_HEADER_OFFSET == 56);
    assert!(HEADER_R3_END == 88);
    assert!(EXT_HEADER_SIZE_R3 == 72);
    assert!(HDR_MARKER == 0x3178_7376);
    assert!(R3_HEADER_OFFSET % 8 == 0);
};

const _: () = {
    assert!(core::mem::size_of::<Header>() == HEADER_SIZE as usize);
    assert!(core::mem::offset_of!(Header, magic) == 0);
    assert!(core::mem::offset_of!(Header, offset) == 4);
    assert!(core::mem::offset_of!(Header, size) == 8);
    assert!(core::mem::offset_of!(Header, stride) == 12);
    assert!(core::mem::size_of::<ExtHeader>() == EXT_HEADER_SIZE as usize);
    assert!(core::mem::offset_of!(ExtHeader, ext_magic) == 0);
    assert!(core::mem::offset_of!(ExtHeader, ext_size) == 4);
    assert!(core::mem::offset_of!(ExtHeader, nr_records) == 8);
    assert!(core::mem::offset_of!(ExtHeader, page_shift) == 12);
    assert!(core::mem::offset_of!(ExtHeader, abi_size) == 16);
    assert!(core::mem::offset_of!(ExtHeader, desc_offset) == 20);
    assert!(core::mem::offset_of!(ExtHeader, desc_count) == 24);
    assert!(core::mem::offset_of!(ExtHeader, desc_stride) == 28);
    assert!(core::mem::offset_of!(ExtHeader, generation) == 32);
    // C's natural alignment of a struct holding a `uint64_t`: 8 on 64-bit
    // targets, 4 on i386 (where a `u64` is 4-aligned); the table puts it at
    // an 8-aligned offset either way.
    assert!(core::mem::align_of::<ExtHeader>() == core::mem::align_of::<u64>());
    assert!(EXT_HEADER_OFFSET % 8 == 0);
};

#[cfg(test)]
mod tests {
    use zerocopy::{FromBytes, IntoBytes};

    use super::*;

    #[test]
    fn golden_header_bytes() {
        let h = Header {
            magic: VCPU_STATS_MAGIC,
            offset: 64,
            size: 40,
            stride: 64,
        };
        let expect: [u8; 16] = [
            0xdd, 0xcc, 0xbb, 0xaa, 64, 0, 0, 0, 40, 0, 0, 0, 64, 0, 0, 0,
        ];
        #[cfg(target_endian = "little")]
        assert_eq!(h.as_bytes(), &expect);
    }

    #[test]
    fn golden_ext_header_bytes() {
        let e = ExtHeader {
            ext_magic: EXT_MAGIC,
            ext_size: 40,
            nr_records: 2,
            page_shift: 12,
            abi_size: 40,
            desc_offset: 56,
            desc_count: 4,
            desc_stride: 64,
            generation: 0x0102_0304_0506_0708,
        };
        #[cfg(target_endian = "little")]
        assert_eq!(
            e.as_bytes(),
            &[
                b'v', b's', b'x', b'1', 40, 0, 0, 0, 2, 0, 0, 0, 12, 0, 0, 0, 40, 0, 0, 0, 56, 0,
                0, 0, 4, 0, 0, 0, 64, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1
            ]
        );
    }

    #[test]
    fn golden_r3_header_bytes() {
        // The whole 88-byte head of an r3 vCPU table as the Xen hypervisor
        // writes it: 4 vCPUs, no producer area, no descriptors, Xen clock.
        let h = Header {
            magic: VCPU_STATS_MAGIC,
            offset: 128,
            size: 56,
            stride: 64,
        };
        let e = ExtHeader {
            ext_magic: HDR_MARKER,
            ext_size: EXT_HEADER_SIZE_R3,
            nr_records: 4,
            page_shift: 12,
            abi_size: 56,
            desc_offset: 0,
            desc_count: 0,
            desc_stride: 0,
            generation: 0x0102_0304_0506_0708,
        };
        let r = R3Header {
            clock: CLOCK_XEN_SYSTEM,
            _rsvd0: 0,
            xstats_offset: 56,
            xstats_size: 320,
            xdesc_offset: 88,
            xdesc_count: 3,
            xdesc_stride: 64,
            _rsvd1: 0,
        };
        let mut head = [0u8; HEADER_R3_END as usize];
        head[..16].copy_from_slice(h.as_bytes());
        head[16..56].copy_from_slice(e.as_bytes());
        head[56..88].copy_from_slice(r.as_bytes());
        #[rustfmt::skip]
        let expect: [u8; 88] = [
            // Header
            0xdd, 0xcc, 0xbb, 0xaa, 128, 0, 0, 0, 56, 0, 0, 0, 64, 0, 0, 0,
            // ExtHeader: marker, ext_size 72, nr 4, page_shift 12
            b'v', b's', b'x', b'1', 72, 0, 0, 0, 4, 0, 0, 0, 12, 0, 0, 0,
            // abi_size 56, the r2 descriptor array empty
            56, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            // generation
            8, 7, 6, 5, 4, 3, 2, 1,
            // R3Header: clock 2, _rsvd0, xstats 56 + 320 (0x140)
            2, 0, 0, 0, 0, 0, 0, 0, 56, 0, 0, 0, 0x40, 1, 0, 0,
            // xdesc at 88, 3 of them, stride 64, _rsvd1
            88, 0, 0, 0, 3, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0,
        ];
        #[cfg(target_endian = "little")]
        assert_eq!(head, expect);
        assert_eq!(
            DOMAIN_STATS_MAGIC_R3.to_le_bytes(),
            [0x5e, 0xa7, 0x57, 0xd0]
        );
        assert_eq!(
            R3Header::read_from_bytes(&head[56..88]).unwrap(),
            r,
            "the r3 header reads back from its bytes"
        );
    }
}
