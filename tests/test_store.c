/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_store.c: the fd store and restore code against a fake service
 * manager.  The test binds a datagram socket, starts ipcbrokerd with
 * NOTIFY_SOCKET pointing at it, collects READY/STATUS/STOPPING and every
 * FDSTORE=1 message with its fd (FDSTOREREMOVE drops them), then re-executes
 * the daemon with those fds in LISTEN_FDS/LISTEN_FDNAMES, the way systemd
 * does after `systemctl restart`.  Tampered stores (wrong fd types, sizes,
 * broken catalog, unclaimed fds) must be logged, dropped, and served past;
 * passed sockets of the wrong type must be refused.
 *
 * The harness fixture (harness.h) adopts the first daemon of each test (an
 * empty store): its idle fd count is what the last daemon of the test must
 * be back at before its final stop (fixture_check_idle), once the test's
 * clients are gone and its objects unlinked.  Every stop checks exit status
 * 0 and STOPPING=1 itself (the fake manager's, not the fixture's stop), and
 * at the end the test process holds no more fds than before setup: the fake
 * manager's store and notify socket are closed first. */
#include "harness.h"
#include "fakemgr.h"

#include "ipcbroker.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXSTORE 64

static fakemgr m;
static char sock[96], logpath[96];
static const char *serves; /* the socket the daemon serves: sock, or a passed one */
static ipcbd d;            /* the fixture, following m.pid */

static void setup(void) {
        fixture_begin_bare(&d);
        fakemgr_init(&m, "/tmp/ipcbst.XXXXXX", MAXSTORE);
        snprintf(sock, sizeof(sock), "%s/ipcb.sock", m.dir);
        snprintf(logpath, sizeof(logpath), "%s/log", m.dir);
        serves = sock;
}

/* Start the daemon with the store's fds (plus extra, named) in LISTEN_FDS. */
static void start(const int *extra, const char *const *extra_names, unsigned nextra,
                  const char *watchdog_usec) {
        static const char *const args[] = { "--restore-grace", "1", "-v", NULL };
        fakemgr_exec x = { .sock = sock, .args = args, .log = logpath, .extra_fds = extra,
                           .extra_names = extra_names, .n_extra = nextra,
                           .watchdog_usec = watchdog_usec };
        pid_t pid = fakemgr_start(&m, &x);

        /* The first daemon of the test gives the idle fd count; the fixture
         * follows the later ones with the same count. */
        if (d.base_fds == 0)
                fixture_adopt(&d, pid, serves);
        else
                d.pid = pid;
}

static void stop(void) {
        int status;

        if (m.pid <= 0)
                return;
        status = fakemgr_stop(&m);
        d.pid = 0;
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "daemon exit status 0x%x", status);
        cr_assert(m.stopping, "no STOPPING=1");
}

/* The last stop of a test: the daemon back at the first one's idle count. */
static void stop_idle(void) {
        fixture_check_idle(&d);
        stop();
}

/* What every test holds until its end: the fake manager's store and its
 * notify socket. */
static void release(void) {
        fakemgr_close(&m);
}

/* After every test (the fixture's end has run unless the test failed). */
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

TestSuite(store, .init = setup, .fini = teardown, .timeout = 60);

/* fixture_end (harness.h) after every body: the test process's fds back
 * (the daemon is stopped by then). */
#define STORE_TEST(name) FIXTURE_TEST(store, name, &d, release)

static ipcb_shm *mkseg(ipcb_client *c, const char *name, size_t size, unsigned flags, char fill) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_shm *s = NULL;

        o.mode = 0644;
        o.flags = flags;
        cr_assert_eq(ipcb_shm_create(c, name, size, &o, &s), 0, "create %s", name);
        memset(ipcb_shm_data(s), fill, size);
        return s;
}

static ipcb_sem *mksem(ipcb_client *c, const char *name, unsigned initial, unsigned flags) {
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
        ipcb_sem *s = NULL;

        o.mode = 0600;
        o.flags = flags;
        cr_assert_eq(ipcb_sem_create(c, name, initial, &o, &s), 0, "create sem %s", name);
        return s;
}

