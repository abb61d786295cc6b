//! The only unsafe code of the crate: a second, read-only mapping of a
//! table file seen as atomics (for the protocol-only reader loops) or
//! copied with `memcpy` (the hardware limit), and pinning a thread to a
//! CPU.
//!
//! Invariants of [`FileView`]:
//!
//! 1. `map` is a read-only shared mapping of `len` bytes, page aligned,
//!    alive as long as the view;
//! 2. the file is never truncated while it is mapped (the fixtures only
//!    remove it, after the view is dropped);
//! 3. in this process the bytes are written only with atomic stores (the
//!    producer's), so atomic loads through `&AtomicU32`/`&AtomicU64` are
//!    sound at any time; a non-atomic copy is sound only while nobody
//!    writes ([`FileView::copy_quiescent`]).

use std::{
    fs::File,
    io,
    path::Path,
    sync::atomic::{AtomicU32, AtomicU64},
};

use memmap2::{MmapOptions, MmapRaw};

/// A read-only mapping of a table file, separate from the consumer's.
#[derive(Debug)]
pub struct FileView {
    map: MmapRaw,
}

impl FileView {
    /// Maps the whole file at `path` read-only and shared.
    ///
    /// # Errors
    ///
    /// Opening or mapping the file.
    pub fn open(path: &Path) -> io::Result<FileView> {
        let file = File::open(path)?;
        let map = MmapOptions::new().map_raw_read_only(&file)?;
        Ok(FileView { map })
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the mapping is empty.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// The `u32` at byte `off` as an atomic, `None` out of bounds or
    /// misaligned.
    pub fn atomic_u32(&self, off: usize) -> Option<&AtomicU32> {
        if off % 4 != 0 || off.checked_add(4)? > self.len() {
            return None;
        }
        let p = self.map.as_ptr().wrapping_add(off);
        // SAFETY: `[p, p + 4)` is inside the mapping (checked), which lives
        // as long as `self` (invariant 1); `p` is 4-aligned (page-aligned
        // base, `off % 4 == 0`); `AtomicU32` is an `UnsafeCell`, and the
        // memory is only written atomically (invariant 3). We only load
        // through it with `Relaxed`, which std allows on read-only memory.
        Some(unsafe { &*p.cast::<AtomicU32>() })
    }

    /// `n` `u64`s from byte `off` as atomics, `None` out of bounds or
    /// misaligned.
    pub fn atomic_u64s(&self, off: usize, n: usize) -> Option<&[AtomicU64]> {
        let end = off.checked_add(n.checked_mul(8)?)?;
        if off % 8 != 0 || end > self.len() {
            return None;
        }
        let p = self.map.as_ptr().wrapping_add(off);
        // SAFETY: `[p, p + 8n)` is inside the mapping (checked; its length
        // fits `isize` because it is one mapping), alive as long as `self`
        // (invariant 1), 8-aligned; atomics are `UnsafeCell`s and the memory
        // is only written atomically (invariant 3).
        Some(unsafe { std::slice::from_raw_parts(p.cast::<AtomicU64>(), n) })
    }

    /// Copies bytes `[off, off + out.len())` into `out` with one
    /// `memcpy` (`ptr::copy_nonoverlapping`): the hardware limit a
    /// snapshot is compared with. Returns false, copying nothing, when the
    /// range is outside the mapping.
    ///
    /// # Safety
    ///
    /// The caller promises that nothing writes the range during the copy
    /// (a plain copy racing an atomic store is a data race); the
    /// benchmarks call it while the producer is idle.
    pub unsafe fn copy_quiescent(&self, off: usize, out: &mut [u8]) -> bool {
        match off.checked_add(out.len()) {
            Some(end) if end <= self.len() => {}
            _ => return false,
        }
        let p = self.map.as_ptr().wrapping_add(off);
        // SAFETY: the source range is inside the mapping (checked above) and
        // alive (invariant 1); `out` is a distinct private buffer; nothing
        // writes the source meanwhile (the caller's promise).
        unsafe { std::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), out.len()) };
        true
    }
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

impl FileView {
    /// Evicts the whole mapping from the caches (and so the table, from
    /// every mapping of the file).
    pub fn flush_caches(&self) {
        flush_range(self.map.as_ptr(), self.len());
    }
}

/// Evicts `words` from the caches.
pub fn flush_words(words: &[u64]) {
    flush_range(words.as_ptr().cast(), std::mem::size_of_val(words));
}

impl crate::fixture::ShmFixture {
    /// `memcpy` of table bytes `[off, off + out.len())` into `out` (see
    /// [`FileView::copy_quiescent`]); false when the range is outside the
    /// table.
    pub fn memcpy(&self, off: usize, out: &mut [u8]) -> bool {
        // SAFETY: the fixture's table file lives in a directory private to
        // this process, written only through the fixture's record writers,
        // which borrow the fixture mutably: while `&self` is held none
        // exists, so nothing writes during the copy.
        unsafe { self.view.copy_quiescent(off, out) }
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
