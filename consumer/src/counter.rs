//! Counters by name: what a record holds, from the table's descriptors or
//! from this revision's standard fields.

use vstats_abi::{desc::Descriptor, record::RECORD_PREFIX, Base, Kind, TableInfo, Unit};

/// Where a [`Counter`] was learnt from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The table's descriptor with this index.
    Descriptor(u32),
    /// A standard field this revision knows at a fixed offset (the table
    /// has no r2 descriptors: an RFC v3 producer, or any r3 table).
    Standard,
    /// The table's r3 descriptor with this index: a producer-specific
    /// counter, in the record's producer-specific area (keyed apart from
    /// the standard fields, whatever its name).
    Producer(u32),
}

/// One counter of a record: name, meaning and position.
///
/// Built by [`crate::Table`]; every counter of a table lies inside the
/// table's record `size` (and a standard one inside its `abi_size`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    name: Box<str>,
    kind: Kind,
    unit: Unit,
    base: Base,
    exponent: i8,
    offset: u32,
    count: u32,
    bucket_size: u32,
    source: Source,
}

impl Counter {
    /// Builds a counter from a descriptor, `None` if its name is not text
    /// or it does not lie inside `[8, limit)`.
    fn from_descriptor(d: &Descriptor, source: Source, limit: u32) -> Option<Counter> {
        let name = d.name_str()?;
        let end = d.byte_len()?.checked_add(d.offset)?;
        if d.offset < RECORD_PREFIX || d.offset % 8 != 0 || d.count == 0 || end > limit {
            return None;
        }
        Some(Counter {
            name: name.into(),
            kind: d.kind,
            unit: d.unit,
            base: d.base,
            exponent: d.exponent,
            offset: d.offset,
            count: d.count,
            bucket_size: d.bucket_size,
            source,
        })
    }

    /// A counter of `kind` with `count` words at offset 8, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests(name: &str, kind: Kind, count: u32, bucket_size: u32) -> Counter {
        Counter {
            name: name.into(),
            kind,
            unit: Unit::NONE,
            base: Base::POW10,
            exponent: 0,
            offset: RECORD_PREFIX,
            count,
            bucket_size,
            source: Source::Standard,
        }
    }

    /// The name (printable ASCII, unique in the table).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Cumulative, instant, peak or a histogram kind; unknown values are
    /// kept as they are.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The unit, before scaling.
    pub fn unit(&self) -> Unit {
        self.unit
    }

    /// The base of the scale.
    pub fn base(&self) -> Base {
        self.base
    }

    /// The exponent of the scale: a raw value means `raw * base^exponent`
    /// units.
    pub fn exponent(&self) -> i8 {
        self.exponent
    }

    /// `base^exponent` as a float: multiply a raw value (or a rate) by it
    /// to get [`Counter::unit`]s (1e-9 for nanoseconds).
    pub fn scale(&self) -> f64 {
        f64::from(self.base.0).powi(i32::from(self.exponent))
    }

    /// Byte offset of the first word in the record (>= 8, a multiple of 8).
    pub fn offset(&self) -> u32 {
        self.offset
    }

    /// Number of 64-bit words: 1 for a scalar, the bucket count for a
    /// histogram.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Width of a bucket of a linear histogram, 0 otherwise.
    pub fn bucket_size(&self) -> u32 {
        self.bucket_size
    }

    /// Whether the counter is a histogram (read it with
    /// [`crate::RecordSnapshot::histogram`]).
    pub fn is_histogram(&self) -> bool {
        self.kind.is_histogram()
    }

    /// Whether a decrease between two readings is an anomaly: true for
    /// cumulative and peak counters, which never go down while the
    /// producer lives.
    pub fn is_monotonic(&self) -> bool {
        self.kind == Kind::CUMULATIVE || self.kind == Kind::PEAK
    }

    /// Where the counter was learnt from.
    pub fn source(&self) -> Source {
        self.source
    }

    /// Index of the first word in a record's counter words (those after
    /// seq and pad).
    pub(crate) fn first_word(&self) -> usize {
        (self.offset.saturating_sub(RECORD_PREFIX) / 8) as usize
    }
}

/// The counters of a validated table: from its r2 descriptors when it has
/// some, otherwise the standard fields of this revision that fit its
/// `abi_size`; then, for an r3 table, the producer-specific counters its
/// r3 descriptors describe (design 3.10).
pub(crate) fn counters_of(info: &TableInfo, head: &[u8]) -> Vec<Counter> {
    let n = info.desc_count();
    if n > 0 {
        return (0..n)
            .filter_map(|i| {
                let d = info.descriptor(head, i)?;
                Counter::from_descriptor(&d, Source::Descriptor(i), info.header.size)
            })
            .collect();
    }
    let mut counters: Vec<Counter> = info
        .kind()
        .std_descriptors()
        .iter()
        .filter(|d| info.has_std_field(d.offset))
        .filter_map(|d| Counter::from_descriptor(d, Source::Standard, info.abi_size))
        .collect();
    // R20 held: each lies inside the producer-specific area, which ends
    // at the record's extent, and carries no standard name.
    counters.extend((0..info.xdesc_count).filter_map(|i| {
        let d = info.xdescriptor(head, i)?;
        Counter::from_descriptor(&d, Source::Producer(i), info.record_extent())
    }));
    counters
}
