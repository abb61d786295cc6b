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
use vstats_kvm_vmm::{GuestMode, Publisher, Vm, VmConfig};
use vstats_producer::publish::PublishOptions;

/// Run a KVM VM and publish its vCPU and domain statistics live through
/// vstats shared-memory tables.
///
/// Prints `published <dir>` on stdout once the tables are live (and, with
/// `--spin-no-exit`, `spinning` once every vCPU's guest spins), runs until
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
    /// Directory to publish in [default: ROOT/NAME, where ROOT is
    /// $VSTATS_ROOT, else /dev/shm/vstats for root, else
    /// $XDG_RUNTIME_DIR/vstats or /dev/shm/vstats-UID].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Stop after this many seconds instead of waiting for a signal (a
    /// time too far to represent means never).
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
    /// Run the guest that reports once and then spins without a single
    /// exit (`jmp $`) instead of the compute-report-halt loop: the vCPU
    /// records stay as of that report while the vCPUs run 100 %. Prints
    /// `spinning` on stdout once every vCPU's guest spins.
    #[arg(long)]
    spin_no_exit: bool,
    /// The KVM device.
    #[arg(long, default_value = "/dev/kvm")]
    kvm: PathBuf,
    /// Mode of the table files, in octal. The VM directory gets rwx for
    /// the owner and r-x for whoever may read the tables.
    #[arg(long, default_value = "0640", value_parser = parse_mode)]
    mode: u32,
    /// Group of the VM directory and the tables: a gid, or a name from
    /// /etc/group [default: the producer's group].
    #[arg(long, value_parser = parse_group)]
    group: Option<u32>,
}

/// A file mode in octal (`0640`, `640`, `0o640`), at most `0o777`.
fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err(format!("{s:?} is not an octal mode from 0 to 0777")),
    }
}

/// A gid, or a group name looked up in /etc/group.
fn parse_group(s: &str) -> Result<u32, String> {
    if let Ok(gid) = s.parse::<u32>() {
        return Ok(gid);
    }
    let groups = std::fs::read_to_string("/etc/group")
        .map_err(|e| format!("cannot read /etc/group to find group {s:?}: {e}"))?;
    groups
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            Some((f.next()?, f.nth(1)?))
        })
        .find(|(name, _)| *name == s)
        .and_then(|(_, gid)| gid.parse().ok())
        .ok_or_else(|| format!("no group {s:?} in /etc/group (give a gid)"))
}

/// The publication's modes for table mode `mode`: the VM directory lets
/// in (r-x) whoever may read the tables.
fn options(mode: u32, group: Option<u32>) -> PublishOptions {
    let mut dir_mode = 0o700;
    if mode & 0o040 != 0 {
        dir_mode |= 0o050;
    }
    if mode & 0o004 != 0 {
        dir_mode |= 0o005;
    }
    PublishOptions {
        dir_mode,
        file_mode: mode,
        group,
        ..PublishOptions::default()
    }
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
    // A deadline beyond what an Instant holds is no deadline.
    let deadline = match args.seconds {
        Some(s) => {
            let d = Duration::try_from_secs_f64(s)
                .with_context(|| format!("--seconds {s}: not a duration"))?;
            Instant::now().checked_add(d)
        }
        None => None,
    };
    let config = VmConfig {
        stats_refresh: Duration::from_millis(args.stats_refresh_ms),
        halt_wake: Duration::from_millis(args.halt_ms),
        kvm_path: args.kvm,
        guest_mode: if args.spin_no_exit {
            GuestMode::SpinNoExit
        } else {
            GuestMode::Default
        },
        ..VmConfig::new(args.vcpus)
    };
    let vm = Vm::create(config).map_err(flat)?;
    let opts = options(args.mode, args.group);
    let mut publisher = Publisher::with_options(vm, &dir, opts).map_err(flat)?;

    let mut announced = false;
    let mut spinning = !args.spin_no_exit;
    let period = Duration::from_millis(args.domain_period_ms.max(1));
    let stopping = || stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d);
    // A reader that went away must not stop the VM.
    let say = |line: &dyn std::fmt::Display| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    };
    let result = publisher.run_until(period, stopping, |running| {
        if !announced {
            announced = true;
            say(&format_args!("published {}", dir.display()));
        }
        if !spinning && running.vcpus_spinning() == running.nr_vcpus() {
            spinning = true;
            say(&"spinning");
        }
        ControlFlow::Continue(())
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
