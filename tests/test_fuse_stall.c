/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_fuse_stall.c: the daemon's loop never waits on a FUSE server.  A
 * client opens a file on a FUSE mount whose server then stops answering,
 * and hands the fd to the daemon: attached to a HELLO (unsolicited: the
 * daemon closes it, and close() sends FUSE_FLUSH) and as the memfd of an
 * SHM_REGISTER (refused: F_GET_SEALS fails without asking the server, so
 * fstat/fstatfs never reach it).  A well-behaved client (the prober, as in
 * test_stall.c) measures its round trips meanwhile; the figures are printed
 * as [fuse] lines.
 *
 * The FUSE server is a thread of the test speaking the kernel protocol
 * (<linux/fuse.h>) on /dev/fuse; the mount lives in a private mount
 * namespace of the test process.  Once stalled, the server reads requests
 * and holds them unanswered, noting who sent them (the in_header's pid is
 * the sending thread's id: the daemon's loop thread has the daemon's pid);
 * released, it answers them, so that every blocked close() finishes and
 * nothing hangs at exit.  Needs root and /dev/fuse, or skips. */
#include "harness.h"
#include "multiuid.h"
#include "prober.h"

#include "ipcbroker.h"
#include "proto.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static ipcbd d;

/* ---- a FUSE server that can fall silent ---- */

#define FUSE_FILE_INO 2
#define FUSE_MAX_WRITE (128 * 1024)
#define FUSE_HELD_MAX 64

typedef struct held_req {
        uint64_t unique, nodeid;
        uint32_t opcode, pid;
} held_req;

typedef struct fusefs {
        char dir[64];    /* mount point; "" once removed */
        int devfd;       /* /dev/fuse, -1: closed */
        bool mounted;
        bool running;    /* the server thread was started */
        pthread_t thread;
        atomic_bool quit; /* the server thread stops */
        atomic_bool gone; /* the kernel ended the connection (unmounted, all files closed) */
        pthread_mutex_t mtx;
        bool stall;                   /* hold every request unanswered */
        unsigned nheld, nanswered;    /* held[nanswered..nheld) wait for release */
        unsigned nlost;               /* held past FUSE_HELD_MAX: never answered */
        held_req held[FUSE_HELD_MAX]; /* kept after release, for the report */
} fusefs;

static fusefs fs = { .devfd = -1, .mtx = PTHREAD_MUTEX_INITIALIZER };

static const char *fuse_op_name(uint32_t op) {
        switch (op) {
        case FUSE_LOOKUP: return "LOOKUP";
        case FUSE_GETATTR: return "GETATTR";
        case FUSE_OPEN: return "OPEN";
        case FUSE_STATFS: return "STATFS";
        case FUSE_RELEASE: return "RELEASE";
        case FUSE_FLUSH: return "FLUSH";
        case FUSE_GETXATTR: return "GETXATTR";
        case FUSE_ACCESS: return "ACCESS";
        default: return "other";
        }
}

static void fuse_reply(int devfd, uint64_t unique, int error, const void *body, size_t len) {
        struct fuse_out_header out = {
                .len = (uint32_t)(sizeof(out) + (error ? 0 : len)), .error = error, .unique = unique
        };
        struct iovec iov[2] = { { &out, sizeof(out) }, { (void *)body, error ? 0 : len } };
        /* ENOENT: the request was interrupted meanwhile; nothing to do */
        (void)!writev(devfd, iov, body && !error ? 2 : 1);
}

static void fuse_fill_attr(uint64_t nodeid, struct fuse_attr *a) {
        *a = (struct fuse_attr){ .ino = nodeid, .nlink = 1, .blksize = 4096 };
        if (nodeid == FUSE_ROOT_ID) {
                a->mode = S_IFDIR | 0755;
                a->nlink = 2;
        } else {
                a->mode = S_IFREG | 0666;
                a->size = 4096;
                a->blocks = 8;
        }
}

/* Answer one request.  Every attribute and entry timeout is 0, so that
 * each later fstat of the file asks the server again. */
static void fuse_answer(int devfd, const struct fuse_in_header *in, const void *arg) {
        switch (in->opcode) {
        case FUSE_INIT: {
                const struct fuse_init_in *ii = arg;
                if (!ii) { /* never held: the stall comes after the mount */
                        fuse_reply(devfd, in->unique, -EIO, NULL, 0);
                        break;
                }
                struct fuse_init_out io = {
                        .major = FUSE_KERNEL_VERSION,
                        .minor = ii->minor < FUSE_KERNEL_MINOR_VERSION ? ii->minor
                                                                      : FUSE_KERNEL_MINOR_VERSION,
                        .max_readahead = ii->max_readahead,
                        .max_background = 16,
                        .congestion_threshold = 12,
                        .max_write = FUSE_MAX_WRITE,
                        .time_gran = 1,
                };
                fuse_reply(devfd, in->unique, ii->major == FUSE_KERNEL_VERSION ? 0 : -EPROTO, &io,
                           sizeof(io));
                break;
        }
        case FUSE_LOOKUP: {
                struct fuse_entry_out eo = { .nodeid = FUSE_FILE_INO, .generation = 1 };
                if (!arg || in->nodeid != FUSE_ROOT_ID || strcmp(arg, "f") != 0) {
                        fuse_reply(devfd, in->unique, -ENOENT, NULL, 0);
                        break;
                }
                fuse_fill_attr(FUSE_FILE_INO, &eo.attr);
                fuse_reply(devfd, in->unique, 0, &eo, sizeof(eo));
                break;
        }
        case FUSE_GETATTR: {
                struct fuse_attr_out ao = { 0 };
                fuse_fill_attr(in->nodeid, &ao.attr);
                fuse_reply(devfd, in->unique, 0, &ao, sizeof(ao));
                break;
        }
        case FUSE_OPEN: {
                struct fuse_open_out oo = { .fh = 1 };
                fuse_reply(devfd, in->unique, 0, &oo, sizeof(oo));
                break;
        }
        case FUSE_STATFS: {
                struct fuse_statfs_out so = { .st = { .blocks = 1, .bsize = 4096, .namelen = 255,
                                                      .frsize = 4096, .files = 2 } };
                fuse_reply(devfd, in->unique, 0, &so, sizeof(so));
                break;
        }
        case FUSE_FLUSH:   /* never ENOSYS: the kernel would stop sending FLUSH */
        case FUSE_RELEASE:
        case FUSE_DESTROY:
                fuse_reply(devfd, in->unique, 0, NULL, 0);
                break;
        case FUSE_FORGET:
        case FUSE_BATCH_FORGET:
        case FUSE_INTERRUPT: /* no reply; the held request is answered on release */
                break;
        default:
                fuse_reply(devfd, in->unique, -ENOSYS, NULL, 0);
                break;
        }
}

/* Hold a request while stalled.  The arguments are not kept: the requests
 * a stalled server can get are answered from their header alone (a LOOKUP
 * would get ENOENT). */
static bool fuse_hold(const struct fuse_in_header *in) {
        bool held = false;

        pthread_mutex_lock(&fs.mtx);
        if (fs.stall && in->opcode != FUSE_FORGET && in->opcode != FUSE_BATCH_FORGET &&
            in->opcode != FUSE_INTERRUPT) {
                if (fs.nheld < FUSE_HELD_MAX)
                        fs.held[fs.nheld++] = (held_req){ .unique = in->unique, .nodeid = in->nodeid,
                                                          .opcode = in->opcode, .pid = in->pid };
                else
                        fs.nlost++;
                held = true;
        }
        pthread_mutex_unlock(&fs.mtx);
        return held;
}

static void *fuse_serve(void *arg) {
        size_t cap = FUSE_MAX_WRITE + 4096; /* the kernel refuses a smaller read buffer */
        char *buf = malloc(cap);

        (void)arg;
        while (buf && !atomic_load(&fs.quit)) {
                struct pollfd pfd = { .fd = fs.devfd, .events = POLLIN };
                if (poll(&pfd, 1, 100) <= 0)
                        continue;
                ssize_t n = read(fs.devfd, buf, cap);
                if (n < 0 && (errno == ENODEV || errno == ECONNABORTED)) {
                        atomic_store(&fs.gone, true);
                        break;
                }
                if (n < (ssize_t)sizeof(struct fuse_in_header))
                        continue; /* EINTR, EAGAIN, ENOENT (interrupted before we read it) */
                const struct fuse_in_header *in = (const void *)buf;
                if (!fuse_hold(in))
                        fuse_answer(fs.devfd, in, buf + sizeof(*in));
        }
        free(buf);
        return NULL;
}

static void fuse_stall(void) {
        pthread_mutex_lock(&fs.mtx);
        fs.stall = true;
        pthread_mutex_unlock(&fs.mtx);
}

/* Answer everything held; from now on every request is answered. */
static void fuse_release(void) {
        unsigned from, to;

        pthread_mutex_lock(&fs.mtx);
        fs.stall = false;
        from = fs.nanswered;
        to = fs.nanswered = fs.nheld;
        pthread_mutex_unlock(&fs.mtx);
        for (unsigned i = from; i < to; i++) {
                struct fuse_in_header in = { .unique = fs.held[i].unique, .nodeid = fs.held[i].nodeid,
                                             .opcode = fs.held[i].opcode };
                fuse_answer(fs.devfd, &in, NULL);
        }
}

/* A private mount namespace (the mount goes with the test process), then
 * "fuse" on a temporary directory served by fuse_serve.  Skips if the
 * kernel or our privileges do not allow it. */
static void fuse_mount(void) {
        char opts[128];
        int k;

        if (unshare(CLONE_NEWNS) < 0)
                cr_skip_test("unshare(CLONE_NEWNS): %s (needs CAP_SYS_ADMIN)", strerror(errno));
        cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0, "make / private: %s",
                     strerror(errno));
        fs.devfd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
        if (fs.devfd < 0)
                cr_skip_test("open /dev/fuse: %s", strerror(errno));
        strcpy(fs.dir, "/tmp/ipcbt-fuse.XXXXXX");
        cr_assert_not_null(mkdtemp(fs.dir));
        snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other", fs.devfd);
        if (mount("ipcbt-fuse", fs.dir, "fuse", MS_NOSUID | MS_NODEV, opts) < 0) {
                k = errno;
                if (k == EPERM || k == ENODEV)
                        cr_skip_test("mount fuse: %s", strerror(k)); /* .fini cleans up */
                cr_assert_fail("mount fuse on %s: %s", fs.dir, strerror(k));
        }
        fs.mounted = true;
        /* The server must run before anything touches the mount: the first
         * access waits for the answer to FUSE_INIT. */
        cr_assert_eq(pthread_create(&fs.thread, NULL, fuse_serve, NULL), 0);
        fs.running = true;
}

