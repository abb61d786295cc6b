/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Harness shim for Xen's <xen/lib.h>: the three macros the producer uses.
 *   ASSERT(p)        Xen: a hypervisor crash on a debug build. Here:
 *                    abort(), through the C library's assert (the harness
 *                    builds without NDEBUG, like a Xen debug build).
 *   BUILD_BUG_ON(c)  Xen: a compile error when the constant c is true.
 *                    Here: the same, with C11 _Static_assert.
 *   ARRAY_SIZE(a)    Xen: elements of an array. Here: the same.
 */
#ifndef SHIM_XEN_LIB_H
#define SHIM_XEN_LIB_H

#include <assert.h>

#define ASSERT(p) assert(p)
#define BUILD_BUG_ON(cond) _Static_assert(!(cond), "BUILD_BUG_ON(" #cond ")")
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
