/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_shm.c: the client library against a real ipcbrokerd: segments across
 * processes, read-only enforcement, seals, unlink and lifecycle semantics,
 * crash cleanup, stat and list, argument checking, threads, and fd hygiene.
 * Every test runs in the harness fixture: at its end the daemon is back at
 * its idle fd count, the test process at its own, and the daemon exits 0
 * (daemon_gone_is_enotconn stops the daemon itself: its own fds only). */
#include "harness.h"

#include "ipcbroker.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
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

static void setup_max1m(void) {
        static const char *const args[] = { "--max-segment-size", "1M", NULL };
        fixture_begin(&d, args);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
}

/* What every test holds until its end: the client.  Everything else (handles,
 * persistent segments) the test releases itself. */
static void release(void) {
        ipcb_disconnect(c);
        c = NULL;
}

/* After a test that failed or skipped before fixture_end. */
static void teardown(void) {
        release();
        fixture_cleanup(&d);
}

/* fixture_end (harness.h) after every body: both fd counts back, clean exit. */
#define CHECKED_TEST(suite, name) FIXTURE_TEST(suite, name, &d, release)

TestSuite(shm, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(shm_max1m, .init = setup_max1m, .fini = teardown, .timeout = 30);

/* ---- helpers ---- */

static void fill(void *p, size_t n, unsigned seed) {
        uint8_t *b = p;
        for (size_t i = 0; i < n; i++)
                b[i] = (uint8_t)(i * 31u + seed * 7u + (i >> 8));
}

static bool check(const void *p, size_t n, unsigned seed) {
        const uint8_t *b = p;
        for (size_t i = 0; i < n; i++)
                if (b[i] != (uint8_t)(i * 31u + seed * 7u + (i >> 8)))
                        return false;
        return true;
}

static ipcb_shm *create_ok(const char *name, size_t size, unsigned mode, unsigned flags) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_shm *s = NULL;
        int r;

        o.mode = mode;
        o.flags = flags;
        r = ipcb_shm_create(c, name, size, &o, &s);
        cr_assert_eq(r, 0, "create %s: %s", name, ipcb_strerror(r));
        cr_assert_not_null(s);
        return s;
}

static ipcb_shm *open_ok(const char *name, int access) {
        ipcb_shm *s = NULL;
        int r = ipcb_shm_open(c, name, access, &s);
        cr_assert_eq(r, 0, "open %s: %s", name, ipcb_strerror(r));
        return s;
}

static unsigned get_seals(int fd) {
        int k = fcntl(fd, F_GET_SEALS);
        cr_assert_geq(k, 0, "F_GET_SEALS: %s", strerror(errno));
        return (unsigned)k;
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

static void write_byte(int fd) {
        char x = 'x';
        while (write(fd, &x, 1) < 0 && errno == EINTR)
                ;
}

static bool read_byte(int fd) {
        char x;
        ssize_t n;
        do
                n = read(fd, &x, 1);
        while (n < 0 && errno == EINTR);
        return n == 1;
}

/* Drop to an unprivileged uid in a forked child; /proc/self stays
 * accessible (setresuid makes the process non-dumpable, which would make
 * /proc/self/fd root's and fail every open for the wrong reason). */
static int drop_privileges(void) {
        if (setgroups(0, NULL) < 0 || setresgid(UNPRIV_GID, UNPRIV_GID, UNPRIV_GID) < 0 ||
            setresuid(UNPRIV_UID, UNPRIV_UID, UNPRIV_UID) < 0)
                return -1;
        if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
                return -1;
        return geteuid() == UNPRIV_UID ? 0 : -1;
}

typedef struct handles_want {
        const char *name;
        unsigned want, last;
} handles_want;

static bool handles_reached(void *arg) {
        handles_want *w = arg;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        if (ipcb_stat(c, IPCB_KIND_SHM, w->name, &info) < 0)
                return false;
        w->last = info.handles;
        return w->last == w->want;
}

/* Another connection's CLOSE carries NOREPLY and its hang-up is another
 * socket's event: the daemon may not have handled either when our STAT
 * arrives, even after that process exited.  Wait for the count. */
static void wait_handles(const char *name, unsigned want) {
        handles_want w = { .name = name, .want = want };
        cr_assert(wait_until(handles_reached, &w, 5000), "segment %s: %u handles, expected %u",
                  name, w.last, want);
}

static int reopen_fd(int fd, int flags) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        return open(path, flags | O_CLOEXEC);
}

/* ---- across processes ---- */

CHECKED_TEST(shm, parent_creates_child_opens) {
        enum { SIZE = 3 * 4096 + 100 };
        ipcb_shm *s = create_ok("xproc", SIZE, 0600, 0);
        uint8_t *p = ipcb_shm_data(s);
        pid_t pid;

        fill(p, SIZE / 2, 1);
        pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_shm *cs;
                if (ipcb_connect(d.sock, &cc) < 0)
                        _exit(10);
                if (ipcb_shm_open(cc, "xproc", IPCB_READ_WRITE, &cs) < 0)
                        _exit(11);
                if (ipcb_shm_size(cs) != SIZE || ipcb_shm_access(cs) != IPCB_READ_WRITE)
                        _exit(12);
                if (!check(ipcb_shm_data(cs), SIZE / 2, 1))
                        _exit(13);
                /* The inherited mapping is the same memory. */
                if (!check(p, SIZE / 2, 1))
                        _exit(14);
                fill((uint8_t *)ipcb_shm_data(cs) + SIZE / 2, SIZE - SIZE / 2, 2);
                if (ipcb_shm_close(cs) != 0)
                        _exit(15);
                ipcb_disconnect(cc);
                _exit(0);
        }
        cr_assert(child_ok(pid));
        cr_assert(check(p, SIZE / 2, 1));
        cr_assert(check(p + SIZE / 2, SIZE - SIZE / 2, 2), "child's writes not visible");
        cr_assert_eq(ipcb_shm_close(s), 0);
}

CHECKED_TEST(shm, child_creates_parent_opens) {
        enum { SIZE = 65536 };
        int to_parent[2], to_child[2];
        pid_t pid;

        cr_assert_eq(pipe2(to_parent, O_CLOEXEC), 0);
        cr_assert_eq(pipe2(to_child, O_CLOEXEC), 0);
        pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_shm *cs;
                if (ipcb_connect(d.sock, &cc) < 0)
                        _exit(10);
                if (ipcb_shm_create(cc, "fromchild", SIZE, NULL, &cs) < 0)
                        _exit(11);
                fill(ipcb_shm_data(cs), SIZE, 3);
                write_byte(to_parent[1]);
                if (!read_byte(to_child[0]))
                        _exit(12);
                if (!check(ipcb_shm_data(cs), SIZE / 2, 3))
                        _exit(13);
                if (!check((uint8_t *)ipcb_shm_data(cs) + SIZE / 2, SIZE / 2, 4))
                        _exit(14);
                if (ipcb_shm_close(cs) != 0)
                        _exit(15);
                ipcb_disconnect(cc);
                _exit(0);
        }
        close(to_parent[1]);
        close(to_child[0]);
        cr_assert(read_byte(to_parent[0]), "child failed before creating");
        ipcb_shm *s = open_ok("fromchild", IPCB_READ_WRITE);
        cr_assert_eq(ipcb_shm_size(s), SIZE);
        cr_assert(check(ipcb_shm_data(s), SIZE, 3), "child's bytes not visible");
        fill((uint8_t *)ipcb_shm_data(s) + SIZE / 2, SIZE / 2, 4);
        write_byte(to_child[1]);
        cr_assert(child_ok(pid));
        /* The child's handle is gone; ours keeps the segment alive. */
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        wait_handles("fromchild", 1);
        cr_assert_eq(ipcb_shm_close(s), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "fromchild", &info), -ENOENT);
        close(to_parent[0]);
        close(to_child[1]);
}

