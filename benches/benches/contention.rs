//! Section 4: contention between a writer flat out on one CPU and a reader
//! (tight, or a 1 kHz sampler), a neighbour reader or a second writer on
//! the other, at strides 64 and 128. A custom harness (criterion times one
//! closure; this needs two pinned threads and counts retries): see
//! `vstats_benches::contention`. Writes `contention.json` to the results
//! directory and prints a summary.
//!
//! Environment: `VSTATS_CONTENTION_TRIAL_MS` (default 250) and
//! `VSTATS_CONTENTION_ROUNDS` (default 5).

use vstats_benches::{
    contention::{self, Config},
    out,
};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if out::list_mode() {
        println!("contention: benchmark");
        return;
    }
    let d = Config::default();
    let cfg = if out::test_mode() {
        Config {
            trial_ms: 10,
            rounds: 1,
            ..d
        }
    } else {
        Config {
            trial_ms: env_or("VSTATS_CONTENTION_TRIAL_MS", d.trial_ms),
            rounds: env_or("VSTATS_CONTENTION_ROUNDS", d.rounds.into()) as u32,
            ..d
        }
    };
    let result = match contention::run(&cfg) {
        Ok(r) => serde_json::to_value(&r),
        Err(e) => {
            eprintln!("contention: skipped: {e:#}");
            Ok(serde_json::json!({ "skipped": format!("{e:#}") }))
        }
    };
    let value = result.expect("serialising the results");
    if out::test_mode() {
        println!("contention: ran (test mode, nothing written)");
        return;
    }
    match out::write_json("contention", &value) {
        Ok(p) => println!("contention: results in {}", p.display()),
        Err(e) => {
            eprintln!("contention: {e:#}");
            std::process::exit(1);
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    );
}
