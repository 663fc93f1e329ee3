/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ctl.c: ipcbrokerctl, the command-line client.  Owns argument parsing, the
 * command table and output formatting (table, "key: value", JSON); every
 * broker operation goes through libipcbroker.  Exit status: 0 success,
 * 1 failure (one line on stderr), 2 usage error. */
#include "ipcbroker.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef F_SEAL_SEAL
#define F_SEAL_SEAL 0x0001
#endif
#ifndef F_SEAL_SHRINK
#define F_SEAL_SHRINK 0x0002
#endif
#ifndef F_SEAL_GROW
#define F_SEAL_GROW 0x0004
#endif
#ifndef F_SEAL_WRITE
#define F_SEAL_WRITE 0x0008
#endif
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

#define PROG "ipcbrokerctl"

enum { EXIT_USAGE = 2 };

static const char *arg_socket; /* NULL: the library's default */
static int arg_broker = IPCB_BROKER_DEFAULT; /* --system, --user (--socket wins) */

/* ---- helpers ---- */

__attribute__((format(printf, 1, 2)))
static void usage_error(const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, PROG ": ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, " (see '" PROG " --help')\n");
}

/* "ipcbrokerctl: create foo: File exists" */
static int fail(const char *cmd, const char *what, int err) {
        if (what)
                fprintf(stderr, PROG ": %s %s: %s\n", cmd, what, ipcb_strerror(err));
        else
                fprintf(stderr, PROG ": %s: %s\n", cmd, ipcb_strerror(err));
        return EXIT_FAILURE;
}

static ipcb_client *ctl_connect(void) {
        ipcb_client *c;
        char msg[512];
        int r = arg_socket || arg_broker == IPCB_BROKER_DEFAULT ? ipcb_connect(arg_socket, &c)
                : arg_broker == IPCB_BROKER_SYSTEM              ? ipcb_connect_system(&c)
                                                                : ipcb_connect_user(&c);

        if (r < 0) {
                fprintf(stderr, PROG ": %s\n",
                        ipcb_connect_error(r, arg_socket, arg_broker, msg, sizeof(msg)));
                return NULL;
        }
        return c;
}

/* Flush stdout and report a failed write (full disk, closed pipe). */
static int finish_stdout(void) {
        if (fflush(stdout) != 0 || ferror(stdout))
                return fail("write", "stdout", -(errno ? errno : EIO));
        return EXIT_SUCCESS;
}

/* SIZE: plain bytes, or with a K, M or G suffix (powers of 1024). */
static int parse_size(const char *s, size_t *ret) {
        unsigned long long v, mul = 1;
        char *end;

        if (*s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno)
                return -errno;
        switch (*end) {
        case '\0': break;
        case 'k': case 'K': mul = 1ull << 10; end++; break;
        case 'm': case 'M': mul = 1ull << 20; end++; break;
        case 'g': case 'G': mul = 1ull << 30; end++; break;
        default: return -EINVAL;
        }
        if (*end)
                return -EINVAL;
        if (v > SIZE_MAX / mul)
                return -ERANGE;
        *ret = (size_t)(v * mul);
        return 0;
}

static int parse_mode(const char *s, unsigned *ret) {
        unsigned long v;
        char *end;

        if (*s < '0' || *s > '7')
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 8);
        if (errno || *end || v > 0777)
                return -EINVAL;
        *ret = (unsigned)v;
        return 0;
}

/* A decimal number in 0..max. */
static int parse_uint(const char *s, unsigned long max, unsigned *ret) {
        unsigned long v;
        char *end;

        if (*s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || *end || v > max)
                return -EINVAL;
        *ret = (unsigned)v;
        return 0;
}

static const char *kind_name(int kind) {
        switch (kind) {
        case IPCB_KIND_SHM: return "shm";
        case IPCB_KIND_SEM: return "sem";
        default: return "?";
        }
}

static const struct {
        unsigned bit;
        const char *name;
} seal_names[] = {
        { F_SEAL_SEAL, "seal" },   { F_SEAL_SHRINK, "shrink" },
        { F_SEAL_GROW, "grow" },   { F_SEAL_WRITE, "write" },
        { F_SEAL_FUTURE_WRITE, "future_write" }, { F_SEAL_EXEC, "exec" },
};

/* "shrink,grow", or "-" when there are none. */
static void seals_str(unsigned seals, char *buf, size_t cap) {
        size_t n = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < sizeof(seal_names) / sizeof(seal_names[0]); i++)
                if (seals & seal_names[i].bit)
                        n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? "," : "",
                                              seal_names[i].name);
        if (n == 0)
                snprintf(buf, cap, "-");
}

/* "user:group", numbers for whatever does not resolve. */
static void owner_str(uid_t uid, gid_t gid, char *buf, size_t cap) {
        char tmp[4096], u[64], g[64];
        struct passwd pw, *pwp = NULL;
        struct group gr, *grp = NULL;

        if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &pwp) == 0 && pwp)
                snprintf(u, sizeof(u), "%s", pwp->pw_name);
        else
                snprintf(u, sizeof(u), "%u", (unsigned)uid);
        if (getgrgid_r(gid, &gr, tmp, sizeof(tmp), &grp) == 0 && grp)
                snprintf(g, sizeof(g), "%s", grp->gr_name);
        else
                snprintf(g, sizeof(g), "%u", (unsigned)gid);
        snprintf(buf, cap, "%s:%s", u, g);
}

