//! A small KVM virtual machine monitor that exists to be measured.
//!
//! `vstats-kvm-vmm` creates a KVM VM with N vCPUs, one host thread each,
//! running a tiny hand-assembled x86 real-mode guest ([`guest`]) that
//! computes for about a millisecond, reports its progress through port
//! I/O, halts, is woken by a per-vCPU timer in the VMM, and repeats
//! forever ([`GuestMode::Default`]; [`GuestMode::SpinNoExit`] instead
//! reports once and then spins without a single exit). While it runs, the crate measures what a Xen-style statistics
//! table wants to publish:
//!
//! * per-vCPU **runstate times** in Xen order (running, runnable, blocked,
//!   offline), in `CLOCK_MONOTONIC` nanoseconds, that always add up to the
//!   wall time since VM creation ([`runstate`] documents the model and its
//!   approximation);
//! * KVM's **binary statistics** (`KVM_GET_STATS_FD`) of the VM and of each
//!   vCPU, with parsed descriptors ([`KvmStats`]);
//! * VM-wide values: vCPUs online and max, uptime ([`VmReport`]).
//!
//! The data interface is shaped for a single-writer publisher per vCPU:
//! each vCPU thread owns an optional [`VcpuSink`] and calls it with its
//! [`VcpuReport`] at every state change and exit; any thread can also ask
//! [`RunningVm::vcpu_report`] and [`RunningVm::vm_report`] for "as of now"
//! values. [`RunningVm::stop`] kicks, joins and returns final reports.
//! [`Vm::run`] starts plain threads (`'static` sinks); [`Vm::run_scoped`]
//! starts them inside a [`std::thread::scope`], so sinks may borrow.
//!
//! [`publish`] is the real producer built on that interface: a
//! [`Publisher`] publishes a VM live through `vstats-producer` as two
//! tables in one directory (default `$VSTATS_ROOT/<name>/`, else
//! `/dev/shm/vstats/<name>/`): `vcpu`, one
//! record per vCPU with the four runstate times then every KVM vCPU
//! statistic, and `domain`, with vCPUs online and max, uptime, then every
//! KVM VM statistic, each KVM statistic under KVM's name, kind and unit in
//! the descriptor table. Each vCPU thread writes its own record; the
//! directory is removed when the publisher is. The `vstats-vmm` binary runs
//! one until SIGINT or SIGTERM:
//!
//! ```text
//! vstats-vmm --name NAME [--vcpus N] [--dir DIR] [--seconds S]
//!            [--stats-refresh-ms MS] [--domain-period-ms MS] [--halt-ms MS]
//!            [--spin-no-exit]
//! ```
//!
//! Linux on x86-64 only. Without an accessible `/dev/kvm`,
//! [`Vm::start`] fails with [`Error::KvmUnavailable`] so callers can fall
//! back.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use vstats_kvm_vmm::{Error, RunState, Vm, VmConfig};
//!
//! let config = VmConfig::new(2).with_sink(0, |r: &vstats_kvm_vmm::VcpuReport| {
//!     // Runs on vCPU 0's thread at every exit and state change.
//!     assert_eq!(r.total_ns(), r.wall_ns());
//! });
//! let vm = match Vm::start(config) {
//!     Ok(vm) => vm,
//!     Err(Error::KvmUnavailable { .. }) => return, // no KVM here: fall back
//!     Err(e) => panic!("{e}"),
//! };
//! std::thread::sleep(Duration::from_millis(50));
//! let now = vm.vcpu_report(1).unwrap();
//! println!("vCPU 1 running for {} ns", now.time(RunState::Running));
//! let exits = vm.vcpu_stats(1).unwrap().value(&now.stats, "exits");
//! println!("KVM counted {exits:?} exits");
//! let stopped = vm.stop().unwrap();
//! assert_eq!(stopped.vm.vcpus_online, 0);
//! for r in &stopped.vcpus {
//!     assert_eq!(r.state, RunState::Offline);
//!     assert_eq!(r.total_ns(), stopped.stopped_ns - r.created_ns);
//! }
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
compile_error!("vstats-kvm-vmm supports Linux on x86-64 only");

pub mod error;
pub mod guest;
pub mod publish;
pub mod report;
pub mod runstate;
pub mod stats;
mod sys; // the only module with `unsafe`: it opts in with `#![allow(unsafe_code)]`
mod vm;

pub use error::{Error, Result};
pub use guest::GuestMode;
pub use publish::Publisher;
pub use report::{VcpuReport, VcpuSink, VmReport};
pub use runstate::RunState;
pub use stats::{KvmStatDesc, KvmStats};
pub use vm::{RunningVm, StoppedVm, Vm, VmConfig};

/// The clock every timestamp of this crate uses: `CLOCK_MONOTONIC` in
/// nanoseconds, the producer's clock.
pub use vstats_producer::monotonic_ns;
