/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_sem.c: named semaphores against a real ipcbrokerd: counting,
 * all-or-nothing release, timeouts and signals, the namespace (create/open/
 * unlink, no silent create or reset), undo handles (tokens come back on close
 * and on death, -EBUSY and -ECHILD), waiters killed while blocked, many
 * processes, a bounded buffer across processes, and fd hygiene.
 * Every test runs in the harness fixture (harness.h): at its end the daemon
 * is back at its idle fd count, the test process at its own, and the daemon
 * exits 0. */
#include "harness.h"

#include "ipcbroker.h"
#include "sempage.h" /* only to play a releaser killed at one exact instruction */

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

TestSuite(sem, .init = setup, .fini = teardown, .timeout = 30);

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

static ipcb_sem *create_ok(ipcb_client *cl, const char *name, unsigned initial, unsigned max,
                           unsigned flags) {
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
        ipcb_sem *s = NULL;
        int r;

        o.max = max;
        o.flags = flags;
        r = ipcb_sem_create(cl, name, initial, &o, &s);
        cr_assert_eq(r, 0, "sem create %s: %s", name, ipcb_strerror(r));
        cr_assert_not_null(s);
        return s;
}

static ipcb_sem *open_ok(ipcb_client *cl, const char *name, int flags) {
        ipcb_sem *s = NULL;
        int r = ipcb_sem_open(cl, name, flags, &s);
        cr_assert_eq(r, 0, "sem open %s: %s", name, ipcb_strerror(r));
        return s;
}

static ipcb_object_info stat_ok(const char *name) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        int r = ipcb_stat(c, IPCB_KIND_SEM, name, &info);
        cr_assert_eq(r, 0, "stat %s: %s", name, ipcb_strerror(r));
        return info;
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

static void kill_and_reap(pid_t pid) {
        int st;
        cr_assert_eq(kill(pid, SIGKILL), 0);
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child was not killed (status 0x%x)", st);
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
        int up[2];   /* child → parent */
        int down[2]; /* parent → child */
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

/* An anonymous shared page for counters that children and parent share. */
static void *shared_page(void) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        cr_assert_neq(p, MAP_FAILED);
        return p;
}

/* True once process pid is asleep (state S) in the kernel. */
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

typedef struct stat_want {
        const char *name;
        unsigned value, handles, held;
        ipcb_object_info last;
} stat_want;

/* The daemon reports value, handle count and undo-held as wanted. */
static bool stat_reached(void *arg) {
        stat_want *w = arg;
        if (ipcb_stat(c, IPCB_KIND_SEM, w->name, &w->last) < 0)
                return false;
        return w->last.sem_value == w->value && w->last.handles == w->handles &&
               w->last.sem_undo_held == w->held;
}

static void wait_stat(const char *name, unsigned value, unsigned handles, unsigned held) {
        stat_want w = { .name = name, .value = value, .handles = handles, .held = held,
                        .last = IPCB_OBJECT_INFO_INIT };
        cr_assert(wait_until(stat_reached, &w, 5000),
                  "sem %s: value %u handles %u held %u, expected %u %u %u", name, w.last.sem_value,
                  w.last.handles, w.last.sem_undo_held, value, handles, held);
}

static bool sem_gone(void *arg) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        return ipcb_stat(c, IPCB_KIND_SEM, arg, &info) == -ENOENT;
}

static void wait_gone(const char *name) {
        ipcb_sync(c);
        cr_assert(wait_until(sem_gone, (void *)name, 5000), "sem %s still exists", name);
}

/* ---- counting ---- */

CHECKED_TEST(sem, initial_values_and_sequences) {
        static const unsigned initials[] = { 0, 1, 2 };

        for (unsigned k = 0; k < 3; k++) {
                char name[16];
                unsigned v0 = initials[k];
                snprintf(name, sizeof(name), "init%u", v0);
                ipcb_sem *s = create_ok(c, name, v0, 0, 0);
                cr_assert_eq(ipcb_sem_value(s), (int)v0);
                cr_assert_eq(ipcb_sem_held(s), 0, "a plain handle holds nothing");
                for (unsigned i = 0; i < v0; i++) {
                        cr_assert_eq(ipcb_sem_acquire(s), 0);
                        cr_assert_eq(ipcb_sem_value(s), (int)(v0 - i - 1));
                }
                cr_assert_eq(ipcb_sem_try_acquire(s, 0), -EAGAIN, "initial %u: empty", v0);
                cr_assert_eq(ipcb_sem_value(s), 0);
                cr_assert_eq(ipcb_sem_release(s, 1), 0);
                cr_assert_eq(ipcb_sem_value(s), 1);
                cr_assert_eq(ipcb_sem_try_acquire(s, 0), 0);
                cr_assert_eq(ipcb_sem_try_acquire(s, 0), -EAGAIN);
                cr_assert_eq(ipcb_sem_release(s, v0 + 2), 0);
                cr_assert_eq(ipcb_sem_value(s), (int)v0 + 2);
                for (unsigned i = 0; i < v0 + 2; i++)
                        cr_assert_eq(ipcb_sem_try_acquire(s, 100), 0);
                cr_assert_eq(ipcb_sem_try_acquire(s, 0), -EAGAIN);
                cr_assert_eq(ipcb_sem_release(s, v0), 0);
                cr_assert_eq(ipcb_sem_value(s), (int)v0);
                ipcb_object_info info = stat_ok(name);
                cr_assert_eq(info.kind, IPCB_KIND_SEM);
                cr_assert_eq(info.sem_value, v0);
                cr_assert_eq(info.sem_max, IPCB_SEM_VALUE_MAX, "max 0 means the largest");
                cr_assert_eq(ipcb_sem_close(s), 0);
        }
}

CHECKED_TEST(sem, blocking_acquire_woken_by_other_process) {
        ipcb_sem *s = create_ok(c, "wake", 0, 0, 0);
        chan ch;
        chan_open(&ch);
        pid_t pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_sem *cs;
                if (ipcb_connect(d.sock, &cc) < 0 || ipcb_sem_open(cc, "wake", 0, &cs) < 0)
                        _exit(10);
                if (!read_byte(ch.down[0]))
                        _exit(11);
                sleep_ms(100);
                if (ipcb_sem_release(cs, 1) != 0)
                        _exit(12);
                ipcb_sem_close(cs);
                ipcb_disconnect(cc);
                _exit(0);
        }
        write_byte(ch.down[1]);
        long long t0 = now_ms();
        cr_assert_eq(ipcb_sem_try_acquire(s, -1), 0);
        cr_assert_geq(now_ms() - t0, 50, "acquire returned before the release");
        cr_assert(child_ok(pid));
        cr_assert_eq(ipcb_sem_value(s), 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
        chan_close(&ch);
}

