/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* client.c: libipcbroker, the client side of the ipcbrokerd protocol.
 *
 * Owns the connection (one SOCK_SEQPACKET socket per ipcb_client, requests
 * serialized by a mutex, one request in flight, each bounded by the client's
 * timeout), the receive path (every fd that arrives is either handed to the
 * caller or closed; a late reply to a request that timed out is disposed of
 * when it comes), and the local half of a segment handle (mapping + memfd).
 * Wire encoding lives in proto/. */
#include "ipcbroker.h"

#include "futex.h"
#include "internal.h"
#include "pollnotify.h"
#include "proto.h"
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

_Static_assert(IPCB_SHM_PERSISTENT == IPCB_WF_PERSISTENT, "flag mismatch");
_Static_assert(IPCB_SHM_GROWABLE == IPCB_WF_GROWABLE, "flag mismatch");
_Static_assert(IPCB_OBJ_UNLINKED == IPCB_WF_UNLINKED, "flag mismatch");
_Static_assert(IPCB_READ_ONLY == IPCB_WA_READ_ONLY, "access mismatch");
_Static_assert(IPCB_READ_WRITE == IPCB_WA_READ_WRITE, "access mismatch");



ipcb_client *ipcb__client_ref(ipcb_client *c) {
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
        return c;
}

void ipcb__client_unref(ipcb_client *c) {
        if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
                return;
        if (c->fd >= 0)
                close(c->fd);
        pthread_mutex_destroy(&c->lock);
        free(c);
}

static void close_fds(int *fds, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                close(fds[i]);
}

/* ---- deadlines ---- */

static void deadline_start(ipcb_client *c) {
        int ms = atomic_load_explicit(&c->timeout_ms, memory_order_relaxed);

        c->has_deadline = ms >= 0;
        if (c->has_deadline)
                deadline_after(ms, &c->deadline);
}

const struct timespec *ipcb__client_deadline(const ipcb_client *c) {
        return c->has_deadline ? &c->deadline : NULL;
}

/* Time left until *deadline into *ret; false once it has passed. */
static bool deadline_left(const struct timespec *deadline, struct timespec *ret) {
        struct timespec now;

        clock_gettime(CLOCK_MONOTONIC, &now);
        ret->tv_sec = deadline->tv_sec - now.tv_sec;
        ret->tv_nsec = deadline->tv_nsec - now.tv_nsec;
        if (ret->tv_nsec < 0) {
                ret->tv_sec--;
                ret->tv_nsec += 1000000000L;
        }
        return ret->tv_sec > 0 || (ret->tv_sec == 0 && ret->tv_nsec > 0);
}

int ipcb__client_lock(ipcb_client *c) {
        int ms = atomic_load_explicit(&c->timeout_ms, memory_order_relaxed);
        struct timespec dl;
        int r;

        if (ms < 0) {
                pthread_mutex_lock(&c->lock);
                c->has_deadline = false;
                return 0;
        }
        deadline_after(ms, &dl);
        r = pthread_mutex_clocklock(&c->lock, CLOCK_MONOTONIC, &dl);
        if (r != 0)
                return r == ETIMEDOUT ? -ETIMEDOUT : -r;
        c->has_deadline = true;
        c->deadline = dl;
        return 0;
}

void ipcb__client_lock_untimed(ipcb_client *c) {
        pthread_mutex_lock(&c->lock);
        deadline_start(c);
}

/* Wait until c->fd has room to send, reading meanwhile what arrives: the
 * broker stops reading our requests while its replies wait for room in
 * our socket, so a sender that did not read could wait for ever. */
static int client_wait_send(ipcb_client *c) {
        int r;

        for (;;) {
                struct pollfd p = { .fd = c->fd, .events = POLLIN | POLLOUT };
                struct timespec left;
                if (c->has_deadline && !deadline_left(&c->deadline, &left))
                        return -ETIMEDOUT;
                r = ppoll(&p, 1, c->has_deadline ? &left : NULL, NULL);
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (r <= 0)
                        continue;
                if (p.revents & POLLIN) {
                        ipcb__loop_receive(c);
                        if (c->dead)
                                return -ENOTCONN;
                }
                if (p.revents & (POLLOUT | POLLERR | POLLHUP))
                        return 0;
        }
}

/* ---- one request ---- */

/* The connection is unusable (hang-up, I/O error, or a reply we cannot trust,
 * after which request and reply may be out of step).  Shutting the socket
 * down tells the broker at once, so it drops our handles; the fd itself is
 * closed by ipcb_disconnect().  Caller holds the lock. */
void ipcb__client_kill(ipcb_client *c) {
        if (!c->dead && c->fd >= 0)
                shutdown(c->fd, SHUT_RDWR);
        c->dead = true;
        atomic_store(&c->gone, true);
        ipcb__loop_lost(c);
}

/* Send req (lock held).  A full socket is waited for until the deadline:
 * -ETIMEDOUT then, and nothing was sent (one datagram goes whole or not at
 * all). */
