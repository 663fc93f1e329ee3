/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_proto.c: unit tests of proto/ (the wire format): the name rule, a
 * round trip for every message, every class of malformed input, encoder
 * limits, and a deterministic property test over random and mutated input.
 * Pure code: no daemon, no fds.  Every decode reads from a malloc'ed copy of
 * exactly the datagram's length, so that ASan sees any read past the end. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#define NAME(s) ((ipcb_name){ .ptr = (s), .len = (uint16_t)(sizeof(s) - 1) })
#define REPLY(op) ((uint16_t)((op) | IPCB_OP_REPLY))
#define MAX_RECS (IPCB_MSG_MAX / IPCB_STAT_FIXED + 1)

/* ---- helpers ---- */

static uint16_t get_u16(const uint8_t *p) {
        return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_u32(const uint8_t *p) {
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v) {
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

/* Decode from an exact-size heap copy, so that an overread is an ASan error. */
static int decode(const uint8_t *buf, size_t len, unsigned nfds, ipcb_msg *ret) {
        uint8_t *copy = malloc(len ? len : 1);
        int r;

        cr_assert_not_null(copy);
        if (len)
                memcpy(copy, buf, len);
        r = ipcb__proto_decode(copy, len, nfds, ret);
        /* names and the LIST iterator in *ret now dangle: callers of this
         * helper look at scalars only (decode_ok() decodes in place) */
        free(copy);
        return r;
}

/* Encode m, asserting success; returns the length. */
static size_t encode_ok(const ipcb_msg *m, uint8_t *buf, size_t cap) {
        ssize_t n = ipcb__proto_encode(m, buf, cap);

        cr_assert_geq(n, (ssize_t)IPCB_HDR_SIZE, "encode of op 0x%04x failed: %zd", m->hdr.op, n);
        cr_assert_leq(n, (ssize_t)IPCB_MSG_MAX);
        cr_assert_eq(get_u32(buf + 12), (uint32_t)n - IPCB_HDR_SIZE, "header len field");
        return (size_t)n;
}

/* Collect a decoded LIST reply's records into recs (caller's array). */
static unsigned collect_recs(const ipcb_msg *m, ipcb_stat_rec *recs) {
        ipcb_list_iter it = m->list_reply.iter;
        unsigned n = 0;

        while (n < MAX_RECS && ipcb__list_iter_next(&it, &recs[n]))
                n++;
        cr_assert_eq(n, m->list_reply.count, "iterated %u records, count says %u", n,
                     m->list_reply.count);
        cr_assert_eq(it.count, 0u);
        cr_assert_eq(it.left, 0u, "iteration left %zu bytes", it.left);
        return n;
}

/* After a successful decode of buf, re-encoding must give the same bytes:
 * every field the decoder accepts is kept, and every pad it accepts is zero. */
static void check_reencode(const uint8_t *buf, size_t len, const ipcb_msg *m) {
        static ipcb_stat_rec recs[MAX_RECS];
        static uint8_t out[IPCB_MSG_MAX];
        ipcb_msg copy = *m;
        ssize_t n;

        static ipcb_quota_rec qrecs[IPCB_QUOTA_RECS_MAX];
        if ((m->hdr.op & IPCB_OP_REPLY) && m->hdr.status == 0 &&
            (m->hdr.op & ~IPCB_OP_REPLY) == IPCB_OP_LIST) {
                collect_recs(m, recs);
                copy.list_reply.recs = recs;
        }
        if ((m->hdr.op & IPCB_OP_REPLY) && m->hdr.status == 0 &&
            (m->hdr.op & ~IPCB_OP_REPLY) == IPCB_OP_QUOTA) {
                cr_assert_leq(m->quota_reply.count, IPCB_QUOTA_RECS_MAX);
                for (unsigned i = 0; i < m->quota_reply.count; i++)
                        ipcb__quota_rec_at(m, i, &qrecs[i]);
                copy.quota_reply.recs = qrecs;
        }
        static ipcb_holder_rec hrecs[IPCB_HOLDERS_MAX];
        if ((m->hdr.op & IPCB_OP_REPLY) && m->hdr.status == 0 &&
            (m->hdr.op & ~IPCB_OP_REPLY) == IPCB_OP_HOLDERS) {
                cr_assert_leq(m->holders_reply.count, IPCB_HOLDERS_MAX);
                for (unsigned i = 0; i < m->holders_reply.count; i++)
                        ipcb__holder_rec_at(m, i, &hrecs[i]);
                copy.holders_reply.recs = hrecs;
        }
        n = ipcb__proto_encode(&copy, out, sizeof(out));
        cr_assert_eq(n, (ssize_t)len, "re-encode of op 0x%04x gave %zd bytes, input had %zu",
                     m->hdr.op, n, len);
        cr_assert_eq(memcmp(out, buf, len), 0, "re-encode of op 0x%04x differs from input",
                     m->hdr.op);
}

static bool name_inside(ipcb_name n, const uint8_t *buf, size_t len) {
        const uint8_t *p = (const uint8_t *)n.ptr;
        return n.len == 0 || (p >= buf && p + n.len <= buf + len);
}

/* Decode (in place: names stay valid), expect success, check the re-encode. */
static void decode_ok(const uint8_t *buf, size_t len, unsigned nfds, ipcb_msg *ret) {
        int r = ipcb__proto_decode(buf, len, nfds, ret);

        cr_assert_eq(r, 0, "decode of a valid op 0x%04x (len %zu, nfds %u) returned %d",
                     get_u16(buf), len, nfds, r);
        check_reencode(buf, len, ret);
}

/* ---- sample messages: one valid message of every kind ---- */

/* Initializers (not objects), so that static tables can use them. */
#define NAME_INIT(s) { .ptr = (s), .len = (uint16_t)(sizeof(s) - 1) }
#define REC_A                                                                               \
        {                                                                                   \
                .kind = IPCB_KIND_SHM, .name = NAME_INIT("alpha"), .uid = 1000,             \
                .gid = 1001, .mode = 0640, .flags = IPCB_WF_PERSISTENT, .seals = 0xf,       \
                .handles = 3, .id = 0x0102030405060708ull, .size = 1ull << 40,              \
        }
#define REC_B                                                                               \
        {                                                                                   \
                .kind = IPCB_KIND_SEM, .name = NAME_INIT("b"), .uid = 0, .gid = 0,          \
                .mode = 0600, .flags = IPCB_WF_UNLINKED, .seals = 0x1f, .handles = 1,       \
                .id = 9, .size = 4096, .sem_value = 7, .sem_max = 0xffffffffu,              \
                .sem_undo_held = 2,                                                         \
        }
#define REC_C                                                                               \
        {                                                                                   \
                .kind = IPCB_KIND_SHM, .name = NAME_INIT("x.y:z@w+v-u_t"),                  \
                .uid = 0xfffffffeu, .gid = 0xfffffffeu, .mode = 0777,                       \
                .flags = IPCB_WF_GROWABLE, .seals = 0x3f, .handles = 0xffffffffu,           \
                .id = UINT64_MAX, .size = UINT64_MAX,                                       \
        }
static const ipcb_stat_rec rec_a = REC_A, rec_b = REC_B;
static const ipcb_stat_rec recs3[3] = { REC_A, REC_B, REC_C };

typedef struct sample {
        const char *what;
        ipcb_msg m;
} sample;

static const ipcb_quota_rec quota2[2] = {
        { .uid = 0, .flags = IPCB_QR_EXEMPT, .objects = 3, .bytes = 12288, .handles = 4, .connections = 1 },
        { .uid = 61002, .flags = 0, .objects = UINT64_MAX, .bytes = 1, .handles = 0xffffffffu,
          .connections = 7 },
};

static const ipcb_holder_rec holders2[2] = {
        { .pid = 1, .uid = 0, .handles = 1 },
        { .pid = 0x7fffffffu, .uid = 61002, .handles = 0xffffffffu },
};

static const sample samples[] = {
        { "HELLO", { .hdr = { .op = IPCB_OP_HELLO, .id = 1 }, .hello = { 1, 0xa5a5a5a5u } } },
        { "HELLO reply", { .hdr = { .op = REPLY(IPCB_OP_HELLO), .id = 1 },
                           .hello_reply = { 1, 0x80000001u, IPCB_MSG_MAX, IPCB_NAME_MAX,
                                            IPCB_FDS_MAX } } },
        { "CLOSE", { .hdr = { .op = IPCB_OP_CLOSE, .id = 2 },
                     .close = { 0xfedcba9876543210ull } } },
        { "CLOSE reply", { .hdr = { .op = REPLY(IPCB_OP_CLOSE), .id = 2 } } },
        { "UNLINK", { .hdr = { .op = IPCB_OP_UNLINK, .id = 3 },
                      .unlink = { IPCB_KIND_SHM, NAME_INIT("seg") } } },
        { "UNLINK reply", { .hdr = { .op = REPLY(IPCB_OP_UNLINK), .id = 3 } } },
        { "STAT", { .hdr = { .op = IPCB_OP_STAT, .id = 0xffffffffu },
                    .stat = { IPCB_KIND_SEM, NAME_INIT("a-sem") } } },
        { "STAT reply", { .hdr = { .op = REPLY(IPCB_OP_STAT), .id = 0xffffffffu },
                          .stat_reply = REC_B } },
        { "LIST", { .hdr = { .op = IPCB_OP_LIST, .id = 5 },
                    .list = { IPCB_KIND_ANY, 100, 0x1122334455667788ull } } },
        { "LIST reply, 0 records", { .hdr = { .op = REPLY(IPCB_OP_LIST), .id = 5 },
                                     .list_reply = { .next_cursor = 0, .more = 0, .count = 0 } } },
        { "LIST reply, 1 record", { .hdr = { .op = REPLY(IPCB_OP_LIST), .id = 6 },
                                    .list_reply = { .next_cursor = 0x0102030405060708ull,
                                                    .more = 1, .count = 1, .recs = &rec_a } } },
        { "LIST reply, 3 records", { .hdr = { .op = REPLY(IPCB_OP_LIST), .id = 7 },
                                     .list_reply = { .next_cursor = UINT64_MAX, .more = 0,
                                                     .count = 3, .recs = recs3 } } },
        { "SHM_CREATE", { .hdr = { .op = IPCB_OP_SHM_CREATE, .id = 8 },
                          .shm_create = { 1ull << 30, 0640, IPCB_WF_CREATE_MASK,
                                          NAME_INIT("my.segment") } } },
        { "SHM_OPEN", { .hdr = { .op = IPCB_OP_SHM_OPEN, .id = 9 },
                        .shm_open = { IPCB_WA_READ_WRITE, NAME_INIT("demo"),
                                      IPCB_WF_SHM_OPEN_MASK, 61001, 0x3fffffffu,
                                      0x0123456789abcdefull } } },
        { "SHM_CREATE reply", { .hdr = { .op = REPLY(IPCB_OP_SHM_CREATE), .id = 8, .nfds = 1 },
                                .shm_reply = { 1, 1ull << 30, 0x6, IPCB_WA_READ_WRITE, 0, 0, 0600 } } },
        { "SHM_OPEN reply", { .hdr = { .op = REPLY(IPCB_OP_SHM_OPEN), .id = 9, .nfds = 1 },
                              .shm_reply = { UINT64_MAX, 4096, 0x1f, IPCB_WA_READ_ONLY, 61002, 61100,
                                             0640 } } },
        { "SHM_LOCK_PAGE", { .hdr = { .op = IPCB_OP_SHM_LOCK_PAGE, .id = 12 },
                             .shm_lock_page = { 0x8000000000000001ull } } },
        { "SHM_LOCK_PAGE reply", { .hdr = { .op = REPLY(IPCB_OP_SHM_LOCK_PAGE), .id = 12,
                                            .nfds = 1 },
                                   .lock_reply = { 0xdeadbeefu, 0xfedcba9876543210ull } } },
        { "SEM_CREATE", { .hdr = { .op = IPCB_OP_SEM_CREATE, .id = 13 },
                          .sem_create = { 3, 10, 0600, IPCB_WF_SEM_CREATE_MASK,
                                          NAME_INIT("sem:1") } } },
        { "SEM_OPEN", { .hdr = { .op = IPCB_OP_SEM_OPEN, .id = 14 },
                        .sem_open = { IPCB_WF_UNDO, NAME_INIT("sem:1"), 0, 0 } } },
        { "SEM_OPEN reclaim", { .hdr = { .op = IPCB_OP_SEM_OPEN, .id = 20 },
                                .sem_open = { IPCB_WF_UNDO | IPCB_WF_RECLAIM | IPCB_WF_OWNED | 504u << 16,
                                              NAME_INIT("sem:1"), IPCB_WO_SELF, UINT64_MAX } } },
        { "SEM_CREATE reply", { .hdr = { .op = REPLY(IPCB_OP_SEM_CREATE), .id = 13, .nfds = 1 },
                                .sem_reply = { 5, 0, 0, 10, 3, 0, 0, 0600, 0 } } },
        { "SEM_OPEN reply", { .hdr = { .op = REPLY(IPCB_OP_SEM_OPEN), .id = 14, .nfds = 1 },
                              .sem_reply = { UINT64_MAX, 7, 0xfffffff0u, 0xffffffffu, 1, 61001, 61100,
                                             0666, 0x8877665544332211ull } } },
        { "SET_ACCESS", { .hdr = { .op = IPCB_OP_SET_ACCESS, .id = 15 },
                          .set_access = { IPCB_KIND_SHM, IPCB_SA_MASK, 0640, 61001, 61002,
                                          NAME_INIT("pub") } } },
        { "SET_ACCESS reply", { .hdr = { .op = REPLY(IPCB_OP_SET_ACCESS), .id = 15 } } },
        { "FREEZE", { .hdr = { .op = IPCB_OP_FREEZE, .id = 16 },
                      .freeze = { IPCB_KIND_SHM, NAME_INIT("pub") } } },
        { "FREEZE reply", { .hdr = { .op = REPLY(IPCB_OP_FREEZE), .id = 16 },
                            .freeze_reply = { 0x2e } } },
        { "SHM_REGISTER", { .hdr = { .op = IPCB_OP_SHM_REGISTER, .id = 17, .nfds = 1 },
                            .shm_register = { 0644, IPCB_WF_PERSISTENT, NAME_INIT("reg") } } },
        { "SHM_REGISTER reply", { .hdr = { .op = REPLY(IPCB_OP_SHM_REGISTER), .id = 17 },
                                  .shm_reply = { 3, 1 << 20, 0x6, IPCB_WA_READ_WRITE, 61001, 61001,
                                                 0644 } } },
        { "MEMFD", { .hdr = { .op = IPCB_OP_MEMFD, .id = 18 }, .memfd = { 1 << 20, 0x6 } } },
        { "MEMFD reply", { .hdr = { .op = REPLY(IPCB_OP_MEMFD), .id = 18, .nfds = 1 },
                           .memfd_reply = { 1 << 20, 0x26 } } },
        { "QUOTA", { .hdr = { .op = IPCB_OP_QUOTA, .id = 19 },
                     .quota = { 61001, IPCB_QF_ALL, 7 } } },
        { "QUOTA reply", { .hdr = { .op = REPLY(IPCB_OP_QUOTA), .id = 19 },
                           .quota_reply = { 1000, 1ull << 32, 4096, 64, 61002, 2, 1, quota2, NULL } } },
        { "HOLDERS", { .hdr = { .op = IPCB_OP_HOLDERS, .id = 20 },
                       .holders = { IPCB_KIND_SHM, NAME_INIT("held") } } },
        { "HOLDERS reply", { .hdr = { .op = REPLY(IPCB_OP_HOLDERS), .id = 20 },
                             .holders_reply = { 2, 300, 0x0102030405060708ull, holders2, NULL } } },
        { "HOLDERS reply, none", { .hdr = { .op = REPLY(IPCB_OP_HOLDERS), .id = 21 },
                                   .holders_reply = { 0, 0, 1, NULL, NULL } } },
        { "WATCH_ADD", { .hdr = { .op = IPCB_OP_WATCH_ADD, .id = 20 },
                         .watch_add = { IPCB_KIND_SHM, IPCB_WW_PREFIX, IPCB_WE_MASK,
                                        NAME_INIT("app.") } } },
        { "WATCH_ADD reply", { .hdr = { .op = REPLY(IPCB_OP_WATCH_ADD), .id = 20 },
                               .watch_reply = { 0x0102030405060708ull } } },
        { "WATCH_REMOVE", { .hdr = { .op = IPCB_OP_WATCH_REMOVE, .id = 21 },
                            .watch_remove = { 7 } } },
        { "WATCH_REMOVE reply", { .hdr = { .op = REPLY(IPCB_OP_WATCH_REMOVE), .id = 21 } } },
        { "WATCH_EVENT", { .hdr = { .op = REPLY(IPCB_OP_WATCH_EVENT), .id = 0 },
                           .watch_event = { 7, IPCB_WE_ACCESS, IPCB_KIND_SEM, UINT64_MAX,
                                            61001, 61002, 0640, 0x2f, NAME_INIT("app.sem") } } },
        { "WATCH_EVENT overflow", { .hdr = { .op = REPLY(IPCB_OP_WATCH_EVENT), .id = 0 },
                                    .watch_event = { .event = IPCB_WE_OVERFLOW } } },
        { "SEM_POLL", { .hdr = { .op = IPCB_OP_SEM_POLL, .id = 22 }, .sem_poll = { 0x1234 } } },
        { "SEM_POLL reply", { .hdr = { .op = REPLY(IPCB_OP_SEM_POLL), .id = 22, .nfds = 1 },
                              .sem_poll_reply = { 3 } } },
        { "SEM_NOTIFY", { .hdr = { .op = IPCB_OP_SEM_NOTIFY, .id = 23 }, .sem_poll = { 9 } } },
        { "SEM_NOTIFY reply", { .hdr = { .op = REPLY(IPCB_OP_SEM_NOTIFY), .id = 23, .nfds = 1 } } },
        { "LOCK_POLL", { .hdr = { .op = IPCB_OP_LOCK_POLL, .id = 24 }, .sem_poll = { 0x5678 } } },
        { "LOCK_POLL reply", { .hdr = { .op = REPLY(IPCB_OP_LOCK_POLL), .id = 24, .nfds = 1 },
                               .sem_poll_reply = { 2 } } },
        { "LOCK_NOTIFY", { .hdr = { .op = IPCB_OP_LOCK_NOTIFY, .id = 25 }, .sem_poll = { 10 } } },
        { "LOCK_NOTIFY reply", { .hdr = { .op = REPLY(IPCB_OP_LOCK_NOTIFY), .id = 25, .nfds = 1 } } },
        { "SEM_OWE", { .hdr = { .op = IPCB_OP_SEM_OWE, .id = 26 },
                       .sem_owe = { 0x0102030405060708ull, 3, 0xfffffffeu } } },
        { "SEM_OWE reply", { .hdr = { .op = REPLY(IPCB_OP_SEM_OWE), .id = 26 },
                             .sem_owe_reply = { 0x1122334455667788ull } } },
        { "error reply -ENOENT", { .hdr = { .op = REPLY(IPCB_OP_SHM_OPEN), .id = 10,
                                            .status = -ENOENT } } },
        { "error reply -EOPNOTSUPP to an unknown op",
          { .hdr = { .op = REPLY(0x0777), .id = 11, .status = -EOPNOTSUPP } } },
};
#define N_SAMPLES (sizeof(samples) / sizeof(samples[0]))

static bool is_request(const ipcb_msg *m) {
        return !(m->hdr.op & IPCB_OP_REPLY);
}

static bool is_error_reply(const ipcb_msg *m) {
        return (m->hdr.op & IPCB_OP_REPLY) && m->hdr.status != 0;
}

static unsigned base_op(const ipcb_msg *m) {
        return m->hdr.op & ~IPCB_OP_REPLY;
}

/* Offsets (from the start of the datagram) of every reserved byte that the
 * decoder requires to be zero. */
static size_t pad_offsets(const ipcb_msg *m, size_t *out) {
        size_t n = 0, off;

        if (is_error_reply(m))
                return 0;
        switch (base_op(m) | (is_request(m) ? 0 : IPCB_OP_REPLY)) {
        case IPCB_OP_UNLINK:
        case IPCB_OP_STAT:
        case IPCB_OP_HOLDERS:
        case IPCB_OP_LIST:
                out[n++] = 17;
                break;
        case IPCB_OP_SHM_CREATE:
        case IPCB_OP_SEM_CREATE:
                out[n++] = 16 + 18;
                out[n++] = 16 + 19;
                break;
        case IPCB_OP_SHM_OPEN:
                out[n++] = 16 + 6;
                out[n++] = 16 + 7;
                for (size_t i = 20; i < 24; i++)
                        out[n++] = 16 + i;
                break;
        case IPCB_OP_SEM_OPEN:
                out[n++] = 16 + 6;
                out[n++] = 16 + 7;
                for (size_t i = 12; i < 16; i++)
                        out[n++] = 16 + i;
                break;
        case REPLY(IPCB_OP_SHM_LOCK_PAGE):
                for (size_t i = 4; i < 8; i++)
                        out[n++] = 16 + i;
                break;
        case REPLY(IPCB_OP_SHM_CREATE):
        case REPLY(IPCB_OP_SHM_OPEN):
        case REPLY(IPCB_OP_SHM_REGISTER):
        case REPLY(IPCB_OP_SEM_CREATE):
        case REPLY(IPCB_OP_SEM_OPEN):
                for (size_t i = 36; i < 40; i++)
                        out[n++] = 16 + i;
                break;
        case REPLY(IPCB_OP_STAT):
                out[n++] = 16 + 1;
                break;
        case REPLY(IPCB_OP_WATCH_EVENT):
                out[n++] = 16 + 13;
                break;
        case REPLY(IPCB_OP_SEM_POLL):
        case REPLY(IPCB_OP_LOCK_POLL):
                for (size_t i = 4; i < 8; i++)
                        out[n++] = 16 + i;
                break;
        case REPLY(IPCB_OP_LIST):
                out[n++] = 16 + 11;
                off = 16 + IPCB_LIST_REPLY_FIXED;
                for (unsigned i = 0; i < m->list_reply.count; i++) {
                        out[n++] = off + 1;
                        off += ipcb_stat_rec_size(&m->list_reply.recs[i]);
                }
                break;
        }
        return n;
}

static const sample *find_sample(const char *what) {
        for (size_t s = 0; s < N_SAMPLES; s++)
                if (strcmp(samples[s].what, what) == 0)
                        return &samples[s];
        cr_assert_fail("no sample \"%s\"", what);
        return NULL;
}

/* ---- the name rule ---- */

Test(name, valid_single_char, .timeout = 30) {
        const char *ok = "abcxyzABCXYZ0189_:@+-";
        for (const char *p = ok; *p; p++)
                cr_assert_eq(ipcb__name_check(p, 1), 0, "one-byte name '%c' refused", *p);
}

Test(name, valid_255_bytes, .timeout = 30) {
        char buf[IPCB_NAME_MAX];
        memset(buf, 'a', sizeof(buf));
        cr_assert_eq(ipcb__name_check(buf, IPCB_NAME_MAX), 0, "255-byte name refused");
        /* the length counts, not a terminator: no NUL is read */
        buf[IPCB_NAME_MAX - 1] = '.';
        cr_assert_eq(ipcb__name_check(buf, IPCB_NAME_MAX), 0, "255-byte name ending in '.'");
}

Test(name, valid_all_punctuation, .timeout = 30) {
        const char *name = "a._:@+-Z9";
        cr_assert_eq(ipcb__name_check(name, strlen(name)), 0);
        cr_assert_eq(ipcb__name_check("-", 1), 0, "leading '-' is allowed");
        cr_assert_eq(ipcb__name_check("_x", 2), 0);
        cr_assert_eq(ipcb__name_check("@+:", 3), 0);
}

Test(name, valid_inner_dots, .timeout = 30) {
        cr_assert_eq(ipcb__name_check("a.b", 3), 0);
        cr_assert_eq(ipcb__name_check("a..b", 4), 0);
        cr_assert_eq(ipcb__name_check("a.", 2), 0, "trailing dot is allowed");
        cr_assert_eq(ipcb__name_check("com.example.frame-buffer:0", 26), 0);
}

Test(name, valid_len_limits_the_check, .timeout = 30) {
        /* only len bytes are looked at: what follows is not part of the name */
        cr_assert_eq(ipcb__name_check("ab/c", 2), 0);
        cr_assert_eq(ipcb__name_check("ab\0", 2), 0);
}

Test(name, invalid_empty_and_null, .timeout = 30) {
        cr_assert_eq(ipcb__name_check("", 0), -EINVAL);
        cr_assert_eq(ipcb__name_check("abc", 0), -EINVAL, "len 0 is empty whatever the pointer");
        cr_assert_eq(ipcb__name_check(NULL, 0), -EINVAL);
        cr_assert_eq(ipcb__name_check(NULL, 5), -EINVAL);
}

Test(name, invalid_leading_dot, .timeout = 30) {
        cr_assert_eq(ipcb__name_check(".", 1), -EINVAL);
        cr_assert_eq(ipcb__name_check("..", 2), -EINVAL);
        cr_assert_eq(ipcb__name_check(".hidden", 7), -EINVAL);
}

Test(name, invalid_too_long, .timeout = 30) {
        static char buf[65536];
        memset(buf, 'a', sizeof(buf));
        cr_assert_eq(ipcb__name_check(buf, IPCB_NAME_MAX + 1), -ENAMETOOLONG, "256 bytes");
        cr_assert_eq(ipcb__name_check(buf, 65535), -ENAMETOOLONG);
        cr_assert_eq(ipcb__name_check(buf, sizeof(buf)), -ENAMETOOLONG);
        /* length is judged before content */
        memset(buf, '/', IPCB_NAME_MAX + 1);
        cr_assert_eq(ipcb__name_check(buf, IPCB_NAME_MAX + 1), -ENAMETOOLONG);
        buf[0] = '.';
        cr_assert_eq(ipcb__name_check(buf, IPCB_NAME_MAX + 1), -ENAMETOOLONG);
}

Test(name, invalid_forbidden_bytes, .timeout = 30) {
        static const struct { const char *name; size_t len; const char *why; } bad[] = {
                { "a b", 3, "space" },      { "a/b", 3, "slash" },
                { "/", 1, "lone slash" },   { "a\0b", 3, "NUL inside" },
                { "\0", 1, "lone NUL" },    { "a\x80", 2, "0x80" },
                { "\xff", 1, "0xff" },      { "caf\xc3\xa9", 5, "UTF-8" },
                { "a*", 2, "star" },        { "a\n", 2, "newline" },
                { "a\t", 2, "tab" },        { "a\x7f", 2, "DEL" },
                { "a\\b", 3, "backslash" }, { "a,b", 3, "comma" },
                { "a=b", 3, "equals" },     { "a~b", 3, "tilde" },
                { "a%b", 3, "percent" },
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                cr_assert_eq(ipcb__name_check(bad[i].name, bad[i].len), -EINVAL,
                             "name with %s accepted", bad[i].why);
}

Test(name, every_byte_value, .timeout = 30) {
        for (unsigned c = 0; c < 256; c++) {
                char name[3] = { 'a', (char)c, 'a' };
                bool want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                            (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
                            c == '@' || c == '+' || c == '-';
                cr_assert_eq(ipcb__name_check(name, 3), want ? 0 : -EINVAL,
                             "byte 0x%02x inside a name: want %s", c, want ? "ok" : "-EINVAL");
                cr_assert_eq(ipcb__name_check(name + 1, 1),
                             want && c != '.' ? 0 : -EINVAL, "name of byte 0x%02x alone", c);
        }
}

/* ---- round trips ---- */

/* Encode in, decode it (with the fds the header declares), check the header
 * and the re-encode; *out keeps names pointing into buf. */
static size_t roundtrip(const ipcb_msg *in, uint8_t *buf, ipcb_msg *out) {
        size_t len = encode_ok(in, buf, IPCB_MSG_MAX);

        decode_ok(buf, len, in->hdr.status < 0 ? 0 : in->hdr.nfds, out);
        cr_assert_eq(out->hdr.op, in->hdr.op);
        cr_assert_eq(out->hdr.id, in->hdr.id);
        cr_assert_eq(out->hdr.status, in->hdr.status);
        cr_assert_eq(out->hdr.nfds, in->hdr.status < 0 ? 0 : in->hdr.nfds,
                     "an error reply carries no fds");
        cr_assert_eq(out->hdr.flags, 0);
        cr_assert_eq(out->hdr.len, len - IPCB_HDR_SIZE);
        return len;
}

static void assert_name_eq(ipcb_name got, ipcb_name want, const char *what) {
        cr_assert_eq(got.len, want.len, "%s: name length %u, want %u", what, got.len, want.len);
        cr_assert_eq(memcmp(got.ptr, want.ptr, want.len), 0, "%s: name bytes differ", what);
}

static void assert_rec_eq(const ipcb_stat_rec *got, const ipcb_stat_rec *want) {
        cr_assert_eq(got->kind, want->kind);
        assert_name_eq(got->name, want->name, "stat record");
        cr_assert_eq(got->uid, want->uid);
        cr_assert_eq(got->gid, want->gid);
        cr_assert_eq(got->mode, want->mode);
        cr_assert_eq(got->flags, want->flags);
        cr_assert_eq(got->seals, want->seals);
        cr_assert_eq(got->handles, want->handles);
        cr_assert_eq(got->id, want->id);
        cr_assert_eq(got->size, want->size);
        cr_assert_eq(got->sem_value, want->sem_value);
        cr_assert_eq(got->sem_max, want->sem_max);
        cr_assert_eq(got->sem_undo_held, want->sem_undo_held);
}

Test(roundtrip, hello, .timeout = 30) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg out;
        size_t len = roundtrip(&find_sample("HELLO")->m, buf, &out);
        cr_assert_eq(len, 24u);
        cr_assert_eq(out.hello.version, 1u);
        cr_assert_eq(out.hello.caps, 0xa5a5a5a5u);
}

Test(roundtrip, hello_reply, .timeout = 30) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg out;
        size_t len = roundtrip(&find_sample("HELLO reply")->m, buf, &out);
        cr_assert_eq(len, 36u);
        cr_assert_eq(out.hello_reply.version, 1u);
        cr_assert_eq(out.hello_reply.caps, 0x80000001u);
        cr_assert_eq(out.hello_reply.msg_max, IPCB_MSG_MAX);
        cr_assert_eq(out.hello_reply.name_max, IPCB_NAME_MAX);
        cr_assert_eq(out.hello_reply.fds_max, IPCB_FDS_MAX);
}

Test(roundtrip, close_and_reply, .timeout = 30) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg out;
        cr_assert_eq(roundtrip(&find_sample("CLOSE")->m, buf, &out), 24u);
        cr_assert_eq(out.close.handle, 0xfedcba9876543210ull);
        cr_assert_eq(roundtrip(&find_sample("CLOSE reply")->m, buf, &out), 16u,
                     "CLOSE reply has no payload");
}

Test(roundtrip, unlink_and_reply, .timeout = 30) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg out;
        cr_assert_eq(roundtrip(&find_sample("UNLINK")->m, buf, &out), 16u + 4 + 3);
        cr_assert_eq(out.unlink.kind, IPCB_KIND_SHM);
        assert_name_eq(out.unlink.name, NAME("seg"), "UNLINK");
        cr_assert_eq((const uint8_t *)out.unlink.name.ptr, buf + 20, "name points into the buffer");
        cr_assert_eq(roundtrip(&find_sample("UNLINK reply")->m, buf, &out), 16u,
                     "UNLINK reply has no payload");
}

