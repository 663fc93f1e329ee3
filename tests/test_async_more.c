/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_async_more.c: the asynchronous register, quota and listings
 * (ipcb_shm_register_async, ipcb_quota_async, ipcb_list_async,
 * ipcb_quota_list_async) against a real ipcbrokerd, driven from a poll
 * loop: the same answers as the blocking twins, the borrowed memfd and its
 * copy on every path (cancel, timeout, a full socket, a lost connection),
 * listings of several pages with every object seen once while another
 * connection creates and unlinks, stopping and cancelling a listing, a
 * listing that does not go on across a broker restart, and callbacks that
 * run only inside a prompt ipcb_process.  The fixture checks the daemon's
 * and our fd counts at the end. */
#include "fakemgr.h"
#include "harness.h"
#include "multiuid.h"

#include "ipcbroker.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static ipcbd d;
static ipcb_client *c, *c2; /* c: the loop's; c2: another connection */

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

#define AM_TEST(name, ...) \
        FIXTURE_TEST(async_more, name, &d, release, .init = setup, .fini = teardown, \
                     .timeout = 60, ##__VA_ARGS__)

/* ---- driving the loop ---- */

static bool in_process;     /* every callback checks that it runs inside ipcb_process */
static int items_now;       /* item calls during the current ipcb_process */
static int pages;           /* ipcb_process calls that made item calls */
static int most_items;      /* the most item calls one ipcb_process made */
static long slowest_us;     /* the longest ipcb_process */

static void counters_reset(void) {
        items_now = pages = most_items = 0;
        slowest_us = 0;
}

static long us_since(const struct timespec *t0) {
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return (t.tv_sec - t0->tv_sec) * 1000000L + (t.tv_nsec - t0->tv_nsec) / 1000L;
}

static void process_once(void) {
        struct timespec t0;
        long us;
        int n;

        items_now = 0;
        in_process = true;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        n = ipcb_process(c);
        us = us_since(&t0);
        in_process = false;
        cr_assert_geq(n, 0);
        if (us > slowest_us)
                slowest_us = us;
        if (items_now > 0)
                pages++;
        if (items_now > most_items)
                most_items = items_now;
}

/* Poll c's fd as a loop would (with its timeout) and process until
 * *done, or timeout_ms; between (may be NULL) runs after every
 * ipcb_process. */
static void run(const bool *done, int timeout_ms, void (*between)(void *), void *arg) {
        int fd = ipcb_get_fd(c);
        struct timespec t0;

        cr_assert_geq(fd, 3);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (!*done && us_since(&t0) < timeout_ms * 1000L) {
                int ms = ipcb_get_timeout_ms(c);
                struct pollfd p = { .fd = fd, .events = (short)ipcb_get_events(c) };
                if (ms < 0 || ms > 100)
                        ms = 100;
                cr_assert_geq(poll(&p, 1, ms), 0);
                process_once();
                if (between)
                        between(arg);
        }
}

/* Nothing more comes: a round trip, then whatever arrived is processed. */
static void settle(void) {
        cr_assert_eq(ipcb_sync(c), 0);
        process_once();
        process_once();
}

/* ---- register ---- */

typedef struct reg {
        bool done;
        int calls;
        int status;
        ipcb_shm *s;
} reg;

static void on_reg(ipcb_client *cl, int status, ipcb_shm *s, void *userdata) {
        reg *g = userdata;

        cr_assert(in_process, "a callback ran outside ipcb_process");
        cr_assert_eq(cl, c);
        cr_assert_eq(status == 0, s != NULL);
        g->calls++;
        g->done = true;
        g->status = status;
        g->s = s;
}

/* A memfd of size bytes (0: none) holding text, with seals. */
static int memfd_with(size_t size, const char *text, unsigned seals) {
        int fd = memfd_create("amore", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        cr_assert_geq(fd, 0);
        if (size)
                cr_assert_eq(ftruncate(fd, (off_t)size), 0);
        if (text)
                cr_assert_eq(pwrite(fd, text, strlen(text), 0), (ssize_t)strlen(text));
        if (seals)
                cr_assert_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
        return fd;
}

static int stat_c2(const char *name, ipcb_object_info *info) {
        return ipcb_stat(c2, IPCB_KIND_SHM, name, info);
}

/* The memfd is published; the caller closed it right after the call. */
AM_TEST(register_publishes_and_caller_may_close) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        reg g = { 0 }, ro = { 0 };
        int n0, fd;

        cr_assert_geq(ipcb_get_fd(c), 3);
        n0 = self_fd_count();
        fd = memfd_with(8192, "hello", F_SEAL_SHRINK);
        cr_assert_eq(ipcb_shm_register_async(c, "reg", fd, NULL, on_reg, &g, NULL), 0);
        cr_assert_eq(close(fd), 0);
        cr_assert_not(g.done, "callbacks run only in ipcb_process");
        run(&g.done, 5000, NULL, NULL);
        cr_assert_eq(g.calls, 1);
        cr_assert_eq(g.status, 0, "%s", ipcb_strerror(g.status));
        cr_assert_eq(ipcb_shm_access(g.s), IPCB_READ_WRITE);
        cr_assert_eq(ipcb_shm_size(g.s), 8192);
        cr_assert_eq(memcmp(ipcb_shm_data(g.s), "hello", 5), 0);
        /* Seen from another connection, with our one handle. */
        cr_assert_eq(stat_c2("reg", &info), 0);
        cr_assert_eq(info.size, 8192);
        cr_assert_eq(info.handles, 1);
        cr_assert(info.seals & F_SEAL_SHRINK);
        cr_assert_eq(info.mode, 0600);
        /* The handle writes the registered bytes. */
        ipcb_shm *o;
        cr_assert_eq(ipcb_shm_open(c2, "reg", IPCB_READ_ONLY, &o), 0);
        memcpy(ipcb_shm_data(g.s), "world", 5);
        cr_assert_eq(memcmp(ipcb_shm_data(o), "world", 5), 0);
        cr_assert_eq(ipcb_shm_close(o), 0);
        /* Transient: gone with the handle. */
        cr_assert_eq(ipcb_shm_close(g.s), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(stat_c2("reg", &info), -ENOENT);
        cr_assert_eq(self_fd_count(), n0, "an fd leaked");

        /* Write-sealed, with options: a read-only handle, as the blocking call. */
        ipcb_shm_options opts = IPCB_SHM_OPTIONS_INIT;
        opts.mode = 0644;
        fd = memfd_with(4096, "ro", F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
        cr_assert_eq(ipcb_shm_register_async(c, "reg-ro", fd, &opts, on_reg, &ro, NULL), 0);
        cr_assert_eq(close(fd), 0);
        run(&ro.done, 5000, NULL, NULL);
        cr_assert_eq(ro.status, 0, "%s", ipcb_strerror(ro.status));
        cr_assert_eq(ipcb_shm_access(ro.s), IPCB_READ_ONLY);
        cr_assert_eq(stat_c2("reg-ro", &info), 0);
        cr_assert_eq(info.mode, 0644);
        cr_assert_eq(ipcb_shm_close(ro.s), 0);
        settle();
        cr_assert_eq(self_fd_count(), n0, "an fd leaked");
}

/* What the blocking call refuses, the async one refuses with the same
 * errno: at once when the library can tell, else through the callback. */
static int blocking_register(const char *name, int fd, const ipcb_shm_options *o) {
        ipcb_shm *s = NULL;
        int r = ipcb_shm_register(c2, name, fd, o, &s);

        if (r == 0)
                ipcb_shm_close(s);
        return r;
}

static int async_register(const char *name, int fd, const ipcb_shm_options *o) {
        reg g = { 0 };
        int r = ipcb_shm_register_async(c, name, fd, o, on_reg, &g, NULL);

        if (r < 0) {
                settle();
                cr_assert_eq(g.calls, 0, "a refused call must not call back");
                return r;
        }
        run(&g.done, 5000, NULL, NULL);
        cr_assert_eq(g.calls, 1);
        if (g.status == 0)
                ipcb_shm_close(g.s);
        return g.status;
}

AM_TEST(register_refusals_match_blocking) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        int p[2], sv[2], fd, n0, r;
        char tmpl[] = "/tmp/ipcbamore.XXXXXX";
        char longname[IPCB_NAME_MAX + 2];
        reg g = { 0 };

        cr_assert_geq(ipcb_get_fd(c), 3);
        n0 = self_fd_count();
        /* Not memfds: refused at the call, nothing sent. */
        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        cr_assert_eq(ipcb_shm_register_async(c, "bad", p[0], NULL, on_reg, &g, NULL), -EBADFD);
        cr_assert_eq(blocking_register("bad", p[0], NULL), -EBADFD);
        close(p[0]);
        close(p[1]);
        fd = mkstemp(tmpl);
        cr_assert_geq(fd, 0);
        unlink(tmpl);
        cr_assert_eq(ftruncate(fd, 4096), 0);
        cr_assert_eq(async_register("bad", fd, NULL), -EBADFD);
        cr_assert_eq(blocking_register("bad", fd, NULL), -EBADFD);
        close(fd);
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        cr_assert_eq(async_register("bad", sv[0], NULL), -EBADFD);
        close(sv[0]);
        close(sv[1]);
        /* Memfds the broker refuses: through the callback. */
        fd = memfd_with(4096, NULL, 0);
        r = blocking_register("bad", fd, NULL);
        cr_assert_eq(r, -EBADFD, "%s", ipcb_strerror(r));
        cr_assert_eq(async_register("bad", fd, NULL), r, "unsealed memfd");
        close(fd);
        fd = memfd_with(0, NULL, F_SEAL_SHRINK);
        r = blocking_register("bad", fd, NULL);
        cr_assert_eq(r, -EINVAL, "%s", ipcb_strerror(r));
        cr_assert_eq(async_register("bad", fd, NULL), r, "empty memfd");
        close(fd);
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        cr_assert_eq(stat_c2("bad", &info), -ENOENT, "nothing published");
        /* Argument checks, before anything is made. */
        fd = memfd_with(4096, NULL, F_SEAL_SHRINK);
        cr_assert_eq(ipcb_shm_register_async(NULL, "x", fd, NULL, on_reg, &g, NULL), -EINVAL);
        cr_assert_eq(ipcb_shm_register_async(c, "x", fd, NULL, NULL, &g, NULL), -EINVAL);
        cr_assert_eq(ipcb_shm_register_async(c, "x", -1, NULL, on_reg, &g, NULL), -EINVAL);
        cr_assert_eq(ipcb_shm_register_async(c, "", fd, NULL, on_reg, &g, NULL), -EINVAL);
        cr_assert_eq(ipcb_shm_register_async(c, NULL, fd, NULL, on_reg, &g, NULL), -EINVAL);
        memset(longname, 'n', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        cr_assert_eq(ipcb_shm_register_async(c, longname, fd, NULL, on_reg, &g, NULL),
                     -ENAMETOOLONG);
        o.mode = 01000;
        cr_assert_eq(ipcb_shm_register_async(c, "x", fd, &o, on_reg, &g, NULL), -EINVAL);
        cr_assert_eq(blocking_register("x", fd, &o), -EINVAL);
        o = (ipcb_shm_options)IPCB_SHM_OPTIONS_INIT;
        o.struct_size = 1;
        cr_assert_eq(ipcb_shm_register_async(c, "x", fd, &o, on_reg, &g, NULL), -EINVAL);
        /* A taken name. */
        ipcb_shm *taken;
        cr_assert_eq(ipcb_shm_create(c2, "taken", 4096, NULL, &taken), 0);
        cr_assert_eq(blocking_register("taken", fd, NULL), -EEXIST);
        cr_assert_eq(async_register("taken", fd, NULL), -EEXIST);
        cr_assert_eq(ipcb_shm_close(taken), 0);
        close(fd);
        settle();
        cr_assert_eq(g.calls, 0, "a refused call must not call back");
        cr_assert_eq(self_fd_count(), n0, "an fd leaked");
}

/* Cancelled before ipcb_process ran its callback (in flight, or answered
 * and kept): no callback, the handle the reply brought is given back (a
 * transient object goes, a persistent one has no handle left), no fd of
 * ours is left. */
static void register_cancel_case(bool after_reply, bool persistent) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        reg g = { 0 };
        uint64_t k;
        int n0, fd;

        cr_assert_geq(ipcb_get_fd(c), 3);
        n0 = self_fd_count();
        o.flags = persistent ? IPCB_SHM_PERSISTENT : 0;
        fd = memfd_with(4096, "x", F_SEAL_SHRINK);
        cr_assert_eq(ipcb_shm_register_async(c, "rc", fd, &o, on_reg, &g, &k), 0);
        cr_assert_neq(k, 0);
        cr_assert_eq(close(fd), 0);
        if (after_reply)
                cr_assert_eq(ipcb_sync(c), 0); /* the reply is in, kept */
        cr_assert_eq(ipcb_cancel(c, k), 0);
        cr_assert_eq(ipcb_cancel(c, k), -ENOENT);
        settle();
        cr_assert_eq(g.calls, 0, "a cancelled request called back");
        /* (On c: after the release the late reply made.) */
        if (persistent) {
                cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "rc", &info), 0);
                cr_assert_eq(info.handles, 0, "the cancelled register's handle leaked");
                cr_assert_eq(ipcb_unlink(c, "rc"), 0);
        } else {
                cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "rc", &info), -ENOENT,
                             "the cancelled register's handle leaked");
        }
        cr_assert_eq(self_fd_count(), n0, "an fd leaked");
}

