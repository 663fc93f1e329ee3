/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ctlrun.h: run the real ipcbrokerctl (IPCBROKERCTL_PATH) from a Criterion
 * test against a daemon's socket, and check what it did.  The environment
 * is the test's without $IPCBROKER_SOCKET, unless VIA_ENV sets it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct ctl_result {
        int status; /* exit status, or 128 + signal */
        char *out, *err;
        size_t out_len, err_len;
} ctl_result;

/* How the socket is given: --socket SOCK first, $IPCBROKER_SOCKET, or not
 * at all (args carry it). */
enum { VIA_OPTION, VIA_ENV, NO_SOCKET };

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* Run ipcbrokerctl with args (NULL-terminated), feeding in on stdin; waits
 * for its exit (10 s, else the test fails).  out and err are
 * NUL-terminated. */
void ctlrun(ctl_result *r, const char *sock, int how, const void *in, size_t in_len,
            const char *const *args);
void result_free(ctl_result *r);

/* Start ipcbrokerctl --socket SOCK args in the background, stdout and
 * stderr on one pipe: *ret_fd (non-blocking, the caller closes it). */
pid_t ctlrun_spawn(const char *sock, const char *const *args, int *ret_fd);
/* Read from fd into *buf (NUL-terminated, grown as needed) until it
 * contains what, or timeout_ms passes: true if it does. */
bool ctlrun_wait_output(int fd, char **buf, size_t *len, const char *what, int timeout_ms);

unsigned count_lines(const char *s, size_t len);
/* Success: exit 0, nothing on stderr. */
void expect_ok(const ctl_result *r, const char *what);
/* Failure: exit want (-1: any non-zero), "ipcbrokerctl..." on stderr: one
 * line for a failure, the message and the usage (3 lines) for exit 2. */
void expect_fail(const ctl_result *r, int want, const char *what);
