/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* proto.c: encode and decode of the wire format described in proto.h and
 * docs/protocol.md.  A cursor type keeps every read bounds-checked: a read
 * past the end marks the cursor bad, and a bad cursor makes the whole
 * message -EBADMSG. */
#include "proto.h"

#include <errno.h>
#include <string.h>

int ipcb__name_check(const char *name, size_t len) {
        if (!name || len == 0)
                return -EINVAL;
        if (len > IPCB_NAME_MAX)
                return -ENAMETOOLONG;
        if (name[0] == '.')
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)name[i];
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                          c == ':' || c == '@' || c == '+' || c == '-';
                if (!ok)
                        return -EINVAL;
        }
        return 0;
}

/* ---- reading ---- */

typedef struct rd {
        const uint8_t *p;
        size_t left;
        bool bad;
} rd;

static const uint8_t *rd_take(rd *r, size_t n) {
        if (r->bad || r->left < n) {
                r->bad = true;
                return NULL;
        }
        const uint8_t *q = r->p;
        r->p += n;
        r->left -= n;
        return q;
}

static uint8_t rd_u8(rd *r) {
        const uint8_t *q = rd_take(r, 1);
        return q ? q[0] : 0;
}

static uint16_t rd_u16(rd *r) {
        const uint8_t *q = rd_take(r, 2);
        return q ? (uint16_t)(q[0] | q[1] << 8) : 0;
}

