//! Xen-style runstate accounting of one vCPU.
//!
//! # Model
//!
//! The vCPU's life since VM creation is cut into contiguous segments at
//! *checkpoints*: every state change, and every report the vCPU thread
//! makes (after each `KVM_RUN` exit). Each segment is charged to the
//! vCPU's base state:
//!
//! * **offline** from VM creation until the vCPU thread starts, and from
//!   its exit on (this keeps growing after [`crate::RunningVm::stop`]);
//! * **running** while the thread is in `KVM_RUN` *or* handling an exit
//!   in the VMM (port I/O, reports, the sink), the way Xen charges
//!   hypervisor exit handling to the running vCPU;
//! * **blocked** from a `hlt` exit until the wake-up timer fires;
//! * **runnable**, see below.
//!
//! So the four times always add up to `now - created` exactly: the
//! accounting is a partition of the wall-clock interval, and the
//! approximation lies only in how a segment is split, never in the total.
//! **Tolerance: 0 ns** for every report (integer arithmetic on one clock,
//! `CLOCK_MONOTONIC`).
//!
//! **Runnable** time cannot be observed directly: it is the growth of the
//! kernel's run delay (`/proc/self/task/<tid>/schedstat`, second field:
//! time the thread spent on a runqueue waiting for a CPU). At each
//! checkpoint the growth since the previous one is taken out of the
//! segment and charged to runnable instead: the vCPU thread was preempted
//! while in KVM_RUN (running), or its wake-up timer had fired but it had not
//! yet got a CPU (blocked). The kernel adds a wait to the run delay when
//! the thread gets the CPU back, and the thread reads the run delay a few
//! instructions before the clock, so a wait that falls between the two
//! reads shows up one checkpoint late: the split of a segment can be off
//! by one such wait (rare; normally nanoseconds). A run delay larger than
//! its segment is not dropped but carried
//! ([`crate::VcpuReport::pending_run_delay_ns`]) into later segments, so
//! over the vCPU's life runnable + pending equals the thread's run delay
//! exactly. Every increment is non-negative, so each of the four times is
//! monotonic across the vCPU thread's own reports.
//!
//! If `/proc` is unavailable, runnable stays 0 and the waits remain in the
//! state they interrupted.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// A vCPU runstate, in Xen's `RUNSTATE_*` order (the discriminant is the
/// index into [`crate::VcpuReport::runstate_ns`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RunState {
    /// In `KVM_RUN`, or handling an exit in the VMM on the vCPU's behalf.
    /// (Strict in-ioctl time is [`crate::VcpuReport::kvm_run_ns`].)
    Running = 0,
    /// Wanting to run but waiting for a host CPU (derived from the thread's
    /// scheduler run delay; never the recorded base state).
    Runnable = 1,
    /// Halted: the guest executed `hlt` and waits for its wake-up timer.
    Blocked = 2,
    /// Not started yet, or stopped.
    Offline = 3,
}

impl RunState {
    /// All states in Xen order.
    pub const ALL: [RunState; 4] = [
        RunState::Running,
        RunState::Runnable,
        RunState::Blocked,
        RunState::Offline,
    ];

    /// Index into a `[u64; 4]` of runstate times.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Lower-case name (`"running"`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Runnable => "runnable",
            RunState::Blocked => "blocked",
            RunState::Offline => "offline",
        }
    }
}

/// The accounting state of one vCPU (plain data; the vCPU thread is its
/// only writer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Accounting {
    /// VM creation (CLOCK_MONOTONIC ns).
    pub(crate) created_ns: u64,
    /// Base state since `state_entry_ns`.
    pub(crate) state: RunState,
    pub(crate) state_entry_ns: u64,
    /// Last checkpoint.
    pub(crate) last_ns: u64,
    /// Run delay read at the last checkpoint.
    pub(crate) last_run_delay: u64,
    /// Run delay not yet charged to runnable.
    pub(crate) pending_run_delay_ns: u64,
    /// Times in Xen order.
    pub(crate) time: [u64; 4],
}

impl Accounting {
    /// A vCPU that is offline since `created_ns`.
    pub(crate) fn new(created_ns: u64) -> Self {
        Self {
            created_ns,
            state: RunState::Offline,
            state_entry_ns: created_ns,
            last_ns: created_ns,
            last_run_delay: 0,
            pending_run_delay_ns: 0,
            time: [0; 4],
        }
    }

    /// Charges `[last_ns, now]` to the current state, minus the run delay
    /// accrued since the last checkpoint (`run_delay` is the thread's
    /// current cumulative value, `None` if unknown).
    pub(crate) fn checkpoint(&mut self, now: u64, run_delay: Option<u64>) {
        let segment = now.saturating_sub(self.last_ns);
        if self.state != RunState::Offline {
            if let Some(rd) = run_delay {
                self.pending_run_delay_ns = self
                    .pending_run_delay_ns
                    .saturating_add(rd.saturating_sub(self.last_run_delay));
                self.last_run_delay = self.last_run_delay.max(rd);
            }
            let take = self.pending_run_delay_ns.min(segment);
            self.pending_run_delay_ns -= take;
            self.time[RunState::Runnable.index()] += take;
            self.time[self.state.index()] += segment - take;
        } else {
            self.time[RunState::Offline.index()] += segment;
        }
        self.last_ns = self.last_ns.max(now);
    }

