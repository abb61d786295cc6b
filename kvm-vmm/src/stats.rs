//! KVM binary statistics (`KVM_GET_STATS_FD`, Linux 5.14+).
//!
//! A stats file starts with a `struct kvm_stats_header`, followed (at the
//! offsets the header gives) by an id string, `num_desc` descriptors of
//! `16 + name_size` bytes each, and a data block. A descriptor's values are
//! `size` native-endian `u64` words at `data_offset + desc.offset`. The
//! descriptors never change for an open file; the data is re-read with
//! `pread`, one system call per [`KvmStats::read`].

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use crate::error::{Error, Result};

const HEADER_SIZE: usize = 24;
const DESC_FIXED_SIZE: usize = 16;
/// A sanity bound on names and counts so a corrupt header cannot make us
/// allocate gigabytes.
const MAX_NAME_SIZE: u32 = 4096;
const MAX_DESCS: u32 = 65_536;
const MAX_WORDS_PER_DESC: u32 = 65_536;
/// Data blocks up to this size are read into a stack buffer.
const STACK_BUF: usize = 4096;

/// `kind` of a cumulative counter (`KVM_STATS_TYPE_CUMULATIVE`).
pub const KIND_CUMULATIVE: u8 = 0;
/// `kind` of an instantaneous value (`KVM_STATS_TYPE_INSTANT`).
pub const KIND_INSTANT: u8 = 1;
/// `kind` of a peak value (`KVM_STATS_TYPE_PEAK`).
pub const KIND_PEAK: u8 = 2;
/// `kind` of a linear histogram (`KVM_STATS_TYPE_LINEAR_HIST`).
pub const KIND_LINEAR_HIST: u8 = 3;
/// `kind` of a logarithmic histogram (`KVM_STATS_TYPE_LOG_HIST`).
pub const KIND_LOG_HIST: u8 = 4;

/// `unit`: a plain count (`KVM_STATS_UNIT_NONE`).
pub const UNIT_NONE: u8 = 0;
/// `unit`: bytes.
pub const UNIT_BYTES: u8 = 1;
/// `unit`: seconds (scaled by `base^exponent`, e.g. `10^-9` for ns).
pub const UNIT_SECONDS: u8 = 2;
/// `unit`: CPU cycles.
pub const UNIT_CYCLES: u8 = 3;
/// `unit`: a boolean (0 or 1).
pub const UNIT_BOOLEAN: u8 = 4;

/// One statistic as described by KVM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvmStatDesc {
    /// The statistic's name, e.g. `"exits"`.
    pub name: String,
    /// `KVM_STATS_TYPE_*` shifted down: 0 cumulative, 1 instant, 2 peak,
    /// 3 linear histogram, 4 logarithmic histogram (see `KIND_*`).
    pub kind: u8,
    /// `KVM_STATS_UNIT_*` shifted down: 0 none, 1 bytes, 2 seconds,
    /// 3 cycles, 4 boolean (see `UNIT_*`).
    pub unit: u8,
    /// Base of `exponent`: 10 or 2 (0 if the kernel reports a base this
    /// crate does not know).
    pub base: u8,
    /// The value is `raw * base^exponent` units.
    pub exponent: i16,
    /// Number of `u64` words (1 for scalars, buckets for histograms).
    pub size: u32,
    /// Byte offset of the first word inside the file's data block.
    pub offset: u32,
    /// Bucket width of a linear histogram, else 0.
    pub bucket_size: u32,
}

/// An open binary statistics file of one VM or one vCPU, with its parsed
/// descriptors.
///
/// Values are read into a caller-provided flat `[u64]` holding every
/// descriptor's `size` words in descriptor order; [`KvmStats::range`] maps a
/// name to its words. `KvmStats` is `Send + Sync`: reads take `&self`.
#[derive(Debug)]
pub struct KvmStats {
    file: File,
    id: String,
    descs: Vec<KvmStatDesc>,
    /// Start of each descriptor's words in the flat value array.
    starts: Vec<usize>,
    nr_words: usize,
    data_offset: u64,
    /// Bytes of the data block covering every descriptor.
    data_len: usize,
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    let bytes = buf.get(at..at.checked_add(2)?)?;
    Some(u16::from_ne_bytes(bytes.try_into().ok()?))
}

