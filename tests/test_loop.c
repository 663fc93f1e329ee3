/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_loop.c: the client driven from a poll loop against a real
 * ipcbrokerd: ipcb_get_fd/get_events/get_timeout/process, asynchronous
 * requests pipelined and answered in order, cancellation, deadlines, a
 * full socket, asynchronous and blocking calls mixed on one client (one
 * thread and several), callbacks that make requests, a lost connection,
 * and fd hygiene (the fixture checks both fd counts at the end). */
#include "harness.h"

#include "ipcbroker.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

#define LOOP_TEST(name, ...) \
        FIXTURE_TEST(loop, name, &d, release, .init = setup, .fini = teardown, .timeout = 30, \
                     ##__VA_ARGS__)

/* What the callbacks saw, in order. */
#define EV_MAX 4096
typedef struct ev {
        int tag;
        int status;
        ipcb_shm *shm;
        ipcb_sem *sem;
        ipcb_object_info info;
} ev;
static ev evs[EV_MAX];
static atomic_int nev;

static ev *record(void *userdata, int status) {
        int i = atomic_fetch_add(&nev, 1);
        cr_assert_lt(i, EV_MAX);
        evs[i] = (ev){ .tag = (int)(intptr_t)userdata, .status = status };
        return &evs[i];
}

static void on_shm(ipcb_client *cl, int status, ipcb_shm *s, void *userdata) {
        cr_assert_eq(cl, c);
        cr_assert_eq(status == 0, s != NULL);
        record(userdata, status)->shm = s;
}

static void on_sem(ipcb_client *cl, int status, ipcb_sem *s, void *userdata) {
        cr_assert_eq(cl, c);
        cr_assert_eq(status == 0, s != NULL);
        record(userdata, status)->sem = s;
}

static void on_stat(ipcb_client *cl, int status, const ipcb_object_info *info, void *userdata) {
        ev *e = record(userdata, status);
        (void)cl;
        cr_assert_eq(status == 0, info != NULL);
        if (info)
                e->info = *info;
}

static void on_done(ipcb_client *cl, int status, void *userdata) {
        (void)cl;
        record(userdata, status);
}

#define TAG(n) ((void *)(intptr_t)(n))

/* Poll the client's fd as a loop would (with its timeout) and process,
 * until `want` callbacks have run or timeout_ms passes.  Returns how many
 * poll wake-ups it took. */
static int run_until(int want, int timeout_ms) {
        int fd = ipcb_get_fd(c), wakeups = 0;
        struct timespec t0, t;

        cr_assert_geq(fd, 0);
        cr_assert_eq(ipcb_get_events(c), POLLIN);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (atomic_load(&nev) < want) {
                int ms = ipcb_get_timeout_ms(c);
                struct pollfd p = { .fd = fd, .events = (short)ipcb_get_events(c) };
                if (ms < 0 || ms > 100)
                        ms = 100;
                int n = poll(&p, 1, ms);
                cr_assert_geq(n, 0);
                wakeups += n;
                cr_assert_geq(ipcb_process(c), 0);
                clock_gettime(CLOCK_MONOTONIC, &t);
                if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > timeout_ms)
                        break;
        }
        return wakeups;
}

static bool fd_readable(int fd, int ms) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        return poll(&p, 1, ms) == 1;
}

static unsigned handles_of(int kind, const char *name) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        cr_assert_eq(ipcb_stat(c, kind, name, &info), 0);
        return info.handles;
}

LOOP_TEST(idle_client_is_quiet) {
        uint64_t t;
        int fd = ipcb_get_fd(c);

        cr_assert_geq(fd, 3);
        cr_assert_eq(ipcb_get_fd(c), fd, "the loop's fd must not change");
        cr_assert_eq(ipcb_get_timeout(c, &t), 0);
        cr_assert_eq(t, UINT64_MAX);
        cr_assert_eq(ipcb_get_timeout_ms(c), -1);
        cr_assert_not(fd_readable(fd, 50), "an idle client's fd must not be readable");
        cr_assert_eq(ipcb_process(c), 0);
        /* A blocking call leaves it quiet too. */
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_not(fd_readable(fd, 20));
}

