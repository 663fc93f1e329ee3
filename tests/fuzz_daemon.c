/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz_daemon.c: libFuzzer target for the daemon's request handling, in
 * process.  Each input is a small script: up to three clients, each a
 * socketpair whose far end is given to peer_new() (made by a child process
 * when the script says so, so that it can be killed: the daemon watches the
 * client's pid), send requests (mostly well-formed, built with the encoder
 * from fuzz-chosen fields, sometimes damaged) with fds from a menu attached
 * (memfds sealed this way or that, pipes, sockets, /dev/null, an eventfd),
 * run the loop, read the replies or not, write to the semaphore and lock
 * pages they brought (as a client would, or anything), kill a client's
 * process, hang up.  After each input every client hangs up, the loop is
 * run until the daemon is quiescent, persistent objects are unlinked, and:
 *   - no peer, no object and no quota usage is left;
 *   - the process holds exactly the fds it held before the input, and no
 *     memfd mapping: the daemon closed (and unmapped) everything it was sent
 *     or made;
 *   - every datagram the daemon sent decoded as a reply, with the fds its
 *     header declares, and a read-only handle came with a read-only fd.
 * Any failure is an abort() with a message.
 *
 * --write-seeds=DIR writes a few seed inputs (one per handler family) and
 * exits; libFuzzer ignores flags that start with "--". */
#include "config.h"
#include "log.h"
#include "object.h"
#include "mainloop.h"
#include "peer.h"
#include "proto.h"
#include "quota.h"
#include "reaper.h"
#include "registry.h"
#include "sempage.h"
#include "sock.h"
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* main.c's defaults (main.c is not linked: it defines cfg and main). */
/* cfg's defaults (config.c), kept before an input changes them. */
static config cfg_defaults;

#define CLIENTS_MAX 3
#define CONNECTS_MAX 8    /* connections per input */
#define SENDS_MAX 64      /* datagrams per input */
#define OPS_MAX 256       /* script steps per input */
#define HANDLES_MAX 32    /* handle ids remembered per client */
#define MAPS_MAX 16       /* pages and memfds we keep mapped during an input */
#define FORKS_MAX 2       /* connections made by a child process, per input */
#define FDS_TRACKED 1024
#define SETTLE_TURNS 100000

static uv_loop_t loop;
static bool base_fd[FDS_TRACKED];
static int base_nfds;
static bool trace; /* $FUZZ_DAEMON_TRACE: print every datagram, to read a crash */

/* ---- checks ---- */

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...) {
        va_list ap;

        fputs("fuzz_daemon: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        abort();
}

/* Count the open fds; if mark, remember which they are.  The directory's
 * own fd is not counted. */
static int fd_scan(bool mark) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int n = 0, self;

        if (!d)
                fail("cannot open /proc/self/fd: %s", strerror(errno));
        if (mark)
                memset(base_fd, 0, sizeof(base_fd));
        self = dirfd(d);
        while ((e = readdir(d))) {
                int fd = atoi(e->d_name);
                if (e->d_name[0] == '.' || fd == self)
                        continue;
                if (mark && fd < FDS_TRACKED)
                        base_fd[fd] = true;
                n++;
        }
        closedir(d);
        return n;
}

static void fd_check(void) {
        int n = fd_scan(false);
        char path[64], target[256];

        if (n == base_nfds)
                return;
        fprintf(stderr, "fuzz_daemon: %d fds open after the input, %d before it\n", n, base_nfds);
        for (int fd = 0; fd < FDS_TRACKED; fd++) {
                ssize_t k;
                if (base_fd[fd] || fcntl(fd, F_GETFD) < 0)
                        continue;
                snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
                k = readlink(path, target, sizeof(target) - 1);
                target[k > 0 ? k : 0] = '\0';
                fprintf(stderr, "fuzz_daemon:   leaked fd %d -> %s\n", fd, target);
        }
        fail("fd count %d is not back to the baseline %d", n, base_nfds);
}

/* Mappings of memfds (the daemon's semaphore and lock pages, ours) hold no
 * fd: after an input none may be left. */
static void maps_check(void) {
        FILE *f = fopen("/proc/self/maps", "re");
        char line[512];
        unsigned n = 0;

        if (!f)
                fail("cannot open /proc/self/maps: %s", strerror(errno));
        while (fgets(line, sizeof(line), f))
                if (strstr(line, "/memfd:")) {
                        fprintf(stderr, "fuzz_daemon:   left mapped: %s", line);
                        n++;
                }
        fclose(f);
        if (n)
                fail("%u memfd mappings left after the input", n);
}

/* ---- reading the input ---- */

typedef struct input {
        const uint8_t *p;
        size_t left;
} input;

/* Past the end every read gives zeros: short inputs stay meaningful. */
static uint8_t in_u8(input *in) {
        if (!in->left)
                return 0;
        in->left--;
        return *in->p++;
}

static uint16_t in_u16(input *in) {
        uint16_t v = in_u8(in);
        return (uint16_t)(v | in_u8(in) << 8);
}

static uint32_t in_u32(input *in) {
        uint32_t v = in_u16(in);
        return v | (uint32_t)in_u16(in) << 16;
}

static uint64_t in_u64(input *in) {
        uint64_t v = in_u32(in);
        return v | (uint64_t)in_u32(in) << 32;
}

static void in_bytes(input *in, void *buf, size_t n) {
        size_t k = n < in->left ? n : in->left;

        memcpy(buf, in->p, k);
        memset((uint8_t *)buf + k, 0, n - k);
        in->p += k;
        in->left -= k;
}

/* ---- the script's state ---- */

typedef struct client {
        int fd; /* our end; -1: none */
        pid_t pid; /* > 0: the (child) process that made the connection */
        bool write_shut;
        uint32_t next_id;
        uint64_t handles[HANDLES_MAX]; /* handle ids from successful replies */
        unsigned nhandles;
} client;

static client clients[CLIENTS_MAX];
static unsigned connects, sends;
/* What we keep mapped: a memfd we sent (so that FREEZE meets a writable
 * mapping), or a semaphore or lock page the daemon sent, which the script
 * writes to as a client would, or as a hostile one would. */
typedef enum map_kind { MAP_MEMFD, MAP_SEM, MAP_LOCK } map_kind;
typedef struct mapping {
        void *addr;
        map_kind kind;
        uint32_t slot_or_token; /* undo slot (index + 1) or lock token */
} mapping;

