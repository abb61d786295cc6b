//! What two snapshots, or many records, say together: deltas, rates and
//! aggregates.

use crate::{Counter, RecordView};

/// The change of a scalar counter between two readings of one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delta {
    /// `cur - prev`, the counter did not decrease.
    Value(u64),
    /// The counter is absent from either reading: not read consistently,
    /// outside the record, inactive (or overflowed), or a histogram.
    Absent,
    /// The counter went down. An anomaly for cumulative and peak counters
    /// ([`Counter::is_monotonic`]): the producer reset it without a new
    /// generation. Normal for instant counters (gauges).
    Decreased {
        /// The earlier value.
        from: u64,
        /// The later value.
        to: u64,
    },
    /// The readings are not of the same record life: another table
    /// (magic), another record index, another producer generation, or the
    /// record's seq went backwards (the producer restarted).
    Reset,
}

impl Delta {
    /// The value of [`Delta::Value`], `None` otherwise.
    pub fn value(self) -> Option<u64> {
        match self {
            Delta::Value(v) => Some(v),
            _ => None,
        }
    }
}

/// Whether `cur` comes after `prev` in seq order. Seq only grows, modulo
/// 2^32, so a step of less than 2^31 forwards is "after" (serial number
/// arithmetic, RFC 1982); more than 2^31 updates between two readings
/// would look like a restart.
fn seq_forward(prev: u32, cur: u32) -> bool {
    cur.wrapping_sub(prev) <= i32::MAX as u32
}

/// The change of scalar counter `c` from `prev` to `cur`, two readings of
/// the same record. See [`Delta`] for the cases, checked in this order:
/// `Absent` if either reading is not consistent, then `Reset`, then
/// `Absent` if the counter is absent from either, then `Value` or
/// `Decreased`.
pub fn delta<'p, 'c>(
    prev: impl Into<RecordView<'p>>,
    cur: impl Into<RecordView<'c>>,
    c: &Counter,
) -> Delta {
    let (prev, cur) = (prev.into(), cur.into());
    if !prev.is_consistent() || !cur.is_consistent() {
        return Delta::Absent;
    }
    if prev.magic() != cur.magic()
        || prev.index() != cur.index()
        || prev.generation() != cur.generation()
        || !seq_forward(prev.seq(), cur.seq())
    {
        return Delta::Reset;
    }
    match (prev.get(c), cur.get(c)) {
        (Some(from), Some(to)) => match to.checked_sub(from) {
            Some(d) => Delta::Value(d),
            None => Delta::Decreased { from, to },
        },
        _ => Delta::Absent,
    }
}

/// The rate of change of scalar counter `c` per second of
/// [`RecordView::taken`] time, in raw units (multiply by
/// [`Counter::scale`] for [`Counter::unit`]s: a running time in
/// nanoseconds times 1e-9 is the fraction of a CPU used).
///
/// `None` when [`delta`] is not a value, except that an instant counter's
/// decrease gives a negative rate; also `None` when the readings have no
/// timestamps or `cur` was not taken after `prev`.
pub fn rate<'p, 'c>(
    prev: impl Into<RecordView<'p>>,
    cur: impl Into<RecordView<'c>>,
    c: &Counter,
) -> Option<f64> {
    let (prev, cur) = (prev.into(), cur.into());
    let secs = cur
        .taken()?
        .checked_duration_since(prev.taken()?)?
        .as_secs_f64();
    if secs <= 0.0 {
        return None;
    }
    // u64 -> f64 rounds above 2^53; fine for a rate.
    match delta(prev, cur, c) {
        Delta::Value(d) => Some(d as f64 / secs),
        Delta::Decreased { from, to } if !c.is_monotonic() => Some(-((from - to) as f64) / secs),
        _ => None,
    }
}