static int client_send(ipcb_client *c, ipcb_msg *req) {
        uint8_t buf[IPCB_MSG_MAX];
        ssize_t len;
        int r;

        /* Asynchronous requests queued before this one go first: replies
         * come in request order. */
        while ((r = ipcb__loop_flush(c)) == -EAGAIN)
                if ((r = client_wait_send(c)) < 0)
                        return r;
        if (r < 0)
                return r;
        /* id 0 is never a request's: watch events carry it */
        if (++c->last_id == 0)
                c->last_id = 1;
        req->hdr.id = c->last_id;
        len = ipcb__proto_encode(req, buf, sizeof(buf));
        if (len < 0)
                return (int)len;

        /* SHM_REGISTER carries the memfd in c->send_fd. */
        for (;;) {
                r = ipcb__sock_send(c->fd, buf, (size_t)len, &c->send_fd,
                                   req->hdr.nfds == 1 ? 1 : 0, MSG_DONTWAIT);
                if (r != -EAGAIN)
                        break;
                r = client_wait_send(c);
                if (r < 0)
                        return r;
        }
        if (r < 0) {
                if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN) {
                        ipcb__client_kill(c);
                        return -ENOTCONN;
                }
                return r; /* nothing was sent: the connection is fine */
        }
        return 0;
}

/* Receive one datagram into buf (IPCB_MSG_MAX bytes), waiting until the
 * deadline.  Returns 0 and *rx (its fds owned by the caller), -ETIMEDOUT
 * (the connection stays), or another negative errno with the connection
 * killed and every received fd closed. */
/* Let a blocking receive wait no longer than the deadline (SO_RCVTIMEO).
 * The option is left alone while it ends at most 1 ms after the deadline,
 * so a request normally costs no setsockopt.  A blocking recvmsg rather than
 * ppoll + recvmsg: one syscall less, and the kernel's synchronous wake-up
 * keeps a request and its reply on one CPU where it can. */
static int recv_timeout(ipcb_client *c) {
        struct timespec left;
        long long want = 0, have = c->rcvtimeo_us;

        if (c->has_deadline) {
                if (!deadline_left(&c->deadline, &left))
                        return -ETIMEDOUT;
                want = (long long)left.tv_sec * 1000000 + left.tv_nsec / 1000;
                if (want < 1)
                        want = 1;
        }
        if (have >= 0 && (want == 0 ? have == 0 : have >= want && have - want <= 1000))
                return 0;
        struct timeval tv = { .tv_sec = want / 1000000, .tv_usec = want % 1000000 };
        if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
                return -errno;
        c->rcvtimeo_us = want;
        return 0;
}

static int client_recv(ipcb_client *c, uint8_t *buf, ipcb_sock_rx *rx) {
        int n;

        for (;;) {
                n = recv_timeout(c);
                if (n < 0)
                        break;
                /* -EAGAIN: SO_RCVTIMEO ran out; the deadline decides */
                n = ipcb__sock_recv(c->fd, buf, IPCB_MSG_MAX, 0, NULL, rx);
                if (n != -EAGAIN)
                        break;
        }
        if (n == -ETIMEDOUT)
                return n;
        if (n <= 0) {
                ipcb__client_kill(c);
                if (n == 0 || n == -ECONNRESET || n == -EPIPE || n == -ENOTCONN)
                        return -ENOTCONN;
                return n == -EMSGSIZE || n == -EBADMSG ? -EPROTO : n;
        }
        return 0;
}

/* The broker handle a success reply gives us, if any. */
bool ipcb__client_reply_handle(const ipcb_msg *reply, uint64_t *ret) {
        if (reply->hdr.status < 0)
                return false;
        switch (reply->hdr.op & ~IPCB_OP_REPLY) {
        case IPCB_OP_SHM_CREATE:
        case IPCB_OP_SHM_OPEN:
        case IPCB_OP_SHM_REGISTER:
                *ret = reply->shm_reply.handle;
                return *ret != 0; /* 0: an FD_ONLY open, no handle */
        case IPCB_OP_SEM_CREATE:
        case IPCB_OP_SEM_OPEN:
                *ret = reply->sem_reply.handle;
                return true;
        }
        return false;
}

/* A request that timed out still owes its reply. */
static void note_late(ipcb_client *c, uint32_t id) {
        if (!c->late) {
                c->late = true;
                c->late_from = id;
        }
}

/* Receive the reply to request `id` into buf and *reply, its fds into fds
 * and *ret_nfds; *ret_lost when the kernel could not install them.  Replies
 * owed to requests that timed out earlier are disposed of on the way: fds
 * closed, a handle released.  Anything else out of order is a protocol
 * error. */
static int client_recv_reply(ipcb_client *c, uint32_t id, uint8_t *buf, ipcb_msg *reply,
                             int *fds, unsigned *ret_nfds, bool *ret_lost) {
        ipcb_sock_rx rx;
        uint64_t h;
        int r;

        for (;;) {
                r = client_recv(c, buf, &rx);
                if (r < 0)
                        return r;
                /* MSG_CTRUNC: we are out of fds (EMFILE), so the kernel
                 * dropped the reply's fds; ipcb__sock_recv closed any that
                 * came.  The bytes are intact: decode them against the fd
                 * count the header declares (byte 2), which must not be 0. */
                if (!rx.fds_lost)
                        r = ipcb__proto_decode(buf, rx.len, rx.nfds, reply);
                else if (rx.len >= IPCB_HDR_SIZE && buf[2] > 0)
                        r = ipcb__proto_decode(buf, rx.len, buf[2], reply);
                else
                        r = -EBADMSG;
                if (r == 0 && reply->hdr.id == id)
                        break;
                /* An answer to an asynchronous request: loop.c keeps it
                 * for ipcb_process(). */
                if (r == 0 && ipcb__loop_route(c, reply, buf, &rx))
                        continue;
                /* Late replies come in order, and only between the first
                 * request that timed out and this one. */
                if (r == 0 && c->late && (int32_t)(reply->hdr.id - c->late_from) >= 0 &&
                    (int32_t)(reply->hdr.id - id) < 0) {
                        c->late_from = reply->hdr.id + 1;
                        close_fds(rx.fds, rx.nfds);
                        if (ipcb__client_reply_handle(reply, &h))
                                (void)ipcb__client_release_handle_locked(c, h);
                        continue;
                }
                close_fds(rx.fds, rx.nfds);
                ipcb__client_kill(c);
                return -EPROTO;
        }
        c->late = false; /* everything before id has been answered */
        memcpy(fds, rx.fds, rx.nfds * sizeof(int));
        *ret_nfds = rx.nfds;
        *ret_lost = rx.fds_lost;
        return 0;
}

