/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cases_sem.c: the semaphore and segment-lock rows, against the mechanisms
 * they replace, all measured in the same run.
 *
 *   (c) uncontended acquire+release: ipcb_sem through a plain and through an
 *       undo handle  vs  a POSIX unnamed sem_t (pshared=1) in a MAP_SHARED
 *       page (the judged floor), System V semop with and without SEM_UNDO,
 *       and eventfd(EFD_SEMAPHORE).
 *   (d) cross-process ping-pong through two semaphores: this process posts s1
 *       and waits for s2, a forked partner waits for s1 and posts s2; one
 *       operation is one round trip, i.e. two handoffs.  ipcb_sem (plain)  vs
 *       sem_t (the floor), SysV semop (with and without SEM_UNDO), eventfd.
 *   (e) uncontended segment lock+unlock: ipcb_shm_lock+ipcb_shm_unlock  vs  a
 *       PTHREAD_PROCESS_SHARED + PTHREAD_MUTEX_ROBUST mutex in a MAP_SHARED
 *       page (the floor), and a plain process-shared mutex for reference.
 *
 * The uncontended pairs take ~10-20 ns, so they rely on the harness timing
 * batches of many iterations; each loop below is written out per mechanism,
 * with no indirect call inside, so that no row pays for the harness. */
#include "bench.h"

#include "ipcbroker.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/sem.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define READY_TIMEOUT_MS 5000
/* SysV keeps each process's SEM_UNDO adjustment in a short: a process whose
 * adjustment would pass 32767 gets ERANGE.  A ping-pong partner's grows by
 * one per round trip, so the SEM_UNDO ping-pong clears the adjustments
 * (SETVAL, between two round trips, inside a timed batch) every this many. */
#define SYSV_UNDO_RESET 30000

union semun { /* the caller defines it (semctl(2)) */
        int val;
        struct semid_ds *buf;
        unsigned short *array;
};

static void *shared_page(void) {
        void *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        return p == MAP_FAILED ? NULL : p;
}

static void sem_name(char *buf, size_t cap, const char *what) {
        static unsigned rows;
        snprintf(buf, cap, "ipcb-bench.%s.%u", what, ++rows);
}

/* ==== (c) uncontended acquire+release ==== */

typedef struct isem_pair {
        ipcb_client *c;
        ipcb_sem *s;
} isem_pair;

static int isem_pair_setup(const bench_env *env, bool undo, void **ret_state) {
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
        isem_pair *st = calloc(1, sizeof(*st));
        char name[48];
        int k;

        if (!st)
                return -ENOMEM;
        sem_name(name, sizeof(name), undo ? "pair.undo" : "pair");
        o.flags = undo ? IPCB_SEM_UNDO : 0;
        if ((k = ipcb_connect(env->socket_path, &st->c)) < 0 ||
            (k = ipcb_sem_create(st->c, name, 1, &o, &st->s)) < 0) {
                ipcb_disconnect(st->c);
                free(st);
                return k;
        }
        *ret_state = st;
        return 0;
}

static int isem_pair_plain_setup(const bench_env *env, void **ret_state) {
        return isem_pair_setup(env, false, ret_state);
}

static int isem_pair_undo_setup(const bench_env *env, void **ret_state) {
        return isem_pair_setup(env, true, ret_state);
}

static void isem_pair_teardown(void *state) {
        isem_pair *st = state;

        ipcb_sem_close(st->s);
        ipcb_disconnect(st->c);
        free(st);
}

static int run_isem_pair(void *state, unsigned n) {
        ipcb_sem *s = ((isem_pair *)state)->s;
        int k;

        for (unsigned i = 0; i < n; i++) {
                if ((k = ipcb_sem_acquire(s)) < 0 || (k = ipcb_sem_release(s, 1)) < 0)
                        return k;
        }
        return 0;
}

/* sem_t, pshared=1, in a MAP_SHARED page: what a process-shared semaphore
 * costs without a broker. */
static int psem_pair_setup(const bench_env *env, void **ret_state) {
        sem_t *s = shared_page();

        (void)env;
        if (!s)
                return -errno;
        if (sem_init(s, 1, 1) < 0) {
                int k = -errno;
                munmap(s, PAGE);
                return k;
        }
        *ret_state = s;
        return 0;
}

static void psem_pair_teardown(void *state) {
        sem_destroy(state);
        munmap(state, PAGE);
}

