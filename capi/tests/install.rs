//! The installed C library: `scripts/install-capi` refuses bad arguments,
//! builds, then installs into a temporary `DESTDIR` without cargo (as under
//! sudo), and the C producer (`tests/c/producer.c`) is built
//! against the installed files with nothing but what
//! `pkg-config --cflags --libs vstats` gives, once linked to the shared
//! library and once (`--static`) to the archive; both publish what
//! `c_producer.rs` checks. The C sampler (`tests/c/reader.c`) is built
//! the same two ways, from the installed `vstats_reader.h`, and reads a
//! live table, hostile inputs included. The installed archive carries no debug info,
//! the shared library has its soname and exports the C API and nothing
//! else.
//!
//! The installer's release build shares the workspace's target directory
//! (only `vstats-capi` and its crates are built, once); its wall time is
//! printed.

mod common;

use std::{
    collections::BTreeSet,
    env,
    ffi::{OsStr, OsString},
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Instant,
};

use common::{c_source, compile_flags, have, producer, TempDir};
use vstats_producer::synth::Synth;

/// Where the test installs, below its `DESTDIR` (not a system prefix, whose
/// directories pkg-config would drop from its answers).
const PREFIX: &str = "/opt/vstats";
/// The library's version, as `scripts/install-capi` names the file.
const VERSION: &str = "0.3.0";
/// The soname `capi/build.rs` gives the shared library.
const SONAME: &str = "libvstats.so.0";

/// The workspace root.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// `pkg-config` when it runs. When it does not: the test is skipped with a
/// printed reason, unless `VSTATS_CLIENTS_REQUIRED=1` (set by
/// `scripts/test` once `scripts/install-test-deps.sh` installed it), when
/// it fails.
fn pkg_config() -> Option<&'static str> {
    let ok = Command::new("pkg-config")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some("pkg-config");
    }
    assert!(
        env::var_os("VSTATS_CLIENTS_REQUIRED").is_none_or(|v| v != "1"),
        "pkg-config is missing and VSTATS_CLIENTS_REQUIRED=1 (scripts/install-test-deps.sh installs it)"
    );
    eprintln!("skipped: pkg-config not found; scripts/install-test-deps.sh installs it");
    None
}

/// Runs a tool and returns its standard output; fails on an error.
fn output(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The names the crate exports to C: every `#[no_mangle]` function and
/// static of `capi/src/`.
fn no_mangle_items() -> BTreeSet<String> {
    let mut files = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    let mut names = BTreeSet::new();
    while let Some(f) = files.pop() {
        if f.is_dir() {
            files.extend(fs::read_dir(&f).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if f.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let mut pending = false;
        for line in fs::read_to_string(&f).unwrap().lines() {
            let line = line.trim();
            if line == "#[no_mangle]" || line == "#[unsafe(no_mangle)]" {
                pending = true;
            } else if pending && !line.starts_with("#[") {
                let (_, rest) = line
                    .split_once("fn ")
                    .or_else(|| line.split_once("static "))
                    .unwrap_or_else(|| {
                        panic!(
                            "{}: no fn or static after #[no_mangle]: {line}",
                            f.display()
                        )
                    });
                let rest = rest.strip_prefix("mut ").unwrap_or(rest);
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.insert(name);
                pending = false;
            }
        }
    }
    names
}

/// Every header below `dir`, as paths relative to it.
fn headers(dir: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|e| e == "h") {
                found.insert(p.strip_prefix(dir).unwrap().to_owned());
            }
        }
    }
    found
}

/// The words of `pkg-config <args> vstats` for the installation in `dest`.
fn pkg_flags(pc: &str, dest: &Path, lib: &Path, args: &[&str]) -> Vec<OsString> {
    output(
        Command::new(pc)
            .env("PKG_CONFIG_LIBDIR", lib.join("pkgconfig"))
            .env("PKG_CONFIG_SYSROOT_DIR", dest)
            .env_remove("PKG_CONFIG_PATH")
            .args(args)
            .arg("vstats"),
    )
    .split_whitespace()
    .map(OsString::from)
    .collect()
}

