//! The tool's own errors, and the exit code of every error.

use std::path::PathBuf;

use vstats_abi::Rule;

use crate::xen;

// The exit codes are the checker's (`vstats_invariants::report`), so that
// `check` and `vstats-invariants` exit alike for the same report.

/// Exit code of a successful run (also after Ctrl-C ends an unbounded
/// sampling run).
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

/// Everything the tool itself can report; the consumer's and the Xen
/// backend's errors are wrapped, not repeated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `--name` names no directory under the root.
    #[error("no VM named {name:?}: {} does not exist", .dir.display())]
    NoSuchVm {
        /// The name asked for.
        name: String,
        /// The directory that would hold its tables.
        dir: PathBuf,
    },
    /// A name that cannot be a directory name.
    #[error("invalid VM name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A directory without a `vcpu` or `domain` table file.
    #[error("{}: no stats table in this directory (no `vcpu` or `domain` file)", .dir.display())]
    NoTable {
        /// The directory.
        dir: PathBuf,
    },
    /// A table breaks a rule of the ABI.
    #[error("{error} [rule {rule}: {}]", .rule.title())]
    InvalidTable {
        /// The consumer's error (path, rule, values).
        error: vstats_consumer::Error,
        /// The rule broken.
        rule: Rule,
    },
    /// Any other error of the consumer (I/O, permission denied, limits).
    #[error(transparent)]
    Consumer(vstats_consumer::Error),
    /// The Xen backend failed (an invalid table names its rule and title).
    #[error("{error}")]
    Xen {
        /// The backend's error, shown in this error's message (so not
        /// also its `source`, which would print it twice in a chain).
        error: xen::Error,
    },
    /// The command line is incomplete in a way clap cannot tell.
    #[error("{0}")]
    Usage(String),
    /// A record stayed mid-update for longer than `--busy-timeout`.
    #[error(
        "{origin}: table busy: record {record} stayed mid-update (seq {seq}) for {secs:.1} s \
         over {snapshots} snapshots; its writer is stuck or died during an update"
    )]
    TableBusy {
        /// The table.
        origin: String,
        /// Record index.
        record: u32,
        /// The (odd or changing) seq last seen.
        seq: u32,
        /// Seconds it has been busy.
        secs: f64,
        /// Consecutive snapshots that found it busy.
        snapshots: u32,
    },
    /// The table file went away and nothing replaced it.
    #[error("{}: the table was removed (its producer stopped)", .path.display())]
    TableRemoved {
        /// The file.
        path: PathBuf,
    },
    /// `--vcpus` names a slot the table does not have.
    #[error("no vCPU {vcpu}: {origin} has {nr_records} vCPU slots (0..={})", .nr_records.saturating_sub(1))]
    NoSuchVcpu {
        /// The vCPU asked for.
        vcpu: u32,
        /// The table.
        origin: String,
        /// Its number of slots.
        nr_records: u32,
    },
    /// `--vcpus` given for a target that has no vCPU table.
    #[error("{origin}: no vCPU table, so --vcpus cannot select vCPUs")]
    NoVcpuTable {
        /// The target.
        origin: String,
    },
    /// A `--names` pattern matches no counter of the target.
    #[error("no counter matches {pattern:?} in {origin} (`xen-vcpus-stats schema` lists them)")]
    NoSuchCounter {
        /// The pattern.
        pattern: String,
        /// The target.
        origin: String,
    },
}

impl Error {
    /// Wraps a consumer error, singling out invalid tables.
    pub fn from_consumer(e: vstats_consumer::Error) -> Error {
        match e {
            vstats_consumer::Error::Xen(error) => Error::Xen { error: *error },
            vstats_consumer::Error::NoTable { dir } => Error::NoTable { dir },
            vstats_consumer::Error::Stuck {
                table,
                record,
                seq,
                busy_for,
                snapshots,
            } => Error::TableBusy {
                origin: table,
                record,
                seq,
                secs: busy_for.as_secs_f64(),
                snapshots,
            },
            vstats_consumer::Error::NoSuchVcpu {
                vcpu,
                target,
                nr_records,
            } => Error::NoSuchVcpu {
                vcpu,
                origin: target,
                nr_records,
            },
            vstats_consumer::Error::NoVcpuTable { target } => Error::NoVcpuTable { origin: target },
            vstats_consumer::Error::NoSuchCounter { pattern, target } => Error::NoSuchCounter {
                pattern,
                origin: target,
            },
            e => match e.rule() {
                Some(rule) => Error::InvalidTable { error: e, rule },
                None => Error::Consumer(e),
            },
        }
    }

    /// The exit code this error ends the program with.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::InvalidTable { .. } | Error::TableBusy { .. } => EXIT_BAD_TABLE,
            Error::Xen { error } if error.is_invalid_table() => EXIT_BAD_TABLE,
            Error::Usage(_) => EXIT_USAGE,
            _ => EXIT_ERROR,
        }
    }
}

impl From<xen::Error> for Error {
    fn from(error: xen::Error) -> Error {
        Error::Xen { error }
    }
}

impl From<vstats_consumer::Error> for Error {
    fn from(e: vstats_consumer::Error) -> Error {
        Error::from_consumer(e)
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
        if let Some(e) = cause.downcast_ref::<vstats_consumer::Error>() {
            return if e.rule().is_some() {
                EXIT_BAD_TABLE
            } else {
                EXIT_ERROR
            };
        }
    }
    EXIT_ERROR
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
