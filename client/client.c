/* client.c: libipcbroker, the client side of the ipcbrokerd protocol.
 *
 * Owns the connection (one SOCK_SEQPACKET socket per ipcb_client, requests
 * serialized by a mutex, one request in flight), the receive path (every fd
 * that arrives is either handed to the caller or closed), and the local half
 * of a segment handle (mapping + memfd).  Wire encoding lives in proto/. */
#include "ipcbroker.h"

#include "internal.h"
#include "proto.h"
#include "sock.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

_Static_assert(IPCB_SHM_PERSISTENT == IPCB_WF_PERSISTENT, "flag mismatch");
_Static_assert(IPCB_SHM_GROWABLE == IPCB_WF_GROWABLE, "flag mismatch");
_Static_assert(IPCB_OBJ_UNLINKED == IPCB_WF_UNLINKED, "flag mismatch");
_Static_assert(IPCB_READ_ONLY == IPCB_WA_READ_ONLY, "access mismatch");
_Static_assert(IPCB_READ_WRITE == IPCB_WA_READ_WRITE, "access mismatch");



ipcb_client *client_ref(ipcb_client *c) {
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
        return c;
}

void client_unref(ipcb_client *c) {
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

/* The connection is unusable (hang-up, I/O error, or a reply we cannot trust,
 * after which request and reply may be out of step).  Shutting the socket
 * down tells the broker at once, so it drops our handles; the fd itself is
 * closed by ipcb_disconnect().  Caller holds the lock. */
static void client_kill(ipcb_client *c) {
        if (!c->dead && c->fd >= 0)
                shutdown(c->fd, SHUT_RDWR);
        c->dead = true;
        atomic_store(&c->gone, true);
}

static int client_send(ipcb_client *c, ipcb_msg *req) {
        uint8_t buf[IPCB_MSG_MAX];
        ssize_t len;
        int r;

        req->hdr.id = ++c->last_id;
        len = ipcb_proto_encode(req, buf, sizeof(buf));
        if (len < 0)
                return (int)len;

        /* SHM_REGISTER carries the memfd in c->send_fd. */
        r = ipcb_sock_send(c->fd, buf, (size_t)len, &c->send_fd, req->hdr.nfds == 1 ? 1 : 0, 0);
        if (r < 0) {
                if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN) {
                        client_kill(c);
                        return -ENOTCONN;
                }
                return r; /* nothing was sent: the connection is fine */
        }
        return 0;
}

/* Receive one datagram into buf (IPCB_MSG_MAX bytes).  Returns its length
 * and the fds that came with it (caller owns them), or a negative errno with
 * every received fd closed. */
static ssize_t client_recv(ipcb_client *c, uint8_t *buf, int *ret_fds, unsigned *ret_nfds) {
        ipcb_sock_rx rx;
        int n;

        n = ipcb_sock_recv(c->fd, buf, IPCB_MSG_MAX, 0, NULL, &rx);
        if (n <= 0) {
                client_kill(c);
                if (n == 0 || n == -ECONNRESET || n == -EPIPE || n == -ENOTCONN)
                        return -ENOTCONN;
                return n == -EMSGSIZE || n == -EBADMSG ? -EPROTO : n;
        }
        /* The kernel dropped fds it could not fit: the reply no longer
         * matches its header. */
        if (rx.fds_lost) {
                client_kill(c);
                return -EPROTO;
        }
        memcpy(ret_fds, rx.fds, rx.nfds * sizeof(int));
        *ret_nfds = rx.nfds;
        return (ssize_t)rx.len;
}

/* Send req and wait for its reply; caller holds c->lock.  buf (IPCB_MSG_MAX
 * bytes) receives the datagram, which names in *reply point into.  On
 * success the reply's fd, if any, is stored in *ret_fd when ret_fd is given
 * and closed otherwise.  A reply with a negative status returns that status. */