Test(roundtrip, stat_and_reply, .timeout = 30) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg out;
        roundtrip(&find_sample("STAT")->m, buf, &out);
        cr_assert_eq(out.stat.kind, IPCB_KIND_SEM);
        assert_name_eq(out.stat.name, NAME("a-sem"), "STAT");
        cr_assert_eq(roundtrip(&find_sample("STAT reply")->m, buf, &out), 16u + IPCB_STAT_FIXED + 1);
        assert_rec_eq(&out.stat_reply, &rec_b);
}

Test(roundtrip, stat_reply_name_255, .timeout = 30) {
        uint8_t buf[IPCB_MSG_MAX];
        char name[IPCB_NAME_MAX];
        ipcb_msg in = find_sample("STAT reply")->m, out;
        memset(name, 'n', sizeof(name));
        in.stat_reply.name = (ipcb_name){ name, IPCB_NAME_MAX };
        cr_assert_eq(roundtrip(&in, buf, &out), 16u + IPCB_STAT_FIXED + IPCB_NAME_MAX);
        assert_rec_eq(&out.stat_reply, &in.stat_reply);
}

Test(roundtrip, list, .timeout = 30) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg out;
        cr_assert_eq(roundtrip(&find_sample("LIST")->m, buf, &out), 28u);
        cr_assert_eq(out.list.kind, IPCB_KIND_ANY);
        cr_assert_eq(out.list.max, 100);
        cr_assert_eq(out.list.cursor, 0x1122334455667788ull);
}

