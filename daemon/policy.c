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
#include "reaper.h"

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

/* Bytes of the big group lists all peers hold, and their bound: a list
 * of NGROUPS_MAX (65536) is 256 KiB, and a user with a subordinate gid
 * range can connect in that many groups, again and again. */
#define GROUPS_BIG_BYTES_MAX (64u << 20)
static size_t groups_big_bytes;

static void groups_unknown(cred *c, int err) {
        c->ngroups = 0;
        c->groups_unknown = true;
        log_client_warn("client pid %d uid %u: cannot read its supplementary groups (%s); "
                        "it is refused whatever they would decide", (int)c->pid,
                        (unsigned)c->uid, strerror(err));
}

/* Lists up to this long are read on the loop (about 45 ns a group in the
 * kernel: 1024 take 50 us); longer ones on a worker. */
#define GROUPS_READ_HERE_MAX (1024 * sizeof(gid_t))

/* c's list: groups (len bytes, taken), in the inline array if it fits. */
static void groups_keep(cred *c, gid_t *groups, size_t len) {
        c->ngroups = len / sizeof(gid_t);
        if (len <= sizeof(c->groups)) {
                memcpy(c->groups, groups, len);
                free(groups);
                return;
        }
        c->groups_big = groups;
        groups_big_bytes += len;
}

/* Most peers are in a few groups: the inline array takes them in one call.
 * A longer list makes the kernel fail with ERANGE and write the size it
 * needs into len.  Nothing is ever cut short: a peer judged on part of
 * its groups could fall through to "other" and be granted what its group
 * is denied. */
int cred_read_groups(int fd, cred *c, size_t *ret_len) {
        socklen_t len = sizeof(c->groups);
        gid_t *big;
        size_t got;
        int k;

        c->ngroups = 0;
        c->groups_big = NULL;
        c->groups_unknown = false;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, c->groups, &len) == 0) {
                c->ngroups = len / sizeof(gid_t);
                return 0;
        }
        if (errno != ERANGE || len == 0 || len % sizeof(gid_t) || len > NGROUPS_MAX * sizeof(gid_t)) {
                groups_unknown(c, errno == ERANGE ? EOVERFLOW : errno);
                return 0;
        }
        /* Counted from now, while it is read too (cred_groups_done). */
        if (groups_big_bytes + len > GROUPS_BIG_BYTES_MAX) {
                groups_unknown(c, ENOBUFS);
                return 0;
        }
        if (len > GROUPS_READ_HERE_MAX) {
                groups_big_bytes += len;
                *ret_len = len;
                return -ERANGE;
        }
        got = len;
        if (!(big = malloc(len)))
                k = -ENOMEM;
        else if ((k = cred_fetch_groups(fd, big, &got)) == 0) {
                groups_keep(c, big, got);
                return 0;
        }
        free(big);
        groups_unknown(c, -k);
        return 0;
}

int cred_fetch_groups(int fd, gid_t *groups, size_t *len) {
        socklen_t l = (socklen_t)*len;
        unsigned n, i = 1;

        /* The list is fixed at connect(2): the size asked for holds it. */
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &l) < 0)
                return -errno;
        n = l / sizeof(gid_t);
        /* The kernel keeps a process's groups sorted; only a mapping into
         * another user namespace may not. */
        while (i < n && groups[i - 1] <= groups[i])
                i++;
        if (i < n)
                qsort(groups, n, sizeof(gid_t), gid_cmp);
        *len = l;
        return 0;
}

void cred_groups_done(cred *c, size_t counted, gid_t *groups, size_t len, int err) {
        groups_big_bytes -= counted;
        if (!c || err < 0) {
                reaper_free_own(groups);
                if (c)
                        groups_unknown(c, -err);
                return;
        }
        groups_keep(c, groups, len);
}

void cred_free(cred *c) {
        size_t len = c->groups_big ? c->ngroups * sizeof(gid_t) : 0;

        groups_big_bytes -= len;
        /* free(3) of a block malloc mapped (128 KiB and more) unmaps it:
         * tens of microseconds, the threads' TLBs shot down */
        if (len >= 128 * 1024)
                reaper_free_own(c->groups_big);
        else
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
