/*
 * A C sampler on the vstats reader API (vstats_reader.h), for the tests in
 * c_reader.rs and install.rs.
 *
 *   reader dump PATH NOW_NS     one snapshot of the table at PATH, printed
 *                               in full (the Rust test prints the same from
 *                               vstats-consumer and compares the texts);
 *                               NOW_NS is passed to vstats_snapshot_take
 *   reader live PATH N          N snapshots of a vCPU table of the synthetic
 *                               producer while it writes: checks in each
 *                               consistent record the model's relations
 *                               (io_exits = exits / 2, halt_exits = exits / 4)
 *                               and prints "live snapshots=N torn=T busy=B"
 *   reader hostile PATH         hostile inputs around the valid table at
 *                               PATH: each must give its documented error;
 *                               prints "hostile checks=N" when all do
 *
 * Exit status 0 on success, 1 on a usage or check failure.
 */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vstats_reader.h"

static int failures;
static int checks;

#define CHECK_EQ(what, got, want)                                                        \
    do {                                                                                 \
        long long g_ = (long long)(got), w_ = (long long)(want);                         \
        checks++;                                                                        \
        if (g_ != w_) {                                                                  \
            fprintf(stderr, "FAIL %s: got %lld, want %lld\n", (what), g_, w_);            \
            failures++;                                                                  \
        }                                                                                \
    } while (0)

static const char *status_name(int st)
{
    switch (st) {
    case VSTATS_RECORD_OK:
        return "ok";
    case VSTATS_RECORD_UNUSED:
        return "unused";
    case VSTATS_RECORD_BUSY:
        return "busy";
    case VSTATS_RECORD_NOT_READ:
        return "notread";
    default:
        return "?";
    }
}

static struct vstats_snapshot *new_snapshot(const struct vstats_reader *r)
{
    size_t n = vstats_snapshot_size(r);
    struct vstats_snapshot *s = malloc(n);
    if (!s || vstats_snapshot_init(s, n, r) != 0) {
        fprintf(stderr, "cannot prepare a snapshot of %zu bytes\n", n);
        exit(1);
    }
    return s;
}

static int dump(const char *path, uint64_t now_ns)
{
    struct vstats_reader *r;
    int rc = vstats_reader_open(path, &r);
    if (rc != 0) {
        fprintf(stderr, "%s: %s (%d)\n", path, vstats_strerror(rc), rc);
        return 1;
    }
    uint32_t nr = vstats_reader_nr_records(r);
    uint32_t nc = vstats_reader_counter_count(r);
    printf("table kind=%" PRIu32 " records=%" PRIu32 " generation=%" PRIu64
           " clock=%" PRIu32 " counters=%" PRIu32 "\n",
           vstats_reader_kind(r), nr, vstats_reader_generation(r), vstats_reader_clock(r), nc);
    for (uint32_t c = 0; c < nc; c++) {
        struct xen_stats_desc d;
        if (vstats_reader_counter_info(r, c, &d) != 0)
            return 1;
        uint32_t back;
        if (vstats_reader_counter_index(r, d.name, &back) != 0 || back != c)
            return 1;
        printf("counter %" PRIu32 " %s offset=%" PRIu32 " count=%" PRIu32
               " kind=%u unit=%u base=%u exp=%d bucket=%" PRIu32 "\n",
               c, d.name, d.offset, d.count, d.kind, d.unit, d.base, d.exponent,
               d.bucket_size);
    }
    struct vstats_snapshot *s = new_snapshot(r);
    rc = vstats_snapshot_take(r, s, now_ns);
    printf("take %d\n", rc);
    for (uint32_t i = 0; i < nr; i++) {
        int st = vstats_snapshot_record_status(s, i);
        printf("rec %" PRIu32 " %s\n", i, status_name(st));
        if (st != VSTATS_RECORD_OK && st != VSTATS_RECORD_UNUSED)
            continue;
        for (uint32_t c = 0; c < nc; c++) {
            struct xen_stats_desc d;
            vstats_reader_counter_info(r, c, &d);
            printf("val %" PRIu32 " %s", i, d.name);
            for (uint32_t b = 0; b < d.count; b++) {
                uint64_t v;
                int vr = vstats_snapshot_value(s, i, c, b, &v);
                if (vr == 0)
                    printf(" %" PRIu64, v);
                else if (vr == VSTATS_ENODATA)
                    printf(" -");
                else
                    printf(" error%d", vr);
            }
            printf("\n");
        }
        uint64_t t[4];
        uint32_t state;
        int ext;
        rc = vstats_snapshot_runstate(s, i, t, &state, &ext);
        if (rc == 0)
            printf("runstate %" PRIu32 " state=%" PRIu32 " extrapolated=%d %" PRIu64 " %" PRIu64
                   " %" PRIu64 " %" PRIu64 "\n",
                   i, state, ext, t[0], t[1], t[2], t[3]);
        else if (rc != VSTATS_EINVAL)
            printf("runstate %" PRIu32 " error%d\n", i, rc);
    }
    free(s);
    vstats_reader_close(r);
    return 0;
}

