/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* loop.h: what loop.c (requests in flight, the loop's descriptor) and
 * async.c (the asynchronous requests themselves) share.  Not installed. */
#pragma once

#include "internal.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* What an asynchronous request becomes once it is answered. */
enum {
        ASYNC_SHM,   /* SHM_CREATE / SHM_OPEN: an ipcb_shm */
        ASYNC_SEM,   /* SEM_CREATE / SEM_OPEN: an ipcb_sem */
        ASYNC_STAT,  /* STAT: an ipcb_object_info */
        ASYNC_DONE,  /* status only (UNLINK, SET_ACCESS, HELLO) */
        ASYNC_FREEZE, /* status: the seals */
        ASYNC_MEMFD, /* status: the fd */
        ASYNC_EVENT, /* not a request: a watch event (rbuf), or an overflow */
        ASYNC_WATCH, /* WATCH_ADD: the broker's id goes to watch `size` */
        ASYNC_REGISTER, /* SHM_REGISTER: an ipcb_shm on keep_fd */
        ASYNC_QUOTA, /* QUOTA of one uid: an ipcb_quota_info */
        ASYNC_LIST,  /* LIST, page by page (async.c: page_complete) */
        ASYNC_QUOTA_LIST, /* QUOTA with IPCB_QF_ALL, page by page */
};

/* One watch (watch.c): its id for the caller stays, the broker's id
 * changes when the library reconnects. */
typedef struct client_watch {
        struct client_watch *next;
        uint64_t id, broker_id;
        int kind;
        unsigned flags, events;
        char *name;
        ipcb_watch_cb cb;
        void *userdata;
} client_watch;

/* Events kept for ipcb_process at most; more are dropped for an overflow. */
#define LOOP_EVENTS_MAX 4096u

/* One asynchronous request.  Lives on up to three lists: in flight (pend:
 * sent or queued, its reply owed), queued for sending (out), and answered
 * (done: waiting for ipcb_process to run its callback).  A request that
 * timed out or was cancelled stays in flight (cancelled) until its reply
 * comes, so that the reply is recognised and disposed of.  A listing
 * (ASYNC_LIST, ASYNC_QUOTA_LIST) is one entry for all its pages: once a
 * page has been handed to its callback, the entry is sent again for the
 * next page, keeping its cookie. */
typedef struct client_async {
        struct client_async *pnext, *onext, *dnext;
        bool in_pend, in_done, running; /* running: its callback is running */
        bool cancelled; /* nobody wants the reply any more */
        uint32_t id;    /* the wire id */
        uint64_t cookie;
        uint16_t op;
        bool has_deadline;
        struct timespec deadline;
        /* the outcome: a reply (has_reply), else status */
        int status;
        bool has_reply, rlost, stale; /* stale: its connection died since */
        uint8_t *rbuf;
        size_t rlen;
        int rfds[IPCB_FDS_MAX];
        unsigned rnfds;
        /* not yet sent (the socket was full) */
        uint8_t *out;
        size_t out_len;
        int out_fd;
        /* what to make of it */
        int what; /* ASYNC_* */
        char *name;
        int access;     /* ASYNC_SHM: the access asked for */
        uint32_t flags; /* ASYNC_SEM: IPCB_SEM_UNDO or 0; ASYNC_LIST: the kind */
        size_t size;    /* ASYNC_MEMFD */
        int keep_fd;    /* ASYNC_REGISTER: our copy of the memfd for the handle, or -1 */
        /* Listings: where the next page starts; later pages go out on
         * connection conn_gen only (same_conn).  stop: ipcb_cancel while
         * its callbacks ran; ending: its final call runs (too late to
         * cancel).  Both qlock. */
        uint64_t cursor;
        uint32_t conn_gen;
        bool same_conn, stop, ending;
        union async_cb {
                ipcb_shm_cb shm;
                ipcb_sem_cb sem;
                ipcb_stat_cb stat;
                ipcb_done_cb done;
                ipcb_quota_cb quota;
                ipcb_list_cb list;
                ipcb_quota_list_cb quota_list;
        } cb;
        void *userdata;
} client_async;

typedef struct client_loop {
        pthread_mutex_t qlock;    /* the lists (after c->lock, never before) */
        pthread_mutex_t dispatch; /* one thread runs callbacks at a time */
        int epfd, efd;            /* -1 until ipcb_get_fd */
        bool woken;               /* efd is readable (qlock) */
        bool quiet;               /* ipcb_process is receiving: no wake-up (qlock) */
        int sock_fd;              /* the socket in the epoll set, or -1 */
        uint32_t sock_events;
        client_async *pend_head, *pend_tail; /* c->lock and qlock to change */
        client_async *out_head, *out_tail;   /* c->lock */
        client_async *done_head, *done_tail; /* qlock */
        client_async *running;    /* the entry whose callback runs, or NULL (qlock) */
        uint64_t next_cookie;
        client_watch *watches;    /* c->lock and qlock to change */
        uint64_t next_watch;
        struct client_wait *waits; /* qlock */
        unsigned nevents;         /* ASYNC_EVENT entries in done (qlock) */
        bool events_lost;         /* an overflow is owed (qlock) */
} client_loop;

client_async *ipcb__async_new(void);
void ipcb__async_free(client_async *e);
bool ipcb__async_unused(const client_async *e);
/* c->lock held: make c->loop if need be. */
int ipcb__loop_ensure(ipcb_client *c, client_loop **ret);
/* Send req (its fd send_fd, borrowed, or -1) as asynchronous request e,
 * which the loop owns on success (0, *ret_cookie); on failure the caller
 * still owns e and nothing was sent. */
int ipcb__loop_submit(ipcb_client *c, ipcb_msg *req, client_async *e, int send_fd,
                uint64_t *ret_cookie);
/* watch.c: the WATCH_ADD reply for watch (local id) `id` came (c->lock
 * and qlock held): record the broker's id at once, before any event. */
void ipcb__watch_added(client_loop *l, uint64_t id, const ipcb_msg *reply);
/* watch.c: complete an ASYNC_WATCH entry (no lock held). */
void ipcb__watch_add_complete(ipcb_client *c, client_async *e, int status);
/* watch.c: forget watch id and tell the broker without waiting. */
void ipcb__watch_drop(ipcb_client *c, uint64_t id);
/* wait.c: waits past their deadline, or cancelled (dispatch lock held). */
void ipcb__wait_expire(ipcb_client *c);
/* wait.c: the earliest wait deadline (µs), or UINT64_MAX (qlock held). */
uint64_t ipcb__wait_next_deadline(client_loop *l);
/* wait.c: cancel wait `cookie` (0) or -ENOENT (qlock held). */
int ipcb__wait_cancel(client_loop *l, uint64_t cookie);
void ipcb__wait_free_all(client_loop *l);
/* watch.c: keep a WATCH_EVENT that arrived (c->lock held; qlock not). */
void ipcb__watch_route(ipcb_client *c, client_loop *l, const uint8_t *buf, size_t len);
/* watch.c: run the callbacks of event entry e (no lock held). */
void ipcb__watch_dispatch(ipcb_client *c, client_async *e);
/* watch.c: re-add every watch on a new connection (c->lock held); the
 * callbacks hear an overflow. */
int ipcb__watch_reconnected(ipcb_client *c);
void ipcb__watch_free_all(client_loop *l);
/* watch.c: ipcb_watch_add_async with the add's own callback argument. */
int ipcb__watch_add_async_internal(ipcb_client *c, int kind, const char *name, unsigned flags,
                             unsigned events, ipcb_watch_cb cb, void *userdata, ipcb_done_cb added,
                             void *added_userdata, uint64_t *ret_watch);
/* loop.c: append e to the done list (qlock held). */
void ipcb__loop_done_push(client_loop *l, client_async *e);
/* async.c: make and send asynchronous request req; tmpl (may be NULL)
 * gives access, flags and size.  Returns as ipcb__loop_submit. */
int ipcb__async_submit(ipcb_client *c, ipcb_msg *req, int what, const char *name, union async_cb cb,
                 void *userdata, client_async *tmpl, uint64_t *ret_cookie);
/* A fresh cookie (for a wait). */
uint64_t ipcb__loop_cookie(client_loop *l);
/* async.c: turn e's outcome into its callback (no lock held); consumes the
 * reply's fds and handle. */
void ipcb__async_complete(ipcb_client *c, client_async *e);
