/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lock.c: segment locks and the seqlock beside them.  The lock word and the
 * sequence live on a broker-made page (the segment's bytes stay all the
 * user's), fetched with one request on a handle's first lock or read.  The
 * holder is named by the handle's token, so the lock belongs to the handle,
 * not to a thread; the broker marks the owner dead when a handle goes away
 * holding it.  A broker restored after a restart bumps the page's epoch, so
 * that a lock through a handle it does not know yet reconnects first.  Only
 * read-write handles lock; read-only ones get the page read-only and read
 * the sequence (proto/sempage.h, docs/semaphores.md).  An event loop waits
 * for the lock on a descriptor as for a semaphore: unlock signals the
 * segment's notify eventfd while the page counts pollers. */
#include "internal.h"

#include "futex.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

/* Serializes first-use setup of s->lock between threads sharing a handle. */
static pthread_mutex_t setup_lock = PTHREAD_MUTEX_INITIALIZER;

static int lock_setup(ipcb_shm *s) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_SHM_LOCK_PAGE }, reply;
        bool rw = s->access == IPCB_READ_WRITE;
        ipcb_lock_page *pg;
        uint32_t token;
        int fd = -1, r = 0;

        pthread_mutex_lock(&setup_lock);
        if (s->lock)
                goto out;
        r = ipcb__client_obj_request(s->client, &s->obj, &req, &req.shm_lock_page.handle, buf, &reply,
                                     &fd);
        if (r < 0)
                goto out;
        /* A read-write handle gets a token and a writable page; a read-only
         * one token 0 and an O_RDONLY description (an older broker sent
         * both a token and a writable page: neither is used). */
        token = rw ? reply.lock_reply.token & IPCB_LOCK_OWNER_MASK : 0;
        if (rw && token == 0) {
                close(fd);
                r = -EPROTO;
                goto out;
        }
        pg = mmap(NULL, IPCB_PAGE_SIZE, rw ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
        close(fd);
        if (pg == MAP_FAILED) {
                r = -errno;
                goto out;
        }
        s->lock_token = token;
        s->lock_nonce = reply.lock_reply.nonce;
        s->lock_epoch = atomic_load_explicit(&pg->epoch, memory_order_relaxed);
        __atomic_store_n(&s->lock, pg, __ATOMIC_RELEASE); /* publishes lock_token too */
out:
        pthread_mutex_unlock(&setup_lock);
        return r;
}

static ipcb_lock_page *page_of(ipcb_shm *s, int *ret_err) {
        ipcb_lock_page *pg = __atomic_load_n(&s->lock, __ATOMIC_ACQUIRE);

        if (!pg && (*ret_err = lock_setup(s)) == 0)
                pg = s->lock;
        return pg;
}

/* The page's epoch is not the one this handle saw: a restarted broker
 * (the restore bumps it) may not know the handle yet, if its client has
 * made no request since, and would not mark the owner dead if we died
 * holding the lock.  One round trip first: on a lost connection it
 * reconnects, which re-opens the handle and reclaims its token.  If the
 * connection still answers, nothing restarted (a restart ends every
 * connection) and someone wrote the epoch: take it as it is.  A handle
 * without a broker handle (after ipcb_disconnect, or an orphan) has
 * nobody to tell and locks as before. */
static int lock_revive(ipcb_shm *s, ipcb_lock_page *pg) {
        uint32_t epoch = atomic_load_explicit(&pg->epoch, memory_order_relaxed);
        ipcb_msg req = { .hdr.op = IPCB_OP_HELLO }, reply;
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_client *c = s->client;
        int r;

        if ((r = ipcb__client_lock(c)) < 0)
                return r;
        if (!c->disconnected && !s->obj.orphan) {
                req.hello.version = IPCB_PROTO_VERSION;
                r = ipcb__client_call(c, &req, buf, &reply, NULL);
        }
        /* The epoch read before the round trip: a restart meanwhile costs
         * another round trip, never a missed reclaim. */
        if (r == 0)
                __atomic_store_n(&s->lock_epoch, epoch, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&c->lock);
        return r;
}