CHECKED_TEST(sem, two_connections_share_one_counter) {
        ipcb_client *c2;
        cr_assert_eq(ipcb_connect(d.sock, &c2), 0);
        ipcb_sem *a = create_ok(c, "shared", 1, 10, 0);
        ipcb_sem *b = open_ok(c2, "shared", 0);

        cr_assert_eq(ipcb_sem_value(b), 1);
        cr_assert_eq(ipcb_sem_acquire(b), 0);
        cr_assert_eq(ipcb_sem_value(a), 0);
        cr_assert_eq(ipcb_sem_try_acquire(a, 0), -EAGAIN);
        cr_assert_eq(ipcb_sem_release(a, 3), 0);
        cr_assert_eq(ipcb_sem_value(b), 3);
        cr_assert_eq(ipcb_sem_try_acquire(b, 0), 0);
        cr_assert_eq(ipcb_sem_try_acquire(a, 0), 0);
        cr_assert_eq(ipcb_sem_value(a), 1);
        cr_assert_eq(stat_ok("shared").handles, 2);

        /* A second process on the same counter: it takes one, gives two. */
        chan ch;
        chan_open(&ch);
        pid_t pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_sem *cs;
                if (ipcb_connect(d.sock, &cc) < 0 || ipcb_sem_open(cc, "shared", 0, &cs) < 0)
                        _exit(10);
                if (ipcb_sem_try_acquire(cs, 0) != 0)
                        _exit(11);
                if (ipcb_sem_value(cs) != 0)
                        _exit(12);
                write_byte(ch.up[1]);
                if (!read_byte(ch.down[0]))
                        _exit(13);
                if (ipcb_sem_value(cs) != 5)
                        _exit(14);
                if (ipcb_sem_release(cs, 2) != 0)
                        _exit(15);
                ipcb_sem_close(cs);
                ipcb_disconnect(cc);
                _exit(0);
        }
        cr_assert(read_byte(ch.up[0]), "child failed");
        cr_assert_eq(ipcb_sem_value(a), 0);
        cr_assert_eq(ipcb_sem_release(b, 5), 0);
        write_byte(ch.down[1]);
        cr_assert(child_ok(pid));
        cr_assert_eq(ipcb_sem_value(a), 7);
        cr_assert_eq(ipcb_sem_value(b), 7);
        cr_assert_eq(ipcb_sem_close(b), 0);
        cr_assert_eq(ipcb_sem_close(a), 0);
        ipcb_disconnect(c2);
        chan_close(&ch);
}

CHECKED_TEST(sem, release_past_max_is_all_or_nothing) {
        ipcb_sem *s = create_ok(c, "max3", 2, 3, 0);
        ipcb_sem *u = open_ok(c, "max3", IPCB_SEM_UNDO);

        cr_assert_eq(ipcb_sem_release(s, 2), -EOVERFLOW);
        cr_assert_eq(ipcb_sem_value(s), 2, "count changed by a refused release");
        cr_assert_eq(ipcb_sem_release(u, 2), -EOVERFLOW, "undo handle: same rule");
        cr_assert_eq(ipcb_sem_value(s), 2);
        cr_assert_eq(ipcb_sem_held(u), 0);
        cr_assert_eq(ipcb_sem_release(s, 1), 0);
        cr_assert_eq(ipcb_sem_value(s), 3);
        cr_assert_eq(ipcb_sem_release(s, 1), -EOVERFLOW);
        cr_assert_eq(ipcb_sem_release(u, 1), -EOVERFLOW);
        cr_assert_eq(ipcb_sem_release(s, 4), -EOVERFLOW, "n above max");
        cr_assert_eq(ipcb_sem_release(s, UINT32_MAX), -EOVERFLOW, "huge n must not wrap");
        cr_assert_eq(ipcb_sem_value(s), 3);
        /* release(0) is a no-op, full or not. */
        cr_assert_eq(ipcb_sem_release(s, 0), 0);
        cr_assert_eq(ipcb_sem_release(u, 0), 0);
        cr_assert_eq(ipcb_sem_value(s), 3);
        cr_assert_eq(ipcb_sem_try_acquire(s, 0), 0);
        cr_assert_eq(ipcb_sem_release(s, 0), 0);
        cr_assert_eq(ipcb_sem_value(s), 2);
        cr_assert_eq(stat_ok("max3").sem_value, 2);
        cr_assert_eq(stat_ok("max3").sem_max, 3);
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
}

/* ipcb_sem_set_value: one step, returns the count it replaced, wakes a
 * sleeper of another process when the count grows, leaves undo holders'
 * tokens alone (they come back on top). */
CHECKED_TEST(sem, set_value) {
        ipcb_sem *s = create_ok(c, "setv", 2, 10, 0);
        ipcb_sem *u = open_ok(c, "setv", IPCB_SEM_UNDO);
        chan ch;

        cr_assert_eq(ipcb_sem_set_value(NULL, 1), -EINVAL);
        cr_assert_eq(ipcb_sem_set_value(s, 11), -EINVAL, "above the maximum");
        cr_assert_eq(ipcb_sem_value(s), 2);
        cr_assert_eq(ipcb_sem_try_acquire(u, 0), 0);
        cr_assert_eq(ipcb_sem_held(u), 1);
        cr_assert_eq(ipcb_sem_set_value(s, 0), 1, "returns the count it replaced");
        cr_assert_eq(ipcb_sem_value(s), 0);
        cr_assert_eq(ipcb_sem_held(u), 1, "an undo handle's tokens are not touched");

        chan_open(&ch);
        pid_t pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_sem *cs;
                if (ipcb_connect(d.sock, &cc) < 0 || ipcb_sem_open(cc, "setv", 0, &cs) < 0)
                        _exit(10);
                write_byte(ch.up[1]);
                _exit(ipcb_sem_try_acquire(cs, 5000) == 0 ? 0 : 11);
        }
        cr_assert(read_byte(ch.up[0]));
        sleep_ms(100); /* let it sleep */
        cr_assert_eq(ipcb_sem_set_value(u, 4), 0, "through an undo handle too");
        cr_assert(child_ok(pid), "set_value must wake the sleeper");
        cr_assert_eq(ipcb_sem_value(s), 3);
        cr_assert_eq(ipcb_sem_close(u), 0); /* its token comes back on top */
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_sem_value(s), 4);
        cr_assert_eq(ipcb_sem_set_value(s, 10), 4);
        cr_assert_eq(stat_ok("setv").sem_value, 10);
        cr_assert_eq(ipcb_sem_close(s), 0);
        chan_close(&ch);
}

CHECKED_TEST(sem, create_argument_checks) {
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
        ipcb_sem *s = (ipcb_sem *)0x1;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        o.max = 3;
        cr_assert_eq(ipcb_sem_create(c, "bad", 4, &o, &s), -EINVAL, "initial above max");
        cr_assert_eq(s, (ipcb_sem *)0x1, "ret written on failure");
        o.max = IPCB_SEM_VALUE_MAX + 1;
        cr_assert_eq(ipcb_sem_create(c, "bad", 0, &o, &s), -EINVAL, "max above 65535");
        o.max = 0;
        cr_assert_eq(ipcb_sem_create(c, "bad", IPCB_SEM_VALUE_MAX + 1, &o, &s), -EINVAL);
        o.flags = 0x100;
        cr_assert_eq(ipcb_sem_create(c, "bad", 0, &o, &s), -EINVAL, "unknown flag");
        o.flags = 0;
        o.mode = 01000;
        cr_assert_eq(ipcb_sem_create(c, "bad", 0, &o, &s), -EINVAL, "bad mode");
        o.mode = 0600;
        cr_assert_eq(ipcb_sem_open(c, "bad", 0x100, &s), -EINVAL, "unknown open flag");
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, "bad", &info), -ENOENT, "a refused create left an object");
        cr_assert_eq(ipcb_sem_create(NULL, "bad", 0, NULL, &s), -EINVAL);
        cr_assert_eq(ipcb_sem_create(c, "bad", 0, NULL, NULL), -EINVAL);
        cr_assert_eq(ipcb_sem_acquire(NULL), -EINVAL);
        cr_assert_eq(ipcb_sem_try_acquire(NULL, 0), -EINVAL);
        cr_assert_eq(ipcb_sem_release(NULL, 1), -EINVAL);
        cr_assert_eq(ipcb_sem_value(NULL), -EINVAL);
        cr_assert_eq(ipcb_sem_held(NULL), -EINVAL);
        cr_assert_eq(ipcb_sem_close(NULL), 0);
        /* The largest values are fine. */
        o.max = IPCB_SEM_VALUE_MAX;
        cr_assert_eq(ipcb_sem_create(c, "big", IPCB_SEM_VALUE_MAX, &o, &s), 0);
        cr_assert_eq(ipcb_sem_value(s), IPCB_SEM_VALUE_MAX);
        cr_assert_eq(ipcb_sem_release(s, 1), -EOVERFLOW);
        cr_assert_eq(ipcb_sem_close(s), 0);
}

