/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_notify.c: messages to the service manager never block the daemon.
 * A fake manager binds a datagram socket and, at first, reads nothing: its
 * queue (net.unix.max_dgram_qlen) fills after a few messages.  The daemon
 * must go on serving with low latency, keep what does not fit in its own
 * bounded queue (coalescing watchdog pings, cancelling stores removed before
 * they were sent, dropping stores past the bound with a log line), deliver
 * the rest in order once the manager reads, and exit cleanly, even with
 * messages still waiting (waiting for room, bounded).  At exit the daemon
 * sends BARRIER=1 and waits for the manager to answer it, so that nothing
 * it sent is still unread when it exits; a manager that never answers
 * delays the exit by NOTIFY_EXIT_WAIT_MS at most, and one that reads
 * slowly is waited for as long as it reads.  Also: an
 * abstract-namespace NOTIFY_SOCKET, and a NOTIFY_SOCKET nobody listens
 * on. */
#include "harness.h"
#include "fakemgr.h"

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
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STORE_CAP 16384
#define NFILL 4300  /* more than the daemon's queue bound (4096) */
#define NCHURN 500
#define NKEEP 8
#define MIN_SAMPLES 200
#define MIN_MEASURE_MS 1000
#define STALL_MS 2000 /* a request outstanding this long: the daemon is stuck */
#define WATCHDOG_USEC "20000" /* a ping every 10 ms */
#define NOTIFY_EXIT_WAIT_MS 3000 /* as daemon/notify.h: the exit's wait for a manager that reads nothing */
#define NOTIFY_EXIT_MAX_MS 30000 /* and for one that reads */

/* The fake manager (its socket and store), and what this suite counts on
 * top of it. */
static fakemgr m;
static char logpath[96];
static unsigned watchdog_before_remove; /* pings read before the first removal */
static bool stores_broken;              /* an FDSTORE without exactly one memfd */

static ipcbd d;

static long long now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(long us) {
        struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* Read one message if one comes within timeout_ms and apply it to the
 * store.  Returns 1 for an fd store message, 2 for a state message, 0 if
 * none came. */
static int read_one(int timeout_ms) {
        unsigned removes = m.removes;
        fakemgr_msg msg;
        struct stat st;
        int k = fakemgr_recv(&m, timeout_ms, &msg);

        if (k == 0)
                return 0;
        if (msg.watchdog && removes == 0)
                watchdog_before_remove++;
        if (msg.ctrunc)
                stores_broken = true;
        /* msg.fd < 0: not kept (the store is full, or not one fd) */
        if (msg.store && (msg.nfds != 1 || msg.fd < 0 || fstat(msg.fd, &st) < 0 ||
                          !S_ISREG(st.st_mode) || fcntl(msg.fd, F_GET_SEALS) < 0))
                stores_broken = true;
        return k;
}

/* Read until no fd store message has come for quiet_ms (watchdog pings go
 * on all the time). */
static void drain(int quiet_ms) {
        long long last = now_us();

        while (now_us() - last < quiet_ms * 1000LL)
                if (read_one(10) == 1)
                        last = now_us();
}

static void setup(void) {
        signal(SIGPIPE, SIG_IGN);
        /* Room for every store (the old, blocking daemon hands them all
         * over), and a daemon fd budget (3/4 of its limit, 3 per segment)
         * that holds every segment. */
        raise_nofile(20000);
        watchdog_before_remove = 0;
        stores_broken = false;
        fakemgr_init(&m, "/tmp/ipcbnt.XXXXXX", STORE_CAP);
        snprintf(logpath, sizeof(logpath), "%s/log", m.dir);
}

static void teardown(void) {
        if (d.pid > 0) {
                kill(d.pid, SIGKILL);
                waitpid(d.pid, NULL, 0);
        }
        unlink(logpath);
        fakemgr_destroy(&m);
        unsetenv("NOTIFY_SOCKET");
        unsetenv("WATCHDOG_USEC");
}

TestSuite(notify, .init = setup, .fini = teardown, .timeout = 60);

/* The fake manager lets go of what it was given, then the fixture checks
 * the daemon's fds, ours, and the daemon's exit (or ours only, once the
 * test stopped the daemon itself). */
static void end(void) {
        fakemgr_clear(&m);
        fixture_end(&d);
}

/* fixture_begin with NOTIFY_SOCKET set and the daemon's stderr in logpath. */
static void start(const char *notify_socket, const char *watchdog_usec, const char *const *args) {
        setenv("NOTIFY_SOCKET", notify_socket, 1);
        if (watchdog_usec)
                setenv("WATCHDOG_USEC", watchdog_usec, 1);
        ipcbd_log_path = logpath;
        fixture_begin(&d, args);
        ipcbd_log_path = NULL;
        unsetenv("NOTIFY_SOCKET");
        unsetenv("WATCHDOG_USEC");
}

static int mkseg(ipcb_client *c, const char *name, size_t size, char fill) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_shm *s;
        int k;

        o.flags = IPCB_SHM_PERSISTENT;
        if ((k = ipcb_shm_create(c, name, size, &o, &s)) < 0)
                return k;
        memset(ipcb_shm_data(s), fill, size);
        return ipcb_shm_close(s);
}

