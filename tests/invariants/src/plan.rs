//! The check plan: which rules of the catalogue ([`vstats_abi::Rule`]) the
//! checker reports on, when and how. The ids and titles are the
//! catalogue's; this module adds only what is particular to checking by
//! attaching: the static rules (R1-R13, R17-R23, P1, P4, P13, P7, P8,
//! P9), the rules checked per sample (R16, R24, R25, P9-P12, P15) and the
//! dynamic rules (D1-D10), each of which enforces spec rules that can only
//! be seen over time; the consumer rules R26-R28 are proven by the reading
//! fixtures of `tests/corpus.rs`. `tests/invariants/README.md` says more.

use vstats_abi::Rule;

/// When a rule is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum When {
    /// Once per attachment, on the table as published.
    Static,
    /// At every sample.
    Dynamic,
    /// Never by attaching: the reason is in [`Check::how`].
    NotObservable,
}

/// How the checker checks one rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check {
    /// The rule (its id, title and spec reference are the catalogue's).
    pub rule: Rule,
    /// When it is checked.
    pub when: When,
    /// How the checker checks it.
    pub how: &'static str,
}

const fn c(rule: Rule, when: When, how: &'static str) -> Check {
    Check { rule, when, how }
}

const VALIDATE: &str = "vstats_abi::validate::violations";

