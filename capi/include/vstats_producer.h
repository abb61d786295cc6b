/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * vstats_producer.h: the producer API of libvstats, for hypervisors and
 * other programs written in C that publish vstats tables.
 *
 * The ABI itself (structures, magics, the rules R1... and P1... of
 * docs/abi.md) is xen/stats_table.h, which this header includes; this one
 * adds the library that lays a table out, publishes it and hands out one
 * writer per record. Link libvstats (pkg-config --cflags --libs vstats), or
 * libvstats_capi.a from the build tree (the crate docs of vstats-capi say
 * how). The library allocates nothing: every object lives in storage the
 * caller provides. It never blocks, never takes a lock and never panics.
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
 * Functions return 0 or a negative VSTATS_E* code (vstats_errno.h);
 * vstats_strerror() names it. All integers in the table are in the host's
 * byte order.
 */
#ifndef VSTATS_PRODUCER_H
#define VSTATS_PRODUCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xen/stats_table.h"
#include "vstats_errno.h"

#ifdef __cplusplus
#define VSTATS_ALIGNAS(n) alignas(n)
#define VSTATS_STATIC_ASSERT(e, m) static_assert(e, m)
extern "C" {
#else
#define VSTATS_ALIGNAS(n) _Alignas(n)
#define VSTATS_STATIC_ASSERT(e, m) _Static_assert(e, m)
#endif

/* The layout parameters the library suggests (docs/abi.md section 8). */
#define VSTATS_DEFAULT_PAGE_SIZE 4096u
#define VSTATS_DEFAULT_CACHELINE 64u
/* Most descriptors vstats_layout() lays out (a limit of this library). */
#define VSTATS_MAX_DESCRIPTORS 1024u

/* Counter word index of the field at byte `off` of a record: word 0 is at
 * byte 8, right after seq and _pad. The word numbers the writer functions
 * take. */
#define VSTATS_WORD(off) (((off) - XEN_STATS_RECORD_PREFIX) / 8u)

#define VSTATS_VCPU_W_RUNNING VSTATS_WORD(offsetof(struct xen_vcpu_stats, runstate_running_time))
#define VSTATS_VCPU_W_RUNNABLE VSTATS_WORD(offsetof(struct xen_vcpu_stats, runstate_runnable_time))
#define VSTATS_VCPU_W_BLOCKED VSTATS_WORD(offsetof(struct xen_vcpu_stats, runstate_blocked_time))
#define VSTATS_VCPU_W_OFFLINE VSTATS_WORD(offsetof(struct xen_vcpu_stats, runstate_offline_time))
#define VSTATS_VCPU_W_RUNSTATE VSTATS_WORD(offsetof(struct xen_vcpu_stats, runstate))
#define VSTATS_VCPU_W_RUNSTATE_ENTRY VSTATS_WORD(offsetof(struct xen_vcpu_stats, runstate_entry_time))
#define VSTATS_DOMAIN_W_VCPUS_ONLINE VSTATS_WORD(offsetof(struct xen_domain_stats, vcpus_online))
#define VSTATS_DOMAIN_W_VCPUS_MAX VSTATS_WORD(offsetof(struct xen_domain_stats, vcpus_max))
#define VSTATS_DOMAIN_W_UPTIME VSTATS_WORD(offsetof(struct xen_domain_stats, uptime))

/*
 * Where everything lives. The first six fields are the request (with
 * clock, xstats_size and xdesc_count for vstats_layout_r3()), the rest is
 * computed by vstats_layout() or vstats_layout_r3() (docs/abi.md section 8). Plain data: copy
 * it freely, but pass it to vstats_table_init_*() unchanged (they recompute
 * it and refuse one that differs).
 */
struct vstats_layout {
    uint32_t nr_records;  /* record slots (vCPUs; 1 for a domain table) */
    uint32_t size;        /* bytes of a record, seq included: multiple of 8, <= page_size */
    uint32_t abi_size;    /* the standard record (the header's size); [abi_size, size) is
                           * the producer-specific area */
    uint32_t desc_count;  /* descriptors of the producer-specific area (r3),
                           * <= VSTATS_MAX_DESCRIPTORS */
    uint32_t page_size;   /* power of two in [4096, 1 GiB] */
    uint32_t cacheline;   /* power of two in [8, page_size] */
    uint32_t offset;      /* computed: where record 0 starts */
    uint32_t stride;      /* computed: distance between records (divides the page) */
    uint32_t desc_offset; /* computed: where descriptors start (0: none) */
    uint32_t _pad;        /* zero */
    uint64_t frames;      /* computed: pages the table occupies */
    uint64_t mapping_len; /* computed: frames * page_size, the bytes to provide */
    uint32_t ext_size;    /* computed: the header's ext_size, 72 (r3) */
    uint32_t clock;       /* r3: XEN_STATS_CLOCK_* (HOST_MONOTONIC from vstats_layout()) */
    uint32_t xstats_size; /* r3: bytes of the producer-specific area (0: none) */
    uint32_t xdesc_count; /* r3: descriptors of that area */
    uint32_t xstats_offset; /* computed, r3: record-relative start of the area (0: none) */
    uint32_t xdesc_offset;  /* computed, r3: where its descriptors start (0: none) */
};
/* size: 80 bytes */
VSTATS_STATIC_ASSERT(sizeof(struct vstats_layout) == 80, "vstats_layout size");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_layout, frames) == 40, "vstats_layout frames");
VSTATS_STATIC_ASSERT(offsetof(struct vstats_layout, ext_size) == 56, "vstats_layout ext_size");

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
 * position (R20 refuses a producer descriptor with their names). These go
 * away with the compatibility header vstats.h. */
