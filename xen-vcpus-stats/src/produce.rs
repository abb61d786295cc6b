//! The producer `demo` runs in a child (the hidden `__produce` command):
//! a KVM VM (`vstats-kvm-vmm`), else [`vstats_producer::synth`]. Prints
//! `published <dir>` once live; on SIGTERM or SIGINT (or its parent's
//! death) stops, writes the final values and removes the tables.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::Context;

use rustix::process::{set_parent_process_death_signal, Signal};
use vstats_producer::synth::{self, Synth};

/// The readiness line's prefix: `published <dir>`.
pub const READY_PREFIX: &str = "published ";

/// Update period of the VM-less producer.
pub const SYNTH_PERIOD: Duration = Duration::from_millis(10);

/// Update period of the KVM VM's domain record (and how fast a stop
/// request is noticed).
pub const KVM_DOMAIN_PERIOD: Duration = Duration::from_millis(100);

/// What to produce: the arguments of the hidden `__produce` command.
#[derive(Clone, Debug, clap::Args)]
pub struct ProduceOptions {
    /// Publication directory.
    #[arg(long)]
    pub dir: PathBuf,
    /// vCPUs.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub vcpus: u32,
    /// Skip KVM.
    #[arg(long)]
    pub no_kvm: bool,
    /// The KVM device.
    #[arg(long, default_value = "/dev/kvm")]
    pub kvm: PathBuf,
    /// Die with this parent.
    #[arg(long)]
    pub parent: Option<u32>,
    /// Publish the VM-less producer's tables at DIR-synthetic
    /// ([`synth::marked_dir`]), so that its VM's name says so.
    #[arg(long)]
    pub mark_synthetic: bool,
}

fn announce(dir: &Path) {
    let mut out = std::io::stdout().lock();
    // A parent that went away must not stop the producer here; the death
    // signal does that.
    let _ = writeln!(out, "{READY_PREFIX}{}", dir.display()).and_then(|()| out.flush());
}

/// Runs the KVM VM: its exit code, or `Err` with the reason when KVM
/// cannot be used here.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn run_kvm(opts: &ProduceOptions, stop: &AtomicBool) -> anyhow::Result<Result<ExitCode, String>> {
    use std::ops::ControlFlow;

    use vstats_kvm_vmm::{Error as KvmError, Publisher, Vm, VmConfig};

    // The library's messages include their sources: keep them one link.
    let flat = |e: KvmError| anyhow::Error::msg(e.to_string());
    let config = VmConfig {
        kvm_path: opts.kvm.clone(),
        ..VmConfig::new(opts.vcpus)
    };
    let vm = match Vm::create(config) {
        Ok(vm) => vm,
        Err(e) => return e.unavailable_reason().map(Err).ok_or_else(|| flat(e)),
    };
    let mut publisher = Publisher::new(vm, &opts.dir).map_err(flat)?;
    let mut announced = false;
    let stop = || stop.load(Ordering::Relaxed);
    let result = publisher.run_until(KVM_DOMAIN_PERIOD, stop, |_| {
        if !std::mem::replace(&mut announced, true) {
            announce(&opts.dir);
        }
        ControlFlow::Continue(())
    });
    let removed = publisher.remove();
    let stopped = result.map_err(flat)?;
    removed.map_err(flat)?;
    let mut code = ExitCode::SUCCESS;
    for (id, e) in stopped.vcpu_errors.iter().enumerate() {
        if let Some(e) = e {
            eprintln!("xen-vcpus-stats: producer: vCPU {id}: {e}");
            code = ExitCode::FAILURE;
        }
    }
    Ok(Ok(code))
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn run_kvm(_: &ProduceOptions, _: &AtomicBool) -> anyhow::Result<Result<ExitCode, String>> {
    Ok(Err("the KVM monitor supports Linux on x86-64 only".into()))
}

/// Runs the VM-less producer until `stop`.
///
/// # Errors
///
/// I/O errors publishing or removing the tables.
pub fn run_synthetic(opts: &ProduceOptions, stop: &AtomicBool) -> anyhow::Result<ExitCode> {
    let dir = if opts.mark_synthetic {
        synth::marked_dir(&opts.dir)
    } else {
        opts.dir.clone()
    };
    let mut synth = Synth::new(&dir, opts.vcpus).with_context(|| {
        format!(
            "publishing the VM-less producer's tables in {}",
            dir.display()
        )
    })?;
    eprintln!(
        "xen-vcpus-stats: SYNTHETIC DATA: {} is no VM: made-up values",
        dir.display()
    );
    announce(&dir);
    let start = Instant::now();
    let mut tick: u32 = 0;
    while crate::sample::sleep_until(start + SYNTH_PERIOD.saturating_mul(tick), stop) {
        tick = tick.saturating_add(1);
        synth.update();
    }
    synth.update();
    synth
        .remove()
        .with_context(|| format!("removing the tables in {}", dir.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// The `__produce` command.
///
/// # Errors
///
/// Errors creating or running the VM (other than KVM being unavailable,
/// which selects the VM-less producer), or publishing the tables.
pub fn run(opts: &ProduceOptions, stop: &AtomicBool) -> anyhow::Result<ExitCode> {
    if let Some(parent) = opts.parent {
        set_parent_process_death_signal(Some(Signal::TERM)).context("PR_SET_PDEATHSIG")?;
        if std::os::unix::process::parent_id() != parent {
            anyhow::bail!("the parent process {parent} is gone");
        }
    }
    let reason = if opts.no_kvm {
        "KVM not used (--no-kvm)".to_owned()
    } else {
        match run_kvm(opts, stop)? {
            Ok(code) => return Ok(code),
            Err(reason) => reason,
        }
    };
    eprintln!("xen-vcpus-stats: {reason}: running the VM-less producer");
    run_synthetic(opts, stop)
}
