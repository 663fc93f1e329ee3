/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_hostile.c: a hostile peer writes raw datagrams at a real ipcbrokerd.
 *
 * Every test runs next to a well-behaved library client that holds a segment
 * with known bytes.  After the hostile action the daemon must still answer a
 * fresh HELLO, the good client must still create and open, its bytes must be
 * intact, and the daemon's fd count must come back to its baseline.  The
 * expected reactions are daemon/peer.c's: a frame that does not decode ends
 * the connection without a reply and every fd that came with it is closed;
 * an unknown opcode gets -EOPNOTSUPP; a request before HELLO gets -EPROTO.
 *
 * Every test runs in the harness fixture (harness.h): once the good client
 * has closed its segment and left, the daemon is back at its idle fd count,
 * the test process at its own, and the daemon exits 0. */
#include "harness.h"

#include "ipcbroker.h"
#include "proto.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define GOOD_NAME "good"
#define GOOD_SIZE 65536u

static ipcbd d;
static ipcb_client *good;
static ipcb_shm *good_shm;
static int base_fds; /* daemon fds with the good client and its segment */

static uint8_t good_byte(size_t i) {
        return (uint8_t)(i * 131u + 7u);
}

static void setup(void) {
        fixture_begin(&d, NULL);
        cr_assert_eq(ipcb_connect(d.sock, &good), 0);
        cr_assert_eq(ipcb_shm_create(good, GOOD_NAME, GOOD_SIZE, NULL, &good_shm), 0);
        uint8_t *p = ipcb_shm_data(good_shm);
        for (size_t i = 0; i < GOOD_SIZE; i++)
                p[i] = good_byte(i);
        /* One connection, plus the segment's memfd (the read-only description
         * is opened on the first read-only open). */
        base_fds = d.base_fds + 2;
        cr_assert(ipcbd_wait_fds(&d, base_fds, 5000));
}

/* What every test holds until its end: the good client and its segment. */
static void release(void) {
        int k = ipcb_shm_close(good_shm);

        good_shm = NULL;
        ipcb_disconnect(good);
        good = NULL;
        cr_assert_eq(k, 0, "closing the good segment: %s", ipcb_strerror(k));
}

/* After a test that failed or skipped before fixture_end. */
static void teardown(void) {
        ipcb_shm_close(good_shm);
        good_shm = NULL;
        ipcb_disconnect(good);
        good = NULL;
        fixture_cleanup(&d);
}

TestSuite(hostile, .init = setup, .fini = teardown, .timeout = 30);

/* fixture_end (harness.h) after every body: both fd counts back, clean exit. */
#define CHECKED_TEST(suite, name) FIXTURE_TEST(suite, name, &d, release)

static void report(const char *when) {
        fprintf(stderr, "[hostile] %-28s daemon fds %4d, VmRSS %6ld KiB\n", when,
                ipcbd_fd_count(&d), proc_rss_kib(d.pid));
}

static bool good_bytes_intact(const uint8_t *p) {
        for (size_t i = 0; i < GOOD_SIZE; i++)
                if (p[i] != good_byte(i))
                        return false;
        return true;
}

