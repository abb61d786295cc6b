/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * vstats.h: the vstats shared-memory statistics table, for C.
 *
 * Two halves:
 *
 *  1. The ABI: the structures, constants and rules of docs/abi.md (the
 *     normative spec; rule numbers R1... and P1... refer to it). Consumers
 *     may use this half alone, without linking anything.
 *
 *  2. The producer API, implemented by the Rust static library
 *     libvstats_capi.a (`cargo build -p vstats-capi --release`; the crate
 *     docs of vstats-capi say how to link it). A hypervisor gives it the
 *     memory of a table; the library lays the table out, publishes it and
 *     hands out one writer per record. The library allocates nothing:
 *     every object lives in storage the caller provides. It never blocks,
 *     never takes a lock and never panics.
 *
 * Writing a record (the seq protocol, docs/abi.md section 5, is done by the
 * library):
 *
 *     struct vstats_writer *w;
 *     if (vstats_writer_get(&table, vcpu_id, &w) == 0) {   // once per record
 *         ...
 *         if (vstats_writer_begin(w) == 0) {               // seq goes odd
 *             vstats_writer_set(w, VSTATS_VCPU_W_RUNNING, running_ns);
 *             vstats_writer_set(w, VSTATS_VCPU_W_RUNNABLE, runnable_ns);
 *             vstats_writer_end(w);                        // seq goes even
 *         }
 *     }
 *
 * Functions return 0 or a negative VSTATS_E* code; vstats_strerror() names
 * it. All integers in the table are in the host's byte order.
 */
