/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * vstats_reader.h: the reader API of libvstats, for C programs (and
 * bindings such as OCaml's ctypes) that read vstats tables.
 *
 * The library maps a table (or takes memory the caller mapped), copies and
 * validates its head once (docs/abi.md, rules R1...), and copies records
 * consistently with the seq protocol (section 5): the same code as the
 * Rust consumer, vstats-consumer. The ABI's structures and constants are
 * xen/stats_table.h, included here.
 *
 * Shape of the API: opaque handles, buffers the caller owns and sizes, no
 * allocation after vstats_reader_open*(), no callbacks, no structures
 * passed by value, no varargs. Every function returns 0 (or a count, or a
 * status, where it says so) or a negative VSTATS_E* code (vstats_errno.h);
 * functions returning a plain value return 0 for a NULL reader. Every
 * pointer is checked for NULL and alignment, and every object for being
 * the kind of object expected (VSTATS_EFAULT otherwise); an invalid table
 * is an error, never a crash.
 *
 *     struct vstats_reader *r;
 *     if (vstats_reader_open("/dev/shm/vstats/vm1/vcpu", &r) != 0) ...
 *     size_t n = vstats_snapshot_size(r);
 *     struct vstats_snapshot *s = malloc(n);
 *     vstats_snapshot_init(s, n, r);
 *     uint32_t running;
 *     vstats_reader_counter_index(r, "runstate_running_time", &running);
 *     vstats_snapshot_take(r, s, 0);                 // each record consistent
 *     for (uint32_t v = 0; v < vstats_reader_nr_records(r); v++) {
 *         uint64_t ns;
 *         if (vstats_snapshot_value(s, v, running, 0, &ns) == 0) ...
 *     }
 *     free(s);
 *     vstats_reader_close(r);
 *
 * Threads: a reader may be used by any number of threads at once; a
 * snapshot buffer by one thread at a time.
 */
#ifndef VSTATS_READER_H
#define VSTATS_READER_H

#include <stddef.h>
#include <stdint.h>

#include "xen/stats_table.h"
#include "vstats_errno.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One mapped, validated table: opaque, from vstats_reader_open*(). */
struct vstats_reader;
/* A caller-allocated buffer of vstats_snapshot_size() bytes, 8-aligned. */
struct vstats_snapshot;

/*
 * Opens the table in the file at `path` read-only: maps only its head at
 * first, copies and validates it, then maps the described extent. The file
 * must be a regular file (a FIFO or device is refused without reading it).
 * Errors: VSTATS_EFAULT (path or out NULL), VSTATS_EBADMSG (not a valid
 * table), VSTATS_E2BIG (larger than this library reads: 16 MiB of head,
 * 2^20 records, 2^22 counter words), VSTATS_EINVAL (not a regular file),
 * VSTATS_EIO (truncated while read), or a negated errno (VSTATS_ENOENT,
 * -EACCES, ...).
 */
int vstats_reader_open(const char *path, struct vstats_reader **out);

/*
 * A reader of a table in `len` bytes at `base` that the caller mapped, e.g.
 * with xenforeignmemory_map_resource(). The caller keeps it mapped until
 * vstats_reader_close(). Errors: VSTATS_EFAULT (base NULL or not 8-aligned,
 * out NULL), and those of vstats_reader_open().
 */
int vstats_reader_open_memory(const void *base, size_t len, struct vstats_reader **out);

/*
 * Whether the table is still the one validated at open: re-reads its header
 * (and, for a file, whether the file was replaced); when it changed,
 * copies and validates the head again. The rule broken, if any, is written
 * NUL-terminated to rule[0..rule_len) (e.g. "R7"; "" when none; rule may be
 * NULL). Returns 0 when unchanged. Errors: VSTATS_EFAULT, VSTATS_ESTALE
 * (retired, file replaced, or changed into another valid table: open it
 * again), VSTATS_EBADMSG (the head now breaks `rule`), VSTATS_EIO (the file
 * was truncated).
 */
int vstats_reader_validate(const struct vstats_reader *r, char *rule, size_t rule_len);

/*
 * Unmaps what the reader mapped and frees it. NULL is ignored. No snapshot
 * prepared for r may be used afterwards.
 */
void vstats_reader_close(struct vstats_reader *r);

/* The table's magic: XEN_VCPU_STATS_MAGIC or a domain table magic. */
uint32_t vstats_reader_kind(const struct vstats_reader *r);
/* Record slots (vCPU ids in a vCPU table, R24). */
uint32_t vstats_reader_nr_records(const struct vstats_reader *r);
/* The producer's generation (0 when the table has no r2 header). */
uint64_t vstats_reader_generation(const struct vstats_reader *r);
/* The time base, XEN_STATS_CLOCK_* (XEN_STATS_CLOCK_NONE for r1/r2). */
uint32_t vstats_reader_clock(const struct vstats_reader *r);

/*
 * Counters: each record's standard fields that the table has (by their
 * fixed offsets), then its described ones, indexed 0..count-1.
 */
uint32_t vstats_reader_counter_count(const struct vstats_reader *r);
/*
 * Counter `idx` as a descriptor: name, record offset, words, kind, unit,
 * base, exponent, bucket size. Errors: VSTATS_EFAULT, VSTATS_ERANGE.
 */
int vstats_reader_counter_info(const struct vstats_reader *r, uint32_t idx,
                               struct xen_stats_desc *out);
/* The index of the counter called `name`. Errors: VSTATS_EFAULT,
 * VSTATS_ENOENT (no such counter). */
int vstats_reader_counter_index(const struct vstats_reader *r, const char *name,
                                uint32_t *idx);

/* Bytes of a snapshot buffer for r (0 for NULL). */
size_t vstats_snapshot_size(const struct vstats_reader *r);

/*
 * Prepares the buffer s of len bytes (8-aligned) for snapshots of r; r must
 * stay open while s is used. Every record reads as not read until the first
 * take. Errors: VSTATS_EFAULT (r not a reader, s NULL or misaligned),
 * VSTATS_ENOSPC (len < vstats_snapshot_size(r); nothing written).
 */
int vstats_snapshot_init(struct vstats_snapshot *s, size_t len, const struct vstats_reader *r);

/*
 * Copies every record of r's table into s, each consistently (records are
 * not consistent with each other), then takes "now" for the up-to-date
 * runstate times: now_ns when non-zero (in the table's clock), else the
 * table's clock read after the copy (XEN_STATS_CLOCK_HOST_MONOTONIC is read
 * here; for XEN_STATS_CLOCK_XEN_SYSTEM pass now_ns, else the times are not
 * extrapolated). Returns the number of busy records (0: all consistent).
 * Errors: VSTATS_EFAULT (s not prepared by vstats_snapshot_init),
 * VSTATS_EINVAL (s was prepared for another reader), VSTATS_EIO (the file
 * was truncated; the records not read say so).
 */
int vstats_snapshot_take(const struct vstats_reader *r, struct vstats_snapshot *s,
                         uint64_t now_ns);

/* What vstats_snapshot_record_status() returns for a record of the last
 * take. */
#define VSTATS_RECORD_OK 0       /* read consistently, in use */
#define VSTATS_RECORD_UNUSED 1   /* read consistently, every counter inactive (R16) */
#define VSTATS_RECORD_BUSY 2     /* mid-update at every attempt: no values */
#define VSTATS_RECORD_NOT_READ 3 /* not taken yet, or the file was truncated */

/* The status of record rec (>= 0), or VSTATS_EFAULT, VSTATS_ERANGE. */
int vstats_snapshot_record_status(const struct vstats_snapshot *s, uint32_t rec);

/*
 * The value of counter idx (bucket `bucket` of a histogram, 0 for a scalar)
 * in record rec. Errors: VSTATS_EFAULT, VSTATS_ERANGE (rec, idx or bucket
 * out of range), VSTATS_EBUSY (the record was busy), VSTATS_ENODATA
 * (absent: inactive, beyond the producer's record, a histogram with an
 * inactive bucket (R27), or the record was not read).
 */
int vstats_snapshot_value(const struct vstats_snapshot *s, uint32_t rec, uint32_t idx,
                          uint32_t bucket, uint64_t *value);

/* What vstats_snapshot_runstate() stores as the state when there is none. */
#define VSTATS_RUNSTATE_UNKNOWN 0xffffffffU

/*
 * vCPU rec's runstate times as of the last take's "now" (R26): times_ns[0..4)
 * in RUNSTATE_running.._offline order (XEN_STATS_INACTIVE for an absent
 * one), the time since runstate_entry_time added to the current state's
 * when the table's clock is named and "now" was read (*extrapolated = 1),
 * else the times as of the last state change (*extrapolated = 0). *state is
 * the current state, RUNSTATE_*, or VSTATS_RUNSTATE_UNKNOWN when the record
 * has none (r1, r2) or it is inactive. Errors: VSTATS_EFAULT (an output
 * NULL), VSTATS_EINVAL (not a vCPU table), VSTATS_ERANGE, VSTATS_EBUSY (the
 * record was busy), VSTATS_ENODATA (the record was not read).
 */
int vstats_snapshot_runstate(const struct vstats_snapshot *s, uint32_t rec, uint64_t times_ns[4],
                             uint32_t *state, int *extrapolated);

#ifdef __cplusplus
}
#endif

#endif /* VSTATS_READER_H */
