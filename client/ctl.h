/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ctl.h: what the modules of ipcbrokerctl share.  ctl.c owns main, the
 * command table, option parsing, help and dispatch; ctl_cmds.c and
 * ctl_admin.c the command handlers; ctl_watch.c list and watch;
 * ctl_parse.c the argument checks (sizes, modes, names); ctl_format.c
 * every output format (tables, JSON, human sizes, escaping, user names).
 * Exit status: 0 success, 1 failure (one line on stderr naming the
 * argument), 2 usage error (the message, then the command's usage). */
#pragma once

#include "ipcbroker.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PROG "ipcbrokerctl"

enum { CTL_EXIT_OK = 0, CTL_EXIT_FAIL = 1, CTL_EXIT_USAGE = 2 };

/* One option of a command: --name, or --name ARG when arg is set. */
typedef struct ctl_opt {
        const char *name;
        const char *arg; /* the argument's name in help; NULL: a flag */
        const char *help;
} ctl_opt;

#define CTL_OPTS_MAX 8

struct ctl_command;

/* A command line, parsed against its command's table entry. */
typedef struct ctl_args {
        const struct ctl_command *cmd;
        int argc;            /* positional arguments */
        char **argv;
        const char *val[CTL_OPTS_MAX]; /* per option: its value ("" for a flag), NULL: absent */
} ctl_args;

typedef struct ctl_command {
        const char *name;
        const char *args;     /* synopsis of the positional arguments */
        int min_args, max_args;
        const char *summary;  /* one line, for `help` */
        const char *help;     /* what `COMMAND --help` says after the usage */
        const ctl_opt *opts;  /* NULL-name terminated; may be NULL */
        int (*run)(const ctl_args *a);
} ctl_command;

/* ---- ctl.c ---- */
/* The command table, NULL-name terminated. */
extern const ctl_command ctl_commands[];
/* The broker socket the global options chose (NULL: the library's default). */
const char *ctl_socket(void);
/* An option's value: NULL when absent, "" for a flag that was given. */
const char *ctl_opt_value(const ctl_args *a, const char *name);
bool ctl_flag(const ctl_args *a, const char *name);
/* Print "PROG: COMMAND: message", then the command's usage; returns 2. */
__attribute__((format(printf, 2, 3)))
int ctl_usage_error(const ctl_command *cmd, const char *fmt, ...);
/* "PROG: what: ipcb_strerror(err)" on stderr; returns 1. */
int ctl_fail(const char *what, int err);
/* "PROG: segment 'NAME': text" (semaphore for IPCB_KIND_SEM), NAME escaped,
 * with a kind-specific text for -ENOENT and -EEXIST; returns 1. */
int ctl_fail_obj(int kind, const char *name, int err);
/* Connect to the chosen broker; on failure reports it and returns NULL. */
ipcb_client *ctl_connect(void);
/* Flush stdout; a failed write (full disk, closed pipe) is a failure. */
int ctl_finish_stdout(void);

/* ---- ctl_parse.c: argument checks; each returns 0 or a negative errno ---- */
/* The largest size the CLI passes on: what the protocol allows (the
 * broker's own maximum is lower, and is its own to state). */
#define CTL_SIZE_MAX ((uint64_t)INT64_MAX)
/* SIZE: digits with an optional K, M, G or T suffix (powers of 1024), as the
 * daemon's options take them.  -EINVAL malformed, -ERANGE above CTL_SIZE_MAX. */
int ctl_parse_size(const char *s, uint64_t *ret);
/* Octal, at most 0777. */
int ctl_parse_mode(const char *s, unsigned *ret);
/* Decimal in 0..max. */
int ctl_parse_uint(const char *s, unsigned long max, unsigned *ret);
/* USER, USER:GROUP or :GROUP, names or numbers; -1 for what is not given. */
int ctl_parse_owner(const char *s, uid_t *ret_uid, gid_t *ret_gid);
/* The name rule of proto/ (ipcb__name_check): 0, -EINVAL or -ENAMETOOLONG. */
int ctl_check_name(const char *name);
/* The rule in words, for error messages. */
#define CTL_NAME_RULE                                                                    \
        "names are 1..255 bytes of letters, digits and . _ : @ + - (not starting with '.')"
/* A usage error for a bad NAME argument (exit 2), or 0 when it is fine. */
int ctl_name_arg(const ctl_command *cmd, const char *name);

/* The holders of one object (list --holders). */
typedef struct ctl_holders {
        int total;       /* how many there are; -1: unknown (unlinked: no name to ask by) */
        unsigned n;      /* entries in v */
        ipcb_holder *v;
} ctl_holders;

/* ---- ctl_format.c: output ---- */
const char *ctl_kind_name(int kind);   /* "shm", "sem" */
const char *ctl_kind_noun(int kind);   /* "segment", "semaphore" */
/* name with every byte outside printable ASCII, and '\\', as \xNN: a
 * hostile name cannot move the terminal's cursor or forge lines.  buf must
 * hold 4 * IPCB_NAME_MAX + 1 bytes; returns buf. */
#define CTL_ESC_MAX (4 * IPCB_NAME_MAX + 1)
const char *ctl_escape(const char *name, char *buf, size_t cap);
/* 4096 -> "4K", 1536 -> "1.5K", 10 -> "10": powers of 1024, at most one
 * decimal, rounded up so that a size never looks smaller than it is. */
void ctl_human_size(uint64_t v, char *buf, size_t cap);
/* "shrink,grow", or "-" when there are none. */
void ctl_seals_str(unsigned seals, char *buf, size_t cap);
/* "user:group", numbers for what does not resolve; names are looked up once
 * per uid and gid and cached for the process's life. */
void ctl_owner_str(uid_t uid, gid_t gid, char *buf, size_t cap);
/* A JSON string (quoted, escaped). */
void ctl_json_string(FILE *f, const char *s);
/* One object; with its holders unless h is NULL. */
void ctl_json_object(FILE *f, const ipcb_object_info *o, const ctl_holders *h);
void ctl_json_quota(FILE *f, const ipcb_quota_info *q);
/* The ipcs-like table of objects; human sizes unless bytes; a HOLDERS
 * column (pids) when h is not NULL (h[i] for v[i]). */
void ctl_print_table(FILE *f, const ipcb_object_info *v, const ctl_holders *h, size_t n,
                     bool bytes);
/* "key: value" lines of one object. */
void ctl_print_stat(FILE *f, const ipcb_object_info *o);
void ctl_print_quota_header(FILE *f);
void ctl_print_quota_row(FILE *f, const ipcb_quota_info *q);

/* ---- handlers (ctl_cmds.c, ctl_admin.c, ctl_watch.c) ---- */
int ctl_cmd_list(const ctl_args *a);
int ctl_cmd_watch(const ctl_args *a);
int ctl_cmd_stat(const ctl_args *a);
int ctl_cmd_create(const ctl_args *a);
int ctl_cmd_rm(const ctl_args *a);
int ctl_cmd_cat(const ctl_args *a);
int ctl_cmd_write(const ctl_args *a);
int ctl_cmd_sem_create(const ctl_args *a);
int ctl_cmd_sem_post(const ctl_args *a);
int ctl_cmd_sem_wait(const ctl_args *a);
int ctl_cmd_sem_value(const ctl_args *a);
int ctl_cmd_sem_rm(const ctl_args *a);
int ctl_cmd_chmod(const ctl_args *a);
int ctl_cmd_chown(const ctl_args *a);
int ctl_cmd_freeze(const ctl_args *a);
int ctl_cmd_register(const ctl_args *a);
int ctl_cmd_quota(const ctl_args *a);

/* The kind an object command's NAME argument names: --sem picks the
 * semaphore namespace, segments otherwise (one rule for every command). */
int ctl_kind_arg(const ctl_args *a);
