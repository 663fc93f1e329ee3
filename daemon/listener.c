/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* listener.c: the listening SOCK_SEQPACKET socket.  Binding checks the
 * directory first (nobody else may write it), then what is at the path: a
 * live broker makes us refuse, a stale socket is replaced, anything else is
 * left alone.  Accepting never blocks the loop;
 * when the daemon runs out of fds it pauses accepting briefly instead of
 * spinning on a listening socket that stays readable.  Several listening
 * sockets may be served at once (systemd can pass more than one).
 *
 * A listening socket is in the daemon's wait set (mainloop.h) with the
 * connections, so that the kernel's order holds between them: a client
 * that hangs up and connects again is counted out of its uid's quota
 * before the new connection is counted in. */
#include "listener.h"

#include "config.h"
#include "log.h"
#include "mainloop.h"
#include "reaper.h"
#include "peer.h"
#include "quota.h"
#include "turns.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define ACCEPT_BURST 64
#define ACCEPT_PAUSE_MS 100

#define LISTENERS_MAX 8

typedef struct listener {
        mainloop_watcher w;
        uv_timer_t pause_timer;
        int fd; /* -1: slot unused */
} listener;

static listener listeners[LISTENERS_MAX];
static unsigned nlisteners;
static char bound_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static log_ratelimit rl_accept;

int listener_path(listener_which which, const char **ret) {
        static char path[PATH_MAX];
        const char *env = getenv("IPCBROKER_SOCKET");
        const char *rt = getenv("XDG_RUNTIME_DIR");
        int n;

        if (which == LISTEN_DEFAULT && env && *env) {
                n = snprintf(path, sizeof(path), "%s", env);
                goto done;
        }
        if (which == LISTEN_DEFAULT)
                which = geteuid() == 0 ? LISTEN_SYSTEM : LISTEN_USER;
        if (which == LISTEN_SYSTEM)
                n = snprintf(path, sizeof(path), "/run/ipcbroker/ipcbroker.sock");
        else if (rt && *rt)
                n = snprintf(path, sizeof(path), "%s/ipcbroker/ipcbroker.sock", rt);
        else
                return -EDESTADDRREQ;
done:
        if (n <= 0 || (size_t)n >= sizeof(bound_path))
                return -ENAMETOOLONG;
        *ret = path;
        return 0;
}

/* The socket's directory, created if missing (0755: every user may connect;
 * who may open what is decided per object).  Whoever can write it can bind
 * a socket of their own at our path before we do, or swap ours (for theirs,
 * or for a symlink) afterwards, and a client would then talk to them.  So it
 * must be ours or root's and writable by nobody else: not by its group, not
 * by others, sticky or not (the sticky bit of a /tmp keeps nobody from
 * taking a free name first).  Checked through an fd opened with O_NOFOLLOW:
 * a symlink is refused, and what is checked is what was opened. */
static int ensure_dir(const char *path) {
        char dir[sizeof(bound_path)];
        char *slash;
        struct stat st;
        bool made = false;
        int fd, k = 0;

        snprintf(dir, sizeof(dir), "%s", path);
        slash = strrchr(dir, '/');
        if (!slash)
                strcpy(dir, ".");
        else if (slash == dir)
                dir[1] = '\0';
        else
                *slash = '\0';
        if (mkdir(dir, 0755) == 0)
                made = true;
        else if (errno != EEXIST) {
                k = -errno;
                log_err("cannot create directory %s: %s", dir, strerror(errno));
                return k;
        }
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                k = -errno;
                if (errno == ELOOP || errno == ENOTDIR)
                        log_err("%s is not a directory (or is a symlink)", dir);
                else
                        log_err("cannot open directory %s: %s", dir, strerror(errno));
                return k;
        }
        if (fstat(fd, &st) < 0) {
                k = -errno;
                close(fd);
                return k;
        }
        /* Ours, just made: the umask may have taken bits from 0755. */
        if (made && st.st_uid == geteuid() && (st.st_mode & 07777) != 0755 && fchmod(fd, 0755) == 0)
                st.st_mode = (st.st_mode & ~07777u) | 0755;
        close(fd);
        if (st.st_uid != geteuid() && st.st_uid != 0) {
                log_err("refusing to use %s: owned by uid %u, neither ours nor root's", dir,
                        (unsigned)st.st_uid);
                return -EPERM;
        }
        if (st.st_mode & (S_IWGRP | S_IWOTH)) {
                log_err("refusing to use %s: writable by others than its owner (mode %04o), "
                        "who could put their own socket at our path; use a directory that only "
                        "uid %u can write", dir, (unsigned)(st.st_mode & 07777), (unsigned)geteuid());
                return -EPERM;
        }
        return 0;
}

