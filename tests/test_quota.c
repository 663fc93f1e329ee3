/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_quota.c: per-uid quotas and per-connection limits.  One uid runs into
 * each limit while another uid keeps creating and connecting and must never
 * notice; the config file and the command line set the limits; QUOTA
 * reports usage.  Multi-uid parts need root (skipped otherwise).
 *
 * Every test starts its own daemon in the harness fixture (harness.h): at its
 * end the daemon is back at its idle fd count, the test process at its own,
 * and the daemon exits 0. */
#include "harness.h"
#include "multiuid.h"

#include "ipcbroker.h"
#include "proto.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static ipcbd d;
static const char *const limits[] = { "--max-objects", "5", "--max-bytes", "1M",
                                      "--max-handles", "12", "--max-connections", "3",
                                      "--max-fds-in-flight", "8", NULL };

/* After a test that failed or skipped before fixture_end. */
static void teardown(void) {
        fixture_cleanup(&d);
}

TestSuite(quota, .fini = teardown, .timeout = 60);

/* Each body starts its daemon (fixture_begin, with its own limits) and
 * releases everything; fixture_end (harness.h) follows: both fd counts back,
 * clean exit. */
#define QUOTA_TEST(name) FIXTURE_TEST(quota, name, &d, fixture_release_nothing)

typedef struct flood {
        int created;      /* objects created before -EDQUOT */
        int last;
} flood;

/* Create transient segments until refused; keep them; report through the
 * exit status: 0 if the refusal was -EDQUOT after exactly `want`. */
static int fill_objects(void *arg) {
        int want = *(int *)arg, r = 0, n = 0;
        ipcb_client *c;
        ipcb_shm *s[64];

        CHILD_CHECK(ipcb_connect(d.sock, &c) == 0, "connect");
        while (n < 64) {
                char name[32];
                snprintf(name, sizeof(name), "u%u-%d", (unsigned)getuid(), n);
                r = ipcb_shm_create(c, name, 4096, NULL, &s[n]);
                if (r < 0)
                        break;
                n++;
        }
        CHILD_CHECK(n == want && r == -EDQUOT, "created %d (want %d), then %s", n, want,
                    ipcb_strerror(r));
        /* Freeing one makes room for one. */
        ipcb_shm_close(s[--n]);
        ipcb_sync(c);
        r = ipcb_shm_create(c, "again", 4096, NULL, &s[n]);
        CHILD_CHECK(r == 0, "create after free: %s", ipcb_strerror(r));
        n++;
        ipcb_quota_info q = IPCB_QUOTA_INFO_INIT;
        CHILD_CHECK(ipcb_quota(c, getuid(), &q) == 0, "quota");
        CHILD_CHECK(q.objects == (uint64_t)want && q.bytes == (uint64_t)want * 4096 &&
                            q.max_objects == 5 && q.connections == 1 && !q.exempt,
                    "usage %llu objects %llu bytes", (unsigned long long)q.objects,
                    (unsigned long long)q.bytes);
        /* Another uid's usage is not ours to see. */
        CHILD_CHECK(ipcb_quota(c, getuid() + 1, &q) == -EPERM, "foreign quota");
        while (n > 0)
                ipcb_shm_close(s[--n]);
        ipcb_disconnect(c);
        return 0;
}

static int bytes_quota(void *arg) {
        (void)arg;
        ipcb_client *c;
        ipcb_shm *a, *b;
        int r;

        CHILD_CHECK(ipcb_connect(d.sock, &c) == 0, "connect");
        r = ipcb_shm_create(c, "big1", 768 << 10, NULL, &a);
        CHILD_CHECK(r == 0, "768K: %s", ipcb_strerror(r));
        r = ipcb_shm_create(c, "big2", 512 << 10, NULL, &b);
        CHILD_CHECK(r == -EDQUOT, "768K+512K over 1M: %s", ipcb_strerror(r));
        r = ipcb_shm_create(c, "big2", 256 << 10, NULL, &b);
        CHILD_CHECK(r == 0, "768K+256K: %s", ipcb_strerror(r));
        /* The anonymous memfds are not charged. */
        int fd;
        r = ipcb_memfd_sealed(c, 512 << 10, 0, &fd, NULL);
        CHILD_CHECK(r == 0, "memfd: %s", ipcb_strerror(r));
        close(fd);
        ipcb_shm_close(a);
        ipcb_shm_close(b);
        ipcb_disconnect(c);
        return 0;
}

