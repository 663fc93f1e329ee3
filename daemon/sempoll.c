/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sempoll.c: pollable semaphores and segment locks (sempoll.h).  Each
 * semaphore or lock that is polled has one notify eventfd; releasers and
 * unlockers write it while the page counts pollers, and every poller
 * watches it edge-triggered from an epoll set of its own, so a write wakes
 * every poller directly: the daemon is not on the wake-up path.  The
 * daemon only counts the pollers (per handle), hands out the eventfd, and
 * writes it itself when it gives tokens back or marks a lock's owner dead.
 * Pollers never read the eventfd; a writer that finds its counter full
 * (anyone holding the fd can fill it at once) resets it and writes again
 * (util/pollnotify.h). */
#include "sempoll.h"

#include "peer.h"
#include "pollnotify.h"
#include "quota.h"
#include "sem.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* A poller is a handle marked polled (handle_slot.polled): registering
 * and releasing one costs the same however many poll the object. */
typedef struct sempoll {
        int notify_fd; /* -1 until someone asks */
        uid_t fd_uid;  /* who asked first: the fd is charged to that uid */
        uint32_t n;    /* pollers */
} sempoll;

/* A semaphore's page is mapped on demand (sem.c); if it cannot be mapped
 * (out of memory), the count stays as it was, and a release may then miss
 * a poller until the next registration or release reaches it.  A lock
 * page is mapped while the segment has one (lock.c). */
static void page_pollers(object *o, uint32_t n) {
        if (o->kind == IPCB_KIND_SEM) {
                ipcb_sem_page *pg = sem_page(o);
                if (pg)
                        atomic_store(&pg->pollers, n);
        } else if (o->lock) {
                atomic_store(&o->lock->pollers, n);
        }
}

static sempoll *get(object *o) {
        if (!o->poll) {
                o->poll = calloc(1, sizeof(sempoll));
                if (o->poll)
                        o->poll->notify_fd = -1;
        }
        return o->poll;
}

/* The eventfd is one more daemon fd per semaphore: charged like the
 * objects' own fds (quota.c), to the uid whose request made it. */
static int notify_fd(sempoll *sp, uid_t uid) {
        int k;

        if (sp->notify_fd >= 0)
                return sp->notify_fd;
        if ((k = quota_charge_fd(uid)) < 0)
                return k;
        if ((sp->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
                k = -errno;
                quota_uncharge_fd(uid);
                return k;
        }
        sp->fd_uid = uid;
        return sp->notify_fd;
}

void sempoll_wake(object *o) {
        if (o->poll && o->poll->n && o->poll->notify_fd >= 0)
                ipcb_notify_signal(o->poll->notify_fd);
}

/* What a poll request may name: a semaphore handle for SEM_POLL and
 * SEM_NOTIFY; for LOCK_POLL and LOCK_NOTIFY a segment handle that has a
 * lock token (a read-write handle that fetched the lock page). */
static handle_slot *poll_handle(peer *p, const ipcb_msg *m) {
        handle_slot *h = peer_handle_get(p, m->sem_poll.handle);
        bool lock = m->hdr.op == IPCB_OP_LOCK_POLL || m->hdr.op == IPCB_OP_LOCK_NOTIFY;

        if (!h)
                return NULL;
        if (lock)
                return h->obj->kind == IPCB_KIND_SHM && h->lock_token && h->obj->lock ? h : NULL;
        return h->obj->kind == IPCB_KIND_SEM && h->obj->sem ? h : NULL;
}

int sempoll_add(peer *p, const ipcb_msg *m) {
        ipcb_msg r = { .hdr = { .op = m->hdr.op | IPCB_OP_REPLY, .id = m->hdr.id } };
        handle_slot *h = poll_handle(p, m);
        sempoll *sp;
        int k;

        if (!h)
                return -EBADF;
        if (p->npollers >= SEMPOLL_MAX_PER_CONN)
                return -EDQUOT;
        if (h->polled)
                return -EBUSY; /* one poller per handle */
        if (!(sp = get(h->obj)))
                return -ENOMEM;
        if ((k = notify_fd(sp, p->cred.uid)) < 0)
                return k;
        h->polled = true;
        sp->n++;
        p->npollers++;
        /* Counted before the reply: a release after the poller's first look
         * at the count (which follows the reply) sees it. */
        page_pollers(h->obj, sp->n);
        r.sem_poll_reply.pollers = sp->n;
        peer_reply(p, &r, &sp->notify_fd, 1);
        return 0;
}

int sempoll_notify_fd(peer *p, const ipcb_msg *m) {
        ipcb_msg r = { .hdr = { .op = m->hdr.op | IPCB_OP_REPLY, .id = m->hdr.id } };
        handle_slot *h = poll_handle(p, m);
        sempoll *sp;
        int fd;

        if (!h)
                return -EBADF;
        if (!(sp = get(h->obj)))
                return -ENOMEM;
        if ((fd = notify_fd(sp, p->cred.uid)) < 0)
                return fd;
        peer_reply(p, &r, &fd, 1);
        return 0;
}

void sempoll_handle_released(object *o, peer *p) {
        sempoll *sp = o->poll;

        sp->n--;
        p->npollers--;
        page_pollers(o, sp->n);
}

void sempoll_free(object *o) {
        sempoll *sp = o->poll;

        if (!sp)
                return;
        if (sp->notify_fd >= 0) {
                close(sp->notify_fd);
                quota_uncharge_fd(sp->fd_uid);
        }
        free(sp);
        o->poll = NULL;
}
