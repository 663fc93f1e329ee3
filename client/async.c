/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* async.c: the asynchronous twins of the blocking requests.  Each checks
 * its arguments as the blocking call does, builds the same request and
 * hands it to loop.c; when the answer is in, ipcb__async_complete() turns it into
 * what the blocking call would have returned (a handle, an info, a status)
 * and runs the callback.  A listing (ipcb_list_async, ipcb_quota_list_async)
 * is one request per page: each page's reply goes to the item callback,
 * and only then is the next page asked for (page_complete). */
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

/* Make the entry, send (with keep_fd, or -1, which the entry then owns),
 * or free it again on failure (keep_fd stays the caller's). */
static int submit(ipcb_client *c, ipcb_msg *req, int what, const char *name, union async_cb cb,
                  void *userdata, client_async *tmpl, int keep_fd, uint64_t *ret_cookie) {
        client_async *e;
        int r;

        if (!cb.done && what != ASYNC_WATCH) /* the members share one representation */
                return -EINVAL;
        e = ipcb__async_new();
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
                ipcb__async_free(e);
                return -ENOMEM;
        }
        e->keep_fd = keep_fd;
        r = ipcb__loop_submit(c, req, e, keep_fd, ret_cookie);
        if (r < 0) {
                e->keep_fd = -1;
                ipcb__async_free(e);
        }
        return r;
}

int ipcb__async_submit(ipcb_client *c, ipcb_msg *req, int what, const char *name, union async_cb cb,
                 void *userdata, client_async *tmpl, uint64_t *ret_cookie) {
        return submit(c, req, what, name, cb, userdata, tmpl, -1, ret_cookie);
}

/* Listing e was cancelled while its callbacks ran (true); else, if final,
 * its final call is about to run, which ipcb_cancel can no longer stop. */
static bool list_stopped(ipcb_client *c, client_async *e, bool final) {
        client_loop *l = c->loop;
        bool stop;

        pthread_mutex_lock(&l->qlock);
        stop = e->stop;
        if (!stop && final)
                e->ending = true;
        pthread_mutex_unlock(&l->qlock);
        return stop;
}

static void call_back(ipcb_client *c, client_async *e, int status, void *result) {
        switch (e->what) {
        case ASYNC_SHM:
        case ASYNC_REGISTER:
                e->cb.shm(c, status, status == 0 ? result : NULL, e->userdata);
                break;
        case ASYNC_SEM:
                e->cb.sem(c, status, status == 0 ? result : NULL, e->userdata);
                break;
        case ASYNC_STAT:
                e->cb.stat(c, status, status == 0 ? result : NULL, e->userdata);
                break;
        case ASYNC_QUOTA:
                e->cb.quota(c, status, status == 0 ? result : NULL, e->userdata);
                break;
        case ASYNC_LIST: /* the final call: its return value means nothing */
                if (!list_stopped(c, e, true))
                        (void)e->cb.list(c, status, NULL, e->userdata);
                break;
        case ASYNC_QUOTA_LIST:
                if (!list_stopped(c, e, true))
                        (void)e->cb.quota_list(c, status, NULL, e->userdata);
                break;
        default:
                e->cb.done(c, status, e->userdata);
                break;
        }
}

/* ---- listings ---- */

/* The request for listing e's page at e->cursor. */
static void page_request(const client_async *e, ipcb_msg *req) {
        if (e->what == ASYNC_LIST) {
                *req = (ipcb_msg){ .hdr.op = IPCB_OP_LIST };
                req->list.kind = (uint8_t)e->flags;
                req->list.max = 0; /* the broker fills a page */
                req->list.cursor = e->cursor;
        } else {
                *req = (ipcb_msg){ .hdr.op = IPCB_OP_QUOTA };
                req->quota.flags = IPCB_QF_ALL;
                req->quota.cursor = e->cursor;
        }
}

/* Send listing e again, for its next page, on the same connection. */
static int page_next(ipcb_client *c, client_async *e) {
        ipcb_msg req;

        free(e->rbuf);
        e->rbuf = NULL;
        e->rlen = 0;
        e->has_reply = e->rlost = e->stale = false;
        e->status = 0;
        e->same_conn = true;
        page_request(e, &req);
        return ipcb__loop_submit(c, &req, e, -1, NULL);
}

/* A page's records, copied out and checked whole as the blocking calls
 * do (a page that fails shows none of its records), into *ret (count n). */
