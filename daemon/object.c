/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* object.c: reference counting and destruction of brokered objects. */
#include "object.h"

#include "log.h"
#include "proto.h"
#include "quota.h"
#include "lock.h"
#include "reaper.h"
#include "registry.h"
#include "sem.h"
#include "shm.h"
#include "sempoll.h"
#include "store.h"
#include "watch.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A segment of this size or more is closed off the loop (object_destroy). */
#define CLOSE_OFF_LOOP_BYTES (1u << 20)

void object_destroy(object *o) {
        log_client_debug("destroy %s '%s' (id %llu)", o->kind == IPCB_KIND_SHM ? "segment" : "semaphore",
                  o->name, (unsigned long long)o->id);
        watch_emit(o, IPCB_WE_DESTROYED);
        store_object_removed(o);
        if (o->quota_charged)
                quota_uncharge_object(o->quota_uid, o->kind, o->quota_bytes);
        o->quota_charged = false;
        inode_remove(&o->ino_rw);
        inode_remove(&o->ino_lock);
        sempoll_free(o);
        sem_free(o);
        lock_free(o);
        if (o->fd_ro >= 0) /* never the last: fd_rw is open */
                close(o->fd_ro);
        /* Once its clients have closed theirs, the daemon's memfd is the
         * file's last reference, and its close frees every page: 0.1 ms
         * of CPU per MiB, which a segment that was or may have grown big
         * spends off the loop. */
        if (o->fd_rw >= 0 && o->kind == IPCB_KIND_SHM &&
            (o->size >= CLOSE_OFF_LOOP_BYTES || (o->flags & IPCB_WF_GROWABLE)))
                reaper_close_own(o->fd_rw);
        else if (o->fd_rw >= 0)
                close(o->fd_rw);
        registry_remove(o);
}

static void object_maybe_destroy(object *o) {
        if (o->handles == 0 && (!o->linked || !(o->flags & IPCB_WF_PERSISTENT)))
                object_destroy(o);
}

void object_index(object *o) {
        int k = 0;

        if (o->fd_rw >= 0)
                k = inode_add(&o->ino_rw, o->fd_rw);
        if (k == 0 && o->lock_fd >= 0)
                k = inode_add(&o->ino_lock, o->lock_fd);
        if (k < 0) /* fstat of our own memfd: cannot happen */
                log_warn("cannot index the inode of '%s': %s", o->name, strerror(-k));
}

void object_ref(object *o, uint32_t access) {
        object_index(o);
        o->handles++;
        if (access == IPCB_WA_READ_ONLY)
                o->ro_handles++;
}

void object_unref(object *o, uint32_t access) {
        o->handles--;
        /* The read-only description costs the daemon an fd: keep it only
         * while someone may be sent it. */
        if (access == IPCB_WA_READ_ONLY && --o->ro_handles == 0)
                shm_ro_fd_drop(o);
        object_maybe_destroy(o);
}

void object_unlink(object *o) {
        if (o->linked)
                watch_emit(o, IPCB_WE_UNLINKED);
        registry_unlink(o);
        object_maybe_destroy(o);
}

/* Seals only grow, and with F_SEAL_SEAL nobody can add one: from then on
 * the recorded set is the set, and asking the kernel again is a syscall per
 * stat (and per LIST record) for nothing. */
unsigned object_seals(object *o) {
        int k;

        if (o->seals & F_SEAL_SEAL)
                return o->seals;
        k = o->fd_rw >= 0 ? fcntl(o->fd_rw, F_GET_SEALS) : -1;
        if (k >= 0)
                o->seals = (uint32_t)k;
        return o->seals;
}

/* Only a growable segment's size can change: every other object's memfd
 * was sealed against growing and shrinking at o->size (a created one is
 * sized before sealing, a registered or restored one is checked).  A
 * growable one's memfd is the broker's own, or a client's that was checked
 * to be a memfd: fstat cannot block.  What it grew by is charged here to
 * its creator's byte quota, when the broker looks (never refused: the
 * memory is in use; the uid's next create is); F_SEAL_SHRINK keeps it
 * from getting smaller. */
uint64_t object_size(object *o) {
        struct stat st;

        if (!(o->flags & IPCB_WF_GROWABLE))
                return o->size;
        if (o->fd_rw < 0 || fstat(o->fd_rw, &st) < 0)
                return o->size;
        if (o->quota_charged && (uint64_t)st.st_size > o->quota_bytes) {
                quota_charge_grown(o->quota_uid, (uint64_t)st.st_size - o->quota_bytes);
                o->quota_bytes = (uint64_t)st.st_size;
        }
        return (uint64_t)st.st_size;
}