/* ---- read-only handles ---- */

CHECKED_TEST(shm, read_only_enforced) {
        enum { SIZE = 8192 };
        ipcb_shm *w = create_ok("ro", SIZE, 0644, 0);
        fill(ipcb_shm_data(w), SIZE, 5);
        ipcb_shm *r = open_ok("ro", IPCB_READ_ONLY);
        int fd = ipcb_shm_fd(r);
        void *p;

        cr_assert_eq(ipcb_shm_access(r), IPCB_READ_ONLY);
        cr_assert(check(ipcb_shm_data(r), SIZE, 5));
        cr_assert_eq(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
        cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC, "received fd is not close-on-exec");

        errno = 0;
        p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        cr_assert_eq(p, MAP_FAILED, "writable shared mapping of a read-only handle");
        cr_assert_eq(errno, EACCES, "mmap: %s", strerror(errno));

        errno = 0;
        cr_assert_eq(mprotect(ipcb_shm_data(r), SIZE, PROT_READ | PROT_WRITE), -1,
                     "mprotect made the read-only mapping writable");
        cr_assert_eq(errno, EACCES, "mprotect: %s", strerror(errno));

        errno = 0;
        cr_assert_eq(ftruncate(fd, SIZE * 2), -1);
        cr_assert(errno == EINVAL || errno == EBADF, "ftruncate: %s", strerror(errno));
        cr_assert_eq(ftruncate(fd, SIZE), -1, "ftruncate to the same size");

        errno = 0;
        cr_assert_eq(write(fd, "x", 1), -1);
        cr_assert_eq(errno, EBADF, "write: %s", strerror(errno));
        errno = 0;
        cr_assert_eq(pwrite(fd, "x", 1, 0), -1);
        cr_assert_eq(errno, EBADF, "pwrite: %s", strerror(errno));

        errno = 0;
        cr_assert_eq(fallocate(fd, 0, 0, SIZE * 2), -1);
        cr_assert_eq(errno, EBADF, "fallocate: %s", strerror(errno));
        cr_assert_eq(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, SIZE), -1,
                     "punched a hole through a read-only fd");

        errno = 0;
        cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
        cr_assert_eq(errno, EPERM, "F_ADD_SEALS: %s", strerror(errno));
        cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL), -1);

        /* A private mapping may be written, but that never reaches the segment. */
        p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        cr_assert_neq(p, MAP_FAILED);
        memset(p, 0xee, SIZE);
        munmap(p, SIZE);

        cr_assert(check(ipcb_shm_data(w), SIZE, 5), "segment changed through a read-only handle");
        cr_assert(check(ipcb_shm_data(r), SIZE, 5));
        cr_assert_eq(ipcb_shm_close(r), 0);
        cr_assert_eq(ipcb_shm_close(w), 0);
}

CHECKED_TEST(shm, read_only_cannot_be_reopened_writable) {
        enum { SIZE = 4096 };
        ipcb_shm *w, *r;
        pid_t pid;
        int fd;

        if (geteuid() != 0)
                cr_skip_test("needs root to switch to uid %d", UNPRIV_UID);
        w = create_ok("reopen", SIZE, 0644, 0);
        fill(ipcb_shm_data(w), SIZE, 6);
        r = open_ok("reopen", IPCB_READ_ONLY);

        /* As root (CAP_DAC_OVERRIDE) the reopen works whatever the inode's
         * mode: that is a privileged client's business, not this test's. */
        fd = reopen_fd(ipcb_shm_fd(r), O_RDWR);
        cr_log_info("as root, reopening a read-only handle O_RDWR %s", fd >= 0 ? "works" : "fails");
        if (fd >= 0)
                close(fd);
        cr_assert(chmod(d.dir, 0755) == 0);

        pid = test_fork();
        if (pid == 0) {
                int own, k;
                ipcb_client *cc;
                ipcb_shm *cs;

                if (drop_privileges() < 0)
                        _exit(10);
                /* Control: the method works on a memfd with an ordinary mode. */
                own = memfd_create("control", MFD_CLOEXEC);
                if (own < 0 || (k = reopen_fd(own, O_RDWR)) < 0)
                        _exit(11);
                close(k);
                /* The read-only handle inherited from root. */
                errno = 0;
                k = reopen_fd(ipcb_shm_fd(r), O_RDWR);
                if (k >= 0 || errno != EACCES)
                        _exit(12);
                /* A read-only handle this uid got from the broker itself. */
                if (ipcb_connect(d.sock, &cc) < 0)
                        _exit(13);
                if (ipcb_shm_open(cc, "reopen", IPCB_READ_ONLY, &cs) < 0)
                        _exit(14);
                errno = 0;
                k = reopen_fd(ipcb_shm_fd(cs), O_RDWR);
                if (k >= 0 || errno != EACCES)
                        _exit(15);
                k = reopen_fd(ipcb_shm_fd(cs), O_WRONLY);
                if (k >= 0)
                        _exit(16);
                if (!check(ipcb_shm_data(cs), SIZE, 6))
                        _exit(17);
                ipcb_shm_close(cs);
                ipcb_disconnect(cc);
                _exit(0);
        }
        cr_assert(child_ok(pid), "uid %d could reopen a read-only handle writable "
                                 "(or the check could not run)", UNPRIV_UID);
        cr_assert(check(ipcb_shm_data(w), SIZE, 6));
        cr_assert_eq(ipcb_shm_close(r), 0);
        cr_assert_eq(ipcb_shm_close(w), 0);
}

