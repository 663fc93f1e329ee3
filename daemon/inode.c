/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* inode.c: the index of served inodes: an incrementally grown hash table
 * (ihash.h) that goes back to its static first buckets when it empties (so
 * nothing is left allocated at exit).  Entries live in the objects
 * (intrusive), so adding never allocates and cannot fail: an inode missing
 * from the index would let it be registered under a second name.  Inode
 * numbers are easy to predict and clients choose how many objects to make:
 * hashes are made with a per-process random key. */
#include "inode.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FIRST_BUCKETS 64

static ihash_node *first[FIRST_BUCKETS];
static ihash index_;
static uint64_t seed;
static bool seeded;

static uint64_t mix(uint64_t h) {
        h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
        h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
        return h ^ (h >> 31);
}

static uint64_t hash_of(dev_t dev, ino_t ino) {
        return mix(mix((uint64_t)ino ^ seed) ^ (uint64_t)dev);
}

static void seed_once(void) {
        struct timespec ts;

        if (seeded)
                return;
        seeded = true;
        ihash_init(&index_, first, FIRST_BUCKETS);
        if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
                return;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = mix((uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 32 ^ (uint64_t)getpid());
}

int inode_add(inode_key *k, int fd) {
        struct stat st;

        if (k->linked)
                return 0;
        if (fstat(fd, &st) < 0)
                return -errno;
        seed_once();
        k->dev = st.st_dev;
        k->ino = st.st_ino;
        ihash_add(&index_, &k->node, hash_of(k->dev, k->ino));
        k->linked = true;
        return 0;
}

void inode_remove(inode_key *k) {
        if (!k->linked)
                return;
        ihash_remove(&index_, &k->node);
        k->linked = false;
}

typedef struct dev_ino {
        dev_t dev;
        ino_t ino;
} dev_ino;

static bool key_eq(const ihash_node *n, const void *key) {
        const inode_key *k = (const inode_key *)((const char *)n - offsetof(inode_key, node));
        const dev_ino *d = key;
        return k->dev == d->dev && k->ino == d->ino;
}

bool inode_served(dev_t dev, ino_t ino) {
        dev_ino key = { dev, ino };

        seed_once();
        return ihash_find(&index_, hash_of(dev, ino), key_eq, &key) != NULL;
}
