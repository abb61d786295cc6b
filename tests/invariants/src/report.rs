//! The report: every rule with PASS, FAIL or SKIP, and for a FAIL the
//! evidence (record, field, values, time). Printed as text for people and
//! as JSON (`--json`) for machines.

use std::fmt;

use serde::Serialize;
use vstats_abi::Rule;

use crate::plan::{When, PLAN};

// The exit codes of a check, shared by `vstats-invariants` and
// `xen-vcpus-stats check` (whose other commands use the same scheme):
// 0 pass, 1 error, 2 usage, 3 violation.

/// Exit code when every rule passed (or was skipped with a reason).
pub const EXIT_PASS: u8 = 0;
/// Exit code when a table could not be checked at all (cannot be opened,
/// beyond the consumer's limits) and no rule failed.
pub const EXIT_ERROR: u8 = 1;
/// Exit code of a command line that cannot be run (clap's convention).
pub const EXIT_USAGE: u8 = 2;
/// Exit code when at least one rule failed: a violation was found.
pub const EXIT_VIOLATION: u8 = 3;

/// Evidence items kept per rule; later violations are only counted.
pub const MAX_EVIDENCE: usize = 16;

/// The outcome of one rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Checked, never violated.
    Pass,
    /// Violated at least once: see the evidence.
    Fail,
    /// Not checked: see the reason.
    Skip,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        })
    }
}

/// One observed violation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evidence {
    /// Generation of the table it was seen in (0 without extension header).
    pub generation: u64,
    /// Sample number (0: when attaching).
    pub sample: u64,
    /// Seconds since the check started.
    pub at_s: f64,
    /// Record index, when it concerns one record.
    pub record: Option<u32>,
    /// Field (counter name, header field, descriptor field).
    pub field: Option<String>,
    /// Byte offset in the table.
    pub offset: Option<u64>,
    /// What was seen: values before and after, the bound, ...
    pub detail: String,
}

/// One rule's outcome in a table's report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleResult {
    /// The rule.
    #[serde(skip)]
    pub rule: Rule,
    /// Rule id (`"R1"`, `"P9"`, `"D3"`, ...).
    pub id: &'static str,
    /// What must hold.
    pub title: &'static str,
    /// The rules of `docs/abi.md` it enforces.
    pub spec: &'static str,
    /// When it is checked.
    pub when: When,
    /// The outcome.
    pub status: Status,
    /// Why it was skipped.
    pub reason: Option<String>,
    /// Number of violations seen (evidence keeps the first
    /// [`MAX_EVIDENCE`]).
    pub violations: u64,
    /// The first violations.
    pub evidence: Vec<Evidence>,
}

/// One time the checker attached to a table (the first attach, and one
/// per producer restart).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Attachment {
    /// The table's generation (0 without extension header).
    pub generation: u64,
    /// `"vcpu"` or `"domain"`.
    pub kind: &'static str,
    /// Record slots.
    pub nr_records: u32,
    /// Mapping length in bytes.
    pub mapped_len: u64,
    /// Seconds since the check started.
    pub at_s: f64,
    /// Samples taken before it.
    pub sample: u64,
}

/// Something that happened during the check that is not a violation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// Seconds since the check started.
    pub at_s: f64,
    /// What happened.
    pub what: String,
}

/// The report on one table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TableReport {
    /// What was checked: a path or a label.
    pub target: String,
    /// Every attachment, first to last.
    pub attachments: Vec<Attachment>,
    /// Samples taken.
    pub samples: u64,
    /// Seconds from the first attach to the end.
    pub duration_s: f64,
    /// Why the table could not be checked at all.
    pub error: Option<String>,
    /// Restarts, removals and other notes.
    pub events: Vec<Event>,
    /// What the reader of the report must know about the table to read it
    /// right, once each (e.g. the RFC v3 profile: "only vCPU 0 is
    /// meaningful").
    pub notes: Vec<String>,
    /// Every rule of [`crate::plan::PLAN`], in order.
    pub rules: Vec<RuleResult>,
}

impl TableReport {
    /// The result of `rule`, `None` for a rule the checker does not
    /// report.
    pub fn rule(&self, rule: Rule) -> Option<&RuleResult> {
        self.rules.iter().find(|r| r.rule == rule)
    }

