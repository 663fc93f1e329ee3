/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* inode.c: the index of served inodes: a chained hash table that doubles
 * when its load passes 1 and goes back to its static first table when it
 * empties (so nothing is left allocated at exit).  Entries live in the
 * objects (intrusive), so adding never allocates and cannot fail: an inode
 * missing from the index would let it be registered under a second name.
 * Inode numbers are easy to predict and clients choose how many objects
 * to make: buckets are picked with a per-process random key. */
#include "inode.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FIRST_BUCKETS 64

static inode_key *first[FIRST_BUCKETS];
static inode_key **buckets = first;
static size_t nbuckets = FIRST_BUCKETS; /* power of two */
static size_t count;
static uint64_t seed;
static bool seeded;

static uint64_t mix(uint64_t h) {
        h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
        h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
        return h ^ (h >> 31);
}

static size_t bucket_of(dev_t dev, ino_t ino, size_t n) {
        return (size_t)mix(mix((uint64_t)ino ^ seed) ^ (uint64_t)dev) & (n - 1);
}

static void seed_once(void) {
        struct timespec ts;

        if (seeded)
                return;
        seeded = true;
        if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
                return;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = mix((uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 32 ^ (uint64_t)getpid());
}

static void rehash(inode_key **to, size_t n) {
        for (size_t i = 0; i < nbuckets; i++) {
                inode_key *k = buckets[i], *next;
                for (; k; k = next) {
                        next = k->next;
                        size_t j = bucket_of(k->dev, k->ino, n);
                        k->next = to[j];
                        to[j] = k;
                }
        }
        if (buckets != first)
                free(buckets);
        buckets = to;
        nbuckets = n;
}

int inode_add(inode_key *k, int fd) {
        struct stat st;

        if (k->linked)
                return 0;
        if (fstat(fd, &st) < 0)
                return -errno;
        seed_once();
        if (count >= nbuckets) {
                inode_key **b = calloc(nbuckets * 2, sizeof(*b));
                if (b) /* else keep the longer chains */
                        rehash(b, nbuckets * 2);
        }
        k->dev = st.st_dev;
        k->ino = st.st_ino;
        size_t i = bucket_of(k->dev, k->ino, nbuckets);
        k->next = buckets[i];
        buckets[i] = k;
        k->linked = true;
        count++;
        return 0;
}

void inode_remove(inode_key *k) {
        if (!k->linked)
                return;
        inode_key **pp = &buckets[bucket_of(k->dev, k->ino, nbuckets)];
        while (*pp && *pp != k)
                pp = &(*pp)->next;
        if (*pp)
                *pp = k->next;
        k->next = NULL;
        k->linked = false;
        if (--count == 0 && buckets != first) {
                free(buckets);
                buckets = first;
                nbuckets = FIRST_BUCKETS;
        }
}

bool inode_served(dev_t dev, ino_t ino) {
        for (inode_key *k = buckets[bucket_of(dev, ino, nbuckets)]; k; k = k->next)
                if (k->dev == dev && k->ino == ino)
                        return true;
        return false;
}
