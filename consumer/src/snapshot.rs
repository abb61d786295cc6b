//! Snapshots: private copies of records, filled by [`Table::snapshot`] and
//! [`Table::snapshot_record`], and what can be read from them.
//!
//! A [`Snapshot`] is flat: one buffer of counter words for all its records
//! (record `i`'s words at `[i * n, (i + 1) * n)`), one `[s1, s3]` seq pair
//! per record, and the table's fields (generation, magic, `abi_size`) and
//! the time stamped once per snapshot. [`Snapshot::record`] and
//! [`Snapshot::records`] hand out [`RecordView`]s into it; a
//! [`RecordSnapshot`] is one record's own copy (what
//! [`Table::snapshot_record`] fills), read through the same methods. A
//! snapshot made with [`Snapshot::of_counters`] copies only the words of
//! the counters named, each record inside its own seq window: the cost of
//! a sweep scales with what a sampler reads.

use std::time::Instant;

use vstats_abi::{
    record::{domain_off, is_active, vcpu_off, INACTIVE, RECORD_PREFIX},
    seqlock::Busy,
    VCPU_STATS_MAGIC,
};

use crate::{
    guard::Run,
    mem::MemView,
    raw::{SeqRead, SweepPlan},
    runstate::{Runstate, TimeBase, RUNSTATE_COUNT},
    stats::Aggregate,
    table::words_per_record,
    Counter, Table,
};

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

/// What every record of one table is stamped with, computed once per
/// [`Table::snapshot`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RecordStamp {
    generation: u64,
    magic: u32,
    abi_size: u32,
    /// The header's `clock` word (0 without an r3 header).
    clock: u32,
}

impl RecordStamp {
    /// The stamp of `table`'s records. A table whose producer is known to
    /// be gone ([`Table::producer_gone`]) is stamped with no clock: its
    /// times are final, and bringing them up to date would show a dead
    /// VM's vCPUs still running (docs/abi.md section 10).
    #[inline]
    pub(crate) fn of(table: &Table) -> RecordStamp {
        let info = table.info();
        RecordStamp {
            generation: info.generation(),
            magic: info.header.magic,
            abi_size: info.abi_size,
            clock: if table.producer_gone() { 0 } else { info.clock },
        }
    }
}

/// One record as read: a view into a [`Snapshot`] (from
/// [`Snapshot::record`] and [`Snapshot::records`]) or into a
/// [`RecordSnapshot`] ([`RecordSnapshot::view`]). `Copy`: a pointer, a
/// length and a few stamped fields.
///
/// Values are read through [`RecordView::get`] and friends, which return
/// `None` for a counter that is absent: the record was not read
/// consistently, the counter lies outside the record (beyond `size`, or
/// beyond `abi_size` for a standard field), it is inactive (top bit set:
/// not provided, or overflowed), or the snapshot was made with
/// [`Snapshot::of_counters`] and the counter was not among those named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordView<'a> {
    words: &'a [u64],
    taken: Option<Instant>,
    taken_at_ns: Option<u64>,
    stamp: RecordStamp,
    index: u32,
    seq: u32,
    status: RecordStatus,
}

impl<'a> From<&'a RecordSnapshot> for RecordView<'a> {
    fn from(r: &'a RecordSnapshot) -> RecordView<'a> {
        r.view()
    }
}

impl<'a> From<&RecordView<'a>> for RecordView<'a> {
    fn from(r: &RecordView<'a>) -> RecordView<'a> {
        *r
    }
}

