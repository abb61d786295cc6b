//! The only unsafe code of the crate: the seq word and counter words of
//! a record as atomics for the protocol-only reader loops, a `memcpy` of
//! a table mapping (the hardware limit), flushing it from the caches, and
//! pinning a thread to a CPU.
//!
//! The table is seen through the consumer's [`MemView`] (a read-only,
//! shared mapping of the file, separate from the consumer's own), whose
//! invariants (`vstats_consumer::mem::MemView`, "Invariants") every block
//! here relies on. In addition:
//!
//! 1. the file is never truncated while it is mapped (the fixtures only
//!    remove it, after the view is dropped);
//! 2. in this process the bytes are written only with atomic stores (the
//!    producer's), so a non-atomic copy is sound only while nobody writes
//!    ([`copy_quiescent`]).

use std::io;

use vstats_consumer::mem::MemView;

use crate::fixture::RecordRef;

/// Record `off` of `view` (`words` counter words after its 8-byte prefix)
/// as atomics; `None` out of bounds or misaligned.
pub fn record_ref<'a>(view: &'a MemView<'_>, off: usize, words: usize) -> Option<RecordRef<'a>> {
    let off = u64::try_from(off).ok()?;
    let counters = off.checked_add(u64::from(vstats_abi::record::RECORD_PREFIX))?;
    // SAFETY: the mapping is read-only; `RecordRef`'s contract (its type
    // docs) is that its atomics are only loaded with `Relaxed`, which is
    // what the benchmarks' reader loops and `vstats_abi::seqlock` do.
    let seq = unsafe { view.atomic::<u32>(off) }?;
    // SAFETY: as above.
    let words = unsafe { view.atomics::<u64>(counters, words) }?;
    Some(RecordRef { seq, words })
}

/// Copies bytes `[off, off + out.len())` of `view` into `out` with one
/// `memcpy` (`ptr::copy_nonoverlapping`): the hardware limit a snapshot is
/// compared with. Returns false, copying nothing, when the range is
/// outside the view.
///
/// # Safety
///
/// The caller promises that nothing writes the range during the copy (a
/// plain copy racing an atomic store is a data race); the benchmarks call
/// it while the producer is idle.
pub unsafe fn copy_quiescent(view: &MemView<'_>, off: usize, out: &mut [u8]) -> bool {
    match off.checked_add(out.len()) {
        Some(end) if end <= view.len() => {}
        _ => return false,
    }
    let p = view.as_ptr().wrapping_add(off);
    // SAFETY: the source range is inside the view (checked above) and
    // mapped as long as it lives (its invariant 2); `out` is a distinct
    // private buffer; nothing writes the source meanwhile (the caller's
    // promise).
    unsafe { std::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), out.len()) };
    true
}

/// Evicts the cachelines of `[p, p + len)` from every cache level
/// (`clflush` each line, then `mfence`); does nothing off x86-64.
fn flush_range(p: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_clflush, _mm_mfence};
        let mut off = 0;
        while off < len {
            // SAFETY: the callers pass a range that is mapped and readable
            // for the duration of the call (`clflush` needs read access
            // only, and changes no memory contents); SSE2 is part of the
            // x86-64 baseline.
            unsafe { _mm_clflush(p.wrapping_add(off)) };
            off += 64;
        }
        // SAFETY: SSE2 is part of the x86-64 baseline.
        unsafe { _mm_mfence() };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, len);
}

/// Evicts the whole of `view` from the caches (and so the table, from
/// every mapping of the file).
pub fn flush_view(view: &MemView<'_>) {
    flush_range(view.as_ptr(), view.len());
}

/// Evicts `words` from the caches.
pub fn flush_words(words: &[u64]) {
    flush_range(words.as_ptr().cast(), std::mem::size_of_val(words));
}

impl crate::fixture::ShmFixture {
    /// `memcpy` of table bytes `[off, off + out.len())` into `out` (see
    /// [`copy_quiescent`]); false when the range is outside the table.
    pub fn memcpy(&self, off: usize, out: &mut [u8]) -> bool {
        // SAFETY: the fixture's table file lives in a directory private to
        // this process, written only through the fixture's record writers,
        // which borrow the fixture mutably: while `&self` is held none
        // exists, so nothing writes during the copy.
        unsafe { copy_quiescent(&self.view, off, out) }
    }
}

/// Pins the calling thread to CPU `cpu`.
///
/// # Errors
///
/// `sched_setaffinity` failed (e.g. the CPU does not exist or is not in
/// the process's allowed set).
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: `cpu_set_t` is a plain bit array; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu < CPU_SETSIZE` (checked), so the bit lies inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid, initialised `cpu_set_t` of the size passed;
    // pid 0 is the calling thread.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The CPUs the calling thread may run on, in increasing order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is writable and of the size passed; pid 0 is the
    // calling thread.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `c < CPU_SETSIZE`, inside `set`.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// Raises the soft limit of open file descriptors to the hard limit.
///
/// # Errors
///
/// `getrlimit` or `setrlimit` failed.
pub fn raise_fd_limit() -> io::Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable `rlimit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: `lim` is a valid `rlimit` whose soft limit does not exceed
    // its hard limit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
