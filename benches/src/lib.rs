//! Benchmarks of the vstats table: what a write costs the hypervisor, what
//! a read costs a sampler, both against the hardware limit and against what
//! samplers use today, under contention and at scale.
//!
//! The measurements are `cargo bench` targets in `benches/` (criterion, and
//! a custom harness for contention); this library holds what they share:
//! table fixtures published in `/dev/shm` exactly as a producer would
//! ([`fixture`]), the hot-path wrappers whose assembly `docs/benchmarks.md`
//! annotates ([`hot`]), the alternatives ([`alt`]), the contention
//! experiment ([`contention`]), where results go ([`out`]), and the
//! generator of `docs/benchmarks.md` ([`report`]).
//!
//! One command runs everything and rewrites the document:
//!
//! ```text
//! ./scripts/bench
//! ```
//!
//! # Examples
//!
//! A producer update and a consumer read of the same record, through the
//! wrappers the benchmarks time:
//!
//! ```
//! use vstats_benches::{fixture::ShmFixture, hot};
//!
//! let mut fx = ShmFixture::vcpu("doc-example", 2, 64).unwrap();
//! let mut writers = fx.writers();
//! let mut w0 = writers.next().unwrap();
//! assert!(hot::producer_update4(&mut w0, 7));
//! drop((w0, writers));
//! let mut out = [0u64; 4];
//! let rec = fx.records()[0];
//! hot::read_record_raw(&rec, &mut out).unwrap();
//! assert_eq!(out, [7, 8, 9, 10]);
//! ```
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod alloc;
pub mod alt;
pub mod contention;
pub mod fixture;
pub mod host;
pub mod hot;
pub mod out;
#[allow(unsafe_code)]
pub mod raw;
pub mod report;

use std::time::Duration;

use criterion::Criterion;

/// The criterion settings every criterion target starts from: 1 s of
/// warm-up and 3 s of measurement per benchmark, which keeps a full run
/// under ten minutes on two cores. Command-line options
/// (`cargo bench -- --measurement-time 10`) override them.
pub fn criterion_config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .without_plots()
        .configure_from_args()
}
