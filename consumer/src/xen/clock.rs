//! Xen system time (`NOW()`, ns since Xen booted) read in dom0 user space:
//! the clock of tables whose header says `clock = 2`
//! ([`crate::runstate::TimeBase::XenSystem`]; `docs/abi-r3-design.md`,
//! section 4.2).
//!
//! Xen publishes its system time to each vCPU as the pvclock
//! `struct vcpu_time_info` (Xen's `xen/include/public/xen.h`):
//!
//! | byte | type | field |
//! |---|---|---|
//! | 0 | `uint32_t` | `version`: odd while Xen updates the rest ("Updates to the following values are preceded and followed by an increment of 'version'") |
//! | 4 | `uint32_t` | `pad0` |
//! | 8 | `uint64_t` | `tsc_timestamp`: TSC at the last update |
//! | 16 | `uint64_t` | `system_time`: ns since boot at that TSC |
//! | 24 | `uint32_t` | `tsc_to_system_mul` |
//! | 28 | `int8_t` | `tsc_shift` |
//! | 29 | `uint8_t` | `flags` (interface > 0x040600): `XEN_PVCLOCK_TSC_STABLE_BIT` (1 << 0), `XEN_PVCLOCK_GUEST_STOPPED` (1 << 1) |
//! | 32 | | `/* 32 bytes */` |
//!
//! and "Current system time: `system_time + ((((tsc - tsc_timestamp) <<
//! tsc_shift) * tsc_to_system_mul) >> 32)`" (the same header), a negative
//! shift being a right shift (Xen's `scale_delta()` in
//! `xen/arch/x86/time.c`). `struct vcpu_info` is 64 bytes on x86 (`/* 64
//! bytes (x86) */`: two flag bytes, `xen_ulong_t evtchn_pending_sel`,
//! `struct arch_vcpu_info` of 16 bytes on x86-64 and 24 on x86-32, then
//! `time`), so `time` is at byte 32 of each; `struct shared_info` starts
//! with `vcpu_info[XEN_LEGACY_MAX_VCPUS]`, 32 of them
//! (`arch-x86/xen.h`).
//!
//! The module is split so that everything but the system calls is a pure
//! function, tested with synthetic values: [`VcpuTimeInfo::system_time_at`]
//! (the arithmetic, 128-bit), [`read_time_info`] (the `version` seqlock,
//! with the TSC read inside the window, over a [`MemView`]),
//! [`shared_info_frame`] (dom0's frame in a `xc_domaininfo_t`),
//! [`pick_xenctrl`] (which `libxenctrl.so.*`). [`XenSystemClock`] is the
//! thin part: load libxenctrl, ask dom0's `shared_info_frame`, map that
//! frame read-only with libxenforeignmemory, and on each
//! [`Clock::now_ns`] read the copy of the CPU it runs on.
//!
//! # A known limit: the `shared_info` copy may be stale
//!
//! Xen writes a vCPU's time to wherever its `vcpu_info` lives
//! (`__update_vcpu_system_time()` writes `vcpu_info(v, time)`, that is
//! `v->vcpu_info_area.map`). That is the `shared_info` slot only until the
//! guest moves it with `VCPUOP_register_vcpu_info`, which Linux does for
//! every vCPU (`xen_vcpu_setup()`, a panic if it fails in current
//! kernels). From then on the `shared_info` slot is no longer written. So
//! [`XenSystemClock::now_ns`] checks freshness: a copy whose extrapolation
//! spans more than [`MAX_AGE_NS`] is refused (`None`), since Xen rewrites
//! a live copy at every context switch and at its per-second calibration.
//! On a Linux dom0 this makes the clock unavailable.
//!
//! # The time frame
//!
//! The way out (the design's open question 2) is a frame Xen keeps
//! current for the tables' readers: resource type 3, id 2 of the table's
//! domain, one frame holding `struct xen_stats_time`
//! ([`vstats_abi::header::StatsTime`]): a magic, a size, then bytes 8..40
//! laid out as `struct vcpu_time_info`, read with the same seqlock reader
//! ([`read_time_info`] at byte 8) and the same freshness bound. The Xen
//! backend maps it with each clock-2 table and attaches a
//! [`TimeFrameClock`] to it ([`vstats_consumer::Table::set_clock`]); this
//! module's [`XenSystemClock`] is the fallback for a hypervisor without
//! the frame.
#![allow(unsafe_code)]

use std::{
    ffi::{c_int, c_uint, c_void},
    io,
    ptr::NonNull,
    sync::atomic::{fence, Ordering},
};

use super::{
    foreign::quiet_logger,
    loader::{Loaded, FOREIGNMEMORY_LIB, FOREIGNMEMORY_LIB_ENV},
    Error, Interface, Result,
};
use crate::{mem::MemView, runstate::Clock};
use vstats_abi::header::{
    time_off, STATS_TIME_INFO_OFFSET, STATS_TIME_MAGIC, STATS_TIME_MAX_AGE_S, STATS_TIME_SIZE,
    STATS_TIME_TSC_STABLE,
};

/// Environment variable naming the libxenctrl to load (tests, unusual
/// installs); without it the newest `libxenctrl.so.*` of the usual
/// library directories ([`pick_xenctrl`]).
pub const CONTROL_LIB_ENV: &str = "VSTATS_XENCTRL_LIB";

