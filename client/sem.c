/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sem.c: named semaphores.  The count lives on a page the broker made and
 * every user maps; acquire and release are atomics on it, and the kernel is
 * entered only to sleep (futex) or to wake a sleeper.  Undo handles follow
 * the helping protocol of proto/sempage.h, so that the broker can give back
 * exactly the tokens a dead holder took (docs/semaphores.md). */
#include "internal.h"

#include "futex.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <linux/membarrier.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

struct ipcb_sem {
        client_obj obj;      /* name, broker handle (reconnect.c) */
        ipcb_client *client; /* holds a reference */
        ipcb_sem_page *page;
        uint32_t max;        /* the broker's word, not the page's */
        uint32_t slot;       /* undo slot index + 1, 0: plain handle */
        uint32_t seq;        /* next operation's sequence number (undo) */
        unsigned fork_gen;   /* fork generation at open */
        /* An undo handle serves one call at a time (one slot records one
         * operation in flight); see busy_claim. */
        const void *owner;         /* the thread that may claim with plain stores, or NULL */
        atomic_bool biased;        /* it still may: cleared once for good by anyone else */
        atomic_uint owner_busy;    /* written by the owner only */
        atomic_uint busy;          /* claimed by exchange by everyone else */
        uint32_t epoch;      /* page->epoch when the slot was given (undo) */
        uint64_t nonce;      /* proves the slot is ours to a restarted broker (undo) */
        _Atomic uint64_t owed; /* what the broker last said this undo handle owes (SEM_OWE) */
        ipcb_handle_info info; /* owner, group, mode at the open */
        /* Polling (ipcb_sem_get_fd): this handle's epoll set, and the
         * semaphore's notify eventfd that releases signal while the page
         * counts pollers; -1 until needed.  notify.fd is written without
         * the client lock: set once (atomically), closed with the handle. */
        int poll_fd;
        client_notify notify;
};

static int sem_revive(ipcb_sem *s);
static void sem_notify_pollers(ipcb_sem *s);

/* Bumped in every child after fork(): an undo slot belongs to the process
 * that opened it, and a child must not take tokens in its parent's name. */
static atomic_uint fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* ---- one call at a time on an undo handle ----
 *
 * Of two calls entering at once, exactly one gets in; the other gets
 * -EBUSY.  An exchange on `busy` does that, but a locked instruction costs
 * as much as the operation itself, and nearly every handle is only ever
 * used by the thread that opened it.  So that thread, the owner, claims
 * with plain stores (asymmetric Dekker):
 *
 *   owner:  owner_busy = 1; compiler fence; load biased?  → in
 *   other:  biased = false; membarrier(); exchange busy; load owner_busy
 *
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) runs a full fence on every
 * thread of the process before it returns.  An owner's claim that loaded
 * `biased` true did so before that fence (after it, the load sees false),
 * so its store of owner_busy, which comes first, is visible to the other
 * caller's load: it sees owner_busy == 1 and backs off.  An owner's claim
 * that loads false withdraws its store and takes the exchange path, where
 * owner_busy stays 0 (so owner_busy == 1 in the owner thread means a fast
 * claim of its own).  The bias is revoked once for good: a handle shared
 * between threads costs one membarrier, then exchanges.  Without
 * membarrier (or under ThreadSanitizer, which cannot see its fences) no
 * handle gets an owner. */
#if defined(__SANITIZE_THREAD__)
#define SEM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SEM_TSAN 1
#endif
#endif

static _Thread_local char thread_token; /* its address names the thread */
static atomic_uint membarrier_gen;      /* fork_gen + 1 when registered in this process */

static bool membarrier_ready(void) {
#ifdef SEM_TSAN
        return false;
#else
        unsigned gen = atomic_load_explicit(&fork_gen, memory_order_relaxed) + 1;

        if (atomic_load_explicit(&membarrier_gen, memory_order_relaxed) == gen)
                return true;
        if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) < 0)
                return false;
        atomic_store_explicit(&membarrier_gen, gen, memory_order_relaxed);
        return true;
#endif
}

/* Acquire pairs with busy_release: a call sees everything the previous
 * call on the handle wrote (s->seq, s->slot, ...). */
