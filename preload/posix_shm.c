/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* posix_shm.c: shm_open and shm_unlink served by the broker.  shm_open
 * returns a duplicate of the broker's memfd descriptor: O_RDWR for a
 * read-write open, the broker's O_RDONLY description for a read-only one.
 * A segment created here starts empty and growable (ftruncate grows it;
 * F_SEAL_SHRINK refuses shrinking).  By default a created segment is
 * persistent (POSIX: until shm_unlink) and the broker handle is released at
 * once, the fd keeping the memory; in transient mode the handle is kept
 * until the process exits, so that the segment dies with its last holder. */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Transient mode: the handles this process keeps, one per segment. */
typedef struct kept {
        struct kept *next;
        dev_t dev;
        ino_t ino;
        ipcb_shm *shm;
        unsigned gen; /* shim_fork_gen when opened */
        char name[IPCB_NAME_MAX + 1]; /* the broker name it was opened by */
} kept;
static kept *kept_list;

/* Keep s (transient mode), or release it if a handle on the same segment is
 * kept already.  Lock held. */
static void keep_or_close(ipcb_shm *s, const char *bname) {
        struct stat st;
        kept *k;

        if (fstat(ipcb_shm_fd(s), &st) < 0) {
                ipcb_shm_close(s);
                return;
        }
        for (k = kept_list; k; k = k->next)
                if (k->gen == shim_fork_gen && k->dev == st.st_dev && k->ino == st.st_ino) {
                        ipcb_shm_close(s);
                        return;
                }
        if (!(k = malloc(sizeof(*k)))) {
                ipcb_shm_close(s); /* the segment lives as long as others hold it */
                return;
        }
        *k = (kept){ .next = kept_list, .dev = st.st_dev, .ino = st.st_ino, .shm = s,
                     .gen = shim_fork_gen };
        snprintf(k->name, sizeof(k->name), "%s", bname);
        kept_list = k;
}

/* shm_unlink in transient mode: the name is gone, so nobody can open the
 * segment again; the kept handles on it are released (the mappings and
 * fds keep the memory), as the kernel frees an unlinked segment once it is
 * unmapped.  Lock held. */
static void kept_release(const char *bname) {
        kept **pp = &kept_list, *k;

        while ((k = *pp)) {
                if (k->gen == shim_fork_gen && strcmp(k->name, bname) == 0) {
                        *pp = k->next;
                        ipcb_shm_close(k->shm);
                        free(k);
                } else {
                        pp = &k->next;
                }
        }
}

/* Open or create bname as oflag asks.  *ret_fd: a new O_CLOEXEC
 * descriptor with the access asked.  *ret_shm: in transient mode the
 * handle to keep, else NULL (an open of an existing segment then asks for
 * the descriptor alone: one request, no handle to close).  Lock held. */
