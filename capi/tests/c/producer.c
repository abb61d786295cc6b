/*
 * A C producer on the vstats C API (include/vstats.h, libvstats_capi.a).
 *
 *   producer PATH contig|pages
 *
 * Publishes a vCPU table of NR records into the file PATH (open, ftruncate,
 * mmap in C) and updates it with a known pattern; the Rust test then reads
 * the file with the Rust consumer. "contig" maps the file once and uses
 * vstats_table_init_contiguous(); "pages" maps each page of the file
 * separately, in reverse order with holes between them, and uses
 * vstats_table_init_pages(), so the frames are truly not virtually
 * contiguous. Every API error path it can reach is checked on the way.
 *
 * Final contents, for record i (K = ROUNDS, NR = 64, two frames):
 *   i < NR - 2: running = 1000 i + K, runnable = 1000 i + 2K,
 *          blocked = 1000 i + 3K, c_custom_events = i K, and
 *          offline = 1000 i + 4K, except for odd i != 3: inactive;
 *          runstate = i % 4, runstate_entry_time = K.
 *          Record 3 is written with vstats_writer_update(), the others
 *          with begin/set/end.
 *   i = NR - 2: updated, then hot-unplugged (set_unused): all inactive.
 *   i = NR - 1: never handed out: all inactive.
 *
 * Prints "ok" and exits 0, or names the failed check and exits 1.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vstats.h"

#define NR 64u
#define ROUNDS 100u
#define RECORD_SIZE (VSTATS_VCPU_STATS_SIZE + 8u) /* the standard record, then c_custom_events */
#define GENERATION 42u

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

static void die(const char *what)
{
    fprintf(stderr, "%s: %s\n", what, strerror(errno));
    exit(1);
}

