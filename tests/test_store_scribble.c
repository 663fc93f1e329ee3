/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_store_scribble.c: a writer's scribbles on the broker's pages do not
 * destroy the object at the next restart.  A uid that may only read and
 * write a root-owned persistent semaphore and segment (it may not unlink or
 * chown them) fills the semaphore page and the segment's lock page with
 * garbage, magic included, then goes away; after a restart (the fake
 * service manager of tests/fakemgr.h) both objects are still there, under
 * their catalog's owner and mode, the count is within the maximum, the
 * semaphore and the lock work, and the broker logs one line per object.
 *
 * The harness fixture (harness.h) adopts the first daemon: the last one is
 * back at its idle fd count once the objects are unlinked, and the test
 * process holds no more fds at the end than at the start. */
#include "harness.h"
#include "storefix.h"
#include "multiuid.h"

#include "ipcbroker.h"
#include "sempage.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SEG_SIZE 65536 /* not a page: the data mapping is told apart by its size */
#define SEM_MAX 10

static storefix fx;

static void setup(void) {
        storefix_setup(&fx, "/tmp/ipcbsc.XXXXXX", true);
}

static void start(void) {
        /* A grace much longer than the test: nothing here may wait for it. */
        static const char *const args[] = { "--restore-grace", "60", "-v", NULL };
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

TestSuite(store_scribble, .init = setup, .fini = teardown, .timeout = 60);

#define SCRIBBLE_TEST(name) FIXTURE_TEST(store_scribble, name, &fx.d, release)

static bool lock_page_stored(const fakemgr *fm, void *arg) {
        (void)arg;
        return fakemgr_count(fm, "ipcb-l-") == 1;
}

static bool nothing_stored(const fakemgr *fm, void *arg) {
        (void)arg;
        return fakemgr_count(fm, "ipcb-o-") == 0 && fakemgr_count(fm, "ipcb-l-") == 0;
}

static unsigned log_count(const char *what) {
        char line[1024];
        unsigned n = 0;
        FILE *f = fopen(fx.log, "r");

        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                n += strstr(line, what) != NULL;
        fclose(f);
        return n;
}

/* Fill every shared, writable one-page memfd mapping of this process (the
 * semaphore page and the lock page; the segment's data is larger) with
 * random bytes.  Returns how many pages it filled. */
static int scribble_pages(void) {
        char line[512];
        int n = 0;
        FILE *f = fopen("/proc/self/maps", "r");

        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f)) {
                unsigned long lo, hi;
                char perms[8];
                if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || !strstr(line, "memfd:") ||
                    strcmp(perms, "rw-s") != 0 || hi - lo != IPCB_PAGE_SIZE)
                        continue;
                uint8_t *p = (uint8_t *)lo;
                for (size_t off = 0; off < IPCB_PAGE_SIZE; off += 256)
                        if (getrandom(p + off, 256, 0) != 256)
                                return -errno;
                /* The magic, surely not the right one. */
                memcpy(p, "junk", 4);
                n++;
        }
        fclose(f);
        return n;
}

/* The writer (UID_C): opens both read-write, holds tokens through an undo
 * handle and the lock, scribbles on both pages, and goes away. */
static int writer(void *arg) {
        ipcb_client *c;
        ipcb_sem *s;
        ipcb_shm *p;
        int k;

        (void)arg;
        CHILD_CHECK(ipcb_connect(fx.sock, &c) == 0, "connect");
        CHILD_CHECK((k = ipcb_sem_open(c, "victim.sem", IPCB_SEM_UNDO, &s)) == 0, "sem open: %d", k);
        CHILD_CHECK((k = ipcb_sem_acquire(s)) == 0, "acquire: %d", k);
        CHILD_CHECK((k = ipcb_shm_open(c, "victim.shm", IPCB_READ_WRITE, &p)) == 0, "shm open: %d", k);
        CHILD_CHECK((k = ipcb_shm_lock(p)) >= 0, "lock: %d", k);
        CHILD_CHECK((k = ipcb_sync(c)) == 0, "sync: %d", k);
        CHILD_CHECK((k = scribble_pages()) == 2, "scribbled %d pages, not 2", k);
        _exit(0); /* no unlock, no close: the pages stay as they are */
}

