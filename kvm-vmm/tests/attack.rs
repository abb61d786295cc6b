//! Attacks on `vstats-vmm`'s file transport and lifecycle (issue 10, items
//! 1, 5, 6 and 8), with real processes; the attacker is the unprivileged
//! user `nobody` (`runuser -u nobody --`) where the attack is one.
//!
//! Tests that need root (another user, `mount`) print "skipped: <reason>"
//! and return when not run as root; tests that need a VM do so when KVM
//! cannot be used.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

mod common;

use common::{kvm_or_skip, start, start_cmd, wait_bounded, BIN};
use vstats_abi::validate::validate;

/// `nobody`'s uid and `nogroup`'s gid on Debian-like systems.
const NOBODY: u32 = 65534;
const NOGROUP: u32 = 65534;
/// `--seconds` of a producer that should be refused: a guard, so that a
/// producer wrongly accepted ends the test (failing) instead of hanging it.
const GUARD: &str = "5";
/// A domain period that never comes.
const ENDLESS: &str = "18446744073709551615";

fn root_or_skip(why: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        println!("skipped: not root, cannot {why}");
    }
    root
}

/// A fresh path under the temporary directory.
fn temp_path(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("vstats-attack-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    let _ = std::fs::remove_file(&p);
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `cmd args` as `nobody`.
fn as_nobody(cmd: &str, args: &[&str]) -> Output {
    Command::new("runuser")
        .args(["-u", "nobody", "--", cmd])
        .args(args)
        .output()
        .unwrap()
}

/// Runs `cmd args` as `nobody`, which must succeed (setting up an attack).
fn as_nobody_ok(cmd: &str, args: &[&str]) {
    let out = as_nobody(cmd, args);
    assert!(out.status.success(), "nobody: {cmd} {args:?}: {out:?}");
}

/// Sends SIGTERM; the producer must exit successfully.
fn terminate(mut child: Child) {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: `pid` is our child, not yet waited for, so not reused.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = wait_bounded(&mut child);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status:?}; stderr: {stderr}");
}

fn check_tables(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for file in ["vcpu", "domain"] {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        validate(&bytes, bytes.len() as u64).unwrap_or_else(|e| panic!("{file}: {e}"));
        all.extend_from_slice(&bytes[..64]);
    }
    all
}

/// A failure with exactly one line on stderr that contains every `needle`,
/// and not a death by signal.
fn assert_one_line_error(out: &Output, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr:?}");
    }
}

/// A victim directory of root's with two files the attack aims at.
fn victim(tag: &str) -> PathBuf {
    let v = temp_path(tag);
    std::fs::create_dir(&v).unwrap();
    for f in ["vcpu", "domain"] {
        std::fs::write(v.join(f), b"precious").unwrap();
    }
    v
}

fn assert_untouched(victim: &Path) {
    let mut names: Vec<_> = std::fs::read_dir(victim)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["domain", "vcpu"], "{}", victim.display());
    for f in ["vcpu", "domain"] {
        assert_eq!(std::fs::read(victim.join(f)).unwrap(), b"precious");
    }
}

/// Item 1: `nobody` makes the root and plants `vm1 -> victim` in it; the
/// root-run producer refuses the root (another user's) and writes nothing
/// through the link. In a root of root's, the link itself is refused.
#[test]
fn a_root_of_nobody_with_a_symlinked_vm_directory_is_refused() {
    if !root_or_skip("act as nobody") || !kvm_or_skip() {
        return;
    }
    let victim = victim("victim1");
    let root = temp_path("nobody-root");
    as_nobody_ok("mkdir", &["-m755", s(&root)]);
    as_nobody_ok("ln", &["-s", s(&victim), s(&root.join("vm1"))]);
    let dir = root.join("vm1");
    let out = Command::new(BIN)
        .args(["--name", "vm1", "--dir", s(&dir), "--seconds", GUARD])
        .output()
        .unwrap();
    assert_one_line_error(&out, &[s(&root), "belongs to uid 65534", "refused"]);
    assert_untouched(&victim);

    // The same link in a root of root's: not followed either.
    std::os::unix::fs::chown(&root, Some(0), Some(0)).unwrap();
    let out = Command::new(BIN)
        .args(["--name", "vm1", "--dir", s(&dir), "--seconds", GUARD])
        .output()
        .unwrap();
    assert_one_line_error(&out, &[s(&dir), "symbolic link"]);
    assert_untouched(&victim);
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::remove_dir_all(&victim).unwrap();
}

