/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Harness shim for Xen's <asm/system.h>: smp_wmb.
 *
 * On x86 Xen smp_wmb() is barrier(), a compiler barrier and no instruction:
 * x86 (TSO) keeps stores in program order, so only the compiler must be
 * kept from reordering them. A C11 release fence states that portably: on
 * x86-64 it emits no instruction and orders the accesses before it before
 * the atomic stores after it, the pairing the Rust reader's acquire fences
 * (vstats-abi's seqlock) are written against.
 *
 * After the fence the shim calls the calling thread's hook, if the harness
 * set one (xen_shim_set_wmb_hook(), shim.c): every smp_wmb() of the
 * producer is a point where a test can hold the writer mid-update (after
 * W1, before W4, before a magic store) and read the table. A call is also a
 * compiler barrier for the table's memory, so the hook adds no order that
 * the fence did not already give.
 */
#ifndef SHIM_ASM_SYSTEM_H
#define SHIM_ASM_SYSTEM_H

void xen_shim_wmb(void);

#define smp_wmb() xen_shim_wmb()

#endif
