//! The `extern "C"` functions of `include/vstats_reader.h`: a C reader of
//! vstats tables over [`vstats_consumer`], which does the mapping, the
//! copy-then-validate of the head and the seq protocol. Nothing here
//! validates a table or reads a record by itself.
//!
//! # Design
//!
//! A `struct vstats_reader` is a [`VstatsReader`] on the heap, allocated by
//! `vstats_reader_open*` and freed by `vstats_reader_close`: the consumer's
//! [`Table`] and a marker. Nothing is allocated after that.
//!
//! A `struct vstats_snapshot` is a buffer the caller allocates with
//! `vstats_snapshot_size()` bytes and prepares with `vstats_snapshot_init()`
//! for one reader. Its bytes are, in order (every part 8-aligned):
//!
//! 1. a [`SnapHead`]: a marker, the reader's address, the buffer's length,
//!    the record and word counts, the instant the last take read;
//! 2. one [`RecState`] (status and seq) per record;
//! 3. the counter words `[8, extent)` of every record (the standard
//!    record and an r3 table's producer-specific area), record `i`'s at
//!    `[i * per, (i + 1) * per)`.
//!
//! `vstats_snapshot_take()` copies each record with
//! [`MemView::read_seq_words`] (the consumer's seq reader) into part 3, then
//! reads "now" in the table's clock (design 4.3: after the copy). The
//! functions that read a snapshot take only the snapshot; they reach the
//! table's counters through the reader's address kept in the head, which is
//! why a reader must outlive its snapshots.
//!
//! Every function checks its pointers (NULL, alignment, the marker of the
//! object) and runs its body under [`catch_unwind`], so no panic crosses
//! the C boundary (none is expected: the body is panic-free by design;
//! a caught one is `VSTATS_ENOTRECOVERABLE`).
#![allow(unsafe_code)]

use core::{
    ffi::{c_char, c_int, c_void},
    mem::{align_of, size_of},
};
use std::{
    boxed::Box,
    ffi::{CStr, OsStr},
    os::unix::ffi::OsStrExt,
    panic::{catch_unwind, AssertUnwindSafe},
    path::Path,
};

use vstats_abi::{
    desc::{Descriptor, NAME_LEN},
    record::{is_active, vcpu_off, INACTIVE, RECORD_PREFIX},
    seqlock::Busy,
};
use vstats_consumer::{
    mem::MemView,
    runstate::{Clock, HostMonotonic, Runstate, TimeBase, RUNSTATE_COUNT},
    Counter, Error, Source, Table,
};

use crate::error::{
    VSTATS_E2BIG, VSTATS_EBADMSG, VSTATS_EBUSY, VSTATS_EFAULT, VSTATS_EINVAL, VSTATS_EIO,
    VSTATS_ENODATA, VSTATS_ENOENT, VSTATS_ENOSPC, VSTATS_ENOTRECOVERABLE, VSTATS_ERANGE,
    VSTATS_ESTALE, VSTATS_OK,
};

/// `VSTATS_RECORD_OK`: the record was read consistently and is in use.
pub const VSTATS_RECORD_OK: c_int = 0;
/// `VSTATS_RECORD_UNUSED`: read consistently, every counter word inactive
/// (an unused slot, R16).
pub const VSTATS_RECORD_UNUSED: c_int = 1;
/// `VSTATS_RECORD_BUSY`: mid-update at every attempt; no values.
pub const VSTATS_RECORD_BUSY: c_int = 2;
/// `VSTATS_RECORD_NOT_READ`: not read (no take yet, or the table's file
/// was truncated during the take); no values.
pub const VSTATS_RECORD_NOT_READ: c_int = 3;
/// `VSTATS_RUNSTATE_UNKNOWN`: what `vstats_snapshot_runstate` stores as
/// the state when the record has none (r1/r2, inactive) or one that does
/// not fit 32 bits.
pub const VSTATS_RUNSTATE_UNKNOWN: u32 = u32::MAX;

/// Marks a live [`VstatsReader`] (`"vstatRDR"`).
const READER_MARKER: u64 = u64::from_le_bytes(*b"vstatRDR");
/// Marks an initialised snapshot buffer (`"vstatSNP"`).
const SNAP_MARKER: u64 = u64::from_le_bytes(*b"vstatSNP");

/// `struct vstats_reader`: one mapped, validated table. Opaque to C.
#[derive(Debug)]
pub struct VstatsReader {
    marker: u64,
    table: Table,
}

/// `struct vstats_snapshot`: an opaque, caller-allocated buffer of
/// `vstats_snapshot_size()` bytes (see the module docs for its layout).
#[repr(C)]
#[derive(Debug)]
pub struct VstatsSnapshot {
    _opaque: [u64; 0],
}

/// The head of a snapshot buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct SnapHead {
    marker: u64,
    /// The reader the buffer was prepared for (its address).
    reader: u64,
    /// Bytes of the buffer as given to `vstats_snapshot_init`.
    len: u64,
    nr_records: u32,
    /// Counter words per record.
    per: u32,
    /// "Now" in the table's clock as read by the last take, after its
    /// copy; [`INACTIVE`] when unreadable or never taken.
    now_ns: u64,
}

