/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* harness.c: start/stop a real ipcbrokerd, count fds, the end-of-test
 * fixture, poll for conditions, and send raw datagrams; see harness.h. */
#include "harness.h"

#include "ipcbroker.h"
#include "proto.h"
#include "sock.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <grp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_TIMEOUT_MS 10000

const char *ipcbd_log_path;
#define STOP_TIMEOUT_MS 5000
#define DAEMON_SETTLE_MS 5000 /* for the daemon's fds to come back */
#define SELF_SETTLE_MS 1000   /* for the test process's */
#define FDS_LISTED_MAX 64     /* link targets shown per process */

static long long now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static int count_dir_entries(const char *path) {
        DIR *dir = opendir(path);
        struct dirent *e;
        int n = 0;

        if (!dir)
                return -errno;
        while ((e = readdir(dir)))
                if (e->d_name[0] != '.')
                        n++;
        closedir(dir);
        return n;
}

int ipcbd_fd_count(const ipcbd *d) {
        char path[64];

        snprintf(path, sizeof(path), "/proc/%d/fd", (int)d->pid);
        return count_dir_entries(path);
}

void raise_nofile(unsigned long want) {
        struct rlimit rl;

        cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
        if (rl.rlim_cur >= want)
                return;
        if (rl.rlim_max < want) { /* needs CAP_SYS_RESOURCE */
                struct rlimit up = { want, want };
                if (setrlimit(RLIMIT_NOFILE, &up) == 0)
                        return;
        }
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0, "setrlimit: %s", strerror(errno));
        cr_assert_geq(rl.rlim_cur, want, "RLIMIT_NOFILE hard limit %llu is too low",
                      (unsigned long long)rl.rlim_max);
}

int self_fd_count(void) {
        /* The directory stream's own fd is counted too: constant, so harmless. */
        return count_dir_entries("/proc/self/fd");
}

/* Append printf output to buf (of cap bytes, *len used), truncating. */
static void buf_add(char *buf, size_t cap, size_t *len, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void buf_add(char *buf, size_t cap, size_t *len, const char *fmt, ...) {
        va_list ap;
        int n;

        if (*len >= cap - 1)
                return;
        va_start(ap, fmt);
        n = vsnprintf(buf + *len, cap - *len, fmt, ap);
        va_end(ap);
        if (n > 0)
                *len += (size_t)n < cap - *len ? (size_t)n : cap - *len - 1;
}

/* "who (pid N), K fds:" then one "  fd -> target" line per descriptor. */
static void fds_format(char *buf, size_t cap, size_t *len, pid_t pid, const char *who) {
        char path[64], link[320], target[256];
        struct dirent *e;
        unsigned shown = 0, total = 0;
        DIR *dir;

        if (pid > 0)
                snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
        else
                snprintf(path, sizeof(path), "/proc/self/fd");
        dir = opendir(path);
        if (!dir) {
                buf_add(buf, cap, len, "%s: cannot list %s: %s\n", who, path, strerror(errno));
                return;
        }
        buf_add(buf, cap, len, "%s (pid %d) holds:\n", who, pid > 0 ? (int)pid : (int)getpid());
        while ((e = readdir(dir))) {
                ssize_t n;

                if (e->d_name[0] == '.')
                        continue;
                if (pid <= 0 && atoi(e->d_name) == dirfd(dir))
                        continue; /* this listing's own fd */
                total++;
                if (shown == FDS_LISTED_MAX)
                        continue;
                snprintf(link, sizeof(link), "%s/%s", path, e->d_name);
                n = readlink(link, target, sizeof(target) - 1);
                target[n > 0 ? n : 0] = '\0';
                buf_add(buf, cap, len, "  %3s -> %s\n", e->d_name, n > 0 ? target : "?");
                shown++;
        }
        closedir(dir);
        if (total > shown)
                buf_add(buf, cap, len, "  ... and %u more\n", total - shown);
}

void fds_log(pid_t pid, const char *who) {
        static char buf[16384];
        size_t len = 0;

        buf[0] = '\0';
        fds_format(buf, sizeof(buf), &len, pid, who);
        cr_log_error("%s", buf);
}

bool file_contains(const char *path, const char *what) {
        static char buf[1 << 20];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t k = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

        if (fd >= 0)
                close(fd);
        if (k < 0)
                return false;
        buf[k] = '\0';
        return strstr(buf, what) != NULL;
}

long proc_status(pid_t pid, const char *field) {
        char path[64], line[256];
        size_t len = strlen(field);
        long v = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, field, len) == 0 && line[len] == ':' &&
                    sscanf(line + len + 1, "%ld", &v) == 1)
                        break;
        fclose(f);
        return v;
}

