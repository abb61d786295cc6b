//! The rule catalogue: one definition of every numbered rule of
//! `docs/abi.md` (the validation rules R1-R18, the producer's invariants
//! P1-P9 and the layout rule L1) and of the dynamic rules D1-D8 the
//! invariant checker enforces over time, each with its id and a one-line
//! title.
//!
//! [`crate::Error::rule`] names the rule a validation error breaks,
//! [`crate::validate::violations`] lists the rules it checked.

use core::fmt;

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
    /// R1: The mapping holds the 16-byte header.
    R1,
    /// R2: The magic is 0xaabbccdd (vCPU table) or 0xaabbccde (domain table).
    R2,
    /// R3: Offset is at least the 16-byte header.
    R3,
    /// R4: Size is at least 8 and a multiple of 8.
    R4,
    /// R5: Stride is at least size.
    R5,
    /// R6: Offset and stride are multiples of 8.
    R6,
    /// R7: The records (offset + nr_records * stride) fit in the mapping.
    R7,
    /// R8: No record crosses a page boundary.
    R8,
    /// R9: The extension header is well formed.
    R9,
    /// R10: The descriptor array lies inside [16 + ext_size, offset), aligned.
    R10,
    /// R11: Descriptor names are non-empty, NUL-terminated, printable ASCII, zero-padded and unique.
    R11,
    /// R12: Descriptor kinds, units and bases are known; the exponent fits the unit; count and bucket size fit the kind.
    R12,
    /// R13: Counters lie inside the record, aligned, and do not overlap; standard names sit at their offsets.
    R13,
    /// R14: A counter word with its top bit set is inactive; all ones is the canonical marker.
    R14,
    /// R15: A counter that would reach 2^63 becomes inactive.
    R15,
    /// R16: A used vCPU slot has its running time active.
    R16,
    /// R17: Standard fields inside abi_size are described as the standard says.
    R17,
    /// R18: A domain table has exactly one record.
    R18,
    /// P1: Reserved head bytes are zero.
    P1,
    /// P2: The header, extension header and descriptors never change after publication.
    P2,
    /// P3: The producer writes nothing outside its records' seq and counters.
    P3,
    /// P4: Padding, unused slots and every _pad hold the inactive marker.
    P4,
    /// P5: Seq only grows, is even at rest, and odd only for one bounded update.
    P5,
    /// P6: Cumulative and peak counters never decrease; an overflowing counter becomes inactive.
    P6,
    /// P7: Publication order (magic last, after a release barrier).
    P7,
    /// P8: The producer never trusts what it reads back from the table.
    P8,
    /// P9: The producer writes record i at offset + i * stride, where readers read it.
    P9,
    /// D1: Seq only grows (modulo 2^32), with every update.
    D1,
    /// D2: Seq is even at rest: odd no longer than the bound.
    D2,
    /// D3: Cumulative counters never decrease.
    D3,
    /// D4: Peak counters never decrease.
    D4,
    /// D5: An inactive counter word holds the canonical marker.
    D5,
    /// D6: The header, extension header, descriptors and reserved bytes never change.
    D6,
    /// D7: No byte outside the records' seq and counters ever changes.
    D7,
    /// D8: A restarted producer publishes a new generation.
    D8,
    /// L1: The layout parameters are in range.
    L1,
}