static bool busy_claim(ipcb_sem *s) {
        bool biased = atomic_load_explicit(&s->biased, memory_order_relaxed);

        if (biased && s->owner == &thread_token) {
                if (atomic_load_explicit(&s->owner_busy, memory_order_relaxed))
                        return false; /* a call of ours is in (a reconnect inside it) */
                atomic_store_explicit(&s->owner_busy, 1, memory_order_relaxed);
                atomic_signal_fence(memory_order_seq_cst);
                if (atomic_load_explicit(&s->biased, memory_order_relaxed))
                        return true; /* our own earlier calls are ordered by program order */
                atomic_store_explicit(&s->owner_busy, 0, memory_order_relaxed);
        } else if (biased) {
                atomic_store_explicit(&s->biased, false, memory_order_relaxed);
                /* Registered when the owner was set; nothing else can fail. */
                (void)syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
        }
        if (atomic_exchange_explicit(&s->busy, 1, memory_order_acquire) != 0)
                return false;
        if (atomic_load_explicit(&s->owner_busy, memory_order_acquire) != 0) {
                atomic_store_explicit(&s->busy, 0, memory_order_relaxed);
                return false; /* the owner's last fast claim is still in */
        }
        return true;
}

static void busy_release(ipcb_sem *s) {
        if (s->owner == &thread_token && atomic_load_explicit(&s->owner_busy, memory_order_relaxed))
                atomic_store_explicit(&s->owner_busy, 0, memory_order_release);
        else
                atomic_store_explicit(&s->busy, 0, memory_order_release);
}

static void on_fork_child(void) {
        atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed);
}

static void atfork_register(void) {
        pthread_atfork(NULL, NULL, on_fork_child);
}

/* ---- open and close ---- */

int ipcb__client_sem_finish(ipcb_client *c, const char *name, uint32_t flags, const ipcb_msg *reply,
                      uint32_t gen, int fd, ipcb_sem **ret) {
        ipcb_sem *s = NULL;
        void *pg;
        int r;

        pthread_once(&atfork_once, atfork_register);
        if (fd < 0 || reply->sem_reply.max == 0 || reply->sem_reply.max > IPCB_SEM_VALUE_MAX ||
            reply->sem_reply.slot > IPCB_SEM_SLOTS) {
                r = -EPROTO;
                goto fail;
        }
        s = calloc(1, sizeof(*s));
        if (!s) {
                r = -ENOMEM;
                goto fail;
        }
        pg = mmap(NULL, IPCB_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (pg == MAP_FAILED) {
                r = -errno;
                goto fail;
        }
        s->obj.handle = reply->sem_reply.handle;
        s->page = pg;
        s->epoch = atomic_load(&((ipcb_sem_page *)pg)->epoch);
        s->max = reply->sem_reply.max;
        s->slot = reply->sem_reply.slot;
        s->seq = reply->sem_reply.seq & SEQ_MASK;
        s->nonce = reply->sem_reply.nonce;
        s->info = (ipcb_handle_info){ .uid = (uid_t)reply->sem_reply.uid,
                                      .gid = (gid_t)reply->sem_reply.gid,
                                      .mode = reply->sem_reply.mode };
        s->fork_gen = atomic_load_explicit(&fork_gen, memory_order_relaxed);
        atomic_init(&s->busy, 0);
        atomic_init(&s->owner_busy, 0);
        s->owner = s->slot && membarrier_ready() ? &thread_token : NULL;
        atomic_init(&s->biased, s->owner != NULL);
        s->poll_fd = -1;
        atomic_init(&s->notify.fd, -1);
        s->client = c;
        /* Linked last, whole: a reconnect in another thread re-opens
         * every linked handle. */
        struct stat st;
        r = fstat(fd, &st) < 0 ? -errno
                               : ipcb__client_obj_add(c, &s->obj, IPCB_KIND_SEM, name, flags & IPCB_SEM_UNDO, &st,
                                                      gen);
        if (r < 0) {
                munmap(pg, IPCB_PAGE_SIZE);
                goto fail;
        }
        close(fd);
        ipcb__client_ref(c);
        ipcb__client_obj_catch_up(c, &s->obj);
        *ret = s;
        return 0;
fail:
        free(s);
        if (fd >= 0)
                close(fd);
        (void)ipcb__client_release_handle(c, reply->sem_reply.handle, gen);
        return r;
}

int ipcb_sem_create(ipcb_client *c, const char *name, unsigned initial,
                    const ipcb_sem_options *opts, ipcb_sem **ret) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_SEM_CREATE }, reply;
        unsigned mode = 0600, flags = 0, max = IPCB_SEM_VALUE_MAX;
        int fd = -1, r;

        if (!c || !ret)
                return -EINVAL;
        if ((r = ipcb__client_name_check(name, &req.sem_create.name)) < 0)
                return r;
        if (opts) {
                if (opts->struct_size < offsetof(ipcb_sem_options, max) + sizeof(opts->max))
                        return -EINVAL;
                mode = opts->mode;
                flags = opts->flags;
                max = opts->max ? opts->max : IPCB_SEM_VALUE_MAX;
        }
        if ((mode & ~IPCB_MODE_MASK) || (flags & ~(IPCB_SEM_PERSISTENT | IPCB_SEM_UNDO)) ||
            max > IPCB_SEM_VALUE_MAX || initial > max)
                return -EINVAL;
        pthread_once(&atfork_once, atfork_register);
        req.sem_create.initial = initial;
        req.sem_create.max = max;
        req.sem_create.mode = mode;
        req.sem_create.flags = flags;
        r = ipcb__client_request(c, &req, buf, &reply, &fd);
        if (r < 0)
                return r;
        return ipcb__client_sem_finish(c, name, flags, &reply, ipcb__client_reply_gen(), fd, ret);
}

