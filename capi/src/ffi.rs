//! The `extern "C"` functions of `include/vstats_producer.h` and the opaque
//! state they keep in caller-provided storage. With `reader.rs`, the only
//! modules with `unsafe`.
//!
//! # Design
//!
//! The library allocates nothing. `vstats_table_init_*` builds a producer
//! [`Table`] and moves it into the caller's `struct vstats_table`
//! ([`TableState`]), then splits it, once, into its [`Control`] and one
//! [`RawRecordWriter`] per record, which it moves into the caller's array
//! of `struct vstats_writer` ([`Slot`]s). Splitting once at init is what lets
//! `vstats_writer_get` hand out any record in any order without ever
//! creating a second `&mut Table`: it only flips the slot's `taken` flag,
//! atomically, so a record's writer is handed out at most once even under
//! concurrent calls.
//!
//! The table's frames are the caller's memory, so the table is stored as
//! `Table<'static>`: the frames, the page list, `*t` and the writer array
//! stay valid and in place while the table is used, which is a promise
//! the C caller makes (see the `# Safety` sections). The writers do not
//! borrow the table: they are the producer's [`RawRecordWriter`]s, whose
//! `unsafe` methods take that same promise, so no `'static` borrow of the
//! table is made up.
//!
//! Invariants, established by a successful init and relied on by every
//! other function (the caller promises not to break them):
//!
//! 1. A [`TableState`] whose `marker` is [`TABLE_MARKER`] is fully
//!    initialised: `control` points at the `Control` inside its own
//!    `table`, `writers` at `nr_records` initialised [`Slot`]s.
//! 2. After init, nothing creates a reference covering
//!    `TableState::table` (it is exclusively borrowed by the one `split`
//!    done at init): fields are read through raw pointers, one at a time.
//! 3. A [`Slot`] whose `marker` is [`SLOT_MARKER`] is initialised. Its
//!    `taken` flag is only accessed atomically; its `in_update` and
//!    `writer` fields only by the holder of the writer, one thread at a
//!    time, after `taken` was set by `vstats_writer_get`.
#![allow(unsafe_code)]

use core::{
    ffi::{c_char, c_int, c_void},
    mem::{align_of, size_of},
    ptr::NonNull,
    sync::atomic::{AtomicBool, Ordering},
};

use vstats_abi::{
    desc::Descriptor,
    layout::{Layout, LayoutParams},
    record::{vcpu_off, RunState, DOMAIN_STD_DESCRIPTORS, VCPU_STD_DESCRIPTORS},
};
use vstats_producer::{Control, Frames, RawRecordWriter, Table, TableSpec, Update};

#[cfg(feature = "std")]
use crate::error::from_publish;
use crate::error::{
    from_abi, from_producer, message, VSTATS_EAGAIN, VSTATS_EBUSY, VSTATS_EFAULT, VSTATS_EINVAL,
    VSTATS_ENOSPC, VSTATS_EPROTO, VSTATS_ERANGE, VSTATS_OK,
};

/// A pointer to field `$f` of the `$ty` at `$p`: safe pointer arithmetic
/// (wrapping, provenance kept) that creates no reference; using the
/// result is what needs `unsafe`.
macro_rules! field {
    ($p:expr, $ty:ty, $f:ident) => {
        $p.cast::<u8>()
            .wrapping_add(core::mem::offset_of!($ty, $f))
            .cast()
    };
}

/// `struct vstats_layout`: a layout request and its result. Plain data.
///
/// The request is the first six fields, plus `clock`, `xstats_size` and
/// `xdesc_count` for [`vstats_layout_r3`]; everything else is computed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VstatsLayout {
    /// Record slots.
    pub nr_records: u32,
    /// Bytes of a record, seq included: the standard record and the
    /// producer-specific area after it.
    pub size: u32,
    /// Bytes of the standard record (the header's `size`).
    pub abi_size: u32,
    /// Number of descriptors of the producer-specific area (r3's
    /// `xdesc_count`).
    pub desc_count: u32,
    /// Page size.
    pub page_size: u32,
    /// The producer's cacheline.
    pub cacheline: u32,
    /// Computed: where record 0 starts.
    pub offset: u32,
    /// Computed: distance between records.
    pub stride: u32,
    /// Computed: where the descriptors start, 0 when there are none (r3's
    /// `xdesc_offset`).
    pub desc_offset: u32,
    /// Zero.
    pub _pad: u32,
    /// Computed: pages the table occupies.
    pub frames: u64,
    /// Computed: `frames * page_size`.
    pub mapping_len: u64,
    /// Computed: the header's `ext_size`, 72 (r3).
    pub ext_size: u32,
    /// r3 request: the table's clock (`XEN_STATS_CLOCK_*`);
    /// [`vstats_layout`] sets `XEN_STATS_CLOCK_HOST_MONOTONIC`.
    pub clock: u32,
    /// r3 request: bytes of the producer-specific area (`size - abi_size`).
    pub xstats_size: u32,
    /// r3 request: number of r3 descriptors (`desc_count`).
    pub xdesc_count: u32,
    /// r3, computed: record-relative start of the producer-specific area.
    pub xstats_offset: u32,
    /// r3, computed: where the r3 descriptors start, 0 when none.
    pub xdesc_offset: u32,
}
// size: 80 bytes

const _: () = {
    assert!(size_of::<VstatsLayout>() == 80);
    assert!(core::mem::offset_of!(VstatsLayout, offset) == 24);
    assert!(core::mem::offset_of!(VstatsLayout, frames) == 40);
    assert!(core::mem::offset_of!(VstatsLayout, mapping_len) == 48);
    assert!(core::mem::offset_of!(VstatsLayout, ext_size) == 56);
    assert!(core::mem::offset_of!(VstatsLayout, xdesc_offset) == 76);
};

