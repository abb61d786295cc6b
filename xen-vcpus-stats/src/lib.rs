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
//! the binary.
//!
//! # Example
//!
//! Sample a table that [`vstats_producer::synth`] publishes:
//!
//! ```
//! use std::time::Duration;
//! use vstats_producer::synth::Synth;
//! use xen_vcpus_stats::{
//!     filter::NameFilter,
//!     output::Format,
//!     sample::{self, SampleOptions, Step},
//!     target::Target,
//! };
//!
//! let dir = std::env::temp_dir().join(format!("xvs-doc-{}", std::process::id()));
//! let mut producer = Synth::new(&dir, 2)?;
//! let opts = SampleOptions {
//!     interval: Duration::from_millis(10),
//!     count: Some(1),
//!     format: Format::Json,
//!     engine: vstats_consumer::sample::SampleOptions {
//!         names: NameFilter::new(&["exits"]),
//!         vcpus: None,
//!         busy_timeout: Duration::from_secs(2),
//!     },
//! };
//! let mut sampler = sample::attach(&Target::Path(dir.clone()), &opts)?;
//! std::thread::sleep(Duration::from_millis(20));
//! producer.update();
//! let Step::Sample(s) = sampler.step()? else { panic!("restarted") };
//! assert_eq!(s.vcpus.len(), 2);
//! let shares = s.vcpus[0].shares.expect("the record was updated");
//! assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
//! assert!(s.vcpus[1].rates[0].unwrap() > 0.0, "exits grow");
//! producer.remove()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
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
