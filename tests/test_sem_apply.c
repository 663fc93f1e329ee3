/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_sem_apply.c: ipcb_sem_apply, several semaphores' counts changed at
 * once by the broker (SEM_APPLY), against a real ipcbrokerd: all applied,
 * or none when a take finds too few tokens or a give would pass the
 * maximum; refusals (undo handles, a semaphore twice, deltas of 0 or past
 * the maximum, another client's handles); sleepers woken by its gives; the
 * same after a broker restart is not needed here (handles are per
 * connection: test_store_handles covers the ids).  And a hostile peer's
 * raw requests: bad handles and kinds, malformed counts and padding.
 * Every test runs in the harness fixture: both fd counts back, clean
 * daemon exit.  (A process killed during a semop of several operations:
 * test_preload_sysv, semaphore_several_operations_killed.) */
#include "harness.h"

#include "ipcbroker.h"
#include "proto.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
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

#define CHECKED_TEST(name) FIXTURE_TEST(apply, name, &d, release)

TestSuite(apply, .init = setup, .fini = teardown, .timeout = 30);

static ipcb_sem *create_ok(const char *name, unsigned initial, unsigned max) {
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
        ipcb_sem *s = NULL;
        int r;

        o.max = max;
        r = ipcb_sem_create(c, name, initial, &o, &s);
        cr_assert_eq(r, 0, "create %s: %s", name, ipcb_strerror(r));
        return s;
}

static void values_are(ipcb_sem *const *s, const int *want, unsigned n, const char *when) {
        for (unsigned i = 0; i < n; i++)
                cr_assert_eq(ipcb_sem_value(s[i]), want[i], "%s: semaphore %u reads %d, not %d", when, i,
                             ipcb_sem_value(s[i]), want[i]);
}

static void close_all(ipcb_sem **s, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                cr_assert_eq(ipcb_sem_close(s[i]), 0);
}

CHECKED_TEST(all_applied) {
        ipcb_sem *s[3] = { create_ok("a", 2, 10), create_ok("b", 0, 10), create_ok("c", 5, 10) };
        int d1[3] = { -2, 3, -5 }, d2[3] = { 1, -1, 10 };

        cr_assert_eq(ipcb_sem_apply(c, s, d1, 3), 0);
        values_are(s, (int[]){ 0, 3, 0 }, 3, "after the first");
        cr_assert_eq(ipcb_sem_apply(c, s, d2, 3), 0);
        values_are(s, (int[]){ 1, 2, 10 }, 3, "after the second");
        close_all(s, 3);
}

/* A take that finds too few tokens, or a give past the maximum: nothing
 * changes, wherever it is among the entries. */
CHECKED_TEST(all_or_nothing) {
        ipcb_sem *s[3] = { create_ok("a", 1, 10), create_ok("b", 0, 10), create_ok("c", 9, 10) };
        int want[3] = { 1, 0, 9 };

        cr_assert_eq(ipcb_sem_apply(c, s, (int[]){ -1, -1, 1 }, 3), -EAGAIN);
        values_are(s, want, 3, "after a take of too many (second)");
        cr_assert_eq(ipcb_sem_apply(c, s, (int[]){ 5, 1, -10 }, 3), -EAGAIN);
        values_are(s, want, 3, "after a take of too many (last)");
        cr_assert_eq(ipcb_sem_apply(c, s, (int[]){ -1, 1, 2 }, 3), -ERANGE);
        values_are(s, want, 3, "after a give past the maximum");
        close_all(s, 3);
}

CHECKED_TEST(refusals) {
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
        ipcb_sem *s[2] = { create_ok("a", 1, 10), create_ok("b", 1, 10) }, *u, *dup, *other, *mix[2];
        ipcb_client *c2;

        cr_assert_eq(ipcb_sem_open(c, "a", IPCB_SEM_UNDO, &u), 0);
        cr_assert_eq(ipcb_sem_open(c, "a", 0, &dup), 0);
        cr_assert_eq(ipcb_connect(d.sock, &c2), 0);
        cr_assert_eq(ipcb_sem_open(c2, "b", 0, &other), 0);
        (void)o;

        cr_assert_eq(ipcb_sem_apply(NULL, s, (int[]){ 1, 1 }, 2), -EINVAL);
        cr_assert_eq(ipcb_sem_apply(c, NULL, (int[]){ 1, 1 }, 2), -EINVAL);
        cr_assert_eq(ipcb_sem_apply(c, s, NULL, 2), -EINVAL);
        cr_assert_eq(ipcb_sem_apply(c, s, (int[]){ 1, 1 }, 0), -EINVAL);
        cr_assert_eq(ipcb_sem_apply(c, s, (int[]){ 1, 1 }, 65), -EINVAL);
        cr_assert_eq(ipcb_sem_apply(c, s, (int[]){ 0, 1 }, 2), -EINVAL);
        cr_assert_eq(ipcb_sem_apply(c, s, (int[]){ 11, 1 }, 2), -EINVAL);
        cr_assert_eq(ipcb_sem_apply(c, s, (int[]){ -11, 1 }, 2), -EINVAL);
        mix[0] = u, mix[1] = s[1];
        cr_assert_eq(ipcb_sem_apply(c, mix, (int[]){ 1, 1 }, 2), -EINVAL, "an undo handle");
        mix[0] = s[0], mix[1] = dup;
        cr_assert_eq(ipcb_sem_apply(c, mix, (int[]){ 1, 1 }, 2), -EINVAL, "a semaphore twice");
        mix[0] = s[0], mix[1] = other;
        cr_assert_eq(ipcb_sem_apply(c, mix, (int[]){ 1, 1 }, 2), -EINVAL, "another client's handle");
        values_are(s, (int[]){ 1, 1 }, 2, "after the refusals");

        cr_assert_eq(ipcb_sem_close(other), 0);
        ipcb_disconnect(c2);
        cr_assert_eq(ipcb_sem_close(dup), 0);
        cr_assert_eq(ipcb_sem_close(u), 0);
        close_all(s, 2);
}

static void *sleeper(void *arg) {
        return (void *)(intptr_t)ipcb_sem_try_acquire(arg, 5000);
}

/* Its gives wake the sleepers, as a release does. */
CHECKED_TEST(wakes_sleepers) {
        ipcb_sem *s[2] = { create_ok("a", 1, 10), create_ok("b", 0, 10) };
        pthread_t t;
        void *ret;

        cr_assert_eq(pthread_create(&t, NULL, sleeper, s[1]), 0);
        usleep(100 * 1000);
        cr_assert_eq(ipcb_sem_apply(c, s, (int[]){ -1, 1 }, 2), 0);
        cr_assert_eq(pthread_join(t, &ret), 0);
        cr_assert_eq((intptr_t)ret, 0, "the sleeper was not woken: %d", (int)(intptr_t)ret);
        values_are(s, (int[]){ 0, 0 }, 2, "after the wake-up");
        close_all(s, 2);
}

/* ---- a hostile peer, raw ---- */

static uint64_t raw_open(int fd, uint32_t id, uint16_t op, const char *name, uint32_t flags) {
        ipcb_msg m = { .hdr = { .op = op, .id = id } }, r;

        if (op == IPCB_OP_SEM_OPEN) {
                m.sem_open.flags = flags;
                m.sem_open.name = (ipcb_name){ .ptr = name, .len = (uint16_t)strlen(name) };
        } else {
                m.shm_open.access = IPCB_WA_READ_WRITE;
                m.shm_open.name = (ipcb_name){ .ptr = name, .len = (uint16_t)strlen(name) };
        }
        cr_assert_eq(raw_request(fd, &m, &r), 0);
        return op == IPCB_OP_SEM_OPEN ? r.sem_reply.handle : r.shm_reply.handle;
}

static int raw_apply(int fd, uint32_t id, const ipcb_sem_apply_ent *e, uint32_t n) {
        ipcb_msg m = { .hdr = { .op = IPCB_OP_SEM_APPLY, .id = id } }, r;

        m.sem_apply.count = n;
        m.sem_apply.ents = e;
        return raw_request(fd, &m, &r);
}

CHECKED_TEST(raw_requests) {
        ipcb_sem *s[2] = { create_ok("a", 3, 10), create_ok("b", 3, 10) };
        ipcb_shm_options so = IPCB_SHM_OPTIONS_INIT;
        ipcb_shm *seg;
        uint64_t a, b, u, h;
        int fd = raw_connect(d.sock);

        cr_assert_eq(ipcb_shm_create(c, "seg", 4096, &so, &seg), 0);
        cr_assert_geq(fd, 0);
        cr_assert_eq(raw_hello(fd), 0);
        a = raw_open(fd, 2, IPCB_OP_SEM_OPEN, "a", 0);
        b = raw_open(fd, 3, IPCB_OP_SEM_OPEN, "b", 0);
        u = raw_open(fd, 4, IPCB_OP_SEM_OPEN, "a", IPCB_WF_UNDO);
        h = raw_open(fd, 5, IPCB_OP_SHM_OPEN, "seg", 0);
        cr_assert_eq(raw_apply(fd, 6, (ipcb_sem_apply_ent[]){ { a, -1 }, { 0, 1 } }, 2), -EBADF);
        cr_assert_eq(raw_apply(fd, 7, (ipcb_sem_apply_ent[]){ { a, -1 }, { b + (1ull << 32), 1 } }, 2),
                     -EBADF, "a stale generation");
        cr_assert_eq(raw_apply(fd, 8, (ipcb_sem_apply_ent[]){ { a, -1 }, { h, 1 } }, 2), -EINVAL);
        cr_assert_eq(raw_apply(fd, 9, (ipcb_sem_apply_ent[]){ { a, -1 }, { u, 1 } }, 2), -EINVAL);
        cr_assert_eq(raw_apply(fd, 10, (ipcb_sem_apply_ent[]){ { a, -1 }, { a, 1 } }, 2), -EINVAL);
        cr_assert_eq(raw_apply(fd, 11, (ipcb_sem_apply_ent[]){ { a, INT32_MIN }, { b, 1 } }, 2), -EINVAL);
        cr_assert_eq(raw_apply(fd, 12, (ipcb_sem_apply_ent[]){ { a, INT32_MAX } }, 1), -EINVAL);
        cr_assert_eq(raw_apply(fd, 13, (ipcb_sem_apply_ent[]){ { a, -3 }, { b, -4 } }, 2), -EAGAIN);
        cr_assert_eq(raw_apply(fd, 14, (ipcb_sem_apply_ent[]){ { a, -3 }, { b, 8 } }, 2), -ERANGE);
        values_are(s, (int[]){ 3, 3 }, 2, "after the refused requests");
        cr_assert_eq(raw_apply(fd, 15, (ipcb_sem_apply_ent[]){ { a, -3 }, { b, 7 } }, 2), 0);
        values_are(s, (int[]){ 0, 10 }, 2, "after the request");

        /* Malformed: a count of 0, or past 64, or not what the payload
         * holds, or padding that is not zero; each closes the connection. */
        static const struct {
                uint32_t count, len, pad_at, pad;
        } bad[] = {
                { 0, 8, 0, 0 }, { 65, 8 + 65 * 16, 0, 0 }, { 2, 8 + 16, 0, 0 }, { 1, 8 + 32, 0, 0 },
                { 1, 24, 4, 1 }, { 1, 24, 20, 1 },
        };
        for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                uint8_t buf[IPCB_MSG_MAX] = { 0 };
                int bfd = raw_connect(d.sock);
                uint32_t len = IPCB_HDR_SIZE + bad[i].len;

                cr_assert_geq(bfd, 0);
                cr_assert_eq(raw_hello(bfd), 0);
                buf[0] = IPCB_OP_SEM_APPLY & 0xff;
                buf[1] = IPCB_OP_SEM_APPLY >> 8;
                buf[4] = 2; /* id */
                memcpy(buf + 12, &bad[i].len, 4);
                memcpy(buf + IPCB_HDR_SIZE, &bad[i].count, 4);
                if (bad[i].len >= 24)
                        memcpy(buf + IPCB_HDR_SIZE + 8, &a, 8);
                if (bad[i].pad_at)
                        memcpy(buf + IPCB_HDR_SIZE + bad[i].pad_at, &bad[i].pad, 4);
                cr_assert_eq(raw_send(bfd, buf, len, NULL, 0), 0);
                cr_assert(raw_is_closed(bfd, 5000), "malformed request %u: the connection stayed open", i);
                close(bfd);
        }
        values_are(s, (int[]){ 0, 10 }, 2, "after the malformed requests");

        close(fd);
        cr_assert_eq(ipcb_shm_close(seg), 0);
        close_all(s, 2);
}
