//! Runs a VM and prints its vCPUs' runstates and a few KVM counters.
//!
//! `cargo run -p vstats-kvm-vmm --example vmstat -- [vcpus] [seconds]`

use std::time::Duration;

use vstats_kvm_vmm::{Error, RunState, Vm, VmConfig};

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let nr_vcpus = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let vm = match Vm::start(VmConfig::new(nr_vcpus)) {
        Err(e @ Error::KvmUnavailable { .. }) => {
            eprintln!("{e}");
            return Ok(());
        }
        other => other?,
    };
    println!(
        "vcpu   running  runnable   blocked   offline (ms)     iters  spin   exits halt_exits"
    );
    for _ in 0..seconds * 2 {
        std::thread::sleep(Duration::from_millis(500));
        for id in 0..nr_vcpus {
            let r = vm.vcpu_report(id)?;
            let stats = vm.vcpu_stats(id).ok_or(Error::NoSuchVcpu(id))?;
            let kvm = |name| stats.value(&r.stats, name).unwrap_or(0);
            println!(
                "{id:4} {:9.1} {:9.1} {:9.1} {:9.1} {:>13} {:5} {:7} {:10}",
                ms(r.time(RunState::Running)),
                ms(r.time(RunState::Runnable)),
                ms(r.time(RunState::Blocked)),
                ms(r.time(RunState::Offline)),
                r.guest_iterations,
                r.guest_spin_iters,
                kvm("exits"),
                kvm("halt_exits"),
            );
        }
        let v = vm.vm_report()?;
        println!(
            "vm: {} of {} vCPUs online, uptime {:.1} ms",
            v.vcpus_online,
            v.vcpus_max,
            ms(v.uptime_ns)
        );
    }
    let stopped = vm.stop()?;
    for r in &stopped.vcpus {
        println!(
            "vCPU {} final: {:?} ns (sum {} = wall {})",
            r.vcpu_id,
            r.runstate_ns,
            r.total_ns(),
            r.wall_ns()
        );
    }
    Ok(())
}
