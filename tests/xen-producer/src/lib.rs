//! The Xen hypervisor's stats-table producer (`xen/common/stats_table.c`
//! of the patch series in `xen/patches`), compiled unmodified in user space
//! against a small shim of Xen headers (see `build.rs` and `README.md`),
//! and what its tests need around it:
//!
//! * [`CTable`] and [`CTimeFrame`]: page-aligned frames owned by the
//!   harness, written only by the C functions (and by the fault
//!   injectors, [`CTable::store_u64`], which stand for a broken producer);
//! * [`XenVcpu`]: a vCPU's `struct vcpu_runstate_info` kept exactly as
//!   Xen's `vcpu_runstate_change()` keeps it, beside its record's private
//!   seq;
//! * [`with_wmb_hook`]: runs code at every `smp_wmb()` of the producer, to
//!   hold it mid-update (after W1, before W4, before a magic store);
//! * [`Rng`]: the tests' deterministic generator.
#![allow(unsafe_code)]

use std::{
    alloc::{self, Layout},
    ffi::{c_uint, c_void},
    ptr::NonNull,
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc,
    },
};

use vstats_abi::record::{DOMAIN_STATS_SIZE, VCPU_STATS_SIZE};
use vstats_consumer::mem::MemView;

/// x86's page, the shim's `PAGE_SIZE`.
pub const PAGE_SIZE: usize = 4096;

/// Xen's `RUNSTATE_*` (public/vcpu.h), as `vcpu_runstate_info.state`
/// holds them.
pub const RUNSTATE_RUNNING: i32 = 0;
/// `RUNSTATE_runnable`.
pub const RUNSTATE_RUNNABLE: i32 = 1;
/// `RUNSTATE_blocked`.
pub const RUNSTATE_BLOCKED: i32 = 2;
/// `RUNSTATE_offline`.
pub const RUNSTATE_OFFLINE: i32 = 3;
/// `XEN_RUNSTATE_UPDATE`: bit 63 of `state_entry_time` while Xen copies
/// the runstate to a guest's area.
pub const XEN_RUNSTATE_UPDATE: u64 = 1 << 63;

/// The extracted producer files and the patch each came from last, one
/// `path patch` line each (written by `build.rs`).
pub const SOURCES: &str = include_str!(concat!(env!("OUT_DIR"), "/sources.txt"));
/// The C file as compiled.
pub const PRODUCER_C: &str = include_str!(concat!(
    env!("OUT_DIR"),
    "/xen-src/xen/common/stats_table.c"
));
/// The producer's header as compiled.
pub const PRODUCER_H: &str = include_str!(concat!(
    env!("OUT_DIR"),
    "/xen-src/xen/include/xen/stats_table.h"
));

/// Xen's `struct vcpu_runstate_info` (public/vcpu.h): `int state`, then
/// `state_entry_time` and `time[4]` (ns of system time).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRunstateInfo {
    /// The current state, `RUNSTATE_*`.
    pub state: i32,
    /// When it was entered (`NOW()`), with [`XEN_RUNSTATE_UPDATE`] while
    /// a guest copy is being written.
    pub state_entry_time: u64,
    /// Time spent in each state up to `state_entry_time`.
    pub time: [u64; 4],
}

mod ffi {
    use super::*;

    pub type Hook = unsafe extern "C" fn(ctx: *mut c_void);

    extern "C" {
        pub fn stats_table_nr_frames(nr_records: c_uint, size: c_uint) -> c_uint;
        pub fn stats_table_format(
            base: *mut c_void,
            nr_frames: c_uint,
            nr_records: c_uint,
            size: c_uint,
            generation: u64,
        );
        pub fn stats_table_write_vcpu(
            base: *mut c_void,
            id: c_uint,
            seq: *mut u32,
            rs: *const VcpuRunstateInfo,
        );
        pub fn stats_table_write_domain(
            base: *mut c_void,
            seq: *mut u32,
            vcpus_online: u64,
            vcpus_max: u64,
            uptime_ns: u64,
        );
        pub fn stats_table_publish(base: *mut c_void, magic: u32);
        pub fn stats_table_retire_record(base: *mut c_void, idx: c_uint, seq: *mut u32);
        pub fn stats_table_unpublish(base: *mut c_void);
        pub fn stats_time_format(frame: *mut c_void);
        pub fn stats_time_write(
            frame: *mut c_void,
            tsc_timestamp: u64,
            system_time: u64,
            tsc_to_system_mul: u32,
            tsc_shift: i8,
            flags: u8,
        );
        pub fn stats_time_publish(frame: *mut c_void);
        pub fn xen_shim_set_wmb_hook(hook: Option<Hook>, ctx: *mut c_void);
    }
}

