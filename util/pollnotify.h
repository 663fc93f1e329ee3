/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pollnotify.h: signalling a semaphore's notify eventfd (docs/semaphores.md,
 * "Polling a semaphore"), shared by the daemon and the library.  Pollers
 * watch the eventfd edge-triggered and never read it, so every write must
 * change its counter.  Anyone who may use the semaphore holds the fd and
 * can fill the counter with one write of 2^64 - 2; a write then fails with
 * EAGAIN (the fd is non-blocking) and makes no edge.  So on EAGAIN the
 * counter is read back to 0 and written again: a fresh edge. */
#pragma once

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

static inline void ipcb_notify_signal(int fd) {
        uint64_t one = 1, drain;

        if (write(fd, &one, sizeof(one)) < 0 && errno == EAGAIN) {
                (void)!read(fd, &drain, sizeof(drain));
                (void)!write(fd, &one, sizeof(one));
        }
}
