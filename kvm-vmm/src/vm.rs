//! VM creation, the vCPU threads, reports and stopping.

use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::Scope;
use std::time::Duration;

use kvm_bindings::kvm_regs;
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};

use crate::error::{Error, Result};
use crate::guest::{self, GuestMode, CHECKSUM_PORT, GUEST_LOAD_ADDR, REPORT_PORT};
use crate::report::{VcpuReport, VcpuSink, VmReport};
use crate::runstate::{Accounting, RunState, SchedSample, SchedStat};
use crate::stats::KvmStats;
use crate::sys::{self, GuestMemory, KickableThread, RunPage};

/// `KVM_CAP_BINARY_STATS_FD`.
const CAP_BINARY_STATS_FD: u64 = 203;
/// The only KVM API version there has ever been.
const KVM_API_VERSION: i32 = 12;
/// Where KVM's real-mode TSS (needed on Intel without unrestricted guest)
/// lives: three pages just below the 4 GiB BIOS area, far above guest RAM.
const TSS_ADDR: usize = 0xfffb_d000;
const PAGE_SIZE: usize = 4096;
/// How often `stop` re-sends the kick signal to a vCPU thread that has not
/// exited yet (covers a scoped thread that had not recorded its pthread id
/// at the first kick).
const KICK_RETRY: Duration = Duration::from_micros(500);

/// How to build a VM.
pub struct VmConfig {
    /// Number of vCPUs (1 ..= the host's `KVM_CAP_MAX_VCPUS`).
    pub nr_vcpus: u32,
    /// The guest program every vCPU runs.
    pub guest_mode: GuestMode,
    /// Guest RAM in bytes: a multiple of 4 KiB, at least 8 KiB.
    pub mem_size: usize,
    /// The KVM device.
    pub kvm_path: PathBuf,
    /// Initial inner-loop iterations per guest iteration (the computation
    /// phase). At least 1.
    pub guest_spin_iters: u32,
    /// Target length of the guest's computation phase. `Some`: at each halt
    /// the vCPU thread compares the time the phase took (time inside
    /// `KVM_RUN` since the last wake-up, minus the scheduler's run delay
    /// over it) with the target and, if it is off by more than 1.5x,
    /// rescales the guest's spin count (at most 16x per step). `None`: the
    /// spin count stays `guest_spin_iters`.
    pub guest_compute: Option<Duration>,
    /// How long a halted vCPU stays blocked before its wake-up timer fires.
    pub halt_wake: Duration,
    /// Minimum interval between two reads of a vCPU's KVM stats by its own
    /// thread (each read is a `pread`).
    pub stats_refresh: Duration,
    /// The real-time signal used to kick vCPU threads out of `KVM_RUN`.
    /// A no-op handler without `SA_RESTART` is installed for it
    /// process-wide; pick one nothing else in the process uses.
    pub kick_signal: i32,
    /// Optional sink per vCPU, indexed by vCPU id (missing entries: none).
    pub sinks: Vec<Option<Box<dyn VcpuSink>>>,
}

impl Default for VmConfig {
    fn default() -> Self {
        Self {
            nr_vcpus: 1,
            guest_mode: GuestMode::Default,
            mem_size: 1 << 20,
            kvm_path: PathBuf::from("/dev/kvm"),
            guest_spin_iters: 10_000,
            guest_compute: Some(Duration::from_millis(1)),
            halt_wake: Duration::from_millis(2),
            stats_refresh: Duration::from_millis(100),
            kick_signal: libc::SIGRTMIN(),
            sinks: Vec::new(),
        }
    }
}

impl fmt::Debug for VmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sinks: Vec<bool> = self.sinks.iter().map(Option::is_some).collect();
        f.debug_struct("VmConfig")
            .field("nr_vcpus", &self.nr_vcpus)
            .field("guest_mode", &self.guest_mode)
            .field("mem_size", &self.mem_size)
            .field("kvm_path", &self.kvm_path)
            .field("guest_spin_iters", &self.guest_spin_iters)
            .field("guest_compute", &self.guest_compute)
            .field("halt_wake", &self.halt_wake)
            .field("stats_refresh", &self.stats_refresh)
            .field("kick_signal", &self.kick_signal)
            .field("sinks", &sinks)
            .finish()
    }
}

impl VmConfig {
    /// The defaults with `nr_vcpus` vCPUs.
    pub fn new(nr_vcpus: u32) -> Self {
        Self {
            nr_vcpus,
            ..Self::default()
        }
    }

    /// Sets the guest program.
    pub fn with_guest_mode(mut self, mode: GuestMode) -> Self {
        self.guest_mode = mode;
        self
    }

    /// Sets the sink of vCPU `vcpu_id` (replacing any earlier one).
    pub fn with_sink(mut self, vcpu_id: u32, sink: impl VcpuSink + 'static) -> Self {
        let index = vcpu_id as usize;
        if self.sinks.len() <= index {
            self.sinks.resize_with(index + 1, || None);
        }
        self.sinks[index] = Some(Box::new(sink));
        self
    }

    fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidConfig(msg));
        if self.nr_vcpus == 0 {
            return bad("nr_vcpus must be at least 1".into());
        }
        let code = self.guest_mode.code();
        let min = (GUEST_LOAD_ADDR as usize + code.len()).next_multiple_of(PAGE_SIZE);
        if self.mem_size < min || self.mem_size % PAGE_SIZE != 0 {
            return bad(format!(
                "mem_size {} must be a multiple of {PAGE_SIZE} and at least {min}",
                self.mem_size
            ));
        }
        if self.guest_spin_iters == 0 {
            return bad("guest_spin_iters must be at least 1".into());
        }
        if !(libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&self.kick_signal) {
            return bad(format!(
                "kick_signal {} is not a real-time signal",
                self.kick_signal
            ));
        }
        if self.sinks.len() > self.nr_vcpus as usize {
            return bad(format!(
                "{} sinks for {} vCPUs",
                self.sinks.len(),
                self.nr_vcpus
            ));
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Flags shared by the VM and all vCPU threads.
#[derive(Debug, Default)]
struct Control {
    stop: AtomicBool,
    online: AtomicU32,
    /// vCPUs whose [`GuestMode::SpinNoExit`] guest has made its one report
    /// (counted after the checkpoint of that report was committed).
    spinning: AtomicU32,
}

/// What a vCPU thread last published, for readers on other threads.
#[derive(Debug)]
struct Snapshot {
    acct: Accounting,
    /// Every field but `stats` (kept empty to avoid copying it each time).
    report: VcpuReport,
    stats: Vec<u64>,
    stats_ns: u64,
}

#[derive(Debug)]
struct VcpuShared {
    stats: Arc<KvmStats>,
    snapshot: Mutex<Snapshot>,
    /// The vCPU's `kvm_run` page, for `immediate_exit` at stop.
    run_page: RunPage,
}

impl VcpuShared {
    /// The published report, projected to "now" (`now == None`) or to a
    /// given instant, with the in-progress interval included.
    fn report(&self, now: Option<u64>) -> VcpuReport {
        let (acct, mut report) = {
            let snap = lock(&self.snapshot);
            let mut report = snap.report.clone();
            report.stats.clone_from(&snap.stats);
            report.stats_ns = snap.stats_ns;
            (snap.acct, report)
        };
        let run_delay = if acct.state != RunState::Offline && report.tid != 0 {
            SchedStat::open(report.tid)
                .ok()
                .and_then(|s| s.read())
                .map(|s| s.run_delay_ns)
        } else {
            None
        };
        let now = now
            .unwrap_or_else(vstats_producer::monotonic_ns)
            .max(acct.last_ns);
        fill_times(&mut report, &acct.project(now, run_delay));
        report.stats_fresh = false;
        report
    }
}

fn fill_times(report: &mut VcpuReport, acct: &Accounting) {
    report.now_ns = acct.last_ns;
    report.state = acct.state;
    report.state_entry_ns = acct.state_entry_ns;
    report.runstate_ns = acct.time;
    report.pending_run_delay_ns = acct.pending_run_delay_ns;
}

/// A vCPU that has been created but whose thread has not started.
struct PendingVcpu {
    fd: VcpuFd,
    shared: Arc<VcpuShared>,
    sink: Option<Box<dyn VcpuSink>>,
}

/// A created VM whose vCPU threads have not started yet.
///
/// [`Vm::start`] is [`Vm::create`] followed by [`Vm::run`]; the two-step
/// form lets a caller look at the KVM stats descriptors (to lay out a stats
/// table) and attach sinks before any vCPU runs. Until `run`, every vCPU is
/// offline.
pub struct Vm {
    created_ns: u64,
    guest_mode: GuestMode,
    kvm_max_vcpus: u32,
    spin: u32,
    compute_target_ns: Option<u64>,
    halt_wake_ns: u64,
    stats_refresh_ns: u64,
    kick_signal: i32,
    vm_stats: Arc<KvmStats>,
    vcpus: Vec<PendingVcpu>,
    // Drop order: vCPU fds (above) and the VM fd go before guest memory.
    // Each vCPU thread also holds the memory, dropped after its vCPU fd, so
    // the mapping outlives every vCPU that could run.
    vm_fd: VmFd,
    memory: Arc<GuestMemory>,
    kvm: Kvm,
}

impl fmt::Debug for Vm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vm")
            .field("created_ns", &self.created_ns)
            .field("nr_vcpus", &self.vcpus.len())
            .finish_non_exhaustive()
    }
}

