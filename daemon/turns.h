/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* turns.h: how long each turn of the event loop works (its time outside
 * the poll), and a warning for a turn longer than --slow-turn-ms, with what
 * it did.  One long turn delays every client, so the loop's work is kept
 * in slices (docs/performance.md). */
#pragma once

#include <stdint.h>

/* What the current turn has done, for the warning. */
typedef struct turn_counts {
        unsigned requests, accepts, closes;
        uint64_t longest_ns; /* its longest request, and that request's op */
        uint16_t longest_op;
        uint64_t woke_ns; /* when the turn began (uv_hrtime) */
} turn_counts;
extern turn_counts turn_now;

/* The wait set's poll returned: a turn begins (mainloop.c). */
void turn_began(void);
/* The turn's last callback has run: time it, and warn if it was slow. */
void turn_end(void);

/* A request (op) was served in ns. */
static inline void turn_request(uint16_t op, uint64_t ns) {
        turn_now.requests++;
        if (ns > turn_now.longest_ns) {
                turn_now.longest_ns = ns;
                turn_now.longest_op = op;
        }
}

/* Start measuring the loop's turns; warn of those over slow_ms (0: never). */
void turns_start(unsigned slow_ms);
/* Stop, and log a summary:
 * how many turns were slow, the longest, the most CPU a slow turn used,
 * and the most connections one turn accepted and closed. */
void turns_stop(void);