Test(roundtrip, list_reply_0, .timeout = 30) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg out;
        ipcb_stat_rec r;
        cr_assert_eq(roundtrip(&find_sample("LIST reply, 0 records")->m, buf, &out),
                     16u + IPCB_LIST_REPLY_FIXED);
        cr_assert_eq(out.list_reply.count, 0);
        cr_assert_eq(out.list_reply.more, 0);
        cr_assert_null(out.list_reply.recs, "decode leaves recs NULL");
        cr_assert_eq(ipcb__list_iter_next(&out.list_reply.iter, &r), 0, "no record to iterate");
}

Test(roundtrip, list_reply_1, .timeout = 30) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg out;
        ipcb_stat_rec r;
        roundtrip(&find_sample("LIST reply, 1 record")->m, buf, &out);
        cr_assert_eq(out.list_reply.count, 1);
        cr_assert_eq(out.list_reply.more, 1);
        cr_assert_eq(out.list_reply.next_cursor, 0x0102030405060708ull);
        cr_assert_eq(ipcb__list_iter_next(&out.list_reply.iter, &r), 1);
        assert_rec_eq(&r, &rec_a);
        cr_assert_eq(ipcb__list_iter_next(&out.list_reply.iter, &r), 0, "only one record");
        cr_assert_eq(ipcb__list_iter_next(&out.list_reply.iter, &r), 0, "end is sticky");
}

