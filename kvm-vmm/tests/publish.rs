//! Publishing a live VM through vstats tables, checked from the files.
//!
//! Each test prints "skipped: /dev/kvm unavailable: <reason>" and returns
//! when KVM cannot be used. Only validation results and accounting
//! identities are asserted, no timings.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vstats_abi::record::{vcpu_off, DOMAIN_STATS_SIZE, INACTIVE_BIT, VCPU_STATS_SIZE};
use vstats_abi::validate::{validate, TableInfo};
use vstats_abi::RunState;
use vstats_kvm_vmm::publish::{DOMAIN_STD_WORDS, VCPU_STD_WORDS};
use vstats_kvm_vmm::{Error, Publisher, Vm, VmConfig};

fn create_or_skip(config: VmConfig) -> Option<Vm> {
    match Vm::create(config) {
        Ok(vm) => Some(vm),
        Err(e @ Error::KvmUnavailable { .. }) => {
            println!("skipped: /dev/kvm unavailable: {e}");
            None
        }
        Err(e) => panic!("Vm::create: {e}"),
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("vstats-kvm-vmm-{tag}-{}", std::process::id()))
}

/// A copy of a table file, validated, with its counters by name: the
/// standard fields the record holds (by position), then the r3
/// descriptors of the producer-specific area.
struct Copy {
    bytes: Vec<u8>,
    info: TableInfo,
    /// name -> (byte offset in the record, word count)
    descs: HashMap<String, (u32, u32)>,
    /// names in table order
    names: Vec<String>,
}

impl Copy {
    fn read(path: &Path) -> Copy {
        let bytes = std::fs::read(path).unwrap();
        let info = validate(&bytes, bytes.len() as u64)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut descs = HashMap::new();
        let mut names = Vec::new();
        assert_eq!(info.desc_count(), 0, "r3: no r2 descriptors");
        let std = info.kind().std_descriptors_r3().iter().copied();
        let std = std.filter(|d| info.has_std_field(d.offset));
        let xdescs = (0..info.xdesc_count).map(|i| info.xdescriptor(&bytes, i).unwrap());
        for d in std.chain(xdescs) {
            let name = d.name_str().unwrap().to_owned();
            descs.insert(name.clone(), (d.offset, d.count));
            names.push(name);
        }
        Copy {
            bytes,
            info,
            descs,
            names,
        }
    }

    fn word_at(&self, record: u32, offset: u32) -> u64 {
        let at = (self.info.record_offset(record).unwrap() + u64::from(offset)) as usize;
        u64::from_ne_bytes(self.bytes[at..at + 8].try_into().unwrap())
    }

    /// Counter word `i` (0 at byte 8) of `record`.
    fn word(&self, record: u32, i: usize) -> u64 {
        self.word_at(record, 8 + 8 * i as u32)
    }

    fn by_name(&self, record: u32, name: &str) -> u64 {
        let (offset, _) = self.descs[name];
        self.word_at(record, offset)
    }

    fn seq(&self, record: u32) -> u32 {
        let at = self.info.record_offset(record).unwrap() as usize;
        u32::from_ne_bytes(self.bytes[at..at + 4].try_into().unwrap())
    }
}

