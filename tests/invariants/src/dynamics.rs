//! The dynamic rules of the records, checked at every sample on the
//! consumer's snapshot: one function per rule (D1 to D5, D9, D10, R16,
//! R25, P11, P12, and over all slots R24 and P10), each with the baselines
//! it compares against.

use std::{collections::HashSet, time::Instant};

use vstats_abi::{
    record::{is_active, INACTIVE, INACTIVE_BIT, RECORD_PREFIX},
    Kind, Rule,
};
use vstats_consumer::{
    runstate::{Runstate, TimeBase, RUNSTATE_COUNT},
    watch::StuckWatch,
    RecordStatus, RecordView, Table,
};

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

/// A histogram, by the word index of its first bucket and its bucket
/// count (P12).
#[derive(Clone, Debug)]
struct Histogram {
    word: usize,
    count: usize,
    name: String,
}

/// Which of the per-record rules apply to the table, and the instant they
/// compare with.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Applies {
    /// R16: a vCPU table whose `abi_size` reaches the running time.
    pub(crate) r16: bool,
    /// R25, D9: an r3 vCPU table (its record has `runstate` and
    /// `runstate_entry_time`, words 4 and 5).
    pub(crate) r3_vcpu: bool,
    /// P11, D10: "now" in the table's clock, read after the snapshot
    /// (the host's `CLOCK_MONOTONIC` for clock 1, the table's own clock,
    /// or the caller's); `None` when there is none.
    pub(crate) now_ns: Option<u64>,
    /// The bound on `now_ns`'s error against the producer's clock
    /// (`Table::clock_uncertainty_ns`): P11 allows an entry time this far
    /// ahead of now, D10 twice this much in either direction.
    pub(crate) clock_slack_ns: u64,
}

