/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* policy.c: access decisions.  Owner, group and other bits as for files:
 * the first class that matches decides (an owner without the owner's bit is
 * refused even if "other" would allow); the group class matches the peer's
 * primary group and all of its supplementary groups (a peer whose groups
 * cannot be read gets only what both the group and the other class allow).
 * uid 0 may do everything unless the daemon runs with --no-root-override. */
#include "policy.h"

#include "config.h"
#include "log.h"
#include "proto.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

static int gid_cmp(const void *a, const void *b) {
        gid_t x = *(const gid_t *)a, y = *(const gid_t *)b;
        return x < y ? -1 : x > y;
}

/* Most peers are in a few groups: the inline array takes them in one call.
 * A longer list makes the kernel fail with ERANGE and write the size it
 * needs into len (the list is fixed at connect(2), so one retry suffices;
 * a few are allowed).  Nothing is ever cut short: a peer judged on part of
 * its groups could fall through to "other" and be granted what its group
 * is denied. */
void cred_read_groups(int fd, cred *c) {
        socklen_t len = sizeof(c->groups);
        gid_t *big = NULL;
        int err;

        c->ngroups = 0;
        c->groups_big = NULL;
        c->groups_unknown = false;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, c->groups, &len) == 0) {
                c->ngroups = len / sizeof(gid_t);
                return;
        }
        err = errno;
        for (int tries = 0; err == ERANGE && tries < 4; tries++) {
                if (len == 0 || len % sizeof(gid_t) || len > NGROUPS_MAX * sizeof(gid_t)) {
                        err = EOVERFLOW;
                        break;
                }
                free(big);
                if (!(big = malloc(len))) {
                        err = ENOMEM;
                        break;
                }
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, big, &len) < 0) {
                        err = errno;
                        continue;
                }
                c->ngroups = len / sizeof(gid_t);
                if (c->ngroups <= CRED_GROUPS_INLINE) {
                        memcpy(c->groups, big, len);
                        free(big);
                } else {
                        qsort(big, c->ngroups, sizeof(gid_t), gid_cmp);
                        c->groups_big = big;
                }
                return;
        }
        free(big);
        c->ngroups = 0;
        c->groups_unknown = true;
        log_client_warn("client pid %d uid %u: cannot read its supplementary groups (%s); "
                        "it is refused whatever they would decide", (int)c->pid,
                        (unsigned)c->uid, strerror(err));
}

void cred_free(cred *c) {
        free(c->groups_big);
        c->groups_big = NULL;
        c->ngroups = 0;
}

bool cred_in_group(const cred *c, gid_t gid) {
        if (c->gid == gid)
                return true;
        if (c->groups_big)
                return bsearch(&gid, c->groups_big, c->ngroups, sizeof(gid_t), gid_cmp) != NULL;
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
        else if (c->groups_unknown)
                /* In the group or not, nobody can say: only what both the
                 * group and other classes allow. */
                bits = (o->mode >> 3) & o->mode & 07;
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