AM_TEST(register_cancel_in_flight) {
        register_cancel_case(false, false);
        register_cancel_case(false, true);
}

AM_TEST(register_cancel_after_reply) {
        register_cancel_case(true, false);
        register_cancel_case(true, true);
}

/* The broker does not answer: -ETIMEDOUT, and the library's copy of the
 * memfd is closed then; the late reply's handle is released. */
AM_TEST(register_timeout_disposes_of_the_copy) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        reg g = { 0 };
        int n0, fd;

        cr_assert_geq(ipcb_get_fd(c), 3);
        n0 = self_fd_count();
        cr_assert_eq(ipcb_set_timeout(c, 200), 0);
        ipcbd_pause(&d);
        fd = memfd_with(4096, "late", F_SEAL_SHRINK);
        cr_assert_eq(ipcb_shm_register_async(c, "late", fd, NULL, on_reg, &g, NULL), 0);
        cr_assert_eq(close(fd), 0);
        cr_assert_eq(self_fd_count(), n0 + 1, "the library keeps one copy");
        run(&g.done, 3000, NULL, NULL);
        cr_assert_eq(g.status, -ETIMEDOUT);
        cr_assert_eq(self_fd_count(), n0, "the copy outlived the timeout");
        ipcbd_resume(&d);
        cr_assert_eq(ipcb_set_timeout(c, 0), 0);
        settle();
        cr_assert_eq(g.calls, 1, "a timed-out request must not call back twice");
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "late", &info), -ENOENT,
                     "the late reply's handle leaked");
        cr_assert_eq(self_fd_count(), n0);
}

