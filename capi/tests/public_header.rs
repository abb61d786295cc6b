//! The public ABI header `include/xen/stats_table.h` (ABI r3, design
//! section 10.1): `tests/c/public_header_check.c` proves its layout at
//! compile time under every C and C++ standard a Xen or toolstack build
//! may use, 64-bit and, where a 32-bit toolchain exists, 32-bit; each build
//! that links prints the header's constants, sizes and offsets, compared
//! here with `vstats-abi`. A text check keeps the header plain ANSI C in
//! the style of Xen's public headers.

mod common;

use std::{
    collections::BTreeMap,
    fmt::Debug,
    fs,
    mem::{offset_of, size_of},
    path::{Path, PathBuf},
    process::Command,
};

use common::{c_source, include_dir, TempDir};
use vstats_abi::{
    desc::{Base, Descriptor, Kind, Unit, DESCRIPTOR_SIZE, NAME_LEN},
    header::{Header, EXT_HEADER_OFFSET, EXT_HEADER_SIZE, HEADER_SIZE},
    record::{
        domain_off, is_active, vcpu_off, DomainStats, DOMAIN_STATS_SIZE, INACTIVE, INACTIVE_BIT,
        PAD_INACTIVE, RECORD_PREFIX,
    },
    validate::{MAX_PAGE_SHIFT, MIN_PAGE_SHIFT},
    ExtHeader, TableKind, DOMAIN_STATS_MAGIC, DOMAIN_STATS_MAGIC_R2, VCPU_STATS_MAGIC,
    XENMEM_RESOURCE_STATS_TABLE, XENMEM_RESOURCE_STATS_TABLE_ID_DOMSTATS,
    XENMEM_RESOURCE_STATS_TABLE_ID_TIME, XENMEM_RESOURCE_STATS_TABLE_ID_VCPUSTATS,
};

use vstats_abi::{
    header::{
        time_off, R3Header, StatsTime, CLOCK_HOST_MONOTONIC, CLOCK_NONE, CLOCK_XEN_SYSTEM,
        DOMAIN_STATS_MAGIC_R3, EXT_HEADER_SIZE_R3, HDR_MARKER, HEADER_R3_END, R3_HEADER_OFFSET,
        R3_HEADER_SIZE, STATS_TIME_MAGIC, STATS_TIME_MAX_AGE_S, STATS_TIME_SIZE,
        STATS_TIME_TSC_STABLE,
    },
    record::{RunState, VcpuStatsR3, VCPU_STATS_SIZE_R3},
};

/// Any integer as `u64` (the dump prints unsigned decimal values).
fn n<T: TryInto<u64>>(v: T) -> u64
where
    T::Error: Debug,
{
    v.try_into().expect("a non-negative value")
}