fn malformed(what: impl Into<String>) -> Error {
    Error::MalformedStats(what.into())
}

/// Decodes the descriptor block: `count` records of `16 + name_size` bytes.
fn parse_descs(block: &[u8], count: usize, name_size: usize) -> Result<Vec<KvmStatDesc>> {
    let stride = DESC_FIXED_SIZE + name_size;
    let mut descs = Vec::with_capacity(count);
    for i in 0..count {
        let rec = block
            .get(i * stride..(i + 1) * stride)
            .ok_or_else(|| malformed("descriptor block truncated"))?;
        let field = |at| u32_at(rec, at).ok_or_else(|| malformed("descriptor truncated"));
        let flags = field(0)?;
        let exponent = u16_at(rec, 4).ok_or_else(|| malformed("descriptor truncated"))? as i16;
        let size = u16_at(rec, 6).ok_or_else(|| malformed("descriptor truncated"))?;
        let offset = field(8)?;
        let bucket_size = field(12)?;
        let name_bytes = &rec[DESC_FIXED_SIZE..];
        let name_len = name_bytes
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(name_bytes.len());
        let name = String::from_utf8_lossy(&name_bytes[..name_len]).into_owned();
        let kind = ((flags & kvm_bindings::KVM_STATS_TYPE_MASK)
            >> kvm_bindings::KVM_STATS_TYPE_SHIFT) as u8;
        let unit = ((flags & kvm_bindings::KVM_STATS_UNIT_MASK)
            >> kvm_bindings::KVM_STATS_UNIT_SHIFT) as u8;
        let base = match flags & kvm_bindings::KVM_STATS_BASE_MASK {
            kvm_bindings::KVM_STATS_BASE_POW10 => 10,
            kvm_bindings::KVM_STATS_BASE_POW2 => 2,
            _ => 0,
        };
        if u32::from(size) > MAX_WORDS_PER_DESC {
            return Err(malformed(format!("{name}: size {size} too large")));
        }
        descs.push(KvmStatDesc {
            name,
            kind,
            unit,
            base,
            exponent,
            size: u32::from(size),
            offset,
            bucket_size,
        });
    }
    Ok(descs)
}

impl KvmStats {
    /// Parses the header and descriptors of an open stats file.
    pub(crate) fn from_file(file: File) -> Result<Self> {
        let mut header = [0u8; HEADER_SIZE];
        file.read_exact_at(&mut header, 0)
            .map_err(|e| Error::io("reading the KVM stats header", e))?;
        let h = |at| u32_at(&header, at).unwrap_or(0);
        let (name_size, num_desc, id_offset, desc_offset, data_offset) =
            (h(4), h(8), h(12), h(16), h(20));
        if name_size > MAX_NAME_SIZE || num_desc > MAX_DESCS {
            return Err(malformed(format!(
                "name_size {name_size}, num_desc {num_desc}"
            )));
        }
        let name_size = name_size as usize;
        let mut id = vec![0u8; name_size];
        file.read_exact_at(&mut id, u64::from(id_offset))
            .map_err(|e| Error::io("reading the KVM stats id", e))?;
        let id_len = id.iter().position(|&b| b == 0).unwrap_or(id.len());
        let id = String::from_utf8_lossy(&id[..id_len]).into_owned();

        let count = num_desc as usize;
        let mut block = vec![0u8; count * (DESC_FIXED_SIZE + name_size)];
        file.read_exact_at(&mut block, u64::from(desc_offset))
            .map_err(|e| Error::io("reading the KVM stats descriptors", e))?;
        let descs = parse_descs(&block, count, name_size)?;

        let mut starts = Vec::with_capacity(descs.len());
        let mut nr_words = 0usize;
        let mut data_len = 0usize;
        for d in &descs {
            starts.push(nr_words);
            nr_words += d.size as usize;
            data_len = data_len.max(d.offset as usize + d.size as usize * 8);
        }
        Ok(Self {
            file,
            id,
            descs,
            starts,
            nr_words,
            data_offset: u64::from(data_offset),
            data_len,
        })
    }