static mapping maps[MAPS_MAX];
static unsigned nmaps;
static pid_t children[FORKS_MAX];
static unsigned nchildren;
static uint8_t in_flags;
static bool paged; /* a request that may map a page was sent: check the maps */

/* Input flags (the first byte). */
#define IF_NO_ROOT_OVERRIDE 0x01 /* judge uid 0 like anyone (we run as root in CI) */
#define IF_SMALL_QUOTAS     0x02
#define IF_SMALL_SNDBUF     0x04 /* the daemon's socket fills after a few replies */
#define IF_SMALL_QUEUES     0x08
#define IF_BURST_SHIFT      4    /* 2 bits: max_requests_in_flight 32, 1, 2, 0 */
#define IF_NO_HELLO         0x40
#define IF_FORK_FIRST       0x80 /* the first client connects from a child process */

/* Op bytes: low nibble the step, bits 4-5 the client, bit 6 "do not run the
 * loop after it", bit 7 "do not read the replies after it". */
enum {
        OP_REQUEST_FIRST = 0, /* 0..5: a request built from fields */
        OP_POKE = 6,          /* write to a mapped semaphore or lock page */
        OP_KILL = 7,          /* kill the child process that made the connection */
        OP_RAW = 8,           /* raw bytes */
        OP_EMPTY = 9,         /* an empty datagram with fds */
        OP_OVERSIZE = 10,     /* larger than IPCB_MSG_MAX, with fds */
        OP_TURN = 11,
        OP_DRAIN = 12,
        OP_CONNECT = 13,      /* then a byte: bit 0, from a child process */
        OP_HANGUP = 14,
        OP_MISC = 15,         /* then a byte: 0 shutdown(SHUT_WR), 1 toggle root override */
};
#define OPF_DEFER 0x40
#define OPF_NODRAIN 0x80

/* Request selectors (the byte after a request op). */
enum {
        RQ_HELLO, RQ_CLOSE, RQ_UNLINK, RQ_STAT, RQ_LIST, RQ_SHM_CREATE, RQ_SHM_OPEN,
        RQ_LOCK_PAGE, RQ_SEM_CREATE, RQ_SEM_OPEN, RQ_SET_ACCESS, RQ_FREEZE, RQ_REGISTER,
        RQ_MEMFD, RQ_QUOTA, RQ_HOLDERS, RQ_SEM_OWE, RQ_SEM_APPLY, RQ_UNKNOWN,
};

/* fd menu (fd spec: a choice byte, then an argument byte). */
enum {
        FD_MEMFD_UNSEALED, FD_MEMFD_SHRINK, FD_MEMFD_FIXED, FD_MEMFD_WRITE_SEALED,
        FD_MEMFD_ALL_SEALED, FD_MEMFD_NO_SEALING, FD_MEMFD_RDONLY, FD_MEMFD_WRONLY,
        FD_MEMFD_FUTURE_WRITE, FD_MEMFD_MAPPED, FD_PIPE_READ, FD_PIPE_WRITE, FD_SOCKET,
        FD_NULL_OR_TMPFILE, FD_EVENTFD, FD_MEMFD_SEAL_SEALED,
};

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

/* ---- the fd menu ---- */

static int memfd_new(uint8_t arg, unsigned seals, bool sealing) {
        int fd = memfd_create("fuzz", MFD_CLOEXEC | (sealing ? MFD_ALLOW_SEALING : 0));
        /* sizes: pages 0..127, or just over the daemon's limit (sparse) */
        off_t size = arg & 0x80 ? (off_t)cfg.max_segment_size + 4096 : (off_t)(arg & 0x7f) * 4096;

        if (fd < 0)
                return -1;
        if (ftruncate(fd, size) < 0 || (seals && fcntl(fd, F_ADD_SEALS, seals) < 0)) {
                close(fd);
                return -1;
        }
        return fd;
}

static int reopen(int fd, int flags) {
        char path[64];
        int r;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        r = open(path, flags | O_CLOEXEC);
        close(fd);
        return r;
}

static int one_of_pair(int fds[2], int keep) {
        close(fds[1 - keep]);
        return fds[keep];
}

