//! The publication directory (feature `std`): where a user-space producer
//! publishes a VM's tables as files, and how it leaves.
//!
//! A [`Publication`] owns one VM directory, `<root>/<name>/` (names,
//! the name rule and each user's default root are
//! [`vstats_abi::publish`]'s). A producer often runs as root in a
//! world-writable `/dev/shm`, so it trusts no path:
//!
//! * **the root** is opened one component at a time from `/` (or the
//!   working directory), each `O_DIRECTORY | O_NOFOLLOW` relative to its
//!   parent's fd; a missing component is made with `mkdirat` relative to
//!   that fd in [`PublishOptions::root_mode`] (set with `fchmod`, not left
//!   to the umask). A symlink anywhere on the way is refused. Each
//!   ancestor must belong to root or to the producer's effective user,
//!   and the root itself to the effective user; a root-owned sticky
//!   directory such as `/dev/shm` or `/tmp` (mode `01777`) is also
//!   accepted as the root, because the sticky bit forbids other users to
//!   rename or remove what the producer creates there. Any of them
//!   writable by group or others without the sticky bit is refused
//!   ([`PublishError::WritableByOthers`]): its writers could move the VM
//!   directory away and put a symlink in its place;
//! * **the VM directory** is created with `mkdirat` relative to the root's
//!   fd, opened `O_DIRECTORY | O_NOFOLLOW`, refused if another user owns
//!   it, given [`PublishOptions::dir_mode`] and group, and locked with an
//!   exclusive `flock`: one producer per name. The lock is checked to be
//!   on the directory the name leads to (a directory removed and
//!   re-created meanwhile is retried);
//! * right after, the producer takes a shared open-file-description lock
//!   (`fcntl(F_OFD_SETLK, F_RDLCK)`) on the whole directory: the
//!   **liveness lock**. Readers test it with `F_OFD_GETLK`, which asks
//!   without taking anything, so a probing reader can never make a
//!   starting producer's `flock` fail. The kernel drops both locks when the
//!   producer's process dies, however it dies, so a directory whose tables
//!   are there but whose liveness lock is free belongs to a dead producer
//!   (`vstats_consumer::live`; docs/abi.md, "Liveness");
//! * every file operation is relative to that directory's fd (`openat`,
//!   `renameat`, `unlinkat`), never a path that a symlink could redirect;
//! * each table is written in a temporary file created `O_EXCL |
//!   O_NOFOLLOW`, given its mode and group with `fchown`/`fchmod`, sized
//!   with `fallocate` before it is mapped (a full tmpfs is an error,
//!   [`PublishError::NoSpace`], not a SIGBUS), initialised, then renamed
//!   into place, so a consumer never sees a half-made table; a failed step
//!   removes the temporary file;
//! * all tables of a publication share one fresh generation;
//! * on [`Publication::remove`] (or drop) it unlinks only the files whose
//!   device and inode are the ones it created, through the fd of the
//!   directory it locked (a directory removed meanwhile holds nothing to
//!   unlink), then removes the directory only if the name still leads to
//!   the one it created (same device and inode) and it is empty. So a
//!   producer whose directory was removed and re-made by another producer
//!   of the same name leaves that producer's tables and lock alone.
//!
//! The modes default to private ([`PublishOptions`]); docs/trust.md says
//! who may create the root and what a consumer trusts.
//!
//! # Examples
//!
//! ```
//! use vstats_producer::{builder::TableBuilder, publish::Publication};
//! # if cfg!(miri) { return; } // files and locks: beyond Miri's isolation
//!
//! let root = std::env::temp_dir().join(format!("vstats-pub-doc-{}", std::process::id()));
//! let mut publication = Publication::create(&root, "vm1").unwrap();
//! let plan = TableBuilder::vcpu(2).build().unwrap();
//! let mut vcpu = publication.publish("vcpu", &plan).unwrap();
//! let (_, mut writers) = vcpu.split();
//! writers.next().unwrap().update(|u| {
//!     u.set(0, 1_000);
//! });
//! assert!(root.join("vm1/vcpu").exists());
//! drop(writers);
//! drop(vcpu);
//! publication.remove().unwrap();
//! assert!(!root.join("vm1").exists());
//! # std::fs::remove_dir(&root).unwrap();
//! ```

use std::{
    ffi::{OsStr, OsString},
    fs, io,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    path::{Path, PathBuf},
    ptr::NonNull,
    string::{String, ToString},
    vec::Vec,
};

use memmap2::MmapRaw;
use rustix::{
    fs::{AtFlags, FileType, FlockOperation, Mode, OFlags},
    io::Errno,
};
use vstats_abi::publish::{self, check_name, NameError, ROOT_ENV};

use crate::{builder::TablePlan, shm::ShmTable, TableSpec, Writers};

/// What a [`PublishError::Io`] was doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Creating the root or the VM directory.
    CreateDir,
    /// Opening a directory.
    OpenDir,
    /// Taking the directory's `flock` or its liveness lock.
    Lock,
    /// `stat` of a directory or file.
    Stat,
    /// Creating a table's temporary file.
    Create,
    /// Setting a file's mode.
    Chmod,
    /// Setting a file's group.
    Chown,
    /// Allocating a table's file.
    Allocate,
    /// Mapping a table's file.
    Map,
    /// Renaming a table into place.
    Rename,
    /// Removing a table or the directory.
    Remove,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::CreateDir => "cannot create directory",
            Op::OpenDir => "cannot open directory",
            Op::Lock => "cannot lock directory",
            Op::Stat => "cannot stat",
            Op::Create => "cannot create",
            Op::Chmod => "cannot set the mode of",
            Op::Chown => "cannot set the group of",
            Op::Allocate => "cannot allocate",
            Op::Map => "cannot map",
            Op::Rename => "cannot publish",
            Op::Remove => "cannot remove",
        })
    }
}