static bool fuse_gone(void *arg) {
        (void)arg;
        return atomic_load(&fs.gone);
}

/* Release the server, unmount, wait until the kernel has ended the
 * connection (the superblock goes once the last file on it is closed: the
 * daemon's included), stop the server and close /dev/fuse.  check: assert
 * that the connection ended by itself. */
static void fuse_teardown(bool check) {
        bool gone = true;

        if (fs.running)
                fuse_release();
        if (fs.mounted) {
                umount2(fs.dir, MNT_DETACH);
                fs.mounted = false;
        }
        if (fs.running) {
                gone = wait_until(fuse_gone, NULL, 5000);
                atomic_store(&fs.quit, true);
                pthread_join(fs.thread, NULL);
                fs.running = false;
        }
        if (fs.devfd >= 0) {
                close(fs.devfd); /* aborts the connection if it is still there */
                fs.devfd = -1;
        }
        if (fs.dir[0]) {
                rmdir(fs.dir);
                fs.dir[0] = '\0';
        }
        if (check)
                cr_assert(gone, "the FUSE connection did not end: a file on it is still open");
}

static bool fuse_held_op(void *arg) {
        uint32_t op = *(uint32_t *)arg;
        bool found = false;

        pthread_mutex_lock(&fs.mtx);
        for (unsigned i = 0; i < fs.nheld && !found; i++)
                found = fs.held[i].opcode == op;
        pthread_mutex_unlock(&fs.mtx);
        return found;
}

