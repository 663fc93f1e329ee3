/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sock.c: receive and send one datagram with fds; see sock.h. */
#include "sock.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void discard_fd(ipcb_sock_discard_fn discard, int fd) {
        if (discard)
                discard(fd);
        else
                close(fd);
}

int ipcb__sock_recv(int fd, void *buf, size_t cap, int flags, ipcb_sock_discard_fn discard,
                   ipcb_sock_rx *rx) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * IPCB_SOCK_SEND_FDS_MAX)];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = cap };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        unsigned got = 0;
        bool lost = false;
        ssize_t n;

        rx->len = 0;
        rx->nfds = 0;
        rx->fds_lost = false;
        do
                n = recvmsg(fd, &mh, flags | MSG_CMSG_CLOEXEC);
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
                        if (got < IPCB_SOCK_FDS_MAX)
                                rx->fds[got++] = f;
                        else {
                                discard_fd(discard, f);
                                lost = true;
                        }
                }
        }
        /* On SOCK_SEQPACKET, 0 is both a hang-up and an empty datagram: an
         * empty datagram may still carry fds, which must not stay open. */
        if (n == 0 || (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) || lost) {
                for (unsigned i = 0; i < got; i++)
                        discard_fd(discard, rx->fds[i]);
                if (mh.msg_flags & MSG_TRUNC)
                        return -EMSGSIZE;
                if (n == 0)
                        return got || lost || (mh.msg_flags & MSG_CTRUNC) ? -EBADMSG : 0;
                rx->fds_lost = true;
                got = 0;
        }
        rx->len = (size_t)n;
        rx->nfds = got;
        return 1;
}

bool ipcb__sock_drained(int fd, unsigned max) {
        /* Room for credentials only: fds make MSG_CTRUNC.  When peeking,
         * the fds that do not fit are the kernel's copies of the queued
         * ones, dropped without being the last reference. */
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(struct ucred))];
        } control;
        static const int one = 1;
        unsigned read = 0;
        bool shut = false;
        char byte;

        if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)
                return false;
        for (;;) {
                struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                                     .msg_controllen = sizeof(control) };
                ssize_t n = recvmsg(fd, &mh, MSG_PEEK | MSG_DONTWAIT);

                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !shut) {
                        /* Empty, and the peer may still send: stop it, look again. */
                        if (shutdown(fd, SHUT_RDWR) < 0)
                                return false;
                        shut = true;
                        continue;
                }
                if (n < 0)
                        return errno == EAGAIN || errno == EWOULDBLOCK;
                /* The end (a datagram carries credentials): the peer has
                 * hung up or shut its side, and can send no more. */
                if (n == 0 && mh.msg_controllen == 0)
                        return true;
                if ((mh.msg_flags & MSG_CTRUNC) || read++ == max)
                        return false;
                mh.msg_controllen = sizeof(control);
                if (recvmsg(fd, &mh, MSG_DONTWAIT) < 0 || (mh.msg_flags & MSG_CTRUNC))
                        return false;
        }
}

void ipcb__sock_discard_queue(int fd) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(struct ucred)) +
                         CMSG_SPACE(sizeof(int) * IPCB_SOCK_SEND_FDS_MAX)];
        } control;
        static const int one = 1;
        char byte;

        /* Every datagram carries credentials then: 0 bytes without them is
         * the end, not an empty datagram. */
        if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)
                return;
        for (;;) {
                struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                                     .msg_controllen = sizeof(control) };
                ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 || (n == 0 && mh.msg_controllen == 0))
                        return;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                                continue;
                        for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                                int f;
                                memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                                ipcb__sock_close_reset(f);
                        }
                }
        }
}

void ipcb__sock_close_reset(int fd) {
        static const struct linger reset = { .l_onoff = 1, .l_linger = 0 };

        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
        close(fd);
}

int ipcb__sock_send(int fd, const void *buf, size_t len, const int *fds, unsigned nfds, int flags) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * IPCB_SOCK_SEND_FDS_MAX)];
        } control;
        struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n;

        if (nfds > IPCB_SOCK_SEND_FDS_MAX)
                return -EINVAL;
        if (nfds > 0) {
                memset(&control, 0, CMSG_SPACE(sizeof(int) * nfds));
                mh.msg_control = &control;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
        }
        do
                n = sendmsg(fd, &mh, flags | MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        return 0;
}
