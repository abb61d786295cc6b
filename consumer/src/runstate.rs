//! Up-to-date runstate times (ABI r3, rule R26; `docs/abi-r3-design.md`,
//! section 4.3, normative).
//!
//! A producer writes a vCPU's four runstate times only when it updates the
//! record: at a state change (Xen) or a checkpoint (the KVM monitor). The
//! times are accrued **up to** `runstate_entry_time`, the instant the
//! current state (`runstate`) was entered; the open interval since then
//! belongs to the current state and is not in the record. This module adds
//! it, at an instant `now` read in the table's own clock ([`TimeBase`]):
//!
//! ```text
//! if the base is 1 (host CLOCK_MONOTONIC) or 2 (Xen system time), now is
//!    readable, and T[s], s and e are active (R14) and s <= 3:
//!     T'[s] = T[s] + (now >= e ? now - e : 0)   (saturating; >= 2^63: inactive)
//!     T'[k] = T[k] for k != s
//! else:
//!     T' = T, "not extrapolated"
//! ```
//!
//! `now` must be read **after** the record was copied, so that every
//! update the copy saw happened before it. `now < e` only comes from clocks
//! that disagree (Xen without a stable TSC, or a `now` read too early): it
//! is clamped to 0, never negative, and counted ([`Diagnostics`]).
//!
//! The arithmetic is a pure function over the record's raw words
//! ([`Runstate::from_words`]); where the words come from (a snapshot) and
//! where `now` comes from (a [`Clock`]) is the caller's business.
//!
//! # Examples
//!
//! A vCPU that entered `running` at 1000 ns with 400 ns already accrued
//! there, read at 1500 ns of the host's monotonic clock:
//!
//! ```
//! use vstats_consumer::runstate::{Runstate, TimeBase};
//!
//! let base = TimeBase::from_clock(1);
//! let r = Runstate::from_words([400, 10, 20, 0], 0, 1000, base, Some(1500));
//! assert!(r.extrapolated);
//! assert_eq!(r.state, Some(0));
//! assert_eq!(r.entry_ns, Some(1000));
//! assert_eq!(r.times_ns, [Some(900), Some(10), Some(20), Some(0)]);
//! ```

use vstats_abi::header::{CLOCK_HOST_MONOTONIC, CLOCK_NONE, CLOCK_XEN_SYSTEM};
use vstats_abi::record::{is_active, RunState};

/// The number of runstates, `RUNSTATE_running` (0) to `RUNSTATE_offline`
/// (3), in Xen's order.
pub const RUNSTATE_COUNT: usize = RunState::COUNT;

/// The time base of every nanosecond value of a table: the header's
/// `clock` word (byte 56 of an r3 header; absent, hence
/// [`TimeBase::Unnamed`], in r1 and r2 tables).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeBase {
    /// `clock` 0: an r1 or r2 table, or a producer that names no clock.
    /// Nothing is extrapolated.
    Unnamed,
    /// `clock` 1: host `CLOCK_MONOTONIC` in ns (file-backed producers),
    /// read by [`HostMonotonic`].
    HostMonotonic,
    /// `clock` 2: Xen system time (`NOW()`), ns since Xen booted, read
    /// (feature `xen`) from the domain's time frame that the Xen backend
    /// attaches to the table (`TimeFrameClock`, [`crate::Table::set_clock`]),
    /// else from dom0's `shared_info` (`XenSystemClock`).
    XenSystem,
    /// Any other `clock` value, kept as read: a consumer does not know how
    /// to read "now" in it and does not extrapolate (R26).
    Unknown(u32),
}

impl TimeBase {
    /// The time base a header's `clock` word names.
    pub const fn from_clock(clock: u32) -> TimeBase {
        match clock {
            CLOCK_NONE => TimeBase::Unnamed,
            CLOCK_HOST_MONOTONIC => TimeBase::HostMonotonic,
            CLOCK_XEN_SYSTEM => TimeBase::XenSystem,
            other => TimeBase::Unknown(other),
        }
    }

    /// The header's `clock` word for this base.
    pub const fn clock(self) -> u32 {
        match self {
            TimeBase::Unnamed => CLOCK_NONE,
            TimeBase::HostMonotonic => CLOCK_HOST_MONOTONIC,
            TimeBase::XenSystem => CLOCK_XEN_SYSTEM,
            TimeBase::Unknown(c) => c,
        }
    }

