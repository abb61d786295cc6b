//! Sampling from the command line: the engine is
//! [`vstats_consumer::sample`]; this adds the interval, the count, the
//! output format and the loop that prints each sample.

use std::{
    io::{self, Write},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

pub use vstats_consumer::sample::{
    CounterAggregate, DomainSample, RecordState, Sample, Sampler, Step, Value, VcpuSample,
    BUSY_MIN_SNAPSHOTS, RUNSTATES, RUNSTATE_COUNTERS,
};
use vstats_consumer::{follow::Event, live::Liveness};

use crate::{
    error::{Error, Result},
    output::{self, Format},
    target::{self, Target},
};

/// What to sample and how.
#[derive(Clone, Debug)]
pub struct SampleOptions {
    /// Time between samples.
    pub interval: Duration,
    /// Samples to print; `None`: until interrupted.
    pub count: Option<u64>,
    /// Output format.
    pub format: Format,
    /// Table format: show the counters that are 0 everywhere too.
    pub all: bool,
    /// The engine's part: `--names`, `--vcpus` and `--busy-timeout` (a
    /// record busy in at least [`BUSY_MIN_SNAPSHOTS`] consecutive
    /// snapshots spanning this long ends the run with "table busy").
    pub engine: vstats_consumer::sample::SampleOptions,
}

/// Opens `target`, checks the filters against it and takes the baseline
/// snapshot. A VM whose producer is dead is refused: sampling it would
/// print frozen values as if the VM were idle.
///
/// # Errors
///
/// As [`target::open`]; unknown `--names` or `--vcpus`;
/// [`Error::ProducerDead`].
pub fn attach(target: &Target, opts: &SampleOptions) -> Result<Sampler> {
    let vm = target::open(target)?;
    if vm.liveness() == Some(Liveness::Dead) {
        return Err(Error::ProducerDead { vm: vm.origin });
    }
    Ok(Sampler::new(vm, &opts.engine)?)
}

/// Sleeps until `deadline`, waking every 20 ms to check `stop`; returns
/// false when stopped.
pub fn sleep_until(deadline: Instant, stop: &AtomicBool) -> bool {
    while !stop.load(Ordering::Relaxed) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
    false
}

/// Samples an attached target every `opts.interval`, `opts.count` times
/// (or until `stop`), writing samples to `out` and notices (restarts) to
/// `notices`; returns the number of samples written. A broken pipe on
/// `out` ends the run like a signal.
///
/// # Errors
///
/// As [`Sampler::step`]; [`Error::TableRemoved`]; [`Error::ProducerDead`]
/// (probed at most every [`vstats_consumer::live::PROBE_INTERVAL`]);
/// write errors other than a broken pipe.
pub fn run(
    sampler: &mut Sampler,
    opts: &SampleOptions,
    out: &mut dyn Write,
    notices: &mut dyn Write,
    stop: &AtomicBool,
) -> anyhow::Result<u64> {
    let start = Instant::now();
    let mut samples = 0;
    let mut tick: u32 = 0;
    // OpenMetrics with a count of 2 or more: one exposition of timestamped
    // points, written at the end (also when stopped early). One sample is
    // a snapshot, as a scrape is: no timestamps, so that text parsers
    // (promtool, a textfile collector) read it too.
    let mut om = (opts.format == Format::Openmetrics && opts.count.is_some_and(|n| n > 1))
        .then(output::openmetrics::Exposition::new);
    while opts.count.is_none_or(|n| samples < n) {
        tick = tick.saturating_add(1);
        if !sleep_until(start + opts.interval.saturating_mul(tick), stop) {
            break;
        }
        match sampler.step().map_err(Error::from)? {
            Step::Event(Event::Removed { path }) => return Err(Error::TableRemoved { path }.into()),
            Step::Event(Event::ProducerDied { dir }) => {
                return Err(Error::ProducerDead {
                    vm: dir.display().to_string(),
                }
                .into())
            }
            Step::Event(Event::Restarted {
                table,
                old_generation: old,
                new_generation: new,
                ..
            }) => {
                let _ = writeln!(
                    notices,
                    "xen-vcpus-stats: {table}: producer restarted (generation {old:#x} -> \
                     {new:#x}): re-attached, rates resume at the next sample"
                );
            }
            Step::Event(e) => {
                let _ = writeln!(notices, "xen-vcpus-stats: {e:?}");
            }
            Step::Sample(sample) if om.is_some() => {
                om.iter_mut().for_each(|e| e.add_sample_at(&sample));
                samples += 1;
            }
            Step::Sample(sample) => {
                let written = output::write_sample(opts.format, &sample, opts.all, out)
                    .and_then(|()| out.flush());
                match written {
                    Ok(()) => samples += 1,
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break,
                    Err(e) => return Err(anyhow::Error::new(e).context("writing the output")),
                }
            }
        }
    }
    if let Some(e) = &mut om {
        let written = out
            .write_all(e.finish().as_bytes())
            .and_then(|()| out.flush());
        if let Err(e) = written.or_else(|e| match e.kind() {
            io::ErrorKind::BrokenPipe => Ok(()),
            _ => Err(e),
        }) {
            return Err(anyhow::Error::new(e).context("writing the output"));
        }
    }
    Ok(samples)
}