/* "FLUSH(worker) GETATTR(loop)": what the server held, and from which of
 * the daemon's threads.  Returns how many came from its loop thread. */
static unsigned fuse_held_summary(char *buf, size_t cap) {
        unsigned from_loop = 0;
        size_t off = 0;

        buf[0] = '\0';
        pthread_mutex_lock(&fs.mtx);
        for (unsigned i = 0; i < fs.nheld && off < cap; i++) {
                const char *who = fs.held[i].pid == (uint32_t)d.pid ? "loop" : "worker";
                from_loop += fs.held[i].pid == (uint32_t)d.pid;
                off += (size_t)snprintf(buf + off, cap - off, "%s%s(%s)", i ? " " : "",
                                        fuse_op_name(fs.held[i].opcode), who);
        }
        pthread_mutex_unlock(&fs.mtx);
        return from_loop;
}

/* ---- the fixture ---- */

static void release(void) {
        fuse_teardown(true);
}

/* fixture_end (harness.h) checks the daemon's and our fds and its exit;
 * release() runs before it: the server answers, the mount goes. */
#define FUSE_TEST(name, ...) FIXTURE_TEST(fuse, name, &d, release, ##__VA_ARGS__)

static void cleanup(void) {
        /* a test that failed with the server silent: let the daemon's
         * threads go before it is stopped */
        fuse_teardown(false);
        fixture_cleanup(&d);
}

