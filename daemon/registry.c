/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* registry.c: per kind, a hash table keyed by name (ihash.h: it grows a few
 * buckets per operation, never all at once), and every live object in id
 * order twice: a list, to walk from one object to the next in O(1), and a
 * treap, to find where a LIST cursor resumes in O(log n) even when the
 * object it names is gone.  Ids only grow, so a new object goes at the end
 * of both.  Names are hashed with SipHash under a key drawn at start-up:
 * clients choose names, and with an unkeyed hash they could pile thousands
 * into one bucket.  The treap's priorities are a keyed mix of the id, so a
 * client cannot make it deep either. */
#include "registry.h"

#include "proto.h"
#include "siphash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define FIRST_BUCKETS 64

typedef struct kind_set {
        ihash names;
        ihash_node *first[FIRST_BUCKETS];
        object *head, *tail; /* id order */
        object *root;        /* treap by id */
} kind_set;

static kind_set kinds[IPCB_KIND_MAX_ + 1];
static size_t all_count;
static uint64_t next_id = 1;
static uint8_t hash_key[16];
static uint64_t prio_key;

static uint64_t hash_name(const char *s, size_t len) {
        return siphash24(s, len, hash_key);
}

static uint64_t prio(const object *o) {
        uint64_t h = o->id ^ prio_key;
        h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
        h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
        return h ^ (h >> 31);
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
        prio_key = siphash24("treap", 5, hash_key);
        for (unsigned k = 1; k <= IPCB_KIND_MAX_; k++)
                ihash_init(&kinds[k].names, kinds[k].first, FIRST_BUCKETS);
        return 0;
}

typedef struct name_key {
        const char *name;
        size_t len;
} name_key;

static bool name_eq(const ihash_node *n, const void *key) {
        const object *o = (const object *)((const char *)n - offsetof(object, hash_node));
        const name_key *k = key;
        return o->name_len == k->len && memcmp(o->name, k->name, k->len) == 0;
}

object *registry_lookup(uint8_t kind, const char *name, size_t len) {
        name_key key = { name, len };
        ihash_node *n;

        if (kind < 1 || kind > IPCB_KIND_MAX_)
                return NULL;
        n = ihash_find(&kinds[kind].names, hash_name(name, len), name_eq, &key);
        return n ? (object *)((char *)n - offsetof(object, hash_node)) : NULL;
}

/* Treap: o's id is above every id in it, so it goes down the right spine
 * to where its priority belongs and takes what was there as its left. */
static void tree_append(object **root, object *o) {
        object **pp = root;
        uint64_t p = prio(o);

        while (*pp && prio(*pp) > p)
                pp = &(*pp)->id_right;
        o->id_left = *pp;
        o->id_right = NULL;
        *pp = o;
}

/* Join two treaps, every id of a below every id of b. */
static object *tree_merge(object *a, object *b) {
        object *root = NULL, **pp = &root;

        while (a && b) {
                if (prio(a) > prio(b)) {
                        *pp = a;
                        pp = &a->id_right;
                        a = a->id_right;
                } else {
                        *pp = b;
                        pp = &b->id_left;
                        b = b->id_left;
                }
        }
        *pp = a ? a : b;
        return root;
}

static void tree_remove(object **root, object *o) {
        object **pp = root;

        while (*pp && *pp != o)
                pp = o->id < (*pp)->id ? &(*pp)->id_left : &(*pp)->id_right;
        if (*pp)
                *pp = tree_merge(o->id_left, o->id_right);
        o->id_left = o->id_right = NULL;
}

static size_t trailer_offset(size_t len) {
        return (offsetof(object, name) + len + 1 + 7) & ~(size_t)7;
}

void *registry_trailer(object *o) {
        return (char *)o + trailer_offset(o->name_len);
}

object *registry_add(uint8_t kind, const char *name, size_t len, size_t extra) {
        kind_set *ks = &kinds[kind];
        object *o = calloc(1, extra ? trailer_offset(len) + extra : sizeof(*o) + len + 1);

        if (!o)
                return NULL;
        memcpy(o->name, name, len);
        o->name[len] = '\0';
        o->name_len = (uint16_t)len;
        o->kind = kind;
        o->id = next_id++;
        o->fd_rw = o->fd_ro = o->lock_fd = -1;

        ihash_add(&ks->names, &o->hash_node, hash_name(name, len));
        o->linked = true;

        o->all_prev = ks->tail;
        if (ks->tail)
                ks->tail->all_next = o;
        else
                ks->head = o;
        ks->tail = o;
        tree_append(&ks->root, o);
        all_count++;
        return o;
}

void registry_unlink(object *o) {
        if (!o->linked)
                return;
        ihash_remove(&kinds[o->kind].names, &o->hash_node);
        o->linked = false;
}

void registry_remove(object *o) {
        kind_set *ks = &kinds[o->kind];

        registry_unlink(o);
        if (o->all_prev)
                o->all_prev->all_next = o->all_next;
        else
                ks->head = o->all_next;
        if (o->all_next)
                o->all_next->all_prev = o->all_prev;
        else
                ks->tail = o->all_prev;
        tree_remove(&ks->root, o);
        all_count--;
        free(o);
}

object *registry_kind_first_after(uint8_t kind, uint64_t cursor) {
        object *best = NULL;

        if (kind < 1 || kind > IPCB_KIND_MAX_)
                return NULL;
        for (object *n = kinds[kind].root; n;)
                if (n->id > cursor) {
                        best = n;
                        n = n->id_left;
                } else
                        n = n->id_right;
        return best;
}

object *registry_kind_next(const object *o) {
        return o->all_next;
}

object *registry_first_after(uint64_t cursor) {
        object *best = NULL;

        for (uint8_t k = 1; k <= IPCB_KIND_MAX_; k++) {
                object *o = registry_kind_first_after(k, cursor);
                if (o && (!best || o->id < best->id))
                        best = o;
        }
        return best;
}

object *registry_next(object *o) {
        object *best = o->all_next;

        for (uint8_t k = 1; k <= IPCB_KIND_MAX_; k++) {
                if (k == o->kind)
                        continue;
                object *n = registry_kind_first_after(k, o->id);
                if (n && (!best || n->id < best->id))
                        best = n;
        }
        return best;
}

size_t registry_count(void) {
        return all_count;
}

bool registry_migrating(uint8_t kind) {
        return kind >= 1 && kind <= IPCB_KIND_MAX_ && ihash_migrating(&kinds[kind].names);
}

void registry_fini(void) {
        for (unsigned k = 1; k <= IPCB_KIND_MAX_; k++) {
                while (kinds[k].head)
                        object_destroy(kinds[k].head);
                ihash_fini(&kinds[k].names);
        }
}