/* The daemon survived and nothing leaked. */
static void check_survived(void) {
        ipcb_shm *s;
        int fd;

        fd = raw_connect(d.sock);
        cr_assert_geq(fd, 0, "connect after hostile action: %s", strerror(-fd));
        cr_assert_eq(raw_hello(fd), 0, "no HELLO reply after hostile action");
        close(fd);

        cr_assert_eq(ipcb_shm_create(good, "probe", 4096, NULL, &s), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
        cr_assert_eq(ipcb_shm_open(good, GOOD_NAME, IPCB_READ_ONLY, &s), 0);
        cr_assert(good_bytes_intact(ipcb_shm_data(s)), "segment contents changed (fresh mapping)");
        cr_assert_eq(ipcb_shm_close(s), 0);
        cr_assert(good_bytes_intact(ipcb_shm_data(good_shm)), "segment contents changed");
        cr_assert(ipcbd_wait_fds(&d, base_fds, 5000), "daemon fd count not back at baseline");
}

/* ---- building and reading datagrams ---- */

static size_t enc(const ipcb_msg *m, uint8_t *buf) {
        ssize_t n = ipcb__proto_encode(m, buf, IPCB_MSG_MAX);
        cr_assert_gt(n, 0, "encode op 0x%04x: %zd", m->hdr.op, n);
        return (size_t)n;
}

static size_t enc_hello(uint8_t *buf, uint32_t id, uint32_t version) {
        ipcb_msg m = { .hdr = { .op = IPCB_OP_HELLO, .id = id } };
        m.hello.version = version;
        return enc(&m, buf);
}

static size_t enc_named(uint8_t *buf, uint16_t op, uint32_t id, uint8_t kind, const char *name) {
        ipcb_msg m = { .hdr = { .op = op, .id = id } };
        m.stat.kind = kind;
        m.stat.name = (ipcb_name){ .ptr = name, .len = (uint16_t)strlen(name) };
        return enc(&m, buf);
}

static size_t enc_create(uint8_t *buf, uint32_t id, const char *name, uint64_t size,
                         uint32_t mode, uint32_t flags) {
        ipcb_msg m = { .hdr = { .op = IPCB_OP_SHM_CREATE, .id = id } };
        m.shm_create.size = size;
        m.shm_create.mode = mode;
        m.shm_create.flags = flags;
        m.shm_create.name = (ipcb_name){ .ptr = name, .len = (uint16_t)strlen(name) };
        return enc(&m, buf);
}

static size_t enc_open(uint8_t *buf, uint32_t id, const char *name, uint32_t access) {
        ipcb_msg m = { .hdr = { .op = IPCB_OP_SHM_OPEN, .id = id } };
        m.shm_open.access = access;
        m.shm_open.name = (ipcb_name){ .ptr = name, .len = (uint16_t)strlen(name) };
        return enc(&m, buf);
}

static size_t enc_close(uint8_t *buf, uint32_t id, uint64_t handle) {
        ipcb_msg m = { .hdr = { .op = IPCB_OP_CLOSE, .id = id } };
        m.close.handle = handle;
        return enc(&m, buf);
}

/* A bare 16-byte header (for opcodes the encoder does not know). */
static size_t enc_raw_hdr(uint8_t *buf, uint16_t op, uint8_t nfds, uint32_t id, uint32_t len) {
        buf[0] = (uint8_t)op;
        buf[1] = (uint8_t)(op >> 8);
        buf[2] = nfds;
        buf[3] = 0;
        for (int i = 0; i < 4; i++) {
                buf[4 + i] = (uint8_t)(id >> (8 * i));
                buf[8 + i] = 0;
                buf[12 + i] = (uint8_t)(len >> (8 * i));
        }
        return IPCB_HDR_SIZE;
}

static void set_hdr_len(uint8_t *buf, uint32_t len) {
        for (int i = 0; i < 4; i++)
                buf[12 + i] = (uint8_t)(len >> (8 * i));
}

/* Receive one reply and check op, id and status; returns the decoded reply
 * (names in it point into a static buffer) and stores its fd, if any. */
static ipcb_msg expect_reply(int fd, uint16_t op, uint32_t id, int status, int *ret_fd) {
        static uint8_t buf[IPCB_MSG_MAX];
        int fds[IPCB_FDS_MAX];
        unsigned nfds = IPCB_FDS_MAX;
        ipcb_msg r;
        ssize_t n = raw_recv(fd, buf, sizeof(buf), fds, &nfds, 3000);

        cr_assert_gt(n, 0, "no reply to op 0x%04x: %s", op, n == 0 ? "EOF" : strerror((int)-n));
        cr_assert_eq(ipcb__proto_decode(buf, (size_t)n, nfds, &r), 0, "reply does not decode");
        cr_assert_eq(r.hdr.op, op | IPCB_OP_REPLY, "reply op 0x%04x", r.hdr.op);
        cr_assert_eq(r.hdr.id, id, "reply id %u, want %u", r.hdr.id, id);
        cr_assert_eq(r.hdr.status, status, "op 0x%04x: status %d (%s), want %d (%s)", op,
                     r.hdr.status, strerror(-r.hdr.status), status, strerror(-status));
        if (ret_fd)
                *ret_fd = nfds ? fds[0] : -1;
        for (unsigned i = ret_fd ? 1 : 0; i < nfds; i++)
                close(fds[i]);
        return r;
}

/* Send one datagram and require that the daemon hangs up, without a reply. */
static void expect_disconnect(int fd, const void *buf, size_t len, const int *fds, unsigned nfds,
                              const char *what) {
        uint8_t rbuf[IPCB_MSG_MAX];
        int k = raw_send(fd, buf, len, fds, nfds);
        ssize_t n;

        cr_assert_eq(k, 0, "%s: send: %s", what, strerror(-k));
        n = raw_recv(fd, rbuf, sizeof(rbuf), NULL, NULL, 3000);
        cr_assert_eq(n, 0, "%s: expected a hang-up, got %s", what,
                     n > 0 ? "a reply" : strerror((int)-n));
}

/* A pipe whose read end we hand to the daemon: when every copy of the read
 * end is gone (the daemon closed what it received, the kernel dropped the
 * rest) the write end reports POLLERR. */
static bool pipe_readers_gone(void *arg) {
        struct pollfd p = { .fd = *(int *)arg, .events = POLLOUT };
        return poll(&p, 1, 0) == 1 && (p.revents & POLLERR);
}

static void expect_released(int wfd, const char *what) {
        cr_assert(wait_until(pipe_readers_gone, &wfd, 3000),
                  "%s: the daemon kept a descriptor it was sent", what);
}

/* ---- malformed frames ---- */

CHECKED_TEST(hostile, garbage) {
        static uint8_t buf[IPCB_MSG_MAX];
        unsigned seed = 0x1bcb2024u;

        report("baseline");
        srand(seed);
        for (int i = 0; i < 400; i++) {
                int fd = i % 2 ? ipcbd_hello_conn(&d) : raw_connect(d.sock);
                size_t len = 1 + (size_t)rand() % IPCB_MSG_MAX;
                cr_assert_geq(fd, 0);
                for (size_t j = 0; j < len; j++)
                        buf[j] = (uint8_t)rand();
                expect_disconnect(fd, buf, len, NULL, 0, "garbage");
                close(fd);
        }
        report("after 400 garbage frames");
        check_survived();
}

CHECKED_TEST(hostile, garbage_behind_valid_header) {
        /* Valid header and length, random payload: the decoder's payload
         * checks, not the header check, must catch it (or it decodes and gets
         * an answer; either way the daemon survives). */
        static const uint16_t ops[] = { IPCB_OP_HELLO, IPCB_OP_CLOSE, IPCB_OP_UNLINK, IPCB_OP_STAT,
                                        IPCB_OP_LIST, IPCB_OP_SHM_CREATE, IPCB_OP_SHM_OPEN };
        uint8_t buf[IPCB_MSG_MAX], rbuf[IPCB_MSG_MAX];

        srand(77);
        for (int i = 0; i < 300; i++) {
                int fd = ipcbd_hello_conn(&d);
                size_t plen = (size_t)rand() % 300;
                enc_raw_hdr(buf, ops[i % 7], 0, (uint32_t)i, (uint32_t)plen);
                for (size_t j = 0; j < plen; j++)
                        buf[IPCB_HDR_SIZE + j] = (uint8_t)rand();
                cr_assert_eq(raw_send(fd, buf, IPCB_HDR_SIZE + plen, NULL, 0), 0);
                ssize_t n = raw_recv(fd, rbuf, sizeof(rbuf), NULL, NULL, 3000);
                cr_assert_geq(n, 0, "neither a reply nor a hang-up: %s", strerror((int)-n));
                close(fd);
        }
        check_survived();
}

CHECKED_TEST(hostile, truncated_create) {
        uint8_t full[IPCB_MSG_MAX], buf[IPCB_MSG_MAX];
        size_t len = enc_create(full, 9, "truncated", 4096, 0600, 0);

        for (size_t cut = 0; cut < len; cut++) {
                int fd = ipcbd_hello_conn(&d);
                memcpy(buf, full, cut);
                expect_disconnect(fd, buf, cut, NULL, 0, "truncated");
                close(fd);
                /* Same, with the header's length made consistent. */
                if (cut >= IPCB_HDR_SIZE) {
                        fd = ipcbd_hello_conn(&d);
                        set_hdr_len(buf, (uint32_t)(cut - IPCB_HDR_SIZE));
                        expect_disconnect(fd, buf, cut, NULL, 0, "short payload");
                        close(fd);
                }
        }
        /* The untruncated request works, and nothing was created before. */
        int fd = ipcbd_hello_conn(&d), mfd;
        cr_assert_eq(raw_send(fd, full, len, NULL, 0), 0);
        expect_reply(fd, IPCB_OP_SHM_CREATE, 9, 0, &mfd);
        cr_assert_geq(mfd, 0);
        close(mfd);
        close(fd);
        check_survived();
}

CHECKED_TEST(hostile, oversized) {
        static uint8_t big[65536];
        int fd;

        memset(big, 0xab, sizeof(big));
        /* A HELLO header in front, claiming the whole length. */
        fd = ipcbd_hello_conn(&d);
        enc_hello(big, 1, IPCB_PROTO_VERSION);
        set_hdr_len(big, IPCB_MSG_MAX + 1 - IPCB_HDR_SIZE);
        expect_disconnect(fd, big, IPCB_MSG_MAX + 1, NULL, 0, "8193 bytes");
        close(fd);

        fd = ipcbd_hello_conn(&d);
        set_hdr_len(big, sizeof(big) - IPCB_HDR_SIZE);
        expect_disconnect(fd, big, sizeof(big), NULL, 0, "64 KiB");
        close(fd);
        check_survived();
}

CHECKED_TEST(hostile, largest_legal_datagram_is_answered) {
        /* 8192 bytes exactly: a STAT whose name fills the datagram decodes
         * (the decoder only checks that the name lies in the buffer), and the
         * handler refuses the name. */
        uint8_t buf[IPCB_MSG_MAX];
        uint16_t nlen = IPCB_MSG_MAX - IPCB_HDR_SIZE - 4;
        int fd = ipcbd_hello_conn(&d);

        enc_raw_hdr(buf, IPCB_OP_STAT, 0, 5, IPCB_MSG_MAX - IPCB_HDR_SIZE);
        buf[16] = 1; /* kind */
        buf[17] = 0;
        buf[18] = (uint8_t)nlen;
        buf[19] = (uint8_t)(nlen >> 8);
        memset(buf + 20, 'a', nlen);
        cr_assert_eq(raw_send(fd, buf, IPCB_MSG_MAX, NULL, 0), 0);
        expect_reply(fd, IPCB_OP_STAT, 5, -ENAMETOOLONG, NULL);
        cr_assert_eq(raw_hello(fd), 0, "connection should still work");
        close(fd);
        check_survived();
}

CHECKED_TEST(hostile, empty_datagram) {
        int fd = ipcbd_hello_conn(&d);
        expect_disconnect(fd, "", 0, NULL, 0, "empty datagram");
        close(fd);
        /* Before HELLO too. */
        fd = raw_connect(d.sock);
        cr_assert_geq(fd, 0);
        expect_disconnect(fd, "", 0, NULL, 0, "empty datagram before HELLO");
        close(fd);
        check_survived();
}

CHECKED_TEST(hostile, header_length_mismatch) {
        static const uint32_t lens[] = { 0, 7, 9, 16, 0x7fffffffu, 0xffffffffu };
        uint8_t buf[IPCB_MSG_MAX];

        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
                int fd = ipcbd_hello_conn(&d);
                size_t len = enc_hello(buf, 3, IPCB_PROTO_VERSION);
                set_hdr_len(buf, lens[i]);
                expect_disconnect(fd, buf, len, NULL, 0, "length mismatch");
                close(fd);
        }
        check_survived();
}

