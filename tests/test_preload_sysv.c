/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_preload_sysv.c: unchanged System V programs (preload/testprogs/
 * sysv_prog.c: libc only) under ipcbroker-run against a real ipcbrokerd:
 * shmget/shmat/shmdt/shmctl and semget/semop/semtimedop/semctl across
 * processes and uids, SEM_UNDO through the broker's undo handles (kill -9
 * of a holder gives its token back), transient mode, and what is not
 * served (ENOSYS).  Every test checks that the objects are the broker's and
 * that nothing new appears in the kernel's tables (ipcs) or /dev/shm. */
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

TestSuite(preload_sysv, .init = setup, .fini = teardown, .timeout = 90);
#define CHECKED_TEST(name) FIXTURE_TEST(preload_sysv, name, &d, release)

/* A key unique to this test process, as the program takes it (hex). */
static const char *key_hex(unsigned tag, char *buf) {
        snprintf(buf, 16, "%x", (unsigned)(0x5e000000u | ((unsigned)getpid() & 0xffffu) << 8 | tag));
        return buf;
}

static const char *key_name(const char *kind, const char *hex) {
        static char buf[2][80];
        static unsigned i;
        char *b = buf[i++ % 2];
        snprintf(b, sizeof(buf[0]), "preload.sysv-%s.%08lx", kind, strtoul(hex, NULL, 16));
        return b;
}

static int run(uid_t uid, const char *const *opts, const char *const *argv) {
        return preload_run(d.sock, uid, opts, argv);
}

static int count_cb(const ipcb_object_info *info, void *arg) {
        cr_log_info("in the broker: %s", info->name);
        ++*(int *)arg;
        return 0;
}

static int broker_count(void) {
        int n = 0;
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_list(c, 0, count_cb, &n), 0);
        return n;
}

CHECKED_TEST(segment_across_uids) {
        SKIP_UNLESS_ROOT_UIDS();
        char k[16];
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        key_hex(1, k);
        cr_assert_eq(run(0, NULL, ARGV(IPCB_SYSV_PROG, "shm-create", k, "5000", "hello", "644")),
                     0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, key_name("shm", k), &info), 0,
                     "the segment is the broker's");
        cr_expect_eq(info.size, 5000);
        cr_expect_eq(info.mode, 0644);
        cr_expect_eq(info.handles, 0);
        cr_expect(info.flags & IPCB_SHM_PERSISTENT, "persistent until IPC_RMID");
        cr_assert_eq(run(NOBODY, NULL, ARGV(IPCB_SYSV_PROG, "shm-read", k, "hello", "ro")), 0,
                     "nobody attaches read-only, not read-write");
        cr_assert_eq(run(0, NULL, ARGV(IPCB_SYSV_PROG, "shm-read", k, "hello")), 0);
        /* another uid cannot remove them */
        cr_assert_eq(run(0, NULL, ARGV(IPCB_SYSV_PROG, "sem-create", k, "1", "666")), 0);
        cr_assert_eq(run(NOBODY, NULL, ARGV(IPCB_SYSV_PROG, "rmid-fails", k, "1")), 0, "EPERM");
        cr_assert_eq(run(0, NULL, ARGV(IPCB_SYSV_PROG, "sem-rmid", k)), 0);
        cr_assert_eq(run(0, NULL, ARGV(IPCB_SYSV_PROG, "shm-rmid", k)), 0);
        cr_assert_eq(broker_count(), 0);
}

CHECKED_TEST(segment_semantics) {
        SKIP_UNLESS_ROOT_UIDS();
        cr_assert_eq(run(0, NULL, ARGV(IPCB_SYSV_PROG, "shm-semantics")), 0);
        cr_assert_eq(run(NOBODY, NULL, ARGV(IPCB_SYSV_PROG, "shm-semantics")), 0);
        cr_assert_eq(broker_count(), 0);
}

CHECKED_TEST(transient_segment_dies_with_its_creator) {
        char k[16];
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        key_hex(2, k);
        cr_assert_eq(run(0, ARGV("--transient"),
                         ARGV(IPCB_SYSV_PROG, "shm-create", k, "5000", "hello", "600")), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, key_name("shm", k), &info), -ENOENT);
        cr_assert_eq(broker_count(), 0);
}

CHECKED_TEST(semaphore_undo_across_uids_and_kill) {
        SKIP_UNLESS_ROOT_UIDS();
        char k[16];
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        pid_t holder;

        key_hex(3, k);
        cr_assert_eq(run(0, NULL, ARGV(IPCB_SYSV_PROG, "sem-create", k, "1", "666")), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, key_name("sem", k), &info), 0,
                     "the semaphore is the broker's");
        cr_expect_eq(info.sem_value, 1);
        cr_expect_eq(info.sem_max, 32767);
        /* nobody takes it with SEM_UNDO and is killed holding it */
        holder = preload_spawn(d.sock, NOBODY, NULL, ARGV(IPCB_SYSV_PROG, "sem-hold", k), NULL);
        for (int i = 0; i < 500; i++) {
                cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, key_name("sem", k), &info), 0);
                if (info.sem_value == 0)
                        break;
                usleep(10000);
        }
        cr_assert_eq(info.sem_value, 0, "held");
        cr_assert_eq(info.sem_undo_held, 1, "through an undo handle");
        cr_assert_eq(run(0, NULL, ARGV(IPCB_SYSV_PROG, "sem-value", k, "0")), 0);
        kill(holder, SIGKILL);
        cr_assert_eq(preload_wait(holder, 5000), 128 + SIGKILL);
        cr_assert_eq(run(0, NULL, ARGV(IPCB_SYSV_PROG, "sem-take", k, "10")), 0,
                     "the token came back");
        cr_assert_eq(run(NOBODY, NULL, ARGV(IPCB_SYSV_PROG, "sem-value", k, "1")), 0);
        cr_assert_eq(run(0, NULL, ARGV(IPCB_SYSV_PROG, "sem-rmid", k)), 0);
        cr_assert_eq(broker_count(), 0);
}

