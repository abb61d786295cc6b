//! Snapshots: private copies of records, filled by [`Table::snapshot`] and
//! [`Table::snapshot_record`], and what can be read from them.

use std::time::Instant;

use vstats_abi::{
    record::{domain_off, is_active, vcpu_off, RECORD_PREFIX},
    seqlock::Busy,
    VCPU_STATS_MAGIC,
};

use crate::{stats::Aggregate, table::words_per_record, Counter, Table};

/// How a record's last read went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordStatus {
    /// Never read (a fresh buffer).
    NotRead,
    /// Read inside one even seq value: the values are consistent.
    Consistent,
    /// Every attempt found the record mid-update or changing: no values.
    Busy {
        /// The last seq value seen.
        seq: u32,
        /// Attempts made.
        attempts: u32,
    },
}

/// What every record snapshot of one table is stamped with, computed once
/// per [`Table::snapshot`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordStamp {
    generation: u64,
    magic: u32,
    abi_size: u32,
}

impl RecordStamp {
    pub(crate) fn of(info: &vstats_abi::validate::TableInfo) -> RecordStamp {
        RecordStamp {
            generation: info.generation(),
            magic: info.header.magic,
            abi_size: info.abi_size,
        }
    }
}

/// A private copy of one record: its counter words `[8, size)`, the seq
/// value they are consistent with, and when they were read.
///
/// Values are read through [`RecordSnapshot::get`] and friends, which
/// return `None` for a counter that is absent: the record was not read
/// consistently, the counter lies outside the record (beyond `size`, or
/// beyond `abi_size` for a standard field), or it is inactive (top bit
/// set: not provided, or overflowed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordSnapshot {
    words: Box<[u64]>,
    taken: Option<Instant>,
    generation: u64,
    index: u32,
    seq: u32,
    magic: u32,
    abi_size: u32,
    status: RecordStatus,
}

impl RecordSnapshot {
    /// An unread buffer shaped for `table`'s records.
    pub fn new(table: &Table) -> RecordSnapshot {
        let info = table.info();
        RecordSnapshot {
            words: vec![0; words_per_record(info)].into_boxed_slice(),
            taken: None,
            generation: info.generation(),
            index: 0,
            seq: 0,
            magic: info.header.magic,
            abi_size: info.abi_size,
            status: RecordStatus::NotRead,
        }
    }

    /// Makes `self` ready to receive record `i` of `table`.
    pub(crate) fn prepare(&mut self, table: &Table, i: u32) {
        let info = table.info();
        self.stamp(i, &RecordStamp::of(info), words_per_record(info));
    }

    /// Makes `self` ready to receive record `i` (`n` counter words) of the
    /// table `stamp` describes.
    #[inline]
    pub(crate) fn stamp(&mut self, i: u32, stamp: &RecordStamp, n: usize) {
        if self.words.len() != n {
            self.words = vec![0; n].into_boxed_slice();
        }
        self.generation = stamp.generation;
        self.magic = stamp.magic;
        self.abi_size = stamp.abi_size;
        self.index = i;
    }

    pub(crate) fn words_mut(&mut self) -> &mut [u64] {
        &mut self.words
    }

    /// Records the outcome of a read (`None`: the record could not be
    /// located, which validation rules out).
    pub(crate) fn finish(&mut self, r: Option<Result<u32, Busy>>, taken: Instant) {
        self.taken = Some(taken);
        (self.seq, self.status) = match r {
            Some(Ok(seq)) => (seq, RecordStatus::Consistent),
            Some(Err(Busy { seq, attempts })) => (seq, RecordStatus::Busy { seq, attempts }),
            None => (0, RecordStatus::NotRead),
        };
    }

    /// The record's index in the table.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How the last read went.
    pub fn status(&self) -> RecordStatus {
        self.status
    }

    /// Whether the last read was consistent.
    pub fn is_consistent(&self) -> bool {
        self.status == RecordStatus::Consistent
    }

    /// The (even) seq value the copy is consistent with; the last seq seen
    /// when busy.
    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// The generation of the table it was read from.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// When it was read (`None` before the first read).
    pub fn taken(&self) -> Option<Instant> {
        self.taken
    }

    /// Whether the record comes from a vCPU table.
    pub fn is_vcpu(&self) -> bool {
        self.magic == VCPU_STATS_MAGIC
    }

    /// The table's magic.
    pub(crate) fn magic(&self) -> u32 {
        self.magic
    }

    /// The raw counter words `[8, size)` as copied, inactive markers
    /// included; empty unless the read was consistent.
    pub fn words(&self) -> &[u64] {
        if self.is_consistent() {
            &self.words
        } else {
            &[]
        }
    }

    /// Whether the slot is unused: read consistently and every counter
    /// word within `size` is inactive (a record with no counter words at
    /// all counts as unused).
    pub fn is_unused(&self) -> bool {
        self.is_consistent() && self.words.iter().all(|&w| !is_active(w))
    }

    /// The words of `c`, if they lie inside the copied record (and inside
    /// `abi_size` for a standard field) and the read was consistent.
    fn span(&self, c: &Counter) -> Option<&[u64]> {
        if c.source() == crate::Source::Standard && !self.has_std_field(c.offset()) {
            return None;
        }
        let first = c.first_word();
        let end = first.checked_add(usize::try_from(c.count()).ok()?)?;
        self.words().get(first..end)
    }

    /// `TableInfo::has_std_field` for the table this was read from.
    fn has_std_field(&self, offset: u32) -> bool {
        offset >= RECORD_PREFIX && offset.checked_add(8).is_some_and(|e| e <= self.abi_size)
    }

