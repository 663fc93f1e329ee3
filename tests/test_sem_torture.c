/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_sem_torture.c: crash exactness.  Child processes loop on a semaphore
 * through undo handles (or on a segment lock) while the parent SIGKILLs one
 * at a random moment and respawns it, thousands of times.  Afterwards the
 * daemon must have settled every dead holder exactly: the count is back at
 * its initial value, the lock works, no lock call ever failed, and the
 * daemon's fd count is back where it was.
 *
 * IPCB_TORTURE_KILLS (default 3000) sets the kills of the semaphore and lock
 * runs (the blocked-waiter run does a third of that); IPCB_TORTURE_SEED
 * replays a run.  Kills, timings and counters go to stderr.
 *
 * Every test runs in the harness fixture (harness.h): at its end the daemon
 * is back at its idle fd count, the test process at its own, and the daemon
 * exits 0. */
#include "harness.h"

#include "ipcbroker.h"
#include "sempage.h" /* the exact-window tests play a client killed mid-operation */

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
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

TestSuite(torture, .init = setup, .fini = teardown, .timeout = 240);

/* ---- helpers ---- */

static long long now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_us(long us) {
        struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static unsigned long env_ulong(const char *name, unsigned long dflt) {
        const char *v = getenv(name);
        char *end;
        if (!v || !*v)
                return dflt;
        unsigned long x = strtoul(v, &end, 0);
        return *end ? dflt : x;
}

static uint64_t rng_next(uint64_t *s) {
        /* xorshift64* */
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return *s * 2685821657736338717ull;
}

static uint64_t seed_once(void) {
        static uint64_t seed;
        if (!seed) {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                seed = env_ulong("IPCB_TORTURE_SEED", (unsigned long)(ts.tv_nsec ^ ts.tv_sec << 20 ^ getpid()));
                if (!seed)
                        seed = 1;
        }
        return seed;
}

/* Counters the children bump in a shared anonymous page. */
typedef struct stats {
        atomic_ulong started;   /* children that reached their loop */
        atomic_ulong ops;       /* completed iterations */
        atomic_ulong lock_ok;   /* ipcb_shm_lock returned 0 */
        atomic_ulong lock_died; /* ...returned IPCB_OWNER_DIED */
        atomic_ulong lock_bad;  /* ...returned anything else */
        atomic_int last_bad;
        atomic_ulong violations; /* someone else's bytes inside our critical section */
} stats;

static stats *stats_new(void) {
        stats *st = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        cr_assert_neq(st, MAP_FAILED);
        return st;
}

/* A fleet of children running fn(idx, arg) until killed.  A child that
 * exits by itself has failed: its exit code says where. */
typedef int (*child_fn)(int idx, uint64_t seed, void *arg);

enum { FLEET_MAX = 8, DYING_MAX = 8 };

typedef struct fleet {
        int n;
        pid_t pid[FLEET_MAX];
        child_fn fn;
        void *arg;
        uint64_t rng;
        pid_t dying[DYING_MAX];
        int ndying;
        unsigned long spawned, kills;
        long long sleep_us, kill_us, spawn_us; /* where the parent's time went */
} fleet;

static long long now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void fleet_spawn(fleet *f, int i) {
        uint64_t seed = rng_next(&f->rng);
        pid_t pid = test_fork();
        if (pid == 0) {
                /* Busy children must not starve the parent's kill timing
                 * (or the daemon) on a small machine. */
                errno = 0;
                if (nice(10) < 0 && errno != 0)
                        _exit(98);
                _exit(f->fn(i, seed, f->arg));
        }
        f->pid[i] = pid;
        f->spawned++;
}

static void fleet_start(fleet *f, int n, child_fn fn, void *arg) {
        *f = (fleet){ .n = n, .fn = fn, .arg = arg, .rng = seed_once() };
        cr_assert_leq(n, FLEET_MAX);
        for (int i = 0; i < n; i++)
                fleet_spawn(f, i);
}

/* Check how a killed child ended: by our SIGKILL, not by itself. */
static void check_killed(pid_t pid, int st) {
        if (WIFEXITED(st))
                cr_assert_fail("child pid %d exited by itself with code %d", (int)pid, WEXITSTATUS(st));
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child pid %d died of signal %d",
                  (int)pid, WIFSIGNALED(st) ? WTERMSIG(st) : -1);
}

