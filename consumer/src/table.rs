//! [`Table`]: a mapped, validated stats table.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Instant,
};

use vstats_abi::{
    header::{EXT_HEADER_END, EXT_HEADER_OFFSET, HEADER_SIZE},
    record::RECORD_PREFIX,
    seqlock::Busy,
    validate, TableInfo,
};

use crate::{
    counter::{counters_of, Counter},
    mem::{FileId, MemView},
    mmap::{open_regular, page_size, Follow},
    raw::SeqRead,
    runstate::{self, Clock, TimeBase},
    snapshot::{RecordSnapshot, Snapshot},
    Error, Result,
};

/// A reader of one table's clock that the code which mapped the table
/// attaches to it ([`Table::set_clock`]), with a name for messages: Xen's
/// time frame of the table's domain, say.
#[derive(Clone)]
pub struct TableClock {
    /// The reader.
    pub reader: Arc<dyn Clock + Send + Sync>,
    /// Where it reads the time, for messages ([`Table::clock_name`]).
    pub name: String,
}

impl fmt::Debug for TableClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableClock")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Largest table head (`[0, offset)`: header, extension header,
/// descriptors) the consumer copies: 16 MiB. A table whose `offset` is
/// larger is refused with [`Error::HeadTooLarge`].
pub const MAX_HEAD_LEN: u64 = 16 << 20;

/// Most record slots a table may have: 2^20. With it, a [`Snapshot`]
/// allocates at most 2^20 x 8 bytes (a seq pair per record) plus the
/// records' counter words (which are fewer bytes than the mapping).
pub const MAX_RECORDS: u32 = 1 << 20;

/// Most counter words a table's records may hold in all (`nr_records x
/// (size - 8) / 8`): 2^22, so one [`Snapshot`] copies at most 32 MiB of
/// counters and reading a table costs time and memory in proportion to
/// it. A table with more is refused with [`Error::TooManyCounterWords`].
/// (A 4096-vCPU VM with 64 counters per vCPU has 2^18.)
pub const MAX_COUNTER_WORDS: u64 = 1 << 22;

/// Default number of attempts to read one record consistently before
/// giving up with [`Error::Busy`]: 1024.
///
/// An attempt on a record whose seq is odd costs one relaxed load and one
/// `spin_loop` hint (`pause` on x86-64, 10 to 150 cycles depending on the
/// CPU). Measured with `examples/busy_bound.rs` (release build) on the
/// 2-core x86-64 Xeon VM this was written on: about 12 ns per attempt, so
/// 13 us for a record whose writer died mid-update, against 28 ns for a
/// consistent read of a 4-counter record; expect up to about 4x on CPUs
/// with a long `pause`. A writer's update is a handful of stores, so a
/// live writer rarely costs more than a few attempts; only a dead or
/// descheduled writer exhausts them.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 1024;

/// Times the head is copied before giving up when the header keeps
/// asking for more (it only does so when the producer changes it while
/// we copy).
const MAX_COPY_ROUNDS: u32 = 4;

/// A mapped stats table whose head was copied and validated.
///
/// Owns the mapping and unmaps it on drop. The head (`[0, offset)`) was
/// copied into private memory before validation and everything this type
/// knows about the geometry comes from that copy, so a producer that
/// changes the header later cannot make the consumer read out of bounds
/// (no double fetch); [`Table::is_stale`] tells whether it did.
///
/// `Table` is `Send + Sync`; reading takes `&self`.
pub struct Table {
    map: MemView<'static>,
    head: Vec<u8>,
    info: TableInfo,
    counters: Vec<Counter>,
    /// The file and its identity when it was opened.
    file: Option<(PathBuf, FileId, Follow)>,
    max_attempts: u32,
    /// A load from the mapping faulted: the file was truncated.
    lost: AtomicBool,
    /// The producer is known to be gone ([`Table::set_producer_gone`]).
    gone: AtomicBool,
    /// The reader of the table's clock attached by the backend that
    /// mapped it ([`Table::set_clock`]); `None`: the process's reader of
    /// the clock the header names ([`runstate::now_in`]).
    clock: Option<TableClock>,
}

