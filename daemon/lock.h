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
/* A lock page restored from the fd store, mapped by every read-write
 * holder: if its broker-made header (magic, version) was written over, write
 * it again and release a lock held in the word as if its owner had died
 * (the next locker gets IPCB_OWNER_DIED), since the word cannot be trusted
 * to name a live holder.  Returns whether the page had been written over. */
bool lock_page_restore(ipcb_lock_page *pg);
