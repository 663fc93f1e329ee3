/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_protodoc.c: what docs/protocol.md states about the daemon's answers,
 * checked against the real daemon: a MEMFD reply's seals (F_SEAL_EXEC
 * comes with it but may not be asked for), FREEZE is idempotent, LIST shows
 * an unlinked object and its successor under one name, HELLO may be
 * repeated and a refused one undoes nothing, QUOTA `all` for a caller
 * without privilege reports its own uid only. */
#include "harness.h"
#include "multiuid.h"

#include "ipcbroker.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

static ipcbd d;
static ipcb_client *c;

static void release(void) {
        ipcb_disconnect(c);
        c = NULL;
}

#define DOC_TEST(name, ...) FIXTURE_TEST(protodoc, name, &d, release, ##__VA_ARGS__)

static void begin(void) {
        fixture_begin(&d, NULL);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
}

/* Does this kernel give non-executable memfds (Linux 6.3+)? */
static bool kernel_noexec_seal(void) {
        int fd = memfd_create("probe", MFD_CLOEXEC | MFD_ALLOW_SEALING | 0x0008U /* MFD_NOEXEC_SEAL */);
        if (fd < 0)
                return false;
        close(fd);
        return true;
}

DOC_TEST(memfd_reply_seals, .timeout = 30, .fini = release) {
        unsigned seals = 0;
        int fd = -1;

        begin();
        cr_assert_eq(ipcb_memfd_sealed(c, 4096, F_SEAL_EXEC, &fd, &seals), -EINVAL,
                     "F_SEAL_EXEC may not be asked for");
        cr_assert_eq(ipcb_memfd_sealed(c, 4096, 0, &fd, &seals), 0);
        cr_assert_eq((int)seals, fcntl(fd, F_GET_SEALS), "reply seals are not F_GET_SEALS");
        cr_assert(seals & F_SEAL_SHRINK);
        cr_assert_eq(!!(seals & F_SEAL_EXEC), kernel_noexec_seal(), "seals 0x%x", seals);
        close(fd);
}

DOC_TEST(freeze_is_idempotent, .timeout = 30, .fini = release) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        unsigned s1 = 0, s2 = 0;
        ipcb_shm *s;

        begin();
        o.flags = IPCB_SHM_PERSISTENT;
        cr_assert_eq(ipcb_shm_create(c, "frz", 4096, &o, &s), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
        cr_assert_eq(ipcb_shm_freeze(c, "frz", &s1), 0);
        cr_assert_eq(ipcb_shm_freeze(c, "frz", &s2), 0, "a second freeze fails");
        cr_assert_eq(s1, s2);
        cr_assert(s2 & F_SEAL_WRITE, "no mapping left: F_SEAL_WRITE (0x%x)", s2);
        cr_assert_eq(ipcb_shm_open(c, "frz", IPCB_READ_WRITE, &s), -EROFS);
        cr_assert_eq(ipcb_unlink(c, "frz"), 0);
}

typedef struct seen {
        unsigned linked, unlinked;
} seen;

static int count_dup(const ipcb_object_info *info, void *arg) {
        seen *n = arg;
        if (strcmp(info->name, "dup") == 0) {
                if (info->flags & IPCB_OBJ_UNLINKED)
                        n->unlinked++;
                else
                        n->linked++;
        }
        return 0;
}

DOC_TEST(list_shows_unlinked_and_successor, .timeout = 30, .fini = release) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_shm *a, *b;
        seen n = { 0 };

        begin();
        cr_assert_eq(ipcb_shm_create(c, "dup", 4096, &o, &a), 0);
        cr_assert_eq(ipcb_unlink(c, "dup"), 0);
        cr_assert_eq(ipcb_shm_create(c, "dup", 4096, &o, &b), 0);
        cr_assert_eq(ipcb_list(c, IPCB_KIND_SHM, count_dup, &n), 0);
        cr_assert_eq(n.linked, 1);
        cr_assert_eq(n.unlinked, 1, "the unlinked one is not listed");
        cr_assert_eq(ipcb_shm_close(a), 0);
        cr_assert_eq(ipcb_shm_close(b), 0);
}

/* A request by hand: header + payload (little-endian). */
static int raw_call(int fd, uint16_t op, uint32_t id, const uint8_t *pl, uint32_t len) {
        uint8_t buf[64] = { (uint8_t)op, (uint8_t)(op >> 8), 0, 0, (uint8_t)id, 0, 0, 0,
                            0, 0, 0, 0, (uint8_t)len, 0, 0, 0 };
        int32_t status;
        ssize_t n;

        memcpy(buf + 16, pl, len);
        cr_assert_eq(raw_send(fd, buf, 16 + len, NULL, 0), 0);
        n = raw_recv(fd, buf, sizeof(buf), NULL, NULL, 2000);
        cr_assert_geq(n, 16, "no reply: %zd", n);
        cr_assert_eq(buf[0] | buf[1] << 8, op | 0x8000);
        memcpy(&status, buf + 8, 4);
        return status;
}

