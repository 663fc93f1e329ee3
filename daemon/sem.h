/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sem.h: named semaphores.  The count lives on a sealed one-page memfd that
 * the daemon maps too; clients change it with atomics (proto/sempage.h).
 * The daemon assigns undo slots and, when an undo handle goes away, settles
 * the slot's last operation and gives back the tokens it held. */
#pragma once

#include "object.h"
#include "policy.h"

#include "sempage.h"

#include <stdbool.h>
#include <stddef.h>

/* Who may reclaim a reserved slot: the uid it was given to, showing the
 * nonce it was given with. */
typedef struct sem_bind {
        uint64_t nonce; /* 0: nobody */
        uint32_t uid;
        uint64_t owed;  /* what the slot's handle owed (SEM_OWE) */
} sem_bind;

/* Bitmaps of IPCB_SEM_SLOTS bits. */
#define SEM_SLOT_WORDS ((IPCB_SEM_SLOTS + 63) / 64)
#define SEM_MAP_CACHE 1024u /* pages the daemon keeps mapped at most */

static inline bool sem_bit(const uint64_t *map, uint32_t i) {
        return map[i / 64] >> (i % 64) & 1;
}
static inline void sem_bit_set(uint64_t *map, uint32_t i, bool v) {
        if (v)
                map[i / 64] |= 1ull << (i % 64);
        else
                map[i / 64] &= ~(1ull << (i % 64));
}

typedef struct sem_state {
        /* The daemon's mapping, or NULL: a page is mapped only while the
         * daemon works on it (undo slots, recovery, restore), and stays in
         * a cache of SEM_MAP_CACHE mappings; so the number of semaphores is
         * not bounded by vm.max_map_count.  A create writes the page and a
         * stat or a close reads it, without mapping.  Use sem_page(). */
        ipcb_sem_page *page;
        uint32_t map_slot;   /* index + 1 in the mapping cache, 0: not mapped */
        uint32_t max;        /* trusted copy */
        uint32_t slots_used;
        uint64_t slot_used[SEM_SLOT_WORDS];
        /* Slots that held tokens (or an operation) when the broker was
         * restarted: reserved for their holder to reclaim until the grace
         * period ends, then settled as for a dead holder (store.c). */
        uint64_t orphan[SEM_SLOT_WORDS];
        sem_bind *bind; /* IPCB_SEM_SLOTS entries while orphans remain, else NULL */
} sem_state;

/* o's page, mapped now if it was not (evicting the oldest mapping if the
 * cache is full), or NULL if it cannot be mapped.  Valid until the next
 * sem_page() or sem_page_adopt() call for another semaphore. */
ipcb_sem_page *sem_page(object *o);
/* Put map, a mapping of o's page the caller made, in the cache. */
void sem_page_adopt(object *o, void *map);
/* Mappings in the cache now (tests, benchmarks). */
unsigned sem_pages_mapped(void);

/* Create and register semaphore `name`; arguments validated by the caller. */
int sem_new(const char *name, size_t name_len, uint32_t initial, uint32_t max, uint32_t mode,
            uint32_t flags, const cred *owner, object **ret);
/* A page restored from the fd store, mapped by anyone who may write the
 * semaphore: the broker's own fields (magic, version, max, slot count,
 * pollers) are written again from what the catalog says, the count is
 * clamped to max and a last operation no client could have named is
 * cleared.  Returns true if the page had been written over (anything was
 * wrong), for the caller to log and to treat its slots with suspicion. */
bool sem_page_restore(ipcb_sem_page *pg, uint32_t max);
/* SEM_OWE's release: n more tokens in the count, in one CAS on the state
 * word (after helping its last undo operation), and the sleepers woken.
 * -EOVERFLOW past the maximum (nothing changes), -EAGAIN if the word keeps
 * changing, -ENOMEM if the page cannot be mapped. */
int sem_release_tokens(object *o, uint32_t n);
/* SEM_APPLY: the count of semaphore o[i] changed by delta[i] (not 0) for
 * each of n (<= IPCB_SEM_APPLY_MAX) distinct semaphores, all or none, in
 * this call: takes first, then gives, one CAS each; a failure gives back
 * what was done.  -EAGAIN: a take found too few tokens; -ERANGE: a give
 * would pass the maximum; -EBUSY: a page's word kept changing (scribbled);
 * -ENOMEM: a page could not be mapped.  Wakes the sleepers of what it
 * gave. */
int sem_apply(object *const *o, const int32_t *delta, unsigned n);
/* Assign a free undo slot to a handle of uid: *ret_slot is index + 1,
 * *ret_seq the slot's next sequence number, *ret_nonce the secret that
 * proves holding it (recorded in the fd store).  -EUSERS when all
 * IPCB_SEM_SLOTS are taken. */
int sem_slot_alloc(object *o, uid_t uid, uint32_t *ret_slot, uint32_t *ret_seq, uint64_t *ret_nonce);
/* The undo handle of `slot` is gone (closed, its process died): settle
 * its last operation and free the slot (sem_slot_free), then give back
 * what it held and take what it owed in one CAS (sem_settle_tokens).  The
 * caller wakes the sleepers (sem_wake_sleepers). */
void sem_slot_release(object *o, uint32_t slot, uint64_t owed);
/* Settle slot's last operation as the helping rule says, reset and free the
 * slot, and return the tokens it held, the count unchanged (0, touching
 * nothing on the page, while shutting down with the fd store: the holder
 * lives on and the next broker settles it). */
uint32_t sem_slot_free(object *o, uint32_t slot);
/* The count becomes count + give - take, clamped to [0, max] once (as the
 * kernel applies semadj at exit), in one CAS on W after helping its last
 * undo operation; OWNER_DIED is announced if anything was given back.
 * Nothing while shutting down with the fd store. */
void sem_settle_tokens(object *o, uint64_t give, uint64_t take);
/* Give the reserved slot `slot` back to a reclaiming handle of uid that
 * shows nonce: 0 with *ret_seq, or -ESRCH if it is not reserved (any more)
 * or was not given to uid with that nonce (then it stays reserved). */
int sem_slot_reclaim(object *o, uint32_t slot, uid_t uid, uint64_t nonce, uint32_t *ret_seq,
                     uint64_t *ret_owed);
/* Settle every slot still reserved since the restart.  Returns how many. */
unsigned sem_settle_orphans(object *o);
/* Wake every sleeper if any is registered. */
void sem_wake_sleepers(object *o);
/* Tokens available now (read from the page, so bounded but not trusted). */
uint32_t sem_value(const object *o);
/* The same, and the tokens held through undo handles: read through the
 * daemon's mapping if the page is mapped (for its undo slots), else in one
 * pread of the page's word and its slots up to the last one in use. */
void sem_counts(const object *o, uint32_t *ret_value, uint32_t *ret_undo_held);
void sem_free(object *o);
