//! The dynamic rules of the records, checked at every sample on the
//! consumer's snapshot: one function per rule (D1 to D5, R16), each with
//! the baselines it compares against.

use std::{collections::HashSet, time::Instant};

use vstats_abi::{
    record::{is_active, INACTIVE, INACTIVE_BIT, RECORD_PREFIX},
    Kind, Rule,
};
use vstats_consumer::{watch::StuckWatch, RecordStatus, RecordView, Table};

use crate::{checker::CheckOptions, report::Evidence};

/// Where and when evidence is taken: one sample of one attachment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct At {
    /// The attachment's generation.
    pub(crate) generation: u64,
    /// The sample number.
    pub(crate) sample: u64,
    /// Seconds since the check started.
    pub(crate) at_s: f64,
    /// When the sample was taken.
    pub(crate) now: Instant,
}

impl At {
    /// Evidence about record `record`'s `field`.
    fn evidence(&self, record: u32, field: Option<String>, detail: String) -> Evidence {
        Evidence {
            generation: self.generation,
            sample: self.sample,
            at_s: self.at_s,
            record: Some(record),
            field,
            offset: None,
            detail,
        }
    }
}

/// Violations found in one sample.
pub(crate) type Fails = Vec<(Rule, Evidence)>;

/// A cumulative or peak scalar, by its word index in the record's counter
/// words.
#[derive(Clone, Debug)]
struct Mono {
    word: usize,
    name: String,
    rule: Rule,
}

/// What the dynamic rules remember of each record of one attachment.
#[derive(Debug)]
pub(crate) struct Baselines {
    first_seq: Vec<Option<u32>>,
    /// Whether record i's seq ever moved (P9 needs it).
    pub(crate) seq_moved: Vec<bool>,
    last_seq: Vec<Option<u32>>,
    /// The last consistent read of each record: its seq and counter words.
    last_read: Vec<Option<(u32, Vec<u64>)>>,
    /// Records seen odd at one seq in consecutive samples (D2).
    odd: StuckWatch,
    mono: Vec<Mono>,
    /// `[record * mono.len() + m]`: the last active value.
    last_mono: Vec<Option<u64>>,
    /// Names of the counter words, by index.
    word_names: Vec<String>,
    /// (rule, record, word) already reported.
    reported: HashSet<(Rule, u32, usize)>,
}

impl Baselines {
    /// Empty baselines for `table`'s records, checked with `opts`.
    pub(crate) fn new(table: &Table, opts: &CheckOptions) -> Baselines {
        let info = table.info();
        let mono: Vec<Mono> = table
            .counters()
            .iter()
            .filter(|c| !c.is_histogram())
            .filter_map(|c| {
                let rule = match c.kind() {
                    Kind::CUMULATIVE => Rule::D3,
                    Kind::PEAK => Rule::D4,
                    _ => return None,
                };
                Some(Mono {
                    word: ((c.offset() - RECORD_PREFIX) / 8) as usize,
                    name: c.name().to_owned(),
                    rule,
                })
            })
            .collect();
        let words = info.header.size.saturating_sub(RECORD_PREFIX) / 8;
        let word_names = (0..words).map(|k| word_name(table, k)).collect();
        let n = info.nr_records as usize;
        Baselines {
            first_seq: vec![None; n],
            seq_moved: vec![false; n],
            last_seq: vec![None; n],
            last_read: vec![None; n],
            odd: StuckWatch::new(opts.odd_bound, opts.odd_min_samples).same_seq(),
            last_mono: vec![None; n * mono.len()],
            mono,
            word_names,
            reported: HashSet::new(),
        }
    }

    /// Checks one record's read of this sample against every dynamic rule
    /// of the records; `r16` says whether R16 applies to the table.
    pub(crate) fn check(
        &mut self,
        rec: &RecordView<'_>,
        opts: &CheckOptions,
        r16: bool,
        at: &At,
        fails: &mut Fails,
    ) {
        self.check_seq_order(rec, at, fails);
        self.check_odd_bound(rec, opts, at, fails);
        match rec.status() {
            RecordStatus::Consistent => {
                self.check_seq_covers_counters(rec, at, fails);
                self.check_canonical_inactive(rec, at, fails);
                self.check_monotonic(rec, at, fails);
                if r16 {
                    self.check_running_active(rec, at, fails);
                }
            }
            RecordStatus::Busy { .. } | RecordStatus::NotRead => {}
        }
    }

    /// D1: a record's seq (consistent or busy) never steps backwards, in
    /// serial-number arithmetic. Also notes whether it ever moved.
    fn check_seq_order(&mut self, rec: &RecordView<'_>, at: &At, fails: &mut Fails) {
        let i = rec.index();
        let seq = match rec.status() {
            RecordStatus::Consistent => rec.seq(),
            RecordStatus::Busy { seq, .. } => seq,
            RecordStatus::NotRead => return,
        };
        let iu = i as usize;
        if let Some(Some(prev)) = self.last_seq.get(iu).copied() {
            if seq.wrapping_sub(prev) > i32::MAX as u32 {
                let detail = format!("seq went backwards: {prev} -> {seq}");
                fails.push((Rule::D1, at.evidence(i, Some("seq".into()), detail)));
            }
        }
        if let Some(last) = self.last_seq.get_mut(iu) {
            *last = Some(seq);
        }
        match self.first_seq.get_mut(iu) {
            Some(first @ None) => *first = Some(seq),
            Some(Some(f)) if *f != seq => {
                if let Some(moved) = self.seq_moved.get_mut(iu) {
                    *moved = true;
                }
            }
            _ => {}
        }
    }

