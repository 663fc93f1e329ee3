/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* proto.h: the ipcbroker wire format (pure: no I/O, no allocation, no logging).
 *
 * One message per SOCK_SEQPACKET datagram: a 16-byte header, then a payload
 * whose layout depends on the opcode.  All integers are little-endian.  The
 * decoder is total: for any byte string it returns either a fully validated
 * message or a negative errno, and never reads outside the buffer.  Strings on
 * the wire are (u16 length, bytes) with no terminator; decoded names point
 * into the caller's buffer.  docs/protocol.md describes every byte. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define IPCB_PROTO_VERSION 1u

/* Stated limits. */
#define IPCB_MSG_MAX      8192u /* largest datagram, header included */
#define IPCB_HDR_SIZE     16u
#define IPCB_NAME_MAX 255 /* longest object name, in bytes (as in ipcbroker.h) */
#define IPCB_FDS_MAX      4u    /* most fds one message may carry */

/* Opcodes.  A reply carries the request's opcode with IPCB_OP_REPLY set. */
enum {
        IPCB_OP_HELLO      = 0x0001,
        IPCB_OP_CLOSE      = 0x0002, /* close a handle of any kind */
        IPCB_OP_UNLINK     = 0x0003,
        IPCB_OP_STAT       = 0x0004,
        IPCB_OP_LIST       = 0x0005,
        IPCB_OP_HOLDERS    = 0x0006, /* the connections holding handles on an object */
        IPCB_OP_SHM_CREATE = 0x0101,
        IPCB_OP_SHM_OPEN   = 0x0102,
        IPCB_OP_SHM_LOCK_PAGE = 0x0103, /* the lock page of a segment handle */
        IPCB_OP_LOCK_POLL  = 0x0104, /* poll a segment's lock: its notify fd in the reply */
        IPCB_OP_LOCK_NOTIFY = 0x0105, /* the fd an unlocker signals pollers with */
        IPCB_OP_SEM_CREATE = 0x0201,
        IPCB_OP_SEM_OPEN   = 0x0202,
        IPCB_OP_SEM_POLL   = 0x0203, /* poll a semaphore: its notify fd in the reply */
        IPCB_OP_SEM_NOTIFY = 0x0204, /* the fd a releaser signals pollers with */
        IPCB_OP_SEM_OWE    = 0x0205, /* release through an undo handle, owing it back */
        IPCB_OP_SEM_APPLY  = 0x0206, /* change several counts at once: all or none */
        /* 0x03xx: permissions, publishing, quotas (docs/security.md). */
        IPCB_OP_SET_ACCESS = 0x0301, /* chmod/chown of a named object */
        IPCB_OP_FREEZE     = 0x0302, /* seal a segment against writing */
        IPCB_OP_SHM_REGISTER = 0x0303, /* publish a client's memfd: 1 fd attached */
        IPCB_OP_MEMFD      = 0x0304, /* an anonymous sealed memfd */
        IPCB_OP_QUOTA      = 0x0305, /* usage and limits per uid */
        /* 0x04xx: watches (docs/protocol.md, "Watches"). */
        IPCB_OP_WATCH_ADD    = 0x0401, /* subscribe to a name or a prefix */
        IPCB_OP_WATCH_REMOVE = 0x0402,
        /* Sent by the daemon only, unasked, with IPCB_OP_REPLY set and id 0. */
        IPCB_OP_WATCH_EVENT  = 0x0403,
        IPCB_OP_REPLY      = 0x8000,
};

/* Header flags.  NOREPLY is allowed on CLOSE only: the daemon sends no
 * reply (not even an error), so that a close costs no round trip. */
#define IPCB_HF_NOREPLY 0x01u

/* Object kinds: separate namespaces.  Spelled exactly as in ipcbroker.h, so
 * that both headers may be included together. */
#define IPCB_KIND_ANY 0 /* LIST only */
#define IPCB_KIND_SHM 1
#define IPCB_KIND_SEM 2
#define IPCB_KIND_MAX_ 2

