/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* internal.h: what the library's modules share (client.c: connection and
 * segments; lock.c: segment locks; sem.c: semaphores).  Not installed. */
#pragma once

#include "ipcbroker.h"
#include "proto.h"
#include "sempage.h"
#include "sock.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>

/* What the library remembers of each open handle so that, after the broker
 * restarted, it can re-open the same object by name on a new connection and
 * swap in the new broker handle id (reconnect.c).  Linked in its client's
 * list while open; guarded by the client's lock. */
/* An object's notify eventfd (SEM_NOTIFY, LOCK_NOTIFY, or with a poller
 * registration), which releases or unlocks write while pollers are counted:
 * fd is -1 until fetched; gen is the connection it came from and epoch the
 * object's page epoch then.  A restarted broker made a new one, and bumped
 * the epoch before the client may know that its connection is gone. */
typedef struct client_notify {
        _Atomic int fd;
        _Atomic uint32_t gen, epoch;
} client_notify;

typedef struct client_obj {
        struct client_obj *prev, *next;
        int kind;        /* IPCB_KIND_SHM / IPCB_KIND_SEM */
        char *name;
        uint32_t access; /* shm: IPCB_WA_*; sem: IPCB_WF_UNDO or 0 */
        dev_t dev;       /* the memfd (segment) or page (semaphore) inode */
        ino_t ino;
        bool orphan;     /* could not be re-opened: no broker handle any more */
        uint64_t handle;   /* the broker's handle id ... */
        uint32_t conn_gen; /* ... on this connection generation */
} client_obj;

struct ipcb_client {
        pthread_mutex_t lock; /* serializes requests; guards everything below */
        int fd;               /* -1 after ipcb_disconnect() */
        bool dead;            /* no more requests: connection lost or closed */
        atomic_bool gone;     /* == dead, readable without the lock (undo handles check it) */
        bool disconnected;    /* ipcb_disconnect() was called */
        uint32_t last_id;
        /* Per-request timeout (ipcb_set_timeout): > 0 ms, < 0 none.  Read
         * without the lock when a request starts. */
        atomic_int timeout_ms;
        int default_timeout_ms; /* $IPCBROKER_TIMEOUT_MS or 25 s; set at connect */
        /* The deadline of the request that holds the lock (CLOCK_MONOTONIC),
         * if has_deadline (ipcb__client_lock). */
        bool has_deadline;
        struct timespec deadline;
        /* SO_RCVTIMEO now set on fd, in µs (0: none, -1: unknown). */
        long long rcvtimeo_us;
        /* Requests that timed out still owe their replies, which arrive in
         * order, late_from first; the receive path disposes of them. */
        bool late;
        uint32_t late_from;
        uint32_t msg_max, name_max, fds_max, caps; /* from the HELLO reply */
        /* The fd a request with hdr.nfds == 1 carries (SHM_REGISTER; borrowed,
         * set by the caller under the lock; access.c). */
        int send_fd;
        /* Reconnect after the broker restarted (reconnect.c). */
        struct sockaddr_un addr;
        uint32_t conn_gen;    /* bumped by every successful reconnect */
        client_obj *objs;     /* open handles */
        /* One reference for the caller until ipcb_disconnect(), one per open
         * ipcb_shm: a handle may outlive the connection it came from. */
        atomic_uint refs;
        /* Event-loop integration and asynchronous requests (loop.c). */
        struct client_loop *loop;
};

struct ipcb_shm {
        client_obj obj;      /* first: reconnect.c finds the handle from it */
        ipcb_client *client; /* holds a reference */
        int fd;
        void *data;
        size_t size;
        int access;
        unsigned seals;
        ipcb_handle_info info; /* owner, group, mode at the open */
        /* segment lock page, set up on first lock or read (lock.c): mapped
         * read-write with a token (> 0) for a read-write handle, read-only
         * with token 0 for a read-only one */
        ipcb_lock_page *lock;
        uint32_t lock_token; /* atomic accesses: reconnect.c renews it */
        uint64_t lock_nonce; /* proves lock_token to a restarted broker */
        /* lock->epoch when the token was given or last reclaimed (or the
         * epoch last checked); atomic accesses: reconnect.c writes it. */
        uint32_t lock_epoch;
        /* Polling the lock (lock.c): this handle's epoll set holding the
         * segment's notify eventfd, -1 until ipcb_shm_lock_get_fd; and
         * that eventfd, which an unlock writes while the lock page counts
         * pollers. */
        int lock_poll_fd;
        client_notify lock_notify;
};