long proc_rss_kib(pid_t pid) {
        return proc_status(pid, "VmRSS");
}

long proc_cpu_ticks(pid_t pid) {
        char path[64], buf[1024];
        unsigned long ut = 0, st = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        if (!fgets(buf, sizeof(buf), f)) {
                fclose(f);
                return -1;
        }
        fclose(f);
        /* Fields 14 and 15 (utime, stime) follow the ")" of the comm field. */
        const char *p = strrchr(buf, ')');
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
                return -1;
        return (long)(ut + st);
}

int wait_until(bool (*pred)(void *), void *arg, int timeout_ms) {
        long long end = now_ms() + timeout_ms;

        for (;;) {
                if (pred(arg))
                        return 1;
                if (now_ms() >= end)
                        return 0;
                sleep_ms(2);
        }
}

typedef struct fds_want {
        const ipcbd *d;
        int want, last;
} fds_want;

static bool fds_reached(void *arg) {
        fds_want *w = arg;
        w->last = ipcbd_fd_count(w->d);
        return w->last == w->want;
}

bool ipcbd_wait_fds(const ipcbd *d, int want, int timeout_ms) {
        fds_want w = { .d = d, .want = want, .last = -1 };

        if (wait_until(fds_reached, &w, timeout_ms))
                return true;
        cr_log_error("daemon fd count is %d, expected %d", w.last, want);
        return false;
}

/* ---- daemon ---- */

/* Reap the daemon if it has exited: true and *status set. */
static bool daemon_exited(ipcbd *d, int *status) {
        pid_t r;

        do
                r = waitpid(d->pid, status, WNOHANG);
        while (r < 0 && errno == EINTR);
        return r == d->pid;
}

/* Wait until the daemon d->pid answers a HELLO on d->sock, then set
 * d->base_fds from the count with that probe as its only connection.  Fails
 * the test (the daemon killed) on timeout or if it exits. */
static void daemon_ready(ipcbd *d) {
        long long end;
        int status, fd, k, probe_fds;

        /* Ready when it answers a HELLO. */
        end = now_ms() + START_TIMEOUT_MS;
        for (;;) {
                if (daemon_exited(d, &status)) {
                        d->pid = 0;
                        cr_assert_fail("ipcbrokerd exited during start-up (status 0x%x)", status);
                }
                fd = raw_connect(d->sock);
                if (fd >= 0) {
                        k = raw_hello(fd);
                        if (k == 0)
                                break;
                        close(fd);
                }
                if (now_ms() >= end) {
                        kill(d->pid, SIGKILL);
                        waitpid(d->pid, NULL, 0);
                        d->pid = 0;
                        cr_assert_fail("ipcbrokerd not ready after %d ms", START_TIMEOUT_MS);
                }
                sleep_ms(10);
        }
        /* The probe connection is the only one: the idle count is one less.
         * Then wait for the daemon to notice the probe's hang-up. */
        probe_fds = ipcbd_fd_count(d);
        close(fd);
        d->base_fds = probe_fds - 1;
        cr_assert(ipcbd_wait_fds(d, d->base_fds, 5000), "daemon did not drop the probe connection");
}

void ipcbd_start(ipcbd *d, const char *const *extra_args) {
        ipcbd_start_as(d, (uid_t)-1, (gid_t)-1, extra_args);
}