Test(roundtrip, list_reply_3, .timeout = 30) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg out;
        ipcb_stat_rec r;
        roundtrip(&find_sample("LIST reply, 3 records")->m, buf, &out);
        cr_assert_eq(out.list_reply.count, 3);
        for (unsigned i = 0; i < 3; i++) {
                cr_assert_eq(ipcb__list_iter_next(&out.list_reply.iter, &r), 1, "record %u", i);
                assert_rec_eq(&r, &recs3[i]);
        }
        cr_assert_eq(ipcb__list_iter_next(&out.list_reply.iter, &r), 0);
}

Test(roundtrip, list_reply_many, .timeout = 30) {
        static ipcb_stat_rec recs[100];
        static char names[100][8];
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg in = { .hdr = { .op = REPLY(IPCB_OP_LIST), .id = 77 } }, out;
        ipcb_stat_rec r;
        unsigned i = 0;

        for (i = 0; i < 100; i++) {
                int n = snprintf(names[i], sizeof(names[i]), "o%u", i);
                recs[i] = (ipcb_stat_rec){ .kind = (uint8_t)(1 + i % 2),
                                           .name = { names[i], (uint16_t)n },
                                           .id = 1000 + i, .size = i * 4096ull, .mode = 0600,
                                           .handles = i, .sem_value = i };
        }
        in.list_reply.next_cursor = 1099;
        in.list_reply.more = 1;
        in.list_reply.count = 100;
        in.list_reply.recs = recs;
        roundtrip(&in, buf, &out);
        cr_assert_eq(out.list_reply.count, 100);
        for (i = 0; ipcb__list_iter_next(&out.list_reply.iter, &r); i++) {
                cr_assert_lt(i, 100u);
                assert_rec_eq(&r, &recs[i]);
        }
        cr_assert_eq(i, 100u, "iterated %u records", i);
}

Test(roundtrip, shm_create, .timeout = 30) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg out;
        cr_assert_eq(roundtrip(&find_sample("SHM_CREATE")->m, buf, &out), 16u + 20 + 10);
        cr_assert_eq(out.shm_create.size, 1ull << 30);
        cr_assert_eq(out.shm_create.mode, 0640u);
        cr_assert_eq(out.shm_create.flags, IPCB_WF_CREATE_MASK);
        assert_name_eq(out.shm_create.name, NAME("my.segment"), "SHM_CREATE");
}

Test(roundtrip, shm_open, .timeout = 30) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg out;
        cr_assert_eq(roundtrip(&find_sample("SHM_OPEN")->m, buf, &out), 16u + 32 + 4);
        cr_assert_eq(out.shm_open.access, IPCB_WA_READ_WRITE);
        cr_assert_eq(out.shm_open.flags, IPCB_WF_SHM_OPEN_MASK);
        cr_assert_eq(out.shm_open.owner, 61001u);
        cr_assert_eq(out.shm_open.token, 0x3fffffffu);
        cr_assert_eq(out.shm_open.nonce, 0x0123456789abcdefull);
        assert_name_eq(out.shm_open.name, NAME("demo"), "SHM_OPEN");
}

Test(roundtrip, shm_replies, .timeout = 30) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg out;
        cr_assert_eq(roundtrip(&find_sample("SHM_CREATE reply")->m, buf, &out), 56u);
        cr_assert_eq(out.hdr.nfds, 1);
        cr_assert_eq(out.shm_reply.handle, 1u);
        cr_assert_eq(out.shm_reply.size, 1ull << 30);
        cr_assert_eq(out.shm_reply.seals, 0x6u);
        cr_assert_eq(out.shm_reply.access, IPCB_WA_READ_WRITE);
        cr_assert_eq(out.shm_reply.mode, 0600u);
        cr_assert_eq(roundtrip(&find_sample("SHM_OPEN reply")->m, buf, &out), 56u);
        cr_assert_eq(out.shm_reply.handle, UINT64_MAX);
        cr_assert_eq(out.shm_reply.size, 4096u);
        cr_assert_eq(out.shm_reply.seals, 0x1fu);
        cr_assert_eq(out.shm_reply.access, IPCB_WA_READ_ONLY);
        cr_assert_eq(out.shm_reply.uid, 61002u);
        cr_assert_eq(out.shm_reply.gid, 61100u);
        cr_assert_eq(out.shm_reply.mode, 0640u);
        cr_assert_eq(roundtrip(&find_sample("SHM_REGISTER reply")->m, buf, &out), 56u);
        cr_assert_eq(out.shm_reply.uid, 61001u);
        cr_assert_eq(out.shm_reply.mode, 0644u);
}

Test(roundtrip, shm_lock_page, .timeout = 30) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg out;
        cr_assert_eq(roundtrip(&find_sample("SHM_LOCK_PAGE")->m, buf, &out), 24u);
        cr_assert_eq(out.shm_lock_page.handle, 0x8000000000000001ull);
        cr_assert_eq(roundtrip(&find_sample("SHM_LOCK_PAGE reply")->m, buf, &out), 32u);
        cr_assert_eq(out.hdr.nfds, 1);
        cr_assert_eq(out.lock_reply.token, 0xdeadbeefu);
        cr_assert_eq(out.lock_reply.nonce, 0xfedcba9876543210ull);
}

Test(roundtrip, sem_create_open, .timeout = 30) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg out;
        cr_assert_eq(roundtrip(&find_sample("SEM_CREATE")->m, buf, &out), 16u + 20 + 5);
        cr_assert_eq(out.sem_create.initial, 3u);
        cr_assert_eq(out.sem_create.max, 10u);
        cr_assert_eq(out.sem_create.mode, 0600u);
        cr_assert_eq(out.sem_create.flags, IPCB_WF_SEM_CREATE_MASK);
        assert_name_eq(out.sem_create.name, NAME("sem:1"), "SEM_CREATE");
        cr_assert_eq(roundtrip(&find_sample("SEM_OPEN")->m, buf, &out), 16u + 24 + 5);
        cr_assert_eq(out.sem_open.flags, IPCB_WF_UNDO);
        assert_name_eq(out.sem_open.name, NAME("sem:1"), "SEM_OPEN");
        cr_assert_eq(roundtrip(&find_sample("SEM_OPEN reclaim")->m, buf, &out), 16u + 24 + 5);
        cr_assert_eq(IPCB_WF_RECLAIM_SLOT(out.sem_open.flags), 504u);
        cr_assert_eq(out.sem_open.owner, IPCB_WO_SELF);
        cr_assert_eq(out.sem_open.nonce, UINT64_MAX);
        assert_name_eq(out.sem_open.name, NAME("sem:1"), "SEM_OPEN reclaim");
        cr_assert_eq(roundtrip(&find_sample("SEM_OPEN reply")->m, buf, &out), 64u);
        cr_assert_eq(out.hdr.nfds, 1);
        cr_assert_eq(out.sem_reply.handle, UINT64_MAX);
        cr_assert_eq(out.sem_reply.slot, 7u);
        cr_assert_eq(out.sem_reply.seq, 0xfffffff0u);
        cr_assert_eq(out.sem_reply.max, 0xffffffffu);
        cr_assert_eq(out.sem_reply.value, 1u);
        cr_assert_eq(out.sem_reply.uid, 61001u);
        cr_assert_eq(out.sem_reply.gid, 61100u);
        cr_assert_eq(out.sem_reply.mode, 0666u);
        cr_assert_eq(out.sem_reply.nonce, 0x8877665544332211ull);
        cr_assert_eq(roundtrip(&find_sample("SEM_CREATE reply")->m, buf, &out), 64u);
        cr_assert_eq(out.sem_reply.handle, 5u);
}

Test(roundtrip, error_replies, .timeout = 30) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg out, in;
        cr_assert_eq(roundtrip(&find_sample("error reply -ENOENT")->m, buf, &out), 16u,
                     "error reply has no payload");
        cr_assert_eq(out.hdr.status, -ENOENT);
        cr_assert_eq(roundtrip(&find_sample("error reply -EOPNOTSUPP to an unknown op")->m, buf, &out),
                     16u);
        cr_assert_eq(out.hdr.op, REPLY(0x0777), "error reply to an unknown opcode decodes");
        /* an error reply drops the opcode's payload and fds, whatever m holds */
        in = find_sample("SHM_CREATE reply")->m;
        in.hdr.status = -EMFILE;
        cr_assert_eq(roundtrip(&in, buf, &out), 16u);
        cr_assert_eq(buf[2], 0, "error reply declares no fds");
        /* the whole errno range */
        in.hdr.status = -4095;
        roundtrip(&in, buf, &out);
        in.hdr.status = -1;
        roundtrip(&in, buf, &out);
}

Test(roundtrip, golden_bytes, .timeout = 30) {
        /* the examples in docs/protocol.md */
        static const uint8_t hello[] = { 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                                         0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00,
                                         0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 };
        static const uint8_t shm_open[] = { 0x02, 0x01, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
                                            0x00, 0x00, 0x00, 0x00, 0x24, 0x00, 0x00, 0x00,
                                            0x01, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
                                            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                            'd',  'e',  'm',  'o' };
        static const uint8_t err[] = { 0x02, 0x81, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
                                       0xfe, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00 };
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg m = { .hdr = { .op = IPCB_OP_HELLO, .id = 1 }, .hello = { 1, 0 } };

        cr_assert_eq(encode_ok(&m, buf, sizeof(buf)), sizeof(hello));
        cr_assert_arr_eq(buf, hello, sizeof(hello), "HELLO bytes differ from the doc");
        m = (ipcb_msg){ .hdr = { .op = IPCB_OP_SHM_OPEN, .id = 2 },
                        .shm_open = { IPCB_WA_READ_ONLY, NAME("demo") } };
        cr_assert_eq(encode_ok(&m, buf, sizeof(buf)), sizeof(shm_open));
        cr_assert_arr_eq(buf, shm_open, sizeof(shm_open), "SHM_OPEN bytes differ from the doc");
        m = (ipcb_msg){ .hdr = { .op = REPLY(IPCB_OP_SHM_OPEN), .id = 2, .status = -ENOENT } };
        cr_assert_eq(encode_ok(&m, buf, sizeof(buf)), sizeof(err));
        cr_assert_arr_eq(buf, err, sizeof(err), "error reply bytes differ from the doc");
        /* its SHM reply: seals 0x26, what SHM_CREATE gives (section 3) */
        static const uint8_t shm_reply[] = { 0x02, 0x81, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00,
                                             0x00, 0x00, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00,
                                             0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                             0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                             0x26, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                                             0xe8, 0x03, 0x00, 0x00, 0xe8, 0x03, 0x00, 0x00,
                                             0xa4, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 };
        m = (ipcb_msg){ .hdr = { .op = REPLY(IPCB_OP_SHM_OPEN), .nfds = 1, .id = 2 },
                        .shm_reply = { 1, 4096, 0x26, IPCB_WA_READ_ONLY, 1000, 1000, 0644 } };
        cr_assert_eq(encode_ok(&m, buf, sizeof(buf)), sizeof(shm_reply));
        cr_assert_arr_eq(buf, shm_reply, sizeof(shm_reply), "SHM reply bytes differ from the doc");
}

Test(roundtrip, list_page_holds_143_records, .timeout = 30) {
        /* docs/protocol.md, LIST: at most 143 records (1-byte names) per reply */
        static ipcb_stat_rec recs[MAX_RECS];
        static uint8_t buf[2 * IPCB_MSG_MAX];
        ipcb_msg m = { .hdr = { .op = REPLY(IPCB_OP_LIST), .id = 1 } }, out;

        cr_assert_geq(MAX_RECS, 144u);
        for (unsigned i = 0; i < 144; i++)
                recs[i] = (ipcb_stat_rec){ .kind = IPCB_KIND_SHM, .name = NAME("x"), .id = i + 1 };
        m.list_reply.recs = recs;
        m.list_reply.count = 143;
        cr_assert_eq(encode_ok(&m, buf, IPCB_MSG_MAX), IPCB_HDR_SIZE + IPCB_LIST_REPLY_FIXED + 143 * 57);
        decode_ok(buf, IPCB_HDR_SIZE + IPCB_LIST_REPLY_FIXED + 143 * 57, 0, &out);
        cr_assert_eq(out.list_reply.count, 143);
        m.list_reply.count = 144;
        cr_assert_lt(ipcb__proto_encode(&m, buf, sizeof(buf)), 0, "144 records fit in one message");
}