    /// Whether a consumer can extrapolate in this base (1 or 2): it names
    /// a clock this library can read.
    pub const fn is_named(self) -> bool {
        matches!(self, TimeBase::HostMonotonic | TimeBase::XenSystem)
    }

    /// `"unnamed"`, `"monotonic"`, `"xen"` or `"unknown"`.
    pub const fn name(self) -> &'static str {
        match self {
            TimeBase::Unnamed => "unnamed",
            TimeBase::HostMonotonic => "monotonic",
            TimeBase::XenSystem => "xen",
            TimeBase::Unknown(_) => "unknown",
        }
    }
}

/// A reader of "now" in one [`TimeBase`].
///
/// `None` when the clock cannot be read at this moment (or at all): the
/// times are then reported as of the last state change, not extrapolated.
pub trait Clock {
    /// The current time in ns in the clock's base; `None` when unreadable.
    fn now_ns(&self) -> Option<u64>;

    /// How far, in ns, a reading may lie from the time the producer would
    /// read at the same instant: 0 for a clock both read alike (the host's
    /// `CLOCK_MONOTONIC`); more for a copy of another CPU's calibration
    /// (`xen::clock::TimeFrameClock` of feature `xen`, without a stable TSC). A
    /// checker widens the bounds of P11 and D10 by it; R26 needs nothing,
    /// since it clamps negative intervals.
    fn uncertainty_ns(&self) -> u64 {
        0
    }
}

/// The host's `CLOCK_MONOTONIC` ([`TimeBase::HostMonotonic`]), read with
/// [`vstats_abi::clock::monotonic_ns`], the very function file-backed
/// producers stamp their tables with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostMonotonic;

impl Clock for HostMonotonic {
    /// `CLOCK_MONOTONIC` in ns; `None` when it cannot be read
    /// (`monotonic_ns` answers 0 then).
    fn now_ns(&self) -> Option<u64> {
        let now = vstats_abi::clock::monotonic_ns();
        (now != 0).then_some(now)
    }
}

/// "Now" in `base`, read once: [`HostMonotonic`] for
/// [`TimeBase::HostMonotonic`]; with the feature `xen`, the process's one
/// `xen::clock::XenSystemClock` (opened on first use, see
/// [`xen_clock_unavailable`]) for [`TimeBase::XenSystem`]; `None` for
/// other bases, and when the clock cannot be read. What
/// [`crate::Snapshot::taken_at_ns`] is stamped with, after the copy.
pub fn now_in(base: TimeBase) -> Option<u64> {
    match base {
        TimeBase::HostMonotonic => HostMonotonic.now_ns(),
        #[cfg(feature = "xen")]
        TimeBase::XenSystem => xen_clock().ok().and_then(Clock::now_ns),
        _ => None,
    }
}

/// The process's Xen system clock, opened once (the outcome is kept,
/// success or failure: a host without libxenctrl does not retry at every
/// snapshot).
#[cfg(feature = "xen")]
fn xen_clock() -> std::result::Result<&'static crate::xen::clock::XenSystemClock, &'static str> {
    static CLOCK: std::sync::OnceLock<
        std::result::Result<crate::xen::clock::XenSystemClock, String>,
    > = std::sync::OnceLock::new();
    CLOCK
        .get_or_init(|| crate::xen::clock::XenSystemClock::open().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(String::as_str)
}

/// Why Xen system time cannot be read in this process (the
/// `xen::clock::XenSystemClock::open` error, as text; the clock
/// is opened here if no snapshot did yet), `None` when it can be. Without
/// the feature `xen`: always "built without the xen feature". For a front end's one-line notice
/// that times are "as of the last state change".
pub fn xen_clock_unavailable() -> Option<&'static str> {
    #[cfg(feature = "xen")]
    {
        xen_clock().err()
    }
    #[cfg(not(feature = "xen"))]
    {
        Some("built without the xen feature")
    }
}

/// The up-to-date runstate of a record (R26) at `now_ns`, in the record's
/// table clock: [`crate::RecordView::up_to_date_at`]. For `now_ns`, pass
/// the snapshot's [`crate::Snapshot::taken_at_ns`] (read after the copy),
/// or call [`crate::RecordView::up_to_date`], which does.
pub fn up_to_date<'a>(rec: impl Into<crate::RecordView<'a>>, now_ns: Option<u64>) -> Runstate {
    rec.into().up_to_date_at(now_ns)
}

