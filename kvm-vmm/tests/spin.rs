//! The guest that spins without exits (`GuestMode::SpinNoExit`, design
//! `docs/abi-r3-design.md` section 4.5): stopping it, and what its record
//! shows a consumer.
//!
//! Each test prints "skipped: /dev/kvm unavailable: <reason>" and returns
//! when KVM cannot be used. No timing is asserted: waits are polls with a
//! 60 s bound that only stops a hung test, and the 2 s window below is the
//! interval a sampler would use, not a measured quantity.
//!
//! The frozen record is the problem r2 has (section 4.1): the monitor
//! accounts only at exits, so a vCPU running 100 % inside `KVM_RUN` keeps
//! the running time of its last exit, and a sampler's delta over any
//! window inside that stretch is 0.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vstats_consumer::{RecordSnapshot, Table};
use vstats_kvm_vmm::{monotonic_ns, Error, GuestMode, RunState, RunningVm, Vm, VmConfig};

mod common;

use common::{kvm_or_skip, start_cmd_lines, wait_bounded, BIN};

/// Bound of every wait: it only stops a hung test.
const HANG: Duration = Duration::from_secs(60);
/// The sampling interval of the frozen-record window.
const WINDOW: Duration = Duration::from_secs(2);

fn start_or_skip(config: VmConfig) -> Option<RunningVm<'static>> {
    match Vm::start(config) {
        Ok(vm) => Some(vm),
        Err(e @ Error::KvmUnavailable { .. }) => {
            println!("skipped: /dev/kvm unavailable: {e}");
            None
        }
        Err(e) => panic!("Vm::start: {e}"),
    }
}

