/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_store_handles.c: requests that name a broker handle (the lock page,
 * lock and semaphore poller registration, the notify eventfd), sent as a
 * client's first request after a broker restart.  The library finds the
 * connection gone and reconnects inside that request, re-opening every
 * handle under a new id; the request must then go out under the new id of
 * its own handle.  Handle ids are per connection and made the same way on
 * every connection, so the old id names another handle of the same client
 * on the new one: sent as it was, the request acts on another object.
 * Each test opens two objects of one kind in one client, the one it uses
 * first, so that the re-open (newest first) gives the other the old id.
 *
 * And a release's wake-up of pollers, through a handle whose notify
 * eventfd came from the old broker: the new broker's pollers must get it.
 *
 * The harness fixture (harness.h) adopts the first daemon: the last one is
 * back at its idle fd count before its final stop, and the test process
 * holds no more fds at the end than at the start. */
#include "harness.h"
#include "prober.h"
#include "storefix.h"

#include "ipcbroker.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static storefix fx;

static void setup(void) {
        storefix_setup(&fx, "/tmp/ipcbsh.XXXXXX", false);
}

static void start(void) {
        /* A grace longer than any test: what is held across the restart
         * stays held unless a test lets it go. */
        static const char *const args[] = { "--restore-grace", "30", "-v", NULL };
        storefix_start(&fx, args);
}

static void stop(void) {
        storefix_stop(&fx);
}

static void release(void) {
        storefix_release(&fx);
}

static void teardown(void) {
        storefix_teardown(&fx);
}

TestSuite(store_handles, .init = setup, .fini = teardown, .timeout = 60);

#define STORE_HANDLES_TEST(name) FIXTURE_TEST(store_handles, name, &fx.d, release)

typedef struct stored {
        const char *prefix;
        unsigned n;
} stored;

static bool has_stored(const fakemgr *fm, void *arg) {
        const stored *s = arg;
        return fakemgr_count(fm, s->prefix) == s->n;
}

static void pump_until_stored(const char *prefix, unsigned n) {
        stored s = { prefix, n };
        cr_assert(fakemgr_pump_until(&fx.m, has_stored, &s, 5000), "%u '%s' entries not stored", n,
                  prefix);
}

static bool poll_readable(int fd, int ms) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

static void restart(void) {
        stop();
        start();
}

/* The end of every test: objects unlinked, clients gone, store empty. */
static void finish(ipcb_client *c, int kind, const char *const *names, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                cr_assert_eq(kind == IPCB_KIND_SHM ? ipcb_unlink(c, names[i]) : ipcb_sem_unlink(c, names[i]),
                             0, "unlink %s", names[i]);
        cr_assert_eq(ipcb_sync(c), 0);
        ipcb_disconnect(c);
        pump_until_stored("ipcb-o-", 0);
        fixture_check_idle(&fx.d);
        stop();
}

static void make_segments(ipcb_client *c, const char *const *names, unsigned n, ipcb_shm **ret) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;

        o.flags = IPCB_SHM_PERSISTENT;
        for (unsigned i = 0; i < n; i++)
                cr_assert_eq(ipcb_shm_create(c, names[i], 4096, &o, &ret[i]), 0, "create %s", names[i]);
}

static void make_sems(ipcb_client *c, const char *const *names, unsigned n, ipcb_sem **ret) {
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;

        o.flags = IPCB_SEM_PERSISTENT;
        for (unsigned i = 0; i < n; i++)
                cr_assert_eq(ipcb_sem_create(c, names[i], 0, &o, &ret[i]), 0, "create %s", names[i]);
}

/* A handle's first lock after the restart fetches its lock page: the page
 * of its own segment, whose lock another client held across the restart,
 * and not the other segment's, free.  Read-write (a token) and read-only
 * (the sequence) alike. */
