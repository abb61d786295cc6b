/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Harness shim for Xen's <asm/atomic.h>: read_atomic and write_atomic.
 *
 * On x86 Xen these are one mov of the object's size (1, 2, 4 or 8 bytes)
 * through inline assembly: a single-copy-atomic aligned access that the
 * compiler can neither split, merge nor elide, with no ordering of its own.
 * A relaxed C11 atomic load or store of the same object is that: on
 * x86-64, GCC and Clang emit the same single mov, and the C11 memory model
 * gives the access no ordering beyond atomicity, as Xen's has none.
 */
#ifndef SHIM_ASM_ATOMIC_H
#define SHIM_ASM_ATOMIC_H

#define read_atomic(p) __atomic_load_n(p, __ATOMIC_RELAXED)
#define write_atomic(p, x) __atomic_store_n(p, x, __ATOMIC_RELAXED)

#endif