/* A full socket: the register waits in the library with its own copies
 * of the memfd (the caller's is closed) and goes out later; one cancelled
 * meanwhile leaves nothing behind. */
static void on_stat_count(ipcb_client *cl, int status, const ipcb_object_info *info,
                          void *userdata) {
        (void)cl;
        (void)info;
        cr_assert(in_process);
        cr_assert_eq(status, -ENOENT);
        ++*(int *)userdata;
}

AM_TEST(register_queued_on_full_socket) {
        enum { N = 3000 };
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        reg a = { 0 }, b = { 0 };
        int stats = 0, n0, fa, fb;
        uint64_t kb;

        cr_assert_geq(ipcb_get_fd(c), 3);
        n0 = self_fd_count();
        ipcbd_pause(&d);
        for (int i = 0; i < N; i++)
                cr_assert_eq(ipcb_stat_async(c, IPCB_KIND_SHM, "nope", on_stat_count, &stats,
                                             NULL), 0);
        fa = memfd_with(4096, "queued", F_SEAL_SHRINK);
        fb = memfd_with(4096, "dropped", F_SEAL_SHRINK);
        cr_assert_eq(ipcb_shm_register_async(c, "qa", fa, NULL, on_reg, &a, NULL), 0);
        cr_assert_eq(ipcb_shm_register_async(c, "qb", fb, NULL, on_reg, &b, &kb), 0);
        cr_assert_eq(close(fa), 0);
        cr_assert_eq(close(fb), 0);
        /* Per queued register: the copy for the handle and the one to send. */
        cr_assert_eq(self_fd_count(), n0 + 4, "not queued, or copies missing");
        cr_assert_eq(ipcb_cancel(c, kb), 0);
        ipcbd_resume(&d);
        run(&a.done, 20000, NULL, NULL); /* (answered in order: the stats first) */
        cr_assert_eq(stats, N);
        cr_assert_eq(a.status, 0, "%s", ipcb_strerror(a.status));
        cr_assert_eq(memcmp(ipcb_shm_data(a.s), "queued", 6), 0);
        settle();
        cr_assert_eq(b.calls, 0, "a cancelled request called back");
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "qb", &info), -ENOENT,
                     "the cancelled register's handle leaked");
        cr_assert_eq(ipcb_shm_close(a.s), 0);
        settle();
        cr_assert_eq(self_fd_count(), n0, "an fd leaked");
}

/* The broker dies with the register unread: -ENOTCONN, and the copy of
 * the memfd is closed. */
