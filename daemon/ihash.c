/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ihash.c: incremental rehashing (see ihash.h).  A doubling starts only
 * when the previous one has finished; it has n/IHASH_STEP operations to
 * finish in and the next one needs n more adds, so it always has. */
#include "ihash.h"

#include <stdlib.h>
#include <sys/mman.h>

/* Large bucket arrays come straight from mmap: zero pages the kernel fills
 * on first touch.  calloc would memset them, and glibc raises its mmap
 * threshold after a large free, so a doubling at a million entries could
 * clear 16 MiB in one operation. */
#define MMAP_MIN ((size_t)64 * 1024)

/* A drained old array's memory is given back this much at a time while
 * the migration passes over it: dropping 16 MiB of touched pages at once
 * takes milliseconds.  It is given back with MADV_DONTNEED, and its
 * address range is unmapped only when the table empties: an unmap frees
 * page tables, and a TLB flush that frees page tables interrupts every CPU
 * the daemon has run on and waits for each, milliseconds in a VM whose
 * other vCPU the host has descheduled.  MADV_DONTNEED leaves the page
 * tables, and its flush skips the CPUs that are not running the daemon. */
#define FREE_CHUNK ((size_t)64 * 1024)

static ihash_node **alloc_buckets(size_t n) {
        void *p;

        if (n * sizeof(ihash_node *) < MMAP_MIN)
                return calloc(n, sizeof(ihash_node *));
        p = mmap(NULL, n * sizeof(ihash_node *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
        return p == MAP_FAILED ? NULL : p;
}

static void free_buckets(ihash_node **b, size_t n) {
        if (n * sizeof(ihash_node *) < MMAP_MIN)
                free(b);
        else
                munmap(b, n * sizeof(ihash_node *));
}

void ihash_init(ihash *t, ihash_node **first, size_t nfirst) {
        *t = (ihash){ .cur = first, .ncur = nfirst, .first = first, .nfirst = nfirst };
}

static void release(ihash *t, ihash_node **b, size_t n) {
        if (b && b != t->first)
                free_buckets(b, n);
}

/* Done with the old array: an mmapped one gives back what it has not yet
 * and is kept mapped until the table empties (release_retired). */
static void release_old(ihash *t) {
        size_t bytes = t->nold * sizeof(ihash_node *);

        if (t->old && t->old != t->first && bytes >= MMAP_MIN) {
                (void)madvise((char *)t->old + t->freed, bytes - t->freed, MADV_DONTNEED);
                if (t->nretired < IHASH_RETIRED_MAX) {
                        t->retired[t->nretired].p = t->old;
                        t->retired[t->nretired++].bytes = bytes;
                } else {
                        munmap(t->old, bytes);
                }
        } else {
                release(t, t->old, t->nold);
        }
        t->old = NULL;
        t->nold = t->moved = t->freed = 0;
}

static void release_retired(ihash *t) {
        for (unsigned i = 0; i < t->nretired; i++)
                munmap(t->retired[i].p, t->retired[i].bytes);
        t->nretired = 0;
}

/* Give back the memory of an mmapped old array's drained chunks. */
static void trim_old(ihash *t) {
        size_t bytes = t->nold * sizeof(ihash_node *), done;

        if (t->old == t->first || bytes < MMAP_MIN)
                return;
        done = t->moved * sizeof(ihash_node *) / FREE_CHUNK * FREE_CHUNK;
        if (done > t->freed) {
                (void)madvise((char *)t->old + t->freed, done - t->freed, MADV_DONTNEED);
                t->freed = done;
        }
}

/* Drain up to IHASH_STEP old buckets into cur. */
static void step(ihash *t) {
        if (!t->old)
                return;
        for (unsigned s = 0; s < IHASH_STEP && t->moved < t->nold; s++, t->moved++) {
                ihash_node *n = t->old[t->moved], *next;
                t->old[t->moved] = NULL;
                for (; n; n = next) {
                        next = n->next;
                        size_t j = n->hash & (t->ncur - 1);
                        n->next = t->cur[j];
                        t->cur[j] = n;
                }
        }
        if (t->moved == t->nold)
                release_old(t);
        else
                trim_old(t);
}

void ihash_add(ihash *t, ihash_node *n, uint64_t hash) {
        step(t);
        if (!t->old && t->count >= t->ncur) {
                ihash_node **b = alloc_buckets(t->ncur * 2);
                if (b) { /* else keep the longer chains */
                        t->old = t->cur;
                        t->nold = t->ncur;
                        t->moved = t->freed = 0;
                        t->cur = b;
                        t->ncur *= 2;
                }
        }
        size_t i = hash & (t->ncur - 1);
        n->hash = hash;
        n->next = t->cur[i];
        t->cur[i] = n;
        t->count++;
}

static bool unchain(ihash_node **pp, ihash_node *n) {
        while (*pp && *pp != n)
                pp = &(*pp)->next;
        if (!*pp)
                return false;
        *pp = n->next;
        return true;
}

/* The old bucket of hash if it is not drained yet (drained ones may be
 * unmapped already), else NULL. */
static ihash_node **old_bucket(const ihash *t, uint64_t hash) {
        size_t i;

        if (!t->old)
                return NULL;
        i = hash & (t->nold - 1);
        return i >= t->moved ? &t->old[i] : NULL;
}

void ihash_remove(ihash *t, ihash_node *n) {
        ihash_node **ob;

        if (!unchain(&t->cur[n->hash & (t->ncur - 1)], n) && (ob = old_bucket(t, n->hash)))
                (void)unchain(ob, n);
        n->next = NULL;
        if (--t->count == 0 && t->cur != t->first) {
                /* Empty: every chain is empty, the first buckets too. */
                release_old(t);
                release_retired(t);
                release(t, t->cur, t->ncur);
                ihash_init(t, t->first, t->nfirst);
                return;
        }
        step(t);
}

static ihash_node *search(ihash_node *n, uint64_t hash, bool (*eq)(const ihash_node *, const void *),
                          const void *key) {
        for (; n; n = n->next)
                if (n->hash == hash && eq(n, key))
                        return n;
        return NULL;
}

ihash_node *ihash_find(ihash *t, uint64_t hash, bool (*eq)(const ihash_node *, const void *),
                       const void *key) {
        ihash_node *n, **ob;

        step(t);
        n = search(t->cur[hash & (t->ncur - 1)], hash, eq, key);
        if (!n && (ob = old_bucket(t, hash)))
                n = search(*ob, hash, eq, key);
        return n;
}

bool ihash_migrating(const ihash *t) {
        return t->old != NULL;
}

void ihash_fini(ihash *t) {
        for (size_t i = 0; i < t->nfirst; i++)
                t->first[i] = NULL;
        release_old(t);
        release_retired(t);
        release(t, t->cur, t->ncur);
        ihash_init(t, t->first, t->nfirst);
}
