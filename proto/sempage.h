/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sempage.h: the layout of the shared pages behind semaphores and segment
 * locks, and the pure functions that pack and unpack their atomic words.
 * Clients and the daemon map the same page; docs/semaphores.md explains the
 * protocol and why a process killed at any instruction loses or duplicates
 * no token.  Nothing here does I/O.
 *
 * Everything on these pages is written by untrusted clients: every value
 * read from a page is bounded by masks before use, and slot indices are
 * checked against IPCB_SEM_SLOTS. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define IPCB_PAGE_SIZE      4096u
#define IPCB_SEM_MAGIC      0x53424349u /* "ICBS" */
#define IPCB_LOCK_MAGIC     0x4c424349u /* "ICBL" */
#define IPCB_SEM_VALUE_MAX 65535 /* largest count and maximum (as in ipcbroker.h) */
#define IPCB_SEM_SLOTS 504u /* undo handles per semaphore (IPCB_SEM_UNDO_MAX) */

/* The state word W: count (16 bits) | last_slot (12) | last_seq (31).
 * last_slot is slot index + 1 of the last *undo* operation that changed the
 * count, 0 for none; (last_slot, last_seq) names that operation. */
#define W_COUNT_BITS 16
#define W_SLOT_SHIFT 16
#define W_SLOT_MASK  0xfffu
#define W_SEQ_SHIFT  28
#define SEQ_MASK     0x7fffffffu

/* A slot word: held (16) | target (16) | pending (1) | seq (31).  held is
 * how many tokens the slot's handle holds; while pending, the operation
 * `seq` wants held to become target. */
#define S_TARGET_SHIFT 16
#define S_PENDING_BIT  (1ull << 32)
#define S_SEQ_SHIFT    33

typedef struct ipcb_sem_page {
        uint32_t magic;
        uint32_t version;
        uint32_t max;    /* informational: clients use the max the broker sent */
        uint32_t nslots; /* informational */
        _Atomic uint64_t word;     /* W */
        _Atomic uint32_t wake_seq; /* futex word: bumped by every release that may wake */
        _Atomic uint32_t waiters;  /* sleepers, so that an uncontended release makes no syscall */
        /* Bumped by a broker that restored this page after a restart: undo
         * handles compare it with the value they saw at open (it shares W's
         * cache line, so the check costs no extra miss) and re-open first,
         * since their slot was settled by the new broker (docs/systemd.md). */
        _Atomic uint32_t epoch;
        /* Registered pollers (SEM_POLL), written by the broker only: a
         * release that makes tokens available signals the semaphore's
         * notify eventfd when it reads > 0 (docs/semaphores.md, "Polling a
         * semaphore").  Zero in pages made before it (reserved then). */
        _Atomic uint32_t pollers;
        uint8_t reserved[24];
        _Atomic uint64_t slot[IPCB_SEM_SLOTS];
} ipcb_sem_page;

_Static_assert(sizeof(ipcb_sem_page) == IPCB_PAGE_SIZE, "semaphore page must be one page");

typedef struct ipcb_w {
        uint32_t count, slot, seq;
} ipcb_w;

typedef struct ipcb_slotw {
        uint32_t held, target, seq;
        bool pending;
} ipcb_slotw;

static inline ipcb_w ipcb_w_unpack(uint64_t v) {
        return (ipcb_w){
                .count = (uint32_t)(v & 0xffffu),
                .slot = (uint32_t)(v >> W_SLOT_SHIFT) & W_SLOT_MASK,
                .seq = (uint32_t)(v >> W_SEQ_SHIFT) & SEQ_MASK,
        };
}

static inline uint64_t ipcb_w_pack(ipcb_w w) {
        return (uint64_t)(w.count & 0xffffu) | (uint64_t)(w.slot & W_SLOT_MASK) << W_SLOT_SHIFT |
               (uint64_t)(w.seq & SEQ_MASK) << W_SEQ_SHIFT;
}

static inline ipcb_slotw ipcb_slot_unpack(uint64_t v) {
        return (ipcb_slotw){
                .held = (uint32_t)(v & 0xffffu),
                .target = (uint32_t)(v >> S_TARGET_SHIFT) & 0xffffu,
                .pending = (v & S_PENDING_BIT) != 0,
                .seq = (uint32_t)(v >> S_SEQ_SHIFT) & SEQ_MASK,
        };
}

