//! The Xen backend: map a domain's stats tables with
//! `xenforeignmemory_map_resource()`, and list domains through xenstore.
//!
//! Both libraries are loaded at run time (`dlopen`), so the tool runs on
//! hosts without Xen and only `--domid` (and the Xen part of `list`) needs
//! them:
//!
//! * `libxenforeignmemory.so.1` (override: `VSTATS_XENFOREIGNMEMORY_LIB`):
//!   `xenforeignmemory_open`, `_close`, `_map_resource`,
//!   `_unmap_resource`, and, when the library has it (Xen 4.15 and later),
//!   `_resource_size`;
//! * `libxenstore.so.4` (override: `VSTATS_XENSTORE_LIB`): `xs_open`,
//!   `xs_close`, `xs_directory`, `xs_read`, only to list domains and name
//!   them.
//!
//! A table is resource type 3 (`XENMEM_resource_stats_table`), id 0 for
//! the vCPU table and id 1 for the domain table, mapped read-only
//! (`PROT_READ`). How many 4 KiB frames: `xenforeignmemory_resource_size`
//! when available; otherwise one frame, and if the table's header asks for
//! more (its head or its records lie beyond the mapping) the mapping is
//! replaced by one of the right size, at most three times. The mapping is
//! handed to [`vstats_consumer::Table::from_owned`] with an owner that
//! unmaps it in `Drop`; the foreign-memory handle is closed when the last
//! mapping and the [`Xen`] value are gone.
//!
//! The library's own error logging (to stderr by default) is replaced by a
//! logger that discards messages: every failure is reported once, through
//! `errno`, as one line.
//!
//! No Xen host was available when this was written: this module is tested
//! against a stand-in library (`tests/standin/xenstandin.c`) that exports
//! the same C symbols over files in a directory.
#![allow(unsafe_code)]

use std::{
    ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr, CString},
    io,
    ptr::NonNull,
    sync::Arc,
};

use libloading::Library;
use vstats_abi::header::{
    XENMEM_RESOURCE_STATS_TABLE, XENMEM_RESOURCE_STATS_TABLE_ID_DOMSTATS,
    XENMEM_RESOURCE_STATS_TABLE_ID_VCPUSTATS,
};
use vstats_consumer::Table;

/// The foreign-memory library's file name.
pub const FOREIGNMEMORY_LIB: &str = "libxenforeignmemory.so.1";
/// Environment variable naming another foreign-memory library (tests).
pub const FOREIGNMEMORY_LIB_ENV: &str = "VSTATS_XENFOREIGNMEMORY_LIB";
/// The xenstore library's file name.
pub const XENSTORE_LIB: &str = "libxenstore.so.4";
/// Environment variable naming another xenstore library (tests).
pub const XENSTORE_LIB_ENV: &str = "VSTATS_XENSTORE_LIB";
/// Xen's frame size, whatever page size the table was laid out for.
pub const XEN_FRAME_SIZE: u64 = 4096;
/// Most frames mapped for one table: 1 GiB.
pub const MAX_FRAMES: u64 = 1 << 18;

