/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* mainloop.c: the daemon's loop; see mainloop.h.  libuv is embedded the
 * way its uv_backend_fd()/uv_backend_timeout() are meant for: its epoll
 * fd is one more member of the wait set, and the wait set's timeout is
 * libuv's.  That timeout is 0 while libuv has idle, pending or closing
 * handles, and (since libuv 1.44, which CMakeLists.txt requires) while a
 * watcher it was asked to start waits for its next poll: the signal pipe
 * and the reaper's async, started before the loop runs. */
#include "mainloop.h"

#include "log.h"
#include "turns.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

static uv_loop_t *uvl;
static int wait_fd = -1;
static uint64_t turn_t0; /* when this turn's work began (uv_hrtime) */
/* What a turn that ran out of budget left of its batch: the next turn
 * serves it before it polls again.  (Polling first would not do: epoll
 * moves every fd it reports to the back of its ready list, served or not,
 * so with more ready fds than a batch holds the fds left over would go
 * round unserved, again and again.)  A watcher stopped meanwhile is
 * replaced by `gone`, which is skipped: it may be freed. */
#define DEFERRED_MAX 1024
static struct epoll_event left[DEFERRED_MAX + MAINLOOP_EVENTS];
static int nleft;
/* Watchers not called for their spent share (mainloop.h), in the order
 * they came: first in the next round.  Those that do not fit here wait in
 * epoll's ready list, which offers them again in turn, but in no order
 * among themselves. */
static struct epoll_event deferred[DEFERRED_MAX];
static int ndeferred;
static uint64_t loop_round = 1;
static mainloop_watcher gone;
static void (*turn_end_hook)(void);

int mainloop_init(uv_loop_t *loop) {
        struct epoll_event e = { .events = EPOLLIN, .data.ptr = NULL }; /* NULL: libuv */
        int k;

        uvl = loop;
        if ((wait_fd = epoll_create1(EPOLL_CLOEXEC)) < 0)
                return -errno;
        if (epoll_ctl(wait_fd, EPOLL_CTL_ADD, uv_backend_fd(loop), &e) < 0) {
                k = -errno;
                mainloop_fini();
                return k;
        }
        return 0;
}

void mainloop_on_turn_end(void (*fn)(void)) {
        turn_end_hook = fn;
}

int mainloop_watch(mainloop_watcher *w, int fd, uint32_t events) {
        struct epoll_event e = { .events = events, .data.ptr = w };
        int op = !events ? EPOLL_CTL_DEL : w->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, k = 0;

        if (events == w->events)
                return 0;
        if (epoll_ctl(wait_fd, op, fd, &e) < 0)
                k = -errno;
        if (k == 0 || op == EPOLL_CTL_DEL) /* a failed removal: it was not there */
                w->events = events;
        if (!events) {
                for (int i = 0; i < nleft; i++)
                        if (left[i].data.ptr == w)
                                left[i].data.ptr = &gone;
                for (int i = 0; w->deferred && i < ndeferred; i++)
                        if (deferred[i].data.ptr == w)
                                deferred[i].data.ptr = &gone;
                w->deferred = false;
        }
        return k;
}

bool mainloop_turn_spent(void) {
        return uv_hrtime() - turn_t0 >= MAINLOOP_BUDGET_NS;
}

/* Has s worked a turn's budget in this round? */
static bool share_spent(mainloop_share *s) {
        if (s->round != loop_round) {
                s->round = loop_round;
                s->used_ns = 0;
        }
        return s->used_ns >= MAINLOOP_BUDGET_NS;
}

/* A new batch of n events (got): the round ends if one was reported in
 * it already, and then what waited for it comes first.  Fills ev (room
 * for DEFERRED_MAX + MAINLOOP_EVENTS); returns how many. */
