/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* scale.c: ipcb_bench_scale, how the broker's requests cost as objects and
 * clients grow.  One run prints:
 *   - per-op cost (open+close of a random segment, stat of a random segment,
 *     stat of a random semaphore) at 10, 1k, 10k, 100k and 1M objects, as a
 *     ratio to the cost at 10 objects;
 *   - LIST: time per object and the longest single request;
 *   - the daemon's heap and RSS per segment and per semaphore;
 *   - the loop's longest stall (one loop turn) while objects are created
 *     (every table doubling on the way to 1M), under a create storm through
 *     the request path and under a full LIST, in the loop thread's CPU time,
 *     and that less the interrupts and the vCPU's stops charged to it
 *     (irqtime.c);
 *   - accepting 10k clients;
 *   - aggregate brokered opens/s at 1..16 clients against a floor server.
 * This machine's RLIMIT_NOFILE (a hard 20000 here) cannot hold a live
 * daemon with a million objects, so the object figures are measured in
 * process: the daemon's own code (ipcbrokerd_core) runs the loop, clients
 * talk to it over socketpairs given to peer_new(), as tests/fuzz_daemon.c
 * does.  Objects are made by the daemon's shm_new()/sem_new() and indexed,
 * then their memfd is swapped for one shared memfd of the same kind, so
 * that a million objects need no million fds; everything else (tables,
 * trees, handles, replies with an fd) is the real thing.  The client
 * figures use the real ipcbrokerd.  --quick: small sizes, a few seconds,
 * verdicts "not judged". */
#include "bench.h"
#include "irqtime.h"

#include "config.h"
#include "fdtable.h"
#include "ipcbroker.h"
#include "log.h"
#include "object.h"
#include "os.h"
#include "mainloop.h"
#include "peer.h"
#include "proto.h"
#include "reaper.h"
#include "registry.h"
#include "sem.h"
#include "shm.h"
#include "store.h"

#ifdef IPCB_BENCH_RESTORE
#include "fakemgr.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static uv_loop_t loop;
static bool quick;
static int shared_shm_fd = -1, shared_sem_fd = -1;
static unsigned nsegs, nsems; /* bulk objects made so far: s%07u, m%07u */
static bool own_fds = true;   /* bulk objects keep their own memfd (up to REAL_FDS_MAX) */
#define REAL_FDS_MAX 10000u
static double stall_ns;       /* longest loop turn since the last reset (CPU time) */
static double create_max_ns;  /* longest single bulk create (CPU time) */
static unsigned long creates_over_1ms; /* bulk creates over 1 ms (CPU time) */
static double creates_cpu_ns; /* all bulk creates' CPU time */
static unsigned long over_1ms;  /* loop turns over 1 ms since the last reset */

static double clock_ns(clockid_t id) {
        struct timespec ts;
        clock_gettime(id, &ts);
        return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double now_ns(void) {
        return clock_ns(CLOCK_MONOTONIC);
}

/* The loop's own time: this VM's other tenants preempt it for whole
 * timeslices, which wall time would count as stalls of the daemon. */
static double cpu_ns(void) {
        return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

static _Noreturn void die(const char *what, int k) {
        fprintf(stderr, "ipcb_bench_scale: %s: %s\n", what, strerror(k < 0 ? -k : k));
        exit(1);
}

/* One loop turn, timed (and given to irqtime: its wall window inside
 * its CPU time's, so that nothing outside that is taken off). */
static void turn(void) {
        double t = cpu_ns(), w = now_ns();
        mainloop_turn(false);
        double w1 = now_ns();
        t = cpu_ns() - t;
        irqtime_span(w, w1, t);
        if (t > stall_ns)
                stall_ns = t;
        over_1ms += t > 1e6;
}

static const char *verdict(bool ok) {
        return quick ? "not judged" : ok ? "pass" : "FAIL";
}

/* What a figure adds when the trace lost events. */
static const char *lost_note(bool lost) {
        return lost ? "; the trace lost events, an upper bound" : "";
}

/* What a goal of the loop's own time is judged on (irqtime.c). */
static const char *taken_off(void) {
        return irqtime_stops_on() ? "the interrupts and the vCPU's stops charged to it"
                                  : "the interrupts the kernel charged to it";
}

/* The loop's own among the spans since the last irqtime_reset(): the
 * longest less what taken_off() names, described in out; raw when
 * tracing is off.  The figure a goal of the loop's own time is judged on. */
static double own_figure(double raw, char *out, size_t n) {
        unsigned long over;
        bool lost;
        double own = irqtime_own_max(&over, &lost);

        if (!irqtime_on()) {
                snprintf(out, n, "(interrupts not traced: needs root and tracefs)");
                return raw;
        }
        snprintf(out, n, "(less %s: %.3f ms, over 1 ms: %lu%s)", taken_off(), own / 1e6, over,
                 lost_note(lost));
        return own;
}

/* The machine's floor under the CPU-time figures, and a check of
 * irqtime.c: this thread spinning in user space for cpu ns of its CPU
 * time, timed from one read of the clocks to the next.  What a stretch
 * between two reads takes beyond a few µs is the kernel's or the host's:
 * as measured, and less what taken_off() names, which should leave
 * nothing.  (Each span's wall window lies between its two CPU readings.) */
static void print_spin_floor(const char *lead, const char *what, double cpu) {
        double pc, pw, raw = 0, own;
        unsigned long raw_over = 0, over;
        bool lost;

        irqtime_reset(); /* first: reading the trace is not the machine's */
        pc = cpu_ns();
        pw = now_ns();
        for (double spun = 0; spun < cpu;) {
                double wb = now_ns(), c = cpu_ns(), d = c - pc;
                irqtime_span(pw, wb, d);
                raw = d > raw ? d : raw;
                raw_over += d > 1e6;
                spun += d;
                pc = irqtime_poll() ? cpu_ns() : c; /* its reading is not the machine's */
                pw = now_ns();
        }
        own = irqtime_own_max(&over, &lost);
        printf("%sThe machine's floor, spinning for as much CPU time as %s (%.1f s): the longest "
               "stretch between two reads of the clocks %.3f ms of CPU time, over 1 ms: %lu",
               lead, what, cpu / 1e9, raw / 1e6, raw_over);
        if (irqtime_on())
                printf("; less %s: %.3f ms, over 1 ms: %lu%s\n", taken_off(), own / 1e6, over,
                       lost_note(lost));
        else
                printf(" (interrupts not traced)\n");
}

/* ---- an in-process client ---- */

typedef struct conn {
        int fd;
        uint32_t id;
        uint8_t buf[IPCB_MSG_MAX];
} conn;

static int send_msg(conn *c, ipcb_msg *m) {
        uint8_t out[IPCB_MSG_MAX];
        ssize_t n;

        m->hdr.id = ++c->id;
        n = ipcb__proto_encode(m, out, sizeof(out));
        if (n < 0)
                return (int)n;
        return send(c->fd, out, (size_t)n, MSG_NOSIGNAL) == n ? 0 : -errno;
}

/* Send m, turn the loop until the reply is there; *ret decoded (its names
 * point into c->buf).  The reply's fd, if any, is closed. */
static int request(conn *c, ipcb_msg *m, ipcb_msg *ret) {
        char cbuf[CMSG_SPACE(sizeof(int) * IPCB_FDS_MAX)];
        int k = send_msg(c, m);

        if (k < 0)
                return k;
        for (;;) {
                struct iovec iov = { c->buf, sizeof(c->buf) };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                                     .msg_controllen = sizeof(cbuf) };
                ssize_t n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
                if (n < 0 && errno == EAGAIN) {
                        turn();
                        continue;
                }
                if (n < 0)
                        return -errno;
                unsigned nfds = 0;
                for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h))
                        if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
                                nfds = (unsigned)((h->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                                for (unsigned i = 0; i < nfds; i++)
                                        close(((int *)CMSG_DATA(h))[i]);
                        }
                k = ipcb__proto_decode(c->buf, (size_t)n, nfds, ret);
                if (k < 0)
                        return k;
                return ret->hdr.status;
        }
}

