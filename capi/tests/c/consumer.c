/*
 * A vstats table consumer written only from docs/abi.md (no vstats header,
 * no Rust code consulted): the point is to show that the spec alone is
 * enough to read a table correctly.
 *
 *   consumer PATH [SNAPSHOTS]
 *
 * Maps PATH read-only, validates rules R1-R13 and R18 in rule-number order,
 * then takes SNAPSHOTS (default 1) snapshots of every record with the seq
 * protocol of section 5.3 and prints them:
 *
 *   table magic=0x... offset=N size=N stride=N records=N page=N abi_size=N ext=0|1 generation=N descs=N
 *   desc I NAME offset=N count=N kind=N unit=N base=N exp=N bucket=N
 *   snap K
 *   rec I ok seq=S W0 W1 ...       (an inactive word prints as '-')
 *   rec I unused seq=S             (every counter word inactive, R16)
 *   rec I busy seq=S               (no consistent copy within the retry bound, 5.5)
 *   vcpu I running=V runnable=V blocked=V offline=V   (last snapshot; V is a
 *                                  number, 'inactive', or 'absent' by R17)
 *   done snapshots=N ok=N unused=N busy=N retries=N
 *
 * A table that breaks a rule prints "invalid R<n>: <why>" and exits 2; a
 * usage or I/O error exits 1.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Section 1 and 2: constants. */
#define VCPU_MAGIC 0xaabbccddu
#define DOMAIN_MAGIC 0xaabbccdeu
#define EXT_MAGIC 0x31787376u /* "vsx1" */
#define HEADER_SIZE 16u
#define EXT_HEADER_SIZE 40u
#define EXT_END (HEADER_SIZE + EXT_HEADER_SIZE) /* 56 */
#define DESC_SIZE 64u
#define NAME_LEN 48u
#define MAX_DESCS 1024u
#define V3_PAGE 4096u
#define INACTIVE_BIT (UINT64_C(1) << 63)

/* Section 5.5: a bounded number of attempts per record. */
#define MAX_ATTEMPTS 1024

/* Section 2.3: kinds and units. */
enum { KIND_CUMULATIVE, KIND_INSTANT, KIND_PEAK, KIND_LINEAR_HIST, KIND_LOG2_HIST };
enum { UNIT_NONE, UNIT_BYTES, UNIT_SECONDS, UNIT_CYCLES, UNIT_BOOLEAN };

struct desc {
    char name[NAME_LEN];
    uint32_t offset;
    uint32_t count;
    uint8_t kind;
    uint8_t unit;
    uint8_t base;
    int8_t exponent;
    uint32_t bucket_size;
};

/* The private, validated copy of the head (section 3: copy, then check). */
struct table {
    const unsigned char *base;
    uint64_t len;
    uint32_t magic, offset, size, stride;
    int has_ext;
    uint32_t ext_magic, ext_size, nr_records, page_shift, abi_size;
    uint32_t desc_offset, desc_count, desc_stride;
    uint64_t generation;
    uint64_t page;
    struct desc *descs;
};

/*
 * Every access to the mapping is a relaxed atomic load (section 5.4): the
 * producer writes it concurrently, and a plain read racing a write is
 * undefined; ordering comes from fences. Callers only pass offsets that are
 * in bounds and aligned.
 */
static uint32_t ld32(const struct table *t, uint64_t off)
{
    const _Atomic uint32_t *p = (const _Atomic uint32_t *)(const void *)(t->base + off);
    return atomic_load_explicit(p, memory_order_relaxed);
}

static uint64_t ld64(const struct table *t, uint64_t off)
{
    const _Atomic uint64_t *p = (const _Atomic uint64_t *)(const void *)(t->base + off);
    return atomic_load_explicit(p, memory_order_relaxed);
}

/* Copies n bytes (n and off multiples of 4) with 32-bit relaxed loads. */
static void copy_bytes(const struct table *t, uint64_t off, void *dst, uint32_t n)
{
    unsigned char *d = dst;
    for (uint32_t i = 0; i < n; i += 4) {
        uint32_t w = ld32(t, off + i);
        memcpy(d + i, &w, 4);
    }
}

static int invalid(int rule, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int invalid(int rule, const char *fmt, ...)
{
    va_list ap;
    printf("invalid R%d: ", rule);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    return rule;
}

static uint64_t gcd64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t r = a % b;
        a = b;
        b = r;
    }
    return a;
}