    /// Checkpoints, then switches to `state` at `now`. Leaving offline
    /// (thread start) takes `run_delay` as the baseline instead of charging
    /// it: waits before the vCPU came online are offline time.
    pub(crate) fn transition(&mut self, now: u64, run_delay: Option<u64>, state: RunState) {
        self.checkpoint(now, run_delay);
        if self.state == RunState::Offline && state != RunState::Offline {
            self.last_run_delay = run_delay.unwrap_or(0);
            self.pending_run_delay_ns = 0;
        }
        if state != self.state {
            self.state = state;
            self.state_entry_ns = self.last_ns;
        }
    }

    /// The accounting as of `now`, without committing a checkpoint.
    pub(crate) fn project(&self, now: u64, run_delay: Option<u64>) -> Accounting {
        let mut copy = *self;
        copy.checkpoint(now, run_delay);
        copy
    }
}

/// `/proc/self/task/<tid>/schedstat` of one thread, kept open and re-read
/// with `pread` (procfs regenerates the text at offset 0).
#[derive(Debug)]
pub(crate) struct SchedStat {
    file: File,
}

/// Fields of a schedstat line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SchedSample {
    /// Time on a CPU (ns).
    pub(crate) cpu_ns: u64,
    /// Time waiting on a runqueue (ns).
    pub(crate) run_delay_ns: u64,
}

impl SchedStat {
    pub(crate) fn open(tid: i32) -> std::io::Result<Self> {
        Ok(Self {
            file: File::open(format!("/proc/self/task/{tid}/schedstat"))?,
        })
    }

    pub(crate) fn read(&self) -> Option<SchedSample> {
        let mut buf = [0u8; 96];
        let n = self.file.read_at(&mut buf, 0).ok()?;
        parse_schedstat(buf.get(..n)?)
    }
}

/// Parses `"<cpu ns> <run delay ns> <timeslices>\n"`.
pub(crate) fn parse_schedstat(text: &[u8]) -> Option<SchedSample> {
    let text = std::str::from_utf8(text).ok()?;
    let mut fields = text.split_ascii_whitespace();
    let cpu_ns = fields.next()?.parse().ok()?;
    let run_delay_ns = fields.next()?.parse().ok()?;
    Some(SchedSample {
        cpu_ns,
        run_delay_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(a: &Accounting) -> u64 {
        a.time.iter().sum()
    }

    #[test]
    fn partition_of_wall_time() {
        let mut a = Accounting::new(1_000);
        a.transition(1_500, Some(7_000), RunState::Running); // 500 offline; baseline 7000
        a.checkpoint(2_500, Some(7_100)); // 1000: 900 running, 100 runnable
        a.transition(3_000, Some(7_100), RunState::Blocked); // 500 running
        a.transition(5_000, Some(7_400), RunState::Running); // 2000: 1700 blocked, 300 runnable
        a.transition(6_000, Some(7_400), RunState::Offline); // 1000 running
        assert_eq!(a.time, [2_400, 400, 1_700, 500]);
        assert_eq!(sum(&a), 5_000);
        assert_eq!(a.project(9_000, None).time, [2_400, 400, 1_700, 3_500]);
    }

    #[test]
    fn excess_run_delay_is_carried_not_lost() {
        let mut a = Accounting::new(0);
        a.transition(0, Some(0), RunState::Running);
        a.checkpoint(100, Some(300)); // only 100 ns to take from
        assert_eq!(a.time, [0, 100, 0, 0]);
        assert_eq!(a.pending_run_delay_ns, 200);
        a.checkpoint(1_000, Some(300));
        assert_eq!(a.time, [700, 300, 0, 0]);
        assert_eq!(a.pending_run_delay_ns, 0);
        assert_eq!(sum(&a), 1_000);
    }

    #[test]
    fn monotonic_and_exact_under_random_checkpoints() {
        // A tiny xorshift so the test needs no dependency.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut a = Accounting::new(10);
        let (mut now, mut rd) = (10u64, 0u64);
        let mut prev = a.time;
        for i in 0..10_000 {
            now += next() % 5_000;
            rd += next() % 3_000; // may outgrow wall time: carried
            let state = match i % 7 {
                0 => RunState::Blocked,
                3 => RunState::Running,
                _ => a.state,
            };
            if a.state == RunState::Offline {
                a.transition(now, Some(rd), RunState::Running);
            } else {
                a.transition(now, Some(rd), state);
            }
            assert_eq!(sum(&a), now - 10);
            assert!(a.time.iter().zip(&prev).all(|(now, before)| now >= before));
            prev = a.time;
        }
    }

    #[test]
    fn schedstat_line() {
        assert_eq!(
            parse_schedstat(b"123 456 7\n"),
            Some(SchedSample {
                cpu_ns: 123,
                run_delay_ns: 456
            })
        );
        assert_eq!(parse_schedstat(b"x"), None);
    }
}
