//! The data interface: per-vCPU and per-VM reports, and the sink a vCPU
//! thread feeds.

use crate::runstate::RunState;

/// A snapshot of one vCPU: runstate times, VMM counters, guest progress and
/// the vCPU's KVM binary statistics.
///
/// All times are `CLOCK_MONOTONIC` nanoseconds. `runstate_ns` is complete
/// "as of `now_ns`": it includes the in-progress interval of the current
/// state, and `runstate_ns.iter().sum() == now_ns - created_ns` exactly
/// (see [`crate::runstate`] for how the interval is split).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VcpuReport {
    /// The vCPU id (0-based).
    pub vcpu_id: u32,
    /// Kernel thread id of the vCPU thread, 0 before it started.
    pub tid: i32,
    /// When the VM was created.
    pub created_ns: u64,
    /// The instant this snapshot describes.
    pub now_ns: u64,
    /// The current state (never [`RunState::Runnable`], which is derived).
    pub state: RunState,
    /// When the current state was entered.
    pub state_entry_ns: u64,
    /// Time in each state, indexed by [`RunState::index`] (Xen order:
    /// running, runnable, blocked, offline).
    pub runstate_ns: [u64; 4],
    /// Scheduler run delay observed but not yet charged to runnable (it
    /// exceeded the segment it was observed in; charged later).
    pub pending_run_delay_ns: u64,
    /// Time spent strictly inside the `KVM_RUN` ioctl (a subset of running
    /// plus the runnable time that overlapped it).
    pub kvm_run_ns: u64,
    /// CPU time of the vCPU thread since it started (schedstat field 1).
    pub host_cpu_ns: u64,
    /// Scheduler run delay of the vCPU thread since it started (schedstat
    /// field 2); equals `runnable + pending_run_delay_ns` at each checkpoint.
    pub host_run_delay_ns: u64,
    /// `KVM_RUN` calls that returned (any exit, including interrupted ones).
    pub exits: u64,
    /// Port I/O exits.
    pub io_exits: u64,
    /// `hlt` exits.
    pub hlt_exits: u64,
    /// `KVM_RUN` calls interrupted by a signal (`EINTR`/`KVM_EXIT_INTR`).
    pub interrupted: u64,
    /// Wake-ups from the halt timer.
    pub wakeups: u64,
    /// The last iteration count the guest reported on
    /// [`crate::guest::REPORT_PORT`].
    pub guest_iterations: u64,
    /// Number of iteration reports received.
    pub guest_reports: u64,
    /// True once the [`crate::guest::GuestMode::SpinNoExit`] guest has made
    /// its one report: from then on it spins without exits (always false
    /// in the default mode).
    pub guest_spinning: bool,
    /// Checksum reports that did not match the VMM's model of the guest
    /// computation (see [`crate::guest`]).
    pub guest_checksum_errors: u64,
    /// The guest's current inner-loop count (its `ESI`), as calibrated.
    pub guest_spin_iters: u32,
    /// Times the VMM rewrote the spin count to approach
    /// [`crate::VmConfig::guest_compute`].
    pub guest_recalibrations: u64,
    /// Writes to ports the VMM does not know.
    pub unknown_io: u64,
    /// The vCPU's KVM statistics, flattened in descriptor order (see
    /// [`crate::KvmStats`]), as of `stats_ns`.
    pub stats: Vec<u64>,
    /// When `stats` was last read (0: never).
    pub stats_ns: u64,
    /// True if `stats` was re-read for this report (the vCPU thread re-reads
    /// it at most once per [`crate::VmConfig::stats_refresh`]).
    pub stats_fresh: bool,
    /// Failed stats reads (the previous values are kept).
    pub stats_errors: u64,
}

impl VcpuReport {
    pub(crate) fn new(vcpu_id: u32, created_ns: u64, nr_stat_words: usize) -> Self {
        Self {
            vcpu_id,
            tid: 0,
            created_ns,
            now_ns: created_ns,
            state: RunState::Offline,
            state_entry_ns: created_ns,
            runstate_ns: [0; 4],
            pending_run_delay_ns: 0,
            kvm_run_ns: 0,
            host_cpu_ns: 0,
            host_run_delay_ns: 0,
            exits: 0,
            io_exits: 0,
            hlt_exits: 0,
            interrupted: 0,
            wakeups: 0,
            guest_iterations: 0,
            guest_reports: 0,
            guest_spinning: false,
            guest_checksum_errors: 0,
            guest_spin_iters: 0,
            guest_recalibrations: 0,
            unknown_io: 0,
            stats: vec![0; nr_stat_words],
            stats_ns: 0,
            stats_fresh: false,
            stats_errors: 0,
        }
    }

    /// Time in `state`.
    pub fn time(&self, state: RunState) -> u64 {
        self.runstate_ns[state.index()]
    }

    /// Running time.
    pub fn running_ns(&self) -> u64 {
        self.time(RunState::Running)
    }

    /// Runnable time.
    pub fn runnable_ns(&self) -> u64 {
        self.time(RunState::Runnable)
    }

    /// Blocked time.
    pub fn blocked_ns(&self) -> u64 {
        self.time(RunState::Blocked)
    }

    /// Offline time.
    pub fn offline_ns(&self) -> u64 {
        self.time(RunState::Offline)
    }

    /// Wall time the vCPU has existed: `now_ns - created_ns`.
    pub fn wall_ns(&self) -> u64 {
        self.now_ns.saturating_sub(self.created_ns)
    }

    /// Sum of the four runstate times (equals [`VcpuReport::wall_ns`]).
    pub fn total_ns(&self) -> u64 {
        self.runstate_ns.iter().sum()
    }
}

/// A snapshot of the VM as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmReport {
    /// When the VM was created (CLOCK_MONOTONIC ns).
    pub created_ns: u64,
    /// The instant this snapshot describes.
    pub now_ns: u64,
    /// `now_ns - created_ns`.
    pub uptime_ns: u64,
    /// vCPUs whose thread is currently started and not yet stopped.
    pub vcpus_online: u32,
    /// vCPUs the VM was created with.
    pub vcpus_max: u32,
    /// The host's per-VM vCPU limit (`KVM_CAP_MAX_VCPUS`).
    pub kvm_max_vcpus: u32,
    /// VM-wide KVM statistics, flattened in descriptor order.
    pub stats: Vec<u64>,
}

/// Receives a vCPU's reports on the vCPU thread itself.
///
/// The vCPU thread owns its sink (`Send`, not necessarily `Sync`) and calls
/// [`VcpuSink::on_update`] once when it comes online, after every `KVM_RUN`
/// exit, after every wake-up from a halt, and a last time after it went
/// offline. Keep it cheap: it runs on the vCPU's critical path (its time is
/// charged to running). A closure `FnMut(&VcpuReport) + Send` is a sink.
pub trait VcpuSink: Send {
    /// Called with the vCPU's report as of now.
    fn on_update(&mut self, report: &VcpuReport);
}

impl<F: FnMut(&VcpuReport) + Send> VcpuSink for F {
    fn on_update(&mut self, report: &VcpuReport) {
        self(report)
    }
}
