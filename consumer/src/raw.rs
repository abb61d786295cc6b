//! The one place that touches shared memory through raw pointers: the
//! views of [`crate::mem`], [`MemView`] (read-only) and [`MemViewMut`]
//! (writable), built on one private `Region` that holds the single
//! bounds-and-alignment check and the single SAFETY argument. Their
//! invariants are listed, numbered, on [`MemView`]; every `unsafe` block
//! here cites them. File mappings are made in `mmap.rs`.

use core::{
    fmt,
    marker::PhantomData,
    mem::{align_of, size_of},
    ptr::NonNull,
    sync::atomic::{fence, AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering},
};
use std::sync::Arc;

use vstats_abi::seqlock::{Busy, Word};

use crate::{guard, Error, Result, Table};

/// How a guarded seq read went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SeqRead {
    /// The seq protocol's answer: the seq the copy is consistent with, or
    /// busy.
    Read(core::result::Result<u32, Busy>),
    /// A load faulted: the memory is gone (a truncated file).
    Faulted,
}

mod sealed {
    /// Keeps [`super::AtomicInt`] implemented only here.
    pub trait Sealed {}
}

/// An unsigned integer that a view loads (and a [`MemViewMut`] stores)
/// atomically: `u8`, `u16`, `u32` or `u64`. Sealed: the views rely on
/// `Atomic` having the size and alignment of `Self` and being an
/// `UnsafeCell`.
pub trait AtomicInt: sealed::Sealed + Copy + Send + Sync + 'static {
    /// The atomic type of the same size and alignment (`AtomicU32` for
    /// `u32` ...).
    type Atomic: Send + Sync;
    /// A relaxed load (of a `u64`: two 32-bit loads on 32-bit targets,
    /// see [`MemView`], "Read-only memory").
    fn load_relaxed(a: &Self::Atomic) -> Self;
    /// A relaxed store.
    fn store_relaxed(a: &Self::Atomic, v: Self);
    /// A load through the fault-guarded routines of `guard` (a relaxed
    /// atomic load where they do not exist); `None` when it faulted.
    ///
    /// # Safety
    ///
    /// `p` is aligned for `Self` and lies inside a region of this module.
    #[doc(hidden)]
    unsafe fn load_guarded(p: *const Self) -> Option<Self>;
}

macro_rules! atomic_int {
    ($($t:ty => $a:ty, $g:ident, $load:expr),*) => {$(
        impl sealed::Sealed for $t {}
        impl AtomicInt for $t {
            type Atomic = $a;
            #[inline]
            fn load_relaxed(a: &$a) -> $t {
                $load(a)
            }
            #[inline]
            fn store_relaxed(a: &$a, v: $t) {
                a.store(v, Ordering::Relaxed)
            }
            #[inline]
            unsafe fn load_guarded(p: *const $t) -> Option<$t> {
                // SAFETY: the caller's promise, which is `guard`'s.
                unsafe { guard::$g(p) }
            }
        }
        // What the views' casts rely on.
        const _: () = assert!(size_of::<$a>() == size_of::<$t>());
        const _: () = assert!(align_of::<$a>() == size_of::<$t>());
    )*};
}

atomic_int!(
    u8 => AtomicU8, load_u8, |a: &AtomicU8| a.load(Ordering::Relaxed),
    u16 => AtomicU16, load_u16, |a: &AtomicU16| a.load(Ordering::Relaxed),
    u32 => AtomicU32, load_u32, |a: &AtomicU32| a.load(Ordering::Relaxed),
    // In two 32-bit halves on 32-bit targets (see `MemView`, "Read-only
    // memory").
    u64 => AtomicU64, load_u64, Word::load_relaxed
);

/// Whatever keeps a view's memory mapped: dropped after the last access of
/// the last view sharing it.
type Owner = Arc<dyn Send + Sync>;

/// The memory behind a view; see the invariants on [`MemView`].
struct Region<'a> {
    ptr: NonNull<u8>,
    len: usize,
    owner: Option<Owner>,
    _mem: PhantomData<&'a [AtomicU8]>,
}

// SAFETY: a `Region` is a pointer and a length into memory that stays
// valid while the region lives (invariant 2) and that is accessed only
// through atomics (invariant 3), which may be shared with and sent to any
// thread; its owner is `Send + Sync` by its type. `MemView` and
// `MemViewMut` add nothing else, so this is their argument too.
unsafe impl Send for Region<'_> {}
// SAFETY: as for `Send`: every access through `&Region` is atomic.
unsafe impl Sync for Region<'_> {}

impl Clone for Region<'_> {
    fn clone(&self) -> Self {
        // Same memory, same owner (shared): invariant 2 holds for the
        // clone as long as the owner or `'a` lives.
        Region {
            ptr: self.ptr,
            len: self.len,
            owner: self.owner.clone(),
            _mem: PhantomData,
        }
    }
}

