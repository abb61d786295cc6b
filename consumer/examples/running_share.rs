//! Samples every vCPU of every VM under the root (`/dev/shm/vstats`, or
//! `$VSTATS_ROOT`) once a second and prints each vCPU's running share:
//! the part of the second it spent running (`-` when it cannot be told:
//! the vCPU's record was not updated during the second, or was caught
//! mid-update).
//!
//! `cargo run -p vstats-consumer --example running_share [SAMPLES]`
//! (without SAMPLES: until interrupted).

use std::{thread::sleep, time::Duration};

use vstats_consumer::{
    discover,
    sample::{SampleOptions, Sampler, Step},
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let samples: u64 = std::env::args()
        .nth(1)
        .map_or(Ok(u64::MAX), |n| n.parse())?;
    let mut vms = Vec::new();
    for entry in discover::list(&discover::root())? {
        vms.push(Sampler::new(entry.open()?, &SampleOptions::default())?);
    }
    for _ in 0..samples {
        sleep(Duration::from_secs(1));
        for vm in &mut vms {
            let Step::Sample(s) = vm.step()? else {
                continue;
            };
            for v in &s.vcpus {
                let running = v.shares.map(|sh| format!("{:.1}%", sh[0] * 100.0));
                let running = running.as_deref().unwrap_or("-");
                println!("{} vcpu{} running {running}", s.vm, v.vcpu);
            }
        }
    }
    Ok(())
}
