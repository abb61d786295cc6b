//! The atomics the seq protocol uses: `core`'s normally, loom's under
//! `--cfg loom` so that the model checks the very code the crates run.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, Ordering};
#[cfg(loom)]
pub use loom::sync::atomic::{AtomicU32, AtomicU64};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{fence, Ordering};
#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicU32, AtomicU64};

#[cfg(not(loom))]
pub(crate) use core::hint::spin_loop;

#[cfg(loom)]
pub(crate) fn spin_loop() {
    loom::thread::yield_now();
}
