//! libxenforeignmemory: open a handle, ask a resource's size, map and
//! unmap a stats table read-only, and classify each failure by what its
//! `errno` means to Xen and privcmd (the table on [`Error`]).
//!
//! # Threads
//!
//! A `xenforeignmemory_handle` is, on Linux, the privcmd file descriptor,
//! some flags and the logger; a resource mapping is an `mmap` of that
//! descriptor plus a small record the library allocates. Neither holds
//! thread-local state. `xenforeignmemory.h` restricts their use only
//! across `fork` (a child must not use its parent's handle): a handle
//! belongs to a process, not to a thread, so it may be moved to and
//! closed from any thread ([`Handle`] is `Send`).
//!
//! The header promises nothing about calls made on one handle from two
//! threads at once, so this module does not make any: every call made
//! through a shared reference (size query, map, unmap) holds the handle's
//! mutex, and reads `errno` (thread-local) before releasing it. `close`
//! runs in `Drop`, with exclusive access. Sharing a handle between threads
//! thus only ever serialises calls ([`Handle`] is `Sync`), and the
//! [`Xen`](super::Xen) value that holds it can be cloned into several
//! threads. Reading a mapped table is no call into the library: it goes
//! through the consumer's atomic loads, without the lock.
#![allow(unsafe_code)]

use std::{
    ffi::{c_char, c_int, c_uint, c_ulong, c_void},
    io,
    ptr::NonNull,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use libloading::Library;
use vstats_abi::{header::XENMEM_RESOURCE_STATS_TABLE, TableKind};
use vstats_consumer::{mem::MemView, Table};

use super::{
    loader::{Loaded, FOREIGNMEMORY_LIB, FOREIGNMEMORY_LIB_ENV},
    Error, Interface, Result,
};

/// Xen's frame size, whatever page size the table was laid out for.
pub const XEN_FRAME_SIZE: u64 = 4096;
/// Most frames mapped for one table: 1 GiB.
pub const MAX_FRAMES: u64 = 1 << 18;

// The C signatures, from Xen's tools/include/xenforeignmemory.h. `domid_t`
// is `uint16_t`; handles are opaque pointers.
type OpenFn = unsafe extern "C" fn(logger: *mut c_void, open_flags: c_uint) -> *mut c_void;
type CloseFn = unsafe extern "C" fn(fmem: *mut c_void) -> c_int;
type MapResourceFn = unsafe extern "C" fn(
    fmem: *mut c_void,
    domid: u16,
    r#type: c_uint,
    id: c_uint,
    frame: c_ulong,
    nr_frames: c_ulong,
    paddr: *mut *mut c_void,
    prot: c_int,
    flags: c_int,
) -> *mut c_void;
type UnmapResourceFn = unsafe extern "C" fn(fmem: *mut c_void, fres: *mut c_void) -> c_int;
type ResourceSizeFn = unsafe extern "C" fn(
    fmem: *mut c_void,
    domid: u16,
    r#type: c_uint,
    id: c_uint,
    size: *mut usize,
) -> c_int;

/// `struct xentoollog_logger` from Xen's tools/include/xentoollog.h: three
/// function pointers. `va_list` is passed as a pointer on the ABIs Xen
/// supports; it is never read.
#[repr(C)]
struct XtlLogger {
    vmessage:
        extern "C" fn(*mut XtlLogger, c_int, c_int, *const c_char, *const c_char, *mut c_void),
    progress: extern "C" fn(*mut XtlLogger, *const c_char, *const c_char, c_int, c_ulong, c_ulong),
    destroy: extern "C" fn(*mut XtlLogger),
}

extern "C" fn quiet_message(
    _: *mut XtlLogger,
    _: c_int,
    _: c_int,
    _: *const c_char,
    _: *const c_char,
    _: *mut c_void,
) {
}

extern "C" fn quiet_progress(
    _: *mut XtlLogger,
    _: *const c_char,
    _: *const c_char,
    _: c_int,
    _: c_ulong,
    _: c_ulong,
) {
}

extern "C" fn quiet_destroy(_: *mut XtlLogger) {}

/// A logger that discards everything: errors are reported through errno.
/// Its functions do nothing, so any thread may call them.
static QUIET: XtlLogger = XtlLogger {
    vmessage: quiet_message,
    progress: quiet_progress,
    destroy: quiet_destroy,
};

/// [`QUIET`] as the `xentoollog_logger *` the Xen libraries take (also
/// libxenctrl's, for the clock): it lives forever and is only called
/// through.
pub(super) fn quiet_logger() -> *mut c_void {
    std::ptr::addr_of!(QUIET).cast_mut().cast::<c_void>()
}

/// The foreign-memory functions of the loaded library.
struct Fns {
    close: CloseFn,
    map_resource: MapResourceFn,
    unmap_resource: UnmapResourceFn,
    resource_size: Option<ResourceSizeFn>,
}

/// An open `xenforeignmemory_handle` and the library that made it.
///
/// Invariants: 1. `fmem` is a handle `xenforeignmemory_open` returned and
/// that is closed only in `Drop`; 2. the function pointers in `fns` come
/// from `_lib`, which is dropped after `Drop::drop` ran (fields drop after
/// it), so they stay callable as long as `self` lives; 3. every call with
/// `fmem` but `close` holds `lock` (see the module docs, "Threads").
pub(super) struct Handle {
    fmem: NonNull<c_void>,
    lock: Mutex<()>,
    fns: Fns,
    /// The library's name or path.
    pub(super) lib: String,
    /// Whether this domain is Xen's control domain (dom0), which decides
    /// what `EPERM` means.
    control_domain: bool,
    _lib: Library,
}

// SAFETY: the handle (a file descriptor, flags and a logger that does
// nothing) has no thread affinity; xenforeignmemory.h restricts it only
// across fork, never across threads. Moving it, and closing it in `Drop`,
// from another thread is what the library allows (module docs, "Threads").
unsafe impl Send for Handle {}
// SAFETY: through `&Handle` the library is only called with `lock` held
// (invariant 3), so it never sees two concurrent calls on one handle,
// which its header does not promise to support; the other fields are
// immutable after `open`.
unsafe impl Sync for Handle {}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: invariant 1 (`fmem` is open and closed only here) and
        // invariant 2 (`close` is callable while `self` lives); `&mut self`
        // excludes every other call. Every mapping holds an `Arc` of this
        // handle, so none is left to unmap.
        unsafe { (self.fns.close)(self.fmem.as_ptr()) };
    }
}

