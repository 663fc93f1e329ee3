/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_watch.c: watches against a real ipcbrokerd: the events of a name and
 * of a prefix (created, unlinked, destroyed, access changed, frozen), their
 * order and fields, removal, the bounds per connection and per uid, a
 * watcher of another uid, a watcher that stops reading (the daemon neither
 * waits nor grows; the watcher gets an overflow and then events again), a
 * client that sends an event itself, owner-died events (a lock holder or
 * an undo holder killed), and the waits built on watches
 * (ipcb_shm_open_wait, ipcb_sem_open_wait and their async variants). */
#include "harness.h"
#include "multiuid.h"

#include "ipcbroker.h"
#include "proto.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static ipcbd d;
static ipcb_client *c, *c2;

static void setup(void) {
        fixture_begin(&d, NULL);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        cr_assert_eq(ipcb_connect(d.sock, &c2), 0);
}

static void release(void) {
        ipcb_disconnect(c);
        ipcb_disconnect(c2);
        c = c2 = NULL;
}

static void teardown(void) {
        release();
        fixture_cleanup(&d);
}

#define WATCH_TEST(name, ...) \
        FIXTURE_TEST(watch, name, &d, release, .init = setup, .fini = teardown, .timeout = 60, \
                     ##__VA_ARGS__)

#define EV_MAX 20000
typedef struct seen {
        uint64_t watch;
        unsigned event;
        int kind;
        char name[IPCB_NAME_MAX + 1];
        uint64_t id;
        uid_t uid;
        gid_t gid;
        unsigned mode, seals;
        int tag;
} seen;
static seen evs[EV_MAX];
static int nev;

static void on_event(ipcb_client *cl, const ipcb_watch_event *ev, void *userdata) {
        (void)cl;
        cr_assert_lt(nev, EV_MAX);
        cr_assert_geq(ev->struct_size, sizeof(*ev));
        seen *s = &evs[nev++];
        *s = (seen){ .watch = ev->watch, .event = ev->event, .kind = ev->kind, .id = ev->id,
                     .uid = ev->uid, .gid = ev->gid, .mode = ev->mode, .seals = ev->seals,
                     .tag = (int)(intptr_t)userdata };
        snprintf(s->name, sizeof(s->name), "%s", ev->name);
}

/* Poll c's fd and process until n events were seen (or timeout_ms). */
static void pump(ipcb_client *cl, int n, int timeout_ms) {
        int fd = ipcb_get_fd(cl);
        struct timespec t0, t;

        cr_assert_geq(fd, 0);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (nev < n) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                poll(&p, 1, 50);
                cr_assert_geq(ipcb_process(cl), 0);
                clock_gettime(CLOCK_MONOTONIC, &t);
                if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > timeout_ms)
                        break;
        }
}

/* After a round trip on the producer and one on the watcher, every event
 * the producer caused has reached the watcher's socket. */
static void settle(void) {
        cr_assert_eq(ipcb_sync(c2), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        for (int i = 0; i < 3; i++)
                cr_assert_geq(ipcb_process(c), 0);
}

#define TAG(n) ((void *)(intptr_t)(n))

/* A child that takes the segment's lock (lock != 0) or n undo tokens of
 * the semaphore, says so on the pipe, and waits to be killed. */
static pid_t holder(const char *name, bool lock, unsigned n) {
        int ready[2];
        char x;

        cr_assert_eq(pipe(ready), 0);
        pid_t pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_shm *s;
                ipcb_sem *m;
                if (ipcb_connect(d.sock, &cc) < 0)
                        _exit(1);
                if (lock && (ipcb_shm_open(cc, name, IPCB_READ_WRITE, &s) < 0 || ipcb_shm_lock(s) != 0))
                        _exit(2);
                if (!lock && (ipcb_sem_open(cc, name, IPCB_SEM_UNDO, &m) < 0 ||
                              (n && ipcb_sem_acquire_n(m, n, 1000) < 0)))
                        _exit(3);
                if (write(ready[1], "x", 1) != 1)
                        _exit(4);
                pause();
                _exit(5);
        }
        cr_assert_eq(read(ready[0], &x, 1), 1, "the holder did not get ready");
        close(ready[0]);
        close(ready[1]);
        return pid;
}

static void kill_wait(pid_t pid) {
        int st;

        kill(pid, SIGKILL);
        cr_assert_eq(waitpid(pid, &st, 0), pid);
}

/* OWNER_DIED: a lock holder killed holding the lock, an undo holder killed
 * holding tokens.  Nothing for a clean unlock and close, for an undo
 * holder killed holding nothing, or for a watch that did not ask. */
