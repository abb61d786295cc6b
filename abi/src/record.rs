//! The records: per-vCPU and per-domain, their standard fields and the
//! inactive marker.
//!
//! A record is `u32 seq; u32 _pad; u64 counters[...]`. The structs below
//! are this revision's view of the standard fields: [`VcpuStats`] (r3, 56
//! bytes: r2's record with the current [`RunState`] and its entry time
//! appended) and [`VcpuStatsR2`] (r2's 40 bytes, which r3 consumers still
//! read). An r2 producer may append
//! producer-specific counters after `abi_size` (described by r2
//! descriptors); an r3 producer puts them in the producer-specific area
//! after `size` (described by r3 descriptors). A later revision may append
//! standard fields. Only appending is compatible.

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

/// One vCPU's record as r2 defined it: RFC v3's record with the other
/// three runstate times appended, Xen's `RUNSTATE_*` order. Times are
/// nanoseconds. The prefix of [`VcpuStats`]; r3 producers write the
/// latter.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct VcpuStatsR2 {
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

/// One vCPU's record as this revision (r3) defines it: r2's record with the current state
/// and the time it was entered appended. The four times are accrued up to
/// `runstate_entry_time` (P11); the time since then belongs to `runstate`
/// and is not in the record. That is Xen's `struct vcpu_runstate_info`,
/// without `XEN_RUNSTATE_UPDATE` in bit 63 (bit 63 is the inactive marker).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct VcpuStats {
    /// Odd while an update is in progress.
    pub seq: u32,
    /// Padding, [`PAD_INACTIVE`].
    pub _pad: u32,
    /// Time running on a physical CPU, up to `runstate_entry_time`.
    pub runstate_running_time: u64,
    /// Time runnable, waiting for a physical CPU, idem.
    pub runstate_runnable_time: u64,
    /// Time blocked (halted, waiting for an event), idem.
    pub runstate_blocked_time: u64,
    /// Time offline (not started, stopped, or paused by the toolstack),
    /// idem.
    pub runstate_offline_time: u64,
    /// The current state, a [`RunState`] value (instant).
    pub runstate: u64,
    /// When the current state was entered, nanoseconds in the table's
    /// clock (instant).
    pub runstate_entry_time: u64,
}
// size: 56 bytes

/// The r3 record under the name step 1 of r3 gave it: [`VcpuStats`].
pub type VcpuStatsR3 = VcpuStats;

/// A vCPU's run state, as [`VcpuStats::runstate`] holds it: Xen's
/// `RUNSTATE_*` numbering. A newtype, not an enum: a value this revision
/// does not know survives and is reported (R25), never misread.
#[repr(transparent)]
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
)]
pub struct RunState(pub u64);

impl RunState {
    /// Running on a physical CPU (`RUNSTATE_running`).
    pub const RUNNING: RunState = RunState(0);
    /// Runnable, waiting for a physical CPU (`RUNSTATE_runnable`).
    pub const RUNNABLE: RunState = RunState(1);
    /// Blocked: halted or waiting for an event (`RUNSTATE_blocked`).
    pub const BLOCKED: RunState = RunState(2);
    /// Offline: down, not yet started, or paused (`RUNSTATE_offline`).
    pub const OFFLINE: RunState = RunState(3);
    /// Number of states this revision knows (0 to `COUNT - 1`), one per
    /// runstate time, in the order of the times in the record.
    pub const COUNT: usize = 4;

    /// Whether the value is one of the four states (R25).
    pub const fn is_known(self) -> bool {
        self.0 < RunState::COUNT as u64
    }

    /// The index of the state's time among the four runstate times (the
    /// record offset is `vcpu_off::RUNNING + 8 * index`), `None` for an
    /// unknown value.
    pub const fn index(self) -> Option<usize> {
        if self.is_known() {
            Some(self.0 as usize)
        } else {
            None
        }
    }

    /// Lower-case name (`running`, `runnable`, `blocked`, `offline`),
    /// `None` for an unknown value.
    pub const fn name(self) -> Option<&'static str> {
        match self.0 {
            0 => Some("running"),
            1 => Some("runnable"),
            2 => Some("blocked"),
            3 => Some("offline"),
            _ => None,
        }
    }
}

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
    assert!(core::mem::size_of::<VcpuStatsR2>() == VCPU_STATS_SIZE_R2 as usize);
    assert!(core::mem::offset_of!(VcpuStatsR2, seq) == 0);
    assert!(core::mem::offset_of!(VcpuStatsR2, _pad) == 4);
    assert!(core::mem::offset_of!(VcpuStatsR2, runstate_running_time) == 8);
    assert!(core::mem::offset_of!(VcpuStatsR2, runstate_runnable_time) == 16);
    assert!(core::mem::offset_of!(VcpuStatsR2, runstate_blocked_time) == 24);
    assert!(core::mem::offset_of!(VcpuStatsR2, runstate_offline_time) == 32);
    assert!(core::mem::size_of::<VcpuStats>() == VCPU_STATS_SIZE as usize);
    assert!(VCPU_STATS_SIZE == 56 && VCPU_STATS_SIZE_R2 == 40);
    assert!(core::mem::offset_of!(VcpuStats, seq) == 0);
    assert!(core::mem::offset_of!(VcpuStats, _pad) == 4);
    assert!(core::mem::offset_of!(VcpuStats, runstate_running_time) == 8);
    assert!(core::mem::offset_of!(VcpuStats, runstate_runnable_time) == 16);
    assert!(core::mem::offset_of!(VcpuStats, runstate_blocked_time) == 24);
    assert!(core::mem::offset_of!(VcpuStats, runstate_offline_time) == 32);
    assert!(core::mem::offset_of!(VcpuStats, runstate) == vcpu_off::RUNSTATE as usize);
    assert!(core::mem::offset_of!(VcpuStats, runstate_entry_time) == vcpu_off::ENTRY as usize);
    assert!(core::mem::size_of::<RunState>() == 8);
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
    /// `runstate` (r3).
    pub const RUNSTATE: u32 = 40;
    /// `runstate_entry_time` (r3).
    pub const ENTRY: u32 = 48;
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