/// One record's state in a snapshot buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct RecState {
    /// One of the `VSTATS_RECORD_*` codes, except UNUSED (derived).
    status: u32,
    /// The seq the copy is consistent with, or the last one seen.
    seq: u32,
}

const _: () = {
    assert!(size_of::<SnapHead>() == 40 && align_of::<SnapHead>() == 8);
    assert!(size_of::<RecState>() == 8 && align_of::<RecState>() <= 8);
    // `struct xen_stats_desc` is `Descriptor`.
    assert!(size_of::<Descriptor>() == 64 && align_of::<Descriptor>() == 4);
};

/// Runs `f`, turning a panic into `VSTATS_ENOTRECOVERABLE`.
fn guarded(f: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(VSTATS_ENOTRECOVERABLE)
}

/// Runs `f`, turning a panic into `fallback`.
fn guarded_or<T: Copy>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

fn aligned<T>(p: *const T) -> bool {
    !p.is_null() && (p as usize) % align_of::<T>() == 0
}

/// The code of a consumer error.
fn from_consumer(e: &Error) -> c_int {
    match e {
        Error::Invalid { .. } => VSTATS_EBADMSG,
        Error::HeadTooLarge { .. }
        | Error::TooManyRecords { .. }
        | Error::TooManyCounterWords { .. } => VSTATS_E2BIG,
        Error::PermissionDenied { io, .. } | Error::Io { io, .. } => {
            io.raw_os_error().map_or(VSTATS_EIO, |n| -n)
        }
        Error::NotRegularFile { .. } => VSTATS_EINVAL,
        Error::BadPointer { .. } => VSTATS_EFAULT,
        Error::Busy { .. } => VSTATS_EBUSY,
        Error::NoSuchRecord { .. } => VSTATS_ERANGE,
        // Truncated and anything else the consumer may report.
        _ => VSTATS_EIO,
    }
}

/// The reader behind `r`.
///
/// # Safety
///
/// The caller promises that `r` is NULL or a reader returned by
/// `vstats_reader_open*` and not closed, not freed during `'a`.
unsafe fn reader<'a>(r: *const VstatsReader) -> Result<&'a VstatsReader, c_int> {
    if !aligned(r) {
        return Err(VSTATS_EFAULT);
    }
    // SAFETY: non-null, aligned, and a live reader (the caller's promise);
    // readers are only read after open.
    let r = unsafe { &*r };
    if r.marker != READER_MARKER {
        return Err(VSTATS_EFAULT);
    }
    Ok(r)
}

/// Hands a new reader to C through `out`.
///
/// # Safety
///
/// `out` is non-null, aligned and writable (checked by the callers).
unsafe fn hand_out(table: Result<Table, Error>, out: *mut *mut VstatsReader) -> c_int {
    match table {
        Ok(table) => {
            let r = Box::into_raw(Box::new(VstatsReader {
                marker: READER_MARKER,
                table,
            }));
            // SAFETY: the callers checked `out`; writing a pointer.
            unsafe { out.write(r) };
            VSTATS_OK
        }
        Err(e) => from_consumer(&e),
    }
}

/// `int vstats_reader_open(const char *path, struct vstats_reader **out)`:
/// maps the table in the file at `path` read-only, copies and validates its
/// head, and hands out a reader in `*out`.
///
/// # Errors
///
/// `VSTATS_EFAULT` (`path` or `out` NULL, `out` misaligned),
/// `VSTATS_EBADMSG` (not a valid table), `VSTATS_E2BIG` (beyond the
/// reader's limits), `VSTATS_EINVAL` (not a regular file), `VSTATS_EIO`
/// (truncated while read), or the negated `errno` of a failed `open` or
/// `mmap` (`VSTATS_ENOENT` for a missing file, `-EACCES`).
///
/// # Safety
///
/// The caller promises that `path` is NULL or a NUL-terminated string and
/// `out` NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn vstats_reader_open(
    path: *const c_char,
    out: *mut *mut VstatsReader,
) -> c_int {
    guarded(|| {
        if path.is_null() || !aligned(out) {
            return VSTATS_EFAULT;
        }
        // SAFETY: non-null and NUL-terminated (the caller's promise).
        let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
        let path = Path::new(OsStr::from_bytes(bytes));
        // SAFETY: `out` checked above.
        unsafe { hand_out(Table::open(path), out) }
    })
}

