/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* registry.c: chained hash tables keyed by name, one per kind, that double
 * when their load passes 1; and an id-ordered list of all live objects.  Ids
 * only grow, so appending keeps the list sorted.  Names are hashed with
 * SipHash under a key drawn at start-up: clients choose names, and with an
 * unkeyed hash they could pile thousands into one bucket. */
#include "registry.h"

#include "proto.h"
#include "siphash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

typedef struct table {
        object **buckets;
        size_t nbuckets; /* power of two */
        size_t count;
} table;

static table tables[IPCB_KIND_MAX_ + 1];
static object *all_head, *all_tail;
static size_t all_count;
static uint64_t next_id = 1;
static uint8_t hash_key[16];

static uint64_t hash_name(const char *s, size_t len) {
        return siphash24(s, len, hash_key);
}

/* 128 random bits.  Never blocks: early at boot, before the kernel's pool is
 * ready, /dev/urandom is good enough for a hash key. */
static int random_key(uint8_t *key, size_t len) {
        ssize_t k = getrandom(key, len, GRND_NONBLOCK);
        int fd;

        if (k == (ssize_t)len)
                return 0;
        fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        k = read(fd, key, len);
        close(fd);
        return k == (ssize_t)len ? 0 : -EIO;
}

int registry_init(void) {
        int r = random_key(hash_key, sizeof(hash_key));

        if (r < 0)
                return r;
        for (unsigned k = 1; k <= IPCB_KIND_MAX_; k++) {
                tables[k].nbuckets = 64;
                tables[k].buckets = calloc(tables[k].nbuckets, sizeof(object *));
                if (!tables[k].buckets)
                        return -ENOMEM;
        }
        return 0;
}

static void table_grow(table *t) {
        size_t n = t->nbuckets * 2;
        object **b = calloc(n, sizeof(object *));

        if (!b)
                return; /* keep the longer chains */
        for (size_t i = 0; i < t->nbuckets; i++) {
                object *o = t->buckets[i], *next;
                for (; o; o = next) {
                        next = o->hash_next;
                        size_t j = hash_name(o->name, o->name_len) & (n - 1);
                        o->hash_next = b[j];
                        b[j] = o;
                }
        }
        free(t->buckets);
        t->buckets = b;
        t->nbuckets = n;
}

object *registry_lookup(uint8_t kind, const char *name, size_t len) {
        if (kind < 1 || kind > IPCB_KIND_MAX_)
                return NULL;
        table *t = &tables[kind];
        for (object *o = t->buckets[hash_name(name, len) & (t->nbuckets - 1)]; o; o = o->hash_next)
                if (o->name_len == len && memcmp(o->name, name, len) == 0)
                        return o;
        return NULL;
}

object *registry_add(uint8_t kind, const char *name, size_t len) {
        table *t = &tables[kind];
        object *o = calloc(1, sizeof(*o));

        if (!o)
                return NULL;
        o->name = malloc(len + 1);
        if (!o->name) {
                free(o);
                return NULL;
        }
        memcpy(o->name, name, len);
        o->name[len] = '\0';
        o->name_len = (uint16_t)len;
        o->kind = kind;
        o->id = next_id++;
        o->fd_rw = o->fd_ro = o->lock_fd = -1;

        if (t->count >= t->nbuckets)
                table_grow(t);
        size_t i = hash_name(name, len) & (t->nbuckets - 1);
        o->hash_next = t->buckets[i];
        t->buckets[i] = o;
        t->count++;
        o->linked = true;

        o->all_prev = all_tail;
        if (all_tail)
                all_tail->all_next = o;
        else
                all_head = o;
        all_tail = o;
        all_count++;
        return o;
}

void registry_unlink(object *o) {
        if (!o->linked)
                return;
        table *t = &tables[o->kind];
        object **pp = &t->buckets[hash_name(o->name, o->name_len) & (t->nbuckets - 1)];
        while (*pp && *pp != o)
                pp = &(*pp)->hash_next;
        if (*pp) {
                *pp = o->hash_next;
                t->count--;
        }
        o->hash_next = NULL;
        o->linked = false;
}

void registry_remove(object *o) {
        registry_unlink(o);
        if (o->all_prev)
                o->all_prev->all_next = o->all_next;
        else
                all_head = o->all_next;
        if (o->all_next)
                o->all_next->all_prev = o->all_prev;
        else
                all_tail = o->all_prev;
        all_count--;
        free(o->name);
        free(o);
}

object *registry_first_after(uint64_t cursor) {
        /* Ids are sorted: walk from the end nearer to the cursor. */
        object *o;

        if (!all_tail || all_tail->id <= cursor)
                return NULL;
        if (cursor - all_head->id < all_tail->id - cursor || cursor < all_head->id) {
                for (o = all_head; o->id <= cursor; o = o->all_next)
                        ;
                return o;
        }
        for (o = all_tail; o->all_prev && o->all_prev->id > cursor; o = o->all_prev)
                ;
        return o;
}

object *registry_next(object *o) {
        return o->all_next;
}

size_t registry_count(void) {
        return all_count;
}

void registry_fini(void) {
        while (all_head)
                object_destroy(all_head);
        for (unsigned k = 1; k <= IPCB_KIND_MAX_; k++) {
                free(tables[k].buckets);
                tables[k].buckets = NULL;
        }
}