impl Table {
    /// Opens the table in the file at `path`, which the caller named: a
    /// symbolic link is followed (see [`Table::open_nofollow`] for names
    /// found under the root). The file is opened `O_RDONLY | O_NONBLOCK |
    /// O_CLOEXEC` and must be a regular file (a FIFO, a device or a
    /// directory is refused without blocking or reading it). Only the head
    /// is mapped at first (at most [`MAX_HEAD_LEN`] bytes), copied and
    /// validated; then only the table's described extent (head and
    /// records, rounded up to a page, never the rest of a larger file) is
    /// mapped read-only and shared. The file descriptor is not kept.
    ///
    /// A file truncated while mapped does not kill the reader where the
    /// guarded loads exist (Linux x86-64): the table becomes lost
    /// ([`Table::is_lost`], [`Error::Truncated`]). A producer restarts by
    /// publishing a new file under the same name (new inode), which
    /// [`Table::file_replaced`] detects and [`Table::reopen`] follows.
    ///
    /// # Errors
    ///
    /// [`Error::PermissionDenied`] or [`Error::Io`] when the file cannot
    /// be opened or mapped; [`Error::NotRegularFile`]; [`Error::Invalid`]
    /// (with the path and the ABI rule) when it is not a valid table;
    /// [`Error::HeadTooLarge`], [`Error::TooManyRecords`] and
    /// [`Error::TooManyCounterWords`] beyond this crate's limits;
    /// [`Error::Truncated`] when the file shrank while it was read.
    pub fn open(path: impl AsRef<Path>) -> Result<Table> {
        Table::open_with(path.as_ref(), Follow::Yes)
    }

    /// As [`Table::open`], but a symbolic link at `path` (its last
    /// component) is refused with [`Error::NotRegularFile`], without
    /// opening what it points to: for names the consumer derives itself,
    /// such as the `vcpu` and `domain` files of a VM directory found under
    /// the root, which anyone able to write that directory could point
    /// anywhere (`vcpu -> /etc/shadow`).
    ///
    /// # Errors
    ///
    /// As for [`Table::open`].
    pub fn open_nofollow(path: impl AsRef<Path>) -> Result<Table> {
        Table::open_with(path.as_ref(), Follow::No)
    }

    fn open_with(path: &Path, follow: Follow) -> Result<Table> {
        let (file, id, file_len) = open_regular(path, follow).map_err(|e| Error::open(path, e))?;
        let map_io = |e| Error::io(path, e);
        let window = usize::try_from(file_len.min(MAX_HEAD_LEN)).unwrap_or(usize::MAX);
        let head_map = MemView::map_len(&file, window).map_err(map_io)?;
        let file_info = Some((path.to_path_buf(), id, follow));
        let table = Table::init(head_map, file_len, file_info)?;
        // The described extent, inside the file (validation, R7), rounded
        // up to whole pages where the file has them.
        let extent = table.extent().min(file_len);
        let page = page_size();
        let extent = extent
            .checked_next_multiple_of(page)
            .map_or(file_len, |e| e.min(file_len));
        let extent = usize::try_from(extent).unwrap_or(usize::MAX);
        if extent == table.map.len() {
            return Ok(table);
        }
        let map = MemView::map_len(&file, extent).map_err(map_io)?;
        Ok(Table { map, ..table })
    }

    /// Reads a table from a view of its memory (the view is kept, and with
    /// it whatever keeps the memory mapped).
    ///
    /// # Errors
    ///
    /// As for [`Table::open`] (without a path).
    pub fn from_view(view: MemView<'static>) -> Result<Table> {
        let len = view.len() as u64;
        Table::init(view, len, None)
    }