static int fd_make(input *in) {
        uint8_t choice = in_u8(in) % 16, arg = in_u8(in);
        int pair[2], fd;

        switch (choice) {
        case FD_MEMFD_UNSEALED: return memfd_new(arg, 0, true);
        case FD_MEMFD_SHRINK: return memfd_new(arg, F_SEAL_SHRINK, true);
        case FD_MEMFD_FIXED: return memfd_new(arg, F_SEAL_SHRINK | F_SEAL_GROW, true);
        case FD_MEMFD_WRITE_SEALED: return memfd_new(arg, F_SEAL_SHRINK | F_SEAL_WRITE, true);
        case FD_MEMFD_ALL_SEALED:
                return memfd_new(arg, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL, true);
        case FD_MEMFD_NO_SEALING: return memfd_new(arg, 0, false);
        case FD_MEMFD_RDONLY:
                fd = memfd_new(arg, F_SEAL_SHRINK, true);
                return fd < 0 ? -1 : reopen(fd, O_RDONLY);
        case FD_MEMFD_WRONLY:
                fd = memfd_new(arg, F_SEAL_SHRINK, true);
                return fd < 0 ? -1 : reopen(fd, O_WRONLY);
        case FD_MEMFD_FUTURE_WRITE:
                return memfd_new(arg, F_SEAL_SHRINK | F_SEAL_FUTURE_WRITE, true);
        case FD_MEMFD_MAPPED: {
                /* A writable shared mapping stays until the input ends: FREEZE
                 * then gets EBUSY from F_SEAL_WRITE and falls back. */
                void *map;
                fd = memfd_new(arg | 1, F_SEAL_SHRINK, true);
                if (fd < 0 || nmaps == MAPS_MAX)
                        return fd;
                map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                if (map != MAP_FAILED)
                        maps[nmaps++] = (mapping){ .addr = map, .kind = MAP_MEMFD };
                return fd;
        }
        case FD_PIPE_READ:
        case FD_PIPE_WRITE:
                if (pipe2(pair, O_CLOEXEC) < 0)
                        return -1;
                return one_of_pair(pair, choice == FD_PIPE_WRITE);
        case FD_SOCKET:
                if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
                        return -1;
                return one_of_pair(pair, arg & 1);
        case FD_NULL_OR_TMPFILE:
                /* A regular tmpfs file that is not a memfd, or a device. */
                if (arg & 1) {
                        fd = open("/dev/shm", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
                        if (fd >= 0) {
                                (void)ftruncate(fd, 4096);
                                return fd;
                        }
                }
                return open("/dev/null", O_RDWR | O_CLOEXEC);
        case FD_EVENTFD: return eventfd(0, EFD_CLOEXEC);
        case FD_MEMFD_SEAL_SEALED:
        default: return memfd_new(arg, F_SEAL_SHRINK | F_SEAL_SEAL, true);
        }
}

/* ---- talking to the daemon ---- */

/* Send one datagram with n fds made from the menu (n may pass the protocol's
 * 4: the kernel then truncates the daemon's control data).  Our copies are
 * closed at once: from here on only the daemon may hold them. */
static void send_dgram(client *c, const void *buf, size_t len, unsigned n, input *in) {
        int fds[8];
        unsigned got = 0;

        for (unsigned i = 0; i < n && i < 8; i++) {
                int fd = fd_make(in);
                if (fd >= 0)
                        fds[got++] = fd;
        }
        if (c->fd >= 0 && !c->write_shut && sends < SENDS_MAX) {
                const uint8_t *b = buf;
                /* Reading /proc/self/maps costs more than a whole input:
                 * only after the two requests that make the daemon map a page. */
                if (len >= 2 && ((b[0] | b[1] << 8) == IPCB_OP_SEM_CREATE ||
                                 (b[0] | b[1] << 8) == IPCB_OP_SHM_LOCK_PAGE))
                        paged = true;
                sends++;
                if (trace)
                        fprintf(stderr, "client %d -> %zu bytes (op 0x%04x, %u fds)\n",
                                (int)(c - clients), len, len >= 2 ? b[0] | b[1] << 8 : 0, got);
                /* -EAGAIN (the daemon is not reading), -EPIPE (it hung up): dropped */
                (void)ipcb__sock_send(c->fd, buf, len, fds, got, MSG_DONTWAIT);
        }
        for (unsigned i = 0; i < got; i++)
                close(fds[i]);
}

/* Map a semaphore or lock page from a reply, to write to it later. */
static void map_page(int fd, map_kind kind, uint32_t slot_or_token) {
        void *addr;

        if (nmaps == MAPS_MAX)
                return;
        /* A read-only handle's lock page comes read-only (token 0): the
         * daemon must never hand it out writable. */
        if ((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY) {
                if (kind != MAP_LOCK || slot_or_token != 0)
                        fail("a read-only page with token %u", slot_or_token);
                addr = mmap(NULL, IPCB_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                if (addr != MAP_FAILED)
                        fail("a read-only lock page could be mapped writable");
                return;
        }
        if (kind == MAP_LOCK && slot_or_token == 0)
                fail("a lock page without a token came writable");
        addr = mmap(NULL, IPCB_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (addr == MAP_FAILED)
                fail("cannot map a page the daemon sent: %s", strerror(errno));
        maps[nmaps++] = (mapping){ .addr = addr, .kind = kind, .slot_or_token = slot_or_token };
}

static void learn_handle(client *c, uint64_t h) {
        if (c->nhandles < HANDLES_MAX)
                c->handles[c->nhandles++] = h;
        else
                c->handles[h % HANDLES_MAX] = h;
}

/* Check one datagram from the daemon and learn the handle it gives. */
static void check_reply(client *c, const uint8_t *buf, const ipcb_sock_rx *rx) {
        ipcb_msg m;
        int k = ipcb__proto_decode(buf, rx->len, rx->nfds, &m);
        unsigned op = m.hdr.op & ~IPCB_OP_REPLY;

        if (trace)
                fprintf(stderr, "  client %d <- op 0x%04x id %u status %d, %u fds\n",
                        (int)(c - clients), m.hdr.op, m.hdr.id, k < 0 ? k : m.hdr.status, rx->nfds);
        if (rx->fds_lost)
                fail("the daemon sent more than %u fds in one datagram", IPCB_FDS_MAX);
        if (k < 0 || !(m.hdr.op & IPCB_OP_REPLY))
                fail("the daemon sent a datagram that is not a valid reply (%zu bytes, %u fds, "
                     "op 0x%04x, decode %d)", rx->len, rx->nfds, m.hdr.op, k);
        if (m.hdr.status < 0)
                return;
        switch (op) {
        case IPCB_OP_SHM_CREATE:
        case IPCB_OP_SHM_OPEN: {
                int fl = fcntl(rx->fds[0], F_GETFL);
                if (m.shm_reply.access == IPCB_WA_READ_ONLY && (fl & O_ACCMODE) != O_RDONLY)
                        fail("a read-only handle came with a writable fd (op 0x%04x)", op);
                if (!(fcntl(rx->fds[0], F_GET_SEALS) & F_SEAL_SHRINK))
                        fail("a segment fd without F_SEAL_SHRINK (op 0x%04x)", op);
                learn_handle(c, m.shm_reply.handle);
                break;
        }
        case IPCB_OP_SHM_REGISTER: learn_handle(c, m.shm_reply.handle); break;
        case IPCB_OP_SEM_CREATE:
        case IPCB_OP_SEM_OPEN:
                learn_handle(c, m.sem_reply.handle);
                map_page(rx->fds[0], MAP_SEM, m.sem_reply.slot);
                break;
        case IPCB_OP_SHM_LOCK_PAGE: map_page(rx->fds[0], MAP_LOCK, m.lock_reply.token); break;
        default: break;
        }
}

/* Read (and close the fds of) every reply waiting on c. */
static void drain(client *c) {
        static uint8_t buf[IPCB_MSG_MAX];
        ipcb_sock_rx rx;

        while (c->fd >= 0) {
                int k = ipcb__sock_recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT, NULL, &rx);
                if (k == -EMSGSIZE || k == -EBADMSG)
                        fail("the daemon sent an oversized or empty datagram (%d)", k);
                if (k != 1)
                        return;
                check_reply(c, buf, &rx);
                for (unsigned i = 0; i < rx.nfds; i++)
                        close(rx.fds[i]);
        }
}

static void drain_all(void) {
        for (unsigned i = 0; i < CLIENTS_MAX; i++)
                drain(&clients[i]);
}

static void turn(void) {
        mainloop_turn(false);
}

/* Run the loop until the daemon has nothing left to do: every peer gone,
 * every fd handed to the reaper's workers closed, and every uv handle's
 * close callback run (the turns after the last peer went).  The one place
 * that knows what "quiescent" means. */
static void settle(void) {
        unsigned quiet = 0;

        for (unsigned i = 0; i < SETTLE_TURNS; i++) {
                if (peer_count() == 0 && peer_lingering() == 0 && reaper_pending() == 0 &&
                    ++quiet > 2)
                        return;
                turn();
                if (reaper_pending())
                        usleep(50); /* a worker is closing */
        }
        fail("the daemon is not quiescent after %u loop turns (%u peers left)", SETTLE_TURNS,
             peer_count());
}

/* ---- building requests ---- */

static const char *const names[] = { "a", "b", "seg", "sem.1", "x:y@z+_-" };
#define NNAMES (sizeof(names) / sizeof(names[0]))

/* Mostly a few shared names, so that lookups find what creates made. */
static ipcb_name pick_name(input *in, char buf[300]) {
        uint8_t sel = in_u8(in) % 8;
        ipcb_name n;

        switch (sel) {
        case 5: /* fuzz bytes: rarely a valid name */
                n.len = in_u8(in) % 32;
                in_bytes(in, buf, n.len);
                break;
        case 6: /* the name rule's refusals */
                switch (in_u8(in) % 4) {
                case 0: n.len = 0; break;
                case 1: n.len = 2; memcpy(buf, ".a", 2); break;
                case 2: n.len = IPCB_NAME_MAX + 1; memset(buf, 'n', n.len); break;
                default: n.len = 3; memcpy(buf, "a/b", 3); break;
                }
                break;
        default:
                n.len = (uint16_t)strlen(names[sel % NNAMES]);
                memcpy(buf, names[sel % NNAMES], n.len);
                break;
        }
        n.ptr = buf;
        return n;
}

static uint64_t pick_size(input *in) {
        switch (in_u8(in) % 8) {
        case 0: return 4096;
        case 1: return 1;
        case 2: return 65536;
        case 3: return cfg.max_segment_size;
        case 4: return cfg.max_segment_size + 1;
        case 5: return 0;
        case 6: return 1ull << 63;
        default: return in_u64(in);
        }
}

static uint32_t pick_mode(input *in) {
        static const uint32_t modes[] = { 0600, 0644, 0666, 0, 0777, 0640 };
        uint8_t b = in_u8(in);
        return b < 0xf0 ? modes[b % 6] : in_u32(in);
}

static uint32_t pick_id(input *in) { /* uid or gid */
        uint8_t b = in_u8(in);
        switch (b % 6) {
        case 0: return (uint32_t)getuid();
        case 1: return 0;
        case 2: return 1000;
        case 3: return 65534;
        case 4: return UINT32_MAX;
        default: return in_u32(in);
        }
}

static uint64_t pick_handle(input *in, const client *c) {
        uint8_t b = in_u8(in);

        if (b < 0xe0 && c->nhandles)
                return c->handles[b % c->nhandles];
        if (b < 0xf0) /* a slot index with generation 0: maybe stale */
                return b & 0x0f;
        return in_u64(in);
}

static uint8_t pick_kind(input *in) {
        return in_u8(in) % 4; /* 0 (any) and 3 are invalid but for LIST */
}

/* Fill m's payload for request selector sel; returns how many fds go with it. */
static unsigned build_request(input *in, client *c, unsigned sel, ipcb_msg *m, char nbuf[300]) {
        uint8_t b;

        switch (sel) {
        case RQ_HELLO:
                m->hdr.op = IPCB_OP_HELLO;
                b = in_u8(in);
                m->hello.version = b < 0xf0 ? IPCB_PROTO_VERSION : b;
                return 0;
        case RQ_CLOSE:
                m->hdr.op = IPCB_OP_CLOSE;
                m->close.handle = pick_handle(in, c);
                m->hdr.flags = in_u8(in) & IPCB_HF_NOREPLY;
                return 0;
        case RQ_UNLINK:
        case RQ_STAT:
        case RQ_HOLDERS:
                m->hdr.op = sel == RQ_UNLINK ? IPCB_OP_UNLINK
                            : sel == RQ_STAT ? IPCB_OP_STAT : IPCB_OP_HOLDERS;
                m->stat.kind = pick_kind(in);
                m->stat.name = pick_name(in, nbuf);
                return 0;
        case RQ_LIST:
                m->hdr.op = IPCB_OP_LIST;
                m->list.kind = pick_kind(in);
                m->list.max = in_u8(in);
                b = in_u8(in);
                m->list.cursor = b == 0xff ? in_u64(in) : b;
                return 0;
        case RQ_SHM_CREATE:
                m->hdr.op = IPCB_OP_SHM_CREATE;
                m->shm_create.size = pick_size(in);
                m->shm_create.mode = pick_mode(in);
                b = in_u8(in);
                m->shm_create.flags = b & 0x80 ? in_u32(in) : b & 0x7;
                m->shm_create.name = pick_name(in, nbuf);
                return 0;
        case RQ_SHM_OPEN:
                m->hdr.op = IPCB_OP_SHM_OPEN;
                m->shm_open.access = (uint32_t[]){ 1, 2, 0, 3 }[in_u8(in) % 4];
                m->shm_open.name = pick_name(in, nbuf);
                return 0;
        case RQ_LOCK_PAGE:
                m->hdr.op = IPCB_OP_SHM_LOCK_PAGE;
                m->shm_lock_page.handle = pick_handle(in, c);
                return 0;
        case RQ_SEM_CREATE:
                m->hdr.op = IPCB_OP_SEM_CREATE;
                m->sem_create.initial = in_u8(in);
                b = in_u8(in);
                m->sem_create.max = b == 0xff ? in_u32(in) : b; /* 0: the default */
                m->sem_create.mode = pick_mode(in);
                b = in_u8(in);
                m->sem_create.flags = b & 0x80 ? in_u32(in) : b & 0x1f;
                m->sem_create.name = pick_name(in, nbuf);
                return 0;
        case RQ_SEM_OPEN:
                m->hdr.op = IPCB_OP_SEM_OPEN;
                b = in_u8(in);
                if (b & 0x80)
                        m->sem_open.flags = in_u32(in);
                else
                        m->sem_open.flags = (b & 1 ? IPCB_WF_UNDO : 0) |
                                            (b & 2 ? IPCB_WF_RECLAIM | (uint32_t)(in_u8(in) % 16) << 16 : 0);
                m->sem_open.name = pick_name(in, nbuf);
                return 0;
        case RQ_SET_ACCESS:
                m->hdr.op = IPCB_OP_SET_ACCESS;
                m->set_access.kind = pick_kind(in);
                m->set_access.what = in_u8(in) % 16;
                m->set_access.mode = pick_mode(in);
                m->set_access.uid = pick_id(in);
                m->set_access.gid = pick_id(in);
                m->set_access.name = pick_name(in, nbuf);
                return 0;
        case RQ_FREEZE:
                m->hdr.op = IPCB_OP_FREEZE;
                m->freeze.kind = pick_kind(in);
                m->freeze.name = pick_name(in, nbuf);
                return 0;
        case RQ_REGISTER:
                m->hdr.op = IPCB_OP_SHM_REGISTER;
                m->shm_register.mode = pick_mode(in);
                m->shm_register.flags = in_u8(in) % 4;
                m->shm_register.name = pick_name(in, nbuf);
                return 1;
        case RQ_MEMFD: {
                static const uint32_t bits[] = { F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW,
                                                 F_SEAL_WRITE, F_SEAL_FUTURE_WRITE, 0x20, 0x40,
                                                 0x100 };
                m->hdr.op = IPCB_OP_MEMFD;
                m->memfd.size = pick_size(in);
                b = in_u8(in);
                for (unsigned i = 0; i < 8; i++)
                        if (b & 1u << i)
                                m->memfd.seals |= bits[i];
                return 0;
        }
        case RQ_QUOTA:
                m->hdr.op = IPCB_OP_QUOTA;
                m->quota.uid = pick_id(in);
                m->quota.flags = in_u8(in) % 4;
                m->quota.cursor = in_u8(in);
                return 0;
        case RQ_SEM_OWE:
                m->hdr.op = IPCB_OP_SEM_OWE;
                m->sem_owe.handle = pick_handle(in, c);
                b = in_u8(in);
                m->sem_owe.release = b < 0xf0 ? b % 4 : in_u32(in);
                b = in_u8(in);
                m->sem_owe.owe = b < 0xf0 ? b % 4 : in_u32(in);
                return 0;
        case RQ_SEM_APPLY: {
                static ipcb_sem_apply_ent ents[4];
                m->hdr.op = IPCB_OP_SEM_APPLY;
                m->sem_apply.count = 1 + in_u8(in) % 4;
                for (unsigned i = 0; i < m->sem_apply.count; i++) {
                        ents[i].handle = pick_handle(in, c);
                        b = in_u8(in);
                        ents[i].delta = b < 0xf0 ? (int32_t)(b % 9) - 4 : (int32_t)in_u32(in);
                }
                m->sem_apply.ents = ents;
                return 0;
        }
        default: /* any opcode, any payload */
                m->hdr.op = in_u16(in);
                return 0;
        }
}

/* A request from fields, then, one time in four, some damage: extra fds,
 * a header that lies about them, a flipped byte, a short or long datagram. */
static void op_request(input *in, client *c) {
        static uint8_t buf[IPCB_MSG_MAX + 64];
        char nbuf[300];
        ipcb_msg m = { .hdr = { .id = c->next_id++ } };
        unsigned sel = in_u8(in) % (RQ_UNKNOWN + 1), nfds, extra = 0;
        ssize_t len;
        uint8_t dmg;

        nfds = build_request(in, c, sel, &m, nbuf);
        m.hdr.nfds = (uint8_t)nfds;
        if (sel == RQ_UNKNOWN) { /* encode refuses unknown opcodes: by hand */
                uint8_t plen = in_u8(in);
                memset(buf, 0, IPCB_HDR_SIZE);
                memcpy(buf, &m.hdr.op, 2); /* little-endian hosts only, as the protocol */
                memcpy(buf + 4, &m.hdr.id, 4);
                in_bytes(in, buf + IPCB_HDR_SIZE, plen);
                buf[12] = plen;
                len = IPCB_HDR_SIZE + plen;
        } else {
                len = ipcb__proto_encode(&m, buf, IPCB_MSG_MAX);
                if (len < 0)
                        fail("cannot encode a request (op 0x%04x): %zd", m.hdr.op, len);
        }
        dmg = in_u8(in);
        if (dmg >= 0xc0) {
                switch (dmg & 7) {
                case 0: /* more fds, and a header that counts them */
                        extra = in_u8(in) % 6;
                        buf[2] = (uint8_t)(nfds + extra);
                        break;
                case 1: /* more fds, and a header that says anything */
                        extra = in_u8(in) % 6;
                        buf[2] = in_u8(in);
                        break;
                case 2: {
                        uint16_t off = (uint16_t)(in_u16(in) % (size_t)len);
                        buf[off] = in_u8(in);
                        break;
                }
                case 3:
                        len = in_u16(in) % (len + 1);
                        break;
                case 4: {
                        uint8_t n = in_u8(in) % 16;
                        in_bytes(in, buf + len, n);
                        len += n;
                        break;
                }
                case 5: /* the fds the header announces do not come */
                        nfds = 0;
                        break;
                case 6:
                        buf[3] = in_u8(in);
                        break;
                default: /* the header's length lies */
                        buf[12] = in_u8(in);
                        break;
                }
        }
        send_dgram(c, buf, (size_t)len, nfds + extra, in);
}

static void op_raw(input *in, client *c, unsigned kind) {
        static uint8_t buf[IPCB_MSG_MAX + 256];
        size_t len;

        if (kind == OP_RAW) {
                len = in_u16(in) % (IPCB_MSG_MAX + 1);
                in_bytes(in, buf, len);
        } else if (kind == OP_EMPTY) {
                len = 0;
        } else {
                len = IPCB_MSG_MAX + 1 + in_u8(in);
                memset(buf, 0, len);
        }
        send_dgram(c, buf, len, in_u8(in) % 6, in);
}

/* One undo acquire of one token through slot j, as docs/semaphores.md
 * describes it, stopped after `steps` of its three writes: a client killed
 * before it committed leaves exactly this behind for the daemon to settle. */
static void sem_acquire(ipcb_sem_page *pg, uint32_t j, unsigned steps) {
        ipcb_slotw sl = ipcb_slot_unpack(atomic_load(&pg->slot[j - 1]));
        uint32_t s = (sl.seq + 1) & SEQ_MASK;
        ipcb_w w = ipcb_w_unpack(atomic_load(&pg->word));

        if (w.count == 0 || steps == 0)
                return;
        atomic_store(&pg->slot[j - 1], ipcb_slot_pack((ipcb_slotw){ .held = sl.held, .target = sl.held + 1,
                                                                     .pending = true, .seq = s }));
        if (steps == 1)
                return;
        ipcb_sem_help(pg, w);
        atomic_store(&pg->word, ipcb_w_pack((ipcb_w){ .count = w.count - 1, .slot = j, .seq = s }));
        if (steps == 2)
                return;
        atomic_store(&pg->slot[j - 1], ipcb_slot_pack((ipcb_slotw){ .held = sl.held + 1, .seq = s }));
}

/* Write to a page the daemon shares with us: what a client does, or what a
 * hostile one scribbles.  The daemon reads these pages when a handle goes. */
static void op_poke(input *in) {
        uint8_t b = in_u8(in), what = in_u8(in);
        mapping *mp;

        if (!nmaps)
                return;
        mp = &maps[b % nmaps];
        if (mp->kind == MAP_SEM) {
                ipcb_sem_page *pg = mp->addr;
                uint32_t j = mp->slot_or_token;
                switch (what % 8) {
                case 0:
                        if (j)
                                sem_acquire(pg, j, in_u8(in) % 4);
                        break;
                case 1: /* a plain acquire or release: the count alone */
                        atomic_store(&pg->word, ipcb_w_pack((ipcb_w){ .count = in_u16(in) }));
                        break;
                case 2: /* W naming some slot's operation */
                        atomic_store(&pg->word, ipcb_w_pack((ipcb_w){ .count = in_u8(in),
                                                                       .slot = in_u16(in) % 0x1000,
                                                                       .seq = in_u32(in) }));
                        break;
                case 3: /* our slot says anything */
                        if (j)
                                atomic_store(&pg->slot[j - 1],
                                             ipcb_slot_pack((ipcb_slotw){ .held = in_u16(in),
                                                                          .target = in_u16(in),
                                                                          .pending = in_u8(in) & 1,
                                                                          .seq = in_u32(in) }));
                        break;
                case 4:
                        atomic_store(&pg->slot[in_u16(in) % IPCB_SEM_SLOTS], in_u64(in));
                        break;
                case 5: /* someone asleep */
                        atomic_store(&pg->waiters, in_u32(in));
                        break;
                default:
                        ((uint64_t *)pg)[in_u16(in) % (IPCB_PAGE_SIZE / 8)] = in_u64(in);
                        break;
                }
        } else if (mp->kind == MAP_LOCK) {
                ipcb_lock_page *lk = mp->addr;
                switch (what % 4) {
                case 0: atomic_store(&lk->word, mp->slot_or_token); break;
                case 1: atomic_store(&lk->word, mp->slot_or_token | IPCB_LOCK_WAITERS); break;
                case 2: atomic_store(&lk->word, in_u32(in)); break;
                default: ((uint32_t *)lk)[in_u16(in) % (IPCB_PAGE_SIZE / 4)] = in_u32(in); break;
                }
        }
}

/* A child process that makes a socketpair, sends both ends back over t,
 * and waits to be killed.  It shares our memory (CLONE_VM, so that making
 * it costs no copy of ASan's page tables) but not our fd table: it makes
 * raw syscalls only, on its own stack, and touches nothing of ours. */
static char child_stacks[FORKS_MAX][16384] __attribute__((aligned(16)));

__attribute__((no_sanitize("address", "undefined"))) static int child_main(void *arg) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(2 * sizeof(int))];
        } control;
        char byte = 'p';
        struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                             .msg_controllen = sizeof(control) };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        int s[2];

        if (syscall(SYS_socketpair, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, s) == 0) {
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
                __builtin_memcpy(CMSG_DATA(cm), s, 2 * sizeof(int));
                syscall(SYS_sendmsg, *(int *)arg, &mh, MSG_NOSIGNAL);
        }
        for (;;)
                syscall(SYS_pause);
}

