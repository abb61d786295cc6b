//! The command line: `vstats-exporter [--listen ADDR] [--root DIR]` serves
//! Prometheus; `vstats-exporter rrdd ...` writes the xcp-rrdd plugin file.

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};

/// Serve vstats tables to Prometheus, or write them for xcp-rrdd.
#[derive(Debug, Parser)]
#[command(
    name = "vstats-exporter",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do instead of serving Prometheus.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Serving Prometheus (the default).
    #[command(flatten)]
    pub serve: crate::serve::ServeArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write an xcp-rrdd plugin file (protocol v2) every interval.
    Rrdd(crate::rrdd::RrddArgs),
}

/// Where the tables are: `--root`, else `VSTATS_ROOT`, else this user's
/// default root.
#[derive(Clone, Debug, Args)]
pub struct RootArg {
    /// The root directory the producers publish under (default: `VSTATS_ROOT`,
    /// else /dev/shm/vstats for root, $XDG_RUNTIME_DIR/vstats or
    /// /dev/shm/vstats-UID for other users).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

impl RootArg {
    /// The root directory to read.
    pub fn dir(&self) -> PathBuf {
        self.root
            .clone()
            .unwrap_or_else(vstats_consumer::discover::root)
    }
}

/// Parses the command line and runs it: exit status 0, 1 on an error
/// (printed to stderr), 2 on a usage error (clap's).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Some(Command::Rrdd(a)) => crate::rrdd::run(&a),
        None => crate::serve::run(&cli.serve),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "vstats-exporter: {}",
                vstats_consumer::error_line(e.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}
