/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* os.h: the daemon's syscall wrappers.  Every descriptor they create or
 * receive is close-on-exec at birth. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Make a memfd of `size` bytes, sealed F_SEAL_SHRINK (+ F_SEAL_GROW unless
 * growable) before anything else can see it, with permission bits 0600 so
 * that no other uid can reopen it through /proc/PID/fd.  Returns 0 with
 * *ret_fd (O_RDWR) and *ret_seals; or a negative errno with nothing left open. */
int os_memfd_sealed(uint64_t size, bool growable, int *ret_fd, unsigned *ret_seals);
/* A new O_RDONLY description of the inode behind fd (through /proc/self/fd). */
int os_reopen_ro(int fd);

/* A one-page memfd (for semaphore and lock state) sealed against shrinking,
 * growing and any further seal (F_SEAL_SEAL), zero-filled, and mapped
 * read-write into the daemon unless ret_map is NULL.  Returns 0 with
 * *ret_fd (and *ret_map), or a negative errno with nothing left open. */
int os_page_new(int *ret_fd, void **ret_map);

/* Close the daemon's own fds (memfds it made or checked, their copies) on
 * the calling thread.  Never for an fd a client sent: reaper.c. */
void os_close_fds(const int *fds, unsigned n);

/* Raise RLIMIT_NOFILE's soft limit to the hard limit.  Returns the new soft limit. */
long os_raise_nofile(void);
