//! libxenstore: list the domains under `/local/domain` and read their
//! names, nothing else.
//!
//! # Threads
//!
//! [`XenStore`] is `Send` and not `Sync`. An `xs_handle` is a connection
//! (a socket to xenstored, or the xenbus device) with the library's
//! buffers; it holds no thread-local state, and `xenstore.h` restricts it
//! only across `fork`. The header says nothing about two threads calling
//! with one handle at once, so this type does not allow it: a program
//! that lists domains from several threads opens one connection per thread
//! or puts one in a `Mutex`. Listing is rare (once per refresh of a host
//! view), so neither costs anything that matters.
#![allow(unsafe_code)]

use std::{
    ffi::{c_char, c_uint, c_ulong, c_void, CStr, CString},
    io,
    ptr::NonNull,
};

use libloading::Library;

use super::{
    loader::{Loaded, XENSTORE_LIB, XENSTORE_LIB_ENV},
    Error, Interface, Result,
};

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
///
/// `Send` but not `Sync`: the connection may move to another thread, but
/// `xenstore.h` promises nothing about two threads calling with one
/// handle at once, so a program listing domains from several threads
/// opens one connection per thread or puts one in a `Mutex`.
pub struct XenStore {
    h: NonNull<c_void>,
    close: XsCloseFn,
    directory: XsDirectoryFn,
    read: XsReadFn,
    _lib: Library,
}

// SAFETY: an `xs_handle` is a connection (a socket to xenstored or the
// xenbus device, and the library's buffers for it) with no thread-local
// state; xenstore.h restricts it only across fork ("only guaranteed to
// work in the parent"). It may be used from, and closed in, another
// thread. `XenStore` is not `Sync` (its `NonNull` keeps it so): the header
// promises nothing about two threads calling with one handle at once.
unsafe impl Send for XenStore {}

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
        let lib = Loaded::load(XENSTORE_LIB_ENV, XENSTORE_LIB)?;
        // SAFETY: the types are those of xenstore.h; the library moves
        // into the `XenStore` that holds the pointers. The same holds
        // below.
        let open: XsOpenFn = unsafe { lib.symbol("xs_open") }?;
        // SAFETY: as above.
        let close = unsafe { lib.symbol("xs_close") }?;
        // SAFETY: as above.
        let directory = unsafe { lib.symbol("xs_directory") }?;
        // SAFETY: as above.
        let read = unsafe { lib.symbol("xs_read") }?;
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
            _lib: lib.lib,
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

    /// The number of vCPUs the toolstack gave `domid`: the entries of
    /// `/local/domain/<domid>/cpu` that are vCPU numbers (the count an
    /// RFC v3 table does not carry, docs/abi.md 9.1).
    ///
    /// # Errors
    ///
    /// [`Error::XenStore`] when the directory cannot be read.
    pub fn vcpu_count(&self, domid: u16) -> Result<u32> {
        let cpus = self.directory(&format!("/local/domain/{domid}/cpu"))?;
        let n = cpus.iter().filter(|e| e.parse::<u32>().is_ok()).count();
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The name of `domid`, when xenstore has it.
    pub fn name(&self, domid: u16) -> Option<String> {
        self.read(&format!("/local/domain/{domid}/name")).ok()
    }
}
