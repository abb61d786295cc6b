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
//! when available (its answer checked for an errno in disguise and bounded
//! by [`MAX_FRAMES`]); otherwise one frame, and if the table's header asks for
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
//! Failures are classified by what the hypervisor and the privcmd driver
//! mean by each `errno` (see [`Error`]), into variants a program can match
//! on: [`Error::NotOffered`] is what a hypervisor without stats tables
//! (stock Xen 4.17) answers.
//!
//! Tests: a stand-in library (`tests/standin/xenstandin.c`) exports the
//! same C symbols over files in a directory and reproduces the real
//! library's answers, tables included; and `tests/xen/` at the top of the
//! workspace boots Debian's real Xen 4.17 under QEMU and runs the tool in
//! its dom0, where the error paths meet the real hypervisor (a table
//! itself needs a hypervisor that offers one).
#![allow(unsafe_code)]

use std::{
    ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr, CString},
    io,
    ptr::NonNull,
    sync::Arc,
};

use libloading::Library;
use vstats_abi::header::XENMEM_RESOURCE_STATS_TABLE;
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

pub use vstats_abi::TableKind;

/// Which of the two Xen libraries' interfaces, for [`Error::Open`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Interface {
    /// libxenforeignmemory (`/dev/xen/privcmd`).
    ForeignMemory,
    /// libxenstore (xenstored's socket or `/dev/xen/xenbus`).
    XenStore,
}

impl std::fmt::Display for Interface {
    /// `foreign-memory` or `xenstore`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Interface::ForeignMemory => "foreign-memory",
            Interface::XenStore => "xenstore",
        })
    }
}

