/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* env.c: the processes a benchmark run needs besides itself: the real
 * ipcbrokerd (fork+exec on a temporary socket), the floor servers (forked
 * processes answering raw SOCK_SEQPACKET requests with a memfd) and the
 * forked partners of the semaphore ping-pong rows.  Every child
 * gets PR_SET_PDEATHSIG, so nothing outlives a benchmark that is killed. */
#include "bench.h"

#include "ipcbroker.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FLOOR_MSG 64
#define FLOOR_SEG 4096
#define BROKER_START_TIMEOUT_MS 5000
#define CHILD_EXIT_TIMEOUT_MS 2000

int bench_pin(int cpu) {
        cpu_set_t set;

        if (cpu < 0)
                return 0;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        return sched_setaffinity(0, sizeof(set), &set) < 0 ? -errno : 0;
}

static void sleep_ms(long ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* Wait up to timeout_ms for pid; then SIGKILL it.  Returns its wait status,
 * or -1 if it had to be killed (or was not ours). */
static int reap(pid_t pid, long timeout_ms) {
        int status;

        for (long waited = 0;; waited += 5) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid)
                        return status;
                if (r < 0 && errno != EINTR)
                        return -1;
                if (waited >= timeout_ms)
                        break;
                sleep_ms(5);
        }
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        return -1;
}

/* In a forked child: die with the parent, and keep only 0-2 and `keep`
 * (moved to fd 3), so that no copy of the parent's broker connections stays
 * open in the child. */
static int child_prepare(const bench_env *env, int keep) {
        /* The parent's SIGTERM handler was inherited: a floor server must
         * die of SIGTERM (stop, death signal); ^C is the parent's to handle. */
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_IGN);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() == 1) /* the parent died before prctl */
                _exit(1);
        if (env->pin)
                (void)bench_pin(env->cpu_server);
        if (keep >= 0) {
                if (keep != 3 && dup2(keep, 3) < 0)
                        return -1;
                close_range(4, ~0u, 0);
                return 3;
        }
        return 0;
}

/* ---- generic forked servers (the semaphore ping-pong partners) ---- */

int bench_fork(const bench_env *env, const int *keep, unsigned nkeep,
               int (*serve)(void *arg, const int *fds), void *arg, pid_t *ret_pid) {
        int fds[BENCH_FORK_MAX_FDS];
        pid_t pid;

        if (nkeep > BENCH_FORK_MAX_FDS)
                return -EINVAL;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                child_prepare(env, -1);
                /* Park the fds to keep above the range they move to, then
                 * line them up from 3 and close everything else (the
                 * parent's broker connections among them). */
                for (unsigned i = 0; i < nkeep; i++)
                        if ((fds[i] = fcntl(keep[i], F_DUPFD_CLOEXEC, 3 + BENCH_FORK_MAX_FDS)) < 0)
                                _exit(1);
                for (unsigned i = 0; i < nkeep; i++) {
                        if (dup2(fds[i], 3 + (int)i) < 0)
                                _exit(1);
                        fds[i] = 3 + (int)i;
                }
                close_range(3 + nkeep, ~0u, 0);
                _exit(serve(arg, fds) < 0 ? 1 : 0);
        }
        *ret_pid = pid;
        return 0;
}

void bench_fork_stop(pid_t pid) {
        if (pid <= 0)
                return;
        kill(pid, SIGTERM);
        (void)reap(pid, CHILD_EXIT_TIMEOUT_MS);
}

/* ---- floor servers ---- */

static int floor_memfd(void) {
        int fd = memfd_create("ipcb-bench-floor", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        if (fd < 0)
                return -1;
        if (ftruncate(fd, FLOOR_SEG) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

static int send_fd(int sock, const void *buf, size_t len, int fd) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int))];
        } control;
        struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1,
                .msg_control = control.buf, .msg_controllen = sizeof(control.buf),
        };
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

        memset(&control, 0, sizeof(control));
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
        return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* The server loop: blocking recvmsg, reply with one fd, until hang-up. */
static _Noreturn void floor_serve(int sock, floor_mode mode) {
        unsigned char req[FLOOR_MSG + 1], reply[FLOOR_MSG];
        int premade = -1;

        memset(reply, 0x5a, sizeof(reply));
        if (mode == FLOOR_PREMADE_FD && (premade = floor_memfd()) < 0)
                _exit(1);
        for (;;) {
                ssize_t n = recv(sock, req, sizeof(req), 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        _exit(n == 0 ? 0 : 1);
                if (req[0] == 0) { /* a plain request: a reply without fd */
                        if (send(sock, reply, sizeof(reply), MSG_NOSIGNAL) != (ssize_t)sizeof(reply))
                                _exit(1);
                        continue;
                }
                int fd = premade >= 0 ? premade : floor_memfd();
                if (fd < 0 || send_fd(sock, reply, sizeof(reply), fd) < 0)
                        _exit(1);
                if (fd != premade)
                        close(fd);
        }
}

int floor_server_start(const bench_env *env, floor_mode mode, floor_server *ret) {
        int sv[2];
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                int k = -errno;
                close(sv[0]);
                close(sv[1]);
                return k;
        }
        if (pid == 0) {
                int sock = child_prepare(env, sv[1]);
                if (sock < 0)
                        _exit(1);
                floor_serve(sock, mode);
        }
        close(sv[1]);
        *ret = (floor_server){ .fd = sv[0], .pid = pid };
        return 0;
}

