/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* turns.c: the loop's turns, timed; see turns.h.  A prepare handle runs
 * once per turn, just before the poll: the time since the previous one,
 * less what libuv counted as idle in the poll (UV_METRICS_IDLE_TIME), is
 * what one whole turn took (I/O callbacks, closes, timers).  The thread's
 * CPU time over the same span tells the broker's own work from time spent
 * waiting for a CPU (other processes, or a hypervisor's steal). */
#include "turns.h"

#include "log.h"

#include <inttypes.h>
#include <time.h>

turn_counts turn_now;

static uv_prepare_t prep;
static uint64_t slow_ns; /* 0: not measuring */
static uint64_t last_ns, last_idle_ns, last_cpu_ns;
/* For the summary at the end. */
static uint64_t nslow, max_took, max_took_cpu, max_cpu;

#define MS_FMT "%" PRIu64 ".%03" PRIu64
#define MS_ARG(ns) (ns) / 1000000, (ns) / 1000 % 1000

static uint64_t cpu_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_prepare(uv_prepare_t *h) {
        uint64_t now = uv_hrtime(), idle = uv_metrics_idle_time(h->loop), cpu = cpu_ns();
        uint64_t took = (now - last_ns) - (idle - last_idle_ns), worked = cpu - last_cpu_ns;

        if (!last_ns) /* the first turn: what came before the loop is not a turn */
                took = worked = 0;

        if (took >= slow_ns) {
                nslow++;
                log_limited(4, "a loop turn took " MS_FMT " ms, " MS_FMT
                            " ms of it on a CPU: %u requests (the longest, op 0x%04x, " MS_FMT
                            " ms), %u connections accepted, %u closed",
                            MS_ARG(took), MS_ARG(worked), turn_now.requests, turn_now.longest_op,
                            MS_ARG(turn_now.longest_ns), turn_now.accepts, turn_now.closes);
        }
        if (took > max_took) {
                max_took = took;
                max_took_cpu = worked;
        }
        if (worked > max_cpu)
                max_cpu = worked;
        turn_now = (turn_counts){ 0 };
        last_ns = now;
        last_idle_ns = idle;
        last_cpu_ns = cpu;
}

int turns_start(uv_loop_t *loop, unsigned slow_ms) {
        int k;

        if (!slow_ms)
                return 0;
        if ((k = uv_loop_configure(loop, UV_METRICS_IDLE_TIME)) < 0)
                return k;
        uv_prepare_init(loop, &prep);
        uv_prepare_start(&prep, on_prepare);
        uv_unref((uv_handle_t *)&prep); /* it measures; it keeps nothing alive */
        slow_ns = (uint64_t)slow_ms * 1000000u;
        return 0;
}

void turns_stop(void) {
        if (!slow_ns)
                return;
        uv_close((uv_handle_t *)&prep, NULL);
        log_info("loop turns: %" PRIu64 " took " MS_FMT " ms or longer; the longest took " MS_FMT
                 " ms (" MS_FMT " ms on a CPU); the most CPU one turn used: " MS_FMT " ms",
                 nslow, MS_ARG(slow_ns), MS_ARG(max_took), MS_ARG(max_took_cpu), MS_ARG(max_cpu));
        slow_ns = 0;
}