void ipcbd_start_as(ipcbd *d, uid_t uid, gid_t gid, const char *const *extra_args) {
        const char *argv[32];
        unsigned argc = 0;
        int self_fds = d->self_fds;
        bool fixture = d->fixture, checked = d->checked;
        pid_t pid;

        memset(d, 0, sizeof(*d));
        d->self_fds = self_fds;
        d->fixture = fixture;
        d->checked = checked;
        snprintf(d->dir, sizeof(d->dir), "/tmp/ipcbt.XXXXXX");
        cr_assert_not_null(mkdtemp(d->dir), "mkdtemp: %s", strerror(errno));
        /* Clients of any uid reach the socket; a daemon of another uid
         * creates it in a directory of its own. */
        cr_assert_eq(chmod(d->dir, 0755), 0);
        if (uid != (uid_t)-1)
                cr_assert_eq(chown(d->dir, uid, gid), 0, "chown: %s", strerror(errno));
        snprintf(d->sock, sizeof(d->sock), "%s/ipcb.sock", d->dir);

        argv[argc++] = IPCBROKERD_PATH;
        argv[argc++] = "--socket";
        argv[argc++] = d->sock;
        /* The tests' uids (61001-64010) are their own, whatever ranges this
         * machine's /etc/subuid gives; a test may give a file of its own
         * (the last option wins). */
        argv[argc++] = "--subuid-file";
        argv[argc++] = "none";
        for (unsigned i = 0; extra_args && extra_args[i]; i++) {
                cr_assert_lt(argc, sizeof(argv) / sizeof(argv[0]) - 1, "too many daemon args");
                argv[argc++] = extra_args[i];
        }
        argv[argc] = NULL;

        fflush(NULL);
        pid = fork();
        cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
        if (pid == 0) {
                /* Only async-signal-safe calls from here to exec. */
                int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (null < 0 || dup2(null, STDIN_FILENO) < 0)
                        _exit(127);
                if (ipcbd_log_path) {
                        int log = open(ipcbd_log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                        if (log < 0 || dup2(log, STDERR_FILENO) < 0)
                                _exit(127);
                }
                /* Nothing of the test process leaks into the daemon's fd
                 * count, and the daemon dies with the test if that crashes. */
                close_range(3, ~0u, 0);
                if (uid != (uid_t)-1 && (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
                                         setresuid(uid, uid, uid) < 0))
                        _exit(126);
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        d->pid = pid;

        daemon_ready(d);
        setenv("IPCBROKER_SOCKET", d->sock, 1);
}

/* SIGTERM, wait, SIGKILL if need be, remove the directory (if the harness
 * made it).  Returns true if
 * the daemon exited 0 within STOP_TIMEOUT_MS; otherwise says why in why. */
static bool daemon_stop(ipcbd *d, char *why, size_t cap) {
        long long end;
        int status = 0;
        bool exited = false;

        kill(d->pid, SIGTERM);
        end = now_ms() + STOP_TIMEOUT_MS;
        while (!(exited = daemon_exited(d, &status)) && now_ms() < end)
                sleep_ms(5);
        if (!exited) {
                kill(d->pid, SIGKILL);
                waitpid(d->pid, &status, 0);
        }
        d->pid = 0;
        if (d->dir[0]) { /* not an adopted daemon's: ours to remove */
                unlink(d->sock);
                rmdir(d->dir);
        }
        if (!exited)
                snprintf(why, cap, "ipcbrokerd did not exit within %d ms of SIGTERM",
                         STOP_TIMEOUT_MS);
        else if (!WIFEXITED(status))
                snprintf(why, cap, "ipcbrokerd died of signal %d",
                         WIFSIGNALED(status) ? WTERMSIG(status) : -1);
        else if (WEXITSTATUS(status) != 0)
                snprintf(why, cap, "ipcbrokerd exited %d (1: its event loop did not close cleanly)",
                         WEXITSTATUS(status));
        else
                return true;
        return false;
}

void ipcbd_stop(ipcbd *d) {
        char why[128];

        if (d->pid <= 0)
                return;
        cr_assert(daemon_stop(d, why, sizeof(why)), "%s", why);
}

/* ---- the fixture ---- */

void fixture_begin(ipcbd *d, const char *const *extra_args) {
        fixture_begin_as(d, (uid_t)-1, (gid_t)-1, extra_args);
}

/* Everything but the daemon; the fixture counts as begun once it runs. */
static void fixture_prepare(ipcbd *d) {
        bool checked = d->checked;

        cr_assert(!d->fixture, "fixture_begin: a fixture is already running");
        memset(d, 0, sizeof(*d));
        d->checked = checked;
        /* A daemon that hangs up must fail a test, not kill it. */
        signal(SIGPIPE, SIG_IGN);
        d->self_fds = self_fd_count();
}

void fixture_begin_as(ipcbd *d, uid_t uid, gid_t gid, const char *const *extra_args) {
        fixture_prepare(d);
        ipcbd_start_as(d, uid, gid, extra_args);
        d->fixture = true;
}

void fixture_begin_bare(ipcbd *d) {
        fixture_prepare(d);
        d->fixture = true;
}

void fixture_adopt(ipcbd *d, pid_t pid, const char *sock) {
        cr_assert(d->fixture && d->pid == 0, "fixture_adopt: no bare fixture begun");
        cr_assert_lt(strlen(sock), sizeof(d->sock), "socket path too long");
        snprintf(d->sock, sizeof(d->sock), "%s", sock);
        d->dir[0] = '\0';
        d->pid = pid;
        daemon_ready(d);
}

typedef struct self_want {
        int want, last;
} self_want;

static bool self_fds_reached(void *arg) {
        self_want *w = arg;
        w->last = self_fd_count();
        return w->last == w->want;
}

/* Wait for the daemon's fds to be back at d->base_fds; if they are not,
 * append why, with both processes' fds, to report. */
static bool daemon_idle(const ipcbd *d, char *report, size_t cap, size_t *len) {
        fds_want w = { .d = d, .want = d->base_fds, .last = -1 };

        if (wait_until(fds_reached, &w, DAEMON_SETTLE_MS))
                return true;
        if (w.last < 0) {
                buf_add(report, cap, len, "daemon fds: cannot list /proc/%d/fd (%s): did it die?\n",
                        (int)d->pid, strerror(-w.last));
                return false;
        }
        buf_add(report, cap, len,
                "daemon fds: %d open (waited %d ms), expected %d (its idle count: no "
                "client connected, no object alive)\n",
                w.last, DAEMON_SETTLE_MS, d->base_fds);
        fds_format(report, cap, len, d->pid, "ipcbrokerd");
        fds_format(report, cap, len, 0, "the test process");
        return false;
}

void fixture_check_idle(const ipcbd *d) {
        static char report[32768];
        size_t len = 0;

        cr_assert_gt(d->pid, 0, "fixture_check_idle: no daemon");
        report[0] = '\0';
        if (!daemon_idle(d, report, sizeof(report), &len))
                cr_assert_fail("%s", report);
}

void fixture_end(ipcbd *d) {
        static char report[32768];
        size_t len = 0;
        unsigned failed = 0;
        bool listed_self = false;

        cr_assert(d->fixture, "fixture_end without fixture_begin");
        d->fixture = false;
        report[0] = '\0';

        /* 1. The daemon back at its idle fd count. */
        if (d->pid > 0 && !daemon_idle(d, report, sizeof(report), &len)) {
                failed++;
                listed_self = true;
        }

        /* 2. The test process back at its count from fixture_begin. */
        self_want sw = { .want = d->self_fds, .last = -1 };
        if (!wait_until(self_fds_reached, &sw, SELF_SETTLE_MS)) {
                failed++;
                buf_add(report, sizeof(report), &len,
                        "test process fds: %d open, expected %d (as at fixture_begin)\n", sw.last,
                        sw.want);
                if (!listed_self)
                        fds_format(report, sizeof(report), &len, 0, "the test process");
        }

        /* 3. A clean exit. */
        if (d->pid > 0) {
                char why[128];
                if (!daemon_stop(d, why, sizeof(why))) {
                        failed++;
                        buf_add(report, sizeof(report), &len, "%s\n", why);
                }
        }

        /* 4. One failure naming everything. */
        if (failed)
                cr_assert_fail("%u end-of-test check%s failed:\n%s", failed, failed > 1 ? "s" : "",
                               report);
}

void fixture_cleanup(ipcbd *d) {
        char why[128];
        bool checked = d->checked;

        if (!d->fixture)
                return;
        d->fixture = false;
        d->checked = false;
        if (d->pid > 0)
                daemon_stop(d, why, sizeof(why));
        if (!checked) {
                /* Not a FIXTURE_TEST: nothing ran the end-of-test checks.  An
                 * assertion here would not count (see harness.h); an exit
                 * status does. */
                cr_log_error("%s: fixture_begin() without fixture_end(): declare the test with "
                             "FIXTURE_TEST", criterion_current_test ? criterion_current_test->name : "?");
                fflush(NULL);
                _exit(1);
        }
}

/* ---- raw protocol ---- */

int raw_connect(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int k = -errno;
                close(fd);
                return k;
        }
        return fd;
}

int raw_send(int fd, const void *buf, size_t len, const int *fds, unsigned nfds) {
        return ipcb__sock_send(fd, buf, len, fds, nfds, MSG_DONTWAIT);
}

ssize_t raw_recv(int fd, void *buf, size_t cap, int *fds, unsigned *nfds, int timeout_ms) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        unsigned cap_fds = nfds ? *nfds : 0;
        ipcb_sock_rx rx;
        int k;

        if (nfds)
                *nfds = 0;
        do
                k = poll(&pfd, 1, timeout_ms);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;
        if (k == 0)
                return -ETIMEDOUT;
        k = ipcb__sock_recv(fd, buf, cap, MSG_DONTWAIT, NULL, &rx);
        if (k <= 0)
                return k;
        for (unsigned i = 0; i < rx.nfds; i++) {
                if (i < cap_fds)
                        fds[i] = rx.fds[i];
                else
                        close(rx.fds[i]);
        }
        if (nfds)
                *nfds = rx.nfds < cap_fds ? rx.nfds : cap_fds;
        return (ssize_t)rx.len;
}

