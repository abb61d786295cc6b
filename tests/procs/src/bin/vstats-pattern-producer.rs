//! Publishes the pattern table and updates its records round-robin as fast
//! as it can, until killed.
//!
//! `vstats-pattern-producer PATH RECORDS MODE` where MODE is
//! - `run`: correct updates forever;
//! - `hang`: a few updates, then record 0 is left mid-update (seq odd) and
//!   the process sleeps, for the killed-writer test;
//! - `no-seq`: a broken producer that skips the odd phase: it stores the new
//!   even seq first and then the words, so a reader can accept a mix of two
//!   updates; readers must catch that as torn.
//!
//! Prints `ready` (or `odd` for `hang`) on stdout once the table is live.

use std::{io::Write, path::PathBuf, process::ExitCode, thread, time::Duration};

use vstats_testprocs::{create_table, pattern, WORDS};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vstats-pattern-producer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, records, mode] = args.as_slice() else {
        return Err("usage: vstats-pattern-producer PATH RECORDS run|hang|no-seq".into());
    };
    let records: u32 = records.parse().map_err(|e| format!("RECORDS: {e}"))?;
    let (mut shm, _publication) =
        create_table(&PathBuf::from(path), records).map_err(|e| e.to_string())?;
    let (_, writers) = shm.split();
    let mut writers: Vec<_> = writers.collect();
    let mut updates = vec![0u64; writers.len()];
    let say = |s: &str| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    };
    match mode.as_str() {
        "run" => {
            say("ready");
            loop {
                for (w, v) in writers.iter_mut().zip(updates.iter_mut()) {
                    *v += 1;
                    let v = *v;
                    w.update(|u| {
                        for k in 0..WORDS {
                            u.set(k as usize, pattern(v, k));
                        }
                    });
                }
            }
        }
        "hang" => {
            for (w, v) in writers.iter_mut().zip(updates.iter_mut()) {
                *v += 1;
                let v = *v;
                w.update(|u| {
                    for k in 0..WORDS {
                        u.set(k as usize, pattern(v, k));
                    }
                });
            }
            let w0 = writers.first_mut().ok_or("no records")?;
            let mut open_update = w0.begin().ok_or("table disabled")?;
            open_update.set(0, pattern(2, 0));
            // Never finished: the process waits here, the update open, to
            // be killed with seq odd.
            say("odd");
            loop {
                thread::sleep(Duration::from_secs(3600));
            }
        }
        "no-seq" => {
            // Written through a second read-write mapping so that the
            // producer crate's protocol is bypassed.
            drop(writers);
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(|e| e.to_string())?;
            let len = file.metadata().map_err(|e| e.to_string())?.len() as usize;
            raw::scribble_forever(&file, len, shm.table().layout(), &say)
        }
        other => Err(format!("unknown mode {other}")),
    }
}

#[allow(unsafe_code)]
mod raw {
    use std::{
        fs::File,
        os::fd::AsRawFd,
        sync::atomic::{AtomicU64, Ordering},
    };

    use vstats_abi::layout::Layout;
    use vstats_testprocs::{pattern, WORDS};

    /// Publishes update `v` of every record as seq := 2v (never odd), then
    /// the words, with a pause between words to widen the window in which a
    /// reader can tear.
    pub fn scribble_forever(
        file: &File,
        len: usize,
        l: &Layout,
        say: &dyn Fn(&str),
    ) -> Result<(), String> {
        // SAFETY: mapping a file we opened read-write, `len` bytes, shared.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error().to_string());
        }
        let base = p.cast::<u8>();
        say("ready");
        let mut v = 0u64;
        loop {
            v += 1;
            for i in 0..l.nr_records {
                let Some(off) = l.record_offset(i) else {
                    continue;
                };
                let seq_at = base.wrapping_add(off as usize).cast::<u32>();
                // SAFETY: the record's seq word: inside the mapping, 4-aligned,
                // accessed only atomically.
                let seq = unsafe { std::sync::atomic::AtomicU32::from_ptr(seq_at) };
                seq.store((2 * v) as u32, Ordering::Release);
                for k in 0..WORDS {
                    let at = base
                        .wrapping_add(off as usize + 8 + 8 * k as usize)
                        .cast::<u64>();
                    // SAFETY: inside the mapping (the layout's records fit
                    // it), 8-aligned, accessed only atomically.
                    let word = unsafe { AtomicU64::from_ptr(at) };
                    word.store(pattern(v, k), Ordering::Relaxed);
                    std::hint::spin_loop();
                }
            }
        }
    }
}