int client_call_once(ipcb_client *c, ipcb_msg *req, uint8_t *buf, ipcb_msg *reply, int *ret_fd) {
        int fds[IPCB_FDS_MAX];
        unsigned nfds = 0;
        ssize_t n;
        int r;

        if (c->dead)
                return -ENOTCONN;
        r = client_send(c, req);
        if (r < 0)
                return r;
        n = client_recv(c, buf, fds, &nfds);
        if (n < 0)
                return (int)n;
        r = ipcb_proto_decode(buf, (size_t)n, nfds, reply);
        if (r < 0 || reply->hdr.id != req->hdr.id ||
            reply->hdr.op != (req->hdr.op | IPCB_OP_REPLY)) {
                close_fds(fds, nfds);
                client_kill(c);
                return -EPROTO;
        }
        if (reply->hdr.status < 0) /* the decoder guarantees no fds here */
                return reply->hdr.status;
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
int client_call(ipcb_client *c, ipcb_msg *req, uint8_t *buf, ipcb_msg *reply, int *ret_fd) {
        bool retried = false;
        int r;

        for (;;) {
                if (c->dead && !c->disconnected && !retried) {
                        retried = true;
                        if (client_reconnect(c) < 0)
                                return -ENOTCONN;
                }
                r = client_call_once(c, req, buf, reply, ret_fd);
                if (r != -ENOTCONN || !c->dead || c->disconnected || retried)
                        return r;
        }
}

int client_request(ipcb_client *c, ipcb_msg *req, uint8_t *buf, ipcb_msg *reply, int *ret_fd) {
        int r;

        pthread_mutex_lock(&c->lock);
        r = client_call(c, req, buf, reply, ret_fd);
        pthread_mutex_unlock(&c->lock);
        return r;
}

int client_name_check(const char *name, ipcb_name *ret) {
        size_t len;
        int r;

        if (!name)
                return -EINVAL;
        len = strnlen(name, IPCB_NAME_MAX + 1);
        r = ipcb_name_check(name, len);
        if (r < 0)
                return r;
        *ret = (ipcb_name){ .ptr = name, .len = (uint16_t)len };
        return 0;
}

/* ---- connection ---- */

static int socket_path_resolve(const char *arg, struct sockaddr_un *ret) {
        const char *env, *path = arg;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int n;

        /* secure_getenv: a set-uid program must not be pointed elsewhere. */
        if (!path && (env = secure_getenv("IPCBROKER_SOCKET")) && *env)
                path = env;
        if (!path && geteuid() != 0 && (env = secure_getenv("XDG_RUNTIME_DIR")) && *env) {
                n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/ipcbroker/ipcbroker.sock", env);
                if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
                        return -ENAMETOOLONG;
                *ret = sa;
                return 0;
        }
        if (!path)
                path = IPCB_SYSTEM_SOCKET;
        if (!*path)
                return -EINVAL;
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        *ret = sa;
        return 0;
}

static int client_hello(ipcb_client *c) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_HELLO }, reply;
        int r;

        req.hello.version = IPCB_PROTO_VERSION;
        req.hello.caps = 0;
        r = client_call_once(c, &req, buf, &reply, NULL);
        if (r < 0)
                return r;
        if (reply.hello_reply.version != IPCB_PROTO_VERSION)
                return -EPROTONOSUPPORT;
        c->msg_max = reply.hello_reply.msg_max;
        c->name_max = reply.hello_reply.name_max;
        c->fds_max = reply.hello_reply.fds_max;
        return 0;
}

int ipcb_connect(const char *socket_path, ipcb_client **ret) {
        struct sockaddr_un sa;
        ipcb_client *c;
        int r;

        if (!ret)
                return -EINVAL;
        r = socket_path_resolve(socket_path, &sa);
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

        c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
                r = -errno;
                goto fail;
        }
        r = connect(c->fd, (struct sockaddr *)&sa, sizeof(sa));
        /* After EINTR the connection may complete on its own: EISCONN then. */
        while (r < 0 && errno == EINTR) {
                r = connect(c->fd, (struct sockaddr *)&sa, sizeof(sa));
                if (r < 0 && errno == EISCONN)
                        r = 0;
        }
        if (r < 0) {
                r = -errno;
                goto fail;
        }
        r = client_hello(c);
        if (r < 0)
                goto fail;
        c->addr = sa;
        *ret = c;
        return 0;
fail:
        client_unref(c);
        return r;
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
        pthread_mutex_unlock(&c->lock);
        client_unref(c);
}

/* ---- segments ---- */

/* Release a broker handle without waiting: the CLOSE carries NOREPLY, so
 * a close costs no round trip.  The broker handles this connection's
 * requests in order, so any later request on it sees the handle gone. */
int client_release_handle(ipcb_client *c, uint64_t handle) {
        int r;

        pthread_mutex_lock(&c->lock);
        r = client_release_handle_locked(c, handle);
        pthread_mutex_unlock(&c->lock);
        return r;
}

int client_release_handle_locked(ipcb_client *c, uint64_t handle) {
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
        pthread_mutex_lock(&c->lock);
        int r = c->disconnected ? 0 : client_call(c, &req, buf, &reply, NULL);
        pthread_mutex_unlock(&c->lock);
        return r;
}

/* Turn a SHM_CREATE/SHM_OPEN reply plus its fd into an ipcb_shm.  Consumes
 * fd and the broker handle on every path. */
