/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* wait.c: opening an object that may not exist yet, without polling.  A
 * wait adds a watch for CREATED on the name and then tries to open, both
 * asynchronously and in that order, so that an object created after the
 * open was refused is announced by an event: the event (or an overflow)
 * makes it try again.  A wait ends with the handle, an error other than
 * -ENOENT, its deadline (-ETIMEDOUT) or ipcb_cancel.  Its state is only
 * touched inside ipcb_process's dispatch (one thread at a time) and, for
 * the list, under qlock.  The blocking calls drive the loop themselves. */
#include "internal.h"

#include "futex.h"
#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct client_wait {
        struct client_wait *next;
        uint64_t cookie;
        int kind;
        char *name;
        int access;         /* segment: IPCB_READ_ONLY / IPCB_READ_WRITE */
        ipcb_open_options opts; /* semaphore: flags (IPCB_SEM_UNDO) */
        bool has_deadline;
        struct timespec deadline;
        union async_cb cb;
        void *userdata;
        uint64_t watch;     /* local watch id */
        uint64_t open_cookie;
        bool opening;       /* an open is in flight */
        bool tried;         /* one open was answered: the deadline may end it */
        bool again;         /* an event came meanwhile: try again on -ENOENT */
        bool done;          /* its callback runs or ran: not cancellable */
        bool cancelled;
        /* The WATCH_ADD is not answered yet: its callback still needs w
         * (refs), and the watch can be dropped only once the broker's id
         * is known. */
        bool add_pending;
        unsigned refs;
} client_wait;

static void wait_finish(ipcb_client *c, client_wait *w, int status, void *result);
static void try_open(ipcb_client *c, client_wait *w);

static uint64_t ts_us(const struct timespec *t) {
        return (uint64_t)t->tv_sec * 1000000u + (uint64_t)t->tv_nsec / 1000u;
}

uint64_t ipcb__wait_next_deadline(client_loop *l) {
        uint64_t t = UINT64_MAX;

        for (client_wait *w = l->waits; w; w = w->next) {
                if (w->cancelled && !w->done)
                        return 0;
                if (!w->done && w->tried && w->has_deadline && ts_us(&w->deadline) < t)
                        t = ts_us(&w->deadline);
        }
        return t;
}

static void wait_free(client_wait *w) {
        free(w->name);
        free(w);
}

static void unlink_wait(client_loop *l, client_wait *w) {
        pthread_mutex_lock(&l->qlock);
        for (client_wait **pp = &l->waits; *pp; pp = &(*pp)->next)
                if (*pp == w) {
                        *pp = w->next;
                        break;
                }
        pthread_mutex_unlock(&l->qlock);
}

/* A wait stays on the list (where ipcb_disconnect finds it) until its
 * last reference goes. */
static void wait_unref(ipcb_client *c, client_wait *w) {
        if (--w->refs == 0) {
                unlink_wait(c->loop, w);
                wait_free(w);
        }
}

/* Done: stop watching, leave the list, call back (unless cancelled). */
static void wait_finish(ipcb_client *c, client_wait *w, int status, void *result) {
        client_loop *l = c->loop;
        bool call;

        if (w->open_cookie && w->opening)
                (void)ipcb_cancel(c, w->open_cookie);
        if (w->watch && !w->add_pending) {
                ipcb__watch_drop(c, w->watch);
                w->watch = 0;
        }
        pthread_mutex_lock(&l->qlock);
        call = !w->cancelled;
        w->done = true;
        pthread_mutex_unlock(&l->qlock);
        if (call) {
                if (w->kind == IPCB_KIND_SHM)
                        w->cb.shm(c, status, result, w->userdata);
                else
                        w->cb.sem(c, status, result, w->userdata);
        } else if (result) {
                if (w->kind == IPCB_KIND_SHM)
                        ipcb_shm_close(result);
                else
                        ipcb_sem_close(result);
        }
        wait_unref(c, w);
}

static void opened(ipcb_client *c, client_wait *w, int status, void *result) {
        w->tried = true;
        w->opening = false;
        w->open_cookie = 0;
        if (status == -ENOENT && !w->cancelled) {
                if (w->again)
                        try_open(c, w);
                return; /* the CREATED event will come */
        }
        wait_finish(c, w, status, result);
}

static void opened_shm(ipcb_client *c, int status, ipcb_shm *s, void *userdata) {
        opened(c, userdata, status, s);
}