static inline uint64_t ipcb_slot_pack(ipcb_slotw s) {
        return (uint64_t)(s.held & 0xffffu) | (uint64_t)(s.target & 0xffffu) << S_TARGET_SHIFT |
               (s.pending ? S_PENDING_BIT : 0) | (uint64_t)(s.seq & SEQ_MASK) << S_SEQ_SHIFT;
}

/* The helping rule.  W names (k, t) as the last undo operation; if slot k
 * still shows (t) pending, that operation has happened (its CAS on W is what
 * W records) but was not committed to the slot: commit it.  Exactly one of
 * all the racing helpers' CASes can win.  Everyone who replaces W.last must
 * call this first; that is the invariant the recovery relies on.  Returns
 * false only if slot k holds a value no correct client writes (the page was
 * scribbled on). */
static inline bool ipcb_sem_help(ipcb_sem_page *pg, ipcb_w w) {
        if (w.slot == 0 || w.slot > IPCB_SEM_SLOTS)
                return w.slot == 0;
        _Atomic uint64_t *sp = &pg->slot[w.slot - 1];
        uint64_t sv = atomic_load(sp);
        ipcb_slotw s = ipcb_slot_unpack(sv);
        if (!s.pending || s.seq != w.seq)
                return true;
        ipcb_slotw done = { .held = s.target, .target = 0, .pending = false, .seq = s.seq };
        atomic_compare_exchange_strong(sp, &sv, ipcb_slot_pack(done));
        return true;
}

/* Segment lock page.  The lock word is a 32-bit futex word.  0: free.
 * Otherwise the holder's token (bits 0..29, given by the broker per
 * read-write handle), WAITERS when someone may sleep on it, OWNER_DIED when
 * the last holder's handle went away while holding it (the next locker is
 * told and clears it).
 *
 * seq is a seqlock sequence for readers, written only by the holder: odd
 * from just after the lock is taken until just before it is released, so a
 * holder that dies in between leaves it odd, and the next locker (told
 * OWNER_DIED) keeps it odd until its own unlock.  Lock makes it
 * (seq + 1) | 1, unlock (seq | 1) + 1: whatever the page held before, both
 * change it and give it the right parity.  The broker adds 2 when it marks
 * a dead holder's lock (parity kept).  Read-only holders map the page
 * read-only and read seq only.  The field was reserved (zero) in pages made
 * before it, which reads as "not being written". */
#define IPCB_LOCK_OWNER_MASK 0x3fffffffu
#define IPCB_LOCK_WAITERS    0x40000000u
#define IPCB_LOCK_OWNER_DIED 0x80000000u

typedef struct ipcb_lock_page {
        uint32_t magic;
        uint32_t version;
        _Atomic uint32_t word;
        _Atomic uint32_t seq;
        /* Bumped by a broker that restored this page after a restart: a
         * read-write handle compares it with the value it saw when its
         * token was given or reclaimed (it shares the word's cache line)
         * and, when it changed, makes a round trip that reconnects and
         * reclaims before it locks, so that the new broker knows the
         * holder (docs/systemd.md).  Any read-write holder can write it: a
         * change proves nothing and costs that round trip only.  Reserved
         * (zero) in pages made before it; older clients ignore it. */
        _Atomic uint32_t epoch;
        /* Registered pollers of the lock (LOCK_POLL), written by the
         * broker only: an unlock that finds it non-zero signals the
         * segment's notify eventfd (docs/semaphores.md, "Polling a lock").
         * Reserved (zero) in pages made before it. */
        _Atomic uint32_t pollers;
        uint8_t reserved[IPCB_PAGE_SIZE - 24];
} ipcb_lock_page;

_Static_assert(sizeof(ipcb_lock_page) == IPCB_PAGE_SIZE, "lock page must be one page");

static inline uint32_t ipcb_lock_seq_locked(uint32_t seq) {
        return (seq + 1) | 1;
}

static inline uint32_t ipcb_lock_seq_unlocked(uint32_t seq) {
        return (seq | 1) + 1;
}