static int all_zero(void *const *pages, size_t nr_pages, size_t page)
{
    for (size_t p = 0; p < nr_pages; p++) {
        const volatile unsigned char *b = pages[p];
        for (size_t i = 0; i < page; i++)
            if (b[i] != 0)
                return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[2], "contig") != 0 && strcmp(argv[2], "pages") != 0)) {
        fprintf(stderr, "usage: %s PATH contig|pages\n", argv[0]);
        return 1;
    }
    int scattered = strcmp(argv[2], "pages") == 0;

    /* One counter of this producer's own, in the producer-specific area
     * after the standard record (r3: standard fields are not described). */
    struct vstats_desc descs[1];
    struct vstats_desc custom = {
        .name = "c_custom_events",
        .offset = VSTATS_VCPU_STATS_SIZE,
        .count = 1,
        .kind = VSTATS_KIND_CUMULATIVE,
        .unit = VSTATS_UNIT_NONE,
        .base = VSTATS_BASE_POW10,
        .exponent = 0,
        .bucket_size = 0,
    };
    descs[0] = custom;

    struct vstats_layout l;
    where = "layout";
    CHECK(vstats_layout(NR, RECORD_SIZE, sizeof(struct vstats_vcpu_stats), 1, 3000, 64, &l),
          VSTATS_EINVAL);
    CHECK(vstats_layout(NR, RECORD_SIZE, sizeof(struct vstats_vcpu_stats), 1,
                        VSTATS_DEFAULT_PAGE_SIZE, VSTATS_DEFAULT_CACHELINE, NULL),
          VSTATS_EFAULT);
    CHECK(vstats_layout(NR, RECORD_SIZE, sizeof(struct vstats_vcpu_stats), 1,
                        VSTATS_DEFAULT_PAGE_SIZE, VSTATS_DEFAULT_CACHELINE, &l),
          VSTATS_OK);
    size_t page = l.page_size, nr_pages = (size_t)l.frames;

    /* The file. */
    int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die("open");
    if (ftruncate(fd, (off_t)l.mapping_len) != 0)
        die("ftruncate");
    void **pages = calloc(nr_pages, sizeof(void *));
    if (!pages)
        die("calloc");
    void *region = NULL;
    size_t region_len = 0;
    if (!scattered) {
        region_len = (size_t)l.mapping_len;
        region = mmap(NULL, region_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (region == MAP_FAILED)
            die("mmap");
        for (size_t p = 0; p < nr_pages; p++)
            pages[p] = (char *)region + p * page;
    } else {
        /* Reserve twice the room, then map file page p at slot
         * 2 * (nr_pages - 1 - p): reversed, with a hole after each. */
        region_len = 2 * nr_pages * page;
        region = mmap(NULL, region_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (region == MAP_FAILED)
            die("mmap reserve");
        for (size_t p = 0; p < nr_pages; p++) {
            void *at = (char *)region + 2 * (nr_pages - 1 - p) * page;
            pages[p] = mmap(at, page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd,
                            (off_t)(p * page));
            if (pages[p] == MAP_FAILED)
                die("mmap page");
        }
    }

#define INIT(t_, magic_, l_, descs_, ws_, n_)                                              \
    (scattered ? vstats_table_init_pages((t_), (void *const *)pages, nr_pages, (magic_), (l_), \
                                         (descs_), GENERATION, (ws_), (n_))                \
               : vstats_table_init_contiguous((t_), region, (size_t)l.mapping_len, (magic_), \
                                              (l_), (descs_), GENERATION, (ws_), (n_)))

    static struct vstats_table table;
    static struct vstats_writer writers[NR];

    /* Refused inits write nothing. */
    where = "init errors";
    struct vstats_layout tampered = l;
    tampered.stride = l.stride * 2;
    /* A producer counter named as a standard field (R20). */
    struct vstats_desc dup[1];
    memcpy(dup, descs, sizeof(descs));
    memcpy(dup[0].name, vstats_vcpu_std_descs[0].name, sizeof(dup[0].name));
    CHECK(INIT(&table, 0x12345678u, &l, descs, writers, NR), VSTATS_EINVAL);
    CHECK(INIT(&table, VSTATS_VCPU_STATS_MAGIC, &tampered, descs, writers, NR), VSTATS_EINVAL);
    CHECK(INIT(&table, VSTATS_VCPU_STATS_MAGIC, &l, dup, writers, NR), VSTATS_EBADMSG);
    CHECK(INIT(&table, VSTATS_VCPU_STATS_MAGIC, &l, NULL, writers, NR), VSTATS_EFAULT);
    CHECK(INIT(&table, VSTATS_VCPU_STATS_MAGIC, &l, descs, writers, NR - 1), VSTATS_ENOSPC);
    CHECK(INIT(NULL, VSTATS_VCPU_STATS_MAGIC, &l, descs, writers, NR), VSTATS_EFAULT);
    /* vstats_layout_r3() and vstats_layout() both lay out r3 tables (clock 1
     * from the latter); an r2 layout, which neither makes, is refused. */
    struct vstats_layout l3;
    CHECK(vstats_layout_r3(NR, sizeof(struct xen_vcpu_stats), 0, 0,
                           XEN_STATS_CLOCK_HOST_MONOTONIC, VSTATS_DEFAULT_PAGE_SIZE,
                           VSTATS_DEFAULT_CACHELINE, &l3),
          VSTATS_OK);
    if (l3.ext_size != XEN_STATS_EXT_SIZE_R3 || l3.size != 56 || l3.stride != 64 ||
        l3.offset != 128 || l3.clock != XEN_STATS_CLOCK_HOST_MONOTONIC ||
        l.ext_size != XEN_STATS_EXT_SIZE_R3 || l.clock != XEN_STATS_CLOCK_HOST_MONOTONIC ||
        l.xstats_size != 8 || l.xdesc_count != 1) {
        fprintf(stderr, "r3 layout not as designed\n");
        return 1;
    }
    struct vstats_layout r2 = l3;
    r2.ext_size = 40;
    r2.clock = XEN_STATS_CLOCK_NONE;
    CHECK(INIT(&table, VSTATS_VCPU_STATS_MAGIC, &r2, NULL, writers, NR), VSTATS_EINVAL);
    if (!scattered)
        CHECK(vstats_table_init_contiguous(&table, region, (size_t)l.mapping_len - 1,
                                           VSTATS_VCPU_STATS_MAGIC, &l, descs, GENERATION,
                                           writers, NR),
              VSTATS_ENOSPC);
    else
        CHECK(vstats_table_init_pages(&table, (void *const *)pages, nr_pages - 1,
                                      VSTATS_VCPU_STATS_MAGIC, &l, descs, GENERATION, writers,
                                      NR),
              VSTATS_ENOSPC);
    if (!all_zero(pages, nr_pages, page)) {
        fprintf(stderr, "a refused init wrote to the table\n");
        return 1;
    }
    struct vstats_writer *w;
    CHECK(vstats_writer_get(&table, 0, &w), VSTATS_EINVAL); /* not initialised */

    /* Publish. */
    where = "init";
    CHECK(INIT(&table, VSTATS_VCPU_STATS_MAGIC, &l, descs, writers, NR), VSTATS_OK);
    const struct vstats_header *h = pages[0];
    if (h->magic != VSTATS_VCPU_STATS_MAGIC || h->offset != l.offset || h->stride != l.stride) {
        fprintf(stderr, "header not as laid out\n");
        return 1;
    }

    /* Writers: each record's at most once; record NR - 1 never. */
    where = "get";
    struct vstats_writer *ws[NR - 1];
    for (uint32_t i = 0; i < NR - 1; i++)
        CHECK(vstats_writer_get(&table, i, &ws[i]), VSTATS_OK);
    CHECK(vstats_writer_get(&table, 0, &w), VSTATS_EBUSY);
    CHECK(vstats_writer_get(&table, NR, &w), VSTATS_ERANGE);
    CHECK(vstats_writer_get(&table, 0, NULL), VSTATS_EFAULT);
    CHECK(vstats_writer_begin(&writers[NR - 1]), VSTATS_EFAULT); /* not handed out */

    /* Protocol misuse. */
    where = "protocol";
    CHECK(vstats_writer_set(ws[0], 0, 1), VSTATS_EPROTO);
    CHECK(vstats_writer_end(ws[0]), VSTATS_EPROTO);
    CHECK(vstats_writer_begin(ws[0]), VSTATS_OK);
    CHECK(vstats_writer_begin(ws[0]), VSTATS_EPROTO);
    CHECK(vstats_writer_set(ws[0], 7, 1), VSTATS_ERANGE); /* 7 words: 0..6 */
    /* R25: a state beyond RUNSTATE_offline stores nothing. */
    CHECK(vstats_writer_set_runstate(ws[0], RUNSTATE_offline + 1, 1), VSTATS_EINVAL);
    CHECK(vstats_writer_end(ws[0]), VSTATS_OK);
    CHECK(vstats_writer_set_runstate(ws[0], RUNSTATE_running, 1), VSTATS_EPROTO);

    /* Disabled: nothing happens. */
    where = "disabled";
    CHECK(vstats_table_set_enabled(&table, false), VSTATS_OK);
    CHECK(vstats_writer_begin(ws[0]), VSTATS_EAGAIN);
    CHECK(vstats_table_set_enabled(&table, true), VSTATS_OK);

    /* The pattern. */
    where = "updates";
    for (uint64_t k = 1; k <= ROUNDS; k++) {
        for (uint32_t i = 0; i < NR - 1; i++) {
            uint64_t b = 1000u * (uint64_t)i;
            if (i == 3) {
                uint64_t v[7] = {b + k, b + 2 * k, b + 3 * k, b + 4 * k, i % 4u, k, i * k};
                CHECK(vstats_writer_update(ws[i], 0, v, 7), VSTATS_OK);
                continue;
            }
            CHECK(vstats_writer_begin(ws[i]), VSTATS_OK);
            CHECK(vstats_writer_set(ws[i], VSTATS_VCPU_W_RUNNING, b + k), VSTATS_OK);
            CHECK(vstats_writer_set(ws[i], VSTATS_VCPU_W_RUNNABLE, b + 2 * k), VSTATS_OK);
            CHECK(vstats_writer_set(ws[i], VSTATS_VCPU_W_BLOCKED, b + 3 * k), VSTATS_OK);
            if (i % 2 == 0)
                CHECK(vstats_writer_set(ws[i], VSTATS_VCPU_W_OFFLINE, b + 4 * k), VSTATS_OK);
            else
                CHECK(vstats_writer_set_inactive(ws[i], VSTATS_VCPU_W_OFFLINE), VSTATS_OK);
            CHECK(vstats_writer_set_runstate(ws[i], i % 4u, k), VSTATS_OK);
            CHECK(vstats_writer_set(ws[i], VSTATS_WORD(VSTATS_VCPU_STATS_SIZE), i * k), VSTATS_OK);
            CHECK(vstats_writer_end(ws[i]), VSTATS_OK);
        }
    }
    /* Hot-unplug of record NR - 2. */
    CHECK(vstats_writer_begin(ws[NR - 2]), VSTATS_OK);
    CHECK(vstats_writer_set_unused(ws[NR - 2]), VSTATS_OK);
    CHECK(vstats_writer_end(ws[NR - 2]), VSTATS_OK);

    printf("ok frames=%zu first_page=%p last_page=%p\n", nr_pages, pages[0],
           pages[nr_pages - 1]);
    munmap(region, region_len);
    close(fd);
    free(pages);
    return 0;
}
