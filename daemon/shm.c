/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* shm.c: segment creation.  The memfd is sized and sealed before it is
 * registered, so no fd of an unsealed or wrongly sized segment ever leaves
 * the daemon. */
#include "shm.h"

#include "os.h"
#include "proto.h"
#include "registry.h"
#include "store.h"

#include <errno.h>
#include <unistd.h>

int shm_new(const char *name, size_t name_len, uint64_t size, uint32_t mode, uint32_t flags,
            const cred *owner, object **ret) {
        unsigned seals;
        int rw, k;
        object *o;

        k = os_memfd_sealed(size, flags & IPCB_WF_GROWABLE, &rw, &seals);
        if (k < 0)
                return k;
        o = registry_add(IPCB_KIND_SHM, name, name_len, 0);
        if (!o) {
                close(rw);
                return -ENOMEM;
        }
        o->uid = owner->uid;
        o->gid = owner->gid;
        o->mode = mode;
        o->flags = flags;
        o->size = size;
        o->seals = seals;
        o->fd_rw = rw;
        store_object_added(o);
        *ret = o;
        return 0;
}

int shm_ro_fd(object *o) {
        if (o->fd_ro < 0) {
                int fd = os_reopen_ro(o->fd_rw);
                if (fd < 0)
                        return fd;
                o->fd_ro = fd;
        }
        return 0;
}

void shm_ro_fd_drop(object *o) {
        if (o->fd_ro >= 0) {
                close(o->fd_ro);
                o->fd_ro = -1;
        }
}