TestSuite(fuse, .fini = cleanup);

static void begin(void) {
        if (geteuid() != 0)
                cr_skip_test("needs root to mount a FUSE file system; run the tests as root");
        if (access("/dev/fuse", R_OK | W_OK) < 0)
                cr_skip_test("/dev/fuse: %s", strerror(errno));
        fixture_begin(&d, NULL);
        fuse_mount();
}

/* A server that never answers would show as a stall of the whole window. */
#define STALL_WINDOW_US 1000000

/* ---- helpers ---- */

static size_t enc(ipcb_msg *m, uint8_t *buf) {
        ssize_t n = ipcb__proto_encode(m, buf, IPCB_MSG_MAX);
        cr_assert_gt(n, 0);
        return (size_t)n;
}

/* Hand fd (the file on the mount, consumed) to the daemon in the datagram
 * buf: the daemon is stopped meanwhile so that our close (whose FLUSH the
 * server still answers) comes first, and the server falls silent before
 * the daemon sees the fd. */
static void send_then_stall(int conn, const uint8_t *buf, size_t len, int fd) {
        ipcbd_pause(&d);
        cr_assert_eq(raw_send(conn, buf, len, &fd, 1), 0);
        close(fd);
        fuse_stall();
        ipcbd_resume(&d);
}

static int open_fuse_file(void) {
        char path[96];

        snprintf(path, sizeof(path), "%s/f", fs.dir);
        int fd = open(path, O_RDWR | O_CLOEXEC);
        cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
        return fd;
}

/* ---- 1. a FUSE file as an unsolicited fd ---- */

/* close() of it sends FLUSH, which the server never answers: a worker
 * waits, the loop must not. */
FUSE_TEST(file_attached, .timeout = 60) {
        begin();
        prober pr;
        prober_start(&pr, d.sock);
        usleep(50000);
        int t = open_fuse_file();
        int fd = ipcbd_hello_conn(&d);
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg m = { .hdr = { .op = IPCB_OP_HELLO, .id = 2 } };
        m.hello.version = IPCB_PROTO_VERSION;
        long long t0 = prober_now_us();
        send_then_stall(fd, buf, enc(&m, buf), t);
        uint32_t flush = FUSE_FLUSH;
        bool reached = wait_until(fuse_held_op, &flush, 2000);
        long long left = STALL_WINDOW_US - (prober_now_us() - t0);
        if (left > 0)
                usleep((useconds_t)left);
        char held[512];
        unsigned from_loop = fuse_held_summary(held, sizeof(held));
        long long max = prober_stop(&pr, "fuse", "FUSE file (silent server) attached", fuse_release);
        fprintf(stderr, "[fuse] held by the silent server: %s\n", held[0] ? held : "nothing");
        close(fd);
        cr_assert(reached, "the daemon's close of the file never reached the server");
        cr_assert_eq(from_loop, 0, "the daemon's loop waited on the FUSE server: %s", held);
        cr_assert_lt(max, STALL_BOUND_US);
}

/* ---- 2. a FUSE file as SHM_REGISTER's memfd ---- */

/* Refused (-EBADFD) without asking the server, promptly; the close that
 * follows waits on a worker. */