CHECKED_TEST(shm, access_policy_for_other_uid) {
        ipcb_shm *s600, *s644, *s666;
        pid_t pid;

        if (geteuid() != 0)
                cr_skip_test("needs root to switch to uid %d", UNPRIV_UID);
        s600 = create_ok("pol600", 4096, 0600, 0);
        s644 = create_ok("pol644", 4096, 0644, 0);
        s666 = create_ok("pol666", 4096, 0666, 0);
        cr_assert(chmod(d.dir, 0755) == 0);
        pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_shm *cs;
                ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

                if (drop_privileges() < 0)
                        _exit(10);
                if (ipcb_connect(d.sock, &cc) < 0)
                        _exit(11);
                if (ipcb_shm_open(cc, "pol600", IPCB_READ_ONLY, &cs) != -EACCES)
                        _exit(12);
                if (ipcb_shm_open(cc, "pol600", IPCB_READ_WRITE, &cs) != -EACCES)
                        _exit(13);
                if (ipcb_shm_open(cc, "pol644", IPCB_READ_WRITE, &cs) != -EACCES)
                        _exit(14);
                if (ipcb_shm_open(cc, "pol644", IPCB_READ_ONLY, &cs) != 0)
                        _exit(15);
                ipcb_shm_close(cs);
                if (ipcb_shm_open(cc, "pol666", IPCB_READ_WRITE, &cs) != 0)
                        _exit(16);
                memset(ipcb_shm_data(cs), 0x66, 4096);
                ipcb_shm_close(cs);
                /* Only the owner (or root) removes a name. */
                if (ipcb_unlink(cc, "pol666") != -EPERM)
                        _exit(17);
                /* Its own segment carries its credentials. */
                if (ipcb_shm_create(cc, "unpriv-own", 4096, NULL, &cs) != 0)
                        _exit(18);
                if (ipcb_stat(cc, IPCB_KIND_SHM, "unpriv-own", &info) != 0 ||
                    info.uid != UNPRIV_UID || info.gid != UNPRIV_GID)
                        _exit(19);
                if (ipcb_unlink(cc, "unpriv-own") != 0)
                        _exit(20);
                ipcb_shm_close(cs);
                ipcb_disconnect(cc);
                _exit(0);
        }
        cr_assert(child_ok(pid));
        cr_assert_eq(((uint8_t *)ipcb_shm_data(s666))[4095], 0x66);
        cr_assert_eq(ipcb_shm_close(s600), 0);
        cr_assert_eq(ipcb_shm_close(s644), 0);
        cr_assert_eq(ipcb_shm_close(s666), 0);
}

/* ---- seals ---- */

#define WRITE_SEALS (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL)

CHECKED_TEST(shm, seals_fixed_size) {
        enum { SIZE = 4096 * 4 };
        ipcb_shm *s = create_ok("sealed", SIZE, 0600, 0);
        int fd = ipcb_shm_fd(s);
        unsigned seals = get_seals(fd);
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        cr_assert_eq(seals & (F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_SHRINK | F_SEAL_GROW,
                     "seals 0x%x", seals);
        cr_assert_eq(seals & WRITE_SEALS, 0, "a fresh segment must stay writable (0x%x)", seals);
        cr_assert_eq(ipcb_shm_seals(s), seals, "library reports 0x%x, fd has 0x%x",
                     ipcb_shm_seals(s), seals);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "sealed", &info), 0);
        cr_assert_eq(info.seals, seals);

        errno = 0;
        cr_assert_eq(ftruncate(fd, SIZE * 2), -1, "grew a segment sealed against growing");
        cr_assert_eq(errno, EPERM);
        errno = 0;
        cr_assert_eq(ftruncate(fd, SIZE / 2), -1, "shrank a sealed segment");
        cr_assert_eq(errno, EPERM);
        cr_assert_eq(ftruncate(fd, SIZE), 0, "same-size truncate is no change");
        errno = 0;
        cr_assert_eq(pwrite(fd, "x", 1, SIZE), -1, "write past the end grew the segment");
        cr_assert_eq(errno, EPERM);
        cr_assert_eq(fallocate(fd, 0, 0, SIZE * 2), -1, "fallocate grew the segment");
        cr_assert_eq(pwrite(fd, "x", 1, SIZE - 1), 1, "write inside the segment");

        /* Every handle of the segment reports the same seals. */
        ipcb_shm *r = open_ok("sealed", IPCB_READ_ONLY);
        cr_assert_eq(get_seals(ipcb_shm_fd(r)), seals);
        cr_assert_eq(ipcb_shm_seals(r), seals);
        struct stat st;
        cr_assert_eq(fstat(fd, &st), 0);
        cr_assert_eq(st.st_size, SIZE);
        cr_assert_eq(ipcb_shm_close(r), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
}

CHECKED_TEST(shm, seals_growable) {
        enum { SIZE = 4096 };
        ipcb_shm *s = create_ok("growable", SIZE, 0600, IPCB_SHM_GROWABLE);
        int fd = ipcb_shm_fd(s);
        unsigned seals = get_seals(fd);
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        cr_assert(seals & F_SEAL_SHRINK, "seals 0x%x", seals);
        cr_assert_eq(seals & F_SEAL_GROW, 0, "growable segment sealed against growing");
        cr_assert_eq(seals & WRITE_SEALS, 0);
        cr_assert_eq(ipcb_shm_seals(s), seals);

        cr_assert_eq(ftruncate(fd, SIZE * 4), 0, "grow: %s", strerror(errno));
        errno = 0;
        cr_assert_eq(ftruncate(fd, SIZE * 2), -1, "shrank a growable segment");
        cr_assert_eq(errno, EPERM);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "growable", &info), 0);
        cr_assert_eq(info.size, SIZE * 4, "stat reports %llu after growing",
                     (unsigned long long)info.size);
        cr_assert(info.flags & IPCB_SHM_GROWABLE);
        cr_assert_eq(info.seals, seals);
        /* A later open maps the grown size; ours keeps its size. */
        ipcb_shm *r = open_ok("growable", IPCB_READ_ONLY);
        cr_assert_eq(ipcb_shm_size(r), SIZE * 4);
        cr_assert_eq(ipcb_shm_size(s), SIZE);
        /* A read-only handle cannot grow it. */
        cr_assert_eq(ftruncate(ipcb_shm_fd(r), SIZE * 8), -1);
        cr_assert_eq(ipcb_shm_close(r), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
}

/* ---- names, unlink, lifecycle ---- */

CHECKED_TEST(shm, unlink_semantics) {
        enum { SIZE = 8192 };
        ipcb_shm *old = create_ok("ul", SIZE, 0600, 0), *ro, *fresh, *again;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT, info2 = IPCB_OBJECT_INFO_INIT;

        fill(ipcb_shm_data(old), SIZE, 7);
        ro = open_ok("ul", IPCB_READ_ONLY);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "ul", &info), 0);
        cr_assert_eq(ipcb_unlink(c, "ul"), 0);

        cr_assert_eq(ipcb_shm_open(c, "ul", IPCB_READ_ONLY, &again), -ENOENT);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "ul", &info2), -ENOENT);
        cr_assert_eq(ipcb_unlink(c, "ul"), -ENOENT);
        /* Existing handles and mappings go on working. */
        cr_assert(check(ipcb_shm_data(old), SIZE, 7));
        cr_assert(check(ipcb_shm_data(ro), SIZE, 7));
        memset(ipcb_shm_data(old), 0x11, 16);
        cr_assert_eq(((uint8_t *)ipcb_shm_data(ro))[15], 0x11);
        fill(ipcb_shm_data(old), SIZE, 7);

        /* The name is free for a new, different segment. */
        fresh = create_ok("ul", SIZE / 2, 0600, 0);
        fill(ipcb_shm_data(fresh), SIZE / 2, 8);
        cr_assert(check(ipcb_shm_data(old), SIZE, 7), "new segment shares the old one's memory");
        cr_assert(check(ipcb_shm_data(ro), SIZE, 7));
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "ul", &info2), 0);
        cr_assert_neq(info2.id, info.id);
        cr_assert_gt(info2.id, info.id, "ids must increase");
        cr_assert_eq(info2.size, SIZE / 2);
        cr_assert_eq(info2.flags & IPCB_OBJ_UNLINKED, 0);
        again = open_ok("ul", IPCB_READ_ONLY);
        cr_assert_eq(ipcb_shm_size(again), SIZE / 2);
        cr_assert(check(ipcb_shm_data(again), SIZE / 2, 8));

        cr_assert_eq(ipcb_shm_close(again), 0);
        cr_assert_eq(ipcb_shm_close(fresh), 0);
        cr_assert_eq(ipcb_shm_close(ro), 0);
        cr_assert_eq(ipcb_shm_close(old), 0);
}

