//! Unit tests: the C API called from Rust over tables on the heap
//! (Miri can run them). The C side is tested in `tests/`.
#![allow(unsafe_code)]

extern crate std;

use core::{ffi::c_void, ptr};
use std::{thread, vec, vec::Vec};

use vstats_abi::{
    desc::Descriptor,
    header::CLOCK_HOST_MONOTONIC,
    layout::{Layout, LayoutParams},
    record::{vcpu_off, RunState, INACTIVE, VCPU_STATS_SIZE, VCPU_STATS_SIZE_R3},
    validate::validate,
    VCPU_STATS_MAGIC,
};

use crate::{error::*, ffi::*};

/// `n` producer counters right after the standard vCPU record.
fn own(n: u32) -> Vec<Descriptor> {
    (0..n)
        .map(|i| {
            Descriptor::builder(&std::format!("c{i}"))
                .at(VCPU_STATS_SIZE + 8 * i)
                .unwrap()
        })
        .collect()
}

/// An r3 vCPU layout: records of `size` bytes (the standard record, then
/// the producer area), `descs` r3 descriptors.
fn layout(nr: u32, size: u32, descs: u32, page: u32) -> VstatsLayout {
    let mut l = VstatsLayout::default();
    // SAFETY: `l` is a valid, writable layout.
    let r = unsafe { vstats_layout(nr, size, VCPU_STATS_SIZE, descs, page, 64, &mut l) };
    assert_eq!(r, VSTATS_OK);
    l
}

/// `n` words at `p` as bytes.
///
/// # Safety
///
/// The caller promises that `p` is valid for reading `n` words that
/// nobody writes meanwhile.
unsafe fn bytes(p: *const u64, n: usize) -> Vec<u8> {
    (0..n)
        // SAFETY: k < n: in bounds, readable (the caller's promise).
        .flat_map(|k| unsafe { p.wrapping_add(k).read() }.to_ne_bytes())
        .collect()
}

/// Heap memory handed to the library as raw pointers, freed on drop (once
/// the test no longer uses the table). Only raw pointers are kept, so the
/// test holds no reference the library writes behind.
struct Heap<T>(*mut [T]);

impl<T> Heap<T> {
    fn new(v: Vec<T>) -> Heap<T> {
        Heap(std::boxed::Box::into_raw(v.into_boxed_slice()))
    }

    fn ptr(&self) -> *mut T {
        self.0.cast()
    }
}

impl<T> Drop for Heap<T> {
    fn drop(&mut self) {
        // SAFETY: from `Box::into_raw` in `new`, freed once; the table that
        // used it is no longer used.
        drop(unsafe { std::boxed::Box::from_raw(self.0) });
    }
}

/// A writer handed out by `vstats_writer_get`, used by one thread: the
/// promise the writer functions need, so its methods are safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct W(*mut VstatsWriter);

impl W {
    fn begin(self) -> i32 {
        // SAFETY: a handed-out writer of a live table (type invariant).
        unsafe { vstats_writer_begin(self.0) }
    }
    fn set(self, word: u32, v: u64) -> i32 {
        // SAFETY: as in `begin`.
        unsafe { vstats_writer_set(self.0, word, v) }
    }
    fn set_inactive(self, word: u32) -> i32 {
        // SAFETY: as in `begin`.
        unsafe { vstats_writer_set_inactive(self.0, word) }
    }
    fn set_unused(self) -> i32 {
        // SAFETY: as in `begin`.
        unsafe { vstats_writer_set_unused(self.0) }
    }
    fn end(self) -> i32 {
        // SAFETY: as in `begin`.
        unsafe { vstats_writer_end(self.0) }
    }
    fn set_runstate(self, state: u32, entry: u64) -> i32 {
        // SAFETY: as in `begin`.
        unsafe { vstats_writer_set_runstate(self.0, state, entry) }
    }
    fn update(self, first: u32, vals: &[u64]) -> i32 {
        let n = vals.len() as u32;
        // SAFETY: as in `begin`; `vals` is readable for `n` values.
        unsafe { vstats_writer_update(self.0, first, vals.as_ptr(), n) }
    }
}

