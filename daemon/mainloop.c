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
static struct epoll_event left[MAINLOOP_EVENTS];
static int nleft;
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
        if (!events)
                for (int i = 0; i < nleft; i++)
                        if (left[i].data.ptr == w)
                                left[i].data.ptr = &gone;
        return k;
}

bool mainloop_turn_spent(void) {
        return uv_hrtime() - turn_t0 >= MAINLOOP_BUDGET_NS;
}

void mainloop_turn(bool wait) {
        struct epoll_event ev[MAINLOOP_EVENTS];
        bool run_uv = false;
        int timeout = 0, n;

        if (nleft) { /* what the last turn left: before anything newer */
                n = nleft;
                memcpy(ev, left, (size_t)n * sizeof(ev[0]));
                nleft = 0;
        } else {
                if (wait) {
                        uv_update_time(uvl);
                        timeout = uv_backend_timeout(uvl);
                }
                n = epoll_wait(wait_fd, ev, MAINLOOP_EVENTS, timeout);
                if (n < 0 && errno != EINTR) { /* EINTR: a signal, which libuv's pipe tells */
                        log_err("epoll_wait: %s", strerror(errno)); /* a bug: the loop cannot go on */
                        abort();
                }
        }
        turn_began();
        turn_t0 = uv_hrtime();
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
                /* As libuv does: what w watches for, and an error or hang-up
                 * reported alone wakes that, so that its read or write meets it. */
                e &= w->events | EPOLLERR | EPOLLHUP;
                if (e == EPOLLERR || e == EPOLLHUP)
                        e |= w->events;
                if (e) /* else it changed what it watches for since */
                        w->cb(w, e);
                if (i + 1 < n && mainloop_turn_spent()) { /* the rest, next turn */
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
        if (run_uv || n == MAINLOOP_EVENTS || uv_backend_timeout(uvl) == 0)
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
        nleft = 0;
}