static int handles_quota(void *arg) {
        (void)arg;
        ipcb_client *c;
        ipcb_shm *s[20];
        int n = 0, r;

        CHILD_CHECK(ipcb_connect(d.sock, &c) == 0, "connect");
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        r = ipcb_shm_create(c, "h", 4096, &o, &s[n++]);
        CHILD_CHECK(r == 0, "create");
        while (n < 20 && (r = ipcb_shm_open(c, "h", IPCB_READ_ONLY, &s[n])) == 0)
                n++;
        CHILD_CHECK(n == 12 && r == -EDQUOT, "%d handles, then %s", n, ipcb_strerror(r));
        while (n > 0)
                ipcb_shm_close(s[--n]);
        ipcb_disconnect(c);
        return 0;
}

static int connections_quota(void *arg) {
        (void)arg;
        ipcb_client *c[5] = { 0 };
        int r = 0, n = 0;

        while (n < 5 && (r = ipcb_connect(d.sock, &c[n])) == 0)
                n++;
        CHILD_CHECK(n == 3 && r == -EUSERS, "%d connections, then %s", n, ipcb_strerror(r));
        ipcb_disconnect(c[--n]);
        usleep(100 * 1000);
        r = ipcb_connect(d.sock, &c[n]);
        CHILD_CHECK(r == 0, "connect after one closed: %s", ipcb_strerror(r));
        n++;
        while (n > 0)
                ipcb_disconnect(c[--n]);
        return 0;
}

/* A second uid works normally while the first is at every limit. */
static int bystander(void *arg) {
        (void)arg;
        ipcb_client *c;
        ipcb_shm *s[5];
        int r;

        CHILD_CHECK(ipcb_connect(d.sock, &c) == 0, "connect");
        for (int i = 0; i < 5; i++) {
                char name[32];
                snprintf(name, sizeof(name), "by%d", i);
                r = ipcb_shm_create(c, name, 100 << 10, NULL, &s[i]);
                CHILD_CHECK(r == 0, "bystander create %d: %s", i, ipcb_strerror(r));
        }
        for (int i = 0; i < 5; i++)
                ipcb_shm_close(s[i]);
        ipcb_disconnect(c);
        return 0;
}

/* The hog stays at its limits (holding objects and connections) while the
 * bystander runs; a pipe tells it when to let go. */
static int hog(void *arg) {
        int *pipefd = arg;
        ipcb_client *c[3];
        ipcb_shm *s[5];
        char b;
        int r;

        for (int i = 0; i < 3; i++)
                CHILD_CHECK(ipcb_connect(d.sock, &c[i]) == 0, "connect %d", i);
        ipcb_client *x;
        CHILD_CHECK(ipcb_connect(d.sock, &x) == -EUSERS, "4th connection");
        for (int i = 0; i < 5; i++) {
                char name[32];
                snprintf(name, sizeof(name), "hog%d", i);
                r = ipcb_shm_create(c[i % 3], name, 4096, NULL, &s[i]);
                CHILD_CHECK(r == 0, "hog create: %s", ipcb_strerror(r));
        }
        CHILD_CHECK(ipcb_shm_create(c[0], "hog5", 4096, NULL, &s[0]) == -EDQUOT, "6th object");
        CHILD_CHECK(write(pipefd[1], "r", 1) == 1, "signal");
        CHILD_CHECK(read(pipefd[0], &b, 1) == 1, "wait");
        for (int i = 0; i < 3; i++)
                ipcb_disconnect(c[i]);
        return 0;
}

