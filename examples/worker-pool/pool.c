/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pool.c [WORKERS] [JOBS]: a crash-safe worker pool.  A semaphore with
 * SLOTS tokens bounds how many workers run a job at once; each worker takes
 * its token through an undo handle, so a worker killed while it holds one
 * does not lose it: the broker gives it back.  The pool's state lives in a
 * segment guarded by the segment's lock, which a dead holder hands on with
 * IPCB_OWNER_DIED.
 *
 * First a worker is killed with SIGKILL while it holds a token and the
 * lock, half-way through an update; the token comes back and the next
 * locker repairs the state.  Then WORKERS workers run JOBS jobs each. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* F_SEAL_*, POSIX calls; the project's build defines it */
#endif
#include <errno.h>
#include <ipcbroker.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SLOTS_NAME "example.pool.slots"
#define STATE_NAME "example.pool.state"
#define SLOTS 3
#define MAX_WORKERS 64

struct state {
        uint32_t active;    /* workers inside a job: never above SLOTS */
        uint32_t max_active;
        uint32_t updating;  /* 1 while an update is half-done */
        uint32_t repairs;   /* half-done updates found and repaired */
        uint64_t jobs_done;
};

static int fail(const char *what, int err) {
        fprintf(stderr, "pool[%d]: %s: %s\n", (int)getpid(), what, ipcb_strerror(err));
        return 1;
}

static long long now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms) {
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
}

/* Take the lock; repair what a dead holder left half-done. */
static int lock_state(ipcb_shm *seg) {
        struct state *st = ipcb_shm_data(seg);
        int k = ipcb_shm_lock(seg);

        if (k == IPCB_OWNER_DIED) {
                printf("pool[%d]: the lock's last holder died; repairing the state\n", (int)getpid());
                if (st->updating) {
                        st->active--; /* the dead worker's job never finished */
                        st->updating = 0;
                        st->repairs++;
                }
                k = 0;
        }
        return k;
}

/* In a child: its own connection, an undo handle on the slots. */
static int worker_open(ipcb_client **c, ipcb_sem **slots, ipcb_shm **seg) {
        int k;

        if ((k = ipcb_connect(NULL, c)) < 0 || (k = ipcb_sem_open(*c, SLOTS_NAME, IPCB_SEM_UNDO, slots)) < 0 ||
            (k = ipcb_shm_open(*c, STATE_NAME, IPCB_READ_WRITE, seg)) < 0)
                return k;
        return 0;
}

/* A worker that takes a token and the lock, starts an update, tells the
 * parent (a byte on fd), and then hangs until it is killed. */
static int worker_hang(int fd) {
        ipcb_client *c;
        ipcb_sem *slots;
        ipcb_shm *seg;
        struct state *st;
        int k;

        if ((k = worker_open(&c, &slots, &seg)) < 0)
                return fail("open", k);
        if ((k = ipcb_sem_acquire(slots)) < 0)
                return fail("acquire", k);
        if ((k = lock_state(seg)) < 0)
                return fail("lock", k);
        st = ipcb_shm_data(seg);
        st->active++;
        st->updating = 1; /* ... and never finishes */
        if (write(fd, "h", 1) != 1)
                return 1;
        for (;;)
                pause();
}

static int worker(unsigned jobs) {
        ipcb_client *c;
        ipcb_sem *slots;
        ipcb_shm *seg;
        struct state *st;
        int k;

        if ((k = worker_open(&c, &slots, &seg)) < 0)
                return fail("open", k);
        st = ipcb_shm_data(seg);
        for (unsigned j = 0; j < jobs; j++) {
                if ((k = ipcb_sem_try_acquire(slots, 30000)) < 0)
                        return fail("acquire a slot", k);
                if ((k = lock_state(seg)) < 0)
                        return fail("lock", k);
                if (++st->active > st->max_active)
                        st->max_active = st->active;
                ipcb_shm_unlock(seg);

                sleep_ms(1); /* the job */

                if ((k = lock_state(seg)) < 0)
                        return fail("lock", k);
                st->active--;
                st->jobs_done++;
                ipcb_shm_unlock(seg);
                if ((k = ipcb_sem_release(slots, 1)) < 0)
                        return fail("release a slot", k);
        }
        ipcb_shm_close(seg);
        ipcb_sem_close(slots);
        ipcb_disconnect(c);
        return 0;
}

