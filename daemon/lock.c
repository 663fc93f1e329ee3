/* lock.c: segment locks.  Clients lock and unlock with atomics on the lock
 * word (proto/sempage.h); the daemon only hands out tokens and, when a
 * handle goes away holding the lock, marks the owner dead and wakes the
 * waiters, so the next locker is told IPCB_OWNER_DIED. */
#include "lock.h"

#include "futex.h"
#include "os.h"
#include "store.h"

#include "sempage.h"

#include <sys/mman.h>
#include <unistd.h>

int64_t lock_token_new(object *o) {
        if (!o->lock) {
                void *map;
                int fd, k = os_page_new(&fd, &map);
                if (k < 0)
                        return k;
                o->lock = map;
                o->lock_fd = fd;
                o->lock->magic = IPCB_LOCK_MAGIC;
                o->lock->version = 1;
                object_index(o); /* the page goes to a handle that exists */
        }
        /* Tokens only need to differ among this segment's live handles. */
        o->lock_next_token = (o->lock_next_token + 1) & IPCB_LOCK_OWNER_MASK;
        if (o->lock_next_token == 0)
                o->lock_next_token = 1;
        /* The next broker must not hand out a token that is still in use. */
        store_object_changed(o);
        return o->lock_next_token;
}

void lock_token_release(object *o, uint32_t token) {
        _Atomic uint32_t *w;

        if (!o->lock || token == 0 || store_frozen())
                return; /* frozen: shutting down, the holder lives on */
        w = &o->lock->word;
        for (int tries = 0; tries < 10000; tries++) {
                uint32_t v = atomic_load(w);
                if ((v & IPCB_LOCK_OWNER_MASK) != token) {
                        /* Its process may have died between unlocking and
                         * waking the sleepers: wake them on its behalf. */
                        futex_wake_all(w);
                        return;
                }
                if (atomic_compare_exchange_strong(w, &v, IPCB_LOCK_OWNER_DIED)) {
                        futex_wake_all(w);
                        return;
                }
        }
}

void lock_free(object *o) {
        if (o->lock)
                munmap(o->lock, IPCB_PAGE_SIZE);
        if (o->lock_fd >= 0)
                close(o->lock_fd);
        o->lock = NULL;
        o->lock_fd = -1;
}
