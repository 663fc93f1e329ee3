/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* watch.c: watches on the client side.  ipcb_watch_add asks the broker for
 * a watch and records it (callback, and what to ask again after a
 * reconnect); events that arrive, on whichever path reads the socket, are
 * kept in the loop's done list (bounded: past LOOP_EVENTS_MAX they are
 * dropped and an overflow is owed) and handed to the watch's callback by
 * ipcb_process. */
#include "internal.h"

#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void ipcb__watch_route(ipcb_client *c, client_loop *l, const uint8_t *buf, size_t len) {
        client_async *e = NULL;

        (void)c;
        pthread_mutex_lock(&l->qlock);
        if (l->nevents < LOOP_EVENTS_MAX && (e = ipcb__async_new()) && (e->rbuf = malloc(len))) {
                memcpy(e->rbuf, buf, len);
                e->rlen = len;
                e->has_reply = true;
        } else if (e) {
                free(e);
                e = NULL;
        }
        /* No room (or no memory): drop it and owe one overflow, which
         * takes the place of everything lost until it is delivered. */
        if (!e && !l->events_lost && (e = ipcb__async_new()))
                l->events_lost = true;
        else if (!e)
                l->events_lost = true;
        if (e) {
                e->what = ASYNC_EVENT;
                l->nevents++;
                ipcb__loop_done_push(l, e);
        }
        pthread_mutex_unlock(&l->qlock);
}

static client_watch *find_broker(client_loop *l, uint64_t broker_id) {
        for (client_watch *w = l->watches; w; w = w->next)
                if (w->broker_id == broker_id)
                        return w;
        return NULL;
}

void ipcb__watch_dispatch(ipcb_client *c, client_async *e) {
        client_loop *l = c->loop;
        char name[IPCB_NAME_MAX + 1] = "";
        ipcb_watch_event ev = { .struct_size = sizeof(ev), .name = name };
        ipcb_msg m;
        bool overflow = !e->has_reply;

        if (!l)
                return;
        if (!overflow) {
                if (ipcb__proto_decode(e->rbuf, e->rlen, 0, &m) < 0)
                        return; /* decoded once already: cannot happen */
                overflow = m.watch_event.event == IPCB_WE_OVERFLOW;
        }
        pthread_mutex_lock(&l->qlock);
        l->nevents--;
        if (!e->has_reply)
                l->events_lost = false;
        pthread_mutex_unlock(&l->qlock);
        if (overflow) {
                /* Every watch hears it.  Walk by id, without the lock, so
                 * that a callback may add or remove watches. */
                uint64_t after = 0;
                ev.event = IPCB_WATCH_OVERFLOW;
                for (;;) {
                        client_watch *w, *best = NULL;
                        ipcb_watch_cb cb = NULL;
                        void *ud = NULL;
                        pthread_mutex_lock(&l->qlock);
                        for (w = l->watches; w; w = w->next)
                                if (w->id > after && (!best || w->id < best->id))
                                        best = w;
                        if (best) {
                                after = ev.watch = best->id;
                                cb = best->cb;
                                ud = best->userdata;
                        }
                        pthread_mutex_unlock(&l->qlock);
                        if (!best)
                                return;
                        cb(c, &ev, ud);
                }
        }
        ipcb_watch_cb cb = NULL;
        void *ud = NULL;
        pthread_mutex_lock(&l->qlock);
        client_watch *w = find_broker(l, m.watch_event.watch);
        if (w) {
                ev.watch = w->id;
                cb = w->cb;
                ud = w->userdata;
        }
        pthread_mutex_unlock(&l->qlock);
        if (!cb)
                return; /* removed meanwhile */
        ev.event = m.watch_event.event;
        ev.kind = m.watch_event.kind;
        memcpy(name, m.watch_event.name.ptr, m.watch_event.name.len);
        name[m.watch_event.name.len] = '\0';
        ev.id = m.watch_event.object;
        ev.uid = (uid_t)m.watch_event.uid;
        ev.gid = (gid_t)m.watch_event.gid;
        ev.mode = m.watch_event.mode;
        ev.seals = m.watch_event.seals;
        cb(c, &ev, ud);
}