/* The connection that gave this thread's last reply: a handle in it
 * belongs to that connection only. */
static _Thread_local uint32_t reply_gen;

uint32_t ipcb__client_reply_gen(void) {
        return reply_gen;
}

/* Send req and wait for its reply until c's deadline; caller holds c->lock.
 * buf (IPCB_MSG_MAX bytes) receives the datagram, which names in *reply
 * point into.  On success the reply's fd, if any, is stored in *ret_fd when
 * ret_fd is given and closed otherwise.  A reply with a negative status
 * returns that status. */
int ipcb__client_call_once(ipcb_client *c, ipcb_msg *req, uint8_t *buf, ipcb_msg *reply, int *ret_fd) {
        int fds[IPCB_FDS_MAX];
        unsigned nfds = 0;
        bool lost = false;
        uint64_t h;
        int r;

        if (c->dead)
                return -ENOTCONN;
        r = client_send(c, req);
        if (r < 0)
                return r;
        r = client_recv_reply(c, req->hdr.id, buf, reply, fds, &nfds, &lost);
        if (r == -ETIMEDOUT)
                note_late(c, req->hdr.id);
        if (r < 0)
                return r;
        reply_gen = c->conn_gen;
        if (reply->hdr.op != (req->hdr.op | IPCB_OP_REPLY)) {
                close_fds(fds, nfds);
                ipcb__client_kill(c);
                return -EPROTO;
        }
        if (reply->hdr.status < 0) /* the decoder guarantees no fds here */
                return reply->hdr.status;
        /* Out of fds.  Only this request fails: give back the handle the
         * broker made for it, and keep the connection and every other
         * handle.  (A lock page's token stays on its segment handle: the
         * next lock call asks again.) */
        if (lost) {
                if (ipcb__client_reply_handle(reply, &h))
                        (void)ipcb__client_release_handle_locked(c, h);
                return -EMFILE;
        }
        if (ret_fd && nfds > 0) {
                *ret_fd = fds[0];
                close_fds(fds + 1, nfds - 1);
        } else
                close_fds(fds, nfds);
        return 0;
}

/* A connection that was lost (not closed by ipcb_disconnect) is replaced
 * once, transparently: the broker may have restarted (docs/systemd.md).  A
 * request whose reply was lost is sent again on the new connection. */
int ipcb__client_call(ipcb_client *c, ipcb_msg *req, uint8_t *buf, ipcb_msg *reply, int *ret_fd) {
        bool retried = false;
        int r;

        for (;;) {
                if (c->dead && !c->disconnected && !retried) {
                        retried = true;
                        r = ipcb__client_reconnect(c);
                        if (r < 0)
                                return r;
                }
                r = ipcb__client_call_once(c, req, buf, reply, ret_fd);
                if (r != -ENOTCONN || !c->dead || c->disconnected || retried)
                        return r;
        }
}

int ipcb__client_request(ipcb_client *c, ipcb_msg *req, uint8_t *buf, ipcb_msg *reply, int *ret_fd) {
        int r;

        if ((r = ipcb__client_lock(c)) < 0)
                return r;
        r = ipcb__client_call(c, req, buf, reply, ret_fd);
        pthread_mutex_unlock(&c->lock);
        return r;
}

int ipcb__client_objs_request(ipcb_client *c, client_obj *const *objs, uint64_t *const *idps,
                              unsigned n, ipcb_msg *req, uint8_t *buf, ipcb_msg *reply, int *ret_fd) {
        bool retried = false;
        int r;

        if ((r = ipcb__client_lock(c)) < 0)
                return r;
        for (;;) {
                if (c->dead && !c->disconnected && !retried) {
                        retried = true;
                        if ((r = ipcb__client_reconnect(c)) < 0)
                                break;
                }
                for (unsigned i = 0; i < n; i++) {
                        if (!c->dead && (objs[i]->orphan || objs[i]->conn_gen != c->conn_gen)) {
                                r = -EBADF;
                                goto out;
                        }
                        *idps[i] = objs[i]->handle;
                }
                r = ipcb__client_call_once(c, req, buf, reply, ret_fd);
                if (r != -ENOTCONN || !c->dead || c->disconnected || retried)
                        break;
        }
out:
        pthread_mutex_unlock(&c->lock);
        return r;
}

