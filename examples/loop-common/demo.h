/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* demo.h: what the loop-* examples share: the consumer's logic, written
 * once as callbacks of libipcbroker, which each example runs from its own
 * event loop (libuv, sd-event, GLib).  The consumer waits for its
 * producer's segment, then for its semaphore and a token on it, and stops
 * when the producer unlinks the segment: no thread, no polling. */
#pragma once

#include <ipcbroker.h>

#include <stdbool.h>

#define DEMO_SHM "demo.data"
#define DEMO_SEM "demo.ready"

typedef struct demo {
        ipcb_client *c;
        ipcb_shm *shm;
        ipcb_sem *sem;
        bool done;   /* the loop may stop */
        int status;  /* 0, or what went wrong */
} demo;

/* Connect (IPCBROKER_SOCKET) and start waiting for the producer. */
int demo_start(demo *d);
/* After the loop stopped: report the CPU time the process used, close
 * everything.  Returns the exit status (0: all seen, CPU time ~0). */
int demo_finish(demo *d, const char *loop_name);
