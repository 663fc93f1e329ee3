/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* mainloop.h: the daemon's loop.  One epoll set of the daemon's own, the
 * wait set, holds the listening sockets (listener.c), every client
 * connection (peer.c), the pidfds of clients it watches, the notify socket
 * while it is full (notify.c), and libuv's own backend fd.  Each turn waits on it once and takes at most
 * MAINLOOP_EVENTS of its events, so that thousands of fds ready at once
 * (a fleet of clients killed) are spread over turns: libuv's own poll
 * dispatches every ready fd in one turn.  libuv runs (its timers,
 * listeners, signals, async wake-ups, idle and closing handles) in the
 * turns where it has something due, as uv_run(UV_RUN_NOWAIT), so that a
 * request costs one epoll_wait as before.
 *
 * libuv is left what is not an fd: timers, signals, the reaper's async
 * wake-ups, idle handles.  An fd the daemon reads or writes is a
 * mainloop_watcher, so that the kernel's order holds between all of them
 * (a hang-up before a connect is seen first), and so that a turn stays
 * bounded. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define MAINLOOP_EVENTS 64
/* A turn that has worked this long takes no more work: the fds still ready
 * (level-triggered) come back in the next turns, after those that were not
 * served yet, so that many cheap-to-send, dear-to-serve requests (64
 * connections pipelining LISTs) cost each turn no more than this and one
 * request. */
#define MAINLOOP_BUDGET_NS 500000u

/* A share of the loop: what a group of watchers (one uid's connections,
 * peer.c) may work in one round of the loop, however many they are and
 * however many of them are ready, so that a group with more gets no more
 * time than the others: a turn's budget.  A round ends when a watcher
 * already reported in it is reported again, so every fd ready at its
 * start has been offered once by then (epoll reports ready fds in turn).
 * A ready watcher whose share is spent is not called: it waits, in the
 * order it came, for the next round.  Zeroed: unused so far. */
typedef struct mainloop_share {
        uint64_t round, used_ns;
} mainloop_share;

typedef struct mainloop_watcher mainloop_watcher;
struct mainloop_watcher {
        /* Called with the EPOLL* events it watches for that came, and
         * EPOLLERR/EPOLLHUP (which also wake what it watches for). */
        void (*cb)(mainloop_watcher *w, uint32_t events);
        void *data;
        uint32_t events; /* what it watches for now; 0: not in the wait set */
        /* The share its callbacks' time counts against, or NULL (never
         * kept waiting).  The owner may change it, NULL included, in a
         * callback; it must outlive the watcher's callbacks. */
        mainloop_share *share;
        /* mainloop.c's: the round it was last reported in; waiting for
         * the next round */
        uint64_t seen;
        bool deferred;
};

/* Has this turn used its budget?  (A callback that serves several
 * requests stops then: what it leaves stays ready.) */
bool mainloop_turn_spent(void);

/* Set up the wait set around loop (once, right after uv_loop_init). */
int mainloop_init(uv_loop_t *loop);
/* Called at the end of every turn, after every callback of the turn. */
void mainloop_on_turn_end(void (*fn)(void));
/* Watch fd for events (level-triggered EPOLL* flags; 0: stop watching).
 * w stays named by events already taken this turn until the turn ends:
 * after a stop its callback is not called, but it must not be freed
 * before the turn-end hook.  0 or a negative errno (w unchanged, except
 * that a failed stop counts as stopped). */
int mainloop_watch(mainloop_watcher *w, int fd, uint32_t events);
/* One turn; wait: sleep until something is due (else only what is ready). */
void mainloop_turn(bool wait);
/* Turns until libuv's loop is no longer alive (every handle closed). */
void mainloop_run(void);
void mainloop_fini(void);
