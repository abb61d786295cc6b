//! Fault-injecting producers: real `vstats-producer` tables (file-backed,
//! [`vstats_producer::shm::ShmTable`]) plus the one fault each breaks a rule
//! with, written through a second, writable mapping ([`MemViewMut`]) where the
//! producer crate makes the fault impossible (writing past a record,
//! changing a descriptor after publication, a non-canonical inactive
//! marker, the RFC v3 record addressing).
//!
//! Test support: the corpus in `tests/corpus.rs` builds one table per rule
//! with [`with_fault_table`] and checks that the checker reports exactly
//! that rule; the `vstats-fault-producer` binary runs the same producers
//! as real processes (for kills and restarts).
//!
//! A [`Driver`] does one round of updates per [`Driver::step`]: every
//! record's counters grow (vCPU i's running time by 1000 + i ns a step, and
//! so on). Static faults are applied once, when the table is published;
//! dynamic ones at step [`FAULT_STEP`] (and after), so a checker attached
//! before the first step sees a valid table first.
//!
//! The faults of the r3 rules ([`Fault::is_r3`]) publish r3 tables broken
//! in ways the producer crate refuses to write: they are laid out with
//! [`LayoutParams::vcpu_r3`] and the abi crate's own writers
//! ([`Layout::write_headers`], [`Layout::fill_records`],
//! [`vstats_abi::seqlock::SeqWriter`]), every vCPU's record seeded before
//! the magic is stored (P10), with clock 1 (the host's `CLOCK_MONOTONIC`)
//! unless the fault says otherwise. Their driver keeps each vCPU's runstate
//! as Xen does: vCPU 0 stays in `running` from before publication (idle:
//! its record is never rewritten, only its up-to-date time grows), the
//! others checkpoint at every step (the time since the entry added to the
//! current state, the entry moved to now) and change state every other
//! step. [`with_r3_table`] publishes a correct one.
//!
//! The consumer rules R26-R28 have no producer fault: their corpus entries
//! are [`ReadingFixture`]s, a table plus the reading every consumer must
//! make of it.

use std::{
    fs::OpenOptions,
    io,
    path::Path,
    sync::atomic::{fence, Ordering},
};

use vstats_abi::{
    clock::monotonic_ns,
    desc::{Base, Descriptor, Kind, Unit, DESCRIPTOR_SIZE},
    header::{CLOCK_HOST_MONOTONIC, CLOCK_XEN_SYSTEM, EXT_HEADER_OFFSET, HEADER_SIZE},
    layout::{Layout, LayoutParams},
    record::{DOMAIN_STD_DESCRIPTORS, RECORD_PREFIX, VCPU_STATS_SIZE_R2, VCPU_STD_DESCRIPTORS},
    seqlock::SeqWriter,
    Rule, DOMAIN_STATS_MAGIC_R2, DOMAIN_STATS_MAGIC_R3, VCPU_STATS_MAGIC,
};
use vstats_producer::{shm::ShmTable, RecordWriter, TableSpec};

use vstats_consumer::mem::MemViewMut;

/// The step at which dynamic faults strike (steps count from 1).
pub const FAULT_STEP: u64 = 3;

/// A magic no revision knows: what a deliberately incompatible ABI would
/// publish (R2).
pub const INCOMPATIBLE_MAGIC: u32 = 0xaabb_cce0;

macro_rules! faults {
    ($($variant:ident => $name:literal, $rule:ident, $doc:literal;)*) => {
        /// One way to break the ABI; [`Fault::rule`] is the rule the
        /// checker must report, and only that one.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Fault {
            /// No fault: every rule passes.
            None,
            $(#[doc = $doc] $variant,)*
        }

        impl Fault {
            /// Every fault, [`Fault::None`] excluded.
            pub const ALL: &'static [Fault] = &[$(Fault::$variant,)*];

            /// The name used on the command line.
            pub const fn name(self) -> &'static str {
                match self {
                    Fault::None => "none",
                    $(Fault::$variant => $name,)*
                }
            }

            /// The rule the fault breaks (`None` for [`Fault::None`]).
            pub const fn rule(self) -> Option<Rule> {
                match self {
                    Fault::None => None,
                    $(Fault::$variant => Some(Rule::$rule),)*
                }
            }

            /// What the fault does.
            pub const fn describe(self) -> &'static str {
                match self {
                    Fault::None => "no fault",
                    $(Fault::$variant => $doc,)*
                }
            }
        }
    };
}

