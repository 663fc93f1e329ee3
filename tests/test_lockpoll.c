/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_lockpoll.c: waiting for a segment's lock from an event loop
 * (ipcb_shm_lock_get_fd, ipcb_shm_poll_lock) against a real ipcbrokerd:
 * the descriptor is quiet while the lock is held and readable after an
 * unlock from another process or the holder's death (kill -9, then
 * IPCB_OWNER_DIED); no wake-up is lost, and the lock stays exclusive, with
 * many pollers, blocking lockers and holders killed while pollers are
 * killed too; refusals for read-only handles, other kinds and raw requests
 * naming handles that have no lock token; fds (the fixture checks both
 * counts). */
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

#define LP_TEST(name, ...) \
        FIXTURE_TEST(lockpoll, name, &d, release, .init = setup, .fini = teardown, .timeout = 120, \
                     ##__VA_ARGS__)

static bool readable(int fd, int ms) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

LP_TEST(basic) {
        ipcb_shm *a, *b;
        ipcb_client *c2;
        int fd;

        cr_assert_eq(ipcb_shm_create(c, "pl", 4096, NULL, &a), 0);
        cr_assert_eq(ipcb_connect(d.sock, &c2), 0);
        cr_assert_eq(ipcb_shm_open(c2, "pl", IPCB_READ_WRITE, &b), 0);
        cr_assert_eq(ipcb_shm_lock(b), 0);
        fd = ipcb_shm_lock_get_fd(a);
        cr_assert_geq(fd, 3);
        cr_assert_eq(ipcb_shm_lock_get_fd(a), fd, "one poller per handle");
        cr_assert_eq(ipcb_shm_poll_lock(a), -EAGAIN);
        cr_assert_not(readable(fd, 50), "held, no unlock: quiet");
        /* The holder's first unlock with a poller there fetches the notify
         * fd from the broker. */
        cr_assert_eq(ipcb_shm_unlock(b), 0);
        cr_assert(readable(fd, 2000), "an unlock must make the poller readable");
        cr_assert_eq(ipcb_shm_poll_lock(a), 0);
        cr_assert_not(readable(fd, 50), "reset by poll_lock");
        cr_assert_eq(ipcb_shm_poll_lock(a), -EDEADLK, "held by this handle");
        cr_assert_eq(ipcb_shm_try_lock(b, 0), -EAGAIN);
        /* The poller's own unlock wakes it too (it is a poller). */
        cr_assert_eq(ipcb_shm_unlock(a), 0);
        cr_assert(readable(fd, 2000));
        cr_assert_eq(ipcb_shm_lock(b), 0);
        cr_assert_eq(ipcb_shm_poll_lock(a), -EAGAIN, "taken again before the poller looked");
        cr_assert_not(readable(fd, 50));
        cr_assert_eq(ipcb_shm_unlock(b), 0);
        cr_assert(readable(fd, 2000));
        cr_assert_eq(ipcb_shm_poll_lock(a), 0);
        cr_assert_eq(ipcb_shm_unlock(a), 0);
        cr_assert_eq(ipcb_shm_close(b), 0);
        ipcb_disconnect(c2);
        cr_assert_eq(ipcb_shm_close(a), 0);
        cr_assert_eq(ipcb_shm_lock_get_fd(NULL), -EINVAL);
        cr_assert_eq(ipcb_shm_poll_lock(NULL), -EINVAL);
}

/* The holder is killed: the broker marks the owner dead and wakes the
 * poller, which is told IPCB_OWNER_DIED. */
LP_TEST(holder_killed) {
        ipcb_shm *a;
        int ready[2], st, fd;
        char x;

        cr_assert_eq(ipcb_shm_create(c, "pk", 4096, NULL, &a), 0);
        fd = ipcb_shm_lock_get_fd(a);
        cr_assert_geq(fd, 0);
        cr_assert_eq(pipe(ready), 0);
        pid_t pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_shm *h;
                if (ipcb_connect(d.sock, &cc) < 0 || ipcb_shm_open(cc, "pk", IPCB_READ_WRITE, &h) < 0 ||
                    ipcb_shm_lock(h) != 0)
                        _exit(1);
                if (write(ready[1], "x", 1) != 1)
                        _exit(2);
                pause();
                _exit(3);
        }
        cr_assert_eq(read(ready[0], &x, 1), 1, "the child did not take the lock");
        close(ready[0]);
        close(ready[1]);
        cr_assert_eq(ipcb_shm_poll_lock(a), -EAGAIN);
        cr_assert_not(readable(fd, 50));
        kill(pid, SIGKILL);
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFSIGNALED(st), "child status %d", st);
        cr_assert(readable(fd, 5000), "the holder's death must wake the poller");
        cr_assert_eq(ipcb_shm_poll_lock(a), IPCB_OWNER_DIED);
        cr_assert_eq(ipcb_shm_unlock(a), 0);
        cr_assert_eq(ipcb_shm_close(a), 0);
}

