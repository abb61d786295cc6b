/* SPDX-License-Identifier: MIT */
/******************************************************************************
 * stats_table.h
 *
 * Statistics tables shared read-only with the toolstack: the layout of the
 * per-domain vCPU table and domain table that a consumer maps with
 * XENMEM_acquire_resource (type XENMEM_resource_stats_table), revision r3.
 *
 * The normative text is the vstats ABI specification (docs/abi.md); the
 * rule numbers below (R1..R28 checked by a consumer, P1..P15 kept by a
 * producer, L1 for the layout arithmetic) are its numbers, repeated beside
 * the field each one concerns.
 *
 * This header includes nothing. Like the other public headers it expects
 * uint32_t, uint64_t, uint8_t and int8_t to be defined by the includer
 * (include <stdint.h>, or Xen's xen.h, first). It is ANSI C (C89) and C++98
 * clean: no 64-bit integer literals (a 64-bit constant is written as two
 * 32-bit halves, or with xen_mk_ullong() when xen.h defined it), no
 * bitfields, no anonymous unions, no flexible arrays.
 *
 * Every uint64_t field lies at a multiple of 8 and every structure's size is
 * a multiple of 8, so 32-bit (i386: 4-byte alignment of uint64_t inside a
 * structure) and 64-bit compilers lay the structures out identically; the
 * tables are shared memory, never hypercall arguments, and need no compat
 * translation.
 *
 * Byte order: every integer is in the producer's native byte order.
 */

#ifndef __XEN_PUBLIC_STATS_TABLE_H__
#define __XEN_PUBLIC_STATS_TABLE_H__

/*
 * Resource type and ids for XENMEM_acquire_resource. Frame 0 of either
 * resource holds the table header; the resource size (the frame count
 * xenforeignmemory_resource_size() reports) covers every record.
 */
#define XENMEM_resource_stats_table 3
#define XENMEM_resource_stats_table_id_vcpustats 0
#define XENMEM_resource_stats_table_id_domstats 1
/* One frame: struct xen_stats_time, Xen system time for clock 2 readers. */
#define XENMEM_resource_stats_table_id_time 2

/*
 * Magics. The magic is the only version of the ABI: it changes only for a
 * deliberate incompatible break, and a consumer refuses any value it does
 * not know (R2). Compatible growth is by size fields only (ext_size, size,
 * xstats_size, xdesc_stride): a consumer reads the prefix it knows and
 * treats anything past the producer's size as absent.
 *
 * XEN_DOMAIN_STATS_MAGIC_R2 is the domain table magic of revision r2; an r3
 * consumer accepts it, an r3 producer writes XEN_DOMAIN_STATS_MAGIC.
 */
#define XEN_VCPU_STATS_MAGIC 0xaabbccddU
#define XEN_DOMAIN_STATS_MAGIC 0xd057a75eU
#define XEN_DOMAIN_STATS_MAGIC_R2 0xaabbccdeU

/*
 * The word at byte 16 of an r2 or later header: frozen, it is not a
 * version and no revision may change it (the bytes "vsx1"). It is 0 only in
 * a table of the original RFC v3 producer, whose bytes [16, offset) are all
 * zero and whose header ends at byte 16.
 */
#define XEN_STATS_HDR_MARKER 0x31787376U

/* Where the part of the header counted by ext_size starts. */
#define XEN_STATS_EXT_OFFSET 16U
/* ext_size as written by an r2 producer, and by an r3 producer. */
#define XEN_STATS_EXT_SIZE_R2 40U
#define XEN_STATS_EXT_SIZE_R3 72U

/* seq and _pad: the bytes of a record before its first counter word. */
#define XEN_STATS_RECORD_PREFIX 8U

/* The range of page_shift (4 KiB to 1 GiB pages). */
#define XEN_STATS_PAGE_SHIFT_MIN 12U
#define XEN_STATS_PAGE_SHIFT_MAX 30U

