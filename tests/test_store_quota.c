/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_store_quota.c: quotas across a broker restart.  Objects the broker
 * takes back from the fd store (tests/fakemgr.h plays the service manager)
 * are charged to the uid that created them, as the create was: the uid's
 * counters read the same after the restart, a uid at its object quota is
 * still refused, and destroying the objects brings the counters to 0.  A
 * chown leaves the charge with the creator, across a restart too.
 * The client runs as another uid (root is exempt from quotas), so the
 * test needs root.
 *
 * The harness fixture (harness.h) adopts the first daemon: the last one is
 * back at its idle fd count before its final stop, and the test process
 * holds no more fds at the end than at the start. */
#include "harness.h"
#include "storefix.h"
#include "multiuid.h"

#include "ipcbroker.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_OBJECTS 5

static storefix fx;

static void setup(void) {
        storefix_setup(&fx, "/tmp/ipcbsq.XXXXXX", true);
}

static void start(void) {
        /* A long grace: nothing restored is settled during the test. */
        static const char *const args[] = { "--restore-grace", "30", "--max-objects", "5",
                                            "--max-bytes", "1M", "-v", NULL };
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

TestSuite(store_quota, .init = setup, .fini = teardown, .timeout = 60);

/* Pipes between the test and its client of uid UID_A: up (child to test),
 * down (test to child). */
static int up[2], down[2];

static int wait_parent(void) {
        char b;
        return read(down[0], &b, 1) == 1 ? 0 : -1;
}

static void tell_parent(char what) {
        (void)!write(up[1], &what, 1);
}

/* The client: creates objects up to its quota of MAX_OBJECTS (persistent
 * and held transients, segments and semaphores), waits across the restart,
 * then checks its counters and the refusal, and destroys everything. */
static int owner(void *arg) {
        ipcb_shm_options so = IPCB_SHM_OPTIONS_INIT;
        ipcb_sem_options eo = IPCB_SEM_OPTIONS_INIT;
        ipcb_quota_info before = IPCB_QUOTA_INFO_INIT, after = IPCB_QUOTA_INFO_INIT;
        ipcb_shm *p, *t, *g, *x;
        ipcb_sem *s, *u, *y;
        ipcb_client *c;
        int r;

        (void)arg;
        CHILD_CHECK(ipcb_connect(fx.sock, &c) == 0, "connect");
        so.flags = IPCB_SHM_PERSISTENT;
        CHILD_CHECK(ipcb_shm_create(c, "q-persist", 8192, &so, &p) == 0, "persistent segment");
        so.flags = IPCB_SHM_PERSISTENT | IPCB_SHM_GROWABLE;
        CHILD_CHECK(ipcb_shm_create(c, "q-grow", 12288, &so, &g) == 0, "growable segment");
        CHILD_CHECK(ipcb_shm_create(c, "q-held", 4096, NULL, &t) == 0, "transient segment");
        eo.flags = IPCB_SEM_PERSISTENT;
        CHILD_CHECK(ipcb_sem_create(c, "q-sem", 1, &eo, &s) == 0, "persistent semaphore");
        eo.flags = IPCB_SEM_UNDO;
        CHILD_CHECK(ipcb_sem_create(c, "q-undo", 1, &eo, &u) == 0, "transient undo semaphore");
        CHILD_CHECK(ipcb_sem_acquire(u) == 0, "acquire");
        /* A segment's lock page is part of what it costs the broker. */
        CHILD_CHECK(ipcb_shm_lock(p) == 0 && ipcb_shm_unlock(p) == 0, "lock");
        r = ipcb_shm_create(c, "q-over", 4096, NULL, &x);
        CHILD_CHECK(r == -EDQUOT, "create past the quota before the restart: %s", ipcb_strerror(r));
        CHILD_CHECK(ipcb_quota(c, getuid(), &before) == 0, "quota");
        CHILD_CHECK(before.objects == MAX_OBJECTS && before.bytes == 8192 + 12288 + 4096 * 3,
                    "before: %llu objects, %llu bytes", (unsigned long long)before.objects,
                    (unsigned long long)before.bytes);
        tell_parent('1');
        CHILD_CHECK(wait_parent() == 0, "parent gone");

        /* The broker was restarted; this call reconnects. */
        CHILD_CHECK(ipcb_quota(c, getuid(), &after) == 0, "quota after the restart");
        CHILD_CHECK(after.objects == before.objects && after.bytes == before.bytes,
                    "after the restart: %llu objects, %llu bytes (were %llu, %llu)",
                    (unsigned long long)after.objects, (unsigned long long)after.bytes,
                    (unsigned long long)before.objects, (unsigned long long)before.bytes);
        r = ipcb_shm_create(c, "q-over", 4096, NULL, &x);
        CHILD_CHECK(r == -EDQUOT, "create past the quota after the restart: %s", ipcb_strerror(r));
        r = ipcb_sem_create(c, "q-over", 0, NULL, &y);
        CHILD_CHECK(r == -EDQUOT, "semaphore past the quota after the restart: %s",
                    ipcb_strerror(r));

        /* Destroying what it owns gives everything back. */
        CHILD_CHECK(ipcb_sem_release(u, 1) == 0, "release");
        ipcb_sem_close(u);
        ipcb_sem_close(s);
        ipcb_shm_close(t);
        ipcb_shm_close(g);
        ipcb_shm_close(p);
        CHILD_CHECK(ipcb_unlink(c, "q-persist") == 0, "unlink");
        CHILD_CHECK(ipcb_unlink(c, "q-grow") == 0, "unlink");
        CHILD_CHECK(ipcb_sem_unlink(c, "q-sem") == 0, "unlink sem");
        CHILD_CHECK(ipcb_quota(c, getuid(), &after) == 0, "quota at the end");
        CHILD_CHECK(after.objects == 0 && after.bytes == 0, "at the end: %llu objects, %llu bytes",
                    (unsigned long long)after.objects, (unsigned long long)after.bytes);
        ipcb_disconnect(c);
        return 0;
}

static int run_owner(void *arg) {
        int r = owner(arg);

        if (r)
                tell_parent('!');
        return r;
}

FIXTURE_TEST(store_quota, restored_objects_are_charged, &fx.d, release) {
        ipcb_quota_info q = IPCB_QUOTA_INFO_INIT;
        ipcb_client *c;
        int status;
        pid_t pid;
        char b;

        SKIP_UNLESS_ROOT();
        start();
        cr_assert_eq(pipe(up), 0);
        cr_assert_eq(pipe(down), 0);
        pid = test_fork();
        if (pid == 0) {
                if (drop_to(UID_A, UID_A, NULL, 0) < 0)
                        _exit(2);
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                _exit(run_owner(NULL));
        }
        cr_assert_eq(read(up[0], &b, 1), 1);
        cr_assert_eq(b, '1', "the client failed before the restart");
        cr_assert_eq(ipcb_connect(fx.sock, &c), 0);
        cr_assert_eq(ipcb_quota(c, UID_A, &q), 0);
        cr_assert_eq(q.objects, MAX_OBJECTS);
        /* Charges stay with the creator through a chown, and a restart. */
        cr_assert_eq(ipcb_chown(c, IPCB_KIND_SHM, "q-persist", UID_B, (gid_t)-1), 0);
        ipcb_disconnect(c);
        fakemgr_drain(&fx.m, 200);

        stop();
        start();
        /* Charged at the restore, before the owner has said anything. */
        cr_assert_eq(ipcb_connect(fx.sock, &c), 0);
        cr_assert_eq(ipcb_quota(c, UID_A, &q), 0);
        cr_assert_eq(q.objects, MAX_OBJECTS, "objects of uid %u after the restart: %llu",
                     UID_A, (unsigned long long)q.objects);
        cr_assert_eq(q.bytes, 8192 + 12288 + 4096 * 3, "bytes after the restart: %llu",
                     (unsigned long long)q.bytes);
        cr_assert_eq(ipcb_quota(c, UID_B, &q), 0);
        cr_assert_eq(q.objects, 0, "the owner after a chown was charged after the restart");
        cr_assert_eq(ipcb_chown(c, IPCB_KIND_SHM, "q-persist", UID_A, (gid_t)-1), 0);

        cr_assert_eq(write(down[1], "x", 1), 1);
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the client's checks failed (0x%x)",
                  status);
        cr_assert_eq(ipcb_quota(c, UID_A, &q), 0);
        cr_assert_eq(q.objects, 0);
        cr_assert_eq(q.bytes, 0);
        ipcb_disconnect(c);
        for (int i = 0; i < 2; i++) {
                close(up[i]);
                close(down[i]);
        }
        fakemgr_drain(&fx.m, 200);
        fixture_check_idle(&fx.d);
        stop();
}