Test(roundtrip, stat_record_offsets, .timeout = 30) {
        /* docs/protocol.md's stat record table */
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg m = find_sample("STAT reply")->m;
        const uint8_t *r = buf + 16;
        encode_ok(&m, buf, sizeof(buf));
        cr_assert_eq(r[0], rec_b.kind);
        cr_assert_eq(r[1], 0);
        cr_assert_eq(get_u16(r + 2), rec_b.name.len);
        cr_assert_eq(get_u32(r + 4), rec_b.uid);
        cr_assert_eq(get_u32(r + 8), rec_b.gid);
        cr_assert_eq(get_u32(r + 12), rec_b.mode);
        cr_assert_eq(get_u32(r + 16), rec_b.flags);
        cr_assert_eq(get_u32(r + 20), rec_b.seals);
        cr_assert_eq(get_u32(r + 24), rec_b.handles);
        cr_assert_eq(get_u32(r + 28), (uint32_t)rec_b.id);
        cr_assert_eq(get_u32(r + 32), (uint32_t)(rec_b.id >> 32));
        cr_assert_eq(get_u32(r + 36), (uint32_t)rec_b.size);
        cr_assert_eq(get_u32(r + 40), (uint32_t)(rec_b.size >> 32));
        cr_assert_eq(get_u32(r + 44), rec_b.sem_value);
        cr_assert_eq(get_u32(r + 48), rec_b.sem_max);
        cr_assert_eq(get_u32(r + 52), rec_b.sem_undo_held);
        cr_assert_eq(r[56], 'b');
}

Test(roundtrip, watch_messages, .timeout = 30) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg out;
        size_t len;

        len = roundtrip(&find_sample("WATCH_ADD")->m, buf, &out);
        cr_assert_eq(len, 16u + 8 + 4);
        cr_assert_eq(out.watch_add.kind, IPCB_KIND_SHM);
        cr_assert_eq(out.watch_add.flags, IPCB_WW_PREFIX);
        cr_assert_eq(out.watch_add.events, IPCB_WE_MASK);
        assert_name_eq(out.watch_add.name, NAME("app."), "WATCH_ADD");
        cr_assert_eq(get_u32(buf + 20), IPCB_WE_MASK, "events at offset 4");
        len = roundtrip(&find_sample("WATCH_ADD reply")->m, buf, &out);
        cr_assert_eq(len, 24u);
        cr_assert_eq(out.watch_reply.watch, 0x0102030405060708ull);
        cr_assert_eq(roundtrip(&find_sample("WATCH_REMOVE")->m, buf, &out), 24u);
        cr_assert_eq(out.watch_remove.watch, 7u);
        cr_assert_eq(roundtrip(&find_sample("WATCH_REMOVE reply")->m, buf, &out), 16u);
        len = roundtrip(&find_sample("WATCH_EVENT")->m, buf, &out);
        cr_assert_eq(len, 16u + IPCB_WATCH_EVENT_FIXED + 7);
        cr_assert_eq(out.watch_event.watch, 7u);
        cr_assert_eq(out.watch_event.event, IPCB_WE_ACCESS);
        cr_assert_eq(out.watch_event.kind, IPCB_KIND_SEM);
        cr_assert_eq(out.watch_event.object, UINT64_MAX);
        cr_assert_eq(out.watch_event.uid, 61001u);
        cr_assert_eq(out.watch_event.gid, 61002u);
        cr_assert_eq(out.watch_event.mode, 0640u);
        cr_assert_eq(out.watch_event.seals, 0x2fu);
        assert_name_eq(out.watch_event.name, NAME("app.sem"), "WATCH_EVENT");
        /* docs/protocol.md's event table */
        cr_assert_eq(get_u32(buf + 16 + 8), IPCB_WE_ACCESS);
        cr_assert_eq(buf[16 + 12], IPCB_KIND_SEM);
        cr_assert_eq(get_u16(buf + 16 + 14), 7);
        cr_assert_eq(get_u32(buf + 16 + 24), 61001u);
        cr_assert_eq(get_u32(buf + 16 + 36), 0x2fu);
        cr_assert_eq(buf[16 + 40], 'a');
        len = roundtrip(&find_sample("WATCH_EVENT overflow")->m, buf, &out);
        cr_assert_eq(len, 16u + IPCB_WATCH_EVENT_FIXED);
        cr_assert_eq(out.watch_event.event, IPCB_WE_OVERFLOW);
}

Test(roundtrip, sem_poll, .timeout = 30) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg out;

        cr_assert_eq(roundtrip(&find_sample("SEM_POLL")->m, buf, &out), 24u);
        cr_assert_eq(out.sem_poll.handle, 0x1234u);
        cr_assert_eq(roundtrip(&find_sample("SEM_POLL reply")->m, buf, &out), 24u);
        cr_assert_eq(out.sem_poll_reply.pollers, 3u);
        cr_assert_eq(out.hdr.nfds, 1);
        cr_assert_eq(roundtrip(&find_sample("SEM_NOTIFY")->m, buf, &out), 24u);
        cr_assert_eq(out.sem_poll.handle, 9u);
        cr_assert_eq(roundtrip(&find_sample("SEM_NOTIFY reply")->m, buf, &out), 16u);
        cr_assert_eq(out.hdr.nfds, 1);
        cr_assert_eq(roundtrip(&find_sample("LOCK_POLL")->m, buf, &out), 24u);
        cr_assert_eq(out.hdr.op, IPCB_OP_LOCK_POLL);
        cr_assert_eq(out.sem_poll.handle, 0x5678u);
        cr_assert_eq(roundtrip(&find_sample("LOCK_POLL reply")->m, buf, &out), 24u);
        cr_assert_eq(out.sem_poll_reply.pollers, 2u);
        cr_assert_eq(out.hdr.nfds, 1);
        cr_assert_eq(roundtrip(&find_sample("LOCK_NOTIFY")->m, buf, &out), 24u);
        cr_assert_eq(out.sem_poll.handle, 10u);
        cr_assert_eq(roundtrip(&find_sample("LOCK_NOTIFY reply")->m, buf, &out), 16u);
        cr_assert_eq(out.hdr.nfds, 1);
}

Test(malformed, watch_event_shape, .timeout = 30) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg m = find_sample("WATCH_EVENT")->m, out;
        static const uint32_t bad_events[] = { 0, IPCB_WE_CREATED | IPCB_WE_UNLINKED, 0x40,
                                               IPCB_WE_OVERFLOW | IPCB_WE_CREATED };
        size_t len;

        for (size_t i = 0; i < sizeof(bad_events) / sizeof(bad_events[0]); i++) {
                m.watch_event.event = bad_events[i];
                len = encode_ok(&m, buf, sizeof(buf));
                cr_assert_eq(decode(buf, len, 0, &out), -EBADMSG, "event 0x%x", bad_events[i]);
        }
        m = find_sample("WATCH_EVENT")->m;
        m.watch_event.kind = 3;
        cr_assert_eq(decode(buf, encode_ok(&m, buf, sizeof(buf)), 0, &out), -EBADMSG, "kind 3");
        m.watch_event.kind = IPCB_KIND_ANY;
        cr_assert_eq(decode(buf, encode_ok(&m, buf, sizeof(buf)), 0, &out), -EBADMSG, "kind 0");
        m = find_sample("WATCH_EVENT")->m;
        m.watch_event.name = NAME("");
        cr_assert_eq(decode(buf, encode_ok(&m, buf, sizeof(buf)), 0, &out), -EBADMSG, "no name");
        m = find_sample("WATCH_EVENT")->m;
        m.watch_event.watch = 0;
        cr_assert_eq(decode(buf, encode_ok(&m, buf, sizeof(buf)), 0, &out), -EBADMSG, "watch 0");
        m = find_sample("WATCH_EVENT")->m;
        m.hdr.id = 5;
        cr_assert_eq(decode(buf, encode_ok(&m, buf, sizeof(buf)), 0, &out), -EBADMSG,
                     "an event answers no request");
        /* An overflow names nothing. */
        m = find_sample("WATCH_EVENT overflow")->m;
        m.watch_event.name = NAME("x");
        cr_assert_eq(decode(buf, encode_ok(&m, buf, sizeof(buf)), 0, &out), -EBADMSG);
        m = find_sample("WATCH_EVENT overflow")->m;
        m.watch_event.object = 1;
        cr_assert_eq(decode(buf, encode_ok(&m, buf, sizeof(buf)), 0, &out), -EBADMSG);
        /* A client cannot send an event: an unknown request. */
        m = find_sample("WATCH_EVENT")->m;
        m.hdr.op = IPCB_OP_WATCH_EVENT;
        m.hdr.id = 1;
        buf[0] = 0;
        len = encode_ok(&find_sample("HELLO")->m, buf, sizeof(buf));
        put_u16(buf, IPCB_OP_WATCH_EVENT);
        cr_assert_eq(decode(buf, len, 0, &out), -EOPNOTSUPP);
        cr_assert_eq(ipcb__proto_encode(&m, buf, sizeof(buf)), -EINVAL);
}

/* ---- malformed input ---- */

Test(malformed, too_short, .timeout = 30) {
        uint8_t buf[IPCB_HDR_SIZE] = { 0 };
        ipcb_msg m;
        for (size_t len = 0; len < IPCB_HDR_SIZE; len++)
                cr_assert_eq(decode(buf, len, 0, &m), -EBADMSG, "len %zu", len);
        cr_assert_eq(ipcb__proto_decode(NULL, 0, 0, &m), -EBADMSG, "NULL buffer");
        cr_assert_eq(ipcb__proto_decode(NULL, 24, 0, &m), -EBADMSG, "NULL buffer, len 24");
}

Test(malformed, too_long, .timeout = 30) {
        /* a well-formed-looking CLOSE reply of IPCB_MSG_MAX + 1 bytes */
        static uint8_t buf[IPCB_MSG_MAX + 16];
        ipcb_msg m;
        memset(buf, 0, sizeof(buf));
        put_u16(buf, REPLY(IPCB_OP_CLOSE));
        put_u32(buf + 12, IPCB_MSG_MAX + 1 - IPCB_HDR_SIZE);
        cr_assert_eq(decode(buf, IPCB_MSG_MAX + 1, 0, &m), -EBADMSG);
        put_u32(buf + 12, sizeof(buf) - IPCB_HDR_SIZE);
        cr_assert_eq(decode(buf, sizeof(buf), 0, &m), -EBADMSG);
        /* SIZE_MAX must not wrap the len comparison */
        cr_assert_eq(ipcb__proto_decode(buf, SIZE_MAX, 0, &m), -EBADMSG);
}

