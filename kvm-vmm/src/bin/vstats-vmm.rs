//! `vstats-vmm`: runs a small KVM VM and publishes its statistics live as
//! vstats tables (`<dir>/vcpu`, `<dir>/domain`), until SIGINT or SIGTERM
//! or for `--seconds`. The logic lives in [`vstats_kvm_vmm::publish`].

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use vstats_kvm_vmm::publish::{check_name, default_dir, DEFAULT_DOMAIN_PERIOD};
use vstats_kvm_vmm::{Publisher, Vm, VmConfig};

/// Run a KVM VM and publish its vCPU and domain statistics live through
/// vstats shared-memory tables.
///
/// Prints `published <dir>` on stdout once the tables are live, runs until
/// SIGINT or SIGTERM (or `--seconds`), then stops the VM, writes the final
/// values and removes the tables and the directory.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// VM name: ASCII letters, digits and . _ - + : (no '/').
    #[arg(long)]
    name: String,
    /// Number of vCPUs (one host thread each).
    #[arg(long, default_value_t = 2)]
    vcpus: u32,
    /// Directory to publish in [default: /dev/shm/vstats/NAME].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Stop after this many seconds instead of waiting for a signal.
    #[arg(long)]
    seconds: Option<f64>,
    /// Minimum interval between two reads of a vCPU's KVM statistics.
    #[arg(long, default_value_t = 100)]
    stats_refresh_ms: u64,
    /// Update period of the domain record (VM-wide KVM statistics too).
    #[arg(long, default_value_t = DEFAULT_DOMAIN_PERIOD.as_millis() as u64)]
    domain_period_ms: u64,
    /// How long a halted vCPU stays blocked before its timer wakes it.
    #[arg(long, default_value_t = 2)]
    halt_ms: u64,
    /// The KVM device.
    #[arg(long, default_value = "/dev/kvm")]
    kvm: PathBuf,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("vstats-vmm: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The library's errors already include their source in their message;
/// keep them one link of the chain so `{:#}` does not repeat it.
fn flat(e: vstats_kvm_vmm::Error) -> anyhow::Error {
    anyhow::Error::msg(e.to_string())
}

fn run() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    // First, so that a signal at any later point stops us cleanly.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing the SIGINT/SIGTERM handler")?;
    }
    let dir = match args.dir {
        Some(dir) => {
            check_name(&args.name).map_err(flat)?;
            dir
        }
        None => default_dir(&args.name).map_err(flat)?,
    };
    let deadline = match args.seconds {
        Some(s) => {
            let d = Duration::try_from_secs_f64(s)
                .with_context(|| format!("--seconds {s}: not a duration"))?;
            Some(Instant::now() + d)
        }
        None => None,
    };
    let config = VmConfig {
        stats_refresh: Duration::from_millis(args.stats_refresh_ms),
        halt_wake: Duration::from_millis(args.halt_ms),
        kvm_path: args.kvm,
        ..VmConfig::new(args.vcpus)
    };
    let vm = Vm::create(config).map_err(flat)?;
    let mut publisher = Publisher::new(vm, &dir).map_err(flat)?;

    let mut announced = false;
    let period = Duration::from_millis(args.domain_period_ms.max(1));
    let result = publisher.run(period, |_| {
        if !announced {
            announced = true;
            let mut out = std::io::stdout().lock();
            // A reader that went away must not stop the VM.
            let _ = writeln!(out, "published {}", dir.display()).and_then(|()| out.flush());
        }
        let expired = deadline.is_some_and(|d| Instant::now() >= d);
        if stop.load(Ordering::Relaxed) || expired {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    let removed = publisher.remove();
    let stopped = result.map_err(flat)?;
    removed.map_err(flat)?;

    let mut failed = false;
    for (id, e) in stopped.vcpu_errors.iter().enumerate() {
        if let Some(e) = e {
            eprintln!("vstats-vmm: vCPU {id}: {e}");
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
