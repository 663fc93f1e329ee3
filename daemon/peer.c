/* peer.c: a client connection.  The socket is watched with uv_poll_t and
 * read/written with recvmsg/sendmsg here, because libuv's stream API can
 * neither receive memfds nor report MSG_CTRUNC.  Replies are sent at once;
 * only when the socket is full are they copied into a bounded queue, and a
 * client that lets the queue fill is disconnected rather than waited for. */
#include "peer.h"

#include "config.h"
#include "log.h"
#include "os.h"
#include "request.h"
#include "lock.h"
#include "quota.h"
#include "sem.h"
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PEER_READ_BURST 32 /* datagrams per readable event, for fairness */
#define HANDLE_SLOTS_MAX (1u << 24)

struct queued_reply {
        queued_reply *next;
        size_t len;
        unsigned nfds;
        int fds[IPCB_FDS_MAX];
        uint8_t buf[];
};

static peer *peers;
static unsigned npeers;
#define REFUSING_MAX 64 /* over-quota connections waiting for their refusal */
static unsigned nrefusing;
static log_ratelimit rl_proto;

/* One receive buffer and one send buffer for the whole (single-threaded) loop. */
static uint8_t rx_buf[IPCB_MSG_MAX];
static uint8_t tx_buf[IPCB_MSG_MAX];

unsigned peer_count(void) {
        return npeers;
}

/* ---- handles ---- */

static int slots_grow(peer *p) {
        uint32_t cap = p->nslots ? p->nslots * 2 : 8;
        handle_slot *s;

        if (cap > HANDLE_SLOTS_MAX)
                return -EMFILE;
        s = realloc(p->slots, sizeof(*s) * cap);
        if (!s)
                return -ENOMEM;
        /* Chain the new slots into the (empty) free list: index + 1 links. */
        for (uint32_t j = p->nslots; j < cap; j++)
                s[j] = (handle_slot){ .next_free = j + 1 < cap ? j + 2 : 0 };
        p->free_head = p->nslots + 1;
        p->slots = s;
        p->nslots = cap;
        return 0;
}

int64_t peer_handle_add(peer *p, object *o, uint32_t access) {
        uint32_t i;
        int k;

        if ((k = quota_charge(p->cred.uid, QUOTA_HANDLES, 1)) < 0)
                return k;
        if (!p->free_head && (k = slots_grow(p)) < 0) {
                quota_uncharge(p->cred.uid, QUOTA_HANDLES, 1);
                return k;
        }
        i = p->free_head - 1;
        p->free_head = p->slots[i].next_free;
        p->slots[i].obj = o;
        p->slots[i].access = access;
        p->slots[i].next_free = 0;
        p->slots[i].sem_slot = 0;
        p->slots[i].lock_token = 0;
        p->nhandles++;
        object_ref(o, access);
        return (int64_t)((uint64_t)p->slots[i].gen << 32 | (i + 1));
}

handle_slot *peer_handle_get(peer *p, uint64_t id) {
        uint32_t i = (uint32_t)id, gen = (uint32_t)(id >> 32);

        if (i == 0 || i > p->nslots)
                return NULL;
        handle_slot *s = &p->slots[i - 1];
        return s->obj && s->gen == gen ? s : NULL;
}

/* Give back what a handle holds on the object's shared page: undo tokens
 * and the lock, and wake whoever its process may have left asleep.  Done once: when the handle is released or when its process
 * has exited, whichever comes first. */
static void handle_settle(handle_slot *s) {
        if (s->sem_slot)
                sem_slot_release(s->obj, s->sem_slot);
        /* Its process may have died between a release and the wake-up that
         * should follow it: wake the sleepers on its behalf.  A spurious
         * wake-up only costs a sleeper one more look. */
        if (s->obj->sem)
                sem_wake_sleepers(s->obj);
        if (s->lock_token)
                lock_token_release(s->obj, s->lock_token);
        s->sem_slot = 0;
        s->lock_token = 0;
}

static void handle_slot_release(peer *p, uint32_t i) {
        handle_slot *s = &p->slots[i];
        object *o = s->obj;
        uint32_t access = s->access;

        handle_settle(s);
        s->obj = NULL;
        s->gen++;
        s->next_free = p->free_head;
        p->free_head = i + 1;
        p->nhandles--;
        quota_uncharge(p->cred.uid, QUOTA_HANDLES, 1);
        object_unref(o, access);
}