/// Errors of the Xen backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The library could not be loaded.
    #[error(
        "Xen backend unavailable: cannot load {lib}: {reason} (not a Xen host, or the Xen \
         tools are not installed)"
    )]
    LibraryMissing {
        /// The library name or path.
        lib: String,
        /// The loader's message.
        reason: String,
    },
    /// The library lacks a symbol the backend needs.
    #[error("{lib}: no symbol {symbol}: {reason}")]
    MissingSymbol {
        /// The library.
        lib: String,
        /// The symbol.
        symbol: &'static str,
        /// The loader's message.
        reason: String,
    },
    /// `xenforeignmemory_open` or `xs_open` failed.
    #[error("cannot open the Xen {what} interface: {}", io_text(.io))]
    Open {
        /// `"foreign-memory"` or `"xenstore"`.
        what: &'static str,
        /// `errno`.
        io: io::Error,
    },
    /// The domain does not exist (`ESRCH`).
    #[error("domain {domid}: no such domain")]
    NoSuchDomain {
        /// The domain id.
        domid: u16,
    },
    /// Mapping was refused (`EPERM`, `EACCES`).
    #[error("domain {domid}: permission denied mapping its {what} stats table: {io} (run as root in dom0)")]
    PermissionDenied {
        /// The domain id.
        domid: u16,
        /// `"vCPU"` or `"domain"`.
        what: &'static str,
        /// `errno`.
        io: io::Error,
    },
    /// Xen does not offer this resource (`EOPNOTSUPP`, `EINVAL`, `ENOENT`):
    /// a hypervisor without stats tables, or no domain table.
    #[error(
        "domain {domid}: Xen offers no {what} stats table \
         (XENMEM_resource_stats_table id {id}): {io}"
    )]
    NotOffered {
        /// The domain id.
        domid: u16,
        /// `"vCPU"` or `"domain"`.
        what: &'static str,
        /// The resource id.
        id: u32,
        /// `errno`.
        io: io::Error,
    },
    /// Any other mapping failure.
    #[error("domain {domid}: mapping {nr_frames} frames of its {what} stats table failed: {io}")]
    Map {
        /// The domain id.
        domid: u16,
        /// `"vCPU"` or `"domain"`.
        what: &'static str,
        /// Frames asked for.
        nr_frames: u64,
        /// `errno`.
        io: io::Error,
    },
    /// The mapped table breaks a rule of the ABI.
    #[error("domain {domid}: {what} stats table: not a valid stats table: {error} [rule {}: {}]", .error.rule(), .error.rule().title())]
    Invalid {
        /// The domain id.
        domid: u16,
        /// `"vCPU"` or `"domain"`.
        what: &'static str,
        /// The rule broken.
        error: vstats_abi::Error,
    },
    /// The consumer refused the mapping for another reason (its limits).
    #[error("domain {domid}: {what} stats table: {error}")]
    Table {
        /// The domain id.
        domid: u16,
        /// `"vCPU"` or `"domain"`.
        what: &'static str,
        /// The consumer's error.
        error: vstats_consumer::Error,
    },
    /// The table claims more memory than the backend maps.
    #[error(
        "domain {domid}: {what} stats table claims {need} bytes, more than {MAX_FRAMES} frames"
    )]
    TooLarge {
        /// The domain id.
        domid: u16,
        /// `"vCPU"` or `"domain"`.
        what: &'static str,
        /// Bytes it asks for.
        need: u64,
    },
    /// A xenstore read failed.
    #[error("xenstore: reading {path}: {io}")]
    XenStore {
        /// The xenstore path.
        path: String,
        /// `errno`.
        io: io::Error,
    },
}

impl Error {
    /// Whether the error is about the table's contents (exit code 3).
    pub fn is_invalid_table(&self) -> bool {
        matches!(self, Error::Invalid { .. })
    }
}

fn io_text(io: &io::Error) -> String {
    match io.kind() {
        io::ErrorKind::PermissionDenied => format!("permission denied: {io} (run as root in dom0)"),
        _ => io.to_string(),
    }
}

/// Result type of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// `"vCPU"` or `"domain"` for a resource id.
fn what(id: u32) -> &'static str {
    if id == XENMEM_RESOURCE_STATS_TABLE_ID_VCPUSTATS {
        "vCPU"
    } else {
        "domain"
    }
}

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