FUSE_TEST(file_registered, .timeout = 60) {
        begin();
        prober pr;
        prober_start(&pr, d.sock);
        usleep(50000);
        int t = open_fuse_file();
        int fd = ipcbd_hello_conn(&d);
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg m = { .hdr = { .op = IPCB_OP_SHM_REGISTER, .id = 4, .nfds = 1 } };
        m.shm_register.name = (ipcb_name){ .ptr = "fuse", .len = 4 };
        m.shm_register.mode = 0644;
        long long t0 = prober_now_us();
        send_then_stall(fd, buf, enc(&m, buf), t);
        ipcb_msg r = { 0 };
        ssize_t n = raw_recv(fd, buf, sizeof(buf), NULL, NULL, 1000);
        long long reply_us = prober_now_us() - t0;
        int dec = n > 0 ? ipcb__proto_decode(buf, (size_t)n, 0, &r) : -1;
        uint32_t flush = FUSE_FLUSH;
        bool reached = n > 0 && wait_until(fuse_held_op, &flush, 2000);
        long long left = STALL_WINDOW_US - (prober_now_us() - t0);
        if (left > 0)
                usleep((useconds_t)left);
        char held[512];
        unsigned from_loop = fuse_held_summary(held, sizeof(held));
        long long max = prober_stop(&pr, "fuse", "FUSE file (silent server) registered", fuse_release);
        fprintf(stderr, "[fuse] register reply after %lld us (%s); held by the silent server: %s\n",
                reply_us, n > 0 ? "answered" : "none within 1 s", held[0] ? held : "nothing");
        close(fd);
        cr_assert_gt(n, 0, "no reply to the register within 1 s: %s", strerror((int)-n));
        cr_assert_eq(dec, 0);
        cr_assert_eq(r.hdr.status, -EBADFD, "register of a FUSE file: %d", r.hdr.status);
        cr_assert(reached, "the daemon's close of the file never reached the server");
        cr_assert_eq(from_loop, 0, "the daemon's loop waited on the FUSE server: %s", held);
        cr_assert_lt(max, STALL_BOUND_US);
}

/* ---- 3. more stuck closes than the daemon started workers ---- */

static bool fuse_held_flushes_at_least(void *arg) {
        unsigned want = *(unsigned *)arg, n = 0;

        pthread_mutex_lock(&fs.mtx);
        for (unsigned i = 0; i < fs.nheld; i++)
                n += fs.held[i].opcode == FUSE_FLUSH;
        pthread_mutex_unlock(&fs.mtx);
        return n >= want;
}

static unsigned fuse_held_flushes(void) {
        unsigned n = 0;

        pthread_mutex_lock(&fs.mtx);
        for (unsigned i = 0; i < fs.nheld; i++)
                n += fs.held[i].opcode == FUSE_FLUSH;
        pthread_mutex_unlock(&fs.mtx);
        return n;
}

#define OTHER_CLIENTS 20

/* As uid B: clients that connect and go, and a 4 MiB segment made, written
 * and closed (the daemon's memfd is then the last: closed off the loop). */
static int come_and_go(void *arg) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg m = { .hdr = { .op = IPCB_OP_HELLO, .id = 1 } };
        ipcb_client *c;
        ipcb_shm *s;
        ssize_t len;
        int k, pipefd[2];

        (void)arg;
        m.hello.version = IPCB_PROTO_VERSION;
        CHILD_CHECK((len = ipcb__proto_encode(&m, buf, sizeof(buf))) > 0, "encode");
        for (int i = 0; i < OTHER_CLIENTS; i++) {
                CHILD_CHECK((k = ipcb_connect(d.sock, &c)) == 0, "connect: %s", strerror(-k));
                if (i == 0) {
                        CHILD_CHECK((k = ipcb_shm_create(c, "mib4", 4u << 20, NULL, &s)) == 0, "%s",
                                    strerror(-k));
                        memset(ipcb_shm_data(s), 1, 4u << 20);
                        CHILD_CHECK(ipcb_shm_close(s) == 0, "close");
                }
                ipcb_disconnect(c);
                /* And a HELLO with a pipe's end attached: closed among the
                 * uid's closes, which need a worker. */
                int r = raw_connect(d.sock);
                CHILD_CHECK(r >= 0 && pipe(pipefd) == 0, "connect, pipe");
                CHILD_CHECK(raw_send(r, buf, (size_t)len, pipefd, 1) == 0, "send");
                close(pipefd[0]);
                close(pipefd[1]);
                /* (a reply, or the daemon hangs up on an fd it did not ask for) */
                CHILD_CHECK(raw_recv(r, buf, sizeof(buf), NULL, NULL, 5000) >= 0, "HELLO not read");
                close(r);
        }
        return 0;
}

/* 8 files (fds), 4 to each of two new connections, sent as a HELLO's
 * unsolicited fds, while the daemon is stopped; the connections are left
 * open (the caller's process owns them). */
typedef struct attach_arg {
        const int *files;
        const char *sock;
} attach_arg;