/// Item 1: a symlink among the root's ancestors is refused.
#[test]
fn a_symlink_above_the_root_is_refused() {
    if !kvm_or_skip() {
        return;
    }
    let real = temp_path("real");
    std::fs::create_dir(&real).unwrap();
    let link = temp_path("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let dir = link.join("root/vm");
    let out = Command::new(BIN)
        .args(["--name", "vm", "--dir", s(&dir), "--seconds", GUARD])
        .output()
        .unwrap();
    assert_one_line_error(&out, &[s(&link), "symbolic link"]);
    assert_eq!(std::fs::read_dir(&real).unwrap().count(), 0);
    std::fs::remove_file(&link).unwrap();
    std::fs::remove_dir(&real).unwrap();
}

/// Item 1: after a clean start, the VM directory is moved away and a link
/// to a victim put in its place. `nobody` cannot (the root is root's and
/// not writable by others); done anyway, as by an attacker who could, the
/// producer's exit removes only its own files and leaves the victim be.
#[test]
fn moving_the_vm_directory_and_planting_a_link_spares_the_victim() {
    if !root_or_skip("act as nobody") || !kvm_or_skip() {
        return;
    }
    let victim = victim("victim2");
    let root = temp_path("swap-root");
    let dir = root.join("vm2");
    let old = root.join(".old");
    let child = start(&["--name", "vm2", "--dir", s(&dir)]).0;
    check_tables(&dir);

    let out = as_nobody("mv", &[s(&dir), s(&old)]);
    assert!(!out.status.success(), "nobody moved root's directory");
    assert!(dir.is_dir() && !old.exists());

    std::fs::rename(&dir, &old).unwrap();
    std::os::unix::fs::symlink(&victim, &dir).unwrap();
    terminate(child);
    assert_untouched(&victim);
    assert_eq!(
        std::fs::read_dir(&old).unwrap().count(),
        0,
        "its own tables were removed, through its own directory"
    );
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::remove_dir_all(&victim).unwrap();
}

/// Item 1: under umask 000 the root, the VM directory and the tables still
/// get their explicit modes, so `nobody` can neither read the tables nor
/// move a forged table over one.
#[test]
fn under_umask_000_nobody_can_neither_read_nor_replace_a_table() {
    if !root_or_skip("act as nobody") || !kvm_or_skip() {
        return;
    }
    let root = temp_path("umask-root");
    let dir = root.join("vm");
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "umask 000; exec \"$0\" --name vm --dir \"$1\"",
        BIN,
        s(&dir),
    ]);
    let child = start_cmd(cmd).0;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&root), 0o755);
    assert_eq!(mode(&dir), 0o750);
    assert_eq!(mode(&dir.join("vcpu")), 0o640);
    assert_eq!(mode(&dir.join("domain")), 0o640);
    let before = check_tables(&dir);

    let forged = temp_path("forged");
    as_nobody_ok("sh", &["-c", "echo forged > \"$0\"", s(&forged)]);
    let out = as_nobody("mv", &[s(&forged), s(&dir.join("vcpu"))]);
    assert!(!out.status.success(), "nobody replaced a table: {out:?}");
    let out = as_nobody("cat", &[s(&dir.join("vcpu"))]);
    assert!(!out.status.success(), "nobody read a table: {out:?}");
    assert_eq!(check_tables(&dir), before);
    terminate(child);
    assert!(!dir.exists());
    std::fs::remove_file(&forged).unwrap();
    std::fs::remove_dir(&root).unwrap();
}

