/* internal.h: what the library's modules share (client.c: connection and
 * segments; lock.c: segment locks; sem.c: semaphores).  Not installed. */
#pragma once

#include "ipcbroker.h"
#include "proto.h"
#include "sempage.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct ipcb_client {
        pthread_mutex_t lock; /* serializes requests; guards everything below */
        int fd;               /* -1 after ipcb_disconnect() */
        bool dead;            /* no more requests: connection lost or closed */
        atomic_bool gone;     /* == dead, readable without the lock (undo handles check it) */
        bool disconnected;    /* ipcb_disconnect() was called */
        uint32_t last_id;
        uint32_t msg_max, name_max, fds_max; /* from the HELLO reply */
        /* One reference for the caller until ipcb_disconnect(), one per open
         * ipcb_shm: a handle may outlive the connection it came from. */
        atomic_uint refs;
};

struct ipcb_shm {
        ipcb_client *client; /* holds a reference */
        uint64_t handle;     /* the broker's handle id */
        int fd;
        void *data;
        size_t size;
        int access;
        unsigned seals;
        /* segment lock, set up on first use (lock.c) */
        ipcb_lock_page *lock;
        uint32_t lock_token;
};

ipcb_client *client_ref(ipcb_client *c);
void client_unref(ipcb_client *c);
/* One request and its reply, serialized with the client's other requests.
 * buf (IPCB_MSG_MAX bytes) holds the reply that *reply points into.  The
 * reply's fd, if any, goes to *ret_fd (or is closed when ret_fd is NULL).
 * Returns 0, the reply's negative status, or a transport error. */
int client_request(ipcb_client *c, ipcb_msg *req, uint8_t *buf, ipcb_msg *reply, int *ret_fd);
/* Release a broker handle without waiting (CLOSE with NOREPLY). */
int client_release_handle(ipcb_client *c, uint64_t handle);
int client_name_check(const char *name, ipcb_name *ret);
int client_unlink(ipcb_client *c, int kind, const char *name);
/* Release the segment lock if handle s holds it (before closing s). */
void lock_release_on_close(ipcb_shm *s);

_Static_assert(IPCB_SEM_UNDO_MAX == IPCB_SEM_SLOTS, "undo slot count mismatch");
_Static_assert(IPCB_SEM_UNDO == IPCB_WF_UNDO, "flag mismatch");
_Static_assert(IPCB_SEM_PERSISTENT == IPCB_WF_PERSISTENT, "flag mismatch");