/// The shared libraries `prog` needs (`readelf -d`).
fn needed(prog: &Path) -> Vec<String> {
    output(Command::new("readelf").arg("-d").arg(prog))
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split_once('[')?.1.split_once(']')?.0.to_owned()))
        .collect()
}

#[test]
fn installed_library_builds_the_c_producer_through_pkg_config() {
    let test = "installed_library_builds_the_c_producer_through_pkg_config";
    if !have("gcc", test) {
        return;
    }
    let Some(pc) = pkg_config() else {
        return;
    };
    let dir = TempDir::new("install");
    let dest = dir.path().join("dest");

    // The workspace's target directory, which this test was built into
    // (target/<profile>/deps/install-<hash>), and the cargo running it.
    let exe = env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap();
    let script = |step: &str, prefix: &str, cargo: &OsStr| {
        Command::new("bash")
            .arg(workspace().join("scripts/install-capi"))
            .arg(step)
            .env("CARGO", cargo)
            .env("CARGO_TARGET_DIR", target)
            .env("DESTDIR", &dest)
            .env("PREFIX", prefix)
            .env_remove("LIBDIR")
            .output()
            .unwrap()
    };
    let succeeded = |o: &Output| {
        assert!(
            o.status.success(),
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let cargo = OsStr::new(env!("CARGO"));

    // Bad arguments are refused before anything is built or written.
    for (step, prefix, error) in [
        ("bogus", PREFIX, "unknown step 'bogus'"),
        ("install", "opt/vstats", "PREFIX must be an absolute path"),
        ("install", "/opt/../etc", "must not contain '.' or '..'"),
    ] {
        let o = script(step, prefix, cargo);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{step} {prefix}: {stderr}");
        assert!(stderr.contains(error), "{step} {prefix}: {stderr}");
    }
    assert!(!dest.exists());

    // The build as the user, then the install without cargo (as under sudo).
    let start = Instant::now();
    succeeded(&script("build", PREFIX, cargo));
    eprintln!(
        "scripts/install-capi build took {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert!(!dest.exists(), "the build installs nothing");
    succeeded(&script("install", PREFIX, OsStr::new("/nonexistent/cargo")));

    // Only DESTDIR+PREFIX was written.
    let names = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&dest), ["opt"]);
    assert_eq!(names(&dest.join("opt")), ["vstats"]);
    let prefix = dest.join(PREFIX.trim_start_matches('/'));
    assert_eq!(names(&prefix), ["include", "lib"]);
    let lib = prefix.join("lib");
    let so = format!("libvstats.so.{VERSION}");
    assert_eq!(
        names(&lib),
        ["libvstats.a", "libvstats.so", SONAME, &so, "pkgconfig"]
    );
    assert_eq!(names(&lib.join("pkgconfig")), ["vstats.pc"]);

    // Every header of capi/include/, subdirectories kept, under include/vstats/.
    assert_eq!(names(&prefix.join("include")), ["vstats"]);
    let src_inc = common::include_dir();
    let inc = prefix.join("include/vstats");
    let want = headers(&src_inc);
    assert!(want.contains(Path::new("vstats.h")));
    assert_eq!(headers(&inc), want);
    for h in &want {
        assert_eq!(
            fs::read(inc.join(h)).unwrap(),
            fs::read(src_inc.join(h)).unwrap(),
            "{}",
            h.display()
        );
    }

    // The shared library: the links, the soname, the C API exported and
    // nothing else (no Rust std symbol leaks).
    assert_eq!(
        fs::read_link(lib.join("libvstats.so")).unwrap(),
        Path::new(SONAME)
    );
    assert_eq!(fs::read_link(lib.join(SONAME)).unwrap(), Path::new(&so));
    let dynamic = output(Command::new("readelf").arg("-d").arg(lib.join(&so)));
    assert!(
        dynamic.contains(&format!("Library soname: [{SONAME}]")),
        "{dynamic}"
    );
    let exported: BTreeSet<String> = output(
        Command::new("nm")
            .args(["-D", "--defined-only", "--format=posix"])
            .arg(lib.join(&so)),
    )
    .lines()
    .filter_map(|l| Some(l.split_whitespace().next()?.to_owned()))
    .collect();
    for name in &exported {
        assert!(name.starts_with("vstats_"), "{name} is exported");
    }
    let api = no_mangle_items();
    assert!(api.contains("vstats_layout") && api.contains("vstats_writer_begin"));
    assert_eq!(exported, api, "the shared library exports the C API");

    // The archive: no debug info (readelf lists the sections of every member).
    let sections = output(
        Command::new("readelf")
            .args(["-S", "-W"])
            .arg(lib.join("libvstats.a")),
    );
    assert!(sections.contains(" .text"), "{sections}");
    assert!(
        !sections.contains(".debug_info"),
        "the archive has debug info"
    );
    assert!(
        !sections.contains(".llvmbc"),
        "the archive has LLVM bitcode"
    );

    // The .pc file: the version, and what the archive needs as rustc said.
    let modversion = pkg_flags(pc, &dest, &lib, &["--modversion"]);
    assert_eq!(modversion, [VERSION]);
    let cflags = pkg_flags(pc, &dest, &lib, &["--cflags"]);
    assert_eq!(cflags, [OsString::from(format!("-I{}", inc.display()))]);
    let shared_libs = pkg_flags(pc, &dest, &lib, &["--libs"]);
    let static_libs = pkg_flags(pc, &dest, &lib, &["--static", "--libs"]);
    assert_eq!(static_libs[..shared_libs.len()], shared_libs[..]);
    assert!(
        static_libs.len() > shared_libs.len(),
        "Libs.private is empty"
    );

    // The C producer, linked to the shared library (found at run time
    // through its run path), and to the archive: `-l:libvstats.a` (GNU ld)
    // takes the archive where `-lvstats` would take the shared library
    // beside it; the rest is pkg-config's `--static` answer.
    let mut shared = shared_libs;
    shared.push(format!("-Wl,-rpath,{}", lib.display()).into());
    let archive: Vec<OsString> = static_libs
        .into_iter()
        .map(|f| {
            if f == "-lvstats" {
                "-l:libvstats.a".into()
            } else {
                f
            }
        })
        .collect();
    for (name, libs, dynamic) in [("shared", shared, true), ("static", archive, false)] {
        let out = dir.path().join(name);
        fs::create_dir(&out).unwrap();
        let prog = compile_flags(&out, "producer", &[c_source("producer.c")], &cflags, &libs);
        let needed = needed(&prog);
        assert_eq!(
            needed.iter().any(|n| n.starts_with("libvstats")),
            dynamic,
            "{name}: {needed:?}"
        );
        assert_eq!(
            needed.iter().any(|n| n == SONAME),
            dynamic,
            "{name}: {needed:?}"
        );
        producer::check_runs(&prog, &out);

        let reader = compile_flags(&out, "reader", &[c_source("reader.c")], &cflags, &libs);
        let vm = out.join("vm");
        let synth = Synth::new(&vm, 2).unwrap();
        let vcpu = vm.join("vcpu");
        let vcpu = vcpu.to_str().unwrap();
        let scratch = out.join("scratch");
        for (args, want) in [
            (&["dump", vcpu, "1"][..], "\nrec 1 ok\n"),
            (
                &["hostile", vcpu, scratch.to_str().unwrap()],
                "hostile checks=",
            ),
        ] {
            let o = Command::new(&reader).args(args).output().unwrap();
            let stdout = String::from_utf8_lossy(&o.stdout);
            assert!(
                o.status.success() && stdout.contains(want),
                "{name}: reader {args:?}: {stdout}{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        synth.remove().unwrap();
    }
}
