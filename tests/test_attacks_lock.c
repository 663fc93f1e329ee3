/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_attacks_lock.c: attacks on segment locks and on the pages the broker
 * makes, against a real ipcbrokerd, by holders with less right than what
 * they try: a read-only holder that writes, takes or seals a segment's lock;
 * a holder that seals a lock or semaphore page so that later users fail; a
 * writer that seals the segment before its owner freezes it; what an
 * F_SEAL_FUTURE_WRITE freeze stops and what it does not (mremap); and the
 * seqlock that read-only holders read consistent bytes with.
 *
 * The attackers speak the protocol themselves where the library would not
 * let them, and run as uids 61001-61003 (multiuid.h; the tests need root).
 * Every test ends with this process at its starting fd count and the daemon
 * at its idle one, and stops the daemon cleanly. */
#include "harness.h"
#include "multiuid.h"

#include "ipcbroker.h"
#include "proto.h"
#include "sempage.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

static ipcbd d;
static ipcb_client *c;

static void setup(void) {
        SKIP_UNLESS_ROOT();
        fixture_begin(&d, NULL);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
}

/* What every test holds until its end: the client. */
static void release(void) {
        ipcb_disconnect(c);
        c = NULL;
}

/* After a test that failed or skipped before fixture_end. */
static void teardown(void) {
        release();
        fixture_cleanup(&d);
}

TestSuite(attacks_lock, .init = setup, .fini = teardown, .timeout = 60);

/* fixture_end (harness.h) after every body: both fd counts back, clean exit. */
#define CHECKED_TEST(suite, name, ...) FIXTURE_TEST(suite, name, &d, release, ##__VA_ARGS__)

/* ---- helpers ---- */

static void sleep_ms(int ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static long long now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static ipcb_shm *create_seg(const char *name, size_t size, unsigned mode) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_shm *s = NULL;
        o.mode = mode;
        int r = ipcb_shm_create(c, name, size, &o, &s);
        cr_assert_eq(r, 0, "create %s: %s", name, ipcb_strerror(r));
        return s;
}

static ipcb_shm *open_ok(const char *name, int access) {
        ipcb_shm *s = NULL;
        int r = ipcb_shm_open(c, name, access, &s);
        cr_assert_eq(r, 0, "open %s: %s", name, ipcb_strerror(r));
        return s;
}

static void write_int(int fd, int v) {
        while (write(fd, &v, sizeof(v)) < 0 && errno == EINTR)
                ;
}

static int read_int(int fd, int *v) {
        ssize_t n;
        do
                n = read(fd, v, sizeof(*v));
        while (n < 0 && errno == EINTR);
        return n == (ssize_t)sizeof(*v) ? 0 : -1;
}