static uint32_t rd_u32(rd *r) {
        const uint8_t *q = rd_take(r, 4);
        return q ? (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
                           (uint32_t)q[3] << 24
                 : 0;
}

static uint64_t rd_u64(rd *r) {
        uint64_t lo = rd_u32(r);
        return lo | (uint64_t)rd_u32(r) << 32;
}

/* Reserved bytes must be zero, so that they can gain a meaning later. */
static void rd_zero(rd *r, size_t n) {
        const uint8_t *q = rd_take(r, n);
        for (size_t i = 0; q && i < n; i++)
                if (q[i])
                        r->bad = true;
}

/* A name whose length was read earlier and whose bytes follow. */
static ipcb_name rd_name(rd *r, uint16_t len) {
        ipcb_name n = { .ptr = (const char *)rd_take(r, len), .len = len };
        if (!n.ptr)
                n.len = 0;
        return n;
}

static void rd_stat(rd *r, ipcb_stat_rec *s) {
        uint16_t nlen;

        memset(s, 0, sizeof(*s));
        s->kind = rd_u8(r);
        rd_zero(r, 1);
        nlen = rd_u16(r);
        s->uid = rd_u32(r);
        s->gid = rd_u32(r);
        s->mode = rd_u32(r);
        s->flags = rd_u32(r);
        s->seals = rd_u32(r);
        s->handles = rd_u32(r);
        s->id = rd_u64(r);
        s->size = rd_u64(r);
        s->sem_value = rd_u32(r);
        s->sem_max = rd_u32(r);
        s->sem_undo_held = rd_u32(r);
        s->name = rd_name(r, nlen);
        if (s->kind == IPCB_KIND_ANY || s->kind > IPCB_KIND_MAX_)
                r->bad = true;
}

int ipcb__list_iter_next(ipcb_list_iter *it, ipcb_stat_rec *ret) {
        rd r = { .p = it->p, .left = it->left };

        if (it->count == 0)
                return 0;
        rd_stat(&r, ret);
        if (r.bad) /* cannot happen after a successful decode */
                return 0;
        it->p = r.p;
        it->left = r.left;
        it->count--;
        return 1;
}

static int decode_request(rd *r, ipcb_msg *m) {
        uint16_t nlen;

        switch (m->hdr.op) {
        case IPCB_OP_HELLO:
                m->hello.version = rd_u32(r);
                m->hello.caps = rd_u32(r);
                break;
        case IPCB_OP_CLOSE:
                m->close.handle = rd_u64(r);
                break;
        case IPCB_OP_UNLINK:
        case IPCB_OP_STAT:
        case IPCB_OP_HOLDERS:
                m->stat.kind = rd_u8(r);
                rd_zero(r, 1);
                nlen = rd_u16(r);
                m->stat.name = rd_name(r, nlen);
                break;
        case IPCB_OP_LIST:
                m->list.kind = rd_u8(r);
                rd_zero(r, 1);
                m->list.max = rd_u16(r);
                m->list.cursor = rd_u64(r);
                break;
        case IPCB_OP_SHM_CREATE:
                m->shm_create.size = rd_u64(r);
                m->shm_create.mode = rd_u32(r);
                m->shm_create.flags = rd_u32(r);
                nlen = rd_u16(r);
                rd_zero(r, 2);
                m->shm_create.name = rd_name(r, nlen);
                break;
        case IPCB_OP_SHM_OPEN:
                m->shm_open.access = rd_u32(r);
                nlen = rd_u16(r);
                rd_zero(r, 2);
                m->shm_open.flags = rd_u32(r);
                m->shm_open.owner = rd_u32(r);
                m->shm_open.token = rd_u32(r);
                rd_zero(r, 4);
                m->shm_open.nonce = rd_u64(r);
                m->shm_open.name = rd_name(r, nlen);
                break;
        case IPCB_OP_SHM_LOCK_PAGE:
                m->shm_lock_page.handle = rd_u64(r);
                break;
        case IPCB_OP_SEM_CREATE:
                m->sem_create.initial = rd_u32(r);
                m->sem_create.max = rd_u32(r);
                m->sem_create.mode = rd_u32(r);
                m->sem_create.flags = rd_u32(r);
                nlen = rd_u16(r);
                rd_zero(r, 2);
                m->sem_create.name = rd_name(r, nlen);
                break;
        case IPCB_OP_SEM_OPEN:
                m->sem_open.flags = rd_u32(r);
                nlen = rd_u16(r);
                rd_zero(r, 2);
                m->sem_open.owner = rd_u32(r);
                rd_zero(r, 4);
                m->sem_open.nonce = rd_u64(r);
                m->sem_open.name = rd_name(r, nlen);
                break;
        case IPCB_OP_SET_ACCESS:
                m->set_access.kind = rd_u8(r);
                rd_zero(r, 1);
                nlen = rd_u16(r);
                m->set_access.what = rd_u32(r);
                m->set_access.mode = rd_u32(r);
                m->set_access.uid = rd_u32(r);
                m->set_access.gid = rd_u32(r);
                m->set_access.name = rd_name(r, nlen);
                break;
        case IPCB_OP_FREEZE:
                m->freeze.kind = rd_u8(r);
                rd_zero(r, 1);
                nlen = rd_u16(r);
                m->freeze.name = rd_name(r, nlen);
                break;
        case IPCB_OP_SHM_REGISTER:
                m->shm_register.mode = rd_u32(r);
                m->shm_register.flags = rd_u32(r);
                nlen = rd_u16(r);
                rd_zero(r, 2);
                m->shm_register.name = rd_name(r, nlen);
                break;
        case IPCB_OP_MEMFD:
                m->memfd.size = rd_u64(r);
                m->memfd.seals = rd_u32(r);
                rd_zero(r, 4);
                break;
        case IPCB_OP_QUOTA:
                m->quota.uid = rd_u32(r);
                m->quota.flags = rd_u32(r);
                m->quota.cursor = rd_u64(r);
                break;
        case IPCB_OP_WATCH_ADD:
                m->watch_add.kind = rd_u8(r);
                m->watch_add.flags = rd_u8(r);
                nlen = rd_u16(r);
                m->watch_add.events = rd_u32(r);
                m->watch_add.name = rd_name(r, nlen);
                break;
        case IPCB_OP_WATCH_REMOVE:
                m->watch_remove.watch = rd_u64(r);
                break;
        case IPCB_OP_SEM_POLL:
        case IPCB_OP_SEM_NOTIFY:
        case IPCB_OP_LOCK_POLL:
        case IPCB_OP_LOCK_NOTIFY:
                m->sem_poll.handle = rd_u64(r);
                break;
        case IPCB_OP_SEM_OWE:
                m->sem_owe.handle = rd_u64(r);
                m->sem_owe.release = rd_u32(r);
                m->sem_owe.owe = rd_u32(r);
                break;
        case IPCB_OP_SEM_APPLY:
                m->sem_apply.count = rd_u32(r);
                rd_zero(r, 4);
                m->sem_apply.ents = NULL;
                if (m->sem_apply.count == 0 || m->sem_apply.count > IPCB_SEM_APPLY_MAX) {
                        r->bad = true;
                        break;
                }
                m->sem_apply.raw = r->p;
                for (uint32_t i = 0; i < m->sem_apply.count; i++) {
                        (void)rd_u64(r);
                        (void)rd_u32(r);
                        rd_zero(r, 4);
                }
                break;
        default:
                return -EOPNOTSUPP;
        }
        /* SHM_REGISTER carries exactly one fd (the memfd to publish); every
         * other request carries none. */
        if (m->hdr.nfds != (m->hdr.op == IPCB_OP_SHM_REGISTER ? 1 : 0))
                r->bad = true;
        return 0;
}

/* The SHM reply: SHM_CREATE, SHM_OPEN, SHM_REGISTER. */
static void rd_shm_reply(rd *r, ipcb_msg *m) {
        m->shm_reply.handle = rd_u64(r);
        m->shm_reply.size = rd_u64(r);
        m->shm_reply.seals = rd_u32(r);
        m->shm_reply.access = rd_u32(r);
        m->shm_reply.uid = rd_u32(r);
        m->shm_reply.gid = rd_u32(r);
        m->shm_reply.mode = rd_u32(r);
        rd_zero(r, 4);
}

static int decode_reply(rd *r, ipcb_msg *m) {
        unsigned want_fds = 0;

        switch (m->hdr.op & ~IPCB_OP_REPLY) {
        case IPCB_OP_HELLO:
                m->hello_reply.version = rd_u32(r);
                m->hello_reply.caps = rd_u32(r);
                m->hello_reply.msg_max = rd_u32(r);
                m->hello_reply.name_max = rd_u32(r);
                m->hello_reply.fds_max = rd_u32(r);
                break;
        case IPCB_OP_CLOSE:
        case IPCB_OP_UNLINK:
                break;
        case IPCB_OP_STAT:
                rd_stat(r, &m->stat_reply);
                break;
        case IPCB_OP_LIST: {
                m->list_reply.next_cursor = rd_u64(r);
                m->list_reply.count = rd_u16(r);
                m->list_reply.more = rd_u8(r);
                rd_zero(r, 1);
                m->list_reply.recs = NULL;
                m->list_reply.iter = (ipcb_list_iter){ .p = r->p, .left = r->left,
                                                        .count = m->list_reply.count };
                /* Validate every record now so that iterating cannot fail. */
                for (unsigned i = 0; i < m->list_reply.count && !r->bad; i++) {
                        ipcb_stat_rec s;
                        rd_stat(r, &s);
                }
                if (m->list_reply.more > 1)
                        r->bad = true;
                break;
        }
        case IPCB_OP_SHM_CREATE:
        case IPCB_OP_SHM_OPEN:
                rd_shm_reply(r, m);
                want_fds = 1;
                break;
        case IPCB_OP_SHM_LOCK_PAGE:
                m->lock_reply.token = rd_u32(r);
                rd_zero(r, 4);
                m->lock_reply.nonce = rd_u64(r);
                want_fds = 1;
                break;
        case IPCB_OP_SEM_CREATE:
        case IPCB_OP_SEM_OPEN:
                m->sem_reply.handle = rd_u64(r);
                m->sem_reply.slot = rd_u32(r);
                m->sem_reply.seq = rd_u32(r);
                m->sem_reply.max = rd_u32(r);
                m->sem_reply.value = rd_u32(r);
                m->sem_reply.uid = rd_u32(r);
                m->sem_reply.gid = rd_u32(r);
                m->sem_reply.mode = rd_u32(r);
                rd_zero(r, 4);
                m->sem_reply.nonce = rd_u64(r);
                want_fds = 1;
                break;
        case IPCB_OP_SET_ACCESS:
                break;
        case IPCB_OP_FREEZE:
                m->freeze_reply.seals = rd_u32(r);
                rd_zero(r, 4);
                break;
        case IPCB_OP_SHM_REGISTER: /* the client keeps its own fd: none attached */
                rd_shm_reply(r, m);
                break;
        case IPCB_OP_MEMFD:
                m->memfd_reply.size = rd_u64(r);
                m->memfd_reply.seals = rd_u32(r);
                rd_zero(r, 4);
                want_fds = 1;
                break;
        case IPCB_OP_HOLDERS:
                m->holders_reply.count = rd_u32(r);
                m->holders_reply.total = rd_u32(r);
                m->holders_reply.id = rd_u64(r);
                m->holders_reply.recs = NULL;
                m->holders_reply.raw = rd_take(r, (size_t)m->holders_reply.count * IPCB_HOLDER_REC);
                if (m->holders_reply.count > IPCB_HOLDERS_MAX ||
                    m->holders_reply.total < m->holders_reply.count)
                        r->bad = true;
                break;
        case IPCB_OP_QUOTA:
                m->quota_reply.max_objects = rd_u64(r);
                m->quota_reply.max_bytes = rd_u64(r);
                m->quota_reply.max_handles = rd_u64(r);
                m->quota_reply.max_connections = rd_u64(r);
                m->quota_reply.next_cursor = rd_u64(r);
                m->quota_reply.count = rd_u16(r);
                m->quota_reply.more = rd_u8(r);
                rd_zero(r, 5);
                m->quota_reply.recs = NULL;
                m->quota_reply.raw = rd_take(r, (size_t)m->quota_reply.count * IPCB_QUOTA_REC);
                if (m->quota_reply.more > 1 || m->quota_reply.count > IPCB_QUOTA_RECS_MAX)
                        r->bad = true;
                break;
        case IPCB_OP_WATCH_ADD:
                m->watch_reply.watch = rd_u64(r);
                break;
        case IPCB_OP_WATCH_REMOVE:
                break;
        case IPCB_OP_SEM_POLL:
        case IPCB_OP_LOCK_POLL:
                m->sem_poll_reply.pollers = rd_u32(r);
                rd_zero(r, 4);
                want_fds = 1;
                break;
        case IPCB_OP_SEM_NOTIFY:
        case IPCB_OP_LOCK_NOTIFY:
                want_fds = 1;
                break;
        case IPCB_OP_SEM_APPLY:
                break;
        case IPCB_OP_SEM_OWE:
                m->sem_owe_reply.owed = rd_u64(r);
                break;
        case IPCB_OP_WATCH_EVENT: {
                uint16_t nlen;
                m->watch_event.watch = rd_u64(r);
                m->watch_event.event = rd_u32(r);
                m->watch_event.kind = rd_u8(r);
                rd_zero(r, 1);
                nlen = rd_u16(r);
                m->watch_event.object = rd_u64(r);
                m->watch_event.uid = rd_u32(r);
                m->watch_event.gid = rd_u32(r);
                m->watch_event.mode = rd_u32(r);
                m->watch_event.seals = rd_u32(r);
                m->watch_event.name = rd_name(r, nlen);
                /* An overflow names nothing; every other event one object
                 * of a known kind, with exactly one event bit. */
                if (m->watch_event.event == IPCB_WE_OVERFLOW) {
                        if (m->watch_event.kind || nlen || m->watch_event.object)
                                r->bad = true;
                } else if (m->watch_event.kind == IPCB_KIND_ANY ||
                           m->watch_event.kind > IPCB_KIND_MAX_ || nlen == 0 ||
                           m->watch_event.watch == 0 ||
                           (m->watch_event.event & ~IPCB_WE_MASK) ||
                           __builtin_popcount(m->watch_event.event) != 1)
                        r->bad = true;
                if (m->hdr.id != 0)
                        r->bad = true;
                break;
        }
        default:
                return -EOPNOTSUPP;
        }
        if (m->hdr.nfds != want_fds)
                r->bad = true;
        return 0;
}

int ipcb__proto_decode(const void *buf, size_t len, unsigned nfds, ipcb_msg *ret) {
        rd r = { .p = buf, .left = len };
        int k;

        memset(ret, 0, sizeof(*ret));
        if (!buf || len < IPCB_HDR_SIZE || len > IPCB_MSG_MAX)
                return -EBADMSG;
        ret->hdr.op = rd_u16(&r);
        ret->hdr.nfds = rd_u8(&r);
        ret->hdr.flags = rd_u8(&r);
        ret->hdr.id = rd_u32(&r);
        ret->hdr.status = (int32_t)rd_u32(&r);
        ret->hdr.len = rd_u32(&r);
        if (ret->hdr.len != len - IPCB_HDR_SIZE || ret->hdr.nfds != nfds || nfds > IPCB_FDS_MAX)
                return -EBADMSG;
        if (ret->hdr.flags != 0 &&
            (ret->hdr.flags != IPCB_HF_NOREPLY || ret->hdr.op != IPCB_OP_CLOSE))
                return -EBADMSG;

        if (!(ret->hdr.op & IPCB_OP_REPLY)) {
                if (ret->hdr.status != 0)
                        return -EBADMSG;
                k = decode_request(&r, ret);
        } else if (ret->hdr.status != 0) {
                /* An error reply: a negative errno, nothing else. */
                if (ret->hdr.status > 0 || ret->hdr.status < -4095 || r.left || nfds)
                        return -EBADMSG;
                return 0;
        } else {
                k = decode_reply(&r, ret);
        }
        if (k < 0)
                return k;
        if (r.bad || r.left != 0)
                return -EBADMSG;
        return 0;
}

/* ---- writing ---- */

typedef struct wr {
        uint8_t *p;
        size_t left;
        bool bad;
} wr;

static uint8_t *wr_take(wr *w, size_t n) {
        if (w->bad || w->left < n) {
                w->bad = true;
                return NULL;
        }
        uint8_t *q = w->p;
        w->p += n;
        w->left -= n;
        return q;
}

static void wr_u8(wr *w, uint8_t v) {
        uint8_t *q = wr_take(w, 1);
        if (q)
                q[0] = v;
}

static void wr_u16(wr *w, uint16_t v) {
        uint8_t *q = wr_take(w, 2);
        if (q) {
                q[0] = (uint8_t)v;
                q[1] = (uint8_t)(v >> 8);
        }
}

static void wr_u32(wr *w, uint32_t v) {
        uint8_t *q = wr_take(w, 4);
        for (int i = 0; q && i < 4; i++)
                q[i] = (uint8_t)(v >> (8 * i));
}

static void wr_u64(wr *w, uint64_t v) {
        wr_u32(w, (uint32_t)v);
        wr_u32(w, (uint32_t)(v >> 32));
}

static void wr_bytes(wr *w, const void *src, size_t n) {
        uint8_t *q = wr_take(w, n);
        if (q && n)
                memcpy(q, src, n);
}

static void wr_stat(wr *w, const ipcb_stat_rec *s) {
        wr_u8(w, s->kind);
        wr_u8(w, 0);
        wr_u16(w, s->name.len);
        wr_u32(w, s->uid);
        wr_u32(w, s->gid);
        wr_u32(w, s->mode);
        wr_u32(w, s->flags);
        wr_u32(w, s->seals);
        wr_u32(w, s->handles);
        wr_u64(w, s->id);
        wr_u64(w, s->size);
        wr_u32(w, s->sem_value);
        wr_u32(w, s->sem_max);
        wr_u32(w, s->sem_undo_held);
        wr_bytes(w, s->name.ptr, s->name.len);
}

static int encode_request(wr *w, const ipcb_msg *m) {
        switch (m->hdr.op) {
        case IPCB_OP_HELLO:
                wr_u32(w, m->hello.version);
                wr_u32(w, m->hello.caps);
                break;
        case IPCB_OP_CLOSE:
                wr_u64(w, m->close.handle);
                break;
        case IPCB_OP_UNLINK:
        case IPCB_OP_STAT:
        case IPCB_OP_HOLDERS:
                wr_u8(w, m->stat.kind);
                wr_u8(w, 0);
                wr_u16(w, m->stat.name.len);
                wr_bytes(w, m->stat.name.ptr, m->stat.name.len);
                break;
        case IPCB_OP_LIST:
                wr_u8(w, m->list.kind);
                wr_u8(w, 0);
                wr_u16(w, m->list.max);
                wr_u64(w, m->list.cursor);
                break;
        case IPCB_OP_SHM_CREATE:
                wr_u64(w, m->shm_create.size);
                wr_u32(w, m->shm_create.mode);
                wr_u32(w, m->shm_create.flags);
                wr_u16(w, m->shm_create.name.len);
                wr_u16(w, 0);
                wr_bytes(w, m->shm_create.name.ptr, m->shm_create.name.len);
                break;
        case IPCB_OP_SHM_OPEN:
                wr_u32(w, m->shm_open.access);
                wr_u16(w, m->shm_open.name.len);
                wr_u16(w, 0);
                wr_u32(w, m->shm_open.flags);
                wr_u32(w, m->shm_open.owner);
                wr_u32(w, m->shm_open.token);
                wr_u32(w, 0);
                wr_u64(w, m->shm_open.nonce);
                wr_bytes(w, m->shm_open.name.ptr, m->shm_open.name.len);
                break;
        case IPCB_OP_SHM_LOCK_PAGE:
                wr_u64(w, m->shm_lock_page.handle);
                break;
        case IPCB_OP_SEM_CREATE:
                wr_u32(w, m->sem_create.initial);
                wr_u32(w, m->sem_create.max);
                wr_u32(w, m->sem_create.mode);
                wr_u32(w, m->sem_create.flags);
                wr_u16(w, m->sem_create.name.len);
                wr_u16(w, 0);
                wr_bytes(w, m->sem_create.name.ptr, m->sem_create.name.len);
                break;
        case IPCB_OP_SEM_OPEN:
                wr_u32(w, m->sem_open.flags);
                wr_u16(w, m->sem_open.name.len);
                wr_u16(w, 0);
                wr_u32(w, m->sem_open.owner);
                wr_u32(w, 0);
                wr_u64(w, m->sem_open.nonce);
                wr_bytes(w, m->sem_open.name.ptr, m->sem_open.name.len);
                break;
        case IPCB_OP_SET_ACCESS:
                wr_u8(w, m->set_access.kind);
                wr_u8(w, 0);
                wr_u16(w, m->set_access.name.len);
                wr_u32(w, m->set_access.what);
                wr_u32(w, m->set_access.mode);
                wr_u32(w, m->set_access.uid);
                wr_u32(w, m->set_access.gid);
                wr_bytes(w, m->set_access.name.ptr, m->set_access.name.len);
                break;
        case IPCB_OP_FREEZE:
                wr_u8(w, m->freeze.kind);
                wr_u8(w, 0);
                wr_u16(w, m->freeze.name.len);
                wr_bytes(w, m->freeze.name.ptr, m->freeze.name.len);
                break;
        case IPCB_OP_SHM_REGISTER:
                wr_u32(w, m->shm_register.mode);
                wr_u32(w, m->shm_register.flags);
                wr_u16(w, m->shm_register.name.len);
                wr_u16(w, 0);
                wr_bytes(w, m->shm_register.name.ptr, m->shm_register.name.len);
                break;
        case IPCB_OP_MEMFD:
                wr_u64(w, m->memfd.size);
                wr_u32(w, m->memfd.seals);
                wr_u32(w, 0);
                break;
        case IPCB_OP_QUOTA:
                wr_u32(w, m->quota.uid);
                wr_u32(w, m->quota.flags);
                wr_u64(w, m->quota.cursor);
                break;
        case IPCB_OP_WATCH_ADD:
                wr_u8(w, m->watch_add.kind);
                wr_u8(w, m->watch_add.flags);
                wr_u16(w, m->watch_add.name.len);
                wr_u32(w, m->watch_add.events);
                wr_bytes(w, m->watch_add.name.ptr, m->watch_add.name.len);
                break;
        case IPCB_OP_WATCH_REMOVE:
                wr_u64(w, m->watch_remove.watch);
                break;
        case IPCB_OP_SEM_POLL:
        case IPCB_OP_SEM_NOTIFY:
        case IPCB_OP_LOCK_POLL:
        case IPCB_OP_LOCK_NOTIFY:
                wr_u64(w, m->sem_poll.handle);
                break;
        case IPCB_OP_SEM_OWE:
                wr_u64(w, m->sem_owe.handle);
                wr_u32(w, m->sem_owe.release);
                wr_u32(w, m->sem_owe.owe);
                break;
        case IPCB_OP_SEM_APPLY:
                if (m->sem_apply.count == 0 || m->sem_apply.count > IPCB_SEM_APPLY_MAX || !m->sem_apply.ents)
                        return -EINVAL;
                wr_u32(w, m->sem_apply.count);
                wr_u32(w, 0);
                for (uint32_t i = 0; i < m->sem_apply.count; i++) {
                        wr_u64(w, m->sem_apply.ents[i].handle);
                        wr_u32(w, (uint32_t)m->sem_apply.ents[i].delta);
                        wr_u32(w, 0);
                }
                break;
        default:
                return -EINVAL;
        }
        return 0;
}

static void wr_shm_reply(wr *w, const ipcb_msg *m) {
        wr_u64(w, m->shm_reply.handle);
        wr_u64(w, m->shm_reply.size);
        wr_u32(w, m->shm_reply.seals);
        wr_u32(w, m->shm_reply.access);
        wr_u32(w, m->shm_reply.uid);
        wr_u32(w, m->shm_reply.gid);
        wr_u32(w, m->shm_reply.mode);
        wr_u32(w, 0);
}

static int encode_reply(wr *w, const ipcb_msg *m) {
        switch (m->hdr.op & ~IPCB_OP_REPLY) {
        case IPCB_OP_HELLO:
                wr_u32(w, m->hello_reply.version);
                wr_u32(w, m->hello_reply.caps);
                wr_u32(w, m->hello_reply.msg_max);
                wr_u32(w, m->hello_reply.name_max);
                wr_u32(w, m->hello_reply.fds_max);
                break;
        case IPCB_OP_CLOSE:
        case IPCB_OP_UNLINK:
                break;
        case IPCB_OP_STAT:
                wr_stat(w, &m->stat_reply);
                break;
        case IPCB_OP_LIST:
                wr_u64(w, m->list_reply.next_cursor);
                wr_u16(w, m->list_reply.count);
                wr_u8(w, m->list_reply.more);
                wr_u8(w, 0);
                for (unsigned i = 0; i < m->list_reply.count; i++)
                        wr_stat(w, &m->list_reply.recs[i]);
                break;
        case IPCB_OP_SHM_CREATE:
        case IPCB_OP_SHM_OPEN:
        case IPCB_OP_SHM_REGISTER:
                wr_shm_reply(w, m);
                break;
        case IPCB_OP_SHM_LOCK_PAGE:
                wr_u32(w, m->lock_reply.token);
                wr_u32(w, 0);
                wr_u64(w, m->lock_reply.nonce);
                break;
        case IPCB_OP_SEM_CREATE:
        case IPCB_OP_SEM_OPEN:
                wr_u64(w, m->sem_reply.handle);
                wr_u32(w, m->sem_reply.slot);
                wr_u32(w, m->sem_reply.seq);
                wr_u32(w, m->sem_reply.max);
                wr_u32(w, m->sem_reply.value);
                wr_u32(w, m->sem_reply.uid);
                wr_u32(w, m->sem_reply.gid);
                wr_u32(w, m->sem_reply.mode);
                wr_u32(w, 0);
                wr_u64(w, m->sem_reply.nonce);
                break;
        case IPCB_OP_SET_ACCESS:
                break;
        case IPCB_OP_FREEZE:
                wr_u32(w, m->freeze_reply.seals);
                wr_u32(w, 0);
                break;
        case IPCB_OP_MEMFD:
                wr_u64(w, m->memfd_reply.size);
                wr_u32(w, m->memfd_reply.seals);
                wr_u32(w, 0);
                break;
        case IPCB_OP_HOLDERS:
                if (m->holders_reply.count > IPCB_HOLDERS_MAX ||
                    m->holders_reply.total < m->holders_reply.count)
                        return -EINVAL;
                wr_u32(w, m->holders_reply.count);
                wr_u32(w, m->holders_reply.total);
                wr_u64(w, m->holders_reply.id);
                for (unsigned i = 0; i < m->holders_reply.count; i++) {
                        wr_u32(w, m->holders_reply.recs[i].pid);
                        wr_u32(w, m->holders_reply.recs[i].uid);
                        wr_u32(w, m->holders_reply.recs[i].handles);
                }
                break;
        case IPCB_OP_QUOTA:
                if (m->quota_reply.count > IPCB_QUOTA_RECS_MAX)
                        return -EINVAL;
                wr_u64(w, m->quota_reply.max_objects);
                wr_u64(w, m->quota_reply.max_bytes);
                wr_u64(w, m->quota_reply.max_handles);
                wr_u64(w, m->quota_reply.max_connections);
                wr_u64(w, m->quota_reply.next_cursor);
                wr_u16(w, m->quota_reply.count);
                wr_u8(w, m->quota_reply.more);
                wr_u8(w, 0);
                wr_u32(w, 0);
                for (unsigned i = 0; i < m->quota_reply.count; i++) {
                        const ipcb_quota_rec *q = &m->quota_reply.recs[i];
                        wr_u32(w, q->uid);
                        wr_u32(w, q->flags);
                        wr_u64(w, q->objects);
                        wr_u64(w, q->bytes);
                        wr_u32(w, q->handles);
                        wr_u32(w, q->connections);
                }
                break;
        case IPCB_OP_WATCH_ADD:
                wr_u64(w, m->watch_reply.watch);
                break;
        case IPCB_OP_WATCH_REMOVE:
        case IPCB_OP_SEM_NOTIFY:
        case IPCB_OP_LOCK_NOTIFY:
                break;
        case IPCB_OP_SEM_POLL:
        case IPCB_OP_LOCK_POLL:
                wr_u32(w, m->sem_poll_reply.pollers);
                wr_u32(w, 0);
                break;
        case IPCB_OP_SEM_APPLY:
                break;
        case IPCB_OP_SEM_OWE:
                wr_u64(w, m->sem_owe_reply.owed);
                break;
        case IPCB_OP_WATCH_EVENT:
                wr_u64(w, m->watch_event.watch);
                wr_u32(w, m->watch_event.event);
                wr_u8(w, m->watch_event.kind);
                wr_u8(w, 0);
                wr_u16(w, m->watch_event.name.len);
                wr_u64(w, m->watch_event.object);
                wr_u32(w, m->watch_event.uid);
                wr_u32(w, m->watch_event.gid);
                wr_u32(w, m->watch_event.mode);
                wr_u32(w, m->watch_event.seals);
                wr_bytes(w, m->watch_event.name.ptr, m->watch_event.name.len);
                break;
        default:
                return -EINVAL;
        }
        return 0;
}

ssize_t ipcb__proto_encode(const ipcb_msg *m, void *buf, size_t cap) {
        wr w = { .p = buf, .left = cap < IPCB_MSG_MAX ? cap : IPCB_MSG_MAX };
        uint8_t *hdr = wr_take(&w, IPCB_HDR_SIZE);
        int k = 0;

        if (!hdr)
                return -EMSGSIZE;
        /* Never produce what the decoder would refuse. */
        if (m->hdr.status > 0 || m->hdr.status < -4095 ||
            (!(m->hdr.op & IPCB_OP_REPLY) && m->hdr.status != 0) ||
            (m->hdr.status == 0 && m->hdr.nfds > IPCB_FDS_MAX))
                return -EINVAL;
        if (!(m->hdr.op & IPCB_OP_REPLY))
                k = encode_request(&w, m);
        else if (m->hdr.status == 0)
                k = encode_reply(&w, m);
        if (k < 0)
                return k;
        if (w.bad)
                return -EMSGSIZE;

        size_t len = (size_t)(w.p - (uint8_t *)buf);
        wr h = { .p = hdr, .left = IPCB_HDR_SIZE };
        wr_u16(&h, m->hdr.op);
        wr_u8(&h, m->hdr.status < 0 ? 0 : m->hdr.nfds);
        wr_u8(&h, m->hdr.op == IPCB_OP_CLOSE ? (m->hdr.flags & IPCB_HF_NOREPLY) : 0);
        wr_u32(&h, m->hdr.id);
        wr_u32(&h, (uint32_t)m->hdr.status);
        wr_u32(&h, (uint32_t)(len - IPCB_HDR_SIZE));
        return (ssize_t)len;
}

void ipcb__quota_rec_at(const ipcb_msg *m, unsigned i, ipcb_quota_rec *ret) {
        rd r = { .p = m->quota_reply.raw + (size_t)i * IPCB_QUOTA_REC, .left = IPCB_QUOTA_REC };

        memset(ret, 0, sizeof(*ret));
        if (!m->quota_reply.raw || i >= m->quota_reply.count)
                return;
        ret->uid = rd_u32(&r);
        ret->flags = rd_u32(&r);
        ret->objects = rd_u64(&r);
        ret->bytes = rd_u64(&r);
        ret->handles = rd_u32(&r);
        ret->connections = rd_u32(&r);
}

void ipcb__holder_rec_at(const ipcb_msg *m, unsigned i, ipcb_holder_rec *ret) {
        rd r;

        memset(ret, 0, sizeof(*ret));
        if (!m->holders_reply.raw || i >= m->holders_reply.count)
                return;
        r = (rd){ .p = m->holders_reply.raw + (size_t)i * IPCB_HOLDER_REC, .left = IPCB_HOLDER_REC };
        ret->pid = rd_u32(&r);
        ret->uid = rd_u32(&r);
        ret->handles = rd_u32(&r);
}

void ipcb__sem_apply_ent_at(const ipcb_msg *m, unsigned i, ipcb_sem_apply_ent *ret) {
        rd r;

        memset(ret, 0, sizeof(*ret));
        if (!m->sem_apply.raw || i >= m->sem_apply.count)
                return;
        r = (rd){ .p = m->sem_apply.raw + (size_t)i * IPCB_SEM_APPLY_ENT, .left = IPCB_SEM_APPLY_ENT };
        ret->handle = rd_u64(&r);
        ret->delta = (int32_t)rd_u32(&r);
}
