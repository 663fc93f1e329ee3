/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* store.c: the systemd fd store (see store.h).
 *
 * The catalog is one memfd, stored once: the manager keeps the same open
 * file description, so records rewritten in place later are what the next
 * broker reads.  Each record is written with one pwrite and carries its own
 * CRC, so a broker killed in the middle of a write loses at most that
 * object.  Object fds are stored as "ipcb-o-<slot>" (lock pages
 * "ipcb-l-<slot>"); a name is removed from the store (FDSTOREREMOVE) before
 * its slot is reused.  Nothing read back is trusted: every record and every
 * fd is checked against what it claims before it becomes an object.
 *
 * What a restart must not hand to the wrong client (an undo slot with its
 * tokens, a lock token) is bound to a secret the holder was given: undo slot
 * nonces are recorded with their holder's uid in a second memfd, the undo
 * table ("ipcb-undo", one block per catalog record), which only the broker
 * and the manager hold; lock token nonces are a keyed hash of the object's
 * salt, the token and the uid, under a key kept in the catalog header.
 *
 * Slots are reused, so a record's slot says nothing of when its object was
 * made: the order table ("ipcb-order", 8 bytes a record) keeps each
 * object's place in creation order, and a restart makes the objects again
 * in that order (LIST lists by id: creation order survives the restart). */
#include "store.h"

#include "access.h"
#include "log.h"
#include "notify.h"
#include "os.h"
#include "proto.h"
#include "lock.h"
#include "quota.h"
#include "registry.h"
#include "sem.h"
#include "siphash.h"

#include "sempage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define CAT_NAME "ipcb-catalog"
#define UNDO_NAME "ipcb-undo"
#define CAT_MAGIC "IPCBCAT1"
#define CAT_VERSION 1u
#define CAT_HDR_SIZE 64u
#define REC_MAGIC 0x52424349u /* "ICBR" */
#define COLLECT_MAX (1u << 21) /* fds passed back: 1M objects with lock pages */

typedef struct cat_hdr {
        char magic[8];
        uint32_t version;
        uint32_t rec_size;
        uint32_t nrecs;
        uint32_t crc; /* of the bytes before it */
        /* The MAC key (store_mac); zero in a catalog written before it
         * existed, then a new one is made. */
        uint8_t key[16];
        uint32_t key_crc;
        uint8_t pad[CAT_HDR_SIZE - 44];
} cat_hdr;

typedef struct cat_rec {
        uint32_t magic; /* REC_MAGIC, 0: free */
        uint32_t crc;   /* of everything after this field */
        uint8_t kind;
        uint8_t has_lock;
        uint16_t name_len;
        uint32_t uid, gid, mode, flags, seals;
        uint64_t size;
        uint32_t sem_max;
        uint32_t lock_next_token;
        uint64_t salt;   /* object.h; 0 in records written before it existed */
        uint8_t rdonly;  /* registered from an O_RDONLY description */
        /* The uid the object is charged to (its creator, whoever owns it
         * now: object.h), if has_creator; records written before it
         * existed have 0 there (reserved), and are charged to uid. */
        uint8_t has_creator;
        uint8_t reserved[2];
        uint32_t creator;
        char name[IPCB_NAME_MAX + 1];
} cat_rec;

_Static_assert(sizeof(cat_hdr) == CAT_HDR_SIZE, "catalog header size");
_Static_assert(offsetof(cat_rec, creator) == 60 && offsetof(cat_rec, name) == 64,
               "catalog record layout (records outlive the broker that wrote them)");

/* One undo table entry: slot k of the semaphore in catalog record i is at
 * UNDO_BLOCK * i + 16 * (k - 1).  check ties it to the object (its salt)
 * and the slot, so that a stale entry is never taken for a live one. */
typedef struct undo_ent {
        uint64_t nonce; /* 0: none */
        uint32_t uid;
        uint32_t check;
} undo_ent;

#define UNDO_BLOCK ((off_t)sizeof(undo_ent) * IPCB_SEM_SLOTS)

/* The owe table: what the undo handle of slot k of the semaphore in
 * catalog record i owes (SEM_OWE), a u64 at OWE_BLOCK * i + 8 * (k - 1).
 * Counted only where the undo table vouches for the slot's holder. */
#define OWE_NAME "ipcb-owe"
#define OWE_BLOCK ((off_t)sizeof(uint64_t) * IPCB_SEM_SLOTS)

/* The order table: record i's object's creation sequence number, a u64 at
 * ORDER_BLOCK * i: order_base + its id, where order_base is above every
 * number restored (0 in a store made before the table: restored in slot
 * order, ahead of the rest). */
#define ORDER_NAME "ipcb-order"
#define ORDER_BLOCK ((off_t)sizeof(uint64_t))

typedef struct collected {
        int fd;
        unsigned seq; /* order passed: of equal names the first is taken */
        char *name;
} collected;

static collected *coll;
static unsigned ncoll, coll_cap;
static bool coll_sorted; /* by (name, seq): take() is a binary search */

static bool enabled, frozen;
static int cat_fd = -1, undo_fd = -1, owe_fd = -1, order_fd = -1;
static uint64_t order_base;
static uint8_t mac_key[16];
static uint64_t nonce_ctr;
static bool key_ready;
static uint32_t cat_nrecs;
static uint32_t *free_stack, nfree;
static unsigned restored;
static uv_timer_t grace_timer;
static bool grace_active;

/* ---- CRC-32 (IEEE) ---- */

static uint32_t crc_table[256];