static int attach_eight(void *arg) {
        const attach_arg *a = arg;
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg m = { .hdr = { .op = IPCB_OP_HELLO, .id = 1 } };
        ssize_t len;

        m.hello.version = IPCB_PROTO_VERSION;
        CHILD_CHECK((len = ipcb__proto_encode(&m, buf, sizeof(buf))) > 0, "encode");
        for (int i = 0; i < 2; i++) {
                int c = raw_connect(a->sock); /* the kernel completes it: the daemon is stopped */
                CHILD_CHECK(c >= 0, "connect: %s", strerror(-c));
                CHILD_CHECK(raw_send(c, buf, (size_t)len, a->files + 4 * i, 4) == 0, "send");
        }
        return 0; /* its connections go with it: the daemon still reads what they sent */
}

/* Two uids each attach 8 files whose close never ends (together four
 * times the workers the daemon starts).  Every worker waited on one, and
 * nothing any other client left was closed any more: the sockets of uid
 * B's 20 clients that came and went stayed open in the daemon until the
 * server answered (fails so).  Now one uid's closes hold at most two
 * workers, and when none is done for a while more workers are added, so
 * that the others' closes are done meanwhile: the pipe ends uid B's
 * clients attach (its sockets, holding no fds, are closed on the loop). */
FUSE_TEST(stuck_closes_of_two_uids, .timeout = 60) {
        int files[16], conns[2];
        uint8_t buf[IPCB_MSG_MAX];
        unsigned four = 4;

        begin();
        SKIP_UNLESS_ROOT();
        for (int i = 0; i < 16; i++)
                files[i] = open_fuse_file();
        for (int i = 0; i < 2; i++)
                conns[i] = ipcbd_hello_conn(&d);
        ipcb_msg m = { .hdr = { .op = IPCB_OP_HELLO, .id = 2 } };
        m.hello.version = IPCB_PROTO_VERSION;
        size_t len = enc(&m, buf);
        ipcbd_pause(&d);
        for (int i = 0; i < 2; i++)
                cr_assert_eq(raw_send(conns[i], buf, len, files + 4 * i, 4), 0);
        attach_arg a = { .files = files + 8, .sock = d.sock };
        RUN_AS(UID_A, false, attach_eight, &a);
        for (int i = 0; i < 16; i++)
                close(files[i]);
        fuse_stall();
        ipcbd_resume(&d);
        cr_assert(wait_until(fuse_held_flushes_at_least, &four, 2000),
                  "the daemon's closes of the files never reached the server");
        usleep(300000); /* every close the daemon would start has started */
        unsigned stuck = fuse_held_flushes();
        int base = ipcbd_fd_count(&d);
        long threads = proc_status(d.pid, "Threads");
        RUN_AS(UID_B, false, come_and_go, NULL);
        bool closed = ipcbd_wait_fds(&d, base, 3000);
        int after = ipcbd_fd_count(&d);
        char held[512];
        unsigned from_loop = fuse_held_summary(held, sizeof(held));
        fprintf(stderr, "[fuse] 16 stuck closes of two uids held %u workers (the daemon had %ld threads); "
                        "uid B's %d clients and segment left it at %d fds (%d before them), %ld threads\n",
                stuck, threads, OTHER_CLIENTS, after, base, proc_status(d.pid, "Threads"));
        for (int i = 0; i < 2; i++)
                close(conns[i]);
        cr_assert(closed, "uid B's sockets or pipes waited behind other uids' stuck closes");
        cr_assert_leq(stuck, 4, "two uids' stuck closes held %u workers", stuck);
        cr_assert_eq(from_loop, 0, "the daemon's loop waited on the FUSE server: %s", held);
}

/* ---- 4. a write to a memfd that waits on the FUSE server ---- */

/* write(memfd, a mapping of the FUSE file): the kernel takes the memfd's
 * inode lock, then faults the source page in, which asks the server. */
typedef struct writer {
        pthread_t th;
        int memfd;
        const void *src;
        ssize_t ret;
} writer;

static void *write_from_fuse(void *arg) {
        writer *w = arg;
        w->ret = write(w->memfd, w->src, 4096);
        return NULL;
}

/* Maps the FUSE file (nothing of it read yet), stalls the server and
 * starts a write from the mapping to memfd; returns once the server holds
 * the READ (the write then holds memfd's inode lock). */
static void *stall_a_write(writer *w, int memfd) {
        int ffd = open_fuse_file();
        uint32_t rd = FUSE_READ;
        void *map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, ffd, 0);

        cr_assert_neq(map, MAP_FAILED, "mmap of the FUSE file: %s", strerror(errno));
        close(ffd);
        fuse_stall();
        *w = (writer){ .memfd = memfd, .src = map };
        cr_assert_eq(pthread_create(&w->th, NULL, write_from_fuse, w), 0);
        cr_assert(wait_until(fuse_held_op, &rd, 2000), "the write's page fault never reached the server");
        return map;
}

