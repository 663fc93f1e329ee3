/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* shim.c: the core of libipcbroker-preload.so: configuration from the
 * environment (read once, at load), the process's broker connection (made
 * on the first call that needs it; a forked child makes its own), the
 * routing of each call, errno mapping, and the C library's own functions. */
#include "shim.h"

#include <dlfcn.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

shim_config shim_cfg = { .prefix = SHIM_PREFIX_DEFAULT, .sysv = true };
pthread_mutex_t shim_lock = PTHREAD_MUTEX_INITIALIZER;
unsigned shim_fork_gen;

/* The connection: state NONE (not tried yet), UP (client), DOWN (the first
 * try failed: fallback policy applies for good). */
static enum { CONN_NONE, CONN_UP, CONN_DOWN } conn_state;
static ipcb_client *conn;
static int conn_err; /* positive errno of the failed connect */

static bool prefix_ok(const char *p) {
        if (p[0] == '.')
                return false;
        for (; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                      (*p >= '0' && *p <= '9') || strchr("._:@+-", *p)))
                        return false;
        return true;
}

static void atfork_prepare(void) {
        pthread_mutex_lock(&shim_lock);
}

static void atfork_parent(void) {
        pthread_mutex_unlock(&shim_lock);
}

/* The child must not use its parent's connection (ipcbroker.h): it is left
 * as it is (its socket stays open until the child execs or exits, so the
 * parent's transient objects live while such a child does) and the child
 * connects anew on its first call. */
static void atfork_child(void) {
        conn = NULL;
        conn_state = CONN_NONE;
        shim_fork_gen++;
        pthread_mutex_unlock(&shim_lock);
}

/* --no-inherit: take the shim out of LD_PRELOAD, so that programs this
 * one execs run without it (this process keeps it). */
static void drop_from_ld_preload(void) {
        const char *v = getenv("LD_PRELOAD");
        char *out, *copy, *tok, *save = NULL;
        size_t o = 0;

        if (!v || !(copy = strdup(v)))
                return;
        if (!(out = calloc(1, strlen(v) + 1))) {
                free(copy);
                return;
        }
        for (tok = strtok_r(copy, ": ", &save); tok; tok = strtok_r(NULL, ": ", &save)) {
                const char *base = strrchr(tok, '/');
                if (strcmp(base ? base + 1 : tok, "libipcbroker-preload.so") == 0)
                        continue;
                o += (size_t)sprintf(out + o, "%s%s", o ? ":" : "", tok);
        }
        if (o)
                setenv("LD_PRELOAD", out, 1);
        else
                unsetenv("LD_PRELOAD");
        free(out);
        free(copy);
}

static void shim_init_once(void) {
        const char *v;

        if ((v = getenv(SHIM_ENV_PREFIX)) && strlen(v) <= SHIM_PREFIX_MAX && prefix_ok(v))
                snprintf(shim_cfg.prefix, sizeof(shim_cfg.prefix), "%s", v);
        else if (v)
                fprintf(stderr, "libipcbroker-preload: ignoring bad %s=%s\n", SHIM_ENV_PREFIX, v);
        shim_cfg.transient = (v = getenv(SHIM_ENV_TRANSIENT)) && strcmp(v, "1") == 0;
        shim_cfg.sysv = !((v = getenv(SHIM_ENV_SYSV)) && strcmp(v, "0") == 0);
        shim_cfg.fallback = (v = getenv(SHIM_ENV_FALLBACK)) && strcmp(v, "kernel") == 0
                                    ? SHIM_FALLBACK_KERNEL
                                    : SHIM_FALLBACK_FAIL;
        if ((v = getenv(SHIM_ENV_EXCLUDE)) && *v)
                shim_cfg.exclude = strdup(v);
        if ((v = getenv("IPCBROKER_PRELOAD_INHERIT")) && strcmp(v, "0") == 0)
                drop_from_ld_preload();
        pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* At load; and from the first call, should another library's constructor
 * call one of ours before our own constructor ran. */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

__attribute__((constructor)) static void shim_init(void) {
        pthread_once(&init_once, shim_init_once);
}

static bool excluded(const char *what) {
        const char *p = shim_cfg.exclude;
        char pat[512];

        if (!what || !p)
                return false;
        while (*p) {
                size_t n = strcspn(p, ":");
                if (n > 0 && n < sizeof(pat)) {
                        memcpy(pat, p, n);
                        pat[n] = '\0';
                        if (fnmatch(pat, what, 0) == 0)
                                return true;
                }
                p += n;
                if (*p == ':')
                        p++;
        }
        return false;
}

shim_route shim_route_call(const char *what, ipcb_client **ret_client, int *ret_err) {
        int r;

        shim_init();
        if (excluded(what))
                return SHIM_PASS;
        if (conn_state == CONN_NONE) {
                /* The library reads $IPCBROKER_SOCKET itself. */
                r = ipcb_connect(NULL, &conn);
                if (r == 0) {
                        conn_state = CONN_UP;
                } else {
                        conn_state = CONN_DOWN;
                        conn_err = -r;
                }
        }
        if (conn_state == CONN_UP) {
                *ret_client = conn;
                return SHIM_SERVE;
        }
        if (shim_cfg.fallback == SHIM_FALLBACK_KERNEL)
                return SHIM_PASS;
        (void)conn_err;
        *ret_err = ENOTCONN;
        return SHIM_FAIL;
}

int shim_fail(int r) {
        switch (r) {
        case -EDQUOT:
                errno = ENOSPC;
                break;
        default:
                errno = r < 0 ? -r : EIO;
        }
        return -1;
}

mode_t shim_umask(void) {
        char line[128];
        unsigned m;
        mode_t old;
        FILE *f;

        if ((f = fopen("/proc/self/status", "re"))) {
                while (fgets(line, sizeof(line), f))
                        if (sscanf(line, "Umask: %o", &m) == 1) {
                                fclose(f);
                                return (mode_t)m;
                        }
                fclose(f);
        }
        old = umask(022); /* no /proc: the old way (racy with other threads) */
        umask(old);
        return old;
}

void *shim_next(const char *symbol) {
        return dlsym(RTLD_NEXT, symbol);
}