    /// Copy, then validate: copies the head with atomic loads (first the
    /// 16-byte header, then `[0, offset)`), validates the copy against a
    /// mapping of `len` bytes (the file's size; `map` may hold only a
    /// prefix of at least [`MAX_HEAD_LEN`] bytes of it), keeps it.
    fn init(
        map: MemView<'static>,
        len: u64,
        file: Option<(PathBuf, FileId, Follow)>,
    ) -> Result<Table> {
        let path = file.as_ref().map(|f| f.0.clone());
        let invalid = |error| Error::Invalid {
            path: path.clone(),
            error,
        };
        let mut want = len.min(u64::from(HEADER_SIZE));
        let mut rounds = 0;
        let (info, head) = loop {
            rounds += 1;
            let n = usize::try_from(want).unwrap_or(usize::MAX);
            if n > map.len() {
                return Err(invalid(vstats_abi::Error::MappingTooSmall {
                    need: want,
                    len: map.len() as u64,
                }));
            }
            // In bounds, so `None` means a load faulted.
            let Some(head) = map.copy_prefix(n) else {
                return Err(Error::Truncated { path });
            };
            match validate(&head, len) {
                Ok(info) => break (info, head),
                Err(e @ vstats_abi::Error::HeadTruncated { need, .. }) => {
                    let need = u64::from(need);
                    if need > MAX_HEAD_LEN {
                        return Err(Error::HeadTooLarge {
                            path,
                            need,
                            cap: MAX_HEAD_LEN,
                        });
                    }
                    // `validate` asks only for bytes below `offset <= len`,
                    // and always for more than it had; anything else, or a
                    // header that keeps changing, is reported as is.
                    if need > len || need <= want || rounds >= MAX_COPY_ROUNDS {
                        return Err(invalid(e));
                    }
                    want = need;
                }
                Err(e) => return Err(invalid(e)),
            }
        };
        if info.nr_records > MAX_RECORDS {
            return Err(Error::TooManyRecords {
                path,
                nr_records: info.nr_records,
                cap: MAX_RECORDS,
            });
        }
        let per_record = words_per_record(&info) as u64;
        if u64::from(info.nr_records).saturating_mul(per_record) > MAX_COUNTER_WORDS {
            return Err(Error::TooManyCounterWords {
                path,
                nr_records: info.nr_records,
                per_record,
                cap: MAX_COUNTER_WORDS,
            });
        }
        let counters = counters_of(&info, &head);
        Ok(Table {
            map,
            head,
            info,
            counters,
            file,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            lost: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            clock: None,
        })
    }

    /// Bytes the table describes: its head and its records, `offset +
    /// nr_records x stride`.
    fn extent(&self) -> u64 {
        let h = &self.info.header;
        u64::from(h.offset)
            .saturating_add(u64::from(self.info.nr_records).saturating_mul(u64::from(h.stride)))
    }

    /// Bytes mapped: for a table opened from a file, its described extent
    /// (head and records) rounded up to a page and at most the file's
    /// size, whatever the file's size beyond that; otherwise the view's
    /// length.
    pub fn mapped_len(&self) -> usize {
        self.map.len()
    }

    /// Whether a load from the mapping faulted because the file was
    /// truncated while mapped (see [`Error::Truncated`]). Once lost, every
    /// record reads as not read and [`Table::is_stale`] is true.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// [`Error::Truncated`] when the table is lost ([`Table::is_lost`]).
    ///
    /// # Errors
    ///
    /// As said.
    pub fn check_lost(&self) -> Result<()> {
        if self.is_lost() {
            return Err(Error::Truncated {
                path: self.path().map(Path::to_path_buf),
            });
        }
        Ok(())
    }

    /// A `u32` load at `off`, marking the table lost when it faulted
    /// (`off` is inside the mapping when `None` comes back).
    fn load_u32(&self, off: u64) -> Option<u32> {
        let r = self.map.load::<u32>(off);
        if r.is_none()
            && off
                .checked_add(4)
                .is_some_and(|e| e <= self.map.len() as u64)
        {
            self.lost.store(true, Ordering::Relaxed);
        }
        r
    }

    /// The geometry as validated.
    pub fn info(&self) -> &TableInfo {
        &self.info
    }

