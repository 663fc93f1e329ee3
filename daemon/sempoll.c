/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sempoll.c: pollable semaphores (sempoll.h).  The notify eventfd of a
 * semaphore is watched only while it has pollers, so that a daemon with
 * none has no handle on the loop for it (and shuts down cleanly: every
 * poller goes with its connection).  Fan-out writes 1 to each poller's
 * eventfd; a poller that does not drain its own only makes its counter
 * grow, and a write that would overflow it (EAGAIN) finds it readable
 * already. */
#include "sempoll.h"

#include "log.h"
#include "peer.h"
#include "sem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct sempoll_reg {
        struct sempoll_reg *next;
        peer *p;
        uint64_t handle;
        int efd;
} sempoll_reg;

typedef struct sempoll {
        int notify_fd;      /* -1 until someone asks */
        uv_poll_t *watch;   /* on notify_fd while regs is not empty */
        sempoll_reg *regs;
        uint32_t n;
} sempoll;

static uv_loop_t *sp_loop;

void sempoll_init(uv_loop_t *loop) {
        sp_loop = loop;
}

static void page_pollers(object *o, uint32_t n) {
        atomic_store(&o->sem->page->pollers, n);
}

static sempoll *get(object *o) {
        if (!o->poll) {
                o->poll = calloc(1, sizeof(sempoll));
                if (o->poll)
                        o->poll->notify_fd = -1;
        }
        return o->poll;
}

static int notify_fd(sempoll *sp) {
        if (sp->notify_fd < 0)
                sp->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        return sp->notify_fd < 0 ? -errno : sp->notify_fd;
}

void sempoll_wake(object *o) {
        uint64_t one = 1;

        if (!o->poll)
                return;
        for (sempoll_reg *r = o->poll->regs; r; r = r->next)
                (void)!write(r->efd, &one, sizeof(one));
}

static void on_notify(uv_poll_t *h, int status, int events) {
        object *o = h->data;
        uint64_t v;

        (void)status, (void)events;
        /* Drain first: a release after this read writes again. */
        (void)!read(o->poll->notify_fd, &v, sizeof(v));
        sempoll_wake(o);
}

static void on_watch_closed(uv_handle_t *h) {
        free(h);
}

static void watch_stop(sempoll *sp) {
        if (sp->watch) {
                uv_close((uv_handle_t *)sp->watch, on_watch_closed);
                sp->watch = NULL;
        }
}

static int watch_start(object *o, sempoll *sp) {
        int k;

        if (sp->watch)
                return 0;
        sp->watch = malloc(sizeof(*sp->watch));
        if (!sp->watch)
                return -ENOMEM;
        if ((k = uv_poll_init(sp_loop, sp->watch, sp->notify_fd)) < 0) {
                free(sp->watch);
                sp->watch = NULL;
                return k;
        }
        sp->watch->data = o;
        if ((k = uv_poll_start(sp->watch, UV_READABLE, on_notify)) < 0) {
                watch_stop(sp);
                return k;
        }
        return 0;
}

static handle_slot *sem_handle(peer *p, uint64_t id) {
        handle_slot *h = peer_handle_get(p, id);
        return h && h->obj->kind == IPCB_KIND_SEM && h->obj->sem ? h : NULL;
}

int sempoll_add(peer *p, const ipcb_msg *m) {
        ipcb_msg r = { .hdr = { .op = m->hdr.op | IPCB_OP_REPLY, .id = m->hdr.id } };
        handle_slot *h = sem_handle(p, m->sem_poll.handle);
        sempoll_reg *reg;
        sempoll *sp;
        int k, fds[2];

        if (!h)
                return -EBADF;
        if (p->npollers >= SEMPOLL_MAX_PER_CONN)
                return -EDQUOT;
        if (!(sp = get(h->obj)))
                return -ENOMEM;
        for (reg = sp->regs; reg; reg = reg->next)
                if (reg->p == p && reg->handle == m->sem_poll.handle)
                        return -EBUSY; /* one poller per handle */
        if ((k = notify_fd(sp)) < 0)
                return k;
        if (!(reg = calloc(1, sizeof(*reg))))
                return -ENOMEM;
        reg->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (reg->efd < 0) {
                k = -errno;
                free(reg);
                return k;
        }
        if ((k = watch_start(h->obj, sp)) < 0) {
                close(reg->efd);
                free(reg);
                return k;
        }
        reg->p = p;
        reg->handle = m->sem_poll.handle;
        reg->next = sp->regs;
        sp->regs = reg;
        sp->n++;
        p->npollers++;
        /* Counted before the reply: a release after the poller's first look
         * at the count (which follows the reply) sees it. */
        page_pollers(h->obj, sp->n);
        r.sem_poll_reply.pollers = sp->n;
        fds[0] = reg->efd;
        fds[1] = sp->notify_fd;
        r.hdr.nfds = 2;
        peer_reply(p, &r, fds, 2);
        return 0;
}

int sempoll_notify_fd(peer *p, const ipcb_msg *m) {
        ipcb_msg r = { .hdr = { .op = m->hdr.op | IPCB_OP_REPLY, .id = m->hdr.id } };
        handle_slot *h = sem_handle(p, m->sem_poll.handle);
        sempoll *sp;
        int fd;

        if (!h)
                return -EBADF;
        if (!(sp = get(h->obj)))
                return -ENOMEM;
        if ((fd = notify_fd(sp)) < 0)
                return fd;
        r.hdr.nfds = 1;
        peer_reply(p, &r, &fd, 1);
        return 0;
}

void sempoll_handle_released(object *o, peer *p, uint64_t handle) {
        sempoll *sp = o->poll;

        if (!sp)
                return;
        for (sempoll_reg **pp = &sp->regs; *pp; pp = &(*pp)->next) {
                sempoll_reg *reg = *pp;
                if (reg->p != p || reg->handle != handle)
                        continue;
                *pp = reg->next;
                close(reg->efd);
                free(reg);
                sp->n--;
                p->npollers--;
                page_pollers(o, sp->n);
                if (!sp->regs)
                        watch_stop(sp);
                return;
        }
}

void sempoll_free(object *o) {
        sempoll *sp = o->poll;

        if (!sp)
                return;
        while (sp->regs) { /* (none: a poller is a handle) */
                sempoll_reg *reg = sp->regs;
                sp->regs = reg->next;
                close(reg->efd);
                free(reg);
        }
        watch_stop(sp);
        if (sp->notify_fd >= 0)
                close(sp->notify_fd);
        free(sp);
        o->poll = NULL;
}