impl<'a> Region<'a> {
    /// A region of `len` bytes at `ptr`, refusing a null or not 8-aligned
    /// `ptr` (invariant 1). The owner, if any, is dropped on refusal.
    ///
    /// # Safety
    ///
    /// The caller promises invariants 2 to 4 for `[ptr, ptr + len)`.
    unsafe fn new(ptr: *mut u8, len: usize, owner: Option<Owner>) -> Result<Region<'a>> {
        let Some(nn) = NonNull::new(ptr) else {
            return Err(Error::BadPointer { addr: 0 });
        };
        // 8, not `align_of::<u64>()`, which is 4 on i686.
        if !ptr.cast::<AtomicU64>().is_aligned() {
            return Err(Error::BadPointer { addr: ptr.addr() });
        }
        Ok(Region {
            ptr: nn,
            len,
            owner,
            _mem: PhantomData,
        })
    }

    /// Owned, writable words holding `bytes` (zero-padded to whole
    /// words); the region's length is `bytes.len()`.
    fn from_bytes(bytes: &[u8]) -> Region<'static> {
        let words: Arc<Vec<AtomicU64>> = Arc::new(
            bytes
                .chunks(8)
                .map(|c| {
                    let mut w = [0u8; 8];
                    w[..c.len()].copy_from_slice(c);
                    AtomicU64::new(u64::from_ne_bytes(w))
                })
                .collect(),
        );
        // A `Vec<AtomicU64>` points at 8-aligned, non-null memory even
        // when empty (dangling then, with no byte accessible).
        let ptr = words.as_ptr().cast::<u8>().cast_mut();
        // SAFETY: 2 (with 4): the words are `8 * words.len() >= len`
        // writable bytes kept alive (and never moved) by the `Arc`, which
        // becomes the owner;
        // 3: they are atomics, only ever accessed as atomics.
        match unsafe { Region::new(ptr, bytes.len(), Some(words)) } {
            Ok(r) => r,
            // Unreachable (see above); an empty region is still correct.
            Err(_) => Region::empty(),
        }
    }

    /// A region of no bytes: a dangling, aligned pointer is fine because
    /// no byte may ever be accessed (2 to 4 hold vacuously).
    fn empty() -> Region<'static> {
        Region {
            ptr: NonNull::<u64>::dangling().cast(),
            len: 0,
            owner: None,
            _mem: PhantomData,
        }
    }

    /// The bounds-and-alignment check every access goes through: the
    /// address of byte `off` when `[off, off + size)` lies inside the
    /// region and the address is a multiple of `align` (a power of two).
    #[inline]
    fn check(&self, off: u64, size: usize, align: usize) -> Option<*mut u8> {
        let off = usize::try_from(off).ok()?;
        if off.checked_add(size)? > self.len {
            return None;
        }
        // `wrapping_add` keeps provenance and cannot be UB; the result is
        // inside the region (or one past its end when `size` is 0).
        let p = self.ptr.as_ptr().wrapping_add(off);
        (p.addr() & (align - 1) == 0).then_some(p)
    }

    /// `n` atomics of `T` from byte `off`.
    #[inline]
    fn atomics<T: AtomicInt>(&self, off: u64, n: usize) -> Option<&[T::Atomic]> {
        let p = self.check(off, n.checked_mul(size_of::<T>())?, align_of::<T::Atomic>())?;
        // SAFETY: `[p, p + n * size)` is inside the region (`check`), so
        // it is mapped for the life of `&self` (invariant 2), which bounds
        // the returned lifetime, and its size fits `isize` (one mapping);
        // `p` is aligned for `T::Atomic` (`check`), which has the size and
        // alignment of `T` (asserted where `AtomicInt` is implemented). The
        // atomics are `UnsafeCell`s, so shared references to them allow the
        // concurrent atomic writes of invariant 3.
        Some(unsafe { core::slice::from_raw_parts(p.cast::<T::Atomic>().cast_const(), n) })
    }

    /// One atomic of `T` at byte `off`.
    #[inline]
    fn atomic<T: AtomicInt>(&self, off: u64) -> Option<&T::Atomic> {
        self.atomics::<T>(off, 1)?.first()
    }

    /// A load of the `T` at byte `off` through `guard` (a relaxed atomic
    /// load, or its assembly twin that survives a fault): `None` when out
    /// of bounds, misaligned, or when the load faulted.
    #[inline]
    fn load<T: AtomicInt>(&self, off: u64) -> Option<T> {
        let p = self.check(off, size_of::<T>(), align_of::<T::Atomic>())?;
        // SAFETY: `p` is aligned and inside the region (`check`): mapped
        // (invariant 2, or a mapping that shrank, which `guard` survives)
        // and written by others only atomically (invariant 3).
        unsafe { T::load_guarded(p.cast::<T>().cast_const()) }
    }

    /// Reads `out.len()` words at `words_off` consistently with the seq
    /// at `seq_off` (S1-S4 of `vstats_abi::seqlock`, at most `attempts`
    /// attempts), one guarded call per attempt. `None` when out of bounds
    /// or misaligned.
    #[inline]
    fn read_seq(
        &self,
        seq_off: u64,
        words_off: u64,
        out: &mut [u64],
        attempts: u32,
    ) -> Option<SeqRead> {
        let seq = self.check(seq_off, 4, 4)?;
        let words = self.check(words_off, out.len().checked_mul(8)?, 8)?;
        // One run, from `words` relative to `seq`.
        let src = u32::try_from(words.addr().wrapping_sub(seq.addr())).ok()?;
        let run = [guard::Run {
            src,
            dst: 0,
            words: u32::try_from(out.len()).ok()?,
            _pad: 0,
        }];
        let attempts = attempts.max(1);
        let mut last = 0;
        for _ in 0..attempts {
            let mut seqs = [[0u32; 2]];
            // SAFETY: `seq` and `[words, words + 8 * out.len())` (which is
            // `seq + src`) are aligned and inside the region (`check`), as
            // `guard` asks; `out` is ours to write, `out.len()` words;
            // `seqs` holds one pair.
            let r = unsafe {
                guard::sweep(
                    seq.cast_const(),
                    0,
                    1,
                    &run,
                    out.as_mut_ptr(),
                    0,
                    seqs.as_mut_ptr(),
                )
            };
            if r.is_err() {
                return Some(SeqRead::Faulted);
            }
            let [s1, s3] = seqs[0];
            if s1 & 1 == 0 && s1 == s3 {
                return Some(SeqRead::Read(Ok(s1)));
            }
            last = if s1 & 1 == 1 { s1 } else { s3 };
            core::hint::spin_loop();
        }
        Some(SeqRead::Read(Err(Busy {
            seq: last,
            attempts,
        })))
    }

    /// One pass of the seq protocol over `nrec` records of `stride` bytes
    /// from byte `first` (each record's seq at its byte 0): copies `runs`
    /// of each into `dst` (`dst_stride` words per record) and stores each
    /// record's `[s1, s3]` into `seqs`. `None` when the records or the
    /// destination do not fit (nothing read); `Some(Ok(bad))`, `bad` false
    /// when every record was consistent; `Some(Err(done))` when a load
    /// faulted while record `done` was read.
    #[inline]
    pub(crate) fn sweep_seq(
        &self,
        first: u64,
        stride: u64,
        runs: &[guard::Run],
        dst: &mut [u64],
        dst_stride: usize,
        seqs: &mut [[u32; 2]],
    ) -> Option<core::result::Result<bool, usize>> {
        let nrec = seqs.len();
        if nrec == 0 {
            return Some(Ok(false));
        }
        // The bytes every record's seq and runs need, all 8-aligned.
        let need = runs
            .iter()
            .map(guard::Run::src_end)
            .max()
            .unwrap_or(0)
            .max(4);
        if stride % 8 != 0 || runs.iter().any(|r| r.src % 8 != 0 || r.dst % 8 != 0) {
            return None;
        }
        let dst_need = runs.iter().map(guard::Run::dst_end_word).max().unwrap_or(0);
        if dst_need > dst_stride
            || dst.len() < (nrec - 1).checked_mul(dst_stride)?.checked_add(dst_need)?
        {
            return None;
        }
        let span = stride.checked_mul(nrec as u64 - 1)?.checked_add(need)?;
        let base = self.check(first, usize::try_from(span).ok()?, 8)?;
        // SAFETY: every record `k < nrec` lies at `base + k * stride` with
        // its seq and runs inside `[base, base + span)`, which `check`
        // proved inside the region; `base` and `stride` are 8-aligned and
        // so is every run (checked above), the seq 4-aligned; each
        // record's destination words `[k * dst_stride, k * dst_stride +
        // dst_need)` lie in `dst` (checked above), ours to write; `seqs`
        // holds `nrec` pairs.
        let r = unsafe {
            guard::sweep(
                base.cast_const(),
                usize::try_from(stride).ok()?,
                nrec,
                runs,
                dst.as_mut_ptr(),
                dst_stride,
                seqs.as_mut_ptr(),
            )
        };
        Some(r)
    }

    /// The region `[off, off + len)`, borrowing `self`.
    fn sub(&self, off: u64, len: usize) -> Option<Region<'_>> {
        let p = self.check(off, len, 1)?;
        Some(Region {
            // In bounds of a non-null region, so never null.
            ptr: NonNull::new(p)?,
            len,
            owner: None,
            _mem: PhantomData,
        })
    }

    /// Copies exactly `[0, n)` with relaxed loads of the widest width up to
    /// 4 bytes that the position allows, with an acquire fence after the
    /// first load.
    fn copy_prefix(&self, n: usize) -> Option<Vec<u8>> {
        if n > self.len {
            return None;
        }
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let at = out.len() as u64;
            let rest = n - out.len();
            if let Some(w) = (rest >= 4).then(|| self.load::<u32>(at)).flatten() {
                out.extend_from_slice(&w.to_ne_bytes());
            } else if let Some(w) = (rest >= 2).then(|| self.load::<u16>(at)).flatten() {
                out.extend_from_slice(&w.to_ne_bytes());
            } else {
                out.push(self.load::<u8>(at)?);
            }
            if at == 0 {
                fence(Ordering::Acquire);
            }
        }
        Some(out)
    }
}