/// Why a publication could not be made, extended or removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The VM name breaks the name rule.
    #[error("invalid VM name {name:?}: {source}")]
    Name {
        /// The name as given.
        name: String,
        /// The rule broken.
        source: NameError,
    },
    /// A table file name breaks the name rule (it must be one path
    /// component such as `vcpu`).
    #[error("invalid table file name {file:?}: {source}")]
    FileName {
        /// The name as given.
        file: String,
        /// The rule broken.
        source: NameError,
    },
    /// A system call on the directory or a file failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: Op,
        /// The directory or file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file system has no room for the table (`ENOSPC` from
    /// `fallocate`); the temporary file was removed.
    #[error("no space for a {need}-byte table at {}", path.display())]
    NoSpace {
        /// The table's path.
        path: PathBuf,
        /// Bytes the table needs.
        need: u64,
    },
    /// Another producer holds the directory's lock.
    #[error("{} is in use: another producer publishes there", path.display())]
    InUse {
        /// The directory.
        path: PathBuf,
    },
    /// The VM directory is a symbolic link, or not a directory.
    #[error("{} is not a directory (or is a symbolic link)", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The VM directory or the root belongs to another user, or an
    /// ancestor of the root to a user other than root and the producer's.
    #[error("{} belongs to uid {owner}, not to this producer's uid {euid}: refused, its owner could redirect the tables", path.display())]
    NotOwned {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The producer's effective uid.
        euid: u32,
    },
    /// The root or one of its ancestors is writable by users other than
    /// its owner and not sticky: they could rename the VM directory and
    /// put a symlink or their own directory in its place.
    #[error("{} has mode {mode:04o}: writable by other users without the sticky bit, refused", path.display())]
    WritableByOthers {
        /// The directory.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// The root has a `..` component.
    #[error("{}: a publication root may not contain `..`", path.display())]
    BadPath {
        /// The root as given.
        path: PathBuf,
    },
    /// The directory was removed or replaced every time it was locked.
    #[error("{} keeps being removed or replaced", path.display())]
    Unstable {
        /// The directory.
        path: PathBuf,
    },
    /// The table spec is invalid (nothing was created).
    #[error("{}: {source}", path.display())]
    Table {
        /// The table's path.
        path: PathBuf,
        /// Why.
        source: crate::Error,
    },
    /// The publication was already removed.
    #[error("{} was already removed", path.display())]
    Removed {
        /// The directory.
        path: PathBuf,
    },
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, PublishError>;

fn io_err(op: Op, path: &Path) -> impl FnOnce(Errno) -> PublishError + '_ {
    move |e| PublishError::Io {
        op,
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// Modes and group of what a publication creates. Applied with `fchmod`
/// and `fchown`, so the umask does not change them.
///
/// The default is private: tables `0o640` and the VM directory `0o750`,
/// in the producer's group, so only the producer's user, its group and
/// root can read a VM's activity. Give [`PublishOptions::group`] a group
/// of readers (an exporter's) to share them, or wider modes to publish to
/// every local user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishOptions {
    /// Mode of the root and of any missing ancestor when the publication
    /// creates them (default `0o755`: the VM names are listed to all,
    /// their tables are not). An existing root keeps its mode.
    pub root_mode: u32,
    /// Mode of the VM directory, set whether it was created or found
    /// (default `0o750`).
    pub dir_mode: u32,
    /// Mode of each table file (default `0o640`).
    pub file_mode: u32,
    /// Group (gid) of the VM directory and of each table file; `None`
    /// (the default) keeps the producer's group. A producer that is not
    /// root may only choose a group it belongs to.
    pub group: Option<u32>,
}

impl Default for PublishOptions {
    fn default() -> PublishOptions {
        PublishOptions {
            root_mode: 0o755,
            dir_mode: 0o750,
            file_mode: 0o640,
            group: None,
        }
    }
}

/// Mode and group of a table file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Access {
    pub(crate) mode: u32,
    pub(crate) group: Option<u32>,
}

/// Sets the group (if any), then the mode, of an open file or directory.
pub(crate) fn set_access(fd: impl AsFd, path: &Path, mode: u32, group: Option<u32>) -> Result<()> {
    if let Some(gid) = group {
        let gid = rustix::fs::Gid::from_raw(gid);
        rustix::fs::fchown(&fd, None, Some(gid)).map_err(io_err(Op::Chown, path))?;
    }
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(io_err(Op::Chmod, path))
}

