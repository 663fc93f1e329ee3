/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* main.c: ipcbrokerd's command line, start-up and clean shutdown. */
#include "config.h"
#include "listener.h"
#include "log.h"
#include "os.h"
#include "peer.h"
#include "quota.h"
#include "reaper.h"
#include "registry.h"
#include "sd.h"
#include "store.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <uv.h>

#define IPCBROKERD_VERSION "0.1.0"

static uv_signal_t sig_term, sig_int;
static bool fd_store = true;           /* --no-fd-store turns it off */
static unsigned restore_grace_ms = 30000; /* --restore-grace */

static void usage(FILE *f) {
        fprintf(f,
                "Usage: ipcbrokerd [OPTIONS]\n"
                "Broker of named shared-memory segments, handed out as sealed memfds.\n\n"
                "  -s, --socket PATH            listen on PATH (default: $IPCBROKER_SOCKET, else\n"
                "                               $XDG_RUNTIME_DIR/ipcbroker/ipcbroker.sock for a\n"
                "                               non-root user, else /run/ipcbroker/ipcbroker.sock)\n"
                "      --no-fd-store            do not keep objects in the service manager's fd\n"
                "                               store (FileDescriptorStoreMax=) across restarts\n"
                "      --restore-grace SECONDS  keep restored transient objects that nobody has\n"
                "                               re-opened for this long after a restart (default 30)\n"
                "  -v, --verbose                log debug messages (refusals, connections)\n");
        fprintf(f, "\nLimits, access control and quotas (docs/security.md); sizes take K, M, G, T:\n");
        config_usage(f);
        fprintf(f,
                "  -h, --help                   show this help\n"
                "  -V, --version                show the version\n"
                "\nStarted by systemd, it serves the socket(s) passed in $LISTEN_FDS instead of\n"
                "binding its own, notifies readiness, status and stopping, feeds the watchdog,\n"
                "and takes back the objects it stored (see docs/systemd.md).\n");
}

static void on_signal(uv_signal_t *h, int signum) {
        log_info("received %s, shutting down", strsignal(signum));
        sd_stopping();
        store_freeze(); /* clients live on: the next broker takes the objects back */
        store_stop();
        listener_close();
        peer_close_all();
        reaper_fini();
        uv_close((uv_handle_t *)&sig_term, NULL);
        uv_close((uv_handle_t *)&sig_int, NULL);
        (void)h;
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "socket", required_argument, NULL, 's' },
                { "verbose", no_argument, NULL, 'v' },
                { "no-fd-store", no_argument, NULL, 'S' },
                { "restore-grace", required_argument, NULL, 'G' },
                CONFIG_LONG_OPTIONS,
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        uv_loop_t loop;
        int c, k;

        while ((c = getopt_long(argc, argv, "s:vhV", opts, NULL)) != -1) {
                switch (c) {
                case 's': cfg.socket_path = optarg; break;
                case 'v': log_verbose = true; break;
                case 'S': fd_store = false; break;
                case 'G': {
                        char *end;
                        unsigned long v = strtoul(optarg, &end, 10);
                        if (*optarg == '-' || *end || end == optarg || v > 86400) {
                                fprintf(stderr, "ipcbrokerd: invalid grace: %s\n", optarg);
                                return 2;
                        }
                        restore_grace_ms = (unsigned)v * 1000;
                        break;
                }
                case 'h': usage(stdout); return 0;
                case 'V': printf("ipcbrokerd %s\n", IPCBROKERD_VERSION); return 0;
                default:
                        k = config_option(c, optarg);
                        if (k > 0)
                                break;
                        if (k == 0)
                                usage(stderr);
                        return 2;
                }
        }
        if (optind != argc) {
                usage(stderr);
                return 2;
        }
        if (config_finish() < 0)
                return 2;
        log_init();
        if (!cfg.socket_path && !(cfg.socket_path = listener_default_path())) {
                log_err("default socket path is too long");
                return 1;
        }
        signal(SIGPIPE, SIG_IGN);
        config_fd_budget(os_raise_nofile());

        if ((k = uv_loop_init(&loop)) < 0 || (k = registry_init()) < 0 ||
            (k = reaper_init(&loop)) < 0 || (k = peer_init(&loop)) < 0) {
                log_err("cannot initialise: %s", strerror(-k));
                return 1;
        }
        /* Sockets passed by a manager replace our own; without any, bind. */
        if ((k = sd_listen(&loop)) < 0 || (k == 0 && listener_bind(&loop, cfg.socket_path) < 0) ||
            store_start(&loop, fd_store, restore_grace_ms) < 0) {
                listener_close();
                store_stop();
                peer_close_all();
                reaper_fini();
                uv_run(&loop, UV_RUN_DEFAULT);
                registry_fini();
                uv_loop_close(&loop);
                return 1;
        }
        uv_signal_init(&loop, &sig_term);
        uv_signal_init(&loop, &sig_int);
        uv_signal_start(&sig_term, on_signal, SIGTERM);
        uv_signal_start(&sig_int, on_signal, SIGINT);
        sd_ready(&loop);

        uv_run(&loop, UV_RUN_DEFAULT);

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
