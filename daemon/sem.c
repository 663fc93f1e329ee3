/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sem.c: semaphores in the daemon: page creation, undo slots, and the
 * recovery that gives back an undo handle's tokens.  The page is written by
 * clients, so everything read from it is bounded before use, and every CAS
 * loop is bounded: users who keep scribbling on their semaphore's page can
 * break that semaphore, never stall the daemon. */
#include "sem.h"
#include "sempoll.h"

#include "futex.h"
#include "log.h"
#include "os.h"
#include "proto.h"
#include "registry.h"
#include "store.h"
#include "watch.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CAS_TRIES 10000

/* ---- the mapping cache ----
 * A mapping per semaphore would cap them at vm.max_map_count (65530) and
 * cost a page of RSS each.  The daemon needs a page only to hand out and
 * settle undo slots and to wake sleepers; stat reads it with pread (or
 * through the mapping if it is mapped: sem_counts).  So at
 * most SEM_MAP_CACHE pages are mapped, replaced in turn (a clock without
 * reference bits: the cost of a miss is one mmap). */
static object *cache[SEM_MAP_CACHE];
static unsigned cache_hand, cache_used;

static void cache_evict(uint32_t i) {
        object *o = cache[i];

        if (!o)
                return;
        munmap(o->sem->page, IPCB_PAGE_SIZE);
        o->sem->page = NULL;
        o->sem->map_slot = 0;
        cache[i] = NULL;
        cache_used--;
}

void sem_page_adopt(object *o, void *map) {
        uint32_t i = cache_hand;

        cache_hand = (cache_hand + 1) % SEM_MAP_CACHE;
        cache_evict(i);
        cache[i] = o;
        cache_used++;
        o->sem->page = map;
        o->sem->map_slot = i + 1;
}

ipcb_sem_page *sem_page(object *o) {
        void *map;

        if (o->sem->page)
                return o->sem->page;
        map = mmap(NULL, IPCB_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, o->fd_rw, 0);
        if (map == MAP_FAILED) {
                log_warn("semaphore '%s': cannot map its page: %m", o->name);
                return NULL;
        }
        sem_page_adopt(o, map);
        return o->sem->page;
}

unsigned sem_pages_mapped(void) {
        return cache_used;
}

/* A new semaphore's page is written, not mapped.  A mapping made here
 * would push an older one out of the cache, and unmapping flushes the TLB
 * of every CPU the daemon has run on and waits for each: milliseconds in a
 * VM whose other vCPU the host has descheduled.  The page is mapped when
 * the daemon first needs it (sem_page). */
static int page_write_new(int fd, uint32_t initial, uint32_t max) {
        const uint32_t head[4] = { IPCB_SEM_MAGIC, 1, max, IPCB_SEM_SLOTS };
        const uint64_t word = ipcb_w_pack((ipcb_w){ .count = initial });
        unsigned char buf[offsetof(ipcb_sem_page, word) + sizeof(word)];
        ssize_t n;

        _Static_assert(offsetof(ipcb_sem_page, version) == 4 && offsetof(ipcb_sem_page, max) == 8 &&
                               offsetof(ipcb_sem_page, nslots) == 12 &&
                               offsetof(ipcb_sem_page, word) == sizeof(head),
                       "the page's header is written as four words and W");
        memcpy(buf, head, sizeof(head));
        memcpy(buf + sizeof(head), &word, sizeof(word));
        n = pwrite(fd, buf, sizeof(buf), 0);
        return n == (ssize_t)sizeof(buf) ? 0 : n < 0 ? -errno : -EIO;
}

int sem_new(const char *name, size_t name_len, uint32_t initial, uint32_t max, uint32_t mode,
            uint32_t flags, const cred *owner, object **ret) {
        sem_state *st;
        object *o;
        int fd, k;

        k = os_page_new(&fd, NULL);
        if (k == 0 && (k = page_write_new(fd, initial, max)) < 0)
                close(fd);
        if (k < 0)
                return k;
        o = registry_add(IPCB_KIND_SEM, name, name_len, sizeof(sem_state));
        if (!o) {
                close(fd);
                return -ENOMEM;
        }
        st = registry_trailer(o);
        st->max = max;
        o->uid = owner->uid;
        o->gid = owner->gid;
        o->mode = mode;
        o->flags = flags & IPCB_WF_PERSISTENT;
        o->size = IPCB_PAGE_SIZE;
        o->fd_rw = fd;
        o->sem = st;
        /* F_SEAL_SEAL is among them: stat never asks again (object.c) */
        k = fcntl(fd, F_GET_SEALS);
        o->seals = k > 0 ? (uint32_t)k : 0;
        store_object_added(o);
        *ret = o;
        return 0;
}