/// Opens the root `root` (created if missing, with any missing
/// ancestor, in mode [`PublishOptions::root_mode`]) one component at a
/// time, each `O_DIRECTORY | O_NOFOLLOW` relative to its parent's fd, and
/// checks each as the [module](self) docs say. A relative root starts at
/// the working directory, which is checked as an ancestor. `vm_dir`, the
/// directory to be made in the root, names a file met on the way.
fn open_root(root: &Path, vm_dir: &Path, opts: PublishOptions) -> Result<OwnedFd> {
    use std::path::Component;
    let euid = rustix::process::geteuid().as_raw();
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut path = PathBuf::new();
    let start = if root.is_absolute() { "/" } else { "." };
    path.push(start);
    let mut fd =
        rustix::fs::open(start, dir_flags, Mode::empty()).map_err(io_err(Op::OpenDir, &path))?;
    let names: Vec<&OsStr> = root
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(Ok(n)),
            Component::ParentDir => Some(Err(())),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect::<std::result::Result<_, ()>>()
        .map_err(|()| PublishError::BadPath {
            path: root.to_path_buf(),
        })?;
    let st = rustix::fs::fstat(&fd).map_err(io_err(Op::Stat, &path))?;
    check_dir(&st, &path, euid, names.is_empty())?;
    for (i, name) in names.iter().enumerate() {
        path.push(name);
        let mut denied = None;
        let created = match rustix::fs::mkdirat(&fd, *name, Mode::from_raw_mode(opts.root_mode)) {
            Ok(()) => true,
            Err(Errno::EXIST) => false,
            // No right to create here: fine if it exists (the open says;
            // if it does not, the refusal is the reason).
            Err(e @ (Errno::ACCESS | Errno::PERM | Errno::ROFS)) => {
                denied = Some(e);
                false
            }
            Err(e) => return Err(io_err(Op::CreateDir, &path)(e)),
        };
        let next = match rustix::fs::openat(&fd, *name, dir_flags, Mode::empty()) {
            Ok(next) => next,
            Err(e @ (Errno::LOOP | Errno::NOTDIR)) => {
                let link = rustix::fs::statat(&fd, *name, AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| FileType::from_raw_mode(st.st_mode).is_symlink());
                return Err(if link {
                    PublishError::NotADirectory { path }
                } else {
                    // A file on the way: the VM directory cannot be made.
                    io_err(Op::CreateDir, vm_dir)(e)
                });
            }
            Err(e) => {
                return Err(match (e, denied) {
                    (Errno::NOENT, Some(d)) => io_err(Op::CreateDir, &path)(d),
                    _ => io_err(Op::OpenDir, &path)(e),
                })
            }
        };
        let mut st = rustix::fs::fstat(&next).map_err(io_err(Op::Stat, &path))?;
        if created && st.st_uid == euid {
            // The umask narrowed mkdir's mode: set the one asked for.
            set_access(&next, &path, opts.root_mode, None)?;
            st = rustix::fs::fstat(&next).map_err(io_err(Op::Stat, &path))?;
        }
        check_dir(&st, &path, euid, i + 1 == names.len())?;
        fd = next;
    }
    Ok(fd)
}

/// Opens the directory `dir` the way a publication root is opened (see
/// the [module](self) docs): one component at a time, `O_NOFOLLOW`, each
/// ancestor owned by root or the effective user, `dir` itself by the
/// effective user (or a root-owned sticky directory), none writable by
/// others without the sticky bit; missing components are created in
/// `mode`. For other writers that must not be redirected, such as the
/// exporter's xcp-rrdd plugin file: they then work relative to the
/// returned fd (`openat`, `renameat`).
///
/// # Errors
///
/// As [`Publication::create_dir`] for its root: [`PublishError::NotOwned`],
/// [`PublishError::WritableByOthers`], [`PublishError::NotADirectory`] (a
/// symlink on the way), [`PublishError::BadPath`] (a `..`),
/// [`PublishError::Io`].
pub fn open_safe_dir(dir: &Path, mode: u32) -> Result<OwnedFd> {
    let opts = PublishOptions {
        root_mode: mode,
        ..PublishOptions::default()
    };
    open_root(dir, dir, opts)
}

/// The checks of a root (`is_root`) or of one of its ancestors, made on
/// the open directory: see the [module](self) docs.
fn check_dir(st: &rustix::fs::Stat, path: &Path, euid: u32, is_root: bool) -> Result<()> {
    let mode = st.st_mode & 0o7777;
    let sticky = mode & 0o1000 != 0;
    let owner_ok = if is_root {
        st.st_uid == euid || (st.st_uid == 0 && sticky)
    } else {
        st.st_uid == euid || st.st_uid == 0
    };
    if !owner_ok {
        return Err(PublishError::NotOwned {
            path: path.to_path_buf(),
            owner: st.st_uid,
            euid,
        });
    }
    if mode & 0o022 != 0 && !sticky {
        return Err(PublishError::WritableByOthers {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// The identity of a file: its device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

impl FileId {
    fn of(st: &rustix::fs::Stat) -> FileId {
        #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
        FileId {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
        }
    }
}

/// The root to publish under: `$VSTATS_ROOT` when set and not empty,
/// else this user's default root ([`publish::default_root`]: the system
/// root [`DEFAULT_ROOT`](vstats_abi::publish::DEFAULT_ROOT) for root,
/// `$XDG_RUNTIME_DIR/vstats` or `/dev/shm/vstats-<uid>` for any other
/// user).
pub fn root_from_env() -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let env = |k| std::env::var_os(k).map(OsStringExt::into_vec);
    let (run, given) = (env(publish::RUNTIME_DIR_ENV), env(ROOT_ENV));
    let euid = rustix::process::geteuid().as_raw();
    let root = publish::default_root(euid, run.as_deref(), given.as_deref());
    PathBuf::from(OsString::from_vec(root.parts().concat()))
}

/// Takes the liveness lock on `dir`: a shared OFD lock over the whole
/// directory (an OFD lock, not a process-associated one, so that closing
/// another fd of the directory in this process does not drop it, and so
/// that a probe from this very process sees it).
fn set_liveness_lock(dir: &OwnedFd) -> std::result::Result<(), Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: `flock` is plain data; all-zero is a valid value (offset 0,
    // length 0: the whole file).
    #[allow(unsafe_code)]
    let mut lk: libc::flock = unsafe { std::mem::zeroed() };
    lk.l_type = libc::F_RDLCK as _;
    lk.l_whence = libc::SEEK_SET as _;
    // SAFETY: `dir` is an open fd for the call's duration and `lk` a valid
    // `struct flock` the kernel only reads.
    #[allow(unsafe_code)]
    let r = unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_OFD_SETLK, &lk) };
    if r == 0 {
        Ok(())
    } else {
        Err(Errno::from_io_error(&io::Error::last_os_error()).unwrap_or(Errno::IO))
    }
}

/// The liveness lock on a directory, held until dropped, for a producer
/// that publishes tables outside a [`Publication`] (with
/// `ShmTable::create` at a path of its own): without it, readers take the
/// directory's tables for a dead producer's. A [`Publication`] holds one
/// of its own.
#[derive(Debug)]
pub struct LivenessLock {
    _dir: OwnedFd,
}

impl LivenessLock {
    /// Opens `dir` (`O_DIRECTORY | O_NOFOLLOW`) and takes its liveness
    /// lock.
    ///
    /// # Errors
    ///
    /// [`PublishError::NotADirectory`] for a symlink or a non-directory,
    /// [`PublishError::Io`] for a failed open or lock.
    pub fn take(dir: &Path) -> Result<LivenessLock> {
        let fd = match rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::LOOP | Errno::NOTDIR) => {
                return Err(PublishError::NotADirectory {
                    path: dir.to_path_buf(),
                })
            }
            Err(e) => return Err(io_err(Op::OpenDir, dir)(e)),
        };
        set_liveness_lock(&fd).map_err(io_err(Op::Lock, dir))?;
        Ok(LivenessLock { _dir: fd })
    }
}