static void conn_open(conn *c) {
        int sv[2], k;
        ipcb_msg m = { .hdr.op = IPCB_OP_HELLO, .hello.version = IPCB_PROTO_VERSION }, r;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                die("socketpair", errno);
        if ((k = peer_new(sv[0])) < 0)
                die("peer_new", k);
        c->fd = sv[1];
        c->id = 0;
        if ((k = request(c, &m, &r)) < 0)
                die("HELLO", k);
}

static void conn_close(conn *c) {
        close(c->fd);
        for (int i = 0; i < 100; i++)
                turn();
}

/* ---- objects ---- */

static void name_of(char *buf, char kind, unsigned i) {
        snprintf(buf, 16, "%c%07u", kind, i);
}

static void add_seg(void) {
        cred cr = { .pid = getpid(), .uid = getuid(), .gid = getgid() };
        char name[16];
        object *o;
        double t = cpu_ns(), w = now_ns();
        int k;

        name_of(name, 's', nsegs);
        if ((k = shm_new(name, strlen(name), 4096, 0600, IPCB_WF_PERSISTENT, &cr, &o)) < 0)
                die("shm_new", k);
        object_index(o);
        double w1 = now_ns();
        t = cpu_ns() - t;
        irqtime_span(w, w1, t);
        creates_cpu_ns += t;
        if (t > create_max_ns)
                create_max_ns = t;
        creates_over_1ms += t > 1e6;
        if (!own_fds) {
                close(o->fd_rw);
                o->fd_rw = shared_shm_fd;
        }
        nsegs++;
}

static void add_sem(void) {
        cred cr = { .pid = getpid(), .uid = getuid(), .gid = getgid() };
        char name[16];
        object *o;
        double t = cpu_ns(), w = now_ns();
        int k;

        name_of(name, 'm', nsems);
        if ((k = sem_new(name, strlen(name), 1, 10, 0600, IPCB_WF_PERSISTENT, &cr, &o)) < 0)
                die("sem_new", k);
        object_index(o);
        double w1 = now_ns();
        t = cpu_ns() - t;
        irqtime_span(w, w1, t);
        creates_cpu_ns += t;
        if (t > create_max_ns)
                create_max_ns = t;
        creates_over_1ms += t > 1e6;
        if (!own_fds) {
                close(o->fd_rw);
                o->fd_rw = shared_sem_fd;
        }
        nsems++;
}

/* The machine's own floor under the creates: the kernel's part of a
 * segment's create (memfd_create, ftruncate, sealing, fchmod, close) alone,
 * n times, timed as the creates are.  Its worst and its count over 1 ms
 * are what no daemon can do better than on this machine. */
static void bare_create_floor(unsigned n, double *ret_worst, unsigned long *ret_over) {
        double worst = 0;
        unsigned long over = 0;

        for (unsigned i = 0; i < n; i++) {
                double t = cpu_ns();
                int fd = memfd_create("ipcb-bench-bare", MFD_CLOEXEC | MFD_ALLOW_SEALING);
                if (fd < 0 || ftruncate(fd, 4096) < 0 ||
                    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0 || fchmod(fd, 0600) < 0)
                        die("bare create", errno);
                close(fd);
                t = cpu_ns() - t;
                if (t > worst)
                        worst = t;
                over += t > 1e6;
        }
        *ret_worst = worst;
        *ret_over = over;
}

static void print_loadavg(const char *when) {
        char buf[64] = "";
        FILE *f = fopen("/proc/loadavg", "re");

        if (f) {
                if (!fgets(buf, sizeof(buf), f))
                        buf[0] = '\0';
                fclose(f);
        }
        buf[strcspn(buf, "\n")] = '\0';
        printf("(load average %s: %s; 2 cores shared with other work)\n", when, buf);
}

static long rss_kib(void) {
        FILE *f = fopen("/proc/self/status", "re");
        char line[128];
        long v = -1;

        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %ld", &v) == 1)
                        break;
        fclose(f);
        return v;
}

typedef struct mem_use {
        double heap_seg, heap_sem, rss_seg, rss_sem; /* bytes per object */
} mem_use;

/* Grow to n objects (half segments, half semaphores), measuring the heap
 * and RSS each kind adds. */
static void grow_to(unsigned n, mem_use *mu) {
        unsigned segs = n / 2, sems = n - n / 2;
        size_t h0 = mallinfo2().uordblks;
        long r0 = rss_kib();
        unsigned a = nsegs, b = nsems;

        while (nsegs < segs) {
                add_seg();
                irqtime_poll();
        }
        size_t h1 = mallinfo2().uordblks;
        long r1 = rss_kib();
        while (nsems < sems) {
                add_sem();
                irqtime_poll();
        }
        size_t h2 = mallinfo2().uordblks;
        long r2 = rss_kib();
        if (nsegs > a && nsems > b) {
                mu->heap_seg = (double)(h1 - h0) / (nsegs - a);
                mu->heap_sem = (double)(h2 - h1) / (nsems - b);
                mu->rss_seg = (double)(r1 - r0) * 1024 / (nsegs - a);
                mu->rss_sem = (double)(r2 - r1) * 1024 / (nsems - b);
        }
}