/// Item 8: `--mode` and `--group` set the tables' mode and group, and the
/// VM directory lets those readers in.
#[test]
fn mode_and_group_are_options() {
    if !root_or_skip("give a table to nogroup") || !kvm_or_skip() {
        return;
    }
    let root = temp_path("group-root");
    let dir = root.join("vm");
    let child = start(&[
        "--name",
        "vm",
        "--dir",
        s(&dir),
        "--mode",
        "0644",
        "--group",
        "nogroup",
    ])
    .0;
    let meta = |p: &Path| std::fs::metadata(p).unwrap();
    assert_eq!(meta(&dir).permissions().mode() & 0o7777, 0o755);
    assert_eq!(meta(&dir).gid(), NOGROUP);
    for f in ["vcpu", "domain"] {
        assert_eq!(meta(&dir.join(f)).permissions().mode() & 0o7777, 0o644);
        assert_eq!(meta(&dir.join(f)).gid(), NOGROUP);
    }
    // Readable by every user, as asked.
    let out = as_nobody("cat", &[s(&dir.join("vcpu"))]);
    assert!(out.status.success(), "{out:?}");
    terminate(child);
    std::fs::remove_dir(&root).unwrap();

    let out = Command::new(BIN)
        .args(["--name", "vm", "--mode", "0999"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("octal mode"));
}

/// Item 5: a full tmpfs is a clear ENOSPC error, not a SIGBUS, and leaves
/// no temporary file.
#[test]
fn a_full_tmpfs_is_a_clear_error() {
    if !root_or_skip("mount a tmpfs") || !kvm_or_skip() {
        return;
    }
    let mnt = temp_path("tmpfs");
    std::fs::create_dir(&mnt).unwrap();
    let out = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=8k,mode=0755",
            "vstats-test",
            s(&mnt),
        ])
        .output()
        .unwrap();
    if !out.status.success() {
        println!(
            "skipped: cannot mount a tmpfs: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        std::fs::remove_dir(&mnt).unwrap();
        return;
    }
    let dir = mnt.join("vm");
    let out = Command::new(BIN)
        .args([
            "--name",
            "vm",
            "--vcpus",
            "4",
            "--dir",
            s(&dir),
            "--seconds",
            GUARD,
        ])
        .output();
    let left: Vec<_> = std::fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let umount = Command::new("umount").arg(&mnt).status().unwrap();
    assert!(umount.success());
    std::fs::remove_dir(&mnt).unwrap();
    let out = out.unwrap();
    assert_one_line_error(&out, &["no space", "table"]);
    assert_eq!(left, [] as [PathBuf; 0], "nothing left behind");
}

/// Item 6: A's directory is removed (`rm -rf`) and B publishes under the
/// same name. A's stop leaves B's tables and B's lock alone: a third
/// producer is still refused.
#[test]
fn a_stopping_producer_spares_its_successors_tables_and_lock() {
    if !kvm_or_skip() {
        return;
    }
    let root = temp_path("successor");
    let dir = root.join("vm");
    let a = start(&["--name", "vm", "--dir", s(&dir)]).0;
    let status = Command::new("rm").args(["-rf", s(&dir)]).status().unwrap();
    assert!(status.success());
    let b = start(&["--name", "vm", "--dir", s(&dir)]).0;
    let b_tables = check_tables(&dir);
    let third = || {
        Command::new(BIN)
            .args(["--name", "vm", "--dir", s(&dir), "--seconds", GUARD])
            .output()
            .unwrap()
    };
    assert_one_line_error(&third(), &["in use"]);
    terminate(a);
    assert_eq!(check_tables(&dir), b_tables, "B's tables are still there");
    assert_one_line_error(&third(), &["in use"]);
    terminate(b);
    assert!(!dir.exists());
    std::fs::remove_dir(&root).unwrap();
}