/// Errors of the Xen backend.
///
/// Each failure of the hypervisor or the privcmd driver is classified by
/// what its `errno` means there (Xen's `acquire_resource` in
/// `xen/common/memory.c`, Linux's `IOCTL_PRIVCMD_MMAP_RESOURCE` in
/// `drivers/xen/privcmd.c`):
///
/// | errno | where | variant |
/// |---|---|---|
/// | `ESRCH` | Xen: no domain with this id | [`Error::NoSuchDomain`] |
/// | `EPERM` | Xen: the target is the caller's own domain, or the caller is neither the control domain nor the target's device model (privcmd: a descriptor restricted to another domain, never the case here) | [`Error::OwnDomain`] when this is the control domain, else [`Error::PermissionDenied`] |
/// | `EACCES` | Xen: the caller is a translated (HVM/PVH) domain other than the hardware domain | [`Error::PermissionDenied`] |
/// | `EOPNOTSUPP` | Xen: unknown resource type; libxenforeignmemory: privcmd lacks the ioctl | [`Error::NotOffered`] |
/// | `ENOSYS` | Xen without `XENMEM_acquire_resource` | [`Error::NotOffered`] |
/// | `ENOENT` | Xen: the type exists but not this id | [`Error::NotOffered`] |
/// | `EINVAL` | Xen: from the size query, the resource has no frames for this domain (Xen 4.18 and later answer so for an unknown type); from a mapping, frames beyond the resource or a malformed request | [`Error::NotOffered`] for the size query (or a first one-frame probe when there is no size query), else [`Error::Map`] |
/// | others | | [`Error::SizeQuery`], [`Error::Map`] |
///
/// Xen 4.17 answers the size query of an unknown resource type with success
/// and `-EOPNOTSUPP` as the 32-bit frame count; the backend reads such a
/// size as that errno.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The library does not exist (neither at the path given nor on the
    /// loader's search path).
    #[error(
        "Xen backend unavailable: {lib} not found (not a Xen host, or the Xen tools are not \
         installed): {reason}"
    )]
    LibraryMissing {
        /// The library name or path.
        lib: String,
        /// The loader's message.
        reason: String,
    },
    /// The library exists but the loader refused it (not a shared library,
    /// wrong architecture, missing dependencies).
    #[error("Xen backend unavailable: {lib} exists but cannot be loaded: {reason}")]
    LibraryUnloadable {
        /// The library name or path.
        lib: String,
        /// The loader's message.
        reason: String,
    },
    /// The library lacks a symbol the backend needs.
    #[error("{lib}: no symbol {symbol} (not the library the Xen backend needs): {reason}")]
    MissingSymbol {
        /// The library.
        lib: String,
        /// The symbol.
        symbol: &'static str,
        /// The loader's message.
        reason: String,
    },
    /// `xenforeignmemory_open` or `xs_open` failed.
    #[error("cannot open the Xen {interface} interface: {}", open_text(*.interface, .io))]
    Open {
        /// Which interface.
        interface: Interface,
        /// `errno`.
        io: io::Error,
    },
    /// The domain does not exist (`ESRCH`).
    #[error("domain {domid}: no such domain")]
    NoSuchDomain {
        /// The domain id.
        domid: u16,
    },
    /// `EPERM` while this domain is the control domain: Xen lets the
    /// control domain map any domain's resources except its own, so
    /// `domid` is this domain (dom0 cannot map dom0's tables).
    #[error(
        "domain {domid}: this is the caller's own domain, and Xen does not map a domain's \
         resources into the domain itself (EPERM): its {kind} stats table cannot be read \
         from here"
    )]
    OwnDomain {
        /// The domain id.
        domid: u16,
        /// Which table.
        kind: TableKind,
    },
    /// Xen refused the mapping (`EPERM` outside the control domain,
    /// `EACCES`).
    #[error("domain {domid}: Xen refused to map its {kind} stats table: {}", refusal_text(.io))]
    PermissionDenied {
        /// The domain id.
        domid: u16,
        /// Which table.
        kind: TableKind,
        /// `errno`.
        io: io::Error,
    },
    /// The hypervisor does not offer this resource (`EOPNOTSUPP`,
    /// `ENOSYS`, `ENOENT`, `EINVAL` from the size query): a hypervisor
    /// without stats tables, or a table this domain does not have.
    #[error(
        "domain {domid}: the hypervisor does not offer the {kind} stats table resource \
         (XENMEM_resource_stats_table id {}, {})",
        .kind.resource_id(),
        errno_name(.io)
    )]
    NotOffered {
        /// The domain id.
        domid: u16,
        /// Which table (its resource id: [`TableKind::resource_id`]).
        kind: TableKind,
        /// `errno`.
        io: io::Error,
    },
    /// Any other failure of the size query.
    #[error("domain {domid}: asking Xen the size of its {kind} stats table failed: {io}")]
    SizeQuery {
        /// The domain id.
        domid: u16,
        /// Which table.
        kind: TableKind,
        /// `errno`.
        io: io::Error,
    },
    /// Any other mapping failure.
    #[error("domain {domid}: mapping {nr_frames} frames of its {kind} stats table failed: {io}")]
    Map {
        /// The domain id.
        domid: u16,
        /// Which table.
        kind: TableKind,
        /// Frames asked for.
        nr_frames: u64,
        /// `errno`.
        io: io::Error,
    },
    /// The mapped table breaks a rule of the ABI.
    #[error("domain {domid}: {kind} stats table: not a valid stats table: {error} [rule {}: {}]", .error.rule(), .error.rule().title())]
    Invalid {
        /// The domain id.
        domid: u16,
        /// Which table.
        kind: TableKind,
        /// The rule broken.
        error: vstats_abi::Error,
    },
    /// The consumer refused the mapping for another reason (its limits).
    #[error("domain {domid}: {kind} stats table: {error}")]
    Table {
        /// The domain id.
        domid: u16,
        /// Which table.
        kind: TableKind,
        /// The consumer's error.
        error: vstats_consumer::Error,
    },
    /// The table (its header, or the hypervisor's size query) claims more
    /// memory than the backend maps.
    #[error(
        "domain {domid}: {kind} stats table claims {need} bytes, more than {MAX_FRAMES} frames"
    )]
    TooLarge {
        /// The domain id.
        domid: u16,
        /// Which table.
        kind: TableKind,
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

/// The symbolic name of an errno the backend classifies, else its text.
fn errno_name(io: &io::Error) -> String {
    let name = match io.raw_os_error() {
        Some(libc::EOPNOTSUPP) => "EOPNOTSUPP",
        Some(libc::ENOSYS) => "ENOSYS",
        Some(libc::ENOTTY) => "ENOTTY",
        Some(libc::ENOENT) => "ENOENT",
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::EPERM) => "EPERM",
        Some(libc::EACCES) => "EACCES",
        Some(libc::ESRCH) => "ESRCH",
        _ => return io.to_string(),
    };
    name.to_owned()
}

