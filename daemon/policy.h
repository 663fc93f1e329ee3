/* policy.h: who may do what to an object, from kernel-reported credentials
 * (SO_PEERCRED and SO_PEERGROUPS at accept; nothing the client says). */
#pragma once

#include "object.h"

#include <stdbool.h>
#include <sys/types.h>

/* Supplementary groups kept per connection.  A process in more groups is
 * judged on the first CRED_GROUPS_MAX the kernel reports: that can only
 * refuse access, never grant more. */
#define CRED_GROUPS_MAX 64

typedef struct cred {
        pid_t pid;
        uid_t uid;
        gid_t gid;
        unsigned ngroups;
        gid_t groups[CRED_GROUPS_MAX];
} cred;

/* Read SO_PEERGROUPS of connected socket fd into c (ngroups 0 on failure). */
void cred_read_groups(int fd, cred *c);
/* c's primary or supplementary group is gid. */
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
