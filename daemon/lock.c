/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lock.c: segment locks.  Clients lock and unlock with atomics on the lock
 * word and keep the seqlock sequence beside it (proto/sempage.h); the daemon
 * hands out the page and tokens and, when a handle goes away holding the
 * lock, marks the owner dead, bumps the sequence and wakes the waiters and
 * pollers (sempoll.c), so the next locker is told IPCB_OWNER_DIED.  Only read-write handles get a
 * token and a writable page: writing the lock word is a write. */
#include "lock.h"

#include "futex.h"
#include "os.h"
#include "sempoll.h"
#include "store.h"
#include "watch.h"

#include "sempage.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* The grace period of a restored lock.  Tokens this broker gives follow
 * next (the catalog's count: never one the broker before gave), so the
 * broker before's are those outside (next, o->lock_next_token]. */
struct lock_restore {
        uint32_t held; /* the token in the word at the restart, until taken back */
        uint32_t next;
        uint32_t n, cap;
        uint32_t *taken; /* tokens taken back (a handle has or had each) */
};

/* Create the page on first use: 1 if made now, 0 if it was there. */
static int page_get(object *o) {
        void *map;
        int fd, k;

        if (o->lock)
                return 0;
        k = os_page_new(&fd, &map);
        if (k < 0)
                return k;
        o->lock = map;
        o->lock_fd = fd;
        o->lock->magic = IPCB_LOCK_MAGIC;
        o->lock->version = 1;
        object_index(o); /* the page goes to a handle that exists */
        return 1;
}

bool lock_page_restore(ipcb_lock_page *pg) {
        uint32_t v;

        /* The broker's own count: no poller has registered with this
         * broker yet (sempoll.c sets it again when one does). */
        atomic_store(&pg->pollers, 0);
        if (pg->magic == IPCB_LOCK_MAGIC && pg->version == 1)
                return false;
        pg->magic = IPCB_LOCK_MAGIC;
        pg->version = 1;
        /* Whatever holder the word names, nobody can prove it is theirs:
         * the lock is released as its owner's death is.  The sequence is
         * left odd (the bytes may be half-written) until the next locker's
         * unlock. */
        v = atomic_exchange(&pg->word, 0);
        if (v != 0) {
                atomic_store(&pg->seq, (atomic_load(&pg->seq) | 1) + 2);
                atomic_store(&pg->word, IPCB_LOCK_OWNER_DIED);
                futex_wake_all(&pg->word);
        }
        return true;
}

int64_t lock_token_new(object *o) {
        int k = page_get(o);

        if (k < 0)
                return k;
        /* Tokens only need to differ among this segment's live handles. */
        o->lock_next_token = (o->lock_next_token + 1) & IPCB_LOCK_OWNER_MASK;
        if (o->lock_next_token == 0)
                o->lock_next_token = 1;
        /* The next broker must not hand out a token that is still in use
         * (and stores the page if it is new). */
        store_object_changed(o);
        return o->lock_next_token;
}

int lock_page_ro_fd(object *o) {
        int k = page_get(o);

        if (k < 0)
                return k;
        if (k > 0)
                store_object_changed(o); /* a new page: store it */
        /* A description of its own: an O_RDONLY one can be mapped writable
         * by nobody, mprotect included, and cannot add seals; the inode
         * (0600, ours) cannot be reopened writable.  Made per request and
         * not kept: the fd budget counts 3 fds per segment (quota.c), and
         * a read-only handle asks once. */
        return os_reopen_ro(o->lock_fd);
}

void lock_token_release(object *o, uint32_t token) {
        _Atomic uint32_t *w;
        bool bumped = false;

        if (!o->lock || token == 0 || store_frozen())
                return; /* frozen: shutting down, the holder lives on */
        w = &o->lock->word;
        for (int tries = 0; tries < 10000; tries++) {
                uint32_t v = atomic_load(w);
                if ((v & IPCB_LOCK_OWNER_MASK) != token) {
                        /* Its process may have died between unlocking and
                         * waking the sleepers and pollers: wake them on its
                         * behalf. */
                        futex_wake_all(w);
                        sempoll_wake(o);
                        return;
                }
                /* Readers who began before must look again.  Adding 2 keeps
                 * the parity: a holder that died between its lock and its
                 * unlock left the sequence odd (maybe half-written bytes),
                 * and it stays odd until the next locker's unlock.  Done
                 * while the gone handle's token still holds the word, so
                 * that no next locker writes the sequence meanwhile. */
                if (!bumped) {
                        atomic_fetch_add(&o->lock->seq, 2);
                        bumped = true;
                }
                if (atomic_compare_exchange_strong(w, &v, IPCB_LOCK_OWNER_DIED)) {
                        futex_wake_all(w);
                        sempoll_wake(o);
                        watch_emit(o, IPCB_WE_OWNER_DIED);
                        return;
                }
        }
}

int lock_restored(object *o, uint32_t held) {
        if (!(o->lock_restore = calloc(1, sizeof(*o->lock_restore))))
                return -ENOMEM;
        o->lock_restore->held = held;
        o->lock_restore->next = o->lock_next_token;
        return 0;
}

int lock_token_reclaim_check(object *o, uint32_t token) {
        struct lock_restore *r = o->lock_restore;

        if (!r)
                return -ESRCH;
        /* given by this broker: within the count since the restart */
        if (((token - r->next - 1) & IPCB_LOCK_OWNER_MASK) <
            ((o->lock_next_token - r->next) & IPCB_LOCK_OWNER_MASK))
                return -ESRCH;
        for (uint32_t i = 0; i < r->n; i++)
                if (r->taken[i] == token)
                        return -ESRCH;
        if (r->n == r->cap) { /* room for lock_token_reclaimed */
                uint32_t cap = r->cap ? 2 * r->cap : 4, *t = realloc(r->taken, cap * sizeof(*t));
                if (!t)
                        return -ENOMEM;
                r->taken = t;
                r->cap = cap;
        }
        return 0;
}

void lock_token_reclaimed(object *o, uint32_t token) {
        struct lock_restore *r = o->lock_restore;

        r->taken[r->n++] = token;
        if (r->held == token)
                r->held = 0;
}

uint32_t lock_grace_end(object *o) {
        struct lock_restore *r = o->lock_restore;
        uint32_t held = r ? r->held : 0;

        if (r) {
                free(r->taken);
                free(r);
                o->lock_restore = NULL;
        }
        return held;
}

void lock_free(object *o) {
        (void)lock_grace_end(o); /* its grace state, if any: nothing to release now */
        if (o->lock)
                munmap(o->lock, IPCB_PAGE_SIZE);
        if (o->lock_fd >= 0)
                close(o->lock_fd);
        o->lock = NULL;
        o->lock_fd = -1;
}
