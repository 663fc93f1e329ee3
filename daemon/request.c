/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* request.c: one handler per opcode.  Each validates its arguments (names,
 * sizes, modes, flags, handles), asks policy, changes the registry and
 * answers with exactly one reply.  Refusals are logged at debug level,
 * rate-limited. */
#include "request.h"

#include "config.h"
#include "log.h"
#include "os.h"
#include "access.h"
#include "quota.h"
#include "registry.h"
#include "lock.h"
#include "sem.h"
#include "shm.h"
#include "store.h"
#include "sempoll.h"
#include "watch.h"
#include "turns.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

static log_ratelimit rl_refuse;

static void refuse(peer *p, const ipcb_msg *m, int status) {
        if (log_verbose && log_ratelimit_ok(&rl_refuse, 20))
                log_debug("client pid %d uid %u: op 0x%04x refused: %s", (int)p->cred.pid,
                          (unsigned)p->cred.uid, m->hdr.op, strerror(-status));
        peer_reply_error(p, &m->hdr, status);
}

static ipcb_msg reply_to(const ipcb_msg *m) {
        return (ipcb_msg){ .hdr = { .op = m->hdr.op | IPCB_OP_REPLY, .id = m->hdr.id } };
}

static void stat_fill(object *o, ipcb_stat_rec *r) {
        *r = (ipcb_stat_rec){
                .kind = o->kind,
                .name = { .ptr = o->name, .len = o->name_len },
                .uid = (uint32_t)o->uid,
                .gid = (uint32_t)o->gid,
                .mode = o->mode,
                .flags = o->flags | (o->linked ? 0 : IPCB_WF_UNLINKED),
                .seals = object_seals(o),  /* refreshes o->seals */
                .handles = o->handles,
                .id = o->id,
                .size = object_size(o),
        };
        if (o->sem) {
                sem_counts(o, &r->sem_value, &r->sem_undo_held);
                r->sem_max = o->sem->max;
        }
}

static int do_hello(peer *p, const ipcb_msg *m) {
        ipcb_msg r = reply_to(m);

        if (m->hello.version != IPCB_PROTO_VERSION)
                return -EPROTONOSUPPORT;
        p->hello_done = true;
        r.hello_reply.version = IPCB_PROTO_VERSION;
        r.hello_reply.caps = IPCB_CAP_SHM_FD_ONLY | IPCB_CAP_SEM_OWE | IPCB_CAP_SEM_APPLY;
        r.hello_reply.msg_max = IPCB_MSG_MAX;
        r.hello_reply.name_max = IPCB_NAME_MAX;
        r.hello_reply.fds_max = IPCB_FDS_MAX;
        peer_reply(p, &r, NULL, 0);
        return 0;
}

/* OWNED: the object must belong to the uid the request names (its own uid
 * for IPCB_WO_SELF), checked with the open, so that a name squatted by
 * another uid is refused, not opened.  -EPERM otherwise. */
static int check_owner(const peer *p, const object *o, uint32_t flags, uint32_t owner) {
        uint32_t want = owner == IPCB_WO_SELF ? (uint32_t)p->cred.uid : owner;

        if (!(flags & IPCB_WF_OWNED))
                return 0;
        return (uint32_t)o->uid == want ? 0 : -EPERM;
}

/* An SHM reply's fields but the handle: what the segment is now, with the
 * size object_size(o), or o->size without asking the kernel (FD_ONLY). */
static void shm_reply_fill(ipcb_msg *r, object *o, uint32_t access, uint64_t size) {
        r->shm_reply.size = size;
        r->shm_reply.seals = o->seals;
        r->shm_reply.access = access;
        r->shm_reply.uid = (uint32_t)o->uid;
        r->shm_reply.gid = (uint32_t)o->gid;
        r->shm_reply.mode = o->mode;
}

/* Give p a handle on o and send the fd that matches the access.  lock_token
 * (0: none) is a reclaimed token for the new handle. */
