//! The checker: attach to a table, check the static rules, sample it, and
//! report every rule.
//!
//! [`run_check`] does it all for a list of [`Target`]s and a duration;
//! [`Checker`] is the same, one step at a time ([`Checker::attach`],
//! [`Checker::sample`], [`Checker::finish`]), for callers that drive the
//! producer themselves (tests, fault injection).

use std::{
    collections::{BTreeMap, HashSet},
    ops::ControlFlow,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use vstats_abi::{
    header::{CLOCK_HOST_MONOTONIC, EXT_HEADER_OFFSET},
    record::{is_active, RECORD_PREFIX, VCPU_STATS_SIZE_R3},
    validate::violations,
    Error as AbiError, Rule, RuleSet, TableInfo, TableKind,
};
use vstats_consumer::{
    follow::{FileChange, FileWatch},
    mem::MemView,
    runstate::{Clock, HostMonotonic},
    Snapshot, Table, TableClock, DEFAULT_MAX_ATTEMPTS,
};

use crate::{
    dynamics::{Applies, At, Baselines},
    plan::{self, When, PLAN},
    report::{Attachment, Event, Evidence, Report, RuleBook, TableReport},
    statics::{
        checked_records, copy_and_validate, for_each_outside, head_field, is_v3, load_outside,
        marker, standard_field_errors, Outside,
    },
};

/// The note a report on an RFC v3 table carries (design 9.1).
pub const V3_NOTE: &str = "RFC v3 table: only vCPU 0 is meaningful; vCPU count from the toolstack";

/// Why a rule of the v3 profile's skipped set is not checked on a v3
/// table.
const V3_ZERO_FILL: &str = "not applicable (RFC v3 table: zero fill)";
/// Why a rule about the extension header or later is not checked on a v3
/// table.
const V3_NO_EXT: &str = "not applicable (RFC v3 table: no extension header)";

/// Smallest record of a vCPU table of any revision (R22): `seq`, `_pad`
/// and the running time.
const VCPU_MIN_SIZE: u32 = 16;

/// How long and how closely to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    /// How long [`run_check`] samples (at least one sample is taken).
    pub duration: Duration,
    /// Time between samples.
    pub interval: Duration,
    /// D2: a record whose seq stays at one odd value for at least this
    /// long (and [`CheckOptions::odd_min_samples`] samples) fails. Default
    /// 500 ms: a writer's update is a few stores (nanoseconds), but a
    /// writer thread can be preempted mid-update for a scheduler time slice
    /// (milliseconds) on a loaded host; half a second mid-update means a
    /// dead or stuck writer.
    pub odd_bound: Duration,
    /// D2: consecutive samples that must see the same odd seq (default 3).
    pub odd_min_samples: u32,
    /// The consumer's attempts per record read before it reports the
    /// record busy (default `vstats_consumer::DEFAULT_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// The number of vCPUs the toolstack counts (R24, P10): slots `>=`
    /// it must be unused, slots below it used at the first sample. `None`
    /// (the default): R24 and P10 are skipped.
    pub vcpus: Option<u32>,
}

impl Default for CheckOptions {
    fn default() -> CheckOptions {
        CheckOptions {
            duration: Duration::from_secs(1),
            interval: Duration::from_millis(10),
            odd_bound: Duration::from_millis(500),
            odd_min_samples: 3,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            vcpus: None,
        }
    }
}

/// A table to check.
#[derive(Debug)]
pub enum Target {
    /// A table file: mapped read-only, re-attached when a restarted
    /// producer replaces it.
    Path(PathBuf),
    /// Memory someone else mapped, with a raw view of all of it (e.g. a
    /// Xen foreign mapping wrapped with [`MemView::from_raw_parts`]): every
    /// rule is checked; a table re-initialised in place is re-attached.
    Memory {
        /// Name for the report.
        label: String,
        /// The whole mapping.
        raw: MemView<'static>,
        /// The reader of the table's own clock, attached to every table
        /// read from this memory ([`Table::set_clock`]): Xen's time frame
        /// of the domain (`xen_targets`, feature `xen`). P11 and D10 are then checked
        /// in that clock, within its error ([`Clock::uncertainty_ns`]).
        clock: Option<TableClock>,
    },
    /// An already opened consumer table without a raw view (e.g. one the
    /// Xen backend mapped). Rules that need every byte of the mapping (P4,
    /// P13, D7, P9, P15) are skipped, D6 covers only the header and extension header
    /// (`Table::is_stale`): `vstats_consumer::Table` exposes no loads
    /// outside the head and the records. Prefer [`Target::Memory`].
    Table {
        /// Name for the report.
        label: String,
        /// The table.
        table: Box<Table>,
    },
}

impl Target {
    /// The name the report uses.
    pub fn label(&self) -> String {
        match self {
            Target::Path(p) => p.display().to_string(),
            Target::Memory { label, .. } | Target::Table { label, .. } => label.clone(),
        }
    }
}

/// The directory a VM called `name` publishes in, under the default root
/// ([`vstats_consumer::discover::root`]: `$VSTATS_ROOT`, else
/// `/dev/shm/vstats` for root and a root of their own for other users).
pub fn vm_dir(name: &str) -> PathBuf {
    vstats_consumer::discover::root().join(name)
}