/* A client that makes the daemon send thousands of fd store messages:
 * more stores than the queue holds, then their removal, then stores removed
 * at once, then NKEEP segments that stay (sizes 4096 * (i + 1), filled with
 * 'A' + i) in slots freed by removals. */
static int loader(const char *sock) {
        ipcb_client *c;
        char name[32];

        if (ipcb_connect(sock, &c) < 0)
                return 1;
        for (int i = 0; i < NFILL; i++) {
                snprintf(name, sizeof(name), "fill-%05d", i);
                if (mkseg(c, name, 4096, 'f') < 0)
                        return 2;
        }
        for (int i = 0; i < NFILL; i++) {
                snprintf(name, sizeof(name), "fill-%05d", i);
                if (ipcb_unlink(c, name) < 0)
                        return 3;
        }
        for (int i = 0; i < NCHURN; i++) {
                snprintf(name, sizeof(name), "churn-%d", i);
                if (mkseg(c, name, 4096, 'c') < 0 || ipcb_unlink(c, name) < 0)
                        return 4;
        }
        for (int i = 0; i < NKEEP; i++) {
                snprintf(name, sizeof(name), "keep-%d", i);
                if (mkseg(c, name, 4096 * (size_t)(i + 1), (char)('A' + i)) < 0)
                        return 5;
        }
        if (ipcb_sync(c) < 0)
                return 6;
        ipcb_disconnect(c);
        return 0;
}

/* If the daemon stops answering, the test reads the manager's socket so
 * that a blocking daemon gets going again and the test can report. */
static struct {
        atomic_llong request_since_us; /* 0: no request outstanding */
        atomic_bool done, rescued;
} watch;

static void *rescuer(void *arg) {
        (void)arg;
        while (!atomic_load(&watch.done)) {
                long long since = atomic_load(&watch.request_since_us);
                if (since && now_us() - since > STALL_MS * 1000LL)
                        atomic_store(&watch.rescued, true);
                if (atomic_load(&watch.rescued))
                        read_one(5);
                else
                        sleep_us(20000);
        }
        return NULL;
}

static int cmp_ll(const void *a, const void *b) {
        long long x = *(const long long *)a, y = *(const long long *)b;
        return (x > y) - (x < y);
}