static int wait_status(pid_t pid) {
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Fork a child that runs as uid (its own primary group), for tests whose
 * child must run alongside the parent (run_as waits for it).  Changing
 * credentials clears the parent-death signal test_fork set: set it again. */
static pid_t fork_as(uid_t uid) {
        pid_t pid = test_fork();
        if (pid == 0 && ((uid != 0 && drop_to(uid, uid, NULL, 0) < 0) ||
                         prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1))
                _exit(2);
        return pid;
}

/* ---- the protocol, spoken by hand (children only: no cr_assert) ---- */

/* One request and its reply on sock: the reply's status, or a negative
 * errno for I/O or a bad reply.  The reply's fd (if any) goes to *ret_fd. */
static int raw_call(int sock, ipcb_msg *req, ipcb_msg *ret, int *ret_fd) {
        static uint8_t in[IPCB_MSG_MAX];
        uint8_t out[IPCB_MSG_MAX];
        int fds[IPCB_FDS_MAX];
        unsigned nfds = IPCB_FDS_MAX;
        ssize_t n;
        int k;

        if (ret_fd)
                *ret_fd = -1;
        if ((n = ipcb__proto_encode(req, out, sizeof(out))) < 0)
                return (int)n;
        if ((k = raw_send(sock, out, (size_t)n, NULL, 0)) < 0)
                return k;
        n = raw_recv(sock, in, sizeof(in), fds, &nfds, 3000);
        if (n <= 0)
                return n == 0 ? -ECONNRESET : (int)n;
        k = ipcb__proto_decode(in, (size_t)n, nfds, ret);
        for (unsigned i = 0; i < nfds; i++) {
                if (k == 0 && i == 0 && ret_fd)
                        *ret_fd = fds[0];
                else
                        close(fds[i]);
        }
        return k < 0 ? k : ret->hdr.status;
}

static int raw_session(int *ret_sock) {
        int sock = raw_connect(d.sock), k;
        if (sock < 0)
                return sock;
        if ((k = raw_hello(sock)) < 0) {
                close(sock);
                return k;
        }
        *ret_sock = sock;
        return 0;
}

/* Open segment `name` with `access` and ask for its lock page, by hand.
 * The connection (*ret_sock) keeps the handle. */
static int raw_lock_page(const char *name, uint32_t access, int *ret_sock, uint32_t *ret_token,
                         int *ret_fd) {
        ipcb_msg req = { .hdr = { .op = IPCB_OP_SHM_OPEN, .id = 2 } }, rep;
        int sock, segfd, k;

        if ((k = raw_session(&sock)) < 0)
                return k;
        req.shm_open.access = access;
        req.shm_open.name = (ipcb_name){ .ptr = name, .len = (uint16_t)strlen(name) };
        if ((k = raw_call(sock, &req, &rep, &segfd)) < 0) {
                close(sock);
                return k;
        }
        close(segfd);
        req = (ipcb_msg){ .hdr = { .op = IPCB_OP_SHM_LOCK_PAGE, .id = 3 } };
        req.shm_lock_page.handle = rep.shm_reply.handle;
        if ((k = raw_call(sock, &req, &rep, ret_fd)) < 0) {
                close(sock);
                return k;
        }
        *ret_token = rep.lock_reply.token;
        *ret_sock = sock;
        return 0;
}

/* What an attacker on a lock page managed (the child's exit status; 1 is
 * CHILD_CHECK's "could not even try"). */
enum {
        WON_TOKEN = 2,         /* a read-only handle got a lock token */
        WON_MAP_WRITABLE = 4,  /* mapped the page writable */
        WON_MPROTECT = 8,      /* made a read-only mapping of it writable */
        WON_REOPEN = 16,       /* reopened it writable through /proc */
        WON_SEAL = 32,         /* added F_SEAL_FUTURE_WRITE to it */
        WON_NO_SEAL_SEAL = 64, /* the page lacks F_SEAL_SEAL */
};

typedef struct attack {
        const char *name;
        uint32_t access; /* IPCB_WA_*: the handle the attacker asks with */
        bool poke;       /* write `value` into the lock word wherever it can */
        uint32_t value;
        bool seal;       /* try F_SEAL_FUTURE_WRITE */
} attack;

static void poke_word(void *page, const attack *a) {
        if (a->poke)
                atomic_store(&((ipcb_lock_page *)page)->word, a->value);
}

static int attack_lock_page(void *arg) {
        const attack *a = arg;
        char path[64];
        uint32_t token = 0;
        int sock, pfd, won = 0, k, rw, seals;
        void *m;

        k = raw_lock_page(a->name, a->access, &sock, &token, &pfd);
        CHILD_CHECK(k == 0 && pfd >= 0, "SHM_LOCK_PAGE: %s", strerror(-k));
        if (a->access == IPCB_WA_READ_ONLY && token != 0)
                won |= WON_TOKEN;
        m = mmap(NULL, IPCB_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, pfd, 0);
        if (m != MAP_FAILED) {
                poke_word(m, a);
                munmap(m, IPCB_PAGE_SIZE);
                won |= WON_MAP_WRITABLE;
        }
        m = mmap(NULL, IPCB_PAGE_SIZE, PROT_READ, MAP_SHARED, pfd, 0);
        CHILD_CHECK(m != MAP_FAILED, "read-only map of the lock page: %s", strerror(errno));
        CHILD_CHECK(*(const uint32_t *)m == IPCB_LOCK_MAGIC, "not a lock page");
        if (mprotect(m, IPCB_PAGE_SIZE, PROT_READ | PROT_WRITE) == 0) {
                poke_word(m, a);
                won |= WON_MPROTECT;
        }
        munmap(m, IPCB_PAGE_SIZE);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", pfd);
        if ((rw = open(path, O_RDWR | O_CLOEXEC)) >= 0) {
                m = mmap(NULL, IPCB_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0);
                if (m != MAP_FAILED) {
                        poke_word(m, a);
                        munmap(m, IPCB_PAGE_SIZE);
                }
                close(rw);
                won |= WON_REOPEN;
        }
        if (a->seal && fcntl(pfd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) == 0)
                won |= WON_SEAL;
        seals = fcntl(pfd, F_GET_SEALS);
        if (seals < 0 || !(seals & F_SEAL_SEAL))
                won |= WON_NO_SEAL_SEAL;
        close(pfd);
        close(sock);
        return won;
}

static const char *won_str(int won) {
        static char buf[160];
        snprintf(buf, sizeof(buf), "%s%s%s%s%s%s%s", won & 1 ? "[child check failed] " : "",
                 won & WON_TOKEN ? "token " : "", won & WON_MAP_WRITABLE ? "mapped-writable " : "",
                 won & WON_MPROTECT ? "mprotect " : "", won & WON_REOPEN ? "reopened-rw " : "",
                 won & WON_SEAL ? "sealed " : "", won & WON_NO_SEAL_SEAL ? "no-F_SEAL_SEAL " : "");
        return buf;
}

/* ---- 1. a read-only holder and the lock ---- */

/* A reader (mode 0644, "other") asks for the lock page and clears the lock
 * word while a writer holds it: a second writer would then get in too. */
CHECKED_TEST(attacks_lock, reader_clears_lock_word_while_writer_holds) {
        ipcb_shm *w1 = create_seg("clr", 4096, 0644);
        ipcb_shm *w2 = open_ok("clr", IPCB_READ_WRITE);
        attack a = { .name = "clr", .access = IPCB_WA_READ_ONLY, .poke = true, .value = 0 };

        cr_assert_eq(ipcb_shm_lock(w1), 0);
        int won = run_as(UID_C, false, attack_lock_page, &a);
        int r = ipcb_shm_try_lock(w2, 0);
        cr_assert_eq(r, -EAGAIN, "a second writer got the lock its holder still holds (%s)",
                     ipcb_strerror(r));
        cr_assert_eq(won, 0, "the reader: %s", won_str(won));
        cr_assert_eq(ipcb_shm_unlock(w1), 0);
        cr_assert_eq(ipcb_shm_try_lock(w2, 0), 0);
        cr_assert_eq(ipcb_shm_unlock(w2), 0);
        cr_assert_eq(ipcb_shm_close(w2), 0);
        cr_assert_eq(ipcb_shm_close(w1), 0);
}

/* A reader takes the lock through the library and keeps it: every writer
 * waits for as long as the reader likes. */
CHECKED_TEST(attacks_lock, reader_takes_lock_and_keeps_it) {
        ipcb_shm *w = create_seg("keep", 4096, 0644);
        int up[2], down[2], got[3] = { 1, 1, 1 };

        cr_assert_eq(pipe2(up, O_CLOEXEC), 0);
        cr_assert_eq(pipe2(down, O_CLOEXEC), 0);
        pid_t pid = fork_as(UID_C);
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_shm *ro;
                int dummy;
                close(up[0]);
                close(down[1]);
                if (ipcb_connect(d.sock, &cc) < 0 || ipcb_shm_open(cc, "keep", IPCB_READ_ONLY, &ro) < 0)
                        _exit(10);
                write_int(up[1], ipcb_shm_try_lock(ro, 0));
                write_int(up[1], ipcb_shm_lock(ro));
                (void)read_int(down[0], &dummy); /* keeps whatever it got until told */
                write_int(up[1], ipcb_shm_unlock(ro));
                _exit(0);
        }
        close(up[1]);
        close(down[0]);
        for (int i = 0; i < 2; i++)
                cr_assert_eq(read_int(up[0], &got[i]), 0, "child failed");
        int r = ipcb_shm_try_lock(w, 200);
        cr_assert_eq(r, 0, "a reader keeps the writer out: %s", ipcb_strerror(r));
        cr_assert_eq(got[0], -EBADF, "try_lock on a read-only handle: %s", ipcb_strerror(got[0]));
        cr_assert_eq(got[1], -EBADF, "lock on a read-only handle: %s", ipcb_strerror(got[1]));
        write_int(down[1], 0);
        cr_assert_eq(read_int(up[0], &got[2]), 0, "child failed");
        cr_assert_eq(got[2], -EBADF, "unlock on a read-only handle: %s", ipcb_strerror(got[2]));
        cr_assert_eq(ipcb_shm_unlock(w), 0);
        cr_assert_eq(wait_status(pid), 0);
        close(up[0]);
        close(down[1]);
        cr_assert_eq(ipcb_shm_close(w), 0);
}

