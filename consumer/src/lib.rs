//! The reader side of vstats: map a stats table (a file, or memory someone
//! else mapped), validate it, and take consistent snapshots of its records
//! with no lock and no system call; then follow a VM's producer across
//! restarts, sample it (deltas, rates, runstate shares, aggregates) and
//! encode what was read.
//!
//! # Architecture
//!
//! Bottom to top; each layer uses only the ones above it in this list.
//!
//! | module | what it does |
//! | --- | --- |
//! | `raw`, `mmap`, `guard` (private) | the only `unsafe` besides the backends: loads from a read-only mapping, fault-guarded where a truncated file would kill the reader; opening (regular files only) and mapping a file |
//! | [`mem`] | the one public view of mapped memory ([`mem::MemView`]): every load from a table goes through its bounds-and-alignment check |
//! | [`Table`] (`table`) | copy the head, validate it ([`vstats_abi::validate()`]), read records under the seq protocol; notice a stale header or a replaced file |
//! | [`Snapshot`], [`Counter`] | one consistent copy of every record; counters by name, scaled, histograms |
//! | [`delta`], [`rate`], [`Aggregate`] (`stats`) | what two snapshots or many records say together; `Aggregate<u64>` for values, `Aggregate<f64>` for rates |
//! | [`watch`] | the one rule for records stuck mid-update ([`watch::StuckWatch`]) |
//! | [`filter`] | which counters ([`filter::NameFilter`], `*`/`?` patterns) and which vCPUs ([`filter::VcpuList`]) |
//! | [`discover`] | the VMs published under a root directory ([`discover::list`]); every VM of the host, Xen domains included ([`discover::host`]) |
//! | [`live`] | whether a VM directory's producer is live, stopped or dead (a lock tested without taking it), and pruning dead ones |
//! | [`follow`] | a VM's tables ([`follow::Vm`]) followed across producer restarts and removal in one call, reported as [`follow::Event`]s |
//! | [`target`] | what a command line names (a file, a directory, a name under the root, a Xen domain), opened as a [`follow::Vm`] |
//! | [`overview`] | the host-wide view `top` shows: one row per VM of [`discover::host`] (CPU%, runnable%, blocked%, busiest rates, liveness), per-vCPU rows with histogram distributions, sorting, a name filter, reset baselines |
//! | [`runstate`] | up-to-date runstate times (R26): the open interval since the current state's entry added at an instant of the table's clock ([`runstate::TimeBase`], [`runstate::Clock`]), a pure function over a record's words |
//! | [`sample`] | the sampling engine: a [`sample::Sampler`] turns snapshot pairs into [`sample::Sample`]s (runstate shares, values, rates, aggregates) |
//! | [`encode`] | encoders with no command line in them: OpenMetrics from one snapshot or a sample ([`encode::openmetrics::Exposition`]); JSON of a sample and QEMU's `query-stats` answers (feature `json`) |
//! | `xen` (feature `xen`) | the Xen backend: map a domain's tables with libxenforeignmemory, list domains through libxenstore, both loaded at run time |
//!
//! A front end is a few calls on top: `top` is an [`overview::Overview`];
//! the example `examples/running_share.rs` is [`discover::list`] +
//! [`sample::Sampler`] per VM; the Prometheus exporter is
//! [`discover::host`] + a [`Snapshot`] of each table at scrape time +
//! [`encode::openmetrics::Exposition`]; the xcp-rrdd plugin is
//! [`discover::host`] + a runstate-only [`Snapshot::of_counters`] of each
//! vCPU table + its own file writer.
//!
//! # Examples
//!
//! A producer's table of two vCPUs, built in memory, read through
//! [`Table::from_raw`] (a file would use [`Table::open`]):
//!
//! ```
//! use vstats_abi::{
//!     layout::{Layout, LayoutParams},
//!     VCPU_STATS_MAGIC,
//! };
//! use vstats_consumer::{Snapshot, Table};
//!
//! // An r3 table: standard fields are known by position, not described.
//! let layout = Layout::compute(&LayoutParams::vcpu(2))?;
//! let mut bytes = vec![0u8; layout.mapping_len() as usize];
//! layout.write_headers(&mut bytes, VCPU_STATS_MAGIC, 1, &[])?;
//! // vCPU 1 ran for 5000 ns (the counter after its seq and pad).
//! let rec1 = layout.record_offset(1).unwrap() as usize;
//! bytes[rec1 + 8..rec1 + 16].copy_from_slice(&5000u64.to_ne_bytes());
//! // 8-aligned memory, as every mapping is.
//! let mem: Vec<u64> = bytes
//!     .chunks(8)
//!     .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
//!     .collect();
//!
//! // SAFETY: `mem` outlives `table` and nothing writes it meanwhile.
//! let table = unsafe { Table::from_raw(mem.as_ptr().cast(), bytes.len()) }?;
//! let running = table.counter("runstate_running_time").unwrap();
//! let mut snap = Snapshot::new(&table);
//! assert_eq!(table.snapshot(&mut snap), 0, "no record was busy");
//! assert_eq!(snap.record(1).unwrap().get(running), Some(5000));
//! assert_eq!(snap.record(1).unwrap().running(), Some(5000));
//! let all = snap.aggregate(running);
//! assert_eq!((all.present, all.zero, all.sum), (2, 1, 5000));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How a table is read
//!
//! - **Open safely, map what the table describes.** A table file is
//!   opened `O_RDONLY | O_NONBLOCK` and must be a regular file
//!   ([`Error::NotRegularFile`]: a FIFO does not hang the reader, a
//!   device is not read); names found under the root are not followed
//!   when they are symbolic links ([`Table::open_nofollow`],
//!   [`discover::list`]), a path the user names is ([`Table::open`]).
//!   Only the head, then the table's described extent, is mapped
//!   ([`Table::mapped_len`]), whatever the file's size; [`MAX_RECORDS`]
//!   and [`MAX_COUNTER_WORDS`] bound the rest.
//! - **Copy, then validate, then use.** Opening copies the table's head
//!   (`[0, offset)`: header, extension header, descriptors; at most
//!   [`MAX_HEAD_LEN`]) into private memory with atomic loads, validates
//!   the copy with [`vstats_abi::validate()`], and from then on trusts only
//!   the copy. Records are read from the mapping.
//! - **Atomic loads only.** The mapping is never seen as `&[u8]`: every
//!   read is a `Relaxed` atomic load of at most 8 bytes, which the standard
//!   library allows on read-only memory, plus fences; on Linux x86-64, its
//!   twin in assembly that survives a fault (next item).
//! - **Truncation survived.** A file truncated while mapped faults
//!   (`SIGBUS`) on the lost pages. On Linux x86-64 the loads go through
//!   fault-guarded routines and a `SIGBUS` handler (installed when the
//!   first file is mapped; faults elsewhere go to the previous handler or
//!   the default action) makes them fail instead: the table is lost
//!   ([`Table::is_lost`]), its records read as not read, and
//!   [`follow::Vm::follow`] reports [`Error::Truncated`]. Elsewhere, and
//!   under Miri, a truncation kills the reader
//!   ([`mem::SURVIVES_TRUNCATION`] is false). `docs/abi.md`, section 11,
//!   has the design and its soundness argument. Every access goes
//!   through one view of the memory, [`mem::MemView`], with one bounds-
//!   and-alignment check and one safety argument; it is public, for
//!   readers that need every byte of a mapping (the invariant checker).
//! - **Seq protocol**, bounded. Each record is copied inside one even seq
//!   value, as `vstats_abi::seqlock` specifies, making at most
//!   [`Table::max_attempts`] attempts ([`DEFAULT_MAX_ATTEMPTS`] = 1024;
//!   measured at about 13 us in all for a dead writer). A record still busy
//!   after that is [`Error::Busy`] for [`Table::snapshot_record`]; in a
//!   whole-table [`Table::snapshot`] it is marked [`RecordStatus::Busy`],
//!   counted ([`Snapshot::busy_count`], the return value) and the other
//!   records are still read.
//! - **Absent and unused.** A counter reads as absent (`None`) when the
//!   record was not read consistently, when it lies beyond the record's
//!   `size` (or, for a standard field at a fixed offset, beyond the
//!   producer's `abi_size`), or when it is inactive (top bit set). A record
//!   slot is unused ([`RecordSnapshot::is_unused`]) when every counter word
//!   within `size` is inactive.
//! - **Counters by name** come from the table's descriptors, or, for a
//!   table without them (RFC v3), from this revision's standard fields.
//! - **Restarts.** [`Table::is_stale`] re-reads the header words and the
//!   generation (a few loads); [`Table::file_replaced`] notices a new file
//!   under the same name; [`Table::reopen`] opens it;
//!   [`follow::Vm::follow`] does all three for a VM's tables. [`delta`] reports
//!   [`Delta::Reset`] across a generation change or a seq that went
//!   backwards.
//! - **Time.** Snapshots are stamped with [`std::time::Instant::now`],
//!   which on Linux x86-64 is `clock_gettime(CLOCK_MONOTONIC)` answered by
//!   the vDSO without entering the kernel (when the clocksource is TSC,
//!   kvm-clock or a Xen pvclock with vDSO support; otherwise the vDSO falls
//!   back to a real system call).
//!
//! # Errors
//!
//! One enum, [`Error`]: an invalid table names the ABI rule broken and
//! the file ([`Error::Invalid`], [`Error::rule`]); I/O errors carry the
//! path, with [`Error::PermissionDenied`] apart from other
//! [`Error::Io`]; [`Error::Busy`] and [`Error::NoSuchRecord`] come from
//! reading records. Nothing in this crate panics on table contents, and
//! every allocation is bounded by the limits [`MAX_HEAD_LEN`],
//! [`MAX_RECORDS`] and [`MAX_COUNTER_WORDS`], never by a file's size.
//!
//! # Safety
//!
//! [`Table::from_raw`], [`Table::from_owned`] and the `from_raw_parts` of
//! [`mem::MemView`] and [`mem::MemViewMut`] are `unsafe`: the caller
//! promises the memory stays mapped for the table's (or view's) life, or
//! the owner's, and is not written with non-atomic writes from this
//! process. [`mem::MemView::atomic`] and [`mem::MemView::atomics`] are
//! `unsafe` because the memory may be read-only: the caller promises only
//! relaxed loads through the references. All other entry points are safe
//! ([`Table::from_view`] takes a view that already holds those promises).
//! Unsafe code lives only in the private modules `raw`, `mmap` and
//! `guard`, in [`live`] (its `fcntl`, `flock` and `*at` calls) and in the
//! Xen backend `xen`; every other module denies it.
#![deny(unsafe_code)]

