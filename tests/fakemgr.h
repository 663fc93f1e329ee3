/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fakemgr.h: a fake service manager for the tests that play systemd.  It
 * owns a private directory, the AF_UNIX datagram socket the daemon gets as
 * $NOTIFY_SOCKET, the notify state it has read (READY, STOPPING, WATCHDOG,
 * STATUS, counts of stores and removals) and the fd store those messages
 * build (FDSTORE=1 with FDNAME=, FDSTOREREMOVE=1).  It can start ipcbrokerd
 * with the store's fds in LISTEN_FDS/LISTEN_FDNAMES, the way systemd does
 * after `systemctl restart`, and stop it.  What a test checks about those
 * daemons (the harness fixture, logs, exit status) stays in the test.
 *
 * BARRIER=1 is answered as systemd does, by closing the fd it carries once
 * every earlier message was read, unless the test sets hold_barriers: then
 * the fds are kept (the barrier never answered) until fakemgr_clear.
 *
 * Every fd the manager holds (the store, its socket) is its own: the store
 * keeps received fds until a removal, fakemgr_clear, fakemgr_close or
 * fakemgr_destroy closes them. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#define FAKEMGR_NAME_MAX 64
#define FAKEMGR_MSG_FDS 8 /* fds one message may carry; more is MSG_CTRUNC */

typedef struct fakemgr_entry {
        int fd;
        char name[FAKEMGR_NAME_MAX];
} fakemgr_entry;

typedef struct fakemgr {
        char dir[64];      /* private temporary directory */
        char notify[108];  /* $NOTIFY_SOCKET: a path, or "@name" (abstract) */
        int nfd;           /* the notify socket, -1 if none */
        pid_t pid;         /* the daemon fakemgr_start started, 0 if none */
        fakemgr_entry *store;
        unsigned n, cap;
        /* Messages read so far (fakemgr_start resets ready and stopping). */
        unsigned ready, stopping, watchdog, status, stores, removes;
        unsigned refused; /* FDSTORE=1 fds not kept because the store was full */
        unsigned barriers; /* BARRIER=1 messages read */
        bool hold_barriers; /* keep their fds open: never answer */
        int held[8];       /* the barrier fds kept (the first 8), -1: none */
        unsigned nheld;
        char last_status[256];
} fakemgr;

/* One message, as fakemgr_recv read it. */
typedef struct fakemgr_msg {
        bool ready, stopping, watchdog, status, store, remove, barrier;
        bool ctrunc;       /* MSG_CTRUNC: fds were lost (those received are closed) */
        unsigned nfds;     /* fds it carried */
        int fd;            /* the fd the store kept (borrowed from the store), or -1 */
        char name[FAKEMGR_NAME_MAX]; /* FDNAME=, or "" */
} fakemgr_msg;

/* Create a directory from tmpl ("/tmp/xxx.XXXXXX"), bind DIR/notify and
 * make room for cap stored fds.  Fails the test if it cannot. */
void fakemgr_init(fakemgr *m, const char *tmpl, unsigned cap);
/* Close the notify socket (removing its path) and bind a new one at addr (a path, or "@name"
 * for the abstract namespace).  Fails the test if it cannot. */
void fakemgr_bind(fakemgr *m, const char *addr);

/* Wait up to timeout_ms for one message and apply it (never asserts, so a
 * helper thread may call it).  Returns 1 for an fd store or removal
 * message, 2 for any other, 0 if none came.  ret_msg may be NULL. */
int fakemgr_recv(fakemgr *m, int timeout_ms, fakemgr_msg *ret_msg);
/* Read every pending message, waiting up to timeout_ms for the first.
 * Fails the test if a stored fd was refused for lack of room. */
void fakemgr_drain(fakemgr *m, int timeout_ms);
/* Read messages until pred(m, arg) holds (checked before each wait) or
 * timeout_ms passed; returns whether it holds.  Fails the test as
 * fakemgr_drain does. */
bool fakemgr_pump_until(fakemgr *m, bool (*pred)(const fakemgr *, void *), void *arg,
                        int timeout_ms);

/* Stored fds whose name starts with prefix. */
unsigned fakemgr_count(const fakemgr *m, const char *prefix);
/* The stored fd named name (borrowed), or -ENOENT. */
int fakemgr_find(const fakemgr *m, const char *name);
/* Store fd under name (consumed on success); -ENOSPC if the store is full. */
int fakemgr_put(fakemgr *m, const char *name, int fd);
/* Close and drop every fd stored under name; returns how many. */
unsigned fakemgr_remove(fakemgr *m, const char *name);
/* Close what is stored under name and store fd there instead (consumed on
 * success); -ENOENT if nothing is stored under name. */
int fakemgr_replace(fakemgr *m, const char *name, int fd);

/* How fakemgr_start runs the daemon. */
typedef struct fakemgr_exec {
        const char *sock;               /* --socket */
        const char *const *args;        /* more arguments, NULL-terminated, or NULL */
        const char *log;                /* the daemon's stderr (appended), or NULL: the test's */
        const int *extra_fds;           /* passed after the store's fds (borrowed) */
        const char *const *extra_names; /* their LISTEN_FDNAMES */
        unsigned n_extra;
        const char *watchdog_usec;      /* WATCHDOG_USEC (and WATCHDOG_PID), or NULL */
} fakemgr_exec;

/* Start ipcbrokerd with the store's fds and the extra ones at 3.. in
 * LISTEN_FDS (none: no LISTEN_* at all), NOTIFY_SOCKET set, and wait (10 s)
 * for READY=1.  Returns the pid (also m->pid); fails the test otherwise.
 * The daemon is killed if the test process dies. */
pid_t fakemgr_start(fakemgr *m, const fakemgr_exec *x);
/* SIGTERM the daemon, read what it sends while it exits (so that its
 * BARRIER=1 is answered), reap it, read what is left (100 ms) and return
 * its wait status; m->pid is 0 afterwards.  Returns 0 if no daemon runs. */
int fakemgr_stop(fakemgr *m);

/* Close every stored fd (the store is empty afterwards) and every barrier
 * fd held. */
void fakemgr_clear(fakemgr *m);
/* Close every fd the manager holds: the store and the notify socket. */
void fakemgr_close(fakemgr *m);
/* Kill (SIGKILL) and reap a daemon still running, close every fd, remove
 * the notify socket and the directory (the test removes its own files in
 * it first), free the store.  Does nothing to a zeroed or destroyed m. */
void fakemgr_destroy(fakemgr *m);