/* Returns 0 when the table is valid, else the number of the rule broken. */
static int validate(struct table *t)
{
    /* R1: the header fits. */
    if (t->len < HEADER_SIZE)
        return invalid(1, "mapping of %" PRIu64 " bytes is shorter than the header", t->len);

    /* Copy the header. The magic is loaded, then an acquire fence: it pairs
     * with the producer's release store of the magic at publication (P7).
     * (Section 5.4: only relaxed loads; ordering comes from fences.) */
    t->magic = ld32(t, 0);
    atomic_thread_fence(memory_order_acquire);
    t->offset = ld32(t, 4);
    t->size = ld32(t, 8);
    t->stride = ld32(t, 12);

    /* R2 */
    if (t->magic != VCPU_MAGIC && t->magic != DOMAIN_MAGIC)
        return invalid(2, "magic 0x%08" PRIx32 " is not a table magic", t->magic);
    /* R3 */
    if (t->offset < HEADER_SIZE)
        return invalid(3, "offset %" PRIu32 " < %u", t->offset, HEADER_SIZE);
    /* R4 */
    if (t->size < 8 || t->size % 8 != 0)
        return invalid(4, "size %" PRIu32 " is not a multiple of 8 that is >= 8", t->size);
    /* R5 */
    if (t->stride < t->size)
        return invalid(5, "stride %" PRIu32 " < size %" PRIu32, t->stride, t->size);
    /* R6 */
    if (t->offset % 8 != 0 || t->stride % 8 != 0)
        return invalid(6, "offset %" PRIu32 " or stride %" PRIu32 " not a multiple of 8",
                       t->offset, t->stride);

    /* The extension header is present when offset >= 56 and ext_magic != 0
     * (R9). Its fields are copied now because R7 and R8 need nr_records and
     * page_shift. Bytes 16..56 exist only if the mapping holds them; when
     * it does not, offset > len and R7 fails below. */
    t->has_ext = 0;
    if (t->offset >= EXT_END && t->len >= EXT_END) {
        uint32_t e[8];
        copy_bytes(t, HEADER_SIZE, e, sizeof(e));
        t->ext_magic = e[0];
        if (t->ext_magic != 0) {
            t->has_ext = 1;
            t->ext_size = e[1];
            t->nr_records = e[2];
            t->page_shift = e[3];
            t->abi_size = e[4];
            t->desc_offset = e[5];
            t->desc_count = e[6];
            t->desc_stride = e[7];
            t->generation = ld64(t, 48);
        }
    }

    /* R7: offset <= len, then offset + nr * stride <= len in 64 bits. A
     * table without extension header has as many whole strides as fit. */
    if ((uint64_t)t->offset > t->len)
        return invalid(7, "offset %" PRIu32 " beyond the %" PRIu64 "-byte mapping", t->offset,
                       t->len);
    if (!t->has_ext) {
        uint64_t n = (t->len - t->offset) / t->stride;
        t->nr_records = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
        t->abi_size = t->size;
        t->page_shift = 12;
    }
    {
        uint64_t end = (uint64_t)t->offset + (uint64_t)t->nr_records * t->stride;
        if (end > t->len)
            return invalid(7, "records end at %" PRIu64 " beyond the %" PRIu64 "-byte mapping",
                           end, t->len);
    }

    /* R8 needs the page size; page_shift is range-checked by R9, but a
     * shift out of range cannot even be used to compute the page, so that
     * part of R9 is checked first. */
    if (t->has_ext && (t->page_shift < 12 || t->page_shift > 30))
        return invalid(9, "page_shift %" PRIu32 " outside [12, 30]", t->page_shift);
    t->page = UINT64_C(1) << t->page_shift;

    /* R8: no record crosses a page; start mod page repeats with period
     * page / gcd(stride, page). */
    {
        uint64_t period = t->page / gcd64(t->stride, t->page);
        uint64_t n = t->nr_records < period ? t->nr_records : period;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t start = (uint64_t)t->offset + i * t->stride;
            uint64_t last = start + t->size - 1;
            if (start / t->page != last / t->page)
                return invalid(8,
                               "record %" PRIu64 " at %" PRIu64 " (size %" PRIu32
                               ") crosses a %" PRIu64 "-byte page",
                               i, start, t->size, t->page);
        }
    }

    /* R18: a domain table has exactly one record. */
    if (t->magic == DOMAIN_MAGIC && t->nr_records != 1)
        return invalid(18, "domain table with %" PRIu32 " records", t->nr_records);

    if (!t->has_ext) {
        t->desc_count = 0;
        return 0;
    }

    /* R9 */
    if (t->ext_magic != EXT_MAGIC)
        return invalid(9, "ext_magic 0x%08" PRIx32, t->ext_magic);
    if (t->ext_size < EXT_HEADER_SIZE || t->ext_size % 8 != 0 ||
        (uint64_t)HEADER_SIZE + t->ext_size > t->offset)
        return invalid(9, "ext_size %" PRIu32 " (offset %" PRIu32 ")", t->ext_size, t->offset);
    if (t->abi_size < 8 || t->abi_size > t->size || t->abi_size % 8 != 0)
        return invalid(9, "abi_size %" PRIu32 " (size %" PRIu32 ")", t->abi_size, t->size);
    if (t->desc_count > MAX_DESCS)
        return invalid(9, "desc_count %" PRIu32 " > %u", t->desc_count, MAX_DESCS);

    if (t->desc_count == 0)
        return 0;

    /* R10 */
    if (t->desc_stride < DESC_SIZE || t->desc_stride % 8 != 0 ||
        (uint64_t)t->desc_offset < (uint64_t)HEADER_SIZE + t->ext_size ||
        t->desc_offset % 8 != 0 ||
        (uint64_t)t->desc_offset + (uint64_t)t->desc_count * t->desc_stride > t->offset)
        return invalid(10,
                       "descriptor array at %" PRIu32 ", %" PRIu32 " x %" PRIu32
                       " bytes, does not fit [%" PRIu32 ", %" PRIu32 ")",
                       t->desc_offset, t->desc_count, t->desc_stride, HEADER_SIZE + t->ext_size,
                       t->offset);

    /* Copy the descriptors (only the 64 bytes this revision knows). */
    t->descs = calloc(t->desc_count, sizeof(*t->descs));
    if (!t->descs) {
        perror("calloc");
        exit(1);
    }
    for (uint32_t i = 0; i < t->desc_count; i++) {
        unsigned char raw[DESC_SIZE];
        struct desc *d = &t->descs[i];
        copy_bytes(t, (uint64_t)t->desc_offset + (uint64_t)i * t->desc_stride, raw, DESC_SIZE);
        memcpy(d->name, raw, NAME_LEN);
        memcpy(&d->offset, raw + 48, 4);
        memcpy(&d->count, raw + 52, 4);
        d->kind = raw[56];
        d->unit = raw[57];
        d->base = raw[58];
        memcpy(&d->exponent, raw + 59, 1);
        memcpy(&d->bucket_size, raw + 60, 4);
    }

    /* R11: every name first, then uniqueness. */
    for (uint32_t i = 0; i < t->desc_count; i++) {
        const char *n = t->descs[i].name;
        uint32_t nul = NAME_LEN;
        for (uint32_t k = 0; k < NAME_LEN; k++) {
            if (n[k] == 0) {
                nul = k;
                break;
            }
        }
        if (nul == NAME_LEN)
            return invalid(11, "descriptor %" PRIu32 ": name not NUL-terminated", i);
        if (nul == 0)
            return invalid(11, "descriptor %" PRIu32 ": empty name", i);
        for (uint32_t k = 0; k < nul; k++) {
            unsigned char c = (unsigned char)n[k];
            if (c < 0x21 || c > 0x7e)
                return invalid(11, "descriptor %" PRIu32 ": byte %" PRIu32 " not printable", i,
                               k);
        }
        for (uint32_t k = nul; k < NAME_LEN; k++)
            if (n[k] != 0)
                return invalid(11, "descriptor %" PRIu32 ": not zero after the NUL", i);
    }
    for (uint32_t i = 0; i < t->desc_count; i++)
        for (uint32_t j = i + 1; j < t->desc_count; j++)
            if (strcmp(t->descs[i].name, t->descs[j].name) == 0)
                return invalid(11, "descriptors %" PRIu32 " and %" PRIu32 " share the name %s",
                               i, j, t->descs[i].name);

    /* R12 */
    for (uint32_t i = 0; i < t->desc_count; i++) {
        const struct desc *d = &t->descs[i];
        int hist = d->kind == KIND_LINEAR_HIST || d->kind == KIND_LOG2_HIST;
        if (d->kind > KIND_LOG2_HIST)
            return invalid(12, "descriptor %" PRIu32 ": unknown kind %u", i, d->kind);
        if (d->unit > UNIT_BOOLEAN)
            return invalid(12, "descriptor %" PRIu32 ": unknown unit %u", i, d->unit);
        if (d->base != 10 && d->base != 2)
            return invalid(12, "descriptor %" PRIu32 ": unknown base %u", i, d->base);
        if ((d->unit == UNIT_SECONDS && d->exponent > 0) ||
            (d->unit == UNIT_BOOLEAN && d->exponent != 0) ||
            ((d->unit == UNIT_NONE || d->unit == UNIT_BYTES || d->unit == UNIT_CYCLES) &&
             d->exponent < 0))
            return invalid(12, "descriptor %" PRIu32 ": exponent %d does not fit unit %u", i,
                           d->exponent, d->unit);
        if (d->count < 1 || (!hist && d->count != 1))
            return invalid(12, "descriptor %" PRIu32 ": count %" PRIu32, i, d->count);
        if ((d->kind == KIND_LINEAR_HIST) != (d->bucket_size > 0))
            return invalid(12, "descriptor %" PRIu32 ": bucket_size %" PRIu32, i,
                           d->bucket_size);
    }

    /* R13 */
    for (uint32_t i = 0; i < t->desc_count; i++) {
        const struct desc *d = &t->descs[i];
        if (d->offset < 8 || d->offset % 8 != 0 ||
            (uint64_t)d->offset + 8 * (uint64_t)d->count > t->size)
            return invalid(13,
                           "descriptor %" PRIu32 ": %" PRIu32 " words at %" PRIu32
                           " outside the %" PRIu32 "-byte record",
                           i, d->count, d->offset, t->size);
    }
    for (uint32_t i = 0; i < t->desc_count; i++)
        for (uint32_t j = i + 1; j < t->desc_count; j++) {
            const struct desc *a = &t->descs[i], *b = &t->descs[j];
            uint64_t a_end = (uint64_t)a->offset + 8 * (uint64_t)a->count;
            uint64_t b_end = (uint64_t)b->offset + 8 * (uint64_t)b->count;
            if (a->offset < b_end && b->offset < a_end)
                return invalid(13, "descriptors %" PRIu32 " and %" PRIu32 " overlap", i, j);
        }
    /* R13: a standard field's name keeps its standard offset (section 2.4). */
    {
        static const char *const vcpu_std[] = {"runstate_running_time", "runstate_runnable_time",
                                               "runstate_blocked_time", "runstate_offline_time"};
        static const char *const dom_std[] = {"vcpus_online", "vcpus_max", "uptime"};
        const char *const *std = t->magic == VCPU_MAGIC ? vcpu_std : dom_std;
        uint32_t nstd = t->magic == VCPU_MAGIC ? 4 : 3;
        for (uint32_t i = 0; i < t->desc_count; i++)
            for (uint32_t k = 0; k < nstd; k++)
                if (strcmp(t->descs[i].name, std[k]) == 0 &&
                    (t->descs[i].offset != 8 + 8 * k || t->descs[i].count != 1))
                    return invalid(13, "descriptor %" PRIu32 ": %s not at offset %" PRIu32, i,
                                   std[k], 8 + 8 * k);
    }
    return 0;
}

