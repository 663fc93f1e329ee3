/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* peer.h: one connected client.  A peer owns its socket, its handles (each a
 * reference on an object) and its queue of unsent replies; peer_close
 * releases all of them, whatever the reason the connection ends. */
#pragma once

#include "mainloop.h"
#include "object.h"
#include "policy.h"
#include "proto.h"

#include <stdbool.h>
#include <uv.h>

typedef struct handle_slot {
        object *obj;        /* NULL: free */
        uint32_t gen;       /* the connection's count of handles when made: stale ids miss */
        uint8_t access;     /* IPCB_WA_* */
        bool polled;        /* registered as a poller (sempoll.c) */
        uint32_t sem_slot;  /* semaphore undo slot (index + 1), 0: none */
        uint32_t lock_token; /* segment lock token, 0: none */
        uint64_t owed;      /* undo handle: tokens to take back when it goes (SEM_OWE) */
} handle_slot;

typedef struct queued_reply queued_reply;

/* A request served off the loop (access.c: FREEZE, on a reaper worker):
 * its connection is not read until it is done.  p is cleared if the
 * connection goes first. */
typedef struct peer_op {
        struct peer *p;
} peer_op;

enum { PEER_WATCH_DROP_PENDING = 1, PEER_WATCH_DROP_QUEUED = 2 };

typedef struct peer {
        int fd;
        /* Watches the connecting process once it holds undo tokens or lock
         * tokens: they are given back when it exits, even if the connection
         * lives on in a child that inherited the socket. */
        int pidfd;
        mainloop_watcher pid_w; /* the pidfd in the wait set, until it fires */
        cred cred;
        bool hello_done;
        bool closing;
        mainloop_watcher conn_w; /* the socket in the wait set (mainloop.h) */

        /* Its handle slots, in pages (peer.c): pages[i] is NULL or holds
         * slots i * HANDLE_PAGE on, for i < pages_top; open_pages: those
         * with a free slot; page_hole: no free entry below it. */
        struct handle_page **pages, *open_pages;
        uint32_t npages, pages_top, page_hole;
        uint32_t gen, nhandles;
        /* Its holder records (peer.c), one per object it holds handles
         * on, by object: open addressing, at most half full. */
        struct holder **held;
        uint32_t held_mask, nheld;

        queued_reply *q_head, *q_tail;
        unsigned q_len;
        unsigned q_fds;     /* the daemon's copies of fds in queued replies */
        /* fds sent in replies that the client may not have read yet (in
         * flight: counted by the kernel against the daemon's uid) */
        unsigned fds_unread;
        /* The length of its last fd-carrying reply, and what the
         * datagrams sent after it were measured to cost the kernel:
         * inflight_refresh, peer.c */
        size_t fds_reply_len;
        uint64_t after_cost;
        struct reaper_account *reaping; /* its fds waiting to be closed */
        bool throttled;     /* not read for now (or lingering) */
        /* Since when (loop ms; 0: not) it has not been read for its
         * client's unread replies with nothing read by the client, and how
         * much of them was unread then (SIOCOUTQ): unread_check, peer.c */
        uint64_t unread_since;
        int unread_outq;
        bool lingering;     /* closed, its unread replies still carry fds */
        bool draining;      /* and a worker reads its queue (close_done): the
                             * last close of its socket is a plain one */
        bool store_wait;    /* its next request stores an fd: read once the
                             * service manager caught up (notify_congested) */
        struct peer *thr_prev, *thr_next;
        /* Its last reads found nothing after the first request: it waits
         * for each reply, and the socket is not asked again (peer_read). */
        bool one_by_one;
        uint8_t one_count;
        /* Hung up, waiting (unread) for its turn to be closed (peer.c:
         * peer_hangup), in the order the hang-ups came. */
        bool hup_queued;
        struct peer *hup_prev, *hup_next;
        /* Closed holding more handles than one turn should release: they
         * go a slice a turn (peer.c, release_step), a few steps of each
         * such connection in turn.  rel_at: the slot (or holder table
         * entry) to do next.
         * rel_live: not closed, its process exited: what the handles hold
         * is being settled so, and it is not read until that is done. */
        uint32_t rel_at, rel_sums; /* rel_sums: holder records with a sum to settle */
        uint8_t rel_phase;
        bool rel_live;
        struct peer *rel_next, *rel_more; /* rel_more: its uid's next (peer.c, release_queue) */

        /* The fd that came with the request being dispatched (SHM_REGISTER
         * only), -1 otherwise.  A handler that keeps it sets it to -1; the
         * peer closes whatever is left after dispatch. */
        int rx_fd;
        bool conn_charged;  /* counted in its uid's connection quota */
        /* watches (watch.c): how many, and whether events are being
         * dropped (an OVERFLOW is owed: PENDING, or queued: QUEUED) */
        unsigned nwatches;
        uint8_t watch_drop;
        unsigned npollers; /* semaphore pollers (sempoll.c) */
        int refuse;         /* < 0: over quota; the first request gets this */
        peer_op *off_loop;  /* its request being served off the loop, or NULL */

        struct peer *prev, *next;
        /* Its uid's connections charged to its quota (conn_charged; peer.c) */
        struct peer *uid_prev, *uid_next;
        struct peer *dead_next; /* finished, waiting to be freed */
} peer;

