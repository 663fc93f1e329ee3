/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sempoll.h: semaphores and segment locks a client can wait on from an
 * event loop.  Every polled semaphore (lock) has a notify eventfd that
 * releasers (unlockers) write while the page's `pollers` count (kept here,
 * per handle) is not zero, and that each poller watches edge-triggered
 * (docs/semaphores.md, "Polling a semaphore" and "Polling a lock"). */
#pragma once

#include "object.h"
#include "proto.h"

#include <stdint.h>

struct peer;

/* Pollers one connection may register (-EDQUOT beyond). */
#define SEMPOLL_MAX_PER_CONN 64u

/* The SEM_POLL / LOCK_POLL and SEM_NOTIFY / LOCK_NOTIFY handlers
 * (request.c's convention). */
int sempoll_add(struct peer *p, const ipcb_msg *m);
int sempoll_notify_fd(struct peer *p, const ipcb_msg *m);
/* Tell every poller of o that tokens (the lock) may be available. */
void sempoll_wake(object *o);
/* A polled handle of p on o is being released: drop its poller. */
void sempoll_handle_released(object *o, struct peer *p);
/* o is destroyed (it has no handle left, so no poller). */
void sempoll_free(object *o);
