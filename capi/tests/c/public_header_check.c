/*
 * Proves the layout of xen/stats_table.h at compile time and prints its
 * constants, sizes and offsets as "NAME VALUE" lines (VALUE in decimal), which
 * capi/tests/public_header.rs compares with vstats-abi.
 *
 * ANSI C89 and C++98 clean, so the same file is built with every -std the
 * test asks for, 32-bit and 64-bit: the layout checks are typedefs of arrays
 * whose size is -1 when a check fails (no _Static_assert in C89), and the
 * dump prints unsigned long values (no %llu in C89), 64-bit values as two
 * 32-bit halves. Every build prints the same lines.
 *
 * -DXEN_NAMES_FIRST defines what Xen's xen.h (xen_mk_ullong) and vcpu.h
 * (RUNSTATE_*) define, spelled as they spell it, before the header; without
 * it the RUNSTATE_* definitions follow the header, as when vcpu.h is
 * included after it. Either order must compile without a warning.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef XEN_NAMES_FIRST
#define __xen_mk_ullong(x) x ## ULL
#define xen_mk_ullong(x) __xen_mk_ullong(x)
#define RUNSTATE_running  0
#define RUNSTATE_runnable 1
#define RUNSTATE_blocked  2
#define RUNSTATE_offline  3
#endif

#include "xen/stats_table.h"
/* The guard makes a second inclusion a no-op. */
#include "xen/stats_table.h"

#ifndef XEN_NAMES_FIRST
/* vcpu.h after the header: identical redefinitions, accepted silently. */
#define RUNSTATE_running  0
#define RUNSTATE_runnable 1
#define RUNSTATE_blocked  2
#define RUNSTATE_offline  3
#endif

/* ---- Layout checks: a failing one is an array of size -1. ---- */

