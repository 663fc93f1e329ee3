/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ihash.h: an intrusive chained hash table that grows without stalling.
 * When its load passes 1 it allocates a table twice the size and moves the
 * old one's chains over a few buckets at a time, on every later add, find
 * and remove, so that no single operation rehashes more than IHASH_STEP
 * buckets.  Lookups search both tables while a migration is under way.
 * Entries live in their owners and carry their hash, so adding never
 * allocates for the entry and a move never hashes again.  When it empties
 * it goes back to its first (static) buckets, so nothing is left allocated. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Old buckets moved per operation while the table grows. */
#define IHASH_STEP 64u
/* Drained arrays whose address range is kept until the table empties
 * (ihash.c); one per doubling, so 64 is more than a table can reach. */
#define IHASH_RETIRED_MAX 64u

typedef struct ihash_node {
        struct ihash_node *next; /* bucket chain */
        uint64_t hash;
} ihash_node;

typedef struct ihash {
        ihash_node **cur, **old; /* old: being drained into cur, else NULL */
        size_t ncur, nold;       /* powers of two */
        size_t moved;            /* old buckets already drained */
        size_t freed;            /* bytes at the start of old given back already */
        size_t count;
        ihash_node **first;      /* the static buckets it starts from */
        size_t nfirst;
        struct {
                void *p;
                size_t bytes;
        } retired[IHASH_RETIRED_MAX]; /* drained, memory given back, still mapped */
        unsigned nretired;
} ihash;

/* Start empty on first[nfirst] (zeroed, a power of two, owned by the
 * caller and never freed). */
void ihash_init(ihash *t, ihash_node **first, size_t nfirst);
/* Add n under hash.  Never fails: without memory to grow, chains grow
 * longer instead. */
void ihash_add(ihash *t, ihash_node *n, uint64_t hash);
/* Remove n, which must be in t. */
void ihash_remove(ihash *t, ihash_node *n);
/* The first entry with this hash for which eq(entry, key) holds, or NULL. */
ihash_node *ihash_find(ihash *t, uint64_t hash, bool (*eq)(const ihash_node *, const void *),
                       const void *key);
/* A migration is under way (for tests and benchmarks). */
bool ihash_migrating(const ihash *t);
/* Free what the table allocated; its entries are forgotten, not touched. */
void ihash_fini(ihash *t);