    /// The private copy of the head that was validated (`[0, offset)`, or
    /// just the header when `offset` is 16).
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// The file the table was opened from, `None` for raw memory.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|f| f.0.as_path())
    }

    /// The whole mapping as a read-only view, borrowed from the table:
    /// every byte, not only the head and the records.
    pub fn view(&self) -> MemView<'_> {
        self.map
            .subview(0, self.map.len())
            .unwrap_or_else(MemView::empty)
    }

    /// Number of record slots.
    pub fn nr_records(&self) -> u32 {
        self.info.nr_records
    }

    /// Whether this is a vCPU table (else a domain table).
    pub fn is_vcpu(&self) -> bool {
        self.info.is_vcpu()
    }

    /// The producer's generation as validated (0 for a table without an
    /// extension header, e.g. RFC v3).
    pub fn generation(&self) -> u64 {
        self.info.generation()
    }

    /// Whether this is a genuine RFC v3 table (no extension header): only
    /// record 0 (vCPU 0) is meaningful, the vCPU count is the toolstack's
    /// (docs/abi.md 9.1).
    pub fn is_rfc_v3(&self) -> bool {
        self.info.ext.is_none()
    }

    /// The counters of each record: from the table's descriptors when it
    /// has any; otherwise (RFC v3 producers, or none given) this
    /// revision's standard fields that fit the table's `abi_size`.
    pub fn counters(&self) -> &[Counter] {
        &self.counters
    }

    /// The counter called `name` (a linear search).
    pub fn counter(&self, name: &str) -> Option<&Counter> {
        self.counters.iter().find(|c| c.name() == name)
    }

    /// Attempts per record before a read reports busy.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Sets the attempts per record (at least 1; 0 is taken as 1). See
    /// [`DEFAULT_MAX_ATTEMPTS`] for what an attempt costs.
    pub fn set_max_attempts(&mut self, attempts: u32) {
        self.max_attempts = attempts.max(1);
    }

    /// Reads record `i` consistently into `out`, lock-free and without a
    /// system call (the timestamp is `Instant::now()`, a vDSO call on
    /// Linux x86-64 with a TSC-like clocksource). `out` is reshaped
    /// (allocating) only if it was made for a table of another record
    /// size.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchRecord`] when `i >= nr_records` (`out` untouched);
    /// [`Error::Busy`] after [`Table::max_attempts`] attempts found the
    /// record mid-update (`out` then holds status
    /// [`crate::RecordStatus::Busy`] and no values).
    pub fn snapshot_record(&self, i: u32, out: &mut RecordSnapshot) -> Result<()> {
        if i >= self.info.nr_records {
            return Err(Error::NoSuchRecord {
                record: i,
                nr_records: self.info.nr_records,
            });
        }
        out.prepare(self, i);
        let taken = Instant::now();
        // Checked by the view once for as long as `out` reads this table
        // (`RecordSnapshot::read`); validation proved it inside (R7).
        let first = u64::from(self.info.header.offset);
        let stride = u64::from(self.info.header.stride);
        let nr = self.info.nr_records;
        let r = match out.read(&self.map, first, stride, nr, i, self.max_attempts) {
            Some(SeqRead::Read(r)) => Some(r),
            Some(SeqRead::Faulted) => {
                self.lost.store(true, Ordering::Relaxed);
                None
            }
            None => None,
        };
        out.finish(r, taken, self.clock_now());
        match r {
            Some(Err(Busy { seq, attempts })) => Err(Error::Busy {
                record: i,
                seq,
                attempts,
            }),
            _ => Ok(()),
        }
    }

    /// Reads every record into `snap`, each consistently (records are not
    /// consistent with each other: each has its own seq). Lock-free,
    /// allocation-free when `snap` was made for this table, no system call
    /// (one `Instant::now()` for the whole snapshot, taken before the
    /// first record).
    ///
    /// A record that stays busy for [`Table::max_attempts`] attempts does
    /// not stop the others: it is marked [`crate::RecordStatus::Busy`] (its
    /// counters read as absent) and counted. Returns the number of busy
    /// records, also available as [`Snapshot::busy_count`]; 0 means every
    /// record is consistent. The worst case is `nr_records *
    /// max_attempts` attempts.
    ///
    /// After the copy it reads the table's clock once
    /// ([`Snapshot::taken_at_ns`], for up-to-date runstate times, R26)
    /// when the table names one this library reads.
    pub fn snapshot(&self, snap: &mut Snapshot) -> u32 {
        self.sweep_into(snap, Instant::now(), None)
    }

    /// As [`Table::snapshot`], stamped `taken` and `now_ns` instead of
    /// reading the clocks ([`Snapshot::taken`] is `taken`,
    /// [`Snapshot::taken_at_ns`] is `now_ns`, in the table's clock): for a
    /// sampler that reads many tables per tick and takes one time for all
    /// of them, and for small snapshots (a [`Snapshot::of_counters`] of a
    /// few words), whose cost a clock read (`clock_gettime` through the
    /// vDSO, some 20 ns in a VM) would otherwise dominate. R26 wants
    /// `now_ns` read after the copy: read it once after the last table of
    /// the tick and pass it to each (tables in one clock), or pass `None`
    /// for times as written.
    pub fn snapshot_at(&self, snap: &mut Snapshot, taken: Instant, now_ns: Option<u64>) -> u32 {
        self.sweep_into(snap, taken, Some(now_ns))
    }

    fn sweep_into(&self, snap: &mut Snapshot, taken: Instant, now_ns: Option<Option<u64>>) -> u32 {
        snap.prepare(self);
        let nr = self.info.nr_records;
        let attempts = self.max_attempts;
        // A table lost to truncation is not read again: every load of it
        // would fault, one signal per record.
        if self.is_lost() {
            snap.finish(
                taken,
                now_ns.unwrap_or_else(|| self.clock_now()),
                0,
                attempts,
                0,
            );
            return 0;
        }
        // Per-table work once, not per record: the record geometry, which
        // validation proved inside the mapping (R7) and the view checks
        // once for the whole sweep, and once only for as long as `snap`
        // is refilled from this table (`Snapshot::sweep`).
        let first = u64::from(self.info.header.offset);
        let stride = u64::from(self.info.header.stride);
        let (mut read, bad) = match snap.sweep(&self.map, first, stride) {
            Some(Ok(bad)) => (nr, bad),
            Some(Err(done)) => {
                self.lost.store(true, Ordering::Relaxed);
                (u32::try_from(done).unwrap_or(0), true)
            }
            // Geometry outside the mapping: ruled out by validation.
            None => (0, false),
        };
        // The records the first pass found mid-update or changing, one at
        // a time, with the attempts left. The sweep says whether there are
        // any (its status is fused into the copy loop), so a table read
        // consistently in one pass costs no second pass over its seqs.
        let busy = if bad {
            self.retry_pass(first, stride, snap, &mut read, attempts)
        } else {
            0
        };
        // The clock is read after the last record was copied (R26).
        let now_ns = now_ns.unwrap_or_else(|| self.clock_now());
        snap.finish(taken, now_ns, read, attempts, busy);
        busy
    }

    /// The second pass of [`Table::snapshot_at`], when its sweep found
    /// records mid-update or changing: each of the first `read` records
    /// that is not consistent is read again with `attempts - 1` attempts.
    /// Returns the number still busy; `read` becomes the index of a record
    /// whose read faulted. Out of line: a consistent table never gets
    /// here, and the sweep's caller stays small.
    #[cold]
    #[inline(never)]
    fn retry_pass(
        &self,
        first: u64,
        stride: u64,
        snap: &mut Snapshot,
        read: &mut u32,
        attempts: u32,
    ) -> u32 {
        let (words, seqs, per, runs) = snap.parts_mut();
        let mut busy = 0;
        for i in 0..*read {
            let k = i as usize;
            let Some(&[s1, s3]) = seqs.get(k) else { break };
            if s1 & 1 == 0 && s1 == s3 {
                continue;
            }
            let off = first.wrapping_add(stride.wrapping_mul(u64::from(i)));
            let dst = words.get_mut(k * per..).unwrap_or_default();
            let Some(seq) = seqs.get_mut(k..=k) else {
                break;
            };
            match self.retry(off, runs, dst, per, seq, attempts.saturating_sub(1)) {
                Some(true) => {}
                Some(false) => busy += 1,
                None => {
                    *read = i;
                    break;
                }
            }
        }
        busy
    }

    /// Reads the record at byte `off` again, up to `attempts` times, after
    /// a first attempt left `seq[0]` inconsistent. `Some(true)` when
    /// consistent; `Some(false)` when still busy (`seq[0]` then holds the
    /// last seq seen, as `[s, s]` when odd and `[s, s + 1]` when even);
    /// `None` when a load faulted (the table is then lost) or the record
    /// is not inside the mapping.
    fn retry(
        &self,
        off: u64,
        runs: &[crate::guard::Run],
        dst: &mut [u64],
        per: usize,
        seq: &mut [[u32; 2]],
        attempts: u32,
    ) -> Option<bool> {
        let last_of = |[s1, s3]: [u32; 2]| if s1 & 1 == 1 { s1 } else { s3 };
        let mut last = last_of(*seq.first()?);
        for _ in 0..attempts {
            core::hint::spin_loop();
            match self.map.sweep_seq(off, 0, runs, dst, per, seq)? {
                Ok(_) => {}
                Err(_) => {
                    self.lost.store(true, Ordering::Relaxed);
                    return None;
                }
            }
            let [s1, s3] = *seq.first()?;
            if s1 & 1 == 0 && s1 == s3 {
                return Some(true);
            }
            last = last_of([s1, s3]);
        }
        *seq.first_mut()? = [last, last.wrapping_add(1 - (last & 1))];
        Some(false)
    }

    /// Marks the table's producer as gone (`true`: a dead liveness lock,
    /// a destroyed domain) or back. The times of a table whose producer is
    /// gone are final: snapshots of it name no clock, so no runstate time
    /// is brought up to date (R26) and shares fall back to the deltas of
    /// the times as written. [`crate::follow::Vm`] sets it from the
    /// liveness it probes.
    pub fn set_producer_gone(&self, gone: bool) {
        self.gone.store(gone, Ordering::Relaxed);
    }

    /// Whether [`Table::set_producer_gone`] marked the producer as gone.
    #[inline]
    pub fn producer_gone(&self) -> bool {
        self.gone.load(Ordering::Relaxed)
    }

    /// Attaches the reader of this table's clock (the clock its header
    /// names), used instead of the process's one ([`runstate::now_in`])
    /// for every snapshot's [`Snapshot::taken_at_ns`]: a clock that belongs
    /// to the table's producer, such as the time frame Xen publishes for
    /// one domain's tables. `name` says where it reads the time, for
    /// messages ([`Table::clock_name`]).
    pub fn set_clock(&mut self, reader: Arc<dyn Clock + Send + Sync>, name: impl Into<String>) {
        self.clock = Some(TableClock {
            reader,
            name: name.into(),
        });
    }

    /// The name given to [`Table::set_clock`], `None` when no reader was
    /// attached.
    pub fn clock_name(&self) -> Option<&str> {
        self.clock.as_ref().map(|c| c.name.as_str())
    }

    /// "Now" in the table's clock, read at this call: the attached reader
    /// ([`Table::set_clock`]) or the process's one for the clock the header
    /// names ([`runstate::now_in`]). `None` when the header names no clock
    /// this library reads ([`TimeBase::is_named`]; tables of clock 0 cost
    /// no clock read), when the producer is gone (its times are final),
    /// and when the clock cannot be read now. What a snapshot is stamped
    /// with after its copy (R26).
    pub fn clock_now(&self) -> Option<u64> {
        let base = TimeBase::from_clock(self.info.clock);
        if self.producer_gone() || !base.is_named() {
            return None;
        }
        match &self.clock {
            Some(own) => own.reader.now_ns(),
            None => runstate::now_in(base),
        }
    }

    /// The attached clock's [`Clock::uncertainty_ns`]; 0 with none (the
    /// process's clocks read what the producers read).
    pub fn clock_uncertainty_ns(&self) -> u64 {
        self.clock.as_ref().map_or(0, |c| c.reader.uncertainty_ns())
    }

    /// Whether the producer changed the table since it was validated:
    /// re-reads the header (magic, offset, size, stride) and the extension
    /// header (all of it, generation included) from the mapping with
    /// relaxed `u32` loads and compares them with the validated copy. A
    /// dozen loads, no system call. A producer re-initialising the table
    /// in place first clears the magic, so this also sees a restart in
    /// progress.
    ///
    /// It cannot see a file replaced under the same name (the old mapping
    /// still shows the old, now frozen, table): use
    /// [`Table::file_replaced`] for that.
    pub fn is_stale(&self) -> bool {
        let h = &self.info.header;
        let now = [0, 4, 8, 12].map(|o| self.load_u32(o));
        if now != [h.magic, h.offset, h.size, h.stride].map(Some) {
            return true;
        }
        match self.info.ext {
            Some(e) => {
                let words = [
                    e.ext_magic,
                    e.ext_size,
                    e.nr_records,
                    e.page_shift,
                    e.abi_size,
                    e.desc_offset,
                    e.desc_count,
                    e.desc_stride,
                ];
                let base = u64::from(EXT_HEADER_OFFSET);
                let same = (base..)
                    .step_by(4)
                    .zip(words)
                    .all(|(off, w)| self.load_u32(off) == Some(w));
                !same || self.load_u64_halves(base + 32) != Some(e.generation)
            }
            // No extension header was there: stale if one appeared.
            None if h.offset >= EXT_HEADER_END => {
                self.load_u32(u64::from(EXT_HEADER_OFFSET)) != Some(0)
            }
            None => false,
        }
    }

    /// Whether the file at [`Table::path`] is no longer the one mapped
    /// (removed, or replaced by a new inode). One `stat` system call.
    ///
    /// # Errors
    ///
    /// [`Error::NotFileBacked`] for a table from raw memory. A path that no
    /// longer exists is reported as replaced, not as an error.
    pub fn file_replaced(&self) -> Result<bool> {
        let (path, id, follow) = self.file.as_ref().ok_or(Error::NotFileBacked)?;
        let meta = match follow {
            Follow::Yes => std::fs::metadata(path),
            Follow::No => std::fs::symlink_metadata(path),
        };
        match meta.map(|m| FileId::of_metadata(&m)) {
            Ok(now) => Ok(now != *id),
            Err(io) if io.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(io) => Err(Error::io(path, io)),
        }
    }

    /// Opens the file at [`Table::path`] again (a producer that restarted
    /// published a new file there), keeping [`Table::max_attempts`].
    ///
    /// # Errors
    ///
    /// [`Error::NotFileBacked`] for a table from raw memory, else as for
    /// [`Table::open`].
    pub fn reopen(&self) -> Result<Table> {
        let (path, _, follow) = self.file.as_ref().ok_or(Error::NotFileBacked)?;
        let mut t = Table::open_with(path, *follow)?;
        t.max_attempts = self.max_attempts;
        Ok(t)
    }
}

