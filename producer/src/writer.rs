//! Record writers: the safe [`RecordWriter`], which borrows its table, and
//! the [`RawRecordWriter`] underneath it, which does not.
//!
//! A raw writer holds pointers to its record's seq and counter words and
//! to the [`Table`]'s private state ([`Control`] and the seq carry). It is
//! for callers whose writers cannot borrow the table in Rust's sense: the
//! C API, which keeps writers in caller memory next to a table that also
//! lives there. Every method that reaches through those pointers is
//! `unsafe` and states what its caller promises.
//!
//! The invariants a raw writer relies on are listed, numbered, on
//! [`RawRecordWriter`]; the SAFETY comments here cite them.
#![allow(unsafe_code)]

use core::{marker::PhantomData, ptr::NonNull, sync::atomic::Ordering};

use vstats_abi::{
    record::{vcpu_off, RunState, INACTIVE, INACTIVE_BIT, RECORD_PREFIX},
    seqlock::{AtomicU32, AtomicU64, SeqWriter},
};

use crate::{Control, SeqCarry, Table};

/// Iterator over the writers of a table's records, in record order.
#[derive(Debug)]
pub struct Writers<'t> {
    table: &'t Table<'t>,
    next: u32,
}

impl<'t> Writers<'t> {
    pub(crate) fn new(table: &'t Table<'t>, next: u32) -> Writers<'t> {
        Writers { table, next }
    }
}

impl<'t> Iterator for Writers<'t> {
    type Item = RecordWriter<'t>;

    fn next(&mut self) -> Option<RecordWriter<'t>> {
        let t = self.table;
        let i = self.next;
        let off = usize::try_from(t.layout.record_offset(i)?).ok()?;
        let seq = t.frames.u32_at(off)?;
        // The standard record and the producer-specific area after it.
        let words = t.frames.u64s_at(
            off + RECORD_PREFIX as usize,
            ((t.layout.record_extent() - RECORD_PREFIX) / 8) as usize,
        )?;
        self.next += 1;
        // Only this iterator hands writers out, so a plain load and store
        // count them.
        let handed = &t.seqs.handed;
        handed.store(handed.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        Some(RecordWriter {
            raw: RawRecordWriter {
                index: i,
                seq: NonNull::from(seq),
                words: NonNull::from(words).cast(),
                len: words.len(),
                sw: SeqWriter::new(t.seqs.base),
                carry: NonNull::from(&t.seqs),
                control: NonNull::from(&t.control),
            },
            _table: PhantomData,
        })
    }
}

/// The single writer of one record, without a lifetime. Obtained with
/// [`RecordWriter::into_raw`].
///
/// Invariants a raw writer is created with (by [`Writers`], from a live
/// table) and that the caller of its `unsafe` methods promises still
/// hold:
///
/// 1. the [`Table`] it was split from is alive and has not moved since
///    (its `Control` and seq carry are where the pointers say);
/// 2. that table's frames are still valid (invariants 1 to 4 of
///    [`crate::Frames`]), so `seq` and the `len` counter words are;
/// 3. the pointers are only used through `&mut self` (one thread at a
///    time), and no other writer of the same record exists.
///
/// Like [`RecordWriter`] it is `Send` but not `Sync`. Dropping it does
/// not hand its seq on to the table's next split (it cannot reach the
/// table safely): call [`RawRecordWriter::release`] for that; a raw writer
/// that is only dropped counts as leaked ([`Table::writers_lost`]).
///
/// Its size is part of the C API's contract (a `struct vstats_writer` is
/// 64 bytes): 48 bytes on 64-bit hosts.
#[derive(Debug)]
pub struct RawRecordWriter {
    index: u32,
    sw: SeqWriter,
    seq: NonNull<AtomicU32>,
    words: NonNull<AtomicU64>,
    len: usize,
    carry: NonNull<SeqCarry>,
    control: NonNull<Control>,
}

