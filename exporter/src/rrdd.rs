//! The xcp-rrdd plugin protocol v2. (Skeleton: built in its own branch.)

use std::path::PathBuf;

use clap::Args;

/// The options of the rrdd plugin.
#[derive(Clone, Debug, Args)]
pub struct RrddArgs {
    /// The root directory.
    #[command(flatten)]
    pub root: crate::cli::RootArg,
    /// Where xcp-rrdd reads plugin files.
    #[arg(long, value_name = "PATH", default_value = "/dev/shm/metrics")]
    pub out: PathBuf,
    /// Seconds between writes.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub interval: f64,
}

/// Writes the plugin file every interval until SIGTERM or SIGINT.
///
/// # Errors
///
/// Not built yet.
pub fn run(_args: &RrddArgs) -> anyhow::Result<()> {
    anyhow::bail!("the rrdd plugin is not built yet")
}