enum status { ST_OK, ST_UNUSED, ST_BUSY };

/* A spin-loop hint between attempts (section 5.5), so a bounded number of
 * attempts lasts long enough for a writer to finish an update. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#ifdef TEST_PAUSE_MID_COPY
/* The test's hook for a forced interleaving: the first time record 0 is
 * copied, stop halfway through the copy, say "paused" on stderr and wait
 * for a line on stdin, so that the test can update the record while this
 * reader holds half of an old copy. Only the test builds it. */
static void test_pause(uint32_t i)
{
    static int done;
    char line[16];
    if (i != 0 || done)
        return;
    done = 1;
    fputs("paused\n", stderr);
    fflush(stderr);
    if (!fgets(line, sizeof line, stdin))
        exit(1);
}
#endif

/* Section 5.3: S1..S4 with bounded retries. words[] gets (size - 8) / 8
 * counters. Returns the status; *seq_out the last seq seen. */
static enum status snapshot_record(const struct table *t, uint32_t i, uint64_t *words,
                                   uint32_t *seq_out, uint64_t *retries)
{
    uint64_t base = (uint64_t)t->offset + (uint64_t)i * t->stride;
    uint32_t n = (t->size - 8) / 8;
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        if (attempt > 0) {
            (*retries)++;
            cpu_relax();
        }
        uint32_t s1 = ld32(t, base); /* S1 */
        atomic_thread_fence(memory_order_acquire);
        *seq_out = s1;
        if (s1 & 1)
            continue;
        for (uint32_t k = 0; k < n; k++) { /* R2 */
#ifdef TEST_PAUSE_MID_COPY
            if (k == n / 2)
                test_pause(i);
#endif
            words[k] = ld64(t, base + 8 + 8 * (uint64_t)k);
        }
        atomic_thread_fence(memory_order_acquire); /* S3 */
        uint32_t s2 = ld32(t, base); /* S4 */
#ifdef TEST_SKIP_S4 /* the test's deliberately broken reader, which must be caught */
        s2 = s1;
#endif
        if (s2 != s1) {
            *seq_out = s2;
            continue;
        }
        for (uint32_t k = 0; k < n; k++) /* R16 */
            if (!(words[k] & INACTIVE_BIT))
                return ST_OK;
        return ST_UNUSED;
    }
    return ST_BUSY;
}