impl Vm {
    /// Creates and starts a VM: [`Vm::create`] then [`Vm::run`].
    pub fn start(config: VmConfig) -> Result<RunningVm<'static>> {
        Vm::create(config)?.run()
    }

    /// Creates the VM, its memory (with the guest program loaded), its vCPUs
    /// and their stats files. Fails with [`Error::KvmUnavailable`] if the
    /// KVM device cannot be opened or cannot create a VM.
    pub fn create(mut config: VmConfig) -> Result<Vm> {
        config.validate()?;
        let path = config.kvm_path.display().to_string();
        let unavailable = |op, e: kvm_ioctls::Error| Error::KvmUnavailable {
            path: path.clone(),
            op,
            source: std::io::Error::from_raw_os_error(e.errno()),
        };
        let c_path = CString::new(config.kvm_path.as_os_str().as_bytes())
            .map_err(|_| Error::InvalidConfig(format!("kvm_path {path:?} contains a NUL byte")))?;
        let kvm = Kvm::new_with_path(c_path.as_c_str()).map_err(|e| unavailable("open", e))?;
        let version = kvm.get_api_version();
        if version != KVM_API_VERSION {
            return Err(Error::KvmUnavailable {
                path,
                op: "KVM_GET_API_VERSION",
                source: std::io::Error::other(format!(
                    "API version {version}, need {KVM_API_VERSION}"
                )),
            });
        }
        if kvm.check_extension_raw(CAP_BINARY_STATS_FD) <= 0 {
            return Err(Error::StatsUnsupported);
        }
        let kvm_max_vcpus = u32::try_from(kvm.get_max_vcpus()).unwrap_or(u32::MAX);
        if config.nr_vcpus > kvm_max_vcpus {
            return Err(Error::InvalidConfig(format!(
                "nr_vcpus {} exceeds KVM_CAP_MAX_VCPUS {kvm_max_vcpus}",
                config.nr_vcpus
            )));
        }
        let vm_fd = kvm
            .create_vm()
            .map_err(|e| unavailable("KVM_CREATE_VM", e))?;
        let created_ns = vstats_producer::monotonic_ns();
        vm_fd
            .set_tss_address(TSS_ADDR)
            .map_err(|e| Error::kvm("KVM_SET_TSS_ADDR", e))?;

        let mut memory =
            GuestMemory::new(config.mem_size).map_err(|e| Error::io("mmap guest memory", e))?;
        memory
            .write(GUEST_LOAD_ADDR as usize, config.guest_mode.code())
            .map_err(|e| Error::io("loading the guest program", e))?;
        let memory = Arc::new(memory);
        sys::register_memory(&vm_fd, 0, 0, &memory)
            .map_err(|e| Error::kvm("KVM_SET_USER_MEMORY_REGION", e))?;

        let vm_stats =
            sys::get_stats_fd(&vm_fd).map_err(|e| Error::io("KVM_GET_STATS_FD (VM)", e))?;
        let vm_stats = Arc::new(KvmStats::from_file(vm_stats)?);

        let mut sinks = std::mem::take(&mut config.sinks).into_iter();
        let mut vcpus = Vec::with_capacity(config.nr_vcpus as usize);
        for id in 0..config.nr_vcpus {
            let fd = vm_fd
                .create_vcpu(u64::from(id))
                .map_err(|e| Error::kvm("KVM_CREATE_VCPU", e))?;
            let mut sregs = fd.get_sregs().map_err(|e| Error::kvm("KVM_GET_SREGS", e))?;
            sregs.cs.base = 0;
            sregs.cs.selector = 0;
            fd.set_sregs(&sregs)
                .map_err(|e| Error::kvm("KVM_SET_SREGS", e))?;
            let regs = kvm_regs {
                rip: GUEST_LOAD_ADDR,
                rflags: 0x2,
                rsi: u64::from(config.guest_spin_iters),
                ..Default::default()
            };
            fd.set_regs(&regs)
                .map_err(|e| Error::kvm("KVM_SET_REGS", e))?;
            let stats =
                sys::get_stats_fd(&fd).map_err(|e| Error::io("KVM_GET_STATS_FD (vCPU)", e))?;
            let stats = Arc::new(KvmStats::from_file(stats)?);
            let run_page = RunPage::map(&fd).map_err(|e| Error::io("mmap kvm_run", e))?;
            let mut report = VcpuReport::new(id, created_ns, 0);
            report.guest_spin_iters = config.guest_spin_iters;
            let shared = Arc::new(VcpuShared {
                snapshot: Mutex::new(Snapshot {
                    acct: Accounting::new(created_ns),
                    report,
                    stats: stats.new_buffer(),
                    stats_ns: 0,
                }),
                stats,
                run_page,
            });
            vcpus.push(PendingVcpu {
                fd,
                shared,
                sink: sinks.next().flatten(),
            });
        }
        sys::install_kick_handler(config.kick_signal)
            .map_err(|e| Error::io("sigaction (kick signal)", e))?;
        Ok(Vm {
            created_ns,
            guest_mode: config.guest_mode,
            kvm_max_vcpus,
            spin: config.guest_spin_iters,
            compute_target_ns: config.guest_compute.map(nanos),
            halt_wake_ns: nanos(config.halt_wake),
            stats_refresh_ns: nanos(config.stats_refresh),
            kick_signal: config.kick_signal,
            vm_stats,
            vcpus,
            vm_fd,
            memory,
            kvm,
        })
    }

    /// When the VM was created (`CLOCK_MONOTONIC` ns).
    pub fn created_ns(&self) -> u64 {
        self.created_ns
    }

    /// Number of vCPUs.
    pub fn nr_vcpus(&self) -> u32 {
        self.vcpus.len() as u32
    }

    /// The VM-wide KVM stats.
    pub fn vm_stats(&self) -> &KvmStats {
        &self.vm_stats
    }

    /// The KVM stats of vCPU `vcpu_id`.
    pub fn vcpu_stats(&self, vcpu_id: u32) -> Option<&KvmStats> {
        self.vcpus.get(vcpu_id as usize).map(|v| &*v.shared.stats)
    }

    /// Sets (or replaces) the sink of vCPU `vcpu_id`.
    pub fn set_sink(&mut self, vcpu_id: u32, sink: Box<dyn VcpuSink>) -> Result<()> {
        let vcpu = self
            .vcpus
            .get_mut(vcpu_id as usize)
            .ok_or(Error::NoSuchVcpu(vcpu_id))?;
        vcpu.sink = Some(sink);
        Ok(())
    }

    /// Starts one thread per vCPU (named `vcpu<N>`), each owning its sink
    /// (`'static`: set with [`VmConfig::with_sink`] or [`Vm::set_sink`]).
    pub fn run(self) -> Result<RunningVm<'static>> {
        self.spawn_vcpus(Vec::new(), |builder, thread| {
            KickableThread::spawn(builder, move || thread.main())
        })
    }

    /// Starts one thread per vCPU inside `scope`, so that sinks may borrow
    /// from the caller's stack frame (for example a stats table's record
    /// writers, which borrow the table). `sinks[i]`, when present, replaces
    /// vCPU i's sink set earlier.
    ///
    /// The returned [`RunningVm`] cannot leave the scope's closure; stop it
    /// (or drop it) there: the scope waits for every vCPU thread to end, and
    /// the threads run until the VM is stopped.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when there are more sinks than vCPUs; the
    /// errors of [`Vm::run`].
    ///
    /// # Examples
    ///
    /// ```
    /// use vstats_kvm_vmm::{Error, VcpuReport, VcpuSink, Vm, VmConfig};
    ///
    /// let vm = match Vm::create(VmConfig::new(1)) {
    ///     Err(Error::KvmUnavailable { .. }) => return,
    ///     other => other.unwrap(),
    /// };
    /// let mut last_running = 0u64; // on this stack frame, not 'static
    /// let stopped = std::thread::scope(|scope| {
    ///     let sink: Box<dyn VcpuSink + '_> =
    ///         Box::new(|r: &VcpuReport| last_running = r.running_ns());
    ///     let running = vm.run_scoped(scope, vec![Some(sink)])?;
    ///     std::thread::sleep(std::time::Duration::from_millis(20));
    ///     running.stop()
    /// })
    /// .unwrap();
    /// assert_eq!(last_running, stopped.vcpus[0].running_ns());
    /// ```
    pub fn run_scoped<'scope>(
        self,
        scope: &'scope Scope<'scope, '_>,
        sinks: Vec<Option<Box<dyn VcpuSink + 'scope>>>,
    ) -> Result<RunningVm<'scope>> {
        if sinks.len() > self.vcpus.len() {
            return Err(Error::InvalidConfig(format!(
                "{} sinks for {} vCPUs",
                sinks.len(),
                self.vcpus.len()
            )));
        }
        self.spawn_vcpus(sinks, |builder, thread| {
            KickableThread::spawn_scoped(builder, scope, move || thread.main())
        })
    }

    /// Starts the vCPU threads with `spawn`; `sinks[i]` overrides vCPU i's
    /// sink.
    fn spawn_vcpus<'s>(
        self,
        sinks: Vec<Option<Box<dyn VcpuSink + 's>>>,
        mut spawn: impl FnMut(
            std::thread::Builder,
            VcpuThread<'s>,
        ) -> std::io::Result<KickableThread<'s, Result<()>>>,
    ) -> Result<RunningVm<'s>> {
        let control = Arc::new(Control::default());
        let nr_vcpus = self.vcpus.len() as u32;
        let mut running = RunningVm {
            control: Arc::clone(&control),
            created_ns: self.created_ns,
            nr_vcpus,
            kvm_max_vcpus: self.kvm_max_vcpus,
            kick_signal: self.kick_signal,
            vm_stats: self.vm_stats,
            vcpus: Vec::with_capacity(self.vcpus.len()),
            errors: Vec::new(),
            _vm_fd: self.vm_fd,
            _memory: Arc::clone(&self.memory),
            _kvm: self.kvm,
        };
        let mut sinks = sinks.into_iter();
        for (id, pending) in (0u32..).zip(self.vcpus) {
            let sink: Option<Box<dyn VcpuSink + 's>> = match sinks.next().flatten() {
                Some(sink) => Some(sink),
                None => pending.sink.map(|s| s as Box<dyn VcpuSink + 's>),
            };
            let shared = Arc::clone(&pending.shared);
            let mut report = VcpuReport::new(id, self.created_ns, pending.shared.stats.nr_words());
            report.guest_spin_iters = self.spin;
            let thread = VcpuThread {
                id,
                guest_mode: self.guest_mode,
                _memory: Arc::clone(&self.memory),
                report,
                acct: Accounting::new(self.created_ns),
                fd: pending.fd,
                shared: pending.shared,
                control: Arc::clone(&control),
                sink,
                sched: None,
                cpu_base: 0,
                run_delay_base: 0,
                compute_target_ns: self.compute_target_ns,
                expected_checksum: 0,
                phase_start: (0, 0),
                halt_wake_ns: self.halt_wake_ns,
                stats_refresh_ns: self.stats_refresh_ns,
                kick_signal: self.kick_signal,
            };
            let handle = spawn(
                std::thread::Builder::new().name(format!("vcpu{id}")),
                thread,
            );
            match handle {
                Ok(handle) => running.vcpus.push(VcpuHandle {
                    shared,
                    thread: Some(handle),
                }),
                // Dropping `running` stops the threads already started.
                Err(e) => return Err(Error::io("spawning a vCPU thread", e)),
            }
        }
        Ok(running)
    }
}

