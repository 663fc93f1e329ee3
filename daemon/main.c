/* main.c: ipcbrokerd's command line, start-up and clean shutdown. */
#include "config.h"
#include "listener.h"
#include "log.h"
#include "os.h"
#include "peer.h"
#include "registry.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <uv.h>

#define IPCBROKERD_VERSION "0.1.0"

config cfg = {
        .max_segment_size = 1ull << 30,
        .max_queued_replies = 32,
};

static uv_signal_t sig_term, sig_int;

static void usage(FILE *f) {
        fprintf(f,
                "Usage: ipcbrokerd [OPTIONS]\n"
                "Broker of named shared-memory segments, handed out as sealed memfds.\n\n"
                "  -s, --socket PATH            listen on PATH (default: $IPCBROKER_SOCKET, else\n"
                "                               $XDG_RUNTIME_DIR/ipcbroker/ipcbroker.sock for a\n"
                "                               non-root user, else /run/ipcbroker/ipcbroker.sock)\n"
                "      --max-segment-size BYTES largest segment a client may create\n"
                "                               (default 1073741824; suffixes K, M, G)\n"
                "  -v, --verbose                log debug messages (refusals, connections)\n"
                "  -h, --help                   show this help\n"
                "  -V, --version                show the version\n");
}

static int parse_size(const char *s, uint64_t *ret) {
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s || *s == '-')
                return -EINVAL;
        switch (*end) {
        case 'K': v <<= 10; end++; break;
        case 'M': v <<= 20; end++; break;
        case 'G': v <<= 30; end++; break;
        default: break;
        }
        if (*end || v == 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

static void on_signal(uv_signal_t *h, int signum) {
        log_info("received %s, shutting down", strsignal(signum));
        sd_notify(0, "STOPPING=1");
        listener_close();
        peer_close_all();
        uv_close((uv_handle_t *)&sig_term, NULL);
        uv_close((uv_handle_t *)&sig_int, NULL);
        (void)h;
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "socket", required_argument, NULL, 's' },
                { "max-segment-size", required_argument, NULL, 'm' },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        uv_loop_t loop;
        int c, k;

        while ((c = getopt_long(argc, argv, "s:vhV", opts, NULL)) != -1) {
                switch (c) {
                case 's': cfg.socket_path = optarg; break;
                case 'm':
                        if (parse_size(optarg, &cfg.max_segment_size) < 0) {
                                fprintf(stderr, "ipcbrokerd: invalid size: %s\n", optarg);
                                return 2;
                        }
                        break;
                case 'v': log_verbose = true; break;
                case 'h': usage(stdout); return 0;
                case 'V': printf("ipcbrokerd %s\n", IPCBROKERD_VERSION); return 0;
                default: usage(stderr); return 2;
                }
        }
        if (optind != argc) {
                usage(stderr);
                return 2;
        }
        log_init();
        if (!cfg.socket_path && !(cfg.socket_path = listener_default_path())) {
                log_err("default socket path is too long");
                return 1;
        }
        signal(SIGPIPE, SIG_IGN);
        log_debug("file descriptor limit: %ld", os_raise_nofile());

        if ((k = uv_loop_init(&loop)) < 0 || (k = registry_init()) < 0) {
                log_err("cannot initialise: %s", strerror(-k));
                return 1;
        }
        if (listener_bind(&loop, cfg.socket_path) < 0) {
                registry_fini();
                uv_loop_close(&loop);
                return 1;
        }
        uv_signal_init(&loop, &sig_term);
        uv_signal_init(&loop, &sig_int);
        uv_signal_start(&sig_term, on_signal, SIGTERM);
        uv_signal_start(&sig_int, on_signal, SIGINT);
        sd_notify(0, "READY=1");

        uv_run(&loop, UV_RUN_DEFAULT);

        registry_fini();
        k = uv_loop_close(&loop);
        if (k < 0) {
                log_err("event loop did not close cleanly: %s", uv_strerror(k));
                return 1;
        }
        log_info("stopped");
        return 0;
}
