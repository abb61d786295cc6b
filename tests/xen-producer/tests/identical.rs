//! The C producer's tables are byte for byte the Rust producer's
//! (`vstats-producer`, r3 layout, clock 2, no descriptors, no producer
//! area) for the same inputs: after the layout, after publication, after
//! every record update, after retirement.
//!
//! Two differences of state, not of bytes, are bridged explicitly:
//! * the Rust `Table::init` lays out and publishes in one step, so the C
//!   table after `stats_table_format()` is compared with the Rust table
//!   with its magic word read as 0 (and the C magic is checked to be 0);
//! * the Rust `Table::retire` continues every record's seq from the
//!   largest advance of any of its writers (its seq carry keeps no seq per
//!   record, see `SeqCarry`), while `stats_table_retire_record()` takes
//!   the caller's seq: here the caller hands it that same value. Retiring
//!   with each record's own seq, as Xen does, is checked by the invariant
//!   checker in `drive.rs`.

use std::ptr::NonNull;

use vstats_abi::{
    header::CLOCK_XEN_SYSTEM,
    record::{RunState, DOMAIN_STATS_SIZE, INACTIVE, VCPU_STATS_SIZE},
    DOMAIN_STATS_MAGIC, VCPU_STATS_MAGIC,
};
use vstats_producer::{
    builder::{domain, vcpu, TableBuilder, TablePlan},
    RecordWriter, Table,
};
use vstats_xen_producer_tests::{
    nr_frames, CTable, Frames, Rng, VcpuRunstateInfo, XenVcpu, PAGE_SIZE, RUNSTATE_BLOCKED,
    RUNSTATE_OFFLINE, RUNSTATE_RUNNABLE, RUNSTATE_RUNNING, XEN_RUNSTATE_UPDATE,
};

/// Byte offset of the first difference, with both words there.
fn first_difference(c: &[u8], r: &[u8]) -> Option<String> {
    if c.len() != r.len() {
        return Some(format!(
            "lengths differ: C {} bytes, Rust {}",
            c.len(),
            r.len()
        ));
    }
    let at = c.iter().zip(r).position(|(a, b)| a != b)?;
    let w = at / 8 * 8;
    let word = |b: &[u8]| u64::from_ne_bytes(b[w..w + 8].try_into().unwrap());
    Some(format!(
        "first difference at byte {at} (word {w}: C {:#x}, Rust {:#x})",
        word(c),
        word(r)
    ))
}

#[track_caller]
fn assert_same(c: &[u8], r: &[u8], when: &str) {
    if let Some(d) = first_difference(c, r) {
        panic!("{when}: {d}");
    }
}

/// The Rust producer's bytes with the magic as a not yet published table
/// has it.
fn unpublished(mut r: Vec<u8>) -> Vec<u8> {
    r[..4].fill(0);
    r
}

/// The Rust plan of a table Xen publishes: r3, clock 2, 4 KiB pages,
/// cacheline 64, no producer counters.
fn plan(mut b: TableBuilder) -> TablePlan {
    b.clock(CLOCK_XEN_SYSTEM);
    b.build().expect("the standard table")
}

/// The Rust producer in frames of the same size as the C table's.
fn rust_frames(plan: &TablePlan, c: &CTable) -> Frames {
    let len = plan.layout.mapping_len() as usize;
    assert_eq!(
        len,
        c.frames().len(),
        "stats_table_nr_frames() and Layout::mapping_len() disagree"
    );
    Frames::new(len / PAGE_SIZE)
}

fn rust_table<'f>(frames: &'f Frames, plan: &TablePlan, generation: u64) -> Table<'f> {
    let base: NonNull<u8> = frames.as_ptr();
    // SAFETY: the frames outlive the table (both live in the test's
    // scope, the table is dropped first), are page aligned, and are only
    // read with atomic loads (`Frames::bytes`) meanwhile.
    let mem = unsafe { vstats_producer::Frames::contiguous(base, frames.len()) };
    Table::init(mem, &plan.spec(generation)).expect("Table::init")
}

/// The same runstate through the Rust writer: the four times, the state
/// and the entry time without the update flag, as the C writes them.
fn rust_write_vcpu(w: &mut RecordWriter<'_>, rs: &VcpuRunstateInfo) {
    let done = w.update(|u| {
        assert_eq!(u.put_words(vcpu::RUNSTATE, &rs.time), 4);
        assert!(u.put(vcpu::STATE, rs.state as u64));
        assert!(u.put(vcpu::ENTRY_TIME, rs.state_entry_time & !XEN_RUNSTATE_UPDATE));
    });
    assert!(done, "updating is on");
}

