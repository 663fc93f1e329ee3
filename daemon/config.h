/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* config.h: the daemon's settings, filled by main.c from the command line
 * and by config.c from an optional `key = value` file (--config PATH);
 * command-line options win over the file.  docs/security.md lists every key. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct cred;

/* A reserved name prefix (`reserve = PREFIX OWNER` in the config file):
 * names that start with it may be created or registered only by uid `id`
 * (group false) or by members of group `id` (group true). */
#define CONFIG_RESERVE_MAX 64
typedef struct config_reserve {
        char prefix[256];
        size_t len;
        bool group;
        uint32_t id;
} config_reserve;

typedef struct config {
        const char *socket_path;
        uint64_t max_segment_size; /* bytes; larger creates get -EFBIG */
        unsigned max_queued_replies; /* per connection, before disconnect */
        /* Access control: uid 0 may do everything (and is not limited by
         * quotas) unless this is false (--no-root-override). */
        bool root_override;
        /* Per-uid quotas (0: unlimited). */
        uint64_t max_objects_per_uid;     /* segments + semaphores created */
        uint64_t max_bytes_per_uid;       /* declared sizes of those */
        uint64_t max_handles_per_uid;     /* open handles, all connections */
        uint64_t max_connections_per_uid;
        /* Per connection. */
        unsigned max_requests_in_flight; /* requests taken from one connection
                                          * before the loop serves another */
        unsigned max_fds_in_flight;      /* fds in its unread replies before it
                                          * is no longer read */
        unsigned max_fds_in_flight_per_uid; /* the same, all of a uid's connections */
        uint64_t max_fds_per_uid;        /* the daemon's fds held for a uid's objects */
        /* A connection not read for its client's unread replies, with
         * requests waiting, and its client reading nothing, is dropped after
         * this long (0: never; peer.c). */
        uint64_t unread_timeout_s;
        /* The subordinate uid ranges (/etc/subuid's form), whose uids count
         * as their owner's for quotas and shares (quota.c); "" none. */
        const char *subuid_file;
        /* Set at start from RLIMIT_NOFILE: fds objects may use in all, the
         * rest kept for connections, replies and clean-up. */
        uint64_t fd_budget;
        uint64_t max_connections_total;
        const char *config_path;
        unsigned nreserve;
        config_reserve reserve[CONFIG_RESERVE_MAX];
} config;

extern config cfg;

/* Long options config.c handles (their values are CONFIG_OPT_BASE + n). */
#define CONFIG_OPT_BASE 0x1000
#define CONFIG_LONG_OPTIONS                                                        \
        { "config", required_argument, NULL, CONFIG_OPT_BASE + 0 },                \
        { "no-root-override", no_argument, NULL, CONFIG_OPT_BASE + 1 },            \
        { "max-objects", required_argument, NULL, CONFIG_OPT_BASE + 2 },           \
        { "max-bytes", required_argument, NULL, CONFIG_OPT_BASE + 3 },             \
        { "max-handles", required_argument, NULL, CONFIG_OPT_BASE + 4 },           \
        { "max-connections", required_argument, NULL, CONFIG_OPT_BASE + 5 },       \
        { "max-requests-in-flight", required_argument, NULL, CONFIG_OPT_BASE + 6 }, \
        { "max-queued-replies", required_argument, NULL, CONFIG_OPT_BASE + 7 },    \
        { "max-fds-in-flight", required_argument, NULL, CONFIG_OPT_BASE + 8 },     \
        { "max-fds-in-flight-per-uid", required_argument, NULL, CONFIG_OPT_BASE + 9 }, \
        { "max-fds", required_argument, NULL, CONFIG_OPT_BASE + 10 },              \
        { "max-segment-size", required_argument, NULL, CONFIG_OPT_BASE + 11 },     \
        { "unread-timeout", required_argument, NULL, CONFIG_OPT_BASE + 12 },       \
        { "subuid-file", required_argument, NULL, CONFIG_OPT_BASE + 13 }

/* Handle option c (from getopt_long) with argument arg.  Returns 1 if it was
 * one of CONFIG_LONG_OPTIONS, 0 if not, -EINVAL (message printed) if its
 * value is invalid. */
int config_option(int c, const char *arg);
/* Read the --config file, if any, for the keys the command line did not
 * set.  0, or a negative errno after printing why. */
int config_finish(void);
/* May c create (or register) an object called name (len bytes)?  0, or
 * -EACCES when the longest reserved prefix it starts with belongs to
 * another uid or to a group c is not in (uid 0 may, unless
 * --no-root-override).  Names outside every reserved prefix: 0. */
int config_reserve_check(const struct cred *c, const char *name, size_t len);
/* Split RLIMIT_NOFILE (nofile) between objects (cfg.fd_budget) and a
 * reserve for connections, replies and clean-up (docs/security.md). */
void config_fd_budget(long nofile);
/* The options above, for --help. */
void config_usage(FILE *f);
