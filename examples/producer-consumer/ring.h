/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ring.h: what the producer and the consumer share: the names of the ring
 * segment and of its two semaphores, and the ring's layout. */
#pragma once

#include <stdint.h>

#define RING_NAME  "example.pc.ring"  /* segment: SLOTS items */
#define FREE_NAME  "example.pc.free"  /* semaphore: free slots, starts at SLOTS */
#define ITEMS_NAME "example.pc.items" /* semaphore: filled slots, starts at 0 */
#define SLOTS 8

struct item {
        uint64_t seq;   /* 0, 1, 2, ... */
        uint64_t value; /* seq * seq */
        uint32_t last;  /* 1 on the end marker (seq == count) */
        char text[44];
};

struct ring {
        struct item slot[SLOTS];
};
