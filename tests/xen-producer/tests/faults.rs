//! The checker fails on broken C output. A broken order of barriers is not
//! observable on one thread, so each fault is made the other way: the C
//! producer's output is corrupted (memory patched behind it, or the C fed
//! what a broken caller would feed it) at one step of a drive that the
//! checker samples throughout, and the checker must name the rule. The
//! same drive without a fault passes.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use vstats_abi::{record::vcpu_off, Rule, VCPU_STATS_MAGIC};
use vstats_consumer::{runstate::Clock, xen::clock::frame_uncertainty_ns, TableClock};
use vstats_invariants::{CheckOptions, Checker, Report, Status, TableReport, Target};
use vstats_xen_producer_tests::{Sched, RUNSTATE_RUNNABLE, RUNSTATE_RUNNING};

const VCPUS: u32 = 3;
/// Steps before and after the fault.
const BEFORE: usize = 300;
const AFTER: usize = 50;

/// Drives a 3-vCPU table with the checker sampling at every step (with
/// `NOW()` as now), applies `fault` after `BEFORE` steps, samples three
/// times without a step, drives on (unless `stop` after the fault), and
/// returns the rules that failed.
fn failed_rules(fault: impl FnOnce(&mut Sched), drive_on: bool) -> Vec<Rule> {
    let mut s = Sched::new(VCPUS, 21, 21);
    s.table.publish(VCPU_STATS_MAGIC);
    let opts = CheckOptions {
        vcpus: Some(VCPUS),
        // D2: a record odd in three consecutive samples is stuck (no time
        // bound: the samples are the clock here).
        odd_bound: Duration::ZERO,
        odd_min_samples: 3,
        ..CheckOptions::default()
    };
    let raw = s.table.view();
    let mut checker = Checker::attach(
        Target::Memory {
            label: "C vCPU table".into(),
            raw,
            clock: None,
        },
        &opts,
    );
    checker.sample_at(s.now);
    for _ in 0..BEFORE {
        s.step();
        checker.sample_at(s.now);
    }
    fault(&mut s);
    for _ in 0..3 {
        checker.sample_at(s.now);
    }
    if drive_on {
        for _ in 0..AFTER {
            s.step();
            checker.sample_at(s.now);
        }
    }
    let report = checker.finish();
    let failed = report.failed();
    if std::env::var_os("SHOW_REPORT").is_some() {
        eprintln!("{}", Report::new(vec![report]));
    }
    failed
}

/// One update of record `i` done behind the C, under a correct seq
/// (W1, the stores, W4), continuing the vCPU's private seq.
fn update_behind(s: &mut Sched, i: u32, stores: &[(u32, u64)]) {
    let off = s.table.record_offset(i);
    let v = &mut s.vcpus[i as usize];
    s.table.store_u32(off, v.seq + 1);
    for &(field, value) in stores {
        s.table.store_u64(off + field as usize, value);
    }
    s.table.store_u32(off, v.seq + 2);
    v.seq += 2;
}

#[test]
fn no_fault_no_failure() {
    assert_eq!(failed_rules(|_| {}, true), vec![]);
}

#[test]
fn a_skipped_seq_bump_is_d1() {
    // The C's update of vCPU 1 with its seq stores undone: new counters
    // under the seq a reader already saw with the old ones.
    let failed = failed_rules(
        |s| {
            // A correct state change of vCPU 1 ...
            let i = 1;
            let off = s.table.record_offset(i);
            let seq = s.table.load_u32(off);
            s.now += 10_000;
            let now = s.now;
            let v = &mut s.vcpus[i as usize];
            let next = if v.runstate.state == RUNSTATE_RUNNING {
                RUNSTATE_RUNNABLE
            } else {
                RUNSTATE_RUNNING
            };
            assert!(v.runstate_change(next, now));
            let mut private = v.seq;
            s.table.write_vcpu(i, &mut private, &v.runstate);
            // ... whose seq stores never happened.
            s.table.store_u32(off, seq);
        },
        false,
    );
    assert_eq!(failed, vec![Rule::D1]);
}

#[test]
fn a_seq_left_odd_is_d2() {
    // W1 without W4: the writer never finished.
    let failed = failed_rules(
        |s| {
            let off = s.table.record_offset(2);
            s.table.store_u32(off, s.vcpus[2].seq + 1);
        },
        false,
    );
    assert_eq!(failed, vec![Rule::D2]);
}

#[test]
fn a_time_decreasing_is_d3() {
    // A broken caller hands the C a runstate whose blocked time went back
    // (the C writes it faithfully): the cumulative time and the
    // up-to-date sum both decrease.
    let failed = failed_rules(
        |s| {
            let i = 0;
            let v = &mut s.vcpus[i];
            let mut rs = v.runstate;
            let k = (0..4).max_by_key(|&k| rs.time[k]).unwrap_or(0);
            rs.time[k] -= rs.time[k] / 2;
            v.runstate = rs;
            s.table.write_vcpu(i as u32, &mut v.seq, &rs);
        },
        false,
    );
    assert_eq!(failed, vec![Rule::D3, Rule::D10]);
}

#[test]
fn an_entry_time_with_the_update_flag_is_r25_and_d5() {
    // The entry time copied with XEN_RUNSTATE_UPDATE (bit 63) left in: an
    // inactive entry in a used slot, and a non-canonical inactive word.
    let failed = failed_rules(
        |s| {
            let entry = s.vcpus[1].runstate.state_entry_time;
            update_behind(s, 1, &[(vcpu_off::ENTRY, entry | (1 << 63))]);
        },
        false,
    );
    assert_eq!(failed, vec![Rule::R25, Rule::D5]);
}