bool sem_page_restore(ipcb_sem_page *pg, uint32_t max) {
        bool scribbled = pg->magic != IPCB_SEM_MAGIC || pg->version != 1 || pg->max != max ||
                         pg->nslots != IPCB_SEM_SLOTS;
        int tries;

        if (scribbled) {
                pg->magic = IPCB_SEM_MAGIC;
                pg->version = 1;
                pg->max = max;
                pg->nslots = IPCB_SEM_SLOTS;
                /* The broker's own count: no poller has registered with
                 * this broker yet (sempoll.c sets it again when one does). */
                atomic_store(&pg->pollers, 0);
        }
        /* No client writes a count above max or a last operation in a slot
         * that does not exist: the count is clamped, the name cleared. */
        for (tries = 0; tries < CAS_TRIES; tries++) {
                uint64_t wv = atomic_load(&pg->word);
                ipcb_w w = ipcb_w_unpack(wv);
                if (w.count <= max && w.slot <= IPCB_SEM_SLOTS)
                        break;
                scribbled = true;
                if (w.count > max)
                        w.count = max;
                if (w.slot > IPCB_SEM_SLOTS)
                        w.slot = w.seq = 0;
                if (atomic_compare_exchange_strong(&pg->word, &wv, ipcb_w_pack(w)))
                        break;
        }
        return scribbled;
}

int sem_slot_alloc(object *o, uid_t uid, uint32_t *ret_slot, uint32_t *ret_seq, uint64_t *ret_nonce) {
        sem_state *st = o->sem;
        ipcb_sem_page *pg;

        if (st->slots_used >= IPCB_SEM_SLOTS)
                return -EUSERS;
        if (!(pg = sem_page(o)))
                return -ENOMEM;
        for (uint32_t w = 0; w < SEM_SLOT_WORDS; w++) {
                if (st->slot_used[w] == UINT64_MAX)
                        continue;
                uint32_t i = w * 64 + (uint32_t)__builtin_ctzll(~st->slot_used[w]);
                if (i >= IPCB_SEM_SLOTS)
                        break;
                /* A free slot was reset by sem_slot_release (or never used):
                 * its seq continues, so (slot, seq) never names two operations. */
                ipcb_slotw s = ipcb_slot_unpack(atomic_load(&pg->slot[i]));
                uint32_t seq = (s.seq + 1) & SEQ_MASK;
                atomic_store(&pg->slot[i], ipcb_slot_pack((ipcb_slotw){ .seq = seq }));
                sem_bit_set(st->slot_used, i, true);
                st->slots_used++;
                *ret_slot = i + 1;
                *ret_seq = (seq + 1) & SEQ_MASK;
                *ret_nonce = store_nonce(o->salt, i + 1);
                store_undo_bind(o, i + 1, uid, *ret_nonce);
                return 0;
        }
        return -EUSERS;
}

/* Settle slot i's pending operation, if any, the way the helping rule
 * guarantees is right (docs/semaphores.md), and return what it holds. */
static uint32_t slot_settle(ipcb_sem_page *pg, uint32_t i, uint32_t *ret_seq) {
        _Atomic uint64_t *sp = &pg->slot[i];

        for (int tries = 0; tries < CAS_TRIES; tries++) {
                uint64_t sv = atomic_load(sp);
                ipcb_slotw s = ipcb_slot_unpack(sv);
                *ret_seq = s.seq;
                if (!s.pending)
                        return s.held;
                ipcb_w w = ipcb_w_unpack(atomic_load(&pg->word));
                /* W still names this operation: its CAS on W happened, commit
                 * it.  W names another: had it happened, whoever replaced it
                 * in W would have committed it first; so it did not: drop it. */
                bool happened = w.slot == i + 1 && w.seq == s.seq;
                ipcb_slotw r = { .held = happened ? s.target : s.held, .seq = s.seq };
                if (atomic_compare_exchange_strong(sp, &sv, ipcb_slot_pack(r)))
                        return r.held;
        }
        log_client_warn("semaphore page: slot %u keeps changing; treating it as empty", i + 1);
        return 0;
}

