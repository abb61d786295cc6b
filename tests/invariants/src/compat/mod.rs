//! The compatibility matrix: revisions of the vCPU record, each with a
//! producer and a consumer built only from that revision's own copy of the
//! definitions, the way two independently built programs (a hypervisor and
//! a tool) would be compiled from two versions of a public header.
//!
//! | revision | record | header | what it models |
//! |---|---|---|---|
//! | [`r1`] | `seq, pad0, runstate_running_time` (16 B), vCPU i at v3's address, zero fill | 16-byte header only | RFC v3, October 2023 |
//! | [`r2`] | the four runstate times (40 B), producer counters in `[abi_size, size)` | + 40-byte extension header, r2 descriptors | ABI r2 |
//! | [`r3`] | r2 + `runstate`, `runstate_entry_time` (56 B), producer-specific area after `size` | + r3 header (`clock`, area, r3 descriptors) | ABI r3, `docs/abi.md` today |
//! | [`r4x`] | r3 + `preemptions` at 56 (64 B) | as r3 | a later revision that appends a standard field |
//! | [`incompatible`] | 128-bit counters, reordered | new magic `0xaabbcce0` | a deliberate break (producer only) |
//!
//! The modules share no ABI code on purpose: each declares its own
//! structs, constants, layout arithmetic, seq protocol and validation (they
//! share only the memory views of [`vstats_consumer::mem`] and the harness
//! types below). `tests/matrix.rs` runs every producer against every
//! consumer, plus the real `vstats-producer` and `vstats-consumer` and the
//! spec-only C consumer, and the checker on every producer's table.
//!
//! Each consumer follows only its own revision's rules (`docs/abi.md`
//! sections 6, 7 and 9): a standard field it knows at offset `o` is read
//! only if `o + 8 <= abi_size` (`size` when there is no extension header,
//! and `abi_size == size` in r3); a word with its top bit set is absent
//! (inactive); producer-specific counters are read only through
//! descriptors and kept apart from standard fields; a magic it does not
//! know is refused. v3's own reader (r1) knows none of this: it reads the
//! running time at its own address for vCPU i, which is right only for
//! vCPU 0 (section 9.1).

use std::io;

pub mod incompatible;
pub mod r1;
pub mod r2;
pub mod r3;
pub mod r4x;

/// What a consumer read of one record: the seq it is consistent with and,
/// for each standard field the consumer's revision knows, its value or
/// `None` when absent (the producer's revision lacks it, or it is
/// inactive); the producer-specific counters it found through descriptors,
/// keyed apart; and the up-to-date runstate times when it computed them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reading {
    /// The (even) seq the values are consistent with.
    pub seq: u32,
    /// `(standard field name, value)` in the consumer's record order.
    pub fields: Vec<(&'static str, Option<u64>)>,
    /// `(producer-specific counter name, value)` in descriptor order:
    /// never a standard field, whatever its name.
    pub producer: Vec<(String, Option<u64>)>,
    /// The four up-to-date runstate times (running, runnable, blocked,
    /// offline; rule R26) when the consumer computed them; `None` when the
    /// times are as of the producer's last update (no clock, no `now`, an
    /// inactive or unknown state, or a revision without R26).
    pub up_to_date: Option<[Option<u64>; 4]>,
}

impl Reading {
    /// A reading of standard fields only (no producer counters, not up to
    /// date).
    pub fn standard(seq: u32, fields: Vec<(&'static str, Option<u64>)>) -> Reading {
        Reading {
            seq,
            fields,
            producer: Vec::new(),
            up_to_date: None,
        }
    }

    /// The value of standard field `name`: `None` if the consumer does not
    /// know the field, `Some(None)` if it is absent from the table.
    pub fn get(&self, name: &str) -> Option<Option<u64>> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    /// The value of producer-specific counter `name`: `None` if the table
    /// has no such counter (or the consumer reads none), `Some(None)` if
    /// it is inactive.
    pub fn producer_counter(&self, name: &str) -> Option<Option<u64>> {
        self.producer
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

/// Why a consumer of some revision refuses a table or a read.
#[derive(Debug, thiserror::Error)]
pub enum CompatError {
    /// The file could not be opened or mapped.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The magic is not one this revision reads.
    #[error(
        "incompatible table: magic {found:#010x}, this consumer reads {expected:#010x} \
         (a deliberate ABI break, or not a table of this kind)"
    )]
    Incompatible {
        /// The magic found.
        found: u32,
        /// The (first) magic this revision reads.
        expected: u32,
    },
    /// The header breaks a layout rule.
    #[error("invalid table: {0}")]
    Invalid(String),
    /// The record stayed mid-update for every attempt.
    #[error("vCPU {vcpu} busy: its seq stayed odd or kept changing")]
    Busy {
        /// The vCPU.
        vcpu: u32,
    },
    /// The vCPU is not in the table.
    #[error("no vCPU {vcpu}: the table has {nr} slots")]
    NoSuchVcpu {
        /// The vCPU asked for.
        vcpu: u32,
        /// Slots in the table.
        nr: u32,
    },
    /// A genuine RFC v3 table: only vCPU 0 is meaningful (`docs/abi.md`
    /// section 9.1), the others are unknown, never absent or zero.
    #[error("vCPU {vcpu} unknown: RFC v3 table, only vCPU 0 is meaningful")]
    Unknown {
        /// The vCPU asked for.
        vcpu: u32,
    },
}

/// The value every producer of the matrix publishes for standard field
/// `field` of vCPU `vcpu`, so that a consumer's reading can be checked
/// against it. `runstate` is the state `vcpu % 4` (R25: 0 to 3); every
/// other field gets a number that no other field and no producer-specific
/// counter ([`producer_value_for`]) of any vCPU has.
pub fn value_for(vcpu: u32, field: &str) -> u64 {
    if field == "runstate" {
        return u64::from(vcpu % 4);
    }
    let name: u64 = field.bytes().map(u64::from).sum();
    u64::from(vcpu + 1) * 1_000_000 + name
}

/// The value every producer of the matrix publishes for its
/// producer-specific counter `name` of vCPU `vcpu`: never equal to any
/// [`value_for`], so a producer counter read under a standard name shows.
pub fn producer_value_for(vcpu: u32, name: &str) -> u64 {
    let n: u64 = name.bytes().map(u64::from).sum();
    u64::from(vcpu + 1) * 1_000_000 + 500_000 + n
}

/// The up-to-date runstate times (R26) a consumer must compute for vCPU
/// `vcpu` of a table whose producer wrote [`value_for`] and whose clock is
/// readable, at `now` in that clock (`now` after the entry time).
pub fn up_to_date_for(vcpu: u32, now: u64) -> [Option<u64>; 4] {
    let names = [
        "runstate_running_time",
        "runstate_runnable_time",
        "runstate_blocked_time",
        "runstate_offline_time",
    ];
    let state = value_for(vcpu, "runstate") as usize;
    let entry = value_for(vcpu, "runstate_entry_time");
    let mut t = names.map(|n| Some(value_for(vcpu, n)));
    if let Some(Some(v)) = t.get_mut(state) {
        *v += now.saturating_sub(entry);
    }
    t
}
