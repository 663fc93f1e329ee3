/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* quota.h: per-uid resource accounting.  Each resource is charged at the one
 * place it is acquired and uncharged at the one place it is released
 * (objects and bytes: create, or restore after a restart / object_destroy;
 * handles: peer_handle_add / handle_slot_release; connections: peer_new /
 * peer_close), so usage cannot drift.  A charge that would pass the uid's limit is refused and changes
 * nothing; other uids never notice.
 *
 * "uid" is the principal: a uid of a subordinate range (cfg.subuid_file,
 * the form of /etc/subuid) counts as the range's owner, so that a user
 * with 65536 subordinate uids gets one user's quotas, share of the loop,
 * fds in flight, lanes of closes (reaper.c) and watches (watch.c), not
 * 65536 times as much.  Ranges of uid 0 are left out: their uids would be
 * exempt. */
#pragma once

#include "mainloop.h"
#include "proto.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum quota_res {
        QUOTA_OBJECTS,
        QUOTA_BYTES,
        QUOTA_HANDLES,
        QUOTA_CONNECTIONS,
        QUOTA_FDS,       /* the daemon's fds held for the uid's objects */
        /* Throttles rather than quotas: counted, never refused; a uid over
         * its bound has its connections no longer read (peer.c). */
        QUOTA_INFLIGHT,  /* fds sent to the uid's connections, not yet read */
        QUOTA_REAPING,   /* fds from the uid waiting to be closed (reaper.c) */
        QUOTA_RELEASING, /* the uid's closed connections whose handles are still
                          * being released (peer.c, release_step) */
        QUOTA_NRES_,
} quota_res;

/* Charge n units of r to uid.  0, or -EDQUOT (-EUSERS for connections) when
 * the limit would be passed.  An exempt uid (uid 0 with root override) is
 * counted but never refused.  May return -ENOMEM for a new uid. */
int quota_charge(uid_t uid, quota_res r, uint64_t n);
/* Charge an object of kind (IPCB_KIND_*), its bytes and its fds together
 * (all or none): -EDQUOT over the uid's quota, -ENOSPC when the daemon's
 * fd budget for objects (cfg.fd_budget, all uids) is spent. */
int quota_charge_object(uid_t uid, uint8_t kind, uint64_t bytes);
/* The same for an object taken back from the fd store after a restart
 * (store.c), never refused: the object exists already, and dropping it for
 * a limit lowered since (or the budget) would lose what a client owns.  A
 * uid over its limits is refused its next create instead.  0, or -ENOMEM
 * for a new uid. */
int quota_charge_object_restored(uid_t uid, uint8_t kind, uint64_t bytes);
/* A growable segment of uid's grew by bytes (object.c): charged, never
 * refused. */
void quota_charge_grown(uid_t uid, uint64_t bytes);
/* The daemon fds an object of kind may hold. */
uint64_t quota_object_fds(uint8_t kind);
/* One more daemon fd held for an object on uid's behalf (a semaphore's
 * notify eventfd), against the same budget and quota as the objects' own
 * (-ENOSPC, -EDQUOT); quota_uncharge_fd gives it back. */
int quota_charge_fd(uid_t uid);
void quota_uncharge_fd(uid_t uid);
void quota_uncharge(uid_t uid, quota_res r, uint64_t n);
void quota_uncharge_object(uid_t uid, uint8_t kind, uint64_t bytes);
bool quota_exempt(uid_t uid);
/* Current usage of r by uid. */
uint64_t quota_use(uid_t uid, quota_res r);

/* Pointers kept in uid's record for peer.c: the head of the uid's list of
 * charged connections, and the last of its connections whose handles wait
 * to be released.  NULL when the uid has no record; valid only
 * while something is charged to it. */
enum { QUOTA_DATA_CONNS, QUOTA_DATA_RELEASING, QUOTA_DATA_N_ };
void **quota_user_data(uid_t uid, unsigned which);
/* uid's share of the loop, which all its connections draw on (peer.c).
 * The same lifetime as quota_user_data. */
mainloop_share *quota_loop_share(uid_t uid);

/* Fill recs (at most max) with the usage of uids > cursor, in uid order, or
 * of `only` alone when only_one.  Returns the count; *ret_more tells whether
 * more uids follow. */
unsigned quota_report(bool only_one, uid_t only, uint64_t cursor, ipcb_quota_rec *recs,
                      unsigned max, bool *ret_more);
/* Read the subordinate ranges of path (owner:start:count lines, owner a uid
 * or a login name; "" or NULL: none), once, before anything is charged.
 * A missing file means none; lines not understood (a range with uid 0 in
 * it too) and overlapping ones are left out with a warning, uid 0's own
 * ranges silently.  0, or a negative errno (then none). */
int quota_load_subuids(const char *path);
/* The uid that uid counts as: its range's owner, or itself.  Safe from any
 * thread (the ranges do not change once loaded). */
uid_t quota_principal(uid_t uid);
/* Free the table (shutdown). */
void quota_fini(void);
