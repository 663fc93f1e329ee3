/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* connect.c: which broker a client reaches, and what to tell a person when
 * it is not there.  Two brokers may serve a machine, as with D-Bus's system
 * and session buses: the system broker (root, IPCB_SYSTEM_SOCKET) and a
 * user's own ($XDG_RUNTIME_DIR/ipcbroker/ipcbroker.sock).  The default
 * rule (ipcbroker.h, IPCB_BROKER_DEFAULT) picks the user's broker only when
 * its socket exists, so that a root service and a user's program meet at the
 * system broker unless the user runs one of their own. */
#include "ipcbroker.h"

#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define SUN_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

/* secure_getenv: a set-uid program must not be pointed elsewhere. */
static const char *env(const char *name) {
        const char *v = secure_getenv(name);
        return v && *v ? v : NULL;
}

static int put(char *buf, size_t size, const char *path) {
        size_t n = strlen(path);

        if (n >= SUN_PATH_MAX || n >= size)
                return -ENAMETOOLONG;
        memcpy(buf, path, n + 1);
        return 0;
}

static int user_path(char *buf, size_t size) {
        const char *rt = env("XDG_RUNTIME_DIR");
        char path[SUN_PATH_MAX + 32];

        if (!rt)
                return -EDESTADDRREQ;
        if (strlen(rt) > SUN_PATH_MAX)
                return -ENAMETOOLONG;
        snprintf(path, sizeof(path), "%s/ipcbroker/ipcbroker.sock", rt);
        return put(buf, size, path);
}

static bool is_socket(const char *path) {
        struct stat st;
        return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

int ipcb_socket_path(int broker, char *buf, size_t size) {
        char user[SUN_PATH_MAX];
        const char *e;

        if (!buf)
                return -EINVAL;
        switch (broker) {
        case IPCB_BROKER_SYSTEM:
                return put(buf, size, IPCB_SYSTEM_SOCKET);
        case IPCB_BROKER_USER:
                return user_path(buf, size);
        case IPCB_BROKER_DEFAULT:
                if ((e = env("IPCBROKER_SOCKET")))
                        return put(buf, size, e);
                /* Root's programs are system services: the system broker,
                 * even in a login shell that has XDG_RUNTIME_DIR. */
                if (geteuid() != 0 && user_path(user, sizeof(user)) == 0 && is_socket(user))
                        return put(buf, size, user);
                return put(buf, size, IPCB_SYSTEM_SOCKET);
        default:
                return -EINVAL;
        }
}

int ipcb__client_socket_addr(const char *path, int broker, struct sockaddr_un *ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int r;

        if (path) {
                if (!*path)
                        return -EINVAL;
                r = put(sa.sun_path, sizeof(sa.sun_path), path);
        } else
                r = ipcb_socket_path(broker, sa.sun_path, sizeof(sa.sun_path));
        if (r < 0)
                return r;
        *ret = sa;
        return 0;
}

int ipcb_connect_system(ipcb_client **ret) {
        return ipcb__client_connect_to(NULL, IPCB_BROKER_SYSTEM, ret);
}

int ipcb_connect_user(ipcb_client **ret) {
        return ipcb__client_connect_to(NULL, IPCB_BROKER_USER, ret);
}

/* ---- the message ---- */

typedef struct out {
        char *buf;
        size_t size, len;
} out;

__attribute__((format(printf, 2, 3)))
static void say(out *o, const char *fmt, ...) {
        va_list ap;
        int n;

        if (o->len + 1 >= o->size)
                return;
        va_start(ap, fmt);
        n = vsnprintf(o->buf + o->len, o->size - o->len, fmt, ap);
        va_end(ap);
        if (n > 0)
                o->len = o->len + (size_t)n < o->size ? o->len + (size_t)n : o->size - 1;
}

/* How to start the broker that was looked for. */
static void hint_start(out *o, int broker, const char *path, bool env_path) {
        if (env_path) {
                say(o, ": start one with 'ipcbrokerd --socket %s', or unset IPCBROKER_SOCKET "
                       "to use the default broker", path);
                return;
        }
        switch (broker) {
        case IPCB_BROKER_SYSTEM:
                say(o, ": start the system broker as root ('systemctl start ipcbroker.socket', "
                       "or 'ipcbrokerd --system'), or run your own ('ipcbrokerd --user')");
                return;
        case IPCB_BROKER_USER:
                say(o, ": start your broker ('ipcbrokerd --user', or 'systemctl --user start "
                       "ipcbroker.socket'), or use the system broker (--system)");
                return;
        default:
                say(o, ": start one with 'ipcbrokerd --socket %s'", path);
        }
}

const char *ipcb_connect_error(int err, const char *socket_path, int broker, char *buf,
                               size_t size) {
        char path[SUN_PATH_MAX], user[SUN_PATH_MAX];
        out o = { .buf = buf, .size = size };
        bool env_path = false, no_user = false;
        int r;

        if (!buf || size == 0)
                return "";
        buf[0] = '\0';
        if (err > 0)
                err = -err;
        /* The broker that was looked for: a default becomes the one the
         * rule picked (the same rule, the same environment as the connect). */
        if (!socket_path && broker == IPCB_BROKER_DEFAULT) {
                if (env("IPCBROKER_SOCKET"))
                        env_path = true;
                else if (ipcb_socket_path(IPCB_BROKER_DEFAULT, path, sizeof(path)) == 0 &&
                         strcmp(path, IPCB_SYSTEM_SOCKET) == 0) {
                        broker = IPCB_BROKER_SYSTEM;
                        no_user = geteuid() != 0 && user_path(user, sizeof(user)) == 0;
                } else
                        broker = IPCB_BROKER_USER;
        }
        if (socket_path)
                r = put(path, sizeof(path), socket_path);
        else
                r = ipcb_socket_path(broker, path, sizeof(path));
        if (r == -EDESTADDRREQ) {
                say(&o, "no user broker: $XDG_RUNTIME_DIR is not set (a login session sets it), "
                        "so there is no per-user socket; use the system broker (--system) or give "
                        "a socket (--socket PATH, $IPCBROKER_SOCKET)");
                return buf;
        }
        if (r < 0) {
                say(&o, "cannot connect: socket path %s: %s",
                    socket_path ? socket_path : env_path ? "$IPCBROKER_SOCKET" : "$XDG_RUNTIME_DIR",
                    ipcb_strerror(r));
                return buf;
        }
        switch (err) {
        case -ENOENT:
        case -ECONNREFUSED:
                say(&o, "%s at %s", err == -ENOENT ? "no broker" : "no broker listening", path);
                if (env_path)
                        say(&o, " ($IPCBROKER_SOCKET)");
                else if (broker == IPCB_BROKER_SYSTEM && !socket_path)
                        if (no_user)
                                say(&o, " (the system broker; you run no broker of your own at %s "
                                        "either)", user);
                        else
                                say(&o, " (the system broker)");
                else if (broker == IPCB_BROKER_USER && !socket_path)
                        say(&o, " (your own broker)");
                hint_start(&o, socket_path ? -1 : broker, path, env_path);
                break;
        case -EACCES:
        case -EPERM:
                say(&o, "cannot connect to %s: permission denied (the socket or a directory "
                        "above it is not open to you)", path);
                break;
        default:
                say(&o, "cannot connect to %s: %s", path, ipcb_strerror(err));
        }
        return buf;
}