static bool exists(ipcb_client *c, int kind, const char *name) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        return ipcb_stat(c, kind, name, &info) == 0;
}

static bool no_objects_stored(const fakemgr *fm, void *arg) {
        (void)arg;
        return fakemgr_count(fm, "ipcb-o-") == 0;
}

/* What restore_round_trip expects before its first stop (its asserts say
 * which part is missing if the wait runs out). */
static bool round_trip_stored(const fakemgr *fm, void *arg) {
        (void)arg;
        return fm->watchdog > 0 && fakemgr_count(fm, "ipcb-catalog") == 1 &&
               fakemgr_count(fm, "ipcb-o-") == 4 && fakemgr_count(fm, "ipcb-l-") == 1 &&
               strstr(fm->last_status, "client") && strstr(fm->last_status, "object");
}

/* The whole round trip: store, stop, restore; contents, counts, handles. */
STORE_TEST(restore_round_trip) {
        ipcb_client *c, *c2;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ipcb_sem *u;

        start(NULL, NULL, 0, "200000");
        cr_assert_eq(ipcb_connect(sock, &c), 0);
        ipcb_shm *p = mkseg(c, "keep", 8192, IPCB_SHM_PERSISTENT, 'k');
        ipcb_shm *g = mkseg(c, "grow", 4096, IPCB_SHM_PERSISTENT | IPCB_SHM_GROWABLE, 'g');
        ipcb_shm *t = mkseg(c, "transient", 4096, 0, 't');
        ipcb_shm *gone = mkseg(c, "dropped", 4096, 0, 'd');
        ipcb_sem *s = mksem(c, "count", 5, IPCB_SEM_PERSISTENT);
        cr_assert_eq(ipcb_sem_open(c, "count", IPCB_SEM_UNDO, &u), 0);
        cr_assert_eq(ipcb_sem_acquire(u), 0);
        cr_assert_eq(ipcb_sem_acquire(s), 0); /* plain: stays taken */
        /* A second undo holder that stays silent after the restart. */
        ipcb_client *c3;
        ipcb_sem *u3;
        cr_assert_eq(ipcb_connect(sock, &c3), 0);
        cr_assert_eq(ipcb_sem_open(c3, "count", IPCB_SEM_UNDO, &u3), 0);
        cr_assert_eq(ipcb_sem_acquire(u3), 0);
        cr_assert_eq(ipcb_sem_value(s), 2);
        cr_assert_eq(ipcb_shm_lock(p), 0);
        cr_assert_eq(ipcb_shm_unlock(p), 0);
        cr_assert_eq(ipcb_shm_close(gone), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        fakemgr_pump_until(&m, round_trip_stored, NULL, 5000);
        cr_assert(m.watchdog, "no WATCHDOG=1 with WATCHDOG_USEC set");
        cr_assert(strstr(m.last_status, "client") && strstr(m.last_status, "object"), "STATUS=%s", m.last_status);
        /* catalog + 4 objects + 1 lock page; the closed transient is removed */
        cr_assert_eq(fakemgr_count(&m, "ipcb-catalog"), 1);
        cr_assert_eq(fakemgr_count(&m, "ipcb-o-"), 4, "stored objects: %u", fakemgr_count(&m, "ipcb-o-"));
        cr_assert_eq(fakemgr_count(&m, "ipcb-l-"), 1);

        stop();
        cr_assert_eq(fakemgr_count(&m, "ipcb-o-"), 4, "shutdown must keep the store");
        start(NULL, NULL, 0, NULL);
        cr_assert(file_contains(logpath, "restored 2 segments and 1 semaphores") ||
                          file_contains(logpath, "restored 3 segments and 1 semaphores"),
                  "restore not logged");

        /* The old client's next call reconnects and re-opens its handles. */
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "keep", &info), 0);
        cr_assert_eq(info.size, 8192);
        cr_assert_eq(info.mode, 0644);
        cr_assert(info.flags & IPCB_SHM_PERSISTENT);
        cr_assert_eq(info.handles, 1, "handle not re-opened: %u", info.handles);
        /* Mappings are the same memory. */
        ((char *)ipcb_shm_data(p))[0] = 'X';
        cr_assert_eq(ipcb_connect(sock, &c2), 0);
        ipcb_shm *p2;
        cr_assert_eq(ipcb_shm_open(c2, "keep", IPCB_READ_ONLY, &p2), 0);
        cr_assert_eq(((char *)ipcb_shm_data(p2))[0], 'X');
        cr_assert_eq(((char *)ipcb_shm_data(p2))[8191], 'k');
        cr_assert_eq(ipcb_shm_close(p2), 0);
        cr_assert(exists(c2, IPCB_KIND_SHM, "grow"));
        /* The lock page survived: still usable through the old handle. */
        cr_assert_eq(ipcb_shm_lock(p), 0);
        cr_assert_eq(ipcb_shm_unlock(p), 0);
        /* Semaphore: the plain token stays taken, and so do the undo tokens:
         * their slots are kept for their holders (who are alive). */
        cr_assert_eq(ipcb_stat(c2, IPCB_KIND_SEM, "count", &info), 0);
        cr_assert_eq(info.sem_value, 2, "value %u", info.sem_value);
        cr_assert_eq(info.sem_undo_held, 2);
        /* The old undo handle reclaims its slot: its token is still its own. */
        cr_assert_eq(ipcb_sem_held(u), 1);
        cr_assert_eq(ipcb_sem_release(u, 1), 0);
        cr_assert_eq(ipcb_sem_held(u), 0);
        cr_assert_eq(ipcb_sem_value(s), 3);
        cr_assert_eq(ipcb_sem_acquire(u), 0);
        cr_assert_eq(ipcb_sem_held(u), 1);
        cr_assert_eq(ipcb_sem_value(s), 2);
        cr_assert_eq(ipcb_sem_release(s, 1), 0);
        /* The transient segment was re-opened by its holder: it outlives the grace. */
        usleep(1500 * 1000);
        /* The silent holder did not reclaim within the grace: its token is
         * given back as for a dead holder; the reclaimed one stays held. */
        cr_assert_eq(ipcb_stat(c2, IPCB_KIND_SEM, "count", &info), 0);
        cr_assert_eq(info.sem_value, 4, "value %u after the grace", info.sem_value);
        cr_assert_eq(info.sem_undo_held, 1);
        cr_assert_eq(ipcb_sem_close(u3), 0);
        ipcb_disconnect(c3);
        cr_assert(exists(c2, IPCB_KIND_SHM, "transient"), "held transient segment lost");
        cr_assert(!exists(c2, IPCB_KIND_SHM, "dropped"));

        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
        cr_assert_eq(ipcb_shm_close(t), 0);
        cr_assert_eq(ipcb_shm_close(g), 0);
        cr_assert_eq(ipcb_shm_close(p), 0);
        cr_assert_eq(ipcb_unlink(c2, "keep"), 0);
        cr_assert_eq(ipcb_unlink(c2, "grow"), 0);
        cr_assert_eq(ipcb_sem_unlink(c2, "count"), 0);
        cr_assert_eq(ipcb_sync(c), 0); /* c's closes were sent without a reply */
        cr_assert_eq(ipcb_sync(c2), 0);
        fakemgr_pump_until(&m, no_objects_stored, NULL, 5000);
        cr_assert_eq(fakemgr_count(&m, "ipcb-o-"), 0, "unlinked objects left in the store");
        ipcb_disconnect(c2);
        ipcb_disconnect(c);
        stop_idle();
}

