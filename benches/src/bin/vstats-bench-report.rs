//! Regenerates the results part of `docs/benchmarks.md` from a results
//! directory written by the benchmarks (`scripts/bench` runs it last).
//!
//! ```text
//! vstats-bench-report --results target/vstats-bench --doc docs/benchmarks.md
//! ```

use std::{path::PathBuf, process::ExitCode};

use anyhow::{bail, Context, Result};
use vstats_benches::report::{describe_machine, splice, Report, Results};

fn run() -> Result<ExitCode> {
    let mut results = None;
    let mut doc = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--results" => results = args.next().map(PathBuf::from),
            "--doc" => doc = args.next().map(PathBuf::from),
            "-h" | "--help" => {
                println!("usage: vstats-bench-report --results DIR --doc FILE");
                return Ok(ExitCode::SUCCESS);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    let (Some(results), Some(doc)) = (results, doc) else {
        bail!("usage: vstats-bench-report --results DIR --doc FILE");
    };
    describe_machine(&results)?;
    let r = Results::load(&results)?;
    if r.criterion.is_empty() {
        bail!("no criterion results under {}/criterion", results.display());
    }
    let old = std::fs::read_to_string(&doc).unwrap_or_else(|_| "# Benchmarks\n".into());
    let new = splice(&old, &Report::new(&r).render())?;
    std::fs::write(&doc, new).with_context(|| format!("writing {}", doc.display()))?;
    println!(
        "{}: {} criterion results, {} other files",
        doc.display(),
        r.criterion.len(),
        r.json.len() + r.text.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vstats-bench-report: {e:#}");
            ExitCode::FAILURE
        }
    }
}
