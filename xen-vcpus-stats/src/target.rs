//! What to sample: a table file, a VM's directory (by path or by name
//! under the root), or a Xen domain, opened as a [`Vm`] that follows its
//! producer ([`vstats_consumer::follow`]).

use std::path::{Path, PathBuf};

use crate::{
    error::{Error, Result},
    xen::{self, Xen},
};

/// The table file names, defined once in `vstats-abi`.
pub use vstats_abi::publish::{DOMAIN_FILE, VCPU_FILE};
pub use vstats_consumer::follow::Vm;

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
/// I/O error when that cannot be told.
pub fn named_dir(root: &Path, name: &str) -> Result<PathBuf> {
    check_name(name)?;
    let dir = root.join(name);
    // An error when that cannot be told (a directory on the way is not
    // searchable).
    if !dir
        .try_exists()
        .map_err(|e| vstats_consumer::Error::io(&dir, e))?
    {
        return Err(Error::NoSuchVm {
            name: name.to_owned(),
            dir,
        });
    }
    Ok(dir)
}

/// Opens `target`: a path as [`Vm::open_path`] opens it, a name under
/// its root, a Xen domain named after xenstore (`domain-N` when xenstore
/// cannot tell).
///
/// # Errors
///
/// No such file or VM ([`Error::NoSuchVm`], an I/O error naming the
/// path), permission denied, an invalid table (naming the rule), and
/// the Xen backend's errors (no such domain, library missing).
pub fn open(target: &Target) -> Result<Vm> {
    match target {
        Target::Path(p) => Ok(Vm::open_path(p)?),
        Target::Name { root, name } => Ok(Vm::open_dir(&named_dir(root, name)?, name.clone())?),
        Target::Domid(domid) => {
            let xen = Xen::load()?;
            let name = xen::XenStore::open()
                .ok()
                .and_then(|xs| xs.name(*domid))
                .unwrap_or_else(|| format!("domain-{domid}"));
            Ok(Vm::open_domain(&xen, *domid, name)?)
        }
    }
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
}