/// Why Xen refused a mapping, by errno.
fn refusal_text(io: &io::Error) -> String {
    match io.raw_os_error() {
        Some(libc::EPERM) => "only the control domain or the domain's device model may map it \
                              (EPERM)"
            .to_owned(),
        Some(libc::EACCES) => "Xen maps resources only into PV domains and the hardware domain \
                               (EACCES)"
            .to_owned(),
        _ => io.to_string(),
    }
}

/// Why an interface did not open, by errno; root is never told to run as
/// root.
fn open_text(interface: Interface, io: &io::Error) -> String {
    match io.raw_os_error() {
        Some(libc::ENOENT | libc::ENODEV | libc::ENXIO)
            if interface == Interface::ForeignMemory =>
        {
            format!(
            "{io}: no /dev/xen/privcmd (not running in a Xen domain, or the xen-privcmd module \
             is not loaded)"
        )
        }
        Some(libc::ENOENT | libc::ECONNREFUSED) if interface == Interface::XenStore => {
            format!("{io}: xenstored is not running, or this is not a Xen domain")
        }
        Some(libc::EACCES | libc::EPERM) if !is_root() => format!("{io} (run as root in dom0)"),
        _ => io.to_string(),
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Result type of this module.
pub type Result<T> = std::result::Result<T, Error>;

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
        Err(e) => {
            let reason = e.to_string();
            if library_exists(&name, &reason) {
                Err(Error::LibraryUnloadable { lib: name, reason })
            } else {
                Err(Error::LibraryMissing { lib: name, reason })
            }
        }
    }
}