/// `int vstats_reader_open_memory(const void *base, size_t len, struct
/// vstats_reader **out)`: a reader of a table in memory the caller mapped
/// (e.g. with `xenforeignmemory_map_resource()`).
///
/// # Errors
///
/// `VSTATS_EFAULT` (`base` NULL or not 8-aligned, `out` NULL or
/// misaligned), and as [`vstats_reader_open`].
///
/// # Safety
///
/// The caller promises that `out` is NULL or valid for writing a pointer,
/// and that `[base, base + len)` stays mapped and readable until
/// `vstats_reader_close()` and is never written by this process with
/// non-atomic stores (its producer may write it at any time).
#[no_mangle]
pub unsafe extern "C" fn vstats_reader_open_memory(
    base: *const c_void,
    len: usize,
    out: *mut *mut VstatsReader,
) -> c_int {
    guarded(|| {
        if !aligned(out) || base.is_null() || (base as usize) % 8 != 0 {
            return VSTATS_EFAULT;
        }
        // SAFETY: the memory stays mapped and readable until the reader is
        // closed, which is what 'static stands for here, and this process
        // does not write it non-atomically (the caller's promises).
        let view = match unsafe { MemView::from_raw_parts(base.cast(), len, None) } {
            Ok(v) => v,
            Err(e) => return from_consumer(&e),
        };
        // SAFETY: `out` checked above.
        unsafe { hand_out(Table::from_view(view), out) }
    })
}

/// `void vstats_reader_close(struct vstats_reader *r)`: unmaps the table
/// (if the reader mapped it) and frees the reader. NULL is ignored, as is
/// a pointer that is not a reader.
///
/// # Safety
///
/// The caller promises that `r` is NULL or a reader not closed yet, used
/// by no other thread, and that no snapshot prepared for it is used
/// afterwards.
#[no_mangle]
pub unsafe extern "C" fn vstats_reader_close(r: *mut VstatsReader) {
    guarded(|| {
        // SAFETY: the caller's promise.
        if unsafe { reader(r) }.is_err() {
            return VSTATS_EFAULT;
        }
        // SAFETY: `r` came from `Box::into_raw` in `hand_out` and is closed
        // once (the caller's promise). The marker is cleared first so that
        // a use after close is more likely refused than obeyed.
        let mut b = unsafe { Box::from_raw(r) };
        b.marker = 0;
        drop(b);
        VSTATS_OK
    });
}

/// A field of a reader, `fallback` for a pointer that is not one.
///
/// # Safety
///
/// As [`reader`].
unsafe fn field<T: Copy>(r: *const VstatsReader, fallback: T, f: impl FnOnce(&Table) -> T) -> T {
    guarded_or(fallback, || {
        // SAFETY: the caller's promise.
        match unsafe { reader(r) } {
            Ok(r) => f(&r.table),
            Err(_) => fallback,
        }
    })
}

/// `uint32_t vstats_reader_kind(r)`: the table's magic
/// (`XEN_VCPU_STATS_MAGIC`, or a domain table's magic); 0 for NULL.
///
/// # Safety
///
/// The caller promises that `r` is NULL or a live reader.
#[no_mangle]
pub unsafe extern "C" fn vstats_reader_kind(r: *const VstatsReader) -> u32 {
    // SAFETY: the caller's promise.
    unsafe { field(r, 0, |t| t.info().header.magic) }
}

/// `uint32_t vstats_reader_nr_records(r)`: record slots; 0 for NULL.
///
/// # Safety
///
/// The caller promises that `r` is NULL or a live reader.
#[no_mangle]
pub unsafe extern "C" fn vstats_reader_nr_records(r: *const VstatsReader) -> u32 {
    // SAFETY: the caller's promise.
    unsafe { field(r, 0, Table::nr_records) }
}

/// `uint64_t vstats_reader_generation(r)`: the producer's generation (0
/// for a table without the r2 header, and for NULL).
///
/// # Safety
///
/// The caller promises that `r` is NULL or a live reader.
#[no_mangle]
pub unsafe extern "C" fn vstats_reader_generation(r: *const VstatsReader) -> u64 {
    // SAFETY: the caller's promise.
    unsafe { field(r, 0, Table::generation) }
}

/// `uint32_t vstats_reader_clock(r)`: the table's time base,
/// `XEN_STATS_CLOCK_*` (0, none, for r1/r2 tables and for NULL).
///
/// # Safety
///
/// The caller promises that `r` is NULL or a live reader.
#[no_mangle]
pub unsafe extern "C" fn vstats_reader_clock(r: *const VstatsReader) -> u32 {
    // SAFETY: the caller's promise.
    unsafe { field(r, 0, table_clock) }
}

/// The table's `clock` word (0 when its header has none).
fn table_clock(t: &Table) -> u32 {
    t.info().clock
}

/// `uint32_t vstats_reader_counter_count(r)`: the counters of each record
/// (standard fields the table has, then producer-specific ones); 0 for
/// NULL.
///
/// # Safety
///
/// The caller promises that `r` is NULL or a live reader.
#[no_mangle]
pub unsafe extern "C" fn vstats_reader_counter_count(r: *const VstatsReader) -> u32 {
    // SAFETY: the caller's promise.
    unsafe { field(r, 0, counter_count) }
}

fn counter_count(t: &Table) -> u32 {
    u32::try_from(t.counters().len()).unwrap_or(u32::MAX)
}