/// The lines every build of `public_header_check.c` must print, from
/// `vstats-abi`.
fn expected() -> BTreeMap<String, u64> {
    let hi = |v: u64| v >> 32;
    let lo = |v: u64| v & 0xffff_ffff;
    let inactive = |w: u64| n(u8::from(!is_active(w)));
    let ext = |off: usize| n(EXT_HEADER_OFFSET) + n(off);
    let r3 = |off: usize| n(R3_HEADER_OFFSET) + n(off);
    let mut want: Vec<(&str, u64)> = vec![
        (
            "XENMEM_resource_stats_table",
            n(XENMEM_RESOURCE_STATS_TABLE),
        ),
        (
            "XENMEM_resource_stats_table_id_vcpustats",
            n(XENMEM_RESOURCE_STATS_TABLE_ID_VCPUSTATS),
        ),
        (
            "XENMEM_resource_stats_table_id_domstats",
            n(XENMEM_RESOURCE_STATS_TABLE_ID_DOMSTATS),
        ),
        (
            "XENMEM_resource_stats_table_id_time",
            n(XENMEM_RESOURCE_STATS_TABLE_ID_TIME),
        ),
        ("XEN_STATS_TIME_MAGIC", n(STATS_TIME_MAGIC)),
        ("XEN_STATS_TIME_SIZE", n(STATS_TIME_SIZE)),
        ("XEN_STATS_TIME_MAX_AGE_S", n(STATS_TIME_MAX_AGE_S)),
        ("XEN_STATS_TIME_TSC_STABLE", n(STATS_TIME_TSC_STABLE)),
        ("sizeof(xen_stats_time)", n(size_of::<StatsTime>())),
        ("offsetof(xen_stats_time,magic)", n(time_off::MAGIC)),
        ("offsetof(xen_stats_time,size)", n(time_off::SIZE)),
        (
            "offsetof(xen_stats_time,time_version)",
            n(time_off::TIME_VERSION),
        ),
        (
            "offsetof(xen_stats_time,_pad0)",
            n(offset_of!(StatsTime, _pad0)),
        ),
        (
            "offsetof(xen_stats_time,tsc_timestamp)",
            n(time_off::TSC_TIMESTAMP),
        ),
        (
            "offsetof(xen_stats_time,system_time)",
            n(time_off::SYSTEM_TIME),
        ),
        (
            "offsetof(xen_stats_time,tsc_to_system_mul)",
            n(time_off::TSC_TO_SYSTEM_MUL),
        ),
        ("offsetof(xen_stats_time,tsc_shift)", n(time_off::TSC_SHIFT)),
        ("offsetof(xen_stats_time,flags)", n(time_off::FLAGS)),
        (
            "offsetof(xen_stats_time,_pad1)",
            n(offset_of!(StatsTime, _pad1)),
        ),
        ("XEN_VCPU_STATS_MAGIC", n(VCPU_STATS_MAGIC)),
        ("XEN_DOMAIN_STATS_MAGIC", n(DOMAIN_STATS_MAGIC)),
        // r2's domain magic: the legacy constant.
        ("XEN_DOMAIN_STATS_MAGIC_R2", n(DOMAIN_STATS_MAGIC_R2)),
        ("XEN_STATS_HDR_MARKER", n(HDR_MARKER)),
        ("XEN_STATS_EXT_OFFSET", n(EXT_HEADER_OFFSET)),
        ("XEN_STATS_EXT_SIZE_R2", n(EXT_HEADER_SIZE)),
        ("XEN_STATS_EXT_SIZE_R3", n(EXT_HEADER_SIZE_R3)),
        ("XEN_STATS_RECORD_PREFIX", n(RECORD_PREFIX)),
        ("XEN_STATS_PAGE_SHIFT_MIN", n(MIN_PAGE_SHIFT)),
        ("XEN_STATS_PAGE_SHIFT_MAX", n(MAX_PAGE_SHIFT)),
        ("XEN_STATS_CLOCK_NONE", n(CLOCK_NONE)),
        ("XEN_STATS_CLOCK_HOST_MONOTONIC", n(CLOCK_HOST_MONOTONIC)),
        ("XEN_STATS_CLOCK_XEN_SYSTEM", n(CLOCK_XEN_SYSTEM)),
        ("RUNSTATE_running", RunState::RUNNING.0),
        ("RUNSTATE_runnable", RunState::RUNNABLE.0),
        ("RUNSTATE_blocked", RunState::BLOCKED.0),
        ("RUNSTATE_offline", RunState::OFFLINE.0),
        ("XEN_STATS_NR_RUNSTATES", n(RunState::COUNT)),
        ("XEN_STATS_INACTIVE_HI", hi(INACTIVE)),
        ("XEN_STATS_INACTIVE_LO", lo(INACTIVE)),
        ("XEN_STATS_INACTIVE.hi", hi(INACTIVE)),
        ("XEN_STATS_INACTIVE.lo", lo(INACTIVE)),
        ("XEN_STATS_INACTIVE_BIT.hi", hi(INACTIVE_BIT)),
        ("XEN_STATS_INACTIVE_BIT.lo", lo(INACTIVE_BIT)),
        ("XEN_STATS_PAD_INACTIVE", n(PAD_INACTIVE)),
        ("IS_INACTIVE(INACTIVE)", inactive(INACTIVE)),
        ("IS_INACTIVE(INACTIVE_BIT)", inactive(INACTIVE_BIT)),
        ("IS_INACTIVE(INACTIVE_BIT-1)", inactive(INACTIVE_BIT - 1)),
        ("IS_INACTIVE(0)", inactive(0)),
        ("IS_INACTIVE_HI(INACTIVE_HI)", inactive(hi(INACTIVE) << 32)),
        ("IS_INACTIVE_HI(0x80000000)", inactive(0x8000_0000 << 32)),
        ("IS_INACTIVE_HI(0x7fffffff)", inactive(0x7fff_ffff << 32)),
        ("XEN_STATS_KIND_CUMULATIVE", n(Kind::CUMULATIVE.0)),
        ("XEN_STATS_KIND_INSTANT", n(Kind::INSTANT.0)),
        ("XEN_STATS_KIND_PEAK", n(Kind::PEAK.0)),
        ("XEN_STATS_KIND_LINEAR_HIST", n(Kind::LINEAR_HIST.0)),
        ("XEN_STATS_KIND_LOG2_HIST", n(Kind::LOG2_HIST.0)),
        ("XEN_STATS_UNIT_NONE", n(Unit::NONE.0)),
        ("XEN_STATS_UNIT_BYTES", n(Unit::BYTES.0)),
        ("XEN_STATS_UNIT_SECONDS", n(Unit::SECONDS.0)),
        ("XEN_STATS_UNIT_CYCLES", n(Unit::CYCLES.0)),
        ("XEN_STATS_UNIT_BOOLEAN", n(Unit::BOOLEAN.0)),
        ("XEN_STATS_BASE_POW10", n(Base::POW10.0)),
        ("XEN_STATS_BASE_POW2", n(Base::POW2.0)),
        ("XEN_STATS_DESC_SIZE", n(DESCRIPTOR_SIZE)),
        ("XEN_STATS_DESC_NAME_LEN", n(NAME_LEN)),
        // struct xen_stats_header: v3, r2 and r3 parts.
        ("sizeof(xen_stats_header)", n(HEADER_R3_END)),
        (
            "offsetof(xen_stats_header,magic)",
            n(offset_of!(Header, magic)),
        ),
        (
            "offsetof(xen_stats_header,offset)",
            n(offset_of!(Header, offset)),
        ),
        (
            "offsetof(xen_stats_header,size)",
            n(offset_of!(Header, size)),
        ),
        (
            "offsetof(xen_stats_header,stride)",
            n(offset_of!(Header, stride)),
        ),
        // The marker is the extension header's first word.
        ("offsetof(xen_stats_header,hdr_marker)", ext(0)),
        (
            "offsetof(xen_stats_header,ext_size)",
            ext(offset_of!(ExtHeader, ext_size)),
        ),
        (
            "offsetof(xen_stats_header,nr_records)",
            ext(offset_of!(ExtHeader, nr_records)),
        ),
        (
            "offsetof(xen_stats_header,page_shift)",
            ext(offset_of!(ExtHeader, page_shift)),
        ),
        (
            "offsetof(xen_stats_header,abi_size)",
            ext(offset_of!(ExtHeader, abi_size)),
        ),
        (
            "offsetof(xen_stats_header,desc_offset)",
            ext(offset_of!(ExtHeader, desc_offset)),
        ),
        (
            "offsetof(xen_stats_header,desc_count)",
            ext(offset_of!(ExtHeader, desc_count)),
        ),
        (
            "offsetof(xen_stats_header,desc_stride)",
            ext(offset_of!(ExtHeader, desc_stride)),
        ),
        (
            "offsetof(xen_stats_header,generation)",
            ext(offset_of!(ExtHeader, generation)),
        ),
        (
            "offsetof(xen_stats_header,clock)",
            r3(offset_of!(R3Header, clock)),
        ),
        (
            "offsetof(xen_stats_header,_rsvd0)",
            r3(offset_of!(R3Header, _rsvd0)),
        ),
        (
            "offsetof(xen_stats_header,xstats_offset)",
            r3(offset_of!(R3Header, xstats_offset)),
        ),
        (
            "offsetof(xen_stats_header,xstats_size)",
            r3(offset_of!(R3Header, xstats_size)),
        ),
        (
            "offsetof(xen_stats_header,xdesc_offset)",
            r3(offset_of!(R3Header, xdesc_offset)),
        ),
        (
            "offsetof(xen_stats_header,xdesc_count)",
            r3(offset_of!(R3Header, xdesc_count)),
        ),
        (
            "offsetof(xen_stats_header,xdesc_stride)",
            r3(offset_of!(R3Header, xdesc_stride)),
        ),
        (
            "offsetof(xen_stats_header,_rsvd1)",
            r3(offset_of!(R3Header, _rsvd1)),
        ),
        // struct xen_stats_desc
        ("sizeof(xen_stats_desc)", n(size_of::<Descriptor>())),
        (
            "offsetof(xen_stats_desc,name)",
            n(offset_of!(Descriptor, name)),
        ),
        (
            "offsetof(xen_stats_desc,offset)",
            n(offset_of!(Descriptor, offset)),
        ),
        (
            "offsetof(xen_stats_desc,count)",
            n(offset_of!(Descriptor, count)),
        ),
        (
            "offsetof(xen_stats_desc,kind)",
            n(offset_of!(Descriptor, kind)),
        ),
        (
            "offsetof(xen_stats_desc,unit)",
            n(offset_of!(Descriptor, unit)),
        ),
        (
            "offsetof(xen_stats_desc,base)",
            n(offset_of!(Descriptor, base)),
        ),
        (
            "offsetof(xen_stats_desc,exponent)",
            n(offset_of!(Descriptor, exponent)),
        ),
        (
            "offsetof(xen_stats_desc,bucket_size)",
            n(offset_of!(Descriptor, bucket_size)),
        ),
        // struct xen_vcpu_stats
        ("sizeof(xen_vcpu_stats)", n(VCPU_STATS_SIZE_R3)),
        (
            "offsetof(xen_vcpu_stats,seq)",
            n(offset_of!(VcpuStatsR3, seq)),
        ),
        (
            "offsetof(xen_vcpu_stats,_pad)",
            n(offset_of!(VcpuStatsR3, _pad)),
        ),
        (
            "offsetof(xen_vcpu_stats,runstate_running_time)",
            n(vcpu_off::RUNNING),
        ),
        (
            "offsetof(xen_vcpu_stats,runstate_runnable_time)",
            n(vcpu_off::RUNNABLE),
        ),
        (
            "offsetof(xen_vcpu_stats,runstate_blocked_time)",
            n(vcpu_off::BLOCKED),
        ),
        (
            "offsetof(xen_vcpu_stats,runstate_offline_time)",
            n(vcpu_off::OFFLINE),
        ),
        (
            "offsetof(xen_vcpu_stats,runstate)",
            n(vstats_abi::record::vcpu_off::RUNSTATE),
        ),
        (
            "offsetof(xen_vcpu_stats,runstate_entry_time)",
            n(vstats_abi::record::vcpu_off::ENTRY),
        ),
        // struct xen_domain_stats
        ("sizeof(xen_domain_stats)", n(DOMAIN_STATS_SIZE)),
        (
            "offsetof(xen_domain_stats,seq)",
            n(offset_of!(DomainStats, seq)),
        ),
        (
            "offsetof(xen_domain_stats,_pad)",
            n(offset_of!(DomainStats, _pad)),
        ),
        (
            "offsetof(xen_domain_stats,vcpus_online)",
            n(domain_off::VCPUS_ONLINE),
        ),
        (
            "offsetof(xen_domain_stats,vcpus_max)",
            n(domain_off::VCPUS_MAX),
        ),
        ("offsetof(xen_domain_stats,uptime)", n(domain_off::UPTIME)),
    ];
    let len = want.len();
    let map: BTreeMap<String, u64> = want.drain(..).map(|(k, v)| (k.to_owned(), v)).collect();
    assert_eq!(map.len(), len, "no name is listed twice");
    map
}

