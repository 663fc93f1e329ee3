/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_client_faults.c: the client library when things go wrong on its side
 * of the socket, against a real ipcbrokerd: the process runs out of fds
 * (the reply's fd is dropped: only that request fails), the broker does not
 * answer (stopped with SIGSTOP: requests, ipcb_connect and a full listen
 * backlog time out, late replies are disposed of), and many threads on one
 * undo handle (exactly one call at a time gets in).  Every test ends with
 * the daemon at its idle fd count and the test process at its own. */
#include "harness.h"

#include "ipcbroker.h"

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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static ipcbd d;
static ipcb_client *c;

static void setup(void) {
        signal(SIGPIPE, SIG_IGN);
        unsetenv("IPCBROKER_TIMEOUT_MS");
        fixture_begin(&d, NULL);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
}

/* What every test holds until its end: the client. */
static void release(void) {
        ipcb_disconnect(c);
        c = NULL;
}

/* After a test that failed or skipped before fixture_end: a stopped daemon
 * would not see SIGTERM. */
static void teardown(void) {
        if (d.pid > 0)
                kill(d.pid, SIGCONT);
        release();
        fixture_cleanup(&d);
}

/* fixture_end (harness.h) after every body: both fd counts back, clean exit. */
#define CHECKED_TEST(suite, name, ...) FIXTURE_TEST(suite, name, &d, release, ##__VA_ARGS__)

TestSuite(faults, .init = setup, .fini = teardown, .timeout = 30);

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

/* The state letter of /proc/PID/stat ('T' once stopped). */
static char proc_state(pid_t pid) {
        char path[64], buf[512];
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return '?';
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return '?';
        buf[n] = '\0';
        char *p = strrchr(buf, ')'); /* the name may hold spaces */
        return p && p[1] == ' ' ? p[2] : '?';
}

static bool daemon_is_stopped(void *arg) {
        (void)arg;
        return proc_state(d.pid) == 'T';
}

/* SIGSTOP the daemon and wait until it is stopped: it answers nothing, but
 * the kernel still queues our datagrams and connections. */
static void daemon_freeze(void) {
        cr_assert_eq(kill(d.pid, SIGSTOP), 0);
        cr_assert(wait_until(daemon_is_stopped, NULL, 5000), "daemon did not stop");
}

static void daemon_thaw(void) {
        cr_assert_eq(kill(d.pid, SIGCONT), 0);
}

/* Use up every fd of the process: the soft RLIMIT_NOFILE is lowered to at
 * most 256, then filled with duplicates of /dev/null.  fd_exhaust_undo()
 * closes them and restores the limit.  No assertion may run in between
 * (reporting one may need an fd). */
static int hog[1024];
static unsigned nhog;
static struct rlimit saved_nofile;

static void fd_exhaust(void) {
        struct rlimit rl;
        int null;

        cr_assert_eq(getrlimit(RLIMIT_NOFILE, &saved_nofile), 0);
        rl = saved_nofile;
        if (rl.rlim_cur > 256)
                rl.rlim_cur = 256;
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
        null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        cr_assert_geq(null, 0);
        nhog = 0;
        hog[nhog++] = null;
        for (;;) {
                int fd = fcntl(null, F_DUPFD_CLOEXEC, 3);
                if (fd < 0)
                        break;
                hog[nhog++] = fd;
                if (nhog == sizeof(hog) / sizeof(hog[0]))
                        break;
        }
        /* Not an assertion: see above.  Checked by the caller afterwards. */
}

static void fd_exhaust_undo(void) {
        while (nhog > 0)
                close(hog[--nhog]);
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &saved_nofile), 0);
}

static unsigned handles_of(int kind, const char *name) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        int r = ipcb_stat(c, kind, name, &info);
        cr_assert_eq(r, 0, "stat %s: %s", name, ipcb_strerror(r));
        return info.handles;
}

static void fill(void *p, size_t n, unsigned seed) {
        uint8_t *b = p;
        for (size_t i = 0; i < n; i++)
                b[i] = (uint8_t)(i * 31u + seed);
}

static bool check(const void *p, size_t n, unsigned seed) {
        const uint8_t *b = p;
        for (size_t i = 0; i < n; i++)
                if (b[i] != (uint8_t)(i * 31u + seed))
                        return false;
        return true;
}

/* ---- out of fds ---- */