/* 0 if nothing (or only a stale socket, now removed) is at path. */
static int clear_stale(const char *path, const struct sockaddr_un *sa) {
        struct stat st;
        int fd, k;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode)) {
                log_err("%s exists and is not a socket; not touching it", path);
                return -EEXIST;
        }
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        k = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
        close(fd);
        if (k == 0) {
                log_err("another broker is already serving %s", path);
                return -EADDRINUSE;
        }
        if (errno != ECONNREFUSED && errno != EPROTOTYPE) {
                log_err("cannot tell whether %s is live: %s", path, strerror(errno));
                return -errno;
        }
        log_info("replacing stale socket %s", path);
        return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

static void on_pause_done(uv_timer_t *t);

/* An error on the socket (EPOLLERR) comes out of accept4, and pauses. */
static void on_accept(mainloop_watcher *w, uint32_t events) {
        listener *l = w->data;

        (void)events;
        for (int i = 0; i < ACCEPT_BURST; i++) {
                if (i > 0 && mainloop_turn_spent()) /* the rest next turn: it stays ready */
                        return;
                int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd < 0) {
                        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                                return;
                        if (log_ratelimit_ok(&rl_accept, 5))
                                log_warn("accept: %s; pausing for %d ms", strerror(errno),
                                         ACCEPT_PAUSE_MS);
                        (void)mainloop_watch(w, l->fd, 0);
                        uv_timer_start(&l->pause_timer, on_pause_done, ACCEPT_PAUSE_MS, 0);
                        return;
                }
                /* The fds left in reserve for connections are spoken for:
                 * a clear hang-up now rather than a hang later.  uid 0 (with
                 * the root override) has a sixteenth more: a few uids can
                 * take all the others, and root's services still connect. */
                unsigned held = peer_count() + peer_lingering(); /* closed ones with fds unread too */
                if (held >= cfg.max_connections_total) {
                        struct ucred uc = { .uid = (uid_t)-1 };
                        socklen_t len = sizeof(uc);
                        (void)getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len);
                        if (!quota_exempt(uc.uid) ||
                            held >= cfg.max_connections_total + cfg.max_connections_total / 16) {
                                log_client_warn("%u clients connected, the most the fd limit allows; "
                                                "refusing a connection of uid %u", held, (unsigned)uc.uid);
                                reaper_close_socket(fd, uc.uid);
                                continue;
                        }
                }
                turn_now.accepts++;
                int k = peer_new(fd);
                if (k < 0 && log_ratelimit_ok(&rl_accept, 5))
                        log_warn("cannot set up a new client: %s", strerror(-k));
        }
}

static void on_pause_done(uv_timer_t *t) {
        listener *l = t->data;
        if (mainloop_watch(&l->w, l->fd, EPOLLIN) < 0) /* out of memory: try again later */
                uv_timer_start(&l->pause_timer, on_pause_done, ACCEPT_PAUSE_MS, 0);
}

/* Start accepting on listening socket fd (consumed on success). */
static int listener_start(uv_loop_t *loop, int fd) {
        listener *l;
        int k;

        if (nlisteners == LISTENERS_MAX)
                return -EMFILE;
        l = &listeners[nlisteners];
        l->w = (mainloop_watcher){ .cb = on_accept, .data = l };
        if ((k = mainloop_watch(&l->w, fd, EPOLLIN)) < 0)
                return k;
        uv_timer_init(loop, &l->pause_timer); /* cannot fail */
        l->fd = fd;
        l->pause_timer.data = l;
        nlisteners++;
        return 0;
}

/* What a person recognises a passed socket by: its path ("@name" for an
 * abstract one), from getsockname. */