void peer_handle_release(peer *p, uint64_t id) {
        if (peer_handle_get(p, id))
                handle_slot_release(p, (uint32_t)id - 1);
}

/* ---- output ---- */

static void peer_set_events(peer *p, unsigned events);

static void queue_free(peer *p) {
        queued_reply *q, *next;

        for (q = p->q_head; q; q = next) {
                next = q->next;
                os_close_fds(q->fds, q->nfds);
                free(q);
        }
        p->q_head = p->q_tail = NULL;
        p->q_len = 0;
        p->q_fds = 0;
}

static int queue_push(peer *p, const uint8_t *buf, size_t len, const int *fds, unsigned nfds) {
        queued_reply *q = malloc(sizeof(*q) + len);

        if (!q)
                return -ENOMEM;
        q->next = NULL;
        q->len = len;
        q->nfds = 0;
        memcpy(q->buf, buf, len);
        /* The object may be gone before the reply leaves: keep our own copies. */
        for (unsigned i = 0; i < nfds; i++) {
                int f = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
                if (f < 0) {
                        int k = -errno;
                        os_close_fds(q->fds, q->nfds);
                        free(q);
                        return k;
                }
                q->fds[q->nfds++] = f;
        }
        if (p->q_tail)
                p->q_tail->next = q;
        else
                p->q_head = q;
        p->q_tail = q;
        p->q_len++;
        p->q_fds += q->nfds;
        return 0;
}

/* Send what is queued.  Returns 0 (maybe with some left), or a negative errno
 * when the connection is broken. */
static int queue_flush(peer *p) {
        while (p->q_head) {
                queued_reply *q = p->q_head;
                int k = ipcb_sock_send(p->fd, q->buf, q->len, q->fds, q->nfds, MSG_DONTWAIT);
                if (k == -EAGAIN)
                        return 0;
                if (k < 0)
                        return k;
                p->q_head = q->next;
                if (!p->q_head)
                        p->q_tail = NULL;
                p->q_len--;
                p->q_fds -= q->nfds;
                os_close_fds(q->fds, q->nfds);
                free(q);
        }
        return 0;
}

static void send_bytes(peer *p, const uint8_t *buf, size_t len, const int *fds, unsigned nfds) {
        int k = -EAGAIN;

        if (p->closing)
                return;
        if (!p->q_head)
                k = ipcb_sock_send(p->fd, buf, len, fds, nfds, MSG_DONTWAIT);
        if (k == 0)
                return;
        if (k != -EAGAIN) {
                log_debug("client pid %d: send failed: %s", (int)p->cred.pid, strerror(-k));
                peer_close(p);
                return;
        }
        /* Queued fds are the daemon's fds: a client must not hoard them. */
        if (p->q_len >= cfg.max_queued_replies || p->q_fds + nfds > cfg.max_fds_in_flight) {
                if (log_ratelimit_ok(&rl_proto, 10))
                        log_info("client pid %d uid %u does not read its replies; disconnecting",
                                 (int)p->cred.pid, (unsigned)p->cred.uid);
                peer_close(p);
                return;
        }
        k = queue_push(p, buf, len, fds, nfds);
        if (k < 0) {
                log_warn("client pid %d: cannot queue a reply: %s; disconnecting",
                         (int)p->cred.pid, strerror(-k));
                peer_close(p);
                return;
        }
        peer_set_events(p, UV_READABLE | UV_WRITABLE | UV_DISCONNECT);
}

void peer_reply(peer *p, const ipcb_msg *m, const int *fds, unsigned nfds) {
        ipcb_msg r = *m;
        ssize_t len;

        r.hdr.nfds = (uint8_t)nfds;
        len = ipcb_proto_encode(&r, tx_buf, sizeof(tx_buf));
        if (len < 0) { /* a bug: a reply we built does not fit */
                log_err("cannot encode reply to op 0x%04x: %s", r.hdr.op, strerror((int)-len));
                r.hdr.status = -EIO;
                len = ipcb_proto_encode(&r, tx_buf, sizeof(tx_buf));
                nfds = 0;
        }
        send_bytes(p, tx_buf, (size_t)len, r.hdr.status < 0 ? NULL : fds,
                   r.hdr.status < 0 ? 0 : nfds);
}

