/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_sempoll.c: waiting for a semaphore from an event loop
 * (ipcb_sem_get_fd, ipcb_sem_poll_acquire) against a real ipcbrokerd: the
 * descriptor is quiet without tokens and readable after a release from
 * another process; no wake-up is lost with many pollers and many
 * releasers while idle pollers are killed with SIGKILL; bad handles and
 * the per-connection bound; fds (the fixture checks both counts). */
#include "harness.h"

#include "ipcbroker.h"
#include "proto.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static ipcbd d;
static ipcb_client *c;

static void setup(void) {
        fixture_begin(&d, NULL);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
}

static void release(void) {
        ipcb_disconnect(c);
        c = NULL;
}

static void teardown(void) {
        release();
        fixture_cleanup(&d);
}

#define SP_TEST(name, ...) \
        FIXTURE_TEST(sempoll, name, &d, release, .init = setup, .fini = teardown, .timeout = 120, \
                     ##__VA_ARGS__)

static bool readable(int fd, int ms) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

SP_TEST(basic) {
        ipcb_sem *a, *b;
        ipcb_client *c2;
        int fd;

        cr_assert_eq(ipcb_sem_create(c, "ps", 0, NULL, &a), 0);
        fd = ipcb_sem_get_fd(a);
        cr_assert_geq(fd, 3);
        cr_assert_eq(ipcb_sem_get_fd(a), fd, "one poller per handle");
        cr_assert_not(readable(fd, 50), "no token, no release: quiet");
        cr_assert_eq(ipcb_sem_poll_acquire(a), -EAGAIN);
        /* A release from another connection (its first: it fetches the
         * notify fd). */
        cr_assert_eq(ipcb_connect(d.sock, &c2), 0);
        cr_assert_eq(ipcb_sem_open(c2, "ps", 0, &b), 0);
        cr_assert_eq(ipcb_sem_release(b, 1), 0);
        cr_assert(readable(fd, 2000), "a release must make the poller readable");
        cr_assert_eq(ipcb_sem_poll_acquire(a), 0);
        cr_assert_eq(ipcb_sem_value(a), 0);
        cr_assert_not(readable(fd, 50), "reset by poll_acquire");
        cr_assert_eq(ipcb_sem_poll_acquire(a), -EAGAIN);
        /* Two releases, one wake: both tokens are there to take. */
        cr_assert_eq(ipcb_sem_release(b, 1), 0);
        cr_assert_eq(ipcb_sem_release(b, 1), 0);
        cr_assert(readable(fd, 2000));
        cr_assert_eq(ipcb_sem_poll_acquire(a), 0);
        cr_assert_eq(ipcb_sem_poll_acquire(a), 0);
        cr_assert_eq(ipcb_sem_poll_acquire(a), -EAGAIN);
        cr_assert_eq(ipcb_sem_close(b), 0);
        ipcb_disconnect(c2);
        cr_assert_eq(ipcb_sem_close(a), 0);
        cr_assert_eq(ipcb_sem_get_fd(NULL), -EINVAL);
        cr_assert_eq(ipcb_sem_poll_acquire(NULL), -EINVAL);
}

/* A release through an undo handle and the broker's own give-back (a dead
 * undo holder's tokens) wake pollers too. */
SP_TEST(undo_and_broker_give_back) {
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
        ipcb_sem *a;
        int fd;

        cr_assert_eq(ipcb_sem_create(c, "pu", 1, &o, &a), 0);
        fd = ipcb_sem_get_fd(a);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ipcb_sem_poll_acquire(a), 0);
        int ready[2], st;
        cr_assert_eq(pipe(ready), 0);
        pid_t pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_sem *u;
                if (ipcb_connect(d.sock, &cc) < 0 || ipcb_sem_open(cc, "pu", IPCB_SEM_UNDO, &u) < 0)
                        _exit(1);
                /* It takes nothing (the count is 0): it releases one through
                 * its undo handle, then takes it back, and waits to be
                 * killed holding it. */
                if (ipcb_sem_release(u, 1) < 0 || ipcb_sem_acquire(u) < 0)
                        _exit(2);
                if (write(ready[1], "x", 1) != 1)
                        _exit(3);
                pause();
                _exit(4);
        }
        char x;
        cr_assert_eq(read(ready[0], &x, 1), 1, "the child did not take its token");
        close(ready[0]);
        close(ready[1]);
        /* Its release woke the poller: take that edge, so that only the
         * broker's give-back can wake it again. */
        struct epoll_event ev;
        while (epoll_wait(fd, &ev, 1, 0) > 0)
                ;
        cr_assert(!readable(fd, 0));
        cr_assert_eq(ipcb_sem_value(a), 0);
        kill(pid, SIGKILL);
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFSIGNALED(st), "child status %d", st);
        /* The broker gives its token back and tells the pollers. */
        cr_assert(readable(fd, 5000), "the broker's give-back must wake the poller");
        cr_assert_eq(ipcb_sem_value(a), 1);
        cr_assert_eq(ipcb_sem_poll_acquire(a), 0);
        cr_assert_eq(ipcb_sem_close(a), 0);
}