impl VstatsLayout {
    /// The r3 layout a `struct vstats_layout` stands for: the standard
    /// record is `abi_size` bytes (the header's `size`), `[abi_size,
    /// size)` is the producer-specific area, `desc_count` r3 descriptors
    /// describe it, and the clock is the host's `CLOCK_MONOTONIC`.
    fn params(&self) -> LayoutParams {
        LayoutParams {
            nr_records: self.nr_records,
            record_size: self.abi_size,
            abi_size: self.abi_size,
            desc_count: 0,
            page_size: self.page_size,
            cacheline: self.cacheline,
            ext_size: self.ext_size,
            clock: self.clock,
            xstats_size: self.xstats_size,
            xdesc_count: self.xdesc_count,
        }
    }

    fn new(l: &Layout, cacheline: u32) -> VstatsLayout {
        VstatsLayout {
            nr_records: l.nr_records,
            size: l.record_extent(),
            abi_size: l.size,
            desc_count: l.xdesc_count,
            page_size: l.page_size,
            cacheline,
            offset: l.offset,
            stride: l.stride,
            desc_offset: l.xdesc_offset,
            _pad: 0,
            frames: l.frames,
            mapping_len: l.mapping_len(),
            ext_size: l.ext_size,
            clock: l.clock,
            xstats_size: l.xstats_size,
            xdesc_count: l.xdesc_count,
            xstats_offset: l.xstats_offset,
            xdesc_offset: l.xdesc_offset,
        }
    }
}

/// The r3 layout parameters of `vstats_layout()`'s arguments (see
/// [`VstatsLayout::params`]); a `size` below `abi_size` gives an area
/// size `Layout::compute` refuses.
fn r3_params(
    nr_records: u32,
    size: u32,
    abi_size: u32,
    desc_count: u32,
    page_size: u32,
    cacheline: u32,
) -> LayoutParams {
    LayoutParams {
        nr_records,
        record_size: abi_size,
        abi_size,
        desc_count: 0,
        page_size,
        cacheline,
        ext_size: vstats_abi::header::EXT_HEADER_SIZE_R3,
        clock: vstats_abi::header::CLOCK_HOST_MONOTONIC,
        xstats_size: size.checked_sub(abi_size).unwrap_or(u32::MAX),
        xdesc_count: desc_count,
    }
}

/// Computes `params` into `*out`.
///
/// # Safety
///
/// The caller promises that `out` is NULL or valid for writing a
/// `struct vstats_layout`.
unsafe fn compute_into(params: &LayoutParams, out: *mut VstatsLayout) -> c_int {
    if out.is_null() {
        return VSTATS_EFAULT;
    }
    match Layout::compute(params) {
        Ok(l) => {
            // SAFETY: `out` is non-null and valid for a write (the caller's
            // promise); unaligned writes are allowed.
            unsafe { out.write_unaligned(VstatsLayout::new(&l, params.cacheline)) };
            VSTATS_OK
        }
        Err(e) => from_abi(e),
    }
}

/// `struct vstats_table`: caller-allocated storage for the state of a
/// published table (the producer's `Table`, its enable switch and where
/// its writers are). Opaque; 256 bytes, 8-aligned.
#[repr(C)]
#[derive(Debug)]
pub struct VstatsTable {
    opaque: [u64; 32],
}

impl VstatsTable {
    /// Zeroed storage (which every function but init refuses).
    pub const fn new() -> VstatsTable {
        VstatsTable { opaque: [0; 32] }
    }
}

impl Default for VstatsTable {
    fn default() -> VstatsTable {
        VstatsTable::new()
    }
}

/// `struct vstats_writer`: caller-allocated storage for one record's
/// writer (the producer's `RecordWriter` and its hand-out flag). Opaque;
/// one 64-byte cacheline so that two writers never share one.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct VstatsWriter {
    opaque: [u64; 8],
}

impl VstatsWriter {
    /// Zeroed storage.
    pub const fn new() -> VstatsWriter {
        VstatsWriter { opaque: [0; 8] }
    }
}

impl Default for VstatsWriter {
    fn default() -> VstatsWriter {
        VstatsWriter::new()
    }
}

/// Marks an initialised [`TableState`] (`"vstatTBL"`).
const TABLE_MARKER: u64 = u64::from_le_bytes(*b"vstatTBL");
/// Marks an initialised [`Slot`] (`"vstatWRT"`).
const SLOT_MARKER: u64 = u64::from_le_bytes(*b"vstatWRT");

/// What lives in a `struct vstats_table` (invariants 1 and 2).
#[repr(C)]
struct TableState {
    marker: u64,
    control: *const Control,
    writers: *mut VstatsWriter,
    nr_records: u32,
    table: Table<'static>,
}

/// What lives in a `struct vstats_writer` (invariant 3).
#[repr(C)]
struct Slot {
    marker: u64,
    taken: AtomicBool,
    in_update: bool,
    writer: RawRecordWriter,
}

const _: () = {
    assert!(size_of::<TableState>() <= size_of::<VstatsTable>());
    assert!(align_of::<TableState>() <= align_of::<VstatsTable>());
    assert!(size_of::<Slot>() <= size_of::<VstatsWriter>());
    assert!(align_of::<Slot>() <= align_of::<VstatsWriter>());
    assert!(size_of::<VstatsWriter>() == 64);
    assert!(size_of::<VstatsTable>() == 256);
    // `struct vstats_desc` is `Descriptor`; a page pointer is `NonNull<u8>`.
    assert!(size_of::<Descriptor>() == 64 && align_of::<Descriptor>() == 4);
    assert!(size_of::<NonNull<u8>>() == size_of::<*mut c_void>());
    assert!(align_of::<NonNull<u8>>() == align_of::<*mut c_void>());
};

const fn std_descs<const N: usize>(s: &[Descriptor]) -> [Descriptor; N] {
    assert!(s.len() == N);
    let mut a = [s[0]; N];
    let mut i = 0;
    while i < N {
        a[i] = s[i];
        i += 1;
    }
    a
}

/// `vstats_vcpu_std_descs`: the standard vCPU descriptors of this revision.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static vstats_vcpu_std_descs: [Descriptor; 4] = std_descs(VCPU_STD_DESCRIPTORS);

