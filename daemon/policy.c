/* policy.c: access decisions.  Owner, group and other bits as for files:
 * the first class that matches decides (an owner without the owner's bit is
 * refused even if "other" would allow).  uid 0 may do everything. */
#include "policy.h"

#include "proto.h"

#include <errno.h>

int policy_may_open(const object *o, const cred *c, uint32_t access) {
        unsigned need = access == IPCB_WA_READ_WRITE ? 06 : 04, bits;

        if (c->uid == 0)
                return 0;
        if (c->uid == o->uid)
                bits = (o->mode >> 6) & 07;
        else if (c->gid == o->gid)
                bits = (o->mode >> 3) & 07;
        else
                bits = o->mode & 07;
        return (bits & need) == need ? 0 : -EACCES;
}

int policy_may_manage(const object *o, const cred *c) {
        return c->uid == 0 || c->uid == o->uid ? 0 : -EPERM;
}