static int list_sizes(const ipcb_object_info *info, void *ud) {
        cr_expect_eq(info->struct_size, sizeof(*info));
        ++*(int *)ud;
        return 0;
}

static int quota_sizes(const ipcb_quota_info *info, void *ud) {
        cr_expect_eq(info->struct_size, sizeof(*info));
        ++*(int *)ud;
        return 0;
}

/* Output structs carry their size: a too small struct_size is refused
 * before anything is sent, a larger one (a program built against a later
 * header) gets only the bytes this library knows of, and structs given to
 * callbacks say how much of them is valid. */
CHECKED_TEST(shm, output_structs_carry_their_size) {
        ipcb_shm *s = create_ok("sized", 4096, 0600, 0);
        struct {
                ipcb_object_info info;
                unsigned char tail[64];
        } big;
        struct {
                ipcb_quota_info info;
                unsigned char tail[64];
        } qbig;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ipcb_quota_info q = IPCB_QUOTA_INFO_INIT;
        int n = 0;

        info.struct_size = 0;
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "sized", &info), -EINVAL);
        info.struct_size = offsetof(ipcb_object_info, handles);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "sized", &info), -EINVAL);
        cr_assert_eq(info.handles, 0, "a refused struct was written");
        q.struct_size = sizeof(q) - 1;
        cr_assert_eq(ipcb_quota(c, getuid(), &q), -EINVAL);

        memset(&big, 0xa5, sizeof(big));
        big.info.struct_size = sizeof(big);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "sized", &big.info), 0);
        cr_assert_eq(big.info.struct_size, sizeof(ipcb_object_info));
        cr_assert_str_eq(big.info.name, "sized");
        cr_assert_eq(big.info.handles, 1);
        for (size_t i = 0; i < sizeof(big.tail); i++)
                cr_assert_eq(big.tail[i], 0xa5, "byte %zu past the library's struct written", i);

        memset(&qbig, 0xa5, sizeof(qbig));
        qbig.info.struct_size = sizeof(qbig);
        cr_assert_eq(ipcb_quota(c, getuid(), &qbig.info), 0);
        cr_assert_eq(qbig.info.struct_size, sizeof(ipcb_quota_info));
        cr_assert_eq(qbig.info.uid, getuid());
        cr_assert_geq(qbig.info.objects, 1);
        for (size_t i = 0; i < sizeof(qbig.tail); i++)
                cr_assert_eq(qbig.tail[i], 0xa5, "byte %zu past the library's struct written", i);

        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "sized", &info), -EINVAL,
                     "struct_size stays as the caller left it after a refusal");
        info.struct_size = sizeof(info);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "sized", &info), 0);
        cr_assert_eq(info.struct_size, sizeof(info));

        cr_assert_eq(ipcb_list(c, IPCB_KIND_SHM, list_sizes, &n), 0);
        cr_assert_eq(n, 1);
        n = 0;
        cr_assert_eq(ipcb_quota_list(c, quota_sizes, &n), 0);
        cr_assert_geq(n, 1);
        cr_assert_eq(ipcb_shm_close(s), 0);
}

CHECKED_TEST(shm, create_existing_is_eexist) {
        enum { SIZE = 4096 };
        ipcb_shm *s = create_ok("dup", SIZE, 0640, 0), *t = NULL;
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_object_info before = IPCB_OBJECT_INFO_INIT, after = IPCB_OBJECT_INFO_INIT;

        fill(ipcb_shm_data(s), SIZE, 9);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "dup", &before), 0);
        o.mode = 0666;
        o.flags = IPCB_SHM_PERSISTENT | IPCB_SHM_GROWABLE;
        cr_assert_eq(ipcb_shm_create(c, "dup", SIZE * 4, &o, &t), -EEXIST);
        cr_assert_null(t, "ret_ written on failure");
        cr_assert_eq(ipcb_shm_create(c, "dup", SIZE, NULL, &t), -EEXIST);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "dup", &after), 0);
        cr_assert_eq(after.id, before.id);
        cr_assert_eq(after.size, SIZE);
        cr_assert_eq(after.mode, 0640);
        cr_assert_eq(after.flags, before.flags);
        cr_assert_eq(after.handles, 1);
        cr_assert(check(ipcb_shm_data(s), SIZE, 9));
        t = open_ok("dup", IPCB_READ_ONLY);
        cr_assert_eq(ipcb_shm_size(t), SIZE);
        cr_assert(check(ipcb_shm_data(t), SIZE, 9));
        cr_assert_eq(ipcb_shm_close(t), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
}

CHECKED_TEST(shm, missing_is_enoent) {
        ipcb_shm *s = NULL;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        cr_assert_eq(ipcb_shm_open(c, "missing", IPCB_READ_ONLY, &s), -ENOENT);
        cr_assert_eq(ipcb_shm_open(c, "missing", IPCB_READ_WRITE, &s), -ENOENT);
        cr_assert_null(s);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "missing", &info), -ENOENT);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, "missing", &info), -ENOENT);
        cr_assert_eq(ipcb_unlink(c, "missing"), -ENOENT);
        /* Separate namespaces: a segment is not a semaphore. */
        ipcb_shm *t = create_ok("kinded", 4096, 0600, 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, "kinded", &info), -ENOENT);
        cr_assert_eq(ipcb_shm_close(t), 0);
}

CHECKED_TEST(shm, bad_names) {
        static const char *const bad[] = {
                "", ".", ".hidden", "..", "a/b", "/abs", "a b", "tab\t", "nl\n",
                "caf\xc3\xa9", "star*", "q?", "semi;colon", "back\\slash", "pct%",
        };
        char n255[256], n256[257];
        ipcb_shm *s = NULL;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                cr_assert_eq(ipcb_shm_create(c, bad[i], 4096, NULL, &s), -EINVAL, "create '%s'",
                             bad[i]);
                cr_assert_eq(ipcb_shm_open(c, bad[i], IPCB_READ_ONLY, &s), -EINVAL, "open '%s'",
                             bad[i]);
                cr_assert_eq(ipcb_unlink(c, bad[i]), -EINVAL, "unlink '%s'", bad[i]);
                cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, bad[i], &info), -EINVAL, "stat '%s'",
                             bad[i]);
        }
        cr_assert_eq(ipcb_shm_create(c, NULL, 4096, NULL, &s), -EINVAL);
        cr_assert_eq(ipcb_shm_open(c, NULL, IPCB_READ_ONLY, &s), -EINVAL);
        cr_assert_eq(ipcb_unlink(c, NULL), -EINVAL);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, NULL, &info), -EINVAL);
        cr_assert_null(s);

        memset(n256, 'x', 256);
        n256[256] = '\0';
        cr_assert_eq(ipcb_shm_create(c, n256, 4096, NULL, &s), -ENAMETOOLONG);
        cr_assert_eq(ipcb_shm_open(c, n256, IPCB_READ_ONLY, &s), -ENAMETOOLONG);
        cr_assert_eq(ipcb_unlink(c, n256), -ENAMETOOLONG);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, n256, &info), -ENAMETOOLONG);

        /* Every allowed character, and the longest name. */
        ipcb_shm *t = create_ok("Az09._:@+-", 4096, 0600, 0);
        cr_assert_eq(ipcb_shm_close(t), 0);
        memset(n255, 'y', 255);
        n255[0] = 'Y';
        n255[255] = '\0';
        t = create_ok(n255, 4096, 0600, 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, n255, &info), 0);
        cr_assert_str_eq(info.name, n255);
        ipcb_shm *u = open_ok(n255, IPCB_READ_ONLY);
        cr_assert_eq(ipcb_shm_close(u), 0);
        cr_assert_eq(ipcb_unlink(c, n255), 0);
        cr_assert_eq(ipcb_shm_close(t), 0);
        /* Names are not truncated: the 255-byte prefix of n256 is not n256. */
        memset(n255, 'x', 255);
        t = create_ok(n255, 4096, 0600, 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, n256, &info), -ENAMETOOLONG);
        cr_assert_eq(ipcb_shm_close(t), 0);
}