AM_TEST(register_connection_lost) {
        reg g = { 0 };
        int n0, fd;

        cr_assert_geq(ipcb_get_fd(c), 3);
        n0 = self_fd_count();
        ipcbd_pause(&d);
        fd = memfd_with(4096, "gone", F_SEAL_SHRINK);
        cr_assert_eq(ipcb_shm_register_async(c, "gone", fd, NULL, on_reg, &g, NULL), 0);
        cr_assert_eq(close(fd), 0);
        /* Killed while stopped: it never reads the request.  (The fixture
         * then checks our fds only.) */
        cr_assert_eq(kill(d.pid, SIGKILL), 0);
        cr_assert_eq(waitpid(d.pid, NULL, 0), d.pid);
        d.pid = 0;
        unlink(d.sock);
        rmdir(d.dir);
        run(&g.done, 5000, NULL, NULL);
        cr_assert_eq(g.calls, 1);
        cr_assert_eq(g.status, -ENOTCONN, "%s", ipcb_strerror(g.status));
        process_once();
        cr_assert_eq(g.calls, 1);
        cr_assert_eq(self_fd_count(), n0, "an fd leaked");
}

/* ---- quota ---- */

typedef struct quota {
        bool done;
        int calls;
        int status;
        bool has_info;
        ipcb_quota_info info;
} quota;

static void on_quota(ipcb_client *cl, int status, const ipcb_quota_info *info, void *userdata) {
        quota *q = userdata;

        cr_assert(in_process, "a callback ran outside ipcb_process");
        cr_assert_eq(cl, c);
        cr_assert_eq(status == 0, info != NULL);
        q->calls++;
        q->done = true;
        q->status = status;
        q->has_info = info != NULL;
        if (info)
                q->info = *info;
}

static void quota_same(const ipcb_quota_info *a, const ipcb_quota_info *b) {
        cr_assert_eq(a->uid, b->uid);
        cr_assert_eq(a->exempt, b->exempt);
        cr_assert_eq(a->objects, b->objects);
        cr_assert_eq(a->bytes, b->bytes);
        cr_assert_eq(a->handles, b->handles);
        cr_assert_eq(a->connections, b->connections);
        cr_assert_eq(a->max_objects, b->max_objects);
        cr_assert_eq(a->max_bytes, b->max_bytes);
        cr_assert_eq(a->max_handles, b->max_handles);
        cr_assert_eq(a->max_connections, b->max_connections);
}

/* Every uid a quota listing reported, in order. */
#define QMAX 64
typedef struct qlist {
        bool done;
        int status, finals, n;
        ipcb_quota_info info[QMAX];
} qlist;

static int on_qitem(ipcb_client *cl, int status, const ipcb_quota_info *info, void *userdata) {
        qlist *q = userdata;

        cr_assert(in_process, "a callback ran outside ipcb_process");
        cr_assert_eq(cl, c);
        cr_assert_not(q->done, "a call after the final one");
        if (!info) {
                q->done = true;
                q->finals++;
                q->status = status;
                return 0;
        }
        cr_assert_eq(status, 0);
        cr_assert_lt(q->n, QMAX);
        q->info[q->n++] = *info;
        return 0;
}

static int blocking_qitem(const ipcb_quota_info *info, void *userdata) {
        qlist *q = userdata;

        cr_assert_lt(q->n, QMAX);
        q->info[q->n++] = *info;
        return 0;
}

AM_TEST(quota_matches_blocking) {
        ipcb_quota_info want = IPCB_QUOTA_INFO_INIT;
        quota q = { 0 }, other = { 0 };
        ipcb_shm *s[3];
        static qlist ql, bl;

        for (int i = 0; i < 3; i++) {
                char name[16];
                snprintf(name, sizeof(name), "q%d", i);
                cr_assert_eq(ipcb_shm_create(c2, name, 4096 << i, NULL, &s[i]), 0);
        }
        cr_assert_eq(ipcb_quota(c, getuid(), &want), 0);
        cr_assert_eq(ipcb_quota_async(c, getuid(), on_quota, &q, NULL), 0);
        run(&q.done, 5000, NULL, NULL);
        cr_assert_eq(q.calls, 1);
        cr_assert_eq(q.status, 0, "%s", ipcb_strerror(q.status));
        quota_same(&q.info, &want);
        cr_assert_eq(q.info.uid, getuid());
        cr_assert_geq(q.info.objects, 3);
        cr_assert_geq(q.info.connections, 2);
        /* Another uid: as the blocking call (root sees it; others -EPERM). */
        int r = ipcb_quota(c, UID_C, &want);
        cr_assert_eq(ipcb_quota_async(c, UID_C, on_quota, &other, NULL), 0);
        run(&other.done, 5000, NULL, NULL);
        cr_assert_eq(other.status, r, "async %s, blocking %s", ipcb_strerror(other.status),
                     ipcb_strerror(r));
        if (r == 0)
                quota_same(&other.info, &want);
        else
                cr_assert_not(other.has_info);
        /* The listing: the same records as ipcb_quota_list. */
        memset(&ql, 0, sizeof(ql));
        memset(&bl, 0, sizeof(bl));
        cr_assert_eq(ipcb_quota_list(c, blocking_qitem, &bl), 0);
        cr_assert_eq(ipcb_quota_list_async(c, on_qitem, &ql, NULL), 0);
        run(&ql.done, 5000, NULL, NULL);
        cr_assert_eq(ql.finals, 1);
        cr_assert_eq(ql.status, 0, "%s", ipcb_strerror(ql.status));
        cr_assert_eq(ql.n, bl.n);
        cr_assert_geq(ql.n, 1);
        for (int i = 0; i < ql.n; i++)
                quota_same(&ql.info[i], &bl.info[i]);
        /* Bad arguments call nothing back. */
        cr_assert_eq(ipcb_quota_async(c, (uid_t)-1, on_quota, &q, NULL), -EINVAL);
        cr_assert_eq(ipcb_quota_async(NULL, 0, on_quota, &q, NULL), -EINVAL);
        cr_assert_eq(ipcb_quota_async(c, 0, NULL, &q, NULL), -EINVAL);
        cr_assert_eq(ipcb_quota_list_async(c, NULL, &q, NULL), -EINVAL);
        cr_assert_eq(ipcb_quota_list_async(NULL, on_qitem, &ql, NULL), -EINVAL);
        settle();
        cr_assert_eq(q.calls, 1);
        for (int i = 0; i < 3; i++)
                cr_assert_eq(ipcb_shm_close(s[i]), 0);
}

