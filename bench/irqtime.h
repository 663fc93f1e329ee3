/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* irqtime.h: how much of a thread's CPU time was interrupts, or its vCPU
 * stopped by the host (bench only). */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/* Starts tracing the interrupts that land on the calling thread (tracefs,
 * an instance of its own; needs root), and the stops of its vCPU (perf).
 * 0, or -errno: then every figure below is the raw one. */
int irqtime_open(void);

/* A timed span of the traced thread: wall window [t0, t1] (CLOCK_MONOTONIC,
 * ns; it must lie inside the span's two CPU readings) and the thread's CPU
 * time in it (ns). */
void irqtime_span(double t0, double t1, double cpu);

/* Reads what was traced when it is time to (every second, or when a buffer
 * is half full), so that nothing fills; true if it did, which takes
 * milliseconds.  Call it where no span is being timed. */
bool irqtime_poll(void);

/* Forgets the spans so far (and the events behind them). */
void irqtime_reset(void);

/* Reads what was traced since the last call. */
void irqtime_drain(void);

/* The longest span since the last reset less the interrupts and the vCPU's
 * stops in it, and how many spans were over 1 ms so counted; *ret_lost:
 * the kernel dropped events (the figure is then too high, never too low).
 * The raw figures when tracing is off. */
double irqtime_own_max(unsigned long *ret_over, bool *ret_lost);

/* Whether the interrupts are traced; whether the vCPU's stops are too (a
 * perf sampling event of the calling thread). */
bool irqtime_on(void);
bool irqtime_stops_on(void);

/* Traces the interrupts that land on thread tid too, and its vCPU's stops
 * (a daemon's loop, say: its pid); 0 or -errno.  Unwatch forgets them. */
int irqtime_watch(pid_t tid);
void irqtime_unwatch(pid_t tid);

/* The interrupts and the vCPU's stops of watched thread tid inside [t0, t1]
 * (CLOCK_MONOTONIC, ns; inside the CPU readings); *ret_lost as above. */
double irqtime_of(pid_t tid, double t0, double t1, bool *ret_lost);