Test(notify, full_manager_queue_never_blocks) {
        /* uid 0 is exempt from the quotas; as another uid the test needs them raised */
        static const char *const args[] = { "--max-objects", "20000", "--max-fds", "100000",
                                            "--max-handles", "100000", "--max-bytes", "64G", NULL };
        static long long lat[200000];
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ipcb_client *c;
        pthread_t th;
        unsigned n = 0;
        int self_fds = self_fd_count(), st, rc = -1;
        long long t0, stall_ms;
        pid_t child;

        start(m.notify, WATCHDOG_USEC, args);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        cr_assert_eq(mkseg(c, "probe", 4096, 'p'), 0);

        child = test_fork();
        if (child == 0)
                _exit(loader(d.sock));
        pthread_create(&th, NULL, rescuer, NULL);
        t0 = now_us();
        for (;;) {
                if (rc < 0 && waitpid(child, &st, WNOHANG) == child)
                        rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
                if (rc >= 0 && n >= MIN_SAMPLES && now_us() - t0 >= MIN_MEASURE_MS * 1000LL)
                        break;
                long long a = now_us();
                atomic_store(&watch.request_since_us, a);
                cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "probe", &info), 0);
                lat[n] = now_us() - a;
                atomic_store(&watch.request_since_us, 0);
                if (n < sizeof(lat) / sizeof(lat[0]) - 1)
                        n++;
                sleep_us(2000);
        }
        stall_ms = (now_us() - t0) / 1000;
        atomic_store(&watch.done, true);
        pthread_join(th, NULL);
        qsort(lat, n, sizeof(lat[0]), cmp_ll);
        fprintf(stderr, "[notify] %u stat round trips while the manager did not read (%lld ms): "
                        "p50 %.3f ms, p99 %.3f ms, max %.3f ms%s\n",
                n, stall_ms, lat[n / 2] / 1000.0, lat[n * 99 / 100] / 1000.0, lat[n - 1] / 1000.0,
                atomic_load(&watch.rescued) ? " (the test had to read to unblock the daemon)" : "");
        cr_assert_eq(rc, 0, "loader failed at step %d", rc);

        /* Now the manager reads everything. */
        drain(500);
        fprintf(stderr, "[notify] the manager got %u FDSTORE and %u FDSTOREREMOVE for %d creates; "
                        "%u WATCHDOG (%u before the first removal, over %lld ms of pings every 10 ms), "
                        "%u STATUS\n",
                m.stores, m.removes, NFILL + NCHURN + NKEEP + 1, m.watchdog, watchdog_before_remove,
                stall_ms, m.status);
        cr_assert_lt(lat[n - 1], 100000, "a request took %.1f ms", lat[n - 1] / 1000.0);
        cr_assert(!stores_broken, "an FDSTORE came without a valid memfd");
        cr_assert_eq(m.ready, 1);
        /* Stores removed before the manager saw them were never sent. */
        cr_assert_lt(m.stores, (NFILL + NCHURN) / 10, "%u stores sent", m.stores);
        /* Pings pile up as one while the manager does not read. */
        cr_assert_lt(watchdog_before_remove, 30, "%u pings", watchdog_before_remove);
        cr_assert(file_contains(logpath, "was dropped"), "no log line about dropped stores");
        cr_assert(file_contains(logpath, "caught up"), "no log line when the manager caught up");

        /* In order: the catalog, the undo, owe and order tables, the probe
         * and the keepers, each once, with the right contents; nothing
         * removed or dropped is left behind. */
        cr_assert_eq(m.n, 5 + NKEEP, "the store holds %u fds", m.n);
        cr_assert_eq(fakemgr_count(&m, "ipcb-catalog"), 1);
        cr_assert_eq(fakemgr_count(&m, "ipcb-undo"), 1);
        cr_assert_eq(fakemgr_count(&m, "ipcb-owe"), 1);
        cr_assert_eq(fakemgr_count(&m, "ipcb-order"), 1);
        unsigned seen = 0;
        for (unsigned i = 0; i < m.n; i++) {
                struct stat sb;
                char b = 0;
                if (strcmp(m.store[i].name, "ipcb-catalog") == 0 || strcmp(m.store[i].name, "ipcb-undo") == 0 ||
                    strcmp(m.store[i].name, "ipcb-owe") == 0 || strcmp(m.store[i].name, "ipcb-order") == 0)
                        continue;
                cr_assert_eq(fstat(m.store[i].fd, &sb), 0);
                cr_assert_eq(pread(m.store[i].fd, &b, 1, 0), 1);
                for (unsigned j = i + 1; j < m.n; j++)
                        cr_assert_str_neq(m.store[i].name, m.store[j].name, "%s stored twice", m.store[i].name);
                if (b == 'p')
                        cr_assert_eq(sb.st_size, 4096);
                else {
                        cr_assert(b >= 'A' && b < 'A' + NKEEP, "%s holds '%c'", m.store[i].name, b);
                        cr_assert_eq(sb.st_size, 4096 * (b - 'A' + 1), "%s: size %lld", m.store[i].name,
                                     (long long)sb.st_size);
                }
                seen |= 1u << (b == 'p' ? NKEEP : b - 'A');
        }
        cr_assert_eq(seen, (1u << (NKEEP + 1)) - 1, "stored: %#x", seen);

        /* Everything removed: the daemon is back to its own fds. */
        char name[32];
        for (int i = 0; i < NKEEP; i++) {
                snprintf(name, sizeof(name), "keep-%d", i);
                cr_assert_eq(ipcb_unlink(c, name), 0);
        }
        cr_assert_eq(ipcb_unlink(c, "probe"), 0);
        ipcb_disconnect(c);
        drain(300);
        cr_assert_eq(m.n, 4, "left in the store: %u", m.n); /* the catalog, the undo, owe and order tables */
        end();
        drain(100);
        cr_assert_eq(m.stopping, 1);
        fakemgr_clear(&m);
        cr_assert_eq(self_fd_count(), self_fds);
}

