/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_preload_qt.c: an unchanged Qt 6 program (preload/testprogs/
 * qt_prog.cpp: QSharedMemory and QSystemSemaphore, System V underneath in
 * Qt 6.4) under ipcbroker-run against a real ipcbrokerd: two processes
 * share a segment under its lock, as root, as nobody, and nobody's
 * attached by root; the segment's lock (a SEM_UNDO semaphore) comes back
 * when its holder is killed; and in transient mode kill -9 of the creator
 * leaves nothing behind (the kernel keeps what Qt leaves).  Skipped when
 * the Qt program was not built (no qt6-base-dev). */
#include "test_preload.h"

#include "ipcbroker.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <sys/stat.h>

static ipcbd d;
static ipcb_client *c;
static char *kernel_before;

static void setup(void) {
        fixture_begin(&d, NULL);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        kernel_before = kernel_ipc_snapshot();
}

static void release(void) {
        if (kernel_before)
                kernel_ipc_assert_nothing_new(kernel_before, kernel_ipc_snapshot());
        kernel_before = NULL;
        ipcb_disconnect(c);
        c = NULL;
}

static void teardown(void) {
        release();
        fixture_cleanup(&d);
}

TestSuite(preload_qt, .init = setup, .fini = teardown, .timeout = 120);
#define CHECKED_TEST(name) FIXTURE_TEST(preload_qt, name, &d, release)

#ifndef IPCB_QT_PROG
#define SKIP_UNLESS_QT() cr_skip_test("no Qt 6 program (qt6-base-dev not found at build time)")
#define IPCB_QT_PROG "/nonexistent"
#else
#define SKIP_UNLESS_QT() ((void)0)
#endif

static int count_shm, count_sem;
static int count_cb(const ipcb_object_info *info, void *arg) {
        (void)arg;
        cr_log_info("in the broker: %s", info->name);
        if (strncmp(info->name, "preload.sysv-", 13) == 0)
                ++*(info->kind == IPCB_KIND_SHM ? &count_shm : &count_sem);
        return 0;
}

static void broker_counts(void) {
        count_shm = count_sem = 0;
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_list(c, 0, count_cb, NULL), 0);
}

static void wait_file(const char *path, pid_t pid) {
        for (int i = 0; i < 1000 && access(path, F_OK) != 0; i++) {
                cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "the program ended early");
                usleep(10000);
        }
        cr_assert_eq(access(path, F_OK), 0, "%s never appeared", path);
}

/* Remove the System V objects the Qt program left in the broker. */
static int unlink_cb(const ipcb_object_info *info, void *arg) {
        (void)arg;
        if (strncmp(info->name, "preload.sysv-", 13) == 0)
                cr_expect_eq(info->kind == IPCB_KIND_SHM ? ipcb_unlink(c, info->name)
                                                          : ipcb_sem_unlink(c, info->name),
                             0);
        return 0;
}

static void two_processes(uid_t uid, uid_t attacher) {
        char key[64], ready[160];
        pid_t server;

        SKIP_UNLESS_QT();
        snprintf(key, sizeof(key), "ipcbqt-%d-%u", (int)getpid(), (unsigned)uid);
        snprintf(ready, sizeof(ready), "%s/ready-%u", d.dir, (unsigned)uid);
        cr_assert_eq(chmod(d.dir, 0777), 0); /* nobody writes its ready file */
        server = preload_spawn(d.sock, uid, NULL, ARGV(IPCB_QT_PROG, "serve", key, ready), NULL);
        wait_file(ready, server);
        broker_counts();
        cr_assert_eq(count_shm, 1, "the segment is the broker's");
        cr_assert_geq(count_sem, 1, "its lock is a broker semaphore");
        cr_assert_eq(preload_run(d.sock, attacher, NULL, ARGV(IPCB_QT_PROG, "attach", key)), 0);
        cr_assert_eq(preload_wait(server, 30000), 0);
        broker_counts();
        cr_assert_eq(count_shm, 0, "Qt removed the segment at its last detach");
        cr_assert_eq(ipcb_list(c, 0, unlink_cb, NULL), 0);
        cr_assert_eq(chmod(d.dir, 0755), 0);
}

CHECKED_TEST(two_processes_root) {
        two_processes(0, 0);
}

CHECKED_TEST(two_processes_nobody) {
        SKIP_UNLESS_ROOT_UIDS();
        two_processes(NOBODY, NOBODY);
}

/* Qt makes its objects 0600: another uid gets in only as root (as with
 * the kernel's CAP_IPC_OWNER; the broker's root override). */
CHECKED_TEST(two_processes_nobody_then_root) {
        SKIP_UNLESS_ROOT_UIDS();
        two_processes(NOBODY, 0);
}

CHECKED_TEST(lock_comes_back_after_kill) {
        char key[64], ready[160];
        pid_t holder;

        SKIP_UNLESS_QT();
        snprintf(key, sizeof(key), "ipcbqt-hold-%d", (int)getpid());
        snprintf(ready, sizeof(ready), "%s/ready", d.dir);
        holder = preload_spawn(d.sock, 0, NULL, ARGV(IPCB_QT_PROG, "hold", key, ready), NULL);
        wait_file(ready, holder);
        kill(holder, SIGKILL);
        cr_assert_eq(preload_wait(holder, 5000), 128 + SIGKILL);
        /* Qt leaves the segment behind (persistent, as in the kernel); its
         * lock was taken with SEM_UNDO, so the next process gets it */
        broker_counts();
        cr_assert_eq(count_shm, 1);
        cr_assert_eq(preload_run(d.sock, 0, NULL, ARGV(IPCB_QT_PROG, "attach-any", key)), 0);
        cr_assert_eq(ipcb_list(c, 0, unlink_cb, NULL), 0);
}

CHECKED_TEST(transient_kill_leaves_nothing) {
        char key[64], ready[160];
        pid_t server, sem_holder;

        SKIP_UNLESS_QT();
        snprintf(key, sizeof(key), "ipcbqt-kill-%d", (int)getpid());
        snprintf(ready, sizeof(ready), "%s/ready", d.dir);
        server = preload_spawn(d.sock, 0, ARGV("--transient"),
                               ARGV(IPCB_QT_PROG, "serve", key, ready), NULL);
        wait_file(ready, server);
        broker_counts();
        cr_assert_eq(count_shm, 1);
        kill(server, SIGKILL);
        cr_assert_eq(preload_wait(server, 5000), 128 + SIGKILL);
        broker_counts();
        cr_assert_eq(count_shm, 0, "the segment died with its creator");
        cr_assert_eq(count_sem, 0, "and so did its lock");
        /* a QSystemSemaphore too */
        unlink(ready);
        sem_holder = preload_spawn(d.sock, 0, ARGV("--transient"),
                                   ARGV(IPCB_QT_PROG, "sem", key, ready), NULL);
        wait_file(ready, sem_holder);
        broker_counts();
        cr_assert_eq(count_sem, 1);
        kill(sem_holder, SIGKILL);
        cr_assert_eq(preload_wait(sem_holder, 5000), 128 + SIGKILL);
        broker_counts();
        cr_assert_eq(count_sem, 0);
}
