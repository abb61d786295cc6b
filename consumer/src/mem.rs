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
//!     record::VCPU_STD_DESCRIPTORS,
//!     VCPU_STATS_MAGIC,
//! };
//! use vstats_consumer::{mem::MemView, Table};
//!
//! let layout = Layout::compute(&LayoutParams::vcpu(1))?;
//! let mut bytes = vec![0u8; layout.mapping_len() as usize];
//! layout.write_headers(&mut bytes, VCPU_STATS_MAGIC, 1, VCPU_STD_DESCRIPTORS)?;
//! let view = MemView::from_bytes(&bytes);
//! assert_eq!(view.load::<u32>(0), Some(VCPU_STATS_MAGIC));
//! let table = Table::from_view(view)?;
//! assert_eq!(table.nr_records(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use crate::{
    mmap::FileId,
    raw::{AtomicInt, MemView, MemViewMut},
};