/// Whether this domain is Xen's control domain: its privcmd capabilities
/// say `control_d`.
fn is_control_domain() -> bool {
    std::fs::read_to_string("/proc/xen/capabilities").is_ok_and(|s| s.contains("control_d"))
}

impl Handle {
    /// Loads `libxenforeignmemory.so.1` (or `$VSTATS_XENFOREIGNMEMORY_LIB`)
    /// and opens a handle.
    ///
    /// # Errors
    ///
    /// [`Error::LibraryMissing`], [`Error::LibraryUnloadable`],
    /// [`Error::MissingSymbol`], [`Error::Open`].
    pub(super) fn open() -> Result<Handle> {
        let lib = Loaded::load(FOREIGNMEMORY_LIB_ENV, FOREIGNMEMORY_LIB)?;
        // SAFETY: the types are those of xenforeignmemory.h, and the
        // library moves into the `Handle` that holds the pointers (its
        // invariant 2). The same holds for the four symbols below.
        let open: OpenFn = unsafe { lib.symbol("xenforeignmemory_open") }?;
        // SAFETY: as above.
        let close: CloseFn = unsafe { lib.symbol("xenforeignmemory_close") }?;
        // SAFETY: as above.
        let map_resource = unsafe { lib.symbol("xenforeignmemory_map_resource") }?;
        // SAFETY: as above.
        let unmap_resource = unsafe { lib.symbol("xenforeignmemory_unmap_resource") }?;
        // SAFETY: as above; optional (Xen 4.15 and later).
        let resource_size = unsafe { lib.symbol("xenforeignmemory_resource_size") }.ok();
        let logger = quiet_logger();
        // SAFETY: `open` is xenforeignmemory_open; the logger is a valid
        // `xentoollog_logger` that lives forever and that the library only
        // calls through (it never writes it or calls `destroy` on a logger
        // it did not create); flags 0.
        let fmem = unsafe { open(logger, 0) };
        let fmem = NonNull::new(fmem).ok_or_else(|| Error::Open {
            interface: Interface::ForeignMemory,
            io: io::Error::last_os_error(),
        })?;
        Ok(Handle {
            fmem,
            lock: Mutex::new(()),
            fns: Fns {
                close,
                map_resource,
                unmap_resource,
                resource_size,
            },
            lib: lib.name,
            control_domain: is_control_domain(),
            _lib: lib.lib,
        })
    }