impl fmt::Debug for Region<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("owned", &self.owner.is_some())
            .finish()
    }
}

/// A read-only view of mapped memory that another party may write at any
/// time: a stats table in a file, a Xen foreign mapping, memory of a
/// test. It hands out only relaxed atomic loads (of `u8`, `u16`, `u32`,
/// `u64`, see [`AtomicInt`]), every one bounds- and alignment-checked; it
/// never forms a `&[u8]` of the memory.
///
/// `'a` bounds how long the memory is borrowed: views that own their
/// memory (a file mapping, [`MemView::from_bytes`], an owner given to
/// [`MemView::from_raw_parts`]) are `MemView<'static>`, and a
/// [`MemView::subview`] borrows its parent. Cloning shares the memory and
/// the owner, which is dropped after the last clone's last access.
///
/// # Invariants
///
/// These are the whole safety argument of [`MemView`] and [`MemViewMut`]:
///
/// 1. The pointer is non-null; a view made by a constructor starts
///    8-aligned (a subview may start anywhere inside it). Every access
///    checks the alignment of the address it touches.
/// 2. `[ptr, ptr + len)` stays mapped and readable for as long as the view
///    (or a clone) lives: its owner keeps it mapped, or, without an owner,
///    it is borrowed for `'a`. (A mapped file that shrinks stays mapped,
///    but its lost pages fault: see "Truncation".)
/// 3. The memory may be written at any time by another party, but only
///    with atomic stores (or, from another process or a hypervisor, plain
///    machine stores): never with a Rust non-atomic write racing our
///    accesses. So nothing here forms a `&u8`, `&[u8]` or `&T` of a
///    non-atomic type over it: every access goes through
///    `&AtomicU8`/`&AtomicU16`/`&AtomicU32`/`&AtomicU64`, which are
///    `UnsafeCell`s and so allow concurrent mutation.
/// 4. For a [`MemViewMut`] only: the memory is also writable.
///
/// `Send` and `Sync` follow: a view is a pointer into memory valid for its
/// life (2), accessed only atomically (3), plus an owner that is
/// `Send + Sync` by its type.
///
/// # Read-only memory
///
/// File tables are mapped `PROT_READ`. The standard library's
/// `core::sync::atomic` docs, section "Atomic accesses to read-only
/// memory", guarantee that "sufficiently small" atomic loads with
/// `Ordering::Relaxed` work on read-only memory: up to 8 bytes on `x86_64`,
/// `aarch64`, `riscv64`, `powerpc64`, `s390x` and the other 64-bit targets
/// it lists, up to 4 bytes on 32-bit ones. Any other atomic operation on
/// read-only memory is undefined behaviour. So a `MemView` loads only with
/// `Relaxed` and at most 8 bytes at a time, takes its orderings from
/// fences (as `vstats_abi::seqlock` does, step S1), and hands out atomic
/// references only through `unsafe` accessors whose callers promise the
/// same. On 32-bit targets an 8-byte load is outside that guarantee (what
/// it compiles to is not promised: without SSE2 or x87 on x86 it is a
/// `lock cmpxchg8b`, which writes and faults on a read-only mapping), so
/// there every `u64` is loaded as two
/// relaxed 32-bit loads of its halves (`vstats_abi::seqlock::Word`): the
/// copies of record words inside their seq window, where a torn pair is
/// caught exactly as a torn record is (`vstats_abi::seqlock`, "32-bit
/// consumers"), and [`MemView::load`] of a `u64`, whose halves a racing
/// write may then split: such a load is meaningful only inside a seq
/// window (this crate makes none outside one).
///
/// # Truncation
///
/// A file truncated while mapped makes loads past its new end fault
/// (`SIGBUS`). On Linux x86-64 ([`crate::mem::SURVIVES_TRUNCATION`]) the
/// view's loads ([`MemView::load`], [`MemView::copy_prefix`],
/// [`MemView::read_seq_words`]) go through fault-guarded assembly
/// routines, and the `SIGBUS` handler installed when a file is mapped
/// ([`crate::mem::install_fault_handler`]) turns a fault in them into a
/// failed load (`None`) instead of the process's death. Their effect is
/// that of relaxed atomic loads (aligned `mov`s of at most 8 bytes, or the
/// SSE2/AVX2 vector loads of the record copies, whose argument is in
/// `guard.rs`), so the argument below is unchanged; the repository's
/// `docs/abi.md`, sections 5.6 and 11, gives it in full. The atomic references of the `unsafe`
/// [`MemView::atomic`] and [`MemView::atomics`] are not guarded.
/// Elsewhere, and under Miri, the loads are relaxed atomic loads and a
/// fault is fatal.
///
/// # Examples
///
/// ```
/// use vstats_consumer::mem::MemView;
///
/// let mut bytes = [0u8; 12];
/// bytes[..4].copy_from_slice(&7u32.to_ne_bytes());
/// bytes[8..].copy_from_slice(&9u32.to_ne_bytes());
/// let view = MemView::from_bytes(&bytes);
/// assert_eq!(view.load::<u32>(0), Some(7));
/// assert_eq!(view.load::<u32>(2), None, "misaligned");
/// assert_eq!(view.load::<u64>(8), None, "past the end");
/// let tail = view.subview(8, 4).unwrap();
/// assert_eq!(tail.load::<u32>(0), Some(9));
/// assert_eq!(view.copy_prefix(5).unwrap(), bytes[..5].to_vec());
/// ```
#[derive(Clone)]
pub struct MemView<'a> {
    region: Region<'a>,
}

