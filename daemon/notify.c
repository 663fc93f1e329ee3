/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* notify.c: the daemon's own sd_notify (see notify.h).  libsystemd's sends
 * on a blocking socket: when the manager is slow to read and its queue
 * fills, the whole daemon would stop serving.  Here one SOCK_NONBLOCK
 * datagram socket stays connected to $NOTIFY_SOCKET; a connected Unix
 * datagram socket polls writable only when the peer's queue has room, so a
 * watch on it in the daemon's wait set (mainloop.h) says when to flush.
 * The messages are those libsystemd sends: the state text, and for the fd
 * store "FDSTORE=1\nFDNAME=name" with the fd in SCM_RIGHTS; the manager
 * takes our pid and uid from the kernel.
 *
 * At exit the queue is flushed (waiting, bounded, for room) and then a
 * BARRIER=1 message waits for the manager to have processed everything
 * sent before it: a manager that sees its main PID exit ignores the
 * messages of that PID it has not read yet (NotifyAccess=main), so an
 * FDSTORE=1 still in its queue would be lost while the catalog lists the
 * object. */
#include "notify.h"

#include "log.h"
#include "mainloop.h"
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sockios.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SNDBUF_SIZE (8 << 20) /* as libsystemd: the kernel caps it */

typedef struct fdmsg {
        struct fdmsg *prev, *next;
        int fd; /* FDSTORE: our dup; -1: FDSTOREREMOVE */
        char name[];
} fdmsg;

static int nfd = -1;
static struct sockaddr_un addr;
static socklen_t addr_len;
static mainloop_watcher poller;

static struct {
        char *text; /* NULL: nothing pending */
        uint64_t seq;
} state[NOTIFY_KIND_MAX_];
static uint64_t state_seq;
static unsigned state_pending;

static fdmsg *head, *tail;
static unsigned nstores, nremoves;
static unsigned long dropped, dropped_reported;
static long long progress_ms; /* when the fd store queue last started or shrank */
static log_ratelimit drop_rl, err_rl;

static const char *const kind_names[NOTIFY_KIND_MAX_] = {
        [NOTIFY_READY] = "READY", [NOTIFY_STATUS] = "STATUS",
        [NOTIFY_WATCHDOG] = "WATCHDOG", [NOTIFY_STOPPING] = "STOPPING",
};

bool notify_enabled(void) {
        return nfd >= 0;
}

/* One datagram, never blocking: 0, -EAGAIN (no room now), or an error.  A
 * manager that re-created its socket shows as ECONNREFUSED or ENOTCONN: one
 * new connect, one more try. */
static int send_one(const char *text, int fd) {
        int k = ipcb__sock_send(nfd, text, strlen(text), &fd, fd >= 0, MSG_DONTWAIT);

        if (k != -ECONNREFUSED && k != -ENOTCONN)
                return k;
        if (connect(nfd, (struct sockaddr *)&addr, addr_len) < 0)
                return -errno;
        return ipcb__sock_send(nfd, text, strlen(text), &fd, fd >= 0, MSG_DONTWAIT);
}

/* FDSTORE=1 with fd, or FDSTOREREMOVE=1 if fd is -1. */
static int send_fdmsg(int fd, const char *name) {
        char text[64 + 256];

        snprintf(text, sizeof(text), "%s=1\nFDNAME=%s", fd >= 0 ? "FDSTORE" : "FDSTOREREMOVE", name);
        return send_one(text, fd);
}

static void fdmsg_unlink(fdmsg *m) {
        if (m->prev)
                m->prev->next = m->next;
        else
                head = m->next;
        if (m->next)
                m->next->prev = m->prev;
        else
                tail = m->prev;
        if (m->fd >= 0) {
                close(m->fd);
                nstores--;
        } else
                nremoves--;
        free(m);
}

static void fdmsg_append(fdmsg *m) {
        m->next = NULL;
        m->prev = tail;
        if (tail)
                tail->next = m;
        else
                head = m;
        tail = m;
        if (m->fd >= 0)
                nstores++;
        else
                nremoves++;
}

static long long now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void report_error(const char *what, const char *name, int k) {
        if (log_ratelimit_ok(&err_rl, 1))
                log_warn("notify: cannot send %s%s%s to the service manager: %s", what, name ? " of " : "",
                         name ? name : "", strerror(-k));
}

static void report_drop(const char *name) {
        dropped++;
        if (log_ratelimit_ok(&drop_rl, 1))
                log_warn("notify: the service manager is not reading; %u fd store messages wait and "
                         "FDSTORE of %s was dropped (%lu so far): objects stored since may not survive a "
                         "restart", nstores + nremoves, name, dropped);
}

/* If the watch cannot be set (out of memory), every new message flushes. */
static void poll_writable(bool on) {
        (void)mainloop_watch(&poller, nfd, on ? EPOLLOUT : 0);
}

/* Send what waits, state messages first (oldest first), then the fd store
 * queue in order, until the socket is full again.  True if all went. */