/* SHM_CREATE flags and stat record flags. */
#define IPCB_WF_PERSISTENT 0x1u
#define IPCB_WF_GROWABLE   0x2u
#define IPCB_WF_CREATE_MASK (IPCB_WF_PERSISTENT | IPCB_WF_GROWABLE)
#define IPCB_WF_UNLINKED   0x4u /* stat only: name removed, handles remain */
#define IPCB_WF_UNDO       0x8u /* SEM_CREATE/SEM_OPEN: an undo handle */
/* RECLAIM: take back what this client held before a broker restart, kept
 * for it by the new broker until its grace period ends (docs/systemd.md),
 * proven with the nonce the old broker gave with it.  SEM_OPEN, with UNDO:
 * undo slot (flags >> 16) & 0xfff (index + 1).  SHM_OPEN: the segment lock
 * token in the request's token field. */
#define IPCB_WF_RECLAIM    0x10u
#define IPCB_WF_RECLAIM_SLOT(flags) (((flags) >> 16) & 0xfffu)
/* SHM_OPEN and SEM_OPEN: fail with -EPERM unless the object's owner is the
 * request's owner field (IPCB_WO_SELF: the connection's uid). */
#define IPCB_WF_OWNED      0x20u
#define IPCB_WO_SELF       0xffffffffu
/* SHM_OPEN: no handle, only the fd (the reply's handle is 0, there is
 * nothing to CLOSE); not with RECLAIM.  Daemons that serve it say so with
 * IPCB_CAP_SHM_FD_ONLY in the HELLO reply. */
#define IPCB_WF_FD_ONLY    0x40u
#define IPCB_WF_SHM_OPEN_MASK (IPCB_WF_RECLAIM | IPCB_WF_OWNED | IPCB_WF_FD_ONLY)

/* HELLO reply caps. */
#define IPCB_CAP_SHM_FD_ONLY 0x1u
#define IPCB_CAP_SEM_OWE     0x2u /* SEM_OWE is served */
#define IPCB_CAP_SEM_APPLY   0x4u /* SEM_APPLY is served */
#define IPCB_WF_SEM_CREATE_MASK (IPCB_WF_PERSISTENT | IPCB_WF_UNDO)

/* SHM_REGISTER flags (growable follows from the memfd's F_SEAL_GROW). */
#define IPCB_WF_REGISTER_MASK IPCB_WF_PERSISTENT

/* SET_ACCESS what-bits. */
#define IPCB_SA_MODE 0x1u
#define IPCB_SA_UID  0x2u
#define IPCB_SA_GID  0x4u
#define IPCB_SA_MASK 0x7u

/* QUOTA flags: list every uid the caller may see (root: all; others: own). */
#define IPCB_QF_ALL 0x1u
/* Quota record flags: the uid is not limited (uid 0 with root override). */
#define IPCB_QR_EXEMPT 0x1u
#define IPCB_QUOTA_FIXED 48u  /* QUOTA reply payload before the records */
#define IPCB_QUOTA_REC 32u    /* one record */
#define IPCB_QUOTA_RECS_MAX 200u

/* SEM_APPLY: count (1..IPCB_SEM_APPLY_MAX) and 4 zero bytes, then count
 * entries: a plain semaphore handle, the change of its count (not 0), 4
 * zero bytes. */
#define IPCB_SEM_APPLY_FIXED 8u
#define IPCB_SEM_APPLY_ENT 16u
#define IPCB_SEM_APPLY_MAX 64u

/* HOLDERS reply: at most this many records (one per connection); the
 * reply's total says how many there were. */