impl fmt::Debug for MemView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MemView").field(&self.region).finish()
    }
}

impl MemView<'static> {
    /// A view of a private, 8-aligned copy of `bytes` (for tests, property
    /// tests, fuzzing and tables built in memory); its length is
    /// `bytes.len()`.
    pub fn from_bytes(bytes: &[u8]) -> MemView<'static> {
        MemView {
            region: Region::from_bytes(bytes),
        }
    }
}

impl<'a> MemView<'a> {
    /// Wraps memory someone else mapped (e.g. a Xen foreign mapping of a
    /// stats resource). `owner`, if given, keeps the memory mapped; the
    /// view and its clones drop it after their last access (or at once
    /// when this fails).
    ///
    /// # Errors
    ///
    /// [`Error::BadPointer`] when `ptr` is null or not 8-aligned.
    ///
    /// # Safety
    ///
    /// The caller promises that:
    /// 1. `[ptr, ptr + len)` stays mapped and readable until `owner` is
    ///    dropped when one is given, else for the whole lifetime `'a`;
    /// 2. nothing in this process writes that memory with non-atomic
    ///    writes while it is mapped here (other parties may write it at
    ///    any time).
    pub unsafe fn from_raw_parts(
        ptr: *const u8,
        len: usize,
        owner: Option<Box<dyn Send + Sync>>,
    ) -> Result<MemView<'a>> {
        let owner = owner.map(Owner::from);
        // SAFETY: the caller promises invariants 2 and 3; 4 is not needed
        // for a read-only view, which never stores.
        let region = unsafe { Region::new(ptr.cast_mut(), len, owner) }?;
        Ok(MemView { region })
    }

    /// An empty view (no byte can be loaded).
    pub fn empty() -> MemView<'a> {
        MemView {
            region: Region::empty(),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.region.len
    }

    /// Whether the view has no bytes.
    pub fn is_empty(&self) -> bool {
        self.region.len == 0
    }

    /// The address of the first byte, for code that must hand the memory
    /// to something other than an atomic load (flushing caches, a copy
    /// while nothing writes). Dereferencing it is the caller's business and
    /// needs `unsafe`.
    pub fn as_ptr(&self) -> *const u8 {
        self.region.ptr.as_ptr().cast_const()
    }

    /// Relaxed atomic load of the `T` at byte `off`; `None` when
    /// `[off, off + size_of::<T>())` is not inside the view or the address
    /// is not aligned for `T`.
    #[inline]
    pub fn load<T: AtomicInt>(&self, off: u64) -> Option<T> {
        self.region.load(off)
    }

    /// The `T` at byte `off` as an atomic, checked as [`MemView::load`].
    ///
    /// # Safety
    ///
    /// The memory may be mapped read-only: the caller promises to use the
    /// reference only for `Relaxed` loads (with fences for ordering), as
    /// the seq protocol of `vstats_abi::seqlock` does. On 32-bit targets a
    /// `&AtomicU64` must be loaded with `vstats_abi::seqlock::Word::
    /// load_relaxed` (two 32-bit loads), never `AtomicU64::load`.
    #[inline]
    pub unsafe fn atomic<T: AtomicInt>(&self, off: u64) -> Option<&T::Atomic> {
        self.region.atomic::<T>(off)
    }

    /// `n` consecutive `T`s from byte `off` as atomics, checked as
    /// [`MemView::load`].
    ///
    /// # Safety
    ///
    /// As for [`MemView::atomic`]: only `Relaxed` loads through them.
    #[inline]
    pub unsafe fn atomics<T: AtomicInt>(&self, off: u64, n: usize) -> Option<&[T::Atomic]> {
        self.region.atomics::<T>(off, n)
    }

    /// The view of `[off, off + len)`, borrowing `self`; `None` when it is
    /// not inside this view.
    pub fn subview(&self, off: u64, len: usize) -> Option<MemView<'_>> {
        Some(MemView {
            region: self.region.sub(off, len)?,
        })
    }

    /// Copies exactly `[0, n)` into a new vector with relaxed loads of the
    /// widths the producer stores a table's head with: `u32` words, then,
    /// for a tail shorter than a word (which no valid table has), a `u16`
    /// and/or a `u8`. `None` when `n > len`.
    ///
    /// Publication: the producer stores every other head word, then the
    /// magic (word 0) with release ordering. The magic is loaded first and
    /// followed by an acquire fence, so a copy whose magic is valid also
    /// holds the head as it was published.
    pub fn copy_prefix(&self, n: usize) -> Option<Vec<u8>> {
        self.region.copy_prefix(n)
    }

    /// Copies the `out.len()` `u64` words at byte `words_off` consistently
    /// with the seq word at byte `seq_off`, following the reader side of
    /// `vstats_abi::seqlock` (S1-S4) with at most `attempts` attempts.
    /// `None` when either is outside the view or misaligned, or when the
    /// memory faulted (a truncated file; see [`MemView`], "Truncation");
    /// else the seq value the copy is consistent with, or [`Busy`].
    #[inline]
    pub fn read_seq_words(
        &self,
        seq_off: u64,
        words_off: u64,
        out: &mut [u64],
        attempts: u32,
    ) -> Option<core::result::Result<u32, Busy>> {
        match self.region.read_seq(seq_off, words_off, out, attempts)? {
            SeqRead::Read(r) => Some(r),
            SeqRead::Faulted => None,
        }
    }

    /// The seq sweep of `Region::sweep_seq` over this view.
    #[inline]
    pub(crate) fn sweep_seq(
        &self,
        first: u64,
        stride: u64,
        runs: &[guard::Run],
        dst: &mut [u64],
        dst_stride: usize,
        seqs: &mut [[u32; 2]],
    ) -> Option<core::result::Result<bool, usize>> {
        self.region
            .sweep_seq(first, stride, runs, dst, dst_stride, seqs)
    }

    /// As [`MemView::read_seq_words`], telling a fault apart.
    #[inline]
    pub(crate) fn read_seq(
        &self,
        seq_off: u64,
        words_off: u64,
        out: &mut [u64],
        attempts: u32,
    ) -> Option<SeqRead> {
        self.region.read_seq(seq_off, words_off, out, attempts)
    }
}