static int run_psem_pair(void *state, unsigned n) {
        sem_t *s = state;

        for (unsigned i = 0; i < n; i++) {
                if (sem_wait(s) < 0 || sem_post(s) < 0)
                        return -errno;
        }
        return 0;
}

typedef struct sysv_pair {
        int id;
        short flg;
} sysv_pair;

static int sysv_new(int nsems, int val, int *ret_id) {
        union semun arg = { .val = val };
        int id = semget(IPC_PRIVATE, nsems, IPC_CREAT | 0600);

        if (id < 0)
                return -errno;
        for (int i = 0; i < nsems; i++) {
                if (semctl(id, i, SETVAL, arg) < 0) {
                        int k = -errno;
                        semctl(id, 0, IPC_RMID);
                        return k;
                }
        }
        *ret_id = id;
        return 0;
}

static int sysv_pair_setup(short flg, void **ret_state) {
        sysv_pair *st = malloc(sizeof(*st));
        int k;

        if (!st)
                return -ENOMEM;
        if ((k = sysv_new(1, 1, &st->id)) < 0) {
                free(st);
                return k;
        }
        st->flg = flg;
        *ret_state = st;
        return 0;
}

static int sysv_pair_plain_setup(const bench_env *env, void **ret_state) {
        (void)env;
        return sysv_pair_setup(0, ret_state);
}

static int sysv_pair_undo_setup(const bench_env *env, void **ret_state) {
        (void)env;
        return sysv_pair_setup(SEM_UNDO, ret_state);
}

static void sysv_pair_teardown(void *state) {
        sysv_pair *st = state;

        semctl(st->id, 0, IPC_RMID);
        free(st);
}

static int run_sysv_pair(void *state, unsigned n) {
        sysv_pair *st = state;
        struct sembuf down = { .sem_num = 0, .sem_op = -1, .sem_flg = st->flg };
        struct sembuf up = { .sem_num = 0, .sem_op = 1, .sem_flg = st->flg };

        for (unsigned i = 0; i < n; i++) {
                if (semop(st->id, &down, 1) < 0 || semop(st->id, &up, 1) < 0)
                        return -errno;
        }
        return 0;
}

typedef struct efd_pair {
        int fd;
} efd_pair;

static int efd_pair_setup(const bench_env *env, void **ret_state) {
        efd_pair *st = malloc(sizeof(*st));

        (void)env;
        if (!st)
                return -ENOMEM;
        st->fd = eventfd(1, EFD_CLOEXEC | EFD_SEMAPHORE);
        if (st->fd < 0) {
                int k = -errno;
                free(st);
                return k;
        }
        *ret_state = st;
        return 0;
}

static void efd_pair_teardown(void *state) {
        efd_pair *st = state;

        close(st->fd);
        free(st);
}

static int run_efd_pair(void *state, unsigned n) {
        int fd = ((efd_pair *)state)->fd;
        uint64_t v, one = 1;

        for (unsigned i = 0; i < n; i++) {
                if (read(fd, &v, sizeof(v)) != sizeof(v) || write(fd, &one, sizeof(one)) != sizeof(one))
                        return -errno;
        }
        return 0;
}

/* ==== (d) cross-process ping-pong ==== */

/* One mechanism's two semaphores (index 0: s1, this process posts it; 1: s2,
 * the partner posts it), seen from either process.  The partner gets a copy
 * of the state by fork() and fixes up its own side in child_init. */
typedef struct pp_state pp_state;

typedef struct pp_ops {
        int (*child_init)(pp_state *p, const int *fds); /* in the partner; may be NULL */
        int (*post)(pp_state *p, int which);
        int (*wait)(pp_state *p, int which);
        int (*wait_timeout)(pp_state *p, int which, int timeout_ms); /* the readiness handshake */
        void (*destroy)(pp_state *p);                                 /* the parent's objects */
} pp_ops;

struct pp_state {
        const pp_ops *ops;
        const bench_env *env; /* main's, valid for the whole run (and in the child) */
        pid_t child;
        int nfds, fds[2];     /* fds the partner keeps (eventfd) */
        /* ipcb */
        ipcb_client *c;
        ipcb_sem *s[2];
        char name[2][48];
        /* sem_t */
        sem_t *psem;
        /* SysV */
        int semid;
        short flg;
        unsigned since_reset;
};

static int pp_serve(void *arg, const int *fds) {
        pp_state *p = arg;

        if (p->ops->child_init && p->ops->child_init(p, fds) < 0)
                return -1;
        if (p->ops->post(p, 1) < 0) /* ready */
                return -1;
        for (;;)
                if (p->ops->wait(p, 0) < 0 || p->ops->post(p, 1) < 0)
                        return -1;
}