static void reap(pid_t pid, bool block) {
        int st;
        pid_t r;
        do
                r = waitpid(pid, &st, block ? 0 : WNOHANG);
        while (r < 0 && errno == EINTR);
        cr_assert_eq(r, block ? pid : r, "waitpid %d: %s", (int)pid, strerror(errno));
        if (r == pid)
                check_killed(pid, st);
}

/* Killed children still exiting.  The parent does not wait for each death
 * (on a busy machine a dying child waits for a CPU): it reaps them later,
 * blocking only when too many are pending. */
static void reap_pending(fleet *f, bool block_all) {
        int keep = 0;
        for (int j = 0; j < f->ndying; j++) {
                int st;
                pid_t r;
                do
                        r = waitpid(f->dying[j], &st, block_all ? 0 : WNOHANG);
                while (r < 0 && errno == EINTR);
                cr_assert_geq(r, 0, "waitpid: %s", strerror(errno));
                if (r == f->dying[j])
                        check_killed(r, st);
                else
                        f->dying[keep++] = f->dying[j];
        }
        f->ndying = keep;
}

/* Kill a random child after a random 0..2 ms, respawn it; `kills` times.
 * every/hook: call hook(arg) after every `every` kills (0: never). */
static void fleet_torture(fleet *f, unsigned long kills, unsigned every, void (*hook)(void *), void *arg) {
        for (unsigned long k = 0; k < kills; k++) {
                long long t0 = now_us();
                sleep_us((long)(rng_next(&f->rng) % 2001));
                long long t1 = now_us();
                int i = (int)(rng_next(&f->rng) % (uint64_t)f->n);
                cr_assert_eq(kill(f->pid[i], SIGKILL), 0);
                reap_pending(f, false);
                if (f->ndying == DYING_MAX) {
                        reap(f->dying[0], true);
                        memmove(f->dying, f->dying + 1, sizeof(f->dying[0]) * (DYING_MAX - 1));
                        f->ndying--;
                }
                f->dying[f->ndying++] = f->pid[i];
                f->kills++;
                long long t2 = now_us();
                fleet_spawn(f, i);
                long long t3 = now_us();
                f->sleep_us += t1 - t0;
                f->kill_us += t2 - t1;
                f->spawn_us += t3 - t2;
                if (every && hook && (k + 1) % every == 0)
                        hook(arg);
        }
}

static void fleet_report(const fleet *f) {
        fprintf(stderr, "  parent time: sleeping %lld ms, killing and reaping %lld ms, forking %lld ms\n",
                f->sleep_us / 1000, f->kill_us / 1000, f->spawn_us / 1000);
}

static void fleet_stop(fleet *f) {
        fleet_report(f);
        for (int i = 0; i < f->n; i++)
                kill(f->pid[i], SIGKILL);
        for (int i = 0; i < f->n; i++)
                reap(f->pid[i], true);
        reap_pending(f, true);
}

typedef struct settle_want {
        int kind;
        const char *name;
        unsigned handles;
        ipcb_object_info last;
} settle_want;

/* Every child's handle is gone and no undo token is held. */
static bool settled(void *arg) {
        settle_want *w = arg;
        if (ipcb_stat(c, w->kind, w->name, &w->last) < 0)
                return false;
        return w->last.handles == w->handles && w->last.sem_undo_held == 0;
}

static void wait_settled(int kind, const char *name, unsigned handles) {
        settle_want w = { .kind = kind, .name = name, .handles = handles,
                          .last = IPCB_OBJECT_INFO_INIT };
        cr_assert(wait_until(settled, &w, 10000), "%s not settled: %u handles, %u undo-held, value %u",
                  name, w.last.handles, w.last.sem_undo_held, w.last.sem_value);
}

/* ---- semaphore: undo holders killed at random ---- */

enum { SEM_INITIAL = 3, CHILDREN = 6 };