CHECKED_TEST(hostile, bad_header_fields) {
        uint8_t buf[IPCB_MSG_MAX];
        size_t len;
        int fd;

        /* flags must be 0 */
        fd = ipcbd_hello_conn(&d);
        len = enc_hello(buf, 4, IPCB_PROTO_VERSION);
        buf[3] = 1;
        expect_disconnect(fd, buf, len, NULL, 0, "flags");
        close(fd);
        /* a request's status must be 0 */
        fd = ipcbd_hello_conn(&d);
        len = enc_hello(buf, 4, IPCB_PROTO_VERSION);
        buf[8] = 0xfe;
        expect_disconnect(fd, buf, len, NULL, 0, "status");
        close(fd);
        /* reserved bytes of SHM_CREATE must be 0 */
        fd = ipcbd_hello_conn(&d);
        len = enc_create(buf, 4, "resv", 4096, 0600, 0);
        buf[IPCB_HDR_SIZE + 18] = 1;
        expect_disconnect(fd, buf, len, NULL, 0, "reserved");
        close(fd);
        /* a name length that runs past the datagram */
        fd = ipcbd_hello_conn(&d);
        len = enc_named(buf, IPCB_OP_STAT, 4, 1, "abc");
        buf[IPCB_HDR_SIZE + 2] = 4;
        expect_disconnect(fd, buf, len, NULL, 0, "name past the end");
        close(fd);
        check_survived();
}

/* ---- opcodes and sequencing ---- */