    /// Takes the lock that serialises calls (invariant 3). A panic never
    /// happens while it is held (only a C call and an errno read are made
    /// under it), and the handle it guards is the library's, so a poisoned
    /// lock is taken all the same.
    fn lock(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the library has `xenforeignmemory_resource_size`.
    pub(super) fn has_resource_size(&self) -> bool {
        self.fns.resource_size.is_some()
    }

    /// The size in frames of resource `id` of type 3 of domain `domid`,
    /// when the library can tell: the size query, read as an errno when
    /// Xen 4.17 leaked one through it ([`frames_of_size`]). `Err` carries
    /// the errno of the failure.
    pub(super) fn resource_size(&self, domid: u16, id: c_uint) -> Option<io::Result<u64>> {
        let f = self.fns.resource_size?;
        let mut size = 0usize;
        let rc = {
            let _calls = self.lock();
            // SAFETY: `f` is xenforeignmemory_resource_size of this
            // handle's library (invariant 2), `fmem` is open (invariant 1)
            // and the lock is held (invariant 3); `size` is a valid
            // `size_t` to write.
            let rc = unsafe {
                f(
                    self.fmem.as_ptr(),
                    domid,
                    XENMEM_RESOURCE_STATS_TABLE,
                    id,
                    &mut size,
                )
            };
            (rc != 0).then(io::Error::last_os_error)
        };
        if let Some(io) = rc {
            return Some(Err(io));
        }
        Some(frames_of_size(size as u64).map_err(io::Error::from_raw_os_error))
    }

    /// The table's size in frames, when the library can tell
    /// ([`Handle::resource_size`]), classified and bounded by
    /// [`MAX_FRAMES`].
    pub(super) fn resource_frames(&self, domid: u16, kind: TableKind) -> Option<Result<u64>> {
        let frames = self.resource_size(domid, kind.resource_id())?;
        Some(match frames {
            Err(io) => Err(classify(
                domid,
                kind,
                0,
                io,
                Call::SizeQuery,
                self.control_domain,
            )),
            Ok(frames) if frames > MAX_FRAMES => Err(Error::TooLarge {
                domid,
                kind,
                need: frames.saturating_mul(XEN_FRAME_SIZE),
            }),
            Ok(frames) => Ok(frames),
        })
    }

    /// Maps `nr_frames` frames of domain `domid`'s table `kind` read-only.
    pub(super) fn map(
        self: &Arc<Handle>,
        domid: u16,
        kind: TableKind,
        nr_frames: u64,
        call: Call,
    ) -> Result<Mapping> {
        if nr_frames == 0 || nr_frames > MAX_FRAMES {
            return Err(Error::TooLarge {
                domid,
                kind,
                need: nr_frames.saturating_mul(XEN_FRAME_SIZE),
            });
        }
        self.map_resource(domid, kind.resource_id(), nr_frames)
            .map_err(|io| classify(domid, kind, nr_frames, io, call, self.control_domain))
    }

    /// Maps `nr_frames` (1 to [`MAX_FRAMES`]) frames of resource `id` of
    /// type 3 of domain `domid` read-only; `Err` carries the errno.
    pub(super) fn map_resource(
        self: &Arc<Handle>,
        domid: u16,
        id: c_uint,
        nr_frames: u64,
    ) -> io::Result<Mapping> {
        if nr_frames == 0 || nr_frames > MAX_FRAMES {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let n =
            c_ulong::try_from(nr_frames).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let len = usize::try_from(nr_frames * XEN_FRAME_SIZE)
            .map_err(|_| io::Error::from_raw_os_error(libc::ENOMEM))?;
        let mut addr: *mut c_void = std::ptr::null_mut();
        let fres = {
            let _calls = self.lock();
            // SAFETY: `map_resource` is xenforeignmemory_map_resource of
            // this handle's library (invariant 2), `fmem` is open
            // (invariant 1) and the lock is held (invariant 3); `addr` is a
            // valid `void *` to write, NULL on entry (no placement hint);
            // PROT_READ: a read-only mapping; no flags.
            let fres = unsafe {
                (self.fns.map_resource)(
                    self.fmem.as_ptr(),
                    domid,
                    XENMEM_RESOURCE_STATS_TABLE,
                    id,
                    0,
                    n,
                    &mut addr,
                    libc::PROT_READ,
                    0,
                )
            };
            NonNull::new(fres).ok_or_else(io::Error::last_os_error)
        };
        let owner = ResourceMapping {
            handle: Arc::clone(self),
            fres: fres?,
        };
        let Some(ptr) = NonNull::new(addr.cast::<u8>()) else {
            // Dropping `owner` unmaps it.
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        };
        Ok(Mapping { ptr, len, owner })
    }
}

/// What keeps one resource mapping alive: unmaps it in `Drop`.
///
/// Invariants: `fres` is a handle `xenforeignmemory_map_resource` returned
/// for `handle`'s `fmem`, unmapped only in `Drop`.
struct ResourceMapping {
    handle: Arc<Handle>,
    fres: NonNull<c_void>,
}

// SAFETY: `fres` is a record the library allocated for this mapping; it
// is only passed to `xenforeignmemory_unmap_resource`, once, in `Drop`,
// under the handle's lock (`Handle` invariant 3), and that call frees it,
// which any thread may do. The memory it maps is read through the
// consumer's atomic loads.
unsafe impl Send for ResourceMapping {}
// SAFETY: `&ResourceMapping` gives access to nothing (no method reads
// `fres`).
unsafe impl Sync for ResourceMapping {}

impl Drop for ResourceMapping {
    fn drop(&mut self) {
        let h = &self.handle;
        let _calls = h.lock();
        // SAFETY: the type's invariant (a live resource handle of this
        // `fmem`, unmapped only here); `Handle` invariant 2 keeps the
        // function callable and the lock is held (invariant 3); the
        // consumer made its last access before dropping its owner.
        unsafe { (h.fns.unmap_resource)(h.fmem.as_ptr(), self.fres.as_ptr()) };
    }
}

/// A read-only mapping of `len` bytes at `ptr`, alive until `owner` is
/// dropped.
pub(super) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    owner: ResourceMapping,
}

impl Mapping {
    /// Bytes mapped.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The mapping as a validated table, which unmaps it when dropped.
    ///
    /// # Errors
    ///
    /// As [`Table::from_owned`]; the mapping is unmapped.
    pub(super) fn into_table(self) -> vstats_consumer::Result<Table> {
        // SAFETY: `[ptr, ptr + len)` is the read-only mapping `owner`
        // keeps alive (it unmaps only when dropped: the promise of
        // `from_owned`), and this process never writes it.
        unsafe { Table::from_owned(self.ptr.as_ptr(), self.len, Box::new(self.owner)) }
    }

