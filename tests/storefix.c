/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* storefix.c: see storefix.h. */
#include "storefix.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void storefix_setup(storefix *f, const char *dir_template, bool other_uids) {
        fixture_begin_bare(&f->d);
        fakemgr_init(&f->m, dir_template, 4096); /* store_handles: 2000 semaphores */
        if (other_uids)
                cr_assert_eq(chmod(f->m.dir, 0755), 0);
        snprintf(f->sock, sizeof(f->sock), "%s/ipcb.sock", f->m.dir);
        snprintf(f->log, sizeof(f->log), "%s/log", f->m.dir);
}

void storefix_start(storefix *f, const char *const *args) {
        fakemgr_exec x = { .sock = f->sock, .args = args, .log = f->log };
        pid_t pid = fakemgr_start(&f->m, &x);

        if (f->d.base_fds == 0)
                fixture_adopt(&f->d, pid, f->sock);
        else
                f->d.pid = pid;
}

void storefix_stop(storefix *f) {
        int status;

        if (f->m.pid <= 0)
                return;
        status = fakemgr_stop(&f->m);
        f->d.pid = 0;
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "daemon exit status 0x%x", status);
}

void storefix_release(storefix *f) {
        fakemgr_close(&f->m);
}

void storefix_teardown(storefix *f) {
        if (f->m.pid > 0) {
                kill(f->m.pid, SIGKILL);
                waitpid(f->m.pid, NULL, 0);
                f->m.pid = 0;
                f->d.pid = 0;
        }
        storefix_release(f);
        fixture_cleanup(&f->d);
        unlink(f->sock);
        unlink(f->log);
        fakemgr_destroy(&f->m);
}