/* R14 and R17: a standard field known by position. */
static void print_std(const struct table *t, const uint64_t *words, uint32_t off,
                      const char *name)
{
    if ((uint64_t)off + 8 > t->abi_size) {
        printf(" %s=absent", name);
        return;
    }
    uint64_t v = words[(off - 8) / 8];
    if (v & INACTIVE_BIT)
        printf(" %s=inactive", name);
    else
        printf(" %s=%" PRIu64, name, v);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s PATH [SNAPSHOTS]\n", argv[0]);
        return 1;
    }
    long snaps = argc == 3 ? strtol(argv[2], NULL, 10) : 1;
    if (snaps < 1)
        snaps = 1;

    int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "open %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        fprintf(stderr, "fstat %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    struct table t;
    memset(&t, 0, sizeof(t));
    t.len = (uint64_t)st.st_size;
    if (t.len < HEADER_SIZE) {
        invalid(1, "mapping of %" PRIu64 " bytes is shorter than the header", t.len);
        return 2;
    }
    if (t.len > SIZE_MAX) {
        fprintf(stderr, "%s: too large to map\n", argv[1]);
        return 1;
    }
    void *m = mmap(NULL, (size_t)t.len, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        fprintf(stderr, "mmap %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    close(fd);
    t.base = m;

    if (validate(&t) != 0)
        return 2;

    printf("table magic=0x%08" PRIx32 " offset=%" PRIu32 " size=%" PRIu32 " stride=%" PRIu32
           " records=%" PRIu32 " page=%" PRIu64 " abi_size=%" PRIu32
           " ext=%d generation=%" PRIu64 " descs=%" PRIu32 "\n",
           t.magic, t.offset, t.size, t.stride, t.nr_records, t.page, t.abi_size, t.has_ext,
           t.generation, t.desc_count);
    for (uint32_t i = 0; i < t.desc_count; i++) {
        const struct desc *d = &t.descs[i];
        printf("desc %" PRIu32 " %s offset=%" PRIu32 " count=%" PRIu32
               " kind=%u unit=%u base=%u exp=%d bucket=%" PRIu32 "\n",
               i, d->name, d->offset, d->count, d->kind, d->unit, d->base, d->exponent,
               d->bucket_size);
    }

    uint32_t nwords = (t.size - 8) / 8;
    uint64_t *words = calloc(nwords ? nwords : 1, sizeof(uint64_t));
    if (!words) {
        perror("calloc");
        return 1;
    }
    uint64_t ok = 0, unused = 0, busy = 0, retries = 0;
    for (long s = 0; s < snaps; s++) {
        int last = s == snaps - 1;
        printf("snap %ld\n", s);
        for (uint32_t i = 0; i < t.nr_records; i++) {
            uint32_t seq = 0;
            enum status stt = snapshot_record(&t, i, words, &seq, &retries);
            if (stt == ST_BUSY) {
                busy++;
                printf("rec %" PRIu32 " busy seq=%" PRIu32 "\n", i, seq);
                continue;
            }
            if (stt == ST_UNUSED) {
                unused++;
                printf("rec %" PRIu32 " unused seq=%" PRIu32 "\n", i, seq);
                continue;
            }
            ok++;
            printf("rec %" PRIu32 " ok seq=%" PRIu32, i, seq);
            for (uint32_t k = 0; k < nwords; k++) {
                if (words[k] & INACTIVE_BIT)
                    printf(" -");
                else
                    printf(" %" PRIu64, words[k]);
            }
            printf("\n");
            if (last && t.magic == VCPU_MAGIC) {
                printf("vcpu %" PRIu32, i);
                print_std(&t, words, 8, "running");
                print_std(&t, words, 16, "runnable");
                print_std(&t, words, 24, "blocked");
                print_std(&t, words, 32, "offline");
                printf("\n");
            }
        }
    }
    printf("done snapshots=%ld ok=%" PRIu64 " unused=%" PRIu64 " busy=%" PRIu64
           " retries=%" PRIu64 "\n",
           snaps, ok, unused, busy, retries);
    free(words);
    free(t.descs);
    munmap(m, (size_t)t.len);
    return 0;
}
