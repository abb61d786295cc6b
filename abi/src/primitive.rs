//! The atomics the seq protocol uses: `core`'s normally, loom's under
//! `--cfg loom` so that the model checks the very code the crates run;
//! and the one reinterpretation the crate needs, [`halves`], its only
//! `unsafe` code.

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

// What `halves` relies on: the pair covers exactly the word's bytes, and
// the word's address is aligned for both halves.
const _: () = {
    use core::mem::{align_of, size_of};
    assert!(
        size_of::<core::sync::atomic::AtomicU64>()
            == size_of::<[core::sync::atomic::AtomicU32; 2]>()
    );
    assert!(align_of::<core::sync::atomic::AtomicU64>() == 8);
    assert!(align_of::<core::sync::atomic::AtomicU32>() == 4);
};

/// The 64-bit atomic `word` as its two 32-bit halves, the one at the lower
/// address first: how a 32-bit reader loads a counter (see
/// [`crate::seqlock`], "32-bit consumers"). Always `core`'s atomics, loom
/// or not: the words of a mapped table are plain memory.
#[allow(unsafe_code)]
#[inline]
pub(crate) fn halves(word: &core::sync::atomic::AtomicU64) -> &[core::sync::atomic::AtomicU32; 2] {
    // SAFETY: `word.as_ptr()` points at the 8 bytes of a live
    // `AtomicU64`, 8-aligned (asserted above for every target), so the
    // pointer is aligned, and the bytes in bounds, for `[AtomicU32; 2]`,
    // which has the same size (asserted above) and no padding. Both types
    // are `UnsafeCell`s over all their bytes, so the shared reference we
    // return allows exactly the concurrent atomic mutation `&AtomicU64`
    // allows, and it borrows `word`, so it cannot outlive it. Every
    // bit-pattern is a valid `u32`.
    unsafe { &*word.as_ptr().cast::<[core::sync::atomic::AtomicU32; 2]>() }
}