/* As an unprivileged uid (a child process: no Criterion assertions). */
typedef struct kid {
        bool done;
        int status, calls, items, finals;
        bool has_info;
        uid_t uid;
} kid;

static void kid_quota(ipcb_client *cl, int status, const ipcb_quota_info *info, void *userdata) {
        kid *k = userdata;

        (void)cl;
        k->done = true;
        k->calls++;
        k->status = status;
        k->has_info = info != NULL;
        if (info)
                k->uid = info->uid;
}

static int kid_qitem(ipcb_client *cl, int status, const ipcb_quota_info *info, void *userdata) {
        kid *k = userdata;

        (void)cl;
        if (!info) {
                k->done = true;
                k->finals++;
                k->status = status;
        } else {
                k->items++;
                k->uid = info->uid;
        }
        return 0;
}

static bool kid_run(ipcb_client *cl, const bool *done) {
        int fd = ipcb_get_fd(cl);

        for (int i = 0; fd >= 0 && !*done && i < 500; i++) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                (void)poll(&p, 1, 10);
                if (ipcb_process(cl) < 0)
                        return false;
        }
        return *done;
}

static int quota_as_user(void *arg) {
        ipcb_quota_info q = IPCB_QUOTA_INFO_INIT;
        ipcb_client *cl;
        kid k = { 0 };

        (void)arg;
        CHILD_CHECK(ipcb_connect(d.sock, &cl) == 0, "connect");
        CHILD_CHECK(ipcb_quota(cl, getuid() + 1, &q) == -EPERM, "blocking: foreign quota");
        CHILD_CHECK(ipcb_quota_async(cl, getuid() + 1, kid_quota, &k, NULL) == 0, "submit");
        CHILD_CHECK(kid_run(cl, &k.done), "no callback");
        CHILD_CHECK(k.status == -EPERM && !k.has_info && k.calls == 1, "foreign quota: %s",
                    ipcb_strerror(k.status));
        k = (kid){ 0 };
        CHILD_CHECK(ipcb_quota_async(cl, getuid(), kid_quota, &k, NULL) == 0, "submit");
        CHILD_CHECK(kid_run(cl, &k.done), "no callback");
        CHILD_CHECK(k.status == 0 && k.has_info && k.uid == getuid(), "own quota: %s",
                    ipcb_strerror(k.status));
        /* The listing shows our own uid only. */
        k = (kid){ 0 };
        CHILD_CHECK(ipcb_quota_list_async(cl, kid_qitem, &k, NULL) == 0, "submit");
        CHILD_CHECK(kid_run(cl, &k.done), "no final call");
        CHILD_CHECK(k.status == 0 && k.finals == 1 && k.items == 1 && k.uid == getuid(),
                    "list: %s, %d items", ipcb_strerror(k.status), k.items);
        ipcb_disconnect(cl);
        return 0;
}

AM_TEST(quota_foreign_uid_refused) {
        SKIP_UNLESS_ROOT();
        RUN_AS(UID_A, false, quota_as_user, NULL);
}

/* ---- listings ---- */

/* Names long enough (NAME_LEN bytes) that a LIST page holds about 31 of
 * them: a record is 56 bytes plus the name, a page at most 8 KiB. */
#define NAME_LEN 200
#define NSHM 80
#define NSEM 40
#define PAGE_MAX 32
#define SEEN_MAX 1024

static void long_name(char *buf, char tag, int i) {
        int n = snprintf(buf, NAME_LEN + 1, "%c%04d-", tag, i);
        memset(buf + n, 'x', (size_t)(NAME_LEN - n));
        buf[NAME_LEN] = '\0';
}

/* Persistent objects (no handle held), created by c2, shm and sem
 * interleaved so that a listing of every kind merges them. */
static void make_objects(char tag, int nshm, int nsem) {
        ipcb_shm_options so = IPCB_SHM_OPTIONS_INIT;
        ipcb_sem_options mo = IPCB_SEM_OPTIONS_INIT;
        char name[NAME_LEN + 1];

        so.flags = IPCB_SHM_PERSISTENT;
        mo.flags = IPCB_SEM_PERSISTENT;
        for (int i = 0; i < nshm || i < nsem; i++) {
                if (i < nshm) {
                        ipcb_shm *s;
                        long_name(name, tag, i);
                        cr_assert_eq(ipcb_shm_create(c2, name, 4096, &so, &s), 0);
                        cr_assert_eq(ipcb_shm_close(s), 0);
                }
                if (i < nsem) {
                        ipcb_sem *s;
                        long_name(name, tag, i);
                        cr_assert_eq(ipcb_sem_create(c2, name, 0, &mo, &s), 0);
                        cr_assert_eq(ipcb_sem_close(s), 0);
                }
        }
}

static int unlink_all_cb(const ipcb_object_info *info, void *userdata) {
        (void)userdata;
        if (info->kind == IPCB_KIND_SHM)
                cr_assert_eq(ipcb_shm_unlink(c2, info->name), 0);
        else
                cr_assert_eq(ipcb_sem_unlink(c2, info->name), 0);
        return 0;
}

static void unlink_all(void) {
        cr_assert_eq(ipcb_list(c2, 0, unlink_all_cb, NULL), 0);
        cr_assert_eq(ipcb_sync(c2), 0);
}