// From Xen's tools/include/xenstore.h: `xs_transaction_t` is `uint32_t`,
// `XBT_NULL` is 0; results are malloc'ed, freed with `free()`.
type XsOpenFn = unsafe extern "C" fn(flags: c_ulong) -> *mut c_void;
type XsCloseFn = unsafe extern "C" fn(h: *mut c_void);
type XsDirectoryFn = unsafe extern "C" fn(
    h: *mut c_void,
    t: u32,
    path: *const c_char,
    num: *mut c_uint,
) -> *mut *mut c_char;
type XsReadFn = unsafe extern "C" fn(
    h: *mut c_void,
    t: u32,
    path: *const c_char,
    len: *mut c_uint,
) -> *mut c_void;

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
static QUIET: XtlLogger = XtlLogger {
    vmessage: quiet_message,
    progress: quiet_progress,
    destroy: quiet_destroy,
};

fn load(env: &str, default: &str) -> Result<(Library, String)> {
    let name = std::env::var(env).unwrap_or_else(|_| default.to_owned());
    // SAFETY: loading a library runs its initialisers. The library is
    // libxenforeignmemory or libxenstore (or what the administrator named
    // in the environment variable); neither has initialisers with
    // preconditions on the caller.
    match unsafe { Library::new(&name) } {
        Ok(lib) => Ok((lib, name)),
        Err(e) => Err(Error::LibraryMissing {
            lib: name,
            reason: e.to_string(),
        }),
    }
}

/// Copies the function pointer `symbol` out of `lib`.
///
/// # Safety
///
/// The caller promises that `T` is the symbol's C function type, and that
/// `lib` stays loaded as long as the returned pointer is called.
unsafe fn symbol<T: Copy>(lib: &Library, name: &str, symbol: &'static str) -> Result<T> {
    let mut c = symbol.as_bytes().to_vec();
    c.push(0);
    // SAFETY: the caller promises `T` is the symbol's type.
    match unsafe { lib.get::<T>(&c) } {
        Ok(s) => Ok(*s),
        Err(e) => Err(Error::MissingSymbol {
            lib: name.to_owned(),
            symbol,
            reason: e.to_string(),
        }),
    }
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
/// it), so they stay callable as long as `self` lives.
struct Handle {
    fmem: NonNull<c_void>,
    fns: Fns,
    lib: String,
    _lib: Library,
}

// SAFETY: a xenforeignmemory handle is a file descriptor and flags with no
// thread affinity; the C library may be called with it from any thread.
// This crate calls it from one thread at a time (mapping takes `&Xen` but
// the tool is single-threaded; unmapping and closing take `&mut`).
unsafe impl Send for Handle {}
// SAFETY: as for `Send`: shared references only call the library's
// map/size functions, which do not mutate the handle.
unsafe impl Sync for Handle {}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: invariant 1 (`fmem` is open and closed only here) and
        // invariant 2 (`close` is callable while `self` lives).
        unsafe { (self.fns.close)(self.fmem.as_ptr()) };
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

// SAFETY: the resource handle is only used in `Drop` (through `&mut
// self`); the memory it maps is read through the consumer's atomics.
unsafe impl Send for ResourceMapping {}
// SAFETY: `&ResourceMapping` gives access to nothing.
unsafe impl Sync for ResourceMapping {}

impl Drop for ResourceMapping {
    fn drop(&mut self) {
        let h = &self.handle;
        // SAFETY: the type's invariant (a live resource handle of this
        // `fmem`, unmapped only here); `Handle` invariant 2 keeps the
        // function callable; the consumer made its last access before
        // dropping its owner.
        unsafe { (h.fns.unmap_resource)(h.fmem.as_ptr(), self.fres.as_ptr()) };
    }
}

/// The loaded foreign-memory library with an open handle.
#[derive(Clone)]
pub struct Xen {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Xen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xen")
            .field("lib", &self.handle.lib)
            .field("resource_size", &self.handle.fns.resource_size.is_some())
            .finish_non_exhaustive()
    }
}

