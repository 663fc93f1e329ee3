/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* log.h: the daemon's logging to stderr.  Under journald ($JOURNAL_STREAM set)
 * each line carries a <N> priority prefix (sd-daemon.h), otherwise a plain
 * level word.  Debug lines appear only with --verbose. */
#pragma once

#include <stdbool.h>

extern bool log_verbose;

void log_init(void);
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* At most `burst` lines per second from one call site's bucket. */
typedef struct log_ratelimit {
        long long window_start_ms;
        unsigned count;
        unsigned suppressed;
} log_ratelimit;
bool log_ratelimit_ok(log_ratelimit *rl, unsigned burst);

/* For every line a client can cause: at most 10 a second from each call
 * site (then one "suppressed" line), so that no client floods the log or
 * stalls the loop on a slow log stream. */
#define log_limited(prio, ...)                                                    \
        do {                                                                      \
                static log_ratelimit rl_;                                         \
                if ((prio) < 7 || log_verbose)                                    \
                        if (log_ratelimit_ok(&rl_, 10))                           \
                                log_msg(prio, __VA_ARGS__);                       \
        } while (0)
#define log_client_warn(...)  log_limited(4, __VA_ARGS__)
#define log_client_info(...)  log_limited(6, __VA_ARGS__)
#define log_client_debug(...) log_limited(7, __VA_ARGS__)

#define log_err(...)   log_msg(3, __VA_ARGS__)
#define log_warn(...)  log_msg(4, __VA_ARGS__)
#define log_info(...)  log_msg(6, __VA_ARGS__)
#define log_debug(...) do { if (log_verbose) log_msg(7, __VA_ARGS__); } while (0)
