/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ctl.c: ipcbrokerctl's main: the command table, global options, each
 * command's option parsing, the help generated from the table, and
 * dispatch.  The handlers live in ctl_cmds.c, ctl_admin.c and ctl_watch.c,
 * output formats in ctl_format.c (ctl.h).  Exit status: 0 success, 1
 * failure, 2 usage error. */
#include "ctl.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- the command table ---- */

#define OPT_SEM { "sem", NULL, "NAME is a semaphore (default: a segment)" }
#define OPT_JSON { "json", NULL, "print JSON" }
#define OPT_MODE { "mode", "MODE", "permission bits, octal (default 0600)" }

static const ctl_opt opts_list[] = {
        { "shm", NULL, "segments only" },
        { "sem", NULL, "semaphores only" },
        OPT_JSON,
        { "bytes", NULL, "sizes in bytes (default: human, 4K, 1.5M)" },
        { "holders", NULL, "add the pids of the connections holding handles" },
        { 0 },
};
static const ctl_opt opts_watch[] = {
        { "shm", NULL, "segments only" },
        { "sem", NULL, "semaphores only" },
        { "interval", "MS", "poll every MS milliseconds (default 1000)" },
        { 0 },
};
static const ctl_opt opts_stat[] = { OPT_SEM, OPT_JSON, { 0 } };
static const ctl_opt opts_sem[] = { OPT_SEM, { 0 } };
static const ctl_opt opts_create[] = {
        OPT_MODE,
        { "growable", NULL, "the segment may grow (no F_SEAL_GROW)" },
        { "persistent", NULL, "accepted for compatibility: always persistent" },
        { 0 },
};
static const ctl_opt opts_sem_create[] = {
        { "max", "N", "most tokens it may hold, 1..65535 (default 65535)" },
        OPT_MODE,
        { "persistent", NULL, "accepted for compatibility: always persistent" },
        { 0 },
};
static const ctl_opt opts_sem_wait[] = {
        { "timeout", "MS", "wait at most MS milliseconds (0: do not wait)" },
        { 0 },
};
static const ctl_opt opts_register[] = { OPT_MODE, { 0 } };
static const ctl_opt opts_quota[] = {
        { "uid", "UID", "this uid only (another uid's needs root)" },
        OPT_JSON,
        { 0 },
};

