//! What to sample: a table file, a VM's directory (by path or by name
//! under the root), or a Xen domain; opening it, noticing a restart, and
//! opening it again.

use std::{
    io,
    path::{Path, PathBuf},
};

use vstats_consumer::Table;

use crate::{
    error::{Error, Result},
    xen::{self, Xen},
};

/// The publication directory's names, defined once in `vstats-abi`: the
/// default root (`/dev/shm/vstats`), the environment variable that
/// changes it (`--root` wins), and the table file names.
pub use vstats_abi::publish::{DEFAULT_ROOT, DOMAIN_FILE, ROOT_ENV, VCPU_FILE};

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
    if !exists(&dir)? {
        return Err(Error::NoSuchVm {
            name: name.to_owned(),
            dir,
        });
    }
    Ok(dir)
}

/// Where a table comes from, and how to open it again.
#[derive(Clone, Debug)]
pub enum Origin {
    /// A file.
    File(PathBuf),
    /// A Xen resource.
    Xen {
        /// The loaded library.
        xen: Xen,
        /// The domain.
        domid: u16,
        /// The resource id (0 vCPU, 1 domain).
        id: u32,
    },
}

/// One open table and where it came from.
#[derive(Debug)]
pub struct Source {
    /// The table.
    pub table: Table,
    /// Where it came from.
    pub origin: Origin,
}

impl Source {
    /// A description for messages: the path, or `domain N vCPU table`.
    pub fn describe(&self) -> String {
        match &self.origin {
            Origin::File(p) => p.display().to_string(),
            Origin::Xen { domid, id, .. } => {
                let what = if *id == 0 { "vCPU" } else { "domain" };
                format!("domain {domid} {what} stats table")
            }
        }
    }

    /// Whether the producer restarted since the table was opened: the
    /// header or generation changed in place ([`Table::is_stale`]), or, for
    /// a file, a new file took its name or it was removed
    /// ([`Table::file_replaced`]).
    ///
    /// # Errors
    ///
    /// An I/O error checking the file.
    pub fn restarted(&self) -> Result<bool> {
        if self.table.is_stale() {
            return Ok(true);
        }
        match self.origin {
            Origin::File(_) => Ok(self.table.file_replaced()?),
            Origin::Xen { .. } => Ok(false),
        }
    }

    /// Opens the table again (after a restart).
    ///
    /// # Errors
    ///
    /// [`Error::TableRemoved`] when the file no longer exists; otherwise
    /// as when it was first opened.
    pub fn reopen(&self) -> Result<Source> {
        let table = match &self.origin {
            Origin::File(path) => match Table::open(path) {
                Ok(t) => t,
                Err(vstats_consumer::Error::Io { io, .. })
                    if io.kind() == io::ErrorKind::NotFound =>
                {
                    return Err(Error::TableRemoved { path: path.clone() })
                }
                Err(e) => return Err(e.into()),
            },
            Origin::Xen { xen, domid, id } => xen.map_table(*domid, *id)?,
        };
        Ok(Source {
            table,
            origin: self.origin.clone(),
        })
    }
}

/// An attached target: its vCPU table and its domain table, either of
/// which may be missing (not both).
#[derive(Debug)]
pub struct Attached {
    /// The VM's name (the `vm` label): directory name, or the Xen domain's
    /// name (`domain-N` when xenstore cannot tell).
    pub vm: String,
    /// What was asked for, for messages: a path or `domain N`.
    pub origin: String,
    /// The Xen domain id, for `--domid`.
    pub domid: Option<u16>,
    /// The vCPU table.
    pub vcpu: Option<Source>,
    /// The domain table.
    pub domain: Option<Source>,
}

/// An I/O error on `path` as the consumer reports them (permission denied
/// apart).
pub(crate) fn io_error(path: &Path, io: io::Error) -> Error {
    let path = path.to_owned();
    Error::Consumer(if io.kind() == io::ErrorKind::PermissionDenied {
        vstats_consumer::Error::PermissionDenied { path, io }
    } else {
        vstats_consumer::Error::Io { path, io }
    })
}

/// Whether `path` exists; an error when that cannot be told (a directory
/// on the way is not searchable).
pub(crate) fn exists(path: &Path) -> Result<bool> {
    path.try_exists().map_err(|e| io_error(path, e))
}

