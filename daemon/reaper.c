/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* reaper.c: a pool of threads that close fds off the loop; see reaper.h.
 * Jobs wait in per-uid lanes under a mutex, a uid's closes and its runs in
 * lanes of their own; the daemon's own files have a queue and a thread of
 * their own.  A finished job goes back to the loop through a uv_async_t,
 * where its account is credited. */
#include "reaper.h"

#include "mainloop.h"
#include "quota.h"
#include "sock.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REAPER_THREADS 4      /* started at init and kept */
#define REAPER_THREADS_MAX 64 /* at most, while closes are stuck */
#define REAPER_PER_UID 2      /* closes of one uid running at once */
#define REAPER_IDLE_S 10      /* a worker beyond REAPER_THREADS idle this long exits */
#define REAPER_STUCK_MS 10    /* no close started for this long while closes wait: add workers */
#define REAPER_SPAWN 4        /* workers added at once */

struct reaper_account {
        unsigned pending;
        uid_t uid;
        void (*done)(void *userdata); /* NULL once released */
        void *userdata;
        /* Released with closes still pending: on the orphans list, freed
         * by the last credit or, at the latest, by reaper_fini. */
        struct reaper_account *prev, *next;
};

typedef struct job {
        struct job *next;
        int fd;                     /* to close (its queue read first: drain), or -1: */
        bool drain;
        void *mem;                  /* or memory to free (the daemon's own thread) */
        void (*work)(void *), (*done)(void *); /* a run (reaper_run) */
        void *arg;
        reaper_account *account;
} job;

/* One uid's closes, or its runs: waiting (head..tail) and running
 * (busy).  On the lanes list, in the order the lanes take turns, while it
 * has either. */
typedef struct lane {
        struct lane *next;
        uid_t uid;
        bool runs;
        unsigned busy;
        job *head, *tail;
} lane;

/* Under mtx. */
static pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t own_cond = PTHREAD_COND_INITIALIZER; /* own_head, for own_worker */
static job *own_head, *own_tail, *done_list;
static lane *lanes, *lanes_tail;
static unsigned nthreads, idle, wakes;
static uint64_t started; /* closes taken by workers, ever */
static bool stopping;

/* Loop thread only. */
static bool running;
static unsigned pending;
static uv_async_t async;
static uv_timer_t stuck_timer;
/* Sockets a spent turn could not read (reaper_close_socket). */
typedef struct later_sock {
        int fd;
        uid_t uid;
} later_sock;
static later_sock *later;
static unsigned nlater, later_head, later_cap;
static uv_idle_t later_idle;
static uint64_t started_seen; /* `started` when stuck_timer was armed */
static reaper_account *orphans;

static void orphan_free(reaper_account *a) {
        if (a->prev)
                a->prev->next = a->next;
        else
                orphans = a->next;
        if (a->next)
                a->next->prev = a->prev;
        free(a);
}

static void lane_unlink(lane *l, lane *prev) {
        if (prev)
                prev->next = l->next;
        else
                lanes = l->next;
        if (lanes_tail == l)
                lanes_tail = prev;
        l->next = NULL;
}

static void lane_append(lane *l) {
        if (lanes_tail)
                lanes_tail->next = l;
        else
                lanes = l;
        lanes_tail = l;
}

/* The next job a worker may run (*ret_lane: whose): the first lane in turn
 * with a job waiting and fewer than REAPER_PER_UID running, which goes to
 * the back. */
static job *take(lane **ret_lane) {
        lane *prev = NULL;
        job *j;

        *ret_lane = NULL;
        for (lane *l = lanes; l; prev = l, l = l->next) {
                if (!l->head || l->busy >= REAPER_PER_UID)
                        continue;
                j = l->head;
                if (!(l->head = j->next))
                        l->tail = NULL;
                l->busy++;
                lane_unlink(l, prev);
                lane_append(l);
                *ret_lane = l;
                return j;
        }
        return NULL;
}

/* Would take() find a job to run? */
static bool runnable_waiting(void) {
        for (lane *l = lanes; l; l = l->next)
                if (l->head && l->busy < REAPER_PER_UID)
                        return true;
        return false;
}

/* A close of l's has finished. */
static void lane_done(lane *l) {
        lane *prev = NULL;

        if (--l->busy > 0 || l->head)
                return;
        for (lane *q = lanes; q != l; q = q->next)
                prev = q;
        lane_unlink(l, prev);
        free(l);
}