/// Word index of `runstate` and `runstate_entry_time` in an r3 vCPU
/// record's counter words.
const STATE_WORD: usize = 4;
const ENTRY_WORD: usize = 5;

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
    /// The histograms of the table's counters (P12).
    histograms: Vec<Histogram>,
    /// D9: the last active `runstate_entry_time` of each record.
    last_entry: Vec<Option<u64>>,
    /// D10: the last sum of the up-to-date times of each record, and the
    /// `now` it was computed at.
    last_sum: Vec<Option<(u64, u64)>>,
    /// The table's time base.
    base: TimeBase,
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
        let histograms = table
            .counters()
            .iter()
            .filter(|c| c.is_histogram())
            .map(|c| Histogram {
                word: ((c.offset() - RECORD_PREFIX) / 8) as usize,
                count: c.count() as usize,
                name: c.name().to_owned(),
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
            histograms,
            last_entry: vec![None; n],
            last_sum: vec![None; n],
            base: TimeBase::from_clock(info.clock),
        }
    }

    /// Checks one record's read of this sample against every dynamic rule
    /// of the records; `applies` says which apply to the table.
    pub(crate) fn check(
        &mut self,
        rec: &RecordView<'_>,
        opts: &CheckOptions,
        applies: &Applies,
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
                self.check_histograms(rec, at, fails);
                if applies.r16 {
                    self.check_running_active(rec, at, fails);
                }
                if applies.r3_vcpu {
                    self.check_runstate(rec, at, fails);
                    self.check_entry(rec, applies.now_ns, applies.clock_slack_ns, at, fails);
                }
                if let Some(now) = applies.now_ns {
                    self.check_up_to_date_sum(rec, now, applies.clock_slack_ns, at, fails);
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

    /// P12: a histogram's buckets are all active or all inactive (reported
    /// once per record and histogram).
    fn check_histograms(&mut self, rec: &RecordView<'_>, at: &At, fails: &mut Fails) {
        let (i, words) = (rec.index(), rec.words());
        for (h, hist) in self.histograms.iter().enumerate() {
            let Some(buckets) = words.get(hist.word..hist.word + hist.count) else {
                continue;
            };
            let active = buckets.iter().filter(|&&w| is_active(w)).count();
            if active != 0 && active != buckets.len() && self.reported.insert((Rule::P12, i, h)) {
                let inactive: Vec<usize> = buckets
                    .iter()
                    .enumerate()
                    .filter(|(_, &w)| !is_active(w))
                    .map(|(k, _)| k)
                    .collect();
                let detail = format!(
                    "{active} of {} buckets active, bucket(s) {inactive:?} inactive (seq {})",
                    buckets.len(),
                    rec.seq()
                );
                fails.push((Rule::P12, at.evidence(i, Some(hist.name.clone()), detail)));
            }
        }
    }

    /// R25: a used slot of an r3 vCPU table has `runstate` active and in
    /// 0..3, and `runstate_entry_time` active (reported once per record).
    fn check_runstate(&mut self, rec: &RecordView<'_>, at: &At, fails: &mut Fails) {
        let (i, words) = (rec.index(), rec.words());
        if !words.iter().any(|&w| is_active(w)) {
            return;
        }
        let state = words.get(STATE_WORD).copied().unwrap_or(INACTIVE);
        let entry = words.get(ENTRY_WORD).copied().unwrap_or(INACTIVE);
        let what = if !is_active(state) {
            Some(("runstate", format!("runstate is inactive ({state:#x})")))
        } else if state >= RUNSTATE_COUNT as u64 {
            Some(("runstate", format!("runstate is {state}, not 0..3")))
        } else if !is_active(entry) {
            Some((
                "runstate_entry_time",
                format!("runstate_entry_time is inactive ({entry:#x})"),
            ))
        } else {
            None
        };
        if let Some((field, detail)) = what {
            if self.reported.insert((Rule::R25, i, 0)) {
                let detail = format!("a used slot: {detail}");
                fails.push((Rule::R25, at.evidence(i, Some(field.into()), detail)));
            }
        }
    }

    /// D9: an active `runstate_entry_time` never decreases (an inactive
    /// reading ends its life); P11, when `now` is known: it is not after
    /// `now + slack` (reported once per record).
    fn check_entry(
        &mut self,
        rec: &RecordView<'_>,
        now: Option<u64>,
        slack: u64,
        at: &At,
        fails: &mut Fails,
    ) {
        let i = rec.index();
        let entry = rec
            .words()
            .get(ENTRY_WORD)
            .copied()
            .filter(|&w| is_active(w));
        let Some(last) = self.last_entry.get_mut(i as usize) else {
            return;
        };
        if let (Some(e), Some(prev)) = (entry, *last) {
            if e < prev {
                let detail = format!("decreased from {prev} to {e} (seq {})", rec.seq());
                fails.push((
                    Rule::D9,
                    at.evidence(i, Some("runstate_entry_time".into()), detail),
                ));
            }
        }
        *last = entry;
        if let (Some(e), Some(now)) = (entry, now) {
            if e > now.saturating_add(slack) && self.reported.insert((Rule::P11, i, 0)) {
                let detail = format!(
                    "runstate_entry_time {e} lies {} ns after now ({now} in the table's clock, \
                     read after the copy, allowing {slack} ns of clock error)",
                    e - now
                );
                fails.push((
                    Rule::P11,
                    at.evidence(i, Some("runstate_entry_time".into()), detail),
                ));
            }
        }
    }

    /// D10: the sum of the up-to-date times (R26, computed by
    /// `vstats_consumer::runstate` at `now`) never decreases, and grows by
    /// at most the time elapsed between the two `now`s; each bound is
    /// widened by twice `slack`, the error of one reading of now. A record
    /// whose times cannot be brought up to date starts a new life.
    fn check_up_to_date_sum(
        &mut self,
        rec: &RecordView<'_>,
        now: u64,
        slack: u64,
        at: &At,
        fails: &mut Fails,
    ) {
        let (i, words) = (rec.index(), rec.words());
        let Some(last) = self.last_sum.get_mut(i as usize) else {
            return;
        };
        let sum = match (
            words.get(..RUNSTATE_COUNT),
            words.get(STATE_WORD),
            words.get(ENTRY_WORD),
        ) {
            (Some(t), Some(&state), Some(&entry)) => {
                let times = [t[0], t[1], t[2], t[3]];
                let r = Runstate::from_words(times, state, entry, self.base, Some(now));
                let all: Option<Vec<u64>> = r.times_ns.iter().copied().collect();
                all.filter(|_| r.extrapolated)
                    .and_then(|v| v.iter().try_fold(0u64, |a, &b| a.checked_add(b)))
            }
            _ => None,
        };
        if let (Some(sum), Some((prev, then))) = (sum, *last) {
            let elapsed = now.saturating_sub(then);
            let margin = slack.saturating_mul(2);
            let detail = if sum.saturating_add(margin) < prev {
                Some(format!(
                    "the up-to-date runstate times summed {prev} ns at {then} and {sum} ns at \
                     {now}: decreased by {} ns (seq {})",
                    prev - sum,
                    rec.seq()
                ))
            } else if sum.saturating_sub(prev) > elapsed.saturating_add(margin) {
                Some(format!(
                    "the up-to-date runstate times grew by {} ns in {elapsed} ns of the table's \
                     clock (seq {})",
                    sum - prev,
                    rec.seq()
                ))
            } else {
                None
            };
            if let Some(detail) = detail {
                fails.push((
                    Rule::D10,
                    at.evidence(i, Some("runstate times".into()), detail),
                ));
            }
        }
        *last = sum.map(|s| (s, now));
    }

    /// R24 and P10 over every slot of one sample, with the toolstack's
    /// vCPU count `vcpus`: no slot `>= vcpus` is used (R24; a table with
    /// fewer slots than vCPUs breaks it too), and at the first sample every
    /// slot `< vcpus` is used (P10), unless a slot `>= vcpus` is: then the
    /// ids are shifted, which is R24's.
    pub(crate) fn check_slots<'s>(
        &mut self,
        records: impl Iterator<Item = RecordView<'s>>,
        vcpus: u32,
        nr_records: u32,
        first: bool,
        at: &At,
        fails: &mut Fails,
    ) {
        let mut high = Vec::new();
        let mut low_unused = Vec::new();
        for rec in records {
            if !rec.is_consistent() {
                continue;
            }
            let used = !rec.is_unused();
            if rec.index() >= vcpus && used {
                high.push(rec.index());
            } else if rec.index() < vcpus && !used {
                low_unused.push(rec.index());
            }
        }
        if vcpus > nr_records && self.reported.insert((Rule::R24, u32::MAX, 0)) {
            let detail = format!(
                "the toolstack counts {vcpus} vCPUs but the table has {nr_records} slots: vCPU \
                 ids {nr_records}..{vcpus} have no slot"
            );
            let mut ev = at.evidence(0, None, detail);
            ev.record = None;
            fails.push((Rule::R24, ev));
        }
        for &i in &high {
            if self.reported.insert((Rule::R24, i, 0)) {
                let detail = format!(
                    "slot {i} is used but the toolstack counts {vcpus} vCPUs (ids 0..{vcpus}); \
                     unused slots below: {low_unused:?}: vCPU ids and slots disagree"
                );
                fails.push((Rule::R24, at.evidence(i, None, detail)));
            }
        }
        if first && high.is_empty() {
            for &i in &low_unused {
                let detail = format!(
                    "vCPU {i} exists (the toolstack counts {vcpus}) but its slot is unused at the \
                     first sample: it was not written before the table was handed out"
                );
                fails.push((Rule::P10, at.evidence(i, None, detail)));
            }
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