/// A file this publication created, to be removed by identity.
#[derive(Debug)]
struct Created {
    name: OsString,
    id: FileId,
}

/// A VM's publication directory, locked, and the tables published in it.
/// See the [module](self) docs.
#[derive(Debug)]
pub struct Publication {
    /// The VM directory, `O_DIRECTORY | O_NOFOLLOW`, `flock`ed.
    dir: OwnedFd,
    /// Its parent, for removing the directory itself.
    parent: OwnedFd,
    /// The directory's last path component.
    name: OsString,
    path: PathBuf,
    dir_id: FileId,
    created_dir: bool,
    opts: PublishOptions,
    generation: u64,
    files: Vec<Created>,
    /// Mappings of tables published with [`Publication::publish_with`],
    /// kept until the publication goes.
    maps: Vec<MmapRaw>,
    removed: bool,
}

impl Publication {
    /// Publishes VM `name` under `root` (`<root>/<name>/`), with the
    /// default modes.
    ///
    /// # Errors
    ///
    /// [`PublishError::Name`] for a name that breaks the rule, and the
    /// errors of [`Publication::create_dir`].
    pub fn create(root: &Path, name: &str) -> Result<Publication> {
        check_name(name).map_err(|source| PublishError::Name {
            name: name.to_string(),
            source,
        })?;
        Publication::create_dir(&root.join(name), PublishOptions::default())
    }

    /// Publishes in the directory `dir` (created if missing, as are its
    /// parents, the root), for producers told a directory rather than a
    /// name. The root (`dir`'s parent) and each of its ancestors are
    /// opened one component at a time and checked as the [module](self)
    /// docs say.
    ///
    /// # Errors
    ///
    /// [`PublishError::InUse`] when another producer holds it,
    /// [`PublishError::NotADirectory`] for a symlink or a non-directory
    /// (`dir` or any component of its root), [`PublishError::BadPath`],
    /// [`PublishError::NotOwned`] and [`PublishError::WritableByOthers`]
    /// for a directory another user controls, [`PublishError::Io`] naming the path
    /// and the step that failed, [`PublishError::Unstable`]. Nothing is
    /// left behind.
    pub fn create_dir(dir: &Path, opts: PublishOptions) -> Result<Publication> {
        let (parent_path, name) = match (dir.parent(), dir.file_name()) {
            (Some(p), Some(n)) => (p, n),
            _ => {
                return Err(PublishError::NotADirectory {
                    path: dir.to_path_buf(),
                })
            }
        };
        let parent = open_root(parent_path, dir, opts)?;
        for _ in 0..3 {
            if let Some(p) = Publication::try_lock(&parent, name, dir, opts)? {
                return Ok(p);
            }
        }
        Err(PublishError::Unstable {
            path: dir.to_path_buf(),
        })
    }

