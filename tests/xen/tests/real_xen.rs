//! The Xen backend against a real Xen 4.17 (Debian's), booted under QEMU
//! with TCG: the error paths. Stock Xen 4.17 has no stats table, so every
//! command must say, in one line, that the hypervisor does not offer it;
//! a table itself needs the hypervisor side (a later issue).
//!
//! Skipped, with the reason, when QEMU or the Debian packages are missing
//! (`tests/xen/install.sh` installs them; `scripts/test` runs it). With
//! `VSTATS_XEN_REQUIRED=1` (set by `scripts/test` once the install
//! succeeded) a missing prerequisite fails instead. One boot takes about
//! 30 s on an idle 2-core machine; a boot that does not finish is retried
//! (up to three boots). `XEN_IMAGE=path` boots another hypervisor image;
//! `VSTATS_SKIP_XEN=1` skips the test.

use serde_json::Value;
use vstats_xen_tests::{
    boot_timeout, boot_until_complete, build_initrd, build_payload, should_run, tail, target_dir,
    Report, Run, BOOTS,
};

const LOG_TAIL: usize = 80;

/// Every command dom0 runs, by the name `dom0/checks.sh` gives it.
const RUNS: &[&str] = &[
    "xl-info",
    "xl-list",
    "list",
    "list-json",
    "sample",
    "check",
    "schema",
    "sample-dom0",
    "sample-nodomain",
    "missing-lib",
    "unloadable-lib",
    "wrong-lib",
    "probe",
];

/// Boots until a boot completes, three at most; the report and the log
/// of the last.
fn boot_and_parse() -> (Report, String) {
    let target = target_dir();
    let work = target.join("xen-boot");
    let payload = work.join("payload");
    build_payload(&target, &payload).unwrap_or_else(|e| panic!("{e}"));
    build_initrd(&work, &payload).unwrap_or_else(|e| panic!("{e}"));
    let (r, b) = boot_until_complete(
        &work,
        None,
        BOOTS,
        boot_timeout(),
        LOG_TAIL,
        |r: &Report| r.complete(RUNS),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (r, b.log)
}

/// The one line of a failing command's stderr, without the tool's prefix.
fn one_error_line<'a>(name: &str, run: &'a Run, log: &str) -> &'a str {
    let ctx = || format!("{name}: {run:?}\nserial log tail:\n{}", tail(log, LOG_TAIL));
    assert_eq!(run.rc, Some(1), "{}", ctx());
    assert_eq!(run.stderr.len(), 1, "one line: {}", ctx());
    run.stderr[0]
        .strip_prefix("xen-vcpus-stats: ")
        .unwrap_or_else(|| panic!("{}", ctx()))
}