int ipcb_sem_open(ipcb_client *c, const char *name, int flags, ipcb_sem **ret) {
        ipcb_open_options o = IPCB_OPEN_OPTIONS_INIT;

        if (flags & ~IPCB_SEM_UNDO)
                return -EINVAL;
        o.flags = (unsigned)flags;
        return ipcb_sem_open_ex(c, name, &o, ret);
}

int ipcb_sem_open_ex(ipcb_client *c, const char *name, const ipcb_open_options *opts,
                     ipcb_sem **ret) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_SEM_OPEN }, reply;
        int fd = -1, r;

        if (!c || !ret)
                return -EINVAL;
        if ((r = ipcb__client_name_check(name, &req.sem_open.name)) < 0)
                return r;
        r = ipcb__client_open_options(opts, IPCB_SEM_UNDO | IPCB_OPEN_OWNED, &req.sem_open.flags,
                                &req.sem_open.owner);
        if (r < 0)
                return r;
        pthread_once(&atfork_once, atfork_register);
        r = ipcb__client_request(c, &req, buf, &reply, &fd);
        if (r < 0)
                return r;
        return ipcb__client_sem_finish(c, name, req.sem_open.flags & IPCB_SEM_UNDO, &reply,
                                       ipcb__client_reply_gen(), fd, ret);
}

int ipcb_sem_info(const ipcb_sem *s, ipcb_handle_info *ret) {
        if (!s || !ret)
                return -EINVAL;
        *ret = s->info;
        return 0;
}

int ipcb_sem_close(ipcb_sem *s) {
        int r;

        if (!s)
                return 0;
        /* The broker gives back what an undo handle still holds. */
        r = ipcb__client_obj_release(s->client, &s->obj);
        if (s->poll_fd >= 0)
                close(s->poll_fd);
        if (atomic_load(&s->notify.fd) >= 0)
                close(atomic_load(&s->notify.fd));
        munmap(s->page, IPCB_PAGE_SIZE);
        ipcb__client_unref(s->client);
        free(s);
        return r;
}

int ipcb_sem_unlink(ipcb_client *c, const char *name) {
        return ipcb__client_unlink(c, IPCB_KIND_SEM, name);
}

/* ---- waiting and waking ---- */

/* Sleep until a release may have made a token available.  The waiter
 * registers first and re-reads the count after: a releaser bumps the count
 * before reading `waiters`, so one of the two sees the other (all seq_cst). */
static int sem_sleep(ipcb_sem_page *pg, const struct timespec *deadline, uint32_t need) {
        int r = 0;

        atomic_fetch_add(&pg->waiters, 1);
        uint32_t seq = atomic_load(&pg->wake_seq);
        if (ipcb_w_unpack(atomic_load(&pg->word)).count < need)
                r = futex_wait(&pg->wake_seq, seq, deadline);
        atomic_fetch_sub(&pg->waiters, 1);
        return r == -ETIMEDOUT ? r : 0; /* -EINTR: a caught signal does not end the wait */
}