ipcb_client *ipcb__client_ref(ipcb_client *c);
void ipcb__client_unref(ipcb_client *c);
/* Take c->lock for a request and start its deadline, c->timeout_ms from
 * now: waiting for the lock counts against it.  0 or -ETIMEDOUT. */
int ipcb__client_lock(ipcb_client *c);
/* Take c->lock however long it takes (whoever holds it gives it up within
 * its own timeout), then start a deadline for what follows.  For releasing
 * handles, which must not be skipped because another request is slow. */
void ipcb__client_lock_untimed(ipcb_client *c);
/* The deadline ipcb__client_lock started, or NULL for none (lock held). */
const struct timespec *ipcb__client_deadline(const ipcb_client *c);
/* A connected SOCK_SEQPACKET socket to *sa (close-on-exec, blocking mode:
 * every I/O on it is MSG_DONTWAIT and waits with ppoll), or a negative
 * errno; -ETIMEDOUT if the listener's backlog stayed full until deadline
 * (NULL: no deadline). */
int ipcb__client_dial(const struct sockaddr_un *sa, const struct timespec *deadline);
/* connect.c: the socket address of path (if not NULL) or of broker
 * (IPCB_BROKER_*, ipcb_socket_path).  0 or a negative errno. */
int ipcb__client_socket_addr(const char *path, int broker, struct sockaddr_un *ret);
/* client.c: connect to what ipcb__client_socket_addr resolves and say HELLO. */
int ipcb__client_connect_to(const char *socket_path, int broker, ipcb_client **ret);
/* The connection is unusable: shut it down (lock held). */
void ipcb__client_kill(ipcb_client *c);
/* One request and its reply, serialized with the client's other requests.
 * buf (IPCB_MSG_MAX bytes) holds the reply that *reply points into.  The
 * reply's fd, if any, goes to *ret_fd (or is closed when ret_fd is NULL).
 * Returns 0, the reply's negative status, or a transport error: -ETIMEDOUT
 * (no reply by the deadline; it is disposed of when it comes), -EMFILE (the
 * kernel could not give us the reply's fd; a handle it named is released). */
int ipcb__client_request(ipcb_client *c, ipcb_msg *req, uint8_t *buf, ipcb_msg *reply, int *ret_fd);
/* As ipcb__client_request, for a request naming obj's broker handle at *idp:
 * the id is written there under c->lock before each send.  A reconnect
 * (before the send, or after a lost reply) re-opens obj under a new id, and
 * its old one may name another handle of this client on the new connection.
 * -EBADF when obj has no broker handle on the connection (an orphan, or an
 * undo semaphore that the reconnect left to its next call). */
int ipcb__client_obj_request(ipcb_client *c, client_obj *obj, ipcb_msg *req, uint64_t *idp,
                             uint8_t *buf, ipcb_msg *reply, int *ret_fd);
/* The same for a request naming n handles: objs[i]'s id goes to *idps[i]. */
int ipcb__client_objs_request(ipcb_client *c, client_obj *const *objs, uint64_t *const *idps,
                              unsigned n, ipcb_msg *req, uint8_t *buf, ipcb_msg *reply, int *ret_fd);
/* As ipcb__client_request with c->lock held; reconnects (once) if the connection
 * was lost, e.g. because the broker restarted. */
int ipcb__client_call(ipcb_client *c, ipcb_msg *req, uint8_t *buf, ipcb_msg *reply, int *ret_fd);
/* One request and reply on the current connection, no reconnect. */
int ipcb__client_call_once(ipcb_client *c, ipcb_msg *req, uint8_t *buf, ipcb_msg *reply, int *ret_fd);
/* A SHM_OPEN request for name with access and opts (IPCB_OPEN_OWNED), its
 * arguments checked: 0, or -EINVAL/-ENAMETOOLONG. */