static int sem_child(int idx, uint64_t seed, void *arg) {
        stats *st = arg;
        ipcb_client *cc;
        ipcb_sem *s;
        (void)idx;

        if (ipcb_connect(d.sock, &cc) < 0)
                return 10;
        if (ipcb_sem_open(cc, "t", IPCB_SEM_UNDO, &s) < 0)
                return 11;
        atomic_fetch_add(&st->started, 1);
        for (;;) {
                int r;
                switch (rng_next(&seed) % 4) {
                case 0: /* acquire, release */
                        if (ipcb_sem_acquire(s) != 0 || ipcb_sem_held(s) != 1)
                                return 20;
                        if (ipcb_sem_release(s, 1) != 0 || ipcb_sem_held(s) != 0)
                                return 21;
                        break;
                case 1: /* no wait */
                        r = ipcb_sem_try_acquire(s, 0);
                        if (r == -EAGAIN)
                                break;
                        if (r != 0 || ipcb_sem_held(s) != 1 || ipcb_sem_release(s, 1) != 0)
                                return 22;
                        break;
                case 2: /* short timed wait */
                        r = ipcb_sem_try_acquire(s, 1);
                        if (r == -ETIMEDOUT)
                                break;
                        if (r != 0 || ipcb_sem_held(s) != 1 || ipcb_sem_release(s, 1) != 0)
                                return 23;
                        break;
                default: /* two at once, the second without blocking for long */
                        if (ipcb_sem_acquire(s) != 0)
                                return 24;
                        r = ipcb_sem_try_acquire(s, 1);
                        if (r != 0 && r != -ETIMEDOUT)
                                return 25;
                        if (ipcb_sem_held(s) != (r == 0 ? 2 : 1))
                                return 26;
                        if (ipcb_sem_release(s, r == 0 ? 2 : 1) != 0 || ipcb_sem_held(s) != 0)
                                return 27;
                        break;
                }
                atomic_fetch_add(&st->ops, 1);
        }
}

CHECKED_TEST(torture, sem_undo_holders_killed) {
        unsigned long kills = env_ulong("IPCB_TORTURE_KILLS", 3000);
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
        ipcb_sem *s;
        stats *st = stats_new();
        fleet f;

        o.max = SEM_INITIAL;
        cr_assert_eq(ipcb_sem_create(c, "t", SEM_INITIAL, &o, &s), 0);
        /* Our own undo handle later makes the daemon watch our process
         * (one pidfd): have that fd before counting. */
        ipcb_sem *u;
        cr_assert_eq(ipcb_sem_open(c, "t", IPCB_SEM_UNDO, &u), 0);
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        int fds0 = ipcbd_fd_count(&d);

        long long t0 = now_ms();
        fleet_start(&f, CHILDREN, sem_child, st);
        fleet_torture(&f, kills, 0, NULL, NULL);
        fleet_stop(&f);
        long long t1 = now_ms();
        wait_settled(IPCB_KIND_SEM, "t", 1);
        long long t2 = now_ms();
        fprintf(stderr,
                "sem torture: seed %llu, %lu kills of %d children (%lu spawned, %lu reached the loop), "
                "%lu iterations, %lld ms; settled %lld ms after the last kill\n",
                (unsigned long long)seed_once(), f.kills, CHILDREN, f.spawned,
                atomic_load(&st->started), atomic_load(&st->ops), t1 - t0, t2 - t1);
        cr_assert_gt(atomic_load(&st->started), kills / 4, "too few children got to work");

        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, "t", &info), 0);
        cr_assert_eq(info.sem_value, SEM_INITIAL, "tokens lost or duplicated: value %u", info.sem_value);
        cr_assert_eq(ipcb_sem_value(s), SEM_INITIAL);
        /* Nobody is stuck: the tokens are all there to take, and no more. */
        cr_assert_eq(ipcb_sem_open(c, "t", IPCB_SEM_UNDO, &u), 0);
        for (int i = 0; i < SEM_INITIAL; i++)
                cr_assert_eq(ipcb_sem_try_acquire(u, 0), 0, "token %d", i);
        cr_assert_eq(ipcb_sem_try_acquire(u, 0), -EAGAIN);
        cr_assert_eq(ipcb_sem_held(u), SEM_INITIAL);
        cr_assert_eq(ipcb_sem_release(u, SEM_INITIAL), 0);
        cr_assert_eq(ipcb_sem_acquire(s), 0);
        cr_assert_eq(ipcb_sem_release(s, 1), 0);
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_sem_value(s), SEM_INITIAL);
        cr_assert(ipcbd_wait_fds(&d, fds0, 5000), "daemon fds not back at %d", fds0);
        cr_assert_eq(ipcb_sem_close(s), 0);
        munmap(st, 4096);
}

/* ---- segment lock: holders killed at random ---- */

enum { LOCK_SIZE = 8192, CS_BYTES = 512 };