/* Wake every sleeper, not n: a sleeper killed while asleep would swallow a
 * wake-up and strand a token's worth of waiters.  Pollers are told through
 * the broker (sem_notify_pollers); with none, a release makes no syscall. */
static void sem_wake(ipcb_sem *s) {
        ipcb_sem_page *pg = s->page;

        if (atomic_load(&pg->waiters) > 0) {
                atomic_fetch_add(&pg->wake_seq, 1);
                futex_wake(&pg->wake_seq, INT_MAX);
        }
        if (atomic_load(&pg->pollers) > 0)
                sem_notify_pollers(s);
}

/* ---- plain handles: one CAS on W, last_* untouched ---- */

static int plain_take(ipcb_sem *s, uint32_t n, int timeout_ms, const struct timespec *deadline) {
        ipcb_sem_page *pg = s->page;

        for (;;) {
                uint64_t wv = atomic_load_explicit(&pg->word, memory_order_relaxed);
                if ((wv & 0xffffu) >= n) {
                        /* count is the low field: subtracting n <= count touches nothing else */
                        if (atomic_compare_exchange_weak_explicit(&pg->word, &wv, wv - n,
                                                                  memory_order_acquire,
                                                                  memory_order_relaxed))
                                return 0;
                        continue;
                }
                if (timeout_ms == 0)
                        return -EAGAIN;
                if (sem_sleep(pg, deadline, n) == -ETIMEDOUT)
                        return -ETIMEDOUT;
        }
}

static int plain_give(ipcb_sem *s, unsigned n) {
        ipcb_sem_page *pg = s->page;
        uint64_t wv = atomic_load_explicit(&pg->word, memory_order_relaxed);

        do {
                if ((wv & 0xffffu) + n > s->max)
                        return -EOVERFLOW;
        } while (!atomic_compare_exchange_weak_explicit(&pg->word, &wv, wv + n,
                                                        memory_order_seq_cst, /* see sem_sleep */
                                                        memory_order_relaxed));
        sem_wake(s);
        return 0;
}

/* ---- undo handles: the helping protocol ---- */

/* Change the count by delta through slot s->slot: announce (held → target,
 * seq) on the slot, help whoever W names, CAS W to name us, commit.  A
 * failure before the CAS on W withdraws the announcement. */
static int undo_op(ipcb_sem *s, int delta, uint32_t target, int timeout_ms,
                   const struct timespec *deadline) {
        ipcb_sem_page *pg = s->page;
        _Atomic uint64_t *sp = &pg->slot[s->slot - 1];
        uint32_t seq = s->seq;
        ipcb_slotw cur = ipcb_slot_unpack(atomic_load_explicit(sp, memory_order_relaxed));
        ipcb_slotw ann = { .held = cur.held, .target = target, .pending = true, .seq = seq };
        uint64_t annv = ipcb_slot_pack(ann);
        int r = 0;

        s->seq = (seq + 1) & SEQ_MASK;
        /* Release suffices: our CAS on W, sequenced after, publishes the
         * announcement to anyone who reads W; no operation of ours can be
         * seen in W before it. */
        atomic_store_explicit(sp, annv, memory_order_release);
        for (;;) {
                uint64_t wv = atomic_load_explicit(&pg->word, memory_order_seq_cst);
                ipcb_w w = ipcb_w_unpack(wv);
                if (delta < 0 && w.count < (uint32_t)-delta) {
                        if (timeout_ms == 0)
                                r = -EAGAIN;
                        else if (sem_sleep(pg, deadline, (uint32_t)-delta) == -ETIMEDOUT)
                                r = -ETIMEDOUT;
                        if (r < 0)
                                break;
                        /* The epoch moved: a restarted broker may have
                         * taken our slot over (and woken us), or someone
                         * wrote the epoch.  Touch nothing until sem_revive
                         * knows which. */
                        if (atomic_load_explicit(&pg->epoch, memory_order_relaxed) != s->epoch)
                                return -ESTALE;
                        continue;
                }
                if (delta > 0 && w.count + (uint32_t)delta > s->max) {
                        r = -EOVERFLOW;
                        break;
                }
                /* Our own last operation is committed already; anyone
                 * else's may need our help before we replace it in W. */
                if (w.slot != s->slot)
                        ipcb_sem_help(pg, w);
                ipcb_w nw = { .count = (uint32_t)((int)w.count + delta), .slot = s->slot, .seq = seq };
                if (atomic_compare_exchange_weak_explicit(&pg->word, &wv, ipcb_w_pack(nw),
                                                          memory_order_seq_cst,
                                                          memory_order_relaxed))
                        break;
        }
        if (r < 0) {
                /* Our CAS on W never happened, so nobody can be committing
                 * this announcement: withdraw it. */
                ipcb_slotw back = { .held = cur.held, .seq = seq };
                atomic_store_explicit(sp, ipcb_slot_pack(back), memory_order_release);
                return r;
        }
        /* Commit.  A plain store: while we live, the only other writer of
         * this slot is a helper committing this same operation, and it
         * writes exactly this value (a helper that comes later finds the
         * announcement gone and its CAS fails).  The broker writes the slot
         * only once we are gone. */
        ipcb_slotw done = { .held = target, .seq = seq };
        atomic_store_explicit(sp, ipcb_slot_pack(done), memory_order_release);
        if (delta > 0)
                sem_wake(s);
        return 0;
}

