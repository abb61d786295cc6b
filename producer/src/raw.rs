//! The only place the producer touches table memory through raw pointers.
//!
//! Invariants of [`Frames`] (the caller of its `unsafe` constructors
//! promises them, every function here relies on them):
//!
//! 1. every byte of the frames is valid for reads and writes for `'f`;
//! 2. every frame starts at an 8-byte aligned address;
//! 3. during `'f` nobody accesses the frames through Rust references to
//!    non-atomic types (consumers in this or other processes use atomic
//!    loads, or are outside Rust's memory model altogether);
//! 4. for [`Frames::pages`], each frame is `page_size` bytes; for
//!    [`Frames::contiguous`], the region is `len` bytes.
#![allow(unsafe_code)]

use core::{marker::PhantomData, ptr::NonNull};

use vstats_abi::seqlock::{AtomicU32, AtomicU64};

#[derive(Clone, Copy, Debug)]
enum Kind<'f> {
    Contiguous {
        base: NonNull<u8>,
        len: usize,
    },
    Pages {
        pages: &'f [NonNull<u8>],
        page_size: usize,
    },
}

/// The memory a table lives in: one contiguous region, or a list of page
/// frames that need not be virtually contiguous (as a hypervisor might
/// allocate them).
#[derive(Debug)]
pub struct Frames<'f> {
    kind: Kind<'f>,
    _mem: PhantomData<&'f mut [u8]>,
}

// SAFETY: `Frames` only hands out atomic references into the frames, which
// may be used from any thread; the raw pointers are never dereferenced
// non-atomically.
unsafe impl Send for Frames<'_> {}
// SAFETY: as for `Send`: all access through `&Frames` is atomic.
unsafe impl Sync for Frames<'_> {}

impl<'f> Frames<'f> {
    /// One contiguous region of `len` bytes at `base`.
    ///
    /// # Safety
    ///
    /// The caller promises invariants 1 to 4 of this module: `[base, base +
    /// len)` stays valid for reads and writes for `'f`, `base` is 8-byte
    /// aligned, and nobody reads or writes it through non-atomic Rust
    /// references meanwhile.
    pub unsafe fn contiguous(base: NonNull<u8>, len: usize) -> Frames<'f> {
        Frames {
            kind: Kind::Contiguous { base, len },
            _mem: PhantomData,
        }
    }

    /// A list of frames of `page_size` bytes each, frame `i` holding table
    /// bytes `[i * page_size, (i + 1) * page_size)`.
    ///
    /// # Safety
    ///
    /// The caller promises invariants 1 to 4 of this module for every
    /// frame in `pages`.
    pub unsafe fn pages(pages: &'f [NonNull<u8>], page_size: usize) -> Frames<'f> {
        Frames {
            kind: Kind::Pages { pages, page_size },
            _mem: PhantomData,
        }
    }

    /// Total bytes available.
    pub fn len(&self) -> usize {
        match self.kind {
            Kind::Contiguous { len, .. } => len,
            Kind::Pages { pages, page_size } => pages.len().saturating_mul(page_size),
        }
    }

    /// Whether there are no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every frame is 8-byte aligned (invariant 2, checked again
    /// because it is cheap).
    pub(crate) fn aligned(&self) -> bool {
        match self.kind {
            Kind::Contiguous { base, .. } => base.as_ptr() as usize % 8 == 0,
            Kind::Pages { pages, page_size } => {
                page_size % 8 == 0 && pages.iter().all(|p| p.as_ptr() as usize % 8 == 0)
            }
        }
    }

    /// The page size of a frame list, `None` for a contiguous region.
    pub(crate) fn page_size(&self) -> Option<usize> {
        match self.kind {
            Kind::Contiguous { .. } => None,
            Kind::Pages { page_size, .. } => Some(page_size),
        }
    }

    /// Pointer to table byte `off`, which must be followed by `len` bytes
    /// inside the same frame; `None` otherwise.
    fn ptr(&self, off: usize, len: usize) -> Option<NonNull<u8>> {
        match self.kind {
            Kind::Contiguous { base, len: total } => {
                if off.checked_add(len)? > total {
                    return None;
                }
                // SAFETY: off + len <= total, so the result stays inside the
                // region promised by invariant 1 (and cannot wrap).
                Some(unsafe { base.add(off) })
            }
            Kind::Pages { pages, page_size } => {
                let (frame, in_page) = (off / page_size, off % page_size);
                if in_page.checked_add(len)? > page_size {
                    return None;
                }
                let base = *pages.get(frame)?;
                // SAFETY: in_page + len <= page_size: inside frame `frame`
                // (invariants 1 and 4).
                Some(unsafe { base.add(in_page) })
            }
        }
    }

    /// The `u32` at table byte `off` (4-aligned), as an atomic.
    pub(crate) fn u32_at(&self, off: usize) -> Option<&'f AtomicU32> {
        if off % 4 != 0 {
            return None;
        }
        let p = self.ptr(off, 4)?;
        // SAFETY: `p` is valid for 4 bytes for 'f (invariant 1, checked
        // bounds), 4-aligned (frames are 8-aligned, invariant 2, and off is a
        // multiple of 4), and only ever accessed atomically (invariant 3).
        Some(unsafe { AtomicU32::from_ptr(p.as_ptr().cast()) })
    }

    /// The `u64` at table byte `off` (8-aligned), as an atomic.
    pub(crate) fn u64_at(&self, off: usize) -> Option<&'f AtomicU64> {
        self.u64s_at(off, 1).and_then(|s| s.first())
    }

    /// `n` consecutive `u64`s from table byte `off` (8-aligned), all in one
    /// frame.
    pub(crate) fn u64s_at(&self, off: usize, n: usize) -> Option<&'f [AtomicU64]> {
        if off % 8 != 0 {
            return None;
        }
        let p = self.ptr(off, n.checked_mul(8)?)?;
        // SAFETY: `p` is valid for 8 * n bytes inside one frame for 'f
        // (invariant 1, checked bounds), 8-aligned (invariant 2 and off % 8
        // == 0), and only ever accessed atomically (invariant 3);
        // `AtomicU64` has the size and alignment of `u64`.
        Some(unsafe { core::slice::from_raw_parts(p.as_ptr().cast::<AtomicU64>(), n) })
    }
}