const ctl_command ctl_commands[] = {
        { "list", "[PATTERN]", 0, 1, "list objects (ipcs-like table, or JSON)",
          "List segments and semaphores, in creation order.  PATTERN is a shell glob\n"
          "(fnmatch) on names: 'svc.*'.  VALUE is a semaphore's value/max, UNDO the\n"
          "tokens its undo handles hold; \"-\" where a column does not apply.\n"
          "--holders adds HOLDERS: the pids of the connections that hold handles\n"
          "(as the broker saw them connect; \"+N\": more it did not name, \"?\": an\n"
          "unlinked object, which cannot be asked for by name), like 'ipcs -p'.",
          opts_list, ctl_cmd_list },
        { "watch", "[PATTERN]", 0, 1, "print objects created and unlinked until interrupted",
          "Poll the broker's list and print one line per change: 'created KIND NAME'\n"
          "or 'unlinked KIND NAME', until SIGINT or SIGTERM (exit 0).  Objects that\n"
          "come and go between two polls are not seen.",
          opts_watch, ctl_cmd_watch },
        { "stat", "NAME", 1, 1, "show one object",
          "Show one segment, or with --sem one semaphore, as 'key: value' lines.",
          opts_stat, ctl_cmd_stat },
        { "create", "NAME SIZE", 2, 2, "create a segment of SIZE bytes",
          "Create a persistent segment.  SIZE: bytes, or with a K, M, G or T suffix\n"
          "(powers of 1024), at most the broker's maximum (ipcbrokerd\n"
          "--max-segment-size, 1G by default).  A transient segment would vanish\n"
          "when " PROG " exits, so it is always persistent.",
          opts_create, ctl_cmd_create },
        { "rm", "NAME", 1, 1, "remove an object's name (open handles stay valid)",
          "Remove a segment's name, or with --sem a semaphore's.  Open handles and\n"
          "mappings stay valid.",
          opts_sem, ctl_cmd_rm },
        { "cat", "NAME", 1, 1, "write a segment to stdout (a semaphore: its value)",
          "Write the whole segment to stdout.  With --sem, print the semaphore's\n"
          "value (tokens available) as a decimal line.",
          opts_sem, ctl_cmd_cat },
        { "write", "NAME", 1, 1, "copy stdin into a segment",
          "Copy stdin into the segment from offset 0; bytes past the input are left\n"
          "untouched.  Input larger than the segment is an error, and the bytes\n"
          "copied so far stay written.",
          NULL, ctl_cmd_write },
        { "sem-create", "NAME [INITIAL]", 1, 2, "create a semaphore",
          "Create a persistent semaphore holding INITIAL tokens (default 0).",
          opts_sem_create, ctl_cmd_sem_create },
        { "sem-post", "NAME [N]", 1, 2, "give N tokens (default 1), all or nothing",
          "Give N tokens (1..65535, default 1), all or nothing: fails if the value\n"
          "would exceed the maximum.",
          NULL, ctl_cmd_sem_post },
        { "sem-wait", "NAME", 1, 1, "take one token",
          "Take one token, waiting as long as it takes, or at most --timeout.  The\n"
          "token is consumed: it is not given back when " PROG " exits (a plain\n"
          "handle, not an undo handle); sem-post returns it.",
          opts_sem_wait, ctl_cmd_sem_wait },
        { "sem-value", "NAME", 1, 1, "print a semaphore's value",
          "Print the number of tokens available (the same as 'cat --sem NAME').",
          NULL, ctl_cmd_sem_value },
        { "sem-rm", "NAME", 1, 1, "remove a semaphore's name",
          "Remove a semaphore's name (the same as 'rm --sem NAME').",
          NULL, ctl_cmd_sem_rm },
        { "chmod", "NAME MODE", 2, 2, "set an object's mode (owner or root)",
          "Set the permission bits (octal, at most 0777) of a segment, or with --sem\n"
          "of a semaphore.  Owner or root only.",
          opts_sem, ctl_cmd_chmod },
        { "chown", "NAME [USER][:GROUP]", 2, 2, "change an object's owner or group",
          "Change the group (to one of yours) or, as root, the owner of a segment, or\n"
          "with --sem of a semaphore.  USER and GROUP are names or numbers.",
          opts_sem, ctl_cmd_chown },
        { "freeze", "NAME", 1, 1, "seal a segment against writing for good",
          "Seal a segment against writing for good (owner or root); read-write opens\n"
          "fail from then on.  Prints the seals now set.",
          NULL, ctl_cmd_freeze },
        { "register", "FILE NAME", 2, 2, "publish a file as a sealed segment",
          "Publish FILE's contents (\"-\": stdin) as persistent segment NAME: a memfd\n"
          "sealed shrink, grow and write.",
          opts_register, ctl_cmd_register },
        { "quota", "", 0, 0, "usage and limits per uid",
          "Usage and limits: of your uid (root: of every uid in use).  \"-\": no\n"
          "limit.  --json prints one JSON array.",
          opts_quota, ctl_cmd_quota },
        { "help", "[COMMAND]", 0, 1, "show help on the commands, or on one",
          NULL, NULL, NULL },
        { 0 },
};

/* ---- global options ----
 * Options valid before the command (and --socket after it too).  Keep
 * them here, in one place. */

static const char *arg_socket; /* NULL: the library's default */
static int arg_broker = IPCB_BROKER_DEFAULT; /* --system, --user (--socket wins) */

enum { G_SOCKET = 0x100, G_SYSTEM, G_USER, G_HELP = 'h', G_VERSION = 'V' };

/* The first three are also valid after the command (parse_command). */
static const struct option global_longopts[] = {
        { "socket", required_argument, NULL, G_SOCKET },
        { "system", no_argument, NULL, G_SYSTEM },
        { "user", no_argument, NULL, G_USER },
        { "help", no_argument, NULL, G_HELP },
        { "version", no_argument, NULL, G_VERSION },
        { 0 },
};

const char *ctl_socket(void) {
        return arg_socket;
}

/* Apply global option k (from global_longopts) with its argument.  Returns
 * 0, or 1 when it asked for help or the version. */
