//! Link arguments of the shared library (`cdylib`) only: its soname and
//! the version script that limits its exports to the C API
//! (`capi/vstats.map`). The static library and the rlib are not linked
//! here, so nothing else changes. ELF linkers on Linux only: elsewhere the
//! shared library is built with rustc's defaults.

use std::{env, path::Path};

/// The soname's major version: bumped only with an incompatible change of
/// the C API. `scripts/install-capi` installs `libvstats.so.<major>.<minor>.<patch>`
/// with the links `libvstats.so.<major>` and `libvstats.so`.
const SONAME: &str = "libvstats.so.0";

fn main() {
    let map = Path::new(env!("CARGO_MANIFEST_DIR")).join("vstats.map");
    println!("cargo:rerun-if-changed={}", map.display());
    println!("cargo:rerun-if-changed=build.rs");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{SONAME}");
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        map.display()
    );
}