#define IPCB_HOLDERS_FIXED 16u
#define IPCB_HOLDER_REC 12u
#define IPCB_HOLDERS_MAX 256u
/* WATCH_ADD flags: name is a prefix (may be empty: every name). */
#define IPCB_WW_PREFIX 0x1u
#define IPCB_WW_MASK   IPCB_WW_PREFIX
/* Watch events (WATCH_ADD mask, WATCH_EVENT event). */
#define IPCB_WE_CREATED   0x01u /* created or registered under the name */
#define IPCB_WE_UNLINKED  0x02u /* name removed (handles may remain) */
#define IPCB_WE_DESTROYED 0x04u /* gone: last handle closed after unlink, or transient */
#define IPCB_WE_ACCESS    0x08u /* owner, group or mode changed */
#define IPCB_WE_FROZEN    0x10u /* write-sealed (FREEZE) */
#define IPCB_WE_OWNER_DIED 0x20u /* a handle went away holding the lock or undo tokens */
#define IPCB_WE_MASK      0x3fu
/* Events were dropped because the connection did not read them in time
 * (watch 0: any watch of the connection).  Never asked for, always sent. */
#define IPCB_WE_OVERFLOW  0x80000000u
#define IPCB_WATCH_EVENT_FIXED 40u

/* SHM_OPEN access values. */
#define IPCB_WA_READ_ONLY  1u
#define IPCB_WA_READ_WRITE 2u

/* Mode: permission bits 0777 (only the r and w bits have a meaning). */
#define IPCB_MODE_MASK 0777u

typedef struct ipcb_name {
        const char *ptr; /* not NUL-terminated; points into the decoded buffer */
        uint16_t len;
} ipcb_name;

typedef struct ipcb_hdr {
        uint16_t op;
        uint8_t nfds;   /* fds attached to this datagram with SCM_RIGHTS */
        uint8_t flags;  /* 0, or IPCB_HF_NOREPLY on a CLOSE request */
        uint32_t id;    /* chosen by the requester, echoed by the reply */
        int32_t status; /* replies: 0 or a negative errno; requests: 0 */
        uint32_t len;   /* payload length: datagram length - 16 */
} ipcb_hdr;

/* One object, as STAT and LIST describe it. */
#define IPCB_STAT_FIXED 56u
typedef struct ipcb_stat_rec {
        uint8_t kind;
        ipcb_name name;
        uint32_t uid, gid, mode;
        uint32_t flags;     /* IPCB_WF_* */
        uint32_t seals;     /* F_SEAL_* bits, as fcntl(F_GET_SEALS) reports */
        uint32_t handles;   /* open handles, all connections */
        uint64_t id;        /* unique per daemon run, increasing */
        uint64_t size;
        uint32_t sem_value, sem_max, sem_undo_held; /* 0 for segments */
} ipcb_stat_rec;

/* One uid's usage, as QUOTA reports it. */
typedef struct ipcb_quota_rec {
        uint32_t uid, flags; /* IPCB_QR_* */
        uint64_t objects, bytes;
        uint32_t handles, connections;
} ipcb_quota_rec;

/* One connection holding handles on an object, as HOLDERS reports it: the
 * pid and uid the broker saw connect (SO_PEERCRED), its handles on it. */
typedef struct ipcb_sem_apply_ent {
        uint64_t handle;
        int32_t delta;
} ipcb_sem_apply_ent;

typedef struct ipcb_holder_rec {
        uint32_t pid, uid, handles;
} ipcb_holder_rec;

typedef struct ipcb_list_iter {
        const uint8_t *p; /* validated records */
        size_t left;      /* bytes */
        unsigned count;   /* records left */
} ipcb_list_iter;

