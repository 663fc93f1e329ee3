/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* loop.c: driving a client from an event loop.  Owns the requests in
 * flight that nobody blocks on (asynchronous requests, async.c): matching
 * each reply to its request by id, keeping what arrived until
 * ipcb_process() runs the callbacks, deadlines, cancellation, and the one
 * descriptor a loop watches.
 *
 * That descriptor is an epoll set holding the socket (EPOLLIN, and EPOLLOUT
 * while requests wait for room in a full socket) and an eventfd: a blocking
 * call on another thread that reads answers to asynchronous requests on its
 * way to its own keeps them here and writes the eventfd, so the loop wakes
 * even though the socket has been drained.  The set survives reconnects.
 *
 * Locks: c->lock (the request lock, client.c) is held by whoever uses the
 * socket; loop->qlock guards the lists of entries and is taken after
 * c->lock, never before.  Callbacks run with neither held, one at a time
 * (loop->dispatch). */
#include "internal.h"

#include "futex.h"
#include "loop.h"
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static client_loop *loop_of(const ipcb_client *c) {
        return __atomic_load_n(&c->loop, __ATOMIC_ACQUIRE);
}

/* ---- lists ---- */

static void pend_remove(client_loop *l, client_async *e) {
        client_async **pp = &l->pend_head, *prev = NULL;

        while (*pp && *pp != e) {
                prev = *pp;
                pp = &(*pp)->pnext;
        }
        if (!*pp)
                return;
        *pp = e->pnext;
        if (l->pend_tail == e)
                l->pend_tail = prev;
        e->pnext = NULL;
        e->in_pend = false;
}

static void wake(client_loop *l);
static void unwake(client_loop *l);
static void done_push(client_loop *l, client_async *e);

/* The eventfd is readable while the done list is not empty, unless the
 * entries were put there by ipcb_process itself (l->quiet), which runs
 * them right after: a wake-up there would cost two syscalls for nothing. */
void ipcb__loop_done_push(client_loop *l, client_async *e) {
        done_push(l, e);
}

static void done_push(client_loop *l, client_async *e) {
        if (!l->done_head && !l->quiet)
                wake(l);
        e->dnext = NULL;
        if (l->done_tail)
                l->done_tail->dnext = e;
        else
                l->done_head = e;
        l->done_tail = e;
        e->in_done = true;
}

static void done_remove(client_loop *l, client_async *e) {
        client_async **pp = &l->done_head, *prev = NULL;

        while (*pp && *pp != e) {
                prev = *pp;
                pp = &(*pp)->dnext;
        }
        if (!*pp)
                return;
        *pp = e->dnext;
        if (l->done_tail == e)
                l->done_tail = prev;
        e->dnext = NULL;
        e->in_done = false;
        if (!l->done_head)
                unwake(l);
}

static void wake(client_loop *l) {
        uint64_t one = 1;

        if (l->efd >= 0 && !l->woken && write(l->efd, &one, sizeof(one)) == sizeof(one))
                l->woken = true;
}

static void unwake(client_loop *l) {
        uint64_t v;

        if (l->efd >= 0 && l->woken) {
                (void)!read(l->efd, &v, sizeof(v));
                l->woken = false;
        }
}

/* Close what a stored reply holds and give back a broker handle it made
 * (c->lock not held). */
static void reply_dispose(ipcb_client *c, client_async *e) {
        ipcb_msg reply;
        uint64_t h;

        for (unsigned i = 0; i < e->rnfds; i++)
                close(e->rfds[i]);
        e->rnfds = 0;
        if (e->rbuf && !e->stale &&
            ipcb__proto_decode(e->rbuf, e->rlen, e->rbuf[2], &reply) == 0 &&
            ipcb__client_reply_handle(&reply, &h)) {
                (void)ipcb__client_release_handle(c, h, e->conn_gen);
        }
        free(e->rbuf);
        e->rbuf = NULL;
}

/* Neither in flight, nor queued, nor in a callback: free it (qlock). */
bool ipcb__async_unused(const client_async *e) {
        return !e->in_pend && !e->in_done && !e->running;
}