/// A writable view of shared memory: the writable twin of [`MemView`],
/// with the same bounds-and-alignment check and the same invariants (plus
/// 4: the memory is writable). It hands out atomic references, loads and
/// stores. Used by producers written by hand (the compatibility matrix),
/// fault injectors and tests that write a table while it is read.
#[derive(Clone)]
pub struct MemViewMut<'a> {
    region: Region<'a>,
}

impl fmt::Debug for MemViewMut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MemViewMut").field(&self.region).finish()
    }
}

impl MemViewMut<'static> {
    /// Writable, private, 8-aligned memory holding `bytes`; its length is
    /// `bytes.len()`.
    pub fn from_bytes(bytes: &[u8]) -> MemViewMut<'static> {
        MemViewMut {
            region: Region::from_bytes(bytes),
        }
    }
}

impl<'a> MemViewMut<'a> {
    /// Wraps writable memory someone else mapped, as
    /// [`MemView::from_raw_parts`].
    ///
    /// # Errors
    ///
    /// [`Error::BadPointer`] when `ptr` is null or not 8-aligned.
    ///
    /// # Safety
    ///
    /// As for [`MemView::from_raw_parts`], and the memory is writable for
    /// as long as it is readable.
    pub unsafe fn from_raw_parts(
        ptr: *mut u8,
        len: usize,
        owner: Option<Box<dyn Send + Sync>>,
    ) -> Result<MemViewMut<'a>> {
        let owner = owner.map(Owner::from);
        // SAFETY: the caller promises invariants 2 to 4.
        let region = unsafe { Region::new(ptr, len, owner) }?;
        Ok(MemViewMut { region })
    }

    /// A read-only view of the same memory, sharing the owner.
    pub fn view(&self) -> MemView<'a> {
        MemView {
            region: self.region.clone(),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.region.len
    }

    /// Whether the view has no bytes.
    pub fn is_empty(&self) -> bool {
        self.region.len == 0
    }

    /// The `T` at byte `off` as an atomic (any operation is allowed: the
    /// memory is writable); `None` when out of bounds or misaligned.
    #[inline]
    pub fn atomic<T: AtomicInt>(&self, off: u64) -> Option<&T::Atomic> {
        self.region.atomic::<T>(off)
    }

    /// `n` consecutive `T`s from byte `off` as atomics.
    #[inline]
    pub fn atomics<T: AtomicInt>(&self, off: u64, n: usize) -> Option<&[T::Atomic]> {
        self.region.atomics::<T>(off, n)
    }

    /// Relaxed load of the `T` at byte `off`.
    #[inline]
    pub fn load<T: AtomicInt>(&self, off: u64) -> Option<T> {
        self.region.load(off)
    }

    /// Relaxed store of `v` at byte `off`; false (storing nothing) when out
    /// of bounds or misaligned.
    #[inline]
    pub fn store<T: AtomicInt>(&self, off: u64, v: T) -> bool {
        self.atomic::<T>(off)
            .map(|a| T::store_relaxed(a, v))
            .is_some()
    }

    /// Stores `bytes` from byte `off` with relaxed stores of the widths a
    /// producer stores a head with (`u32` words; `u16`/`u8` for a tail
    /// shorter than a word). False when a store is out of bounds (the
    /// bytes before it are stored).
    pub fn store_bytes(&self, off: u64, bytes: &[u8]) -> bool {
        let mut k = 0;
        while k < bytes.len() {
            let Some(at) = off.checked_add(k as u64) else {
                return false;
            };
            let rest = &bytes[k..];
            k += match *rest {
                [a, b, c, d, ..] if self.store(at, u32::from_ne_bytes([a, b, c, d])) => 4,
                [a, b, ..] if self.store(at, u16::from_ne_bytes([a, b])) => 2,
                [a, ..] if self.store(at, a) => 1,
                _ => return false,
            };
        }
        true
    }

    /// The view of `[off, off + len)`, borrowing `self`.
    pub fn subview(&self, off: u64, len: usize) -> Option<MemViewMut<'_>> {
        Some(MemViewMut {
            region: self.region.sub(off, len)?,
        })
    }
}