/* Start the partner once the mechanism's objects exist, and wait until it has
 * said it is ready (it posts s2 once). */
static int pp_start(pp_state *p, void **ret_state) {
        int k = bench_fork(p->env, p->fds, (unsigned)p->nfds, pp_serve, p, &p->child);

        if (k == 0 && (k = p->ops->wait_timeout(p, 1, READY_TIMEOUT_MS)) < 0) {
                fprintf(stderr, "ipcb_bench: ping-pong partner not ready: %s\n", strerror(-k));
                bench_fork_stop(p->child);
        }
        if (k < 0) {
                p->ops->destroy(p);
                free(p);
                return k;
        }
        *ret_state = p;
        return 0;
}

static pp_state *pp_new(const bench_env *env, const pp_ops *ops) {
        pp_state *p = calloc(1, sizeof(*p));

        if (p) {
                p->ops = ops;
                p->env = env;
                p->semid = -1;
                p->fds[0] = p->fds[1] = -1;
        }
        return p;
}

static void pp_teardown(void *state) {
        pp_state *p = state;

        bench_fork_stop(p->child);
        p->ops->destroy(p);
        free(p);
}

static int run_pp(void *state, unsigned n) {
        pp_state *p = state;
        int k;

        for (unsigned i = 0; i < n; i++)
                if ((k = p->ops->post(p, 0)) < 0 || (k = p->ops->wait(p, 1)) < 0)
                        return k;
        return 0;
}

/* ---- ipcb_sem ---- */

static int ipp_child_init(pp_state *p, const int *fds) {
        int k;

        (void)fds;
        /* The parent's client is not ours to use (ipcbroker.h, fork): connect. */
        if ((k = ipcb_connect(p->env->socket_path, &p->c)) < 0)
                return k;
        for (int i = 0; i < 2; i++)
                if ((k = ipcb_sem_open(p->c, p->name[i], 0, &p->s[i])) < 0)
                        return k;
        return 0;
}

static int ipp_post(pp_state *p, int which) {
        return ipcb_sem_release(p->s[which], 1);
}

static int ipp_wait(pp_state *p, int which) {
        return ipcb_sem_acquire(p->s[which]);
}

static int ipp_wait_timeout(pp_state *p, int which, int timeout_ms) {
        return ipcb_sem_try_acquire(p->s[which], timeout_ms);
}

static void ipp_destroy(pp_state *p) {
        for (int i = 0; i < 2; i++)
                ipcb_sem_close(p->s[i]);
        ipcb_disconnect(p->c);
}

static const pp_ops ipp_ops = { ipp_child_init, ipp_post, ipp_wait, ipp_wait_timeout, ipp_destroy };

static int ipp_setup(const bench_env *env, void **ret_state) {
        pp_state *p = pp_new(env, &ipp_ops);
        int k;

        if (!p)
                return -ENOMEM;
        if ((k = ipcb_connect(env->socket_path, &p->c)) < 0)
                goto fail;
        for (int i = 0; i < 2; i++) {
                sem_name(p->name[i], sizeof(p->name[i]), i ? "pp.s2" : "pp.s1");
                if ((k = ipcb_sem_create(p->c, p->name[i], 0, NULL, &p->s[i])) < 0)
                        goto fail;
        }
        return pp_start(p, ret_state);
fail:
        ipp_destroy(p);
        free(p);
        return k;
}

/* ---- sem_t, pshared=1 ---- */

static int psp_post(pp_state *p, int which) {
        return sem_post(&p->psem[which]) < 0 ? -errno : 0;
}

static int psp_wait(pp_state *p, int which) {
        while (sem_wait(&p->psem[which]) < 0)
                if (errno != EINTR)
                        return -errno;
        return 0;
}

static int psp_wait_timeout(pp_state *p, int which, int timeout_ms) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += timeout_ms / 1000;
        while (sem_clockwait(&p->psem[which], CLOCK_MONOTONIC, &ts) < 0)
                if (errno != EINTR)
                        return -errno;
        return 0;
}

static void psp_destroy(pp_state *p) {
        if (p->psem) {
                sem_destroy(&p->psem[0]);
                sem_destroy(&p->psem[1]);
                munmap(p->psem, PAGE);
        }
}

static const pp_ops psp_ops = { NULL, psp_post, psp_wait, psp_wait_timeout, psp_destroy };

