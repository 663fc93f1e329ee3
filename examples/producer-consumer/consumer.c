/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* consumer.c: take the producer's items from the shared ring, in order,
 * until the end marker; check each one.  It may start before the producer:
 * it waits up to 10 s for the objects to appear.  It maps the ring
 * read-only: it never writes to it, only to the semaphores. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* F_SEAL_*, POSIX calls; the project's build defines it */
#endif
#include "ring.h"

#include <errno.h>
#include <ipcbroker.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int fail(const char *what, int err) {
        fprintf(stderr, "consumer: %s: %s\n", what, ipcb_strerror(err));
        return 1;
}

static void sleep_ms(long ms) {
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
}

/* The producer may not have created everything yet: retry -ENOENT. */
static int open_all(ipcb_client *c, ipcb_shm **seg, ipcb_sem **free_slots, ipcb_sem **items) {
        int k = -ENOENT;

        *seg = NULL, *free_slots = NULL, *items = NULL;
        for (int tries = 0; tries < 1000; tries++) {
                if (!*seg && (k = ipcb_shm_open(c, RING_NAME, IPCB_READ_ONLY, seg)) < 0 && k != -ENOENT)
                        return k;
                if (*seg && !*free_slots && (k = ipcb_sem_open(c, FREE_NAME, 0, free_slots)) < 0 &&
                    k != -ENOENT)
                        return k;
                if (*free_slots && (k = ipcb_sem_open(c, ITEMS_NAME, 0, items)) < 0 && k != -ENOENT)
                        return k;
                if (*items)
                        return 0;
                sleep_ms(10);
        }
        return k;
}

int main(int argc, char **argv) {
        unsigned long want = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000, n = 0;
        ipcb_client *c;
        ipcb_shm *seg;
        ipcb_sem *free_slots, *items;
        const struct ring *ring;
        uint64_t sum = 0, expect = 0;
        int k;

        if ((k = ipcb_connect(NULL, &c)) < 0)
                return fail("connect", k);
        if ((k = open_all(c, &seg, &free_slots, &items)) < 0)
                return fail("open the ring and its semaphores", k);
        ring = ipcb_shm_data(seg);
        for (;;) {
                struct item it;
                char text[sizeof(it.text)];

                if ((k = ipcb_sem_try_acquire(items, 30000)) < 0)
                        return fail("wait for an item", k);
                it = ring->slot[n % SLOTS];
                if ((k = ipcb_sem_release(free_slots, 1)) < 0)
                        return fail("release a slot", k);
                snprintf(text, sizeof(text), "item %lu", n);
                if (it.seq != n || it.value != (uint64_t)n * n || strcmp(it.text, text) != 0) {
                        fprintf(stderr, "consumer: item %lu is wrong: seq %llu, text '%.*s'\n", n,
                                (unsigned long long)it.seq, (int)sizeof(it.text), it.text);
                        return 1;
                }
                if (it.last)
                        break;
                sum += it.value;
                expect += (uint64_t)n * n;
                n++;
        }
        if (n != want || sum != expect) {
                fprintf(stderr, "consumer: %lu items received, %lu expected\n", n, want);
                return 1;
        }
        printf("consumer: %lu items received in order, sum of values %llu\n", n,
               (unsigned long long)sum);
        ipcb_sem_close(items);
        ipcb_sem_close(free_slots);
        ipcb_shm_close(seg);
        ipcb_disconnect(c);
        return 0;
}