// SAFETY: the pointers lead to atomics (seq, counter words) and to
// `Control` and `SeqCarry`, whose fields are atomics: all of them may be
// used from any thread. Moving the writer moves the right to use them;
// `&mut self` on every method keeps that use to one thread at a time.
unsafe impl Send for RawRecordWriter {}

impl RawRecordWriter {
    /// The record's index.
    #[inline]
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Number of counter words in the record (`(size - 8) / 8`).
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the record has no counter words.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The seq value this writer last stored (its private copy).
    #[inline]
    pub fn seq(&self) -> u32 {
        self.sw.current()
    }

    /// As [`RecordWriter::begin`].
    ///
    /// # Safety
    ///
    /// The caller promises invariants 1 to 3 of [`RawRecordWriter`] for as
    /// long as the returned update lives.
    #[inline]
    pub unsafe fn begin(&mut self) -> Option<Update<'_>> {
        // SAFETY: invariant 1: the table, and so its `Control`, is alive
        // and in place; `Control` is only used through `&`.
        let control = unsafe { self.control.as_ref() };
        // An update already open is handed back even while disabled, so it
        // can be finished.
        if !self.sw.in_update() && !control.is_enabled() {
            return None;
        }
        // SAFETY: invariant 2: the seq word is valid for the update's
        // lifetime, and only ever accessed atomically.
        let seq = unsafe { self.seq.as_ref() };
        // SAFETY: invariant 2: `len` counter words at `words` are valid,
        // 8-aligned atomics for the update's lifetime (`Frames::u64s_at`
        // made them so).
        let words = unsafe { core::slice::from_raw_parts(self.words.as_ptr(), self.len) };
        self.sw.begin(seq);
        Some(Update {
            seq,
            words,
            sw: &mut self.sw,
        })
    }

    /// As [`RecordWriter::update`].
    ///
    /// # Safety
    ///
    /// As [`RawRecordWriter::begin`], for the duration of the call.
    #[inline]
    pub unsafe fn update(&mut self, f: impl FnOnce(&mut Update<'_>)) -> bool {
        // SAFETY: the caller's promise, for the duration of the call.
        match unsafe { self.begin() } {
            Some(mut u) => {
                f(&mut u);
                u.finish();
                true
            }
            None => false,
        }
    }

    /// As [`RecordWriter::update_words`].
    ///
    /// # Safety
    ///
    /// As [`RawRecordWriter::begin`], for the duration of the call.
    #[inline]
    pub unsafe fn update_words(&mut self, first: usize, values: &[u64]) -> Option<usize> {
        // SAFETY: invariant 1: the table, and so its `Control`, is alive
        // and in place; `Control` is only used through `&`.
        let control = unsafe { self.control.as_ref() };
        if !self.sw.in_update() && !control.is_enabled() {
            return None;
        }
        // SAFETY: invariant 2: the seq word is valid for the call, and only
        // ever accessed atomically.
        let seq = unsafe { self.seq.as_ref() };
        // SAFETY: invariant 2: `len` counter words at `words` are valid,
        // 8-aligned atomics for the call (`Frames::u64s_at` made them so).
        let words = unsafe { core::slice::from_raw_parts(self.words.as_ptr(), self.len) };
        let run = words.get(first..).unwrap_or_default();
        // One bounds check for the whole run when it fits (a run of known
        // length, e.g. an array, is then stored without a check per word).
        Some(match run.get(..values.len()) {
            Some(run) => self.sw.write(seq, || store_run(run, values)),
            None => self.sw.write(seq, || store_run(run, values)),
        })
    }

    /// Hands this writer's seq on to the table's next split, as dropping a
    /// [`RecordWriter`] does.
    ///
    /// # Safety
    ///
    /// The caller promises invariant 1 of [`RawRecordWriter`].
    pub unsafe fn release(self) {
        // SAFETY: the caller's promise.
        unsafe { self.hand_back() }
    }

    /// [`RawRecordWriter::release`] without consuming the writer.
    ///
    /// # Safety
    ///
    /// As `release`, and the writer is not used afterwards.
    unsafe fn hand_back(&self) {
        // SAFETY: invariant 1: the table, and so its seq carry, is alive
        // and in place; it is only used through `&` and atomics.
        let carry = unsafe { self.carry.as_ref() };
        let advance = self.sw.current().wrapping_sub(carry.base);
        let advance = advance.wrapping_add(advance & 1);
        carry.max_advance.fetch_max(advance, Ordering::Relaxed);
        carry.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// The single writer of one record. `Send` (it may move to the vCPU's
/// thread) but neither `Sync` nor `Clone`: exactly one party writes a
/// record. It is a [`RawRecordWriter`] whose invariants the borrow of the
/// table (`'t`) proves.
///
/// Its private seq changes on every update: writers used by different CPUs
/// should not share a cacheline, or they slow each other down
/// (docs/benchmarks.md, section 4). The type is kept small rather than
/// padded; a caller that keeps writers side by side in one array pads them
/// (`crossbeam_utils::CachePadded`), as `vstats-kvm-vmm` does.
#[derive(Debug)]
pub struct RecordWriter<'t> {
    raw: RawRecordWriter,
    _table: PhantomData<&'t Table<'t>>,
}

impl Drop for RecordWriter<'_> {
    /// Hands this writer's seq on to the table's next split. A writer
    /// dropped mid-update leaves the record odd (busy) until the next
    /// split's writer begins its first update.
    fn drop(&mut self) {
        // SAFETY: `'t` borrows the table, so it is alive and in place
        // (invariant 1); the writer is being dropped, so never used again.
        unsafe { self.raw.hand_back() };
    }
}