/// The tables in a VM's directory: `<dir>/vcpu` and `<dir>/domain`.
pub fn targets_in_dir(dir: &Path) -> Vec<Target> {
    TableKind::ALL
        .iter()
        .map(|k| Target::Path(dir.join(k.file_name())))
        .collect()
}

/// The targets of a table file or a VM directory: the `vcpu` and
/// `domain` files of a directory (whichever exist), else the file. A file
/// is opened once first, so that one that cannot be read at all is an
/// error here; the checker reports what is wrong inside it.
///
/// # Errors
///
/// A directory without tables; the file or directory cannot be read.
pub fn path_targets(path: &Path) -> vstats_consumer::Result<Vec<Target>> {
    if path.is_dir() {
        let files = vstats_consumer::discover::table_files(path)?;
        return Ok(files.into_iter().map(Target::Path).collect());
    }
    std::fs::File::open(path).map_err(|e| vstats_consumer::Error::io(path, e))?;
    Ok(vec![Target::Path(path.to_owned())])
}

/// Raw mappings of Xen domain `domid`'s vCPU table and, when Xen offers
/// it, its domain table, labelled `domain N <kind> stats table`.
///
/// # Errors
///
/// The Xen backend's errors (no such domain, vCPU table not offered).
#[cfg(feature = "xen")]
pub fn xen_targets(
    xen: &vstats_consumer::xen::Xen,
    domid: u16,
) -> vstats_consumer::xen::Result<Vec<Target>> {
    let mut out = Vec::new();
    // Xen's tables are in Xen system time; without the domain's time frame
    // (a hypervisor without it) P11 and D10 are skipped, with the reason.
    let clock = xen.map_time_frame(domid).ok().map(|f| TableClock {
        reader: Arc::new(f),
        name: format!("Xen's time frame of domain {domid}"),
    });
    for kind in TableKind::ALL {
        match xen.map_raw(domid, kind) {
            Ok(raw) => out.push(Target::Memory {
                label: format!("domain {domid} {kind} stats table"),
                raw,
                clock: clock.clone(),
            }),
            Err(vstats_consumer::xen::Error::NotOffered { .. }) if kind == TableKind::Domain => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Attaches to every target, samples them all every
/// [`CheckOptions::interval`] for [`CheckOptions::duration`], and reports.
/// Never fails: a table that cannot be opened has its
/// [`TableReport::error`] set (exit code [`crate::report::EXIT_ERROR`]).
pub fn run_check(targets: Vec<Target>, opts: &CheckOptions) -> Report {
    let start = Instant::now();
    let mut checkers: Vec<Checker> = targets
        .into_iter()
        .map(|t| Checker::attach(t, opts))
        .collect();
    loop {
        for c in &mut checkers {
            c.sample();
        }
        if start.elapsed() >= opts.duration {
            break;
        }
        std::thread::sleep(
            opts.interval
                .min(opts.duration.saturating_sub(start.elapsed())),
        );
    }
    Report::new(checkers.into_iter().map(Checker::finish).collect())
}

/// Checks one table over time. See the [module](self) docs.
#[derive(Debug)]
pub struct Checker {
    target: String,
    /// The file at the path of a path target, followed across restarts.
    file: Option<FileWatch>,
    opts: CheckOptions,
    start: Instant,
    book: RuleBook,
    live: Option<Live>,
    attachments: Vec<Attachment>,
    /// Generation of every attachment, and whether it had an extension
    /// header (a generation of 0 from a v3 table says nothing).
    generations: Vec<(u64, bool)>,
    events: Vec<Event>,
    samples: u64,
    error: Option<String>,
    /// The magic was seen cleared: a re-initialisation in place under way
    /// (r2) or a retired table (r3, P15).
    magic_cleared: bool,
    /// Notes for the report, once each.
    notes: Vec<String>,
    /// "Now" in the table's clock for the sample under way, given by
    /// [`Checker::sample_at`].
    now_given: Option<u64>,
    /// The table's own clock ([`Target::Memory`]'s), attached to every
    /// table this checker reads.
    clock: Option<TableClock>,
}

/// A word outside the records that changed.
#[derive(Clone, Copy, Debug)]
struct Change {
    kind: Outside,
    old: u64,
    new: u64,
    at_s: f64,
    sample: u64,
}

/// One attachment: a validated table and everything remembered about it.
#[derive(Debug)]
struct Live {
    table: Table,
    info: TableInfo,
    head: Vec<u8>,
    raw: Option<MemView<'static>>,
    generation: u64,
    snap: Snapshot,
    /// Values of the words outside the records when attaching, in
    /// `for_each_outside` order.
    outside_base: Vec<u64>,
    changed: BTreeMap<u64, Change>,
    /// What the dynamic rules of the records remember.
    records: Baselines,
    /// (rule, record or u32::MAX, offset) already reported (D6).
    reported: HashSet<(Rule, u32, u64)>,
    samples: u64,
}

impl Checker {
    /// Attaches to `target` and checks the static rules. Never fails: a
    /// table that cannot be opened gets [`TableReport::error`], an invalid
    /// one the failing rule; either way sampling it does nothing (a path
    /// target is retried when a new file appears at the path).
    pub fn attach(target: Target, opts: &CheckOptions) -> Checker {
        let mut c = Checker {
            target: target.label(),
            file: None,
            opts: *opts,
            start: Instant::now(),
            book: RuleBook::new(),
            live: None,
            attachments: Vec::new(),
            generations: Vec::new(),
            events: Vec::new(),
            samples: 0,
            error: None,
            magic_cleared: false,
            notes: Vec::new(),
            now_given: None,
            clock: None,
        };
        match target {
            Target::Path(path) => {
                c.file = Some(FileWatch::new(path));
                match c.attach_file() {
                    Ok(true) => {}
                    Ok(false) => c.error = Some(format!("cannot open {}: no such file", c.target)),
                    Err(e) => c.error = Some(e),
                }
            }
            Target::Memory { raw, clock, .. } => {
                c.clock = clock;
                c.attach_raw(raw)
            }
            Target::Table { mut table, .. } => {
                table.set_max_attempts(opts.max_attempts);
                c.start_live(*table, None);
            }
        }
        c
    }

    fn now_s(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn event(&mut self, what: impl Into<String>) {
        let at_s = self.now_s();
        self.events.push(Event {
            at_s,
            what: what.into(),
        });
    }

    fn evidence(
        &self,
        generation: u64,
        record: Option<u32>,
        field: Option<String>,
        offset: Option<u64>,
        detail: String,
    ) -> Evidence {
        Evidence {
            generation,
            sample: self.samples,
            at_s: self.now_s(),
            record,
            field,
            offset,
            detail,
        }
    }

    /// Maps what is at a path target's path, valid table or not, and
    /// attaches to it ([`Checker::attach_raw`]). `Ok(false)`: no file
    /// there; `Err`: why it cannot be opened.
    fn attach_file(&mut self) -> Result<bool, String> {
        let Some(watch) = &mut self.file else {
            return Ok(false);
        };
        match watch.map() {
            Ok(Some(raw)) => {
                self.attach_raw(raw);
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => Err(format!("cannot open {e}")),
        }
    }

    /// Validates the table in `raw` and starts an attachment, or records
    /// the rule it breaks.
    fn attach_raw(&mut self, raw: MemView<'static>) {
        let (head, result) = copy_and_validate(&raw);
        let mapped_len = raw.len() as u64;
        if let Err(e) = result {
            return self.invalid(&head, mapped_len, e);
        }
        match Table::from_view(raw.clone()) {
            Ok(mut table) => {
                table.set_max_attempts(self.opts.max_attempts);
                if let Some(c) = &self.clock {
                    table.set_clock(c.reader.clone(), c.name.clone());
                }
                // The consumer copied and validated the head again; if the
                // producer changed it in between, the consumer's copy wins
                // and D6 compares against it.
                self.start_live(table, Some(raw));
            }
            Err(vstats_consumer::Error::Invalid { error, .. }) => {
                self.invalid(&head, mapped_len, error)
            }
            Err(e) => self.error = Some(format!("cannot check {}: {e}", self.target)),
        }
    }

    /// The table breaks header or descriptor rules: report every
    /// violation ([`vstats_abi::validate::violations`] on the copy `head`
    /// of a mapping of `mapped_len` bytes); nothing else can be checked on
    /// it. `e` is the first violation, as reported by whoever refused the
    /// table.
    fn invalid(&mut self, head: &[u8], mapped_len: u64, e: AbiError) {
        let generation = head
            .get(48..56)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_ne_bytes);
        let mut errors = Vec::new();
        let v = violations(head, mapped_len, |e| {
            errors.push(e);
            ControlFlow::Continue(())
        });
        if errors.is_empty() {
            // The consumer's copy of the head differed from ours (the
            // producer changed it in between): report what it saw.
            errors.push(e);
        }
        // The violation that stopped the walk, if one did.
        let stop = v
            .info
            .is_none()
            .then(|| errors.last().map(AbiError::rule))
            .flatten();
        for rule in plan::validated().chain([Rule::R22]) {
            match stop {
                _ if v.checked.contains(rule) => self.book.pass(rule),
                Some(stop) => self
                    .book
                    .skip(rule, format!("not checked: validation stopped at {stop}")),
                None => self.book.skip(rule, not_applicable(rule)),
            }
        }
        for error in &errors {
            let ev = self.evidence(generation, None, None, None, error.to_string());
            self.book.fail(error.rule(), ev);
        }
        let why = format!("not checked: the table is invalid ({})", e.rule());
        for c in PLAN.iter().filter(|c| c.when != When::NotObservable) {
            self.book.skip(c.rule, why.clone());
        }
        self.event(format!("table invalid, not sampled: {e}"));
    }

    /// Starts an attachment on a validated table: the restart rule (D8),
    /// the static rules, then the baselines of the dynamic ones.
    fn start_live(&mut self, table: Table, raw: Option<MemView<'static>>) {
        if let Some(e) = self.error.take() {
            self.event(format!("{e}; the table appeared later"));
        }
        let info = *table.info();
        let head = table.head().to_vec();
        let generation = info.generation();
        self.check_new_generation(&info);
        self.attachments.push(Attachment {
            generation,
            kind: info.kind().file_name(),
            nr_records: info.nr_records,
            mapped_len: info.mapped_len,
            at_s: self.now_s(),
            sample: self.samples,
        });
        self.check_head(&head, &info);
        let outside_base = match &raw {
            Some(raw) => self.check_outside_inactive(raw, &info),
            None => {
                let why = "no raw view of the mapping: vstats_consumer::Table exposes no loads \
                           outside the head and the records (attach with Target::Memory)";
                for id in [Rule::P4, Rule::P13, Rule::D7, Rule::P9, Rule::P15] {
                    self.book.skip(id, why);
                }
                Vec::new()
            }
        };
        self.live = Some(Live {
            records: Baselines::new(&table, &self.opts),
            snap: Snapshot::new(&table),
            table,
            info,
            head,
            raw,
            generation,
            outside_base,
            changed: BTreeMap::new(),
            reported: HashSet::new(),
            samples: 0,
        });
        self.magic_cleared = false;
    }

    /// D8, on a re-attachment: a restarted producer publishes a generation
    /// no earlier table under this name had. Remembers the generation.
    fn check_new_generation(&mut self, info: &TableInfo) {
        let generation = info.generation();
        let has_ext = info.ext.is_some();
        if !self.attachments.is_empty() {
            let reused = has_ext
                && self
                    .generations
                    .iter()
                    .any(|&(g, ext)| ext && g == generation);
            if reused {
                let ev = self.evidence(
                    generation,
                    None,
                    Some("ext.generation".into()),
                    Some(48),
                    format!(
                        "the table was re-published with generation {generation:#x}, \
                         the generation of an earlier table under the same name"
                    ),
                );
                self.book.fail(Rule::D8, ev);
            } else if has_ext {
                self.book.pass(Rule::D8);
            } else {
                self.book.skip(
                    Rule::D8,
                    "the restarted table has no extension header (no generation)",
                );
            }
        }
        self.generations.push((generation, has_ext));
    }

    /// The static rules of a validated head: those `violations` checked
    /// (they held; those it did not check do not apply to the table's
    /// header), R18 again, R22, P1 and R17; on an RFC v3 table the v3
    /// profile (design 9.1): R1-R8 and R22, the rest of the head's rules
    /// not applicable, and a note.
    fn check_head(&mut self, head: &[u8], info: &TableInfo) {
        let v = violations(head, info.mapped_len, |_| ControlFlow::Continue(()));
        let checked = v.checked;
        const V3_PROFILE: [Rule; 8] = [
            Rule::R1,
            Rule::R2,
            Rule::R3,
            Rule::R4,
            Rule::R5,
            Rule::R6,
            Rule::R7,
            Rule::R8,
        ];
        for rule in plan::validated() {
            if is_v3(info) && !V3_PROFILE.contains(&rule) {
                self.book.skip(rule, V3_NO_EXT);
            } else if checked.contains(rule) {
                self.book.pass(rule);
            } else {
                self.book.skip(rule, not_applicable(rule));
            }
        }
        self.check_record_size(info, checked);
        if !info.is_r3() {
            self.book.skip(
                Rule::P15,
                "not an r3 table: a cleared magic re-initialises it in place (P15 is r3's)",
            );
        }
        if is_v3(info) {
            self.book.skip(Rule::R17, V3_NO_EXT);
            for rule in [Rule::P1, Rule::P4, Rule::P13] {
                self.book.skip(rule, V3_ZERO_FILL);
            }
            self.note(V3_NOTE);
        } else {
            self.check_domain_records(info);
            self.check_reserved_zero(head, info);
            self.check_standard_fields(head, info);
        }
        if info.kind() == TableKind::Domain {
            for rule in [Rule::R16, Rule::R24, Rule::R25, Rule::P10] {
                self.book.skip(rule, "a domain table has no vCPU slots");
            }
        }
    }

    /// Adds `note` to the report, once.
    fn note(&mut self, note: &str) {
        if !self.notes.iter().any(|n| n == note) {
            self.notes.push(note.to_owned());
        }
    }

    /// R22 on a table without the r3 header (validation checks it on r3
    /// tables): a vCPU table's record holds the running time.
    fn check_record_size(&mut self, info: &TableInfo, checked: RuleSet) {
        if checked.contains(Rule::R22) {
            self.book.pass(Rule::R22);
            return;
        }
        if info.kind() != TableKind::Vcpu {
            self.book
                .skip(Rule::R22, "a domain table has no vCPU record");
            return;
        }
        let size = info.header.size;
        if size >= VCPU_MIN_SIZE {
            self.book.pass(Rule::R22);
            return;
        }
        let ev = self.evidence(
            info.generation(),
            None,
            Some("header.size".into()),
            Some(8),
            format!(
                "a vCPU record of {size} bytes does not hold the running time (size >= \
                 {VCPU_MIN_SIZE}; an r3 one >= {VCPU_STATS_SIZE_R3})"
            ),
        );
        self.book.fail(Rule::R22, ev);
    }

    /// R18, for a consumer whose validator predates it.
    fn check_domain_records(&mut self, info: &TableInfo) {
        if info.kind() == TableKind::Domain && info.nr_records != 1 {
            let ev = self.evidence(
                info.generation(),
                None,
                Some("ext.nr_records".into()),
                Some(24),
                format!(
                    "a domain table has exactly one record, this one has {}",
                    info.nr_records
                ),
            );
            self.book.fail(Rule::R18, ev);
        }
    }

    /// P1: the reserved bytes of the head are zero.
    fn check_reserved_zero(&mut self, head: &[u8], info: &TableInfo) {
        match vstats_abi::validate::first_nonzero_reserved(head, info) {
            Some(off) => {
                let v = head.get(off as usize).copied().unwrap_or(0);
                let ev = self.evidence(
                    info.generation(),
                    None,
                    Some("reserved".into()),
                    Some(off.into()),
                    format!("reserved byte is {v:#04x}, not 0"),
                );
                self.book.fail(Rule::P1, ev);
            }
            None => self.book.pass(Rule::P1),
        }
    }

    /// R17: the standard fields inside `abi_size` keep their meaning.
    fn check_standard_fields(&mut self, head: &[u8], info: &TableInfo) {
        let std_errors = standard_field_errors(head, info);
        if std_errors.is_empty() {
            self.book.pass(Rule::R17);
        }
        for (i, what) in std_errors {
            let ev = self.evidence(
                info.generation(),
                None,
                Some(format!("descriptor {i}")),
                None,
                what,
            );
            self.book.fail(Rule::R17, ev);
        }
    }

    /// P4: every word outside the records' seq words, counters and
    /// producer-specific areas holds the inactive marker; P13: in an r3
    /// table, the tail reads as unused slots (in an r2 table the tail is
    /// P4's, all ones). Returns their values, the baseline of D7. On an
    /// RFC v3 table (zero fill) neither applies: only record 0's words are
    /// visited, for D7.
    fn check_outside_inactive(&mut self, raw: &MemView<'static>, info: &TableInfo) -> Vec<u64> {
        let len = raw.len() as u64;
        let mut outside_base = Vec::new();
        let mut bad = Vec::new();
        for_each_outside(info, len, |off, kind| {
            let v = load_outside(raw, off, kind).unwrap_or(0);
            if v != marker(kind, off, len) {
                bad.push((off, kind, v));
            }
            outside_base.push(v);
        });
        if is_v3(info) {
            return outside_base;
        }
        let tail_rule = |kind: Outside| {
            if kind.in_tail() && info.is_r3() {
                Rule::P13
            } else {
                Rule::P4
            }
        };
        self.book.pass(Rule::P4);
        if info.is_r3() {
            self.book.pass(Rule::P13);
        } else {
            self.book.skip(
                Rule::P13,
                "an r2 table: its tail is all ones (P4), not unused slots",
            );
        }
        for (off, kind, v) in bad {
            let want = marker(kind, off, len);
            let ev = self.evidence(
                info.generation(),
                record_of(kind),
                Some(kind.describe()),
                Some(off),
                if want == 0 {
                    format!("holds {v:#x}, not 0 (an unused slot's even seq)")
                } else {
                    format!("holds {v:#x}, not the inactive marker (all ones)")
                },
            );
            self.book.fail(tail_rule(kind), ev);
        }
        outside_base
    }

    /// As [`Checker::sample`], with `now_ns` as "now" in the table's clock,
    /// read by the caller after the producer's last update: P11 and D10
    /// are then checked on an r3 vCPU table of any named clock, not only
    /// on clock 1, whose "now" the checker reads itself. For a clock the
    /// checker cannot read, such as clock 2 (Xen's `NOW()`) under a
    /// harness that drives a Xen producer with a clock of its own.
    pub fn sample_at(&mut self, now_ns: u64) {
        self.now_given = Some(now_ns);
        self.sample();
        self.now_given = None;
    }

    /// Takes one sample: notices a restart (and re-attaches), then checks
    /// every dynamic rule once.
    pub fn sample(&mut self) {
        self.samples += 1;
        if !self.follow_restart() {
            return;
        }
        let Some(mut live) = self.live.take() else {
            return;
        };
        self.check_records(&mut live);
        self.check_raw(&mut live);
        live.samples += 1;
        self.live = Some(live);
    }

    /// Notices a producer restart and re-attaches. Returns whether the
    /// current attachment (if any) should be sampled.
    fn follow_restart(&mut self) -> bool {
        self.follow_file();
        let Some(live) = &self.live else {
            return false;
        };
        match live.raw.clone() {
            Some(raw) => self.follow_in_place(raw),
            None => self.follow_without_raw(),
        }
    }

    /// A path target: a new file at the path (a restarted producer) ends
    /// the attachment and is attached; a removal is noted (the old mapping
    /// is still sampled).
    fn follow_file(&mut self) {
        let Some(Ok(Some(change))) = self.file.as_mut().map(FileWatch::poll) else {
            return;
        };
        match change {
            FileChange::Replaced => {
                self.settle();
                self.event(format!(
                    "{} was replaced (new inode): the producer restarted; re-attaching",
                    self.target
                ));
                // No file: replaced again or removed meanwhile, next sample.
                if let Err(e) = self.attach_file() {
                    self.event(e);
                }
            }
            FileChange::Removed => self.event(format!(
                "{} was removed; still sampling the old mapping, waiting for a new table",
                self.target
            )),
        }
    }

    /// A table without a raw view cannot be re-attached: a changed header
    /// ends the attachment. Returns whether to sample it.
    fn follow_without_raw(&mut self) -> bool {
        if self.live.as_ref().is_some_and(|l| l.table.is_stale()) {
            self.settle();
            self.event(
                "the table's header changed in place; without a raw view the checker \
                 cannot re-attach: stopped sampling it",
            );
        }
        self.live.is_some()
    }

    /// A table with a raw view, re-initialised in place: a cleared magic
    /// is a restart under way (P7), not sampled; then a new generation, or
    /// any head after a cleared magic, is a new table, attached. A changed
    /// head at the same generation is not a restart (D6 reports it).
    /// Returns whether to sample.
    fn follow_in_place(&mut self, raw: MemView<'static>) -> bool {
        if raw.load::<u32>(0) == Some(0) {
            if !self.magic_cleared {
                self.magic_cleared = true;
                let r3 = self.live.as_ref().is_some_and(|l| l.info.is_r3());
                if r3 {
                    self.event("magic cleared: the producer retired the table (P15)");
                    self.check_retired(&raw);
                } else {
                    self.event("magic cleared: the producer is re-initialising the table in place");
                }
            }
            return false;
        }
        let generation = generation_in(&raw);
        let restarted = self.magic_cleared
            || self
                .live
                .as_ref()
                .is_some_and(|l| l.table.is_stale() && generation != l.generation);
        if !restarted {
            return true;
        }
        self.settle();
        self.event(format!(
            "the table was re-initialised in place (generation {generation:#x}); re-attaching"
        ));
        self.attach_raw(raw);
        self.live.is_some()
    }

    /// P15: an r3 table whose magic reads 0 was retired; every record
    /// must read unused (each read with the seq protocol from the raw
    /// view; a record mid-update is not judged).
    fn check_retired(&mut self, raw: &MemView<'static>) {
        let Some(live) = &self.live else {
            return;
        };
        let info = live.info;
        let n = (info.header.size.saturating_sub(RECORD_PREFIX) / 8) as usize;
        let mut words = vec![0u64; n];
        let mut used = Vec::new();
        for i in 0..checked_records(&info) {
            let Some(at) = info.record_offset(i) else {
                continue;
            };
            let read = raw.read_seq_words(
                at,
                at + u64::from(RECORD_PREFIX),
                &mut words,
                self.opts.max_attempts,
            );
            if matches!(read, Some(Ok(_))) && words.iter().any(|&w| is_active(w)) {
                used.push(i);
            }
        }
        self.book.pass(Rule::P15);
        for i in used {
            let ev = self.evidence(
                live.generation,
                Some(i),
                Some("header.magic".into()),
                Some(0),
                format!(
                    "the magic reads 0 (the table was retired) but record {i} still has active \
                     counters: a retiring producer makes every record unused first"
                ),
            );
            self.book.fail(Rule::P15, ev);
        }
    }

    /// Reads every record through the consumer and checks D1 to D5, D9,
    /// D10, R16, R25, P11 and P12 on each ([`Baselines::check`]), then R24
    /// and P10 over the slots.
    fn check_records(&mut self, live: &mut Live) {
        live.table.snapshot(&mut live.snap);
        let info = live.info;
        let vcpu = info.kind() == TableKind::Vcpu;
        let r3_vcpu = vcpu && info.is_r3() && info.header.size >= VCPU_STATS_SIZE_R3;
        let clock1 = r3_vcpu && info.clock == CLOCK_HOST_MONOTONIC;
        // Read after the copy, so every update the copy saw happened
        // before it; or given by the caller (`sample_at`), who read it
        // after the producer's last update.
        // The table's own clock (Xen's time frame, attached by the Xen
        // backend) comes with the bound of its error against the
        // producer's; the host's CLOCK_MONOTONIC and a caller's "now" with
        // none.
        let (now_ns, clock_slack_ns) = match self.now_given {
            Some(now) if r3_vcpu => (Some(now), 0),
            _ if clock1 => (HostMonotonic.now_ns(), 0),
            _ if r3_vcpu && live.table.clock_name().is_some() => {
                (live.table.clock_now(), live.table.clock_uncertainty_ns())
            }
            _ => (None, 0),
        };
        let now = Instant::now();
        let at = At {
            generation: live.generation,
            sample: self.samples,
            at_s: now.saturating_duration_since(self.start).as_secs_f64(),
            now,
        };
        let running_known = info.has_std_field(RECORD_PREFIX);
        let applies = Applies {
            r16: vcpu && running_known,
            r3_vcpu,
            now_ns,
            clock_slack_ns,
        };
        let checked = checked_records(&info) as usize;
        let mut fails = Vec::new();
        for rec in live.snap.records().take(checked) {
            live.records
                .check(&rec, &self.opts, &applies, &at, &mut fails);
        }
        match self.opts.vcpus {
            Some(n) if vcpu && !is_v3(&info) => {
                let first = live.samples == 0;
                live.records.check_slots(
                    live.snap.records(),
                    n,
                    info.nr_records,
                    first,
                    &at,
                    &mut fails,
                );
                self.book.pass(Rule::R24);
                if first {
                    self.book.pass(Rule::P10);
                }
            }
            _ if is_v3(&info) => {
                for id in [Rule::R24, Rule::P10] {
                    self.book.skip(id, V3_NOTE);
                }
            }
            _ => {
                for id in [Rule::R24, Rule::P10] {
                    self.book.skip(
                        id,
                        "needs the toolstack's vCPU count (CheckOptions::vcpus, --vcpus N)",
                    );
                }
            }
        }
        for id in [Rule::D1, Rule::D2, Rule::D3, Rule::D4, Rule::D5, Rule::P12] {
            self.book.pass(id);
        }
        if r3_vcpu {
            self.book.pass(Rule::R25);
            self.book.pass(Rule::D9);
        } else {
            for id in [Rule::R25, Rule::D9, Rule::D10, Rule::P11] {
                self.book.skip(
                    id,
                    "the table has no runstate and runstate_entry_time (not an r3 vCPU table)",
                );
            }
        }
        if r3_vcpu && now_ns.is_some() {
            self.book.pass(Rule::P11);
            self.book.pass(Rule::D10);
        } else if r3_vcpu {
            let why = format!(
                "no clock: the table's clock is {} (the checker reads clock 1, the host's \
                 CLOCK_MONOTONIC, a clock the table came with, such as Xen's time frame, or a \
                 now given with Checker::sample_at)",
                info.clock
            );
            self.book.skip(Rule::D10, why.clone());
            self.book.skip(Rule::P11, why);
        }
        if vcpu && running_known {
            self.book.pass(Rule::R16);
        } else if vcpu {
            self.book.skip(
                Rule::R16,
                "the table's abi_size does not reach runstate_running_time",
            );
        }
        for (id, ev) in fails {
            self.book.fail(id, ev);
        }
    }

    /// Compares the head (D6) and the words outside the records (D7) with
    /// their values when attaching.
    fn check_raw(&mut self, live: &mut Live) {
        let Some(raw) = live.raw.clone() else {
            // Without a raw view: the header and extension header only.
            if live.table.is_stale() && live.reported.insert((Rule::D6, u32::MAX, 0)) {
                let ev = self.evidence(
                    live.generation,
                    None,
                    Some("header or extension header".into()),
                    None,
                    "changed since validation (vstats_consumer::Table::is_stale)".into(),
                );
                self.book.fail(Rule::D6, ev);
            }
            self.book.pass(Rule::D6);
            return;
        };
        let now = self.now_s();
        for (k, chunk) in live.head.chunks_exact(4).enumerate() {
            let off = 4 * k as u64;
            let base = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let Some(v) = raw.load::<u32>(off) else { break };
            // A magic cleared is P2's one exception (P15, or an r2
            // re-initialisation): the producer may clear it after this
            // sample looked at it (`follow_in_place`) and before this
            // comparison; the next sample judges it.
            if off == 0 && v == 0 {
                continue;
            }
            if v != base && live.reported.insert((Rule::D6, u32::MAX, off)) {
                let ev = self.evidence(
                    live.generation,
                    None,
                    Some(head_field(off, &live.info, &live.head)),
                    Some(off),
                    format!("changed after publication: {base:#010x} -> {v:#010x}"),
                );
                self.book.fail(Rule::D6, ev);
            }
        }
        self.book.pass(Rule::D6);
        let len = raw.len() as u64;
        let mut k = 0;
        let (base, changed, samples) = (&live.outside_base, &mut live.changed, self.samples);
        for_each_outside(&live.info, len, |off, kind| {
            let v = load_outside(&raw, off, kind).unwrap_or(0);
            if let Some(&old) = base.get(k) {
                if v != old {
                    changed.entry(off).or_insert(Change {
                        kind,
                        old,
                        new: v,
                        at_s: now,
                        sample: samples,
                    });
                }
            }
            k += 1;
        });
        self.book.pass(Rule::D7);
        if !is_v3(&live.info) {
            self.book.pass(Rule::P9);
        }
    }

    /// Ends the current attachment: attributes the changes outside the
    /// records to P9 (the RFC v3 addressing bug) or D7.
    fn settle(&mut self) {
        let Some(live) = self.live.take() else {
            return;
        };
        if is_v3(&live.info) {
            self.book.skip(Rule::P9, V3_NOTE);
        }
        let phantoms = phantom_records(&live);
        for &(i, at) in &phantoms {
            self.fail_phantom(&live, i, at);
        }
        self.fail_changed_outside(&live, &phantoms);
    }

    /// P9: record `i`'s seq never moved while the word at `at` (where the
    /// RFC v3 writer puts it) changed.
    fn fail_phantom(&mut self, live: &Live, i: u32, at: u64) {
        let Some(c) = live.changed.get(&at) else {
            return;
        };
        let ev = Evidence {
            generation: live.generation,
            sample: c.sample,
            at_s: c.at_s,
            record: Some(i),
            field: Some("seq".into()),
            offset: Some(at),
            detail: format!(
                "record {i}'s seq never moved while the word at offset + {i} * size = {at:#x} \
                 ({}) changed {:#x} -> {:#x}: the writer puts vCPU {i} at offset + i * size, \
                 readers read it at offset + i * stride (the RFC v3 bug)",
                c.kind.describe(),
                c.old,
                c.new
            ),
        };
        self.book.fail(Rule::P9, ev);
    }

    /// D7: the words outside the records that changed, but those inside a
    /// phantom record (P9 reports them).
    fn fail_changed_outside(&mut self, live: &Live, phantoms: &[(u32, u64)]) {
        let size = u64::from(live.info.header.size);
        for (&off, c) in &live.changed {
            if phantoms.iter().any(|&(_, at)| off >= at && off < at + size) {
                continue;
            }
            let ev = Evidence {
                generation: live.generation,
                sample: c.sample,
                at_s: c.at_s,
                record: record_of(c.kind),
                field: Some(c.kind.describe()),
                offset: Some(off),
                detail: format!("changed after publication: {:#x} -> {:#x}", c.old, c.new),
            };
            self.book.fail(Rule::D7, ev);
        }
    }

    /// Ends the check and reports every rule.
    pub fn finish(mut self) -> TableReport {
        self.settle();
        if self.attachments.len() < 2 {
            self.book
                .skip(Rule::D8, "the producer did not restart during the check");
        }
        self.book.skip(
            Rule::P15,
            "the table was not retired (magic cleared) during the check",
        );
        for c in PLAN.iter().filter(|c| c.when == When::Dynamic) {
            self.book.skip(c.rule, "no sample was taken");
        }
        TableReport {
            duration_s: self.now_s(),
            target: self.target,
            attachments: self.attachments,
            samples: self.samples,
            error: self.error,
            events: self.events,
            notes: self.notes,
            rules: self.book.results(),
        }
    }
}

/// P9's suspects, after at least two samples: each record `i > 0` whose
/// seq never moved while the word at `offset + i * size` changed, with that
/// offset.
fn phantom_records(live: &Live) -> Vec<(u32, u64)> {
    if live.samples < 2 {
        return Vec::new();
    }
    let (offset, size) = (
        u64::from(live.info.header.offset),
        u64::from(live.info.header.size),
    );
    (1..live.info.nr_records)
        .map(|i| (i, offset + u64::from(i) * size))
        .filter(|&(i, at)| {
            let moved = live.records.seq_moved.get(i as usize).copied();
            live.changed.contains_key(&at) && !moved.unwrap_or(true)
        })
        .collect()
}

/// The generation in the extension header of `raw`, as two `u32` loads
/// (0 where they fail).
fn generation_in(raw: &MemView<'_>) -> u64 {
    let base = u64::from(EXT_HEADER_OFFSET);
    let lo = raw.load::<u32>(base + 32).unwrap_or(0);
    let hi = raw.load::<u32>(base + 36).unwrap_or(0);
    u64::from(lo) | u64::from(hi) << 32
}

fn record_of(kind: Outside) -> Option<u32> {
    match kind {
        Outside::Pad(i) | Outside::Padding(i) => Some(i),
        Outside::Tail | Outside::TailSeq | Outside::TailPad => None,
    }
}

/// Why a rule `violations` did not check on a table it could read does not
/// apply to it.
fn not_applicable(rule: Rule) -> &'static str {
    match rule {
        Rule::R19 | Rule::R20 | Rule::R21 | Rule::R22 => {
            "not applicable: the table has no r3 header"
        }
        _ => "not applicable to this table's header",
    }
}

#[cfg(test)]
mod tests {
    use vstats_abi::{
        layout::{Layout, LayoutParams},
        VCPU_STATS_MAGIC,
    };
    use vstats_consumer::mem::MemViewMut;

    use super::*;

    /// A table retired between the two looks of one sample at its magic
    /// (the producer clears it after `follow_in_place` read it and before
    /// `check_raw` compares the head) is not a D6 violation; the next
    /// sample sees the retirement. A concurrent checker of the Xen
    /// producer's harness (tests/xen-producer) met this race.
    #[test]
    fn a_magic_cleared_within_a_sample_is_not_d6() {
        let l = Layout::compute(&LayoutParams::vcpu_r3(2)).unwrap();
        let mut buf = vec![0u8; l.mapping_len() as usize];
        l.write_headers(&mut buf, VCPU_STATS_MAGIC, 1, &[]).unwrap();
        l.fill_records(&mut buf).unwrap();
        let mem = MemViewMut::from_bytes(&buf);
        let target = Target::Memory {
            label: "t".into(),
            raw: mem.view(),
            clock: None,
        };
        let mut c = Checker::attach(target, &CheckOptions::default());
        c.sample();
        // The rest of one sample, after the magic was read as set.
        let mut live = c.live.take().expect("attached");
        assert!(mem.store::<u32>(0, 0));
        c.check_raw(&mut live);
        c.live = Some(live);
        // Any other head word changing is still D6.
        let mut live = c.live.take().expect("attached");
        assert!(mem.store::<u32>(0, VCPU_STATS_MAGIC));
        assert!(mem.store::<u32>(60, 1));
        c.check_raw(&mut live);
        c.live = Some(live);
        let report = c.finish();
        let d6 = report.rule(Rule::D6).expect("D6 is reported");
        assert_eq!(d6.status, crate::report::Status::Fail);
        assert_eq!(d6.evidence.len(), 1, "{:?}", d6.evidence);
        assert_eq!(d6.evidence[0].offset, Some(60));
    }
}