/* ---- timeouts and signals ---- */

CHECKED_TEST(sem, timeout_expires_on_time) {
        ipcb_sem *s = create_ok(c, "empty", 0, 0, 0);
        ipcb_sem *u = open_ok(c, "empty", IPCB_SEM_UNDO);
        ipcb_sem *hs[2] = { s, u };

        for (int i = 0; i < 2; i++) {
                long long t0 = now_ms();
                int r = ipcb_sem_try_acquire(hs[i], 300);
                long long dt = now_ms() - t0;
                cr_assert_eq(r, -ETIMEDOUT, "%s: %s", i ? "undo" : "plain", ipcb_strerror(r));
                cr_assert(dt >= 250 && dt <= 350, "%s: timed out after %lld ms, not 300±50",
                          i ? "undo" : "plain", dt);
        }
        /* A timed-out undo acquire left nothing pending: the handle works. */
        cr_assert_eq(ipcb_sem_held(u), 0);
        cr_assert_eq(ipcb_sem_release(s, 1), 0);
        cr_assert_eq(ipcb_sem_try_acquire(u, 0), 0);
        cr_assert_eq(ipcb_sem_held(u), 1);
        cr_assert_eq(ipcb_sem_release(u, 1), 0);
        cr_assert_eq(ipcb_sem_held(u), 0);
        cr_assert_eq(ipcb_sem_value(s), 1);
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
}

CHECKED_TEST(sem, timed_wait_ends_with_release) {
        ipcb_sem *s = create_ok(c, "late", 0, 0, 0);
        chan ch;
        chan_open(&ch);
        pid_t pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_sem *cs;
                if (ipcb_connect(d.sock, &cc) < 0 || ipcb_sem_open(cc, "late", 0, &cs) < 0)
                        _exit(10);
                write_byte(ch.up[1]);
                if (!read_byte(ch.down[0]))
                        _exit(11);
                sleep_ms(300);
                if (ipcb_sem_release(cs, 1) != 0)
                        _exit(12);
                ipcb_sem_close(cs);
                ipcb_disconnect(cc);
                _exit(0);
        }
        cr_assert(read_byte(ch.up[0]), "child failed");
        write_byte(ch.down[1]);
        long long t0 = now_ms();
        int r = ipcb_sem_try_acquire(s, 1000);
        long long dt = now_ms() - t0;
        cr_assert_eq(r, 0, "%s", ipcb_strerror(r));
        cr_assert(dt >= 250 && dt <= 350, "acquired after %lld ms, expected 300±50", dt);
        cr_assert(child_ok(pid));
        cr_assert_eq(ipcb_sem_close(s), 0);
        chan_close(&ch);
}

static volatile sig_atomic_t usr1_count;

static void on_usr1(int sig) {
        (void)sig;
        usr1_count++;
}

enum { WAIT_FOREVER, WAIT_TIMED, WAIT_UNTIL_DEADLINE };

/* Child: block on "sig" with SIGUSR1 caught (no SA_RESTART) while the parent
 * signals it; the wait must end only with the release (or the deadline). */
static void eintr_case(int undo, int how) {
        ipcb_sem *s = create_ok(c, "sig", 0, 0, 0);
        int *released = shared_page();
        chan ch;
        chan_open(&ch);
        pid_t pid = test_fork();
        if (pid == 0) {
                struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = 0 };
                ipcb_client *cc;
                ipcb_sem *cs;
                long long t0, dt;
                int r;
                sigemptyset(&sa.sa_mask);
                if (sigaction(SIGUSR1, &sa, NULL) < 0)
                        _exit(9);
                if (ipcb_connect(d.sock, &cc) < 0 ||
                    ipcb_sem_open(cc, "sig", undo ? IPCB_SEM_UNDO : 0, &cs) < 0)
                        _exit(10);
                write_byte(ch.up[1]);
                t0 = now_ms();
                if (how == WAIT_FOREVER)
                        r = ipcb_sem_acquire(cs);
                else
                        r = ipcb_sem_try_acquire(cs, how == WAIT_TIMED ? 3000 : 400);
                dt = now_ms() - t0;
                if (usr1_count == 0)
                        _exit(11); /* the handler never ran: the test proves nothing */
                if (how == WAIT_UNTIL_DEADLINE) {
                        if (r != -ETIMEDOUT)
                                _exit(12);
                        if (dt < 350 || dt > 450)
                                _exit(13);
                } else {
                        if (r != 0)
                                _exit(14);
                        if (!__atomic_load_n(released, __ATOMIC_SEQ_CST))
                                _exit(15); /* returned before the release */
                        if (undo && ipcb_sem_held(cs) != 1)
                                _exit(16);
                }
                ipcb_sem_close(cs);
                ipcb_disconnect(cc);
                _exit(0);
        }
        cr_assert(read_byte(ch.up[0]), "child failed");
        sleep_ms(50);
        int nsig = how == WAIT_UNTIL_DEADLINE ? 15 : 6;
        for (int i = 0; i < nsig; i++) {
                kill(pid, SIGUSR1);
                sleep_ms(30);
        }
        if (how != WAIT_UNTIL_DEADLINE) {
                __atomic_store_n(released, 1, __ATOMIC_SEQ_CST);
                cr_assert_eq(ipcb_sem_release(s, 1), 0);
        }
        cr_assert(child_ok(pid), "undo %d, wait %d", undo, how);
        /* A plain child consumed the token; an undo child's comes back
         * when it closes its handle. */
        wait_stat("sig", how != WAIT_UNTIL_DEADLINE && undo ? 1 : 0, 1, 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
        wait_gone("sig");
        munmap(released, 4096);
        chan_close(&ch);
}

CHECKED_TEST(sem, signal_does_not_end_acquire) {
        eintr_case(0, WAIT_FOREVER);
        eintr_case(1, WAIT_FOREVER);
}

CHECKED_TEST(sem, signal_does_not_end_timed_acquire) {
        eintr_case(0, WAIT_TIMED);
        eintr_case(1, WAIT_TIMED);
}

CHECKED_TEST(sem, signal_does_not_shorten_timeout) {
        eintr_case(0, WAIT_UNTIL_DEADLINE);
        eintr_case(1, WAIT_UNTIL_DEADLINE);
}

/* ---- the namespace ---- */

CHECKED_TEST(sem, create_existing_is_eexist_without_reset) {
        ipcb_sem *s = create_ok(c, "once", 1, 5, 0);
        ipcb_sem *t = (ipcb_sem *)0x1;
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;

        cr_assert_eq(ipcb_sem_acquire(s), 0);
        o.max = 5;
        cr_assert_eq(ipcb_sem_create(c, "once", 3, &o, &t), -EEXIST);
        cr_assert_eq(t, (ipcb_sem *)0x1);
        cr_assert_eq(ipcb_sem_create(c, "once", 0, NULL, &t), -EEXIST);
        cr_assert_eq(ipcb_sem_value(s), 0, "create of an existing name reset the count");
        ipcb_object_info info = stat_ok("once");
        cr_assert_eq(info.sem_value, 0);
        cr_assert_eq(info.sem_max, 5);
        cr_assert_eq(info.handles, 1);
        cr_assert_eq(ipcb_sem_close(s), 0);
}

