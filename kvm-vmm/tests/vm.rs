//! Real VMs on /dev/kvm. Each test prints "skipped: /dev/kvm unavailable:
//! <reason>" and returns when KVM cannot be used.
//!
//! Only accounting identities are asserted, no timings: the machine is
//! shared and has 2 cores for 4 vCPUs, so any vCPU may be starved for a
//! while. The identities hold exactly (0 ns tolerance) because the runstate
//! accounting partitions `[created, now]` into contiguous segments; the
//! approximation (how run delay splits a segment) cannot change the sum.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use vstats_kvm_vmm::stats::{KIND_CUMULATIVE, UNIT_NONE};
use vstats_kvm_vmm::{monotonic_ns, Error, RunState, RunningVm, VcpuReport, Vm, VmConfig};

fn start_or_skip(config: VmConfig) -> Option<RunningVm<'static>> {
    match Vm::start(config) {
        Ok(vm) => Some(vm),
        Err(e @ Error::KvmUnavailable { .. }) => {
            println!("skipped: /dev/kvm unavailable: {e}");
            None
        }
        Err(e) => panic!("Vm::start: {e}"),
    }
}

/// What a sink saw on its vCPU thread.
#[derive(Default)]
struct SinkLog {
    updates: u64,
    /// Reports whose four times did not add up to their wall time.
    sum_violations: u64,
    /// Reports where some time went backwards.
    monotonic_violations: u64,
    fresh_stats: u64,
    last: Option<VcpuReport>,
}

fn sink(log: Arc<Mutex<SinkLog>>) -> impl FnMut(&VcpuReport) + Send {
    move |r: &VcpuReport| {
        let mut log = log.lock().unwrap();
        log.updates += 1;
        if r.total_ns() != r.wall_ns() {
            log.sum_violations += 1;
        }
        if let Some(prev) = &log.last {
            if (0..4).any(|i| r.runstate_ns[i] < prev.runstate_ns[i]) || r.now_ns < prev.now_ns {
                log.monotonic_violations += 1;
            }
        }
        if r.stats_fresh {
            log.fresh_stats += 1;
        }
        log.last = Some(r.clone());
    }
}

