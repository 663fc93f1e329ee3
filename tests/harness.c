/* harness.c: start/stop a real ipcbrokerd, count fds, poll for conditions,
 * and send raw datagrams; see harness.h. */
#include "harness.h"

#include "proto.h"
#include "sock.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_TIMEOUT_MS 10000
#define STOP_TIMEOUT_MS 5000

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

int self_fd_count(void) {
        /* The directory stream's own fd is counted too: constant, so harmless. */
        return count_dir_entries("/proc/self/fd");
}

long proc_rss_kib(pid_t pid) {
        char path[64], line[256];
        long kib = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
                        break;
        fclose(f);
        return kib;
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

void ipcbd_start(ipcbd *d, const char *const *extra_args) {
        ipcbd_start_as(d, (uid_t)-1, (gid_t)-1, extra_args);
}

void ipcbd_start_as(ipcbd *d, uid_t uid, gid_t gid, const char *const *extra_args) {
        const char *argv[32];
        unsigned argc = 0;
        long long end;
        int status, fd, k, probe_fds;
        pid_t pid;

        memset(d, 0, sizeof(*d));
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
        setenv("IPCBROKER_SOCKET", d->sock, 1);
}

void ipcbd_stop(ipcbd *d) {
        long long end;
        int status = 0;
        bool exited = false;

        if (d->pid <= 0)
                return;
        kill(d->pid, SIGTERM);
        end = now_ms() + STOP_TIMEOUT_MS;
        while (!(exited = daemon_exited(d, &status)) && now_ms() < end)
                sleep_ms(5);
        if (!exited) {
                kill(d->pid, SIGKILL);
                waitpid(d->pid, &status, 0);
        }
        d->pid = 0;
        unlink(d->sock);
        rmdir(d->dir);
        cr_assert(exited, "ipcbrokerd did not exit within %d ms of SIGTERM", STOP_TIMEOUT_MS);
        cr_assert(WIFEXITED(status), "ipcbrokerd died of signal %d",
                  WIFSIGNALED(status) ? WTERMSIG(status) : -1);
        cr_assert_eq(WEXITSTATUS(status), 0,
                     "ipcbrokerd exited %d (1: its event loop did not close cleanly)",
                     WEXITSTATUS(status));
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
        return ipcb_sock_send(fd, buf, len, fds, nfds, MSG_DONTWAIT);
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
        k = ipcb_sock_recv(fd, buf, cap, MSG_DONTWAIT, NULL, &rx);
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

int raw_hello(int fd) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg m = { .hdr = { .op = IPCB_OP_HELLO, .id = 0x4e110 } }, r;
        ssize_t n;
        int k;

        m.hello.version = IPCB_PROTO_VERSION;
        n = ipcb_proto_encode(&m, buf, sizeof(buf));
        if (n < 0)
                return (int)n;
        if ((k = raw_send(fd, buf, (size_t)n, NULL, 0)) < 0)
                return k;
        n = raw_recv(fd, buf, sizeof(buf), NULL, NULL, 2000);
        if (n < 0)
                return (int)n;
        if (n == 0)
                return -ECONNRESET;
        if (ipcb_proto_decode(buf, (size_t)n, 0, &r) < 0 ||
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