void ipcb__async_free(client_async *e) {
        if (!e)
                return;
        if (e->out_fd >= 0)
                close(e->out_fd);
        if (e->keep_fd >= 0)
                close(e->keep_fd);
        for (unsigned i = 0; i < e->rnfds; i++)
                close(e->rfds[i]);
        free(e->out);
        free(e->rbuf);
        free(e->name);
        free(e);
}

client_async *ipcb__async_new(void) {
        client_async *e = calloc(1, sizeof(*e));

        if (e)
                e->out_fd = e->keep_fd = -1;
        return e;
}

/* ---- the loop's descriptor ---- */

static void epoll_sock(ipcb_client *c, client_loop *l) {
        struct epoll_event ev = { .events = EPOLLIN | (l->out_head ? EPOLLOUT : 0) };

        if (l->epfd < 0 || c->fd < 0 || c->dead)
                return;
        ev.data.u32 = 1;
        if (l->sock_fd == c->fd) {
                if (l->sock_events != ev.events &&
                    epoll_ctl(l->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
                        l->sock_events = ev.events;
                return;
        }
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, c->fd, &ev) == 0) {
                l->sock_fd = c->fd;
                l->sock_events = ev.events;
        }
}

/* c->lock held. */
int ipcb__loop_ensure(ipcb_client *c, client_loop **ret) {
        client_loop *l = c->loop;

        if (c->disconnected)
                return -ENOTCONN;
        if (!l) {
                l = calloc(1, sizeof(*l));
                if (!l)
                        return -ENOMEM;
                l->epfd = l->efd = l->sock_fd = -1;
                pthread_mutex_init(&l->qlock, NULL);
                pthread_mutex_init(&l->dispatch, NULL);
                __atomic_store_n(&c->loop, l, __ATOMIC_RELEASE);
        }
        *ret = l;
        return 0;
}

int ipcb_get_fd(ipcb_client *c) {
        struct epoll_event ev = { .events = EPOLLIN };
        client_loop *l;
        int r;

        if (!c)
                return -EINVAL;
        ipcb__client_lock_untimed(c);
        r = ipcb__loop_ensure(c, &l);
        if (r < 0 || l->epfd >= 0)
                goto out;
        l->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (l->efd < 0) {
                r = -errno;
                goto out;
        }
        l->epfd = epoll_create1(EPOLL_CLOEXEC);
        ev.data.u32 = 0;
        if (l->epfd < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->efd, &ev) < 0) {
                r = -errno;
                if (l->epfd >= 0)
                        close(l->epfd);
                close(l->efd);
                l->epfd = l->efd = -1;
                goto out;
        }
        l->sock_fd = -1;
        epoll_sock(c, l);
        pthread_mutex_lock(&l->qlock);
        if (l->done_head)
                wake(l);
        pthread_mutex_unlock(&l->qlock);
out:
        if (r == 0)
                r = l->epfd;
        pthread_mutex_unlock(&c->lock);
        return r;
}

int ipcb_get_events(ipcb_client *c) {
        return c ? POLLIN : -EINVAL;
}

int ipcb_get_timeout(ipcb_client *c, uint64_t *ret_usec) {
        client_loop *l;
        uint64_t t = UINT64_MAX;

        if (!c || !ret_usec)
                return -EINVAL;
        l = loop_of(c);
        if (l) {
                pthread_mutex_lock(&l->qlock);
                if (l->done_head)
                        t = 0;
                uint64_t w = ipcb__wait_next_deadline(l);
                if (w < t)
                        t = w;
                for (client_async *e = l->pend_head; e && t > 0; e = e->pnext) {
                        if (e->cancelled || !e->has_deadline)
                                continue;
                        uint64_t us = (uint64_t)e->deadline.tv_sec * 1000000u +
                                      (uint64_t)e->deadline.tv_nsec / 1000u;
                        if (us < t)
                                t = us;
                }
                pthread_mutex_unlock(&l->qlock);
        }
        *ret_usec = t;
        return 0;
}

