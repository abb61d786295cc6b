//! The one place that touches the shared memory: a read-only view of a
//! mapping that hands out only atomic loads and atomic references.
//!
//! # Invariants of [`Mapping`]
//!
//! 1. `ptr` is non-null and 8-aligned (checked by [`Mapping::new`]).
//! 2. `[ptr, ptr + len)` is mapped and readable for as long as the
//!    `Mapping` lives (the caller of [`Mapping::new`] promises it; when an
//!    owner is given, the memory lives until the owner is dropped, which
//!    happens after the last access, in `Drop`).
//! 3. The memory may be written at any time by another party, but only with
//!    atomic (or, from another process, plain machine) stores: never with a
//!    Rust non-atomic write racing our reads.
//!
//! Because of 3, nothing here ever creates a `&u8`, `&[u8]` or `&T` of a
//! non-atomic type to the mapping: every byte is read with an atomic load
//! through `&AtomicU8`/`&AtomicU32`/`&AtomicU64`, which is sound under
//! concurrent mutation because atomics are `UnsafeCell`s.
//!
//! # Read-only memory
//!
//! File tables are mapped `PROT_READ`. The standard library's
//! `core::sync::atomic` docs, section "Atomic accesses to read-only
//! memory", guarantee that "sufficiently small" atomic loads with
//! `Ordering::Relaxed` work on read-only memory: up to 8 bytes on `x86_64`,
//! `aarch64`, `riscv64`, `powerpc64`, `s390x` and the other 64-bit targets
//! it lists, up to 4 bytes on 32-bit ones. Loads with any other ordering
//! are not guaranteed. So every load here is `Relaxed` and at most 8
//! bytes wide; the seq protocol gets its acquire ordering from fences
//! (`vstats_abi::seqlock`, step S1). On 32-bit targets the 8-byte counter loads are outside
//! that guarantee; the crate is meant for 64-bit hosts.

use core::{
    fmt,
    ptr::NonNull,
    sync::atomic::{fence, AtomicU32, AtomicU64, AtomicU8, Ordering},
};

use crate::{Error, Result, Table};

/// A mapping the consumer reads with atomic loads only. See the module
/// docs for its invariants.
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    /// Keeps the memory alive; dropped after every access, in `Drop`.
    _owner: Option<Box<dyn Send + Sync>>,
}

// SAFETY: `Mapping` only hands out shared atomic references and values
// loaded atomically from memory that stays valid for its life (invariant
// 2); atomics may be shared and sent between threads, and the owner is
// `Send + Sync` by its type.
unsafe impl Send for Mapping {}
// SAFETY: as for `Send`: every access through `&Mapping` is an atomic load.
unsafe impl Sync for Mapping {}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapping")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("owned", &self._owner.is_some())
            .finish()
    }
}