/* From here on every bulk object is served from its kind's shared memfd. */
static void share_fds(void) {
        for (uint8_t kind = 1; kind <= IPCB_KIND_MAX_; kind++) {
                int shared = kind == IPCB_KIND_SHM ? shared_shm_fd : shared_sem_fd;
                for (object *o = registry_kind_first_after(kind, 0); o; o = registry_kind_next(o))
                        if (o->fd_rw >= 0 && o->fd_rw != shared) {
                                close(o->fd_rw);
                                o->fd_rw = shared;
                        }
        }
        own_fds = false;
}

/* ---- per-op costs ---- */

static uint64_t rng = 88172645463325252ull;
static unsigned rnd(unsigned n) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return (unsigned)(rng % n);
}

enum { OP_OPEN_CLOSE, OP_STAT_SEG, OP_STAT_SEM, NOPS };
static const char *const op_names[NOPS] = { "open+close seg", "stat seg", "stat sem" };

static void one_op(conn *c, int op, bool hot) {
        char name[16];
        ipcb_msg m = { 0 }, r;
        int k;

        if (op == OP_OPEN_CLOSE) {
                name_of(name, 's', rnd(hot ? 5 : nsegs));
                m.hdr.op = IPCB_OP_SHM_OPEN;
                m.shm_open.access = IPCB_WA_READ_WRITE;
                m.shm_open.name = (ipcb_name){ name, (uint16_t)strlen(name) };
                if ((k = request(c, &m, &r)) < 0)
                        die("SHM_OPEN", k);
                m = (ipcb_msg){ .hdr = { .op = IPCB_OP_CLOSE, .flags = IPCB_HF_NOREPLY } };
                m.close.handle = r.shm_reply.handle;
                if ((k = send_msg(c, &m)) < 0)
                        die("CLOSE", k);
                turn();
                return;
        }
        name_of(name, op == OP_STAT_SEG ? 's' : 'm', rnd(hot ? 5 : op == OP_STAT_SEG ? nsegs : nsems));
        m.hdr.op = IPCB_OP_STAT;
        m.stat.kind = op == OP_STAT_SEG ? IPCB_KIND_SHM : IPCB_KIND_SEM;
        m.stat.name = (ipcb_name){ name, (uint16_t)strlen(name) };
        if ((k = request(c, &m, &r)) < 0)
                die("STAT", k);
}

/* ns per op, the best of several rounds (this VM's noise only adds):
 * ret_rand on random objects among all, ret_hot on the first ten (five of
 * each kind: what a ten-object broker serves), rounds interleaved so that
 * both see the same machine. */
static void measure_ops(conn *c, double ret_rand[NOPS], double ret_hot[NOPS]) {
        unsigned n = quick ? 1000 : 4000, rounds = quick ? 3 : 11;

        for (int op = 0; op < NOPS; op++) {
                ret_rand[op] = ret_hot[op] = 1e18;
                for (unsigned r = 0; r < rounds; r++)
                        for (int hot = 0; hot < 2; hot++) {
                                double t = now_ns();
                                for (unsigned i = 0; i < n; i++)
                                        one_op(c, op, hot);
                                t = (now_ns() - t) / n;
                                double *v = hot ? &ret_hot[op] : &ret_rand[op];
                                if (t < *v)
                                        *v = t;
                                irqtime_poll();
                        }
        }
}

/* ---- LIST ---- */

static void list_all(conn *c, uint8_t kind, double *ret_per_obj, double *ret_max_req, unsigned *ret_n) {
        ipcb_msg m = { .hdr.op = IPCB_OP_LIST }, r;
        uint64_t cursor = 0;
        unsigned n = 0;
        double total = 0, worst = 0;
        int k;

        for (;;) {
                m.list.kind = kind;
                m.list.cursor = cursor;
                m.list.max = 0;
                double t = cpu_ns();
                if ((k = request(c, &m, &r)) < 0)
                        die("LIST", k);
                t = cpu_ns() - t;
                irqtime_poll();
                total += t;
                if (t > worst)
                        worst = t;
                n += r.list_reply.count;
                cursor = r.list_reply.next_cursor;
                if (!r.list_reply.more)
                        break;
        }
        *ret_per_obj = n ? total / n : 0;
        *ret_max_req = worst;
        *ret_n = n;
}

/* ---- create storm through the request path ---- */

static double create_storm(conn *c, unsigned n) {
        ipcb_msg m = { 0 }, r;
        char name[16];
        int k;

        stall_ns = 0;
        for (unsigned i = 0; i < n; i++) {
                name_of(name, 'c', i);
                m = (ipcb_msg){ .hdr.op = IPCB_OP_SHM_CREATE };
                m.shm_create.size = 4096;
                m.shm_create.mode = 0600;
                m.shm_create.flags = IPCB_WF_PERSISTENT;
                m.shm_create.name = (ipcb_name){ name, (uint16_t)strlen(name) };
                if ((k = request(c, &m, &r)) < 0)
                        die("SHM_CREATE", k);
                /* give the memfd back: n objects must not need n fds */
                object *o = registry_lookup(IPCB_KIND_SHM, name, strlen(name));
                close(o->fd_rw);
                o->fd_rw = shared_shm_fd;
                m = (ipcb_msg){ .hdr = { .op = IPCB_OP_CLOSE, .flags = IPCB_HF_NOREPLY } };
                m.close.handle = r.shm_reply.handle;
                if ((k = send_msg(c, &m)) < 0)
                        die("CLOSE", k);
                turn();
                irqtime_poll();
        }
        double worst = stall_ns;
        for (unsigned i = 0; i < n; i++) {
                name_of(name, 'c', i);
                object *o = registry_lookup(IPCB_KIND_SHM, name, strlen(name));
                o->fd_rw = -1;
                object_unlink(o);
        }
        return worst;
}

/* The registry alone (no memfd, no syscall) across the segment table's
 * next doubling: what the incremental rehash bounds, without the kernel's
 * noise.  Returns the longest registry_add in CPU time; *ret_n: adds. */
static double registry_growth(unsigned *ret_n) {
        unsigned n = nsegs + 1, i;
        double worst = 0;
        object **objs;
        char name[16];

        /* past the next power of two of the segments' count: one doubling */
        while (n & (n - 1))
                n &= n - 1;
        n = n * 2 - nsegs + 4096;
        if (!(objs = calloc(n, sizeof(*objs))))
                die("registry_growth", ENOMEM);
        for (i = 0; i < n; i++) {
                name_of(name, 'x', i);
                double t = cpu_ns();
                objs[i] = registry_add(IPCB_KIND_SHM, name, strlen(name), 0);
                (void)registry_lookup(IPCB_KIND_SHM, name, strlen(name));
                t = cpu_ns() - t;
                if (!objs[i])
                        die("registry_add", ENOMEM);
                objs[i]->flags = IPCB_WF_PERSISTENT;
                if (t > worst)
                        worst = t;
        }
        for (i = 0; i < n; i++)
                object_unlink(objs[i]);
        free(objs);
        *ret_n = n;
        return worst;
}

