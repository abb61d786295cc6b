//! What a local user can put in front of the tool's output: directory
//! names with escape sequences and newlines (shown escaped, never sent to
//! the terminal), and a reader that closes the pipe early (`| head -1`:
//! the output just ends, exit 0, no message).

mod common;

use std::{
    io::Read,
    process::{Command, Stdio},
};

use common::{stderr, stdout, tool, Scratch};
use vstats_producer::synth::Synth;

/// A VM whose directory name holds an escape sequence and a newline.
const EVIL: &str = "vm\u{1b}[2J\u{1b}[31m\nFAKE  row";

#[test]
fn list_shows_hostile_directory_names_escaped() {
    let s = Scratch::new("hostile-names");
    let root = s.join("root");
    let good = Synth::new(&root.join("good"), 1).unwrap();
    std::fs::create_dir_all(root.join(EVIL)).unwrap();
    let o = tool()
        .args(["list", "--root", root.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        !out.contains('\u{1b}'),
        "an escape reached the terminal: {out:?}"
    );
    // Header, the hostile directory, the good VM (the note that Xen is
    // unavailable is on stderr now): nothing forged.
    let rows: Vec<&str> = out.lines().filter(|l| !l.starts_with("(Xen: ")).collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(out.contains("vm\\u{1b}[2J\\u{1b}[31m\\nFAKE  row"), "{out}");
    assert!(out.lines().any(|l| l.contains("good")), "{out}");
    good.remove().unwrap();
}

/// `cmd | head -c0`, forced: stdout is a pipe whose reader is already
/// closed, so the first write fails with EPIPE.
fn with_closed_stdout(mut cmd: Command) -> std::process::Output {
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    drop(reader);
    cmd.stdout(Stdio::from(writer)).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    std::process::Output {
        status,
        stdout: Vec::new(),
        stderr: err.into_bytes(),
    }
}

#[test]
fn a_closed_pipe_ends_list_and_schema_quietly() {
    let s = Scratch::new("epipe");
    let root = s.join("root");
    let vm = Synth::new(&root.join("vm1"), 2).unwrap();
    for args in [
        &["list", "--root", root.to_str().unwrap()][..],
        &["schema", "--path", root.join("vm1").to_str().unwrap()],
        &[
            "sample",
            "--path",
            root.join("vm1").to_str().unwrap(),
            "--count",
            "1",
            "--interval",
            "0.01",
        ],
    ] {
        let mut cmd = tool();
        cmd.args(args);
        let o = with_closed_stdout(cmd);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        // Off Xen, `list` notes on stderr why no domain is listed: that
        // note is all stderr may hold.
        let err = stderr(&o);
        let other: Vec<&str> = err
            .lines()
            .filter(|l| !l.starts_with("xen-vcpus-stats: note: no Xen domains listed: "))
            .collect();
        assert_eq!(other, Vec::<&str>::new(), "{args:?}");
    }
    vm.remove().unwrap();
}