static void json_string(const char *s) {
        putchar('"');
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p == '"' || *p == '\\')
                        printf("\\%c", *p);
                else if (*p < 0x20 || *p >= 0x7f)
                        printf("\\u%04x", *p);
                else
                        putchar(*p);
        }
        putchar('"');
}

static void json_object(const ipcb_object_info *o) {
        bool first = true;

        printf("{\"kind\":\"%s\",\"name\":", kind_name(o->kind));
        json_string(o->name);
        printf(",\"id\":%" PRIu64 ",\"size\":%" PRIu64 ",\"uid\":%u,\"gid\":%u,\"mode\":%u,"
               "\"seals\":[",
               o->id, o->size, (unsigned)o->uid, (unsigned)o->gid, o->mode);
        for (size_t i = 0; i < sizeof(seal_names) / sizeof(seal_names[0]); i++)
                if (o->seals & seal_names[i].bit) {
                        printf("%s\"%s\"", first ? "" : ",", seal_names[i].name);
                        first = false;
                }
        printf("],\"handles\":%u,\"persistent\":%s,\"unlinked\":%s",
               o->handles, o->flags & IPCB_SHM_PERSISTENT ? "true" : "false",
               o->flags & IPCB_OBJ_UNLINKED ? "true" : "false");
        if (o->kind == IPCB_KIND_SEM)
                printf(",\"value\":%u,\"max\":%u,\"undo_held\":%u", o->sem_value, o->sem_max,
                       o->sem_undo_held);
        putchar('}');
}

/* Parse a command's options; returns the index of its first positional
 * argument in argv, or -1 after a usage error.  Every command also takes
 * --socket, so that it may follow the command. */
typedef struct opt_spec {
        const char *name;
        int has_arg;
        const char **value; /* for options with an argument */
        bool *flag;         /* for options without */
} opt_spec;

