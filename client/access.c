/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* access.c: the library side of access control, sealed publishing and
 * quotas (ipcb_set_access, ipcb_shm_freeze, ipcb_shm_register,
 * ipcb_memfd_sealed, ipcb_quota).  Wire encoding lives in proto/. */
#include "ipcbroker.h"

#include "internal.h"
#include "proto.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

int ipcb_set_access(ipcb_client *c, int kind, const char *name, const ipcb_access *acc) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_SET_ACCESS }, reply;
        int r;

        if (!c || !acc || acc->struct_size < offsetof(ipcb_access, gid) + sizeof(acc->gid) ||
            (kind != IPCB_KIND_SHM && kind != IPCB_KIND_SEM) || acc->what == 0 ||
            (acc->what & ~(unsigned)IPCB_SA_MASK))
                return -EINVAL;
        if ((acc->what & IPCB_ACCESS_MODE) && (acc->mode & ~IPCB_MODE_MASK))
                return -EINVAL;
        r = ipcb__client_name_check(name, &req.set_access.name);
        if (r < 0)
                return r;
        req.set_access.kind = (uint8_t)kind;
        req.set_access.what = acc->what;
        if (acc->what & IPCB_ACCESS_MODE)
                req.set_access.mode = acc->mode;
        if (acc->what & IPCB_ACCESS_UID)
                req.set_access.uid = (uint32_t)acc->uid;
        if (acc->what & IPCB_ACCESS_GID)
                req.set_access.gid = (uint32_t)acc->gid;
        return ipcb__client_request(c, &req, buf, &reply, NULL);
}

int ipcb_chmod(ipcb_client *c, int kind, const char *name, unsigned mode) {
        ipcb_access a = IPCB_ACCESS_INIT;

        a.what = IPCB_ACCESS_MODE;
        a.mode = mode;
        return ipcb_set_access(c, kind, name, &a);
}

int ipcb_chown(ipcb_client *c, int kind, const char *name, uid_t uid, gid_t gid) {
        ipcb_access a = IPCB_ACCESS_INIT;

        if (uid != (uid_t)-1) {
                a.what |= IPCB_ACCESS_UID;
                a.uid = uid;
        }
        if (gid != (gid_t)-1) {
                a.what |= IPCB_ACCESS_GID;
                a.gid = gid;
        }
        return ipcb_set_access(c, kind, name, &a);
}

int ipcb_shm_freeze(ipcb_client *c, const char *name, unsigned *ret_seals) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_FREEZE }, reply;
        int r;

        if (!c)
                return -EINVAL;
        r = ipcb__client_name_check(name, &req.freeze.name);
        if (r < 0)
                return r;
        req.freeze.kind = IPCB_KIND_SHM;
        r = ipcb__client_request(c, &req, buf, &reply, NULL);
        if (r < 0)
                return r;
        if (ret_seals)
                *ret_seals = reply.freeze_reply.seals;
        return 0;
}

/* Map the registered memfd and record the handle, like shm_finish in
 * client.c.  Consumes fd and the broker handle on every path. */
