//! `check`: the invariant checker ([`vstats_invariants`]) on a target of
//! this tool, handed over unopened (files) or raw (Xen).

use std::{io::Write, time::Duration};

use vstats_consumer::live::{self, Liveness};
use vstats_invariants::{run_check, CheckOptions};

use crate::{
    cli::parse_seconds,
    error::Result,
    target::{named_dir, Target},
    xen::{Xen, XenStore},
};

/// How long and how closely to check: the options of `check`.
#[derive(Clone, Debug, clap::Args)]
pub struct CheckConfig {
    /// How long to sample the target, in seconds (at least one sample is
    /// taken).
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub duration: Duration,
    /// Seconds between samples.
    #[arg(long, value_name = "SECONDS", default_value = "0.01", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub interval: Duration,
    /// How long a record may stay mid-update at one seq value before rule
    /// D2 fails, in seconds.
    #[arg(long, value_name = "SECONDS", default_value = "0.5", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub odd_bound: Duration,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// The vCPU count from the toolstack (rules R24, P10: slots below it
    /// used, the others unused); for --domid, xenstore's
    /// /local/domain/DOMID/cpu/* when not given and readable; otherwise
    /// R24 and P10 are skipped.
    #[arg(long, value_name = "N")]
    pub vcpus: Option<u32>,
}

/// The checker's targets for `target`
/// ([`vstats_invariants::path_targets`], [`vstats_invariants::xen_targets`]).
///
/// # Errors
///
/// As those two, and no such VM; the Xen library is missing.
pub fn checker_targets(target: &Target) -> Result<Vec<vstats_invariants::Target>> {
    Ok(match target {
        Target::Path(p) => vstats_invariants::path_targets(p)?,
        Target::Name { root, name } => vstats_invariants::path_targets(&named_dir(root, name)?)?,
        Target::Domid(domid) => vstats_invariants::xen_targets(&Xen::load()?, *domid)?,
    })
}

/// The liveness of a file target's producer, probed once before
/// checking; `None` for a Xen domain or when it cannot be told.
fn liveness(target: &Target) -> Option<Liveness> {
    match target {
        Target::Path(p) => live::probe_path(p).ok(),
        Target::Name { root, name } => live::probe(&named_dir(root, name).ok()?).ok(),
        Target::Domid(_) => None,
    }
}

/// Checks `target` for `cfg.duration` and writes the report to `out`,
/// then the producer's liveness (`"producer"` in JSON): a dead producer's
/// tables pass with frozen values. Returns
/// [`vstats_invariants::Report::exit_code`].
///
/// # Errors
///
/// As [`checker_targets`]; writing the report.
pub fn run(target: &Target, cfg: &CheckConfig, out: &mut dyn Write) -> anyhow::Result<u8> {
    let targets = checker_targets(target)?;
    let producer = liveness(target);
    let opts = CheckOptions {
        duration: cfg.duration,
        interval: cfg.interval,
        odd_bound: cfg.odd_bound,
        vcpus: cfg.vcpus.or_else(|| match target {
            Target::Domid(d) => XenStore::open().and_then(|xs| xs.vcpu_count(*d)).ok(),
            _ => None,
        }),
        ..CheckOptions::default()
    };
    let report = run_check(targets, &opts);
    if cfg.json {
        let mut json: serde_json::Value = serde_json::from_str(&report.to_json())?;
        if let (Some(obj), Some(p)) = (json.as_object_mut(), producer) {
            obj.insert("producer".into(), p.as_str().into());
        }
        writeln!(out, "{json:#}")?;
    } else {
        write!(out, "{report}")?;
        match producer {
            Some(Liveness::Dead) => writeln!(
                out,
                "producer: dead (no process holds the directory's liveness lock): the values \
                 are frozen, and rules over time pass trivially"
            )?,
            Some(p) => writeln!(out, "producer: {p}")?,
            None => {}
        }
    }
    out.flush()?;
    Ok(report.exit_code())
}