/* A reader adds F_SEAL_FUTURE_WRITE to the lock page: every later first
 * lock on the segment (which maps the page writable) fails for its life. */
CHECKED_TEST(attacks_lock, reader_seals_lock_page_future_write) {
        ipcb_shm *w = create_seg("rseal", 4096, 0644);
        attack a = { .name = "rseal", .access = IPCB_WA_READ_ONLY, .seal = true };

        cr_assert_eq(ipcb_shm_lock(w), 0); /* the page exists */
        cr_assert_eq(ipcb_shm_unlock(w), 0);
        int won = run_as(UID_C, false, attack_lock_page, &a);
        ipcb_shm *n = open_ok("rseal", IPCB_READ_WRITE);
        int r = ipcb_shm_lock(n);
        cr_assert_eq(r, 0, "a writer's first lock after the reader sealed the page: %s",
                     ipcb_strerror(r));
        cr_assert_eq(won, 0, "the reader: %s", won_str(won));
        cr_assert_eq(ipcb_shm_unlock(n), 0);
        cr_assert_eq(ipcb_shm_close(n), 0);
        cr_assert_eq(ipcb_shm_close(w), 0);
}

/* ---- broker pages carry F_SEAL_SEAL ---- */

/* A writer of the segment (another uid, mode 0666) seals the lock page: the
 * lock would be dead for every handle that has not mapped it yet, the
 * owner's included. */