/// The constructors of [`Table`] from raw memory live here, beside the
/// invariants they establish.
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
        // SAFETY: the caller promises 1 and 2, invariants 2 and 3 of the
        // view for as long as the Table lives. The Table keeps the view
        // private and lends only borrowed subviews, so no clone outlives it
        // and `'static` is never relied on beyond the Table's life.
        let view = unsafe { MemView::from_raw_parts(ptr, len, None) }?;
        Table::from_view(view)
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
        // the view holds, is dropped) and 2 (no racing non-atomic writes),
        // which are invariants 2 and 3 of the view.
        let view = unsafe { MemView::from_raw_parts(ptr, len, Some(owner)) }?;
        Table::from_view(view)
    }
}

/// Test support: memory a test owns and writes with atomic stores while a
/// [`crate::Table`] reads it, the same way another process would.
#[cfg(test)]
pub(crate) mod test_mem {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::MemViewMut;
    use crate::{Result, Table};

    /// 8-aligned, writable shared memory.
    #[derive(Clone, Debug)]
    pub(crate) struct SharedMem {
        mem: MemViewMut<'static>,
    }

    impl SharedMem {
        /// Memory holding `bytes` (padded with zeros to whole words); its
        /// length as a mapping is `bytes.len()`.
        pub(crate) fn from_bytes(bytes: &[u8]) -> SharedMem {
            SharedMem {
                mem: MemViewMut::from_bytes(bytes),
            }
        }

