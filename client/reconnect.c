/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* reconnect.c: surviving a broker restart.  When the connection is lost
 * (the broker was restarted by its service manager and took its objects
 * back from the fd store), the next request makes a new connection to the
 * same socket and re-opens every open handle by name, swapping in the new
 * broker handle ids.  Mappings never change: a re-open must find the same
 * inode, otherwise the handle becomes an orphan (its mapping stays valid,
 * it just has no broker handle any more).  Undo semaphores take back their
 * slot or get a new one (sem.c); a segment handle with a lock token takes
 * the token back, so that the lock is still released as owner-died if it
 * dies holding it.  Both show the nonce the broker gave with what they
 * reclaim: nobody else can take it.  Nothing here runs on a fast path. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ipcb__client_obj_add(ipcb_client *c, client_obj *o, int kind, const char *name, uint32_t access,
                   const struct stat *st, uint32_t gen) {
        o->name = strdup(name);
        if (!o->name)
                return -ENOMEM;
        o->kind = kind;
        o->access = access;
        o->dev = st->st_dev;
        o->ino = st->st_ino;
        o->orphan = false;
        pthread_mutex_lock(&c->lock);
        o->conn_gen = gen;
        o->prev = NULL;
        o->next = c->objs;
        if (c->objs)
                c->objs->prev = o;
        c->objs = o;
        pthread_mutex_unlock(&c->lock);
        return 0;
}

static void obj_unlink_locked(ipcb_client *c, client_obj *o) {
        if (o->prev)
                o->prev->next = o->next;
        else if (c->objs == o)
                c->objs = o->next;
        if (o->next)
                o->next->prev = o->prev;
        o->prev = o->next = NULL;
}

void ipcb__client_obj_remove(ipcb_client *c, client_obj *o) {
        pthread_mutex_lock(&c->lock);
        obj_unlink_locked(c, o);
        pthread_mutex_unlock(&c->lock);
        free(o->name);
        o->name = NULL;
}

int ipcb__client_obj_release(ipcb_client *c, client_obj *o) {
        int r = 0;

        /* Checked and sent under one hold of the lock: once another thread
         * has reconnected, the id may name another handle of ours. */
        ipcb__client_lock_untimed(c);
        obj_unlink_locked(c, o);
        if (!o->orphan && o->conn_gen == c->conn_gen) { /* else it died with an old connection */
                r = ipcb__client_release_handle_locked(c, o->handle);
                /* Lost just now (a restart?): the handle died with the
                 * connection, so nothing is left to release if the broker
                 * is back. */
                if (r == -ENOTCONN && !c->disconnected && ipcb__client_reconnect(c) == 0)
                        r = 0;
        }
        pthread_mutex_unlock(&c->lock);
        free(o->name);
        o->name = NULL;
        return r;
}

int ipcb__client_reopen(ipcb_client *c, client_obj *o, uint8_t *buf, ipcb_msg *reply, int *ret_fd,
                  uint32_t flags, uint32_t token, uint64_t nonce) {
        ipcb_msg req = { .hdr.op = 0 };
        struct stat st;
        int fd = -1, r;

        if (o->kind == IPCB_KIND_SHM) {
                req.hdr.op = IPCB_OP_SHM_OPEN;
                req.shm_open.access = o->access;
                req.shm_open.flags = flags;
                req.shm_open.token = token;
                req.shm_open.nonce = nonce;
                r = ipcb__client_name_check(o->name, &req.shm_open.name);
        } else {
                req.hdr.op = IPCB_OP_SEM_OPEN;
                req.sem_open.flags = o->access | flags;
                req.sem_open.nonce = nonce;
                r = ipcb__client_name_check(o->name, &req.sem_open.name);
        }
        if (r < 0)
                return r;
        r = ipcb__client_call_once(c, &req, buf, reply, &fd);
        if (r < 0)
                return r;
        if (fd < 0 || fstat(fd, &st) < 0 || st.st_dev != o->dev || st.st_ino != o->ino) {
                /* Another object under the same name now: not ours. */
                uint64_t h = o->kind == IPCB_KIND_SHM ? reply->shm_reply.handle : reply->sem_reply.handle;
                if (fd >= 0)
                        close(fd);
                (void)ipcb__client_release_handle_locked(c, h);
                return -ESTALE;
        }
        *ret_fd = fd;
        return 0;
}

/* The plain re-open (as handle) of segment handle s, which had a lock
 * token the broker does not know: a new token now, before the old one is
 * used again.  No handle of the broker holds the old one, so a holder that
 * died with it would leave the lock held for good.  (The reply's page is
 * the one s has mapped: the re-open checked the object.)  On failure the
 * new handle is let go. */
static int renew_token(ipcb_client *c, ipcb_shm *s, uint64_t handle) {
        ipcb_msg req = { .hdr.op = IPCB_OP_SHM_LOCK_PAGE }, reply;
        uint8_t buf[IPCB_MSG_MAX];
        uint32_t token = 0;
        int fd = -1, r;

        req.shm_lock_page.handle = handle;
        r = ipcb__client_call_once(c, &req, buf, &reply, &fd);
        if (fd >= 0)
                close(fd);
        if (r == 0 && !(token = reply.lock_reply.token & IPCB_LOCK_OWNER_MASK))
                r = -EPROTO;
        if (r < 0) {
                if (r != -ENOTCONN && r != -ETIMEDOUT)
                        (void)ipcb__client_release_handle_locked(c, handle);
                return r;
        }
        s->lock_nonce = reply.lock_reply.nonce;
        __atomic_store_n(&s->lock_token, token, __ATOMIC_RELAXED);
        return 0;
}