static bool flush(void) {
        int k;

        while (state_pending) {
                int oldest = -1;
                for (int i = 0; i < NOTIFY_KIND_MAX_; i++)
                        if (state[i].text && (oldest < 0 || state[i].seq < state[oldest].seq))
                                oldest = i;
                k = send_one(state[oldest].text, -1);
                if (k == -EAGAIN)
                        return false;
                if (k < 0)
                        report_error(kind_names[oldest], NULL, k);
                free(state[oldest].text);
                state[oldest].text = NULL;
                state_pending--;
        }
        while (head) {
                k = send_fdmsg(head->fd, head->name);
                if (k == -EAGAIN)
                        return false;
                if (k < 0)
                        report_error(head->fd >= 0 ? "FDSTORE" : "FDSTOREREMOVE", head->name, k);
                fdmsg_unlink(head);
                progress_ms = now_ms();
        }
        if (dropped != dropped_reported) {
                log_info("notify: the service manager caught up; %lu fd store messages were dropped",
                         dropped - dropped_reported);
                dropped_reported = dropped;
        }
        return true;
}

static void on_writable(mainloop_watcher *w, uint32_t events) {
        (void)w;
        (void)events;
        poll_writable(!flush());
}

static void backlog_started(void) {
        if (!poller.events)
                log_debug("notify: the service manager's queue is full; queueing");
        poll_writable(true);
        if (!poller.events) /* no watch: retry at each new message */
                (void)flush();
}

void notify_state(notify_kind kind, const char *text) {
        char *copy;
        int k;

        if (nfd < 0 || (unsigned)kind >= NOTIFY_KIND_MAX_)
                return;
        if (!state_pending) {
                k = send_one(text, -1);
                if (k != -EAGAIN) {
                        if (k < 0)
                                report_error(kind_names[kind], NULL, k);
                        return;
                }
        }
        copy = strdup(text);
        if (!copy) {
                report_error(kind_names[kind], NULL, -ENOMEM);
                return;
        }
        /* The newest of a kind replaces the one still waiting, in its place. */
        if (state[kind].text)
                free(state[kind].text);
        else {
                state[kind].seq = ++state_seq;
                state_pending++;
        }
        state[kind].text = copy;
        backlog_started();
}

/* Queue an fd store message; fd: ours (consumed), or -1 for a removal. */
static void enqueue(int fd, const char *name) {
        size_t len = strlen(name);
        fdmsg *m = malloc(sizeof(*m) + len + 1);

        if (!m) {
                if (fd >= 0)
                        close(fd);
                report_error(fd >= 0 ? "FDSTORE" : "FDSTOREREMOVE", name, -ENOMEM);
                return;
        }
        m->fd = fd;
        memcpy(m->name, name, len + 1);
        if (!head)
                progress_ms = now_ms();
        fdmsg_append(m);
        backlog_started();
}

void notify_fdstore(int fd, const char *name) {
        int k, dup;

        if (nfd < 0)
                return;
        if (!head) {
                k = send_fdmsg(fd, name);
                if (k != -EAGAIN) {
                        if (k < 0)
                                report_error("FDSTORE", name, k);
                        return;
                }
        }
        if (nstores >= NOTIFY_QUEUE_MAX) {
                report_drop(name);
                return;
        }
        dup = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (dup < 0) {
                report_error("FDSTORE", name, -errno);
                return;
        }
        enqueue(dup, name);
}

bool notify_congested(void) {
        return nstores >= NOTIFY_CONGESTED && now_ms() - progress_ms < NOTIFY_STUCK_MS;
}

void notify_fdstore_remove(const char *name) {
        int k;

        if (nfd < 0)
                return;
        if (!head) {
                k = send_fdmsg(-1, name);
                if (k != -EAGAIN) {
                        if (k < 0)
                                report_error("FDSTOREREMOVE", name, k);
                        return;
                }
        } else {
                /* The latest waiting message of this name decides: a store
                 * the manager has not seen is simply forgotten (the name was
                 * removed before it was stored), a removal is already due. */
                for (fdmsg *m = tail; m; m = m->prev) {
                        if (strcmp(m->name, name) != 0)
                                continue;
                        if (m->fd >= 0)
                                fdmsg_unlink(m);
                        if (!head && !state_pending)
                                poll_writable(false);
                        return;
                }
        }
        enqueue(-1, name);
}

int notify_init(void) {
        const char *e = getenv("NOTIFY_SOCKET");
        int sndbuf = SNDBUF_SIZE, fd;
        size_t n;

        if (!e || !*e)
                return 0;
        n = strlen(e);
        if ((e[0] != '/' && e[0] != '@') || n >= sizeof(addr.sun_path)) {
                log_warn("notify: NOTIFY_SOCKET=%s is not a Unix socket path; not talking to the service "
                         "manager", e);
                return -EINVAL;
        }
        memset(&addr, 0, sizeof(addr));
        addr.sun_family = AF_UNIX;
        memcpy(addr.sun_path, e, n);
        if (e[0] == '@')
                addr.sun_path[0] = '\0'; /* abstract: the length says where the name ends */
        addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (e[0] == '/'));

        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
                int k = -errno;
                log_err("notify: cannot create a socket: %s", strerror(-k));
                return k;
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        /* Not there yet is not fatal: every send tries to connect again. */
        if (connect(fd, (struct sockaddr *)&addr, addr_len) < 0)
                log_warn("notify: cannot connect to %s: %m", e);
        poller = (mainloop_watcher){ .cb = on_writable };
        nfd = fd;
        return 1;
}