/* Give `give` tokens to W's count and take `take` from it in one CAS:
 * count + give - take, clamped to [0, max] once, as the kernel clamps
 * semadj at exit (exact: W unchanged instead, -EOVERFLOW past max,
 * -ENOBUFS below 0).  It helps W's last undo operation first, as everyone
 * who replaces it must; the new W names none.  -EAGAIN if W keeps changing
 * (a scribbled page). */
static int word_change(ipcb_sem_page *pg, uint64_t give, uint64_t take, uint32_t max, bool exact) {
        for (int tries = 0; tries < CAS_TRIES; tries++) {
                uint64_t wv = atomic_load(&pg->word);
                ipcb_w w = ipcb_w_unpack(wv);
                uint64_t up = (uint64_t)w.count + give;

                ipcb_sem_help(pg, w);
                if (exact && up > max)
                        return -EOVERFLOW;
                if (exact && up < take)
                        return -ENOBUFS;
                up = up > take ? up - take : 0;
                if (atomic_compare_exchange_strong(&pg->word, &wv,
                                                   ipcb_w_pack((ipcb_w){ .count = (uint32_t)(up > max ? max : up) })))
                        return 0;
        }
        return -EAGAIN;
}

uint32_t sem_slot_free(object *o, uint32_t slot) {
        sem_state *st = o->sem;
        ipcb_sem_page *pg;
        uint32_t i = slot - 1, held, seq;

        if (slot == 0 || slot > IPCB_SEM_SLOTS || !sem_bit(st->slot_used, i))
                return 0;
        if (store_frozen()) {
                /* Shutting down with the fd store: the holder is alive and
                 * the next broker settles the slot (store.c). */
                sem_bit_set(st->slot_used, i, false);
                st->slots_used--;
                return 0;
        }
        if (!(pg = sem_page(o))) {
                /* Only if mmap fails (out of memory): the tokens stay held. */
                log_client_warn("semaphore '%s': slot %u not settled; its tokens are lost", o->name,
                                slot);
                sem_bit_set(st->slot_used, i, false);
                st->slots_used--;
                store_undo_unbind(o, slot);
                return 0;
        }
        held = slot_settle(pg, i, &seq);
        /* W may still name the slot's last operation, committed now: a
         * helper finds it committed (or, once the slot is given again, at
         * another seq) and leaves it, and sem_settle_tokens replaces it. */
        atomic_store(&pg->slot[i], ipcb_slot_pack((ipcb_slotw){ .seq = seq }));
        sem_bit_set(st->slot_used, i, false);
        st->slots_used--;
        store_undo_unbind(o, slot);
        return held > st->max ? st->max : held;
}

void sem_settle_tokens(object *o, uint64_t give, uint64_t take) {
        ipcb_sem_page *pg;
        int k;

        if ((give == 0 && take == 0) || store_frozen())
                return;
        if (!(pg = sem_page(o)) || (k = word_change(pg, give, take, o->sem->max, false)) < 0) {
                log_client_warn("semaphore '%s': state word keeps changing; %llu tokens not given "
                                "back, %llu not taken back", o->name, (unsigned long long)give,
                                (unsigned long long)take);
                return;
        }
        if (give > 0)
                watch_emit(o, IPCB_WE_OWNER_DIED);
}

void sem_slot_release(object *o, uint32_t slot, uint64_t owed) {
        sem_settle_tokens(o, sem_slot_free(o, slot), owed);
}

/* word_change of a signed change. */
static int count_add(ipcb_sem_page *pg, int64_t delta, uint32_t max, bool exact) {
        return word_change(pg, delta > 0 ? (uint64_t)delta : 0, delta < 0 ? (uint64_t)-delta : 0, max, exact);
}