/// What a vCPU thread owns; `'s` bounds its sink.
struct VcpuThread<'s> {
    id: u32,
    guest_mode: GuestMode,
    fd: VcpuFd,
    /// Declared after `fd`: the guest RAM stays mapped until the vCPU fd is
    /// closed.
    _memory: Arc<GuestMemory>,
    shared: Arc<VcpuShared>,
    control: Arc<Control>,
    sink: Option<Box<dyn VcpuSink + 's>>,
    acct: Accounting,
    report: VcpuReport,
    sched: Option<SchedStat>,
    cpu_base: u64,
    run_delay_base: u64,
    compute_target_ns: Option<u64>,
    /// The VMM's model of the guest's EBX.
    expected_checksum: u32,
    /// `(kvm_run_ns, run delay)` when the current computation phase began.
    phase_start: (u64, u64),
    halt_wake_ns: u64,
    stats_refresh_ns: u64,
    kick_signal: i32,
}

/// The part of a `KVM_RUN` exit the loop acts on, once the borrow of the
/// vCPU's `kvm_run` page has ended.
enum Action {
    Out(u16, u32),
    In,
    Halt,
    Interrupted,
    Unexpected(String),
}

impl VcpuThread<'_> {
    fn main(mut self) -> Result<()> {
        // A thread inherits its creator's mask; the kick must get through.
        let _ = sys::unblock_signal(self.kick_signal);
        self.report.tid = sys::gettid();
        self.sched = SchedStat::open(self.report.tid).ok();
        let (now, sample) = self.sample();
        self.cpu_base = sample.map_or(0, |s| s.cpu_ns);
        self.run_delay_base = sample.map_or(0, |s| s.run_delay_ns);
        self.phase_start = (0, self.run_delay_base);
        self.control.online.fetch_add(1, Ordering::SeqCst);
        self.commit(now, sample, Some(RunState::Running), true);

        let result = self.run_loop();

        let (now, sample) = self.sample();
        self.control.online.fetch_sub(1, Ordering::SeqCst);
        self.commit(now, sample, Some(RunState::Offline), true);
        result
    }

    fn stopping(&self) -> bool {
        self.control.stop.load(Ordering::Acquire)
    }

    /// Run delay first, then the clock (see `runstate` for why).
    fn sample(&self) -> (u64, Option<SchedSample>) {
        let sample = self.sched.as_ref().and_then(SchedStat::read);
        (vstats_producer::monotonic_ns(), sample)
    }

    fn run_loop(&mut self) -> Result<()> {
        while !self.stopping() {
            let entered = vstats_producer::monotonic_ns();
            let action = match self.fd.run() {
                Ok(VcpuExit::IoOut(port, data)) => {
                    let mut word = [0u8; 4];
                    let n = data.len().min(4);
                    word[..n].copy_from_slice(&data[..n]);
                    Action::Out(port, u32::from_le_bytes(word))
                }
                Ok(VcpuExit::IoIn(_, data)) => {
                    data.fill(0);
                    Action::In
                }
                Ok(VcpuExit::Hlt) => Action::Halt,
                Ok(VcpuExit::Intr) => Action::Interrupted,
                Ok(other) => Action::Unexpected(format!("{other:?}")),
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                    Action::Interrupted
                }
                Err(e) => return Err(Error::kvm("KVM_RUN", e)),
            };
            let left = vstats_producer::monotonic_ns();
            self.report.kvm_run_ns += left.saturating_sub(entered);
            self.report.exits += 1;
            let mut started_spinning = false;
            match action {
                Action::Out(port, value) => {
                    self.report.io_exits += 1;
                    started_spinning = self.on_out(port, value);
                }
                Action::In => self.report.io_exits += 1,
                Action::Interrupted => self.report.interrupted += 1,
                Action::Unexpected(exit) => {
                    return Err(Error::UnexpectedExit {
                        vcpu: self.id,
                        exit,
                    })
                }
                Action::Halt => {
                    self.report.hlt_exits += 1;
                    if !self.halt()? {
                        return Ok(());
                    }
                    continue;
                }
            }
            let (now, sample) = self.sample();
            // The spinning guest's one report is the last checkpoint until
            // stop: it carries fresh KVM stats.
            self.commit(now, sample, None, started_spinning);
            if started_spinning {
                self.control.spinning.fetch_add(1, Ordering::SeqCst);
            }
        }
        Ok(())
    }

    /// Handles a guest `out`. Returns true when it is the
    /// [`GuestMode::SpinNoExit`] guest's report, the vCPU's last exit until
    /// the VM stops.
    fn on_out(&mut self, port: u16, value: u32) -> bool {
        match port {
            REPORT_PORT if self.guest_mode == GuestMode::SpinNoExit => {
                self.report.guest_iterations = u64::from(value);
                self.report.guest_reports += 1;
                let first = !self.report.guest_spinning;
                self.report.guest_spinning = true;
                return first;
            }
            REPORT_PORT => {
                self.report.guest_iterations = u64::from(value);
                self.report.guest_reports += 1;
                self.expected_checksum = self
                    .expected_checksum
                    .wrapping_add(guest::checksum_step(self.report.guest_spin_iters));
            }
            CHECKSUM_PORT => {
                if value != self.expected_checksum {
                    self.report.guest_checksum_errors += 1;
                }
            }
            _ => self.report.unknown_io += 1,
        }
        false
    }

    /// Blocks until the wake-up timer fires. Returns false if the VM is
    /// stopping (the vCPU then goes offline straight from blocked).
    fn halt(&mut self) -> Result<bool> {
        let (mut now, mut sample) = self.sample();
        if self.calibrate(sample)? {
            (now, sample) = self.sample();
        }
        self.commit(now, sample, Some(RunState::Blocked), false);
        let deadline = now.saturating_add(self.halt_wake_ns);
        loop {
            if self.stopping() {
                return Ok(false);
            }
            let t = vstats_producer::monotonic_ns();
            if t >= deadline {
                break;
            }
            // Woken early by `unpark` (stop) or spuriously: re-check.
            std::thread::park_timeout(Duration::from_nanos(deadline - t));
        }
        self.report.wakeups += 1;
        let (now, sample) = self.sample();
        self.phase_start = (
            self.report.kvm_run_ns,
            sample.map_or(self.phase_start.1, |s| s.run_delay_ns),
        );
        self.commit(now, sample, Some(RunState::Running), false);
        Ok(true)
    }

    /// At a halt: rescales the guest's spin count if the computation phase
    /// that just ended was far from the target. Returns whether it did.
    fn calibrate(&mut self, sample: Option<SchedSample>) -> Result<bool> {
        let Some(target) = self.compute_target_ns else {
            return Ok(false);
        };
        let (run_at_start, delay_at_start) = self.phase_start;
        let delay = sample.map_or(0, |s| s.run_delay_ns.saturating_sub(delay_at_start));
        let took = self
            .report
            .kvm_run_ns
            .saturating_sub(run_at_start)
            .saturating_sub(delay)
            .max(1);
        if took.saturating_mul(3) >= target.saturating_mul(2)
            && took.saturating_mul(2) <= target.saturating_mul(3)
        {
            return Ok(false);
        }
        let spin = u64::from(self.report.guest_spin_iters);
        let scaled = (u128::from(spin) * u128::from(target) / u128::from(took)) as u64;
        let new_spin = scaled
            .clamp((spin / 16).max(1), spin.saturating_mul(16))
            .min(u64::from(u32::MAX));
        if new_spin == spin {
            return Ok(false);
        }
        let mut regs = self
            .fd
            .get_regs()
            .map_err(|e| Error::kvm("KVM_GET_REGS", e))?;
        regs.rsi = new_spin;
        self.fd
            .set_regs(&regs)
            .map_err(|e| Error::kvm("KVM_SET_REGS", e))?;
        self.report.guest_spin_iters = new_spin as u32;
        self.report.guest_recalibrations += 1;
        Ok(true)
    }

    /// Checkpoints the accounting (optionally changing state), refreshes the
    /// KVM stats if due, feeds the sink and publishes the snapshot.
    fn commit(
        &mut self,
        now: u64,
        sample: Option<SchedSample>,
        state: Option<RunState>,
        force_stats: bool,
    ) {
        let run_delay = sample.map(|s| s.run_delay_ns);
        match state {
            Some(state) => self.acct.transition(now, run_delay, state),
            None => self.acct.checkpoint(now, run_delay),
        }
        if let Some(s) = sample {
            self.report.host_cpu_ns = s.cpu_ns.saturating_sub(self.cpu_base);
            self.report.host_run_delay_ns = s.run_delay_ns.saturating_sub(self.run_delay_base);
        }
        fill_times(&mut self.report, &self.acct);

        let due = self.report.stats_ns == 0
            || now.saturating_sub(self.report.stats_ns) >= self.stats_refresh_ns;
        self.report.stats_fresh = false;
        if force_stats || due {
            match self.shared.stats.read(&mut self.report.stats) {
                Ok(()) => {
                    self.report.stats_ns = now;
                    self.report.stats_fresh = true;
                }
                Err(_) => self.report.stats_errors += 1,
            }
        }

        if let Some(sink) = self.sink.as_mut() {
            sink.on_update(&self.report);
        }

        let stats = std::mem::take(&mut self.report.stats);
        {
            let mut snap = lock(&self.shared.snapshot);
            snap.acct = self.acct;
            snap.report = self.report.clone();
            if self.report.stats_fresh {
                snap.stats.copy_from_slice(&stats);
                snap.stats_ns = self.report.stats_ns;
            }
        }
        self.report.stats = stats;
    }
}

