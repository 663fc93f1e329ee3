/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_lock.c: segment locks against a real ipcbrokerd: exclusion between
 * handles, processes and threads, try-lock and timeouts, error returns, the
 * segment's bytes left alone, release on close, IPCB_OWNER_DIED when a holder
 * dies, waking waiters, signals, and mutual exclusion under contention.
 * Every test runs in the harness fixture (harness.h): at its end the daemon
 * is back at its idle fd count, the test process at its own, and the daemon
 * exits 0. */
#include "harness.h"

#include "ipcbroker.h"
#include "sempage.h" /* only to play an unlocker killed at one exact instruction */

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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static ipcbd d;
static ipcb_client *c;

static void setup(void) {
        fixture_begin(&d, NULL);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
}

/* What every test holds until its end: the client.  Everything else the
 * test releases itself. */
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
#define CHECKED_TEST(suite, name, ...) FIXTURE_TEST(suite, name, &d, release, ##__VA_ARGS__)

TestSuite(lock, .init = setup, .fini = teardown, .timeout = 30);

/* ---- helpers ---- */

static long long now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static ipcb_shm *create_ok(const char *name, size_t size) {
        ipcb_shm *s = NULL;
        int r = ipcb_shm_create(c, name, size, NULL, &s);
        cr_assert_eq(r, 0, "create %s: %s", name, ipcb_strerror(r));
        return s;
}

static ipcb_shm *open_ok(ipcb_client *cl, const char *name, int access) {
        ipcb_shm *s = NULL;
        int r = ipcb_shm_open(cl, name, access, &s);
        cr_assert_eq(r, 0, "open %s: %s", name, ipcb_strerror(r));
        return s;
}

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

typedef struct chan {
        int up[2], down[2];
} chan;

static void chan_open(chan *ch) {
        cr_assert_eq(pipe2(ch->up, O_CLOEXEC), 0);
        cr_assert_eq(pipe2(ch->down, O_CLOEXEC), 0);
}

static void chan_close(chan *ch) {
        for (int i = 0; i < 2; i++) {
                close(ch->up[i]);
                close(ch->down[i]);
        }
}

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

static bool proc_sleeping(void *arg) {
        pid_t pid = *(pid_t *)arg;
        char path[64], buf[512], *p;
        FILE *f;
        bool r = false;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        if (!(f = fopen(path, "re")))
                return false;
        if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) && p[1] == ' ')
                r = p[2] == 'S';
        fclose(f);
        return r;
}

/* A thread that locks a handle and reports when and what. */
typedef struct locker {
        pthread_t t;
        ipcb_shm *s;
        int timeout_ms; /* < 0: ipcb_shm_lock */
        atomic_int started;
        int result;
        long long took_ms;
} locker;

static void *locker_main(void *arg) {
        locker *l = arg;
        atomic_store(&l->started, 1);
        long long t0 = now_ms();
        l->result = l->timeout_ms < 0 ? ipcb_shm_lock(l->s) : ipcb_shm_try_lock(l->s, l->timeout_ms);
        l->took_ms = now_ms() - t0;
        return NULL;
}

static void locker_start(locker *l, ipcb_shm *s, int timeout_ms) {
        *l = (locker){ .s = s, .timeout_ms = timeout_ms };
        cr_assert_eq(pthread_create(&l->t, NULL, locker_main, l), 0);
        while (!atomic_load(&l->started))
                sleep_ms(1);
}

static int locker_join(locker *l) {
        cr_assert_eq(pthread_join(l->t, NULL), 0);
        return l->result;
}

typedef struct handles_want {
        const char *name;
        unsigned handles;
        unsigned last;
} handles_want;

static bool handles_reached(void *arg) {
        handles_want *w = arg;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        if (ipcb_stat(c, IPCB_KIND_SHM, w->name, &info) < 0)
                return false;
        w->last = info.handles;
        return info.handles == w->handles;
}

static void wait_handles(const char *name, unsigned n) {
        handles_want w = { .name = name, .handles = n };
        cr_assert(wait_until(handles_reached, &w, 5000), "%s: %u handles, expected %u", name, w.last, n);
}

