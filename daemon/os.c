/* os.c: memfd creation with seals, and the datagram receive/send path.
 *
 * The receive path follows systemd's recvmsg_safe and dbus-broker's socket.c:
 * a control buffer sized for the protocol's maximum fds, MSG_CMSG_CLOEXEC so
 * that no fd is ever inheritable, and MSG_CTRUNC treated as an error after
 * closing whatever did arrive (the kernel installs the fds that fit). */
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
        map = mmap(NULL, IPCB_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0);
        if (map == MAP_FAILED) {
                k = -errno;
                close(rw);
                return k;
        }
        *ret_fd = rw;
        *ret_map = map;
        return 0;
}

ssize_t os_recv(int fd, void *buf, size_t cap, int *fds, unsigned *nfds) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * IPCB_FDS_MAX)];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = cap };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        unsigned cap_fds = *nfds, got = 0;
        bool overflow = false;
        ssize_t n;

        *nfds = 0;
        do
                n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;

        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++) {
                        int f;
                        memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                        if (got < cap_fds)
                                fds[got++] = f;
                        else {
                                close(f);
                                overflow = true;
                        }
                }
        }
        if (overflow || (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC))) {
                os_close_fds(fds, got);
                return (mh.msg_flags & MSG_TRUNC) ? -EMSGSIZE : -EBADMSG;
        }
        *nfds = got;
        return n;
}

int os_send(int fd, const void *buf, size_t len, const int *fds, unsigned nfds) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * IPCB_FDS_MAX)];
        } control;
        struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n;

        if (nfds > IPCB_FDS_MAX)
                return -EINVAL;
        if (nfds > 0) {
                memset(&control, 0, sizeof(control));
                mh.msg_control = &control;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
        }
        do
                n = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;
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
