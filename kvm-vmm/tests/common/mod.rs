//! Shared by the `vstats-vmm` binary's tests: starting it and waiting for
//! its `published <dir>` line, waiting for its exit, and skipping where
//! there is no KVM.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use vstats_kvm_vmm::{Error, Vm, VmConfig};

pub const BIN: &str = env!("CARGO_BIN_EXE_vstats-vmm");
/// Bounds that only stop a hung test: a machine under full load may be
/// slow to start a VM or to exit, and a test must not fail for that.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether a VM can be created here; prints why the test is skipped if not.
pub fn kvm_or_skip() -> bool {
    match Vm::create(VmConfig::new(1)) {
        Ok(_) => true,
        Err(e @ Error::KvmUnavailable { .. }) => {
            println!("skipped: /dev/kvm unavailable: {e}");
            false
        }
        Err(e) => panic!("Vm::create: {e}"),
    }
}

/// Starts `cmd` (stdout and stderr piped) and waits for its
/// `published <dir>` line, which it returns with the child.
pub fn start_cmd(cmd: Command) -> (Child, String) {
    let (child, mut lines) = start_cmd_lines(cmd, &["published "]);
    (child, lines.remove(0))
}

/// Starts `cmd` (stdout and stderr piped) and waits, [`START_TIMEOUT`] in
/// all, for one stdout line per entry of `prefixes`, each starting with
/// its prefix; returns them with the child. Kills the child and fails
/// when a line is missing or different.
pub fn start_cmd_lines(mut cmd: Command, prefixes: &[&str]) -> (Child, Vec<String>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let wanted = prefixes.len();
    std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        for _ in 0..wanted {
            let mut line = String::new();
            let _ = stdout.read_line(&mut line);
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let until = Instant::now() + START_TIMEOUT;
    let mut lines = Vec::new();
    for prefix in prefixes {
        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(line) if line.starts_with(prefix) => lines.push(line),
            other => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "no `{prefix}` line after {lines:?}: {other:?}; stderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    (child, lines)
}

/// [`start_cmd`] of the binary with `args`.
pub fn start(args: &[&str]) -> (Child, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    start_cmd(cmd)
}

/// Waits for `child` to exit; kills it and fails after [`EXIT_TIMEOUT`].
pub fn wait_bounded(child: &mut Child) -> ExitStatus {
    let until = Instant::now() + EXIT_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("vstats-vmm did not exit within {EXIT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