/* ---- accepting many clients ----
 * The client ends go to a holder process, so that 10k clients cost this
 * process only the daemon's 10k ends. */

static int send_fd(int sock, int fd) {
        char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
        char b = 0;
        struct iovec iov = { &b, 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                             .msg_controllen = sizeof(cbuf) };
        struct cmsghdr *h = CMSG_FIRSTHDR(&mh);

        h->cmsg_level = SOL_SOCKET;
        h->cmsg_type = SCM_RIGHTS;
        h->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(h), &fd, sizeof(int));
        return sendmsg(sock, &mh, MSG_NOSIGNAL) == 1 ? 0 : -errno;
}

static _Noreturn void holder(int sock) {
        for (;;) {
                char cbuf[CMSG_SPACE(sizeof(int))], b;
                struct iovec iov = { &b, 1 };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                                     .msg_controllen = sizeof(cbuf) };
                if (recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) <= 0)
                        _exit(0); /* every fd it kept goes with it */
        }
}

/* What accept_many measured. */
typedef struct accept_figures {
        double per_client;             /* ns of wall time, peer_new + HELLO */
        double accept_stall, hup_stall; /* the longest loop turn (CPU ns) */
        char accept_own[200], hup_own[200]; /* less what irqtime.c finds (own_figure) */
        unsigned long accept_over, hup_over; /* loop turns over 1 ms */
        unsigned hup_turns;             /* turns until every hang-up was closed */
} accept_figures;

static void accept_many(unsigned n, accept_figures *ret) {
        int sv[2];
        pid_t pid;
        conn *c = malloc(sizeof(*c));
        double t0;

        if (!c || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                die("accept_many", ENOMEM);
        pid = fork();
        if (pid == 0) {
                close(sv[0]);
                holder(sv[1]);
        }
        close(sv[1]);
        stall_ns = 0;
        over_1ms = 0;
        irqtime_reset();
        t0 = now_ns();
        for (unsigned i = 0; i < n; i++) {
                conn_open(c);
                if (send_fd(sv[0], c->fd) < 0)
                        die("send_fd", errno);
                close(c->fd);
                irqtime_poll();
        }
        ret->per_client = (now_ns() - t0) / n;
        ret->accept_stall = stall_ns;
        ret->accept_over = over_1ms;
        (void)own_figure(stall_ns, ret->accept_own, sizeof(ret->accept_own));
        stall_ns = 0;
        over_1ms = 0;
        irqtime_reset();
        close(sv[0]); /* the holder exits: every client hangs up */
        waitpid(pid, NULL, 0);
        ret->hup_turns = 0;
        for (int i = 0; i < 100000 && peer_count() > 1; i++, ret->hup_turns++) {
                turn();
                irqtime_poll();
        }
        ret->hup_stall = stall_ns;
        ret->hup_over = over_1ms;
        (void)own_figure(stall_ns, ret->hup_own, sizeof(ret->hup_own));
        free(c);
}

static void accept_row(unsigned clients) {
        accept_figures a;

        accept_many(clients, &a);
        printf("\n## Accepting %u clients (in process; client ends held by a child)\n\n", clients);
        printf("- %.1f us per client (peer_new + HELLO, wall), longest loop turn %.3f ms, turns "
               "over 1 ms: %lu %s\n",
               a.per_client / 1e3, a.accept_stall / 1e6, a.accept_over, a.accept_own);
        printf("- all %u hanging up at once: closed in %u loop turns, longest %.3f ms, turns over "
               "1 ms: %lu %s\n",
               clients, a.hup_turns, a.hup_stall / 1e6, a.hup_over, a.hup_own);
}

/* ---- throughput against a floor, with the real daemon ---- */

#define SEG 4096

static int floor_memfd(void) {
        int fd = memfd_create("ipcb-bench-floor", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        if (fd < 0 || ftruncate(fd, SEG) < 0 ||
            fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
                die("floor memfd", errno);
        return fd;
}

/* The floor: one single-threaded server (as the broker is) that answers
 * every datagram of every client with the same premade memfd, but for a
 * datagram that begins with FLOOR_ONE_WAY, which it reads and drops. */
#define FLOOR_ONE_WAY 1
static _Noreturn void floor_serve(int lfd) {
        int ep = epoll_create1(EPOLL_CLOEXEC), mfd = floor_memfd();
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd }, evs[32];

        epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
        for (;;) {
                int n = epoll_wait(ep, evs, 32, -1);
                for (int i = 0; i < n; i++) {
                        int fd = evs[i].data.fd;
                        if (fd == lfd) {
                                int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                                ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = c };
                                if (c >= 0)
                                        epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                                continue;
                        }
                        char buf[64];
                        if (recv(fd, buf, sizeof(buf), 0) <= 0) {
                                close(fd);
                                continue;
                        }
                        if (buf[0] == FLOOR_ONE_WAY) /* TP_FLOOR2's second message */
                                continue;
                        char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
                        struct iovec iov = { buf, 48 };
                        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                                             .msg_controllen = sizeof(cbuf) };
                        struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
                        h->cmsg_level = SOL_SOCKET;
                        h->cmsg_type = SCM_RIGHTS;
                        h->cmsg_len = CMSG_LEN(sizeof(int));
                        memcpy(CMSG_DATA(h), &mfd, sizeof(int));
                        (void)sendmsg(fd, &mh, MSG_NOSIGNAL);
                }
        }
}

static int floor_connect(const char *path) {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

        snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
                die("floor connect", errno);
        return fd;
}

/* What each client of a throughput row does per operation. */
typedef enum tp_mode {
        TP_FLOOR,  /* a round trip to the floor server, which sends its memfd */
        TP_HANDLE, /* ipcb_shm_open + ipcb_shm_close: an open, then a CLOSE */
        TP_FD,     /* ipcb_shm_open_fd: one request for the descriptor, as the floor's */
        TP_FLOOR2, /* TP_FLOOR, then a one-way datagram: the handle pair's floor */
} tp_mode;

/* A client process: opens (and closes) for ms milliseconds after the go
 * byte; writes how many to out.  Every mode maps, unmaps and closes the fd
 * (ipcb_shm_open maps, ipcb_shm_close unmaps). */