static int reply_shm_handle(peer *p, const ipcb_msg *m, object *o, uint32_t access,
                            uint32_t lock_token) {
        ipcb_msg r = reply_to(m);
        int64_t h;
        int fd, k;

        /* A handle with a lock token needs its process watched (as
         * SHM_LOCK_PAGE does), so that its death releases the lock. */
        if (lock_token && (k = peer_watch_process(p)) < 0)
                return k;
        h = peer_handle_add(p, o, access);
        if (h < 0)
                return (int)h;
        if (lock_token) {
                lock_token_reclaimed(o, lock_token);
                peer_handle_get(p, (uint64_t)h)->lock_token = lock_token;
        }
        fd = access == IPCB_WA_READ_WRITE ? o->fd_rw : o->fd_ro;
        r.shm_reply.handle = (uint64_t)h;
        shm_reply_fill(&r, o, access, object_size(o));
        peer_reply(p, &r, &fd, 1);
        return 0;
}

/* FD_ONLY: the fd that matches the access, and no handle (handle 0).  The
 * fd leaves as a handle's would (its inode indexed).  The size is the one
 * the broker knows without asking the kernel: a growable segment's is the
 * size it was created at, and it may have grown since (never shrunk); the
 * client fstats the fd it gets anyway (protocol.md), so the open costs no
 * fstat.  A read-only
 * description that no handle needs is taken from o first and closed once
 * sent (a queued reply holds its own copy): o is not touched after
 * peer_reply, which may close p, and with p's handles o itself. */
static void reply_shm_fd(peer *p, const ipcb_msg *m, object *o, uint32_t access) {
        ipcb_msg r = reply_to(m);
        int fd = access == IPCB_WA_READ_WRITE ? o->fd_rw : o->fd_ro;
        bool drop = access == IPCB_WA_READ_ONLY && o->ro_handles == 0;

        if (drop)
                o->fd_ro = -1;
        object_index(o);
        shm_reply_fill(&r, o, access, o->size);
        peer_reply(p, &r, &fd, 1);
        if (drop)
                close(fd);
}

static int do_shm_create(peer *p, const ipcb_msg *m) {
        const ipcb_name *n = &m->shm_create.name;
        object *o;
        int k;

        if ((k = ipcb__name_check(n->ptr, n->len)) < 0)
                return k;
        if ((m->shm_create.flags & ~IPCB_WF_CREATE_MASK) ||
            (m->shm_create.mode & ~IPCB_MODE_MASK) ||
            (m->shm_create.size == 0 && !(m->shm_create.flags & IPCB_WF_GROWABLE)) ||
            m->shm_create.size > INT64_MAX)
                return -EINVAL;
        if (m->shm_create.size > cfg.max_segment_size)
                return -EFBIG;
        if ((k = config_reserve_check(&p->cred, n->ptr, n->len)) < 0)
                return k;
        if (registry_lookup(IPCB_KIND_SHM, n->ptr, n->len))
                return -EEXIST;

        if ((k = quota_charge_object(p->cred.uid, IPCB_KIND_SHM, m->shm_create.size)) < 0)
                return k;
        k = shm_new(n->ptr, n->len, m->shm_create.size, m->shm_create.mode,
                    m->shm_create.flags, &p->cred, &o);
        if (k < 0) {
                quota_uncharge_object(p->cred.uid, IPCB_KIND_SHM, m->shm_create.size);
                return k;
        }
        access_charged(o, p->cred.uid, m->shm_create.size);
        k = reply_shm_handle(p, m, o, IPCB_WA_READ_WRITE, 0);
        if (k < 0) { /* no handle could be given: nothing may be left behind */
                o->watch_silent = true;
                object_unlink(o);
        }
        return k;
}