/* What an undo handle owes (ipcb_sem_release_undo) is the broker's memory:
 * its holder tells the restarted broker when it reclaims its slot, and the
 * debt is taken back when the handle goes. */
STORE_TEST(owed_tokens_survive_restart) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ipcb_client *c, *c2;
        ipcb_sem *s, *u;

        start(NULL, NULL, 0, NULL);
        cr_assert_eq(ipcb_connect(sock, &c), 0);
        s = mksem(c, "owed", 0, IPCB_SEM_PERSISTENT);
        cr_assert_eq(ipcb_sem_open(c, "owed", IPCB_SEM_UNDO, &u), 0);
        cr_assert_eq(ipcb_sem_release_undo(u, 2), 0);
        cr_assert_eq(ipcb_sem_owed(u), 2);
        cr_assert_eq(ipcb_sem_value(s), 2);
        cr_assert_eq(ipcb_sync(c), 0);
        stop();
        start(NULL, NULL, 0, NULL);
        /* Its next call reconnects, reclaims the slot, and says what it owes. */
        cr_assert_eq(ipcb_sem_release_undo(u, 0), 0);
        cr_assert_eq(ipcb_sem_owed(u), 2, "the new broker was not told: %llu",
                     (unsigned long long)ipcb_sem_owed(u));
        cr_assert_eq(ipcb_sem_value(s), 2);
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_connect(sock, &c2), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_stat(c2, IPCB_KIND_SEM, "owed", &info), 0);
        cr_assert_eq(info.sem_value, 0, "owed tokens not taken back after the restart: %u",
                     info.sem_value);
        cr_assert_eq(ipcb_sem_close(s), 0);
        cr_assert_eq(ipcb_sem_unlink(c2, "owed"), 0);
        cr_assert_eq(ipcb_sync(c2), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        fakemgr_pump_until(&m, no_objects_stored, NULL, 5000);
        ipcb_disconnect(c2);
        ipcb_disconnect(c);
        stop_idle();
}

