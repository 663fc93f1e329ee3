/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* producer.c: put COUNT items and an end marker into a ring of SLOTS items
 * shared with the consumer.  Semaphore "free" counts the empty slots,
 * "items" the filled ones: the classic bounded buffer, across processes.
 * The objects are transient: they vanish when both sides have closed them. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* F_SEAL_*, POSIX calls; the project's build defines it */
#endif
#include "ring.h"

#include <errno.h>
#include <ipcbroker.h>
#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what, int err) {
        fprintf(stderr, "producer: %s: %s\n", what, ipcb_strerror(err));
        return 1;
}

int main(int argc, char **argv) {
        unsigned long count = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
        ipcb_client *c;
        ipcb_shm *seg;
        ipcb_sem *free_slots, *items;
        struct ring *ring;
        int k;

        if ((k = ipcb_connect(NULL, &c)) < 0)
                return fail("connect", k);
        if ((k = ipcb_shm_create(c, RING_NAME, sizeof(struct ring), NULL, &seg)) < 0)
                return fail("create " RING_NAME, k);
        if ((k = ipcb_sem_create(c, FREE_NAME, SLOTS, NULL, &free_slots)) < 0)
                return fail("create " FREE_NAME, k);
        if ((k = ipcb_sem_create(c, ITEMS_NAME, 0, NULL, &items)) < 0)
                return fail("create " ITEMS_NAME, k);
        ring = ipcb_shm_data(seg);

        for (unsigned long i = 0; i <= count; i++) {
                struct item *it = &ring->slot[i % SLOTS];

                /* A consumer that never comes must not hang us forever. */
                if ((k = ipcb_sem_try_acquire(free_slots, 30000)) < 0)
                        return fail("wait for a free slot", k);
                it->seq = i;
                it->value = (uint64_t)i * i;
                it->last = i == count;
                snprintf(it->text, sizeof(it->text), "item %lu", i);
                /* The release publishes the slot: the consumer's acquire
                 * sees everything written before it. */
                if ((k = ipcb_sem_release(items, 1)) < 0)
                        return fail("release an item", k);
        }
        /* Every slot free again: the consumer has taken everything. */
        for (int i = 0; i < SLOTS; i++)
                if ((k = ipcb_sem_try_acquire(free_slots, 30000)) < 0)
                        return fail("wait for the consumer to drain the ring", k);
        printf("producer: %lu items and the end marker sent through %d slots\n", count, SLOTS);
        ipcb_sem_close(items);
        ipcb_sem_close(free_slots);
        ipcb_shm_close(seg);
        ipcb_disconnect(c);
        return 0;
}