int ipcb_get_timeout_ms(ipcb_client *c) {
        struct timespec now;
        uint64_t t, n;

        if (ipcb_get_timeout(c, &t) < 0 || t == UINT64_MAX)
                return -1;
        clock_gettime(CLOCK_MONOTONIC, &now);
        n = (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
        if (t <= n)
                return 0;
        t = (t - n + 999) / 1000;
        return t > INT32_MAX ? INT32_MAX : (int)t;
}

/* ---- hooks of the blocking path (c->lock held) ---- */

bool ipcb__loop_route(ipcb_client *c, const ipcb_msg *reply, const uint8_t *buf, const ipcb_sock_rx *rx) {
        client_loop *l = c->loop;
        client_async *e;
        bool drop, kept, free_it;

        if (!l)
                return false;
        if (reply->hdr.op == (IPCB_OP_WATCH_EVENT | IPCB_OP_REPLY)) {
                ipcb__watch_route(c, l, buf, rx->len);
                return true;
        }
        pthread_mutex_lock(&l->qlock);
        for (e = l->pend_head; e && e->id != reply->hdr.id; e = e->pnext)
                ;
        if (!e) {
                pthread_mutex_unlock(&l->qlock);
                return false;
        }
        pend_remove(l, e);
        drop = e->cancelled;
        kept = false;
        if (e->what == ASYNC_WATCH && reply->hdr.status == 0)
                ipcb__watch_added(l, e->size, reply);
        if (!drop) {
                e->rbuf = malloc(rx->len);
                if (e->rbuf) {
                        memcpy(e->rbuf, buf, rx->len);
                        e->rlen = rx->len;
                        memcpy(e->rfds, rx->fds, rx->nfds * sizeof(int));
                        e->rnfds = rx->nfds;
                        e->rlost = rx->fds_lost;
                        e->has_reply = kept = true;
                } else
                        e->status = -ENOMEM;
                done_push(l, e);
        }
        free_it = drop && ipcb__async_unused(e);
        pthread_mutex_unlock(&l->qlock);
        if (!kept) {
                /* Nobody wants it (cancelled, timed out, or no memory to keep
                 * it): close its fds, give back its handle. */
                uint64_t h;
                for (unsigned i = 0; i < rx->nfds; i++)
                        close(rx->fds[i]);
                if (ipcb__client_reply_handle(reply, &h))
                        (void)ipcb__client_release_handle_locked(c, h);
                if (free_it)
                        ipcb__async_free(e);
        }
        return true;
}

int ipcb__loop_flush(ipcb_client *c) {
        client_loop *l = c->loop;
        client_async *e;
        int r = 0;

        if (!l || !l->out_head)
                return 0;
        while ((e = l->out_head)) {
                r = ipcb__sock_send(c->fd, e->out, e->out_len, &e->out_fd, e->out_fd >= 0 ? 1 : 0,
                                   MSG_DONTWAIT);
                if (r == -EAGAIN)
                        break;
                if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN) {
                        ipcb__client_kill(c); /* ipcb__loop_lost empties the queue */
                        return -ENOTCONN;
                }
                l->out_head = e->onext;
                if (!l->out_head)
                        l->out_tail = NULL;
                e->onext = NULL;
                free(e->out);
                e->out = NULL;
                if (e->out_fd >= 0)
                        close(e->out_fd);
                e->out_fd = -1;
                if (r < 0) {
                        /* Not sent, so no reply will come: fail it alone. */
                        pthread_mutex_lock(&l->qlock);
                        pend_remove(l, e);
                        if (e->cancelled) {
                                if (ipcb__async_unused(e))
                                        ipcb__async_free(e);
                        } else {
                                e->status = r;
                                done_push(l, e);
                        }
                        pthread_mutex_unlock(&l->qlock);
                        r = 0;
                }
        }
        epoll_sock(c, l);
        return r == -EAGAIN ? -EAGAIN : 0;
}