/// A word as a value: `Some` when active (R14: top bit clear).
fn active(word: u64) -> Option<u64> {
    is_active(word).then_some(word)
}

/// A vCPU's runstate as of an instant: the current state, when it was
/// entered, and the four times brought up to that instant when possible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Runstate {
    /// The current state (`runstate`, byte 40 of an r3 record): 0 running,
    /// 1 runnable, 2 blocked, 3 offline, or another active value kept as
    /// read (then nothing is extrapolated). `None` when inactive or when
    /// the record has no such word (r1/r2).
    pub state: Option<u64>,
    /// When the current state was entered, in the table's clock
    /// (`runstate_entry_time`, byte 48); `None` when inactive or absent.
    pub entry_ns: Option<u64>,
    /// The four times (ns, Xen's order), with the open interval since
    /// [`Runstate::entry_ns`] added to the current state's when
    /// [`Runstate::extrapolated`]; `None` when inactive, or when that sum
    /// reaches 2^63 (an inactive value).
    pub times_ns: [Option<u64>; RUNSTATE_COUNT],
    /// Whether the open interval was added (design 4.3): false for the
    /// record's times as of the last state change.
    pub extrapolated: bool,
    /// Whether `now` was before [`Runstate::entry_ns`] (clocks that
    /// disagree): the interval was clamped to 0.
    pub clamped: bool,
}

impl Runstate {
    /// The normative computation of R26 (design 4.3) over a record's raw
    /// words: `times` (bytes 8..40), `state` (byte 40) and `entry`
    /// (byte 48), the table's time base, and `now_ns` in that base, read
    /// after the record was copied (`None`: unreadable).
    ///
    /// Extrapolates only when the base is named (1 or 2), `now_ns` is
    /// `Some` and active, and `state`, `entry` and `times[state]` are
    /// active with `state <= 3`. A `now_ns` before `entry` adds 0
    /// ([`Runstate::clamped`]); a sum of 2^63 or more reads as inactive
    /// (`None`).
    pub fn from_words(
        times: [u64; RUNSTATE_COUNT],
        state: u64,
        entry: u64,
        base: TimeBase,
        now_ns: Option<u64>,
    ) -> Runstate {
        let mut r = Runstate {
            state: active(state),
            entry_ns: active(entry),
            times_ns: times.map(active),
            extrapolated: false,
            clamped: false,
        };
        let now = now_ns.and_then(active).filter(|_| base.is_named());
        let (Some(now), Some(s), Some(e)) = (now, r.state, r.entry_ns) else {
            return r;
        };
        let Some(i) = usize::try_from(s).ok().filter(|&i| i < RUNSTATE_COUNT) else {
            return r;
        };
        let Some(t) = r.times_ns[i] else {
            return r;
        };
        let open = match now.checked_sub(e) {
            Some(d) => d,
            None => {
                r.clamped = true;
                0
            }
        };
        r.times_ns[i] = active(t.saturating_add(open));
        r.extrapolated = true;
        r
    }

    /// A record without `runstate` and `runstate_entry_time` (r1, r2, or
    /// an r3 table whose `size` stops before them): the times as read,
    /// never extrapolated.
    pub fn from_times(times: [u64; RUNSTATE_COUNT]) -> Runstate {
        Runstate {
            state: None,
            entry_ns: None,
            times_ns: times.map(active),
            extrapolated: false,
            clamped: false,
        }
    }

    /// The current state's short name (`"running"`, `"runnable"`,
    /// `"blocked"`, `"offline"`), `None` when absent or unknown.
    pub fn state_name(&self) -> Option<&'static str> {
        const NAMES: [&str; RUNSTATE_COUNT] = ["running", "runnable", "blocked", "offline"];
        NAMES.get(usize::try_from(self.state?).ok()?).copied()
    }
}

/// What the computations of one reader did, for its diagnostics: how many
/// records were extrapolated, how many were not, and how often clocks
/// disagreed (`now` before the entry time, clamped) or a sum saturated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// Records brought up to date.
    pub extrapolated: u64,
    /// Records reported as of their last state change.
    pub not_extrapolated: u64,
    /// Of the extrapolated, those whose `now` was before the entry time
    /// (the interval clamped to 0).
    pub clamped: u64,
    /// Of the extrapolated, those whose current state's time reached 2^63
    /// and reads as inactive.
    pub saturated: u64,
}

