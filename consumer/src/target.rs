//! What a front end reads: a table file, a VM's directory (by path or by
//! name under the root), or a Xen domain, opened as a [`Vm`] that follows
//! its producer ([`crate::follow`]).

use std::path::{Path, PathBuf};

use crate::{follow::Vm, Error, Result};

/// What to attach to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A table file, or a directory holding `vcpu` and/or `domain`.
    Path(PathBuf),
    /// `<root>/<name>/`.
    Name {
        /// The base directory.
        root: PathBuf,
        /// The VM name.
        name: String,
    },
    /// A Xen domain (resource `XENMEM_resource_stats_table`).
    Domid(u16),
}

/// Checks that `name` names a directory under the root, by the one name
/// rule of [`vstats_abi::publish::check_name`].
///
/// # Errors
///
/// [`Error::InvalidName`].
pub fn check_name(name: &str) -> Result<()> {
    vstats_abi::publish::check_name(name).map_err(|e| Error::InvalidName {
        name: name.to_owned(),
        reason: e.summary(),
    })
}

/// The directory of the VM called `name` under `root`.
///
/// # Errors
///
/// [`Error::InvalidName`], [`Error::NoSuchVm`] when it does not exist, an
/// I/O error when that cannot be told (a directory on the way is not
/// searchable).
pub fn named_dir(root: &Path, name: &str) -> Result<PathBuf> {
    check_name(name)?;
    let dir = root.join(name);
    if !dir.try_exists().map_err(|e| Error::io(&dir, e))? {
        return Err(Error::NoSuchVm {
            name: name.to_owned(),
            dir,
        });
    }
    Ok(dir)
}

/// Opens `target`: a path as [`Vm::open_path`] opens it, a name under
/// its root, a Xen domain named after xenstore (`domain-N` when xenstore
/// cannot tell; feature `xen`).
///
/// # Errors
///
/// No such file or VM ([`Error::NoSuchVm`], an I/O error naming the
/// path), permission denied, an invalid table (naming the rule), and
/// the Xen backend's errors (no such domain, library missing).
pub fn open(target: &Target) -> Result<Vm> {
    match target {
        Target::Path(p) => Vm::open_path(p),
        Target::Name { root, name } => Vm::open_dir(&named_dir(root, name)?, name.clone()),
        Target::Domid(domid) => open_domain(*domid),
    }
}

#[cfg(feature = "xen")]
fn open_domain(domid: u16) -> Result<Vm> {
    let xen = crate::xen::Xen::load()?;
    let name = crate::xen::XenStore::open()
        .ok()
        .and_then(|xs| xs.name(domid))
        .unwrap_or_else(|| format!("domain-{domid}"));
    Vm::open_domain(&xen, domid, name)
}

#[cfg(not(feature = "xen"))]
fn open_domain(domid: u16) -> Result<Vm> {
    Err(Error::Io {
        path: PathBuf::from(format!("domain {domid}")),
        io: std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "this build has no Xen backend (feature `xen`)",
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["vm1", "a.b", "x-y_z"] {
            check_name(ok).unwrap();
        }
        for bad in ["", "a/b", ".", "..", "a\0"] {
            assert!(
                matches!(check_name(bad), Err(Error::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "directories, files and locks are beyond Miri's isolation"
    )]
    fn named_dir_exists_or_says_so() {
        let root = std::env::temp_dir().join(format!("vstats-target-{}", std::process::id()));
        std::fs::create_dir_all(root.join("vm1")).unwrap();
        assert_eq!(named_dir(&root, "vm1").unwrap(), root.join("vm1"));
        assert!(matches!(
            named_dir(&root, "vm2"),
            Err(Error::NoSuchVm { ref name, ref dir }) if name == "vm2" && *dir == root.join("vm2")
        ));
        assert!(matches!(
            named_dir(&root, ".."),
            Err(Error::InvalidName { .. })
        ));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