int ipcb__client_obj_request(ipcb_client *c, client_obj *obj, ipcb_msg *req, uint64_t *idp,
                             uint8_t *buf, ipcb_msg *reply, int *ret_fd) {
        return ipcb__client_objs_request(c, &obj, &idp, 1, req, buf, reply, ret_fd);
}

/* ipcb__client_request of a request only a daemon with capability cap
 * serves: -EOPNOTSUPP, without asking, from one without it; and from one
 * that a reconnect inside the call found without it (which refused the
 * request it did not know). */
static int client_request_if(ipcb_client *c, ipcb_msg *req, uint8_t *buf, ipcb_msg *reply,
                             int *ret_fd, uint32_t cap) {
        int r;

        if ((r = ipcb__client_lock(c)) < 0)
                return r;
        r = (c->caps & cap) != cap ? -EOPNOTSUPP : ipcb__client_call(c, req, buf, reply, ret_fd);
        if (r < 0 && (c->caps & cap) != cap)
                r = -EOPNOTSUPP;
        pthread_mutex_unlock(&c->lock);
        return r;
}

int ipcb__client_name_check(const char *name, ipcb_name *ret) {
        size_t len;
        int r;

        if (!name)
                return -EINVAL;
        len = strnlen(name, IPCB_NAME_MAX + 1);
        r = ipcb__name_check(name, len);
        if (r < 0)
                return r;
        *ret = (ipcb_name){ .ptr = name, .len = (uint16_t)len };
        return 0;
}

/* ---- connection ---- */

static int client_hello(ipcb_client *c) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_HELLO }, reply;
        int r;

        req.hello.version = IPCB_PROTO_VERSION;
        req.hello.caps = 0;
        r = ipcb__client_call_once(c, &req, buf, &reply, NULL);
        if (r < 0)
                return r;
        if (reply.hello_reply.version != IPCB_PROTO_VERSION)
                return -EPROTONOSUPPORT;
        c->msg_max = reply.hello_reply.msg_max;
        c->name_max = reply.hello_reply.name_max;
        c->fds_max = reply.hello_reply.fds_max;
        c->caps = reply.hello_reply.caps;
        return 0;
}

/* $IPCBROKER_TIMEOUT_MS: a decimal number of milliseconds (> 0), or a
 * negative number for no timeout.  Anything else is ignored. */
static int timeout_default(void) {
        const char *env = secure_getenv("IPCBROKER_TIMEOUT_MS");
        char *end;
        long v;

        if (!env || !*env)
                return IPCB_TIMEOUT_DEFAULT_MS;
        errno = 0;
        v = strtol(env, &end, 10);
        if (errno != 0 || *end != '\0' || v == 0 || v > INT_MAX)
                return IPCB_TIMEOUT_DEFAULT_MS;
        return v < 0 ? -1 : (int)v;
}

/* One directory on the way to the socket: a symlink (the path changed
 * under us) or a directory that someone other than root, the broker and
 * us could rename or fill is no proof of anything.  The socket's own
 * directory must be the broker's and writable by nobody else, sticky or
 * not; one above may be writable by others if sticky (they cannot rename
 * what is not theirs). */
static bool dir_guarded(const char *dir, uid_t broker, bool innermost) {
        struct stat st;

        if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return false;
        if (innermost)
                return st.st_uid == broker && !(st.st_mode & (S_IWGRP | S_IWOTH));
        if (st.st_uid != 0 && st.st_uid != broker && st.st_uid != geteuid())
                return false;
        return !(st.st_mode & (S_IWGRP | S_IWOTH)) || (st.st_mode & S_ISVTX);
}

/* Is the process listening at sa a broker we may talk to?  Only root, our
 * own euid, or the uid that owns the socket's directory when nobody else
 * can write it (or replace it: every directory above must be guarded too).
 * Anyone else may have bound the path first, to be sent our requests and
 * the memfds we register.  SO_PEERCRED of a connected socket names the
 * process that called listen(2) (the service manager, when socket-activated).
 * 0, or -EKEYREJECTED; fd has carried nothing yet. */
static int broker_check(int fd, const struct sockaddr_un *sa) {
        char path[sizeof(sa->sun_path)], real[PATH_MAX], *slash;
        struct ucred uc;
        socklen_t len = sizeof(uc);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
                return -errno;
        if (uc.uid == 0 || uc.uid == geteuid())
                return 0;
        /* The directory, canonical: an abstract name has none. */
        memcpy(path, sa->sun_path, sizeof(path));
        path[sizeof(path) - 1] = '\0';
        if (!path[0])
                return -EKEYREJECTED;
        slash = strrchr(path, '/');
        if (!slash)
                strcpy(path, ".");
        else if (slash == path)
                path[1] = '\0';
        else
                *slash = '\0';
        if (!realpath(path, real))
                return -EKEYREJECTED;
        for (bool innermost = true;; innermost = false) {
                if (!dir_guarded(real, uc.uid, innermost))
                        return -EKEYREJECTED;
                slash = strrchr(real, '/');
                if (!slash || !slash[1])
                        return 0; /* "/" was the last */
                slash[slash == real ? 1 : 0] = '\0';
        }
}