int ipcb__client_shm_open_req(const char *name, int access, const ipcb_open_options *opts,
                              ipcb_msg *req);
/* reconnect.c.  Caller holds c->lock.  ipcb__client_reconnect: a new connection
 * to c->addr, then every handle in c->objs re-opened (undo semaphores only
 * if not in use right now: they re-open themselves).  0, -ENOTCONN, or
 * -ETIMEDOUT (the new connection is dropped again: the next request
 * starts over). */
int ipcb__client_reconnect(ipcb_client *c);
/* Record / forget an open handle (takes c->lock).  name is copied;
 * st names the inode that a re-open must find again; gen is the connection
 * whose reply gave the handle (ipcb__client_reply_gen, or an asynchronous
 * request's). */
int ipcb__client_obj_add(ipcb_client *c, client_obj *o, int kind, const char *name, uint32_t access,
                   const struct stat *st, uint32_t gen);
/* Once o is whole: if another thread reconnected between the reply that
 * gave o's handle and ipcb__client_obj_add, that reconnect did not see o
 * and its handle died with the old connection; re-open o now, as the
 * reconnect would have (an orphan if that fails; takes c->lock). */
void ipcb__client_obj_catch_up(ipcb_client *c, client_obj *o);
void ipcb__client_obj_remove(ipcb_client *c, client_obj *o);
/* Forget o and release its broker handle (CLOSE without reply) if it has
 * one on the current connection.  Returns as ipcb__client_release_handle. */
int ipcb__client_obj_release(ipcb_client *c, client_obj *o);
/* sem.c: re-open undo semaphore o on the current connection (lock held). */
int ipcb__sem_reopen_locked(ipcb_client *c, client_obj *o);
/* Re-open one object by name on the current connection: the reply (in buf)
 * and its fd; -ESTALE if the name now names another object.  flags: more
 * open flags (IPCB_WF_RECLAIM, for a semaphore with its slot bits) with
 * what a reclaim shows: a segment's lock token and either's nonce. */
int ipcb__client_reopen(ipcb_client *c, client_obj *o, uint8_t *buf, ipcb_msg *reply, int *ret_fd,
                  uint32_t flags, uint32_t token, uint64_t nonce);
/* Release a broker handle without waiting (CLOSE with NOREPLY), if it is
 * on connection gen still: on another one its id names something else. */
int ipcb__client_release_handle(ipcb_client *c, uint64_t handle, uint32_t gen);
/* The connection that gave this thread's last reply (ipcb__client_call_once). */
uint32_t ipcb__client_reply_gen(void);
int ipcb__client_release_handle_locked(ipcb_client *c, uint64_t handle);
int ipcb__client_name_check(const char *name, ipcb_name *ret);
/* The wire flags and owner of opts (NULL: none); -EINVAL for a short
 * struct or flags outside `allowed`. */
int ipcb__client_open_options(const ipcb_open_options *opts, unsigned allowed, uint32_t *ret_flags,
                        uint32_t *ret_owner);
int ipcb__client_unlink(ipcb_client *c, int kind, const char *name);
/* Finish an open/create reply into a handle (client.c, sem.c); consume fd
 * and the broker handle on every path. */
int ipcb__client_shm_finish(ipcb_client *c, const char *name, const ipcb_msg *reply, uint32_t gen,
                      int fd, int want_access, ipcb_shm **ret);
int ipcb__client_sem_finish(ipcb_client *c, const char *name, uint32_t flags, const ipcb_msg *reply,
                      uint32_t gen, int fd, ipcb_sem **ret);
int ipcb__client_info_from_rec(const ipcb_stat_rec *rec, ipcb_object_info *ret);

/* Output structs (ipcbroker.h, ipcb_object_info): the smallest struct_size
 * a caller may pass is the size of the struct's first version, up to its
 * last field then; fields added later must not change these. */
#define OBJECT_INFO_MIN_SIZE (offsetof(ipcb_object_info, sem_undo_held) + sizeof(unsigned))
#define QUOTA_INFO_MIN_SIZE (offsetof(ipcb_quota_info, max_connections) + sizeof(uint64_t))

/* Copy a filled output struct (src, size bytes, its struct_size field
 * first) into the caller's dst, no more than dst->struct_size bytes, and
 * record in dst how many were written.  The caller checked the minimum. */