CHECKED_TEST(sem, open_missing_is_enoent) {
        ipcb_sem *s = (ipcb_sem *)0x1;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        cr_assert_eq(ipcb_sem_open(c, "nothere", 0, &s), -ENOENT);
        cr_assert_eq(ipcb_sem_open(c, "nothere", IPCB_SEM_UNDO, &s), -ENOENT);
        cr_assert_eq(s, (ipcb_sem *)0x1);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, "nothere", &info), -ENOENT, "open created it");
        cr_assert_eq(ipcb_sem_unlink(c, "nothere"), -ENOENT);
        /* A segment of that name is not a semaphore. */
        ipcb_shm *m;
        cr_assert_eq(ipcb_shm_create(c, "segonly", 4096, NULL, &m), 0);
        cr_assert_eq(ipcb_sem_open(c, "segonly", 0, &s), -ENOENT);
        cr_assert_eq(ipcb_shm_close(m), 0);
}

CHECKED_TEST(sem, bad_names) {
        char long_name[IPCB_NAME_MAX + 2];
        static const char *const bad[] = { "", ".hidden", "a/b", "a b", "tab\there", "x\xc3\xa9", "..", "a\nb" };
        ipcb_sem *s = (ipcb_sem *)0x1;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                cr_assert_eq(ipcb_sem_create(c, bad[i], 0, NULL, &s), -EINVAL, "create '%s'", bad[i]);
                cr_assert_eq(ipcb_sem_open(c, bad[i], 0, &s), -EINVAL, "open '%s'", bad[i]);
                cr_assert_eq(ipcb_sem_unlink(c, bad[i]), -EINVAL, "unlink '%s'", bad[i]);
                cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, bad[i], &info), -EINVAL, "stat '%s'", bad[i]);
        }
        cr_assert_eq(ipcb_sem_create(c, NULL, 0, NULL, &s), -EINVAL);
        cr_assert_eq(ipcb_sem_open(c, NULL, 0, &s), -EINVAL);
        memset(long_name, 'n', sizeof(long_name) - 1);
        long_name[IPCB_NAME_MAX + 1] = '\0';
        cr_assert_eq(ipcb_sem_create(c, long_name, 0, NULL, &s), -ENAMETOOLONG);
        cr_assert_eq(ipcb_sem_open(c, long_name, 0, &s), -ENAMETOOLONG);
        cr_assert_eq(ipcb_sem_unlink(c, long_name), -ENAMETOOLONG);
        cr_assert_eq(s, (ipcb_sem *)0x1);
        /* Exactly IPCB_NAME_MAX bytes, and every allowed character, are fine. */
        long_name[IPCB_NAME_MAX] = '\0';
        ipcb_sem *a = create_ok(c, long_name, 0, 0, 0);
        ipcb_sem *b = create_ok(c, "Az09._:@+-x", 0, 0, 0);
        ipcb_sem *a2 = open_ok(c, long_name, 0);
        cr_assert_eq(ipcb_sem_close(a2), 0);
        cr_assert_eq(ipcb_sem_close(a), 0);
        cr_assert_eq(ipcb_sem_close(b), 0);
}

CHECKED_TEST(sem, unlink_keeps_open_handles) {
        ipcb_sem *s = create_ok(c, "gone", 2, 0, IPCB_SEM_PERSISTENT);
        ipcb_sem *t;

        cr_assert_eq(ipcb_sem_unlink(c, "gone"), 0);
        cr_assert_eq(ipcb_sem_open(c, "gone", 0, &t), -ENOENT, "open after unlink");
        cr_assert_eq(ipcb_sem_unlink(c, "gone"), -ENOENT);
        /* The old handle still works on the old counter. */
        cr_assert_eq(ipcb_sem_acquire(s), 0);
        cr_assert_eq(ipcb_sem_value(s), 1);
        cr_assert_eq(ipcb_sem_release(s, 2), 0);
        cr_assert_eq(ipcb_sem_value(s), 3);
        /* A new semaphore of that name is a different one. */
        ipcb_sem *n = create_ok(c, "gone", 0, 0, 0);
        cr_assert_eq(ipcb_sem_value(n), 0);
        cr_assert_eq(ipcb_sem_release(n, 5), 0);
        cr_assert_eq(ipcb_sem_value(s), 3);
        cr_assert_eq(stat_ok("gone").sem_value, 5);
        cr_assert_eq(ipcb_sem_close(n), 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
}

CHECKED_TEST(sem, persistent_and_transient_lifetimes) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ipcb_sem *s = create_ok(c, "transient", 4, 0, 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, "transient", &info), -ENOENT,
                     "a transient semaphore outlived its last handle");

        s = create_ok(c, "kept", 4, 0, IPCB_SEM_PERSISTENT);
        cr_assert_eq(ipcb_sem_acquire(s), 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        info = stat_ok("kept");
        cr_assert_eq(info.handles, 0);
        cr_assert_eq(info.sem_value, 3, "persistent count lost");
        cr_assert_eq(info.flags & IPCB_SHM_PERSISTENT, IPCB_SHM_PERSISTENT);
        s = open_ok(c, "kept", 0);
        cr_assert_eq(ipcb_sem_value(s), 3);
        cr_assert_eq(ipcb_sem_close(s), 0);
        cr_assert_eq(ipcb_sem_unlink(c, "kept"), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, "kept", &info), -ENOENT);
}

CHECKED_TEST(sem, separate_namespaces) {
        ipcb_shm *m;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        cr_assert_eq(ipcb_shm_create(c, "x", 4096, NULL, &m), 0);
        ipcb_sem *s = create_ok(c, "x", 1, 0, IPCB_SEM_PERSISTENT);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "x", &info), 0);
        cr_assert_eq(info.kind, IPCB_KIND_SHM);
        cr_assert_eq(info.size, 4096);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, "x", &info), 0);
        cr_assert_eq(info.kind, IPCB_KIND_SEM);
        cr_assert_eq(info.sem_value, 1);

        /* Unlinking the segment leaves the semaphore... */
        cr_assert_eq(ipcb_unlink(c, "x"), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "x", &info), -ENOENT);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, "x", &info), 0);
        ipcb_sem *s2 = open_ok(c, "x", 0);
        cr_assert_eq(ipcb_sem_close(s2), 0);
        cr_assert_eq(ipcb_shm_close(m), 0);

        /* ...and unlinking the semaphore leaves a segment. */
        cr_assert_eq(ipcb_shm_create(c, "x", 8192, NULL, &m), 0);
        cr_assert_eq(ipcb_sem_unlink(c, "x"), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, "x", &info), -ENOENT);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "x", &info), 0);
        cr_assert_eq(info.size, 8192);
        cr_assert_eq(ipcb_sem_unlink(c, "x"), -ENOENT);
        cr_assert_eq(ipcb_sem_value(s), 1, "handle of the unlinked semaphore");
        cr_assert_eq(ipcb_sem_close(s), 0);
        cr_assert_eq(ipcb_shm_close(m), 0);
}

typedef struct seen {
        int sems, shms;
        bool a, b;
        unsigned a_value, b_held;
} seen;

static int list_cb(const ipcb_object_info *info, void *userdata) {
        seen *s = userdata;
        if (info->kind == IPCB_KIND_SEM) {
                s->sems++;
                if (strcmp(info->name, "la") == 0) {
                        s->a = true;
                        s->a_value = info->sem_value;
                }
                if (strcmp(info->name, "lb") == 0) {
                        s->b = true;
                        s->b_held = info->sem_undo_held;
                }
        } else if (info->kind == IPCB_KIND_SHM)
                s->shms++;
        return 0;
}

