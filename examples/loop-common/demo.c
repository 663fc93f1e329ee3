/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* demo.c: the consumer's logic for the loop-* examples (demo.h). */
#include "demo.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static struct timespec t_start;

static void fail(demo *d, const char *what, int r) {
        fprintf(stderr, "consumer: %s: %s\n", what, ipcb_strerror(r));
        d->status = r;
        d->done = true;
}

/* 4. The producer unlinked the segment: we are done. */
static void on_unlinked(ipcb_client *c, const ipcb_watch_event *ev, void *userdata) {
        demo *d = userdata;

        (void)c;
        if (ev->event == IPCB_WATCH_OVERFLOW)
                return; /* (only one name is watched: nothing to re-read) */
        printf("consumer: '%s' was unlinked; stopping\n", ev->name);
        d->done = true;
}

/* 3b. The semaphore's descriptor is readable: a release may have made a
 * token available (the loop calls this). */
void demo_sem_ready(demo *d) {
        int r;

        if (d->got_token || d->done)
                return;
        r = ipcb_sem_poll_acquire(d->sem);
        if (r == -EAGAIN)
                return; /* not for us after all: keep waiting */
        if (r < 0)
                return fail(d, "taking a token", r);
        d->got_token = true;
        printf("consumer: took a token from '%s'\n", DEMO_SEM);
        r = ipcb_watch_add_async(d->c, IPCB_KIND_SHM, DEMO_SHM, 0, IPCB_WATCH_UNLINKED, on_unlinked,
                                 d, NULL, NULL);
        if (r < 0)
                fail(d, "watching " DEMO_SHM, r);
}

/* 3. The semaphore is there (with no token yet): watch its descriptor. */
static void on_sem(ipcb_client *c, int status, ipcb_sem *s, void *userdata) {
        demo *d = userdata;

        (void)c;
        if (status < 0)
                return fail(d, "waiting for " DEMO_SEM, status);
        d->sem = s;
        d->sem_fd = ipcb_sem_get_fd(s);
        if (d->sem_fd < 0)
                return fail(d, "polling " DEMO_SEM, d->sem_fd);
        demo_sem_ready(d); /* the token may be there already */
}

/* 2. The segment is there: read it, then wait for the semaphore. */
static void on_shm(ipcb_client *c, int status, ipcb_shm *s, void *userdata) {
        demo *d = userdata;
        int r;

        if (status < 0)
                return fail(d, "waiting for " DEMO_SHM, status);
        d->shm = s;
        printf("consumer: '%s' says \"%s\"\n", DEMO_SHM, (const char *)ipcb_shm_data(s));
        r = ipcb_sem_open_wait_async(c, DEMO_SEM, 0, -1, on_sem, d, NULL);
        if (r < 0)
                fail(d, "waiting for " DEMO_SEM, r);
}

/* 1. Start: the producer may not be there yet. */
int demo_start(demo *d) {
        int r;

        *d = (demo){ .sem_fd = -1 };
        clock_gettime(CLOCK_MONOTONIC, &t_start);
        r = ipcb_connect(NULL, &d->c);
        if (r < 0) {
                fprintf(stderr, "consumer: connect: %s\n", ipcb_strerror(r));
                return r;
        }
        r = ipcb_shm_open_wait_async(d->c, DEMO_SHM, IPCB_READ_ONLY, -1, on_shm, d, NULL);
        if (r < 0)
                fprintf(stderr, "consumer: %s\n", ipcb_strerror(r));
        return r;
}

int demo_finish(demo *d, const char *loop_name) {
        struct rusage ru;
        struct timespec now;
        double cpu_ms, wall_ms;

        getrusage(RUSAGE_SELF, &ru);
        clock_gettime(CLOCK_MONOTONIC, &now);
        cpu_ms = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
                 (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
        wall_ms = (double)(now.tv_sec - t_start.tv_sec) * 1e3 +
                  (double)(now.tv_nsec - t_start.tv_nsec) / 1e6;
        printf("consumer (%s): %.0f ms waited, %.1f ms of CPU\n", loop_name, wall_ms, cpu_ms);
        ipcb_shm_close(d->shm);
        ipcb_sem_close(d->sem);
        ipcb_disconnect(d->c);
        if (d->status)
                return 1;
        if (!d->shm || !d->sem || !d->got_token) {
                fprintf(stderr, "consumer: stopped before it saw everything\n");
                return 1;
        }
        /* Waiting ~1.5 s for the producer must cost next to nothing: a
         * busy loop would burn the whole time. */
        if (cpu_ms > 100.0 || cpu_ms > wall_ms / 10) {
                fprintf(stderr, "consumer: %.1f ms of CPU while waiting: polling?\n", cpu_ms);
                return 1;
        }
        return 0;
}