/* Under mtx: a finished job, to be credited on the loop (or dropped once
 * the reaper stops). */
static void finished(job *j) {
        if (stopping) {
                free(j->arg);
                free(j);
                return;
        }
        j->next = done_list;
        done_list = j;
        uv_async_send(&async);
}

/* The daemon's own files, one at a time: their closes take CPU time but
 * wait on nobody, so this thread is never held by a client, however many
 * uids' closes hold the pool. */
static void *own_worker(void *arg) {
        (void)arg;
        pthread_mutex_lock(&mtx);
        for (;;) {
                job *j;
                while (!(j = own_head) && !stopping)
                        pthread_cond_wait(&own_cond, &mtx);
                if (!j)
                        break;
                if (!(own_head = j->next))
                        own_tail = NULL;
                pthread_mutex_unlock(&mtx);
                if (j->mem)
                        free(j->mem);
                else
                        close(j->fd);
                pthread_mutex_lock(&mtx);
                finished(j);
        }
        pthread_mutex_unlock(&mtx);
        return NULL;
}

static void *worker(void *arg) {
        struct timespec until;
        bool timed_out = false;
        lane *l;
        job *j;

        (void)arg;
        pthread_mutex_lock(&mtx);
        for (;;) {
                while (!(j = take(&l)) && !stopping) {
                        if (timed_out && nthreads > REAPER_THREADS)
                                goto out;
                        idle++;
                        if (nthreads > REAPER_THREADS) {
                                clock_gettime(CLOCK_REALTIME, &until);
                                until.tv_sec += REAPER_IDLE_S;
                                timed_out = pthread_cond_timedwait(&cond, &mtx, &until) == ETIMEDOUT;
                        } else
                                pthread_cond_wait(&cond, &mtx);
                        if (wakes > 0) /* woken for a job: the waker took us off idle */
                                wakes--;
                        else
                                idle--;
                }
                if (!j)
                        break;
                started++;
                timed_out = false;
                pthread_mutex_unlock(&mtx);
                if (j->work)
                        j->work(j->arg);
                else {
                        if (j->drain)
                                ipcb__sock_discard_queue(j->fd);
                        ipcb__sock_close_reset(j->fd); /* not held for a linger time */
                }
                pthread_mutex_lock(&mtx);
                lane_done(l);
                finished(j);
        }
out:
        nthreads--;
        pthread_mutex_unlock(&mtx);
        return NULL;
}

static bool start_thread(void *(*fn)(void *)) {
        pthread_attr_t attr;
        pthread_t t;
        bool ok;

        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 64 * 1024);
        ok = pthread_create(&t, &attr, fn, NULL) == 0;
        pthread_attr_destroy(&attr);
        return ok;
}

/* Under mtx: one more worker; false if none can be had. */
static bool spawn(void) {
        bool ok = start_thread(worker);

        nthreads += ok;
        return ok;
}

/* Credit finished jobs (loop thread). */
static void credit(job *list) {
        while (list) {
                job *j = list;
                reaper_account *a = j->account;
                list = j->next;
                pending--;
                if (j->done)
                        j->done(j->arg);
                free(j->arg);
                if (a) {
                        a->pending--;
                        quota_uncharge(a->uid, QUOTA_REAPING, 1);
                        if (a->done)
                                a->done(a->userdata);
                        else if (a->pending == 0)
                                orphan_free(a);
                }
                free(j);
        }
}

static void on_done(uv_async_t *h) {
        job *list;

        (void)h;
        pthread_mutex_lock(&mtx);
        list = done_list;
        done_list = NULL;
        pthread_mutex_unlock(&mtx);
        credit(list);
}

reaper_account *reaper_account_new(uid_t uid, void (*done)(void *userdata), void *userdata) {
        reaper_account *a = calloc(1, sizeof(*a));

        if (a)
                *a = (reaper_account){ .uid = uid, .done = done, .userdata = userdata };
        return a;
}

unsigned reaper_account_pending(const reaper_account *a) {
        return a ? a->pending : 0;
}