CHECKED_TEST(sem, stat_and_list) {
        ipcb_sem *a = create_ok(c, "la", 7, 9, 0);
        ipcb_sem *b = create_ok(c, "lb", 5, 0, IPCB_SEM_UNDO);
        ipcb_shm *m;
        cr_assert_eq(ipcb_shm_create(c, "la", 4096, NULL, &m), 0);

        cr_assert_eq(ipcb_sem_acquire(b), 0);
        cr_assert_eq(ipcb_sem_acquire(b), 0);
        cr_assert_eq(ipcb_sem_held(b), 2);
        ipcb_object_info info = stat_ok("lb");
        cr_assert_eq(info.kind, IPCB_KIND_SEM);
        cr_assert_str_eq(info.name, "lb");
        cr_assert_eq(info.sem_value, 3);
        cr_assert_eq(info.sem_max, IPCB_SEM_VALUE_MAX);
        cr_assert_eq(info.sem_undo_held, 2);
        cr_assert_eq(info.handles, 1);
        cr_assert_eq(info.uid, getuid());
        cr_assert_eq(info.mode, 0600);
        info = stat_ok("la");
        cr_assert_eq(info.sem_value, 7);
        cr_assert_eq(info.sem_max, 9);
        cr_assert_eq(info.sem_undo_held, 0);

        seen sn = { 0 };
        cr_assert_eq(ipcb_list(c, IPCB_KIND_SEM, list_cb, &sn), 0);
        cr_assert_eq(sn.sems, 2);
        cr_assert_eq(sn.shms, 0, "kind filter");
        cr_assert(sn.a && sn.b);
        cr_assert_eq(sn.a_value, 7);
        cr_assert_eq(sn.b_held, 2);
        sn = (seen){ 0 };
        cr_assert_eq(ipcb_list(c, 0, list_cb, &sn), 0);
        cr_assert_eq(sn.sems, 2);
        cr_assert_eq(sn.shms, 1);

        cr_assert_eq(ipcb_sem_close(b), 0);
        cr_assert_eq(ipcb_sem_close(a), 0);
        cr_assert_eq(ipcb_shm_close(m), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        sn = (seen){ 0 };
        cr_assert_eq(ipcb_list(c, IPCB_KIND_SEM, list_cb, &sn), 0);
        cr_assert_eq(sn.sems, 0);
}

/* ---- undo handles ---- */

CHECKED_TEST(sem, undo_close_gives_back) {
        ipcb_sem *s = create_ok(c, "u", 2, 0, 0);
        ipcb_sem *u = open_ok(c, "u", IPCB_SEM_UNDO);

        cr_assert_eq(ipcb_sem_acquire(u), 0);
        cr_assert_eq(ipcb_sem_held(u), 1);
        cr_assert_eq(ipcb_sem_value(s), 1);
        cr_assert_eq(stat_ok("u").sem_undo_held, 1);
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_sem_value(s), 2, "the undo token did not come back on close");
        ipcb_object_info info = stat_ok("u");
        cr_assert_eq(info.sem_value, 2);
        cr_assert_eq(info.sem_undo_held, 0);
        cr_assert_eq(info.handles, 1);

        /* Through another connection, and the creator's own undo handle. */
        ipcb_client *c2;
        cr_assert_eq(ipcb_connect(d.sock, &c2), 0);
        ipcb_sem *cu = create_ok(c2, "u2", 3, 0, IPCB_SEM_UNDO);
        ipcb_sem *p = open_ok(c, "u2", 0);
        cr_assert_eq(ipcb_sem_try_acquire(cu, 0), 0);
        cr_assert_eq(ipcb_sem_try_acquire(cu, 0), 0);
        cr_assert_eq(ipcb_sem_held(cu), 2);
        cr_assert_eq(ipcb_sem_value(p), 1);
        cr_assert_eq(ipcb_sem_close(cu), 0);
        cr_assert_eq(ipcb_sync(c2), 0);
        cr_assert_eq(ipcb_sem_value(p), 3);
        /* Disconnecting with an undo handle open gives back too. */
        cu = open_ok(c2, "u2", IPCB_SEM_UNDO);
        cr_assert_eq(ipcb_sem_acquire(cu), 0);
        cr_assert_eq(ipcb_sem_value(p), 2);
        ipcb_disconnect(c2);
        wait_stat("u2", 3, 1, 0);
        cr_assert_eq(ipcb_sem_close(cu), 0, "close after disconnect");
        cr_assert_eq(ipcb_sem_value(p), 3, "tokens given back twice");
        cr_assert_eq(ipcb_sem_close(p), 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
}

CHECKED_TEST(sem, undo_tokens_come_back_on_sigkill) {
        ipcb_sem *s = create_ok(c, "k", 3, 0, 0);
        chan ch;
        chan_open(&ch);
        pid_t pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_sem *cs;
                if (ipcb_connect(d.sock, &cc) < 0 || ipcb_sem_open(cc, "k", IPCB_SEM_UNDO, &cs) < 0)
                        _exit(10);
                if (ipcb_sem_acquire(cs) != 0 || ipcb_sem_acquire(cs) != 0 || ipcb_sem_held(cs) != 2)
                        _exit(11);
                write_byte(ch.up[1]);
                for (;;)
                        pause();
        }
        cr_assert(read_byte(ch.up[0]), "child failed");
        cr_assert_eq(ipcb_sem_value(s), 1);
        cr_assert_eq(stat_ok("k").sem_undo_held, 2);
        kill_and_reap(pid);
        wait_stat("k", 3, 1, 0);
        cr_assert_eq(ipcb_sem_value(s), 3);
        cr_assert_eq(ipcb_sem_close(s), 0);
        chan_close(&ch);
}

/* The undo tokens of a process come back when it exits, even if a forked
 * child still holds its connection open. */
CHECKED_TEST(sem, undo_tokens_come_back_when_process_exits_with_socket_inherited) {
        ipcb_sem *s = create_ok(c, "inh", 2, 0, 0);
        chan ch;
        chan_open(&ch);
        pid_t pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_sem *cs;
                if (ipcb_connect(d.sock, &cc) < 0 || ipcb_sem_open(cc, "inh", IPCB_SEM_UNDO, &cs) < 0)
                        _exit(10);
                if (ipcb_sem_acquire(cs) != 0)
                        _exit(11);
                /* A grandchild keeps the connection's socket; only the
                 * parent may hold the pipe's write end. */
                close(ch.down[1]);
                pid_t g = fork();
                if (g < 0)
                        _exit(12);
                if (g == 0) {
                        prctl(PR_SET_PDEATHSIG, 0);
                        write_byte(ch.up[1]);
                        read_byte(ch.down[0]); /* until the parent says so */
                        _exit(0);
                }
                _exit(0);
        }
        cr_assert(read_byte(ch.up[0]), "child failed");
        cr_assert(child_ok(pid));
        wait_stat("inh", 2, 2, 0);
        cr_assert_eq(ipcb_sem_value(s), 2);
        close(ch.down[1]); /* the grandchild exits */
        ch.down[1] = -1;
        wait_stat("inh", 2, 1, 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
        chan_close(&ch);
}

CHECKED_TEST(sem, undo_release_gives_own_tokens_first) {
        ipcb_sem *s = create_ok(c, "own", 4, 10, 0);
        ipcb_sem *u = open_ok(c, "own", IPCB_SEM_UNDO);

        cr_assert_eq(ipcb_sem_acquire(u), 0);
        cr_assert_eq(ipcb_sem_acquire(u), 0);
        cr_assert_eq(ipcb_sem_held(u), 2);
        cr_assert_eq(ipcb_sem_value(s), 2);
        cr_assert_eq(ipcb_sem_release(u, 1), 0);
        cr_assert_eq(ipcb_sem_held(u), 1);
        cr_assert_eq(ipcb_sem_value(s), 3);
        /* 1 of its own and 2 plain. */
        cr_assert_eq(ipcb_sem_release(u, 3), 0);
        cr_assert_eq(ipcb_sem_held(u), 0);
        cr_assert_eq(ipcb_sem_value(s), 6);
        cr_assert_eq(ipcb_sem_release(u, 2), 0, "plain release through an undo handle");
        cr_assert_eq(ipcb_sem_held(u), 0);
        cr_assert_eq(ipcb_sem_value(s), 8);
        /* Closing gives nothing back now: it holds nothing. */
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_sem_value(s), 8);
        cr_assert_eq(stat_ok("own").sem_undo_held, 0);

        /* The plain excess is not taken back on close either. */
        u = open_ok(c, "own", IPCB_SEM_UNDO);
        cr_assert_eq(ipcb_sem_acquire(u), 0);
        cr_assert_eq(ipcb_sem_value(s), 7);
        cr_assert_eq(ipcb_sem_release(u, 3), 0);
        cr_assert_eq(ipcb_sem_value(s), 10);
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_sem_value(s), 10);
        cr_assert_eq(ipcb_sem_close(s), 0);
}

