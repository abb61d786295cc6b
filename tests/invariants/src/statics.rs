//! The static rules: what is checked once per attachment, on the table as
//! published.

use vstats_abi::{
    header::{EXT_HEADER_END, EXT_HEADER_OFFSET, HEADER_R3_END, HEADER_SIZE},
    record::{INACTIVE, PAD_INACTIVE},
    Error, TableInfo,
};

use vstats_consumer::mem::MemView;

/// A word of the record area the producer does not own after publication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outside {
    /// The `_pad` word of record `i` (a `u32` at `start + 4`).
    Pad(u32),
    /// A `u64` of the padding `[start + size, start + stride)` of record
    /// `i`, outside its producer-specific area.
    Padding(u32),
    /// A `u64` (or, at the very end of an odd-sized mapping, a `u32`) after
    /// the last record, not at a tail slot's seq or `_pad`.
    Tail,
    /// In an r3 table, the seq word (a `u32`) of a whole stride of the tail
    /// after the last record (P13: 0).
    TailSeq,
    /// In an r3 table, the `_pad` word (a `u32`) of a whole stride of the
    /// tail (P13: all ones).
    TailPad,
}

impl Outside {
    /// Width in bytes.
    fn width(self, off: u64, len: u64) -> u64 {
        match self {
            Outside::Pad(_) | Outside::TailSeq | Outside::TailPad => 4,
            Outside::Padding(_) => 8,
            Outside::Tail if off + 8 <= len => 8,
            Outside::Tail => 4,
        }
    }

    /// Whether the word lies in the tail after the last record.
    pub(crate) fn in_tail(self) -> bool {
        matches!(self, Outside::Tail | Outside::TailSeq | Outside::TailPad)
    }

    /// What to call it in evidence.
    pub(crate) fn describe(self) -> String {
        match self {
            Outside::Pad(i) => format!("record {i} _pad"),
            Outside::Padding(i) => format!("padding after record {i} (between size and stride)"),
            Outside::Tail => "tail after the last record".to_owned(),
            Outside::TailSeq => "seq of a tail slot after the last record".to_owned(),
            Outside::TailPad => "_pad of a tail slot after the last record".to_owned(),
        }
    }
}

/// Whether the table is a genuine RFC v3 table (no extension header): the
/// checker's v3 profile (design 9.1) reads record 0 only.
pub(crate) fn is_v3(info: &TableInfo) -> bool {
    info.ext.is_none()
}

/// The records whose words the checker reads: record 0 only in the v3
/// profile (only vCPU 0 of a v3 table is meaningful), else every slot.
pub(crate) fn checked_records(info: &TableInfo) -> u32 {
    if is_v3(info) {
        info.nr_records.min(1)
    } else {
        info.nr_records
    }
}

/// Calls `f(offset, kind)` for every word of `[offset, len)` outside the
/// records' seq words, counters and producer-specific areas: each record's
/// `_pad`, the padding between `size` and `stride`, and the tail after the
/// last record (in an r3 table split into the seq and `_pad` of each whole
/// stride, P13, and the rest). Bytes of a mapping whose length is not a
/// multiple of 4 that are left over are not visited. In the v3 profile
/// only record 0's words are visited (the rest of a v3 page is zero fill
/// whose slots no v3 writer addresses as the readers do).
pub(crate) fn for_each_outside(info: &TableInfo, len: u64, mut f: impl FnMut(u64, Outside)) {
    let (offset, size, stride) = (
        u64::from(info.header.offset),
        u64::from(info.header.size),
        u64::from(info.header.stride),
    );
    let (area_lo, area_hi) = (
        u64::from(info.xstats_offset),
        u64::from(info.xstats_offset) + u64::from(info.xstats_size),
    );
    for i in 0..checked_records(info) {
        let start = offset + u64::from(i) * stride;
        f(start + 4, Outside::Pad(i));
        let mut off = start + size;
        while off < start + stride {
            let rel = off - start;
            if !(info.xstats_size > 0 && (area_lo..area_hi).contains(&rel)) {
                f(off, Outside::Padding(i));
            }
            off += 8;
        }
    }
    if is_v3(info) {
        return;
    }
    let mut off = offset + u64::from(info.nr_records) * stride;
    while off + 4 <= len {
        if info.is_r3() && (off - offset) % stride == 0 && off + stride <= len {
            f(off, Outside::TailSeq);
            f(off + 4, Outside::TailPad);
            off += 8;
            continue;
        }
        f(off, Outside::Tail);
        off += Outside::Tail.width(off, len);
    }
}