    /// D2: a record the consumer reports busy with one odd seq in
    /// consecutive samples spanning the odd bound (reported once per run;
    /// any other reading ends the run).
    fn check_odd_bound(
        &mut self,
        rec: &RecordView<'_>,
        opts: &CheckOptions,
        at: &At,
        fails: &mut Fails,
    ) {
        let (odd, attempts) = match rec.status() {
            RecordStatus::Busy { seq, attempts } if seq & 1 == 1 => (Some(seq), attempts),
            _ => (None, 0),
        };
        let Some(run) = self.odd.observe(rec.index(), odd, at.now) else {
            return;
        };
        if !run.first {
            return;
        }
        let since_s = at.at_s - run.busy_for.as_secs_f64();
        let detail = format!(
            "stayed odd at {} from {since_s:.3} s to {:.3} s over {} samples (bound {:?} and {} \
             samples); the consumer reported the record busy after {attempts} attempts each \
             time",
            run.seq, at.at_s, run.snapshots, opts.odd_bound, opts.odd_min_samples
        );
        fails.push((
            Rule::D2,
            at.evidence(run.record, Some("seq".into()), detail),
        ));
    }

    /// D1: counters change only with a new seq (a writer whose private seq
    /// restarted reuses seq values, and a reader straddling such an update
    /// accepts a torn copy).
    fn check_seq_covers_counters(&mut self, rec: &RecordView<'_>, at: &At, fails: &mut Fails) {
        let (i, words) = (rec.index(), rec.words());
        let Some(slot) = self.last_read.get_mut(i as usize) else {
            return;
        };
        match slot {
            Some((s, prev)) if *s == rec.seq() && prev.as_slice() != words => {
                let k = prev
                    .iter()
                    .zip(words)
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                let (old, new) = (
                    prev.get(k).copied().unwrap_or(0),
                    words.get(k).copied().unwrap_or(0),
                );
                let detail = format!(
                    "counters changed without a new seq: seq {s} read twice, {old:#x} then \
                     {new:#x}"
                );
                let field = self.word_names.get(k).cloned();
                fails.push((Rule::D1, at.evidence(i, field, detail)));
                prev.clone_from_slice(words);
            }
            Some((s, prev)) if prev.len() == words.len() => {
                *s = rec.seq();
                prev.clone_from_slice(words);
            }
            slot => *slot = Some((rec.seq(), words.to_vec())),
        }
    }

    /// D5: a counter word with its top bit set is all ones (reported once
    /// per word).
    fn check_canonical_inactive(&mut self, rec: &RecordView<'_>, at: &At, fails: &mut Fails) {
        let i = rec.index();
        for (k, &w) in rec.words().iter().enumerate() {
            if w & INACTIVE_BIT != 0 && w != INACTIVE && self.reported.insert((Rule::D5, i, k)) {
                let detail = format!(
                    "inactive word holds {w:#018x}, not the canonical marker {INACTIVE:#018x}"
                );
                let field = self.word_names.get(k).cloned();
                fails.push((Rule::D5, at.evidence(i, field, detail)));
            }
        }
    }

    /// D3, D4: active cumulative and peak scalars never decrease; an
    /// inactive reading (absent, overflowed, unplugged) ends a counter's
    /// life, and a later active value starts a new one.
    fn check_monotonic(&mut self, rec: &RecordView<'_>, at: &At, fails: &mut Fails) {
        let (i, words) = (rec.index(), rec.words());
        let nm = self.mono.len();
        for (m, mono) in self.mono.iter().enumerate() {
            let Some(last) = self.last_mono.get_mut(i as usize * nm + m) else {
                continue;
            };
            let now = words.get(mono.word).copied().filter(|&w| is_active(w));
            if let (Some(w), Some(prev)) = (now, *last) {
                if w < prev {
                    let detail = format!("decreased from {prev} to {w} (seq {})", rec.seq());
                    fails.push((mono.rule, at.evidence(i, Some(mono.name.clone()), detail)));
                }
            }
            *last = now;
        }
    }

    /// R16: a used vCPU slot (one with an active counter) has its running
    /// time active (reported once per record).
    fn check_running_active(&mut self, rec: &RecordView<'_>, at: &At, fails: &mut Fails) {
        let (i, words) = (rec.index(), rec.words());
        let used = words.iter().any(|&w| is_active(w));
        let running = words.first().is_some_and(|&w| is_active(w));
        if used && !running && self.reported.insert((Rule::R16, i, 0)) {
            let detail = "the slot has active counters but its running time is inactive: it can \
                          be told neither used nor unused";
            fails.push((
                Rule::R16,
                at.evidence(i, Some("runstate_running_time".into()), detail.into()),
            ));
        }
    }
}

/// The name of counter word `k` for evidence: its counter's name (with the
/// element of an array), or its offset when no descriptor covers it.
fn word_name(table: &Table, k: u32) -> String {
    let off = RECORD_PREFIX + 8 * k;
    table
        .counters()
        .iter()
        .find(|c| off >= c.offset() && off < c.offset() + 8 * c.count())
        .map_or_else(
            || format!("word at {off} (no descriptor)"),
            |c| {
                if c.count() > 1 {
                    format!("{}[{}]", c.name(), (off - c.offset()) / 8)
                } else {
                    c.name().to_owned()
                }
            },
        )
}