void ipcb__loop_lost(ipcb_client *c) {
        client_loop *l = c->loop;
        client_async *e, *next;

        if (!l)
                return;
        if (l->epfd >= 0 && l->sock_fd >= 0)
                (void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, l->sock_fd, NULL);
        l->sock_fd = -1;
        l->out_head = l->out_tail = NULL;
        pthread_mutex_lock(&l->qlock);
        /* Replies kept but not yet handed over name handles of this
         * connection, which died with it. */
        for (e = l->done_head; e; e = e->dnext)
                if (e->has_reply)
                        e->stale = true;
        for (e = l->pend_head; e; e = next) {
                next = e->pnext;
                e->pnext = NULL;
                e->onext = NULL;
                e->in_pend = false;
                free(e->out);
                e->out = NULL;
                if (e->out_fd >= 0)
                        close(e->out_fd);
                e->out_fd = -1;
                if (!e->cancelled) {
                        e->status = -ENOTCONN;
                        done_push(l, e);
                } else if (ipcb__async_unused(e))
                        ipcb__async_free(e);
        }
        l->pend_head = l->pend_tail = NULL;
        pthread_mutex_unlock(&l->qlock);
}

void ipcb__loop_fd_changed(ipcb_client *c) {
        client_loop *l = c->loop;

        if (l) {
                l->sock_fd = -1;
                epoll_sock(c, l);
        }
}

void ipcb__loop_free(ipcb_client *c) {
        client_loop *l = c->loop;
        client_async *e, *next;

        if (!l)
                return;
        __atomic_store_n(&c->loop, NULL, __ATOMIC_RELEASE);
        for (e = l->pend_head; e; e = next) {
                next = e->pnext;
                if (!e->in_done)
                        ipcb__async_free(e);
                else
                        e->in_pend = false;
        }
        for (e = l->done_head; e; e = next) {
                next = e->dnext;
                ipcb__async_free(e);
        }
        ipcb__wait_free_all(l);
        ipcb__watch_free_all(l);
        if (l->epfd >= 0)
                close(l->epfd);
        if (l->efd >= 0)
                close(l->efd);
        pthread_mutex_destroy(&l->qlock);
        pthread_mutex_destroy(&l->dispatch);
        free(l);
}

/* ---- submitting (async.c) ---- */

uint64_t ipcb__loop_cookie(client_loop *l) {
        uint64_t k;

        pthread_mutex_lock(&l->qlock);
        k = ++l->next_cookie;
        pthread_mutex_unlock(&l->qlock);
        return k;
}

int ipcb__loop_submit(ipcb_client *c, ipcb_msg *req, client_async *e, int send_fd,
                uint64_t *ret_cookie) {
        uint8_t buf[IPCB_MSG_MAX];
        client_loop *l;
        ssize_t len;
        int ms, r;

        if ((r = ipcb__client_lock(c)) < 0)
                return r;
        r = ipcb__loop_ensure(c, &l);
        if (r < 0)
                goto out;
        /* A listing's cursor means nothing to another connection (or to a
         * restarted broker): its later pages are not sent there. */
        if (e->same_conn && (c->dead || c->conn_gen != e->conn_gen)) {
                r = -ENOTCONN;
                goto out;
        }
        if (c->dead) {
                r = ipcb__client_reconnect(c);
                if (r < 0)
                        goto out;
        }
        req->hdr.id = c->last_id + 1 ? c->last_id + 1 : 1; /* never 0 (watch events) */
        req->hdr.nfds = send_fd >= 0 ? 1 : 0;
        len = ipcb__proto_encode(req, buf, sizeof(buf));
        if (len < 0) {
                r = (int)len;
                goto out;
        }
        r = l->out_head ? ipcb__loop_flush(c) : 0;
        if (r == 0)
                r = ipcb__sock_send(c->fd, buf, (size_t)len, &send_fd, send_fd >= 0 ? 1 : 0,
                                   MSG_DONTWAIT);
        if (r == -EAGAIN) {
                /* The socket is full: keep the datagram (and a copy of the
                 * fd) until it has room; ipcb_process() or the next request
                 * sends it. */
                e->out = malloc((size_t)len);
                if (!e->out) {
                        r = -ENOMEM;
                        goto out;
                }
                if (send_fd >= 0 && (e->out_fd = fcntl(send_fd, F_DUPFD_CLOEXEC, 3)) < 0) {
                        r = -errno;
                        free(e->out);
                        e->out = NULL;
                        goto out;
                }
                memcpy(e->out, buf, (size_t)len);
                e->out_len = (size_t)len;
                if (l->out_tail)
                        l->out_tail->onext = e;
                else
                        l->out_head = e;
                l->out_tail = e;
                r = 0;
        } else if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN) {
                ipcb__client_kill(c);
                r = -ENOTCONN;
        }
        if (r < 0)
                goto out;
        c->last_id = req->hdr.id;
        e->id = c->last_id;
        e->op = req->hdr.op;
        e->conn_gen = c->conn_gen;
        ms = atomic_load_explicit(&c->timeout_ms, memory_order_relaxed);
        e->has_deadline = ms >= 0;
        if (e->has_deadline)
                deadline_after(ms, &e->deadline);
        pthread_mutex_lock(&l->qlock);
        if (!e->cookie) /* (a listing's next page keeps its cookie) */
                e->cookie = ++l->next_cookie;
        e->in_pend = true;
        if (l->pend_tail)
                l->pend_tail->pnext = e;
        else
                l->pend_head = e;
        l->pend_tail = e;
        pthread_mutex_unlock(&l->qlock);
        epoll_sock(c, l);
        if (ret_cookie)
                *ret_cookie = e->cookie;
