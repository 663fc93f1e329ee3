/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* config.c: the daemon's tunables: access-control and quota options on the
 * command line, and the same keys in a small config file (--config PATH):
 *
 *     # comment
 *     max_objects_per_uid = 4096
 *     max_bytes_per_uid = 4G
 *     root_override = no
 *     reserve = sys. root
 *     reserve = app.foo. uid:1000
 *
 * One `key = value` per line; unknown keys and bad values are errors (the
 * daemon does not start), so that a typo never silently weakens a limit.
 * A value given on the command line wins over the file.  `reserve` may be
 * given many times (file only): PREFIX OWNER, OWNER one of root, uid:N,
 * uid:NAME, group:N, group:NAME (docs/security.md). */
#include "config.h"

#include "log.h"
#include "policy.h"
#include "proto.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

/* The defaults (docs/security.md lists them). */
config cfg = {
        .max_segment_size = 1ull << 30,
        .max_queued_replies = 32,
        /* Access control and quotas (config.c, docs/security.md). */
        .root_override = true,
        .max_objects_per_uid = 4096,
        .max_bytes_per_uid = 4ull << 30,
        .max_handles_per_uid = 16384,
        .max_connections_per_uid = 256,
        .max_requests_in_flight = 32,
        .max_fds_in_flight = 16,
        .max_fds_in_flight_per_uid = 128,
        .max_fds_per_uid = 12288,
        .unread_timeout_s = 30,
        .subuid_file = "/etc/subuid",
};

typedef enum { T_SIZE, T_COUNT, T_BOOL, T_PATH } key_type;

typedef struct key_spec {
        const char *key;  /* in the file */
        const char *opt;  /* on the command line ("" for --config itself) */
        key_type type;
        void *field;
        const char *help;
} key_spec;