typedef struct ipcb_msg {
        ipcb_hdr hdr;
        union {
                struct { uint32_t version, caps; } hello;
                struct { uint32_t version, caps, msg_max, name_max, fds_max; } hello_reply;
                struct { uint64_t handle; } close;
                struct { uint8_t kind; ipcb_name name; } unlink, stat;
                /* HOLDERS: same layout as UNLINK and STAT */
                struct { uint8_t kind; ipcb_name name; } holders;
                struct { uint8_t kind; uint16_t max; uint64_t cursor; } list;
                struct { uint64_t size; uint32_t mode, flags; ipcb_name name; } shm_create;
                /* owner: with OWNED, else 0; token and nonce: with RECLAIM, else 0 */
                struct { uint32_t access; ipcb_name name; uint32_t flags, owner, token; uint64_t nonce; } shm_open;
                struct { uint64_t handle; } shm_lock_page;
                struct { uint32_t initial, max, mode, flags; ipcb_name name; } sem_create;
                struct { uint32_t flags; ipcb_name name; uint32_t owner; uint64_t nonce; } sem_open;
                /* SET_ACCESS: what is IPCB_SA_*; fields not named in what are 0 */
                struct { uint8_t kind; uint32_t what, mode, uid, gid; ipcb_name name; } set_access;
                /* FREEZE: same layout as UNLINK and STAT */
                struct { uint8_t kind; ipcb_name name; } freeze;
                /* SHM_REGISTER: one memfd attached; size and seals come from it */
                struct { uint32_t mode, flags; ipcb_name name; } shm_register;
                struct { uint64_t size; uint32_t seals; } memfd;
                struct { uint32_t uid, flags; uint64_t cursor; } quota;
                /* reply to HOLDERS: encode reads recs; decode sets raw
                 * (validated records, read them with ipcb__holder_rec_at) */
                struct {
                        uint32_t count, total;
                        uint64_t id; /* the object's, to tell it from a namesake */
                        const ipcb_holder_rec *recs;
                        const uint8_t *raw;
                } holders_reply;
                /* WATCH_ADD: flags IPCB_WW_*, events IPCB_WE_* (not 0) */
                struct { uint8_t kind, flags; uint32_t events; ipcb_name name; } watch_add;
                struct { uint64_t watch; } watch_remove;
                /* SEM_POLL and SEM_NOTIFY: a semaphore handle; LOCK_POLL
                 * and LOCK_NOTIFY: a read-write segment handle */
                struct { uint64_t handle; } sem_poll;
                /* reply to SEM_POLL and LOCK_POLL (the object's notify
                 * eventfd attached); pollers: registered now */
                struct { uint32_t pollers; } sem_poll_reply;
                /* SEM_OWE: through undo handle `handle`, add `release`
                 * tokens to the count now and owe `owe` more: when the
                 * handle goes, the broker takes them from the count (never
                 * below 0).  Reply: all the handle owes now. */
                struct { uint64_t handle; uint32_t release, owe; } sem_owe;
                struct { uint64_t owed; } sem_owe_reply;
                /* SEM_APPLY: encode reads ents; decode sets raw (validated
                 * entries, read them with ipcb__sem_apply_ent_at) */
                struct {
                        uint32_t count;
                        const ipcb_sem_apply_ent *ents;
                        const uint8_t *raw;
                } sem_apply;
                /* reply to WATCH_ADD: the watch's id (> 0) */
                struct { uint64_t watch; } watch_reply;
                /* WATCH_EVENT (daemon to client, id 0): what happened to
                 * object `object` (its id) of kind, named name, now owned
                 * by uid/gid with mode and seals.  OVERFLOW: kind 0, no
                 * name, all else 0. */
                struct {
                        uint64_t watch;
                        uint32_t event;
                        uint8_t kind;
                        uint64_t object;
                        uint32_t uid, gid, mode, seals;
                        ipcb_name name;
                } watch_event;
                /* reply to FREEZE: the seals now set */
                struct { uint32_t seals; } freeze_reply;
                /* reply to MEMFD; one fd attached */
                struct { uint64_t size; uint32_t seals; } memfd_reply;
                /* reply to QUOTA: encode reads recs; decode sets raw (validated
                 * records, read them with ipcb__quota_rec_at) */
                struct {
                        uint64_t max_objects, max_bytes, max_handles, max_connections;
                        uint64_t next_cursor;
                        uint16_t count;
                        uint8_t more;
                        const ipcb_quota_rec *recs;
                        const uint8_t *raw;
                } quota_reply;
                /* reply to SEM_CREATE and SEM_OPEN; the page's fd attached.
                 * slot: undo slot index + 1, 0 for a plain handle; seq: the
                 * slot's next operation sequence number; uid, gid, mode: the
                 * object's at the open; nonce: the undo slot's secret (0 for
                 * a plain handle), proof of holding it in a RECLAIM. */
                struct {
                        uint64_t handle;
                        uint32_t slot, seq, max, value, uid, gid, mode;
                        uint64_t nonce;
                } sem_reply;
                /* reply to SHM_LOCK_PAGE; the lock page's fd attached; nonce:
                 * the token's secret, for a RECLAIM after a restart */
                struct { uint32_t token; uint64_t nonce; } lock_reply;
                /* reply to SHM_CREATE, SHM_OPEN (one fd attached) and
                 * SHM_REGISTER (none); uid, gid, mode: the object's at the open */
                struct { uint64_t handle, size; uint32_t seals, access, uid, gid, mode; } shm_reply;
                ipcb_stat_rec stat_reply;
                /* LIST reply: decode fills iter; encode reads recs/count */
                struct {
                        uint64_t next_cursor;
                        uint8_t more;
                        uint16_t count;
                        const ipcb_stat_rec *recs;
                        ipcb_list_iter iter;
                } list_reply;
        };
} ipcb_msg;

