//! The vstats shared-memory statistics ABI.
//!
//! A stats table is a run of whole pages that a hypervisor (the producer)
//! writes and any number of samplers (consumers) map read-only. This crate
//! holds everything both sides must agree on and nothing else: the
//! `#[repr(C)]` structures, the constants, the kinds of table
//! ([`TableKind`]), the rule catalogue ([`Rule`]), the layout arithmetic,
//! the validation of a table seen by a consumer (the first rule broken, or
//! every violation), and the seq protocol that makes a snapshot of a record
//! consistent. It does no I/O and allocates nothing.
//! `docs/abi.md` in the repository is the normative specification; this
//! crate is its executable form.
//!
//! ```text
//! 0        16                      56           desc_end   offset       offset+stride
//! +--------+-----------------------+------------+----------+------------+------ ...
//! | Header | ExtHeader (optional)  | Descriptor | reserved | record 0   | record 1
//! | 16 B   | 40 B, zero = absent   | 64 B each  | zero     | seq,_pad,  |
//! +--------+-----------------------+------------+----------+ counters.. +------ ...
//! ```
//!
//! An r3 table (`ext_size >= 72`) appends the 32-byte [`R3Header`] at byte
//! 56 (clock, producer-specific area, r3 descriptor array), leaves the r2
//! descriptor array empty, and its vCPU record ([`VcpuStatsR3`]) carries
//! the current [`RunState`] and when it was entered:
//!
//! ```text
//! 0      16            56          88            xdesc_end  offset
//! +------+-------------+-----------+-------------+----------+-------------------------------+
//! |Header| ExtHeader   | R3Header  | xdesc[0..n] | reserved | record 0: [0, size) standard, |
//! | 16 B | 40 B        | 32 B      | optional    | zero     | [xstats_offset, +xstats_size) |
//! +------+-------------+-----------+-------------+----------+ producer-specific, optional  |
//! ```
//!
//! # Examples
//!
//! Compute an r2 layout, then validate the header bytes an r2 producer
//! would write (r3 consumers still read r2 tables):
//!
//! ```
//! use vstats_abi::{layout::{Layout, LayoutParams}, validate::validate, VCPU_STATS_MAGIC};
//!
//! let params = LayoutParams::vcpu_r2(4);
//! let layout = Layout::compute(&params).unwrap();
//! assert_eq!(layout.stride, 64);
//! let mut bytes = vec![0u8; layout.mapping_len() as usize];
//! layout.write_headers(&mut bytes, VCPU_STATS_MAGIC, 1, vstats_abi::record::VCPU_STD_DESCRIPTORS)
//!     .unwrap();
//! let info = validate(&bytes, bytes.len() as u64).unwrap();
//! assert_eq!(info.nr_records, 4);
//! ```
//!
//! The same for an r3 table, as the Xen hypervisor lays it out, its record
//! area filled as P4 and P13 require:
//!
//! ```
//! use vstats_abi::{header::CLOCK_XEN_SYSTEM, layout::{Layout, LayoutParams}, validate::validate,
//!     VCPU_STATS_MAGIC};
//!
//! let params = LayoutParams { clock: CLOCK_XEN_SYSTEM, ..LayoutParams::vcpu(4) };
//! let layout = Layout::compute(&params).unwrap();
//! assert_eq!((layout.stride, layout.offset), (64, 128));
//! let mut bytes = vec![0u8; layout.mapping_len() as usize];
//! layout.write_headers(&mut bytes, VCPU_STATS_MAGIC, 1, &[]).unwrap();
//! layout.fill_records(&mut bytes).unwrap();
//! let info = validate(&bytes, bytes.len() as u64).unwrap();
//! assert!(info.is_r3() && info.clock == CLOCK_XEN_SYSTEM);
//! ```
#![no_std]
// One `unsafe` block, in `primitive.rs` (`halves`, the 32-bit view of a
// 64-bit word); everything else is safe code.
#![deny(unsafe_code)]

#[cfg(test)]
extern crate std;

#[cfg(feature = "clock")]
pub mod clock;
pub mod desc;
pub mod error;
pub mod header;
pub mod kind;
pub mod layout;
mod primitive;
pub mod publish;
pub mod record;
pub mod rule;
pub mod seqlock;
pub mod validate;

pub use desc::{Base, Descriptor, Kind, Unit};
pub use error::Error;
pub use header::{
    ExtHeader, Header, R3Header, DOMAIN_STATS_MAGIC, DOMAIN_STATS_MAGIC_R2, DOMAIN_STATS_MAGIC_R3,
    EXT_MAGIC, HDR_MARKER, VCPU_STATS_MAGIC, XENMEM_RESOURCE_STATS_TABLE,
    XENMEM_RESOURCE_STATS_TABLE_ID_DOMSTATS, XENMEM_RESOURCE_STATS_TABLE_ID_TIME,
    XENMEM_RESOURCE_STATS_TABLE_ID_VCPUSTATS,
};
pub use kind::TableKind;
pub use record::{DomainStats, RunState, VcpuStats, VcpuStatsR2, VcpuStatsR3, INACTIVE};
pub use rule::{Rule, RuleSet};
pub use validate::{validate, TableInfo};

/// Result type of this crate.
pub type Result<T> = core::result::Result<T, Error>;