/// `int vstats_reader_counter_info(r, idx, struct xen_stats_desc *out)`:
/// counter `idx` described as a descriptor (name, record offset, words,
/// kind, unit, base, exponent, bucket size).
///
/// # Errors
///
/// `VSTATS_EFAULT` (not a reader, `out` NULL or misaligned),
/// `VSTATS_ERANGE` (`idx >= vstats_reader_counter_count(r)`).
///
/// # Safety
///
/// The caller promises that `r` is NULL or a live reader and `out` NULL or
/// valid for writing a `struct xen_stats_desc`.
#[no_mangle]
pub unsafe extern "C" fn vstats_reader_counter_info(
    r: *const VstatsReader,
    idx: u32,
    out: *mut Descriptor,
) -> c_int {
    guarded(|| {
        // SAFETY: the caller's promise.
        let r = match unsafe { reader(r) } {
            Ok(r) => r,
            Err(e) => return e,
        };
        if !aligned(out) {
            return VSTATS_EFAULT;
        }
        let Some(c) = r.table.counters().get(idx as usize) else {
            return VSTATS_ERANGE;
        };
        let mut name = [0u8; NAME_LEN];
        let bytes = c.name().as_bytes();
        let n = bytes.len().min(NAME_LEN - 1);
        name[..n].copy_from_slice(&bytes[..n]);
        let d = Descriptor {
            name,
            offset: c.offset(),
            count: c.count(),
            kind: c.kind(),
            unit: c.unit(),
            base: c.base(),
            exponent: c.exponent(),
            bucket_size: c.bucket_size(),
        };
        // SAFETY: non-null, aligned and writable (the caller's promise).
        unsafe { out.write(d) };
        VSTATS_OK
    })
}

/// `int vstats_reader_counter_index(r, const char *name, uint32_t *idx)`:
/// the index of the counter called `name`.
///
/// # Errors
///
/// `VSTATS_EFAULT` (not a reader, `name` NULL, `idx` NULL or misaligned),
/// `VSTATS_ENOENT` (no such counter).
///
/// # Safety
///
/// The caller promises that `r` is NULL or a live reader, `name` NULL or
/// a NUL-terminated string, `idx` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn vstats_reader_counter_index(
    r: *const VstatsReader,
    name: *const c_char,
    idx: *mut u32,
) -> c_int {
    guarded(|| {
        // SAFETY: the caller's promise.
        let r = match unsafe { reader(r) } {
            Ok(r) => r,
            Err(e) => return e,
        };
        if name.is_null() || !aligned(idx) {
            return VSTATS_EFAULT;
        }
        // SAFETY: non-null and NUL-terminated (the caller's promise).
        let name = unsafe { CStr::from_ptr(name) }.to_bytes();
        let found = r
            .table
            .counters()
            .iter()
            .position(|c| c.name().as_bytes() == name);
        match found.and_then(|i| u32::try_from(i).ok()) {
            Some(i) => {
                // SAFETY: non-null, aligned and writable (the caller's
                // promise).
                unsafe { idx.write(i) };
                VSTATS_OK
            }
            None => VSTATS_ENOENT,
        }
    })
}

/// Writes `text` NUL-terminated into `buf` (`len` bytes), truncated to
/// fit; nothing when `buf` is NULL or `len` is 0.
///
/// # Safety
///
/// `buf` is NULL or valid for writing `len` bytes.
unsafe fn write_c_str(buf: *mut c_char, len: usize, text: &str) {
    if buf.is_null() || len == 0 {
        return;
    }
    let n = text.len().min(len - 1);
    // SAFETY: `buf` is valid for `len > n` bytes (the caller's promise);
    // `text` does not overlap it (it is a static string).
    unsafe {
        core::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
    }
    // SAFETY: n < len, so the byte is inside `buf`.
    let end = unsafe { buf.add(n) };
    // SAFETY: inside `buf`, writable (the caller's promise).
    unsafe { end.write(0) };
}

/// `int vstats_reader_validate(r, char *rule, size_t rule_len)`: whether
/// the table is still the one validated at open. Re-reads the header from
/// the mapping (and, for a file, whether the file was replaced); when it
/// changed, copies the head again and validates it with the ABI crate.
/// The rule broken, if any, is written to `rule` (e.g. `"R7"`,
/// NUL-terminated, truncated to `rule_len`); `""` otherwise. `rule` may
/// be NULL.
///
/// # Errors
///
/// `VSTATS_EFAULT` (not a reader), `VSTATS_ESTALE` (the producer retired
/// the table, replaced its file, or changed its head into another valid
/// table: open it again), `VSTATS_EBADMSG` (the head now breaks the rule
/// written to `rule`), `VSTATS_EIO` (the file was truncated).
///
/// # Safety
///
/// The caller promises that `r` is NULL or a live reader and `rule` NULL
/// or valid for writing `rule_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn vstats_reader_validate(
    r: *const VstatsReader,
    rule: *mut c_char,
    rule_len: usize,
) -> c_int {
    guarded(|| {
        // SAFETY: the caller's promise.
        unsafe { write_c_str(rule, rule_len, "") };
        // SAFETY: the caller's promise.
        let t = match unsafe { reader(r) } {
            Ok(r) => &r.table,
            Err(e) => return e,
        };
        let (code, broken) = revalidate(t);
        if let Some(id) = broken {
            // SAFETY: the caller's promise.
            unsafe { write_c_str(rule, rule_len, id) };
        }
        code
    })
}