typedef struct busy_arg {
        ipcb_sem *u;
        atomic_int state; /* 1: about to call, 2: returned */
        int result;
} busy_arg;

static void *busy_thread(void *arg) {
        busy_arg *a = arg;
        atomic_store(&a->state, 1);
        a->result = ipcb_sem_acquire(a->u);
        atomic_store(&a->state, 2);
        return NULL;
}

CHECKED_TEST(sem, undo_handle_one_call_at_a_time) {
        ipcb_sem *s = create_ok(c, "busy", 0, 0, 0);
        ipcb_sem *u = open_ok(c, "busy", IPCB_SEM_UNDO);
        busy_arg a = { .u = u };
        pthread_t t;

        cr_assert_eq(pthread_create(&t, NULL, busy_thread, &a), 0);
        while (atomic_load(&a.state) == 0)
                sleep_ms(1);
        sleep_ms(100);
        cr_assert_eq(atomic_load(&a.state), 1, "acquire on an empty semaphore returned");
        cr_assert_eq(ipcb_sem_release(u, 1), -EBUSY);
        cr_assert_eq(ipcb_sem_try_acquire(u, 0), -EBUSY);
        cr_assert_eq(ipcb_sem_value(s), 0, "a refused call changed the count");
        /* A plain handle may be used meanwhile, and wakes the thread. */
        cr_assert_eq(ipcb_sem_release(s, 1), 0);
        cr_assert_eq(pthread_join(t, NULL), 0);
        cr_assert_eq(a.result, 0);
        cr_assert_eq(ipcb_sem_held(u), 1);
        cr_assert_eq(ipcb_sem_value(s), 0);
        cr_assert_eq(ipcb_sem_release(u, 1), 0, "the handle is free again");
        cr_assert_eq(ipcb_sem_held(u), 0);
        cr_assert_eq(ipcb_sem_value(s), 1);
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
}

typedef struct intruder_arg {
        ipcb_sem *u, *s;
        int release_r, acquire_r, value, wake_r;
} intruder_arg;

/* Waits until the opener is asleep in a call on u, then calls on u itself. */
static void *intruder_thread(void *arg) {
        intruder_arg *a = arg;
        sleep_ms(200);
        a->release_r = ipcb_sem_release(a->u, 1);
        a->acquire_r = ipcb_sem_try_acquire(a->u, 0);
        a->value = ipcb_sem_value(a->s);
        a->wake_r = ipcb_sem_release(a->s, 1);
        return NULL;
}

/* The opening thread claims its handle without a locked instruction (see
 * client/sem.c): a call of another thread must still see it inside. */
CHECKED_TEST(sem, undo_handle_opener_inside_is_seen) {
        ipcb_sem *s = create_ok(c, "busy2", 0, 0, 0);
        ipcb_sem *u = open_ok(c, "busy2", IPCB_SEM_UNDO);
        intruder_arg a = { .u = u, .s = s };
        pthread_t t;

        cr_assert_eq(pthread_create(&t, NULL, intruder_thread, &a), 0);
        cr_assert_eq(ipcb_sem_acquire(u), 0); /* asleep until the intruder's plain release */
        cr_assert_eq(pthread_join(t, NULL), 0);
        cr_assert_eq(a.release_r, -EBUSY, "release on a handle in use: %d", a.release_r);
        cr_assert_eq(a.acquire_r, -EBUSY, "try_acquire on a handle in use: %d", a.acquire_r);
        cr_assert_eq(a.value, 0, "a refused call changed the count");
        cr_assert_eq(a.wake_r, 0);
        cr_assert_eq(ipcb_sem_held(u), 1);
        cr_assert_eq(ipcb_sem_value(s), 0);
        /* Shared with another thread now: both may use it, one at a time. */
        cr_assert_eq(ipcb_sem_release(u, 1), 0);
        cr_assert_eq(ipcb_sem_held(u), 0);
        cr_assert_eq(ipcb_sem_value(s), 1);
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
}

CHECKED_TEST(sem, undo_handle_in_forked_child_is_echild) {
        ipcb_sem *s = create_ok(c, "fk", 3, 0, 0);
        ipcb_sem *u = open_ok(c, "fk", IPCB_SEM_UNDO);

        cr_assert_eq(ipcb_sem_acquire(u), 0);
        pid_t pid = test_fork();
        if (pid == 0) {
                if (ipcb_sem_acquire(u) != -ECHILD)
                        _exit(10);
                if (ipcb_sem_try_acquire(u, 0) != -ECHILD)
                        _exit(11);
                if (ipcb_sem_release(u, 1) != -ECHILD)
                        _exit(12);
                if (ipcb_sem_value(s) != 2)
                        _exit(13);
                /* The parent's plain handle's page is fine to use. */
                if (ipcb_sem_try_acquire(s, 0) != 0 || ipcb_sem_release(s, 1) != 0)
                        _exit(14);
                _exit(0);
        }
        cr_assert(child_ok(pid));
        cr_assert_eq(ipcb_sem_held(u), 1);
        cr_assert_eq(ipcb_sem_value(s), 2);
        cr_assert_eq(ipcb_sem_release(u, 1), 0, "the parent's handle still works");
        cr_assert_eq(ipcb_sem_value(s), 3);
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
}