static int take_batch(const struct epoll_event *got, int n, struct epoll_event *ev) {
        bool new_round = false;
        int k = 0;

        for (int i = 0; i < n && !new_round; i++) {
                mainloop_watcher *w = got[i].data.ptr;
                new_round = w && w->seen == loop_round; /* offered again: the round is over */
        }
        if (new_round) {
                loop_round++;
                for (int i = 0; i < ndeferred; i++)
                        if (deferred[i].data.ptr != &gone)
                                ev[k++] = deferred[i];
        }
        for (int i = 0; i < n; i++) {
                mainloop_watcher *w = got[i].data.ptr;
                if (w)
                        w->seen = loop_round; /* reported in this round (a new one included) */
                if (!w || !w->deferred) /* else it is in deferred[], now first in ev */
                        ev[k++] = got[i];
        }
        if (new_round) {
                for (int i = 0; i < ndeferred; i++)
                        ((mainloop_watcher *)deferred[i].data.ptr)->deferred = false;
                ndeferred = 0;
        }
        return k;
}

void mainloop_turn(bool wait) {
        static struct epoll_event ev[DEFERRED_MAX + MAINLOOP_EVENTS];
        bool run_uv = false;
        int timeout = 0, n, polled = 0;

        if (nleft) { /* what the last turn left: before anything newer */
                n = nleft;
                memcpy(ev, left, (size_t)n * sizeof(ev[0]));
                nleft = 0;
        } else {
                struct epoll_event got[MAINLOOP_EVENTS];
                if (wait) {
                        uv_update_time(uvl);
                        timeout = uv_backend_timeout(uvl);
                }
                polled = epoll_wait(wait_fd, got, MAINLOOP_EVENTS, timeout);
                if (polled < 0 && errno != EINTR) { /* EINTR: a signal, which libuv's pipe tells */
                        log_err("epoll_wait: %s", strerror(errno)); /* a bug: the loop cannot go on */
                        abort();
                }
                n = take_batch(got, polled > 0 ? polled : 0, ev);
        }
        turn_began();
        uint64_t t = turn_t0 = uv_hrtime(); /* the last callback's end: this one's start */
        uv_update_time(uvl); /* for timers the callbacks start, and to see which are due */
        for (int i = 0; i < n; i++) {
                mainloop_watcher *w = ev[i].data.ptr;
                uint32_t e = ev[i].events;

                if (!w) {
                        run_uv = true;
                        continue;
                }
                if (!w->events) /* stopped by an earlier callback of this turn */
                        continue;
                if (w->share && share_spent(w->share)) {
                        if (!w->deferred && ndeferred < DEFERRED_MAX) {
                                w->deferred = true;
                                deferred[ndeferred++] = ev[i];
                        }
                        continue;
                }
                /* As libuv does: what w watches for, and an error or hang-up
                 * reported alone wakes that, so that its read or write meets it. */
                e &= w->events | EPOLLERR | EPOLLHUP;
                if (e == EPOLLERR || e == EPOLLHUP)
                        e |= w->events;
                if (e) /* else it changed what it watches for since */
                        w->cb(w, e);
                uint64_t now = uv_hrtime();
                if (w->share) /* (NULL if the callback let it go) */
                        w->share->used_ns += now - t;
                t = now;
                if (i + 1 < n && now - turn_t0 >= MAINLOOP_BUDGET_NS) { /* the rest, next turn */
                        for (int r = i + 1; r < n; r++) {
                                mainloop_watcher *rw = ev[r].data.ptr;
                                if (!rw || rw->events) /* a watcher stopped now may go */
                                        left[nleft++] = ev[r];
                        }
                        run_uv = true;
                        break;
                }
        }
        /* libuv runs when its fd is ready; after a full batch, when more
         * may wait, its fd among them (epoll hands out ready fds in turn),
         * so that signals and the reaper's wake-ups are not left behind
         * thousands of ready connections; and when a timer is due, or it
         * has idle, pending or closing handles. */
        if (run_uv || polled == MAINLOOP_EVENTS || uv_backend_timeout(uvl) == 0)
                uv_run(uvl, UV_RUN_NOWAIT);
        if (turn_end_hook)
                turn_end_hook();
        turn_end();
}

void mainloop_run(void) {
        while (uv_loop_alive(uvl))
                mainloop_turn(true);
}

void mainloop_fini(void) {
        if (wait_fd >= 0)
                close(wait_fd);
        wait_fd = -1;
        nleft = ndeferred = 0;
}
