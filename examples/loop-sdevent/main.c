/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* loop-sdevent: a libipcbroker consumer driven by sd-event.  An io source
 * watches the client's descriptor; a CLOCK_MONOTONIC time source is armed
 * at ipcb_get_timeout(), which speaks sd-event's units (absolute µs).  The
 * consumer's logic is in ../loop-common/demo.c. */
#include "demo.h"

#include <poll.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <systemd/sd-event.h>
#include <time.h>

static demo d;
static sd_event_source *timer_src, *sem_src;

static int on_sem(sd_event_source *s, int fd, uint32_t revents, void *userdata);

static int process(sd_event *e) {
        uint64_t usec;

        ipcb_process(d.c);
        /* The semaphore's descriptor, once there is one. */
        if (d.sem_fd >= 0 && !sem_src &&
            sd_event_add_io(e, &sem_src, d.sem_fd, EPOLLIN, on_sem, NULL) < 0)
                return sd_event_exit(e, 1);
        if (d.done)
                return sd_event_exit(e, 0);
        ipcb_get_timeout(d.c, &usec);
        if (usec == UINT64_MAX)
                return sd_event_source_set_enabled(timer_src, SD_EVENT_OFF);
        sd_event_source_set_time(timer_src, usec);
        return sd_event_source_set_enabled(timer_src, SD_EVENT_ONESHOT);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        (void)fd, (void)revents, (void)userdata;
        return process(sd_event_source_get_event(s));
}

static int on_sem(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        (void)fd, (void)revents, (void)userdata;
        demo_sem_ready(&d);
        return process(sd_event_source_get_event(s));
}

static int on_time(sd_event_source *s, uint64_t usec, void *userdata) {
        (void)usec, (void)userdata;
        return process(sd_event_source_get_event(s));
}

int main(void) {
        sd_event *e = NULL;
        sd_event_source *io = NULL;
        int fd, r;

        if (demo_start(&d) < 0)
                return 1;
        fd = ipcb_get_fd(d.c);
        if (fd < 0 || sd_event_default(&e) < 0)
                return 1;
        r = sd_event_add_io(e, &io, fd, (uint32_t)ipcb_get_events(d.c), on_io, NULL);
        if (r >= 0)
                r = sd_event_add_time(e, &timer_src, CLOCK_MONOTONIC, 0, 0, on_time, NULL);
        if (r < 0)
                return 1;
        r = sd_event_loop(e);
        sd_event_source_unref(io);
        sd_event_source_unref(timer_src);
        sd_event_source_unref(sem_src);
        sd_event_unref(e);
        if (r < 0)
                return 1;
        return demo_finish(&d, "sd-event");
}
