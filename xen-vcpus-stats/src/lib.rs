//! `xen-vcpus-stats`: sample vstats statistics tables from the command
//! line, in the spirit of `xentop`, `kvm_stat` and QEMU's `query-stats`.
//!
//! A thin layer over [`vstats_consumer`]: attach to a target ([`target`]:
//! a Xen domain through [`xen`], a table file, or a VM directory under
//! `/dev/shm/vstats`), take a snapshot every interval ([`sample`]), and
//! print per-vCPU runstate shares, counter rates and aggregates across
//! vCPUs in one of three formats ([`output`]). `schema` lists the
//! counters ([`schema`]), `list` the targets ([`list`]), `check` runs the
//! invariant checker on a target ([`check`]), and `demo` runs a live KVM VM
//! to sample ([`demo`], [`produce`], and
//! [`vstats_producer::synth`] without KVM).
//!
//! The binary is `main` calling [`cli::run`]; tests call the library or
//! the binary: `tests/library.rs` samples a table of
//! [`vstats_producer::synth`] through the library.
#![forbid(unsafe_code)]

pub mod check;
pub mod cli;
pub mod demo;
pub mod error;
pub mod list;
pub mod output;
pub mod produce;
pub mod sample;
pub mod schema;
pub mod target;

pub use vstats_consumer::{filter, xen};

pub use error::{exit_code, Error, Result};