int raw_reply(int fd, ipcb_msg *reply) {
        static uint8_t buf[IPCB_MSG_MAX];
        unsigned nfds = IPCB_FDS_MAX;
        int fds[IPCB_FDS_MAX];
        ssize_t n = raw_recv(fd, buf, sizeof(buf), fds, &nfds, 5000);

        cr_assert_gt(n, 0, "no reply");
        for (unsigned i = 0; i < nfds; i++)
                close(fds[i]);
        cr_assert_eq(ipcb__proto_decode(buf, (size_t)n, nfds, reply), 0);
        return reply->hdr.status;
}

int raw_request(int fd, ipcb_msg *m, ipcb_msg *reply) {
        uint8_t buf[IPCB_MSG_MAX];
        ssize_t n = ipcb__proto_encode(m, buf, sizeof(buf));

        cr_assert_gt(n, 0);
        cr_assert_eq(raw_send(fd, buf, (size_t)n, NULL, 0), 0);
        return raw_reply(fd, reply);
}

int raw_send_until_stalled(int fd, const void *buf, size_t len, unsigned max, int stall_ms,
                           unsigned *ret_sent) {
        long long stalled_since = -1;
        unsigned sent = 0;
        int k = 0;

        while (sent < max) {
                k = raw_send(fd, buf, len, NULL, 0);
                if (k == 0) {
                        sent++;
                        stalled_since = -1;
                        continue;
                }
                if (k != -EAGAIN)
                        break;
                if (stalled_since < 0)
                        stalled_since = now_ms();
                else if (now_ms() - stalled_since >= stall_ms) {
                        k = 0;
                        break;
                }
                struct pollfd p = { .fd = fd, .events = POLLOUT };
                poll(&p, 1, 10);
        }
        *ret_sent = sent;
        return k;
}