CHECKED_TEST(hostile, unknown_opcode) {
        /* Opcodes no version of the protocol is likely to assign (0x01xx and
         * 0x02xx fill up as segment and semaphore operations are added). */
        static const uint16_t ops[] = { 0x0000, 0x00ff, 0x0777, 0x0fff, 0x1234, 0x7fff };
        uint8_t buf[IPCB_MSG_MAX];
        int fd;

        /* Before HELLO: the opcode check comes first. */
        fd = raw_connect(d.sock);
        cr_assert_geq(fd, 0);
        enc_raw_hdr(buf, 0x0777, 0, 0xabcdef, 0);
        cr_assert_eq(raw_send(fd, buf, IPCB_HDR_SIZE, NULL, 0), 0);
        expect_reply(fd, 0x0777, 0xabcdef, -EOPNOTSUPP, NULL);
        cr_assert_eq(raw_hello(fd), 0, "connection should still work after -EOPNOTSUPP");

        for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
                /* with and without a payload */
                enc_raw_hdr(buf, ops[i], 0, 100 + (uint32_t)i, 0);
                cr_assert_eq(raw_send(fd, buf, IPCB_HDR_SIZE, NULL, 0), 0);
                expect_reply(fd, ops[i], 100 + (uint32_t)i, -EOPNOTSUPP, NULL);
                enc_raw_hdr(buf, ops[i], 0, 200 + (uint32_t)i, 24);
                memset(buf + IPCB_HDR_SIZE, 0x5a, 24);
                cr_assert_eq(raw_send(fd, buf, IPCB_HDR_SIZE + 24, NULL, 0), 0);
                expect_reply(fd, ops[i], 200 + (uint32_t)i, -EOPNOTSUPP, NULL);
        }
        cr_assert_eq(raw_hello(fd), 0);
        cr_assert_eq(raw_send(fd, buf, enc_named(buf, IPCB_OP_STAT, 7, 1, GOOD_NAME), NULL, 0), 0);
        expect_reply(fd, IPCB_OP_STAT, 7, 0, NULL);
        close(fd);

        /* An unknown opcode that carries an fd is malformed: hang-up, fd closed. */
        int p[2];
        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        fd = ipcbd_hello_conn(&d);
        enc_raw_hdr(buf, 0x0777, 1, 1, 0);
        expect_disconnect(fd, buf, IPCB_HDR_SIZE, &p[0], 1, "unknown opcode with an fd");
        close(p[0]);
        expect_released(p[1], "unknown opcode with an fd");
        close(p[1]);
        close(fd);
        check_survived();
}

CHECKED_TEST(hostile, reply_sent_as_request) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg m;
        int fd, p[2];

        /* A well-formed HELLO reply. */
        fd = ipcbd_hello_conn(&d);
        m = (ipcb_msg){ .hdr = { .op = IPCB_OP_HELLO | IPCB_OP_REPLY, .id = 1 } };
        m.hello_reply.version = 1;
        expect_disconnect(fd, buf, enc(&m, buf), NULL, 0, "HELLO reply");
        close(fd);
        /* A well-formed error reply. */
        fd = ipcbd_hello_conn(&d);
        m = (ipcb_msg){ .hdr = { .op = IPCB_OP_STAT | IPCB_OP_REPLY, .id = 2, .status = -EIO } };
        expect_disconnect(fd, buf, enc(&m, buf), NULL, 0, "error reply");
        close(fd);
        /* A reply to an unknown opcode. */
        fd = ipcbd_hello_conn(&d);
        enc_raw_hdr(buf, 0x8777, 0, 3, 0);
        expect_disconnect(fd, buf, IPCB_HDR_SIZE, NULL, 0, "reply to unknown op");
        close(fd);
        /* A well-formed SHM_OPEN reply, with its fd. */
        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        fd = ipcbd_hello_conn(&d);
        m = (ipcb_msg){ .hdr = { .op = IPCB_OP_SHM_OPEN | IPCB_OP_REPLY, .id = 4, .nfds = 1 } };
        m.shm_reply.handle = 1;
        m.shm_reply.size = 4096;
        m.shm_reply.access = IPCB_WA_READ_ONLY;
        expect_disconnect(fd, buf, enc(&m, buf), &p[0], 1, "SHM_OPEN reply");
        close(p[0]);
        expect_released(p[1], "SHM_OPEN reply");
        close(p[1]);
        close(fd);
        check_survived();
}

CHECKED_TEST(hostile, request_before_hello) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        int fd = raw_connect(d.sock);

        cr_assert_geq(fd, 0);
        cr_assert_eq(raw_send(fd, buf, enc_named(buf, IPCB_OP_STAT, 1, 1, GOOD_NAME), NULL, 0), 0);
        expect_reply(fd, IPCB_OP_STAT, 1, -EPROTO, NULL);
        cr_assert_eq(raw_send(fd, buf, enc_create(buf, 2, "early", 4096, 0600, 1), NULL, 0), 0);
        expect_reply(fd, IPCB_OP_SHM_CREATE, 2, -EPROTO, NULL);
        cr_assert_eq(raw_send(fd, buf, enc_named(buf, IPCB_OP_UNLINK, 3, 1, GOOD_NAME), NULL, 0), 0);
        expect_reply(fd, IPCB_OP_UNLINK, 3, -EPROTO, NULL);
        cr_assert_eq(raw_send(fd, buf, enc_close(buf, 4, 1), NULL, 0), 0);
        expect_reply(fd, IPCB_OP_CLOSE, 4, -EPROTO, NULL);
        cr_assert_eq(ipcb_stat(good, IPCB_KIND_SHM, "early", &info), -ENOENT,
                     "a request before HELLO had an effect");
        cr_assert_eq(ipcb_stat(good, IPCB_KIND_SHM, GOOD_NAME, &info), 0);

        /* The connection stays usable. */
        cr_assert_eq(raw_hello(fd), 0);
        cr_assert_eq(raw_send(fd, buf, enc_named(buf, IPCB_OP_STAT, 5, 1, GOOD_NAME), NULL, 0), 0);
        expect_reply(fd, IPCB_OP_STAT, 5, 0, NULL);
        close(fd);
        check_survived();
}