#ifndef VSTATS_H
#define VSTATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define VSTATS_ALIGNAS(n) alignas(n)
#define VSTATS_STATIC_ASSERT(e, m) static_assert(e, m)
extern "C" {
#else
#define VSTATS_ALIGNAS(n) _Alignas(n)
#define VSTATS_STATIC_ASSERT(e, m) _Static_assert(e, m)
#endif

/* ------------------------------------------------------------------------
 * Part 1: the ABI (docs/abi.md sections 1, 2 and 6)
 * ------------------------------------------------------------------------ */

/* Xen acquire-resource type and ids (RFC v3 for the type and the vCPU id). */
#define VSTATS_XENMEM_RESOURCE_STATS_TABLE 3u
#define VSTATS_XENMEM_RESOURCE_STATS_TABLE_ID_VCPUSTATS 0u
#define VSTATS_XENMEM_RESOURCE_STATS_TABLE_ID_DOMSTATS 1u

/* Table magics; each doubles as the ABI version (R2). */
#define VSTATS_VCPU_STATS_MAGIC 0xaabbccddu /* RFC v3's VCPU_STATS_MAGIC */
#define VSTATS_DOMAIN_STATS_MAGIC 0xd057a75eu /* r3; readers also accept the r2 one */
#define VSTATS_DOMAIN_STATS_MAGIC_R2 0xaabbccdeu
/* Magic of the extension header: the bytes "vsx1". */
#define VSTATS_EXT_MAGIC 0x31787376u

#define VSTATS_HEADER_SIZE 16u
#define VSTATS_EXT_HEADER_OFFSET 16u
#define VSTATS_EXT_HEADER_SIZE 40u
#define VSTATS_DESC_SIZE 64u
#define VSTATS_DESC_NAME_LEN 48u
#define VSTATS_MAX_DESCRIPTORS 1024u
/* Bytes of seq and _pad before a record's first counter. */
#define VSTATS_RECORD_PREFIX 8u

#define VSTATS_DEFAULT_PAGE_SIZE 4096u
#define VSTATS_DEFAULT_CACHELINE 64u

/* A counter with its top bit set is inactive (absent or overflowed, R14,
 * R15); all ones is the canonical marker. */
#define VSTATS_INACTIVE UINT64_C(0xffffffffffffffff)
#define VSTATS_INACTIVE_BIT (UINT64_C(1) << 63)
/* What _pad holds. */
#define VSTATS_PAD_INACTIVE 0xffffffffu

/* The table header at byte 0, identical to RFC v3's vcpu_shmem_stats. */
struct vstats_header {
    uint32_t magic;  /* VSTATS_VCPU_STATS_MAGIC or VSTATS_DOMAIN_STATS_MAGIC */
    uint32_t offset; /* where record 0 starts */
    uint32_t size;   /* the producer's sizeof(record) */
    uint32_t stride; /* distance between records */
};
/* size: 16 bytes */

/* The extension header at byte 16 (in v3's reserved area); all zero means
 * absent (a v3 producer). */
struct vstats_ext_header {
    uint32_t ext_magic;   /* VSTATS_EXT_MAGIC, or 0 when absent */
    uint32_t ext_size;    /* sizeof(struct vstats_ext_header) as the producer knew it */
    uint32_t nr_records;  /* number of record slots */
    uint32_t page_shift;  /* log2 of the producer's page size */
    uint32_t abi_size;    /* bytes of a record defined by the producer's ABI revision */
    uint32_t desc_offset; /* where the descriptors start, 0 when none */
    uint32_t desc_count;  /* number of descriptors, <= VSTATS_MAX_DESCRIPTORS */
    uint32_t desc_stride; /* distance between descriptors, >= 64 */
    uint64_t generation;  /* differs between two tables published under one name */
};
/* size: 40 bytes */

/* Descriptor kinds (KVM_STATS_TYPE_*). */
#define VSTATS_KIND_CUMULATIVE 0u
#define VSTATS_KIND_INSTANT 1u
#define VSTATS_KIND_PEAK 2u
#define VSTATS_KIND_LINEAR_HIST 3u
#define VSTATS_KIND_LOG2_HIST 4u
/* Descriptor units (KVM_STATS_UNIT_*). */
#define VSTATS_UNIT_NONE 0u
#define VSTATS_UNIT_BYTES 1u
#define VSTATS_UNIT_SECONDS 2u
#define VSTATS_UNIT_CYCLES 3u
#define VSTATS_UNIT_BOOLEAN 4u
/* Descriptor bases. */
#define VSTATS_BASE_POW10 10u
#define VSTATS_BASE_POW2 2u

/* One counter's description (R11-R13 say what makes one valid). */
struct vstats_desc {
    char name[VSTATS_DESC_NAME_LEN]; /* printable ASCII, NUL-terminated, NUL-padded */
    uint32_t offset;      /* byte offset in the record: >= 8, multiple of 8 */
    uint32_t count;       /* u64 words: 1, or the bucket count of a histogram */
    uint8_t kind;         /* VSTATS_KIND_* */
    uint8_t unit;         /* VSTATS_UNIT_* */
    uint8_t base;         /* VSTATS_BASE_* */
    int8_t exponent;      /* the value means raw * base^exponent */
    uint32_t bucket_size; /* linear histogram bucket width, else 0 */
};
/* size: 64 bytes */

/* A record: u32 seq; u32 _pad; u64 counters[]. The vCPU record of this
 * revision (r3); r2 stops after runstate_offline_time (40 bytes), r1 (RFC
 * v3) after runstate_running_time. The four times are accrued up to
 * runstate_entry_time; the time since then belongs to runstate. */
struct vstats_vcpu_stats {
    uint32_t seq;  /* even at rest, odd during an update */
    uint32_t _pad; /* VSTATS_PAD_INACTIVE */
    uint64_t runstate_running_time;  /* cumulative, ns */
    uint64_t runstate_runnable_time; /* cumulative, ns */
    uint64_t runstate_blocked_time;  /* cumulative, ns */
    uint64_t runstate_offline_time;  /* cumulative, ns */
    uint64_t runstate;               /* instant: VSTATS_RUNSTATE_* */
    uint64_t runstate_entry_time;    /* instant, ns in the table's clock */
};
/* size: 56 bytes */
#define VSTATS_VCPU_STATS_SIZE 56u

/* The states of runstate (Xen's RUNSTATE_* numbering). */
#define VSTATS_RUNSTATE_RUNNING 0u
#define VSTATS_RUNSTATE_RUNNABLE 1u
#define VSTATS_RUNSTATE_BLOCKED 2u
#define VSTATS_RUNSTATE_OFFLINE 3u

/* The domain record of this revision (r1), one per domain table. */
struct vstats_domain_stats {
    uint32_t seq;
    uint32_t _pad;
    uint64_t vcpus_online; /* instant */
    uint64_t vcpus_max;    /* instant */
    uint64_t uptime;       /* cumulative, ns */
};
/* size: 32 bytes */

VSTATS_STATIC_ASSERT(sizeof(struct vstats_header) == 16, "vstats_header size");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_header, magic) == 0, "magic");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_header, offset) == 4, "offset");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_header, size) == 8, "size");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_header, stride) == 12, "stride");