/* ---- basics ---- */

CHECKED_TEST(lock, basics_and_errors) {
        ipcb_shm *a = create_ok("l", 4096);
        ipcb_shm *b = open_ok(c, "l", IPCB_READ_WRITE);

        cr_assert_eq(ipcb_shm_unlock(a), -EPERM, "unlock of a never-locked handle");
        cr_assert_eq(ipcb_shm_lock(a), 0);
        cr_assert_eq(ipcb_shm_lock(a), -EDEADLK, "relock through the same handle");
        cr_assert_eq(ipcb_shm_try_lock(a, 0), -EDEADLK);
        cr_assert_eq(ipcb_shm_try_lock(a, 100), -EDEADLK);
        /* Two handles in one process exclude each other. */
        cr_assert_eq(ipcb_shm_try_lock(b, 0), -EAGAIN);
        cr_assert_eq(ipcb_shm_unlock(b), -EPERM, "unlock by a handle that does not hold it");
        long long t0 = now_ms();
        int r = ipcb_shm_try_lock(b, 300);
        long long dt = now_ms() - t0;
        cr_assert_eq(r, -ETIMEDOUT, "%s", ipcb_strerror(r));
        cr_assert(dt >= 250 && dt <= 350, "try_lock(300) gave up after %lld ms", dt);
        cr_assert_eq(ipcb_shm_unlock(a), 0);
        cr_assert_eq(ipcb_shm_unlock(a), -EPERM, "double unlock");
        cr_assert_eq(ipcb_shm_try_lock(b, 0), 0);
        cr_assert_eq(ipcb_shm_try_lock(a, 0), -EAGAIN);
        cr_assert_eq(ipcb_shm_unlock(a), -EPERM);
        cr_assert_eq(ipcb_shm_unlock(b), 0);
        cr_assert_eq(ipcb_shm_try_lock(a, -1), 0);
        cr_assert_eq(ipcb_shm_unlock(a), 0);
        for (int i = 0; i < 1000; i++) {
                ipcb_shm *h = i % 2 ? a : b;
                if (ipcb_shm_lock(h) != 0 || ipcb_shm_unlock(h) != 0)
                        cr_assert_fail("cycle %d", i);
        }
        cr_assert_eq(ipcb_shm_lock(NULL), -EINVAL);
        cr_assert_eq(ipcb_shm_try_lock(NULL, 0), -EINVAL);
        cr_assert_eq(ipcb_shm_unlock(NULL), -EINVAL);
        cr_assert_eq(ipcb_shm_close(b), 0);
        cr_assert_eq(ipcb_shm_close(a), 0);
}

CHECKED_TEST(lock, handles_on_two_connections_exclude) {
        ipcb_client *c2;
        cr_assert_eq(ipcb_connect(d.sock, &c2), 0);
        ipcb_shm *a = create_ok("two", 4096);
        ipcb_shm *b = open_ok(c2, "two", IPCB_READ_WRITE);

        cr_assert_eq(ipcb_shm_lock(b), 0);
        cr_assert_eq(ipcb_shm_try_lock(a, 0), -EAGAIN);
        cr_assert_eq(ipcb_shm_unlock(a), -EPERM);
        cr_assert_eq(ipcb_shm_unlock(b), 0);
        cr_assert_eq(ipcb_shm_lock(a), 0);
        cr_assert_eq(ipcb_shm_try_lock(b, 50), -ETIMEDOUT);
        cr_assert_eq(ipcb_shm_unlock(a), 0);
        cr_assert_eq(ipcb_shm_close(b), 0);
        cr_assert_eq(ipcb_shm_close(a), 0);
        ipcb_disconnect(c2);
}

/* Taking the lock is a write: read-only handles neither take nor release
 * it (tests/test_attacks_lock.c has the attacks). */
