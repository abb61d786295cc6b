//! The compatibility matrix: revisions of the vCPU record, each with a
//! producer and a consumer built only from that revision's own copy of the
//! definitions, the way two independently built programs (a hypervisor and
//! a tool) would be compiled from two versions of a public header.
//!
//! | revision | record | header | what it models |
//! |---|---|---|---|
//! | [`r1`] | `seq, pad0, runstate_running_time` (16 B) | 16-byte header only | RFC v3, October 2023 |
//! | [`r2`] | r1 + runnable, blocked, offline times (40 B) | + extension header, descriptors | this revision of `docs/abi.md` |
//! | [`r4x`] | r2 + `preemptions`, `max_runnable_latency` (56 B) | as r2 | a later revision that appended two counters |
//! | [`incompatible`] | 128-bit counters, reordered | new magic `0xaabbcce0` | a deliberate break (producer only) |
//!
//! The modules share no ABI code on purpose: each declares its own
//! structs, constants, layout arithmetic, seq protocol and validation (they
//! share only the memory views of [`vstats_consumer::mem`] and the harness
//! types below). `tests/matrix.rs` runs every producer against every
//! consumer, plus the real `vstats-producer` and `vstats-consumer`, and
//! the checker on every producer's table.
//!
//! The rules every consumer follows (`docs/abi.md` section 7): a field it
//! knows at offset `o` is read only if `o + 8 <= abi_size` (`size` for a
//! table without extension header), otherwise it is absent; a word with
//! its top bit set is absent (inactive); a magic it does not know is
//! refused.

use std::io;

pub mod incompatible;
pub mod r1;
pub mod r2;
pub mod r4x;

/// What a consumer read of one vCPU: the seq it is consistent with and,
/// for each field the consumer's revision knows, its value or `None` when
/// absent (the producer's revision lacks it, or it is inactive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reading {
    /// The (even) seq the values are consistent with.
    pub seq: u32,
    /// `(field name, value)` in the consumer's record order.
    pub fields: Vec<(&'static str, Option<u64>)>,
}

impl Reading {
    /// The value of field `name`: `None` if the consumer does not know the
    /// field, `Some(None)` if it is absent from the table.
    pub fn get(&self, name: &str) -> Option<Option<u64>> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

/// Why a consumer of some revision refuses a table or a read.
#[derive(Debug, thiserror::Error)]
pub enum CompatError {
    /// The file could not be opened or mapped.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The magic is not the one this revision reads.
    #[error(
        "incompatible table: magic {found:#010x}, this consumer reads {expected:#010x} \
         (a deliberate ABI break, or not a vCPU stats table)"
    )]
    Incompatible {
        /// The magic found.
        found: u32,
        /// The magic this revision reads.
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
}

/// The value every producer of the matrix publishes for `field` of vCPU
/// `vcpu`, so that a consumer's reading can be checked against it.
pub fn value_for(vcpu: u32, field: &str) -> u64 {
    let name: u64 = field.bytes().map(u64::from).sum();
    u64::from(vcpu + 1) * 1_000_000 + name
}
