/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ctlrun.c: running the real ipcbrokerctl from a test: fork-exec with
 * stdin fed and stdout/stderr collected (10 s at most), or started in the
 * background for commands that run until interrupted (watch), and the
 * checks every CLI suite makes on a result (ctlrun.h). */
#include "ctlrun.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

void result_free(ctl_result *r) {
        free(r->out);
        free(r->err);
        *r = (ctl_result){ 0 };
}

static void append(char **buf, size_t *len, const char *src, size_t n) {
        char *b = realloc(*buf, *len + n + 1);
        cr_assert_not_null(b);
        memcpy(b + *len, src, n);
        *len += n;
        b[*len] = '\0';
        *buf = b;
}

static long long mono_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run ipcbrokerctl with args (NULL-terminated), feeding `in` on stdin. */
void ctlrun(ctl_result *r, const char *sock, int how, const void *in, size_t in_len,
            const char *const *args) {
        const char *argv[32], *envp[256];
        char envsock[160];
        int pin[2], pout[2], perr[2], st;
        unsigned argc = 0, envc = 0;
        size_t in_off = 0;
        long long end;
        pid_t pid;

        *r = (ctl_result){ 0 };
        argv[argc++] = IPCBROKERCTL_PATH;
        if (how == VIA_OPTION) {
                argv[argc++] = "--socket";
                argv[argc++] = sock;
        }
        for (unsigned i = 0; args[i]; i++) {
                cr_assert_lt(argc, 31);
                argv[argc++] = args[i];
        }
        argv[argc] = NULL;
        for (char **e = environ; *e && envc < 250; e++)
                if (strncmp(*e, "IPCBROKER_SOCKET=", 17) != 0)
                        envp[envc++] = *e;
        if (how == VIA_ENV) {
                snprintf(envsock, sizeof(envsock), "IPCBROKER_SOCKET=%s", sock);
                envp[envc++] = envsock;
        }
        envp[envc] = NULL;

        cr_assert_eq(pipe2(pin, O_CLOEXEC), 0);
        cr_assert_eq(pipe2(pout, O_CLOEXEC), 0);
        cr_assert_eq(pipe2(perr, O_CLOEXEC), 0);
        fflush(NULL);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                if (dup2(pin[0], 0) < 0 || dup2(pout[1], 1) < 0 || dup2(perr[1], 2) < 0)
                        _exit(126);
                execve(argv[0], (char *const *)argv, (char *const *)envp);
                _exit(127);
        }
        close(pin[0]);
        close(pout[1]);
        close(perr[1]);
        fcntl(pin[1], F_SETFL, O_NONBLOCK);
        if (in_len == 0) {
                close(pin[1]);
                pin[1] = -1;
        }

        end = mono_ms() + 10000;
        while (pout[0] >= 0 || perr[0] >= 0) {
                struct pollfd p[3] = {
                        { .fd = pout[0], .events = POLLIN },
                        { .fd = perr[0], .events = POLLIN },
                        { .fd = pin[1], .events = POLLOUT },
                };
                char buf[16384];
                int left = (int)(end - mono_ms());

                cr_assert_gt(left, 0, "ipcbrokerctl %s did not finish", args[0]);
                if (poll(p, 3, left) < 0 && errno != EINTR)
                        cr_assert_fail("poll: %s", strerror(errno));
                for (int i = 0; i < 2; i++) {
                        int *fdp = i == 0 ? &pout[0] : &perr[0];
                        if (*fdp < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        ssize_t n = read(*fdp, buf, sizeof(buf));
                        if (n > 0)
                                append(i == 0 ? &r->out : &r->err, i == 0 ? &r->out_len : &r->err_len,
                                       buf, (size_t)n);
                        else if (n == 0 || errno != EINTR) {
                                close(*fdp);
                                *fdp = -1;
                        }
                }
                if (pin[1] >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
                        ssize_t n = write(pin[1], (const char *)in + in_off, in_len - in_off);
                        if (n > 0)
                                in_off += (size_t)n;
                        if ((n < 0 && errno != EAGAIN && errno != EINTR) || in_off == in_len) {
                                close(pin[1]); /* EPIPE: it stopped reading; fine */
                                pin[1] = -1;
                        }
                }
        }
        if (pin[1] >= 0)
                close(pin[1]);
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (!r->out)
                append(&r->out, &r->out_len, "", 0);
        if (!r->err)
                append(&r->err, &r->err_len, "", 0);
}

unsigned count_lines(const char *s, size_t len) {
        unsigned n = 0;
        for (size_t i = 0; i < len; i++)
                n += s[i] == '\n';
        return n;
}

/* Success: exit 0, nothing on stderr. */
void expect_ok(const ctl_result *r, const char *what) {
        cr_assert_eq(r->status, 0, "%s: exit %d, stderr: %s", what, r->status, r->err);
        cr_assert_eq(r->err_len, 0, "%s: stderr not empty: %s", what, r->err);
}

/* Failure: the given exit status (or any non-zero one if want is -1) and
 * exactly one line on stderr, naming the program. */
void expect_fail(const ctl_result *r, int want, const char *what) {
        if (want < 0)
                cr_assert_neq(r->status, 0, "%s: exit 0 (stdout: %s)", what, r->out);
        else
                cr_assert_eq(r->status, want, "%s: exit %d, want %d (stderr: %s)", what, r->status,
                             want, r->err);
        cr_assert_lt(r->status, 128, "%s: killed by signal %d", what, r->status - 128);
        cr_assert_gt(r->err_len, 0, "%s: nothing on stderr", what);
        /* A usage error: the message, then the usage and where to read more. */
        if (r->status == 2)
                cr_assert(strstr(r->err, "\nUsage: ipcbrokerctl") &&
                                  count_lines(r->err, r->err_len) == 3,
                          "%s: usage error without a usage: %s", what, r->err);
        else
                cr_assert_eq(count_lines(r->err, r->err_len), 1, "%s: stderr is not one line: %s",
                             what, r->err);
        cr_assert_eq(r->err[r->err_len - 1], '\n');
        cr_assert(strncmp(r->err, "ipcbrokerctl", 12) == 0, "%s: stderr: %s", what, r->err);
}

pid_t ctlrun_spawn(const char *sock, const char *const *args, int *ret_fd) {
        const char *argv[32];
        unsigned argc = 0;
        int p[2];
        pid_t pid;

        argv[argc++] = IPCBROKERCTL_PATH;
        argv[argc++] = "--socket";
        argv[argc++] = sock;
        for (unsigned i = 0; args[i]; i++) {
                cr_assert_lt(argc, 31);
                argv[argc++] = args[i];
        }
        argv[argc] = NULL;
        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        fflush(NULL);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(p[1], 1) < 0 || dup2(p[1], 2) < 0)
                        _exit(126);
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        close(p[1]);
        fcntl(p[0], F_SETFL, O_NONBLOCK);
        *ret_fd = p[0];
        return pid;
}

bool ctlrun_wait_output(int fd, char **buf, size_t *len, const char *what, int timeout_ms) {
        long long end = mono_ms() + timeout_ms;
        char tmp[4096];

        if (!*buf)
                append(buf, len, "", 0);
        while (!strstr(*buf, what)) {
                struct pollfd pfd = { .fd = fd, .events = POLLIN };
                int left = (int)(end - mono_ms());
                ssize_t n;

                if (left <= 0 || poll(&pfd, 1, left) <= 0)
                        return strstr(*buf, what) != NULL;
                n = read(fd, tmp, sizeof(tmp));
                if (n > 0)
                        append(buf, len, tmp, (size_t)n);
                else if (n == 0)
                        return false;
        }
        return true;
}