CHECKED_TEST(lock, read_only_handles_do_not_lock) {
        ipcb_shm *w = create_ok("ro", 4096);
        ipcb_shm *r1 = open_ok(c, "ro", IPCB_READ_ONLY);

        cr_assert_eq(ipcb_shm_lock(r1), -EBADF);
        cr_assert_eq(ipcb_shm_try_lock(r1, 0), -EBADF);
        cr_assert_eq(ipcb_shm_unlock(r1), -EBADF);
        cr_assert_eq(ipcb_shm_lock(w), 0);
        cr_assert_eq(ipcb_shm_unlock(r1), -EBADF);
        cr_assert_eq(ipcb_shm_unlock(w), 0);
        cr_assert_eq(ipcb_shm_close(r1), 0);
        cr_assert_eq(ipcb_shm_close(w), 0);
}

CHECKED_TEST(lock, lock_state_leaves_bytes_alone) {
        enum { SIZE = 3 * 4096 + 17 };
        ipcb_shm *a = create_ok("bytes", SIZE);
        ipcb_shm *b = open_ok(c, "bytes", IPCB_READ_WRITE);
        ipcb_shm *r = open_ok(c, "bytes", IPCB_READ_ONLY);
        struct stat st;

        fill(ipcb_shm_data(a), SIZE, 5);
        for (int i = 0; i < 3000; i++) {
                ipcb_shm *h = i % 2 == 0 ? a : b;
                uint32_t seq;
                if (ipcb_shm_lock(h) != 0 || ipcb_shm_unlock(h) != 0)
                        cr_assert_fail("cycle %d", i);
                if (ipcb_shm_read_begin(r, 0, &seq) != 0 || ipcb_shm_read_retry(r, seq))
                        cr_assert_fail("read %d", i);
        }
        cr_assert_eq(ipcb_shm_lock(b), 0); /* and while held */
        cr_assert(check(ipcb_shm_data(a), SIZE, 5), "locking changed the segment's bytes");
        cr_assert(check(ipcb_shm_data(r), SIZE, 5));
        cr_assert_eq(ipcb_shm_unlock(b), 0);
        cr_assert_eq(ipcb_shm_size(a), SIZE);
        cr_assert_eq(ipcb_shm_size(b), SIZE);
        cr_assert_eq(fstat(ipcb_shm_fd(a), &st), 0);
        cr_assert_eq(st.st_size, SIZE, "the memfd's size changed");
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "bytes", &info), 0);
        cr_assert_eq(info.size, SIZE);
        /* A handle opened after locking sees the same bytes and size. */
        ipcb_shm *n = open_ok(c, "bytes", IPCB_READ_ONLY);
        cr_assert_eq(ipcb_shm_size(n), SIZE);
        cr_assert(check(ipcb_shm_data(n), SIZE, 5));
        cr_assert_eq(ipcb_shm_close(n), 0);
        cr_assert_eq(ipcb_shm_close(r), 0);
        cr_assert_eq(ipcb_shm_close(b), 0);
        cr_assert_eq(ipcb_shm_close(a), 0);
}

CHECKED_TEST(lock, any_thread_may_unlock) {
        ipcb_shm *a = create_ok("thr", 4096);
        ipcb_shm *b = open_ok(c, "thr", IPCB_READ_WRITE);
        locker l;

        locker_start(&l, a, -1);
        cr_assert_eq(locker_join(&l), 0);
        cr_assert_eq(ipcb_shm_try_lock(b, 0), -EAGAIN);
        cr_assert_eq(ipcb_shm_unlock(a), 0, "unlock from another thread");
        cr_assert_eq(ipcb_shm_try_lock(b, 0), 0);
        cr_assert_eq(ipcb_shm_unlock(b), 0);
        cr_assert_eq(ipcb_shm_close(b), 0);
        cr_assert_eq(ipcb_shm_close(a), 0);
}

/* ---- going away while holding ---- */