/* ---- after a restart or a lost connection ---- */

/* Get an undo slot for s on the current connection (c->lock held, s busy;
 * its broker handle died with an older connection).  First ask for our own
 * slot back, showing its nonce: a restarted broker keeps the slots that
 * held tokens reserved for their holders during its grace period, so the
 * tokens we hold stay ours.  If it is gone (the connection was lost without
 * a restart, so the broker settled it; or the grace period is over), take a
 * new one.  The page is the same inode, so the mapping stays. */
static int reopen_undo(ipcb_client *c, ipcb_sem *s) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg reply;
        int fd = -1, r;

        r = ipcb__client_reopen(c, &s->obj, buf, &reply, &fd, IPCB_WF_RECLAIM | s->slot << 16, 0,
                          s->nonce);
        if (r == -ESRCH) {
                /* Our slot was settled, what it owed taken: by the broker
                 * when our connection ended, or by a restarted one when its
                 * grace period did.  The new slot owes nothing. */
                atomic_store(&s->owed, 0);
                r = ipcb__client_reopen(c, &s->obj, buf, &reply, &fd, 0, 0, 0);
        }
        if (r < 0)
                return r;
        close(fd);
        if (reply.sem_reply.slot == 0 || reply.sem_reply.slot > IPCB_SEM_SLOTS) {
                (void)ipcb__client_release_handle_locked(c, reply.sem_reply.handle);
                return -EPROTO;
        }
        s->obj.handle = reply.sem_reply.handle;
        s->obj.conn_gen = c->conn_gen;
        s->slot = reply.sem_reply.slot;
        s->seq = reply.sem_reply.seq & SEQ_MASK;
        s->nonce = reply.sem_reply.nonce;
        s->epoch = atomic_load(&s->page->epoch);
        if (!(c->caps & IPCB_CAP_SEM_OWE)) /* an older broker: it kept no debt */
                atomic_store(&s->owed, 0);
        return 0;
}

/* One round trip on the current connection, no reconnect (c->lock held):
 * 0 if the broker answers on it. */
static int connection_probe(ipcb_client *c) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_HELLO }, reply;

        req.hello.version = IPCB_PROTO_VERSION;
        return ipcb__client_call_once(c, &req, buf, &reply, NULL);
}

int ipcb__sem_reopen_locked(ipcb_client *c, client_obj *o) {
        ipcb_sem *s = (ipcb_sem *)o; /* obj is the first member */
        int r;

        if (!busy_claim(s))
                return -EBUSY; /* in use: its next call re-opens it */
        r = reopen_undo(c, s);
        busy_release(s);
        return r;
}

/* s is busy (ours).  Reconnect if needed, then take back our slot (or a
 * new one) unless a reconnect already did.
 *
 * A new epoch alone proves nothing: any user of the semaphore can write
 * it.  A restarted broker always ends our connection, so while our broker
 * handle is on a connection that still answers, the slot is ours (the
 * broker frees it only when the handle goes): take the epoch as it is and
 * carry on, never opening a second handle (which would strand the first
 * one's slot and the tokens it holds). */
