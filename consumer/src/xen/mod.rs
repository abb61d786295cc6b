//! The Xen backend: map a domain's stats tables with
//! `xenforeignmemory_map_resource()`, and list domains through xenstore.
//!
//! Both libraries are loaded at run time (`dlopen`), so the tool runs on
//! hosts without Xen and only `--domid` (and the Xen part of `list`) needs
//! them:
//!
//! * `libxenforeignmemory.so.1` (override: `VSTATS_XENFOREIGNMEMORY_LIB`):
//!   `xenforeignmemory_open`, `_close`, `_map_resource`,
//!   `_unmap_resource`, and, when the library has it (Xen 4.15 and later),
//!   `_resource_size`;
//! * `libxenstore.so.4` (override: `VSTATS_XENSTORE_LIB`): `xs_open`,
//!   `xs_close`, `xs_directory`, `xs_read`, only to list domains and name
//!   them.
//!
//! A table is resource type 3 (`XENMEM_resource_stats_table`), id 0 for
//! the vCPU table and id 1 for the domain table
//! ([`TableKind::resource_id`]); id 2 is the time frame, the clock of
//! tables in Xen system time ([`Xen::map_time_frame`]). All are mapped
//! read-only
//! (`PROT_READ`). How many 4 KiB frames: `xenforeignmemory_resource_size`
//! when available (its answer checked for an errno in disguise and bounded
//! by [`MAX_FRAMES`]); otherwise one frame, and if the table's header asks for
//! more (its head or its records lie beyond the mapping) the mapping is
//! replaced by one of the right size, at most three times. The mapping is
//! handed to [`vstats_consumer::Table::from_owned`] with an owner that
//! unmaps it in `Drop`; the foreign-memory handle is closed when the last
//! mapping and the [`Xen`] value are gone.
//!
//! The library's own error logging (to stderr by default) is replaced by a
//! logger that discards messages: every failure is reported once, through
//! `errno`, as one line.
//!
//! Failures are classified by what the hypervisor and the privcmd driver
//! mean by each `errno` (see [`Error`]), into variants a program can match
//! on: [`Error::NotOffered`] is what a hypervisor without stats tables
//! (stock Xen 4.17) answers.
//!
//! Tests: a stand-in library (`tests/standin/xenstandin.c`) exports the
//! same C symbols over files in a directory and reproduces the real
//! library's answers, tables included; and `tests/xen/` at the top of the
//! workspace boots Debian's real Xen 4.17 under QEMU and runs the tool in
//! its dom0, where the error paths meet the real hypervisor (a table
//! itself needs a hypervisor that offers one).
//!
//! # Modules
//!
//! | module | what it does |
//! | --- | --- |
//! | `loader` | `dlopen` of the libraries (and the environment variables that name others), symbol lookup |
//! | `foreign` | libxenforeignmemory: open, resource size, map, unmap, and the classification of each `errno` |
//! | `store` | libxenstore: the domains and their names ([`XenStore`]) |
//! | [`clock`] | Xen system time in dom0: the domain's time frame (resource id 2, [`TimeFrameClock`], attached to each clock-2 table [`Xen::map_table`] maps), else the pvclock of dom0's `shared_info` ([`XenSystemClock`], mapped through libxenctrl and libxenforeignmemory) |
//!
//! # Threads
//!
//! [`Xen`] is `Send` and `Sync`, and a clone shares the handle: the
//! foreign-memory library is called with one handle from one thread at a
//! time (a mutex serialises the calls, because `xenforeignmemory.h`
//! promises nothing about concurrent calls), while the mapped tables are
//! read without it. [`XenStore`] is `Send` but not `Sync`, for the same
//! lack of a promise in `xenstore.h`: one connection per thread. Both
//! handles may be moved between threads: the headers restrict them only
//! across `fork`.

pub mod clock;
mod foreign;
mod loader;
mod store;

use std::{io, sync::Arc};

use vstats_abi::XENMEM_RESOURCE_STATS_TABLE_ID_TIME;
use vstats_consumer::{mem::MemView, runstate::TimeBase, Table};

