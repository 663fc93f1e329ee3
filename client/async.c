/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* async.c: the asynchronous twins of the blocking requests.  Each checks
 * its arguments as the blocking call does, builds the same request and
 * hands it to loop.c; when the answer is in, async_complete() turns it into
 * what the blocking call would have returned (a handle, an info, a status)
 * and runs the callback. */
#include "internal.h"

#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

/* Make the entry, send, or free it again on failure. */
int async_submit(ipcb_client *c, ipcb_msg *req, int what, const char *name, union async_cb cb,
                 void *userdata, client_async *tmpl, uint64_t *ret_cookie) {
        client_async *e;
        int r;

        if (!cb.done && what != ASYNC_WATCH) /* the members share one representation */
                return -EINVAL;
        e = async_new();
        if (!e)
                return -ENOMEM;
        if (tmpl) {
                e->access = tmpl->access;
                e->flags = tmpl->flags;
                e->size = tmpl->size;
        }
        e->what = what;
        e->userdata = userdata;
        e->cb = cb;
        if (name && !(e->name = strdup(name))) {
                async_free(e);
                return -ENOMEM;
        }
        r = loop_submit(c, req, e, -1, ret_cookie);
        if (r < 0)
                async_free(e);
        return r;
}

static void call_back(ipcb_client *c, client_async *e, int status, void *result) {
        switch (e->what) {
        case ASYNC_SHM:
                e->cb.shm(c, status, status == 0 ? result : NULL, e->userdata);
                break;
        case ASYNC_SEM:
                e->cb.sem(c, status, status == 0 ? result : NULL, e->userdata);
                break;
        case ASYNC_STAT:
                e->cb.stat(c, status, status == 0 ? result : NULL, e->userdata);
                break;
        default:
                e->cb.done(c, status, e->userdata);
                break;
        }
}

/* The checks client_call_once makes of a reply, then the blocking call's
 * own finishing step. */
void async_complete(ipcb_client *c, client_async *e) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        void *result = NULL;
        ipcb_msg reply;
        uint64_t h;
        int fd = -1, r;

        if (e->what == ASYNC_EVENT) {
                watch_dispatch(c, e);
                return;
        }
        if (!e->has_reply) {
                if (e->what == ASYNC_WATCH)
                        watch_add_complete(c, e, e->status < 0 ? e->status : -EPROTO);
                else
                        call_back(c, e, e->status < 0 ? e->status : -EPROTO, NULL);
                return;
        }
        r = ipcb_proto_decode(e->rbuf, e->rlen, e->rlost ? e->rbuf[2] : e->rnfds, &reply);
        if (r == 0 && reply.hdr.op != (e->op | IPCB_OP_REPLY))
                r = -EPROTO;
        else if (r < 0)
                r = -EPROTO;
        else if (e->stale)
                r = -ENOTCONN; /* its handle died with its connection */
        else if (reply.hdr.status < 0)
                r = reply.hdr.status;
        else if (e->rlost) {
                if (client_reply_handle(&reply, &h))
                        (void)client_release_handle(c, h);
                r = -EMFILE;
        }
        if (e->rnfds > 0)
                fd = e->rfds[0];
        for (unsigned i = 1; i < e->rnfds; i++)
                close(e->rfds[i]);
        e->rnfds = 0;
        if (r < 0) {
                if (fd >= 0)
                        close(fd);
                if (e->what == ASYNC_WATCH)
                        watch_add_complete(c, e, r);
                else
                        call_back(c, e, r, NULL);
                return;
        }
        switch (e->what) {
        case ASYNC_SHM:
                r = client_shm_finish(c, e->name, &reply, fd, e->access, (ipcb_shm **)&result);
                break;
        case ASYNC_SEM:
                r = client_sem_finish(c, e->name, e->flags, &reply, fd, (ipcb_sem **)&result);
                break;
        case ASYNC_STAT:
                r = client_info_from_rec(&reply.stat_reply, &info);
                result = &info;
                break;
        case ASYNC_FREEZE:
                r = (int)(reply.freeze_reply.seals & 0x7fffffffu);
                break;
        case ASYNC_MEMFD: {
                /* Trust the memfd, not the message. */
                struct stat st;
                if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
                    (uint64_t)st.st_size != e->size) {
                        if (fd >= 0)
                                close(fd);
                        r = -EPROTO;
                } else
                        r = fd;
                fd = -1;
                break;
        }
        case ASYNC_WATCH:
                watch_add_complete(c, e, 0);
                return;
        default:
                r = 0;
                break;
        }
        if (fd >= 0 && e->what != ASYNC_SHM && e->what != ASYNC_SEM)
                close(fd);
        call_back(c, e, r, result);
}

