//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while creating, running or stopping a VM.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The KVM device could not be opened (missing, no permission, module
    /// not loaded) or speaks an unexpected API version. Callers can fall
    /// back to running without a VM.
    #[error("KVM unavailable: {op} {path}: {source}")]
    KvmUnavailable {
        /// The device path that was tried.
        path: String,
        /// What failed: opening the device, the API version check, or
        /// creating the VM.
        op: &'static str,
        /// Why opening it failed.
        #[source]
        source: io::Error,
    },
    /// The kernel lacks `KVM_CAP_BINARY_STATS_FD` (Linux < 5.14).
    #[error("KVM binary statistics (KVM_CAP_BINARY_STATS_FD) are not supported by this kernel")]
    StatsUnsupported,
    /// The configuration is not usable.
    #[error("invalid VM configuration: {0}")]
    InvalidConfig(String),
    /// A KVM ioctl failed.
    #[error("KVM {op} failed: {source}")]
    Kvm {
        /// The operation, e.g. `"KVM_CREATE_VCPU"`.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Any other system call failed.
    #[error("{op} failed: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A binary statistics file has an unexpected layout.
    #[error("malformed KVM stats file: {0}")]
    MalformedStats(String),
    /// A vCPU exited to userspace for a reason this VMM does not handle
    /// (the guest program never causes one); the vCPU went offline.
    #[error("vCPU {vcpu}: unexpected exit {exit}")]
    UnexpectedExit {
        /// The vCPU id.
        vcpu: u32,
        /// Debug rendering of the exit.
        exit: String,
    },
    /// A vCPU thread panicked (only possible inside a caller's sink).
    #[error("vCPU {vcpu}: thread panicked")]
    VcpuPanicked {
        /// The vCPU id.
        vcpu: u32,
    },
    /// No vCPU has this id.
    #[error("no vCPU with id {0}")]
    NoSuchVcpu(u32),
    /// A VM name that cannot name a publication directory.
    #[error("invalid VM name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: vstats_abi::publish::NameError,
    },
    /// A KVM statistic that a vstats descriptor cannot describe; nothing
    /// is published.
    #[error("KVM statistic {name:?} cannot be published: {reason}")]
    UnpublishableStat {
        /// KVM's name of the statistic.
        name: String,
        /// Why (the vstats rule it breaks).
        reason: String,
    },
    /// A stats table the layout arithmetic or the descriptor rules refuse;
    /// nothing is published.
    #[error("{table} table: {source}")]
    InvalidTable {
        /// Which table.
        table: vstats_abi::TableKind,
        /// The rule broken.
        #[source]
        source: vstats_producer::Error,
    },
    /// Creating, locking, publishing in or removing the publication
    /// directory failed (the error names the path and the step).
    #[error(transparent)]
    Publish(vstats_producer::publish::PublishError),
    /// Another producer holds the publication directory.
    #[error("{} is in use: another producer publishes there", path.display())]
    DirectoryInUse {
        /// The directory.
        path: PathBuf,
    },
}

impl From<vstats_producer::publish::PublishError> for Error {
    fn from(e: vstats_producer::publish::PublishError) -> Error {
        use vstats_producer::publish::PublishError as P;
        match e {
            P::InUse { path } => Error::DirectoryInUse { path },
            P::Name { name, source } => Error::InvalidName {
                name,
                reason: source,
            },
            other => Error::Publish(other),
        }
    }
}

impl Error {
    pub(crate) fn kvm(op: &'static str, err: kvm_ioctls::Error) -> Self {
        Error::Kvm {
            op,
            source: io::Error::from_raw_os_error(err.errno()),
        }
    }

    pub(crate) fn io(op: &'static str, source: io::Error) -> Self {
        Error::Io { op, source }
    }

    /// Why KVM cannot be used here, worded for an operator, when that is
    /// what this error says (a caller then runs without a VM): a missing
    /// device, a device this user may not open (which is not "missing"),
    /// or a kernel without binary statistics; `None` for other errors.
    pub fn unavailable_reason(&self) -> Option<String> {
        match self {
            Error::KvmUnavailable { path, source, .. } => Some(match source.kind() {
                io::ErrorKind::NotFound => format!("no {path} ({self})"),
                io::ErrorKind::PermissionDenied => format!(
                    "{path}: permission denied: this user may not open it read-write (its \
                     group, often kvm) ({self})"
                ),
                _ => format!("{path} unusable ({self})"),
            }),
            Error::StatsUnsupported => Some(self.to_string()),
            _ => None,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_that_may_not_be_opened_is_not_missing() {
        let e = |kind: io::ErrorKind| Error::KvmUnavailable {
            path: "/dev/kvm".into(),
            op: "open",
            source: io::Error::from(kind),
        };
        let reason = |kind| e(kind).unavailable_reason().unwrap();
        let denied = reason(io::ErrorKind::PermissionDenied);
        assert!(
            denied.starts_with("/dev/kvm: permission denied: "),
            "{denied}"
        );
        assert!(!denied.contains("no /dev/kvm"), "{denied}");
        let missing = reason(io::ErrorKind::NotFound);
        assert!(
            missing.starts_with("no /dev/kvm (KVM unavailable: open /dev/kvm: "),
            "{missing}"
        );
        let other = reason(io::ErrorKind::InvalidData);
        assert!(other.starts_with("/dev/kvm unusable ("), "{other}");
        assert!(Error::StatsUnsupported.unavailable_reason().is_some());
        assert_eq!(Error::InvalidConfig("x".into()).unavailable_reason(), None);
    }
}