CHECKED_TEST(shm, bad_sizes_modes_access) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_shm *s = NULL;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        cr_assert_eq(ipcb_shm_create(c, "bad", 0, NULL, &s), -EINVAL);
        /* Above INT64_MAX the daemon answers -EINVAL (not a size at all),
         * below it but above the maximum -EFBIG. */
        cr_assert_eq(ipcb_shm_create(c, "bad", (size_t)-1, NULL, &s), -EINVAL);
        cr_assert_eq(ipcb_shm_create(c, "bad", (size_t)INT64_MAX + 1, NULL, &s), -EINVAL);
        cr_assert_eq(ipcb_shm_create(c, "bad", (size_t)INT64_MAX, NULL, &s), -EFBIG);
        cr_assert_eq(ipcb_shm_create(c, "bad", ((size_t)1 << 30) + 1, NULL, &s), -EFBIG,
                     "default maximum is 1 GiB");

        o.mode = 0777 | 01000;
        cr_assert_eq(ipcb_shm_create(c, "bad", 4096, &o, &s), -EINVAL);
        o.mode = 04600;
        cr_assert_eq(ipcb_shm_create(c, "bad", 4096, &o, &s), -EINVAL);
        o.mode = 0600;
        o.flags = 0x4; /* IPCB_OBJ_UNLINKED is not a create flag */
        cr_assert_eq(ipcb_shm_create(c, "bad", 4096, &o, &s), -EINVAL);
        o.flags = 0x80000000u;
        cr_assert_eq(ipcb_shm_create(c, "bad", 4096, &o, &s), -EINVAL);
        o.flags = 0;
        o.struct_size = 1;
        cr_assert_eq(ipcb_shm_create(c, "bad", 4096, &o, &s), -EINVAL);
        cr_assert_null(s);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "bad", &info), -ENOENT,
                     "a refused create left something behind");

        /* Mode 0 is a valid mode (only root opens it). */
        o = (ipcb_shm_options)IPCB_SHM_OPTIONS_INIT;
        o.mode = 0;
        cr_assert_eq(ipcb_shm_create(c, "mode0", 4096, &o, &s), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "mode0", &info), 0);
        cr_assert_eq(info.mode, 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
        /* NULL options: mode 0600, transient. */
        cr_assert_eq(ipcb_shm_create(c, "defaults", 100, NULL, &s), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "defaults", &info), 0);
        cr_assert_eq(info.mode, 0600);
        cr_assert_eq(info.flags & (IPCB_SHM_PERSISTENT | IPCB_SHM_GROWABLE), 0);
        cr_assert_eq(info.size, 100, "odd sizes are kept exactly");
        cr_assert_eq(ipcb_shm_size(s), 100);

        ipcb_shm *t = NULL;
        cr_assert_eq(ipcb_shm_open(c, "defaults", 0, &t), -EINVAL);
        cr_assert_eq(ipcb_shm_open(c, "defaults", 3, &t), -EINVAL);
        cr_assert_eq(ipcb_shm_open(c, "defaults", -1, &t), -EINVAL);
        cr_assert_eq(ipcb_shm_open(c, "defaults", IPCB_READ_ONLY | IPCB_READ_WRITE, &t), -EINVAL);
        cr_assert_null(t);
        cr_assert_eq(ipcb_stat(c, 0, "defaults", &info), -EINVAL);
        cr_assert_eq(ipcb_stat(c, 3, "defaults", &info), -EINVAL);
        cr_assert_eq(ipcb_shm_close(s), 0);
}

CHECKED_TEST(shm_max1m, max_segment_size) {
        ipcb_shm *s = NULL;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        cr_assert_eq(ipcb_shm_create(c, "big", (1u << 20) + 1, NULL, &s), -EFBIG);
        cr_assert_eq(ipcb_shm_create(c, "big", 1u << 30, NULL, &s), -EFBIG);
        cr_assert_eq(ipcb_shm_create(c, "big", (size_t)INT64_MAX, NULL, &s), -EFBIG);
        cr_assert_eq(ipcb_shm_create(c, "big", (size_t)-1, NULL, &s), -EINVAL,
                     "size above INT64_MAX is -EINVAL");
        cr_assert_null(s);
        s = create_ok("big", 1u << 20, 0600, 0);
        cr_assert_eq(ipcb_shm_size(s), 1u << 20);
        memset(ipcb_shm_data(s), 0x5a, 1u << 20);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "big", &info), 0);
        cr_assert_eq(info.size, 1u << 20);
        cr_assert_eq(ipcb_shm_close(s), 0);
        /* A growable segment may still be grown past the maximum by a
         * writer (the limit applies to what the broker allocates). */
}

CHECKED_TEST(shm, transient_lifecycle) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ipcb_shm *a, *b;

        a = create_ok("transient", 4096, 0600, 0);
        cr_assert_eq(ipcb_shm_close(a), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "transient", &info), -ENOENT,
                     "a transient segment outlived its last handle");

        a = create_ok("transient", 4096, 0600, 0);
        fill(ipcb_shm_data(a), 4096, 10);
        b = open_ok("transient", IPCB_READ_WRITE);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "transient", &info), 0);
        cr_assert_eq(info.handles, 2);
        cr_assert_eq(ipcb_shm_close(a), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "transient", &info), 0, "closed too early");
        cr_assert_eq(info.handles, 1);
        cr_assert(check(ipcb_shm_data(b), 4096, 10));
        cr_assert_eq(ipcb_shm_close(b), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "transient", &info), -ENOENT);
        /* Unlink of a transient segment with a handle: gone at the last close. */
        a = create_ok("transient", 4096, 0600, 0);
        cr_assert_eq(ipcb_unlink(c, "transient"), 0);
        cr_assert_eq(ipcb_shm_close(a), 0);
}