static int shm_finish(ipcb_client *c, const char *name, const ipcb_msg *reply, int fd,
                      int want_access, ipcb_shm **ret) {
        uint64_t size = reply->shm_reply.size;
        int access = (int)reply->shm_reply.access;
        struct stat st;
        ipcb_shm *s;
        void *data;
        int r;

        if (fd < 0 || access != want_access || size == 0 || size > SIZE_MAX) {
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
        data = mmap(NULL, (size_t)size,
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
        };
        r = client_obj_add(c, &s->obj, IPCB_KIND_SHM, name, (uint32_t)access, &st);
        if (r < 0) {
                munmap(data, (size_t)size);
                free(s);
                goto fail;
        }
        s->client = client_ref(c);
        *ret = s;
        return 0;
fail:
        if (fd >= 0)
                close(fd);
        (void)client_release_handle(c, reply->shm_reply.handle);
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
        r = client_name_check(name, &req.shm_create.name);
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
        if (size == 0 || (mode & ~IPCB_MODE_MASK) || (flags & ~IPCB_WF_CREATE_MASK))
                return -EINVAL;

        req.shm_create.size = size;
        req.shm_create.mode = mode;
        req.shm_create.flags = flags;
        r = client_request(c, &req, buf, &reply, &fd);
        if (r < 0)
                return r;
        return shm_finish(c, name, &reply, fd, IPCB_READ_WRITE, ret);
}

int ipcb_shm_open(ipcb_client *c, const char *name, int access, ipcb_shm **ret) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_SHM_OPEN }, reply;
        int fd = -1, r;

        if (!c || !ret)
                return -EINVAL;
        r = client_name_check(name, &req.shm_open.name);
        if (r < 0)
                return r;
        if (access != IPCB_READ_ONLY && access != IPCB_READ_WRITE)
                return -EINVAL;

        req.shm_open.access = (uint32_t)access;
        r = client_request(c, &req, buf, &reply, &fd);
        if (r < 0)
                return r;
        return shm_finish(c, name, &reply, fd, access, ret);
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

int ipcb_shm_close(ipcb_shm *s) {
        int r;

        if (!s)
                return 0;
        lock_release_on_close(s);
        munmap(s->data, s->size);
        close(s->fd);
        r = client_obj_release(s->client, &s->obj);
        client_unref(s->client);
        free(s);
        return r;
}

/* ---- namespace ---- */

int client_unlink(ipcb_client *c, int kind, const char *name) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_UNLINK }, reply;
        int r;

        if (!c)
                return -EINVAL;
        r = client_name_check(name, &req.unlink.name);
        if (r < 0)
                return r;
        req.unlink.kind = (uint8_t)kind;
        return client_request(c, &req, buf, &reply, NULL);
}

int ipcb_unlink(ipcb_client *c, const char *name) {
        return client_unlink(c, IPCB_KIND_SHM, name);
}

/* The decoder checks only that a name lies inside the datagram: the length
 * must also fit ipcb_object_info.name. */
static int info_from_rec(const ipcb_stat_rec *rec, ipcb_object_info *ret) {
        if (rec->name.len == 0 || rec->name.len > IPCB_NAME_MAX)
                return -EPROTO;
        memset(ret, 0, sizeof(*ret));
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
        ipcb_object_info info;
        int r;

        if (!c || !ret || (kind != IPCB_KIND_SHM && kind != IPCB_KIND_SEM))
                return -EINVAL;
        r = client_name_check(name, &req.stat.name);
        if (r < 0)
                return r;
        req.stat.kind = (uint8_t)kind;
        r = client_request(c, &req, buf, &reply, NULL);
        if (r < 0)
                return r;
        r = info_from_rec(&reply.stat_reply, &info);
        if (r < 0)
                return r;
        *ret = info;
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
        pthread_mutex_lock(&c->lock);
        r = client_call(c, &req, buf, &reply, NULL);
        pthread_mutex_unlock(&c->lock);
        if (r < 0)
                return r;

        if (reply.list_reply.count > 0) {
                infos = calloc(reply.list_reply.count, sizeof(*infos));
                if (!infos)
                        return -ENOMEM;
        }
        while (n < reply.list_reply.count && ipcb_list_iter_next(&reply.list_reply.iter, &rec)) {
                r = info_from_rec(&rec, &infos[n]);
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

/* ---- errors ---- */

const char *ipcb_strerror(int err) {
        const char *s;

        if (err > 0)
                err = -err;
        switch (err) {
        case 0:
                return "success";
        case -EPROTO:
                return "protocol error: the broker sent a malformed reply";
        case -ENOTCONN:
                return "not connected to the broker";
        case -EFBIG:
                return "size above the broker's maximum segment size";
        case -EDQUOT:
                return "quota exceeded (objects, bytes or handles of this user)";
        case -EUSERS:
                return "too many connections (or undo handles) for this user";
        case -EBADFD:
                return "not a memfd sealed with F_SEAL_SHRINK";
        case -EROFS:
                return "the segment is frozen (write-sealed): read-only access only";
        case -EPROTONOSUPPORT:
                return "the broker speaks another protocol version";
        }
        if (err == INT_MIN)
                return "unknown error";
        s = strerrordesc_np(-err);
        return s ? s : "unknown error";
}