static _Noreturn void tp_client(tp_mode mode, const char *path, int go, int out, long ms) {
        bool floor = mode == TP_FLOOR || mode == TP_FLOOR2;
        ipcb_client *cl = NULL;
        int ffd = -1, k;
        char b;
        uint64_t n = 0;

        if (floor)
                ffd = floor_connect(path);
        else if ((k = ipcb_connect(path, &cl)) < 0)
                die("ipcb_connect", k);
        if (read(go, &b, 1) != 1)
                _exit(1);
        double end = now_ns() + (double)ms * 1e6;
        while (now_ns() < end) {
                for (int i = 0; i < 16; i++, n++) {
                        if (floor) {
                                char req[16] = { 0 }, rep[64];
                                char cbuf[CMSG_SPACE(sizeof(int))];
                                struct iovec iov = { rep, sizeof(rep) };
                                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                                                     .msg_control = cbuf,
                                                     .msg_controllen = sizeof(cbuf) };
                                int fd = -1;
                                if (send(ffd, req, sizeof(req), 0) < 0 ||
                                    recvmsg(ffd, &mh, MSG_CMSG_CLOEXEC) <= 0)
                                        _exit(1);
                                struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
                                if (h)
                                        memcpy(&fd, CMSG_DATA(h), sizeof(int));
                                void *p = mmap(NULL, SEG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                                if (p != MAP_FAILED)
                                        munmap(p, SEG);
                                close(fd);
                                req[0] = FLOOR_ONE_WAY;
                                if (mode == TP_FLOOR2 && send(ffd, req, sizeof(req), 0) < 0)
                                        _exit(1);
                        } else if (mode == TP_FD) {
                                size_t size;
                                int fd;
                                if ((k = ipcb_shm_open_fd(cl, "tp", IPCB_READ_WRITE, NULL, &fd, &size)) < 0)
                                        die("ipcb_shm_open_fd", k);
                                void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                                if (p != MAP_FAILED)
                                        munmap(p, size);
                                close(fd);
                        } else {
                                ipcb_shm *s;
                                if ((k = ipcb_shm_open(cl, "tp", IPCB_READ_WRITE, &s)) < 0)
                                        die("ipcb_shm_open", k);
                                ipcb_shm_close(s);
                        }
                }
        }
        if (write(out, &n, sizeof(n)) != (ssize_t)sizeof(n))
                _exit(1);
        if (cl)
                ipcb_disconnect(cl);
        _exit(0);
}

