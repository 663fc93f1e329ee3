/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* loop-glib: a libipcbroker consumer driven by a GLib main loop.  A unix fd
 * source watches the client's descriptor; a timeout source, re-armed after
 * every ipcb_process, covers the client's next deadline.  The consumer's
 * logic is in ../loop-common/demo.c. */
#include "demo.h"

#include <glib-unix.h>
#include <glib.h>
#include <stdio.h>

static demo d;
static GMainLoop *loop;
static guint timer_id, sem_id;

static gboolean on_sem(gint fd, GIOCondition cond, gpointer userdata);

static gboolean on_timeout(gpointer userdata);

static void process(void) {
        int ms;

        ipcb_process(d.c);
        /* The semaphore's descriptor, once there is one. */
        if (d.sem_fd >= 0 && !sem_id)
                sem_id = g_unix_fd_add(d.sem_fd, G_IO_IN, on_sem, NULL);
        if (timer_id) {
                g_source_remove(timer_id);
                timer_id = 0;
        }
        if (d.done) {
                g_main_loop_quit(loop);
                return;
        }
        ms = ipcb_get_timeout_ms(d.c);
        if (ms >= 0)
                timer_id = g_timeout_add((guint)ms, on_timeout, NULL);
}

static gboolean on_timeout(gpointer userdata) {
        (void)userdata;
        timer_id = 0; /* this source ends: process() must not remove it */
        process();
        return G_SOURCE_REMOVE;
}

static gboolean on_sem(gint fd, GIOCondition cond, gpointer userdata) {
        (void)fd, (void)cond, (void)userdata;
        demo_sem_ready(&d);
        process();
        return G_SOURCE_CONTINUE;
}

static gboolean on_fd(gint fd, GIOCondition cond, gpointer userdata) {
        (void)fd, (void)cond, (void)userdata;
        process();
        return G_SOURCE_CONTINUE;
}

int main(void) {
        guint io;
        int fd;

        if (demo_start(&d) < 0)
                return 1;
        fd = ipcb_get_fd(d.c);
        if (fd < 0)
                return 1;
        loop = g_main_loop_new(NULL, FALSE);
        io = g_unix_fd_add(fd, G_IO_IN, on_fd, NULL);
        process();
        if (!d.done)
                g_main_loop_run(loop);
        g_source_remove(io);
        if (sem_id)
                g_source_remove(sem_id);
        if (timer_id)
                g_source_remove(timer_id);
        g_main_loop_unref(loop);
        return demo_finish(&d, "GLib");
}