STORE_HANDLES_TEST(first_lock_page_after_restart_is_its_own) {
        static const char *const names[] = { "hA", "hB" };
        ipcb_client *c, *w, *r;
        ipcb_shm *s[2], *ws, *rs[2];
        uint32_t seq;
        int k;

        start();
        cr_assert_eq(ipcb_connect(fx.sock, &c), 0);
        cr_assert_eq(ipcb_connect(fx.sock, &w), 0);
        cr_assert_eq(ipcb_connect(fx.sock, &r), 0);
        make_segments(c, names, 2, s);
        for (unsigned i = 0; i < 2; i++)
                cr_assert_eq(ipcb_shm_open(r, names[i], IPCB_READ_ONLY, &rs[i]), 0);
        cr_assert_eq(ipcb_shm_open(w, "hA", IPCB_READ_WRITE, &ws), 0);
        cr_assert_eq(ipcb_shm_lock(ws), 0);
        cr_assert_eq(ipcb_sync(w), 0);
        pump_until_stored("ipcb-l-", 1);
        pump_until_stored("ipcb-o-", 2);

        restart();
        /* w's lock is held across the restart (its token reserved). */
        k = ipcb_shm_read_begin(rs[0], 0, &seq);
        cr_assert_eq(k, -EAGAIN, "a reader's first look at hA after the restart: %d (%s), not -EAGAIN "
                                 "(the lock is held)", k, k < 0 ? ipcb_strerror(k) : "a sequence");
        k = ipcb_shm_try_lock(s[0], 0);
        cr_assert_eq(k, -EAGAIN, "a locker's first lock of hA after the restart: %d (%s), not -EAGAIN",
                     k, k < 0 ? ipcb_strerror(k) : "taken");
        /* hB is free, and its pages are hB's. */
        cr_assert_eq(ipcb_shm_try_lock(s[1], 0), 0);
        cr_assert_eq(ipcb_shm_read_begin(rs[1], 0, &seq), -EAGAIN);
        cr_assert_eq(ipcb_shm_unlock(s[1]), 0);
        cr_assert_eq(ipcb_shm_unlock(ws), 0);
        cr_assert_eq(ipcb_shm_read_begin(rs[0], 0, &seq), 0);
        cr_assert_eq(ipcb_shm_try_lock(s[0], 0), 0);
        cr_assert_eq(ipcb_shm_unlock(s[0]), 0);

        cr_assert_eq(ipcb_shm_close(ws), 0);
        ipcb_disconnect(w);
        for (unsigned i = 0; i < 2; i++) {
                cr_assert_eq(ipcb_shm_close(rs[i]), 0);
                cr_assert_eq(ipcb_shm_close(s[i]), 0);
        }
        ipcb_disconnect(r);
        finish(c, IPCB_KIND_SHM, names, 2);
}

/* A handle that fetched its lock page before the restart registers as a
 * poller of the lock after it: its descriptor wakes at its own segment's
 * unlock. */
STORE_HANDLES_TEST(lock_poller_after_restart_is_its_own) {
        static const char *const names[] = { "hA", "hB" };
        ipcb_client *c, *w;
        ipcb_shm *s[2], *ws;
        int fd;

        start();
        cr_assert_eq(ipcb_connect(fx.sock, &c), 0);
        make_segments(c, names, 2, s);
        for (unsigned i = 0; i < 2; i++) {
                cr_assert_eq(ipcb_shm_lock(s[i]), 0);
                cr_assert_eq(ipcb_shm_unlock(s[i]), 0);
        }
        cr_assert_eq(ipcb_sync(c), 0);
        pump_until_stored("ipcb-l-", 2);

        restart();
        cr_assert_eq(ipcb_connect(fx.sock, &w), 0);
        cr_assert_eq(ipcb_shm_open(w, "hA", IPCB_READ_WRITE, &ws), 0);
        cr_assert_eq(ipcb_shm_lock(ws), 0);
        fd = ipcb_shm_lock_get_fd(s[0]);
        cr_assert_geq(fd, 0, "lock_get_fd after the restart: %s", ipcb_strerror(fd));
        cr_assert_eq(ipcb_shm_poll_lock(s[0]), -EAGAIN);
        cr_assert_eq(ipcb_shm_unlock(ws), 0);
        cr_assert(poll_readable(fd, 2000), "the unlock of hA did not wake hA's poller");
        cr_assert_eq(ipcb_shm_poll_lock(s[0]), 0);
        cr_assert_eq(ipcb_shm_unlock(s[0]), 0);

        cr_assert_eq(ipcb_shm_close(ws), 0);
        ipcb_disconnect(w);
        for (unsigned i = 0; i < 2; i++)
                cr_assert_eq(ipcb_shm_close(s[i]), 0);
        finish(c, IPCB_KIND_SHM, names, 2);
}

