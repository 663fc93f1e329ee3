/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* futex.h: waking sleepers on a shared page (the daemon never waits). */
#pragma once

#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Shared (not FUTEX_PRIVATE): the waiters are other processes. */
static inline void futex_wake_all(_Atomic uint32_t *addr) {
        syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}
