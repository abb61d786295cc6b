//! Takes snapshots of the pattern table from another process and counts
//! consistent, busy and torn ones.
//!
//! `vstats-pattern-consumer PATH SNAPSHOTS [until-torn]`: takes SNAPSHOTS
//! single-record snapshots, round-robin over the records, and prints one
//! line `snapshots=N consistent=N busy=N torn=N distinct=N`. With
//! `until-torn` it stops early at the first torn snapshot. A torn snapshot
//! is one the seq protocol accepted whose words are not one published
//! update (see `vstats_testprocs::is_consistent`). Exits 1 when any was
//! torn.

use std::{collections::BTreeSet, process::ExitCode};

use vstats_consumer::{Error, RecordSnapshot, Table};
use vstats_testprocs::is_consistent;

fn main() -> ExitCode {
    match run() {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("vstats-pattern-consumer: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<u64, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, n, until_torn) = match args.as_slice() {
        [p, n] => (p, n, false),
        [p, n, m] if m == "until-torn" => (p, n, true),
        _ => return Err("usage: vstats-pattern-consumer PATH SNAPSHOTS [until-torn]".into()),
    };
    let n: u64 = n.parse().map_err(|e| format!("SNAPSHOTS: {e}"))?;
    let table = Table::open(path).map_err(|e| e.to_string())?;
    let records = table.nr_records();
    if records == 0 {
        return Err("table has no records".into());
    }
    // Which copy routine the reads go through (`VSTATS_COPY_PATH`).
    eprintln!("copy_path={}", vstats_consumer::mem::copy_path().name());
    let mut snap = RecordSnapshot::new(&table);
    let (mut consistent, mut busy, mut torn, mut taken) = (0u64, 0u64, 0u64, 0u64);
    let mut distinct = BTreeSet::new();
    for s in 0..n {
        let i = (s % u64::from(records)) as u32;
        taken += 1;
        match table.snapshot_record(i, &mut snap) {
            Ok(()) => {
                if is_consistent(snap.seq(), snap.words()) {
                    consistent += 1;
                    if distinct.len() < 100_000 {
                        distinct.insert((i, snap.seq()));
                    }
                } else {
                    torn += 1;
                    if torn <= 3 {
                        eprintln!(
                            "torn: record {i} seq {} words {:?}",
                            snap.seq(),
                            snap.words()
                        );
                    }
                    if until_torn {
                        break;
                    }
                }
            }
            Err(Error::Busy { .. }) => busy += 1,
            Err(e) => return Err(e.to_string()),
        }
    }
    println!(
        "snapshots={taken} consistent={consistent} busy={busy} torn={torn} distinct={}",
        distinct.len()
    );
    Ok(torn)
}