int ipcb__client_dial(const struct sockaddr_un *sa, const struct timespec *deadline) {
        struct timespec left;
        int fd, r;

        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        for (;;) {
                /* connect(2) on a Unix socket waits while the listener's
                 * backlog is full (a broker that is stopped or swamped), as
                 * long as SO_SNDTIMEO says; it then fails with EAGAIN.  Every
                 * later send is MSG_DONTWAIT, so the option matters only here. */
                if (deadline) {
                        struct timeval tv;

                        if (!deadline_left(deadline, &left)) {
                                r = -ETIMEDOUT;
                                break;
                        }
                        tv.tv_sec = left.tv_sec;
                        tv.tv_usec = (left.tv_nsec + 999) / 1000;
                        if (tv.tv_usec >= 1000000) {
                                tv.tv_sec++;
                                tv.tv_usec -= 1000000;
                        }
                        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
                                r = -errno;
                                break;
                        }
                }
                r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 ? -errno : 0;
                /* After EINTR the connection may complete on its own. */
                if (r == -EISCONN)
                        r = 0;
                if (r == -EINTR || (r == -EAGAIN && deadline))
                        continue;
                break;
        }
        /* Before anything is sent: it may be an impostor. */
        if (r == 0)
                r = broker_check(fd, sa);
        if (r < 0) {
                close(fd);
                return r;
        }
        return fd;
}

/* The path rule and the explicit choices live in connect.c. */
int ipcb__client_connect_to(const char *socket_path, int broker, ipcb_client **ret) {
        struct sockaddr_un sa;
        ipcb_client *c;
        int r;

        if (!ret)
                return -EINVAL;
        r = ipcb__client_socket_addr(socket_path, broker, &sa);
        if (r < 0)
                return r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        r = pthread_mutex_init(&c->lock, NULL);
        if (r != 0) {
                free(c);
                return -r;
        }
        atomic_init(&c->refs, 1);
        c->default_timeout_ms = timeout_default();
        atomic_init(&c->timeout_ms, c->default_timeout_ms);
        /* One deadline for connect and HELLO: nobody else has c yet. */
        deadline_start(c);
        c->rcvtimeo_us = -1;
        c->fd = ipcb__client_dial(&sa, ipcb__client_deadline(c));
        if (c->fd < 0) {
                r = c->fd;
                c->fd = -1;
                goto fail;
        }
        r = client_hello(c);
        if (r < 0)
                goto fail;
        c->addr = sa;
        *ret = c;
        return 0;
fail:
        ipcb__client_unref(c);
        return r;
}

int ipcb_connect(const char *socket_path, ipcb_client **ret) {
        return ipcb__client_connect_to(socket_path, IPCB_BROKER_DEFAULT, ret);
}

int ipcb_set_timeout(ipcb_client *c, int timeout_ms) {
        if (!c)
                return -EINVAL;
        if (timeout_ms == 0)
                timeout_ms = c->default_timeout_ms;
        atomic_store_explicit(&c->timeout_ms, timeout_ms < 0 ? -1 : timeout_ms,
                              memory_order_relaxed);
        return 0;
}

void ipcb_disconnect(ipcb_client *c) {
        if (!c)
                return;
        pthread_mutex_lock(&c->lock);
        if (c->fd >= 0) {
                shutdown(c->fd, SHUT_RDWR);
                close(c->fd);
                c->fd = -1;
        }
        c->dead = true;
        atomic_store(&c->gone, true);
        c->disconnected = true;
        ipcb__loop_free(c);
        pthread_mutex_unlock(&c->lock);
        ipcb__client_unref(c);
}

/* ---- segments ---- */

/* Release a broker handle without waiting: the CLOSE carries NOREPLY, so
 * a close costs no round trip.  The broker handles this connection's
 * requests in order, so any later request on it sees the handle gone. */
int ipcb__client_release_handle(ipcb_client *c, uint64_t handle, uint32_t gen) {
        int r = 0;

        ipcb__client_lock_untimed(c);
        if (gen == c->conn_gen) /* else it died with its connection */
                r = ipcb__client_release_handle_locked(c, handle);
        pthread_mutex_unlock(&c->lock);
        return r;
}

int ipcb__client_release_handle_locked(ipcb_client *c, uint64_t handle) {
        ipcb_msg req = { .hdr = { .op = IPCB_OP_CLOSE, .flags = IPCB_HF_NOREPLY } };
        int r;

        req.close.handle = handle;
        /* After an explicit ipcb_disconnect() the broker has already dropped
         * every handle of the connection: nothing is left undone, so this is
         * not an error.  A connection that was lost is reported as -ENOTCONN,
         * as the header promises, since the caller did not expect it. */
        if (c->disconnected)
                r = 0;
        else if (c->dead)
                r = -ENOTCONN;
        else
                r = client_send(c, &req);
        return r;
}

/* A round trip: when its reply arrives, everything sent before has been
 * handled (HELLO may be repeated; it changes nothing). */
int ipcb_sync(ipcb_client *c) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_HELLO }, reply;

        if (!c)
                return -EINVAL;
        req.hello.version = IPCB_PROTO_VERSION;
        int r = ipcb__client_lock(c);
        if (r < 0)
                return r;
        r = c->disconnected ? 0 : ipcb__client_call(c, &req, buf, &reply, NULL);
        pthread_mutex_unlock(&c->lock);
        return r;
}

/* Turn a SHM_CREATE/SHM_OPEN reply plus its fd into an ipcb_shm.  Consumes
 * fd and the broker handle on every path. */
