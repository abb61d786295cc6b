//! The time frame (`struct xen_stats_time`) as the C producer writes it,
//! read with the consumer's pvclock reader
//! (`vstats_consumer::xen::clock::read_time_info` at byte 8, where the
//! frame holds a `struct vcpu_time_info`). The Rust producer has no time
//! frame, so the frame is checked against the public header instead: its
//! constants are read from `capi/include/xen/stats_table.h`, the one copy.

use vstats_consumer::xen::clock::{read_time_info, ReadError, VcpuTimeInfo};
use vstats_xen_producer_tests::{with_wmb_hook, CTimeFrame, PAGE_SIZE};

const PUBLIC_HEADER: &str = include_str!("../../../capi/include/xen/stats_table.h");

/// The value of `#define name value` in the public header.
fn define(name: &str) -> u64 {
    let line = PUBLIC_HEADER
        .lines()
        .find_map(|l| {
            l.strip_prefix("#define ")?
                .strip_prefix(name)?
                .strip_prefix(' ')
        })
        .unwrap_or_else(|| panic!("{name} is not defined"));
    let v = line.trim().trim_end_matches('U');
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    }
    .unwrap_or_else(|e| panic!("{name} = {v}: {e}"))
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().unwrap())
}

/// Where `struct vcpu_time_info` starts in the frame.
const TIME_INFO: u64 = 8;

#[test]
fn format_write_publish() {
    let magic = define("XEN_STATS_TIME_MAGIC") as u32;
    let size = define("XEN_STATS_TIME_SIZE") as u32;
    let stable = define("XEN_STATS_TIME_TSC_STABLE") as u8;
    let f = CTimeFrame::format();
    let b = f.bytes();
    assert_eq!(b.len(), PAGE_SIZE);
    assert_eq!((u32_at(&b, 0), u32_at(&b, 4)), (0, size), "magic 0, size");
    assert!(
        b[8..].iter().all(|&x| x == 0),
        "the rest of the frame is zero"
    );

    f.write(1_000_000, 5_000_000_000, 1 << 31, 0, stable);
    // Written but not published: magic still 0.
    assert_eq!(u32_at(&f.bytes(), 0), 0);
    f.publish();
    let b = f.bytes();
    assert_eq!((u32_at(&b, 0), u32_at(&b, 4)), (magic, size));
    assert!(
        b[size as usize..].iter().all(|&x| x == 0),
        "nothing past size"
    );

    let (info, tsc) = read_time_info(&f.view(), TIME_INFO, || 1_002_000, 4).expect("a copy");
    assert_eq!(tsc, 1_002_000);
    assert_eq!(
        info,
        VcpuTimeInfo {
            version: 2,
            tsc_timestamp: 1_000_000,
            system_time: 5_000_000_000,
            tsc_to_system_mul: 1 << 31,
            tsc_shift: 0,
            flags: stable,
        }
    );
    assert!(info.tsc_stable());
    // 2000 ticks at half a nanosecond each.
    assert_eq!(info.system_time_at(tsc), Some(5_000_001_000));

    // Each write moves the version by 2; negative shifts round-trip.
    for k in 1..=5u32 {
        f.write(
            u64::from(k) << 20,
            u64::from(k) << 30,
            0x8000_0000 + k,
            -(k as i8),
            0,
        );
        let (info, _) = read_time_info(&f.view(), TIME_INFO, || 0, 4).expect("a copy");
        assert_eq!(info.version, 2 + 2 * k);
        assert_eq!(
            (
                info.tsc_timestamp,
                info.system_time,
                info.tsc_to_system_mul,
                info.tsc_shift
            ),
            (
                u64::from(k) << 20,
                u64::from(k) << 30,
                0x8000_0000 + k,
                -(k as i8)
            )
        );
        assert!(!info.tsc_stable());
    }
}

#[test]
fn a_write_inside_the_readers_window_is_retried() {
    // The reader's rdtsc runs inside its window: the first time, the C
    // writes a new calibration there, so the version changes around the
    // copy and the reader retries, then returns the new values.
    let f = CTimeFrame::format();
    f.write(100, 200, 1 << 31, 1, 0);
    f.publish();
    let mut calls = 0;
    let (info, tsc) = read_time_info(
        &f.view(),
        TIME_INFO,
        || {
            calls += 1;
            if calls == 1 {
                f.write(300, 400, 1 << 30, 2, 1);
            }
            1_000 * calls
        },
        4,
    )
    .expect("a copy at the second attempt");
    assert_eq!(calls, 2);
    assert_eq!(tsc, 2_000);
    assert_eq!(
        (info.version, info.tsc_timestamp, info.system_time),
        (4, 300, 400)
    );
}

#[test]
fn the_frame_held_mid_write_reads_busy() {
    // At both barriers of stats_time_write() the version is odd: the
    // reader gives up with the odd version, never returning a mix.
    let f = CTimeFrame::format();
    f.write(1, 2, 3, 0, 0);
    f.publish();
    let mut seen = Vec::new();
    with_wmb_hook(
        || seen.push(read_time_info(&f.view(), TIME_INFO, || 0, 3)),
        || f.write(10, 20, 30, 0, 0),
    );
    assert_eq!(
        seen,
        vec![
            Err(ReadError::Busy {
                version: 3,
                attempts: 3
            });
            2
        ]
    );
    let (info, _) = read_time_info(&f.view(), TIME_INFO, || 0, 3).expect("a copy");
    assert_eq!((info.version, info.tsc_timestamp), (4, 10));
}

#[test]
fn publication_is_last() {
    // At the barrier before the magic store, the frame holds its size and
    // time, and the magic is still 0.
    let magic = define("XEN_STATS_TIME_MAGIC") as u32;
    let f = CTimeFrame::format();
    f.write(5, 6, 7, 0, 0);
    let mut at_barrier = Vec::new();
    with_wmb_hook(
        || {
            let b = f.bytes();
            at_barrier.push((u32_at(&b, 0), u32_at(&b, 8)));
        },
        || f.publish(),
    );
    assert_eq!(at_barrier, vec![(0, 2)]);
    assert_eq!(u32_at(&f.bytes(), 0), magic);
}
