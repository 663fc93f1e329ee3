/* policy.c: access decisions.  Owner, group and other bits as for files:
 * the first class that matches decides (an owner without the owner's bit is
 * refused even if "other" would allow); the group class matches the peer's
 * primary group and its supplementary groups.  uid 0 may do everything
 * unless the daemon runs with --no-root-override. */
#include "policy.h"

#include "config.h"
#include "proto.h"

#include <errno.h>
#include <sys/socket.h>

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

void cred_read_groups(int fd, cred *c) {
        gid_t groups[CRED_GROUPS_MAX * 4];
        socklen_t len = sizeof(groups);

        c->ngroups = 0;
        /* ERANGE: more groups than we take; the first CRED_GROUPS_MAX are
         * not returned then, so such a peer has only its primary group. */
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
                return;
        len /= sizeof(gid_t);
        for (socklen_t i = 0; i < len && c->ngroups < CRED_GROUPS_MAX; i++)
                c->groups[c->ngroups++] = groups[i];
}

bool cred_in_group(const cred *c, gid_t gid) {
        if (c->gid == gid)
                return true;
        for (unsigned i = 0; i < c->ngroups; i++)
                if (c->groups[i] == gid)
                        return true;
        return false;
}

bool policy_privileged(const cred *c) {
        return c->uid == 0 && cfg.root_override;
}

int policy_may_open(const object *o, const cred *c, uint32_t access) {
        unsigned need = access == IPCB_WA_READ_WRITE ? 06 : 04, bits;

        if (policy_privileged(c))
                return 0;
        if (c->uid == o->uid)
                bits = (o->mode >> 6) & 07;
        else if (cred_in_group(c, o->gid))
                bits = (o->mode >> 3) & 07;
        else
                bits = o->mode & 07;
        return (bits & need) == need ? 0 : -EACCES;
}

int policy_may_manage(const object *o, const cred *c) {
        return policy_privileged(c) || c->uid == o->uid ? 0 : -EPERM;
}

int policy_may_chown(const object *o, const cred *c, uid_t uid, gid_t gid) {
        if (policy_privileged(c))
                return 0;
        if (c->uid != o->uid || uid != o->uid)
                return -EPERM;
        return gid == o->gid || cred_in_group(c, gid) ? 0 : -EPERM;
}