static int page_items(const client_async *e, const ipcb_msg *reply, void **ret, unsigned *ret_n) {
        bool list = e->what == ASYNC_LIST;
        unsigned count = list ? reply->list_reply.count : reply->quota_reply.count, n = 0;
        size_t each = list ? sizeof(ipcb_object_info) : sizeof(ipcb_quota_info);
        ipcb_list_iter it;
        ipcb_stat_rec rec;
        void *items;

        items = calloc(count ? count : 1, each);
        if (!items)
                return -ENOMEM;
        if (!list) {
                for (n = 0; n < count; n++)
                        ipcb__client_quota_info(reply, n, (ipcb_quota_info *)items + n);
        } else {
                it = reply->list_reply.iter;
                while (n < count && ipcb__list_iter_next(&it, &rec)) {
                        if (ipcb__client_info_from_rec(&rec, (ipcb_object_info *)items + n) < 0) {
                                free(items);
                                return -EPROTO;
                        }
                        n++;
                }
        }
        *ret = items;
        *ret_n = n;
        return 0;
}

/* One page of a listing: each record to the item callback (unless it
 * stops, or ipcb_cancel does), then the next page's request or the final
 * call.  The next page is asked for only now, so that the loop never
 * waits for one. */
static void page_complete(ipcb_client *c, client_async *e, const ipcb_msg *reply) {
        bool list = e->what == ASYNC_LIST, more;
        uint64_t next;
        unsigned n = 0;
        void *items;
        int r;

        more = list ? reply->list_reply.more : reply->quota_reply.more;
        next = list ? reply->list_reply.next_cursor : reply->quota_reply.next_cursor;
        /* A page that claims more but does not move the cursor on would
         * loop (or see objects twice). */
        if (more && next <= e->cursor) {
                call_back(c, e, -EPROTO, NULL);
                return;
        }
        if ((r = page_items(e, reply, &items, &n)) < 0) {
                call_back(c, e, r, NULL);
                return;
        }
        for (unsigned i = 0; i < n && r == 0; i++) {
                if (list_stopped(c, e, false)) {
                        free(items);
                        return;
                }
                if (list)
                        r = e->cb.list(c, 0, (ipcb_object_info *)items + i, e->userdata);
                else
                        r = e->cb.quota_list(c, 0, (ipcb_quota_info *)items + i, e->userdata);
        }
        free(items);
        if (r == 0 && more) {
                if (list_stopped(c, e, false))
                        return;
                e->cursor = next;
                r = page_next(c, e);
                if (r == 0)
                        return;
        }
        call_back(c, e, r, NULL);
}

/* The checks ipcb__client_call_once makes of a reply, then the blocking call's
 * own finishing step. */
void ipcb__async_complete(ipcb_client *c, client_async *e) {
        ipcb_object_info info;
        ipcb_quota_info quota;
        void *result = NULL;
        ipcb_msg reply;
        uint64_t h;
        int fd = -1, keep, r;

        if (e->what == ASYNC_EVENT) {
                ipcb__watch_dispatch(c, e);
                return;
        }
        /* ASYNC_REGISTER: the memfd copy for the handle, closed on every
         * path that does not make one. */
        keep = e->keep_fd;
        e->keep_fd = -1;
        if (!e->has_reply) {
                if (keep >= 0)
                        close(keep);
                if (e->what == ASYNC_WATCH)
                        ipcb__watch_add_complete(c, e, e->status < 0 ? e->status : -EPROTO);
                else
                        call_back(c, e, e->status < 0 ? e->status : -EPROTO, NULL);
                return;
        }
        r = ipcb__proto_decode(e->rbuf, e->rlen, e->rlost ? e->rbuf[2] : e->rnfds, &reply);
        if (r == 0 && reply.hdr.op != (e->op | IPCB_OP_REPLY))
                r = -EPROTO;
        else if (r < 0)
                r = -EPROTO;
        else if (e->stale)
                r = -ENOTCONN; /* its handle died with its connection */
        else if (reply.hdr.status < 0)
                r = reply.hdr.status;
        else if (e->rlost) {
                if (ipcb__client_reply_handle(&reply, &h))
                        (void)ipcb__client_release_handle(c, h, e->conn_gen);
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
                if (keep >= 0)
                        close(keep);
                if (e->what == ASYNC_WATCH)
                        ipcb__watch_add_complete(c, e, r);
                else
                        call_back(c, e, r, NULL);
                return;
        }
        switch (e->what) {
        case ASYNC_SHM:
                r = ipcb__client_shm_finish(c, e->name, &reply, e->conn_gen, fd, e->access,
                                            (ipcb_shm **)&result);
                break;
        case ASYNC_SEM:
                r = ipcb__client_sem_finish(c, e->name, e->flags, &reply, e->conn_gen, fd,
                                            (ipcb_sem **)&result);
                break;
        case ASYNC_STAT:
                r = ipcb__client_info_from_rec(&reply.stat_reply, &info);
                result = &info;
                break;
        case ASYNC_REGISTER:
                r = ipcb__client_register_finish(c, e->name, &reply, e->conn_gen, keep,
                                                 (ipcb_shm **)&result);
                keep = -1;
                break;
        case ASYNC_QUOTA:
                r = reply.quota_reply.count == 1 ? 0 : -EPROTO;
                if (r == 0) {
                        ipcb__client_quota_info(&reply, 0, &quota);
                        result = &quota;
                }
                break;
        case ASYNC_LIST:
        case ASYNC_QUOTA_LIST:
                if (fd >= 0)
                        close(fd);
                page_complete(c, e, &reply); /* frees e->rbuf, which reply is in */
                return;
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
                ipcb__watch_add_complete(c, e, 0);
                return;
        default:
                r = 0;
                break;
        }
        if (fd >= 0 && e->what != ASYNC_SHM && e->what != ASYNC_SEM)
                close(fd);
        if (keep >= 0)
                close(keep);
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
        if ((r = ipcb__client_name_check(name, &req.shm_create.name)) < 0)
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
        return ipcb__async_submit(c, &req, ASYNC_SHM, name,
                      (union async_cb){ .shm = cb }, userdata, &t, ret_cookie);
}