/// `vstats_domain_std_descs`: the standard domain descriptors of this
/// revision.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static vstats_domain_std_descs: [Descriptor; 3] = std_descs(DOMAIN_STD_DESCRIPTORS);

fn aligned<T>(p: *const T, align: usize) -> bool {
    !p.is_null() && (p as usize) % align == 0
}

/// `const char *vstats_strerror(int err)`: a static, NUL-terminated
/// description of any error code.
#[no_mangle]
pub extern "C" fn vstats_strerror(err: c_int) -> *const c_char {
    message(err).as_ptr()
}

/// `int vstats_layout(...)`: computes a table's layout into `*out`.
///
/// # Errors
///
/// `VSTATS_EFAULT` when `out` is NULL, `VSTATS_EINVAL` for a parameter out
/// of range, `VSTATS_EOVERFLOW` when the table would not fit 32-bit
/// offsets.
///
/// # Safety
///
/// The caller promises that `out` is NULL or valid for writing a
/// `struct vstats_layout`.
#[no_mangle]
pub unsafe extern "C" fn vstats_layout(
    nr_records: u32,
    record_size: u32,
    abi_size: u32,
    desc_count: u32,
    page_size: u32,
    cacheline: u32,
    out: *mut VstatsLayout,
) -> c_int {
    let params = r3_params(
        nr_records,
        record_size,
        abi_size,
        desc_count,
        page_size,
        cacheline,
    );
    // SAFETY: the caller's promise.
    unsafe { compute_into(&params, out) }
}

/// `int vstats_layout_r3(...)`: computes the layout of an r3 table
/// (design 3.9): the standard record of `size` bytes, a producer-specific
/// area of `xstats_size` bytes after it, `xdesc_count` r3 descriptors,
/// the time base `clock`.
///
/// # Errors
///
/// As [`vstats_layout`].
///
/// # Safety
///
/// As [`vstats_layout`].
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn vstats_layout_r3(
    nr_records: u32,
    size: u32,
    xstats_size: u32,
    xdesc_count: u32,
    clock: u32,
    page_size: u32,
    cacheline: u32,
    out: *mut VstatsLayout,
) -> c_int {
    let params = LayoutParams {
        nr_records,
        record_size: size,
        abi_size: size,
        desc_count: 0,
        page_size,
        cacheline,
        ext_size: vstats_abi::header::EXT_HEADER_SIZE_R3,
        clock,
        xstats_size,
        xdesc_count,
    };
    // SAFETY: the caller's promise.
    unsafe { compute_into(&params, out) }
}

/// The arguments both init functions share.
struct InitArgs {
    t: *mut VstatsTable,
    magic: u32,
    l: *const VstatsLayout,
    descs: *const Descriptor,
    generation: u64,
    writers: *mut VstatsWriter,
    nr_writers: usize,
}

/// Checks what does not depend on the frames and returns the layout and
/// the descriptors. Writes nothing.
///
/// # Safety
///
/// The caller promises that `a.l` is NULL or readable and that `a.descs`
/// is NULL or valid for reading the layout's `desc_count` descriptors for
/// `'d`, not written meanwhile.
unsafe fn check_args<'d>(a: &InitArgs) -> Result<(Layout, &'d [Descriptor]), c_int> {
    if !aligned(a.t, align_of::<TableState>()) || a.l.is_null() {
        return Err(VSTATS_EFAULT);
    }
    // SAFETY: `l` is non-null and readable (the caller's promise); every
    // bit pattern is a valid `VstatsLayout` (integers only).
    let given = unsafe { a.l.read_unaligned() };
    let layout = Layout::compute(&given.params()).map_err(|_| VSTATS_EINVAL)?;
    if VstatsLayout::new(&layout, given.cacheline) != given {
        return Err(VSTATS_EINVAL);
    }
    // The library publishes r3 tables only: both layout calls give r3
    // layouts, so an r2 one was not made by them.
    if !layout.is_r3() {
        return Err(VSTATS_EINVAL);
    }
    if layout.nr_records > 0 && !aligned(a.writers, align_of::<Slot>()) {
        return Err(VSTATS_EFAULT);
    }
    if (a.nr_writers as u64) < u64::from(layout.nr_records) {
        return Err(VSTATS_ENOSPC);
    }
    let descs: &[Descriptor] = if layout.xdesc_count == 0 {
        &[]
    } else {
        if !aligned(a.descs, align_of::<Descriptor>()) {
            return Err(VSTATS_EFAULT);
        }
        // SAFETY: `descs` is non-null, aligned, and valid for reading
        // `desc_count` descriptors for 'd (the caller's promise; they
        // precede record 0 in the table's head, so `Layout::compute` kept
        // their bytes below 4 GiB); every bit pattern is a valid
        // `Descriptor` (integers only).
        unsafe { core::slice::from_raw_parts(a.descs, layout.xdesc_count as usize) }
    };
    Ok((layout, descs))
}

/// Initialises the table in `frames` and the state in `*a.t` and
/// `a.writers`.
///
/// # Safety
///
/// The caller promises what `vstats_table_init_contiguous` requires of
/// its caller, for `a` and `frames`; `check_args` accepted `a`.
unsafe fn init(
    a: &InitArgs,
    layout: Layout,
    descs: &[Descriptor],
    frames: Frames<'static>,
) -> c_int {
    let spec = TableSpec {
        magic: a.magic,
        layout,
        descriptors: descs,
        generation: a.generation,
    };
    match Table::init(frames, &spec) {
        // SAFETY: the caller's promises, forwarded.
        Ok(table) => unsafe { install(a, layout, table) },
        Err(e) => from_producer(e),
    }
}