CHECKED_TEST(shm, persistent_lifecycle) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ipcb_shm *s;

        s = create_ok("persist", 12288, 0600, IPCB_SHM_PERSISTENT);
        fill(ipcb_shm_data(s), 12288, 11);
        cr_assert_eq(ipcb_shm_close(s), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "persist", &info), 0,
                     "a persistent segment died with its last handle");
        cr_assert_eq(info.handles, 0);
        cr_assert(info.flags & IPCB_SHM_PERSISTENT);

        /* Survives the connection too. */
        ipcb_disconnect(c);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        s = open_ok("persist", IPCB_READ_WRITE);
        cr_assert(check(ipcb_shm_data(s), 12288, 11), "contents lost");
        cr_assert_eq(ipcb_shm_close(s), 0);
        s = open_ok("persist", IPCB_READ_ONLY);
        cr_assert_eq(ipcb_unlink(c, "persist"), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "persist", &info), -ENOENT);
        cr_assert(check(ipcb_shm_data(s), 12288, 11));
        cr_assert_eq(ipcb_shm_close(s), 0);
        /* Unlink with no handle destroys it at once (the fixture checks the fds). */
        s = create_ok("persist", 4096, 0600, IPCB_SHM_PERSISTENT);
        cr_assert_eq(ipcb_shm_close(s), 0);
        cr_assert_eq(ipcb_unlink(c, "persist"), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "persist", &info), -ENOENT);
}

/* ---- crash cleanup ---- */

/* A child that connects, creates a segment, fills it, tells the parent, and
 * waits to be killed. */
static pid_t spawn_creator(const char *name, unsigned flags, unsigned seed) {
        int p[2];
        pid_t pid;

        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        pid = test_fork();
        if (pid == 0) {
                ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
                ipcb_client *cc;
                ipcb_shm *cs;
                close(p[0]);
                o.flags = flags;
                if (ipcb_connect(d.sock, &cc) < 0 || ipcb_shm_create(cc, name, 65536, &o, &cs) < 0)
                        _exit(10);
                fill(ipcb_shm_data(cs), 65536, seed);
                write_byte(p[1]);
                for (;;)
                        pause();
        }
        close(p[1]);
        cr_assert(read_byte(p[0]), "creator child failed");
        close(p[0]);
        return pid;
}

static void kill_child(pid_t pid) {
        int st;
        kill(pid, SIGKILL);
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

static bool name_is_free(void *arg) {
        ipcb_shm *s;
        if (ipcb_shm_create(c, arg, 4096, NULL, &s) != 0)
                return false;
        ipcb_shm_close(s);
        return true;
}

CHECKED_TEST(shm, crash_cleanup_transient) {
        int base = ipcbd_fd_count(&d);
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        pid_t pid;

        cr_assert_eq(base, d.base_fds + 1, "one connection: ours");
        pid = spawn_creator("crashy", 0, 12);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "crashy", &info), 0);
        cr_assert_eq(info.handles, 1);
        cr_assert_eq(ipcbd_fd_count(&d), base + 2, "child's connection plus the memfd");
        kill_child(pid);
        cr_assert(wait_until(name_is_free, (void *)"crashy", 5000),
                  "the segment of a killed client was not destroyed");
        cr_assert(ipcbd_wait_fds(&d, base, 5000), "daemon fds not back at baseline after a crash");
}

CHECKED_TEST(shm, crash_keeps_persistent) {
        int base = ipcbd_fd_count(&d);
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        pid_t pid;

        pid = spawn_creator("crashp", IPCB_SHM_PERSISTENT, 13);
        kill_child(pid);
        /* The child's connection goes; the segment's memfd stays. */
        cr_assert(ipcbd_wait_fds(&d, base + 1, 5000));
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "crashp", &info), 0);
        cr_assert_eq(info.handles, 0);
        ipcb_shm *s = open_ok("crashp", IPCB_READ_ONLY);
        cr_assert(check(ipcb_shm_data(s), 65536, 13), "contents lost with the creator");
        cr_assert_eq(ipcb_unlink(c, "crashp"), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
        cr_assert(ipcbd_wait_fds(&d, base, 5000));
}

CHECKED_TEST(shm, crash_with_many_handles) {
        /* A child holding many handles (same segment, several segments) dies. */
        int base = ipcbd_fd_count(&d), p[2];
        ipcb_shm *s = create_ok("shared-crash", 4096, 0666, 0);
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        pid_t pid;

        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_shm *cs;
                char name[32];
                if (ipcb_connect(d.sock, &cc) < 0)
                        _exit(10);
                for (int i = 0; i < 50; i++)
                        if (ipcb_shm_open(cc, "shared-crash", IPCB_READ_WRITE, &cs) < 0)
                                _exit(11);
                for (int i = 0; i < 20; i++) {
                        snprintf(name, sizeof(name), "child-%d", i);
                        if (ipcb_shm_create(cc, name, 4096, NULL, &cs) < 0)
                                _exit(12);
                }
                write_byte(p[1]);
                for (;;)
                        pause();
        }
        close(p[1]);
        cr_assert(read_byte(p[0]));
        close(p[0]);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "shared-crash", &info), 0);
        cr_assert_eq(info.handles, 51);
        kill_child(pid);
        cr_assert(ipcbd_wait_fds(&d, base + 1, 5000));
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "shared-crash", &info), 0);
        cr_assert_eq(info.handles, 1);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "child-0", &info), -ENOENT);
        cr_assert_eq(ipcb_shm_close(s), 0);
}

/* ---- stat and list ---- */

CHECKED_TEST(shm, stat_fields) {
        ipcb_shm *s = create_ok("statme", 12345, 0640, IPCB_SHM_PERSISTENT);
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "statme", &info), 0);
        cr_assert_eq(info.kind, IPCB_KIND_SHM);
        cr_assert_str_eq(info.name, "statme");
        cr_assert_gt(info.id, 0);
        cr_assert_eq(info.size, 12345);
        cr_assert_eq(info.mode, 0640);
        cr_assert_eq(info.uid, geteuid());
        cr_assert_eq(info.gid, getegid());
        cr_assert_eq(info.handles, 1);
        cr_assert_eq(info.flags, IPCB_SHM_PERSISTENT);
        cr_assert_eq(info.seals, get_seals(ipcb_shm_fd(s)));
        cr_assert_eq(info.sem_value, 0);
        cr_assert_eq(info.sem_max, 0);
        cr_assert_eq(info.sem_undo_held, 0);
        struct stat st;
        cr_assert_eq(fstat(ipcb_shm_fd(s), &st), 0);
        cr_assert_eq(st.st_size, 12345);

        ipcb_shm *r = open_ok("statme", IPCB_READ_ONLY);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "statme", &info), 0);
        cr_assert_eq(info.handles, 2);
        cr_assert_eq(ipcb_shm_close(r), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "statme", &info), 0);
        cr_assert_eq(info.handles, 0);
        cr_assert_eq(ipcb_unlink(c, "statme"), 0);
}

#define NLIST 300

typedef struct list_acc {
        unsigned seen[NLIST];
        uint64_t ids[NLIST];
        uint64_t last_id;
        unsigned calls, others, unordered, stop_at;
        bool bad_fields;
} list_acc;

static int list_cb(const ipcb_object_info *info, void *userdata) {
        list_acc *a = userdata;
        unsigned i;

        a->calls++;
        if (info->id <= a->last_id)
                a->unordered++;
        a->last_id = info->id;
        if (sscanf(info->name, "list-segment-%u", &i) == 1 && i < NLIST) {
                a->seen[i]++;
                if (info->id != a->ids[i] || info->size != 4096 + i || info->kind != IPCB_KIND_SHM ||
                    info->handles != 1)
                        a->bad_fields = true;
        } else
                a->others++;
        return a->stop_at && a->calls == a->stop_at ? 42 : 0;
}

