/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hostile.c: the soak's hostile uid.  While the orchestrator says so, it
 * runs what the attack suites do, one attack at a time, about 20 a second:
 * junk datagrams with fds attached, pipelined fd-carrying requests it never
 * reads, connection floods, a TCP socket that blocks close() for seconds,
 * scribbles over the pages of objects it may write, quota floods, bad
 * arguments, and watches it never reads.  It only counts: what it breaks
 * is found by the other workers and the orchestrator's checks. */

#include "soak.h"

#include "ipcbroker.h"
#include "proto.h"
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum attack {
        A_JUNK,
        A_PIPELINE,
        A_CONNECTIONS,
        A_LINGER,
        A_SCRIBBLE,
        A_CREATE_FLOOD,
        A_BAD_ARGS,
        A_DEAF_WATCH,
        A_N,
};

const char *const hostile_attack_names[] = {
        [A_JUNK] = "junk datagrams with fds",
        [A_PIPELINE] = "pipelined fd replies, never read",
        [A_CONNECTIONS] = "connection floods",
        [A_LINGER] = "lingering TCP sockets attached",
        [A_SCRIBBLE] = "scribbled lock and semaphore pages",
        [A_CREATE_FLOOD] = "create floods to the quota",
        [A_BAD_ARGS] = "bad names, sizes, modes, counts",
        [A_DEAF_WATCH] = "watches never read",
};
const unsigned hostile_nattacks = A_N;

static int raw_connect(void) {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        if (fd < 0)
                return -1;
        snprintf(a.sun_path, sizeof(a.sun_path), "%s", soak_socket);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

static void raw_send(int fd, const void *buf, size_t len, const int *fds, unsigned nfds) {
        (void)ipcb__sock_send(fd, buf, len, fds, nfds, MSG_DONTWAIT);
}

/* Read and drop whatever came back, closing any fds. */
static void raw_drain(int fd) {
        static uint8_t buf[IPCB_MSG_MAX];
        ipcb_sock_rx rx;
        int k;

        while ((k = ipcb__sock_recv(fd, buf, sizeof(buf), MSG_DONTWAIT, NULL, &rx)) != 0 && k != -EAGAIN) {
                if (k < 0 && k != -EMSGSIZE && k != -EBADMSG)
                        return;
                for (unsigned i = 0; k == 1 && i < rx.nfds; i++)
                        close(rx.fds[i]);
        }
}

static void send_msg(int fd, ipcb_msg *m) {
        uint8_t buf[IPCB_MSG_MAX];
        ssize_t n = ipcb__proto_encode(m, buf, sizeof(buf));
        if (n > 0)
                raw_send(fd, buf, (size_t)n, NULL, 0);
}

static void hello(int fd) {
        ipcb_msg m = { .hdr = { .op = IPCB_OP_HELLO, .id = 1 } };
        m.hello.version = IPCB_PROTO_VERSION;
        send_msg(fd, &m);
}

static void junk(uint64_t *rng) {
        uint8_t buf[IPCB_MSG_MAX];
        int fd = raw_connect();

        if (fd < 0)
                return;
        if (soak_rand(rng) & 1)
                hello(fd);
        for (int i = 0; i < 20; i++) {
                size_t len = (size_t)(soak_rand(rng) % 4 == 0 ? 0 : soak_rand(rng) % sizeof(buf));
                int fds[4], nfds = (int)(soak_rand(rng) % 5), p[2];
                for (size_t k = 0; k < len; k++)
                        buf[k] = (uint8_t)soak_rand(rng);
                if (len >= 16 && (soak_rand(rng) & 1)) { /* a plausible header */
                        uint16_t op = (uint16_t)(soak_rand(rng) % 0x405);
                        uint32_t plen = (uint32_t)(len - 16);
                        memcpy(buf, &op, 2);
                        buf[2] = (uint8_t)nfds;
                        memcpy(buf + 12, &plen, 4);
                }
                for (int k = 0; k < nfds; k++) {
                        switch (soak_rand(rng) % 3) {
                        case 0: fds[k] = eventfd(0, EFD_CLOEXEC); break;
                        case 1: fds[k] = memfd_create("junk", MFD_CLOEXEC); break;
                        default:
                                if (pipe2(p, O_CLOEXEC) < 0) {
                                        fds[k] = -1;
                                        break;
                                }
                                close(p[1]);
                                fds[k] = p[0];
                        }
                        if (fds[k] < 0)
                                nfds = k;
                }
                raw_send(fd, buf, len, fds, (unsigned)nfds);
                for (int k = 0; k < nfds; k++)
                        close(fds[k]);
                raw_drain(fd);
        }
        close(fd);
}

/* Requests whose replies carry an fd, as fast as the socket takes them,
 * never read; then hang up. */
static void pipeline(void) {
        int fd = raw_connect();

        if (fd < 0)
                return;
        hello(fd);
        for (uint32_t i = 0; i < 400; i++) {
                ipcb_msg m = { .hdr = { .op = IPCB_OP_MEMFD, .id = i + 2 } };
                m.memfd.size = 4096;
                send_msg(fd, &m);
        }
        soak_sleep_us(200000);
        close(fd);
}

static void connections(void) {
        int fds[300], n = 0;

        for (; n < 300; n++)
                if ((fds[n] = raw_connect()) < 0)
                        break;
        soak_sleep_us(50000);
        while (n > 0)
                close(fds[--n]);
}

/* A TCP socket whose close() blocks: SO_LINGER with a full send queue and
 * a peer that never reads.  Attached to a request; the broker must close
 * it off its loop. */
static void linger_fd(void) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t al = sizeof(a);
        int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), s = -1, peer = -1, fd = -1;
        static char fill[65536];

        if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
            getsockname(l, (struct sockaddr *)&a, &al) < 0)
                goto out;
        s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
                goto out;
        peer = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (peer < 0)
                goto out;
        while (send(s, fill, sizeof(fill), MSG_DONTWAIT | MSG_NOSIGNAL) > 0)
                ;
        struct linger lg = { .l_onoff = 1, .l_linger = 3 };
        setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        if ((fd = raw_connect()) >= 0) {
                uint8_t buf[IPCB_MSG_MAX];
                ipcb_msg m = { .hdr = { .op = IPCB_OP_SHM_REGISTER, .id = 7, .nfds = 1 } };
                m.shm_register.name = (ipcb_name){ "soak.hostile.reg", 16 };
                m.shm_register.mode = 0600;
                hello(fd);
                ssize_t n = ipcb__proto_encode(&m, buf, sizeof(buf));
                if (n > 0)
                        raw_send(fd, buf, (size_t)n, &s, 1);
                soak_sleep_us(20000);
                raw_drain(fd);
        }
