/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* log.c: stderr logging, journald-friendly; see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

bool log_verbose;
static bool log_journal;

void log_init(void) {
        log_journal = getenv("JOURNAL_STREAM") != NULL;
}

void log_msg(int prio, const char *fmt, ...) {
        static const char *const words[8] = {
                "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
        };
        char line[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        prio &= 7;
        if (log_journal)
                fprintf(stderr, "<%d>%s\n", prio, line);
        else
                fprintf(stderr, "ipcbrokerd: %s: %s\n", words[prio], line);
}

static long long now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool log_ratelimit_ok(log_ratelimit *rl, unsigned burst) {
        long long now = now_ms();

        if (now - rl->window_start_ms >= 1000) {
                if (rl->suppressed)
                        log_msg(5, "%u similar messages suppressed", rl->suppressed);
                rl->window_start_ms = now;
                rl->count = 0;
                rl->suppressed = 0;
        }
        if (rl->count < burst) {
                rl->count++;
                return true;
        }
        rl->suppressed++;
        return false;
}