    /// The kernel's id string of this file, e.g. `"kvm-1234/vcpu-0"`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The descriptors, in file order.
    pub fn descs(&self) -> &[KvmStatDesc] {
        &self.descs
    }

    /// Total number of `u64` words [`KvmStats::read`] fills: the sum of
    /// every descriptor's `size`.
    pub fn nr_words(&self) -> usize {
        self.nr_words
    }

    /// The index of the descriptor named `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.descs.iter().position(|d| d.name == name)
    }

    /// Where descriptor `index`'s words live in the flat value array.
    pub fn range_of(&self, index: usize) -> Option<Range<usize>> {
        let start = *self.starts.get(index)?;
        let size = self.descs.get(index)?.size as usize;
        Some(start..start + size)
    }

    /// Where the words of the statistic named `name` live in the flat value
    /// array.
    pub fn range(&self, name: &str) -> Option<Range<usize>> {
        self.range_of(self.find(name)?)
    }

    /// The first word of the statistic named `name` in `values` (a buffer
    /// filled by [`KvmStats::read`]).
    pub fn value(&self, values: &[u64], name: &str) -> Option<u64> {
        values.get(self.range(name)?.start).copied()
    }

    /// A zeroed buffer of [`KvmStats::nr_words`] words.
    pub fn new_buffer(&self) -> Vec<u64> {
        vec![0; self.nr_words]
    }

    /// Reads every statistic into `out` (exactly [`KvmStats::nr_words`]
    /// long, descriptor order, `size` words each) with one `pread`.
    pub fn read(&self, out: &mut [u64]) -> io::Result<()> {
        if out.len() != self.nr_words {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "stats buffer holds {} words, need {}",
                    out.len(),
                    self.nr_words
                ),
            ));
        }
        let mut stack = [0u8; STACK_BUF];
        let mut heap = Vec::new();
        let buf: &mut [u8] = if self.data_len <= STACK_BUF {
            &mut stack[..self.data_len]
        } else {
            heap.resize(self.data_len, 0);
            &mut heap
        };
        self.file.read_exact_at(buf, self.data_offset)?;
        for (d, &start) in self.descs.iter().zip(&self.starts) {
            let base = d.offset as usize;
            for (j, word) in out[start..start + d.size as usize].iter_mut().enumerate() {
                let at = base + 8 * j;
                let bytes = buf
                    .get(at..at + 8)
                    .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
                let mut w = [0u8; 8];
                w.copy_from_slice(bytes);
                *word = u64::from_ne_bytes(w);
            }
        }
        Ok(())
    }
}

/// Continues KVM's resettable cumulative counters (P14): KVM lets an
/// administrator reset a statistic (writing 0 to its debugfs file), which
/// would publish a cumulative counter decreasing. The publisher keeps an
/// offset per cumulative word (counters and histogram buckets) and
/// publishes `raw + offset`; when a raw value is below the last one seen,
/// the last one is added to the offset. So a published value never
/// decreases; the increments between the last read before a reset and the
/// reset are lost (they were never read). Instant and peak values are
/// published as read (a peak's reset is a new peak window, not a decrease
/// of a total).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Continued {
    /// Per word: whether it is cumulative, its last raw value and its
    /// offset.
    words: Vec<(bool, u64, u64)>,
}

impl Continued {
    /// The continuation of the statistics `descs` describe, in their word
    /// order (as [`KvmStats::read`] lays them out), nothing seen yet.
    pub fn new(descs: &[KvmStatDesc]) -> Continued {
        let words = descs
            .iter()
            .flat_map(|d| {
                let cumulative =
                    matches!(d.kind, KIND_CUMULATIVE | KIND_LINEAR_HIST | KIND_LOG_HIST);
                std::iter::repeat_n((cumulative, 0, 0), d.size as usize)
            })
            .collect();
        Continued { words }
    }

