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

/// The root directory: `$VSTATS_ROOT` when set and not empty, else this
/// user's default root ([`vstats_abi::publish::default_root`]:
/// [`DEFAULT_ROOT`] for root, `$XDG_RUNTIME_DIR/vstats` or
/// `/dev/shm/vstats-<uid>` for another user).
pub fn root() -> PathBuf {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let env = |k| std::env::var_os(k).map(OsStringExt::into_vec);
    let (run, given) = (env(vstats_abi::publish::RUNTIME_DIR_ENV), env(ROOT_ENV));
    let r = vstats_abi::publish::default_root(
        vstats_abi::publish::euid(),
        run.as_deref(),
        given.as_deref(),
    );
    PathBuf::from(std::ffi::OsStr::from_bytes(&r.parts().concat()))
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

/// Where a VM of [`host`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A directory of table files under the root.
    File,
    /// A Xen domain's `stats_table` resources.
    Xen,
}

impl Backend {
    /// `"file"` or `"xen"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::File => "file",
            Backend::Xen => "xen",
        }
    }
}

/// A VM of this host, opened or not.
#[derive(Debug)]
pub struct HostVm {
    /// Where it comes from.
    pub backend: Backend,
    /// Its name: the directory's name, or the domain's name in xenstore
    /// (`domain-N` when xenstore cannot tell).
    pub name: String,
    /// Its directory, or `domain N`.
    pub source: String,
    /// The Xen domain id.
    pub domid: Option<u16>,
    /// The producer's liveness ([`crate::live`]); `None` when it cannot be
    /// told.
    pub producer: Option<crate::live::Liveness>,
    /// The VM, opened and following its producer, or why it could not be
    /// opened.
    pub vm: Result<Vm>,
}

/// Every VM of this host: the directories under `root` (by name), then,
/// when the Xen libraries load (feature `xen`), the domains xenstore
/// lists (by domid).
#[derive(Debug)]
pub struct Host {
    /// The VMs.
    pub vms: Vec<HostVm>,
    /// Why Xen domains are not listed (no Xen here, no permission, the
    /// library built without the Xen backend); `None` when they are.
    pub xen_unavailable: Option<String>,
}

/// Every VM of this host ([`Host`]): the one enumeration `list`, `top` and
/// the exporter share.
///
/// # Errors
///
/// As [`list`]: I/O errors reading `root` other than "not found". Xen
/// being unavailable is not an error ([`Host::xen_unavailable`]), nor is
/// a VM that cannot be opened ([`HostVm::vm`]).
pub fn host(root: &Path) -> Result<Host> {
    let mut vms: Vec<HostVm> = list(root)?
        .into_iter()
        .map(|e| HostVm {
            backend: Backend::File,
            source: e.dir.display().to_string(),
            domid: None,
            producer: crate::live::probe(&e.dir).ok(),
            vm: e.open(),
            name: e.name,
        })
        .collect();
    let xen_unavailable = xen_domains().map(|x| vms.extend(x)).err();
    Ok(Host {
        vms,
        xen_unavailable,
    })
}

#[cfg(feature = "xen")]
fn xen_domains() -> std::result::Result<Vec<HostVm>, String> {
    use crate::xen::{Xen, XenStore};
    let xen = Xen::load().map_err(|e| e.to_string())?;
    let xs = XenStore::open().map_err(|e| format!("cannot list domains: {e}"))?;
    let domains = xs
        .domains()
        .map_err(|e| format!("cannot list domains: {e}"))?;
    Ok(domains
        .into_iter()
        .map(|d| {
            let name = d.name.unwrap_or_else(|| format!("domain-{}", d.domid));
            let vm = Vm::open_domain(&xen, d.domid, name.clone());
            HostVm {
                backend: Backend::Xen,
                name,
                source: format!("domain {}", d.domid),
                domid: Some(d.domid),
                producer: match &vm {
                    Ok(_) => Some(crate::live::Liveness::Live),
                    Err(e) => crate::live::xen_liveness(e),
                },
                vm,
            }
        })
        .collect())
}

#[cfg(not(feature = "xen"))]
fn xen_domains() -> std::result::Result<Vec<HostVm>, String> {
    Err("this build has no Xen backend (feature `xen`)".to_owned())
}

/// The table files of a VM directory, unopened: `vcpu` then `domain`,
/// whichever exist. For tools that look at a table before (or instead
/// of) opening it, such as a checker.
///
/// # Errors
///
/// [`Error::NoTable`] when neither exists; I/O errors telling whether a
/// file exists or reading `dir` ([`Error::PermissionDenied`]).
pub fn table_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for kind in vstats_abi::TableKind::ALL {
        let p = dir.join(kind.file_name());
        if p.try_exists().map_err(|e| Error::io(&p, e))? {
            files.push(p);
        }
    }
    if files.is_empty() {
        // "Not there" or "cannot look".
        std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        return Err(Error::NoTable {
            dir: dir.to_owned(),
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(
        miri,
        ignore = "directories, files and locks are beyond Miri's isolation"
    )]
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

    #[test]
    #[cfg_attr(
        miri,
        ignore = "directories, files and locks are beyond Miri's isolation"
    )]
    fn table_files_are_those_there() {
        let dir = std::env::temp_dir().join(format!("vstats-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(matches!(table_files(&dir), Err(Error::NoTable { .. })));
        assert!(matches!(
            table_files(&dir.join("none")),
            Err(Error::Io { ref io, .. }) if io.kind() == io::ErrorKind::NotFound
        ));
        std::fs::write(dir.join("domain"), b"").unwrap();
        assert_eq!(table_files(&dir).unwrap(), [dir.join("domain")]);
        std::fs::write(dir.join("vcpu"), b"").unwrap();
        assert_eq!(
            table_files(&dir).unwrap(),
            [dir.join("vcpu"), dir.join("domain")]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