/*
 * Time bases (header field clock). Every nanosecond value of a table is
 * measured with the clock named here; runstate_entry_time is the only point
 * in time, every other one is a duration.
 *  NONE:           unnamed (r1 and r2 tables); a consumer cannot compare
 *                  entry times with "now" and does not extrapolate.
 *  HOST_MONOTONIC: the host's CLOCK_MONOTONIC (user-space producers).
 *  XEN_SYSTEM:     Xen system time, NOW(): nanoseconds since Xen booted, as
 *                  published in vcpu_time_info.
 * Any other value: a consumer does not extrapolate (R26).
 */
#define XEN_STATS_CLOCK_NONE 0U
#define XEN_STATS_CLOCK_HOST_MONOTONIC 1U
#define XEN_STATS_CLOCK_XEN_SYSTEM 2U

/*
 * The runstates, as vcpu.h defines them; defined here identically when
 * vcpu.h was not included first (a later vcpu.h repeats the same
 * definitions, which C allows).
 */
#ifndef RUNSTATE_running
#define RUNSTATE_running 0
#endif
#ifndef RUNSTATE_runnable
#define RUNSTATE_runnable 1
#endif
#ifndef RUNSTATE_blocked
#define RUNSTATE_blocked 2
#endif
#ifndef RUNSTATE_offline
#define RUNSTATE_offline 3
#endif
/* Number of runstates, and of runstate times in struct xen_vcpu_stats. */
#define XEN_STATS_NR_RUNSTATES 4U

/*
 * Inactive counters (R14, R15). A 64-bit counter word with bit 63 set is
 * inactive: absent, never zero. All ones is the canonical marker a producer
 * writes (P4). A counter that would reach 2^63 becomes inactive instead of
 * wrapping (R15, P6).
 *
 * The marker's halves let a 32-bit consumer that reads a word as two 32-bit
 * loads (see "Reading" below) test the high half alone: the high half is
 * the word at byte 4 of the counter on a little-endian host, at byte 0 on a
 * big-endian one.
 */
#define XEN_STATS_INACTIVE_HI 0xffffffffU
#define XEN_STATS_INACTIVE_LO 0xffffffffU
#define _XEN_STATS_INACTIVE_BIT 63
#if defined(xen_mk_ullong)
#define XEN_STATS_INACTIVE xen_mk_ullong(0xffffffffffffffff)
#define XEN_STATS_INACTIVE_BIT (xen_mk_ullong(1) << _XEN_STATS_INACTIVE_BIT)
#else
#define XEN_STATS_INACTIVE \
    (((uint64_t)XEN_STATS_INACTIVE_HI << 32) | (uint64_t)XEN_STATS_INACTIVE_LO)
#define XEN_STATS_INACTIVE_BIT ((uint64_t)1 << _XEN_STATS_INACTIVE_BIT)
#endif
/* 1 when the 64-bit word w is inactive, else 0. */
#define XEN_STATS_IS_INACTIVE(w) (((w) >> _XEN_STATS_INACTIVE_BIT) & 1)
/* 1 when a word whose high 32-bit half is hi is inactive, else 0. */
#define XEN_STATS_IS_INACTIVE_HI(hi) (((hi) >> 31) & 1)
/* What every record's _pad word holds (P4). */
#define XEN_STATS_PAD_INACTIVE 0xffffffffU

/*
 * The table header, at byte 0 of frame 0: 88 bytes in r3.
 *
 * It is three generations of one structure; a field is present only when
 * the producer's header reaches it:
 *   bytes  0..16  RFC v3 (r1): always present.
 *   bytes 16..56  r2: present when hdr_marker != 0; ext_size counts the
 *                 bytes from byte 16 that the producer wrote (40 in r2).
 *   bytes 56..88  r3: present when hdr_marker != 0 and ext_size >= 72.
 * A consumer treats a field past 16 + ext_size as absent (zero): an r2
 * table has clock XEN_STATS_CLOCK_NONE and no producer-specific area.
 *
 * A consumer copies the head of the table, [0, offset), into private memory
 * and validates the copy before reading any record: it reads magic, issues
 * an acquire barrier (pairing with the producer's publication, P7), then
 * copies the rest. It may refuse a head larger than a limit of its own; that
 * is a resource limit, not an invalid table. Every sum below is computed in
 * 64 bits, on 32-bit consumers too (R7).
 *
 * The producer writes the whole head before publishing and never changes it
 * afterwards (P2), except that retiring a table clears magic (P15).
 * Reserved bytes and [88, offset) outside the descriptor array are zero (P1).
 */
