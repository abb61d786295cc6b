//! Liveness: whether a VM directory's producer is running, stopped, or
//! died without cleaning up.
//!
//! A producer (`vstats_producer::publish::Publication`) holds two locks
//! on its VM directory for as long as its process lives: an exclusive
//! `flock` (one producer per name) and, taken right after it, a shared
//! open-file-description lock over the whole directory
//! (`fcntl(F_OFD_SETLK, F_RDLCK)`), the **liveness lock**. The kernel
//! drops both when the process exits, by a signal too. A reader asks
//! about the liveness lock with `fcntl(F_OFD_GETLK)`, which reports a
//! conflicting lock without taking one: a probe never holds a lock, so it
//! can never make a starting producer's non-blocking `flock` fail (a
//! reader taking `LOCK_SH` for a moment would).
//!
//! | [`Liveness`] | the liveness lock | tables (`vcpu`, `domain`) |
//! |---|---|---|
//! | [`Liveness::Live`] | held | any |
//! | [`Liveness::Dead`] | free | at least one present |
//! | [`Liveness::Stopped`] | free | none, or no directory |
//!
//! A producer that stops cleanly removes its tables (and its directory),
//! so "stopped" is what it leaves; "dead" is a producer killed (or
//! crashed) with its tables left behind: their values are frozen. A
//! starting producer is "stopped" or "dead" (its predecessor's tables)
//! until it has taken its locks, and "live" from then on.
//!
//! Probing costs an `open`, an `fcntl` and, when the lock is free, two
//! `fstatat`: cheap, but not free, so [`crate::follow::Vm::follow`]
//! probes at attach time and then at most every [`PROBE_INTERVAL`], not
//! on every snapshot.
//!
//! [`prune`] removes a dead producer's directory safely.
#![allow(unsafe_code)]

use std::{
    ffi::{CStr, CString, OsStr},
    fmt, io,
    os::{
        fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::{Path, PathBuf},
    time::Duration,
};

use vstats_abi::{
    publish::{DOMAIN_FILE, VCPU_FILE},
    TableKind, HDR_MARKER,
};

use crate::{Error, Result};

/// How often a follower probes at most ([`crate::follow::Vm::follow`]).
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// The state of a VM's producer. See the [module](self) docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Liveness {
    /// A process holds the directory's liveness lock: the tables are
    /// being kept up to date.
    Live,
    /// No producer, and no tables: the producer stopped cleanly (or has
    /// not published yet). For Xen: the domain is gone.
    Stopped,
    /// No producer, but tables are there: the producer died without
    /// removing them, and their values are frozen. For Xen: the domain is
    /// dying.
    Dead,
}

impl Liveness {
    /// `live`, `stopped` or `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Live => "live",
            Liveness::Stopped => "stopped",
            Liveness::Dead => "dead",
        }
    }
}