/// `stats_table_nr_frames()`: the frames of a table of `nr_records`
/// records of `size` bytes.
pub fn nr_frames(nr_records: u32, size: u32) -> u32 {
    // SAFETY: pure arithmetic on its arguments.
    unsafe { ffi::stats_table_nr_frames(nr_records, size) }
}

/// Page-aligned, zeroed memory the harness owns, `len` bytes (a multiple
/// of [`PAGE_SIZE`]); shared with [`MemView`]s, which keep it alive.
#[derive(Debug)]
pub struct Frames {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: after a table is formatted the memory is only accessed with
// atomic loads and stores (the C producer's write_atomic(), the views'
// loads, `store_*`), which any thread may do.
unsafe impl Send for Frames {}
// SAFETY: as for `Send`.
unsafe impl Sync for Frames {}

impl Frames {
    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len, PAGE_SIZE).expect("a page-aligned layout")
    }

    /// `nr` zeroed frames.
    pub fn new(nr: usize) -> Frames {
        let len = nr.max(1) * PAGE_SIZE;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc::alloc_zeroed(Frames::layout(len)) };
        let ptr = NonNull::new(p).unwrap_or_else(|| alloc::handle_alloc_error(Frames::layout(len)));
        Frames { ptr, len }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bytes (never: at least one frame).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first byte, for a producer that is handed the frames (the Rust
    /// producer's `Frames::contiguous`); it must access them atomically.
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    fn base(&self) -> *mut c_void {
        self.ptr.as_ptr().cast()
    }

    fn word(&self, off: usize) -> &AtomicU64 {
        assert!(
            off % 8 == 0 && off + 8 <= self.len,
            "word {off} outside the frames"
        );
        // SAFETY: in bounds and 8-aligned (checked; the base is page
        // aligned), and the memory is only accessed atomically while
        // shared (see `Sync`); the reference lives no longer than `self`.
        unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().wrapping_add(off).cast()) }
    }

    fn word32(&self, off: usize) -> &AtomicU32 {
        assert!(
            off % 4 == 0 && off + 4 <= self.len,
            "word {off} outside the frames"
        );
        // SAFETY: as in `word`, for 4 bytes.
        unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().wrapping_add(off).cast()) }
    }

    /// A copy of every byte, read with relaxed 64-bit atomic loads.
    pub fn bytes(&self) -> Vec<u8> {
        (0..self.len / 8)
            .flat_map(|i| self.word(i * 8).load(Ordering::Relaxed).to_ne_bytes())
            .collect()
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), Frames::layout(self.len)) }
    }
}

/// A view of `frames` for the consumer and the checker, keeping them
/// alive.
fn view_of(frames: &Arc<Frames>) -> MemView<'static> {
    let owner: Box<dyn Send + Sync> = Box::new(Arc::clone(frames));
    // SAFETY: (1) the owner keeps the frames allocated as long as the view
    // lives; (2) once a table is formatted, this process writes them only
    // with atomic stores (the C producer through the shim's
    // write_atomic(), `CTable::store_*`).
    unsafe { MemView::from_raw_parts(frames.ptr.as_ptr(), frames.len, Some(owner)) }
        .expect("page-aligned frames")
}

/// A table in harness-owned frames, written by the C producer.
#[derive(Debug)]
pub struct CTable {
    frames: Arc<Frames>,
    nr_records: u32,
    size: u32,
}

