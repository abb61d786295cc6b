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