    /// The mapping as a view of every byte, which unmaps it when dropped.
    ///
    /// # Errors
    ///
    /// As [`MemView::from_raw_parts`] (the address is not 8-aligned); the
    /// mapping is unmapped.
    pub(super) fn into_view(self) -> vstats_consumer::Result<MemView<'static>> {
        // SAFETY: `[ptr, ptr + len)` is the read-only mapping `owner` keeps
        // alive until it is dropped, after the view's last access; this
        // process never writes it.
        unsafe { MemView::from_raw_parts(self.ptr.as_ptr(), self.len, Some(Box::new(self.owner))) }
    }
}

/// Which call failed, for [`classify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Call {
    /// `xenforeignmemory_resource_size`.
    SizeQuery,
    /// The first mapping, of one frame, when the library has no size
    /// query: it stands in for one.
    Probe,
    /// A mapping of a size the resource reported.
    Map,
}

/// The error for `io` from `call` on domain `domid`'s table `kind`, by
/// what Xen and privcmd mean by its errno (the table on [`Error`]).
/// `control_domain`: whether this domain is the control domain.
fn classify(
    domid: u16,
    kind: TableKind,
    nr_frames: u64,
    io: io::Error,
    call: Call,
    control_domain: bool,
) -> Error {
    match io.raw_os_error() {
        Some(libc::ESRCH) => Error::NoSuchDomain { domid },
        Some(libc::EPERM) if control_domain => Error::OwnDomain { domid, kind },
        Some(libc::EPERM | libc::EACCES) => Error::PermissionDenied { domid, kind, io },
        Some(libc::EOPNOTSUPP | libc::ENOSYS | libc::ENOTTY | libc::ENOENT) => {
            Error::NotOffered { domid, kind, io }
        }
        Some(libc::EINVAL) if call != Call::Map => Error::NotOffered { domid, kind, io },
        _ if call == Call::SizeQuery => Error::SizeQuery { domid, kind, io },
        _ => Error::Map {
            domid,
            kind,
            nr_frames,
            io,
        },
    }
}

