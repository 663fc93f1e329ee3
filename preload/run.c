/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* run.c: ipcbroker-run [options] -- PROGRAM [ARGS...]: run an unchanged
 * program with its POSIX and System V shared memory and semaphores served
 * by ipcbrokerd, through libipcbroker-preload.so (LD_PRELOAD).  It only
 * sets the environment the shim reads and execs the program; see
 * docs/preload.md. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef IPCB_PRELOAD_INSTALLED
#define IPCB_PRELOAD_INSTALLED "/usr/local/lib/libipcbroker-preload.so"
#endif
#define LIBNAME "libipcbroker-preload.so"

static void usage(FILE *f) {
        fputs("usage: ipcbroker-run [options] [--] PROGRAM [ARGS...]\n"
              "  -s, --socket PATH      broker socket ($IPCBROKER_SOCKET, else the default)\n"
              "  -p, --prefix PREFIX    broker name prefix (default \"preload.\")\n"
              "  -t, --transient        objects the program creates die with the last\n"
              "                         process that holds them (crash cleanup)\n"
              "  -f, --fallback POLICY  no broker at the first call: fail (default;\n"
              "                         errno ENOTCONN) or kernel (the kernel's own IPC)\n"
              "  -x, --exclude PATTERN  leave POSIX names matching PATTERN (fnmatch, with\n"
              "                         the leading '/') or SysV keys (\"0x%08x\") to the\n"
              "                         kernel; may be repeated\n"
              "      --no-sysv          leave System V calls to the kernel\n"
              "      --no-inherit       do not broker programs the program execs\n"
              "      --lib PATH         the shim to preload\n"
              "  -h, --help\n",
              f);
}

/* The shim next to this executable (build tree, or bin/ beside lib/), else
 * the installed one. */
static int find_lib(char *buf, size_t cap) {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        char *slash;

        if (n > 0) {
                exe[n] = '\0';
                if ((slash = strrchr(exe, '/'))) {
                        *slash = '\0';
                        if ((size_t)snprintf(buf, cap, "%s/%s", exe, LIBNAME) < cap &&
                            access(buf, R_OK) == 0)
                                return 0;
                        if ((size_t)snprintf(buf, cap, "%s/../lib/%s", exe, LIBNAME) < cap &&
                            access(buf, R_OK) == 0)
                                return 0;
                }
        }
        snprintf(buf, cap, "%s", IPCB_PRELOAD_INSTALLED);
        return access(buf, R_OK) == 0 ? 0 : -ENOENT;
}

int main(int argc, char **argv) {
        enum { OPT_LIB = 256, OPT_NO_SYSV, OPT_NO_INHERIT };
        static const struct option opts[] = {
                { "socket", required_argument, NULL, 's' },
                { "prefix", required_argument, NULL, 'p' },
                { "transient", no_argument, NULL, 't' },
                { "fallback", required_argument, NULL, 'f' },
                { "exclude", required_argument, NULL, 'x' },
                { "no-sysv", no_argument, NULL, OPT_NO_SYSV },
                { "no-inherit", no_argument, NULL, OPT_NO_INHERIT },
                { "lib", required_argument, NULL, OPT_LIB },
                { "help", no_argument, NULL, 'h' },
                { NULL, 0, NULL, 0 },
        };
        char lib[PATH_MAX], *exclude = NULL, *preload;
        const char *old;
        bool inherit = true;
        int c;

        lib[0] = '\0';
        while ((c = getopt_long(argc, argv, "+s:p:tf:x:h", opts, NULL)) != -1) {
                switch (c) {
                case 's':
                        setenv("IPCBROKER_SOCKET", optarg, 1);
                        break;
                case 'p':
                        setenv("IPCBROKER_PRELOAD_PREFIX", optarg, 1);
                        break;
                case 't':
                        setenv("IPCBROKER_PRELOAD_TRANSIENT", "1", 1);
                        break;
                case 'f':
                        if (strcmp(optarg, "fail") != 0 && strcmp(optarg, "kernel") != 0) {
                                fprintf(stderr, "ipcbroker-run: --fallback is fail or kernel\n");
                                return 2;
                        }
                        setenv("IPCBROKER_PRELOAD_FALLBACK", optarg, 1);
                        break;
                case 'x': {
                        size_t n = (exclude ? strlen(exclude) + 1 : 0) + strlen(optarg) + 1;
                        char *e = malloc(n);
                        if (!e)
                                return 1;
                        snprintf(e, n, "%s%s%s", exclude ? exclude : "", exclude ? ":" : "",
                                 optarg);
                        free(exclude);
                        exclude = e;
                        break;
                }
                case OPT_NO_SYSV:
                        setenv("IPCBROKER_PRELOAD_SYSV", "0", 1);
                        break;
                case OPT_NO_INHERIT:
                        inherit = false;
                        break;
                case OPT_LIB:
                        snprintf(lib, sizeof(lib), "%s", optarg);
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind >= argc) {
                usage(stderr);
                return 2;
        }
        if (exclude)
                setenv("IPCBROKER_PRELOAD_EXCLUDE", exclude, 1);
        free(exclude);
        if (!lib[0] && find_lib(lib, sizeof(lib)) < 0) {
                fprintf(stderr, "ipcbroker-run: %s not found (use --lib)\n", LIBNAME);
                return 127;
        }
        if (!inherit)
                setenv("IPCBROKER_PRELOAD_INHERIT", "0", 1);
        /* Ours first; the program's own preloads stay after it. */
        old = getenv("LD_PRELOAD");
        if (old && *old) {
                size_t n = strlen(lib) + strlen(old) + 2;
                if (!(preload = malloc(n)))
                        return 1;
                snprintf(preload, n, "%s:%s", lib, old);
        } else {
                preload = strdup(lib);
        }
        if (!preload || setenv("LD_PRELOAD", preload, 1) < 0)
                return 1;
        free(preload);
        execvp(argv[optind], argv + optind);
        fprintf(stderr, "ipcbroker-run: %s: %s\n", argv[optind], strerror(errno));
        return errno == ENOENT ? 127 : 126;
}