int ipcb_shm_open_async(ipcb_client *c, const char *name, int access,
                        const ipcb_open_options *opts, ipcb_shm_cb cb, void *userdata,
                        uint64_t *ret_cookie) {
        ipcb_msg req;
        client_async t = { .access = access };
        int r;

        if (!c)
                return -EINVAL;
        if ((r = ipcb__client_shm_open_req(name, access, opts, &req)) < 0)
                return r;
        return ipcb__async_submit(c, &req, ASYNC_SHM, name,
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
        if ((r = ipcb__client_name_check(name, &req.sem_create.name)) < 0)
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
        return ipcb__async_submit(c, &req, ASYNC_SEM, name,
                      (union async_cb){ .sem = cb }, userdata, &t, ret_cookie);
}

int ipcb_sem_open_async(ipcb_client *c, const char *name, const ipcb_open_options *opts,
                        ipcb_sem_cb cb, void *userdata, uint64_t *ret_cookie) {
        ipcb_msg req = { .hdr.op = IPCB_OP_SEM_OPEN };
        client_async t = { 0 };
        int r;

        if (!c)
                return -EINVAL;
        if ((r = ipcb__client_name_check(name, &req.sem_open.name)) < 0)
                return r;
        r = ipcb__client_open_options(opts, IPCB_SEM_UNDO | IPCB_OPEN_OWNED, &req.sem_open.flags,
                                &req.sem_open.owner);
        if (r < 0)
                return r;
        t.flags = req.sem_open.flags & IPCB_SEM_UNDO;
        return ipcb__async_submit(c, &req, ASYNC_SEM, name,
                      (union async_cb){ .sem = cb }, userdata, &t, ret_cookie);
}

int ipcb_stat_async(ipcb_client *c, int kind, const char *name, ipcb_stat_cb cb, void *userdata,
                    uint64_t *ret_cookie) {
        ipcb_msg req = { .hdr.op = IPCB_OP_STAT };
        int r;

        if (!c || (kind != IPCB_KIND_SHM && kind != IPCB_KIND_SEM))
                return -EINVAL;
        if ((r = ipcb__client_name_check(name, &req.stat.name)) < 0)
                return r;
        req.stat.kind = (uint8_t)kind;
        return ipcb__async_submit(c, &req, ASYNC_STAT, NULL,
                      (union async_cb){ .stat = cb }, userdata, NULL, ret_cookie);
}

int ipcb_unlink_async(ipcb_client *c, int kind, const char *name, ipcb_done_cb cb,
                      void *userdata, uint64_t *ret_cookie) {
        ipcb_msg req = { .hdr.op = IPCB_OP_UNLINK };
        int r;

        if (!c || (kind != IPCB_KIND_SHM && kind != IPCB_KIND_SEM))
                return -EINVAL;
        if ((r = ipcb__client_name_check(name, &req.unlink.name)) < 0)
                return r;
        req.unlink.kind = (uint8_t)kind;
        return ipcb__async_submit(c, &req, ASYNC_DONE, NULL,
                      (union async_cb){ .done = cb }, userdata, NULL, ret_cookie);
}

int ipcb_shm_freeze_async(ipcb_client *c, const char *name, ipcb_done_cb cb, void *userdata,
                          uint64_t *ret_cookie) {
        ipcb_msg req = { .hdr.op = IPCB_OP_FREEZE };
        int r;

        if (!c)
                return -EINVAL;
        if ((r = ipcb__client_name_check(name, &req.freeze.name)) < 0)
                return r;
        req.freeze.kind = IPCB_KIND_SHM;
        return ipcb__async_submit(c, &req, ASYNC_FREEZE, NULL,
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
        if ((r = ipcb__client_name_check(name, &req.set_access.name)) < 0)
                return r;
        req.set_access.kind = (uint8_t)kind;
        req.set_access.what = acc->what;
        if (acc->what & IPCB_ACCESS_MODE)
                req.set_access.mode = acc->mode;
        if (acc->what & IPCB_ACCESS_UID)
                req.set_access.uid = (uint32_t)acc->uid;
        if (acc->what & IPCB_ACCESS_GID)
                req.set_access.gid = (uint32_t)acc->gid;
        return ipcb__async_submit(c, &req, ASYNC_DONE, NULL,
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
        return ipcb__async_submit(c, &req, ASYNC_MEMFD, NULL,
                      (union async_cb){ .done = cb }, userdata, &t, ret_cookie);
}

int ipcb_sync_async(ipcb_client *c, ipcb_done_cb cb, void *userdata, uint64_t *ret_cookie) {
        ipcb_msg req = { .hdr.op = IPCB_OP_HELLO };

        if (!c)
                return -EINVAL;
        req.hello.version = IPCB_PROTO_VERSION;
        return ipcb__async_submit(c, &req, ASYNC_DONE, NULL,
                      (union async_cb){ .done = cb }, userdata, NULL, ret_cookie);
}

int ipcb_shm_register_async(ipcb_client *c, const char *name, int memfd,
                            const ipcb_shm_options *opts, ipcb_shm_cb cb, void *userdata,
                            uint64_t *ret_cookie) {
        ipcb_msg req;
        int own, r;

        if (!c || !cb)
                return -EINVAL;
        /* own: the copy that is sent and then becomes the handle's fd, so
         * that the caller may close memfd at once. */
        if ((r = ipcb__client_register_prepare(name, memfd, opts, &req, &own)) < 0)
                return r;
        r = submit(c, &req, ASYNC_REGISTER, name, (union async_cb){ .shm = cb }, userdata, NULL,
                   own, ret_cookie);
        if (r < 0)
                close(own);
        return r;
}

int ipcb_quota_async(ipcb_client *c, uid_t uid, ipcb_quota_cb cb, void *userdata,
                     uint64_t *ret_cookie) {
        ipcb_msg req = { .hdr.op = IPCB_OP_QUOTA };

        if (!c || uid == (uid_t)-1)
                return -EINVAL;
        req.quota.uid = (uint32_t)uid;
        return ipcb__async_submit(c, &req, ASYNC_QUOTA, NULL,
                      (union async_cb){ .quota = cb }, userdata, NULL, ret_cookie);
}

int ipcb_list_async(ipcb_client *c, int kind, ipcb_list_cb cb, void *userdata,
                    uint64_t *ret_cookie) {
        client_async t = { .what = ASYNC_LIST, .flags = (uint32_t)kind };
        ipcb_msg req;

        if (!c || (kind != 0 && kind != IPCB_KIND_SHM && kind != IPCB_KIND_SEM))
                return -EINVAL;
        page_request(&t, &req);
        return ipcb__async_submit(c, &req, ASYNC_LIST, NULL,
                      (union async_cb){ .list = cb }, userdata, &t, ret_cookie);
}

int ipcb_quota_list_async(ipcb_client *c, ipcb_quota_list_cb cb, void *userdata,
                          uint64_t *ret_cookie) {
        client_async t = { .what = ASYNC_QUOTA_LIST };
        ipcb_msg req;

        if (!c)
                return -EINVAL;
        page_request(&t, &req);
        return ipcb__async_submit(c, &req, ASYNC_QUOTA_LIST, NULL,
                      (union async_cb){ .quota_list = cb }, userdata, &t, ret_cookie);
}

int ipcb_shm_unlink(ipcb_client *c, const char *name) {
        return ipcb__client_unlink(c, IPCB_KIND_SHM, name);
}
