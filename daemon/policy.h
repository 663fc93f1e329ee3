/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* policy.h: who may do what to an object, from kernel-reported credentials
 * (SO_PEERCRED and SO_PEERGROUPS at accept; nothing the client says). */
#pragma once

#include "object.h"

#include <stdbool.h>
#include <sys/types.h>

/* Supplementary groups kept inside the cred; a peer in more groups gets a
 * sorted array of its own (up to NGROUPS_MAX), so that every group counts:
 * a lost group would send the peer to the "other" class, which may grant
 * what its group is denied. */
#define CRED_GROUPS_INLINE 32

typedef struct cred {
        pid_t pid;
        uid_t uid;
        gid_t gid;
        /* SO_PEERGROUPS could not be read (an old kernel, no memory): the
         * peer's supplementary groups are unknown, and every decision that
         * depends on them is made as if the answer were the worse one. */
        bool groups_unknown;
        unsigned ngroups;
        gid_t *groups_big; /* ngroups > CRED_GROUPS_INLINE: owned, sorted */
        gid_t groups[CRED_GROUPS_INLINE];
} cred;

/* Read SO_PEERGROUPS of connected socket fd into c (pid, uid and gid
 * already set): 0, done (on failure c->groups_unknown is set and the
 * reason logged; the caller goes on).  -ERANGE: the peer is in more than
 * 1024 groups, *ret_len bytes of them, which cred_fetch_groups reads off
 * the loop (for 65536 groups the kernel takes 3 ms), and cred_groups_done
 * gives c.  Lists past the inline array count against a bound over all
 * peers (64 MiB), from here on; past it c->groups_unknown is set.
 * Release with cred_free. */
int cred_read_groups(int fd, cred *c, size_t *ret_len);
/* On any thread: the whole list into groups (room for *len bytes), sorted;
 * *len set to its size.  0 or a negative errno. */
int cred_fetch_groups(int fd, gid_t *groups, size_t *len);
/* On the loop, after cred_read_groups said -ERANGE with counted bytes:
 * c's groups (taken: len bytes, malloc'd) from cred_fetch_groups, or
 * err < 0 from it (c->groups_unknown set, logged).  c NULL: the peer is
 * gone, only the count is given back.  groups is freed unless c took it. */
void cred_groups_done(cred *c, size_t counted, gid_t *groups, size_t len, int err);
/* Free what cred_read_groups allocated (the struct itself is the caller's). */
void cred_free(cred *c);
/* c's primary or supplementary group is gid.  False if unknown: use
 * cred_group_known first where "not in the group" would grant something. */
bool cred_in_group(const cred *c, gid_t gid);
/* uid 0 with the root override in effect (cfg.root_override). */
bool policy_privileged(const cred *c);

/* 0 if c may open o with `access` (IPCB_WA_*), else -EACCES. */
int policy_may_open(const object *o, const cred *c, uint32_t access);
/* 0 if c owns o (or is privileged), else -EPERM: unlink, chmod, freeze. */
int policy_may_manage(const object *o, const cred *c);
/* 0 if c may set o's owner to uid and group to gid (either may be the
 * current value), else -EPERM: the owner may change the group to one of its
 * own groups; giving the object to another uid, or to a group the owner is
 * not in, needs privilege (as chown(2): otherwise a user could make an object
 * look as if root or another service published it). */
int policy_may_chown(const object *o, const cred *c, uid_t uid, gid_t gid);