static int psp_setup(const bench_env *env, void **ret_state) {
        pp_state *p = pp_new(env, &psp_ops);
        int k;

        if (!p)
                return -ENOMEM;
        if (!(p->psem = shared_page())) {
                k = -errno;
                free(p);
                return k;
        }
        if (sem_init(&p->psem[0], 1, 0) < 0 || sem_init(&p->psem[1], 1, 0) < 0) {
                k = -errno;
                munmap(p->psem, PAGE);
                free(p);
                return k;
        }
        return pp_start(p, ret_state);
}

/* ---- System V ---- */

static int svp_op(pp_state *p, int which, short op, const struct timespec *timeout) {
        struct sembuf sb = { .sem_num = (unsigned short)which, .sem_op = op, .sem_flg = p->flg };

        while (semtimedop(p->semid, &sb, 1, timeout) < 0)
                if (errno != EINTR)
                        return -errno;
        return 0;
}

static int svp_post(pp_state *p, int which) {
        return svp_op(p, which, 1, NULL);
}

static int svp_wait(pp_state *p, int which) {
        return svp_op(p, which, -1, NULL);
}

static int svp_wait_timeout(pp_state *p, int which, int timeout_ms) {
        struct timespec ts = { .tv_sec = timeout_ms / 1000 };
        return svp_op(p, which, -1, &ts);
}

static void svp_destroy(pp_state *p) {
        if (p->semid >= 0)
                semctl(p->semid, 0, IPC_RMID);
}

static const pp_ops svp_ops = { NULL, svp_post, svp_wait, svp_wait_timeout, svp_destroy };

static int svp_setup(const bench_env *env, short flg, void **ret_state) {
        pp_state *p = pp_new(env, &svp_ops);
        int k;

        if (!p)
                return -ENOMEM;
        if ((k = sysv_new(2, 0, &p->semid)) < 0) {
                free(p);
                return k;
        }
        p->flg = flg;
        return pp_start(p, ret_state);
}

static int svp_plain_setup(const bench_env *env, void **ret_state) {
        return svp_setup(env, 0, ret_state);
}

static int svp_undo_setup(const bench_env *env, void **ret_state) {
        return svp_setup(env, SEM_UNDO, ret_state);
}

/* Between two round trips both counts are 0 and the partner waits for s1:
 * setting them to 0 again changes nothing but clears every process's
 * SEM_UNDO adjustment on them (semctl(2), SETVAL). */
static int run_svp_undo(void *state, unsigned n) {
        pp_state *p = state;
        union semun zero = { .val = 0 };
        int k;

        while (n > 0) {
                unsigned chunk = n < SYSV_UNDO_RESET ? n : SYSV_UNDO_RESET;
                if (p->since_reset + chunk > SYSV_UNDO_RESET) {
                        if (semctl(p->semid, 0, SETVAL, zero) < 0 || semctl(p->semid, 1, SETVAL, zero) < 0)
                                return -errno;
                        p->since_reset = 0;
                }
                if ((k = run_pp(p, chunk)) < 0)
                        return k;
                p->since_reset += chunk;
                n -= chunk;
        }
        return 0;
}

/* ---- eventfd(EFD_SEMAPHORE) ---- */

static int efp_child_init(pp_state *p, const int *fds) {
        p->fds[0] = fds[0];
        p->fds[1] = fds[1];
        return 0;
}

static int efp_post(pp_state *p, int which) {
        uint64_t one = 1;
        return write(p->fds[which], &one, sizeof(one)) == sizeof(one) ? 0 : -errno;
}

static int efp_wait(pp_state *p, int which) {
        uint64_t v;
        ssize_t n;

        while ((n = read(p->fds[which], &v, sizeof(v))) < 0 && errno == EINTR)
                ;
        return n == sizeof(v) ? 0 : n < 0 ? -errno : -EIO;
}

static int efp_wait_timeout(pp_state *p, int which, int timeout_ms) {
        struct pollfd pfd = { .fd = p->fds[which], .events = POLLIN };
        int r = poll(&pfd, 1, timeout_ms);

        if (r < 0)
                return -errno;
        return r == 0 ? -ETIMEDOUT : efp_wait(p, which);
}

static void efp_destroy(pp_state *p) {
        for (int i = 0; i < 2; i++)
                if (p->fds[i] >= 0)
                        close(p->fds[i]);
}

/* As an event loop waits: poll(2) until readable, then read. */
static int efp_wait_poll(pp_state *p, int which) {
        return efp_wait_timeout(p, which, -1);
}