/* A connected pair; with `forked`, made by a child process, so that the
 * daemon sees another pid and can watch it exit. */
static int pair_new(int sv[2], bool forked, pid_t *ret_pid) {
        static uint8_t buf[8];
        ipcb_sock_rx rx;
        int t[2];
        pid_t pid;

        *ret_pid = 0;
        if (!forked || nchildren == FORKS_MAX)
                return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, t) < 0)
                return -1;
        pid = clone(child_main, child_stacks[nchildren] + sizeof(child_stacks[0]),
                    CLONE_VM | SIGCHLD, &t[1]);
        if (pid < 0)
                fail("clone: %s", strerror(errno));
        children[nchildren++] = pid;
        if (ipcb__sock_recv(t[0], buf, sizeof(buf), 0, NULL, &rx) != 1 || rx.nfds != 2)
                fail("the child process sent no socketpair");
        close(t[0]);
        close(t[1]);
        sv[0] = rx.fds[0];
        sv[1] = rx.fds[1];
        *ret_pid = pid;
        return 0;
}

static void op_connect(client *c, bool forked) {
        pid_t pid;
        int sv[2];

        if (c->fd >= 0 || connects >= CONNECTS_MAX)
                return;
        connects++;
        if (pair_new(sv, forked, &pid) < 0)
                fail("socketpair: %s", strerror(errno));
        if (in_flags & IF_SMALL_SNDBUF) {
                int one = 1; /* the kernel's minimum: a few replies fit */
                (void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &one, sizeof(one));
        }
        *c = (client){ .fd = sv[1], .pid = pid, .next_id = 1 };
        if (trace)
                fprintf(stderr, "client %d connects from pid %d\n", (int)(c - clients),
                        pid ? (int)pid : (int)getpid());
        if (peer_new(sv[0]) < 0) { /* over the connection limits: sv[0] closed */
                close(sv[1]);
                c->fd = -1;
                return;
        }
        if (!(in_flags & IF_NO_HELLO)) {
                ipcb_msg m = { .hdr = { .op = IPCB_OP_HELLO, .id = c->next_id++ },
                               .hello = { .version = IPCB_PROTO_VERSION } };
                uint8_t buf[64];
                ssize_t len = ipcb__proto_encode(&m, buf, sizeof(buf));

                if (len < 0 || ipcb__sock_send(c->fd, buf, (size_t)len, NULL, 0, MSG_DONTWAIT) < 0)
                        fail("cannot say HELLO");
                turn();
                drain(c);
        }
}

