/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_preload.h: what the test_preload_*.c suites share: running an
 * unchanged program under ipcbroker-run (as root or as another uid, with
 * a timeout), and snapshots of the kernel's own IPC (/dev/shm and
 * /proc/sysvipc) so that a test can show that nothing was made there.
 * Header-only, like multiuid.h; the paths come from preload/CMakeLists.txt. */
#pragma once

#include "harness.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NOBODY 65534u
/* A test that runs programs as NOBODY or checks root's ownership: it needs
 * root (setresuid; uid 0's objects), and skips otherwise. */
#define SKIP_UNLESS_ROOT_UIDS()                                                             \
        do {                                                                                \
                if (geteuid() != 0)                                                         \
                        cr_skip_test("runs programs as other uids: needs root");           \
        } while (0)

/* Start PROGRAM under ipcbroker-run against sock as uid (0: as is; else
 * uid with gid uid and no other groups).  opts: launcher options (NULL-
 * terminated, or NULL); argv: the program and its arguments.  extra_env:
 * "NAME=VALUE" strings put in the child's environment, or NULL. */
static inline pid_t preload_spawn(const char *sock, uid_t uid, const char *const *opts,
                                  const char *const *argv, const char *const *extra_env) {
        const char *args[64];
        unsigned n = 0;
        pid_t pid;

        args[n++] = IPCB_PRELOAD_RUN;
        args[n++] = "--lib";
        args[n++] = IPCB_PRELOAD_TEST_LIB;
        args[n++] = "--socket";
        args[n++] = sock;
        for (; opts && *opts && n < 40; opts++)
                args[n++] = *opts;
        args[n++] = "--";
        for (; *argv && n < 63; argv++)
                args[n++] = *argv;
        args[n] = NULL;
        pid = test_fork();
        if (pid == 0) {
                gid_t g = uid;
                if (uid != 0 && (setgroups(0, &g) < 0 || setresgid(g, g, g) < 0 ||
                                 setresuid(uid, uid, uid) < 0)) {
                        fprintf(stderr, "cannot become uid %u: %s\n", (unsigned)uid,
                                strerror(errno));
                        _exit(120);
                }
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                /* A sanitizer build preloads its runtimes with the shim: a
                 * program that is not instrumented must not trip over the
                 * leaks of its interpreter. */
                setenv("ASAN_OPTIONS", "detect_leaks=0:verify_asan_link_order=0", 1);
                for (; extra_env && *extra_env; extra_env++)
                        putenv((char *)*extra_env);
                execv(args[0], (char *const *)args);
                _exit(121);
        }
        return pid;
}

/* Wait for pid at most timeout_ms (then SIGKILL it): its exit status, or
 * 128 + signal, or -1 on timeout. */
static inline int preload_wait(pid_t pid, int timeout_ms) {
        int status;
        for (int waited = 0;; waited += 5) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid)
                        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                if (waited >= timeout_ms) {
                        kill(pid, SIGKILL);
                        waitpid(pid, &status, 0);
                        return -1;
                }
                usleep(5000);
        }
}

static inline int preload_run(const char *sock, uid_t uid, const char *const *opts,
                              const char *const *argv) {
        return preload_wait(preload_spawn(sock, uid, opts, argv, NULL), 30000);
}

/* The kernel's IPC objects now: /dev/shm names and the SysV keys and ids
 * of /proc/sysvipc/{shm,sem,msg}, one per line (malloc'd). */
static inline char *kernel_ipc_snapshot(void) {
        static const char *const tables[] = { "/proc/sysvipc/shm", "/proc/sysvipc/sem",
                                              "/proc/sysvipc/msg" };
        size_t cap = 1 << 16, len = 0;
        char *out = calloc(1, cap), line[512];
        struct dirent *e;
        DIR *dir;

        cr_assert_not_null(out);
        if ((dir = opendir("/dev/shm"))) {
                while ((e = readdir(dir)))
                        /* bxfi_*: Criterion's own (boxfort), made as tests start */
                        if (e->d_name[0] != '.' && strncmp(e->d_name, "bxfi_", 5) != 0 &&
                            len + strlen(e->d_name) + 16 < cap)
                                len += (size_t)snprintf(out + len, cap - len, "shm %s\n",
                                                        e->d_name);
                closedir(dir);
        }
        for (unsigned i = 0; i < 3; i++) {
                FILE *f = fopen(tables[i], "re");
                long key, id;
                if (!f)
                        continue;
                while (fgets(line, sizeof(line), f))
                        if (sscanf(line, "%ld %ld", &key, &id) == 2 && len + 64 < cap)
                                len += (size_t)snprintf(out + len, cap - len, "%s %ld %ld\n",
                                                        tables[i], key, id);
                fclose(f);
        }
        return out;
}

/* Fail unless every line of `after` was in `before` (frees both). */
static inline void kernel_ipc_assert_nothing_new(char *before, char *after) {
        char *save = NULL;
        for (char *l = strtok_r(after, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                char key[600];
                snprintf(key, sizeof(key), "%s\n", l);
                cr_expect(strstr(before, key) != NULL, "new kernel IPC object: %s", l);
        }
        free(before);
        free(after);
}

#define ARGV(...) ((const char *const[]){ __VA_ARGS__, NULL })