impl Diagnostics {
    /// Counts one computation's outcome.
    pub fn count(&mut self, r: &Runstate) {
        if r.extrapolated {
            self.extrapolated += 1;
            self.clamped += u64::from(r.clamped);
            let current = r
                .state
                .and_then(|s| usize::try_from(s).ok())
                .and_then(|i| r.times_ns.get(i));
            self.saturated += u64::from(current == Some(&None));
        } else {
            self.not_extrapolated += 1;
        }
    }

    /// [`Runstate::from_words`], counted.
    pub fn compute(
        &mut self,
        times: [u64; RUNSTATE_COUNT],
        state: u64,
        entry: u64,
        base: TimeBase,
        now_ns: Option<u64>,
    ) -> Runstate {
        let r = Runstate::from_words(times, state, entry, base, now_ns);
        self.count(&r);
        r
    }
}

#[cfg(test)]
mod tests {
    use vstats_abi::record::{INACTIVE, INACTIVE_BIT};

    use super::*;

    const MONO: TimeBase = TimeBase::HostMonotonic;
    const TIMES: [u64; 4] = [1_000, 2_000, 3_000, 4_000];

    #[test]
    fn each_state_gets_the_open_interval_and_only_it() {
        for base in [TimeBase::HostMonotonic, TimeBase::XenSystem] {
            for s in 0..4u64 {
                let r = Runstate::from_words(TIMES, s, 10_000, base, Some(10_250));
                let mut want = TIMES.map(Some);
                want[s as usize] = Some(TIMES[s as usize] + 250);
                assert_eq!(r.times_ns, want, "state {s} base {base:?}");
                assert!(r.extrapolated && !r.clamped);
                assert_eq!((r.state, r.entry_ns), (Some(s), Some(10_000)));
            }
        }
        // now == e: nothing to add, but extrapolated all the same.
        let r = Runstate::from_words(TIMES, 2, 10_000, MONO, Some(10_000));
        assert_eq!(r.times_ns, TIMES.map(Some));
        assert!(r.extrapolated && !r.clamped);
    }

    #[test]
    fn state_names() {
        let name = |s| Runstate::from_words(TIMES, s, 0, MONO, Some(1)).state_name();
        assert_eq!(
            [0, 1, 2, 3, 4].map(name),
            [
                Some("running"),
                Some("runnable"),
                Some("blocked"),
                Some("offline"),
                None
            ]
        );
        assert_eq!(Runstate::from_times(TIMES).state_name(), None);
    }

    #[test]
    fn an_inactive_state_or_entry_is_not_extrapolated() {
        for (state, entry) in [
            (INACTIVE, 10),
            (1, INACTIVE),
            (INACTIVE_BIT, 10),
            (1, INACTIVE_BIT | 10),
        ] {
            let r = Runstate::from_words(TIMES, state, entry, MONO, Some(100));
            assert_eq!(r.times_ns, TIMES.map(Some), "{state:#x} {entry:#x}");
            assert!(!r.extrapolated);
            assert_eq!(r.state, active(state));
            assert_eq!(r.entry_ns, active(entry));
        }
        let r = Runstate::from_words(TIMES, INACTIVE, INACTIVE, MONO, Some(100));
        assert_eq!((r.state, r.entry_ns), (None, None));
    }

    #[test]
    fn an_inactive_current_time_is_not_extrapolated_the_others_stay() {
        let mut t = TIMES;
        t[1] = INACTIVE;
        let r = Runstate::from_words(t, 1, 10, MONO, Some(100));
        assert!(!r.extrapolated);
        assert_eq!(r.times_ns, [Some(1_000), None, Some(3_000), Some(4_000)]);
        // Another state's inactive time does not stop the current one.
        let r = Runstate::from_words(t, 0, 10, MONO, Some(100));
        assert!(r.extrapolated);
        assert_eq!(r.times_ns, [Some(1_090), None, Some(3_000), Some(4_000)]);
    }

    #[test]
    fn an_unknown_state_is_kept_and_not_extrapolated() {
        for s in [4, 5, 255, 256, INACTIVE_BIT - 1] {
            let r = Runstate::from_words(TIMES, s, 10, MONO, Some(100));
            assert_eq!(r.state, Some(s));
            assert_eq!(r.times_ns, TIMES.map(Some));
            assert!(!r.extrapolated);
        }
    }

