/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Harness shim for Xen's <public/vcpu.h>: only what the producer uses, with
 * Xen's definitions (the runstate numbers, the runstate structure with its
 * field order and types, and the update flag in bit 63 of
 * state_entry_time). xen_mk_ullong comes from Xen's public xen.h there.
 */
#ifndef SHIM_PUBLIC_VCPU_H
#define SHIM_PUBLIC_VCPU_H

#include <stdint.h>

#ifndef xen_mk_ullong
#define xen_mk_ullong(x) x##ULL
#endif

#define RUNSTATE_running  0
#define RUNSTATE_runnable 1
#define RUNSTATE_blocked  2
#define RUNSTATE_offline  3

struct vcpu_runstate_info {
    int state;
    uint64_t state_entry_time;
#define XEN_RUNSTATE_UPDATE (xen_mk_ullong(1) << 63)
    uint64_t time[4];
};

#endif
