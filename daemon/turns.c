/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* turns.c: the loop's turns, timed; see turns.h.  A turn begins when the
 * wait set's epoll_wait returns (mainloop.c: turn_began) and ends after
 * its last callback (turn_end): what the whole turn took (its events,
 * libuv's timers and closes).  This costs no system call per turn: the
 * clock is the vDSO's, and the CPU clock is read only for a turn that was
 * slow or the longest yet.  Its CPU time tells the broker's own work from
 * time spent waiting for a CPU (other processes, or a hypervisor's steal);
 * it is counted from a reading taken at most CPU_EVERY_NS before the
 * turn, so it may include up to that much of the turns before. */
#include "turns.h"

#include "log.h"

#include <inttypes.h>
#include <time.h>
#include <uv.h>

turn_counts turn_now;

#define CPU_EVERY_NS 1000000u

static uint64_t slow_ns;   /* 0: not measuring */
static uint64_t cpu_at_ns; /* when cpu_base was read (uv_hrtime) */
static uint64_t cpu_base;
/* For the summary at the end. */
static uint64_t nslow, max_took, max_took_cpu, max_cpu, next_cpu;
static unsigned max_accepts, max_closes;

#define MS_FMT "%" PRIu64 ".%03" PRIu64
#define MS_ARG(ns) (ns) / 1000000, (ns) / 1000 % 1000
#define S_FMT "%" PRIu64 ".%06" PRIu64
#define S_ARG(ns) (ns) / 1000000000, (ns) / 1000 % 1000000

static uint64_t cpu_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void turn_began(void) {
        if (slow_ns)
                turn_now.woke_ns = uv_hrtime();
}

void turn_end(void) {
        uint64_t now, start = turn_now.woke_ns, took = 0, worked;

        if (!slow_ns) {
                turn_now = (turn_counts){ 0 };
                return;
        }
        now = uv_hrtime();
        if (start && now > start) /* none: the first turn (what came before the loop is not one) */
                took = now - start;
        if (took >= slow_ns || took > max_took) { /* the longest yet: rare, after the first turns */
                uint64_t cpu = cpu_ns();
                worked = cpu - cpu_base;
                if (took >= slow_ns) {
                        nslow++;
                        /* The CPU time's span on CLOCK_MONOTONIC (uv_hrtime's
                         * clock): what a trace of the machine can be matched
                         * against. */
                        log_limited(4, "a loop turn took " MS_FMT " ms, " MS_FMT
                                    " ms of it on a CPU: %u requests (the longest, op 0x%04x, " MS_FMT
                                    " ms), %u connections accepted, %u closed; CPU time counted over "
                                    S_FMT "-" S_FMT " s (monotonic)",
                                    MS_ARG(took), MS_ARG(worked), turn_now.requests, turn_now.longest_op,
                                    MS_ARG(turn_now.longest_ns), turn_now.accepts, turn_now.closes,
                                    S_ARG(cpu_at_ns + 999), S_ARG(now));
                        if (worked > max_cpu) {
                                next_cpu = max_cpu;
                                max_cpu = worked;
                        } else if (worked > next_cpu)
                                next_cpu = worked;
                }
                if (took > max_took) {
                        max_took = took;
                        max_took_cpu = worked;
                }
                cpu_base = cpu;
                cpu_at_ns = uv_hrtime(); /* after the reading: the span lies within */
        } else if (now - cpu_at_ns >= CPU_EVERY_NS) {
                cpu_base = cpu_ns();
                cpu_at_ns = uv_hrtime();
        }
        if (turn_now.accepts > max_accepts)
                max_accepts = turn_now.accepts;
        if (turn_now.closes > max_closes)
                max_closes = turn_now.closes;
        turn_now = (turn_counts){ 0 };
}

void turns_start(unsigned slow_ms) {
        if (!slow_ms)
                return;
        slow_ns = (uint64_t)slow_ms * 1000000u;
        cpu_base = cpu_ns();
        cpu_at_ns = uv_hrtime();
}

void turns_stop(void) {
        if (!slow_ns)
                return;
        log_info("loop turns: %" PRIu64 " took " MS_FMT " ms or longer; the longest took " MS_FMT
                 " ms (" MS_FMT " ms on a CPU); the most CPU a slow turn used: " MS_FMT " ms",
                 nslow, MS_ARG(slow_ns), MS_ARG(max_took), MS_ARG(max_took_cpu), MS_ARG(max_cpu));
        /* One turn can be charged a pause of the whole machine (a VM whose
         * host gives no steal time); two seldom are. */
        log_info("loop turns: the next most CPU a slow turn used: " MS_FMT " ms", MS_ARG(next_cpu));
        log_info("loop turns: the most connections one turn accepted: %u, closed: %u", max_accepts,
                 max_closes);
        slow_ns = 0;
}