static int sem_revive(ipcb_sem *s) {
        ipcb_client *c = s->client;
        int r = 0;

        if ((r = ipcb__client_lock(c)) < 0)
                return r;
        if (c->disconnected || s->obj.orphan)
                r = -ENOTCONN;
        else if (c->dead)
                r = ipcb__client_reconnect(c);
        if (r == 0 && s->obj.conn_gen == c->conn_gen) {
                uint32_t epoch = atomic_load(&s->page->epoch);
                if (epoch != s->epoch) {
                        r = connection_probe(c);
                        if (r == 0)
                                s->epoch = epoch;
                        else if (r == -ENOTCONN && c->dead && !c->disconnected)
                                r = ipcb__client_reconnect(c); /* restarted: conn_gen moves on */
                }
        }
        if (r == 0 && s->obj.conn_gen != c->conn_gen) {
                r = reopen_undo(c, s);
                if (r == -ENOTCONN && c->dead && (r = ipcb__client_reconnect(c)) == 0)
                        r = reopen_undo(c, s);
                /* A timeout, or no fd to spare: the next call tries again. */
                if (r < 0 && r != -ENOTCONN && r != -ETIMEDOUT && r != -EMFILE)
                        s->obj.orphan = true;
                if (r < 0 && r != -ETIMEDOUT && r != -EMFILE)
                        r = -ENOTCONN;
        }
        pthread_mutex_unlock(&c->lock);
        return r;
}

/* ---- the calls ---- */

static int sem_enter(ipcb_sem *s) {
        if (!s)
                return -EINVAL;
        if (!s->slot)
                return 0;
        if (s->fork_gen != atomic_load_explicit(&fork_gen, memory_order_relaxed))
                return -ECHILD;
        if (!busy_claim(s))
                return -EBUSY;
        /* Once the connection is gone, the slot was given back (and may be
         * someone else's): get it back or a new one before writing.  A new
         * epoch (same cache line as W) may mean a restart: sem_revive checks. */
        if (atomic_load_explicit(&s->client->gone, memory_order_relaxed) ||
            atomic_load_explicit(&s->page->epoch, memory_order_relaxed) != s->epoch) {
                int r = sem_revive(s);
                if (r < 0) {
                        busy_release(s);
                        return r;
                }
        }
        return 0;
}

static void sem_leave(ipcb_sem *s) {
        if (s->slot)
                busy_release(s);
}

int ipcb_sem_try_acquire(ipcb_sem *s, int timeout_ms) {
        struct timespec deadline, *dl = NULL;
        int r;

        if ((r = sem_enter(s)) < 0)
                return r;
        if (timeout_ms > 0) {
                deadline_after(timeout_ms, &deadline);
                dl = &deadline;
        }
        if (!s->slot)
                r = plain_take(s, 1, timeout_ms, dl);
        else {
                uint32_t held = ipcb_slot_unpack(atomic_load(&s->page->slot[s->slot - 1])).held;
                r = held >= IPCB_SEM_VALUE_MAX ? -EOVERFLOW
                                                : undo_op(s, -1, held + 1, timeout_ms, dl);
                while (r == -ESTALE && (r = sem_revive(s)) == 0) {
                        held = ipcb_slot_unpack(atomic_load(&s->page->slot[s->slot - 1])).held;
                        r = undo_op(s, -1, held + 1, timeout_ms, dl);
                }
        }
        sem_leave(s);
        return r;
}

int ipcb_sem_acquire(ipcb_sem *s) {
        /* Plain handles straight to the atomics: nothing to enter or leave. */
        if (s && !s->slot)
                return plain_take(s, 1, -1, NULL);
        return ipcb_sem_try_acquire(s, -1);
}