CHECKED_TEST(sem, undo_slots_are_limited_and_reused) {
        static ipcb_sem *u[IPCB_SEM_UNDO_MAX];
        ipcb_sem *s = create_ok(c, "slots", 2, 0, 0);
        ipcb_sem *x = (ipcb_sem *)0x1;

        for (int i = 0; i < IPCB_SEM_UNDO_MAX; i++) {
                int r = ipcb_sem_open(c, "slots", IPCB_SEM_UNDO, &u[i]);
                if (r != 0)
                        cr_assert_fail("undo handle %d: %s", i, ipcb_strerror(r));
        }
        cr_assert_eq(ipcb_sem_open(c, "slots", IPCB_SEM_UNDO, &x), -EUSERS);
        cr_assert_eq(x, (ipcb_sem *)0x1);
        ipcb_sem *p = open_ok(c, "slots", 0); /* plain handles are not limited by slots */
        cr_assert_eq(ipcb_sem_close(p), 0);
        /* The first and the last slot both work and are independent. */
        cr_assert_eq(ipcb_sem_try_acquire(u[0], 0), 0);
        cr_assert_eq(ipcb_sem_try_acquire(u[IPCB_SEM_UNDO_MAX - 1], 0), 0);
        cr_assert_eq(ipcb_sem_held(u[0]), 1);
        cr_assert_eq(ipcb_sem_held(u[IPCB_SEM_UNDO_MAX - 1]), 1);
        cr_assert_eq(ipcb_sem_held(u[1]), 0);
        cr_assert_eq(stat_ok("slots").sem_undo_held, 2);
        /* Closing one frees its slot (and gives its token back). */
        cr_assert_eq(ipcb_sem_close(u[IPCB_SEM_UNDO_MAX - 1]), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_sem_value(s), 1);
        cr_assert_eq(ipcb_sem_open(c, "slots", IPCB_SEM_UNDO, &u[IPCB_SEM_UNDO_MAX - 1]), 0);
        cr_assert_eq(ipcb_sem_held(u[IPCB_SEM_UNDO_MAX - 1]), 0, "a reused slot starts empty");
        cr_assert_eq(ipcb_sem_try_acquire(u[IPCB_SEM_UNDO_MAX - 1], 0), 0);
        cr_assert_eq(ipcb_sem_try_acquire(u[5], 0), -EAGAIN);
        for (int i = 0; i < IPCB_SEM_UNDO_MAX; i++)
                cr_assert_eq(ipcb_sem_close(u[i]), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_sem_value(s), 2);
        cr_assert_eq(stat_ok("slots").sem_undo_held, 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
}

/* A waiter killed while blocked consumes nothing, and does not swallow the
 * wake-up meant for another waiter. */
static void killed_waiter_case(int undo) {
        ipcb_sem *s = create_ok(c, "kw", 0, 0, 0);
        chan ch[2];
        pid_t pid[2];

        for (int i = 0; i < 2; i++) {
                chan_open(&ch[i]);
                pid[i] = test_fork();
                if (pid[i] == 0) {
                        ipcb_client *cc;
                        ipcb_sem *cs;
                        if (ipcb_connect(d.sock, &cc) < 0 ||
                            ipcb_sem_open(cc, "kw", undo ? IPCB_SEM_UNDO : 0, &cs) < 0)
                                _exit(10);
                        write_byte(ch[i].up[1]);
                        if (ipcb_sem_acquire(cs) != 0)
                                _exit(11);
                        if (undo && ipcb_sem_held(cs) != 1)
                                _exit(12);
                        /* Hold the token: the parent checks the count. */
                        write_byte(ch[i].up[1]);
                        read_byte(ch[i].down[0]);
                        if (ipcb_sem_release(cs, 1) != 0)
                                _exit(13);
                        ipcb_sem_close(cs);
                        ipcb_disconnect(cc);
                        _exit(0);
                }
                cr_assert(read_byte(ch[i].up[0]), "child %d failed", i);
                cr_assert(wait_until(proc_sleeping, &pid[i], 5000), "child %d never slept", i);
        }
        sleep_ms(50);
        kill_and_reap(pid[0]);
        wait_stat("kw", 0, 2, 0);
        cr_assert_eq(ipcb_sem_value(s), 0);
        cr_assert_eq(ipcb_sem_release(s, 1), 0);
        /* The surviving waiter gets the token. */
        cr_assert(read_byte(ch[1].up[0]), "the other waiter did not wake (or failed)");
        cr_assert_eq(ipcb_sem_value(s), 0);
        write_byte(ch[1].down[1]);
        cr_assert(child_ok(pid[1]));
        cr_assert_eq(ipcb_sem_value(s), 1);

        /* Once more with a single waiter: killed, then a new acquirer. */
        cr_assert_eq(ipcb_sem_try_acquire(s, 0), 0);
        pid_t p = test_fork();
        if (p == 0) {
                ipcb_client *cc;
                ipcb_sem *cs;
                if (ipcb_connect(d.sock, &cc) < 0 ||
                    ipcb_sem_open(cc, "kw", undo ? IPCB_SEM_UNDO : 0, &cs) < 0)
                        _exit(10);
                write_byte(ch[0].up[1]);
                ipcb_sem_acquire(cs);
                _exit(20);
        }
        cr_assert(read_byte(ch[0].up[0]));
        cr_assert(wait_until(proc_sleeping, &p, 5000));
        sleep_ms(50);
        kill_and_reap(p);
        wait_stat("kw", 0, 1, 0);
        cr_assert_eq(ipcb_sem_release(s, 1), 0);
        cr_assert_eq(ipcb_sem_value(s), 1, "the killed waiter consumed a token");
        ipcb_sem *n = open_ok(c, "kw", IPCB_SEM_UNDO);
        cr_assert_eq(ipcb_sem_try_acquire(n, 0), 0, "a new acquirer does not get the token");
        cr_assert_eq(ipcb_sem_held(n), 1);
        cr_assert_eq(ipcb_sem_close(n), 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
        for (int i = 0; i < 2; i++)
                chan_close(&ch[i]);
        ipcb_sync(c);
}

CHECKED_TEST(sem, killed_plain_waiter_consumes_nothing) {
        killed_waiter_case(0);
}

CHECKED_TEST(sem, killed_undo_waiter_consumes_nothing) {
        killed_waiter_case(1);
}

/* Find this process's mapping of a broker page with the given magic. */
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

/* A releaser killed between its CAS on the count and its FUTEX_WAKE: the
 * token is on the count, and the sleeper must not be stranded (the broker
 * sees the handle go away and can wake).  Played by a child that makes the
 * library's plain-release CAS itself and then dies before waking. */
CHECKED_TEST(sem, releaser_killed_before_wake_does_not_strand_waiter) {
        ipcb_sem *s = create_ok(c, "rk", 0, 0, 0);
        chan ch;
        chan_open(&ch);
        pid_t pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_sem *cs;
                if (ipcb_connect(d.sock, &cc) < 0 || ipcb_sem_open(cc, "rk", 0, &cs) < 0)
                        _exit(10);
                ipcb_sem_page *pg = find_page(IPCB_SEM_MAGIC);
                if (!pg)
                        _exit(11);
                write_byte(ch.up[1]);
                read_byte(ch.down[0]);
                sleep_ms(200); /* the parent is asleep by now */
                atomic_fetch_add(&pg->word, 1); /* plain_give's CAS: count + 1 */
                raise(SIGKILL);                 /* ...and die before sem_wake */
                _exit(12);
        }
        cr_assert(read_byte(ch.up[0]), "child failed");
        write_byte(ch.down[1]);
        long long t0 = now_ms();
        int r = ipcb_sem_try_acquire(s, 3000);
        long long dt = now_ms() - t0;
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFSIGNALED(st), "child status 0x%x", st);
        cr_assert_eq(r, 0, "the waiter stayed asleep with a token on the count: %s after %lld ms",
                     ipcb_strerror(r), dt);
        cr_assert_lt(dt, 1500, "the waiter woke only after %lld ms", dt);
        cr_assert_eq(ipcb_sem_close(s), 0);
        chan_close(&ch);
}

CHECKED_TEST(sem, no_sysv_undo_cap) {
        enum { PAIRS = 100000, HOLD = 40000 };
        ipcb_sem *s = create_ok(c, "cap", 5, 0, 0);
        ipcb_sem *u = open_ok(c, "cap", IPCB_SEM_UNDO);

        for (int i = 0; i < PAIRS; i++) {
                int a = ipcb_sem_acquire(u), b = ipcb_sem_release(u, 1);
                if (a != 0 || b != 0)
                        cr_assert_fail("pair %d: acquire %d, release %d", i, a, b);
        }
        cr_assert_eq(ipcb_sem_held(u), 0);
        cr_assert_eq(ipcb_sem_value(s), 5);
        cr_assert_eq(stat_ok("cap").sem_value, 5);
        /* More held by one undo handle than System V's short adjustment allows. */
        cr_assert_eq(ipcb_sem_release(s, HOLD), 0);
        for (int i = 0; i < HOLD; i++)
                if (ipcb_sem_try_acquire(u, 0) != 0)
                        cr_assert_fail("undo acquire %d failed", i);
        cr_assert_eq(ipcb_sem_held(u), HOLD);
        cr_assert_eq(ipcb_sem_value(s), 5);
        cr_assert_eq(stat_ok("cap").sem_undo_held, HOLD);
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_sem_value(s), HOLD + 5, "undo of %d tokens not exact", HOLD);
        cr_assert_eq(ipcb_sem_close(s), 0);
}

/* ---- many processes ---- */