CHECKED_TEST(attacks_lock, writer_seals_lock_page_future_write) {
        ipcb_shm *w = create_seg("wseal", 4096, 0666);
        attack a = { .name = "wseal", .access = IPCB_WA_READ_WRITE, .seal = true };

        int won = run_as(UID_B, false, attack_lock_page, &a);
        ipcb_shm *n = open_ok("wseal", IPCB_READ_WRITE);
        int r = ipcb_shm_lock(n);
        cr_assert_eq(r, 0, "first lock after a writer sealed the page: %s", ipcb_strerror(r));
        cr_assert_eq(won & ~(WON_MAP_WRITABLE | WON_MPROTECT), 0, "the writer: %s", won_str(won));
        cr_assert_eq(ipcb_shm_unlock(n), 0);
        cr_assert_eq(ipcb_shm_close(n), 0);
        cr_assert_eq(ipcb_shm_close(w), 0);
}

static int attack_sem_page(void *arg) {
        const char *name = arg;
        ipcb_msg req = { .hdr = { .op = IPCB_OP_SEM_OPEN, .id = 2 } }, rep;
        int sock, pfd, k, won = 0, seals;

        CHILD_CHECK(raw_session(&sock) == 0, "connect");
        req.sem_open.name = (ipcb_name){ .ptr = name, .len = (uint16_t)strlen(name) };
        k = raw_call(sock, &req, &rep, &pfd);
        CHILD_CHECK(k == 0 && pfd >= 0, "SEM_OPEN: %s", strerror(-k));
        if (fcntl(pfd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) == 0)
                won |= WON_SEAL;
        seals = fcntl(pfd, F_GET_SEALS);
        if (seals < 0 || !(seals & F_SEAL_SEAL))
                won |= WON_NO_SEAL_SEAL;
        close(pfd);
        close(sock);
        return won;
}

/* A user of a semaphore seals its page: every later open (which maps the
 * page writable) fails. */