CHECKED_TEST(lock, close_releases_without_owner_died) {
        ipcb_shm *a = create_ok("cl", 4096);
        ipcb_shm *b = open_ok(c, "cl", IPCB_READ_WRITE);
        ipcb_shm *x = open_ok(c, "cl", IPCB_READ_WRITE);

        cr_assert_eq(ipcb_shm_lock(x), 0);
        cr_assert_eq(ipcb_shm_close(x), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_shm_try_lock(b, 0), 0, "close did not unlock (or said the owner died)");
        cr_assert_eq(ipcb_shm_unlock(b), 0);

        /* A waiter blocked meanwhile gets 0 too. */
        x = open_ok(c, "cl", IPCB_READ_WRITE);
        cr_assert_eq(ipcb_shm_lock(x), 0);
        locker l;
        locker_start(&l, b, 5000);
        sleep_ms(100);
        cr_assert_eq(ipcb_shm_close(x), 0);
        cr_assert_eq(locker_join(&l), 0, "waiter: %s", ipcb_strerror(l.result));
        cr_assert_lt(l.took_ms, 2000);
        cr_assert_eq(ipcb_shm_unlock(b), 0);
        cr_assert_eq(ipcb_shm_close(b), 0);
        cr_assert_eq(ipcb_shm_close(a), 0);
}

CHECKED_TEST(lock, disconnect_while_holding_is_owner_died) {
        ipcb_client *c2;
        cr_assert_eq(ipcb_connect(d.sock, &c2), 0);
        ipcb_shm *a = create_ok("dc", 4096);
        ipcb_shm *b = open_ok(c2, "dc", IPCB_READ_WRITE);

        cr_assert_eq(ipcb_shm_lock(b), 0);
        ipcb_disconnect(c2);
        locker l;
        locker_start(&l, a, 5000);
        cr_assert_eq(locker_join(&l), IPCB_OWNER_DIED, "got %d", l.result);
        cr_assert_eq(ipcb_shm_unlock(a), 0);
        cr_assert_eq(ipcb_shm_lock(a), 0, "afterwards: plain 0");
        cr_assert_eq(ipcb_shm_unlock(a), 0);
        cr_assert_eq(ipcb_shm_close(b), 0);
        cr_assert_eq(ipcb_shm_close(a), 0);
}

/* A child locks, writes, and is SIGKILLed inside its critical section; our
 * lock, started before or after the kill, says IPCB_OWNER_DIED. */
static void holder_killed_case(bool lock_before_kill) {
        enum { SIZE = 4096 };
        ipcb_shm *s = create_ok("dead", SIZE);
        uint8_t *p = ipcb_shm_data(s);
        chan ch;
        chan_open(&ch);
        pid_t pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_shm *cs;
                if (ipcb_connect(d.sock, &cc) < 0 || ipcb_shm_open(cc, "dead", IPCB_READ_WRITE, &cs) < 0)
                        _exit(10);
                if (ipcb_shm_lock(cs) != 0)
                        _exit(11);
                fill(ipcb_shm_data(cs), SIZE / 2, 9); /* half-written */
                write_byte(ch.up[1]);
                for (;;)
                        pause();
        }
        cr_assert(read_byte(ch.up[0]), "child failed");
        cr_assert_eq(ipcb_shm_try_lock(s, 0), -EAGAIN);
        locker l;
        if (lock_before_kill) {
                locker_start(&l, s, -1);
                sleep_ms(100);
                cr_assert_eq(atomic_load(&l.started), 1);
        }
        kill(pid, SIGKILL);
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        int r;
        if (lock_before_kill)
                r = locker_join(&l);
        else
                r = ipcb_shm_lock(s);
        cr_assert_eq(r, IPCB_OWNER_DIED, "lock after the holder died: %d", r);
        cr_assert(check(p, SIZE / 2, 9), "the dead holder's bytes are there to inspect");
        cr_assert_eq(ipcb_shm_unlock(s), 0);
        cr_assert_eq(ipcb_shm_lock(s), 0, "the lock works afterwards");
        cr_assert_eq(ipcb_shm_unlock(s), 0);
        cr_assert_eq(ipcb_shm_try_lock(s, 0), 0);
        cr_assert_eq(ipcb_shm_unlock(s), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
        chan_close(&ch);
        ipcb_sync(c);
}

