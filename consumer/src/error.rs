//! The one error type of the consumer.

use std::{
    fmt, io,
    path::{Path, PathBuf},
};

/// Everything that can go wrong opening or reading a table.
///
/// Each message is complete on its own (the inner ABI or I/O error is
/// part of it, not a separate `source()`), so `{err}` prints everything.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The table breaks a rule of the ABI (`docs/abi.md`); `error.rule()`
    /// names it.
    #[error(
        "{}: not a valid stats table: {error} [rule {}: {}]",
        Origin(.path), .error.rule(), .error.rule().title()
    )]
    Invalid {
        /// The file, `None` for raw memory.
        path: Option<PathBuf>,
        /// The rule broken, with the values that broke it.
        error: vstats_abi::Error,
    },
    /// The file could not be opened or mapped for lack of permission.
    #[error("{}: permission denied{}", .path.display(), denied_detail(.io))]
    PermissionDenied {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        io: io::Error,
    },
    /// Any other I/O error opening or mapping a file.
    #[error("{}: {io}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        io: io::Error,
    },
    /// The head of the table (`[0, offset)`: headers and descriptors) is
    /// larger than the consumer copies ([`crate::MAX_HEAD_LEN`]).
    #[error("{}: table head of {need} bytes exceeds the {cap}-byte limit", Origin(.path))]
    HeadTooLarge {
        /// The file, `None` for raw memory.
        path: Option<PathBuf>,
        /// Bytes the table's header asks for.
        need: u64,
        /// The limit.
        cap: u64,
    },
    /// The table has more record slots than the consumer reads
    /// ([`crate::MAX_RECORDS`]).
    #[error("{}: {nr_records} record slots exceed the limit of {cap}", Origin(.path))]
    TooManyRecords {
        /// The file, `None` for raw memory.
        path: Option<PathBuf>,
        /// Slots in the table.
        nr_records: u32,
        /// The limit.
        cap: u32,
    },
    /// The records hold more counter words in all than the consumer
    /// copies per snapshot ([`crate::MAX_COUNTER_WORDS`]).
    #[error(
        "{}: {nr_records} records of {per_record} counter words exceed the limit of {cap} \
         counter words per table",
        Origin(.path)
    )]
    TooManyCounterWords {
        /// The file, `None` for raw memory.
        path: Option<PathBuf>,
        /// Slots in the table.
        nr_records: u32,
        /// Counter words per record.
        per_record: u64,
        /// The limit on `nr_records * per_record`.
        cap: u64,
    },
    /// The path is not a regular file (a FIFO, a device, a directory, a
    /// socket, or a symbolic link where links are not followed): it was
    /// refused, without reading it.
    #[error("{}: not a regular file ({kind}); refused", .path.display())]
    NotRegularFile {
        /// The path.
        path: PathBuf,
        /// What it is: `"FIFO"`, `"character device"`, `"symbolic link"` ...
        kind: &'static str,
    },
    /// The table's file shrank while it was mapped (truncated, by its
    /// producer or anyone who may write it): a load of a page past the new
    /// end faulted (`SIGBUS`, survived), and the table can no longer be
    /// read. Its records read in that snapshot are marked not read.
    #[error("{}: the table file was truncated while mapped; the table is lost", Origin(.path))]
    Truncated {
        /// The file, `None` for raw memory.
        path: Option<PathBuf>,
    },
    /// A record stayed mid-update (odd seq) or kept changing for every
    /// attempt: its writer is updating it, or died while updating it.
    #[error("record {record} busy: seq {seq} after {attempts} read attempts")]
    Busy {
        /// Record index.
        record: u32,
        /// The last seq value seen.
        seq: u32,
        /// Attempts made.
        attempts: u32,
    },
    /// The record index is not a slot of the table.
    #[error("no record {record}: the table has {nr_records} record slots")]
    NoSuchRecord {
        /// The index asked for.
        record: u32,
        /// Slots in the table.
        nr_records: u32,
    },
    /// A raw mapping's address is null or not 8-aligned.
    #[error("mapping address {addr:#x} is null or not 8-byte aligned")]
    BadPointer {
        /// The address.
        addr: usize,
    },
    /// [`crate::Table::reopen`] or [`crate::Table::file_replaced`] on a
    /// table that was not opened from a file.
    #[error("the table was not opened from a file")]
    NotFileBacked,
    /// A VM name that names no directory under the root.
    #[error("no VM named {name:?}: {} does not exist", .dir.display())]
    NoSuchVm {
        /// The name asked for.
        name: String,
        /// The directory that would hold its tables.
        dir: PathBuf,
    },
    /// A VM name that cannot be a directory name
    /// ([`vstats_abi::publish::check_name`]).
    #[error("invalid VM name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A VM directory without a `vcpu` or `domain` table file.
    #[error("{}: no stats table in this directory (no `vcpu` or `domain` file)", .dir.display())]
    NoTable {
        /// The directory.
        dir: PathBuf,
    },
    /// A record stayed mid-update over too many snapshots for too long
    /// ([`crate::watch::StuckWatch`]).
    #[error(
        "{table}: table busy: record {record} stayed mid-update (seq {seq}) for {:.1} s \
         over {snapshots} snapshots; its writer is stuck or died during an update",
        .busy_for.as_secs_f64()
    )]
    Stuck {
        /// The table ([`crate::follow::Source::describe`]).
        table: String,
        /// Record index.
        record: u32,
        /// The (odd or changing) seq last seen.
        seq: u32,
        /// How long it has been busy.
        busy_for: std::time::Duration,
        /// Consecutive snapshots that found it busy.
        snapshots: u32,
    },
    /// A vCPU selection names a slot the table does not have.
    #[error("no vCPU {vcpu}: {target} has {nr_records} vCPU slots (0..={})", .nr_records.saturating_sub(1))]
    NoSuchVcpu {
        /// The vCPU asked for.
        vcpu: u32,
        /// The VM ([`crate::follow::Vm::origin`]).
        target: String,
        /// Its number of slots.
        nr_records: u32,
    },
    /// A vCPU selection for a VM without a vCPU table.
    #[error("{target}: no vCPU table, so no vCPU can be selected")]
    NoVcpuTable {
        /// The VM.
        target: String,
    },
    /// A name pattern matches no counter of the VM.
    #[error("no counter matches {pattern:?} in {target} (its schema lists the counters)")]
    NoSuchCounter {
        /// The pattern.
        pattern: String,
        /// The VM.
        target: String,
    },
    /// The Xen backend failed (boxed: a Xen error can hold a consumer
    /// error).
    #[cfg(feature = "xen")]
    #[error(transparent)]
    Xen(Box<crate::xen::Error>),
}