static const pp_ops efp_ops = { efp_child_init, efp_post, efp_wait, efp_wait_timeout, efp_destroy };
static const pp_ops efp_poll_ops = { efp_child_init, efp_post, efp_wait_poll, efp_wait_timeout,
                                     efp_destroy };

static int efp_start(const bench_env *env, const pp_ops *ops, void **ret_state) {
        pp_state *p = pp_new(env, ops);
        int k;

        if (!p)
                return -ENOMEM;
        p->nfds = 2;
        for (int i = 0; i < 2; i++) {
                if ((p->fds[i] = eventfd(0, EFD_CLOEXEC | EFD_SEMAPHORE)) < 0) {
                        k = -errno;
                        efp_destroy(p);
                        free(p);
                        return k;
                }
        }
        return pp_start(p, ret_state);
}

static int efp_setup(const bench_env *env, void **ret_state) {
        return efp_start(env, &efp_ops, ret_state);
}

static int efp_poll_setup(const bench_env *env, void **ret_state) {
        return efp_start(env, &efp_poll_ops, ret_state);
}

/* ==== (e) uncontended segment lock+unlock ==== */

typedef struct ilock {
        ipcb_client *c;
        ipcb_shm *s;
} ilock;

static int ilock_setup(const bench_env *env, void **ret_state) {
        ilock *st = calloc(1, sizeof(*st));
        char name[48];
        int k;

        if (!st)
                return -ENOMEM;
        sem_name(name, sizeof(name), "lock");
        if ((k = ipcb_connect(env->socket_path, &st->c)) < 0 ||
            (k = ipcb_shm_create(st->c, name, PAGE, NULL, &st->s)) < 0 ||
            /* the handle's first lock fetches the lock page: not timed */
            (k = ipcb_shm_lock(st->s)) < 0 || (k = ipcb_shm_unlock(st->s)) < 0) {
                ipcb_shm_close(st->s);
                ipcb_disconnect(st->c);
                free(st);
                return k;
        }
        *ret_state = st;
        return 0;
}

static void ilock_teardown(void *state) {
        ilock *st = state;

        ipcb_shm_close(st->s);
        ipcb_disconnect(st->c);
        free(st);
}

static int run_ilock(void *state, unsigned n) {
        ipcb_shm *s = ((ilock *)state)->s;
        int k;

        for (unsigned i = 0; i < n; i++) {
                if ((k = ipcb_shm_lock(s)) < 0 || (k = ipcb_shm_unlock(s)) < 0)
                        return k;
        }
        return 0;
}

static int mutex_setup(bool robust, void **ret_state) {
        pthread_mutexattr_t a;
        pthread_mutex_t *m = shared_page();
        int k;

        if (!m)
                return -errno;
        pthread_mutexattr_init(&a);
        k = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
        if (k == 0 && robust)
                k = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
        if (k == 0)
                k = pthread_mutex_init(m, &a);
        pthread_mutexattr_destroy(&a);
        if (k != 0) {
                munmap(m, PAGE);
                return -k;
        }
        *ret_state = m;
        return 0;
}

static int mutex_robust_setup(const bench_env *env, void **ret_state) {
        (void)env;
        return mutex_setup(true, ret_state);
}

static int mutex_pshared_setup(const bench_env *env, void **ret_state) {
        (void)env;
        return mutex_setup(false, ret_state);
}

static void mutex_teardown(void *state) {
        pthread_mutex_destroy(state);
        munmap(state, PAGE);
}

static int run_mutex(void *state, unsigned n) {
        pthread_mutex_t *m = state;
        int k;

        for (unsigned i = 0; i < n; i++) {
                if ((k = pthread_mutex_lock(m)) != 0 || (k = pthread_mutex_unlock(m)) != 0)
                        return -k;
        }
        return 0;
}

