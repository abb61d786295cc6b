//! Unit tests of the producer: what it writes must pass the consumer's
//! validation, and its writers must follow the seq protocol.
#![allow(unsafe_code)]

extern crate std;

use core::ptr::NonNull;
use std::{vec, vec::Vec};

use proptest::prelude::*;
use vstats_abi::{
    desc::Descriptor,
    header::{CLOCK_HOST_MONOTONIC, HEADER_R3_END},
    layout::{Layout, LayoutParams},
    record::{vcpu_off, RunState, INACTIVE, PAD_INACTIVE, VCPU_STATS_SIZE, VCPU_STD_DESCRIPTORS},
    validate::{first_nonzero_reserved, validate},
    DOMAIN_STATS_MAGIC, VCPU_STATS_MAGIC,
};

use super::*;

fn spec(layout: Layout, descriptors: &[Descriptor]) -> TableSpec<'_> {
    TableSpec {
        magic: VCPU_STATS_MAGIC,
        layout,
        descriptors,
        generation: 42,
    }
}

/// A table in a `Vec<u64>` (8-aligned); `f` runs while it is live, and the
/// bytes are returned once it is gone (forsaken, not retired: the bytes
/// are as the producer left them while it lived).
fn with_table(layout: Layout, descs: &[Descriptor], f: impl FnOnce(&mut Table<'_>)) -> Vec<u8> {
    with_table_then(layout, descs, f, |t| t.forsake())
}

/// As [`with_table`], the table ended by `end` (drop it, or forsake it).
fn with_table_then(
    layout: Layout,
    descs: &[Descriptor],
    f: impl FnOnce(&mut Table<'_>),
    end: impl FnOnce(Table<'_>),
) -> Vec<u8> {
    let mut mem = vec![0x5au64; layout.mapping_len() as usize / 8];
    {
        let base = NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `mem` outlives the table (gone at the end of this
        // block), is 8-aligned, and is not touched until then.
        let frames = unsafe { Frames::contiguous(base, mem.len() * 8) };
        let mut t = Table::init(frames, &spec(layout, descs)).unwrap();
        f(&mut t);
        end(t);
    }
    mem.iter().flat_map(|w| w.to_ne_bytes()).collect()
}

fn u32_at(b: &[u8], at: u64) -> u32 {
    u32::from_ne_bytes(b[at as usize..at as usize + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: u64) -> u64 {
    u64::from_ne_bytes(b[at as usize..at as usize + 8].try_into().unwrap())
}

#[test]
fn fresh_table_validates_and_is_all_inactive() {
    let l = Layout::compute(&LayoutParams::vcpu_r2(3)).unwrap();
    let b = with_table(l, VCPU_STD_DESCRIPTORS, |_| {});
    let info = validate(&b, b.len() as u64).unwrap();
    assert_eq!(info.nr_records, 3);
    assert_eq!(info.generation(), 42);
    assert_eq!(first_nonzero_reserved(&b, &info), None);
    for i in 0..3 {
        let r = l.record_offset(i).unwrap();
        assert_eq!(u32_at(&b, r), 0, "seq starts at 0");
        assert_eq!(u32_at(&b, r + 4), PAD_INACTIVE);
        for w in 1..u64::from(l.stride) / 8 {
            assert_eq!(u64_at(&b, r + 8 * w), INACTIVE, "record {i} word {w}");
        }
    }
    // The tail after the last record is inactive too.
    let end = l.record_offset(2).unwrap() + u64::from(l.stride);
    assert!(b[end as usize..].iter().all(|&x| x == 0xff));
}

#[test]
fn writer_updates_follow_the_seq_protocol() {
    let l = Layout::compute(&LayoutParams::vcpu_r2(2)).unwrap();
    let b = with_table(l, VCPU_STD_DESCRIPTORS, |t| {
        let (_, mut ws) = t.split();
        let mut w0 = ws.next().unwrap();
        let mut w1 = ws.next().unwrap();
        assert!(ws.next().is_none(), "one writer per record");
        assert_eq!((w0.index(), w1.index(), w0.len()), (0, 1, 4));
        assert!(w0.update(|u| {
            assert!(u.set(0, 10));
            assert!(u.set(1, 1 << 63), "overflow stores inactive");
            assert!(u.set_at(32, 7));
            assert!(!u.set(4, 1), "beyond the record");
            assert!(!u.set_at(12, 1), "misaligned offset");
        }));
        assert_eq!(w0.seq(), 2);
        w1.update(|u| u.set_unused());
        w1.update(|u| {
            u.set(2, 5);
            u.set_inactive(2);
        });
        assert_eq!(w1.seq(), 4);
    });
    let r0 = l.record_offset(0).unwrap();
    assert_eq!(u32_at(&b, r0), 2);
    assert_eq!(u64_at(&b, r0 + 8), 10);
    assert_eq!(u64_at(&b, r0 + 16), INACTIVE);
    assert_eq!(u64_at(&b, r0 + 24), INACTIVE, "never set: still inactive");
    assert_eq!(u64_at(&b, r0 + 32), 7);
    let r1 = l.record_offset(1).unwrap();
    assert_eq!(u32_at(&b, r1), 4);
    assert!((1..5).all(|w| u64_at(&b, r1 + 8 * w) == INACTIVE));
}

#[test]
fn set_words_stores_a_run_and_stops_at_the_record_end() {
    let l = Layout::compute(&LayoutParams::vcpu_r2(1)).unwrap();
    let b = with_table(l, VCPU_STD_DESCRIPTORS, |t| {
        let (_, mut ws) = t.split();
        let mut w = ws.next().unwrap();
        w.update(|u| {
            assert_eq!(u.set_words(1, &[5, 1 << 63, 7, 8, 9]), 3, "words 1-3 only");
            assert_eq!(u.set_words(4, &[1]), 0, "beyond the record");
            assert_eq!(u.set_words(usize::MAX, &[1]), 0);
            assert_eq!(u.set_words(0, &[]), 0);
        });
    });
    let r = u64::from(l.offset);
    assert_eq!(u64_at(&b, r + 8), INACTIVE, "word 0 untouched");
    assert_eq!(u64_at(&b, r + 16), 5);
    assert_eq!(u64_at(&b, r + 24), INACTIVE, "overflow stores inactive");
    assert_eq!(u64_at(&b, r + 32), 7);
    assert_eq!(u64_at(&b, r + 40), INACTIVE, "padding untouched");
}

#[test]
fn update_words_is_one_whole_update_of_a_run() {
    let l = Layout::compute(&LayoutParams::vcpu_r2(1)).unwrap();
    let b = with_table(l, VCPU_STD_DESCRIPTORS, |t| {
        let (control, mut ws) = t.split();
        let mut w = ws.next().unwrap();
        assert_eq!(
            w.update_words(1, &[5, 1 << 63, 7, 8, 9]),
            Some(3),
            "words 1-3"
        );
        assert_eq!(w.seq(), 2);
        assert_eq!(w.update_words(4, &[1]), Some(0), "beyond the record");
        assert_eq!(w.seq(), 4, "an empty update is still an update");
        // An update left open is finished by it.
        assert!(w.begin().is_some(), "begun, never finished");
        assert_eq!(w.seq(), 5);
        assert_eq!(w.update_words(0, &[11]), Some(1));
        assert_eq!(w.seq(), 6);
        control.set_enabled(false);
        assert_eq!(w.update_words(0, &[12]), None, "disabled: nothing stored");
        assert_eq!(w.seq(), 6);
        control.set_enabled(true);
    });
    let r = u64::from(l.offset);
    assert_eq!(u32_at(&b, r), 6);
    assert_eq!(u64_at(&b, r + 8), 11);
    assert_eq!(u64_at(&b, r + 16), 5);
    assert_eq!(u64_at(&b, r + 24), INACTIVE, "overflow stores inactive");
    assert_eq!(u64_at(&b, r + 32), 7);
    assert_eq!(u64_at(&b, r + 40), INACTIVE, "padding untouched");
}

#[test]
fn abandoned_update_leaves_seq_odd_until_the_next_one() {
    let l = Layout::compute(&LayoutParams::vcpu_r2(1)).unwrap();
    let mut seen = 0;
    let b = with_table(l, VCPU_STD_DESCRIPTORS, |t| {
        let (_, mut ws) = t.split();
        let mut w = ws.next().unwrap();
        {
            // Abandoned: never finished (a writer that died mid-update).
            let mut u = w.begin().unwrap();
            u.set(0, 1);
        }
        seen = w.seq();
        w.update(|u| {
            u.set(0, 2);
        });
    });
    assert_eq!(seen, 1, "odd while abandoned");
    assert_eq!(
        u32_at(&b, l.offset.into()),
        2,
        "the next update finished it"
    );
}

#[test]
fn disabled_table_writes_nothing() {
    let l = Layout::compute(&LayoutParams::vcpu_r2(1)).unwrap();
    let b = with_table(l, VCPU_STD_DESCRIPTORS, |t| {
        let (control, mut ws) = t.split();
        let mut w = ws.next().unwrap();
        control.set_enabled(false);
        assert!(!control.is_enabled());
        assert!(!w.update(|u| {
            u.set(0, 9);
        }));
        assert!(w.begin().is_none());
        // An update left open when the table is disabled can still be
        // finished.
        control.set_enabled(true);
        {
            let _open = w.begin().unwrap();
        }
        control.set_enabled(false);
        w.begin().unwrap().finish();
        assert_eq!(w.seq(), 2);
        assert!(w.begin().is_none());
    });
    assert_eq!(u32_at(&b, l.offset.into()), 2);
    assert_eq!(
        u64_at(&b, u64::from(l.offset) + 8),
        INACTIVE,
        "no value was stored"
    );
}

/// The shared seq word of record `i`, read through the frames (the test's
/// view, not the producer's).
fn shared_seq(t: &Table<'_>, i: u32) -> u32 {
    let off = t.layout().record_offset(i).unwrap() as usize;
    t.frames.u32_at(off).unwrap().load(Ordering::Relaxed)
}

#[test]
fn a_second_split_continues_every_records_seq() {
    let l = Layout::compute(&LayoutParams::vcpu_r2(3)).unwrap();
    with_table(l, VCPU_STD_DESCRIPTORS, |t| {
        {
            let (_, ws) = t.split();
            let mut ws: Vec<_> = ws.collect();
            // Record 0: three updates (seq 6); record 1: one update left
            // open (seq 3); record 2: none (seq 0).
            for _ in 0..3 {
                ws[0].update(|u| {
                    u.set(0, 1);
                });
            }
            let _abandoned = ws[1].begin().unwrap();
        }
        assert_eq!([0, 1, 2].map(|i| shared_seq(t, i)), [6, 1, 0]);
        assert!(!t.writers_lost());
        let (_, ws) = t.split();
        let mut ws: Vec<_> = ws.collect();
        assert_eq!(ws.len(), 3);
        for w in &mut ws {
            assert_eq!(w.seq(), 6, "record {}: the furthest seq", w.index());
            w.update(|u| {
                u.set(0, 2);
            });
        }
        drop(ws);
        // Every shared seq went forwards, none restarted at 0 or 2.
        assert_eq!([0, 1, 2].map(|i| shared_seq(t, i)), [8, 8, 8]);
        let (_, mut ws) = t.split();
        assert_eq!(ws.next().unwrap().seq(), 8, "the writer just dropped");
    });
}

#[test]
fn seq_carries_across_the_wrap() {
    let l = Layout::compute(&LayoutParams::vcpu_r2(2)).unwrap();
    with_table(l, VCPU_STD_DESCRIPTORS, |t| {
        t.seqs.base = u32::MAX - 3;
        {
            let (_, mut ws) = t.split();
            let mut w = ws.next().unwrap();
            assert_eq!(w.seq(), u32::MAX - 3);
            for _ in 0..3 {
                w.update(|u| {
                    u.set(0, 1);
                });
            }
            assert_eq!(w.seq(), 2, "wrapped");
        }
        let (_, mut ws) = t.split();
        assert_eq!(ws.next().unwrap().seq(), 2);
        assert_eq!(ws.next().unwrap().seq(), 2, "the idle record too");
    });
}

#[test]
fn a_leaked_writer_stops_further_splits() {
    let l = Layout::compute(&LayoutParams::vcpu_r2(2)).unwrap();
    with_table(l, VCPU_STD_DESCRIPTORS, |t| {
        {
            let (_, mut ws) = t.split();
            let mut w = ws.next().unwrap();
            w.update(|u| {
                u.set(0, 1);
            });
            core::mem::forget(w);
            drop(ws.next());
        }
        assert!(t.writers_lost());
        let (_, ws) = t.split();
        assert_eq!(ws.count(), 0, "record 0's seq is unknown");
        assert!(t.writers_lost());
    });
}

#[test]
fn scribbling_consumer_cannot_steer_the_producer() {
    let l = Layout::compute(&LayoutParams::vcpu_r2(1)).unwrap();
    let mut mem = vec![0u64; l.mapping_len() as usize / 8];
    let base = NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap();
    {
        // SAFETY: `mem` outlives the table and is accessed only atomically
        // (by the table and by the scribbling below) while it lives.
        let frames = unsafe { Frames::contiguous(base, mem.len() * 8) };
        let mut t = Table::init(frames, &spec(l, VCPU_STD_DESCRIPTORS)).unwrap();
        let (_, mut ws) = t.split();
        let mut w = ws.next().unwrap();
        w.update(|u| {
            u.set(0, 1);
        });
        let p = base.as_ptr().wrapping_add(l.offset as usize).cast();
        // SAFETY: inside the table's 8-aligned region; accessed atomically.
        let seq = unsafe { AtomicU32::from_ptr(p) };
        seq.store(1001, Ordering::Relaxed);
        w.update(|u| {
            u.set(0, 2);
        });
        assert_eq!(w.seq(), 4, "private seq, not 1001 + 2");
        assert_eq!(seq.load(Ordering::Relaxed), 4);
    }
}

#[test]
fn non_contiguous_frames_in_any_order() {
    // A 64-byte-stride table over three 4 KiB pages, the pages scattered
    // (allocated separately and listed in reverse allocation order).
    let p = LayoutParams {
        record_size: 48,
        abi_size: 40,
        desc_count: 4,
        ..LayoutParams::vcpu_r2(150)
    };
    let l = Layout::compute(&p).unwrap();
    assert_eq!(l.frames, 3);
    let mut pages: Vec<Vec<u64>> = (0..3).map(|_| vec![0u64; 512]).collect();
    let ptrs: Vec<NonNull<u8>> = pages
        .iter_mut()
        .map(|pg| NonNull::new(pg.as_mut_ptr().cast()).unwrap())
        .collect();
    {
        // SAFETY: each page is 4096 bytes, 8-aligned, outlives the table and
        // is only accessed through it.
        let frames = unsafe { Frames::pages(&ptrs, 4096) };
        let mut t = Table::init(frames, &spec(l, VCPU_STD_DESCRIPTORS)).unwrap();
        let (_, ws) = t.split();
        for mut w in ws {
            let i = u64::from(w.index());
            w.update(|u| {
                for k in 0..5 {
                    u.set(k, i * 10 + k as u64);
                }
            });
        }
        t.forsake();
    }
    let image: Vec<u8> = pages
        .iter()
        .flatten()
        .flat_map(|w| w.to_ne_bytes())
        .collect();
    let info = validate(&image, image.len() as u64).unwrap();
    assert_eq!(info.nr_records, 150);
    for i in 0..150u64 {
        let r = l.record_offset(i as u32).unwrap();
        assert_eq!(u32_at(&image, r), 2);
        for k in 0..5 {
            assert_eq!(u64_at(&image, r + 8 + 8 * k), i * 10 + k);
        }
    }
}

#[test]
fn sixty_four_k_pages_work() {
    let p = LayoutParams {
        page_size: 65536,
        ..LayoutParams::vcpu_r2(2000)
    };
    let l = Layout::compute(&p).unwrap();
    let b = with_table(l, VCPU_STD_DESCRIPTORS, |t| {
        let (_, ws) = t.split();
        assert_eq!(ws.count(), 2000);
    });
    let info = validate(&b, b.len() as u64).unwrap();
    assert_eq!(info.page_size, 65536);
}

#[test]
fn init_errors() {
    let l = Layout::compute(&LayoutParams::vcpu_r2(1)).unwrap();
    let mut mem = vec![0u64; 1024];
    let base = NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap();
    // SAFETY: `mem` outlives every table below and is only accessed
    // through them; the misaligned one is rejected before use.
    let short = unsafe { Frames::contiguous(base, 100) };
    assert_eq!(
        Table::init(short, &spec(l, VCPU_STD_DESCRIPTORS)).unwrap_err(),
        Error::FramesTooSmall {
            need: 4096,
            have: 100
        }
    );
    let odd_base = NonNull::new(base.as_ptr().wrapping_add(1)).unwrap();
    // SAFETY: as above; one byte in, still inside `mem`.
    let odd = unsafe { Frames::contiguous(odd_base, 4096) };
    assert_eq!(
        Table::init(odd, &spec(l, VCPU_STD_DESCRIPTORS)).unwrap_err(),
        Error::FramesMisaligned
    );
    let list = [base];
    // SAFETY: as above; claims 8 KiB pages, rejected before use.
    let wrong_page = unsafe { Frames::pages(&list, 8192) };
    assert!(matches!(
        Table::init(wrong_page, &spec(l, VCPU_STD_DESCRIPTORS)),
        Err(Error::PageSizeMismatch { .. })
    ));
    // SAFETY: as above.
    let ok = || unsafe { Frames::contiguous(base, 8192) };
    let bad_magic = TableSpec {
        magic: 7,
        ..spec(l, VCPU_STD_DESCRIPTORS)
    };
    assert_eq!(
        Table::init(ok(), &bad_magic).unwrap_err(),
        Error::BadMagic { magic: 7 }
    );
    let dup = [VCPU_STD_DESCRIPTORS[0]; 4];
    assert!(matches!(
        Table::init(ok(), &spec(l, &dup)),
        Err(Error::Abi(vstats_abi::Error::DescNameDuplicate { .. }))
    ));
    assert_eq!(
        Table::init(ok(), &spec(l, &VCPU_STD_DESCRIPTORS[..2])).unwrap_err(),
        Error::DescriptorCount {
            given: 2,
            layout: 4
        }
    );
    let dom = TableSpec {
        magic: DOMAIN_STATS_MAGIC,
        ..spec(l, VCPU_STD_DESCRIPTORS)
    };
    assert!(Table::init(ok(), &dom).is_ok());
    let two = Layout::compute(&LayoutParams::vcpu_r2(2)).unwrap();
    let dom2 = TableSpec {
        magic: DOMAIN_STATS_MAGIC,
        ..spec(two, VCPU_STD_DESCRIPTORS)
    };
    assert_eq!(
        Table::init(ok(), &dom2).unwrap_err(),
        Error::Abi(vstats_abi::Error::DomainRecordCount { nr_records: 2 })
    );
}

/// An r3 vCPU table with a producer area of two counters, as the
/// builder lays it out.
fn r3_plan(nr: u32) -> crate::builder::TablePlan {
    let mut b = crate::builder::TableBuilder::vcpu(nr);
    b.counter(Descriptor::builder("exits")).unwrap();
    b.counter(Descriptor::builder("halts")).unwrap();
    b.build().unwrap()
}

#[test]
fn fresh_r3_table_is_laid_out_with_its_tail_as_unused_slots() {
    let plan = r3_plan(3);
    let l = plan.layout;
    assert!(l.is_r3());
    assert_eq!(
        (l.size, l.xstats_offset, l.xstats_size),
        (VCPU_STATS_SIZE, 56, 16)
    );
    let b = with_table(l, &plan.descriptors, |_| {});
    let info = validate(&b, b.len() as u64).unwrap();
    assert!(info.is_r3());
    assert_eq!(info.clock, CLOCK_HOST_MONOTONIC);
    assert_eq!((info.xdesc_count, info.xdesc_offset), (2, HEADER_R3_END));
    assert_eq!(info.desc_count(), 0, "no r2 descriptors, no standard ones");
    assert_eq!(first_nonzero_reserved(&b, &info), None);
    // P4 and P13: the whole record area is the layout's fill, the tail
    // after the last record included.
    let mut expect = vec![0u8; b.len()];
    l.fill_records(&mut expect).unwrap();
    assert_eq!(&b[l.offset as usize..], &expect[l.offset as usize..]);
    let tail = l.record_offset(2).unwrap() + u64::from(l.stride);
    assert!(tail < b.len() as u64);
    assert_eq!((u32_at(&b, tail), u32_at(&b, tail + 4)), (0, PAD_INACTIVE));
}

#[test]
fn set_runstate_writes_state_and_entry_beside_the_times() {
    let plan = r3_plan(1);
    let l = plan.layout;
    let b = with_table(l, &plan.descriptors, |t| {
        let (_, mut ws) = t.split();
        let mut w = ws.next().unwrap();
        assert_eq!(w.len(), 6 + 2, "the standard record and the area");
        w.update(|u| {
            u.set_words(0, &[1, 2, 3, 4]);
            assert!(u.set_runstate(RunState::BLOCKED, 99));
            assert!(u.set(6, 7), "the producer area");
        });
    });
    let r = l.record_offset(0).unwrap();
    assert_eq!(u64_at(&b, r + u64::from(vcpu_off::RUNSTATE)), 2);
    assert_eq!(u64_at(&b, r + u64::from(vcpu_off::ENTRY)), 99);
    assert_eq!(u64_at(&b, r + 56), 7);
    // An r2 record has no room for them.
    let l2 = Layout::compute(&LayoutParams::vcpu_r2(1)).unwrap();
    with_table(l2, VCPU_STD_DESCRIPTORS, |t| {
        let (_, mut ws) = t.split();
        ws.next()
            .unwrap()
            .update(|u| assert!(!u.set_runstate(RunState::RUNNING, 1)));
    });
}

#[test]
fn dropping_a_table_retires_it_and_forsaking_does_not() {
    let plan = r3_plan(2);
    let l = plan.layout;
    let fill = |t: &mut Table<'_>| {
        let (_, ws) = t.split();
        for mut w in ws {
            w.update(|u| {
                u.set_words(0, &[1, 2, 3, 4, 0, 5, 6, 7]);
            });
        }
    };
    // P15: every record unused (seq advanced, even), then magic 0.
    let b = with_table_then(l, &plan.descriptors, fill, |t| drop(t));
    assert_eq!(u32_at(&b, 0), 0, "magic cleared");
    for i in 0..2 {
        let r = l.record_offset(i).unwrap();
        assert_eq!(u32_at(&b, r), 4, "one more update, seq even");
        for w in 1..u64::from(l.record_extent()) / 8 {
            assert_eq!(u64_at(&b, r + 8 * w), INACTIVE, "record {i} word {w}");
        }
    }
    // The header is otherwise intact: put the magic back and it validates.
    let mut again = b.clone();
    again[..4].copy_from_slice(&VCPU_STATS_MAGIC.to_ne_bytes());
    assert!(validate(&again, again.len() as u64).is_ok());
    // Forsaken: as it was.
    let b = with_table(l, &plan.descriptors, fill);
    assert_eq!(u32_at(&b, 0), VCPU_STATS_MAGIC);
    let r = l.record_offset(1).unwrap();
    assert_eq!((u32_at(&b, r), u64_at(&b, r + 8)), (2, 1));
    // Retired explicitly: no more writers, and dropping does nothing more.
    let b = with_table_then(
        l,
        &plan.descriptors,
        |t| {
            fill(t);
            t.retire();
            assert!(t.is_retired());
            assert_eq!(t.split().1.count(), 0);
        },
        |t| drop(t),
    );
    let r = l.record_offset(0).unwrap();
    assert_eq!((u32_at(&b, 0), u32_at(&b, r)), (0, 4));
}

fn descs_for(n: u32) -> Vec<Descriptor> {
    (0..n)
        .map(|i| {
            Descriptor::builder(&std::format!("c{i}"))
                .at(8 + 8 * i)
                .unwrap()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 64 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Everything the producer writes passes the consumer's validation,
    /// and every record written is where the layout says.
    #[test]
    fn produced_tables_validate(
        nr in 0u32..(if cfg!(miri) { 8 } else { 300 }),
        words in 1u32..40,
        abi_words in 0u32..40,
        desc_words in 0u32..40,
        page_shift in 12u32..(if cfg!(miri) { 13 } else { 17 }),
        line_shift in 3u32..8,
    ) {
        let record_size = 8 + 8 * words;
        let abi_size = 8 + 8 * abi_words.min(words);
        let ndesc = desc_words.min(words);
        let p = LayoutParams { nr_records: nr, record_size, abi_size, desc_count: ndesc, page_size: 1 << page_shift, cacheline: 1 << line_shift, ext_size: vstats_abi::header::EXT_HEADER_SIZE, clock: 0, xstats_size: 0, xdesc_count: 0 };
        let l = Layout::compute(&p).unwrap();
        let descs = descs_for(ndesc);
        let b = with_table(l, &descs, |t| {
            let (_, ws) = t.split();
            for mut w in ws {
                let i = u64::from(w.index());
                w.update(|u| { u.set(0, i); });
            }
        });
        let info = validate(&b, b.len() as u64).unwrap();
        prop_assert_eq!(info.nr_records, nr);
        prop_assert_eq!(info.desc_count(), ndesc);
        prop_assert_eq!(first_nonzero_reserved(&b, &info), None);
        for i in 0..nr {
            let r = l.record_offset(i).unwrap();
            prop_assert_eq!(u32_at(&b, r), 2);
            prop_assert_eq!(u64_at(&b, r + 8), u64::from(i));
        }
    }
}