int ipcb_sem_release(ipcb_sem *s, unsigned n) {
        int r;

        if (s && !s->slot && n > 0 && n <= s->max)
                return plain_give(s, n);
        if ((r = sem_enter(s)) < 0)
                return r;
        if (n == 0)
                r = 0;
        else if (n > s->max)
                r = -EOVERFLOW;
        else if (!s->slot)
                r = plain_give(s, n);
        else {
                /* Tokens this handle holds are given back first; any excess
                 * is a plain release.  One CAS on W either way. */
                uint32_t held = ipcb_slot_unpack(atomic_load(&s->page->slot[s->slot - 1])).held;
                r = undo_op(s, (int)n, held > n ? held - n : 0, -1, NULL);
        }
        sem_leave(s);
        return r;
}

/* SEM_OWE of n on the connection s's handle is on (c->lock held; no
 * reconnect: on another connection the handle id would name something
 * else): the broker adds n to the count and records n more owed by the
 * handle; s->owed follows its answer. */
static int owe_locked(ipcb_client *c, ipcb_sem *s, uint32_t n) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_SEM_OWE }, reply;
        int r;

        req.sem_owe.handle = s->obj.handle;
        req.sem_owe.release = n;
        req.sem_owe.owe = n;
        r = ipcb__client_call_once(c, &req, buf, &reply, NULL);
        if (r == 0)
                atomic_store(&s->owed, reply.sem_owe_reply.owed);
        return r;
}

int ipcb_sem_release_undo(ipcb_sem *s, unsigned n) {
        ipcb_client *c;
        uint32_t held;
        int r;

        if (s && !s->slot)
                return -EINVAL;
        if ((r = sem_enter(s)) < 0)
                return r;
        held = ipcb_slot_unpack(atomic_load(&s->page->slot[s->slot - 1])).held;
        if (n == 0)
                r = 0;
        else if (n > s->max)
                r = -EOVERFLOW;
        else if (n <= held) /* within what it holds: as ipcb_sem_release */
                r = undo_op(s, (int)n, held - n, -1, NULL);
        else {
                /* Beyond: the broker releases all n and records them as
                 * owed, so that a crash between the two cannot happen.  On
                 * the handle's own connection: re-open it first if a
                 * reconnect left it behind (it was busy then). */
                c = s->client;
                if ((r = sem_revive(s)) == 0 && (r = ipcb__client_lock(c)) == 0) {
                        if (!(c->caps & IPCB_CAP_SEM_OWE))
                                r = -EOPNOTSUPP;
                        else if (c->dead || c->disconnected || s->obj.orphan ||
                                 s->obj.conn_gen != c->conn_gen)
                                r = -ENOTCONN;
                        else
                                r = owe_locked(c, s, n);
                        pthread_mutex_unlock(&c->lock);
                }
        }
        sem_leave(s);
        return r;
}

int ipcb_sem_apply(ipcb_client *c, ipcb_sem *const *sems, const int *deltas, unsigned n) {
        ipcb_sem_apply_ent ents[IPCB_SEM_APPLY_MAX];
        client_obj *objs[IPCB_SEM_APPLY_MAX];
        uint64_t *ids[IPCB_SEM_APPLY_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_SEM_APPLY }, reply;
        uint8_t buf[IPCB_MSG_MAX];

        if (!c || !sems || !deltas || n == 0 || n > IPCB_SEM_APPLY_MAX)
                return -EINVAL;
        for (unsigned i = 0; i < n; i++) {
                if (!sems[i] || sems[i]->client != c || sems[i]->slot || deltas[i] == 0 ||
                    deltas[i] < -(int)sems[i]->max || deltas[i] > (int)sems[i]->max)
                        return -EINVAL;
                for (unsigned j = 0; j < i; j++)
                        if (sems[j]->obj.dev == sems[i]->obj.dev && sems[j]->obj.ino == sems[i]->obj.ino)
                                return -EINVAL;
                ents[i].delta = deltas[i];
                objs[i] = &sems[i]->obj;
                ids[i] = &ents[i].handle;
        }
        req.sem_apply.count = n;
        req.sem_apply.ents = ents;
        /* An older broker answers the unknown request -EOPNOTSUPP. */
        return ipcb__client_objs_request(c, objs, ids, n, &req, buf, &reply, NULL);
}

uint64_t ipcb_sem_owed(const ipcb_sem *s) {
        return s && s->slot ? atomic_load((_Atomic uint64_t *)&s->owed) : 0;
}

int ipcb_sem_value(ipcb_sem *s) {
        if (!s)
                return -EINVAL;
        uint32_t c = ipcb_w_unpack(atomic_load(&s->page->word)).count;
        return (int)(c > s->max ? s->max : c);
}