static int lock_child(int idx, uint64_t seed, void *arg) {
        stats *st = arg;
        ipcb_client *cc;
        ipcb_shm *s;
        volatile uint8_t *p;
        uint8_t mark = (uint8_t)(idx + 1);

        if (ipcb_connect(d.sock, &cc) < 0)
                return 10;
        if (ipcb_shm_open(cc, "L", IPCB_READ_WRITE, &s) < 0)
                return 11;
        p = ipcb_shm_data(s);
        atomic_fetch_add(&st->started, 1);
        for (;;) {
                int r = rng_next(&seed) % 4 == 0 ? ipcb_shm_try_lock(s, 1) : ipcb_shm_lock(s);
                if (r == -ETIMEDOUT)
                        continue;
                if (r == 0)
                        atomic_fetch_add(&st->lock_ok, 1);
                else if (r == IPCB_OWNER_DIED)
                        atomic_fetch_add(&st->lock_died, 1);
                else {
                        atomic_fetch_add(&st->lock_bad, 1);
                        atomic_store(&st->last_bad, r);
                        return 20;
                }
                /* The critical section: write a pattern, then read it back. */
                for (int i = 0; i < CS_BYTES; i++)
                        p[i] = mark;
                for (int i = 0; i < CS_BYTES; i++)
                        if (p[i] != mark) {
                                atomic_fetch_add(&st->violations, 1);
                                break;
                        }
                if (ipcb_shm_unlock(s) != 0)
                        return 21;
                atomic_fetch_add(&st->ops, 1);
        }
}

typedef struct parent_lock {
        ipcb_shm *s;
        unsigned long ok, died;
        int bad;
} parent_lock;

/* Now and then the parent takes the lock as well. */
static void parent_lock_once(void *arg) {
        parent_lock *pl = arg;
        int r = ipcb_shm_try_lock(pl->s, 5000);
        if (r == 0)
                pl->ok++;
        else if (r == IPCB_OWNER_DIED)
                pl->died++;
        else {
                pl->bad = r;
                return;
        }
        if (ipcb_shm_unlock(pl->s) != 0)
                pl->bad = -EPERM;
}

CHECKED_TEST(torture, lock_holders_killed) {
        unsigned long kills = env_ulong("IPCB_TORTURE_KILLS", 3000);
        stats *st = stats_new();
        ipcb_shm *s;
        fleet f;

        cr_assert_eq(ipcb_shm_create(c, "L", LOCK_SIZE, NULL, &s), 0);
        parent_lock pl = { .s = s };
        parent_lock_once(&pl); /* the lock page exists before we count fds */
        cr_assert_eq(pl.bad, 0);
        cr_assert_eq(ipcb_sync(c), 0);
        int fds0 = ipcbd_fd_count(&d);

        long long t0 = now_ms();
        fleet_start(&f, CHILDREN, lock_child, st);
        fleet_torture(&f, kills, 50, parent_lock_once, &pl);
        fleet_stop(&f);
        long long t1 = now_ms();
        wait_settled(IPCB_KIND_SHM, "L", 1);
        long long t2 = now_ms();

        /* The last kill may have hit a holder: then we are told, once. */
        int r = ipcb_shm_try_lock(s, 5000);
        cr_assert(r == 0 || r == IPCB_OWNER_DIED, "final lock: %d", r);
        if (r == IPCB_OWNER_DIED)
                pl.died++;
        else
                pl.ok++;
        cr_assert_eq(ipcb_shm_unlock(s), 0);
        cr_assert_eq(ipcb_shm_lock(s), 0, "the lock works afterwards");
        cr_assert_eq(ipcb_shm_unlock(s), 0);

        unsigned long died = atomic_load(&st->lock_died) + pl.died;
        fprintf(stderr,
                "lock torture: seed %llu, %lu kills of %d children (%lu spawned, %lu reached the loop), "
                "%lu critical sections, %lld ms; settled %lld ms after; lock returned 0 %lu times, "
                "IPCB_OWNER_DIED %lu times (parent: %lu/%lu), other %lu\n",
                (unsigned long long)seed_once(), f.kills, CHILDREN, f.spawned,
                atomic_load(&st->started), atomic_load(&st->ops), t1 - t0, t2 - t1,
                atomic_load(&st->lock_ok) + pl.ok, died, pl.ok, pl.died, atomic_load(&st->lock_bad));
        cr_assert_eq(pl.bad, 0, "the parent's lock returned %d", pl.bad);
        cr_assert_eq(atomic_load(&st->lock_bad), 0, "a child's lock returned %d", atomic_load(&st->last_bad));
        cr_assert_eq(atomic_load(&st->violations), 0, "two holders at once");
        cr_assert_gt(died, 0, "no kill ever hit a holder: the test proves little");
        cr_assert(ipcbd_wait_fds(&d, fds0, 5000), "daemon fds not back at %d", fds0);
        cr_assert_eq(ipcb_shm_close(s), 0);
        munmap(st, 4096);
}

