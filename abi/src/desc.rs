//! Counter descriptors: what makes a table self-describing.
//!
//! The descriptor array lives in the header's reserved area, between the
//! extension header and record 0. Each entry names one counter of the
//! record and gives its unit, kind, scale and byte offset, in the spirit of
//! KVM's binary-stats descriptors (`struct kvm_stats_desc`) and QEMU's
//! `query-stats-schemas`. Written once before publication, never changed.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bytes of a descriptor's name field, NUL included (KVM's
/// `KVM_STATS_NAME_SIZE` on x86 is also 48, so KVM names always fit).
pub const NAME_LEN: usize = 48;
/// Size of [`Descriptor`] in bytes, as this revision defines it.
pub const DESCRIPTOR_SIZE: u32 = 64;

/// What a counter measures over time. A newtype, not an enum: values this
/// revision does not know survive a round trip and are reported, not lost.
#[repr(transparent)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct Kind(pub u8);

impl Kind {
    /// Only ever grows while the record exists (a rate makes sense).
    pub const CUMULATIVE: Kind = Kind(0);
    /// A current value that may go up or down (a gauge).
    pub const INSTANT: Kind = Kind(1);
    /// The highest value seen so far: never decreases.
    pub const PEAK: Kind = Kind(2);
    /// A histogram of `count` buckets, each `bucket_size` wide.
    pub const LINEAR_HIST: Kind = Kind(3);
    /// A histogram of `count` buckets, bucket i counting values in
    /// `[2^(i-1), 2^i)` (bucket 0 counts zeros), as KVM's log histograms.
    pub const LOG2_HIST: Kind = Kind(4);

    /// Whether this revision knows the kind.
    pub const fn is_known(self) -> bool {
        self.0 <= 4
    }

    /// Whether the kind is a histogram (more than one word allowed).
    pub const fn is_histogram(self) -> bool {
        self.0 == 3 || self.0 == 4
    }

    /// Lower-case name, `None` when unknown.
    pub const fn name(self) -> Option<&'static str> {
        match self.0 {
            0 => Some("cumulative"),
            1 => Some("instant"),
            2 => Some("peak"),
            3 => Some("linear-hist"),
            4 => Some("log2-hist"),
            _ => None,
        }
    }
}

/// The unit of a counter, before scaling by `base^exponent`.
#[repr(transparent)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct Unit(pub u8);

impl Unit {
    /// A plain count of events or things.
    pub const NONE: Unit = Unit(0);
    /// Bytes.
    pub const BYTES: Unit = Unit(1);
    /// Seconds (nanoseconds are `SECONDS` with base 10, exponent -9).
    pub const SECONDS: Unit = Unit(2);
    /// CPU clock cycles.
    pub const CYCLES: Unit = Unit(3);
    /// 0 or 1.
    pub const BOOLEAN: Unit = Unit(4);

    /// Whether this revision knows the unit.
    pub const fn is_known(self) -> bool {
        self.0 <= 4
    }

    /// Lower-case name, `None` when unknown.
    pub const fn name(self) -> Option<&'static str> {
        match self.0 {
            0 => Some("none"),
            1 => Some("bytes"),
            2 => Some("seconds"),
            3 => Some("cycles"),
            4 => Some("boolean"),
            _ => None,
        }
    }
}

/// The base of a counter's scale: the value means `raw * base^exponent`.
#[repr(transparent)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct Base(pub u8);

impl Base {
    /// Powers of ten (nanoseconds: exponent -9).
    pub const POW10: Base = Base(10);
    /// Powers of two (KiB: exponent 10).
    pub const POW2: Base = Base(2);

    /// Whether this revision knows the base.
    pub const fn is_known(self) -> bool {
        self.0 == 10 || self.0 == 2
    }
}

/// One counter's description, 64 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct Descriptor {
    /// NUL-terminated, NUL-padded name of printable ASCII, unique in the
    /// table.
    pub name: [u8; NAME_LEN],
    /// Byte offset of the counter's first word in the record: a multiple
    /// of 8, at least 8 (after seq and pad).
    pub offset: u32,
    /// Number of 64-bit words: 1 for scalars, the bucket count for
    /// histograms.
    pub count: u32,
    /// See [`Kind`].
    pub kind: Kind,
    /// See [`Unit`].
    pub unit: Unit,
    /// See [`Base`].
    pub base: Base,
    /// The value means `raw * base^exponent`.
    pub exponent: i8,
    /// Width of a bucket for [`Kind::LINEAR_HIST`], 0 otherwise.
    pub bucket_size: u32,
}
// size: 64 bytes