#define VSTATS_VCPU_STD_DESC_COUNT 4u
#define VSTATS_DOMAIN_STD_DESC_COUNT 3u
extern const struct xen_stats_desc vstats_vcpu_std_descs[VSTATS_VCPU_STD_DESC_COUNT];
extern const struct xen_stats_desc vstats_domain_std_descs[VSTATS_DOMAIN_STD_DESC_COUNT];

/*
 * Computes the layout of an r3 table (docs/abi.md section 8) into *out:
 * abi_size is the standard record (sizeof(struct xen_vcpu_stats) or
 * sizeof(struct xen_domain_stats)), [abi_size, record_size) the
 * producer-specific area, desc_count the descriptors of its counters; the
 * table's clock is the host's CLOCK_MONOTONIC (XEN_STATS_CLOCK_HOST_MONOTONIC).
 * Errors: VSTATS_EFAULT (out is NULL), VSTATS_EINVAL (a parameter out of
 * range), VSTATS_EOVERFLOW (the table would not fit 32-bit offsets).
 */
int vstats_layout(uint32_t nr_records, uint32_t record_size, uint32_t abi_size,
                  uint32_t desc_count, uint32_t page_size, uint32_t cacheline,
                  struct vstats_layout *out);

/*
 * Computes the layout of an r3 table into *out: standard records of `size`
 * bytes (sizeof(struct xen_vcpu_stats) or sizeof(struct xen_domain_stats)),
 * a producer-specific area of xstats_size bytes after each (a multiple of
 * 8; 0 for none), xdesc_count descriptors of it, and the time base `clock`
 * (XEN_STATS_CLOCK_*). Errors as vstats_layout().
 */
int vstats_layout_r3(uint32_t nr_records, uint32_t size, uint32_t xstats_size,
                     uint32_t xdesc_count, uint32_t clock, uint32_t page_size,
                     uint32_t cacheline, struct vstats_layout *out);

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
                                 const struct xen_stats_desc *descs, uint64_t generation,
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
                            const struct xen_stats_desc *descs, uint64_t generation,
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

/* Marks counter word `word` inactive (absent). Errors as vstats_writer_set(). */
int vstats_writer_set_inactive(struct vstats_writer *w, uint32_t word);

/*
 * Stores the current runstate (RUNSTATE_running..RUNSTATE_offline) and when
 * it was entered (entry_ns, in the table's clock) into the runstate and
 * runstate_entry_time words of an r3 vCPU record (P11: the four times are
 * accrued up to entry_ns). An entry_ns with the top bit set is stored as
 * XEN_STATS_INACTIVE. Errors: VSTATS_EPROTO (outside an update),
 * VSTATS_EINVAL (state > 3, R25), VSTATS_ERANGE (the record has no such
 * words, e.g. an r2 record); nothing is stored then.
 */
int vstats_writer_set_runstate(struct vstats_writer *w, uint32_t state, uint64_t entry_ns);

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
                             const struct vstats_layout *l, const struct xen_stats_desc *descs,
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

#endif /* VSTATS_PRODUCER_H */