SP_TEST(bad_handles_and_bound) {
        ipcb_sem *s[65];
        ipcb_shm *shm;
        int r;

        /* A raw SEM_POLL on a segment handle or no handle: -EBADF (through
         * the library: a segment handle has no get_fd; so check the bound). */
        cr_assert_eq(ipcb_shm_create(c, "notasem", 4096, NULL, &shm), 0);
        cr_assert_eq(ipcb_sem_create(c, "pb", 0, NULL, &s[0]), 0);
        cr_assert_geq(ipcb_sem_get_fd(s[0]), 0);
        for (int i = 1; i < 65; i++)
                cr_assert_eq(ipcb_sem_open(c, "pb", 0, &s[i]), 0);
        for (int i = 1; i < 64; i++)
                cr_assert_geq(ipcb_sem_get_fd(s[i]), 0, "poller %d", i);
        r = ipcb_sem_get_fd(s[64]);
        cr_assert_eq(r, -EDQUOT, "65th poller on one connection: %d", r);
        /* Closing a poller frees its place. */
        cr_assert_eq(ipcb_sem_close(s[0]), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_geq(ipcb_sem_get_fd(s[64]), 0);
        for (int i = 1; i < 65; i++)
                cr_assert_eq(ipcb_sem_close(s[i]), 0);
        cr_assert_eq(ipcb_shm_close(shm), 0);
}

/* ---- torture: many pollers, many releasers, idle pollers killed ---- */

enum { POLLERS = 6, RELEASERS = 4, IDLE = 6, TOKENS = 3000 };

typedef struct shared {
        atomic_int total;   /* acquisitions by the pollers */
        atomic_int ready;   /* pollers registered */
        atomic_int stalls;  /* a poll that timed out with tokens there */
} shared;

static int poller(shared *sh) {
        ipcb_client *cc;
        ipcb_sem *s;
        int fd;

        if (ipcb_connect(d.sock, &cc) < 0 || ipcb_sem_open(cc, "tort", 0, &s) < 0)
                return 1;
        if ((fd = ipcb_sem_get_fd(s)) < 0)
                return 2;
        atomic_fetch_add(&sh->ready, 1);
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                int n = poll(&p, 1, 10000);
                if (n == 0) {
                        /* 10 s without a wake-up: only a lost one explains
                         * tokens sitting there. */
                        if (ipcb_sem_value(s) > 0)
                                atomic_fetch_add(&sh->stalls, 1);
                        continue;
                }
                while (ipcb_sem_poll_acquire(s) == 0) {
                        if (atomic_fetch_add(&sh->total, 1) >= TOKENS)
                                return 0; /* a stop token */
                }
        }
}

static int releaser(int n) {
        ipcb_client *cc;
        ipcb_sem *s;

        if (ipcb_connect(d.sock, &cc) < 0 || ipcb_sem_open(cc, "tort", 0, &s) < 0)
                return 1;
        for (int i = 0; i < n; i++) {
                if (ipcb_sem_release(s, 1) < 0)
                        return 2;
                if (i % 7 == 0)
                        sched_yield();
                if (i % 97 == 0)
                        usleep(200);
        }
        return 0;
}