impl fmt::Display for Liveness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// `openat(dir, name, flags | O_CLOEXEC)`; `dir` `None` for `AT_FDCWD`.
fn openat(dir: Option<BorrowedFd<'_>>, name: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let at = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `name` is a NUL-terminated string and `at` an open fd or
    // AT_FDCWD for the call's duration.
    let fd = unsafe { libc::openat(at, name.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens a directory without following a symlink in its last component.
fn open_dir(at: Option<BorrowedFd<'_>>, name: &CStr) -> io::Result<OwnedFd> {
    openat(
        at,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
    )
}

/// `fstat` of `fd`.
fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: all-zero is a valid `stat`, which the kernel overwrites.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `st` a valid, writable `stat`.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`; `None` when there is no
/// such entry.
fn stat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Option<libc::stat>> {
    // SAFETY: all-zero is a valid `stat`, which the kernel overwrites.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `dir` is open, `name` NUL-terminated, `st` valid and
    // writable.
    let r = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r == 0 {
        return Ok(Some(st));
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::NotFound {
        Ok(None)
    } else {
        Err(e)
    }
}

/// Whether some process holds a liveness lock (any `fcntl` lock) on the
/// directory (or file) open as `dir`, asked with `F_OFD_GETLK`: nothing
/// is locked by asking.
///
/// # Errors
///
/// The `fcntl` error (a file system without locks).
pub fn lock_held(dir: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: all-zero is a valid `flock` (offset 0, length 0: the whole
    // file; l_pid 0, which F_OFD_GETLK requires).
    let mut lk: libc::flock = unsafe { std::mem::zeroed() };
    lk.l_type = libc::F_WRLCK as _;
    lk.l_whence = libc::SEEK_SET as _;
    // SAFETY: `dir` is open for the call's duration and `lk` a valid,
    // writable `struct flock`.
    if unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_OFD_GETLK, &mut lk) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i32::from(lk.l_type) != libc::F_UNLCK)
}

/// The liveness of the VM directory open as `dir` (see the
/// [module](self) docs).
///
/// # Errors
///
/// The `fcntl` or `fstatat` error.
pub fn probe_fd(dir: BorrowedFd<'_>) -> io::Result<Liveness> {
    if lock_held(dir)? {
        return Ok(Liveness::Live);
    }
    for name in [c"vcpu", c"domain"] {
        if stat_at(dir, name)?.is_some() {
            return Ok(Liveness::Dead);
        }
    }
    Ok(Liveness::Stopped)
}

/// The liveness of the VM directory `dir`: [`Liveness::Stopped`] when it
/// does not exist. The directory is opened without following a symlink
/// in its last component and without taking any lock.
///
/// # Errors
///
/// [`Error::Io`] ([`Error::PermissionDenied`]) naming `dir`: it cannot be
/// opened (a symlink, not a directory) or probed.
pub fn probe(dir: &Path) -> Result<Liveness> {
    let c = cstr(dir.as_os_str()).map_err(|e| Error::io(dir, e))?;
    let fd = match open_dir(None, &c) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Liveness::Stopped),
        Err(e) => return Err(Error::io(dir, e)),
    };
    probe_fd(fd.as_fd()).map_err(|e| Error::io(dir, e))
}

/// The liveness of the producer of a table file or VM directory: `path`
/// itself when it is a directory, else the file's directory (`.` for a
/// bare file name). As [`probe`].
///
/// # Errors
///
/// As [`probe`].
pub fn probe_path(path: &Path) -> Result<Liveness> {
    if path.is_dir() {
        return probe(path);
    }
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => probe(d),
        _ => probe(Path::new(".")),
    }
}

/// Why [`prune`] left a directory alone, or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PruneError {
    /// Its producer is alive (it holds the liveness lock or the `flock`).
    #[error("{}: not pruned: its producer is live", dir.display())]
    Live {
        /// The VM directory.
        dir: PathBuf,
    },
    /// It is not a directory, or is a symlink.
    #[error("{}: not pruned: not a directory (or a symlink)", dir.display())]
    NotADirectory {
        /// The path.
        dir: PathBuf,
    },
    /// Another user owns it, or one of its files.
    #[error("{}: not pruned: owned by uid {owner}, not by uid {euid}", path.display())]
    NotOwned {
        /// The directory or file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// This process's effective user.
        euid: u32,
    },
    /// It holds something that is not a vstats table file.
    #[error("{}: not pruned: {reason}", path.display())]
    Foreign {
        /// The entry.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The name was replaced while pruning.
    #[error("{}: not pruned: replaced while pruning", dir.display())]
    Replaced {
        /// The VM directory.
        dir: PathBuf,
    },
    /// A system call failed.
    #[error("{}: cannot prune: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> PruneError + '_ {
    move |source| PruneError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Whether the regular file `name` under `dir` starts with a vstats
/// table magic, or is a table its producer retired (magic 0, the frozen
/// marker at byte 16). Opened `O_NOFOLLOW | O_NONBLOCK`, so that a FIFO or a
/// symlink is never followed or waited on.
fn is_table(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<bool> {
    use std::io::Read;
    let fd = openat(
        Some(dir),
        name,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
    )?;
    let st = fstat(fd.as_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(false);
    }
    let mut magic = [0u8; 4];
    let mut f = std::fs::File::from(fd);
    if f.read_exact(&mut magic).is_err() {
        return Ok(false);
    }
    let m = u32::from_ne_bytes(magic);
    if m == 0 {
        // A table its producer retired (P15) keeps its header but for the
        // magic: the frozen marker at byte 16 says it is one.
        let mut rest = [0u8; 16];
        if f.read_exact(&mut rest).is_err() {
            return Ok(false);
        }
        return Ok(u32::from_ne_bytes([rest[12], rest[13], rest[14], rest[15]]) == HDR_MARKER);
    }
    Ok(TableKind::from_magic(m).is_some())
}

/// Removes VM directory `name` under `root` if its producer is dead (or
/// stopped, leaving the directory behind), and returns what it was; a
/// live producer's directory is left alone ([`PruneError::Live`]).
///
/// Safe against a producer starting meanwhile and against other users:
///
/// * everything is relative to the root's fd and the VM directory's fd,
///   opened `O_DIRECTORY | O_NOFOLLOW` (a symlinked VM directory is
///   refused);
/// * the directory and each file must belong to this process's effective
///   user ([`PruneError::NotOwned`]);
/// * it takes the producers' own exclusive `flock` (non-blocking) for the
///   time of the removal, so no producer can take the name meanwhile (one
///   starting then fails as if the name were in use; its retry succeeds),
///   and checks the liveness lock is free;
/// * it checks the name still leads to the directory it locked, and
///   lists the entries of that very directory (`/proc/self/fd/<fd>`; no
///   `/proc` is an I/O error);
/// * each entry must be a regular file named `vcpu` or `domain` (or a
///   producer's temporary `vcpu.tmp.<pid>` / `domain.tmp.<pid>`) that
///   starts with a table magic; anything else refuses the whole directory
///   ([`PruneError::Foreign`]) before anything is removed;
/// * files are removed with `unlinkat`, the directory with
///   `unlinkat(AT_REMOVEDIR)`, which fails on a directory that is not
///   empty.
///
/// # Errors
///
/// [`PruneError`], naming the reason.
pub fn prune(root: &Path, name: &OsStr) -> std::result::Result<Liveness, PruneError> {
    let dir_path = root.join(name);
    let root_c = cstr(root.as_os_str()).map_err(io_at(root))?;
    let root_fd = openat(None, &root_c, libc::O_RDONLY | libc::O_DIRECTORY).map_err(io_at(root))?;
    let root_fd = root_fd.as_fd();
    let name_c = cstr(name).map_err(io_at(&dir_path))?;
    let dir = match open_dir(Some(root_fd), &name_c) {
        Ok(fd) => fd,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
            return Err(PruneError::NotADirectory { dir: dir_path })
        }
        Err(e) => return Err(io_at(&dir_path)(e)),
    };
    let dir_fd = dir.as_fd();
    let st = fstat(dir_fd).map_err(io_at(&dir_path))?;
    // SAFETY: geteuid cannot fail and has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if st.st_uid != euid {
        return Err(PruneError::NotOwned {
            path: dir_path,
            owner: st.st_uid,
            euid,
        });
    }
    // SAFETY: `dir` is open for the call's duration.
    if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        return Err(if e.kind() == io::ErrorKind::WouldBlock {
            PruneError::Live { dir: dir_path }
        } else {
            io_at(&dir_path)(e)
        });
    }
    // Locked (until `dir` is closed): no producer can start here now.
    let state = probe_fd(dir_fd).map_err(io_at(&dir_path))?;
    if state == Liveness::Live {
        return Err(PruneError::Live { dir: dir_path });
    }
    match stat_at(root_fd, &name_c).map_err(io_at(&dir_path))? {
        Some(now) if now.st_dev == st.st_dev && now.st_ino == st.st_ino => {}
        _ => return Err(PruneError::Replaced { dir: dir_path }),
    }
    // The entries, read through the locked directory's fd.
    let listing = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let mut names = Vec::new();
    for e in std::fs::read_dir(&listing).map_err(io_at(&dir_path))? {
        let e = e.map_err(io_at(&dir_path))?;
        names.push(e.file_name());
    }
    for n in &names {
        let path = dir_path.join(n);
        let b = n.as_bytes();
        let known = [VCPU_FILE, DOMAIN_FILE].iter().any(|t| {
            let t = t.as_bytes();
            b == t
                || (b.len() > t.len() + 5
                    && b.starts_with(t)
                    && b[t.len()..].starts_with(b".tmp.")
                    && b[t.len() + 5..].iter().all(u8::is_ascii_digit))
        });
        if !known {
            return Err(PruneError::Foreign {
                path,
                reason: "not a table file's name",
            });
        }
        let c = cstr(n).map_err(io_at(&path))?;
        let Some(fst) = stat_at(dir_fd, &c).map_err(io_at(&path))? else {
            continue;
        };
        if fst.st_uid != euid {
            return Err(PruneError::NotOwned {
                path,
                owner: fst.st_uid,
                euid,
            });
        }
        if fst.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(PruneError::Foreign {
                path,
                reason: "not a regular file",
            });
        }
        if !is_table(dir_fd, &c).map_err(io_at(&path))? {
            return Err(PruneError::Foreign {
                path,
                reason: "not a vstats table",
            });
        }
    }
    for n in &names {
        let path = dir_path.join(n);
        let c = cstr(n).map_err(io_at(&path))?;
        // SAFETY: `dir` is open and `c` NUL-terminated.
        if unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) } != 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::NotFound {
                return Err(io_at(&path)(e));
            }
        }
    }
    // SAFETY: `root_fd` is open and `name_c` NUL-terminated.
    if unsafe { libc::unlinkat(root_fd.as_raw_fd(), name_c.as_ptr(), libc::AT_REMOVEDIR) } != 0 {
        return Err(io_at(&dir_path)(io::Error::last_os_error()));
    }
    Ok(state)
}

/// What [`prune_root`] did with one VM directory whose producer was
/// found dead or stopped.
#[derive(Debug)]
pub struct Pruned {
    /// The VM directory.
    pub dir: PathBuf,
    /// Its producer's state when probed before pruning.
    pub state: Liveness,
    /// What [`prune`] gave: the directory removed, or why not.
    pub result: std::result::Result<Liveness, PruneError>,
}

/// [`prune`]s every VM directory under `root` ([`crate::discover::list`],
/// by name) whose producer [`probe`]s dead or stopped; live producers'
/// directories, and those whose liveness cannot be told, are not touched.
///
/// # Errors
///
/// As [`crate::discover::list`]: `root` cannot be read (one that does not
/// exist holds nothing to prune).
pub fn prune_root(root: &Path) -> Result<Vec<Pruned>> {
    let mut out = Vec::new();
    for vm in crate::discover::list(root)? {
        let Ok(state @ (Liveness::Dead | Liveness::Stopped)) = probe(&vm.dir) else {
            continue;
        };
        let Some(name) = vm.dir.file_name() else {
            continue;
        };
        let result = prune(root, name);
        out.push(Pruned {
            dir: vm.dir,
            state,
            result,
        });
    }
    Ok(out)
}

/// The liveness a Xen error means: a domain that no longer exists
/// ([`crate::xen::Error::NoSuchDomain`], `ESRCH` from Xen, which a dying
/// domain gives too once its resources are released) is
/// [`Liveness::Stopped`]: there are no tables left to be frozen. `None`
/// for any other error, which says nothing about the domain.
#[cfg(feature = "xen")]
pub fn xen_liveness(e: &Error) -> Option<Liveness> {
    match e {
        Error::Xen(x) if matches!(**x, crate::xen::Error::NoSuchDomain { .. }) => {
            Some(Liveness::Stopped)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use vstats_producer::{builder::TableBuilder, publish::Publication};

    use super::*;

    fn temp_root(what: &str) -> PathBuf {
        let r = std::env::temp_dir().join(format!("vstats-live-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&r);
        r
    }

    fn publish(root: &Path, name: &str) -> Publication {
        let mut p = Publication::create(root, name).unwrap();
        let plan = TableBuilder::vcpu(1).build().unwrap();
        // Unmapped, not retired: the table stays as its producer wrote it.
        p.publish("vcpu", &plan).unwrap().forsake();
        p
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "directories, files and locks are beyond Miri's isolation"
    )]
    fn live_dead_and_stopped() {
        let root = temp_root("states");
        assert_eq!(probe(&root.join("vm")).unwrap(), Liveness::Stopped);
        let p = publish(&root, "vm");
        let dir = root.join("vm");
        assert_eq!(probe(&dir).unwrap(), Liveness::Live, "the lock is held");
        // Probing takes no lock: a second producer is still refused by
        // the first one's lock only, and the first keeps it.
        assert_eq!(probe(&dir).unwrap(), Liveness::Live);
        p.abandon();
        assert_eq!(probe(&dir).unwrap(), Liveness::Dead, "tables, no lock");
        let p = publish(&root, "vm");
        assert_eq!(probe(&dir).unwrap(), Liveness::Live, "taken over");
        p.remove().unwrap();
        assert_eq!(probe(&dir).unwrap(), Liveness::Stopped, "removed");
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(probe(&dir).unwrap(), Liveness::Stopped, "empty directory");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "directories, files and locks are beyond Miri's isolation"
    )]
    fn prune_removes_only_dead_tables() {
        let root = temp_root("prune");
        let live = publish(&root, "live");
        publish(&root, "dead").abandon();
        publish(&root, "odd").abandon();
        std::fs::write(root.join("odd/notes"), b"mine").unwrap();
        publish(&root, "fake").abandon();
        std::fs::write(root.join("fake/domain"), b"not a table").unwrap();
        symlink(root.join("dead"), root.join("link")).unwrap();

        assert!(matches!(
            prune(&root, "live".as_ref()),
            Err(PruneError::Live { .. })
        ));
        assert!(matches!(
            prune(&root, "odd".as_ref()),
            Err(PruneError::Foreign { ref path, .. }) if path.ends_with("odd/notes")
        ));
        assert!(matches!(
            prune(&root, "fake".as_ref()),
            Err(PruneError::Foreign { ref path, .. }) if path.ends_with("fake/domain")
        ));
        assert!(matches!(
            prune(&root, "link".as_ref()),
            Err(PruneError::NotADirectory { .. })
        ));
        assert!(root.join("odd/vcpu").exists(), "a refusal removes nothing");
        assert_eq!(prune(&root, "dead".as_ref()).unwrap(), Liveness::Dead);
        assert!(!root.join("dead").exists());
        assert_eq!(probe(&root.join("live")).unwrap(), Liveness::Live);
        live.remove().unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "directories, files and locks are beyond Miri's isolation"
    )]
    fn prune_root_prunes_dead_leaves_live_and_reports_refusals() {
        let root = temp_root("prune-root");
        assert!(prune_root(&root).unwrap().is_empty(), "no root, nothing");
        let live = publish(&root, "live");
        publish(&root, "dead").abandon();
        publish(&root, "odd").abandon();
        std::fs::write(root.join("odd/notes"), b"mine").unwrap();
        assert_eq!(probe_path(&root.join("dead/vcpu")).unwrap(), Liveness::Dead);
        assert_eq!(probe_path(&root.join("live")).unwrap(), Liveness::Live);

        let pruned = prune_root(&root).unwrap();
        let names: Vec<_> = pruned.iter().map(|p| p.dir.file_name().unwrap()).collect();
        assert_eq!(names, ["dead", "odd"], "sorted by name; live left out");
        assert!(pruned.iter().all(|p| p.state == Liveness::Dead));
        assert!(matches!(pruned[0].result, Ok(Liveness::Dead)));
        assert!(matches!(pruned[1].result, Err(PruneError::Foreign { .. })));
        assert!(!root.join("dead").exists() && root.join("odd/vcpu").exists());
        assert_eq!(probe(&root.join("live")).unwrap(), Liveness::Live);
        live.remove().unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "directories, files and locks are beyond Miri's isolation"
    )]
    fn the_follower_reports_a_death_when_it_probes() {
        use crate::follow::{Event, Vm};
        let root = temp_root("follow");
        let p = publish(&root, "vm");
        let dir = root.join("vm");
        let mut vm = Vm::open_dir(&dir, "vm".into()).unwrap();
        assert_eq!(vm.liveness(), Some(Liveness::Live), "probed at attach");
        assert_eq!(vm.follow().unwrap(), None, "live: nothing to report");
        p.abandon();
        // `liveness` reports the last probe; it does not probe.
        assert_eq!(vm.liveness(), Some(Liveness::Live));
        vm.set_probe_interval(Duration::ZERO);
        assert_eq!(
            vm.follow().unwrap(),
            Some(Event::ProducerDied { dir: dir.clone() })
        );
        assert_eq!(vm.liveness(), Some(Liveness::Dead));
        assert_eq!(vm.follow().unwrap(), None, "reported once");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
