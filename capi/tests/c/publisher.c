/*
 * A C producer that publishes its table as a file through the library:
 *
 *   publisher DIR
 *
 * Opens the publication DIR, checks the refusals it can reach (a second
 * producer on the same directory, a file name that is a path), publishes
 * a vCPU table "vcpu" of NR records (the standard fields and
 * c_custom_events), writes record i as running = 1000 i + 1, runnable =
 * 1000 i + 2, blocked = 1000 i + 3, offline = 1000 i + 4,
 * c_custom_events = i, then prints "ok generation=G" and waits for a line
 * on stdin before closing the publication and printing "closed".
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vstats.h"

#define NR 8u

static const char *where;

#define CHECK(expr, want)                                                                  \
    do {                                                                                   \
        int got_ = (expr);                                                                 \
        if (got_ != (want)) {                                                              \
            fprintf(stderr, "%s: %s returned %d (%s), expected %d (%s)\n", where, #expr,   \
                    got_, vstats_strerror(got_), (want), vstats_strerror(want));           \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 1;
    }
    /* One counter of this producer's own, after the standard record. */
    struct vstats_desc descs[1];
    struct vstats_desc custom = {
        .name = "c_custom_events",
        .offset = VSTATS_VCPU_STATS_SIZE,
        .count = 1,
        .kind = VSTATS_KIND_CUMULATIVE,
        .unit = VSTATS_UNIT_NONE,
        .base = VSTATS_BASE_POW10,
    };
    descs[0] = custom;
    struct vstats_layout l;
    where = "layout";
    CHECK(vstats_layout(NR, VSTATS_VCPU_STATS_SIZE + 8u, sizeof(struct vstats_vcpu_stats), 1,
                        VSTATS_DEFAULT_PAGE_SIZE,
                        VSTATS_DEFAULT_CACHELINE, &l),
          VSTATS_OK);

    where = "open";
    struct vstats_publication *p = NULL, *second = NULL;
    CHECK(vstats_publication_open(NULL, 0, 0, &p), VSTATS_EFAULT);
    CHECK(vstats_publication_open(argv[1], 010000, 0, &p), VSTATS_EINVAL);
    CHECK(vstats_publication_open(argv[1], 0750, 0640, &p), VSTATS_OK);
    CHECK(vstats_publication_open(argv[1], 0, 0, &second), VSTATS_EBUSY);

    static struct vstats_table table;
    static struct vstats_writer writers[NR];
    where = "table";
    CHECK(vstats_publication_table(p, "../escape", &table, VSTATS_VCPU_STATS_MAGIC, &l, descs,
                                   writers, NR),
          VSTATS_EINVAL);
    CHECK(vstats_publication_table(p, "vcpu", &table, 0x12345678u, &l, descs, writers, NR),
          VSTATS_EINVAL);
    CHECK(vstats_publication_table(p, "vcpu", &table, VSTATS_VCPU_STATS_MAGIC, &l, descs,
                                   writers, NR),
          VSTATS_OK);

    where = "updates";
    for (uint32_t i = 0; i < NR; i++) {
        struct vstats_writer *w;
        CHECK(vstats_writer_get(&table, i, &w), VSTATS_OK);
        uint64_t b = 1000u * (uint64_t)i;
        uint64_t v[7] = {b + 1, b + 2, b + 3, b + 4, VSTATS_RUNSTATE_OFFLINE, b + 5, i};
        CHECK(vstats_writer_update(w, 0, v, 7), VSTATS_OK);
    }
    printf("ok generation=%" PRIu64 "\n", vstats_publication_generation(p));
    fflush(stdout);

    char line[16];
    if (!fgets(line, sizeof(line), stdin))
        return 1;
    where = "close";
    CHECK(vstats_publication_close(p), VSTATS_OK);
    CHECK(vstats_publication_close(NULL), VSTATS_EFAULT);
    printf("closed\n");
    return 0;
}
