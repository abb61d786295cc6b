//! Every `unsafe` operation of the crate: raw libc calls, the guest memory
//! mapping, the `KVM_GET_STATS_FD` ioctl and the vCPU kick signal.
//!
//! The rest of the crate is `#![deny(unsafe_code)]`; this module opts in
//! and wraps each operation in a safe function whose arguments cannot break
//! the invariant named in its `// SAFETY:` comment.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::thread::JoinHandleExt;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::{Builder, JoinHandle, Scope, ScopedJoinHandle, Thread};

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;

/// `KVM_GET_STATS_FD`: `_IO(KVMIO, 0xce)`, valid on VM and vCPU fds (kernel
/// 5.14+). kvm-ioctls 0.25 does not wrap it.
const KVM_GET_STATS_FD: u64 = (0xAE << 8) | 0xCE;

/// The kernel thread id of the calling thread.
pub(crate) fn gettid() -> i32 {
    // SAFETY: gettid(2) has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

/// An anonymous, private, page-aligned host mapping that backs guest RAM.
pub(crate) struct GuestMemory {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; it is only
// written through `&mut self` (`write`) before the vCPUs start, and the
// guest's own accesses go through KVM, not through Rust references.
unsafe impl Send for GuestMemory {}
// SAFETY: `&GuestMemory` only exposes the mapping's address and length.
unsafe impl Sync for GuestMemory {}

impl GuestMemory {
    /// Maps `len` bytes (a non-zero multiple of the page size) of zeroed
    /// memory.
    pub(crate) fn new(len: usize) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: an anonymous private mapping at a kernel-chosen address
        // does not alias any existing memory; the result is checked below.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(addr.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Self { ptr, len })
    }

    /// Copies `bytes` into guest memory at `offset`.
    pub(crate) fn write(&mut self, offset: usize, bytes: &[u8]) -> io::Result<()> {
        let end = offset
            .checked_add(bytes.len())
            .filter(|&end| end <= self.len)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        debug_assert!(end <= self.len);
        // In bounds (checked above), so this stays inside the mapping.
        let dst = self.ptr.as_ptr().wrapping_add(offset);
        // SAFETY: `dst..dst + bytes.len()` lies inside the live mapping
        // (`end <= len` above), `&mut self` excludes other Rust accesses to
        // it, and a Rust slice cannot overlap this anonymous mapping.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
        Ok(())
    }

    /// Host virtual address of the mapping.
    pub(crate) fn host_addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe exactly the mapping created in `new`,
        // which nothing else unmaps; no Rust reference into it outlives
        // `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// Registers `mem` as memory slot `slot` at guest physical `guest_phys`.
///
/// The caller keeps `mem` mapped for as long as any vCPU of the VM may run:
/// `mem` lives in an `Arc` held by the VM and by every vCPU thread, each
/// declared after the vCPU fds it outlives.
pub(crate) fn register_memory(
    vm: &VmFd,
    slot: u32,
    guest_phys: u64,
    mem: &GuestMemory,
) -> Result<(), kvm_ioctls::Error> {
    let region = kvm_userspace_memory_region {
        slot,
        flags: 0,
        guest_phys_addr: guest_phys,
        memory_size: mem.len() as u64,
        userspace_addr: mem.host_addr(),
    };
    // SAFETY: the region describes a live, page-aligned mapping of exactly
    // `memory_size` bytes that outlives every vCPU (see the doc comment),
    // and the slot is not used by anything else; Rust never takes
    // references into the mapping once it is registered, so the guest's
    // writes cannot alias Rust data.
    unsafe { vm.set_user_memory_region(region) }
}

/// Opens the binary statistics file of a VM or vCPU fd (`KVM_GET_STATS_FD`).
pub(crate) fn get_stats_fd(fd: &impl AsRawFd) -> io::Result<File> {
    // SAFETY: KVM_GET_STATS_FD takes no argument and only returns a new fd
    // (or -1); `fd` is a valid open KVM VM/vCPU descriptor.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), KVM_GET_STATS_FD as _, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `rc` is a freshly created descriptor that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(rc) };
    Ok(File::from(owned))
}

extern "C" fn kick_handler(_signal: libc::c_int) {}

/// Signals whose no-op handler is already installed by this process.
static INSTALLED: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Installs a no-op handler for `signal` without `SA_RESTART`, so that the
/// signal interrupts `KVM_RUN` (and sleeps) with `EINTR`. Idempotent.
pub(crate) fn install_kick_handler(signal: i32) -> io::Result<()> {
    let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    if installed.contains(&signal) {
        return Ok(());
    }
    // SAFETY: `sigaction` is a plain C struct for which all-zero bytes are a
    // valid value (no handler, empty flags).
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = kick_handler as extern "C" fn(libc::c_int) as libc::sighandler_t;
    action.sa_flags = 0;
    // SAFETY: `sa_mask` is a valid, writable sigset_t.
    let rc = unsafe { libc::sigemptyset(&mut action.sa_mask) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `action` is fully initialised and its handler is an
    // async-signal-safe function that does nothing; the old action is not
    // requested.
    let rc = unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    installed.push(signal);
    Ok(())
}

/// Unblocks `signal` in the calling thread.
pub(crate) fn unblock_signal(signal: i32) -> io::Result<()> {
    // SAFETY: all-zero bytes are a valid sigset_t; it is initialised by
    // sigemptyset right below.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable sigset_t.
    let rc = unsafe { libc::sigemptyset(&mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `set` is initialised and `signal` is checked by the kernel.
    let rc = unsafe { libc::sigaddset(&mut set, signal) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `set` is initialised; the old mask is not requested.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Sends `signal` to the thread behind `handle`.
pub(crate) fn kick_thread<T>(handle: &JoinHandle<T>, signal: i32) -> io::Result<()> {
    let thread = handle.as_pthread_t();
    // SAFETY: a live JoinHandle means the thread has not been joined (or
    // detached), so its pthread_t is valid even if the thread has already
    // exited; the signal number is checked by the callee.
    let rc = unsafe { libc::pthread_kill(thread, signal) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// A joinable thread that can be kicked with a signal: a plain thread, or a
/// scoped one whose pthread id the thread records itself (a
/// `ScopedJoinHandle` does not expose it).
///
/// Invariant: in the `Scoped` variant, `pthread` is written only by the
/// thread behind `handle`, first thing, with its own `pthread_self()`; the
/// cell is private to this module.
pub(crate) enum KickableThread<'s, T> {
    Owned(JoinHandle<T>),
    Scoped {
        handle: ScopedJoinHandle<'s, T>,
        pthread: Arc<OnceLock<libc::pthread_t>>,
    },
}

impl<T: Send + 'static> KickableThread<'static, T> {
    /// Spawns a plain thread.
    pub(crate) fn spawn(
        builder: Builder,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> io::Result<Self> {
        builder.spawn(f).map(KickableThread::Owned)
    }
}

impl<'s, T: Send + 's> KickableThread<'s, T> {
    /// Spawns a thread in `scope`.
    pub(crate) fn spawn_scoped(
        builder: Builder,
        scope: &'s Scope<'s, '_>,
        f: impl FnOnce() -> T + Send + 's,
    ) -> io::Result<Self> {
        let pthread = Arc::new(OnceLock::new());
        let cell = Arc::clone(&pthread);
        let handle = builder.spawn_scoped(scope, move || {
            // SAFETY: pthread_self(3) has no preconditions and cannot fail.
            let _ = cell.set(unsafe { libc::pthread_self() });
            drop(cell);
            f()
        })?;
        Ok(KickableThread::Scoped { handle, pthread })
    }

    pub(crate) fn is_finished(&self) -> bool {
        match self {
            KickableThread::Owned(h) => h.is_finished(),
            KickableThread::Scoped { handle, .. } => handle.is_finished(),
        }
    }

    fn thread(&self) -> &Thread {
        match self {
            KickableThread::Owned(h) => h.thread(),
            KickableThread::Scoped { handle, .. } => handle.thread(),
        }
    }

    /// Unparks the thread and sends it `signal`. A scoped thread that has
    /// not recorded its id yet is only unparked (it has not reached any
    /// blocking call; callers retry until the thread has finished).
    pub(crate) fn kick(&self, signal: i32) -> io::Result<()> {
        self.thread().unpark();
        match self {
            KickableThread::Owned(h) => kick_thread(h, signal),
            KickableThread::Scoped { pthread, .. } => {
                let Some(&thread) = pthread.get() else {
                    return Ok(());
                };
                // SAFETY: by the type's invariant `thread` is the pthread id
                // of the thread behind `handle`; `&self` holds that handle,
                // not yet joined, and a scoped thread is detached only when
                // its handle is dropped, so the id is still valid (even if
                // the thread has exited). The signal number is checked by
                // the callee.
                let rc = unsafe { libc::pthread_kill(thread, signal) };
                if rc != 0 {
                    return Err(io::Error::from_raw_os_error(rc));
                }
                Ok(())
            }
        }
    }

    pub(crate) fn join(self) -> std::thread::Result<T> {
        match self {
            KickableThread::Owned(h) => h.join(),
            KickableThread::Scoped { handle, .. } => handle.join(),
        }
    }
}
