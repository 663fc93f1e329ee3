/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sd.h: the service manager side of the daemon: sockets passed in
 * LISTEN_FDS, readiness and status (notify.c), the watchdog. */
#pragma once

#include <uv.h>

/* Connect to $NOTIFY_SOCKET (notify_init), then take the fds the manager
 * passed (sd_listen_fds_with_names): listening SOCK_SEQPACKET Unix sockets
 * are served, fd store entries go to store.c,
 * anything else is refused with a log line and closed.  Returns the number
 * of sockets served, or -EBADF if sockets were passed and none is usable. */
int sd_listen(uv_loop_t *loop);
/* READY=1 with a STATUS= line; then keep STATUS= current and, if the
 * manager asked for one (WATCHDOG_USEC), send WATCHDOG=1 every half period. */
void sd_ready(uv_loop_t *loop);
/* STOPPING=1; stop the timers; a last non-blocking flush of what waits
 * for the manager, then the notify socket is closed (notify.h). */
void sd_stopping(void);
