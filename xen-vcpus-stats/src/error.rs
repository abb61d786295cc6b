//! The tool's own errors, and the exit code of every error. The
//! consumer's errors (and through them the Xen backend's) are used as
//! they are: their messages are the tool's.

use std::path::PathBuf;

use vstats_consumer::Error as ConsumerError;

use crate::xen;

/// Exit code of a successful run (also after Ctrl-C ends an unbounded
/// sampling run). The codes are `vstats_invariants::report`'s.
pub const EXIT_OK: u8 = vstats_invariants::report::EXIT_PASS;
/// Exit code of an error: no such domain, VM or file, permission denied,
/// a missing Xen library, an I/O error, an unknown counter name.
pub const EXIT_ERROR: u8 = vstats_invariants::report::EXIT_ERROR;
/// Exit code of a command line clap rejects (clap's own convention).
pub const EXIT_USAGE: u8 = vstats_invariants::report::EXIT_USAGE;
/// Exit code when the table itself is at fault: it breaks a rule of the
/// ABI (the message names the rule), or a record stayed busy (mid-update)
/// past `--busy-timeout`.
pub const EXIT_BAD_TABLE: u8 = vstats_invariants::report::EXIT_VIOLATION;

/// Everything the tool can report: its own few errors, and the
/// consumer's (an invalid table, a stuck record, the Xen backend's).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The consumer's error, as it is.
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
    /// The command line is incomplete in a way clap cannot tell.
    #[error("{0}")]
    Usage(String),
    /// The VM's producer is dead: its tables are there but no process
    /// holds their directory's liveness lock, so their values are frozen
    /// ([`vstats_consumer::live::Liveness::Dead`]).
    #[error("{vm}: its producer is dead (no process holds the directory's liveness lock): the values are frozen")]
    ProducerDead {
        /// The VM: its directory or table file.
        vm: String,
    },
    /// The table file went away and nothing replaced it.
    #[error("{}: the table was removed (its producer stopped)", .path.display())]
    TableRemoved {
        /// The file.
        path: PathBuf,
    },
}

impl Error {
    /// The exit code this error ends the program with.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Consumer(e) => consumer_exit_code(e),
            Error::Usage(_) => EXIT_USAGE,
            _ => EXIT_ERROR,
        }
    }
}

impl From<xen::Error> for Error {
    fn from(e: xen::Error) -> Error {
        Error::Consumer(e.into())
    }
}

fn consumer_exit_code(e: &ConsumerError) -> u8 {
    if e.is_table_fault() {
        EXIT_BAD_TABLE
    } else {
        EXIT_ERROR
    }
}

/// The exit code for an error that ended [`crate::cli::run`]: the first
/// [`Error`] (or consumer error) in its chain decides, else
/// [`EXIT_ERROR`].
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Error>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<ConsumerError>() {
            return consumer_exit_code(e);
        }
    }
    EXIT_ERROR
}

/// Whether `err` is a write to a closed pipe: the reader of the output
/// went away, which ends a command's output rather than failing it.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_table_message_gives_the_rule_and_its_title() {
        let e = Error::from(vstats_consumer::Error::Invalid {
            path: None,
            error: vstats_abi::Error::DomainRecordCount { nr_records: 2 },
        });
        let text = e.to_string();
        assert!(
            text.ends_with("[rule R18: a domain table has exactly one record]"),
            "{text}"
        );
        assert_eq!(e.exit_code(), EXIT_BAD_TABLE);
    }
}