/* A growable segment grown by a holder is charged to its creator's byte
 * quota when the broker looks (here: a stat; also an open, a list, a
 * freeze, a handle's release): the growth is never refused, the next
 * create is, until the segment is gone. */
static int grown_bytes(void *arg) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ipcb_quota_info q = IPCB_QUOTA_INFO_INIT;
        ipcb_client *c;
        ipcb_shm *s, *t;
        int r;

        (void)arg;
        o.flags = IPCB_SHM_GROWABLE;
        CHILD_CHECK(ipcb_connect(d.sock, &c) == 0, "connect");
        CHILD_CHECK(ipcb_shm_create(c, "grows", 0, &o, &s) == 0, "create at 0");
        CHILD_CHECK(ipcb_quota(c, getuid(), &q) == 0 && q.bytes == 0, "bytes %llu at 0",
                    (unsigned long long)q.bytes);
        CHILD_CHECK(ftruncate(ipcb_shm_fd(s), 2 << 20) == 0, "grow to 2 MiB");
        CHILD_CHECK(ipcb_stat(c, IPCB_KIND_SHM, "grows", &info) == 0 && info.size == 2u << 20, "stat");
        CHILD_CHECK(ipcb_quota(c, getuid(), &q) == 0 && q.bytes == 2u << 20, "bytes %llu after growing",
                    (unsigned long long)q.bytes);
        r = ipcb_shm_create(c, "small", 4096, NULL, &t);
        CHILD_CHECK(r == -EDQUOT, "a create past the byte quota: %s", ipcb_strerror(r));
        CHILD_CHECK(ipcb_stat(c, IPCB_KIND_SHM, "grows", &info) == 0, "stat again");
        CHILD_CHECK(ipcb_quota(c, getuid(), &q) == 0 && q.bytes == 2u << 20, "charged once: %llu",
                    (unsigned long long)q.bytes);
        ipcb_shm_close(s); /* transient: gone, and its bytes with it */
        ipcb_sync(c);
        CHILD_CHECK(ipcb_quota(c, getuid(), &q) == 0 && q.bytes == 0, "bytes %llu after it went",
                    (unsigned long long)q.bytes);
        r = ipcb_shm_create(c, "small", 4096, NULL, &t);
        CHILD_CHECK(r == 0, "create after: %s", ipcb_strerror(r));
        ipcb_shm_close(t);
        ipcb_disconnect(c);
        return 0;
}

QUOTA_TEST(grown_segment_is_charged) {
        SKIP_UNLESS_ROOT();
        fixture_begin(&d, limits);
        RUN_AS(UID_A, false, grown_bytes, NULL);
}

QUOTA_TEST(objects_bytes_handles_connections_per_uid) {
        SKIP_UNLESS_ROOT();
        fixture_begin(&d, limits);
        int five = 5;
        RUN_AS(UID_A, false, fill_objects, &five);
        RUN_AS(UID_B, false, fill_objects, &five);
        RUN_AS(UID_A, false, bytes_quota, NULL);
        RUN_AS(UID_A, false, handles_quota, NULL);
        RUN_AS(UID_A, false, connections_quota, NULL);
}

QUOTA_TEST(other_uids_never_notice) {
        SKIP_UNLESS_ROOT();
        fixture_begin(&d, limits);
        int up[2], down[2], status;
        cr_assert_eq(pipe(up), 0);
        cr_assert_eq(pipe(down), 0);
        int hogfds[2] = { down[0], up[1] };
        pid_t pid = test_fork();
        if (pid == 0) {
                if (drop_to(UID_A, UID_A, NULL, 0) < 0)
                        _exit(2);
                _exit(hog(hogfds));
        }
        char b;
        cr_assert_eq(read(up[0], &b, 1), 1, "the hog did not reach its limits");
        RUN_AS(UID_B, false, bystander, NULL);
        RUN_AS(UID_C, false, connections_quota, NULL);
        /* Root is exempt by default. */
        ipcb_client *c;
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        ipcb_shm *s[8];
        for (int i = 0; i < 8; i++) {
                char name[16];
                snprintf(name, sizeof(name), "root%d", i);
                cr_assert_eq(ipcb_shm_create(c, name, 4096, NULL, &s[i]), 0);
        }
        /* Root sees every uid's usage. */
        ipcb_quota_info q = IPCB_QUOTA_INFO_INIT;
        cr_assert_eq(ipcb_quota(c, UID_A, &q), 0);
        cr_assert_eq(q.objects, 5);
        cr_assert_eq(q.connections, 3);
        cr_assert_eq(ipcb_quota(c, 0, &q), 0);
        cr_assert(q.exempt);
        cr_assert_eq(q.objects, 8);
        for (int i = 0; i < 8; i++)
                ipcb_shm_close(s[i]);
        ipcb_disconnect(c);
        cr_assert_eq(write(down[1], "x", 1), 1);
        waitpid(pid, &status, 0);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "hog failed");
        close(up[0]); close(up[1]); close(down[0]); close(down[1]);
}

