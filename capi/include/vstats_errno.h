/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * vstats_errno.h: the error codes of libvstats, shared by the producer API
 * (vstats_producer.h) and the reader API (vstats_reader.h).
 *
 * Every function of either API returns 0 (or a count, where it says so) or
 * one of these negative, errno-style values (Linux numbering, independent
 * of <errno.h>). A few functions also return a negated errno of a failed
 * system call (e.g. -EACCES); they say so. vstats_strerror() names the
 * VSTATS_E* codes.
 */
#ifndef VSTATS_ERRNO_H
#define VSTATS_ERRNO_H

#ifdef __cplusplus
extern "C" {
#endif

#define VSTATS_OK 0
#define VSTATS_ENOENT (-2)     /* reader: no such file, or no counter of that name */
#define VSTATS_EIO (-5)        /* reader: the table's file was truncated while it was read */
#define VSTATS_E2BIG (-7)      /* reader: the table exceeds the reader's resource limits */
#define VSTATS_EAGAIN (-11)    /* the table is disabled: no update was started or finished */
#define VSTATS_EFAULT (-14)    /* a NULL or misaligned pointer, or one that is not the object named */
#define VSTATS_EBUSY (-16)     /* a writer already handed out; reader: a record read mid-update */
#define VSTATS_EINVAL (-22)    /* an argument is invalid (magic, layout, uninitialised object) */
#define VSTATS_ENOSPC (-28)    /* the memory or buffer is smaller than needed */
#define VSTATS_ERANGE (-34)    /* a record, counter, word or bucket index out of range */
#define VSTATS_ENODATA (-61)   /* reader: the value is absent (inactive, or not in the record) */
#define VSTATS_EPROTO (-71)    /* begin/set/end called out of order */
#define VSTATS_EBADMSG (-74)   /* a descriptor or a table breaks a rule of docs/abi.md */
#define VSTATS_EOVERFLOW (-75) /* the layout does not fit the header's 32-bit fields */
#define VSTATS_ESTALE (-116)   /* reader: the producer changed or retired the table */
#define VSTATS_ENOTRECOVERABLE (-131) /* an internal error of the library (a bug) */

/* A static, NUL-terminated description of a VSTATS_E* code (any int). */
const char *vstats_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* VSTATS_ERRNO_H */