static unsigned sem_value_of(ipcb_client *c, const char *name) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, name, &info), 0);
        return info.sem_value;
}

/* The connection was lost (the broker settled the handle, taking what it
 * owed), then the broker restarted: the reconnected handle must not owe it
 * again. */
STORE_TEST(owed_tokens_not_taken_twice) {
        ipcb_client *c, *c2;
        ipcb_sem *s, *u;

        start(NULL, NULL, 0, NULL);
        cr_assert_eq(ipcb_connect(sock, &c), 0);
        cr_assert_eq(ipcb_connect(sock, &c2), 0);
        s = mksem(c2, "twice", 0, IPCB_SEM_PERSISTENT);
        cr_assert_eq(ipcb_sem_open(c, "twice", IPCB_SEM_UNDO, &u), 0);
        cr_assert_eq(ipcb_sem_release_undo(u, 3), 0);
        cr_assert_eq(ipcb_sem_release(s, 2), 0);
        cr_assert_eq(shutdown(broker_socket_fd(sock), SHUT_RDWR), 0); /* c's connection (the first) */
        for (int i = 0; i < 500 && sem_value_of(c2, "twice") != 2; i++)
                usleep(10000);
        cr_assert_eq(sem_value_of(c2, "twice"), 2, "the hang-up did not take what was owed");
        ipcb_disconnect(c2);
        cr_assert_eq(ipcb_sync(c), 0);
        stop();
        start(NULL, NULL, 0, NULL);
        cr_assert_eq(ipcb_connect(sock, &c2), 0);
        cr_assert_eq(ipcb_sem_release_undo(u, 0), 0); /* reconnects */
        cr_assert_eq(ipcb_sem_owed(u), 0);
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        usleep(1500 * 1000); /* past the grace period */
        cr_assert_eq(sem_value_of(c2, "twice"), 2, "owed tokens taken twice");
        cr_assert_eq(ipcb_sem_close(s), 0);
        cr_assert_eq(ipcb_sem_unlink(c2, "twice"), 0);
        cr_assert_eq(ipcb_sync(c2), 0);
        fakemgr_pump_until(&m, no_objects_stored, NULL, 5000);
        ipcb_disconnect(c2);
        ipcb_disconnect(c);
        stop_idle();
}

/* A holder that does not come back within the grace period: what it owed
 * is taken when the period ends, as its held tokens are given back. */