/// Loads the word at `off` of the width `kind` has there.
pub(crate) fn load_outside(raw: &MemView<'_>, off: u64, kind: Outside) -> Option<u64> {
    match kind.width(off, raw.len() as u64) {
        8 => raw.load::<u64>(off),
        _ => raw.load::<u32>(off).map(u64::from),
    }
}

/// The value a word of this kind and width holds when the table is laid
/// out: the inactive marker, or 0 for a tail slot's seq.
pub(crate) fn marker(kind: Outside, off: u64, len: u64) -> u64 {
    match (kind, kind.width(off, len)) {
        (Outside::TailSeq, _) => 0,
        (_, 8) => INACTIVE,
        _ => u64::from(PAD_INACTIVE),
    }
}

/// Copies the head with the consumer's copy-then-validate loop (the header
/// first, then `[0, offset)` as the header asks) and validates it. Returns
/// the copy and the outcome.
pub(crate) fn copy_and_validate(raw: &MemView<'_>) -> (Vec<u8>, Result<TableInfo, Error>) {
    let len = raw.len() as u64;
    let mut want = HEADER_SIZE as usize;
    let mut head = raw.copy_prefix(want.min(raw.len())).unwrap_or_default();
    for _ in 0..4 {
        match vstats_abi::validate(&head, len) {
            Err(Error::HeadTruncated { need, .. })
                if need as usize > want && u64::from(need) <= len =>
            {
                want = need as usize;
                head = raw.copy_prefix(want).unwrap_or_default();
            }
            r => return (head, r),
        }
    }
    let r = vstats_abi::validate(&head, len);
    (head, r)
}

/// R17 as a producer keeps it: a descriptor at the offset of a standard
/// field this revision knows, inside the producer's `abi_size`, describes
/// that field (name, kind, unit, base, exponent, one word); and no
/// descriptor carries the name of a standard field that lies past
/// `abi_size` (such a field is absent, R17 wins: the name must not make a
/// consumer show it). (A standard name at another offset is R13, which
/// `validate` checks.) Returns `(descriptor index, what is wrong)` for
/// each violation.
pub(crate) fn standard_field_errors(head: &[u8], info: &TableInfo) -> Vec<(u32, String)> {
    let std = info.kind().std_descriptors();
    let mut out = Vec::new();
    for i in 0..info.desc_count() {
        let Some(d) = info.descriptor(head, i) else {
            continue;
        };
        let name = d.name_str().unwrap_or("?");
        if let Some(s) = std
            .iter()
            .find(|s| s.name == d.name && !info.has_std_field(s.offset))
        {
            out.push((
                i,
                format!(
                    "descriptor {i} is named {name}, the standard field at offset {}, which \
                     lies past abi_size {}: that field is absent, and a descriptor must not \
                     carry its name",
                    s.offset, info.abi_size
                ),
            ));
            continue;
        }
        if let Some(s) = std
            .iter()
            .find(|s| s.offset == d.offset && info.has_std_field(s.offset))
        {
            let same = d.name == s.name
                && d.kind == s.kind
                && d.unit == s.unit
                && d.base == s.base
                && d.exponent == s.exponent
                && d.count == 1;
            if !same {
                out.push((
                    i,
                    format!(
                        "descriptor {i} ({name}, kind {}, unit {}, base {}, exponent {}, count {}) \
                         sits at offset {} inside abi_size {}, where the standard field {} \
                         (kind {}, unit {}, base {}, exponent {}) lives",
                        d.kind.0,
                        d.unit.0,
                        d.base.0,
                        d.exponent,
                        d.count,
                        d.offset,
                        info.abi_size,
                        s.name_str().unwrap_or("?"),
                        s.kind.0,
                        s.unit.0,
                        s.base.0,
                        s.exponent
                    ),
                ));
            }
        }
    }
    out
}