void reaper_account_release(reaper_account *a) {
        if (!a)
                return;
        a->done = NULL;
        /* After reaper_fini no close is credited any more (a worker that
         * finishes one then drops the job, not touching its account). */
        if (a->pending == 0 || !running) {
                free(a);
                return;
        }
        a->prev = NULL;
        a->next = orphans;
        if (orphans)
                orphans->prev = a;
        orphans = a;
}

int reaper_init(uv_loop_t *loop) {
        int k;

        if ((k = uv_async_init(loop, &async, on_done)) < 0)
                return k;
        uv_timer_init(loop, &stuck_timer); /* cannot fail */
        uv_idle_init(loop, &later_idle);
        pthread_mutex_lock(&mtx);
        for (int i = 0; i < REAPER_THREADS; i++)
                (void)spawn();
        k = nthreads > 0 && start_thread(own_worker) ? 0 : -EAGAIN;
        pthread_mutex_unlock(&mtx);
        if (k < 0) {
                uv_close((uv_handle_t *)&async, NULL);
                uv_close((uv_handle_t *)&stuck_timer, NULL);
                uv_close((uv_handle_t *)&later_idle, NULL);
                return k;
        }
        running = true;
        return 0;
}

/* Closes waited REAPER_STUCK_MS for a worker: if none started meanwhile,
 * every worker is in a close that may never end, and more are added (a
 * burst of quick closes only keeps the workers busy: none are added). */
static void on_stuck(uv_timer_t *t) {
        bool again;

        pthread_mutex_lock(&mtx);
        if (started == started_seen && idle == 0)
                for (int i = 0; i < REAPER_SPAWN && nthreads < REAPER_THREADS_MAX; i++)
                        (void)spawn();
        again = !stopping && idle == 0 && nthreads < REAPER_THREADS_MAX && runnable_waiting();
        started_seen = started;
        pthread_mutex_unlock(&mtx);
        if (again)
                uv_timer_start(t, on_stuck, REAPER_STUCK_MS, 0);
}

/* j (its fd or its work) run here, now: no worker can be had. */
static void run_here(job *j) {
        if (j->mem) {
                free(j->mem);
                return;
        }
        if (j->work) {
                j->work(j->arg);
                if (j->done)
                        j->done(j->arg);
                free(j->arg);
        } else {
                if (j->drain)
                        ipcb__sock_discard_queue(j->fd);
                close(j->fd);
        }
}

/* own: the daemon's own file; else in uid's lane (of its closes, or of
 * its runs; a subordinate uid's is its owner's: quota_principal).  Takes j. */
static void enqueue(job *j, bool own, uid_t uid) {
        reaper_account *a = j->account;
        bool runs = j->work != NULL;
        lane *l = NULL;

        uid = quota_principal(uid);

        if (!running) {
                run_here(j);
                free(j);
                return;
        }
        pthread_mutex_lock(&mtx);
        if (own) {
                if (own_tail)
                        own_tail->next = j;
                else
                        own_head = j;
                own_tail = j;
                pthread_cond_signal(&own_cond);
                pthread_mutex_unlock(&mtx);
                pending++;
                return;
        }
        for (l = lanes; l && (l->uid != uid || l->runs != runs); l = l->next)
                ;
        if (!l && (l = calloc(1, sizeof(*l)))) {
                *l = (lane){ .uid = uid, .runs = runs };
                lane_append(l);
        }
        if (!l) {
                pthread_mutex_unlock(&mtx);
                run_here(j);
                free(j);
                return;
        }
        if (l->tail)
                l->tail->next = j;
        else
                l->head = j;
        l->tail = j;
        bool runnable = l->busy < REAPER_PER_UID;
        /* A worker for it: an idle one, or else the first busy one to be
         * done; if none is done for a while, some may never be (on_stuck). */
        bool watch = false;
        if (runnable && idle > 0) {
                idle--;
                wakes++;
                pthread_cond_signal(&cond);
        } else if (runnable && nthreads < REAPER_THREADS_MAX && !uv_is_active((uv_handle_t *)&stuck_timer)) {
                started_seen = started;
                watch = true;
        }
        pthread_mutex_unlock(&mtx);
        if (watch)
                uv_timer_start(&stuck_timer, on_stuck, REAPER_STUCK_MS, 0);
        pending++;
        if (a) {
                a->pending++;
                (void)quota_charge(a->uid, QUOTA_REAPING, 1); /* counted, never refused */
        }
}