struct xen_stats_header {
    /*
     * XEN_VCPU_STATS_MAGIC or XEN_DOMAIN_STATS_MAGIC (XEN_DOMAIN_STATS_MAGIC_R2
     * accepted from r2 producers); anything else is refused (R2). 0 while
     * the table is being laid out and after it is retired (P15). Stored
     * last, after a release barrier (P7: smp_wmb() then write_atomic()).
     * The mapping must hold these first 16 bytes (R1).
     */
    uint32_t magic;
    /*
     * Table offset of record 0: >= 16 (R3), a multiple of 8 (R6), and
     * >= 16 + ext_size when the r2 header is present (R9). Records are
     * at offset + i * stride for i < nr_records, computed the same way by
     * producer and consumer (P9), and lie inside the mapping (R7).
     */
    uint32_t offset;
    /*
     * The producer's sizeof() of the standard record: 56 for an r3 vCPU
     * table, 32 for a domain table; never includes producer-specific
     * counters. A multiple of 8, >= 8 (R4). A vCPU table has size >= 16,
     * an r3 vCPU table size >= 56 (R22). A consumer reads a standard field
     * at record offset o only when o + 8 <= size (R17).
     */
    uint32_t size;
    /*
     * Distance between records: >= size (R5), a multiple of 8 (R6). No
     * record, producer-specific area included, crosses a page boundary
     * (R8), so each record lives in one frame.
     */
    uint32_t stride;

    /* ---- r2: present when hdr_marker != 0 ---- */

    /* XEN_STATS_HDR_MARKER; 0 only in an RFC v3 table (R9). */
    uint32_t hdr_marker;
    /*
     * Bytes of header after byte 16 that the producer wrote:
     * XEN_STATS_EXT_SIZE_R2 or XEN_STATS_EXT_SIZE_R3 (or more, from a later
     * revision). >= 40, a multiple of 8, 16 + ext_size <= offset (R9).
     */
    uint32_t ext_size;
    /*
     * Record slots. In a vCPU table slot i is vCPU id i (R24); Xen uses
     * d->max_vcpus. A domain table has exactly one record (R18) and must
     * have this r2 header (R23).
     */
    uint32_t nr_records;
    /* log2 of the page size the layout obeys (R8), 12..30 (R9). */
    uint32_t page_shift;
    /*
     * r2: bytes of the record defined by the producer's revision. r3: equal
     * to size (R21).
     */
    uint32_t abi_size;
    /*
     * r2 descriptor array (R10, R13). r3: all three are 0 (R21); the r3
     * descriptors are xdesc_* below.
     */
    uint32_t desc_offset;
    uint32_t desc_count;
    uint32_t desc_stride;
    /*
     * Differs between two tables published under one name (a restart, a
     * re-allocation, a new domain reusing a domid). Xen: unique per table
     * allocation for the life of the hypervisor.
     */
    uint64_t generation;

    /* ---- r3: present when hdr_marker != 0 and ext_size >= 72 ---- */

    /* Time base of every nanosecond value: XEN_STATS_CLOCK_* (R26). */
    uint32_t clock;
    /* Reserved, zero (P1). */
    uint32_t _rsvd0;
    /*
     * The producer-specific area of every record, record-relative:
     * [xstats_offset, xstats_offset + xstats_size). Both 0 when there is
     * none (Xen publishes none). Otherwise xstats_offset >= size, both are
     * multiples of 8, and the area ends inside the stride and the page
     * (R19, R8). It is covered by the record's seq like the standard
     * fields. Its counters are read only through the descriptors below; an
     * area no descriptor describes reads as padding.
     */
    uint32_t xstats_offset;
    uint32_t xstats_size;
    /*
     * The r3 descriptor array: xdesc_count descriptors of struct
     * xen_stats_desc, xdesc_stride bytes apart, at table offset
     * xdesc_offset, inside [16 + ext_size, offset). All three are 0 when
     * there are none; otherwise xdesc_stride >= 64 and a multiple of 8.
     * Each descriptor describes a counter inside the producer-specific
     * area and never a standard field, nor carries a standard field's name
     * (R20). There is no ABI maximum on xdesc_count.
     */
    uint32_t xdesc_offset;
    uint32_t xdesc_count;
    uint32_t xdesc_stride;
    /* Reserved, zero (P1). */
    uint32_t _rsvd1;
};
/* 88 bytes */
typedef struct xen_stats_header xen_stats_header_t;