/// Moves an initialised table into `*a.t` and its writers into
/// `a.writers`.
///
/// # Safety
///
/// As [`init`], for the table's frames.
unsafe fn install(a: &InitArgs, layout: Layout, table: Table<'static>) -> c_int {
    let st = a.t.cast::<TableState>();
    // SAFETY: `st` is non-null and aligned (checked by `check_args`) and
    // the caller's `struct vstats_table` is large enough (const
    // assertion) and writable, and no writer of an earlier table in it is
    // used any more (the caller's promise). Writing the whole state
    // replaces whatever was there without reading it.
    unsafe {
        st.write(TableState {
            marker: 0,
            control: core::ptr::null(),
            writers: a.writers,
            nr_records: layout.nr_records,
            table,
        })
    };
    let table: *mut Table<'static> = field!(st, TableState, table);
    // SAFETY: `table` is the field of `st`, just initialised and ours; this
    // borrow ends with this function, and is the only reference to `table`
    // ever created (invariant 2). The raw writers made from it below keep
    // pointers, not the borrow.
    let table: &mut Table<'static> = unsafe { &mut *table };
    let (control, writers) = table.split();
    let control: *const Control = control;
    let mut n: u32 = 0;
    for writer in writers {
        if n >= layout.nr_records {
            break;
        }
        // SAFETY: n < nr_records <= nr_writers (checked by `check_args`),
        // so the element is inside the caller's array.
        let slot = unsafe { a.writers.add(n as usize) }.cast::<Slot>();
        // SAFETY: `slot` is in the caller's writable array, aligned (the
        // array is, and elements are 64 bytes apart) and large enough
        // (const assertion); it is not in use (the caller's promise).
        unsafe {
            slot.write(Slot {
                marker: SLOT_MARKER,
                taken: AtomicBool::new(false),
                in_update: false,
                writer: writer.into_raw(),
            })
        };
        n += 1;
    }
    if n != layout.nr_records {
        // Unreachable: the producer hands out one writer per record of a
        // layout its frames hold. The table stays unusable.
        return VSTATS_EINVAL;
    }
    let control_field: *mut *const Control = field!(st, TableState, control);
    // SAFETY: a field of `st`, which is initialised, aligned and ours (see
    // above); writing it creates no reference to `table`.
    unsafe { control_field.write(control) };
    let marker: *mut u64 = field!(st, TableState, marker);
    // SAFETY: as above. The marker goes last: the state is now complete
    // (invariant 1).
    unsafe { marker.write(TABLE_MARKER) };
    VSTATS_OK
}

/// `int vstats_table_init_contiguous(...)`: lays out and publishes a table
/// in `len` bytes at `base` and prepares its writers.
///
/// # Errors
///
/// The `VSTATS_E*` codes listed in `include/vstats_producer.h`; nothing is written
/// then.
///
/// # Safety
///
/// The caller promises that:
/// - `t` is NULL or valid for writing a `struct vstats_table`, and `l`
///   NULL or readable;
/// - `descs` is NULL or valid for reading `l->desc_count` descriptors;
/// - `writers` is NULL or valid for writing `nr_writers` writers;
/// - `[base, base + len)` is valid for reads and writes;
/// - from this call until neither `*t` nor any of its writers is used any
///   more: that memory stays valid, nothing but this library writes it
///   (consumers read it with atomic or volatile loads), and `*t` and
///   `writers` stay at their addresses and are accessed only through this
///   API;
/// - no writer of an earlier table initialised in `*t` is used any more.
#[no_mangle]
pub unsafe extern "C" fn vstats_table_init_contiguous(
    t: *mut VstatsTable,
    base: *mut c_void,
    len: usize,
    magic: u32,
    l: *const VstatsLayout,
    descs: *const Descriptor,
    generation: u64,
    writers: *mut VstatsWriter,
    nr_writers: usize,
) -> c_int {
    let a = InitArgs {
        t,
        magic,
        l,
        descs,
        generation,
        writers,
        nr_writers,
    };
    // SAFETY: `l` and `descs` as the caller promises; the descriptors are
    // only used during this call.
    let (layout, descs) = match unsafe { check_args(&a) } {
        Ok(v) => v,
        Err(e) => return e,
    };
    if !aligned(base, 8) {
        return VSTATS_EFAULT;
    }
    let Some(base) = NonNull::new(base.cast::<u8>()) else {
        return VSTATS_EFAULT;
    };
    // SAFETY: `[base, base + len)` stays valid for reads and writes while
    // the table is used, which is what 'static stands for here; `base` is
    // 8-aligned (checked); nothing else writes it and readers use atomic
    // loads (the caller's promise): invariants 1-4 of `Frames`.
    let frames = unsafe { Frames::contiguous(base, len) };
    // SAFETY: the caller's promises, forwarded.
    unsafe { init(&a, layout, descs, frames) }
}

/// `int vstats_table_init_pages(...)`: as
/// [`vstats_table_init_contiguous`], over `nr_pages` frames of
/// `l->page_size` bytes that need not be virtually contiguous.
///
/// # Errors
///
/// The `VSTATS_E*` codes listed in `include/vstats_producer.h`; nothing is written
/// then.
///
/// # Safety
///
/// The caller promises what [`vstats_table_init_contiguous`] requires,
/// for every page of `pages` (each valid for `l->page_size` bytes) instead
/// of one region, and that `pages` is NULL or valid for reading
/// `nr_pages` pointers and stays valid and unchanged for as long as the
/// table is used.
#[no_mangle]
pub unsafe extern "C" fn vstats_table_init_pages(
    t: *mut VstatsTable,
    pages: *const *mut c_void,
    nr_pages: usize,
    magic: u32,
    l: *const VstatsLayout,
    descs: *const Descriptor,
    generation: u64,
    writers: *mut VstatsWriter,
    nr_writers: usize,
) -> c_int {
    let a = InitArgs {
        t,
        magic,
        l,
        descs,
        generation,
        writers,
        nr_writers,
    };
    // SAFETY: `l` and `descs` as the caller promises; the descriptors are
    // only used during this call.
    let (layout, descs) = match unsafe { check_args(&a) } {
        Ok(v) => v,
        Err(e) => return e,
    };
    if !aligned(pages, align_of::<*mut c_void>()) {
        return VSTATS_EFAULT;
    }
    if nr_pages
        .checked_mul(size_of::<*mut c_void>())
        .is_none_or(|b| b > isize::MAX as usize)
    {
        return VSTATS_EINVAL;
    }
    for i in 0..nr_pages {
        // SAFETY: i < nr_pages and `pages` is valid for reading `nr_pages`
        // pointers (the caller's promise; the byte size fits isize).
        let p = unsafe { pages.add(i) };
        // SAFETY: `p` is in the array, aligned and readable.
        if !aligned(unsafe { p.read() }, 8) {
            return VSTATS_EFAULT;
        }
    }
    // SAFETY: `pages` is aligned, valid for `nr_pages` reads and unchanged
    // while the table is used (the caller's promise), its byte size fits
    // isize, and every entry is non-null and 8-aligned (checked above), so each is a
    // valid `NonNull<u8>`, which has the layout of `*mut c_void`.
    let pages: &'static [NonNull<u8>] =
        unsafe { core::slice::from_raw_parts(pages.cast::<NonNull<u8>>(), nr_pages) };
    // SAFETY: each page stays valid for `page_size` bytes of reads and
    // writes while the table is used, which is what 'static stands for;
    // every page is 8-aligned (checked above); nothing else writes the pages and
    // readers use atomic loads (the caller's promise): invariants 1-4 of
    // `Frames`.
    let frames = unsafe { Frames::pages(pages, layout.page_size as usize) };
    // SAFETY: the caller's promises, forwarded.
    unsafe { init(&a, layout, descs, frames) }
}

