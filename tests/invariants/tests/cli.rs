//! The `vstats-invariants` binary: targets by path, directory and VM name,
//! text and JSON reports, and its exit codes (0 pass, 1 violation, 2 could
//! not check).

mod common;

use std::{
    path::Path,
    process::{Command, Output},
};

use common::Scratch;
use vstats_abi::{
    layout::{Layout, LayoutParams},
    record::DOMAIN_STD_DESCRIPTORS,
    DOMAIN_STATS_MAGIC_R2,
};
use vstats_invariants::{
    fault::{with_fault_table, Fault},
    path_targets,
    report::{EXIT_ERROR, EXIT_PASS, EXIT_USAGE, EXIT_VIOLATION},
    vm_dir, Target,
};
use vstats_producer::{shm::ShmTable, TableSpec};

fn checker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vstats-invariants"))
        .args(args)
        .output()
        .unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A domain table with its one record written once.
fn domain_table(path: &Path) -> ShmTable {
    let spec = TableSpec {
        magic: DOMAIN_STATS_MAGIC_R2,
        layout: Layout::compute(&LayoutParams::domain_r2()).unwrap(),
        descriptors: DOMAIN_STD_DESCRIPTORS,
        generation: 1,
    };
    let mut t = ShmTable::create(path, &spec).unwrap();
    let (_, mut w) = t.split();
    w.next().unwrap().update(|u| {
        u.set(0, 2);
        u.set(1, 2);
        u.set(2, 1000);
    });
    t
}