/*
 * Descriptor kinds, units and bases (the values of Linux's KVM binary
 * statistics, KVM_STATS_TYPE_*, KVM_STATS_UNIT_*, KVM_STATS_BASE_*).
 */
#define XEN_STATS_KIND_CUMULATIVE 0U
#define XEN_STATS_KIND_INSTANT 1U
#define XEN_STATS_KIND_PEAK 2U
#define XEN_STATS_KIND_LINEAR_HIST 3U
#define XEN_STATS_KIND_LOG2_HIST 4U

#define XEN_STATS_UNIT_NONE 0U
#define XEN_STATS_UNIT_BYTES 1U
#define XEN_STATS_UNIT_SECONDS 2U
#define XEN_STATS_UNIT_CYCLES 3U
#define XEN_STATS_UNIT_BOOLEAN 4U

#define XEN_STATS_BASE_POW10 10U
#define XEN_STATS_BASE_POW2 2U

/* Bytes of a descriptor as this revision defines it, and of its name. */
#define XEN_STATS_DESC_SIZE 64U
#define XEN_STATS_DESC_NAME_LEN 48U

/*
 * One producer-specific counter (optional machinery: a hypervisor that
 * publishes none needs none of it). 64 bytes, growable by xdesc_stride.
 */
struct xen_stats_desc {
    /*
     * Non-empty printable ASCII, NUL-terminated within the 48 bytes and
     * NUL-padded; unique in the table (R11). 47 characters fit every KVM
     * statistic name (KVM_STATS_NAME_SIZE is 48).
     */
    char name[XEN_STATS_DESC_NAME_LEN];
    /*
     * Record-relative byte offset of the counter, a multiple of 8: its
     * count words lie inside the producer-specific area (R20), and no two
     * counters overlap.
     */
    uint32_t offset;
    /* 64-bit words: 1, or the bucket count of a histogram (R12). */
    uint32_t count;
    /* XEN_STATS_KIND_* (R12). */
    uint8_t kind;
    /* XEN_STATS_UNIT_* (R12). */
    uint8_t unit;
    /* XEN_STATS_BASE_* (R12). */
    uint8_t base;
    /*
     * The value means raw * base^exponent. Seconds: <= 0; boolean: 0;
     * none, bytes and cycles: >= 0 (R12).
     */
    int8_t exponent;
    /*
     * Width of a linear histogram's buckets (> 0), else 0 (R12). Linear:
     * bucket i counts [i * bucket_size, (i + 1) * bucket_size); log2:
     * bucket 0 counts 0 and bucket i counts [2^(i-1), 2^i). The last bucket
     * of either is open-ended (R28). A histogram with any inactive bucket
     * is absent as a whole (R27); a producer marks its buckets active or
     * inactive together (P12).
     */
    uint32_t bucket_size;
};
/* 64 bytes */
typedef struct xen_stats_desc xen_stats_desc_t;