impl<'t> RecordWriter<'t> {
    /// Gives up the borrow of the table: the raw writer's `unsafe` methods
    /// then need the caller's promises instead. The writer stays handed
    /// out until [`RawRecordWriter::release`].
    pub fn into_raw(self) -> RawRecordWriter {
        let me = core::mem::ManuallyDrop::new(self);
        // SAFETY: `me` is never used or dropped again, so reading its
        // field out moves the raw writer rather than duplicating it.
        unsafe { core::ptr::read(&me.raw) }
    }

    /// The record's index.
    #[inline]
    pub fn index(&self) -> u32 {
        self.raw.index()
    }

    /// Number of counter words in the record (`(size - 8) / 8`).
    #[inline]
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether the record has no counter words.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Starts an update: seq goes odd. `None` while the table is disabled
    /// (see [`Control::set_enabled`]), unless an update is already open
    /// (begun and not finished), which is handed back so it can be
    /// finished. The update must be finished with
    /// [`Update::finish`]; an update that is dropped instead (a panic, or
    /// a fault-injection test) leaves seq odd, so readers report the record
    /// busy rather than accept a half-written record; the next update
    /// finishes it.
    #[inline]
    pub fn begin(&mut self) -> Option<Update<'_>> {
        // SAFETY: `'t` borrows the table, so it is alive, in place and its
        // frames valid (invariants 1, 2); `&mut self` and the writer being
        // handed out once give invariant 3.
        unsafe { self.raw.begin() }
    }

    /// Runs `f` inside an update; returns whether it ran (false while the
    /// table is disabled).
    #[inline]
    pub fn update(&mut self, f: impl FnOnce(&mut Update<'_>)) -> bool {
        // SAFETY: as in `begin`.
        unsafe { self.raw.update(f) }
    }

    /// One whole update that stores `values` into counter words `first,
    /// first + 1, ...` (as [`Update::set_words`] does: a value with the top
    /// bit set stores the inactive marker; words beyond the record are not
    /// stored). Returns how many words were stored, or `None`, storing
    /// nothing, while the table is disabled. The fast path for a writer
    /// that publishes a run of counters at once: the seq stays in a
    /// register from the odd store to the even one
    /// (`vstats_abi::seqlock::SeqWriter::write`), one bounds check covers
    /// the run, and the inactive marker is chosen without a branch.
    /// An update begun with [`RecordWriter::begin`] and not finished is
    /// finished by it.
    #[inline]
    pub fn update_words(&mut self, first: usize, values: &[u64]) -> Option<usize> {
        // SAFETY: as in `begin`.
        unsafe { self.raw.update_words(first, values) }
    }

    /// The seq value this writer last stored (its private copy).
    #[inline]
    pub fn seq(&self) -> u32 {
        self.raw.seq()
    }
}

