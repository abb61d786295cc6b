//! One atomic view of mapped memory, in the style of rust-vmm's
//! vm-memory `VolatileSlice`: [`MemView`] (read-only: relaxed atomic loads
//! only) and its writable twin [`MemViewMut`], with one
//! bounds-and-alignment check behind every access, a generic accessor over
//! [`AtomicInt`] (`u8`, `u16`, `u32`, `u64`), subviews, and one safety
//! argument (the invariants listed on [`MemView`]).
//!
//! [`crate::Table`] reads its mapping through a `MemView`; the invariant
//! checker, the benchmarks and the Xen backend use the same type for the
//! bytes a `Table` does not expose (padding, the tail of the last page).
//! [`FileId`] tells a mapped file from one that replaced it under the
//! same name.
//!
//! # Examples
//!
//! A table built in memory, read through a view:
//!
//! ```
//! use vstats_abi::{
//!     layout::{Layout, LayoutParams},
//!     VCPU_STATS_MAGIC,
//! };
//! use vstats_consumer::{mem::MemView, Table};
//!
//! let layout = Layout::compute(&LayoutParams::vcpu(1))?;
//! let mut bytes = vec![0u8; layout.mapping_len() as usize];
//! layout.write_headers(&mut bytes, VCPU_STATS_MAGIC, 1, &[])?;
//! let view = MemView::from_bytes(&bytes);
//! assert_eq!(view.load::<u32>(0), Some(VCPU_STATS_MAGIC));
//! let table = Table::from_view(view)?;
//! assert_eq!(table.nr_records(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

/// Whether this build survives a table file truncated while it is mapped
/// (true on Linux x86-64 outside Miri): loads from mapped memory go
/// through fault-guarded routines and a `SIGBUS` handler, so a truncated
/// table reads as lost ([`crate::Error::Truncated`]) instead of killing
/// the process. Where false, a reader of a file that someone truncates
/// dies of `SIGBUS`: such a consumer should say so to its user.
pub const SURVIVES_TRUNCATION: bool = crate::guard::GUARDED;

/// Installs the process-wide `SIGBUS` handler that makes loads from a
/// truncated mapping fail instead of killing the process (opening a file
/// does it; call this for memory mapped otherwise, e.g. with
/// [`MemView::from_raw_parts`]). Idempotent. Returns whether the handler
/// is installed ([`SURVIVES_TRUNCATION`] and `sigaction` succeeded).
///
/// Faults elsewhere go to the handler installed before (or the default
/// action). Install it before other libraries install theirs, or after
/// them: a handler installed later that does not chain to it takes
/// truncation survival away.
pub fn install_fault_handler() -> bool {
    crate::guard::install()
}

/// The routine consistent record copies go through in this process (see
/// [`CopyPath`]): chosen at first use, the fastest this build and CPU run
/// (AVX2, else SSE2 on Linux x86-64; the per-word atomic path elsewhere
/// and under Miri), unless `VSTATS_COPY_PATH` (`atomic`, `scalar`, `sse2`
/// or `avx2`) named another that runs here.
pub fn copy_path() -> CopyPath {
    crate::guard::copy_path()
}

/// Chooses the copy routine for every later read in this process (tests
/// and benchmarks run each path). Returns false, changing nothing, when
/// this build or CPU cannot run `path`. [`CopyPath::Atomic`] is not
/// fault-guarded: with it, a truncated table file kills the reader.
pub fn set_copy_path(path: CopyPath) -> bool {
    crate::guard::set_copy_path(path)
}

pub use crate::{
    guard::CopyPath,
    mmap::FileId,
    raw::{AtomicInt, MemView, MemViewMut},
};