LP_TEST(refusals) {
        ipcb_shm *rw, *ro;
        ipcb_sem *s;
        ipcb_client *c2;

        cr_assert_eq(ipcb_shm_create(c, "pr", 4096, NULL, &rw), 0);
        cr_assert_eq(ipcb_connect(d.sock, &c2), 0);
        cr_assert_eq(ipcb_shm_open(c2, "pr", IPCB_READ_ONLY, &ro), 0);
        cr_assert_eq(ipcb_shm_lock_get_fd(ro), -EBADF, "a read-only handle cannot lock");
        cr_assert_eq(ipcb_shm_poll_lock(ro), -EBADF);
        cr_assert_eq(ipcb_shm_close(ro), 0);
        ipcb_disconnect(c2);

        /* Raw LOCK_POLL / LOCK_NOTIFY naming handles without a lock token:
         * a semaphore's, a segment's that never locked, another
         * connection's, garbage.  Refused, no fd sent, nothing counted. */
        cr_assert_eq(ipcb_sem_create(c, "ps", 0, NULL, &s), 0);
        int fd = ipcbd_hello_conn(&d);
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg m, r;
        unsigned nfds;
        int fds[4];
        ssize_t len;
        static const uint64_t ids[] = { 0, 1, 2, (1ull << 32) | 1, UINT64_MAX };
        static const uint16_t ops[] = { IPCB_OP_LOCK_POLL, IPCB_OP_LOCK_NOTIFY };
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
        /* The page counts no poller: an unlock makes no round trip. */
        cr_assert_eq(ipcb_shm_lock(rw), 0);
        cr_assert_eq(ipcb_shm_unlock(rw), 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
        cr_assert_eq(ipcb_shm_close(rw), 0);
}

/* Pollers count against the same per-connection bound as semaphores'. */
LP_TEST(bound_shared_with_semaphores) {
        ipcb_shm *h[33];
        ipcb_sem *s[32];

        cr_assert_eq(ipcb_shm_create(c, "pb", 4096, NULL, &h[0]), 0);
        cr_assert_eq(ipcb_sem_create(c, "pbs", 0, NULL, &s[0]), 0);
        for (int i = 1; i < 33; i++)
                cr_assert_eq(ipcb_shm_open(c, "pb", IPCB_READ_WRITE, &h[i]), 0);
        for (int i = 1; i < 32; i++)
                cr_assert_eq(ipcb_sem_open(c, "pbs", 0, &s[i]), 0);
        for (int i = 0; i < 32; i++) {
                cr_assert_geq(ipcb_sem_get_fd(s[i]), 0, "semaphore poller %d", i);
                cr_assert_geq(ipcb_shm_lock_get_fd(h[i]), 0, "lock poller %d", i);
        }
        cr_assert_eq(ipcb_shm_lock_get_fd(h[32]), -EDQUOT);
        cr_assert_eq(ipcb_shm_close(h[0]), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_geq(ipcb_shm_lock_get_fd(h[32]), 0, "closing a poller frees its place");
        for (int i = 1; i < 33; i++)
                cr_assert_eq(ipcb_shm_close(h[i]), 0);
        for (int i = 0; i < 32; i++)
                cr_assert_eq(ipcb_sem_close(s[i]), 0);
}

/* ---- torture: pollers and blocking lockers share the lock, holders and
 * idle pollers are killed ---- */

enum { POLLERS = 5, LOCKERS = 2, IDLE = 4, DIERS = 4, ROUNDS = 400 };

typedef struct shared {
        atomic_int ready;   /* pollers registered */
        atomic_int stalls;  /* a poller waited 10 s with the lock free */
        atomic_int overlap; /* two holders at once */
        atomic_int died;    /* IPCB_OWNER_DIED seen */
        atomic_int done;
        atomic_int stop;    /* every dier is dead: finish the rounds */
} shared;

/* Inside the lock: a check that nobody else is inside, with a yield in
 * between for others to trip over. */
static void critical(shared *sh, volatile uint32_t *inside) {
        if (*inside != 0)
                atomic_fetch_add(&sh->overlap, 1);
        *inside = 1;
        sched_yield();
        *inside = 0;
}

static int poller(shared *sh) {
        ipcb_client *cc;
        ipcb_shm *s;
        int fd, rounds = 0;

        if (ipcb_connect(d.sock, &cc) < 0 || ipcb_shm_open(cc, "tort", IPCB_READ_WRITE, &s) < 0)
                return 1;
        if ((fd = ipcb_shm_lock_get_fd(s)) < 0)
                return 2;
        atomic_fetch_add(&sh->ready, 1);
        while (rounds < ROUNDS || !atomic_load(&sh->stop)) {
                int r = ipcb_shm_poll_lock(s);
                if (r == 0 || r == IPCB_OWNER_DIED) {
                        if (r == IPCB_OWNER_DIED)
                                atomic_fetch_add(&sh->died, 1);
                        critical(sh, ipcb_shm_data(s));
                        if (ipcb_shm_unlock(s) < 0)
                                return 3;
                        rounds++;
                        continue;
                }
                if (r != -EAGAIN)
                        return 4;
                struct pollfd p = { .fd = fd, .events = POLLIN };
                if (poll(&p, 1, 10000) == 0) {
                        /* 10 s without a wake-up: only a lost one explains
                         * a free lock. */
                        if (ipcb_shm_try_lock(s, 0) >= 0) {
                                atomic_fetch_add(&sh->stalls, 1);
                                ipcb_shm_unlock(s);
                        }
                }
        }
        atomic_fetch_add(&sh->done, 1);
        return 0;
}

static int locker(shared *sh) {
        ipcb_client *cc;
        ipcb_shm *s;

        if (ipcb_connect(d.sock, &cc) < 0 || ipcb_shm_open(cc, "tort", IPCB_READ_WRITE, &s) < 0)
                return 1;
        for (int i = 0; i < ROUNDS || !atomic_load(&sh->stop); i++) {
                int r = ipcb_shm_lock(s);
                if (r < 0)
                        return 2;
                if (r == IPCB_OWNER_DIED)
                        atomic_fetch_add(&sh->died, 1);
                critical(sh, ipcb_shm_data(s));
                if (ipcb_shm_unlock(s) < 0)
                        return 3;
                if (i % 13 == 0)
                        usleep(100);
        }
        atomic_fetch_add(&sh->done, 1);
        return 0;
}

/* Takes the lock and waits to be killed holding it. */
static int dier(int ready) {
        ipcb_client *cc;
        ipcb_shm *s;

        if (ipcb_connect(d.sock, &cc) < 0 || ipcb_shm_open(cc, "tort", IPCB_READ_WRITE, &s) < 0)
                return 1;
        int r = ipcb_shm_lock(s);
        if (r < 0 || write(ready, "x", 1) != 1)
                return 2;
        pause();
        return 0;
}

static int idle_poller(void) {
        ipcb_client *cc;
        ipcb_shm *s;

        if (ipcb_connect(d.sock, &cc) < 0 || ipcb_shm_open(cc, "tort", IPCB_READ_WRITE, &s) < 0 ||
            ipcb_shm_lock_get_fd(s) < 0)
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

LP_TEST(torture) {
        shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                          -1, 0);
        pid_t pol[POLLERS], lck[LOCKERS], idle[IDLE];
        ipcb_shm *s;
        int ready[2];
        char x;

        cr_assert_neq(sh, MAP_FAILED);
        memset(sh, 0, sizeof(*sh));
        cr_assert_eq(pipe(ready), 0);
        cr_assert_eq(ipcb_shm_create(c, "tort", 4096, NULL, &s), 0);
        for (int i = 0; i < IDLE; i++)
                if ((idle[i] = test_fork()) == 0)
                        _exit(idle_poller());
        for (int i = 0; i < POLLERS; i++)
                if ((pol[i] = test_fork()) == 0)
                        _exit(poller(sh));
        for (int i = 0; i < 500 && atomic_load(&sh->ready) < POLLERS; i++)
                usleep(10000);
        cr_assert_eq(atomic_load(&sh->ready), POLLERS);
        for (int i = 0; i < LOCKERS; i++)
                if ((lck[i] = test_fork()) == 0)
                        _exit(locker(sh));
        /* While the lock passes around: idle pollers die, and holders die
         * holding it. */
        for (int i = 0; i < DIERS; i++) {
                usleep(20000);
                pid_t p = test_fork();
                if (p == 0)
                        _exit(dier(ready[1]));
                cr_assert_eq(read(ready[0], &x, 1), 1, "dier %d did not take the lock", i);
                kill(p, SIGKILL);
                waitpid(p, NULL, 0);
                if (i < IDLE) {
                        kill(idle[i], SIGKILL);
                        waitpid(idle[i], NULL, 0);
                }
        }
        close(ready[0]);
        close(ready[1]);
        atomic_store(&sh->stop, 1);
        wait_all(lck, LOCKERS, 90, "locker");
        wait_all(pol, POLLERS, 90, "poller");
        cr_assert_eq(atomic_load(&sh->done), POLLERS + LOCKERS);
        cr_assert_eq(atomic_load(&sh->overlap), 0, "two holders at once");
        cr_assert_eq(atomic_load(&sh->stalls), 0, "pollers slept with the lock free");
        cr_assert_eq(atomic_load(&sh->died), DIERS, "IPCB_OWNER_DIED told %d times for %d deaths",
                     atomic_load(&sh->died), DIERS);
        cr_assert_eq(ipcb_shm_try_lock(s, 0), 0, "the lock was left taken");
        cr_assert_eq(ipcb_shm_unlock(s), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
        munmap(sh, sizeof(*sh));
}