/* The reply's fd cannot be installed (MSG_CTRUNC): that request fails with
 * -EMFILE, its handle is released, and the connection with every other
 * handle stays: transient segment A, created on this connection, lives on. */
CHECKED_TEST(faults, emfile_shm) {
        ipcb_shm *a = NULL, *b = NULL, *x = NULL, *y = NULL;
        ipcb_client *c2 = NULL;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        int r_open, r_create, r_lock, r_memfd, memfd = -1, r;
        int ok;

        r = ipcb_shm_create(c, "faults.a", 8192, NULL, &a);
        cr_assert_eq(r, 0, "create: %s", ipcb_strerror(r));
        fill(ipcb_shm_data(a), 8192, 7);

        fd_exhaust();
        ok = fcntl(0, F_DUPFD_CLOEXEC, 3) < 0 && errno == EMFILE;
        r_open = ipcb_shm_open(c, "faults.a", IPCB_READ_ONLY, &x);
        r_create = ipcb_shm_create(c, "faults.b", 4096, NULL, &y);
        r_lock = ipcb_shm_lock(a);
        r_memfd = ipcb_memfd_sealed(c, 4096, 0, &memfd, NULL);
        fd_exhaust_undo();

        cr_assert(ok, "the fd table was not full");
        cr_assert_eq(r_open, -EMFILE, "open: %s", ipcb_strerror(r_open));
        cr_assert_eq(r_create, -EMFILE, "create: %s", ipcb_strerror(r_create));
        cr_assert_eq(r_lock, -EMFILE, "lock: %s", ipcb_strerror(r_lock));
        cr_assert_eq(r_memfd, -EMFILE, "memfd: %s", ipcb_strerror(r_memfd));
        cr_assert_null(x);
        cr_assert_null(y);

        /* The same connection: A has one handle (ours), B was destroyed
         * with the handle the failed create got. */
        cr_assert_eq(handles_of(IPCB_KIND_SHM, "faults.a"), 1);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "faults.b", &info), -ENOENT);
        /* Another connection sees A, bytes intact. */
        cr_assert_eq(ipcb_connect(d.sock, &c2), 0);
        cr_assert_eq(ipcb_shm_open(c2, "faults.a", IPCB_READ_ONLY, &x), 0);
        cr_assert(check(ipcb_shm_data(x), 8192, 7));
        cr_assert_eq(ipcb_shm_close(x), 0);
        ipcb_disconnect(c2);
        /* And ours still works: the lock page is fetched again, B made. */
        cr_assert_eq(ipcb_shm_lock(a), 0);
        cr_assert_eq(ipcb_shm_unlock(a), 0);
        r = ipcb_shm_create(c, "faults.b", 4096, NULL, &b);
        cr_assert_eq(r, 0, "create b: %s", ipcb_strerror(r));
        cr_assert_eq(ipcb_shm_open(c, "faults.b", IPCB_READ_WRITE, &y), 0);
        cr_assert_eq(handles_of(IPCB_KIND_SHM, "faults.b"), 2);
        cr_assert_eq(ipcb_shm_close(y), 0);
        cr_assert_eq(ipcb_shm_close(b), 0);
        cr_assert_eq(ipcb_shm_close(a), 0);
        cr_assert_eq(ipcb_sync(c), 0);
}