    /// The rules that failed.
    pub fn failed(&self) -> Vec<Rule> {
        self.rules
            .iter()
            .filter(|r| r.status == Status::Fail)
            .map(|r| r.rule)
            .collect()
    }

    /// Whether no rule failed and the table could be checked.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.failed().is_empty()
    }
}

/// The report on every table checked.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Whether every table passed.
    pub passed: bool,
    /// One per table.
    pub tables: Vec<TableReport>,
}

impl Report {
    /// A report of `tables`.
    pub fn new(tables: Vec<TableReport>) -> Report {
        Report {
            passed: tables.iter().all(TableReport::passed),
            tables,
        }
    }

    /// [`EXIT_PASS`], [`EXIT_VIOLATION`] when any rule failed, else
    /// [`EXIT_ERROR`] when a table could not be checked.
    pub fn exit_code(&self) -> u8 {
        if self.tables.iter().any(|t| !t.failed().is_empty()) {
            EXIT_VIOLATION
        } else if self.tables.iter().any(|t| t.error.is_some()) {
            EXIT_ERROR
        } else {
            EXIT_PASS
        }
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain structs of strings and numbers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(r) = self.record {
            write!(f, "record {r} ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field} ")?;
        }
        if let Some(o) = self.offset {
            write!(f, "@{o:#x} ")?;
        }
        write!(
            f,
            "{} (at {:.3} s, sample {}, generation {:#x})",
            self.detail, self.at_s, self.sample, self.generation
        )
    }
}

impl fmt::Display for TableReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "table {}", self.target)?;
        if let Some(a) = self.attachments.first() {
            write!(
                f,
                ": {} table, {} records, {} bytes",
                a.kind, a.nr_records, a.mapped_len
            )?;
        }
        writeln!(
            f,
            "; {} samples over {:.2} s, {} attachment(s)",
            self.samples,
            self.duration_s,
            self.attachments.len()
        )?;
        if let Some(e) = &self.error {
            writeln!(f, "  ERROR {e}")?;
        }
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        for e in &self.events {
            writeln!(f, "  event at {:.3} s: {}", e.at_s, e.what)?;
        }
        for r in &self.rules {
            write!(f, "  {} {:<4} {}", r.status, r.id, r.title)?;
            if r.spec != r.id {
                write!(f, " [{}]", r.spec)?;
            }
            writeln!(f)?;
            if let Some(reason) = &r.reason {
                writeln!(f, "         {reason}")?;
            }
            for e in &r.evidence {
                writeln!(f, "         {e}")?;
            }
            if r.violations > r.evidence.len() as u64 {
                writeln!(f, "         ... {} violations in all", r.violations)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.tables {
            writeln!(f, "{t}")?;
        }
        let failed: usize = self.tables.iter().map(|t| t.failed().len()).sum();
        match self.exit_code() {
            EXIT_PASS => writeln!(f, "result: PASS"),
            EXIT_VIOLATION => writeln!(f, "result: FAIL ({failed} rule(s) failed)"),
            _ => writeln!(f, "result: ERROR (a table could not be checked)"),
        }
    }
}

/// Accumulates rule outcomes over a check (every attachment of a table).
#[derive(Clone, Debug)]
pub(crate) struct RuleBook {
    entries: Vec<Entry>,
}

#[derive(Clone, Debug, Default)]
struct Entry {
    checked: bool,
    violations: u64,
    evidence: Vec<Evidence>,
    skip: Option<String>,
}

impl RuleBook {
    pub(crate) fn new() -> RuleBook {
        RuleBook {
            entries: vec![Entry::default(); PLAN.len()],
        }
    }

    fn entry(&mut self, rule: Rule) -> Option<&mut Entry> {
        let i = PLAN.iter().position(|c| c.rule == rule)?;
        self.entries.get_mut(i)
    }

    /// `rule` was checked (and, unless `fail` is called, held).
    pub(crate) fn pass(&mut self, rule: Rule) {
        if let Some(e) = self.entry(rule) {
            e.checked = true;
        }
    }