faults! {
    ShortMapping => "short-mapping", R1, "the table file is truncated to 8 bytes after publication";
    BadMagic => "bad-magic", R2, "the magic is a deliberately incompatible one (0xaabbcce0)";
    OffsetBelowHeader => "offset-below-header", R3, "offset is 8, inside the 16-byte header";
    SizeNotMultipleOf8 => "size-not-multiple-of-8", R4, "size is 36";
    StrideBelowSize => "stride-below-size", R5, "stride is 32, below size 40";
    MisalignedStride => "misaligned-stride", R6, "stride is 68";
    RecordsPastMapping => "records-past-mapping", R7, "nr_records is 1000 in a one-page table";
    RecordStraddlesPage => "record-straddles-page", R8, "stride 3760 puts record 1 across the first page boundary";
    BadPageShift => "bad-page-shift", R9, "page_shift is 11";
    DescriptorsOutOfBounds => "descriptors-out-of-bounds", R10, "desc_stride is 32, below the 64-byte descriptor";
    DuplicateName => "duplicate-name", R11, "two producer-specific counters share the name exits";
    BadExponent => "bad-exponent", R12, "a time in seconds with exponent +3";
    CounterOutsideRecord => "counter-outside-record", R13, "descriptor 3's counter at offset 40 ends past size 40";
    DomainTwoRecords => "domain-two-records", R18, "a domain table with two records";
    RunningInactive => "running-inactive", R16, "vCPU 1 has active counters but an inactive running time";
    StandardFieldMislabelled => "standard-field-mislabelled", R17, "a producer counter named exits sits at the standard runnable time's offset";
    ReservedNonzero => "reserved-nonzero", P1, "a reserved head byte is non-zero";
    PaddingNotInactive => "padding-not-inactive", P4, "record 0's padding is published as zeros";
    V3RecordAddress => "v3-record-address", P9, "the RFC v3 writer: vCPU i written at offset + i * size, read at offset + i * stride";
    SeqBackwards => "seq-backwards", D1, "vCPU 1's seq is set 4 back";
    SeqStuckOdd => "seq-stuck-odd", D2, "vCPU 1's update is never finished: seq stays odd";
    CumulativeDecrements => "cumulative-decrements", D3, "vCPU 0's running time goes down by 500 ns";
    PeakDecrements => "peak-decrements", D4, "vCPU 0's peak max_exit_latency goes down";
    NonCanonicalInactive => "non-canonical-inactive", D5, "vCPU 0's blocked time is stored as 2^63 + 5, not the all-ones marker";
    DescriptorChanged => "descriptor-changed", D6, "descriptor 1's exponent changes after publication";
    WritesPastRecord => "writes-past-record", D7, "vCPU 0's writer also stores past its record, into the padding";
    RestartSameGeneration => "restart-same-generation", D8, "the table is re-published under the same name with the same generation";
    StdNamePastAbiSize => "std-name-past-abi-size", R17, "an r2 table with abi_size 16 describes runstate_runnable_time, _blocked_time and _offline_time, which lie past it";
    XstatsPastStride => "xstats-past-stride", R19, "an r3 table with xstats_offset = size and xstats_size = stride";
    XdescStandardName => "xdesc-standard-name", R20, "an r3 descriptor named runstate_running_time describes the producer-specific area";
    R3LegacyDescriptors => "r3-legacy-descriptors", R21, "an r3 table with desc_count = 4 (the r2 descriptor array)";
    VcpuSize8 => "vcpu-size-8", R22, "an r3 vCPU table with size = 8 (and abi_size = 8): no running time";
    DomainWithoutExt => "domain-without-ext", R23, "an r3 domain table whose hdr_marker is 0 (no extension header)";
    VcpuIdShifted => "vcpu-id-shifted", R24, "of an r3 table's 4 slots, vCPU 0 is in slot 0 and vCPU 1 in slot 2 (the toolstack counts 2 vCPUs)";
    RunstateOutOfRange => "runstate-out-of-range", R25, "vCPU 0's runstate becomes 7 in an r3 table";
    UnseededVcpu => "unseeded-vcpu", P10, "vCPU 1's slot of an r3 table is never written: unused at publication and after";
    EntryTimeFuture => "entry-time-future", P11, "vCPU 1's runstate_entry_time is set 1000 s ahead of the host's clock in an r3 table";
    PartialHistogram => "partial-histogram", P12, "bucket 2 of vCPU 0's histogram exit_hist is inactive while the others are active";
    TailSeqOdd => "tail-seq-odd", P13, "the seq words of an r3 table's tail slots are all ones (the r2 fill)";
    CounterResetPublished => "counter-reset-published", D3, "P14 broken: vCPU 0's exits counter is published raw after a reset (back to 1); the checker sees it as D3";
    RetireLeavesUsed => "retire-leaves-used", P15, "an r3 table's magic is cleared while its records are still used";
    EntryTimeBackwards => "entry-time-backwards", D9, "vCPU 0's runstate_entry_time goes 1000 ns back in an r3 table (clock 2, so D10 is not checked)";
    ExtrapolationDecreases => "extrapolation-decreases", D10, "vCPU 0's update moves runstate_entry_time to now without adding the time since the last entry to running";
}

impl Fault {
    /// The fault called `name` ([`Fault::name`]).
    pub fn from_name(name: &str) -> Option<Fault> {
        std::iter::once(Fault::None)
            .chain(Fault::ALL.iter().copied())
            .find(|f| f.name() == name)
    }

    /// Whether the fault leaves the table invalid (the producer then stops
    /// writing it: the checker does not sample invalid tables). R16, R17
    /// and R24-R28 are not validation failures.
    pub fn invalidates(self) -> bool {
        const VALID: [Rule; 7] = [
            Rule::R16,
            Rule::R17,
            Rule::R24,
            Rule::R25,
            Rule::R26,
            Rule::R27,
            Rule::R28,
        ];
        matches!(self.rule(), Some(r) if r.id().starts_with('R') && !VALID.contains(&r))
    }

    /// Whether the fault's table is an r3 table (published by the abi
    /// crate's writers, not the producer crate).
    pub fn is_r3(self) -> bool {
        matches!(
            self,
            Fault::XstatsPastStride
                | Fault::XdescStandardName
                | Fault::R3LegacyDescriptors
                | Fault::VcpuSize8
                | Fault::DomainWithoutExt
                | Fault::VcpuIdShifted
                | Fault::RunstateOutOfRange
                | Fault::UnseededVcpu
                | Fault::EntryTimeFuture
                | Fault::TailSeqOdd
                | Fault::RetireLeavesUsed
                | Fault::EntryTimeBackwards
                | Fault::ExtrapolationDecreases
        )
    }

