//! Loading the Xen libraries at run time: which library (a default name,
//! or the path an environment variable gives), `dlopen` with a message
//! that tells "not installed" from "not loadable", and typed symbol
//! lookup.
#![allow(unsafe_code)]

use libloading::Library;

use super::{Error, Result};

/// The foreign-memory library's file name.
pub const FOREIGNMEMORY_LIB: &str = "libxenforeignmemory.so.1";
/// Environment variable naming another foreign-memory library (tests).
pub const FOREIGNMEMORY_LIB_ENV: &str = "VSTATS_XENFOREIGNMEMORY_LIB";
/// The xenstore library's file name.
pub const XENSTORE_LIB: &str = "libxenstore.so.4";
/// Environment variable naming another xenstore library (tests).
pub const XENSTORE_LIB_ENV: &str = "VSTATS_XENSTORE_LIB";

/// A loaded library and the name or path it was loaded by.
pub(super) struct Loaded {
    /// The library; unloaded when dropped.
    pub(super) lib: Library,
    /// The name or path, for messages.
    pub(super) name: String,
}

impl Loaded {
    /// Loads `$env` when set, else `default`, from the loader's search
    /// path.
    ///
    /// # Errors
    ///
    /// [`Error::LibraryMissing`], [`Error::LibraryUnloadable`].
    pub(super) fn load(env: &str, default: &str) -> Result<Loaded> {
        let name = std::env::var(env).unwrap_or_else(|_| default.to_owned());
        // SAFETY: loading a library runs its initialisers. The library is
        // libxenforeignmemory or libxenstore (or what the administrator
        // named in the environment variable); neither has initialisers
        // with preconditions on the caller.
        match unsafe { Library::new(&name) } {
            Ok(lib) => Ok(Loaded { lib, name }),
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

    /// Copies the function pointer `symbol` out of the library.
    ///
    /// # Safety
    ///
    /// The caller promises that `T` is the symbol's C function type, and
    /// that the library stays loaded (this [`Loaded`] is not dropped) as
    /// long as the returned pointer is called.
    ///
    /// # Errors
    ///
    /// [`Error::MissingSymbol`].
    pub(super) unsafe fn symbol<T: Copy>(&self, symbol: &'static str) -> Result<T> {
        let mut c = symbol.as_bytes().to_vec();
        c.push(0);
        // SAFETY: the caller promises `T` is the symbol's type.
        match unsafe { self.lib.get::<T>(&c) } {
            Ok(s) => Ok(*s),
            Err(e) => Err(Error::MissingSymbol {
                lib: self.name.clone(),
                symbol,
                reason: e.to_string(),
            }),
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

/// Whether this process runs as root (effective uid 0), so that a refused
/// open is not answered with "run as root".
pub(super) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
