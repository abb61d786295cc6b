/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Harness shim for Xen's <xen/string.h>: memset and memcpy, which Xen
 * implements with the C library's semantics.
 */
#ifndef SHIM_XEN_STRING_H
#define SHIM_XEN_STRING_H

#include <string.h>

#endif