impl Mapping {
    /// Wraps `[ptr, ptr + len)`.
    ///
    /// # Errors
    ///
    /// [`Error::BadPointer`] when `ptr` is null or not 8-aligned (the owner,
    /// if any, is dropped).
    ///
    /// # Safety
    ///
    /// The caller promises invariants 2 and 3 of the module docs: the
    /// memory is mapped and readable until `owner` is dropped (or, without
    /// an owner, for the whole life of the returned `Mapping`), and is
    /// never written by a non-atomic Rust write while it is mapped here.
    pub(crate) unsafe fn new(
        ptr: *const u8,
        len: usize,
        owner: Option<Box<dyn Send + Sync>>,
    ) -> Result<Mapping> {
        let Some(nn) = NonNull::new(ptr.cast_mut()) else {
            return Err(Error::BadPointer { addr: 0 });
        };
        if !ptr.cast::<u64>().is_aligned() {
            return Err(Error::BadPointer { addr: ptr as usize });
        }
        Ok(Mapping {
            ptr: nn,
            len,
            _owner: owner,
        })
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The address of byte `off` if `[off, off + width)` is inside the
    /// mapping and `off` is a multiple of `width` (a power of two <= 8).
    #[inline]
    fn at(&self, off: usize, width: usize) -> Option<*const u8> {
        let end = off.checked_add(width)?;
        if end > self.len || off % width != 0 {
            return None;
        }
        // `wrapping_add` keeps provenance and cannot be UB; the result is
        // in bounds (just checked) and `width`-aligned because `ptr` is
        // 8-aligned (invariant 1) and `off` is a multiple of `width`.
        Some(self.ptr.as_ptr().cast_const().wrapping_add(off))
    }

    /// `&AtomicU32` at byte `off`, `None` when out of bounds or misaligned.
    #[inline]
    pub(crate) fn atomic_u32(&self, off: usize) -> Option<&AtomicU32> {
        let p = self.at(off, 4)?;
        // SAFETY: `p` is in bounds and 4-aligned (`at`), readable for the
        // life of `self` (invariant 2), which bounds the returned lifetime.
        // `AtomicU32` has the size and alignment of `u32` and is an
        // `UnsafeCell`, so a shared reference to it allows the concurrent
        // writes of invariant 3. We only ever `load(Relaxed)` through it,
        // which std permits on read-only memory (module docs).
        Some(unsafe { &*p.cast::<AtomicU32>() })
    }

    /// `&[AtomicU64]` of `n` words at byte `off`, `None` when out of bounds
    /// or misaligned.
    #[inline]
    pub(crate) fn atomic_u64s(&self, off: usize, n: usize) -> Option<&[AtomicU64]> {
        let bytes = n.checked_mul(8)?;
        let end = off.checked_add(bytes)?;
        if end > self.len || off % 8 != 0 {
            return None;
        }
        let p = self.ptr.as_ptr().cast_const().wrapping_add(off);
        // SAFETY: `[p, p + 8n)` is inside the mapping (checked above), so it
        // is readable for the life of `self` (invariant 2) and its size is
        // at most `len`, which fits `isize` because it is one allocation;
        // `p` is 8-aligned (invariant 1, `off % 8 == 0`). `AtomicU64` is an
        // `UnsafeCell`, so the slice may be mutated by the other party
        // (invariant 3); we only `load(Relaxed)` through it (module docs).
        Some(unsafe { core::slice::from_raw_parts(p.cast::<AtomicU64>(), n) })
    }

    /// Relaxed load of the `u8` at `off`.
    pub(crate) fn load_u8(&self, off: usize) -> Option<u8> {
        let p = self.at(off, 1)?;
        // SAFETY: in bounds (`at`), readable for the life of `self`
        // (invariant 2); `AtomicU8` has alignment 1 and is an `UnsafeCell`
        // (invariant 3).
        let a = unsafe { &*p.cast::<AtomicU8>() };
        Some(a.load(Ordering::Relaxed))
    }

    /// Relaxed load of the `u32` at `off` (4-aligned).
    pub(crate) fn load_u32(&self, off: usize) -> Option<u32> {
        self.atomic_u32(off).map(|a| a.load(Ordering::Relaxed))
    }

    /// The `u64` at `off` (8-aligned) from two relaxed `u32` loads, the
    /// width the producer writes head fields with (not atomic as a whole:
    /// callers only compare it).
    pub(crate) fn load_u64_halves(&self, off: usize) -> Option<u64> {
        if off % 8 != 0 {
            return None;
        }
        let lo = self.load_u32(off)?.to_ne_bytes();
        let hi = self.load_u32(off.checked_add(4)?)?.to_ne_bytes();
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&lo);
        b[4..].copy_from_slice(&hi);
        Some(u64::from_ne_bytes(b))
    }

    /// Copies `[0, n)` into `out` (cleared first) with relaxed loads of the
    /// widths the producer stores with (`u32` words; single bytes for a
    /// tail that is not a whole word, which no valid table has). `None`
    /// when `n > len`.
    ///
    /// Publication: the producer stores every other head word, then the
    /// magic (word 0) with release ordering. The magic is loaded first and
    /// followed by an acquire fence, so a copy whose magic is valid also
    /// holds the head as it was published.
    pub(crate) fn copy_prefix(&self, n: usize, out: &mut Vec<u8>) -> Option<()> {
        if n > self.len {
            return None;
        }
        out.clear();
        out.reserve_exact(n);
        let words = n / 4;
        for k in 0..words {
            let w = self.load_u32(4 * k)?;
            if k == 0 {
                fence(Ordering::Acquire);
            }
            out.extend_from_slice(&w.to_ne_bytes());
        }
        for off in words * 4..n {
            out.push(self.load_u8(off)?);
        }
        Some(())
    }
}

/// The unsafe constructors of [`Table`] live here, beside the invariants
/// they establish.
impl Table {
    /// Reads a table from memory the caller has mapped.
    ///
    /// # Errors
    ///
    /// [`Error::BadPointer`] when `ptr` is null or not 8-aligned, else as
    /// for [`Table::open`] (without a path).
    ///
    /// # Safety
    ///
    /// The caller promises that:
    /// 1. `[ptr, ptr + len)` is mapped and readable for the whole life of
    ///    the returned `Table` (it is not unmapped or freed before the
    ///    `Table` is dropped);
    /// 2. nothing in this process writes that memory with non-atomic
    ///    writes while the `Table` lives. Another process (or a hypervisor)
    ///    may write it at any time, and this process may write it with
    ///    atomic stores: the `Table` reads it only with atomic loads.
    pub unsafe fn from_raw(ptr: *const u8, len: usize) -> Result<Table> {
        // SAFETY: the caller promises 1 (readable for the life of the
        // Table, which owns the Mapping) and 2 (no racing non-atomic
        // writes), which are invariants 2 and 3 of `Mapping`.
        let map = unsafe { Mapping::new(ptr, len, None) }?;
        Table::init(map, None)
    }

