/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_preload_store.c: a segment made the way the preload shim makes them
 * (growable, created empty, grown by ftruncate on the fd) survives a broker
 * restart through the service manager's fd store: stored, restored with
 * its bytes, its growth and its name, still growable; one still empty is
 * restored too.  Against a fake service manager (tests/fakemgr.h), as
 * test_store.c does. */
#include "harness.h"
#include "fakemgr.h"

#include "ipcbroker.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static fakemgr m;
static char sock[96], logpath[96];
static ipcbd d;

static void setup(void) {
        fixture_begin_bare(&d);
        fakemgr_init(&m, "/tmp/ipcbps.XXXXXX", 32);
        snprintf(sock, sizeof(sock), "%s/ipcb.sock", m.dir);
        snprintf(logpath, sizeof(logpath), "%s/log", m.dir);
}

static void start(void) {
        static const char *const args[] = { "--restore-grace", "1", "-v", NULL };
        fakemgr_exec x = { .sock = sock, .args = args, .log = logpath };
        pid_t pid = fakemgr_start(&m, &x);

        if (d.base_fds == 0)
                fixture_adopt(&d, pid, sock);
        else
                d.pid = pid;
}

static void stop(void) {
        int status = fakemgr_stop(&m);

        d.pid = 0;
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "daemon exit status 0x%x", status);
}

static void release(void) {
        fakemgr_close(&m);
}

static void teardown(void) {
        if (m.pid > 0) {
                kill(m.pid, SIGKILL);
                waitpid(m.pid, NULL, 0);
                m.pid = 0;
                d.pid = 0;
        }
        release();
        fixture_cleanup(&d);
        unlink(sock);
        unlink(logpath);
        fakemgr_destroy(&m);
}

TestSuite(preload_store, .init = setup, .fini = teardown, .timeout = 60);

static bool two_stored(const fakemgr *fm, void *arg) {
        (void)arg;
        return fakemgr_count(fm, "ipcb-o-") == 2 && fakemgr_count(fm, "ipcb-catalog") == 1;
}

FIXTURE_TEST(preload_store, empty_growable_segments_survive_a_restart, &d, release) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ipcb_client *c;
        ipcb_shm *grown, *empty, *s;

        start();
        cr_assert_eq(ipcb_connect(sock, &c), 0);
        o.flags = IPCB_SHM_PERSISTENT | IPCB_SHM_GROWABLE;
        cr_assert_eq(ipcb_shm_create(c, "preload.shm.grown", 0, &o, &grown), 0);
        cr_assert_eq(ipcb_shm_create(c, "preload.shm.empty", 0, &o, &empty), 0);
        cr_assert_eq(ftruncate(ipcb_shm_fd(grown), 10000), 0);
        cr_assert_eq(pwrite(ipcb_shm_fd(grown), "kept", 4, 9990), 4);
        cr_assert_eq(ipcb_shm_close(grown), 0);
        cr_assert_eq(ipcb_shm_close(empty), 0);
        ipcb_disconnect(c);
        cr_assert(fakemgr_pump_until(&m, two_stored, NULL, 5000), "both stored");

        stop();
        start();
        cr_assert(!file_contains(logpath, "bad size"), "an empty growable segment was refused");
        cr_assert_eq(ipcb_connect(sock, &c), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "preload.shm.empty", &info), 0, "restored empty");
        cr_assert_eq(info.size, 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "preload.shm.grown", &info), 0, "restored grown");
        cr_assert_eq(info.size, 10000);
        cr_assert(info.flags & IPCB_SHM_GROWABLE);
        cr_assert_eq(ipcb_shm_open(c, "preload.shm.grown", IPCB_READ_WRITE, &s), 0);
        cr_assert_eq(memcmp((char *)ipcb_shm_data(s) + 9990, "kept", 4), 0);
        cr_assert_eq(ftruncate(ipcb_shm_fd(s), 20000), 0, "still growable");
        cr_assert_eq(ipcb_shm_close(s), 0);
        cr_assert_eq(ipcb_unlink(c, "preload.shm.grown"), 0);
        cr_assert_eq(ipcb_unlink(c, "preload.shm.empty"), 0);
        ipcb_disconnect(c);
        fixture_check_idle(&d);
        stop();
}
