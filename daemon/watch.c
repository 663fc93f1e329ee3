/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* watch.c: watches and their events.  A watch belongs to one connection
 * and names a kind and a name, or a name prefix; every event is matched
 * against every watch (they are few: WATCH_MAX_TOTAL bounds the list), and
 * sent without waiting: a connection whose socket is full, or that has
 * replies waiting, loses the event and gets one OVERFLOW message queued
 * behind its replies instead, so a client that stops reading costs the
 * daemon at most one queued message however many events happen.
 *
 * Who hears what: the namespace is public (docs/security.md: any
 * connected user may list and stat every object), so a watch hears about
 * every object of its kind and name; an event says no more than STAT
 * does. */
#include "watch.h"

#include "config.h"
#include "log.h"
#include "peer.h"
#include "quota.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct watch {
        struct watch *prev, *next;
        uint64_t id;
        peer *p;
        uid_t uid;
        uint8_t kind;
        bool prefix;
        bool dead;       /* its connection closed during watch_emit: freed after */
        uint32_t events;
        uint16_t len;
        char name[IPCB_NAME_MAX];
} watch;

typedef struct uid_count {
        uid_t uid;
        unsigned n;
} uid_count;

static watch *watches;
static unsigned nwatches;
/* watch_emit is walking the list (nested, when closing a connection
 * destroys objects): a connection closed meanwhile (a send that fails
 * closes it) only marks its watches dead; the outermost walk frees them. */
static unsigned emitting;
static bool dead_left;
static uint64_t next_id;
static uid_count *uids;
static unsigned nuids, uids_cap;

unsigned watch_count(void) {
        return nwatches;
}

static uid_count *uid_find(uid_t uid, bool add) {
        uid = quota_principal(uid);
        for (unsigned i = 0; i < nuids; i++)
                if (uids[i].uid == uid)
                        return &uids[i];
        if (!add)
                return NULL;
        if (nuids == uids_cap) {
                unsigned cap = uids_cap ? 2 * uids_cap : 16;
                uid_count *u = realloc(uids, cap * sizeof(*u));
                if (!u)
                        return NULL;
                uids = u;
                uids_cap = cap;
        }
        uids[nuids] = (uid_count){ .uid = uid };
        return &uids[nuids++];
}

static void uid_put(uid_t uid) {
        uid_count *u = uid_find(uid, false);

        if (u && --u->n == 0)
                *u = uids[--nuids];
}

static void unlink_free(watch *w) {
        if (w->prev)
                w->prev->next = w->next;
        else
                watches = w->next;
        if (w->next)
                w->next->prev = w->prev;
        free(w);
}

static void watch_free(watch *w) {
        w->p->nwatches--;
        uid_put(w->uid);
        nwatches--;
        if (!emitting) {
                unlink_free(w);
                return;
        }
        w->dead = true;
        w->p = NULL;
        dead_left = true;
}

int watch_add(peer *p, const ipcb_msg *m) {
        const ipcb_name *n = &m->watch_add.name;
        ipcb_msg r = { .hdr = { .op = m->hdr.op | IPCB_OP_REPLY, .id = m->hdr.id } };
        bool prefix = m->watch_add.flags & IPCB_WW_PREFIX;
        uid_count *u;
        watch *w;
        int k;

        if (m->watch_add.kind < 1 || m->watch_add.kind > IPCB_KIND_MAX_ ||
            (m->watch_add.flags & ~IPCB_WW_MASK) || m->watch_add.events == 0 ||
            (m->watch_add.events & ~IPCB_WE_MASK))
                return -EINVAL;
        /* A prefix is a name's beginning: the name rule, except that it may
         * be empty (every name) or end anywhere. */
        if (!(prefix && n->len == 0) && (k = ipcb__name_check(n->ptr, n->len)) < 0)
                return k;
        if (p->nwatches >= WATCH_MAX_PER_CONN)
                return -EDQUOT;
        u = uid_find(p->cred.uid, false);
        if (u && u->n >= WATCH_MAX_PER_UID)
                return -EDQUOT;
        if (nwatches >= WATCH_MAX_TOTAL)
                return -ENOSPC;
        w = calloc(1, sizeof(*w));
        if (!w || !(u = uid_find(p->cred.uid, true))) {
                free(w);
                return -ENOMEM;
        }
        u->n++;
        w->id = ++next_id;
        w->p = p;
        w->uid = p->cred.uid;
        w->kind = m->watch_add.kind;
        w->prefix = prefix;
        w->events = m->watch_add.events;
        w->len = n->len;
        memcpy(w->name, n->ptr, n->len);
        w->next = watches;
        if (watches)
                watches->prev = w;
        watches = w;
        nwatches++;
        p->nwatches++;
        r.watch_reply.watch = w->id;
        peer_reply(p, &r, NULL, 0);
        return 0;
}