/* The rest of the stall window from t0, then: what the server held (into
 * held) and how much of it came from the daemon's loop; the prober's
 * longest round trip (the server released, the write over). */
static long long window_end(prober *pr, long long t0, const char *what, writer *w, char *held,
                            size_t cap, unsigned *ret_from_loop) {
        long long left = STALL_WINDOW_US - (prober_now_us() - t0);
        long long max;

        if (left > 0)
                usleep((useconds_t)left);
        *ret_from_loop = fuse_held_summary(held, cap);
        max = prober_stop(pr, "fuse", what, fuse_release);
        pthread_join(w->th, NULL);
        return max;
}

/* The owner freezes its segment while a holder's write waits: the seals
 * wait for the inode lock.  Before, the loop took them itself and every
 * client waited as long as the server did (fails so: the whole window).
 * Now the freeze waits on a worker, the owner's connection unread until
 * it is done, and answers once the write is over. */
FUSE_TEST(freeze_while_a_write_waits, .timeout = 60) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_client *c;
        ipcb_shm *s;
        writer w;
        prober pr;

        begin();
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        o.flags = IPCB_SHM_PERSISTENT;
        cr_assert_eq(ipcb_shm_create(c, "frz", 4096, &o, &s), 0);
        prober_start(&pr, d.sock);
        usleep(50000);
        void *map = stall_a_write(&w, ipcb_shm_fd(s));
        int fd = ipcbd_hello_conn(&d);
        ipcb_msg m = { .hdr = { .op = IPCB_OP_FREEZE, .id = 3 } };
        m.freeze.kind = IPCB_KIND_SHM;
        m.freeze.name = (ipcb_name){ .ptr = "frz", .len = 3 };
        long long t0 = prober_now_us();
        cr_assert_eq(raw_send(fd, buf, enc(&m, buf), NULL, 0), 0);
        char held[512];
        unsigned from_loop;
        long long max = window_end(&pr, t0, "FREEZE while a write waits on a FUSE page", &w, held,
                                   sizeof(held), &from_loop);
        ipcb_msg r = { 0 };
        ssize_t n = raw_recv(fd, buf, sizeof(buf), NULL, NULL, 5000);
        int dec = n > 0 ? ipcb__proto_decode(buf, (size_t)n, 0, &r) : -1;
        fprintf(stderr, "[fuse] the freeze answered %d after the write (%zd); held: %s\n",
                n > 0 ? r.hdr.status : (int)n, w.ret, held[0] ? held : "nothing");
        munmap(map, 4096);
        close(fd);
        cr_assert_eq(ipcb_shm_close(s), 0);
        cr_assert_eq(ipcb_unlink(c, "frz"), 0);
        ipcb_disconnect(c);
        cr_assert_eq(dec, 0, "no reply to the FREEZE once the write was over");
        cr_assert_eq(r.hdr.status, 0);
        cr_assert(r.freeze_reply.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE), "seals %#x",
                  r.freeze_reply.seals);
        cr_assert_eq(from_loop, 0, "the daemon's loop waited on the FUSE server: %s", held);
        cr_assert_lt(max, STALL_BOUND_US);
}

/* Two FREEZEs of a segment wait for a holder's write (the inode lock) on
 * workers.  They ran among their uid's closes, two at a time: the uid's
 * every close then waited for another uid's write, here the pipe ends its
 * 20 next clients attach (fails so: the daemon 20 fds up until the server
 * answered).  Runs wait in a lane apart from the uid's closes now. */
