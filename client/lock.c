/* lock.c: segment locks.  The lock word lives on a broker-made page (the
 * segment's bytes stay all the user's), fetched with one request on a
 * handle's first lock.  The holder is named by the handle's token, so the
 * lock belongs to the handle, not to a thread; the broker marks the owner
 * dead when a handle goes away holding it. */
#include "internal.h"

#include "futex.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <unistd.h>

/* Serializes first-use setup of s->lock between threads sharing a handle. */
static pthread_mutex_t setup_lock = PTHREAD_MUTEX_INITIALIZER;

static int lock_setup(ipcb_shm *s) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_SHM_LOCK_PAGE }, reply;
        ipcb_lock_page *pg;
        int fd = -1, r = 0;

        pthread_mutex_lock(&setup_lock);
        if (s->lock)
                goto out;
        for (int tries = 0;; tries++) {
                uint32_t gen = __atomic_load_n(&s->client->conn_gen, __ATOMIC_RELAXED);
                req.shm_lock_page.handle = __atomic_load_n(&s->obj.handle, __ATOMIC_RELAXED);
                r = client_request(s->client, &req, buf, &reply, &fd);
                /* The request reconnected (broker restart): the handle id
                 * was replaced meanwhile; ask again with the new one. */
                if (r == -EBADF && tries == 0 &&
                    gen != __atomic_load_n(&s->client->conn_gen, __ATOMIC_RELAXED))
                        continue;
                break;
        }
        if (r < 0)
                goto out;
        pg = mmap(NULL, IPCB_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (pg == MAP_FAILED) {
                r = -errno;
                goto out;
        }
        s->lock_token = reply.lock_reply.token & IPCB_LOCK_OWNER_MASK;
        s->lock_nonce = reply.lock_reply.nonce;
        __atomic_store_n(&s->lock, pg, __ATOMIC_RELEASE); /* publishes lock_token too */
out:
        pthread_mutex_unlock(&setup_lock);
        return r;
}

static int lock_take(ipcb_shm *s, int timeout_ms) {
        struct timespec deadline, *dl = NULL;
        _Atomic uint32_t *w;
        uint32_t v, want;
        bool slept = false;
        int r;

        if (!s)
                return -EINVAL;
        if (!__atomic_load_n(&s->lock, __ATOMIC_ACQUIRE) && (r = lock_setup(s)) < 0)
                return r;
        if (timeout_ms > 0) {
                deadline_after(timeout_ms, &deadline);
                dl = &deadline;
        }
        w = &s->lock->word;
        for (;;) {
                v = atomic_load_explicit(w, memory_order_relaxed);
                if ((v & IPCB_LOCK_OWNER_MASK) == 0) {
                        /* Once we have slept, others may sleep too: keep
                         * WAITERS so that our unlock wakes them. */
                        want = s->lock_token | (slept || (v & IPCB_LOCK_WAITERS) ? IPCB_LOCK_WAITERS : 0);
                        if (atomic_compare_exchange_weak_explicit(w, &v, want, memory_order_acquire,
                                                                  memory_order_relaxed))
                                return (v & IPCB_LOCK_OWNER_DIED) ? IPCB_OWNER_DIED : 0;
                        continue;
                }
                if ((v & IPCB_LOCK_OWNER_MASK) == s->lock_token)
                        return -EDEADLK;
                if (timeout_ms == 0)
                        return -EAGAIN;
                if (!(v & IPCB_LOCK_WAITERS) &&
                    !atomic_compare_exchange_weak(w, &v, v | IPCB_LOCK_WAITERS))
                        continue;
                r = futex_wait(w, v | IPCB_LOCK_WAITERS, dl);
                if (r == -ETIMEDOUT)
                        return -ETIMEDOUT;
                slept = true; /* -EINTR: a caught signal does not end the wait */
        }
}

int ipcb_shm_lock(ipcb_shm *s) {
        return lock_take(s, -1);
}

int ipcb_shm_try_lock(ipcb_shm *s, int timeout_ms) {
        return lock_take(s, timeout_ms);
}

int ipcb_shm_unlock(ipcb_shm *s) {
        uint32_t v;

        if (!s)
                return -EINVAL;
        if (!__atomic_load_n(&s->lock, __ATOMIC_ACQUIRE))
                return -EPERM;
        v = atomic_load_explicit(&s->lock->word, memory_order_relaxed);
        if ((v & IPCB_LOCK_OWNER_MASK) != s->lock_token)
                return -EPERM;
        v = atomic_exchange_explicit(&s->lock->word, 0, memory_order_release);
        /* Wake every sleeper, not one: one that was killed while asleep
         * would swallow a single wake-up and strand the rest. */
        if (v & IPCB_LOCK_WAITERS)
                futex_wake(&s->lock->word, INT_MAX);
        return 0;
}

void lock_release_on_close(ipcb_shm *s) {
        if (s->lock) {
                (void)ipcb_shm_unlock(s);
                munmap(s->lock, IPCB_PAGE_SIZE);
                s->lock = NULL;
        }
}