int watch_remove(peer *p, const ipcb_msg *m) {
        ipcb_msg r = { .hdr = { .op = m->hdr.op | IPCB_OP_REPLY, .id = m->hdr.id } };

        for (watch *w = watches; w; w = w->next)
                if (w->id == m->watch_remove.watch && w->p == p) {
                        watch_free(w);
                        peer_reply(p, &r, NULL, 0);
                        return 0;
                }
        return -ENOENT;
}

void watch_peer_closed(peer *p) {
        watch *w, *next;

        if (p->nwatches == 0)
                return;
        for (w = watches; w; w = next) {
                next = w->next;
                if (!w->dead && w->p == p)
                        watch_free(w);
        }
}

/* Queue one OVERFLOW behind p's replies, if there is room for it; else
 * the next event tries again. */
static void overflow(peer *p) {
        static const ipcb_msg ov = { .hdr = { .op = IPCB_OP_WATCH_EVENT | IPCB_OP_REPLY },
                                     .watch_event = { .event = IPCB_WE_OVERFLOW } };

        p->watch_drop = PEER_WATCH_DROP_PENDING;
        if (p->q_len + 1 >= cfg.max_queued_replies)
                return;
        p->watch_drop = PEER_WATCH_DROP_QUEUED;
        peer_reply(p, &ov, NULL, 0);
}

static void deliver(peer *p, const uint8_t *buf, size_t len) {
        int k;

        if (p->closing)
                return;
        if (p->watch_drop == PEER_WATCH_DROP_QUEUED) {
                if (p->q_head)
                        return; /* dropped: the client has yet to read the overflow */
                p->watch_drop = 0;
        }
        if (p->watch_drop == PEER_WATCH_DROP_PENDING) {
                overflow(p);
                return;
        }
        if (!p->q_head) {
                k = peer_send(p, buf, len, NULL, 0);
                if (k == 0 || k != -EAGAIN)
                        return; /* sent, or broken: its read side closes it */
        }
        overflow(p);
}

void watch_emit(object *o, uint32_t event) {
        static uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg ev = { .hdr = { .op = IPCB_OP_WATCH_EVENT | IPCB_OP_REPLY } };
        ssize_t len;

        if (!watches || o->watch_silent)
                return;
        ev.watch_event.event = event;
        ev.watch_event.kind = o->kind;
        ev.watch_event.object = o->id;
        ev.watch_event.uid = (uint32_t)o->uid;
        ev.watch_event.gid = (uint32_t)o->gid;
        ev.watch_event.mode = o->mode;
        ev.watch_event.seals = o->seals;
        ev.watch_event.name = (ipcb_name){ .ptr = o->name, .len = o->name_len };
        emitting++;
        for (watch *w = watches, *next; w; w = next) {
                next = w->next; /* never freed during the walk (dead instead) */
                if (w->dead || w->kind != o->kind || !(w->events & event))
                        continue;
                if (w->prefix ? o->name_len < w->len || memcmp(o->name, w->name, w->len) != 0
                              : o->name_len != w->len || memcmp(o->name, w->name, w->len) != 0)
                        continue;
                ev.watch_event.watch = w->id;
                len = ipcb__proto_encode(&ev, buf, sizeof(buf));
                if (len < 0) { /* a bug: an event we built does not fit */
                        log_err("cannot encode a watch event: %s", strerror((int)-len));
                        break;
                }
                deliver(w->p, buf, (size_t)len);
        }
        if (--emitting == 0 && dead_left) {
                dead_left = false;
                for (watch *w = watches, *next; w; w = next) {
                        next = w->next;
                        if (w->dead)
                                unlink_free(w);
                }
        }
}