CHECKED_TEST(lock, holder_killed_lock_after) {
        holder_killed_case(false);
}

CHECKED_TEST(lock, holder_killed_lock_before) {
        holder_killed_case(true);
}

/* A handle re-opened on a new connection (here its client's socket shut
 * down under it; a broker that dropped the connection or restarted is the
 * same) cannot reclaim its lock token when the broker that gave it has
 * forgotten it: it opens without one.  The library went on locking with
 * the old token, which no handle of the broker holds now, so a holder
 * killed after that left the lock held for good: the others' locks timed
 * out.  It asks for a new token first now. */
/* The last socket this process connected to the daemon: its own client's
 * (the test's client, made before the fork, has a lower number). */
static int newest_daemon_socket(void) {
        for (int fd = 1023; fd > 2; fd--) {
                struct ucred uc;
                socklen_t len = sizeof(uc);
                if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0 && uc.pid == d.pid)
                        return fd;
        }
        return -1;
}

CHECKED_TEST(lock, holder_killed_after_reconnecting) {
        ipcb_shm *s = create_ok("rc", 4096);
        chan ch;
        chan_open(&ch);
        pid_t pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_shm *cs;
                if (ipcb_connect(d.sock, &cc) < 0 || ipcb_shm_open(cc, "rc", IPCB_READ_WRITE, &cs) < 0)
                        _exit(10);
                if (ipcb_shm_lock(cs) != 0 || ipcb_shm_unlock(cs) != 0) /* it has a token */
                        _exit(11);
                if (shutdown(newest_daemon_socket(), SHUT_RDWR) < 0)
                        _exit(12);
                (void)ipcb_sync(cc); /* the connection is gone: ... */
                if (ipcb_sync(cc) != 0) /* ... a new one, the handle re-opened */
                        _exit(13);
                if (ipcb_shm_lock(cs) != 0)
                        _exit(14);
                write_byte(ch.up[1]);
                for (;;)
                        pause();
        }
        cr_assert(read_byte(ch.up[0]), "child failed");
        cr_assert_eq(ipcb_shm_try_lock(s, 0), -EAGAIN);
        kill(pid, SIGKILL);
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        int r = ipcb_shm_try_lock(s, 2000);
        cr_assert_eq(r, IPCB_OWNER_DIED, "lock after the holder died: %d (%s)", r, r < 0 ? ipcb_strerror(r) : "");
        cr_assert_eq(ipcb_shm_unlock(s), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
        chan_close(&ch);
        ipcb_sync(c);
}

/* Only the next locker is told. */
CHECKED_TEST(lock, owner_died_reported_once) {
        ipcb_shm *a = create_ok("once", 4096);
        ipcb_shm *b = open_ok(c, "once", IPCB_READ_WRITE);
        pid_t pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_shm *cs;
                if (ipcb_connect(d.sock, &cc) < 0 || ipcb_shm_open(cc, "once", IPCB_READ_WRITE, &cs) < 0)
                        _exit(10);
                if (ipcb_shm_lock(cs) != 0)
                        _exit(11);
                _exit(0); /* dies holding it */
        }
        cr_assert(child_ok(pid));
        wait_handles("once", 2);
        cr_assert_eq(ipcb_shm_try_lock(a, 1000), IPCB_OWNER_DIED);
        cr_assert_eq(ipcb_shm_try_lock(b, 0), -EAGAIN);
        cr_assert_eq(ipcb_shm_unlock(a), 0);
        cr_assert_eq(ipcb_shm_try_lock(b, 0), 0, "OWNER_DIED reported twice");
        cr_assert_eq(ipcb_shm_unlock(b), 0);
        cr_assert_eq(ipcb_shm_close(b), 0);
        cr_assert_eq(ipcb_shm_close(a), 0);
}

/* ---- waking ---- */