static int quota_cb(const ipcb_quota_info *i, void *ud) {
        (*(int *)ud)++;
        return i->uid == (uid_t)-1;
}

QUOTA_TEST(config_file_and_cli_precedence) {
        char path[] = "/tmp/ipcbconf.XXXXXX";
        int fd = mkstemp(path);
        cr_assert_geq(fd, 0);
        const char *text = "# limits\nmax_objects_per_uid = 2\nmax_bytes_per_uid = 64K\n"
                           "root_override = no\n  max_connections_per_uid=7  \n";
        cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
        const char *const args[] = { "--config", path, "--max-connections", "9", NULL };
        fixture_begin(&d, args);
        ipcb_client *c;
        ipcb_quota_info q = IPCB_QUOTA_INFO_INIT;
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        cr_assert_eq(ipcb_quota(c, getuid(), &q), 0);
        cr_assert_eq(q.max_objects, 2);
        cr_assert_eq(q.max_bytes, 64 << 10);
        cr_assert_eq(q.max_connections, 9, "the command line wins");
        cr_assert(!q.exempt, "root_override = no");
        ipcb_shm *s[3];
        cr_assert_eq(ipcb_shm_create(c, "a", 4096, NULL, &s[0]), 0);
        cr_assert_eq(ipcb_shm_create(c, "b", 4096, NULL, &s[1]), 0);
        cr_assert_eq(ipcb_shm_create(c, "c", 4096, NULL, &s[2]), -EDQUOT);
        int n = 0;
        cr_assert_eq(ipcb_quota_list(c, quota_cb, &n), 0);
        cr_assert_eq(n, 1, "only our own uid is listed (without root override)");
        ipcb_shm_close(s[0]);
        ipcb_shm_close(s[1]);
        ipcb_disconnect(c);
        /* A typo is an error, not a silently weaker limit. */
        fd = open(path, O_WRONLY | O_TRUNC);
        cr_assert_eq(write(fd, "max_object = 3\n", 15), 15);
        close(fd);
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "%s --config %s --socket /tmp/none.sock 2>/dev/null",
                 IPCBROKERD_PATH, path);
        int st = system(cmd);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "bad config accepted (%d)", st);
        unlink(path);
}

/* A user with a subordinate uid range (/etc/subuid) runs processes as any
 * of those uids: every per-uid quota and share was his 65536 times over.
 * The daemon counts a subordinate uid as the range's owner.  The file's
 * ranges: 62000-62099 and 62050-62059 of uid 61001 (the second overlaps
 * and is left out), 63000-63099 of root (left out: counted as root, they
 * would be exempt), 64000-64009 of a user that does not exist, a line
 * that is not a range, 62100-62109 of 61001 with blanks and a CR around
 * it, and a line too long to be one whose end reads as 65000-65009. */
typedef struct subuid_arg {
        int keep;          /* objects to create and keep until told */
        int fds[2];        /* ready (write), done (read) */
        uid_t counted_as;  /* the uid its quota record must name */
        int used;          /* objects counted there once ours are in */
} subuid_arg;

