//! Shared pieces of the cross-process test programs: the table they use and
//! the pattern the producer writes, which lets a consumer in another process
//! tell a consistent snapshot from a torn one.
//!
//! Record `i` after its `v`-th update holds, in counter word `k`,
//! [`pattern`]`(v, k)`. Every word is derived from `v`, and `v` is the number
//! of updates the record has had, so a snapshot is consistent exactly when
//! every word matches the pattern of one `v` and that `v` equals `seq / 2`.

use std::{io, path::Path};

use vstats_abi::{
    desc::{Base, Descriptor, Kind, Unit, NAME_LEN},
    layout::{Layout, LayoutParams, DEFAULT_CACHELINE, DEFAULT_PAGE_SIZE},
    INACTIVE, VCPU_STATS_MAGIC,
};
use vstats_producer::{shm::ShmTable, TableSpec};

/// Counter words per record (a record spans 56 bytes: more than one
/// `u64`, so tearing is possible, and less than a cacheline).
pub const WORDS: u32 = 6;

/// The value of word `k` after update `v`: distinct per word, below the
/// inactive bit.
pub fn pattern(v: u64, k: u32) -> u64 {
    v.wrapping_mul(2 * u64::from(k) + 1) & ((1 << 62) - 1)
}

/// Whether `words` (at seq `seq`) is a snapshot the producer published.
///
/// Seq 0 is the record as the producer initialised it, before its first
/// update: every counter word inactive. A consumer that attaches between
/// the table's publication and the writer's first update sees exactly that,
/// and it is a consistent state, not a torn one.
pub fn is_consistent(seq: u32, words: &[u64]) -> bool {
    if seq == 0 {
        return words.iter().all(|&w| w == INACTIVE);
    }
    let v = u64::from(seq / 2);
    seq % 2 == 0 && words.iter().zip(0..).all(|(&w, k)| w == pattern(v, k))
}

fn descriptors() -> Vec<Descriptor> {
    (0..WORDS)
        .map(|k| {
            let mut name = [0u8; NAME_LEN];
            let s = format!("word{k}");
            name[..s.len()].copy_from_slice(s.as_bytes());
            Descriptor {
                name,
                offset: 8 + 8 * k,
                count: 1,
                kind: Kind::CUMULATIVE,
                unit: Unit::NONE,
                base: Base::POW10,
                exponent: 0,
                bucket_size: 0,
            }
        })
        .collect()
}

/// Creates the pattern table with `records` records at `path`.
///
/// # Errors
///
/// I/O errors from creating the file, or an invalid layout.
pub fn create_table(path: &Path, records: u32) -> io::Result<ShmTable> {
    let params = LayoutParams {
        nr_records: records,
        record_size: 8 + 8 * WORDS,
        abi_size: 8,
        desc_count: WORDS,
        page_size: DEFAULT_PAGE_SIZE,
        cacheline: DEFAULT_CACHELINE,
    };
    let layout = Layout::compute(&params)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let descs = descriptors();
    let spec = TableSpec {
        magic: VCPU_STATS_MAGIC,
        layout,
        descriptors: &descs,
        generation: vstats_producer::shm::fresh_generation(),
    };
    ShmTable::create(path, &spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consistency_check_can_fail() {
        let good: Vec<u64> = (0..WORDS).map(|k| pattern(7, k)).collect();
        assert!(is_consistent(14, &good));
        assert!(!is_consistent(15, &good), "odd seq");
        assert!(!is_consistent(16, &good), "values of another update");
        let mut torn = good.clone();
        torn[3] = pattern(8, 3);
        assert!(!is_consistent(14, &torn), "one word from the next update");
    }

    #[test]
    fn the_initial_state_is_consistent_and_only_at_seq_zero() {
        let fresh = vec![INACTIVE; WORDS as usize];
        assert!(is_consistent(0, &fresh));
        assert!(!is_consistent(2, &fresh), "inactive words after an update");
        let first: Vec<u64> = (0..WORDS).map(|k| pattern(1, k)).collect();
        assert!(!is_consistent(0, &first), "update 1's words at seq 0");
        let mut half = fresh.clone();
        half[0] = pattern(1, 0);
        assert!(!is_consistent(0, &half), "first update half written");
    }
}