/// A value an [`Aggregate`] can collect: `u64` counter values (summed
/// into a `u128`) or `f64` rates.
pub trait Summable: Copy + PartialEq {
    /// The type of the sum.
    type Sum: Copy + Default + PartialEq + std::fmt::Debug;
    /// Whether the value is zero.
    fn is_zero(self) -> bool;
    /// `sum + v`, saturating where the sum is an integer.
    fn add_to(self, sum: Self::Sum) -> Self::Sum;
    /// The smaller of two values.
    fn min_of(self, other: Self) -> Self;
    /// The larger of two values.
    fn max_of(self, other: Self) -> Self;
    /// `sum / n` as a float.
    fn mean(sum: Self::Sum, n: u32) -> f64;
}

impl Summable for u64 {
    /// Cannot overflow: at most 2^32 values of less than 2^64 each.
    type Sum = u128;
    fn is_zero(self) -> bool {
        self == 0
    }
    fn add_to(self, sum: u128) -> u128 {
        sum.saturating_add(u128::from(self))
    }
    fn min_of(self, other: u64) -> u64 {
        self.min(other)
    }
    fn max_of(self, other: u64) -> u64 {
        self.max(other)
    }
    fn mean(sum: u128, n: u32) -> f64 {
        // u128 -> f64 rounds; fine for an average.
        sum as f64 / f64::from(n)
    }
}

impl Summable for f64 {
    type Sum = f64;
    fn is_zero(self) -> bool {
        self == 0.0
    }
    fn add_to(self, sum: f64) -> f64 {
        sum + self
    }
    fn min_of(self, other: f64) -> f64 {
        self.min(other)
    }
    fn max_of(self, other: f64) -> f64 {
        self.max(other)
    }
    fn mean(sum: f64, n: u32) -> f64 {
        sum / f64::from(n)
    }
}

/// Values across records, as statsfs shows in its parent directories:
/// scalar counter values (`Aggregate<u64>`, the default) or their rates
/// (`Aggregate<f64>`). Collect it from any `Option<T>` values
/// (`None` = absent), e.g. with [`crate::Snapshot::aggregate`] or from
/// [`Delta::value`]s.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Aggregate<T: Summable = u64> {
    /// Values present.
    pub present: u32,
    /// Values absent.
    pub absent: u32,
    /// Present values that are zero.
    pub zero: u32,
    /// Sum of the present values (for `u64`, a `u128` that cannot
    /// overflow: at most 2^32 values of less than 2^64 each).
    pub sum: T::Sum,
    /// Smallest present value.
    pub min: Option<T>,
    /// Largest present value.
    pub max: Option<T>,
}

impl<T: Summable + Eq> Eq for Aggregate<T> {}

impl<T: Summable> Default for Aggregate<T> {
    fn default() -> Aggregate<T> {
        Aggregate {
            present: 0,
            absent: 0,
            zero: 0,
            sum: T::Sum::default(),
            min: None,
            max: None,
        }
    }
}

impl<T: Summable> Aggregate<T> {
    /// Adds one value (`None`: absent).
    pub fn add(&mut self, v: Option<T>) {
        let Some(v) = v else {
            self.absent = self.absent.saturating_add(1);
            return;
        };
        self.present = self.present.saturating_add(1);
        if v.is_zero() {
            self.zero = self.zero.saturating_add(1);
        }
        self.sum = v.add_to(self.sum);
        self.min = Some(self.min.map_or(v, |m| m.min_of(v)));
        self.max = Some(self.max.map_or(v, |m| m.max_of(v)));
    }

    /// Mean of the present values, `None` when there are none.
    pub fn average(&self) -> Option<f64> {
        (self.present > 0).then(|| T::mean(self.sum, self.present))
    }
}

impl<T: Summable> FromIterator<Option<T>> for Aggregate<T> {
    fn from_iter<I: IntoIterator<Item = Option<T>>>(iter: I) -> Aggregate<T> {
        let mut a = Aggregate::default();
        for v in iter {
            a.add(v);
        }
        a
    }
}
