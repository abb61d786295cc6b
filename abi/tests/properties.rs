//! Property tests of the layout arithmetic and the validator. Case counts
//! are bounded for CI; set `PROPTEST_CASES` for longer runs.
#![cfg(not(loom))]

use proptest::prelude::*;
use vstats_abi::{
    desc::{Base, Descriptor, Kind, Unit},
    layout::{Layout, LayoutParams, MAX_DESCRIPTORS},
    record::VCPU_STD_DESCRIPTORS,
    validate::{first_nonzero_reserved, validate},
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
    prop_assert!(info.record_extent() >= h.size && info.record_extent() <= h.stride);
    for i in (0..info.nr_records).take(4096) {
        let start = info.record_offset(i).unwrap();
        let end = start + u64::from(info.record_extent());
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

/// An r3 vCPU table as a producer lays it out: `words` words of
/// producer area, `ndesc` descriptors (one per word, from the first).
fn r3_table(p: &LayoutParams) -> (Layout, Vec<u8>, Vec<Descriptor>) {
    let l = Layout::compute(p).unwrap();
    let names: Vec<String> = (0..p.xdesc_count)
        .map(|i| format!("kvm_counter_{i}"))
        .collect();
    let descs: Vec<Descriptor> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            Descriptor::scalar(
                n,
                56 + 8 * i as u32,
                Kind::CUMULATIVE,
                Unit::NONE,
                Base::POW10,
                0,
            )
        })
        .collect();
    let mut b = vec![0u8; l.mapping_len() as usize];
    l.write_headers(&mut b, VCPU_STATS_MAGIC, 5, &descs)
        .unwrap();
    l.fill_records(&mut b).unwrap();
    (l, b, descs)
}

proptest! {
    #![proptest_config(config(128))]

    /// Every `vcpu_r3()` layout, with and without a producer area and
    /// descriptors, on any page and cacheline, validates, and reads back
    /// as laid out; the fill makes every whole stride of the mapping a
    /// slot with seq 0 (P13).
    #[test]
    fn every_vcpu_r3_layout_validates(
        nr in 0u32..300,
        words in 0u32..48,
        descs in 0u32..48,
        page_shift in 12u32..17,
        line_shift in 3u32..8,
        clock in 0u32..4,
    ) {
        let ndesc = descs.min(words);
        let p = LayoutParams {
            xstats_size: 8 * words,
            xdesc_count: ndesc,
            page_size: 1 << page_shift,
            cacheline: 1 << line_shift,
            clock,
            ..LayoutParams::vcpu_r3(nr)
        };
        let (l, b, d) = r3_table(&p);
        let info = validate(&b, b.len() as u64);
        prop_assert!(info.is_ok(), "{:?}: {:?}", p, info);
        let info = info.unwrap();
        prop_assert!(info.is_r3());
        prop_assert_eq!(info.nr_records, nr);
        prop_assert_eq!(info.clock, clock);
        prop_assert_eq!(info.xstats_size, 8 * words);
        prop_assert_eq!(info.xdesc_count, ndesc);
        prop_assert_eq!(info.record_extent(), l.record_extent());
        for (i, want) in d.iter().enumerate() {
            prop_assert_eq!(info.xdescriptor(&b, i as u32), Some(*want));
        }
        prop_assert_eq!(first_nonzero_reserved(&b, &info), None);
        assert_in_bounds(&info, b.len() as u64)?;
        let slots = (b.len() as u64 - u64::from(l.offset)) / u64::from(l.stride);
        prop_assert!(slots >= u64::from(nr));
        for k in 0..slots {
            let at = (u64::from(l.offset) + k * u64::from(l.stride)) as usize;
            prop_assert_eq!(&b[at..at + 4], &[0u8; 4][..]);
            prop_assert_eq!(&b[at + 4..at + 8], &[0xffu8; 4][..]);
        }
    }

    /// Any r3 request gives a layout whose every record extent is inside
    /// the mapping and one page, or an error; never a panic.
    #[test]
    fn r3_layout_never_overflows(
        nr in any::<u32>(),
        size_words in 0u32..(1 << 17),
        xstats_words in 0u32..(1 << 17),
        xdesc_count in any::<u32>(),
        page_shift in 10u32..32,
        line_shift in 0u32..32,
    ) {
        let size = size_words.saturating_mul(8);
        let p = LayoutParams {
            nr_records: nr,
            record_size: size,
            abi_size: size,
            xstats_size: xstats_words.saturating_mul(8),
            xdesc_count,
            page_size: 1u32.checked_shl(page_shift).unwrap_or(0),
            cacheline: 1u32.checked_shl(line_shift).unwrap_or(0),
            ..LayoutParams::vcpu_r3(0)
        };
        if let Ok(l) = Layout::compute(&p) {
            prop_assert!(l.stride >= l.record_extent() && l.stride.is_power_of_two());
            prop_assert_eq!(l.offset % l.stride, 0);
            prop_assert!(u64::from(l.offset) >= 88 + 64 * u64::from(l.xdesc_count));
            for i in [0, 1, nr / 2, nr.saturating_sub(1)] {
                if let Some((_, in_page)) = l.record_location(i) {
                    prop_assert!(in_page + l.record_extent() <= l.page_size);
                }
            }
        }
    }

    /// A valid r3 table with a few bytes of its head mutated: never a
    /// panic, and an accepted mutant is still in bounds.
    #[test]
    fn validator_survives_mutated_r3_tables(
        nr in 0u32..64,
        words in 0u32..8,
        edits in proptest::collection::vec((0usize..400, any::<u8>()), 1..6),
        cut in 0u64..5000,
    ) {
        let p = LayoutParams {
            xstats_size: 8 * words,
            xdesc_count: words,
            ..LayoutParams::vcpu_r3(nr)
        };
        let (_, mut b, _) = r3_table(&p);
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
            ..LayoutParams::vcpu_r2(0)
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
        let l = Layout::compute(&LayoutParams::vcpu_r2(nr)).unwrap();
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
