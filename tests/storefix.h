/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* storefix.h: the fixture of suites that restart a daemon under the fake
 * service manager (tests/fakemgr.h) and check what it takes back: one
 * daemon at a time, adopted into the harness fixture (harness.h) on its
 * first start, each stop requiring exit status 0. */
#pragma once

#include "fakemgr.h"
#include "harness.h"

#include <stdbool.h>

typedef struct storefix {
        fakemgr m;
        ipcbd d;
        char sock[96], log[96]; /* the daemon's socket and log, in m.dir */
} storefix;

/* For .init: a manager directory from dir_template (mkdtemp), made
 * reachable by clients of other uids when other_uids. */
void storefix_setup(storefix *f, const char *dir_template, bool other_uids);
/* Start the daemon under the manager with these arguments. */
void storefix_start(storefix *f, const char *const *args);
/* Stop it (SIGTERM through the manager), asserting a clean exit. */
void storefix_stop(storefix *f);
/* The suite's release(): close the manager's copies of stored fds. */
void storefix_release(storefix *f);
/* For .fini: kill a daemon still running, clean everything up. */
void storefix_teardown(storefix *f);
