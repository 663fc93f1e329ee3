/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* reader.c OWNER_UID: an unprivileged reader of the frozen table.  It opens
 * the table only if OWNER_UID owns it (a squatter's table is refused),
 * checks it, and then tries every way to write to it; each must fail. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* F_SEAL_*, POSIX calls; the project's build defines it */
#endif
#include "table.h"

#include <errno.h>
#include <fcntl.h>
#include <ipcbroker.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int failures;

static int fail(const char *what, int err) {
        fprintf(stderr, "reader: %s: %s\n", what, ipcb_strerror(err));
        return 1;
}

/* A route to write access: err is 0 if it worked (bad), else an errno. */
static void refused(const char *route, int err) {
        if (err == 0) {
                fprintf(stderr, "reader: %s: allowed!\n", route);
                failures++;
        } else {
                printf("reader: %-36s refused (%s)\n", route, strerror(err));
        }
}

static void try_writes(ipcb_client *c, ipcb_shm *s) {
        ipcb_shm *rw = NULL;
        int fd = ipcb_shm_fd(s), k;
        char path[64];
        void *p;

        k = ipcb_shm_open(c, TABLE_NAME, IPCB_READ_WRITE, &rw);
        refused("open read-write through the broker", k < 0 ? -k : 0);
        ipcb_shm_close(rw);

        refused("write(2) on its descriptor", pwrite(fd, "x", 1, 0) < 0 ? errno : 0);
        refused("ftruncate(2)", ftruncate(fd, 0) < 0 ? errno : 0);
        refused("mprotect(PROT_WRITE) of the mapping",
                mprotect(ipcb_shm_data(s), ipcb_shm_size(s), PROT_READ | PROT_WRITE) < 0 ? errno : 0);
        p = mmap(NULL, ipcb_shm_size(s), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        refused("a new writable mapping", p == MAP_FAILED ? errno : 0);
        if (p != MAP_FAILED)
                munmap(p, ipcb_shm_size(s));
        /* /proc/self/fd reopens the inode: refused by its mode (another uid)
         * or, if it opens, by F_SEAL_WRITE. */
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        k = open(path, O_RDWR | O_CLOEXEC);
        if (k >= 0) {
                int w = pwrite(k, "x", 1, 0) < 0 ? errno : 0;
                close(k);
                refused("write(2) after a /proc/self/fd reopen", w);
        } else {
                refused("reopen through /proc/self/fd", errno);
        }
}

int main(int argc, char **argv) {
        ipcb_open_options o = IPCB_OPEN_OPTIONS_INIT;
        ipcb_handle_info info;
        ipcb_client *c;
        ipcb_shm *s;
        const struct table *t;
        int k;

        if (argc != 2) {
                fprintf(stderr, "usage: reader OWNER_UID\n");
                return 2;
        }
        o.flags = IPCB_OPEN_OWNED;
        o.owner = (uid_t)strtoul(argv[1], NULL, 10);
        if ((k = ipcb_connect(NULL, &c)) < 0)
                return fail("connect", k);
        if ((k = ipcb_shm_open_ex(c, TABLE_NAME, IPCB_READ_ONLY, &o, &s)) < 0)
                return fail("open " TABLE_NAME " owned by the publisher", k);
        ipcb_shm_info(s, &info);
        t = ipcb_shm_data(s);
        if (ipcb_shm_size(s) < sizeof(*t) || t->magic != TABLE_MAGIC ||
            t->entries != TABLE_ENTRIES || t->checksum != table_sum(t)) {
                fprintf(stderr, "reader: the table is damaged\n");
                return 1;
        }
        if (!(ipcb_shm_seals(s) & F_SEAL_WRITE)) {
                fprintf(stderr, "reader: the table is not frozen\n");
                return 1;
        }
        printf("reader (uid %u): %s of uid %u, mode %04o, %u entries, checksum ok, seals 0x%x\n",
               (unsigned)geteuid(), TABLE_NAME, (unsigned)info.uid, info.mode, t->entries,
               ipcb_shm_seals(s));
        try_writes(c, s);
        if (t->checksum != table_sum(t) || t->entry[0] != 0) {
                fprintf(stderr, "reader: the table changed\n");
                failures++;
        }
        ipcb_shm_close(s);
        ipcb_disconnect(c);
        return failures ? 1 : 0;
}