CHECKED_TEST(faults, emfile_sem) {
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
        ipcb_sem *s = NULL, *u = NULL, *p = NULL, *t = NULL;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        int r_plain, r_undo, r_create, r;
        int ok;

        o.max = 10;
        r = ipcb_sem_create(c, "faults.s", 3, &o, &s);
        cr_assert_eq(r, 0, "create: %s", ipcb_strerror(r));

        fd_exhaust();
        ok = fcntl(0, F_DUPFD_CLOEXEC, 3) < 0 && errno == EMFILE;
        r_plain = ipcb_sem_open(c, "faults.s", 0, &p);
        r_undo = ipcb_sem_open(c, "faults.s", IPCB_SEM_UNDO, &u);
        r_create = ipcb_sem_create(c, "faults.t", 1, &o, &t);
        /* The page needs no fd: the handle we have works on. */
        int r_acq = ipcb_sem_try_acquire(s, 0);
        fd_exhaust_undo();

        cr_assert(ok, "the fd table was not full");
        cr_assert_eq(r_plain, -EMFILE, "open: %s", ipcb_strerror(r_plain));
        cr_assert_eq(r_undo, -EMFILE, "open undo: %s", ipcb_strerror(r_undo));
        cr_assert_eq(r_create, -EMFILE, "create: %s", ipcb_strerror(r_create));
        cr_assert_eq(r_acq, 0);
        cr_assert_eq(ipcb_sem_release(s, 1), 0);

        /* The failed opens' handles (and the undo slot) were released. */
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, "faults.s", &info), 0);
        cr_assert_eq(info.handles, 1);
        cr_assert_eq(info.sem_undo_held, 0);
        cr_assert_eq(info.sem_value, 3);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, "faults.t", &info), -ENOENT);

        r = ipcb_sem_open(c, "faults.s", IPCB_SEM_UNDO, &u);
        cr_assert_eq(r, 0, "open undo: %s", ipcb_strerror(r));
        cr_assert_eq(ipcb_sem_try_acquire(u, 0), 0);
        cr_assert_eq(ipcb_sem_value(s), 2);
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_sem_value(s), 3, "the undo handle's token came back");
        cr_assert_eq(handles_of(IPCB_KIND_SEM, "faults.s"), 1);
        cr_assert_eq(ipcb_sem_close(s), 0);
        cr_assert_eq(ipcb_sync(c), 0);
}

/* ---- timeouts ---- */

/* The broker stops answering: requests time out, the connection stays, and
 * the late replies are disposed of by the next request (their handles
 * released: a transient segment created by a timed-out request is gone). */
CHECKED_TEST(faults, timeout_request) {
        ipcb_shm *held = NULL, *x = NULL;
        ipcb_client *c2 = NULL;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        long long t0, t_open, t_create;
        int r_open, r_create, r;

        cr_assert_eq(ipcb_connect(d.sock, &c2), 0);
        cr_assert_eq(ipcb_shm_create(c2, "faults.seg", 4096, NULL, &held), 0);
        fill(ipcb_shm_data(held), 4096, 3);
        cr_assert_eq(ipcb_set_timeout(c, 1000), 0);
        cr_assert_eq(ipcb_set_timeout(NULL, 1000), -EINVAL);

        daemon_freeze();
        t0 = now_ms();
        r_open = ipcb_shm_open(c, "faults.seg", IPCB_READ_WRITE, &x);
        t_open = now_ms() - t0;
        t0 = now_ms();
        r_create = ipcb_shm_create(c, "faults.tmp", 4096, NULL, &x);
        t_create = now_ms() - t0;
        daemon_thaw();

        fprintf(stderr, "[timeout] request, timeout 1000 ms: open returned after %lld ms, "
                        "create after %lld ms\n", t_open, t_create);
        cr_assert_eq(r_open, -ETIMEDOUT, "open: %s", ipcb_strerror(r_open));
        cr_assert_eq(r_create, -ETIMEDOUT, "create: %s", ipcb_strerror(r_create));
        cr_assert(t_open >= 900 && t_open <= 1600, "open took %lld ms", t_open);
        cr_assert(t_create >= 900 && t_create <= 1600, "create took %lld ms", t_create);
        cr_assert_null(x);

        /* Same client: the late open and create replies are disposed of. */
        r = ipcb_shm_open(c, "faults.seg", IPCB_READ_WRITE, &x);
        cr_assert_eq(r, 0, "open after the timeout: %s", ipcb_strerror(r));
        cr_assert(check(ipcb_shm_data(x), 4096, 3));
        cr_assert_eq(handles_of(IPCB_KIND_SHM, "faults.seg"), 2, "the late handle was not released");
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "faults.tmp", &info), -ENOENT);
        cr_assert_eq(ipcb_shm_close(x), 0);
        cr_assert_eq(ipcb_shm_close(held), 0);
        ipcb_disconnect(c2);
        cr_assert_eq(ipcb_sync(c), 0);
}

/* ipcb_connect to a stopped broker: the kernel queues the connection in
 * the listen backlog, the HELLO gets no answer. */