static int parse_opts(int argc, char **argv, const opt_spec *specs, int nspecs) {
        struct option longopts[16];
        int n = 0, k;

        for (int i = 0; i < nspecs && n < 14; i++)
                longopts[n++] = (struct option){ specs[i].name, specs[i].has_arg, NULL, 'A' + i };
        longopts[n++] = (struct option){ "socket", required_argument, NULL, 's' };
        longopts[n] = (struct option){ 0 };

        optind = 0; /* GNU: reinitialise; argv[0] is the command */
        opterr = 0;
        while ((k = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
                if (k == 's')
                        arg_socket = optarg;
                else if (k >= 'A' && k < 'A' + nspecs) {
                        const opt_spec *sp = &specs[k - 'A'];
                        if (sp->value)
                                *sp->value = optarg;
                        if (sp->flag)
                                *sp->flag = true;
                } else if (k == ':') {
                        usage_error("%s: option requires an argument", argv[optind - 1]);
                        return -1;
                } else {
                        usage_error("%s: unknown option", argv[optind - 1]);
                        return -1;
                }
        }
        return optind;
}

/* Check the positional argument count of a command. */
static bool want_args(const char *cmd, int have, int want, const char *synopsis) {
        if (have == want)
                return true;
        fprintf(stderr, PROG ": usage: " PROG " %s %s\n", cmd, synopsis);
        return false;
}

/* ---- commands ---- */

typedef struct info_vec {
        ipcb_object_info *v;
        size_t n, cap;
} info_vec;

static int collect(const ipcb_object_info *info, void *userdata) {
        info_vec *iv = userdata;

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

/* One table row's computed cells.  A segment has no VALUE or UNDO; a
 * semaphore has no SIZE or SEALS worth showing (its page is the broker's
 * business). */
typedef struct row_cells {
        char name[IPCB_NAME_MAX + 16], size[32], value[32], undo[16], owner[160], seals[64];
} row_cells;

static void row_fill(const ipcb_object_info *o, row_cells *rc) {
        bool sem = o->kind == IPCB_KIND_SEM;

        snprintf(rc->name, sizeof(rc->name), "%s%s", o->name,
                 o->flags & IPCB_OBJ_UNLINKED ? " (unlinked)" : "");
        if (sem) {
                snprintf(rc->size, sizeof(rc->size), "-");
                snprintf(rc->value, sizeof(rc->value), "%u/%u", o->sem_value, o->sem_max);
                snprintf(rc->undo, sizeof(rc->undo), "%u", o->sem_undo_held);
                snprintf(rc->seals, sizeof(rc->seals), "-");
        } else {
                snprintf(rc->size, sizeof(rc->size), "%" PRIu64, o->size);
                snprintf(rc->value, sizeof(rc->value), "-");
                snprintf(rc->undo, sizeof(rc->undo), "-");
                seals_str(o->seals, rc->seals, sizeof(rc->seals));
        }
        owner_str(o->uid, o->gid, rc->owner, sizeof(rc->owner));
}

static int max_width(int w, const char *s) {
        int l = (int)strlen(s);
        return l > w ? l : w;
}

/* KIND NAME SIZE VALUE UNDO OWNER MODE SEALS HANDLES PERSISTENT, where
 * VALUE is "value/max" and UNDO the tokens undo handles hold. */
static void print_table(const info_vec *iv) {
        int wname = 4, wsize = 4, wvalue = 5, wundo = 4, wowner = 5, wseals = 5;
        row_cells rc;

        for (size_t i = 0; i < iv->n; i++) {
                row_fill(&iv->v[i], &rc);
                wname = max_width(wname, rc.name);
                wsize = max_width(wsize, rc.size);
                wvalue = max_width(wvalue, rc.value);
                wundo = max_width(wundo, rc.undo);
                wowner = max_width(wowner, rc.owner);
                wseals = max_width(wseals, rc.seals);
        }
        printf("%-4s  %-*s  %*s  %*s  %*s  %-*s  %-4s  %-*s  %7s  %s\n", "KIND", wname, "NAME",
               wsize, "SIZE", wvalue, "VALUE", wundo, "UNDO", wowner, "OWNER", "MODE", wseals,
               "SEALS", "HANDLES", "PERSISTENT");
        for (size_t i = 0; i < iv->n; i++) {
                const ipcb_object_info *o = &iv->v[i];
                row_fill(o, &rc);
                printf("%-4s  %-*s  %*s  %*s  %*s  %-*s  %04o  %-*s  %7u  %s\n",
                       kind_name(o->kind), wname, rc.name, wsize, rc.size, wvalue, rc.value,
                       wundo, rc.undo, wowner, rc.owner, o->mode, wseals, rc.seals, o->handles,
                       o->flags & IPCB_SHM_PERSISTENT ? "yes" : "no");
        }
}

static int cmd_list(int argc, char **argv) {
        bool json = false;
        const opt_spec specs[] = { { "json", no_argument, NULL, &json } };
        info_vec iv = { 0 };
        ipcb_client *c;
        int i, r;

        if ((i = parse_opts(argc, argv, specs, 1)) < 0)
                return EXIT_USAGE;
        if (!want_args("list", argc - i, 0, "[--json]"))
                return EXIT_USAGE;
        if (!(c = ctl_connect()))
                return EXIT_FAILURE;
        r = ipcb_list(c, 0, collect, &iv);
        ipcb_disconnect(c);
        if (r < 0) {
                free(iv.v);
                return fail("list", NULL, r);
        }
        if (json) {
                putchar('[');
                for (size_t k = 0; k < iv.n; k++) {
                        if (k)
                                putchar(',');
                        json_object(&iv.v[k]);
                }
                printf("]\n");
        } else
                print_table(&iv);
        free(iv.v);
        return finish_stdout();
}

static void print_stat(const ipcb_object_info *o) {
        char owner[160], seals[64];

        owner_str(o->uid, o->gid, owner, sizeof(owner));
        seals_str(o->seals, seals, sizeof(seals));
        printf("name: %s\nkind: %s\nid: %" PRIu64 "\n", o->name, kind_name(o->kind), o->id);
        if (o->kind == IPCB_KIND_SEM)
                printf("value: %u\nmax: %u\nundo_held: %u\n", o->sem_value, o->sem_max,
                       o->sem_undo_held);
        else
                printf("size: %" PRIu64 "\n", o->size);
        printf("owner: %s (uid %u, gid %u)\nmode: %04o\n", owner, (unsigned)o->uid,
               (unsigned)o->gid, o->mode);
        if (o->kind != IPCB_KIND_SEM)
                printf("seals: %s\n", seals);
        printf("handles: %u\npersistent: %s\n", o->handles,
               o->flags & IPCB_SHM_PERSISTENT ? "yes" : "no");
        if (o->kind != IPCB_KIND_SEM)
                printf("growable: %s\n", o->flags & IPCB_SHM_GROWABLE ? "yes" : "no");
        printf("unlinked: %s\n", o->flags & IPCB_OBJ_UNLINKED ? "yes" : "no");
}

/* A segment by default; a semaphore with --sem, or when no segment but a
 * semaphore has the name (segments win when both exist). */
static int cmd_stat(int argc, char **argv) {
        bool json = false, sem = false;
        const opt_spec specs[] = {
                { "json", no_argument, NULL, &json },
                { "sem", no_argument, NULL, &sem },
        };
        ipcb_object_info o;
        ipcb_client *c;
        int i, r;

        if ((i = parse_opts(argc, argv, specs, 2)) < 0)
                return EXIT_USAGE;
        if (!want_args("stat", argc - i, 1, "NAME [--sem] [--json]"))
                return EXIT_USAGE;
        if (!(c = ctl_connect()))
                return EXIT_FAILURE;
        r = ipcb_stat(c, sem ? IPCB_KIND_SEM : IPCB_KIND_SHM, argv[i], &o);
        if (r == -ENOENT && !sem && ipcb_stat(c, IPCB_KIND_SEM, argv[i], &o) == 0)
                r = 0;
        ipcb_disconnect(c);
        if (r < 0)
                return fail("stat", argv[i], r);
        if (json) {
                json_object(&o);
                putchar('\n');
        } else
                print_stat(&o);
        return finish_stdout();
}

/* Always persistent: a transient segment would vanish when we exit. */
static int cmd_create(int argc, char **argv) {
        const char *mode_arg = NULL;
        bool persistent = false, growable = false;
        const opt_spec specs[] = {
                { "mode", required_argument, &mode_arg, NULL },
                { "persistent", no_argument, NULL, &persistent },
                { "growable", no_argument, NULL, &growable },
        };
        ipcb_shm_options opts = IPCB_SHM_OPTIONS_INIT;
        ipcb_client *c;
        ipcb_shm *s;
        size_t size = 0;
        int i, r;

        if ((i = parse_opts(argc, argv, specs, 3)) < 0)
                return EXIT_USAGE;
        if (!want_args("create", argc - i, 2, "NAME SIZE [--mode M] [--growable]"))
                return EXIT_USAGE;
        if (parse_size(argv[i + 1], &size) < 0) {
                usage_error("invalid size '%s'", argv[i + 1]);
                return EXIT_USAGE;
        }
        if (mode_arg && parse_mode(mode_arg, &opts.mode) < 0) {
                usage_error("invalid mode '%s' (octal, at most 0777)", mode_arg);
                return EXIT_USAGE;
        }
        opts.flags = IPCB_SHM_PERSISTENT | (growable ? IPCB_SHM_GROWABLE : 0);
        if (!(c = ctl_connect()))
                return EXIT_FAILURE;
        r = ipcb_shm_create(c, argv[i], size, &opts, &s);
        if (r >= 0)
                r = ipcb_shm_close(s);
        ipcb_disconnect(c);
        if (r < 0)
                return fail("create", argv[i], r);
        return EXIT_SUCCESS;
}

static int cmd_rm(int argc, char **argv) {
        ipcb_client *c;
        int i, r;

        if ((i = parse_opts(argc, argv, NULL, 0)) < 0)
                return EXIT_USAGE;
        if (!want_args("rm", argc - i, 1, "NAME"))
                return EXIT_USAGE;
        if (!(c = ctl_connect()))
                return EXIT_FAILURE;
        r = ipcb_unlink(c, argv[i]);
        ipcb_disconnect(c);
        if (r < 0)
                return fail("rm", argv[i], r);
        return EXIT_SUCCESS;
}

static int cmd_cat(int argc, char **argv) {
        ipcb_client *c;
        ipcb_shm *s;
        const char *p;
        size_t left;
        int i, r;

        if ((i = parse_opts(argc, argv, NULL, 0)) < 0)
                return EXIT_USAGE;
        if (!want_args("cat", argc - i, 1, "NAME"))
                return EXIT_USAGE;
        if (!(c = ctl_connect()))
                return EXIT_FAILURE;
        r = ipcb_shm_open(c, argv[i], IPCB_READ_ONLY, &s);
        if (r < 0) {
                ipcb_disconnect(c);
                return fail("cat", argv[i], r);
        }
        p = ipcb_shm_data(s);
        left = ipcb_shm_size(s);
        while (left > 0) {
                ssize_t n = write(STDOUT_FILENO, p, left);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = -errno;
                        break;
                }
                p += n;
                left -= (size_t)n;
        }
        ipcb_shm_close(s);
        ipcb_disconnect(c);
        if (r < 0)
                return fail("cat", "stdout", r);
        return EXIT_SUCCESS;
}

/* Fill the segment from stdin.  Returns bytes copied, or a negative errno;
 * *ret_more tells whether input remained once the segment was full. */
static ssize_t copy_stdin(char *dst, size_t size, bool *ret_more) {
        size_t off = 0;
        char probe;
        ssize_t n;

        while (off < size) {
                n = read(STDIN_FILENO, dst + off, size - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0) {
                        *ret_more = false;
                        return (ssize_t)off;
                }
                off += (size_t)n;
        }
        do
                n = read(STDIN_FILENO, &probe, 1);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        *ret_more = n > 0;
        return (ssize_t)off;
}

static int cmd_write(int argc, char **argv) {
        ipcb_client *c;
        ipcb_shm *s;
        bool more = false;
        ssize_t n;
        int i, r;

        if ((i = parse_opts(argc, argv, NULL, 0)) < 0)
                return EXIT_USAGE;
        if (!want_args("write", argc - i, 1, "NAME"))
                return EXIT_USAGE;
        if (!(c = ctl_connect()))
                return EXIT_FAILURE;
        r = ipcb_shm_open(c, argv[i], IPCB_READ_WRITE, &s);
        if (r < 0) {
                ipcb_disconnect(c);
                return fail("write", argv[i], r);
        }
        n = copy_stdin(ipcb_shm_data(s), ipcb_shm_size(s), &more);
        size_t size = ipcb_shm_size(s);
        ipcb_shm_close(s);
        ipcb_disconnect(c);
        if (n < 0)
                return fail("write", "stdin", (int)n);
        if (more) {
                fprintf(stderr, PROG ": write %s: input larger than segment (%zu bytes)\n",
                        argv[i], size);
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}

/* ---- semaphores ---- */

/* Always persistent, like create: a transient semaphore would vanish when
 * we exit. */
static int cmd_sem_create(int argc, char **argv) {
        const char *mode_arg = NULL, *max_arg = NULL;
        bool persistent = false;
        const opt_spec specs[] = {
                { "mode", required_argument, &mode_arg, NULL },
                { "max", required_argument, &max_arg, NULL },
                { "persistent", no_argument, NULL, &persistent },
        };
        ipcb_sem_options opts = IPCB_SEM_OPTIONS_INIT;
        unsigned initial = 0;
        ipcb_client *c;
        ipcb_sem *s;
        int i, r;

        if ((i = parse_opts(argc, argv, specs, 3)) < 0)
                return EXIT_USAGE;
        if (argc - i != 1 && argc - i != 2) {
                fprintf(stderr, PROG ": usage: " PROG " sem-create NAME [INITIAL] [--max N] "
                                "[--mode M]\n");
                return EXIT_USAGE;
        }
        opts.max = IPCB_SEM_VALUE_MAX;
        if (max_arg && (parse_uint(max_arg, IPCB_SEM_VALUE_MAX, &opts.max) < 0 || opts.max == 0)) {
                usage_error("invalid maximum '%s' (1..%d)", max_arg, IPCB_SEM_VALUE_MAX);
                return EXIT_USAGE;
        }
        if (argc - i == 2 && parse_uint(argv[i + 1], opts.max, &initial) < 0) {
                usage_error("invalid initial value '%s' (0..%u)", argv[i + 1], opts.max);
                return EXIT_USAGE;
        }
        if (mode_arg && parse_mode(mode_arg, &opts.mode) < 0) {
                usage_error("invalid mode '%s' (octal, at most 0777)", mode_arg);
                return EXIT_USAGE;
        }
        opts.flags = IPCB_SEM_PERSISTENT;
        if (!(c = ctl_connect()))
                return EXIT_FAILURE;
        r = ipcb_sem_create(c, argv[i], initial, &opts, &s);
        if (r >= 0)
                r = ipcb_sem_close(s);
        ipcb_disconnect(c);
        if (r < 0)
                return fail("sem-create", argv[i], r);
        return EXIT_SUCCESS;
}

static int cmd_sem_post(int argc, char **argv) {
        ipcb_object_info o;
        unsigned n = 1;
        ipcb_client *c;
        ipcb_sem *s;
        int i, r, value = -1;

        if ((i = parse_opts(argc, argv, NULL, 0)) < 0)
                return EXIT_USAGE;
        if (argc - i != 1 && argc - i != 2) {
                fprintf(stderr, PROG ": usage: " PROG " sem-post NAME [N]\n");
                return EXIT_USAGE;
        }
        if (argc - i == 2 && (parse_uint(argv[i + 1], IPCB_SEM_VALUE_MAX, &n) < 0 || n == 0)) {
                usage_error("invalid count '%s' (1..%d)", argv[i + 1], IPCB_SEM_VALUE_MAX);
                return EXIT_USAGE;
        }
        if (!(c = ctl_connect()))
                return EXIT_FAILURE;
        r = ipcb_sem_open(c, argv[i], 0, &s);
        if (r >= 0) {
                r = ipcb_sem_release(s, n);
                if (r == -EOVERFLOW)
                        value = ipcb_sem_value(s);
                ipcb_sem_close(s);
        }
        /* For the message only: the count may have moved meanwhile. */
        if (r == -EOVERFLOW && value >= 0 && ipcb_stat(c, IPCB_KIND_SEM, argv[i], &o) == 0) {
                ipcb_disconnect(c);
                fprintf(stderr, PROG ": sem-post %s: %u more would exceed the maximum "
                                "(value %d, max %u)\n", argv[i], n, value, o.sem_max);
                return EXIT_FAILURE;
        }
        ipcb_disconnect(c);
        if (r == -EOVERFLOW) {
                fprintf(stderr, PROG ": sem-post %s: %u more would exceed the maximum\n",
                        argv[i], n);
                return EXIT_FAILURE;
        }
        if (r < 0)
                return fail("sem-post", argv[i], r);
        return EXIT_SUCCESS;
}

/* Through a plain handle, so the token stays taken when we exit (an undo
 * handle would give it back at once). */
static int cmd_sem_wait(int argc, char **argv) {
        const char *timeout_arg = NULL;
        const opt_spec specs[] = { { "timeout", required_argument, &timeout_arg, NULL } };
        unsigned timeout = 0;
        ipcb_client *c;
        ipcb_sem *s;
        int i, r;

        if ((i = parse_opts(argc, argv, specs, 1)) < 0)
                return EXIT_USAGE;
        if (!want_args("sem-wait", argc - i, 1, "NAME [--timeout MS]"))
                return EXIT_USAGE;
        if (timeout_arg && parse_uint(timeout_arg, INT_MAX, &timeout) < 0) {
                usage_error("invalid timeout '%s' (milliseconds, 0..%d)", timeout_arg, INT_MAX);
                return EXIT_USAGE;
        }
        if (!(c = ctl_connect()))
                return EXIT_FAILURE;
        r = ipcb_sem_open(c, argv[i], 0, &s);
        if (r >= 0) {
                r = ipcb_sem_try_acquire(s, timeout_arg ? (int)timeout : -1);
                ipcb_sem_close(s);
        }
        ipcb_disconnect(c);
        if (r == -EAGAIN || r == -ETIMEDOUT) {
                fprintf(stderr, PROG ": sem-wait %s: no token available", argv[i]);
                if (timeout > 0)
                        fprintf(stderr, " within %u ms", timeout);
                fputc('\n', stderr);
                return EXIT_FAILURE;
        }
        if (r < 0)
                return fail("sem-wait", argv[i], r);
        return EXIT_SUCCESS;
}

/* Read through STAT: needs no permission on the semaphore and no handle. */
static int cmd_sem_value(int argc, char **argv) {
        ipcb_object_info o;
        ipcb_client *c;
        int i, r;

        if ((i = parse_opts(argc, argv, NULL, 0)) < 0)
                return EXIT_USAGE;
        if (!want_args("sem-value", argc - i, 1, "NAME"))
                return EXIT_USAGE;
        if (!(c = ctl_connect()))
                return EXIT_FAILURE;
        r = ipcb_stat(c, IPCB_KIND_SEM, argv[i], &o);
        ipcb_disconnect(c);
        if (r < 0)
                return fail("sem-value", argv[i], r);
        printf("%u\n", o.sem_value);
        return finish_stdout();
}

static int cmd_sem_rm(int argc, char **argv) {
        ipcb_client *c;
        int i, r;

        if ((i = parse_opts(argc, argv, NULL, 0)) < 0)
                return EXIT_USAGE;
        if (!want_args("sem-rm", argc - i, 1, "NAME"))
                return EXIT_USAGE;
        if (!(c = ctl_connect()))
                return EXIT_FAILURE;
        r = ipcb_sem_unlink(c, argv[i]);
        ipcb_disconnect(c);
        if (r < 0)
                return fail("sem-rm", argv[i], r);
        return EXIT_SUCCESS;
}

/* ---- access control and publishing ---- */

static int kind_of(bool sem) {
        return sem ? IPCB_KIND_SEM : IPCB_KIND_SHM;
}

static int cmd_chmod(int argc, char **argv) {
        bool sem = false;
        const opt_spec specs[] = { { "sem", no_argument, NULL, &sem } };
        unsigned mode;
        ipcb_client *c;
        int i, r;

        if ((i = parse_opts(argc, argv, specs, 1)) < 0)
                return EXIT_USAGE;
        if (!want_args("chmod", argc - i, 2, "NAME MODE [--sem]"))
                return EXIT_USAGE;
        if (parse_mode(argv[i + 1], &mode) < 0) {
                usage_error("invalid mode '%s' (octal, at most 0777)", argv[i + 1]);
                return EXIT_USAGE;
        }
        if (!(c = ctl_connect()))
                return EXIT_FAILURE;
        r = ipcb_chmod(c, kind_of(sem), argv[i], mode);
        ipcb_disconnect(c);
        return r < 0 ? fail("chmod", argv[i], r) : EXIT_SUCCESS;
}

/* USER or number; GROUP or number. */
static int parse_owner(const char *s, uid_t *ret_uid, gid_t *ret_gid) {
        char buf[256], tmp[4096];
        char *colon;
        unsigned v;

        snprintf(buf, sizeof(buf), "%s", s);
        *ret_uid = (uid_t)-1;
        *ret_gid = (gid_t)-1;
        colon = strchr(buf, ':');
        if (colon)
                *colon++ = '\0';
        if (buf[0]) {
                struct passwd pw, *pwp = NULL;
                if (parse_uint(buf, UINT32_MAX - 1, &v) == 0)
                        *ret_uid = (uid_t)v;
                else if (getpwnam_r(buf, &pw, tmp, sizeof(tmp), &pwp) == 0 && pwp)
                        *ret_uid = pwp->pw_uid;
                else
                        return -EINVAL;
        }
        if (colon && *colon) {
                struct group gr, *grp = NULL;
                if (parse_uint(colon, UINT32_MAX - 1, &v) == 0)
                        *ret_gid = (gid_t)v;
                else if (getgrnam_r(colon, &gr, tmp, sizeof(tmp), &grp) == 0 && grp)
                        *ret_gid = grp->gr_gid;
                else
                        return -EINVAL;
        }
        return *ret_uid == (uid_t)-1 && *ret_gid == (gid_t)-1 ? -EINVAL : 0;
}

static int cmd_chown(int argc, char **argv) {
        bool sem = false;
        const opt_spec specs[] = { { "sem", no_argument, NULL, &sem } };
        ipcb_client *c;
        uid_t uid;
        gid_t gid;
        int i, r;

        if ((i = parse_opts(argc, argv, specs, 1)) < 0)
                return EXIT_USAGE;
        if (!want_args("chown", argc - i, 2, "NAME [USER][:GROUP] [--sem]"))
                return EXIT_USAGE;
        if (parse_owner(argv[i + 1], &uid, &gid) < 0) {
                usage_error("invalid owner '%s' (USER, USER:GROUP or :GROUP)", argv[i + 1]);
                return EXIT_USAGE;
        }
        if (!(c = ctl_connect()))
                return EXIT_FAILURE;
        r = ipcb_chown(c, kind_of(sem), argv[i], uid, gid);
        ipcb_disconnect(c);
        return r < 0 ? fail("chown", argv[i], r) : EXIT_SUCCESS;
}

static int cmd_freeze(int argc, char **argv) {
        ipcb_client *c;
        unsigned seals = 0;
        char buf[64];
        int i, r;

        if ((i = parse_opts(argc, argv, NULL, 0)) < 0)
                return EXIT_USAGE;
        if (!want_args("freeze", argc - i, 1, "NAME"))
                return EXIT_USAGE;
        if (!(c = ctl_connect()))
                return EXIT_FAILURE;
        r = ipcb_shm_freeze(c, argv[i], &seals);
        ipcb_disconnect(c);
        if (r < 0)
                return fail("freeze", argv[i], r);
        seals_str(seals, buf, sizeof(buf));
        printf("seals: %s\n", buf);
        return finish_stdout();
}

/* Copy FILE into a new memfd, seal it (shrink, grow, write: the published
 * bytes are immutable) and register it, persistent. */
static int cmd_register(int argc, char **argv) {
        const char *mode_arg = NULL;
        const opt_spec specs[] = { { "mode", required_argument, &mode_arg, NULL } };
        ipcb_shm_options opts = IPCB_SHM_OPTIONS_INIT;
        char buf[65536];
        ipcb_client *c;
        ipcb_shm *s;
        off_t total = 0;
        ssize_t n;
        int i, in, fd, r = 0;

        if ((i = parse_opts(argc, argv, specs, 1)) < 0)
                return EXIT_USAGE;
        if (!want_args("register", argc - i, 2, "FILE NAME [--mode M]"))
                return EXIT_USAGE;
        if (mode_arg && parse_mode(mode_arg, &opts.mode) < 0) {
                usage_error("invalid mode '%s' (octal, at most 0777)", mode_arg);
                return EXIT_USAGE;
        }
        opts.flags = IPCB_SHM_PERSISTENT;
        in = strcmp(argv[i], "-") == 0 ? STDIN_FILENO : open(argv[i], O_RDONLY | O_CLOEXEC);
        if (in < 0)
                return fail("register", argv[i], -errno);
        fd = memfd_create(argv[i + 1], MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0) {
                r = -errno;
                goto out;
        }
        while ((n = read(in, buf, sizeof(buf))) != 0) {
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 || write(fd, buf, (size_t)n) != n) {
                        r = -errno;
                        goto out;
                }
                total += n;
        }
        if (total == 0) {
                r = -EINVAL;
                goto out;
        }
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) {
                r = -errno;
                goto out;
        }
        if (!(c = ctl_connect())) {
                r = 1;
                goto out;
        }
        r = ipcb_shm_register(c, argv[i + 1], fd, &opts, &s);
        if (r >= 0)
                r = ipcb_shm_close(s);
        ipcb_disconnect(c);
out:
        if (fd >= 0)
                close(fd);
        if (in > STDIN_FILENO)
                close(in);
        if (r == 1)
                return EXIT_FAILURE;
        return r < 0 ? fail("register", argv[i + 1], r) : EXIT_SUCCESS;
}