/// What the functions after init read from a [`TableState`].
struct StateView<'a> {
    control: &'a Control,
    writers: *mut VstatsWriter,
    nr_records: u32,
}

/// Reads the state of an initialised table, without creating a reference
/// to its `table` field (invariant 2).
///
/// # Safety
///
/// The caller promises that `t` is NULL or points to a `struct
/// vstats_table` that is zero-filled or was initialised by
/// `vstats_table_init_*` and is still valid (its promises kept).
unsafe fn state<'a>(t: *mut VstatsTable) -> Result<StateView<'a>, c_int> {
    if !aligned(t, align_of::<TableState>()) {
        return Err(VSTATS_EFAULT);
    }
    let st = t.cast::<TableState>();
    let marker: *const u64 = field!(st, TableState, marker);
    // SAFETY: a field of `st`, which is aligned and points to readable
    // memory (the caller's promise); any bits are a valid u64.
    let marker = unsafe { marker.read() };
    if marker != TABLE_MARKER {
        return Err(VSTATS_EINVAL);
    }
    let control: *const *const Control = field!(st, TableState, control);
    // SAFETY: the marker says the state is initialised (invariant 1); the
    // field pointer is in bounds and aligned.
    let control = unsafe { control.read() };
    // SAFETY: initialised, as above: `control` points into the table,
    // valid while it is used ('a, the caller's promise).
    let control: &'a Control = unsafe { &*control };
    let writers: *const *mut VstatsWriter = field!(st, TableState, writers);
    // SAFETY: initialised, as above.
    let writers = unsafe { writers.read() };
    let nr_records: *const u32 = field!(st, TableState, nr_records);
    // SAFETY: initialised, as above.
    let nr_records = unsafe { nr_records.read() };
    Ok(StateView {
        control,
        writers,
        nr_records,
    })
}

/// `int vstats_table_set_enabled(struct vstats_table *t, bool on)`: turns
/// updating on or off.
///
/// # Errors
///
/// `VSTATS_EFAULT` for a NULL or misaligned `t`, `VSTATS_EINVAL` when it
/// was not initialised.
///
/// # Safety
///
/// The caller promises that `t` is NULL, zero-filled, or initialised by
/// `vstats_table_init_*` with its promises kept.
#[no_mangle]
pub unsafe extern "C" fn vstats_table_set_enabled(t: *mut VstatsTable, on: bool) -> c_int {
    // SAFETY: the caller's promise.
    match unsafe { state(t) } {
        Ok(s) => {
            s.control.set_enabled(on);
            VSTATS_OK
        }
        Err(e) => e,
    }
}

/// `int vstats_writer_get(t, index, out)`: hands out the writer of record
/// `index`, at most once.
///
/// # Errors
///
/// `VSTATS_EFAULT`, `VSTATS_EINVAL` (not initialised), `VSTATS_ERANGE`
/// (`index >= nr_records`), `VSTATS_EBUSY` (already handed out).
///
/// # Safety
///
/// The caller promises what [`vstats_table_set_enabled`] requires, and
/// that `out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn vstats_writer_get(
    t: *mut VstatsTable,
    index: u32,
    out: *mut *mut VstatsWriter,
) -> c_int {
    // SAFETY: the caller's promise.
    let s = match unsafe { state(t) } {
        Ok(s) => s,
        Err(e) => return e,
    };
    if out.is_null() {
        return VSTATS_EFAULT;
    }
    if index >= s.nr_records {
        return VSTATS_ERANGE;
    }
    // SAFETY: index < nr_records: inside the writer array (invariant 1).
    let w = unsafe { s.writers.add(index as usize) };
    let slot = w.cast::<Slot>();
    // SAFETY: the slot is initialised (invariant 1) and its `taken` flag
    // is only ever accessed atomically, so a shared reference to it alone
    // aliases nothing the writer's holder uses (invariant 3).
    let taken: &AtomicBool = unsafe { &*field!(slot, Slot, taken) };
    if taken.swap(true, Ordering::AcqRel) {
        return VSTATS_EBUSY;
    }
    // SAFETY: `out` is non-null and writable (the caller's promise);
    // unaligned writes are allowed.
    unsafe { out.write_unaligned(w) };
    VSTATS_OK
}

/// The holder's view of a writer: its update flag and its record writer.
struct Held<'a> {
    in_update: &'a mut bool,
    writer: &'a mut RawRecordWriter,
}

