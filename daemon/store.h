/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* store.h: objects that survive a broker restart, through the service
 * manager's fd store (FileDescriptorStoreMax=).  Every object's memfd (and
 * a segment's lock page) is stored with FDSTORE=1 under a name derived from
 * its slot in a catalog: a small memfd, stored the same way, holding one
 * fixed-size, checksummed record per object (kind, name, owner, group, mode,
 * flags, seals, size, semaphore maximum, lock token counter).  After a
 * restart the manager passes everything back in LISTEN_FDS and store_start
 * rebuilds the registry, dropping (with a log line) whatever does not check
 * out.  See docs/systemd.md. */
#pragma once

#include "object.h"

#include <stdbool.h>
#include <uv.h>

/* True if a LISTEN_FDNAMES name is one of ours (stored object or catalog). */
bool store_owns_name(const char *name);
/* Keep a passed fd for store_start.  Consumes fd. */
void store_collect(int fd, const char *name);
/* Decide whether the fd store is used (a manager is listening and did not
 * say the store is disabled; --no-fd-store turns it off), rebuild the
 * registry from the collected fds, and set up the catalog.  Restored
 * transient objects nobody re-opens within grace_ms are destroyed.  Every
 * problem is logged; returns 0 or a negative errno only when the catalog
 * cannot be created at all. */
int store_start(uv_loop_t *loop, bool enable, unsigned grace_ms);
/* Stop the grace timer (shutdown). */
void store_stop(void);

/* Registry changes.  Called by shm.c/sem.c when an object is created, by
 * lock.c when its lock page appears or hands out a token, by object.c when
 * it is destroyed; store_object_changed after any change of the recorded
 * attributes (owner, mode, flags). */
void store_object_added(object *o);
void store_object_changed(object *o);
void store_object_removed(object *o);

/* Secrets given to clients.  store_mac: a keyed hash (SipHash-2-4) of three
 * words, under a key kept in the catalog (so it outlives a restart; random
 * per run without a store).  store_nonce: a fresh, unpredictable, nonzero
 * value (a MAC of a, b and a counter that never repeats under the key). */
uint64_t store_mac(uint64_t a, uint64_t b, uint64_t c);
uint64_t store_nonce(uint64_t a, uint64_t b);
/* Undo slot `slot` (index + 1) of semaphore o was given to uid with nonce;
 * is free again (not recorded while frozen: the holder lives on).  The
 * next broker lets only that uid, showing that nonce, reclaim it. */
void store_undo_bind(const object *o, uint32_t slot, uid_t uid, uint64_t nonce);
void store_undo_unbind(const object *o, uint32_t slot);
/* What the undo handle of slot now owes (SEM_OWE), for a restarted broker
 * (the owe table; zeroed by store_undo_bind and store_undo_unbind). */
void store_undo_owed(const object *o, uint32_t slot, uint64_t owed);
/* The secret of lock token `token` of segment o given to uid: what a
 * RECLAIM of the token after a restart must show (no state: a MAC). */
uint64_t store_lock_nonce(const object *o, uint32_t token, uid_t uid);

/* Shutdown: from now on nothing is removed from the store and no
 * crash-cleanup is done on shared pages (clients are alive; the next broker
 * takes over).  store_frozen() tells sem.c and lock.c. */
void store_freeze(void);
bool store_frozen(void);
/* Objects restored at start-up (for tests and logs). */
unsigned store_restored_count(void);