/* A semaphore handle registers as a poller after the restart: its
 * descriptor wakes at its own semaphore's release. */
STORE_HANDLES_TEST(sem_poller_after_restart_is_its_own) {
        static const char *const names[] = { "hX", "hY" };
        ipcb_client *c, *q;
        ipcb_sem *s[2], *qs;
        int fd;

        start();
        cr_assert_eq(ipcb_connect(fx.sock, &c), 0);
        make_sems(c, names, 2, s);
        cr_assert_eq(ipcb_sync(c), 0);
        pump_until_stored("ipcb-o-", 2);

        restart();
        fd = ipcb_sem_get_fd(s[0]);
        cr_assert_geq(fd, 0, "sem_get_fd after the restart: %s", ipcb_strerror(fd));
        cr_assert_eq(ipcb_sem_poll_acquire(s[0]), -EAGAIN);
        cr_assert_eq(ipcb_connect(fx.sock, &q), 0);
        cr_assert_eq(ipcb_sem_open(q, "hX", 0, &qs), 0);
        cr_assert_eq(ipcb_sem_release(qs, 1), 0);
        cr_assert(poll_readable(fd, 2000), "a release of hX did not wake hX's poller");
        cr_assert_eq(ipcb_sem_poll_acquire(s[0]), 0);

        cr_assert_eq(ipcb_sem_close(qs), 0);
        ipcb_disconnect(q);
        for (unsigned i = 0; i < 2; i++)
                cr_assert_eq(ipcb_sem_close(s[i]), 0);
        finish(c, IPCB_KIND_SEM, names, 2);
}

/* A release through a handle that fetched the notify eventfd before the
 * restart, as its client's first act after it, wakes a poller registered
 * with the new broker. */
STORE_HANDLES_TEST(release_after_restart_wakes_new_pollers) {
        static const char *const names[] = { "hX", "hY" };
        ipcb_client *c, *q;
        ipcb_sem *s[2], *qs[2];
        int fd[2];

        start();
        cr_assert_eq(ipcb_connect(fx.sock, &c), 0);
        cr_assert_eq(ipcb_connect(fx.sock, &q), 0);
        make_sems(c, names, 2, s);
        /* Pollers of both, so that c's releases fetch both eventfds. */
        for (unsigned i = 0; i < 2; i++) {
                cr_assert_eq(ipcb_sem_open(q, names[i], 0, &qs[i]), 0);
                cr_assert_geq(ipcb_sem_get_fd(qs[i]), 0);
                cr_assert_eq(ipcb_sem_release(s[i], 1), 0);
                cr_assert_eq(ipcb_sem_poll_acquire(qs[i]), 0);
                cr_assert_eq(ipcb_sem_close(qs[i]), 0);
        }
        ipcb_disconnect(q);
        cr_assert_eq(ipcb_sync(c), 0);
        pump_until_stored("ipcb-o-", 2);

        restart();
        cr_assert_eq(ipcb_connect(fx.sock, &q), 0);
        for (unsigned i = 0; i < 2; i++) {
                cr_assert_eq(ipcb_sem_open(q, names[i], 0, &qs[i]), 0);
                fd[i] = ipcb_sem_get_fd(qs[i]);
                cr_assert_geq(fd[i], 0);
                cr_assert_eq(ipcb_sem_poll_acquire(qs[i]), -EAGAIN);
        }
        /* c's first act since the restart. */
        cr_assert_eq(ipcb_sem_release(s[0], 1), 0);
        cr_assert(poll_readable(fd[0], 2000), "a release of hX through a handle from before the restart "
                                              "did not wake hX's poller of the new broker");
        cr_assert_eq(ipcb_sem_poll_acquire(qs[0]), 0);
        cr_assert(!poll_readable(fd[1], 0), "hY's poller woken by a release of hX");
        cr_assert_eq(ipcb_sem_release(s[1], 1), 0);
        cr_assert(poll_readable(fd[1], 2000), "a release of hY did not wake hY's poller");
        cr_assert_eq(ipcb_sem_poll_acquire(qs[1]), 0);

        for (unsigned i = 0; i < 2; i++) {
                cr_assert_eq(ipcb_sem_close(qs[i]), 0);
                cr_assert_eq(ipcb_sem_close(s[i]), 0);
        }
        ipcb_disconnect(q);
        finish(c, IPCB_KIND_SEM, names, 2);
}