#[test]
fn four_vcpus_for_one_second() {
    const N: u32 = 4;
    let before = monotonic_ns();
    let logs: Vec<_> = (0..N)
        .map(|_| Arc::new(Mutex::new(SinkLog::default())))
        .collect();
    let mut config = VmConfig::new(N);
    for (id, log) in (0..N).zip(&logs) {
        config = config.with_sink(id, sink(Arc::clone(log)));
    }
    let Some(vm) = start_or_skip(config) else {
        return;
    };

    // Poll like a publisher thread would.
    let mut polls = 0;
    while monotonic_ns() - before < 1_000_000_000 {
        std::thread::sleep(Duration::from_millis(100));
        for id in 0..N {
            let r = vm.vcpu_report(id).unwrap();
            assert_eq!(
                r.total_ns(),
                r.wall_ns(),
                "vCPU {id}: external report sums to wall time"
            );
            assert_eq!(r.stats.len(), vm.vcpu_stats(id).unwrap().nr_words());
        }
        let v = vm.vm_report().unwrap();
        assert_eq!(v.vcpus_max, N);
        assert!(v.vcpus_online <= N);
        assert_eq!(v.uptime_ns, v.now_ns - v.created_ns);
        assert_eq!(v.stats.len(), vm.vm_stats().nr_words());
        polls += 1;
    }
    assert!(polls >= 1);

    let stopped = vm.stop().unwrap();
    let after = monotonic_ns();

    assert_eq!(stopped.vm.vcpus_online, 0);
    assert_eq!(stopped.vm.vcpus_max, N);
    assert!(stopped.vm.created_ns >= before && stopped.stopped_ns <= after);
    assert_eq!(
        stopped.vm.uptime_ns,
        stopped.stopped_ns - stopped.vm.created_ns
    );
    let mut fresh_vm = stopped.vm_stats().new_buffer();
    stopped.vm_stats().read(&mut fresh_vm).unwrap();
    assert_eq!(fresh_vm, stopped.vm.stats, "VM stats are final after stop");

    for id in 0..N {
        let r = &stopped.vcpus[id as usize];
        let e = &stopped.vcpu_errors[id as usize];
        assert!(e.is_none(), "vCPU {id}: {e:?}");
        println!(
            "vCPU {id}: running {} runnable {} blocked {} offline {} (pending {}) ns; kvm_run {} cpu {} ns; \
             exits {} io {} hlt {} intr {}; guest iterations {}",
            r.running_ns(),
            r.runnable_ns(),
            r.blocked_ns(),
            r.offline_ns(),
            r.pending_run_delay_ns,
            r.kvm_run_ns,
            r.host_cpu_ns,
            r.exits,
            r.io_exits,
            r.hlt_exits,
            r.interrupted,
            r.guest_iterations
        );

        // Runstates: it ran, it halted, and the four add up to its lifetime.
        assert_eq!(r.state, RunState::Offline);
        assert_eq!(r.now_ns, stopped.stopped_ns);
        assert!(r.running_ns() > 0, "vCPU {id} ran");
        assert!(r.blocked_ns() > 0, "vCPU {id} blocked");
        assert!(
            r.offline_ns() > 0,
            "vCPU {id} was offline before start / after stop"
        );
        assert_eq!(
            r.total_ns(),
            stopped.stopped_ns - r.created_ns,
            "vCPU {id}: sum == wall time"
        );
        // Runnable is exactly the run delay the scheduler reported, minus
        // what is still carried.
        assert_eq!(
            r.runnable_ns() + r.pending_run_delay_ns,
            r.host_run_delay_ns,
            "vCPU {id}"
        );
        // Time inside KVM_RUN lies within running segments (which runnable
        // may have been carved out of).
        assert!(
            r.kvm_run_ns <= r.running_ns() + r.runnable_ns(),
            "vCPU {id}"
        );
        // Offline keeps growing after stop; the sum stays the wall time.
        let later = stopped
            .vcpu_report_at(id, stopped.stopped_ns + 5_000)
            .unwrap();
        assert_eq!(later.offline_ns(), r.offline_ns() + 5_000);
        assert_eq!(later.total_ns(), later.wall_ns());

        // The guest made progress and computed correctly.
        assert!(r.guest_reports > 0, "vCPU {id}: guest reported");
        assert_eq!(
            r.guest_iterations, r.guest_reports,
            "vCPU {id}: counter increments by one per report"
        );
        assert_eq!(r.guest_checksum_errors, 0);
        assert_eq!(r.unknown_io, 0);
        assert!(r.hlt_exits > 0, "vCPU {id}: halted");
        // Two `out`s per iteration; stop may land between them.
        assert!(r.io_exits + 1 >= 2 * r.guest_reports, "vCPU {id}");

        // KVM's own counters. An `out` is counted in `io_exits` when the
        // CPU runs the guest and traps the instruction (hardware
        // virtualization); where KVM instead emulates the guest instruction
        // by instruction (software/nested KVM, e.g. this CI's host), the
        // port write is handled by the emulator and counted in
        // `insn_emulation` while `io_exits` stays 0.
        let stats = stopped.vcpu_stats(id).unwrap();
        let kvm = |name: &str| {
            stats
                .value(&r.stats, name)
                .unwrap_or_else(|| panic!("no {name} stat"))
        };
        assert!(kvm("exits") > 0, "vCPU {id}: exits");
        assert!(kvm("halt_exits") >= r.hlt_exits, "vCPU {id}: halt_exits");
        let (io, emulated) = (kvm("io_exits"), kvm("insn_emulation"));
        println!(
            "vCPU {id}: KVM exits {} halt_exits {} io_exits {io} insn_emulation {emulated}",
            kvm("exits"),
            kvm("halt_exits")
        );
        assert!(
            io >= r.io_exits || (io == 0 && emulated > 0),
            "vCPU {id}: io_exits {io}, insn_emulation {emulated}"
        );
        let mut fresh = stats.new_buffer();
        stats.read(&mut fresh).unwrap();
        assert_eq!(
            fresh, r.stats,
            "vCPU {id}: final stats == fresh read after stop"
        );

        // The sink saw the same story, on the vCPU thread.
        let log = logs[id as usize].lock().unwrap();
        assert!(log.updates >= 3, "vCPU {id}: {} sink updates", log.updates);
        assert_eq!(log.sum_violations, 0, "vCPU {id}");
        assert_eq!(log.monotonic_violations, 0, "vCPU {id}");
        assert!(log.fresh_stats >= 2, "stats read at start and at stop");
        let last = log.last.as_ref().unwrap();
        assert_eq!(last.state, RunState::Offline);
        assert_eq!(last.runstate_ns[..3], r.runstate_ns[..3]);
        assert_eq!(last.stats, r.stats);
        assert!(last.offline_ns() <= r.offline_ns());
    }
}

#[test]
fn thread_safety_of_the_interface() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<RunningVm<'static>>();
    send_sync::<RunningVm<'_>>();
    send_sync::<vstats_kvm_vmm::KvmStats>();
    send_sync::<VcpuReport>();
    send::<vstats_kvm_vmm::StoppedVm>();
    send::<Vm>();
}