out:
        /* Our own copy must not block us: drop the linger first. */
        if (s >= 0) {
                struct linger off = { 0 };
                setsockopt(s, SOL_SOCKET, SO_LINGER, &off, sizeof(off));
        }
        /* The peer stays unread until the broker has closed its copy. */
        soak_sleep_us(100000);
        for (int *p = (int[]){ fd, s, peer, l }, i = 0; i < 4; i++)
                if (p[i] >= 0)
                        close(p[i]);
}

/* Open the victim objects (root made them 0666) and write garbage over
 * every writable broker page this process maps: the lock page, the
 * semaphore page; then use them and close. */
static void scribble(ipcb_client *c, uint64_t *rng) {
        ipcb_shm *s = NULL;
        ipcb_sem *m = NULL;
        char line[512];
        FILE *f;

        if (ipcb_shm_open(c, SOAK_VICTIM, IPCB_READ_WRITE, &s) < 0)
                return;
        ipcb_sem_open(c, SOAK_VICTIM, IPCB_SEM_UNDO, &m);
        ipcb_shm_try_lock(s, 10);
        if (m)
                ipcb_sem_try_acquire(m, 10);
        f = fopen("/proc/self/maps", "re");
        while (f && fgets(line, sizeof(line), f)) {
                unsigned long lo, hi;
                char perms[8];
                if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || perms[1] != 'w' ||
                    !strstr(line, "memfd:ipcbroker") || (void *)lo == ipcb_shm_data(s))
                        continue;
                for (unsigned long *p = (unsigned long *)lo; p < (unsigned long *)hi; p++)
                        if (soak_rand(rng) % 4 == 0)
                                *p = soak_rand(rng);
        }
        if (f)
                fclose(f);
        ipcb_shm_try_lock(s, 10);
        ipcb_shm_unlock(s);
        if (m) {
                ipcb_sem_try_acquire(m, 10);
                ipcb_sem_release(m, 3);
                ipcb_sem_close(m);
        }
        ipcb_shm_close(s);
}

static void create_flood(ipcb_client *c) {
        static ipcb_shm *h[1024];
        unsigned n = 0;

        for (; n < 1024; n++) {
                ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
                char name[64];
                snprintf(name, sizeof(name), "soak.hostile.%d.%u", (int)getpid(), n);
                if (ipcb_shm_create(c, name, 4096, &o, &h[n]) < 0)
                        break;
        }
        while (n > 0)
                ipcb_shm_close(h[--n]);
}