static int do_shm_open(peer *p, const ipcb_msg *m) {
        const ipcb_name *n = &m->shm_open.name;
        uint32_t access = m->shm_open.access, flags = m->shm_open.flags, token = 0;
        object *o;
        int k;

        if ((k = ipcb__name_check(n->ptr, n->len)) < 0)
                return k;
        if ((access != IPCB_WA_READ_ONLY && access != IPCB_WA_READ_WRITE) ||
            (flags & ~IPCB_WF_SHM_OPEN_MASK) || (!(flags & IPCB_WF_OWNED) && m->shm_open.owner) ||
            ((flags & IPCB_WF_FD_ONLY) && (flags & IPCB_WF_RECLAIM)) ||
            (flags & IPCB_WF_RECLAIM ? m->shm_open.token == 0 ||
                                               m->shm_open.token > IPCB_LOCK_OWNER_MASK ||
                                               access != IPCB_WA_READ_WRITE /* locks write */
                                     : m->shm_open.token || m->shm_open.nonce))
                return -EINVAL;
        o = registry_lookup(IPCB_KIND_SHM, n->ptr, n->len);
        if (!o)
                return -ENOENT;
        if ((k = check_owner(p, o, flags, m->shm_open.owner)) < 0)
                return k;
        if ((k = policy_may_open(o, &p->cred, access)) < 0)
                return k;
        /* Frozen (or published write-sealed): nobody gets write access. */
        if (access == IPCB_WA_READ_WRITE && access_write_sealed(o))
                return -EROFS;
        /* RECLAIM: the lock token this client's handle had before a broker
         * restart, proven by the nonce it was given with it for this uid;
         * once, and not one this broker gave (lock.c). */
        if (flags & IPCB_WF_RECLAIM) {
                token = m->shm_open.token;
                if (!o->lock || m->shm_open.nonce != store_lock_nonce(o, token, p->cred.uid))
                        return -ESRCH;
                if ((k = lock_token_reclaim_check(o, token)) < 0)
                        return k;
        }
        if (access == IPCB_WA_READ_ONLY && (k = shm_ro_fd(o)) < 0)
                return k;
        if (flags & IPCB_WF_FD_ONLY) {
                reply_shm_fd(p, m, o, access);
                return 0;
        }
        k = reply_shm_handle(p, m, o, access, token);
        if (k < 0 && o->ro_handles == 0)
                shm_ro_fd_drop(o);
        return k;
}

static int do_shm_lock_page(peer *p, const ipcb_msg *m) {
        handle_slot *h = peer_handle_get(p, m->shm_lock_page.handle);
        ipcb_msg r = reply_to(m);
        int64_t token;
        int k, fd;

        if (!h || h->obj->kind != IPCB_KIND_SHM)
                return -EBADF;
        /* Taking the lock writes the lock word: a read-only handle gets no
         * token and the page read-only, to read the seqlock sequence. */
        if (h->access != IPCB_WA_READ_WRITE) {
                if ((fd = lock_page_ro_fd(h->obj)) < 0)
                        return fd;
                r.lock_reply.token = 0;
                peer_reply(p, &r, &fd, 1); /* borrows fd (a queued reply keeps a copy) */
                close(fd);
                return 0;
        }
        if (!h->lock_token) {
                if ((k = peer_watch_process(p)) < 0)
                        return k;
                if ((token = lock_token_new(h->obj)) < 0)
                        return (int)token;
                h->lock_token = (uint32_t)token;
        }
        r.lock_reply.token = h->lock_token;
        r.lock_reply.nonce = store_lock_nonce(h->obj, h->lock_token, p->cred.uid);
        peer_reply(p, &r, &h->obj->lock_fd, 1);
        return 0;
}

/* Give p a handle on semaphore o (an undo handle if asked) and send its
 * page.  reclaim: the reserved slot to take back, showing nonce. */