/* A client that dies holding more handles than one turn releases has them
 * released over the next turns (daemon/peer.c, release_run).  A stop in
 * between (a restart) must lose none of its undo tokens: the broker
 * finishes the dead client's release before the store freezes.  Before,
 * the release went on after the freeze, and the frozen store refused to
 * give back what it had already taken off the pages (the held counts of
 * the slots it had netted): those tokens were lost for good. */
enum { DEAD_UNDO = 2000 }; /* more than the daemon keeps mapped (1024): a slow settlement */

/* The dying client of the test below: an undo handle holding a token on
 * each semaphore names[0 .. DEAD_UNDO). */
static int hold_undo_tokens(ipcb_client *c, void *names) {
        ipcb_sem *u;

        for (unsigned i = 0; i < DEAD_UNDO; i++)
                if (ipcb_sem_open(c, ((const char **)names)[i], IPCB_SEM_UNDO, &u) < 0 ||
                    ipcb_sem_acquire(u) < 0)
                        return 2;
        return 0;
}

STORE_HANDLES_TEST(stop_during_a_dead_clients_release) {
        enum { N = DEAD_UNDO };
        static char names_buf[N][8];
        static const char *names[N];
        static ipcb_sem *s[N];
        int status;
        ipcb_client *c;

        for (unsigned i = 0; i < N; i++) {
                snprintf(names_buf[i], sizeof(names_buf[i]), "d%04u", i);
                names[i] = names_buf[i];
        }
        /* the fake manager here holds each semaphore's page and owe entry,
         * and the client a handle each: more than a user's soft limit */
        raise_nofile(4 * N + 512);
        start();
        cr_assert_eq(ipcb_connect(fx.sock, &c), 0);
        make_sems(c, names, N, s);
        for (unsigned i = 0; i < N; i++)
                cr_assert_eq(ipcb_sem_release(s[i], 1), 0);
        pump_until_stored("ipcb-o-", N);
        pid_t pid = fork_ready_client(fx.sock, hold_undo_tokens, names);
        for (unsigned i = 0; i < N; i++)
                cr_assert_eq(ipcb_sem_value(s[i]), 0);
        cr_assert_eq(kill(pid, SIGKILL), 0);
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        /* The first semaphore's token back: every handle netted, the sums
         * being settled (about 12 µs each).  Stop now, in the middle. */
        long long end = prober_now_us() + 10000000;
        while (ipcb_sem_value(s[0]) == 0 && prober_now_us() < end)
                ;
        cr_assert_eq(ipcb_sem_value(s[0]), 1, "the dead client's release did not begin");
        restart();
        for (unsigned i = 0; i < N; i++)
                cr_assert_eq(ipcb_sem_value(s[i]), 1, "%s: the dead client's token is not back after the "
                                                      "restart", names[i]);
        for (unsigned i = 0; i < N; i++)
                cr_assert_eq(ipcb_sem_close(s[i]), 0);
        finish(c, IPCB_KIND_SEM, names, N);
}