static void limit_str(uint64_t v, char *buf, size_t cap) {
        if (v == 0)
                snprintf(buf, cap, "-");
        else
                snprintf(buf, cap, "%" PRIu64, v);
}

static int quota_row(const ipcb_quota_info *q, void *ud) {
        char lo[32], lb[32], lh[32], lc[32];
        bool json = *(bool *)ud;

        if (json) {
                printf("{\"uid\":%u,\"exempt\":%s,\"objects\":%" PRIu64 ",\"bytes\":%" PRIu64
                       ",\"handles\":%u,\"connections\":%u,\"max_objects\":%" PRIu64
                       ",\"max_bytes\":%" PRIu64 ",\"max_handles\":%" PRIu64
                       ",\"max_connections\":%" PRIu64 "}\n",
                       (unsigned)q->uid, q->exempt ? "true" : "false", q->objects, q->bytes,
                       q->handles, q->connections, q->max_objects, q->max_bytes, q->max_handles,
                       q->max_connections);
                return 0;
        }
        limit_str(q->max_objects, lo, sizeof(lo));
        limit_str(q->max_bytes, lb, sizeof(lb));
        limit_str(q->max_handles, lh, sizeof(lh));
        limit_str(q->max_connections, lc, sizeof(lc));
        printf("%-8u  %8" PRIu64 "/%-6s  %12" PRIu64 "/%-12s  %6u/%-6s  %5u/%-5s%s\n",
               (unsigned)q->uid, q->objects, lo, q->bytes, lb, q->handles, lh, q->connections, lc,
               q->exempt ? "  (exempt)" : "");
        return 0;
}

