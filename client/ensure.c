/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ensure.c: create-or-open in one call.  The broker's create is atomic per
 * name, so of processes racing on one name exactly one create succeeds;
 * the others open what it made.  An object unlinked between a refused
 * create and the open is simply tried again. */
#include "internal.h"

#include <errno.h>
#include <stdbool.h>

/* Tries before giving up (-EAGAIN): only a name created and unlinked again
 * and again, faster than we can open it, gets there. */
#define ENSURE_TRIES 100

int ipcb_shm_create_or_open(ipcb_client *c, const char *name, size_t size,
                            const ipcb_shm_options *opts, ipcb_shm **ret, bool *ret_created) {
        ipcb_shm *s;
        int r;

        if (!c || !ret)
                return -EINVAL;
        for (int i = 0; i < ENSURE_TRIES; i++) {
                r = ipcb_shm_create(c, name, size, opts, &s);
                if (r == 0) {
                        if (ret_created)
                                *ret_created = true;
                        *ret = s;
                        return 0;
                }
                if (r != -EEXIST)
                        return r;
                r = ipcb_shm_open(c, name, IPCB_READ_WRITE, &s);
                if (r == 0) {
                        if (ret_created)
                                *ret_created = false;
                        *ret = s;
                        return 0;
                }
                if (r != -ENOENT)
                        return r;
        }
        return -EAGAIN;
}

int ipcb_sem_create_or_open(ipcb_client *c, const char *name, unsigned initial,
                            const ipcb_sem_options *opts, ipcb_sem **ret, bool *ret_created) {
        ipcb_sem *s;
        int r;

        if (!c || !ret)
                return -EINVAL;
        if (opts && opts->struct_size < offsetof(ipcb_sem_options, max) + sizeof(opts->max))
                return -EINVAL;
        for (int i = 0; i < ENSURE_TRIES; i++) {
                r = ipcb_sem_create(c, name, initial, opts, &s);
                if (r == 0) {
                        if (ret_created)
                                *ret_created = true;
                        *ret = s;
                        return 0;
                }
                if (r != -EEXIST)
                        return r;
                r = ipcb_sem_open(c, name, opts ? (int)(opts->flags & IPCB_SEM_UNDO) : 0, &s);
                if (r == 0) {
                        if (ret_created)
                                *ret_created = false;
                        *ret = s;
                        return 0;
                }
                if (r != -ENOENT)
                        return r;
        }
        return -EAGAIN;
}
