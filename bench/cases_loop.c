/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cases_loop.c: the client driven from a poll loop.  An asynchronous open
 * (submit, poll the client's fd, ipcb_process, the callback closes) against
 * the blocking ipcb_shm_open, one at a time and pipelined; and a watch
 * event's latency: a create on one connection until the CREATED callback
 * of a watch on another, against the create alone. */
#include "bench.h"

#include <ipcbroker.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEG_SIZE 4096
#define PIPELINE 8 /* fd-carrying replies in flight (the broker stops reading at 16 unread) */

typedef struct loop_state {
        ipcb_client *c, *w; /* w: the watcher (watch rows) */
        char name[64];
        int fd;
        unsigned done;
        int status;
        unsigned events;
} loop_state;

static unsigned rows;

static int loop_setup(const bench_env *env, bool watcher, void **ret_state) {
        loop_state *st = calloc(1, sizeof(*st));
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_shm *s;
        int k;

        if (!st)
                return -ENOMEM;
        snprintf(st->name, sizeof(st->name), "bench.loop.%u", ++rows);
        if ((k = ipcb_connect(env->socket_path, &st->c)) < 0)
                goto fail;
        if (watcher) {
                if ((k = ipcb_connect(env->socket_path, &st->w)) < 0)
                        goto fail;
                st->fd = ipcb_get_fd(st->w);
        } else {
                o.flags = IPCB_SHM_PERSISTENT;
                if ((k = ipcb_shm_create(st->c, st->name, SEG_SIZE, &o, &s)) < 0)
                        goto fail;
                ipcb_shm_close(s);
                st->fd = ipcb_get_fd(st->c);
        }
        if (st->fd < 0) {
                k = st->fd;
                goto fail;
        }
        *ret_state = st;
        return 0;
fail:
        fprintf(stderr, "ipcb_bench: loop setup: %s\n", ipcb_strerror(k));
        ipcb_disconnect(st->w);
        ipcb_disconnect(st->c);
        free(st);
        return k;
}

static int open_setup(const bench_env *env, void **ret_state) {
        return loop_setup(env, false, ret_state);
}

static int watch_setup(const bench_env *env, void **ret_state) {
        return loop_setup(env, true, ret_state);
}

static void loop_teardown(void *state) {
        loop_state *st = state;

        if (!st->w)
                (void)ipcb_shm_unlink(st->c, st->name);
        ipcb_disconnect(st->w);
        ipcb_disconnect(st->c);
        free(st);
}

static int run_open_blocking(void *state, unsigned n) {
        loop_state *st = state;

        for (unsigned i = 0; i < n; i++) {
                ipcb_shm *s;
                int k = ipcb_shm_open(st->c, st->name, IPCB_READ_WRITE, &s);
                if (k < 0)
                        return k;
                if ((k = ipcb_shm_close(s)) < 0)
                        return k;
        }
        return 0;
}

static void on_open(ipcb_client *c, int status, ipcb_shm *s, void *userdata) {
        loop_state *st = userdata;

        (void)c;
        st->done++;
        if (status < 0)
                st->status = status;
        else
                ipcb_shm_close(s);
}

/* Poll and process until `want` callbacks have run. */
static int drive(loop_state *st, ipcb_client *c, unsigned want, unsigned *counter) {
        while (*counter < want && st->status == 0) {
                struct pollfd p = { .fd = st->fd, .events = POLLIN };
                if (poll(&p, 1, 5000) <= 0)
                        return -ETIMEDOUT;
                if (ipcb_process(c) < 0)
                        return -EIO;
        }
        return st->status;
}

static int run_open_async(void *state, unsigned n) {
        loop_state *st = state;
        int k;

        st->done = 0;
        for (unsigned i = 0; i < n; i++) {
                k = ipcb_shm_open_async(st->c, st->name, IPCB_READ_WRITE, NULL, on_open, st, NULL);
                if (k < 0)
                        return k;
                if ((k = drive(st, st->c, i + 1, &st->done)) < 0)
                        return k;
        }
        return 0;
}

static int run_open_pipelined(void *state, unsigned n) {
        loop_state *st = state;
        unsigned sent = 0;
        int k;

        st->done = 0;
        while (st->done < n) {
                while (sent < n && sent - st->done < PIPELINE) {
                        k = ipcb_shm_open_async(st->c, st->name, IPCB_READ_WRITE, NULL, on_open,
                                                st, NULL);
                        if (k < 0)
                                return k;
                        sent++;
                }
                if ((k = drive(st, st->c, st->done + 1, &st->done)) < 0)
                        return k;
        }
        return 0;
}

static void on_event(ipcb_client *c, const ipcb_watch_event *ev, void *userdata) {
        loop_state *st = userdata;

        (void)c;
        if (ev->event == IPCB_WATCH_CREATED)
                st->events++;
        else if (ev->event == IPCB_WATCH_OVERFLOW)
                st->status = -ENOBUFS;
}

static int create_close(loop_state *st) {
        ipcb_shm *s;
        int k = ipcb_shm_create(st->c, st->name, SEG_SIZE, NULL, &s);

        return k < 0 ? k : ipcb_shm_close(s);
}

static int run_create(void *state, unsigned n) {
        loop_state *st = state;

        for (unsigned i = 0; i < n; i++) {
                int k = create_close(st);
                if (k < 0)
                        return k;
        }
        return 0;
}

static int run_create_watched(void *state, unsigned n) {
        loop_state *st = state;
        uint64_t w;
        int k;

        st->events = 0;
        k = ipcb_watch_add(st->w, IPCB_KIND_SHM, st->name, 0, IPCB_WATCH_CREATED, on_event, st, &w);
        if (k < 0)
                return k;
        for (unsigned i = 0; i < n && k == 0; i++) {
                k = create_close(st);
                if (k == 0)
                        k = drive(st, st->w, i + 1, &st->events);
        }
        int r = ipcb_watch_remove(st->w, w);
        return k < 0 ? k : r;
}

/* ---- a semaphore ping-pong between two processes, each waiting from a
 * poll loop on its semaphore's descriptor ---- */

typedef struct pp_loop {
        ipcb_client *c;
        ipcb_sem *mine, *theirs; /* wait on mine, release theirs */
        int fd;
        pid_t child;
        char a[32], b[32];
} pp_loop;

/* As a loop waits: until the descriptor is readable, then take the token
 * (the partner's release comes after the previous take consumed the
 * descriptor's edge, so there is nothing to try before waiting). */
static int pp_wait(pp_loop *p, int timeout_ms) {
        for (;;) {
                struct pollfd pf = { .fd = p->fd, .events = POLLIN };
                int k = poll(&pf, 1, timeout_ms);
                if (k == 0)
                        return -ETIMEDOUT;
                if (k < 0 && errno != EINTR)
                        return -errno;
                if ((k = ipcb_sem_poll_acquire(p->mine)) != -EAGAIN)
                        return k;
        }
}

static int pp_open(pp_loop *p, const char *sock, const char *mine, const char *theirs) {
        int k;

        if ((k = ipcb_connect(sock, &p->c)) < 0 || (k = ipcb_sem_open(p->c, mine, 0, &p->mine)) < 0 ||
            (k = ipcb_sem_open(p->c, theirs, 0, &p->theirs)) < 0)
                return k;
        p->fd = ipcb_sem_get_fd(p->mine);
        /* The releaser fetches its notify fd on its first release. */
        return p->fd < 0 ? p->fd : 0;
}

static int pp_serve(void *arg, const int *fds) {
        pp_loop *parent = arg, p = { 0 };
        const char *sock = getenv("IPCBROKER_SOCKET");

        (void)fds;
        if (!sock || pp_open(&p, sock, parent->b, parent->a) < 0)
                return -1;
        if (ipcb_sem_release(p.theirs, 1) < 0) /* ready */
                return -1;
        for (;;)
                if (pp_wait(&p, -1) < 0 || ipcb_sem_release(p.theirs, 1) < 0)
                        return -1;
}

static int pp_setup(const bench_env *env, void **ret_state) {
        pp_loop *p = calloc(1, sizeof(*p));
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
        ipcb_sem *s;
        int k;

        if (!p)
                return -ENOMEM;
        snprintf(p->a, sizeof(p->a), "bench.pp.a.%u", ++rows);
        snprintf(p->b, sizeof(p->b), "bench.pp.b.%u", rows);
        o.flags = IPCB_SEM_PERSISTENT;
        if ((k = ipcb_connect(env->socket_path, &p->c)) < 0 ||
            (k = ipcb_sem_create(p->c, p->a, 0, &o, &s)) < 0 || (k = ipcb_sem_close(s)) < 0 ||
            (k = ipcb_sem_create(p->c, p->b, 0, &o, &s)) < 0 || (k = ipcb_sem_close(s)) < 0)
                goto fail;
        ipcb_disconnect(p->c);
        p->c = NULL;
        setenv("IPCBROKER_SOCKET", env->socket_path, 1);
        if ((k = pp_open(p, env->socket_path, p->a, p->b)) < 0)
                goto fail;
        if ((k = bench_fork(env, NULL, 0, pp_serve, p, &p->child)) < 0)
                goto fail;
        if ((k = pp_wait(p, 5000)) < 0) {
                bench_fork_stop(p->child);
                goto fail;
        }
        *ret_state = p;
        return 0;
fail:
        fprintf(stderr, "ipcb_bench: poll ping-pong setup: %s\n", ipcb_strerror(k));
        ipcb_disconnect(p->c);
        free(p);
        return k;
}

static int run_pp(void *state, unsigned n) {
        pp_loop *p = state;

        for (unsigned i = 0; i < n; i++) {
                int k = ipcb_sem_release(p->theirs, 1);
                if (k < 0 || (k = pp_wait(p, 5000)) < 0)
                        return k;
        }
        return 0;
}

static void pp_teardown(void *state) {
        pp_loop *p = state;

        bench_fork_stop(p->child);
        ipcb_sem_close(p->mine);
        ipcb_sem_close(p->theirs);
        (void)ipcb_sem_unlink(p->c, p->a);
        (void)ipcb_sem_unlink(p->c, p->b);
        ipcb_disconnect(p->c);
        free(p);
}

const bench_case loop_cases[] = {
        { "loop.sem.pingpong", "(l) event loop",
          "semaphore ping-pong RT between two processes, each waiting in poll() on ipcb_sem_get_fd",
          pp_setup, run_pp, pp_teardown },
        { "loop.open", "(l) event loop",
          "ipcb_shm_open+ipcb_shm_close (blocking), 4 KiB", open_setup, run_open_blocking,
          loop_teardown },
        { "loop.open.async", "(l) event loop",
          "ipcb_shm_open_async, poll(fd), ipcb_process, close in the callback; one at a time",
          open_setup, run_open_async, loop_teardown },
        { "loop.open.pipelined", "(l) event loop",
          "ipcb_shm_open_async x8 in flight, poll+process, close in the callbacks; per open",
          open_setup, run_open_pipelined, loop_teardown },
        { "loop.create", "(l) event loop",
          "ipcb_shm_create+ipcb_shm_close (transient), nobody watching", watch_setup, run_create,
          loop_teardown },
        { "loop.create.watched", "(l) event loop",
          "the same, then poll+process on a watcher connection until its CREATED callback",
          watch_setup, run_create_watched, loop_teardown },
        {},
};

const bench_ratio loop_ratios[] = {
        { "(l) ping-pong RT: poll on ipcb_sem_get_fd / eventfd ping-pong in poll loops",
          "loop.sem.pingpong", "peer.eventfd.pingpong.poll", 1.1 },
        { "(l) ping-pong RT: poll on ipcb_sem_get_fd / eventfd ping-pong in blocking reads",
          "loop.sem.pingpong", "peer.eventfd.pingpong", 0 },
        { "(l) ping-pong RT: poll on ipcb_sem_get_fd / thread in ipcb_sem_acquire",
          "loop.sem.pingpong", "sem.pingpong", 0 },
        { "(l) async open round trip / blocking open", "loop.open.async", "loop.open", 1.05 },
        { "(l) pipelined async open / blocking open", "loop.open.pipelined", "loop.open", 0 },
        { "(l) create + watch event delivered / create alone", "loop.create.watched",
          "loop.create", 0 },
        {},
};