static int reply_sem_handle(peer *p, const ipcb_msg *m, object *o, bool undo, uint32_t reclaim,
                            uint64_t nonce) {
        ipcb_msg r = reply_to(m);
        uint32_t slot = reclaim, seq = 0;
        uint64_t owed = 0;
        int64_t h;
        int k;

        if (undo && (k = peer_watch_process(p)) < 0)
                return k;
        if (reclaim && (k = sem_slot_reclaim(o, reclaim, p->cred.uid, nonce, &seq, &owed)) < 0)
                return k;
        if (undo && !reclaim && (k = sem_slot_alloc(o, p->cred.uid, &slot, &seq, &nonce)) < 0)
                return k;
        h = peer_handle_add(p, o, IPCB_WA_READ_WRITE);
        if (h < 0) {
                if (slot)
                        sem_slot_release(o, slot, owed);
                return (int)h;
        }
        peer_handle_get(p, (uint64_t)h)->sem_slot = slot;
        peer_handle_get(p, (uint64_t)h)->owed = owed; /* a reclaimed slot owes what it owed */
        r.sem_reply.handle = (uint64_t)h;
        r.sem_reply.slot = slot;
        r.sem_reply.seq = seq;
        r.sem_reply.max = o->sem->max;
        r.sem_reply.value = sem_value(o);
        r.sem_reply.uid = (uint32_t)o->uid;
        r.sem_reply.gid = (uint32_t)o->gid;
        r.sem_reply.mode = o->mode;
        r.sem_reply.nonce = slot ? nonce : 0;
        peer_reply(p, &r, &o->fd_rw, 1);
        return 0;
}

static int do_sem_create(peer *p, const ipcb_msg *m) {
        const ipcb_name *n = &m->sem_create.name;
        uint32_t max = m->sem_create.max ? m->sem_create.max : IPCB_SEM_VALUE_MAX;
        object *o;
        int k;

        if ((k = ipcb__name_check(n->ptr, n->len)) < 0)
                return k;
        if ((m->sem_create.flags & ~IPCB_WF_SEM_CREATE_MASK) ||
            (m->sem_create.mode & ~IPCB_MODE_MASK) || max > IPCB_SEM_VALUE_MAX ||
            m->sem_create.initial > max)
                return -EINVAL;
        if ((k = config_reserve_check(&p->cred, n->ptr, n->len)) < 0)
                return k;
        if (registry_lookup(IPCB_KIND_SEM, n->ptr, n->len))
                return -EEXIST;
        if ((k = quota_charge_object(p->cred.uid, IPCB_KIND_SEM, IPCB_PAGE_SIZE)) < 0)
                return k;
        k = sem_new(n->ptr, n->len, m->sem_create.initial, max, m->sem_create.mode,
                    m->sem_create.flags, &p->cred, &o);
        if (k < 0) {
                quota_uncharge_object(p->cred.uid, IPCB_KIND_SEM, IPCB_PAGE_SIZE);
                return k;
        }
        access_charged(o, p->cred.uid, IPCB_PAGE_SIZE);
        k = reply_sem_handle(p, m, o, m->sem_create.flags & IPCB_WF_UNDO, 0, 0);
        if (k < 0) { /* no handle could be given: nothing may be left behind */
                o->watch_silent = true;
                object_unlink(o);
        }
        return k;
}

static int do_sem_open(peer *p, const ipcb_msg *m) {
        const ipcb_name *n = &m->sem_open.name;
        uint32_t flags = m->sem_open.flags, reclaim = 0;
        object *o;
        int k;

        if ((k = ipcb__name_check(n->ptr, n->len)) < 0)
                return k;
        if (flags & IPCB_WF_RECLAIM) {
                reclaim = IPCB_WF_RECLAIM_SLOT(flags);
                if (!(flags & IPCB_WF_UNDO) || reclaim == 0)
                        return -EINVAL;
                flags &= ~(IPCB_WF_RECLAIM | (0xfffu << 16));
        } else if (m->sem_open.nonce)
                return -EINVAL;
        if ((flags & ~(IPCB_WF_UNDO | IPCB_WF_OWNED)) ||
            (!(flags & IPCB_WF_OWNED) && m->sem_open.owner))
                return -EINVAL;
        o = registry_lookup(IPCB_KIND_SEM, n->ptr, n->len);
        if (!o)
                return -ENOENT;
        if ((k = check_owner(p, o, flags, m->sem_open.owner)) < 0)
                return k;
        /* Acquiring and releasing both write the page. */
        if ((k = policy_may_open(o, &p->cred, IPCB_WA_READ_WRITE)) < 0)
                return k;
        return reply_sem_handle(p, m, o, flags & IPCB_WF_UNDO, reclaim, m->sem_open.nonce);
}