CHECKED_TEST(faults, timeout_connect_hello) {
        ipcb_client *c3 = NULL;
        long long t0, t;
        int r;

        cr_assert_eq(setenv("IPCBROKER_TIMEOUT_MS", "500", 1), 0);
        daemon_freeze();
        t0 = now_ms();
        r = ipcb_connect(d.sock, &c3);
        t = now_ms() - t0;
        daemon_thaw();
        unsetenv("IPCBROKER_TIMEOUT_MS");

        fprintf(stderr, "[timeout] connect to a stopped broker, timeout 500 ms: %lld ms\n", t);
        cr_assert_eq(r, -ETIMEDOUT, "connect: %s", ipcb_strerror(r));
        cr_assert_null(c3);
        cr_assert(t >= 450 && t <= 1100, "connect took %lld ms", t);
        /* Invalid values are ignored (the default applies). */
        cr_assert_eq(setenv("IPCBROKER_TIMEOUT_MS", "12ms", 1), 0);
        cr_assert_eq(ipcb_connect(d.sock, &c3), 0);
        unsetenv("IPCBROKER_TIMEOUT_MS");
        cr_assert_eq(ipcb_sync(c3), 0);
        ipcb_disconnect(c3);
}

/* A listener that never accepts, its backlog full: connect(2) itself would
 * block forever. */
CHECKED_TEST(faults, timeout_connect_backlog) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        ipcb_client *c3 = NULL;
        int lfd, queued[16], nq = 0, r;
        long long t0, t;

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/full.sock", d.dir);
        lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        cr_assert_geq(lfd, 0);
        cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        cr_assert_eq(listen(lfd, 0), 0);
        for (; nq < 16; nq++) {
                int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                cr_assert_geq(fd, 0);
                if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                        cr_assert_eq(errno, EAGAIN, "connect: %s", strerror(errno));
                        close(fd);
                        break;
                }
                queued[nq] = fd;
        }
        cr_assert(nq > 0 && nq < 16, "backlog did not fill (%d queued)", nq);

        cr_assert_eq(setenv("IPCBROKER_TIMEOUT_MS", "500", 1), 0);
        t0 = now_ms();
        r = ipcb_connect(sa.sun_path, &c3);
        t = now_ms() - t0;
        unsetenv("IPCBROKER_TIMEOUT_MS");

        fprintf(stderr, "[timeout] connect to a full backlog, timeout 500 ms: %lld ms\n", t);
        cr_assert_eq(r, -ETIMEDOUT, "connect: %s", ipcb_strerror(r));
        cr_assert(t >= 450 && t <= 1100, "connect took %lld ms", t);
        while (nq > 0)
                close(queued[--nq]);
        close(lfd);
        unlink(sa.sun_path);
}

typedef struct timed_call {
        ipcb_client *c;
        int r;
        long long ms;
} timed_call;

static void *open_thread(void *arg) {
        timed_call *tc = arg;
        ipcb_shm *x = NULL;
        long long t0 = now_ms();

        tc->r = ipcb_shm_open(tc->c, "faults.x", IPCB_READ_ONLY, &x);
        tc->ms = now_ms() - t0;
        if (tc->r == 0)
                ipcb_shm_close(x);
        return NULL;
}

/* Two threads on one client: one request stuck at a stopped broker holds
 * the client's lock; the other's wait for that lock counts against its own
 * timeout. */