/// A table's memory, state and writers: the API's promises (valid, in
/// place, touched only through it) hold while the fixture lives.
struct Fixture {
    mem: *mut u64,
    table: *mut VstatsTable,
    writers: *mut VstatsWriter,
    nr_writers: usize,
    layout: VstatsLayout,
    _heap: (Heap<u64>, Heap<VstatsTable>, Heap<VstatsWriter>),
}

impl Fixture {
    fn new(nr: u32) -> Fixture {
        let f = Fixture::alloc(layout(nr, VCPU_STATS_SIZE, 0, 4096));
        assert_eq!(f.init(VCPU_STATS_MAGIC, &[]), VSTATS_OK);
        f
    }

    fn alloc(l: VstatsLayout) -> Fixture {
        let mem = Heap::new(vec![0x5a5a_5a5a_5a5a_5a5au64; l.mapping_len as usize / 8]);
        let table = Heap::new(vec![VstatsTable::new()]);
        let writers = Heap::new((0..l.nr_records).map(|_| VstatsWriter::new()).collect());
        Fixture {
            mem: mem.ptr(),
            table: table.ptr(),
            writers: writers.ptr(),
            nr_writers: l.nr_records as usize,
            layout: l,
            _heap: (mem, table, writers),
        }
    }

    /// Initialises the table with the layout's descriptor count taken
    /// from `descs` (at least that many).
    fn init(&self, magic: u32, descs: &[Descriptor]) -> i32 {
        assert!(descs.len() >= self.layout.desc_count as usize);
        // SAFETY: the fixture's memory, state and writers live as long as it,
        // writable and only used through this API; `descs` is readable.
        unsafe {
            vstats_table_init_contiguous(
                self.table,
                self.mem.cast(),
                self.layout.mapping_len as usize,
                magic,
                &self.layout,
                descs.as_ptr(),
                7,
                self.writers,
                self.nr_writers,
            )
        }
    }

    fn get(&self, i: u32) -> Result<W, i32> {
        let mut w = ptr::null_mut();
        // SAFETY: the table is zeroed or initialised; `w` is writable.
        match unsafe { vstats_writer_get(self.table, i, &mut w) } {
            VSTATS_OK => Ok(W(w)),
            e => Err(e),
        }
    }

    fn set_enabled(&self, on: bool) -> i32 {
        // SAFETY: the table is zeroed or initialised.
        unsafe { vstats_table_set_enabled(self.table, on) }
    }

    /// The table's bytes (read while no writer is in use).
    fn bytes(&self) -> Vec<u8> {
        // SAFETY: `mem` holds `mapping_len` bytes; writers are quiescent.
        unsafe { bytes(self.mem, self.layout.mapping_len as usize / 8) }
    }

    fn u64_at(&self, off: u32) -> u64 {
        let b = self.bytes();
        u64::from_ne_bytes(b[off as usize..][..8].try_into().unwrap())
    }

    /// Counter word `k` of record `i`.
    fn word(&self, i: u32, k: u32) -> u64 {
        self.u64_at(self.layout.offset + i * self.layout.stride + 8 + 8 * k)
    }

    fn seq(&self, i: u32) -> u32 {
        self.u64_at(self.layout.offset + i * self.layout.stride)
            .to_ne_bytes()[..4]
            .try_into()
            .map(u32::from_ne_bytes)
            .unwrap()
    }
}