fn open_file(path: &Path) -> Result<Source> {
    Ok(Source {
        table: Table::open(path)?,
        origin: Origin::File(path.to_owned()),
    })
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// Opens a VM directory: `vcpu` and `domain`, whichever exist.
fn open_dir(dir: &Path, vm: String) -> Result<Attached> {
    let vcpu_path = dir.join(VCPU_FILE);
    let domain_path = dir.join(DOMAIN_FILE);
    let vcpu = exists(&vcpu_path)?
        .then(|| open_file(&vcpu_path))
        .transpose()?;
    let domain = exists(&domain_path)?
        .then(|| open_file(&domain_path))
        .transpose()?;
    if vcpu.is_none() && domain.is_none() {
        // Distinguish "not there" from "cannot look" (permission).
        if let Err(e) = std::fs::read_dir(dir) {
            return Err(io_error(dir, e));
        }
        return Err(Error::NoTable {
            dir: dir.to_owned(),
        });
    }
    Ok(Attached {
        vm,
        origin: dir.display().to_string(),
        domid: None,
        vcpu,
        domain,
    })
}

impl Attached {
    /// Opens `target`.
    ///
    /// A path that is a directory is a VM directory. A path that is a file
    /// is a vCPU or domain table, as its magic says; a vCPU table file
    /// named `vcpu` brings its sibling `domain` along when there is one.
    ///
    /// # Errors
    ///
    /// No such file or VM ([`Error::NoSuchVm`], an I/O error naming the
    /// path), permission denied, an invalid table (naming the rule), and
    /// the Xen backend's errors (no such domain, library missing).
    pub fn open(target: &Target) -> Result<Attached> {
        match target {
            Target::Path(p) if p.is_dir() => {
                let vm = file_name(&std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()));
                open_dir(p, vm)
            }
            Target::Path(p) => {
                let src = open_file(p)?;
                let dir = p.parent().unwrap_or(Path::new("."));
                let vm = file_name(&std::fs::canonicalize(dir).unwrap_or_else(|_| dir.into()));
                let origin = p.display().to_string();
                if !src.table.is_vcpu() {
                    return Ok(Attached {
                        vm,
                        origin,
                        domid: None,
                        vcpu: None,
                        domain: Some(src),
                    });
                }
                let sibling = dir.join(DOMAIN_FILE);
                let domain = if p.file_name() == Some(VCPU_FILE.as_ref()) && exists(&sibling)? {
                    Some(open_file(&sibling)?)
                } else {
                    None
                };
                Ok(Attached {
                    vm,
                    origin,
                    domid: None,
                    vcpu: Some(src),
                    domain,
                })
            }
            Target::Name { root, name } => open_dir(&named_dir(root, name)?, name.clone()),
            Target::Domid(domid) => {
                let xen = Xen::load()?;
                let (vcpu, domain) = xen.map_domain(*domid)?;
                let vm = xen::XenStore::open()
                    .ok()
                    .and_then(|xs| xs.name(*domid))
                    .unwrap_or_else(|| format!("domain-{domid}"));
                let src = |table, id| Source {
                    table,
                    origin: Origin::Xen {
                        xen: xen.clone(),
                        domid: *domid,
                        id,
                    },
                };
                Ok(Attached {
                    vm,
                    origin: format!("domain {domid}"),
                    domid: Some(*domid),
                    vcpu: Some(src(vcpu, 0)),
                    domain: domain.map(|t| src(t, 1)),
                })
            }
        }
    }

    /// The sources, vCPU table first.
    pub fn sources(&self) -> impl Iterator<Item = &Source> {
        self.vcpu.iter().chain(self.domain.iter())
    }

    /// Which table restarted, if any (see [`Source::restarted`]).
    ///
    /// # Errors
    ///
    /// An I/O error checking a file.
    pub fn restarted(&self) -> Result<Option<&Source>> {
        for s in self.sources() {
            if s.restarted()? {
                return Ok(Some(s));
            }
        }
        Ok(None)
    }

    /// Opens every table again (after a restart).
    ///
    /// # Errors
    ///
    /// As [`Source::reopen`].
    pub fn reopen(&self) -> Result<Attached> {
        Ok(Attached {
            vm: self.vm.clone(),
            origin: self.origin.clone(),
            domid: self.domid,
            vcpu: self.vcpu.as_ref().map(Source::reopen).transpose()?,
            domain: self.domain.as_ref().map(Source::reopen).transpose()?,
        })
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