VSTATS_STATIC_ASSERT(sizeof(struct vstats_ext_header) == 40, "vstats_ext_header size");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_ext_header, ext_magic) == 0, "ext_magic");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_ext_header, ext_size) == 4, "ext_size");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_ext_header, nr_records) == 8, "nr_records");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_ext_header, page_shift) == 12, "page_shift");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_ext_header, abi_size) == 16, "abi_size");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_ext_header, desc_offset) == 20, "desc_offset");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_ext_header, desc_count) == 24, "desc_count");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_ext_header, desc_stride) == 28, "desc_stride");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_ext_header, generation) == 32, "generation");

VSTATS_STATIC_ASSERT(sizeof(struct vstats_desc) == 64, "vstats_desc size");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_desc, name) == 0, "name");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_desc, offset) == 48, "offset");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_desc, count) == 52, "count");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_desc, kind) == 56, "kind");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_desc, unit) == 57, "unit");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_desc, base) == 58, "base");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_desc, exponent) == 59, "exponent");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_desc, bucket_size) == 60, "bucket_size");

VSTATS_STATIC_ASSERT(sizeof(struct vstats_vcpu_stats) == VSTATS_VCPU_STATS_SIZE,
                     "vstats_vcpu_stats size");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_vcpu_stats, seq) == 0, "seq");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_vcpu_stats, _pad) == 4, "_pad");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_vcpu_stats, runstate_running_time) == 8, "running");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_vcpu_stats, runstate_runnable_time) == 16, "runnable");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_vcpu_stats, runstate_blocked_time) == 24, "blocked");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_vcpu_stats, runstate_offline_time) == 32, "offline");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_vcpu_stats, runstate) == 40, "runstate");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_vcpu_stats, runstate_entry_time) == 48, "entry");

VSTATS_STATIC_ASSERT(sizeof(struct vstats_domain_stats) == 32, "vstats_domain_stats size");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_domain_stats, vcpus_online) == 8, "vcpus_online");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_domain_stats, vcpus_max) == 16, "vcpus_max");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_domain_stats, uptime) == 24, "uptime");

/* Counter word index of the field at byte `off` of a record: word 0 is at
 * byte 8, right after seq and _pad. */
#define VSTATS_WORD(off) (((off) - VSTATS_RECORD_PREFIX) / 8u)

#define VSTATS_VCPU_W_RUNNING VSTATS_WORD(offsetof(struct vstats_vcpu_stats, runstate_running_time))
#define VSTATS_VCPU_W_RUNNABLE VSTATS_WORD(offsetof(struct vstats_vcpu_stats, runstate_runnable_time))
#define VSTATS_VCPU_W_BLOCKED VSTATS_WORD(offsetof(struct vstats_vcpu_stats, runstate_blocked_time))
#define VSTATS_VCPU_W_OFFLINE VSTATS_WORD(offsetof(struct vstats_vcpu_stats, runstate_offline_time))
#define VSTATS_VCPU_W_RUNSTATE VSTATS_WORD(offsetof(struct vstats_vcpu_stats, runstate))
#define VSTATS_VCPU_W_ENTRY VSTATS_WORD(offsetof(struct vstats_vcpu_stats, runstate_entry_time))
#define VSTATS_DOMAIN_W_VCPUS_ONLINE VSTATS_WORD(offsetof(struct vstats_domain_stats, vcpus_online))
#define VSTATS_DOMAIN_W_VCPUS_MAX VSTATS_WORD(offsetof(struct vstats_domain_stats, vcpus_max))
#define VSTATS_DOMAIN_W_UPTIME VSTATS_WORD(offsetof(struct vstats_domain_stats, uptime))

/* ------------------------------------------------------------------------
 * Part 2: the producer API (libvstats_capi.a)
 * ------------------------------------------------------------------------ */

/* Error codes: negative, errno-style values (Linux numbering), independent
 * of <errno.h>. */
