/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_daemon.c: ipcbrokerd's command line and its socket: refusing to start
 * over a live broker, replacing a stale socket, leaving other files alone,
 * the socket's and directory's modes, the default path, --help/--version.
 *
 * Every test runs in the harness fixture (harness.h).  Most start their
 * daemons by hand (other paths, umask, environment, uid), so the fixture is
 * bare: it checks the test process's own fds; those tests check themselves
 * that each daemon they start exits 0.  refuses_a_live_broker has the whole
 * fixture (the daemon back at its idle fd count, and a clean exit). */
#include "harness.h"

#include "ipcbroker.h"
#include "proto.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define OTHER_UID 61001

static ipcbd d;

/* After a test that failed or skipped before fixture_end. */
static void teardown(void) {
        fixture_cleanup(&d);
}

TestSuite(daemon, .fini = teardown, .timeout = 30);

#define DAEMON_TEST(name) FIXTURE_TEST(daemon, name, &d, fixture_release_nothing)

/* SIGTERM (or sig) to a daemon the test started by hand; true if it exited 0. */
static bool stopped_cleanly(pid_t pid, int sig) {
        int status;

        kill(pid, sig);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Run ipcbrokerd with argv (NULL-terminated, without argv[0]) and the given
 * extra environment entry (or NULL); wait up to timeout_ms for it to exit.
 * Returns its exit status, or -1 if it was still running (then it is killed).
 * stderr goes to err_path when given. */
static int run_daemon(const char *const *args, const char *env, const char *err_path,
                      int timeout_ms) {
        const char *argv[16] = { IPCBROKERD_PATH };
        unsigned n = 1;
        int st;

        for (; args && *args && n < 15; args++)
                argv[n++] = *args;
        argv[n] = NULL;
        pid_t pid = test_fork();
        if (pid == 0) {
                if (err_path) {
                        int fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
                                _exit(126);
                }
                if (env)
                        putenv((char *)env);
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        for (int waited = 0; waited < timeout_ms; waited += 10) {
                if (waitpid(pid, &st, WNOHANG) == pid)
                        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                usleep(10 * 1000);
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
}

static bool connects(const char *path) {
        ipcb_client *c;
        if (ipcb_connect(path, &c) < 0)
                return false;
        ipcb_disconnect(c);
        return true;
}

/* Up to 5 s for a broker to serve path. */
static bool wait_connects(const char *path) {
        for (int i = 0; i < 500; i++) {
                if (connects(path))
                        return true;
                usleep(10 * 1000);
        }
        return false;
}

DAEMON_TEST(refuses_a_live_broker) {
        char err[128];

        fixture_begin(&d, NULL);
        snprintf(err, sizeof(err), "%s/err", d.dir);
        const char *args[] = { "--socket", d.sock, NULL };
        cr_assert_eq(run_daemon(args, NULL, err, 5000), 1, "a second broker did not refuse");
        cr_assert(file_contains(err, "another broker"), "no clear log line");
        unlink(err);
        /* The first broker still serves, on the same socket. */
        cr_assert(connects(d.sock));
}

DAEMON_TEST(replaces_a_stale_socket) {
        struct stat st;
        char err[128];

        fixture_begin(&d, NULL);
        kill(d.pid, SIGKILL); /* leaves its socket file behind */
        waitpid(d.pid, NULL, 0);
        d.pid = 0; /* the fixture is left with the test process's fds */
        cr_assert_eq(lstat(d.sock, &st), 0);
        cr_assert(S_ISSOCK(st.st_mode));
        cr_assert(!connects(d.sock), "a dead broker's socket accepted a connection");

        snprintf(err, sizeof(err), "%s/err", d.dir);
        pid_t pid = test_fork();
        if (pid == 0) {
                int fd = open(err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd < 0 || dup2(fd, 2) < 0)
                        _exit(126);
                execl(IPCBROKERD_PATH, IPCBROKERD_PATH, "--socket", d.sock, (char *)NULL);
                _exit(127);
        }
        bool up = wait_connects(d.sock);
        cr_assert(up, "the new broker did not take over the stale socket");
        cr_assert(file_contains(err, "stale"), "no log line about the stale socket");
        cr_assert(stopped_cleanly(pid, SIGTERM), "the new broker did not exit 0");
        cr_assert_neq(lstat(d.sock, &st), 0, "socket not removed at shutdown");
        unlink(err);
        rmdir(d.dir);
}

DAEMON_TEST(leaves_other_files_alone) {
        char dir[] = "/tmp/ipcbt.XXXXXX", path[128], buf[16] = { 0 };
        struct stat st;
        int fd;

        fixture_begin_bare(&d);
        cr_assert_not_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/not-a-socket", dir);
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, "precious", 8), 8);
        close(fd);
        const char *args[] = { "--socket", path, NULL };
        cr_assert_eq(run_daemon(args, NULL, "/dev/null", 5000), 1);
        cr_assert_eq(lstat(path, &st), 0);
        cr_assert(S_ISREG(st.st_mode));
        fd = open(path, O_RDONLY | O_CLOEXEC);
        cr_assert_eq(read(fd, buf, sizeof(buf)), 8);
        close(fd);
        cr_assert_str_eq(buf, "precious");
        unlink(path);
        rmdir(dir);
}

DAEMON_TEST(socket_and_directory_modes) {
        char dir[] = "/tmp/ipcbt.XXXXXX", sub[64], sock[96];
        struct stat st;

        fixture_begin_bare(&d);
        cr_assert_not_null(mkdtemp(dir));
        snprintf(sub, sizeof(sub), "%s/run", dir);
        snprintf(sock, sizeof(sock), "%s/ipcb.sock", sub);
        pid_t pid = test_fork();
        if (pid == 0) {
                umask(077); /* the daemon must not depend on a friendly umask */
                execl(IPCBROKERD_PATH, IPCBROKERD_PATH, "--socket", sock, (char *)NULL);
                _exit(127);
        }
        bool up = wait_connects(sock);
        cr_assert(up);
        cr_assert_eq(stat(sub, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0755, "directory mode %o", st.st_mode & 07777);
        cr_assert_eq(stat(sock, &st), 0);
        cr_assert_eq(st.st_mode & 0777, 0666, "socket mode %o: every user may connect",
                     st.st_mode & 0777);
        cr_assert(stopped_cleanly(pid, SIGTERM), "the broker did not exit 0");
        rmdir(sub);
        rmdir(dir);
}

DAEMON_TEST(refuses_a_directory_others_can_write) {
        char dir[] = "/tmp/ipcbt.XXXXXX", sock[96], err[96];

        fixture_begin_bare(&d);
        cr_assert_not_null(mkdtemp(dir));
        cr_assert_eq(chmod(dir, 0777), 0); /* world-writable, not sticky */
        snprintf(sock, sizeof(sock), "%s/ipcb.sock", dir);
        snprintf(err, sizeof(err), "/tmp/ipcbt-err.%d", (int)getpid());
        const char *args[] = { "--socket", sock, NULL };
        cr_assert_eq(run_daemon(args, NULL, err, 5000), 1);
        cr_assert(file_contains(err, "writable by others"));
        unlink(err);
        rmdir(dir);
}

DAEMON_TEST(socket_from_environment) {
        char dir[] = "/tmp/ipcbt.XXXXXX", sock[96], env[128];

        fixture_begin_bare(&d);
        cr_assert_not_null(mkdtemp(dir));
        snprintf(sock, sizeof(sock), "%s/env.sock", dir);
        snprintf(env, sizeof(env), "IPCBROKER_SOCKET=%s", sock);
        pid_t pid = test_fork();
        if (pid == 0) {
                putenv(env);
                execl(IPCBROKERD_PATH, IPCBROKERD_PATH, (char *)NULL);
                _exit(127);
        }
        bool up = wait_connects(sock);
        cr_assert(up, "$IPCBROKER_SOCKET not used");
        cr_assert(stopped_cleanly(pid, SIGINT), "SIGINT did not stop it cleanly");
        rmdir(dir);
}

/* A non-root user's default: $XDG_RUNTIME_DIR/ipcbroker/ipcbroker.sock, and
 * the library finds it there by itself. */
DAEMON_TEST(per_user_default_path) {
        char rt[] = "/tmp/ipcbt.XXXXXX", sock[128], env[96];

        if (geteuid() != 0)
                cr_skip("needs root to run the daemon and a client as uid %d", OTHER_UID);
        fixture_begin_bare(&d);
        cr_assert_not_null(mkdtemp(rt));
        cr_assert_eq(chown(rt, OTHER_UID, OTHER_UID), 0);
        cr_assert_eq(chmod(rt, 0700), 0);
        snprintf(sock, sizeof(sock), "%s/ipcbroker/ipcbroker.sock", rt);
        snprintf(env, sizeof(env), "XDG_RUNTIME_DIR=%s", rt);

        pid_t pid = test_fork();
        if (pid == 0) {
                if (setgroups(0, NULL) < 0 || setresgid(OTHER_UID, OTHER_UID, OTHER_UID) < 0 ||
                    setresuid(OTHER_UID, OTHER_UID, OTHER_UID) < 0)
                        _exit(125);
                unsetenv("IPCBROKER_SOCKET");
                putenv(env);
                execl(IPCBROKERD_PATH, IPCBROKERD_PATH, (char *)NULL);
                _exit(127);
        }
        struct stat st;
        bool up = false;
        for (int i = 0; i < 500 && !up; i++) {
                up = stat(sock, &st) == 0;
                if (!up)
                        usleep(10 * 1000);
        }
        cr_assert(up, "no socket at %s", sock);
        cr_assert_eq(st.st_uid, OTHER_UID);

        /* A client of the same user, with no path given, finds it. */
        pid_t cpid = test_fork();
        if (cpid == 0) {
                ipcb_client *c;
                if (setgroups(0, NULL) < 0 || setresgid(OTHER_UID, OTHER_UID, OTHER_UID) < 0 ||
                    setresuid(OTHER_UID, OTHER_UID, OTHER_UID) < 0)
                        _exit(125);
                unsetenv("IPCBROKER_SOCKET");
                putenv(env);
                int k = 0;
                for (int i = 0; i < 200 && (k = ipcb_connect(NULL, &c)) < 0; i++)
                        usleep(10 * 1000);
                if (k < 0)
                        _exit(1);
                ipcb_disconnect(c);
                _exit(0);
        }
        int status;
        waitpid(cpid, &status, 0);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "client could not connect by default");
        cr_assert(stopped_cleanly(pid, SIGTERM), "the broker did not exit 0");
        char sub[128];
        snprintf(sub, sizeof(sub), "%s/ipcbroker", rt);
        rmdir(sub);
        rmdir(rt);
}

DAEMON_TEST(help_version_and_bad_options) {
        const char *help[] = { "--help", NULL }, *version[] = { "--version", NULL },
                   *bad[] = { "--no-such-option", NULL }, *size[] = { "--max-segment-size", "0", NULL },
                   *unread[] = { "--unread-timeout", "1000001", NULL }, *extra[] = { "stray", NULL };

        fixture_begin_bare(&d);
        cr_assert_eq(run_daemon(help, NULL, "/dev/null", 5000), 0);
        cr_assert_eq(run_daemon(version, NULL, "/dev/null", 5000), 0);
        cr_assert_eq(run_daemon(bad, NULL, "/dev/null", 5000), 2);
        cr_assert_eq(run_daemon(size, NULL, "/dev/null", 5000), 2);
        cr_assert_eq(run_daemon(unread, NULL, "/dev/null", 5000), 2);
        cr_assert_eq(run_daemon(extra, NULL, "/dev/null", 5000), 2);
}

/* The daemon's fd table: the fds it holds room for. */
static long fd_table_size(pid_t pid) {
        return proc_status(pid, "FDSize");
}

/* Open n connections (fds[]), HELLO done; RLIMIT_NOFILE raised as needed. */
static void connect_many(int *fds, int n) {
        struct rlimit rl;

        getrlimit(RLIMIT_NOFILE, &rl);
        cr_assert_geq(rl.rlim_max, (rlim_t)n + 64, "RLIMIT_NOFILE hard limit %lu", (unsigned long)rl.rlim_max);
        if (rl.rlim_cur < (rlim_t)n + 64) {
                rl.rlim_cur = (rlim_t)n + 64;
                cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
        }
        for (int i = 0; i < n; i++)
                fds[i] = ipcbd_hello_conn(&d);
}

/* The log's lines about loop turns, from a daemon that has stopped. */
typedef struct turn_log {
        double longest_took, longest_cpu; /* of the slow turns logged */
        bool summary;
        int most_accepted, most_closed; /* from the summary; -1: none */
} turn_log;

static turn_log read_turn_log(const char *path) {
        turn_log t = { .most_accepted = -1, .most_closed = -1 };
        FILE *f = fopen(path, "re");
        char line[512];

        cr_assert_not_null(f);
        while (fgets(line, sizeof(line), f)) {
                const char *s = strstr(line, "a loop turn took ");
                double took, cpu;
                if (s && sscanf(s, "a loop turn took %lf ms, %lf ms of it on a CPU", &took, &cpu) == 2 &&
                    took > t.longest_took) {
                        t.longest_took = took;
                        t.longest_cpu = cpu;
                }
                if ((s = strstr(line, "loop turns: ")) && strstr(s, "ms or longer"))
                        t.summary = true;
                if ((s = strstr(line, "loop turns: the most connections one turn accepted: ")))
                        sscanf(s, "loop turns: the most connections one turn accepted: %d, closed: %d",
                               &t.most_accepted, &t.most_closed);
        }
        fclose(f);
        return t;
}

/* A client that keeps the daemon busy: pipelined HELLOs until killed. */
static pid_t busy_client(const char *sock) {
        pid_t pid = fork();

        cr_assert_geq(pid, 0);
        if (pid == 0) {
                uint8_t buf[IPCB_MSG_MAX];
                ipcb_msg m = { .hdr = { .op = IPCB_OP_HELLO, .id = 1 } };
                unsigned nfds;
                int fd = raw_connect(sock);
                ssize_t n;
                m.hello.version = IPCB_PROTO_VERSION;
                n = ipcb__proto_encode(&m, buf, IPCB_MSG_MAX);
                if (fd < 0 || n <= 0)
                        _exit(1);
                for (;;) {
                        uint8_t rbuf[IPCB_MSG_MAX];
                        for (int i = 0; i < 16; i++)
                                if (raw_send(fd, buf, (size_t)n, NULL, 0) < 0)
                                        _exit(2);
                        for (int i = 0; i < 16; i++)
                                if (raw_recv(fd, rbuf, IPCB_MSG_MAX, NULL, &nfds, 5000) <= 0)
                                        _exit(3);
                }
        }
        return pid;
}

/* --slow-turn-ms: a turn of the loop that takes that long is logged with
 * what it did and the part of it spent on a CPU, and each instance sums
 * its turns up when it stops.  A turn is made slow from outside: the
 * daemon, kept busy by a client, is stopped for 60 ms, and sometimes that
 * lands inside a turn (else in its wait for events, which is no turn's). */
DAEMON_TEST(slow_turns_are_logged) {
        static const char *const args[] = { "--slow-turn-ms", "30", NULL };
        const char *neg[] = { "--slow-turn-ms", "-1", NULL }, *word[] = { "--slow-turn-ms", "soon", NULL },
                   *big[] = { "--slow-turn-ms", "60001", NULL };
        char path[] = "/tmp/ipcbt-turns.XXXXXX";
        int logfd = mkstemp(path), tries;
        turn_log t;
        pid_t busy;

        cr_assert_geq(logfd, 0);
        close(logfd);
        cr_assert_eq(run_daemon(neg, NULL, "/dev/null", 5000), 2);
        cr_assert_eq(run_daemon(word, NULL, "/dev/null", 5000), 2);
        cr_assert_eq(run_daemon(big, NULL, "/dev/null", 5000), 2);
        ipcbd_log_path = path;
        fixture_begin(&d, args);
        ipcbd_log_path = NULL;
        busy = busy_client(d.sock);
        usleep(100 * 1000);
        for (tries = 0; tries < 40; tries++) {
                kill(d.pid, SIGSTOP);
                usleep(60 * 1000);
                kill(d.pid, SIGCONT);
                usleep(150 * 1000); /* the log is rate-limited: 10 lines a second */
                if (file_contains(path, "a loop turn took "))
                        break;
        }
        kill(busy, SIGKILL);
        waitpid(busy, NULL, 0);
        fixture_check_idle(&d);
        ipcbd_stop(&d); /* a clean exit, after its summary */

        t = read_turn_log(path);
        unlink(path);
        fprintf(stderr, "[daemon] stopped 60 ms in a turn (%d tries): logged %.3f ms, %.3f ms on a CPU\n",
                tries + 1, t.longest_took, t.longest_cpu);
        cr_assert_lt(tries, 40, "no stop landed in a turn in 40 tries");
        cr_assert_geq(t.longest_took, 55.0, "the stopped turn was logged as %.3f ms", t.longest_took);
        cr_assert_lt(t.longest_cpu, t.longest_took / 2, "%.3f ms of a %.3f ms turn counted as CPU time",
                     t.longest_cpu, t.longest_took);
        cr_assert(t.summary, "no summary of the loop turns at exit");
        cr_assert_geq(t.most_closed, 1, "no count of closes in the summary");
}

/* Connections that hang up all at once (a fleet of clients killed) are
 * handled a bounded number per loop turn, so that the others are served in
 * between: 1200 hang-ups seen at once (the daemon stopped while they
 * happen) are all closed, none of the turns closing more than the 64
 * events a turn takes from the daemon's wait set (mainloop.h:
 * MAINLOOP_EVENTS).  A turn that read every hung-up connection (as
 * libuv's own poll dispatches every ready fd) closed 128 and queued the
 * rest. */
DAEMON_TEST(hangups_spread_over_turns) {
        static const char *const args[] = { "--slow-turn-ms", "1000", "--max-connections", "3000", NULL };
        enum { N = 1200 }; /* the daemon's fd limit allows ~1450 connections here */
        static int fds[N];
        char path[] = "/tmp/ipcbt-turns.XXXXXX";
        int logfd = mkstemp(path);
        turn_log t;

        cr_assert_geq(logfd, 0);
        close(logfd);
        ipcbd_log_path = path;
        fixture_begin(&d, args);
        ipcbd_log_path = NULL;
        connect_many(fds, N);
        kill(d.pid, SIGSTOP);
        for (int i = 0; i < N; i++)
                close(fds[i]);
        kill(d.pid, SIGCONT);
        fixture_check_idle(&d); /* every connection gone */
        ipcbd_stop(&d);
        t = read_turn_log(path);
        unlink(path);
        fprintf(stderr, "[daemon] %d hang-ups at once: at most %d closed in one turn\n", N, t.most_closed);
        cr_assert_geq(t.most_closed, 1, "no count of closes in the summary");
        cr_assert_leq(t.most_closed, 64, "one turn closed %d connections", t.most_closed);
}

/* A client at its uid's connection quota that closes connections and then
 * connects again must find room: the daemon sees the hang-ups before the
 * connect, whatever else is ready in the same turns.  64 busy connections
 * (as many events as a turn takes) have a request waiting ahead of 136
 * hang-ups and the new connection, all sent while the daemon is stopped.
 * A loop that ran the accept in the turn that took only the busy events
 * (the listener in libuv's poll, the connections in the daemon's wait set)
 * counted the new connection while all 200 were still charged, and
 * refused it with -EUSERS. */
DAEMON_TEST(reconnect_at_quota_after_hangups) {
        static const char *const args[] = { "--max-connections", "200", "--no-root-override", NULL };
        enum { BUSY = 64, LEAVING = 136 };
        static int busy[BUSY], leaving[LEAVING];
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg m = { .hdr = { .op = IPCB_OP_HELLO, .id = 7 } }, r;
        ssize_t n;
        int fd, k;

        fixture_begin(&d, args);
        connect_many(busy, BUSY);
        connect_many(leaving, LEAVING);
        m.hello.version = IPCB_PROTO_VERSION;
        n = ipcb__proto_encode(&m, buf, sizeof(buf));
        cr_assert_gt(n, 0);
        ipcbd_pause(&d);
        for (int i = 0; i < BUSY; i++)
                cr_assert_eq(raw_send(busy[i], buf, (size_t)n, NULL, 0), 0);
        for (int i = 0; i < LEAVING; i++)
                close(leaving[i]);
        fd = raw_connect(d.sock); /* waits in the listening socket's queue */
        cr_assert_geq(fd, 0);
        ipcbd_resume(&d);
        k = raw_hello(fd);
        cr_assert_eq(k, 0, "the new connection was refused: %s", strerror(-k));
        for (int i = 0; i < BUSY; i++) {
                n = raw_recv(busy[i], buf, sizeof(buf), NULL, NULL, 5000);
                cr_assert_gt(n, 0, "no reply on busy connection %d", i);
                cr_assert_eq(ipcb__proto_decode(buf, (size_t)n, 0, &r), 0);
                cr_assert_eq(r.hdr.status, 0);
                close(busy[i]);
        }
        close(fd);
        fixture_check_idle(&d);
}

/* A connection that waited for each reply is read one request at a time
 * (peer.c): when it then sends ahead without reading, every request must
 * still be served, in order, though nothing new arrives to wake the loop. */
DAEMON_TEST(sends_ahead_after_waiting) {
        enum { WAITED = 40, AHEAD = 100 };
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg m = { .hdr = { .op = IPCB_OP_HELLO } }, r;
        unsigned nfds = 0;
        ssize_t n;
        int fd;

        fixture_begin(&d, NULL);
        fd = raw_connect(d.sock);
        cr_assert_geq(fd, 0);
        m.hello.version = IPCB_PROTO_VERSION;
        for (uint32_t i = 1; i <= WAITED + AHEAD; i++) {
                m.hdr.id = i;
                n = ipcb__proto_encode(&m, buf, IPCB_MSG_MAX);
                cr_assert_gt(n, 0);
                cr_assert_eq(raw_send(fd, buf, (size_t)n, NULL, 0), 0);
                if (i > WAITED && i < WAITED + AHEAD)
                        continue; /* sent ahead, not read yet */
                for (uint32_t j = i > WAITED ? WAITED + 1 : i; j <= i; j++) {
                        n = raw_recv(fd, buf, IPCB_MSG_MAX, NULL, &nfds, 5000);
                        cr_assert_gt(n, 0, "no reply to request %u of %u", j, i);
                        cr_assert_eq(ipcb__proto_decode(buf, (size_t)n, 0, &r), 0);
                        cr_assert_eq(r.hdr.op, IPCB_OP_HELLO | IPCB_OP_REPLY);
                        cr_assert_eq(r.hdr.id, j, "reply %u came for request %u", r.hdr.id, j);
                }
        }
        close(fd);
}

/* --slow-turn-ms 0 measures nothing and says nothing. */
DAEMON_TEST(slow_turns_off) {
        static const char *const args[] = { "--slow-turn-ms", "0", NULL };
        char path[] = "/tmp/ipcbt-turns.XXXXXX";
        int logfd = mkstemp(path);

        cr_assert_geq(logfd, 0);
        close(logfd);
        ipcbd_log_path = path;
        fixture_begin(&d, args);
        ipcbd_log_path = NULL;
        close(ipcbd_hello_conn(&d));
        fixture_check_idle(&d);
        ipcbd_stop(&d);
        cr_assert_not(file_contains(path, "loop turn"), "turns logged with --slow-turn-ms 0");
        unlink(path);
}

/* In a process with threads (the reaper's), each time the kernel grows the
 * fd table it waits for an RCU grace period (7-19 ms on a VM), in whatever
 * call of the loop allocated the fd: a burst of connections froze the
 * loop at 256, 512 and 1024 fds.  The table is sized at start instead, for
 * 65536 fds or the fd limit, and a thousand connections leave it alone. */
DAEMON_TEST(fd_table_sized_at_start) {
        static const char *const args[] = { "--max-connections", "2000", NULL };
        enum { N = 1000 };
        static int fds[N];
        struct rlimit rl;
        long want, at_start, after;

        getrlimit(RLIMIT_NOFILE, &rl);
        want = rl.rlim_max < 65536 ? (long)rl.rlim_max : 65536;
        fixture_begin(&d, args);
        at_start = fd_table_size(d.pid);
        cr_assert_geq(at_start, want, "the fd table holds %ld fds at start (the limit: %lu)", at_start,
                      (unsigned long)rl.rlim_max);
        connect_many(fds, N);
        after = fd_table_size(d.pid);
        for (int i = 0; i < N; i++)
                close(fds[i]);
        cr_assert_eq(after, at_start, "%d connections grew the fd table from %ld to %ld", N, at_start, after);
}

/* Past its first size the table is doubled by a thread of its own, before
 * the loop needs it: with --fd-table 256, 200 connections (past half of it)
 * find it grown while the daemon's fds are still under 256. */
DAEMON_TEST(fd_table_grows_ahead) {
        static const char *const args[] = { "--fd-table", "256", "--max-connections", "2000", NULL };
        const char *small[] = { "--fd-table", "63", NULL }, *word[] = { "--fd-table", "lots", NULL };
        enum { N = 200 };
        static int fds[N];
        long size = -1;

        cr_assert_eq(run_daemon(small, NULL, "/dev/null", 5000), 2);
        cr_assert_eq(run_daemon(word, NULL, "/dev/null", 5000), 2);
        fixture_begin(&d, args);
        cr_assert_eq(fd_table_size(d.pid), 256);
        connect_many(fds, N);
        cr_assert_lt(ipcbd_fd_count(&d), 256);
        for (int i = 0; i < 300 && (size = fd_table_size(d.pid)) < 512; i++)
                usleep(10 * 1000);
        for (int i = 0; i < N; i++)
                close(fds[i]);
        cr_assert_geq(size, 512, "the fd table was not grown ahead of need (%ld)", size);
}