#define CHECK(name, cond) typedef char check_##name[(cond) ? 1 : -1]
#define SIZE(s, n) CHECK(s##_size, sizeof(struct s) == (n))
#define FIELD_SIZE(s, f) sizeof(((struct s *)0)->f)
/* Field f of struct s is at byte off and is n bytes wide. */
#define FIELD(s, f, off, n)                                 \
    CHECK(s##_##f##_off, offsetof(struct s, f) == (off));   \
    CHECK(s##_##f##_size, FIELD_SIZE(s, f) == (n))

SIZE(xen_stats_header, 88);
FIELD(xen_stats_header, magic, 0, 4);
FIELD(xen_stats_header, offset, 4, 4);
FIELD(xen_stats_header, size, 8, 4);
FIELD(xen_stats_header, stride, 12, 4);
FIELD(xen_stats_header, hdr_marker, 16, 4);
FIELD(xen_stats_header, ext_size, 20, 4);
FIELD(xen_stats_header, nr_records, 24, 4);
FIELD(xen_stats_header, page_shift, 28, 4);
FIELD(xen_stats_header, abi_size, 32, 4);
FIELD(xen_stats_header, desc_offset, 36, 4);
FIELD(xen_stats_header, desc_count, 40, 4);
FIELD(xen_stats_header, desc_stride, 44, 4);
FIELD(xen_stats_header, generation, 48, 8);
FIELD(xen_stats_header, clock, 56, 4);
FIELD(xen_stats_header, _rsvd0, 60, 4);
FIELD(xen_stats_header, xstats_offset, 64, 4);
FIELD(xen_stats_header, xstats_size, 68, 4);
FIELD(xen_stats_header, xdesc_offset, 72, 4);
FIELD(xen_stats_header, xdesc_count, 76, 4);
FIELD(xen_stats_header, xdesc_stride, 80, 4);
FIELD(xen_stats_header, _rsvd1, 84, 4);
/* ext_size of each revision is the header's length after byte 16. */
CHECK(ext_size_r2, XEN_STATS_EXT_OFFSET + XEN_STATS_EXT_SIZE_R2 ==
                       offsetof(struct xen_stats_header, clock));
CHECK(ext_size_r3, XEN_STATS_EXT_OFFSET + XEN_STATS_EXT_SIZE_R3 ==
                       sizeof(struct xen_stats_header));
CHECK(ext_offset, offsetof(struct xen_stats_header, hdr_marker) == XEN_STATS_EXT_OFFSET);

SIZE(xen_stats_desc, 64);
FIELD(xen_stats_desc, name, 0, 48);
FIELD(xen_stats_desc, offset, 48, 4);
FIELD(xen_stats_desc, count, 52, 4);
FIELD(xen_stats_desc, kind, 56, 1);
FIELD(xen_stats_desc, unit, 57, 1);
FIELD(xen_stats_desc, base, 58, 1);
FIELD(xen_stats_desc, exponent, 59, 1);
FIELD(xen_stats_desc, bucket_size, 60, 4);
CHECK(desc_size, sizeof(struct xen_stats_desc) == XEN_STATS_DESC_SIZE);
CHECK(desc_name_len, FIELD_SIZE(xen_stats_desc, name) == XEN_STATS_DESC_NAME_LEN);

SIZE(xen_vcpu_stats, 56);
FIELD(xen_vcpu_stats, seq, 0, 4);
FIELD(xen_vcpu_stats, _pad, 4, 4);
FIELD(xen_vcpu_stats, runstate_running_time, 8, 8);
FIELD(xen_vcpu_stats, runstate_runnable_time, 16, 8);
FIELD(xen_vcpu_stats, runstate_blocked_time, 24, 8);
FIELD(xen_vcpu_stats, runstate_offline_time, 32, 8);
FIELD(xen_vcpu_stats, runstate, 40, 8);
FIELD(xen_vcpu_stats, runstate_entry_time, 48, 8);
CHECK(vcpu_prefix, offsetof(struct xen_vcpu_stats, runstate_running_time) ==
                       XEN_STATS_RECORD_PREFIX);
/* The four times are indexed by RUNSTATE_*, 8 bytes apart. */
CHECK(vcpu_times, offsetof(struct xen_vcpu_stats, runstate_offline_time) ==
                      offsetof(struct xen_vcpu_stats, runstate_running_time) +
                          8 * RUNSTATE_offline);

SIZE(xen_domain_stats, 32);
FIELD(xen_domain_stats, seq, 0, 4);
FIELD(xen_domain_stats, _pad, 4, 4);
FIELD(xen_domain_stats, vcpus_online, 8, 8);
FIELD(xen_domain_stats, vcpus_max, 16, 8);
FIELD(xen_domain_stats, uptime, 24, 8);

SIZE(xen_stats_time, 40);
FIELD(xen_stats_time, magic, 0, 4);
FIELD(xen_stats_time, size, 4, 4);
FIELD(xen_stats_time, time_version, 8, 4);
FIELD(xen_stats_time, _pad0, 12, 4);
FIELD(xen_stats_time, tsc_timestamp, 16, 8);
FIELD(xen_stats_time, system_time, 24, 8);
FIELD(xen_stats_time, tsc_to_system_mul, 32, 4);
FIELD(xen_stats_time, tsc_shift, 36, 1);
FIELD(xen_stats_time, flags, 37, 1);
FIELD(xen_stats_time, _pad1, 38, 2);
CHECK(time_size, sizeof(struct xen_stats_time) == XEN_STATS_TIME_SIZE);

/* The typedefs name the structures. */
CHECK(typedef_header, sizeof(xen_stats_header_t) == sizeof(struct xen_stats_header));
CHECK(typedef_desc, sizeof(xen_stats_desc_t) == sizeof(struct xen_stats_desc));
CHECK(typedef_vcpu, sizeof(xen_vcpu_stats_t) == sizeof(struct xen_vcpu_stats));
CHECK(typedef_domain, sizeof(xen_domain_stats_t) == sizeof(struct xen_domain_stats));
CHECK(typedef_time, sizeof(xen_stats_time_t) == sizeof(struct xen_stats_time));

/* 64-bit constants, whichever way the header spelled them. */
CHECK(inactive, XEN_STATS_INACTIVE == (uint64_t)~(uint64_t)0);
CHECK(inactive_bit, XEN_STATS_INACTIVE_BIT == ((uint64_t)1 << 63));
CHECK(inactive_is, XEN_STATS_IS_INACTIVE(XEN_STATS_INACTIVE) == 1);

/* ---- The value dump. ---- */

static void put(const char *name, unsigned long value)
{
    printf("%s %lu\n", name, value);
}

/* A 64-bit value as NAME.hi and NAME.lo. */
static void put64(const char *name, uint64_t value)
{
    printf("%s.hi %lu\n", name, (unsigned long)(value >> 32));
    printf("%s.lo %lu\n", name, (unsigned long)(value & 0xffffffffU));
}

#define V(x) put(#x, (unsigned long)(x))
#define V64(x) put64(#x, (uint64_t)(x))
#define SZ(s) put("sizeof(" #s ")", (unsigned long)sizeof(struct s))
#define OF(s, f) put("offsetof(" #s "," #f ")", (unsigned long)offsetof(struct s, f))
/* A test of a macro on a value, printed as 0 or 1. */
#define T(label, x) put(label, (unsigned long)((x) ? 1 : 0))

int main(void)
{
    V(XENMEM_resource_stats_table);
    V(XENMEM_resource_stats_table_id_vcpustats);
    V(XENMEM_resource_stats_table_id_domstats);
    V(XENMEM_resource_stats_table_id_time);
    V(XEN_VCPU_STATS_MAGIC);
    V(XEN_DOMAIN_STATS_MAGIC);
    V(XEN_DOMAIN_STATS_MAGIC_R2);
    V(XEN_STATS_HDR_MARKER);
    V(XEN_STATS_EXT_OFFSET);
    V(XEN_STATS_EXT_SIZE_R2);
    V(XEN_STATS_EXT_SIZE_R3);
    V(XEN_STATS_RECORD_PREFIX);
    V(XEN_STATS_PAGE_SHIFT_MIN);
    V(XEN_STATS_PAGE_SHIFT_MAX);
    V(XEN_STATS_CLOCK_NONE);
    V(XEN_STATS_CLOCK_HOST_MONOTONIC);
    V(XEN_STATS_CLOCK_XEN_SYSTEM);
    V(RUNSTATE_running);
    V(RUNSTATE_runnable);
    V(RUNSTATE_blocked);
    V(RUNSTATE_offline);
    V(XEN_STATS_NR_RUNSTATES);
    V(XEN_STATS_INACTIVE_HI);
    V(XEN_STATS_INACTIVE_LO);
    V64(XEN_STATS_INACTIVE);
    V64(XEN_STATS_INACTIVE_BIT);
    V(XEN_STATS_PAD_INACTIVE);
    T("IS_INACTIVE(INACTIVE)", XEN_STATS_IS_INACTIVE(XEN_STATS_INACTIVE));
    T("IS_INACTIVE(INACTIVE_BIT)", XEN_STATS_IS_INACTIVE(XEN_STATS_INACTIVE_BIT));
    T("IS_INACTIVE(INACTIVE_BIT-1)", XEN_STATS_IS_INACTIVE(XEN_STATS_INACTIVE_BIT - 1));
    T("IS_INACTIVE(0)", XEN_STATS_IS_INACTIVE((uint64_t)0));
    T("IS_INACTIVE_HI(INACTIVE_HI)", XEN_STATS_IS_INACTIVE_HI(XEN_STATS_INACTIVE_HI));
    T("IS_INACTIVE_HI(0x80000000)", XEN_STATS_IS_INACTIVE_HI((uint32_t)0x80000000U));
    T("IS_INACTIVE_HI(0x7fffffff)", XEN_STATS_IS_INACTIVE_HI((uint32_t)0x7fffffffU));
    V(XEN_STATS_KIND_CUMULATIVE);
    V(XEN_STATS_KIND_INSTANT);
    V(XEN_STATS_KIND_PEAK);
    V(XEN_STATS_KIND_LINEAR_HIST);
    V(XEN_STATS_KIND_LOG2_HIST);
    V(XEN_STATS_UNIT_NONE);
    V(XEN_STATS_UNIT_BYTES);
    V(XEN_STATS_UNIT_SECONDS);
    V(XEN_STATS_UNIT_CYCLES);
    V(XEN_STATS_UNIT_BOOLEAN);
    V(XEN_STATS_BASE_POW10);
    V(XEN_STATS_BASE_POW2);
    V(XEN_STATS_DESC_SIZE);
    V(XEN_STATS_DESC_NAME_LEN);
    V(XEN_STATS_TIME_MAGIC);
    V(XEN_STATS_TIME_SIZE);
    V(XEN_STATS_TIME_MAX_AGE_S);
    V(XEN_STATS_TIME_TSC_STABLE);

    SZ(xen_stats_header);
    OF(xen_stats_header, magic);
    OF(xen_stats_header, offset);
    OF(xen_stats_header, size);
    OF(xen_stats_header, stride);
    OF(xen_stats_header, hdr_marker);
    OF(xen_stats_header, ext_size);
    OF(xen_stats_header, nr_records);
    OF(xen_stats_header, page_shift);
    OF(xen_stats_header, abi_size);
    OF(xen_stats_header, desc_offset);
    OF(xen_stats_header, desc_count);
    OF(xen_stats_header, desc_stride);
    OF(xen_stats_header, generation);
    OF(xen_stats_header, clock);
    OF(xen_stats_header, _rsvd0);
    OF(xen_stats_header, xstats_offset);
    OF(xen_stats_header, xstats_size);
    OF(xen_stats_header, xdesc_offset);
    OF(xen_stats_header, xdesc_count);
    OF(xen_stats_header, xdesc_stride);
    OF(xen_stats_header, _rsvd1);

    SZ(xen_stats_desc);
    OF(xen_stats_desc, name);
    OF(xen_stats_desc, offset);
    OF(xen_stats_desc, count);
    OF(xen_stats_desc, kind);
    OF(xen_stats_desc, unit);
    OF(xen_stats_desc, base);
    OF(xen_stats_desc, exponent);
    OF(xen_stats_desc, bucket_size);

    SZ(xen_vcpu_stats);
    OF(xen_vcpu_stats, seq);
    OF(xen_vcpu_stats, _pad);
    OF(xen_vcpu_stats, runstate_running_time);
    OF(xen_vcpu_stats, runstate_runnable_time);
    OF(xen_vcpu_stats, runstate_blocked_time);
    OF(xen_vcpu_stats, runstate_offline_time);
    OF(xen_vcpu_stats, runstate);
    OF(xen_vcpu_stats, runstate_entry_time);

    SZ(xen_domain_stats);
    OF(xen_domain_stats, seq);
    OF(xen_domain_stats, _pad);
    OF(xen_domain_stats, vcpus_online);
    OF(xen_domain_stats, vcpus_max);
    OF(xen_domain_stats, uptime);

    SZ(xen_stats_time);
    OF(xen_stats_time, magic);
    OF(xen_stats_time, size);
    OF(xen_stats_time, time_version);
    OF(xen_stats_time, _pad0);
    OF(xen_stats_time, tsc_timestamp);
    OF(xen_stats_time, system_time);
    OF(xen_stats_time, tsc_to_system_mul);
    OF(xen_stats_time, tsc_shift);
    OF(xen_stats_time, flags);
    OF(xen_stats_time, _pad1);
    return 0;
}
