/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fdtable.c: the kernel's fd table, grown ahead of need; see fdtable.h.
 * The table grows to hold fd n when fd n is allocated: F_DUPFD_CLOEXEC with
 * a minimum of n - 1 makes that happen at once, and the copy is closed.
 * Fds are allocated lowest first, so whether fd size/2 is open says whether
 * half of the table is in use. */
#include "fdtable.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#define FDTABLE_CHECK_MS 100

static uv_timer_t timer;
static bool started;
static int ref_fd = -1;           /* an fd to copy (the daemon's /dev/null) */
static unsigned long size, limit; /* the table's size (loop thread); RLIMIT_NOFILE */
static atomic_bool growing;

/* Make the table hold n fds.  0, or a negative errno. */
static int grow_to(unsigned long n) {
        int fd = fcntl(ref_fd, F_DUPFD_CLOEXEC, (int)(n - 1));

        if (fd < 0)
                return -errno;
        close(fd);
        return 0;
}

static void *grower(void *arg) {
        unsigned long n = (unsigned long)arg;
        int k = grow_to(n);

        if (k < 0)
                log_warn("cannot grow the fd table to %lu: %s", n, strerror(-k));
        atomic_store(&growing, false);
        return NULL;
}

static void on_check(uv_timer_t *t) {
        unsigned long n = size * 2 > limit ? limit : size * 2;
        pthread_attr_t attr;
        pthread_t th;

        (void)t;
        if (n <= size || atomic_load(&growing) || fcntl((int)(size / 2), F_GETFD) < 0)
                return;
        atomic_store(&growing, true);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &attr, grower, (void *)n) != 0) {
                atomic_store(&growing, false);
                log_warn("cannot start a thread to grow the fd table; it grows when needed");
        } else {
                log_debug("fd %lu is in use: growing the fd table to %lu", size / 2, n);
                size = n;
        }
        pthread_attr_destroy(&attr);
}

int fdtable_start(uv_loop_t *loop, unsigned long start, long nofile) {
        int k;

        limit = nofile > 0 ? (unsigned long)nofile : 1024;
        size = start < 64 ? 64 : start > limit ? limit : start;
        ref_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (ref_fd < 0)
                return -errno;
        if ((k = grow_to(size)) < 0) {
                close(ref_fd);
                ref_fd = -1;
                return k;
        }
        uv_timer_init(loop, &timer);
        uv_timer_start(&timer, on_check, FDTABLE_CHECK_MS, FDTABLE_CHECK_MS);
        uv_unref((uv_handle_t *)&timer); /* it watches; it keeps nothing alive */
        started = true;
        return 0;
}

void fdtable_stop(void) {
        if (!started)
                return;
        uv_close((uv_handle_t *)&timer, NULL);
        started = false;
        if (!atomic_load(&growing)) { /* else a grower may still copy it */
                close(ref_fd);
                ref_fd = -1;
        }
}
