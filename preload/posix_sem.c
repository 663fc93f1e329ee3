/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* posix_sem.c: sem_open, sem_close and sem_unlink served by the broker.
 * A named semaphore is a one-page broker segment holding a process-shared
 * glibc sem_t, so that glibc's own sem_wait, sem_post, sem_timedwait and
 * sem_getvalue work on it unchanged.  No opener can see a half-made one:
 * the creator makes the page in a memfd of its own, runs sem_init on it,
 * seals its size and only then publishes it under the name
 * (ipcb_shm_register), which fails with -EEXIST if someone was first. */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEMPAGE_SIZE 4096u
#define SEMPAGE_MAGIC 0x4d45535042434950ull /* "PICBPSEM" */
#define SEMPAGE_VERSION 1u

typedef struct sem_page {
        uint64_t magic;
        uint32_t version;
        uint32_t reserved;
        uint8_t pad[48];
        sem_t sem; /* at 64: its own cache line */
} sem_page;
_Static_assert(sizeof(sem_page) <= SEMPAGE_SIZE, "sem page");

/* sem_open of a name this process has open already returns the same
 * sem_t (as glibc does), counted; the handle keeps the mapping. */
typedef struct open_sem {
        struct open_sem *next;
        ipcb_shm *shm;
        sem_t *sem;
        dev_t dev; /* the page's inode */
        ino_t ino;
        unsigned refs;
        unsigned gen; /* shim_fork_gen at open */
} open_sem;
static open_sem *sems;

static int page_check(ipcb_shm *s) {
        const sem_page *p = ipcb_shm_data(s);

        if (!p || ipcb_shm_size(s) != SEMPAGE_SIZE || p->magic != SEMPAGE_MAGIC ||
            p->version != SEMPAGE_VERSION)
                return -EINVAL; /* a segment, but not one of our semaphores */
        return 0;
}