    /// Turns `raw`, one read of the statistics, into the values to
    /// publish, in place. Words beyond the described ones are left as
    /// they are.
    pub fn apply(&mut self, raw: &mut [u64]) {
        for (v, (cumulative, last, offset)) in raw.iter_mut().zip(&mut self.words) {
            if !*cumulative {
                continue;
            }
            if *v < *last {
                *offset = offset.saturating_add(*last);
            }
            *last = *v;
            *v = v.saturating_add(*offset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc_bytes(
        flags: u32,
        exponent: i16,
        size: u16,
        offset: u32,
        bucket: u32,
        name: &str,
        name_size: usize,
    ) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&exponent.to_ne_bytes());
        v.extend_from_slice(&size.to_ne_bytes());
        v.extend_from_slice(&offset.to_ne_bytes());
        v.extend_from_slice(&bucket.to_ne_bytes());
        let mut n = name.as_bytes().to_vec();
        n.resize(name_size, 0);
        v.extend_from_slice(&n);
        v
    }

    #[test]
    fn parses_flags_and_names() {
        let ns = 48;
        let mut block = desc_bytes(0, 0, 1, 0, 0, "exits", ns);
        // Log histogram, seconds, base 10, 10^-9, 32 buckets.
        let flags = kvm_bindings::KVM_STATS_TYPE_LOG_HIST | kvm_bindings::KVM_STATS_UNIT_SECONDS;
        block.extend(desc_bytes(flags, -9, 32, 8, 0, "halt_wait_hist", ns));
        let flags = kvm_bindings::KVM_STATS_TYPE_PEAK
            | kvm_bindings::KVM_STATS_UNIT_BYTES
            | kvm_bindings::KVM_STATS_BASE_POW2;
        block.extend(desc_bytes(flags, 12, 1, 264, 7, "peak", ns));
        let d = parse_descs(&block, 3, ns).unwrap();
        assert_eq!(d[0].name, "exits");
        assert_eq!(
            (d[0].kind, d[0].unit, d[0].base, d[0].size),
            (KIND_CUMULATIVE, UNIT_NONE, 10, 1)
        );
        assert_eq!(
            (d[1].kind, d[1].unit, d[1].exponent, d[1].size, d[1].offset),
            (KIND_LOG_HIST, UNIT_SECONDS, -9, 32, 8)
        );
        assert_eq!(
            (d[2].kind, d[2].unit, d[2].base, d[2].bucket_size),
            (KIND_PEAK, UNIT_BYTES, 2, 7)
        );
    }

    /// A synthetic stats file: header, id, 3 descriptors whose data offsets
    /// are not in descriptor order (as in real VM stats files), data.
    #[test]
    fn reads_a_synthetic_stats_file() {
        let ns = 32usize;
        let (id_off, desc_off) = (24u32, 24 + ns as u32);
        let data_off = desc_off + 3 * (16 + ns as u32);
        let mut file = Vec::new();
        for v in [0u32, ns as u32, 3, id_off, desc_off, data_off] {
            file.extend_from_slice(&v.to_ne_bytes());
        }
        let mut id = b"kvm-1/vcpu-0".to_vec();
        id.resize(ns, 0);
        file.extend(id);
        file.extend(desc_bytes(0, 0, 1, 24, 0, "b_last", ns));
        let hist = kvm_bindings::KVM_STATS_TYPE_LINEAR_HIST;
        file.extend(desc_bytes(hist, 0, 2, 8, 16, "hist", ns));
        file.extend(desc_bytes(
            kvm_bindings::KVM_STATS_TYPE_INSTANT,
            0,
            1,
            0,
            0,
            "a_first",
            ns,
        ));
        for v in [11u64, 22, 33, 44] {
            file.extend_from_slice(&v.to_ne_bytes());
        }
        let path =
            std::env::temp_dir().join(format!("vstats-kvm-vmm-stats-{}", std::process::id()));
        std::fs::write(&path, &file).unwrap();
        let stats = KvmStats::from_file(File::open(&path).unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();

        assert_eq!(stats.id(), "kvm-1/vcpu-0");
        assert_eq!(stats.nr_words(), 4);
        let mut values = stats.new_buffer();
        stats.read(&mut values).unwrap();
        assert_eq!(values, [44, 22, 33, 11]);
        assert_eq!(stats.range("hist"), Some(1..3));
        assert_eq!(stats.descs()[1].bucket_size, 16);
        assert_eq!(stats.value(&values, "a_first"), Some(11));
        assert_eq!(stats.value(&values, "missing"), None);
        assert!(stats.read(&mut values[..3]).is_err());
    }

    #[test]
    fn truncated_block_is_an_error() {
        let block = desc_bytes(0, 0, 1, 0, 0, "exits", 16);
        assert!(parse_descs(&block[..20], 1, 16).is_err());
    }

    /// A stand-in for a KVM stats file whose counters an administrator
    /// resets: each read returns the next of a scripted sequence.
    struct ResettingStats {
        reads: std::cell::Cell<usize>,
        script: Vec<Vec<u64>>,
    }

    impl ResettingStats {
        fn read(&self, out: &mut [u64]) {
            let i = self.reads.get();
            out.copy_from_slice(&self.script[i]);
            self.reads.set(i + 1);
        }
    }

    #[test]
    fn a_reset_cumulative_counter_is_continued_never_decreasing() {
        let d = |name: &str, kind, size| KvmStatDesc {
            name: name.into(),
            kind,
            unit: UNIT_NONE,
            base: 10,
            exponent: 0,
            size,
            offset: 0,
            bucket_size: 0,
        };
        let descs = [
            d("exits", KIND_CUMULATIVE, 1),
            d("pending", KIND_INSTANT, 1),
            d("max_wait", KIND_PEAK, 1),
            d("hist", KIND_LOG_HIST, 2),
        ];
        // exits: 10, 25, reset to 3, 7, reset to 0, 4.
        let fake = ResettingStats {
            reads: std::cell::Cell::new(0),
            script: vec![
                vec![10, 5, 100, 1, 2],
                vec![25, 1, 120, 3, 2],
                vec![3, 9, 7, 0, 0],
                vec![7, 2, 9, 1, 1],
                vec![0, 0, 0, 0, 0],
                vec![4, 3, 5, 2, 0],
            ],
        };
        let mut c = Continued::new(&descs);
        let mut published = Vec::new();
        let mut buf = vec![0; 5];
        for _ in 0..fake.script.len() {
            fake.read(&mut buf);
            c.apply(&mut buf);
            published.push(buf.clone());
        }
        let exits: Vec<u64> = published.iter().map(|w| w[0]).collect();
        // 25 + 3, 25 + 7, then 25 + 7 + 0, 25 + 7 + 4.
        assert_eq!(exits, [10, 25, 28, 32, 32, 36]);
        // Instant and peak values as read.
        let pending: Vec<u64> = published.iter().map(|w| w[1]).collect();
        assert_eq!(pending, [5, 1, 9, 2, 0, 3]);
        let peak: Vec<u64> = published.iter().map(|w| w[2]).collect();
        assert_eq!(peak, [100, 120, 7, 9, 0, 5]);
        // Histogram buckets are continued each on its own.
        let b0: Vec<u64> = published.iter().map(|w| w[3]).collect();
        assert_eq!(b0, [1, 3, 3, 4, 4, 6]);
        let b1: Vec<u64> = published.iter().map(|w| w[4]).collect();
        assert_eq!(b1, [2, 2, 2, 3, 3, 3]);
        // Every cumulative word never decreases (P14, checked as D3 does).
        for k in [0, 3, 4] {
            assert!(published.windows(2).all(|p| p[0][k] <= p[1][k]), "word {k}");
        }
        // Words beyond the described ones are untouched.
        let mut more = vec![1, 1, 1, 1, 1, 42];
        c.apply(&mut more);
        assert_eq!(more[5], 42);
    }
}