int ipcb_sem_set_value(ipcb_sem *s, unsigned value) {
        ipcb_sem_page *pg;
        uint64_t wv;
        uint32_t old;

        if (!s || value > s->max)
                return -EINVAL;
        pg = s->page;
        wv = atomic_load_explicit(&pg->word, memory_order_relaxed);
        /* As plain_give: only the count field changes, so an undo
         * operation that W names stays named (and is helped by the next
         * undo operation, as before); seq_cst for sem_sleep's sake. */
        do
                old = (uint32_t)(wv & 0xffffu);
        while (!atomic_compare_exchange_weak_explicit(&pg->word, &wv, (wv & ~(uint64_t)0xffffu) | value,
                                                      memory_order_seq_cst, memory_order_relaxed));
        if (value > old)
                sem_wake(s);
        return (int)(old > s->max ? s->max : old);
}

int ipcb_sem_held(ipcb_sem *s) {
        if (!s)
                return -EINVAL;
        if (!s->slot)
                return 0;
        return (int)ipcb_slot_unpack(atomic_load(&s->page->slot[s->slot - 1])).held;
}

/* ---- polling from an event loop (docs/semaphores.md, "Polling") ---- */

/* A release saw pollers: signal the semaphore's notify eventfd, which the
 * broker passes on to every poller.  The fd is fetched once per handle (a
 * round trip, the first time pollers are seen); without it (the broker is
 * gone) there is nobody to tell. */
static void sem_notify_pollers(ipcb_sem *s) {
        ipcb__client_notify(s->client, IPCB_OP_SEM_NOTIFY, &s->obj, &s->notify, &s->page->epoch);
}

/* The poller's descriptor is an epoll set of its own holding the notify
 * eventfd edge-triggered: every write to the eventfd (every release while
 * pollers are counted) makes the set readable until the next
 * ipcb_sem_poll_acquire consumes the edge, whatever other pollers do.  The
 * eventfd itself is never read. */
int ipcb_sem_get_fd(ipcb_sem *s) {
        int ep;

        if (!s)
                return -EINVAL;
        if (s->poll_fd >= 0)
                return s->poll_fd;
        ep = ipcb__client_poll_register(s->client, IPCB_OP_SEM_POLL, &s->obj, &s->notify,
                                        &s->page->epoch);
        if (ep >= 0)
                s->poll_fd = ep;
        return ep;
}

int ipcb_sem_poll_acquire(ipcb_sem *s) {
        struct epoll_event ev;

        if (!s)
                return -EINVAL;
        /* Consume the edge first, then look: a release after the look makes
         * a new edge. */
        if (s->poll_fd >= 0)
                (void)epoll_wait(s->poll_fd, &ev, 1, 0);
        atomic_thread_fence(memory_order_seq_cst); /* the look, seq_cst (docs/semaphores.md) */
        return ipcb_sem_try_acquire(s, 0);
}

/* ---- several tokens at once ---- */

int ipcb_sem_acquire_n(ipcb_sem *s, unsigned n, int timeout_ms) {
        struct timespec deadline, *dl = NULL;
        uint32_t held;
        int r;

        if (!s || n == 0 || n > s->max)
                return -EINVAL;
        if ((r = sem_enter(s)) < 0)
                return r;
        if (timeout_ms > 0) {
                deadline_after(timeout_ms, &deadline);
                dl = &deadline;
        }
        if (!s->slot)
                r = plain_take(s, n, timeout_ms, dl);
        else {
                held = ipcb_slot_unpack(atomic_load(&s->page->slot[s->slot - 1])).held;
                r = held + n > IPCB_SEM_VALUE_MAX ? -EOVERFLOW
                                                   : undo_op(s, -(int)n, held + n, timeout_ms, dl);
                while (r == -ESTALE && (r = sem_revive(s)) == 0) {
                        held = ipcb_slot_unpack(atomic_load(&s->page->slot[s->slot - 1])).held;
                        r = held + n > IPCB_SEM_VALUE_MAX
                                    ? -EOVERFLOW
                                    : undo_op(s, -(int)n, held + n, timeout_ms, dl);
                }
        }
        sem_leave(s);
        return r;
}