/* A writer who may not unlink fills the semaphore page and the lock page
 * with garbage and waits for a restart: both objects survive it. */
SCRIBBLE_TEST(scribbled_pages_survive_restart) {
        ipcb_shm_options so = IPCB_SHM_OPTIONS_INIT;
        ipcb_sem_options mo = IPCB_SEM_OPTIONS_INIT;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ipcb_client *c;
        ipcb_shm *p;
        ipcb_sem *s;
        int k;

        SKIP_UNLESS_ROOT();
        start();
        cr_assert_eq(ipcb_connect(fx.sock, &c), 0);
        mo.flags = IPCB_SEM_PERSISTENT;
        mo.mode = 0666;
        mo.max = SEM_MAX;
        cr_assert_eq(ipcb_sem_create(c, "victim.sem", 5, &mo, &s), 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
        so.flags = IPCB_SHM_PERSISTENT;
        so.mode = 0666;
        cr_assert_eq(ipcb_shm_create(c, "victim.shm", SEG_SIZE, &so, &p), 0);
        cr_assert_eq(ipcb_shm_lock(p), 0);
        cr_assert_eq(ipcb_shm_unlock(p), 0);
        cr_assert_eq(ipcb_shm_close(p), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        ipcb_disconnect(c);

        /* The writer may neither unlink nor chown them. */
        RUN_AS(UID_C, false, writer, NULL);
        cr_assert(fakemgr_pump_until(&fx.m, lock_page_stored, NULL, 5000), "lock page not stored");

        stop();
        start();
        cr_assert_eq(ipcb_connect(fx.sock, &c), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, "victim.sem", &info), 0, "semaphore lost: %s",
                     log_count("victim.sem") ? "see the log" : "no log line");
        cr_assert_eq(info.uid, 0u);
        cr_assert_eq(info.mode, 0666u);
        cr_assert_leq(info.sem_value, SEM_MAX, "count %u above max %u", info.sem_value, SEM_MAX);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "victim.shm", &info), 0, "segment lost");
        cr_assert_eq(info.uid, 0u);
        cr_assert_eq(info.size, (uint64_t)SEG_SIZE);
        /* One warning for each object. */
        cr_assert_eq(log_count("written over"), 2, "not one warning per object");
        cr_assert_eq(log_count("semaphore 'victim.sem' was written over"), 1);
        cr_assert_eq(log_count("lock page of 'victim.shm' was written over"), 1);
        cr_assert_eq(log_count("dropp"), 0, "something was dropped");

        /* The semaphore works: a token out and back, within the maximum. */
        cr_assert_eq(ipcb_sem_open(c, "victim.sem", 0, &s), 0);
        unsigned v = ipcb_sem_value(s);
        cr_assert_leq(v, SEM_MAX);
        if (v > 0) {
                cr_assert_eq(ipcb_sem_try_acquire(s, 1000), 0);
                cr_assert_eq(ipcb_sem_release(s, 1), 0);
        } else {
                cr_assert_eq(ipcb_sem_release(s, 1), 0);
                cr_assert_eq(ipcb_sem_try_acquire(s, 1000), 0);
        }
        cr_assert_eq((unsigned)ipcb_sem_value(s), v);
        cr_assert_eq(ipcb_sem_close(s), 0);

        /* The lock works at once, not only at the grace period's end. */
        cr_assert_eq(ipcb_shm_open(c, "victim.shm", IPCB_READ_WRITE, &p), 0);
        k = ipcb_shm_try_lock(p, 2000);
        cr_assert(k == 0 || k == IPCB_OWNER_DIED, "try_lock after the scribble: %d (%s)", k,
                  k < 0 ? ipcb_strerror(k) : "ok");
        cr_assert_eq(ipcb_shm_unlock(p), 0);
        cr_assert_eq(ipcb_shm_try_lock(p, 0), 0, "not normal again");
        cr_assert_eq(ipcb_shm_unlock(p), 0);
        cr_assert_eq(ipcb_shm_close(p), 0);

        cr_assert_eq(ipcb_sem_unlink(c, "victim.sem"), 0);
        cr_assert_eq(ipcb_unlink(c, "victim.shm"), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        ipcb_disconnect(c);
        fakemgr_pump_until(&fx.m, nothing_stored, NULL, 5000);
        fixture_check_idle(&fx.d);
        stop();
}