int ipcb__client_shm_finish(ipcb_client *c, const char *name, const ipcb_msg *reply, uint32_t gen,
                      int fd, int want_access, ipcb_shm **ret) {
        uint64_t size = reply->shm_reply.size;
        int access = (int)reply->shm_reply.access;
        struct stat st;
        ipcb_shm *s;
        void *data;
        int r;

        if (fd < 0 || access != want_access || size > SIZE_MAX) {
                r = -EPROTO;
                goto fail;
        }
        /* Map only what the memfd really holds: a short file would SIGBUS. */
        if (fstat(fd, &st) < 0) {
                r = -errno;
                goto fail;
        }
        if (!S_ISREG(st.st_mode) || st.st_size < 0 || (uint64_t)st.st_size < size) {
                r = -EPROTO;
                goto fail;
        }
        s = calloc(1, sizeof(*s));
        if (!s) {
                r = -ENOMEM;
                goto fail;
        }
        /* A growable segment may be empty (created at size 0): no mapping. */
        data = size == 0 ? NULL
                         : mmap(NULL, (size_t)size,
                                access == IPCB_READ_ONLY ? PROT_READ : PROT_READ | PROT_WRITE,
                                MAP_SHARED, fd, 0);
        if (data == MAP_FAILED) {
                r = -errno;
                free(s);
                goto fail;
        }
        *s = (ipcb_shm){
                .obj.handle = reply->shm_reply.handle,
                .fd = fd,
                .data = data,
                .size = (size_t)size,
                .access = access,
                .seals = reply->shm_reply.seals,
                .info = { .uid = (uid_t)reply->shm_reply.uid, .gid = (gid_t)reply->shm_reply.gid,
                          .mode = reply->shm_reply.mode },
                .lock_poll_fd = -1,
                .lock_notify.fd = -1,
        };
        r = ipcb__client_obj_add(c, &s->obj, IPCB_KIND_SHM, name, (uint32_t)access, &st, gen);
        if (r < 0) {
                if (data)
                        munmap(data, (size_t)size);
                free(s);
                goto fail;
        }
        s->client = ipcb__client_ref(c);
        ipcb__client_obj_catch_up(c, &s->obj);
        *ret = s;
        return 0;
fail:
        if (fd >= 0)
                close(fd);
        (void)ipcb__client_release_handle(c, reply->shm_reply.handle, gen);
        return r;
}

int ipcb_shm_create(ipcb_client *c, const char *name, size_t size,
                    const ipcb_shm_options *opts, ipcb_shm **ret) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_SHM_CREATE }, reply;
        unsigned mode = 0600, flags = 0;
        int fd = -1, r;

        if (!c || !ret)
                return -EINVAL;
        r = ipcb__client_name_check(name, &req.shm_create.name);
        if (r < 0)
                return r;
        /* Read only the fields the caller's struct has (see IPCB_SHM_OPTIONS_INIT). */
        if (opts) {
                if (opts->struct_size < offsetof(ipcb_shm_options, mode) + sizeof(opts->mode))
                        return -EINVAL;
                mode = opts->mode;
                if (opts->struct_size >= offsetof(ipcb_shm_options, flags) + sizeof(opts->flags))
                        flags = opts->flags;
        }
        if ((size == 0 && !(flags & IPCB_SHM_GROWABLE)) || (mode & ~IPCB_MODE_MASK) ||
            (flags & ~IPCB_WF_CREATE_MASK))
                return -EINVAL;

        req.shm_create.size = size;
        req.shm_create.mode = mode;
        req.shm_create.flags = flags;
        r = ipcb__client_request(c, &req, buf, &reply, &fd);
        if (r < 0)
                return r;
        return ipcb__client_shm_finish(c, name, &reply, ipcb__client_reply_gen(), fd, IPCB_READ_WRITE, ret);
}

int ipcb_shm_open(ipcb_client *c, const char *name, int access, ipcb_shm **ret) {
        return ipcb_shm_open_ex(c, name, access, NULL, ret);
}

/* The request fields of ipcb_open_options (flags, owner). */
int ipcb__client_open_options(const ipcb_open_options *opts, unsigned allowed, uint32_t *ret_flags,
                        uint32_t *ret_owner) {
        *ret_flags = 0;
        *ret_owner = 0;
        if (!opts)
                return 0;
        if (opts->struct_size < offsetof(ipcb_open_options, owner) + sizeof(opts->owner) ||
            (opts->flags & ~allowed))
                return -EINVAL;
        *ret_flags = opts->flags;
        if (opts->flags & IPCB_OPEN_OWNED)
                *ret_owner = opts->owner == IPCB_OWNER_SELF ? IPCB_WO_SELF : (uint32_t)opts->owner;
        return 0;
}

int ipcb__client_shm_open_req(const char *name, int access, const ipcb_open_options *opts,
                              ipcb_msg *req) {
        int r;

        *req = (ipcb_msg){ .hdr.op = IPCB_OP_SHM_OPEN };
        if ((r = ipcb__client_name_check(name, &req->shm_open.name)) < 0)
                return r;
        if (access != IPCB_READ_ONLY && access != IPCB_READ_WRITE)
                return -EINVAL;
        req->shm_open.access = (uint32_t)access;
        return ipcb__client_open_options(opts, IPCB_OPEN_OWNED, &req->shm_open.flags,
                                         &req->shm_open.owner);
}

