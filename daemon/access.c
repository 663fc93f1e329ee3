/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* access.c: requests that change who may do what, publish client memfds,
 * and report quotas (the 0x03xx opcodes).  Every decision uses the peer's
 * kernel credentials (policy.c); every size comes from fstat, never from the
 * wire; a received fd is either kept by the object it becomes or closed by
 * the peer after dispatch (peer.c), on every path. */
#include "access.h"

#include "config.h"
#include "inode.h"
#include "log.h"
#include "os.h"
#include "quota.h"
#include "reaper.h"
#include "registry.h"
#include "shm.h"
#include "store.h"
#include "watch.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#define SEALS_WRITE (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)
#define MEMFD_SEALS_ALLOWED (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | SEALS_WRITE)


static ipcb_msg reply_to(const ipcb_msg *m) {
        return (ipcb_msg){ .hdr = { .op = m->hdr.op | IPCB_OP_REPLY, .id = m->hdr.id } };
}

void access_charged(object *o, uid_t uid, uint64_t bytes) {
        o->quota_charged = true;
        o->quota_uid = uid;
        o->quota_bytes = bytes;
}

bool access_write_sealed(object *o) {
        return o->rdonly_source || (object_seals(o) & SEALS_WRITE);
}

static int lookup(uint8_t kind, const ipcb_name *n, object **ret) {
        int k;

        if (kind < 1 || kind > IPCB_KIND_MAX_)
                return -EINVAL;
        if ((k = ipcb__name_check(n->ptr, n->len)) < 0)
                return k;
        *ret = registry_lookup(kind, n->ptr, n->len);
        return *ret ? 0 : -ENOENT;
}

int access_set(peer *p, const ipcb_msg *m) {
        ipcb_msg r = reply_to(m);
        uint32_t what = m->set_access.what;
        uid_t uid;
        gid_t gid;
        object *o;
        int k;

        if ((k = lookup(m->set_access.kind, &m->set_access.name, &o)) < 0)
                return k;
        if (what == 0 || (what & ~IPCB_SA_MASK) ||
            ((what & IPCB_SA_MODE) && (m->set_access.mode & ~IPCB_MODE_MASK)) ||
            ((what & IPCB_SA_UID) && m->set_access.uid == UINT32_MAX) ||
            ((what & IPCB_SA_GID) && m->set_access.gid == UINT32_MAX))
                return -EINVAL;
        if ((k = policy_may_manage(o, &p->cred)) < 0)
                return k;
        uid = what & IPCB_SA_UID ? (uid_t)m->set_access.uid : o->uid;
        gid = what & IPCB_SA_GID ? (gid_t)m->set_access.gid : o->gid;
        if ((what & (IPCB_SA_UID | IPCB_SA_GID)) && (k = policy_may_chown(o, &p->cred, uid, gid)) < 0)
                return k;
        /* Quota charges stay with the creator (object.h). */
        o->uid = uid;
        o->gid = gid;
        if (what & IPCB_SA_MODE)
                o->mode = m->set_access.mode;
        log_client_debug("client pid %d uid %u: '%s' now %u:%u mode %04o", (int)p->cred.pid,
                  (unsigned)p->cred.uid, o->name, (unsigned)o->uid, (unsigned)o->gid, o->mode);
        store_object_changed(o);
        peer_reply(p, &r, NULL, 0);
        return 0;
}

/* A FREEZE, served off the loop: F_ADD_SEALS takes the memfd's inode lock,
 * which a holder's write() keeps while it waits on a page of its source
 * (on a FUSE mount whose server stalls: for ever), and F_SEAL_WRITE waits
 * up to 150 ms or so for pages a holder pinned (spliced into a pipe it
 * keeps) before it fails. */
typedef struct freeze_op {
        peer_op op;
        ipcb_hdr req;
        uint64_t id;   /* the object's */
        int fd;        /* a duplicate of its memfd, closed by the work */
        int status;    /* 0, or what the kernel said */
        unsigned seals;
} freeze_op;