#[cfg(feature = "xen")]
impl From<crate::xen::Error> for Error {
    fn from(e: crate::xen::Error) -> Error {
        Error::Xen(Box::new(e))
    }
}

impl Error {
    /// The ABI rule broken, when this is [`Error::Invalid`].
    pub fn rule(&self) -> Option<vstats_abi::Rule> {
        match self {
            Error::Invalid { error, .. } => Some(error.rule()),
            _ => None,
        }
    }

    /// Whether the table is at fault: it breaks a rule of the ABI
    /// ([`Error::Invalid`], also one the Xen backend mapped) or a record
    /// stayed mid-update ([`Error::Stuck`]). A reader's "violation found"
    /// (exit code 3 in the tools), rather than "could not read".
    pub fn is_table_fault(&self) -> bool {
        match self {
            Error::Invalid { .. } | Error::Stuck { .. } => true,
            #[cfg(feature = "xen")]
            Error::Xen(x) => x.is_invalid_table(),
            _ => false,
        }
    }

    /// Maps an error opening a table file on `path`.
    pub(crate) fn open(path: &Path, e: crate::mmap::OpenError) -> Error {
        match e {
            crate::mmap::OpenError::Io(io) => Error::io(path, io),
            crate::mmap::OpenError::NotRegular(kind) => Error::NotRegularFile {
                path: path.to_path_buf(),
                kind,
            },
        }
    }