    /// The vCPU count the toolstack reports for the fault's table of `nr`
    /// slots (the checker's `--vcpus`): 2 for [`Fault::VcpuIdShifted`]
    /// (two vCPUs, the second in the wrong slot), else `nr`.
    pub fn toolstack_vcpus(self, nr: u32) -> u32 {
        match self {
            Fault::VcpuIdShifted => 2.min(nr),
            _ => nr,
        }
    }
}

/// A producer-specific cumulative counter, after the standard fields.
const EXITS: Descriptor =
    Descriptor::scalar("exits", 40, Kind::CUMULATIVE, Unit::NONE, Base::POW10, 0);
/// A producer-specific peak counter.
const PEAK: Descriptor = Descriptor::scalar(
    "max_exit_latency",
    48,
    Kind::PEAK,
    Unit::SECONDS,
    Base::POW10,
    -9,
);

/// Buckets of [`EXIT_HIST`].
const HIST_BUCKETS: u32 = 4;

/// A producer-specific linear histogram of 4 buckets after the standard
/// fields.
const EXIT_HIST: Descriptor = Descriptor {
    offset: 40,
    count: HIST_BUCKETS,
    kind: Kind::LINEAR_HIST,
    bucket_size: 1000,
    ..Descriptor::scalar(
        "exit_hist",
        40,
        Kind::CUMULATIVE,
        Unit::NONE,
        Base::POW10,
        0,
    )
};

/// The table a fault's producer publishes: `(layout, descriptors)`.
fn shape(fault: Fault, nr: u32) -> io::Result<(Layout, Vec<Descriptor>)> {
    let std = VCPU_STD_DESCRIPTORS.to_vec();
    let (params, descs) = match fault {
        // The standard fields, then two producer-specific counters.
        Fault::PeakDecrements | Fault::DuplicateName => {
            let mut d = std;
            d.extend([EXITS, PEAK]);
            (
                LayoutParams {
                    record_size: 56,
                    desc_count: 6,
                    ..LayoutParams::vcpu_r2(nr)
                },
                d,
            )
        }
        Fault::StdNamePastAbiSize => (
            LayoutParams {
                abi_size: 16,
                ..LayoutParams::vcpu_r2(nr)
            },
            std,
        ),
        Fault::PartialHistogram => {
            let mut d = std;
            d.push(EXIT_HIST);
            (
                LayoutParams {
                    record_size: 40 + 8 * HIST_BUCKETS,
                    desc_count: 5,
                    ..LayoutParams::vcpu_r2(nr)
                },
                d,
            )
        }
        Fault::CounterResetPublished => {
            let mut d = std;
            d.extend([EXITS, PEAK]);
            (
                LayoutParams {
                    record_size: 56,
                    desc_count: 6,
                    ..LayoutParams::vcpu_r2(nr)
                },
                d,
            )
        }
        Fault::StandardFieldMislabelled => {
            let mut d = std;
            d[1] = Descriptor {
                offset: 16,
                ..EXITS
            };
            (LayoutParams::vcpu_r2(nr), d)
        }
        Fault::V3RecordAddress => (
            LayoutParams {
                record_size: 16,
                abi_size: 16,
                desc_count: 1,
                ..LayoutParams::vcpu_r2(nr)
            },
            std[..1].to_vec(),
        ),
        // Two pages, so that a stride can make record 1 cross the first
        // page boundary while the records still fit the mapping.
        Fault::RecordStraddlesPage => (LayoutParams::vcpu_r2(nr.max(64)), std),
        // The producer refuses a domain table of two records: publish the
        // domain record in a two-record table with the vCPU magic, then
        // turn it into a domain table by hand.
        Fault::DomainTwoRecords => (
            LayoutParams {
                nr_records: 2,
                ..LayoutParams::domain_r2()
            },
            DOMAIN_STD_DESCRIPTORS.to_vec(),
        ),
        _ => (LayoutParams::vcpu_r2(nr), std),
    };
    let layout = Layout::compute(&params).map_err(invalid)?;
    Ok((layout, descs))
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

/// One round of updates at a time on a published table; see the
/// [module](self) docs.
#[derive(Debug)]
pub struct Driver<'t> {
    fault: Fault,
    layout: Layout,
    raw: MemViewMut<'static>,
    writers: Vec<RecordWriter<'t>>,
    /// The producer's private counters of each record: the four runstate
    /// times, then exits and the peak (for tables that have them).
    values: Vec<[u64; 6]>,
    /// Records whose update was left unfinished.
    held: Vec<bool>,
    /// The v3 writer's private seqs.
    v3_seq: Vec<u32>,
    /// The r3 table's records, for an r3 fault.
    r3: Option<R3Records>,
    steps: u64,
}

/// The r3 driver's state of each record: written through the abi crate's
/// [`SeqWriter`] on the writable mapping.
#[derive(Debug)]
struct R3Records {
    /// Each record's seq writer.
    seqs: Vec<SeqWriter>,
    /// Each record's words: the four times, `runstate`, `runstate_entry_time`.
    words: Vec<[u64; 6]>,
    /// Slots that hold a vCPU (written at seeding and after).
    used: Vec<bool>,
    /// Records the driver no longer writes.
    frozen: Vec<bool>,
}