CHECKED_TEST(lock, waiter_woken_by_unlock_in_other_process) {
        ipcb_shm *s = create_ok("wk", 4096);
        chan ch;
        chan_open(&ch);
        pid_t pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_shm *cs;
                if (ipcb_connect(d.sock, &cc) < 0 || ipcb_shm_open(cc, "wk", IPCB_READ_WRITE, &cs) < 0)
                        _exit(10);
                if (ipcb_shm_lock(cs) != 0)
                        _exit(11);
                write_byte(ch.up[1]);
                sleep_ms(200);
                if (ipcb_shm_unlock(cs) != 0)
                        _exit(12);
                ipcb_shm_close(cs);
                ipcb_disconnect(cc);
                _exit(0);
        }
        cr_assert(read_byte(ch.up[0]), "child failed");
        long long t0 = now_ms();
        int r = ipcb_shm_lock(s);
        long long dt = now_ms() - t0;
        cr_assert_eq(r, 0, "%d", r);
        cr_assert(dt >= 120 && dt < 1000, "woke after %lld ms, the holder unlocked at ~200", dt);
        cr_assert(child_ok(pid));
        cr_assert_eq(ipcb_shm_unlock(s), 0);

        /* Several waiters, one per process: all get it in turn. */
        enum { W = 4 };
        pid_t ws[W];
        cr_assert_eq(ipcb_shm_lock(s), 0);
        for (int i = 0; i < W; i++) {
                ws[i] = test_fork();
                if (ws[i] == 0) {
                        ipcb_client *cc;
                        ipcb_shm *cs;
                        if (ipcb_connect(d.sock, &cc) < 0 ||
                            ipcb_shm_open(cc, "wk", IPCB_READ_WRITE, &cs) < 0)
                                _exit(10);
                        if (ipcb_shm_try_lock(cs, 10000) != 0)
                                _exit(11);
                        sleep_ms(5);
                        if (ipcb_shm_unlock(cs) != 0)
                                _exit(12);
                        ipcb_shm_close(cs);
                        ipcb_disconnect(cc);
                        _exit(0);
                }
        }
        for (int i = 0; i < W; i++)
                cr_assert(wait_until(proc_sleeping, &ws[i], 5000));
        sleep_ms(50);
        cr_assert_eq(ipcb_shm_unlock(s), 0);
        for (int i = 0; i < W; i++)
                cr_assert(child_ok(ws[i]), "waiter %d", i);
        cr_assert_eq(ipcb_shm_try_lock(s, 0), 0);
        cr_assert_eq(ipcb_shm_unlock(s), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
        chan_close(&ch);
}

