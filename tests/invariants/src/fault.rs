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

use std::{fs::OpenOptions, io, path::Path};

use vstats_abi::{
    desc::{Base, Descriptor, Kind, Unit, DESCRIPTOR_SIZE},
    header::EXT_HEADER_OFFSET,
    layout::{Layout, LayoutParams},
    record::{DOMAIN_STD_DESCRIPTORS, VCPU_STATS_SIZE_R2, VCPU_STD_DESCRIPTORS},
    Rule, DOMAIN_STATS_MAGIC_R2, VCPU_STATS_MAGIC,
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
}

impl Fault {
    /// The fault called `name` ([`Fault::name`]).
    pub fn from_name(name: &str) -> Option<Fault> {
        std::iter::once(Fault::None)
            .chain(Fault::ALL.iter().copied())
            .find(|f| f.name() == name)
    }

    /// Whether the fault leaves the table invalid (the producer then stops
    /// writing it: the checker does not sample invalid tables).
    pub fn invalidates(self) -> bool {
        matches!(self.rule(), Some(r) if r.id().starts_with('R') && r != Rule::R16 && r != Rule::R17)
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
    steps: u64,
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
        steps: 0,
    };
    Ok(body(&mut driver))
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
        self.writers.get(i as usize).map(RecordWriter::seq)
    }

    /// One round of updates: every record's counters grow; a dynamic fault
    /// strikes at step [`FAULT_STEP`]. Does nothing on a table a static
    /// fault made invalid.
    pub fn step(&mut self) {
        self.steps += 1;
        if self.fault.invalidates() {
            return;
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
        let w = self.writers.get_mut(i as usize)?;
        let _ = w.begin();
        self.held[i as usize] = true;
        Some(w.seq())
    }
}