CHECKED_TEST(shm, list_many_pages) {
        static ipcb_shm *s[NLIST];
        static list_acc acc;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        char name[64];

        for (unsigned i = 0; i < NLIST; i++) {
                snprintf(name, sizeof(name), "list-segment-%u", i);
                s[i] = create_ok(name, 4096 + i, 0600, 0);
                cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, name, &info), 0);
                acc.ids[i] = info.id;
        }
        for (int kind = 0; kind <= IPCB_KIND_SHM; kind++) {
                memset(acc.seen, 0, sizeof(acc.seen));
                acc.last_id = 0;
                acc.calls = acc.others = acc.unordered = 0;
                cr_assert_eq(ipcb_list(c, kind, list_cb, &acc), 0);
                cr_assert_eq(acc.unordered, 0, "ids not increasing (kind %d)", kind);
                cr_assert_eq(acc.others, 0);
                cr_assert(!acc.bad_fields);
                for (unsigned i = 0; i < NLIST; i++)
                        cr_assert_eq(acc.seen[i], 1, "kind %d: segment %u seen %u times", kind, i,
                                     acc.seen[i]);
        }
        /* No semaphores exist. */
        acc.calls = 0;
        cr_assert_eq(ipcb_list(c, IPCB_KIND_SEM, list_cb, &acc), 0);
        cr_assert_eq(acc.calls, 0);
        /* A callback's non-zero return stops the walk and is returned. */
        acc.calls = 0;
        acc.last_id = 0;
        acc.stop_at = 200; /* on the second page */
        cr_assert_eq(ipcb_list(c, 0, list_cb, &acc), 42);
        cr_assert_eq(acc.calls, 200);
        acc.stop_at = 0;
        cr_assert_eq(ipcb_list(c, 3, list_cb, &acc), -EINVAL);
        cr_assert_eq(ipcb_list(c, 0, NULL, &acc), -EINVAL);

        /* Remove every other one, then list again. */
        for (unsigned i = 0; i < NLIST; i += 2)
                cr_assert_eq(ipcb_shm_close(s[i]), 0);
        memset(acc.seen, 0, sizeof(acc.seen));
        acc.last_id = 0;
        acc.calls = acc.unordered = 0;
        cr_assert_eq(ipcb_list(c, 0, list_cb, &acc), 0);
        cr_assert_eq(acc.calls, NLIST / 2);
        for (unsigned i = 0; i < NLIST; i++)
                cr_assert_eq(acc.seen[i], i % 2, "segment %u", i);
        for (unsigned i = 1; i < NLIST; i += 2)
                cr_assert_eq(ipcb_shm_close(s[i]), 0);
}

typedef struct ul_acc {
        unsigned linked, unlinked;
} ul_acc;

static int ul_cb(const ipcb_object_info *info, void *userdata) {
        ul_acc *a = userdata;
        if (strcmp(info->name, "ghost") == 0) {
                if (info->flags & IPCB_OBJ_UNLINKED)
                        a->unlinked++;
                else
                        a->linked++;
        }
        return 0;
}

CHECKED_TEST(shm, list_shows_unlinked_open_objects) {
        ipcb_shm *old = create_ok("ghost", 4096, 0600, IPCB_SHM_PERSISTENT), *fresh;
        ul_acc a = { 0 };

        cr_assert_eq(ipcb_unlink(c, "ghost"), 0);
        cr_assert_eq(ipcb_list(c, 0, ul_cb, &a), 0);
        cr_assert_eq(a.unlinked, 1, "unlinked-but-open segment missing from the list");
        cr_assert_eq(a.linked, 0);
        fresh = create_ok("ghost", 4096, 0600, 0);
        a = (ul_acc){ 0 };
        cr_assert_eq(ipcb_list(c, IPCB_KIND_SHM, ul_cb, &a), 0);
        cr_assert_eq(a.unlinked, 1);
        cr_assert_eq(a.linked, 1);
        cr_assert_eq(ipcb_shm_close(old), 0);
        a = (ul_acc){ 0 };
        cr_assert_eq(ipcb_list(c, 0, ul_cb, &a), 0);
        cr_assert_eq(a.unlinked, 0, "unlinked segment outlived its last handle");
        cr_assert_eq(a.linked, 1);
        cr_assert_eq(ipcb_shm_close(fresh), 0);
}

/* ---- threads ---- */

typedef struct thread_arg {
        int idx;
        int errors;
        int first_error;
} thread_arg;

static void *thread_main(void *p) {
        thread_arg *a = p;
        char name[64];

        for (int i = 0; i < 500; i++) {
                ipcb_shm *w, *r;
                ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
                int k;
                snprintf(name, sizeof(name), "thread-%d-%d", a->idx, i);
                if ((k = ipcb_shm_create(c, name, 4096, NULL, &w)) < 0)
                        goto err;
                ((volatile uint8_t *)ipcb_shm_data(w))[0] = (uint8_t)i;
                if ((k = ipcb_shm_open(c, name, IPCB_READ_ONLY, &r)) < 0) {
                        ipcb_shm_close(w);
                        goto err;
                }
                if (((volatile uint8_t *)ipcb_shm_data(r))[0] != (uint8_t)i)
                        a->errors++;
                if ((k = ipcb_stat(c, IPCB_KIND_SHM, name, &info)) < 0 || info.handles != 2)
                        a->errors++;
                if ((k = ipcb_shm_close(r)) < 0)
                        goto err;
                if ((k = ipcb_unlink(c, name)) < 0) {
                        ipcb_shm_close(w);
                        goto err;
                }
                if ((k = ipcb_shm_close(w)) < 0)
                        goto err;
                continue;
        err:
                if (!a->errors++)
                        a->first_error = k;
        }
        return NULL;
}

CHECKED_TEST(shm, threads_share_one_client) {
        pthread_t t[4];
        thread_arg a[4];

        for (int i = 0; i < 4; i++) {
                a[i] = (thread_arg){ .idx = i };
                cr_assert_eq(pthread_create(&t[i], NULL, thread_main, &a[i]), 0);
        }
        for (int i = 0; i < 4; i++)
                pthread_join(t[i], NULL);
        for (int i = 0; i < 4; i++)
                cr_assert_eq(a[i].errors, 0, "thread %d: %d errors, first %s", i, a[i].errors,
                             ipcb_strerror(a[i].first_error));
}

/* ---- fd hygiene ---- */