/// What [`vstats_reader_validate`] answers: the code and the broken rule.
fn revalidate(t: &Table) -> (c_int, Option<&'static str>) {
    if t.is_lost() {
        return (VSTATS_EIO, None);
    }
    if t.file_replaced().unwrap_or(false) {
        return (VSTATS_ESTALE, None);
    }
    if !t.is_stale() {
        return (VSTATS_OK, None);
    }
    let view = t.view();
    if view.load::<u32>(0) == Some(0) {
        // Retired (P15), or being re-initialised in place.
        return (VSTATS_ESTALE, None);
    }
    let Some(head) = view.copy_prefix(t.head().len()) else {
        return (VSTATS_EIO, None);
    };
    match vstats_abi::validate::validate(&head, view.len() as u64) {
        Ok(_) => (VSTATS_ESTALE, None),
        Err(e) => (VSTATS_EBADMSG, Some(e.rule().id())),
    }
}

/// Bytes of a snapshot buffer for `t`: head, record states, words.
fn snapshot_bytes(t: &Table) -> Option<usize> {
    let nr = u64::from(t.nr_records());
    let per = u64::from(words_per_record(t));
    let states = nr.checked_mul(size_of::<RecState>() as u64)?;
    let words = nr.checked_mul(per)?.checked_mul(8)?;
    let total = (size_of::<SnapHead>() as u64)
        .checked_add(states)?
        .checked_add(words)?;
    usize::try_from(total).ok()
}

/// Counter words per record, `(extent - 8) / 8`: the standard record and,
/// in an r3 table, the producer-specific area after it.
fn words_per_record(t: &Table) -> u32 {
    t.info().record_extent().saturating_sub(RECORD_PREFIX) / 8
}

/// `size_t vstats_snapshot_size(r)`: the bytes a snapshot buffer for `r`
/// needs (8-aligned memory, e.g. from `malloc`); 0 for NULL.
///
/// # Safety
///
/// The caller promises that `r` is NULL or a live reader.
#[no_mangle]
pub unsafe extern "C" fn vstats_snapshot_size(r: *const VstatsReader) -> usize {
    // SAFETY: the caller's promise.
    unsafe { field(r, 0, |t| snapshot_bytes(t).unwrap_or(0)) }
}

/// A snapshot buffer's parts, borrowed for one call.
struct Snap<'a> {
    head: &'a mut SnapHead,
    states: &'a mut [RecState],
    words: &'a mut [u64],
}

/// Splits the buffer at `s` (`len` bytes, 8-aligned) for `nr` records of
/// `per` words; `None` when it is too small.
///
/// # Safety
///
/// `s` is non-null, 8-aligned and valid for reading and writing `len`
/// bytes, used by nobody else during `'a`.
unsafe fn split<'a>(s: *mut VstatsSnapshot, len: u64, nr: u32, per: u32) -> Option<Snap<'a>> {
    let nr = nr as usize;
    let n_words = nr.checked_mul(per as usize)?;
    let states_off = size_of::<SnapHead>();
    let words_off = states_off.checked_add(nr.checked_mul(size_of::<RecState>())?)?;
    let end = words_off.checked_add(n_words.checked_mul(8)?)?;
    if end as u64 > len {
        return None;
    }
    let base = s.cast::<u8>();
    // The three parts are disjoint and inside the caller's buffer
    // (`words_off + 8 * n_words = end <= len`), each 8-aligned (the buffer
    // is; the head is 40 bytes, a state 8), and any bit pattern is a valid
    // `SnapHead`, `RecState` or `u64`. The buffer is used by nobody else
    // during 'a (the caller's promise).
    let states = base.wrapping_add(states_off).cast::<RecState>();
    let words = base.wrapping_add(words_off).cast::<u64>();
    // SAFETY: the head, as above.
    let head = unsafe { &mut *base.cast::<SnapHead>() };
    // SAFETY: `nr` states from `states_off`, as above.
    let states = unsafe { core::slice::from_raw_parts_mut(states, nr) };
    // SAFETY: `n_words` words from `words_off`, as above.
    let words = unsafe { core::slice::from_raw_parts_mut(words, n_words) };
    Some(Snap {
        head,
        states,
        words,
    })
}

/// The prepared snapshot buffer at `s` and its reader.
///
/// # Safety
///
/// `s` is NULL or a buffer prepared by `vstats_snapshot_init` whose reader
/// is live, used by nobody else during `'a`.
unsafe fn snap<'a>(s: *const VstatsSnapshot) -> Result<(Snap<'a>, &'a VstatsReader), c_int> {
    if s.is_null() || (s as usize) % 8 != 0 {
        return Err(VSTATS_EFAULT);
    }
    // SAFETY: non-null, 8-aligned and at least a head long (a prepared
    // buffer, the caller's promise); any bits are a valid `SnapHead`.
    let head = unsafe { s.cast::<SnapHead>().read() };
    if head.marker != SNAP_MARKER {
        return Err(VSTATS_EFAULT);
    }
    // SAFETY: the buffer names its live reader (the caller's promise).
    let r = unsafe { reader(head.reader as usize as *const VstatsReader) }?;
    if head.nr_records != r.table.nr_records() || head.per != words_per_record(&r.table) {
        return Err(VSTATS_EINVAL);
    }
    // SAFETY: a prepared buffer of `head.len` bytes, ours during 'a (the
    // caller's promise).
    let parts = unsafe { split(s.cast_mut(), head.len, head.nr_records, head.per) };
    parts.map(|p| (p, r)).ok_or(VSTATS_EINVAL)
}