void floor_server_stop(floor_server *s) {
        if (s->pid <= 0)
                return;
        close(s->fd); /* the server sees hang-up and exits on its own */
        kill(s->pid, SIGTERM);
        (void)reap(s->pid, CHILD_EXIT_TIMEOUT_MS);
        s->pid = 0;
        s->fd = -1;
}

/* Exactly what a client library has to do: send a request, receive the reply
 * with room for the protocol's maximum of fds, close-on-exec, check for
 * truncation, take the fd. */
int floor_round_trip(floor_server *s) {
        unsigned char req[FLOOR_MSG], reply[8192];
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(4 * sizeof(int))];
        } control;
        struct iovec iov = { .iov_base = reply, .iov_len = sizeof(reply) };
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1,
                .msg_control = control.buf, .msg_controllen = sizeof(control.buf),
        };
        ssize_t n;
        int fd = -1;

        memset(req, 0xa5, sizeof(req));
        if (send(s->fd, req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req))
                return -errno;
        do
                n = recvmsg(s->fd, &mh, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
                    c->cmsg_len >= CMSG_LEN(sizeof(int)) && fd < 0)
                        memcpy(&fd, CMSG_DATA(c), sizeof(int));
        if (n != FLOOR_MSG || fd < 0 || (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC))) {
                if (fd >= 0)
                        close(fd);
                return -EPROTO;
        }
        return fd;
}

int floor_round_trip_plain(floor_server *s) {
        unsigned char req[FLOOR_MSG] = { 0 }, reply[8192];
        ssize_t n;

        if (send(s->fd, req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req))
                return -errno;
        do
                n = recv(s->fd, reply, sizeof(reply), 0);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        return n == FLOOR_MSG ? 0 : -EPROTO;
}

/* ---- the broker ---- */

static void broker_show_log(const broker *b) {
        char line[512];
        FILE *f = fopen(b->log_path, "re");

        if (!f)
                return;
        while (fgets(line, sizeof(line), f))
                fprintf(stderr, "  ipcbrokerd: %s", line);
        fclose(f);
}

static void broker_cleanup_dir(broker *b) {
        unlink(b->socket_path); /* normally removed by the daemon itself */
        unlink(b->log_path);
        rmdir(b->dir);
}

int broker_start(const bench_env *env, broker *ret) {
        broker b = { .pid = -1 };
        const char *tmp = getenv("TMPDIR");
        int k;

        if (!tmp || !*tmp || strlen(tmp) > 30)
                tmp = "/tmp";
        snprintf(b.dir, sizeof(b.dir), "%s/ipcb-bench.XXXXXX", tmp);
        if (!mkdtemp(b.dir))
                return -errno;
        snprintf(b.socket_path, sizeof(b.socket_path), "%s/b.sock", b.dir);
        snprintf(b.log_path, sizeof(b.log_path), "%s/ipcbrokerd.log", b.dir);

        b.pid = fork();
        if (b.pid < 0) {
                k = -errno;
                rmdir(b.dir);
                return k;
        }
        if (b.pid == 0) {
                int log = open(b.log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                child_prepare(env, -1);
                if (log < 0 || null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 ||
                    dup2(log, 2) < 0)
                        _exit(127);
                unsetenv("NOTIFY_SOCKET");
                unsetenv("LISTEN_FDS");
                unsetenv("LISTEN_PID");
                execl(IPCBROKERD_PATH, "ipcbrokerd", "--socket", b.socket_path, (char *)NULL);
                _exit(127);
        }

        /* Ready when a client can connect and say HELLO. */
        for (long waited = 0;; waited += 5) {
                ipcb_client *c;
                int status;

                if (ipcb_connect(b.socket_path, &c) == 0) {
                        ipcb_disconnect(c);
                        break;
                }
                if (waitpid(b.pid, &status, WNOHANG) == b.pid) {
                        fprintf(stderr, "ipcb_bench: %s exited at start-up (status 0x%x)\n",
                                IPCBROKERD_PATH, status);
                        broker_show_log(&b);
                        broker_cleanup_dir(&b);
                        return -ECHILD;
                }
                if (waited >= BROKER_START_TIMEOUT_MS) {
                        fprintf(stderr, "ipcb_bench: %s not ready after %d ms\n", IPCBROKERD_PATH,
                                BROKER_START_TIMEOUT_MS);
                        kill(b.pid, SIGKILL);
                        (void)reap(b.pid, CHILD_EXIT_TIMEOUT_MS);
                        broker_show_log(&b);
                        broker_cleanup_dir(&b);
                        return -ETIMEDOUT;
                }
                sleep_ms(5);
        }
        *ret = b;
        return 0;
}

int broker_stop(broker *b) {
        int status;

        if (b->pid <= 0)
                return 0;
        kill(b->pid, SIGTERM);
        status = reap(b->pid, CHILD_EXIT_TIMEOUT_MS);
        if (status != 0) {
                fprintf(stderr, "ipcb_bench: ipcbrokerd did not stop cleanly (status %d)\n",
                        status);
                broker_show_log(b);
        }
        broker_cleanup_dir(b);
        b->pid = 0;
        return status == 0 ? 0 : -1;
}