#[test]
fn stats_descriptors_before_run() {
    let vm = match Vm::create(VmConfig::new(2)) {
        Ok(vm) => vm,
        Err(e @ Error::KvmUnavailable { .. }) => {
            println!("skipped: /dev/kvm unavailable: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    assert!(!vm.vm_stats().descs().is_empty());
    assert!(vm.vm_stats().id().starts_with("kvm-"));
    let vcpu = vm.vcpu_stats(1).unwrap();
    assert!(vcpu.id().ends_with("vcpu-1"), "{}", vcpu.id());
    let sum: usize = vcpu.descs().iter().map(|d| d.size as usize).sum();
    assert_eq!(vcpu.nr_words(), sum);
    for name in ["exits", "halt_exits", "io_exits"] {
        let d = &vcpu.descs()[vcpu.find(name).unwrap()];
        assert_eq!(
            (d.kind, d.unit, d.base, d.size),
            (KIND_CUMULATIVE, UNIT_NONE, 10, 1),
            "{name}"
        );
    }
    for d in vcpu.descs().iter().chain(vm.vm_stats().descs()) {
        assert!(!d.name.is_empty() && d.kind <= 4 && d.unit <= 4 && (d.base == 10 || d.base == 2));
    }
    let mut values = vcpu.new_buffer();
    vcpu.read(&mut values).unwrap();
    assert_eq!(vcpu.value(&values, "exits"), Some(0), "nothing ran yet");
    assert!(vcpu.read(&mut values[1..]).is_err());
    assert!(vm.vcpu_stats(2).is_none());
}

#[test]
fn drop_stops_promptly() {
    let config = VmConfig {
        nr_vcpus: 2,
        // Long halts and long computations: stop must still be prompt.
        halt_wake: Duration::from_secs(30),
        guest_spin_iters: u32::MAX,
        guest_compute: None,
        ..VmConfig::default()
    };
    let Some(vm) = start_or_skip(config) else {
        return;
    };
    std::thread::sleep(Duration::from_millis(50));
    let t = monotonic_ns();
    let stopped = vm.stop().unwrap();
    assert!(stopped.vcpu_errors.iter().all(Option::is_none));
    println!("stop took {} us", (monotonic_ns() - t) / 1000);
    for r in &stopped.vcpus {
        assert_eq!(r.total_ns(), r.wall_ns());
        assert!(
            r.interrupted > 0 || r.hlt_exits > 0,
            "kicked out of KVM_RUN or woken from halt"
        );
    }

    let config = VmConfig {
        halt_wake: Duration::from_secs(30),
        guest_spin_iters: 1,
        ..VmConfig::new(1)
    };
    let Some(vm) = start_or_skip(config) else {
        return;
    };
    // Wait (bounded) for the first halt; the machine may be busy.
    for _ in 0..500 {
        if vm.vcpu_report(0).unwrap().state == RunState::Blocked {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(vm.vcpu_report(0).unwrap().state, RunState::Blocked);
    drop(vm); // must wake the 30 s halt at once, or this test takes 30 s
}

#[test]
fn missing_device_is_kvm_unavailable() {
    let config = VmConfig {
        kvm_path: "/nonexistent/kvm".into(),
        ..VmConfig::new(1)
    };
    match Vm::start(config) {
        Err(Error::KvmUnavailable { path, op, source }) => {
            assert_eq!(path, "/nonexistent/kvm");
            assert_eq!(op, "open");
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected KvmUnavailable, got {other:?}"),
    }
}

#[test]
fn invalid_configs_are_rejected() {
    for config in [
        VmConfig::new(0),
        VmConfig {
            mem_size: 4096,
            ..VmConfig::new(1)
        },
        VmConfig {
            guest_spin_iters: 0,
            ..VmConfig::new(1)
        },
        VmConfig {
            kick_signal: libc_sigint(),
            ..VmConfig::new(1)
        },
        VmConfig::new(1).with_sink(1, |_: &VcpuReport| {}),
    ] {
        assert!(matches!(Vm::start(config), Err(Error::InvalidConfig(_))));
    }
}

fn libc_sigint() -> i32 {
    2
}

/// Scoped vCPU threads: sinks borrow the caller's stack, and stop still
/// kicks a vCPU out of a long `KVM_RUN` (the scoped kick path).
#[test]
fn scoped_threads_borrow_and_stop_promptly() {
    let config = VmConfig {
        nr_vcpus: 2,
        halt_wake: Duration::from_secs(30),
        guest_spin_iters: u32::MAX,
        guest_compute: None,
        ..VmConfig::default()
    };
    let vm = match Vm::create(config) {
        Ok(vm) => vm,
        Err(e @ Error::KvmUnavailable { .. }) => {
            println!("skipped: /dev/kvm unavailable: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let mut seen = [0u64; 2];
    let stopped = std::thread::scope(|scope| {
        let sinks = seen
            .iter_mut()
            .map(|n| {
                let sink: Box<dyn vstats_kvm_vmm::VcpuSink + '_> =
                    Box::new(move |_: &VcpuReport| *n += 1);
                Some(sink)
            })
            .collect();
        let vm = vm.run_scoped(scope, sinks).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        vm.stop()
    })
    .unwrap();
    for (id, r) in stopped.vcpus.iter().enumerate() {
        assert!(stopped.vcpu_errors[id].is_none());
        assert_eq!(r.total_ns(), r.wall_ns());
        assert!(r.interrupted > 0 || r.hlt_exits > 0, "vCPU {id} was kicked");
        assert!(seen[id] >= 2, "vCPU {id}: online and offline updates");
    }
}