/// `int vstats_snapshot_init(struct vstats_snapshot *s, size_t len, const
/// struct vstats_reader *r)`: prepares the `len`-byte buffer `s` for
/// snapshots of `r`; every record reads as not read until the first take.
///
/// # Errors
///
/// `VSTATS_EFAULT` (not a reader, `s` NULL or not 8-aligned),
/// `VSTATS_ENOSPC` (`len < vstats_snapshot_size(r)`; nothing written).
///
/// # Safety
///
/// The caller promises that `r` is NULL or a live reader that outlives
/// the snapshot's use, and `s` NULL or valid for writing `len` bytes,
/// used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn vstats_snapshot_init(
    s: *mut VstatsSnapshot,
    len: usize,
    r: *const VstatsReader,
) -> c_int {
    guarded(|| {
        // SAFETY: the caller's promise.
        let rd = match unsafe { reader(r) } {
            Ok(r) => r,
            Err(e) => return e,
        };
        if s.is_null() || (s as usize) % 8 != 0 {
            return VSTATS_EFAULT;
        }
        let t = &rd.table;
        let (nr, per) = (t.nr_records(), words_per_record(t));
        // SAFETY: `s` is non-null, 8-aligned, valid for `len` bytes and
        // ours during the call (the caller's promise).
        let Some(p) = (unsafe { split(s, len as u64, nr, per) }) else {
            return VSTATS_ENOSPC;
        };
        *p.head = SnapHead {
            marker: SNAP_MARKER,
            reader: r as usize as u64,
            len: len as u64,
            nr_records: nr,
            per,
            now_ns: INACTIVE,
        };
        p.states.fill(RecState {
            status: VSTATS_RECORD_NOT_READ as u32,
            seq: 0,
        });
        p.words.fill(INACTIVE);
        VSTATS_OK
    })
}

/// `int vstats_snapshot_take(r, s, uint64_t now_ns)`: copies every record
/// of `r`'s table into `s`, each consistently (the seq protocol, with the
/// reader's bounded retries), then takes "now" for the up-to-date runstate
/// times: `now_ns` when non-zero (the caller's reading of the table's
/// clock; read before this call, it is older than the copy, and an entry
/// time after it counts as "no time since", R26), else the table's clock
/// read here after the copy (`XEN_STATS_CLOCK_HOST_MONOTONIC`:
/// `CLOCK_MONOTONIC`; other clocks are not read here, so their times are
/// not extrapolated unless the caller passes `now_ns`).
///
/// Returns the number of records found busy (0: all consistent), or a
/// negative code.
///
/// # Errors
///
/// `VSTATS_EFAULT` (not a reader, not a buffer prepared by
/// `vstats_snapshot_init`), `VSTATS_EINVAL` (`s` was prepared for another
/// reader), `VSTATS_EIO` (the table's file was truncated: the records not
/// read read as such).
///
/// # Safety
///
/// The caller promises that `r` is NULL or a live reader, and `s` NULL or
/// a buffer prepared by `vstats_snapshot_init` (or at least 40 writable
/// bytes), used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn vstats_snapshot_take(
    r: *const VstatsReader,
    s: *mut VstatsSnapshot,
    now_ns: u64,
) -> c_int {
    guarded(|| {
        // SAFETY: the caller's promise.
        let rd = match unsafe { reader(r) } {
            Ok(r) => r,
            Err(e) => return e,
        };
        // SAFETY: the caller's promise.
        let (p, owner) = match unsafe { snap(s) } {
            Ok(v) => v,
            Err(e) => return e,
        };
        if !core::ptr::eq(owner, rd) {
            return VSTATS_EINVAL;
        }
        take(&rd.table, p, now_ns)
    })
}