/* Make the page in a private memfd and publish it as bname.  Lock held. */
static int sem_create(ipcb_client *c, const char *bname, mode_t mode, unsigned value,
                      ipcb_shm **ret) {
        ipcb_shm_options opts = IPCB_SHM_OPTIONS_INIT;
        sem_page *p;
        int fd, r;

        fd = memfd_create("ipcbroker-sem", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0 && (errno == ENOSYS || errno == EPERM)) {
                /* a sandbox without memfd_create: the broker makes it */
                if ((r = ipcb_memfd_sealed(c, SEMPAGE_SIZE, 0, &fd, NULL)) < 0)
                        return r;
        } else if (fd < 0) {
                return -errno;
        }
        if (ftruncate(fd, SEMPAGE_SIZE) < 0 ||
            (p = mmap(NULL, SEMPAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) ==
                    MAP_FAILED) {
                r = -errno;
                close(fd);
                return r;
        }
        p->magic = SEMPAGE_MAGIC;
        p->version = SEMPAGE_VERSION;
        sem_init(&p->sem, 1, value);
        munmap(p, SEMPAGE_SIZE);
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        opts.mode = (unsigned)(mode & ~shim_umask()) & 0777u;
        opts.flags = shim_cfg.transient ? 0 : IPCB_SHM_PERSISTENT;
        r = ipcb_shm_register(c, bname, fd, &opts, ret);
        close(fd);
        return r;
}

static sem_t *serve_open(ipcb_client *c, const char *bname, int oflag, mode_t mode,
                         unsigned value) {
        ipcb_shm *s = NULL;
        struct stat st = { 0 };
        open_sem *o;
        int r = -ENOENT;

        if ((oflag & O_CREAT) && value > SEM_VALUE_MAX) {
                errno = EINVAL;
                return SEM_FAILED;
        }
        for (int turn = 0; turn < 100; turn++) {
                if (!((oflag & O_CREAT) && (oflag & O_EXCL))) {
                        r = ipcb_shm_open(c, bname, IPCB_READ_WRITE, &s);
                        if (r == 0 || r != -ENOENT || !(oflag & O_CREAT))
                                break;
                }
                r = sem_create(c, bname, mode, value, &s);
                if (r == 0 || r != -EEXIST || (oflag & O_EXCL))
                        break;
        }
        if (r == 0 && (r = page_check(s)) < 0)
                ipcb_shm_close(s);
        if (r == 0 && fstat(ipcb_shm_fd(s), &st) == 0)
                /* Open here already (the same inode, as glibc compares):
                 * the same sem_t, counted. */
                for (o = sems; o; o = o->next)
                        if (o->gen == shim_fork_gen && o->dev == st.st_dev && o->ino == st.st_ino) {
                                ipcb_shm_close(s);
                                o->refs++;
                                return o->sem;
                        }
        if (r == 0 && !(o = calloc(1, sizeof(*o)))) {
                r = -ENOMEM;
                ipcb_shm_close(s);
        }
        if (r < 0) {
                shim_fail(r);
                return SEM_FAILED;
        }
        o->shm = s;
        o->sem = &((sem_page *)ipcb_shm_data(s))->sem;
        o->dev = st.st_dev;
        o->ino = st.st_ino;
        o->refs = 1;
        o->gen = shim_fork_gen;
        o->next = sems;
        sems = o;
        return o->sem;
}

__attribute__((visibility("default"))) sem_t *sem_open(const char *name, int oflag, ...) {
        char what[NAME_MAX + 2], bname[IPCB_NAME_MAX + 1];
        unsigned value = 0;
        mode_t mode = 0;
        const char *n;
        ipcb_client *c;
        sem_t *ret;
        int err, r;

        if (oflag & O_CREAT) {
                va_list ap;
                va_start(ap, oflag);
                mode = va_arg(ap, mode_t);
                value = va_arg(ap, unsigned);
                va_end(ap);
        }
        if (!(n = shim_posix_strip(name, &err))) {
                errno = err;
                return SEM_FAILED;
        }
        what[0] = '/';
        strcpy(what + 1, n);
        pthread_mutex_lock(&shim_lock);
        switch (shim_route_call(what, &c, &err)) {
        case SHIM_PASS:
                pthread_mutex_unlock(&shim_lock);
                return SHIM_NEXT(sem_t * (*)(const char *, int, ...), sem_open)(name, oflag, mode,
                                                                                 value);
        case SHIM_FAIL:
                pthread_mutex_unlock(&shim_lock);
                errno = err;
                return SEM_FAILED;
        case SHIM_SERVE:
                break;
        }
        if ((r = shim_posix_name(n, "sem", bname)) < 0) {
                shim_fail(r);
                ret = SEM_FAILED;
        } else {
                ret = serve_open(c, bname, oflag, mode, value);
        }
        pthread_mutex_unlock(&shim_lock);
        return ret;
}

__attribute__((visibility("default"))) int sem_close(sem_t *sem) {
        open_sem **pp, *o;

        pthread_mutex_lock(&shim_lock);
        for (pp = &sems; (o = *pp); pp = &o->next)
                if (o->sem == sem)
                        break;
        if (!o) {
                pthread_mutex_unlock(&shim_lock);
                return SHIM_NEXT(int (*)(sem_t *), sem_close)(sem);
        }
        if (o->gen == shim_fork_gen && --o->refs > 0) {
                pthread_mutex_unlock(&shim_lock);
                return 0;
        }
        *pp = o->next;
        if (o->gen == shim_fork_gen) {
                ipcb_shm_close(o->shm);
        } else {
                /* Inherited across fork: the handle is the parent's (its
                 * connection); only this process's mapping and fd go. */
                munmap(ipcb_shm_data(o->shm), SEMPAGE_SIZE);
                close(ipcb_shm_fd(o->shm));
        }
        free(o);
        pthread_mutex_unlock(&shim_lock);
        return 0;
}

__attribute__((visibility("default"))) int sem_unlink(const char *name) {
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
                return SHIM_NEXT(int (*)(const char *), sem_unlink)(name);
        case SHIM_FAIL:
                pthread_mutex_unlock(&shim_lock);
                errno = err;
                return -1;
        case SHIM_SERVE:
                break;
        }
        r = shim_posix_name(n, "sem", bname);
        if (r == 0)
                r = ipcb_unlink(c, bname);
        pthread_mutex_unlock(&shim_lock);
        if (r == -EPERM) /* POSIX: not the owner is EACCES */
                r = -EACCES;
        return r < 0 ? shim_fail(r) : 0;
}
