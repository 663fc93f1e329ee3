/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* reaper.c: a small pool of threads that close client fds; see reaper.h.
 * Jobs go in a list under a mutex; a finished job goes back to the loop
 * through a uv_async_t, where its account is credited. */
#include "reaper.h"

#include "quota.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define REAPER_THREADS 4

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
        int fd;
        reaper_account *account;
} job;

static pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static job *todo_head, *todo_tail, *done_list;
static bool running, stopping;
static unsigned pending;
static uv_async_t async;
static reaper_account *orphans; /* loop thread only */

static void orphan_free(reaper_account *a) {
        if (a->prev)
                a->prev->next = a->next;
        else
                orphans = a->next;
        if (a->next)
                a->next->prev = a->prev;
        free(a);
}

static void *worker(void *arg) {
        (void)arg;
        pthread_mutex_lock(&mtx);
        for (;;) {
                while (!todo_head && !stopping)
                        pthread_cond_wait(&cond, &mtx);
                if (!todo_head)
                        break;
                job *j = todo_head;
                todo_head = j->next;
                if (!todo_head)
                        todo_tail = NULL;
                pthread_mutex_unlock(&mtx);
                close(j->fd);
                pthread_mutex_lock(&mtx);
                if (stopping) {
                        free(j);
                        continue;
                }
                j->next = done_list;
                done_list = j;
                uv_async_send(&async);
        }
        pthread_mutex_unlock(&mtx);
        return NULL;
}

/* Credit finished jobs (loop thread). */
static void credit(job *list) {
        while (list) {
                job *j = list;
                reaper_account *a = j->account;
                list = j->next;
                pending--;
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
        pthread_attr_t attr;
        pthread_t t;
        int k, started = 0;

        if ((k = uv_async_init(loop, &async, on_done)) < 0)
                return k;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 64 * 1024);
        for (int i = 0; i < REAPER_THREADS; i++)
                if (pthread_create(&t, &attr, worker, NULL) == 0)
                        started++;
        pthread_attr_destroy(&attr);
        if (started == 0) {
                uv_close((uv_handle_t *)&async, NULL);
                return -EAGAIN;
        }
        running = true;
        return 0;
}

void reaper_close(int fd, reaper_account *a) {
        job *j;

        if (fd < 0)
                return;
        if (!running || !(j = malloc(sizeof(*j)))) {
                close(fd);
                return;
        }
        *j = (job){ .fd = fd, .account = a };
        pending++;
        if (a) {
                a->pending++;
                (void)quota_charge(a->uid, QUOTA_REAPING, 1); /* counted, never refused */
        }
        pthread_mutex_lock(&mtx);
        if (todo_tail)
                todo_tail->next = j;
        else
                todo_head = j;
        todo_tail = j;
        pthread_cond_signal(&cond);
        pthread_mutex_unlock(&mtx);
}

void reaper_discard(int fd) {
        reaper_close(fd, NULL);
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
        pthread_mutex_unlock(&mtx);
        credit(list);
        /* Closes still running or queued will not be credited: free the
         * accounts of connections already gone that wait for them. */
        while (orphans)
                orphan_free(orphans);
        uv_close((uv_handle_t *)&async, NULL);
}