const bench_case sem_cases[] = {
        { "floor.sem_t.pair", "(c) sem pair",
          "POSIX unnamed sem_t pshared=1 in a MAP_SHARED page: sem_wait+sem_post",
          psem_pair_setup, run_psem_pair, psem_pair_teardown },
        { "sem.pair", "(c) sem pair",
          "ipcb_sem plain handle: ipcb_sem_acquire+ipcb_sem_release(1)",
          isem_pair_plain_setup, run_isem_pair, isem_pair_teardown },
        { "sem.pair.undo", "(c) sem pair",
          "ipcb_sem undo handle (IPCB_SEM_UNDO): ipcb_sem_acquire+ipcb_sem_release(1)",
          isem_pair_undo_setup, run_isem_pair, isem_pair_teardown },
        { "peer.sysv.pair", "(c) sem pair",
          "(ref) SysV semop(-1)+semop(+1), no SEM_UNDO",
          sysv_pair_plain_setup, run_sysv_pair, sysv_pair_teardown },
        { "peer.sysv.pair.undo", "(c) sem pair",
          "(ref) SysV semop(-1)+semop(+1), SEM_UNDO",
          sysv_pair_undo_setup, run_sysv_pair, sysv_pair_teardown },
        { "peer.eventfd.pair", "(c) sem pair",
          "(ref) eventfd(EFD_SEMAPHORE): read+write",
          efd_pair_setup, run_efd_pair, efd_pair_teardown },
        { "floor.sem_t.pingpong", "(d) sem ping-pong",
          "POSIX unnamed sem_t pshared=1 in a MAP_SHARED page, forked partner: sem_post/sem_wait, RT = 2 handoffs",
          psp_setup, run_pp, pp_teardown },
        { "sem.pingpong", "(d) sem ping-pong",
          "ipcb_sem plain handles, partner connected itself: release/acquire, RT = 2 handoffs",
          ipp_setup, run_pp, pp_teardown },
        { "peer.sysv.pingpong", "(d) sem ping-pong",
          "(ref) SysV semop +1/-1, no SEM_UNDO, RT = 2 handoffs",
          svp_plain_setup, run_pp, pp_teardown },
        { "peer.sysv.pingpong.undo", "(d) sem ping-pong",
          "(ref) SysV semop +1/-1, SEM_UNDO (adjustments cleared by SETVAL every 30000 RT), RT = 2 handoffs",
          svp_undo_setup, run_svp_undo, pp_teardown },
        { "peer.eventfd.pingpong", "(d) sem ping-pong",
          "(ref) eventfd(EFD_SEMAPHORE) pair: write/read, RT = 2 handoffs",
          efp_setup, run_pp, pp_teardown },
        { "peer.eventfd.pingpong.poll", "(d) sem ping-pong",
          "(ref) eventfd(EFD_SEMAPHORE) pair, each side waiting as a loop does: poll, then read; RT = 2 handoffs",
          efp_poll_setup, run_pp, pp_teardown },
        { "floor.mutex.robust", "(e) lock pair",
          "pthread mutex PROCESS_SHARED+ROBUST in a MAP_SHARED page: lock+unlock",
          mutex_robust_setup, run_mutex, mutex_teardown },
        { "peer.mutex.pshared", "(e) lock pair",
          "(ref) pthread mutex PROCESS_SHARED, not robust: lock+unlock",
          mutex_pshared_setup, run_mutex, mutex_teardown },
        { "lock.pair", "(e) lock pair",
          "ipcb_shm_lock+ipcb_shm_unlock, 4 KiB segment, lock page already fetched",
          ilock_setup, run_ilock, ilock_teardown },
        {},
};

const bench_ratio sem_ratios[] = {
        { "(c) acquire+release, plain handle: ipcb_sem / sem_t", "sem.pair", "floor.sem_t.pair", 1.2 },
        { "(c) acquire+release, undo handle: ipcb_sem / sem_t", "sem.pair.undo", "floor.sem_t.pair", 2.0 },
        { "(d) ping-pong RT: ipcb_sem / sem_t", "sem.pingpong", "floor.sem_t.pingpong", 1.1 },
        { "(e) lock+unlock: ipcb_shm_lock / robust pthread mutex", "lock.pair", "floor.mutex.robust", 1.2 },
        { "(ref) acquire+release: undo / plain ipcb_sem", "sem.pair.undo", "sem.pair", 0 },
        { "(ref) acquire+release: SysV SEM_UNDO / sem_t", "peer.sysv.pair.undo", "floor.sem_t.pair", 0 },
        { "(ref) acquire+release: SysV SEM_UNDO / bare syscall", "peer.sysv.pair.undo", "ref.syscall", 0 },
        { "(ref) ping-pong RT: SysV SEM_UNDO / sem_t", "peer.sysv.pingpong.undo", "floor.sem_t.pingpong", 0 },
        { "(ref) ping-pong RT: eventfd / sem_t", "peer.eventfd.pingpong", "floor.sem_t.pingpong", 0 },
        { "(ref) lock+unlock: robust / plain process-shared mutex", "floor.mutex.robust",
          "peer.mutex.pshared", 0 },
        {},
};