impl Xen {
    /// Loads `libxenforeignmemory.so.1` (or `$VSTATS_XENFOREIGNMEMORY_LIB`)
    /// and opens a handle.
    ///
    /// # Errors
    ///
    /// [`Error::LibraryMissing`], [`Error::MissingSymbol`], [`Error::Open`].
    pub fn load() -> Result<Xen> {
        let (lib, name) = load(FOREIGNMEMORY_LIB_ENV, FOREIGNMEMORY_LIB)?;
        // SAFETY: the types are those of xenforeignmemory.h, and `lib`
        // moves into the `Handle` that holds the pointers (its invariant
        // 2). The same holds for the four symbols below.
        let open: OpenFn = unsafe { symbol(&lib, &name, "xenforeignmemory_open") }?;
        // SAFETY: as above.
        let close: CloseFn = unsafe { symbol(&lib, &name, "xenforeignmemory_close") }?;
        // SAFETY: as above.
        let map_resource = unsafe { symbol(&lib, &name, "xenforeignmemory_map_resource") }?;
        // SAFETY: as above.
        let unmap_resource = unsafe { symbol(&lib, &name, "xenforeignmemory_unmap_resource") }?;
        // SAFETY: as above; optional (Xen 4.15 and later).
        let resource_size = unsafe { symbol(&lib, &name, "xenforeignmemory_resource_size") }.ok();
        let logger = std::ptr::addr_of!(QUIET).cast_mut().cast::<c_void>();
        // SAFETY: `open` is xenforeignmemory_open; the logger is a valid
        // `xentoollog_logger` that lives forever and that the library only
        // calls through (it never writes it or calls `destroy` on a logger
        // it did not create); flags 0.
        let fmem = unsafe { open(logger, 0) };
        let fmem = NonNull::new(fmem).ok_or_else(|| Error::Open {
            what: "foreign-memory",
            io: io::Error::last_os_error(),
        })?;
        Ok(Xen {
            handle: Arc::new(Handle {
                fmem,
                fns: Fns {
                    close,
                    map_resource,
                    unmap_resource,
                    resource_size,
                },
                lib: name,
                _lib: lib,
            }),
        })
    }

    /// The library's name or path.
    pub fn library(&self) -> &str {
        &self.handle.lib
    }

    /// Whether the library has `xenforeignmemory_resource_size`.
    pub fn has_resource_size(&self) -> bool {
        self.handle.fns.resource_size.is_some()
    }

    fn classify(domid: u16, id: u32, nr_frames: u64, io: io::Error, first: bool) -> Error {
        let what = what(id);
        match io.raw_os_error() {
            Some(libc::ESRCH) => Error::NoSuchDomain { domid },
            Some(libc::EPERM | libc::EACCES) => Error::PermissionDenied { domid, what, io },
            Some(libc::EOPNOTSUPP | libc::ENOENT | libc::EINVAL) if first => Error::NotOffered {
                domid,
                what,
                id,
                io,
            },
            _ => Error::Map {
                domid,
                what,
                nr_frames,
                io,
            },
        }
    }

    /// The resource's size in bytes, when the library can tell.
    fn resource_size(&self, domid: u16, id: u32) -> Option<Result<u64>> {
        let f = self.handle.fns.resource_size?;
        let mut size = 0usize;
        // SAFETY: `f` is xenforeignmemory_resource_size of this handle's
        // library (`Handle` invariant 2), `fmem` is open (invariant 1),
        // `size` is a valid `size_t` to write.
        let rc = unsafe {
            f(
                self.handle.fmem.as_ptr(),
                domid,
                XENMEM_RESOURCE_STATS_TABLE,
                id,
                &mut size,
            )
        };
        Some(if rc == 0 {
            Ok(size as u64)
        } else {
            Err(Self::classify(
                domid,
                id,
                0,
                io::Error::last_os_error(),
                true,
            ))
        })
    }