    #[test]
    fn no_clock_reading_is_not_extrapolated() {
        for now in [None, Some(INACTIVE), Some(INACTIVE_BIT)] {
            let r = Runstate::from_words(TIMES, 0, 10, MONO, now);
            assert!(!r.extrapolated, "{now:?}");
            assert_eq!(r.times_ns, TIMES.map(Some));
            assert_eq!((r.state, r.entry_ns), (Some(0), Some(10)));
        }
    }

    #[test]
    fn now_before_entry_is_clamped_and_counted() {
        let mut d = Diagnostics::default();
        let r = d.compute(TIMES, 3, 10_000, TimeBase::XenSystem, Some(9_999));
        assert!(r.extrapolated && r.clamped);
        assert_eq!(r.times_ns, TIMES.map(Some), "never negative");
        let r = d.compute(TIMES, 3, 10_000, TimeBase::XenSystem, Some(10_001));
        assert!(!r.clamped);
        assert_eq!(r.times_ns[3], Some(4_001));
        assert_eq!(
            d,
            Diagnostics {
                extrapolated: 2,
                not_extrapolated: 0,
                clamped: 1,
                saturated: 0
            }
        );
    }

    #[test]
    fn a_sum_that_reaches_the_top_bit_is_inactive() {
        let mut d = Diagnostics::default();
        let top = INACTIVE_BIT - 1;
        let mut t = TIMES;
        t[0] = top - 5;
        // Exactly 2^63 - 1: still a value.
        let r = d.compute(t, 0, 100, MONO, Some(105));
        assert_eq!(r.times_ns[0], Some(top));
        // 2^63: inactive.
        let r = d.compute(t, 0, 100, MONO, Some(106));
        assert!(r.extrapolated);
        assert_eq!(r.times_ns, [None, Some(2_000), Some(3_000), Some(4_000)]);
        // Far past it: saturates, never wraps to a small number.
        let r = d.compute(t, 0, 0, MONO, Some(top));
        assert_eq!(r.times_ns[0], None);
        assert_eq!((d.extrapolated, d.saturated, d.clamped), (3, 2, 0));
    }

    #[test]
    fn clock_zero_and_unknown_clocks_are_not_extrapolated() {
        let mut d = Diagnostics::default();
        for clock in [0, 3, 7, u32::MAX] {
            let r = d.compute(TIMES, 0, 10, TimeBase::from_clock(clock), Some(100));
            assert!(!r.extrapolated, "clock {clock}");
            assert_eq!(r.times_ns, TIMES.map(Some));
        }
        assert_eq!((d.extrapolated, d.not_extrapolated), (0, 4));
    }

    #[test]
    fn clock_words_round_trip() {
        assert_eq!(TimeBase::from_clock(0), TimeBase::Unnamed);
        assert_eq!(TimeBase::from_clock(1), TimeBase::HostMonotonic);
        assert_eq!(TimeBase::from_clock(2), TimeBase::XenSystem);
        assert_eq!(TimeBase::from_clock(3), TimeBase::Unknown(3));
        for c in [0, 1, 2, 3, 99, u32::MAX] {
            assert_eq!(TimeBase::from_clock(c).clock(), c);
        }
        let named = [0, 1, 2, 3].map(|c| TimeBase::from_clock(c).is_named());
        assert_eq!(named, [false, true, true, false]);
    }

    #[test]
    fn r2_records_are_never_extrapolated() {
        let mut t = TIMES;
        t[2] = INACTIVE;
        let r = Runstate::from_times(t);
        assert_eq!(
            r,
            Runstate {
                state: None,
                entry_ns: None,
                times_ns: [Some(1_000), Some(2_000), None, Some(4_000)],
                extrapolated: false,
                clamped: false,
            }
        );
        let mut d = Diagnostics::default();
        d.count(&r);
        assert_eq!(d.not_extrapolated, 1);
    }

    #[test]
    fn host_monotonic_reads_the_producers_clock() {
        let a = vstats_abi::clock::monotonic_ns();
        let b = HostMonotonic.now_ns().expect("CLOCK_MONOTONIC is readable");
        let c = vstats_abi::clock::monotonic_ns();
        assert!(a <= b && b <= c, "{a} {b} {c}");
    }
}
