/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* watch.h: watches, subscriptions of a connection to the names (or name
 * prefixes) of one kind, and the events sent to them when an object is
 * created, unlinked, destroyed, changes owner/group/mode or is frozen
 * (docs/protocol.md, "Watches"). */
#pragma once

#include "object.h"
#include "proto.h"

#include <stdint.h>

struct peer;

/* Bounds: watches per connection, per uid (all its connections), and in
 * all.  Past them WATCH_ADD gets -EDQUOT (connection, uid) or -ENOSPC. */
#define WATCH_MAX_PER_CONN 64u
#define WATCH_MAX_PER_UID  256u
#define WATCH_MAX_TOTAL    16384u

/* The WATCH_ADD and WATCH_REMOVE handlers (request.c's convention: 0 with
 * the reply sent, or a negative errno to answer). */
int watch_add(struct peer *p, const ipcb_msg *m);
int watch_remove(struct peer *p, const ipcb_msg *m);
/* Tell every watch that matches o (kind, name or prefix, event mask) that
 * `event` (one IPCB_WE_* bit) happened to it.  Never blocks and never
 * queues more than one message per connection: an event that does not fit
 * in a connection's socket is dropped and the connection gets one
 * IPCB_WE_OVERFLOW instead. */
void watch_emit(object *o, uint32_t event);
/* The connection is closing: drop its watches. */
void watch_peer_closed(struct peer *p);
/* Watches now (for tests and stats). */
unsigned watch_count(void);
