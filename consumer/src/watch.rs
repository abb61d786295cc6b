//! One rule for records that stay mid-update: a record found busy in at
//! least `min_snapshots` consecutive snapshots spanning at least `bound`
//! is stuck (its writer hangs, or died during an update).
//!
//! The sampler uses it with [`StuckWatch::update`] on whole snapshots (any
//! busy seq continues a run); a checker of rule D2 ("a record does not stay
//! odd at one seq value") feeds [`StuckWatch::observe`] one record at a time
//! with only odd seqs, under [`StuckWatch::same_seq`], and reports a run
//! once, when [`Stuck::first`] says it just became stuck.

use std::time::{Duration, Instant};

use crate::{RecordStatus, Snapshot};

/// A stuck record, as [`StuckWatch`] found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stuck {
    /// The record index.
    pub record: u32,
    /// The seq seen last.
    pub seq: u32,
    /// When the run of busy snapshots began.
    pub since: Instant,
    /// How long it has been busy.
    pub busy_for: Duration,
    /// Consecutive snapshots that found it busy.
    pub snapshots: u32,
    /// Whether this reading is the first to find the run stuck (a caller
    /// that reports each run once reports it now).
    pub first: bool,
}

/// A run of busy snapshots of one record.
#[derive(Clone, Copy, Debug)]
struct Run {
    seq: u32,
    since: Instant,
    snapshots: u32,
    /// Whether the run was found stuck already.
    stuck: bool,
}

/// Tracks, per record, how long it has been busy in a row.
#[derive(Clone, Debug)]
pub struct StuckWatch {
    bound: Duration,
    min_snapshots: u32,
    same_seq: bool,
    runs: Vec<Option<Run>>,
}

impl StuckWatch {
    /// A watch that calls a record stuck after `min_snapshots` consecutive
    /// busy snapshots spanning at least `bound`.
    pub fn new(bound: Duration, min_snapshots: u32) -> StuckWatch {
        StuckWatch {
            bound,
            min_snapshots,
            same_seq: false,
            runs: Vec::new(),
        }
    }

    /// A run continues only while the seq stays at one value (a new seq
    /// starts a new run): the writer made no progress at all.
    #[must_use]
    pub fn same_seq(mut self) -> StuckWatch {
        self.same_seq = true;
        self
    }

    /// Records one reading of `record` taken at `now`: `Some(seq)` when it
    /// was busy, `None` when it read consistently (which ends its run).
    /// Returns the run when it is stuck (again at every later busy
    /// reading, until it ends).
    pub fn observe(&mut self, record: u32, busy: Option<u32>, now: Instant) -> Option<Stuck> {
        let i = usize::try_from(record).ok()?;
        if self.runs.len() <= i {
            self.runs.resize(i + 1, None);
        }
        let slot = self.runs.get_mut(i)?;
        let Some(seq) = busy else {
            *slot = None;
            return None;
        };
        let run = match *slot {
            Some(r) if !self.same_seq || r.seq == seq => Run {
                seq,
                snapshots: r.snapshots.saturating_add(1),
                ..r
            },
            _ => Run {
                seq,
                since: now,
                snapshots: 1,
                stuck: false,
            },
        };
        let busy_for = now.saturating_duration_since(run.since);
        let stuck = run.snapshots >= self.min_snapshots && busy_for >= self.bound;
        *slot = Some(Run {
            stuck: run.stuck || stuck,
            ..run
        });
        stuck.then_some(Stuck {
            record,
            seq,
            since: run.since,
            busy_for,
            snapshots: run.snapshots,
            first: !run.stuck,
        })
    }

    /// Records every record of a snapshot; returns the first stuck one.
    /// A snapshot never taken changes nothing.
    pub fn update(&mut self, snap: &Snapshot) -> Option<Stuck> {
        let now = snap.taken()?;
        self.runs.truncate(snap.records().len());
        let mut stuck = None;
        for r in snap.records() {
            let busy = match r.status() {
                RecordStatus::Busy { seq, .. } => Some(seq),
                _ => None,
            };
            let found = self.observe(r.index(), busy, now);
            stuck = stuck.or(found);
        }
        stuck
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_needs_both_snapshots_and_time() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut w = StuckWatch::new(Duration::from_millis(100), 3);
        assert_eq!(w.observe(1, Some(3), at(0)), None);
        assert_eq!(w.observe(1, Some(5), at(200)), None, "2 snapshots");
        let s = w.observe(1, Some(7), at(300)).expect("stuck");
        assert_eq!((s.record, s.seq, s.snapshots), (1, 7, 3));
        assert_eq!((s.since, s.busy_for), (t0, Duration::from_millis(300)));
        assert!(s.first, "first found stuck");
        let again = w.observe(1, Some(7), at(350)).expect("still stuck");
        assert_eq!((again.snapshots, again.first), (4, false));
        assert!(w.observe(1, None, at(400)).is_none(), "read: run ends");
        assert!(w.observe(1, Some(9), at(500)).is_none(), "a new run");
        assert!(w.observe(1, Some(9), at(600)).is_none());
        let s = w.observe(1, Some(9), at(700)).expect("stuck again");
        assert!(s.first, "a new run is reported anew");
        assert!(w.observe(0, Some(1), at(0)).is_none());
        assert!(w.observe(0, Some(1), at(50)).is_none());
        assert!(
            w.observe(0, Some(1), at(60)).is_none(),
            "3 snapshots, 60 ms"
        );
    }

    #[test]
    fn same_seq_restarts_on_a_new_seq() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut w = StuckWatch::new(Duration::ZERO, 2).same_seq();
        assert!(w.observe(0, Some(3), at(0)).is_none());
        assert!(w.observe(0, Some(5), at(10)).is_none(), "seq moved");
        let s = w.observe(0, Some(5), at(20)).expect("stuck at 5");
        assert_eq!((s.seq, s.snapshots, s.since), (5, 2, at(10)));
        assert!(s.first);
        let s = w.observe(0, Some(7), at(30));
        assert!(s.is_none(), "seq moved: a new run");
        let s = w.observe(0, Some(7), at(40)).expect("stuck at 7");
        assert_eq!((s.since, s.first), (at(30), true));
    }
}