int ipcb_shm_open_ex(ipcb_client *c, const char *name, int access, const ipcb_open_options *opts,
                     ipcb_shm **ret) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req, reply;
        int fd = -1, r;

        if (!c || !ret)
                return -EINVAL;
        if ((r = ipcb__client_shm_open_req(name, access, opts, &req)) < 0)
                return r;
        r = ipcb__client_request(c, &req, buf, &reply, &fd);
        if (r < 0)
                return r;
        return ipcb__client_shm_finish(c, name, &reply, ipcb__client_reply_gen(), fd, access, ret);
}

int ipcb_shm_open_fd(ipcb_client *c, const char *name, int access, const ipcb_open_options *opts,
                     int *ret_fd, size_t *ret_size) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req, reply;
        struct stat st;
        int fd = -1, r;

        if (!c || !ret_fd)
                return -EINVAL;
        if ((r = ipcb__client_shm_open_req(name, access, opts, &req)) < 0)
                return r;
        req.shm_open.flags |= IPCB_WF_FD_ONLY;
        r = client_request_if(c, &req, buf, &reply, &fd, IPCB_CAP_SHM_FD_ONLY);
        if (r < 0)
                return r;
        /* Nothing to release at the broker: only the fd is ours.  It is
         * checked as a handle's is, so that a caller that maps the size it
         * is told cannot be made to fault. */
        if (fd < 0 || reply.shm_reply.handle != 0 || reply.shm_reply.access != (uint32_t)access ||
            reply.shm_reply.size > SIZE_MAX || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
            st.st_size < 0 || (uint64_t)st.st_size < reply.shm_reply.size ||
            (uint64_t)st.st_size > SIZE_MAX) {
                if (fd >= 0)
                        close(fd);
                if (reply.shm_reply.handle != 0) /* a broker that made one anyway */
                        (void)ipcb__client_release_handle(c, reply.shm_reply.handle,
                                                          ipcb__client_reply_gen());
                return -EPROTO;
        }
        *ret_fd = fd;
        if (ret_size) /* a growable segment's may have grown since it was made */
                *ret_size = (size_t)st.st_size;
        return 0;
}

void *ipcb_shm_data(const ipcb_shm *s) {
        return s ? s->data : NULL;
}

size_t ipcb_shm_size(const ipcb_shm *s) {
        return s ? s->size : 0;
}

int ipcb_shm_fd(const ipcb_shm *s) {
        return s ? s->fd : -EBADF;
}

int ipcb_shm_access(const ipcb_shm *s) {
        return s ? s->access : -EINVAL;
}

unsigned ipcb_shm_seals(const ipcb_shm *s) {
        return s ? s->seals : 0;
}

int ipcb_shm_info(const ipcb_shm *s, ipcb_handle_info *ret) {
        if (!s || !ret)
                return -EINVAL;
        *ret = s->info;
        return 0;
}

int ipcb_shm_close(ipcb_shm *s) {
        int r;

        if (!s)
                return 0;
        ipcb__lock_release_on_close(s);
        if (s->data)
                munmap(s->data, s->size);
        close(s->fd);
        r = ipcb__client_obj_release(s->client, &s->obj);
        ipcb__client_unref(s->client);
        free(s);
        return r;
}

void ipcb__client_notify(ipcb_client *c, uint16_t op, client_obj *obj, client_notify *n,
                         const _Atomic uint32_t *epoch) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = op }, reply;
        uint32_t gen = __atomic_load_n(&c->conn_gen, __ATOMIC_RELAXED), e = atomic_load(epoch);
        int fd = atomic_load(&n->fd), nfd = -1, expect = -1;

        if (fd < 0 || atomic_load(&n->gen) != gen || atomic_load(&n->epoch) != e) {
                if (ipcb__client_obj_request(c, obj, &req, &req.sem_poll.handle, buf, &reply, &nfd) < 0 ||
                    nfd < 0)
                        return;
                if (fd >= 0) {
                        (void)dup3(nfd, fd, O_CLOEXEC); /* the old number, the new eventfd */
                        close(nfd);
                } else if (!atomic_compare_exchange_strong(&n->fd, &expect, nfd)) {
                        close(nfd); /* another thread was first */
                }
                /* The epoch read before the request: a restart meanwhile
                 * costs another round trip, never a stale eventfd. */
                atomic_store(&n->epoch, e);
                atomic_store(&n->gen, __atomic_load_n(&obj->conn_gen, __ATOMIC_RELAXED));
                fd = atomic_load(&n->fd);
        }
        ipcb_notify_signal(fd);
}

int ipcb__client_poll_register(ipcb_client *c, uint16_t op, client_obj *obj, client_notify *n,
                               const _Atomic uint32_t *epoch) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = op }, reply;
        struct epoll_event ev = { .events = EPOLLIN | EPOLLET };
        uint32_t e = atomic_load(epoch);
        int fd = -1, ep, r, expect = -1;

        if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
                return -errno;
        r = ipcb__client_obj_request(c, obj, &req, &req.sem_poll.handle, buf, &reply, &fd);
        if (r == 0 && fd < 0)
                r = -EPROTO;
        if (r == 0 && epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
                r = -errno;
        if (r < 0) {
                /* (The broker counts the poller until the handle closes:
                 * releases then only signal an fd nobody watches.) */
                if (fd >= 0)
                        close(fd);
                close(ep);
                return r;
        }
        /* One fetched before (by a release, or from a broker since
         * restarted): the new eventfd on its number, which keeps the file
         * that ep watches open. */
        if (!atomic_compare_exchange_strong(&n->fd, &expect, fd)) {
                (void)dup3(fd, expect, O_CLOEXEC);
                close(fd);
        }
        atomic_store(&n->epoch, e);
        atomic_store(&n->gen, __atomic_load_n(&obj->conn_gen, __ATOMIC_RELAXED));
        return ep;
}