CHECKED_TEST(shm, no_fd_leak_in_process) {
        ipcb_shm *s, *t = NULL;
        ipcb_client *c2;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        int before = self_fd_count();

        for (int i = 0; i < 20; i++) {
                s = create_ok("leak", 8192, 0600, 0);
                t = open_ok("leak", IPCB_READ_ONLY);
                cr_assert_eq(ipcb_shm_create(c, "leak", 8192, NULL, &t), -EEXIST);
                cr_assert_eq(ipcb_shm_open(c, "nope", IPCB_READ_ONLY, &t), -ENOENT);
                cr_assert_eq(ipcb_shm_open(c, "a/b", IPCB_READ_ONLY, &t), -EINVAL);
                cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "leak", &info), 0);
                cr_assert_eq(ipcb_unlink(c, "leak"), 0);
                cr_assert_eq(ipcb_shm_close(t), 0);
                cr_assert_eq(ipcb_shm_close(s), 0);
        }
        cr_assert_eq(self_fd_count(), before, "fds leaked in the test process");
        for (int i = 0; i < 20; i++) {
                cr_assert_eq(ipcb_connect(d.sock, &c2), 0);
                ipcb_disconnect(c2);
        }
        cr_assert_eq(ipcb_connect("/nonexistent/ipcb.sock", &c2), -ENOENT);
        cr_assert_eq(self_fd_count(), before, "connect/disconnect leaked fds");
}

CHECKED_TEST(shm, disconnect_with_open_handles) {
        ipcb_shm *s = create_ok("orphaned", 4096, 0600, 0);
        ipcb_shm *p = create_ok("kept", 4096, 0600, IPCB_SHM_PERSISTENT);
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ipcb_client *c2;
        int before;

        fill(ipcb_shm_data(s), 4096, 14);
        ipcb_disconnect(c);
        c = NULL;
        /* The mapping outlives the connection until closed. */
        cr_assert(check(ipcb_shm_data(s), 4096, 14));
        before = self_fd_count();
        cr_assert_eq(ipcb_shm_close(s), 0);
        cr_assert_eq(ipcb_shm_close(p), 0);
        cr_assert_eq(self_fd_count(), before - 2, "handle fds not closed");
        /* The broker dropped the connection's handles. */
        cr_assert_eq(ipcb_connect(d.sock, &c2), 0);
        c = c2;
        cr_assert(wait_until(name_is_free, (void *)"orphaned", 5000));
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "kept", &info), 0);
        cr_assert_eq(info.handles, 0);
        cr_assert_eq(ipcb_unlink(c, "kept"), 0);
}

CHECKED_TEST(shm, daemon_gone_is_enotconn) {
        ipcb_shm *s = create_ok("doomed", 4096, 0600, 0), *t = NULL;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        fill(ipcb_shm_data(s), 4096, 15);
        ipcbd_stop(&d);
        cr_assert(check(ipcb_shm_data(s), 4096, 15), "mapping lost with the daemon");
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "doomed", &info), -ENOTCONN);
        cr_assert_eq(ipcb_shm_open(c, "doomed", IPCB_READ_ONLY, &t), -ENOTCONN);
        cr_assert_null(t);
        /* The handle is released locally even though the broker is gone. */
        int before = self_fd_count();
        cr_assert_eq(ipcb_shm_close(s), -ENOTCONN);
        cr_assert_eq(self_fd_count(), before - 1);
}

CHECKED_TEST(shm, strerror_texts) {
        static const int codes[] = { 0, -ENOENT, -EEXIST, -EINVAL, -ENAMETOOLONG, -EFBIG, -EACCES,
                                     -EPERM, -ENOTCONN, -EPROTO, -EPROTONOSUPPORT, -EMFILE,
                                     -ENOMEM, -EBADF };
        for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
                const char *s = ipcb_strerror(codes[i]);
                cr_assert_not_null(s);
                cr_assert_gt(strlen(s), 0);
                cr_assert_str_eq(ipcb_strerror(-codes[i]), s, "positive %d differs", -codes[i]);
        }
        cr_assert_str_neq(ipcb_strerror(-ENOENT), ipcb_strerror(-EEXIST));
        static const int odd[] = { 4095, -4095, 99999, -99999, INT_MAX, INT_MIN, INT_MIN + 1 };
        for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
                const char *s = ipcb_strerror(odd[i]);
                cr_assert_not_null(s, "ipcb_strerror(%d)", odd[i]);
                cr_assert_gt(strlen(s), 0);
        }
}

CHECKED_TEST(shm, accessors_and_null) {
        ipcb_shm *s = create_ok("acc", 5000, 0600, 0);

        cr_assert_not_null(ipcb_shm_data(s));
        cr_assert_eq(ipcb_shm_size(s), 5000);
        cr_assert_geq(ipcb_shm_fd(s), 3);
        cr_assert_eq(ipcb_shm_access(s), IPCB_READ_WRITE);
        cr_assert(fcntl(ipcb_shm_fd(s), F_GETFD) & FD_CLOEXEC);
        cr_assert_eq(fcntl(ipcb_shm_fd(s), F_GETFL) & O_ACCMODE, O_RDWR);
        cr_assert_eq(ipcb_shm_close(s), 0);

        cr_assert_eq(ipcb_shm_close(NULL), 0);
        ipcb_disconnect(NULL);
        cr_assert_null(ipcb_shm_data(NULL));
        cr_assert_eq(ipcb_shm_size(NULL), 0);
        cr_assert_eq(ipcb_shm_create(NULL, "x", 1, NULL, &s), -EINVAL);
        cr_assert_eq(ipcb_shm_create(c, "x", 1, NULL, NULL), -EINVAL);
        cr_assert_eq(ipcb_connect(d.sock, NULL), -EINVAL);
}

CHECKED_TEST(shm, connect_via_environment) {
        ipcb_client *c2;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ipcb_shm *s = create_ok("envseg", 4096, 0600, 0);

        cr_assert_eq(setenv("IPCBROKER_SOCKET", d.sock, 1), 0);
        cr_assert_eq(ipcb_connect(NULL, &c2), 0);
        cr_assert_eq(ipcb_stat(c2, IPCB_KIND_SHM, "envseg", &info), 0);
        ipcb_disconnect(c2);
        char longpath[200];
        memset(longpath, 'p', sizeof(longpath) - 1);
        longpath[0] = '/';
        longpath[sizeof(longpath) - 1] = '\0';
        cr_assert_eq(ipcb_connect(longpath, &c2), -ENAMETOOLONG);
        cr_assert_eq(ipcb_shm_close(s), 0);
}

/* A growable segment grown by a holder, then frozen: the frozen size is the
 * size it had grown to (stat, open), not the size it was created with. */
CHECKED_TEST(shm, freeze_keeps_grown_size) {
        enum { GROWN = 1 << 20 };
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ipcb_shm *s = NULL, *t;
        unsigned seals;

        o.flags = IPCB_SHM_GROWABLE;
        cr_assert_eq(ipcb_shm_create(c, "grown", 0, &o, &s), 0);
        cr_assert_eq(ftruncate(ipcb_shm_fd(s), GROWN), 0);
        cr_assert_eq(pwrite(ipcb_shm_fd(s), "tail", 4, GROWN - 4), 4);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "grown", &info), 0);
        cr_assert_eq(info.size, GROWN);
        cr_assert_eq(ipcb_shm_freeze(c, "grown", &seals), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "grown", &info), 0);
        cr_assert_eq(info.size, GROWN, "frozen at %llu bytes", (unsigned long long)info.size);
        cr_assert_eq(info.flags & IPCB_SHM_GROWABLE, 0);
        t = open_ok("grown", IPCB_READ_ONLY);
        cr_assert_eq(ipcb_shm_size(t), GROWN);
        cr_assert_eq(memcmp((const char *)ipcb_shm_data(t) + GROWN - 4, "tail", 4), 0);
        cr_assert_eq(ipcb_shm_close(t), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
}
