/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* publisher.c: a privileged service publishes a table that readers of other
 * uids may read but nobody may change, not even itself:
 *   publisher publish   create the segment (persistent, mode 0644), fill it,
 *                       drop the writable mapping, freeze it (F_SEAL_WRITE)
 *   publisher remove    unlink it */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* F_SEAL_*, POSIX calls; the project's build defines it */
#endif
#include "table.h"

#include <errno.h>
#include <fcntl.h>
#include <ipcbroker.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int fail(const char *what, int err) {
        fprintf(stderr, "publisher: %s: %s\n", what, ipcb_strerror(err));
        return 1;
}

static int publish(ipcb_client *c) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_shm *s;
        struct table *t;
        unsigned seals;
        int k;

        o.mode = 0644;                 /* everybody may read */
        o.flags = IPCB_SHM_PERSISTENT; /* it outlives this process */
        if ((k = ipcb_shm_create(c, TABLE_NAME, sizeof(struct table), &o, &s)) < 0)
                return fail("create " TABLE_NAME, k);
        t = ipcb_shm_data(s);
        t->magic = TABLE_MAGIC;
        t->entries = TABLE_ENTRIES;
        for (uint32_t i = 0; i < TABLE_ENTRIES; i++)
                t->entry[i] = (uint64_t)i * i * i;
        t->checksum = table_sum(t);
        /* No writable mapping may remain, or the freeze can only add
         * F_SEAL_FUTURE_WRITE, which a mapping kept writable escapes. */
        ipcb_shm_close(s);
        if ((k = ipcb_shm_freeze(c, TABLE_NAME, &seals)) < 0)
                return fail("freeze " TABLE_NAME, k);
        if (!(seals & F_SEAL_WRITE)) {
                fprintf(stderr, "publisher: frozen without F_SEAL_WRITE (seals 0x%x)\n", seals);
                return 1;
        }
        printf("publisher (uid %u): %s published, %d entries, frozen: seals 0x%x (F_SEAL_WRITE)\n",
               (unsigned)geteuid(), TABLE_NAME, TABLE_ENTRIES, seals);
        return 0;
}

int main(int argc, char **argv) {
        ipcb_client *c;
        int k, r;

        if (argc != 2 || (strcmp(argv[1], "publish") != 0 && strcmp(argv[1], "remove") != 0)) {
                fprintf(stderr, "usage: publisher publish|remove\n");
                return 2;
        }
        if ((k = ipcb_connect(NULL, &c)) < 0)
                return fail("connect", k);
        if (strcmp(argv[1], "publish") == 0)
                r = publish(c);
        else if ((k = ipcb_unlink(c, TABLE_NAME)) < 0)
                r = fail("unlink " TABLE_NAME, k);
        else
                r = 0;
        ipcb_disconnect(c);
        return r;
}