const _: () = {
    assert!(core::mem::size_of::<Descriptor>() == DESCRIPTOR_SIZE as usize);
    assert!(core::mem::offset_of!(Descriptor, name) == 0);
    assert!(core::mem::offset_of!(Descriptor, offset) == 48);
    assert!(core::mem::offset_of!(Descriptor, count) == 52);
    assert!(core::mem::offset_of!(Descriptor, kind) == 56);
    assert!(core::mem::offset_of!(Descriptor, unit) == 57);
    assert!(core::mem::offset_of!(Descriptor, base) == 58);
    assert!(core::mem::offset_of!(Descriptor, exponent) == 59);
    assert!(core::mem::offset_of!(Descriptor, bucket_size) == 60);
};

impl Descriptor {
    /// A scalar descriptor, for constant tables.
    ///
    /// # Panics
    ///
    /// When `name` is empty or does not fit [`NAME_LEN`] - 1 bytes; meant
    /// for `const` items, where that is a compile-time error.
    pub const fn scalar(
        name: &str,
        offset: u32,
        kind: Kind,
        unit: Unit,
        base: Base,
        exponent: i8,
    ) -> Descriptor {
        let bytes = name.as_bytes();
        assert!(
            !bytes.is_empty() && bytes.len() < NAME_LEN,
            "descriptor name length"
        );
        let mut n = [0u8; NAME_LEN];
        let mut i = 0;
        while i < bytes.len() {
            n[i] = bytes[i];
            i += 1;
        }
        Descriptor {
            name: n,
            offset,
            count: 1,
            kind,
            unit,
            base,
            exponent,
            bucket_size: 0,
        }
    }

    /// The name up to its NUL, `None` when it has none or is not ASCII.
    pub fn name_str(&self) -> Option<&str> {
        let end = self.name.iter().position(|&b| b == 0)?;
        core::str::from_utf8(&self.name[..end]).ok()
    }

    /// Byte length of the counter in the record (`8 * count`), `None` on
    /// overflow.
    pub const fn byte_len(&self) -> Option<u32> {
        self.count.checked_mul(8)
    }

    /// Checks every rule of one descriptor that does not involve the other
    /// descriptors; `index` is reported in errors, `record_size` is the
    /// header's `size`.
    ///
    /// # Errors
    ///
    /// The first rule broken, as a descriptor variant of [`crate::Error`].
    pub fn check_self(&self, index: u32, record_size: u32) -> crate::Result<()> {
        use crate::Error as E;
        let Some(end) = self.name.iter().position(|&b| b == 0) else {
            return Err(E::DescNameUnterminated { index });
        };
        if end == 0 {
            return Err(E::DescNameEmpty { index });
        }
        if let Some(at) = self.name[..end].iter().position(|b| !b.is_ascii_graphic()) {
            return Err(E::DescNameInvalid {
                index,
                at: at as u32,
            });
        }
        if let Some(at) = self.name[end..].iter().position(|&b| b != 0) {
            return Err(E::DescNameNotPadded {
                index,
                at: (end + at) as u32,
            });
        }
        if !self.kind.is_known() {
            return Err(E::DescUnknownKind {
                index,
                kind: self.kind.0,
            });
        }
        if !self.unit.is_known() {
            return Err(E::DescUnknownUnit {
                index,
                unit: self.unit.0,
            });
        }
        if !self.base.is_known() {
            return Err(E::DescUnknownBase {
                index,
                base: self.base.0,
            });
        }
        // The same exponent rules as Linux's KVM binary-stats selftest:
        // counts, bytes and cycles scale up, seconds scale down, booleans
        // do not scale.
        let exp_ok = match self.unit {
            Unit::SECONDS => self.exponent <= 0,
            Unit::BOOLEAN => self.exponent == 0,
            _ => self.exponent >= 0,
        };
        if !exp_ok {
            return Err(E::DescBadExponent {
                index,
                unit: self.unit.0,
                exponent: self.exponent,
            });
        }
        if self.count == 0 || (!self.kind.is_histogram() && self.count != 1) {
            return Err(E::DescBadCount {
                index,
                kind: self.kind.0,
                count: self.count,
            });
        }
        let bucket_ok = if self.kind == Kind::LINEAR_HIST {
            self.bucket_size > 0
        } else {
            self.bucket_size == 0
        };
        if !bucket_ok {
            return Err(E::DescBadBucketSize {
                index,
                bucket_size: self.bucket_size,
            });
        }
        if self.offset < 8 || self.offset % 8 != 0 {
            return Err(E::DescOffsetMisaligned {
                index,
                offset: self.offset,
            });
        }
        let fits = self
            .byte_len()
            .and_then(|len| self.offset.checked_add(len))
            .is_some_and(|end| end <= record_size);
        if !fits {
            return Err(E::DescOutsideRecord {
                index,
                offset: self.offset,
                count: self.count,
                size: record_size,
            });
        }
        Ok(())
    }
}