CHECKED_TEST(hostile, hello_wrong_version) {
        uint8_t buf[IPCB_MSG_MAX];
        int fd = raw_connect(d.sock);

        cr_assert_geq(fd, 0);
        cr_assert_eq(raw_send(fd, buf, enc_hello(buf, 1, 2), NULL, 0), 0);
        expect_reply(fd, IPCB_OP_HELLO, 1, -EPROTONOSUPPORT, NULL);
        cr_assert_eq(raw_send(fd, buf, enc_hello(buf, 2, 0), NULL, 0), 0);
        expect_reply(fd, IPCB_OP_HELLO, 2, -EPROTONOSUPPORT, NULL);
        cr_assert_eq(raw_send(fd, buf, enc_hello(buf, 3, 0xffffffffu), NULL, 0), 0);
        expect_reply(fd, IPCB_OP_HELLO, 3, -EPROTONOSUPPORT, NULL);
        /* A refused HELLO does not count as one. */
        cr_assert_eq(raw_send(fd, buf, enc_named(buf, IPCB_OP_STAT, 4, 1, GOOD_NAME), NULL, 0), 0);
        expect_reply(fd, IPCB_OP_STAT, 4, -EPROTO, NULL);
        cr_assert_eq(raw_hello(fd), 0);
        close(fd);
        check_survived();
}

CHECKED_TEST(hostile, argument_validation_in_daemon) {
        /* The library checks names, sizes and modes before sending; the
         * daemon must check them again. */
        uint8_t buf[IPCB_MSG_MAX];
        char longname[IPCB_NAME_MAX + 2];
        int fd = ipcbd_hello_conn(&d);
        uint32_t id = 1;

        memset(longname, 'n', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        static const struct { const char *name; int want; } names[] = {
                { "", -EINVAL }, { ".hidden", -EINVAL }, { "a/b", -EINVAL }, { "a b", -EINVAL },
                { "caf\xc3\xa9", -EINVAL }, { "nl\n", -EINVAL },
        };
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                cr_assert_eq(raw_send(fd, buf, enc_create(buf, id, names[i].name, 4096, 0600, 0),
                                      NULL, 0), 0);
                expect_reply(fd, IPCB_OP_SHM_CREATE, id++, names[i].want, NULL);
                cr_assert_eq(raw_send(fd, buf, enc_open(buf, id, names[i].name, 1), NULL, 0), 0);
                expect_reply(fd, IPCB_OP_SHM_OPEN, id++, names[i].want, NULL);
                cr_assert_eq(raw_send(fd, buf, enc_named(buf, IPCB_OP_STAT, id, 1, names[i].name),
                                      NULL, 0), 0);
                expect_reply(fd, IPCB_OP_STAT, id++, names[i].want, NULL);
                cr_assert_eq(raw_send(fd, buf, enc_named(buf, IPCB_OP_UNLINK, id, 1, names[i].name),
                                      NULL, 0), 0);
                expect_reply(fd, IPCB_OP_UNLINK, id++, names[i].want, NULL);
        }
        cr_assert_eq(raw_send(fd, buf, enc_create(buf, id, longname, 4096, 0600, 0), NULL, 0), 0);
        expect_reply(fd, IPCB_OP_SHM_CREATE, id++, -ENAMETOOLONG, NULL);
        cr_assert_eq(raw_send(fd, buf, enc_named(buf, IPCB_OP_STAT, id, 1, longname), NULL, 0), 0);
        expect_reply(fd, IPCB_OP_STAT, id++, -ENAMETOOLONG, NULL);

        /* sizes, modes, flags */
        static const struct { uint64_t size; uint32_t mode, flags; int want; } cr[] = {
                { 0, 0600, 0, -EINVAL },
                { 1ull << 63, 0600, 0, -EINVAL },
                { UINT64_MAX, 0600, 0, -EINVAL },
                { (1ull << 30) + 1, 0600, 0, -EFBIG },
                { 4096, 01000, 0, -EINVAL },
                { 4096, 0xffffffffu, 0, -EINVAL },
                { 4096, 0600, 4, -EINVAL },
                { 4096, 0600, 0x80000000u, -EINVAL },
        };
        for (size_t i = 0; i < sizeof(cr) / sizeof(cr[0]); i++) {
                cr_assert_eq(raw_send(fd, buf, enc_create(buf, id, "args", cr[i].size, cr[i].mode,
                                                          cr[i].flags), NULL, 0), 0);
                expect_reply(fd, IPCB_OP_SHM_CREATE, id++, cr[i].want, NULL);
        }
        /* access values */
        static const uint32_t bad_access[] = { 0, 3, 4, 0xffffffffu };
        for (size_t i = 0; i < sizeof(bad_access) / sizeof(bad_access[0]); i++) {
                cr_assert_eq(raw_send(fd, buf, enc_open(buf, id, GOOD_NAME, bad_access[i]), NULL, 0),
                             0);
                expect_reply(fd, IPCB_OP_SHM_OPEN, id++, -EINVAL, NULL);
        }
        /* kinds */
        static const uint8_t bad_kind[] = { 0, 3, 255 };
        for (size_t i = 0; i < sizeof(bad_kind) / sizeof(bad_kind[0]); i++) {
                cr_assert_eq(raw_send(fd, buf, enc_named(buf, IPCB_OP_STAT, id, bad_kind[i],
                                                         GOOD_NAME), NULL, 0), 0);
                expect_reply(fd, IPCB_OP_STAT, id++, -EINVAL, NULL);
                cr_assert_eq(raw_send(fd, buf, enc_named(buf, IPCB_OP_UNLINK, id, bad_kind[i],
                                                         GOOD_NAME), NULL, 0), 0);
                expect_reply(fd, IPCB_OP_UNLINK, id++, -EINVAL, NULL);
        }
        ipcb_msg m = { .hdr = { .op = IPCB_OP_LIST, .id = id } };
        m.list.kind = 3;
        cr_assert_eq(raw_send(fd, buf, enc(&m, buf), NULL, 0), 0);
        expect_reply(fd, IPCB_OP_LIST, id++, -EINVAL, NULL);
        /* Namespaces are per kind: no semaphore is called "good". */
        cr_assert_eq(raw_send(fd, buf, enc_named(buf, IPCB_OP_STAT, id, 2, GOOD_NAME), NULL, 0), 0);
        expect_reply(fd, IPCB_OP_STAT, id++, -ENOENT, NULL);
        close(fd);
        check_survived();
}