#[test]
fn real_xen_error_paths() {
    if let Err(why) = should_run(Vec::new()) {
        eprintln!("real Xen test skipped: {why}");
        return;
    }
    let (r, log) = boot_and_parse();
    let ctx = |what: &str| format!("{what}\nserial log tail:\n{}", tail(&log, LOG_TAIL));

    // dom0 came up privileged, created the domU, and its vCPU ran.
    assert_eq!(r.step("capabilities"), Some("control_d"), "{}", ctx("dom0"));
    assert!(
        r.steps.iter().any(|s| s == "xl create rc=0"),
        "{}",
        ctx("xl create")
    );
    assert!(
        r.steps.iter().any(|s| s == "domU running"),
        "{}",
        ctx("domU")
    );
    let domu: u16 = r
        .step("domU id")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{}", ctx("no domU id")));
    assert_ne!(domu, 0);
    if std::env::var_os("XEN_IMAGE").is_none() {
        // The version as dom0's kernel reads it from the hypervisor
        // (/sys/hypervisor/version). `xl info` says it too, but Debian's
        // `xl info` sometimes segfaults under QEMU's TCG (seen in two of
        // many boots, with the rest of the toolstack working), so its
        // answer is checked only when it gave one.
        let version = r.step("hypervisor").unwrap_or_default();
        assert!(
            version.starts_with("4.17."),
            "{}",
            ctx("Debian's hypervisor is 4.17")
        );
        let info = &r.runs["xl-info"].stdout;
        if let Some(l) = info.iter().find(|l| l.starts_with("xen_version")) {
            assert!(l.contains(": 4.17."), "{}", ctx("xl info: 4.17"));
        }
    }

    // `list`: dom0 and the domU, named from xenstore, each with the reason
    // its table cannot be read.
    let list = &r.runs["list"];
    assert_eq!(list.rc, Some(0), "{}", ctx(&format!("{list:?}")));
    let row = |name: &str| {
        list.stdout
            .iter()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("{}", ctx(&format!("no {name} in {list:?}"))))
    };
    assert!(row("Domain-0").starts_with("xen "), "{list:?}");
    assert!(row("vstats-busy").starts_with("xen "), "{list:?}");
    let json = &r.runs["list-json"];
    assert_eq!(json.rc, Some(0), "{json:?}");
    let entries: Vec<Value> = json
        .stdout
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{}", ctx("json"))))
        .collect();
    let by_id = |id: u16| {
        entries
            .iter()
            .find(|e| e["domid"] == id)
            .unwrap_or_else(|| panic!("{}", ctx(&format!("no domain {id} in {entries:?}"))))
    };
    let (dom0, guest) = (by_id(0), by_id(domu));
    assert_eq!(dom0["name"], "Domain-0");
    assert_eq!(dom0["backend"], "xen");
    assert_eq!(guest["name"], "vstats-busy");
    assert_eq!(guest["backend"], "xen");
    assert_eq!(
        guest["error"],
        format!(
            "domain {domu}: the hypervisor does not offer the vCPU stats table resource \
             (XENMEM_resource_stats_table id 0, EOPNOTSUPP)"
        )
    );
    let e0 = dom0["error"].as_str().unwrap_or_default();
    assert!(
        e0.starts_with("domain 0: this is the caller's own domain"),
        "{e0}"
    );

    // sample, check, schema on the domU: one line, the hypervisor does not
    // offer the table; no size, no advice to root.
    for name in ["sample", "check", "schema"] {
        let run = &r.runs[name];
        let line = one_error_line(name, run, &log);
        assert_eq!(
            line,
            format!(
                "domain {domu}: the hypervisor does not offer the vCPU stats table resource \
                 (XENMEM_resource_stats_table id 0, EOPNOTSUPP)"
            ),
            "{name}"
        );
        for bad in ["bytes", "frames", "run as root", "claims"] {
            assert!(!line.contains(bad), "{name}: {line}");
        }
        assert!(run.stdout.is_empty(), "{name}: {run:?}");
    }

    // dom0's own table, a domain that does not exist, and libraries that
    // do not serve: each its own message.
    let line = one_error_line("sample-dom0", &r.runs["sample-dom0"], &log);
    assert!(
        line.starts_with("domain 0: this is the caller's own domain, and Xen does not map"),
        "{line}"
    );
    assert!(!line.contains("run as root"), "{line}");
    let line = one_error_line("sample-nodomain", &r.runs["sample-nodomain"], &log);
    assert_eq!(line, "domain 31000: no such domain");
    let line = one_error_line("missing-lib", &r.runs["missing-lib"], &log);
    assert!(
        line.starts_with(
            "Xen backend unavailable: /nonexistent/libxenforeignmemory.so.1 not found \
             (not a Xen host, or the Xen tools are not installed)"
        ),
        "{line}"
    );
    let line = one_error_line("unloadable-lib", &r.runs["unloadable-lib"], &log);
    assert!(
        line.starts_with(
            "Xen backend unavailable: /opt/vstats/checks.sh exists but cannot be loaded"
        ),
        "{line}"
    );
    let line = one_error_line("wrong-lib", &r.runs["wrong-lib"], &log);
    assert!(
        line.starts_with("libxenstore.so.4: no symbol xenforeignmemory_open"),
        "{line}"
    );

    // What a program sees: the variants.
    let probe = &r.runs["probe"];
    assert_eq!(probe.rc, Some(0), "{}", ctx(&format!("{probe:?}")));
    let variants: Vec<&str> = probe
        .stdout
        .iter()
        .filter(|l| l.starts_with("variant "))
        .map(String::as_str)
        .collect();
    let want = [
        format!("variant vCPU {domu} NotOffered"),
        format!("variant domain {domu} NotOffered"),
        format!("variant both {domu} NotOffered"),
        format!("variant time-frame {domu} TimeFrameNotOffered"),
        "variant vCPU 0 OwnDomain".to_owned(),
        "variant domain 0 OwnDomain".to_owned(),
        "variant both 0 OwnDomain".to_owned(),
        "variant time-frame 0 TimeFrameMap".to_owned(),
        "variant vCPU 31000 NoSuchDomain".to_owned(),
        "variant domain 31000 NoSuchDomain".to_owned(),
        "variant both 31000 NoSuchDomain".to_owned(),
        "variant time-frame 31000 NoSuchDomain".to_owned(),
    ];
    assert_eq!(variants, want, "{}", ctx(&format!("{probe:?}")));
}