int ipcbd_hello_conn(const ipcbd *d) {
        int fd = raw_connect(d->sock);

        cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));
        cr_assert_eq(raw_hello(fd), 0);
        return fd;
}

static bool stopped(void *arg) {
        char path[64], buf[256];
        const ipcbd *d = arg;
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)d->pid);
        if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
                return false;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return false;
        buf[n] = '\0';
        const char *p = strrchr(buf, ')'); /* the state follows the command name */
        return p && p[1] == ' ' && p[2] == 'T';
}

void ipcbd_pause(const ipcbd *d) {
        kill(d->pid, SIGSTOP);
        cr_assert(wait_until(stopped, (void *)d, 2000), "the daemon did not stop");
}

void ipcbd_resume(const ipcbd *d) {
        kill(d->pid, SIGCONT);
}

int raw_hello(int fd) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg m = { .hdr = { .op = IPCB_OP_HELLO, .id = 0x4e110 } }, r;
        ssize_t n;
        int k;

        m.hello.version = IPCB_PROTO_VERSION;
        n = ipcb__proto_encode(&m, buf, sizeof(buf));
        if (n < 0)
                return (int)n;
        if ((k = raw_send(fd, buf, (size_t)n, NULL, 0)) < 0)
                return k;
        n = raw_recv(fd, buf, sizeof(buf), NULL, NULL, 2000);
        if (n < 0)
                return (int)n;
        if (n == 0)
                return -ECONNRESET;
        if (ipcb__proto_decode(buf, (size_t)n, 0, &r) < 0 ||
            r.hdr.op != (IPCB_OP_HELLO | IPCB_OP_REPLY) || r.hdr.id != m.hdr.id)
                return -EPROTO;
        if (r.hdr.status < 0)
                return r.hdr.status;
        return r.hello_reply.version == IPCB_PROTO_VERSION ? 0 : -EPROTO;
}