/// `XEN_PVCLOCK_TSC_STABLE_BIT` (`xen/include/public/xen.h`): every
/// vCPU's copy gives the same time (Xen booted with `clocksource=tsc`).
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0;
/// `XEN_PVCLOCK_GUEST_STOPPED` (`xen/include/public/xen.h`).
pub const XEN_PVCLOCK_GUEST_STOPPED: u8 = 1 << 1;
/// `sizeof(struct vcpu_time_info)` (`/* 32 bytes */`).
pub const VCPU_TIME_INFO_SIZE: u64 = 32;
/// `sizeof(struct vcpu_info)` on x86 (`/* 64 bytes (x86) */`).
pub const VCPU_INFO_SIZE: u64 = 64;
/// Offset of `time` in `struct vcpu_info` on x86 (2 flag bytes padded to
/// 8, `evtchn_pending_sel`, 16 bytes of `arch_vcpu_info` on x86-64; 2 + 2
/// + 4 + 24 on x86-32).
pub const VCPU_INFO_TIME_OFFSET: u64 = 32;
/// `XEN_LEGACY_MAX_VCPUS` (`arch-x86/xen.h`): `vcpu_info` slots in
/// `shared_info`.
pub const XEN_LEGACY_MAX_VCPUS: u32 = 32;
/// Offset of `shared_info_frame` (`uint64_aligned_t`, "GMFN of
/// shared_info struct") in `struct xen_domctl_getdomaininfo`, which
/// libxenctrl's `xc_domaininfo_t` is: after `domid_t domain`, `uint16_t
/// pad1` (implicit padding before 4.17), `uint32_t flags` and five
/// `uint64_aligned_t` page counts. The prefix up to it is the same in the
/// `domctl.h` of Xen 4.13, 4.17, 4.18, 4.19 and the development tree of
/// 2026 (`XEN_DOMCTL_INTERFACE_VERSION` 0x18), although the structure's
/// tail and the interface version change between releases.
pub const DOMAININFO_SHARED_INFO_FRAME: usize = 48;
/// Bytes given to `xc_domain_getinfolist` for one `xc_domaininfo_t`: the
/// structure is about 128 bytes (its tail, `arch_config`, changes between
/// releases); 4 KiB leaves room for any growth.
pub const DOMAININFO_BUFFER: usize = 4096;
/// A copy whose `system_time` is older than this (10 s) is stale (see the
/// module docs): Xen rewrites a live copy at least every second. The same
/// bound as the time frame's (`XEN_STATS_TIME_MAX_AGE_S`).
pub const MAX_AGE_NS: u64 = STATS_TIME_MAX_AGE_S as u64 * 1_000_000_000;
/// Attempts of [`read_time_info`] per reading: Xen's update window is a
/// few stores long.
pub const MAX_ATTEMPTS: u32 = 64;

/// One consistent copy of a `struct vcpu_time_info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VcpuTimeInfo {
    /// `version`, even.
    pub version: u32,
    /// `tsc_timestamp`.
    pub tsc_timestamp: u64,
    /// `system_time`, ns.
    pub system_time: u64,
    /// `tsc_to_system_mul`: ns per (shifted) tick, a 32.32 fraction.
    pub tsc_to_system_mul: u32,
    /// `tsc_shift`, possibly negative.
    pub tsc_shift: i8,
    /// `flags` (`XEN_PVCLOCK_*`).
    pub flags: u8,
}

impl VcpuTimeInfo {
    /// Decodes the 32 bytes of a `struct vcpu_time_info` in this machine's
    /// byte order; `None` when `bytes` is shorter.
    pub fn from_bytes(bytes: &[u8]) -> Option<VcpuTimeInfo> {
        let u32_at = |o: usize| Some(u32::from_ne_bytes(bytes.get(o..o + 4)?.try_into().ok()?));
        let u64_at = |o: usize| Some(u64::from_ne_bytes(bytes.get(o..o + 8)?.try_into().ok()?));
        Some(VcpuTimeInfo {
            version: u32_at(0)?,
            tsc_timestamp: u64_at(8)?,
            system_time: u64_at(16)?,
            tsc_to_system_mul: u32_at(24)?,
            tsc_shift: i8::from_ne_bytes([*bytes.get(28)?]),
            flags: *bytes.get(29)?,
        })
    }

    /// Xen system time at TSC value `tsc`: `system_time + (((tsc -
    /// tsc_timestamp) << tsc_shift) * tsc_to_system_mul >> 32)`, with a
    /// negative shift as a right shift, in 128-bit arithmetic (the
    /// product of a 64-bit delta and the 32-bit multiplier needs up to 96
    /// bits). A TSC before `tsc_timestamp` (another CPU's copy) scales
    /// the difference and subtracts it, as Xen's `get_s_time_fixed()`
    /// does.
    ///
    /// `None` when the answer does not fit in 63 bits (an inactive
    /// value), is negative, or when `tsc_shift` is above 32 (Xen's
    /// calibration never gives one; a larger shift could overflow 128
    /// bits).
    pub fn system_time_at(&self, tsc: u64) -> Option<u64> {
        let (delta, ahead) = match tsc.checked_sub(self.tsc_timestamp) {
            Some(d) => (d, true),
            None => (self.tsc_timestamp - tsc, false),
        };
        let shifted = match self.tsc_shift {
            s @ 0.. if s > 32 => return None,
            s @ 0.. => u128::from(delta) << s,
            s => u128::from(delta) >> u32::from(s.unsigned_abs()).min(127),
        };
        let ns = u64::try_from((shifted * u128::from(self.tsc_to_system_mul)) >> 32).ok()?;
        let t = if ahead {
            self.system_time.checked_add(ns)?
        } else {
            self.system_time.checked_sub(ns)?
        };
        vstats_abi::record::is_active(t).then_some(t)
    }

    /// Whether Xen marks every vCPU's copy as giving the same time
    /// ([`XEN_PVCLOCK_TSC_STABLE_BIT`]).
    pub fn tsc_stable(&self) -> bool {
        self.flags & XEN_PVCLOCK_TSC_STABLE_BIT != 0
    }
}

/// Offset in `shared_info` of `vcpu_info[cpu].time`: slots exist for the
/// first [`XEN_LEGACY_MAX_VCPUS`] vCPUs; a higher one reads vCPU 0's copy.
pub const fn time_info_offset(cpu: u32) -> u64 {
    let slot = if cpu < XEN_LEGACY_MAX_VCPUS { cpu } else { 0 };
    slot as u64 * VCPU_INFO_SIZE + VCPU_INFO_TIME_OFFSET
}

/// Why [`read_time_info`] gave no copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The 32 bytes at `off` are not inside the view, or not 8-aligned.
    #[error("no vcpu_time_info at byte {off} of the mapping")]
    OutOfBounds {
        /// The offset asked for.
        off: u64,
    },
    /// Every attempt saw an odd `version`, or one that changed around the
    /// copy.
    #[error("vcpu_time_info kept changing (version {version}) for {attempts} attempts")]
    Busy {
        /// The last version seen.
        version: u32,
        /// Attempts made.
        attempts: u32,
    },
}