/* WATCH_ADD for w on the current connection (c->lock held). */
static int watch_request(ipcb_client *c, const client_watch *w, bool once, uint64_t *ret) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_WATCH_ADD }, reply;
        int r;

        req.watch_add.kind = (uint8_t)w->kind;
        req.watch_add.flags = (uint8_t)w->flags;
        req.watch_add.events = w->events;
        req.watch_add.name = (ipcb_name){ .ptr = w->name, .len = (uint16_t)strlen(w->name) };
        r = once ? ipcb__client_call_once(c, &req, buf, &reply, NULL)
                 : ipcb__client_call(c, &req, buf, &reply, NULL);
        if (r < 0)
                return r;
        if (reply.watch_reply.watch == 0)
                return -EPROTO;
        *ret = reply.watch_reply.watch;
        return 0;
}

int ipcb_watch_add(ipcb_client *c, int kind, const char *name, unsigned flags, unsigned events,
                   ipcb_watch_cb cb, void *userdata, uint64_t *ret_watch) {
        client_watch *w;
        client_loop *l;
        ipcb_name n;
        int r;

        if (!c || !cb || !name || (kind != IPCB_KIND_SHM && kind != IPCB_KIND_SEM) ||
            (flags & ~IPCB_WATCH_PREFIX) || events == 0 || (events & ~IPCB_WATCH_ALL))
                return -EINVAL;
        if (!((flags & IPCB_WATCH_PREFIX) && name[0] == '\0') &&
            (r = ipcb__client_name_check(name, &n)) < 0)
                return r;
        w = calloc(1, sizeof(*w));
        if (!w || !(w->name = strdup(name))) {
                free(w);
                return -ENOMEM;
        }
        w->kind = kind;
        w->flags = flags;
        w->events = events;
        w->cb = cb;
        w->userdata = userdata;
        if ((r = ipcb__client_lock(c)) < 0)
                goto fail;
        r = ipcb__loop_ensure(c, &l);
        if (r == 0)
                r = watch_request(c, w, false, &w->broker_id);
        if (r == 0) {
                /* Recorded before the lock goes: whoever reads the socket
                 * next holds it, so no event for w can be missed. */
                pthread_mutex_lock(&l->qlock);
                w->id = ++l->next_watch;
                w->next = l->watches;
                l->watches = w;
                pthread_mutex_unlock(&l->qlock);
        }
        pthread_mutex_unlock(&c->lock);
        if (r < 0)
                goto fail;
        if (ret_watch)
                *ret_watch = w->id;
        return 0;
fail:
        free(w->name);
        free(w);
        return r;
}

int ipcb_watch_remove(ipcb_client *c, uint64_t watch) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_WATCH_REMOVE }, reply;
        client_watch **pp, *w = NULL;
        client_loop *l;
        int r;

        if (!c)
                return -EINVAL;
        ipcb__client_lock_untimed(c);
        l = c->loop;
        if (l) {
                pthread_mutex_lock(&l->qlock);
                for (pp = &l->watches; *pp && (*pp)->id != watch; pp = &(*pp)->next)
                        ;
                if ((w = *pp))
                        *pp = w->next;
                pthread_mutex_unlock(&l->qlock);
        }
        r = w ? 0 : -ENOENT;
        /* Events already kept for it are skipped from now on.  The broker
         * forgets it too (if the connection died, so did the watch). */
        if (w && !c->dead) {
                req.watch_remove.watch = w->broker_id;
                r = ipcb__client_call_once(c, &req, buf, &reply, NULL);
                if (r == -ENOENT || r == -ENOTCONN)
                        r = 0;
        }
        pthread_mutex_unlock(&c->lock);
        if (w) {
                free(w->name);
                free(w);
        }
        return r;
}

int ipcb__watch_reconnected(ipcb_client *c) {
        client_loop *l = c->loop;
        client_async *e;
        int r;

        if (!l || !l->watches)
                return 0;
        for (client_watch *w = l->watches; w; w = w->next) {
                r = watch_request(c, w, true, &w->broker_id);
                if (r == -ENOTCONN || r == -ETIMEDOUT)
                        return r;
                if (r < 0)
                        w->broker_id = 0; /* refused now (a limit): it stays silent */
        }
        /* Whatever happened while we were away was not seen. */
        pthread_mutex_lock(&l->qlock);
        if (!l->events_lost && (e = ipcb__async_new())) {
                e->what = ASYNC_EVENT;
                l->events_lost = true;
                l->nevents++;
                ipcb__loop_done_push(l, e);
        }
        pthread_mutex_unlock(&l->qlock);
        return 0;
}

void ipcb__watch_free_all(client_loop *l) {
        client_watch *w, *next;

        for (w = l->watches; w; w = next) {
                next = w->next;
                free(w->name);
                free(w);
        }
        l->watches = NULL;
}

