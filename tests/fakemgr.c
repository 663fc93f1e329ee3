/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fakemgr.c: the fake service manager; see fakemgr.h. */
#include "fakemgr.h"

#include "harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void fakemgr_init(fakemgr *m, const char *tmpl, unsigned cap) {
        char path[sizeof(m->notify)];

        memset(m, 0, sizeof(*m));
        m->nfd = -1;
        snprintf(m->dir, sizeof(m->dir), "%s", tmpl);
        cr_assert_not_null(mkdtemp(m->dir), "mkdtemp %s: %s", tmpl, strerror(errno));
        m->store = calloc(cap, sizeof(m->store[0]));
        cr_assert_not_null(m->store);
        m->cap = cap;
        snprintf(path, sizeof(path), "%s/notify", m->dir);
        fakemgr_bind(m, path);
}

void fakemgr_bind(fakemgr *m, const char *addr) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(addr);
        socklen_t salen;

        cr_assert(len > 0 && len < sizeof(sa.sun_path), "bad notify address %s", addr);
        if (m->nfd >= 0)
                close(m->nfd);
        if (m->notify[0] && m->notify[0] != '@')
                unlink(m->notify);
        memcpy(sa.sun_path, addr, len);
        if (addr[0] == '@')
                sa.sun_path[0] = '\0'; /* abstract: no terminating NUL counted */
        salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (addr[0] != '@'));
        snprintf(m->notify, sizeof(m->notify), "%s", addr);
        m->nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(m->nfd, 0);
        cr_assert_eq(bind(m->nfd, (struct sockaddr *)&sa, salen), 0, "bind %s: %s", addr,
                     strerror(errno));
}

/* ---- the store ---- */

unsigned fakemgr_count(const fakemgr *m, const char *prefix) {
        unsigned k = 0;
        for (unsigned i = 0; i < m->n; i++)
                k += strncmp(m->store[i].name, prefix, strlen(prefix)) == 0;
        return k;
}

int fakemgr_find(const fakemgr *m, const char *name) {
        for (unsigned i = 0; i < m->n; i++)
                if (strcmp(m->store[i].name, name) == 0)
                        return m->store[i].fd;
        return -ENOENT;
}

int fakemgr_put(fakemgr *m, const char *name, int fd) {
        if (m->n == m->cap)
                return -ENOSPC;
        snprintf(m->store[m->n].name, sizeof(m->store[0].name), "%s", name);
        m->store[m->n++].fd = fd;
        return 0;
}

unsigned fakemgr_remove(fakemgr *m, const char *name) {
        unsigned k = 0;
        for (unsigned i = 0; i < m->n;) {
                if (strcmp(m->store[i].name, name) == 0) {
                        close(m->store[i].fd);
                        m->store[i] = m->store[--m->n];
                        k++;
                } else
                        i++;
        }
        return k;
}

int fakemgr_replace(fakemgr *m, const char *name, int fd) {
        for (unsigned i = 0; i < m->n; i++)
                if (strcmp(m->store[i].name, name) == 0) {
                        close(m->store[i].fd);
                        m->store[i].fd = fd;
                        return 0;
                }
        return -ENOENT;
}

/* ---- reading messages ---- */

static void parse_lines(fakemgr *m, char *buf, fakemgr_msg *msg) {
        char *save = NULL;

        for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (strcmp(line, "READY=1") == 0)
                        msg->ready = true;
                else if (strcmp(line, "STOPPING=1") == 0)
                        msg->stopping = true;
                else if (strcmp(line, "WATCHDOG=1") == 0)
                        msg->watchdog = true;
                else if (strncmp(line, "STATUS=", 7) == 0) {
                        msg->status = true;
                        snprintf(m->last_status, sizeof(m->last_status), "%s", line + 7);
                } else if (strcmp(line, "FDSTORE=1") == 0)
                        msg->store = true;
                else if (strcmp(line, "FDSTOREREMOVE=1") == 0)
                        msg->remove = true;
                else if (strcmp(line, "BARRIER=1") == 0)
                        msg->barrier = true;
                else if (strncmp(line, "FDNAME=", 7) == 0)
                        snprintf(msg->name, sizeof(msg->name), "%s", line + 7);
        }
}