static int live(const char *path, unsigned n)
{
    struct vstats_reader *r;
    int rc = vstats_reader_open(path, &r);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", path, vstats_strerror(rc));
        return 1;
    }
    uint32_t exits, io, halts;
    if (vstats_reader_counter_index(r, "exits", &exits) != 0 ||
        vstats_reader_counter_index(r, "io_exits", &io) != 0 ||
        vstats_reader_counter_index(r, "halt_exits", &halts) != 0) {
        fprintf(stderr, "not the synthetic producer's vCPU table\n");
        return 1;
    }
    struct vstats_snapshot *s = new_snapshot(r);
    unsigned long torn = 0, busy = 0;
    for (unsigned k = 0; k < n; k++) {
        int b = vstats_snapshot_take(r, s, 0);
        if (b < 0) {
            fprintf(stderr, "take: %s\n", vstats_strerror(b));
            return 1;
        }
        busy += (unsigned)b;
        for (uint32_t i = 0; i < vstats_reader_nr_records(r); i++) {
            if (vstats_snapshot_record_status(s, i) != VSTATS_RECORD_OK)
                continue;
            uint64_t e, o, h;
            if (vstats_snapshot_value(s, i, exits, 0, &e) != 0 ||
                vstats_snapshot_value(s, i, io, 0, &o) != 0 ||
                vstats_snapshot_value(s, i, halts, 0, &h) != 0 || o != e / 2 || h != e / 4)
                torn++;
        }
    }
    printf("live snapshots=%u torn=%lu busy=%lu\n", n, torn, busy);
    free(s);
    vstats_reader_close(r);
    return 0;
}

/* The whole file at path in 8-aligned memory; its length in *len. */
static void *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        exit(1);
    size_t n = (size_t)st.st_size;
    void *buf = NULL;
    if (posix_memalign(&buf, 4096, n + 8) != 0)
        exit(1);
    if (read(fd, buf, n) != (ssize_t)n)
        exit(1);
    close(fd);
    *len = n;
    return buf;
}

/* Writes len bytes of buf to path. */
static void spill(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0)
        exit(1);
}