static void opened_sem(ipcb_client *c, int status, ipcb_sem *s, void *userdata) {
        opened(c, userdata, status, s);
}

static void try_open(ipcb_client *c, client_wait *w) {
        int r;

        w->again = false;
        w->opening = true;
        if (w->kind == IPCB_KIND_SHM)
                r = ipcb_shm_open_async(c, w->name, w->access, NULL, opened_shm, w, &w->open_cookie);
        else
                r = ipcb_sem_open_async(c, w->name, &w->opts, opened_sem, w, &w->open_cookie);
        if (r < 0) {
                w->opening = false;
                wait_finish(c, w, r, NULL);
        }
}

static void on_event(ipcb_client *c, const ipcb_watch_event *ev, void *userdata) {
        client_wait *w = userdata;

        (void)ev; /* CREATED, or an overflow: either way, look again */
        if (w->done || w->cancelled)
                return;
        if (w->opening)
                w->again = true;
        else
                try_open(c, w);
}

static void watch_answered(ipcb_client *c, int status, void *userdata) {
        client_wait *w = userdata;

        w->add_pending = false;
        if (status < 0) {
                w->watch = 0; /* gone already */
                if (!w->done) {
                        w->refs++;
                        wait_finish(c, w, status, NULL);
                }
        } else if (w->done && w->watch) {
                ipcb__watch_drop(c, w->watch); /* the wait ended before the answer */
                w->watch = 0;
        }
        wait_unref(c, w);
}

void ipcb__wait_expire(ipcb_client *c) {
        client_loop *l = c->loop;
        struct timespec now;

        if (!l)
                return;
        clock_gettime(CLOCK_MONOTONIC, &now);
        for (;;) {
                client_wait *w, *hit = NULL;
                pthread_mutex_lock(&l->qlock);
                for (w = l->waits; w && !hit; w = w->next)
                        if (!w->done && (w->cancelled || (w->tried && w->has_deadline &&
                                                          ts_us(&now) >= ts_us(&w->deadline))))
                                hit = w;
                pthread_mutex_unlock(&l->qlock);
                if (!hit)
                        return;
                wait_finish(c, hit, -ETIMEDOUT, NULL);
        }
}

int ipcb__wait_cancel(client_loop *l, uint64_t cookie) {
        for (client_wait *w = l->waits; w; w = w->next)
                if (w->cookie == cookie && !w->done && !w->cancelled) {
                        w->cancelled = true; /* the next ipcb_process ends it */
                        return 0;
                }
        return -ENOENT;
}

void ipcb__wait_free_all(client_loop *l) {
        client_wait *w, *next;

        for (w = l->waits; w; w = next) {
                next = w->next;
                wait_free(w);
        }
        l->waits = NULL;
        /* (A wait that ended with its watch's answer still owed is only
         * referenced by that request, freed with it: see ipcb__async_free.) */
}

static int wait_start(ipcb_client *c, int kind, const char *name, int access,
                      const ipcb_open_options *opts, int timeout_ms, union async_cb cb,
                      void *userdata, uint64_t *ret_cookie) {
        client_wait *w;
        client_loop *l;
        ipcb_name n;
        uint32_t f, o;
        int r;

        if (!c || !cb.done)
                return -EINVAL;
        if ((r = ipcb__client_name_check(name, &n)) < 0)
                return r;
        if (kind == IPCB_KIND_SHM && access != IPCB_READ_ONLY && access != IPCB_READ_WRITE)
                return -EINVAL;
        if (kind == IPCB_KIND_SEM &&
            (r = ipcb__client_open_options(opts, IPCB_SEM_UNDO | IPCB_OPEN_OWNED, &f, &o)) < 0)
                return r;
        if (kind == IPCB_KIND_SHM &&
            (r = ipcb__client_open_options(opts, IPCB_OPEN_OWNED, &f, &o)) < 0)
                return r;
        w = calloc(1, sizeof(*w));
        if (!w || !(w->name = strdup(name))) {
                free(w);
                return -ENOMEM;
        }
        w->kind = kind;
        w->access = access;
        w->opts = (ipcb_open_options)IPCB_OPEN_OPTIONS_INIT;
        if (opts) {
                w->opts.flags = opts->flags;
                w->opts.owner = opts->owner;
        }
        w->cb = cb;
        w->userdata = userdata;
        if (timeout_ms >= 0) {
                w->has_deadline = true;
                deadline_after(timeout_ms, &w->deadline);
        }
        ipcb__client_lock_untimed(c);
        r = ipcb__loop_ensure(c, &l);
        pthread_mutex_unlock(&c->lock);
        if (r < 0) {
                wait_free(w);
                return r;
        }
        w->cookie = ipcb__loop_cookie(l);
        /* Watch first, then open: both go out in this order. */
        r = ipcb__watch_add_async_internal(c, kind, name, 0, IPCB_WATCH_CREATED, on_event, w,
                                     watch_answered, w, &w->watch);
        if (r < 0) {
                wait_free(w);
                return r;
        }
        w->add_pending = true;
        w->refs = 2;
        pthread_mutex_lock(&l->qlock);
        w->next = l->waits;
        l->waits = w;
        pthread_mutex_unlock(&l->qlock);
        w->opening = true;
        if (kind == IPCB_KIND_SHM)
                r = ipcb_shm_open_async(c, name, access, NULL, opened_shm, w, &w->open_cookie);
        else
                r = ipcb_sem_open_async(c, name, &w->opts, opened_sem, w, &w->open_cookie);
        if (r < 0) {
                /* Its watch's answer is still to come: end it there. */
                w->done = w->cancelled = true;
                wait_unref(c, w);
                return r;
        }
        if (ret_cookie)
                *ret_cookie = w->cookie;
        return 0;
}