#[test]
fn layout_matches_the_abi_crate_and_reports_errors() {
    // r3 (design 3.9): the 88-byte head, no descriptors.
    let l = layout(4, VCPU_STATS_SIZE, 0, 4096);
    assert_eq!(
        (l.offset, l.stride, l.frames, l.mapping_len),
        (128, 64, 1, 4096)
    );
    assert_eq!((l.size, l.abi_size, l.desc_offset), (56, 56, 0));
    // One producer counter: its r3 descriptor follows the head.
    let l = layout(4, VCPU_STATS_SIZE + 8, 1, 4096);
    assert_eq!((l.offset, l.stride), (192, 64));
    assert_eq!(l.desc_offset, 88);
    let mut out = VstatsLayout::default();
    // SAFETY: `out` is writable.
    let r = unsafe { vstats_layout(1, 56, 56, 0, 3000, 64, &mut out) };
    assert_eq!(r, VSTATS_EINVAL);
    // SAFETY: `out` is writable.
    let r = unsafe { vstats_layout(1, 60, 56, 0, 4096, 64, &mut out) };
    assert_eq!(r, VSTATS_EINVAL);
    // SAFETY: `out` is writable. A record smaller than its standard part.
    let r = unsafe { vstats_layout(1, 48, 56, 0, 4096, 64, &mut out) };
    assert_eq!(r, VSTATS_EINVAL);
    // SAFETY: a NULL `out` is allowed.
    let r = unsafe { vstats_layout(1, 56, 56, 0, 4096, 64, ptr::null_mut()) };
    assert_eq!(r, VSTATS_EFAULT);
}

#[test]
fn init_publishes_a_valid_table_and_writers_follow_the_protocol() {
    let f = Fixture::new(3);
    let info = validate(&f.bytes(), f.layout.mapping_len).unwrap();
    assert_eq!(info.nr_records, 3);
    assert_eq!(info.generation(), 7);
    assert!(info.is_r3());
    assert_eq!(info.clock, vstats_abi::header::CLOCK_HOST_MONOTONIC);
    // Standard fields are not described (r3).
    assert_eq!((info.desc_count(), info.xdesc_count), (0, 0));

    let w = f.get(1).unwrap();
    assert_eq!(f.get(1), Err(VSTATS_EBUSY), "a writer is handed out once");
    assert_eq!(f.get(3), Err(VSTATS_ERANGE));
    assert_eq!(w.set(0, 1), VSTATS_EPROTO, "set outside an update");
    assert_eq!(w.end(), VSTATS_EPROTO);
    assert_eq!(w.begin(), VSTATS_OK);
    assert_eq!(f.seq(1), 1, "odd during the update");
    assert_eq!(w.begin(), VSTATS_EPROTO, "no nesting");
    assert_eq!(w.set(0, 100), VSTATS_OK);
    assert_eq!(w.set(1, 1 << 63), VSTATS_OK);
    assert_eq!(w.set_inactive(2), VSTATS_OK);
    assert_eq!(w.set(6, 1), VSTATS_ERANGE, "6 words: 0..5");
    assert_eq!(w.update(0, &[1]), VSTATS_EPROTO);
    assert_eq!(w.end(), VSTATS_OK);
    assert_eq!(f.seq(1), 2);
    assert_eq!(f.word(1, 0), 100);
    assert_eq!(
        f.word(1, 1),
        INACTIVE,
        "an overflowing value is stored inactive"
    );
    assert_eq!(f.word(1, 2), INACTIVE);
    assert_eq!(f.word(0, 0), INACTIVE, "other records untouched");

    assert_eq!(w.update(4, &[5, 6, 7]), VSTATS_ERANGE);
    assert_eq!(f.seq(1), 2, "a refused update stores nothing");
    assert_eq!(w.update(1, &[5, 6, 7]), VSTATS_OK);
    assert_eq!(w.update(4, &[]), VSTATS_OK);
    assert_eq!(f.seq(1), 6);
    assert_eq!([f.word(1, 1), f.word(1, 2), f.word(1, 3)], [5, 6, 7]);

    // The state and its entry time, beside the times.
    assert_eq!(w.set_runstate(2, 77), VSTATS_EPROTO, "outside an update");
    assert_eq!(w.begin(), VSTATS_OK);
    assert_eq!(w.set_runstate(RunState::BLOCKED.0 as u32, 77), VSTATS_OK);
    assert_eq!(w.end(), VSTATS_OK);
    let at = |off: u32| (off - 8) / 8;
    assert_eq!(f.word(1, at(vcpu_off::RUNSTATE)), 2);
    assert_eq!(f.word(1, at(vcpu_off::ENTRY)), 77);

    assert_eq!(w.begin(), VSTATS_OK);
    assert_eq!(w.set_unused(), VSTATS_OK);
    assert_eq!(w.end(), VSTATS_OK);
    assert!((0..6).all(|k| f.word(1, k) == INACTIVE));
    validate(&f.bytes(), f.layout.mapping_len).unwrap();
}