/* Wait until fd shows events (POLLHUP and POLLERR are always reported),
 * until deadline.  True if it did. */
static bool wait_until(int fd, short events, long long deadline) {
        struct pollfd p = { .fd = fd, .events = events };

        for (;;) {
                long long left = deadline - now_ms();
                int k = poll(&p, 1, left > 0 ? (int)left : 0);
                if (k > 0)
                        return true;
                if (k == 0 || errno != EINTR)
                        return false;
        }
}

/* The exit's wait for the manager: it goes on while the manager reads our
 * messages (a send went, or fewer of our bytes wait in its socket: a
 * datagram is charged to its sender until read, SIOCOUTQ), and ends once
 * it has read nothing for NOTIFY_EXIT_WAIT_MS, or at NOTIFY_EXIT_MAX_MS.  A
 * manager's fd store compares each new fd with every stored one, so with
 * many objects it may take seconds to read a backlog, and does. */
typedef struct exit_wait {
        long long cap, last;
        int unread;
} exit_wait;

static long long exit_deadline(exit_wait *e) {
        int q;

        if (ioctl(nfd, SIOCOUTQ, &q) == 0) {
                if (q < e->unread)
                        e->last = now_ms();
                e->unread = q;
        }
        if (progress_ms > e->last)
                e->last = progress_ms;
        return e->last + NOTIFY_EXIT_WAIT_MS < e->cap ? e->last + NOTIFY_EXIT_WAIT_MS : e->cap;
}

/* Wait until fd shows events, in slices that look at the manager's
 * progress: true if it did, false once the wait is over. */
static bool exit_wait_for(exit_wait *e, int fd, short events) {
        for (;;) {
                long long d = exit_deadline(e), now = now_ms();
                if (now >= d)
                        return false;
                if (wait_until(fd, events, d < now + 100 ? d : now + 100))
                        return true;
        }
}

/* Send what waits, waiting for room while the manager reads.  True if
 * everything went. */
static bool exit_flush(exit_wait *e) {
        while (!flush())
                if (!exit_wait_for(e, nfd, POLLOUT))
                        return flush();
        return true;
}

/* BARRIER=1 with the write end of a pipe: the manager closes its copy once
 * it has processed every message we sent before, and our read end then
 * sees POLLHUP (what sd_notify_barrier does, without blocking past the
 * wait). */
static void exit_barrier(exit_wait *e) {
        int p[2], k;

        if (pipe2(p, O_CLOEXEC) < 0) {
                log_warn("notify: cannot make the barrier's pipe: %m; the service manager may not take "
                         "the fds sent last");
                return;
        }
        while ((k = send_one("BARRIER=1", p[1])) == -EAGAIN && exit_wait_for(e, nfd, POLLOUT))
                ;
        close(p[1]); /* only the manager's copy keeps it open now */
        if (k < 0)
                log_warn("notify: cannot send BARRIER=1 to the service manager: %s; it may not take the "
                         "fds sent last, and their objects may not survive the restart",
                         k == -EAGAIN ? "its queue stayed full" : strerror(-k));
        else if (!exit_wait_for(e, p[0], 0))
                log_warn("notify: the service manager did not confirm that it has read our messages "
                         "(BARRIER=1): it read nothing for %d ms, or %d ms went by; exiting anyway: "
                         "objects stored last may not survive the restart",
                         NOTIFY_EXIT_WAIT_MS, NOTIFY_EXIT_MAX_MS);
        close(p[0]);
}

void notify_fini(void) {
        exit_wait e;
        unsigned lost_stores;

        if (nfd < 0)
                return;
        e = (exit_wait){ .cap = now_ms() + NOTIFY_EXIT_MAX_MS, .last = now_ms(), .unread = INT_MAX };
        if (exit_flush(&e))
                exit_barrier(&e);
        lost_stores = nstores;
        if (state_pending || head)
                log_warn("notify: the service manager is not reading; at exit %u state messages and %u fd "
                         "store messages were not sent%s",
                         state_pending, nstores + nremoves,
                         lost_stores ? ": objects stored since may not survive the restart" : "");
        for (int i = 0; i < NOTIFY_KIND_MAX_; i++) {
                free(state[i].text);
                state[i].text = NULL;
        }
        state_pending = 0;
        while (head)
                fdmsg_unlink(head);
        poll_writable(false); /* out of the wait set before the fd goes */
        close(nfd);
        nfd = -1;
}