static int lock_take(ipcb_shm *s, int timeout_ms) {
        struct timespec deadline, *dl = NULL;
        ipcb_lock_page *pg;
        _Atomic uint32_t *w;
        uint32_t v, want;
        bool slept = false;
        int r = 0;

        if (!s)
                return -EINVAL;
        if (s->access != IPCB_READ_WRITE)
                return -EBADF; /* taking the lock is a write */
        if (!(pg = page_of(s, &r)))
                return r;
        /* One relaxed load on the word's cache line: no syscall unless the
         * epoch moved. */
        if (atomic_load_explicit(&pg->epoch, memory_order_relaxed) !=
                    __atomic_load_n(&s->lock_epoch, __ATOMIC_RELAXED) &&
            (r = lock_revive(s, pg)) < 0)
                return r;
        if (timeout_ms > 0) {
                deadline_after(timeout_ms, &deadline);
                dl = &deadline;
        }
        w = &pg->word;
        for (;;) {
                v = atomic_load_explicit(w, memory_order_relaxed);
                if ((v & IPCB_LOCK_OWNER_MASK) == 0) {
                        /* Once we have slept, others may sleep too: keep
                         * WAITERS so that our unlock wakes them. */
                        want = __atomic_load_n(&s->lock_token, __ATOMIC_RELAXED) | (slept || (v & IPCB_LOCK_WAITERS) ? IPCB_LOCK_WAITERS : 0);
                        if (!atomic_compare_exchange_weak_explicit(w, &v, want, memory_order_acquire,
                                                                   memory_order_relaxed))
                                continue;
                        /* Odd from now until our unlock; the holder alone
                         * writes it, so a plain store does.  The fence makes
                         * it visible before any write of ours to the bytes. */
                        uint32_t q = atomic_load_explicit(&pg->seq, memory_order_relaxed);
                        atomic_store_explicit(&pg->seq, ipcb_lock_seq_locked(q), memory_order_relaxed);
                        atomic_thread_fence(memory_order_release);
                        return (v & IPCB_LOCK_OWNER_DIED) ? IPCB_OWNER_DIED : 0;
                }
                if ((v & IPCB_LOCK_OWNER_MASK) == __atomic_load_n(&s->lock_token, __ATOMIC_RELAXED))
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

/* An unlock saw pollers: signal the segment's notify eventfd, which the
 * broker passes on to every poller (fetched once per handle, and again
 * after a restart: ipcb__client_notify). */
static void lock_notify_pollers(ipcb_shm *s) {
        ipcb__client_notify(s->client, IPCB_OP_LOCK_NOTIFY, &s->obj, &s->lock_notify, &s->lock->epoch);
}

int ipcb_shm_unlock(ipcb_shm *s) {
        ipcb_lock_page *pg;
        uint32_t v, q;

        if (!s)
                return -EINVAL;
        if (s->access != IPCB_READ_WRITE)
                return -EBADF;
        if (!(pg = __atomic_load_n(&s->lock, __ATOMIC_ACQUIRE)))
                return -EPERM;
        v = atomic_load_explicit(&pg->word, memory_order_relaxed);
        if ((v & IPCB_LOCK_OWNER_MASK) != __atomic_load_n(&s->lock_token, __ATOMIC_RELAXED))
                return -EPERM;
        /* Even again, after our writes to the bytes (release), and before
         * the word is free: the next holder starts from our value. */
        q = atomic_load_explicit(&pg->seq, memory_order_relaxed);
        atomic_store_explicit(&pg->seq, ipcb_lock_seq_unlocked(q), memory_order_release);
        /* Sequentially consistent, as the load of pollers after it: either
         * that load sees a poller registered, or the poller's look at the
         * word comes after this exchange (docs/semaphores.md, "Polling a
         * lock"). */
        v = atomic_exchange(&pg->word, 0);
        /* Wake every sleeper, not one: one that was killed while asleep
         * would swallow a single wake-up and strand the rest. */
        if (v & IPCB_LOCK_WAITERS)
                futex_wake(&pg->word, INT_MAX);
        if (atomic_load(&pg->pollers) > 0)
                lock_notify_pollers(s);
        return 0;
}

static bool past(const struct timespec *dl) {
        struct timespec now;

        clock_gettime(CLOCK_MONOTONIC, &now);
        return now.tv_sec > dl->tv_sec || (now.tv_sec == dl->tv_sec && now.tv_nsec >= dl->tv_nsec);
}

int ipcb_shm_read_begin(ipcb_shm *s, int timeout_ms, uint32_t *ret_seq) {
        struct timespec deadline, nap = { 0, 50000 };
        ipcb_lock_page *pg;
        int r = 0;

        if (!s || !ret_seq)
                return -EINVAL;
        if (!(pg = page_of(s, &r)))
                return r;
        if (timeout_ms > 0)
                deadline_after(timeout_ms, &deadline);
        for (unsigned spins = 0;; spins++) {
                uint32_t q = atomic_load_explicit(&pg->seq, memory_order_acquire), v;
                if (!(q & 1)) {
                        *ret_seq = q;
                        return 0;
                }
                /* Odd: someone holds the lock, or its holder died before
                 * unlocking and nobody has locked since.  An unlock makes
                 * the sequence even before it frees the word, so a free
                 * word next to the same odd sequence means the latter. */
                v = atomic_load_explicit(&pg->word, memory_order_acquire);
                if (atomic_load_explicit(&pg->seq, memory_order_relaxed) != q)
                        continue;
                if ((v & IPCB_LOCK_OWNER_MASK) == 0)
                        return -EOWNERDEAD;
                uint32_t token = __atomic_load_n(&s->lock_token, __ATOMIC_RELAXED);
                if (token && (v & IPCB_LOCK_OWNER_MASK) == token)
                        return -EDEADLK;
                if (timeout_ms == 0)
                        return -EAGAIN;
                if (spins < 64)
                        continue;
                if (timeout_ms > 0 && past(&deadline))
                        return -ETIMEDOUT;
                /* Readers cannot announce themselves on a read-only page,
                 * so no unlock wakes them: poll, backing off to 1 ms. */
                if (spins < 128) {
                        sched_yield();
                        continue;
                }
                nanosleep(&nap, NULL);
                nap.tv_nsec = nap.tv_nsec < 500000 ? nap.tv_nsec * 2 : 1000000;
        }
}

bool ipcb_shm_read_retry(const ipcb_shm *s, uint32_t seq) {
        ipcb_lock_page *pg = s ? __atomic_load_n(&s->lock, __ATOMIC_ACQUIRE) : NULL;

        if (!pg)
                return true;
        /* Our reads of the bytes come before this load of the sequence. */
        atomic_thread_fence(memory_order_acquire);
        return atomic_load_explicit(&pg->seq, memory_order_relaxed) != seq;
}

/* ---- polling the lock from an event loop (docs/semaphores.md) ---- */

/* As ipcb_sem_get_fd: an epoll set of the handle's own holding the notify
 * eventfd edge-triggered, so that every unlock while this handle is
 * counted as a poller makes it readable until ipcb_shm_poll_lock consumes
 * the edge.  The eventfd is never read. */
int ipcb_shm_lock_get_fd(ipcb_shm *s) {
        int r = 0;

        if (!s)
                return -EINVAL;
        if (s->access != IPCB_READ_WRITE)
                return -EBADF; /* only a read-write handle can take the lock */
        /* The broker counts pollers of handles that have a token. */
        if (!page_of(s, &r))
                return r;
        pthread_mutex_lock(&setup_lock);
        if ((r = s->lock_poll_fd) < 0) {
                r = ipcb__client_poll_register(s->client, IPCB_OP_LOCK_POLL, &s->obj,
                                               &s->lock_notify, &s->lock->epoch);
                if (r >= 0)
                        s->lock_poll_fd = r;
        }
        pthread_mutex_unlock(&setup_lock);
        return r;
}

int ipcb_shm_poll_lock(ipcb_shm *s) {
        struct epoll_event ev;

        if (!s)
                return -EINVAL;
        /* Consume the edge first, then look: an unlock after the look makes
         * a new edge. */
        if (s->lock_poll_fd >= 0)
                (void)epoll_wait(s->lock_poll_fd, &ev, 1, 0);
        /* The look (lock_take's loads) is ordered after the consume and
         * after the unlock's exchange it may follow: seq_cst, as the proof
         * in docs/semaphores.md has it. */
        atomic_thread_fence(memory_order_seq_cst);
        return lock_take(s, 0);
}

void ipcb__lock_release_on_close(ipcb_shm *s) {
        int fd = atomic_load(&s->lock_notify.fd);

        if (s->lock) {
                (void)ipcb_shm_unlock(s);
                munmap(s->lock, IPCB_PAGE_SIZE);
                s->lock = NULL;
        }
        if (s->lock_poll_fd >= 0)
                close(s->lock_poll_fd);
        if (fd >= 0)
                close(fd);
        s->lock_poll_fd = -1;
        s->lock_notify.fd = -1;
}