/// An update in progress on one record.
#[derive(Debug)]
#[must_use = "an update that is not finished leaves the record busy"]
pub struct Update<'w> {
    seq: &'w AtomicU32,
    words: &'w [AtomicU64],
    sw: &'w mut SeqWriter,
}

impl Update<'_> {
    /// Stores counter word `i` (word 0 is at byte 8 of the record). A value
    /// with the top bit set (an overflow) stores the inactive marker
    /// instead, never a wrapped value. Returns false, storing nothing, when
    /// `i` is beyond the record.
    #[inline]
    pub fn set(&mut self, i: usize, v: u64) -> bool {
        match self.words.get(i) {
            Some(word) => {
                let v = if v & INACTIVE_BIT != 0 { INACTIVE } else { v };
                word.store(v, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Stores `values` into counter words `first, first + 1, ...`, each as
    /// [`Update::set`] would (a value with the top bit set stores the
    /// inactive marker), with one bounds check for the whole run. Words
    /// that would lie beyond the record are not stored; returns how many
    /// were.
    #[inline]
    pub fn set_words(&mut self, first: usize, values: &[u64]) -> usize {
        store_run(self.words.get(first..).unwrap_or_default(), values)
    }

    /// Stores counter word `i` given by its byte offset in the record (a
    /// descriptor's `offset`).
    #[inline]
    pub fn set_at(&mut self, offset: u32, v: u64) -> bool {
        match offset.checked_sub(RECORD_PREFIX) {
            Some(rel) if rel % 8 == 0 => self.set((rel / 8) as usize, v),
            _ => false,
        }
    }

    /// Stores a vCPU record's current state and when it was entered
    /// (`runstate` and `runstate_entry_time`, r3), beside the four times
    /// (which are accrued up to `entry_ns`, P11). `entry_ns` is in the
    /// table's clock ([`crate::monotonic_ns`] for a file producer). Returns
    /// false, storing nothing, when the record has no room for them (not
    /// an r3 vCPU record).
    #[inline]
    pub fn set_runstate(&mut self, state: RunState, entry_ns: u64) -> bool {
        let at = |off: u32| ((off - RECORD_PREFIX) / 8) as usize;
        if self.words.len() <= at(vcpu_off::ENTRY) {
            return false;
        }
        self.set(at(vcpu_off::RUNSTATE), state.0) && self.set(at(vcpu_off::ENTRY), entry_ns)
    }

    /// Marks counter word `i` inactive. Returns false when `i` is beyond the
    /// record.
    #[inline]
    pub fn set_inactive(&mut self, i: usize) -> bool {
        match self.words.get(i) {
            Some(word) => {
                word.store(INACTIVE, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Marks every counter of the record inactive: the slot reads as
    /// unused (a vCPU that went away).
    pub fn set_unused(&mut self) {
        for w in self.words {
            w.store(INACTIVE, Ordering::Relaxed);
        }
    }

    /// Ends the update: seq goes even and the new values are visible.
    #[inline]
    pub fn finish(self) {
        self.sw.end(self.seq);
    }
}

// What `store_run`'s branch-free marker relies on.
const _: () = assert!(INACTIVE == u64::MAX && INACTIVE_BIT == 1 << 63);

/// Stores `values` into `run` (as many as both hold), a value with the top
/// bit set as the inactive marker; returns how many were stored.
#[inline]
fn store_run(run: &[AtomicU64], values: &[u64]) -> usize {
    for (word, &v) in run.iter().zip(values) {
        // All ones (`INACTIVE`) when the top bit is set, else `v`: the
        // arithmetic shift spreads the top bit, no branch.
        let v = v | ((v as i64 >> 63) as u64);
        word.store(v, Ordering::Relaxed);
    }
    run.len().min(values.len())
}