LOOP_TEST(bad_arguments_run_no_callback) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;

        atomic_store(&nev, 0);
        cr_assert_eq(ipcb_shm_create_async(c, "", 4096, NULL, on_shm, NULL, NULL), -EINVAL);
        cr_assert_eq(ipcb_shm_create_async(c, "x", 0, NULL, on_shm, NULL, NULL), -EINVAL);
        o.mode = 01000;
        cr_assert_eq(ipcb_shm_create_async(c, "x", 1, &o, on_shm, NULL, NULL), -EINVAL);
        cr_assert_eq(ipcb_shm_open_async(c, "x", 7, NULL, on_shm, NULL, NULL), -EINVAL);
        cr_assert_eq(ipcb_shm_open_async(c, "x", IPCB_READ_ONLY, NULL, NULL, NULL, NULL), -EINVAL);
        cr_assert_eq(ipcb_stat_async(c, 9, "x", on_stat, NULL, NULL), -EINVAL);
        cr_assert_eq(ipcb_unlink_async(NULL, IPCB_KIND_SHM, "x", on_done, NULL, NULL), -EINVAL);
        cr_assert_eq(ipcb_sem_create_async(c, "s", 5, &(ipcb_sem_options){ .struct_size = sizeof(ipcb_sem_options), .mode = 0600, .max = 2 },
                                           on_sem, NULL, NULL), -EINVAL);
        cr_assert_eq(ipcb_memfd_sealed_async(c, 0, 0, on_done, NULL, NULL), -EINVAL);
        cr_assert_eq(ipcb_process(NULL), -EINVAL);
        cr_assert_eq(ipcb_get_fd(NULL), -EINVAL);
        cr_assert_eq(ipcb_cancel(c, 12345), -ENOENT);
        run_until(1, 100);
        cr_assert_eq(atomic_load(&nev), 0, "a refused request must not call back");
}

/* Many requests in flight at once, answered in request order, each with
 * what the blocking call would have returned. */