CHECKED_TEST(attacks_lock, sem_user_seals_sem_page_future_write) {
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
        ipcb_sem *s, *n = NULL;
        o.mode = 0666;
        cr_assert_eq(ipcb_sem_create(c, "semseal", 1, &o, &s), 0);

        int won = run_as(UID_B, false, attack_sem_page, (void *)"semseal");
        int r = ipcb_sem_open(c, "semseal", 0, &n);
        cr_assert_eq(r, 0, "open after a user sealed the page: %s", ipcb_strerror(r));
        cr_assert_eq(won, 0, "the user: %s", won_str(won));
        cr_assert_eq(ipcb_sem_acquire(n), 0);
        cr_assert_eq(ipcb_sem_release(n, 1), 0);
        cr_assert_eq(ipcb_sem_close(n), 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
}

/* ---- 2. a writer seals the segment itself ---- */

static int writer_seals_segment(void *arg) {
        const unsigned *seals = arg;
        ipcb_client *cc;
        ipcb_shm *s;
        int r;

        CHILD_CHECK(ipcb_connect(d.sock, &cc) == 0, "connect");
        r = ipcb_shm_open(cc, "wfz", IPCB_READ_WRITE, &s);
        CHILD_CHECK(r == 0, "open: %s", ipcb_strerror(r));
        /* Nothing stops this: seals belong to the inode, and a read-write
         * description may add them. */
        CHILD_CHECK(fcntl(ipcb_shm_fd(s), F_ADD_SEALS, *seals) == 0, "F_ADD_SEALS: %s",
                    strerror(errno));
        ipcb_shm_close(s);
        ipcb_disconnect(cc);
        return 0;
}

/* A writer freezes the segment early and forbids more seals: the owner's
 * freeze must still succeed (the segment is frozen), and say how. */
CHECKED_TEST(attacks_lock, writer_seals_segment_before_owner_freezes) {
        ipcb_shm *w = create_seg("wfz", 8192, 0666);
        unsigned want = F_SEAL_FUTURE_WRITE | F_SEAL_SEAL, seals = 0;
        ipcb_shm *x = NULL;

        RUN_AS(UID_B, false, writer_seals_segment, &want);
        int r = ipcb_shm_freeze(c, "wfz", &seals);
        cr_assert_eq(r, 0, "the owner's freeze: %s", ipcb_strerror(r));
        cr_assert(seals & F_SEAL_FUTURE_WRITE, "seals 0x%x", seals);
        cr_assert_eq(seals & (F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_SHRINK | F_SEAL_GROW, "seals 0x%x", seals);
        cr_assert_eq(ipcb_shm_freeze(c, "wfz", &seals), 0, "a second freeze");
        cr_assert_eq(ipcb_shm_open(c, "wfz", IPCB_READ_WRITE, &x), -EROFS);
        cr_assert_eq(ipcb_shm_close(w), 0);

        /* F_SEAL_SEAL alone: the segment cannot be frozen any more, and the
         * owner is told so. */
        w = create_seg("wfz", 8192, 0666);
        want = F_SEAL_SEAL;
        RUN_AS(UID_B, false, writer_seals_segment, &want);
        cr_assert_eq(ipcb_shm_freeze(c, "wfz", &seals), -EPERM);
        cr_assert_eq(ipcb_shm_close(w), 0);
}

/* ---- 3. what an F_SEAL_FUTURE_WRITE freeze stops ---- */

/* The seals line of `ipcbrokerctl stat SEGMENT`, split into words. */
static bool ctl_seal_listed(const char *name, const char *seal) {
        char cmd[256], line[256];
        bool found = false;
        FILE *f;

        snprintf(cmd, sizeof(cmd), "%s --socket %s stat %s", IPCBROKERCTL_PATH, d.sock, name);
        f = popen(cmd, "re");
        cr_assert_not_null(f);
        while (fgets(line, sizeof(line), f)) {
                if (strncmp(line, "seals:", 6) != 0)
                        continue;
                for (char *save, *t = strtok_r(line + 6, " ,\n", &save); t; t = strtok_r(NULL, " ,\n", &save))
                        if (strcmp(t, seal) == 0)
                                found = true;
        }
        cr_assert_eq(pclose(f), 0, "ipcbrokerctl stat %s failed", name);
        return found;
}

/* Frozen while a writer still maps it: F_SEAL_FUTURE_WRITE.  New opens are
 * read-only, no new writable mapping can be made, and which seal the
 * segment carries is visible.  Frozen again once no writable mapping is
 * left, it gets F_SEAL_WRITE. */
CHECKED_TEST(attacks_lock, future_write_freeze_new_opens_read_only) {
        ipcb_shm *w = create_seg("fw", 8192, 0644), *x = NULL;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        unsigned seals = 0;

        memset(ipcb_shm_data(w), 'a', 8192);
        cr_assert_eq(ipcb_shm_freeze(c, "fw", &seals), 0);
        cr_assert(seals & F_SEAL_FUTURE_WRITE, "seals 0x%x", seals);
        cr_assert_eq(seals & F_SEAL_WRITE, 0, "F_SEAL_WRITE with a writable mapping left?");
        cr_assert_eq(ipcb_shm_open(c, "fw", IPCB_READ_WRITE, &x), -EROFS);
        void *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, ipcb_shm_fd(w), 0);
        cr_assert_eq(m, MAP_FAILED, "a new writable mapping after the freeze");
        cr_assert_eq(pwrite(ipcb_shm_fd(w), "b", 1, 0), -1, "write(2) after the freeze");
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "fw", &info), 0);
        cr_assert(info.seals & F_SEAL_FUTURE_WRITE);
        cr_assert(ctl_seal_listed("fw", "future_write"));
        cr_assert(!ctl_seal_listed("fw", "write"));
        /* The writer's existing mapping keeps writing: that is what
         * FUTURE_WRITE means. */
        ((char *)ipcb_shm_data(w))[1] = 'c';
        ipcb_shm *r = open_ok("fw", IPCB_READ_ONLY);
        cr_assert_eq(((char *)ipcb_shm_data(r))[1], 'c');
        cr_assert_eq(ipcb_shm_close(w), 0);
        cr_assert_eq(ipcb_sync(c), 0);

        cr_assert_eq(ipcb_shm_freeze(c, "fw", &seals), 0);
        cr_assert(seals & F_SEAL_WRITE, "seals 0x%x: no writable mapping is left", seals);
        cr_assert(ctl_seal_listed("fw", "write"));
        cr_assert_eq(ipcb_shm_close(r), 0);
}