/* Re-open segment handle o (c->lock held).  If it has a lock token, take
 * the token back with it: a restarted broker releases a lock held across
 * the restart as owner-died unless its token is reclaimed in time, and a
 * handle whose token the broker does not know is not released when it
 * dies.  A token the broker refuses (-ESRCH: the grace period is over, or
 * the broker did not restart and let the token go with the old
 * connection) leaves a plain re-open, and a new token. */
static int reopen_shm(ipcb_client *c, client_obj *o, uint8_t *buf, ipcb_msg *reply, int *ret_fd) {
        ipcb_shm *s = (ipcb_shm *)o; /* obj is the first member */
        bool had_token = __atomic_load_n(&s->lock, __ATOMIC_ACQUIRE) && s->lock_token;
        int r = -ESRCH;

        if (had_token)
                r = ipcb__client_reopen(c, o, buf, reply, ret_fd, IPCB_WF_RECLAIM, s->lock_token,
                                  s->lock_nonce);
        if (r == -ESRCH) {
                r = ipcb__client_reopen(c, o, buf, reply, ret_fd, 0, 0, 0);
                if (r == 0 && had_token && (r = renew_token(c, s, reply->shm_reply.handle)) < 0) {
                        close(*ret_fd);
                        *ret_fd = -1;
                }
        }
        /* The restore bumped the page's epoch before this broker served
         * anyone: what we see now is the epoch of this broker. */
        if (r == 0 && s->lock)
                __atomic_store_n(&s->lock_epoch, atomic_load(&s->lock->epoch), __ATOMIC_RELAXED);
        return r;
}

/* Re-open o on the current connection (c->lock held), as a reconnect does:
 * 0, or an error (-EBUSY: an undo semaphore in use re-opens itself). */
static int obj_reopen_locked(ipcb_client *c, client_obj *o) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg reply;
        int ofd = -1, r;

        /* An undo semaphore needs its slot fields: sem.c does it (or
         * leaves it to the handle's next call if it is in use). */
        if (o->kind == IPCB_KIND_SEM && (o->access & IPCB_WF_UNDO))
                return ipcb__sem_reopen_locked(c, o);
        r = o->kind == IPCB_KIND_SHM ? reopen_shm(c, o, buf, &reply, &ofd)
                                     : ipcb__client_reopen(c, o, buf, &reply, &ofd, 0, 0, 0);
        if (r == 0) {
                close(ofd);
                o->handle = o->kind == IPCB_KIND_SHM ? reply.shm_reply.handle : reply.sem_reply.handle;
                o->conn_gen = c->conn_gen;
        }
        return r;
}

void ipcb__client_obj_catch_up(ipcb_client *c, client_obj *o) {
        int r;

        ipcb__client_lock_untimed(c);
        /* A dead connection: the next request reconnects and re-opens o
         * with the rest. */
        if (!o->orphan && o->conn_gen != c->conn_gen && !c->dead) {
                r = obj_reopen_locked(c, o);
                if (r == -ETIMEDOUT)
                        ipcb__client_kill(c); /* as a reconnect: the next call starts over */
                else if (r < 0 && r != -ENOTCONN && r != -EBUSY)
                        o->orphan = true;
        }
        pthread_mutex_unlock(&c->lock);
}

int ipcb__client_reconnect(ipcb_client *c) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_HELLO }, reply;
        int fd, r;

        if (c->disconnected)
                return -ENOTCONN;
        fd = ipcb__client_dial(&c->addr, ipcb__client_deadline(c));
        if (fd < 0)
                return fd == -ETIMEDOUT ? -ETIMEDOUT : -ENOTCONN;
        if (c->fd >= 0)
                close(c->fd);
        c->fd = fd;
        c->rcvtimeo_us = -1;
        c->dead = false;
        c->late = false;
        atomic_store(&c->gone, false);
        ipcb__loop_fd_changed(c);
        req.hello.version = IPCB_PROTO_VERSION;
        r = ipcb__client_call_once(c, &req, buf, &reply, NULL);
        if (r < 0 || reply.hello_reply.version != IPCB_PROTO_VERSION) {
                ipcb__client_kill(c);
                return r == -ETIMEDOUT ? -ETIMEDOUT : -ENOTCONN;
        }
        c->caps = reply.hello_reply.caps; /* the new broker may be another version */
        c->conn_gen++;
        for (client_obj *o = c->objs; o; o = o->next) {
                if (o->orphan)
                        continue;
                r = obj_reopen_locked(c, o);
                if (r == -ENOTCONN)
                        return -ENOTCONN; /* lost again: the next call retries */
                if (r == -ETIMEDOUT) {
                        /* Handles not re-opened would stay without a broker
                         * handle: drop this connection, the next call starts
                         * over (the late replies die with it). */
                        ipcb__client_kill(c);
                        return -ETIMEDOUT;
                }
                if (r < 0 && r != -EBUSY)
                        o->orphan = true;
        }
        r = ipcb__watch_reconnected(c);
        if (r == -ETIMEDOUT)
                ipcb__client_kill(c);
        return r == -ETIMEDOUT || r == -ENOTCONN ? r : 0;
}