    /// The value of the scalar counter `c`; `None` when absent (see the
    /// type's docs) or when `c` is a histogram.
    pub fn get(&self, c: &Counter) -> Option<u64> {
        if c.is_histogram() {
            return None;
        }
        match self.span(c)? {
            [v] if is_active(*v) => Some(*v),
            _ => None,
        }
    }

    /// The buckets of the histogram `c`; `None` when absent, when any
    /// bucket is inactive, or when `c` is not a histogram.
    pub fn histogram(&self, c: &Counter) -> Option<&[u64]> {
        if !c.is_histogram() {
            return None;
        }
        let s = self.span(c)?;
        s.iter().all(|&w| is_active(w)).then_some(s)
    }

    /// A standard field of this revision by its fixed offset, `None` when
    /// the producer's `abi_size` does not reach it, it is inactive, or the
    /// read was not consistent.
    fn std_field(&self, vcpu: bool, offset: u32) -> Option<u64> {
        if self.is_vcpu() != vcpu || !self.has_std_field(offset) {
            return None;
        }
        let i = ((offset - RECORD_PREFIX) / 8) as usize;
        self.words().get(i).copied().filter(|&v| is_active(v))
    }

    /// vCPU `runstate_running_time`, nanoseconds (`None` in a domain
    /// table or when absent).
    pub fn running(&self) -> Option<u64> {
        self.std_field(true, vcpu_off::RUNNING)
    }

    /// vCPU `runstate_runnable_time`, nanoseconds.
    pub fn runnable(&self) -> Option<u64> {
        self.std_field(true, vcpu_off::RUNNABLE)
    }

    /// vCPU `runstate_blocked_time`, nanoseconds.
    pub fn blocked(&self) -> Option<u64> {
        self.std_field(true, vcpu_off::BLOCKED)
    }

    /// vCPU `runstate_offline_time`, nanoseconds.
    pub fn offline(&self) -> Option<u64> {
        self.std_field(true, vcpu_off::OFFLINE)
    }

    /// Domain `vcpus_online` (`None` in a vCPU table or when absent).
    pub fn vcpus_online(&self) -> Option<u64> {
        self.std_field(false, domain_off::VCPUS_ONLINE)
    }

    /// Domain `vcpus_max`.
    pub fn vcpus_max(&self) -> Option<u64> {
        self.std_field(false, domain_off::VCPUS_MAX)
    }

    /// Domain `uptime`, nanoseconds.
    pub fn uptime(&self) -> Option<u64> {
        self.std_field(false, domain_off::UPTIME)
    }
}

/// A private copy of every record of a table, filled by
/// [`Table::snapshot`].
///
/// Busy records: a record that stays mid-update for every attempt does not
/// fail the snapshot. It gets status [`RecordStatus::Busy`], its counters
/// read as absent, and it is counted in [`Snapshot::busy_count`] (also
/// returned by [`Table::snapshot`]); [`Snapshot::busy`] lists them.
#[derive(Clone, Debug)]
pub struct Snapshot {
    records: Vec<RecordSnapshot>,
    taken: Option<Instant>,
    busy: u32,
}

impl Snapshot {
    /// An unread snapshot shaped for `table`: allocates `nr_records`
    /// record buffers once; refilling it never allocates.
    pub fn new(table: &Table) -> Snapshot {
        let proto = RecordSnapshot::new(table);
        Snapshot {
            records: (0..table.nr_records())
                .map(|i| RecordSnapshot {
                    index: i,
                    ..proto.clone()
                })
                .collect(),
            taken: None,
            busy: 0,
        }
    }

    /// Reshapes for `table` if it has another number of records.
    pub(crate) fn prepare(&mut self, table: &Table) {
        if self.records.len() != table.nr_records() as usize {
            *self = Snapshot::new(table);
        }
    }

    pub(crate) fn records_mut(&mut self) -> &mut [RecordSnapshot] {
        &mut self.records
    }

    pub(crate) fn finish(&mut self, taken: Instant, busy: u32) {
        self.taken = Some(taken);
        self.busy = busy;
    }

    /// Every record slot, in index order.
    pub fn records(&self) -> &[RecordSnapshot] {
        &self.records
    }

    /// Record `i`, `None` when out of range.
    pub fn record(&self, i: u32) -> Option<&RecordSnapshot> {
        self.records.get(usize::try_from(i).ok()?)
    }

    /// When the snapshot was taken (before its first record was read);
    /// `None` before the first [`Table::snapshot`].
    pub fn taken(&self) -> Option<Instant> {
        self.taken
    }

    /// Records found busy by the last [`Table::snapshot`].
    pub fn busy_count(&self) -> u32 {
        self.busy
    }

    /// The busy records' indices and their [`RecordStatus::Busy`] details.
    pub fn busy(&self) -> impl Iterator<Item = (u32, RecordStatus)> + '_ {
        self.records
            .iter()
            .filter(|r| matches!(r.status, RecordStatus::Busy { .. }))
            .map(|r| (r.index, r.status))
    }

    /// Whether the snapshot was taken and every record read consistently.
    pub fn is_complete(&self) -> bool {
        self.taken.is_some() && self.records.iter().all(RecordSnapshot::is_consistent)
    }

    /// Sum, min, max, average, zeros and presence of scalar counter `c`
    /// across the records (unused, busy and absent ones count as absent).
    pub fn aggregate(&self, c: &Counter) -> Aggregate {
        self.records.iter().map(|r| r.get(c)).collect()
    }
}
