/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* peer.c: a client connection.  The socket is read and written with
 * recvmsg/sendmsg (util/sock.c), because libuv's stream API can neither
 * receive memfds nor report MSG_CTRUNC.
 *
 * Every connection, and the pidfd of its process once watched, is in the
 * daemon's wait set (mainloop.c), which takes a bounded number of events a
 * turn: thousands of clients hanging up at once are spread over turns.
 *
 * The loop never waits on a client, and a client cannot make the daemon
 * hold more for it than a few fds and one reply: replies are sent at once;
 * when the socket is full a reply is queued and the connection is not read
 * again until the queue is empty.  A connection is not read either while
 * fds sent to it sit unread in its socket (the kernel counts those against
 * the daemon's uid: see throttled()), or while fds it sent wait to be
 * closed (reaper.c).  Every fd that came from a client is closed off the
 * loop thread. */
#include "peer.h"

#include "config.h"
#include "log.h"
#include "mainloop.h"
#include "os.h"
#include "request.h"
#include "notify.h"
#include "lock.h"
#include "quota.h"
#include "reaper.h"
#include "sem.h"
#include "sock.h"
#include "sempoll.h"
#include "watch.h"
#include "turns.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PEER_READ_BURST 32 /* datagrams per readable event, for fairness */
/* fds from one connection (uid) that may wait to be closed before it (all
 * of the uid's connections) is no longer read. */
#define REAPING_PER_PEER 8
#define REAPING_PER_UID 64
#define THROTTLE_TICK_MS 5
#define HANDLE_SLOTS_MAX (1u << 24)
/* Hung-up connections closed per loop turn: a close costs several
 * microseconds (its handles, its fds, its poll), and thousands of clients
 * can die at once. */
#define HANGUPS_PER_TURN 128
/* A connection closed with more handles than this releases them a slice at
 * a time (release_run): settling an undo handle maps its semaphore's page,
 * and the last handle of a transient object closes its memfd, so a client
 * that dies holding thousands would hold the loop for tens of
 * milliseconds.  RELEASE_SLICE_NS: what a turn spends on them in all. */
#define CLOSE_INLINE_HANDLES 32
#define RELEASE_SLICE_NS 200000u
/* What the closes (and process exits) of one turn release at once, in all:
 * a client that died holding 32 undo handles on each of 94 connections
 * brought its hang-ups into a few turns, up to 64 (a turn's events) and 2048
 * settlements in one: 11-12 ms of CPU.  Past it, a close is paced as a
 * larger one is. */
#define INLINE_HANDLES_PER_TURN 64

struct queued_reply {
        queued_reply *next;
        size_t len;
        unsigned nfds;
        int fds[IPCB_FDS_MAX];
        uint8_t buf[];
};

static peer *peers;
static unsigned npeers;
static uv_loop_t *peer_loop;
/* Peers finished (peer_finish_close), freed when the turn ends: until then
 * a caller or an event of this turn may still name them. */
static peer *graveyard;
#define REFUSING_MAX 64 /* over-quota connections waiting for their refusal */
static unsigned nrefusing;
static log_ratelimit rl_proto;
/* Connections not read for now (throttled()), re-checked every tick. */
static peer *throttled_list;
static uv_timer_t throttle_timer;
static bool throttle_timer_on;
/* Hung-up connections waiting to be closed, oldest first; the idle handle
 * runs while there are any (so the poll does not wait).  hup_closes: those
 * closed this turn. */
static peer *hup_head, *hup_tail;
static uv_idle_t hup_idle;
static unsigned hup_closes;
/* Closed connections releasing their handles a slice a turn, a few steps
 * each in turn (release_run), and what this turn spent on them. */
static peer *rel_head, *rel_tail;
static uint64_t rel_spent_ns;
static unsigned inline_handles; /* released at once this turn (release_at_once) */
/* The uids whose connections hangups_before_connect polled this turn */
#define HUP_CHECK_UIDS 4
static uid_t hup_checked[HUP_CHECK_UIDS];
static unsigned nhup_checked;

/* One receive buffer and one send buffer for the whole (single-threaded) loop. */
static uint8_t rx_buf[IPCB_MSG_MAX];
static uint8_t tx_buf[IPCB_MSG_MAX];

unsigned peer_count(void) {
        return npeers;
}

/* ---- holders ---- */

/* One connection's handles on one object: in the object's list, which
 * HOLDERS walks (rather than every handle slot of every connection: 0.15
 * ms with 131072 handles open, a burst of such requests a turn of 4-6 ms),
 * and in the connection's table, by object, where a handle's open and
 * release find it. */
typedef struct holder {
        peer *p;
        object *o;
        uint32_t handles;
        struct holder *prev, *next; /* o's holders */
        /* While p's undo handles are settled (settle_add): what they held
         * and owe on o, summed, to be settled at once (settle_sum). */
        uint64_t give, take;
} holder;

static uint32_t held_hash(const object *o) {
        return (uint32_t)(((uint64_t)(uintptr_t)o * 0x9e3779b97f4a7c15u) >> 32);
}

/* Where o is in p's table: its record, or the empty slot it would take. */
static uint32_t held_find(const peer *p, const object *o) {
        uint32_t i = held_hash(o) & p->held_mask;

        while (p->held[i] && p->held[i]->o != o)
                i = (i + 1) & p->held_mask;
        return i;
}

/* The table rehashed at cap entries (a power of two, more than nheld). */
static int held_resize(peer *p, uint32_t cap) {
        uint32_t old_cap = p->held ? p->held_mask + 1 : 0;
        holder **old = p->held, **t = calloc(cap, sizeof(*t));

        if (!t)
                return -ENOMEM;
        p->held = t;
        p->held_mask = cap - 1;
        for (uint32_t i = 0; i < old_cap; i++)
                if (old[i])
                        p->held[held_find(p, old[i]->o)] = old[i];
        free(old);
        return 0;
}

/* One more handle of p on o. */
static int held_add(peer *p, object *o) {
        uint32_t i = 0;
        holder *h;

        if (p->held && (h = p->held[i = held_find(p, o)])) {
                h->handles++;
                return 0;
        }
        if (!p->held || (p->nheld + 1) * 2 > p->held_mask + 1) {
                if (held_resize(p, p->held ? (p->held_mask + 1) * 2 : 8) < 0)
                        return -ENOMEM;
                i = held_find(p, o);
        }
        if (!(h = malloc(sizeof(*h))))
                return -ENOMEM;
        *h = (holder){ .p = p, .o = o, .handles = 1, .next = o->holders };
        if (o->holders)
                o->holders->prev = h;
        o->holders = h;
        p->held[i] = h;
        p->nheld++;
        return 0;
}

/* One handle of p on o less: its record goes with the last. */
static void held_remove(peer *p, object *o) {
        uint32_t i = held_find(p, o), j = i, k;
        holder *h = p->held[i];

        if (--h->handles)
                return;
        if (h->prev)
                h->prev->next = h->next;
        else
                o->holders = h->next;
        if (h->next)
                h->next->prev = h->prev;
        free(h);
        p->nheld--;
        /* Linear probing: move back each later record of the run that may
         * sit in the hole, so that every record stays reachable from its
         * home slot. */
        for (;;) {
                j = (j + 1) & p->held_mask;
                if (!p->held[j])
                        break;
                k = held_hash(p->held[j]->o) & p->held_mask;
                if (i <= j ? i < k && k <= j : i < k || k <= j)
                        continue; /* its home is after the hole: it stays */
                p->held[i] = p->held[j];
                i = j;
        }
        p->held[i] = NULL;
        /* An eighth full: half as large (a failed calloc leaves it as it
         * is), so that it follows the objects held, not the most ever held.
         * Not while its release walks the table (REL_SETTLE). */
        if (p->held_mask >= 8 && p->nheld * 8 < p->held_mask + 1 && !p->closing && !p->rel_live)
                (void)held_resize(p, (p->held_mask + 1) / 2);
}

unsigned peer_holders(const object *o, ipcb_holder_rec *recs, unsigned max) {
        unsigned total = 0;

        for (const holder *h = o->holders; h; h = h->next) {
                if (h->p->closing) /* its handles go a slice a turn: gone for clients */
                        continue;
                if (total < max)
                        recs[total] = (ipcb_holder_rec){ .pid = (uint32_t)h->p->cred.pid,
                                                         .uid = (uint32_t)h->p->cred.uid,
                                                         .handles = h->handles };
                total++;
        }
        return total;
}

static unsigned nlingering;

unsigned peer_lingering(void) {
        return nlingering;
}

/* ---- handles ---- */

/* A connection's handle slots come in pages of HANDLE_PAGE, and a page
 * goes with its last handle (all but the first page), so that what a
 * connection keeps follows the handles it holds, not the most it ever
 * held: with one table of slots for its peak (40 bytes each) a uid's 256
 * connections could keep 160 MiB after closing all but 256 handles.  A
 * new page takes the lowest free entry of the directory, which shrinks
 * when its top quarter-and-more is empty.  A handle's id: its generation
 * (the connection's count of handles made, 31 bits) and its slot's index
 * + 1.  Slots never move while they hold a handle. */
#define HANDLE_PAGE 16
#define PAGE_ALL_FREE ((uint32_t)((1ull << HANDLE_PAGE) - 1))

typedef struct handle_page {
        struct handle_page *prev, *next; /* p->open_pages */
        uint32_t free;                   /* bit j: s[j] is free */
        uint32_t idx;                    /* in p->pages */
        handle_slot s[HANDLE_PAGE];
} handle_page;

static handle_slot *slot_at(const peer *p, uint32_t i) {
        handle_page *pg = i / HANDLE_PAGE < p->pages_top ? p->pages[i / HANDLE_PAGE] : NULL;

        return pg ? &pg->s[i % HANDLE_PAGE] : NULL;
}

static void open_push(peer *p, handle_page *pg) {
        pg->prev = NULL;
        pg->next = p->open_pages;
        if (pg->next)
                pg->next->prev = pg;
        p->open_pages = pg;
}

static void open_remove(peer *p, handle_page *pg) {
        if (pg->prev)
                pg->prev->next = pg->next;
        else
                p->open_pages = pg->next;
        if (pg->next)
                pg->next->prev = pg->prev;
}

static int page_new(peer *p) {
        uint32_t i = p->page_hole;
        handle_page *pg;

        while (i < p->pages_top && p->pages[i])
                i++;
        if (i == p->npages) {
                uint32_t cap = p->npages ? p->npages * 2 : 4;
                handle_page **dir;
                if ((uint64_t)cap * HANDLE_PAGE > HANDLE_SLOTS_MAX)
                        return -EMFILE;
                if (!(dir = realloc(p->pages, sizeof(*dir) * cap)))
                        return -ENOMEM;
                p->pages = dir;
                p->npages = cap;
        }
        if (!(pg = malloc(sizeof(*pg))))
                return -ENOMEM;
        *pg = (handle_page){ .free = PAGE_ALL_FREE, .idx = i };
        p->pages[i] = pg;
        if (i == p->pages_top)
                p->pages_top++;
        p->page_hole = i + 1;
        open_push(p, pg);
        return 0;
}

static void page_free(peer *p, handle_page *pg) {
        open_remove(p, pg);
        p->pages[pg->idx] = NULL;
        while (p->pages_top && !p->pages[p->pages_top - 1])
                p->pages_top--;
        if (pg->idx < p->page_hole)
                p->page_hole = pg->idx;
        if (p->page_hole > p->pages_top)
                p->page_hole = p->pages_top;
        free(pg);
        if (p->npages > 4 && p->pages_top <= p->npages / 4) {
                handle_page **dir = realloc(p->pages, sizeof(*dir) * (p->npages / 2));
                if (dir) { /* else it stays as large */
                        p->pages = dir;
                        p->npages /= 2;
                }
        }
}

int64_t peer_handle_add(peer *p, object *o, uint32_t access) {
        handle_page *pg;
        unsigned j;
        int k;

        if ((k = quota_charge(p->cred.uid, QUOTA_HANDLES, 1)) < 0)
                return k;
        if ((!p->open_pages && (k = page_new(p)) < 0) || (k = held_add(p, o)) < 0) {
                quota_uncharge(p->cred.uid, QUOTA_HANDLES, 1);
                return k;
        }
        pg = p->open_pages;
        j = (unsigned)__builtin_ctz(pg->free);
        pg->free &= pg->free - 1;
        if (!pg->free)
                open_remove(p, pg);
        p->gen = (p->gen + 1) & INT32_MAX; /* ids stay positive */
        pg->s[j] = (handle_slot){ .obj = o, .access = access, .gen = p->gen };
        p->nhandles++;
        object_ref(o, access);
        return (int64_t)((uint64_t)p->gen << 32 | (pg->idx * HANDLE_PAGE + j + 1));
}

handle_slot *peer_handle_get(peer *p, uint64_t id) {
        uint32_t i = (uint32_t)id, gen = (uint32_t)(id >> 32);
        handle_slot *s = i ? slot_at(p, i - 1) : NULL;

        return s && s->obj && s->gen == gen ? s : NULL;
}

/* Give back what a handle holds on the object's shared page, undo tokens
 * (less what it owes: SEM_OWE) and the lock, and wake whoever its process
 * may have left asleep.  Done once: when the handle is released or when
 * its process has exited, whichever comes first. */
static void handle_settle(handle_slot *s) {
        if (s->sem_slot || s->owed)
                sem_slot_release(s->obj, s->sem_slot, s->owed);
        /* Its process may have died between a release and the wake-up that
         * should follow it: wake the sleepers on its behalf.  A spurious
         * wake-up only costs a sleeper one more look. */
        if (s->obj->sem)
                sem_wake_sleepers(s->obj);
        if (s->lock_token)
                lock_token_release(s->obj, s->lock_token);
        s->sem_slot = 0;
        s->owed = 0;
        s->lock_token = 0;
}

static uint64_t add_sat(uint64_t a, uint64_t b) {
        return UINT64_MAX - a < b ? UINT64_MAX : a + b;
}

/* An undo handle's held and owed tokens, added to its holder record
 * (p->rel_sums: the records with something to settle). */
static void settle_add(peer *p, handle_slot *s) {
        holder *h = p->held[held_find(p, s->obj)];
        bool had = h->give || h->take;

        h->give += sem_slot_free(s->obj, s->sem_slot);
        h->take = add_sat(h->take, s->owed);
        p->rel_sums += !had && (h->give || h->take);
        s->sem_slot = 0;
        s->owed = 0;
}

/* What settle_add summed on h's semaphore, settled in one step: count +
 * held - owed clamped to [0, max] once, as the kernel applies a process's
 * semadj.  Returns whether there was anything. */
static bool settle_sum(holder *h) {
        if (!h->give && !h->take)
                return false;
        sem_settle_tokens(h->o, h->give, h->take);
        h->give = h->take = 0;
        h->p->rel_sums--;
        return true;
}

static void handle_slot_release(peer *p, uint32_t i) {
        handle_page *pg = p->pages[i / HANDLE_PAGE];
        handle_slot *s = &pg->s[i % HANDLE_PAGE];
        object *o = s->obj;
        uint32_t access = s->access;

        handle_settle(s);
        if (s->polled)
                sempoll_handle_released(o, p);
        /* What a writer grew the segment by is charged before it may go. */
        if (o->flags & IPCB_WF_GROWABLE)
                (void)object_size(o);
        s->obj = NULL;
        if (!pg->free)
                open_push(p, pg);
        pg->free |= 1u << (i % HANDLE_PAGE);
        if (pg->free == PAGE_ALL_FREE && pg->idx)
                page_free(p, pg);
        p->nhandles--;
        held_remove(p, o);
        quota_uncharge(p->cred.uid, QUOTA_HANDLES, 1);
        object_unref(o, access);
}

void peer_handle_release(peer *p, uint64_t id) {
        if (peer_handle_get(p, id))
                handle_slot_release(p, (uint32_t)id - 1);
}

/* A closed connection's release, a step at a time (release_run, or
 * release_now): first its segment locks, for their next lockers; then what
 * its undo handles hold and owe, summed per semaphore (settle_add); then
 * each sum settled (a step per holder record); then each handle released.
 * A live connection whose process exited (p->rel_live, on_process_exit)
 * stops after the sums, having woken the sleepers of each of its
 * semaphores with them, as handle_settle would; closed meanwhile, it goes
 * on to the releases. */
enum { REL_LOCKS, REL_NET, REL_SETTLE, REL_RELEASE };

/* One step of p's release; false once it is done.  A step does one
 * thing, or looks at REL_SCAN slots however sparse the table is. */
#define REL_SCAN 256

static bool release_step(peer *p) {
        unsigned scanned = 0;

        if (p->rel_phase == REL_SETTLE) {
                for (; (p->rel_sums || p->rel_live) && p->held && p->rel_at <= p->held_mask; p->rel_at++) {
                        holder *h = p->held[p->rel_at];
                        if (++scanned > REL_SCAN)
                                return true;
                        if (!h)
                                continue;
                        /* given tokens: now, not when a handle's turn comes */
                        bool wake = h->give || (p->rel_live && h->o->sem);
                        if (!settle_sum(h) && !wake)
                                continue;
                        if (wake)
                                sem_wake_sleepers(h->o);
                        p->rel_at++;
                        return true;
                }
                if (p->rel_live)
                        return false;
                p->rel_phase = REL_RELEASE;
                p->rel_at = 0;
                return true;
        }
        for (; p->rel_at < p->pages_top * HANDLE_PAGE; p->rel_at++) {
                handle_slot *s = slot_at(p, p->rel_at);
                if (++scanned > REL_SCAN)
                        return true;
                if (!s) { /* no page: its slots at once */
                        p->rel_at |= HANDLE_PAGE - 1;
                        continue;
                }
                if (!s->obj)
                        continue;
                if (p->rel_phase == REL_LOCKS && s->lock_token) {
                        lock_token_release(s->obj, s->lock_token);
                        s->lock_token = 0;
                } else if (p->rel_phase == REL_NET && (s->sem_slot || s->owed))
                        settle_add(p, s);
                else if (p->rel_phase == REL_RELEASE)
                        handle_slot_release(p, p->rel_at);
                else
                        continue;
                p->rel_at++;
                return true;
        }
        if (p->rel_phase == REL_RELEASE)
                return false;
        p->rel_phase++; /* locks, then undo handles, then their sums */
        p->rel_at = 0;
        return true;
}

/* p's release (or, p->rel_live, settlement) from its first step to its
 * last, now: a close of few handles, or any at shutdown. */
static void release_now(peer *p) {
        p->rel_phase = REL_LOCKS;
        p->rel_at = 0;
        while (release_step(p))
                ;
}

static void hangups_idle(void);
static bool shutting_down;

/* Do p's handles go now (release_now), rather than over the next turns
 * (release_queue)?  A few, while this turn has released few; all at a
 * stop. */
static bool release_at_once(peer *p) {
        if (shutting_down)
                return true;
        if (p->nhandles > CLOSE_INLINE_HANDLES || inline_handles + p->nhandles > INLINE_HANDLES_PER_TURN)
                return false;
        inline_handles += p->nhandles;
        return true;
}

static void rel_append(peer *p) {
        p->rel_next = NULL;
        if (rel_tail)
                rel_tail->rel_next = p;
        else
                rel_head = p;
        rel_tail = p;
}

/* p's handles to be released (or, p->rel_live, settled) over the next
 * turns, beside those of other uids' closed connections: one connection of
 * each uid takes turns with the others' (release_run), and the uid's
 * others wait behind it (rel_more), so that a uid with hundreds of
 * releases does not get hundreds of shares.  Meanwhile no connection of
 * its uid is read (over_limits), so that its clients find the handles
 * gone, as they would had they gone at once. */
static void release_queue(peer *p) {
        (void)quota_charge(p->cred.uid, QUOTA_RELEASING, 1); /* counted, never refused */
        void **last = quota_user_data(p->cred.uid, QUOTA_DATA_RELEASING);

        p->rel_phase = REL_LOCKS;
        p->rel_at = 0;
        p->rel_more = NULL;
        if (last && *last)
                ((peer *)*last)->rel_more = p;
        else
                rel_append(p);
        if (last)
                *last = p;
        /* From libuv's turn (on_hangups), never from inside a request's
         * handler, which may still use an object that another closed
         * connection's release would destroy. */
        hangups_idle();
}

/* ---- output ---- */

static void peer_set_events(peer *p, unsigned events);
static void peer_update_events(peer *p);
static void peer_hangup(peer *p);
static void peer_drop(peer *p);
static void throttle(peer *p);

/* A queued reply, sent or dropped.  Its fds are the daemon's copies of its
 * own memfds: one may be the file's last reference (object.c,
 * object_destroy), whose close frees its pages. */
static void queued_free(queued_reply *q) {
        for (unsigned i = 0; i < q->nfds; i++)
                reaper_close_own(q->fds[i]);
        free(q);
}

static void queue_free(peer *p) {
        queued_reply *q, *next;

        for (q = p->q_head; q; q = next) {
                next = q->next;
                queued_free(q);
        }
        p->q_head = p->q_tail = NULL;
        p->q_len = 0;
        p->q_fds = 0;
}

static int queue_push(peer *p, const uint8_t *buf, size_t len, const int *fds, unsigned nfds) {
        queued_reply *q = malloc(sizeof(*q) + len);

        if (!q)
                return -ENOMEM;
        q->next = NULL;
        q->len = len;
        q->nfds = 0;
        memcpy(q->buf, buf, len);
        /* The object may be gone before the reply leaves: keep our own copies. */
        for (unsigned i = 0; i < nfds; i++) {
                int f = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
                if (f < 0) {
                        int k = -errno;
                        os_close_fds(q->fds, q->nfds);
                        free(q);
                        return k;
                }
                q->fds[q->nfds++] = f;
        }
        if (p->q_tail)
                p->q_tail->next = q;
        else
                p->q_head = q;
        p->q_tail = q;
        p->q_len++;
        p->q_fds += q->nfds;
        return 0;
}

/* fds sent in replies are in flight until the client reads them.  SIOCOUTQ
 * on a Unix socket is what the kernel charges for the datagrams it sent
 * that the peer has not received yet.  They are received in order, so
 * while the last fd-carrying reply is unread, it (at least its length)
 * and every datagram after it that is still queued are charged; what
 * those cost is measured as they are sent (peer_send).  Less than that
 * means every fd sent so far has been taken, though the client may not
 * have read what came after (a watcher under a stream of events is never
 * seen empty).  A datagram the client's socket filter dropped was never
 * queued, and was measured as costing nothing. */
static bool inflight_read(const peer *p, int outq) {
        return outq >= 0 && (uint64_t)outq < p->fds_reply_len + p->after_cost;
}

static void inflight_clear(peer *p) {
        quota_uncharge(p->cred.uid, QUOTA_INFLIGHT, p->fds_unread);
        p->fds_unread = 0;
        p->unread_since = 0; /* its client read everything */
}

static void inflight_refresh(peer *p) {
        int outq;

        if (p->fds_unread && ioctl(p->fd, SIOCOUTQ, &outq) == 0 && inflight_read(p, outq))
                inflight_clear(p);
}

int peer_send(peer *p, const uint8_t *buf, size_t len, const int *fds, unsigned nfds) {
        int before = -1, after, k;

        /* A datagram after an fd-carrying reply not known to be read: what
         * it costs is what SIOCOUTQ grows by, which only this send can
         * make grow (the client's reads make it shrink: never more). */
        if (!nfds && p->fds_unread && ioctl(p->fd, SIOCOUTQ, &before) == 0 && inflight_read(p, before)) {
                inflight_clear(p);
                before = -1;
        }
        k = ipcb__sock_send(p->fd, buf, len, fds, nfds, MSG_DONTWAIT);
        if (k < 0)
                return k;
        if (nfds) {
                p->fds_reply_len = len; /* what it costs at least */
                p->after_cost = 0;
                p->fds_unread += nfds;
                (void)quota_charge(p->cred.uid, QUOTA_INFLIGHT, nfds); /* counted, never refused */
        } else if (before >= 0 && ioctl(p->fd, SIOCOUTQ, &after) == 0 && after > before)
                p->after_cost += (uint64_t)(after - before);
        return 0;
}

/* Send what is queued.  Returns 0 (maybe with some left), or a negative errno
 * when the connection is broken. */
static int queue_flush(peer *p) {
        while (p->q_head) {
                queued_reply *q = p->q_head;
                int k = peer_send(p, q->buf, q->len, q->fds, q->nfds);
                if (k == -EAGAIN)
                        return 0;
                if (k < 0)
                        return k;
                p->unread_since = 0; /* its client reads */
                p->q_head = q->next;
                if (!p->q_head)
                        p->q_tail = NULL;
                p->q_len--;
                p->q_fds -= q->nfds;
                queued_free(q);
        }
        return 0;
}

static void send_bytes(peer *p, const uint8_t *buf, size_t len, const int *fds, unsigned nfds) {
        int k = -EAGAIN;

        if (p->closing || p->hup_queued) /* gone, or going: nobody will read it */
                return;
        if (!p->q_head)
                k = peer_send(p, buf, len, fds, nfds);
        if (k == 0)
                return;
        if (k != -EAGAIN) {
                log_client_debug("client pid %d: send failed: %s", (int)p->cred.pid, strerror(-k));
                peer_drop(p);
                return;
        }
        /* The socket is full: this reply waits, and the connection is not
         * read until it has gone (peer_update_events), so the queue holds
         * at most the replies of one burst. */
        if (p->q_len >= cfg.max_queued_replies) {
                log_client_info("client pid %d uid %u: reply queue full; disconnecting",
                                (int)p->cred.pid, (unsigned)p->cred.uid);
                peer_drop(p);
                return;
        }
        k = queue_push(p, buf, len, fds, nfds);
        if (k < 0) {
                log_client_warn("client pid %d: cannot queue a reply: %s; disconnecting",
                         (int)p->cred.pid, strerror(-k));
                peer_drop(p);
                return;
        }
        throttle(p); /* so its waiting is looked at (unread_check) */
        peer_update_events(p);
}

void peer_reply(peer *p, const ipcb_msg *m, const int *fds, unsigned nfds) {
        ipcb_msg r = *m;
        ssize_t len;

        r.hdr.nfds = (uint8_t)nfds;
        len = ipcb__proto_encode(&r, tx_buf, sizeof(tx_buf));
        if (len < 0) { /* a bug: a reply we built does not fit */
                log_err("cannot encode reply to op 0x%04x: %s", r.hdr.op, strerror((int)-len));
                r.hdr.status = -EIO;
                len = ipcb__proto_encode(&r, tx_buf, sizeof(tx_buf));
                nfds = 0;
        }
        send_bytes(p, tx_buf, (size_t)len, r.hdr.status < 0 ? NULL : fds,
                   r.hdr.status < 0 ? 0 : nfds);
}

void peer_reply_error(peer *p, const ipcb_hdr *req, int status) {
        ipcb_msg r = { .hdr = { .op = req->op | IPCB_OP_REPLY, .id = req->id, .status = status } };

        if (req->flags & IPCB_HF_NOREPLY) /* not even an error: its sender reads none */
                return;
        peer_reply(p, &r, NULL, 0);
}

/* ---- input ---- */

static void protocol_violation(peer *p, const char *what) {
        if (log_ratelimit_ok(&rl_proto, 10))
                log_debug("client pid %d uid %u: %s; disconnecting", (int)p->cred.pid,
                          (unsigned)p->cred.uid, what);
        peer_close(p);
}

/* Reading p now would let it hold more than its share: a reply waiting
 * for room in its socket, fds in its unread replies (which the kernel
 * counts against the daemon's uid, up to RLIMIT_NOFILE, before every
 * fd-carrying reply fails with ETOOMANYREFS), or fds of its own waiting to
 * be closed.  Per connection and per uid. */
static bool over_limits(const peer *p) {
        uid_t uid = p->cred.uid;

        return p->q_head || p->off_loop || (p->store_wait && notify_congested()) ||
               p->fds_unread >= cfg.max_fds_in_flight ||
               quota_use(uid, QUOTA_INFLIGHT) >= cfg.max_fds_in_flight_per_uid ||
               reaper_account_pending(p->reaping) >= REAPING_PER_PEER ||
               quota_use(uid, QUOTA_REAPING) >= REAPING_PER_UID ||
               (rel_head && quota_use(uid, QUOTA_RELEASING) > 0);
}

static void on_throttle_tick(uv_timer_t *t);

/* Does p's next request store an fd (the service manager being behind)?
 * Its op, peeked at: the request stays queued until it may be served. */
static bool next_may_store(peer *p) {
        uint8_t op[2];

        if (recv(p->fd, op, sizeof(op), MSG_PEEK | MSG_DONTWAIT) != (ssize_t)sizeof(op) ||
            !request_may_store((uint16_t)(op[0] | op[1] << 8)))
                return false;
        p->store_wait = true;
        return true;
}

/* Is p to be left unread for now?  Refreshes what its client has read first. */
static bool throttled(peer *p) {
        static uint64_t swept_ms = UINT64_MAX;
        uint64_t now;

        if (!over_limits(p))
                return false;
        inflight_refresh(p);
        /* The uid's other connections, at most once a millisecond for all
         * uids: a uid at its limit that keeps opening connections would
         * otherwise have the loop ask about every one of its connections
         * per new one.  A connection left waiting is decided again at the
         * next tick (on_throttle_tick). */
        if (quota_use(p->cred.uid, QUOTA_INFLIGHT) >= cfg.max_fds_in_flight_per_uid &&
            (now = uv_now(peer_loop)) != swept_ms) {
                uid_t uid = quota_principal(p->cred.uid);
                swept_ms = now;
                for (peer *q = peers; q; q = q->next)
                        if (q != p && quota_principal(q->cred.uid) == uid)
                                inflight_refresh(q);
        }
        return over_limits(p);
}

static void throttle(peer *p) {
        if (p->throttled)
                return;
        p->throttled = true;
        p->thr_next = throttled_list;
        p->thr_prev = NULL;
        if (throttled_list)
                throttled_list->thr_prev = p;
        throttled_list = p;
        if (!throttle_timer_on) {
                uv_timer_start(&throttle_timer, on_throttle_tick, THROTTLE_TICK_MS, THROTTLE_TICK_MS);
                throttle_timer_on = true;
        }
        if (p->rel_live)
                log_client_debug("client pid %d uid %u: its process exited; not read until its tokens "
                                 "are settled", (int)p->cred.pid, (unsigned)p->cred.uid);
        else if (p->off_loop)
                log_client_debug("client pid %d uid %u: a request of its is served off the loop; not "
                                 "read until it is done", (int)p->cred.pid, (unsigned)p->cred.uid);
        else if (p->store_wait)
                log_client_debug("client pid %d uid %u: its next request stores an fd, and the service "
                                 "manager is behind; not read for now", (int)p->cred.pid, (unsigned)p->cred.uid);
        else if (p->q_head)
                log_client_debug("client pid %d uid %u: its socket is full; not read until its client "
                                 "reads", (int)p->cred.pid, (unsigned)p->cred.uid);
        else
                log_client_debug("client pid %d uid %u: %u fds unread, %u waiting to be closed; not read "
                                 "for now", (int)p->cred.pid, (unsigned)p->cred.uid, p->fds_unread,
                                 reaper_account_pending(p->reaping));
        peer_update_events(p);
}

static void unthrottle(peer *p) {
        if (!p->throttled)
                return;
        p->throttled = false;
        p->store_wait = false;
        p->unread_since = 0; /* read again: a next wait starts afresh */
        if (p->thr_prev)
                p->thr_prev->thr_next = p->thr_next;
        else
                throttled_list = p->thr_next;
        if (p->thr_next)
                p->thr_next->thr_prev = p->thr_prev;
        p->thr_next = p->thr_prev = NULL;
        if (!throttled_list && throttle_timer_on) {
                uv_timer_stop(&throttle_timer);
                throttle_timer_on = false;
        }
}

static void peer_finish_close(peer *p);

/* A client can leave its replies unread: its connection is then not read
 * (a reply waits for room, or too many fds are unread, its own or its
 * uid's), which is its client's to end.  But a client can also end it
 * never: by sending, in a request that waits there, its own end of the
 * connection, then closing it.  That end lives on in the daemon's queue, which is not read, so
 * there is no hang-up, and the connection would be held for good.  So a
 * connection whose requests have waited so for cfg.unread_timeout_s with
 * its client reading nothing is dropped (a client with none waiting is
 * idle, not stuck, and kept).  Called about once a second. */
static void unread_check(peer *p, uint64_t now) {
        /* (a connection at its uid's limit waits for the uid's other
         * connections' clients, which may hold its end in their queues) */
        bool on_client = p->q_head || p->fds_unread >= cfg.max_fds_in_flight ||
                         quota_use(p->cred.uid, QUOTA_INFLIGHT) >= cfg.max_fds_in_flight_per_uid;
        int outq, inq;

        if (!cfg.unread_timeout_s || p->closing || p->off_loop || !on_client ||
            ioctl(p->fd, SIOCOUTQ, &outq) < 0) {
                p->unread_since = 0;
                return;
        }
        if (!p->unread_since || outq < p->unread_outq) { /* from now: it waits, or its client read */
                p->unread_since = now;
                p->unread_outq = outq;
                return;
        }
        p->unread_outq = outq;
        if (now - p->unread_since < cfg.unread_timeout_s * 1000)
                return;
        if (ioctl(p->fd, SIOCINQ, &inq) < 0 || inq <= 0) { /* nothing waits: idle */
                p->unread_since = now;
                return;
        }
        log_client_info("client pid %d uid %u: its requests waited %llu s for it to read its replies; "
                        "disconnecting", (int)p->cred.pid, (unsigned)p->cred.uid,
                        (unsigned long long)cfg.unread_timeout_s);
        peer_drop(p);
}

/* What the clients have read is asked once a tick: of every waiting (or
 * lingering) connection, and of every connection of a uid at its limit
 * (the uid's count holds its connections).  Asking per waiting connection
 * (throttled(), which sweeps the uid) would cost, with hundreds of one
 * uid's connections waiting, hundreds of times hundreds of calls a tick. */
static void on_throttle_tick(uv_timer_t *t) {
        static uint64_t unread_checked;
        uint64_t now = uv_now(peer_loop);
        peer *p, *next;

        (void)t;
        for (p = throttled_list; p; p = p->thr_next)
                inflight_refresh(p);
        if (now - unread_checked >= 1000) {
                unread_checked = now;
                for (p = throttled_list; p; p = next) {
                        next = p->thr_next;
                        unread_check(p, now);
                }
        }
        for (p = peers; p; p = p->next)
                if (!p->throttled && p->fds_unread &&
                    quota_use(p->cred.uid, QUOTA_INFLIGHT) >= cfg.max_fds_in_flight_per_uid)
                        inflight_refresh(p);
        for (p = throttled_list; p; p = next) {
                next = p->thr_next;
                if (p->closing) { /* lingering: its unread fds keep it */
                        if (!p->fds_unread) {
                                unthrottle(p);
                                peer_finish_close(p);
                        }
                } else if (!over_limits(p)) {
                        unthrottle(p);
                        peer_update_events(p); /* level-triggered: pending requests wake it */
                }
        }
}

/* A close of one of p's fds finished (reaper.c): it may be read again. */
void peer_op_start(peer *p, peer_op *op) {
        op->p = p;
        p->off_loop = op;
}

/* Something p waited for is done: read it again unless it still waits. */
static void resume_reading(peer *p) {
        if (p->throttled && !p->closing && !throttled(p)) {
                unthrottle(p);
                peer_update_events(p);
        }
}

void peer_op_done(peer_op *op) {
        peer *p = op->p;

        if (!p)
                return;
        op->p = NULL;
        p->off_loop = NULL;
        resume_reading(p);
}

static void on_reaped(void *userdata) {
        resume_reading(userdata);
}

/* p was dropped (peer_drop) by its reply to the request just read (p is
 * never read once in the hang-up queue): closed now, the handler done,
 * before anyone else is read. */
static bool closed_if_dropped(peer *p) {
        if (!p->hup_queued)
                return false;
        peer_close(p);
        return true;
}

/* Fds of a message that came with more than it may carry: charged to the
 * connection being read (rx_account), as every fd it sends. */
static reaper_account *rx_account;

static void discard_rx(int fd) {
        reaper_close(fd, rx_account);
}

static void peer_read(peer *p) {
        unsigned max_burst = cfg.max_requests_in_flight ? cfg.max_requests_in_flight : PEER_READ_BURST;

        /* Whatever it has read since the last burst is no longer in flight.
         * Asked once p holds half of what it may: a count can only throttle
         * at a limit, and throttled() asks again (p, then the uid's other
         * connections) before it does; asking at every read would cost a
         * client that waits for each reply a system call per request. */
        if (p->fds_unread >= cfg.max_fds_in_flight / 2)
                inflight_refresh(p);
        unsigned asked = 0; /* requests read this burst that wait for a reply */

        for (unsigned burst = 0; burst < max_burst && !p->closing && !p->hup_queued; burst++) {
                if (burst > 0 && mainloop_turn_spent()) /* the rest next turn: it stays ready */
                        return;
                ipcb_sock_rx rx;
                unsigned nfds;
                int *fds = rx.fds;
                ipcb_msg m;
                int n, k;

                if (p->q_head) { /* its socket is full: nothing more until it drains */
                        peer_update_events(p);
                        return;
                }
                if (throttled(p) || (notify_congested() && next_may_store(p))) {
                        throttle(p);
                        return;
                }
                rx_account = p->reaping;
                n = ipcb__sock_recv(p->fd, rx_buf, sizeof(rx_buf), MSG_DONTWAIT, discard_rx, &rx);
                if (n == -EAGAIN) {
                        p->one_by_one = asked <= 1;
                        return;
                }
                if (n == 0) {
                        peer_hangup(p);
                        return;
                }
                if (n == -EMSGSIZE) {
                        protocol_violation(p, "datagram larger than the protocol allows");
                        return;
                }
                if (n == -EBADMSG) {
                        protocol_violation(p, "empty datagram");
                        return;
                }
                if (n < 0) {
                        log_client_debug("client pid %d: recv: %s", (int)p->cred.pid, strerror(-n));
                        peer_hangup(p);
                        return;
                }
                if (rx.fds_lost) {
                        protocol_violation(p, "too many fds in one message");
                        return;
                }
                nfds = rx.nfds;
                k = ipcb__proto_decode(rx_buf, rx.len, nfds, &m);
                /* Only SHM_REGISTER carries an fd, which goes to its handler
                 * (and is closed after it, whatever it did); any other fd is
                 * unsolicited, or belongs to a malformed message. */
                if (k == 0 && m.hdr.op == IPCB_OP_SHM_REGISTER && nfds == 1) {
                        p->rx_fd = fds[0];
                        nfds = 0;
                }
                for (unsigned i = 0; i < nfds; i++)
                        reaper_close(fds[i], p->reaping);
                if (p->refuse < 0 && (k == 0 || k == -EOPNOTSUPP) && !(m.hdr.op & IPCB_OP_REPLY)) {
                        /* over its uid's connection quota: whatever it asks */
                        peer_reply_error(p, &m.hdr, p->refuse);
                        reaper_close(p->rx_fd, p->reaping);
                        p->rx_fd = -1;
                        peer_close(p);
                        return;
                }
                if (k == -EOPNOTSUPP && !(m.hdr.op & IPCB_OP_REPLY) && nfds == 0) {
                        peer_reply_error(p, &m.hdr, -EOPNOTSUPP);
                        if (closed_if_dropped(p))
                                return;
                        continue;
                }
                if (k < 0 || (m.hdr.op & IPCB_OP_REPLY)) {
                        protocol_violation(p, "malformed message");
                        return;
                }
                request_dispatch(p, &m);
                /* Whatever the handler did not keep came from the client. */
                reaper_close(p->rx_fd, p->reaping);
                p->rx_fd = -1;
                if (closed_if_dropped(p))
                        return;
                /* A client that waits for each reply has sent nothing more:
                 * asking would cost a system call that finds the socket
                 * empty.  Anything it did send wakes the next turn (the
                 * poll is level-triggered); every 16th request a second
                 * is read if there is one.  A connection stays so: a fast
                 * client on another CPU often has its next request there
                 * by the time the reply is sent, and going back to bursts
                 * on finding one kept 32 of them in one turn (1.0-1.5 ms
                 * of creates).  A CLOSE sent without waiting is usually
                 * followed by the client's next request: that is read now,
                 * not after another wait. */
                if (m.hdr.flags & IPCB_HF_NOREPLY)
                        continue;
                asked++;
                if (p->one_by_one && (++p->one_count & 15))
                        return;
        }
}

/* An event on p's socket (mainloop.c filters and completes it). */
static void on_conn(mainloop_watcher *w, uint32_t ev) {
        peer *p = w->data;

        if (p->closing || p->hup_queued) /* out of the wait set; nothing may come any more */
                return;
        if (ev & EPOLLERR) {
                peer_hangup(p);
                return;
        }
        if (ev & EPOLLOUT) {
                int k = queue_flush(p);
                if (k < 0) {
                        peer_hangup(p);
                        return;
                }
                peer_update_events(p);
                if (!p->q_head)
                        resume_reading(p);
        }
        if ((ev & EPOLLIN) && !p->q_head && !p->throttled)
                peer_read(p);
        else if ((ev & (EPOLLRDHUP | EPOLLHUP)) && !p->closing && !(ev & EPOLLIN))
                peer_hangup(p);
}

/* p's socket out of the wait set (and with its process, its pidfd). */
static void peer_unwatch(peer *p, bool process) {
        (void)mainloop_watch(&p->conn_w, p->fd, 0);
        if (process)
                (void)mainloop_watch(&p->pid_w, p->pidfd, 0);
}

static void peer_set_events(peer *p, uint32_t events) {
        if (p->closing || p->hup_queued)
                return;
        if (mainloop_watch(&p->conn_w, p->fd, events) < 0)
                peer_drop(p);
}

/* Read while nothing waits to be sent and p is not throttled; write while
 * replies are queued; always hear a hang-up. */
static void peer_update_events(peer *p) {
        uint32_t ev = EPOLLRDHUP;

        if (p->q_head)
                ev |= EPOLLOUT;
        else if (!p->throttled)
                ev |= EPOLLIN;
        peer_set_events(p, ev);
}

/* ---- the peer's process ---- */

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

static void on_process_exit(mainloop_watcher *w, uint32_t ev) {
        peer *p = w->data;
        (void)ev;

        if (p->closing)
                return;
        if (p->hup_queued) { /* it hung up first: a close, its release paced as any */
                peer_close(p);
                return;
        }
        log_client_debug("client pid %d exited; settling its undo and lock tokens", (int)p->cred.pid);
        /* It fires once: the pidfd stays open, so that it is not watched again. */
        (void)mainloop_watch(w, p->pidfd, 0);
        p->rel_live = true;
        if (!release_at_once(p)) {
                /* Over the next turns, as a close's; meanwhile neither this
                 * connection (its handles are being settled) nor any other
                 * of its uid is read. */
                release_queue(p);
                throttle(p);
                return;
        }
        release_now(p);
        p->rel_live = false;
}

int peer_watch_process(peer *p) {
        socklen_t len = sizeof(int);
        int fd = -1, k;

        if (p->pidfd >= 0)
                return 0;
        /* SO_PEERPIDFD (Linux 6.5) names the very process that connected;
         * pidfd_open on the SO_PEERCRED pid could race with pid reuse. */
        if (getsockopt(p->fd, SOL_SOCKET, SO_PEERPIDFD, &fd, &len) < 0) {
                fd = (int)syscall(SYS_pidfd_open, p->cred.pid, 0); /* always CLOEXEC */
                if (fd < 0)
                        return -errno;
        }
        k = mainloop_watch(&p->pid_w, fd, EPOLLIN);
        if (k < 0) {
                close(fd);
                return k;
        }
        p->pidfd = fd;
        return 0;
}

/* ---- life ---- */

static void peer_free(peer *p) {
        if (p->draining) /* its queue is a worker's (close_done): not read here */
                reaper_close_own(p->fd);
        else
                reaper_close_socket(p->fd, p->cred.uid); /* its queue may hold fds a client sent */
        if (p->pidfd >= 0)
                close(p->pidfd);
        reaper_account_release(p->reaping);
        cred_free(&p->cred);
        free(p);
}

static void free_graveyard(void) {
        while (graveyard) {
                peer *p = graveyard;
                graveyard = p->dead_next;
                peer_free(p);
        }
}

static void on_turn_end(void) {
        free_graveyard();
        nhup_checked = 0;
        inline_handles = 0;
        hup_closes = 0;
        rel_spent_ns = 0;
}

int peer_init(uv_loop_t *loop) {
        int k;

        peer_loop = loop;
        if ((k = uv_timer_init(loop, &throttle_timer)) < 0 || (k = uv_idle_init(loop, &hup_idle)) < 0)
                return k;
        mainloop_on_turn_end(on_turn_end);
        return 0;
}

/* ---- hang-ups ---- */

static void hup_unlink(peer *p) {
        if (p->hup_prev)
                p->hup_prev->hup_next = p->hup_next;
        else
                hup_head = p->hup_next;
        if (p->hup_next)
                p->hup_next->hup_prev = p->hup_prev;
        else
                hup_tail = p->hup_prev;
        p->hup_prev = p->hup_next = NULL;
        p->hup_queued = false;
        hangups_idle();
}

static void release_run(bool all);

static void on_hangups(uv_idle_t *h) {
        (void)h;
        release_run(false);
        for (; hup_head && hup_closes < HANGUPS_PER_TURN; hup_closes++)
                peer_close(hup_head); /* unlinks it */
}

/* The idle handle runs (so that the poll does not wait) while hang-ups or
 * releases wait.  Starting it running, or stopping it stopped, does nothing. */
static void hangups_idle(void) {
        if (hup_head || rel_head)
                uv_idle_start(&hup_idle, on_hangups);
        else
                uv_idle_stop(&hup_idle);
}

/* p counted in its uid's connection quota, and on the uid's list of such
 * connections (hangups_before_connect walks it, not every connection). */
static void conn_charged(peer *p) {
        void **head = quota_user_data(p->cred.uid, QUOTA_DATA_CONNS); /* there: just charged */
        peer *first = *head;

        p->conn_charged = true;
        p->conn_w.share = quota_loop_share(p->cred.uid);
        p->uid_prev = NULL;
        p->uid_next = first;
        if (first)
                first->uid_prev = p;
        *head = p;
}

static void conn_uncharge(peer *p) {
        if (!p->conn_charged)
                return;
        if (p->uid_prev)
                p->uid_prev->uid_next = p->uid_next;
        else
                *quota_user_data(p->cred.uid, QUOTA_DATA_CONNS) = p->uid_next;
        if (p->uid_next)
                p->uid_next->uid_prev = p->uid_prev;
        p->uid_next = p->uid_prev = NULL;
        p->conn_w.share = NULL;
        quota_uncharge(p->cred.uid, QUOTA_CONNECTIONS, 1); /* the record may go */
        p->conn_charged = false;
}

/* p's client hung up, or its socket failed (seen reading it, or by the
 * poll: never while a handler or a release runs).  Closed at once, as long as
 * this turn has closed fewer than HANGUPS_PER_TURN and none wait: then a
 * request read after a hang-up finds the client's handles gone, as it
 * would with the client's death seen first.  Past that, p waits, read no
 * more, and is closed in a later turn in the order they came, so that
 * thousands of clients dying at once do not hold the loop for everyone
 * else; its connection no longer counts against its uid's quota, so that
 * a client reconnecting at its quota is not refused. */
static void peer_hangup(peer *p) {
        if (p->closing || p->hup_queued)
                return;
        if (!hup_head && hup_closes < HANGUPS_PER_TURN) {
                hup_closes++;
                peer_close(p);
                return;
        }
        peer_drop(p);
}

/* p is to be closed, from the hang-up queue (on_hangups; peer_read closes
 * it as soon as its own request's handler returns) and never here: this is
 * for a reply or an event that cannot be sent or queued, whose sender may
 * be in the middle of a release of p's own handles (settling an undo
 * handle tells OWNER_DIED to every watcher, p too), which a close would
 * release again and free under it. */
static void peer_drop(peer *p) {
        if (p->closing || p->hup_queued)
                return;
        conn_uncharge(p);
        peer_unwatch(p, false);
        p->hup_queued = true;
        p->hup_prev = hup_tail;
        p->hup_next = NULL;
        if (hup_tail)
                hup_tail->hup_next = p;
        else
                hup_head = p;
        hup_tail = p;
        hangups_idle();
}

/* uid is at its connection quota: those of its connections whose client
 * has hung up but whose hang-up the loop has not reached are closed now,
 * and how many went is returned.  The poll does not keep the kernel's
 * order for a listening socket already ready (for another client's
 * connect): a client that closes its connections and connects again could
 * be refused.  One poll(2) over the uid's connections; those hung up with
 * nothing left to read are closed, and of those with requests still unread
 * one is read (up to a burst).  Once a turn per uid, for HUP_CHECK_UIDS
 * uids a turn at most: a uid that keeps connecting at its quota (64
 * accepts a turn) had the loop poll all its connections for each connect,
 * turns of 2-4 ms of CPU. */
static unsigned hangups_before_connect(uid_t uid) {
        enum { MAX = 1024 };
        static struct pollfd pfd[MAX];
        static peer *who[MAX];
        void **head = quota_user_data(uid, QUOTA_DATA_CONNS);
        unsigned n = 0, closed = 0;
        bool read_one = false;

        uid = quota_principal(uid); /* whose connections head lists */
        for (unsigned i = 0; i < nhup_checked; i++)
                if (hup_checked[i] == uid)
                        return 0;
        if (!head || nhup_checked == HUP_CHECK_UIDS)
                return 0;
        hup_checked[nhup_checked++] = uid;
        for (peer *q = *head; q && n < MAX; q = q->uid_next)
                if (!q->closing && !q->throttled && !q->q_head) {
                        pfd[n] = (struct pollfd){ .fd = q->fd, .events = POLLIN | POLLRDHUP };
                        who[n++] = q;
                }
        if (n == 0 || poll(pfd, n, 0) <= 0)
                return 0;
        for (unsigned i = 0; i < n; i++) {
                peer *q = who[i];
                char b;
                if (!(pfd[i].revents & (POLLRDHUP | POLLHUP)) || q->closing || q->hup_queued)
                        continue;
                /* POLLIN is set at the end too: is anything before it? */
                ssize_t k = recv(q->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
                if (k == 0 || (k < 0 && errno != EAGAIN))
                        peer_hangup(q);
                else if (k > 0 && !read_one) {
                        read_one = true;
                        peer_read(q); /* what it sent before, then its end */
                }
                closed += !q->conn_charged;
        }
        return closed;
}

/* A peer in more groups than the loop reads at accept: the list is read,
 * into memory of its own, on a worker (among its uid's runs), the
 * connection not read until then. */
typedef struct groups_op {
        peer_op op;
        int fd, err;
        size_t counted, len;
        gid_t *groups;
} groups_op;

static void groups_work(void *arg) {
        groups_op *g = arg;

        if (!(g->groups = malloc(g->len)))
                g->err = -ENOMEM;
        else
                g->err = cred_fetch_groups(g->fd, g->groups, &g->len);
        close(g->fd); /* a copy: the connection's own stays */
}

static void groups_done(void *arg) {
        groups_op *g = arg;
        peer *p = g->op.p;

        cred_groups_done(p && !p->closing ? &p->cred : NULL, g->counted, g->groups, g->len, g->err);
        peer_op_done(&g->op);
}

static void groups_start(peer *p, size_t len) {
        groups_op *g = calloc(1, sizeof(*g));
        int k = -ENOMEM;

        if (!g || (g->fd = fcntl(p->fd, F_DUPFD_CLOEXEC, 3)) < 0) {
                if (g)
                        k = -errno;
                free(g);
                cred_groups_done(&p->cred, len, NULL, 0, k);
                return;
        }
        g->counted = g->len = len;
        peer_op_start(p, &g->op);
        reaper_run(p->reaping, groups_work, groups_done, g);
}

int peer_new(int fd) {
        struct ucred uc;
        socklen_t len = sizeof(uc);
        peer *p;
        int k;

        /* A new socket may already hold datagrams with fds: closed off the loop. */
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0) {
                k = -errno;
                reaper_close_socket(fd, (uid_t)-1);
                return k;
        }
        p = calloc(1, sizeof(*p));
        if (!p || !(p->reaping = reaper_account_new(uc.uid, on_reaped, p))) {
                free(p);
                reaper_close_socket(fd, uc.uid);
                return -ENOMEM;
        }
        p->fd = fd;
        p->pidfd = -1;
        p->cred = (cred){ .pid = uc.pid, .uid = uc.uid, .gid = uc.gid };
        p->rx_fd = -1;
        /* Over quota: kept only to answer its first request with -EUSERS
         * (so that the client sees why), and not many of those at once. */
        k = quota_charge(uc.uid, QUOTA_CONNECTIONS, 1);
        if (k < 0 && hangups_before_connect(uc.uid) > 0)
                k = quota_charge(uc.uid, QUOTA_CONNECTIONS, 1);
        size_t groups_len = 0;
        bool groups_later = k >= 0 && cred_read_groups(fd, &p->cred, &groups_len) == -ERANGE;
        p->conn_w = (mainloop_watcher){ .cb = on_conn, .data = p };
        p->pid_w = (mainloop_watcher){ .cb = on_process_exit, .data = p };
        if ((k < 0 && nrefusing >= REFUSING_MAX) || mainloop_watch(&p->conn_w, fd, EPOLLIN | EPOLLRDHUP) < 0) {
                if (k >= 0) {
                        quota_uncharge(uc.uid, QUOTA_CONNECTIONS, 1);
                        k = -ENOMEM;
                }
                reaper_account_release(p->reaping);
                if (groups_later) /* counted, never read */
                        cred_groups_done(NULL, groups_len, NULL, 0, 0);
                cred_free(&p->cred);
                free(p);
                reaper_close_socket(fd, uc.uid);
                return k;
        }
        if (k < 0) {
                p->refuse = k;
                nrefusing++;
        } else
                conn_charged(p);
        if (groups_later)
                groups_start(p, groups_len);
        p->next = peers;
        if (peers)
                peers->prev = p;
        peers = p;
        npeers++;
        log_client_debug("client pid %d uid %u gid %u connected", (int)uc.pid, (unsigned)uc.uid,
                  (unsigned)uc.gid);
        return 0;
}

/* The connection leaves the wait set; it is freed when the turn ends. */
static void peer_finish_close(peer *p) {
        if (p->lingering)
                nlingering--;
        p->lingering = false;
        quota_uncharge(p->cred.uid, QUOTA_INFLIGHT, p->fds_unread);
        p->fds_unread = 0;
        peer_unwatch(p, true);
        p->dead_next = graveyard;
        graveyard = p;
}

/* The end of a close, once p's handles are gone. */
static void close_done(peer *p) {
        for (uint32_t i = 0; i < p->pages_top; i++) /* the first: the others went with their handles */
                free(p->pages[i]);
        free(p->pages);
        p->pages = NULL;
        p->open_pages = NULL;
        p->npages = p->pages_top = p->page_hole = 0;
        free(p->held); /* empty: every record went with its last handle */
        p->held = NULL;
        p->held_mask = p->nheld = 0;
        inflight_refresh(p);
        if (p->fds_unread && !shutting_down) {
                /* fds we sent still sit in its socket, counted against our
                 * uid until it reads them or closes: keep the socket (and the
                 * charge, which throttles the uid's other connections) until
                 * then, checked every tick.  shutdown tells the client. */
                shutdown(p->fd, SHUT_RDWR);
                /* What it left in the queue is read, and its fds closed:
                 * it may be the client's own end (unread_check), which
                 * then goes, and its unread fds with it. */
                int copy = fcntl(p->fd, F_DUPFD_CLOEXEC, 3);
                if (copy >= 0) {
                        reaper_drain_socket(copy, p->cred.uid);
                        p->draining = true;
                }
                throttle(p);
                p->lingering = true;
                nlingering++;
                return;
        }
        peer_finish_close(p);
}

/* Release closed connections' handles for what is left of this turn's
 * slice (all: every one, now), REL_QUANTUM steps of each in turn: a uid
 * whose small client died is not kept waiting, unread, behind another
 * uid's thousands of handles. */
#define REL_QUANTUM 4

static void release_run(bool all) {
        uint64_t start, now;

        if (!rel_head)
                return;
        start = uv_hrtime();
        while (rel_head && (all || rel_spent_ns < RELEASE_SLICE_NS)) {
                peer *p = rel_head;
                bool more = true;
                for (unsigned k = 0; k < REL_QUANTUM && more; k++)
                        more = release_step(p);
                now = uv_hrtime();
                rel_spent_ns += now - start;
                start = now;
                rel_head = p->rel_next;
                p->rel_next = NULL;
                if (!rel_head)
                        rel_tail = NULL;
                if (more) { /* to the back of the line */
                        rel_append(p);
                        continue;
                }
                void **last = quota_user_data(p->cred.uid, QUOTA_DATA_RELEASING);
                if (p->rel_more) /* the uid's next takes its place */
                        rel_append(p->rel_more);
                else if (last && *last == p)
                        *last = NULL;
                p->rel_more = NULL;
                quota_uncharge(p->cred.uid, QUOTA_RELEASING, 1);
                if (p->rel_live) { /* its process exited; the connection lives on */
                        p->rel_live = false;
                        log_client_debug("client pid %d: its tokens are settled", (int)p->cred.pid);
                        on_reaped(p); /* read again, unless something else holds it */
                        continue;
                }
                log_client_debug("client pid %d: its handles are released", (int)p->cred.pid);
                close_done(p);
        }
        hangups_idle();
}

void peer_close(peer *p) {
        if (p->closing)
                return;
        if (p->hup_queued)
                hup_unlink(p);
        p->closing = true;
        if (p->off_loop) { /* its request is finished without it */
                p->off_loop->p = NULL;
                p->off_loop = NULL;
        }
        turn_now.closes++;
        log_client_debug("client pid %d disconnected (%u handles to release)", (int)p->cred.pid,
                  p->nhandles);
        /* Release in reverse order of acquisition: watches, replies, then
         * handles. */
        watch_peer_closed(p);
        queue_free(p);
        if (p->prev)
                p->prev->next = p->next;
        else
                peers = p->next;
        if (p->next)
                p->next->prev = p->prev;
        npeers--;
        if (p->conn_charged)
                conn_uncharge(p);
        else if (p->refuse < 0)
                nrefusing--;
        peer_unwatch(p, true);
        unthrottle(p);
        if (p->rel_live) { /* settling for its exited process: releases follow */
                p->rel_live = false;
                return;
        }
        if (!release_at_once(p)) {
                release_queue(p);
                return;
        }
        release_now(p);
        close_done(p);
}

void peer_release_all(void) {
        release_run(true);
}

void peer_close_all(void) {
        shutting_down = true;
        while (peers)
                peer_close(peers);
        peer_release_all();
        while (throttled_list) { /* lingering connections */
                peer *p = throttled_list;
                unthrottle(p);
                peer_finish_close(p);
        }
        uv_close((uv_handle_t *)&throttle_timer, NULL);
        uv_close((uv_handle_t *)&hup_idle, NULL);
}
