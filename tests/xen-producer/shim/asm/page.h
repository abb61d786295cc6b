/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Harness shim for Xen's <asm/page.h>: x86's 4 KiB page. The harness
 * allocates its frames itself, page-aligned, PAGE_SIZE each.
 */
#ifndef SHIM_ASM_PAGE_H
#define SHIM_ASM_PAGE_H

#define PAGE_SHIFT 12
#define PAGE_SIZE (1UL << PAGE_SHIFT)

#endif
