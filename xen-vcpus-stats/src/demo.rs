//! `demo`: run [`crate::produce`] as a child (this executable's
//! `__produce`, in its own process group so that a terminal's Ctrl-C
//! reaches only `demo`), wait for its `published <dir>` line, sample the
//! directory it names, then stop the child with SIGTERM. The VM-less
//! producer publishes as NAME-synthetic (`__produce --mark-synthetic`), so
//! that every output names its data synthetic.

use std::{
    io::{self, BufRead, BufReader, Write},
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, ExitCode, ExitStatus, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use rustix::process::{kill_process, test_kill_process, Pid, Signal};

use crate::{
    cli::SamplingArgs,
    filter::VcpuList,
    produce::READY_PREFIX,
    sample,
    target::{check_name, Target},
};

/// How long the producer may take to publish.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the producer may take to stop after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What `demo` runs: the options of `demo`.
#[derive(Debug, clap::Args)]
pub struct DemoOptions {
    /// Number of vCPUs of the VM (not a filter: see --only-vcpus).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub vcpus: u32,
    /// Only show these vCPUs: a list like 0,2-3 (`sample --vcpus`).
    #[arg(long, value_name = "LIST")]
    pub only_vcpus: Option<VcpuList>,
    /// Publish as ROOT/NAME/ [default: demo-PID].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Base directory: $VSTATS_ROOT, else /dev/shm/vstats for root and
    /// $XDG_RUNTIME_DIR/vstats (or /dev/shm/vstats-UID) for others.
    #[arg(long, value_name = "DIR", default_value_os_t = vstats_consumer::discover::root())]
    pub root: PathBuf,
    /// Run the VM-less producer even where /dev/kvm works.
    #[arg(long)]
    pub no_kvm: bool,
    /// The KVM device.
    #[arg(long, value_name = "PATH", default_value = "/dev/kvm")]
    pub kvm: PathBuf,
    /// Sampling options.
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// Sends `signal` to process `pid`; `None` only checks that the process
/// exists and may be signalled.
///
/// # Errors
///
/// The OS error of `kill(2)`, or `InvalidInput` for a pid that is not a
/// positive `pid_t`.
fn send_signal(pid: u32, signal: Option<Signal>) -> io::Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    match signal {
        Some(signal) => kill_process(pid, signal),
        None => test_kill_process(pid),
    }?;
    Ok(())
}

/// The producer child; stopped (SIGTERM, then SIGKILL after
/// [`STOP_TIMEOUT`]) and reaped when dropped.
struct Producer {
    child: Child,
    status: Option<ExitStatus>,
}

impl Producer {
    fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        if self.child.try_wait()?.is_none() {
            let _ = send_signal(self.child.id(), Some(Signal::TERM));
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            if let Some(s) = self.child.try_wait()? {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                break self.child.wait()?;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.status = Some(status);
        Ok(status)
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Runs `demo`.
///
/// # Errors
///
/// The producer could not start or exited before publishing, or failed;
/// sampling errors.
pub fn run(
    opts: &DemoOptions,
    out: &mut dyn Write,
    notices: &mut dyn Write,
    stop: &AtomicBool,
) -> anyhow::Result<ExitCode> {
    let name = opts
        .name
        .clone()
        .unwrap_or_else(|| format!("demo-{}", std::process::id()));
    check_name(&name)?;
    let dir = opts.root.join(&name);
    if dir.join(crate::target::VCPU_FILE).exists() {
        bail!(
            "{}: a VM named {name:?} is already published there; choose another --name",
            dir.display()
        );
    }
    let exe = std::env::current_exe().context("finding this executable to start the producer")?;
    let (vcpus, parent) = (opts.vcpus.to_string(), std::process::id().to_string());
    let mut child = Command::new(&exe)
        .args(["__produce", "--mark-synthetic", "--vcpus", &vcpus])
        .args(["--parent", &parent])
        .args(opts.no_kvm.then_some("--no-kvm"))
        .arg("--dir")
        .arg(&dir)
        .arg("--kvm")
        .arg(&opts.kvm)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting the producer {}", exe.display()))?;
    let stdout = child.stdout.take();
    let mut producer = Producer {
        child,
        status: None,
    };
    let (tx, rx) = mpsc::channel();
    if let Some(stdout) = stdout {
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                // After the readiness line nobody listens: keep draining.
                let _ = tx.send(line);
            }
        });
    }
    let deadline = Instant::now() + READY_TIMEOUT;
    // Where the producer published: `dir`, or the VM-less one `dir-synthetic`.
    let published = loop {
        if stop.load(Ordering::Relaxed) {
            producer.stop()?;
            return Ok(ExitCode::SUCCESS);
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Ok(line)) if line.starts_with(READY_PREFIX) => {
                let synthetic = vstats_producer::synth::marked_dir(&dir);
                let kvm = dir.join(crate::target::VCPU_FILE).exists();
                break if kvm { dir } else { synthetic };
            }
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                producer.stop()?;
                bail!(
                    "the producer did not publish within {} s",
                    READY_TIMEOUT.as_secs()
                );
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = producer.stop()?;
                bail!("the producer exited before publishing its tables ({status})");
            }
        }
    };
    let sample_opts = opts.sampling.options(opts.only_vcpus.clone());
    let sampled = sample::attach(&Target::Path(published), &sample_opts)
        .map_err(anyhow::Error::new)
        .and_then(|mut s| sample::run(&mut s, &sample_opts, out, notices, stop));
    let status = producer.stop()?;
    match sampled {
        Err(e) if !status.success() => Err(e.context(format!("the producer failed ({status})"))),
        Err(e) => Err(e),
        Ok(_) if !status.success() => bail!("the producer failed ({status})"),
        Ok(_) => Ok(ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_reach_only_real_processes() {
        // The clock's assertions moved with it to vstats-producer
        // (`clock::tests`).
        assert!(send_signal(0, None).is_err());
        send_signal(std::process::id(), None).unwrap();
    }
}