FUSE_TEST(freezes_waiting_hold_no_closes, .timeout = 60) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        uint8_t buf[IPCB_MSG_MAX], hb[IPCB_MSG_MAX];
        int conns[2], pipefd[2];
        ipcb_client *c;
        ipcb_shm *s;
        writer w;

        begin();
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        o.flags = IPCB_SHM_PERSISTENT;
        cr_assert_eq(ipcb_shm_create(c, "frz", 4096, &o, &s), 0);
        void *map = stall_a_write(&w, ipcb_shm_fd(s));
        ipcb_msg m = { .hdr = { .op = IPCB_OP_FREEZE, .id = 3 } };
        m.freeze.kind = IPCB_KIND_SHM;
        m.freeze.name = (ipcb_name){ .ptr = "frz", .len = 3 };
        for (int i = 0; i < 2; i++) {
                conns[i] = ipcbd_hello_conn(&d);
                cr_assert_eq(raw_send(conns[i], buf, enc(&m, buf), NULL, 0), 0);
        }
        usleep(200000); /* both freezes wait on workers */
        int base = ipcbd_fd_count(&d);
        ipcb_msg h = { .hdr = { .op = IPCB_OP_HELLO, .id = 1 } };
        h.hello.version = IPCB_PROTO_VERSION;
        size_t hlen = enc(&h, hb);
        for (int i = 0; i < 20; i++) {
                int r = raw_connect(d.sock);
                cr_assert_geq(r, 0);
                cr_assert_eq(pipe2(pipefd, O_CLOEXEC), 0);
                cr_assert_eq(raw_send(r, hb, hlen, pipefd, 1), 0);
                close(pipefd[0]);
                close(pipefd[1]);
                cr_assert_geq(raw_recv(r, buf, sizeof(buf), NULL, NULL, 5000), 0, "HELLO not read");
                close(r);
        }
        bool closed = ipcbd_wait_fds(&d, base, 3000);
        int after = ipcbd_fd_count(&d);
        fuse_release();
        pthread_join(w.th, NULL);
        int status[2];
        for (int i = 0; i < 2; i++) {
                ipcb_msg r = { 0 };
                ssize_t n = raw_recv(conns[i], buf, sizeof(buf), NULL, NULL, 5000);
                status[i] = n > 0 && ipcb__proto_decode(buf, (size_t)n, 0, &r) == 0 ? r.hdr.status : -1000;
                close(conns[i]);
        }
        fprintf(stderr, "[fuse] 2 FREEZEs waiting on a write; 20 clients with a pipe end each left the "
                        "daemon at %d fds (%d before them); the freezes answered %d, %d\n",
                after, base, status[0], status[1]);
        munmap(map, 4096);
        cr_assert_eq(ipcb_shm_close(s), 0);
        cr_assert_eq(ipcb_unlink(c, "frz"), 0);
        ipcb_disconnect(c);
        cr_assert(closed, "the uid's closes waited behind its freezes (%d fds, %d before)", after, base);
        cr_assert_eq(status[0], 0);
        cr_assert_eq(status[1], 0);
}

/* A memfd registered with group/other write in its mode while a write to
 * it waits: the daemon chmodded it, which waits for the inode lock (fails
 * so).  It refuses such a mode now (the library drops those bits first). */
FUSE_TEST(register_while_a_write_waits, .timeout = 60) {
        uint8_t buf[IPCB_MSG_MAX];
        writer w;
        prober pr;

        begin();
        int mfd = memfd_create("reg", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        cr_assert_geq(mfd, 0);
        cr_assert_eq(ftruncate(mfd, 4096), 0);
        cr_assert_eq(fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
        cr_assert_eq(fchmod(mfd, 0666), 0);
        prober_start(&pr, d.sock);
        usleep(50000);
        void *map = stall_a_write(&w, mfd);
        int fd = ipcbd_hello_conn(&d);
        ipcb_msg m = { .hdr = { .op = IPCB_OP_SHM_REGISTER, .id = 4, .nfds = 1 } };
        m.shm_register.name = (ipcb_name){ .ptr = "reg", .len = 3 };
        m.shm_register.mode = 0644;
        long long t0 = prober_now_us();
        cr_assert_eq(raw_send(fd, buf, enc(&m, buf), &mfd, 1), 0);
        ipcb_msg r = { 0 };
        ssize_t n = raw_recv(fd, buf, sizeof(buf), NULL, NULL, 1000);
        long long reply_us = prober_now_us() - t0;
        int dec = n > 0 ? ipcb__proto_decode(buf, (size_t)n, 0, &r) : -1;
        char held[512];
        unsigned from_loop;
        long long max = window_end(&pr, t0, "REGISTER while a write waits on a FUSE page", &w, held,
                                   sizeof(held), &from_loop);
        fprintf(stderr, "[fuse] register answered after %lld us: %d\n", reply_us, n > 0 ? r.hdr.status : (int)n);
        munmap(map, 4096);
        close(mfd);
        close(fd);
        cr_assert_gt(n, 0, "no reply to the register within 1 s");
        cr_assert_eq(dec, 0);
        cr_assert_eq(r.hdr.status, -EACCES, "register of a 0666 memfd: %d", r.hdr.status);
        cr_assert_eq(from_loop, 0, "the daemon's loop waited on the FUSE server: %s", held);
        cr_assert_lt(max, STALL_BOUND_US);
}