int ipcb_shm_open_wait_async(ipcb_client *c, const char *name, int access, int timeout_ms,
                             ipcb_shm_cb cb, void *userdata, uint64_t *ret_cookie) {
        return wait_start(c, IPCB_KIND_SHM, name, access, NULL, timeout_ms,
                          (union async_cb){ .shm = cb }, userdata, ret_cookie);
}

int ipcb_sem_open_wait_async(ipcb_client *c, const char *name, int flags, int timeout_ms,
                             ipcb_sem_cb cb, void *userdata, uint64_t *ret_cookie) {
        ipcb_open_options o = IPCB_OPEN_OPTIONS_INIT;

        if (flags & ~IPCB_SEM_UNDO)
                return -EINVAL;
        o.flags = (unsigned)flags;
        return wait_start(c, IPCB_KIND_SEM, name, 0, &o, timeout_ms,
                          (union async_cb){ .sem = cb }, userdata, ret_cookie);
}

/* ---- blocking: drive the loop until the wait is over ---- */

typedef struct sync_wait {
        bool done;
        int status;
        void *result;
} sync_wait;

static void sync_shm(ipcb_client *c, int status, ipcb_shm *s, void *userdata) {
        sync_wait *sw = userdata;
        (void)c;
        *sw = (sync_wait){ .done = true, .status = status, .result = s };
}

static void sync_sem(ipcb_client *c, int status, ipcb_sem *s, void *userdata) {
        sync_wait *sw = userdata;
        (void)c;
        *sw = (sync_wait){ .done = true, .status = status, .result = s };
}

static int run_until_done(ipcb_client *c, sync_wait *sw) {
        int fd = ipcb_get_fd(c);

        if (fd < 0)
                return fd;
        while (!sw->done) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                int ms = ipcb_get_timeout_ms(c);
                if (poll(&p, 1, ms) < 0 && errno != EINTR)
                        return -errno;
                if (ipcb_process(c) < 0)
                        return -EINVAL;
        }
        return sw->status;
}

int ipcb_shm_open_wait(ipcb_client *c, const char *name, int access, int timeout_ms,
                       ipcb_shm **ret) {
        sync_wait sw = { 0 };
        int r;

        if (!ret)
                return -EINVAL;
        r = ipcb_shm_open_wait_async(c, name, access, timeout_ms, sync_shm, &sw, NULL);
        if (r < 0)
                return r;
        r = run_until_done(c, &sw);
        if (r == 0)
                *ret = sw.result;
        return r;
}

int ipcb_sem_open_wait(ipcb_client *c, const char *name, int flags, int timeout_ms,
                       ipcb_sem **ret) {
        sync_wait sw = { 0 };
        int r;

        if (!ret)
                return -EINVAL;
        r = ipcb_sem_open_wait_async(c, name, flags, timeout_ms, sync_sem, &sw, NULL);
        if (r < 0)
                return r;
        r = run_until_done(c, &sw);
        if (r == 0)
                *ret = sw.result;
        return r;
}