static void close_fd(int fd, reaper_account *a, bool own, uid_t uid, bool drain) {
        job *j;

        if (fd < 0)
                return;
        if (!(j = malloc(sizeof(*j)))) {
                if (drain)
                        ipcb__sock_discard_queue(fd);
                close(fd);
                return;
        }
        *j = (job){ .fd = fd, .account = a, .drain = drain };
        enqueue(j, own, uid);
}

void reaper_close(int fd, reaper_account *a) {
        close_fd(fd, a, false, a ? a->uid : (uid_t)-1, false);
}


/* More datagrams than this left in a closing socket: its uid's lane
 * closes it (reading them takes the loop's time; a client that leaves so
 * many is served by its own lane). */
#define SOCKET_DRAIN_MAX 8

/* Sockets a spent turn could not read: read by later turns (on_later, an
 * idle handle, so that the loop does not sleep while some wait), at least
 * one a turn, so that they still go to the daemon's own thread rather than
 * to their uid's lane, which stuck closes may hold. */
static void close_socket_now(int fd, uid_t uid) {
        close_fd(fd, NULL, ipcb__sock_drained(fd, SOCKET_DRAIN_MAX), uid, false);
}

static void on_later(uv_idle_t *h) {
        (void)h;
        do {
                later_sock ls = later[later_head++];
                close_socket_now(ls.fd, ls.uid);
        } while (later_head < nlater && !mainloop_turn_spent());
        if (later_head == nlater) {
                nlater = later_head = 0;
                uv_idle_stop(&later_idle);
        }
}

static bool close_socket_later(int fd, uid_t uid) {
        if (nlater == later_cap) {
                unsigned cap = later_cap ? 2 * later_cap : 64;
                later_sock *l = realloc(later, cap * sizeof(*l));
                if (!l)
                        return false;
                later = l;
                later_cap = cap;
        }
        later[nlater++] = (later_sock){ .fd = fd, .uid = uid };
        uv_idle_start(&later_idle, on_later);
        return true;
}

void reaper_close_socket(int fd, uid_t uid) {
        /* Drained, its close waits on nothing: with the daemon's own files
         * (a Unix socket's release still costs the loop several µs).  The
         * reading is the loop's work: not once the turn has spent its
         * budget (thousands of clients that die with requests queued). */
        if (fd < 0)
                return;
        if (!mainloop_turn_spent())
                close_socket_now(fd, uid);
        else if (!running || !close_socket_later(fd, uid))
                close_fd(fd, NULL, false, uid, false);
}

void reaper_drain_socket(int fd, uid_t uid) {
        close_fd(fd, NULL, false, uid, true);
}

void reaper_close_own(int fd) {
        close_fd(fd, NULL, true, 0, false);
}

void reaper_free_own(void *mem) {
        job *j;

        if (!mem)
                return;
        if (!(j = malloc(sizeof(*j)))) {
                free(mem);
                return;
        }
        *j = (job){ .fd = -1, .mem = mem };
        enqueue(j, true, 0);
}

void reaper_run(reaper_account *a, void (*work)(void *), void (*done)(void *), void *arg) {
        job *j = malloc(sizeof(*j));

        if (!j) {
                job here = { .fd = -1, .work = work, .done = done, .arg = arg };
                run_here(&here);
                return;
        }
        *j = (job){ .fd = -1, .work = work, .done = done, .arg = arg, .account = a };
        enqueue(j, false, a ? a->uid : (uid_t)-1);
}

unsigned reaper_pending(void) {
        return pending;
}

void reaper_fini(void) {
        job *list;

        if (!running)
                return;
        running = false;
        pthread_mutex_lock(&mtx);
        stopping = true;
        list = done_list;
        done_list = NULL;
        pthread_cond_broadcast(&cond);
        pthread_cond_signal(&own_cond);
        pthread_mutex_unlock(&mtx);
        credit(list);
        /* Closes still running or queued will not be credited: free the
         * accounts of connections already gone that wait for them. */
        while (orphans)
                orphan_free(orphans);
        uv_close((uv_handle_t *)&async, NULL);
        uv_close((uv_handle_t *)&stuck_timer, NULL);
        while (later_head < nlater) /* (the reaper stopped: closed here) */
                close(later[later_head++].fd);
        free(later);
        later = NULL;
        nlater = later_head = later_cap = 0;
        uv_close((uv_handle_t *)&later_idle, NULL);
}