/// Copies the `struct vcpu_time_info` at byte `off` of `view` under its
/// `version` seqlock and reads the TSC (`rdtsc`) inside the window, so
/// that the copy and the TSC belong together: `version` is read, must be
/// even; the fields are copied and the TSC read; `version` is read again
/// and must be unchanged (the two `Acquire` fences order the relaxed loads
/// as Linux's `read_seqbegin`/`read_seqretry`, pairing with Xen's
/// `smp_wmb()` around its update in `__update_vcpu_system_time()`). At
/// most `max_attempts` attempts.
///
/// # Errors
///
/// [`ReadError::OutOfBounds`], [`ReadError::Busy`].
pub fn read_time_info(
    view: &MemView<'_>,
    off: u64,
    mut rdtsc: impl FnMut() -> u64,
    max_attempts: u32,
) -> std::result::Result<(VcpuTimeInfo, u64), ReadError> {
    let oob = ReadError::OutOfBounds { off };
    let at = |k: u64| off.checked_add(k).ok_or(oob);
    let mut version = 0;
    for _ in 0..max_attempts {
        version = view.load::<u32>(off).ok_or(oob)?;
        if version % 2 == 1 {
            std::hint::spin_loop();
            continue;
        }
        fence(Ordering::Acquire);
        let info = VcpuTimeInfo {
            version,
            tsc_timestamp: view.load::<u64>(at(8)?).ok_or(oob)?,
            system_time: view.load::<u64>(at(16)?).ok_or(oob)?,
            tsc_to_system_mul: view.load::<u32>(at(24)?).ok_or(oob)?,
            tsc_shift: i8::from_ne_bytes([view.load::<u8>(at(28)?).ok_or(oob)?]),
            flags: view.load::<u8>(at(29)?).ok_or(oob)?,
        };
        let tsc = rdtsc();
        fence(Ordering::Acquire);
        if view.load::<u32>(off).ok_or(oob)? == version {
            return Ok((info, tsc));
        }
    }
    Err(ReadError::Busy {
        version,
        attempts: max_attempts,
    })
}

/// `shared_info_frame` of a `xc_domaininfo_t` that `xc_domain_getinfolist`
/// filled for `domid` (`buf` at least [`DOMAININFO_SHARED_INFO_FRAME`] + 8
/// bytes); `None` when the buffer is shorter or describes another domain
/// (the list starts at the first domain at or after the one asked for).
pub fn shared_info_frame(buf: &[u8], domid: u16) -> Option<u64> {
    let domain = u16::from_ne_bytes(buf.get(0..2)?.try_into().ok()?);
    let o = DOMAININFO_SHARED_INFO_FRAME;
    let frame = u64::from_ne_bytes(buf.get(o..o + 8)?.try_into().ok()?);
    (domain == domid).then_some(frame)
}

/// The newest libxenctrl among file names (`libxenctrl.so.4.17`,
/// `libxenctrl.so.4.17.0`, ...): the library's soname carries the Xen
/// release (`tools/libs/libs.mk`: `lib$(LIB_FILE_NAME).so.$(MAJOR)`,
/// `MAJOR` the Xen version), so there is no one name to `dlopen`.
/// Versions compare numerically (4.17 is newer than 4.9); other names are
/// ignored.
pub fn pick_xenctrl<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Option<String> {
    const PREFIX: &str = "libxenctrl.so.";
    names
        .into_iter()
        .filter_map(|n| {
            let n = n.as_ref();
            let version: Option<Vec<u64>> = n
                .strip_prefix(PREFIX)?
                .split('.')
                .map(|p| p.parse().ok())
                .collect();
            Some((version?, n.to_owned()))
        })
        .max()
        .map(|(_, n)| n)
}

/// Directories searched for `libxenctrl.so.*`.
const LIB_DIRS: [&str; 7] = [
    "/usr/lib/x86_64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib64",
    "/usr/local/lib",
    "/usr/lib",
    "/lib64",
    "/lib",
];

/// The libxenctrl to load: `$VSTATS_XENCTRL_LIB` when set (by
/// [`Loaded::load`]), else the newest `libxenctrl.so.*` of the first
/// directory that has one, else the development name `libxenctrl.so`.
fn xenctrl_name() -> String {
    LIB_DIRS
        .iter()
        .find_map(|dir| {
            let names = std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok());
            let best = pick_xenctrl(names.filter_map(|e| e.file_name().into_string().ok()))?;
            Some(format!("{dir}/{best}"))
        })
        .unwrap_or_else(|| "libxenctrl.so".to_owned())
}

// The C signatures, from Xen's tools/include/xenctrl.h and
// tools/include/xenforeignmemory.h.
type XcOpenFn = unsafe extern "C" fn(*mut c_void, *mut c_void, c_uint) -> *mut c_void;
type XcCloseFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type XcGetinfolistFn = unsafe extern "C" fn(*mut c_void, u32, c_uint, *mut c_void) -> c_int;
type FmemOpenFn = unsafe extern "C" fn(*mut c_void, c_uint) -> *mut c_void;
type FmemCloseFn = unsafe extern "C" fn(*mut c_void) -> c_int;
// `xen_pfn_t` is `unsigned long` on x86 (`arch-x86/xen.h`): 64-bit on
// x86-64, the only architecture this clock runs on.
type FmemMapFn =
    unsafe extern "C" fn(*mut c_void, u32, c_int, usize, *const u64, *mut c_int) -> *mut c_void;
type FmemUnmapFn = unsafe extern "C" fn(*mut c_void, *mut c_void, usize) -> c_int;

