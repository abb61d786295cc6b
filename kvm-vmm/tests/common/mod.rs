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
pub fn start_cmd(mut cmd: Command) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(line) if line.starts_with("published ") => (child, line),
        other => {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "no `published` line: {other:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
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