#[test]
fn four_vcpus_published_live_and_final() {
    const N: u32 = 4;
    let Some(vm) = create_or_skip(VmConfig::new(N)) else {
        return;
    };
    let vcpu_words = vm.vcpu_stats(0).unwrap().nr_words();
    let vm_words = vm.vm_stats().nr_words();
    let dir = temp_dir("live").join("vm");
    let mut publisher = Publisher::new(vm, &dir).unwrap();
    assert_eq!(publisher.vcpu_path(), dir.join("vcpu"));
    assert_eq!(publisher.domain_path(), dir.join("domain"));

    // Before the VM runs: valid, and every slot is in use (offline): the
    // records were written before the files appeared (P10).
    let before = Copy::read(publisher.vcpu_path());
    for id in 0..N {
        assert_eq!(before.word(id, 0), 0, "running");
        assert!(before.word(id, 3) & INACTIVE_BIT == 0, "offline is active");
        assert_eq!(before.by_name(id, "runstate"), RunState::OFFLINE.0);
        assert!(before.by_name(id, "runstate_entry_time") & INACTIVE_BIT == 0);
    }

    let start = Instant::now();
    let mut ticks = 0u32;
    let (vcpu_path, domain_path) = (
        publisher.vcpu_path().to_owned(),
        publisher.domain_path().to_owned(),
    );
    let stopped = publisher
        .run(Duration::from_millis(50), |running| {
            ticks += 1;
            let v = Copy::read(&vcpu_path);
            assert!(v.info.is_vcpu());
            assert_eq!(v.info.nr_records, N);
            assert_eq!(v.info.abi_size, VCPU_STATS_SIZE);
            assert_eq!(v.info.header.size, VCPU_STATS_SIZE);
            assert_eq!(
                v.info.record_extent() as usize,
                VCPU_STATS_SIZE as usize + 8 * vcpu_words
            );
            assert_eq!(
                v.names.len(),
                VCPU_STD_WORDS + running.vcpu_stats(0).unwrap().descs().len()
            );
            assert_eq!(&v.names[0], "runstate_running_time");
            for name in ["runstate_offline_time", "exits", "halt_exits", "io_exits"] {
                assert!(v.descs.contains_key(name), "{name}");
            }
            // No slot ever reads as unused: running time is always active,
            // and so are the state (a known one) and its entry time (R25).
            for id in 0..N {
                assert!(v.word(id, 0) & INACTIVE_BIT == 0, "vCPU {id}");
                let state = RunState(v.word_at(id, vcpu_off::RUNSTATE));
                assert!(state.is_known(), "vCPU {id}: {state:?}");
                assert!(v.word_at(id, vcpu_off::ENTRY) & INACTIVE_BIT == 0);
            }
            let d = Copy::read(&domain_path);
            assert!(!d.info.is_vcpu());
            assert_eq!(d.info.nr_records, 1);
            assert_eq!(d.info.header.size, DOMAIN_STATS_SIZE);
            assert_eq!(
                d.info.record_extent() as usize,
                DOMAIN_STATS_SIZE as usize + 8 * vm_words
            );
            assert_eq!(d.by_name(0, "vcpus_max"), u64::from(N));
            assert!(d.descs.contains_key("remote_tlb_flush") || vm_words == 0);
            // Run for a second and until every vCPU has both run and
            // halted (on a loaded host a vCPU thread may not have had a CPU
            // for long enough by then), within a hang bound.
            let ran_and_halted = (0..N).all(|id| v.word(id, 0) > 0 && v.word(id, 2) > 0);
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "every vCPU ran and halted within 60 s"
            );
            if start.elapsed() < Duration::from_secs(1) || !ran_and_halted {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        })
        .unwrap();
    assert!(ticks >= 2, "{ticks} ticks");
    assert!(stopped.vcpu_errors.iter().all(Option::is_none));

    // After stop the tables hold the final values: what the VMM reports.
    let v = Copy::read(publisher.vcpu_path());
    let d = Copy::read(publisher.domain_path());
    for id in 0..N {
        let r = &stopped.vcpus[id as usize];
        assert_eq!(v.seq(id) % 2, 0, "vCPU {id}: no update in progress");
        let times: Vec<u64> = (0..4).map(|i| v.word(id, i)).collect();
        assert_eq!(times, r.runstate_ns, "vCPU {id}: table == StoppedVm");
        // Accrued up to the final checkpoint, offline since then.
        assert_eq!(v.word_at(id, vcpu_off::RUNSTATE), RunState::OFFLINE.0);
        assert_eq!(v.word_at(id, vcpu_off::ENTRY), stopped.stopped_ns);
        assert_eq!(r.now_ns, stopped.stopped_ns);
        assert_eq!(
            times.iter().sum::<u64>(),
            stopped.stopped_ns - r.created_ns,
            "vCPU {id}: the four times sum to the wall time"
        );
        assert!(times[0] > 0 && times[2] > 0 && times[3] > 0, "{times:?}");
        // KVM's counters: equal to a fresh read of the stats fd after stop.
        let stats = stopped.vcpu_stats(id).unwrap();
        let mut fresh = stats.new_buffer();
        stats.read(&mut fresh).unwrap();
        for name in ["exits", "halt_exits", "io_exits", "insn_emulation"] {
            let want = stats.value(&fresh, name).unwrap();
            assert_eq!(v.by_name(id, name), want, "vCPU {id}: {name}");
        }
        let all: Vec<u64> = (0..vcpu_words)
            .map(|k| v.word(id, VCPU_STD_WORDS + k))
            .collect();
        assert_eq!(all, fresh, "vCPU {id}: every KVM word");
        assert!(v.by_name(id, "exits") > 0);
        println!(
            "vCPU {id}: running {} runnable {} blocked {} offline {} ns; exits {} halt_exits {} io_exits {} insn_emulation {}",
            times[0],
            times[1],
            times[2],
            times[3],
            v.by_name(id, "exits"),
            v.by_name(id, "halt_exits"),
            v.by_name(id, "io_exits"),
            v.by_name(id, "insn_emulation"),
        );
    }
    assert_eq!(d.seq(0) % 2, 0);
    assert_eq!(d.by_name(0, "vcpus_online"), 0);
    assert_eq!(d.by_name(0, "vcpus_max"), u64::from(N));
    assert_eq!(d.by_name(0, "uptime"), stopped.vm.uptime_ns);
    let mut fresh = stopped.vm_stats().new_buffer();
    stopped.vm_stats().read(&mut fresh).unwrap();
    let all: Vec<u64> = (0..vm_words)
        .map(|k| d.word(0, DOMAIN_STD_WORDS + k))
        .collect();
    assert_eq!(all, fresh, "every KVM VM word");

    // The VM ran once; the tables go away on remove.
    assert!(matches!(
        publisher.run(Duration::from_millis(1), |_| ControlFlow::Break(())),
        Err(Error::InvalidConfig(_))
    ));
    publisher.remove().unwrap();
    assert!(!dir.exists());
    std::fs::remove_dir(dir.parent().unwrap()).unwrap();
}

#[test]
fn one_directory_one_producer() {
    let (Some(a), Some(b)) = (
        create_or_skip(VmConfig::new(1)),
        create_or_skip(VmConfig::new(1)),
    ) else {
        return;
    };
    let dir = temp_dir("lock");
    let first = Publisher::new(a, &dir).unwrap();
    match Publisher::new(b, &dir) {
        Err(e @ Error::DirectoryInUse { .. }) => {
            assert!(e.to_string().contains("in use"), "{e}")
        }
        other => panic!("expected DirectoryInUse, got {other:?}"),
    }
    // The refused producer removed nothing.
    assert!(first.vcpu_path().exists() && first.domain_path().exists());
    drop(first); // drop removes too
    assert!(!dir.exists());
}

#[test]
fn directory_under_a_file_is_refused_and_leaves_nothing() {
    let Some(vm) = create_or_skip(VmConfig::new(1)) else {
        return;
    };
    let file = temp_dir("file");
    std::fs::write(&file, b"not a directory").unwrap();
    let err = Publisher::new(vm, file.join("vm")).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Publish { .. }) && msg.contains(&*file.to_string_lossy()),
        "{msg}"
    );
    std::fs::remove_file(&file).unwrap();
}
