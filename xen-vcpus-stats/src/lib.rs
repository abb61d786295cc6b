//! `xen-vcpus-stats`: sample vstats statistics tables from the command
//! line, in the spirit of `xentop`, `kvm_stat` and QEMU's `query-stats`.
//!
//! A thin front end: targets, following, sampling, the encoders and the
//! Xen backend are [`vstats_consumer`]'s, `check` is
//! [`vstats_invariants`]'. This crate holds the command line ([`cli`],
//! which `main` calls), the human output ([`output`]) and `demo` ([`demo`],
//! [`produce`]).
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
pub mod top;

pub use vstats_consumer::{filter, xen};

pub use error::{exit_code, Error, Result};