/* On a worker. */
static void freeze_work(void *arg) {
        freeze_op *f = arg;
        int k;

        /* F_SEAL_WRITE makes the bytes immutable for everyone, but the kernel
         * refuses it (EBUSY) while any writable shared mapping exists; then
         * F_SEAL_FUTURE_WRITE: no new write access, existing mappings keep
         * theirs.  Growing is sealed too: a frozen size is part of frozen.
         * A freeze after a FUTURE_WRITE one, once no writable mapping is
         * left, gets F_SEAL_WRITE. */
        k = fcntl(f->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
        if (k < 0 && errno == EBUSY)
                k = fcntl(f->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE);
        f->status = k < 0 ? -errno : 0;
        k = fcntl(f->fd, F_GET_SEALS);
        f->seals = k < 0 ? 0 : (unsigned)k;
        /* EPERM: F_SEAL_SEAL is set, and the kernel refuses every seal, even
         * one already there.  A read-write holder can seal the memfd itself
         * (seals belong to the inode): if it carries what a freeze adds, it
         * is frozen. */
        if (f->status == -EPERM && (f->seals & (F_SEAL_SHRINK | F_SEAL_GROW)) ==
                                           (F_SEAL_SHRINK | F_SEAL_GROW) && (f->seals & SEALS_WRITE))
                f->status = 0;
        close(f->fd); /* the last reference if the object went meanwhile */
}

/* The segment with this id, if it still lives. */
static object *segment_by_id(uint64_t id) {
        object *o = registry_kind_first_after(IPCB_KIND_SHM, id - 1);

        return o && o->id == id ? o : NULL;
}

/* Back on the loop: the reply, then the watchers' FROZEN (as a request
 * served on the loop is announced after its reply). */
static void freeze_done(void *arg) {
        freeze_op *f = arg;
        ipcb_msg r = { .hdr = { .op = f->req.op | IPCB_OP_REPLY, .id = f->req.id } };
        peer *p = f->op.p;
        object *o = segment_by_id(f->id);

        if (f->status == 0 && o) {
                /* The size it grew to is final now: keep it before
                 * object_size() stops asking the memfd (the broker's own,
                 * fstat cannot block). */
                o->size = object_size(o);
                o->flags &= ~IPCB_WF_GROWABLE;
                f->seals = object_seals(o);
                store_object_changed(o);
        }
        peer_op_done(&f->op);
        if (p && !p->closing) {
                if (f->status < 0)
                        peer_reply_error(p, &f->req, f->status);
                else {
                        r.freeze_reply.seals = f->seals;
                        peer_reply(p, &r, NULL, 0);
                }
        }
        /* the reply may close p, and with p's handles o: looked up again */
        if (f->status == 0 && (o = segment_by_id(f->id)))
                watch_emit(o, IPCB_WE_FROZEN);
}

int access_freeze(peer *p, const ipcb_msg *m) {
        freeze_op *f;
        object *o;
        int k;

        if (m->freeze.kind != IPCB_KIND_SHM) /* segments only */
                return -EINVAL;
        if ((k = lookup(m->freeze.kind, &m->freeze.name, &o)) < 0)
                return k;
        if ((k = policy_may_manage(o, &p->cred)) < 0)
                return k;
        if (o->rdonly_source)
                return -EROFS;
        if (!(f = calloc(1, sizeof(*f))))
                return -ENOMEM;
        if ((f->fd = fcntl(o->fd_rw, F_DUPFD_CLOEXEC, 3)) < 0) {
                k = -errno;
                free(f);
                return k;
        }
        f->req = m->hdr;
        f->id = o->id;
        peer_op_start(p, &f->op);
        reaper_run(p->reaping, freeze_work, freeze_done, f);
        return 0;
}

/* Is fd a memfd we can publish?  0 with its size, seals, whether the
 * description is read-only, and its inode; -EBADFD for anything else. */
static int memfd_check(peer *p, int fd, uint64_t *ret_size, unsigned *ret_seals, bool *ret_rdonly,
                       struct stat *ret_st) {
        char path[64], target[64];
        struct statfs sfs;
        struct stat st;
        const char *why = NULL;
        ssize_t n;
        int seals = -1, fl = -1;

        /* F_GET_SEALS first: it asks no filesystem (a FUSE server can make
         * fstat block the loop forever) and fails for everything but shmem
         * and hugetlbfs files; only those are looked at further. */
        if ((seals = fcntl(fd, F_GET_SEALS)) < 0)
                why = "not a memfd (no seals)";
        else if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                why = "not a regular file";
        else if (snprintf(path, sizeof(path), "/proc/self/fd/%d", fd) < 0 ||
                 (n = readlink(path, target, sizeof(target) - 1)) < 7 ||
                 (target[n] = '\0', fstatfs(fd, &sfs) < 0) ||
                 (sfs.f_type != TMPFS_MAGIC && sfs.f_type != HUGETLBFS_MAGIC) ||
                 strncmp(target, "/memfd:", 7) != 0)
                why = "not a memfd";
        else if (seals & F_SEAL_SEAL && !(seals & F_SEAL_SHRINK))
                why = "a memfd that does not allow sealing";
        else if (!(seals & F_SEAL_SHRINK))
                why = "a memfd without F_SEAL_SHRINK";
        else if ((fl = fcntl(fd, F_GETFL)) < 0 || (fl & O_ACCMODE) == O_WRONLY)
                why = "a write-only descriptor";
        if (why) {
                log_client_debug("client pid %d uid %u: register refused: %s", (int)p->cred.pid,
                                 (unsigned)p->cred.uid, why);
                return -EBADFD;
        }
        *ret_size = (uint64_t)st.st_size;
        *ret_st = st;
        *ret_seals = (unsigned)seals;
        *ret_rdonly = (fl & O_ACCMODE) == O_RDONLY;
        return 0;
}

/* Nobody but the inode's owner (and root) may reopen it writable through
 * /proc: no group or other write bit (nor any exec bit).  The library drops
 * them before sending; the daemon does not chmod it itself, which would
 * wait for the inode's lock, held by any write() to the memfd (for ever,
 * if that write waits on a page of a stalled FUSE file).  Then make sure
 * the daemon itself can reopen it for read-only handles. */
static int memfd_lock_down(int fd) {
        struct stat st;
        int ro;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_mode & 0133)
                return -EACCES;
        ro = os_reopen_ro(fd);
        if (ro < 0)
                return -EACCES;
        close(ro);
        return 0;
}