CHECKED_TEST(faults, timeout_lock_wait) {
        timed_call a = { .c = c };
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ipcb_shm *x = NULL;
        pthread_t th;
        long long t0, t;
        int r;

        cr_assert_eq(ipcb_shm_create(c, "faults.x", 4096, NULL, &x), 0);
        cr_assert_eq(ipcb_set_timeout(c, 1000), 0);
        daemon_freeze();
        cr_assert_eq(pthread_create(&th, NULL, open_thread, &a), 0);
        sleep_ms(200); /* a is waiting for its reply, holding the lock */
        t0 = now_ms();
        r = ipcb_stat(c, IPCB_KIND_SHM, "faults.x", &info);
        t = now_ms() - t0;
        pthread_join(th, NULL);
        daemon_thaw();

        fprintf(stderr, "[timeout] two threads, timeout 1000 ms: the stuck request %lld ms, "
                        "the one behind it %lld ms\n", a.ms, t);
        cr_assert_eq(a.r, -ETIMEDOUT, "open: %s", ipcb_strerror(a.r));
        cr_assert_eq(r, -ETIMEDOUT, "stat: %s", ipcb_strerror(r));
        cr_assert(a.ms >= 900 && a.ms <= 1600, "the stuck request took %lld ms", a.ms);
        cr_assert(t >= 900 && t <= 1600, "the request behind it took %lld ms", t);

        /* Back to normal: no handle left over from the late open.  The
         * sync's wait disposes of the late replies (releasing the open's
         * handle, after the sync itself); the stat sees the release. */
        cr_assert_eq(ipcb_set_timeout(c, 0), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(handles_of(IPCB_KIND_SHM, "faults.x"), 1);
        cr_assert_eq(ipcb_shm_close(x), 0);
        cr_assert_eq(ipcb_sync(c), 0);
}

/* ---- one undo handle, many threads ---- */

#define HAMMER_THREADS 4
#define HAMMER_TRIES 15000

typedef struct hammer {
        ipcb_sem *u;
        pthread_barrier_t *start;
        bool release; /* phase: give back `mine` tokens, else take tokens */
        unsigned tries; /* acquires per phase (0: HAMMER_TRIES) */
        unsigned mine, busy, other;
        int other_r;
} hammer;

static void *hammer_thread(void *arg) {
        hammer *h = arg;

        pthread_barrier_wait(h->start);
        if (!h->release) {
                for (unsigned i = 0; i < (h->tries ? h->tries : HAMMER_TRIES); i++) {
                        int r = ipcb_sem_try_acquire(h->u, 0);
                        if (r == 0)
                                h->mine++;
                        else if (r == -EBUSY)
                                h->busy++;
                        else {
                                h->other++;
                                h->other_r = r;
                        }
                }
        } else {
                while (h->mine > 0) {
                        int r = ipcb_sem_release(h->u, 1);
                        if (r == 0)
                                h->mine--;
                        else if (r == -EBUSY)
                                h->busy++;
                        else {
                                h->other++;
                                h->other_r = r;
                                break;
                        }
                }
        }
        return NULL;
}

static void hammer_run(hammer *hs, bool release) {
        pthread_barrier_t start;
        pthread_t th[HAMMER_THREADS];

        pthread_barrier_init(&start, NULL, HAMMER_THREADS);
        for (int i = 0; i < HAMMER_THREADS; i++) {
                hs[i].start = &start;
                hs[i].release = release;
                hs[i].busy = 0;
                cr_assert_eq(pthread_create(&th[i], NULL, hammer_thread, &hs[i]), 0);
        }
        for (int i = 0; i < HAMMER_THREADS; i++)
                pthread_join(th[i], NULL);
        pthread_barrier_destroy(&start);
}

/* The same, with the opening thread (hs[0], the handle's owner, which
 * claims it without a locked instruction) racing the others. */
static void hammer_run_with_owner(hammer *hs, bool release) {
        pthread_barrier_t start;
        pthread_t th[HAMMER_THREADS];

        pthread_barrier_init(&start, NULL, HAMMER_THREADS);
        for (int i = 0; i < HAMMER_THREADS; i++) {
                hs[i].start = &start;
                hs[i].release = release;
                hs[i].busy = 0;
                if (i > 0)
                        cr_assert_eq(pthread_create(&th[i], NULL, hammer_thread, &hs[i]), 0);
        }
        hammer_thread(&hs[0]);
        for (int i = 1; i < HAMMER_THREADS; i++)
                pthread_join(th[i], NULL);
        pthread_barrier_destroy(&start);
}

/* Every call that gets in has the handle to itself, so the tokens the
 * handle holds are exactly the acquires that succeeded: two calls inside
 * at once would announce the same `held + 1` on its one slot. */
CHECKED_TEST(faults, undo_one_call_at_a_time) {
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
        hammer hs[HAMMER_THREADS];
        ipcb_sem *plain = NULL, *u = NULL;
        unsigned taken = 0, busy = 0, busy_rel = 0;

        o.max = IPCB_SEM_VALUE_MAX;
        cr_assert_eq(ipcb_sem_create(c, "faults.u", IPCB_SEM_VALUE_MAX, &o, &plain), 0);
        cr_assert_eq(ipcb_sem_open(c, "faults.u", IPCB_SEM_UNDO, &u), 0);
        memset(hs, 0, sizeof(hs));
        for (int i = 0; i < HAMMER_THREADS; i++)
                hs[i].u = u;

        /* Rounds of acquires then releases until two calls met at least
         * once (on a loaded machine threads may run one after the other). */
        for (int round = 0; round < 50 && busy + busy_rel == 0; round++) {
                hammer_run(hs, false);
                taken = 0;
                for (int i = 0; i < HAMMER_THREADS; i++) {
                        cr_assert_eq(hs[i].other, 0, "acquire: %s", ipcb_strerror(hs[i].other_r));
                        taken += hs[i].mine;
                        busy += hs[i].busy;
                }
                cr_assert_eq(ipcb_sem_held(u), (int)taken, "held %d, taken %u", ipcb_sem_held(u), taken);
                cr_assert_eq(ipcb_sem_value(plain), (int)(IPCB_SEM_VALUE_MAX - taken));
                hammer_run(hs, true);
                for (int i = 0; i < HAMMER_THREADS; i++) {
                        cr_assert_eq(hs[i].other, 0, "release: %s", ipcb_strerror(hs[i].other_r));
                        busy_rel += hs[i].busy;
                }
                cr_assert_eq(ipcb_sem_held(u), 0);
                cr_assert_eq(ipcb_sem_value(plain), IPCB_SEM_VALUE_MAX);
                fprintf(stderr, "[undo] round %d: %d threads x %d try_acquire: %u taken, %u -EBUSY; "
                                "releases: %u -EBUSY\n", round, HAMMER_THREADS, HAMMER_TRIES, taken, busy,
                        busy_rel);
        }
        cr_assert_gt(busy + busy_rel, 0, "no two calls ever met: the test proves nothing");

        /* The broker agrees: closing gives back nothing more. */
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_sem_value(plain), IPCB_SEM_VALUE_MAX);
        cr_assert_eq(ipcb_sem_close(plain), 0);
        cr_assert_eq(ipcb_sync(c), 0);
}