// Lets `vstats_consumer::` paths written for users work inside the crate.
extern crate self as vstats_consumer;

mod counter;
pub mod discover;
pub mod encode;
mod error;
pub mod filter;
pub mod follow;
#[allow(unsafe_code)]
mod guard;
pub mod live; // allows `unsafe` for `fcntl`, `flock` and `*at` calls
pub mod mem;
#[allow(unsafe_code)]
mod mmap;
pub mod overview;
#[allow(unsafe_code)]
mod raw;
pub mod runstate;
pub mod sample;
mod snapshot;
mod stats;
mod table;
pub mod target;
pub mod watch;
#[cfg(feature = "xen")]
pub mod xen; // its modules `loader`, `foreign`, `store` allow `unsafe`

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_halves;

pub use counter::{Counter, Source};
pub use error::{error_line, Error, Result};
pub use snapshot::{RecordSnapshot, RecordStatus, RecordView, Records, Snapshot};
pub use stats::{
    bucket_bound, delta, histogram_delta, rate, sparkline, Aggregate, Delta, Distribution, Summable,
};
pub use table::{
    Table, TableClock, DEFAULT_MAX_ATTEMPTS, MAX_COUNTER_WORDS, MAX_HEAD_LEN, MAX_RECORDS,
};
pub use vstats_abi::{Base, Kind, TableInfo, TableKind, Unit};