int ipcb_shm_create_async(ipcb_client *c, const char *name, size_t size,
                          const ipcb_shm_options *opts, ipcb_shm_cb cb, void *userdata,
                          uint64_t *ret_cookie) {
        ipcb_msg req = { .hdr.op = IPCB_OP_SHM_CREATE };
        client_async t = { .access = IPCB_READ_WRITE };
        unsigned mode = 0600, flags = 0;
        int r;

        if (!c)
                return -EINVAL;
        if ((r = client_name_check(name, &req.shm_create.name)) < 0)
                return r;
        if (opts) {
                if (opts->struct_size < offsetof(ipcb_shm_options, mode) + sizeof(opts->mode))
                        return -EINVAL;
                mode = opts->mode;
                if (opts->struct_size >= offsetof(ipcb_shm_options, flags) + sizeof(opts->flags))
                        flags = opts->flags;
        }
        if (size == 0 || (mode & ~IPCB_MODE_MASK) || (flags & ~IPCB_WF_CREATE_MASK))
                return -EINVAL;
        req.shm_create.size = size;
        req.shm_create.mode = mode;
        req.shm_create.flags = flags;
        return async_submit(c, &req, ASYNC_SHM, name,
                      (union async_cb){ .shm = cb }, userdata, &t, ret_cookie);
}

int ipcb_shm_open_async(ipcb_client *c, const char *name, int access,
                        const ipcb_open_options *opts, ipcb_shm_cb cb, void *userdata,
                        uint64_t *ret_cookie) {
        ipcb_msg req = { .hdr.op = IPCB_OP_SHM_OPEN };
        client_async t = { .access = access };
        int r;

        if (!c)
                return -EINVAL;
        if ((r = client_name_check(name, &req.shm_open.name)) < 0)
                return r;
        if (access != IPCB_READ_ONLY && access != IPCB_READ_WRITE)
                return -EINVAL;
        r = client_open_options(opts, IPCB_OPEN_OWNED, &req.shm_open.flags, &req.shm_open.owner);
        if (r < 0)
                return r;
        req.shm_open.access = (uint32_t)access;
        return async_submit(c, &req, ASYNC_SHM, name,
                      (union async_cb){ .shm = cb }, userdata, &t, ret_cookie);
}

int ipcb_sem_create_async(ipcb_client *c, const char *name, unsigned initial,
                          const ipcb_sem_options *opts, ipcb_sem_cb cb, void *userdata,
                          uint64_t *ret_cookie) {
        ipcb_msg req = { .hdr.op = IPCB_OP_SEM_CREATE };
        unsigned mode = 0600, flags = 0, max = IPCB_SEM_VALUE_MAX;
        client_async t = { 0 };
        int r;

        if (!c)
                return -EINVAL;
        if ((r = client_name_check(name, &req.sem_create.name)) < 0)
                return r;
        if (opts) {
                if (opts->struct_size < offsetof(ipcb_sem_options, max) + sizeof(opts->max))
                        return -EINVAL;
                mode = opts->mode;
                flags = opts->flags;
                max = opts->max ? opts->max : IPCB_SEM_VALUE_MAX;
        }
        if ((mode & ~IPCB_MODE_MASK) || (flags & ~(IPCB_SEM_PERSISTENT | IPCB_SEM_UNDO)) ||
            max > IPCB_SEM_VALUE_MAX || initial > max)
                return -EINVAL;
        req.sem_create.initial = initial;
        req.sem_create.max = max;
        req.sem_create.mode = mode;
        req.sem_create.flags = flags;
        t.flags = flags & IPCB_SEM_UNDO;
        return async_submit(c, &req, ASYNC_SEM, name,
                      (union async_cb){ .sem = cb }, userdata, &t, ret_cookie);
}

int ipcb_sem_open_async(ipcb_client *c, const char *name, const ipcb_open_options *opts,
                        ipcb_sem_cb cb, void *userdata, uint64_t *ret_cookie) {
        ipcb_msg req = { .hdr.op = IPCB_OP_SEM_OPEN };
        client_async t = { 0 };
        int r;

        if (!c)
                return -EINVAL;
        if ((r = client_name_check(name, &req.sem_open.name)) < 0)
                return r;
        r = client_open_options(opts, IPCB_SEM_UNDO | IPCB_OPEN_OWNED, &req.sem_open.flags,
                                &req.sem_open.owner);
        if (r < 0)
                return r;
        t.flags = req.sem_open.flags & IPCB_SEM_UNDO;
        return async_submit(c, &req, ASYNC_SEM, name,
                      (union async_cb){ .sem = cb }, userdata, &t, ret_cookie);
}