void ipcb__watch_added(client_loop *l, uint64_t id, const ipcb_msg *reply) {
        for (client_watch *w = l->watches; w; w = w->next)
                if (w->id == id)
                        w->broker_id = reply->watch_reply.watch;
}

/* Unlink local watch id; returns it (the caller frees it), or NULL. */
static client_watch *watch_take(client_loop *l, uint64_t id) {
        client_watch **pp, *w;

        pthread_mutex_lock(&l->qlock);
        for (pp = &l->watches; *pp && (*pp)->id != id; pp = &(*pp)->next)
                ;
        if ((w = *pp))
                *pp = w->next;
        pthread_mutex_unlock(&l->qlock);
        return w;
}

static void removed_ignore(ipcb_client *c, int status, void *userdata) {
        (void)c, (void)status, (void)userdata;
}

void ipcb__watch_drop(ipcb_client *c, uint64_t id) {
        ipcb_msg req = { .hdr.op = IPCB_OP_WATCH_REMOVE };
        client_loop *l = c->loop;
        client_watch *w;

        if (!l || !(w = watch_take(l, id)))
                return;
        /* (No broker id: the add was refused or not answered yet; the
         * broker's watch, if the add succeeds later, hears events that
         * match no local watch and are skipped.) */
        if (w->broker_id) {
                req.watch_remove.watch = w->broker_id;
                (void)ipcb__async_submit(c, &req, ASYNC_DONE, NULL,
                                   (union async_cb){ .done = removed_ignore }, NULL, NULL, NULL);
        }
        free(w->name);
        free(w);
}

void ipcb__watch_add_complete(ipcb_client *c, client_async *e, int status) {
        client_watch *w;

        if (status < 0 && c->loop && (w = watch_take(c->loop, e->size))) {
                free(w->name);
                free(w);
        }
        if (e->cb.done)
                e->cb.done(c, status, e->userdata);
}

int ipcb__watch_add_async_internal(ipcb_client *c, int kind, const char *name, unsigned flags,
                             unsigned events, ipcb_watch_cb cb, void *userdata, ipcb_done_cb added,
                             void *added_userdata, uint64_t *ret_watch) {
        ipcb_msg req = { .hdr.op = IPCB_OP_WATCH_ADD };
        client_async t = { 0 };
        client_watch *w;
        client_loop *l;
        ipcb_name n = { .ptr = name, .len = 0 };
        int r;

        if (!c || !cb || !name || (kind != IPCB_KIND_SHM && kind != IPCB_KIND_SEM) ||
            (flags & ~IPCB_WATCH_PREFIX) || events == 0 || (events & ~IPCB_WATCH_ALL))
                return -EINVAL;
        if (!((flags & IPCB_WATCH_PREFIX) && name[0] == '\0') &&
            (r = ipcb__client_name_check(name, &n)) < 0)
                return r;
        w = calloc(1, sizeof(*w));
        if (!w || !(w->name = strdup(name))) {
                free(w);
                return -ENOMEM;
        }
        w->kind = kind;
        w->flags = flags;
        w->events = events;
        w->cb = cb;
        w->userdata = userdata;
        ipcb__client_lock_untimed(c);
        r = ipcb__loop_ensure(c, &l);
        if (r == 0) {
                pthread_mutex_lock(&l->qlock);
                w->id = ++l->next_watch;
                w->next = l->watches;
                l->watches = w;
                pthread_mutex_unlock(&l->qlock);
        }
        pthread_mutex_unlock(&c->lock);
        if (r < 0) {
                free(w->name);
                free(w);
                return r;
        }
        req.watch_add.kind = (uint8_t)kind;
        req.watch_add.flags = (uint8_t)flags;
        req.watch_add.events = events;
        req.watch_add.name = n;
        t.size = w->id;
        uint64_t id = w->id;
        r = ipcb__async_submit(c, &req, ASYNC_WATCH, NULL, (union async_cb){ .done = added },
                         added_userdata, &t, NULL);
        if (r < 0) {
                if ((w = watch_take(l, id))) {
                        free(w->name);
                        free(w);
                }
                return r;
        }
        if (ret_watch)
                *ret_watch = id;
        return 0;
}

int ipcb_watch_add_async(ipcb_client *c, int kind, const char *name, unsigned flags,
                         unsigned events, ipcb_watch_cb cb, void *userdata, ipcb_done_cb added,
                         uint64_t *ret_watch) {
        return ipcb__watch_add_async_internal(c, kind, name, flags, events, cb, userdata, added,
                                        userdata, ret_watch);
}
