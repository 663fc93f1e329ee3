/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ctl_watch.c: ipcbrokerctl list and watch: fetching the broker's list,
 * filtered by kind and by a glob on names (fnmatch), printing it, and
 * polling it for objects created and unlinked until interrupted. */
#include "ctl.h"

#include <errno.h>
#include <fnmatch.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct info_vec {
        ipcb_object_info *v;
        size_t n, cap;
        const char *pattern; /* NULL: every name */
} info_vec;

static int collect(const ipcb_object_info *info, void *userdata) {
        info_vec *iv = userdata;

        if (iv->pattern && fnmatch(iv->pattern, info->name, 0) != 0)
                return 0;
        if (iv->n == iv->cap) {
                size_t cap = iv->cap ? iv->cap * 2 : 64;
                ipcb_object_info *v = realloc(iv->v, cap * sizeof(*v));
                if (!v)
                        return -ENOMEM;
                iv->v = v;
                iv->cap = cap;
        }
        iv->v[iv->n++] = *info;
        return 0;
}

/* --shm, --sem (both: every kind). */
static int kind_filter(const ctl_args *a) {
        bool shm = ctl_flag(a, "shm"), sem = ctl_flag(a, "sem");
        return shm == sem ? 0 : shm ? IPCB_KIND_SHM : IPCB_KIND_SEM;
}

/* HOLDERS for every object listed: one request each, by name.  An
 * unlinked object has no name to ask by, nor one whose name now leads to
 * another object (total -1); one gone meanwhile has none left (0). */
static int fetch_holders(ipcb_client *c, const info_vec *iv, ctl_holders **ret) {
        ctl_holders *h = calloc(iv->n ? iv->n : 1, sizeof(*h));
        ipcb_holder buf[256];
        uint64_t id;
        int r = 0;

        if (!h)
                return -ENOMEM;
        for (size_t i = 0; i < iv->n && r >= 0; i++) {
                const ipcb_object_info *o = &iv->v[i];
                h[i].total = -1;
                if (o->flags & IPCB_OBJ_UNLINKED)
                        continue;
                r = ipcb_holders(c, o->kind, o->name, buf, 256, &id);
                if (r == -ENOENT) { /* gone meanwhile */
                        h[i].total = 0;
                        r = 0;
                        continue;
                }
                if (r == -EACCES) { /* not readable by us: not ours to know ("?") */
                        r = 0;
                        continue;
                }
                if (r < 0)
                        break;
                if (id != o->id) /* a namesake, created since: not this one's */
                        continue;
                h[i].total = r;
                h[i].n = (unsigned)(r < 256 ? r : 256);
                if (h[i].n && !(h[i].v = malloc(h[i].n * sizeof(*buf))))
                        r = -ENOMEM;
                else if (h[i].n)
                        memcpy(h[i].v, buf, h[i].n * sizeof(*buf));
        }
        *ret = h;
        return r < 0 ? r : 0;
}

static void holders_free(ctl_holders *h, size_t n) {
        for (size_t i = 0; h && i < n; i++)
                free(h[i].v);
        free(h);
}

int ctl_cmd_list(const ctl_args *a) {
        info_vec iv = { .pattern = a->argc ? a->argv[0] : NULL };
        ctl_holders *h = NULL;
        ipcb_client *c;
        int r;

        if (!(c = ctl_connect()))
                return CTL_EXIT_FAIL;
        r = ipcb_list(c, kind_filter(a), collect, &iv);
        if (r >= 0 && ctl_flag(a, "holders"))
                r = fetch_holders(c, &iv, &h);
        ipcb_disconnect(c);
        if (r < 0) {
                holders_free(h, iv.n);
                free(iv.v);
                return ctl_fail(r == -EOPNOTSUPP ? "list --holders" : "list", r);
        }
        if (ctl_flag(a, "json")) {
                putchar('[');
                for (size_t k = 0; k < iv.n; k++) {
                        if (k)
                                putchar(',');
                        ctl_json_object(stdout, &iv.v[k], h ? &h[k] : NULL);
                }
                printf("]\n");
        } else
                ctl_print_table(stdout, iv.v, h, iv.n, ctl_flag(a, "bytes"));
        holders_free(h, iv.n);
        free(iv.v);
        return ctl_finish_stdout();
}

/* ---- watch ---- */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
        (void)sig;
        interrupted = 1;
}

static bool linked(const ipcb_object_info *o) {
        return !(o->flags & IPCB_OBJ_UNLINKED);
}

static void event(const char *what, const ipcb_object_info *o) {
        char esc[CTL_ESC_MAX];
        printf("%s %s %s\n", what, ctl_kind_name(o->kind), ctl_escape(o->name, esc, sizeof(esc)));
}

/* Both lists are in id order (the broker lists in creation order): one
 * merge finds what appeared and what lost its name or went away. */
static void diff(const info_vec *old, const info_vec *now) {
        size_t i = 0, j = 0;

        while (i < old->n || j < now->n) {
                const ipcb_object_info *o = i < old->n ? &old->v[i] : NULL;
                const ipcb_object_info *n = j < now->n ? &now->v[j] : NULL;
                if (o && (!n || o->id < n->id)) { /* gone */
                        if (linked(o))
                                event("unlinked", o);
                        i++;
                } else if (n && (!o || n->id < o->id)) { /* new */
                        if (linked(n))
                                event("created", n);
                        j++;
                } else { /* the same object */
                        if (linked(o) && !linked(n))
                                event("unlinked", n);
                        i++;
                        j++;
                }
        }
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
        /* A signal ends the sleep early (no SA_RESTART). */
        nanosleep(&ts, NULL);
}

int ctl_cmd_watch(const ctl_args *a) {
        const char *interval_arg = ctl_opt_value(a, "interval");
        const char *pattern = a->argc ? a->argv[0] : NULL;
        info_vec old = { .pattern = pattern }, now = { .pattern = pattern };
        struct sigaction sa = { .sa_handler = on_signal };
        unsigned interval = 1000;
        int kind = kind_filter(a), r = 0;
        ipcb_client *c;

        if (interval_arg && (ctl_parse_uint(interval_arg, 3600000, &interval) < 0 || interval < 10))
                return ctl_usage_error(a->cmd, "invalid interval '%s': milliseconds, 10..3600000",
                                       interval_arg);
        if (!(c = ctl_connect()))
                return CTL_EXIT_FAIL;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        r = ipcb_list(c, kind, collect, &old);
        while (r >= 0 && !interrupted) {
                sleep_ms(interval);
                if (interrupted)
                        break;
                now.n = 0;
                if ((r = ipcb_list(c, kind, collect, &now)) < 0)
                        break;
                diff(&old, &now);
                if (fflush(stdout) != 0) {
                        r = -(errno ? errno : EIO);
                        break;
                }
                info_vec t = old;
                old = now;
                now = t;
        }
        ipcb_disconnect(c);
        free(old.v);
        free(now.v);
        if (r < 0)
                return ctl_fail("watch", r);
        return ctl_finish_stdout();
}
