/*
 * A stand-in for libxenforeignmemory.so.1 and libxenstore.so.4, built by
 * xen-vcpus-stats' tests: it exports the same C symbols with the same
 * signatures (Xen's tools/include/xenforeignmemory.h and xenstore.h), but
 * serves files instead of Xen resources, because no Xen host is available
 * to test on.
 *
 *   $VSTATS_XEN_STANDIN_DIR/privcmd             when present, opened O_RDWR by
 *                                               xenforeignmemory_open, as
 *                                               the real one opens
 *                                               /dev/xen/privcmd (root only)
 *   $VSTATS_XEN_STANDIN_DIR/<domid>/            a domain (absent: ESRCH)
 *   $VSTATS_XEN_STANDIN_DIR/<domid>/<type>-<id> resource <type>, <id>
 *                                               (absent: a type this
 *                                               hypervisor does not know)
 *   $VSTATS_XEN_STANDIN_DIR/<domid>/name        its xenstore name
 *   $VSTATS_XEN_STANDIN_DIR/<domid>/cpu/<n>     its xenstore vCPUs
 *   $VSTATS_XEN_STANDIN_DIR/<domid>/self        present: the caller's own
 *                                               domain (EPERM, as Xen
 *                                               refuses a domain its own
 *                                               resources)
 *   $VSTATS_XEN_STANDIN_DIR/<domid>/errno       a number: every size query
 *                                               and mapping of the domain
 *                                               fails with that errno
 *
 * The answers follow Xen 4.17's acquire_resource (xen/common/memory.c),
 * Linux's privcmd and libxenforeignmemory 4.17:
 * - mapping a resource of an unknown type: EOPNOTSUPP;
 * - the size query of an unknown type succeeds and reports
 *   (uint32_t)-EOPNOTSUPP frames, shifted by 12 into a size_t, as Xen
 *   4.17 does (its resource_max_frames returns -EOPNOTSUPP as an unsigned
 *   frame count); with VSTATS_XEN_STANDIN_XEN=4.18 it fails with EINVAL
 *   instead, as Xen 4.18 and later do (zero frames);
 * - a resource of zero frames: the size query fails with EINVAL;
 * - frames beyond the resource: EINVAL.
 *
 * xenforeignmemory_map_resource() mmaps the file with the caller's prot
 * (MAP_SHARED), like privcmd maps the frames. Every call is appended to
 * $VSTATS_XEN_STANDIN_LOG when set, so tests can check that mappings are
 * read-only and undone. Built with -DSTANDIN_NO_RESOURCE_SIZE it lacks
 * xenforeignmemory_resource_size (Xen before 4.15).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define FRAME 4096UL

typedef struct xenforeignmemory_handle {
    int open;
} xenforeignmemory_handle;

typedef struct xenforeignmemory_resource_handle {
    void *addr;
    size_t len;
} xenforeignmemory_resource_handle;

struct xs_handle {
    int open;
};

static void logf_(const char *fmt, ...)
{
    const char *path = getenv("VSTATS_XEN_STANDIN_LOG");
    if (!path)
        return;
    FILE *f = fopen(path, "a");
    if (!f)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fclose(f);
}

static const char *dir(void)
{
    return getenv("VSTATS_XEN_STANDIN_DIR");
}

/* <dir>/<domid>/<rest>; ESRCH when the domain directory is missing. */
static int path_of(char *buf, size_t n, uint16_t domid, const char *rest)
{
    struct stat st;
    const char *d = dir();
    if (!d) {
        errno = ENOENT;
        return -1;
    }
    snprintf(buf, n, "%s/%u", d, (unsigned)domid);
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) {
        if (errno == EACCES)
            return -1;
        errno = ESRCH;
        return -1;
    }
    /* Refusals that Xen makes before it looks at the resource. */
    snprintf(buf, n, "%s/%u/self", d, (unsigned)domid);
    if (stat(buf, &st) == 0) {
        errno = EPERM;
        return -1;
    }
    snprintf(buf, n, "%s/%u/errno", d, (unsigned)domid);
    FILE *f = fopen(buf, "r");
    if (f) {
        int e = 0;
        if (fscanf(f, "%d", &e) != 1 || e <= 0)
            e = EIO;
        fclose(f);
        errno = e;
        return -1;
    }
    snprintf(buf, n, "%s/%u/%s", d, (unsigned)domid, rest);
    return 0;
}

xenforeignmemory_handle *xenforeignmemory_open(void *logger, unsigned open_flags)
{
    logf_("open logger=%s flags=%u", logger ? "set" : "null", open_flags);
    if (!dir()) {
        /* As on a host without /dev/xen/privcmd. */
        errno = ENOENT;
        return NULL;
    }
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/privcmd", dir());
    if (stat(path, &st) == 0) {
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
            return NULL;
        close(fd);
    }
    xenforeignmemory_handle *h = calloc(1, sizeof(*h));
    if (h)
        h->open = 1;
    return h;
}

int xenforeignmemory_close(xenforeignmemory_handle *h)
{
    logf_("close");
    free(h);
    return 0;
}