#[test]
fn a_good_directory_passes_and_a_broken_table_fails() {
    let s = Scratch::new("cli");
    let dir = s.dir().to_str().unwrap().to_owned();
    let _domain = domain_table(&s.path("domain"));
    with_fault_table(&s.path("vcpu"), Fault::None, 1, 2, |d| {
        d.step();
        let o = checker(&["--dir", &dir, "--seconds", "0.05"]);
        assert_eq!(code(&o), i32::from(EXIT_PASS), "{}", text(&o));
        assert!(text(&o).ends_with("result: PASS\n"), "{}", text(&o));
        assert!(text(&o).contains("domain table, 1 records"), "{}", text(&o));
    })
    .unwrap();
    with_fault_table(&s.path("vcpu"), Fault::BadMagic, 1, 2, |_| {
        let vcpu = s.path("vcpu");
        let o = checker(&["--path", vcpu.to_str().unwrap(), "--seconds", "0", "--json"]);
        assert_eq!(code(&o), i32::from(EXIT_VIOLATION), "{}", text(&o));
        let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(json["passed"], false);
        let r2 = &json["tables"][0]["rules"][1];
        assert_eq!((&r2["id"], &r2["status"]), (&"R2".into(), &"FAIL".into()));
        assert!(r2["evidence"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("0xaabbcce0"));
    })
    .unwrap();
}

#[test]
fn a_vm_name_checks_both_tables_under_dev_shm() {
    let name = format!("vstats-inv-cli-{}", std::process::id());
    let dir = vm_dir(&name);
    std::fs::create_dir_all(&dir).unwrap();
    let _domain = domain_table(&dir.join("domain"));
    let out = with_fault_table(&dir.join("vcpu"), Fault::None, 1, 3, |d| {
        d.step();
        checker(&["--name", &name, "--seconds", "0.05", "--json"])
    });
    let _ = std::fs::remove_dir_all(&dir);
    let o = out.unwrap();
    assert_eq!(code(&o), i32::from(EXIT_PASS), "{}", text(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let kinds: Vec<_> = json["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["attachments"][0]["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["vcpu", "domain"]);
}

#[test]
fn what_cannot_be_checked_exits_1_and_bad_arguments_2() {
    let s = Scratch::new("cli-err");
    let missing = s.path("nothing-here");
    let o = checker(&["--path", missing.to_str().unwrap(), "--seconds", "0"]);
    assert_eq!(code(&o), i32::from(EXIT_ERROR), "{}", text(&o));
    assert!(text(&o).contains("ERROR cannot open"), "{}", text(&o));
    assert!(text(&o).contains("result: ERROR"), "{}", text(&o));

    let o = checker(&["--domid", "3"]);
    assert_eq!(code(&o), i32::from(EXIT_USAGE));
    assert!(text(&o).contains("xen-vcpus-stats check"), "{}", text(&o));

    let o = checker(&[]);
    assert_eq!(code(&o), i32::from(EXIT_USAGE));
    assert!(text(&o).contains("nothing to check"), "{}", text(&o));

    let o = checker(&["--name", "../etc"]);
    assert_eq!(code(&o), i32::from(EXIT_USAGE));
}

#[test]
fn path_targets_lists_a_directorys_tables_and_opens_a_file_once() {
    let s = Scratch::new("path-targets");
    let paths = |t: Vec<Target>| -> Vec<_> {
        t.into_iter()
            .map(|t| match t {
                Target::Path(p) => p,
                _ => panic!("not a path target"),
            })
            .collect()
    };
    let err = path_targets(s.dir()).unwrap_err();
    assert!(
        matches!(err, vstats_consumer::Error::NoTable { .. }),
        "{err}"
    );
    let _domain = domain_table(&s.path("domain"));
    assert_eq!(paths(path_targets(s.dir()).unwrap()), [s.path("domain")]);
    assert_eq!(
        paths(path_targets(&s.path("domain")).unwrap()),
        [s.path("domain")]
    );
    let err = path_targets(&s.path("vcpu")).unwrap_err();
    assert!(matches!(err, vstats_consumer::Error::Io { .. }), "{err}");
}

/// The status and skip reason of rule `id` in the first table of a JSON
/// report.
fn rule_of(json: &serde_json::Value, id: &str) -> (String, Option<String>) {
    let r = json["tables"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no rule {id}"));
    (
        r["status"].as_str().unwrap().to_owned(),
        r["reason"].as_str().map(str::to_owned),
    )
}

/// A genuine RFC v3 page (written by the compatibility matrix's r1
/// writer, then zero-filled as v3's writer does: `pad0`, padding and every
/// slot but vCPU 0's are 0) gets the v3 profile (design 9.1): R1-R8 and
/// R22 checked on record 0, P1/P4/P13 not applicable, one note, exit 0. A
/// v3 page whose record is 8 bytes fails R22.
#[test]
fn a_genuine_v3_page_passes_with_the_v3_profile() {
    use vstats_consumer::mem::MemViewMut;
    use vstats_invariants::compat::r1;

    let s = Scratch::new("cli-v3");
    let path = s.path("vcpu");
    let mut p = r1::Producer::create(&path, 4).unwrap();
    let raw = MemViewMut::map_file(&path).unwrap();
    let (offset, len) = (u64::from(raw.load::<u32>(4).unwrap()), raw.len() as u64);
    // v3's zero fill: everything after the head is 0 but vCPU 0's words.
    let mut off = offset;
    while off < len {
        assert!(raw.store::<u32>(off, 0));
        off += 4;
    }
    p.update(0, |_| 5_000);
    let path_s = path.to_str().unwrap();
    let o = checker(&["--path", path_s, "--seconds", "0.05", "--json"]);
    assert_eq!(code(&o), i32::from(EXIT_PASS), "{}", text(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        json["tables"][0]["notes"][0],
        "RFC v3 table: only vCPU 0 is meaningful; vCPU count from the toolstack"
    );
    for id in [
        "R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R22", "R16", "D1", "D3",
    ] {
        assert_eq!(rule_of(&json, id).0, "PASS", "{id}: {}", text(&o));
    }
    for id in ["P1", "P4", "P13"] {
        assert_eq!(
            rule_of(&json, id),
            (
                "SKIP".to_owned(),
                Some("not applicable (RFC v3 table: zero fill)".to_owned())
            ),
            "{id}"
        );
    }
    for id in ["R9", "R13", "R17", "R23"] {
        assert_eq!(rule_of(&json, id).0, "SKIP", "{id}");
    }
    let o = checker(&["--path", path_s, "--seconds", "0.05"]);
    assert!(
        text(&o).contains(
            "  note: RFC v3 table: only vCPU 0 is meaningful; vCPU count from the toolstack\n"
        ),
        "{}",
        text(&o)
    );
    // size 8: no running time (R22), and nothing else wrong.
    assert!(raw.store::<u32>(8, 8));
    let o = checker(&["--path", path_s, "--seconds", "0.05", "--json"]);
    assert_eq!(code(&o), i32::from(EXIT_VIOLATION), "{}", text(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let failed: Vec<_> = json["tables"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "FAIL")
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(failed, ["R22"], "{}", text(&o));
}

/// `--vcpus N` gives the checker the toolstack's vCPU count: R24 and P10
/// are checked with it, skipped without it.
#[test]
fn vcpus_checks_slot_ids_against_the_toolstack() {
    let s = Scratch::new("cli-vcpus");
    let path = s.path("vcpu");
    let p = path.to_str().unwrap();
    with_fault_table(&path, Fault::VcpuIdShifted, 1, 4, |_| {
        let o = checker(&["--path", p, "--seconds", "0.05", "--vcpus", "2", "--json"]);
        assert_eq!(code(&o), i32::from(EXIT_VIOLATION), "{}", text(&o));
        let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(rule_of(&json, "R24").0, "FAIL", "{}", text(&o));
        assert_eq!(rule_of(&json, "P10").0, "PASS", "{}", text(&o));
        let o = checker(&["--path", p, "--seconds", "0.05", "--json"]);
        assert_eq!(code(&o), i32::from(EXIT_PASS), "{}", text(&o));
        let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let (status, reason) = rule_of(&json, "R24");
        assert_eq!(status, "SKIP");
        assert!(reason.unwrap().contains("--vcpus N"));
    })
    .unwrap();
    with_fault_table(&path, Fault::UnseededVcpu, 1, 4, |_| {
        let o = checker(&["--path", p, "--seconds", "0.05", "--vcpus", "4", "--json"]);
        assert_eq!(code(&o), i32::from(EXIT_VIOLATION), "{}", text(&o));
        let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(rule_of(&json, "P10").0, "FAIL", "{}", text(&o));
        assert_eq!(rule_of(&json, "R24").0, "PASS", "{}", text(&o));
    })
    .unwrap();
    let o = checker(&["--path", p, "--vcpus", "x"]);
    assert_eq!(code(&o), i32::from(EXIT_USAGE), "{}", text(&o));
}
