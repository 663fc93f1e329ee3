/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_sem_owe.c: ipcb_sem_release_undo, a release through an undo handle
 * that owes back what it did not hold (System V's semop(+n, SEM_UNDO)),
 * against a real ipcbrokerd: within and beyond the tokens held, what is
 * taken back on close, on kill -9 and on hang-up, the order of a process's
 * handles (netted per semaphore, clamped once), the count never below 0, all
 * or nothing at the maximum, refusals (plain handles, forked children, raw
 * requests from a hostile peer), and that waiters are woken.  Every test
 * runs in the harness fixture: both fd counts back, clean daemon exit. */
#include "harness.h"

#include "ipcbroker.h"
#include "proto.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
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

#define CHECKED_TEST(name) FIXTURE_TEST(owe, name, &d, release)

TestSuite(owe, .init = setup, .fini = teardown, .timeout = 30);

static ipcb_sem *create_ok(const char *name, unsigned initial, unsigned max) {
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
        ipcb_sem *s = NULL;
        int r;

        o.max = max;
        r = ipcb_sem_create(c, name, initial, &o, &s);
        cr_assert_eq(r, 0, "create %s: %s", name, ipcb_strerror(r));
        return s;
}

static ipcb_sem *open_ok(ipcb_client *cl, const char *name, int flags) {
        ipcb_sem *s = NULL;
        int r = ipcb_sem_open(cl, name, flags, &s);

        cr_assert_eq(r, 0, "open %s: %s", name, ipcb_strerror(r));
        return s;
}

typedef struct want_value {
        ipcb_sem *s;
        int want, last;
} want_value;

static bool value_is(void *arg) {
        want_value *w = arg;

        w->last = ipcb_sem_value(w->s);
        return w->last == w->want;
}

/* The broker settles a dead process on its own time: wait for the count. */
static void wait_value(ipcb_sem *s, int want) {
        want_value w = { .s = s, .want = want };

        cr_assert(wait_until(value_is, &w, 5000), "value %d, expected %d", w.last, want);
}

static void kill_and_reap(pid_t pid) {
        int st;

        cr_assert_eq(kill(pid, SIGKILL), 0);
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child not killed (0x%x)", st);
}

CHECKED_TEST(within_held_is_a_release) {
        ipcb_sem *s = create_ok("within", 3, 10), *u = open_ok(c, "within", IPCB_SEM_UNDO);

        cr_assert_eq(ipcb_sem_acquire_n(u, 2, 0), 0);
        cr_assert_eq(ipcb_sem_value(s), 1);
        cr_assert_eq(ipcb_sem_release_undo(u, 2), 0);
        cr_assert_eq(ipcb_sem_value(s), 3);
        cr_assert_eq(ipcb_sem_held(u), 0);
        cr_assert_eq(ipcb_sem_owed(u), 0, "a release within the tokens held owes nothing");
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_sem_value(s), 3);
        cr_assert_eq(ipcb_sem_close(s), 0);
}

CHECKED_TEST(beyond_held_is_owed_back_at_close) {
        ipcb_sem *s = create_ok("beyond", 0, 10), *u = open_ok(c, "beyond", IPCB_SEM_UNDO);

        cr_assert_eq(ipcb_sem_release_undo(u, 3), 0);
        cr_assert_eq(ipcb_sem_value(s), 3);
        cr_assert_eq(ipcb_sem_owed(u), 3);
        /* Acquiring through it holds tokens; owing stays (semadj -3 + 1). */
        cr_assert_eq(ipcb_sem_acquire(u), 0);
        cr_assert_eq(ipcb_sem_held(u), 1);
        cr_assert_eq(ipcb_sem_value(s), 2);
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        /* 2 + 1 given back - 3 taken back */
        cr_assert_eq(ipcb_sem_value(s), 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
}

CHECKED_TEST(never_below_zero) {
        ipcb_sem *s = create_ok("floor", 0, 10), *u = open_ok(c, "floor", IPCB_SEM_UNDO);

        cr_assert_eq(ipcb_sem_release_undo(u, 5), 0);
        cr_assert_eq(ipcb_sem_acquire_n(s, 4, 0), 0); /* others took 4 of them */
        cr_assert_eq(ipcb_sem_value(s), 1);
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_sem_value(s), 0, "the count went below what was there, or stayed");
        cr_assert_eq(ipcb_sem_release(s, 2), 0); /* and works on */
        cr_assert_eq(ipcb_sem_value(s), 2);
        cr_assert_eq(ipcb_sem_close(s), 0);
}