/* What a listing reported. */
typedef struct listing {
        bool done;
        int finals, status, n;
        int stop_at;        /* item number (1-based) at which to stop, 0: never */
        int stop_value;     /* returned there, unless cancel */
        bool cancel;        /* ipcb_cancel there instead */
        void (*at_first)(void); /* runs in the first item call, if set */
        uint64_t cookie;
        struct {
                int kind;
                uint64_t id;
                char tag;
                int index;
        } seen[SEEN_MAX];
} listing;

static int on_item(ipcb_client *cl, int status, const ipcb_object_info *info, void *userdata) {
        listing *L = userdata;

        cr_assert(in_process, "a callback ran outside ipcb_process");
        cr_assert_eq(cl, c);
        cr_assert_not(L->done, "a call after the final one");
        if (!info) {
                L->done = true;
                L->finals++;
                L->status = status;
                return 12345; /* ignored */
        }
        cr_assert_eq(status, 0);
        cr_assert_lt(L->n, SEEN_MAX);
        items_now++;
        L->seen[L->n].kind = info->kind;
        L->seen[L->n].id = info->id;
        L->seen[L->n].tag = info->name[0];
        L->seen[L->n].index = atoi(info->name + 1);
        cr_assert_eq(strlen(info->name), NAME_LEN);
        L->n++;
        if (L->n == 1 && L->at_first)
                L->at_first();
        if (L->stop_at && L->n == L->stop_at) {
                if (L->cancel) {
                        cr_assert_eq(ipcb_cancel(cl, L->cookie), 0);
                        cr_assert_eq(ipcb_cancel(cl, L->cookie), -ENOENT);
                        return 0;
                }
                return L->stop_value;
        }
        return 0;
}

/* How many times L saw (kind, tag, index); and ids strictly increasing. */
static int times_seen(const listing *L, int kind, char tag, int index) {
        int n = 0;

        for (int i = 0; i < L->n; i++)
                n += L->seen[i].kind == kind && L->seen[i].tag == tag &&
                     L->seen[i].index == index;
        return n;
}

static void ids_increase(const listing *L) {
        for (int i = 1; i < L->n; i++)
                cr_assert_gt(L->seen[i].id, L->seen[i - 1].id, "item %d: not in creation order", i);
}

/* The blocking listing, for comparison. */
static int blocking_item(const ipcb_object_info *info, void *userdata) {
        listing *L = userdata;

        cr_assert_lt(L->n, SEEN_MAX);
        L->seen[L->n].kind = info->kind;
        L->seen[L->n].id = info->id;
        L->n++;
        return 0;
}

static listing *listing_new(void) {
        listing *L = calloc(1, sizeof(*L));

        cr_assert_not_null(L);
        return L;
}

/* Nothing in flight any more: no deadline pending. */
static void idle(void) {
        cr_assert_eq(ipcb_get_timeout_ms(c), -1, "a request is still in flight");
}

AM_TEST(list_pages_every_object_once) {
        listing *L = listing_new(), *B = listing_new();

        make_objects('a', NSHM, NSEM);
        counters_reset();
        cr_assert_eq(ipcb_list_async(c, 0, on_item, L, &L->cookie), 0);
        cr_assert_neq(L->cookie, 0);
        cr_assert_eq(L->n, 0, "callbacks run only in ipcb_process");
        run(&L->done, 10000, NULL, NULL);
        cr_assert_eq(L->finals, 1);
        cr_assert_eq(L->status, 0, "%s", ipcb_strerror(L->status));
        cr_assert_eq(L->n, NSHM + NSEM);
        for (int i = 0; i < NSHM; i++)
                cr_assert_eq(times_seen(L, IPCB_KIND_SHM, 'a', i), 1, "segment %d", i);
        for (int i = 0; i < NSEM; i++)
                cr_assert_eq(times_seen(L, IPCB_KIND_SEM, 'a', i), 1, "semaphore %d", i);
        ids_increase(L);
        /* Page by page: one page per ipcb_process, each prompt. */
        cr_assert_geq(pages, (NSHM + NSEM + PAGE_MAX - 1) / PAGE_MAX, "%d pages", pages);
        cr_assert_leq(most_items, PAGE_MAX, "%d items in one ipcb_process", most_items);
        cr_assert_lt(slowest_us, 1000000L, "an ipcb_process took %ld us", slowest_us);
        cr_log_info("%d items in %d pages, at most %d a page, slowest ipcb_process %ld us",
                    L->n, pages, most_items, slowest_us);
        /* The same as the blocking listing. */
        cr_assert_eq(ipcb_list(c, 0, blocking_item, B), 0);
        cr_assert_eq(B->n, L->n);
        for (int i = 0; i < L->n; i++)
                cr_assert_eq(B->seen[i].id, L->seen[i].id);
        /* Over: nothing more in flight, no more calls, not cancellable. */
        idle();
        settle();
        cr_assert_eq(L->finals, 1);
        cr_assert_eq(ipcb_cancel(c, L->cookie), -ENOENT);
        unlink_all();
        free(L);
        free(B);
}