    /// Maps an I/O error on `path`: [`io::ErrorKind::PermissionDenied`]
    /// becomes [`Error::PermissionDenied`], anything else [`Error::Io`].
    pub fn io(path: &Path, io: io::Error) -> Error {
        let path = path.to_path_buf();
        if io.kind() == io::ErrorKind::PermissionDenied {
            Error::PermissionDenied { path, io }
        } else {
            Error::Io { path, io }
        }
    }
}

/// Where a table came from, for messages.
struct Origin<'a>(&'a Option<PathBuf>);

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, "{}", p.display()),
            None => f.write_str("<raw mapping>"),
        }
    }
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// `err` and its sources as one line, `outer: inner: ...`, as a front end
/// prints an error: like anyhow's `{:#}`, except that a source whose message
/// the line already holds is not repeated. Errors of this workspace (this
/// crate's, the producer's, `vstats-kvm-vmm`'s) put their source's message
/// into their own and also return it from `source()`, so that `{err}` alone
/// is complete; printed through a chain, the OS error came twice
/// (`cannot create directory /x: Not a directory (os error 20): Not a
/// directory (os error 20)`).
///
/// # Examples
///
/// ```
/// let e = std::io::Error::other("no space left for the table");
/// let line = vstats_consumer::error_line(&e);
/// assert_eq!(line, "no space left for the table");
/// ```
pub fn error_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let m = e.to_string();
        if !m.is_empty() && !line.contains(&m) {
            line.push_str(": ");
            line.push_str(&m);
        }
        next = e.source();
    }
    line
}

/// What a permission error adds to "permission denied": nothing for
/// `EACCES` (its text would say it again), the OS error otherwise
/// (`EPERM`, or an error that carries no code).
fn denied_detail(io: &io::Error) -> String {
    if io.raw_os_error() == Some(libc::EACCES) {
        String::new()
    } else {
        format!(" ({io})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_denied_is_its_own_variant() {
        // We run as root, so a mode-000 file opens anyway: test the
        // mapping with a synthetic error instead.
        let e = Error::io(
            Path::new("/x"),
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert!(matches!(e, Error::PermissionDenied { ref path, .. } if path == Path::new("/x")));
        assert!(e.to_string().starts_with("/x: permission denied"), "{e}");
        let e = Error::io(Path::new("/y"), io::Error::from(io::ErrorKind::NotFound));
        assert!(matches!(e, Error::Io { ref io, .. } if io.kind() == io::ErrorKind::NotFound));
        assert!(e.to_string().starts_with("/y: "), "{e}");
    }

    #[test]
    fn invalid_names_the_rule_and_the_origin() {
        let e = Error::Invalid {
            path: None,
            error: vstats_abi::Error::BadMagic { found: 1 },
        };
        assert_eq!(e.rule(), Some(vstats_abi::Rule::R2));
        assert!(e.to_string().starts_with("<raw mapping>: "), "{e}");
        assert!(e.to_string().contains("R2: magic 0x00000001"), "{e}");
        assert_eq!(Error::NotFileBacked.rule(), None);
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "Miri's strerror_r shim puts the error code in the text, so std says it twice"
    )]
    fn error_line_says_each_source_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot create directory /x: {source}")]
        struct WithSource {
            source: io::Error,
        }
        #[derive(Debug, thiserror::Error)]
        #[error("--out /x")]
        struct Outer {
            source: WithSource,
        }
        let e = Outer {
            source: WithSource {
                source: io::Error::from_raw_os_error(20),
            },
        };
        assert_eq!(
            error_line(&e),
            "--out /x: cannot create directory /x: Not a directory (os error 20)"
        );
        let lone = io::Error::from_raw_os_error(2);
        assert_eq!(error_line(&lone), "No such file or directory (os error 2)");
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "Miri's strerror_r shim puts the error code in the text, so std says it twice"
    )]
    fn permission_denied_says_it_once() {
        let p = Path::new("/t/vcpu");
        let e = Error::io(p, io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(e.to_string(), "/t/vcpu: permission denied");
        let e = Error::io(p, io::Error::from_raw_os_error(libc::EPERM));
        assert_eq!(
            e.to_string(),
            "/t/vcpu: permission denied (Operation not permitted (os error 1))"
        );
    }
}