impl Table {
    /// The `u64` at `off` (8-aligned) from two relaxed `u32` loads, the
    /// width the producer writes head fields with (not atomic as a whole:
    /// callers only compare it).
    fn load_u64_halves(&self, off: u64) -> Option<u64> {
        if off % 8 != 0 {
            return None;
        }
        let lo = self.load_u32(off)?.to_ne_bytes();
        let hi = self.load_u32(off.checked_add(4)?)?.to_ne_bytes();
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&lo);
        b[4..].copy_from_slice(&hi);
        Some(u64::from_ne_bytes(b))
    }
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the head's bytes: they may be megabytes.
        f.debug_struct("Table")
            .field("path", &self.path())
            .field("info", &self.info)
            .field("head_len", &self.head.len())
            .field("counters", &self.counters.len())
            .field("max_attempts", &self.max_attempts)
            .field("clock", &self.clock_name())
            .finish_non_exhaustive()
    }
}

/// Counter words of each record: `(extent - 8) / 8`, the extent being
/// `size` or, with a producer-specific area, its end.
pub(crate) fn words_per_record(info: &TableInfo) -> usize {
    // The standard record and, in an r3 table, the producer-specific area
    // after it: one seq window covers both.
    (info.record_extent().saturating_sub(RECORD_PREFIX) / 8) as usize
}
