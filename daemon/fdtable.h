/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fdtable.h: keeps the kernel's table of the daemon's fds ahead of its use.
 *
 * The kernel grows a process's fd table by doubling it, when an fd past its
 * end is allocated; in a process of several threads (ours: the reaper's)
 * each growth waits for an RCU grace period (expand_fdtable), 7-19 ms on a
 * VM, in whatever call allocated the fd: an accept, a memfd_create, a
 * recvmsg with fds.  The loop would stall there, at 256, 512, 1024... fds,
 * and any client could make it (a burst of connections).  So the table is
 * sized at start, before there is a thread (no grace period then), and
 * doubled off the loop, by a thread of its own, once half of it is used. */
#pragma once

#include <uv.h>

/* Default number of fds the table holds from the start. */
#define FDTABLE_START 65536

/* Size the table for min(start, nofile) fds and start watching its use.
 * Call before any thread is started.  0, or a negative errno. */
int fdtable_start(uv_loop_t *loop, unsigned long start, long nofile);
/* Stop watching (closes its timer: call before the last uv_run). */
void fdtable_stop(void);