/// Publishes a vCPU table of `nr` records at `path` (replacing any file
/// there) with the real producer, applies `fault` if it is a static one,
/// and runs `body` with a [`Driver`] that updates it.
///
/// # Errors
///
/// I/O errors publishing the table or applying the fault.
pub fn with_fault_table<R>(
    path: &Path,
    fault: Fault,
    generation: u64,
    nr: u32,
    body: impl FnOnce(&mut Driver<'_>) -> R,
) -> io::Result<R> {
    if fault.is_r3() {
        return publish_r3(path, fault, generation, nr, body);
    }
    let (layout, descs) = shape(fault, nr)?;
    let spec = TableSpec {
        magic: VCPU_STATS_MAGIC,
        layout,
        descriptors: &descs,
        generation,
    };
    let mut shm = ShmTable::create(path, &spec)?;
    let raw = MemViewMut::map_file(path)?;
    apply_static(fault, path, &raw, &layout)?;
    let (_control, writers) = shm.split();
    let mut driver = Driver {
        fault,
        layout,
        raw,
        writers: writers.collect(),
        values: vec![[0; 6]; nr as usize],
        held: vec![false; nr as usize],
        v3_seq: vec![0; nr as usize],
        r3: None,
        steps: 0,
    };
    Ok(body(&mut driver))
}

/// Publishes a correct r3 vCPU table of `nr` records at `path` (clock 1,
/// every vCPU seeded before the magic), and runs `body` with a [`Driver`]
/// that updates it as the [module](self) docs say.
///
/// # Errors
///
/// I/O errors publishing the table.
pub fn with_r3_table<R>(
    path: &Path,
    generation: u64,
    nr: u32,
    body: impl FnOnce(&mut Driver<'_>) -> R,
) -> io::Result<R> {
    publish_r3(path, Fault::None, generation, nr, body)
}

/// The r3 table of an r3 fault (or of [`Fault::None`]): `(magic,
/// layout, r3 descriptors)`.
fn shape_r3(fault: Fault, nr: u32) -> io::Result<(u32, Layout, Vec<Descriptor>)> {
    let clock = match fault {
        Fault::EntryTimeBackwards => CLOCK_XEN_SYSTEM,
        _ => CLOCK_HOST_MONOTONIC,
    };
    let vcpu = LayoutParams {
        clock,
        ..LayoutParams::vcpu_r3(nr)
    };
    let (magic, params, descs) = match fault {
        Fault::XdescStandardName => (
            VCPU_STATS_MAGIC,
            LayoutParams {
                xstats_size: 8,
                xdesc_count: 1,
                ..vcpu
            },
            vec![Descriptor::scalar(
                "runstate_running_time",
                vstats_abi::record::VCPU_STATS_SIZE_R3,
                Kind::CUMULATIVE,
                Unit::SECONDS,
                Base::POW10,
                -9,
            )],
        ),
        Fault::DomainWithoutExt => (
            DOMAIN_STATS_MAGIC_R3,
            LayoutParams {
                clock,
                ..LayoutParams::domain_r3()
            },
            Vec::new(),
        ),
        _ => (VCPU_STATS_MAGIC, vcpu, Vec::new()),
    };
    let layout = Layout::compute(&params).map_err(invalid)?;
    Ok((magic, layout, descs))
}

/// Stores `v` at byte `at` of the private image `buf`.
fn put32(buf: &mut [u8], at: u64, v: u32) {
    if let Some(b) = usize::try_from(at)
        .ok()
        .and_then(|a| buf.get_mut(a..a.checked_add(4)?))
    {
        b.copy_from_slice(&v.to_ne_bytes());
    }
}

/// Stores `v` at byte `at` of the private image `buf`.
fn put64(buf: &mut [u8], at: u64, v: u64) {
    if let Some(b) = usize::try_from(at)
        .ok()
        .and_then(|a| buf.get_mut(a..a.checked_add(8)?))
    {
        b.copy_from_slice(&v.to_ne_bytes());
    }
}

/// The first words of vCPU `i`'s record at seeding, at `now` of the
/// table's clock: vCPU 0 entered `running` long before (half the clock's
/// value, at most an hour), the others enter state `i % 3` now.
fn seed_words(i: u32, now: u64) -> [u64; 6] {
    let t = 1000 * (u64::from(i) + 1);
    if i == 0 {
        let back = (now / 2).min(3_600_000_000_000);
        [t, 100, 10, 0, 0, now - back]
    } else {
        [t, 100, 10, 0, u64::from(i % 3), now]
    }
}

/// Lays out, seeds and publishes an r3 fault's table (see the
/// [module](self) docs), then runs `body` with its driver.
fn publish_r3<R>(
    path: &Path,
    fault: Fault,
    generation: u64,
    nr: u32,
    body: impl FnOnce(&mut Driver<'_>) -> R,
) -> io::Result<R> {
    let (magic, layout, descs) = shape_r3(fault, nr)?;
    let len = layout.mapping_len();
    let mut buf = vec![0u8; usize::try_from(len).map_err(invalid)?];
    layout
        .write_headers(&mut buf, magic, generation, &descs)
        .map_err(invalid)?;
    layout.fill_records(&mut buf).map_err(invalid)?;
    let used: Vec<bool> = (0..nr)
        .map(|i| match fault {
            Fault::VcpuIdShifted => i == 0 || i == 2,
            Fault::UnseededVcpu => i != 1,
            _ => true,
        })
        .collect();
    let now = monotonic_ns();
    let words: Vec<[u64; 6]> = (0..nr)
        .map(|i| {
            // The vCPU a slot holds: slot 2 holds vCPU 1 when shifted.
            let id = match (fault, i) {
                (Fault::VcpuIdShifted, 2) => 1,
                _ => i,
            };
            seed_words(id, now)
        })
        .collect();
    // P10: every existing vCPU's record, before the magic.
    if magic == VCPU_STATS_MAGIC {
        for i in (0..nr).filter(|&i| used[i as usize]) {
            let at = layout.record_offset(i).unwrap_or(0) + u64::from(RECORD_PREFIX);
            for (k, w) in words[i as usize].iter().enumerate() {
                put64(&mut buf, at + 8 * k as u64, *w);
            }
        }
    }
    apply_static_r3(fault, &mut buf, &layout);
    // Built in a private image, stored with the magic 0, then the magic
    // with release order, then renamed into place (P7).
    let tmp = path.with_extension("r3-tmp");
    let raw = MemViewMut::create_file(&tmp, len)?;
    put32(&mut buf, 0, 0);
    if !raw.store_bytes(0, &buf) {
        return Err(invalid("cannot write the table image"));
    }
    fence(Ordering::Release);
    if let Some(m) = raw.atomic::<u32>(0) {
        m.store(magic, Ordering::Release);
    }
    std::fs::rename(&tmp, path)?;
    let mut driver = Driver {
        fault,
        layout,
        raw,
        writers: Vec::new(),
        values: vec![[0; 6]; nr as usize],
        held: vec![false; nr as usize],
        v3_seq: vec![0; nr as usize],
        r3: Some(R3Records {
            seqs: (0..nr).map(|_| SeqWriter::new(0)).collect(),
            words,
            used,
            frozen: vec![false; nr as usize],
        }),
        steps: 0,
    };
    Ok(body(&mut driver))
}

/// Applies an r3 fault's static part to the image of its table before
/// publication.
fn apply_static_r3(fault: Fault, buf: &mut [u8], l: &Layout) {
    let ext = u64::from(EXT_HEADER_OFFSET);
    match fault {
        // xstats_offset = size, xstats_size = stride.
        Fault::XstatsPastStride => {
            put32(buf, 64, l.size);
            put32(buf, 68, l.stride);
        }
        Fault::R3LegacyDescriptors => put32(buf, ext + 24, 4),
        // size and abi_size 8.
        Fault::VcpuSize8 => {
            put32(buf, 8, 8);
            put32(buf, ext + 16, 8);
        }
        Fault::DomainWithoutExt => put32(buf, u64::from(HEADER_SIZE), 0),
        Fault::TailSeqOdd => {
            let (offset, stride) = (u64::from(l.offset), u64::from(l.stride));
            let mut at = offset + u64::from(l.nr_records) * stride;
            while at + stride <= l.mapping_len() {
                put32(buf, at, u32::MAX);
                at += stride;
            }
        }
        _ => {}
    }
}

/// Applies a static fault to a freshly published table.
fn apply_static(
    fault: Fault,
    path: &Path,
    raw: &MemViewMut<'static>,
    l: &Layout,
) -> io::Result<()> {
    let ext = u64::from(EXT_HEADER_OFFSET);
    let desc = |i: u64| u64::from(l.desc_offset) + i * u64::from(DESCRIPTOR_SIZE);
    let ok = match fault {
        Fault::ShortMapping => {
            OpenOptions::new().write(true).open(path)?.set_len(8)?;
            true
        }
        Fault::BadMagic => raw.store::<u32>(0, INCOMPATIBLE_MAGIC),
        Fault::OffsetBelowHeader => raw.store::<u32>(4, 8),
        Fault::SizeNotMultipleOf8 => raw.store::<u32>(8, 36),
        Fault::StrideBelowSize => raw.store::<u32>(12, 32),
        Fault::MisalignedStride => raw.store::<u32>(12, 68),
        Fault::RecordsPastMapping => raw.store::<u32>(ext + 8, 1000),
        Fault::RecordStraddlesPage => raw.store::<u32>(12, 3760) && raw.store::<u32>(ext + 8, 2),
        Fault::BadPageShift => raw.store::<u32>(ext + 12, 11),
        Fault::DescriptorsOutOfBounds => raw.store::<u32>(ext + 28, 32),
        Fault::DuplicateName => {
            let name: Vec<u8> = (0..12)
                .filter_map(|k| raw.load::<u32>(desc(4) + 4 * k))
                .flat_map(u32::to_ne_bytes)
                .collect();
            raw.store_bytes(desc(5), &name)
        }
        Fault::DomainTwoRecords => raw.store::<u32>(0, DOMAIN_STATS_MAGIC_R2),
        // kind, unit, base, exponent: cumulative, seconds, 10, +3.
        Fault::BadExponent => raw.store::<u32>(desc(0) + 56, u32::from_ne_bytes([0, 2, 10, 3])),
        Fault::CounterOutsideRecord => raw.store::<u32>(desc(3) + 48, VCPU_STATS_SIZE_R2),
        Fault::ReservedNonzero => raw.store::<u32>(u64::from(l.offset) - 8, 1),
        Fault::PaddingNotInactive => {
            let start = u64::from(l.offset);
            (u64::from(l.size)..u64::from(l.stride))
                .step_by(8)
                .all(|o| raw.store::<u64>(start + o, 0))
        }
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("cannot apply fault {}", fault.name())))
    }
}

impl Driver<'_> {
    /// The fault being injected.
    pub fn fault(&self) -> Fault {
        self.fault
    }

    /// The table's layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// A writable mapping of the table, for tests that play a hostile
    /// consumer.
    pub fn raw(&self) -> &MemViewMut<'static> {
        &self.raw
    }

    /// Steps done.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The producer's private value of record `i`'s running time (what the
    /// next consistent read must show, whatever anyone wrote meanwhile).
    pub fn running(&self, i: u32) -> Option<u64> {
        self.values.get(i as usize).map(|v| v[0])
    }

    /// The seq value record `i`'s writer last stored (its private copy).
    pub fn seq(&self, i: u32) -> Option<u32> {
        match &self.r3 {
            Some(r3) => r3.seqs.get(i as usize).map(SeqWriter::current),
            None => self.writers.get(i as usize).map(RecordWriter::seq),
        }
    }

    /// One round of updates: every record's counters grow; a dynamic fault
    /// strikes at step [`FAULT_STEP`]. Does nothing on a table a static
    /// fault made invalid.
    pub fn step(&mut self) {
        self.steps += 1;
        if self.fault.invalidates() {
            return;
        }
        if self.r3.is_some() {
            return self.step_r3();
        }
        let n = self.steps;
        let strike = n == FAULT_STEP;
        for i in 0..self.values.len() {
            let v = &mut self.values[i];
            v[0] += 1000 + i as u64;
            v[1] += 100;
            v[2] += 10;
            v[4] += 3;
            v[5] = v[5].max(n * 7);
            if strike && i == 0 {
                match self.fault {
                    Fault::CumulativeDecrements => v[0] -= 1500,
                    Fault::PeakDecrements => v[5] -= 10,
                    // The raw counter restarted at 0 and counted 1 since.
                    Fault::CounterResetPublished => v[4] = 1,
                    _ => {}
                }
            }
        }
        if self.fault == Fault::V3RecordAddress {
            return self.step_v3();
        }
        let start = |i: usize, l: &Layout| l.record_offset(i as u32).unwrap_or(0);
        for (i, w) in self.writers.iter_mut().enumerate() {
            if self.held[i] {
                continue;
            }
            let v = self.values[i];
            if strike && i == 1 && self.fault == Fault::SeqStuckOdd {
                // The update begins and is never finished: seq stays odd.
                self.held[i] = true;
                let _ = w.begin();
                continue;
            }
            let Some(mut u) = w.begin() else { continue };
            let running_inactive = i == 1 && self.fault == Fault::RunningInactive;
            if running_inactive {
                u.set_inactive(0);
            } else {
                u.set(0, v[0]);
            }
            u.set(1, v[1]);
            if self.fault == Fault::StandardFieldMislabelled {
                // Word 1 is the producer's own "exits" counter here.
                u.set(1, n);
            }
            if n >= FAULT_STEP && i == 0 && self.fault == Fault::NonCanonicalInactive {
                self.raw
                    .store::<u64>(start(i, &self.layout) + 24, (1 << 63) + 5);
            } else {
                u.set(2, v[2]);
            }
            u.set(3, 0);
            u.set(4, v[4]);
            u.set(5, v[5]);
            if self.fault == Fault::PartialHistogram {
                // exit_hist's 4 buckets, words 4 to 7: bucket 2 of vCPU 0
                // inactive from the fault's step on.
                for k in 4..8 {
                    if n >= FAULT_STEP && i == 0 && k == 6 {
                        u.set_inactive(k);
                    } else {
                        u.set(k, v[4] * (k as u64 - 3));
                    }
                }
            }
            u.finish();
        }
        let l = self.layout;
        match self.fault {
            Fault::SeqBackwards if strike => {
                let at = start(1, &l);
                if let Some(s) = self.raw.load::<u32>(at) {
                    self.raw.store::<u32>(at, s.wrapping_sub(4));
                }
            }
            // Exponent -9 becomes -6 (still valid: only the change is wrong).
            Fault::DescriptorChanged if strike => {
                let at = u64::from(l.desc_offset) + u64::from(DESCRIPTOR_SIZE) + 56;
                self.raw
                    .store::<u32>(at, u32::from_ne_bytes([0, 2, 10, (-6i8) as u8]));
            }
            Fault::WritesPastRecord if n >= FAULT_STEP => {
                self.raw
                    .store::<u64>(start(0, &l) + u64::from(l.size), self.values[0][0]);
            }
            _ => {}
        }
    }

    /// One round of updates of an r3 table (see the [module](self) docs);
    /// a dynamic r3 fault strikes at step [`FAULT_STEP`].
    fn step_r3(&mut self) {
        let n = self.steps;
        let strike = n == FAULT_STEP;
        let (fault, layout) = (self.fault, self.layout);
        if fault == Fault::RetireLeavesUsed && strike {
            // Retired without making the records unused first.
            if let Some(m) = self.raw.atomic::<u32>(0) {
                m.store(0, Ordering::Release);
            }
        }
        let Some(r3) = self.r3.as_mut() else { return };
        if fault == Fault::RetireLeavesUsed && n >= FAULT_STEP {
            return;
        }
        let now = monotonic_ns();
        for i in 0..r3.words.len() {
            if !r3.used[i] || r3.frozen[i] || self.held[i] {
                continue;
            }
            let w = &mut r3.words[i];
            match (fault, i) {
                // Entry moved to now, the time since the last entry lost.
                (Fault::ExtrapolationDecreases, 0) if strike => w[5] = now,
                (Fault::RunstateOutOfRange, 0) if strike => w[4] = 7,
                (Fault::EntryTimeBackwards, 0) if strike => w[5] -= 1000,
                (Fault::EntryTimeFuture, 1) if strike => {
                    accrue(w, now);
                    w[5] = now + 1_000_000_000_000;
                    r3.frozen[i] = true;
                }
                // vCPU 0 stays in running: its record is not rewritten.
                (_, 0) => continue,
                _ => {
                    accrue(w, now);
                    if n % 2 == 0 {
                        w[4] = (w[4] + 1) % 3;
                    }
                }
            }
            let words = *w;
            let Some(at) = layout.record_offset(i as u32) else {
                continue;
            };
            let (Some(seq), Some(dst)) = (
                self.raw.atomic::<u32>(at),
                self.raw
                    .atomics::<u64>(at + u64::from(RECORD_PREFIX), words.len()),
            ) else {
                continue;
            };
            r3.seqs[i].write(seq, || {
                for (d, v) in dst.iter().zip(words) {
                    d.store(v, Ordering::Relaxed);
                }
            });
            self.values[i][0] = words[0];
        }
    }

    /// The RFC v3 writer: the seq protocol done right, at the wrong
    /// address (`offset + i * size`; readers use `offset + i * stride`).
    fn step_v3(&mut self) {
        let l = self.layout;
        for i in 0..self.values.len() {
            let at = u64::from(l.offset) + i as u64 * u64::from(l.size);
            let s = self.v3_seq[i];
            let (Some(seq), Some(word)) =
                (self.raw.atomic::<u32>(at), self.raw.atomic::<u64>(at + 8))
            else {
                continue;
            };
            use std::sync::atomic::{fence, Ordering};
            seq.store(s.wrapping_add(1), Ordering::Relaxed);
            fence(Ordering::Release);
            word.store(self.values[i][0], Ordering::Relaxed);
            seq.store(s.wrapping_add(2), Ordering::Release);
            self.v3_seq[i] = s.wrapping_add(2);
        }
    }

    /// Begins an update of record `i` and never finishes it: seq stays odd,
    /// as when the writer dies mid-update. Returns the odd seq.
    pub fn begin_and_hold(&mut self, i: u32) -> Option<u32> {
        if let Some(r3) = self.r3.as_mut() {
            let at = self.layout.record_offset(i)?;
            let sw = r3.seqs.get_mut(i as usize)?;
            sw.begin(self.raw.atomic::<u32>(at)?);
            self.held[i as usize] = true;
            return Some(sw.current());
        }
        let w = self.writers.get_mut(i as usize)?;
        let _ = w.begin();
        self.held[i as usize] = true;
        Some(w.seq())
    }
}