STORE_TEST(owed_tokens_of_a_silent_holder_taken_at_grace_end) {
        ipcb_client *c, *c2;
        ipcb_sem *s, *u;

        start(NULL, NULL, 0, NULL);
        cr_assert_eq(ipcb_connect(sock, &c), 0);
        s = mksem(c, "silent", 1, IPCB_SEM_PERSISTENT);
        cr_assert_eq(ipcb_sem_open(c, "silent", IPCB_SEM_UNDO, &u), 0);
        cr_assert_eq(ipcb_sem_release_undo(u, 2), 0);
        cr_assert_eq(ipcb_sem_value(s), 3);
        cr_assert_eq(ipcb_sync(c), 0);
        stop();
        start(NULL, NULL, 0, NULL);
        cr_assert_eq(ipcb_connect(sock, &c2), 0);
        cr_assert_eq(sem_value_of(c2, "silent"), 3, "taken before the grace period ended");
        usleep(1500 * 1000);
        cr_assert_eq(sem_value_of(c2, "silent"), 1, "what the silent holder owed was not taken");
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
        cr_assert_eq(ipcb_sem_unlink(c2, "silent"), 0);
        cr_assert_eq(ipcb_sync(c2), 0);
        fakemgr_pump_until(&m, no_objects_stored, NULL, 5000);
        ipcb_disconnect(c2);
        ipcb_disconnect(c);
        stop_idle();
}

/* A transient object nobody re-opens is destroyed after the grace period. */
STORE_TEST(transient_without_holder_expires) {
        ipcb_client *c;
        pid_t child;
        int st, pfd[2], qfd[2];

        start(NULL, NULL, 0, NULL);
        /* A holder that will not call the library again after the restart. */
        cr_assert_eq(pipe(pfd), 0);
        cr_assert_eq(pipe(qfd), 0);
        child = test_fork();
        if (child == 0) {
                ipcb_client *cc;
                char b;
                if (ipcb_connect(sock, &cc) < 0)
                        _exit(1);
                ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
                ipcb_shm *s;
                if (ipcb_shm_create(cc, "lonely", 4096, &o, &s) < 0)
                        _exit(2);
                (void)!write(pfd[1], "x", 1);
                (void)!read(qfd[0], &b, 1);
                _exit(0);
        }
        char b;
        cr_assert_eq(read(pfd[0], &b, 1), 1);
        stop();
        start(NULL, NULL, 0, NULL);
        cr_assert_eq(ipcb_connect(sock, &c), 0);
        cr_assert(exists(c, IPCB_KIND_SHM, "lonely"), "restored transient missing during grace");
        usleep(1600 * 1000);
        cr_assert(!exists(c, IPCB_KIND_SHM, "lonely"), "unclaimed transient kept after grace");
        cr_assert(file_contains(logpath, "were not re-opened"));
        (void)!write(qfd[1], "x", 1);
        waitpid(child, &st, 0);
        close(pfd[0]);
        close(pfd[1]);
        close(qfd[0]);
        close(qfd[1]);
        ipcb_disconnect(c);
        stop_idle();
}

static const char *stored_name_of(ipcb_client *c, const char *obj, int kind) {
        /* Objects get catalog slots in creation order from 1. */
        (void)c;
        (void)kind;
        return obj;
}

