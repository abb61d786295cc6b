//! The records: per-vCPU and per-domain, their standard fields and the
//! inactive marker.
//!
//! A record is `u32 seq; u32 _pad; u64 counters[...]`. The structs below
//! are this revision's view of the standard fields; a producer may append
//! producer-specific counters after them (described by descriptors), and a
//! later revision may append standard fields. Only appending is
//! compatible.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::desc::{Base, Descriptor, Kind, Unit};

/// The canonical inactive marker: all ones. Any counter with its most
/// significant bit set is inactive (absent, or overflowed).
pub const INACTIVE: u64 = u64::MAX;
/// The bit that marks a counter inactive.
pub const INACTIVE_BIT: u64 = 1 << 63;
/// The inactive marker of the 32-bit `_pad` word.
pub const PAD_INACTIVE: u32 = u32::MAX;
/// Bytes of the seq word and its pad, before the first counter.
pub const RECORD_PREFIX: u32 = 8;

/// Whether a counter word is active (top bit clear).
pub const fn is_active(word: u64) -> bool {
    word & INACTIVE_BIT == 0
}

/// One vCPU's record as this revision (r2) defines it: RFC v3's record with
/// the other three runstate times appended, Xen's `RUNSTATE_*` order.
/// Times are nanoseconds.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct VcpuStats {
    /// Odd while an update is in progress.
    pub seq: u32,
    /// Padding, [`PAD_INACTIVE`] (v3's `pad0`).
    pub _pad: u32,
    /// Time running on a physical CPU (v3's only counter).
    pub runstate_running_time: u64,
    /// Time runnable, waiting for a physical CPU.
    pub runstate_runnable_time: u64,
    /// Time blocked (halted, waiting for an event).
    pub runstate_blocked_time: u64,
    /// Time offline (not started, stopped, or paused by the toolstack).
    pub runstate_offline_time: u64,
}
// size: 40 bytes

/// The domain's record, one per domain table.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct DomainStats {
    /// Odd while an update is in progress.
    pub seq: u32,
    /// Padding, [`PAD_INACTIVE`].
    pub _pad: u32,
    /// vCPUs currently online (instant).
    pub vcpus_online: u64,
    /// vCPUs the domain was created with (instant).
    pub vcpus_max: u64,
    /// Time since the domain was created, nanoseconds (cumulative).
    pub uptime: u64,
}
// size: 32 bytes

const _: () = {
    assert!(core::mem::size_of::<VcpuStats>() == 40);
    assert!(core::mem::offset_of!(VcpuStats, seq) == 0);
    assert!(core::mem::offset_of!(VcpuStats, _pad) == 4);
    assert!(core::mem::offset_of!(VcpuStats, runstate_running_time) == 8);
    assert!(core::mem::offset_of!(VcpuStats, runstate_runnable_time) == 16);
    assert!(core::mem::offset_of!(VcpuStats, runstate_blocked_time) == 24);
    assert!(core::mem::offset_of!(VcpuStats, runstate_offline_time) == 32);
    assert!(core::mem::size_of::<DomainStats>() == 32);
    assert!(core::mem::offset_of!(DomainStats, vcpus_online) == 8);
    assert!(core::mem::offset_of!(DomainStats, vcpus_max) == 16);
    assert!(core::mem::offset_of!(DomainStats, uptime) == 24);
};

/// Byte offsets of the standard vCPU fields (`offsetof(VcpuStats, f)`).
pub mod vcpu_off {
    /// `runstate_running_time`.
    pub const RUNNING: u32 = 8;
    /// `runstate_runnable_time`.
    pub const RUNNABLE: u32 = 16;
    /// `runstate_blocked_time`.
    pub const BLOCKED: u32 = 24;
    /// `runstate_offline_time`.
    pub const OFFLINE: u32 = 32;
}

/// Byte offsets of the standard domain fields.
pub mod domain_off {
    /// `vcpus_online`.
    pub const VCPUS_ONLINE: u32 = 8;
    /// `vcpus_max`.
    pub const VCPUS_MAX: u32 = 16;
    /// `uptime`.
    pub const UPTIME: u32 = 24;
}

/// `sizeof(VcpuStats)` of this revision.
pub const VCPU_STATS_SIZE: u32 = 40;
/// `sizeof(DomainStats)` of this revision.
pub const DOMAIN_STATS_SIZE: u32 = 32;

const fn ns(name: &str, offset: u32) -> Descriptor {
    Descriptor::scalar(
        name,
        offset,
        Kind::CUMULATIVE,
        Unit::SECONDS,
        Base::POW10,
        -9,
    )
}

/// Descriptors of the standard vCPU fields, in record order.
pub const VCPU_STD_DESCRIPTORS: &[Descriptor] = &[
    ns("runstate_running_time", vcpu_off::RUNNING),
    ns("runstate_runnable_time", vcpu_off::RUNNABLE),
    ns("runstate_blocked_time", vcpu_off::BLOCKED),
    ns("runstate_offline_time", vcpu_off::OFFLINE),
];

/// Descriptors of the standard domain fields, in record order.
pub const DOMAIN_STD_DESCRIPTORS: &[Descriptor] = &[
    Descriptor::scalar(
        "vcpus_online",
        domain_off::VCPUS_ONLINE,
        Kind::INSTANT,
        Unit::NONE,
        Base::POW10,
        0,
    ),
    Descriptor::scalar(
        "vcpus_max",
        domain_off::VCPUS_MAX,
        Kind::INSTANT,
        Unit::NONE,
        Base::POW10,
        0,
    ),
    ns("uptime", domain_off::UPTIME),
];

#[cfg(test)]
mod tests {
    use zerocopy::IntoBytes;

    use super::*;

    #[test]
    fn golden_vcpu_record_bytes() {
        let r = VcpuStats {
            seq: 2,
            _pad: PAD_INACTIVE,
            runstate_running_time: 1,
            runstate_runnable_time: 2,
            runstate_blocked_time: 3,
            runstate_offline_time: INACTIVE,
        };
        let b = r.as_bytes();
        assert_eq!(b.len(), 40);
        assert_eq!(&b[0..4], &2u32.to_ne_bytes());
        assert_eq!(&b[4..8], &[0xff; 4]);
        assert_eq!(&b[8..16], &1u64.to_ne_bytes());
        assert_eq!(&b[32..40], &[0xff; 8]);
    }

    #[test]
    fn std_descriptors_are_valid_and_match_offsets() {
        for (i, d) in VCPU_STD_DESCRIPTORS.iter().enumerate() {
            assert_eq!(d.check_self(i as u32, VCPU_STATS_SIZE), Ok(()));
            assert_eq!(d.offset, 8 + 8 * i as u32);
        }
        for (i, d) in DOMAIN_STD_DESCRIPTORS.iter().enumerate() {
            assert_eq!(d.check_self(i as u32, DOMAIN_STATS_SIZE), Ok(()));
            assert_eq!(d.offset, 8 + 8 * i as u32);
        }
    }

    #[test]
    fn inactive_rule() {
        assert!(is_active(0));
        assert!(is_active(INACTIVE_BIT - 1));
        assert!(!is_active(INACTIVE_BIT));
        assert!(!is_active(INACTIVE));
    }
}