#[test]
fn an_entry_time_in_the_future_is_p11() {
    // The C handed an entry time 1 s after NOW(). The up-to-date sum
    // then counts time up to that entry, more than has elapsed: D10 too.
    let failed = failed_rules(
        |s| {
            let now = s.now;
            let v = &mut s.vcpus[0];
            let next = if v.runstate.state == RUNSTATE_RUNNING {
                RUNSTATE_RUNNABLE
            } else {
                RUNSTATE_RUNNING
            };
            v.runstate_change(next, now + 1_000_000_000);
            s.table.write_vcpu(0, &mut v.seq, &v.runstate);
        },
        false,
    );
    assert_eq!(failed, vec![Rule::P11, Rule::D10]);
}

#[test]
fn an_entry_moved_without_accruing_is_d10() {
    // A state change that moves the entry time to NOW() but drops the
    // time since the last entry: the up-to-date sum goes back.
    let failed = failed_rules(
        |s| {
            // The vCPU longest in its state: the time it loses is largest.
            let i = (0..s.vcpus.len())
                .min_by_key(|&i| s.vcpus[i].runstate.state_entry_time)
                .unwrap_or(0);
            assert!(s.vcpus[i].runstate.state_entry_time < s.now);
            s.now += 50_000_000;
            let now = s.now;
            let v = &mut s.vcpus[i];
            v.runstate.state_entry_time = now;
            s.table.write_vcpu(i as u32, &mut v.seq, &v.runstate);
        },
        true,
    );
    assert_eq!(failed, vec![Rule::D10]);
}

#[test]
fn a_store_into_the_padding_is_d7() {
    // A store past the record's size, inside its stride.
    let failed = failed_rules(
        |s| {
            let off = s.table.record_offset(0) + 56;
            s.table.store_u64(off, 0);
        },
        true,
    );
    assert_eq!(failed, vec![Rule::D7]);
}

#[test]
fn a_header_changed_after_publication_is_d6() {
    // A reserved byte of the head (between the r3 header's end, 88, and
    // record 0) written while published.
    let failed = failed_rules(|s| s.table.store_u32(96, 1), true);
    assert_eq!(failed, vec![Rule::D6]);
}

#[test]
fn a_magic_cleared_before_retiring_is_p15() {
    // stats_table_unpublish() without retiring the records first.
    let failed = failed_rules(|s| s.table.unpublish(), false);
    assert_eq!(failed, vec![Rule::P15]);
}

/// A clock the test sets, with the error bound of a Xen time frame
/// without a stable TSC (100 ms, `frame_uncertainty_ns`).
struct SetClock {
    now: AtomicU64,
}

impl Clock for SetClock {
    fn now_ns(&self) -> Option<u64> {
        Some(self.now.load(Ordering::Relaxed))
    }

    fn uncertainty_ns(&self) -> u64 {
        frame_uncertainty_ns(0)
    }
}

/// The report of a checker that reads "now" from the table's own clock
/// (as `xen_targets` attaches Xen's time frame), after vCPU 0 entered a
/// state `ahead_ns` after `NOW()`: what a reader whose CPU lags the
/// writer's by `ahead_ns` sees.
fn with_entry_ahead(ahead_ns: u64) -> TableReport {
    let mut s = Sched::new(VCPUS, 23, 23);
    s.table.publish(VCPU_STATS_MAGIC);
    let clock = Arc::new(SetClock {
        now: AtomicU64::new(s.now),
    });
    let opts = CheckOptions {
        vcpus: Some(VCPUS),
        ..CheckOptions::default()
    };
    let mut checker = Checker::attach(
        Target::Memory {
            label: "C vCPU table, own clock".into(),
            raw: s.table.view(),
            clock: Some(TableClock {
                reader: clock.clone(),
                name: "the test's clock".into(),
            }),
        },
        &opts,
    );
    checker.sample();
    for _ in 0..BEFORE {
        s.step();
        clock.now.store(s.now, Ordering::Relaxed);
        checker.sample();
    }
    let now = s.now;
    let v = &mut s.vcpus[0];
    let next = if v.runstate.state == RUNSTATE_RUNNING {
        RUNSTATE_RUNNABLE
    } else {
        RUNSTATE_RUNNING
    };
    v.runstate_change(next, now + ahead_ns);
    s.table.write_vcpu(0, &mut v.seq, &v.runstate);
    for _ in 0..3 {
        checker.sample();
    }
    checker.finish()
}

#[test]
fn the_tables_own_clock_is_used_within_its_error_and_no_further() {
    // 50 ms ahead: inside the clock's 100 ms error; P11 and D10 are
    // checked (not skipped) and pass.
    let within = with_entry_ahead(50_000_000);
    assert_eq!(within.failed(), vec![]);
    for rule in [Rule::P11, Rule::D10] {
        assert_eq!(
            within.rule(rule).map(|r| r.status),
            Some(Status::Pass),
            "{rule:?}"
        );
    }
    // 1 s ahead: beyond it.
    assert_eq!(
        with_entry_ahead(1_000_000_000).failed(),
        vec![Rule::P11, Rule::D10]
    );
}