/// Whether a library the loader refused exists: a path is looked up; for a
/// bare name (searched on the loader's path) the loader's message tells.
fn library_exists(name: &str, reason: &str) -> bool {
    if name.contains('/') {
        std::path::Path::new(name).exists()
    } else {
        !reason.contains("No such file or directory")
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
    /// Whether this domain is Xen's control domain (dom0), which decides
    /// what `EPERM` means.
    control_domain: bool,
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
    /// [`Error::LibraryMissing`], [`Error::LibraryUnloadable`],
    /// [`Error::MissingSymbol`], [`Error::Open`].
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
            interface: Interface::ForeignMemory,
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
                control_domain: is_control_domain(),
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

    /// The resource's size in frames, when the library can tell: the size
    /// query, read as an errno when Xen 4.17 leaked one through it, and
    /// bounded by [`MAX_FRAMES`].
    fn resource_frames(&self, domid: u16, kind: TableKind) -> Option<Result<u64>> {
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
                kind.resource_id(),
                &mut size,
            )
        };
        let fail = |io| {
            classify(
                domid,
                kind,
                0,
                io,
                Call::SizeQuery,
                self.handle.control_domain,
            )
        };
        if rc != 0 {
            return Some(Err(fail(io::Error::last_os_error())));
        }
        let size = size as u64;
        Some(match frames_of_size(size) {
            Err(errno) => Err(fail(io::Error::from_raw_os_error(errno))),
            Ok(frames) if frames > MAX_FRAMES => Err(Error::TooLarge {
                domid,
                kind,
                need: size,
            }),
            Ok(frames) => Ok(frames),
        })
    }

    /// Maps `nr_frames` frames of table `kind` read-only.
    fn map_frames(
        &self,
        domid: u16,
        kind: TableKind,
        nr_frames: u64,
        call: Call,
    ) -> Result<(NonNull<u8>, usize, ResourceMapping)> {
        let control = self.handle.control_domain;
        let bad = |io| classify(domid, kind, nr_frames, io, call, control);
        if nr_frames == 0 || nr_frames > MAX_FRAMES {
            return Err(Error::TooLarge {
                domid,
                kind,
                need: nr_frames.saturating_mul(XEN_FRAME_SIZE),
            });
        }
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
                kind.resource_id(),
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

    /// Maps domain `domid`'s table of kind `kind` read-only and
    /// validates it; the returned table unmaps it when dropped.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchDomain`], [`Error::OwnDomain`],
    /// [`Error::PermissionDenied`], [`Error::NotOffered`], [`Error::Map`],
    /// [`Error::Invalid`] (the rule broken), [`Error::TooLarge`],
    /// [`Error::Table`].
    pub fn map_table(&self, domid: u16, kind: TableKind) -> Result<Table> {
        let frames_for = |bytes: u64| {
            let frames = bytes.div_ceil(XEN_FRAME_SIZE).max(1);
            if frames > MAX_FRAMES {
                Err(Error::TooLarge {
                    domid,
                    kind,
                    need: bytes,
                })
            } else {
                Ok(frames)
            }
        };
        let (mut frames, mut call) = match self.resource_frames(domid, kind) {
            Some(Ok(frames)) => (frames, Call::Map),
            Some(Err(e)) => return Err(e),
            None => (1, Call::Probe),
        };
        for _ in 0..4 {
            let (ptr, len, owner) = self.map_frames(domid, kind, frames, call)?;
            call = Call::Map;
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
                    return Err(Error::Invalid { domid, kind, error });
                }
                Err(error) => return Err(Error::Table { domid, kind, error }),
            }
        }
        Err(Error::Map {
            domid,
            kind,
            nr_frames: frames,
            io: io::Error::other("the table's size kept changing while it was mapped"),
        })
    }

    /// Maps domain `domid`'s table of kind `kind` read-only as raw memory for the
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
    pub fn map_raw(
        &self,
        domid: u16,
        kind: TableKind,
    ) -> Result<vstats_consumer::mem::MemView<'static>> {
        let frames = match self.map_table(domid, kind) {
            Ok(t) => t.info().mapped_len.div_ceil(XEN_FRAME_SIZE).max(1),
            Err(Error::Invalid { .. }) => match self.resource_frames(domid, kind) {
                Some(Ok(frames)) => frames,
                _ => 1,
            },
            Err(e) => return Err(e),
        };
        let (ptr, len, owner) = self.map_frames(domid, kind, frames, Call::Map)?;
        // SAFETY: `[ptr, ptr + len)` is the read-only mapping `owner` keeps
        // alive until it is dropped, after the view's last access; this
        // process never writes it.
        unsafe {
            vstats_consumer::mem::MemView::from_raw_parts(ptr.as_ptr(), len, Some(Box::new(owner)))
        }
        .map_err(|_| Error::Map {
            domid,
            kind,
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
        let vcpu = self.map_table(domid, TableKind::Vcpu)?;
        let domain = match self.map_table(domid, TableKind::Domain) {
            Ok(t) => Some(t),
            Err(Error::NotOffered { .. }) => None,
            Err(e) => return Err(e),
        };
        Ok((vcpu, domain))
    }
}

/// Which call failed, for [`classify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
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

/// Whether this domain is Xen's control domain: its privcmd capabilities
/// say `control_d`.
fn is_control_domain() -> bool {
    std::fs::read_to_string("/proc/xen/capabilities").is_ok_and(|s| s.contains("control_d"))
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
            interface: Interface::XenStore,
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