/* A manager that reads, but slower than a burst of creates (it starts
 * 500 ms late, then takes a message a millisecond): past half of its queue
 * the daemon stops reading creates until the manager has caught up, so no
 * store is dropped and every object would survive a restart.  (Before, the
 * creates went on and the stores past the queue's 4096 were dropped.) */
#define NSLOW 4800

static int slow_loader(const char *sock) {
        ipcb_client *c;
        char name[32];

        if (ipcb_connect(sock, &c) < 0)
                return 1;
        ipcb_set_timeout(c, 30000);
        for (int i = 0; i < NSLOW; i++) {
                snprintf(name, sizeof(name), "slow-%05d", i);
                if (mkseg(c, name, 4096, 's') < 0)
                        return 2;
        }
        ipcb_disconnect(c);
        return 0;
}

Test(notify, slow_manager_loses_no_store, .timeout = 90) {
        /* uid 0 is exempt from the quotas; as another uid the test needs them raised */
        static const char *const args[] = { "--max-objects", "20000", "--max-fds", "100000",
                                            "--max-handles", "100000", "--max-bytes", "64G", NULL };
        int self_fds = self_fd_count(), st, rc = -1;
        unsigned stored = 0;
        ipcb_client *c;
        char name[32];
        pid_t child;

        start(m.notify, NULL, args);
        child = test_fork();
        if (child == 0)
                _exit(slow_loader(d.sock));
        sleep_us(500000);
        while (rc < 0) {
                if (waitpid(child, &st, WNOHANG) == child)
                        rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
                read_one(10);
                sleep_us(1000);
        }
        drain(300);
        cr_assert_eq(rc, 0, "the loader failed at step %d", rc);
        cr_assert(!stores_broken, "an FDSTORE came without a valid memfd");
        cr_assert_not(file_contains(logpath, "was dropped"), "stores were dropped");
        for (unsigned i = 0; i < m.n; i++)
                stored += strncmp(m.store[i].name, "ipcb-o-", 7) == 0;
        fprintf(stderr, "[notify] %d creates against a slow manager: %u objects stored, %u FDSTORE read\n",
                NSLOW, stored, m.stores);
        cr_assert_eq(stored, NSLOW, "%u of %d objects stored", stored, NSLOW);

        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        for (int i = 0; i < NSLOW; i++) {
                snprintf(name, sizeof(name), "slow-%05d", i);
                cr_assert_eq(ipcb_unlink(c, name), 0);
        }
        ipcb_disconnect(c);
        drain(300);
        cr_assert_eq(m.n, 4, "left in the store: %u", m.n); /* the catalog, the undo, owe and order tables */
        end();
        drain(100);
        fakemgr_clear(&m);
        cr_assert_eq(self_fd_count(), self_fds);
}