LOOP_TEST(pipelined_in_order) {
        ipcb_shm *s, *frz;
        uint64_t k1, k2;

        atomic_store(&nev, 0);
        /* (Freezing "pipe" itself could seal it before the callback maps
         * it writable: the broker answers in order, the library maps in
         * ipcb_process.) */
        cr_assert_eq(ipcb_shm_create(c, "frz", 4096, NULL, &frz), 0);
        cr_assert_eq(ipcb_shm_create_async(c, "pipe", 8192, NULL, on_shm, TAG(1), &k1), 0);
        cr_assert_eq(ipcb_shm_open_async(c, "pipe", IPCB_READ_ONLY, NULL, on_shm, TAG(2), &k2), 0);
        cr_assert_neq(k1, k2);
        cr_assert_eq(ipcb_stat_async(c, IPCB_KIND_SHM, "pipe", on_stat, TAG(3), NULL), 0);
        cr_assert_eq(ipcb_shm_create_async(c, "pipe", 8192, NULL, on_shm, TAG(4), NULL), 0);
        cr_assert_eq(ipcb_sem_create_async(c, "psem", 3, NULL, on_sem, TAG(5), NULL), 0);
        cr_assert_eq(ipcb_shm_freeze_async(c, "frz", on_done, TAG(6), NULL), 0);
        cr_assert_eq(ipcb_unlink_async(c, IPCB_KIND_SHM, "pipe", on_done, TAG(7), NULL), 0);
        cr_assert_eq(ipcb_unlink_async(c, IPCB_KIND_SHM, "pipe", on_done, TAG(8), NULL), 0);
        cr_assert_eq(ipcb_memfd_sealed_async(c, 4096, 0, on_done, TAG(9), NULL), 0);
        cr_assert_eq(ipcb_sync_async(c, on_done, TAG(10), NULL), 0);
        cr_assert_eq(ipcb_unlink_async(c, IPCB_KIND_SEM, "psem", on_done, TAG(11), NULL), 0);
        run_until(11, 5000);
        cr_assert_eq(atomic_load(&nev), 11);
        for (int i = 0; i < 11; i++)
                cr_assert_eq(evs[i].tag, i + 1, "callback %d ran out of order", i);
        cr_assert_eq(evs[0].status, 0, "%s", ipcb_strerror(evs[0].status));
        cr_assert_eq(ipcb_shm_access(evs[0].shm), IPCB_READ_WRITE);
        cr_assert_eq(ipcb_shm_size(evs[0].shm), 8192);
        cr_assert_eq(evs[1].status, 0);
        cr_assert_eq(ipcb_shm_access(evs[1].shm), IPCB_READ_ONLY);
        /* The two handles map the same bytes. */
        memcpy(ipcb_shm_data(evs[0].shm), "hello", 6);
        cr_assert_str_eq(ipcb_shm_data(evs[1].shm), "hello");
        cr_assert_eq(evs[2].status, 0);
        cr_assert_str_eq(evs[2].info.name, "pipe");
        cr_assert_eq(evs[2].info.handles, 2);
        cr_assert_eq(evs[3].status, -EEXIST);
        cr_assert_eq(evs[4].status, 0);
        cr_assert_eq(ipcb_sem_value(evs[4].sem), 3);
        cr_assert_gt(evs[5].status, 0, "freeze reports the seals");
        cr_assert_eq(evs[6].status, 0);
        cr_assert_eq(evs[7].status, -ENOENT);
        cr_assert_geq(evs[8].status, 3, "memfd: an fd");
        close(evs[8].status);
        cr_assert_eq(evs[9].status, 0);
        cr_assert_eq(evs[10].status, 0);
        s = evs[0].shm;
        cr_assert_eq(ipcb_shm_close(s), 0);
        cr_assert_eq(ipcb_shm_close(evs[1].shm), 0);
        cr_assert_eq(ipcb_sem_close(evs[4].sem), 0);
        cr_assert_eq(ipcb_shm_close(frz), 0);
        cr_assert_eq(ipcb_process(c), 0);
}

/* A blocking call that reads an asynchronous answer on its way keeps it
 * for the loop and wakes it. */
LOOP_TEST(blocking_call_keeps_async_replies) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        int fd = ipcb_get_fd(c);

        atomic_store(&nev, 0);
        cr_assert_eq(ipcb_shm_create_async(c, "mix", 4096, NULL, on_shm, TAG(1), NULL), 0);
        cr_assert_eq(ipcb_stat_async(c, IPCB_KIND_SHM, "mix", on_stat, TAG(2), NULL), 0);
        /* Blocking, on the same client, before the loop ran. */
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "mix", &info), 0);
        cr_assert_eq(info.handles, 1);
        cr_assert_eq(atomic_load(&nev), 0, "callbacks run only in ipcb_process");
        cr_assert(fd_readable(fd, 1000), "the loop must be woken for the kept replies");
        uint64_t t;
        cr_assert_eq(ipcb_get_timeout(c, &t), 0);
        cr_assert_eq(t, 0, "work is due now");
        cr_assert_eq(ipcb_process(c), 2);
        cr_assert_eq(evs[0].tag, 1);
        cr_assert_eq(evs[0].status, 0);
        cr_assert_eq(evs[1].status, 0);
        cr_assert_eq(evs[1].info.handles, 1);
        cr_assert_not(fd_readable(fd, 20), "drained");
        cr_assert_eq(ipcb_shm_close(evs[0].shm), 0);
}

/* Cancelled before or after the reply came: no callback, and the handle
 * the reply brought is given back. */