int ipcb_stat_async(ipcb_client *c, int kind, const char *name, ipcb_stat_cb cb, void *userdata,
                    uint64_t *ret_cookie) {
        ipcb_msg req = { .hdr.op = IPCB_OP_STAT };
        int r;

        if (!c || (kind != IPCB_KIND_SHM && kind != IPCB_KIND_SEM))
                return -EINVAL;
        if ((r = client_name_check(name, &req.stat.name)) < 0)
                return r;
        req.stat.kind = (uint8_t)kind;
        return async_submit(c, &req, ASYNC_STAT, NULL,
                      (union async_cb){ .stat = cb }, userdata, NULL, ret_cookie);
}

int ipcb_unlink_async(ipcb_client *c, int kind, const char *name, ipcb_done_cb cb,
                      void *userdata, uint64_t *ret_cookie) {
        ipcb_msg req = { .hdr.op = IPCB_OP_UNLINK };
        int r;

        if (!c || (kind != IPCB_KIND_SHM && kind != IPCB_KIND_SEM))
                return -EINVAL;
        if ((r = client_name_check(name, &req.unlink.name)) < 0)
                return r;
        req.unlink.kind = (uint8_t)kind;
        return async_submit(c, &req, ASYNC_DONE, NULL,
                      (union async_cb){ .done = cb }, userdata, NULL, ret_cookie);
}

int ipcb_shm_freeze_async(ipcb_client *c, const char *name, ipcb_done_cb cb, void *userdata,
                          uint64_t *ret_cookie) {
        ipcb_msg req = { .hdr.op = IPCB_OP_FREEZE };
        int r;

        if (!c)
                return -EINVAL;
        if ((r = client_name_check(name, &req.freeze.name)) < 0)
                return r;
        req.freeze.kind = IPCB_KIND_SHM;
        return async_submit(c, &req, ASYNC_FREEZE, NULL,
                      (union async_cb){ .done = cb }, userdata, NULL, ret_cookie);
}

int ipcb_set_access_async(ipcb_client *c, int kind, const char *name, const ipcb_access *acc,
                          ipcb_done_cb cb, void *userdata, uint64_t *ret_cookie) {
        ipcb_msg req = { .hdr.op = IPCB_OP_SET_ACCESS };
        int r;

        if (!c || !acc || acc->struct_size < offsetof(ipcb_access, gid) + sizeof(acc->gid) ||
            (kind != IPCB_KIND_SHM && kind != IPCB_KIND_SEM) || acc->what == 0 ||
            (acc->what & ~(unsigned)IPCB_SA_MASK))
                return -EINVAL;
        if ((acc->what & IPCB_ACCESS_MODE) && (acc->mode & ~IPCB_MODE_MASK))
                return -EINVAL;
        if ((r = client_name_check(name, &req.set_access.name)) < 0)
                return r;
        req.set_access.kind = (uint8_t)kind;
        req.set_access.what = acc->what;
        if (acc->what & IPCB_ACCESS_MODE)
                req.set_access.mode = acc->mode;
        if (acc->what & IPCB_ACCESS_UID)
                req.set_access.uid = (uint32_t)acc->uid;
        if (acc->what & IPCB_ACCESS_GID)
                req.set_access.gid = (uint32_t)acc->gid;
        return async_submit(c, &req, ASYNC_DONE, NULL,
                      (union async_cb){ .done = cb }, userdata, NULL, ret_cookie);
}

int ipcb_memfd_sealed_async(ipcb_client *c, size_t size, unsigned seals, ipcb_done_cb cb,
                            void *userdata, uint64_t *ret_cookie) {
        ipcb_msg req = { .hdr.op = IPCB_OP_MEMFD };
        client_async t = { .size = size };

        if (!c || size == 0 ||
            (seals & ~(unsigned)(F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
                                 F_SEAL_FUTURE_WRITE)))
                return -EINVAL;
        req.memfd.size = size;
        req.memfd.seals = seals;
        return async_submit(c, &req, ASYNC_MEMFD, NULL,
                      (union async_cb){ .done = cb }, userdata, &t, ret_cookie);
}

int ipcb_sync_async(ipcb_client *c, ipcb_done_cb cb, void *userdata, uint64_t *ret_cookie) {
        ipcb_msg req = { .hdr.op = IPCB_OP_HELLO };

        if (!c)
                return -EINVAL;
        req.hello.version = IPCB_PROTO_VERSION;
        return async_submit(c, &req, ASYNC_DONE, NULL,
                      (union async_cb){ .done = cb }, userdata, NULL, ret_cookie);
}

int ipcb_shm_unlink(ipcb_client *c, const char *name) {
        return client_unlink(c, IPCB_KIND_SHM, name);
}