/// Every rule the report lists, in report order.
pub const PLAN: &[Check] = &[
    c(Rule::R1, When::Static, VALIDATE),
    c(Rule::R2, When::Static, VALIDATE),
    c(Rule::R3, When::Static, VALIDATE),
    c(Rule::R4, When::Static, VALIDATE),
    c(Rule::R5, When::Static, VALIDATE),
    c(Rule::R6, When::Static, VALIDATE),
    c(Rule::R7, When::Static, VALIDATE),
    c(Rule::R8, When::Static, VALIDATE),
    c(Rule::R9, When::Static, VALIDATE),
    c(Rule::R10, When::Static, VALIDATE),
    c(Rule::R11, When::Static, VALIDATE),
    c(Rule::R12, When::Static, VALIDATE),
    c(Rule::R13, When::Static, VALIDATE),
    c(Rule::R18, When::Static, VALIDATE),
    c(Rule::R19, When::Static, VALIDATE),
    c(Rule::R20, When::Static, VALIDATE),
    c(Rule::R21, When::Static, VALIDATE),
    c(Rule::R22, When::Static, "vstats_abi::validate::violations on an r3 table (size >= 56); on an r2 or RFC v3 vCPU table the checker's own size >= 16"),
    c(Rule::R23, When::Static, VALIDATE),
    c(Rule::R16, When::Dynamic, "every consistent vCPU record with an active counter has runstate_running_time active (when abi_size reaches it)"),
    c(Rule::R17, When::Static, "a descriptor at a standard field's offset inside abi_size has the standard name, kind, unit, base and exponent (a standard name elsewhere is R13); no descriptor carries the name of a standard field that lies past abi_size"),
    c(Rule::R24, When::Dynamic, "with the toolstack's vCPU count N (CheckOptions::vcpus, --vcpus N): no slot >= N is ever used"),
    c(Rule::R25, When::Dynamic, "every consistent, used slot of an r3 vCPU table has runstate active and in 0..3, and runstate_entry_time active"),
    c(Rule::R26, When::NotObservable, "a consumer rule: the reading fixture extrapolate-clock1 of tests/corpus.rs (a table and the expected up-to-date times at a fixed now)"),
    c(Rule::R27, When::NotObservable, "a consumer rule: the reading fixture histogram-one-inactive of tests/corpus.rs (expected: absent)"),
    c(Rule::R28, When::NotObservable, "a consumer rule: the reading fixture linear-histogram-last-bucket of tests/corpus.rs (expected bucket ranges)"),
    c(Rule::P1, When::Static, "vstats_abi::validate::first_nonzero_reserved on the validated head"),
    c(Rule::P4, When::Static, "every byte of the record area outside [start + 8, start + size), the producer-specific area and the seq words of each record is all ones when attaching (and, in an r2 table, the tail after the last record)"),
    c(Rule::P13, When::Static, "in an r3 table, the tail after the last record reads as unused slots when attaching: seq 0 and _pad all ones at every whole stride, all ones elsewhere"),
    c(Rule::P7, When::NotObservable, "not observable once published; the checker copies the head with the acquire pairing P7 relies on (magic first, then an acquire fence)"),
    c(Rule::P8, When::NotObservable, "needs writing into the table, which the checker never does; proven by tests/faults.rs (a_scribbling_consumer_cannot_mislead_the_producer, a_scribbling_process_cannot_mislead_a_producer_process)"),
    c(Rule::P9, When::Dynamic, "bytes outside the records that change at offset + i * size (the RFC v3 writer's address for vCPU i) while record i's own seq never moves"),
    c(Rule::P10, When::Dynamic, "with the toolstack's vCPU count N: at the first sample every slot < N is used (unless a slot >= N is, which is R24)"),
    c(Rule::P11, When::Dynamic, "in an r3 table with clock 1, no consistent record's runstate_entry_time lies after the host's CLOCK_MONOTONIC read after the copy (any named clock when the caller gives now: Checker::sample_at)"),
    c(Rule::P12, When::Dynamic, "every histogram of a consistent read has all its buckets active or all inactive"),
    c(Rule::P15, When::Dynamic, "when an r3 table's magic reads 0, every record reads unused (all counter words inactive)"),
    c(Rule::D1, When::Dynamic, "each record's seq (consistent or busy) never steps backwards (serial-number arithmetic), and two consistent reads with one seq hold the same counters"),
    c(Rule::D2, When::Dynamic, "a record the consumer reports busy with the same odd seq in consecutive samples spanning the odd bound"),
    c(Rule::D3, When::Dynamic, "each active cumulative scalar, between consistent reads of one record life"),
    c(Rule::D4, When::Dynamic, "each active peak scalar, between consistent reads of one record life"),
    c(Rule::D5, When::Dynamic, "every counter word of a consistent read with its top bit set is all ones"),
    c(Rule::D6, When::Dynamic, "every u32 of [0, offset) equals the validated copy (a restart with a new generation re-attaches instead)"),
    c(Rule::D7, When::Dynamic, "every word outside [start, start + 4) and [start + 8, start + size) of each record, in [offset, mapping length), equals its value when attaching"),
    c(Rule::D8, When::Dynamic, "when the file is replaced or the table re-initialised, the new generation differs from every earlier one"),
    c(Rule::D9, When::Dynamic, "each active runstate_entry_time of an r3 vCPU record, between consistent reads"),
    c(Rule::D10, When::Dynamic, "in an r3 table with clock 1 (any named clock when the caller gives now: Checker::sample_at): the sum of the four up-to-date times (vstats_consumer::runstate, now read after the copy) never decreases between consistent reads, and grows by at most the time elapsed between the two reads of now"),
];

/// How `rule` is checked, `None` for a rule the checker does not report
/// (R14, R15, P2, P3, P5, P6, P14: enforced through D1-D7; L1: not a table
/// rule).
pub fn check(rule: Rule) -> Option<&'static Check> {
    PLAN.iter().find(|c| c.rule == rule)
}

/// The rules [`vstats_abi::validate::violations`] checks, in report order.
pub fn validated() -> impl Iterator<Item = Rule> {
    PLAN.iter().filter(|c| c.how == VALIDATE).map(|c| c.rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_is_planned_once() {
        for (i, a) in PLAN.iter().enumerate() {
            assert!(PLAN[i + 1..].iter().all(|b| b.rule != a.rule), "{}", a.rule);
        }
        assert_eq!(validated().count(), 18);
        assert!(validated().all(|r| check(r).map(|c| c.when) == Some(When::Static)));
        assert_eq!(check(Rule::L1), None);
    }
}