static void hang_up(client *c) {
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
        c->pid = 0;
        c->write_shut = false;
        c->nhandles = 0;
}

static void config_from(uint8_t f) {
        static const unsigned bursts[] = { 32, 1, 2, 0 };

        cfg = cfg_defaults;
        cfg.root_override = !(f & IF_NO_ROOT_OVERRIDE);
        if (f & IF_SMALL_QUOTAS) {
                cfg.max_objects_per_uid = 3;
                cfg.max_bytes_per_uid = 64 * 1024;
                cfg.max_handles_per_uid = 2; /* < objects: a create can fail after its charge */
                cfg.max_connections_per_uid = 2;
        }
        if (f & IF_SMALL_QUEUES) {
                cfg.max_queued_replies = 2;
                cfg.max_fds_in_flight = 2;
        }
        cfg.max_requests_in_flight = bursts[(f >> IF_BURST_SHIFT) & 3];
}

/* ---- after each input ---- */

/* Only persistent, named objects without handles may outlive their peers;
 * unlink them, as an owner would. */
static void remove_objects(void) {
        object *o, *next;

        for (o = registry_first_after(0); o; o = next) {
                next = registry_next(o);
                if (o->handles || !o->linked || !(o->flags & IPCB_WF_PERSISTENT))
                        fail("object '%s' (kind %u, %u handles, %s, flags 0x%x) outlived every peer",
                             o->name, o->kind, o->handles, o->linked ? "linked" : "unlinked",
                             o->flags);
                object_unlink(o);
        }
        if (registry_count())
                fail("%zu objects left after unlinking every one", registry_count());
}

