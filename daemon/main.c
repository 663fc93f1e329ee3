/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* main.c: ipcbrokerd's command line, start-up and clean shutdown. */
#include "config.h"
#include "fdtable.h"
#include "listener.h"
#include "log.h"
#include "mainloop.h"
#include "notify.h"
#include "os.h"
#include "peer.h"
#include "quota.h"
#include "reaper.h"
#include "registry.h"
#include "sd.h"
#include "store.h"
#include "turns.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <uv.h>

static uv_signal_t sig_term, sig_int;
static bool fd_store = true;           /* --no-fd-store turns it off */
static unsigned restore_grace_ms = 30000; /* --restore-grace */
static unsigned slow_turn_ms = 100;       /* --slow-turn-ms */
static unsigned long fd_table = FDTABLE_START; /* --fd-table */

static void usage(FILE *f) {
        fprintf(f,
                "Usage: ipcbrokerd [OPTIONS]\n"
                "Broker of named shared-memory segments, handed out as sealed memfds.\n\n"
                "  -s, --socket PATH            listen on PATH\n"
                "      --system                 be the system broker: listen on\n"
                "                               /run/ipcbroker/ipcbroker.sock (as root)\n"
                "      --user                   be your own broker: listen on\n"
                "                               $XDG_RUNTIME_DIR/ipcbroker/ipcbroker.sock\n"
                "                               Default: $IPCBROKER_SOCKET if set, else --system\n"
                "                               for root and --user for anyone else.  Clients\n"
                "                               look for your own broker first, then the\n"
                "                               system's (ipcbroker.h, ipcbrokerctl --help)\n"
                "      --no-fd-store            do not keep objects in the service manager's fd\n"
                "                               store (FileDescriptorStoreMax=) across restarts\n"
                "      --restore-grace SECONDS  keep restored transient objects that nobody has\n"
                "                               re-opened for this long after a restart (default 30)\n"
                "      --slow-turn-ms MS        warn of an event-loop turn that works this long\n"
                "                               or longer (default 100; 0: never)\n"
                "      --fd-table N             size the kernel's fd table for N fds at start\n"
                "                               (default 65536, at most the fd limit); it is\n"
                "                               doubled ahead of need after that\n"
                "  -v, --verbose                log debug messages (refusals, connections)\n");
        fprintf(f, "\nLimits, access control and quotas (docs/security.md); sizes take K, M, G, T:\n");
        config_usage(f);
        fprintf(f,
                "  -h, --help                   show this help\n"
                "  -V, --version                show the version\n"
                "\nStarted by systemd, it serves the socket(s) passed in $LISTEN_FDS instead of\n"
                "binding its own, notifies readiness, status and stopping, feeds the watchdog,\n"
                "and takes back the objects it stored (see docs/systemd.md).  Run by hand, its\n"
                "objects live as long as it does: stopping it (Ctrl-C) destroys every one of\n"
                "them, persistent ones too.\n");
}