    /// Reads a table from memory mapped by someone else, taking ownership
    /// of whatever keeps it mapped (e.g. a foreign-memory mapping handle
    /// that unmaps in its `Drop`). The owner is dropped when the `Table`
    /// is, after its last access, or right away when this fails.
    ///
    /// # Errors
    ///
    /// As for [`Table::from_raw`].
    ///
    /// # Safety
    ///
    /// The caller promises that:
    /// 1. `[ptr, ptr + len)` stays mapped and readable until `owner` is
    ///    dropped;
    /// 2. nothing in this process writes that memory with non-atomic
    ///    writes while the `Table` lives (atomic stores and other parties'
    ///    writes are fine).
    pub unsafe fn from_owned(
        ptr: *const u8,
        len: usize,
        owner: Box<dyn Send + Sync>,
    ) -> Result<Table> {
        // SAFETY: the caller promises 1 (readable until the owner, which
        // the Mapping holds, is dropped) and 2 (no racing non-atomic
        // writes), which are invariants 2 and 3 of `Mapping`.
        let map = unsafe { Mapping::new(ptr, len, Some(owner)) }?;
        Table::init(map, None)
    }
}

/// Test support: memory a test owns and writes with atomic stores while a
/// [`crate::Table`] reads it, the same way another process would.
#[cfg(test)]
pub(crate) mod test_mem {
    use std::sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc,
    };

    use crate::{Result, Table};

    /// 8-aligned shared memory of whole words.
    #[derive(Clone, Debug)]
    pub(crate) struct SharedMem {
        words: Arc<[AtomicU64]>,
        len: usize,
    }

    impl SharedMem {
        /// Memory holding `bytes` (padded with zeros to whole words); its
        /// length as a mapping is `bytes.len()`.
        pub(crate) fn from_bytes(bytes: &[u8]) -> SharedMem {
            let words: Arc<[AtomicU64]> = bytes
                .chunks(8)
                .map(|c| {
                    let mut w = [0u8; 8];
                    w[..c.len()].copy_from_slice(c);
                    AtomicU64::new(u64::from_ne_bytes(w))
                })
                .collect();
            SharedMem {
                words,
                len: bytes.len(),
            }
        }

        /// A table over this memory via `Table::from_owned`.
        pub(crate) fn table(&self) -> Result<Table> {
            let ptr = self.words.as_ptr().cast::<u8>();
            // SAFETY: the `Arc` clone handed over as the owner keeps the
            // words alive as long as the table; `len` never exceeds
            // `8 * words.len()`; tests write the words only atomically.
            unsafe { Table::from_owned(ptr, self.len, Box::new(self.words.clone())) }
        }

        /// A table over this memory via `Table::from_raw` with an explicit
        /// length (which may be shorter than the memory).
        pub(crate) fn table_raw(&self, len: usize) -> Result<Table> {
            assert!(len <= self.words.len() * 8);
            // SAFETY: the memory outlives the table only while `self`
            // lives; every test keeps `self` alive longer than the table
            // (the borrow below does not enforce it, the tests do).
            unsafe { Table::from_raw(self.words.as_ptr().cast::<u8>(), len) }
        }

        /// Stores a `u64` at byte `off` (8-aligned).
        pub(crate) fn store_u64(&self, off: usize, v: u64) {
            self.words[off / 8].store(v, Ordering::Release);
        }

        /// The `u32` at byte `off` (4-aligned) as an atomic.
        pub(crate) fn u32_at(&self, off: usize) -> &AtomicU32 {
            assert!(off % 4 == 0 && off + 4 <= self.words.len() * 8);
            let p = self.words.as_ptr().cast::<u8>().wrapping_add(off);
            // SAFETY: in bounds and 4-aligned (asserted; the words are
            // 8-aligned); the memory lives as long as `&self`; AtomicU32 is
            // an UnsafeCell, so sharing it with the table's readers is fine.
            unsafe { &*p.cast::<AtomicU32>() }
        }

        /// Stores a `u32` at byte `off` (4-aligned).
        pub(crate) fn store_u32(&self, off: usize, v: u32) {
            self.u32_at(off).store(v, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Error, Table};

    #[test]
    fn null_and_misaligned_pointers_are_refused() {
        // SAFETY: a null pointer is refused before any access.
        let e = unsafe { Table::from_raw(core::ptr::null(), 4096) }.unwrap_err();
        assert!(matches!(e, Error::BadPointer { addr: 0 }), "{e:?}");
        let words = [0u64; 4];
        let p = words.as_ptr().cast::<u8>().wrapping_add(4);
        // SAFETY: `[p, p + 16)` lies inside `words`, which outlives the
        // call; the misaligned pointer is refused before any access.
        let e = unsafe { Table::from_raw(p, 16) }.unwrap_err();
        assert!(matches!(e, Error::BadPointer { .. }), "{e:?}");
    }
}
