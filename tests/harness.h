/* harness.h: shared test helpers.  Starts and stops a real ipcbrokerd on a
 * private socket, counts descriptors (the daemon's and our own), polls for
 * conditions the daemon reaches asynchronously, and speaks raw datagrams for
 * tests that play a hostile peer.
 *
 * Deliberately includes neither ipcbroker.h nor proto.h (they clash on
 * IPCB_NAME_MAX and IPCB_KIND_*): each test file picks what it needs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct ipcbd {
        pid_t pid;     /* 0: not running */
        char dir[64];  /* private temporary directory */
        char sock[96]; /* dir + "/ipcb.sock" */
        int base_fds;  /* the daemon's fd count with no client connected */
} ipcbd;

/* Start ipcbrokerd --socket DIR/ipcb.sock [extra_args...] (extra_args is a
 * NULL-terminated list, or NULL) and wait until it serves a HELLO.  Fails the
 * test on timeout (10 s) or if the daemon exits early.  Sets d->base_fds and
 * $IPCBROKER_SOCKET. */
void ipcbd_start(ipcbd *d, const char *const *extra_args);
/* The same, with the daemon running as uid:gid (no supplementary groups)
 * instead of the test's identity; the test must be root.  (uid_t)-1: as is. */
void ipcbd_start_as(ipcbd *d, uid_t uid, gid_t gid, const char *const *extra_args);

/* SIGTERM, wait (5 s, then SIGKILL and fail), assert exit status 0 (the
 * daemon exits 1 if its event loop did not close cleanly), remove the
 * directory.  No-op if d->pid is 0. */
void ipcbd_stop(ipcbd *d);

/* Entries in /proc/PID/fd of the daemon, or of the test process. */
int ipcbd_fd_count(const ipcbd *d);
int self_fd_count(void);

/* VmRSS of a process in KiB (-1 if unknown). */
long proc_rss_kib(pid_t pid);

/* Wait until the daemon's fd count equals `want` (timeout_ms).  Returns true
 * if it did; logs the last count otherwise. */
bool ipcbd_wait_fds(const ipcbd *d, int want, int timeout_ms);

/* Poll pred(arg) every 2 ms until it returns true: returns 1, or 0 after
 * timeout_ms. */
int wait_until(bool (*pred)(void *), void *arg, int timeout_ms);

/* ---- raw protocol ---- */

/* Connected SOCK_SEQPACKET|SOCK_CLOEXEC socket, or -errno. */
int raw_connect(const char *path);
/* Send HELLO (version 1) and wait for its reply (2 s).  Returns the reply's
 * status (0 on success), or a negative errno for I/O or a bad reply. */
int raw_hello(int fd);
/* One datagram of len bytes with nfds fds (borrowed).  Returns 0 or -errno.
 * Never blocks (MSG_DONTWAIT) and never raises SIGPIPE. */
int raw_send(int fd, const void *buf, size_t len, const int *fds, unsigned nfds);
/* Wait up to timeout_ms for one datagram; up to *nfds fds are stored in fds
 * (the rest closed), *nfds is set to the number stored.  Returns the length,
 * 0 on EOF, -ETIMEDOUT, or -errno. */
ssize_t raw_recv(int fd, void *buf, size_t cap, int *fds, unsigned *nfds, int timeout_ms);
/* Send the same datagram (no fds) again and again, never reading, until
 * the socket has stayed full for stall_ms (returns 0: the daemon stopped
 * reading this connection) or the connection broke (returns -errno); at
 * most max datagrams.  *ret_sent: how many were sent. */
int raw_send_until_stalled(int fd, const void *buf, size_t len, unsigned max, int stall_ms,
                           unsigned *ret_sent);
/* True if the peer closed the connection within timeout_ms; datagrams that
 * arrive meanwhile are discarded (their fds closed). */
bool raw_is_closed(int fd, int timeout_ms);

/* fork() for tests: fails the test if fork fails; the child is killed when
 * the test process dies (a failed assertion must not leave a child blocked
 * forever, holding the test runner's pipes). */
pid_t test_fork(void);