out:
        pthread_mutex_unlock(&c->lock);
        return r;
}

int ipcb_cancel(ipcb_client *c, uint64_t cookie) {
        client_loop *l;
        client_async *e;
        bool dispose = false;

        if (!c)
                return -EINVAL;
        l = loop_of(c);
        if (!l || cookie == 0) /* (0: watch events, not requests) */
                return -ENOENT;
        pthread_mutex_lock(&l->qlock);
        if (ipcb__wait_cancel(l, cookie) == 0) {
                pthread_mutex_unlock(&l->qlock);
                return 0;
        }
        for (e = l->done_head; e && e->cookie != cookie; e = e->dnext)
                ;
        if (e) {
                done_remove(l, e);
                dispose = ipcb__async_unused(e);
        } else {
                for (e = l->pend_head; e && (e->cookie != cookie || e->cancelled); e = e->pnext)
                        ;
                if (e)
                        e->cancelled = true; /* its reply is disposed of */
        }
        /* A listing whose item callback runs (perhaps the caller): it stops
         * after that call, unless its final call has begun. */
        if (!e && l->running && l->running->cookie == cookie && !l->running->stop &&
            !l->running->ending &&
            (l->running->what == ASYNC_LIST || l->running->what == ASYNC_QUOTA_LIST)) {
                e = l->running;
                e->stop = true;
        }
        pthread_mutex_unlock(&l->qlock);
        if (!e)
                return -ENOENT;
        if (dispose) {
                reply_dispose(c, e);
                ipcb__async_free(e);
        }
        return 0;
}

/* ---- ipcb_process ---- */

/* Read what has arrived, without blocking (c->lock held): answers to
 * asynchronous requests are kept, late answers to blocking requests that
 * timed out are disposed of, anything else is a protocol error. */