/* A waiter killed while asleep does not swallow the wake-up of another. */
CHECKED_TEST(lock, killed_waiter_does_not_strand_others) {
        ipcb_shm *s = create_ok("kw", 4096);
        pid_t w[2];

        cr_assert_eq(ipcb_shm_lock(s), 0);
        for (int i = 0; i < 2; i++) {
                w[i] = test_fork();
                if (w[i] == 0) {
                        ipcb_client *cc;
                        ipcb_shm *cs;
                        if (ipcb_connect(d.sock, &cc) < 0 ||
                            ipcb_shm_open(cc, "kw", IPCB_READ_WRITE, &cs) < 0)
                                _exit(10);
                        int r = ipcb_shm_try_lock(cs, 10000);
                        if (r != 0)
                                _exit(11);
                        ipcb_shm_unlock(cs);
                        ipcb_shm_close(cs);
                        ipcb_disconnect(cc);
                        _exit(0);
                }
                cr_assert(wait_until(proc_sleeping, &w[i], 5000));
        }
        sleep_ms(50);
        kill(w[0], SIGKILL);
        waitpid(w[0], NULL, 0);
        wait_handles("kw", 2);
        long long t0 = now_ms();
        cr_assert_eq(ipcb_shm_unlock(s), 0);
        cr_assert(child_ok(w[1]), "the surviving waiter");
        cr_assert_lt(now_ms() - t0, 2000);
        cr_assert_eq(ipcb_shm_try_lock(s, 0), 0, "a killed waiter left the lock taken");
        cr_assert_eq(ipcb_shm_unlock(s), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
}

static volatile sig_atomic_t usr1_count;

static void on_usr1(int sig) {
        (void)sig;
        usr1_count++;
}

CHECKED_TEST(lock, signal_does_not_end_wait) {
        ipcb_shm *s = create_ok("sig", 4096);
        int *released = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        cr_assert_neq(released, MAP_FAILED);
        chan ch;
        chan_open(&ch);
        cr_assert_eq(ipcb_shm_lock(s), 0);
        for (int timed = 0; timed < 2; timed++) {
                pid_t pid = test_fork();
                if (pid == 0) {
                        struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = 0 };
                        ipcb_client *cc;
                        ipcb_shm *cs;
                        sigemptyset(&sa.sa_mask);
                        if (sigaction(SIGUSR1, &sa, NULL) < 0)
                                _exit(9);
                        if (ipcb_connect(d.sock, &cc) < 0 ||
                            ipcb_shm_open(cc, "sig", IPCB_READ_WRITE, &cs) < 0)
                                _exit(10);
                        write_byte(ch.up[1]);
                        int r = timed ? ipcb_shm_try_lock(cs, 5000) : ipcb_shm_lock(cs);
                        if (usr1_count == 0)
                                _exit(11);
                        if (r != 0)
                                _exit(12);
                        if (!__atomic_load_n(released, __ATOMIC_SEQ_CST))
                                _exit(13);
                        ipcb_shm_unlock(cs);
                        ipcb_shm_close(cs);
                        ipcb_disconnect(cc);
                        _exit(0);
                }
                cr_assert(read_byte(ch.up[0]));
                sleep_ms(50);
                for (int i = 0; i < 6; i++) {
                        kill(pid, SIGUSR1);
                        sleep_ms(30);
                }
                __atomic_store_n(released, 1, __ATOMIC_SEQ_CST);
                cr_assert_eq(ipcb_shm_unlock(s), 0);
                cr_assert(child_ok(pid), "timed %d", timed);
                __atomic_store_n(released, 0, __ATOMIC_SEQ_CST);
                cr_assert_eq(ipcb_shm_lock(s), 0);
        }
        cr_assert_eq(ipcb_shm_unlock(s), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
        munmap(released, 4096);
        chan_close(&ch);
}

static void *find_page(uint32_t magic) {
        FILE *f = fopen("/proc/self/maps", "re");
        char line[512];
        void *found = NULL;

        if (!f)
                return NULL;
        while (!found && fgets(line, sizeof(line), f)) {
                unsigned long lo, hi;
                char perms[8];
                if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3)
                        continue;
                if (hi - lo != 4096 || strcmp(perms, "rw-s") != 0 || !strstr(line, "memfd:"))
                        continue;
                if (*(const uint32_t *)lo == magic)
                        found = (void *)lo;
        }
        fclose(f);
        return found;
}

/* An unlocker killed between its exchange (the word is free) and its
 * FUTEX_WAKE: the broker sees the handle go away, and the sleeper must not
 * stay asleep on a free lock.  Played by a child that makes
 * ipcb_shm_unlock's exchange itself and then dies before waking. */
CHECKED_TEST(lock, unlocker_killed_before_wake_does_not_strand_waiter) {
        ipcb_shm *s = create_ok("uk", 8192);
        chan ch;
        chan_open(&ch);
        pid_t pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_shm *cs;
                if (ipcb_connect(d.sock, &cc) < 0 || ipcb_shm_open(cc, "uk", IPCB_READ_WRITE, &cs) < 0)
                        _exit(10);
                if (ipcb_shm_lock(cs) != 0)
                        _exit(11);
                ipcb_lock_page *pg = find_page(IPCB_LOCK_MAGIC);
                if (!pg)
                        _exit(12);
                write_byte(ch.up[1]);
                read_byte(ch.down[0]);
                sleep_ms(200); /* the parent is asleep by now */
                atomic_exchange(&pg->word, 0); /* ipcb_shm_unlock's exchange */
                raise(SIGKILL);                /* ...and die before futex_wake */
                _exit(13);
        }
        cr_assert(read_byte(ch.up[0]), "child failed");
        write_byte(ch.down[1]);
        long long t0 = now_ms();
        int r = ipcb_shm_try_lock(s, 3000);
        long long dt = now_ms() - t0;
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFSIGNALED(st), "child status 0x%x", st);
        cr_assert(r == 0 || r == IPCB_OWNER_DIED,
                  "the waiter stayed asleep on a free lock: %s after %lld ms", ipcb_strerror(r), dt);
        cr_assert_lt(dt, 1500, "the waiter woke only after %lld ms", dt);
        cr_assert_eq(ipcb_shm_unlock(s), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
        chan_close(&ch);
}