/* A bad command line: one line and where to look, not the whole help. */
__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...) {
        va_list ap;

        fputs("ipcbrokerd: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs(" (try ipcbrokerd --help)\n", stderr);
        return 2;
}

/* A decimal number in min..max, the whole of s. */
static bool number(const char *s, unsigned long min, unsigned long max, unsigned long *ret) {
        char *end;
        unsigned long v = strtoul(s, &end, 10);

        if (*s == '-' || *end || end == s || v < min || v > max)
                return false;
        *ret = v;
        return true;
}

/* Where to listen, when neither --socket nor a service manager says. */
static int default_socket(listener_which which, const char **ret) {
        int k = listener_path(which, ret);

        if (k == -EDESTADDRREQ)
                fprintf(stderr,
                        "ipcbrokerd: nowhere to listen: $XDG_RUNTIME_DIR is not set, so there is no "
                        "per-user socket, and the system broker's (/run/ipcbroker/ipcbroker.sock) is "
                        "root's.  Give a path (--socket PATH; clients: IPCBROKER_SOCKET=PATH), set "
                        "XDG_RUNTIME_DIR (a login session does), or run the system broker as root "
                        "(--system, or systemctl start ipcbroker.socket).\n");
        else if (k < 0)
                fprintf(stderr, "ipcbrokerd: the default socket path is too long\n");
        return k;
}

/* listener_bind, and a way out when the system path is not ours to take. */
static int bind_hint(uv_loop_t *loop) {
        int k = listener_bind(loop, cfg.socket_path);

        if ((k == -EACCES || k == -EPERM) && geteuid() != 0 &&
            strcmp(cfg.socket_path, "/run/ipcbroker/ipcbroker.sock") == 0)
                log_err("the system broker runs as root (or under systemd: systemctl start "
                        "ipcbroker.socket); for a broker of your own use --user or --socket PATH");
        return k;
}

static void on_signal(uv_signal_t *h, int signum) {
        log_info("received %s, shutting down", strsignal(signum));
        sd_stopping();
        peer_release_all(); /* the dead are settled by this broker */
        store_freeze(); /* clients live on: the next broker takes the objects back */
        store_stop();
        listener_close();
        peer_close_all();
        reaper_fini();
        turns_stop();
        fdtable_stop();
        uv_close((uv_handle_t *)&sig_term, NULL);
        uv_close((uv_handle_t *)&sig_int, NULL);
        (void)h;
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "socket", required_argument, NULL, 's' },
                { "system", no_argument, NULL, 'Y' },
                { "user", no_argument, NULL, 'U' },
                { "verbose", no_argument, NULL, 'v' },
                { "no-fd-store", no_argument, NULL, 'S' },
                { "restore-grace", required_argument, NULL, 'G' },
                { "slow-turn-ms", required_argument, NULL, 'T' },
                { "fd-table", required_argument, NULL, 'F' },
                CONFIG_LONG_OPTIONS,
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        listener_which which = LISTEN_DEFAULT;
        uv_loop_t loop;
        unsigned long v;
        long nofile;
        int c, k;

        opterr = 0; /* our own one-line messages */
        while ((c = getopt_long(argc, argv, ":s:vhV", opts, NULL)) != -1) {
                switch (c) {
                case 's': cfg.socket_path = optarg; break;
                case 'Y': which = LISTEN_SYSTEM; break;
                case 'U': which = LISTEN_USER; break;
                case 'v': log_verbose = true; break;
                case 'S': fd_store = false; break;
                case 'G':
                        if (!number(optarg, 0, 86400, &v))
                                return usage_error("invalid grace '%s' (seconds, 0..86400)", optarg);
                        restore_grace_ms = (unsigned)v * 1000;
                        break;
                case 'T':
                        if (!number(optarg, 0, 60000, &v))
                                return usage_error("invalid turn time '%s' (ms, 0..60000)", optarg);
                        slow_turn_ms = (unsigned)v;
                        break;
                case 'F':
                        if (!number(optarg, 64, 1ul << 30, &v))
                                return usage_error("invalid fd table size '%s' (64..%lu)", optarg, 1ul << 30);
                        fd_table = v;
                        break;
                case 'h': usage(stdout); return 0;
                case 'V': printf("ipcbrokerd %s\n", IPCB_VERSION); return 0;
                case ':': return usage_error("option '%s' needs a value", argv[optind - 1]);
                case '?':
                        if (optopt)
                                return usage_error("unknown option '-%c'", optopt);
                        return usage_error("unknown option '%s'", argv[optind - 1]);
                default:
                        k = config_option(c, optarg);
                        if (k > 0)
                                break;
                        if (k == 0)
                                return usage_error("unknown option '%s'", argv[optind - 1]);
                        fputs("(try ipcbrokerd --help)\n", stderr);
                        return 2;
                }
        }
        if (optind != argc)
                return usage_error("unexpected argument '%s'", argv[optind]);
        if (config_finish() < 0)
                return 2;
        log_init();
        /* Without sockets from a manager: --socket, else the default. */
        if (!cfg.socket_path && sd_listen_fds(0) <= 0 && default_socket(which, &cfg.socket_path) < 0)
                return 1;
        signal(SIGPIPE, SIG_IGN);
        nofile = os_raise_nofile();
        config_fd_budget(nofile);
        (void)quota_load_subuids(cfg.subuid_file); /* before the store charges its objects */

        /* The fd table first: before the reaper's threads, it grows for free. */
        if ((k = uv_loop_init(&loop)) < 0 || (k = mainloop_init(&loop)) < 0 ||
            (k = fdtable_start(&loop, fd_table, nofile)) < 0 ||
            (k = registry_init()) < 0 ||
            (k = reaper_init(&loop)) < 0 || (k = peer_init(&loop)) < 0) {
                log_err("cannot initialise: %s", strerror(-k));
                return 1;
        }
        turns_start(slow_turn_ms);
        /* Sockets passed by a manager replace our own; without any, bind. */
        if ((k = sd_listen(&loop)) < 0 || (k == 0 && bind_hint(&loop) < 0) ||
            store_start(&loop, fd_store, restore_grace_ms) < 0) {
                listener_close();
                store_stop();
                peer_close_all();
                reaper_fini();
                turns_stop();
                fdtable_stop();
                mainloop_run();
                mainloop_fini();
                registry_fini();
                uv_loop_close(&loop);
                return 1;
        }
        uv_signal_init(&loop, &sig_term);
        uv_signal_init(&loop, &sig_int);
        uv_signal_start(&sig_term, on_signal, SIGTERM);
        uv_signal_start(&sig_int, on_signal, SIGINT);
        sd_ready(&loop);
        if (!notify_enabled())
                log_info("run by hand: objects live as long as this process; stopping it "
                         "(Ctrl-C) destroys every one of them, persistent ones too");

        mainloop_run();

        mainloop_fini();
        registry_fini();
        quota_fini();
        k = uv_loop_close(&loop);
        if (k < 0) {
                log_err("event loop did not close cleanly: %s", uv_strerror(k));
                return 1;
        }
        log_info("stopped");
        return 0;
}