/// The Rust side agrees with itself where the C dump has one line for two
/// Rust facts, so that comparing the dump with one of them is enough.
#[test]
fn rust_constants_agree_among_themselves() {
    assert_eq!(n(HEADER_SIZE), n(offset_of!(Header, stride)) + 4);
    assert_eq!(EXT_HEADER_OFFSET, HEADER_SIZE);
    assert_eq!(n(size_of::<ExtHeader>()), n(EXT_HEADER_SIZE));
    assert_eq!(EXT_HEADER_OFFSET + EXT_HEADER_SIZE, R3_HEADER_OFFSET);
    assert_eq!(n(size_of::<R3Header>()), n(R3_HEADER_SIZE));
    assert_eq!(R3_HEADER_OFFSET + R3_HEADER_SIZE, HEADER_R3_END);
    assert_eq!(EXT_HEADER_OFFSET + EXT_HEADER_SIZE_R3, HEADER_R3_END);
    assert_eq!(n(size_of::<VcpuStatsR3>()), n(VCPU_STATS_SIZE_R3));
    let times = [
        offset_of!(VcpuStatsR3, runstate_running_time),
        offset_of!(VcpuStatsR3, runstate_runnable_time),
        offset_of!(VcpuStatsR3, runstate_blocked_time),
        offset_of!(VcpuStatsR3, runstate_offline_time),
        offset_of!(VcpuStatsR3, runstate),
        offset_of!(VcpuStatsR3, runstate_entry_time),
    ];
    let consts = [
        vcpu_off::RUNNING,
        vcpu_off::RUNNABLE,
        vcpu_off::BLOCKED,
        vcpu_off::OFFLINE,
        vstats_abi::record::vcpu_off::RUNSTATE,
        vstats_abi::record::vcpu_off::ENTRY,
    ];
    assert_eq!(times.map(n), consts.map(n));
    assert_eq!(n(size_of::<DomainStats>()), n(DOMAIN_STATS_SIZE));
    assert_eq!(n(size_of::<Descriptor>()), n(DESCRIPTOR_SIZE));
    // The r3 domain magic under both its names.
    assert_eq!(DOMAIN_STATS_MAGIC, DOMAIN_STATS_MAGIC_R3);
    // Both domain magics name the domain table.
    assert_eq!(
        TableKind::from_magic(DOMAIN_STATS_MAGIC),
        Some(TableKind::Domain)
    );
    assert_eq!(
        TableKind::from_magic(DOMAIN_STATS_MAGIC_R2),
        Some(TableKind::Domain)
    );
    assert_eq!(
        TableKind::from_magic(VCPU_STATS_MAGIC),
        Some(TableKind::Vcpu)
    );
}

