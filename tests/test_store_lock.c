/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_store_lock.c: segment locks across a broker restart (the fake
 * service manager of tests/fakemgr.h restarts it on the same socket).  A
 * handle whose client has said nothing since the restart takes the lock:
 * the page's epoch, bumped by the restore, makes the library reconnect and
 * reclaim first, so that the new broker marks the owner dead when the
 * holder is killed, long before the restore grace ends.  An epoch written
 * by someone else costs a round trip, never a failure.
 *
 * The harness fixture (harness.h) adopts the first daemon: the last one is
 * back at its idle fd count before its final stop, and the test process
 * holds no more fds at the end than at the start. */
#include "harness.h"
#include "storefix.h"

#include "ipcbroker.h"
#include "sempage.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static storefix fx;

static void setup(void) {
        storefix_setup(&fx, "/tmp/ipcbsl.XXXXXX", false);
}

static void start(void) {
        /* A grace much longer than the test's waits: a lock recovered
         * within them was recovered by the death, not by the grace's end. */
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

TestSuite(store_lock, .init = setup, .fini = teardown, .timeout = 60);

#define STORE_LOCK_TEST(name) FIXTURE_TEST(store_lock, name, &fx.d, release)

static bool lock_page_stored(const fakemgr *fm, void *arg) {
        (void)arg;
        return fakemgr_count(fm, "ipcb-l-") == 1;
}

static bool nothing_stored(const fakemgr *fm, void *arg) {
        (void)arg;
        return fakemgr_count(fm, "ipcb-o-") == 0;
}

static long elapsed_ms(const struct timespec *t0) {
        struct timespec t1;

        clock_gettime(CLOCK_MONOTONIC, &t1);
        return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

/* The holder: opens the segment and sets its lock up before the restart,
 * then, told to, takes the lock without any other call, and waits to be
 * killed.  Reports through the pipe: '1' ready, 'L' holds the lock, 'E'
 * failed. */
static void holder(int up, int down) {
        ipcb_client *c;
        ipcb_shm *s;
        char b;

        if (ipcb_connect(fx.sock, &c) < 0 || ipcb_shm_open(c, "locked", IPCB_READ_WRITE, &s) < 0 ||
            ipcb_shm_lock(s) != 0 || ipcb_shm_unlock(s) != 0) {
                (void)!write(up, "E", 1);
                _exit(1);
        }
        (void)!write(up, "1", 1);
        if (read(down, &b, 1) != 1)
                _exit(1);
        if (ipcb_shm_lock(s) != 0) {
                (void)!write(up, "E", 1);
                _exit(1);
        }
        (void)!write(up, "L", 1);
        for (;;)
                pause();
}

/* The holder sets its lock up, the broker restarts (with restart_args,
 * then waits wait_ms), the holder locks and is killed: the lock must come
 * back as owner-died at once. */
static void holder_killed_after_restart(const char *const *restart_args, unsigned wait_ms) {
        struct timespec t0;
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_client *c;
        ipcb_shm *p;
        int up[2], down[2], status, r;
        pid_t child;
        long ms;
        char b;

        start();
        cr_assert_eq(ipcb_connect(fx.sock, &c), 0);
        o.flags = IPCB_SHM_PERSISTENT;
        cr_assert_eq(ipcb_shm_create(c, "locked", 4096, &o, &p), 0);
        cr_assert_eq(ipcb_shm_lock(p), 0);
        cr_assert_eq(ipcb_shm_unlock(p), 0);
        cr_assert_eq(pipe(up), 0);
        cr_assert_eq(pipe(down), 0);
        child = test_fork();
        if (child == 0)
                holder(up[1], down[0]);
        cr_assert_eq(read(up[0], &b, 1), 1);
        cr_assert_eq(b, '1', "the holder could not set up");
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert(fakemgr_pump_until(&fx.m, lock_page_stored, NULL, 5000), "lock page not stored");

        stop();
        if (restart_args)
                storefix_start(&fx, restart_args);
        else
                start();
        usleep(wait_ms * 1000);
        cr_assert_eq(write(down[1], "g", 1), 1);
        cr_assert_eq(read(up[0], &b, 1), 1);
        cr_assert_eq(b, 'L', "the holder could not lock after the restart");
        cr_assert_eq(kill(child, SIGKILL), 0);
        cr_assert_eq(waitpid(child, &status, 0), child);

        clock_gettime(CLOCK_MONOTONIC, &t0);
        r = ipcb_shm_try_lock(p, 2000);
        ms = elapsed_ms(&t0);
        cr_assert_eq(r, IPCB_OWNER_DIED, "try_lock after the holder was killed: %d (%s) after %ld ms", r,
                     r < 0 ? ipcb_strerror(r) : "ok", ms);
        cr_assert_eq(ipcb_shm_unlock(p), 0);
        /* Normal again. */
        cr_assert_eq(ipcb_shm_try_lock(p, 0), 0);
        cr_assert_eq(ipcb_shm_unlock(p), 0);

        cr_assert_eq(ipcb_shm_close(p), 0);
        cr_assert_eq(ipcb_unlink(c, "locked"), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        ipcb_disconnect(c);
        for (int i = 0; i < 2; i++) {
                close(up[i]);
                close(down[i]);
        }
        fakemgr_pump_until(&fx.m, nothing_stored, NULL, 5000);
        fixture_check_idle(&fx.d);
        stop();
}

/* The lock of a process killed after the restart, whose first act since
 * the restart was taking that lock, is released as owner-died at once. */
STORE_LOCK_TEST(silent_holder_killed_after_restart) {
        holder_killed_after_restart(NULL, 0);
}

/* The same holder, but its first act comes after the grace period: its
 * token cannot be reclaimed any more, and its handle is re-opened without
 * it.  The library went on locking with that token, which no handle of
 * the new broker held, so the holder's death left the lock held for good
 * (the try_lock timed out); it asks for a new token first now. */
STORE_LOCK_TEST(holder_back_after_the_grace_period) {
        static const char *const short_grace[] = { "--restore-grace", "1", "-v", NULL };

        holder_killed_after_restart(short_grace, 1500); /* the grace period ends */
}

static bool poll_readable(int fd, int ms) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/* A handle that unlocked with pollers before a restart holds the old
 * broker's notify eventfd: after the restart, its unlocks must reach the
 * pollers of the new broker (it fetches the new eventfd once reconnected). */
STORE_LOCK_TEST(unlock_wakes_new_pollers_after_restart) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_client *a, *b;
        ipcb_shm *pa, *pb;
        int fd;

        start();
        cr_assert_eq(ipcb_connect(fx.sock, &a), 0);
        cr_assert_eq(ipcb_connect(fx.sock, &b), 0);
        o.flags = IPCB_SHM_PERSISTENT;
        cr_assert_eq(ipcb_shm_create(a, "np", 4096, &o, &pa), 0);
        cr_assert_eq(ipcb_shm_open(b, "np", IPCB_READ_WRITE, &pb), 0);
        cr_assert_eq(ipcb_shm_lock(pa), 0);
        fd = ipcb_shm_lock_get_fd(pb);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ipcb_shm_unlock(pa), 0); /* fetches the notify eventfd */
        cr_assert(poll_readable(fd, 2000), "no wake-up before the restart");
        cr_assert_eq(ipcb_shm_close(pb), 0);
        ipcb_disconnect(b);
        cr_assert(fakemgr_pump_until(&fx.m, lock_page_stored, NULL, 5000), "lock page not stored");

        stop();
        start();
        /* a's next lock reconnects first (the restore bumped the epoch) */
        cr_assert_eq(ipcb_shm_lock(pa), 0);
        cr_assert_eq(ipcb_connect(fx.sock, &b), 0);
        cr_assert_eq(ipcb_shm_open(b, "np", IPCB_READ_WRITE, &pb), 0);
        fd = ipcb_shm_lock_get_fd(pb);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ipcb_shm_poll_lock(pb), -EAGAIN);
        cr_assert_eq(ipcb_shm_unlock(pa), 0);
        cr_assert(poll_readable(fd, 2000), "an unlock through a handle from before the restart "
                                           "did not wake the new broker's poller");
        cr_assert_eq(ipcb_shm_poll_lock(pb), 0);
        cr_assert_eq(ipcb_shm_unlock(pb), 0);

        cr_assert_eq(ipcb_shm_close(pb), 0);
        ipcb_disconnect(b);
        cr_assert_eq(ipcb_shm_close(pa), 0);
        cr_assert_eq(ipcb_unlink(a, "np"), 0);
        cr_assert_eq(ipcb_sync(a), 0);
        ipcb_disconnect(a);
        fakemgr_pump_until(&fx.m, nothing_stored, NULL, 5000);
        fixture_check_idle(&fx.d);
        stop();
}