CHECKED_TEST(hostile, list_paging_raw) {
        /* LIST with max 1 walks one object per page; the cursor moves. */
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_shm *s[3];
        int fd = ipcbd_hello_conn(&d);
        uint64_t cursor = 0;
        unsigned seen = 0;

        for (int i = 0; i < 3; i++) {
                char name[16];
                snprintf(name, sizeof(name), "page%d", i);
                cr_assert_eq(ipcb_shm_create(good, name, 4096, NULL, &s[i]), 0);
        }
        for (uint32_t id = 1;; id++) {
                ipcb_msg m = { .hdr = { .op = IPCB_OP_LIST, .id = id } }, r;
                m.list.max = 1;
                m.list.cursor = cursor;
                cr_assert_eq(raw_send(fd, buf, enc(&m, buf), NULL, 0), 0);
                r = expect_reply(fd, IPCB_OP_LIST, id, 0, NULL);
                cr_assert_leq(r.list_reply.count, 1);
                seen += r.list_reply.count;
                if (!r.list_reply.more)
                        break;
                cr_assert_gt(r.list_reply.next_cursor, cursor, "cursor did not move");
                cursor = r.list_reply.next_cursor;
                cr_assert_lt(id, 100, "LIST does not terminate");
        }
        cr_assert_eq(seen, 4, "saw %u objects", seen);
        for (int i = 0; i < 3; i++)
                ipcb_shm_close(s[i]);
        close(fd);
        check_survived();
}

/* ---- descriptors ---- */

CHECKED_TEST(hostile, wrong_fd_count) {
        uint8_t buf[IPCB_MSG_MAX];
        size_t len;
        int fd, p[2], sent[2];

        /* Header says 1, none attached. */
        fd = ipcbd_hello_conn(&d);
        len = enc_hello(buf, 1, IPCB_PROTO_VERSION);
        buf[2] = 1;
        expect_disconnect(fd, buf, len, NULL, 0, "nfds 1, 0 attached");
        close(fd);

        /* Header says 0, 2 attached. */
        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        sent[0] = p[0];
        sent[1] = fcntl(p[0], F_DUPFD_CLOEXEC, 3);
        cr_assert_geq(sent[1], 0);
        fd = ipcbd_hello_conn(&d);
        len = enc_hello(buf, 2, IPCB_PROTO_VERSION);
        expect_disconnect(fd, buf, len, sent, 2, "nfds 0, 2 attached");
        close(sent[0]);
        close(sent[1]);
        expect_released(p[1], "nfds 0, 2 attached");
        close(p[1]);
        close(fd);

        /* Header says 3, 2 attached. */
        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        sent[0] = p[0];
        sent[1] = fcntl(p[0], F_DUPFD_CLOEXEC, 3);
        fd = ipcbd_hello_conn(&d);
        len = enc_named(buf, IPCB_OP_STAT, 3, 1, GOOD_NAME);
        buf[2] = 3;
        expect_disconnect(fd, buf, len, sent, 2, "nfds 3, 2 attached");
        close(sent[0]);
        close(sent[1]);
        expect_released(p[1], "nfds 3, 2 attached");
        close(p[1]);
        close(fd);
        check_survived();
}

