//! The command line (clap derive) and what each command does.

use std::{
    io::Write,
    path::PathBuf,
    process::ExitCode,
    sync::{atomic::AtomicBool, Arc},
    time::Duration,
};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::{
    check::{self, CheckConfig},
    demo::{self, DemoOptions},
    error::Error,
    filter::{NameFilter, VcpuList},
    list,
    output::Format,
    produce::{self, ProduceOptions},
    sample::{self, SampleOptions},
    schema,
    target::{self, Target},
};

/// Sample per-vCPU statistics from vstats shared-memory tables: a Xen
/// domain's stats_table resource, a table file, or a VM published under
/// /dev/shm/vstats; like xentop and kvm_stat, without a hypercall or a
/// system call per sample.
///
/// With a target (--path, --name or --domid) and no command, samples it.
#[derive(Debug, Parser)]
#[command(
    name = "xen-vcpus-stats",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do (default: sample the target).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of the default command, `sample`.
    #[command(flatten)]
    pub sample: SampleArgs,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the tables under the root directory and, on a Xen host, the
    /// domains.
    List(ListArgs),
    /// Sample a target every --interval (the default command).
    Sample(SampleArgs),
    /// Print every counter of a target with its kind, unit and scale.
    Schema(SchemaArgs),
    /// Check every rule of the ABI (docs/abi.md) on a target for a while
    /// and print a PASS/FAIL report (the invariant checker). Exit code 0:
    /// every rule passed; 3: a rule failed; 1: a table could not be
    /// checked.
    Check(CheckArgs),
    /// The host-wide live view, like xentop: a row per VM (CPU%,
    /// runnable%, blocked%, busiest rates, live/stopped/dead); -b for
    /// batch output.
    Top(crate::top::TopArgs),
    /// Start a live KVM VM (or, without /dev/kvm, the VM-less producer)
    /// and sample it.
    Demo(DemoOptions),
    /// Internal: the producer `demo` runs in a child process.
    #[command(name = "__produce", hide = true)]
    Produce(ProduceOptions),
}

/// What to attach to.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// A table file, or a VM directory holding `vcpu` and `domain`.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["name", "domid"])]
    pub path: Option<PathBuf>,
    /// A VM published as ROOT/NAME/ (by vstats-vmm or `demo`).
    #[arg(long, value_name = "NAME", conflicts_with = "domid")]
    pub name: Option<String>,
    /// A Xen domain: maps its XENMEM_resource_stats_table with
    /// libxenforeignmemory (loaded at run time).
    #[arg(long, value_name = "DOMID")]
    pub domid: Option<u16>,
    /// Base directory of --name: $VSTATS_ROOT, else /dev/shm/vstats for
    /// root and $XDG_RUNTIME_DIR/vstats (or /dev/shm/vstats-UID) for others.
    #[arg(long, value_name = "DIR", default_value_os_t = vstats_consumer::discover::root())]
    pub root: PathBuf,
}

impl TargetArgs {
    /// The target, `None` when none was given.
    pub fn target(&self) -> Option<Target> {
        let root = self.root.clone();
        let named = |name: &String| Target::Name {
            root,
            name: name.clone(),
        };
        (self.path.clone().map(Target::Path))
            .or_else(|| self.name.as_ref().map(named))
            .or(self.domid.map(Target::Domid))
    }

    fn require(&self) -> Result<Target, Error> {
        self.target().ok_or_else(|| {
            Error::Usage(
                "no target: give --path PATH, --name NAME or --domid DOMID, or a command \
                 (list, sample, schema, check, demo); see --help"
                    .into(),
            )
        })
    }
}

/// Parses a number of seconds in (0, 86400], fractions allowed.
pub(crate) fn parse_seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(v > 0.0 && v <= 86_400.0) {
        return Err(format!("{s} is not between 0 (excluded) and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Options common to every sampling command.
#[derive(Debug, Args)]
pub struct SamplingArgs {
    /// Seconds between samples (fractions allowed).
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub interval: Duration,
    /// Number of samples, then exit [default: until interrupted].
    /// OpenMetrics: with N > 1, one exposition of timestamped points at
    /// the end; otherwise one exposition per sample, without timestamps.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub count: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Table format: also show the counters that are 0 on every vCPU
    /// (otherwise counted and hidden).
    #[arg(long)]
    pub all: bool,
    /// Only these counters (comma-separated names; `*` and `?` patterns).
    /// Runstate shares are always shown.
    #[arg(long, value_name = "NAMES")]
    pub names: Vec<String>,
    /// A record found mid-update in 3 consecutive snapshots over this many
    /// seconds ends the run: "table busy" (exit code 3).
    #[arg(long, value_name = "SECONDS", default_value = "2", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub busy_timeout: Duration,
}

impl SamplingArgs {
    pub(crate) fn options(&self, vcpus: Option<VcpuList>) -> SampleOptions {
        SampleOptions {
            interval: self.interval,
            count: self.count,
            format: self.format,
            all: self.all || !self.names.is_empty(),
            engine: vstats_consumer::sample::SampleOptions {
                names: NameFilter::new(&self.names),
                vcpus,
                busy_timeout: self.busy_timeout,
            },
        }
    }
}

/// `sample` (and the default command).
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// The target.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Sampling options.
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Only these vCPUs: a list like 0,2-3.
    #[arg(long, value_name = "LIST")]
    pub vcpus: Option<VcpuList>,
}

/// `schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// The target.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Output format (openmetrics: the # TYPE, # UNIT and # HELP lines;
    /// qmp: QEMU's query-stats-schemas answer).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Only these counters (comma-separated names; `*` and `?` patterns).
    #[arg(long, value_name = "NAMES")]
    pub names: Vec<String>,
}

/// `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The target.
    #[command(flatten)]
    pub target: TargetArgs,
    /// How long and how closely.
    #[command(flatten)]
    pub config: CheckConfig,
}