int fakemgr_recv(fakemgr *m, int timeout_ms, fakemgr_msg *ret_msg) {
        struct pollfd p = { .fd = m->nfd, .events = POLLIN };
        char buf[4096];
        union {
                struct cmsghdr a;
                char b[CMSG_SPACE(sizeof(int) * FAKEMGR_MSG_FDS) + CMSG_SPACE(64)];
        } ctl;
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
                             .msg_controllen = sizeof(ctl) };
        fakemgr_msg msg = { .fd = -1 };
        int fds[FAKEMGR_MSG_FDS];
        ssize_t k;

        if (m->nfd < 0 || poll(&p, 1, timeout_ms) <= 0)
                return 0;
        k = recvmsg(m->nfd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (k < 0)
                return 0;
        buf[k] = '\0';
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                        unsigned nc = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                        for (unsigned i = 0; i < nc; i++) {
                                int fd;
                                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                                if (msg.nfds < FAKEMGR_MSG_FDS)
                                        fds[msg.nfds++] = fd;
                                else
                                        close(fd);
                        }
                }
        msg.ctrunc = (mh.msg_flags & MSG_CTRUNC) != 0;
        parse_lines(m, buf, &msg);

        m->ready += msg.ready;
        m->stopping += msg.stopping;
        m->watchdog += msg.watchdog;
        m->status += msg.status;
        if (msg.store) {
                m->stores++;
                if (msg.nfds == 1 && !msg.ctrunc) {
                        if (fakemgr_put(m, msg.name, fds[0]) == 0) {
                                msg.fd = fds[0];
                                fds[0] = -1;
                        } else
                                m->refused++;
                }
        }
        if (msg.barrier) {
                m->barriers++;
                if (m->hold_barriers && msg.nfds == 1 && m->nheld < sizeof(m->held) / sizeof(m->held[0])) {
                        m->held[m->nheld++] = fds[0];
                        fds[0] = -1;
                }
        }
        /* Closing a barrier's fd answers it: everything before was read. */
        for (unsigned i = 0; i < msg.nfds; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        if (msg.remove) {
                m->removes++;
                fakemgr_remove(m, msg.name);
        }
        if (ret_msg)
                *ret_msg = msg;
        return msg.store || msg.remove ? 1 : 2;
}

static void check_refused(const fakemgr *m) {
        cr_assert_eq(m->refused, 0, "the fake manager's store is full (%u fds): %u refused", m->cap,
                     m->refused);
}

void fakemgr_drain(fakemgr *m, int timeout_ms) {
        while (fakemgr_recv(m, timeout_ms, NULL) > 0)
                timeout_ms = 0;
        check_refused(m);
}

bool fakemgr_pump_until(fakemgr *m, bool (*pred)(const fakemgr *, void *), void *arg,
                        int timeout_ms) {
        long long end = now_ms() + timeout_ms;
        bool ok;

        while (!(ok = pred(m, arg))) {
                long long left = end - now_ms();
                if (left <= 0)
                        break;
                fakemgr_recv(m, left < 20 ? (int)left : 20, NULL);
        }
        check_refused(m);
        return ok;
}

/* ---- the daemon ---- */

static bool is_ready(const fakemgr *m, void *arg) {
        (void)arg;
        return m->ready > 0;
}

