//! `vstats-invariants`: attach to live vstats tables and check every rule
//! of the ABI for a while; print a report; exit 0 when every rule passed,
//! 3 when a rule failed, 1 when a table could not be checked, 2 on a
//! command line that cannot be run (`vstats_invariants::report`'s codes,
//! shared with `xen-vcpus-stats check`).

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{bail, Result};
use clap::Parser;
use vstats_invariants::{
    report::EXIT_USAGE, run_check, targets_in_dir, vm_dir, CheckOptions, Target,
};

/// Check the invariants of vstats tables.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// A table file to check (repeatable).
    #[arg(long)]
    path: Vec<PathBuf>,
    /// A VM name: checks /dev/shm/vstats/NAME/vcpu and .../domain.
    #[arg(long)]
    name: Option<String>,
    /// A publication directory: checks DIR/vcpu and DIR/domain.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A Xen domain id: handled by `xen-vcpus-stats check`, which owns the
    /// Xen backend.
    #[arg(long)]
    domid: Option<u32>,
    /// How long to sample, in seconds.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Milliseconds between samples.
    #[arg(long, default_value_t = 10)]
    interval_ms: u64,
    /// D2: milliseconds a record may stay odd (at one seq value).
    #[arg(long, default_value_t = 500)]
    odd_bound_ms: u64,
    /// D2: consecutive samples that must see the same odd seq.
    #[arg(long, default_value_t = 3)]
    odd_samples: u32,
    /// The number of vCPUs the toolstack counts (R24, P10): slots >= N
    /// must be unused, slots < N used from the first sample. Without it
    /// R24 and P10 are skipped.
    #[arg(long, value_name = "N")]
    vcpus: Option<u32>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn run() -> Result<ExitCode> {
    let args = Args::parse();
    if args.domid.is_some() {
        bail!("--domid needs the Xen backend: use `xen-vcpus-stats check --domid N`");
    }
    if !(args.seconds.is_finite() && args.seconds >= 0.0) {
        bail!("--seconds must be a non-negative number");
    }
    let mut targets: Vec<Target> = args.path.into_iter().map(Target::Path).collect();
    if let Some(name) = &args.name {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            bail!("--name {name:?} is not a VM name");
        }
        targets.extend(targets_in_dir(&vm_dir(name)));
    }
    if let Some(dir) = &args.dir {
        targets.extend(targets_in_dir(dir));
    }
    if targets.is_empty() {
        bail!("nothing to check: give --path, --name or --dir");
    }
    let opts = CheckOptions {
        duration: Duration::from_secs_f64(args.seconds),
        interval: Duration::from_millis(args.interval_ms.max(1)),
        odd_bound: Duration::from_millis(args.odd_bound_ms),
        odd_min_samples: args.odd_samples.max(1),
        vcpus: args.vcpus,
        ..CheckOptions::default()
    };
    let report = run_check(targets, &opts);
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    Ok(ExitCode::from(report.exit_code()))
}

fn main() -> ExitCode {
    run().unwrap_or_else(|e| {
        // `run` fails only on its arguments.
        eprintln!("vstats-invariants: {e:#}");
        ExitCode::from(EXIT_USAGE)
    })
}