        /// A table over this memory via `Table::from_owned`.
        pub(crate) fn table(&self) -> Result<Table> {
            let r = &self.mem.region;
            // SAFETY: the clone handed over as the owner keeps the memory
            // alive as long as the table; tests write it only atomically.
            unsafe { Table::from_owned(r.ptr.as_ptr(), r.len, Box::new(self.mem.clone())) }
        }

        /// A table over this memory via `Table::from_raw` with an explicit
        /// length (which may be shorter than the memory).
        pub(crate) fn table_raw(&self, len: usize) -> Result<Table> {
            assert!(len <= self.mem.len());
            // SAFETY: the memory outlives the table only while `self`
            // lives; every test keeps `self` alive longer than the table
            // (the borrow below does not enforce it, the tests do).
            unsafe { Table::from_raw(self.mem.region.ptr.as_ptr(), len) }
        }

        /// Stores a `u64` at byte `off` (8-aligned).
        pub(crate) fn store_u64(&self, off: usize, v: u64) {
            let a = self.mem.atomic::<u64>(off as u64).expect("in bounds");
            a.store(v, Ordering::Release);
        }

        /// The `u32` at byte `off` (4-aligned) as an atomic.
        pub(crate) fn u32_at(&self, off: usize) -> &AtomicU32 {
            self.mem.atomic::<u32>(off as u64).expect("in bounds")
        }