/// Item 8: `--seconds 1e19` (beyond what an Instant holds) is no deadline,
/// not a panic; and SIGTERM is noticed although the domain period never
/// ends.
#[test]
fn sigterm_is_noticed_with_an_endless_period_and_a_huge_deadline() {
    if !kvm_or_skip() {
        return;
    }
    let root = temp_path("endless");
    let dir = root.join("vm");
    let child = start(&[
        "--name",
        "vm",
        "--dir",
        s(&dir),
        "--seconds",
        "1e19",
        "--domain-period-ms",
        ENDLESS,
    ])
    .0;
    check_tables(&dir);
    terminate(child);
    assert!(!dir.exists());
    std::fs::remove_dir(&root).unwrap();
}

/// Item 8: `--seconds` is noticed although the domain period never ends.
#[test]
fn seconds_are_noticed_with_an_endless_period() {
    if !kvm_or_skip() {
        return;
    }
    let root = temp_path("endless-secs");
    let dir = root.join("vm");
    let mut child = start(&[
        "--name",
        "vm",
        "--dir",
        s(&dir),
        "--seconds",
        "0.2",
        "--domain-period-ms",
        ENDLESS,
    ])
    .0;
    assert!(wait_bounded(&mut child).success());
    assert!(!dir.exists());
    std::fs::remove_dir(&root).unwrap();
}

/// The uid the tests take for `nobody` is `nobody`'s.
#[test]
fn nobody_is_65534() {
    if !root_or_skip("act as nobody") {
        return;
    }
    let out = as_nobody("id", &["-u"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        NOBODY.to_string()
    );
}

/// Runs the producer as `nobody`, in group `kvm` (for /dev/kvm), without
/// `VSTATS_ROOT`, with `XDG_RUNTIME_DIR` as given, for 0.2 s; returns its
/// `published` line.
fn publish_as_nobody(name: &str, runtime_dir: Option<&Path>) -> String {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=nobody", "--regid=kvm", "--clear-groups", BIN])
        .args(["--name", name, "--seconds", "0.2"])
        .env_remove("VSTATS_ROOT")
        .env_remove("XDG_RUNTIME_DIR")
        .current_dir("/");
    if let Some(dir) = runtime_dir {
        cmd.env("XDG_RUNTIME_DIR", dir);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Item 8: a user other than root gets a default root of their own:
/// `$XDG_RUNTIME_DIR/vstats`, else `/dev/shm/vstats-<uid>`; never root's
/// `/dev/shm/vstats`.
#[test]
fn a_user_gets_a_default_root_of_their_own() {
    if !root_or_skip("act as nobody") || !kvm_or_skip() {
        return;
    }
    let has_kvm_group = std::fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("kvm:"));
    if !has_kvm_group {
        println!("skipped: no group kvm to give nobody /dev/kvm");
        return;
    }
    let name = format!("t-{}-own", std::process::id());
    let runtime = temp_path("runtime");
    std::fs::create_dir(&runtime).unwrap();
    std::os::unix::fs::chown(&runtime, Some(NOBODY), Some(NOGROUP)).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let line = publish_as_nobody(&name, Some(&runtime));
    assert_eq!(
        line.trim_end(),
        format!("published {}", runtime.join("vstats").join(&name).display())
    );
    let root = runtime.join("vstats");
    assert_eq!(std::fs::metadata(&root).unwrap().uid(), NOBODY);
    std::fs::remove_dir_all(&runtime).unwrap();

    let per_user = PathBuf::from(format!("/dev/shm/vstats-{NOBODY}"));
    let existed = per_user.exists();
    let line = publish_as_nobody(&name, None);
    assert_eq!(
        line.trim_end(),
        format!("published {}", per_user.join(&name).display())
    );
    assert_eq!(std::fs::metadata(&per_user).unwrap().uid(), NOBODY);
    assert!(!per_user.join(&name).exists(), "its directory is removed");
    if !existed {
        std::fs::remove_dir(&per_user).unwrap();
    }
}