int access_register(peer *p, const ipcb_msg *m) {
        const ipcb_name *n = &m->shm_register.name;
        ipcb_msg r = reply_to(m);
        struct stat st;
        uint32_t access;
        uint64_t size;
        unsigned seals;
        bool rdonly;
        int64_t h;
        object *o;
        int fd = p->rx_fd, k;

        if (fd < 0) /* cannot happen: the decoder demands the fd */
                return -EBADF;
        if ((k = ipcb__name_check(n->ptr, n->len)) < 0)
                return k;
        if ((m->shm_register.flags & ~IPCB_WF_REGISTER_MASK) ||
            (m->shm_register.mode & ~IPCB_MODE_MASK))
                return -EINVAL;
        if ((k = memfd_check(p, fd, &size, &seals, &rdonly, &st)) < 0)
                return k;
        if (size == 0)
                return -EINVAL;
        if (size > cfg.max_segment_size)
                return -EFBIG;
        if ((k = config_reserve_check(&p->cred, n->ptr, n->len)) < 0)
                return k;
        if (registry_lookup(IPCB_KIND_SHM, n->ptr, n->len))
                return -EEXIST;
        /* An inode we serve already (a segment's, through a read-write or
         * read-only handle; a semaphore's or lock's page; one registered
         * before): as a second name it would be the registrar's to chmod,
         * freeze and keep alive, whatever the real owner decides. */
        if (inode_served(st.st_dev, st.st_ino)) {
                log_client_debug("client pid %d uid %u: register refused: a memfd the broker "
                                 "already serves", (int)p->cred.pid, (unsigned)p->cred.uid);
                return -EBADFD;
        }
        if ((k = memfd_lock_down(fd)) < 0)
                return k;
        if ((k = quota_charge_object(p->cred.uid, IPCB_KIND_SHM, size)) < 0)
                return k;
        o = registry_add(IPCB_KIND_SHM, n->ptr, n->len, 0);
        if (!o) {
                quota_uncharge_object(p->cred.uid, IPCB_KIND_SHM, size);
                return -ENOMEM;
        }
        o->uid = p->cred.uid;
        o->gid = p->cred.gid;
        o->mode = m->shm_register.mode;
        o->flags = m->shm_register.flags | (seals & F_SEAL_GROW ? 0 : IPCB_WF_GROWABLE);
        o->size = size;
        o->seals = seals;
        o->fd_rw = fd;
        o->rdonly_source = rdonly;
        p->rx_fd = -1; /* the object owns it now */
        object_index(o);
        access_charged(o, p->cred.uid, size);
        store_object_added(o);

        access = access_write_sealed(o) ? IPCB_WA_READ_ONLY : IPCB_WA_READ_WRITE;
        h = peer_handle_add(p, o, access);
        if (h < 0) {
                o->watch_silent = true; /* nobody heard of it */
                object_unlink(o); /* closes fd, uncharges */
                return (int)h;
        }
        log_client_debug("client pid %d uid %u registered '%s' (%llu bytes, seals 0x%x)",
                  (int)p->cred.pid, (unsigned)p->cred.uid, o->name, (unsigned long long)size, seals);
        r.shm_reply.handle = (uint64_t)h;
        r.shm_reply.size = size;
        r.shm_reply.seals = seals;
        r.shm_reply.access = access;
        r.shm_reply.uid = (uint32_t)o->uid;
        r.shm_reply.gid = (uint32_t)o->gid;
        r.shm_reply.mode = o->mode;
        peer_reply(p, &r, NULL, 0);
        return 0;
}