/*
 * Records.
 *
 * Every record starts with seq and _pad, then 64-bit counter words.
 *
 * At layout time, before any record is written (P4, P13): every counter
 * word, all padding and the whole record area up to the end of the mapping
 * hold XEN_STATS_INACTIVE, except that at every slot position offset + k *
 * stride inside the mapping seq is 0 and _pad is XEN_STATS_PAD_INACTIVE (so
 * the tail after nr_records reads as unused slots, not as busy ones).
 *
 * A slot is unused when every counter word within size is inactive (R16).
 *
 * Writing (one writer per record; seq kept privately, never read back,
 * P8; a writer that takes over a record continues from the last seq):
 *   W1  seq = s + 1                  (store)
 *   W2  release barrier              (smp_wmb())
 *   W3  store each counter word      (one aligned 64-bit store each where
 *                                     the architecture has one; a 32-bit
 *                                     producer may store two halves)
 *   W4  seq = s + 2, with release    (smp_store_release())
 * seq grows by one at each end of an update, wraps modulo 2^32, is even at
 * rest and odd only for one short, bounded update (P5). A producer writes
 * nothing outside [start, start + size) and the producer-specific area of
 * the records it owns (P3). Cumulative and peak counters never decrease
 * (P6); a resettable cumulative source is continued, never published
 * decreasing (P14).
 *
 * Reading (the mapping is read-only):
 *   S1  s1 = seq, then an acquire barrier; retry while s1 is odd
 *   S2  copy the words
 *   S3  acquire barrier              (smp_rmb())
 *   S4  s2 = seq; retry if s2 != s1  (a bounded number of times, then
 *                                     report the record busy)
 * Each 64-bit word is read with one single-copy-atomic 64-bit load, or as
 * two aligned 32-bit loads (in either order), all between S1 and S4: a torn
 * pair is caught by S4 like any torn copy. On 32-bit targets do not use a
 * C11 64-bit atomic load on this read-only mapping (i386 compilers may emit
 * lock cmpxchg8b, which writes and faults there): use two 32-bit loads. No
 * 64-bit value is read in halves outside the seq window.
 */

/*
 * The vCPU record, one per vCPU id (R24): 56 bytes in r3. RFC v3 (r1)
 * stopped after runstate_running_time, r2 after runstate_offline_time.
 *
 * The four times are accrued up to runstate_entry_time, which is not in the
 * future of the table's clock (P11); the time since then belongs to
 * runstate and is not in the record. That is the meaning of struct
 * vcpu_runstate_info's fields, so a Xen producer copies v->runstate at each
 * runstate change. The up-to-date time of the current state is
 * time + (now - runstate_entry_time), now read in the table's clock after
 * the copy, a negative interval counting as 0 (R26); a consumer without
 * that clock reports the times as of the last change. The sum of the four
 * up-to-date times never decreases and grows by at most the elapsed time.
 *
 * In a used slot the running time is active (R16); in an r3 table runstate
 * is RUNSTATE_running..RUNSTATE_offline and it and runstate_entry_time are
 * active too (R25). Every vCPU that exists when the table is first handed
 * out has its record written before that (P10). An offline vCPU (down, not
 * yet up, paused by the toolstack) is a used slot with runstate
 * RUNSTATE_offline, whose offline time accrues.
 */
struct xen_vcpu_stats {
    /* The seq protocol word: even at rest, odd during an update (P5). */
    uint32_t seq;
    /* XEN_STATS_PAD_INACTIVE (P4). */
    uint32_t _pad;
    /* Cumulative ns in RUNSTATE_running (r1). */
    uint64_t runstate_running_time;
    /* Cumulative ns in RUNSTATE_runnable (r2). */
    uint64_t runstate_runnable_time;
    /* Cumulative ns in RUNSTATE_blocked (r2). */
    uint64_t runstate_blocked_time;
    /* Cumulative ns in RUNSTATE_offline (r2). */
    uint64_t runstate_offline_time;
    /*
     * The current state, RUNSTATE_* (r3). A full 64-bit word, unlike
     * vcpu_runstate_info's int state, so it can be inactive.
     */
    uint64_t runstate;
    /*
     * When the current state was entered, ns in the table's clock (r3).
     * Without XEN_RUNSTATE_UPDATE: a Xen producer copies
     * state_entry_time & ~XEN_RUNSTATE_UPDATE (bit 63 is the inactive
     * marker here, and seq does that flag's job).
     */
    uint64_t runstate_entry_time;
};
/* 56 bytes */
typedef struct xen_vcpu_stats xen_vcpu_stats_t;

/*
 * The domain record, the one record of a domain table (R18): 32 bytes,
 * unchanged since r2 but for the table's magic.
 */
struct xen_domain_stats {
    /* The seq protocol word (P5). */
    uint32_t seq;
    /* XEN_STATS_PAD_INACTIVE (P4). */
    uint32_t _pad;
    /* Instant: vCPUs online. */
    uint64_t vcpus_online;
    /* Instant: the domain's maximum number of vCPUs. */
    uint64_t vcpus_max;
    /*
     * Cumulative ns since the domain was created, accrued at each update
     * (not extrapolated).
     */
    uint64_t uptime;
};
/* 32 bytes */
typedef struct xen_domain_stats xen_domain_stats_t;