struct VcpuHandle<'s> {
    shared: Arc<VcpuShared>,
    thread: Option<KickableThread<'s, Result<()>>>,
}

/// A VM whose vCPU threads are running. Dropping it stops the VM (like
/// [`RunningVm::stop`], discarding the final reports).
///
/// `'scope` is `'static` for [`Vm::run`], the thread scope's lifetime for
/// [`Vm::run_scoped`].
pub struct RunningVm<'scope> {
    control: Arc<Control>,
    created_ns: u64,
    nr_vcpus: u32,
    kvm_max_vcpus: u32,
    kick_signal: i32,
    vm_stats: Arc<KvmStats>,
    vcpus: Vec<VcpuHandle<'scope>>,
    errors: Vec<Option<Error>>,
    // Dropped after the vCPU threads are joined (in `Drop`), VM fd first.
    _vm_fd: VmFd,
    _memory: Arc<GuestMemory>,
    _kvm: Kvm,
}

impl fmt::Debug for RunningVm<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningVm")
            .field("created_ns", &self.created_ns)
            .field("nr_vcpus", &self.nr_vcpus)
            .field("vcpus_online", &self.control.online.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RunningVm<'_> {
    /// When the VM was created (`CLOCK_MONOTONIC` ns).
    pub fn created_ns(&self) -> u64 {
        self.created_ns
    }

    /// Number of vCPUs.
    pub fn nr_vcpus(&self) -> u32 {
        self.nr_vcpus
    }

    /// vCPU threads currently online.
    pub fn vcpus_online(&self) -> u32 {
        self.control.online.load(Ordering::SeqCst)
    }

    /// vCPUs whose [`GuestMode::SpinNoExit`] guest has made its one report
    /// and now spins without exits (always 0 in [`GuestMode::Default`]).
    ///
    /// A vCPU is counted once the checkpoint of that report is complete:
    /// its sink has run (a publisher's record holds it) and
    /// [`RunningVm::vcpu_report`] sees it. From then on the vCPU thread
    /// writes nothing until the VM stops.
    pub fn vcpus_spinning(&self) -> u32 {
        self.control.spinning.load(Ordering::SeqCst)
    }

    /// The VM-wide KVM stats (shareable: reads take `&self`).
    pub fn vm_stats(&self) -> &Arc<KvmStats> {
        &self.vm_stats
    }

    /// The KVM stats of vCPU `vcpu_id`.
    pub fn vcpu_stats(&self, vcpu_id: u32) -> Option<&Arc<KvmStats>> {
        self.vcpus.get(vcpu_id as usize).map(|v| &v.shared.stats)
    }

    /// vCPU `vcpu_id` as of now, from any thread: the vCPU thread's last
    /// published report with the in-progress interval added (reading the
    /// thread's run delay) and its KVM stats re-read now.
    ///
    /// The four times add up to the wall time exactly. Unlike the reports a
    /// sink gets on the vCPU thread, two calls from another thread can see a
    /// time step back by the scheduling wait in progress at the first call
    /// (the kernel adds a wait to the run delay only when it ends, so the
    /// first call charges it to the current state, the second to runnable).
    pub fn vcpu_report(&self, vcpu_id: u32) -> Result<VcpuReport> {
        let vcpu = self
            .vcpus
            .get(vcpu_id as usize)
            .ok_or(Error::NoSuchVcpu(vcpu_id))?;
        let mut report = vcpu.shared.report(None);
        vcpu.shared
            .stats
            .read(&mut report.stats)
            .map_err(|e| Error::io("reading vCPU KVM stats", e))?;
        report.stats_ns = report.now_ns;
        report.stats_fresh = true;
        Ok(report)
    }

    /// The VM as of now: uptime, vCPU counts and freshly read VM-wide KVM
    /// stats.
    pub fn vm_report(&self) -> Result<VmReport> {
        let mut stats = self.vm_stats.new_buffer();
        self.vm_stats
            .read(&mut stats)
            .map_err(|e| Error::io("reading VM KVM stats", e))?;
        let now_ns = vstats_producer::monotonic_ns();
        Ok(self.make_vm_report(now_ns, stats))
    }

    fn make_vm_report(&self, now_ns: u64, stats: Vec<u64>) -> VmReport {
        VmReport {
            created_ns: self.created_ns,
            now_ns,
            uptime_ns: now_ns.saturating_sub(self.created_ns),
            vcpus_online: self.control.online.load(Ordering::SeqCst),
            vcpus_max: self.nr_vcpus,
            kvm_max_vcpus: self.kvm_max_vcpus,
            stats,
        }
    }

    /// Stops every vCPU (sets the stop flag, sets `immediate_exit` in each
    /// vCPU's `kvm_run`, wakes halted vCPUs, kicks running ones out of
    /// `KVM_RUN` with the kick signal), joins the threads and returns the
    /// final reports.
    ///
    /// A vCPU in `KVM_RUN` returns `EINTR` on the signal, even one whose
    /// guest never exits ([`GuestMode::SpinNoExit`]). A vCPU thread that
    /// checked the stop flag just before the flag was set, and enters
    /// `KVM_RUN` only after the signal was handled, finds `immediate_exit`
    /// set (it was written before the signal was sent) and returns `EINTR`
    /// at once instead of running the guest. `immediate_exit` is never
    /// cleared: a stopping vCPU does not enter the guest again. The kick is
    /// still re-sent every 500 µs until the thread has exited, for a
    /// scoped thread that had not yet recorded its pthread id (it is then
    /// only unparked).
    ///
    /// A vCPU that failed (see [`StoppedVm::vcpu_errors`]) still has a final
    /// report; `Err` is returned only if the final VM stats cannot be read.
    pub fn stop(mut self) -> Result<StoppedVm> {
        self.shutdown();
        let stopped_ns = vstats_producer::monotonic_ns();
        let vcpus = self
            .vcpus
            .iter()
            .map(|v| v.shared.report(Some(stopped_ns)))
            .collect();
        let mut stats = self.vm_stats.new_buffer();
        self.vm_stats
            .read(&mut stats)
            .map_err(|e| Error::io("reading VM KVM stats", e))?;
        let vm = self.make_vm_report(stopped_ns, stats);
        Ok(StoppedVm {
            stopped_ns,
            vcpus,
            vm,
            vcpu_errors: std::mem::take(&mut self.errors),
            vm_stats: Arc::clone(&self.vm_stats),
            vcpu_stats: self
                .vcpus
                .iter()
                .map(|v| Arc::clone(&v.shared.stats))
                .collect(),
        })
    }

    fn shutdown(&mut self) {
        self.control.stop.store(true, Ordering::SeqCst);
        for vcpu in &self.vcpus {
            // Before the signal: a `KVM_RUN` entered after the signal was
            // handled must see it.
            vcpu.shared.run_page.request_immediate_exit();
            if let Some(handle) = &vcpu.thread {
                let _ = handle.kick(self.kick_signal);
            }
        }
        for (id, vcpu) in (0u32..).zip(&mut self.vcpus) {
            let Some(handle) = vcpu.thread.take() else {
                continue;
            };
            while !handle.is_finished() {
                std::thread::sleep(KICK_RETRY);
                let _ = handle.kick(self.kick_signal);
            }
            let error = match handle.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => {
                    // The thread died without going offline: do it for it.
                    let now = vstats_producer::monotonic_ns();
                    let mut snap = lock(&vcpu.shared.snapshot);
                    if snap.acct.state != RunState::Offline {
                        snap.acct.transition(now, None, RunState::Offline);
                        let acct = snap.acct;
                        fill_times(&mut snap.report, &acct);
                        self.control.online.fetch_sub(1, Ordering::SeqCst);
                    }
                    Some(Error::VcpuPanicked { vcpu: id })
                }
            };
            self.errors.push(error);
        }
    }
}

