//! One scrape: every VM of the host ([`discover::host`]) opened and
//! snapshotted now, encoded with [`Exposition`], plus the exporter's own
//! metrics. No state is kept between scrapes but the self-metrics'
//! totals, so a scrape sees VMs that appeared, restarted or went away
//! since the last one.

use std::{
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

use vstats_consumer::{
    discover,
    encode::openmetrics::{Exposition, Meta, MetricType, Syntax},
    live::Liveness,
    Snapshot,
};

/// What one scrape read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScrapeStats {
    /// VMs found (directories under the root and Xen domains).
    pub vms: u64,
    /// Tables snapshotted.
    pub tables: u64,
    /// VMs that could not be opened, and a root that could not be read.
    pub errors: u64,
    /// VMs whose producer is dead (their frozen values are not exported).
    pub dead: u64,
    /// Records still mid-update after every read attempt (no point).
    pub busy: u64,
}

/// Scrapes a root directory (and the Xen domains of this host); shared by
/// the threads that answer scrapes.
#[derive(Debug)]
pub struct Scraper {
    root: PathBuf,
    scrapes: AtomicU64,
    errors: AtomicU64,
}

/// A self-metric's metadata.
const fn meta(name: &'static str, ty: MetricType, help: &'static str) -> Meta<'static> {
    Meta {
        name,
        ty,
        unit: None,
        help,
    }
}

const SCRAPE_DURATION: Meta<'static> = Meta {
    name: "vstats_exporter_scrape_duration_seconds",
    ty: MetricType::Gauge,
    unit: Some("seconds"),
    help: "Time this scrape took to find, open and read every table",
};
const SCRAPE_VMS: Meta<'static> = meta(
    "vstats_exporter_scrape_vms",
    MetricType::Gauge,
    "VMs found by this scrape",
);
const SCRAPE_TABLES: Meta<'static> = meta(
    "vstats_exporter_scrape_tables",
    MetricType::Gauge,
    "Tables read by this scrape",
);
const SCRAPE_ERRORS: Meta<'static> = meta(
    "vstats_exporter_scrape_errors",
    MetricType::Gauge,
    "VMs this scrape could not open (and a root it could not read)",
);
const SCRAPE_BUSY: Meta<'static> = meta(
    "vstats_exporter_scrape_busy_records",
    MetricType::Gauge,
    "Records this scrape found mid-update after every read attempt",
);
const DEAD_PRODUCERS: Meta<'static> = meta(
    "vstats_exporter_dead_producers",
    MetricType::Gauge,
    "VMs whose producer died leaving its tables (their frozen values are not exported)",
);
const SCRAPES_TOTAL: Meta<'static> = meta(
    "vstats_exporter_scrapes",
    MetricType::Counter,
    "Scrapes answered since the exporter started",
);
const ERRORS_TOTAL: Meta<'static> = meta(
    "vstats_exporter_errors",
    MetricType::Counter,
    "VMs that could not be opened, summed over every scrape since the exporter started",
);
const XEN: Meta<'static> = meta(
    "vstats_exporter_xen_available",
    MetricType::Gauge,
    "1 when Xen domains are listed, 0 when Xen is unavailable here",
);

impl Scraper {
    /// A scraper of `root`.
    pub fn new(root: PathBuf) -> Scraper {
        Scraper {
            root,
            scrapes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// Scrapes now: clears `e`, adds every VM's tables and the
    /// self-metrics, and encodes the exposition in `syntax` into `out`
    /// (cleared first). `e` and `out` are the caller's, reused from
    /// scrape to scrape.
    pub fn scrape(&self, e: &mut Exposition, syntax: Syntax, out: &mut String) -> ScrapeStats {
        let start = Instant::now();
        e.clear();
        out.clear();
        let mut st = ScrapeStats::default();
        let mut xen = false;
        match discover::host(&self.root) {
            Ok(host) => {
                xen = host.xen_unavailable.is_none();
                for v in host.vms {
                    st.vms += 1;
                    e.add_vm_info(&v.name, v.backend.as_str(), &v.source, v.domid, v.producer);
                    // A directory whose tables do not open is an error,
                    // whatever its lock says; an opened one whose producer
                    // is dead has frozen values, not exported.
                    let Ok(vm) = v.vm else {
                        st.errors += 1;
                        continue;
                    };
                    if v.producer == Some(Liveness::Dead) {
                        st.dead += 1;
                        continue;
                    }
                    for s in vm.sources() {
                        let mut snap = Snapshot::new(&s.table);
                        st.busy += u64::from(s.table.snapshot(&mut snap));
                        st.tables += 1;
                        e.add_snapshot(&vm.name, vm.domid, &s.table, &snap);
                    }
                }
            }
            Err(_) => st.errors += 1,
        }
        let scrapes = self.scrapes.fetch_add(1, Ordering::Relaxed) + 1;
        let errors = self.errors.fetch_add(st.errors, Ordering::Relaxed) + st.errors;
        let elapsed = start.elapsed().as_secs_f64();
        for (m, v) in [
            (&SCRAPE_DURATION, elapsed),
            (&SCRAPE_VMS, st.vms as f64),
            (&SCRAPE_TABLES, st.tables as f64),
            (&SCRAPE_ERRORS, st.errors as f64),
            (&SCRAPE_BUSY, st.busy as f64),
            (&DEAD_PRODUCERS, st.dead as f64),
            (&SCRAPES_TOTAL, scrapes as f64),
            (&ERRORS_TOTAL, errors as f64),
            (&XEN, if xen { 1.0 } else { 0.0 }),
        ] {
            e.add_value(m, &[], v);
        }
        e.encode(syntax, out);
        st
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_root_has_self_metrics_only() {
        let root = std::env::temp_dir().join(format!("vstats-exp-none-{}", std::process::id()));
        let s = Scraper::new(root);
        let (mut e, mut out) = (Exposition::new(), String::new());
        let st = s.scrape(&mut e, Syntax::OpenMetrics, &mut out);
        assert_eq!(st, ScrapeStats::default());
        assert!(out.contains("\nvstats_exporter_scrapes_total 1\n"), "{out}");
        assert!(out.contains("# UNIT vstats_exporter_scrape_duration_seconds seconds\n"));
        assert!(out.ends_with("# EOF\n"));
        s.scrape(&mut e, Syntax::Text, &mut out);
        assert!(
            out.contains("# TYPE vstats_exporter_scrapes_total counter\n"),
            "{out}"
        );
        assert!(out.contains("\nvstats_exporter_scrapes_total 2\n"), "{out}");
        assert!(!out.contains("# EOF") && !out.contains("# UNIT"));
    }
}