static int idle_poller(void) {
        ipcb_client *cc;
        ipcb_sem *s;

        if (ipcb_connect(d.sock, &cc) < 0 || ipcb_sem_open(cc, "tort", 0, &s) < 0 ||
            ipcb_sem_get_fd(s) < 0)
                return 1;
        pause();
        return 0;
}

static void wait_all(pid_t *pids, int n, int timeout_s, const char *what) {
        struct timespec t0, t;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < n; i++) {
                int st;
                pid_t r;
                while ((r = waitpid(pids[i], &st, WNOHANG)) == 0) {
                        clock_gettime(CLOCK_MONOTONIC, &t);
                        if (t.tv_sec - t0.tv_sec > timeout_s) {
                                for (int j = 0; j < n; j++)
                                        kill(pids[j], SIGKILL);
                                cr_assert_fail("%s %d still running after %d s: a lost wake-up?",
                                               what, i, timeout_s);
                        }
                        usleep(10000);
                }
                cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s %d: status %d", what, i, st);
        }
}

SP_TEST(torture) {
        shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                          -1, 0);
        pid_t pol[POLLERS], rel[RELEASERS], idle[IDLE];
        ipcb_sem *s;

        cr_assert_neq(sh, MAP_FAILED);
        memset(sh, 0, sizeof(*sh));
        cr_assert_eq(ipcb_sem_create(c, "tort", 0, NULL, &s), 0);
        for (int i = 0; i < IDLE; i++)
                if ((idle[i] = test_fork()) == 0)
                        _exit(idle_poller());
        for (int i = 0; i < POLLERS; i++)
                if ((pol[i] = test_fork()) == 0)
                        _exit(poller(sh));
        for (int i = 0; i < 500 && atomic_load(&sh->ready) < POLLERS; i++)
                usleep(10000);
        cr_assert_eq(atomic_load(&sh->ready), POLLERS);
        for (int i = 0; i < RELEASERS; i++)
                if ((rel[i] = test_fork()) == 0)
                        _exit(releaser(TOKENS / RELEASERS));
        /* Kill the idle pollers while the tokens flow. */
        usleep(20000);
        for (int i = 0; i < IDLE; i++) {
                kill(idle[i], SIGKILL);
                waitpid(idle[i], NULL, 0);
        }
        wait_all(rel, RELEASERS, 60, "releaser");
        /* Every token is taken, by someone woken for it. */
        for (int i = 0; i < 3000 && atomic_load(&sh->total) < TOKENS; i++)
                usleep(10000);
        cr_assert_eq(atomic_load(&sh->total), TOKENS, "tokens taken: %d of %d",
                     atomic_load(&sh->total), TOKENS);
        /* One stop token per poller: each takes one and exits. */
        cr_assert_eq(ipcb_sem_release(s, POLLERS), 0);
        wait_all(pol, POLLERS, 30, "poller");
        cr_assert_eq(atomic_load(&sh->total), TOKENS + POLLERS);
        cr_assert_eq(atomic_load(&sh->stalls), 0, "pollers slept with tokens there");
        cr_assert_eq(ipcb_sem_value(s), 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
        munmap(sh, sizeof(*sh));
}

/* Raw SEM_POLL / SEM_NOTIFY with handles that are not this connection's
 * semaphores: refused, nothing sent. */
SP_TEST(raw_refusals) {
        int fd = ipcbd_hello_conn(&d);
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg m, r;
        ipcb_shm *shm;
        ipcb_sem *s;
        unsigned nfds;
        int fds[4];
        ssize_t len;

        cr_assert_eq(ipcb_shm_create(c, "seg", 4096, NULL, &shm), 0);
        cr_assert_eq(ipcb_sem_create(c, "sem", 0, NULL, &s), 0);
        /* Handle ids of another connection, 0, garbage. */
        static const uint64_t ids[] = { 0, 1, 2, (1ull << 32) | 1, UINT64_MAX };
        static const uint16_t ops[] = { IPCB_OP_SEM_POLL, IPCB_OP_SEM_NOTIFY };
        for (size_t o = 0; o < 2; o++)
                for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
                        m = (ipcb_msg){ .hdr = { .op = ops[o], .id = 7 } };
                        m.sem_poll.handle = ids[i];
                        len = ipcb__proto_encode(&m, buf, sizeof(buf));
                        cr_assert_eq(raw_send(fd, buf, (size_t)len, NULL, 0), 0);
                        nfds = 4;
                        len = raw_recv(fd, buf, sizeof(buf), fds, &nfds, 2000);
                        cr_assert_gt(len, 0);
                        cr_assert_eq(nfds, 0, "an fd was sent");
                        cr_assert_eq(ipcb__proto_decode(buf, (size_t)len, 0, &r), 0);
                        cr_assert_eq(r.hdr.status, -EBADF, "op 0x%x handle %llx: %d", ops[o],
                                     (unsigned long long)ids[i], r.hdr.status);
                }
        close(fd);
        cr_assert_eq(ipcb_sem_close(s), 0);
        cr_assert_eq(ipcb_shm_close(shm), 0);
}