#define OWNER_ROUNDS 100

/* A fresh handle per round, so that each round races the first call of
 * another thread (which takes the handle away from its owner for good)
 * against the owner's own calls. */
CHECKED_TEST(faults, undo_one_call_at_a_time_with_owner) {
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
        hammer hs[HAMMER_THREADS];
        ipcb_sem *plain = NULL;
        unsigned busy = 0, owner_in = 0;

        o.max = IPCB_SEM_VALUE_MAX;
        cr_assert_eq(ipcb_sem_create(c, "faults.uo", IPCB_SEM_VALUE_MAX, &o, &plain), 0);
        for (int round = 0; round < OWNER_ROUNDS; round++) {
                ipcb_sem *u = NULL;
                unsigned taken = 0;

                cr_assert_eq(ipcb_sem_open(c, "faults.uo", IPCB_SEM_UNDO, &u), 0);
                memset(hs, 0, sizeof(hs));
                for (int i = 0; i < HAMMER_THREADS; i++) {
                        hs[i].u = u;
                        hs[i].tries = 10000;
                }
                hammer_run_with_owner(hs, false);
                for (int i = 0; i < HAMMER_THREADS; i++) {
                        cr_assert_eq(hs[i].other, 0, "acquire: %s", ipcb_strerror(hs[i].other_r));
                        taken += hs[i].mine;
                        busy += hs[i].busy;
                }
                owner_in += hs[0].mine;
                cr_assert_eq(ipcb_sem_held(u), (int)taken, "round %d: held %d, taken %u", round,
                             ipcb_sem_held(u), taken);
                cr_assert_eq(ipcb_sem_value(plain), (int)(IPCB_SEM_VALUE_MAX - taken));
                hammer_run_with_owner(hs, true);
                for (int i = 0; i < HAMMER_THREADS; i++) {
                        cr_assert_eq(hs[i].other, 0, "release: %s", ipcb_strerror(hs[i].other_r));
                        busy += hs[i].busy;
                }
                cr_assert_eq(ipcb_sem_held(u), 0);
                cr_assert_eq(ipcb_sem_value(plain), IPCB_SEM_VALUE_MAX);
                /* Shared now, the handle still serves its owner. */
                cr_assert_eq(ipcb_sem_try_acquire(u, 0), 0);
                cr_assert_eq(ipcb_sem_release(u, 1), 0);
                cr_assert_eq(ipcb_sem_close(u), 0);
        }
        fprintf(stderr, "[undo+owner] %d rounds: owner took %u, %u -EBUSY\n", OWNER_ROUNDS, owner_in,
                busy);
        cr_assert_gt(busy, 0, "no two calls ever met: the test proves nothing");
        cr_assert_gt(owner_in, 0, "the owner never got in");
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_sem_value(plain), IPCB_SEM_VALUE_MAX);
        cr_assert_eq(ipcb_sem_close(plain), 0);
        cr_assert_eq(ipcb_sync(c), 0);
}
