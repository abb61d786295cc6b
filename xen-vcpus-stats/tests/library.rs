//! The library without the binary: sample a table that
//! `vstats_producer::synth` publishes (this was the crate docs' example).

use std::time::Duration;

use vstats_producer::synth::Synth;
use xen_vcpus_stats::{
    filter::NameFilter,
    output::Format,
    sample::{self, SampleOptions, Step},
    target::Target,
};

#[test]
fn samples_a_synthetic_table() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("xvs-doc-{}", std::process::id()));
    let mut producer = Synth::new(&dir, 2)?;
    let opts = SampleOptions {
        interval: Duration::from_millis(10),
        count: Some(1),
        format: Format::Json,
        all: false,
        engine: vstats_consumer::sample::SampleOptions {
            names: NameFilter::new(&["exits"]),
            vcpus: None,
            busy_timeout: Duration::from_secs(2),
        },
    };
    let mut sampler = sample::attach(&Target::Path(dir.clone()), &opts)?;
    std::thread::sleep(Duration::from_millis(20));
    producer.update();
    let Step::Sample(s) = sampler.step()? else {
        panic!("restarted")
    };
    assert_eq!(s.vcpus.len(), 2);
    let shares = s.vcpus[0].shares.expect("the record was updated");
    assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    assert!(s.vcpus[1].rates[0].unwrap() > 0.0, "exits grow");
    producer.remove()?;
    Ok(())
}