#[test]
fn disabling_stops_new_updates_but_an_open_one_completes() {
    let f = Fixture::new(1);
    let w = f.get(0).unwrap();
    assert_eq!(f.set_enabled(false), VSTATS_OK);
    assert_eq!(w.begin(), VSTATS_EAGAIN);
    assert_eq!(w.update(0, &[1]), VSTATS_EAGAIN);
    assert_eq!(f.seq(0), 0, "nothing written while disabled");
    assert_eq!(f.set_enabled(true), VSTATS_OK);
    assert_eq!(w.begin(), VSTATS_OK);
    assert_eq!(w.set(0, 9), VSTATS_OK);
    // Disabled in the middle of the update: the open update can still be
    // completed, and nothing new starts after it.
    assert_eq!(f.set_enabled(false), VSTATS_OK);
    assert_eq!(w.set(1, 9), VSTATS_OK);
    assert_eq!(w.end(), VSTATS_OK);
    assert_eq!(f.seq(0), 2);
    assert_eq!(w.begin(), VSTATS_EAGAIN);
    assert_eq!(f.seq(0), 2);
    assert_eq!(f.set_enabled(true), VSTATS_OK);
    assert_eq!(w.update(0, &[10, 11]), VSTATS_OK);
    assert_eq!(f.seq(0), 4);
    assert_eq!((f.word(0, 0), f.word(0, 1)), (10, 11));
}

#[test]
fn init_refuses_bad_arguments_and_writes_nothing() {
    let l = layout(2, VCPU_STATS_SIZE + 16, 2, 4096);
    let f = Fixture::alloc(l);
    let descs = &own(2);
    let pristine = f.bytes();
    let mut small = Fixture::alloc(l);
    small.nr_writers = 1;
    let mut tampered = Fixture::alloc(l);
    tampered.layout.stride = l.stride * 2;
    let mut dup = own(2);
    dup[1].name = dup[0].name;
    // A producer counter may not carry a standard field's name (R20).
    let mut std_name = own(2);
    std_name[1].name = vstats_vcpu_std_descs[0].name;
    // The r2 standard descriptors lie outside the producer area (R20).
    let std = &vstats_vcpu_std_descs[..2];

    assert_eq!(f.init(0x1234, descs), VSTATS_EINVAL);
    assert_eq!(f.init(VCPU_STATS_MAGIC, &dup), VSTATS_EBADMSG);
    assert_eq!(f.init(VCPU_STATS_MAGIC, &std_name), VSTATS_EBADMSG);
    assert_eq!(f.init(VCPU_STATS_MAGIC, std), VSTATS_EBADMSG);
    assert_eq!(small.init(VCPU_STATS_MAGIC, descs), VSTATS_ENOSPC);
    assert_eq!(tampered.init(VCPU_STATS_MAGIC, descs), VSTATS_EINVAL);
    let init = |base: *mut c_void, len: usize, descs: *const Descriptor| {
        // SAFETY: `f`'s state and writers live as long as it, only used through
        // this API; `base` is NULL or inside `f.mem` with `len` bytes
        // after it; `descs` is NULL or readable.
        unsafe {
            vstats_table_init_contiguous(
                f.table,
                base,
                len,
                VCPU_STATS_MAGIC,
                &l,
                descs,
                1,
                f.writers,
                2,
            )
        }
    };
    assert_eq!(init(f.mem.cast(), 4096, ptr::null()), VSTATS_EFAULT);
    assert_eq!(init(f.mem.cast(), 4095, descs.as_ptr()), VSTATS_ENOSPC);
    let unaligned = f.mem.cast::<u8>().wrapping_add(4).cast();
    assert_eq!(init(unaligned, 4092, descs.as_ptr()), VSTATS_EFAULT);
    assert_eq!(init(ptr::null_mut(), 4096, descs.as_ptr()), VSTATS_EFAULT);
    assert_eq!(f.bytes(), pristine, "failed inits write nothing");

    // Nothing initialised: the zeroed table is refused.
    assert_eq!(f.get(0), Err(VSTATS_EINVAL));
    assert_eq!(f.set_enabled(true), VSTATS_EINVAL);
    // SAFETY: NULL is allowed.
    let r = unsafe { vstats_table_set_enabled(ptr::null_mut(), true) };
    assert_eq!(r, VSTATS_EFAULT);
    // Zeroed writer storage, or NULL, is not a writer.
    assert_eq!(W(f.writers).begin(), VSTATS_EFAULT);
    assert_eq!(W(ptr::null_mut()).begin(), VSTATS_EFAULT);
}

