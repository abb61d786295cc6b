//! The xcp-rrdd plugin: every interval, the runstate times of every VM of
//! the host, written to a plugin file in xcp-rrdd's plugin protocol v2.
//!
//! * [`protocol`]: the bytes of a frame (library code, no I/O);
//! * [`datasources`]: which datasources a VM has, named as xcp-rrdd's CPU
//!   plugin names them;
//! * [`file`](mod@file): the file, made complete before xcp-rrdd's directory watch
//!   registers it, then written in place, never through a path a local
//!   user could redirect;
//! * [`run`]: the loop behind `vstats-exporter rrdd`.
//!
//! `--out` is the directory xcp-rrdd reads plugin files from
//! (`/dev/shm/metrics`); the file is `<out>/<name>`, `<name>` being the
//! plugin's uid (`--name`, default `vstats`); xcp-rrdd registers it when
//! it appears there. The file is
//! left in place on SIGTERM/SIGINT, as xcp-rrdd's plugins leave theirs
//! when they are killed: its data CRC then stops changing, which xcp-rrdd
//! reads as "no update" (no error, nothing recorded), and a restarted
//! plugin writes the same inode again, which a still-registered xcp-rrdd
//! keeps reading.

pub mod datasources;
pub mod file;
pub mod protocol;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context;
use clap::Args;
use vstats_consumer::discover::Backend;

/// The options of the rrdd plugin.
#[derive(Clone, Debug, Args)]
pub struct RrddArgs {
    /// The root directory.
    #[command(flatten)]
    pub root: crate::cli::RootArg,
    /// The directory xcp-rrdd reads plugin files from; the file is
    /// OUT/NAME. Created (mode 0755) when missing; refused when it,
    /// or a directory on the way, is a symlink, another user's, or
    /// writable by others without the sticky bit.
    #[arg(long, value_name = "DIR", default_value = "/dev/shm/metrics")]
    pub out: PathBuf,
    /// The plugin file's name in OUT: the uid to register with xcp-rrdd.
    #[arg(long, value_name = "NAME", default_value = "vstats")]
    pub name: String,
    /// Seconds between writes (xcp-rrdd reads every 5 s).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 5.0,
        allow_negative_numbers = true
    )]
    pub interval: f64,
    /// Leave out Xen domains (xcp-rrdd's own CPU plugin reports them):
    /// only the VMs under the root.
    #[arg(long)]
    pub no_xen: bool,
    /// Write this many times, then exit (default: until SIGTERM or
    /// SIGINT).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

/// Why the plugin could not start or write.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RrddError {
    /// `--interval` is not a positive, finite number of seconds.
    #[error("invalid --interval {interval:?}: a positive number of seconds below 2^64 is needed")]
    Interval {
        /// As given.
        interval: f64,
    },
    /// `--count 0`.
    #[error("invalid --count 0: at least one write is needed")]
    Count,
    /// `--name` is not a single file name.
    #[error("invalid --name {name:?}")]
    Name {
        /// As given.
        name: String,
        /// The rule broken.
        source: vstats_abi::publish::NameError,
    },
    /// `--name` is one xcp-rrdd's directory watch ignores.
    #[error("invalid --name {name:?}: xcp-rrdd ignores plugin files named {rule}")]
    IgnoredName {
        /// As given.
        name: String,
        /// The names it ignores.
        rule: &'static str,
    },
    /// The `--out` directory is unsafe or cannot be opened or created.
    #[error("--out {}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: vstats_producer::publish::PublishError,
    },
    /// The plugin file exists and must not be written.
    #[error("{}: refused, {why}", path.display())]
    Unsafe {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A system call on the file failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Checks the options: the interval as a [`Duration`].
///
/// # Errors
///
/// [`RrddError::Interval`], [`RrddError::Count`], [`RrddError::Name`],
/// [`RrddError::IgnoredName`].
pub fn check_args(args: &RrddArgs) -> Result<Duration, RrddError> {
    let interval = (args.interval > 0.0)
        .then(|| Duration::try_from_secs_f64(args.interval).ok())
        .flatten()
        .ok_or(RrddError::Interval {
            interval: args.interval,
        })?;
    if args.count == Some(0) {
        return Err(RrddError::Count);
    }
    vstats_abi::publish::check_name(&args.name).map_err(|source| RrddError::Name {
        name: args.name.clone(),
        source,
    })?;
    let rule = if args.name.ends_with(".tmp") {
        Some("*.tmp")
    } else if args.name.starts_with("tap-") {
        Some("tap-*")
    } else {
        None
    };
    if let Some(rule) = rule {
        return Err(RrddError::IgnoredName {
            name: args.name.clone(),
            rule,
        });
    }
    Ok(interval)
}

/// Writes the plugin file every interval until SIGTERM or SIGINT (exit
/// status 0), or `--count` times.
///
/// # Errors
///
/// Bad options ([`check_args`]), an unsafe or unusable `--out`
/// ([`file::PluginFile::open`]), a failed write, an unreadable root.
pub fn run(args: &RrddArgs) -> anyhow::Result<()> {
    let interval = check_args(args)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("cannot handle signals")?;
    }
    let root = args.root.dir();
    let mut out = file::PluginFile::open(&args.out, &args.name)?;
    let mut warned: BTreeMap<String, String> = BTreeMap::new();
    let mut xen_warned = false;
    let start = Instant::now();
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut host = vstats_consumer::discover::host(&root)
            .with_context(|| format!("cannot list {}", root.display()))?;
        if args.no_xen {
            host.vms.retain(|v| v.backend != Backend::Xen);
            xen_warned = true;
        }
        if let (Some(why), false) = (&host.xen_unavailable, xen_warned) {
            eprintln!("vstats-exporter: Xen domains not reported: {why}");
            xen_warned = true;
        }
        let (dss, skipped) = datasources::host_datasources(&host);
        let now: BTreeMap<String, String> = skipped.errors.into_iter().collect();
        for (vm, why) in &now {
            if warned.get(vm) != Some(why) {
                eprintln!("vstats-exporter: VM {vm} not reported: {why}");
            }
        }
        warned = now;
        let timestamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let frame = protocol::encode(timestamp, &dss)?;
        out.write(&frame)?;
        n += 1;
        if args.count.is_some_and(|c| n >= c) {
            break;
        }
        // Sleep to the next multiple of the interval, waking for signals.
        let next = start + interval.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX));
        while !stop.load(Ordering::Relaxed) {
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }
    Ok(())
}