STORE_TEST(tampered_fds_are_dropped) {
        ipcb_client *c;
        int pfd[2];

        start(NULL, NULL, 0, NULL);
        cr_assert_eq(ipcb_connect(sock, &c), 0);
        /* slots 1..4 in creation order */
        ipcb_shm_close(mkseg(c, "a-pipe", 4096, IPCB_SHM_PERSISTENT, 'a'));
        ipcb_shm_close(mkseg(c, "b-size", 4096, IPCB_SHM_PERSISTENT, 'b'));
        ipcb_sem_close(mksem(c, "c-sem", 1, IPCB_SEM_PERSISTENT));
        ipcb_shm_close(mkseg(c, "d-good", 4096, IPCB_SHM_PERSISTENT, 'd'));
        cr_assert_eq(ipcb_sync(c), 0);
        ipcb_disconnect(c);
        fakemgr_drain(&m, 200);
        stop();
        (void)stored_name_of;

        /* 1: a pipe instead of a memfd; 2: a memfd of the wrong size;
         * 3: a segment-sized memfd where a semaphore page should be. */
        cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
        close(pfd[1]);
        cr_assert_eq(fakemgr_replace(&m, "ipcb-o-1", pfd[0]), 0);
        int mf = memfd_create("fake", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        cr_assert_eq(ftruncate(mf, 8192), 0);
        cr_assert_eq(fakemgr_replace(&m, "ipcb-o-2", mf), 0);
        int mf2 = memfd_create("fake2", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        cr_assert_eq(ftruncate(mf2, 4096), 0); /* right size, no seals, zero magic */
        cr_assert_eq(fakemgr_replace(&m, "ipcb-o-3", mf2), 0);
        /* and an fd nobody claims */
        int ev = eventfd(0, EFD_CLOEXEC);
        const char *evname = "ipcb-o-77";

        start(&ev, &evname, 1, NULL);
        close(ev);
        cr_assert_eq(ipcb_connect(sock, &c), 0);
        cr_assert(!exists(c, IPCB_KIND_SHM, "a-pipe"));
        cr_assert(!exists(c, IPCB_KIND_SHM, "b-size"));
        cr_assert(!exists(c, IPCB_KIND_SEM, "c-sem"));
        cr_assert(exists(c, IPCB_KIND_SHM, "d-good"), "the good segment was dropped too");
        cr_assert(file_contains(logpath, "'a-pipe'): not a regular file"));
        cr_assert(file_contains(logpath, "'b-size'): "));
        cr_assert(file_contains(logpath, "'c-sem'): "));
        cr_assert(file_contains(logpath, "dropping ipcb-o-77"));
        fakemgr_drain(&m, 200);
        /* What was dropped left the store too. */
        cr_assert_eq(fakemgr_count(&m, "ipcb-o-"), 1, "store holds %u objects", fakemgr_count(&m, "ipcb-o-"));
        cr_assert_eq(ipcb_unlink(c, "d-good"), 0);
        ipcb_disconnect(c);
        stop_idle();
}

STORE_TEST(broken_catalog_drops_everything_and_serves) {
        ipcb_client *c;

        start(NULL, NULL, 0, NULL);
        cr_assert_eq(ipcb_connect(sock, &c), 0);
        ipcb_shm_close(mkseg(c, "x", 4096, IPCB_SHM_PERSISTENT, 'x'));
        cr_assert_eq(ipcb_sync(c), 0);
        ipcb_disconnect(c);
        fakemgr_drain(&m, 200);
        stop();
        int cat = fakemgr_find(&m, "ipcb-catalog");
        if (cat >= 0)
                cr_assert_eq(pwrite(cat, "garbage!", 8, 0), 8);
        start(NULL, NULL, 0, NULL);
        cr_assert(file_contains(logpath, "catalog is broken"));
        cr_assert_eq(ipcb_connect(sock, &c), 0);
        cr_assert(!exists(c, IPCB_KIND_SHM, "x"));
        /* It serves, and stores new objects in a new catalog. */
        ipcb_shm_close(mkseg(c, "y", 4096, IPCB_SHM_PERSISTENT, 'y'));
        cr_assert_eq(ipcb_sync(c), 0);
        fakemgr_drain(&m, 200);
        cr_assert_eq(fakemgr_count(&m, "ipcb-catalog"), 1);
        cr_assert_eq(fakemgr_count(&m, "ipcb-o-"), 1);
        cr_assert_eq(ipcb_unlink(c, "y"), 0);
        ipcb_disconnect(c);
        stop_idle();
}

/* Two passed sockets are served; one of the wrong type is refused. */
STORE_TEST(passed_sockets) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char path2[128];
        ipcb_client *c;
        int fds[3];
        const char *names[3] = { "main.socket", "second.socket", "bogus.socket" };

        for (int i = 0; i < 2; i++) {
                fds[i] = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
                snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s%d.sock", m.dir, i);
                cr_assert_eq(bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
                cr_assert_eq(listen(fds[i], 16), 0);
        }
        fds[2] = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        snprintf(path2, sizeof(path2), "%s/s0.sock", m.dir);
        serves = path2;
        start(fds, names, 3, NULL);
        for (int i = 0; i < 3; i++)
                close(fds[i]);
        cr_assert(file_contains(logpath, "refusing passed fd 5 (bogus.socket): not a listening SOCK_SEQPACKET"));
        cr_assert(access(sock, F_OK) < 0, "bound its own socket although sockets were passed");
        for (int i = 0; i < 2; i++) {
                snprintf(path2, sizeof(path2), "%s/s%d.sock", m.dir, i);
                cr_assert_eq(ipcb_connect(path2, &c), 0, "socket %d not served", i);
                cr_assert_eq(ipcb_sync(c), 0);
                ipcb_disconnect(c);
                unlink(path2);
        }
        stop_idle();
}

/* Only a wrong socket passed: the daemon refuses to start. */
STORE_TEST(only_bad_socket_is_fatal) {
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), status;
        const char *name = "bogus.socket";
        char nb[8], pidbuf[16];
        pid_t pid;

        fflush(NULL);
        pid = fork();
        if (pid == 0) {
                int logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
                dup2(fd, 3);
                dup2(logfd, 2);
                close_range(4, ~0u, 0);
                snprintf(pidbuf, sizeof(pidbuf), "%d", (int)getpid());
                snprintf(nb, sizeof(nb), "1");
                setenv("LISTEN_PID", pidbuf, 1);
                setenv("LISTEN_FDS", nb, 1);
                setenv("LISTEN_FDNAMES", name, 1);
                execl(IPCBROKERD_PATH, IPCBROKERD_PATH, "--socket", sock, (char *)NULL);
                _exit(127);
        }
        close(fd);
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status 0x%x", status);
        cr_assert(file_contains(logpath, "refusing passed fd 3 (bogus.socket)"));
}

/* The names ipcb_list reports, in its order, space-separated. */
static int add_name(const ipcb_object_info *info, void *arg) {
        char *names = arg;
        size_t len = strlen(names);

        snprintf(names + len, 256 - len, "%s%s", len ? " " : "", info->name);
        return 0;
}

static void list_names(ipcb_client *c, char names[256]) {
        names[0] = '\0';
        cr_assert_eq(ipcb_list(c, 0, add_name, names), 0);
}

static unsigned want_stored;

static bool objects_stored(const fakemgr *fm, void *arg) {
        (void)arg;
        return fakemgr_count(fm, "ipcb-o-") == want_stored;
}

/* Slots are reused (an unlinked object's slot goes to the next create), so
 * slot order is not creation order.  A restart keeps creation order, which
 * is what LIST reports, and so does a second restart after more creates.
 * Before, restored objects came back in reverse slot order. */
STORE_TEST(creation_order_survives_restarts) {
        static const char *const made[] = { "a", "b", "c", "d" };
        char names[256];
        ipcb_client *c;

        start(NULL, NULL, 0, NULL);
        cr_assert_eq(ipcb_connect(sock, &c), 0);
        for (unsigned i = 0; i < 4; i++)
                cr_assert_eq(ipcb_shm_close(mkseg(c, made[i], 4096, IPCB_SHM_PERSISTENT, 'x')), 0);
        cr_assert_eq(ipcb_unlink(c, "b"), 0);
        cr_assert_eq(ipcb_shm_close(mkseg(c, "e", 4096, IPCB_SHM_PERSISTENT, 'x')), 0); /* b's slot */
        cr_assert_eq(ipcb_unlink(c, "a"), 0);
        cr_assert_eq(ipcb_sem_close(mksem(c, "f", 1, IPCB_SEM_PERSISTENT)), 0); /* a's slot */
        list_names(c, names);
        cr_assert_str_eq(names, "c d e f");
        want_stored = 4;
        cr_assert(fakemgr_pump_until(&m, objects_stored, NULL, 5000));
        cr_assert_eq(fakemgr_count(&m, "ipcb-order"), 1);

        stop();
        start(NULL, NULL, 0, NULL);
        list_names(c, names);
        cr_assert_str_eq(names, "c d e f", "after a restart: %s", names);
        cr_assert_eq(ipcb_unlink(c, "d"), 0);
        cr_assert_eq(ipcb_shm_close(mkseg(c, "g", 4096, IPCB_SHM_PERSISTENT, 'x')), 0); /* d's slot */
        list_names(c, names);
        cr_assert_str_eq(names, "c e f g");
        cr_assert(fakemgr_pump_until(&m, objects_stored, NULL, 5000));

        stop();
        start(NULL, NULL, 0, NULL);
        list_names(c, names);
        cr_assert_str_eq(names, "c e f g", "after a second restart: %s", names);

        /* A store without the order table (as a broker before it left):
         * slot order, and a new table in the store. */
        stop();
        cr_assert_eq(fakemgr_remove(&m, "ipcb-order"), 1);
        start(NULL, NULL, 0, NULL);
        list_names(c, names);
        cr_assert_str_eq(names, "f e c g", "in slot order: %s", names);
        fakemgr_drain(&m, 200);
        cr_assert_eq(fakemgr_count(&m, "ipcb-order"), 1);

        cr_assert_eq(ipcb_unlink(c, "c"), 0);
        cr_assert_eq(ipcb_unlink(c, "e"), 0);
        cr_assert_eq(ipcb_sem_unlink(c, "f"), 0);
        cr_assert_eq(ipcb_unlink(c, "g"), 0);
        ipcb_disconnect(c);
        stop_idle();
}

/* The order table is the broker's, but nothing vouches for its values: a
 * place no broker could have written (here the largest) counts as none,
 * in slot order ahead of the rest.  Taken at its word, the next place
 * after it wrapped to 0, and every later object sorted before the
 * restored ones at the next restart. */
STORE_TEST(order_table_written_over) {
        static const uint64_t far = ~0ull;
        char names[256];
        ipcb_client *c;

        start(NULL, NULL, 0, NULL);
        cr_assert_eq(ipcb_connect(sock, &c), 0);
        cr_assert_eq(ipcb_shm_close(mkseg(c, "a", 4096, IPCB_SHM_PERSISTENT, 'x')), 0); /* slot 0 */
        cr_assert_eq(ipcb_shm_close(mkseg(c, "b", 4096, IPCB_SHM_PERSISTENT, 'x')), 0); /* slot 1 */
        want_stored = 2;
        cr_assert(fakemgr_pump_until(&m, objects_stored, NULL, 5000));
        stop();
        int order = fakemgr_find(&m, "ipcb-order");
        cr_assert_geq(order, 0);
        cr_assert_eq(pwrite(order, &far, sizeof(far), 8), (ssize_t)sizeof(far)); /* b's */
        start(NULL, NULL, 0, NULL);
        list_names(c, names);
        cr_assert_str_eq(names, "b a", "b unplaced, first: %s", names);
        cr_assert_eq(ipcb_shm_close(mkseg(c, "c", 4096, IPCB_SHM_PERSISTENT, 'x')), 0);
        want_stored = 3;
        cr_assert(fakemgr_pump_until(&m, objects_stored, NULL, 5000));
        stop();
        start(NULL, NULL, 0, NULL);
        list_names(c, names);
        cr_assert_str_eq(names, "b a c", "after a second restart: %s", names);
        cr_assert_eq(ipcb_unlink(c, "a"), 0);
        cr_assert_eq(ipcb_unlink(c, "b"), 0);
        cr_assert_eq(ipcb_unlink(c, "c"), 0);
        ipcb_disconnect(c);
        stop_idle();
}
