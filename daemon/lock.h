/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lock.h: a segment's lock, on its own broker-made page (the segment's bytes
 * are all the user's).  The page is created on first use.  Each read-write
 * handle that asks gets a token that names it as the holder in the lock
 * word; read-only handles get no token and a read-only description of the
 * page, to read the seqlock sequence with (proto/sempage.h). */
#pragma once

#include "object.h"

#include "sempage.h"

#include <stdbool.h>
#include <stdint.h>

/* Create the lock page if needed; give a new token.  Returns the token (> 0)
 * or a negative errno.  Only for read-write handles: taking the lock is a
 * write. */
int64_t lock_token_new(object *o);
/* Create the lock page if needed; return a new O_RDONLY description of it
 * (the caller closes it), or a negative errno. */
int lock_page_ro_fd(object *o);
/* The handle holding `token` is gone: if it holds the lock, mark the owner
 * dead, bump the sequence and wake the waiters. */
void lock_token_release(object *o, uint32_t token);
void lock_free(object *o);
/* A lock page restored from the fd store (o->lock set): until the grace
 * period ends, the handles of the broker before may take their tokens back,
 * each token once.  The token in the lock word (held: 0 if free) is
 * released as owner-died at the end unless taken back (lock_grace_end).
 * -ENOMEM (then nothing can be taken back). */
int lock_restored(object *o, uint32_t held);
/* May token be taken back now (SHM_OPEN with RECLAIM, its nonce checked)?
 * 0, or -ESRCH: not in the grace period, a token this broker gave, or one
 * taken back already; -ENOMEM. */
int lock_token_reclaim_check(object *o, uint32_t token);
/* A handle holds token again (after lock_token_reclaim_check said 0). */
void lock_token_reclaimed(object *o, uint32_t token);
/* The grace period ended: returns the token that held the lock at the
 * restart if nobody took it back (0: none), for the caller to release as
 * owner-died (lock_token_release). */
uint32_t lock_grace_end(object *o);
/* A lock page restored from the fd store, mapped by every read-write
 * holder: if its broker-made header (magic, version) was written over, write
 * it again and release a lock held in the word as if its owner had died
 * (the next locker gets IPCB_OWNER_DIED), since the word cannot be trusted
 * to name a live holder.  Returns whether the page had been written over. */
bool lock_page_restore(ipcb_lock_page *pg);
