//! The datasources of a VM, named as xcp-rrdd's CPU plugin (`rrdp-cpu`)
//! names the same quantities.
//!
//! Like `rrdp-cpu`, every datasource is a `derive` of a cumulative time in
//! seconds, in units of `(fraction)` with min 0 and max 1: xcp-rrdd
//! divides the increase by its own interval, giving the fraction of time.
//! So the plugin keeps no state between writes, and xcp-rrdd's rates
//! line up with its own cycle.
//!
//! Per VM (owner `vm <name>`), for each vCPU whose record holds a running
//! time:
//!
//! * `cpu<N>`: vCPU N's running time ("`CPU<N>` usage", recorded by
//!   default), as `rrdp-cpu`'s `cpu<N>` for a Xen vCPU;
//! * `cpu<N>_runnable`, `cpu<N>_blocked`, `cpu<N>_offline`: its other
//!   runstates, which `rrdp-cpu` has no per-vCPU names for (not recorded
//!   by default);
//!
//! then per VM:
//!
//! * `cpu_usage`: the running time summed over the vCPUs, divided by their
//!   number, as `rrdp-cpu`'s "Domain CPU usage";
//! * the domain runstates `runstate_fullrun` (all vCPUs running),
//!   `runstate_full_contention` (all runnable),
//!   `runstate_concurrency_hazard` (some running, some runnable),
//!   `runstate_blocked` (all blocked or offline), `runstate_partial_run`
//!   (some running, some blocked), `runstate_partial_contention` (some
//!   runnable, some blocked) and `runnable_any` (at least one runnable),
//!   for a VM with **one** vCPU only. These count time in which the vCPUs
//!   were in given states *together*; Xen measures them per domain, but
//!   per-vCPU cumulative times cannot give them once there are two vCPUs
//!   (two vCPUs each running half the time may or may not have run at
//!   the same time). With one vCPU they are exact: running, runnable,
//!   blocked plus offline, and 0 for the mixed states.

use vstats_consumer::{discover::Host, live::Liveness, Snapshot};

use super::protocol::{Datasource, DsType, DsValue, Owner};

/// A vCPU's cumulative runstate times, nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuTimes {
    /// The vCPU's index.
    pub vcpu: u32,
    /// Running.
    pub running: u64,
    /// Runnable (ready, not running); `None` when the table lacks it.
    pub runnable: Option<u64>,
    /// Blocked.
    pub blocked: Option<u64>,
    /// Offline.
    pub offline: Option<u64>,
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn fraction(owner: &Owner, name: String, description: String, s: f64, default: bool) -> Datasource {
    Datasource {
        name,
        description,
        owner: owner.clone(),
        value: DsValue::Float(s),
        ty: DsType::Derive,
        default,
        units: "(fraction)".into(),
        min: 0.0,
        max: 1.0,
    }
}

/// The datasources of the VM `vm` (the owner's id) with these vCPUs, as
/// the [module](self) docs list them; none when `vcpus` is empty.
pub fn vm_datasources(vm: &str, vcpus: &[VcpuTimes]) -> Vec<Datasource> {
    let owner = Owner::Vm(vm.to_owned());
    let mut out = Vec::new();
    if vcpus.is_empty() {
        return out;
    }
    for v in vcpus {
        let n = v.vcpu;
        out.push(fraction(
            &owner,
            format!("cpu{n}"),
            format!("CPU{n} usage"),
            secs(v.running),
            true,
        ));
    }
    for v in vcpus {
        let n = v.vcpu;
        for (state, t) in [
            ("runnable", v.runnable),
            ("blocked", v.blocked),
            ("offline", v.offline),
        ] {
            if let Some(t) = t {
                out.push(fraction(
                    &owner,
                    format!("cpu{n}_{state}"),
                    format!("Fraction of time that vCPU {n} is {state}"),
                    secs(t),
                    false,
                ));
            }
        }
    }
    let total: u64 = vcpus.iter().fold(0, |a, v| a.saturating_add(v.running));
    out.push(fraction(
        &owner,
        "cpu_usage".into(),
        "Domain CPU usage".into(),
        secs(total) / vcpus.len() as f64,
        true,
    ));
    if let [v] = vcpus {
        let blocked = match (v.blocked, v.offline) {
            (Some(b), o) => Some(b.saturating_add(o.unwrap_or(0))),
            (None, o) => o,
        };
        let states = [
            (
                "runstate_fullrun",
                Some(v.running),
                "Fraction of time that all vCPUs are running",
            ),
            (
                "runstate_full_contention",
                v.runnable,
                "Fraction of time that all vCPUs are runnable (i.e., waiting for CPU)",
            ),
            (
                "runstate_concurrency_hazard",
                Some(0),
                "Fraction of time that some vCPUs are running and some are runnable",
            ),
            (
                "runstate_blocked",
                blocked,
                "Fraction of time that all vCPUs are blocked or offline",
            ),
            (
                "runstate_partial_run",
                Some(0),
                "Fraction of time that some vCPUs are running and some are blocked",
            ),
            (
                "runstate_partial_contention",
                Some(0),
                "Fraction of time that some vCPUs are runnable and some are blocked",
            ),
            (
                "runnable_any",
                v.runnable,
                "Fraction of time that at least one vCPU is runnable in the domain",
            ),
        ];
        for (name, t, description) in states {
            if let Some(t) = t {
                out.push(fraction(
                    &owner,
                    name.into(),
                    description.into(),
                    secs(t),
                    false,
                ));
            }
        }
    }
    out
}