/* SEM_OWE: release through an undo handle, owing it back.  The release is
 * one CAS on the state word, like a client's; what is owed is kept here,
 * per handle, and taken back when the handle goes (peer.c). */
static int do_sem_owe(peer *p, const ipcb_msg *m) {
        handle_slot *h = peer_handle_get(p, m->sem_owe.handle);
        ipcb_msg r = reply_to(m);
        int k;

        if (!h)
                return -EBADF;
        if (h->obj->kind != IPCB_KIND_SEM || h->sem_slot == 0 ||
            (m->sem_owe.release == 0 && m->sem_owe.owe == 0))
                return -EINVAL;
        if (UINT64_MAX - h->owed < m->sem_owe.owe)
                return -EOVERFLOW;
        if (m->sem_owe.release && (k = sem_release_tokens(h->obj, m->sem_owe.release)) < 0)
                return k;
        h->owed += m->sem_owe.owe;
        store_undo_owed(h->obj, h->sem_slot, h->owed);
        r.sem_owe_reply.owed = h->owed;
        peer_reply(p, &r, NULL, 0);
        return 0;
}

/* SEM_APPLY: the counts of several semaphores, through plain handles of
 * this connection, changed at once within this request, all or none: a
 * client killed once it has sent it cannot leave part of it done (the
 * preload shim's multi-operation semop). */
static int do_sem_apply(peer *p, const ipcb_msg *m) {
        object *o[IPCB_SEM_APPLY_MAX];
        int32_t delta[IPCB_SEM_APPLY_MAX];
        ipcb_msg r = reply_to(m);
        unsigned n = m->sem_apply.count;
        int k;

        for (unsigned i = 0; i < n; i++) {
                ipcb_sem_apply_ent e;
                handle_slot *h;

                ipcb__sem_apply_ent_at(m, i, &e);
                if (!(h = peer_handle_get(p, e.handle)))
                        return -EBADF;
                if (h->obj->kind != IPCB_KIND_SEM || h->sem_slot != 0 || e.delta == 0 ||
                    (int64_t)e.delta < -(int64_t)h->obj->sem->max || (int64_t)e.delta > (int64_t)h->obj->sem->max)
                        return -EINVAL;
                for (unsigned j = 0; j < i; j++)
                        if (o[j] == h->obj)
                                return -EINVAL;
                o[i] = h->obj;
                delta[i] = e.delta;
        }
        if ((k = sem_apply(o, delta, n)) < 0)
                return k;
        peer_reply(p, &r, NULL, 0);
        return 0;
}

static int do_close(peer *p, const ipcb_msg *m) {
        ipcb_msg r = reply_to(m);
        bool noreply = m->hdr.flags & IPCB_HF_NOREPLY;

        if (!peer_handle_get(p, m->close.handle))
                return noreply ? 0 : -EBADF;
        peer_handle_release(p, m->close.handle);
        if (!noreply)
                peer_reply(p, &r, NULL, 0);
        return 0;
}

/* UNLINK and STAT both name one object. */
static int lookup_named(const ipcb_msg *m, object **ret) {
        const ipcb_name *n = &m->stat.name;
        int k;

        if (m->stat.kind < 1 || m->stat.kind > IPCB_KIND_MAX_)
                return -EINVAL;
        if ((k = ipcb__name_check(n->ptr, n->len)) < 0)
                return k;
        *ret = registry_lookup(m->stat.kind, n->ptr, n->len);
        return *ret ? 0 : -ENOENT;
}