AM_TEST(list_kind_filter_and_arguments) {
        listing *L = listing_new();

        make_objects('k', NSHM, NSEM);
        cr_assert_eq(ipcb_list_async(c, IPCB_KIND_SEM, on_item, L, NULL), 0);
        run(&L->done, 10000, NULL, NULL);
        cr_assert_eq(L->status, 0, "%s", ipcb_strerror(L->status));
        cr_assert_eq(L->n, NSEM);
        for (int i = 0; i < NSEM; i++)
                cr_assert_eq(times_seen(L, IPCB_KIND_SEM, 'k', i), 1, "semaphore %d", i);
        memset(L, 0, sizeof(*L));
        cr_assert_eq(ipcb_list_async(c, IPCB_KIND_SHM, on_item, L, NULL), 0);
        run(&L->done, 10000, NULL, NULL);
        cr_assert_eq(L->status, 0, "%s", ipcb_strerror(L->status));
        cr_assert_eq(L->n, NSHM);
        for (int i = 0; i < NSHM; i++)
                cr_assert_eq(times_seen(L, IPCB_KIND_SHM, 'k', i), 1, "segment %d", i);
        ids_increase(L);
        /* Refused at once, nothing called back. */
        memset(L, 0, sizeof(*L));
        cr_assert_eq(ipcb_list_async(c, 9, on_item, L, NULL), -EINVAL);
        cr_assert_eq(ipcb_list_async(c, -1, on_item, L, NULL), -EINVAL);
        cr_assert_eq(ipcb_list_async(c, 0, NULL, L, NULL), -EINVAL);
        cr_assert_eq(ipcb_list_async(NULL, 0, on_item, L, NULL), -EINVAL);
        settle();
        cr_assert_eq(L->n + L->finals, 0);
        /* An empty listing: only the final call. */
        unlink_all();
        cr_assert_eq(ipcb_list_async(c, 0, on_item, L, NULL), 0);
        run(&L->done, 5000, NULL, NULL);
        cr_assert_eq(L->finals, 1);
        cr_assert_eq(L->status, 0);
        cr_assert_eq(L->n, 0);
        free(L);
}

/* An item callback's non-zero return ends the listing: the final call
 * gets that value, no other call follows, no page is asked for. */
static void stop_case(int at, int value) {
        listing *L = listing_new();

        L->stop_at = at;
        L->stop_value = value;
        cr_assert_eq(ipcb_list_async(c, 0, on_item, L, &L->cookie), 0);
        run(&L->done, 10000, NULL, NULL);
        cr_assert_eq(L->finals, 1);
        cr_assert_eq(L->status, value);
        cr_assert_eq(L->n, at);
        idle();
        settle();
        cr_assert_eq(L->n, at, "item calls after the stop");
        cr_assert_eq(L->finals, 1);
        free(L);
}

AM_TEST(list_stops_when_an_item_says_so) {
        make_objects('s', NSHM, NSEM);
        stop_case(1, -EIO);
        stop_case(40, 7);             /* on the second page */
        stop_case(NSHM + NSEM, 1);    /* the very last item */
        unlink_all();
}

/* Cancelled from its own item callback: no further call at all. */
AM_TEST(list_cancel_from_item_callback) {
        listing *L = listing_new();

        make_objects('c', NSHM, NSEM);
        L->stop_at = 40;
        L->cancel = true;
        cr_assert_eq(ipcb_list_async(c, 0, on_item, L, &L->cookie), 0);
        run(&L->done, 1500, NULL, NULL);
        cr_assert_not(L->done, "a cancelled listing made its final call");
        cr_assert_eq(L->n, 40);
        idle();
        settle();
        cr_assert_eq(L->n, 40);
        cr_assert_eq(L->finals, 0);
        cr_assert_eq(ipcb_cancel(c, L->cookie), -ENOENT);
        unlink_all();
        free(L);
}

/* Cancelled from outside: before its first page, and between pages. */
static void cancel_after_first_page(void *arg) {
        listing *L = arg;

        if (L->n > 0 && !L->cancel) {
                L->cancel = true;
                cr_assert_eq(ipcb_cancel(c, L->cookie), 0);
                L->stop_at = L->n; /* what it had seen */
        }
}

AM_TEST(list_cancel_between_pages) {
        listing *L = listing_new();
        bool never = false;

        make_objects('b', NSHM, NSEM);
        /* At once: no call at all. */
        cr_assert_eq(ipcb_list_async(c, 0, on_item, L, &L->cookie), 0);
        cr_assert_eq(ipcb_cancel(c, L->cookie), 0);
        run(&never, 300, NULL, NULL);
        settle();
        cr_assert_eq(L->n + L->finals, 0);
        cr_assert_eq(ipcb_cancel(c, L->cookie), -ENOENT);
        /* After the first page: that page only. */
        memset(L, 0, sizeof(*L));
        cr_assert_eq(ipcb_list_async(c, 0, on_item, L, &L->cookie), 0);
        run(&L->done, 1500, cancel_after_first_page, L);
        cr_assert(L->cancel, "no page came");
        cr_assert_not(L->done, "a cancelled listing made its final call");
        cr_assert_eq(L->n, L->stop_at);
        cr_assert_lt(L->n, NSHM + NSEM);
        idle();
        settle();
        cr_assert_eq(L->n, L->stop_at, "item calls after the cancel");
        cr_assert_eq(L->finals, 0);
        cr_assert_eq(ipcb_cancel(c, L->cookie), -ENOENT);
        unlink_all();
        free(L);
}

/* Another connection creates and unlinks while the listing runs: no
 * object is seen twice, every one that lived throughout is seen. */
typedef struct churn {
        listing *L;
        int next;   /* churn objects created so far */
        int gone;   /* churn objects unlinked so far */
        int rounds;
} churn;

static void churn_step(void *arg) {
        ipcb_shm_options so = IPCB_SHM_OPTIONS_INIT;
        char name[NAME_LEN + 1];
        churn *ch = arg;

        if (ch->L->done)
                return;
        so.flags = IPCB_SHM_PERSISTENT;
        ch->rounds++;
        for (int i = 0; i < 4; i++) {
                ipcb_shm *s;
                /* Unlink an older churn object, and make it again under the
                 * same name (a new object, a new id). */
                if (ch->gone < ch->next) {
                        long_name(name, 'u', ch->gone++);
                        cr_assert_eq(ipcb_shm_unlink(c2, name), 0);
                        cr_assert_eq(ipcb_shm_create(c2, name, 4096, &so, &s), 0);
                        cr_assert_eq(ipcb_shm_close(s), 0);
                }
                long_name(name, 'u', ch->next++);
                cr_assert_eq(ipcb_shm_create(c2, name, 4096, &so, &s), 0);
                cr_assert_eq(ipcb_shm_close(s), 0);
        }
}