impl<'a> RecordView<'a> {
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
        self.stamp.generation
    }

    /// When it was read (`None` before the first read); for a record of a
    /// [`Snapshot`], the snapshot's time.
    pub fn taken(&self) -> Option<Instant> {
        self.taken
    }

    /// The table's clock read after the copy (see
    /// [`Snapshot::taken_at_ns`]); `None` for a table of clock 0 or an
    /// unknown clock, when the clock could not be read, or before the
    /// first read.
    pub fn taken_at_ns(&self) -> Option<u64> {
        self.taken_at_ns
    }

    /// The time base of the table's nanosecond values (its header's
    /// `clock`; [`TimeBase::Unnamed`] for r1 and r2 tables).
    pub fn time_base(&self) -> TimeBase {
        TimeBase::from_clock(self.stamp.clock)
    }

    /// Whether the record comes from a vCPU table.
    pub fn is_vcpu(&self) -> bool {
        self.stamp.magic == VCPU_STATS_MAGIC
    }

    /// The table's magic.
    pub(crate) fn magic(&self) -> u32 {
        self.stamp.magic
    }

    /// The raw counter words `[8, size)` as copied, inactive markers
    /// included (and for words a [`Snapshot::of_counters`] did not copy);
    /// empty unless the read was consistent.
    pub fn words(&self) -> &'a [u64] {
        if self.is_consistent() {
            self.words
        } else {
            &[]
        }
    }

    /// Whether the slot is unused: read consistently and every counter
    /// word within `size` (that was copied) is inactive (a record with no
    /// counter words at all counts as unused).
    pub fn is_unused(&self) -> bool {
        self.is_consistent() && self.words.iter().all(|&w| !is_active(w))
    }

    /// The words of `c`, if they lie inside the copied record (and inside
    /// `abi_size` for a standard field) and the read was consistent.
    fn span(&self, c: &Counter) -> Option<&'a [u64]> {
        if c.source() == crate::Source::Standard && !self.has_std_field(c.offset()) {
            return None;
        }
        let first = c.first_word();
        let end = first.checked_add(usize::try_from(c.count()).ok()?)?;
        self.words().get(first..end)
    }

    /// `TableInfo::has_std_field` for the table this was read from.
    fn has_std_field(&self, offset: u32) -> bool {
        offset >= RECORD_PREFIX
            && offset
                .checked_add(8)
                .is_some_and(|e| e <= self.stamp.abi_size)
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
    pub fn histogram(&self, c: &Counter) -> Option<&'a [u64]> {
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

    /// vCPU `runstate` (r3, byte 40): the current state, 0 running to 3
    /// offline, or another value as read; `None` in a domain table, an r1
    /// or r2 table, or when inactive.
    pub fn runstate(&self) -> Option<u64> {
        self.std_field(true, vcpu_off::RUNSTATE)
    }

    /// vCPU `runstate_entry_time` (r3, byte 48): when the current state
    /// was entered, ns in the table's clock ([`RecordView::time_base`]).
    pub fn runstate_entry_time(&self) -> Option<u64> {
        self.std_field(true, vcpu_off::ENTRY)
    }

    /// The raw word of a vCPU standard field, inactive markers included;
    /// [`INACTIVE`] when the record has no such field or was not read
    /// consistently.
    fn std_word(&self, offset: u32) -> u64 {
        if !self.is_vcpu() || !self.has_std_field(offset) {
            return INACTIVE;
        }
        let i = ((offset - RECORD_PREFIX) / 8) as usize;
        self.words().get(i).copied().unwrap_or(INACTIVE)
    }

    /// The vCPU's runstate brought up to the snapshot's time (R26,
    /// `docs/abi-r3-design.md` 4.3): [`RecordView::up_to_date_at`] at
    /// [`RecordView::taken_at_ns`], the table's clock read after the
    /// copy. Not extrapolated (the times as of the last state change) for
    /// r1 and r2 tables, tables of an unknown clock, an unreadable clock,
    /// an inactive or unknown state; every time `None` in a domain table
    /// or a record not read consistently.
    pub fn up_to_date(&self) -> Runstate {
        self.up_to_date_at(self.taken_at_ns)
    }

    /// The vCPU's runstate at `now_ns` in the table's clock, which the
    /// caller read **after** this record was copied
    /// ([`Runstate::from_words`] over the record's words and
    /// [`RecordView::time_base`]).
    pub fn up_to_date_at(&self, now_ns: Option<u64>) -> Runstate {
        let times: [u64; RUNSTATE_COUNT] = [
            vcpu_off::RUNNING,
            vcpu_off::RUNNABLE,
            vcpu_off::BLOCKED,
            vcpu_off::OFFLINE,
        ]
        .map(|o| self.std_word(o));
        if !self.is_vcpu() || !self.has_std_field(vcpu_off::ENTRY) {
            return Runstate::from_times(times);
        }
        Runstate::from_words(
            times,
            self.std_word(vcpu_off::RUNSTATE),
            self.std_word(vcpu_off::ENTRY),
            self.time_base(),
            now_ns,
        )
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

/// A private copy of one record: its counter words `[8, size)`, the seq
/// value they are consistent with, and when they were read. Filled by
/// [`Table::snapshot_record`]; read through the methods of
/// [`RecordView`], which it repeats ([`RecordSnapshot::view`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordSnapshot {
    words: Box<[u64]>,
    /// The bounds check of the table's records and the routine chosen
    /// for them, kept from the last read.
    plan: PlanCache,
    taken: Option<Instant>,
    taken_at_ns: Option<u64>,
    stamp: RecordStamp,
    index: u32,
    seq: u32,
    status: RecordStatus,
}

/// A [`SweepPlan`] kept between reads: a cache, not part of the value, so
/// every two compare equal.
#[derive(Clone, Debug)]
struct PlanCache(Option<SweepPlan>);

impl PartialEq for PlanCache {
    fn eq(&self, _: &PlanCache) -> bool {
        true
    }
}

impl Eq for PlanCache {}

/// `RecordSnapshot`'s readers, each the [`RecordView`] method of the same
/// name.
macro_rules! view_methods {
    ($($(#[$m:meta])* $vis:vis fn $name:ident(&self $(, $a:ident: $t:ty)*) -> $r:ty;)*) => {$(
        $(#[$m])*
        $vis fn $name(&self $(, $a: $t)*) -> $r {
            self.view().$name($($a),*)
        }
    )*};
}

impl RecordSnapshot {
    /// An unread buffer shaped for `table`'s records.
    pub fn new(table: &Table) -> RecordSnapshot {
        let info = table.info();
        RecordSnapshot {
            words: vec![0; words_per_record(info)].into_boxed_slice(),
            plan: PlanCache(None),
            taken: None,
            taken_at_ns: None,
            stamp: RecordStamp::of(table),
            index: 0,
            seq: 0,
            status: RecordStatus::NotRead,
        }
    }

    /// This record as a [`RecordView`], the type [`Snapshot::record`]
    /// returns.
    pub fn view(&self) -> RecordView<'_> {
        RecordView {
            words: &self.words,
            taken: self.taken,
            taken_at_ns: self.taken_at_ns,
            stamp: self.stamp,
            index: self.index,
            seq: self.seq,
            status: self.status,
        }
    }

    /// Makes `self` ready to receive record `i` of `table`.
    #[inline]
    pub(crate) fn prepare(&mut self, table: &Table, i: u32) {
        let info = table.info();
        let n = words_per_record(info);
        if self.words.len() != n {
            self.reshape(n);
        }
        self.stamp = RecordStamp::of(table);
        self.index = i;
    }

    /// Out of line: a buffer refilled from tables of its record size
    /// never reshapes.
    #[cold]
    #[inline(never)]
    fn reshape(&mut self, n: usize) {
        self.words = vec![0; n].into_boxed_slice();
        self.plan = PlanCache(None);
    }

    /// Reads record `i` of the `nrec` records of the table mapped by
    /// `map` (at byte `first`, `stride` bytes apart) into the words, with
    /// at most `attempts` attempts, through the plan kept from the last
    /// read when it was made for this mapping and geometry (a few
    /// compares), else through a new one. `None` when the records do not
    /// fit the mapping or `i` is not one of them.
    #[inline]
    pub(crate) fn read(
        &mut self,
        map: &MemView<'_>,
        first: u64,
        stride: u64,
        nrec: u32,
        i: u32,
        attempts: u32,
    ) -> Option<SeqRead> {
        if let Some(plan) = &mut self.plan.0 {
            if let Some(r) = map.read_planned(plan, first, stride, i, &mut self.words, attempts) {
                return Some(r);
            }
        }
        self.replan(map, first, stride, nrec, i, attempts)
    }

    /// The first read, or one of another table or mapping: checks the
    /// records, chooses the routine, keeps that plan, reads.
    #[cold]
    #[inline(never)]
    fn replan(
        &mut self,
        map: &MemView<'_>,
        first: u64,
        stride: u64,
        nrec: u32,
        i: u32,
        attempts: u32,
    ) -> Option<SeqRead> {
        let per = self.words.len();
        let runs = [Run::counters(0, u32::try_from(per).ok()?)];
        self.plan =
            PlanCache(map.plan_sweep(first, stride, usize::try_from(nrec).ok()?, &runs, per));
        let plan = self.plan.0.as_mut()?;
        map.read_planned(plan, first, stride, i, &mut self.words, attempts)
    }

    /// Records the outcome of a read (`None`: the record could not be
    /// located, which validation rules out) and the table's clock as read
    /// after the copy ([`crate::Table::clock_now`]).
    pub(crate) fn finish(
        &mut self,
        r: Option<Result<u32, Busy>>,
        taken: Instant,
        now_ns: Option<u64>,
    ) {
        self.taken = Some(taken);
        self.taken_at_ns = now_ns.filter(|_| TimeBase::from_clock(self.stamp.clock).is_named());
        (self.seq, self.status) = match r {
            Some(Ok(seq)) => (seq, RecordStatus::Consistent),
            Some(Err(Busy { seq, attempts })) => (seq, RecordStatus::Busy { seq, attempts }),
            None => (0, RecordStatus::NotRead),
        };
    }

    /// The raw counter words `[8, size)` as copied, inactive markers
    /// included; empty unless the read was consistent.
    pub fn words(&self) -> &[u64] {
        self.view().words()
    }

    /// The buckets of the histogram `c`; see [`RecordView::histogram`].
    pub fn histogram(&self, c: &Counter) -> Option<&[u64]> {
        self.view().histogram(c)
    }

    view_methods! {
        /// The record's index in the table.
        pub fn index(&self) -> u32;
        /// How the last read went.
        pub fn status(&self) -> RecordStatus;
        /// Whether the last read was consistent.
        pub fn is_consistent(&self) -> bool;
        /// The (even) seq value the copy is consistent with; the last seq
        /// seen when busy.
        pub fn seq(&self) -> u32;
        /// The generation of the table it was read from.
        pub fn generation(&self) -> u64;
        /// When it was read (`None` before the first read).
        pub fn taken(&self) -> Option<Instant>;
        /// The table's clock read after the copy; see
        /// [`RecordView::taken_at_ns`].
        pub fn taken_at_ns(&self) -> Option<u64>;
        /// The time base of the table's nanosecond values.
        pub fn time_base(&self) -> TimeBase;
        /// vCPU `runstate` (r3); see [`RecordView::runstate`].
        pub fn runstate(&self) -> Option<u64>;
        /// vCPU `runstate_entry_time` (r3), ns in the table's clock.
        pub fn runstate_entry_time(&self) -> Option<u64>;
        /// The up-to-date runstate at [`RecordSnapshot::taken_at_ns`];
        /// see [`RecordView::up_to_date`].
        pub fn up_to_date(&self) -> Runstate;
        /// The up-to-date runstate at `now_ns`; see
        /// [`RecordView::up_to_date_at`].
        pub fn up_to_date_at(&self, now_ns: Option<u64>) -> Runstate;
        /// Whether the record comes from a vCPU table.
        pub fn is_vcpu(&self) -> bool;
        /// Whether the slot is unused; see [`RecordView::is_unused`].
        pub fn is_unused(&self) -> bool;
        /// The value of the scalar counter `c`; see [`RecordView::get`].
        pub fn get(&self, c: &Counter) -> Option<u64>;
        /// vCPU `runstate_running_time`, nanoseconds (`None` in a domain
        /// table or when absent).
        pub fn running(&self) -> Option<u64>;
        /// vCPU `runstate_runnable_time`, nanoseconds.
        pub fn runnable(&self) -> Option<u64>;
        /// vCPU `runstate_blocked_time`, nanoseconds.
        pub fn blocked(&self) -> Option<u64>;
        /// vCPU `runstate_offline_time`, nanoseconds.
        pub fn offline(&self) -> Option<u64>;
        /// Domain `vcpus_online` (`None` in a vCPU table or when absent).
        pub fn vcpus_online(&self) -> Option<u64>;
        /// Domain `vcpus_max`.
        pub fn vcpus_max(&self) -> Option<u64>;
        /// Domain `uptime`, nanoseconds.
        pub fn uptime(&self) -> Option<u64>;
    }
}

/// A private copy of every record of a table, filled by
/// [`Table::snapshot`]: one flat buffer of counter words, one seq pair per
/// record, the table's fields and the time stamped once. Made for one
/// table shape; refilling it for a table of that shape never allocates.
///
/// Busy records: a record that stays mid-update for every attempt does not
/// fail the snapshot. It gets status [`RecordStatus::Busy`], its counters
/// read as absent, and it is counted in [`Snapshot::busy_count`] (also
/// returned by [`Table::snapshot`]); [`Snapshot::busy`] lists them.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Record `i`'s counter words at `[i * per, (i + 1) * per)`.
    words: Vec<u64>,
    /// Record `i`'s `[s1, s3]`: consistent when `s1` is even and equal to
    /// `s3`; otherwise busy, with `s1` the last seq seen.
    seqs: Vec<[u32; 2]>,
    /// Counter words per record.
    per: usize,
    /// What each record copies.
    runs: Vec<Run>,
    /// The last sweep's bounds check and routine, kept for the next
    /// (`crate::raw::SweepPlan`: used only when made for the same
    /// mapping, geometry and buffers, else made again). Dropped with the
    /// buffers when the snapshot is reshaped.
    plan: Option<SweepPlan>,
    /// The counter words named ([`Snapshot::of_counters`]) as `[first,
    /// end)` ranges, sorted and merged; `None`: every word.
    subset: Option<Vec<(usize, usize)>>,
    stamp: RecordStamp,
    /// Records read by the last snapshot (the rest are not read).
    read: u32,
    /// Attempts a busy record was given.
    attempts: u32,
    taken: Option<Instant>,
    /// The table's clock read after the last record was copied.
    taken_at_ns: Option<u64>,
    busy: u32,
}

impl Snapshot {
    /// An unread snapshot shaped for `table`: allocates its buffers once
    /// (`nr_records x (size - 8) / 8` words); refilling it never
    /// allocates.
    pub fn new(table: &Table) -> Snapshot {
        Snapshot::shaped(table, None)
    }

    /// An unread snapshot of `table` that copies only the words of
    /// `counters` (e.g. the four runstate times): each record copies those
    /// words, and nothing else, inside its seq window. The other counters
    /// read as absent. Counters of another table are taken by their word
    /// positions.
    pub fn of_counters<'c>(
        table: &Table,
        counters: impl IntoIterator<Item = &'c Counter>,
    ) -> Snapshot {
        let mut ranges: Vec<(usize, usize)> = counters
            .into_iter()
            .map(|c| {
                let first = c.first_word();
                (first, first.saturating_add(c.count() as usize))
            })
            .filter(|(a, b)| a < b)
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        Snapshot::shaped(table, Some(merged))
    }

    /// An unread snapshot of a vCPU table that copies only its runstate:
    /// the four standard times and, in an r3 table, `runstate` and
    /// `runstate_entry_time`, so that [`RecordView::up_to_date`] works on
    /// it (a [`Snapshot::of_counters`] of the four times leaves the state
    /// out, and nothing is extrapolated). For readers that need nothing
    /// else (the rrdd plugin).
    pub fn of_runstate(table: &Table) -> Snapshot {
        let info = table.info();
        let end = if info.is_vcpu() && info.has_std_field(vcpu_off::ENTRY) {
            vcpu_off::ENTRY + 8
        } else {
            vcpu_off::OFFLINE + 8
        };
        let words = ((end - RECORD_PREFIX) / 8) as usize;
        Snapshot::shaped(table, Some(vec![(0, words)]))
    }

    fn shaped(table: &Table, subset: Option<Vec<(usize, usize)>>) -> Snapshot {
        let info = table.info();
        let per = words_per_record(info);
        let nr = table.nr_records() as usize;
        let runs: Vec<Run> = match &subset {
            None => vec![Run::counters(0, per as u32)],
            Some(ranges) => ranges
                .iter()
                .filter(|(a, _)| *a < per)
                .map(|&(a, b)| Run::counters(a as u32, (b.min(per) - a) as u32))
                .collect(),
        };
        // Words no run copies read as inactive (absent), never as 0.
        let fill = if subset.is_some() { INACTIVE } else { 0 };
        Snapshot {
            words: vec![fill; nr * per],
            seqs: vec![[0, 0]; nr],
            per,
            runs,
            plan: None,
            subset,
            stamp: RecordStamp::of(table),
            read: 0,
            attempts: 0,
            taken: None,
            taken_at_ns: None,
            busy: 0,
        }
    }

    /// Reshapes for `table` if its records have another number or size.
    #[inline]
    pub(crate) fn prepare(&mut self, table: &Table) {
        if self.seqs.len() != table.nr_records() as usize
            || self.per != words_per_record(table.info())
        {
            self.reshape(table);
        }
        self.stamp = RecordStamp::of(table);
    }

    /// Out of line: a snapshot refilled for its own table never reshapes.
    #[cold]
    #[inline(never)]
    fn reshape(&mut self, table: &Table) {
        *self = Snapshot::shaped(table, self.subset.take());
    }

    /// The buffers [`Table::snapshot`] fills: words, seqs, words per
    /// record, runs.
    pub(crate) fn parts_mut(&mut self) -> (&mut [u64], &mut [[u32; 2]], usize, &[Run]) {
        (&mut self.words, &mut self.seqs, self.per, &self.runs)
    }

    /// One pass of the seq protocol over every record of the table mapped
    /// by `map`, whose records start at byte `first`, `stride` bytes apart
    /// (`crate::raw::Region::sweep_seq`), through the plan kept from the
    /// last sweep when it was made for this mapping and geometry (a few
    /// compares), else through a new one.
    #[inline]
    pub(crate) fn sweep(
        &mut self,
        map: &MemView<'_>,
        first: u64,
        stride: u64,
    ) -> Option<Result<bool, usize>> {
        if let Some(plan) = &mut self.plan {
            if let Some(r) = map.sweep_planned(plan, first, stride, &mut self.words, &mut self.seqs)
            {
                return Some(r);
            }
        }
        self.replan(map, first, stride)
    }

    /// The first sweep, or one of another table or mapping: checks the
    /// sweep and chooses its routine, keeps that plan, sweeps. `None`
    /// when the records do not fit the mapping (no plan is kept).
    #[cold]
    #[inline(never)]
    fn replan(
        &mut self,
        map: &MemView<'_>,
        first: u64,
        stride: u64,
    ) -> Option<Result<bool, usize>> {
        self.plan = map.plan_sweep(first, stride, self.seqs.len(), &self.runs, self.per);
        let plan = self.plan.as_mut()?;
        map.sweep_planned(plan, first, stride, &mut self.words, &mut self.seqs)
    }

    /// Records the outcome of a sweep, with the table's clock as read
    /// after the last record was copied (design 4.3: every update a copy
    /// saw happened before it): [`crate::Table::clock_now`], or the
    /// caller's reading ([`crate::Table::snapshot_at`]).
    pub(crate) fn finish(
        &mut self,
        taken: Instant,
        now_ns: Option<u64>,
        read: u32,
        attempts: u32,
        busy: u32,
    ) {
        self.taken = Some(taken);
        // A table whose clock this library does not read, or whose
        // producer is gone, takes no time from the caller either.
        self.taken_at_ns = now_ns.filter(|_| TimeBase::from_clock(self.stamp.clock).is_named());
        self.read = read;
        self.attempts = attempts;
        self.busy = busy;
    }

    /// Counter words per record (`(size - 8) / 8`), the stride of
    /// [`Snapshot::words`].
    pub fn words_per_record(&self) -> usize {
        self.per
    }

    /// The flat buffer: record `i`'s counter words at `[i * n, (i + 1) *
    /// n)`, `n` = [`Snapshot::words_per_record`], whatever the records'
    /// status (check it through [`Snapshot::record`]).
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Whether the snapshot copies only some counters
    /// ([`Snapshot::of_counters`]).
    pub fn is_subset(&self) -> bool {
        self.subset.is_some()
    }

    /// Number of record slots.
    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    /// Whether the table has no record slots.
    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    /// Every record slot, in index order.
    pub fn records(&self) -> Records<'_> {
        Records {
            snap: self,
            range: 0..self.seqs.len() as u32,
        }
    }

    /// Record `i`, `None` when out of range.
    pub fn record(&self, i: u32) -> Option<RecordView<'_>> {
        let k = usize::try_from(i).ok()?;
        let [s1, s3] = *self.seqs.get(k)?;
        let start = k.checked_mul(self.per)?;
        let words = self.words.get(start..start.checked_add(self.per)?)?;
        let status = if i >= self.read {
            RecordStatus::NotRead
        } else if s1 & 1 == 0 && s1 == s3 {
            RecordStatus::Consistent
        } else {
            RecordStatus::Busy {
                seq: s1,
                attempts: self.attempts,
            }
        };
        Some(RecordView {
            words,
            taken: self.taken,
            taken_at_ns: self.taken_at_ns,
            stamp: self.stamp,
            index: i,
            seq: if status == RecordStatus::NotRead {
                0
            } else {
                s1
            },
            status,
        })
    }

    /// When the snapshot was taken (before its first record was read);
    /// `None` before the first [`Table::snapshot`].
    pub fn taken(&self) -> Option<Instant> {
        self.taken
    }

    /// The table's clock ([`Snapshot::time_base`]) read once, after the
    /// last record was copied: host `CLOCK_MONOTONIC` for a table of
    /// clock 1, Xen system time for clock 2 when it can be read (feature
    /// `xen`), `None` otherwise (clock 0: r1 and r2 tables; an unknown
    /// clock; before the first [`Table::snapshot`]). The instant the
    /// records' up-to-date runstates ([`RecordView::up_to_date`]) are
    /// computed at. Reading it costs one clock read per snapshot of a
    /// table that names a clock, none for the others.
    pub fn taken_at_ns(&self) -> Option<u64> {
        self.taken_at_ns
    }

    /// The time base of the table's nanosecond values (its header's
    /// `clock`).
    pub fn time_base(&self) -> TimeBase {
        TimeBase::from_clock(self.stamp.clock)
    }

    /// Records found busy by the last [`Table::snapshot`].
    pub fn busy_count(&self) -> u32 {
        self.busy
    }

    /// The busy records' indices and their [`RecordStatus::Busy`] details.
    pub fn busy(&self) -> impl Iterator<Item = (u32, RecordStatus)> + '_ {
        self.records()
            .filter(|r| matches!(r.status, RecordStatus::Busy { .. }))
            .map(|r| (r.index, r.status))
    }

    /// Whether the snapshot was taken and every record read consistently.
    pub fn is_complete(&self) -> bool {
        self.taken.is_some() && self.records().all(|r| r.is_consistent())
    }

    /// Sum, min, max, average, zeros and presence of scalar counter `c`
    /// across the records (unused, busy and absent ones count as absent).
    pub fn aggregate(&self, c: &Counter) -> Aggregate {
        self.records().map(|r| r.get(c)).collect()
    }
}

/// The records of a [`Snapshot`], in index order, as [`RecordView`]s.
#[derive(Clone, Debug)]
pub struct Records<'a> {
    snap: &'a Snapshot,
    range: std::ops::Range<u32>,
}

impl<'a> Records<'a> {
    /// The same records, from the start of what is left (for code written
    /// against a slice: `snap.records().iter()`).
    pub fn iter(&self) -> Records<'a> {
        self.clone()
    }

    /// Records left.
    pub fn len(&self) -> usize {
        self.range.len()
    }

    /// Whether none are left.
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }

    /// Record `i` of the snapshot (whatever was iterated already).
    pub fn get(&self, i: u32) -> Option<RecordView<'a>> {
        self.snap.record(i)
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = RecordView<'a>;

    fn next(&mut self) -> Option<RecordView<'a>> {
        let i = self.range.next()?;
        self.snap.record(i)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.range.size_hint()
    }
}

impl DoubleEndedIterator for Records<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let i = self.range.next_back()?;
        self.snap.record(i)
    }
}

impl ExactSizeIterator for Records<'_> {}