int ipcb__client_register_finish(ipcb_client *c, const char *name, const ipcb_msg *reply,
                           uint32_t gen, int fd, ipcb_shm **ret) {
        uint64_t size = reply->shm_reply.size;
        int access = (int)reply->shm_reply.access;
        ipcb_shm *s = NULL;
        void *data = MAP_FAILED;
        int r;

        if ((access != IPCB_READ_ONLY && access != IPCB_READ_WRITE) || size == 0 ||
            size > SIZE_MAX) {
                r = -EPROTO;
                goto fail;
        }
        if (!(s = calloc(1, sizeof(*s)))) {
                r = -ENOMEM;
                goto fail;
        }
        data = mmap(NULL, (size_t)size,
                    access == IPCB_READ_ONLY ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED,
                    fd, 0);
        if (data == MAP_FAILED) {
                r = -errno;
                goto fail;
        }
        s->obj.handle = reply->shm_reply.handle;
        s->fd = fd;
        s->data = data;
        s->size = (size_t)size;
        s->access = access;
        s->seals = reply->shm_reply.seals;
        s->info = (ipcb_handle_info){ .uid = (uid_t)reply->shm_reply.uid,
                                      .gid = (gid_t)reply->shm_reply.gid,
                                      .mode = reply->shm_reply.mode };
        s->lock_poll_fd = -1;
        s->lock_notify.fd = -1;
        struct stat st;
        r = fstat(fd, &st) < 0 ? -errno
                               : ipcb__client_obj_add(c, &s->obj, IPCB_KIND_SHM, name, (uint32_t)access, &st,
                                                      gen);
        if (r < 0)
                goto fail;
        s->client = ipcb__client_ref(c);
        ipcb__client_obj_catch_up(c, &s->obj);
        *ret = s;
        return 0;
fail:
        if (data != MAP_FAILED)
                munmap(data, (size_t)size);
        free(s);
        close(fd);
        (void)ipcb__client_release_handle(c, reply->shm_reply.handle, gen);
        return r;
}

/* 0 if fd is a memfd, as the broker judges it (daemon/access.c:
 * memfd_check): F_GET_SEALS works only on shmem and hugetlbfs files, and
 * of those only a memfd's /proc/self/fd link reads "/memfd:...".  Else
 * -EBADFD. */
static int memfd_is(int fd) {
        char path[64], target[16];
        ssize_t n;

        if (fcntl(fd, F_GET_SEALS) < 0)
                return -EBADFD;
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, target, sizeof(target));
        if (n < 7 || memcmp(target, "/memfd:", 7) != 0)
                return -EBADFD;
        return 0;
}

int ipcb__client_register_prepare(const char *name, int memfd, const ipcb_shm_options *opts,
                            ipcb_msg *req, int *ret_own) {
        unsigned mode = 0600, flags = 0;
        struct stat st;
        int own, r;

        if (memfd < 0)
                return -EINVAL;
        *req = (ipcb_msg){ .hdr.op = IPCB_OP_SHM_REGISTER };
        r = ipcb__client_name_check(name, &req->shm_register.name);
        if (r < 0)
                return r;
        if (opts) {
                if (opts->struct_size < offsetof(ipcb_shm_options, mode) + sizeof(opts->mode))
                        return -EINVAL;
                mode = opts->mode;
                if (opts->struct_size >= offsetof(ipcb_shm_options, flags) + sizeof(opts->flags))
                        flags = opts->flags & ~IPCB_SHM_GROWABLE;
        }
        if ((mode & ~IPCB_MODE_MASK) || (flags & ~IPCB_WF_REGISTER_MASK))
                return -EINVAL;
        /* Nothing is changed about a file before it is known to be a memfd
         * (the broker would refuse anything else, after our fchmod). */
        if ((r = memfd_is(memfd)) < 0)
                return r;
        if (fstat(memfd, &st) < 0)
                return -errno;
        /* A memfd is born 0777: any uid that reaches it in /proc could
         * reopen it writable.  Ours to fix as its owner; the broker refuses
         * what it cannot fix. */
        if (S_ISREG(st.st_mode) && (st.st_mode & 0133))
                (void)fchmod(memfd, st.st_mode & 0644);
        /* Our own copy for the handle: the caller keeps memfd. */
        own = fcntl(memfd, F_DUPFD_CLOEXEC, 3);
        if (own < 0)
                return -errno;
        req->shm_register.mode = mode;
        req->shm_register.flags = flags;
        req->hdr.nfds = 1;
        *ret_own = own;
        return 0;
}

int ipcb_shm_register(ipcb_client *c, const char *name, int memfd, const ipcb_shm_options *opts,
                      ipcb_shm **ret) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req, reply;
        int own, r;

        if (!c || !ret)
                return -EINVAL;
        if ((r = ipcb__client_register_prepare(name, memfd, opts, &req, &own)) < 0)
                return r;
        if ((r = ipcb__client_lock(c)) < 0) {
                close(own);
                return r;
        }
        c->send_fd = memfd;
        r = ipcb__client_call(c, &req, buf, &reply, NULL);
        pthread_mutex_unlock(&c->lock);
        if (r < 0) {
                close(own);
                return r;
        }
        return ipcb__client_register_finish(c, name, &reply, ipcb__client_reply_gen(), own, ret);
}

