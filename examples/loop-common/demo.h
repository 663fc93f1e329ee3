/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* demo.h: what the loop-* examples share: the consumer's logic, written
 * once as callbacks of libipcbroker, which each example runs from its own
 * event loop (libuv, sd-event, GLib).  The consumer waits for its
 * producer's segment, then for its semaphore and a token on it, and stops
 * when the producer unlinks the segment: no thread, no polling.  A loop
 * watches two descriptors: the client's (ipcb_get_fd, from the start) and
 * the semaphore's (sem_fd, once it is >= 0), calling demo_sem_ready when
 * that one is readable. */
#pragma once

#include <ipcbroker.h>

#include <stdbool.h>

#define DEMO_SHM "demo.data"
#define DEMO_SEM "demo.ready"

typedef struct demo {
        ipcb_client *c;
        ipcb_shm *shm;
        ipcb_sem *sem;
        int sem_fd;  /* ipcb_sem_get_fd once the semaphore is open, else -1 */
        bool got_token;
        bool done;   /* the loop may stop */
        int status;  /* 0, or what went wrong */
} demo;

/* Connect (IPCBROKER_SOCKET) and start waiting for the producer. */
int demo_start(demo *d);
/* The semaphore's descriptor is readable: try to take the token. */
void demo_sem_ready(demo *d);
/* After the loop stopped: report the CPU time the process used, close
 * everything.  Returns the exit status (0: all seen, CPU time ~0). */
int demo_finish(demo *d, const char *loop_name);