xenforeignmemory_resource_handle *xenforeignmemory_map_resource(
    xenforeignmemory_handle *fmem, uint16_t domid, unsigned int type,
    unsigned int id, unsigned long frame, unsigned long nr_frames,
    void **paddr, int prot, int flags)
{
    char name[32], path[4096];
    struct stat st;
    logf_("map domid=%u type=%u id=%u frame=%lu nr_frames=%lu prot=%d flags=%d",
          (unsigned)domid, type, id, frame, nr_frames, prot, flags);
    if (!fmem || !fmem->open || !paddr) {
        errno = EINVAL;
        return NULL;
    }
    snprintf(name, sizeof(name), "%u-%u", type, id);
    if (path_of(path, sizeof(path), domid, name) != 0)
        return NULL;
    int fd = open(path, (prot & PROT_WRITE) ? O_RDWR : O_RDONLY);
    if (fd < 0) {
        if (errno == ENOENT)
            errno = EOPNOTSUPP;
        return NULL;
    }
    if (fstat(fd, &st) != 0 || nr_frames == 0 ||
        (frame + nr_frames) * FRAME > (((unsigned long)st.st_size + FRAME - 1) & ~(FRAME - 1))) {
        close(fd);
        errno = EINVAL;
        return NULL;
    }
    size_t len = nr_frames * FRAME;
    void *addr = mmap(*paddr, len, prot, MAP_SHARED | flags, fd, (off_t)(frame * FRAME));
    int saved = errno;
    close(fd);
    if (addr == MAP_FAILED) {
        errno = saved;
        return NULL;
    }
    xenforeignmemory_resource_handle *r = calloc(1, sizeof(*r));
    if (!r) {
        munmap(addr, len);
        errno = ENOMEM;
        return NULL;
    }
    r->addr = addr;
    r->len = len;
    *paddr = addr;
    return r;
}

int xenforeignmemory_unmap_resource(xenforeignmemory_handle *fmem,
                                    xenforeignmemory_resource_handle *fres)
{
    (void)fmem;
    if (!fres)
        return 0;
    logf_("unmap nr_frames=%lu", (unsigned long)(fres->len / FRAME));
    int rc = munmap(fres->addr, fres->len);
    free(fres);
    return rc;
}

#ifndef STANDIN_NO_RESOURCE_SIZE
int xenforeignmemory_resource_size(xenforeignmemory_handle *fmem, uint16_t domid,
                                   unsigned int type, unsigned int id, size_t *size)
{
    char name[32], path[4096];
    struct stat st;
    logf_("size domid=%u type=%u id=%u", (unsigned)domid, type, id);
    (void)fmem;
    snprintf(name, sizeof(name), "%u-%u", type, id);
    if (path_of(path, sizeof(path), domid, name) != 0)
        return -1;
    if (stat(path, &st) != 0) {
        if (errno != ENOENT)
            return -1;
        const char *xen = getenv("VSTATS_XEN_STANDIN_XEN");
        if (xen && strcmp(xen, "4.17") != 0) {
            errno = EINVAL;
            return -1;
        }
        /* Xen 4.17: "success", with -EOPNOTSUPP as the 32-bit frame count. */
        *size = (size_t)(uint32_t)-EOPNOTSUPP << 12;
        return 0;
    }
    if (st.st_size == 0) {
        errno = EINVAL;
        return -1;
    }
    *size = ((size_t)st.st_size + FRAME - 1) & ~(FRAME - 1);
    return 0;
}
#endif

struct xs_handle *xs_open(unsigned long flags)
{
    (void)flags;
    if (!dir()) {
        errno = ENOENT;
        return NULL;
    }
    struct xs_handle *h = calloc(1, sizeof(*h));
    if (h)
        h->open = 1;
    return h;
}

void xs_close(struct xs_handle *h)
{
    free(h);
}

/* Two directories: "/local/domain", the numeric entries of
 * $VSTATS_XEN_STANDIN_DIR, and "/local/domain/<domid>/cpu", those of
 * <dir>/<domid>/cpu (absent: ENOENT). One malloc'ed block, as xenstore
 * returns. */
char **xs_directory(struct xs_handle *h, uint32_t t, const char *path, unsigned int *num)
{
    unsigned domid;
    char tail, sub[4096];
    const char *where = sub;
    (void)h;
    (void)t;
    if (!dir()) {
        errno = ENOENT;
        return NULL;
    }
    if (strcmp(path, "/local/domain") == 0) {
        where = dir();
    } else if (sscanf(path, "/local/domain/%u/cpu%c", &domid, &tail) == 1 && domid < 65536) {
        snprintf(sub, sizeof(sub), "%s/%u/cpu", dir(), domid);
    } else {
        errno = ENOENT;
        return NULL;
    }
    DIR *d = opendir(where);
    if (!d)
        return NULL;
    char names[256][8];
    unsigned n = 0;
    size_t bytes = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        char *end;
        unsigned long v = strtoul(e->d_name, &end, 10);
        if (*e->d_name && !*end && v < 65536) {
            snprintf(names[n], sizeof(names[n]), "%lu", v);
            bytes += strlen(names[n]) + 1;
            n++;
        }
    }
    closedir(d);
    char **out = malloc(n * sizeof(char *) + bytes + 1);
    if (!out)
        return NULL;
    char *p = (char *)(out + n);
    for (unsigned i = 0; i < n; i++) {
        out[i] = p;
        strcpy(p, names[i]);
        p += strlen(names[i]) + 1;
    }
    *num = n;
    return out;
}

/* "/local/domain/<domid>/name": the file <dir>/<domid>/name. */
void *xs_read(struct xs_handle *h, uint32_t t, const char *path, unsigned int *len)
{
    unsigned domid;
    char file[4096];
    (void)h;
    (void)t;
    if (sscanf(path, "/local/domain/%u/name", &domid) != 1 || domid > 65535 || !dir()) {
        errno = ENOENT;
        return NULL;
    }
    snprintf(file, sizeof(file), "%s/%u/name", dir(), domid);
    FILE *f = fopen(file, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 4097);
    size_t n = buf ? fread(buf, 1, 4096, f) : 0;
    fclose(f);
    if (!buf) {
        errno = ENOMEM;
        return NULL;
    }
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = 0;
    *len = (unsigned)n;
    return buf;
}