    /// Maps `nr_frames` frames of resource `id` read-only.
    fn map_frames(
        &self,
        domid: u16,
        id: u32,
        nr_frames: u64,
        first: bool,
    ) -> Result<(NonNull<u8>, usize, ResourceMapping)> {
        let bad = |io| Self::classify(domid, id, nr_frames, io, first);
        let n = c_ulong::try_from(nr_frames)
            .map_err(|_| bad(io::Error::from_raw_os_error(libc::EINVAL)))?;
        let len = usize::try_from(nr_frames * XEN_FRAME_SIZE)
            .map_err(|_| bad(io::Error::from_raw_os_error(libc::ENOMEM)))?;
        let mut addr: *mut c_void = std::ptr::null_mut();
        // SAFETY: `map_resource` is xenforeignmemory_map_resource of this
        // handle's library (`Handle` invariant 2) and `fmem` is open
        // (invariant 1); `addr` is a valid `void *` to write, NULL on entry
        // (no placement hint); PROT_READ: a read-only mapping; no flags.
        let fres = unsafe {
            (self.handle.fns.map_resource)(
                self.handle.fmem.as_ptr(),
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
        let Some(fres) = NonNull::new(fres) else {
            return Err(bad(io::Error::last_os_error()));
        };
        let mapping = ResourceMapping {
            handle: Arc::clone(&self.handle),
            fres,
        };
        let Some(ptr) = NonNull::new(addr.cast::<u8>()) else {
            // Dropping `mapping` unmaps it.
            return Err(bad(io::Error::from_raw_os_error(libc::EFAULT)));
        };
        Ok((ptr, len, mapping))
    }

    /// Maps domain `domid`'s table `id` (0: vCPU, 1: domain) read-only and
    /// validates it; the returned table unmaps it when dropped.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchDomain`], [`Error::PermissionDenied`],
    /// [`Error::NotOffered`], [`Error::Map`], [`Error::Invalid`] (the rule
    /// broken), [`Error::TooLarge`], [`Error::Table`].
    pub fn map_table(&self, domid: u16, id: u32) -> Result<Table> {
        let what = what(id);
        let frames_for = |bytes: u64| {
            let frames = bytes.div_ceil(XEN_FRAME_SIZE).max(1);
            if frames > MAX_FRAMES {
                Err(Error::TooLarge {
                    domid,
                    what,
                    need: bytes,
                })
            } else {
                Ok(frames)
            }
        };
        let mut frames = match self.resource_size(domid, id) {
            Some(Ok(bytes)) => frames_for(bytes)?,
            Some(Err(e)) => return Err(e),
            None => 1,
        };
        let mut first = true;
        for _ in 0..4 {
            let (ptr, len, owner) = self.map_frames(domid, id, frames, first)?;
            first = false;
            // SAFETY: `[ptr, ptr + len)` is the read-only mapping `owner`
            // keeps alive (it unmaps only when dropped: the promise of
            // `from_owned`), and this process never writes it.
            let table = unsafe { Table::from_owned(ptr.as_ptr(), len, Box::new(owner)) };
            match table {
                Ok(t) => return Ok(t),
                Err(vstats_consumer::Error::Invalid { error, .. }) => {
                    let need = match error {
                        vstats_abi::Error::MappingTooSmall { need, .. } => need,
                        vstats_abi::Error::HeadTruncated { need, .. } => u64::from(need),
                        _ => 0,
                    };
                    if need > len as u64 {
                        frames = frames_for(need)?;
                        continue;
                    }
                    return Err(Error::Invalid { domid, what, error });
                }
                Err(error) => return Err(Error::Table { domid, what, error }),
            }
        }
        Err(Error::Map {
            domid,
            what,
            nr_frames: frames,
            io: io::Error::other("the table's size kept changing while it was mapped"),
        })
    }

    /// Maps domain `domid`'s table `id` read-only as raw memory for the
    /// invariant checker, which then checks every byte of it (including
    /// what the consumer never reads: padding, the tail of the last page).
    ///
    /// The mapping is sized as [`Xen::map_table`] sizes it. A table that
    /// does not validate is mapped anyway (as many frames as
    /// `xenforeignmemory_resource_size` reports, else one), so that the
    /// checker reports the rule it breaks.
    ///
    /// # Errors
    ///
    /// As [`Xen::map_table`], but for [`Error::Invalid`].
    pub fn map_raw(&self, domid: u16, id: u32) -> Result<vstats_invariants::RawView> {
        let frames = match self.map_table(domid, id) {
            Ok(t) => t.info().mapped_len.div_ceil(XEN_FRAME_SIZE).max(1),
            Err(Error::Invalid { .. }) => match self.resource_size(domid, id) {
                Some(Ok(bytes)) => bytes.div_ceil(XEN_FRAME_SIZE).clamp(1, MAX_FRAMES),
                _ => 1,
            },
            Err(e) => return Err(e),
        };
        let (ptr, len, owner) = self.map_frames(domid, id, frames, false)?;
        // SAFETY: `[ptr, ptr + len)` is the read-only mapping `owner` keeps
        // alive until it is dropped, after the view's last access; this
        // process never writes it.
        unsafe { vstats_invariants::RawView::from_raw_parts(ptr.as_ptr(), len, Box::new(owner)) }
            .ok_or_else(|| Error::Map {
                domid,
                what: what(id),
                nr_frames: frames,
                io: io::Error::other("the mapping is not 8-byte aligned"),
            })
    }

    /// Maps both tables of `domid`: the vCPU table (required) and the
    /// domain table (`None` when Xen does not offer it).
    ///
    /// # Errors
    ///
    /// As [`Xen::map_table`] for the vCPU table; for the domain table, all
    /// but [`Error::NotOffered`].
    pub fn map_domain(&self, domid: u16) -> Result<(Table, Option<Table>)> {
        let vcpu = self.map_table(domid, XENMEM_RESOURCE_STATS_TABLE_ID_VCPUSTATS)?;
        let domain = match self.map_table(domid, XENMEM_RESOURCE_STATS_TABLE_ID_DOMSTATS) {
            Ok(t) => Some(t),
            Err(Error::NotOffered { .. }) => None,
            Err(e) => return Err(e),
        };
        Ok((vcpu, domain))
    }
}

/// A domain as xenstore lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainEntry {
    /// The domain id.
    pub domid: u16,
    /// `/local/domain/<domid>/name`, when readable.
    pub name: Option<String>,
}

/// An open xenstore connection (`libxenstore.so.4` loaded at run time).
///
/// Invariants: `h` is an `xs_open` handle closed only in `Drop`; the
/// function pointers come from `_lib`, dropped after `Drop::drop`.
pub struct XenStore {
    h: NonNull<c_void>,
    close: XsCloseFn,
    directory: XsDirectoryFn,
    read: XsReadFn,
    _lib: Library,
}

impl std::fmt::Debug for XenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XenStore").finish_non_exhaustive()
    }
}