#define VSTATS_OK 0
#define VSTATS_EAGAIN (-11)    /* the table is disabled: no update was started or finished */
#define VSTATS_EFAULT (-14)    /* a NULL or misaligned pointer (memory, page, storage) */
#define VSTATS_EBUSY (-16)     /* this record's writer was already handed out */
#define VSTATS_EINVAL (-22)    /* an argument is invalid (magic, layout, uninitialised table) */
#define VSTATS_ENOSPC (-28)    /* the memory is smaller than the layout needs */
#define VSTATS_ERANGE (-34)    /* a record index or counter word out of range */
#define VSTATS_EPROTO (-71)    /* begin/set/end called out of order */
#define VSTATS_EBADMSG (-74)   /* a descriptor breaks R11-R13 or R20 */
#define VSTATS_EOVERFLOW (-75) /* the layout does not fit the header's 32-bit fields */

/* A static, NUL-terminated description of a VSTATS_E* code (any int). */
const char *vstats_strerror(int err);

/*
 * Where everything lives. The first six fields are the request, the rest
 * is computed by vstats_layout() (docs/abi.md section 8). Plain data: copy
 * it freely, but pass it to vstats_table_init_*() unchanged (they recompute
 * it and refuse one that differs).
 */
struct vstats_layout {
    uint32_t nr_records;  /* record slots (vCPUs; 1 for a domain table) */
    uint32_t size;        /* bytes of a record, seq included: multiple of 8, <= page_size */
    uint32_t abi_size;    /* the standard record (the header's size); [abi_size, size) is
                           * the producer-specific area */
    uint32_t desc_count;  /* descriptors of the producer-specific area (r3) */
    uint32_t page_size;   /* power of two in [4096, 1 GiB] */
    uint32_t cacheline;   /* power of two in [8, page_size] */
    uint32_t offset;      /* computed: where record 0 starts */
    uint32_t stride;      /* computed: distance between records (divides the page) */
    uint32_t desc_offset; /* computed: where descriptors start (0: none) */
    uint32_t _pad;        /* zero */
    uint64_t frames;      /* computed: pages the table occupies */
    uint64_t mapping_len; /* computed: frames * page_size, the bytes to provide */
};
/* size: 56 bytes */
VSTATS_STATIC_ASSERT(sizeof(struct vstats_layout) == 56, "vstats_layout size");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_layout, frames) == 40, "vstats_layout frames");

/*
 * A published table: caller-allocated, opaque. Initialised by
 * vstats_table_init_*(); it must then stay at its address (writers point
 * into it: never copy or move it) until no writer of it is used any more.
 * There is no destructor: the library holds no resource. A zero-filled
 * struct is refused by every function but the init functions.
 */
struct vstats_table {
    uint64_t opaque[32];
};

/*
 * The single writer of one record: caller-allocated (an array of
 * nr_records of them is given to vstats_table_init_*()), opaque, one
 * cacheline each so that two vCPUs' writers never share a line. A writer is
 * used by one thread at a time (it may move between threads).
 */
struct vstats_writer {
    VSTATS_ALIGNAS(64) uint64_t opaque[8];
};

/* The standard descriptors of r2 (the four times; the domain fields), in
 * record order. r3 tables do not publish them: standard fields are known by
 * position (R20 refuses a producer descriptor with their names). */
#define VSTATS_VCPU_STD_DESC_COUNT 4u
#define VSTATS_DOMAIN_STD_DESC_COUNT 3u
extern const struct vstats_desc vstats_vcpu_std_descs[VSTATS_VCPU_STD_DESC_COUNT];
extern const struct vstats_desc vstats_domain_std_descs[VSTATS_DOMAIN_STD_DESC_COUNT];

/*
 * Computes the layout of an r3 table (docs/abi.md section 8) into *out:
 * abi_size is the standard record (sizeof(struct vstats_vcpu_stats) or
 * sizeof(struct vstats_domain_stats)), [abi_size, record_size) the
 * producer-specific area, desc_count the descriptors of its counters; the
 * table's clock is the host's CLOCK_MONOTONIC. Errors: VSTATS_EFAULT (out is NULL), VSTATS_EINVAL (a parameter out of
 * range), VSTATS_EOVERFLOW (the table would not fit 32-bit offsets).
 */
int vstats_layout(uint32_t nr_records, uint32_t record_size, uint32_t abi_size,
                  uint32_t desc_count, uint32_t page_size, uint32_t cacheline,
                  struct vstats_layout *out);