static void cancel_case(bool after_reply) {
        ipcb_shm *own;
        uint64_t k;

        atomic_store(&nev, 0);
        cr_assert_eq(ipcb_shm_create(c, "cx", 4096, NULL, &own), 0);
        cr_assert_eq(ipcb_shm_open_async(c, "cx", IPCB_READ_WRITE, NULL, on_shm, TAG(1), &k), 0);
        cr_assert_eq(ipcb_sem_create_async(c, "cxs", 1, NULL, on_sem, TAG(2), NULL), 0);
        if (after_reply)
                cr_assert_eq(ipcb_sync(c), 0); /* both replies are in, kept */
        cr_assert_eq(ipcb_cancel(c, k), 0);
        cr_assert_eq(ipcb_cancel(c, k), -ENOENT);
        run_until(1, 5000);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_process(c), 0);
        cr_assert_eq(atomic_load(&nev), 1);
        cr_assert_eq(evs[0].tag, 2);
        cr_assert_eq(handles_of(IPCB_KIND_SHM, "cx"), 1, "the cancelled open's handle leaked");
        cr_assert_eq(ipcb_sem_close(evs[0].sem), 0);
        cr_assert_eq(ipcb_shm_close(own), 0);
}

LOOP_TEST(cancel_in_flight) {
        cancel_case(false);
}

LOOP_TEST(cancel_after_reply) {
        cancel_case(true);
}

/* A broker that does not answer: the callback gets -ETIMEDOUT at the
 * deadline that ipcb_get_timeout announced, and the late reply, when it
 * comes, is disposed of (its handle released). */
LOOP_TEST(deadline) {
        ipcb_shm *own;
        struct timespec t0, t1;

        atomic_store(&nev, 0);
        cr_assert_eq(ipcb_shm_create(c, "late", 4096, NULL, &own), 0);
        cr_assert_eq(ipcb_set_timeout(c, 200), 0);
        int fd = ipcb_get_fd(c);
        ipcbd_pause(&d);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        cr_assert_eq(ipcb_shm_open_async(c, "late", IPCB_READ_ONLY, NULL, on_shm, TAG(1), NULL), 0);
        int ms = ipcb_get_timeout_ms(c);
        cr_assert(ms > 0 && ms <= 200, "timeout %d ms", ms);
        cr_assert_not(fd_readable(fd, 100));
        run_until(1, 2000);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        cr_assert_eq(atomic_load(&nev), 1);
        cr_assert_eq(evs[0].status, -ETIMEDOUT);
        long el = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
        cr_assert(el >= 195 && el < 5000, "timed out after %ld ms", el);
        cr_assert_eq(ipcb_get_timeout_ms(c), -1, "nothing else is due");
        ipcbd_resume(&d);
        cr_assert_eq(ipcb_set_timeout(c, 0), 0);
        /* The late reply comes first and is disposed of on the way (its
         * handle released after the sync, which the stat then follows). */
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(handles_of(IPCB_KIND_SHM, "late"), 1);
        cr_assert_eq(ipcb_process(c), 0);
        cr_assert_eq(atomic_load(&nev), 1, "a timed-out request must not call back twice");
        cr_assert_eq(ipcb_shm_close(own), 0);
}

/* More requests than the socket holds while the broker is stopped: the
 * rest wait in the library (the fd asks for POLLOUT inside) and go out
 * once the broker reads again; all are answered, in order. */
LOOP_TEST(full_socket_queues) {
        enum { N = 3000 };

        atomic_store(&nev, 0);
        ipcbd_pause(&d);
        for (int i = 0; i < N; i++)
                cr_assert_eq(ipcb_stat_async(c, IPCB_KIND_SHM, "nope", on_stat, TAG(i), NULL), 0);
        ipcbd_resume(&d);
        run_until(N, 20000);
        cr_assert_eq(atomic_load(&nev), N);
        for (int i = 0; i < N; i++) {
                cr_assert_eq(evs[i].tag, i);
                cr_assert_eq(evs[i].status, -ENOENT);
        }
        /* A blocking call after all that is in step. */
        cr_assert_eq(ipcb_sync(c), 0);
}

/* Callbacks may make blocking and asynchronous requests and close what
 * they got. */