pub use clock::{TimeFrameClock, XenSystemClock, CONTROL_LIB_ENV};
pub use foreign::{MAX_FRAMES, XEN_FRAME_SIZE};
pub use loader::{FOREIGNMEMORY_LIB, FOREIGNMEMORY_LIB_ENV, XENSTORE_LIB, XENSTORE_LIB_ENV};
pub use store::{DomainEntry, XenStore};
pub use vstats_abi::TableKind;
/// The trait through which both clocks are read.
pub use vstats_consumer::runstate::Clock;

// `Xen` is shared between threads, `XenStore` moved between them (the
// module docs, "Threads").
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send_sync::<Xen>();
    send::<XenStore>();
};

/// Which of the two Xen libraries' interfaces, for [`Error::Open`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Interface {
    /// libxenforeignmemory (`/dev/xen/privcmd`).
    ForeignMemory,
    /// libxenstore (xenstored's socket or `/dev/xen/xenbus`).
    XenStore,
    /// libxenctrl (`/dev/xen/privcmd`), for the clock.
    Control,
}

impl std::fmt::Display for Interface {
    /// `foreign-memory` or `xenstore`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Interface::ForeignMemory => "foreign-memory",
            Interface::XenStore => "xenstore",
            Interface::Control => "control",
        })
    }
}

