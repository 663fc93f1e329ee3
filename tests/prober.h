/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* prober.h: a well-behaved client that measures its own round trips while
 * a test attacks the daemon: a thread that creates and closes a transient
 * segment (a reply that carries an fd) about every millisecond.  Used by
 * the suites that check the daemon's loop never stalls. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>

/* The target is 10 ms; the bound the tests assert leaves room for a noisy
 * VM while still catching any stall that waits on a client (seconds). */
#define STALL_BOUND_US 250000

typedef struct prober {
        pthread_t thread;
        const char *sock;
        atomic_bool stop;
        int errors;
        unsigned n;
        long long lat_us[1 << 16];
} prober;

long long prober_now_us(void);
/* Start probing the broker at sock (fails the test if it cannot). */
void prober_start(prober *pr, const char *sock);
/* Stop and join (before_join, if not NULL, runs in between: it must let a
 * request the daemon holds complete), print "[tag] what: p50 p99 max" and
 * fail the test if any request failed.  Returns the worst latency in µs. */
long long prober_stop(prober *pr, const char *tag, const char *what, void (*before_join)(void));