/* SIGTERM while the queue is full and the manager never reads: the daemon
 * waits for room a bounded time only. */
Test(notify, exit_with_messages_waiting) {
        ipcb_client *c;
        char name[32];

        start(m.notify, NULL, NULL);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        for (int i = 0; i < 200; i++) {
                snprintf(name, sizeof(name), "w-%d", i);
                cr_assert_eq(mkseg(c, name, 4096, 'w'), 0);
        }
        cr_assert_eq(ipcb_sync(c), 0);
        long long t = now_us();
        ipcbd_stop(&d);
        t = now_us() - t;
        fprintf(stderr, "[notify] exit with the manager's queue full took %.1f ms\n", t / 1000.0);
        cr_assert_lt(t, (NOTIFY_EXIT_WAIT_MS + 1000) * 1000LL, "the exit waited %lld ms", t / 1000);
        ipcb_disconnect(c);
        cr_assert(file_contains(logpath, "were not sent"), "no log line about messages lost at exit");
        end();
}

static bool got_ready(const fakemgr *fm, void *arg) {
        (void)arg;
        return fm->ready > 0;
}

/* NOTIFY_SOCKET=@name: the abstract namespace. */
Test(notify, abstract_socket) {
        char at[64];
        ipcb_client *c;

        snprintf(at, sizeof(at), "@ipcb-notify-test-%d", (int)getpid());
        fakemgr_bind(&m, at);
        start(at, NULL, NULL);
        cr_assert(fakemgr_pump_until(&m, got_ready, NULL, 5000), "no READY=1");
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        cr_assert_eq(mkseg(c, "abs", 4096, 'a'), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        drain(200);
        cr_assert_eq(fakemgr_count(&m, "ipcb-o-"), 1);
        cr_assert_eq(ipcb_unlink(c, "abs"), 0);
        ipcb_disconnect(c);
        drain(200);
        cr_assert_eq(fakemgr_count(&m, "ipcb-o-"), 0);
        end();
        drain(100);
        cr_assert_eq(m.stopping, 1);
}

/* A NOTIFY_SOCKET nobody listens on: the daemon serves, logs, exits 0. */
Test(notify, nobody_listening) {
        char path[128];
        ipcb_client *c;

        snprintf(path, sizeof(path), "%s/nobody", m.dir);
        start(path, NULL, NULL);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        cr_assert_eq(mkseg(c, "lost", 4096, 'l'), 0);
        cr_assert_eq(ipcb_unlink(c, "lost"), 0);
        ipcb_disconnect(c);
        end();
        cr_assert(file_contains(logpath, "cannot connect"), "no log line about the missing manager");
}

/* The manager's side while the daemon stops: read until told to stop. */
static atomic_bool pump_done;

static void *pump(void *arg) {
        (void)arg;
        while (!atomic_load(&pump_done))
                fakemgr_recv(&m, 10, NULL);
        return NULL;
}

/* Stop the daemon while a thread reads the manager's socket; returns how
 * long the stop took, in ms. */
static long long stop_while_reading(void) {
        pthread_t th;
        long long t;

        atomic_store(&pump_done, false);
        cr_assert_eq(pthread_create(&th, NULL, pump, NULL), 0);
        t = now_us();
        ipcbd_stop(&d); /* asserts exit status 0 within the harness's bound */
        t = now_us() - t;
        atomic_store(&pump_done, true);
        pthread_join(th, NULL);
        drain(100);
        return t / 1000;
}

/* A manager that reads answers BARRIER=1 at once: it comes after every
 * store and after STOPPING=1, and the exit does not wait. */
Test(notify, exit_barrier_answered) {
        ipcb_client *c;
        char name[32];
        long long ms;

        start(m.notify, NULL, NULL);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        for (int i = 0; i < 50; i++) {
                snprintf(name, sizeof(name), "b-%d", i);
                cr_assert_eq(mkseg(c, name, 4096, 'b'), 0);
        }
        cr_assert_eq(ipcb_sync(c), 0);
        ms = stop_while_reading();
        ipcb_disconnect(c);
        fprintf(stderr, "[notify] exit with an answered barrier took %lld ms\n", ms);
        cr_assert_eq(m.barriers, 1, "BARRIER=1 sent %u times", m.barriers);
        cr_assert_eq(m.stopping, 1);
        cr_assert_eq(fakemgr_count(&m, "ipcb-o-"), 50, "stores read: %u", fakemgr_count(&m, "ipcb-o-"));
        cr_assert_lt(ms, NOTIFY_EXIT_WAIT_MS / 2, "the exit waited %lld ms for an answered barrier", ms);
        cr_assert(!file_contains(logpath, "BARRIER=1"), "a log line about an answered barrier");
        end();
}

/* A manager that reads but never answers the barrier delays the exit by
 * NOTIFY_EXIT_WAIT_MS at most; the daemon says so and exits 0. */
Test(notify, exit_barrier_never_answered) {
        ipcb_client *c;
        long long ms;

        start(m.notify, NULL, NULL);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        cr_assert_eq(mkseg(c, "nb", 4096, 'n'), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        m.hold_barriers = true;
        ms = stop_while_reading();
        ipcb_disconnect(c);
        fprintf(stderr, "[notify] exit with an unanswered barrier took %lld ms\n", ms);
        cr_assert_eq(m.barriers, 1);
        cr_assert_eq(m.nheld, 1);
        cr_assert_geq(ms, NOTIFY_EXIT_WAIT_MS - 500, "the exit did not wait for the barrier (%lld ms)", ms);
        cr_assert_lt(ms, NOTIFY_EXIT_WAIT_MS + 1000, "the exit waited %lld ms", ms);
        cr_assert(file_contains(logpath, "did not confirm"), "no log line about the unanswered barrier");
        end();
}

/* The manager's side, slowly: one message every 8 ms. */
static void *slow_pump(void *arg) {
        (void)arg;
        while (!atomic_load(&pump_done)) {
                fakemgr_recv(&m, 10, NULL);
                sleep_us(8000);
        }
        return NULL;
}

/* A manager that reads slowly (a large fd store compares each new fd with
 * every stored one) takes longer than NOTIFY_EXIT_WAIT_MS to read what waits
 * at the exit: the daemon waits as long as it reads, and loses nothing. */
Test(notify, exit_waits_for_a_slow_manager) {
        enum { NSEG = 450 }; /* about 3.7 s at the pump's pace (the harness waits 5 s) */
        ipcb_client *c;
        char name[32];
        pthread_t th;
        long long ms;

        start(m.notify, NULL, NULL);
        drain(100);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        for (int i = 0; i < NSEG; i++) {
                snprintf(name, sizeof(name), "s-%d", i);
                cr_assert_eq(mkseg(c, name, 4096, 's'), 0);
        }
        cr_assert_eq(ipcb_sync(c), 0);
        atomic_store(&pump_done, false);
        cr_assert_eq(pthread_create(&th, NULL, slow_pump, NULL), 0);
        ms = now_us();
        ipcbd_stop(&d);
        ms = (now_us() - ms) / 1000;
        atomic_store(&pump_done, true);
        pthread_join(th, NULL);
        drain(100);
        ipcb_disconnect(c);
        fprintf(stderr, "[notify] exit with a slow manager took %lld ms\n", ms);
        cr_assert_eq(fakemgr_count(&m, "ipcb-o-"), NSEG, "stores read: %u of %d",
                     fakemgr_count(&m, "ipcb-o-"), NSEG);
        cr_assert_eq(m.barriers, 1, "BARRIER=1 sent %u times", m.barriers);
        cr_assert_gt(ms, NOTIFY_EXIT_WAIT_MS, "the manager was quicker than the test meant (%lld ms)", ms);
        cr_assert_lt(ms, NOTIFY_EXIT_MAX_MS, "the exit waited %lld ms", ms);
        cr_assert(!file_contains(logpath, "were not sent"), "stores not sent at exit");
        cr_assert(!file_contains(logpath, "did not confirm"), "the barrier not confirmed");
        end();
}