CHECKED_TEST(hostile, unsolicited_fds) {
        uint8_t buf[IPCB_MSG_MAX];
        int fd, p[2], sent[5];
        size_t len;

        /* 4 fds on a HELLO whose header says 0; then whose header says 4 (no
         * request takes fds); then 5 fds, one more than any message may carry. */
        for (unsigned round = 0; round < 3; round++) {
                unsigned n = round == 2 ? 5 : 4;
                cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
                sent[0] = p[0];
                for (unsigned i = 1; i < n; i++) {
                        sent[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
                        cr_assert_geq(sent[i], 0);
                }
                fd = round == 0 ? ipcbd_hello_conn(&d) : raw_connect(d.sock);
                cr_assert_geq(fd, 0);
                len = enc_hello(buf, 1, IPCB_PROTO_VERSION);
                buf[2] = round == 0 ? 0 : (uint8_t)n;
                expect_disconnect(fd, buf, len, sent, n, "unsolicited fds");
                for (unsigned i = 0; i < n; i++)
                        close(sent[i]);
                expect_released(p[1], "unsolicited fds");
                close(p[1]);
                close(fd);
        }
        check_survived();
}

CHECKED_TEST(hostile, max_fds_ctrunc) {
        enum { NFDS = 253 }; /* SCM_MAX_FD */
        uint8_t buf[IPCB_MSG_MAX];
        int sent[NFDS], p[2], fd;

        raise_nofile(4096);
        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        /* The pipe's read end first (the daemon receives it) and last (the
         * kernel drops it for want of control-buffer room). */
        sent[0] = p[0];
        sent[NFDS - 1] = fcntl(p[0], F_DUPFD_CLOEXEC, 3);
        for (int i = 1; i < NFDS - 1; i++) {
                sent[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
                cr_assert_geq(sent[i], 0, "open /dev/null: %s", strerror(errno));
        }
        fd = ipcbd_hello_conn(&d);
        expect_disconnect(fd, buf, enc_hello(buf, 1, IPCB_PROTO_VERSION), sent, NFDS, "253 fds");
        for (int i = 0; i < NFDS; i++)
                close(sent[i]);
        expect_released(p[1], "253 fds");
        close(p[1]);
        close(fd);
        report("after 253 fds");
        check_survived();
}

CHECKED_TEST(hostile, close_bogus_handle) {
        static const uint64_t bogus[] = { 0, 1, 2, 0xffffffffu, 1ull << 32 | 1, UINT64_MAX };
        uint8_t buf[IPCB_MSG_MAX];
        uint32_t id = 1;
        int a = ipcbd_hello_conn(&d), b = ipcbd_hello_conn(&d), mfd;
        ipcb_msg r;

        for (size_t i = 0; i < sizeof(bogus) / sizeof(bogus[0]); i++) {
                cr_assert_eq(raw_send(a, buf, enc_close(buf, id, bogus[i]), NULL, 0), 0);
                expect_reply(a, IPCB_OP_CLOSE, id++, -EBADF, NULL);
        }
        /* A real handle of connection a means nothing on connection b. */
        cr_assert_eq(raw_send(a, buf, enc_open(buf, id, GOOD_NAME, IPCB_WA_READ_ONLY), NULL, 0), 0);
        r = expect_reply(a, IPCB_OP_SHM_OPEN, id++, 0, &mfd);
        cr_assert_geq(mfd, 0);
        close(mfd);
        uint64_t h = r.shm_reply.handle;
        cr_assert_eq(raw_send(b, buf, enc_close(buf, id, h), NULL, 0), 0);
        expect_reply(b, IPCB_OP_CLOSE, id++, -EBADF, NULL);
        /* A stale generation misses. */
        cr_assert_eq(raw_send(a, buf, enc_close(buf, id, h + (1ull << 32)), NULL, 0), 0);
        expect_reply(a, IPCB_OP_CLOSE, id++, -EBADF, NULL);
        cr_assert_eq(raw_send(a, buf, enc_close(buf, id, h), NULL, 0), 0);
        expect_reply(a, IPCB_OP_CLOSE, id++, 0, NULL);
        /* Double close. */
        cr_assert_eq(raw_send(a, buf, enc_close(buf, id, h), NULL, 0), 0);
        expect_reply(a, IPCB_OP_CLOSE, id++, -EBADF, NULL);
        /* The slot is reused with a new generation: the old id stays dead. */
        cr_assert_eq(raw_send(a, buf, enc_open(buf, id, GOOD_NAME, IPCB_WA_READ_ONLY), NULL, 0), 0);
        r = expect_reply(a, IPCB_OP_SHM_OPEN, id++, 0, &mfd);
        close(mfd);
        cr_assert_neq(r.shm_reply.handle, h, "a released handle id was handed out again");
        cr_assert_eq(raw_send(a, buf, enc_close(buf, id, h), NULL, 0), 0);
        expect_reply(a, IPCB_OP_CLOSE, id++, -EBADF, NULL);
        close(a);
        close(b);
        check_survived();
}

/* ---- resource exhaustion ---- */


/* A client that sends and never reads is simply no longer read: its socket
 * fills, the daemon keeps at most one queued reply (and a few fds) for it,
 * and everyone else is served meanwhile. */
CHECKED_TEST(hostile, client_never_reads) {
        uint8_t msg[3][IPCB_MSG_MAX];
        size_t lens[3];
        unsigned sent, total = 0;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        int fd, k;

        report("baseline");
        fd = ipcbd_hello_conn(&d);
        /* STAT, HELLO, and SHM_OPEN (whose replies carry fds). */
        lens[0] = enc_named(msg[0], IPCB_OP_STAT, 1, 1, GOOD_NAME);
        lens[1] = enc_hello(msg[1], 2, IPCB_PROTO_VERSION);
        lens[2] = enc_open(msg[2], 3, GOOD_NAME, IPCB_WA_READ_ONLY);
        for (int i = 0; i < 3; i++) {
                k = raw_send_until_stalled(fd, msg[i], lens[i], 100000, 300, &sent);
                cr_assert_eq(k, 0, "the daemon dropped a client that does not read (%s)",
                             strerror(-k));
                total += sent;
                /* The daemon stays responsive, and holds little for it. */
                cr_assert_eq(ipcb_stat(good, IPCB_KIND_SHM, GOOD_NAME, &info), 0);
                cr_assert_leq(ipcbd_fd_count(&d), base_fds + 1 + 2 * 4,
                              "the daemon holds %d fds for a client that does not read",
                              ipcbd_fd_count(&d) - base_fds);
        }
        fprintf(stderr, "[hostile] never-reading client: %u requests sent before its socket "
                        "stayed full; daemon fds %d (baseline %d)\n",
                total, ipcbd_fd_count(&d), base_fds);
        close(fd);
        report("after never-reading client");
        check_survived();
}

CHECKED_TEST(hostile, connect_churn) {
        report("baseline");
        for (int i = 0; i < 2000; i++) {
                int fd = raw_connect(d.sock);
                cr_assert_geq(fd, 0, "connect #%d: %s", i, strerror(-fd));
                if (i % 4 == 0)
                        cr_assert_eq(raw_hello(fd), 0);
                close(fd);
        }
        cr_assert(ipcbd_wait_fds(&d, base_fds, 10000));
        report("after 2000 connect/close");
        check_survived();
}

CHECKED_TEST(hostile, many_connections_held) {
        enum { N = 500 };
        int fds[N];

        if (geteuid() != 0) /* another uid is held to 256 connections */
                cr_skip_test("500 connections of one uid need uid 0 (exempt from the connection quota)");
        raise_nofile(N + 256);
        report("baseline");
        for (int i = 0; i < N; i++) {
                fds[i] = raw_connect(d.sock);
                cr_assert_geq(fds[i], 0, "connect #%d: %s", i, strerror(-fds[i]));
                cr_assert_eq(raw_hello(fds[i]), 0);
        }
        cr_assert(ipcbd_wait_fds(&d, base_fds + N, 5000));
        report("with 500 connections");
        /* The good client is served while they are all open. */
        ipcb_shm *s;
        cr_assert_eq(ipcb_shm_open(good, GOOD_NAME, IPCB_READ_WRITE, &s), 0);
        cr_assert(good_bytes_intact(ipcb_shm_data(s)));
        cr_assert_eq(ipcb_shm_close(s), 0);
        for (int i = 0; i < N; i++)
                close(fds[i]);
        cr_assert(ipcbd_wait_fds(&d, base_fds, 10000));
        report("after closing them");
        check_survived();
}

CHECKED_TEST(hostile, handles_released_on_hangup) {
        /* A raw client opens the same segment many times and creates
         * transient ones, then hangs up without closing anything. */
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        int fd = ipcbd_hello_conn(&d), mfd;
        uint32_t id = 1;

        for (int i = 0; i < 200; i++) {
                cr_assert_eq(raw_send(fd, buf, enc_open(buf, id, GOOD_NAME, 1 + (i & 1)), NULL, 0), 0);
                expect_reply(fd, IPCB_OP_SHM_OPEN, id++, 0, &mfd);
                close(mfd);
        }
        for (int i = 0; i < 20; i++) {
                char name[16];
                snprintf(name, sizeof(name), "orphan%d", i);
                cr_assert_eq(raw_send(fd, buf, enc_create(buf, id, name, 8192, 0600, 0), NULL, 0), 0);
                expect_reply(fd, IPCB_OP_SHM_CREATE, id++, 0, &mfd);
                close(mfd);
        }
        cr_assert_eq(ipcb_stat(good, IPCB_KIND_SHM, GOOD_NAME, &info), 0);
        cr_assert_eq(info.handles, 201);
        close(fd);
        cr_assert(ipcbd_wait_fds(&d, base_fds, 5000));
        cr_assert_eq(ipcb_stat(good, IPCB_KIND_SHM, GOOD_NAME, &info), 0);
        cr_assert_eq(info.handles, 1, "handles of a closed connection were not released");
        cr_assert_eq(ipcb_stat(good, IPCB_KIND_SHM, "orphan0", &info), -ENOENT);
        check_survived();
}

CHECKED_TEST(hostile, daemon_out_of_fds) {
        /* Squeeze the daemon's fd limit, then flood it with connections: it
         * must refuse what it cannot hold (-EMFILE to a create), not spin on
         * a listening socket that stays readable, and recover afterwards. */
        enum { N = 64 };
        struct rlimit tight, old;
        int fds[N], k;
        ipcb_shm *s = NULL;
        long t0, t1;

        raise_nofile(N + 256);
        cr_assert_eq(prlimit(d.pid, RLIMIT_NOFILE, NULL, &old), 0);
        /* Only the soft limit: lowering the hard one could not be undone
         * without CAP_SYS_RESOURCE. */
        tight = (struct rlimit){ .rlim_cur = (rlim_t)base_fds + 8, .rlim_max = old.rlim_max };
        cr_assert_eq(prlimit(d.pid, RLIMIT_NOFILE, &tight, NULL), 0, "prlimit: %s", strerror(errno));
        for (int i = 0; i < N; i++) {
                fds[i] = raw_connect(d.sock);
                cr_assert_geq(fds[i], 0, "connect #%d: %s", i, strerror(-fds[i]));
        }
        cr_assert(ipcbd_wait_fds(&d, (int)tight.rlim_cur, 5000), "daemon did not fill its fd table");
        report("at the fd limit");
        /* A create needs two more fds: refused, and nothing is left behind. */
        k = ipcb_shm_create(good, "nofds", 4096, NULL, &s);
        cr_assert(k == -EMFILE || k == -ENFILE, "create at the fd limit: %s", ipcb_strerror(k));
        /* Waiting connections must not make the loop spin. */
        t0 = proc_cpu_ticks(d.pid);
        usleep(500 * 1000);
        t1 = proc_cpu_ticks(d.pid);
        fprintf(stderr, "[hostile] daemon CPU while out of fds: %ld ticks in 500 ms\n", t1 - t0);
        cr_assert_lt(t1 - t0, 20, "daemon busy-loops while out of fds (%ld ticks in 0.5 s)", t1 - t0);

        for (int i = 0; i < N; i++)
                close(fds[i]);
        cr_assert_eq(prlimit(d.pid, RLIMIT_NOFILE, &old, NULL), 0);
        cr_assert(ipcbd_wait_fds(&d, base_fds, 5000));
        report("after the fd flood");
        check_survived();
}

/* A CLOSE with NOREPLY costs its sender nothing to wait for, and the daemon
 * reads on after one (peer.c): a peer that queues hundreds of them still
 * gets at most a burst a turn.  The hostile connection's CLOSEs (of handles
 * it does not have) and a STAT behind them are queued first, then another
 * client's create, all while the daemon is stopped.  The create must be
 * served before the STAT, which therefore finds the segment; a loop that
 * read NOREPLY requests without counting them would answer the STAT
 * -ENOENT. */
CHECKED_TEST(hostile, noreply_flood_shares_the_loop) {
        enum { N = 200 }; /* six bursts of 32; a socket holds ~270 */
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg m = { .hdr = { .op = IPCB_OP_CLOSE, .flags = IPCB_HF_NOREPLY } };
        int bad = ipcbd_hello_conn(&d), other = ipcbd_hello_conn(&d);
        size_t len;
        int k = 0;

        ipcbd_pause(&d);
        for (uint32_t i = 1; i <= N && k == 0; i++) {
                m.hdr.id = i;
                m.close.handle = (uint64_t)i << 32 | 0xdeadu;
                len = enc(&m, buf);
                k = raw_send(bad, buf, len, NULL, 0);
        }
        if (k == 0) {
                len = enc_named(buf, IPCB_OP_STAT, 1, IPCB_KIND_SHM, "fair");
                k = raw_send(bad, buf, len, NULL, 0);
        }
        if (k == 0) {
                len = enc_create(buf, 2, "fair", 4096, 0644, 0);
                k = raw_send(other, buf, len, NULL, 0);
        }
        ipcbd_resume(&d);
        cr_assert_eq(k, 0, "queueing the requests: %s", strerror(-k));
        expect_reply(other, IPCB_OP_SHM_CREATE, 2, 0, NULL);
        expect_reply(bad, IPCB_OP_STAT, 1, 0, NULL);
        close(bad);
        close(other); /* its handle goes, and with it the segment */
        check_survived();
}
