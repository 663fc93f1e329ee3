/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_ihash.c: the daemon's name and inode tables (daemon/ihash.c), in
 * process: a data structure, no daemon needed.  Entries stay findable, and
 * removable, while the table doubles a few buckets at a time; a drained
 * array gives its memory back but keeps its address range (unmapping it
 * would free page tables, a TLB flush on every CPU the daemon ran on)
 * until the table empties, which unmaps everything. */
#include "harness.h"
#include "ihash.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

TestSuite(ihash, .timeout = 60);

typedef struct entry {
        ihash_node node; /* first: a node is its entry */
        uint64_t key;
        bool in;
} entry;

static uint64_t hash_of(uint64_t k) {
        k ^= k >> 33;
        k *= 0xff51afd7ed558ccdull;
        k ^= k >> 33;
        return k;
}

static bool key_eq(const ihash_node *n, const void *key) {
        return ((const entry *)n)->key == *(const uint64_t *)key;
}

static entry *find(ihash *t, uint64_t k) {
        return (entry *)ihash_find(t, hash_of(k), key_eq, &k);
}

static void add(ihash *t, entry *e, uint64_t k) {
        e->key = k;
        e->in = true;
        ihash_add(t, &e->node, hash_of(k));
}

/* Pages of [p, p + len) resident, or -1 if any part is not mapped. */
static long resident(const void *p, size_t len) {
        long page = sysconf(_SC_PAGESIZE), n = 0;
        size_t npages = (len + (size_t)page - 1) / (size_t)page;
        unsigned char *vec = calloc(npages, 1);

        cr_assert(vec);
        if (mincore((void *)p, len, vec) < 0) {
                cr_assert_eq(errno, ENOMEM, "mincore: %s", strerror(errno));
                free(vec);
                return -1;
        }
        for (size_t i = 0; i < npages; i++)
                n += vec[i] & 1;
        free(vec);
        return n;
}

/* Adds, finds and removes interleaved across twelve doublings: nothing is
 * lost, nothing removed is found, and the table ends where it began. */
Test(ihash, nothing_lost_while_growing) {
        enum { N = 200000 };
        static ihash_node *first[64];
        entry *e = calloc(N, sizeof(*e));
        int fds = self_fd_count();
        ihash t;

        cr_assert(e);
        ihash_init(&t, first, 64);
        for (uint64_t i = 0; i < N; i++) {
                add(&t, &e[i], i * 7919 + 1);
                if (i % 3 == 0) { /* remove an older one */
                        uint64_t j = i / 2;
                        if (e[j].in) {
                                ihash_remove(&t, &e[j].node);
                                e[j].in = false;
                        }
                }
                if (i % 5 == 0) { /* and look one up mid-migration */
                        uint64_t j = (i * 2654435761u) % (i + 1);
                        entry *f = find(&t, j * 7919 + 1);
                        cr_assert_eq(f, e[j].in ? &e[j] : NULL, "entry %llu: found %p, it is %s",
                                     (unsigned long long)j, (void *)f, e[j].in ? "in" : "out");
                }
        }
        for (uint64_t i = 0; i < N; i++)
                cr_assert_eq(find(&t, i * 7919 + 1), e[i].in ? &e[i] : NULL, "entry %llu",
                             (unsigned long long)i);
        for (uint64_t i = 0; i < N; i++)
                if (e[i].in)
                        ihash_remove(&t, &e[i].node);
        cr_assert_eq(t.count, 0);
        cr_assert_eq(t.cur, first, "an empty table did not go back to its first buckets");
        cr_assert_eq(t.nretired, 0);
        cr_assert_not(ihash_migrating(&t));
        free(e);
        cr_assert_eq(self_fd_count(), fds);
}

/* A drained array: no page resident, still mapped, until the table empties. */
Test(ihash, drained_arrays_stay_mapped_until_empty) {
        enum { N = 70000 }; /* past four doublings of arrays of 64 KiB or more */
        static ihash_node *first[64];
        entry *e = calloc(N, sizeof(*e));
        ihash_node **watched = NULL;
        size_t watched_bytes = 0;
        int fds = self_fd_count();
        ihash t;

        cr_assert(e);
        ihash_init(&t, first, 64);
        for (uint64_t i = 0; i < N; i++) {
                bool was = ihash_migrating(&t);
                add(&t, &e[i], i);
                /* the first migration away from an mmapped array (>= 64 KiB) */
                if (!watched && !was && ihash_migrating(&t) && t.nold * sizeof(ihash_node *) >= 65536) {
                        watched = t.old;
                        watched_bytes = t.nold * sizeof(ihash_node *);
                        cr_assert_gt(resident(watched, watched_bytes), 0);
                }
        }
        cr_assert(watched, "no mmapped array was drained");
        cr_assert_not(ihash_migrating(&t));
        cr_assert_gt(t.nretired, 0);
        long r = resident(watched, watched_bytes);
        cr_assert_eq(r, 0, "a drained array of %zu bytes is %s", watched_bytes,
                     r < 0 ? "unmapped (an unmap frees page tables)" : "still resident");
        for (uint64_t i = 0; i < N; i++)
                cr_assert_eq(find(&t, i), &e[i]);
        for (uint64_t i = 0; i < N; i++)
                ihash_remove(&t, &e[i].node);
        cr_assert_eq(t.nretired, 0);
        cr_assert_eq(resident(watched, watched_bytes), -1, "the emptied table left its old array mapped");
        free(e);
        cr_assert_eq(self_fd_count(), fds);
}