void peer_reply_error(peer *p, const ipcb_hdr *req, int status) {
        ipcb_msg r = { .hdr = { .op = req->op | IPCB_OP_REPLY, .id = req->id, .status = status } };
        peer_reply(p, &r, NULL, 0);
}

/* ---- input ---- */

static void protocol_violation(peer *p, const char *what) {
        if (log_ratelimit_ok(&rl_proto, 10))
                log_debug("client pid %d uid %u: %s; disconnecting", (int)p->cred.pid,
                          (unsigned)p->cred.uid, what);
        peer_close(p);
}

static void peer_read(peer *p) {
        unsigned max_burst = cfg.max_requests_in_flight ? cfg.max_requests_in_flight : PEER_READ_BURST;

        for (unsigned burst = 0; burst < max_burst && !p->closing; burst++) {
                ipcb_sock_rx rx;
                unsigned nfds;
                int *fds = rx.fds;
                ipcb_msg m;
                int n, k;

                n = ipcb_sock_recv(p->fd, rx_buf, sizeof(rx_buf), MSG_DONTWAIT, NULL, &rx);
                if (n == -EAGAIN)
                        return;
                if (n == 0) { /* hang-up */
                        peer_close(p);
                        return;
                }
                if (n == -EMSGSIZE) {
                        protocol_violation(p, "datagram larger than the protocol allows");
                        return;
                }
                if (n == -EBADMSG) {
                        protocol_violation(p, "empty datagram");
                        return;
                }
                if (n < 0) {
                        log_debug("client pid %d: recv: %s", (int)p->cred.pid, strerror(-n));
                        peer_close(p);
                        return;
                }
                if (rx.fds_lost) {
                        protocol_violation(p, "too many fds in one message");
                        return;
                }
                nfds = rx.nfds;
                k = ipcb_proto_decode(rx_buf, rx.len, nfds, &m);
                /* Only SHM_REGISTER carries an fd, which goes to its handler
                 * (and is closed after it, whatever it did); any other fd is
                 * unsolicited, or belongs to a malformed message: closed now. */
                if (k == 0 && m.hdr.op == IPCB_OP_SHM_REGISTER && nfds == 1) {
                        p->rx_fd = fds[0];
                        nfds = 0;
                }
                os_close_fds(fds, nfds);
                if (k == -EOPNOTSUPP && !(m.hdr.op & IPCB_OP_REPLY) && nfds == 0) {
                        peer_reply_error(p, &m.hdr, -EOPNOTSUPP);
                        continue;
                }
                if (k < 0 || (m.hdr.op & IPCB_OP_REPLY)) {
                        protocol_violation(p, "malformed message");
                        return;
                }
                if (p->refuse < 0) { /* over its uid's connection quota */
                        peer_reply_error(p, &m.hdr, p->refuse);
                        if (p->rx_fd >= 0)
                                close(p->rx_fd);
                        p->rx_fd = -1;
                        peer_close(p);
                        return;
                }
                request_dispatch(p, &m);
                if (p->rx_fd >= 0) {
                        close(p->rx_fd);
                        p->rx_fd = -1;
                }
        }
}

static void on_poll(uv_poll_t *h, int status, int events) {
        peer *p = h->data;

        if (status < 0) {
                peer_close(p);
                return;
        }
        if (events & UV_WRITABLE) {
                int k = queue_flush(p);
                if (k < 0) {
                        peer_close(p);
                        return;
                }
                if (!p->q_head)
                        peer_set_events(p, UV_READABLE | UV_DISCONNECT);
        }
        if (events & UV_READABLE)
                peer_read(p);
        else if ((events & UV_DISCONNECT) && !p->closing)
                peer_close(p);
}

static void peer_set_events(peer *p, unsigned events) {
        if (p->closing || p->poll_events == events)
                return;
        p->poll_events = events;
        if (uv_poll_start(&p->poll, (int)events, on_poll) < 0)
                peer_close(p);
}

/* ---- the peer's process ---- */

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

static void on_process_exit(uv_poll_t *h, int status, int events) {
        peer *p = h->data;
        (void)status;
        (void)events;

        log_debug("client pid %d exited; settling its undo and lock tokens", (int)p->cred.pid);
        for (uint32_t i = 0; i < p->nslots; i++)
                if (p->slots[i].obj)
                        handle_settle(&p->slots[i]);
        uv_poll_stop(h);
}