int access_memfd(peer *p, const ipcb_msg *m) {
        unsigned want = m->memfd.seals | F_SEAL_SHRINK, seals;
        ipcb_msg r = reply_to(m);
        int fd, k;

        if (m->memfd.size == 0 || m->memfd.size > INT64_MAX || (want & ~MEMFD_SEALS_ALLOWED))
                return -EINVAL;
        if (m->memfd.size > cfg.max_segment_size)
                return -EFBIG;
        if ((k = os_memfd_sealed(m->memfd.size, !(want & F_SEAL_GROW), &fd, &seals)) < 0)
                return k;
        if ((want & (SEALS_WRITE | F_SEAL_SEAL)) &&
            fcntl(fd, F_ADD_SEALS, want & (SEALS_WRITE | F_SEAL_SEAL)) < 0) {
                k = -errno;
                close(fd);
                return k;
        }
        k = fcntl(fd, F_GET_SEALS);
        r.memfd_reply.size = m->memfd.size;
        r.memfd_reply.seals = k < 0 ? want : (uint32_t)k;
        peer_reply(p, &r, &fd, 1); /* borrows fd (a queued reply keeps a copy) */
        close(fd);
        return 0;
}

int access_quota(peer *p, const ipcb_msg *m) {
        static ipcb_quota_rec recs[IPCB_QUOTA_RECS_MAX];
        ipcb_msg r = reply_to(m);
        bool all = m->quota.flags & IPCB_QF_ALL, more = false, priv = policy_privileged(&p->cred);
        unsigned count;

        if (m->quota.flags & ~IPCB_QF_ALL)
                return -EINVAL;
        if (!all && m->quota.uid != (uint32_t)p->cred.uid && !priv)
                return -EPERM;
        if (all && priv)
                count = quota_report(false, 0, m->quota.cursor, recs, IPCB_QUOTA_RECS_MAX, &more);
        else
                count = quota_report(true, all ? p->cred.uid : (uid_t)m->quota.uid,
                                     m->quota.cursor, recs, IPCB_QUOTA_RECS_MAX, &more);
        r.quota_reply.max_objects = cfg.max_objects_per_uid;
        r.quota_reply.max_bytes = cfg.max_bytes_per_uid;
        r.quota_reply.max_handles = cfg.max_handles_per_uid;
        r.quota_reply.max_connections = cfg.max_connections_per_uid;
        r.quota_reply.count = (uint16_t)count;
        r.quota_reply.more = more;
        r.quota_reply.next_cursor = count ? (uint64_t)recs[count - 1].uid + 1 : m->quota.cursor;
        r.quota_reply.recs = recs;
        peer_reply(p, &r, NULL, 0);
        return 0;
}