static int owe_two(ipcb_client *cc, void *arg) {
        ipcb_sem *u;

        (void)arg;
        if (ipcb_sem_open(cc, "killed", IPCB_SEM_UNDO, &u) < 0 || ipcb_sem_release_undo(u, 2) < 0 ||
            ipcb_sem_owed(u) != 2)
                return 20;
        return 0;
}

CHECKED_TEST(taken_back_when_killed) {
        ipcb_sem *s = create_ok("killed", 1, 10);
        pid_t pid = fork_ready_client(d.sock, owe_two, NULL);

        cr_assert_eq(ipcb_sem_value(s), 3);
        kill_and_reap(pid);
        wait_value(s, 1);
        cr_assert_eq(ipcb_sem_close(s), 0);
}

/* One process, two undo handles: A holds 1, B owes 1 (semadj 0).  At the
 * process's death with the count at 0, the kernel leaves 0.  Taking B's
 * debt first would clamp at 0 and then give A's token back: 1. */
static int hold_one_owe_one(ipcb_client *cc, void *arg) {
        ipcb_sem *a, *b;

        (void)arg;
        /* b first: settled handle by handle, its debt would come first */
        if (ipcb_sem_open(cc, "order", IPCB_SEM_UNDO, &b) < 0 ||
            ipcb_sem_open(cc, "order", IPCB_SEM_UNDO, &a) < 0 || ipcb_sem_acquire(a) < 0 ||
            ipcb_sem_release_undo(b, 1) < 0 || ipcb_sem_held(a) != 1 || ipcb_sem_owed(b) != 1)
                return 20;
        return 0;
}

CHECKED_TEST(a_process_gives_back_before_it_takes) {
        ipcb_sem *s = create_ok("order", 1, 10);
        pid_t pid = fork_ready_client(d.sock, hold_one_owe_one, NULL);

        cr_assert_eq(ipcb_sem_value(s), 1);
        cr_assert_eq(ipcb_sem_try_acquire(s, 0), 0); /* someone else takes it: 0 */
        kill_and_reap(pid);
        /* give back 1 (0 -> 1), then take 1 (1 -> 0) */
        wait_value(s, 0);
        usleep(100 * 1000);
        cr_assert_eq(ipcb_sem_value(s), 0, "the handles were settled in the wrong order");
        cr_assert_eq(ipcb_sem_close(s), 0);
}

CHECKED_TEST(all_or_nothing_at_the_maximum) {
        ipcb_sem *s = create_ok("max", 4, 5), *u = open_ok(c, "max", IPCB_SEM_UNDO);

        cr_assert_eq(ipcb_sem_release_undo(u, 2), -EOVERFLOW);
        cr_assert_eq(ipcb_sem_value(s), 4);
        cr_assert_eq(ipcb_sem_owed(u), 0, "a refused release was recorded as owed");
        cr_assert_eq(ipcb_sem_release_undo(u, 6), -EOVERFLOW);
        cr_assert_eq(ipcb_sem_release_undo(u, 1), 0);
        cr_assert_eq(ipcb_sem_value(s), 5);
        cr_assert_eq(ipcb_sem_release_undo(u, 0), 0);
        cr_assert_eq(ipcb_sem_owed(u), 1);
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_sem_value(s), 4);
        cr_assert_eq(ipcb_sem_close(s), 0);
}