impl Rule {
    /// Every rule, in catalogue order (R, P, D, then L).
    pub const ALL: &'static [Rule] = &[
        Rule::R1,
        Rule::R2,
        Rule::R3,
        Rule::R4,
        Rule::R5,
        Rule::R6,
        Rule::R7,
        Rule::R8,
        Rule::R9,
        Rule::R10,
        Rule::R11,
        Rule::R12,
        Rule::R13,
        Rule::R14,
        Rule::R15,
        Rule::R16,
        Rule::R17,
        Rule::R18,
        Rule::P1,
        Rule::P2,
        Rule::P3,
        Rule::P4,
        Rule::P5,
        Rule::P6,
        Rule::P7,
        Rule::P8,
        Rule::P9,
        Rule::D1,
        Rule::D2,
        Rule::D3,
        Rule::D4,
        Rule::D5,
        Rule::D6,
        Rule::D7,
        Rule::D8,
        Rule::L1,
    ];

    /// The rule's id: `"R1"` ... `"R18"`, `"P1"` ... `"P9"`, `"D1"` ...
    /// `"D8"`, `"L1"`.
    pub const fn id(self) -> &'static str {
        match self {
            Rule::R1 => "R1",
            Rule::R2 => "R2",
            Rule::R3 => "R3",
            Rule::R4 => "R4",
            Rule::R5 => "R5",
            Rule::R6 => "R6",
            Rule::R7 => "R7",
            Rule::R8 => "R8",
            Rule::R9 => "R9",
            Rule::R10 => "R10",
            Rule::R11 => "R11",
            Rule::R12 => "R12",
            Rule::R13 => "R13",
            Rule::R14 => "R14",
            Rule::R15 => "R15",
            Rule::R16 => "R16",
            Rule::R17 => "R17",
            Rule::R18 => "R18",
            Rule::P1 => "P1",
            Rule::P2 => "P2",
            Rule::P3 => "P3",
            Rule::P4 => "P4",
            Rule::P5 => "P5",
            Rule::P6 => "P6",
            Rule::P7 => "P7",
            Rule::P8 => "P8",
            Rule::P9 => "P9",
            Rule::D1 => "D1",
            Rule::D2 => "D2",
            Rule::D3 => "D3",
            Rule::D4 => "D4",
            Rule::D5 => "D5",
            Rule::D6 => "D6",
            Rule::D7 => "D7",
            Rule::D8 => "D8",
            Rule::L1 => "L1",
        }
    }

    /// One line: what must hold.
    pub const fn title(self) -> &'static str {
        match self {
            Rule::R1 => "the mapping holds the 16-byte header",
            Rule::R2 => "the magic is 0xaabbccdd (vCPU table) or 0xaabbccde (domain table)",
            Rule::R3 => "offset is at least the 16-byte header",
            Rule::R4 => "size is at least 8 and a multiple of 8",
            Rule::R5 => "stride is at least size",
            Rule::R6 => "offset and stride are multiples of 8",
            Rule::R7 => "the records (offset + nr_records * stride) fit in the mapping",
            Rule::R8 => "no record crosses a page boundary",
            Rule::R9 => "the extension header is well formed",
            Rule::R10 => "the descriptor array lies inside [16 + ext_size, offset), aligned",
            Rule::R11 => "descriptor names are non-empty, NUL-terminated, printable ASCII, zero-padded and unique",
            Rule::R12 => "descriptor kinds, units and bases are known; the exponent fits the unit; count and bucket size fit the kind",
            Rule::R13 => "counters lie inside the record, aligned, and do not overlap; standard names sit at their offsets",
            Rule::R14 => "a counter word with its top bit set is inactive; all ones is the canonical marker",
            Rule::R15 => "a counter that would reach 2^63 becomes inactive",
            Rule::R16 => "a used vCPU slot has its running time active",
            Rule::R17 => "standard fields inside abi_size are described as the standard says",
            Rule::R18 => "a domain table has exactly one record",
            Rule::P1 => "reserved head bytes are zero",
            Rule::P2 => "the header, extension header and descriptors never change after publication",
            Rule::P3 => "the producer writes nothing outside its records' seq and counters",
            Rule::P4 => "padding, unused slots and every _pad hold the inactive marker",
            Rule::P5 => "seq only grows, is even at rest, and odd only for one bounded update",
            Rule::P6 => "cumulative and peak counters never decrease; an overflowing counter becomes inactive",
            Rule::P7 => "publication order (magic last, after a release barrier)",
            Rule::P8 => "the producer never trusts what it reads back from the table",
            Rule::P9 => "the producer writes record i at offset + i * stride, where readers read it",
            Rule::D1 => "seq only grows (modulo 2^32), with every update",
            Rule::D2 => "seq is even at rest: odd no longer than the bound",
            Rule::D3 => "cumulative counters never decrease",
            Rule::D4 => "peak counters never decrease",
            Rule::D5 => "an inactive counter word holds the canonical marker",
            Rule::D6 => "the header, extension header, descriptors and reserved bytes never change",
            Rule::D7 => "no byte outside the records' seq and counters ever changes",
            Rule::D8 => "a restarted producer publishes a new generation",
            Rule::L1 => "the layout parameters are in range",
        }
    }

    /// Where `docs/abi.md` states the rule: the rule itself for R, P and
    /// L rules (with a section where it says more), the spec rules a
    /// dynamic rule enforces for D rules.
    pub const fn spec(self) -> &'static str {
        match self {
            Rule::R1 => "R1",
            Rule::R2 => "R2",
            Rule::R3 => "R3",
            Rule::R4 => "R4",
            Rule::R5 => "R5",
            Rule::R6 => "R6",
            Rule::R7 => "R7",
            Rule::R8 => "R8",
            Rule::R9 => "R9",
            Rule::R10 => "R10",
            Rule::R11 => "R11",
            Rule::R12 => "R12",
            Rule::R13 => "R13",
            Rule::R14 => "R14",
            Rule::R15 => "R15",
            Rule::R16 => "R16",
            Rule::R17 => "R17, section 7",
            Rule::R18 => "R18",
            Rule::P1 => "P1",
            Rule::P2 => "P2",
            Rule::P3 => "P3",
            Rule::P4 => "P4",
            Rule::P5 => "P5",
            Rule::P6 => "P6",
            Rule::P7 => "P7",
            Rule::P8 => "P8",
            Rule::P9 => "P9",
            Rule::D1 => "P5, section 5.1",
            Rule::D2 => "P5, section 5.5",
            Rule::D3 => "P6, R15",
            Rule::D4 => "P6",
            Rule::D5 => "R14, R15, P6",
            Rule::D6 => "P2",
            Rule::D7 => "P3",
            Rule::D8 => "section 10",
            Rule::L1 => "section 8",
        }
    }

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

// Every rule has a bit.
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
        for i in 1..=18 {
            let id = std::format!("R{i}");
            let rule = Rule::from_id(&id).unwrap();
            assert_eq!(std::string::ToString::to_string(&rule), id);
            assert!(!rule.title().contains("docs/abi.md"), "{id}");
        }
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