#[test]
fn a_writer_not_yet_handed_out_is_refused() {
    let f = Fixture::new(2);
    let w1 = W(f.writers.wrapping_add(1));
    assert_eq!(w1.begin(), VSTATS_EFAULT, "not handed out yet");
    assert_eq!(f.get(1), Ok(w1));
    assert_eq!(w1.begin(), VSTATS_OK);
}

/// A table pointer shared between threads.
struct Shared(*mut VstatsTable);

// SAFETY: `vstats_writer_get` and `vstats_table_set_enabled` may be called
// from any thread at any time (the table state is only read, `taken` is
// atomic).
unsafe impl Sync for Shared {}

#[test]
fn concurrent_gets_hand_each_writer_out_once() {
    let f = Fixture::new(4);
    let table = Shared(f.table);
    let table = &table;
    let won: usize = thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(move || {
                    (0..4)
                        .filter(|&i| {
                            let mut w = ptr::null_mut();
                            // SAFETY: the table is initialised and outlives the threads.
                            let r = unsafe { vstats_writer_get(table.0, i, &mut w) };
                            assert!(r == VSTATS_OK || r == VSTATS_EBUSY);
                            r == VSTATS_OK
                        })
                        .count()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(won, 4);
}

#[test]
fn scattered_pages_hold_the_same_table() {
    let page = 4096usize;
    let nr = 100u32;
    let l = layout(nr, 136, 10, page as u32);
    let descs = own(10);
    assert!(l.frames >= 3);
    // Pages allocated separately, handed over in reverse allocation order.
    let mut heap: Vec<Heap<u64>> = (0..l.frames)
        .map(|_| Heap::new(vec![0u64; page / 8]))
        .collect();
    heap.reverse();
    let list = Heap::new(heap.iter().map(|h| h.ptr().cast::<c_void>()).collect());
    let pages = list.ptr();
    // The fixture's state and writers; its contiguous memory stays unused.
    let f = Fixture::alloc(l);
    let init = |pages: *const *mut c_void| {
        // SAFETY: pages, page list, state and writers live until the end
        // of the test and are used only through this API.
        unsafe {
            vstats_table_init_pages(
                f.table,
                pages,
                l.frames as usize,
                VCPU_STATS_MAGIC,
                &l,
                descs.as_ptr(),
                3,
                f.writers,
                nr as usize,
            )
        }
    };
    let nulls = Heap::new(vec![ptr::null_mut::<c_void>(); l.frames as usize]);
    assert_eq!(init(nulls.ptr()), VSTATS_EFAULT, "a NULL page");
    assert_eq!(init(pages), VSTATS_OK);
    for i in 0..nr {
        let vals: Vec<u64> = (0..16).map(|k| u64::from(i) * 100 + k).collect();
        assert_eq!(f.get(i).unwrap().update(0, &vals), VSTATS_OK);
    }
    let whole: Vec<u8> = (0..l.frames as usize)
        .flat_map(|k| {
            // SAFETY: k < frames: inside the page list.
            let p = unsafe { pages.wrapping_add(k).read() };
            // SAFETY: each page holds `page` bytes; writers are quiescent.
            unsafe { bytes(p.cast(), page / 8) }
        })
        .collect();
    let info = validate(&whole, whole.len() as u64).unwrap();
    assert_eq!(info.nr_records, nr);
    for i in 0..nr {
        let off = info.record_offset(i).unwrap() as usize;
        let w = |k: usize| u64::from_ne_bytes(whole[off + 8 + 8 * k..][..8].try_into().unwrap());
        assert_eq!(w(0), u64::from(i) * 100);
        assert_eq!(w(15), u64::from(i) * 100 + 15);
    }
}

#[test]
fn std_descriptors_are_the_abi_crates() {
    assert_eq!(
        &vstats_vcpu_std_descs[..],
        vstats_abi::record::VCPU_STD_DESCRIPTORS
    );
    assert_eq!(
        &vstats_domain_std_descs[..],
        vstats_abi::record::DOMAIN_STD_DESCRIPTORS
    );
}

#[test]
fn strerror_is_static_and_nul_terminated() {
    for code in [VSTATS_OK, VSTATS_EBUSY, -1, 12345] {
        let p = vstats_strerror(code);
        // SAFETY: `vstats_strerror` returns a static C string.
        let s = unsafe { core::ffi::CStr::from_ptr(p) };
        assert!(!s.to_bytes().is_empty());
    }
}

#[test]
fn layout_r3_matches_the_abi_crate_and_reports_errors() {
    let r3 = |nr, size, xstats, xdescs, clock| {
        let mut l = VstatsLayout::default();
        // SAFETY: `l` is a valid, writable layout.
        let r = unsafe { vstats_layout_r3(nr, size, xstats, xdescs, clock, 4096, 64, &mut l) };
        (r, l)
    };
    let (r, l) = r3(4, VCPU_STATS_SIZE_R3, 0, 0, CLOCK_HOST_MONOTONIC);
    assert_eq!(r, VSTATS_OK);
    assert_eq!((l.size, l.stride, l.offset, l.frames), (56, 64, 128, 1));
    assert_eq!(
        (l.ext_size, l.clock, l.abi_size, l.desc_count),
        (72, 1, 56, 0)
    );
    assert_eq!((l.xstats_offset, l.xstats_size, l.xdesc_offset), (0, 0, 0));

    let (r, l) = r3(4, VCPU_STATS_SIZE_R3, 320, 2, CLOCK_HOST_MONOTONIC);
    assert_eq!(r, VSTATS_OK);
    let want = Layout::compute(&LayoutParams {
        clock: CLOCK_HOST_MONOTONIC,
        xstats_size: 320,
        xdesc_count: 2,
        ..LayoutParams::vcpu_r3(4)
    })
    .unwrap();
    assert_eq!(
        (l.offset, l.stride, l.frames, l.mapping_len),
        (want.offset, want.stride, want.frames, want.mapping_len())
    );
    assert_eq!(
        (
            l.xstats_offset,
            l.xstats_size,
            l.xdesc_offset,
            l.xdesc_count
        ),
        (56, 320, 88, 2)
    );

    // vstats_layout() lays out the same r3 table with clock 1: its
    // [abi_size, size) is the producer-specific area.
    let l2 = layout(4, VCPU_STATS_SIZE + 320, 2, 4096);
    assert_eq!(
        (l2.ext_size, l2.clock, l2.xstats_size, l2.xdesc_count),
        (72, 1, 320, 2)
    );
    assert_eq!(l2, l);

    assert_eq!(
        r3(4, 56, 12, 0, 1).0,
        VSTATS_EINVAL,
        "area not a multiple of 8"
    );
    assert_eq!(
        r3(4, 56, 8192, 0, 1).0,
        VSTATS_EINVAL,
        "record beyond the page"
    );
    // SAFETY: a NULL `out` is allowed.
    let r = unsafe { vstats_layout_r3(1, 56, 0, 0, 1, 4096, 64, ptr::null_mut()) };
    assert_eq!(r, VSTATS_EFAULT);
}

#[test]
fn init_publishes_an_r3_layout_and_refuses_an_r2_one() {
    let mut l = VstatsLayout::default();
    // SAFETY: `l` is writable.
    let r = unsafe { vstats_layout_r3(2, 56, 0, 0, 1, 4096, 64, &mut l) };
    assert_eq!(r, VSTATS_OK);
    // The library writes r3 tables only: an r2 layout (ext_size 40, no
    // clock), which neither layout call makes, is refused untouched.
    let mut r2 = l;
    (r2.ext_size, r2.clock) = (40, 0);
    let f = Fixture::alloc(r2);
    assert_eq!(f.init(VCPU_STATS_MAGIC, &[]), VSTATS_EINVAL);
    assert!(f.bytes().iter().all(|&b| b == 0x5a), "nothing written");

    let f = Fixture::alloc(l);
    assert_eq!(f.init(VCPU_STATS_MAGIC, &[]), VSTATS_OK);
    let info = validate(&f.bytes(), f.layout.mapping_len).unwrap();
    assert!(info.is_r3());
    assert_eq!(info.clock, CLOCK_HOST_MONOTONIC);
}

#[test]
fn set_runstate_stores_both_words_or_nothing() {
    // A domain record (32 bytes) has no runstate words.
    let mut l = VstatsLayout::default();
    // SAFETY: `l` is writable.
    let r = unsafe { vstats_layout(1, 32, 32, 0, 4096, 64, &mut l) };
    assert_eq!(r, VSTATS_OK);
    let f = Fixture::alloc(l);
    assert_eq!(f.init(vstats_abi::DOMAIN_STATS_MAGIC, &[]), VSTATS_OK);
    let w = f.get(0).unwrap();
    assert_eq!(w.set_runstate(0, 5), VSTATS_EPROTO, "outside an update");
    assert_eq!(w.begin(), VSTATS_OK);
    assert_eq!(w.set_runstate(1, 5), VSTATS_ERANGE);
    assert_eq!(w.end(), VSTATS_OK);
    assert!((0..3).all(|k| f.word(0, k) == INACTIVE));

    // The 56-byte r3 vCPU record.
    let f = Fixture::alloc(layout(1, VCPU_STATS_SIZE_R3, 0, 4096));
    assert_eq!(f.init(VCPU_STATS_MAGIC, &[]), VSTATS_OK);
    let w = f.get(0).unwrap();
    assert_eq!(w.begin(), VSTATS_OK);
    assert_eq!(w.set_runstate(4, 5), VSTATS_EINVAL, "R25: states 0 to 3");
    assert_eq!(w.set_runstate(2, 12_345), VSTATS_OK);
    assert_eq!(w.end(), VSTATS_OK);
    assert_eq!((f.word(0, 4), f.word(0, 5)), (2, 12_345));
    assert_eq!(w.begin(), VSTATS_OK);
    assert_eq!(w.set_runstate(3, 1 << 63), VSTATS_OK);
    assert_eq!(w.end(), VSTATS_OK);
    assert_eq!((f.word(0, 4), f.word(0, 5)), (3, INACTIVE));
}