static int subuid_fill(void *arg) {
        subuid_arg *a = arg;
        ipcb_quota_info q = IPCB_QUOTA_INFO_INIT;
        ipcb_client *c;
        ipcb_shm *s[8];
        int n = 0, r = 0;

        CHILD_CHECK(ipcb_connect(d.sock, &c) == 0, "connect");
        while (n < 8) {
                char name[32];
                snprintf(name, sizeof(name), "sub%u-%d", (unsigned)getuid(), n);
                if ((r = ipcb_shm_create(c, name, 4096, NULL, &s[n])) < 0)
                        break;
                n++;
        }
        CHILD_CHECK(n == a->keep && r == -EDQUOT, "created %d (want %d), then %s", n, a->keep,
                    ipcb_strerror(r));
        CHILD_CHECK(ipcb_quota(c, getuid(), &q) == 0, "quota");
        CHILD_CHECK(q.uid == a->counted_as && q.objects == (uint64_t)a->used,
                    "counted as uid %u with %llu objects (want %u, %d)", (unsigned)q.uid,
                    (unsigned long long)q.objects, (unsigned)a->counted_as, a->used);
        if (a->fds[0] >= 0) {
                char b;
                CHILD_CHECK(write(a->fds[0], "r", 1) == 1, "ready");
                CHILD_CHECK(read(a->fds[1], &b, 1) == 1, "done");
        }
        while (n > 0)
                ipcb_shm_close(s[--n]);
        ipcb_disconnect(c);
        return 0;
}

QUOTA_TEST(subordinate_uids_count_as_their_owner) {
        SKIP_UNLESS_ROOT();
        char path[] = "/tmp/ipcbsubuid.XXXXXX";
        int fd = mkstemp(path), up[2], down[2], status;
        const char *text = "# owner:start:count\n61001:62000:100\n61001:62050:10\nroot:63000:100\n"
                           "no-such-user-ipcb:64000:10\nnot a range\n  61001:62100:10 \r\n";
        char longline[511 + 15]; /* the daemon reads 511 bytes at a time */
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        /* a line too long to be one: its end is not a range either */
        memset(longline, 'x', sizeof(longline));
        memcpy(longline + 511, "61002:65000:10\n", 15);
        cr_assert_eq(write(fd, longline, sizeof(longline)), (ssize_t)sizeof(longline));
        close(fd);
        const char *const args[] = { "--max-objects", "5", "--subuid-file", path, NULL };
        fixture_begin(&d, args);
        cr_assert_eq(pipe2(up, O_CLOEXEC), 0);
        cr_assert_eq(pipe2(down, O_CLOEXEC), 0);

        /* 62000 keeps 5: its owner's quota is spent, for the owner too */
        subuid_arg keeper = { .keep = 5, .fds = { up[1], down[0] }, .counted_as = UID_A, .used = 5 };
        pid_t pid = test_fork();
        if (pid == 0) {
                if (drop_to(62000, 62000, NULL, 0) < 0)
                        _exit(2);
                prctl(PR_SET_PDEATHSIG, SIGKILL); /* (setresuid cleared test_fork's) */
                _exit(subuid_fill(&keeper));
        }
        char b;
        cr_assert_eq(read(up[0], &b, 1), 1, "uid 62000 did not fill its quota");
        subuid_arg none = { .keep = 0, .fds = { -1, -1 }, .counted_as = UID_A, .used = 5 };
        RUN_AS(62055, false, subuid_fill, &none); /* in both ranges: the first */
        RUN_AS(62105, false, subuid_fill, &none); /* blanks and CRLF around its range */
        RUN_AS(UID_A, false, subuid_fill, &none);
        /* root's range, an unknown owner's, no range: each uid its own */
        subuid_arg own = { .keep = 5, .fds = { -1, -1 }, .used = 5 };
        own.counted_as = 63000;
        RUN_AS(63000, false, subuid_fill, &own);
        own.counted_as = 64000;
        RUN_AS(64000, false, subuid_fill, &own);
        own.counted_as = UID_B;
        RUN_AS(UID_B, false, subuid_fill, &own);
        own.counted_as = 65005;
        RUN_AS(65005, false, subuid_fill, &own);
        /* what root is told of a subordinate uid: its owner's record */
        ipcb_client *c;
        ipcb_quota_info q = IPCB_QUOTA_INFO_INIT;
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        cr_assert_eq(ipcb_quota(c, 62099, &q), 0);
        cr_assert_eq(q.uid, UID_A);
        cr_assert_eq(q.objects, 5);
        cr_assert_eq(q.connections, 1);
        ipcb_disconnect(c);
        cr_assert_eq(write(down[1], "d", 1), 1);
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "uid 62000: status 0x%x", status);
        close(up[0]); close(up[1]); close(down[0]); close(down[1]);
        unlink(path);
}