/// Errors of the Xen backend.
///
/// Each failure of the hypervisor or the privcmd driver is classified by
/// what its `errno` means there (Xen's `acquire_resource` in
/// `xen/common/memory.c`, Linux's `IOCTL_PRIVCMD_MMAP_RESOURCE` in
/// `drivers/xen/privcmd.c`):
///
/// | errno | where | variant |
/// |---|---|---|
/// | `ESRCH` | Xen: no domain with this id | [`Error::NoSuchDomain`] |
/// | `EPERM` | Xen: the target is the caller's own domain, or the caller is neither the control domain nor the target's device model (privcmd: a descriptor restricted to another domain, never the case here) | [`Error::OwnDomain`] when this is the control domain, else [`Error::PermissionDenied`] |
/// | `EACCES` | Xen: the caller is a translated (HVM/PVH) domain other than the hardware domain | [`Error::PermissionDenied`] |
/// | `EOPNOTSUPP` | Xen: unknown resource type; libxenforeignmemory: privcmd lacks the ioctl | [`Error::NotOffered`] |
/// | `ENOSYS` | Xen without `XENMEM_acquire_resource` | [`Error::NotOffered`] |
/// | `ENOENT` | Xen: the type exists but not this id | [`Error::NotOffered`] |
/// | `EINVAL` | Xen: from the size query, the resource has no frames for this domain (Xen 4.18 and later answer so for an unknown type); from a mapping, frames beyond the resource or a malformed request | [`Error::NotOffered`] for the size query (or a first one-frame probe when there is no size query), else [`Error::Map`] |
/// | others | | [`Error::SizeQuery`], [`Error::Map`] |
///
/// Xen 4.17 answers the size query of an unknown resource type with success
/// and `-EOPNOTSUPP` as the 32-bit frame count; the backend reads such a
/// size as that errno.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The library does not exist (neither at the path given nor on the
    /// loader's search path).
    #[error(
        "Xen backend unavailable: {lib} not found (not a Xen host, or the Xen tools are not \
         installed): {reason}"
    )]
    LibraryMissing {
        /// The library name or path.
        lib: String,
        /// The loader's message.
        reason: String,
    },
    /// The library exists but the loader refused it (not a shared library,
    /// wrong architecture, missing dependencies).
    #[error("Xen backend unavailable: {lib} exists but cannot be loaded: {reason}")]
    LibraryUnloadable {
        /// The library name or path.
        lib: String,
        /// The loader's message.
        reason: String,
    },
    /// The library lacks a symbol the backend needs.
    #[error("{lib}: no symbol {symbol} (not the library the Xen backend needs): {reason}")]
    MissingSymbol {
        /// The library.
        lib: String,
        /// The symbol.
        symbol: &'static str,
        /// The loader's message.
        reason: String,
    },
    /// `xenforeignmemory_open` or `xs_open` failed.
    #[error("cannot open the Xen {interface} interface: {}", open_text(*.interface, .io))]
    Open {
        /// Which interface.
        interface: Interface,
        /// `errno`.
        io: io::Error,
    },
    /// The domain does not exist (`ESRCH`).
    #[error("domain {domid}: no such domain")]
    NoSuchDomain {
        /// The domain id.
        domid: u16,
    },
    /// `EPERM` while this domain is the control domain: Xen lets the
    /// control domain map any domain's resources except its own, so
    /// `domid` is this domain (dom0 cannot map dom0's tables).
    #[error(
        "domain {domid}: this is the caller's own domain, and Xen does not map a domain's \
         resources into the domain itself (EPERM): its {kind} stats table cannot be read \
         from here"
    )]
    OwnDomain {
        /// The domain id.
        domid: u16,
        /// Which table.
        kind: TableKind,
    },
    /// Xen refused the mapping (`EPERM` outside the control domain,
    /// `EACCES`).
    #[error("domain {domid}: Xen refused to map its {kind} stats table: {}", refusal_text(.io))]
    PermissionDenied {
        /// The domain id.
        domid: u16,
        /// Which table.
        kind: TableKind,
        /// `errno`.
        io: io::Error,
    },
    /// The hypervisor does not offer this resource (`EOPNOTSUPP`,
    /// `ENOSYS`, `ENOENT`, `EINVAL` from the size query): a hypervisor
    /// without stats tables, or a table this domain does not have.
    #[error(
        "domain {domid}: the hypervisor does not offer the {kind} stats table resource \
         (XENMEM_resource_stats_table id {}, {})",
        .kind.resource_id(),
        errno_name(.io)
    )]
    NotOffered {
        /// The domain id.
        domid: u16,
        /// Which table (its resource id: [`TableKind::resource_id`]).
        kind: TableKind,
        /// `errno`.
        io: io::Error,
    },
    /// Any other failure of the size query.
    #[error("domain {domid}: asking Xen the size of its {kind} stats table failed: {io}")]
    SizeQuery {
        /// The domain id.
        domid: u16,
        /// Which table.
        kind: TableKind,
        /// `errno`.
        io: io::Error,
    },
    /// Any other mapping failure.
    #[error("domain {domid}: mapping {nr_frames} frames of its {kind} stats table failed: {io}")]
    Map {
        /// The domain id.
        domid: u16,
        /// Which table.
        kind: TableKind,
        /// Frames asked for.
        nr_frames: u64,
        /// `errno`.
        io: io::Error,
    },
    /// The mapped table breaks a rule of the ABI.
    #[error("domain {domid}: {kind} stats table: not a valid stats table: {error} [rule {}: {}]", .error.rule(), .error.rule().title())]
    Invalid {
        /// The domain id.
        domid: u16,
        /// Which table.
        kind: TableKind,
        /// The rule broken.
        error: vstats_abi::Error,
    },
    /// The consumer refused the mapping for another reason (its limits).
    #[error("domain {domid}: {kind} stats table: {error}")]
    Table {
        /// The domain id.
        domid: u16,
        /// Which table.
        kind: TableKind,
        /// The consumer's error.
        error: vstats_consumer::Error,
    },
    /// The table (its header, or the hypervisor's size query) claims more
    /// memory than the backend maps.
    #[error(
        "domain {domid}: {kind} stats table claims {need} bytes, more than {MAX_FRAMES} frames"
    )]
    TooLarge {
        /// The domain id.
        domid: u16,
        /// Which table.
        kind: TableKind,
        /// Bytes it asks for.
        need: u64,
    },
    /// `xc_domain_getinfolist` gave no information about the domain
    /// (for the clock: dom0's `shared_info_frame`).
    #[error("cannot read domain {domid}'s information from Xen (xc_domain_getinfolist): {io}")]
    DomainInfo {
        /// The domain id.
        domid: u16,
        /// `errno` (`ESRCH` when Xen listed another domain).
        io: io::Error,
    },
    /// Xen refused to map dom0's `shared_info` frame read-only (the
    /// clock; `docs/abi-r3-design.md`, open question 2).
    #[error("cannot map dom0's shared_info frame {frame:#x} read-only: {io}")]
    SharedInfo {
        /// The frame (GMFN).
        frame: u64,
        /// `errno`.
        io: io::Error,
    },
    /// This architecture has no way to read Xen system time from user
    /// space here (x86-64 only; Arm is the design's open question 1).
    #[error("Xen system time cannot be read on {arch} (x86-64 only)")]
    ClockUnsupported {
        /// `std::env::consts::ARCH`.
        arch: &'static str,
    },
    /// The hypervisor does not offer the time frame (resource id 2,
    /// `EOPNOTSUPP`, `ENOSYS`, `ENOENT`, `EINVAL` from the size query or
    /// a first mapping, Xen 4.17's errno in disguise): a hypervisor
    /// without it. Clock-2 tables then fall back to dom0's `shared_info`.
    #[error(
        "domain {domid}: the hypervisor does not offer the stats time frame \
         (XENMEM_resource_stats_table id {XENMEM_RESOURCE_STATS_TABLE_ID_TIME}, {})",
        errno_name(.io)
    )]
    TimeFrameNotOffered {
        /// The domain id.
        domid: u16,
        /// `errno`.
        io: io::Error,
    },
    /// The time frame could not be mapped (another errno).
    #[error("domain {domid}: mapping its stats time frame failed: {io}")]
    TimeFrameMap {
        /// The domain id.
        domid: u16,
        /// `errno`.
        io: io::Error,
    },
    /// The mapped time frame is not one ([`clock::FrameError`]).
    #[error("domain {domid}: not a valid stats time frame: {error}")]
    TimeFrameInvalid {
        /// The domain id.
        domid: u16,
        /// What is wrong with it.
        error: clock::FrameError,
    },
    /// A xenstore read failed.
    #[error("xenstore: reading {path}: {io}")]
    XenStore {
        /// The xenstore path.
        path: String,
        /// `errno`.
        io: io::Error,
    },
}