/*
 * Lays out and publishes a table in `len` bytes of contiguous memory at
 * `base` (8-byte aligned; at least l->mapping_len bytes), and prepares one
 * writer per record in `writers` (nr_writers >= l->nr_records entries).
 *
 * magic: VSTATS_VCPU_STATS_MAGIC or VSTATS_DOMAIN_STATS_MAGIC.
 * descs: l->desc_count descriptors (may be NULL when that is 0), checked
 *        against R11-R13 and R20 (each inside [abi_size, size), no standard
 *        field's name) and copied into the table; not used afterwards.
 * generation: differs from that of any table published earlier under the
 *        same name (a restart), e.g. a boot counter or a timestamp.
 *
 * The table is published (the magic stored last, with release ordering,
 * P7) before this returns 0. On error nothing is written at all.
 *
 * The caller promises that, from this call until neither *t nor any of its
 * writers is used any more: the memory stays mapped and writable; nothing
 * but this library writes it (consumers only read it, with atomic or
 * volatile loads); *t and `writers` stay at their addresses and are touched
 * only through this API. Calling it again on a *t whose writers are in use
 * is not allowed.
 *
 * Errors: VSTATS_EFAULT (NULL or misaligned t, base or writers),
 * VSTATS_EINVAL (bad magic, a layout that vstats_layout() would not
 * produce), VSTATS_ENOSPC (len or nr_writers too small), VSTATS_EBADMSG
 * (a descriptor breaks R11-R13 or R20), VSTATS_EOVERFLOW.
 */
int vstats_table_init_contiguous(struct vstats_table *t, void *base, size_t len,
                                 uint32_t magic, const struct vstats_layout *l,
                                 const struct vstats_desc *descs, uint64_t generation,
                                 struct vstats_writer *writers, size_t nr_writers);

/*
 * As vstats_table_init_contiguous(), for memory given as `nr_pages` frames
 * of l->page_size bytes each (8-byte aligned, need not be virtually
 * contiguous): pages[i] holds table bytes [i * page_size, (i + 1) *
 * page_size), and nr_pages >= l->frames. No record straddles two frames
 * (R8), so each record lives in one frame.
 *
 * The page array itself is borrowed, not copied: the caller also promises
 * that `pages` stays valid and unchanged for as long as the table is used.
 */
int vstats_table_init_pages(struct vstats_table *t, void *const *pages, size_t nr_pages,
                            uint32_t magic, const struct vstats_layout *l,
                            const struct vstats_desc *descs, uint64_t generation,
                            struct vstats_writer *writers, size_t nr_writers);

/*
 * Turns updating on or off (on after init). While off, vstats_writer_begin()
 * and vstats_writer_update() do nothing and return VSTATS_EAGAIN: a
 * hypervisor turns it off while nobody maps the table. Writers store
 * absolute values, so the first update after turning it on is complete.
 * Safe to call from any thread at any time. Errors: VSTATS_EFAULT,
 * VSTATS_EINVAL (t not initialised).
 */
int vstats_table_set_enabled(struct vstats_table *t, bool on);

/*
 * Hands out the writer of record `index` in *out (a pointer into the
 * `writers` array given at init). Each record's writer is handed out at
 * most once, even under concurrent calls. Errors: VSTATS_EFAULT,
 * VSTATS_EINVAL (t not initialised), VSTATS_ERANGE (index >= nr_records),
 * VSTATS_EBUSY (already handed out).
 */
int vstats_writer_get(struct vstats_table *t, uint32_t index, struct vstats_writer **out);

/*
 * An update: vstats_writer_begin() (seq goes odd), any number of
 * vstats_writer_set*() calls, vstats_writer_end() (seq goes even, the new
 * values become visible together). Keep it short: readers retry while it
 * lasts (docs/abi.md 5.5).
 *
 * begin returns VSTATS_EAGAIN (and starts nothing) while the table is
 * disabled, VSTATS_EPROTO inside an update. An update already begun when
 * the table is disabled can still be completed: set and end keep working
 * until end.
 *
 * w must come from vstats_writer_get(); the functions return VSTATS_EFAULT
 * for NULL or a pointer that is not a writer.
 */
int vstats_writer_begin(struct vstats_writer *w);

/*
 * Stores counter word `word` (word 0 is at byte 8 of the record; see
 * VSTATS_WORD()). A value with the top bit set (an overflow) is stored as
 * VSTATS_INACTIVE, never wrapped. Errors: VSTATS_EPROTO (outside an
 * update), VSTATS_ERANGE (word beyond the record, nothing stored).
 */