/// `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The base directory of VM names: $VSTATS_ROOT, else /dev/shm/vstats
    /// for root and $XDG_RUNTIME_DIR/vstats (or /dev/shm/vstats-UID) for
    /// others.
    #[arg(long, value_name = "DIR", default_value_os_t = vstats_consumer::discover::root())]
    pub root: PathBuf,
    /// Output format (json: one object per line; openmetrics: vstats_vm_info).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// First remove the directories of dead producers (and empty ones of
    /// stopped producers): only this user's, whose lock is free and which
    /// hold nothing but vstats tables; one line on stderr for each. Exit
    /// status 1 when one was refused.
    #[arg(long)]
    pub prune: bool,
}

/// A flag set by the first SIGINT or SIGTERM; a second one exits at once
/// (status 130).
///
/// # Errors
///
/// Installing the handlers failed.
pub fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))
            .context("installing the SIGINT/SIGTERM handlers")?;
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing the SIGINT/SIGTERM handlers")?;
    }
    Ok(stop)
}

fn sample(args: &SampleArgs) -> anyhow::Result<ExitCode> {
    let target = args.target.require()?;
    let opts = args.sampling.options(args.vcpus.clone());
    let stop = stop_flag()?;
    let mut sampler = sample::attach(&target, &opts)?;
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr());
    if let (Some(note), false) = (sampler.vm().note(), opts.format == Format::Json) {
        writeln!(err, "xen-vcpus-stats: note: {note}")?;
    }
    sample::run(&mut sampler, &opts, &mut out, &mut err, &stop)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the parsed command line.
///
/// # Errors
///
/// Every failure, as one line with context; [`crate::error::exit_code`]
/// gives the exit code.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match cli.command {
        None => sample(&cli.sample),
        Some(Command::Sample(a)) => sample(&a),
        Some(Command::Schema(a)) => {
            let att = target::open(&a.target.require()?)?;
            schema::write(&att, a.format, &NameFilter::new(&a.names), &mut out)?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::List(a)) => {
            let refused = if a.prune {
                list::prune(&a.root, &mut std::io::stderr())?
            } else {
                0
            };
            let (entries, note) = list::host(&a.root)?;
            if let Some(note) = note {
                eprintln!("xen-vcpus-stats: note: no Xen domains listed: {note}");
            }
            for e in entries.iter().filter(|_| a.format != Format::Json) {
                if let Some(n) = e.info.as_ref().ok().and_then(|i| i.note) {
                    eprintln!("xen-vcpus-stats: note: {}: {n}", e.name);
                }
            }
            list::write(&entries, a.format, &mut out)?;
            out.flush()?;
            Ok(if refused == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(crate::error::EXIT_ERROR)
            })
        }
        Some(Command::Check(a)) => {
            let code = check::run(&a.target.require()?, &a.config, &mut out)?;
            Ok(ExitCode::from(code))
        }
        Some(Command::Top(a)) => crate::top::run(&a),
        Some(Command::Demo(a)) => {
            let stop = stop_flag()?;
            demo::run(&a, &mut out, &mut std::io::stderr(), &stop)
        }
        Some(Command::Produce(a)) => {
            drop(out);
            produce::run(&a, &*stop_flag()?)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("0.5").unwrap(), Duration::from_millis(500));
        for bad in ["0", "-1", "x", "inf", "NaN", "100000"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_command_is_sample() {
        let c = Cli::try_parse_from(["x", "--name", "vm1", "--count", "2"]).unwrap();
        assert!(c.command.is_none());
        assert_eq!(c.sample.sampling.count, Some(2));
        let c = Cli::try_parse_from(["x", "demo", "--vcpus", "2", "--only-vcpus", "1"]).unwrap();
        match c.command {
            Some(Command::Demo(d)) => {
                assert_eq!(d.vcpus, 2);
                assert_eq!(d.only_vcpus, Some(VcpuList(vec![1])));
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["x", "--path", "a", "--name", "b"]).is_err());
    }
}