static void check_clean(void) {
        ipcb_quota_rec recs[4];
        bool more;
        unsigned n = quota_report(false, 0, 0, recs, 4, &more);

        if (peer_count())
                fail("%u peers left", peer_count());
        if (n)
                fail("quota usage left: uid %u objects %llu bytes %llu handles %u connections %u",
                     recs[0].uid, (unsigned long long)recs[0].objects,
                     (unsigned long long)recs[0].bytes, recs[0].handles, recs[0].connections);
        fd_check();
        if (paged)
                maps_check();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        input in = { .p = data, .left = size };
        unsigned nops = 0;

        /* The baseline is taken per input: between inputs libFuzzer may open
         * fds of its own (the symbolizer's pipes, when it prints a new function). */
        base_nfds = fd_scan(true);
        in_flags = in_u8(&in);
        config_from(in_flags);
        connects = sends = 0;
        paged = false;
        for (unsigned i = 0; i < CLIENTS_MAX; i++)
                clients[i] = (client){ .fd = -1 };
        op_connect(&clients[0], in_flags & IF_FORK_FIRST);

        while (in.left && nops++ < OPS_MAX && sends < SENDS_MAX) {
                uint8_t op = in_u8(&in);
                unsigned kind = op & 0x0f;
                client *c = &clients[((op >> 4) & 3) % CLIENTS_MAX];

                switch (kind) {
                case OP_RAW:
                case OP_EMPTY:
                case OP_OVERSIZE: op_raw(&in, c, kind); break;
                case OP_POKE: op_poke(&in); break;
                case OP_KILL:
                        if (c->pid > 0) {
                                siginfo_t si;
                                /* Dead (its pidfd readable) but not reaped
                                 * until the input ends: a zombie's pid is not reused. */
                                kill(c->pid, SIGKILL);
                                int w;
                                /* libFuzzer's SIGALRM may interrupt the wait */
                                while ((w = waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOWAIT)) < 0 &&
                                       errno == EINTR)
                                        ;
                                if (w < 0)
                                        fail("waitid: %s", strerror(errno));
                                c->pid = 0;
                        }
                        break;
                case OP_TURN: turn(); continue;
                case OP_DRAIN: drain(c); continue;
                case OP_CONNECT: op_connect(c, in_u8(&in) & 1); continue;
                case OP_HANGUP: hang_up(c); continue;
                case OP_MISC:
                        if (in_u8(&in) & 1) /* a privileged peer made it, an ordinary one uses it */
                                cfg.root_override = !cfg.root_override;
                        else if (c->fd >= 0 && shutdown(c->fd, SHUT_WR) == 0)
                                c->write_shut = true;
                        break;
                default: op_request(&in, c); break;
                }
                if (!(op & OPF_DEFER))
                        turn();
                if (!(op & OPF_NODRAIN))
                        drain_all();
        }

        drain_all();
        for (unsigned i = 0; i < CLIENTS_MAX; i++)
                hang_up(&clients[i]);
        /* Children hold copies of our ends: the daemon sees no hang-up
         * while they live. */
        while (nchildren) {
                pid_t pid = children[--nchildren];
                pid_t w;
                kill(pid, SIGKILL);
                while ((w = waitpid(pid, NULL, 0)) < 0 && errno == EINTR)
                        ;
                if (w != pid)
                        fail("waitpid: %s", strerror(errno));
        }
        settle();
        remove_objects();
        settle();
        while (nmaps)
                munmap(maps[--nmaps].addr, IPCB_PAGE_SIZE);
        check_clean();
        return 0;
}