Test(malformed, header_len_mismatch, .timeout = 30) {
        for (size_t s = 0; s < N_SAMPLES; s++) {
                uint8_t buf[IPCB_MSG_MAX];
                const ipcb_msg *in = &samples[s].m;
                size_t len = encode_ok(in, buf, sizeof(buf));
                uint32_t plen = (uint32_t)(len - IPCB_HDR_SIZE);
                unsigned nfds = buf[2];
                ipcb_msg m;
                static const int64_t delta[] = { -1, 1, 2, 100, -(int64_t)IPCB_MSG_MAX,
                                                 (int64_t)IPCB_MSG_MAX };

                for (size_t d = 0; d < sizeof(delta) / sizeof(delta[0]); d++) {
                        put_u32(buf + 12, (uint32_t)(plen + delta[d]));
                        cr_assert_eq(decode(buf, len, nfds, &m), -EBADMSG,
                                     "%s: header len %+lld off", samples[s].what,
                                     (long long)delta[d]);
                }
                put_u32(buf + 12, UINT32_MAX);
                cr_assert_eq(decode(buf, len, nfds, &m), -EBADMSG, "%s: len 0xffffffff",
                             samples[s].what);
                put_u32(buf + 12, plen);
                cr_assert_eq(decode(buf, len, nfds, &m), 0, "%s: restored", samples[s].what);
        }
}

Test(malformed, nonzero_flags, .timeout = 30) {
        for (size_t s = 0; s < N_SAMPLES; s++) {
                uint8_t buf[IPCB_MSG_MAX];
                size_t len = encode_ok(&samples[s].m, buf, sizeof(buf));
                ipcb_msg m;
                for (unsigned bit = 0; bit < 8; bit++) {
                        buf[3] = (uint8_t)(1u << bit);
                        /* NOREPLY is the one flag, and only on a CLOSE request */
                        if (buf[3] == IPCB_HF_NOREPLY && samples[s].m.hdr.op == IPCB_OP_CLOSE)
                                continue;
                        cr_assert_eq(decode(buf, len, buf[2], &m), -EBADMSG,
                                     "%s: flags 0x%02x", samples[s].what, buf[3]);
                }
        }
        /* flags are checked before the opcode */
        uint8_t buf[16] = { 0x06, 0x00, 0x00, 0x01 };
        ipcb_msg m;
        cr_assert_eq(decode(buf, 16, 0, &m), -EBADMSG, "unknown op with flags");
}

Test(roundtrip, close_noreply, .timeout = 30) {
        ipcb_msg req = { .hdr = { .op = IPCB_OP_CLOSE, .id = 9, .flags = IPCB_HF_NOREPLY } }, m;
        uint8_t buf[IPCB_MSG_MAX];
        size_t len;

        req.close.handle = 0x100000002ull;
        len = encode_ok(&req, buf, sizeof(buf));
        cr_assert_eq(buf[3], IPCB_HF_NOREPLY);
        cr_assert_eq(decode(buf, len, 0, &m), 0);
        cr_assert_eq(m.hdr.flags, IPCB_HF_NOREPLY);
        cr_assert_eq(m.close.handle, 0x100000002ull);
        /* the encoder drops the flag on anything but CLOSE */
        ipcb_msg hello = { .hdr = { .op = IPCB_OP_HELLO, .flags = IPCB_HF_NOREPLY } };
        len = encode_ok(&hello, buf, sizeof(buf));
        cr_assert_eq(buf[3], 0);
}

Test(malformed, nfds_mismatch, .timeout = 30) {
        for (size_t s = 0; s < N_SAMPLES; s++) {
                uint8_t buf[IPCB_MSG_MAX];
                size_t len = encode_ok(&samples[s].m, buf, sizeof(buf));
                unsigned hdr_nfds = buf[2];
                ipcb_msg m;
                /* header says one thing, the socket delivered another */
                for (unsigned n = 0; n <= IPCB_FDS_MAX + 2; n++) {
                        if (n == hdr_nfds)
                                continue;
                        cr_assert_eq(decode(buf, len, n, &m), -EBADMSG,
                                     "%s: header nfds %u, %u fds arrived", samples[s].what,
                                     hdr_nfds, n);
                }
                cr_assert_eq(decode(buf, len, 256 + hdr_nfds, &m), -EBADMSG,
                             "%s: nfds argument must not be truncated to 8 bits",
                             samples[s].what);
        }
}

Test(malformed, nfds_above_max, .timeout = 30) {
        /* a header claiming 5..255 fds, with that many "arrived", is refused
         * whatever the message */
        for (size_t s = 0; s < N_SAMPLES; s++) {
                uint8_t buf[IPCB_MSG_MAX];
                size_t len = encode_ok(&samples[s].m, buf, sizeof(buf));
                ipcb_msg m;
                for (unsigned n = IPCB_FDS_MAX + 1; n < 256; n++) {
                        buf[2] = (uint8_t)n;
                        cr_assert_eq(decode(buf, len, n, &m), -EBADMSG, "%s: %u fds",
                                     samples[s].what, n);
                }
        }
        uint8_t unk[16] = { 0x06, 0x00, IPCB_FDS_MAX + 1 };
        ipcb_msg m;
        cr_assert_eq(decode(unk, 16, IPCB_FDS_MAX + 1, &m), -EBADMSG, "unknown op, 5 fds");
}

Test(malformed, request_with_status, .timeout = 30) {
        static const int32_t st[] = { -1, -ENOENT, 1, INT32_MIN, INT32_MAX };
        for (size_t s = 0; s < N_SAMPLES; s++) {
                if (!is_request(&samples[s].m))
                        continue;
                uint8_t buf[IPCB_MSG_MAX];
                size_t len = encode_ok(&samples[s].m, buf, sizeof(buf));
                ipcb_msg m;
                for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
                        put_u32(buf + 8, (uint32_t)st[i]);
                        cr_assert_eq(decode(buf, len, 0, &m), -EBADMSG, "%s with status %d",
                                     samples[s].what, st[i]);
                }
        }
}

Test(malformed, request_with_fds, .timeout = 30) {
        /* SHM_REGISTER carries exactly one fd; every other request none */
        for (size_t s = 0; s < N_SAMPLES; s++) {
                if (!is_request(&samples[s].m))
                        continue;
                unsigned want = samples[s].m.hdr.op == IPCB_OP_SHM_REGISTER ? 1 : 0;
                uint8_t buf[IPCB_MSG_MAX];
                size_t len = encode_ok(&samples[s].m, buf, sizeof(buf));
                ipcb_msg m;
                for (unsigned n = 0; n <= IPCB_FDS_MAX; n++) {
                        buf[2] = (uint8_t)n;
                        cr_assert_eq(decode(buf, len, n, &m), n == want ? 0 : -EBADMSG,
                                     "%s carrying %u fds", samples[s].what, n);
                }
        }
}

Test(malformed, reply_fd_count, .timeout = 30) {
        /* SHM replies carry exactly one fd; other replies none */
        for (size_t s = 0; s < N_SAMPLES; s++) {
                const ipcb_msg *in = &samples[s].m;
                if (is_request(in) || is_error_reply(in))
                        continue;
                bool shm = base_op(in) == IPCB_OP_SHM_CREATE || base_op(in) == IPCB_OP_SHM_OPEN ||
                           base_op(in) == IPCB_OP_SHM_LOCK_PAGE ||
                           base_op(in) == IPCB_OP_SEM_CREATE || base_op(in) == IPCB_OP_SEM_OPEN ||
                           base_op(in) == IPCB_OP_MEMFD || base_op(in) == IPCB_OP_SEM_NOTIFY ||
                           base_op(in) == IPCB_OP_SEM_POLL || base_op(in) == IPCB_OP_LOCK_POLL ||
                           base_op(in) == IPCB_OP_LOCK_NOTIFY;
                unsigned want = shm ? 1u : 0u;
                uint8_t buf[IPCB_MSG_MAX];
                size_t len = encode_ok(in, buf, sizeof(buf));
                ipcb_msg m;
                for (unsigned n = 0; n <= IPCB_FDS_MAX; n++) {
                        buf[2] = (uint8_t)n;
                        cr_assert_eq(decode(buf, len, n, &m), n == want ? 0 : -EBADMSG,
                                     "%s declaring and carrying %u fds", samples[s].what, n);
                }
        }
}

Test(malformed, shm_reply_without_fd, .timeout = 30) {
        ipcb_msg in = find_sample("SHM_OPEN reply")->m, m;
        uint8_t buf[IPCB_MSG_MAX];
        in.hdr.nfds = 0;
        size_t len = encode_ok(&in, buf, sizeof(buf));
        cr_assert_eq(decode(buf, len, 0, &m), -EBADMSG, "SHM_OPEN reply with nfds 0");
        in = find_sample("SHM_CREATE reply")->m;
        in.hdr.nfds = 0;
        len = encode_ok(&in, buf, sizeof(buf));
        cr_assert_eq(decode(buf, len, 0, &m), -EBADMSG, "SHM_CREATE reply with nfds 0");
}

Test(malformed, truncated_payload_every_byte, .timeout = 30) {
        for (size_t s = 0; s < N_SAMPLES; s++) {
                uint8_t buf[IPCB_MSG_MAX];
                const ipcb_msg *in = &samples[s].m;
                size_t len = encode_ok(in, buf, sizeof(buf));
                unsigned nfds = buf[2];
                ipcb_msg m;

                for (size_t p = 0; p < len; p++) {
                        uint8_t cut[IPCB_MSG_MAX];
                        memcpy(cut, buf, p);
                        /* as is: the header's len no longer matches */
                        cr_assert_eq(decode(cut, p, nfds, &m), -EBADMSG, "%s cut to %zu bytes",
                                     samples[s].what, p);
                        if (p < IPCB_HDR_SIZE)
                                continue;
                        /* with the header's len fixed up: the payload itself is short */
                        put_u32(cut + 12, (uint32_t)(p - IPCB_HDR_SIZE));
                        cr_assert_eq(decode(cut, p, nfds, &m), -EBADMSG,
                                     "%s: payload cut to %zu of %zu bytes, len fixed up",
                                     samples[s].what, p - IPCB_HDR_SIZE, len - IPCB_HDR_SIZE);
                }
        }
}

Test(malformed, trailing_bytes, .timeout = 30) {
        for (size_t s = 0; s < N_SAMPLES; s++) {
                uint8_t buf[IPCB_MSG_MAX];
                const ipcb_msg *in = &samples[s].m;
                size_t len = encode_ok(in, buf, sizeof(buf));
                unsigned nfds = buf[2];
                ipcb_msg m;

                for (size_t extra = 1; extra <= 9; extra++) {
                        memset(buf + len, 0, extra);
                        put_u32(buf + 12, (uint32_t)(len + extra - IPCB_HDR_SIZE));
                        cr_assert_eq(decode(buf, len + extra, nfds, &m), -EBADMSG,
                                     "%s with %zu trailing zero bytes", samples[s].what, extra);
                }
        }
}

Test(malformed, nonzero_pad_bytes, .timeout = 30) {
        unsigned checked = 0;
        for (size_t s = 0; s < N_SAMPLES; s++) {
                uint8_t buf[IPCB_MSG_MAX];
                const ipcb_msg *in = &samples[s].m;
                size_t len = encode_ok(in, buf, sizeof(buf));
                size_t pads[16], np = pad_offsets(in, pads);
                ipcb_msg m;

                for (size_t i = 0; i < np; i++) {
                        cr_assert_lt(pads[i], len);
                        cr_assert_eq(buf[pads[i]], 0, "%s: byte %zu is a pad", samples[s].what,
                                     pads[i]);
                        for (unsigned bit = 0; bit < 8; bit++) {
                                buf[pads[i]] = (uint8_t)(1u << bit);
                                cr_assert_eq(decode(buf, len, buf[2], &m), -EBADMSG,
                                             "%s: pad byte %zu = 0x%02x accepted",
                                             samples[s].what, pads[i], buf[pads[i]]);
                        }
                        buf[pads[i]] = 0;
                        checked++;
                }
                cr_assert_eq(decode(buf, len, buf[2], &m), 0);
        }
        cr_assert_geq(checked, 20u);
}