/*
 * Layout arithmetic a producer may use (L1; consumers never assume it and
 * use offset and stride from the header, checking R8). With n records,
 * standard size s, a producer-specific area of x bytes, d descriptors, page
 * size P and cacheline C (powers of two, 8 <= C <= P):
 *
 *   xstats_offset = x > 0 ? s : 0
 *   stride        = next_power_of_two(roundup(s + x, C))    (s + x <= P)
 *   xdesc_offset  = d > 0 ? 88 : 0
 *   offset        = roundup(88 + 64 * d, stride)
 *   frames        = ceil((offset + n * stride) / P)
 *
 * A power-of-two stride no larger than the page divides it, so no record
 * crosses a page (R8) and record i lives in frame (offset + i * stride) / P.
 * Xen's vCPU table (s = 56, x = 0, d = 0, C = 64): stride 64, offset 128.
 */

/*
 * The time frame (r3, Xen): resource XENMEM_resource_stats_table, id
 * XENMEM_resource_stats_table_id_time, one frame per domain, allocated at
 * its first acquire like the tables. It lets a consumer read Xen system
 * time (clock XEN_STATS_CLOCK_XEN_SYSTEM, NOW()) without a hypercall, which
 * the pvclock copy in dom0's shared_info cannot do once the guest has
 * registered its own vcpu_info (VCPUOP_register_vcpu_info).
 *
 * Bytes 8..40 have the layout and meaning of struct vcpu_time_info
 * (xen.h), as Xen would write it for a vCPU of a domain with a native TSC:
 *
 *   now = system_time + ((((tsc - tsc_timestamp) << tsc_shift)
 *                         * tsc_to_system_mul) >> 32)
 *
 * (a negative tsc_shift is a right shift; 128-bit intermediate), read
 * under the time_version seqlock: even and unchanged around the copy, with
 * the rdtsc inside the window. Xen rewrites the frame of every domain that
 * has one at each of its time calibrations (about once a second) from one
 * physical CPU's calibration; without XEN_STATS_TIME_TSC_STABLE a read on
 * another physical CPU can be off by the cross-CPU TSC skew. A consumer
 * refuses a copy older than XEN_STATS_TIME_MAX_AGE_S seconds of
 * extrapolation (Xen has stopped updating it) and then reports runstate
 * times as of the last change.
 *
 * Publication: Xen writes size and a first time, then smp_wmb(), then
 * magic (P7's order). A consumer refuses a frame whose magic is not
 * XEN_STATS_TIME_MAGIC or whose size is below 40.
 */
#define XEN_STATS_TIME_MAGIC 0xc10c57a7U
#define XEN_STATS_TIME_SIZE 40U
#define XEN_STATS_TIME_MAX_AGE_S 10U
/* flags: XEN_PVCLOCK_TSC_STABLE_BIT's value. */
#define XEN_STATS_TIME_TSC_STABLE 1U

struct xen_stats_time {
    /* XEN_STATS_TIME_MAGIC once published, 0 before. */
    uint32_t magic;
    /* Bytes of this structure the producer writes: XEN_STATS_TIME_SIZE. */
    uint32_t size;
    /* Odd while Xen updates the fields below (vcpu_time_info.version). */
    uint32_t time_version;
    uint32_t _pad0;
    /* TSC at the last update. */
    uint64_t tsc_timestamp;
    /* Xen system time (ns since boot) at tsc_timestamp. */
    uint64_t system_time;
    uint32_t tsc_to_system_mul;
    int8_t tsc_shift;
    /* XEN_STATS_TIME_TSC_STABLE when every CPU's TSC agrees. */
    uint8_t flags;
    uint8_t _pad1[2];
};
/* 40 bytes */
typedef struct xen_stats_time xen_stats_time_t;

#endif /* __XEN_PUBLIC_STATS_TABLE_H__ */

/*
 * Local variables:
 * mode: C
 * c-file-style: "BSD"
 * c-basic-offset: 4
 * tab-width: 4
 * indent-tabs-mode: nil
 * End:
 */