static pid_t spawn(int (*fn)(unsigned), unsigned arg) {
        pid_t pid;

        fflush(NULL);
        pid = fork();
        if (pid == 0)
                _exit(fn(arg));
        return pid;
}

static int hang_fn(unsigned fd) {
        return worker_hang((int)fd);
}

/* Kill a worker that holds a token and the lock; the token must come back. */
static int crash_demo(ipcb_sem *slots) {
        int pipefd[2];
        char b;
        long long t0;
        pid_t pid;

        if (pipe(pipefd) < 0)
                return 1;
        pid = spawn(hang_fn, (unsigned)pipefd[1]);
        close(pipefd[1]);
        if (pid < 0 || read(pipefd[0], &b, 1) != 1) {
                fprintf(stderr, "pool: the hanging worker did not start\n");
                return 1;
        }
        close(pipefd[0]);
        printf("pool: worker %d holds a slot and the lock; slots free: %d of %d\n", (int)pid,
               ipcb_sem_value(slots), SLOTS);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        printf("pool: worker %d killed with SIGKILL\n", (int)pid);
        t0 = now_ms();
        while (ipcb_sem_value(slots) != SLOTS) {
                if (now_ms() - t0 > 10000) {
                        fprintf(stderr, "pool: the dead worker's slot did not come back\n");
                        return 1;
                }
                sleep_ms(1);
        }
        printf("pool: its slot came back after %lld ms; slots free: %d of %d\n", now_ms() - t0,
               ipcb_sem_value(slots), SLOTS);
        return 0;
}

int main(int argc, char **argv) {
        unsigned workers = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 6;
        unsigned jobs = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 50;
        ipcb_sem_options so = IPCB_SEM_OPTIONS_INIT;
        ipcb_client *c;
        ipcb_sem *slots;
        ipcb_shm *seg;
        struct state *st;
        int k, bad = 0;

        if ((k = ipcb_connect(NULL, &c)) < 0)
                return fail("connect", k);
        so.max = SLOTS;
        if ((k = ipcb_sem_create(c, SLOTS_NAME, SLOTS, &so, &slots)) < 0)
                return fail("create " SLOTS_NAME, k);
        if ((k = ipcb_shm_create(c, STATE_NAME, sizeof(struct state), NULL, &seg)) < 0)
                return fail("create " STATE_NAME, k);
        st = ipcb_shm_data(seg);

        if (crash_demo(slots) != 0)
                return 1;
        if ((k = lock_state(seg)) < 0)
                return fail("lock", k);
        ipcb_shm_unlock(seg);

        pid_t pids[MAX_WORKERS];
        if (workers > MAX_WORKERS)
                workers = MAX_WORKERS;
        for (unsigned i = 0; i < workers; i++)
                if ((pids[i] = spawn(worker, jobs)) < 0)
                        return fail("fork", -errno);
        for (unsigned i = 0; i < workers; i++) {
                int status;
                waitpid(pids[i], &status, 0);
                bad += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
        }
        printf("pool: %u workers done: %llu jobs, at most %u at once, %u repair(s), slots free: %d of %d\n",
               workers, (unsigned long long)st->jobs_done, st->max_active, st->repairs,
               ipcb_sem_value(slots), SLOTS);
        if (bad || st->jobs_done != (uint64_t)workers * jobs || st->max_active > SLOTS ||
            st->active != 0 || st->repairs != 1 || ipcb_sem_value(slots) != SLOTS) {
                fprintf(stderr, "pool: something went wrong\n");
                return 1;
        }
        ipcb_shm_close(seg);
        ipcb_sem_close(slots);
        ipcb_disconnect(c);
        return 0;
}
