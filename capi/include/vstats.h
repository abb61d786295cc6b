/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * vstats.h: the compatibility header, kept for one release (docs/abi.md,
 * changelog r3), then removed.
 *
 * It was both the ABI and the producer API. Those now live in
 *   xen/stats_table.h   the ABI, Xen-style names (xen_stats_*, XEN_STATS_*);
 *   vstats_producer.h   the producer API of libvstats (includes the above);
 *   vstats_reader.h     the reader API of libvstats (new).
 * This header includes vstats_producer.h and defines the old VSTATS_* names
 * of the ABI as aliases of the new ones, so programs written against it
 * keep compiling unchanged. New code includes the headers above instead.
 *
 * The library's producers write r3 tables: struct vstats_vcpu_stats is the
 * 56-byte r3 vCPU record (the fields of struct xen_vcpu_stats) and
 * VSTATS_DOMAIN_STATS_MAGIC r3's domain magic; r2's is kept as
 * VSTATS_DOMAIN_STATS_MAGIC_R2. The two-part header of r2, struct
 * vstats_header and struct vstats_ext_header, has no counterpart: struct
 * xen_stats_header is all 88 bytes of r3's.
 */
#ifndef VSTATS_H
#define VSTATS_H

#include "vstats_producer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Xen acquire-resource type and ids. */
#define VSTATS_XENMEM_RESOURCE_STATS_TABLE XENMEM_resource_stats_table
#define VSTATS_XENMEM_RESOURCE_STATS_TABLE_ID_VCPUSTATS XENMEM_resource_stats_table_id_vcpustats
#define VSTATS_XENMEM_RESOURCE_STATS_TABLE_ID_DOMSTATS XENMEM_resource_stats_table_id_domstats

/* Table magics. */
#define VSTATS_VCPU_STATS_MAGIC XEN_VCPU_STATS_MAGIC
#define VSTATS_DOMAIN_STATS_MAGIC XEN_DOMAIN_STATS_MAGIC /* r3; readers also accept r2's */
#define VSTATS_DOMAIN_STATS_MAGIC_R2 XEN_DOMAIN_STATS_MAGIC_R2
/* r2's "extension magic", r3's frozen header marker. */
#define VSTATS_EXT_MAGIC XEN_STATS_HDR_MARKER

#define VSTATS_HEADER_SIZE XEN_STATS_EXT_OFFSET
#define VSTATS_EXT_HEADER_OFFSET XEN_STATS_EXT_OFFSET
#define VSTATS_EXT_HEADER_SIZE XEN_STATS_EXT_SIZE_R2
#define VSTATS_DESC_SIZE XEN_STATS_DESC_SIZE
#define VSTATS_DESC_NAME_LEN XEN_STATS_DESC_NAME_LEN
#define VSTATS_RECORD_PREFIX XEN_STATS_RECORD_PREFIX

#define VSTATS_INACTIVE XEN_STATS_INACTIVE
#define VSTATS_INACTIVE_BIT XEN_STATS_INACTIVE_BIT
#define VSTATS_PAD_INACTIVE XEN_STATS_PAD_INACTIVE

#define VSTATS_KIND_CUMULATIVE XEN_STATS_KIND_CUMULATIVE
#define VSTATS_KIND_INSTANT XEN_STATS_KIND_INSTANT
#define VSTATS_KIND_PEAK XEN_STATS_KIND_PEAK
#define VSTATS_KIND_LINEAR_HIST XEN_STATS_KIND_LINEAR_HIST
#define VSTATS_KIND_LOG2_HIST XEN_STATS_KIND_LOG2_HIST
#define VSTATS_UNIT_NONE XEN_STATS_UNIT_NONE
#define VSTATS_UNIT_BYTES XEN_STATS_UNIT_BYTES
#define VSTATS_UNIT_SECONDS XEN_STATS_UNIT_SECONDS
#define VSTATS_UNIT_CYCLES XEN_STATS_UNIT_CYCLES
#define VSTATS_UNIT_BOOLEAN XEN_STATS_UNIT_BOOLEAN
#define VSTATS_BASE_POW10 XEN_STATS_BASE_POW10
#define VSTATS_BASE_POW2 XEN_STATS_BASE_POW2

/* Structures with the same fields under their new names. */
#define vstats_desc xen_stats_desc
#define vstats_domain_stats xen_domain_stats

/* r2's header, as two structures. */
/* The table header at byte 0, identical to RFC v3's vcpu_shmem_stats. */
struct vstats_header {
    uint32_t magic;  /* VSTATS_VCPU_STATS_MAGIC or VSTATS_DOMAIN_STATS_MAGIC */
    uint32_t offset; /* where record 0 starts */
    uint32_t size;   /* the producer's sizeof(record) */
    uint32_t stride; /* distance between records */
};
/* size: 16 bytes */

/* The extension header at byte 16 (in v3's reserved area); all zero means
 * absent (a v3 producer). */
