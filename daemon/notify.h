/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* notify.h: messages to the service manager on $NOTIFY_SOCKET, sent without
 * ever blocking the loop.  What the manager's socket cannot take now waits in
 * a bounded queue, flushed when the socket has room again:
 *   - state messages (READY, STATUS, WATCHDOG, STOPPING): at most one pending
 *     per kind, the newest wins; never dropped; sent before fd-store messages;
 *   - fd-store messages (FDSTORE, FDSTOREREMOVE): sent in the order given; a
 *     removal cancels a still-queued store of the same name; at most
 *     NOTIFY_QUEUE_MAX stores wait (each holds a dup of its fd): past that a
 *     store is dropped with a log line, and its object will not survive a
 *     restart; before that, requests that store wait (notify_congested).  Removals carry no fd and are never dropped (a lost removal
 *     would leave a stale fd under a name the catalog reuses); at most one
 *     waits per name.
 * Without $NOTIFY_SOCKET every call is a cheap no-op. */
#pragma once

#include <stdbool.h>

#define NOTIFY_QUEUE_MAX 4096
#define NOTIFY_CONGESTED (NOTIFY_QUEUE_MAX / 2)
#define NOTIFY_STUCK_MS 2000
/* The exit waits for the manager to take what is queued, then to confirm
 * (BARRIER=1) that it has processed every message sent: as long as it
 * keeps reading, at most NOTIFY_EXIT_MAX_MS; after NOTIFY_EXIT_WAIT_MS in
 * which it read nothing, no longer. */
#define NOTIFY_EXIT_WAIT_MS 3000
#define NOTIFY_EXIT_MAX_MS 30000

typedef enum notify_kind {
        NOTIFY_READY,    /* "READY=1\n..." */
        NOTIFY_STATUS,   /* "STATUS=..." */
        NOTIFY_WATCHDOG, /* "WATCHDOG=1" */
        NOTIFY_STOPPING, /* "STOPPING=1\n..." */
        NOTIFY_KIND_MAX_,
} notify_kind;

/* Read $NOTIFY_SOCKET (a path, or @name for the abstract namespace) and
 * connect a non-blocking datagram socket to it.  Returns 1 if there is a
 * manager to talk to, 0 if none, or a negative errno (logged) if the
 * variable is unusable (then every call is a no-op). */
int notify_init(void);
bool notify_enabled(void);

/* Send a state message (text copied). */
void notify_state(notify_kind kind, const char *text);
/* FDSTORE=1 with FDNAME=name and fd.  Borrows fd: a queued message holds its
 * own dup.  Callers remove a name (notify_fdstore_remove) before storing it
 * again. */
void notify_fdstore(int fd, const char *name);
/* FDSTOREREMOVE=1 with FDNAME=name. */
void notify_fdstore_remove(const char *name);
/* Should requests that store an fd wait?  True while NOTIFY_CONGESTED or
 * more stores wait for a manager that is still taking messages (it took
 * one in the last NOTIFY_STUCK_MS): their connections are not read until
 * it has caught up, so that no store is dropped under a burst of creates.
 * A manager that takes nothing for that long is stuck: creates go on, and
 * past NOTIFY_QUEUE_MAX their stores are dropped (logged), rather than
 * waiting for it forever. */
bool notify_congested(void);

/* Shutdown: send what waits, waiting for room, then BARRIER=1 and wait for
 * the manager to confirm it has processed every message sent, as long as
 * it reads (above; this blocks: the loop is ending); log what is lost
 * or unconfirmed, close every queued fd and the socket, and close the poll
 * handle so that the loop can close.  Later calls are no-ops. */
void notify_fini(void);
