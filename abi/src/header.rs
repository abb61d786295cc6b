//! The table header (`Header`, v3-compatible) and the vstats extension
//! header (`ExtHeader`) that lives in the header's reserved area.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Xen's acquire-resource type of a stats table (`XENMEM_resource_stats_table`,
/// RFC v3).
pub const XENMEM_RESOURCE_STATS_TABLE: u32 = 3;
/// Resource id of the per-vCPU stats table (RFC v3).
pub const XENMEM_RESOURCE_STATS_TABLE_ID_VCPUSTATS: u32 = 0;
/// Resource id of the per-domain stats table (vstats; v3 had none).
pub const XENMEM_RESOURCE_STATS_TABLE_ID_DOMSTATS: u32 = 1;

/// Magic of a per-vCPU stats table: RFC v3's `VCPU_STATS_MAGIC`. It doubles
/// as the ABI version and changes only for a deliberate break.
pub const VCPU_STATS_MAGIC: u32 = 0xaabb_ccdd;
/// Magic of a per-domain stats table.
pub const DOMAIN_STATS_MAGIC: u32 = 0xaabb_ccde;
/// Magic of the extension header (`"vsx1"` read as little-endian bytes).
pub const EXT_MAGIC: u32 = u32::from_le_bytes(*b"vsx1");

/// Size of [`Header`] in bytes.
pub const HEADER_SIZE: u32 = 16;
/// Byte offset of [`ExtHeader`] in the table.
pub const EXT_HEADER_OFFSET: u32 = HEADER_SIZE;
/// Size of [`ExtHeader`] in bytes, as this revision defines it.
pub const EXT_HEADER_SIZE: u32 = 40;
/// First byte after the extension header.
pub const EXT_HEADER_END: u32 = EXT_HEADER_OFFSET + EXT_HEADER_SIZE;

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
    use zerocopy::IntoBytes;

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
}
