/*
 * Prints every constant and layout fact of vstats.h as "NAME VALUE" lines;
 * the Rust test compares them with the vstats-abi and vstats-capi crates.
 * Also compiled as C++ (-fsyntax-only) to check the header there.
 */
#include <stdio.h>

#include "vstats.h"

#ifdef __cplusplus
#define ALIGNOF alignof
#else
#define ALIGNOF _Alignof
#endif

#define P(x) printf("%s %lld\n", #x, (long long)(x))

int main(void)
{
    P(VSTATS_XENMEM_RESOURCE_STATS_TABLE);
    P(VSTATS_XENMEM_RESOURCE_STATS_TABLE_ID_VCPUSTATS);
    P(VSTATS_XENMEM_RESOURCE_STATS_TABLE_ID_DOMSTATS);
    P(VSTATS_VCPU_STATS_MAGIC);
    P(VSTATS_DOMAIN_STATS_MAGIC);
    P(VSTATS_DOMAIN_STATS_MAGIC_R2);
    P(VSTATS_EXT_MAGIC);
    P(VSTATS_HEADER_SIZE);
    P(VSTATS_EXT_HEADER_OFFSET);
    P(VSTATS_EXT_HEADER_SIZE);
    P(VSTATS_DESC_SIZE);
    P(VSTATS_DESC_NAME_LEN);
    P(VSTATS_MAX_DESCRIPTORS);
    P(VSTATS_RECORD_PREFIX);
    P(VSTATS_DEFAULT_PAGE_SIZE);
    P(VSTATS_DEFAULT_CACHELINE);
    P(VSTATS_INACTIVE == UINT64_MAX);
    P(VSTATS_INACTIVE_BIT == (UINT64_C(1) << 63));
    P(VSTATS_PAD_INACTIVE);
    P(VSTATS_KIND_CUMULATIVE);
    P(VSTATS_KIND_INSTANT);
    P(VSTATS_KIND_PEAK);
    P(VSTATS_KIND_LINEAR_HIST);
    P(VSTATS_KIND_LOG2_HIST);
    P(VSTATS_UNIT_NONE);
    P(VSTATS_UNIT_BYTES);
    P(VSTATS_UNIT_SECONDS);
    P(VSTATS_UNIT_CYCLES);
    P(VSTATS_UNIT_BOOLEAN);
    P(VSTATS_BASE_POW10);
    P(VSTATS_BASE_POW2);
    P(sizeof(struct vstats_vcpu_stats));
    P(sizeof(struct vstats_domain_stats));
    P(VSTATS_VCPU_W_RUNNING);
    P(VSTATS_VCPU_W_RUNNABLE);
    P(VSTATS_VCPU_W_BLOCKED);
    P(VSTATS_VCPU_W_OFFLINE);
    P(VSTATS_VCPU_W_RUNSTATE);
    P(VSTATS_VCPU_W_ENTRY);
    P(VSTATS_VCPU_STATS_SIZE);
    P(VSTATS_RUNSTATE_RUNNING);
    P(VSTATS_RUNSTATE_RUNNABLE);
    P(VSTATS_RUNSTATE_BLOCKED);
    P(VSTATS_RUNSTATE_OFFLINE);
    P(VSTATS_VCPU_W_RUNSTATE_ENTRY);
    P(VSTATS_DOMAIN_W_VCPUS_ONLINE);
    P(VSTATS_DOMAIN_W_VCPUS_MAX);
    P(VSTATS_DOMAIN_W_UPTIME);
    P(VSTATS_VCPU_STD_DESC_COUNT);
    P(VSTATS_DOMAIN_STD_DESC_COUNT);
    P(VSTATS_OK);
    P(VSTATS_EAGAIN);
    P(VSTATS_EFAULT);
    P(VSTATS_EBUSY);
    P(VSTATS_EINVAL);
    P(VSTATS_ENOSPC);
    P(VSTATS_ERANGE);
    P(VSTATS_EPROTO);
    P(VSTATS_EBADMSG);
    P(VSTATS_EOVERFLOW);
    P(VSTATS_ENOENT);
    P(VSTATS_EIO);
    P(VSTATS_E2BIG);
    P(VSTATS_ENODATA);
    P(VSTATS_ESTALE);
    P(VSTATS_ENOTRECOVERABLE);
    P(sizeof(struct vstats_layout));
    P(sizeof(struct vstats_table));
    P(sizeof(struct vstats_writer));
    P(ALIGNOF(struct vstats_writer));
    return 0;
}