WATCH_TEST(owner_died) {
        ipcb_shm *s, *t;
        ipcb_sem *m;
        uint64_t w1, w2, w3;

        nev = 0;
        cr_assert_eq(ipcb_shm_create(c2, "od.seg", 4096, NULL, &s), 0);
        cr_assert_eq(ipcb_sem_create(c2, "od.sem", 3, NULL, &m), 0);
        cr_assert_eq(ipcb_watch_add(c, IPCB_KIND_SHM, "od.", IPCB_WATCH_PREFIX, IPCB_WATCH_OWNER_DIED,
                                    on_event, TAG(1), &w1), 0);
        cr_assert_eq(ipcb_watch_add(c, IPCB_KIND_SEM, "od.sem", 0, IPCB_WATCH_OWNER_DIED, on_event,
                                    TAG(2), &w2), 0);
        cr_assert_eq(ipcb_watch_add(c, IPCB_KIND_SHM, "od.seg", 0,
                                    IPCB_WATCH_ALL & ~IPCB_WATCH_OWNER_DIED, on_event, TAG(3), &w3), 0);

        /* Clean: lock, unlock, close; an undo handle killed holding 0. */
        cr_assert_eq(ipcb_shm_open(c2, "od.seg", IPCB_READ_WRITE, &t), 0);
        cr_assert_eq(ipcb_shm_lock(t), 0);
        cr_assert_eq(ipcb_shm_unlock(t), 0);
        cr_assert_eq(ipcb_shm_close(t), 0);
        kill_wait(holder("od.sem", false, 0));
        settle();
        cr_assert_eq(nev, 0, "an event without a death: %u", nev ? evs[0].event : 0);

        /* A lock holder killed holding it. */
        kill_wait(holder("od.seg", true, 0));
        pump(c, 1, 5000);
        cr_assert_eq(nev, 1);
        cr_assert_eq(evs[0].event, IPCB_WATCH_OWNER_DIED);
        cr_assert_eq(evs[0].kind, IPCB_KIND_SHM);
        cr_assert_str_eq(evs[0].name, "od.seg");
        cr_assert_eq(evs[0].watch, w1);
        cr_assert_eq(ipcb_shm_lock(s), IPCB_OWNER_DIED, "the event came before the lock was marked");
        cr_assert_eq(ipcb_shm_unlock(s), 0);

        /* An undo holder killed holding 2 tokens: they come back. */
        kill_wait(holder("od.sem", false, 2));
        pump(c, 2, 5000);
        cr_assert_eq(nev, 2);
        cr_assert_eq(evs[1].event, IPCB_WATCH_OWNER_DIED);
        cr_assert_eq(evs[1].kind, IPCB_KIND_SEM);
        cr_assert_str_eq(evs[1].name, "od.sem");
        cr_assert_eq(evs[1].watch, w2);
        cr_assert_eq(ipcb_sem_value(m), 3);
        settle();
        cr_assert_eq(nev, 2, "one death, one event");

        cr_assert_eq(ipcb_watch_remove(c, w1), 0);
        cr_assert_eq(ipcb_watch_remove(c, w2), 0);
        cr_assert_eq(ipcb_watch_remove(c, w3), 0);
        cr_assert_eq(ipcb_sem_close(m), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
}

WATCH_TEST(name_lifecycle) {
        uint64_t w;
        ipcb_shm *s;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        nev = 0;
        cr_assert_eq(ipcb_watch_add(c, IPCB_KIND_SHM, "life", 0, IPCB_WATCH_ALL, on_event, TAG(7),
                                    &w), 0);
        cr_assert_eq(ipcb_shm_create(c2, "life", 4096, NULL, &s), 0);
        cr_assert_eq(ipcb_stat(c2, IPCB_KIND_SHM, "life", &info), 0);
        cr_assert_eq(ipcb_chmod(c2, IPCB_KIND_SHM, "life", 0640), 0);
        cr_assert_eq(ipcb_shm_freeze(c2, "life", NULL), 0);
        cr_assert_eq(ipcb_shm_unlink(c2, "life"), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
        pump(c, 5, 5000);
        settle();
        cr_assert_eq(nev, 5, "%d events", nev);
        unsigned want[] = { IPCB_WATCH_CREATED, IPCB_WATCH_ACCESS, IPCB_WATCH_FROZEN,
                            IPCB_WATCH_UNLINKED, IPCB_WATCH_DESTROYED };
        for (int i = 0; i < 5; i++) {
                cr_assert_eq(evs[i].event, want[i], "event %d: 0x%x", i, evs[i].event);
                cr_assert_eq(evs[i].watch, w);
                cr_assert_eq(evs[i].tag, 7);
                cr_assert_eq(evs[i].kind, IPCB_KIND_SHM);
                cr_assert_str_eq(evs[i].name, "life");
                cr_assert_eq(evs[i].id, info.id);
                cr_assert_eq(evs[i].uid, geteuid());
        }
        cr_assert_eq(evs[0].mode, 0600);
        cr_assert_eq(evs[1].mode, 0640, "the new mode");
        cr_assert_neq(evs[2].seals & 0x18, 0, "a write seal after the freeze");
        /* Removed: nothing more. */
        cr_assert_eq(ipcb_watch_remove(c, w), 0);
        cr_assert_eq(ipcb_watch_remove(c, w), -ENOENT);
        cr_assert_eq(ipcb_shm_create(c2, "life", 4096, NULL, &s), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
        settle();
        cr_assert_eq(nev, 5, "an event after the watch was removed");
}

/* Only the events asked for; a transient object's last close destroys it. */
WATCH_TEST(event_mask_and_kinds) {
        ipcb_sem *sem;
        ipcb_shm *s;

        nev = 0;
        cr_assert_eq(ipcb_watch_add(c, IPCB_KIND_SEM, "k", 0, IPCB_WATCH_DESTROYED, on_event,
                                    TAG(1), NULL), 0);
        cr_assert_eq(ipcb_shm_create(c2, "k", 4096, NULL, &s), 0); /* other kind */
        cr_assert_eq(ipcb_sem_create(c2, "k", 1, NULL, &sem), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
        cr_assert_eq(ipcb_sem_close(sem), 0);
        settle();
        cr_assert_eq(nev, 1);
        cr_assert_eq(evs[0].event, IPCB_WATCH_DESTROYED);
        cr_assert_eq(evs[0].kind, IPCB_KIND_SEM);
}

WATCH_TEST(prefix) {
        const char *names[] = { "app.a", "app", "app.b.c", "apple", "other", "app." };
        ipcb_shm *s;
        uint64_t w1, w2;

        nev = 0;
        cr_assert_eq(ipcb_watch_add(c, IPCB_KIND_SHM, "app.", IPCB_WATCH_PREFIX,
                                    IPCB_WATCH_CREATED, on_event, TAG(1), &w1), 0);
        cr_assert_eq(ipcb_watch_add(c, IPCB_KIND_SHM, "", IPCB_WATCH_PREFIX, IPCB_WATCH_CREATED,
                                    on_event, TAG(2), &w2), 0);
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                cr_assert_eq(ipcb_shm_create(c2, names[i], 4096, NULL, &s), 0);
                cr_assert_eq(ipcb_shm_close(s), 0);
        }
        settle();
        int prefixed = 0, all = 0;
        for (int i = 0; i < nev; i++) {
                if (evs[i].tag == 1) {
                        prefixed++;
                        cr_assert(strncmp(evs[i].name, "app.", 4) == 0, "%s", evs[i].name);
                } else
                        all++;
        }
        cr_assert_eq(prefixed, 3, "app.a, app.b.c, app.");
        cr_assert_eq(all, 6, "the empty prefix hears every name");
        /* An exact watch is not a prefix watch. */
        cr_assert_eq(ipcb_watch_add(c, IPCB_KIND_SHM, "", 0, IPCB_WATCH_CREATED, on_event, NULL,
                                    NULL), -EINVAL);
}

WATCH_TEST(bad_arguments) {
        cr_assert_eq(ipcb_watch_add(c, 3, "x", 0, IPCB_WATCH_ALL, on_event, NULL, NULL), -EINVAL);
        cr_assert_eq(ipcb_watch_add(c, IPCB_KIND_SHM, "x", 2, IPCB_WATCH_ALL, on_event, NULL, NULL), -EINVAL);
        cr_assert_eq(ipcb_watch_add(c, IPCB_KIND_SHM, "x", 0, 0, on_event, NULL, NULL), -EINVAL);
        cr_assert_eq(ipcb_watch_add(c, IPCB_KIND_SHM, "x", 0, 0x40, on_event, NULL, NULL), -EINVAL);
        cr_assert_eq(ipcb_watch_add(c, IPCB_KIND_SHM, "x", 0, IPCB_WATCH_ALL, NULL, NULL, NULL), -EINVAL);
        cr_assert_eq(ipcb_watch_add(c, IPCB_KIND_SHM, ".x", 0, IPCB_WATCH_ALL, on_event, NULL, NULL), -EINVAL);
        cr_assert_eq(ipcb_watch_add(c, IPCB_KIND_SHM, "a/b", IPCB_WATCH_PREFIX, IPCB_WATCH_ALL, on_event, NULL, NULL), -EINVAL);
        cr_assert_eq(ipcb_watch_remove(c, 99), -ENOENT);
}

/* Raw requests the library would not send: the daemon refuses them. */
WATCH_TEST(raw_refusals) {
        int fd = ipcbd_hello_conn(&d);
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg m = { .hdr = { .op = IPCB_OP_WATCH_ADD, .id = 2 } }, r;
        unsigned nfds = 0;
        ssize_t len;
        struct { uint8_t kind, flags; uint32_t events; const char *name; int want; } cases[] = {
                { 0, 0, 1, "x", -EINVAL }, { 3, 0, 1, "x", -EINVAL }, { 1, 2, 1, "x", -EINVAL },
                { 1, 0, 0, "x", -EINVAL }, { 1, 0, IPCB_WE_OVERFLOW, "x", -EINVAL },
                { 1, 0, 1, "", -EINVAL }, { 1, 1, 1, "a b", -EINVAL },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                m.watch_add.kind = cases[i].kind;
                m.watch_add.flags = cases[i].flags;
                m.watch_add.events = cases[i].events;
                m.watch_add.name = (ipcb_name){ cases[i].name, (uint16_t)strlen(cases[i].name) };
                len = ipcb__proto_encode(&m, buf, sizeof(buf));
                cr_assert_gt(len, 0);
                cr_assert_eq(raw_send(fd, buf, (size_t)len, NULL, 0), 0);
                len = raw_recv(fd, buf, sizeof(buf), NULL, &nfds, 2000);
                cr_assert_gt(len, 0);
                cr_assert_eq(ipcb__proto_decode(buf, (size_t)len, nfds, &r), 0);
                cr_assert_eq(r.hdr.status, cases[i].want, "case %zu: %d", i, r.hdr.status);
        }
        /* Removing a watch of another connection: as if it did not exist. */
        uint64_t w;
        cr_assert_eq(ipcb_watch_add(c, IPCB_KIND_SHM, "x", 0, 1, on_event, NULL, &w), 0);
        m = (ipcb_msg){ .hdr = { .op = IPCB_OP_WATCH_REMOVE, .id = 3 } };
        for (uint64_t id = 0; id < 4; id++) {
                m.watch_remove.watch = id;
                len = ipcb__proto_encode(&m, buf, sizeof(buf));
                cr_assert_eq(raw_send(fd, buf, (size_t)len, NULL, 0), 0);
                len = raw_recv(fd, buf, sizeof(buf), NULL, &nfds, 2000);
                cr_assert_eq(ipcb__proto_decode(buf, (size_t)len, nfds, &r), 0);
                cr_assert_eq(r.hdr.status, -ENOENT);
        }
        /* An "event" sent to the daemon is an unknown request. */
        m = (ipcb_msg){ .hdr = { .op = IPCB_OP_HELLO, .id = 4 }, .hello = { 1, 0 } };
        len = ipcb__proto_encode(&m, buf, sizeof(buf));
        buf[0] = (uint8_t)IPCB_OP_WATCH_EVENT;
        buf[1] = (uint8_t)(IPCB_OP_WATCH_EVENT >> 8);
        cr_assert_eq(raw_send(fd, buf, (size_t)len, NULL, 0), 0);
        len = raw_recv(fd, buf, sizeof(buf), NULL, &nfds, 2000);
        cr_assert_eq(ipcb__proto_decode(buf, (size_t)len, nfds, &r), 0);
        cr_assert_eq(r.hdr.status, -EOPNOTSUPP);
        close(fd);
        cr_assert_eq(ipcb_watch_remove(c, w), 0);
}

static ipcb_client *retry_client;

static bool watch_add_ok(void *arg) {
        (void)arg;
        return ipcb_watch_add(retry_client, IPCB_KIND_SHM, "b", 0, 1, on_event, NULL, NULL) == 0;
}

WATCH_TEST(bounds) {
        ipcb_client *more[4];
        int r;

        for (int i = 0; i < 64; i++)
                cr_assert_eq(ipcb_watch_add(c, IPCB_KIND_SHM, "b", 0, 1, on_event, NULL, NULL), 0);
        cr_assert_eq(ipcb_watch_add(c, IPCB_KIND_SHM, "b", 0, 1, on_event, NULL, NULL), -EDQUOT,
                     "65th watch on one connection");
        for (int k = 0; k < 3; k++) {
                cr_assert_eq(ipcb_connect(d.sock, &more[k]), 0);
                for (int i = 0; i < 64; i++)
                        cr_assert_eq(ipcb_watch_add(more[k], IPCB_KIND_SEM, "b", 0, 1, on_event,
                                                    NULL, NULL), 0);
        }
        /* 256 for the uid now: a fresh connection gets none. */
        cr_assert_eq(ipcb_connect(d.sock, &more[3]), 0);
        r = ipcb_watch_add(more[3], IPCB_KIND_SHM, "b", 0, 1, on_event, NULL, NULL);
        cr_assert_eq(r, -EDQUOT, "257th watch of the uid: %d", r);
        /* A closed connection gives its watches back (once the daemon has
         * seen the hang-up). */
        ipcb_disconnect(more[0]);
        retry_client = more[3];
        cr_assert(wait_until(watch_add_ok, NULL, 5000), "watches of a closed connection kept");
        for (int k = 1; k < 4; k++)
                ipcb_disconnect(more[k]);
}

/* A watcher of another uid hears about objects it cannot open: the
 * namespace is public, and an event says what STAT says. */
static volatile int *child_ready; /* shared with the child: its watch is in */

static int other_uid_watch(void *arg) {
        const char *sock = arg;
        ipcb_client *cl;
        ipcb_shm *s = NULL;

        CHILD_CHECK(ipcb_connect(sock, &cl) == 0, "connect");
        nev = 0;
        CHILD_CHECK(ipcb_watch_add(cl, IPCB_KIND_SHM, "secret", 0, IPCB_WATCH_CREATED, on_event,
                                   NULL, NULL) == 0, "watch");
        *child_ready = 1;
        /* the parent creates it now; wait for the event */
        int fd = ipcb_get_fd(cl);
        for (int i = 0; i < 200 && nev == 0; i++) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                poll(&p, 1, 50);
                ipcb_process(cl);
        }
        CHILD_CHECK(nev == 1 && evs[0].event == IPCB_WATCH_CREATED, "event: %d", nev);
        CHILD_CHECK(evs[0].uid == 0 && evs[0].mode == 0600, "fields");
        CHILD_CHECK(ipcb_shm_open(cl, "secret", IPCB_READ_ONLY, &s) == -EACCES, "open refused");
        ipcb_disconnect(cl);
        return 0;
}

static void *create_later(void *arg) {
        ipcb_shm *s;
        (void)arg;
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;

        for (int i = 0; i < 2000 && !*child_ready; i++)
                usleep(5000);
        o.flags = IPCB_SHM_PERSISTENT; /* still there when the child tries to open it */
        if (ipcb_shm_create(c2, "secret", 4096, &o, &s) == 0)
                ipcb_shm_close(s);
        return NULL;
}

WATCH_TEST(other_uid) {
        pthread_t t;

        SKIP_UNLESS_ROOT();
        child_ready = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                           -1, 0);
        cr_assert_neq((void *)child_ready, MAP_FAILED);
        *child_ready = 0;
        cr_assert_eq(pthread_create(&t, NULL, create_later, NULL), 0);
        RUN_AS(UID_C, false, other_uid_watch, (void *)d.sock);
        pthread_join(t, NULL);
        cr_assert_eq(ipcb_shm_unlink(c, "secret"), 0);
        munmap((void *)child_ready, sizeof(int));
}

/* A watcher that does not read: the producer and the daemon go on at full
 * speed, the daemon's memory stays put, and the watcher, when it reads
 * again, finds the events that fit, one overflow, and live events after
 * it. */
WATCH_TEST(stalled_watcher_overflows) {
        enum { N = 20000 };
        ipcb_shm *s;
        long rss0, rss1;
        int overflows = 0, before = 0;

        ipcb_shm *mine;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT, info2 = IPCB_OBJECT_INFO_INIT;

        /* Only c holds it: it would die with c's connection. */
        cr_assert_eq(ipcb_shm_create(c, "mine", 4096, NULL, &mine), 0);
        cr_assert_eq(ipcb_stat(c2, IPCB_KIND_SHM, "mine", &info), 0);
        nev = 0;
        cr_assert_eq(ipcb_watch_add(c, IPCB_KIND_SHM, "flood", IPCB_WATCH_PREFIX,
                                    IPCB_WATCH_CREATED | IPCB_WATCH_DESTROYED, on_event, NULL,
                                    NULL), 0);
        rss0 = proc_rss_kib(d.pid);
        for (int i = 0; i < N; i++) {
                cr_assert_eq(ipcb_shm_create(c2, "flood", 4096, NULL, &s), 0);
                cr_assert_eq(ipcb_shm_close(s), 0);
        }
        cr_assert_eq(ipcb_sync(c2), 0);
        rss1 = proc_rss_kib(d.pid);
        cr_log_info("daemon RSS %ld -> %ld KiB after %d events to a stalled watcher", rss0, rss1,
                    2 * N);
#if !defined(__SANITIZE_ADDRESS__) /* ASan's quarantine grows with any churn */
        cr_assert_lt(rss1 - rss0, 4096, "the daemon grew by %ld KiB", rss1 - rss0);
#endif
        /* The watcher reads again, on the same connection (had the daemon
         * dropped it, "mine" would be gone). */
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_stat(c2, IPCB_KIND_SHM, "mine", &info2), 0,
                     "the daemon disconnected the stalled watcher");
        cr_assert_eq(info2.id, info.id);
        for (int i = 0; i < 10; i++)
                cr_assert_geq(ipcb_process(c), 0);
        for (int i = 0; i < nev; i++) {
                if (evs[i].event == IPCB_WATCH_OVERFLOW) {
                        overflows++;
                        cr_assert_str_eq(evs[i].name, "");
                        cr_assert_eq(evs[i].kind, 0);
                } else if (!overflows)
                        before++;
        }
        cr_log_info("%d events before the overflow, %d in all", before, nev);
        cr_assert_eq(overflows, 1, "%d overflows", overflows);
        cr_assert_lt(nev, 2 * N, "events were dropped, not kept");
        /* Live again. */
        int n0 = nev;
        cr_assert_eq(ipcb_shm_create(c2, "flood.2", 4096, NULL, &s), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
        settle();
        pump(c, n0 + 2, 2000);
        cr_assert_eq(nev, n0 + 2, "events after the overflow");
        cr_assert_str_eq(evs[n0].name, "flood.2");
        cr_assert_eq(evs[n0 + 1].event, IPCB_WATCH_DESTROYED);
        cr_assert_eq(ipcb_shm_close(mine), 0);
}

/* ---- waits ---- */

typedef struct producer {
        const char *name;
        int kind;
        int delay_ms;
} producer;

static void *produce(void *arg) {
        producer *p = arg;
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_sem_options so = IPCB_SEM_OPTIONS_INIT;
        ipcb_shm *s;
        ipcb_sem *sem;

        usleep((useconds_t)p->delay_ms * 1000);
        o.flags = IPCB_SHM_PERSISTENT;
        so.flags = IPCB_SEM_PERSISTENT;
        if (p->kind == IPCB_KIND_SHM) {
                if (ipcb_shm_create(c2, p->name, 4096, &o, &s) == 0) {
                        strcpy(ipcb_shm_data(s), "ready");
                        ipcb_shm_close(s);
                }
        } else if (ipcb_sem_create(c2, p->name, 2, &so, &sem) == 0)
                ipcb_sem_close(sem);
        return NULL;
}

static double thread_cpu_ms(void) {
        struct timespec t;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
        return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

WATCH_TEST(open_wait_consumer_first) {
        producer p = { "later", IPCB_KIND_SHM, 500 };
        pthread_t t;
        ipcb_shm *s = NULL;

        cr_assert_eq(pthread_create(&t, NULL, produce, &p), 0);
        double cpu0 = thread_cpu_ms();
        cr_assert_eq(ipcb_shm_open_wait(c, "later", IPCB_READ_ONLY, 5000, &s), 0);
        double cpu = thread_cpu_ms() - cpu0;
        pthread_join(t, NULL);
        cr_assert_str_eq(ipcb_shm_data(s), "ready");
        cr_log_info("waited 500 ms for the producer with %.2f ms of CPU", cpu);
        cr_assert_lt(cpu, 50.0, "the wait burned %.1f ms of CPU: polling?", cpu);
        cr_assert_eq(ipcb_shm_close(s), 0);
        /* Already there: at once. */
        cr_assert_eq(ipcb_shm_open_wait(c, "later", IPCB_READ_WRITE, 0, &s), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
        cr_assert_eq(ipcb_shm_unlink(c, "later"), 0);
}

WATCH_TEST(sem_open_wait) {
        producer p = { "later.sem", IPCB_KIND_SEM, 200 };
        pthread_t t;
        ipcb_sem *s = NULL;

        cr_assert_eq(pthread_create(&t, NULL, produce, &p), 0);
        cr_assert_eq(ipcb_sem_open_wait(c, "later.sem", IPCB_SEM_UNDO, -1, &s), 0);
        pthread_join(t, NULL);
        cr_assert_eq(ipcb_sem_value(s), 2);
        cr_assert_eq(ipcb_sem_acquire(s), 0);
        cr_assert_eq(ipcb_sem_held(s), 1);
        cr_assert_eq(ipcb_sem_close(s), 0);
        cr_assert_eq(ipcb_sem_unlink(c, "later.sem"), 0);
        cr_assert_eq(ipcb_sem_open_wait(c, "x", 0x40, 10, &s), -EINVAL);
}

/* Many waits that time out leave no watch behind (64 per connection). */
WATCH_TEST(open_wait_timeouts_leave_nothing) {
        ipcb_shm *s = NULL;
        struct timespec t0, t1;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        cr_assert_eq(ipcb_shm_open_wait(c, "never", IPCB_READ_ONLY, 200, &s), -ETIMEDOUT);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
        cr_assert(ms >= 195 && ms < 5000, "timed out after %ld ms", ms);
        cr_assert_null(s);
        for (int i = 0; i < 150; i++)
                cr_assert_eq(ipcb_shm_open_wait(c, "never", IPCB_READ_ONLY, 0, &s), -ETIMEDOUT,
                             "wait %d", i);
        cr_assert_eq(ipcb_sync(c), 0);
        for (int i = 0; i < 64; i++)
                cr_assert_eq(ipcb_watch_add(c, IPCB_KIND_SHM, "b", 0, 1, on_event, NULL, NULL), 0,
                             "watch %d: a wait left its watch behind", i);
        cr_assert_eq(ipcb_shm_open_wait(c, "never", IPCB_READ_ONLY, 0, &s), -EDQUOT,
                     "no watch left for the wait");
}

static int wait_status = 1;
static ipcb_shm *wait_result;

static void on_waited(ipcb_client *cl, int status, ipcb_shm *s, void *userdata) {
        (void)cl;
        (void)userdata;
        wait_status = status;
        wait_result = s;
}

WATCH_TEST(open_wait_async_and_cancel) {
        uint64_t k1, k2;
        ipcb_shm *s;

        wait_status = 1;
        cr_assert_eq(ipcb_shm_open_wait_async(c, "aw", IPCB_READ_WRITE, -1, on_waited, NULL, &k1), 0);
        cr_assert_eq(ipcb_shm_open_wait_async(c, "aw2", IPCB_READ_WRITE, -1, on_waited, NULL, &k2), 0);
        nev = 0;
        pump(c, 1, 200); /* nothing comes: the waits wait */
        cr_assert_eq(wait_status, 1);
        cr_assert_eq(ipcb_cancel(c, k2), 0);
        cr_assert_eq(ipcb_cancel(c, k2), -ENOENT);
        cr_assert_eq(ipcb_get_timeout_ms(c), 0, "a cancelled wait is work to do");
        cr_assert_eq(ipcb_process(c), 0);
        cr_assert_eq(wait_status, 1, "a cancelled wait called back");
        cr_assert_eq(ipcb_shm_create(c2, "aw", 4096, NULL, &s), 0);
        int fd = ipcb_get_fd(c);
        for (int i = 0; i < 100 && wait_status == 1; i++) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                poll(&p, 1, 50);
                ipcb_process(c);
        }
        cr_assert_eq(wait_status, 0);
        cr_assert_eq(ipcb_shm_size(wait_result), 4096);
        cr_assert_eq(ipcb_cancel(c, k1), -ENOENT, "over");
        cr_assert_eq(ipcb_shm_close(wait_result), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
        /* Nothing is left that would wake the loop. */
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_geq(ipcb_process(c), 0);
        cr_assert_eq(ipcb_get_timeout_ms(c), -1);
}

/* The name comes and goes while the consumer waits: it ends up with a
 * handle on a live object. */
static void *churn(void *arg) {
        ipcb_shm *s;
        (void)arg;
        for (int i = 0; i < 200; i++) {
                if (ipcb_shm_create(c2, "churn", 4096, NULL, &s) == 0)
                        ipcb_shm_close(s); /* transient: gone at once */
        }
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        o.flags = IPCB_SHM_PERSISTENT;
        if (ipcb_shm_create(c2, "churn", 4096, &o, &s) == 0)
                ipcb_shm_close(s);
        return NULL;
}

WATCH_TEST(open_wait_churn) {
        pthread_t t;
        ipcb_shm *s;

        cr_assert_eq(pthread_create(&t, NULL, churn, NULL), 0);
        cr_assert_eq(ipcb_shm_open_wait(c, "churn", IPCB_READ_ONLY, 10000, &s), 0);
        cr_assert_eq(ipcb_shm_size(s), 4096);
        pthread_join(t, NULL);
        cr_assert_eq(ipcb_shm_close(s), 0);
        /* (The persistent one exists unless we held a transient one then.) */
        int r = ipcb_shm_unlink(c, "churn");
        cr_assert(r == 0 || r == -ENOENT, "%d", r);
}

/* A client that only makes blocking calls reads events on the way and
 * keeps them for ipcb_process: at most 4096, then one overflow. */
WATCH_TEST(library_keeps_a_bounded_number) {
        enum { N = 3000 };
        ipcb_shm *s;
        int overflows = 0, events = 0;

        nev = 0;
        cr_assert_eq(ipcb_watch_add(c, IPCB_KIND_SHM, "kept", IPCB_WATCH_PREFIX,
                                    IPCB_WATCH_CREATED | IPCB_WATCH_DESTROYED, on_event, NULL,
                                    NULL), 0);
        for (int i = 0; i < N; i++) {
                cr_assert_eq(ipcb_shm_create(c2, "kept", 4096, NULL, &s), 0);
                cr_assert_eq(ipcb_shm_close(s), 0);
                if (i % 50 == 0)
                        cr_assert_eq(ipcb_sync(c), 0); /* reads the events so far */
        }
        cr_assert_eq(ipcb_sync(c2), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(nev, 0, "no callback outside ipcb_process");
        while (ipcb_process(c) > 0)
                ;
        for (int i = 0; i < nev; i++) {
                if (evs[i].event == IPCB_WATCH_OVERFLOW)
                        overflows++;
                else
                        events++;
        }
        cr_log_info("%d events kept, %d overflows, of %d", events, overflows, 2 * N);
        cr_assert_leq(events, 4096, "the library kept %d events", events);
        cr_assert_geq(overflows, 1, "events were lost without an overflow");
        cr_assert_leq(overflows, 2, "one overflow per episode (library, broker)");
}

/* ---- a watcher whose own handle's release sends it an event ---- */

static void cleanup_own(void) {
        fixture_cleanup(&d);
}

/* Tests that start their own daemon (with the arguments they need). */
#define OWN_TEST(name, ...) \
        FIXTURE_TEST(watch_own, name, &d, fixture_release_nothing, .fini = cleanup_own, .timeout = 60, \
                     ##__VA_ARGS__)

static ssize_t encode(ipcb_msg *m, uint8_t *buf) {
        return ipcb__proto_encode(m, buf, IPCB_MSG_MAX);
}

enum { OD_FILLED = 'f', OD_DRAINED = 'd' };

/* The client: holds a token of "od" through an undo handle, watches "od*"
 * on its own connection (raw), and leaves that watch's events owed: it
 * sends requests without reading until the broker stops reading it (one
 * reply queued), so that the next event finds the queue at its limit (the
 * broker runs with --max-queued-replies 2) and an OVERFLOW is owed.  It
 * then reads every reply, and on the last go closes the undo handle (a
 * CLOSE it does not wait for) and exits. */
static int owed_overflow_client(int go, int back) {
        ipcb_sem_options so = IPCB_SEM_OPTIONS_INIT;
        uint8_t req[IPCB_MSG_MAX], buf[IPCB_MSG_MAX];
        ipcb_msg m = { .hdr = { .op = IPCB_OP_WATCH_ADD, .id = 1u << 30 } };
        unsigned nfds = 0, sent = 0;
        ipcb_client *pc;
        ipcb_sem *s;
        ssize_t len, n;
        char x;
        int fd;

        so.flags = IPCB_SEM_PERSISTENT | IPCB_SEM_UNDO;
        so.max = 4;
        CHILD_CHECK(ipcb_connect(d.sock, &pc) == 0, "connect");
        CHILD_CHECK(ipcb_sem_create(pc, "od", 1, &so, &s) == 0 && ipcb_sem_acquire(s) == 0, "od");
        CHILD_CHECK((fd = broker_socket_fd(d.sock)) >= 0, "the library's socket");
        m.watch_add.kind = IPCB_KIND_SEM;
        m.watch_add.flags = IPCB_WW_PREFIX;
        m.watch_add.events = IPCB_WE_CREATED | IPCB_WE_OWNER_DIED;
        m.watch_add.name = (ipcb_name){ .ptr = "od", .len = 2 };
        CHILD_CHECK((len = encode(&m, req)) > 0 && raw_send(fd, req, (size_t)len, NULL, 0) == 0, "watch");
        CHILD_CHECK((n = raw_recv(fd, buf, sizeof(buf), NULL, &nfds, 5000)) > 0 &&
                            ipcb__proto_decode(buf, (size_t)n, 0, &m) == 0 && m.hdr.status == 0,
                    "watch reply");
        m = (ipcb_msg){ .hdr = { .op = IPCB_OP_STAT, .id = 1u << 29 } };
        m.stat.kind = IPCB_KIND_SEM;
        m.stat.name = (ipcb_name){ .ptr = "od", .len = 2 };
        CHILD_CHECK((len = encode(&m, req)) > 0, "stat");
        /* Until the broker has not taken one for 200 ms. */
        for (int idle_ms = 0; idle_ms < 200; idle_ms += 2) {
                while (raw_send(fd, req, (size_t)len, NULL, 0) == 0) {
                        sent++;
                        idle_ms = 0;
                }
                usleep(2000);
        }
        x = OD_FILLED;
        CHILD_CHECK(write(back, &x, 1) == 1 && read(go, &x, 1) == 1, "sync"); /* an OVERFLOW is owed */
        for (unsigned i = 0; i < sent; i++) {
                n = raw_recv(fd, buf, sizeof(buf), NULL, &nfds, 5000);
                CHILD_CHECK(n > 0 && ipcb__proto_decode(buf, (size_t)n, 0, &m) == 0 &&
                                    m.hdr.op == (IPCB_OP_STAT | IPCB_OP_REPLY),
                            "reply %u of %u: %zd", i, sent, n);
        }
        x = OD_DRAINED;
        CHILD_CHECK(write(back, &x, 1) == 1 && read(go, &x, 1) == 1, "sync"); /* the broker is stopped */
        ipcb_sem_close(s);
        return 0;
}

/* A handle's release can send an event to its own connection: closing an
 * undo handle that holds a token tells OWNER_DIED to every watcher of the
 * semaphore.  If that send found the connection gone (the client closed
 * its handle and exited at once), the connection was closed there and
 * then, in the middle of the handle's own release: the handle was
 * released twice and its slot read after it was freed (the daemon died,
 * or gave the token back twice).  The close waits for the hang-up queue
 * now.  Reaching the send takes an OVERFLOW owed to an empty queue (see
 * owed_overflow_client). */
OWN_TEST(event_to_a_gone_client_during_its_own_release) {
        static const char *const args[] = { "--max-queued-replies", "2", NULL };
        int go[2], back[2], status;
        ipcb_client *tc;
        ipcb_sem *s;
        char x;

        fixture_begin(&d, args);
        cr_assert_eq(pipe2(go, O_CLOEXEC), 0);
        cr_assert_eq(pipe2(back, O_CLOEXEC), 0);
        pid_t pid = test_fork();
        if (pid == 0) {
                close(go[1]);
                close(back[0]);
                _exit(owed_overflow_client(go[0], back[1]));
        }
        close(go[0]);
        close(back[1]);
        cr_assert_eq(read(back[0], &x, 1), 1, "the client failed");
        cr_assert_eq(x, OD_FILLED);
        cr_assert_eq(ipcb_connect(d.sock, &tc), 0);
        cr_assert_eq(ipcb_sem_create(tc, "odf", 0, NULL, &s), 0); /* an event it is not read for */
        cr_assert_eq(write(go[1], "g", 1), 1);
        cr_assert_eq(read(back[0], &x, 1), 1, "the client failed");
        cr_assert_eq(x, OD_DRAINED);
        ipcbd_pause(&d);
        cr_assert_eq(write(go[1], "g", 1), 1);
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the client: status %d", status);
        ipcbd_resume(&d);
        cr_assert_eq(ipcb_sem_close(s), 0);
        cr_assert_eq(ipcb_sem_open(tc, "od", 0, &s), 0, "the daemon");
        cr_assert_eq(ipcb_sem_value(s), 1, "the token came back %d times", ipcb_sem_value(s));
        cr_assert_eq(ipcb_sem_close(s), 0);
        cr_assert_eq(ipcb_sem_unlink(tc, "od"), 0);
        ipcb_disconnect(tc);
        close(go[1]);
        close(back[0]);
}