impl Descriptor {
    /// Starts describing a counter called `name`: by default one word, a
    /// cumulative count (unit none, base 10, exponent 0). The offset is
    /// given last, by [`DescriptorBuilder::at`] or by a table builder that
    /// places counters one after another.
    pub const fn builder(name: &str) -> DescriptorBuilder<'_> {
        DescriptorBuilder {
            name,
            count: 1,
            kind: Kind::CUMULATIVE,
            unit: Unit::NONE,
            base: Base::POW10,
            exponent: 0,
            bucket_size: 0,
        }
    }
}

/// A counter's description without its place in the record: named
/// setters, and the one way to build a descriptor at run time (constant
/// tables use [`Descriptor::scalar`]).
///
/// ```
/// use vstats_abi::desc::{Descriptor, Kind};
///
/// let d = Descriptor::builder("halt_wait_hist")
///     .histogram(Kind::LOG2_HIST, 32, 0)
///     .nanoseconds()
///     .at(48)
///     .unwrap();
/// assert_eq!((d.offset, d.count, d.exponent), (48, 32, -9));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct DescriptorBuilder<'n> {
    /// The counter's name.
    pub name: &'n str,
    /// Words (1 for a scalar, the bucket count of a histogram).
    pub count: u32,
    /// See [`Kind`].
    pub kind: Kind,
    /// See [`Unit`].
    pub unit: Unit,
    /// See [`Base`].
    pub base: Base,
    /// The value means `raw * base^exponent`.
    pub exponent: i8,
    /// Bucket width of a linear histogram.
    pub bucket_size: u32,
}

impl<'n> DescriptorBuilder<'n> {
    /// Sets the kind of a one-word counter (see [`Kind`]).
    pub const fn kind(self, kind: Kind) -> Self {
        DescriptorBuilder { kind, ..self }
    }

    /// Sets the unit (see [`Unit`]).
    pub const fn unit(self, unit: Unit) -> Self {
        DescriptorBuilder { unit, ..self }
    }

    /// Sets the scale: the value means `raw * base^exponent`.
    pub const fn scale(self, base: Base, exponent: i8) -> Self {
        DescriptorBuilder {
            base,
            exponent,
            ..self
        }
    }

    /// Nanoseconds: unit seconds, base 10, exponent -9.
    pub const fn nanoseconds(self) -> Self {
        self.unit(Unit::SECONDS).scale(Base::POW10, -9)
    }

    /// A histogram of `buckets` words (`bucket_size` is the width of a
    /// [`Kind::LINEAR_HIST`] bucket, 0 otherwise).
    pub const fn histogram(self, kind: Kind, buckets: u32, bucket_size: u32) -> Self {
        DescriptorBuilder {
            kind,
            count: buckets,
            bucket_size,
            ..self
        }
    }

    /// Sets the word count directly (as KVM's `size`).
    pub const fn count(self, count: u32) -> Self {
        DescriptorBuilder { count, ..self }
    }

    /// Sets the bucket width directly (as KVM's `bucket_size`).
    pub const fn bucket_size(self, bucket_size: u32) -> Self {
        DescriptorBuilder {
            bucket_size,
            ..self
        }
    }

