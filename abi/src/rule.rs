//! The rule catalogue: one definition of every numbered rule of
//! `docs/abi.md` (the validation rules R1-R23, the consumer rules R24-R28,
//! the producer's invariants P1-P15 and the layout rule L1) and of the
//! dynamic rules D1-D10 the invariant checker enforces over time, each
//! with its id and a one-line title.
//!
//! [`crate::Error::rule`] names the rule a validation error breaks,
//! [`crate::validate::violations`] lists the rules it checked.

use core::fmt;

/// Defines [`Rule`] and its tables from one line per rule: the id, the
/// title, and where `docs/abi.md` states it when that is not the rule's
/// own id.
macro_rules! rules {
    ($($id:ident => $title:literal $(, spec $spec:literal)?;)*) => {
        /// A rule of `docs/abi.md`, or a dynamic rule of the invariant checker.
        ///
        /// Not read from shared memory, so a Rust enum: unknown ids are refused by
        /// [`Rule::from_id`] rather than carried.
        ///
        /// # Examples
        ///
        /// ```
        /// use vstats_abi::Rule;
        ///
        /// assert_eq!(Rule::from_id("R7"), Some(Rule::R7));
        /// assert_eq!(Rule::R7.to_string(), "R7");
        /// assert!(Rule::R18.title().contains("one record"));
        /// ```
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Rule {
            $(
                #[doc = concat!(stringify!($id), ": ", $title, ".")]
                $id,
            )*
        }

        impl Rule {
            /// Every rule, in catalogue order (R, P, D, then L).
            pub const ALL: &'static [Rule] = &[$(Rule::$id),*];

            /// The rule's id: `"R1"` ... `"R28"`, `"P1"` ... `"P15"`, `"D1"` ...
            /// `"D10"`, `"L1"`.
            pub const fn id(self) -> &'static str {
                match self {
                    $(Rule::$id => stringify!($id),)*
                }
            }

            /// One line: what must hold.
            pub const fn title(self) -> &'static str {
                match self {
                    $(Rule::$id => $title,)*
                }
            }

            /// Where `docs/abi.md` states the rule: the rule itself for R, P and
            /// L rules (with a section where it says more), the spec rules a
            /// dynamic rule enforces for D rules.
            pub const fn spec(self) -> &'static str {
                match self {
                    $(Rule::$id => rules!(@spec $id $($spec)?),)*
                }
            }
        }
    };
    (@spec $id:ident) => { stringify!($id) };
    (@spec $id:ident $spec:literal) => { $spec };
}

rules! {
    R1 => "the mapping holds the 16-byte header";
    R2 => "the magic is 0xaabbccdd (vCPU table) or 0xd057a75e (domain table; 0xaabbccde is the legacy r2 domain magic)";
    R3 => "offset is at least the 16-byte header";
    R4 => "size is at least 8 and a multiple of 8";
    R5 => "stride is at least size";
    R6 => "offset and stride are multiples of 8";
    R7 => "the records (offset + nr_records * stride) fit in the mapping";
    R8 => "no record (with its producer-specific area) crosses a page boundary";
    R9 => "the extension header is well formed (its frozen marker is 0x31787376)";
    R10 => "the descriptor array lies inside [16 + ext_size, offset), aligned";
    R11 => "descriptor names are non-empty, NUL-terminated, printable ASCII, zero-padded and unique";
    R12 => "descriptor kinds, units and bases are known; the exponent fits the unit; count and bucket size fit the kind";
    R13 => "counters of the r2 descriptor array lie inside the record, aligned, and do not overlap; standard names sit at their offsets";
    R14 => "a counter word with its top bit set is inactive; all ones is the canonical marker";
    R15 => "a counter that would reach 2^63 becomes inactive";
    R16 => "a used vCPU slot has its running time active";
    R17 => "standard fields inside abi_size are described as the standard says", spec "R17, section 7";
    R18 => "a domain table has exactly one record";
    R19 => "the producer-specific area lies after the standard record, inside the stride and the page";
    R20 => "r3 descriptors lie in the head, describe only the producer-specific area and carry no standard name";
    R21 => "an r3 header has abi_size == size and no r2 descriptor array";
    R22 => "a vCPU table's record holds the running time (size >= 16); an r3 one the whole r3 record (size >= 56)";
    R23 => "a domain table has the extension header";
    R24 => "record i is vCPU id i";
    R25 => "in a used r3 vCPU slot, runstate is 0..3 and it and runstate_entry_time are active";
    R26 => "up-to-date runstate times: the current state's time plus now - entry in the table's clock";
    R27 => "a histogram with any inactive bucket is absent as a whole";
    R28 => "histogram bucket ranges; the last bucket is open-ended";
    P1 => "reserved head bytes are zero";
    P2 => "the header, extension header and descriptors never change after publication";
    P3 => "the producer writes nothing outside its records' seq and counters";
    P4 => "padding, unused slots and every _pad hold the inactive marker";
    P5 => "seq only grows, is even at rest, and odd only for one bounded update";
    P6 => "cumulative and peak counters never decrease; an overflowing counter becomes inactive";
    P7 => "publication order (magic last, after a release barrier)";
    P8 => "the producer never trusts what it reads back from the table";
    P9 => "the producer writes record i at offset + i * stride, where readers read it";
    P10 => "every existing vCPU's record is written before the table is first handed out";
    P11 => "times are accrued up to runstate_entry_time, which is not in the future of the producer's clock";
    P12 => "a histogram's buckets are active or inactive together";
    P13 => "the tail after the last slot reads as unused slots with seq 0", spec "P13, P4";
    P14 => "a resettable cumulative counter is continued, never published decreasing";
    P15 => "a retired table has every record unused before its magic is cleared";
    D1 => "seq only grows (modulo 2^32), with every update", spec "P5, section 5.1";
    D2 => "seq is even at rest: odd no longer than the bound", spec "P5, section 5.5";
    D3 => "cumulative counters never decrease", spec "P6, R15";
    D4 => "peak counters never decrease", spec "P6";
    D5 => "an inactive counter word holds the canonical marker", spec "R14, R15, P6";
    D6 => "the header, extension header, descriptors and reserved bytes never change", spec "P2";
    D7 => "no byte outside the records' seq and counters ever changes", spec "P3";
    D8 => "a restarted producer publishes a new generation", spec "section 10";
    D9 => "runstate_entry_time never decreases", spec "P11";
    D10 => "the sum of the up-to-date runstate times never decreases, and grows by at most the elapsed time", spec "R26, P11";
    L1 => "the layout parameters are in range", spec "section 8";
}