/* ---- namespace ---- */

int ipcb__client_unlink(ipcb_client *c, int kind, const char *name) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_UNLINK }, reply;
        int r;

        if (!c)
                return -EINVAL;
        r = ipcb__client_name_check(name, &req.unlink.name);
        if (r < 0)
                return r;
        req.unlink.kind = (uint8_t)kind;
        return ipcb__client_request(c, &req, buf, &reply, NULL);
}

int ipcb_unlink(ipcb_client *c, const char *name) {
        return ipcb__client_unlink(c, IPCB_KIND_SHM, name);
}

/* The decoder checks only that a name lies inside the datagram: the length
 * must also fit ipcb_object_info.name. */
int ipcb__client_info_from_rec(const ipcb_stat_rec *rec, ipcb_object_info *ret) {
        if (rec->name.len == 0 || rec->name.len > IPCB_NAME_MAX)
                return -EPROTO;
        memset(ret, 0, sizeof(*ret));
        ret->struct_size = sizeof(*ret);
        ret->kind = rec->kind;
        memcpy(ret->name, rec->name.ptr, rec->name.len);
        ret->name[rec->name.len] = '\0';
        ret->id = rec->id;
        ret->size = rec->size;
        ret->uid = (uid_t)rec->uid;
        ret->gid = (gid_t)rec->gid;
        ret->mode = rec->mode;
        ret->flags = rec->flags;
        ret->seals = rec->seals;
        ret->handles = rec->handles;
        ret->sem_value = rec->sem_value;
        ret->sem_max = rec->sem_max;
        ret->sem_undo_held = rec->sem_undo_held;
        return 0;
}

int ipcb_stat(ipcb_client *c, int kind, const char *name, ipcb_object_info *ret) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_STAT }, reply;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        int r;

        if (!c || !ret || ret->struct_size < OBJECT_INFO_MIN_SIZE ||
            (kind != IPCB_KIND_SHM && kind != IPCB_KIND_SEM))
                return -EINVAL;
        r = ipcb__client_name_check(name, &req.stat.name);
        if (r < 0)
                return r;
        req.stat.kind = (uint8_t)kind;
        r = ipcb__client_request(c, &req, buf, &reply, NULL);
        if (r < 0)
                return r;
        r = ipcb__client_info_from_rec(&reply.stat_reply, &info);
        if (r < 0)
                return r;
        client_out_copy(ret, &info, sizeof(info));
        return 0;
}

/* Fetch one LIST page and copy it out of the receive buffer, so that the
 * callbacks run without the lock (they may use the same client). */
static int list_page(ipcb_client *c, int kind, uint64_t cursor, ipcb_object_info **ret_infos,
                     unsigned *ret_count, uint64_t *ret_next, bool *ret_more) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_LIST }, reply;
        ipcb_object_info *infos = NULL;
        ipcb_stat_rec rec;
        unsigned n = 0;
        int r;

        req.list.kind = (uint8_t)kind;
        req.list.max = 0; /* the broker fills a page */
        req.list.cursor = cursor;
        if ((r = ipcb__client_lock(c)) < 0)
                return r;
        r = ipcb__client_call(c, &req, buf, &reply, NULL);
        pthread_mutex_unlock(&c->lock);
        if (r < 0)
                return r;

        if (reply.list_reply.count > 0) {
                infos = calloc(reply.list_reply.count, sizeof(*infos));
                if (!infos)
                        return -ENOMEM;
        }
        while (n < reply.list_reply.count && ipcb__list_iter_next(&reply.list_reply.iter, &rec)) {
                r = ipcb__client_info_from_rec(&rec, &infos[n]);
                if (r < 0) {
                        free(infos);
                        return r;
                }
                n++;
        }
        /* A page that claims more but does not move the cursor would loop. */
        if (reply.list_reply.more && reply.list_reply.next_cursor == cursor) {
                free(infos);
                return -EPROTO;
        }
        *ret_infos = infos;
        *ret_count = n;
        *ret_next = reply.list_reply.next_cursor;
        *ret_more = reply.list_reply.more;
        return 0;
}

int ipcb_list(ipcb_client *c, int kind,
              int (*cb)(const ipcb_object_info *info, void *userdata),
              void *userdata) {
        uint64_t cursor = 0;
        bool more = true;

        if (!c || !cb || (kind != 0 && kind != IPCB_KIND_SHM && kind != IPCB_KIND_SEM))
                return -EINVAL;
        while (more) {
                ipcb_object_info *infos = NULL;
                unsigned count = 0;
                int r;

                r = list_page(c, kind, cursor, &infos, &count, &cursor, &more);
                if (r < 0)
                        return r;
                for (unsigned i = 0; i < count; i++) {
                        r = cb(&infos[i], userdata);
                        if (r != 0) {
                                free(infos);
                                return r;
                        }
                }
                free(infos);
        }
        return 0;
}