        /// Stores a `u32` at byte `off` (4-aligned).
        pub(crate) fn store_u32(&self, off: usize, v: u32) {
            self.u32_at(off).store(v, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn null_and_misaligned_pointers_are_refused() {
        // SAFETY: a null pointer is refused before any access.
        let e = unsafe { Table::from_raw(core::ptr::null(), 4096) }.unwrap_err();
        assert!(matches!(e, Error::BadPointer { addr: 0 }), "{e:?}");
        // 8-aligned on every target (a `u64` is 4-aligned on i686).
        let words = [const { AtomicU64::new(0) }; 4];
        let p = words.as_ptr().cast::<u8>().wrapping_add(4);
        // SAFETY: `[p, p + 16)` lies inside `words`, which outlives the
        // call; the misaligned pointer is refused before any access.
        let e = unsafe { Table::from_raw(p, 16) }.unwrap_err();
        assert!(matches!(e, Error::BadPointer { .. }), "{e:?}");
    }

    #[test]
    fn foreign_memory_must_be_aligned() {
        // 8-aligned on every target (a `u64` is 4-aligned on i686).
        let words = Arc::new([const { AtomicU64::new(0) }; 4]);
        let p = words.as_ptr().cast::<u8>().wrapping_add(4);
        // SAFETY: `[p, p + 8)` lies inside `words`, which the owner keeps
        // alive; the misaligned pointer is refused before any access.
        let v = unsafe { MemView::from_raw_parts(p, 8, Some(Box::new(words.clone()))) };
        assert!(v.is_err());
    }

    #[test]
    fn owned_view_loads_aligned_words_only() {
        let mut b = vec![0u8; 20];
        b[0..4].copy_from_slice(&7u32.to_ne_bytes());
        b[8..16].copy_from_slice(&u64::MAX.to_ne_bytes());
        b[16..20].copy_from_slice(&9u32.to_ne_bytes());
        let v = MemView::from_bytes(&b);
        assert_eq!(v.len(), 20);
        assert_eq!(v.load::<u32>(0), Some(7));
        assert_eq!(v.load::<u64>(8), Some(u64::MAX));
        assert_eq!(v.load::<u32>(16), Some(9));
        assert_eq!(v.load::<u64>(16), None, "past the end");
        assert_eq!(v.load::<u32>(2), None, "misaligned");
        assert_eq!(v.load::<u64>(4), None, "misaligned");
        assert_eq!(v.load::<u32>(u64::MAX), None, "offset overflow");
        // Exactly n bytes, whatever n (was rounded down to words in the
        // checker's copy): the tail comes from narrower loads.
        assert_eq!(v.copy_prefix(7), Some(b[..7].to_vec()));
        assert_eq!(v.copy_prefix(20), Some(b.clone()));
        assert_eq!(v.copy_prefix(100), None, "longer than the view");
        assert!(MemView::from_bytes(&[]).is_empty());
        assert_eq!(MemView::from_bytes(&[]).load::<u32>(0), None);
        assert_eq!(MemView::from_bytes(&[]).copy_prefix(0), Some(Vec::new()));
    }

    #[test]
    fn copy_prefix_copies_every_tail_length() {
        let b: Vec<u8> = (1..=23).collect();
        let v = MemView::from_bytes(&b);
        for n in 0..=b.len() {
            assert_eq!(v.copy_prefix(n).as_deref(), Some(&b[..n]), "n = {n}");
        }
        // From a subview that starts off a word boundary too.
        let s = v.subview(3, 17).unwrap();
        for n in 0..=17 {
            assert_eq!(s.copy_prefix(n).as_deref(), Some(&b[3..3 + n]), "n = {n}");
        }
    }

    #[test]
    fn subviews_check_bounds_and_real_alignment() {
        let b: Vec<u8> = (0..32).collect();
        let v = MemView::from_bytes(&b);
        let s = v.subview(4, 12).unwrap();
        assert_eq!(s.len(), 12);
        assert_eq!(s.load::<u32>(0), Some(u32::from_ne_bytes([4, 5, 6, 7])));
        assert_eq!(s.load::<u64>(0), None, "address 4 is not 8-aligned");
        assert_eq!(
            s.load::<u64>(4),
            Some(u64::from_ne_bytes([8, 9, 10, 11, 12, 13, 14, 15]))
        );
        assert_eq!(s.load::<u32>(12), None, "past the subview");
        assert_eq!(s.load::<u8>(11), Some(15));
        assert!(v.subview(30, 3).is_none());
        assert!(v.subview(u64::MAX, 1).is_none());
        assert!(v.subview(32, 0).unwrap().is_empty());
    }

    #[test]
    fn writable_twin_stores_what_the_view_loads() {
        // Each byte is accessed with one width only: Miri does not model
        // overlapping atomic accesses of different sizes.
        let w = MemViewMut::from_bytes(&[0u8; 32]);
        let r = w.view();
        assert!(w.store::<u64>(8, 42));
        assert!(w.store_bytes(16, &[1, 2, 3, 4, 5, 6, 7]));
        assert!(!w.store::<u64>(32, 1), "past the end");
        assert!(!w.store::<u32>(2, 1), "misaligned");
        assert_eq!(r.load::<u64>(8), Some(42));
        assert_eq!(r.load::<u32>(16), Some(u32::from_ne_bytes([1, 2, 3, 4])));
        assert_eq!(r.load::<u16>(20), Some(u16::from_ne_bytes([5, 6])));
        assert_eq!(r.load::<u8>(22), Some(7));
        // From an odd offset: a byte, then a u16, then out of bounds.
        assert!(!w.store_bytes(29, &[8, 9, 9, 10]), "runs past the end");
        assert_eq!(r.load::<u8>(29), Some(8));
        assert_eq!(
            r.load::<u16>(30),
            Some(u16::from_ne_bytes([9, 9])),
            "stored up to the end"
        );
        w.atomic::<u32>(0).unwrap().store(5, Ordering::Release);
        assert_eq!(r.load::<u32>(0), Some(5));
        let sub = w.subview(8, 8).unwrap();
        assert!(sub.store::<u64>(0, 43));
        assert_eq!(r.load::<u64>(8), Some(43));
    }

    #[test]
    fn seq_words_are_read_consistently() {
        let w = MemViewMut::from_bytes(&[0u8; 32]);
        assert!(w.store::<u32>(0, 4));
        assert!(w.store::<u64>(8, 11) && w.store::<u64>(16, 12));
        let r = w.view();
        let mut out = [0u64; 2];
        assert_eq!(r.read_seq_words(0, 8, &mut out, 1), Some(Ok(4)));
        assert_eq!(out, [11, 12]);
        assert!(w.store::<u32>(0, 5));
        assert_eq!(
            r.read_seq_words(0, 8, &mut out, 3),
            Some(Err(Busy {
                seq: 5,
                attempts: 3
            }))
        );
        let mut long = [0u64; 4];
        assert_eq!(r.read_seq_words(0, 8, &mut long, 1), None, "past the end");
        assert_eq!(r.read_seq_words(2, 8, &mut out, 1), None, "misaligned seq");
    }
}
