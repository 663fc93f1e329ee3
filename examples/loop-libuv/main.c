/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* loop-libuv: a libipcbroker consumer driven by a libuv loop.  One uv_poll_t
 * watches the client's descriptor, one uv_timer_t its next deadline; both
 * call ipcb_process.  The consumer's logic is in ../loop-common/demo.c. */
#include "demo.h"

#include <stdbool.h>
#include <stdio.h>
#include <uv.h>

static demo d;
static uv_poll_t poll_h, sem_h;
static bool sem_watched;
static uv_timer_t timer_h;

static void on_timer(uv_timer_t *t);
static void on_sem_readable(uv_poll_t *p, int status, int events);

/* Run what is due, then stop or re-arm the timer for the next deadline. */
static void process(void) {
        int ms;

        ipcb_process(d.c);
        /* The semaphore's descriptor, once there is one. */
        if (d.sem_fd >= 0 && !sem_watched) {
                uv_poll_init(poll_h.loop, &sem_h, d.sem_fd);
                uv_poll_start(&sem_h, UV_READABLE, on_sem_readable);
                sem_watched = true;
        }
        if (d.done) {
                uv_poll_stop(&poll_h);
                if (sem_watched)
                        uv_poll_stop(&sem_h);
                uv_timer_stop(&timer_h);
                return;
        }
        ms = ipcb_get_timeout_ms(d.c);
        if (ms < 0)
                uv_timer_stop(&timer_h);
        else
                uv_timer_start(&timer_h, on_timer, (uint64_t)ms, 0);
}

static void on_timer(uv_timer_t *t) {
        (void)t;
        process();
}

static void on_readable(uv_poll_t *p, int status, int events) {
        (void)p, (void)status, (void)events;
        process();
}

static void on_sem_readable(uv_poll_t *p, int status, int events) {
        (void)p, (void)status, (void)events;
        demo_sem_ready(&d);
        process(); /* it may have made requests */
}

int main(void) {
        uv_loop_t *loop = uv_default_loop();
        int fd;

        if (demo_start(&d) < 0)
                return 1;
        fd = ipcb_get_fd(d.c);
        if (fd < 0)
                return 1;
        /* ipcb_get_events() is always POLLIN: readable is all to watch. */
        uv_poll_init(loop, &poll_h, fd);
        uv_poll_start(&poll_h, UV_READABLE, on_readable);
        uv_timer_init(loop, &timer_h);
        process();
        uv_run(loop, UV_RUN_DEFAULT);
        uv_close((uv_handle_t *)&poll_h, NULL);
        if (sem_watched)
                uv_close((uv_handle_t *)&sem_h, NULL);
        uv_close((uv_handle_t *)&timer_h, NULL);
        uv_run(loop, UV_RUN_DEFAULT);
        if (uv_loop_close(loop) != 0)
                return 1;
        return demo_finish(&d, "libuv");
}
