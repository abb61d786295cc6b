//! What samplers use today, fed with the same counters as the table:
//!
//! - one text file per statistic, opened, read, parsed and closed each
//!   sample ([`FileTree`]): the debugfs / statsfs way
//!   (`/sys/kernel/debug/kvm/<vm>/vcpu0/exits`), here on tmpfs so that only
//!   the file-per-value protocol is measured, not debugfs itself;
//! - a JSON document shaped like QEMU's `query-stats` answer
//!   ([`QueryStatsReply`]), serialised by the "hypervisor" and parsed by
//!   the sampler (the QMP socket round trip is not included, which favours
//!   JSON);
//! - KVM's binary stats file descriptor, read with one `pread` per vCPU:
//!   `vstats_kvm_vmm::KvmStats::read`, used directly by the benchmark.

use std::{
    fs::{self, File},
    io::{self, Read},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use vstats_consumer::{Snapshot, Table};

/// A statistic's value in QEMU's `query-stats` answer: a number, or a
/// list of numbers for a histogram.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StatValue {
    /// A scalar.
    Scalar(u64),
    /// A histogram's buckets.
    List(Vec<u64>),
}

impl StatValue {
    /// The values as words.
    pub fn words(&self) -> &[u64] {
        match self {
            StatValue::Scalar(v) => std::slice::from_ref(v),
            StatValue::List(v) => v,
        }
    }
}

/// One `{"name": ..., "value": ...}` of `query-stats`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    /// The statistic's name.
    pub name: String,
    /// Its value.
    pub value: StatValue,
}

/// One `StatsResult`: a provider's statistics of one target object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsResult {
    /// `"kvm"`.
    pub provider: String,
    /// The vCPU's QOM path, e.g. `/machine/unattached/device[0]`.
    #[serde(rename = "qom-path", skip_serializing_if = "Option::is_none", default)]
    pub qom_path: Option<String>,
    /// The statistics.
    pub stats: Vec<Stat>,
}

/// QEMU's answer to `{"execute": "query-stats", "arguments": {"target":
/// "vcpu"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryStatsReply {
    /// One result per vCPU.
    #[serde(rename = "return")]
    pub ret: Vec<StatsResult>,
}

/// Every active statistic of every record of `snap` (taken from `table`),
/// by name: per vCPU, `(name, value)` in descriptor order. Inactive
/// counters are left out, as a provider leaves out what it lacks.
pub fn stats_of(table: &Table, snap: &Snapshot) -> Vec<Vec<Stat>> {
    snap.records()
        .iter()
        .map(|r| {
            table
                .counters()
                .iter()
                .filter_map(|c| {
                    let value = if c.is_histogram() {
                        StatValue::List(r.histogram(c)?.to_vec())
                    } else {
                        StatValue::Scalar(r.get(c)?)
                    };
                    Some(Stat {
                        name: c.name().to_owned(),
                        value,
                    })
                })
                .collect()
        })
        .collect()
}

/// The `query-stats` document of `stats`.
pub fn qemu_document(stats: &[Vec<Stat>]) -> QueryStatsReply {
    QueryStatsReply {
        ret: stats
            .iter()
            .enumerate()
            .map(|(i, s)| StatsResult {
                provider: "kvm".into(),
                qom_path: Some(format!("/machine/unattached/device[{i}]")),
                stats: s.clone(),
            })
            .collect(),
    }
}

/// Total number of 64-bit values in `stats`.
pub fn value_count(stats: &[Vec<Stat>]) -> usize {
    stats.iter().flatten().map(|s| s.value.words().len()).sum()
}

/// One text file per statistic: `<root>/vcpu<i>/<name>` holding the value
/// in decimal and a newline (a histogram: its buckets separated by
/// spaces).
#[derive(Debug)]
pub struct FileTree {
    files: Vec<PathBuf>,
}

impl FileTree {
    /// Writes the files of `stats` under `root`.
    ///
    /// # Errors
    ///
    /// Creating a directory or writing a file.
    pub fn create(root: &Path, stats: &[Vec<Stat>]) -> io::Result<FileTree> {
        let mut files = Vec::new();
        for (i, vcpu) in stats.iter().enumerate() {
            let dir = root.join(format!("vcpu{i}"));
            fs::create_dir_all(&dir)?;
            for s in vcpu {
                let text: Vec<String> = s.value.words().iter().map(u64::to_string).collect();
                let path = dir.join(&s.name);
                fs::write(&path, format!("{}\n", text.join(" ")))?;
                files.push(path);
            }
        }
        Ok(FileTree { files })
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are no files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// One sample: every file opened, read into `buf`, parsed into `out`
    /// (cleared first) and closed, as a sampler polling debugfs does.
    ///
    /// # Errors
    ///
    /// Opening or reading a file, or a value that does not parse.
    pub fn read_all(&self, buf: &mut Vec<u8>, out: &mut Vec<u64>) -> io::Result<()> {
        out.clear();
        for path in &self.files {
            buf.clear();
            File::open(path)?.read_to_end(buf)?;
            let text = std::str::from_utf8(buf).map_err(|e| io::Error::other(e.to_string()))?;
            for word in text.split_ascii_whitespace() {
                out.push(word.parse().map_err(|_| io::Error::other("bad value"))?);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{ScratchDir, ShmFixture};

    #[test]
    fn files_and_json_carry_the_table_values() {
        let mut fx = ShmFixture::vcpu("test-alt", 2, 64).unwrap();
        fx.fill();
        let mut snap = Snapshot::new(fx.consumer());
        fx.consumer().snapshot(&mut snap);
        let stats = stats_of(fx.consumer(), &snap);
        assert_eq!(stats.len(), 2);
        assert_eq!(stats[1][0].name, "runstate_running_time");
        assert_eq!(stats[1][0].value, StatValue::Scalar(1001));
        assert_eq!(value_count(&stats), 8);

        let dir = ScratchDir::new("test-alt-files").unwrap();
        let tree = FileTree::create(dir.path(), &stats).unwrap();
        assert_eq!(tree.len(), 8);
        let (mut buf, mut out) = (Vec::new(), Vec::new());
        tree.read_all(&mut buf, &mut out).unwrap();
        let flat: Vec<u64> = stats
            .iter()
            .flatten()
            .flat_map(|s| s.value.words().to_vec())
            .collect();
        assert_eq!(out, flat);

        let doc = qemu_document(&stats);
        let text = serde_json::to_string(&doc).unwrap();
        assert!(text.starts_with(r#"{"return":[{"provider":"kvm","qom-path":"/machine/unattached/device[0]","stats":[{"name":"runstate_running_time","value":1}"#), "{text}");
        let back: QueryStatsReply = serde_json::from_str(&text).unwrap();
        assert_eq!(back, doc);
        let hist = r#"{"return":[{"provider":"kvm","stats":[{"name":"h","value":[1,2]}]}]}"#;
        let h: QueryStatsReply = serde_json::from_str(hist).unwrap();
        assert_eq!(h.ret[0].stats[0].value, StatValue::List(vec![1, 2]));
    }
}