impl Drop for RunningVm<'_> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A stopped VM: final reports, plus the still-open stats files.
///
/// All final reports describe the same instant, `stopped_ns`. Offline time
/// keeps growing after it: [`StoppedVm::vcpu_report_at`] extends a report to
/// a later instant.
#[derive(Debug)]
pub struct StoppedVm {
    /// When the final reports were taken (after every thread was joined).
    pub stopped_ns: u64,
    /// Final per-vCPU reports as of `stopped_ns` (state offline); their
    /// `stats` are the values the vCPU thread read after its last `KVM_RUN`.
    pub vcpus: Vec<VcpuReport>,
    /// Final VM report as of `stopped_ns` (`vcpus_online == 0`).
    pub vm: VmReport,
    /// Per vCPU: the error that made the thread stop early, if any.
    pub vcpu_errors: Vec<Option<Error>>,
    vm_stats: Arc<KvmStats>,
    vcpu_stats: Vec<Arc<KvmStats>>,
}

impl StoppedVm {
    /// vCPU `vcpu_id`'s final report extended to `now_ns` (the extra time is
    /// offline).
    pub fn vcpu_report_at(&self, vcpu_id: u32, now_ns: u64) -> Option<VcpuReport> {
        let mut report = self.vcpus.get(vcpu_id as usize)?.clone();
        let extra = now_ns.saturating_sub(report.now_ns);
        report.runstate_ns[RunState::Offline.index()] += extra;
        report.now_ns += extra;
        report.stats_fresh = false;
        Some(report)
    }

    /// The VM-wide stats file (still readable after stop).
    pub fn vm_stats(&self) -> &KvmStats {
        &self.vm_stats
    }

    /// vCPU `vcpu_id`'s stats file (still readable after stop).
    pub fn vcpu_stats(&self, vcpu_id: u32) -> Option<&KvmStats> {
        self.vcpu_stats.get(vcpu_id as usize).map(|s| &**s)
    }
}