fn vcpu_table_is_identical(nr: u32, seed: u64, changes: usize) {
    let generation = 0x1234_5678_9abc_def0 ^ u64::from(nr);
    let plan = plan(TableBuilder::vcpu(nr));
    let c = CTable::format(nr, VCPU_STATS_SIZE, generation);
    let rf = rust_frames(&plan, &c);
    let mut rt = rust_table(&rf, &plan, generation);
    assert_eq!(c.load_u32(0), 0, "formatted, not published");
    assert_same(&c.bytes(), &unpublished(rf.bytes()), "after format");

    // Xen's order: seed every vCPU's record (P10), then publish.
    let mut rng = Rng::new(seed);
    let mut now = 1_000_000 + rng.below(1 << 40);
    let mut vcpus: Vec<XenVcpu> = (0..nr).map(|_| XenVcpu::new(now)).collect();
    {
        let (_, writers) = rt.split();
        let mut ws: Vec<RecordWriter<'_>> = writers.collect();
        assert_eq!(ws.len(), nr as usize);
        for (i, v) in vcpus.iter_mut().enumerate() {
            c.write_vcpu(i as u32, &mut v.seq, &v.runstate);
            rust_write_vcpu(&mut ws[i], &v.runstate);
            assert_eq!(v.seq, ws[i].seq(), "vCPU {i}'s seq");
        }
        assert_same(&c.bytes(), &unpublished(rf.bytes()), "after seeding");
        c.publish(VCPU_STATS_MAGIC);
        assert_same(&c.bytes(), &rf.bytes(), "after publish");

        for step in 0..changes {
            let i = rng.below(u64::from(nr)) as usize;
            now += 1 + rng.below(5_000_000);
            let state = rng.below(4) as i32;
            let v = &mut vcpus[i];
            if !v.runstate_change(state, now) {
                continue;
            }
            // Now and then the copy Xen holds while it writes a guest's
            // runstate area: the entry time with XEN_RUNSTATE_UPDATE.
            let mut rs = v.runstate;
            if step % 7 == 3 {
                rs.state_entry_time |= XEN_RUNSTATE_UPDATE;
            }
            c.write_vcpu(i as u32, &mut v.seq, &rs);
            rust_write_vcpu(&mut ws[i], &rs);
            assert_eq!(v.seq, ws[i].seq(), "vCPU {i}'s seq at step {step}");
            assert_same(
                &c.bytes(),
                &rf.bytes(),
                &format!("after step {step} (vCPU {i})"),
            );
        }
        // Values past 2^63 (not reachable from a clock, but an input the
        // writers must agree on): both store the inactive marker.
        let last = nr as usize - 1;
        let mut rs = vcpus[last].runstate;
        rs.time[RUNSTATE_BLOCKED as usize] = (1 << 63) + 5;
        c.write_vcpu(last as u32, &mut vcpus[last].seq, &rs);
        rust_write_vcpu(&mut ws[last], &rs);
        assert_same(&c.bytes(), &rf.bytes(), "after a time past 2^63");
        let rec = 128 + last * 64;
        assert_eq!(
            c.load_u64(rec + 24),
            INACTIVE,
            "the blocked time reads inactive"
        );
    }
    // Retire: every record, then the magic (see the module docs for the
    // seq handed to the C).
    let carry = vcpus.iter().map(|v| v.seq).max().unwrap_or(0);
    for i in 0..nr {
        let mut seq = carry;
        c.retire_record(i, &mut seq);
        assert_eq!(seq, carry + 2);
    }
    c.unpublish();
    rt.retire();
    assert_same(&c.bytes(), &rf.bytes(), "after retire");
    drop(rt);
}

#[test]
fn one_vcpu() {
    vcpu_table_is_identical(1, 1, 400);
}

#[test]
fn three_vcpus() {
    vcpu_table_is_identical(3, 3, 600);
}

#[test]
fn sixty_two_vcpus_fill_frame_0() {
    assert_eq!(nr_frames(62, VCPU_STATS_SIZE), 1);
    vcpu_table_is_identical(62, 62, 800);
}