/// `sizeof(VcpuStats)` of this revision (r3): 56.
pub const VCPU_STATS_SIZE: u32 = 56;
/// `sizeof(VcpuStats)` under the name step 1 of r3 gave it.
pub const VCPU_STATS_SIZE_R3: u32 = VCPU_STATS_SIZE;
/// `sizeof(VcpuStatsR2)`: the standard vCPU record of r2, 40.
pub const VCPU_STATS_SIZE_R2: u32 = 40;
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

/// The standard vCPU fields of r3, in record order, described as the
/// spec defines them. An r3 producer does not publish these (standard
/// fields are known by position and `size`); a consumer uses them as its
/// built-in table, and R20 refuses an r3 descriptor carrying one of their
/// names.
pub const VCPU_STD_DESCRIPTORS_R3: &[Descriptor] = &[
    ns("runstate_running_time", vcpu_off::RUNNING),
    ns("runstate_runnable_time", vcpu_off::RUNNABLE),
    ns("runstate_blocked_time", vcpu_off::BLOCKED),
    ns("runstate_offline_time", vcpu_off::OFFLINE),
    Descriptor::scalar(
        "runstate",
        vcpu_off::RUNSTATE,
        Kind::INSTANT,
        Unit::NONE,
        Base::POW10,
        0,
    ),
    Descriptor::scalar(
        "runstate_entry_time",
        vcpu_off::ENTRY,
        Kind::INSTANT,
        Unit::SECONDS,
        Base::POW10,
        -9,
    ),
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
        let r = VcpuStatsR2 {
            seq: 2,
            _pad: PAD_INACTIVE,
            runstate_running_time: 1,
            runstate_runnable_time: 2,
            runstate_blocked_time: 3,
            runstate_offline_time: INACTIVE,
        };
        let b = r.as_bytes();
        assert_eq!(b.len(), VCPU_STATS_SIZE_R2 as usize);
        assert_eq!(&b[0..4], &2u32.to_ne_bytes());
        assert_eq!(&b[4..8], &[0xff; 4]);
        assert_eq!(&b[8..16], &1u64.to_ne_bytes());
        assert_eq!(&b[32..40], &[0xff; 8]);
    }

    #[test]
    fn golden_vcpu_r3_record_bytes() {
        let r = VcpuStats {
            seq: 4,
            _pad: PAD_INACTIVE,
            runstate_running_time: 0x11,
            runstate_runnable_time: 0x22,
            runstate_blocked_time: 0x33,
            runstate_offline_time: INACTIVE,
            runstate: RunState::BLOCKED.0,
            runstate_entry_time: 0x0102_0304_0506_0708,
        };
        #[rustfmt::skip]
        let expect: [u8; 56] = [
            4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
            0x11, 0, 0, 0, 0, 0, 0, 0,
            0x22, 0, 0, 0, 0, 0, 0, 0,
            0x33, 0, 0, 0, 0, 0, 0, 0,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            2, 0, 0, 0, 0, 0, 0, 0,
            8, 7, 6, 5, 4, 3, 2, 1,
        ];
        assert_eq!(r.as_bytes().len(), VCPU_STATS_SIZE_R3 as usize);
        #[cfg(target_endian = "little")]
        assert_eq!(r.as_bytes(), &expect);
        // The r2 record is the r3 record's prefix.
        let r2 = VcpuStatsR2 {
            seq: 4,
            _pad: PAD_INACTIVE,
            runstate_running_time: 0x11,
            runstate_runnable_time: 0x22,
            runstate_blocked_time: 0x33,
            runstate_offline_time: INACTIVE,
        };
        assert_eq!(r2.as_bytes(), &r.as_bytes()[..VCPU_STATS_SIZE_R2 as usize]);
        assert_eq!(VCPU_STATS_SIZE, VCPU_STATS_SIZE_R3);
    }

    #[test]
    fn run_states() {
        let all = [
            RunState::RUNNING,
            RunState::RUNNABLE,
            RunState::BLOCKED,
            RunState::OFFLINE,
        ];
        assert_eq!(all.len(), RunState::COUNT);
        for (i, s) in all.iter().enumerate() {
            assert_eq!(s.0, i as u64);
            assert_eq!(s.index(), Some(i));
            // The state's time is the i-th runstate time, as in Xen.
            assert_eq!(
                VCPU_STD_DESCRIPTORS_R3[i]
                    .name_str()
                    .map(|n| &n[9..n.len() - 5]),
                s.name()
            );
        }
        assert_eq!(RunState(4).index(), None);
        assert_eq!(RunState(7).name(), None);
        assert!(!RunState(INACTIVE).is_known());
    }

    #[test]
    fn std_descriptors_are_valid_and_match_offsets() {
        for (i, d) in VCPU_STD_DESCRIPTORS_R3.iter().enumerate() {
            assert_eq!(d.check_self(i as u32, VCPU_STATS_SIZE_R3), Ok(()));
            assert_eq!(d.offset, 8 + 8 * i as u32);
        }
        assert_eq!(
            &VCPU_STD_DESCRIPTORS_R3[..VCPU_STD_DESCRIPTORS.len()],
            VCPU_STD_DESCRIPTORS
        );
        for (i, d) in VCPU_STD_DESCRIPTORS.iter().enumerate() {
            assert_eq!(d.check_self(i as u32, VCPU_STATS_SIZE_R2), Ok(()));
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
