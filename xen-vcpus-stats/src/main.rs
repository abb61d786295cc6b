//! `xen-vcpus-stats`: the command-line tool. Everything is in the library
//! ([`xen_vcpus_stats::cli`]); this only parses, runs and reports.

use std::process::ExitCode;

use clap::Parser;
use xen_vcpus_stats::cli::{self, Cli};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        // The reader of stdout went away (`list | head -1`): the output
        // ends there, as with any Unix filter, and that is no error.
        Err(err) if xen_vcpus_stats::error::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let line = vstats_consumer::error_line(err.as_ref());
            eprintln!("xen-vcpus-stats: {line}");
            ExitCode::from(xen_vcpus_stats::exit_code(&err))
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    cli::run(Cli::parse())
}
