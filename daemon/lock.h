/* lock.h: a segment's lock, on its own broker-made page (the segment's bytes
 * are all the user's).  The page is created on first use; each handle that
 * asks gets a token that names it as the holder in the lock word. */
#pragma once

#include "object.h"

#include <stdint.h>

/* Create the lock page if needed; give a new token.  Returns the token (> 0)
 * or a negative errno. */
int64_t lock_token_new(object *o);
/* The handle holding `token` is gone: if it holds the lock, mark the owner
 * dead and wake the waiters. */
void lock_token_release(object *o, uint32_t token);
void lock_free(object *o);