/* ---- seeds ---- */

typedef struct seed {
        uint8_t b[512];
        size_t n;
} seed;

static void put_bytes(seed *s, const uint8_t *b, size_t n) {
        for (size_t i = 0; i < n && s->n < sizeof(s->b); i++)
                s->b[s->n++] = b[i];
}

#define PUT(s, ...) put_bytes(s, (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ }))
/* Op byte 0 (a request from client 0, then run the loop and read), the
 * selector and fields, no damage. */
#define REQ(s, ...) PUT(s, 0, __VA_ARGS__, 0)

static void write_seed(const char *dir, const char *name, const seed *s) {
        char path[PATH_MAX];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "wb");
        if (!f || fwrite(s->b, 1, s->n, f) != s->n || fclose(f) != 0)
                fail("cannot write %s", path);
}

/* One seed per handler family; fields as build_request reads them
 * (name 0 is "a", size 0 is 4096, mode 0 is 0600). */
static void write_seeds(const char *dir) {
        seed s;

        /* segment: create, lock page, open read-only, stat, holders, list, freeze, close, unlink */
        s = (seed){ .n = 0 };
        PUT(&s, 0);
        REQ(&s, RQ_SHM_CREATE, 0, 0, 0, 0);
        REQ(&s, RQ_LOCK_PAGE, 0);
        REQ(&s, RQ_SHM_OPEN, 0, 0);
        REQ(&s, RQ_STAT, 1, 0);
        REQ(&s, RQ_HOLDERS, 1, 0);
        REQ(&s, RQ_LIST, 0, 0, 0);
        REQ(&s, RQ_FREEZE, 1, 0);
        REQ(&s, RQ_CLOSE, 0, 1);
        REQ(&s, RQ_UNLINK, 1, 0);
        write_seed(dir, "shm", &s);

        /* a persistent segment, opened read-write by a second client, left behind */
        s = (seed){ .n = 0 };
        PUT(&s, IF_NO_ROOT_OVERRIDE);
        REQ(&s, RQ_SHM_CREATE, 0, 1, IPCB_WF_PERSISTENT | IPCB_WF_GROWABLE, 1);
        PUT(&s, OP_CONNECT | 0x10, 0);
        PUT(&s, 0x10, RQ_SHM_OPEN, 1, 1, 0);
        PUT(&s, OP_HANGUP);
        write_seed(dir, "shm-persistent", &s);

        /* semaphore with undo, opened again with undo, chmod/chown, close */
        s = (seed){ .n = 0 };
        PUT(&s, 0);
        REQ(&s, RQ_SEM_CREATE, 1, 4, 0, IPCB_WF_UNDO, 3);
        REQ(&s, RQ_SEM_OPEN, 1, 3);
        REQ(&s, RQ_SET_ACCESS, 2, 7, 2, 2, 2, 3);
        REQ(&s, RQ_CLOSE, 0, 0);
        write_seed(dir, "sem", &s);

        /* register a sealed memfd, a mapped one (freeze falls back), a pipe */
        s = (seed){ .n = 0 };
        PUT(&s, 0);
        PUT(&s, 0, RQ_REGISTER, 0, IPCB_WF_PERSISTENT, 0, 0, FD_MEMFD_SHRINK, 1);
        PUT(&s, 0, RQ_REGISTER, 0, 0, 1, 0, FD_MEMFD_MAPPED, 1);
        REQ(&s, RQ_FREEZE, 1, 1);
        PUT(&s, 0, RQ_REGISTER, 0, 0, 2, 0, FD_PIPE_READ, 0);
        write_seed(dir, "register", &s);

        /* an anonymous memfd, the quota report */
        s = (seed){ .n = 0 };
        PUT(&s, IF_SMALL_QUOTAS);
        REQ(&s, RQ_MEMFD, 0, 0x0e);
        REQ(&s, RQ_QUOTA, 0, 1, 0);
        write_seed(dir, "memfd-quota", &s);

        /* over the handle quota: the third create is charged, then undone */
        s = (seed){ .n = 0 };
        PUT(&s, IF_SMALL_QUOTAS | IF_NO_ROOT_OVERRIDE);
        REQ(&s, RQ_SHM_CREATE, 0, 0, 0, 0);
        REQ(&s, RQ_SEM_CREATE, 0, 0, 0, 0, 1);
        REQ(&s, RQ_SHM_CREATE, 0, 0, 0, 2);
        write_seed(dir, "quota-handles", &s);

        /* fds where none belong: 5 on a STAT (MSG_CTRUNC), 2 on an empty datagram */
        s = (seed){ .n = 0 };
        PUT(&s, 0);
        PUT(&s, 0, RQ_STAT, 1, 0, 0xc0, 5, FD_EVENTFD, 0, FD_SOCKET, 0, FD_NULL_OR_TMPFILE, 1,
            FD_PIPE_WRITE, 0, FD_MEMFD_UNSEALED, 0);
        PUT(&s, OP_CONNECT | 0x10, 0);
        PUT(&s, OP_EMPTY | 0x10, 2, FD_MEMFD_FIXED, 1, FD_PIPE_READ, 0);
        write_seed(dir, "stray-fds", &s);

        /* undo tokens of a process that died in the middle of an acquire */
        s = (seed){ .n = 0 };
        PUT(&s, IF_FORK_FIRST);
        REQ(&s, RQ_SEM_CREATE, 2, 4, 0, IPCB_WF_UNDO, 3);
        PUT(&s, OP_POKE, 0, 0, 2);
        PUT(&s, OP_KILL);
        REQ(&s, RQ_STAT, 2, 3);
        write_seed(dir, "sem-died", &s);

        /* a segment lock held by a process that died */
        s = (seed){ .n = 0 };
        PUT(&s, IF_FORK_FIRST);
        REQ(&s, RQ_SHM_CREATE, 0, 0, 0, 0);
        REQ(&s, RQ_LOCK_PAGE, 0);
        PUT(&s, OP_POKE, 0, 0);
        PUT(&s, OP_KILL);
        write_seed(dir, "lock-died", &s);

        /* given away (uid 1000, group 0, 0640), then opened without privilege */
        s = (seed){ .n = 0 };
        PUT(&s, 0);
        REQ(&s, RQ_SHM_CREATE, 0, 0, IPCB_WF_PERSISTENT, 0);
        REQ(&s, RQ_SET_ACCESS, 1, 7, 5, 2, 1, 0);
        PUT(&s, OP_MISC, 1);
        PUT(&s, OP_CONNECT | 0x10, 0);
        PUT(&s, 0x10, RQ_SHM_OPEN, 0, 0, 0);
        PUT(&s, 0x10, RQ_SHM_OPEN, 1, 0, 0);
        write_seed(dir, "not-owner", &s);

        /* a client that does not read: replies with fds queue up */
        s = (seed){ .n = 0 };
        PUT(&s, IF_SMALL_SNDBUF | IF_SMALL_QUEUES);
        REQ(&s, RQ_SHM_CREATE, 0, 0, 0, 0);
        for (int i = 0; i < 8; i++)
                PUT(&s, OPF_NODRAIN, RQ_LOCK_PAGE, 0, 0);
        write_seed(dir, "queue", &s);
}

/* ---- set-up ---- */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        int k;

        for (int i = 1; i < *argc; i++)
                if (strncmp((*argv)[i], "--write-seeds=", 14) == 0) {
                        write_seeds((*argv)[i] + 14);
                        exit(0);
                }
        cfg_defaults = cfg;
        trace = getenv("FUZZ_DAEMON_TRACE");
        log_verbose = trace;
        log_init();
        signal(SIGPIPE, SIG_IGN);
        if ((k = uv_loop_init(&loop)) < 0 || (k = mainloop_init(&loop)) < 0 || (k = registry_init()) < 0 ||
            (k = reaper_init(&loop)) < 0 || (k = peer_init(&loop)) < 0 ||
            (k = store_start(&loop, false, 0)) < 0)
                fail("cannot initialise: %s", strerror(-k));
        return 0;
}