/* Set up what all peers share (once, before peer_new). */
int peer_init(uv_loop_t *loop);
/* Take ownership of connected socket fd; on failure fd is closed. */
int peer_new(int fd);
/* Start closing: releases queued replies now, and handles now unless there
 * are more than a turn should release (then over the next turns, shared
 * with other such connections; it is out of the wait set and the peer list
 * at once);
 * the peer itself is freed when the loop turn ends (a caller may still
 * hold it) after its last handle went. */
void peer_close(peer *p);
void peer_close_all(void);
/* Finish every closed connection's release now (shutdown, before the fd
 * store freezes: a release half done holds undo tokens only in its sums). */
void peer_release_all(void);
unsigned peer_count(void);
/* Closed connections whose unread replies still carry fds (peer_close). */
unsigned peer_lingering(void);

/* Send a reply carrying nfds borrowed fds; queued (with private copies of the
 * fds) if the socket is full.  May close the peer. */
void peer_reply(peer *p, const ipcb_msg *m, const int *fds, unsigned nfds);
/* Send one datagram of len bytes with nfds fds (borrowed) on p's socket,
 * never waiting, and count it (the fds in flight).  0, -EAGAIN (the
 * socket is full), or another negative errno (broken).  For what
 * peer_reply does not send: watch events (watch.c). */
int peer_send(peer *p, const uint8_t *buf, size_t len, const int *fds, unsigned nfds);
void peer_reply_error(peer *p, const ipcb_hdr *req, int status);

/* The connections holding handles on o (HOLDERS): up to max records into
 * recs, one per connection, in no particular order; returns how many there
 * are in all (may exceed max).  Walks o's holder records: one per
 * connection holding it, closed ones still releasing included (skipped). */
unsigned peer_holders(const object *o, ipcb_holder_rec *recs, unsigned max);

/* op (its p set) serves p's current request off the loop: p is not read
 * until peer_op_done(op), on the loop thread, when its reply is sent. */
void peer_op_start(peer *p, peer_op *op);
void peer_op_done(peer_op *op);

/* Handles.  handle_add returns the handle id (> 0) or a negative errno; it
 * takes a reference on o. */
int64_t peer_handle_add(peer *p, object *o, uint32_t access);
handle_slot *peer_handle_get(peer *p, uint64_t id);
/* Start watching the peer's process for its exit (idempotent). */
int peer_watch_process(peer *p);
void peer_handle_release(peer *p, uint64_t id);