int peer_watch_process(peer *p) {
        socklen_t len = sizeof(int);
        int fd = -1, k;

        if (p->pidfd >= 0)
                return 0;
        /* SO_PEERPIDFD (Linux 6.5) names the very process that connected;
         * pidfd_open on the SO_PEERCRED pid could race with pid reuse. */
        if (getsockopt(p->fd, SOL_SOCKET, SO_PEERPIDFD, &fd, &len) < 0) {
                fd = (int)syscall(SYS_pidfd_open, p->cred.pid, 0); /* always CLOEXEC */
                if (fd < 0)
                        return -errno;
        }
        k = uv_poll_init(p->poll.loop, &p->pid_poll, fd);
        if (k < 0) {
                close(fd);
                return k;
        }
        p->pidfd = fd;
        p->pid_poll.data = p;
        p->open_uv_handles++;
        uv_poll_start(&p->pid_poll, UV_READABLE, on_process_exit);
        return 0;
}

/* ---- life ---- */

int peer_new(uv_loop_t *loop, int fd) {
        struct ucred uc;
        socklen_t len = sizeof(uc);
        peer *p;
        int k;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0) {
                k = -errno;
                close(fd);
                return k;
        }
        p = calloc(1, sizeof(*p));
        if (!p) {
                close(fd);
                return -ENOMEM;
        }
        p->fd = fd;
        p->pidfd = -1;
        p->cred = (cred){ .pid = uc.pid, .uid = uc.uid, .gid = uc.gid };
        p->rx_fd = -1;
        cred_read_groups(fd, &p->cred);
        /* Over quota: kept only to answer its first request with -EUSERS
         * (so that the client sees why), and not many of those at once. */
        k = quota_charge(uc.uid, QUOTA_CONNECTIONS, 1);
        if (k < 0 && nrefusing >= REFUSING_MAX) {
                free(p);
                close(fd);
                return k;
        }
        if (k < 0) {
                p->refuse = k;
                nrefusing++;
        } else
                p->conn_charged = true;
        k = uv_poll_init(loop, &p->poll, fd);
        if (k < 0) {
                if (p->conn_charged)
                        quota_uncharge(uc.uid, QUOTA_CONNECTIONS, 1);
                else
                        nrefusing--;
                free(p);
                close(fd);
                return k;
        }
        p->poll.data = p;
        p->open_uv_handles = 1;
        p->next = peers;
        if (peers)
                peers->prev = p;
        peers = p;
        npeers++;
        peer_set_events(p, UV_READABLE | UV_DISCONNECT);
        log_debug("client pid %d uid %u gid %u connected", (int)uc.pid, (unsigned)uc.uid,
                  (unsigned)uc.gid);
        return 0;
}

static void on_closed(uv_handle_t *h) {
        peer *p = h->data;

        if (--p->open_uv_handles > 0)
                return;
        close(p->fd);
        if (p->pidfd >= 0)
                close(p->pidfd);
        free(p);
}

void peer_close(peer *p) {
        if (p->closing)
                return;
        p->closing = true;
        log_debug("client pid %d disconnected (%u handles released)", (int)p->cred.pid,
                  p->nhandles);
        /* Release in reverse order of acquisition: replies, then handles. */
        queue_free(p);
        for (uint32_t i = 0; i < p->nslots; i++)
                if (p->slots[i].obj)
                        handle_slot_release(p, i);
        free(p->slots);
        p->slots = NULL;
        p->nslots = 0;

        if (p->prev)
                p->prev->next = p->next;
        else
                peers = p->next;
        if (p->next)
                p->next->prev = p->prev;
        npeers--;
        if (p->conn_charged)
                quota_uncharge(p->cred.uid, QUOTA_CONNECTIONS, 1);
        else if (p->refuse < 0)
                nrefusing--;
        p->conn_charged = false;
        uv_poll_stop(&p->poll);
        uv_close((uv_handle_t *)&p->poll, on_closed);
        if (p->pidfd >= 0)
                uv_close((uv_handle_t *)&p->pid_poll, on_closed);
}

void peer_close_all(void) {
        while (peers)
                peer_close(peers);
}