impl CTable {
    /// Allocates [`nr_frames`] frames and lays them out with
    /// `stats_table_format()` (magic 0: not published).
    ///
    /// # Panics
    ///
    /// When `size` is not one of the two standard records (the C asserts
    /// it too).
    pub fn format(nr_records: u32, size: u32, generation: u64) -> CTable {
        assert!(size == VCPU_STATS_SIZE || size == DOMAIN_STATS_SIZE);
        let n = nr_frames(nr_records, size);
        let frames = Frames::new(n as usize);
        // SAFETY: the frames are `n` pages, writable, not yet shared with
        // anyone (no view exists), so the C's plain stores race with
        // nothing.
        unsafe { ffi::stats_table_format(frames.base(), n, nr_records, size, generation) };
        CTable {
            frames: Arc::new(frames),
            nr_records,
            size,
        }
    }

    /// The frames.
    pub fn frames(&self) -> &Frames {
        &self.frames
    }

    /// Records in the table.
    pub fn nr_records(&self) -> u32 {
        self.nr_records
    }

    /// A view of the whole mapping, as a consumer maps it.
    pub fn view(&self) -> MemView<'static> {
        view_of(&self.frames)
    }

    /// `stats_table_write_vcpu()`: one update of vCPU `id` from `rs`,
    /// advancing `seq`.
    pub fn write_vcpu(&self, id: u32, seq: &mut u32, rs: &VcpuRunstateInfo) {
        assert!(self.size == VCPU_STATS_SIZE && id < self.nr_records);
        // SAFETY: the record lies inside the frames (id < nr_records), the
        // C stores into it atomically, and `seq` and `rs` are valid.
        unsafe { ffi::stats_table_write_vcpu(self.frames.base(), id, seq, rs) }
    }

    /// `stats_table_write_domain()`.
    pub fn write_domain(&self, seq: &mut u32, online: u64, max: u64, uptime_ns: u64) {
        assert!(self.size == DOMAIN_STATS_SIZE);
        // SAFETY: record 0 lies inside the frames; atomic stores.
        unsafe { ffi::stats_table_write_domain(self.frames.base(), seq, online, max, uptime_ns) }
    }

    /// `stats_table_publish()`.
    pub fn publish(&self, magic: u32) {
        // SAFETY: one atomic store into the header.
        unsafe { ffi::stats_table_publish(self.frames.base(), magic) }
    }

    /// `stats_table_retire_record()`.
    pub fn retire_record(&self, idx: u32, seq: &mut u32) {
        assert!(idx < self.nr_records);
        // SAFETY: the record lies inside the frames; atomic stores.
        unsafe { ffi::stats_table_retire_record(self.frames.base(), idx, seq) }
    }

    /// `stats_table_unpublish()`.
    pub fn unpublish(&self) {
        // SAFETY: one atomic store into the header.
        unsafe { ffi::stats_table_unpublish(self.frames.base()) }
    }

    /// Every byte of the frames.
    pub fn bytes(&self) -> Vec<u8> {
        self.frames.bytes()
    }

    /// Loads the 64-bit word at byte `off`.
    pub fn load_u64(&self, off: usize) -> u64 {
        self.frames.word(off).load(Ordering::Relaxed)
    }

    /// Loads the 32-bit word at byte `off`.
    pub fn load_u32(&self, off: usize) -> u32 {
        self.frames.word32(off).load(Ordering::Relaxed)
    }

    /// Byte offset of record `i`, from the header the C wrote (`offset +
    /// i * stride`).
    pub fn record_offset(&self, i: u32) -> usize {
        let (offset, stride) = (self.load_u32(4) as usize, self.load_u32(12) as usize);
        offset + i as usize * stride
    }

    /// Fault injection: stores `v` at byte `off` behind the producer's
    /// back (what a broken producer would have written).
    pub fn store_u64(&self, off: usize, v: u64) {
        self.frames.word(off).store(v, Ordering::Relaxed);
    }

    /// Fault injection: a 32-bit store (a seq word, the magic).
    pub fn store_u32(&self, off: usize, v: u32) {
        self.frames.word32(off).store(v, Ordering::Relaxed);
    }
}

/// The time frame, written by the C producer.
#[derive(Debug)]
pub struct CTimeFrame {
    frame: Arc<Frames>,
}