CHECKED_TEST(sem, many_processes_rounds) {
        static const int ns[] = { 1, 3, 10 };
        enum { INITIAL = 2, ROUNDS = 5 };
        ipcb_sem *s = create_ok(c, "many", INITIAL, 0, 0);
        atomic_int *shared = shared_page(); /* [0]: inside now, [1]: most inside at once */

        for (int k = 0; k < 3; k++) {
                for (int round = 0; round < ROUNDS; round++) {
                        pid_t pids[10];
                        for (int i = 0; i < ns[k]; i++) {
                                pids[i] = test_fork();
                                if (pids[i] == 0) {
                                        ipcb_client *cc;
                                        ipcb_sem *cs;
                                        if (ipcb_connect(d.sock, &cc) < 0 ||
                                            ipcb_sem_open(cc, "many", IPCB_SEM_UNDO, &cs) < 0)
                                                _exit(10);
                                        if (ipcb_sem_acquire(cs) != 0 || ipcb_sem_held(cs) != 1)
                                                _exit(11);
                                        int in = atomic_fetch_add(&shared[0], 1) + 1;
                                        int mx = atomic_load(&shared[1]);
                                        while (in > mx && !atomic_compare_exchange_weak(&shared[1], &mx, in))
                                                ;
                                        sleep_ms(1);
                                        atomic_fetch_sub(&shared[0], 1);
                                        if (ipcb_sem_release(cs, 1) != 0 || ipcb_sem_held(cs) != 0)
                                                _exit(12);
                                        if (ipcb_sem_close(cs) != 0)
                                                _exit(13);
                                        ipcb_disconnect(cc);
                                        _exit(0);
                                }
                        }
                        for (int i = 0; i < ns[k]; i++)
                                cr_assert(child_ok(pids[i]), "N=%d round %d child %d", ns[k], round, i);
                        cr_assert_eq(ipcb_sem_value(s), INITIAL, "N=%d round %d", ns[k], round);
                }
                wait_stat("many", INITIAL, 1, 0);
        }
        cr_assert_leq(atomic_load(&shared[1]), INITIAL, "more holders at once than tokens");
        cr_assert_eq(atomic_load(&shared[0]), 0);
        munmap(shared, 4096);
        cr_assert_eq(ipcb_sem_close(s), 0);
}

/* ---- a bounded buffer across processes ---- */

enum { RING = 4096, TOTAL = 300006, PCHUNK = 3, CCHUNK = 7 };

static uint8_t pattern_byte(uint32_t i) {
        return (uint8_t)((i * 2654435761u) >> 24 ^ (i >> 13));
}

static int producer(void) {
        ipcb_client *cc;
        ipcb_sem *fr, *us;
        ipcb_shm *m;
        uint8_t *ring;

        if (ipcb_connect(d.sock, &cc) < 0 || ipcb_sem_open(cc, "free", 0, &fr) < 0 ||
            ipcb_sem_open(cc, "used", 0, &us) < 0 || ipcb_shm_open(cc, "ring", IPCB_READ_WRITE, &m) < 0)
                return 10;
        ring = ipcb_shm_data(m);
        for (uint32_t pos = 0; pos < TOTAL; pos += PCHUNK) {
                for (int k = 0; k < PCHUNK; k++)
                        if (ipcb_sem_acquire(fr) != 0)
                                return 11;
                for (uint32_t k = 0; k < PCHUNK; k++)
                        ring[(pos + k) % RING] = pattern_byte(pos + k);
                if (ipcb_sem_release(us, PCHUNK) != 0)
                        return 12;
        }
        ipcb_shm_close(m);
        ipcb_sem_close(us);
        ipcb_sem_close(fr);
        ipcb_disconnect(cc);
        return 0;
}

static int consumer(void) {
        ipcb_client *cc;
        ipcb_sem *fr, *us;
        ipcb_shm *m;
        const uint8_t *ring;

        if (ipcb_connect(d.sock, &cc) < 0 || ipcb_sem_open(cc, "free", 0, &fr) < 0 ||
            ipcb_sem_open(cc, "used", 0, &us) < 0 || ipcb_shm_open(cc, "ring", IPCB_READ_ONLY, &m) < 0)
                return 20;
        ring = ipcb_shm_data(m);
        for (uint32_t pos = 0; pos < TOTAL; pos += CCHUNK) {
                for (int k = 0; k < CCHUNK; k++)
                        if (ipcb_sem_acquire(us) != 0)
                                return 21;
                for (uint32_t k = 0; k < CCHUNK; k++)
                        if (ring[(pos + k) % RING] != pattern_byte(pos + k)) {
                                fprintf(stderr, "byte %u: got 0x%02x, want 0x%02x\n", pos + k,
                                        ring[(pos + k) % RING], pattern_byte(pos + k));
                                return 22;
                        }
                if (ipcb_sem_release(fr, CCHUNK) != 0)
                        return 23;
        }
        ipcb_shm_close(m);
        ipcb_sem_close(us);
        ipcb_sem_close(fr);
        ipcb_disconnect(cc);
        return 0;
}

CHECKED_TEST(sem, bounded_buffer, .timeout = 60) {
        _Static_assert(TOTAL % PCHUNK == 0 && TOTAL % CCHUNK == 0, "whole chunks");
        ipcb_sem *fr = create_ok(c, "free", RING, RING, 0);
        ipcb_sem *us = create_ok(c, "used", 0, RING, 0);
        ipcb_shm *m;
        cr_assert_eq(ipcb_shm_create(c, "ring", RING, NULL, &m), 0);

        long long t0 = now_ms();
        pid_t p = test_fork();
        if (p == 0)
                _exit(producer());
        pid_t q = test_fork();
        if (q == 0)
                _exit(consumer());
        cr_assert(child_ok(q), "consumer");
        cr_assert(child_ok(p), "producer");
        fprintf(stderr, "bounded buffer: %d bytes in %lld ms\n", TOTAL, now_ms() - t0);
        cr_assert_eq(ipcb_sem_value(fr), RING);
        cr_assert_eq(ipcb_sem_value(us), 0);
        cr_assert_eq(ipcb_shm_close(m), 0);
        cr_assert_eq(ipcb_sem_close(us), 0);
        cr_assert_eq(ipcb_sem_close(fr), 0);
}

/* ---- fds ---- */

CHECKED_TEST(sem, no_fd_leak) {
        int self0 = self_fd_count(), daemon_after_first = -1;

        for (int round = 0; round < 50; round++) {
                ipcb_sem *a = create_ok(c, "fd", 1, 0, round % 2 ? IPCB_SEM_UNDO : 0);
                ipcb_sem *b = open_ok(c, "fd", IPCB_SEM_UNDO);
                ipcb_sem *p = open_ok(c, "fd", 0);
                cr_assert_eq(ipcb_sem_acquire(b), 0);
                cr_assert_eq(ipcb_sem_close(b), 0);
                cr_assert_eq(ipcb_sem_close(p), 0);
                cr_assert_eq(ipcb_sem_close(a), 0);
                cr_assert_eq(ipcb_sync(c), 0);
                cr_assert_eq(self_fd_count(), self0, "round %d: our fd count changed", round);
                if (round == 0) {
                        daemon_after_first = ipcbd_fd_count(&d);
                        continue;
                }
                cr_assert(ipcbd_wait_fds(&d, daemon_after_first, 2000), "round %d: daemon fds grow", round);
        }
        /* Failed opens and creates leave nothing behind either. */
        ipcb_sem *x;
        for (int i = 0; i < 20; i++) {
                cr_assert_eq(ipcb_sem_open(c, "fd", 0, &x), -ENOENT);
                cr_assert_eq(ipcb_sem_create(c, "", 0, NULL, &x), -EINVAL);
        }
        cr_assert_eq(self_fd_count(), self0);
        cr_assert(ipcbd_wait_fds(&d, daemon_after_first, 2000));
}
