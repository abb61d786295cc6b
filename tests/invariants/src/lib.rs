//! The vstats invariant checker: attaches to live stats tables and checks
//! every rule of `docs/abi.md` that can be seen from outside the producer,
//! once on the table as published and then at every sample, and reports
//! each rule with PASS, FAIL (with evidence) or SKIP (with the reason).
//!
//! This is the "something in tools/tests/ which can attach to a running VM
//! and assess the correctness of the invariants" of the ABI discussion,
//! and its "compile for each change of the ABI and assess the correctness
//! for all" is the compatibility matrix in `compat` (feature `testing`).
//!
//! * [`checker`]: [`run_check`] (attach, sample for a duration, report) and
//!   [`Checker`] (the same one step at a time).
//! * [`plan`]: when and how each rule of the catalogue
//!   ([`vstats_abi::Rule`]: R1-R13, R16-R28, P1, P4, P7-P13, P15, D1-D10)
//!   is checked (R26-R28, consumer rules, by reading fixtures); an RFC v3
//!   table gets the v3 profile (record 0 only); `tests/invariants/README.md`
//!   says more.
//! * [`report`]: [`Report`], printed as text or JSON, with the exit code
//!   (0 pass, 1 error, 2 usage, 3 violation; shared with
//!   `xen-vcpus-stats check`).
//! * `fault` (feature `testing`): fault-injecting producers, one per rule,
//!   for the corpus of broken tables the checker must catch, and the
//!   reading fixtures of the consumer rules.
//! * `compat` (feature `testing`): four revisions of the table (r1 = RFC
//!   v3, r2, r3, and r4x, a hypothetical later one), each with its own
//!   producer and consumer built from its own copy of the definitions,
//!   and a deliberately incompatible producer.
//! * Memory is read through the consumer's one view,
//!   [`vstats_consumer::mem::MemView`] (re-exported here); this crate
//!   has no `unsafe` of its own.
//!
//! Features: `cli` (default) builds the `vstats-invariants` command; a
//! library user turns default features off. `testing` adds `fault`,
//! `compat` and the `vstats-fault-producer` command.
//!
//! # Examples
//!
//! Check a table published by the real producer, in a file, for a few
//! milliseconds:
//!
//! ```
//! use std::time::Duration;
//! use vstats_invariants::{fault::{with_fault_table, Fault}, run_check, CheckOptions, Target};
//!
//! let dir = std::env::temp_dir().join(format!("vstats-inv-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("vcpu");
//! let report = with_fault_table(&path, Fault::None, 1, 4, |producer| {
//!     producer.step();
//!     let opts = CheckOptions { duration: Duration::from_millis(30), ..CheckOptions::default() };
//!     run_check(vec![Target::Path(path.clone())], &opts)
//! })?;
//! assert!(report.passed, "{report}");
//! assert_eq!(report.exit_code(), 0);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # For `xen-vcpus-stats check`
//!
//! The Xen backend maps the resource itself and hands the mapping over as
//! a [`Target::Memory`] (wrap the pointer with the `unsafe`
//! [`MemView::from_raw_parts`], giving it the foreign-mapping handle as
//! the owner): every rule is checked. A [`Target::Table`] (an opened
//! `vstats_consumer::Table` only) also works but skips P4, P13, D7, P9 and P15 and
//! narrows D6 to the header, because the consumer exposes no loads outside
//! the head and the records. Then [`run_check`] with [`CheckOptions`], print
//! the [`Report`] (`Display`, or [`Report::to_json`]) and exit with
//! [`Report::exit_code`].
#![deny(unsafe_code)]

pub mod checker;
#[cfg(feature = "testing")]
pub mod compat;
mod dynamics;
#[cfg(feature = "testing")]
pub mod fault;
pub mod plan;
pub mod report;
mod statics;

#[cfg(feature = "xen")]
pub use checker::xen_targets;
pub use checker::{path_targets, run_check, targets_in_dir, vm_dir, CheckOptions, Checker, Target};
pub use report::{Report, Status, TableReport};
pub use vstats_consumer::mem::MemView;
