/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* consumer.c: a program built against an installed libipcbroker, through
 * pkg-config and through find_package (tests/install/check.sh). */
#include <errno.h>
#include <ipcbroker.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
        ipcb_client *c;
        int k = ipcb_connect(argc > 1 ? argv[1] : "/nonexistent/ipcb.sock", &c);

        if (argc > 1) { /* a live broker: one segment round trip */
                ipcb_shm *s;
                if (k < 0 || ipcb_shm_create(c, "install-check", 4096, NULL, &s) < 0)
                        return 1;
                memcpy(ipcb_shm_data(s), "ok", 2);
                ipcb_shm_close(s);
                ipcb_disconnect(c);
                return 0;
        }
        printf("connect to nowhere: %s\n", ipcb_strerror(k));
        return k == -ENOENT ? 0 : 1;
}