void ipcb__loop_receive(ipcb_client *c) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_sock_rx rx;
        ipcb_msg reply;
        uint64_t h;
        int r;

        while (!c->dead) {
                r = ipcb__sock_recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT, NULL, &rx);
                if (r == -EAGAIN)
                        return;
                if (r <= 0) {
                        ipcb__client_kill(c);
                        return;
                }
                if (!rx.fds_lost)
                        r = ipcb__proto_decode(buf, rx.len, rx.nfds, &reply);
                else if (rx.len >= IPCB_HDR_SIZE && buf[2] > 0)
                        r = ipcb__proto_decode(buf, rx.len, buf[2], &reply);
                else
                        r = -EBADMSG;
                if (r == 0 && ipcb__loop_route(c, &reply, buf, &rx)) {
                        /* That answered the last request in flight and
                         * nothing else is expected: stop without the
                         * recvmsg that would only say EAGAIN.  Anything
                         * that still comes keeps the socket readable in
                         * the (level-triggered) epoll set. */
                        if (loop_of(c) && !loop_of(c)->pend_head && !loop_of(c)->watches)
                                return;
                        continue;
                }
                /* The late reply of a blocking request that timed out. */
                if (r == 0 && c->late && (int32_t)(reply.hdr.id - c->late_from) >= 0 &&
                    (int32_t)(reply.hdr.id - c->last_id) <= 0) {
                        c->late_from = reply.hdr.id + 1;
                        if (reply.hdr.id == c->last_id)
                                c->late = false;
                        for (unsigned i = 0; i < rx.nfds; i++)
                                close(rx.fds[i]);
                        if (ipcb__client_reply_handle(&reply, &h))
                                (void)ipcb__client_release_handle_locked(c, h);
                        continue;
                }
                for (unsigned i = 0; i < rx.nfds; i++)
                        close(rx.fds[i]);
                ipcb__client_kill(c);
                return;
        }
}

/* Requests past their deadline get -ETIMEDOUT; their replies, if they
 * still come, are disposed of (qlock held). */
static void expire(client_loop *l) {
        struct timespec now;

        clock_gettime(CLOCK_MONOTONIC, &now);
        for (client_async *e = l->pend_head; e; e = e->pnext) {
                if (e->cancelled || !e->has_deadline)
                        continue;
                if (now.tv_sec < e->deadline.tv_sec ||
                    (now.tv_sec == e->deadline.tv_sec && now.tv_nsec < e->deadline.tv_nsec))
                        continue;
                e->cancelled = true;
                e->status = -ETIMEDOUT;
                done_push(l, e);
        }
}

int ipcb_process(ipcb_client *c) {
        client_loop *l;
        client_async *e;
        int n = 0;

        if (!c)
                return -EINVAL;
        l = loop_of(c);
        if (!l)
                return 0;
        /* If another thread holds the lock, it is in a request: it reads
         * our replies on its way to its own and wakes us. */
        if (pthread_mutex_trylock(&c->lock) == 0) {
                if (!c->dead && !c->disconnected) {
                        (void)ipcb__loop_flush(c);
                        pthread_mutex_lock(&l->qlock);
                        l->quiet = true;
                        pthread_mutex_unlock(&l->qlock);
                        ipcb__loop_receive(c);
                }
                pthread_mutex_lock(&l->qlock);
                l->quiet = false;
                expire(l);
                pthread_mutex_unlock(&l->qlock);
                pthread_mutex_unlock(&c->lock);
        }
        if (pthread_mutex_trylock(&l->dispatch) != 0) {
                /* Another thread dispatches: it may have found the list
                 * empty just before we filled it, so make sure the fd says
                 * there is work. */
                pthread_mutex_lock(&l->qlock);
                if (l->done_head)
                        wake(l);
                pthread_mutex_unlock(&l->qlock);
                return 0;
        }
        for (;;) {
                pthread_mutex_lock(&l->qlock);
                e = l->done_head;
                if (e) {
                        done_remove(l, e);
                        e->running = true;
                        l->running = e;
                }
                pthread_mutex_unlock(&l->qlock);
                if (!e)
                        break;
                ipcb__async_complete(c, e); /* consumes the reply */
                n++;
                /* A request whose deadline passed stays in flight until its
                 * reply comes (then ipcb__loop_route frees it); a listing may be in
                 * flight again, for its next page. */
                pthread_mutex_lock(&l->qlock);
                l->running = NULL;
                e->running = false;
                bool unused = ipcb__async_unused(e);
                pthread_mutex_unlock(&l->qlock);
                if (unused)
                        ipcb__async_free(e);
        }
        ipcb__wait_expire(c);
        pthread_mutex_unlock(&l->dispatch);
        return n;
}
