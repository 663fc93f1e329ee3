/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sd.c: systemd integration: socket activation (one or more passed
 * listening sockets), Type=notify readiness, STATUS= kept current, and the
 * watchdog.  Messages go through notify.c, which never blocks.  Without a
 * manager every call here is a cheap no-op. */
#include "sd.h"

#include "listener.h"
#include "log.h"
#include "notify.h"
#include "peer.h"
#include "registry.h"
#include "store.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#define STATUS_PERIOD_MS 1000

static uv_timer_t status_timer, watchdog_timer;
static bool status_on, watchdog_on;
static unsigned last_clients = -1u;
static size_t last_objects = (size_t)-1;

int sd_listen(uv_loop_t *loop) {
        char **names = NULL;
        int n, served = 0, refused = 0;

        /* First: store_start may already tell the manager to drop fds. */
        (void)notify_init();
        n = sd_listen_fds_with_names(1, &names);
        if (n < 0) {
                log_err("cannot take the passed fds: %s", strerror(-n));
                return n;
        }
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                const char *name = names && names[i] ? names[i] : "unknown";

                if (store_owns_name(name)) {
                        store_collect(fd, name);
                        continue;
                }
                if (sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, NULL, 0) <= 0) {
                        log_err("refusing passed fd %d (%s): not a listening SOCK_SEQPACKET Unix socket",
                                fd, name);
                        close(fd);
                        refused++;
                        continue;
                }
                if (listener_adopt(loop, fd, name) < 0) {
                        close(fd);
                        refused++;
                        continue;
                }
                served++;
        }
        for (int i = 0; names && i < n; i++)
                free(names[i]);
        free(names);
        if (served == 0 && refused > 0) {
                log_err("none of the passed sockets can be served");
                return -EBADF;
        }
        return served;
}

static void send_status(bool ready) {
        unsigned clients = peer_count();
        size_t objects = registry_count();
        char msg[160];

        if (!ready && clients == last_clients && objects == last_objects)
                return;
        last_clients = clients;
        last_objects = objects;
        snprintf(msg, sizeof(msg), "%sSTATUS=Serving %u client%s, %zu object%s", ready ? "READY=1\n" : "",
                 clients, clients == 1 ? "" : "s", objects, objects == 1 ? "" : "s");
        notify_state(ready ? NOTIFY_READY : NOTIFY_STATUS, msg);
}

static void on_status(uv_timer_t *t) {
        (void)t;
        send_status(false);
}

static void on_watchdog(uv_timer_t *t) {
        (void)t;
        notify_state(NOTIFY_WATCHDOG, "WATCHDOG=1");
}

void sd_ready(uv_loop_t *loop) {
        uint64_t usec = 0;

        send_status(true);
        if (!notify_enabled())
                return;
        uv_timer_init(loop, &status_timer);
        uv_timer_start(&status_timer, on_status, STATUS_PERIOD_MS, STATUS_PERIOD_MS);
        status_on = true;
        if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
                uint64_t ms = usec / 2000;
                uv_timer_init(loop, &watchdog_timer);
                uv_timer_start(&watchdog_timer, on_watchdog, 0, ms ? ms : 1);
                watchdog_on = true;
                log_debug("watchdog: pinging every %llu ms", (unsigned long long)(ms ? ms : 1));
        }
}

void sd_stopping(void) {
        notify_state(NOTIFY_STOPPING, "STOPPING=1\nSTATUS=Shutting down");
        notify_fini();
        if (status_on)
                uv_close((uv_handle_t *)&status_timer, NULL);
        if (watchdog_on)
                uv_close((uv_handle_t *)&watchdog_timer, NULL);
        status_on = watchdog_on = false;
}
