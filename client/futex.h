/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* futex.h: sleeping and waking on a shared page's futex word, and deadlines. */
#pragma once

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Shared futexes (not FUTEX_PRIVATE): the other side is another process. */

/* Sleep while *addr == val, until woken or the absolute CLOCK_MONOTONIC
 * deadline (NULL: none).  Returns 0 (woken, or the value had changed),
 * -EINTR, or -ETIMEDOUT. */
static inline int futex_wait(_Atomic uint32_t *addr, uint32_t val, const struct timespec *deadline) {
        long r = syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_BITSET, val, deadline, NULL,
                         FUTEX_BITSET_MATCH_ANY);
        if (r == 0 || errno == EAGAIN)
                return 0;
        return -errno;
}

static inline void futex_wake(_Atomic uint32_t *addr, int n) {
        syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* timeout_ms > 0 → *ret = now + timeout_ms on CLOCK_MONOTONIC. */
static inline void deadline_after(int timeout_ms, struct timespec *ret) {
        clock_gettime(CLOCK_MONOTONIC, ret);
        ret->tv_sec += timeout_ms / 1000;
        ret->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (ret->tv_nsec >= 1000000000L) {
                ret->tv_sec++;
                ret->tv_nsec -= 1000000000L;
        }
}