AM_TEST(list_while_another_connection_churns) {
        listing *L = listing_new();
        churn ch = { .L = L };

        /* Stable objects ('t') interleaved with churn objects ('u'). */
        make_objects('t', 60, 30);
        for (int i = 0; i < 30; i++)
                churn_step(&ch);
        ch.rounds = 0;
        cr_assert_eq(ipcb_list_async(c, 0, on_item, L, &L->cookie), 0);
        run(&L->done, 20000, churn_step, &ch);
        cr_assert_eq(L->finals, 1);
        cr_assert_eq(L->status, 0, "%s", ipcb_strerror(L->status));
        cr_assert_geq(ch.rounds, 3, "the churn did not overlap the listing");
        for (int i = 0; i < L->n; i++)
                for (int j = i + 1; j < L->n; j++)
                        cr_assert_neq(L->seen[i].id, L->seen[j].id, "object %llu seen twice",
                                      (unsigned long long)L->seen[i].id);
        ids_increase(L);
        for (int i = 0; i < 60; i++)
                cr_assert_eq(times_seen(L, IPCB_KIND_SHM, 't', i), 1, "stable segment %d", i);
        for (int i = 0; i < 30; i++)
                cr_assert_eq(times_seen(L, IPCB_KIND_SEM, 't', i), 1, "stable semaphore %d", i);
        cr_log_info("%d items, %d churn rounds, %d churn objects made", L->n, ch.rounds,
                    ch.next);
        unlink_all();
        free(L);
}

/* A page the broker does not answer: -ETIMEDOUT in the final call, and
 * the late page is disposed of. */
AM_TEST(list_timeout) {
        listing *L = listing_new();

        make_objects('o', 3, 3);
        cr_assert_eq(ipcb_set_timeout(c, 200), 0);
        ipcbd_pause(&d);
        cr_assert_eq(ipcb_list_async(c, 0, on_item, L, &L->cookie), 0);
        run(&L->done, 3000, NULL, NULL);
        cr_assert_eq(L->finals, 1);
        cr_assert_eq(L->status, -ETIMEDOUT);
        cr_assert_eq(L->n, 0);
        cr_assert_eq(ipcb_cancel(c, L->cookie), -ENOENT);
        ipcbd_resume(&d);
        cr_assert_eq(ipcb_set_timeout(c, 0), 0);
        settle();
        cr_assert_eq(L->finals, 1);
        cr_assert_eq(L->n, 0, "a timed-out page was handed over");
        unlink_all();
        free(L);
}

/* The broker goes away after the first page: -ENOTCONN, no reconnect. */
static void stop_after_first_page(void *arg) {
        listing *L = arg;

        if (L->n > 0 && d.pid)
                ipcbd_stop(&d);
}

AM_TEST(list_connection_lost) {
        listing *L = listing_new();

        make_objects('l', NSHM, NSEM);
        cr_assert_eq(ipcb_list_async(c, 0, on_item, L, &L->cookie), 0);
        run(&L->done, 10000, stop_after_first_page, L);
        cr_assert_eq(d.pid, 0, "no page came");
        cr_assert_eq(L->finals, 1);
        cr_assert_eq(L->status, -ENOTCONN, "%s", ipcb_strerror(L->status));
        cr_assert_gt(L->n, 0);
        cr_assert_lt(L->n, NSHM + NSEM);
        free(L);
}

/* ---- a broker restart in the middle of a listing ----
 * The fake service manager (fakemgr.h) restarts the broker on the same
 * socket, as test_watch_restart does.  A blocking call in the first item
 * call reconnects c: the listing's cursor means nothing to the new
 * connection, so its next page is not asked for there. */

static fakemgr m;
static char rsock[96];

static void rs_setup(void) {
        fixture_begin_bare(&d);
        fakemgr_init(&m, "/tmp/ipcbam.XXXXXX", 256);
        snprintf(rsock, sizeof(rsock), "%s/ipcb.sock", m.dir);
}

static void rs_start(void) {
        fakemgr_exec x = { .sock = rsock };
        pid_t pid = fakemgr_start(&m, &x);

        if (d.base_fds == 0)
                fixture_adopt(&d, pid, rsock);
        else
                d.pid = pid;
}

static void rs_stop(void) {
        int status = fakemgr_stop(&m);

        d.pid = 0;
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "daemon exit status 0x%x", status);
}

static void rs_release(void) {
        release();
        fakemgr_close(&m);
}

static void rs_teardown(void) {
        release();
        if (m.pid > 0) {
                kill(m.pid, SIGKILL);
                waitpid(m.pid, NULL, 0);
                m.pid = 0;
                d.pid = 0;
        }
        fakemgr_close(&m);
        fixture_cleanup(&d);
        unlink(rsock);
        fakemgr_destroy(&m);
}

static void restart_and_reconnect(void) {
        rs_stop();
        rs_start();
        cr_assert_eq(ipcb_sync(c), 0, "c reconnects"); /* (a blocking call in a callback) */
}

FIXTURE_TEST(async_more_restart, list_does_not_go_on_across_a_restart, &d, rs_release,
             .init = rs_setup, .fini = rs_teardown, .timeout = 60) {
        listing *L = listing_new();

        rs_start();
        cr_assert_eq(ipcb_connect(rsock, &c), 0);
        cr_assert_eq(ipcb_connect(rsock, &c2), 0);
        make_objects('r', NSHM, NSEM);
        L->at_first = restart_and_reconnect;
        cr_assert_eq(ipcb_list_async(c, 0, on_item, L, &L->cookie), 0);
        run(&L->done, 10000, NULL, NULL);
        cr_assert_eq(L->finals, 1);
        cr_assert_eq(L->status, -ENOTCONN, "%s", ipcb_strerror(L->status));
        cr_assert_gt(L->n, 1);
        cr_assert_leq(L->n, PAGE_MAX, "items after the first page");
        settle();
        cr_assert_eq(L->finals, 1);
        unlink_all(); /* (what the new broker restored) */
        release();
        rs_stop();
        free(L);
}