/* ---- semaphore: blocked waiters killed ---- */

static int blocked_child(int idx, uint64_t seed, void *arg) {
        stats *st = arg;
        ipcb_client *cc;
        ipcb_sem *s;
        (void)seed;

        if (ipcb_connect(d.sock, &cc) < 0)
                return 10;
        if (ipcb_sem_open(cc, "b", idx % 2 ? IPCB_SEM_UNDO : 0, &s) < 0)
                return 11;
        atomic_fetch_add(&st->started, 1);
        int r = idx % 4 < 2 ? ipcb_sem_acquire(s) : ipcb_sem_try_acquire(s, 60000);
        (void)r;
        return 30; /* a token came from nowhere */
}

CHECKED_TEST(torture, sem_blocked_waiters_killed) {
        unsigned long kills = env_ulong("IPCB_TORTURE_KILLS", 3000) / 3;
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
        stats *st = stats_new();
        ipcb_sem *s;
        fleet f;

        o.max = 3;
        cr_assert_eq(ipcb_sem_create(c, "b", 0, &o, &s), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        int fds0 = ipcbd_fd_count(&d);

        long long t0 = now_ms();
        fleet_start(&f, CHILDREN, blocked_child, st);
        fleet_torture(&f, kills, 0, NULL, NULL);
        fleet_stop(&f);
        long long t1 = now_ms();
        wait_settled(IPCB_KIND_SEM, "b", 1);
        fprintf(stderr, "blocked-waiter torture: %lu kills (%lu reached acquire), %lld ms\n", f.kills,
                atomic_load(&st->started), t1 - t0);
        cr_assert_eq(ipcb_sem_value(s), 0, "killed waiters changed the count");
        cr_assert_eq(ipcb_sem_release(s, 3), 0);
        cr_assert_eq(ipcb_sem_value(s), 3);
        for (int i = 0; i < 3; i++)
                cr_assert_eq(ipcb_sem_try_acquire(s, 0), 0);
        cr_assert_eq(ipcb_sem_try_acquire(s, 0), -EAGAIN);
        cr_assert_eq(ipcb_sem_release(s, 3), 0);
        cr_assert_eq(ipcb_sem_value(s), 3);
        cr_assert(ipcbd_wait_fds(&d, fds0, 5000), "daemon fds not back at %d", fds0);
        cr_assert_eq(ipcb_sem_close(s), 0);
        munmap(st, 4096);
}

/* ---- exact windows ----
 * A child takes one token through an undo handle with the library, then
 * plays the library's next undo operation by hand on the page and dies at
 * one exact point of it.  The broker must settle it as the helping rule
 * says: the count ends at its initial value in every case (max 10, so that
 * the broker's clamp cannot hide a duplicated token). */

enum { WIN_INITIAL = 3, WIN_MAX = 10 };

typedef enum win {
        WIN_ACQ_CASED,        /* acquire: announced, CAS on W done, not committed */
        WIN_REL_CASED,        /* release: same */
        WIN_ACQ_ANNOUNCED,    /* acquire: announced only */
        WIN_REL_ANNOUNCED,    /* release: announced only */
        WIN_ACQ_CASED_HELPED, /* acquire: CAS on W done, then a live handle helps */
} win;

static const char *const win_names[] = { "acquire CASed", "release CASed", "acquire announced",
                                         "release announced", "acquire CASed, helped" };

static void *find_sem_page(void) {
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
                if (*(const uint32_t *)lo == IPCB_SEM_MAGIC)
                        found = (void *)lo;
        }
        fclose(f);
        return found;
}