static int global_option(int k, const char *arg) {
        switch (k) {
        case G_SOCKET:
                arg_socket = arg;
                return 0;
        case G_SYSTEM:
                arg_broker = IPCB_BROKER_SYSTEM;
                return 0;
        case G_USER:
                arg_broker = IPCB_BROKER_USER;
                return 0;
        default:
                return 1;
        }
}

/* ---- help ---- */

static void print_usage_line(FILE *f, const ctl_command *cmd) {
        fprintf(f, "Usage: " PROG " %s%s%s%s\n", cmd->name, cmd->opts ? " [OPTIONS]" : "",
                cmd->args[0] ? " " : "", cmd->args);
}

static void command_help(const ctl_command *cmd) {
        print_usage_line(stdout, cmd);
        if (cmd->help)
                printf("\n%s\n", cmd->help);
        printf("\nOptions:\n");
        for (const ctl_opt *o = cmd->opts; o && o->name; o++) {
                char left[48];
                snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "",
                         o->arg ? o->arg : "");
                printf("  %-22s %s\n", left, o->help);
        }
        printf("  %-22s %s\n  %-22s %s\n  %-22s %s\n  %-22s %s\n", "--system",
               "the system broker", "--user", "your own broker", "--socket PATH",
               "the broker at PATH", "-h, --help", "show this help");
        printf("\nExit status: 0 success, 1 failure, 2 usage error.\n");
}