static int hostile(const char *path, const char *scratch)
{
    struct vstats_reader *r = NULL, *r2 = NULL;
    char rule[8];

    /* NULL pointers. */
    CHECK_EQ("open NULL path", vstats_reader_open(NULL, &r), VSTATS_EFAULT);
    CHECK_EQ("open NULL out", vstats_reader_open(path, NULL), VSTATS_EFAULT);
    CHECK_EQ("open_memory NULL", vstats_reader_open_memory(NULL, 4096, &r), VSTATS_EFAULT);
    CHECK_EQ("validate NULL", vstats_reader_validate(NULL, rule, sizeof rule), VSTATS_EFAULT);
    CHECK_EQ("kind NULL", vstats_reader_kind(NULL), 0);
    CHECK_EQ("records NULL", vstats_reader_nr_records(NULL), 0);
    CHECK_EQ("generation NULL", vstats_reader_generation(NULL), 0);
    CHECK_EQ("clock NULL", vstats_reader_clock(NULL), 0);
    CHECK_EQ("counters NULL", vstats_reader_counter_count(NULL), 0);
    CHECK_EQ("snapshot size NULL", vstats_snapshot_size(NULL), 0);
    vstats_reader_close(NULL);

    /* Files that are not tables. */
    CHECK_EQ("missing file", vstats_reader_open("/nonexistent/vstats/vcpu", &r),
             VSTATS_ENOENT);
    CHECK_EQ("a directory", vstats_reader_open("/", &r), VSTATS_EINVAL);
    size_t len;
    unsigned char *good = slurp(path, &len);
    spill(scratch, good, 10);
    CHECK_EQ("truncated file", vstats_reader_open(scratch, &r), VSTATS_EBADMSG);
    spill(scratch, good, 0);
    CHECK_EQ("empty file", vstats_reader_open(scratch, &r), VSTATS_EBADMSG);
    unsigned char *bad = malloc(len);
    memcpy(bad, good, len);
    bad[0] ^= 0x5a;
    spill(scratch, bad, len);
    CHECK_EQ("bad magic", vstats_reader_open(scratch, &r), VSTATS_EBADMSG);
    uint32_t offset;
    memcpy(&offset, good + 4, 4);
    spill(scratch, good, offset + 8); /* the head and a piece of record 0 */
    CHECK_EQ("records cut off", vstats_reader_open(scratch, &r), VSTATS_EBADMSG);

    /* Memory the caller mapped. */
    CHECK_EQ("open_memory misaligned", vstats_reader_open_memory(good + 4, len - 4, &r),
             VSTATS_EFAULT);
    CHECK_EQ("open_memory short", vstats_reader_open_memory(good, 12, &r), VSTATS_EBADMSG);
    CHECK_EQ("open_memory", vstats_reader_open_memory(good, len, &r), 0);
    CHECK_EQ("validate fresh", vstats_reader_validate(r, rule, sizeof rule), 0);
    CHECK_EQ("validate fresh rule", rule[0], 0);
    CHECK_EQ("validate NULL rule", vstats_reader_validate(r, NULL, 0), 0);

    /* Counters. */
    uint32_t idx = 7;
    struct xen_stats_desc d;
    uint32_t nc = vstats_reader_counter_count(r);
    CHECK_EQ("counter_info past the end", vstats_reader_counter_info(r, nc, &d), VSTATS_ERANGE);
    CHECK_EQ("counter_info NULL out", vstats_reader_counter_info(r, 0, NULL), VSTATS_EFAULT);
    CHECK_EQ("counter_index unknown", vstats_reader_counter_index(r, "no_such", &idx),
             VSTATS_ENOENT);
    CHECK_EQ("counter_index left idx", idx, 7);
    CHECK_EQ("counter_index NULL name", vstats_reader_counter_index(r, NULL, &idx),
             VSTATS_EFAULT);
    CHECK_EQ("counter_index NULL idx",
             vstats_reader_counter_index(r, "runstate_running_time", NULL), VSTATS_EFAULT);

    /* Snapshot buffers. */
    size_t n = vstats_snapshot_size(r);
    uint64_t *buf = calloc(n / 8 + 2, 8);
    struct vstats_snapshot *s = (struct vstats_snapshot *)buf;
    uint64_t v = 0;
    CHECK_EQ("take before init", vstats_snapshot_take(r, s, 0), VSTATS_EFAULT);
    CHECK_EQ("status before init", vstats_snapshot_record_status(s, 0), VSTATS_EFAULT);
    CHECK_EQ("value before init", vstats_snapshot_value(s, 0, 0, 0, &v), VSTATS_EFAULT);
    CHECK_EQ("init too small", vstats_snapshot_init(s, n - 8, r), VSTATS_ENOSPC);
    CHECK_EQ("still not init", vstats_snapshot_take(r, s, 0), VSTATS_EFAULT);
    CHECK_EQ("init NULL", vstats_snapshot_init(NULL, n, r), VSTATS_EFAULT);
    CHECK_EQ("init misaligned",
             vstats_snapshot_init((struct vstats_snapshot *)((char *)buf + 4), n, r),
             VSTATS_EFAULT);
    CHECK_EQ("init NULL reader", vstats_snapshot_init(s, n, NULL), VSTATS_EFAULT);
    CHECK_EQ("init", vstats_snapshot_init(s, n, r), 0);
    CHECK_EQ("not read yet", vstats_snapshot_record_status(s, 0), VSTATS_RECORD_NOT_READ);
    CHECK_EQ("value not read yet", vstats_snapshot_value(s, 0, 0, 0, &v), VSTATS_ENODATA);
    CHECK_EQ("take NULL reader", vstats_snapshot_take(NULL, s, 0), VSTATS_EFAULT);
    CHECK_EQ("take NULL snapshot", vstats_snapshot_take(r, NULL, 0), VSTATS_EFAULT);
    CHECK_EQ("take", vstats_snapshot_take(r, s, 0), 0);
    uint32_t nr = vstats_reader_nr_records(r);
    CHECK_EQ("status", vstats_snapshot_record_status(s, 0), VSTATS_RECORD_OK);
    CHECK_EQ("status past the end", vstats_snapshot_record_status(s, nr), VSTATS_ERANGE);
    CHECK_EQ("status NULL", vstats_snapshot_record_status(NULL, 0), VSTATS_EFAULT);
    CHECK_EQ("value", vstats_snapshot_value(s, 0, 0, 0, &v), 0);
    CHECK_EQ("value NULL out", vstats_snapshot_value(s, 0, 0, 0, NULL), VSTATS_EFAULT);
    CHECK_EQ("value record past the end", vstats_snapshot_value(s, nr, 0, 0, &v),
             VSTATS_ERANGE);
    CHECK_EQ("value counter past the end", vstats_snapshot_value(s, 0, nc, 0, &v),
             VSTATS_ERANGE);
    CHECK_EQ("value bucket past the end", vstats_snapshot_value(s, 0, 0, 1, &v), VSTATS_ERANGE);

    uint64_t t[4];
    uint32_t state;
    int ext;
    CHECK_EQ("runstate", vstats_snapshot_runstate(s, 0, t, &state, &ext), 0);
    CHECK_EQ("runstate NULL times", vstats_snapshot_runstate(s, 0, NULL, &state, &ext),
             VSTATS_EFAULT);
    CHECK_EQ("runstate NULL state", vstats_snapshot_runstate(s, 0, t, NULL, &ext),
             VSTATS_EFAULT);
    CHECK_EQ("runstate NULL extrapolated", vstats_snapshot_runstate(s, 0, t, &state, NULL),
             VSTATS_EFAULT);
    CHECK_EQ("runstate past the end", vstats_snapshot_runstate(s, nr, t, &state, &ext),
             VSTATS_ERANGE);

    /* A snapshot of one reader given to another. */
    CHECK_EQ("second reader", vstats_reader_open(path, &r2), 0);
    CHECK_EQ("take with another reader", vstats_snapshot_take(r2, s, 0), VSTATS_EINVAL);

    /* The producer's memory changes under the reader: a broken header is
     * named by its rule, a retired table (magic 0) is stale. */
    uint32_t stride;
    memcpy(&stride, good + 12, 4);
    uint32_t odd = stride + 4;
    memcpy(good + 12, &odd, 4);
    CHECK_EQ("validate broken stride", vstats_reader_validate(r, rule, sizeof rule),
             VSTATS_EBADMSG);
    checks++;
    if (rule[0] != 'R') {
        fprintf(stderr, "FAIL broken stride names no rule: '%s'\n", rule);
        failures++;
    }
    char tiny[2];
    CHECK_EQ("validate tiny rule buffer", vstats_reader_validate(r, tiny, sizeof tiny),
             VSTATS_EBADMSG);
    CHECK_EQ("tiny rule truncated", tiny[1], 0);
    memcpy(good + 12, &stride, 4);
    CHECK_EQ("validate restored", vstats_reader_validate(r, rule, sizeof rule), 0);
    memset(good, 0, 4);
    CHECK_EQ("validate retired", vstats_reader_validate(r, rule, sizeof rule), VSTATS_ESTALE);

    free(buf);
    vstats_reader_close(r2);
    vstats_reader_close(r);
    free(bad);
    free(good);
    if (failures) {
        fprintf(stderr, "%d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("hostile checks=%d\n", checks);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "dump") == 0)
        return dump(argv[2], strtoull(argv[3], NULL, 10));
    if (argc == 4 && strcmp(argv[1], "live") == 0)
        return live(argv[2], (unsigned)strtoul(argv[3], NULL, 10));
    if (argc == 4 && strcmp(argv[1], "hostile") == 0)
        return hostile(argv[2], argv[3]);
    fprintf(stderr, "usage: reader dump PATH NOW_NS | live PATH N | hostile PATH SCRATCH\n");
    return 1;
}
