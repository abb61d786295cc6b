/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The one out-of-line part of the shim: smp_wmb() (asm/system.h) and the
 * per-thread hook it calls, which lets a test hold the producer at any of
 * its barriers. Unset (the default) the hook costs a load and a branch.
 */
#include <stddef.h>

#include <asm/system.h>

typedef void (*xen_shim_hook_t)(void *ctx);

static __thread xen_shim_hook_t hook;
static __thread void *hook_ctx;

void xen_shim_set_wmb_hook(xen_shim_hook_t fn, void *ctx);

void xen_shim_set_wmb_hook(xen_shim_hook_t fn, void *ctx)
{
    hook = fn;
    hook_ctx = ctx;
}

void xen_shim_wmb(void)
{
    __atomic_thread_fence(__ATOMIC_RELEASE);
    if ( hook )
        hook(hook_ctx);
}
