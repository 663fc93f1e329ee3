/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_sem_n.c: ipcb_sem_acquire_n against a real ipcbrokerd: all or
 * nothing, plain and undo handles, waiting for the last of n tokens, the
 * tokens of an undo holder that dies coming back, and bad arguments. */
#include "harness.h"

#include "ipcbroker.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
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

#define N_TEST(name) FIXTURE_TEST(sem_n, name, &d, release, .init = setup, .fini = teardown, .timeout = 30)

N_TEST(all_or_nothing) {
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
        ipcb_sem *p, *u;

        o.max = 10;
        cr_assert_eq(ipcb_sem_create(c, "n", 3, &o, &p), 0);
        cr_assert_eq(ipcb_sem_acquire_n(p, 2, 0), 0);
        cr_assert_eq(ipcb_sem_value(p), 1);
        cr_assert_eq(ipcb_sem_acquire_n(p, 2, 0), -EAGAIN, "one token is not two");
        cr_assert_eq(ipcb_sem_value(p), 1, "nothing taken on failure");
        cr_assert_eq(ipcb_sem_acquire_n(p, 2, 50), -ETIMEDOUT);
        cr_assert_eq(ipcb_sem_value(p), 1);
        cr_assert_eq(ipcb_sem_release(p, 1), 0);
        cr_assert_eq(ipcb_sem_acquire_n(p, 2, 0), 0);
        cr_assert_eq(ipcb_sem_value(p), 0);
        /* Undo handle: holds what it took. */
        cr_assert_eq(ipcb_sem_release(p, 5), 0);
        cr_assert_eq(ipcb_sem_open(c, "n", IPCB_SEM_UNDO, &u), 0);
        cr_assert_eq(ipcb_sem_acquire_n(u, 4, 0), 0);
        cr_assert_eq(ipcb_sem_held(u), 4);
        cr_assert_eq(ipcb_sem_acquire_n(u, 2, 0), -EAGAIN);
        cr_assert_eq(ipcb_sem_held(u), 4);
        cr_assert_eq(ipcb_sem_value(p), 1);
        /* Closing gives them back. */
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_sem_value(p), 5);
        cr_assert_eq(ipcb_sem_acquire_n(NULL, 1, 0), -EINVAL);
        cr_assert_eq(ipcb_sem_acquire_n(p, 0, 0), -EINVAL);
        cr_assert_eq(ipcb_sem_acquire_n(p, 11, 0), -EINVAL, "above the maximum");
        cr_assert_eq(ipcb_sem_close(p), 0);
}

static ipcb_sem *waiter_sem;
static int waiter_result = 1;

static void *waiter(void *arg) {
        (void)arg;
        waiter_result = ipcb_sem_acquire_n(waiter_sem, 3, 5000);
        return NULL;
}

/* A waiter for 3 wakes for each single release and sleeps again until the
 * third. */
N_TEST(waits_for_the_last_token) {
        ipcb_sem *s, *r;
        pthread_t t;

        cr_assert_eq(ipcb_sem_create(c, "w", 0, NULL, &s), 0);
        cr_assert_eq(ipcb_sem_open(c, "w", IPCB_SEM_UNDO, &waiter_sem), 0);
        cr_assert_eq(ipcb_sem_open(c, "w", 0, &r), 0);
        cr_assert_eq(pthread_create(&t, NULL, waiter, NULL), 0);
        for (int i = 0; i < 3; i++) {
                usleep(100 * 1000);
                cr_assert_eq(waiter_result, 1, "took its tokens with only %d there", i);
                cr_assert_eq(ipcb_sem_release(r, 1), 0);
        }
        pthread_join(t, NULL);
        cr_assert_eq(waiter_result, 0);
        cr_assert_eq(ipcb_sem_held(waiter_sem), 3);
        cr_assert_eq(ipcb_sem_value(s), 0);
        cr_assert_eq(ipcb_sem_close(waiter_sem), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_sem_value(s), 3, "its tokens came back");
        cr_assert_eq(ipcb_sem_close(r), 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
}

/* An undo holder of n tokens killed with SIGKILL: all n come back. */
N_TEST(dead_holder_gives_all_back) {
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
        ipcb_sem *s;
        int st;

        o.flags = IPCB_SEM_PERSISTENT;
        cr_assert_eq(ipcb_sem_create(c, "dead", 7, &o, &s), 0);
        pid_t pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_sem *u;
                if (ipcb_connect(d.sock, &cc) < 0 || ipcb_sem_open(cc, "dead", IPCB_SEM_UNDO, &u) < 0 ||
                    ipcb_sem_acquire_n(u, 5, 0) < 0)
                        _exit(1);
                kill(getpid(), SIGKILL);
                _exit(2);
        }
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFSIGNALED(st), "child status %d", st);
        for (int i = 0; i < 200 && ipcb_sem_value(s) != 7; i++)
                usleep(10000);
        cr_assert_eq(ipcb_sem_value(s), 7, "value %d", ipcb_sem_value(s));
        cr_assert_eq(ipcb_sem_close(s), 0);
        cr_assert_eq(ipcb_sem_unlink(c, "dead"), 0);
}
