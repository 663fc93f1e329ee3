/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_create_or_open.c: ipcb_shm_create_or_open and ipcb_sem_create_or_open
 * against a real ipcbrokerd: the creator learns it created, the others
 * open the same object, and of many processes racing on one name exactly
 * one creates it, round after round. */
#include "harness.h"

#include "ipcbroker.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

#define CO_TEST(name) \
        FIXTURE_TEST(create_or_open, name, &d, release, .init = setup, .fini = teardown, .timeout = 60)

CO_TEST(shm_basic) {
        ipcb_shm *a, *b;
        bool created = false;

        cr_assert_eq(ipcb_shm_create_or_open(c, "co", 4096, NULL, &a, &created), 0);
        cr_assert(created);
        cr_assert_eq(ipcb_shm_create_or_open(c, "co", 8192, NULL, &b, &created), 0);
        cr_assert_not(created);
        cr_assert_eq(ipcb_shm_size(b), 4096, "the existing object keeps its size");
        memcpy(ipcb_shm_data(a), "x", 2);
        cr_assert_str_eq(ipcb_shm_data(b), "x");
        cr_assert_eq(ipcb_shm_close(a), 0);
        cr_assert_eq(ipcb_shm_close(b), 0);
        cr_assert_eq(ipcb_shm_create_or_open(c, "", 1, NULL, &a, NULL), -EINVAL);
        cr_assert_eq(ipcb_shm_create_or_open(c, "co", 1, NULL, NULL, NULL), -EINVAL);
}

CO_TEST(sem_basic) {
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
        ipcb_sem *a, *b;
        bool created = false;

        o.flags = IPCB_SEM_UNDO;
        cr_assert_eq(ipcb_sem_create_or_open(c, "cos", 3, &o, &a, &created), 0);
        cr_assert(created);
        cr_assert_eq(ipcb_sem_create_or_open(c, "cos", 9, &o, &b, &created), 0);
        cr_assert_not(created);
        cr_assert_eq(ipcb_sem_value(b), 3, "the existing count stays");
        cr_assert_eq(ipcb_sem_acquire(b), 0);
        cr_assert_eq(ipcb_sem_held(b), 1, "opened as an undo handle");
        cr_assert_eq(ipcb_sem_close(a), 0);
        cr_assert_eq(ipcb_sem_close(b), 0);
}

/* N processes race on one persistent name, R rounds: exactly one creator
 * per round, and everyone ends up with the same object. */
CO_TEST(race_one_creator) {
        enum { N = 8, R = 30 };
        int *created = mmap(NULL, sizeof(int) * R, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        pid_t pids[N];

        cr_assert_neq(created, MAP_FAILED);
        memset(created, 0, sizeof(int) * R);
        for (int i = 0; i < N; i++) {
                pids[i] = test_fork();
                if (pids[i] == 0) {
                        ipcb_client *cl;
                        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
                        o.flags = IPCB_SHM_PERSISTENT;
                        if (ipcb_connect(d.sock, &cl) < 0)
                                _exit(2);
                        for (int r = 0; r < R; r++) {
                                char name[32];
                                ipcb_shm *s;
                                bool cr = false;
                                snprintf(name, sizeof(name), "race.%d", r);
                                if (ipcb_shm_create_or_open(cl, name, 4096, &o, &s, &cr) < 0)
                                        _exit(3);
                                if (cr)
                                        __atomic_fetch_add(&created[r], 1, __ATOMIC_SEQ_CST);
                                ipcb_shm_close(s);
                        }
                        ipcb_disconnect(cl);
                        _exit(0);
                }
        }
        for (int i = 0; i < N; i++) {
                int st;
                cr_assert_eq(waitpid(pids[i], &st, 0), pids[i]);
                cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d: status %d", i, st);
        }
        for (int r = 0; r < R; r++) {
                char name[32];
                cr_assert_eq(created[r], 1, "round %d: %d creators", r, created[r]);
                snprintf(name, sizeof(name), "race.%d", r);
                cr_assert_eq(ipcb_shm_unlink(c, name), 0);
        }
        munmap(created, sizeof(int) * R);
}