CHECKED_TEST(semaphore_semantics) {
        char k[16];

        key_hex(4, k);
        cr_assert_eq(run(0, NULL, ARGV(IPCB_SYSV_PROG, "sem-semantics", k)), 0);
        cr_assert_eq(broker_count(), 0);
}

/* SEM_UNDO on a release the process did not take first is owed back at
 * its exit or death (the kernel's semadj below 0): the same program passes
 * brokered and against the kernel. */
CHECKED_TEST(semaphore_undo_owed_back) {
        char k[16];

        key_hex(8, k);
        cr_assert_eq(run(0, NULL, ARGV(IPCB_SYSV_PROG, "sem-owe", k)), 0);
        cr_assert_eq(broker_count(), 0);
        cr_assert_eq(run(0, ARGV("--no-sysv"), ARGV(IPCB_SYSV_PROG, "sem-owe", k)), 0,
                     "the program's expectations are not the kernel's");
}

/* A process killed in the middle of a semop of several operations leaves
 * all of it or none, as with the kernel: the same program passes brokered
 * and against the kernel. */
CHECKED_TEST(semaphore_several_operations_killed) {
        char k[16];

        key_hex(9, k);
        cr_assert_eq(run(0, NULL, ARGV(IPCB_SYSV_PROG, "sem-kill-multi", k)), 0);
        cr_assert_eq(broker_count(), 0);
        cr_assert_eq(run(0, ARGV("--no-sysv"), ARGV(IPCB_SYSV_PROG, "sem-kill-multi", k)), 0,
                     "the program's expectations are not the kernel's");
}

CHECKED_TEST(semaphore_several_operations) {
        char k[16];

        key_hex(7, k);
        cr_assert_eq(run(0, NULL, ARGV(IPCB_SYSV_PROG, "sem-multi", k)), 0);
        cr_assert_eq(broker_count(), 0, "IPC_RMID removes the members and the ops lock");
}

CHECKED_TEST(semaphore_sets) {
        char k[16], name[96];
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        key_hex(6, k);
        cr_assert_eq(run(0, NULL, ARGV(IPCB_SYSV_PROG, "sem-set", k)), 0);
        /* three broker semaphores: the key's name and .1, .2 */
        for (unsigned i = 0; i < 3; i++) {
                snprintf(name, sizeof(name), i ? "%s.%u" : "%s", key_name("sem", k), i);
                cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, name, &info), 0, "%s", name);
                cr_expect_eq(info.sem_value, i + 1, "%s", name);
        }
        cr_assert_eq(broker_count(), 3);
        cr_assert_eq(run(0, NULL, ARGV(IPCB_SYSV_PROG, "sem-rmid", k)), 0);
        cr_assert_eq(broker_count(), 0, "IPC_RMID removes every member");
}

CHECKED_TEST(no_sysv_passes_through) {
        char k[16];
        char *snap;

        key_hex(5, k);
        /* --no-sysv: the kernel's; the program leaves it there, we remove it */
        cr_assert_eq(run(0, ARGV("--no-sysv"), ARGV(IPCB_SYSV_PROG, "sem-create", k, "1", "600")),
                     0);
        cr_assert_eq(broker_count(), 0);
        snap = kernel_ipc_snapshot();
        char line[80];
        snprintf(line, sizeof(line), "/proc/sysvipc/sem %ld ", strtol(k, NULL, 16));
        cr_assert(strstr(snap, line) != NULL, "in the kernel's table: %s", line);
        free(snap);
        cr_assert_eq(run(0, ARGV("--no-sysv"), ARGV(IPCB_SYSV_PROG, "sem-rmid", k)), 0);
        /* no broker and --fallback kernel likewise */
        char nosock[160];
        snprintf(nosock, sizeof(nosock), "%s/none.sock", d.dir);
        cr_assert_eq(preload_run(nosock, 0, ARGV("--fallback", "kernel"),
                                 ARGV(IPCB_SYSV_PROG, "sem-create", k, "1", "600")), 0);
        snap = kernel_ipc_snapshot();
        cr_assert(strstr(snap, line) != NULL, "in the kernel's table: %s", line);
        free(snap);
        cr_assert_eq(preload_run(nosock, 0, ARGV("--fallback", "kernel"),
                                 ARGV(IPCB_SYSV_PROG, "sem-rmid", k)), 0);
        cr_assert_eq(preload_run(nosock, 0, NULL, ARGV(IPCB_SYSV_PROG, "get-fails", k, "107")), 0,
                     "--fallback fail: ENOTCONN");
        /* an excluded key likewise */
        cr_assert_eq(run(0, ARGV("--exclude", "0x5e*"),
                         ARGV(IPCB_SYSV_PROG, "sem-create", k, "1", "600")), 0);
        cr_assert_eq(broker_count(), 0);
        cr_assert_eq(run(0, ARGV("--exclude", "0x5e*"), ARGV(IPCB_SYSV_PROG, "sem-rmid", k)), 0);
}