/* CPU time (user + system) the process has used so far, in ns. */
static double proc_cpu_ns(pid_t pid) {
        char path[64], buf[1024], *p;
        unsigned long ut = 0, st = 0;
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
                return 0;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return 0;
        buf[n] = '\0';
        /* fields 14 and 15, after the parenthesised command name */
        if (!(p = strrchr(buf, ')')) ||
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
                return 0;
        return (double)(ut + st) * 1e9 / (double)sysconf(_SC_CLK_TCK);
}

static double throughput(tp_mode mode, const char *path, unsigned nclients, long ms) {
        int go[2], out[2];
        pid_t pids[16];
        uint64_t total = 0, n;

        if (pipe2(go, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
                die("pipe", errno);
        for (unsigned i = 0; i < nclients; i++) {
                pids[i] = fork();
                if (pids[i] == 0)
                        tp_client(mode, path, go[0], out[1], ms);
        }
        usleep(100000);
        for (unsigned i = 0; i < nclients; i++)
                if (write(go[1], "g", 1) != 1)
                        die("go", errno);
        for (unsigned i = 0; i < nclients; i++)
                if (read(out[0], &n, sizeof(n)) == (ssize_t)sizeof(n))
                        total += n;
        for (unsigned i = 0; i < nclients; i++)
                waitpid(pids[i], NULL, 0);
        close(go[0]);
        close(go[1]);
        close(out[0]);
        close(out[1]);
        return (double)total / ((double)ms / 1000);
}

#define TP_ROUNDS_MAX 7

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

/* Sorts v[0..n) in place and returns its median. */
static double median(double *v, unsigned n) {
        qsort(v, n, sizeof(*v), cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void throughput_rows(void) {
        static const unsigned counts[] = { 1, 2, 4, 8, 16 };
        bench_env env = { .cpu_client = -1, .cpu_server = -1 };
        broker b;
        ipcb_client *cl;
        ipcb_shm *s;
        char fpath[100];
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        long ms = quick ? 150 : 400;
        unsigned rounds = quick ? 1 : TP_ROUNDS_MAX;
        int k, lfd;
        pid_t fpid;

        if ((k = broker_start(&env, &b)) < 0)
                die("broker_start", k);
        if ((k = ipcb_connect(b.socket_path, &cl)) < 0 ||
            (k = ipcb_shm_create(cl, "tp", SEG, NULL, &s)) < 0)
                die("tp segment", k);
        snprintf(fpath, sizeof(fpath), "%.80s/floor.sock", b.dir);
        memcpy(a.sun_path, fpath, sizeof(fpath));
        lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 64) < 0)
                die("floor socket", errno);
        fpid = fork();
        if (fpid == 0)
                floor_serve(lfd);
        close(lfd);

        printf("\n## Throughput: brokered opens vs a floor server (real daemon, median of %u rounds of %ld ms)\n\n",
               rounds, ms);
        printf("Per operation: floor, a round trip for a pre-made memfd; fd-only, ipcb_shm_open_fd (one\n"
               "request for the descriptor, like the floor's); handle, ipcb_shm_open + ipcb_shm_close\n"
               "(an open, then a CLOSE message); floor2, the floor's round trip, then a one-way\n"
               "datagram the server reads (the handle pair's two messages, as bare as they come).\n"
               "Each maps, unmaps and closes the fd.  A round runs the four back to back, in an order\n"
               "that turns each round; a round's ratio is floor opens/s over the broker's (for\n"
               "handle / floor2, floor2's).  Opens/s and ratios are medians over the rounds, with the\n"
               "rounds' least and greatest ratio; CPU ns/op is each server's own (user + system).\n\n");
        printf("| clients | floor opens/s | fd-only opens/s | fd-only ratio | (rounds) | goal <= 1.25 | handle opens/s | handle ratio | (rounds) | floor2 opens/s | handle / floor2 | (rounds) | CPU ns/op: floor, fd-only, handle, floor2 |\n");
        printf("| ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | --- | ---: | ---: | --- | --- |\n");
        for (unsigned i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
                /* Rounds interleave the servers, so that a drift of this
                 * shared machine's load over the row weighs on each alike.
                 * The servers' own CPU time per operation (clock ticks, so
                 * only rows of many operations are meaningful) is what each
                 * request costs the single-threaded server, apart from the
                 * scheduling that the throughput also measures. */
                static const tp_mode modes[] = { TP_FLOOR, TP_FD, TP_HANDLE, TP_FLOOR2 };
                enum { NM = sizeof(modes) / sizeof(modes[0]) };
                double rate[NM][TP_ROUNDS_MAX], cpu[NM][TP_ROUNDS_MAX], ratio[3][TP_ROUNDS_MAX];
                for (unsigned r = 0; r < rounds; r++) {
                        for (unsigned j = 0; j < NM; j++) {
                                unsigned m = (j + r) % NM;
                                bool floor = modes[m] == TP_FLOOR || modes[m] == TP_FLOOR2;
                                pid_t pid = floor ? fpid : b.pid;
                                double c0 = proc_cpu_ns(pid), x;
                                x = throughput(modes[m], floor ? fpath : b.socket_path, counts[i], ms);
                                rate[m][r] = x;
                                cpu[m][r] = x > 0 ? (proc_cpu_ns(pid) - c0) / (x * (double)ms / 1000) : 0;
                        }
                        ratio[0][r] = rate[1][r] > 0 ? rate[0][r] / rate[1][r] : 0;
                        ratio[1][r] = rate[2][r] > 0 ? rate[0][r] / rate[2][r] : 0;
                        ratio[2][r] = rate[2][r] > 0 ? rate[3][r] / rate[2][r] : 0;
                }
                double med[3];
                for (unsigned j = 0; j < 3; j++) /* sorts each: [0] and [rounds - 1] are the extremes */
                        med[j] = median(ratio[j], rounds);
                printf("| %u | %.0f | %.0f | %.2f | %.2f-%.2f | %s | %.0f | %.2f | %.2f-%.2f | %.0f | %.2f | "
                       "%.2f-%.2f | %.0f, %.0f, %.0f, %.0f |\n",
                       counts[i], median(rate[0], rounds), median(rate[1], rounds), med[0], ratio[0][0],
                       ratio[0][rounds - 1], quick ? "not judged" : med[0] <= 1.25 ? "pass" : "FAIL",
                       median(rate[2], rounds), med[1], ratio[1][0], ratio[1][rounds - 1],
                       median(rate[3], rounds), med[2], ratio[2][0], ratio[2][rounds - 1],
                       median(cpu[0], rounds), median(cpu[1], rounds), median(cpu[2], rounds),
                       median(cpu[3], rounds));
        }
        kill(fpid, SIGTERM);
        waitpid(fpid, NULL, 0);
        unlink(fpath);
        ipcb_shm_close(s);
        ipcb_disconnect(cl);
        broker_stop(&b);
}

/* ---- restart with the fd store, with the real daemon ---- */

#ifdef IPCB_BENCH_RESTORE
static bool stored_all(const fakemgr *fm, void *arg) {
        return fakemgr_count(fm, "ipcb-o-") >= *(unsigned *)arg;
}

/* The real daemon under the tests' fake service manager (tests/fakemgr.c):
 * n semaphores stored, a restart, then stat latency through the grace
 * period's end (1 s after the restart), where restored objects are settled
 * in batches.  n: the fake manager needs fds up to 2n + 3, under this
 * machine's limit of 20000. */
static void restore_row(unsigned n) {
        static const char *const args[] = { "--restore-grace", "1", "--max-objects", "10000000",
                                            "--max-fds", "10000000", "--slow-turn-ms", "1", NULL };
        char sock[128], logpath[128], name[32];
        ipcb_client *cl;
        fakemgr m;
        double t, worst = 0, t0, t1;
        unsigned probes = 0;
        int k;

        fakemgr_init(&m, "/tmp/ipcbsr.XXXXXX", n + 16);
        snprintf(sock, sizeof(sock), "%.60s/ipcb.sock", m.dir);
        snprintf(logpath, sizeof(logpath), "%.60s/log", m.dir);
        fakemgr_exec x = { .sock = sock, .args = args, .log = logpath };
        fakemgr_start(&m, &x);
        irqtime_reset(); /* nothing of the rows before */
        if ((k = ipcb_connect(sock, &cl)) < 0)
                die("restore: connect", k);
        for (unsigned i = 0; i < n; i++) {
                ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
                ipcb_sem *sm;
                o.flags = IPCB_SEM_PERSISTENT;
                snprintf(name, sizeof(name), "r%06u", i);
                if ((k = ipcb_sem_create(cl, name, 1, &o, &sm)) < 0)
                        die("restore: create", k);
                ipcb_sem_close(sm);
                if (i % 16 == 15) /* keep up, as a manager does: the daemon drops past 4096 */
                        fakemgr_drain(&m, 0);
        }
        ipcb_disconnect(cl);
        if (!fakemgr_pump_until(&m, stored_all, &n, 30000))
                die("restore: the fake manager did not get every object", EAGAIN);
        fakemgr_stop(&m);
        t0 = now_ns();
        pid_t pid = fakemgr_start(&m, &x); /* returns at READY=1 */
        t1 = now_ns();
        (void)irqtime_watch(pid); /* its loop thread: the daemon's main thread */
        if ((k = ipcb_connect(sock, &cl)) < 0)
                die("restore: connect", k);
        /* through the grace period's end */
        while (now_ns() - t1 < 1.5e9) {
                ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
                snprintf(name, sizeof(name), "r%06u", rnd(n));
                t = now_ns();
                if ((k = ipcb_stat(cl, IPCB_KIND_SEM, name, &info)) < 0)
                        die("restore: stat", k);
                t = now_ns() - t;
                if (t > worst)
                        worst = t;
                probes++;
        }
        ipcb_disconnect(cl);
        fakemgr_stop(&m); /* the objects go with the store's fds */
        char summary[512] = "", line[1024];
        /* The restarted daemon's slow turns (--slow-turn-ms 1), less the
         * interrupts and stops traced on its loop in their CPU time's span. */
        double own_worst = 0;
        unsigned long own_over = 0, nlines = 0;
        bool lost = false;
        unsigned summaries = 0;
        FILE *f = fopen(logpath, "re");
        while (f && fgets(line, sizeof(line), f)) {
                const char *p;
                double took, cpu, a, b;
                /* the first daemon's summary, then the restarted one's */
                if (strstr(line, "the longest took") && ++summaries == 2)
                        snprintf(summary, sizeof(summary), "%s", strstr(line, "loop turns:"));
                if ((p = strstr(line, "a loop turn took ")) &&
                    sscanf(p, "a loop turn took %lf ms, %lf ms of it on a CPU", &took, &cpu) == 2 &&
                    (p = strstr(p, "counted over ")) && sscanf(p, "counted over %lf-%lf s", &a, &b) == 2 &&
                    a * 1e9 >= t0) {
                        /* the log truncates the CPU time to the µs */
                        double own = cpu * 1e6 + 1000 - (irqtime_on() ? irqtime_of(pid, a * 1e9, b * 1e9, &lost) : 0);
                        own_worst = own > own_worst ? own : own_worst;
                        own_over += own > 1e6;
                        nlines++;
                }
        }
        if (f)
                fclose(f);
        irqtime_unwatch(pid);
        summary[strcspn(summary, "\n")] = '\0';
        /* The log keeps at most 10 lines a second: unless every slow turn
         * was read above, the summary's raw most is what is judged. */
        unsigned long nslow = 0;
        double most = 1e18;
        const char *m1 = strstr(summary, "the most CPU a slow turn used: ");
        bool all = sscanf(summary, "loop turns: %lu took", &nslow) == 1 && m1 &&
                   sscanf(m1, "the most CPU a slow turn used: %lf", &most) == 1 && nlines >= nslow;
        double judged = all ? own_worst : most * 1e6 + 1000;
        fakemgr_close(&m);
        fakemgr_destroy(&m);
        printf("- restart with %u stored semaphores (real daemon, fake service manager): READY=1 "
               "after %.1f ms (%.2f us per object); longest of %u stats through "
               "the grace period's end: %.3f ms (wall); the restarted daemon's own %s",
               n, (t1 - t0) / 1e6, (t1 - t0) / 1e3 / n, probes, worst / 1e6,
               summary[0] ? summary : "turn summary: not found in its log");
        if (irqtime_on() && all)
                printf("; its slow turns logged, less the interrupts and the vCPU's stops charged to "
                       "its loop: %lu, the most CPU %.3f ms %s, over 1 ms: %lu%s\n",
                       nlines, own_worst / 1e6, verdict(judged <= 1e6), own_over,
                       lost_note(lost));
        else
                printf(" (%s: judged on the summary's most, %s)\n",
                       irqtime_on() ? "not every slow turn's line was logged" : "interrupts not traced",
                       verdict(judged <= 1e6));
}
#endif

/* ---- main ---- */

int main(int argc, char **argv) {
        static const unsigned full_sizes[] = { 10, 1000, 10000, 100000, 1000000 };
        static const unsigned quick_sizes[] = { 10, 1000, 10000 };
        const unsigned *sizes;
        unsigned nsizes, storm, clients;
        double base[NOPS] = { 0 }, cost[NOPS], hot[NOPS], per_obj, worst, t;
        double create_own = 0, rows_cpu;
        unsigned long create_own_over = 0;
        bool create_lost = false;
        char own[200];
        mem_use mu = { 0 };
        struct rlimit rl;
        unsigned n;
        conn *c;
        int k;

        unsigned restore_only = 0, accept_only = 0;
        bool throughput_only = false;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--quick") == 0)
                        quick = true;
                else if (strcmp(argv[i], "--throughput-only") == 0)
                        throughput_only = true;
                else if (strcmp(argv[i], "--accept-only") == 0 && i + 1 < argc &&
                         (accept_only = (unsigned)atoi(argv[i + 1])) > 0)
                        i++;
#ifdef IPCB_BENCH_RESTORE
                else if (strcmp(argv[i], "--restart-only") == 0 && i + 1 < argc &&
                         (restore_only = (unsigned)atoi(argv[i + 1])) > 0)
                        i++;
#endif
                else {
                        fprintf(stderr, "usage: %s [--quick] [--throughput-only] [--accept-only N] "
                                "[--restart-only N]\n", argv[0]);
                        return 2;
                }
        }
        sizes = quick ? quick_sizes : full_sizes;
        nsizes = quick ? 3 : 5;
        storm = quick ? 2000 : 40000;
        clients = quick ? 1000 : 10000;

        signal(SIGPIPE, SIG_IGN);
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        log_init();
        if (throughput_only) {
                throughput_rows();
                return 0;
        }
        (void)irqtime_open(); /* for the loop thread: this one */
#ifdef IPCB_BENCH_RESTORE
        if (restore_only) { /* only the restart row, with N semaphores */
                restore_row(restore_only);
                return 0;
        }
#endif
        cfg.max_connections_total = cfg.max_connections_per_uid = 1u << 20;
        cfg.max_objects_per_uid = cfg.max_handles_per_uid = cfg.max_fds_per_uid = UINT64_MAX / 4;
        cfg.max_bytes_per_uid = UINT64_MAX / 4;
        /* As ipcbrokerd starts: the fd table sized before the reaper's threads. */
        if ((k = uv_loop_init(&loop)) < 0 || (k = mainloop_init(&loop)) < 0 ||
            (k = fdtable_start(&loop, FDTABLE_START, (long)rl.rlim_max)) < 0 ||
            (k = registry_init()) < 0 || (k = reaper_init(&loop)) < 0 ||
            (k = peer_init(&loop)) < 0 || (k = store_start(&loop, false, 0)) < 0)
                die("daemon init", k);
        if (accept_only) { /* only the accept row, with N clients */
                accept_row(accept_only);
                return 0;
        }
        shared_shm_fd = floor_memfd();
        {
                void *map;
                if ((k = os_page_new(&shared_sem_fd, &map)) < 0)
                        die("sem page", k);
                munmap(map, IPCB_PAGE_SIZE);
        }
        if (!(c = calloc(1, sizeof(*c))))
                die("calloc", ENOMEM);
        conn_open(c);

        printf("# ipcb_bench_scale%s\n\n", quick ? " --quick (small sizes; verdicts not judged)" : "");
        printf("Object figures: in process (ipcbrokerd_core's loop and request handling over\n"
               "socketpairs; RLIMIT_NOFILE hard %llu here cannot hold a live daemon with 1M\n"
               "objects): objects made by shm_new()/sem_new(); up to 10k objects each keeps its\n"
               "own memfd (\"own fds\"), beyond that they are served from one shared memfd per\n"
               "kind.  Half segments, half semaphores.\n\n",
               (unsigned long long)rl.rlim_max);
        print_loadavg("at the start");
        printf("Loop turns and creates are timed in the loop thread's CPU time.  This kernel may\n"
               "charge it the interrupts that land on it (without CONFIG_IRQ_TIME_ACCOUNTING it\n"
               "does), and a guest told no steal time the time its vCPU was stopped: %s%s\n\n",
               irqtime_stops_on() ? "both are traced (tracefs, and a perf sampling event whose late samples "
                                    "show the stops) and taken off where a goal is judged" : "",
               irqtime_stops_on() ? "" :
               irqtime_on() ? "the interrupts are traced (tracefs) and taken off where a goal is judged" :
                              "they could not be traced here (needs root and tracefs), so the raw figures are judged");
        printf("Ratios: \"vs 10\" against the same op on a ten-object broker measured first;\n"
               "\"vs hot\" against the same op on ten objects of the same registry, in rounds\n"
               "interleaved with the random ones (this shared VM's load drifts by tens of per cent\n"
               "between minutes: only the interleaved ratio is judged).\n\n");
        printf("| objects | open+close seg | stat seg | stat sem | o+c vs 10 | stat seg vs 10 | stat sem vs 10 "
               "| o+c vs hot | stat seg vs hot | stat sem vs hot |\n");
        printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for (unsigned s = 0; s < nsizes; s++) {
                unsigned long over;
                bool lost;
                irqtime_reset();
                grow_to(sizes[s], &mu);
                t = irqtime_own_max(&over, &lost);
                create_own = t > create_own ? t : create_own;
                create_own_over += over;
                create_lost |= lost;
                measure_ops(c, cost, hot);
                if (s == 0)
                        memcpy(base, cost, sizeof(base));
                printf("| %u%s | %.0f ns | %.0f ns | %.0f ns | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |\n",
                       sizes[s], own_fds ? " (own fds)" : "", cost[0], cost[1], cost[2],
                       cost[0] / base[0], cost[1] / base[1], cost[2] / base[2], cost[0] / hot[0],
                       cost[1] / hot[1], cost[2] / hot[2]);
                fflush(stdout);
                if (own_fds && (s + 1 == nsizes || sizes[s + 1] > REAL_FDS_MAX)) {
                        /* the same objects again, served from shared fds: what
                         * the rows above 10k leave out of the kernel's side */
                        share_fds();
                        measure_ops(c, cost, hot);
                        printf("| %u (shared fds) | %.0f ns | %.0f ns | %.0f ns | %.3f | %.3f | %.3f | "
                               "%.3f | %.3f | %.3f |\n",
                               sizes[s], cost[0], cost[1], cost[2], cost[0] / base[0],
                               cost[1] / base[1], cost[2] / base[2], cost[0] / hot[0],
                               cost[1] / hot[1], cost[2] / hot[2]);
                        fflush(stdout);
                }
        }
        printf("\nAt %u objects, random against hot ten (goal <= 1.10):", sizes[nsizes - 1]);
        for (int op = 0; op < NOPS; op++)
                printf(" %s %.3f %s;", op_names[op], cost[op] / hot[op],
                       verdict(cost[op] / hot[op] <= 1.10));
        printf("\nLongest single create (CPU time) while growing to %u objects (every table "
               "doubling on the way): %.3f ms; creates over 1 ms: %lu of %u; ",
               sizes[nsizes - 1], create_max_ns / 1e6, creates_over_1ms, sizes[nsizes - 1]);
        if (irqtime_on())
                printf("less %s: %.3f ms %s (goal <= 1 ms), over 1 ms: %lu%s\n", taken_off(),
                       create_own / 1e6, verdict(create_own <= 1e6), create_own_over,
                       lost_note(create_lost));
        else
                printf("%s (goal <= 1 ms; interrupts not traced: needs root and tracefs)\n",
                       verdict(create_max_ns <= 1e6));
        {
                double bare_worst;
                unsigned long bare_over;
                bare_create_floor(sizes[nsizes - 1], &bare_worst, &bare_over);
                printf("The machine's floor: the kernel's part of a create alone (memfd_create, "
                       "ftruncate, seals, fchmod, close), %u times: longest %.3f ms CPU time, "
                       "over 1 ms: %lu\n",
                       sizes[nsizes - 1], bare_worst / 1e6, bare_over);
        }
        print_spin_floor("", "the creates took", creates_cpu_ns);
        printf("\n## Memory per object (growing from %u to %u objects)\n\n", sizes[nsizes - 2],
               sizes[nsizes - 1]);
        printf("| kind | heap B/object | RSS B/object | goal |\n| --- | ---: | ---: | --- |\n");
        printf("| segment | %.0f | %.0f | heap <= 512 B: %s |\n", mu.heap_seg, mu.rss_seg,
               verdict(mu.heap_seg <= 512));
        printf("| semaphore | %.0f | %.0f | RSS <= 1 KiB: %s |\n", mu.heap_sem, mu.rss_sem,
               verdict(mu.rss_sem <= 1024));
        printf("(semaphore pages mapped by the daemon: %u, at most %u)\n", sem_pages_mapped(),
               SEM_MAP_CACHE);

        printf("\n## Loop stalls at %u objects (longest single loop turn, in the loop's CPU time)\n\n",
               nsegs + nsems);
        stall_ns = 0;
        over_1ms = 0;
        irqtime_reset();
        rows_cpu = cpu_ns();
        list_all(c, 0, &per_obj, &worst, &n);
        t = own_figure(stall_ns, own, sizeof(own));
        printf("- LIST of all %u objects: %.1f ns per object (CPU), longest request %.3f ms (CPU), longest "
               "loop turn %.3f ms %s, turns over 1 ms: %lu %s\n",
               n, per_obj, worst / 1e6, stall_ns / 1e6, verdict(t <= 1e6), over_1ms, own);
        stall_ns = 0;
        over_1ms = 0;
        irqtime_reset();
        list_all(c, IPCB_KIND_SEM, &per_obj, &worst, &n);
        t = own_figure(stall_ns, own, sizeof(own));
        printf("- LIST of the %u semaphores (kind filter): %.1f ns per object, longest loop turn "
               "%.3f ms %s, turns over 1 ms: %lu %s\n",
               n, per_obj, stall_ns / 1e6, verdict(t <= 1e6), over_1ms, own);
        over_1ms = 0;
        irqtime_reset();
        worst = create_storm(c, storm);
        t = own_figure(worst, own, sizeof(own));
        printf("- create storm of %u SHM_CREATE requests on top (crossing a table doubling when "
               "it is there to cross): longest loop turn %.3f ms %s, turns over 1 ms: %lu %s\n",
               storm, worst / 1e6, verdict(t <= 1e6), over_1ms, own);
        print_spin_floor("- ", "the two LISTs and the storm took", cpu_ns() - rows_cpu);
        {
                unsigned nadd;
                over_1ms = 0;
                t = registry_growth(&nadd);
                printf("- the registry alone (registry_add + lookup, no memfd) for %u names across the "
                       "segment table's next doubling: longest %.3f ms CPU %s\n",
                       nadd, t / 1e6, verdict(t <= 1e6));
        }
#ifdef IPCB_BENCH_RESTORE
        restore_row(quick ? 1000 : 9000); /* the fake manager moves the fds above 2n */
#else
        printf("- restart: not measured (built without tests/fakemgr.c)\n");
#endif

        accept_row(clients);
        print_loadavg("at the end of the in-process part");

        conn_close(c);
        free(c);
        /* the bulk objects share two fds: take them back before teardown */
        for (uint8_t kind = 1; kind <= IPCB_KIND_MAX_; kind++)
                for (object *o = registry_kind_first_after(kind, 0); o; o = registry_kind_next(o))
                        if (o->fd_rw == shared_shm_fd || o->fd_rw == shared_sem_fd)
                                o->fd_rw = -1;
        registry_fini();
        close(shared_shm_fd);
        close(shared_sem_fd);

        fflush(stdout);
        throughput_rows();
        return 0;
}