struct vstats_ext_header {
    uint32_t ext_magic;   /* VSTATS_EXT_MAGIC, or 0 when absent */
    uint32_t ext_size;    /* sizeof(struct vstats_ext_header) as the producer knew it */
    uint32_t nr_records;  /* number of record slots */
    uint32_t page_shift;  /* log2 of the producer's page size */
    uint32_t abi_size;    /* bytes of a record defined by the producer's ABI revision */
    uint32_t desc_offset; /* where the descriptors start, 0 when none */
    uint32_t desc_count;  /* number of descriptors, <= VSTATS_MAX_DESCRIPTORS */
    uint32_t desc_stride; /* distance between descriptors, >= 64 */
    uint64_t generation;  /* differs between two tables published under one name */
};
/* size: 40 bytes */

/* A record: u32 seq; u32 _pad; u64 counters[]. The vCPU record of this
 * revision (r3); r2 stops after runstate_offline_time (40 bytes), r1 (RFC
 * v3) after runstate_running_time. The four times are accrued up to
 * runstate_entry_time; the time since then belongs to runstate. */
struct vstats_vcpu_stats {
    uint32_t seq;  /* even at rest, odd during an update */
    uint32_t _pad; /* VSTATS_PAD_INACTIVE */
    uint64_t runstate_running_time;  /* cumulative, ns */
    uint64_t runstate_runnable_time; /* cumulative, ns */
    uint64_t runstate_blocked_time;  /* cumulative, ns */
    uint64_t runstate_offline_time;  /* cumulative, ns */
    uint64_t runstate;               /* instant: VSTATS_RUNSTATE_* */
    uint64_t runstate_entry_time;    /* instant, ns in the table's clock */
};
/* size: 56 bytes */
#define VSTATS_VCPU_STATS_SIZE 56u

/* The states of runstate (Xen's RUNSTATE_* numbering). */
#define VSTATS_RUNSTATE_RUNNING 0u
#define VSTATS_RUNSTATE_RUNNABLE 1u
#define VSTATS_RUNSTATE_BLOCKED 2u
#define VSTATS_RUNSTATE_OFFLINE 3u

VSTATS_STATIC_ASSERT(sizeof(struct vstats_header) == 16, "vstats_header size");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_header, magic) == 0, "magic");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_header, offset) == 4, "offset");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_header, size) == 8, "size");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_header, stride) == 12, "stride");

VSTATS_STATIC_ASSERT(sizeof(struct vstats_ext_header) == 40, "vstats_ext_header size");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_ext_header, ext_magic) == 0, "ext_magic");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_ext_header, ext_size) == 4, "ext_size");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_ext_header, nr_records) == 8, "nr_records");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_ext_header, page_shift) == 12, "page_shift");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_ext_header, abi_size) == 16, "abi_size");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_ext_header, desc_offset) == 20, "desc_offset");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_ext_header, desc_count) == 24, "desc_count");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_ext_header, desc_stride) == 28, "desc_stride");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_ext_header, generation) == 32, "generation");

VSTATS_STATIC_ASSERT(sizeof(struct vstats_desc) == 64, "vstats_desc size");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_desc, name) == 0, "name");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_desc, offset) == 48, "offset");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_desc, count) == 52, "count");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_desc, kind) == 56, "kind");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_desc, unit) == 57, "unit");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_desc, base) == 58, "base");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_desc, exponent) == 59, "exponent");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_desc, bucket_size) == 60, "bucket_size");

VSTATS_STATIC_ASSERT(sizeof(struct vstats_vcpu_stats) == VSTATS_VCPU_STATS_SIZE,
                     "vstats_vcpu_stats size");
VSTATS_STATIC_ASSERT(sizeof(struct vstats_vcpu_stats) == sizeof(struct xen_vcpu_stats),
                     "vstats_vcpu_stats is xen_vcpu_stats");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_vcpu_stats, seq) == 0, "seq");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_vcpu_stats, _pad) == 4, "_pad");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_vcpu_stats, runstate_running_time) == 8, "running");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_vcpu_stats, runstate_runnable_time) == 16, "runnable");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_vcpu_stats, runstate_blocked_time) == 24, "blocked");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_vcpu_stats, runstate_offline_time) == 32, "offline");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_vcpu_stats, runstate) == 40, "runstate");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_vcpu_stats, runstate_entry_time) == 48, "entry");

VSTATS_STATIC_ASSERT(sizeof(struct vstats_domain_stats) == 32, "vstats_domain_stats size");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_domain_stats, vcpus_online) == 8, "vcpus_online");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_domain_stats, vcpus_max) == 16, "vcpus_max");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_domain_stats, uptime) == 24, "uptime");

/* The flip's short name of the entry-time word (vstats_producer.h names it
 * VSTATS_VCPU_W_RUNSTATE_ENTRY). */
#define VSTATS_VCPU_W_ENTRY VSTATS_VCPU_W_RUNSTATE_ENTRY

#ifdef __cplusplus
}
#endif

#endif /* VSTATS_H */