/* Usage and limits: of one uid, or of every uid the caller may see. */
static int cmd_quota(int argc, char **argv) {
        bool json = false;
        const char *uid_arg = NULL;
        const opt_spec specs[] = {
                { "json", no_argument, NULL, &json },
                { "uid", required_argument, &uid_arg, NULL },
        };
        ipcb_quota_info q;
        ipcb_client *c;
        unsigned uid = 0;
        int i, r;

        if ((i = parse_opts(argc, argv, specs, 2)) < 0)
                return EXIT_USAGE;
        if (!want_args("quota", argc - i, 0, "[--uid UID] [--json]"))
                return EXIT_USAGE;
        if (uid_arg && parse_uint(uid_arg, UINT32_MAX - 1, &uid) < 0) {
                usage_error("invalid uid '%s'", uid_arg);
                return EXIT_USAGE;
        }
        if (!(c = ctl_connect()))
                return EXIT_FAILURE;
        if (!json)
                printf("%-8s  %15s  %25s  %13s  %11s\n", "UID", "OBJECTS/MAX", "BYTES/MAX",
                       "HANDLES/MAX", "CONNS/MAX");
        if (uid_arg) {
                r = ipcb_quota(c, (uid_t)uid, &q);
                if (r == 0)
                        quota_row(&q, &json);
        } else
                r = ipcb_quota_list(c, quota_row, &json);
        ipcb_disconnect(c);
        if (r < 0)
                return fail("quota", uid_arg, r);
        return finish_stdout();
}