static int do_unlink(peer *p, const ipcb_msg *m) {
        ipcb_msg r = reply_to(m);
        object *o;
        int k;

        if ((k = lookup_named(m, &o)) < 0)
                return k;
        if ((k = policy_may_manage(o, &p->cred)) < 0)
                return k;
        object_unlink(o);
        peer_reply(p, &r, NULL, 0);
        return 0;
}

static int do_stat(peer *p, const ipcb_msg *m) {
        ipcb_msg r = reply_to(m);
        object *o;
        int k;

        if ((k = lookup_named(m, &o)) < 0)
                return k;
        stat_fill(o, &r.stat_reply);
        peer_reply(p, &r, NULL, 0);
        return 0;
}

/* Who holds o, for a caller who may read it; at most IPCB_HOLDERS_MAX
 * records, and the total. */
static int do_holders(peer *p, const ipcb_msg *m) {
        static ipcb_holder_rec recs[IPCB_HOLDERS_MAX];
        ipcb_msg r = reply_to(m);
        object *o;
        int k;

        if ((k = lookup_named(m, &o)) < 0)
                return k;
        /* Who holds an object says who uses it: only for those who may read
         * it (as ipcs shows only what the caller may read). */
        if ((k = policy_may_open(o, &p->cred, IPCB_WA_READ_ONLY)) < 0)
                return k;
        r.holders_reply.id = o->id;
        r.holders_reply.total = peer_holders(o, recs, IPCB_HOLDERS_MAX);
        r.holders_reply.count = r.holders_reply.total < IPCB_HOLDERS_MAX ? r.holders_reply.total
                                                                          : IPCB_HOLDERS_MAX;
        r.holders_reply.recs = recs;
        peer_reply(p, &r, NULL, 0);
        return 0;
}

/* LIST walks one kind's id-ordered list, or merges every kind's lists by
 * id: it never steps over objects it does not return.  The cursor is the
 * last id returned; where a page resumes is found in O(log n) whether or not
 * that object still lives, so a listing sees every object that lived
 * throughout it, once. */
static int do_list(peer *p, const ipcb_msg *m) {
        static ipcb_stat_rec recs[IPCB_MSG_MAX / IPCB_STAT_FIXED];
        size_t room = IPCB_MSG_MAX - IPCB_HDR_SIZE - IPCB_LIST_REPLY_FIXED;
        unsigned max = m->list.max ? m->list.max : UINT16_MAX, count = 0;
        object *it[IPCB_KIND_MAX_ + 1] = { 0 };
        ipcb_msg r = reply_to(m);
        uint64_t last = m->list.cursor;
        object *o;

        if (m->list.kind > IPCB_KIND_MAX_)
                return -EINVAL;
        for (uint8_t k = 1; k <= IPCB_KIND_MAX_; k++)
                if (!m->list.kind || m->list.kind == k)
                        it[k] = registry_kind_first_after(k, m->list.cursor);
        for (;;) {
                uint8_t kind = 0;
                for (uint8_t k = 1; k <= IPCB_KIND_MAX_; k++)
                        if (it[k] && (!kind || it[k]->id < it[kind]->id))
                                kind = k;
                o = kind ? it[kind] : NULL;
                if (!o || count == max || count == sizeof(recs) / sizeof(recs[0]))
                        break;
                stat_fill(o, &recs[count]);
                if (ipcb_stat_rec_size(&recs[count]) > room)
                        break;
                room -= ipcb_stat_rec_size(&recs[count]);
                last = o->id;
                count++;
                it[kind] = registry_kind_next(o);
        }
        r.list_reply.next_cursor = last;
        r.list_reply.more = o != NULL;
        r.list_reply.count = (uint16_t)count;
        r.list_reply.recs = recs;
        peer_reply(p, &r, NULL, 0);
        return 0;
}