static int window_child(win w, int up_fd) {
        ipcb_client *cc;
        ipcb_sem *s;

        if (ipcb_connect(d.sock, &cc) < 0 || ipcb_sem_open(cc, "w", IPCB_SEM_UNDO, &s) < 0)
                return 10;
        if (ipcb_sem_acquire(s) != 0 || ipcb_sem_held(s) != 1)
                return 11;
        ipcb_sem_page *pg = find_sem_page();
        if (!pg)
                return 12;
        /* Our slot is the one holding a token (the parent holds none). */
        uint32_t j = IPCB_SEM_SLOTS;
        for (uint32_t i = 0; i < IPCB_SEM_SLOTS; i++)
                if (ipcb_slot_unpack(atomic_load(&pg->slot[i])).held == 1) {
                        if (j != IPCB_SEM_SLOTS)
                                return 13;
                        j = i;
                }
        if (j == IPCB_SEM_SLOTS)
                return 14;
        ipcb_slotw cur = ipcb_slot_unpack(atomic_load(&pg->slot[j]));
        bool acq = w == WIN_ACQ_CASED || w == WIN_ACQ_ANNOUNCED || w == WIN_ACQ_CASED_HELPED;
        uint32_t seq = (cur.seq + 1) & SEQ_MASK;
        ipcb_slotw ann = { .held = 1, .target = acq ? 2 : 0, .pending = true, .seq = seq };
        atomic_store(&pg->slot[j], ipcb_slot_pack(ann));
        if (w == WIN_ACQ_CASED || w == WIN_REL_CASED || w == WIN_ACQ_CASED_HELPED) {
                uint64_t wv = atomic_load(&pg->word);
                ipcb_w ww = ipcb_w_unpack(wv);
                if (ww.slot != j + 1)
                        ipcb_sem_help(pg, ww);
                ipcb_w nw = { .count = acq ? ww.count - 1 : ww.count + 1, .slot = j + 1, .seq = seq };
                if (!atomic_compare_exchange_strong(&pg->word, &wv, ipcb_w_pack(nw)))
                        return 15; /* nobody else is running */
        }
        if (w == WIN_ACQ_CASED_HELPED) {
                char x = 'x';
                if (write(up_fd, &x, 1) != 1)
                        return 16;
                for (;;)
                        pause();
        }
        raise(SIGKILL);
        return 17;
}

static void window_case(win w) {
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
        ipcb_sem *s, *u;
        int up[2];

        o.max = WIN_MAX;
        cr_assert_eq(ipcb_sem_create(c, "w", WIN_INITIAL, &o, &s), 0);
        cr_assert_eq(ipcb_sem_open(c, "w", IPCB_SEM_UNDO, &u), 0);
        cr_assert_eq(pipe2(up, O_CLOEXEC), 0);
        pid_t pid = test_fork();
        if (pid == 0) {
                _exit(window_child(w, up[1]));
        }
        close(up[1]);
        if (w == WIN_ACQ_CASED_HELPED) {
                char x;
                cr_assert_eq(read(up[0], &x, 1), 1, "child failed");
                /* Our acquire replaces W.last, so it commits the child's. */
                cr_assert_eq(ipcb_sem_try_acquire(u, 0), 0);
                cr_assert_eq(ipcb_sem_held(u), 1);
                kill(pid, SIGKILL);
        }
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s: child status 0x%x (exit %d)",
                  win_names[w], st, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        if (w == WIN_ACQ_CASED_HELPED)
                cr_assert_eq(ipcb_sem_release(u, 1), 0);
        wait_settled(IPCB_KIND_SEM, "w", 2);
        cr_assert_eq(ipcb_sem_value(s), WIN_INITIAL, "%s: value %d after the broker settled the dead child",
                     win_names[w], ipcb_sem_value(s));
        /* And the semaphore still works for undo handles. */
        cr_assert_eq(ipcb_sem_try_acquire(u, 0), 0);
        cr_assert_eq(ipcb_sem_release(u, 1), 0);
        cr_assert_eq(ipcb_sem_held(u), 0);
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
        close(up[0]);
        cr_assert_eq(ipcb_sync(c), 0);
}

CHECKED_TEST(torture, window_acquire_cased_not_committed, .timeout = 30) {
        window_case(WIN_ACQ_CASED);
}

CHECKED_TEST(torture, window_release_cased_not_committed, .timeout = 30) {
        window_case(WIN_REL_CASED);
}

CHECKED_TEST(torture, window_acquire_announced_only, .timeout = 30) {
        window_case(WIN_ACQ_ANNOUNCED);
}

CHECKED_TEST(torture, window_release_announced_only, .timeout = 30) {
        window_case(WIN_REL_ANNOUNCED);
}

CHECKED_TEST(torture, window_acquire_cased_then_helped, .timeout = 30) {
        window_case(WIN_ACQ_CASED_HELPED);
}