static inline void client_out_copy(void *dst, const void *src, size_t size) {
        size_t n = *(const size_t *)dst < size ? *(const size_t *)dst : size;

        memcpy(dst, src, n);
        *(size_t *)dst = n;
}
/* access.c: record i (< count) of a QUOTA reply as ipcb_quota_info. */
void ipcb__client_quota_info(const ipcb_msg *reply, unsigned i, ipcb_quota_info *ret);
/* access.c: ipcb_shm_register's checks of name, memfd (borrowed) and opts,
 * the fchmod, and the request (its nfds included) into *req; *ret_own is a
 * new close-on-exec copy of memfd (the caller's) for the handle, to send
 * and then give to ipcb__client_register_finish.  Nothing is made on failure. */
int ipcb__client_register_prepare(const char *name, int memfd, const ipcb_shm_options *opts,
                            ipcb_msg *req, int *ret_own);
/* access.c: map the registered memfd and record the handle; consumes fd
 * and the broker handle on every path. */
int ipcb__client_register_finish(ipcb_client *c, const char *name, const ipcb_msg *reply,
                           uint32_t gen, int fd, ipcb_shm **ret);
/* The broker handle a success reply carries, if any. */
bool ipcb__client_reply_handle(const ipcb_msg *reply, uint64_t *ret);

/* loop.c: the hooks the blocking paths call (all with c->lock held).
 * ipcb__loop_route: a reply that is not the one a blocking call waits for; true
 * if it answers an asynchronous request (the datagram and its fds are then
 * loop.c's).  ipcb__loop_flush: send what asynchronous requests left queued;
 * 0 when the queue is empty, -EAGAIN when the socket is full.  ipcb__loop_lost:
 * the connection is gone (ipcb__client_kill).  ipcb__loop_fd_changed: c->fd is a new
 * connection (reconnect).  ipcb__loop_free: ipcb_disconnect. */
bool ipcb__loop_route(ipcb_client *c, const ipcb_msg *reply, const uint8_t *buf, const ipcb_sock_rx *rx);
int ipcb__loop_flush(ipcb_client *c);
void ipcb__loop_receive(ipcb_client *c);
void ipcb__loop_lost(ipcb_client *c);
void ipcb__loop_fd_changed(ipcb_client *c);
void ipcb__loop_free(ipcb_client *c);
/* watch.c: re-add the watches after a reconnect (lock held). */
int ipcb__watch_reconnected(ipcb_client *c);

/* Release the segment lock if handle s holds it (before closing s). */
void ipcb__lock_release_on_close(ipcb_shm *s);
/* An object's notify eventfd, for a release or unlock that saw pollers:
 * n->fd is fetched with op (SEM_NOTIFY or LOCK_NOTIFY) for obj's handle the
 * first time, and again when the client has reconnected since or the page's
 * *epoch moved (a restart: the request reconnects); dup3 puts the new
 * eventfd on the old number, so that a writer in another thread writes one
 * or the other, never a closed fd.  Then it is written.  Failures are
 * silent (nobody to tell). */
void ipcb__client_notify(ipcb_client *c, uint16_t op, client_obj *obj, client_notify *n,
                         const _Atomic uint32_t *epoch);
/* Register obj's handle as a poller (op: SEM_POLL or LOCK_POLL) and return
 * a new epoll set holding the object's notify eventfd edge-triggered (each
 * write to it is an edge for this set alone), or a negative errno; the
 * eventfd goes to n if none is there yet (ipcb__client_notify). */
int ipcb__client_poll_register(ipcb_client *c, uint16_t op, client_obj *obj, client_notify *n,
                               const _Atomic uint32_t *epoch);

_Static_assert(IPCB_SEM_UNDO_MAX == IPCB_SEM_SLOTS, "undo slot count mismatch");
_Static_assert(IPCB_SEM_UNDO == IPCB_WF_UNDO, "flag mismatch");
_Static_assert(IPCB_SEM_PERSISTENT == IPCB_WF_PERSISTENT, "flag mismatch");
_Static_assert(IPCB_OPEN_OWNED == IPCB_WF_OWNED, "flag mismatch");