int sem_apply(object *const *o, const int32_t *delta, unsigned n) {
        unsigned done[IPCB_SEM_APPLY_MAX], ndone = 0;
        ipcb_sem_page *pg;
        int k = 0;

        /* A give that cannot fit now is refused before anything changes. */
        for (unsigned i = 0; i < n; i++) {
                if (delta[i] < 0)
                        continue;
                if (!(pg = sem_page(o[i])))
                        return -ENOMEM;
                if ((uint64_t)ipcb_w_unpack(atomic_load(&pg->word)).count + (uint64_t)delta[i] >
                    o[i]->sem->max)
                        return -ERANGE;
        }
        /* Takes first, then gives: only a take can fail for want of
         * tokens, and it does before any give has been seen. */
        for (int gives = 0; gives < 2; gives++)
                for (unsigned i = 0; i < n; i++) {
                        if ((delta[i] > 0) != gives)
                                continue;
                        if (!(pg = sem_page(o[i]))) {
                                k = -ENOMEM;
                                goto undo;
                        }
                        if ((k = count_add(pg, delta[i], o[i]->sem->max, true)) < 0) {
                                k = k == -ENOBUFS ? -EAGAIN : k == -EOVERFLOW ? -ERANGE : -EBUSY;
                                goto undo;
                        }
                        done[ndone++] = i;
                }
        for (unsigned i = 0; i < n; i++)
                if (delta[i] > 0)
                        sem_wake_sleepers(o[i]);
        return 0;
undo:
        /* Only a count that changed since the check above fails a give,
         * and only the same request's own takes are given back: clamped,
         * never waiting. */
        while (ndone-- > 0) {
                unsigned i = done[ndone];
                if (!(pg = sem_page(o[i])))
                        continue;
                (void)count_add(pg, -(int64_t)delta[i], o[i]->sem->max, false);
                sem_wake_sleepers(o[i]);
        }
        return k;
}

int sem_release_tokens(object *o, uint32_t n) {
        ipcb_sem_page *pg = sem_page(o);
        int k;

        if (!pg)
                return -ENOMEM;
        k = word_change(pg, n, 0, o->sem->max, true);
        if (k == 0)
                sem_wake_sleepers(o);
        return k;
}

int sem_slot_reclaim(object *o, uint32_t slot, uid_t uid, uint64_t nonce, uint32_t *ret_seq,
                     uint64_t *ret_owed) {
        sem_state *st = o->sem;
        ipcb_sem_page *pg;
        const sem_bind *b;

        if (slot == 0 || slot > IPCB_SEM_SLOTS || !sem_bit(st->orphan, slot - 1) || !st->bind)
                return -ESRCH;
        /* Only its holder: the uid it was given to, showing the nonce it
         * was given with.  Anyone else leaves it reserved for the holder. */
        b = &st->bind[slot - 1];
        if (b->nonce == 0 || b->uid != (uint32_t)uid || ((b->nonce ^ nonce) != 0))
                return -ESRCH;
        if (!(pg = sem_page(o)))
                return -ENOMEM;
        sem_bit_set(st->orphan, slot - 1, false);
        *ret_owed = b->owed;
        st->bind[slot - 1] = (sem_bind){ 0 };
        /* The slot keeps its held tokens and any operation in flight: its
         * holder carries on from where it was. */
        *ret_seq = (ipcb_slot_unpack(atomic_load(&pg->slot[slot - 1])).seq + 1) & SEQ_MASK;
        return 0;
}

unsigned sem_settle_orphans(object *o) {
        unsigned n = 0;

        for (uint32_t w = 0; w < SEM_SLOT_WORDS; w++) {
                while (o->sem->orphan[w]) { /* most have none: a word at a time */
                        uint32_t i = w * 64 + (uint32_t)__builtin_ctzll(o->sem->orphan[w]);
                        sem_bit_set(o->sem->orphan, i, false);
                        /* its holder did not come back: what it owed is taken too */
                        sem_slot_release(o, i + 1, o->sem->bind ? o->sem->bind[i].owed : 0);
                        n++;
                }
        }
        free(o->sem->bind);
        o->sem->bind = NULL;
        if (n)
                sem_wake_sleepers(o);
        return n;
}

