/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_watch_restart.c: a client driven from a loop across a broker
 * restart (the fake service manager of tests/fakemgr.h restarts it on the
 * same socket): the loop's descriptor stays the same, requests in flight
 * get -ENOTCONN, the next request reconnects, watches are re-added and
 * their callbacks hear an overflow (what happened meanwhile was missed),
 * then live events again. */
#include "fakemgr.h"
#include "harness.h"

#include "ipcbroker.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static fakemgr m;
static char sock[96];
static ipcbd d;

static void setup(void) {
        fixture_begin_bare(&d);
        fakemgr_init(&m, "/tmp/ipcbwr.XXXXXX", 64);
        snprintf(sock, sizeof(sock), "%s/ipcb.sock", m.dir);
}

static void start(void) {
        fakemgr_exec x = { .sock = sock };
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
        fakemgr_destroy(&m);
}

TestSuite(watch_restart, .init = setup, .fini = teardown, .timeout = 60);

typedef struct seen {
        unsigned event;
        char name[IPCB_NAME_MAX + 1];
} seen;
static seen evs[64];
static int nev, stat_status = 1;

static void on_event(ipcb_client *c, const ipcb_watch_event *ev, void *userdata) {
        (void)c, (void)userdata;
        if (nev < 64) {
                evs[nev].event = ev->event;
                snprintf(evs[nev].name, sizeof(evs[nev].name), "%s", ev->name);
                nev++;
        }
}

static void on_stat(ipcb_client *c, int status, const ipcb_object_info *info, void *userdata) {
        (void)c, (void)info, (void)userdata;
        stat_status = status;
}

static void pump(ipcb_client *c, int fd, int want, int timeout_ms) {
        for (int i = 0; i < timeout_ms / 20 && (nev < want || stat_status == 1); i++) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                poll(&p, 1, 20);
                cr_assert_geq(ipcb_process(c), 0);
        }
}

FIXTURE_TEST(watch_restart, watches_survive, &d, release) {
        ipcb_client *c, *c2;
        ipcb_shm *s;
        int fd;

        start();
        cr_assert_eq(ipcb_connect(sock, &c), 0);
        fd = ipcb_get_fd(c);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ipcb_watch_add(c, IPCB_KIND_SHM, "r.", IPCB_WATCH_PREFIX, IPCB_WATCH_CREATED,
                                    on_event, NULL, NULL), 0);
        /* A request in flight when the broker goes. */
        stop();
        cr_assert_eq(ipcb_stat_async(c, IPCB_KIND_SHM, "r.none", on_stat, NULL, NULL), -ENOTCONN,
                     "no broker: the submission's reconnect fails");
        start();
        /* Something happens while c has not reconnected yet. */
        cr_assert_eq(ipcb_connect(sock, &c2), 0);
        cr_assert_eq(ipcb_shm_create(c2, "r.missed", 4096, NULL, &s), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
        /* c's next request reconnects and re-adds the watch. */
        cr_assert_eq(ipcb_stat_async(c, IPCB_KIND_SHM, "r.none", on_stat, NULL, NULL), 0);
        cr_assert_eq(ipcb_get_fd(c), fd, "the loop's descriptor survives a reconnect");
        pump(c, fd, 1, 3000);
        cr_assert_eq(stat_status, -ENOENT);
        cr_assert_eq(nev, 1);
        cr_assert_eq(evs[0].event, IPCB_WATCH_OVERFLOW, "missed events are reported as an overflow");
        /* Live again on the new broker. */
        cr_assert_eq(ipcb_shm_create(c2, "r.live", 4096, NULL, &s), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
        pump(c, fd, 2, 3000);
        cr_assert_eq(nev, 2);
        cr_assert_eq(evs[1].event, IPCB_WATCH_CREATED);
        cr_assert_str_eq(evs[1].name, "r.live");
        ipcb_disconnect(c2);
        ipcb_disconnect(c);
        stop();
}