/* Index i matches CONFIG_OPT_BASE + i in CONFIG_LONG_OPTIONS. */
static const key_spec keys[] = {
        { "", "config PATH", T_COUNT, NULL,
          "read `key = value` lines from PATH: the option\n"
          "names with '_' for '-', per-uid ones ending in\n"
          "_per_uid (max_objects_per_uid = 100); options\n"
          "given on the command line win" },
        { "root_override", "no-root-override", T_BOOL, &cfg.root_override,
          "uid 0 gets no bypass: checked like any uid and\n"
          "held to the quotas (file: root_override = no)" },
        { "max_objects_per_uid", "max-objects N", T_COUNT, &cfg.max_objects_per_uid,
          "objects one uid may create (default 4096;\n"
          "0 everywhere: no limit)" },
        { "max_bytes_per_uid", "max-bytes BYTES", T_SIZE, &cfg.max_bytes_per_uid,
          "declared sizes of one uid's objects (default 4G)" },
        { "max_handles_per_uid", "max-handles N", T_COUNT, &cfg.max_handles_per_uid,
          "open handles of one uid (default 16384)" },
        { "max_connections_per_uid", "max-connections N", T_COUNT,
          &cfg.max_connections_per_uid, "connections of one uid (default 256)" },
        { "max_requests_in_flight", "max-requests-in-flight N", T_COUNT,
          &cfg.max_requests_in_flight,
          "requests read from one connection before the\n"
          "others are served (default 32)" },
        { "max_queued_replies", "max-queued-replies N", T_COUNT, &cfg.max_queued_replies,
          "replies waiting for a full socket before a\n"
          "connection is dropped (default 32)" },
        { "max_fds_in_flight", "max-fds-in-flight N", T_COUNT, &cfg.max_fds_in_flight,
          "fds in a connection's unread replies before its\n"
          "requests wait (default 16)" },
        { "max_fds_in_flight_per_uid", "max-fds-in-flight-per-uid N", T_COUNT,
          &cfg.max_fds_in_flight_per_uid,
          "the same for all of one uid's connections\n"
          "(default 128)" },
        { "max_fds_per_uid", "max-fds N", T_COUNT, &cfg.max_fds_per_uid,
          "the daemon's fds held for one uid's objects: 3\n"
          "per segment, 1 per semaphore, 1 per polled semaphore (default 12288)" },
        { "max_segment_size", "max-segment-size BYTES", T_SIZE, &cfg.max_segment_size,
          "largest segment a client may create (default 1G)" },
        { "unread_timeout", "unread-timeout SECONDS", T_COUNT, &cfg.unread_timeout_s,
          "drop a connection whose requests wait this long\n"
          "for its client to read its replies (default 30;\n"
          "0: never)" },
        { "subuid_file", "subuid-file PATH", T_PATH, &cfg.subuid_file,
          "count the uids of each subordinate range in\n"
          "PATH (owner:start:count lines) as their owner's\n"
          "for quotas and shares (default /etc/subuid;\n"
          "none: each uid its own)" },
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static bool set_by_cli[NKEYS];

/* Sizes: digits with an optional K, M, G or T suffix (powers of 1024). */
static int parse_u64(const char *s, bool suffix, uint64_t *ret) {
        unsigned long long v;
        char *end;
        int shift = 0;

        if (*s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno)
                return -EINVAL;
        if (suffix) {
                switch (*end) {
                case 'K': case 'k': shift = 10; end++; break;
                case 'M': case 'm': shift = 20; end++; break;
                case 'G': case 'g': shift = 30; end++; break;
                case 'T': case 't': shift = 40; end++; break;
                default: break;
                }
        }
        if (*end || (shift && v > (UINT64_MAX >> shift)))
                return -EINVAL;
        *ret = (uint64_t)v << shift;
        return 0;
}

static int parse_bool(const char *s, bool *ret) {
        static const char *const yes[] = { "yes", "true", "on", "1" };
        static const char *const no[] = { "no", "false", "off", "0" };

        for (int i = 0; i < 4; i++) {
                if (strcmp(s, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
                if (strcmp(s, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        }
        return -EINVAL;
}

static int key_set(const key_spec *k, const char *value) {
        static char path[512]; /* the one T_PATH key's: a file's line is gone once read */
        uint64_t v;
        bool b;

        switch (k->type) {
        case T_PATH:
                if (strlen(value) >= sizeof(path))
                        return -EINVAL;
                strcpy(path, strcmp(value, "none") == 0 ? "" : value);
                *(const char **)k->field = path;
                return 0;
        case T_BOOL:
                if (parse_bool(value, &b) < 0)
                        return -EINVAL;
                *(bool *)k->field = b;
                return 0;
        case T_SIZE:
        case T_COUNT:
                if (parse_u64(value, k->type == T_SIZE, &v) < 0)
                        return -EINVAL;
                if ((k->field == &cfg.max_segment_size && v == 0) ||
                    (k->field == &cfg.unread_timeout_s && v > 1000000))
                        return -EINVAL;
                if (k->field == (void *)&cfg.max_requests_in_flight ||
                    k->field == (void *)&cfg.max_queued_replies ||
                    k->field == (void *)&cfg.max_fds_in_flight ||
                    k->field == (void *)&cfg.max_fds_in_flight_per_uid) {
                        if (v == 0 || v > 1000000)
                                return -EINVAL;
                        *(unsigned *)k->field = (unsigned)v;
                } else
                        *(uint64_t *)k->field = v;
                return 0;
        }
        return -EINVAL;
}

int config_option(int c, const char *arg) {
        unsigned i = (unsigned)(c - CONFIG_OPT_BASE);

        if (c < CONFIG_OPT_BASE || i >= NKEYS)
                return 0;
        if (i == 0) {
                cfg.config_path = arg;
                return 1;
        }
        set_by_cli[i] = true;
        if (keys[i].type == T_BOOL) { /* --no-root-override */
                *(bool *)keys[i].field = false;
                return 1;
        }
        if (key_set(&keys[i], arg) < 0) {
                fprintf(stderr, "ipcbrokerd: invalid value for --%.*s: %s\n",
                        (int)strcspn(keys[i].opt, " "), keys[i].opt, arg);
                return -EINVAL;
        }
        return 1;
}

/* A uid or gid: digits (below 2^32 - 1), or a name looked up now. */
static int parse_id(const char *s, bool group, uint32_t *ret) {
        uint64_t v;

        if (*s >= '0' && *s <= '9') {
                if (parse_u64(s, false, &v) < 0 || v >= UINT32_MAX)
                        return -EINVAL;
                *ret = (uint32_t)v;
                return 0;
        }
        if (!*s)
                return -EINVAL;
        if (group) {
                struct group *g = getgrnam(s);
                if (!g)
                        return -ENOENT;
                *ret = (uint32_t)g->gr_gid;
        } else {
                struct passwd *pw = getpwnam(s);
                if (!pw)
                        return -ENOENT;
                *ret = (uint32_t)pw->pw_uid;
        }
        return 0;
}

/* `PREFIX OWNER`: exactly two words; PREFIX follows the name rule, OWNER
 * is root, uid:ID or group:ID.  The same prefix twice is an error. */
static int reserve_add(char *value) {
        char *prefix = value, *owner, *end;
        config_reserve *r;
        size_t len;

        len = strcspn(prefix, " \t");
        owner = prefix + len;
        owner += strspn(owner, " \t");
        end = owner + strcspn(owner, " \t");
        if (len == 0 || !*owner || *end || ipcb__name_check(prefix, len) < 0)
                return -EINVAL;
        if (cfg.nreserve == CONFIG_RESERVE_MAX)
                return -E2BIG;
        for (unsigned i = 0; i < cfg.nreserve; i++)
                if (cfg.reserve[i].len == len && memcmp(cfg.reserve[i].prefix, prefix, len) == 0)
                        return -EEXIST;
        r = &cfg.reserve[cfg.nreserve];
        *r = (config_reserve){ .len = len };
        memcpy(r->prefix, prefix, len);
        if (strcmp(owner, "root") == 0)
                r->id = 0;
        else if (strncmp(owner, "uid:", 4) == 0) {
                if (parse_id(owner + 4, false, &r->id) < 0)
                        return -EINVAL;
        } else if (strncmp(owner, "group:", 6) == 0) {
                r->group = true;
                if (parse_id(owner + 6, true, &r->id) < 0)
                        return -EINVAL;
        } else
                return -EINVAL;
        cfg.nreserve++;
        return 0;
}

int config_reserve_check(const cred *c, const char *name, size_t len) {
        const config_reserve *best = NULL;

        for (unsigned i = 0; i < cfg.nreserve; i++) {
                const config_reserve *r = &cfg.reserve[i];
                if (r->len <= len && memcmp(r->prefix, name, r->len) == 0 &&
                    (!best || r->len > best->len))
                        best = r;
        }
        if (!best || policy_privileged(c))
                return 0;
        if (best->group ? cred_in_group(c, (gid_t)best->id) : c->uid == (uid_t)best->id)
                return 0;
        return -EACCES;
}

static char *trim(char *s) {
        char *e;

        while (*s == ' ' || *s == '\t')
                s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
                *--e = '\0';
        return s;
}

int config_finish(void) {
        char line[512];
        unsigned lineno = 0;
        FILE *f;
        int k = 0;

        if (!cfg.config_path)
                return 0;
        f = fopen(cfg.config_path, "re");
        if (!f) {
                k = -errno;
                fprintf(stderr, "ipcbrokerd: cannot read %s: %s\n", cfg.config_path, strerror(errno));
                return k;
        }
        while (fgets(line, sizeof(line), f)) {
                char *s = trim(line), *eq, *key, *value;
                unsigned i;

                lineno++;
                if (!*s || *s == '#')
                        continue;
                eq = strchr(s, '=');
                if (!eq) {
                        fprintf(stderr, "ipcbrokerd: %s:%u: expected key = value\n",
                                cfg.config_path, lineno);
                        k = -EINVAL;
                        break;
                }
                *eq = '\0';
                key = trim(s);
                value = trim(eq + 1);
                if (strcmp(key, "reserve") == 0) {
                        if ((k = reserve_add(value)) < 0) {
                                fprintf(stderr, "ipcbrokerd: %s:%u: invalid reserve '%s': %s\n",
                                        cfg.config_path, lineno, value,
                                        k == -EEXIST   ? "prefix reserved twice"
                                        : k == -E2BIG  ? "too many reserved prefixes"
                                                       : "expected PREFIX root|uid:ID|group:ID");
                                k = -EINVAL;
                                break;
                        }
                        continue;
                }
                for (i = 1; i < NKEYS; i++)
                        if (strcmp(keys[i].key, key) == 0)
                                break;
                if (i == NKEYS) {
                        fprintf(stderr, "ipcbrokerd: %s:%u: unknown key '%s'\n", cfg.config_path,
                                lineno, key);
                        k = -EINVAL;
                        break;
                }
                if (set_by_cli[i])
                        continue;
                if (key_set(&keys[i], value) < 0) {
                        fprintf(stderr, "ipcbrokerd: %s:%u: invalid value for %s: %s\n",
                                cfg.config_path, lineno, key, value);
                        k = -EINVAL;
                        break;
                }
        }
        fclose(f);
        return k;
}

/* The reserve is a quarter of the table, at least 256, but no more than
 * 65536: that is 19114 connections, and a table sized for a million
 * objects (3 fds per segment) would otherwise keep 800000 fds idle. */
#define FD_RESERVE_MAX 65536u

void config_fd_budget(long nofile) {
        uint64_t n = nofile > 0 ? (uint64_t)nofile : 1024, reserve = n / 4 > 256 ? n / 4 : 256;

        if (reserve > FD_RESERVE_MAX)
                reserve = FD_RESERVE_MAX;
        if (reserve > n / 2)
                reserve = n / 2;
        cfg.fd_budget = n - reserve;
        /* A connection costs its socket, a pidfd once it holds tokens, and
         * now and then the copies of a queued reply's fds. */
        cfg.max_connections_total = (reserve - reserve / 8) / 3;
        log_debug("file descriptor limit %llu: %llu for objects, up to %llu connections",
                  (unsigned long long)n, (unsigned long long)cfg.fd_budget,
                  (unsigned long long)cfg.max_connections_total);
}

void config_usage(FILE *f) {
        for (unsigned i = 0; i < NKEYS; i++) {
                char opt[64];

                const char *h = keys[i].help;
                snprintf(opt, sizeof(opt), "--%s", keys[i].opt);
                fprintf(f, "      %-25s", opt);
                if (strlen(opt) > 24)
                        fprintf(f, "\n%31s", "");
                /* Continuation lines of the help text line up. */
                for (const char *p = h; *p; p++) {
                        fputc(*p, f);
                        if (*p == '\n')
                                fprintf(f, "%31s", "");
                }
                fputc('\n', f);
        }
}