    /// `rule` was violated.
    pub(crate) fn fail(&mut self, rule: Rule, ev: Evidence) {
        if let Some(e) = self.entry(rule) {
            e.checked = true;
            e.violations += 1;
            if e.evidence.len() < MAX_EVIDENCE {
                e.evidence.push(ev);
            }
        }
    }

    /// `rule` could not be checked, for `reason` (the first reason given
    /// is kept; it is shown only if the rule is never checked).
    pub(crate) fn skip(&mut self, rule: Rule, reason: impl Into<String>) {
        if let Some(e) = self.entry(rule) {
            if e.skip.is_none() {
                e.skip = Some(reason.into());
            }
        }
    }

    pub(crate) fn results(&self) -> Vec<RuleResult> {
        PLAN.iter()
            .zip(&self.entries)
            .map(|(check, e)| {
                let status = if e.violations > 0 {
                    Status::Fail
                } else if e.checked {
                    Status::Pass
                } else {
                    Status::Skip
                };
                let reason = (status == Status::Skip).then(|| match check.when {
                    When::NotObservable => check.how.to_owned(),
                    _ => e.skip.clone().unwrap_or_else(|| "not checked".to_owned()),
                });
                RuleResult {
                    rule: check.rule,
                    id: check.rule.id(),
                    title: check.rule.title(),
                    spec: check.rule.spec(),
                    when: check.when,
                    status,
                    reason,
                    violations: e.violations,
                    evidence: e.evidence.clone(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(detail: &str) -> Evidence {
        Evidence {
            generation: 1,
            sample: 2,
            at_s: 0.5,
            record: Some(3),
            field: Some("runstate_running_time".into()),
            offset: Some(0x148),
            detail: detail.into(),
        }
    }

    #[test]
    fn statuses_and_exit_codes() {
        let mut b = RuleBook::new();
        b.pass(Rule::R1);
        b.fail(Rule::D3, ev("5000 -> 4000"));
        b.skip(Rule::D3, "ignored: it failed");
        b.skip(Rule::R2, "table unreadable");
        let rules = b.results();
        let get = |rule| rules.iter().find(|r| r.rule == rule).unwrap();
        assert_eq!(get(Rule::R1).status, Status::Pass);
        assert_eq!(get(Rule::D3).status, Status::Fail);
        assert_eq!(get(Rule::D3).reason, None);
        assert_eq!(get(Rule::R2).status, Status::Skip);
        assert_eq!(get(Rule::R2).reason.as_deref(), Some("table unreadable"));
        assert_eq!(get(Rule::P8).status, Status::Skip);
        assert!(get(Rule::P8)
            .reason
            .as_deref()
            .unwrap()
            .contains("tests/faults.rs"));
        let t = TableReport {
            target: "t".into(),
            attachments: vec![],
            samples: 3,
            duration_s: 0.1,
            error: None,
            events: vec![],
            notes: vec!["a note".into()],
            rules,
        };
        assert_eq!(t.failed(), vec![Rule::D3]);
        let r = Report::new(vec![t.clone()]);
        assert!(!r.passed);
        assert_eq!(r.exit_code(), EXIT_VIOLATION);
        let text = r.to_string();
        assert!(text.contains("FAIL D3"), "{text}");
        assert!(text.contains("  note: a note\n"), "{text}");
        assert!(
            text.contains("record 3 runstate_running_time @0x148 5000 -> 4000"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["passed"], false);
        assert_eq!(json["tables"][0]["rules"][0]["status"], "PASS");

        let ok = TableReport {
            rules: RuleBook::new().results(),
            ..t.clone()
        };
        assert_eq!(Report::new(vec![ok.clone()]).exit_code(), EXIT_PASS);
        let broken = TableReport {
            error: Some("cannot open".into()),
            ..ok
        };
        assert_eq!(Report::new(vec![broken]).exit_code(), EXIT_ERROR);
    }

    #[test]
    fn evidence_is_capped_but_counted() {
        let mut b = RuleBook::new();
        for _ in 0..100 {
            b.fail(Rule::D7, ev("x"));
        }
        let r = b
            .results()
            .into_iter()
            .find(|r| r.rule == Rule::D7)
            .unwrap();
        assert_eq!(r.violations, 100);
        assert_eq!(r.evidence.len(), MAX_EVIDENCE);
    }
}
