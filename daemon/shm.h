/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* shm.h: shared-memory segments: a sealed memfd per object. */
#pragma once

#include "object.h"
#include "policy.h"

#include <stddef.h>

/* Create and register segment `name` owned by `owner`.  The caller has
 * validated name, size, mode and flags and checked the name is free.
 * Returns 0 with *ret (linked, no handle yet) or a negative errno with
 * nothing left behind. */
int shm_new(const char *name, size_t name_len, uint64_t size, uint32_t mode, uint32_t flags,
            const cred *owner, object **ret);

/* Make sure o->fd_ro exists: the O_RDONLY description that read-only
 * handles receive, opened on the first read-only open.  0 or a negative errno. */
int shm_ro_fd(object *o);
/* Close o->fd_ro (when no read-only handle remains). */
void shm_ro_fd_drop(object *o);