impl Error {
    /// Whether the error is about the table's contents (exit code 3).
    pub fn is_invalid_table(&self) -> bool {
        matches!(self, Error::Invalid { .. })
    }
}

/// The symbolic name of an errno the backend classifies, else its text.
fn errno_name(io: &io::Error) -> String {
    let name = match io.raw_os_error() {
        Some(libc::EOPNOTSUPP) => "EOPNOTSUPP",
        Some(libc::ENOSYS) => "ENOSYS",
        Some(libc::ENOTTY) => "ENOTTY",
        Some(libc::ENOENT) => "ENOENT",
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::EPERM) => "EPERM",
        Some(libc::EACCES) => "EACCES",
        Some(libc::ESRCH) => "ESRCH",
        _ => return io.to_string(),
    };
    name.to_owned()
}

/// Why Xen refused a mapping, by errno.
fn refusal_text(io: &io::Error) -> String {
    match io.raw_os_error() {
        Some(libc::EPERM) => "only the control domain or the domain's device model may map it \
                              (EPERM)"
            .to_owned(),
        Some(libc::EACCES) => "Xen maps resources only into PV domains and the hardware domain \
                               (EACCES)"
            .to_owned(),
        _ => io.to_string(),
    }
}

/// Why an interface did not open, by errno; root is never told to run as
/// root.
fn open_text(interface: Interface, io: &io::Error) -> String {
    match io.raw_os_error() {
        Some(libc::ENOENT | libc::ENODEV | libc::ENXIO) if interface != Interface::XenStore => {
            format!(
            "{io}: no /dev/xen/privcmd (not running in a Xen domain, or the xen-privcmd module \
             is not loaded)"
        )
        }
        Some(libc::ENOENT | libc::ECONNREFUSED) if interface == Interface::XenStore => {
            format!("{io}: xenstored is not running, or this is not a Xen domain")
        }
        Some(libc::EACCES | libc::EPERM) if !loader::is_root() => {
            format!("{io} (run as root in dom0)")
        }
        _ => io.to_string(),
    }
}

/// Result type of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// The loaded foreign-memory library with an open handle.
#[derive(Clone)]
pub struct Xen {
    handle: Arc<foreign::Handle>,
}

impl std::fmt::Debug for Xen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xen")
            .field("lib", &self.handle.lib)
            .field("resource_size", &self.handle.has_resource_size())
            .finish_non_exhaustive()
    }
}

impl Xen {
    /// Loads `libxenforeignmemory.so.1` (or `$VSTATS_XENFOREIGNMEMORY_LIB`)
    /// and opens a handle.
    ///
    /// # Errors
    ///
    /// [`Error::LibraryMissing`], [`Error::LibraryUnloadable`],
    /// [`Error::MissingSymbol`], [`Error::Open`].
    pub fn load() -> Result<Xen> {
        Ok(Xen {
            handle: Arc::new(foreign::Handle::open()?),
        })
    }

    /// The library's name or path.
    pub fn library(&self) -> &str {
        &self.handle.lib
    }