/// Asks libxenctrl for dom0's `shared_info_frame`.
fn dom0_shared_info_frame() -> Result<u64> {
    let lib = Loaded::load(CONTROL_LIB_ENV, &xenctrl_name())?;
    // SAFETY: the type is xenctrl.h's; `lib` outlives every call below
    // (it is dropped at the end of this function). Same for the two
    // symbols after it.
    let open: XcOpenFn = unsafe { lib.symbol("xc_interface_open") }?;
    // SAFETY: as above.
    let close: XcCloseFn = unsafe { lib.symbol("xc_interface_close") }?;
    // SAFETY: as above.
    let getinfolist: XcGetinfolistFn = unsafe { lib.symbol("xc_domain_getinfolist") }?;
    let logger = quiet_logger();
    // SAFETY: `open` is xc_interface_open; both loggers are the quiet
    // logger, valid forever and only called through; flags 0.
    let xch = unsafe { open(logger, logger, 0) };
    let xch = NonNull::new(xch).ok_or_else(|| Error::Open {
        interface: Interface::Control,
        io: io::Error::last_os_error(),
    })?;
    let mut buf = vec![0u64; DOMAININFO_BUFFER / 8];
    // SAFETY: `xch` is open; `buf` is an 8-aligned, writable buffer of
    // DOMAININFO_BUFFER bytes, room for one `xc_domaininfo_t` (about 128
    // bytes in every release), the one entry asked for.
    let n = unsafe { getinfolist(xch.as_ptr(), 0, 1, buf.as_mut_ptr().cast()) };
    let err = (n != 1).then(|| match n {
        0 => io::Error::from_raw_os_error(libc::ESRCH),
        _ => io::Error::last_os_error(),
    });
    // SAFETY: `xch` came from `open` and is closed once, here.
    unsafe { close(xch.as_ptr()) };
    if let Some(io) = err {
        return Err(Error::DomainInfo { domid: 0, io });
    }
    let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
    shared_info_frame(&bytes, 0).ok_or_else(|| Error::DomainInfo {
        domid: 0,
        io: io::Error::from_raw_os_error(libc::ESRCH),
    })
}

/// Keeps dom0's `shared_info` frame mapped: unmaps it and closes the
/// foreign-memory handle in `Drop`.
///
/// Invariants: 1. `addr` is a one-page mapping `map` returned for
/// `fmem`, unmapped only in `Drop`; 2. `fmem` is open, closed only in
/// `Drop`; 3. the function pointers come from `_lib`, dropped after them.
struct SharedInfoMapping {
    fmem: NonNull<c_void>,
    addr: NonNull<c_void>,
    unmap: FmemUnmapFn,
    close: FmemCloseFn,
    _lib: Loaded,
}

// SAFETY: the handle and the mapping belong to the process, not a thread
// (foreign.rs, "Threads"); they are used only in `Drop`, with exclusive
// access; the mapped page is read through `MemView`'s atomic loads.
unsafe impl Send for SharedInfoMapping {}
// SAFETY: `&SharedInfoMapping` gives access to nothing.
unsafe impl Sync for SharedInfoMapping {}

impl Drop for SharedInfoMapping {
    fn drop(&mut self) {
        // SAFETY: invariants 1 and 3; the view made its last access
        // before dropping its owner.
        unsafe { (self.unmap)(self.fmem.as_ptr(), self.addr.as_ptr(), 1) };
        // SAFETY: invariants 2 and 3; nothing uses the handle afterwards.
        unsafe { (self.close)(self.fmem.as_ptr()) };
    }
}

/// Maps frame `frame` of dom0 read-only.
fn map_dom0_frame(frame: u64) -> Result<MemView<'static>> {
    let lib = Loaded::load(FOREIGNMEMORY_LIB_ENV, FOREIGNMEMORY_LIB)?;
    // SAFETY: the types are xenforeignmemory.h's; `lib` moves into the
    // `SharedInfoMapping` that holds the pointers (its invariant 3). Same
    // for the three symbols after it.
    let open: FmemOpenFn = unsafe { lib.symbol("xenforeignmemory_open") }?;
    // SAFETY: as above.
    let close: FmemCloseFn = unsafe { lib.symbol("xenforeignmemory_close") }?;
    // SAFETY: as above.
    let map: FmemMapFn = unsafe { lib.symbol("xenforeignmemory_map") }?;
    // SAFETY: as above.
    let unmap: FmemUnmapFn = unsafe { lib.symbol("xenforeignmemory_unmap") }?;
    // SAFETY: `open` is xenforeignmemory_open; the quiet logger lives
    // forever and is only called through; flags 0.
    let fmem = unsafe { open(quiet_logger(), 0) };
    let fmem = NonNull::new(fmem).ok_or_else(|| Error::Open {
        interface: Interface::ForeignMemory,
        io: io::Error::last_os_error(),
    })?;
    let mut err: c_int = 0;
    // SAFETY: `fmem` is open; one page of dom0, PROT_READ; `frame` and
    // `err` are one valid element each, as `pages` = 1 requires.
    let addr = unsafe { map(fmem.as_ptr(), 0, libc::PROT_READ, 1, &frame, &mut err) };
    let fail = |io| Error::SharedInfo { frame, io };
    let addr = match NonNull::new(addr) {
        Some(a) if err == 0 => a,
        other => {
            let io = match err {
                0 => io::Error::last_os_error(),
                e => io::Error::from_raw_os_error(e.saturating_abs()),
            };
            if let Some(a) = other {
                // SAFETY: `a` is the mapping just made, never used.
                unsafe { unmap(fmem.as_ptr(), a.as_ptr(), 1) };
            }
            // SAFETY: `fmem` is open and closed once, here.
            unsafe { close(fmem.as_ptr()) };
            return Err(fail(io));
        }
    };
    let owner = SharedInfoMapping {
        fmem,
        addr,
        unmap,
        close,
        _lib: lib,
    };
    let page = usize::try_from(super::XEN_FRAME_SIZE).unwrap_or(4096);
    // SAFETY: `[addr, addr + 4096)` is the read-only mapping `owner`
    // keeps until it is dropped, after the view's last access; this
    // process never writes it.
    unsafe { MemView::from_raw_parts(addr.as_ptr().cast(), page, Some(Box::new(owner))) }
        .map_err(|_| fail(io::Error::from_raw_os_error(libc::EFAULT)))
}

/// The TSC, ordered after earlier loads (`lfence; rdtsc`, as Linux's
/// `rdtsc_ordered()`).
#[cfg(target_arch = "x86_64")]
fn rdtsc_ordered() -> u64 {
    // SAFETY: `lfence` is part of SSE2, baseline on x86-64; it touches no
    // memory. (The intrinsic is safe from Rust 1.87; the block keeps the
    // crate's minimum version.)
    #[allow(unused_unsafe)]
    unsafe {
        std::arch::x86_64::_mm_lfence()
    };
    // SAFETY: `rdtsc` exists on every x86-64 CPU and touches no memory.
    #[allow(unused_unsafe)]
    unsafe {
        std::arch::x86_64::_rdtsc()
    }
}