impl Drop for XenStore {
    fn drop(&mut self) {
        // SAFETY: the type's invariants: `h` is open and closed only here,
        // `close` is callable while `self` lives.
        unsafe { (self.close)(self.h.as_ptr()) };
    }
}

impl XenStore {
    /// Loads `libxenstore.so.4` (or `$VSTATS_XENSTORE_LIB`) and connects.
    ///
    /// # Errors
    ///
    /// [`Error::LibraryMissing`], [`Error::MissingSymbol`], [`Error::Open`].
    pub fn open() -> Result<XenStore> {
        let (lib, name) = load(XENSTORE_LIB_ENV, XENSTORE_LIB)?;
        // SAFETY: the types are those of xenstore.h; `lib` moves into the
        // `XenStore` that holds the pointers. The same holds below.
        let open: XsOpenFn = unsafe { symbol(&lib, &name, "xs_open") }?;
        // SAFETY: as above.
        let close = unsafe { symbol(&lib, &name, "xs_close") }?;
        // SAFETY: as above.
        let directory = unsafe { symbol(&lib, &name, "xs_directory") }?;
        // SAFETY: as above.
        let read = unsafe { symbol(&lib, &name, "xs_read") }?;
        // SAFETY: `open` is xs_open; flags 0 (a read-write connection to
        // the daemon or the kernel device, whichever exists).
        let h = NonNull::new(unsafe { open(0) }).ok_or_else(|| Error::Open {
            what: "xenstore",
            io: io::Error::last_os_error(),
        })?;
        Ok(XenStore {
            h,
            close,
            directory,
            read,
            _lib: lib,
        })
    }

