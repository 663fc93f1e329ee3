/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* os.c: the daemon's syscall wrappers: memfds with seals, broker pages, the
 * fd limit.  Datagrams go through util/sock.c. */
#include "os.h"

#include "proto.h"
#include "sempage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

void os_close_fds(const int *fds, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
}

int os_memfd_sealed(uint64_t size, bool growable, int *ret_fd, unsigned *ret_seals) {
        unsigned seals = F_SEAL_SHRINK | (growable ? 0 : F_SEAL_GROW);
        int fd, k;

        fd = memfd_create("ipcbroker", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
        if (fd >= 0)
                seals |= F_SEAL_EXEC; /* MFD_NOEXEC_SEAL sets it */
        else if (errno == EINVAL) /* kernel before 6.3 */
                fd = memfd_create("ipcbroker", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        /* memfd inodes are born 0777 (0666 with MFD_NOEXEC_SEAL): any uid
         * that can name the fd in /proc could reopen a read-only handle
         * writable.  0600 leaves that only to the broker's own uid (and
         * to root), which the broker's own reopen for read-only handles
         * needs. */
        if (ftruncate(fd, (off_t)size) < 0 || fcntl(fd, F_ADD_SEALS, seals & ~F_SEAL_EXEC) < 0 ||
            fchmod(fd, 0600) < 0) {
                k = -errno;
                close(fd);
                return k;
        }
        *ret_fd = fd;
        *ret_seals = seals;
        return 0;
}

int os_reopen_ro(int fd) {
        char path[64];

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

int os_page_new(int *ret_fd, void **ret_map) {
        unsigned seals;
        int rw, k;
        void *map;

        k = os_memfd_sealed(IPCB_PAGE_SIZE, false, &rw, &seals);
        if (k < 0)
                return k;
        /* Every user maps the page writable (semaphores) or may hold a
         * read-write description of it: without F_SEAL_SEAL one of them
         * could add F_SEAL_FUTURE_WRITE, and every later mapping, and so
         * every later open or first lock, would fail for its lifetime. */
        if (fcntl(rw, F_ADD_SEALS, F_SEAL_SEAL) < 0) {
                k = -errno;
                close(rw);
                return k;
        }
        if (ret_map) {
                map = mmap(NULL, IPCB_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0);
                if (map == MAP_FAILED) {
                        k = -errno;
                        close(rw);
                        return k;
                }
                *ret_map = map;
        }
        *ret_fd = rw;
        return 0;
}

long os_raise_nofile(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return -errno;
        if (rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void)setrlimit(RLIMIT_NOFILE, &rl);
                (void)getrlimit(RLIMIT_NOFILE, &rl);
        }
        return (long)rl.rlim_cur;
}