    /// One attempt at creating, opening and locking `parent/name`; `None`
    /// when the directory was replaced before it was locked.
    fn try_lock(
        parent: &OwnedFd,
        name: &OsStr,
        path: &Path,
        opts: PublishOptions,
    ) -> Result<Option<Publication>> {
        let created_dir =
            match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(opts.dir_mode)) {
                Ok(()) => true,
                Err(Errno::EXIST) => false,
                Err(e) => return Err(io_err(Op::CreateDir, path)(e)),
            };
        let dir = match rustix::fs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::LOOP | Errno::NOTDIR) => {
                return Err(PublishError::NotADirectory {
                    path: path.to_path_buf(),
                })
            }
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(io_err(Op::OpenDir, path)(e)),
        };
        let st = rustix::fs::fstat(&dir).map_err(io_err(Op::Stat, path))?;
        if !FileType::from_raw_mode(st.st_mode).is_dir() {
            return Err(PublishError::NotADirectory {
                path: path.to_path_buf(),
            });
        }
        let euid = rustix::process::geteuid().as_raw();
        if st.st_uid != euid {
            return Err(PublishError::NotOwned {
                path: path.to_path_buf(),
                owner: st.st_uid,
                euid,
            });
        }
        match rustix::fs::flock(&dir, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => {
                return Err(PublishError::InUse {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => return Err(io_err(Op::Lock, path)(e)),
        }
        set_liveness_lock(&dir).map_err(io_err(Op::Lock, path))?;
        let dir_id = FileId::of(&st);
        // The previous owner may have removed the directory between our
        // open and our lock: the lock must be on what the name leads to.
        match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(now) if FileId::of(&now) == dir_id => {}
            _ => return Ok(None),
        }
        // Ours and locked: the umask narrowed mkdir's mode, and an older
        // directory may have another: set the ones asked for.
        set_access(&dir, path, opts.dir_mode, opts.group)?;
        let parent = parent.try_clone().map_err(|source| PublishError::Io {
            op: Op::OpenDir,
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Some(Publication {
            dir,
            parent,
            name: name.to_os_string(),
            path: path.to_path_buf(),
            dir_id,
            created_dir,
            opts,
            generation: fresh_generation(),
            files: Vec::new(),
            maps: Vec::new(),
            removed: false,
        }))
    }

    /// The VM directory.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// The generation every table of this publication carries.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Device and inode of the files published so far (by name).
    pub fn files(&self) -> impl Iterator<Item = (&OsStr, FileId)> {
        self.files.iter().map(|c| (c.name.as_os_str(), c.id))
    }

    /// Mode and group of a table file.
    fn access(&self) -> Access {
        Access {
            mode: self.opts.file_mode,
            group: self.opts.group,
        }
    }

    fn check_file(&self, file: &str) -> Result<()> {
        if self.removed {
            return Err(PublishError::Removed {
                path: self.path.clone(),
            });
        }
        check_name(file).map_err(|source| PublishError::FileName {
            file: file.to_string(),
            source,
        })
    }

    /// Publishes `plan` as `<dir>/<file>` (replacing an earlier file of
    /// that name) under this publication's generation.
    ///
    /// # Errors
    ///
    /// [`PublishError::FileName`], [`PublishError::NoSpace`],
    /// [`PublishError::Table`] for a plan the producer refuses,
    /// [`PublishError::Io`]. The temporary file is removed on error.
    pub fn publish(&mut self, file: &str, plan: &TablePlan) -> Result<ShmTable> {
        let spec = plan.spec(self.generation);
        self.publish_spec(file, &spec)
    }

    /// As [`Publication::publish`], for a spec built by hand; its
    /// `generation` is used as given.
    ///
    /// # Errors
    ///
    /// As [`Publication::publish`].
    pub fn publish_spec(&mut self, file: &str, spec: &TableSpec<'_>) -> Result<ShmTable> {
        self.publish_spec_seeded(file, spec, |_| {})
    }

    /// As [`Publication::publish`], and `seed` writes records through the
    /// table's writers before the file is renamed into place, so a
    /// consumer never sees the table without them: how a producer keeps
    /// P10 (every existing vCPU's record written before the table is
    /// handed out).
    ///
    /// # Errors
    ///
    /// As [`Publication::publish`].
    pub fn publish_seeded(
        &mut self,
        file: &str,
        plan: &TablePlan,
        seed: impl FnOnce(Writers<'_>),
    ) -> Result<ShmTable> {
        let spec = plan.spec(self.generation);
        self.publish_spec_seeded(file, &spec, seed)
    }

    /// As [`Publication::publish_seeded`], for a spec built by hand.
    ///
    /// # Errors
    ///
    /// As [`Publication::publish`].
    pub fn publish_spec_seeded(
        &mut self,
        file: &str,
        spec: &TableSpec<'_>,
        seed: impl FnOnce(Writers<'_>),
    ) -> Result<ShmTable> {
        self.check_file(file)?;
        let path = self.path.join(file);
        let t = ShmTable::create_at(self.dir.as_fd(), &path, file, spec, self.access(), seed)?;
        self.files.push(Created {
            name: file.into(),
            id: t.file_id(),
        });
        Ok(t)
    }

    /// Publishes a `len`-byte file at `<dir>/<file>` whose bytes `init`
    /// writes through the mapping it is given (base address and length)
    /// before the file is renamed into place. The mapping stays valid, at
    /// that address, until the publication is removed or dropped. For
    /// callers that keep their table state elsewhere (the C API).
    ///
    /// # Errors
    ///
    /// As [`Publication::publish`]; `init`'s error as
    /// [`PublishError::Table`].
    pub fn publish_with(
        &mut self,
        file: &str,
        len: u64,
        init: impl FnOnce(NonNull<u8>, usize) -> std::result::Result<(), crate::Error>,
    ) -> Result<NonNull<u8>> {
        self.check_file(file)?;
        let path = self.path.join(file);
        let pending = Pending::create(self.dir.as_fd(), &path, file, len, self.access())?;
        let base = pending.base;
        let (map, _file, id) = pending.commit(|base, len| {
            init(base, len).map_err(|source| PublishError::Table {
                path: path.clone(),
                source,
            })
        })?;
        self.files.push(Created {
            name: file.into(),
            id,
        });
        self.maps.push(map);
        Ok(base)
    }

    /// Removes the files this publication created (each only if the name
    /// still leads to the very file: same device and inode), then the
    /// directory if this publication created it and it is empty, and
    /// releases the lock. Consumers that have a table mapped keep their
    /// mapping.
    ///
    /// # Errors
    ///
    /// [`PublishError::Io`] naming the first file or directory that could
    /// not be removed (a directory that is not empty is left, without
    /// error).
    pub fn remove(mut self) -> Result<()> {
        self.remove_files()
    }

    /// Leaves as a killed producer would: the files stay where they are
    /// and the lock is released, so another producer may take the name
    /// over (a restart, for tests of how consumers follow one).
    pub fn abandon(mut self) {
        self.removed = true;
    }

    fn remove_files(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.removed, true) {
            return Ok(());
        }
        let mut result = Ok(());
        for c in std::mem::take(&mut self.files) {
            let r = match rustix::fs::statat(&self.dir, &c.name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileId::of(&st) == c.id => {
                    rustix::fs::unlinkat(&self.dir, &c.name, AtFlags::empty())
                }
                // Gone, or replaced by someone else's file: not ours.
                _ => Ok(()),
            };
            if let Err(e) = r.or_else(|e| if e == Errno::NOENT { Ok(()) } else { Err(e) }) {
                if result.is_ok() {
                    result = Err(io_err(Op::Remove, &self.path.join(&c.name))(e));
                }
            }
        }
        self.maps.clear();
        if self.created_dir {
            let ours = matches!(
                rustix::fs::statat(&self.parent, &self.name, AtFlags::SYMLINK_NOFOLLOW),
                Ok(st) if FileId::of(&st) == self.dir_id
            );
            if ours {
                match rustix::fs::unlinkat(&self.parent, &self.name, AtFlags::REMOVEDIR) {
                    Ok(()) | Err(Errno::NOENT | Errno::NOTEMPTY | Errno::EXIST | Errno::BUSY) => {}
                    Err(e) => {
                        if result.is_ok() {
                            result = Err(io_err(Op::Remove, &self.path)(e));
                        }
                    }
                }
            }
        }
        result
    }
}

impl Drop for Publication {
    /// As [`Publication::remove`], ignoring errors.
    fn drop(&mut self) {
        let _ = self.remove_files();
    }
}

/// A generation number unlikely to repeat: wall-clock nanoseconds mixed
/// with the process id, never 0.
pub fn fresh_generation() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ (u64::from(std::process::id()) << 40)) | 1
}