DOC_TEST(hello_repeated, .timeout = 30, .fini = release) {
        static const uint8_t hello_v2[8] = { 2, 0, 0, 0, 0, 0, 0, 0 };
        static const uint8_t list[12] = { 0 };
        int fd;

        begin();
        fd = ipcbd_hello_conn(&d);
        cr_assert_eq(raw_hello(fd), 0, "a second HELLO is refused");
        cr_assert_eq(raw_call(fd, 0x0001, 7, hello_v2, 8), -EPROTONOSUPPORT);
        cr_assert_eq(raw_call(fd, 0x0005, 8, list, 12), 0,
                     "a refused HELLO undid the earlier one");
        close(fd);
}

typedef struct uids {
        unsigned n;
        uid_t uid;
} uids;

static int count_uid(const ipcb_quota_info *q, void *arg) {
        uids *u = arg;
        u->n++;
        u->uid = q->uid;
        return 0;
}

static int quota_all_own(void *arg) {
        ipcb_client *cc;
        uids u = { 0 };

        (void)arg;
        CHILD_CHECK(ipcb_connect(d.sock, &cc) == 0, "connect");
        CHILD_CHECK(ipcb_quota_list(cc, count_uid, &u) == 0, "quota list");
        CHILD_CHECK(u.n == 1 && u.uid == UID_A, "%u records, last uid %u", u.n, (unsigned)u.uid);
        ipcb_disconnect(cc);
        return 0;
}

DOC_TEST(quota_all_unprivileged, .timeout = 30, .fini = release) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_shm *s;

        SKIP_UNLESS_ROOT();
        begin();
        cr_assert_eq(ipcb_shm_create(c, "rootobj", 4096, &o, &s), 0); /* uid 0 in use too */
        RUN_AS(UID_A, false, quota_all_own, NULL);
        cr_assert_eq(ipcb_shm_close(s), 0);
}

/* NOREPLY means no reply, whatever the request meets: before, a NOREPLY
 * CLOSE sent before HELLO was answered -EPROTO, so that a client that
 * pipelines took that answer for its next request's (fails so). */
DOC_TEST(noreply_close_before_hello, .timeout = 30, .fini = release) {
        static const uint8_t hello_v1[8] = { 1, 0, 0, 0, 0, 0, 0, 0 };
        static const uint8_t close_noreply[24] = { 0x02, 0x00, 0, 0x01, 5, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 1 };
        int fd;

        begin();
        fd = raw_connect(d.sock);
        cr_assert_geq(fd, 0);
        cr_assert_eq(raw_send(fd, close_noreply, sizeof(close_noreply), NULL, 0), 0);
        cr_assert_eq(raw_call(fd, 0x0001, 6, hello_v1, 8), 0, "HELLO after a NOREPLY CLOSE");
        close(fd);
}

/* As uid A, its one connection held: a second one's first request, known or
 * not, gets -EUSERS and the connection is closed; a NOREPLY CLOSE gets no
 * answer, only the hang-up.  Before, an unknown opcode got -EOPNOTSUPP and
 * the connection stayed open (fails so). */
static int over_quota_first_requests(void *arg) {
        /* an unknown opcode, then a NOREPLY CLOSE */
        static const uint8_t reqs[2][24] = {
                { 0xff, 0x0f, 0x00, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
                { 0x02, 0x00, 0, 0x01, 8, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 1 },
        };
        static const size_t lens[2] = { 16, 24 };
        ipcb_client *held;
        uint8_t buf[64];
        int32_t status;
        ssize_t n;

        (void)arg;
        CHILD_CHECK(ipcb_connect(d.sock, &held) == 0, "connect");
        for (int i = 0; i < 2; i++) {
                int fd = raw_connect(d.sock);
                CHILD_CHECK(fd >= 0, "raw connect");
                CHILD_CHECK(raw_send(fd, reqs[i], lens[i], NULL, 0) == 0, "send");
                n = raw_recv(fd, buf, sizeof(buf), NULL, NULL, 2000);
                if (i == 0) {
                        CHILD_CHECK(n >= 16, "no reply to the unknown opcode: %zd", n);
                        memcpy(&status, buf + 8, 4);
                        CHILD_CHECK(status == -EUSERS, "unknown opcode over quota: %d", status);
                        n = raw_recv(fd, buf, sizeof(buf), NULL, NULL, 2000);
                }
                CHILD_CHECK(n == 0, "request %d: the connection was not closed (%zd)", i, n);
                close(fd);
        }
        ipcb_disconnect(held);
        return 0;
}

DOC_TEST(over_connection_quota_first_request, .timeout = 30, .fini = release) {
        static const char *const args[] = { "--max-connections", "1", NULL };

        SKIP_UNLESS_ROOT();
        fixture_begin(&d, args);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        RUN_AS(UID_A, false, over_quota_first_requests, NULL);
}

/* FREEZE is for segments: kind 2 is -EINVAL whether or not a semaphore of
 * that name exists (it was -ENOENT when none did). */
DOC_TEST(freeze_kind_checked_first, .timeout = 30, .fini = release) {
        static const uint8_t freeze_sem[5] = { 2, 0, 1, 0, 'x' };
        int fd;

        begin();
        fd = ipcbd_hello_conn(&d);
        cr_assert_eq(raw_call(fd, 0x0302, 9, freeze_sem, 5), -EINVAL);
        close(fd);
}
