//! One-line summaries of the validation rules of `docs/abi.md`, section 3,
//! so that an "invalid table" message says what the rule asks for.

/// The summary of rule `rule` (`"R1"` ... `"R13"`), or a pointer to the
/// spec for a rule this revision does not know.
pub fn describe(rule: &str) -> String {
    let text = match rule {
        "R1" => "the mapping holds the 16-byte header",
        "R2" => "the magic is 0xaabbccdd (vCPU table) or 0xaabbccde (domain table)",
        "R3" => "offset is at least the 16-byte header",
        "R4" => "size is at least 8 and a multiple of 8",
        "R5" => "stride is at least size",
        "R6" => "offset and stride are multiples of 8",
        "R7" => "the records (offset + nr_records * stride) fit in the mapping",
        "R8" => "no record crosses a page boundary",
        "R9" => "the extension header is well formed",
        "R10" => "the descriptor array lies between the extension header and offset",
        "R11" => "descriptor names are printable ASCII, NUL-terminated and unique",
        "R12" => "descriptor kinds, units, bases and exponents are known and consistent",
        "R13" => "counters lie inside the record and do not overlap",
        _ => return format!("rule {rule} of docs/abi.md"),
    };
    format!("rule {rule}: {text}")
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn every_rule_has_a_summary() {
        for i in 1..=13 {
            let r = format!("R{i}");
            let d = describe(&r);
            assert!(d.starts_with(&format!("rule {r}: ")), "{d}");
            assert!(!d.contains("docs/abi.md"), "{d}");
        }
        assert_eq!(describe("R99"), "rule R99 of docs/abi.md");
    }
}