void sem_wake_sleepers(object *o) {
        uint32_t waiters;
        ipcb_sem_page *pg;

        sempoll_wake(o); /* pollers too (sempoll.c) */
        /* Most have no sleeper (every handle's close asks): a page the
         * daemon has not mapped is read, not mapped (see page_write_new). */
        if (!o->sem->page &&
            pread(o->fd_rw, &waiters, sizeof(waiters), offsetof(ipcb_sem_page, waiters)) ==
                    (ssize_t)sizeof(waiters) &&
            waiters == 0)
                return;
        pg = sem_page(o);
        if (pg && atomic_load(&pg->waiters) > 0) {
                atomic_fetch_add(&pg->wake_seq, 1);
                futex_wake_all(&pg->wake_seq);
        }
}

/* stat reads the page with pread, never mapping it: the values are
 * informational (bounded, not trusted), a pread costs less than mapping a
 * page, and a stat of a semaphore nobody holds an undo slot of then costs
 * the same whichever it names, among ten or a million.  (One with undo
 * slots in use is usually mapped: sem_counts reads it there.) */
static uint64_t page_read64(const object *o, size_t off) {
        uint64_t v = 0;

        if (pread(o->fd_rw, &v, sizeof(v), (off_t)off) != (ssize_t)sizeof(v))
                return 0;
        return v;
}

uint32_t sem_value(const object *o) {
        uint32_t c = ipcb_w_unpack(page_read64(o, offsetof(ipcb_sem_page, word))).count;
        return c > o->sem->max ? o->sem->max : c;
}

void sem_counts(const object *o, uint32_t *ret_value, uint32_t *ret_undo_held) {
        const sem_state *st = o->sem;
        /* the word, and the slots up to the last one in use: one read */
        uint64_t buf[(sizeof(ipcb_sem_page) - offsetof(ipcb_sem_page, word)) / sizeof(uint64_t)];
        const size_t slot0 = (offsetof(ipcb_sem_page, slot) - offsetof(ipcb_sem_page, word)) / sizeof(uint64_t);
        uint64_t sum = 0;
        size_t len = sizeof(uint64_t);
        int top = -1;

        _Static_assert(offsetof(ipcb_sem_page, word) % sizeof(uint64_t) == 0 &&
                               offsetof(ipcb_sem_page, slot) % sizeof(uint64_t) == 0,
                       "the page's words are 8-byte aligned");
        for (int w = SEM_SLOT_WORDS - 1; st->slots_used && w >= 0 && top < 0; w--)
                if (st->slot_used[w])
                        top = w * 64 + 63 - __builtin_clzll(st->slot_used[w]);
        if (top >= (int)IPCB_SEM_SLOTS) /* (never set: sem_slot_alloc) */
                top = IPCB_SEM_SLOTS - 1;
        if (top >= 0)
                len = (slot0 + (size_t)top + 1) * sizeof(uint64_t);
        if (st->page) { /* mapped for its undo slots: no system call */
                buf[0] = atomic_load_explicit(&st->page->word, memory_order_relaxed);
                for (uint32_t w = 0; top >= 0 && w <= (uint32_t)top / 64; w++)
                        for (uint64_t bits = st->slot_used[w]; bits; bits &= bits - 1) {
                                uint32_t i = w * 64 + (uint32_t)__builtin_ctzll(bits);
                                if (i <= (uint32_t)top)
                                        buf[slot0 + i] = atomic_load_explicit(&st->page->slot[i],
                                                                              memory_order_relaxed);
                        }
        } else if (pread(o->fd_rw, buf, len, offsetof(ipcb_sem_page, word)) != (ssize_t)len) {
                *ret_value = 0;
                *ret_undo_held = 0;
                return;
        }
        uint32_t c = ipcb_w_unpack(buf[0]).count;
        *ret_value = c > st->max ? st->max : c;
        for (uint32_t w = 0; top >= 0 && w <= (uint32_t)top / 64; w++)
                for (uint64_t bits = st->slot_used[w]; bits; bits &= bits - 1) {
                        uint32_t i = w * 64 + (uint32_t)__builtin_ctzll(bits);
                        if (i <= (uint32_t)top)
                                sum += ipcb_slot_unpack(buf[slot0 + i]).held;
                }
        *ret_undo_held = sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
}

void sem_free(object *o) {
        if (!o->sem)
                return;
        if (o->sem->map_slot)
                cache_evict(o->sem->map_slot - 1);
        else if (o->sem->page)
                munmap(o->sem->page, IPCB_PAGE_SIZE);
        free(o->sem->bind);
        o->sem = NULL; /* it lives in the object's allocation (registry_trailer) */
}