    /// The descriptor with its first word at byte `offset` of the record,
    /// checked like a consumer would ([`Descriptor::check_self`], with no
    /// bound on the record size).
    ///
    /// # Errors
    ///
    /// [`crate::Error`] descriptor variants (index 0) when the name or the
    /// fields break a rule of the spec.
    pub fn at(&self, offset: u32) -> crate::Result<Descriptor> {
        let bytes = self.name.as_bytes();
        let mut name = [0u8; NAME_LEN];
        if bytes.len() >= NAME_LEN {
            return Err(crate::Error::DescNameUnterminated { index: 0 });
        }
        name[..bytes.len()].copy_from_slice(bytes);
        let d = Descriptor {
            name,
            offset,
            count: self.count,
            kind: self.kind,
            unit: self.unit,
            base: self.base,
            exponent: self.exponent,
            bucket_size: self.bucket_size,
        };
        d.check_self(0, u32::MAX)?;
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use zerocopy::IntoBytes;

    use super::*;
    use crate::Error;

    fn ns(name: &str, offset: u32) -> Descriptor {
        Descriptor::scalar(
            name,
            offset,
            Kind::CUMULATIVE,
            Unit::SECONDS,
            Base::POW10,
            -9,
        )
    }

    #[test]
    fn golden_descriptor_bytes() {
        let d = ns("runstate_running_time", 8);
        let b = d.as_bytes();
        assert_eq!(&b[..21], b"runstate_running_time");
        assert!(b[21..48].iter().all(|&x| x == 0));
        assert_eq!(&b[48..52], &8u32.to_ne_bytes());
        assert_eq!(&b[52..56], &1u32.to_ne_bytes());
        assert_eq!(&b[56..60], &[0, 2, 10, (-9i8) as u8]);
        assert_eq!(&b[60..64], &[0, 0, 0, 0]);
    }

    #[test]
    fn each_descriptor_rule_fails_on_purpose() {
        let ok = ns("x", 8);
        assert_eq!(ok.check_self(0, 16), Ok(()));
        let mut d = ok;
        d.name = [b'a'; NAME_LEN];
        assert_eq!(
            d.check_self(3, 16),
            Err(Error::DescNameUnterminated { index: 3 })
        );
        let mut d = ok;
        d.name[0] = 0;
        assert_eq!(d.check_self(0, 16), Err(Error::DescNameEmpty { index: 0 }));
        let mut d = ok;
        d.name[1] = b' ';
        d.name[2] = b'y';
        assert_eq!(
            d.check_self(0, 16),
            Err(Error::DescNameInvalid { index: 0, at: 1 })
        );
        let mut d = ok;
        d.name[5] = b'z';
        assert_eq!(
            d.check_self(0, 16),
            Err(Error::DescNameNotPadded { index: 0, at: 5 })
        );
        let mut d = ok;
        d.kind = Kind(9);
        assert_eq!(
            d.check_self(0, 16),
            Err(Error::DescUnknownKind { index: 0, kind: 9 })
        );
        let mut d = ok;
        d.unit = Unit(7);
        assert_eq!(
            d.check_self(0, 16),
            Err(Error::DescUnknownUnit { index: 0, unit: 7 })
        );
        let mut d = ok;
        d.base = Base(3);
        assert_eq!(
            d.check_self(0, 16),
            Err(Error::DescUnknownBase { index: 0, base: 3 })
        );
        let mut d = ok;
        d.exponent = 3;
        assert!(matches!(
            d.check_self(0, 16),
            Err(Error::DescBadExponent { .. })
        ));
        let mut d = ok;
        d.unit = Unit::BYTES;
        d.exponent = -1;
        assert!(matches!(
            d.check_self(0, 16),
            Err(Error::DescBadExponent { .. })
        ));
        let mut d = ok;
        d.unit = Unit::BOOLEAN;
        d.exponent = 1;
        assert!(matches!(
            d.check_self(0, 16),
            Err(Error::DescBadExponent { .. })
        ));
        let mut d = ok;
        d.count = 2;
        assert!(matches!(
            d.check_self(0, 32),
            Err(Error::DescBadCount { .. })
        ));
        let mut d = ok;
        d.kind = Kind::LOG2_HIST;
        d.count = 0;
        assert!(matches!(
            d.check_self(0, 32),
            Err(Error::DescBadCount { .. })
        ));
        let mut d = ok;
        d.kind = Kind::LINEAR_HIST;
        d.count = 2;
        assert!(matches!(
            d.check_self(0, 32),
            Err(Error::DescBadBucketSize { .. })
        ));
        d.bucket_size = 4;
        assert_eq!(d.check_self(0, 24), Ok(()));
        let mut d = ok;
        d.bucket_size = 1;
        assert!(matches!(
            d.check_self(0, 16),
            Err(Error::DescBadBucketSize { .. })
        ));
        let mut d = ok;
        d.offset = 4;
        assert!(matches!(
            d.check_self(0, 16),
            Err(Error::DescOffsetMisaligned { .. })
        ));
        let mut d = ok;
        d.offset = 12;
        assert!(matches!(
            d.check_self(0, 16),
            Err(Error::DescOffsetMisaligned { .. })
        ));
        let mut d = ok;
        d.offset = 16;
        assert!(matches!(
            d.check_self(0, 16),
            Err(Error::DescOutsideRecord { .. })
        ));
        let mut d = ok;
        d.kind = Kind::LOG2_HIST;
        d.count = u32::MAX;
        assert!(matches!(
            d.check_self(0, u32::MAX),
            Err(Error::DescOutsideRecord { .. })
        ));
    }

    #[test]
    fn runtime_constructor_checks() {
        assert!(Descriptor::builder("exits")
            .kind(Kind::CUMULATIVE)
            .unit(Unit::NONE)
            .scale(Base::POW10, 0)
            .at(8)
            .is_ok());
        let long = "a".repeat(NAME_LEN);
        assert!(Descriptor::builder(&long)
            .kind(Kind::CUMULATIVE)
            .unit(Unit::NONE)
            .scale(Base::POW10, 0)
            .at(8)
            .is_err());
        assert_eq!(ns("abc", 8).name_str(), Some("abc"));
    }
}
