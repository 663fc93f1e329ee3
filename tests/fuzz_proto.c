/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz_proto.c: libFuzzer target for proto/.  Every input is decoded as if
 * it had arrived with 0..IPCB_FDS_MAX+1 fds.  Whatever decodes must lie inside
 * the input, obey the header rules, and re-encode to exactly the input bytes
 * (the decoder keeps every field and accepts only zero pads, so decode is the
 * inverse of encode on everything it accepts).  Crashes are abort()s. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#define MAX_RECS (IPCB_MSG_MAX / IPCB_STAT_FIXED + 1)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *why, uint16_t op, size_t size, unsigned nfds) {
        fprintf(stderr, "fuzz_proto: %s (op 0x%04x, %zu bytes, %u fds)\n", why, op, size, nfds);
        abort();
}

static void check_name(ipcb_name n, const uint8_t *data, size_t size, uint16_t op) {
        const uint8_t *p = (const uint8_t *)n.ptr;

        if (n.len && (p < data || p + n.len > data + size))
                fail("name outside the buffer", op, size, 0);
        /* the name rule must be callable on whatever the decoder hands out */
        (void)ipcb__name_check(n.ptr, n.len);
}

static void check_decoded(const uint8_t *data, size_t size, unsigned nfds, ipcb_msg *m) {
        static ipcb_stat_rec recs[MAX_RECS];
        static uint8_t out[IPCB_MSG_MAX];
        uint16_t op = m->hdr.op;
        bool reply = op & IPCB_OP_REPLY;
        unsigned base = op & ~IPCB_OP_REPLY;
        ssize_t n;

        if (size < IPCB_HDR_SIZE || size > IPCB_MSG_MAX || m->hdr.len != size - IPCB_HDR_SIZE ||
            m->hdr.nfds != nfds || nfds > IPCB_FDS_MAX ||
            (m->hdr.flags != 0 && !(m->hdr.flags == IPCB_HF_NOREPLY && op == IPCB_OP_CLOSE)))
                fail("header rules broken", op, size, nfds);
        if (!reply && (m->hdr.status != 0 || nfds != (op == IPCB_OP_SHM_REGISTER ? 1u : 0u)))
                fail("request with status or fds", op, size, nfds);
        if (reply && m->hdr.status != 0 &&
            (m->hdr.status > 0 || m->hdr.status < -4095 || m->hdr.len || nfds))
                fail("bad error reply", op, size, nfds);

        if (!reply) {
                if (op == IPCB_OP_UNLINK || op == IPCB_OP_STAT || op == IPCB_OP_HOLDERS)
                        check_name(m->stat.name, data, size, op);
                else if (op == IPCB_OP_SHM_CREATE)
                        check_name(m->shm_create.name, data, size, op);
                else if (op == IPCB_OP_SHM_OPEN)
                        check_name(m->shm_open.name, data, size, op);
                else if (op == IPCB_OP_SEM_CREATE)
                        check_name(m->sem_create.name, data, size, op);
                else if (op == IPCB_OP_SEM_OPEN)
                        check_name(m->sem_open.name, data, size, op);
                else if (op == IPCB_OP_SET_ACCESS)
                        check_name(m->set_access.name, data, size, op);
                else if (op == IPCB_OP_FREEZE)
                        check_name(m->freeze.name, data, size, op);
                else if (op == IPCB_OP_SHM_REGISTER)
                        check_name(m->shm_register.name, data, size, op);
                else if (op == IPCB_OP_SEM_APPLY) {
                        static ipcb_sem_apply_ent ents[IPCB_SEM_APPLY_MAX];
                        if (m->sem_apply.count == 0 || m->sem_apply.count > IPCB_SEM_APPLY_MAX ||
                            m->sem_apply.raw < data ||
                            m->sem_apply.raw + (size_t)m->sem_apply.count * IPCB_SEM_APPLY_ENT > data + size)
                                fail("SEM_APPLY out of bounds", op, size, nfds);
                        for (unsigned i = 0; i < m->sem_apply.count; i++)
                                ipcb__sem_apply_ent_at(m, i, &ents[i]);
                        m->sem_apply.ents = ents;
                }
        } else if (m->hdr.status == 0 && base == IPCB_OP_QUOTA) {
                static ipcb_quota_rec qrecs[IPCB_QUOTA_RECS_MAX];
                if (m->quota_reply.count > IPCB_QUOTA_RECS_MAX || m->quota_reply.more > 1)
                        fail("QUOTA reply out of bounds", op, size, nfds);
                for (unsigned i = 0; i < m->quota_reply.count; i++)
                        ipcb__quota_rec_at(m, i, &qrecs[i]);
                m->quota_reply.recs = qrecs;
        } else if (m->hdr.status == 0 && base == IPCB_OP_HOLDERS) {
                static ipcb_holder_rec hrecs[IPCB_HOLDERS_MAX];
                if (m->holders_reply.count > IPCB_HOLDERS_MAX ||
                    m->holders_reply.total < m->holders_reply.count)
                        fail("HOLDERS reply out of bounds", op, size, nfds);
                for (unsigned i = 0; i < m->holders_reply.count; i++)
                        ipcb__holder_rec_at(m, i, &hrecs[i]);
                m->holders_reply.recs = hrecs;
        } else if (m->hdr.status == 0 && base == IPCB_OP_STAT) {
                check_name(m->stat_reply.name, data, size, op);
        } else if (m->hdr.status == 0 && base == IPCB_OP_LIST) {
                ipcb_list_iter it = m->list_reply.iter;
                unsigned count = 0;

                if (m->list_reply.more > 1)
                        fail("LIST reply with more > 1", op, size, nfds);
                while (ipcb__list_iter_next(&it, &recs[count])) {
                        if (recs[count].kind == IPCB_KIND_ANY || recs[count].kind > IPCB_KIND_MAX_)
                                fail("record of a bad kind", op, size, nfds);
                        check_name(recs[count].name, data, size, op);
                        if (++count > MAX_RECS - 1)
                                fail("more records than can fit", op, size, nfds);
                }
                if (count != m->list_reply.count || it.left != 0)
                        fail("LIST iteration disagrees with count", op, size, nfds);
                m->list_reply.recs = recs;
        }

        n = ipcb__proto_encode(m, out, sizeof(out));
        if (n != (ssize_t)size)
                fail("re-encode has another length", op, size, nfds);
        if (memcmp(out, data, size) != 0)
                fail("re-encode differs", op, size, nfds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        ipcb_msg m;
        unsigned ok = 0;

        (void)ipcb__name_check((const char *)data, size);

        for (unsigned nfds = 0; nfds <= IPCB_FDS_MAX + 1; nfds++) {
                int r = ipcb__proto_decode(data, size, nfds, &m);

                if (r == 0) {
                        check_decoded(data, size, nfds, &m);
                        ok++;
                } else if (r == -EOPNOTSUPP) {
                        if (size < IPCB_HDR_SIZE || m.hdr.len != size - IPCB_HDR_SIZE ||
                            m.hdr.nfds != nfds || m.hdr.flags != 0)
                                fail("-EOPNOTSUPP without a valid header", m.hdr.op, size, nfds);
                } else if (r != -EBADMSG) {
                        fail("unexpected error code", m.hdr.op, size, nfds);
                }
        }
        /* the header's nfds must equal the fds that came: at most one count fits */
        if (ok > 1)
                fail("decoded with two different fd counts", m.hdr.op, size, 0);
        return 0;
}
