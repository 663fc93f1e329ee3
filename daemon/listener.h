/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* listener.h: the listening socket(s): binding the path safely, accepting. */
#pragma once

#include <uv.h>

/* The socket path to use: explicit, else $IPCBROKER_SOCKET, else the default
 * (per-user under $XDG_RUNTIME_DIR, system-wide under /run for root).
 * Returns a pointer to static storage, or NULL if the path is too long. */
const char *listener_default_path(void);

/* Bind and listen on path, refusing if a live broker already serves it and
 * replacing a stale socket.  Returns 0 or a negative errno (logged). */
int listener_bind(uv_loop_t *loop, const char *path);
/* Serve an already listening socket passed by a service manager (the
 * caller checked its type).  Consumes fd on success.  Returns 0 or a
 * negative errno (logged). */
int listener_adopt(uv_loop_t *loop, int fd, const char *name);
/* Number of sockets being served. */
unsigned listener_count(void);
/* Stop accepting, close the socket and remove the path if we bound it. */
void listener_close(void);