static void help(void) {
        printf("Usage: " PROG " [--system|--user|--socket PATH] COMMAND [OPTIONS] [ARGS]\n"
               "\n"
               "Inspect and manage the shared-memory segments and semaphores of ipcbrokerd.\n"
               "\n"
               "Commands:\n");
        for (const ctl_command *c = ctl_commands; c->name; c++) {
                char left[48];
                snprintf(left, sizeof(left), "%s %s", c->name, c->args);
                printf("  %-28s %s\n", left, c->summary);
        }
        printf("\n"
               "Segments and semaphores have a namespace each: --sem makes NAME a\n"
               "semaphore's in stat, rm, cat, chmod and chown.  '--' ends the options, so\n"
               "that a NAME may start with '-'.\n"
               "\n"
               "Options:\n"
               "  --system                     the system broker (" IPCB_SYSTEM_SOCKET ")\n"
               "  --user                       your own broker ($XDG_RUNTIME_DIR/ipcbroker/\n"
               "                               ipcbroker.sock)\n"
               "  --socket PATH                the broker at PATH (wins over --system, --user)\n"
               "                               Default: $IPCBROKER_SOCKET if set, else your own\n"
               "                               broker if its socket exists (not for root), else\n"
               "                               the system broker\n"
               "  -h, --help                   show this help\n"
               "  -V, --version                show the version\n"
               "\n"
               "'" PROG " COMMAND --help' describes one command.\n"
               "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

/* ---- errors ---- */

int ctl_usage_error(const ctl_command *cmd, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, PROG ": ");
        if (cmd)
                fprintf(stderr, "%s: ", cmd->name);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        if (cmd) {
                print_usage_line(stderr, cmd);
                fprintf(stderr, "Try '" PROG " %s --help'.\n", cmd->name);
        } else
                fprintf(stderr, "Usage: " PROG " [--system|--user|--socket PATH] COMMAND [OPTIONS] [ARGS]\n"
                                "Try '" PROG " help'.\n");
        return CTL_EXIT_USAGE;
}

int ctl_fail(const char *what, int err) {
        fprintf(stderr, PROG ": %s: %s\n", what, ipcb_strerror(err));
        return CTL_EXIT_FAIL;
}

int ctl_fail_obj(int kind, const char *name, int err) {
        char esc[CTL_ESC_MAX];
        const char *noun = ctl_kind_noun(kind), *text = ipcb_strerror(err);

        if (err == -ENOENT)
                text = kind == IPCB_KIND_SEM ? "no such semaphore" : "no such segment";
        else if (err == -EEXIST)
                text = kind == IPCB_KIND_SEM ? "a semaphore of that name exists"
                                             : "a segment of that name exists";
        else if (err == -EINVAL || err == -ENAMETOOLONG) {
                if (ctl_check_name(name) < 0)
                        text = "invalid name: " CTL_NAME_RULE;
        }
        fprintf(stderr, PROG ": %s '%s': %s\n", noun, ctl_escape(name, esc, sizeof(esc)), text);
        return CTL_EXIT_FAIL;
}

static int connect_chosen(ipcb_client **c) {
        return arg_socket || arg_broker == IPCB_BROKER_DEFAULT ? ipcb_connect(arg_socket, c)
               : arg_broker == IPCB_BROKER_SYSTEM              ? ipcb_connect_system(c)
                                                               : ipcb_connect_user(c);
}

ipcb_client *ctl_connect(void) {
        ipcb_client *c;
        char msg[512];
        int r = connect_chosen(&c);

        if (r < 0) {
                fprintf(stderr, PROG ": %s\n",
                        ipcb_connect_error(r, arg_socket, arg_broker, msg, sizeof(msg)));
                return NULL;
        }
        return c;
}

int ctl_finish_stdout(void) {
        if (fflush(stdout) != 0 || ferror(stdout))
                return ctl_fail("stdout", -(errno ? errno : EIO));
        return CTL_EXIT_OK;
}

/* ---- options of a command ---- */

static int opt_index(const ctl_command *cmd, const char *name) {
        for (int i = 0; cmd->opts && cmd->opts[i].name; i++)
                if (strcmp(cmd->opts[i].name, name) == 0)
                        return i;
        return -1;
}

const char *ctl_opt_value(const ctl_args *a, const char *name) {
        int i = opt_index(a->cmd, name);
        return i < 0 ? NULL : a->val[i];
}

bool ctl_flag(const ctl_args *a, const char *name) {
        return ctl_opt_value(a, name) != NULL;
}

int ctl_kind_arg(const ctl_args *a) {
        return ctl_flag(a, "sem") ? IPCB_KIND_SEM : IPCB_KIND_SHM;
}

enum { PARSE_HELP = 1 };

/* Parse argv (argv[0] is the command) against cmd's options and the global
 * ones.  Returns 0, PARSE_HELP for -h/--help, or -1 after a usage error. */
static int parse_command(const ctl_command *cmd, int argc, char **argv, ctl_args *ret) {
        struct option longopts[CTL_OPTS_MAX + 5];
        int n = 0, k;

        *ret = (ctl_args){ .cmd = cmd };
        for (int i = 0; cmd->opts && cmd->opts[i].name && i < CTL_OPTS_MAX; i++)
                longopts[n++] = (struct option){ cmd->opts[i].name,
                                                 cmd->opts[i].arg ? required_argument : no_argument,
                                                 NULL, i };
        for (int i = 0; i < 3; i++) /* --socket, --system, --user */
                longopts[n++] = global_longopts[i];
        longopts[n++] = (struct option){ "help", no_argument, NULL, 'h' };
        longopts[n] = (struct option){ 0 };

        optind = 0; /* GNU: reinitialise; argv[0] is the command */
        opterr = 0;
        while ((k = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
                if (k == 'h')
                        return PARSE_HELP;
                if (k >= 0 && k < CTL_OPTS_MAX && k < n - 4)
                        ret->val[k] = optarg ? optarg : "";
                else if (k == ':') {
                        ctl_usage_error(cmd, "%s: option requires an argument", argv[optind - 1]);
                        return -1;
                } else if (k == '?') {
                        ctl_usage_error(cmd, "%s: unknown option", argv[optind - 1]);
                        return -1;
                } else
                        global_option(k, optarg);
        }
        ret->argc = argc - optind;
        ret->argv = argv + optind;
        if (ret->argc < cmd->min_args) {
                /* Name the first one missing: word argc of the synopsis. */
                const char *w = cmd->args;
                for (int i = 0; i < ret->argc && (w = strchr(w, ' ')); i++)
                        w++;
                ctl_usage_error(cmd, "missing %.*s", w ? (int)strcspn(w, " ") : 8,
                                w ? w : "argument");
                return -1;
        }
        if (ret->argc > cmd->max_args) {
                char esc[CTL_ESC_MAX];
                ctl_usage_error(cmd, "unexpected argument '%s'",
                                ctl_escape(ret->argv[cmd->max_args], esc, sizeof(esc)));
                return -1;
        }
        return 0;
}

static const ctl_command *find_command(const char *name) {
        for (const ctl_command *c = ctl_commands; c->name; c++)
                if (strcmp(c->name, name) == 0)
                        return c;
        return NULL;
}

static int unknown_command(const char *name) {
        char esc[CTL_ESC_MAX];
        return ctl_usage_error(NULL, "unknown command '%s'", ctl_escape(name, esc, sizeof(esc)));
}

/* `help [COMMAND]` */
static int run_help(const ctl_args *a) {
        const ctl_command *cmd;

        if (a->argc == 0)
                help();
        else if ((cmd = find_command(a->argv[0])))
                command_help(cmd);
        else
                return unknown_command(a->argv[0]);
        return ctl_finish_stdout();
}

static int print_name(const ipcb_object_info *o, void *userdata) {
        char esc[CTL_ESC_MAX];
        (void)userdata;
        if (!(o->flags & IPCB_OBJ_UNLINKED))
                printf("%s\n", ctl_escape(o->name, esc, sizeof(esc)));
        return 0;
}

/* The names of one kind, for completing NAME; nothing (exit 1) without a
 * broker, and no message: completion must stay quiet. */
static int complete_names(int kind) {
        ipcb_client *c;
        int r;

        if (connect_chosen(&c) < 0)
                return CTL_EXIT_FAIL;
        r = ipcb_list(c, kind, print_name, NULL);
        ipcb_disconnect(c);
        return r < 0 ? CTL_EXIT_FAIL : ctl_finish_stdout();
}

/* For the bash completion (share/bash-completion): the commands, one
 * command's options, one a line, straight from the table, or the names of
 * objects of one kind. */
static int run_complete(int argc, char **argv) {
        const ctl_command *cmd;

        if (argc == 2 && strcmp(argv[1], "commands") == 0) {
                for (const ctl_command *c = ctl_commands; c->name; c++)
                        printf("%s\n", c->name);
        } else if (argc == 3 && strcmp(argv[1], "options") == 0 && (cmd = find_command(argv[2]))) {
                for (const ctl_opt *o = cmd->opts; o && o->name; o++)
                        printf("--%s%s\n", o->name, o->arg ? "=" : "");
                printf("--socket=\n--system\n--user\n--help\n");
        } else if (argc == 3 && strcmp(argv[1], "names") == 0) {
                return complete_names(strcmp(argv[2], "sem") == 0 ? IPCB_KIND_SEM : IPCB_KIND_SHM);
        } else if (argc == 2 && strcmp(argv[1], "global") == 0) {
                for (const struct option *o = global_longopts; o->name; o++)
                        printf("--%s%s\n", o->name, o->has_arg ? "=" : "");
        } else
                return CTL_EXIT_USAGE;
        return ctl_finish_stdout();
}

int main(int argc, char **argv) {
        const ctl_command *cmd;
        ctl_args a;
        int k, r;

        /* "+": stop at the command; its own options are parsed by it. */
        opterr = 0;
        while ((k = getopt_long(argc, argv, "+:hV", global_longopts, NULL)) != -1) {
                if (k == ':')
                        return ctl_usage_error(NULL, "%s: option requires an argument",
                                               argv[optind - 1]);
                if (k == '?')
                        return ctl_usage_error(NULL, "%s: unknown option", argv[optind - 1]);
                if (global_option(k, optarg) == 0)
                        continue;
                if (k == G_VERSION)
                        printf(PROG " " IPCB_VERSION_STRING "\n");
                else
                        help();
                return ctl_finish_stdout();
        }
        if (optind >= argc)
                return ctl_usage_error(NULL, "no command given");
        if (strcmp(argv[optind], "__complete") == 0)
                return run_complete(argc - optind, argv + optind);
        if (!(cmd = find_command(argv[optind])))
                return unknown_command(argv[optind]);
        r = parse_command(cmd, argc - optind, argv + optind, &a);
        if (r < 0)
                return CTL_EXIT_USAGE;
        if (r == PARSE_HELP) {
                command_help(cmd);
                return ctl_finish_stdout();
        }
        return cmd->run ? cmd->run(&a) : run_help(&a);
}
