//! Shared pieces of the cross-process test programs: the table they use and
//! the pattern the producer writes, which lets a consumer in another process
//! tell a consistent snapshot from a torn one.
//!
//! Record `i` after its `v`-th update holds, in counter word `k`,
//! [`pattern`]`(v, k)`. Every word is derived from `v`, and `v` is the number
//! of updates the record has had, so a snapshot is consistent exactly when
//! every word matches the pattern of one `v` and that `v` equals `seq / 2`.

use std::{io, path::Path};

use vstats_abi::{desc::Descriptor, INACTIVE, VCPU_STATS_MAGIC};
use vstats_producer::{
    builder::{TableBuilder, TablePlan},
    publish::{Publication, PublishOptions},
    shm::ShmTable,
};

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

/// The pattern table of `records` records: `WORDS` counters `word0`,
/// `word1`, ..., nothing standard described.
///
/// # Errors
///
/// Never in practice; the producer's error otherwise.
pub fn plan(records: u32) -> vstats_producer::Result<TablePlan> {
    let mut b = TableBuilder::bare(VCPU_STATS_MAGIC, records);
    for k in 0..WORDS {
        b.counter(Descriptor::builder(&format!("word{k}")))?;
    }
    b.build()
}

/// Publishes the pattern table with `records` records at `path` (its
/// directory locked by the returned publication, which removes the file
/// when dropped, after the table).
///
/// # Errors
///
/// The publication's errors (creating, locking, allocating), or an
/// invalid layout, as `io::Error`s.
pub fn create_table(path: &Path, records: u32) -> io::Result<(ShmTable, Publication)> {
    let invalid =
        |e: &dyn std::fmt::Display| io::Error::new(io::ErrorKind::InvalidInput, e.to_string());
    let (dir, file) = match (path.parent(), path.file_name().and_then(|f| f.to_str())) {
        (Some(d), Some(f)) => (d, f),
        _ => return Err(invalid(&format!("{}: not a file path", path.display()))),
    };
    let plan = plan(records).map_err(|e| invalid(&e))?;
    let mut publication =
        Publication::create_dir(dir, PublishOptions::default()).map_err(|e| invalid(&e))?;
    let table = publication.publish(file, &plan).map_err(|e| invalid(&e))?;
    Ok((table, publication))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_describes_every_word_after_the_prefix() {
        let p = plan(3).unwrap();
        assert_eq!(p.layout.size, 8 + 8 * WORDS);
        assert_eq!(p.layout.abi_size, 8);
        assert_eq!(p.layout.nr_records, 3);
        for (k, d) in (0..WORDS).zip(&p.descriptors) {
            assert_eq!(d.offset, 8 + 8 * k);
            assert_eq!(d.name_str(), Some(format!("word{k}").as_str()));
        }
    }

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