impl CTimeFrame {
    /// One frame laid out by `stats_time_format()`.
    pub fn format() -> CTimeFrame {
        let frame = Frames::new(1);
        // SAFETY: one page, not shared yet.
        unsafe { ffi::stats_time_format(frame.base()) };
        CTimeFrame {
            frame: Arc::new(frame),
        }
    }

    /// `stats_time_write()`.
    pub fn write(&self, tsc_timestamp: u64, system_time: u64, mul: u32, shift: i8, flags: u8) {
        // SAFETY: the frame is one page; the C reads and stores its
        // words atomically.
        unsafe {
            ffi::stats_time_write(
                self.frame.base(),
                tsc_timestamp,
                system_time,
                mul,
                shift,
                flags,
            )
        }
    }

    /// `stats_time_publish()`.
    pub fn publish(&self) {
        // SAFETY: one atomic store.
        unsafe { ffi::stats_time_publish(self.frame.base()) }
    }

    /// A view of the frame.
    pub fn view(&self) -> MemView<'static> {
        view_of(&self.frame)
    }

    /// Every byte of the frame.
    pub fn bytes(&self) -> Vec<u8> {
        self.frame.bytes()
    }
}

struct HookCtx<'a> {
    f: &'a mut dyn FnMut(),
}

unsafe extern "C" fn call_hook(ctx: *mut c_void) {
    // SAFETY: `ctx` is the `HookCtx` that `with_wmb_hook` set for this
    // thread and clears before it goes out of scope.
    let ctx = unsafe { &mut *ctx.cast::<HookCtx<'_>>() };
    (ctx.f)();
}

/// Runs `body` with `hook` called at every `smp_wmb()` the C producer
/// executes on this thread (after the barrier's fence): the producer is
/// held there until `hook` returns. `hook` must not panic (it runs inside a
/// C call; a panic there aborts the process): record what it sees and
/// assert after.
pub fn with_wmb_hook<R>(mut hook: impl FnMut(), body: impl FnOnce() -> R) -> R {
    struct Unset;
    impl Drop for Unset {
        fn drop(&mut self) {
            // SAFETY: clearing the hook of this thread.
            unsafe { ffi::xen_shim_set_wmb_hook(None, std::ptr::null_mut()) }
        }
    }
    let mut ctx = HookCtx { f: &mut hook };
    // SAFETY: `ctx` outlives every call of the hook: `Unset` clears it
    // before `ctx` is dropped, and only this thread's C calls see it.
    unsafe { ffi::xen_shim_set_wmb_hook(Some(call_hook), (&raw mut ctx).cast()) };
    let _unset = Unset;
    body()
}

/// A vCPU as Xen's scheduler keeps it: its `struct vcpu_runstate_info`
/// and its record's private seq (P8).
#[derive(Clone, Copy, Debug)]
pub struct XenVcpu {
    /// `v->runstate`.
    pub runstate: VcpuRunstateInfo,
    /// The record's seq, which only the writer knows.
    pub seq: u32,
}

impl XenVcpu {
    /// A vCPU created at `now`: offline, entered then, no time accrued
    /// (Xen's `sched_init_vcpu()` for a non-idle vCPU).
    pub fn new(now: u64) -> XenVcpu {
        XenVcpu {
            runstate: VcpuRunstateInfo {
                state: RUNSTATE_OFFLINE,
                state_entry_time: now,
                time: [0; 4],
            },
            seq: 0,
        }
    }

    /// Xen's `vcpu_runstate_change(v, new_state, new_entry_time)`
    /// (common/sched/core.c): nothing when the state does not change;
    /// otherwise, if time went forward since the entry, the elapsed time
    /// goes to the old state and the entry moves to `new_entry_time`
    /// (an entry time in the past leaves both alone), then the state
    /// changes. Returns whether it changed (when the caller then writes
    /// the record).
    pub fn runstate_change(&mut self, new_state: i32, new_entry_time: u64) -> bool {
        let rs = &mut self.runstate;
        if rs.state == new_state {
            return false;
        }
        // s_time_t arithmetic, as Xen's.
        let delta = (new_entry_time as i64).wrapping_sub(rs.state_entry_time as i64);
        if delta > 0 {
            let old = usize::try_from(rs.state).expect("a runstate");
            rs.time[old] += delta as u64;
            rs.state_entry_time = new_entry_time;
        }
        rs.state = new_state;
        true
    }
}

/// A deterministic generator (SplitMix64): same seed, same sequence.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// The generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `[0, n)` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A domain's vCPUs driven as Xen's scheduler drives them, each change
/// written to a [`CTable`] as the Xen glue does: `vcpu_runstate_change()`
/// on the model, then `stats_table_write_vcpu()` with the vCPU's
/// runstate and private seq, under what would be its schedule lock.
#[derive(Debug)]
pub struct Sched {
    /// The vCPU table.
    pub table: CTable,
    /// `d->vcpu[]`.
    pub vcpus: Vec<XenVcpu>,
    /// The fake `NOW()`: only grows.
    pub now: u64,
    /// Runstate changes made (those that changed the state).
    pub changes: u64,
    /// Record updates written.
    pub writes: u64,
    rng: Rng,
}

impl Sched {
    /// A table of `nr` slots for `nr` vCPUs created at a `NOW()` drawn from
    /// `seed`, laid out and seeded (P10), not yet published.
    pub fn new(nr: u32, seed: u64, generation: u64) -> Sched {
        let mut rng = Rng::new(seed);
        let now = 1_000_000_000 + rng.below(1 << 40);
        let table = CTable::format(nr, VCPU_STATS_SIZE, generation);
        let mut vcpus: Vec<XenVcpu> = (0..nr).map(|_| XenVcpu::new(now)).collect();
        let mut writes = 0;
        for (i, v) in vcpus.iter_mut().enumerate() {
            table.write_vcpu(i as u32, &mut v.seq, &v.runstate);
            writes += 1;
        }
        Sched {
            table,
            vcpus,
            now,
            changes: 0,
            writes,
            rng,
        }
    }

    /// The next state of a vCPU in `state`, as a scheduler moves it:
    /// running is preempted, blocks or (rarely) goes down; runnable is
    /// scheduled; blocked wakes; offline (rarely) comes up. Sometimes the
    /// state asked for is the current one, which Xen ignores.
    fn next_state(&mut self, state: i32) -> i32 {
        let r = self.rng.below(100);
        match state {
            RUNSTATE_RUNNING if r < 50 => RUNSTATE_RUNNABLE,
            RUNSTATE_RUNNING if r < 97 => RUNSTATE_BLOCKED,
            RUNSTATE_RUNNING if r < 98 => RUNSTATE_OFFLINE,
            RUNSTATE_RUNNABLE if r < 95 => RUNSTATE_RUNNING,
            RUNSTATE_BLOCKED if r < 95 => RUNSTATE_RUNNABLE,
            RUNSTATE_OFFLINE if r < 30 => RUNSTATE_RUNNABLE,
            s => s,
        }
    }

    /// One scheduling event: `NOW()` advances by 0 to 100 us (0 now and
    /// then: two changes in one `NOW()`), a vCPU changes state, and its
    /// record is written when the state changed. Every 16th write hands
    /// the C the copy Xen holds while it writes a guest's runstate area
    /// (`XEN_RUNSTATE_UPDATE` set in the entry time). Returns the vCPU
    /// written, if any.
    pub fn step(&mut self) -> Option<u32> {
        let i = self.rng.below(self.vcpus.len() as u64) as usize;
        if self.rng.below(8) != 0 {
            self.now += self.rng.below(100_000);
        }
        let state = self.next_state(self.vcpus[i].runstate.state);
        let now = self.now;
        let v = &mut self.vcpus[i];
        if !v.runstate_change(state, now) {
            return None;
        }
        self.changes += 1;
        let mut rs = v.runstate;
        if self.writes % 16 == 5 {
            rs.state_entry_time |= XEN_RUNSTATE_UPDATE;
        }
        self.table.write_vcpu(i as u32, &mut v.seq, &rs);
        self.writes += 1;
        Some(i as u32)
    }

    /// P15 as Xen's `domain_kill` does it: every vCPU's record retired with
    /// its own seq, then the magic cleared.
    pub fn retire(&mut self) {
        for (i, v) in self.vcpus.iter_mut().enumerate() {
            self.table.retire_record(i as u32, &mut v.seq);
        }
        self.table.unpublish();
    }
}
