/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* object.h: one brokered object (a segment now; semaphores later) and its
 * reference counting.  An object is referenced by handles; a transient
 * object dies with its last handle, a persistent one when it is unlinked and
 * has no handle left. */
#pragma once

#include "ihash.h"
#include "inode.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct sem_state;
struct ipcb_lock_page;

typedef struct object {
        ihash_node hash_node; /* registry name table: first, with what a lookup reads */
        uint8_t kind;        /* IPCB_KIND_* */
        bool linked;         /* reachable by name in the registry */
        uint16_t name_len;
        uint64_t id;
        uid_t uid;
        gid_t gid;
        uint32_t mode;
        uint32_t flags;      /* IPCB_WF_PERSISTENT | IPCB_WF_GROWABLE */
        uint32_t handles;
        /* the connections holding handles on it, a record each (peer.c) */
        struct holder *holders;
        /* No watch events (watch.c): a create that failed before it was
         * answered, so nobody heard of the object. */
        bool watch_silent;

        struct object *all_prev, *all_next; /* registry list of its kind, in id order */
        struct object *id_left, *id_right;  /* registry tree of its kind, by id */

        /* segment: the memfd; for a semaphore fd_rw is its page */
        uint64_t size; /* declared at create */
        uint32_t seals; /* as last read (create, stat, list): a RW holder may add seals */
        int fd_rw, fd_ro; /* fd_ro: open while read-only handles exist */
        uint32_t ro_handles;
        /* segment lock, created on first use (lock.c) */
        int lock_fd;
        struct ipcb_lock_page *lock;
        uint32_t lock_next_token;
        /* semaphore (sem.c) */
        struct sem_state *sem;
        struct sempoll *poll; /* pollers (sempoll.c), NULL if none ever */
        /* systemd fd store (store.c): catalog slot index + 1, 0: not stored;
         * restored: came back from the store and not yet claimed (a
         * transient object is kept without handles for a grace period). */
        uint32_t store_slot;
        bool restored;
        /* A random value per object, kept in the catalog: what the secrets
         * given to clients (undo slot and lock token nonces) are made from,
         * so that they name this object across restarts (store.c). */
        uint64_t salt;
        /* A lock restored from the fd store, until the grace period ends:
         * the tokens taken back, and the one that held it (lock.c). */
        struct lock_restore *lock_restore;
        /* quota (quota.c): charged to the creator's uid, whoever owns it
         * later, so that chown cannot move one uid's usage onto another */
        bool quota_charged;
        uid_t quota_uid;
        uint64_t quota_bytes;
        /* registered memfd whose description is O_RDONLY: no RW handles */
        bool rdonly_source;
        /* fd_rw's and lock_fd's inodes in the served-inode index (inode.h) */
        inode_key ino_rw, ino_lock;
        /* NUL-terminated, kept after unlink for stat/list; in the same
         * allocation (one cache miss less per lookup) */
        char name[];
} object;

/* Put o's inodes (fd_rw, lock_fd) in the served-inode index, those not in
 * it yet.  Every fd of an object leaves the broker with a handle, so
 * object_ref does this before any reply can carry one; call it too where an
 * inode appears that may already be in a client's hands (a restored object,
 * a lock page made for a handle that exists).  object_destroy takes them
 * out. */
void object_index(object *o);
/* Take and drop a handle's reference.  object_unref destroys the object (and
 * removes it from the registry) when nothing keeps it alive any more. */
void object_ref(object *o, uint32_t access);
void object_unref(object *o, uint32_t access);
/* Close the object's fds and forget it, whatever holds it (shutdown only). */
void object_destroy(object *o);
/* Remove the name; destroys the object if no handle remains.  Watches hear
 * UNLINKED, then DESTROYED if it goes. */
void object_unlink(object *o);
/* Current seals (also recorded in o->seals) and size of the object's memfd
 * (size falls back to the declared size; a growable segment's growth is
 * charged to its creator's byte quota then). */
unsigned object_seals(object *o);
uint64_t object_size(object *o);