/// The body of [`vstats_snapshot_take`].
fn take(t: &Table, p: Snap<'_>, now_ns: u64) -> c_int {
    let info = t.info();
    let view = t.view();
    let attempts = t.max_attempts();
    let per = p.head.per as usize;
    let mut busy: c_int = 0;
    let mut lost = t.is_lost();
    for i in 0..p.head.nr_records {
        let k = i as usize;
        let words = p
            .words
            .get_mut(k.saturating_mul(per)..k.saturating_add(1).saturating_mul(per))
            .unwrap_or_default();
        let read = if lost {
            None
        } else {
            info.record_offset(i).and_then(|off| {
                let counters = off.checked_add(u64::from(RECORD_PREFIX))?;
                view.read_seq_words(off, counters, words, attempts)
            })
        };
        let state = match read {
            Some(Ok(seq)) => RecState {
                status: VSTATS_RECORD_OK as u32,
                seq,
            },
            Some(Err(Busy { seq, .. })) => {
                busy = busy.saturating_add(1);
                RecState {
                    status: VSTATS_RECORD_BUSY as u32,
                    seq,
                }
            }
            None => {
                lost = true;
                RecState {
                    status: VSTATS_RECORD_NOT_READ as u32,
                    seq: 0,
                }
            }
        };
        if let Some(st) = p.states.get_mut(k) {
            *st = state;
        }
    }
    // "Now" after the copy (design 4.3).
    p.head.now_ns = if now_ns != 0 {
        now_ns
    } else {
        clock_now(t).unwrap_or(INACTIVE)
    };
    if lost {
        VSTATS_EIO
    } else {
        busy
    }
}

/// "Now" in `t`'s clock, when this library can read it: the host's
/// `CLOCK_MONOTONIC` for [`TimeBase::HostMonotonic`]; Xen system time is
/// not read here (the consumer's Xen clock is behind its `xen` feature, a
/// dependency the C library does not take): the caller passes it.
fn clock_now(t: &Table) -> Option<u64> {
    match TimeBase::from_clock(t.info().clock) {
        TimeBase::HostMonotonic => HostMonotonic.now_ns(),
        _ => None,
    }
}

/// Record `rec` of a prepared snapshot: its status and words.
fn record<'a>(p: &'a Snap<'_>, rec: u32) -> Result<(c_int, &'a [u64]), c_int> {
    let st = p.states.get(rec as usize).ok_or(VSTATS_ERANGE)?;
    let per = p.head.per as usize;
    let first = (rec as usize).checked_mul(per).ok_or(VSTATS_ERANGE)?;
    let words = p
        .words
        .get(first..first.saturating_add(per))
        .ok_or(VSTATS_ERANGE)?;
    let status = st.status as c_int;
    if status == VSTATS_RECORD_OK && words.iter().all(|&w| !is_active(w)) {
        return Ok((VSTATS_RECORD_UNUSED, words));
    }
    Ok((status, words))
}

/// `int vstats_snapshot_record_status(s, rec)`: `VSTATS_RECORD_OK`,
/// `_UNUSED`, `_BUSY` or `_NOT_READ` for record `rec` of the last take.
///
/// # Errors
///
/// `VSTATS_EFAULT` (not a prepared buffer), `VSTATS_ERANGE` (`rec` is not
/// a record slot).
///
/// # Safety
///
/// The caller promises that `s` is NULL or a buffer prepared by
/// `vstats_snapshot_init` whose reader is live, not written by another
/// thread during the call.
#[no_mangle]
pub unsafe extern "C" fn vstats_snapshot_record_status(
    s: *const VstatsSnapshot,
    rec: u32,
) -> c_int {
    guarded(|| {
        // SAFETY: the caller's promise.
        let (p, _) = match unsafe { snap(s) } {
            Ok(v) => v,
            Err(e) => return e,
        };
        match record(&p, rec) {
            Ok((status, _)) => status,
            Err(e) => e,
        }
    })
}

/// The words of `c` in a consistent record, `None` when they are absent:
/// a standard field past the table's standard size, or words outside the
/// record. The same rule as the consumer's `RecordView`.
fn span<'a>(t: &Table, words: &'a [u64], c: &Counter) -> Option<&'a [u64]> {
    if c.source() == Source::Standard && !t.info().has_std_field(c.offset()) {
        return None;
    }
    let first = (c.offset().checked_sub(RECORD_PREFIX)? / 8) as usize;
    words.get(first..first.checked_add(c.count() as usize)?)
}

/// `int vstats_snapshot_value(s, rec, idx, bucket, uint64_t *value)`: the
/// value of counter `idx` (bucket `bucket` of a histogram, 0 for a scalar)
/// in record `rec` of the last take.
///
/// # Errors
///
/// `VSTATS_EFAULT` (not a prepared buffer, `value` NULL or misaligned),
/// `VSTATS_ERANGE` (`rec`, `idx` or `bucket` out of range),
/// `VSTATS_EBUSY` (the record was busy), `VSTATS_ENODATA` (absent: the
/// record was not read, the counter is inactive or not in this table's
/// records, or a histogram has an inactive bucket (R27)).
///
/// # Safety
///
/// As [`vstats_snapshot_record_status`], and `value` NULL or valid for
/// writing.
#[no_mangle]
pub unsafe extern "C" fn vstats_snapshot_value(
    s: *const VstatsSnapshot,
    rec: u32,
    idx: u32,
    bucket: u32,
    value: *mut u64,
) -> c_int {
    guarded(|| {
        // SAFETY: the caller's promise.
        let (p, r) = match unsafe { snap(s) } {
            Ok(v) => v,
            Err(e) => return e,
        };
        if !aligned(value) {
            return VSTATS_EFAULT;
        }
        let (status, words) = match record(&p, rec) {
            Ok(v) => v,
            Err(e) => return e,
        };
        let Some(c) = r.table.counters().get(idx as usize) else {
            return VSTATS_ERANGE;
        };
        if bucket >= c.count() {
            return VSTATS_ERANGE;
        }
        match status {
            VSTATS_RECORD_BUSY => return VSTATS_EBUSY,
            VSTATS_RECORD_NOT_READ => return VSTATS_ENODATA,
            _ => {}
        }
        let Some(span) = span(&r.table, words, c) else {
            return VSTATS_ENODATA;
        };
        // A histogram is absent as a whole when any bucket is (R27).
        if !span.iter().all(|&w| is_active(w)) {
            return VSTATS_ENODATA;
        }
        let Some(&v) = span.get(bucket as usize) else {
            return VSTATS_ENODATA;
        };
        // SAFETY: non-null, aligned and writable (the caller's promise).
        unsafe { value.write(v) };
        VSTATS_OK
    })
}