/* ---- main ---- */

static const struct command {
        const char *name;
        int (*run)(int argc, char **argv); /* argv[0] is the command name */
} commands[] = {
        { "list", cmd_list },   { "stat", cmd_stat }, { "create", cmd_create },
        { "rm", cmd_rm },       { "cat", cmd_cat },   { "write", cmd_write },
        { "sem-create", cmd_sem_create }, { "sem-post", cmd_sem_post },
        { "sem-wait", cmd_sem_wait },     { "sem-value", cmd_sem_value },
        { "sem-rm", cmd_sem_rm },
        { "chmod", cmd_chmod },           { "chown", cmd_chown },
        { "freeze", cmd_freeze },         { "register", cmd_register },
        { "quota", cmd_quota },
};

static void help(void) {
        printf("Usage: " PROG " [--system|--user|--socket PATH] COMMAND [ARGS]\n"
               "\n"
               "Inspect and manage the shared-memory segments and semaphores of ipcbrokerd.\n"
               "\n"
               "Commands:\n"
               "  list [--json]           list every object (ipcs-like table, or JSON).  VALUE\n"
               "                          is a semaphore's value/max, UNDO the tokens its undo\n"
               "                          handles hold; \"-\" where a column does not apply\n"
               "  stat NAME [--sem] [--json]\n"
               "                          show one segment; with --sem, one semaphore.  Without\n"
               "                          --sem, a semaphore is shown when no segment has that\n"
               "                          name\n"
               "  create NAME SIZE [--mode M] [--growable] [--persistent]\n"
               "                          create a segment of SIZE bytes (suffixes K, M, G\n"
               "                          are powers of 1024; mode is octal, default 0600).\n"
               "                          The segment is always persistent: a transient one\n"
               "                          would vanish when " PROG " exits.  --persistent\n"
               "                          is accepted and does nothing.\n"
               "  rm NAME                 remove a segment's name (open handles stay valid)\n"
               "  cat NAME                write the whole segment to stdout\n"
               "  write NAME              copy stdin into the segment from offset 0; bytes\n"
               "                          past the input are left untouched.  Input larger\n"
               "                          than the segment is an error, and the bytes copied\n"
               "                          so far stay written.\n"
               "\n"
               "Semaphore commands (semaphores have a namespace of their own):\n"
               "  sem-create NAME [INITIAL] [--max N] [--mode M] [--persistent]\n"
               "                          create a semaphore holding INITIAL tokens (default\n"
               "                          0) and at most N (1..65535, default 65535; mode is\n"
               "                          octal, default 0600).  Always persistent, like a\n"
               "                          segment from create; --persistent does nothing.\n"
               "  sem-post NAME [N]       give N tokens (default 1), all or nothing: fails if\n"
               "                          the value would exceed the maximum\n"
               "  sem-wait NAME [--timeout MS]\n"
               "                          take one token, waiting for it as long as it takes,\n"
               "                          or at most MS milliseconds (0: do not wait); fails\n"
               "                          if none came.  The token is consumed: it is not\n"
               "                          given back when " PROG " exits (the CLI uses a\n"
               "                          plain handle, not an undo handle); sem-post returns\n"
               "                          it.\n"
               "  sem-value NAME          print the number of tokens available\n"
               "  sem-rm NAME             remove a semaphore's name (open handles stay valid)\n"
               "\n"
               "Access control, publishing and quotas (docs/security.md):\n"
               "  chmod NAME MODE [--sem] set the mode (octal; owner or root only)\n"
               "  chown NAME [USER][:GROUP] [--sem]\n"
               "                          change the group (to one of yours) or, as root,\n"
               "                          the owner\n"
               "  freeze NAME             seal a segment against writing for good (owner or\n"
               "                          root); read-write opens fail from then on\n"
               "  register FILE NAME [--mode M]\n"
               "                          publish FILE's contents (\"-\": stdin) as persistent\n"
               "                          segment NAME: a memfd sealed shrink, grow and write\n"
               "  quota [--uid UID] [--json]\n"
               "                          usage and limits: your uid (root: every uid in use)\n"
               "\n"
               "Options:\n"
               "  --system                the system broker (" IPCB_SYSTEM_SOCKET ")\n"
               "  --user                  your own broker ($XDG_RUNTIME_DIR/ipcbroker/\n"
               "                          ipcbroker.sock)\n"
               "  --socket PATH           the broker at PATH (wins over --system and --user)\n"
               "                          Default: $IPCBROKER_SOCKET if set, else your own\n"
               "                          broker if its socket exists (not for root), else\n"
               "                          the system broker\n"
               "  -h, --help              show this help\n"
               "  -V, --version           show the version\n"
               "\n"
               "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

int main(int argc, char **argv) {
        static const struct option longopts[] = {
                { "socket", required_argument, NULL, 's' },
                { "system", no_argument, NULL, 'S' },
                { "user", no_argument, NULL, 'U' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { 0 },
        };
        int k;

        /* "+": stop at the command; its own options are parsed by it. */
        opterr = 0;
        while ((k = getopt_long(argc, argv, "+:hV", longopts, NULL)) != -1) {
                switch (k) {
                case 's':
                        arg_socket = optarg;
                        break;
                case 'S':
                        arg_broker = IPCB_BROKER_SYSTEM;
                        break;
                case 'U':
                        arg_broker = IPCB_BROKER_USER;
                        break;
                case 'h':
                        help();
                        return finish_stdout();
                case 'V':
                        printf(PROG " " IPCB_VERSION_STRING "\n");
                        return finish_stdout();
                case ':':
                        usage_error("%s: option requires an argument", argv[optind - 1]);
                        return EXIT_USAGE;
                default:
                        usage_error("%s: unknown option", argv[optind - 1]);
                        return EXIT_USAGE;
                }
        }
        if (optind >= argc) {
                usage_error("%s", "no command given");
                return EXIT_USAGE;
        }
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                if (strcmp(argv[optind], commands[i].name) == 0)
                        return commands[i].run(argc - optind, argv + optind);
        usage_error("unknown command '%s'", argv[optind]);
        return EXIT_USAGE;
}