    /// Whether the library has `xenforeignmemory_resource_size`.
    pub fn has_resource_size(&self) -> bool {
        self.handle.has_resource_size()
    }

    /// Maps domain `domid`'s table of kind `kind` read-only and
    /// validates it; the returned table unmaps it when dropped.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchDomain`], [`Error::OwnDomain`],
    /// [`Error::PermissionDenied`], [`Error::NotOffered`], [`Error::Map`],
    /// [`Error::Invalid`] (the rule broken), [`Error::TooLarge`],
    /// [`Error::Table`].
    pub fn map_table(&self, domid: u16, kind: TableKind) -> Result<Table> {
        let frames_for = |bytes: u64| {
            let frames = bytes.div_ceil(XEN_FRAME_SIZE).max(1);
            if frames > MAX_FRAMES {
                Err(Error::TooLarge {
                    domid,
                    kind,
                    need: bytes,
                })
            } else {
                Ok(frames)
            }
        };
        let (mut frames, mut call) = match self.handle.resource_frames(domid, kind) {
            Some(Ok(frames)) => (frames, foreign::Call::Map),
            Some(Err(e)) => return Err(e),
            None => (1, foreign::Call::Probe),
        };
        for _ in 0..4 {
            let mapping = self.handle.map(domid, kind, frames, call)?;
            call = foreign::Call::Map;
            let len = mapping.len();
            match mapping.into_table() {
                Ok(mut t) => {
                    self.attach_time_frame(domid, &mut t);
                    return Ok(t);
                }
                Err(vstats_consumer::Error::Invalid { error, .. }) => {
                    let need = match error {
                        vstats_abi::Error::MappingTooSmall { need, .. } => need,
                        vstats_abi::Error::HeadTruncated { need, .. } => u64::from(need),
                        _ => 0,
                    };
                    if need > len as u64 {
                        frames = frames_for(need)?;
                        continue;
                    }
                    return Err(Error::Invalid { domid, kind, error });
                }
                Err(error) => return Err(Error::Table { domid, kind, error }),
            }
        }
        Err(Error::Map {
            domid,
            kind,
            nr_frames: frames,
            io: io::Error::other("the table's size kept changing while it was mapped"),
        })
    }

    /// Attaches domain `domid`'s time frame to `table` as its clock
    /// ([`Table::set_clock`]) when the table's clock is Xen system time
    /// (clock 2) and Xen offers the frame. Otherwise the table keeps the
    /// process's reader of that clock (dom0's `shared_info`,
    /// [`XenSystemClock`]), and front ends say when neither works
    /// (`follow::Vm::clock_note`).
    fn attach_time_frame(&self, domid: u16, table: &mut Table) {
        if TimeBase::from_clock(table.info().clock) != TimeBase::XenSystem {
            return;
        }
        if let Ok(frame) = self.map_time_frame(domid) {
            table.set_clock(
                Arc::new(frame),
                format!("Xen's time frame of domain {domid}"),
            );
        }
    }

    /// Maps domain `domid`'s time frame (resource type 3, id 2: one frame,
    /// [`vstats_abi::header::StatsTime`]) read-only and checks its magic
    /// and size: the reader of Xen system time for that domain's clock-2
    /// tables (docs/abi.md 2.6). The size query comes first when the
    /// library has one (Xen 4.17 answers it for an unknown resource type
    /// with an errno in disguise), else a one-frame mapping stands in for
    /// it.
    ///
    /// # Errors
    ///
    /// [`Error::TimeFrameNotOffered`] from a hypervisor without the frame
    /// (stock Xen: `EOPNOTSUPP`, `EINVAL`, ...); [`Error::NoSuchDomain`];
    /// [`Error::TimeFrameMap`] for another errno;
    /// [`Error::TimeFrameInvalid`] when the frame's magic or size is wrong.
    pub fn map_time_frame(&self, domid: u16) -> Result<TimeFrameClock> {
        let id = XENMEM_RESOURCE_STATS_TABLE_ID_TIME;
        let sized = match self.handle.resource_size(domid, id) {
            Some(Err(io)) => return Err(time_frame_error(domid, io, true)),
            Some(Ok(_)) => true,
            None => false,
        };
        let view = self
            .handle
            .map_resource(domid, id, 1)
            .map_err(|io| time_frame_error(domid, io, !sized))?
            .into_view()
            .map_err(|_| Error::TimeFrameMap {
                domid,
                io: io::Error::other("the mapping is not 8-byte aligned"),
            })?;
        TimeFrameClock::new(view).map_err(|error| Error::TimeFrameInvalid { domid, error })
    }

