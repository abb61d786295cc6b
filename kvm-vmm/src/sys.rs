//! Every `unsafe` operation of the crate: raw libc calls, the guest memory
//! mapping, the `KVM_GET_STATS_FD` ioctl, the vCPU kick signal and the
//! second mapping of each vCPU's `kvm_run` page (for `immediate_exit`).
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
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::{Builder, JoinHandle, Scope, ScopedJoinHandle, Thread};

use kvm_bindings::{kvm_run, kvm_userspace_memory_region};
use kvm_ioctls::{VcpuFd, VmFd};

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

/// Bytes of `struct kvm_run` this crate maps: all of it lies in the vCPU
/// mapping's first page (page offset 0), which is the run page.
const KVM_RUN_LEN: usize = std::mem::size_of::<kvm_run>();
const _: () = assert!(KVM_RUN_LEN <= 4096, "kvm_run fits the run page");
/// Where `immediate_exit` lies in `struct kvm_run`.
const IMMEDIATE_EXIT: usize = std::mem::offset_of!(kvm_run, immediate_exit);
const _: () = assert!(IMMEDIATE_EXIT < KVM_RUN_LEN);

/// A mapping of a vCPU's `kvm_run` page of its own, so that any thread can
/// set `immediate_exit` while the vCPU thread owns the [`VcpuFd`] (and
/// kvm-ioctls' mapping of the same page).
///
/// Invariants: 1. `ptr` is the start of a live `MAP_SHARED` mapping of
/// `KVM_RUN_LEN` bytes at offset 0 of a vCPU fd, created in
/// [`RunPage::map`] and unmapped only in `Drop`; the mapping holds its own
/// reference to the file, so it stays valid after the vCPU fd is closed.
/// 2. Through this mapping the crate only ever stores to the
/// `immediate_exit` byte, atomically.
#[derive(Debug)]
pub(crate) struct RunPage {
    ptr: NonNull<u8>,
}

// SAFETY: `RunPage` is an address of a mapping it owns (invariant 1); the
// only access through it is an atomic byte store (invariant 2), which is
// sound from any thread.
unsafe impl Send for RunPage {}
// SAFETY: as for `Send`: `&RunPage` allows only the atomic store.
unsafe impl Sync for RunPage {}

impl RunPage {
    /// Maps the run page of `vcpu` (read-write, shared with the kernel and
    /// with kvm-ioctls' own mapping).
    pub(crate) fn map(vcpu: &VcpuFd) -> io::Result<Self> {
        // SAFETY: a new shared mapping of a vCPU fd at a kernel-chosen
        // address aliases no Rust memory; KVM maps the run page at offset
        // 0 for any length up to the vCPU mmap size, which is at least one
        // page (`KVM_RUN_LEN <= 4096`). The result is checked below.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                KVM_RUN_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                vcpu.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(addr.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Self { ptr })
    }

    /// Sets `kvm_run.immediate_exit` to 1: from now on every `KVM_RUN` of
    /// this vCPU returns `EINTR` before entering the guest. A `KVM_RUN`
    /// already in the guest is not affected; a signal ends it.
    pub(crate) fn request_immediate_exit(&self) {
        // In bounds (`IMMEDIATE_EXIT < KVM_RUN_LEN`, asserted above).
        let byte = self.ptr.as_ptr().wrapping_add(IMMEDIATE_EXIT);
        // SAFETY: `byte` lies inside the live mapping (invariant 1) and a
        // `u8` is always aligned. No Rust reference covers this mapping
        // (invariant 2); the kernel only reads the byte (at `KVM_RUN`
        // entry), and kvm-ioctls writes it only in `set_kvm_immediate_exit`,
        // which this crate never calls, through its own mapping: accesses
        // from outside the Rust abstract machine, like the kernel's own
        // writes to the run page, so no non-atomic Rust access races with
        // this store.
        let flag = unsafe { AtomicU8::from_ptr(byte) };
        // Release: ordered before the kick signal that follows it.
        flag.store(1, Ordering::Release);
    }
}

impl Drop for RunPage {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `KVM_RUN_LEN` describe exactly the mapping
        // created in `map`, which nothing else unmaps (invariant 1); no
        // reference into it exists.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), KVM_RUN_LEN);
        }
    }
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

#[cfg(test)]
mod tests {
    use kvm_ioctls::Kvm;

    use super::*;

    /// `immediate_exit` written through the crate's own mapping is the
    /// byte KVM reads: `KVM_RUN` returns `EINTR` without entering the
    /// guest (which has no memory and no code: entering it would fail
    /// differently or never return).
    #[test]
    fn immediate_exit_through_own_mapping() {
        let kvm = match Kvm::new() {
            Ok(kvm) => kvm,
            Err(e) => {
                println!("skipped: /dev/kvm unavailable: {e}");
                return;
            }
        };
        let vm = kvm.create_vm().unwrap();
        let mut vcpu = vm.create_vcpu(0).unwrap();
        let page = RunPage::map(&vcpu).unwrap();
        assert_eq!(vcpu.get_kvm_run().immediate_exit, 0);
        page.request_immediate_exit();
        assert_eq!(vcpu.get_kvm_run().immediate_exit, 1, "one page, two maps");
        for _ in 0..2 {
            let e = vcpu.run().expect_err("KVM_RUN returns at once");
            assert_eq!(e.errno(), libc::EINTR);
        }
        // The mapping outlives the vCPU fd (it holds the file).
        drop(vcpu);
        page.request_immediate_exit();
    }
}