int ipcb_memfd_sealed(ipcb_client *c, size_t size, unsigned seals, int *ret_fd,
                      unsigned *ret_seals) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_MEMFD }, reply;
        struct stat st;
        int fd = -1, r;

        if (!c || !ret_fd || size == 0 ||
            (seals & ~(unsigned)(F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
                                 F_SEAL_FUTURE_WRITE)))
                return -EINVAL;
        req.memfd.size = size;
        req.memfd.seals = seals;
        r = ipcb__client_request(c, &req, buf, &reply, &fd);
        if (r < 0)
                return r;
        /* Trust the memfd, not the message. */
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != size) {
                if (fd >= 0)
                        close(fd);
                return -EPROTO;
        }
        r = fcntl(fd, F_GET_SEALS);
        *ret_fd = fd;
        if (ret_seals)
                *ret_seals = r < 0 ? 0 : (unsigned)r;
        return 0;
}

/* Record i of a QUOTA reply, with the reply's limits. */
void ipcb__client_quota_info(const ipcb_msg *reply, unsigned i, ipcb_quota_info *ret) {
        ipcb_quota_rec q;

        ipcb__quota_rec_at(reply, i, &q);
        *ret = (ipcb_quota_info){
                .struct_size = sizeof(*ret),
                .uid = (uid_t)q.uid,
                .exempt = !!(q.flags & IPCB_QR_EXEMPT),
                .objects = q.objects,
                .bytes = q.bytes,
                .handles = q.handles,
                .connections = q.connections,
                .max_objects = reply->quota_reply.max_objects,
                .max_bytes = reply->quota_reply.max_bytes,
                .max_handles = reply->quota_reply.max_handles,
                .max_connections = reply->quota_reply.max_connections,
        };
}

int ipcb_quota(ipcb_client *c, uid_t uid, ipcb_quota_info *ret) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_QUOTA }, reply;
        ipcb_quota_info info = IPCB_QUOTA_INFO_INIT;
        int r;

        if (!c || !ret || uid == (uid_t)-1 || ret->struct_size < QUOTA_INFO_MIN_SIZE)
                return -EINVAL;
        req.quota.uid = (uint32_t)uid;
        r = ipcb__client_request(c, &req, buf, &reply, NULL);
        if (r < 0)
                return r;
        if (reply.quota_reply.count != 1)
                return -EPROTO;
        ipcb__client_quota_info(&reply, 0, &info);
        client_out_copy(ret, &info, sizeof(info));
        return 0;
}

int ipcb_quota_list(ipcb_client *c, int (*cb)(const ipcb_quota_info *info, void *userdata),
                    void *userdata) {
        uint64_t cursor = 0;
        bool more = true;

        if (!c || !cb)
                return -EINVAL;
        while (more) {
                uint8_t buf[IPCB_MSG_MAX];
                ipcb_msg req = { .hdr.op = IPCB_OP_QUOTA }, reply;
                ipcb_quota_info *infos;
                unsigned n;
                int r;

                req.quota.flags = IPCB_QF_ALL;
                req.quota.cursor = cursor;
                r = ipcb__client_request(c, &req, buf, &reply, NULL);
                if (r < 0)
                        return r;
                n = reply.quota_reply.count;
                more = reply.quota_reply.more;
                if (more && reply.quota_reply.next_cursor <= cursor)
                        return -EPROTO;
                cursor = reply.quota_reply.next_cursor;
                /* Copy out so that cb runs without borrowing buf. */
                infos = calloc(n ? n : 1, sizeof(*infos));
                if (!infos)
                        return -ENOMEM;
                for (unsigned i = 0; i < n; i++)
                        ipcb__client_quota_info(&reply, i, &infos[i]);
                for (unsigned i = 0; i < n; i++) {
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