/* Check a name against the one rule: 1..IPCB_NAME_MAX bytes of
 * [A-Za-z0-9._:@+-], not starting with '.'.  Returns 0, -EINVAL (empty,
 * bad byte, leading dot) or -ENAMETOOLONG. */
int ipcb__name_check(const char *name, size_t len);

/* Decode one datagram of len bytes that arrived with nfds descriptors.
 * Returns 0 and fills *ret, or:
 *   -EBADMSG     malformed: short or inconsistent header, payload of the wrong
 *                size or shape, fd count that differs from the header.
 *                ret->hdr is valid only if buf != NULL and
 *                16 <= len <= IPCB_MSG_MAX.
 *   -EOPNOTSUPP  well-formed header, unknown opcode; ret->hdr is valid.
 * Names are not checked against the name rule here (so that the handler can
 * answer -EINVAL/-ENAMETOOLONG); only that they lie inside the buffer. */
int ipcb__proto_decode(const void *buf, size_t len, unsigned nfds, ipcb_msg *ret);

/* Encode m into buf (cap bytes).  hdr.len is computed; hdr.nfds is taken from m.
 * Returns the datagram length, or -EMSGSIZE if it does not fit / exceeds
 * IPCB_MSG_MAX, or -EINVAL for an unknown opcode or a header the decoder
 * would refuse (status > 0 or < -4095, a request with a status, too many fds).  An error reply
 * (status < 0) encodes with an empty payload whatever the opcode. */
ssize_t ipcb__proto_encode(const ipcb_msg *m, void *buf, size_t cap);

/* Bytes one stat record takes on the wire. */
static inline size_t ipcb_stat_rec_size(const ipcb_stat_rec *r) {
        return IPCB_STAT_FIXED + r->name.len;
}

/* Next record of a decoded LIST reply: 1 and *ret filled, or 0 at the end. */
int ipcb__list_iter_next(ipcb_list_iter *it, ipcb_stat_rec *ret);

/* Record i (< count) of a decoded HOLDERS reply. */
void ipcb__holder_rec_at(const ipcb_msg *m, unsigned i, ipcb_holder_rec *ret);
/* Entry i of a decoded SEM_APPLY (zeroed if out of range). */
void ipcb__sem_apply_ent_at(const ipcb_msg *m, unsigned i, ipcb_sem_apply_ent *ret);

/* Record i (< count) of a decoded QUOTA reply. */
void ipcb__quota_rec_at(const ipcb_msg *m, unsigned i, ipcb_quota_rec *ret);

/* LIST reply payload header size (before the records). */
#define IPCB_LIST_REPLY_FIXED 12u
