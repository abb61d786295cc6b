//! Discovery: the VMs published under a root directory
//! (`/dev/shm/vstats` unless `VSTATS_ROOT` says otherwise), one
//! subdirectory per VM holding its `vcpu` and `domain` table files. Xen
//! domains are listed by `xen::XenStore::domains` (feature `xen`).

use std::{
    io,
    path::{Path, PathBuf},
};

use crate::{follow::Vm, Error, Result};

pub use vstats_abi::publish::{DEFAULT_ROOT, ROOT_ENV};

/// The root directory: `$VSTATS_ROOT` when set and not empty, else
/// [`DEFAULT_ROOT`].
pub fn root() -> PathBuf {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let env = std::env::var_os(ROOT_ENV).map(OsStringExt::into_vec);
    PathBuf::from(std::ffi::OsStr::from_bytes(vstats_abi::publish::root_from(
        env.as_deref(),
    )))
}

/// A VM found under the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The VM's name: its directory's name.
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
}

impl Entry {
    /// Opens the VM's tables ([`Vm::open_dir`]).
    ///
    /// # Errors
    ///
    /// As [`Vm::open_dir`]: a directory without tables, an invalid table,
    /// I/O errors.
    pub fn open(&self) -> Result<Vm> {
        Vm::open_dir(&self.dir, self.name.clone())
    }
}

/// The VMs under `root` (each subdirectory, not a symbolic link to one),
/// sorted by name; an empty list
/// when `root` does not exist. Whether a directory holds valid tables is
/// for [`Entry::open`] to tell.
///
/// # Errors
///
/// I/O errors reading `root` other than "not found" ([`Error::Io`],
/// [`Error::PermissionDenied`]).
pub fn list(root: &Path) -> Result<Vec<Entry>> {
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(root, e)),
    };
    // The entry's own type (`d_type`, else `lstat`): a symbolic link to a
    // directory is not a VM directory, it is not followed.
    let mut dirs: Vec<PathBuf> = rd
        .filter_map(std::result::Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    Ok(dirs
        .into_iter()
        .map(|dir| Entry {
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            dir,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_directories_sorted() {
        let root = std::env::temp_dir().join(format!("vstats-list-{}", std::process::id()));
        assert_eq!(list(&root).unwrap(), [], "no root: nothing");
        for d in ["b", "a"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("file"), b"").unwrap();
        let l = list(&root).unwrap();
        let names: Vec<&str> = l.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b"], "directories only, by name");
        assert_eq!(l[0].dir, root.join("a"));
        assert!(matches!(l[0].open(), Err(Error::NoTable { .. })));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