/* A subordinate-uid file with no range in it (this machine's /etc/subuid
 * is empty): the daemon sorted the ranges it had, none, through a NULL
 * pointer, which UBSan stops at (the sanitizer build's daemon did not
 * start). */
QUOTA_TEST(subuid_file_without_ranges) {
        char path[] = "/tmp/ipcbsubuid.XXXXXX";
        int fd = mkstemp(path);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, "# none\n", 7), 7);
        close(fd);
        const char *const args[] = { "--subuid-file", path, NULL };
        fixture_begin(&d, args);
        ipcb_client *c;
        ipcb_quota_info q = IPCB_QUOTA_INFO_INIT;
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        cr_assert_eq(ipcb_quota(c, getuid(), &q), 0);
        cr_assert_eq(q.uid, getuid());
        ipcb_disconnect(c);
        unlink(path);
}

/* A client that never reads the replies to SHM_OPEN (each carries an fd) is
 * dropped once 8 fds wait in its queue. */
/* A connection whose unread replies carry --max-fds-in-flight fds is no
 * longer read (not dropped): it holds exactly that many, and is served
 * again once it has read them. */
QUOTA_TEST(fds_in_flight_per_connection) {
        fixture_begin(&d, limits);
        ipcb_client *c;
        ipcb_shm *s;
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        cr_assert_eq(ipcb_shm_create(c, "f", 4096, NULL, &s), 0);
        int fd = raw_connect(d.sock);
        cr_assert_geq(fd, 0);
        cr_assert_eq(raw_hello(fd), 0);
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg m = { .hdr = { .op = IPCB_OP_SHM_OPEN, .id = 1 } };
        m.shm_open.access = IPCB_WA_READ_ONLY;
        m.shm_open.name = (ipcb_name){ .ptr = "f", .len = 1 };
        ssize_t len = ipcb__proto_encode(&m, buf, sizeof(buf));
        unsigned sent, replies = 0, fds = 0;
        cr_assert_eq(raw_send_until_stalled(fd, buf, (size_t)len, 20000, 300, &sent), 0);
        fprintf(stderr, "[quota] fd hoarder: %u requests sent before its socket stayed full\n", sent);
        /* What it was sent so far: exactly the in-flight bound, then nothing. */
        for (;;) {
                int got[4];
                unsigned n = 4;
                ssize_t k = raw_recv(fd, buf, sizeof(buf), got, &n, 200);
                if (k <= 0)
                        break;
                replies++;
                fds += n;
                for (unsigned i = 0; i < n; i++)
                        close(got[i]);
                if (fds >= 8)
                        break;
        }
        cr_assert_geq(fds, 8, "no reply came back");
        /* Having read some, it is served again: more replies arrive. */
        unsigned more = 0;
        for (;;) {
                int got[4];
                unsigned n = 4;
                ssize_t k = raw_recv(fd, buf, sizeof(buf), got, &n, 500);
                if (k <= 0)
                        break;
                more++;
                for (unsigned i = 0; i < n; i++)
                        close(got[i]);
                if (more > 64)
                        break;
        }
        fprintf(stderr, "[quota] fd hoarder: %u replies before reading, %u after\n", replies, more);
        cr_assert_gt(more, 16, "a connection that read its replies was not served again");
        close(fd);
        ipcb_shm_close(s);
        ipcb_disconnect(c);
}
