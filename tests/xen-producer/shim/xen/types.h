/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Harness shim for Xen's <xen/types.h>: the fixed-width integer types and
 * size_t, which Xen defines with the same widths as the C library on
 * x86-64 (LP64).
 */
#ifndef SHIM_XEN_TYPES_H
#define SHIM_XEN_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#endif