    /// Maps domain `domid`'s table of kind `kind` read-only as raw memory
    /// for the invariant checker, which then checks every byte of it (including
    /// what the consumer never reads: padding, the tail of the last page).
    ///
    /// The mapping is sized as [`Xen::map_table`] sizes it. A table that
    /// does not validate is mapped anyway (as many frames as
    /// `xenforeignmemory_resource_size` reports, else one), so that the
    /// checker reports the rule it breaks.
    ///
    /// # Errors
    ///
    /// As [`Xen::map_table`], but for [`Error::Invalid`].
    pub fn map_raw(&self, domid: u16, kind: TableKind) -> Result<MemView<'static>> {
        let frames = match self.map_table(domid, kind) {
            Ok(t) => t.info().mapped_len.div_ceil(XEN_FRAME_SIZE).max(1),
            Err(Error::Invalid { .. }) => match self.handle.resource_frames(domid, kind) {
                Some(Ok(frames)) => frames,
                _ => 1,
            },
            Err(e) => return Err(e),
        };
        self.handle
            .map(domid, kind, frames, foreign::Call::Map)?
            .into_view()
            .map_err(|_| Error::Map {
                domid,
                kind,
                nr_frames: frames,
                io: io::Error::other("the mapping is not 8-byte aligned"),
            })
    }

    /// Maps both tables of `domid`: the vCPU table (required) and the
    /// domain table (`None` when Xen does not offer it).
    ///
    /// # Errors
    ///
    /// As [`Xen::map_table`] for the vCPU table; for the domain table, all
    /// but [`Error::NotOffered`].
    pub fn map_domain(&self, domid: u16) -> Result<(Table, Option<Table>)> {
        let vcpu = self.map_table(domid, TableKind::Vcpu)?;
        let domain = match self.map_table(domid, TableKind::Domain) {
            Ok(t) => Some(t),
            Err(Error::NotOffered { .. }) => None,
            Err(e) => return Err(e),
        };
        Ok((vcpu, domain))
    }
}

/// The error for `io` from the time frame's size query or mapping: what
/// stock Xen answers for a resource it lacks is "not offered" (`EINVAL`
/// only from the size query or the first mapping that stands in for it,
/// `probe`), as for the tables ([`Error`]'s table).
fn time_frame_error(domid: u16, io: io::Error, probe: bool) -> Error {
    match io.raw_os_error() {
        Some(libc::ESRCH) => Error::NoSuchDomain { domid },
        Some(libc::EOPNOTSUPP | libc::ENOSYS | libc::ENOTTY | libc::ENOENT) => {
            Error::TimeFrameNotOffered { domid, io }
        }
        Some(libc::EINVAL) if probe => Error::TimeFrameNotOffered { domid, io },
        _ => Error::TimeFrameMap { domid, io },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_frame_errnos() {
        let e = |errno, probe| time_frame_error(4, io::Error::from_raw_os_error(errno), probe);
        for probe in [true, false] {
            for errno in [libc::EOPNOTSUPP, libc::ENOSYS, libc::ENOTTY, libc::ENOENT] {
                assert!(
                    matches!(e(errno, probe), Error::TimeFrameNotOffered { domid: 4, .. }),
                    "{errno}"
                );
            }
            assert!(matches!(
                e(libc::ESRCH, probe),
                Error::NoSuchDomain { domid: 4 }
            ));
            assert!(matches!(e(libc::ENOMEM, probe), Error::TimeFrameMap { .. }));
        }
        // EINVAL: no such resource from the size query or the first
        // mapping standing in for it; a bad request after a size query
        // said the frame exists.
        assert!(matches!(
            e(libc::EINVAL, true),
            Error::TimeFrameNotOffered { .. }
        ));
        assert!(matches!(e(libc::EINVAL, false), Error::TimeFrameMap { .. }));
        assert_eq!(
            e(libc::EOPNOTSUPP, true).to_string(),
            "domain 4: the hypervisor does not offer the stats time frame \
             (XENMEM_resource_stats_table id 2, EOPNOTSUPP)"
        );
    }
}