/// Names a byte of the head for evidence: a header or extension header
/// field, a descriptor's field, or reserved.
pub(crate) fn head_field(off: u64, info: &TableInfo, head: &[u8]) -> String {
    const HEADER: [&str; 4] = ["magic", "offset", "size", "stride"];
    const EXT: [&str; 10] = [
        "ext_magic",
        "ext_size",
        "nr_records",
        "page_shift",
        "abi_size",
        "desc_offset",
        "desc_count",
        "desc_stride",
        "generation (low half)",
        "generation (high half)",
    ];
    const R3: [&str; 8] = [
        "clock",
        "_rsvd0",
        "xstats_offset",
        "xstats_size",
        "xdesc_offset",
        "xdesc_count",
        "xdesc_stride",
        "_rsvd1",
    ];
    if off < u64::from(HEADER_SIZE) {
        return format!("header.{}", HEADER[(off / 4) as usize]);
    }
    if let Some(e) = info.ext {
        let ext_end = u64::from(EXT_HEADER_OFFSET) + u64::from(e.ext_size);
        if off < u64::from(EXT_HEADER_END) {
            return format!("ext.{}", EXT[((off - 16) / 4) as usize]);
        }
        if info.is_r3() && off < u64::from(HEADER_R3_END) {
            return format!(
                "r3.{}",
                R3[((off - u64::from(EXT_HEADER_END)) / 4) as usize]
            );
        }
        if off < ext_end {
            return "ext (a field of a later revision)".to_owned();
        }
        let arrays = [
            (
                "descriptor",
                e.desc_offset,
                e.desc_count,
                e.desc_stride,
                false,
            ),
            (
                "r3 descriptor",
                info.xdesc_offset,
                info.xdesc_count,
                info.xdesc_stride,
                true,
            ),
        ];
        for (what, d0, count, stride, r3) in arrays {
            let (d0, stride) = (u64::from(d0), u64::from(stride.max(1)));
            let d_end = d0 + u64::from(count) * stride;
            if count == 0 || !(d0..d_end).contains(&off) {
                continue;
            }
            let i = ((off - d0) / stride) as u32;
            let within = (off - d0) % stride;
            let d = if r3 {
                info.xdescriptor(head, i)
            } else {
                info.descriptor(head, i)
            };
            let name = d
                .and_then(|d| d.name_str().map(str::to_owned))
                .unwrap_or_default();
            let field = match within {
                0..48 => "name",
                48..52 => "offset",
                52..56 => "count",
                56..60 => "kind/unit/base/exponent",
                60..64 => "bucket_size",
                _ => "a field of a later revision",
            };
            return format!("{what} {i} ({name}).{field}");
        }
    }
    "reserved".to_owned()
}

#[cfg(test)]
mod tests {
    use vstats_abi::{
        desc::{Base, Descriptor, Kind, Unit},
        layout::{Layout, LayoutParams},
        record::VCPU_STD_DESCRIPTORS,
        VCPU_STATS_MAGIC,
    };

    use super::*;

    fn table(descs: &[Descriptor], size: u32) -> (Vec<u8>, Layout) {
        let l = Layout::compute(&LayoutParams {
            record_size: size,
            abi_size: 40,
            desc_count: descs.len() as u32,
            ..LayoutParams::vcpu_r2(2)
        })
        .unwrap();
        let mut b = vec![0u8; l.mapping_len() as usize];
        l.write_headers(&mut b, VCPU_STATS_MAGIC, 9, descs).unwrap();
        (b, l)
    }

    #[test]
    fn outside_words_cover_pad_padding_and_tail() {
        let (b, l) = table(VCPU_STD_DESCRIPTORS, 40);
        let info = vstats_abi::validate(&b, b.len() as u64).unwrap();
        let mut seen = Vec::new();
        for_each_outside(&info, b.len() as u64, |o, k| seen.push((o, k)));
        let r0 = u64::from(l.offset);
        assert_eq!(seen[0], (r0 + 4, Outside::Pad(0)));
        assert_eq!(seen[1], (r0 + 40, Outside::Padding(0)));
        assert_eq!(seen[3], (r0 + 56, Outside::Padding(0)));
        assert_eq!(seen[4], (r0 + 64 + 4, Outside::Pad(1)));
        let tail = r0 + 2 * 64;
        assert_eq!(seen[8], (tail, Outside::Tail));
        assert_eq!(seen.last().unwrap().0, 4096 - 8);
    }

    #[test]
    fn standard_fields_must_keep_their_meaning() {
        let mut descs = VCPU_STD_DESCRIPTORS.to_vec();
        descs[1] = Descriptor::scalar("exits", 16, Kind::CUMULATIVE, Unit::NONE, Base::POW10, 0);
        let (b, _) = table(&descs, 40);
        let info = vstats_abi::validate(&b, b.len() as u64).unwrap();
        let errs = standard_field_errors(&b, &info);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].1.contains("runstate_runnable_time"), "{errs:?}");
        let (good, _) = table(VCPU_STD_DESCRIPTORS, 40);
        let info = vstats_abi::validate(&good, good.len() as u64).unwrap();
        assert!(standard_field_errors(&good, &info).is_empty());
        assert_eq!(head_field(0, &info, &good), "header.magic");
        assert_eq!(head_field(48, &info, &good), "ext.generation (low half)");
        assert_eq!(
            head_field(56 + 64 + 57, &info, &good),
            "descriptor 1 (runstate_runnable_time).kind/unit/base/exponent"
        );
        assert_eq!(
            head_field(info.header.offset as u64 - 4, &info, &good),
            "reserved"
        );
    }
}