/// The frames a size query's `size_t` reports, or the errno it carries.
///
/// libxenforeignmemory computes the size as the 32-bit frame count Xen
/// returned shifted by 12. Xen 4.17 returns `-EOPNOTSUPP` as that count
/// for a resource type it does not know, and the size query "succeeds"
/// with 0xFFFFFFA1 frames; a count in -4095..=-1 as a signed 32-bit value
/// (or sign-extended to 64 bits) is such an errno. Zero frames is what
/// Xen itself refuses with `EINVAL`: no such resource.
fn frames_of_size(size: u64) -> std::result::Result<u64, c_int> {
    let count = size >> 12;
    let low = count as u32 as i32;
    let high = count >> 32;
    if (-4095..=-1).contains(&low) && (high == 0 || high == (u64::MAX >> 12) >> 32) {
        return Err(-low);
    }
    match size.div_ceil(XEN_FRAME_SIZE) {
        0 => Err(libc::EINVAL),
        frames => Ok(frames),
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_that_are_errnos() {
        // What Xen 4.17 returns for an unknown type, through the library:
        // (u32)-EOPNOTSUPP frames shifted by 12.
        assert_eq!(frames_of_size(17_592_185_655_296), Err(libc::EOPNOTSUPP));
        assert_eq!(
            frames_of_size(u64::from(-libc::EINVAL as u32) << 12),
            Err(libc::EINVAL)
        );
        // Sign-extended to 64 bits before the shift.
        assert_eq!(
            frames_of_size((-i64::from(libc::ESRCH) as u64) << 12),
            Err(libc::ESRCH)
        );
        // -4096 frames is not an errno: a size, and an absurd one.
        assert_eq!(frames_of_size(0xFFFF_F000_u64 << 12), Ok(0xFFFF_F000));
        assert_eq!(frames_of_size(0), Err(libc::EINVAL));
        assert_eq!(frames_of_size(1), Ok(1));
        assert_eq!(frames_of_size(4096), Ok(1));
        assert_eq!(frames_of_size(4097), Ok(2));
        assert_eq!(frames_of_size(MAX_FRAMES << 12), Ok(MAX_FRAMES));
    }

    fn class(errno: c_int, call: Call, control: bool) -> Error {
        classify(
            7,
            TableKind::Vcpu,
            3,
            io::Error::from_raw_os_error(errno),
            call,
            control,
        )
    }

    #[test]
    fn errnos_are_classified_by_their_meaning_in_xen() {
        for call in [Call::SizeQuery, Call::Probe, Call::Map] {
            for control in [false, true] {
                assert!(matches!(
                    class(libc::ESRCH, call, control),
                    Error::NoSuchDomain { domid: 7 }
                ));
                for errno in [libc::EOPNOTSUPP, libc::ENOSYS, libc::ENOTTY, libc::ENOENT] {
                    assert!(matches!(
                        class(errno, call, control),
                        Error::NotOffered {
                            domid: 7,
                            kind: TableKind::Vcpu,
                            ..
                        }
                    ));
                }
                assert!(matches!(
                    class(libc::EACCES, call, control),
                    Error::PermissionDenied { .. }
                ));
                let e = class(libc::ENOMEM, call, control);
                if call == Call::SizeQuery {
                    assert!(matches!(e, Error::SizeQuery { .. }), "{e}");
                } else {
                    assert!(matches!(e, Error::Map { nr_frames: 3, .. }), "{e}");
                }
            }
            assert!(matches!(
                class(libc::EPERM, call, true),
                Error::OwnDomain { domid: 7, .. }
            ));
            assert!(matches!(
                class(libc::EPERM, call, false),
                Error::PermissionDenied { .. }
            ));
        }
        // EINVAL: no frames from the size query (or the one-frame probe
        // that stands in for it); a bad request from a sized mapping.
        assert!(matches!(
            class(libc::EINVAL, Call::SizeQuery, true),
            Error::NotOffered { .. }
        ));
        assert!(matches!(
            class(libc::EINVAL, Call::Probe, true),
            Error::NotOffered { .. }
        ));
        assert!(matches!(
            class(libc::EINVAL, Call::Map, true),
            Error::Map { .. }
        ));
    }

    #[test]
    fn messages_are_one_clear_line() {
        let m = class(libc::EOPNOTSUPP, Call::Map, true).to_string();
        assert_eq!(
            m,
            "domain 7: the hypervisor does not offer the vCPU stats table resource \
             (XENMEM_resource_stats_table id 0, EOPNOTSUPP)"
        );
        let m = class(libc::EPERM, Call::SizeQuery, true).to_string();
        assert!(
            m.starts_with("domain 7: this is the caller's own domain"),
            "{m}"
        );
        for m in [
            m,
            class(libc::EPERM, Call::Map, false).to_string(),
            class(libc::EACCES, Call::Map, false).to_string(),
        ] {
            assert!(!m.contains('\n') && !m.contains("run as root"), "{m}");
        }
        assert_eq!(TableKind::Domain.to_string(), "domain");
        assert_eq!(TableKind::Domain.resource_id(), 1);
        assert_eq!(TableKind::from_resource_id(0), Some(TableKind::Vcpu));
    }
}