    /// The entries of the xenstore directory `path`.
    fn directory(&self, path: &str) -> Result<Vec<String>> {
        let err = |io| Error::XenStore {
            path: path.to_owned(),
            io,
        };
        let c =
            CString::new(path).map_err(|_| err(io::Error::from(io::ErrorKind::InvalidInput)))?;
        let mut num: c_uint = 0;
        // SAFETY: the type's invariants; `c` is NUL-terminated, `num` a
        // valid `unsigned int` to write; transaction XBT_NULL (0).
        let list = unsafe { (self.directory)(self.h.as_ptr(), 0, c.as_ptr(), &mut num) };
        if list.is_null() {
            return Err(err(io::Error::last_os_error()));
        }
        let n = (num as usize).min(1 << 16);
        // SAFETY: xs_directory returns an array of `num` pointers to
        // NUL-terminated strings, all inside one allocation that lives until
        // we free it below (after the last use of `entries`).
        let entries = unsafe { std::slice::from_raw_parts(list.cast_const(), n) };
        let mut out = Vec::with_capacity(n);
        for &entry in entries {
            if !entry.is_null() {
                // SAFETY: as above: a NUL-terminated string.
                out.push(
                    unsafe { CStr::from_ptr(entry) }
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
        // SAFETY: xs_directory's result is one malloc'ed block, to be
        // released with free(); nothing refers to it any more.
        unsafe { libc::free(list.cast()) };
        Ok(out)
    }

    /// The value at xenstore `path`.
    fn read(&self, path: &str) -> Result<String> {
        let err = |io| Error::XenStore {
            path: path.to_owned(),
            io,
        };
        let c =
            CString::new(path).map_err(|_| err(io::Error::from(io::ErrorKind::InvalidInput)))?;
        let mut len: c_uint = 0;
        // SAFETY: the type's invariants; `c` is NUL-terminated, `len` a
        // valid `unsigned int` to write; transaction XBT_NULL (0).
        let v = unsafe { (self.read)(self.h.as_ptr(), 0, c.as_ptr(), &mut len) };
        if v.is_null() {
            return Err(err(io::Error::last_os_error()));
        }
        // SAFETY: xs_read returns `len` bytes (plus a NUL) in one malloc'ed
        // block that lives until we free it below.
        let bytes = unsafe { std::slice::from_raw_parts(v.cast::<u8>(), len as usize) };
        let s = String::from_utf8_lossy(bytes).into_owned();
        // SAFETY: the block came from malloc (xs_read's contract) and
        // `bytes` is not used after this.
        unsafe { libc::free(v) };
        Ok(s)
    }

    /// The domains under `/local/domain`, sorted by id, with their names.
    ///
    /// # Errors
    ///
    /// [`Error::XenStore`] when the directory cannot be read.
    pub fn domains(&self) -> Result<Vec<DomainEntry>> {
        let mut out: Vec<DomainEntry> = self
            .directory("/local/domain")?
            .iter()
            .filter_map(|e| e.parse::<u16>().ok())
            .map(|domid| DomainEntry {
                domid,
                name: self.name(domid),
            })
            .collect();
        out.sort_by_key(|d| d.domid);
        Ok(out)
    }

    /// The name of `domid`, when xenstore has it.
    pub fn name(&self, domid: u16) -> Option<String> {
        self.read(&format!("/local/domain/{domid}/name")).ok()
    }
}
