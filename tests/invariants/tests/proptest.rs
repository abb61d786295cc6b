//! Property tests of the checker itself (CI's counterpart of the fuzz
//! target in `fuzz/`): it never panics, loops forever or reads out of
//! bounds on arbitrary bytes, nor on valid tables with arbitrary bytes
//! flipped; and a valid table published by the real producer, whatever its
//! shape, passes every rule.

use proptest::prelude::*;
use vstats_abi::{
    desc::Descriptor,
    header::CLOCK_HOST_MONOTONIC,
    layout::{Layout, LayoutParams},
    record::{VCPU_STATS_SIZE_R3, VCPU_STD_DESCRIPTORS},
    Rule, VCPU_STATS_MAGIC,
};
use vstats_invariants::{CheckOptions, Checker, MemView, Status, Target};

/// Runs the checker over `bytes` (a private copy) for two samples.
fn check(bytes: &[u8]) -> vstats_invariants::TableReport {
    let raw = MemView::from_bytes(bytes);
    let opts = CheckOptions {
        max_attempts: 4,
        ..CheckOptions::default()
    };
    let mut c = Checker::attach(
        Target::Memory {
            label: "proptest".into(),
            raw,
            clock: None,
        },
        &opts,
    );
    c.sample();
    c.sample();
    c.finish()
}

/// A valid table of the standard record plus `extra` producer counters,
/// built by the layout arithmetic the producer uses, with the record area
/// as the producer publishes it (inactive everywhere but the seq words).
fn valid_table(nr: u32, extra: u32, page_shift: u32) -> Vec<u8> {
    let mut descs = VCPU_STD_DESCRIPTORS.to_vec();
    for k in 0..extra {
        descs.push(
            Descriptor::builder(&format!("extra_{k}"))
                .at(40 + 8 * k)
                .unwrap(),
        );
    }
    let l = Layout::compute(&LayoutParams {
        record_size: 40 + 8 * extra,
        desc_count: descs.len() as u32,
        page_size: 1 << page_shift,
        ..LayoutParams::vcpu_r2(nr)
    })
    .unwrap();
    let mut b = vec![0u8; l.mapping_len() as usize];
    l.write_headers(&mut b, VCPU_STATS_MAGIC, 1, &descs)
        .unwrap();
    b[l.offset as usize..].fill(0xff);
    for i in 0..nr {
        let at = l.record_offset(i).unwrap() as usize;
        b[at..at + 4].copy_from_slice(&0u32.to_ne_bytes());
    }
    b
}

/// A valid r3 table with a producer-specific area of `extra` counters,
/// each described by an r3 descriptor, laid out and filled by the abi
/// crate's writers (clock 1; every slot unused).
fn valid_r3_table(nr: u32, extra: u32, page_shift: u32) -> Vec<u8> {
    let descs: Vec<Descriptor> = (0..extra)
        .map(|k| {
            Descriptor::builder(&format!("extra_{k}"))
                .at(VCPU_STATS_SIZE_R3 + 8 * k)
                .unwrap()
        })
        .collect();
    let l = Layout::compute(&LayoutParams {
        xstats_size: 8 * extra,
        xdesc_count: extra,
        page_size: 1 << page_shift,
        clock: CLOCK_HOST_MONOTONIC,
        ..LayoutParams::vcpu_r3(nr)
    })
    .unwrap();
    let mut b = vec![0u8; l.mapping_len() as usize];
    l.write_headers(&mut b, VCPU_STATS_MAGIC, 1, &descs)
        .unwrap();
    l.fill_records(&mut b).unwrap();
    b
}

/// Rules a table checked without a toolstack count, a retirement or a
/// restart leaves unchecked, besides those not observable by attaching.
const NOT_EXERCISED: &[Rule] = &[
    Rule::P7,
    Rule::P8,
    Rule::D8,
    Rule::R24,
    Rule::P10,
    Rule::P15,
    Rule::R26,
    Rule::R27,
    Rule::R28,
];

/// Rules about the r3 header and record, not checked on an r2 table.
const R3_ONLY: &[Rule] = &[
    Rule::R19,
    Rule::R20,
    Rule::R21,
    Rule::R25,
    Rule::P11,
    Rule::P13,
    Rule::D9,
    Rule::D10,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let r = check(&bytes);
        prop_assert_eq!(r.rules.len(), vstats_invariants::plan::PLAN.len());
    }

    #[test]
    fn never_panics_on_a_header_of_arbitrary_words(
        words in proptest::collection::vec(any::<u32>(), 4..16),
        len in 16usize..8192,
    ) {
        let mut b = vec![0xffu8; len];
        for (k, w) in words.iter().enumerate() {
            if 4 * k + 4 <= len {
                b[4 * k..4 * k + 4].copy_from_slice(&w.to_ne_bytes());
            }
        }
        b[..4].copy_from_slice(&VCPU_STATS_MAGIC.to_ne_bytes());
        check(&b);
    }

    #[test]
    fn never_panics_on_a_valid_table_with_flipped_bytes(
        nr in 1u32..40,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut b = valid_table(nr, 0, 12);
        for (at, v) in flips {
            let i = at.index(b.len());
            b[i] = v;
        }
        check(&b);
    }

    #[test]
    fn a_valid_table_passes_every_rule(nr in 1u32..300, extra in 0u32..20, big_pages in any::<bool>()) {
        let b = valid_table(nr, extra, if big_pages { 16 } else { 12 });
        let r = check(&b);
        prop_assert!(r.passed(), "{}", r);
        for rule in &r.rules {
            if NOT_EXERCISED.contains(&rule.rule) || R3_ONLY.contains(&rule.rule) {
                prop_assert_eq!(rule.status, Status::Skip, "{}", r);
            } else {
                prop_assert_eq!(rule.status, Status::Pass, "{}", r);
            }
        }
    }

    #[test]
    fn a_valid_r3_table_passes_every_rule(nr in 1u32..300, extra in 0u32..20, big_pages in any::<bool>()) {
        let b = valid_r3_table(nr, extra, if big_pages { 16 } else { 12 });
        let r = check(&b);
        prop_assert!(r.passed(), "{}", r);
        for rule in &r.rules {
            if NOT_EXERCISED.contains(&rule.rule) {
                prop_assert_eq!(rule.status, Status::Skip, "{}", r);
            } else {
                prop_assert_eq!(rule.status, Status::Pass, "{}", r);
            }
        }
    }
}