/* After an F_SEAL_FUTURE_WRITE freeze, a writer that kept any writable
 * mapping can mremap it larger and write pages it had not mapped.  The
 * kernel does not stop it (on 6.18 the write lands); this test records what
 * happens, and that a second freeze, once the mapping is gone, gives
 * F_SEAL_WRITE, which leaves nothing to mremap. */
CHECKED_TEST(attacks_lock, future_write_freeze_mremap_grows_a_writable_mapping) {
        enum { PG = 4096 };
        ipcb_shm *w = create_seg("mr", 3 * PG, 0644);
        ipcb_shm *r = open_ok("mr", IPCB_READ_ONLY);
        unsigned seals = 0;
        int fd = fcntl(ipcb_shm_fd(w), F_DUPFD_CLOEXEC, 3);

        cr_assert_geq(fd, 0);
        char *one = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        cr_assert_neq(one, MAP_FAILED);
        cr_assert_eq(ipcb_shm_close(w), 0); /* only the one-page mapping is left */
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_shm_freeze(c, "mr", &seals), 0);
        cr_assert(seals & F_SEAL_FUTURE_WRITE, "seals 0x%x", seals);

        char *big = mremap(one, PG, 3 * PG, MREMAP_MAYMOVE);
        bool grew = big != MAP_FAILED;
        if (grew) {
                big[2 * PG] = 'Z';
                one = big;
        }
        bool landed = ((volatile char *)ipcb_shm_data(r))[2 * PG] == 'Z';
        fprintf(stderr, "attacks_lock: after a FUTURE_WRITE freeze, mremap of a writable mapping: %s%s\n",
                grew ? "succeeds" : strerror(errno),
                grew ? (landed ? "; a write to a page not mapped before lands" : "; the write does not land") : "");
        cr_assert(!grew || landed, "mremap succeeded but the write went nowhere?");
        cr_assert_eq(munmap(one, grew ? 3 * PG : PG), 0);
        close(fd);

        cr_assert_eq(ipcb_shm_freeze(c, "mr", &seals), 0);
        cr_assert(seals & F_SEAL_WRITE, "seals 0x%x", seals);
        cr_assert_eq(ipcb_shm_close(r), 0);
}

/* ---- the seqlock: what read-only holders read with ---- */

/* The lock page as this process maps it: its permissions in /proc/self/maps
 * ("r--s", "rw-s"), or "" if not mapped. */
static const char *lock_page_perms(void) {
        static char perms[8];
        FILE *f = fopen("/proc/self/maps", "re");
        char line[512];

        perms[0] = '\0';
        if (!f)
                return perms;
        while (fgets(line, sizeof(line), f)) {
                unsigned long lo, hi;
                char p[8];
                if (sscanf(line, "%lx-%lx %7s", &lo, &hi, p) != 3 || hi - lo != IPCB_PAGE_SIZE ||
                    !strstr(line, "memfd:") || p[0] != 'r')
                        continue;
                if (*(const uint32_t *)lo == IPCB_LOCK_MAGIC)
                        snprintf(perms, sizeof(perms), "%s", p);
        }
        fclose(f);
        return perms;
}

static bool uniform(const uint8_t *b, size_t n) {
        for (size_t i = 1; i < n; i++)
                if (b[i] != b[0])
                        return false;
        return true;
}

enum { SQ_SIZE = 16384, SQ_MS = 400 };

/* A writer rewrites the whole segment with one byte value under the lock,
 * byte by byte, again and again; a reader of another uid, read-only, must
 * never accept a mix. */