static void describe(int fd, char *buf, size_t size) {
        struct sockaddr_un sa;
        socklen_t len = sizeof(sa);
        size_t n;

        memset(&sa, 0, sizeof(sa));
        if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0 || sa.sun_family != AF_UNIX ||
            len <= offsetof(struct sockaddr_un, sun_path)) {
                snprintf(buf, size, "an unnamed socket");
                return;
        }
        n = len - offsetof(struct sockaddr_un, sun_path);
        if (n > sizeof(sa.sun_path))
                n = sizeof(sa.sun_path);
        if (sa.sun_path[0] == '\0') {
                /* Abstract: any bytes; show the printable ones. */
                char name[sizeof(sa.sun_path)];
                size_t j = 0;
                for (size_t i = 1; i < n; i++)
                        name[j++] = sa.sun_path[i] >= 0x20 && sa.sun_path[i] < 0x7f ? sa.sun_path[i] : '?';
                name[j] = '\0';
                snprintf(buf, size, "@%s", name);
        } else
                snprintf(buf, size, "%.*s", (int)strnlen(sa.sun_path, n), sa.sun_path);
}

int listener_adopt(uv_loop_t *loop, int fd, const char *name) {
        char where[sizeof(bound_path) + 8];
        int fl = fcntl(fd, F_GETFL), k;

        /* A passed socket is usually blocking: accept must never block. */
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
            fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
                return -errno;
        describe(fd, where, sizeof(where));
        if ((k = listener_start(loop, fd)) < 0) {
                log_err("cannot serve the socket passed for %s: %s", where, strerror(-k));
                return k;
        }
        /* "unknown": the manager gave no FileDescriptorName= (or no
         * LISTEN_FDNAMES at all, as systemd-socket-activate without
         * --fdname). */
        if (name && *name && strcmp(name, "unknown") != 0)
                log_info("listening on %s (socket %s passed by the service manager as fd %d)", where,
                         name, fd);
        else
                log_info("listening on %s (socket passed by the service manager as fd %d)", where, fd);
        return 0;
}

unsigned listener_count(void) {
        return nlisteners;
}

int listener_bind(uv_loop_t *loop, const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct stat st;
        mode_t old_umask;
        int listen_fd, k;

        if (strlen(path) >= sizeof(sa.sun_path)) {
                log_err("socket path too long: %s", path);
                return -ENAMETOOLONG;
        }
        strcpy(sa.sun_path, path);
        if ((k = ensure_dir(path)) < 0 || (k = clear_stale(path, &sa)) < 0)
                return k;

        listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (listen_fd < 0)
                return -errno;
        /* Every local user may connect (access is decided per object), so
         * the socket is 0666: made so by bind itself, under a umask of 0111.
         * Not chmod(path) after bind: whoever swapped the path for a symlink
         * in between would have us chmod its target (as root: any file).
         * The umask is the process's; no other thread of ours makes files. */
        old_umask = umask(0111);
        k = bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
        umask(old_umask);
        if (k < 0) {
                log_err("bind %s: %s", path, strerror(-k));
                goto fail;
        }
        strcpy(bound_path, path);
        /* A default ACL on the directory overrides the umask. */
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0666) != 0666)
                log_warn("%s has mode %04o (a default ACL on its directory?): some users "
                         "may not be able to connect", path, (unsigned)(st.st_mode & 07777));
        if (listen(listen_fd, SOMAXCONN) < 0) {
                k = -errno;
                log_err("cannot listen on %s: %s", path, strerror(errno));
                goto fail;
        }
        if ((k = listener_start(loop, listen_fd)) < 0)
                goto fail;
        log_info("listening on %s", path);
        return 0;
fail:
        if (bound_path[0])
                unlink(bound_path);
        bound_path[0] = '\0';
        close(listen_fd);
        return k;
}

void listener_close(void) {
        if (bound_path[0]) {
                unlink(bound_path);
                bound_path[0] = '\0';
        }
        for (unsigned i = 0; i < nlisteners; i++) {
                listener *l = &listeners[i];
                uv_close((uv_handle_t *)&l->pause_timer, NULL);
                (void)mainloop_watch(&l->w, l->fd, 0);
                close(l->fd);
                l->fd = -1;
        }
        nlisteners = 0;
}