/* The notify eventfd is one more daemon fd: it counts against the uid's fd
 * quota and the daemon's fd budget like the semaphore's own page, and is
 * given back when the semaphore goes. */
static void setup_fd_quota(void) {
        static const char *const args[] = { "--no-root-override", "--max-fds", "2", NULL };
        fixture_begin(&d, args);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
}

FIXTURE_TEST(sempoll, notify_fd_is_charged, &d, release, .init = setup_fd_quota, .fini = teardown,
             .timeout = 60) {
        ipcb_sem *a, *b;

        cr_assert_eq(ipcb_sem_create(c, "q1", 0, NULL, &a), 0);
        cr_assert_eq(ipcb_sem_create(c, "q2", 0, NULL, &b), 0);
        int k = ipcb_sem_get_fd(a);
        cr_assert_eq(k, -EDQUOT, "polling with the fd quota spent: %d (%s)", k, ipcb_strerror(k));
        cr_assert_eq(ipcb_sem_close(b), 0); /* transient: destroyed, its fd given back */
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_geq(ipcb_sem_get_fd(a), 0);
        cr_assert_eq(ipcb_sem_create(c, "q3", 0, NULL, &b), -EDQUOT,
                     "the eventfd was not charged");
        cr_assert_eq(ipcb_sem_close(a), 0); /* page and eventfd given back */
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_sem_create(c, "q3", 0, NULL, &a), 0);
        cr_assert_eq(ipcb_sem_create(c, "q4", 0, NULL, &b), 0, "the eventfd was not given back");
        cr_assert_eq(ipcb_sem_close(a), 0);
        cr_assert_eq(ipcb_sem_close(b), 0);
}

/* Any user of the semaphore holds its notify eventfd and can fill the
 * counter with one write; a release must still wake the pollers. */
/* The eventfd the poller's epoll set watches (its fdinfo names it). */
static int watched_eventfd(int epfd) {
        char path[64], line[256];
        int tfd = -1;
        snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", epfd);
        FILE *f = fopen(path, "r");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "tfd: %d", &tfd) == 1)
                        break;
        fclose(f);
        return tfd;
}

SP_TEST(full_eventfd_still_wakes) {
        ipcb_sem *a, *b;
        ipcb_client *c2;
        uint64_t full = UINT64_MAX - 1;
        int fd, efd;

        cr_assert_eq(ipcb_sem_create(c, "pf", 0, NULL, &a), 0);
        fd = ipcb_sem_get_fd(a);
        cr_assert_geq(fd, 0);
        efd = watched_eventfd(fd);
        cr_assert_geq(efd, 0, "no eventfd in this process");
        cr_assert_eq(write(efd, &full, sizeof(full)), (ssize_t)sizeof(full));
        cr_assert(readable(fd, 1000)); /* that write itself was an edge */
        cr_assert_eq(ipcb_sem_poll_acquire(a), -EAGAIN);
        cr_assert_eq(ipcb_connect(d.sock, &c2), 0);
        cr_assert_eq(ipcb_sem_open(c2, "pf", 0, &b), 0);
        cr_assert_eq(ipcb_sem_release(b, 1), 0);
        cr_assert(readable(fd, 2000), "a release after the counter was filled woke nobody");
        cr_assert_eq(ipcb_sem_poll_acquire(a), 0);
        cr_assert_eq(ipcb_sem_close(b), 0);
        ipcb_disconnect(c2);
        cr_assert_eq(ipcb_sem_close(a), 0);
}
