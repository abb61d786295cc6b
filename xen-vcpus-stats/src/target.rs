//! What to sample: [`vstats_consumer::target`] (a table file, a VM's
//! directory by path or by name under the root, or a Xen domain).

/// The table file names, defined once in `vstats-abi`.
pub use vstats_abi::publish::{DOMAIN_FILE, VCPU_FILE};
pub use vstats_consumer::{follow::Vm, target::*};
