//! The two kinds of stats table: one record per vCPU, or one record for
//! the domain. Each has its magic, its Xen resource id, its file name in a
//! publication directory and its standard fields.

use core::fmt;

use crate::{
    desc::Descriptor,
    header::{
        DOMAIN_STATS_MAGIC, DOMAIN_STATS_MAGIC_R2, VCPU_STATS_MAGIC,
        XENMEM_RESOURCE_STATS_TABLE_ID_DOMSTATS, XENMEM_RESOURCE_STATS_TABLE_ID_VCPUSTATS,
    },
    record::{DOMAIN_STD_DESCRIPTORS, VCPU_STD_DESCRIPTORS, VCPU_STD_DESCRIPTORS_R3},
};

/// The kind of a stats table.
///
/// Not read from shared memory as such: a table's magic is, and
/// [`TableKind::from_magic`] returns `None` for a magic this revision does
/// not know (rule R2).
///
/// # Examples
///
/// ```
/// use vstats_abi::{TableKind, VCPU_STATS_MAGIC};
///
/// let kind = TableKind::from_magic(VCPU_STATS_MAGIC).unwrap();
/// assert_eq!(kind, TableKind::Vcpu);
/// assert_eq!((kind.file_name(), kind.to_string()), ("vcpu", "vCPU".to_owned()));
/// assert_eq!(kind.std_descriptors()[0].name_str(), Some("runstate_running_time"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableKind {
    /// One record per vCPU ([`VCPU_STATS_MAGIC`], [`crate::VcpuStats`]).
    Vcpu,
    /// One record for the domain ([`DOMAIN_STATS_MAGIC`], or the legacy
    /// [`DOMAIN_STATS_MAGIC_R2`] of r2; [`crate::DomainStats`]).
    Domain,
}

impl TableKind {
    /// Both kinds, the vCPU table first.
    pub const ALL: [TableKind; 2] = [TableKind::Vcpu, TableKind::Domain];

    /// The magic a producer of this revision (r3) writes for a table of
    /// this kind (the domain table's magic changed in r3, rule R2).
    pub const fn magic(self) -> u32 {
        match self {
            TableKind::Vcpu => VCPU_STATS_MAGIC,
            TableKind::Domain => DOMAIN_STATS_MAGIC,
        }
    }

    /// [`TableKind::magic`] under the name step 1 of r3 gave it.
    pub const fn magic_r3(self) -> u32 {
        self.magic()
    }

    /// The magic an r2 producer wrote for a table of this kind (still
    /// read: the legacy domain magic).
    pub const fn magic_r2(self) -> u32 {
        match self {
            TableKind::Vcpu => VCPU_STATS_MAGIC,
            TableKind::Domain => DOMAIN_STATS_MAGIC_R2,
        }
    }

    /// The kind a magic announces, `None` for a magic this revision does
    /// not read. Both domain magics (r3's and the legacy r2 one) announce
    /// a domain table.
    pub const fn from_magic(magic: u32) -> Option<TableKind> {
        match magic {
            VCPU_STATS_MAGIC => Some(TableKind::Vcpu),
            DOMAIN_STATS_MAGIC | DOMAIN_STATS_MAGIC_R2 => Some(TableKind::Domain),
            _ => None,
        }
    }

    /// The Xen resource id of the table (`XENMEM_resource_stats_table_id_*`).
    pub const fn resource_id(self) -> u32 {
        match self {
            TableKind::Vcpu => XENMEM_RESOURCE_STATS_TABLE_ID_VCPUSTATS,
            TableKind::Domain => XENMEM_RESOURCE_STATS_TABLE_ID_DOMSTATS,
        }
    }

    /// The kind with Xen resource id `id`, `None` for another id.
    pub const fn from_resource_id(id: u32) -> Option<TableKind> {
        match id {
            XENMEM_RESOURCE_STATS_TABLE_ID_VCPUSTATS => Some(TableKind::Vcpu),
            XENMEM_RESOURCE_STATS_TABLE_ID_DOMSTATS => Some(TableKind::Domain),
            _ => None,
        }
    }

    /// The table's file name in a publication directory: `"vcpu"` or
    /// `"domain"`.
    pub const fn file_name(self) -> &'static str {
        match self {
            TableKind::Vcpu => "vcpu",
            TableKind::Domain => "domain",
        }
    }

    /// The descriptors of the standard fields of this kind's record, in
    /// offset order (section 2.4 of `docs/abi.md`).
    pub const fn std_descriptors(self) -> &'static [Descriptor] {
        match self {
            TableKind::Vcpu => VCPU_STD_DESCRIPTORS,
            TableKind::Domain => DOMAIN_STD_DESCRIPTORS,
        }
    }
}

impl TableKind {
    /// The standard fields of this kind's r3 record, in offset order: the
    /// names an r3 descriptor must not carry (R20) and the built-in table
    /// a consumer reads standard fields by.
    pub const fn std_descriptors_r3(self) -> &'static [Descriptor] {
        match self {
            TableKind::Vcpu => VCPU_STD_DESCRIPTORS_R3,
            TableKind::Domain => DOMAIN_STD_DESCRIPTORS,
        }
    }
}

impl fmt::Display for TableKind {
    /// `vCPU` or `domain`, as prose names the table ("the vCPU table").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TableKind::Vcpu => "vCPU",
            TableKind::Domain => "domain",
        })
    }
}

#[cfg(test)]
mod tests {
    use std::string::ToString;

    use super::*;

    #[test]
    fn each_kind_round_trips() {
        for k in TableKind::ALL {
            assert_eq!(TableKind::from_magic(k.magic()), Some(k));
            assert_eq!(TableKind::from_magic(k.magic_r3()), Some(k));
            assert_eq!(TableKind::from_magic(k.magic_r2()), Some(k));
            assert_eq!(TableKind::from_resource_id(k.resource_id()), Some(k));
        }
        assert_eq!(TableKind::from_magic(0), None);
        assert_eq!(TableKind::from_resource_id(2), None);
        assert_eq!(TableKind::Domain.resource_id(), 1);
        assert_eq!(TableKind::Domain.to_string(), "domain");
        assert_eq!(TableKind::Domain.file_name(), "domain");
        assert_eq!(TableKind::Domain.std_descriptors().len(), 3);
        assert_eq!(TableKind::Domain.magic_r3(), 0xd057_a75e);
        assert_eq!(TableKind::Domain.magic(), DOMAIN_STATS_MAGIC);
        assert_eq!(TableKind::Domain.magic_r2(), 0xaabb_ccde);
        assert_eq!(TableKind::Vcpu.std_descriptors_r3().len(), 6);
        assert_eq!(TableKind::from_magic(0xaabb_ccdf), None);
    }
}
