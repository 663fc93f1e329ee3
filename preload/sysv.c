/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sysv.c: the key-to-name rule and routing shared by the System V calls. */
#include "sysv.h"

#include <errno.h>
#include <stdio.h>
#include <sys/random.h>
#include <unistd.h>

int sysv_name(key_t key, const char *kind_tag, char *buf) {
        static unsigned serial;
        unsigned rnd = 0;
        int n;

        if (key == IPC_PRIVATE) {
                /* a name of its own: nobody finds it by key */
                (void)getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK);
                n = snprintf(buf, IPCB_NAME_MAX + 1, "%ssysv-%s.private.%d.%u.%08x",
                             shim_cfg.prefix, kind_tag, (int)getpid(), serial++, rnd);
        } else {
                n = snprintf(buf, IPCB_NAME_MAX + 1, "%ssysv-%s.%08x", shim_cfg.prefix, kind_tag,
                             (unsigned)key);
        }
        return n < 0 || n > IPCB_NAME_MAX ? -ENAMETOOLONG : 0;
}

shim_route sysv_route(const char *what, ipcb_client **ret_client, int *ret_err) {
        if (!shim_cfg.sysv)
                return SHIM_PASS;
        return shim_route_call(what, ret_client, ret_err);
}
