/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sysv_shm.c: shmget, shmat, shmdt and shmctl served by the broker.  A key
 * names a broker segment (PREFIX "sysv-shm." + 8 hex digits; IPC_PRIVATE a
 * name of its own), an id is an index into this process's table (stable
 * within the process and its forked children).  Every shmat is a broker
 * handle, so that shm_nattch (IPC_STAT) counts attachments over all
 * processes (shmat at a given address maps the handle's memfd there).
 * Created segments are persistent until IPC_RMID, as in the
 * kernel; in transient mode the creator keeps a handle until it exits
 * instead, and the segment dies with the last process holding it. */
#include "sysv.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <time.h>
#include <unistd.h>

#define SHM_IDS_MAX 4096

typedef struct shm_ent {
        bool used;
        key_t key;
        char name[IPCB_NAME_MAX + 1];
        ipcb_shm *kept;   /* transient mode: the creator's handle */
        unsigned kept_gen;
} shm_ent;
static shm_ent shm_ids[SHM_IDS_MAX];

typedef struct attach {
        struct attach *next;
        void *addr;
        size_t own_len; /* > 0: a mapping of our own at a given address */
        int id;
        ipcb_shm *shm;
        unsigned gen;
} attach;
static attach *attaches;

static shm_ent *ent_of(int id) {
        unsigned i = (unsigned)id - SYSV_ID_BASE;

        if (id < SYSV_ID_BASE || i >= SHM_IDS_MAX || !shm_ids[i].used)
                return NULL;
        return &shm_ids[i];
}

/* The id of key's entry, making one.  Lock held.  -ENOSPC when full. */
static int ent_for(key_t key, const char *name) {
        int free_i = -1;

        for (int i = 0; i < SHM_IDS_MAX; i++) {
                if (shm_ids[i].used && strcmp(shm_ids[i].name, name) == 0)
                        return SYSV_ID_BASE + i;
                if (!shm_ids[i].used && free_i < 0)
                        free_i = i;
        }
        if (free_i < 0)
                return -ENOSPC;
        shm_ids[free_i] = (shm_ent){ .used = true, .key = key };
        snprintf(shm_ids[free_i].name, sizeof(shm_ids[free_i].name), "%s", name);
        return SYSV_ID_BASE + free_i;
}

static int serve_get(ipcb_client *c, key_t key, size_t size, int flg) {
        ipcb_shm_options opts = IPCB_SHM_OPTIONS_INIT;
        char name[IPCB_NAME_MAX + 1];
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ipcb_shm *s = NULL;
        bool create = key == IPC_PRIVATE || (flg & IPC_CREAT);
        int r, id;

        if ((r = sysv_name(key, "shm", name)) < 0)
                return r;
        opts.mode = (unsigned)flg & 0777u;
        opts.flags = shim_cfg.transient ? 0 : IPCB_SHM_PERSISTENT;
        for (int turn = 0; turn < 100; turn++) {
                if (key == IPC_PRIVATE || (create && (flg & IPC_EXCL))) {
                        r = -ENOENT;
                } else {
                        r = ipcb_stat(c, IPCB_KIND_SHM, name, &info);
                        if (r == 0) {
                                if (size > info.size)
                                        return -EINVAL;
                                break;
                        }
                }
                if (r != -ENOENT || !create)
                        return r;
                if (size == 0)
                        return -EINVAL; /* SHMMIN */
                r = ipcb_shm_create(c, name, size, &opts, &s);
                if (r == 0 || r != -EEXIST || (flg & IPC_EXCL))
                        break;
        }
        if (r < 0)
                return r;
        if ((id = ent_for(key, name)) < 0) {
                if (s) {
                        ipcb_shm_close(s);
                        (void)ipcb_unlink(c, name);
                }
                return id;
        }
        if (s && shim_cfg.transient) {
                shm_ent *e = ent_of(id);
                ipcb_shm_close(e->kept_gen == shim_fork_gen ? e->kept : NULL);
                e->kept = s;
                e->kept_gen = shim_fork_gen;
        } else if (s) {
                ipcb_shm_close(s);
        }
        return id;
}

__attribute__((visibility("default"))) int shmget(key_t key, size_t size, int shmflg) {
        char what[16];
        ipcb_client *c;
        int err, r;

        snprintf(what, sizeof(what), "0x%08x", (unsigned)key);
        pthread_mutex_lock(&shim_lock);
        switch (sysv_route(what, &c, &err)) {
        case SHIM_PASS:
                pthread_mutex_unlock(&shim_lock);
                return SHIM_NEXT(int (*)(key_t, size_t, int), shmget)(key, size, shmflg);
        case SHIM_FAIL:
                pthread_mutex_unlock(&shim_lock);
                errno = err;
                return -1;
        case SHIM_SERVE:
                break;
        }
        r = serve_get(c, key, size, shmflg);
        pthread_mutex_unlock(&shim_lock);
        return r < 0 ? shim_fail(r) : r;
}

__attribute__((visibility("default"))) void *shmat(int shmid, const void *shmaddr, int shmflg) {
        int access = (shmflg & SHM_RDONLY) ? IPCB_READ_ONLY : IPCB_READ_WRITE;
        ipcb_client *c;
        ipcb_shm *s = NULL;
        attach *a = NULL;
        shm_ent *e;
        int err, r;

        pthread_mutex_lock(&shim_lock);
        if (!(e = ent_of(shmid))) {
                pthread_mutex_unlock(&shim_lock);
                return SHIM_NEXT(void *(*)(int, const void *, int), shmat)(shmid, shmaddr, shmflg);
        }
        if (sysv_route(NULL, &c, &err) != SHIM_SERVE) {
                pthread_mutex_unlock(&shim_lock);
                errno = EIDRM;
                return (void *)-1;
        }
        uintptr_t at = (uintptr_t)shmaddr;
        void *addr = NULL;
        size_t len = 0;

        if (shmflg & SHM_RND)
                at &= ~(uintptr_t)(SHMLBA - 1);
        if (at % (uintptr_t)sysconf(_SC_PAGESIZE) != 0)
                r = -EINVAL;
        else if ((r = ipcb_shm_open(c, e->name, access, &s)) == -ENOENT)
                r = -EIDRM; /* removed (IPC_RMID) */
        else if (r == 0 && !(a = calloc(1, sizeof(*a))))
                r = -ENOMEM;
        if (r == 0 && at) {
                /* at a given address: a mapping of our own of the handle's
                 * fd; SHM_REMAP may replace what is there, else nothing */
                int fixed = (shmflg & SHM_REMAP) ? MAP_FIXED : MAP_FIXED_NOREPLACE;
                bool held = false;
                uintptr_t lib = (uintptr_t)ipcb_shm_data(s);
                len = ipcb_shm_size(s);
                if (lib < at + len && at < lib + len) {
                        /* the library's own mapping took (part of) the
                         * place: hold the place, then open again */
                        ipcb_shm_close(s);
                        s = NULL;
                        addr = mmap((void *)at, len, PROT_NONE,
                                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | fixed, -1, 0);
                        if (addr == MAP_FAILED)
                                r = errno == EEXIST ? -EINVAL : -errno;
                        else if ((r = ipcb_shm_open(c, e->name, access, &s)) < 0)
                                munmap(addr, len);
                        else
                                held = true;
                        if (r == -ENOENT)
                                r = -EIDRM;
                        fixed = MAP_FIXED; /* over the placeholder */
                }
                if (r == 0) {
                        addr = mmap((void *)at, len,
                                    access == IPCB_READ_ONLY ? PROT_READ : PROT_READ | PROT_WRITE,
                                    MAP_SHARED | fixed, ipcb_shm_fd(s), 0);
                        if (addr == MAP_FAILED) {
                                r = errno == EEXIST ? -EINVAL : -errno;
                                if (held)
                                        munmap((void *)at, len); /* the placeholder */
                        }
                }
        } else if (r == 0) {
                addr = ipcb_shm_data(s);
        }
        if (r < 0) {
                if (s)
                        ipcb_shm_close(s);
                free(a);
                pthread_mutex_unlock(&shim_lock);
                shim_fail(r);
                return (void *)-1;
        }
        *a = (attach){ .next = attaches, .addr = addr, .own_len = len, .id = shmid, .shm = s,
                       .gen = shim_fork_gen };
        attaches = a;
        pthread_mutex_unlock(&shim_lock);
        return a->addr;
}

__attribute__((visibility("default"))) int shmdt(const void *shmaddr) {
        attach **pp, *a;

        pthread_mutex_lock(&shim_lock);
        for (pp = &attaches; (a = *pp); pp = &a->next)
                if (a->addr == shmaddr)
                        break;
        if (!a) {
                pthread_mutex_unlock(&shim_lock);
                return SHIM_NEXT(int (*)(const void *), shmdt)(shmaddr);
        }
        *pp = a->next;
        if (a->own_len)
                munmap(a->addr, a->own_len);
        if (a->gen == shim_fork_gen) {
                ipcb_shm_close(a->shm);
        } else {
                /* attached by the parent before fork: its handle is the
                 * parent's; only this process's mapping and fd go */
                munmap(ipcb_shm_data(a->shm), ipcb_shm_size(a->shm));
                close(ipcb_shm_fd(a->shm));
        }
        free(a);
        pthread_mutex_unlock(&shim_lock);
        return 0;
}

/* Handles this process holds on e's segment that are not attachments
 * (the creator's kept handle, transient mode). */
static unsigned kept_here(const shm_ent *e) {
        return e->kept && e->kept_gen == shim_fork_gen ? 1 : 0;
}

static int serve_ctl(ipcb_client *c, shm_ent *e, int cmd, struct shmid_ds *buf) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        int r;

        switch (cmd) {
        case IPC_STAT:
                if ((r = ipcb_stat(c, IPCB_KIND_SHM, e->name, &info)) < 0)
                        return r == -ENOENT ? -EIDRM : r;
                memset(buf, 0, sizeof(*buf));
                buf->shm_perm.__key = e->key;
                buf->shm_perm.uid = buf->shm_perm.cuid = info.uid;
                buf->shm_perm.gid = buf->shm_perm.cgid = info.gid;
                buf->shm_perm.mode = (unsigned short)info.mode;
                buf->shm_segsz = info.size;
                buf->shm_nattch = info.handles > kept_here(e) ? info.handles - kept_here(e) : 0;
                buf->shm_ctime = time(NULL);
                return 0;
        case IPC_RMID:
                r = ipcb_unlink(c, e->name);
                if (r == -ENOENT)
                        r = -EIDRM;
                if (r == 0 && e->kept && e->kept_gen == shim_fork_gen) {
                        ipcb_shm_close(e->kept);
                        e->kept = NULL;
                }
                if (r == 0) /* the id is gone; attachments stay until shmdt */
                        e->used = false;
                return r;
        case IPC_SET:
        case IPC_INFO:
        case SHM_INFO:
        case SHM_STAT:
        case SHM_LOCK:
        case SHM_UNLOCK:
                return -ENOSYS; /* documented: not served */
        default:
                return -EINVAL;
        }
}

__attribute__((visibility("default"))) int shmctl(int shmid, int cmd, struct shmid_ds *buf) {
        ipcb_client *c;
        shm_ent *e;
        int err, r;

        pthread_mutex_lock(&shim_lock);
        if (!(e = ent_of(shmid))) {
                pthread_mutex_unlock(&shim_lock);
                return SHIM_NEXT(int (*)(int, int, struct shmid_ds *), shmctl)(shmid, cmd, buf);
        }
        if (sysv_route(NULL, &c, &err) != SHIM_SERVE)
                r = -EIDRM;
        else if (cmd == IPC_STAT && !buf)
                r = -EFAULT;
        else
                r = serve_ctl(c, e, cmd, buf);
        pthread_mutex_unlock(&shim_lock);
        return r < 0 ? shim_fail(r) : 0;
}