/// A checkpoint of an r3 record at `now`: the time since the entry is
/// added to the current state's time, and the entry moves to `now`.
fn accrue(w: &mut [u64; 6], now: u64) {
    let open = now.saturating_sub(w[5]);
    if let Some(t) = usize::try_from(w[4])
        .ok()
        .filter(|&s| s < 4)
        .and_then(|s| w.get_mut(s))
    {
        *t += open;
    }
    w[5] = now;
}

/// A consumer rule's corpus entry (R26-R28 are not producer faults): a
/// table, written whole to a file, and the reading every consumer must make
/// of it ([`ReadingFixture::expected`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadingFixture {
    /// R26: an r3 table with clock 1 whose vCPUs are running, blocked,
    /// offline and runnable (the last entered after `now`: clocks that
    /// disagree), read at a fixed `now`.
    ExtrapolateClock1,
    /// R27: an r2 table whose histogram has one inactive bucket in vCPU 0
    /// and none in vCPU 1.
    HistogramOneInactive,
    /// R28: an r2 table with a linear and a log2 histogram of 4 buckets.
    LinearHistogramLastBucket,
}

/// What a consumer must read from a [`ReadingFixture`]'s table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpectedReading {
    /// R26: each vCPU's four runstate times brought up to `now_ns` of the
    /// table's clock (`None`: inactive).
    UpToDate {
        /// The instant, in the table's clock (1, host `CLOCK_MONOTONIC`).
        now_ns: u64,
        /// Per vCPU, in slot order: running, runnable, blocked, offline.
        times: Vec<[Option<u64>; 4]>,
    },
    /// R27: the histogram `name` is absent as a whole in `absent_in`, and
    /// reads as `present` in the other records.
    HistogramAbsent {
        /// The histogram's name.
        name: &'static str,
        /// The record whose histogram has an inactive bucket.
        absent_in: u32,
        /// `(record, buckets)` of the records that read it.
        present: Vec<(u32, Vec<u64>)>,
    },
    /// R28: each histogram's name and bucket ranges.
    BucketRanges(Vec<(&'static str, Vec<BucketRange>)>),
}

/// A histogram bucket's range `[lo, hi)`, `hi` `None` for the open-ended
/// last bucket (R28).
pub type BucketRange = (u64, Option<u64>);

/// `now` of [`ReadingFixture::ExtrapolateClock1`]: 1.0005 s.
const FIXTURE_NOW: u64 = 1_000_500_000;

/// The words of [`ReadingFixture::ExtrapolateClock1`]'s records: the four
/// times, `runstate`, `runstate_entry_time`.
const FIXTURE_RUNSTATES: [[u64; 6]; 4] = [
    // running since 1 s, 400 ns accrued there.
    [400, 10, 20, 0, 0, 1_000_000_000],
    // blocked since 0.999 s.
    [1_000, 2_000, 3_000, 0, 2, 999_000_000],
    // offline since now.
    [5, 6, 7, 8, 3, FIXTURE_NOW],
    // runnable since after now: clamped, nothing added.
    [1, 2, 3, 4, 1, FIXTURE_NOW + 100_000],
];

/// A linear histogram of 4 buckets, 1000 wide (R28).
const LINEAR_HIST: Descriptor = Descriptor {
    bucket_size: 1000,
    ..EXIT_HIST
};

/// A log2 histogram of 4 buckets after [`LINEAR_HIST`] (R28).
const LOG2_HIST: Descriptor = Descriptor {
    offset: 40 + 8 * HIST_BUCKETS,
    count: HIST_BUCKETS,
    kind: Kind::LOG2_HIST,
    bucket_size: 0,
    ..Descriptor::scalar(
        "exit_log2_hist",
        72,
        Kind::CUMULATIVE,
        Unit::NONE,
        Base::POW10,
        0,
    )
};

impl ReadingFixture {
    /// Every fixture.
    pub const ALL: &'static [ReadingFixture] = &[
        ReadingFixture::ExtrapolateClock1,
        ReadingFixture::HistogramOneInactive,
        ReadingFixture::LinearHistogramLastBucket,
    ];

    /// The fixture's name (design 8.1).
    pub const fn name(self) -> &'static str {
        match self {
            ReadingFixture::ExtrapolateClock1 => "extrapolate-clock1",
            ReadingFixture::HistogramOneInactive => "histogram-one-inactive",
            ReadingFixture::LinearHistogramLastBucket => "linear-histogram-last-bucket",
        }
    }

    /// The consumer rule it pins.
    pub const fn rule(self) -> Rule {
        match self {
            ReadingFixture::ExtrapolateClock1 => Rule::R26,
            ReadingFixture::HistogramOneInactive => Rule::R27,
            ReadingFixture::LinearHistogramLastBucket => Rule::R28,
        }
    }

    /// Writes the fixture's table to `path` (replacing any file there), as
    /// a published table that nobody updates.
    ///
    /// # Errors
    ///
    /// I/O errors writing the file.
    pub fn write(self, path: &Path) -> io::Result<()> {
        let (params, descs, records): (LayoutParams, Vec<Descriptor>, Vec<Vec<u64>>) = match self {
            ReadingFixture::ExtrapolateClock1 => (
                LayoutParams {
                    clock: CLOCK_HOST_MONOTONIC,
                    ..LayoutParams::vcpu_r3(FIXTURE_RUNSTATES.len() as u32)
                },
                Vec::new(),
                FIXTURE_RUNSTATES.iter().map(|r| r.to_vec()).collect(),
            ),
            ReadingFixture::HistogramOneInactive => {
                let mut d = VCPU_STD_DESCRIPTORS.to_vec();
                d.push(EXIT_HIST);
                (
                    LayoutParams {
                        record_size: 40 + 8 * HIST_BUCKETS,
                        desc_count: 5,
                        ..LayoutParams::vcpu_r2(2)
                    },
                    d,
                    vec![
                        vec![100, 10, 1, 0, 1, 2, u64::MAX, 4],
                        vec![200, 20, 2, 0, 1, 2, 3, 4],
                    ],
                )
            }
            ReadingFixture::LinearHistogramLastBucket => {
                let mut d = VCPU_STD_DESCRIPTORS.to_vec();
                d.extend([LINEAR_HIST, LOG2_HIST]);
                (
                    LayoutParams {
                        record_size: 40 + 16 * HIST_BUCKETS,
                        desc_count: 6,
                        ..LayoutParams::vcpu_r2(1)
                    },
                    d,
                    vec![vec![100, 10, 1, 0, 5, 4, 3, 2, 1, 1, 1, 7]],
                )
            }
        };
        let layout = Layout::compute(&params).map_err(invalid)?;
        let mut buf = vec![0u8; usize::try_from(layout.mapping_len()).map_err(invalid)?];
        layout
            .write_headers(&mut buf, VCPU_STATS_MAGIC, 1, &descs)
            .map_err(invalid)?;
        layout.fill_records(&mut buf).map_err(invalid)?;
        for (i, words) in records.iter().enumerate() {
            let at = layout.record_offset(i as u32).unwrap_or(0) + u64::from(RECORD_PREFIX);
            for (k, w) in words.iter().enumerate() {
                put64(&mut buf, at + 8 * k as u64, *w);
            }
        }
        let tmp = path.with_extension("fixture-tmp");
        std::fs::write(&tmp, &buf)?;
        std::fs::rename(&tmp, path)
    }

    /// The reading every consumer must make of the fixture's table.
    pub fn expected(self) -> ExpectedReading {
        match self {
            ReadingFixture::ExtrapolateClock1 => ExpectedReading::UpToDate {
                now_ns: FIXTURE_NOW,
                times: vec![
                    [Some(500_400), Some(10), Some(20), Some(0)],
                    [Some(1_000), Some(2_000), Some(1_503_000), Some(0)],
                    [Some(5), Some(6), Some(7), Some(8)],
                    [Some(1), Some(2), Some(3), Some(4)],
                ],
            },
            ReadingFixture::HistogramOneInactive => ExpectedReading::HistogramAbsent {
                name: "exit_hist",
                absent_in: 0,
                present: vec![(1, vec![1, 2, 3, 4])],
            },
            ReadingFixture::LinearHistogramLastBucket => ExpectedReading::BucketRanges(vec![
                (
                    "exit_hist",
                    vec![
                        (0, Some(1000)),
                        (1000, Some(2000)),
                        (2000, Some(3000)),
                        (3000, None),
                    ],
                ),
                (
                    "exit_log2_hist",
                    vec![(0, Some(1)), (1, Some(2)), (2, Some(4)), (4, None)],
                ),
            ]),
        }
    }
}
