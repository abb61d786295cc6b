//! Builds the Xen stats-table producer exactly as the patch series in
//! `xen/patches` adds it to Xen.
//!
//! 1. Applies every `xen/patches/*.patch`, in file-name order, to an empty
//!    tree, keeping only the two producer files (`xen/common/stats_table.c`
//!    and `xen/include/xen/stats_table.h`). A patch that creates, changes
//!    or deletes either is applied hunk by hunk with exact context (no fuzz,
//!    no offset search): a hunk that does not match is a build error. The
//!    other files of the series (the Xen glue) are skipped.
//! 2. Lays out an include directory in `OUT_DIR`: the extracted
//!    `xen/stats_table.h`, and `public/stats_table.h`, which is the one
//!    public header of the repository (`capi/include/xen/stats_table.h`),
//!    as the series copies it into Xen.
//! 3. Compiles the extracted `stats_table.c`, unmodified, with the `cc`
//!    crate against that directory and the crate's `shim/` (the few Xen
//!    headers the file may include), with Xen's own C flags.
//!
//! The extracted sources are also kept in `OUT_DIR/xen-src` and named in
//! `OUT_DIR/sources.txt` (which patch last touched each file), so the
//! tests can say what they tested.

use std::{
    env, fs,
    path::{Path, PathBuf},
};

#[path = "build/patch.rs"]
mod patch;

use patch::apply_series;

/// The files the harness compiles, by their path in the Xen tree.
const PRODUCER_C: &str = "xen/common/stats_table.c";
const PRODUCER_H: &str = "xen/include/xen/stats_table.h";

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..");
    let patches_dir = root.join("xen/patches");
    let public_header = root.join("capi/include/xen/stats_table.h");
    let shim = manifest.join("shim");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));

    println!("cargo:rerun-if-changed={}", patches_dir.display());
    println!("cargo:rerun-if-changed={}", public_header.display());
    println!("cargo:rerun-if-changed={}", shim.display());

    let files = match apply_series(&patches_dir, &[PRODUCER_C, PRODUCER_H]) {
        Ok(f) => f,
        Err(e) => panic!(
            "extracting the producer from {}: {e}",
            patches_dir.display()
        ),
    };

    let src = out.join("xen-src");
    let include = out.join("include");
    let mut sources = String::new();
    for path in [PRODUCER_C, PRODUCER_H] {
        let f = files.get(path).unwrap_or_else(|| {
            panic!(
                "no patch in {} creates {path}: the series must add the producer",
                patches_dir.display()
            )
        });
        write(&src.join(path), &f.lines.concat());
        sources.push_str(&format!("{path} {}\n", f.last_patch));
    }
    write(&out.join("sources.txt"), &sources);
    // <xen/stats_table.h> as the series adds it, <public/stats_table.h> as
    // the series copies it.
    write(
        &include.join("xen/stats_table.h"),
        &files[PRODUCER_H].lines.concat(),
    );
    let public = fs::read_to_string(&public_header)
        .unwrap_or_else(|e| panic!("reading {}: {e}", public_header.display()));
    write(&include.join("public/stats_table.h"), &public);

    let mut build = cc::Build::new();
    build
        .file(src.join(PRODUCER_C))
        .file(shim.join("shim.c"))
        .include(&include)
        .include(&shim)
        // Xen's flags (Config.mk, xen/Makefile) that change what this file
        // means or whether it compiles; -Werror as Xen builds.
        .std("gnu99")
        .flag("-fno-strict-aliasing")
        .flag("-Wall")
        .flag("-Wstrict-prototypes")
        .flag("-Wdeclaration-after-statement")
        .warnings_into_errors(true)
        // ASSERT() active, as in a Xen debug build.
        .debug(true)
        .opt_level(2);
    build.compile("xen_stats_table");
}

fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    }
    fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