static void crc_init(void) {
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;
                for (int k = 0; k < 8; k++)
                        c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
                crc_table[i] = c;
        }
}

static uint32_t crc32_buf(const void *buf, size_t len) {
        const uint8_t *p = buf;
        uint32_t c = 0xffffffffu;
        for (size_t i = 0; i < len; i++)
                c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
        return c ^ 0xffffffffu;
}

static uint32_t rec_crc(const cat_rec *r) {
        return crc32_buf((const uint8_t *)r + 8, sizeof(*r) - 8);
}

static uint32_t hdr_crc(const cat_hdr *h) {
        return crc32_buf(h, offsetof(cat_hdr, crc));
}

/* ---- the MAC: SipHash-2-4 of three words ---- */

static void key_make(void) {
        /* getrandom cannot fail for 16 bytes once the kernel's pool is ready;
         * should it, the time and pid still make a key nobody reads. */
        if (getrandom(mac_key, sizeof(mac_key), 0) != (ssize_t)sizeof(mac_key)) {
                struct timespec ts;
                uint64_t t[2];
                clock_gettime(CLOCK_REALTIME, &ts);
                t[0] = (uint64_t)ts.tv_nsec << 32 ^ (uint64_t)ts.tv_sec;
                t[1] = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull;
                memcpy(mac_key, t, sizeof(mac_key));
        }
        key_ready = true;
}

uint64_t store_mac(uint64_t a, uint64_t b, uint64_t c) {
        uint64_t m[3] = { a, b, c };

        if (!key_ready)
                key_make();
        return siphash24(m, sizeof(m), mac_key);
}

uint64_t store_nonce(uint64_t a, uint64_t b) {
        uint64_t v;

        if (!key_ready)
                key_make();
        /* Inputs that never repeat under one key: the counter starts at a
         * random value in every run (a restarted broker keeps the key). */
        if (nonce_ctr == 0 && getrandom(&nonce_ctr, sizeof(nonce_ctr), 0) != sizeof(nonce_ctr))
                nonce_ctr = store_mac(a, b, (uint64_t)getpid());
        v = store_mac(a, b, nonce_ctr++);
        return v ? v : 1;
}

static uint32_t undo_check(const object *o, uint32_t slot, uint64_t nonce, uint32_t uid) {
        return (uint32_t)store_mac(o->salt, 0x756e646f00000000ull | slot, nonce ^ (uint64_t)uid << 32);
}

/* ---- talking to the manager ---- */

static void fdname(char *buf, size_t cap, char what, uint32_t slot) {
        snprintf(buf, cap, "ipcb-%c-%u", what, (unsigned)slot);
}

/* Never blocks; what the manager cannot take yet waits in notify.c. */
static void notify_store(int fd, const char *name) {
        if (enabled)
                notify_fdstore(fd, name);
}

static void notify_remove(const char *name) {
        if (enabled)
                notify_fdstore_remove(name);
}

/* ---- the catalog ---- */

static uint32_t key_crc(const uint8_t key[16]) {
        return crc32_buf(key, 16);
}

static int cat_write_hdr(void) {
        cat_hdr h = { .magic = CAT_MAGIC, .version = CAT_VERSION, .rec_size = sizeof(cat_rec),
                      .nrecs = cat_nrecs };

        if (!key_ready)
                key_make();
        h.crc = hdr_crc(&h);
        memcpy(h.key, mac_key, sizeof(h.key));
        h.key_crc = key_crc(mac_key);
        return pwrite(cat_fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h) ? 0 : -EIO;
}

/* A table of one block per catalog record (the undo, owe and order
 * tables): made (and stored) with the catalog, sized with it.  -1 if it
 * cannot be; loss: what a restart then loses. */
