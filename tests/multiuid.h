/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* multiuid.h: helpers for tests that run clients as other uids (included by
 * test_access.c, test_quota.c, test_hostile_flood.c; header-only so that the
 * harness library stays as it is).
 *
 * run_as() forks a child that drops to uid/gid (+ supplementary groups) the
 * way RECIPES.md says (setgroups, setresgid, setresuid), runs fn, and exits
 * with its return value.  Inside the child use CHILD_CHECK, never cr_assert
 * (Criterion's assertions belong to the test process); the parent asserts
 * the exit status.  Tests skip with a message when not root. */
#pragma once

#include "harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define UID_A 61001u /* owner / publisher */
#define UID_B 61002u /* reader, in GID_SHARED */
#define UID_C 61003u /* stranger */
#define UID_D 61010u /* the daemon, when it runs unprivileged */
#define GID_SHARED 61100u

#define SKIP_UNLESS_ROOT()                                                                  \
        do {                                                                                \
                if (geteuid() != 0)                                                         \
                        cr_skip_test("needs root to run clients as uids 61001-61003 "     \
                                     "(setresuid); run the tests as root");                \
        } while (0)

#define CHILD_CHECK(cond, ...)                                                              \
        do {                                                                                \
                if (!(cond)) {                                                              \
                        fprintf(stderr, "[uid %u] %s:%d: check failed: %s: ",               \
                                (unsigned)getuid(), __FILE__, __LINE__, #cond);             \
                        fprintf(stderr, __VA_ARGS__);                                       \
                        fputc('\n', stderr);                                                \
                        return 1;                                                           \
                }                                                                           \
        } while (0)

static inline int drop_to(uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups) {
        if (setgroups(ngroups, groups) < 0 || setresgid(gid, gid, gid) < 0 ||
            setresuid(uid, uid, uid) < 0)
                return -errno;
        return 0;
}

/* Run fn(arg) as uid (primary group = uid; GID_SHARED too if shared) and
 * return its exit status (0: all checks passed). */
static inline int run_as(uid_t uid, bool shared, int (*fn)(void *), void *arg) {
        gid_t g = GID_SHARED;
        int status = 0;
        pid_t pid = test_fork();

        if (pid == 0) {
                if (uid != 0 && drop_to(uid, uid, shared ? &g : NULL, shared ? 1 : 0) < 0) {
                        fprintf(stderr, "cannot become uid %u: %s\n", (unsigned)uid, strerror(errno));
                        _exit(2);
                }
                /* setresuid cleared the parent-death signal test_fork set */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                fflush(NULL);
                _exit(fn(arg));
        }
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#define RUN_AS(uid, shared, fn, arg)                                                        \
        cr_assert_eq(run_as((uid), (shared), (fn), (arg)), 0, "%s as uid %u failed", #fn,    \
                     (unsigned)(uid))
