/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* turns.h: how long each turn of the event loop works (its time outside
 * the poll), and a warning for a turn longer than --slow-turn-ms, with what
 * it did.  One long turn delays every client, so the loop's work is kept
 * in slices (docs/performance.md). */
#pragma once

#include <uv.h>

/* What the current turn has done, for the warning. */
typedef struct turn_counts {
        unsigned requests, accepts, closes;
        uint64_t longest_ns; /* its longest request, and that request's op */
        uint16_t longest_op;
        uint64_t woke_ns; /* when the turn began (uv_hrtime); 0: not seen yet */
} turn_counts;
extern turn_counts turn_now;

/* Called first thing by the connection callbacks: the turn began (about)
 * now, if none came before in this turn.  A turn can poll more than once
 * when many descriptors are ready, and its first callback is the start. */
static inline void turn_woke(void) {
        if (!turn_now.woke_ns)
                turn_now.woke_ns = uv_hrtime();
}

/* A request (op) was served in ns. */
static inline void turn_request(uint16_t op, uint64_t ns) {
        turn_now.requests++;
        if (ns > turn_now.longest_ns) {
                turn_now.longest_ns = ns;
                turn_now.longest_op = op;
        }
}

/* Start measuring loop's turns; warn of those over slow_ms (0: never). */
int turns_start(uv_loop_t *loop, unsigned slow_ms);
/* Stop (closes its handle: call before the last uv_run) and log a summary:
 * how many turns were slow, the longest, the most CPU a slow turn used,
 * and the most connections one turn accepted and closed. */
void turns_stop(void);