static int table_create(const char *name, off_t block, const char *loss) {
        int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

        if (fd < 0 || ftruncate(fd, block * cat_nrecs) < 0) {
                log_warn("fd store: cannot make the table %s: %m; %s", name, loss);
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        (void)fchmod(fd, 0600);
        notify_store(fd, name);
        return fd;
}

#define UNDO_LOSS "undo slots held at a restart will not be reclaimable"
#define OWE_LOSS "what undo slots owe is forgotten at a restart"
#define ORDER_LOSS "objects come back in slot order after a restart, not creation order"

static void tables_create(void) {
        undo_fd = table_create(UNDO_NAME, UNDO_BLOCK, UNDO_LOSS);
        owe_fd = table_create(OWE_NAME, OWE_BLOCK, OWE_LOSS);
        order_fd = table_create(ORDER_NAME, ORDER_BLOCK, ORDER_LOSS);
}

static void tables_close(void) {
        int *fds[] = { &undo_fd, &owe_fd, &order_fd };

        for (unsigned i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
                if (*fds[i] >= 0) {
                        close(*fds[i]);
                        *fds[i] = -1;
                }
}

/* Free catalog record i's blocks in the tables (sparse memfds). */
static void tables_punch(uint32_t i) {
        if (undo_fd >= 0)
                (void)fallocate(undo_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, UNDO_BLOCK * i,
                                UNDO_BLOCK);
        if (owe_fd >= 0)
                (void)fallocate(owe_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, OWE_BLOCK * i,
                                OWE_BLOCK);
}

static off_t rec_off(uint32_t i) {
        return (off_t)CAT_HDR_SIZE + (off_t)i * (off_t)sizeof(cat_rec);
}

static void cat_clear(uint32_t i) {
        uint32_t zero[2] = { 0, 0 };
        if (pwrite(cat_fd, zero, sizeof(zero), rec_off(i)) != (ssize_t)sizeof(zero))
                log_warn("fd store: cannot clear catalog record %u: %m", (unsigned)i);
}

/* Double the catalog when every record is taken. */
static int cat_grow(void) {
        uint32_t n = cat_nrecs ? cat_nrecs * 2 : 64;
        uint32_t *fs = realloc(free_stack, n * sizeof(*fs));

        if (!fs)
                return -ENOMEM;
        free_stack = fs;
        if (ftruncate(cat_fd, rec_off(n)) < 0)
                return -errno;
        /* Sparse: only the blocks of semaphores with undo handles take memory. */
        if ((undo_fd >= 0 && ftruncate(undo_fd, UNDO_BLOCK * n) < 0) ||
            (owe_fd >= 0 && ftruncate(owe_fd, OWE_BLOCK * n) < 0) ||
            (order_fd >= 0 && ftruncate(order_fd, ORDER_BLOCK * n) < 0))
                log_warn("fd store: cannot grow the undo, owe and order tables: %m");
        for (uint32_t i = n; i > cat_nrecs; i--)
                free_stack[nfree++] = i - 1;
        cat_nrecs = n;
        return cat_write_hdr();
}

static int cat_create(void) {
        int fd = memfd_create("ipcbroker-catalog", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        if (fd < 0)
                return -errno;
        (void)fchmod(fd, 0600);
        cat_fd = fd;
        cat_nrecs = 0;
        nfree = 0;
        int k = cat_grow();
        if (k < 0)
                return k;
        notify_store(cat_fd, CAT_NAME);
        tables_create();
        return 0;
}

static void rec_fill(const object *o, cat_rec *r) {
        memset(r, 0, sizeof(*r));
        r->magic = REC_MAGIC;
        r->kind = o->kind;
        r->has_lock = o->lock_fd >= 0;
        r->name_len = o->name_len;
        r->uid = (uint32_t)o->uid;
        r->gid = (uint32_t)o->gid;
        r->mode = o->mode;
        r->flags = o->flags & (IPCB_WF_PERSISTENT | IPCB_WF_GROWABLE);
        r->seals = o->seals;
        r->size = o->size;
        r->sem_max = o->sem ? o->sem->max : 0;
        r->lock_next_token = o->lock_next_token;
        r->salt = o->salt;
        r->rdonly = o->rdonly_source;
        /* Stored before access_charged at a create, when the creator is
         * the owner. */
        r->has_creator = 1;
        r->creator = (uint32_t)(o->quota_charged ? o->quota_uid : o->uid);
        memcpy(r->name, o->name, o->name_len);
        r->crc = rec_crc(r);
}

static void cat_put(const object *o) {
        cat_rec r;

        rec_fill(o, &r);
        if (pwrite(cat_fd, &r, sizeof(r), rec_off(o->store_slot - 1)) != (ssize_t)sizeof(r))
                log_warn("fd store: cannot write the record of '%s': %m", o->name);
}

/* ---- registry hooks ---- */

void store_object_added(object *o) {
        char name[32];

        if (!o->salt)
                o->salt = store_nonce(o->id, 0x73616c74); /* also without a store */
        if (cat_fd < 0 || o->store_slot)
                return;
        if (nfree == 0 && cat_grow() < 0) {
                log_warn("fd store: catalog full; '%s' will not survive a restart", o->name);
                return;
        }
        o->store_slot = free_stack[--nfree] + 1;
        /* Before the record: a record is never read without its place. */
        uint64_t seq = order_base + o->id;
        if (order_fd >= 0 &&
            pwrite(order_fd, &seq, sizeof(seq), ORDER_BLOCK * (o->store_slot - 1)) != (ssize_t)sizeof(seq))
                log_warn("fd store: cannot write the place of '%s' in creation order: %m", o->name);
        cat_put(o);
        fdname(name, sizeof(name), 'o', o->store_slot);
        notify_store(o->fd_rw, name);
}

void store_object_changed(object *o) {
        char name[32];

        if (cat_fd < 0 || !o->store_slot)
                return;
        /* The lock page is created after the object: store it once. */
        if (o->lock_fd >= 0) {
                cat_rec old;
                if (pread(cat_fd, &old, sizeof(old), rec_off(o->store_slot - 1)) == (ssize_t)sizeof(old) &&
                    !old.has_lock) {
                        fdname(name, sizeof(name), 'l', o->store_slot);
                        notify_store(o->lock_fd, name);
                }
        }
        cat_put(o);
}

void store_object_removed(object *o) {
        char name[32];

        if (cat_fd < 0 || !o->store_slot || frozen)
                return;
        cat_clear(o->store_slot - 1);
        if (o->kind == IPCB_KIND_SEM)
                tables_punch(o->store_slot - 1);
        fdname(name, sizeof(name), 'o', o->store_slot);
        notify_remove(name);
        if (o->lock_fd >= 0) {
                fdname(name, sizeof(name), 'l', o->store_slot);
                notify_remove(name);
        }
        free_stack[nfree++] = o->store_slot - 1;
        o->store_slot = 0;
}

static void undo_put(const object *o, uint32_t slot, const undo_ent *e) {
        off_t off = UNDO_BLOCK * (o->store_slot - 1) + (off_t)sizeof(*e) * (slot - 1);

        if (pwrite(undo_fd, e, sizeof(*e), off) != (ssize_t)sizeof(*e))
                log_warn("fd store: cannot record undo slot %u of '%s': %m", (unsigned)slot, o->name);
}

void store_undo_bind(const object *o, uint32_t slot, uid_t uid, uint64_t nonce) {
        undo_ent e = { .nonce = nonce, .uid = (uint32_t)uid,
                       .check = undo_check(o, slot, nonce, (uint32_t)uid) };

        if (undo_fd >= 0 && o->store_slot && slot >= 1 && slot <= IPCB_SEM_SLOTS)
                undo_put(o, slot, &e);
        store_undo_owed(o, slot, 0);
}

void store_undo_unbind(const object *o, uint32_t slot) {
        undo_ent e = { 0 };

        if (undo_fd >= 0 && o->store_slot && !frozen && slot >= 1 && slot <= IPCB_SEM_SLOTS)
                undo_put(o, slot, &e);
        if (!frozen)
                store_undo_owed(o, slot, 0);
}

void store_undo_owed(const object *o, uint32_t slot, uint64_t owed) {
        off_t off = OWE_BLOCK * (o->store_slot - 1) + (off_t)sizeof(owed) * (slot - 1);

        if (owe_fd < 0 || !o->store_slot || slot < 1 || slot > IPCB_SEM_SLOTS)
                return;
        if (pwrite(owe_fd, &owed, sizeof(owed), off) != (ssize_t)sizeof(owed))
                log_warn("fd store: cannot record what undo slot %u of '%s' owes: %m", (unsigned)slot,
                         o->name);
}

uint64_t store_lock_nonce(const object *o, uint32_t token, uid_t uid) {
        return store_mac(o->salt, 0x6c6f636b00000000ull | token, (uint64_t)uid);
}

void store_freeze(void) {
        frozen = enabled;
}

bool store_frozen(void) {
        return frozen;
}

unsigned store_restored_count(void) {
        return restored;
}

/* ---- collecting what the manager passed ---- */

bool store_owns_name(const char *name) {
        return strcmp(name, CAT_NAME) == 0 || strcmp(name, UNDO_NAME) == 0 ||
               strcmp(name, OWE_NAME) == 0 || strcmp(name, ORDER_NAME) == 0 ||
               strncmp(name, "ipcb-o-", 7) == 0 ||
               strncmp(name, "ipcb-l-", 7) == 0;
}

void store_collect(int fd, const char *name) {
        if (ncoll == coll_cap) {
                unsigned cap = coll_cap ? coll_cap * 2 : 64;
                collected *c = cap <= COLLECT_MAX ? realloc(coll, cap * sizeof(*c)) : NULL;
                if (!c) {
                        log_err("fd store: cannot keep passed fd %s; dropping it", name);
                        close(fd);
                        return;
                }
                coll = c;
                coll_cap = cap;
        }
        coll[ncoll].fd = fd;
        coll[ncoll].seq = ncoll;
        coll_sorted = false;
        coll[ncoll].name = strdup(name);
        if (!coll[ncoll].name) {
                close(fd);
                return;
        }
        ncoll++;
}

static int coll_cmp(const void *a, const void *b) {
        const collected *x = a, *y = b;
        int c = strcmp(x->name, y->name);
        return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

/* Take the collected fd called name (-1 if none).  Restoring takes one or
 * two per object: sorted once, each take is O(log n), not a scan. */
static int take(const char *name) {
        unsigned lo = 0, hi = ncoll;

        if (!coll_sorted) {
                if (ncoll)
                        qsort(coll, ncoll, sizeof(*coll), coll_cmp);
                coll_sorted = true;
        }
        while (lo < hi) { /* the first entry not below name */
                unsigned mid = lo + (hi - lo) / 2;
                if (strcmp(coll[mid].name, name) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        for (; lo < ncoll && strcmp(coll[lo].name, name) == 0; lo++)
                if (coll[lo].fd >= 0) {
                        int fd = coll[lo].fd;
                        coll[lo].fd = -1;
                        return fd;
                }
        return -1;
}

/* Drop a stored fd we will not use: close it and take it out of the store. */
static void drop_fd(int fd, const char *name) {
        if (fd >= 0)
                close(fd);
        notify_remove(name);
}

/* 0 if fd is a sealable (memfd) regular file open read-write (or, if
 * rdonly_ok, read-only), with at least `seals`, and of a size that fits;
 * else why not (for the log). */
static const char *check_memfd(int fd, unsigned seals, uint64_t size, bool exact, bool rdonly_ok,
                               struct stat *st) {
        int s, fl;

        if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode))
                return "not a regular file";
        if ((s = fcntl(fd, F_GET_SEALS)) < 0)
                return "not a memfd (no seals)";
        if (((unsigned)s & seals) != seals)
                return "seals missing";
        if ((fl = fcntl(fd, F_GETFL)) < 0 ||
            ((fl & O_ACCMODE) != O_RDWR && !(rdonly_ok && (fl & O_ACCMODE) == O_RDONLY)))
                return "not open read-write";
        if (exact ? (uint64_t)st->st_size != size : (uint64_t)st->st_size < size)
                return "wrong size";
        return NULL;
}

/* The page of a stored semaphore or lock: checked, mapped.  Its content is
 * not checked here: anyone who may write the object writes it, and the
 * catalog, not the page, says what the object is (sem_page_restore,
 * lock_page_restore). */
static const char *map_page(int fd, void **ret) {
        struct stat st;
        const char *why = check_memfd(fd, F_SEAL_SHRINK | F_SEAL_GROW, IPCB_PAGE_SIZE, true, false, &st);
        void *map;

        if (why)
                return why;
        map = mmap(NULL, IPCB_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED)
                return "cannot map";
        *ret = map;
        return NULL;
}

/* Who held the reserved slots of the semaphore in catalog record idx: the
 * undo table's entries that check out for this object.  A slot without one
 * can be reclaimed by nobody and is settled when the grace period ends.
 * reserved: whether the page showed any slot to reserve; the undo table is
 * read (and the bindings allocated) only then, or when a slot owes. */
static unsigned adopt_bindings(object *o, uint32_t idx, bool reserved) {
        sem_state *st = o->sem;
        uint64_t owed[IPCB_SEM_SLOTS] = { 0 };
        unsigned owing = 0;
        undo_ent *ents;
        ssize_t n;

        if (owe_fd < 0 || pread(owe_fd, owed, sizeof(owed), OWE_BLOCK * idx) != (ssize_t)sizeof(owed))
                memset(owed, 0, sizeof(owed));
        for (uint32_t i = 0; i < IPCB_SEM_SLOTS && !reserved; i++)
                reserved = owed[i] > 0;
        if (!reserved || undo_fd < 0 || !(ents = calloc(IPCB_SEM_SLOTS, sizeof(*ents))))
                return 0;
        n = pread(undo_fd, ents, (size_t)UNDO_BLOCK, UNDO_BLOCK * idx);
        if (n == (ssize_t)UNDO_BLOCK && (st->bind = calloc(IPCB_SEM_SLOTS, sizeof(*st->bind))))
                for (uint32_t i = 0; i < IPCB_SEM_SLOTS; i++) {
                        const undo_ent *e = &ents[i];
                        if (e->nonce == 0 || e->check != undo_check(o, i + 1, e->nonce, e->uid))
                                continue;
                        /* A slot that holds nothing but owes is its holder's too. */
                        if (!sem_bit(st->orphan, i) && owed[i] > 0) {
                                sem_bit_set(st->slot_used, i, true);
                                sem_bit_set(st->orphan, i, true);
                                st->slots_used++;
                                owing++;
                        }
                        if (sem_bit(st->orphan, i))
                                st->bind[i] = (sem_bind){ .nonce = e->nonce, .uid = e->uid,
                                                          .owed = owed[i] };
                }
        free(ents);
        return owing;
}

/* A restored semaphore: no undo handle's connection survives a restart, but
 * its holder may well be alive, still holding its tokens.  So every slot
 * that holds tokens or has an operation pending is reserved for its holder
 * to reclaim (SEM_OPEN with RECLAIM and the slot's nonce, from the uid it
 * was given to); what is not reclaimed by the end of the grace period is
 * settled as for a dead holder.  Bumping the epoch tells the old undo
 * handles to reconnect and reclaim. */
static const char *adopt_sem(object *o, const cat_rec *r, uint32_t idx, int fd,
                             unsigned *ret_returned) {
        sem_state *st;
        void *map;
        const char *why;
        bool scribbled;
        unsigned freed = 0;
        int sk;

        if (r->sem_max == 0 || r->sem_max > IPCB_SEM_VALUE_MAX)
                return "bad maximum";
        if ((why = map_page(fd, &map)))
                return why;
        scribbled = sem_page_restore(map, r->sem_max);
        st = registry_trailer(o);
        st->max = r->sem_max;
        o->sem = st;
        o->fd_rw = fd;
        sk = fcntl(fd, F_GET_SEALS); /* the kernel's, not the record's */
        o->seals = sk > 0 ? (uint32_t)sk : 0;
        sem_page_adopt(o, map); /* the cache unmaps it when it needs the room */
        *ret_returned = 0;
        for (uint32_t i = 0; i < IPCB_SEM_SLOTS; i++) {
                ipcb_slotw s = ipcb_slot_unpack(atomic_load(&((ipcb_sem_page *)map)->slot[i]));
                if (s.held == 0 && !s.pending)
                        continue;
                sem_bit_set(st->slot_used, i, true);
                sem_bit_set(st->orphan, i, true);
                st->slots_used++;
                ++*ret_returned;
        }
        *ret_returned += adopt_bindings(o, idx, *ret_returned > 0); /* (and slots that only owe) */
        /* On a page written over, a slot's word means nothing: a slot whose
         * holder the undo table does not vouch for is not reserved, and the
         * garbage it shows is not taken for tokens. */
        for (uint32_t i = 0; scribbled && i < IPCB_SEM_SLOTS; i++) {
                _Atomic uint64_t *sp = &((ipcb_sem_page *)map)->slot[i];
                uint32_t seq = ipcb_slot_unpack(atomic_load(sp)).seq;
                if (!sem_bit(st->orphan, i) || (st->bind && st->bind[i].nonce != 0))
                        continue;
                atomic_store(sp, ipcb_slot_pack((ipcb_slotw){ .seq = seq }));
                sem_bit_set(st->orphan, i, false);
                sem_bit_set(st->slot_used, i, false);
                st->slots_used--;
                --*ret_returned;
                freed++;
        }
        if (scribbled)
                log_warn("fd store: the page of semaphore '%s' was written over; restored from the catalog "
                         "(count %u of %u, %u undo slots freed, %u kept for their holders)",
                         o->name, sem_value(o), st->max, freed, *ret_returned);
        atomic_fetch_add(&((ipcb_sem_page *)map)->epoch, 1);
        sem_wake_sleepers(o);
        return NULL;
}

static const char *adopt_shm(object *o, const cat_rec *r, int fd) {
        bool growable = r->flags & IPCB_WF_GROWABLE;
        struct stat st;
        const char *why;

        if ((r->size == 0 && !growable) || r->size > INT64_MAX)
                return "bad size";
        /* A segment registered from an O_RDONLY description is stored as
         * that description: it stays read-only for everyone. */
        why = check_memfd(fd, r->seals | F_SEAL_SHRINK | (growable ? 0 : F_SEAL_GROW), r->size,
                          !growable, r->rdonly, &st);
        if (why)
                return why;
        /* The read-only reopen through /proc needs our uid to read it: a
         * broker under another uid than the last one takes it over. */
        if (st.st_uid != geteuid() && fchown(fd, geteuid(), (gid_t)-1) < 0)
                log_warn("fd store: segment '%s' belongs to uid %u; read-only opens may fail",
                         o->name, (unsigned)st.st_uid);
        (void)fchmod(fd, 0600);
        o->fd_rw = fd;
        o->seals = (uint32_t)fcntl(fd, F_GET_SEALS);
        o->rdonly_source = r->rdonly;
        return NULL;
}

/* Charge a restored object to its creator as its create was charged (see
 * quota.h: never refused).  Bytes are the recorded size: the declared
 * size, except for a growable segment frozen after it grew, which is
 * charged the size it was frozen at. */
static void restore_charge(object *o, const cat_rec *r) {
        uid_t uid = r->has_creator ? (uid_t)r->creator : (uid_t)r->uid;

        if (quota_charge_object_restored(uid, o->kind, o->size) < 0) {
                log_warn("fd store: cannot charge '%s' to uid %u: out of memory", o->name,
                         (unsigned)uid);
                return;
        }
        access_charged(o, uid, o->size);
}

/* Rebuild record i's object, or say why not. */
static const char *restore_one(uint32_t i, const cat_rec *r, unsigned *ret_tokens) {
        char name[32];
        const char *why;
        object *o;
        int fd, lfd = -1;

        if (rec_crc(r) != r->crc)
                return "record checksum mismatch";
        if (r->kind != IPCB_KIND_SHM && r->kind != IPCB_KIND_SEM)
                return "unknown kind";
        if (r->name_len > IPCB_NAME_MAX || ipcb__name_check(r->name, r->name_len) < 0)
                return "invalid name";
        if ((r->mode & ~IPCB_MODE_MASK) || (r->flags & ~(IPCB_WF_PERSISTENT | IPCB_WF_GROWABLE)) ||
            (r->kind == IPCB_KIND_SEM && (r->flags & IPCB_WF_GROWABLE)) || r->rdonly > 1 ||
            (r->kind == IPCB_KIND_SEM && r->rdonly))
                return "invalid mode or flags";
        if (registry_lookup(r->kind, r->name, r->name_len))
                return "duplicate name";
        fdname(name, sizeof(name), 'o', i + 1);
        if ((fd = take(name)) < 0)
                return "its fd is missing";
        o = registry_add(r->kind, r->name, r->name_len, r->kind == IPCB_KIND_SEM ? sizeof(sem_state) : 0);
        if (!o) {
                close(fd);
                return "out of memory";
        }
        o->uid = r->uid;
        o->gid = r->gid;
        o->mode = r->mode;
        o->flags = r->flags;
        o->size = r->kind == IPCB_KIND_SEM ? IPCB_PAGE_SIZE : r->size;
        o->seals = r->seals;
        o->store_slot = i + 1;
        o->salt = r->salt ? r->salt : store_nonce(o->id, 0x73616c74);
        why = r->kind == IPCB_KIND_SEM ? adopt_sem(o, r, i, fd, ret_tokens) : adopt_shm(o, r, fd);
        if (why) {
                o->store_slot = 0;
                close(fd);
                object_destroy(o);
                return why;
        }
        fdname(name, sizeof(name), 'l', i + 1);
        if (r->has_lock && r->kind == IPCB_KIND_SHM && (lfd = take(name)) < 0)
                log_warn("fd store: lock page of '%s' missing; a new one is made at its next use",
                         o->name);
        if (lfd >= 0) {
                void *map;
                const char *lwhy = map_page(lfd, &map);
                if (lwhy) {
                        log_warn("fd store: lock page of '%s' dropped: %s", o->name, lwhy);
                        drop_fd(lfd, name);
                } else {
                        bool scribbled = lock_page_restore(map);
                        /* A held lock stays held: its holder may be alive.
                         * It reclaims its token (SHM_OPEN with RECLAIM)
                         * within the grace period, or is taken for dead. */
                        o->lock = map;
                        o->lock_fd = lfd;
                        o->lock_next_token = r->lock_next_token & IPCB_LOCK_OWNER_MASK;
                        uint32_t held = atomic_load(&o->lock->word) & IPCB_LOCK_OWNER_MASK;
                        if (lock_restored(o, held) < 0) {
                                log_warn("fd store: '%s': out of memory: its lock tokens cannot be "
                                         "reclaimed; a held lock is released as owner-died", o->name);
                                lock_token_release(o, held);
                        }
                        if (scribbled)
                                log_warn("fd store: the lock page of '%s' was written over; restored from "
                                         "the catalog, its lock released as if its holder had died",
                                         o->name);
                        /* Handles whose client has not talked to us yet
                         * are unknown here: the new epoch makes their next
                         * lock reconnect and reclaim first (client/lock.c),
                         * so that their death is noticed. */
                        atomic_fetch_add(&o->lock->epoch, 1);
                }
        }
        /* Clients may still hold fds of these inodes from the last broker. */
        object_index(o);
        o->restored = true;
        restore_charge(o, r);
        if ((!o->lock && r->has_lock) || !r->salt)
                cat_put(o); /* forget the lock we do not have; record the salt */
        return NULL;
}

/* A stored table, checked, or a new one (a broker that made none: a new,
 * empty one). */
static int table_adopt(const char *name, off_t block, const char *loss) {
        int fd = take(name);
        struct stat st;

        if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || fcntl(fd, F_GET_SEALS) < 0 ||
                        (fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDWR ||
                        (st.st_size < block * cat_nrecs && ftruncate(fd, block * cat_nrecs) < 0))) {
                log_warn("fd store: %s is not a usable memfd; dropping it", name);
                drop_fd(fd, name);
                fd = -1;
        }
        return fd >= 0 ? fd : table_create(name, block, loss);
}

static void tables_adopt(void) {
        undo_fd = table_adopt(UNDO_NAME, UNDO_BLOCK, UNDO_LOSS);
        owe_fd = table_adopt(OWE_NAME, OWE_BLOCK, OWE_LOSS);
        order_fd = table_adopt(ORDER_NAME, ORDER_BLOCK, ORDER_LOSS);
}

/* A live record: its slot and its place in creation order. */
typedef struct placed {
        uint64_t seq;
        uint32_t idx;
} placed;

static int placed_cmp(const void *a, const void *b) {
        const placed *x = a, *y = b;

        if (x->seq != y->seq)
                return x->seq < y->seq ? -1 : 1;
        return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* A place read from the order table; one no broker can have written (a
 * table written over) counts as none. */
static uint64_t place(uint64_t seq) {
        return seq < (1ull << 62) ? seq : 0;
}

/* The catalog's records in use, in creation order (slot order among those
 * the order table does not place), in *ret (*ret_n of them, the caller
 * frees); free slots go on the free stack, the lowest on top.  The catalog
 * and the order table are read a chunk at a time.  -ENOMEM, with nothing
 * done. */
static int live_in_order(int fd, placed **ret, uint32_t *ret_n) {
        enum { CHUNK = 256 };
        placed *live = malloc((size_t)cat_nrecs * sizeof(*live));
        cat_rec *buf = malloc(CHUNK * sizeof(*buf));
        uint64_t seqs[CHUNK];
        uint32_t n = 0;

        if (!live || !buf) {
                free(live);
                free(buf);
                return -ENOMEM;
        }
        for (uint32_t end = cat_nrecs; end > 0;) {
                uint32_t start = end > CHUNK ? end - CHUNK : 0;
                ssize_t got = pread(fd, buf, (end - start) * sizeof(*buf), rec_off(start));
                uint32_t have = got > 0 ? (uint32_t)((size_t)got / sizeof(*buf)) : 0;
                if (order_fd < 0 || pread(order_fd, seqs, (end - start) * sizeof(*seqs),
                                          ORDER_BLOCK * start) != (ssize_t)((end - start) * sizeof(*seqs)))
                        memset(seqs, 0, sizeof(seqs));
                for (uint32_t i = end; i > start; i--) {
                        uint32_t idx = i - 1;
                        if (idx - start >= have || buf[idx - start].magic == 0)
                                free_stack[nfree++] = idx;
                        else
                                live[n++] = (placed){ .seq = place(seqs[idx - start]), .idx = idx };
                }
                end = start;
        }
        free(buf);
        qsort(live, n, sizeof(*live), placed_cmp);
        *ret = live;
        *ret_n = n;
        return 0;
}

/* Restore from the collected catalog; false if the catalog is unusable. */
static bool restore_catalog(int fd) {
        struct stat st;
        cat_hdr h;
        cat_rec r;
        unsigned nshm = 0, nsem = 0, tokens = 0;
        const char *why = NULL;

        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || fcntl(fd, F_GET_SEALS) < 0)
                why = "not a memfd";
        else if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
                why = "too short";
        else if (memcmp(h.magic, CAT_MAGIC, 8) != 0 || h.version != CAT_VERSION ||
                 h.rec_size != sizeof(cat_rec) || hdr_crc(&h) != h.crc)
                why = "bad header";
        else if (h.nrecs == 0 || h.nrecs > COLLECT_MAX * 4 || st.st_size < rec_off(h.nrecs))
                why = "bad record count";
        if (why) {
                log_err("fd store: catalog is broken (%s); dropping every stored object", why);
                return false;
        }
        cat_fd = fd;
        free_stack = malloc(h.nrecs * sizeof(*free_stack));
        if (!free_stack) {
                cat_fd = -1;
                return false;
        }
        cat_nrecs = h.nrecs;
        /* The key first: the secrets restored below are checked with it. */
        if (memcmp(h.key, (uint8_t[16]){ 0 }, sizeof(h.key)) != 0 && h.key_crc == key_crc(h.key)) {
                memcpy(mac_key, h.key, sizeof(mac_key));
                key_ready = true;
        } else {
                key_make();
                if (cat_write_hdr() < 0)
                        log_warn("fd store: cannot write the catalog header: %m");
        }
        tables_adopt();
        /* In creation order; short of memory for that, in slot order. */
        placed *live = NULL;
        uint32_t nlive = cat_nrecs;
        uint64_t last = 0;
        if (live_in_order(fd, &live, &nlive) < 0)
                log_warn("fd store: out of memory sorting the catalog; objects come back in slot "
                         "order, not creation order");
        for (uint32_t j = 0; j < nlive; j++) {
                uint32_t idx = live ? live[j].idx : j;
                unsigned t = 0;
                if (pread(fd, &r, sizeof(r), rec_off(idx)) != (ssize_t)sizeof(r) || r.magic == 0) {
                        free_stack[nfree++] = idx;
                        continue;
                }
                uint64_t seq = 0;
                if (live)
                        seq = live[j].seq;
                else if (order_fd >= 0 && pread(order_fd, &seq, sizeof(seq), ORDER_BLOCK * idx) == sizeof(seq))
                        seq = place(seq);
                if (seq > last)
                        last = seq;
                r.name[IPCB_NAME_MAX] = '\0';
                why = r.magic != REC_MAGIC ? "bad record magic" : restore_one(idx, &r, &t);
                if (why) {
                        char name[32];
                        tables_punch(idx);
                        log_warn("fd store: dropping stored object %u ('%.*s'): %s", (unsigned)idx + 1,
                                 r.name_len <= IPCB_NAME_MAX ? (int)r.name_len : 0, r.name, why);
                        cat_clear(idx);
                        fdname(name, sizeof(name), 'o', idx + 1);
                        drop_fd(take(name), name);
                        fdname(name, sizeof(name), 'l', idx + 1);
                        drop_fd(take(name), name);
                        free_stack[nfree++] = idx;
                        continue;
                }
                tokens += t;
                if (r.kind == IPCB_KIND_SHM)
                        nshm++;
                else
                        nsem++;
        }
        /* New objects' places follow every restored one's. */
        order_base = last + 1;
        free(live);
        restored = nshm + nsem;
        log_info("fd store: restored %u segments and %u semaphores%s", nshm, nsem,
                 tokens ? "; undo slots held at the restart are reserved for their holders" : "");
        return true;
}

/* Objects looked at per loop turn when the grace period ends (a settled
 * undo slot counts as an eighth of one: it may map the page): with a
 * million restored objects, settling them all at once would stop the loop
 * for tens of milliseconds. */
#define GRACE_BATCH 1024u

static uint8_t grace_kind = 1;
static uint64_t grace_cursor;
static unsigned grace_destroyed;

static void on_grace_end(uv_timer_t *t) {
        unsigned work = 0, k;
        uint32_t held;

        for (; grace_kind <= IPCB_KIND_MAX_; grace_kind++, grace_cursor = 0) {
                object *o = registry_kind_first_after(grace_kind, grace_cursor), *next;
                for (; o && work < GRACE_BATCH; o = next, work++) {
                        next = registry_kind_next(o);
                        grace_cursor = o->id;
                        if (!o->restored)
                                continue;
                        o->restored = false;
                        if (o->sem && (k = sem_settle_orphans(o)) > 0) {
                                work += k / 8;
                                log_info("fd store: semaphore '%s': %u undo slots not reclaimed; their "
                                         "tokens returned", o->name, k);
                        }
                        if ((held = lock_grace_end(o))) {
                                log_info("fd store: segment '%s': lock held at the restart not "
                                         "reclaimed; released as owner-died", o->name);
                                lock_token_release(o, held);
                        }
                        if (!(o->flags & IPCB_WF_PERSISTENT) && o->handles == 0 && o->linked) {
                                grace_destroyed++;
                                object_unlink(o);
                        }
                }
                if (o) { /* the rest on the next loop turn, after I/O */
                        uv_timer_start(t, on_grace_end, 0, 0);
                        return;
                }
        }
        if (grace_destroyed)
                log_info("fd store: %u restored transient objects were not re-opened; destroyed",
                         grace_destroyed);
        grace_active = false;
        uv_close((uv_handle_t *)&grace_timer, NULL);
}

int store_start(uv_loop_t *loop, bool enable, unsigned grace_ms) {
        const char *fdstore = getenv("FDSTORE");
        int k, cfd;

        crc_init();
        /* systemd 254+ says FDSTORE=<max> when the store is on; 252 says
         * nothing, so a manager listening on NOTIFY_SOCKET is enough. */
        enabled = enable && getenv("NOTIFY_SOCKET") && (!fdstore || atoi(fdstore) > 0);

        cfd = take(CAT_NAME);
        if (cfd >= 0 && !restore_catalog(cfd)) {
                drop_fd(cfd, CAT_NAME);
                cat_fd = -1;
        }
        for (unsigned i = 0; i < ncoll; i++) {
                if (coll[i].fd >= 0) {
                        log_warn("fd store: dropping %s: no catalog record claims it", coll[i].name);
                        drop_fd(coll[i].fd, coll[i].name);
                }
                free(coll[i].name);
        }
        free(coll);
        coll = NULL;
        ncoll = coll_cap = 0;

        if (!enabled && cat_fd < 0)
                return 0;
        if (cat_fd < 0 && (k = cat_create()) < 0) {
                log_err("fd store: cannot create the catalog: %s", strerror(-k));
                return k;
        }
        if (!enabled) /* restored without a manager to store into */
                log_info("fd store: no service manager; objects are not kept across restarts");
        else
                log_debug("fd store: on");
        if (restored && grace_ms) {
                uv_timer_init(loop, &grace_timer);
                grace_kind = 1;
                grace_cursor = 0;
                grace_destroyed = 0;
                uv_timer_start(&grace_timer, on_grace_end, grace_ms, 0);
                grace_active = true;
        }
        return 0;
}

void store_stop(void) {
        if (grace_active) {
                uv_timer_stop(&grace_timer);
                uv_close((uv_handle_t *)&grace_timer, NULL);
                grace_active = false;
        }
        if (cat_fd >= 0) {
                close(cat_fd);
                cat_fd = -1;
        }
        tables_close();
        free(free_stack);
        free_stack = NULL;
        nfree = 0;
}
