//! `vstats-fault-producer`: publishes a vCPU table with the real producer
//! (an r3 table with the abi crate's writers for the faults of the r3
//! rules) and updates it, injecting one fault (`--fault NAME`, see
//! `vstats_invariants::fault::Fault`), as a real process that tests can
//! kill and restart. Prints `published <path>` once the table exists and
//! every record was written once (before that with `--hold-at 1`), and
//! `mid-update record <i> seq <s>` when `--hold-at` makes it stop inside
//! an update (it then sleeps until killed).

use std::{
    io::Write,
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{anyhow, Context, Result};
use clap::Parser;
use vstats_invariants::fault::{with_fault_table, Fault};
use vstats_producer::shm::fresh_generation;

/// Publish a vCPU table and update it, with an injected fault.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Where to publish the table.
    #[arg(long)]
    path: PathBuf,
    /// The fault to inject (`none` for a correct producer).
    #[arg(long, default_value = "none")]
    fault: String,
    /// Number of vCPU records.
    #[arg(long, default_value_t = 4)]
    vcpus: u32,
    /// The table's generation (default: a fresh one).
    #[arg(long)]
    generation: Option<u64>,
    /// Milliseconds between update rounds.
    #[arg(long, default_value_t = 5)]
    interval_ms: u64,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long)]
    seconds: Option<f64>,
    /// At this step, begin an update of record 1 and never finish it:
    /// print `mid-update record 1 seq S` and sleep until killed.
    #[arg(long)]
    hold_at: Option<u64>,
}

fn run() -> Result<ExitCode> {
    let args = Args::parse();
    let fault = Fault::from_name(&args.fault).ok_or_else(|| {
        let names: Vec<_> = Fault::ALL.iter().map(|f| f.name()).collect();
        anyhow!(
            "unknown fault {:?}; known: none, {}",
            args.fault,
            names.join(", ")
        )
    })?;
    let generation = args.generation.unwrap_or_else(fresh_generation);
    let deadline = args
        .seconds
        .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let interval = Duration::from_millis(args.interval_ms);
    with_fault_table(&args.path, fault, generation, args.vcpus, |d| {
        let mut out = std::io::stdout().lock();
        let mut published = false;
        let mut publish = |out: &mut std::io::StdoutLock<'_>| -> Result<()> {
            if !std::mem::replace(&mut published, true) {
                writeln!(out, "published {}", args.path.display())?;
                out.flush()?;
            }
            Ok(())
        };
        loop {
            if args.hold_at == Some(d.steps() + 1) {
                publish(&mut out)?;
                let seq = d.begin_and_hold(1).context("no record 1")?;
                writeln!(out, "mid-update record 1 seq {seq}")?;
                out.flush()?;
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
            d.step();
            // Live: every record has been written once.
            publish(&mut out)?;
            if deadline.is_some_and(|t| Instant::now() >= t) {
                return Ok(ExitCode::SUCCESS);
            }
            std::thread::sleep(interval);
        }
    })
    .with_context(|| format!("publishing {}", args.path.display()))?
}

fn main() -> ExitCode {
    run().unwrap_or_else(|e| {
        eprintln!("vstats-fault-producer: {e:#}");
        ExitCode::FAILURE
    })
}