/// What [`host_datasources`] skipped, for messages.
#[derive(Debug, Default)]
pub struct Skipped {
    /// VMs that could not be opened, with why.
    pub errors: Vec<(String, String)>,
}

/// The datasources of every live VM of `host` ([`vm_datasources`]), read
/// from one snapshot of each vCPU table that copies only the runstate
/// words ([`Snapshot::of_counters`]). VMs whose producer is stopped or
/// dead (frozen values) are left out, as are vCPUs whose record is unused
/// or busy in the snapshot.
pub fn host_datasources(host: &Host) -> (Vec<Datasource>, Skipped) {
    let mut out = Vec::new();
    let mut skipped = Skipped::default();
    for hv in &host.vms {
        if matches!(hv.producer, Some(Liveness::Stopped | Liveness::Dead)) {
            continue;
        }
        let vm = match &hv.vm {
            Ok(vm) => vm,
            Err(e) => {
                skipped.errors.push((hv.name.clone(), e.to_string()));
                continue;
            }
        };
        let Some(src) = vm.vcpu.as_ref() else {
            continue;
        };
        // Only the runstate words of each record are copied: the four
        // times, and the state and its entry time of an r3 table, which
        // bring the times up to the snapshot (R26).
        let mut snap = Snapshot::of_runstate(&src.table);
        src.table.snapshot(&mut snap);
        let vcpus: Vec<VcpuTimes> = snap
            .records()
            .iter()
            .filter(|r| !r.is_unused())
            .filter_map(|r| {
                let [running, runnable, blocked, offline] = r.up_to_date().times_ns;
                Some(VcpuTimes {
                    vcpu: r.index(),
                    running: running?,
                    runnable,
                    blocked,
                    offline,
                })
            })
            .collect();
        out.extend(vm_datasources(&hv.name, &vcpus));
    }
    (out, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(d: &[Datasource]) -> Vec<&str> {
        d.iter().map(|d| d.name.as_str()).collect()
    }

    #[test]
    fn two_vcpus_have_no_domain_runstates() {
        let v = |vcpu, running| VcpuTimes {
            vcpu,
            running,
            runnable: Some(1),
            blocked: Some(2),
            offline: None,
        };
        let d = vm_datasources("vm1", &[v(0, 3_000_000_000), v(1, 1_000_000_000)]);
        assert_eq!(
            names(&d),
            [
                "cpu0",
                "cpu1",
                "cpu0_runnable",
                "cpu0_blocked",
                "cpu1_runnable",
                "cpu1_blocked",
                "cpu_usage"
            ]
        );
        assert_eq!(d[0].value, DsValue::Float(3.0));
        assert_eq!(d[6].value, DsValue::Float(2.0));
        assert!(d.iter().all(|d| d.owner == Owner::Vm("vm1".into())));
        assert!(d
            .iter()
            .all(|d| d.ty == DsType::Derive && d.units == "(fraction)"));
        assert!(d[0].default && !d[2].default && d[6].default);
    }

    #[test]
    fn one_vcpu_has_exact_domain_runstates() {
        let v = VcpuTimes {
            vcpu: 0,
            running: 5_000_000_000,
            runnable: Some(1_000_000_000),
            blocked: Some(2_000_000_000),
            offline: Some(500_000_000),
        };
        let d = vm_datasources("x", &[v]);
        let get = |n: &str| d.iter().find(|d| d.name == n).map(|d| d.value);
        assert_eq!(get("runstate_fullrun"), Some(DsValue::Float(5.0)));
        assert_eq!(get("runstate_full_contention"), Some(DsValue::Float(1.0)));
        assert_eq!(get("runstate_blocked"), Some(DsValue::Float(2.5)));
        assert_eq!(get("runstate_partial_run"), Some(DsValue::Float(0.0)));
        assert_eq!(get("runnable_any"), Some(DsValue::Float(1.0)));
        assert_eq!(get("cpu_usage"), Some(DsValue::Float(5.0)));
        assert!(vm_datasources("x", &[]).is_empty());
    }
}