/// A table file being made: created under a temporary name, allocated and
/// mapped, not yet renamed into place. Dropping it removes the
/// temporary file.
pub(crate) struct Pending<'d> {
    dir: BorrowedFd<'d>,
    tmp: OsString,
    file: OsString,
    path: PathBuf,
    fd: Option<fs::File>,
    map: Option<MmapRaw>,
    pub(crate) base: NonNull<u8>,
    pub(crate) len: usize,
}

impl<'d> Pending<'d> {
    /// Creates `<file>.tmp.<pid>` in `dir` (`O_EXCL | O_NOFOLLOW`, mode
    /// `mode`), allocates `len` bytes with `fallocate` and maps them.
    pub(crate) fn create(
        dir: BorrowedFd<'d>,
        path: &Path,
        file: &str,
        len: u64,
        access: Access,
    ) -> Result<Pending<'d>> {
        let mut tmp = OsString::from(file);
        tmp.push(std::format!(".tmp.{}", std::process::id()));
        // A stale temporary file of a process that had our pid: ours to
        // replace (the directory is locked by us).
        let _ = rustix::fs::unlinkat(dir, &tmp, AtFlags::empty());
        let fd = rustix::fs::openat(
            dir,
            &tmp,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(access.mode & 0o600),
        )
        .map_err(io_err(Op::Create, path))?;
        let mut p = Pending {
            dir,
            tmp,
            file: file.into(),
            path: path.to_path_buf(),
            fd: Some(fs::File::from(fd)),
            map: None,
            base: NonNull::dangling(),
            len: 0,
        };
        p.allocate_and_map(len, access)?;
        Ok(p)
    }

    fn allocate_and_map(&mut self, len: u64, access: Access) -> Result<()> {
        let path = self.path.clone();
        let fd = self
            .fd
            .as_ref()
            .ok_or_else(|| PublishError::Removed { path: path.clone() })?;
        set_access(fd, &path, access.mode, access.group)?;
        match rustix::fs::fallocate(fd, rustix::fs::FallocateFlags::empty(), 0, len) {
            Ok(()) => {}
            Err(Errno::NOSPC) => {
                return Err(PublishError::NoSpace { path, need: len });
            }
            // A file system without fallocate: size the file the old way.
            Err(Errno::OPNOTSUPP) => fd.set_len(len).map_err(|source| PublishError::Io {
                op: Op::Allocate,
                path: path.clone(),
                source,
            })?,
            Err(e) => return Err(io_err(Op::Allocate, &path)(e)),
        }
        let len = usize::try_from(len).map_err(|_| PublishError::NoSpace {
            path: path.clone(),
            need: len,
        })?;
        let map = memmap2::MmapOptions::new()
            .len(len)
            .map_raw(fd)
            .map_err(|source| PublishError::Io {
                op: Op::Map,
                path: path.clone(),
                source,
            })?;
        self.base = NonNull::new(map.as_mut_ptr()).ok_or_else(|| PublishError::Io {
            op: Op::Map,
            path,
            source: io::Error::other("mmap returned null"),
        })?;
        self.len = len;
        self.map = Some(map);
        Ok(())
    }

    /// Runs `init` on the mapping, then renames the file into place.
    /// Returns the mapping, the file and its identity.
    pub(crate) fn commit(
        mut self,
        init: impl FnOnce(NonNull<u8>, usize) -> Result<()>,
    ) -> Result<(MmapRaw, fs::File, FileId)> {
        init(self.base, self.len)?;
        let fd = self.fd.as_ref().ok_or_else(|| PublishError::Removed {
            path: self.path.clone(),
        })?;
        let id = FileId::of(&rustix::fs::fstat(fd).map_err(io_err(Op::Stat, &self.path))?);
        rustix::fs::renameat(self.dir, &self.tmp, self.dir, &self.file)
            .map_err(io_err(Op::Rename, &self.path))?;
        self.tmp.clear(); // renamed: nothing to clean up
        match (self.map.take(), self.fd.take()) {
            (Some(map), Some(file)) => Ok((map, file, id)),
            _ => Err(PublishError::Removed {
                path: self.path.clone(),
            }),
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.map = None;
        if !self.tmp.is_empty() {
            let _ = rustix::fs::unlinkat(self.dir, &self.tmp, AtFlags::empty());
        }
    }
}