/* In the child: the fds at 3.., the environment, exec.  Never returns. */
static void exec_daemon(const fakemgr *m, const fakemgr_exec *x, int *all, unsigned n,
                        const char *names) {
        const char *argv[32];
        char pidbuf[16], nbuf[16];
        unsigned a = 0;
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);

        if (null >= 0)
                dup2(null, 0);
        if (x->log) {
                int logfd = open(x->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                if (logfd >= 0)
                        dup2(logfd, 2);
        }
        /* Out of the way first (above 3..3+n-1), then into place: dup2
         * clears close-on-exec on the targets only. */
        for (unsigned i = 0; i < n; i++)
                all[i] = fcntl(all[i], F_DUPFD_CLOEXEC, 3 + (int)n);
        for (unsigned i = 0; i < n; i++)
                if (all[i] < 0 || dup2(all[i], 3 + (int)i) < 0)
                        _exit(126);
        close_range(3 + n, ~0u, 0);
        snprintf(pidbuf, sizeof(pidbuf), "%d", (int)getpid());
        snprintf(nbuf, sizeof(nbuf), "%u", n);
        if (n) {
                setenv("LISTEN_PID", pidbuf, 1);
                setenv("LISTEN_FDS", nbuf, 1);
                setenv("LISTEN_FDNAMES", names, 1);
        }
        setenv("NOTIFY_SOCKET", m->notify, 1);
        if (x->watchdog_usec) {
                setenv("WATCHDOG_USEC", x->watchdog_usec, 1);
                setenv("WATCHDOG_PID", pidbuf, 1);
        }
        argv[a++] = IPCBROKERD_PATH;
        argv[a++] = "--socket";
        argv[a++] = x->sock;
        for (unsigned i = 0; x->args && x->args[i] && a < sizeof(argv) / sizeof(argv[0]) - 1; i++)
                argv[a++] = x->args[i];
        argv[a] = NULL;
        execv(IPCBROKERD_PATH, (char *const *)argv);
        _exit(127);
}

pid_t fakemgr_start(fakemgr *m, const fakemgr_exec *x) {
        unsigned total = m->n + x->n_extra, n = 0;
        int *all = calloc(total + 1, sizeof(int));
        size_t cap = 1;
        char *names;
        pid_t pid;

        cr_assert_not_null(all);
        for (unsigned i = 0; i < m->n; i++)
                cap += strlen(m->store[i].name) + 1;
        for (unsigned i = 0; i < x->n_extra; i++)
                cap += strlen(x->extra_names[i]) + 1;
        names = calloc(cap, 1);
        cr_assert_not_null(names);
        for (unsigned i = 0; i < total; i++) {
                const char *name = i < m->n ? m->store[i].name : x->extra_names[i - m->n];
                all[n++] = i < m->n ? m->store[i].fd : x->extra_fds[i - m->n];
                if (i)
                        strcat(names, ":");
                strcat(names, name);
        }
        m->ready = m->stopping = 0;
        pid = test_fork();
        if (pid == 0)
                exec_daemon(m, x, all, n, names);
        free(all);
        free(names);
        m->pid = pid;
        cr_assert(fakemgr_pump_until(m, is_ready, NULL, 10000), "no READY=1 from the daemon");
        return pid;
}

int fakemgr_stop(fakemgr *m) {
        int status = 0;
        pid_t r;

        if (m->pid <= 0)
                return 0;
        kill(m->pid, SIGTERM);
        /* A manager reads while its service stops: the daemon waits for
         * its BARRIER=1 to be answered before it exits. */
        while ((r = waitpid(m->pid, &status, WNOHANG)) == 0 || (r < 0 && errno == EINTR))
                fakemgr_recv(m, 10, NULL);
        cr_assert_eq(r, m->pid, "waitpid: %s", strerror(errno));
        m->pid = 0;
        fakemgr_drain(m, 100);
        return status;
}

/* ---- cleanup ---- */

void fakemgr_clear(fakemgr *m) {
        for (unsigned i = 0; i < m->n; i++)
                close(m->store[i].fd);
        m->n = 0;
        for (unsigned i = 0; i < m->nheld; i++)
                close(m->held[i]);
        m->nheld = 0;
}

void fakemgr_close(fakemgr *m) {
        fakemgr_clear(m);
        if (m->nfd >= 0)
                close(m->nfd);
        m->nfd = -1;
}

void fakemgr_destroy(fakemgr *m) {
        if (m->dir[0] == '\0')
                return; /* never initialised, or destroyed already */
        if (m->pid > 0) {
                kill(m->pid, SIGKILL);
                waitpid(m->pid, NULL, 0);
                m->pid = 0;
        }
        fakemgr_close(m);
        free(m->store);
        m->store = NULL;
        m->cap = 0;
        if (m->notify[0] && m->notify[0] != '@')
                unlink(m->notify);
        m->notify[0] = '\0';
        if (m->dir[0])
                rmdir(m->dir);
        m->dir[0] = '\0';
}
