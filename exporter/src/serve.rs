//! Serving Prometheus: `GET /metrics`. (Skeleton: built in its own branch.)

use std::net::SocketAddr;

use clap::Args;

/// The options of serving Prometheus.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9477")]
    pub listen: SocketAddr,
    /// The root directory.
    #[command(flatten)]
    pub root: crate::cli::RootArg,
}

/// Serves until SIGTERM or SIGINT.
///
/// # Errors
///
/// Not built yet.
pub fn run(_args: &ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("serving is not built yet")
}
