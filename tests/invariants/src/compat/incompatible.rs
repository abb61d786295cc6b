//! A deliberately incompatible revision: the counters became 128-bit and
//! the record was reordered, which appending cannot express, so the magic
//! changed (`docs/abi.md` section 7). Only a producer: no consumer of r1 to
//! r3 (nor `vstats-consumer`) may read it, and each must say why.
//!
//! This revision's own copy of the definitions.

use std::{
    path::Path,
    sync::atomic::{fence, Ordering},
};

use vstats_consumer::mem::MemViewMut;

/// The new magic.
pub const VCPU_STATS_MAGIC_V2: u32 = 0xaabb_cce0;

/// The record: seq widened to 64 bits, then 128-bit times (low word
/// first), offline first.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuStats {
    /// Odd while an update is in progress.
    pub seq: u64,
    /// Time offline, ns.
    pub runstate_offline_time: [u64; 2],
    /// Time running, ns.
    pub runstate_running_time: [u64; 2],
}
// size: 40 bytes

const _: () = assert!(core::mem::size_of::<VcpuStats>() == 40);

/// Publishes a table of `nr` vCPUs at `path`, each running for
/// `running(vcpu)` ns, in the incompatible layout (16-byte header with the
/// new magic, record 0 at 64, stride 64).
///
/// # Errors
///
/// I/O errors creating or mapping the file.
pub fn publish(path: &Path, nr: u32, running: impl Fn(u32) -> u64) -> std::io::Result<()> {
    let (offset, stride) = (64u64, 64u64);
    let len = (offset + u64::from(nr) * stride).div_ceil(4096) * 4096;
    let tmp = path.with_extension("incompatible-tmp");
    let map = MemViewMut::create_file(&tmp, len)?;
    map.store::<u32>(4, offset as u32);
    map.store::<u32>(8, core::mem::size_of::<VcpuStats>() as u32);
    map.store::<u32>(12, stride as u32);
    for v in 0..nr {
        let base = offset + u64::from(v) * stride;
        map.store::<u64>(base, 2);
        map.store::<u64>(base + 24, running(v));
    }
    fence(Ordering::Release);
    if let Some(m) = map.atomic::<u32>(0) {
        m.store(VCPU_STATS_MAGIC_V2, Ordering::Release);
    }
    std::fs::rename(&tmp, path)
}