/* Offset of the u16 name length of each message that has a name. */
static bool name_len_offset(const ipcb_msg *in, size_t *ret) {
        if (is_error_reply(in))
                return false;
        switch (in->hdr.op) {
        case IPCB_OP_UNLINK:
        case IPCB_OP_STAT:
        case IPCB_OP_HOLDERS:
        case REPLY(IPCB_OP_STAT):
                *ret = 16 + 2;
                return true;
        case IPCB_OP_SHM_CREATE:
        case IPCB_OP_SEM_CREATE:
                *ret = 16 + 16;
                return true;
        case IPCB_OP_SHM_OPEN:
        case IPCB_OP_SEM_OPEN:
                *ret = 16 + 4;
                return true;
        case REPLY(IPCB_OP_LIST):
                if (in->list_reply.count == 0)
                        return false;
                *ret = 16 + IPCB_LIST_REPLY_FIXED + 2;
                return true;
        }
        return false;
}

Test(malformed, name_length_wrong, .timeout = 30) {
        unsigned checked = 0;
        for (size_t s = 0; s < N_SAMPLES; s++) {
                uint8_t buf[IPCB_MSG_MAX];
                const ipcb_msg *in = &samples[s].m;
                size_t len = encode_ok(in, buf, sizeof(buf)), off;
                ipcb_msg m;

                if (!name_len_offset(in, &off))
                        continue;
                uint16_t nlen = get_u16(buf + off);
                static const int32_t delta[] = { 1, 2, 1000, 0xffff, -1 };
                for (size_t d = 0; d < sizeof(delta) / sizeof(delta[0]); d++) {
                        if ((int32_t)nlen + delta[d] < 0)
                                continue;
                        put_u16(buf + off, (uint16_t)(nlen + delta[d]));
                        cr_assert_eq(decode(buf, len, buf[2], &m), -EBADMSG,
                                     "%s: name length %u, %u bytes there", samples[s].what,
                                     get_u16(buf + off), nlen);
                }
                put_u16(buf + off, nlen);
                cr_assert_eq(decode(buf, len, buf[2], &m), 0);
                checked++;
        }
        cr_assert_geq(checked, 9u);
}

Test(malformed, error_reply_shape, .timeout = 30) {
        uint8_t buf[64] = { 0 };
        ipcb_msg m;

        put_u16(buf, REPLY(IPCB_OP_SHM_OPEN));
        put_u32(buf + 8, (uint32_t)-ENOENT);
        cr_assert_eq(decode(buf, 16, 0, &m), 0, "baseline error reply");
        /* with a payload */
        for (uint32_t plen = 1; plen <= 24; plen++) {
                put_u32(buf + 12, plen);
                cr_assert_eq(decode(buf, 16 + plen, 0, &m), -EBADMSG, "with %u payload bytes",
                             plen);
        }
        put_u32(buf + 12, 0);
        /* with fds */
        for (unsigned n = 1; n <= IPCB_FDS_MAX; n++) {
                buf[2] = (uint8_t)n;
                cr_assert_eq(decode(buf, 16, n, &m), -EBADMSG, "with %u fds", n);
        }
        buf[2] = 0;
        /* positive status, or below -4095 */
        static const int32_t st[] = { 1, 2, 4095, INT32_MAX, -4096, -5000, INT32_MIN };
        for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
                put_u32(buf + 8, (uint32_t)st[i]);
                cr_assert_eq(decode(buf, 16, 0, &m), -EBADMSG, "status %d", st[i]);
        }
        put_u32(buf + 8, (uint32_t)-4095);
        cr_assert_eq(decode(buf, 16, 0, &m), 0, "status -4095 is an errno");
        put_u32(buf + 8, (uint32_t)-1);
        cr_assert_eq(decode(buf, 16, 0, &m), 0, "status -1 is an errno");
}

Test(malformed, stat_record_kind, .timeout = 30) {
        static const uint8_t bad_kinds[] = { 0, IPCB_KIND_MAX_ + 1, 0x80, 0xff };
        for (size_t s = 0; s < N_SAMPLES; s++) {
                const ipcb_msg *in = &samples[s].m;
                size_t first;
                if (in->hdr.op == REPLY(IPCB_OP_STAT))
                        first = 16;
                else if (in->hdr.op == REPLY(IPCB_OP_LIST) && in->list_reply.count > 0)
                        first = 16 + IPCB_LIST_REPLY_FIXED;
                else
                        continue;
                uint8_t buf[IPCB_MSG_MAX];
                size_t len = encode_ok(in, buf, sizeof(buf));
                unsigned nrec = in->hdr.op == REPLY(IPCB_OP_STAT) ? 1 : in->list_reply.count;
                size_t off = first;
                ipcb_msg m;

                for (unsigned r = 0; r < nrec; r++) {
                        uint8_t keep = buf[off];
                        for (size_t k = 0; k < sizeof(bad_kinds); k++) {
                                buf[off] = bad_kinds[k];
                                cr_assert_eq(decode(buf, len, 0, &m), -EBADMSG,
                                             "%s: record %u with kind %u", samples[s].what, r,
                                             bad_kinds[k]);
                        }
                        buf[off] = keep;
                        off += IPCB_STAT_FIXED + get_u16(buf + off + 2);
                }
                cr_assert_eq(off, len);
        }
}

Test(malformed, list_reply_records, .timeout = 30) {
        uint8_t buf[IPCB_MSG_MAX];
        const ipcb_msg *in = &find_sample("LIST reply, 3 records")->m;
        size_t len = encode_ok(in, buf, sizeof(buf));
        ipcb_msg m;

        /* count larger than the records present: a truncated list */
        for (unsigned c = 4; c < 70000; c = c * 3 + 1) {
                put_u16(buf + 16 + 8, (uint16_t)c);
                cr_assert_eq(decode(buf, len, 0, &m), -EBADMSG, "count %u, 3 records",
                             (uint16_t)c);
        }
        /* count smaller: the rest is trailing garbage */
        for (unsigned c = 0; c < 3; c++) {
                put_u16(buf + 16 + 8, (uint16_t)c);
                cr_assert_eq(decode(buf, len, 0, &m), -EBADMSG, "count %u, 3 records", c);
        }
        put_u16(buf + 16 + 8, 3);
        /* more must be 0 or 1 */
        for (unsigned v = 2; v < 256; v++) {
                buf[16 + 10] = (uint8_t)v;
                cr_assert_eq(decode(buf, len, 0, &m), -EBADMSG, "more = %u", v);
        }
        buf[16 + 10] = 1;
        cr_assert_eq(decode(buf, len, 0, &m), 0, "more = 1");
}

Test(malformed, unknown_opcode, .timeout = 30) {
        static const uint16_t ops[] = { 0x0000, 0x0009, 0x00ff, 0x0100, 0x0106, 0x0200,
                                        0x0207, 0x0306, 0x0404, 0x7fff, REPLY(0x0000),
                                        REPLY(0x0009), REPLY(0x0207), REPLY(0x0404), 0xffff };
        for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
                uint8_t buf[16 + 8] = { 0 };
                ipcb_msg m;
                put_u16(buf, ops[i]);
                put_u32(buf + 4, 0xabcd0000u + (uint32_t)i);
                for (uint32_t plen = 0; plen <= 8; plen += 8) {
                        put_u32(buf + 12, plen);
                        cr_assert_eq(decode(buf, 16 + plen, 0, &m), -EOPNOTSUPP,
                                     "op 0x%04x, %u payload bytes", ops[i], plen);
                        cr_assert_eq(m.hdr.op, ops[i], "hdr.op filled");
                        cr_assert_eq(m.hdr.id, 0xabcd0000u + (uint32_t)i, "hdr.id filled");
                        cr_assert_eq(m.hdr.status, 0);
                        cr_assert_eq(m.hdr.len, plen);
                }
        }
}

Test(malformed, unknown_opcode_header_checked_first, .timeout = 30) {
        uint8_t buf[16] = { 0 };
        ipcb_msg m;
        put_u16(buf, 0x0009);
        put_u32(buf + 12, 1); /* len mismatch */
        cr_assert_eq(decode(buf, 16, 0, &m), -EBADMSG);
        put_u32(buf + 12, 0);
        put_u32(buf + 8, (uint32_t)-1); /* request with status */
        cr_assert_eq(decode(buf, 16, 0, &m), -EBADMSG);
        put_u32(buf + 8, 0);
        buf[2] = 1; /* header nfds differs from what arrived */
        cr_assert_eq(decode(buf, 16, 0, &m), -EBADMSG);
        /* An unknown request that declares (and carries) fds: the header is
         * well-formed, so the decoder reports the opcode, not the fds; a
         * future opcode may carry fds.  The receiver closes them. */
        cr_assert_eq(decode(buf, 16, 1, &m), -EOPNOTSUPP);
        cr_assert_eq(m.hdr.nfds, 1);
}

/* ---- encoder ---- */

Test(encode, buffer_too_small_every_cap, .timeout = 30) {
        for (size_t s = 0; s < N_SAMPLES; s++) {
                uint8_t buf[IPCB_MSG_MAX];
                const ipcb_msg *in = &samples[s].m;
                size_t len = encode_ok(in, buf, sizeof(buf));

                for (size_t cap = 0; cap < len; cap++) {
                        uint8_t small[IPCB_MSG_MAX + 1];
                        memset(small, 0xaa, sizeof(small));
                        cr_assert_eq(ipcb__proto_encode(in, small, cap), -EMSGSIZE,
                                     "%s: cap %zu of %zu", samples[s].what, cap, len);
                        for (size_t i = cap; i < sizeof(small); i++)
                                cr_assert_eq(small[i], 0xaa, "%s: cap %zu, wrote byte %zu",
                                             samples[s].what, cap, i);
                }
                cr_assert_eq(ipcb__proto_encode(in, buf, len), (ssize_t)len, "%s: exact cap",
                             samples[s].what);
        }
        cr_assert_eq(ipcb__proto_encode(&find_sample("HELLO")->m, NULL, 0), -EMSGSIZE, "NULL, cap 0");
}

Test(encode, list_reply_over_msg_max, .timeout = 30) {
        /* 145 empty-named records fill 16 + 12 + 145 * 56 = 8148 bytes; a
         * 44-byte name on one of them makes exactly IPCB_MSG_MAX. */
        static ipcb_stat_rec recs[MAX_RECS];
        static uint8_t buf[2 * IPCB_MSG_MAX];
        static char name[64];
        ipcb_msg m = { .hdr = { .op = REPLY(IPCB_OP_LIST), .id = 1 } }, out;

        memset(name, 'q', sizeof(name));
        for (unsigned i = 0; i < MAX_RECS; i++)
                recs[i] = (ipcb_stat_rec){ .kind = IPCB_KIND_SHM, .id = i + 1 };
        m.list_reply.recs = recs;
        m.list_reply.count = 145;
        recs[0].name = (ipcb_name){ name, 44 };
        cr_assert_eq(ipcb__proto_encode(&m, buf, sizeof(buf)), (ssize_t)IPCB_MSG_MAX,
                     "exactly IPCB_MSG_MAX fits");
        decode_ok(buf, IPCB_MSG_MAX, 0, &out);
        cr_assert_eq(out.list_reply.count, 145);
        recs[0].name.len = 45;
        cr_assert_eq(ipcb__proto_encode(&m, buf, sizeof(buf)), -EMSGSIZE, "one byte over");
        recs[0].name.len = 0;
        m.list_reply.count = 146;
        cr_assert_eq(ipcb__proto_encode(&m, buf, sizeof(buf)), -EMSGSIZE, "146 records");
        m.list_reply.count = MAX_RECS;
        cr_assert_eq(ipcb__proto_encode(&m, buf, sizeof(buf)), -EMSGSIZE, "%u records",
                     (unsigned)MAX_RECS);
}

