/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* holders.c: ipcb_holders, the connections that hold handles on one object
 * (HOLDERS, docs/protocol.md): who keeps a segment or semaphore alive, as
 * `ipcs -p` tells for System V objects. */
#include "ipcbroker.h"

#include "internal.h"
#include "proto.h"

#include <errno.h>

int ipcb_holders(ipcb_client *c, int kind, const char *name, ipcb_holder *ret, size_t max,
                 uint64_t *ret_id) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_HOLDERS }, reply;
        int r;

        if (!c || (max && !ret) || (kind != IPCB_KIND_SHM && kind != IPCB_KIND_SEM))
                return -EINVAL;
        r = ipcb__client_name_check(name, &req.holders.name);
        if (r < 0)
                return r;
        req.holders.kind = (uint8_t)kind;
        r = ipcb__client_request(c, &req, buf, &reply, NULL);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < reply.holders_reply.count && i < max; i++) {
                ipcb_holder_rec rec;
                ipcb__holder_rec_at(&reply, i, &rec);
                ret[i] = (ipcb_holder){ .pid = (pid_t)rec.pid, .uid = (uid_t)rec.uid,
                                        .handles = rec.handles };
        }
        if (ret_id)
                *ret_id = reply.holders_reply.id;
        return reply.holders_reply.total > INT32_MAX ? INT32_MAX : (int)reply.holders_reply.total;
}