/* Every call must be refused: one that succeeds is a violation. */
static void bad_args(ipcb_client *c) {
        char longname[400];
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_sem_options so = IPCB_SEM_OPTIONS_INIT;
        const char *names[] = { "", "a/b", "..", "soak.\x01", longname };
        ipcb_shm *s;
        ipcb_sem *m;

        memset(longname, 'x', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                if (ipcb_shm_create(c, names[i], 4096, &o, &s) == 0) {
                        soak_violation("hostile: a segment named \"%.20s\" was created", names[i]);
                        ipcb_shm_close(s);
                }
        if (ipcb_shm_create(c, "soak.hostile.zero", 0, &o, &s) == 0) {
                soak_violation("hostile: a segment of size 0 was created");
                ipcb_shm_close(s);
        }
        if (ipcb_shm_create(c, "soak.hostile.huge", (size_t)1 << 40, &o, &s) == 0) {
                soak_violation("hostile: a 1 TiB segment was created");
                ipcb_shm_close(s);
        }
        o.mode = 07777;
        if (ipcb_shm_create(c, "soak.hostile.mode", 4096, &o, &s) == 0) {
                soak_violation("hostile: mode 07777 was accepted");
                ipcb_shm_close(s);
        }
        if (ipcb_sem_create(c, "soak.hostile.sem", 70000, &so, &m) == 0) {
                soak_violation("hostile: a semaphore of 70000 tokens was created");
                ipcb_sem_close(m);
        }
        if (ipcb_unlink(c, SOAK_DATA "0") == 0 || ipcb_chmod(c, IPCB_KIND_SHM, SOAK_KEEP "0", 0666) == 0 ||
            ipcb_sem_unlink(c, SOAK_UNDO) == 0)
                soak_violation("hostile: unlinked or changed an object it does not own");
        if (ipcb_shm_open(c, SOAK_DATA "0", IPCB_READ_WRITE, &s) == 0) {
                soak_violation("hostile: opened a data segment read-write");
                ipcb_shm_close(s);
        }
}

static void on_event(ipcb_client *c, const ipcb_watch_event *e, void *userdata) {
        (void)c;
        (void)e;
        (void)userdata;
}

/* Watch every name, then do not read for a while: churn from the other
 * workers piles up on our socket. */
static void deaf_watch(void) {
        ipcb_client *c;
        uint64_t id;

        if (ipcb_connect(soak_socket, &c) < 0)
                return;
        ipcb_set_timeout(c, 2000);
        if (ipcb_watch_add(c, IPCB_KIND_SHM, "", IPCB_WATCH_PREFIX, IPCB_WATCH_ALL, on_event, NULL,
                           &id) == 0)
                soak_sleep_us(1000000);
        ipcb_disconnect(c);
}

int hostile_run(wslot *w) {
        uint64_t rng = (uint64_t)getpid() * 0x2545f4914f6cdd1dull ^ soak_now_ns();
        uint64_t last_linger = 0;
        ipcb_client *c = NULL;

        (void)w;
        while (!atomic_load(&S->stop)) {
                enum attack a;

                if (!atomic_load(&S->hostile_on)) {
                        soak_sleep_us(20000);
                        continue;
                }
                if (!c && ipcb_connect(soak_socket, &c) < 0) {
                        c = NULL;
                        soak_sleep_us(50000);
                        continue;
                }
                if (c)
                        ipcb_set_timeout(c, 2000);
                a = (enum attack)(soak_rand(&rng) % A_N);
                /* At most one blocking close a second: each holds one of the
                 * broker's closing threads for its linger time. */
                if (a == A_LINGER && soak_now_ns() - last_linger < 1000000000ull)
                        a = A_JUNK;
                atomic_store(&S->last_attack, (int)a);
                switch (a) {
                case A_JUNK: junk(&rng); break;
                case A_PIPELINE: pipeline(); break;
                case A_CONNECTIONS: connections(); break;
                case A_LINGER: linger_fd(); last_linger = soak_now_ns(); break;
                case A_SCRIBBLE: scribble(c, &rng); break;
                case A_CREATE_FLOOD: create_flood(c); break;
                case A_BAD_ARGS: bad_args(c); break;
                case A_DEAF_WATCH: deaf_watch(); break;
                case A_N: break;
                }
                atomic_fetch_add(&S->attacks[a], 1);
                soak_sleep_us(50000);
        }
        if (c)
                ipcb_disconnect(c);
        return 0;
}
