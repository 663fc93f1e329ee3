/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* prober.c: the latency prober; see prober.h. */
#include "prober.h"

#include "ipcbroker.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

long long prober_now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *prober_run(void *arg) {
        prober *pr = arg;
        ipcb_client *c;
        ipcb_shm *s;

        if (ipcb_connect(pr->sock, &c) < 0) {
                pr->errors++;
                return NULL;
        }
        while (!atomic_load(&pr->stop) && pr->n < sizeof(pr->lat_us) / sizeof(pr->lat_us[0])) {
                long long t0 = prober_now_us();
                int k = ipcb_shm_create(c, "probe", 4096, NULL, &s);
                if (k == 0)
                        ipcb_shm_close(s);
                else
                        pr->errors++;
                pr->lat_us[pr->n++] = prober_now_us() - t0;
                usleep(1000);
        }
        ipcb_disconnect(c);
        return NULL;
}

void prober_start(prober *pr, const char *sock) {
        memset(pr, 0, sizeof(*pr));
        pr->sock = sock;
        cr_assert_eq(pthread_create(&pr->thread, NULL, prober_run, pr), 0);
}

static int cmp_ll(const void *a, const void *b) {
        long long x = *(const long long *)a, y = *(const long long *)b;
        return x < y ? -1 : x > y;
}

long long prober_stop(prober *pr, const char *tag, const char *what, void (*before_join)(void)) {
        atomic_store(&pr->stop, true);
        if (before_join)
                before_join();
        pthread_join(pr->thread, NULL);
        cr_assert_gt(pr->n, 0, "the prober made no request");
        qsort(pr->lat_us, pr->n, sizeof(pr->lat_us[0]), cmp_ll);
        long long p50 = pr->lat_us[pr->n / 2], p99 = pr->lat_us[pr->n * 99 / 100],
                  max = pr->lat_us[pr->n - 1];
        fprintf(stderr, "[%s] %-40s well-behaved client: %u requests, p50 %lld us, p99 %lld us, "
                        "max %lld us, %d errors\n", tag, what, pr->n, p50, p99, max, pr->errors);
        cr_assert_eq(pr->errors, 0, "%s: the well-behaved client got %d errors", what, pr->errors);
        return max;
}