/// The CPU this thread runs on (`sched_getcpu`), `None` when unknown.
fn current_cpu() -> Option<u32> {
    // SAFETY: sched_getcpu has no preconditions.
    u32::try_from(unsafe { libc::sched_getcpu() }).ok()
}

/// Xen system time read from dom0's `shared_info` (x86-64 only; see the
/// module docs, and their "known limit").
pub struct XenSystemClock {
    page: MemView<'static>,
}

impl std::fmt::Debug for XenSystemClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XenSystemClock").finish_non_exhaustive()
    }
}

impl XenSystemClock {
    /// Loads libxenctrl (or `$VSTATS_XENCTRL_LIB`), asks dom0's
    /// `shared_info_frame` (`xc_domain_getinfolist` for domain 0: present
    /// in every release, unlike 4.18's `xc_domain_getinfo_single`), and
    /// maps that frame read-only with libxenforeignmemory.
    ///
    /// # Errors
    ///
    /// [`Error::ClockUnsupported`] off x86-64; [`Error::LibraryMissing`],
    /// [`Error::LibraryUnloadable`], [`Error::MissingSymbol`],
    /// [`Error::Open`] for either library; [`Error::DomainInfo`];
    /// [`Error::SharedInfo`] when Xen refuses the mapping.
    pub fn open() -> Result<XenSystemClock> {
        if !cfg!(target_arch = "x86_64") {
            return Err(Error::ClockUnsupported {
                arch: std::env::consts::ARCH,
            });
        }
        let frame = dom0_shared_info_frame()?;
        Ok(XenSystemClock {
            page: map_dom0_frame(frame)?,
        })
    }

    /// One reading: the copy of the CPU the thread runs on (checked
    /// again after the read, so the TSC and the copy are of one CPU unless
    /// the thread migrated twice), and whether it is fresh.
    fn read(&self) -> Option<(VcpuTimeInfo, u64)> {
        #[cfg(target_arch = "x86_64")]
        for _ in 0..4 {
            let cpu = current_cpu().unwrap_or(0);
            let read = read_time_info(
                &self.page,
                time_info_offset(cpu),
                rdtsc_ordered,
                MAX_ATTEMPTS,
            );
            if current_cpu().unwrap_or(0) == cpu {
                return read.ok();
            }
        }
        None
    }
}

/// Xen system time from a consistent copy and the TSC read with it, or
/// `None` when the copy is stale (its extrapolation spans more than
/// [`MAX_AGE_NS`]) or the arithmetic does not fit.
pub fn fresh_system_time(info: &VcpuTimeInfo, tsc: u64) -> Option<u64> {
    let now = info.system_time_at(tsc)?;
    (now.abs_diff(info.system_time) <= MAX_AGE_NS).then_some(now)
}

impl Clock for XenSystemClock {
    /// Xen's `NOW()` in ns; `None` when the copy was busy for every
    /// attempt, or stale ([`fresh_system_time`]).
    fn now_ns(&self) -> Option<u64> {
        let (info, tsc) = self.read()?;
        fresh_system_time(&info, tsc)
    }
}

/// Why a mapped time frame (resource id 2,
/// [`vstats_abi::header::StatsTime`]) is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The mapping is shorter than the structure, or not 8-aligned.
    #[error(
        "the mapping ({len} bytes) cannot hold struct xen_stats_time ({STATS_TIME_SIZE} bytes)"
    )]
    Short {
        /// Bytes mapped.
        len: usize,
    },
    /// `magic` is not [`STATS_TIME_MAGIC`] (0: not published yet).
    #[error("magic {magic:#010x} is not the time frame's ({STATS_TIME_MAGIC:#010x})")]
    BadMagic {
        /// The magic read.
        magic: u32,
    },
    /// `size` is below the structure this reader knows.
    #[error("size {size} is below the {STATS_TIME_SIZE} bytes of struct xen_stats_time")]
    TooSmall {
        /// The size read.
        size: u32,
    },
}

/// Checks a time frame's header: `magic` (read first, then an acquire
/// fence, pairing with Xen's `smp_wmb()` before it stores the magic), then
/// `size`.
///
/// # Errors
///
/// [`FrameError`].
pub fn check_frame(view: &MemView<'_>) -> std::result::Result<(), FrameError> {
    let short = FrameError::Short { len: view.len() };
    let magic = view.load::<u32>(time_off::MAGIC as u64).ok_or(short)?;
    fence(Ordering::Acquire);
    if magic != STATS_TIME_MAGIC {
        return Err(FrameError::BadMagic { magic });
    }
    let size = view.load::<u32>(time_off::SIZE as u64).ok_or(short)?;
    if size < STATS_TIME_SIZE {
        return Err(FrameError::TooSmall { size });
    }
    if view.len() < STATS_TIME_SIZE as usize {
        return Err(short);
    }
    Ok(())
}

/// Xen system time read from a time frame with the TSC reader `rdtsc`:
/// the frame's header checked ([`check_frame`]), bytes 8..40 copied under
/// `time_version` with the TSC read inside the window ([`read_time_info`])
/// and extrapolated, refused when older than [`MAX_AGE_NS`]
/// ([`fresh_system_time`]: Xen has stopped updating the frame). `None`
/// when the frame is refused, kept changing, or is stale.
pub fn frame_time(view: &MemView<'_>, rdtsc: impl FnMut() -> u64) -> Option<u64> {
    check_frame(view).ok()?;
    let (info, tsc) =
        read_time_info(view, u64::from(STATS_TIME_INFO_OFFSET), rdtsc, MAX_ATTEMPTS).ok()?;
    fresh_system_time(&info, tsc)
}

/// Xen system time read from the time frame Xen publishes for one
/// domain's clock-2 tables (resource type 3, id 2,
/// [`vstats_abi::header::StatsTime`]; docs/abi.md 2.6): the route that
/// stays current after dom0 registered its own `vcpu_info`, unlike
/// [`XenSystemClock`]. The Xen backend maps it read-only with the table
/// ([`super::Xen::map_time_frame`]) and attaches it
/// ([`vstats_consumer::Table::set_clock`]).
pub struct TimeFrameClock {
    frame: MemView<'static>,
}

impl std::fmt::Debug for TimeFrameClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeFrameClock")
            .field("len", &self.frame.len())
            .finish_non_exhaustive()
    }
}