/// C or C++.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lang {
    C,
    Cxx,
}

/// One compiler: the driver that compiles the check and the C driver of
/// the same family that links it (a C++ build links with the C driver:
/// the check uses no C++ runtime, and a 32-bit libstdc++ is often missing
/// where 32-bit libc is present).
struct Compiler {
    cc: &'static str,
    linker: &'static str,
    lang: Lang,
}

const COMPILERS: &[Compiler] = &[
    Compiler {
        cc: "gcc",
        linker: "gcc",
        lang: Lang::C,
    },
    Compiler {
        cc: "g++",
        linker: "gcc",
        lang: Lang::Cxx,
    },
    Compiler {
        cc: "clang",
        linker: "clang",
        lang: Lang::C,
    },
    Compiler {
        cc: "clang++",
        linker: "clang",
        lang: Lang::Cxx,
    },
];

/// Warnings every build turns into errors. `-Wpadded` also proves the
/// header's structures have no implicit padding.
const STRICT: &[&str] = &["-pedantic", "-Werror", "-Wall", "-Wextra", "-Wpadded"];

/// What a configuration can do on this machine.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Reach {
    /// Compile, link and run: the layout checks and the value dump.
    Run,
    /// Compile only (no library to link against): the layout checks.
    Compile,
}

fn exists(cc: &str) -> bool {
    Command::new(cc)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn lang_args(lang: Lang) -> [&'static str; 2] {
    match lang {
        Lang::C => ["-x", "c"],
        Lang::Cxx => ["-x", "c++"],
    }
}

/// Compiles `src` to an object, then links it when `link` is set; returns
/// the failing step's stderr on error.
fn build(
    c: &Compiler,
    args: &[&str],
    src: &Path,
    out: &Path,
    link: bool,
) -> Result<PathBuf, String> {
    let obj = out.with_extension("o");
    let o = Command::new(c.cc)
        .args(lang_args(c.lang))
        .args(args)
        .arg("-I")
        .arg(include_dir())
        .arg("-c")
        .arg(src)
        .arg("-o")
        .arg(&obj)
        .output()
        .map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    if !link {
        return Ok(obj);
    }
    let m32: &[&str] = if args.contains(&"-m32") {
        &["-m32"]
    } else {
        &[]
    };
    let o = Command::new(c.linker)
        .args(m32)
        .arg(&obj)
        .arg("-o")
        .arg(out)
        .output()
        .map_err(|e| e.to_string())?;
    if o.status.success() {
        Ok(out.to_owned())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

/// Whether `c` with `-m32` (or natively) can link and run, or only
/// compile, a trivial program of its language; `None` when not even that.
fn probe(c: &Compiler, m32: bool, dir: &Path) -> Option<Reach> {
    let src = dir.join(match c.lang {
        Lang::C => "probe.c",
        Lang::Cxx => "probe.cc",
    });
    fs::write(
        &src,
        "#include <stdio.h>\nint main(void) { return puts(\"\") < 0; }\n",
    )
    .unwrap();
    let args: &[&str] = if m32 { &["-m32"] } else { &[] };
    let out = dir.join(format!("probe-{}-{m32}", c.cc));
    match build(c, args, &src, &out, true) {
        Ok(exe)
            if Command::new(&exe)
                .output()
                .is_ok_and(|o| o.status.success()) =>
        {
            Some(Reach::Run)
        }
        _ => build(c, args, &src, &out, false)
            .ok()
            .map(|_| Reach::Compile),
    }
}

fn parse_dump(stdout: &[u8]) -> BTreeMap<String, u64> {
    String::from_utf8(stdout.to_vec())
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect()
}

/// The compiler matrix of design section 10.1: gcc `-std=c89`, `c99`,
/// `c11`; g++ `-std=c++98`, `c++11`, `c++17`; all `-pedantic -Werror -Wall
/// -Wextra -Wpadded`; each again with `-m32` when a 32-bit build works; the
/// C99-and-later ones again with Xen's `xen_mk_ullong` and `RUNSTATE_*`
/// defined before the header; and the same with clang when it is present.
/// Every build that runs prints the same dump, equal to `vstats-abi`'s.
#[test]
fn public_header_compiles_everywhere_and_matches_the_abi_crate() {
    let test = "public_header_compiles_everywhere_and_matches_the_abi_crate";
    if !common::have("gcc", test) {
        return;
    }
    let want = expected();
    let dir = TempDir::new("public-header");
    let src = c_source("public_header_check.c");
    let mut ran = Vec::new();
    for c in COMPILERS {
        if !exists(c.cc) {
            eprintln!("{test}: {} not found: its builds are skipped", c.cc);
            continue;
        }
        let stds: &[&str] = match c.lang {
            Lang::C => &["c89", "c99", "c11"],
            Lang::Cxx => &["c++98", "c++11", "c++17"],
        };
        for m32 in [false, true] {
            let Some(reach) = probe(c, m32, dir.path()) else {
                assert!(m32, "{} cannot build a trivial program", c.cc);
                eprintln!(
                    "{test}: {} -m32 cannot build (no 32-bit toolchain): skipped",
                    c.cc
                );
                continue;
            };
            // The native toolchain must be complete: gcc and g++ link.
            assert!(m32 || reach == Reach::Run, "{} cannot link natively", c.cc);
            for std in stds {
                // Xen's xen_mk_ullong() makes ULL literals, which C89 and
                // C++98 -pedantic refuse, as they would in any such build.
                let xen_first: &[bool] = if matches!(*std, "c89" | "c++98") {
                    &[false]
                } else {
                    &[false, true]
                };
                for &xen in xen_first {
                    let std_arg = format!("-std={std}");
                    let mut args: Vec<&str> = vec![&std_arg];
                    args.extend_from_slice(STRICT);
                    if m32 {
                        args.push("-m32");
                    }
                    if xen {
                        args.push("-DXEN_NAMES_FIRST");
                    }
                    let label = format!("{} {}", c.cc, args.join(" "));
                    let out = dir.path().join(format!(
                        "check-{}-{std}-{m32}-{xen}",
                        c.cc.replace('+', "x")
                    ));
                    let built = build(c, &args, &src, &out, reach == Reach::Run)
                        .unwrap_or_else(|e| panic!("{label}:\n{e}"));
                    if reach == Reach::Run {
                        let o = Command::new(&built).output().unwrap();
                        assert!(o.status.success(), "{label}: the dump failed");
                        let got = parse_dump(&o.stdout);
                        for (name, value) in &want {
                            assert_eq!(got.get(name), Some(value), "{label}: {name}");
                        }
                        assert_eq!(
                            got.len(),
                            want.len(),
                            "{label}: every printed line is checked"
                        );
                    }
                    ran.push(format!("{label}: {reach:?}"));
                }
            }
        }
    }
    // The six builds design 10.1 names ran natively, with the dump.
    for need in [
        "gcc -std=c89 ",
        "gcc -std=c99 ",
        "gcc -std=c11 ",
        "g++ -std=c++98 ",
        "g++ -std=c++11 ",
        "g++ -std=c++17 ",
    ] {
        if need.starts_with("g++") && !exists("g++") {
            continue;
        }
        assert!(
            ran.iter()
                .any(|r| r.starts_with(need) && !r.contains("-m32") && r.ends_with("Run")),
            "{need}did not run"
        );
    }
    eprintln!("{test}: the builds that ran:\n  {}", ran.join("\n  "));
}

/// The header text keeps the rules of design 10.1 that no compiler checks:
/// the MIT SPDX line, the Xen guard, no includes, only `/* */` comments, no
/// C99/C11 features and no 64-bit literal outside `xen_mk_ullong()`, and a
/// size comment after each structure.
#[test]
fn public_header_is_plain_ansi_c_in_xen_style() {
    let path = include_dir().join("xen/stats_table.h");
    let text = fs::read_to_string(&path).unwrap();
    let first = text.lines().next().unwrap();
    assert_eq!(first, "/* SPDX-License-Identifier: MIT */");
    assert!(text
        .contains("#ifndef __XEN_PUBLIC_STATS_TABLE_H__\n#define __XEN_PUBLIC_STATS_TABLE_H__\n"));
    assert!(text.contains("#endif /* __XEN_PUBLIC_STATS_TABLE_H__ */\n"));
    assert!(text.is_ascii(), "ASCII only");

    // The text outside comments: code only.
    let mut code = String::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("/*") {
        code.push_str(&rest[..start]);
        let end = rest[start..].find("*/").expect("every comment is closed");
        code.push(' ');
        rest = &rest[start + end + 2..];
    }
    code.push_str(rest);
    for banned in [
        "//",
        "#include",
        "_Static_assert",
        "static_assert",
        "_Alignas",
        "alignas",
        "bool",
        "inline",
        "union",
        "[]",
        "long long",
        "enum",
        "#pragma",
    ] {
        assert!(!code.contains(banned), "the header's code uses `{banned}`");
    }

    // Integer literals: none with an LL suffix, none wider than 32 bits
    // except as the argument of xen_mk_ullong().
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_number = bytes[i].is_ascii_digit()
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if !starts_number {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        let lit = &code[start..i];
        let digits = lit.trim_end_matches(['u', 'U', 'l', 'L']);
        assert!(
            !lit[digits.len()..].to_ascii_lowercase().contains("ll"),
            "64-bit literal `{lit}`"
        );
        let value = match digits.strip_prefix("0x") {
            Some(hex) => u128::from_str_radix(hex, 16),
            None => digits.parse(),
        }
        .unwrap_or_else(|e| panic!("literal `{lit}`: {e}"));
        if value > u128::from(u32::MAX) {
            assert!(
                code[..start].ends_with("xen_mk_ullong("),
                "literal `{lit}` is wider than 32 bits outside xen_mk_ullong()"
            );
        }
    }

    // Each structure is followed by its size comment.
    for (name, size) in [
        ("xen_stats_header", 88),
        ("xen_stats_desc", 64),
        ("xen_vcpu_stats", 56),
        ("xen_domain_stats", 32),
    ] {
        let def = format!("struct {name} {{");
        let at = text.find(&def).unwrap_or_else(|| panic!("{def}"));
        let end = at + text[at..].find("\n};\n").unwrap() + 4;
        assert!(
            text[end..].starts_with(&format!("/* {size} bytes */\n")),
            "size comment after struct {name}"
        );
    }
}