CHECKED_TEST(attacks_lock, reader_reads_consistent_bytes_with_seqlock) {
        ipcb_shm *w = create_seg("sq", SQ_SIZE, 0644);
        int up[2];

        cr_assert_eq(pipe2(up, O_CLOEXEC), 0);
        pid_t writer = test_fork();
        if (writer == 0) {
                ipcb_client *cc;
                ipcb_shm *s;
                if (ipcb_connect(d.sock, &cc) < 0 || ipcb_shm_open(cc, "sq", IPCB_READ_WRITE, &s) < 0)
                        _exit(10);
                volatile uint8_t *b = ipcb_shm_data(s);
                long long end = now_ms() + SQ_MS;
                for (unsigned k = 1; now_ms() < end; k++) {
                        if (ipcb_shm_lock(s) != 0)
                                _exit(11);
                        for (size_t i = 0; i < SQ_SIZE; i++)
                                b[i] = (uint8_t)k;
                        if (ipcb_shm_unlock(s) != 0)
                                _exit(12);
                        sleep_ms(k % 4 == 0); /* now and then, a gap for the reader */
                }
                _exit(0);
        }
        pid_t reader = fork_as(UID_C);
        if (reader == 0) {
                static uint8_t copy[SQ_SIZE];
                unsigned long accepted = 0, retried = 0, torn_seen = 0;
                ipcb_client *cc;
                ipcb_shm *s;
                uint32_t seq;
                int r;
                close(up[0]);
                if (ipcb_connect(d.sock, &cc) < 0 || ipcb_shm_open(cc, "sq", IPCB_READ_ONLY, &s) < 0)
                        _exit(10);
                long long end = now_ms() + SQ_MS;
                while (now_ms() < end) {
                        if ((r = ipcb_shm_read_begin(s, 2000, &seq)) != 0) {
                                fprintf(stderr, "read_begin: %s\n", ipcb_strerror(r));
                                _exit(11);
                        }
                        memcpy(copy, ipcb_shm_data(s), SQ_SIZE);
                        bool torn = !uniform(copy, SQ_SIZE);
                        torn_seen += torn;
                        if (ipcb_shm_read_retry(s, seq)) {
                                retried++;
                                continue;
                        }
                        if (torn)
                                _exit(12); /* accepted a torn copy */
                        accepted++;
                }
                if (strcmp(lock_page_perms(), "r--s") != 0) {
                        fprintf(stderr, "lock page mapped '%s'\n", lock_page_perms());
                        _exit(13);
                }
                fprintf(stderr, "attacks_lock: seqlock reader: %lu accepted, %lu retried, %lu torn copies caught\n",
                        accepted, retried, torn_seen);
                write_int(up[1], (int)(accepted > 0));
                ipcb_shm_close(s);
                ipcb_disconnect(cc);
                _exit(0);
        }
        close(up[1]);
        int got = 0;
        cr_assert_eq(read_int(up[0], &got), 0, "reader failed");
        cr_assert_eq(got, 1, "the reader never got a consistent copy");
        cr_assert_eq(wait_status(reader), 0, "reader");
        cr_assert_eq(wait_status(writer), 0, "writer");
        close(up[0]);
        cr_assert_eq(ipcb_shm_close(w), 0);
}

typedef struct unlocker {
        pthread_t t;
        ipcb_shm *s;
        int after_ms;
} unlocker;

static void *unlocker_main(void *arg) {
        unlocker *u = arg;
        sleep_ms(u->after_ms);
        ipcb_shm_unlock(u->s);
        return NULL;
}

typedef struct begin_want {
        ipcb_shm *s;
        int want, last;
} begin_want;

static bool begin_gives(void *arg) {
        begin_want *b = arg;
        uint32_t seq;
        b->last = ipcb_shm_read_begin(b->s, 0, &seq);
        return b->last == b->want;
}

/* A holder dies in the middle of its writes: readers are told the bytes
 * may be half-written (not handed them as consistent, nor left waiting)
 * until the next locker, told IPCB_OWNER_DIED, repairs them and unlocks. */