/// Checks that `w` is a writer handed out by `vstats_writer_get` and
/// borrows its holder's fields.
///
/// # Safety
///
/// The caller promises that `w` is NULL or points to a `struct
/// vstats_writer` that is readable, and, if it is a writer handed out by
/// `vstats_writer_get`, that its table is still valid and no other thread
/// uses `w` during `'a`.
unsafe fn held<'a>(w: *mut VstatsWriter) -> Result<Held<'a>, c_int> {
    if !aligned(w, align_of::<Slot>()) {
        return Err(VSTATS_EFAULT);
    }
    let slot = w.cast::<Slot>();
    let marker: *const u64 = field!(slot, Slot, marker);
    // SAFETY: a field of `slot`, which is aligned and readable (the
    // caller's promise); any bits are a valid u64.
    if unsafe { marker.read() } != SLOT_MARKER {
        return Err(VSTATS_EFAULT);
    }
    // SAFETY: the marker says the slot is initialised (invariant 3);
    // `taken` is only accessed atomically.
    let taken: &AtomicBool = unsafe { &*field!(slot, Slot, taken) };
    if !taken.load(Ordering::Acquire) {
        return Err(VSTATS_EFAULT);
    }
    // SAFETY: initialised; only the holder, which is this thread for 'a
    // (the caller's promise), touches `in_update` (invariant 3).
    let in_update: &mut bool = unsafe { &mut *field!(slot, Slot, in_update) };
    // SAFETY: as above, for the disjoint field `writer`, whose references
    // into the table stay valid while the table is used.
    let writer: &mut RawRecordWriter = unsafe { &mut *field!(slot, Slot, writer) };
    Ok(Held { in_update, writer })
}

/// `int vstats_writer_begin(struct vstats_writer *w)`: starts an update
/// (seq goes odd).
///
/// # Errors
///
/// `VSTATS_EFAULT` (not a writer), `VSTATS_EPROTO` (already in an update),
/// `VSTATS_EAGAIN` (table disabled; nothing started).
///
/// # Safety
///
/// The caller promises that `w` is NULL or a writer returned by
/// `vstats_writer_get` whose table is still valid, used by no other thread
/// during the call.
#[no_mangle]
pub unsafe extern "C" fn vstats_writer_begin(w: *mut VstatsWriter) -> c_int {
    // SAFETY: the caller's promise.
    let h = match unsafe { held(w) } {
        Ok(h) => h,
        Err(e) => return e,
    };
    if *h.in_update {
        return VSTATS_EPROTO;
    }
    // The update is left open (not finished) on purpose: the producer's
    // writer keeps it open in its private seq until `vstats_writer_end`.
    // SAFETY: the writer's table is initialised, in place and its frames
    // valid (the caller's promise: invariants 1 to 3 of the raw writer),
    // and this thread alone uses the writer (`held`).
    match unsafe { h.writer.begin() } {
        Some(_open) => {
            *h.in_update = true;
            VSTATS_OK
        }
        None => VSTATS_EAGAIN,
    }
}

