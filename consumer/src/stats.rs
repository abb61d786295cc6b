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

/// A histogram's distribution in a few numbers, for a compact display:
/// the count and the upper bounds of the buckets holding the 50th, 90th
/// and 99th percentiles ([`Distribution::of`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Distribution {
    /// Values counted (the sum of the buckets, saturating).
    pub count: u64,
    /// Upper bound of the bucket of the median, raw units; `None` when
    /// nothing was counted. [`f64::INFINITY`] for the last bucket of a
    /// linear histogram, which also counts everything above it.
    pub p50: Option<f64>,
    /// Upper bound of the bucket of the 90th percentile.
    pub p90: Option<f64>,
    /// Upper bound of the bucket of the 99th percentile.
    pub p99: Option<f64>,
}

/// The exclusive upper bound of bucket `i` of `buckets` of a histogram of
/// `kind`, raw units (rule R28): a log2 histogram's bucket 0 counts 0
/// (bound 1) and bucket `i >= 1` counts `[2^(i-1), 2^i)` (bound `2^i`); a
/// linear histogram's bucket `i` counts `[i * size, (i + 1) * size)`. In
/// both, the last bucket is open-ended: it counts everything from its
/// lower bound up, as KVM clamps the index (bound infinity). `None` for
/// other kinds.
pub fn bucket_bound(kind: crate::Kind, bucket_size: u32, i: usize, buckets: usize) -> Option<f64> {
    match kind {
        crate::Kind::LOG2_HIST | crate::Kind::LINEAR_HIST if i + 1 >= buckets => {
            Some(f64::INFINITY)
        }
        crate::Kind::LOG2_HIST => Some(2f64.powi(i32::try_from(i).unwrap_or(i32::MAX))),
        crate::Kind::LINEAR_HIST => Some((i as f64 + 1.0) * f64::from(bucket_size)),
        _ => None,
    }
}

impl Distribution {
    /// The distribution of `buckets`, the buckets of histogram counter `c`
    /// (as [`RecordView::histogram`](crate::RecordView::histogram) reads them, or their difference
    /// between two readings: [`histogram_delta`]); `None` when `c` is not
    /// a histogram.
    pub fn of(c: &Counter, buckets: &[u64]) -> Option<Distribution> {
        let kind = c.kind();
        bucket_bound(kind, c.bucket_size(), 0, buckets.len())?;
        let count = buckets.iter().fold(0u64, |s, &b| s.saturating_add(b));
        let quantile = |q: f64| -> Option<f64> {
            if count == 0 {
                return None;
            }
            // The rank of the q-th value, 1-based: ceil(q * count).
            let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
            let mut seen = 0u64;
            for (i, &b) in buckets.iter().enumerate() {
                seen = seen.saturating_add(b);
                if seen >= rank {
                    return bucket_bound(kind, c.bucket_size(), i, buckets.len());
                }
            }
            None
        };
        Some(Distribution {
            count,
            p50: quantile(0.5),
            p90: quantile(0.9),
            p99: quantile(0.99),
        })
    }
}

/// A histogram's change between two readings, bucket by bucket; `None`
/// when the bucket counts differ or a bucket went down (a producer reset).
pub fn histogram_delta(prev: &[u64], cur: &[u64]) -> Option<Vec<u64>> {
    if prev.len() != cur.len() {
        return None;
    }
    prev.iter()
        .zip(cur)
        .map(|(&p, &c)| c.checked_sub(p))
        .collect()
}

/// Eight levels of a sparkline, lowest first.
const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A sparkline of `buckets`, one character per bucket from the first to
/// the last non-empty one: a space for an empty bucket, else one of eight
/// block heights scaled to the fullest bucket. Empty when every bucket is.
pub fn sparkline(buckets: &[u64]) -> String {
    let max = buckets.iter().copied().max().unwrap_or(0);
    let (Some(first), Some(last)) = (
        buckets.iter().position(|&b| b > 0),
        buckets.iter().rposition(|&b| b > 0),
    ) else {
        return String::new();
    };
    buckets[first..=last]
        .iter()
        .map(|&b| {
            if b == 0 {
                ' '
            } else {
                // 1..=8 for b in 1..=max, by b / max.
                let level = (b as f64 / max as f64 * 8.0).ceil() as usize;
                SPARKS[level.clamp(1, 8) - 1]
            }
        })
        .collect()
}