static void on_shm_chain(ipcb_client *cl, int status, ipcb_shm *s, void *userdata) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        record(userdata, status);
        cr_assert_eq(status, 0);
        cr_assert_eq(ipcb_stat(cl, IPCB_KIND_SHM, "chain", &info), 0);
        cr_assert_eq(info.handles, 1);
        cr_assert_eq(ipcb_process(cl), 0, "no callback runs inside a callback");
        cr_assert_eq(ipcb_shm_close(s), 0);
        cr_assert_eq(ipcb_unlink_async(cl, IPCB_KIND_SHM, "chain", on_done, TAG(2), NULL), 0);
}

LOOP_TEST(callbacks_make_requests) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;

        atomic_store(&nev, 0);
        o.flags = IPCB_SHM_PERSISTENT;
        cr_assert_eq(ipcb_shm_create_async(c, "chain", 4096, &o, on_shm_chain, TAG(1), NULL), 0);
        run_until(2, 5000);
        cr_assert_eq(atomic_load(&nev), 2);
        cr_assert_eq(evs[1].tag, 2);
        cr_assert_eq(evs[1].status, 0);
}

/* One thread blocks in requests while another drives the loop. */
static void *blocking_thread(void *arg) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        (void)arg;
        for (int i = 0; i < 300; i++) {
                int r = ipcb_stat(c, IPCB_KIND_SHM, "thr", &info);
                if (r != 0 || info.size != 4096)
                        return (void *)(intptr_t)(r ? r : -1);
        }
        return NULL;
}

LOOP_TEST(threads_mix) {
        enum { N = 600 };
        pthread_t t;
        ipcb_shm *own;
        void *res;

        atomic_store(&nev, 0);
        cr_assert_eq(ipcb_shm_create(c, "thr", 4096, NULL, &own), 0);
        cr_assert_eq(pthread_create(&t, NULL, blocking_thread, NULL), 0);
        for (int i = 0; i < N; i++) {
                cr_assert_eq(ipcb_stat_async(c, IPCB_KIND_SHM, i % 2 ? "thr" : "none", on_stat,
                                             TAG(i), NULL), 0);
                if (i % 16 == 0)
                        cr_assert_geq(ipcb_process(c), 0);
        }
        run_until(N, 20000);
        pthread_join(t, &res);
        cr_assert_null(res, "blocking thread failed: %d", (int)(intptr_t)res);
        cr_assert_eq(atomic_load(&nev), N);
        for (int i = 0; i < N; i++) {
                cr_assert_eq(evs[i].tag, i);
                cr_assert_eq(evs[i].status, i % 2 ? 0 : -ENOENT);
        }
        cr_assert_eq(ipcb_shm_close(own), 0);
}

/* The broker goes away: requests in flight get -ENOTCONN, the fd stays
 * valid and quiet afterwards. */
LOOP_TEST(connection_lost) {
        int fd = ipcb_get_fd(c);

        atomic_store(&nev, 0);
        ipcbd_pause(&d);
        cr_assert_eq(ipcb_stat_async(c, IPCB_KIND_SHM, "x", on_stat, TAG(1), NULL), 0);
        cr_assert_eq(ipcb_sync_async(c, on_done, TAG(2), NULL), 0);
        ipcbd_resume(&d);
        ipcbd_stop(&d);
        run_until(2, 5000);
        cr_assert_eq(atomic_load(&nev), 2);
        /* The first may have been answered before the broker stopped. */
        cr_assert(evs[0].status == -ENOENT || evs[0].status == -ENOTCONN);
        cr_assert(evs[1].status == 0 || evs[1].status == -ENOTCONN);
        /* ipcb_process stops reading once nothing is in flight: the
         * hang-up behind the last reply may make the fd readable once
         * more, and the ipcb_process that a loop then runs clears it. */
        if (fd_readable(fd, 50))
                cr_assert_eq(ipcb_process(c), 0);
        cr_assert_not(fd_readable(fd, 50), "a dead connection must not keep the fd readable");
        cr_assert_eq(ipcb_stat_async(c, IPCB_KIND_SHM, "x", on_stat, TAG(3), NULL), -ENOTCONN);
}