CHECKED_TEST(refusals) {
        ipcb_sem *s = create_ok("refuse", 0, 10), *u = open_ok(c, "refuse", IPCB_SEM_UNDO);
        pid_t pid;
        int st;

        cr_assert_eq(ipcb_sem_release_undo(NULL, 1), -EINVAL);
        cr_assert_eq(ipcb_sem_release_undo(s, 1), -EINVAL, "a plain handle cannot owe");
        cr_assert_eq(ipcb_sem_owed(s), 0);
        cr_assert_eq(ipcb_sem_owed(NULL), 0);
        cr_assert_eq(ipcb_sem_value(s), 0);
        /* A child must not owe in its parent's name. */
        pid = test_fork();
        if (pid == 0)
                _exit(ipcb_sem_release_undo(u, 1) == -ECHILD ? 0 : 1);
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a forked child released through its parent's undo handle");
        cr_assert_eq(ipcb_sem_value(s), 0);
        cr_assert_eq(ipcb_sem_owed(u), 0);
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
}

/* A sleeper is woken by a release the broker made. */
static void *sleeper(void *arg) {
        ipcb_sem *s = arg;

        return (void *)(intptr_t)ipcb_sem_try_acquire(s, 5000);
}

CHECKED_TEST(wakes_sleepers) {
        ipcb_sem *s = create_ok("wake", 0, 10), *u = open_ok(c, "wake", IPCB_SEM_UNDO);
        pthread_t t;
        void *ret;

        cr_assert_eq(pthread_create(&t, NULL, sleeper, s), 0);
        usleep(100 * 1000);
        cr_assert_eq(ipcb_sem_release_undo(u, 1), 0);
        cr_assert_eq(pthread_join(t, &ret), 0);
        cr_assert_eq((intptr_t)ret, 0, "the sleeper was not woken: %d", (int)(intptr_t)ret);
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_sem_value(s), 0); /* taken back, never below 0 */
        cr_assert_eq(ipcb_sem_close(s), 0);
}

/* ---- a hostile peer, raw ---- */

static uint64_t raw_sem_open(int fd, uint32_t id, const char *name, uint32_t flags) {
        ipcb_msg m = { .hdr = { .op = IPCB_OP_SEM_OPEN, .id = id } }, r;

        m.sem_open.flags = flags;
        m.sem_open.name = (ipcb_name){ .ptr = name, .len = (uint16_t)strlen(name) };
        cr_assert_eq(raw_request(fd, &m, &r), 0);
        return r.sem_reply.handle;
}

static int raw_owe(int fd, uint32_t id, uint64_t handle, uint32_t release, uint32_t owe,
                   uint64_t *ret_owed) {
        ipcb_msg m = { .hdr = { .op = IPCB_OP_SEM_OWE, .id = id } }, r;
        int k;

        m.sem_owe.handle = handle;
        m.sem_owe.release = release;
        m.sem_owe.owe = owe;
        k = raw_request(fd, &m, &r);
        if (k == 0 && ret_owed)
                *ret_owed = r.sem_owe_reply.owed;
        return k;
}