impl std::fmt::Debug for Pending<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("path", &self.path)
            .field("tmp", &self.tmp)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::{format, os::unix::fs::PermissionsExt};

    use super::*;
    use crate::builder::TableBuilder;

    fn temp_root(what: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("vstats-pub-{what}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        root
    }

    /// A missing root that may not be created is reported as such
    /// ("cannot create directory: Operation not permitted"), not as the
    /// open that followed ("cannot open directory: No such file").
    #[test]
    #[cfg_attr(miri, ignore = "files, flock and mmap of a file are beyond Miri")]
    fn a_root_that_may_not_be_made_says_why() {
        // sysfs refuses mkdir to everyone, root included (EPERM; EACCES for
        // other users).
        if !Path::new("/sys/kernel").is_dir() {
            std::println!("skipped: no sysfs at /sys");
            return;
        }
        let dir = Path::new("/sys/kernel/vstats-no-such-dir");
        let err = open_safe_dir(dir, 0o755).unwrap_err();
        assert!(
            matches!(
                &err,
                PublishError::Io { op: Op::CreateDir, path, source }
                    if path == dir && source.kind() == io::ErrorKind::PermissionDenied
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("cannot create directory /sys/kernel/vstats-no-such-dir: "),
            "{err}"
        );
    }

    fn plan() -> TablePlan {
        TableBuilder::vcpu(2).build().unwrap()
    }

    #[test]
    #[cfg_attr(miri, ignore = "files, flock and mmap of a file are beyond Miri")]
    fn publishes_with_explicit_modes_and_removes_what_it_made() {
        let root = temp_root("modes");
        let opts = PublishOptions {
            dir_mode: 0o710,
            file_mode: 0o600,
            ..PublishOptions::default()
        };
        let mut p = Publication::create_dir(&root.join("vm"), opts).unwrap();
        let t = p.publish("vcpu", &plan()).unwrap();
        let d = p
            .publish("domain", &TableBuilder::domain().build().unwrap())
            .unwrap();
        assert_eq!(t.table().layout().nr_records, 2);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&root.join("vm")), 0o710);
        assert_eq!(mode(&root), 0o755, "the root it created");
        assert_eq!(mode(&root.join("vm/vcpu")), 0o600);
        assert_eq!(mode(&root.join("vm/domain")), 0o600);
        assert_eq!(p.files().count(), 2);
        let names: Vec<_> = fs::read_dir(root.join("vm"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
        drop((t, d));
        p.remove().unwrap();
        assert!(!root.join("vm").exists());
        fs::remove_dir(&root).unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore = "files, flock and mmap of a file are beyond Miri")]
    fn one_producer_per_name() {
        let root = temp_root("lock");
        let first = Publication::create(&root, "vm1").unwrap();
        match Publication::create(&root, "vm1") {
            Err(e @ PublishError::InUse { .. }) => assert!(e.to_string().contains("in use")),
            other => panic!("expected InUse, got {other:?}"),
        }
        assert!(
            root.join("vm1").is_dir(),
            "the refused producer removed nothing"
        );
        drop(first);
        assert!(!root.join("vm1").exists());
        // Free again.
        Publication::create(&root, "vm1").unwrap().remove().unwrap();
        fs::remove_dir(&root).unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore = "files, flock and mmap of a file are beyond Miri")]
    fn names_are_checked() {
        let root = temp_root("names");
        for bad in ["", "..", "a/b", "a b"] {
            assert!(
                matches!(
                    Publication::create(&root, bad),
                    Err(PublishError::Name { .. })
                ),
                "{bad:?}"
            );
        }
        let mut p = Publication::create(&root, "vm").unwrap();
        assert!(matches!(
            p.publish("../x", &plan()),
            Err(PublishError::FileName { .. })
        ));
        p.remove().unwrap();
        fs::remove_dir(&root).unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore = "files, flock and mmap of a file are beyond Miri")]
    fn a_symlinked_vm_directory_is_refused() {
        let root = temp_root("symlink");
        let victim = temp_root("symlink-victim");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&victim).unwrap();
        std::os::unix::fs::symlink(&victim, root.join("vm")).unwrap();
        assert!(matches!(
            Publication::create(&root, "vm"),
            Err(PublishError::NotADirectory { .. })
        ));
        assert_eq!(fs::read_dir(&victim).unwrap().count(), 0);
        fs::remove_file(root.join("vm")).unwrap();
        fs::remove_dir(&root).unwrap();
        fs::remove_dir(&victim).unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore = "files, flock and mmap of a file are beyond Miri")]
    fn removal_spares_a_file_that_replaced_ours() {
        let root = temp_root("spare");
        let mut p = Publication::create(&root, "vm").unwrap();
        let t = p.publish("vcpu", &plan()).unwrap();
        let dir = root.join("vm");
        fs::rename(dir.join("vcpu"), dir.join("old")).unwrap();
        fs::write(dir.join("vcpu"), b"someone else's").unwrap();
        drop(t);
        p.remove().unwrap();
        assert_eq!(fs::read(dir.join("vcpu")).unwrap(), b"someone else's");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore = "files, flock and mmap of a file are beyond Miri")]
    fn a_refused_spec_leaves_no_file() {
        let root = temp_root("refused");
        let mut p = Publication::create(&root, "vm").unwrap();
        let plan = plan();
        let bad = TableSpec {
            magic: 7,
            ..plan.spec(1)
        };
        assert!(matches!(
            p.publish_spec("vcpu", &bad),
            Err(PublishError::Table {
                source: crate::Error::BadMagic { magic: 7 },
                ..
            })
        ));
        assert_eq!(fs::read_dir(root.join("vm")).unwrap().count(), 0);
        assert_eq!(p.files().count(), 0);
        p.remove().unwrap();
        fs::remove_dir(&root).unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore = "files, flock and mmap of a file are beyond Miri")]
    fn one_generation_for_every_table() {
        let root = temp_root("generation");
        let mut p = Publication::create(&root, "vm").unwrap();
        let v = p.publish("vcpu", &plan()).unwrap();
        let d = p
            .publish("domain", &TableBuilder::domain().build().unwrap())
            .unwrap();
        let bytes = |path: &Path| fs::read(path).unwrap();
        for (t, path) in [(&v, root.join("vm/vcpu")), (&d, root.join("vm/domain"))] {
            let b = bytes(&path);
            let info = vstats_abi::validate(&b, b.len() as u64).unwrap();
            assert_eq!(info.generation(), p.generation());
            assert_eq!(t.path(), path);
        }
        drop((v, d));
        p.remove().unwrap();
        fs::remove_dir(&root).unwrap();
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    #[cfg_attr(miri, ignore = "files, flock and mmap of a file are beyond Miri")]
    fn the_default_modes_are_private() {
        let root = temp_root("private");
        let mut p = Publication::create(&root, "vm").unwrap();
        let t = p.publish("vcpu", &plan()).unwrap();
        assert_eq!(mode(&root), 0o755);
        assert_eq!(mode(&root.join("vm")), 0o750);
        assert_eq!(mode(&root.join("vm/vcpu")), 0o640);
        drop(t);
        p.remove().unwrap();
        fs::remove_dir(&root).unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore = "files, flock and mmap of a file are beyond Miri")]
    fn a_group_is_given_to_the_directory_and_the_tables() {
        use std::os::unix::fs::MetadataExt;
        let root = temp_root("group");
        // Our own group: any user may give it.
        let gid = rustix::process::getegid().as_raw();
        let opts = PublishOptions {
            group: Some(gid),
            ..PublishOptions::default()
        };
        let mut p = Publication::create_dir(&root.join("vm"), opts).unwrap();
        let t = p.publish("vcpu", &plan()).unwrap();
        assert_eq!(fs::metadata(root.join("vm")).unwrap().gid(), gid);
        assert_eq!(fs::metadata(root.join("vm/vcpu")).unwrap().gid(), gid);
        drop(t);
        p.remove().unwrap();
        fs::remove_dir(&root).unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore = "files, flock and mmap of a file are beyond Miri")]
    fn a_root_writable_by_others_is_refused_unless_sticky() {
        let root = temp_root("writable");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).unwrap();
        match Publication::create(&root, "vm") {
            Err(e @ PublishError::WritableByOthers { mode: 0o777, .. }) => {
                assert!(e.to_string().contains("0777"), "{e}");
            }
            other => panic!("expected WritableByOthers, got {other:?}"),
        }
        assert!(!root.join("vm").exists(), "nothing was created");
        fs::set_permissions(&root, fs::Permissions::from_mode(0o1777)).unwrap();
        Publication::create(&root, "vm").unwrap().remove().unwrap();
        fs::remove_dir(&root).unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore = "files, flock and mmap of a file are beyond Miri")]
    fn a_symlink_or_dotdot_in_the_root_is_refused() {
        let real = temp_root("real");
        let link = temp_root("link");
        fs::create_dir_all(real.join("r")).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(
            Publication::create(&link.join("r"), "vm"),
            Err(PublishError::NotADirectory { path }) if path == link
        ));
        assert!(matches!(
            Publication::create(&link, "vm"),
            Err(PublishError::NotADirectory { .. })
        ));
        assert!(matches!(
            Publication::create(&real.join("r/.."), "vm"),
            Err(PublishError::BadPath { .. })
        ));
        assert_eq!(fs::read_dir(real.join("r")).unwrap().count(), 0);
        assert!(!real.join("vm").exists());
        fs::remove_file(&link).unwrap();
        fs::remove_dir_all(&real).unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore = "files, flock and mmap of a file are beyond Miri")]
    fn a_root_of_another_user_is_refused() {
        if !rustix::process::geteuid().is_root() {
            std::println!("skipped: needs root to give a directory to another user");
            return;
        }
        let root = temp_root("owner");
        fs::create_dir(&root).unwrap();
        std::os::unix::fs::chown(&root, Some(65534), None).unwrap();
        match Publication::create(&root, "vm") {
            Err(e @ PublishError::NotOwned { owner: 65534, .. }) => {
                assert!(e.to_string().contains("uid 65534"), "{e}");
            }
            other => panic!("expected NotOwned, got {other:?}"),
        }
        assert!(!root.join("vm").exists());
        // A VM directory of another user, in our root, is refused too.
        std::os::unix::fs::chown(&root, Some(0), None).unwrap();
        fs::create_dir(root.join("vm")).unwrap();
        std::os::unix::fs::chown(root.join("vm"), Some(65534), None).unwrap();
        assert!(matches!(
            Publication::create(&root, "vm"),
            Err(PublishError::NotOwned { owner: 65534, .. })
        ));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore = "files, flock and mmap of a file are beyond Miri")]
    fn a_stopping_producer_spares_its_successors_tables_and_lock() {
        let root = temp_root("successor");
        let mut a = Publication::create(&root, "vm").unwrap();
        let ta = a.publish("vcpu", &plan()).unwrap();
        // An admin removes A's directory; B takes the name over.
        fs::remove_dir_all(root.join("vm")).unwrap();
        let mut b = Publication::create(&root, "vm").unwrap();
        let tb = b.publish("vcpu", &plan()).unwrap();
        let b_file = fs::read(root.join("vm/vcpu")).unwrap();
        drop(ta);
        a.remove().unwrap();
        assert_eq!(
            fs::read(root.join("vm/vcpu")).unwrap(),
            b_file,
            "B's table stays"
        );
        assert!(matches!(
            Publication::create(&root, "vm"),
            Err(PublishError::InUse { .. })
        ));
        drop(tb);
        b.remove().unwrap();
        assert!(!root.join("vm").exists());
        fs::remove_dir(&root).unwrap();
    }
}