impl Rule {
    /// The rule with id `id` (as [`Rule::id`] spells it), `None` for an
    /// id this revision does not know.
    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.iter().copied().find(|r| r.id() == id)
    }

    /// Bit of the rule in a [`RuleSet`].
    const fn bit(self) -> u64 {
        1 << self as u8
    }
}

impl fmt::Display for Rule {
    /// The id (`R7`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A set of [`Rule`]s, without allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RuleSet(u64);

// Every rule has a bit. Past 64 rules, `RuleSet` becomes a `u128`.
const _: () = assert!(Rule::ALL.len() <= 64);

impl RuleSet {
    /// The empty set.
    pub const EMPTY: RuleSet = RuleSet(0);

    /// Adds `rule`.
    pub fn insert(&mut self, rule: Rule) {
        self.0 |= rule.bit();
    }

    /// Whether `rule` is in the set.
    pub const fn contains(self, rule: Rule) -> bool {
        self.0 & rule.bit() != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The rules in the set, in catalogue order.
    pub fn iter(self) -> impl Iterator<Item = Rule> {
        Rule::ALL.iter().copied().filter(move |r| self.contains(*r))
    }
}

impl FromIterator<Rule> for RuleSet {
    fn from_iter<I: IntoIterator<Item = Rule>>(iter: I) -> RuleSet {
        let mut s = RuleSet::EMPTY;
        for r in iter {
            s.insert(r);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        for (i, r) in Rule::ALL.iter().enumerate() {
            assert_eq!(Rule::from_id(r.id()), Some(*r));
            assert_eq!(*r as usize, i, "ALL is in declaration order");
            assert!(!r.title().is_empty() && !r.spec().is_empty());
        }
        assert_eq!(Rule::from_id("R99"), None);
        // Every validation rule has a summary of its own (the tool prints
        // it beside an "invalid table" message), not a pointer to the spec.
        for i in 1..=28 {
            let id = std::format!("R{i}");
            let rule = Rule::from_id(&id).unwrap();
            assert_eq!(std::string::ToString::to_string(&rule), id);
            assert!(!rule.title().contains("docs/abi.md"), "{id}");
        }
    }

    #[test]
    fn r3_rules_are_catalogued() {
        assert_eq!(Rule::ALL.len(), 54);
        let ids: std::vec::Vec<_> = Rule::ALL.iter().map(|r| r.id()).collect();
        for id in [
            "R19", "R20", "R21", "R22", "R23", "R24", "R25", "R26", "R27", "R28", "P10", "P11",
            "P12", "P13", "P14", "P15", "D9", "D10",
        ] {
            assert!(ids.contains(&id), "{id}");
        }
        // In the catalogue's order: after R18, P9 and D8 respectively.
        let pos = |r: Rule| Rule::ALL.iter().position(|x| *x == r).unwrap();
        assert_eq!(pos(Rule::R19), pos(Rule::R18) + 1);
        assert_eq!(pos(Rule::P10), pos(Rule::P9) + 1);
        assert_eq!(pos(Rule::D9), pos(Rule::D8) + 1);
        assert_eq!(pos(Rule::L1), Rule::ALL.len() - 1);
        let mut s = RuleSet::EMPTY;
        s.insert(Rule::L1);
        assert!(s.contains(Rule::L1) && !s.contains(Rule::D10));
    }

    #[test]
    fn sets_hold_rules() {
        let mut s = RuleSet::EMPTY;
        assert!(s.is_empty());
        s.insert(Rule::R7);
        s.insert(Rule::D8);
        assert!(s.contains(Rule::R7) && !s.contains(Rule::R8));
        assert!(s.iter().eq([Rule::R7, Rule::D8]));
        assert_eq!([Rule::D8, Rule::R7].into_iter().collect::<RuleSet>(), s);
    }
}
