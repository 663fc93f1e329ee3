/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* listener.h: the listening socket(s): binding the path safely, accepting. */
#pragma once

#include <uv.h>

/* Where to listen without --socket (the library's rule, ipcbroker.h, looks
 * there): LISTEN_SYSTEM /run/ipcbroker/ipcbroker.sock, LISTEN_USER
 * $XDG_RUNTIME_DIR/ipcbroker/ipcbroker.sock, LISTEN_DEFAULT
 * $IPCBROKER_SOCKET if set, else the system path for root and the user's
 * otherwise.  *ret points to static storage.  0, -EDESTADDRREQ (the user
 * path without $XDG_RUNTIME_DIR) or -ENAMETOOLONG. */
typedef enum { LISTEN_DEFAULT, LISTEN_SYSTEM, LISTEN_USER } listener_which;
int listener_path(listener_which which, const char **ret);

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