CHECKED_TEST(raw_requests) {
        ipcb_sem *s = create_ok("raw", 0, 100);
        uint64_t plain, undo, owed = 0;
        int fd = raw_connect(d.sock);

        cr_assert_geq(fd, 0);
        cr_assert_eq(raw_hello(fd), 0);
        plain = raw_sem_open(fd, 2, "raw", 0);
        undo = raw_sem_open(fd, 3, "raw", IPCB_WF_UNDO);
        cr_assert_eq(raw_owe(fd, 4, 0, 1, 1, NULL), -EBADF);
        cr_assert_eq(raw_owe(fd, 5, undo + 1, 1, 1, NULL), -EBADF);
        cr_assert_eq(raw_owe(fd, 6, plain, 1, 1, NULL), -EINVAL);
        cr_assert_eq(raw_owe(fd, 7, undo, 0, 0, NULL), -EINVAL);
        cr_assert_eq(raw_owe(fd, 8, undo, 101, 0, NULL), -EOVERFLOW);
        cr_assert_eq(raw_owe(fd, 9, undo, UINT32_MAX, UINT32_MAX, NULL), -EOVERFLOW);
        cr_assert_eq(ipcb_sem_value(s), 0, "a refused request changed the count");
        /* Owing without releasing (what a reconnecting client declares): no
         * more than taking the tokens, which the peer could do anyway. */
        cr_assert_eq(raw_owe(fd, 10, undo, 0, 7, &owed), 0);
        cr_assert_eq(owed, 7);
        cr_assert_eq(raw_owe(fd, 11, undo, 5, 5, &owed), 0);
        cr_assert_eq(owed, 12);
        cr_assert_eq(ipcb_sem_value(s), 5);
        for (uint32_t i = 0; i < 100; i++) /* owing piles up without overflow */
                cr_assert_eq(raw_owe(fd, 100 + i, undo, 0, UINT32_MAX, NULL), 0);
        /* The hang-up takes back what it owes, never below 0. */
        close(fd);
        wait_value(s, 0);
        cr_assert_eq(ipcb_sem_release(s, 3), 0);
        cr_assert_eq(ipcb_sem_value(s), 3);
        cr_assert_eq(ipcb_sem_close(s), 0);
}

/* The connection is lost but the broker did not restart: it settled the
 * handle with the connection, taking what it owed.  The reconnected handle
 * must not owe it again (taken twice, the count would end at 0). */
CHECKED_TEST(not_owed_twice_after_a_lost_connection) {
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
        ipcb_sem *s, *u;
        int fd;

        o.max = 10;
        o.flags = IPCB_SEM_PERSISTENT; /* the hang-up closes every handle of c */
        cr_assert_eq(ipcb_sem_create(c, "lost", 0, &o, &s), 0);
        u = open_ok(c, "lost", IPCB_SEM_UNDO);

        cr_assert_eq(ipcb_sem_release_undo(u, 3), 0);
        cr_assert_eq(ipcb_sem_release(s, 2), 0);
        cr_assert_eq(ipcb_sem_value(s), 5);
        fd = broker_socket_fd(d.sock);
        cr_assert_geq(fd, 0, "the client's socket not found");
        cr_assert_eq(shutdown(fd, SHUT_RDWR), 0); /* the broker sees a hang-up */
        wait_value(s, 2);
        cr_assert_eq(ipcb_sync(c), 0); /* reconnects: u takes a new slot */
        cr_assert_eq(ipcb_sem_owed(u), 0, "the settled debt came back");
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_sem_value(s), 2, "owed tokens taken twice");
        cr_assert_eq(ipcb_sem_close(s), 0);
        cr_assert_eq(ipcb_sem_unlink(c, "lost"), 0);
}

/* What a handle holds and owes is netted before the count is clamped: at
 * the maximum, giving back first and clamping would lose what is owed
 * against it.  max 2, count 1: hold 1 (count 0), give 2 owing them (count
 * 2; held 1, owed 2: semadj -1).  The kernel ends at 2 - 1 = 1. */
CHECKED_TEST(netted_before_clamping_at_the_maximum) {
        ipcb_sem *s = create_ok("netmax", 1, 2), *u = open_ok(c, "netmax", IPCB_SEM_UNDO);

        cr_assert_eq(ipcb_sem_acquire(u), 0);
        cr_assert_eq(ipcb_sem_release_undo(u, 2), 0);
        cr_assert_eq(ipcb_sem_value(s), 2);
        cr_assert_eq(ipcb_sem_held(u), 1);
        cr_assert_eq(ipcb_sem_owed(u), 2);
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_sem_value(s), 1, "clamped at the maximum before the debt was taken");
        cr_assert_eq(ipcb_sem_close(s), 0);
}