CHECKED_TEST(attacks_lock, holder_dies_mid_write_readers_get_owner_dead) {
        enum { SIZE = 8192 };
        ipcb_shm *w = create_seg("dd", SIZE, 0644);
        ipcb_shm *r = open_ok("dd", IPCB_READ_ONLY);
        uint32_t seq, seq2;
        int up[2], x;

        memset(ipcb_shm_data(w), 'a', SIZE);
        cr_assert_eq(ipcb_shm_read_begin(r, 0, &seq), 0);
        cr_assert_eq(seq & 1, 0);
        cr_assert(!ipcb_shm_read_retry(r, seq));
        cr_assert_eq(pipe2(up, O_CLOEXEC), 0);
        pid_t pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_shm *s;
                if (ipcb_connect(d.sock, &cc) < 0 || ipcb_shm_open(cc, "dd", IPCB_READ_WRITE, &s) < 0 ||
                    ipcb_shm_lock(s) != 0)
                        _exit(10);
                memset(ipcb_shm_data(s), 'x', SIZE / 2); /* half-written */
                write_int(up[1], 0);
                for (;;)
                        pause();
        }
        cr_assert_eq(read_int(up[0], &x), 0, "child failed");
        cr_assert(ipcb_shm_read_retry(r, seq), "a writer locked: the read must be retried");
        cr_assert_eq(ipcb_shm_read_begin(r, 0, &seq2), -EAGAIN);
        long long t0 = now_ms();
        cr_assert_eq(ipcb_shm_read_begin(r, 100, &seq2), -ETIMEDOUT);
        cr_assert_geq(now_ms() - t0, 90);
        kill(pid, SIGKILL);
        cr_assert_eq(wait_status(pid), 128 + SIGKILL);
        begin_want b = { .s = r, .want = -EOWNERDEAD };
        cr_assert(wait_until(begin_gives, &b, 5000), "reader after the holder died: %s",
                  ipcb_strerror(b.last));
        cr_assert_eq(ipcb_shm_read_begin(r, -1, &seq2), -EOWNERDEAD, "does not wait for a dead holder");
        cr_assert_eq(ipcb_shm_read_begin(w, 0, &seq2), -EOWNERDEAD, "read-write handles read alike");

        cr_assert_eq(ipcb_shm_lock(w), IPCB_OWNER_DIED);
        cr_assert_eq(ipcb_shm_read_begin(w, 0, &seq2), -EDEADLK);
        cr_assert_eq(ipcb_shm_read_begin(r, 0, &seq2), -EAGAIN, "repair under way");
        memset(ipcb_shm_data(w), 'y', SIZE);
        unlocker u = { .s = w, .after_ms = 100 };
        cr_assert_eq(pthread_create(&u.t, NULL, unlocker_main, &u), 0);
        t0 = now_ms();
        int k = ipcb_shm_read_begin(r, 3000, &seq2);
        long long waited = now_ms() - t0;
        cr_assert_eq(pthread_join(u.t, NULL), 0);
        cr_assert_eq(k, 0, "reader waiting for the repair: %s", ipcb_strerror(k));
        cr_assert(waited >= 80 && waited < 1000, "the reader waited %lld ms", waited);
        cr_assert(uniform(ipcb_shm_data(r), SIZE) && ((uint8_t *)ipcb_shm_data(r))[0] == 'y');
        cr_assert(!ipcb_shm_read_retry(r, seq2));
        cr_assert_eq(ipcb_shm_try_lock(w, 0), 0, "the lock works afterwards");
        cr_assert_eq(ipcb_shm_unlock(w), 0);

        /* The daemon keeps no fd per reader (each gets a description of
         * its own; the fd budget counts 3 per segment). */
        int fds = ipcbd_fd_count(&d);
        ipcb_shm *more[3];
        for (int i = 0; i < 3; i++) {
                more[i] = open_ok("dd", IPCB_READ_ONLY);
                cr_assert_eq(ipcb_shm_read_begin(more[i], 0, &seq2), 0);
        }
        /* (a dead holder's socket may still be closing on a reaper thread) */
        for (int i = 0; i < 100 && ipcbd_fd_count(&d) > fds; i++)
                usleep(20000);
        cr_assert_leq(ipcbd_fd_count(&d), fds, "the daemon holds an fd per reader (%d, was %d)",
                      ipcbd_fd_count(&d), fds);
        for (int i = 0; i < 3; i++)
                cr_assert_eq(ipcb_shm_close(more[i]), 0);
        cr_assert_eq(ipcb_shm_read_begin(NULL, 0, &seq2), -EINVAL);
        cr_assert(ipcb_shm_read_retry(NULL, 0));
        close(up[0]);
        close(up[1]);
        cr_assert_eq(ipcb_shm_close(r), 0);
        cr_assert_eq(ipcb_shm_close(w), 0);
}
