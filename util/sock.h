/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sock.h: the one datagram-with-fds path of the project, used by the daemon,
 * the client library and the test harness alike.
 *
 * Receiving follows systemd's recvmsg_safe and dbus-broker's socket.c:
 * MSG_CMSG_CLOEXEC so that no received fd is ever inheritable, and one rule
 * for every path: a received fd is either handed to the caller or given to
 * `discard`.  The control buffer has room for every fd one datagram can
 * carry (SCM_MAX_FD), not only the protocol's 4: an fd that does not fit is
 * dropped by the kernel inside recvmsg, whose caller then runs its close,
 * and a foreign fd's close can block (a lingering socket, a FUSE file).
 * Pure syscalls: no allocation, no logging, no libuv. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The most fds one datagram of the protocol carries (= IPCB_FDS_MAX). */
#define IPCB_SOCK_FDS_MAX 4
/* The most fds one datagram can carry (the kernel's SCM_MAX_FD): what
 * ipcb__sock_send accepts (the hostile tests send that many), and what
 * ipcb__sock_recv makes room for. */
#define IPCB_SOCK_SEND_FDS_MAX 253

/* Disposes of an fd that the receive path does not hand on (NULL: close()).
 * The daemon passes one that closes off its loop thread, because closing a
 * foreign fd can block (a lingering socket, a FUSE file). */
typedef void (*ipcb_sock_discard_fn)(int fd);

typedef struct ipcb_sock_rx {
        size_t len;                    /* the datagram's length */
        unsigned nfds;                 /* fds handed to the caller */
        int fds[IPCB_SOCK_FDS_MAX];
        /* The sender attached more than IPCB_SOCK_FDS_MAX, or the kernel
         * could not pass every fd (MSG_CTRUNC: the receiver is out of fds).
         * The datagram's bytes are in the buffer; every fd that did arrive
         * was discarded and nfds is 0. */
        bool fds_lost;
} ipcb_sock_rx;

/* Receive one datagram into buf (cap bytes); flags are added to recvmsg's
 * (MSG_DONTWAIT for a non-blocking receive).  Returns:
 *   1         a datagram, described by *rx (fds owned by the caller);
 *   0         hang-up (end of stream): nothing received;
 *   -EAGAIN   nothing to read;
 *   -EMSGSIZE the datagram was longer than cap (MSG_TRUNC);
 *   -EBADMSG  an empty datagram (no request or reply is empty);
 *   another negative errno from recvmsg.
 * On every return but 1 no received fd is left open. */
int ipcb__sock_recv(int fd, void *buf, size_t cap, int flags, ipcb_sock_discard_fn discard,
                   ipcb_sock_rx *rx);

/* Whether closing fd, a connected SOCK_SEQPACKET socket, can release no
 * file its peer sent: reads the datagrams left in the queue, up to max, as
 * long as they carry no fds, until the end (the peer hung up) or, once
 * the queue is empty, after stopping the peer's sends (shutdown).  A datagram that does is left there, unread (peeked at only:
 * its fds are not received).  true: the queue is empty, so the last close
 * of fd releases only the socket; false: fds are queued, more than max
 * datagrams are, or a call failed.  Turns SO_PASSCRED on, to tell an
 * empty datagram (which then carries credentials) from the end. */
bool ipcb__sock_drained(int fd, unsigned max);
/* Read every datagram queued on fd, a SOCK_SEQPACKET socket shut down for
 * reading (or whose peer can send no more), closing the fds that came with
 * them (sockets reset, not lingered), until the end.  May block in those
 * closes (a file on a stalled FUSE mount).  Turns SO_PASSCRED on,
 * as ipcb__sock_drained does. */
void ipcb__sock_discard_queue(int fd);
/* Close fd, a file a peer sent; a socket is reset first, not lingered: a
 * TCP socket with SO_LINGER and a full send queue would make the close
 * wait its linger time (not a socket: ENOTSOCK, ignored). */
void ipcb__sock_close_reset(int fd);

/* Send one datagram of len bytes with nfds borrowed fds (never closed).
 * flags are added to sendmsg's MSG_NOSIGNAL (MSG_DONTWAIT for a
 * non-blocking send).  Returns 0, -EAGAIN, -EINVAL (nfds too large) or
 * another negative errno. */
int ipcb__sock_send(int fd, const void *buf, size_t len, const int *fds, unsigned nfds, int flags);