Test(encode, long_name_over_msg_max, .timeout = 30) {
        /* the encoder does not judge names, but never exceeds IPCB_MSG_MAX */
        static char name[65535];
        static uint8_t buf[1 << 17];
        ipcb_msg m = { .hdr = { .op = IPCB_OP_SHM_OPEN }, .shm_open = { 1, { name, 65535 } } };
        memset(name, 'a', sizeof(name));
        cr_assert_eq(ipcb__proto_encode(&m, buf, sizeof(buf)), -EMSGSIZE);
        m.shm_open.name.len = IPCB_MSG_MAX - 16 - 32;
        cr_assert_eq(ipcb__proto_encode(&m, buf, sizeof(buf)), (ssize_t)IPCB_MSG_MAX);
        m.shm_open.name.len++;
        cr_assert_eq(ipcb__proto_encode(&m, buf, sizeof(buf)), -EMSGSIZE);
}

Test(encode, unknown_opcode, .timeout = 30) {
        uint8_t buf[IPCB_MSG_MAX];
        static const uint16_t ops[] = { 0x0000, 0x0009, 0x0106, 0x0207, 0x0306, 0x0405, 0x7fff };
        for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
                ipcb_msg m = { .hdr = { .op = ops[i] } };
                cr_assert_eq(ipcb__proto_encode(&m, buf, sizeof(buf)), -EINVAL, "request 0x%04x",
                             ops[i]);
                m.hdr.op = REPLY(ops[i]);
                cr_assert_eq(ipcb__proto_encode(&m, buf, sizeof(buf)), -EINVAL, "reply 0x%04x",
                             m.hdr.op);
                /* but an error reply to it is fine: that is how it is refused */
                m.hdr.status = -EOPNOTSUPP;
                cr_assert_eq(ipcb__proto_encode(&m, buf, sizeof(buf)), 16, "error reply 0x%04x",
                             m.hdr.op);
        }
}

Test(encode, header_fields_computed, .timeout = 30) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg m = find_sample("SHM_OPEN")->m, out;
        m.hdr.len = 12345; /* ignored: computed */
        m.hdr.flags = 0xff; /* ignored: always 0 */
        size_t len = encode_ok(&m, buf, sizeof(buf));
        cr_assert_eq(buf[3], 0, "flags written as 0");
        cr_assert_eq(get_u32(buf + 12), len - 16);
        decode_ok(buf, len, 0, &out);
        /* the cap is clamped to IPCB_MSG_MAX, so SIZE_MAX is a fine cap */
        cr_assert_eq(ipcb__proto_encode(&m, buf, SIZE_MAX), (ssize_t)len);
}

/* ---- property test ---- */

static uint64_t rng_state;

static uint64_t rng(void) {
        /* splitmix64: deterministic, so a failure reproduces */
        uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
}

static unsigned rnd(unsigned n) {
        return (unsigned)(rng() % n);
}

static const uint16_t known_ops[] = {
        IPCB_OP_HELLO, IPCB_OP_CLOSE, IPCB_OP_UNLINK, IPCB_OP_STAT, IPCB_OP_LIST,
        IPCB_OP_SHM_CREATE, IPCB_OP_SHM_OPEN, IPCB_OP_SHM_LOCK_PAGE, IPCB_OP_SEM_CREATE,
        IPCB_OP_SEM_OPEN, 0x0006, 0x0203,
};

/* A random byte string of one of several shapes; returns its length and the
 * fd count to decode it with. */
static size_t random_input(uint8_t *buf, unsigned *nfds) {
        size_t len;
        unsigned shape = rnd(8);

        if (shape == 0) { /* pure noise */
                len = rnd(80);
                for (size_t i = 0; i < len; i++)
                        buf[i] = (uint8_t)rng();
                *nfds = rnd(IPCB_FDS_MAX + 2);
                return len;
        }
        if (shape <= 3) { /* plausible header, random payload */
                len = IPCB_HDR_SIZE + (rnd(4) ? rnd(100) : rnd(IPCB_MSG_MAX - 8));
                if (rnd(64) == 0)
                        len = IPCB_MSG_MAX - 2 + rnd(5);
                for (size_t i = 0; i < len; i++)
                        buf[i] = rnd(3) ? 0 : (uint8_t)rng();
                uint16_t op = known_ops[rnd(sizeof(known_ops) / sizeof(known_ops[0]))];
                if (rnd(2))
                        op |= IPCB_OP_REPLY;
                put_u16(buf, op);
                buf[2] = (uint8_t)(rnd(4) ? (op & IPCB_OP_REPLY) && (op & 0x0300) : rnd(6));
                buf[3] = rnd(16) ? 0 : (uint8_t)rng();
                put_u32(buf + 8, rnd(4) ? 0 : (rnd(2) ? (uint32_t)-(int32_t)rnd(5000) : (uint32_t)rng()));
                put_u32(buf + 12, rnd(16) ? (uint32_t)(len - IPCB_HDR_SIZE) : (uint32_t)rng());
                /* small name lengths make names that fit */
                if (len > 22 && rnd(2)) {
                        buf[18] = (uint8_t)rnd(8);
                        buf[19] = 0;
                        buf[20] = (uint8_t)rnd(8);
                        buf[21] = 0;
                }
                *nfds = rnd(8) ? buf[2] : rnd(IPCB_FDS_MAX + 2);
                return len;
        }
        /* a valid encoding, mutated */
        const ipcb_msg *in = &samples[rnd(N_SAMPLES)].m;
        len = (size_t)ipcb__proto_encode(in, buf, IPCB_MSG_MAX);
        *nfds = buf[2];
        unsigned muts = rnd(4);
        for (unsigned k = 0; k < muts; k++) {
                switch (rnd(6)) {
                case 0: /* flip a bit */
                        buf[rnd((unsigned)len)] ^= (uint8_t)(1u << rnd(8));
                        break;
                case 1: /* set a byte */
                        buf[rnd((unsigned)len)] = (uint8_t)rng();
                        break;
                case 2: /* shrink the payload, len fixed up */
                        if (len > IPCB_HDR_SIZE) {
                                len -= 1 + rnd((unsigned)(len - IPCB_HDR_SIZE));
                                put_u32(buf + 12, (uint32_t)(len - IPCB_HDR_SIZE));
                        }
                        break;
                case 3: /* grow it, len fixed up */ {
                        size_t add = 1 + rnd(16);
                        for (size_t i = 0; i < add; i++)
                                buf[len + i] = rnd(2) ? 0 : (uint8_t)rng();
                        len += add;
                        put_u32(buf + 12, (uint32_t)(len - IPCB_HDR_SIZE));
                        break;
                }
                case 4: /* a different fd count */
                        *nfds = rnd(IPCB_FDS_MAX + 2);
                        break;
                case 5: /* nudge a 16-bit field (names, counts) */ {
                        size_t at = rnd((unsigned)(len - 1));
                        put_u16(buf + at, (uint16_t)(get_u16(buf + at) + rnd(5) - 2));
                        break;
                }
                }
        }
        return len;
}

Test(property, random_and_mutated_inputs, .timeout = 30) {
        static uint8_t buf[IPCB_MSG_MAX + 64];
        unsigned ok = 0, badmsg = 0, notsup = 0, lists = 0;

        rng_state = 0x1bcb0c0ffee;
        for (unsigned iter = 0; iter < 200000; iter++) {
                unsigned nfds;
                size_t len = random_input(buf, &nfds);
                uint8_t *copy = malloc(len ? len : 1);
                ipcb_msg m;

                cr_assert_not_null(copy);
                memcpy(copy, buf, len);
                int r = ipcb__proto_decode(copy, len, nfds, &m);
                if (r == 0) {
                        ok++;
                        cr_assert_geq(len, IPCB_HDR_SIZE);
                        cr_assert_leq(len, IPCB_MSG_MAX);
                        cr_assert_eq(m.hdr.nfds, nfds, "iteration %u", iter);
                        cr_assert_leq(nfds, IPCB_FDS_MAX);
                        if (!is_request(&m) && m.hdr.status == 0 &&
                            base_op(&m) == IPCB_OP_LIST)
                                lists++;
                        if (is_request(&m)) {
                                cr_assert_eq(nfds, m.hdr.op == IPCB_OP_SHM_REGISTER ? 1u : 0u,
                                             "iteration %u: request with fds", iter);
                                cr_assert_eq(m.hdr.status, 0);
                        }
                        if (is_request(&m) && (m.hdr.op == IPCB_OP_UNLINK || m.hdr.op == IPCB_OP_STAT))
                                cr_assert(name_inside(m.stat.name, copy, len), "iteration %u", iter);
                        if (m.hdr.op == IPCB_OP_SHM_CREATE)
                                cr_assert(name_inside(m.shm_create.name, copy, len));
                        if (m.hdr.op == IPCB_OP_SHM_OPEN)
                                cr_assert(name_inside(m.shm_open.name, copy, len));
                        if (m.hdr.op == IPCB_OP_SEM_CREATE)
                                cr_assert(name_inside(m.sem_create.name, copy, len));
                        if (m.hdr.op == IPCB_OP_SEM_OPEN)
                                cr_assert(name_inside(m.sem_open.name, copy, len));
                        check_reencode(copy, len, &m);
                } else if (r == -EBADMSG) {
                        badmsg++;
                } else {
                        cr_assert_eq(r, -EOPNOTSUPP, "iteration %u: decode returned %d", iter, r);
                        cr_assert_eq(m.hdr.len, len - IPCB_HDR_SIZE);
                        cr_assert_eq(m.hdr.flags, 0);
                        cr_assert_eq(m.hdr.nfds, nfds);
                        notsup++;
                }
                free(copy);
        }
        cr_log_info("property: %u decoded (%u LIST replies), %u -EBADMSG, %u -EOPNOTSUPP", ok,
                    lists, badmsg, notsup);
        /* the generator must actually reach the success paths */
        cr_assert_gt(ok, 20000u, "only %u inputs decoded", ok);
        cr_assert_gt(lists, 1000u, "only %u LIST replies decoded", lists);
        cr_assert_gt(badmsg, 50000u);
        cr_assert_gt(notsup, 1000u);
}

/* HOLDERS replies: count bounded by IPCB_HOLDERS_MAX, never above total,
 * and exactly count records. */
Test(malformed, holders_reply_bounds, .timeout = 30) {
        uint8_t buf[IPCB_MSG_MAX] = { 0 };
        ipcb_msg m;

        put_u16(buf, REPLY(IPCB_OP_HOLDERS));
        for (uint32_t count = 0; count <= IPCB_HOLDERS_MAX + 1; count += IPCB_HOLDERS_MAX / 2 + 1) {
                size_t len = 16 + IPCB_HOLDERS_FIXED + (size_t)count * IPCB_HOLDER_REC;
                put_u32(buf + 12, (uint32_t)(len - 16));
                put_u32(buf + 16, count);
                put_u32(buf + 20, count);
                cr_assert_eq(decode(buf, len, 0, &m), count <= IPCB_HOLDERS_MAX ? 0 : -EBADMSG,
                             "count %u", count);
                put_u32(buf + 20, count ? count - 1 : 0); /* total below count */
                cr_assert_eq(decode(buf, len, 0, &m), count == 0 ? 0 : -EBADMSG,
                             "total below count %u", count);
                put_u32(buf + 20, count);
                put_u32(buf + 12, (uint32_t)(len - 16 - 1)); /* one byte short */
                cr_assert_eq(decode(buf, len - 1, 0, &m), -EBADMSG, "short, count %u", count);
        }
}