/// Polls `done` every 10 ms until it holds; fails after [`HANG`].
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + HANG;
    while !done() {
        assert!(Instant::now() < until, "{what}: not within {HANG:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A spinning vCPU stops when the VM is stopped (`immediate_exit` and the
/// kick signal end its `KVM_RUN` with `EINTR`), goes offline with exact
/// accounting, and its thread is gone.
#[test]
fn spinning_vm_stops_cleanly() {
    let config = VmConfig::new(1).with_guest_mode(GuestMode::SpinNoExit);
    let Some(vm) = start_or_skip(config) else {
        return;
    };
    wait_for("vCPU 0 spinning", || vm.vcpus_spinning() == 1);

    let r = vm.vcpu_report(0).unwrap();
    assert!(r.guest_spinning);
    assert_eq!(r.state, RunState::Running, "the spinning report's state");
    assert_eq!(r.guest_reports, 1);
    assert_eq!(r.guest_iterations, 1, "the spin guest reports 1");
    assert_eq!(r.io_exits, 1, "one `out`, then no exit");
    assert_eq!(r.hlt_exits, 0);
    assert_eq!(r.unknown_io, 0);
    let tid = r.tid;
    assert!(tid > 0);
    let task = PathBuf::from(format!("/proc/self/task/{tid}"));
    assert!(task.exists(), "the vCPU thread runs");

    // Stop on another thread, so that a stop that hangs fails the test
    // instead of hanging it.
    let (tx, rx) = mpsc::channel();
    let stopper = std::thread::spawn(move || {
        let _ = tx.send(vm.stop());
    });
    let stopped = rx
        .recv_timeout(HANG)
        .unwrap_or_else(|e| panic!("stop of a spinning VM: not within {HANG:?} ({e})"))
        .unwrap();
    stopper.join().unwrap();

    assert_eq!(stopped.vm.vcpus_online, 0);
    assert!(
        stopped.vcpu_errors[0].is_none(),
        "{:?}",
        stopped.vcpu_errors[0]
    );
    let r = &stopped.vcpus[0];
    assert_eq!(r.state, RunState::Offline);
    assert_eq!(r.total_ns(), stopped.stopped_ns - r.created_ns);
    assert!(r.guest_spinning);
    assert_eq!(r.io_exits, 1, "no exit but the report and the stop");
    assert_eq!(r.hlt_exits, 0);
    assert!(r.interrupted >= 1, "the stop ended KVM_RUN with EINTR");
    assert_eq!(
        r.exits,
        r.io_exits + r.interrupted,
        "every exit was the report or the stop"
    );
    // Joined, so the thread has exited; the kernel drops its task entry
    // right after.
    wait_for("the vCPU thread's task gone", || !task.exists());
}

/// Kills the child if a test fails before it stopped it.
struct Reap(Option<Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One consistent copy of a record, and the table clock read right after
/// the copy (section 4.3: `now` is read after the copy).
struct Read {
    rec: RecordSnapshot,
    now_ns: u64,
}

fn read_record(table: &Table, i: u32) -> Read {
    let mut rec = RecordSnapshot::new(table);
    table
        .snapshot_record(i, &mut rec)
        .unwrap_or_else(|e| panic!("record {i}: {e}"));
    let now_ns = monotonic_ns();
    assert!(rec.is_consistent());
    Read { rec, now_ns }
}

/// Two reads of one record [`WINDOW`] apart with no producer write between
/// them (the same seq).
struct Window {
    a: Read,
    b: Read,
    /// Windows thrown away because the record changed inside them.
    retries: u32,
}

/// Design 4.5 step 3: reads record `i`, waits [`WINDOW`], reads it again;
/// if the seq moved (an exit sneaked in, e.g. a stray signal), tries the
/// next window. Fails only if no exit-free window occurs within [`HANG`].
fn exit_free_window(table: &Table, i: u32) -> Window {
    let until = Instant::now() + HANG;
    let mut retries = 0;
    let mut a = read_record(table, i);
    loop {
        std::thread::sleep(WINDOW);
        let b = read_record(table, i);
        if b.rec.seq() == a.rec.seq() {
            return Window { a, b, retries };
        }
        assert!(
            Instant::now() < until,
            "no exit-free window of {WINDOW:?} within {HANG:?}: seq {} -> {}",
            a.rec.seq(),
            b.rec.seq()
        );
        retries += 1;
        a = b;
    }
}

/// What a window over a spinning vCPU's record in `table` shows. The
/// record carries the times as of the last exit only, so both reads are
/// the same bytes: the running time as written is frozen although the vCPU
/// was running throughout (r2's problem). ABI r3 names the current state
/// and its entry time, and the consumer's up-to-date times (R26) show the
/// vCPU running for the whole window.
fn check_spinning_window(table: &Table, w: &Window) {
    let (a, b) = (&w.a.rec, &w.b.rec);
    assert!(!table.is_stale(), "the producer did not restart");
    assert_eq!(a.generation(), table.generation());
    assert_eq!(b.generation(), table.generation());
    assert_eq!(a.seq() % 2, 0);
    assert_eq!(a.seq(), b.seq(), "no producer write inside the window");
    assert_eq!(a.words(), b.words(), "the record did not change");
    let running = (a.running(), b.running());
    assert!(running.0.is_some(), "running time present");
    assert_eq!(running.0, running.1, "running time frozen while spinning");
    assert_eq!(
        (a.runnable(), a.blocked(), a.offline()),
        (b.runnable(), b.blocked(), b.offline())
    );
    assert!(w.b.now_ns > w.a.now_ns);
    // Design 4.5 step 4. Not a timing assertion: with no producer write in
    // the window, the running time grows by exactly the table-clock
    // interval between the two copies, and nothing else grows, whatever
    // the host's load.
    let (ua, ub) = (a.up_to_date(), b.up_to_date());
    assert!(ua.extrapolated && ub.extrapolated, "{ua:?} {ub:?}");
    assert_eq!(
        (ua.state_name(), ub.state_name()),
        (Some("running"), Some("running"))
    );
    let (ta, tb) = (a.taken_at_ns().unwrap(), b.taken_at_ns().unwrap());
    let delta = |k: usize| ub.times_ns[k].unwrap() - ua.times_ns[k].unwrap();
    assert_eq!(delta(0), tb - ta, "running for the whole window");
    assert_eq!(delta(1) + delta(2) + delta(3), 0, "nothing else");
    let share = delta(0) as f64 / (tb - ta) as f64;
    assert!(share >= 0.99, "running share {share}");
    println!(
        "window of {} ns (after {} retries): running {:?} ns in both reads, seq {}",
        w.b.now_ns - w.a.now_ns,
        w.retries,
        running.0,
        a.seq()
    );
}

fn publish_dir(tag: &str) -> PathBuf {
    std::env::temp_dir()
        .join(format!("vstats-kvm-vmm-spin-{tag}-{}", std::process::id()))
        .join("vm")
}

/// Sends SIGTERM; the producer must exit successfully and remove `dir`.
fn stop_child(mut reap: Reap, dir: &Path) {
    let mut child = reap.0.take().unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own child, which has not been reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = wait_bounded(&mut child);
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read as _;
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(status.success(), "{status}; stderr: {stderr}");
    assert!(!dir.exists(), "the publication is removed");
}

/// The `vstats-vmm` binary with `--spin-no-exit`: once it says `spinning`,
/// vCPU 0's record read through `vstats-consumer` does not change over an
/// exit-free window, and the VM stops cleanly on SIGTERM.
#[test]
fn spinning_vcpu_record_is_frozen() {
    if !kvm_or_skip() {
        return;
    }
    let dir = publish_dir("frozen");
    let mut cmd = Command::new(BIN);
    cmd.args([
        "--name",
        &format!("t-{}-spin", std::process::id()),
        "--vcpus",
        "1",
        "--spin-no-exit",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    let (child, lines) = start_cmd_lines(cmd, &["published ", "spinning"]);
    let reap = Reap(Some(child));
    assert_eq!(lines[0].trim_end(), format!("published {}", dir.display()));
    assert_eq!(lines[1].trim_end(), "spinning");

    let table = Table::open(dir.join("vcpu")).unwrap();
    assert_eq!(table.nr_records(), 1);
    let window = exit_free_window(&table, 0);
    check_spinning_window(&table, &window);
    drop(table);

    stop_child(reap, &dir);
    let _ = std::fs::remove_dir(dir.parent().unwrap());
}