int vstats_writer_set(struct vstats_writer *w, uint32_t word, uint64_t value);

/* Stores a vCPU record's current state (VSTATS_RUNSTATE_*) and when it was
 * entered (entry_ns, host CLOCK_MONOTONIC nanoseconds), beside the four
 * times, which are accrued up to entry_ns. Errors as vstats_writer_set()
 * (VSTATS_ERANGE: not a vCPU record). */
int vstats_writer_set_runstate(struct vstats_writer *w, uint64_t state, uint64_t entry_ns);

/* Marks counter word `word` inactive (absent). Errors as vstats_writer_set(). */
int vstats_writer_set_inactive(struct vstats_writer *w, uint32_t word);

/* Marks every counter of the record inactive: the slot reads as unused
 * (R16; a vCPU that went away). Errors: VSTATS_EPROTO. */
int vstats_writer_set_unused(struct vstats_writer *w);

/* Ends the update: seq goes even. Errors: VSTATS_EPROTO (no update). */
int vstats_writer_end(struct vstats_writer *w);

/*
 * A whole update in one call: stores values[0..n) into words
 * [first_word, first_word + n). Not inside begin/end. Errors:
 * VSTATS_EPROTO (inside an update), VSTATS_ERANGE (words beyond the
 * record: nothing is written), VSTATS_EFAULT (values NULL with n > 0),
 * VSTATS_EAGAIN (disabled).
 */
int vstats_writer_update(struct vstats_writer *w, uint32_t first_word, const uint64_t *values,
                         uint32_t n);

/*
 * Publishing tables as files (user-space producers; not in freestanding
 * builds without std).
 *
 * A publication is one VM's directory, e.g. /dev/shm/vstats/<name>: the
 * library creates it if missing (its parents too), opens it without
 * following a symbolic link, refuses one owned by another user, and
 * takes an exclusive flock on it (one producer per directory). Every
 * file operation is relative to that directory. Each table is written
 * into a temporary file created with O_EXCL, allocated with fallocate
 * before it is mapped (a full file system is an error, not a SIGBUS),
 * initialised and renamed into place, so consumers never see a
 * half-made table. Closing removes only the files the publication
 * created (by device and inode), then the directory if it created it.
 *
 * Errors: the VSTATS_E* codes, or a negated errno of the failed system
 * call (e.g. -EACCES); vstats_strerror() names the VSTATS_E* codes only.
 */
struct vstats_publication;

/*
 * Opens (creating it if missing) and locks the publication directory
 * `dir`. The modes are applied exactly, whatever the umask; 0 selects the
 * defaults (0750 for the directory, 0640 for the files). Errors:
 * VSTATS_EFAULT (dir or out NULL), VSTATS_EINVAL (a mode above 07777),
 * VSTATS_EBUSY (another producer holds it), -ENOTDIR (a symbolic link or
 * not a directory), -EPERM (owned by another user), -errno.
 */
int vstats_publication_open(const char *dir, uint32_t dir_mode, uint32_t file_mode,
                            struct vstats_publication **out);

/* The generation every table of the publication carries (0 for NULL). */
uint64_t vstats_publication_generation(const struct vstats_publication *p);

/*
 * Publishes a table as the file `file` (a plain name such as "vcpu") of
 * the publication, under the publication's generation: as
 * vstats_table_init_contiguous() over memory the publication maps and
 * owns. *t and the writers are then used as for any table, until
 * vstats_publication_close(). Errors: those of
 * vstats_table_init_contiguous() (nothing is left behind),
 * VSTATS_EINVAL (a file name with '/' or other characters outside
 * [A-Za-z0-9._+:-], or "." or ".."), VSTATS_ENOSPC (no room), -errno.
 */
int vstats_publication_table(struct vstats_publication *p, const char *file,
                             struct vstats_table *t, uint32_t magic,
                             const struct vstats_layout *l, const struct vstats_desc *descs,
                             struct vstats_writer *writers, size_t nr_writers);

/*
 * Removes the files the publication created and its directory (if it
 * created it and it is empty), unmaps its tables, releases the lock and
 * frees p, even on error. No table of p, nor a writer of one, may be used
 * afterwards. Errors: VSTATS_EFAULT (NULL), -errno from removing a file.
 */
int vstats_publication_close(struct vstats_publication *p);

#ifdef __cplusplus
}
#endif

#endif /* VSTATS_H */
