//! A host of synthetic VMs for the exporter benchmark: `n` VMs under a
//! temporary root, each published as a real producer publishes it (a
//! locked publication directory with its `vcpu` and `domain` tables),
//! with the KVM monitor's descriptor set (the standard fields, then every
//! KVM statistic), written by in-process producers whose values change at
//! every [`Host::update`].
//!
//! The KVM statistics are those of a live KVM VM when `/dev/kvm` works
//! ([`kvm_descriptors`]), else a synthetic set of the same shape as Linux
//! 6.18 x86-64 offers (44 scalars and three 32-bucket log2 histograms per
//! vCPU).

use anyhow::{Context, Result};
use vstats_abi::publish::{DOMAIN_FILE, VCPU_FILE};
use vstats_kvm_vmm::{
    publish::TablePlan,
    stats::{KIND_CUMULATIVE, KIND_LOG_HIST, UNIT_SECONDS},
    Error as VmmError, KvmStatDesc, Vm, VmConfig,
};
use vstats_producer::{
    publish::{Publication, PublishOptions},
    shm::ShmTable,
    TableSpec,
};

use crate::fixture::ScratchDir;

/// The KVM statistics of a vCPU and of a VM, and where they came from.
#[derive(Clone, Debug)]
pub struct KvmDescriptors {
    /// Per-vCPU statistics.
    pub vcpu: Vec<KvmStatDesc>,
    /// VM-wide statistics.
    pub vm: Vec<KvmStatDesc>,
    /// Read from a live KVM VM (else synthetic).
    pub live: bool,
}

/// The descriptor set of a live KVM VM of one vCPU (created, read, and
/// dropped without running), or a synthetic set of the same shape when
/// KVM is unavailable.
///
/// # Errors
///
/// Creating the VM failed for another reason than KVM being unavailable.
pub fn kvm_descriptors() -> Result<KvmDescriptors> {
    match Vm::create(VmConfig::new(1)) {
        Ok(vm) => {
            let vcpu = vm
                .vcpu_stats(0)
                .context("vCPU 0 has no statistics")?
                .descs()
                .to_vec();
            let vm_descs = vm.vm_stats().descs().to_vec();
            Ok(KvmDescriptors {
                vcpu,
                vm: vm_descs,
                live: true,
            })
        }
        Err(VmmError::KvmUnavailable { .. }) => Ok(synthetic_descriptors()),
        Err(e) => Err(e.into()),
    }
}

/// A synthetic KVM descriptor set: 44 cumulative scalars and three
/// 32-bucket log2 histograms (ns) per vCPU, 20 scalars per VM.
pub fn synthetic_descriptors() -> KvmDescriptors {
    let scalar = |name: String| KvmStatDesc {
        name,
        kind: KIND_CUMULATIVE,
        unit: 0,
        base: 10,
        exponent: 0,
        size: 1,
        offset: 0,
        bucket_size: 0,
    };
    let mut vcpu: Vec<KvmStatDesc> = (0..44).map(|i| scalar(format!("stat_{i}"))).collect();
    for i in 0..3 {
        vcpu.push(KvmStatDesc {
            name: format!("hist_{i}"),
            kind: KIND_LOG_HIST,
            unit: UNIT_SECONDS,
            base: 10,
            exponent: -9,
            size: 32,
            offset: 0,
            bucket_size: 0,
        });
    }
    let vm = (0..20).map(|i| scalar(format!("vm_stat_{i}"))).collect();
    KvmDescriptors {
        vcpu,
        vm,
        live: false,
    }
}

/// One VM's producer: its publication and its two tables.
#[derive(Debug)]
struct Producer {
    // Unmapped before the publication is dropped (which removes them).
    vcpu: ShmTable,
    domain: ShmTable,
    _publication: Publication,
}

/// `n` VMs of `vcpus` vCPUs each under a temporary root (removed on drop).
#[derive(Debug)]
pub struct Host {
    producers: Vec<Producer>,
    vcpu_words: usize,
    domain_words: usize,
    buf: Vec<u64>,
    root: ScratchDir,
}

impl Host {
    /// Publishes `vms` VMs `vm-0000`, `vm-0001`, ... of `vcpus` vCPUs with
    /// the descriptors `d`, and writes every record once.
    ///
    /// # Errors
    ///
    /// An unpublishable descriptor set, or creating a directory or table.
    pub fn new(name: &str, vms: usize, vcpus: u32, d: &KvmDescriptors) -> Result<Host> {
        let vplan = TablePlan::vcpu(vcpus, &d.vcpu)?;
        let dplan = TablePlan::domain(&d.vm)?;
        let root = ScratchDir::new(name)?;
        let words = |p: &TablePlan| {
            p.descriptors
                .iter()
                .map(|x| x.count as usize)
                .sum::<usize>()
        };
        let mut producers = Vec::with_capacity(vms);
        for i in 0..vms {
            let dir = root.path().join(format!("vm-{i:04}"));
            let mut publication = Publication::create_dir(&dir, PublishOptions::default())
                .with_context(|| format!("publishing {}", dir.display()))?;
            let generation = publication.generation();
            fn spec(p: &TablePlan, generation: u64) -> TableSpec<'_> {
                TableSpec {
                    magic: p.magic,
                    layout: p.layout,
                    descriptors: &p.descriptors,
                    generation,
                }
            }
            let vcpu = publication.publish_spec(VCPU_FILE, &spec(&vplan, generation))?;
            let domain = publication.publish_spec(DOMAIN_FILE, &spec(&dplan, generation))?;
            producers.push(Producer {
                vcpu,
                domain,
                _publication: publication,
            });
        }
        let mut host = Host {
            producers,
            vcpu_words: words(&vplan),
            domain_words: words(&dplan),
            buf: Vec::new(),
            root,
        };
        host.update(0);
        Ok(host)
    }

    /// The root directory (what the exporter's `--root` names).
    pub fn root(&self) -> &std::path::Path {
        self.root.path()
    }

    /// Writes every record of every VM with the values of step `step`:
    /// word `k` of record `i` holds `(step + 1) * (k + 1) + i`, so every
    /// value changes from one step to the next and none is zero.
    pub fn update(&mut self, step: u64) {
        let fill = |buf: &mut Vec<u64>, n: usize, i: u64| {
            buf.clear();
            buf.extend((0..n as u64).map(|k| (step + 1) * (k + 1) + i));
        };
        for p in &mut self.producers {
            for (i, mut w) in (0u64..).zip(p.vcpu.split().1) {
                fill(&mut self.buf, self.vcpu_words, i);
                let buf = &self.buf;
                w.update(|u| {
                    u.set_words(0, buf);
                });
            }
            for mut w in p.domain.split().1 {
                fill(&mut self.buf, self.domain_words, 0);
                let buf = &self.buf;
                w.update(|u| {
                    u.set_words(0, buf);
                });
            }
        }
    }
}
