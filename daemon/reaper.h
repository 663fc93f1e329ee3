/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* reaper.h: closes fds that came from clients, off the loop thread.
 *
 * close() of a foreign fd can block: a TCP socket with SO_LINGER and a full
 * send queue waits up to its linger time, a FUSE file waits for its server,
 * and the last close of a Unix socket releases whatever fds sit unread in
 * its queue (which may be such files).  The loop thread never does that: it
 * hands the fd to a small pool of worker threads.  What a client has
 * waiting here is counted (reaper_account), so that its connection can stop
 * being read while its fds are not yet closed, and nothing grows without
 * bound when a worker is stuck. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include <uv.h>

/* Counts one client's fds waiting to be closed, for its connection and
 * (QUOTA_REAPING) for its uid.  Owned by the loop thread. */
typedef struct reaper_account reaper_account;

int reaper_init(uv_loop_t *loop);
/* An account for a connection of uid; done(userdata) runs on the loop
 * thread whenever one of its closes finished.  NULL on ENOMEM. */
reaper_account *reaper_account_new(uid_t uid, void (*done)(void *userdata), void *userdata);
/* fds of the account not yet closed. */
unsigned reaper_account_pending(const reaper_account *a);
/* The owner is gone: done is not called any more; the account is freed
 * once its last close finished.  NULL is fine. */
void reaper_account_release(reaper_account *a);
/* Close fd off the loop; a (may be NULL) is charged until it is closed.
 * If no worker can be had, the fd is closed here. */
void reaper_close(int fd, reaper_account *a);
/* reaper_close(fd, NULL), as util/sock.c's discard callback. */
void reaper_discard(int fd);
/* fds handed over and not yet closed (all accounts). */
unsigned reaper_pending(void);
/* Stop: no more completions are delivered; workers still closing are left
 * to finish (or to die with the process). */
void reaper_fini(void);
