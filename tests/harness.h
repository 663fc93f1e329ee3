/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* harness.h: shared test helpers.  Starts and stops a real ipcbrokerd on a
 * private socket, counts descriptors (the daemon's and our own), runs the
 * end-of-test checks every daemon suite shares (the fixture), polls for
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

struct ipcb_msg;
/* This process's connected socket to the broker at path (a library
 * client's, found by its peer's address: the lowest fd if several), -1 if
 * none. */
int broker_socket_fd(const char *path);

struct ipcb_client;

typedef struct ipcbd {
        pid_t pid;     /* 0: not running */
        char dir[64];  /* private temporary directory */
        char sock[96]; /* dir + "/ipcb.sock" */
        int base_fds;  /* the daemon's fd count with no client connected */
        /* Fixture state (see fixture_begin); ipcbd_start leaves it alone. */
        int self_fds;  /* the test process's fd count at fixture_begin */
        bool fixture;  /* begun, fixture_end not reached yet */
        bool checked;  /* the test is a FIXTURE_TEST: fixture_end follows its body */
} ipcbd;

/* When set, daemons started from then on write their stderr (the log) to
 * this file, appending, instead of the test's stderr. */
extern const char *ipcbd_log_path;

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
 * directory (not an adopted daemon's).  No-op if d->pid is 0. */
void ipcbd_stop(ipcbd *d);

/* ---- the fixture: one set of end-of-test checks for every daemon suite ----
 *
 * fixture_begin() records the test process's fd count, ignores SIGPIPE and
 * starts the daemon; fixture_end() then
 *   1. waits (5 s) until the daemon's fd count is d->base_fds again: every
 *      client disconnected, every object gone.  There is no allowance for
 *      what a test keeps: a test that holds connections or objects releases
 *      them before (persistent objects too: unlink them);
 *   2. waits (1 s) until the test process's fd count is what it was at
 *      fixture_begin;
 *   3. stops the daemon as ipcbd_stop does (exit status 0 required);
 *   4. fails the test once, naming every check that failed with the counts
 *      expected and found, and on an fd mismatch the /proc/PID/fd link
 *      targets of the daemon and of the test process.
 * A test that stopped the daemon itself (d->pid == 0) gets check 2 only.
 *
 * fixture_end() must run in the test body: Criterion 2.4.1 prints an
 * assertion that fails in .fini but counts the test as passed (and exits 0).
 * FIXTURE_TEST makes sure it does; a suite's .fini calls fixture_cleanup(),
 * which only cleans up after a test that failed or skipped before the end. */
void fixture_begin(ipcbd *d, const char *const *extra_args);
/* The same with the daemon running as uid:gid (see ipcbd_start_as). */
void fixture_begin_as(ipcbd *d, uid_t uid, gid_t gid, const char *const *extra_args);
/* No daemon (the test starts its own some other way): fixture_end() checks
 * the test process's fds only. */
void fixture_begin_bare(ipcbd *d);
/* Take a daemon the test started itself (its child, serving sock) into a
 * bare fixture: waits until it serves a HELLO and measures its idle fd count
 * (the objects it holds by then count as idle); fixture_end then checks and
 * stops it like its own.  d->dir is cleared: stopping it removes no file. */
void fixture_adopt(ipcbd *d, pid_t pid, const char *sock);
void fixture_end(ipcbd *d);
/* Check 1 of fixture_end now (a test that stops the daemon itself, at the
 * point where it should be idle). */
void fixture_check_idle(const ipcbd *d);
/* For .fini: if fixture_end() was not reached, stop the daemon quietly and
 * remove its directory.  A test that began a fixture but is not declared
 * with FIXTURE_TEST cannot have reached fixture_end(): the process then
 * exits 1 with a message, which fails the run. */
void fixture_cleanup(ipcbd *d);

/* Test(suite, name, ...) whose body, if it returns, is followed by
 * release() (the suite's: disconnect its clients, close what every test
 * holds) and fixture_end(d).  The body may begin the fixture itself. */
#define FIXTURE_TEST(suite, name, d, release, ...)                               \
        static void suite##_##name##_body(void);                                 \
        Test(suite, name, ##__VA_ARGS__) {                                       \
                (d)->checked = true;                                             \
                suite##_##name##_body();                                         \
                release();                                                       \
                fixture_end(d);                                                  \
        }                                                                        \
        static void suite##_##name##_body(void)

/* A release() for suites whose tests hold nothing across the body. */
static inline void fixture_release_nothing(void) {
}

/* Make RLIMIT_NOFILE's soft limit at least want (raising the hard limit
 * too when root); daemons started afterwards inherit it.  Fails the test
 * if it cannot. */
void raise_nofile(unsigned long want);

/* Entries in /proc/PID/fd of the daemon, or of the test process. */
int ipcbd_fd_count(const ipcbd *d);
int self_fd_count(void);
/* Log (cr_log_error) the /proc/PID/fd link targets of pid (0: the test
 * process), one line each, headed by who. */
void fds_log(pid_t pid, const char *who);

/* True if the file at path (its first MiB: a daemon's log) contains what. */
bool file_contains(const char *path, const char *what);

/* A numeric field of /proc/PID/status ("VmRSS", "FDSize"...), -1 if unknown. */
long proc_status(pid_t pid, const char *field);
/* VmRSS of a process in KiB (-1 if unknown). */
long proc_rss_kib(pid_t pid);
/* The CPU time pid has used (utime + stime, clock ticks), -1 if unreadable. */
long proc_cpu_ticks(pid_t pid);

/* Wait until the daemon's fd count equals `want` (timeout_ms).  Returns true
 * if it did; logs the last count otherwise. */
bool ipcbd_wait_fds(const ipcbd *d, int want, int timeout_ms);

/* Poll pred(arg) every 2 ms until it returns true: returns 1, or 0 after
 * timeout_ms. */
int wait_until(bool (*pred)(void *), void *arg, int timeout_ms);

/* ---- raw protocol ---- */

/* Connected SOCK_SEQPACKET|SOCK_CLOEXEC socket, or -errno. */
int raw_connect(const char *path);
/* A connection to d that has been answered a HELLO (fails the test if not). */
int ipcbd_hello_conn(const ipcbd *d);
/* SIGSTOP the daemon and wait until it is stopped (so that whatever is sent
 * meanwhile is queued unread), and SIGCONT it again. */
void ipcbd_pause(const ipcbd *d);
void ipcbd_resume(const ipcbd *d);
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
/* Receive a reply (within 5 s) and decode it into *reply, whose names
 * point into a buffer kept until the next call; fds that came with it are
 * closed.  Fails the test on any I/O or decoding error.  Returns the
 * reply's status. */
int raw_reply(int fd, struct ipcb_msg *reply);
/* Encode m, send it, and raw_reply. */
int raw_request(int fd, struct ipcb_msg *m, struct ipcb_msg *reply);
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
/* A child (test_fork) that connects to the broker at sock, runs fn(c, arg),
 * says it is ready and waits to be killed.  fn returns 0, or a non-zero
 * status the child exits with (no cr_assert in the child).  Returns the
 * child's pid once it is ready; fails the test if it exited first. */
pid_t fork_ready_client(const char *sock, int (*fn)(struct ipcb_client *c, void *arg), void *arg);