#[test]
fn sixty_three_vcpus_need_a_second_frame() {
    assert_eq!(nr_frames(63, VCPU_STATS_SIZE), 2);
    vcpu_table_is_identical(63, 63, 800);
}

#[test]
fn sixty_four_vcpus() {
    vcpu_table_is_identical(64, 64, 800);
}

#[test]
fn two_hundred_vcpus() {
    assert_eq!(nr_frames(200, VCPU_STATS_SIZE), 4);
    vcpu_table_is_identical(200, 200, 1000);
}

#[test]
fn every_state_is_written_as_xen_numbers_it() {
    // The runstate word carries Xen's numbers, which are the ABI's.
    for (x, r) in [
        (RUNSTATE_RUNNING, RunState::RUNNING),
        (RUNSTATE_RUNNABLE, RunState::RUNNABLE),
        (RUNSTATE_BLOCKED, RunState::BLOCKED),
        (RUNSTATE_OFFLINE, RunState::OFFLINE),
    ] {
        assert_eq!(x as u64, r.0);
        let c = CTable::format(1, VCPU_STATS_SIZE, 1);
        let mut seq = 0;
        let rs = VcpuRunstateInfo {
            state: x,
            state_entry_time: 77 | XEN_RUNSTATE_UPDATE,
            time: [1, 2, 3, 4],
        };
        c.write_vcpu(0, &mut seq, &rs);
        assert_eq!(seq, 2);
        let words: Vec<u64> = (0..7).map(|k| c.load_u64(128 + 8 * k)).collect();
        assert_eq!(words[0] & 0xffff_ffff, 2, "seq even after one update");
        assert_eq!(&words[1..], &[1, 2, 3, 4, r.0, 77]);
    }
}

#[test]
fn domain_table_is_identical() {
    let generation = 42;
    let plan = plan(TableBuilder::domain());
    let c = CTable::format(1, DOMAIN_STATS_SIZE, generation);
    assert_eq!(nr_frames(1, DOMAIN_STATS_SIZE), 1);
    let rf = rust_frames(&plan, &c);
    let mut rt = rust_table(&rf, &plan, generation);
    assert_eq!(c.load_u32(0), 0);
    assert_same(&c.bytes(), &unpublished(rf.bytes()), "after format");
    let mut rng = Rng::new(7);
    let mut seq = 0;
    {
        let (_, mut writers) = rt.split();
        let mut w = writers.next().expect("the domain record");
        let mut write = |seq: &mut u32, online: u64, max: u64, uptime: u64| {
            c.write_domain(seq, online, max, uptime);
            assert!(w.update(|u| {
                assert!(u.put(domain::VCPUS_ONLINE, online));
                assert!(u.put(domain::VCPUS_MAX, max));
                assert!(u.put(domain::UPTIME, uptime));
            }));
            assert_eq!(*seq, w.seq());
        };
        write(&mut seq, 0, 4, 0);
        c.publish(DOMAIN_STATS_MAGIC);
        // The Rust table was published at init; the bytes now agree.
        assert_same(&c.bytes(), &rf.bytes(), "after publish");
        let mut uptime = 0;
        for step in 0..300 {
            uptime += rng.below(1 << 30);
            let max = 1 + rng.below(128);
            let online = rng.below(max + 1);
            write(&mut seq, online, max, uptime);
            assert_same(&c.bytes(), &rf.bytes(), &format!("after update {step}"));
        }
        // Past 2^63: inactive, in both.
        write(&mut seq, 1 << 63, u64::MAX, (1 << 63) | 9);
        assert_same(&c.bytes(), &rf.bytes(), "after values past 2^63");
    }
    let mut retire_seq = seq;
    c.retire_record(0, &mut retire_seq);
    c.unpublish();
    rt.retire();
    assert_same(&c.bytes(), &rf.bytes(), "after retire");
}

#[test]
fn the_differences_are_found() {
    // The comparison itself: a table that differs in one byte is caught.
    let c = CTable::format(3, VCPU_STATS_SIZE, 5);
    let mut r = c.bytes();
    assert!(first_difference(&c.bytes(), &r).is_none());
    r[128 + 64 + 17] ^= 1;
    let d = first_difference(&c.bytes(), &r).expect("a difference");
    assert!(d.contains("byte 209"), "{d}");
    assert!(first_difference(&c.bytes(), &r[..4096 - 8]).is_some());
}