static int dispatch(peer *p, const ipcb_msg *m) {
        if (m->hdr.op == IPCB_OP_HELLO)
                return do_hello(p, m);
        if (!p->hello_done)
                return -EPROTO;
        switch (m->hdr.op) {
        case IPCB_OP_CLOSE:      return do_close(p, m);
        case IPCB_OP_UNLINK:     return do_unlink(p, m);
        case IPCB_OP_STAT:       return do_stat(p, m);
        case IPCB_OP_LIST:       return do_list(p, m);
        case IPCB_OP_HOLDERS:    return do_holders(p, m);
        case IPCB_OP_SHM_CREATE: return do_shm_create(p, m);
        case IPCB_OP_SHM_OPEN:   return do_shm_open(p, m);
        case IPCB_OP_SHM_LOCK_PAGE: return do_shm_lock_page(p, m);
        case IPCB_OP_SEM_CREATE: return do_sem_create(p, m);
        case IPCB_OP_SEM_OPEN:   return do_sem_open(p, m);
        case IPCB_OP_SET_ACCESS: return access_set(p, m);
        case IPCB_OP_FREEZE:     return access_freeze(p, m);
        case IPCB_OP_SHM_REGISTER: return access_register(p, m);
        case IPCB_OP_MEMFD:      return access_memfd(p, m);
        case IPCB_OP_QUOTA:      return access_quota(p, m);
        case IPCB_OP_SEM_POLL:   return sempoll_add(p, m);
        case IPCB_OP_SEM_NOTIFY: return sempoll_notify_fd(p, m);
        case IPCB_OP_SEM_OWE:    return do_sem_owe(p, m);
        case IPCB_OP_SEM_APPLY:  return do_sem_apply(p, m);
        case IPCB_OP_LOCK_POLL:  return sempoll_add(p, m);
        case IPCB_OP_LOCK_NOTIFY: return sempoll_notify_fd(p, m);
        case IPCB_OP_WATCH_ADD:  return watch_add(p, m);
        case IPCB_OP_WATCH_REMOVE: return watch_remove(p, m);
        default:                 return -EOPNOTSUPP;
        }
}

/* Watches hear what a request that succeeded did to a name (after its
 * reply: an event never overtakes the answer to the request that caused
 * it on the requester's own connection).  Unlinks and destruction are
 * announced where they happen (object.c). */
static void request_announce(const ipcb_msg *m) {
        const ipcb_name *n;
        uint32_t event;
        object *o;
        int kind;

        switch (m->hdr.op) {
        case IPCB_OP_SHM_CREATE:
                kind = IPCB_KIND_SHM, n = &m->shm_create.name, event = IPCB_WE_CREATED;
                break;
        case IPCB_OP_SHM_REGISTER:
                kind = IPCB_KIND_SHM, n = &m->shm_register.name, event = IPCB_WE_CREATED;
                break;
        case IPCB_OP_SEM_CREATE:
                kind = IPCB_KIND_SEM, n = &m->sem_create.name, event = IPCB_WE_CREATED;
                break;
        case IPCB_OP_SET_ACCESS:
                kind = m->set_access.kind, n = &m->set_access.name, event = IPCB_WE_ACCESS;
                break;
        default: /* FREEZE: announced when done (access.c) */
                return;
        }
        o = registry_lookup(kind, n->ptr, n->len);
        if (o)
                watch_emit(o, event);
}

bool request_may_store(uint16_t op) {
        return op == IPCB_OP_SHM_CREATE || op == IPCB_OP_SEM_CREATE || op == IPCB_OP_SHM_REGISTER ||
               op == IPCB_OP_SHM_LOCK_PAGE;
}

/* A handler either sent its reply and returns 0, or returns the negative
 * errno for an error reply sent here. */
void request_dispatch(peer *p, const ipcb_msg *m) {
        uint64_t t0 = uv_hrtime();
        int k = dispatch(p, m);

        if (k < 0)
                refuse(p, m, k);
        else
                request_announce(m);
        turn_request(m->hdr.op, uv_hrtime() - t0);
}