/* Anyone who may lock may write the epoch: a change without a restart
 * costs the next lock a round trip, and the handle keeps its token (its
 * death is still noticed). */
STORE_LOCK_TEST(scribbled_epoch_costs_a_round_trip) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_lock_page *pg;
        ipcb_client *c;
        ipcb_shm *p;
        int up[2], down[2], status, r;
        pid_t child;
        char b;

        start();
        cr_assert_eq(ipcb_connect(fx.sock, &c), 0);
        o.flags = IPCB_SHM_PERSISTENT;
        cr_assert_eq(ipcb_shm_create(c, "locked", 4096, &o, &p), 0);
        cr_assert_eq(ipcb_shm_lock(p), 0);
        cr_assert_eq(ipcb_shm_unlock(p), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert(fakemgr_pump_until(&fx.m, lock_page_stored, NULL, 5000), "lock page not stored");
        /* The manager's copy of the page is as good as a holder's mapping. */
        pg = mmap(NULL, IPCB_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                  fakemgr_find(&fx.m, "ipcb-l-1"), 0);
        cr_assert_neq(pg, MAP_FAILED);

        atomic_fetch_add(&pg->epoch, 7);
        cr_assert_eq(ipcb_shm_lock(p), 0);
        cr_assert_eq(ipcb_shm_unlock(p), 0);
        atomic_fetch_add(&pg->epoch, 1);
        cr_assert_eq(ipcb_shm_try_lock(p, 0), 0);
        cr_assert_eq(ipcb_shm_unlock(p), 0);

        /* A holder whose epoch was scribbled on before it locked is still
         * known to the broker: its death releases the lock. */
        cr_assert_eq(pipe(up), 0);
        cr_assert_eq(pipe(down), 0);
        child = test_fork();
        if (child == 0)
                holder(up[1], down[0]);
        cr_assert_eq(read(up[0], &b, 1), 1);
        cr_assert_eq(b, '1', "the holder could not set up");
        atomic_fetch_add(&pg->epoch, 1);
        cr_assert_eq(write(down[1], "g", 1), 1);
        cr_assert_eq(read(up[0], &b, 1), 1);
        cr_assert_eq(b, 'L', "the holder could not lock after the scribble");
        cr_assert_eq(kill(child, SIGKILL), 0);
        cr_assert_eq(waitpid(child, &status, 0), child);
        r = ipcb_shm_try_lock(p, 2000);
        cr_assert_eq(r, IPCB_OWNER_DIED, "try_lock after the holder was killed: %d", r);
        cr_assert_eq(ipcb_shm_unlock(p), 0);

        munmap(pg, IPCB_PAGE_SIZE);
        cr_assert_eq(ipcb_shm_close(p), 0);
        cr_assert_eq(ipcb_unlink(c, "locked"), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        ipcb_disconnect(c);
        for (int i = 0; i < 2; i++) {
                close(up[i]);
                close(down[i]);
        }
        fakemgr_pump_until(&fx.m, nothing_stored, NULL, 5000);
        fixture_check_idle(&fx.d);
        stop();
}
