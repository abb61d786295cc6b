//! Property tests of the layout arithmetic and the validator. Case counts
//! are bounded for CI; set `PROPTEST_CASES` for longer runs.
#![cfg(not(loom))]

use proptest::prelude::*;
use vstats_abi::{
    layout::{Layout, LayoutParams, MAX_DESCRIPTORS},
    record::VCPU_STD_DESCRIPTORS,
    validate::validate,
    VCPU_STATS_MAGIC,
};

fn config(cases: u32) -> ProptestConfig {
    let cases = if cfg!(miri) { 4 } else { cases };
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

/// Checks the geometry claims of an accepted table.
fn assert_in_bounds(info: &vstats_abi::TableInfo, len: u64) -> Result<(), TestCaseError> {
    let h = info.header;
    prop_assert!(h.offset >= 16 && h.size >= 8 && h.stride >= h.size);
    prop_assert!(info.abi_size <= h.size);
    let page = u64::from(info.page_size);
    for i in (0..info.nr_records).take(4096) {
        let start = info.record_offset(i).unwrap();
        let end = start + u64::from(h.size);
        prop_assert!(end <= len, "record {} ends at {} past {}", i, end, len);
        prop_assert_eq!(
            start / page,
            (end - 1) / page,
            "record {} crosses a page",
            i
        );
        prop_assert_eq!(start % 8, 0);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    /// Any in-range request gives a layout whose every record is inside the
    /// mapping and inside one page; any out-of-range request is an error,
    /// never a panic or a wrapped value.
    #[test]
    fn layout_never_overflows_and_contains_every_record(
        nr in any::<u32>(),
        size_words in 0u32..(1 << 17),
        abi_words in 0u32..(1 << 17),
        desc_count in 0u32..(MAX_DESCRIPTORS + 8),
        page_shift in 10u32..32,
        line_shift in 0u32..32,
    ) {
        let p = LayoutParams {
            nr_records: nr,
            record_size: size_words.saturating_mul(8),
            abi_size: abi_words.saturating_mul(8),
            desc_count,
            page_size: 1u32.checked_shl(page_shift).unwrap_or(0),
            cacheline: 1u32.checked_shl(line_shift).unwrap_or(0),
            ..LayoutParams::vcpu(0)
        };
        if let Ok(l) = Layout::compute(&p) {
            prop_assert!(l.stride >= l.size && l.stride.is_power_of_two());
            prop_assert_eq!(l.offset % l.stride, 0);
            prop_assert!(u64::from(l.offset) >= 56 + 64 * u64::from(l.desc_count));
            let len = l.mapping_len();
            prop_assert_eq!(len % u64::from(l.page_size), 0);
            // First, last and a few in between.
            for i in [0, 1, nr / 2, nr.saturating_sub(1)] {
                if let Some(start) = l.record_offset(i) {
                    let end = start + u64::from(l.size);
                    prop_assert!(end <= len);
                    let (frame, in_page) = l.record_location(i).unwrap();
                    prop_assert_eq!(frame, start / u64::from(l.page_size));
                    prop_assert!(in_page + l.size <= l.page_size);
                }
            }
        }
    }

    /// Arbitrary bytes: the validator never panics, and what it accepts is
    /// in bounds.
    #[test]
    fn validator_never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..9000), extra in 0u64..10_000) {
        for len in [bytes.len() as u64, bytes.len() as u64 + extra] {
            if let Ok(info) = validate(&bytes, len) {
                assert_in_bounds(&info, len)?;
            }
        }
    }

    /// A valid table with a few bytes of its head mutated: never a panic,
    /// and an accepted mutant is still in bounds. This reaches the deep
    /// rules that random bytes almost never get past the magic to.
    #[test]
    fn validator_survives_mutated_valid_tables(
        nr in 0u32..64,
        edits in proptest::collection::vec((0usize..400, any::<u8>()), 1..6),
        cut in 0u64..5000,
    ) {
        let l = Layout::compute(&LayoutParams::vcpu(nr)).unwrap();
        let mut b = vec![0u8; l.mapping_len() as usize];
        l.write_headers(&mut b, VCPU_STATS_MAGIC, 3, VCPU_STD_DESCRIPTORS).unwrap();
        for (at, v) in edits {
            if let Some(x) = b.get_mut(at) {
                *x = v;
            }
        }
        let len = (b.len() as u64).saturating_sub(cut);
        if let Ok(info) = validate(&b, len) {
            assert_in_bounds(&info, len)?;
        }
    }
}