impl TimeFrameClock {
    /// A clock over a mapped time frame, whose header is checked now.
    ///
    /// # Errors
    ///
    /// [`FrameError`].
    pub fn new(frame: MemView<'static>) -> std::result::Result<TimeFrameClock, FrameError> {
        check_frame(&frame)?;
        Ok(TimeFrameClock { frame })
    }

    /// [`frame_time`] of this frame with the TSC reader `rdtsc`.
    pub fn now_with(&self, rdtsc: impl FnMut() -> u64) -> Option<u64> {
        frame_time(&self.frame, rdtsc)
    }
}

impl Clock for TimeFrameClock {
    /// Xen's `NOW()` in ns from the frame and this CPU's TSC (`lfence;
    /// rdtsc`); `None` off x86-64, and when [`frame_time`] refuses.
    fn now_ns(&self) -> Option<u64> {
        #[cfg(target_arch = "x86_64")]
        {
            self.now_with(rdtsc_ordered)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    /// [`frame_uncertainty_ns`] of the frame's current flags.
    fn uncertainty_ns(&self) -> u64 {
        let flags = self
            .frame
            .load::<u8>(time_off::FLAGS as u64)
            .unwrap_or_default();
        frame_uncertainty_ns(flags)
    }
}

/// Bound on a time frame reading's error against the `NOW()` of the CPU
/// that wrote a table's entry time: 1 ms when the frame says every CPU's
/// TSC agrees ([`STATS_TIME_TSC_STABLE`]); else 100 ms. The frame
/// carries one CPU's calibration, and a reader on another CPU is off by
/// the cross-CPU skew plus the drift since the last calibration (entry
/// times up to 7 ms ahead of such a reading were seen on Xen under QEMU's
/// TCG, whose TSC is not stable).
pub fn frame_uncertainty_ns(flags: u8) -> u64 {
    if flags & STATS_TIME_TSC_STABLE != 0 {
        1_000_000
    } else {
        100_000_000
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::mem::MemViewMut;
    use vstats_abi::VCPU_STATS_MAGIC as XEN_VCPU_STATS_MAGIC;

    fn info(tsc_timestamp: u64, system_time: u64, mul: u32, shift: i8) -> VcpuTimeInfo {
        VcpuTimeInfo {
            version: 2,
            tsc_timestamp,
            system_time,
            tsc_to_system_mul: mul,
            tsc_shift: shift,
            flags: 0,
        }
    }

    #[test]
    fn pvclock_arithmetic_known_answers() {
        // mul 2^31 is half a ns per tick: 200 ticks, 100 ns.
        assert_eq!(
            info(100, 1_000, 1 << 31, 0).system_time_at(300),
            Some(1_100)
        );
        // Shift -1 halves the delta (1000 -> 500), mul 0xC000_0000 is 3/4:
        // 500 * 3/4 = 375.
        assert_eq!(info(0, 5, 0xC000_0000, -1).system_time_at(1_000), Some(380));
        // Shift +2 quadruples (10 -> 40), times 1/2: 20.
        assert_eq!(info(0, 0, 1 << 31, 2).system_time_at(10), Some(20));
        // A 3 GHz TSC as Xen scales it: shift -1, mul 2/3 * 2^32 rounded
        // down (0xAAAA_AAAA = 2_863_311_530). One second of ticks:
        // 1.5e9 * 2_863_311_530 = 4_294_967_295e9, over 2^32
        // (4_294_967_296) = 1e9 - 0.23: 999_999_999 ns.
        let ghz3 = info(7, 0, 0xAAAA_AAAA, -1);
        assert_eq!(ghz3.system_time_at(7 + 3_000_000_000), Some(999_999_999));
        // Unchanged TSC: system_time itself.
        assert_eq!(ghz3.system_time_at(7), Some(0));
    }

    #[test]
    fn the_product_needs_128_bits() {
        // delta 2^40, shift +1: 2^41; times 0xFFFF_FFFF = 2^73 - 2^41, far
        // beyond 64 bits; >> 32 gives 2^41 - 2^9 = 2_199_023_255_040.
        let i = info(1, 0, u32::MAX, 1);
        assert_eq!(i.system_time_at(1 + (1 << 40)), Some(2_199_023_255_040));
        // The same in 64-bit wrapping arithmetic would be wrong.
        let wrapped = ((1u64 << 41).wrapping_mul(u64::from(u32::MAX))) >> 32;
        assert_ne!(wrapped, 2_199_023_255_040);
    }

    #[test]
    fn a_tsc_before_the_stamp_goes_back() {
        assert_eq!(info(300, 1_000, 1 << 31, 0).system_time_at(100), Some(900));
        // Before boot: no answer rather than a wrapped one.
        assert_eq!(info(300, 50, 1 << 31, 0).system_time_at(100), None);
    }

    #[test]
    fn shifts_and_results_out_of_range() {
        // Shift 33: refused; 32 still computed (2^32 * 1 * 2^31 >> 32).
        assert_eq!(info(0, 0, 1 << 31, 33).system_time_at(1), None);
        assert_eq!(info(0, 0, 1 << 31, 32).system_time_at(1), Some(1 << 31));
        // A right shift of 64 or more leaves nothing.
        assert_eq!(info(0, 9, u32::MAX, -100).system_time_at(u64::MAX), Some(9));
        assert_eq!(
            info(0, 9, u32::MAX, i8::MIN).system_time_at(u64::MAX),
            Some(9)
        );
        // A result of 2^63 or more is inactive; overflow is None.
        let top = vstats_abi::record::INACTIVE_BIT;
        assert_eq!(info(0, top - 1, 0, 0).system_time_at(5), Some(top - 1));
        assert_eq!(info(0, top - 1, 1 << 31, 0).system_time_at(2), None);
        assert_eq!(info(0, u64::MAX, 1 << 31, 0).system_time_at(2), None);
        // A product that does not fit in 64 bits after the shift right.
        assert_eq!(info(0, 0, u32::MAX, 32).system_time_at(u64::MAX), None);
    }

    /// A `shared_info` page with `vcpu_info[cpu].time` filled.
    fn page_with(cpu: u32, i: &VcpuTimeInfo) -> Vec<u8> {
        let mut page = vec![0u8; 4096];
        let o = time_info_offset(cpu) as usize;
        page[o..o + 4].copy_from_slice(&i.version.to_ne_bytes());
        page[o + 4..o + 8].copy_from_slice(&0xdead_beef_u32.to_ne_bytes());
        page[o + 8..o + 16].copy_from_slice(&i.tsc_timestamp.to_ne_bytes());
        page[o + 16..o + 24].copy_from_slice(&i.system_time.to_ne_bytes());
        page[o + 24..o + 28].copy_from_slice(&i.tsc_to_system_mul.to_ne_bytes());
        page[o + 28] = i.tsc_shift.to_ne_bytes()[0];
        page[o + 29] = i.flags;
        page
    }

    #[test]
    fn layout_offsets() {
        assert_eq!(time_info_offset(0), 32);
        assert_eq!(time_info_offset(1), 96);
        assert_eq!(time_info_offset(31), 31 * 64 + 32);
        assert_eq!(time_info_offset(32), 32, "no slot: vCPU 0's");
        let mut i = info(0x1122_3344_5566_7788, 42, 0x8765_4321, -3);
        i.flags = XEN_PVCLOCK_TSC_STABLE_BIT;
        let page = page_with(3, &i);
        let o = time_info_offset(3) as usize;
        assert_eq!(VcpuTimeInfo::from_bytes(&page[o..o + 32]), Some(i));
        assert_eq!(VcpuTimeInfo::from_bytes(&page[o..o + 29]), None);
        assert!(i.tsc_stable());
        assert!(!info(0, 0, 0, 0).tsc_stable());
    }

    #[test]
    fn a_quiet_copy_reads_at_once_with_the_tsc_inside() {
        let mut i = info(1_000, 50_000, 1 << 31, 0);
        i.flags = XEN_PVCLOCK_TSC_STABLE_BIT;
        let view = MemView::from_bytes(&page_with(5, &i));
        let calls = Cell::new(0);
        let tsc = || {
            calls.set(calls.get() + 1);
            3_000
        };
        let (got, t) = read_time_info(&view, time_info_offset(5), tsc, 8).unwrap();
        assert_eq!((got, t, calls.get()), (i, 3_000, 1));
        assert_eq!(got.system_time_at(t), Some(51_000));
        // The flags byte and the negative shift survive the atomic copy.
        let j = info(1, 2, 3, -7);
        let view = MemView::from_bytes(&page_with(0, &j));
        assert_eq!(read_time_info(&view, 32, || 0, 1).unwrap().0, j);
    }

    #[test]
    fn an_update_inside_the_window_is_retried() {
        let old = info(1_000, 50_000, 1 << 31, 0);
        let new = VcpuTimeInfo {
            version: 4,
            tsc_timestamp: 2_000,
            system_time: 60_000,
            ..old
        };
        let m = MemViewMut::from_bytes(&page_with(2, &old));
        let off = time_info_offset(2);
        let attempts = Cell::new(0);
        // Xen updates the copy while the first attempt reads the TSC: the
        // version moves from 2 to 4 and the fields change.
        let tsc = || {
            attempts.set(attempts.get() + 1);
            if attempts.get() == 1 {
                m.store::<u64>(off + 8, new.tsc_timestamp);
                m.store::<u64>(off + 16, new.system_time);
                m.store::<u32>(off, 4);
            }
            2_500
        };
        let (got, t) = read_time_info(&m.view(), off, tsc, 8).unwrap();
        assert_eq!((got, t, attempts.get()), (new, 2_500, 2));
        assert_eq!(got.system_time_at(t), Some(60_250));
    }

    #[test]
    fn an_odd_version_is_waited_for_then_given_up() {
        let mut i = info(1, 2, 3, 0);
        i.version = 7;
        let m = MemViewMut::from_bytes(&page_with(0, &i));
        let tsc_reads = Cell::new(0);
        let r = read_time_info(
            &m.view(),
            32,
            || {
                tsc_reads.set(tsc_reads.get() + 1);
                0
            },
            5,
        );
        assert_eq!(
            r,
            Err(ReadError::Busy {
                version: 7,
                attempts: 5
            })
        );
        assert_eq!(tsc_reads.get(), 0, "no copy is made under an odd version");
        // Xen finishes the update: the next read succeeds.
        m.store::<u32>(32, 8);
        assert_eq!(read_time_info(&m.view(), 32, || 0, 5).unwrap().0.version, 8);
    }

    #[test]
    fn out_of_bounds_and_misaligned() {
        let view = MemView::from_bytes(&[0u8; 64]);
        assert_eq!(
            read_time_info(&view, 40, || 0, 3),
            Err(ReadError::OutOfBounds { off: 40 })
        );
        assert_eq!(
            read_time_info(&view, 34, || 0, 3),
            Err(ReadError::OutOfBounds { off: 34 })
        );
        assert_eq!(
            read_time_info(&view, u64::MAX - 3, || 0, 3),
            Err(ReadError::OutOfBounds { off: u64::MAX - 3 })
        );
    }

    #[test]
    fn staleness() {
        let i = info(0, 1_000, 1 << 31, 0);
        // 2 * MAX_AGE ticks is MAX_AGE ns: still fresh.
        assert_eq!(
            fresh_system_time(&i, 2 * MAX_AGE_NS),
            Some(1_000 + MAX_AGE_NS)
        );
        assert_eq!(fresh_system_time(&i, 2 * MAX_AGE_NS + 2), None);
        assert_eq!(fresh_system_time(&info(0, 0, 0, 40), 1), None);
    }

    /// A time frame as Xen publishes it: magic, size, then the pvclock
    /// fields at byte 8; the rest of the 4 KiB frame zero.
    fn frame_with(magic: u32, size: u32, i: &VcpuTimeInfo) -> Vec<u8> {
        let mut page = page_with(0, i);
        // page_with put the fields at byte 32 (vcpu_info[0].time): move
        // them to byte 8.
        let fields: Vec<u8> = page[32..64].to_vec();
        page.fill(0);
        page[8..40].copy_from_slice(&fields);
        page[0..4].copy_from_slice(&magic.to_ne_bytes());
        page[4..8].copy_from_slice(&size.to_ne_bytes());
        page
    }

    fn clock_of(page: &[u8]) -> std::result::Result<TimeFrameClock, FrameError> {
        TimeFrameClock::new(MemView::from_bytes(page))
    }

    #[test]
    fn a_time_frame_gives_xen_system_time() {
        let mut i = info(1_000, 7_000_000, 1 << 31, 0);
        i.flags = XEN_PVCLOCK_TSC_STABLE_BIT;
        let page = frame_with(STATS_TIME_MAGIC, STATS_TIME_SIZE, &i);
        // The layout the public header gives (vstats-abi's StatsTime).
        assert_eq!(
            page[time_off::TSC_TIMESTAMP..time_off::TSC_TIMESTAMP + 8],
            1_000u64.to_ne_bytes()
        );
        assert_eq!(page[time_off::FLAGS], XEN_PVCLOCK_TSC_STABLE_BIT);
        let c = clock_of(&page).unwrap();
        // 3000 ticks at half a ns: 1500 ns after system_time.
        assert_eq!(c.now_with(|| 4_000), Some(7_001_500));
        // A larger frame (a later Xen's size) reads the same prefix.
        let page = frame_with(STATS_TIME_MAGIC, 64, &i);
        assert_eq!(clock_of(&page).unwrap().now_with(|| 1_000), Some(7_000_000));
        // A 40-byte mapping is enough.
        let page = frame_with(STATS_TIME_MAGIC, STATS_TIME_SIZE, &i);
        assert_eq!(
            TimeFrameClock::new(MemView::from_bytes(&page[..40]))
                .unwrap()
                .now_with(|| 1_002),
            Some(7_000_001)
        );
    }

    #[test]
    fn a_bad_time_frame_is_refused() {
        let i = info(1_000, 7_000_000, 1 << 31, 0);
        for magic in [0, STATS_TIME_MAGIC + 1, XEN_VCPU_STATS_MAGIC] {
            let page = frame_with(magic, STATS_TIME_SIZE, &i);
            assert_eq!(clock_of(&page).unwrap_err(), FrameError::BadMagic { magic });
            assert_eq!(frame_time(&MemView::from_bytes(&page), || 4_000), None);
        }
        for size in [0, 8, STATS_TIME_SIZE - 1] {
            let page = frame_with(STATS_TIME_MAGIC, size, &i);
            assert_eq!(clock_of(&page).unwrap_err(), FrameError::TooSmall { size });
        }
        let page = frame_with(STATS_TIME_MAGIC, STATS_TIME_SIZE, &i);
        for len in [0, 6, 39] {
            let view = MemView::from_bytes(&page[..len]);
            assert_eq!(
                TimeFrameClock::new(view).unwrap_err(),
                FrameError::Short { len }
            );
        }
        let m = clock_of(&frame_with(0x1234_5678, 40, &i))
            .unwrap_err()
            .to_string();
        assert_eq!(m, "magic 0x12345678 is not the time frame's (0xc10c57a7)");
    }

    #[test]
    fn a_time_frame_mid_update_or_unpublished_gives_no_time() {
        let i = info(1_000, 7_000_000, 1 << 31, 0);
        let m = MemViewMut::from_bytes(&frame_with(STATS_TIME_MAGIC, 40, &i));
        let c = TimeFrameClock::new(m.view()).unwrap();
        assert_eq!(c.now_with(|| 1_000), Some(7_000_000));
        // Xen in the middle of an update (odd time_version) for every
        // attempt: no time, and no TSC read for a copy it would not keep.
        m.store::<u32>(time_off::TIME_VERSION as u64, 3);
        let tsc_reads = Cell::new(0);
        let tsc = || {
            tsc_reads.set(tsc_reads.get() + 1);
            1_000
        };
        assert_eq!(c.now_with(tsc), None);
        assert_eq!(tsc_reads.get(), 0);
        // The update done: a time again.
        m.store::<u32>(time_off::TIME_VERSION as u64, 4);
        m.store::<u64>(time_off::SYSTEM_TIME as u64, 8_000_000);
        assert_eq!(c.now_with(|| 1_000), Some(8_000_000));
        // Retired (magic cleared) after the clock was made: refused at
        // the next reading.
        m.store::<u32>(time_off::MAGIC as u64, 0);
        assert_eq!(c.now_with(|| 1_000), None);
    }

    #[test]
    fn a_stale_time_frame_gives_no_time() {
        // Half a ns per tick. The frame was last written at TSC 0; 10 s
        // later it is still accepted, 10 s and a ns later it is not (Xen
        // stopped updating it).
        let i = info(0, 5_000, 1 << 31, 0);
        let page = frame_with(STATS_TIME_MAGIC, 40, &i);
        let c = clock_of(&page).unwrap();
        assert_eq!(c.now_with(|| 2 * MAX_AGE_NS), Some(5_000 + MAX_AGE_NS));
        assert_eq!(c.now_with(|| 2 * MAX_AGE_NS + 2), None);
        assert_eq!(c.now_with(|| 8 * MAX_AGE_NS), None);
        assert_eq!(MAX_AGE_NS, 10_000_000_000);
    }

    #[test]
    fn dom0s_frame_from_a_domaininfo() {
        let mut buf = vec![0u8; 128];
        buf[48..56].copy_from_slice(&0x1234_5678_9abc_u64.to_ne_bytes());
        assert_eq!(shared_info_frame(&buf, 0), Some(0x1234_5678_9abc));
        // The list began at another domain: not dom0's.
        buf[0..2].copy_from_slice(&1u16.to_ne_bytes());
        assert_eq!(shared_info_frame(&buf, 0), None);
        assert_eq!(shared_info_frame(&buf, 1), Some(0x1234_5678_9abc));
        assert_eq!(shared_info_frame(&buf[..55], 1), None);
    }

    #[test]
    fn the_newest_xenctrl_is_picked_numerically() {
        let names = [
            "libxenctrl.so.4.9",
            "libxenctrl.so.4.17",
            "libxenctrl.so.4.17.0",
            "libxenctrl.so",
            "libxenctrl.so.4.x",
            "libxenstore.so.4",
            "libxenctrl.so.4.10.2",
        ];
        assert_eq!(pick_xenctrl(names).as_deref(), Some("libxenctrl.so.4.17.0"));
        assert_eq!(
            pick_xenctrl(["libxenctrl.so.4.9", "libxenctrl.so.4.10"]).as_deref(),
            Some("libxenctrl.so.4.10")
        );
        assert_eq!(pick_xenctrl(["libxenctrl.so", "libc.so.6"]), None);
    }
}