static int serve_open(ipcb_client *c, const char *bname, int oflag, mode_t mode, int *ret_fd,
                      ipcb_shm **ret_shm) {
        int access = (oflag & O_ACCMODE) == O_RDONLY ? IPCB_READ_ONLY : IPCB_READ_WRITE;
        ipcb_shm_options opts = IPCB_SHM_OPTIONS_INIT;
        bool fd_only = !shim_cfg.transient;
        ipcb_shm *s = NULL, *ro;
        bool created = false;
        int fd = -1, r = -ENOENT;

        /* The umask costs a read of /proc/self/status: only a create needs it. */
        if (oflag & O_CREAT)
                opts.mode = (unsigned)(mode & ~shim_umask()) & 0777u;
        opts.flags = IPCB_SHM_GROWABLE | (shim_cfg.transient ? 0 : IPCB_SHM_PERSISTENT);
        /* Open-or-create races with other processes doing the same: loop
         * until one of the two succeeds (bounded: each turn means someone
         * else created or removed the name meanwhile). */
        for (int turn = 0; turn < 100; turn++) {
                if (!((oflag & O_CREAT) && (oflag & O_EXCL))) {
                        r = fd_only ? ipcb_shm_open_fd(c, bname, access, NULL, &fd, NULL)
                                    : ipcb_shm_open(c, bname, access, &s);
                        if (r == -EOPNOTSUPP) { /* an older broker */
                                fd_only = false;
                                r = ipcb_shm_open(c, bname, access, &s);
                        }
                        if (r == 0 || r != -ENOENT || !(oflag & O_CREAT))
                                break;
                }
                r = ipcb_shm_create(c, bname, 0, &opts, &s);
                if (r == 0) {
                        created = true;
                        break;
                }
                if (r != -EEXIST || (oflag & O_EXCL))
                        break;
        }
        if (r < 0)
                return r;
        if (created && access == IPCB_READ_ONLY) {
                /* Created read-write (the only way to create); hand out the
                 * read-only description that was asked for. */
                r = ipcb_shm_open(c, bname, IPCB_READ_ONLY, &ro);
                ipcb_shm_close(s);
                if (r < 0)
                        return r;
                s = ro;
        }
        /* F_DUPFD_CLOEXEC: shm_open's fd is close-on-exec. */
        if (s && (fd = fcntl(ipcb_shm_fd(s), F_DUPFD_CLOEXEC, 3)) < 0) {
                r = -errno;
                ipcb_shm_close(s);
                return r;
        }
        if ((oflag & O_TRUNC) && !created) {
                struct stat st;
                /* Shrinking is sealed away: only an empty segment can be
                 * "truncated" (documented). */
                if (access != IPCB_READ_WRITE)
                        r = -EACCES;
                else if (fstat(fd, &st) < 0)
                        r = -errno;
                else if (st.st_size != 0)
                        r = -EPERM;
                if (r < 0) {
                        close(fd);
                        ipcb_shm_close(s);
                        return r;
                }
        }
        if (s && !shim_cfg.transient) {
                ipcb_shm_close(s);
                s = NULL;
        }
        *ret_fd = fd;
        *ret_shm = s;
        return 0;
}

__attribute__((visibility("default"))) int shm_open(const char *name, int oflag, mode_t mode) {
        char what[NAME_MAX + 2], bname[IPCB_NAME_MAX + 1];
        const char *n;
        ipcb_client *c;
        ipcb_shm *s = NULL;
        int err, fd = -1, r;

        if (!(n = shim_posix_strip(name, &err))) {
                errno = err;
                return -1;
        }
        what[0] = '/';
        strcpy(what + 1, n);
        pthread_mutex_lock(&shim_lock);
        switch (shim_route_call(what, &c, &err)) {
        case SHIM_PASS:
                pthread_mutex_unlock(&shim_lock);
                return SHIM_NEXT(int (*)(const char *, int, mode_t), shm_open)(name, oflag, mode);
        case SHIM_FAIL:
                pthread_mutex_unlock(&shim_lock);
                errno = err;
                return -1;
        case SHIM_SERVE:
                break;
        }
        if ((oflag & O_ACCMODE) == O_WRONLY || (oflag & O_ACCMODE) == O_ACCMODE) {
                r = -EINVAL; /* a segment is opened for reading, or reading and writing */
        } else if ((r = shim_posix_name(n, "shm", bname)) == 0 &&
                   (r = serve_open(c, bname, oflag, mode, &fd, &s)) == 0 && s) {
                keep_or_close(s, bname);
        }
        pthread_mutex_unlock(&shim_lock);
        return r < 0 ? shim_fail(r) : fd;
}

__attribute__((visibility("default"))) int shm_unlink(const char *name) {
        char what[NAME_MAX + 2], bname[IPCB_NAME_MAX + 1];
        const char *n;
        ipcb_client *c;
        int err, r;

        if (!(n = shim_posix_strip(name, &err))) {
                errno = err;
                return -1;
        }
        what[0] = '/';
        strcpy(what + 1, n);
        pthread_mutex_lock(&shim_lock);
        switch (shim_route_call(what, &c, &err)) {
        case SHIM_PASS:
                pthread_mutex_unlock(&shim_lock);
                return SHIM_NEXT(int (*)(const char *), shm_unlink)(name);
        case SHIM_FAIL:
                pthread_mutex_unlock(&shim_lock);
                errno = err;
                return -1;
        case SHIM_SERVE:
                break;
        }
        r = shim_posix_name(n, "shm", bname);
        if (r == 0)
                r = ipcb_unlink(c, bname);
        if (r == 0)
                kept_release(bname);
        pthread_mutex_unlock(&shim_lock);
        if (r == -EPERM) /* POSIX: not the owner is EACCES */
                r = -EACCES;
        return r < 0 ? shim_fail(r) : 0;
}
