/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_open_fd.c: ipcb_shm_open_fd, an open for a descriptor alone (no
 * handle), against a real ipcbrokerd: what the descriptor can and cannot
 * do, that nothing is held at the broker (holders, transient lifetime, the
 * read-only description), refusals, a hostile uid, raw requests, and that
 * neither side keeps an fd it should not.  Every test runs in the harness
 * fixture: both fd counts back at the end and a clean daemon exit. */
#include "harness.h"

#include "ipcbroker.h"
#include "proto.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define UNPRIV_UID 61001
#define UNPRIV_GID 61001

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

#define CHECKED_TEST(suite, name) FIXTURE_TEST(suite, name, &d, release)

TestSuite(open_fd, .init = setup, .fini = teardown, .timeout = 60);

static ipcb_shm *create_ok(const char *name, size_t size, unsigned mode, unsigned flags) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_shm *s;
        int k;

        o.mode = mode;
        o.flags = flags;
        k = ipcb_shm_create(c, name, size, &o, &s);
        cr_assert_eq(k, 0, "create %s: %s", name, strerror(-k));
        return s;
}

static unsigned handles_of(const char *name) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, name, &info), 0);
        return info.handles;
}

/* Wait for a child; true if it exited 0.  Logs its failure code otherwise. */
static bool child_ok(pid_t pid) {
        int st;

        cr_assert_eq(waitpid(pid, &st, 0), pid);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
                return true;
        cr_log_error("child: %s %d", WIFEXITED(st) ? "exit" : "signal",
                     WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        return false;
}

static int reopen_fd(int fd, int flags) {
        char path[64];

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        return open(path, flags | O_CLOEXEC);
}

CHECKED_TEST(open_fd, read_write_shares_the_segment) {
        ipcb_shm *s = create_ok("rw", 8192, 0600, 0);
        size_t size = 0;
        uint8_t *p;
        int fd = -1;

        memset(ipcb_shm_data(s), 0x5a, 8192);
        cr_assert_eq(ipcb_shm_open_fd(c, "rw", IPCB_READ_WRITE, NULL, &fd, &size), 0);
        cr_assert_eq(size, 8192);
        cr_assert_eq(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
        cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC, "the descriptor is not close-on-exec");
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        cr_assert_neq(p, MAP_FAILED);
        cr_assert_eq(p[8191], 0x5a);
        p[0] = 0xa5;
        cr_assert_eq(((uint8_t *)ipcb_shm_data(s))[0], 0xa5, "a write through the fd was not seen");
        munmap(p, size);
        /* No handle: only the creator's counts, and nothing is left to close. */
        cr_assert_eq(handles_of("rw"), 1);
        cr_assert_eq(close(fd), 0);
        /* size may be NULL */
        cr_assert_eq(ipcb_shm_open_fd(c, "rw", IPCB_READ_WRITE, NULL, &fd, NULL), 0);
        cr_assert_eq(close(fd), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
}

CHECKED_TEST(open_fd, read_only_stays_read_only) {
        ipcb_shm *s = create_ok("ro", 4096, 0644, 0);
        int fd = -1, base = ipcbd_fd_count(&d);
        void *p;

        cr_assert_eq(ipcb_shm_open_fd(c, "ro", IPCB_READ_ONLY, NULL, &fd, NULL), 0);
        cr_assert_eq(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
        errno = 0;
        cr_assert_eq(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
        cr_assert_eq(errno, EACCES);
        p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
        cr_assert_neq(p, MAP_FAILED);
        errno = 0;
        cr_assert_eq(mprotect(p, 4096, PROT_READ | PROT_WRITE), -1);
        cr_assert_eq(errno, EACCES);
        munmap(p, 4096);
        cr_assert_eq(write(fd, "x", 1), -1);
        cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
        /* The broker keeps no read-only description for nobody: its fd
         * count is back once the reply has left. */
        cr_assert(ipcbd_wait_fds(&d, base, 5000), "daemon kept the read-only description");
        cr_assert_eq(close(fd), 0);
        /* Many of them: still nothing kept. */
        for (int i = 0; i < 200; i++) {
                cr_assert_eq(ipcb_shm_open_fd(c, "ro", IPCB_READ_ONLY, NULL, &fd, NULL), 0);
                close(fd);
        }
        cr_assert(ipcbd_wait_fds(&d, base, 5000), "daemon fds grew with read-only opens");
        cr_assert_eq(ipcb_shm_close(s), 0);
}

/* A read-only handle's description outlives an fd-only open beside it. */
CHECKED_TEST(open_fd, read_only_beside_a_handle) {
        ipcb_shm *s = create_ok("robeside", 4096, 0644, 0), *r;
        int fd = -1;

        memset(ipcb_shm_data(s), 7, 4096);
        cr_assert_eq(ipcb_shm_open(c, "robeside", IPCB_READ_ONLY, &r), 0);
        cr_assert_eq(ipcb_shm_open_fd(c, "robeside", IPCB_READ_ONLY, NULL, &fd, NULL), 0);
        cr_assert_eq(close(fd), 0);
        cr_assert_eq(ipcb_shm_open_fd(c, "robeside", IPCB_READ_ONLY, NULL, &fd, NULL), 0);
        cr_assert_eq(close(fd), 0);
        cr_assert_eq(((uint8_t *)ipcb_shm_data(r))[4095], 7);
        cr_assert_eq(handles_of("robeside"), 2);
        cr_assert_eq(ipcb_shm_close(r), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
}

CHECKED_TEST(open_fd, does_not_keep_a_transient_segment) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ipcb_shm *s = create_ok("trans", 4096, 0600, 0);
        uint8_t *p;
        int fd = -1;

        memset(ipcb_shm_data(s), 3, 4096);
        cr_assert_eq(ipcb_shm_open_fd(c, "trans", IPCB_READ_WRITE, NULL, &fd, NULL), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "trans", &info), -ENOENT,
                     "an fd-only open kept a transient segment alive");
        /* The descriptor still holds the memory. */
        p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
        cr_assert_neq(p, MAP_FAILED);
        cr_assert_eq(p[100], 3);
        munmap(p, 4096);
        cr_assert_eq(close(fd), 0);
}

CHECKED_TEST(open_fd, growable_reports_its_size) {
        ipcb_shm *s = create_ok("grow", 0, 0600, IPCB_SHM_GROWABLE | IPCB_SHM_PERSISTENT);
        size_t size = 1;
        int fd = -1;

        cr_assert_eq(ipcb_shm_open_fd(c, "grow", IPCB_READ_WRITE, NULL, &fd, &size), 0);
        cr_assert_eq(size, 0);
        cr_assert_eq(ftruncate(fd, 12288), 0);
        cr_assert_eq(close(fd), 0);
        cr_assert_eq(ipcb_shm_open_fd(c, "grow", IPCB_READ_ONLY, NULL, &fd, &size), 0);
        cr_assert_eq(size, 12288);
        cr_assert_eq(close(fd), 0);
        cr_assert_eq(ipcb_unlink(c, "grow"), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
}

CHECKED_TEST(open_fd, refusals) {
        ipcb_open_options o = IPCB_OPEN_OPTIONS_INIT;
        ipcb_shm *s = create_ok("refuse", 4096, 0600, 0);
        int fd = -1, base = self_fd_count();

        cr_assert_eq(ipcb_shm_open_fd(c, "nosuch", IPCB_READ_WRITE, NULL, &fd, NULL), -ENOENT);
        cr_assert_eq(ipcb_shm_open_fd(c, "refuse", 3, NULL, &fd, NULL), -EINVAL);
        cr_assert_eq(ipcb_shm_open_fd(c, "bad/name", IPCB_READ_WRITE, NULL, &fd, NULL), -EINVAL);
        cr_assert_eq(ipcb_shm_open_fd(c, "refuse", IPCB_READ_WRITE, NULL, NULL, NULL), -EINVAL);
        cr_assert_eq(ipcb_shm_open_fd(NULL, "refuse", IPCB_READ_WRITE, NULL, &fd, NULL), -EINVAL);
        /* options as ipcb_shm_open_ex: OWNED, and nothing else */
        o.flags = IPCB_OPEN_OWNED;
        o.owner = getuid() + 1;
        cr_assert_eq(ipcb_shm_open_fd(c, "refuse", IPCB_READ_WRITE, &o, &fd, NULL), -EPERM);
        o.owner = IPCB_OWNER_SELF;
        cr_assert_eq(ipcb_shm_open_fd(c, "refuse", IPCB_READ_WRITE, &o, &fd, NULL), 0);
        cr_assert_eq(close(fd), 0);
        o.flags = IPCB_SEM_UNDO;
        cr_assert_eq(ipcb_shm_open_fd(c, "refuse", IPCB_READ_WRITE, &o, &fd, NULL), -EINVAL);
        /* frozen: read-write refused, read-only served */
        cr_assert_eq(ipcb_shm_freeze(c, "refuse", NULL), 0);
        cr_assert_eq(ipcb_shm_open_fd(c, "refuse", IPCB_READ_WRITE, NULL, &fd, NULL), -EROFS);
        cr_assert_eq(ipcb_shm_open_fd(c, "refuse", IPCB_READ_ONLY, NULL, &fd, NULL), 0);
        cr_assert_eq(close(fd), 0);
        cr_assert_eq(self_fd_count(), base, "a refused open left an fd behind");
        cr_assert_eq(ipcb_shm_close(s), 0);
}

/* Another uid gets exactly what its mode allows, and can do no more with
 * the descriptor than with a handle's. */
CHECKED_TEST(open_fd, other_uid) {
        ipcb_shm *s600 = create_ok("u600", 4096, 0600, 0), *s644 = create_ok("u644", 4096, 0644, 0);
        pid_t pid;

        if (geteuid() != 0)
                cr_skip_test("needs root to switch to uid %d", UNPRIV_UID);
        cr_assert(chmod(d.dir, 0755) == 0);
        memset(ipcb_shm_data(s644), 0x44, 4096);
        pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                int fd = -1, k;
                uint8_t *p;

                if (setgroups(0, NULL) < 0 || setresgid(UNPRIV_GID, UNPRIV_GID, UNPRIV_GID) < 0 ||
                    setresuid(UNPRIV_UID, UNPRIV_UID, UNPRIV_UID) < 0 ||
                    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
                        _exit(10);
                if (ipcb_connect(d.sock, &cc) < 0)
                        _exit(11);
                if (ipcb_shm_open_fd(cc, "u600", IPCB_READ_ONLY, NULL, &fd, NULL) != -EACCES ||
                    ipcb_shm_open_fd(cc, "u644", IPCB_READ_WRITE, NULL, &fd, NULL) != -EACCES)
                        _exit(12);
                if (ipcb_shm_open_fd(cc, "u644", IPCB_READ_ONLY, NULL, &fd, NULL) != 0)
                        _exit(13);
                errno = 0;
                k = reopen_fd(fd, O_RDWR);
                if (k >= 0 || errno != EACCES)
                        _exit(14);
                p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
                if (p == MAP_FAILED || p[0] != 0x44)
                        _exit(15);
                if (mprotect(p, 4096, PROT_READ | PROT_WRITE) == 0)
                        _exit(16);
                munmap(p, 4096);
                close(fd);
                ipcb_disconnect(cc);
                _exit(0);
        }
        cr_assert(child_ok(pid), "uid %d got more than its mode allows", UNPRIV_UID);
        cr_assert_eq(((uint8_t *)ipcb_shm_data(s644))[0], 0x44);
        cr_assert_eq(ipcb_shm_close(s600), 0);
        cr_assert_eq(ipcb_shm_close(s644), 0);
}

/* ---- raw requests ---- */

static int raw_open(int fd, uint32_t id, const char *name, uint32_t access, uint32_t flags,
                    uint32_t token, uint64_t nonce, ipcb_msg *reply, uint8_t *buf, int *ret_fd) {
        ipcb_msg m = { .hdr = { .op = IPCB_OP_SHM_OPEN, .id = id } };
        unsigned nfds = 4;
        int fds[4];
        ssize_t n;

        m.shm_open.access = access;
        m.shm_open.flags = flags;
        m.shm_open.token = token;
        m.shm_open.nonce = nonce;
        m.shm_open.name = (ipcb_name){ .ptr = name, .len = (uint16_t)strlen(name) };
        n = ipcb__proto_encode(&m, buf, IPCB_MSG_MAX);
        cr_assert_gt(n, 0);
        cr_assert_eq(raw_send(fd, buf, (size_t)n, NULL, 0), 0);
        n = raw_recv(fd, buf, IPCB_MSG_MAX, fds, &nfds, 5000);
        cr_assert_gt(n, 0, "no reply");
        cr_assert_eq(ipcb__proto_decode(buf, (size_t)n, nfds, reply), 0);
        *ret_fd = nfds ? fds[0] : -1;
        for (unsigned i = 1; i < nfds; i++)
                close(fds[i]);
        return reply->hdr.status;
}

/* On the wire (protocol.md): the broker answers an FD_ONLY open without
 * asking the kernel, with the size a growable segment was created at; a
 * handle's open says the size now.  The fd tells the truth either way. */
CHECKED_TEST(open_fd, growable_size_on_the_wire) {
        ipcb_shm *s = create_ok("grow", 0, 0600, IPCB_SHM_GROWABLE);
        uint8_t buf[IPCB_MSG_MAX];
        struct stat st;
        ipcb_msg r;
        int raw = raw_connect(d.sock), rfd = -1;

        cr_assert_eq(ftruncate(ipcb_shm_fd(s), 12288), 0);
        cr_assert_geq(raw, 0);
        cr_assert_eq(raw_hello(raw), 0);
        cr_assert_eq(raw_open(raw, 2, "grow", IPCB_WA_READ_WRITE, IPCB_WF_FD_ONLY, 0, 0, &r, buf, &rfd), 0);
        cr_assert_eq(r.shm_reply.size, 0);
        cr_assert_eq(fstat(rfd, &st), 0);
        cr_assert_eq(st.st_size, 12288);
        close(rfd);
        rfd = -1;
        cr_assert_eq(raw_open(raw, 3, "grow", IPCB_WA_READ_WRITE, 0, 0, 0, &r, buf, &rfd), 0);
        cr_assert_eq(r.shm_reply.size, 12288);
        close(rfd);
        close(raw);
        cr_assert_eq(ipcb_shm_close(s), 0);
}

CHECKED_TEST(open_fd, raw_requests) {
        ipcb_shm *s = create_ok("raw", 4096, 0600, 0);
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg r;
        int fd, rfd = -1;

        fd = raw_connect(d.sock);
        cr_assert_geq(fd, 0);
        cr_assert_eq(raw_hello(fd), 0);
        /* The daemon says it serves FD_ONLY. */
        {
                ipcb_msg m = { .hdr = { .op = IPCB_OP_HELLO, .id = 2 } };
                unsigned nfds = 0;
                ssize_t n;
                m.hello.version = IPCB_PROTO_VERSION;
                n = ipcb__proto_encode(&m, buf, IPCB_MSG_MAX);
                cr_assert_eq(raw_send(fd, buf, (size_t)n, NULL, 0), 0);
                n = raw_recv(fd, buf, IPCB_MSG_MAX, NULL, &nfds, 5000);
                cr_assert_eq(ipcb__proto_decode(buf, (size_t)n, 0, &r), 0);
                cr_assert(r.hello_reply.caps & IPCB_CAP_SHM_FD_ONLY);
        }
        cr_assert_eq(raw_open(fd, 3, "raw", IPCB_WA_READ_WRITE, IPCB_WF_FD_ONLY, 0, 0, &r, buf, &rfd), 0);
        cr_assert_eq(r.shm_reply.handle, 0, "an FD_ONLY reply named a handle");
        cr_assert_geq(rfd, 0);
        close(rfd);
        /* Not with RECLAIM, which is about a handle's lock token. */
        cr_assert_eq(raw_open(fd, 4, "raw", IPCB_WA_READ_WRITE, IPCB_WF_FD_ONLY | IPCB_WF_RECLAIM, 1,
                              1, &r, buf, &rfd),
                     -EINVAL);
        cr_assert_eq(rfd, -1);
        /* Handle 0 is nobody's: closing it is refused, and nothing changes. */
        {
                ipcb_msg m = { .hdr = { .op = IPCB_OP_CLOSE, .id = 5 } };
                unsigned nfds = 0;
                ssize_t n;
                m.close.handle = 0;
                n = ipcb__proto_encode(&m, buf, IPCB_MSG_MAX);
                cr_assert_eq(raw_send(fd, buf, (size_t)n, NULL, 0), 0);
                n = raw_recv(fd, buf, IPCB_MSG_MAX, NULL, &nfds, 5000);
                cr_assert_eq(ipcb__proto_decode(buf, (size_t)n, 0, &r), 0);
                cr_assert_eq(r.hdr.status, -EBADF);
        }
        cr_assert_eq(handles_of("raw"), 1);
        /* A client that never reads its fd-only replies: the daemon keeps
         * serving, and its fds come back when the connection goes. */
        for (uint32_t i = 0; i < 64; i++) {
                ipcb_msg m = { .hdr = { .op = IPCB_OP_SHM_OPEN, .id = 100 + i } };
                ssize_t n;
                m.shm_open.access = IPCB_WA_READ_ONLY;
                m.shm_open.flags = IPCB_WF_FD_ONLY;
                m.shm_open.name = (ipcb_name){ .ptr = "raw", .len = 3 };
                n = ipcb__proto_encode(&m, buf, IPCB_MSG_MAX);
                if (raw_send(fd, buf, (size_t)n, NULL, 0) < 0)
                        break;
        }
        cr_assert_eq(handles_of("raw"), 1);
        close(fd);
        cr_assert_eq(ipcb_shm_close(s), 0);
}

/* A peer that stops reading before its FD_ONLY reply: the send fails, the
 * daemon closes the connection and with it the last handle of a transient
 * segment, which is destroyed during the reply.  Nothing of it may be used
 * after (under ASan a use after free aborts the daemon). */
static void open_fd_then_go(uint32_t access) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg m = { .hdr = { .op = IPCB_OP_SHM_CREATE, .id = 2 } }, r;
        ipcb_msg o = { .hdr = { .op = IPCB_OP_SHM_OPEN, .id = 3 } };
        unsigned nfds = 1;
        int fd, rfd = -1;
        ssize_t n;

        fd = raw_connect(d.sock);
        cr_assert_geq(fd, 0);
        cr_assert_eq(raw_hello(fd), 0);
        m.shm_create.size = 4096;
        m.shm_create.mode = 0600;
        m.shm_create.name = (ipcb_name){ .ptr = "gone", .len = 4 };
        n = ipcb__proto_encode(&m, buf, sizeof(buf));
        cr_assert_eq(raw_send(fd, buf, (size_t)n, NULL, 0), 0);
        n = raw_recv(fd, buf, sizeof(buf), &rfd, &nfds, 5000);
        cr_assert_gt(n, 0);
        cr_assert_eq(ipcb__proto_decode(buf, (size_t)n, nfds, &r), 0);
        cr_assert_eq(r.hdr.status, 0);
        close(rfd);
        o.shm_open.access = access;
        o.shm_open.flags = IPCB_WF_FD_ONLY;
        o.shm_open.name = (ipcb_name){ .ptr = "gone", .len = 4 };
        n = ipcb__proto_encode(&o, buf, sizeof(buf));
        ipcbd_pause(&d);
        cr_assert_eq(raw_send(fd, buf, (size_t)n, NULL, 0), 0);
        cr_assert_eq(shutdown(fd, SHUT_RD), 0); /* its reply cannot be delivered */
        ipcbd_resume(&d);
        cr_assert(raw_is_closed(fd, 5000), "the connection stayed open");
        close(fd);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "gone", &info), -ENOENT,
                     "the transient segment outlived its only handle");
}

CHECKED_TEST(open_fd, to_a_peer_that_went_away) {
        open_fd_then_go(IPCB_WA_READ_ONLY);
        open_fd_then_go(IPCB_WA_READ_WRITE);
        cr_assert_eq(ipcb_sync(c), 0, "the daemon stopped serving");
}