/// `int vstats_snapshot_runstate(s, rec, uint64_t times_ns[4], uint32_t
/// *state, int *extrapolated)`: vCPU `rec`'s runstate times as of the last
/// take's "now" (R26, design 4.3): the four times (`RUNSTATE_running` to
/// `_offline`; `XEN_STATS_INACTIVE` for an absent one), the open interval
/// since `runstate_entry_time` added to the current state's when the
/// table's clock is named and "now" was read (`*extrapolated` 1), else as
/// of the last state change (`*extrapolated` 0). `*state` is the current
/// state, `VSTATS_RUNSTATE_UNKNOWN` when the record has none (r1/r2) or it
/// is inactive.
///
/// # Errors
///
/// `VSTATS_EFAULT` (not a prepared buffer, an output NULL or misaligned),
/// `VSTATS_EINVAL` (not a vCPU table), `VSTATS_ERANGE` (`rec` is not a
/// slot), `VSTATS_EBUSY` (the record was busy), `VSTATS_ENODATA` (the
/// record was not read).
///
/// # Safety
///
/// As [`vstats_snapshot_record_status`], and `times_ns` NULL or valid for
/// writing 4 values, `state` and `extrapolated` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn vstats_snapshot_runstate(
    s: *const VstatsSnapshot,
    rec: u32,
    times_ns: *mut u64,
    state: *mut u32,
    extrapolated: *mut c_int,
) -> c_int {
    guarded(|| {
        // SAFETY: the caller's promise.
        let (p, r) = match unsafe { snap(s) } {
            Ok(v) => v,
            Err(e) => return e,
        };
        if !aligned(times_ns) || !aligned(state) || !aligned(extrapolated) {
            return VSTATS_EFAULT;
        }
        if !r.table.is_vcpu() {
            return VSTATS_EINVAL;
        }
        let (status, words) = match record(&p, rec) {
            Ok(v) => v,
            Err(e) => return e,
        };
        match status {
            VSTATS_RECORD_BUSY => return VSTATS_EBUSY,
            VSTATS_RECORD_NOT_READ => return VSTATS_ENODATA,
            _ => {}
        }
        let rs = runstate_of(&r.table, words, p.head.now_ns);
        let times = rs.times_ns.map(|t| t.unwrap_or(INACTIVE));
        let st = rs
            .state
            .and_then(|s| u32::try_from(s).ok())
            .unwrap_or(VSTATS_RUNSTATE_UNKNOWN);
        // SAFETY: non-null, aligned and valid for writing 4 values (the
        // caller's promise).
        let out = unsafe { core::slice::from_raw_parts_mut(times_ns, RUNSTATE_COUNT) };
        out.copy_from_slice(&times);
        // SAFETY: non-null, aligned and writable (the caller's promise).
        unsafe { state.write(st) };
        // SAFETY: as above.
        unsafe { extrapolated.write(c_int::from(rs.extrapolated)) };
        VSTATS_OK
    })
}

/// R26 over a consistent vCPU record's words, at `now_ns` ([`INACTIVE`]:
/// unreadable): the consumer's computation, fed with the standard fields
/// the table's record has.
fn runstate_of(t: &Table, words: &[u64], now_ns: u64) -> Runstate {
    let info = t.info();
    let word = |off: u32| -> u64 {
        if !info.has_std_field(off) {
            return INACTIVE;
        }
        let i = ((off - RECORD_PREFIX) / 8) as usize;
        words.get(i).copied().unwrap_or(INACTIVE)
    };
    let times = [
        vcpu_off::RUNNING,
        vcpu_off::RUNNABLE,
        vcpu_off::BLOCKED,
        vcpu_off::OFFLINE,
    ]
    .map(word);
    if !info.has_std_field(vcpu_off::RUNSTATE) || !info.has_std_field(vcpu_off::ENTRY) {
        return Runstate::from_times(times);
    }
    let now = is_active(now_ns).then_some(now_ns);
    Runstate::from_words(
        times,
        word(vcpu_off::RUNSTATE),
        word(vcpu_off::ENTRY),
        TimeBase::from_clock(info.clock),
        now,
    )
}