/// Runs `f` on the open update of `w`.
///
/// # Safety
///
/// As [`vstats_writer_begin`].
unsafe fn in_update(w: *mut VstatsWriter, f: impl FnOnce(&mut Update<'_>) -> c_int) -> c_int {
    // SAFETY: the caller's promise.
    let h = match unsafe { held(w) } {
        Ok(h) => h,
        Err(e) => return e,
    };
    if !*h.in_update {
        return VSTATS_EPROTO;
    }
    // Inside an update the producer's `begin` stores nothing (its seq is
    // already odd) and returns the open update again, even if the table
    // was disabled meanwhile; `None` cannot happen here.
    // SAFETY: as in `vstats_writer_begin`.
    match unsafe { h.writer.begin() } {
        Some(mut u) => f(&mut u),
        None => VSTATS_EPROTO,
    }
}

/// `int vstats_writer_set(w, word, value)`: stores counter word `word`.
///
/// # Errors
///
/// `VSTATS_EFAULT`, `VSTATS_EPROTO` (outside an update), `VSTATS_ERANGE`
/// (beyond the record).
///
/// # Safety
///
/// As [`vstats_writer_begin`].
#[no_mangle]
pub unsafe extern "C" fn vstats_writer_set(w: *mut VstatsWriter, word: u32, value: u64) -> c_int {
    // SAFETY: the caller's promise.
    unsafe {
        in_update(w, |u| {
            if u.set(word as usize, value) {
                VSTATS_OK
            } else {
                VSTATS_ERANGE
            }
        })
    }
}

/// `int vstats_writer_set_inactive(w, word)`: marks counter word `word`
/// inactive.
///
/// # Errors
///
/// As [`vstats_writer_set`].
///
/// # Safety
///
/// As [`vstats_writer_begin`].
#[no_mangle]
pub unsafe extern "C" fn vstats_writer_set_inactive(w: *mut VstatsWriter, word: u32) -> c_int {
    // SAFETY: the caller's promise.
    unsafe {
        in_update(w, |u| {
            if u.set_inactive(word as usize) {
                VSTATS_OK
            } else {
                VSTATS_ERANGE
            }
        })
    }
}

/// `int vstats_writer_set_runstate(w, state, entry_ns)`: stores the
/// current runstate (`RUNSTATE_running` .. `RUNSTATE_offline`) and when it
/// was entered (ns in the table's clock) into an r3 vCPU record's
/// `runstate` and `runstate_entry_time` words. An `entry_ns` with the top
/// bit set is stored as inactive.
///
/// # Errors
///
/// `VSTATS_EFAULT`, `VSTATS_EPROTO` (outside an update), `VSTATS_EINVAL`
/// (`state > 3`, R25; nothing stored), `VSTATS_ERANGE` (the record has no
/// such words, e.g. an r2 record; nothing stored).
///
/// # Safety
///
/// As [`vstats_writer_begin`].
#[no_mangle]
pub unsafe extern "C" fn vstats_writer_set_runstate(
    w: *mut VstatsWriter,
    state: u32,
    entry_ns: u64,
) -> c_int {
    let word = |off: u32| ((off - vstats_abi::record::RECORD_PREFIX) / 8) as usize;
    // SAFETY: the caller's promise.
    unsafe {
        in_update(w, |u| {
            if !RunState(u64::from(state)).is_known() {
                return VSTATS_EINVAL;
            }
            // The higher word first: when it is beyond the record, nothing
            // is stored; when it is not, the lower one is not either.
            if !u.set(word(vcpu_off::ENTRY), entry_ns) {
                return VSTATS_ERANGE;
            }
            if u.set(word(vcpu_off::RUNSTATE), u64::from(state)) {
                VSTATS_OK
            } else {
                VSTATS_ERANGE
            }
        })
    }
}

/// `int vstats_writer_set_unused(w)`: marks every counter inactive (the
/// slot reads as unused).
///
/// # Errors
///
/// `VSTATS_EFAULT`, `VSTATS_EPROTO`, `VSTATS_EAGAIN`.
///
/// # Safety
///
/// As [`vstats_writer_begin`].
#[no_mangle]
pub unsafe extern "C" fn vstats_writer_set_unused(w: *mut VstatsWriter) -> c_int {
    // SAFETY: the caller's promise.
    unsafe {
        in_update(w, |u| {
            u.set_unused();
            VSTATS_OK
        })
    }
}

/// `int vstats_writer_end(w)`: ends the update (seq goes even).
///
/// # Errors
///
/// `VSTATS_EFAULT`, `VSTATS_EPROTO` (no update). An update begun before
/// the table was disabled is still finished.
///
/// # Safety
///
/// As [`vstats_writer_begin`].
#[no_mangle]
pub unsafe extern "C" fn vstats_writer_end(w: *mut VstatsWriter) -> c_int {
    // SAFETY: the caller's promise.
    let h = match unsafe { held(w) } {
        Ok(h) => h,
        Err(e) => return e,
    };
    if !*h.in_update {
        return VSTATS_EPROTO;
    }
    *h.in_update = false;
    // The open update is handed back even while the table is disabled.
    // SAFETY: as in `vstats_writer_begin`.
    match unsafe { h.writer.begin() } {
        Some(u) => {
            u.finish();
            VSTATS_OK
        }
        None => VSTATS_EPROTO,
    }
}

/// `int vstats_writer_update(w, first_word, values, n)`: a whole update
/// storing `values[0..n)` into words `[first_word, first_word + n)`.
///
/// # Errors
///
/// `VSTATS_EFAULT` (not a writer, or `values` NULL or misaligned with
/// `n > 0`), `VSTATS_EPROTO` (inside an update), `VSTATS_ERANGE` (beyond
/// the record; nothing written), `VSTATS_EAGAIN` (disabled).
///
/// # Safety
///
/// As [`vstats_writer_begin`], and `values` is NULL or valid for reading
/// `n` values, not written during the call.
#[no_mangle]
pub unsafe extern "C" fn vstats_writer_update(
    w: *mut VstatsWriter,
    first_word: u32,
    values: *const u64,
    n: u32,
) -> c_int {
    // SAFETY: the caller's promise.
    let h = match unsafe { held(w) } {
        Ok(h) => h,
        Err(e) => return e,
    };
    if *h.in_update {
        return VSTATS_EPROTO;
    }
    let first = first_word as usize;
    if first.saturating_add(n as usize) > h.writer.len() {
        return VSTATS_ERANGE;
    }
    let values: &[u64] = if n == 0 {
        &[]
    } else {
        if !aligned(values, align_of::<u64>()) {
            return VSTATS_EFAULT;
        }
        // SAFETY: non-null, aligned, valid for reading `n` values and not
        // written during the call (the caller's promise); n words fit in
        // one record, so the size fits isize.
        unsafe { core::slice::from_raw_parts(values, n as usize) }
    };
    // SAFETY: as in `vstats_writer_begin`.
    let ran = unsafe {
        h.writer.update(|u| {
            for (k, v) in values.iter().enumerate() {
                u.set(first + k, *v);
            }
        })
    };
    if ran {
        VSTATS_OK
    } else {
        VSTATS_EAGAIN
    }
}

/// `struct vstats_publication`: a VM's publication directory, locked, and
/// the files published in it (the producer's `Publication`). Allocated by
/// [`vstats_publication_open`], freed by [`vstats_publication_close`].
#[cfg(feature = "std")]
#[derive(Debug)]
pub struct VstatsPublication {
    inner: vstats_producer::publish::Publication,
}

/// The `&str` behind a C string, `None` for NULL or non-UTF-8.
///
/// # Safety
///
/// The caller promises that `s` is NULL or a NUL-terminated string that
/// stays valid and unchanged during `'a`.
#[cfg(feature = "std")]
unsafe fn c_str<'a>(s: *const c_char) -> Option<&'a str> {
    if s.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated (the caller's promise).
    unsafe { core::ffi::CStr::from_ptr(s) }.to_str().ok()
}

/// `int vstats_publication_open(dir, dir_mode, file_mode, out)`: creates
/// (if missing) and locks the publication directory `dir`, one producer
/// per directory. The modes are applied exactly (not narrowed by the
/// umask); 0 selects the defaults, 0750 and 0640.
///
/// # Errors
///
/// `VSTATS_EFAULT` (NULL `dir` or `out`), `VSTATS_EINVAL` (`dir` not
/// UTF-8, or a mode above 07777), `VSTATS_EBUSY` (another producer holds
/// it), or a negated `errno` (`-ENOTDIR` for a symlink or a
/// non-directory, `-EPERM` for a directory of another user, or the error
/// of the failed system call).
///
/// # Safety
///
/// The caller promises that `dir` is NULL or a NUL-terminated string and
/// `out` NULL or valid for writing a pointer.
#[cfg(feature = "std")]
#[no_mangle]
pub unsafe extern "C" fn vstats_publication_open(
    dir: *const c_char,
    dir_mode: u32,
    file_mode: u32,
    out: *mut *mut VstatsPublication,
) -> c_int {
    use vstats_producer::publish::{Publication, PublishOptions};
    if out.is_null() {
        return VSTATS_EFAULT;
    }
    if dir.is_null() {
        return VSTATS_EFAULT;
    }
    // SAFETY: the caller's promise, for this call.
    let Some(dir) = (unsafe { c_str(dir) }) else {
        return VSTATS_EINVAL;
    };
    if dir_mode > 0o7777 || file_mode > 0o7777 {
        return VSTATS_EINVAL;
    }
    let default = PublishOptions::default();
    let opts = PublishOptions {
        dir_mode: if dir_mode == 0 {
            default.dir_mode
        } else {
            dir_mode
        },
        file_mode: if file_mode == 0 {
            default.file_mode
        } else {
            file_mode
        },
        ..default
    };
    match Publication::create_dir(std::path::Path::new(dir), opts) {
        Ok(inner) => {
            let p = std::boxed::Box::into_raw(std::boxed::Box::new(VstatsPublication { inner }));
            // SAFETY: `out` is non-null and writable (the caller's
            // promise); unaligned writes are allowed.
            unsafe { out.write_unaligned(p) };
            VSTATS_OK
        }
        Err(e) => from_publish(&e),
    }
}

/// `uint64_t vstats_publication_generation(p)`: the generation every
/// table of the publication carries (0 for NULL).
///
/// # Safety
///
/// The caller promises that `p` is NULL or returned by
/// [`vstats_publication_open`] and not closed.
#[cfg(feature = "std")]
#[no_mangle]
pub unsafe extern "C" fn vstats_publication_generation(p: *const VstatsPublication) -> u64 {
    if !aligned(p, align_of::<VstatsPublication>()) {
        return 0;
    }
    // SAFETY: a live publication (the caller's promise), only read here.
    unsafe { &*p }.inner.generation()
}

/// `int vstats_publication_table(p, file, t, magic, l, descs, writers,
/// nr_writers)`: publishes a table as the file `file` of the publication
/// directory, under the publication's generation, as
/// [`vstats_table_init_contiguous`] would in memory: the file is created
/// under a temporary name, allocated (`fallocate`: a full file system is
/// `VSTATS_ENOSPC`, not a crash), mapped, initialised, and renamed into
/// place. The mapping belongs to the publication.
///
/// # Errors
///
/// The codes of [`vstats_table_init_contiguous`] (nothing is published
/// then, and no temporary file stays), `VSTATS_EINVAL` for a file name
/// that breaks the name rule, `VSTATS_ENOSPC` for a full file system, or
/// a negated `errno`.
///
/// # Safety
///
/// The caller promises that `p` is NULL or a live publication used by no
/// other thread during the call, `file` NULL or a NUL-terminated string,
/// and what [`vstats_table_init_contiguous`] requires of `t`, `l`,
/// `descs` and `writers`, with "until the publication is closed" for the
/// memory (which the publication owns): `*t` and its writers are not used
/// after [`vstats_publication_close`].
#[cfg(feature = "std")]
#[no_mangle]
pub unsafe extern "C" fn vstats_publication_table(
    p: *mut VstatsPublication,
    file: *const c_char,
    t: *mut VstatsTable,
    magic: u32,
    l: *const VstatsLayout,
    descs: *const Descriptor,
    writers: *mut VstatsWriter,
    nr_writers: usize,
) -> c_int {
    if !aligned(p, align_of::<VstatsPublication>()) || file.is_null() {
        return VSTATS_EFAULT;
    }
    // SAFETY: a live publication that this thread alone uses during the
    // call (the caller's promise).
    let publication = unsafe { &mut *p };
    // SAFETY: the caller's promise, for this call.
    let Some(file) = (unsafe { c_str(file) }) else {
        return VSTATS_EINVAL;
    };
    let a = InitArgs {
        t,
        magic,
        l,
        descs,
        generation: publication.inner.generation(),
        writers,
        nr_writers,
    };
    // SAFETY: `l` and `descs` as the caller promises; the descriptors are
    // only used during this call.
    let (layout, descs) = match unsafe { check_args(&a) } {
        Ok(v) => v,
        Err(e) => return e,
    };
    let spec = TableSpec {
        magic: a.magic,
        layout,
        descriptors: descs,
        generation: a.generation,
    };
    let mut table = None;
    let published = publication
        .inner
        .publish_with(file, layout.mapping_len(), |base, len| {
            // SAFETY: the publication keeps the mapping `[base, base +
            // len)`, readable, writable and page-aligned, at its address
            // until it is closed, and the caller promises not to use the
            // table after that, which is what 'static stands for here;
            // this process reaches it only through the table's atomics
            // (invariants 1-4 of `Frames`).
            let frames = unsafe { Frames::contiguous(base, len) };
            table = Some(Table::init(frames, &spec)?);
            Ok(())
        });
    if let Err(e) = published {
        return from_publish(&e);
    }
    match table {
        // SAFETY: the caller's promises, forwarded; the frames live in
        // the publication (see above).
        Some(table) => unsafe { install(&a, layout, table) },
        None => VSTATS_EINVAL,
    }
}

/// `int vstats_publication_close(p)`: removes the files the publication
/// created (only those: a file that replaced one of them is left), the
/// directory if it created it and it is empty, unmaps the tables and
/// releases the lock; `p` is freed even on error.
///
/// # Errors
///
/// `VSTATS_EFAULT` for NULL, or a negated `errno` from removing a file.
///
/// # Safety
///
/// The caller promises that `p` is NULL or returned by
/// [`vstats_publication_open`] and not closed yet, and that no table
/// published through it, nor any of their writers, is used any more.
#[cfg(feature = "std")]
#[no_mangle]
pub unsafe extern "C" fn vstats_publication_close(p: *mut VstatsPublication) -> c_int {
    if !aligned(p, align_of::<VstatsPublication>()) {
        return VSTATS_EFAULT;
    }
    // SAFETY: `p` came from `Box::into_raw` in `vstats_publication_open`
    // and is closed once (the caller's promise).
    let p = unsafe { std::boxed::Box::from_raw(p) };
    match p.inner.remove() {
        Ok(()) => VSTATS_OK,
        Err(e) => from_publish(&e),
    }
}