bool raw_is_closed(int fd, int timeout_ms) {
        static uint8_t buf[1 << 17];
        long long end = now_ms() + timeout_ms;

        for (;;) {
                int left = (int)(end - now_ms());
                ssize_t n = raw_recv(fd, buf, sizeof(buf), NULL, NULL, left > 0 ? left : 0);
                if (n == 0 || n == -ECONNRESET)
                        return true;
                if (n == -ETIMEDOUT || (n < 0 && n != -EAGAIN))
                        return false;
        }
}

pid_t test_fork(void) {
        pid_t parent = getpid();
        fflush(NULL);
        pid_t pid = fork();
        cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(99);
        }
        return pid;
}

int broker_socket_fd(const char *path) {
        for (int fd = 3; fd < 4096; fd++) {
                struct sockaddr_un a;
                socklen_t len = sizeof(a);
                if (getpeername(fd, (struct sockaddr *)&a, &len) == 0 && a.sun_family == AF_UNIX &&
                    strcmp(a.sun_path, path) == 0)
                        return fd;
        }
        return -1;
}

pid_t fork_ready_client(const char *sock, int (*fn)(struct ipcb_client *c, void *arg), void *arg) {
        int up[2], k;
        ipcb_client *c;
        pid_t pid;
        char x;

        cr_assert_eq(pipe2(up, O_CLOEXEC), 0);
        pid = test_fork();
        if (pid == 0) {
                close(up[0]);
                if (ipcb_connect(sock, &c) < 0)
                        _exit(10);
                if ((k = fn(c, arg)) != 0)
                        _exit(k);
                if (write(up[1], "r", 1) != 1)
                        _exit(11);
                for (;;)
                        pause();
        }
        close(up[1]);
        cr_assert_eq(read(up[0], &x, 1), 1, "the child failed before it was ready");
        close(up[0]);
        return pid;
}
