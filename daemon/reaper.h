/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* reaper.h: closes fds that came from clients, off the loop thread.
 *
 * close() of a foreign fd can block: a TCP socket with SO_LINGER and a full
 * send queue waits up to its linger time, a FUSE file waits for its server,
 * and the last close of a Unix socket releases whatever fds sit unread in
 * its queue (which may be such files).  The loop thread never does that: it
 * hands the fd to a pool of worker threads.  What a client has waiting here
 * is counted (reaper_account), so that its connection can stop being read
 * while its fds are not yet closed, and nothing grows without bound when a
 * worker is stuck.
 *
 * A close that never ends (a FUSE server that stopped answering) holds its
 * worker for good, so closes are taken per uid: at most REAPER_PER_UID of
 * one uid's closes run at once, the uids take turns, and the pool grows
 * (to REAPER_THREADS_MAX) while every worker is busy.  A uid whose closes
 * are stuck holds up only its own closes, and many uids' stuck jobs (32
 * uids' closes, or 16 uids' closes and runs: REAPER_PER_UID in each lane,
 * REAPER_THREADS_MAX in all) hold up only what the pool does: not the
 * daemon's own files (a segment's memfd, whose last close frees its
 * pages: 0.1 ms per MiB), which a thread of their own closes, nor
 * clients' sockets that hold no fds (reaper_close_socket), which that
 * thread closes too.  A uid's runs (reaper_run) wait in a lane apart from
 * its closes. */
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
/* Run work(arg) on a worker, among the jobs of a's uid, then done(arg) on
 * the loop thread, then free(arg); a is charged meanwhile, as for a close
 * (its done callback runs after done).  For what may wait on something a
 * client controls (a seal on a memfd a writer holds).  If the reaper stops
 * first, done is not called; arg is still freed (work must leave nothing
 * else).  If no worker can be had, everything runs here, now. */
void reaper_run(reaper_account *a, void (*work)(void *), void (*done)(void *), void *arg);
/* Closes and runs of the account not yet done. */
unsigned reaper_account_pending(const reaper_account *a);
/* The owner is gone: done is not called any more; the account is freed
 * once its last close finished.  NULL is fine. */
void reaper_account_release(reaper_account *a);
/* Close fd off the loop, among the closes of a's uid; a is charged until it
 * is closed.  If no worker can be had, the fd is closed here. */
void reaper_close(int fd, reaper_account *a);
/* A client's connection socket, of uid's (uid -1: not known), charged to
 * nobody: once its queue is known to hold no fd the client sent (read
 * here, while the loop's turn has budget left, else in a later turn; the
 * client can no longer send once this is called) it is closed with the
 * daemon's own files, else among uid's closes. */
void reaper_close_socket(int fd, uid_t uid);
/* A copy of a client's connection socket that stays open (shut down for
 * reading): what its queue holds is read among uid's closes, and the fds
 * that came with it closed, then fd is closed.  The queue may hold the
 * client's own end of the connection, which lives on until then. */
void reaper_drain_socket(int fd, uid_t uid);
/* The same for a file only the daemon made (a memfd): its close takes CPU
 * time but waits on nobody, so it waits behind no uid's closes, on a
 * thread of its own. */
void reaper_close_own(int fd);
/* The same for a large block of memory (free(3) of one that malloc mapped
 * unmaps it: tens of microseconds, with the threads' TLBs shot down). */
void reaper_free_own(void *mem);
/* fds handed over and not yet closed (all accounts). */
unsigned reaper_pending(void);
/* Stop: no more completions are delivered; workers still closing are left
 * to finish (or to die with the process). */
void reaper_fini(void);