/* ---- contention ---- */

CHECKED_TEST(lock, mutual_exclusion_under_contention, .timeout = 120) {
        enum { PROCS = 4, ITERS = 20000 };
        ipcb_shm *s = create_ok("mx", 4096);
        volatile uint64_t *counter = ipcb_shm_data(s);
        pid_t pids[PROCS];

        *counter = 0;
        long long t0 = now_ms();
        for (int i = 0; i < PROCS; i++) {
                pids[i] = test_fork();
                if (pids[i] == 0) {
                        ipcb_client *cc;
                        ipcb_shm *cs;
                        if (ipcb_connect(d.sock, &cc) < 0 || ipcb_shm_open(cc, "mx", IPCB_READ_WRITE, &cs) < 0)
                                _exit(10);
                        volatile uint64_t *ctr = ipcb_shm_data(cs);
                        for (int k = 0; k < ITERS; k++) {
                                if (ipcb_shm_lock(cs) != 0)
                                        _exit(11);
                                uint64_t v = *ctr; /* not atomic on purpose */
                                if ((k & 63) == 0)
                                        sched_yield(); /* widen the window */
                                *ctr = v + 1;
                                if (ipcb_shm_unlock(cs) != 0)
                                        _exit(12);
                        }
                        ipcb_shm_close(cs);
                        ipcb_disconnect(cc);
                        _exit(0);
                }
        }
        for (int i = 0; i < PROCS; i++)
                cr_assert(child_ok(pids[i]), "child %d", i);
        fprintf(stderr, "lock contention: %d x %d lock/unlock in %lld ms\n", PROCS, ITERS, now_ms() - t0);
        cr_assert_eq(*counter, (uint64_t)PROCS * ITERS, "lost updates: the lock did not exclude");
        cr_assert_eq(ipcb_shm_try_lock(s, 0), 0);
        cr_assert_eq(ipcb_shm_unlock(s), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
}

/* ---- fds ---- */

CHECKED_TEST(lock, no_fd_leak) {
        int self0 = self_fd_count(), daemon1 = -1;

        for (int round = 0; round < 30; round++) {
                ipcb_shm *a = create_ok("fd", 4096);
                ipcb_shm *b = open_ok(c, "fd", IPCB_READ_WRITE);
                ipcb_shm *r = open_ok(c, "fd", IPCB_READ_ONLY);
                uint32_t seq;
                cr_assert_eq(ipcb_shm_lock(a), 0);
                cr_assert_eq(ipcb_shm_try_lock(b, 0), -EAGAIN);
                cr_assert_eq(ipcb_shm_read_begin(r, 0, &seq), -EAGAIN);
                cr_assert_eq(ipcb_shm_unlock(a), 0);
                cr_assert_eq(ipcb_shm_read_begin(r, 0, &seq), 0);
                cr_assert_eq(ipcb_shm_lock(b), 0);
                cr_assert_eq(ipcb_shm_close(b), 0); /* still holding it */
                cr_assert_eq(ipcb_shm_close(r), 0);
                cr_assert_eq(ipcb_shm_close(a), 0);
                cr_assert_eq(ipcb_sync(c), 0);
                cr_assert_eq(self_fd_count(), self0, "round %d", round);
                if (round == 0)
                        daemon1 = ipcbd_fd_count(&d);
                else
                        cr_assert(ipcbd_wait_fds(&d, daemon1, 2000), "round %d: daemon fds grow", round);
        }
}
