//! Where the benchmarks leave what criterion does not record (the
//! contention experiment, how the alternatives were set up, one-shot
//! timings): JSON files in the results directory, which
//! `vstats-bench-report` turns into `docs/benchmarks.md`.
//!
//! The directory is `$VSTATS_BENCH_OUT` when set (`scripts/bench` sets it,
//! and points criterion's `CRITERION_HOME` at its `criterion/`
//! subdirectory), else `target/vstats-bench` in the workspace.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use serde::Serialize;

/// The results directory (created if missing).
///
/// # Errors
///
/// Creating it.
pub fn results_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os("VSTATS_BENCH_OUT") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/vstats-bench"),
    };
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Writes `value` as pretty JSON to `<results>/<name>.json`.
///
/// # Errors
///
/// Serialising or writing.
pub fn write_json(name: &str, value: &impl Serialize) -> Result<PathBuf> {
    let path = results_dir()?.join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(value)?;
    fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Whether the bench binary was started by `cargo test --benches` (or
/// `cargo bench -- --test`): then it only checks that it runs.
pub fn test_mode() -> bool {
    std::env::args().any(|a| a == "--test")
}

/// Whether the command line asks only for the benchmark list.
pub fn list_mode() -> bool {
    std::env::args().any(|a| a == "--list")
}
