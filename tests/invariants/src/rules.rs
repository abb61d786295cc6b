//! The rules the checker reports on: the spec's numbered rules that can be
//! checked on a table (R1-R13, R16-R18, P1, P4, P7, P8, P9) and the
//! dynamic rules (D1-D8), each of which enforces spec rules that can only
//! be seen over time. `tests/invariants/README.md` says how each is
//! checked; [`Rule::spec`] says which rules of `docs/abi.md` it enforces.

/// When a rule is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum When {
    /// Once per attachment, on the table as published.
    Static,
    /// At every sample.
    Dynamic,
    /// Never by attaching: the reason is in [`Rule::how`].
    NotObservable,
}

/// One rule of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// `"R1"` ... `"P9"`, `"D1"` ... `"D8"`.
    pub id: &'static str,
    /// One line: what must hold.
    pub title: &'static str,
    /// The rules of `docs/abi.md` it enforces.
    pub spec: &'static str,
    /// When it is checked.
    pub when: When,
    /// How the checker checks it.
    pub how: &'static str,
}

const fn r(
    id: &'static str,
    title: &'static str,
    spec: &'static str,
    when: When,
    how: &'static str,
) -> Rule {
    Rule {
        id,
        title,
        spec,
        when,
        how,
    }
}

/// Every rule, in report order.
pub const RULES: &[Rule] = &[
    r("R1", "the mapping holds the 16-byte header", "R1", When::Static, "vstats_abi::validate"),
    r("R2", "magic is a table magic of this revision", "R2", When::Static, "vstats_abi::validate"),
    r("R3", "offset >= 16", "R3", When::Static, "vstats_abi::validate"),
    r("R4", "size >= 8 and size % 8 == 0", "R4", When::Static, "vstats_abi::validate"),
    r("R5", "stride >= size", "R5", When::Static, "vstats_abi::validate"),
    r("R6", "offset and stride are multiples of 8", "R6", When::Static, "vstats_abi::validate"),
    r("R7", "offset + nr_records * stride <= mapping length", "R7", When::Static, "vstats_abi::validate"),
    r("R8", "no record crosses a page boundary", "R8", When::Static, "vstats_abi::validate"),
    r("R9", "extension header well formed", "R9", When::Static, "vstats_abi::validate"),
    r("R10", "descriptor array inside [16 + ext_size, offset), aligned", "R10", When::Static, "vstats_abi::validate"),
    r("R11", "descriptor names terminated, printable, padded, unique", "R11", When::Static, "vstats_abi::validate"),
    r("R12", "descriptor kinds, units, bases known; exponent fits unit; count and bucket size fit kind", "R12", When::Static, "vstats_abi::validate"),
    r("R13", "each counter inside the record, aligned, no overlap; standard names at their offsets", "R13", When::Static, "vstats_abi::validate"),
    r("R18", "a domain table has exactly one record", "R18", When::Static, "vstats_abi::validate"),
    r("R16", "a used vCPU slot has its running time active", "R16", When::Dynamic, "every consistent vCPU record with an active counter has runstate_running_time active (when abi_size reaches it)"),
    r("R17", "standard fields inside abi_size are described as the standard says", "R17, section 7", When::Static, "a descriptor at a standard field's offset inside abi_size has the standard name, kind, unit, base and exponent (a standard name elsewhere is R13)"),
    r("P1", "reserved head bytes are zero", "P1", When::Static, "vstats_abi::validate::first_nonzero_reserved on the validated head"),
    r("P4", "padding, unused slots and every _pad hold the inactive marker", "P4", When::Static, "every byte of the record area outside [start + 8, start + size) of each record and outside the seq words is all ones when attaching"),
    r("P7", "publication order (magic last, after a release barrier)", "P7", When::NotObservable, "not observable once published; the checker copies the head with the acquire pairing P7 relies on (magic first, then an acquire fence)"),
    r("P8", "the producer never trusts what it reads back from the table", "P8", When::NotObservable, "needs writing into the table, which the checker never does; proven by tests/faults.rs (a_scribbling_consumer_cannot_mislead_the_producer, a_scribbling_process_cannot_mislead_a_producer_process)"),
    r("P9", "the producer writes record i at offset + i * stride, where readers read it", "P9", When::Dynamic, "bytes outside the records that change at offset + i * size (the RFC v3 writer's address for vCPU i) while record i's own seq never moves"),
    r("D1", "seq only grows (modulo 2^32), with every update", "P5, section 5.1", When::Dynamic, "each record's seq (consistent or busy) never steps backwards (serial-number arithmetic), and two consistent reads with one seq hold the same counters"),
    r("D2", "seq is even at rest: odd no longer than the bound", "P5, section 5.5", When::Dynamic, "a record the consumer reports busy with the same odd seq in consecutive samples spanning the odd bound"),
    r("D3", "cumulative counters never decrease", "P6, R15", When::Dynamic, "each active cumulative scalar, between consistent reads of one record life"),
    r("D4", "peak counters never decrease", "P6", When::Dynamic, "each active peak scalar, between consistent reads of one record life"),
    r("D5", "an inactive counter word holds the canonical marker", "R14, R15, P6", When::Dynamic, "every counter word of a consistent read with its top bit set is all ones"),
    r("D6", "the header, extension header, descriptors and reserved bytes never change", "P2", When::Dynamic, "every u32 of [0, offset) equals the validated copy (a restart with a new generation re-attaches instead)"),
    r("D7", "no byte outside the records' seq and counters ever changes", "P3", When::Dynamic, "every word outside [start, start + 4) and [start + 8, start + size) of each record, in [offset, mapping length), equals its value when attaching"),
    r("D8", "a restarted producer publishes a new generation", "section 10", When::Dynamic, "when the file is replaced or the table re-initialised, the new generation differs from every earlier one"),
];

/// The rule with id `id`.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// The order in which `vstats_abi::validate` checks the header rules: when
/// it reports rule k, the rules before k in this list passed and those
/// after it were not checked. Two exceptions the checker handles: part of
/// R7 (`offset <= mapping length`) is checked before R9, so an R7 failure
/// leaves R9 and R10 unchecked; and validate interleaves R11 to R13 per
/// descriptor, so when it stops at one of them the checker runs every
/// descriptor check itself.
pub const VALIDATE_ORDER: &[&str] = &[
    "R1", "R2", "R3", "R4", "R5", "R6", "R9", "R10", "R7", "R8", "R18", "R11", "R12", "R13",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_validate_order_is_complete() {
        for (i, a) in RULES.iter().enumerate() {
            assert!(RULES[i + 1..].iter().all(|b| b.id != a.id), "{}", a.id);
        }
        for id in VALIDATE_ORDER {
            assert_eq!(rule(id).map(|r| r.when), Some(When::Static), "{id}");
        }
    }
}
