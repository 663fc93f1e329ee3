/* policy.h: who may do what to an object, from kernel-reported credentials. */
#pragma once

#include "object.h"

#include <sys/types.h>

typedef struct cred {
        pid_t pid;
        uid_t uid;
        gid_t gid;
} cred;

/* 0 if c may open o with `access` (IPCB_WA_*), else -EACCES. */
int policy_may_open(const object *o, const cred *c, uint32_t access);
/* 0 if c owns o (or is uid 0), else -EPERM. */
int policy_may_manage(const object *o, const cred *c);
