/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* preload_bench.c: ipcb_bench_preload: the calls libipcbroker-preload.so
 * serves, through the shim against the kernel's own, in one process and
 * one run.  The shim is dlopen'ed (RTLD_LOCAL) and its shm_open, sem_open,
 * semget, semop... are called through dlsym; the kernel's are libc's.
 * Rows (median over interleaved rounds, ns per operation):
 *   shm_open+mmap+munmap+close of an existing 4 KiB segment, and its floor:
 *   the same client work around one bare round trip to a forked server
 *   that answers with a pre-made memfd (the shim's is judged <= 1.25x, the
 *   brokered-open target of docs/performance.md);
 *   sem_wait+sem_post on a named semaphore (glibc's own code on either
 *   page: the shim's is judged <= 1.05x);
 *   semop -1/+1 with SEM_UNDO (goal: the shim faster), and without;
 *   semop of two operations (a token from one semaphore to another and
 *   back: the shim's is a broker round trip, SEM_APPLY; reference).
 * It starts the ipcbrokerd built here on a temporary socket.
 * Usage: ipcb_bench_preload [--quick] */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sem.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct ops {
        int (*shm_open)(const char *, int, mode_t);
        int (*shm_unlink)(const char *);
        sem_t *(*sem_open)(const char *, int, ...);
        int (*sem_close)(sem_t *);
        int (*sem_unlink)(const char *);
        int (*semget)(key_t, int, int);
        int (*semop)(int, struct sembuf *, size_t);
        int (*semctl)(int, int, int, ...);
} ops;

typedef struct row {
        const char *name;
        int (*run)(const ops *o, void *state, unsigned n);
        const ops *o;
        void *state;
        double med, min;
        double samples[64];
} row;

static char seg_name[64], sem_nm[64];

/* What a program does with a segment's fd: map 4 KiB, touch a byte,
 * unmap, close. */
static int map_touch_close(int fd) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

        if (p == MAP_FAILED)
                return -errno;
        *(volatile char *)p = 1;
        munmap(p, 4096);
        close(fd);
        return 0;
}

static int run_shm(const ops *o, void *state, unsigned n) {
        (void)state;
        for (unsigned i = 0; i < n; i++) {
                int fd = o->shm_open(seg_name, O_RDWR, 0), r;
                if (fd < 0)
                        return -errno;
                if ((r = map_touch_close(fd)) < 0)
                        return r;
        }
        return 0;
}

static int run_sem(const ops *o, void *state, unsigned n) {
        sem_t *s = state;
        (void)o;
        for (unsigned i = 0; i < n; i++)
                if (sem_wait(s) < 0 || sem_post(s) < 0)
                        return -errno;
        return 0;
}

static int run_semop(const ops *o, void *state, unsigned n, short flg) {
        struct sembuf down = { 0, -1, flg }, up = { 0, 1, flg };
        int id = *(int *)state;
        for (unsigned i = 0; i < n; i++)
                if (o->semop(id, &down, 1) < 0 || o->semop(id, &up, 1) < 0)
                        return -errno;
        return 0;
}

static int run_semop_undo(const ops *o, void *state, unsigned n) {
        return run_semop(o, state, n, SEM_UNDO);
}

static int run_semop_plain(const ops *o, void *state, unsigned n) {
        return run_semop(o, state, n, 0);
}

/* A token from member 0 to member 1 and back: two semops of two
 * operations each. */
static int run_semop_multi(const ops *o, void *state, unsigned n) {
        struct sembuf ab[2] = { { 0, -1, 0 }, { 1, 1, 0 } }, ba[2] = { { 1, -1, 0 }, { 0, 1, 0 } };
        int id = *(int *)state;
        for (unsigned i = 0; i < n; i++)
                if (o->semop(id, ab, 2) < 0 || o->semop(id, ba, 2) < 0)
                        return -errno;
        return 0;
}

/* The floor: one 64-byte request on a SOCK_SEQPACKET socketpair, answered
 * by a forked server with 64 bytes and a pre-made 4 KiB memfd; then what the
 * shim's shm_open and the program do with the fd (fstat, mmap, touch,
 * munmap, close).  No names, no access checks, no handle, no event loop. */
typedef struct floor_srv {
        int fd;
        pid_t pid;
} floor_srv;

static int floor_start(floor_srv *f) {
        int sv[2], memfd;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        if ((memfd = memfd_create("ipcb-bench-floor", MFD_CLOEXEC)) < 0 || ftruncate(memfd, 4096) < 0)
                return -errno;
        f->pid = fork();
        if (f->pid < 0)
                return -errno;
        if (f->pid == 0) {
                char buf[64];
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                close(sv[0]);
                for (;;) {
                        union {
                                struct cmsghdr h;
                                char b[CMSG_SPACE(sizeof(int))];
                        } cm;
                        struct iovec iov = { buf, sizeof(buf) };
                        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
                        if (recv(sv[1], buf, sizeof(buf), 0) <= 0)
                                _exit(0);
                        mh.msg_control = cm.b;
                        mh.msg_controllen = sizeof(cm.b);
                        cm.h.cmsg_level = SOL_SOCKET;
                        cm.h.cmsg_type = SCM_RIGHTS;
                        cm.h.cmsg_len = CMSG_LEN(sizeof(int));
                        memcpy(CMSG_DATA(&cm.h), &memfd, sizeof(int));
                        if (sendmsg(sv[1], &mh, 0) < 0)
                                _exit(1);
                }
        }
        close(sv[1]);
        close(memfd);
        f->fd = sv[0];
        return 0;
}

static int run_floor(const ops *o, void *state, unsigned n) {
        floor_srv *f = state;
        char buf[64] = { 0 };
        (void)o;
        for (unsigned i = 0; i < n; i++) {
                union {
                        struct cmsghdr h;
                        char b[CMSG_SPACE(sizeof(int))];
                } cm;
                struct iovec iov = { buf, sizeof(buf) };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
                                     .msg_controllen = sizeof(cm.b) };
                struct stat st;
                int fd;
                if (send(f->fd, buf, sizeof(buf), 0) < 0 || recvmsg(f->fd, &mh, MSG_CMSG_CLOEXEC) < 0)
                        return -errno;
                if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || mh.msg_controllen < CMSG_LEN(sizeof(int)))
                        return -EPROTO;
                memcpy(&fd, CMSG_DATA(&cm.h), sizeof(int));
                if (fstat(fd, &st) < 0 || map_touch_close(fd) < 0)
                        return -errno;
        }
        return 0;
}

static double now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static pid_t start_broker(const char *sock) {
        pid_t pid = fork();
        if (pid == 0) {
                int null = open("/dev/null", O_WRONLY);
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                dup2(null, 2);
                execl(IPCBROKERD_PATH, IPCBROKERD_PATH, "--socket", sock, (char *)NULL);
                _exit(127);
        }
        for (int i = 0; i < 500; i++) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
                if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock) >= (int)sizeof(sa.sun_path))
                        break;
                if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
                        close(fd);
                        return pid;
                }
                if (fd >= 0)
                        close(fd);
                usleep(10000);
        }
        kill(pid, SIGKILL);
        return -1;
}

#define LOOKUP(o, h, f) ((o)->f = (__typeof__((o)->f))dlsym(h, #f))

int main(int argc, char **argv) {
        bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
        char dir[] = "/tmp/ipcb-bench-preload.XXXXXX", sock[128];
        ops kern, shim;
        void *h;
        pid_t broker;
        int status = 0, kid, sid, kid2, sid2;
        sem_t *ksem, *ssem;
        floor_srv fl;
        key_t key = (key_t)(0x6b000000 | (getpid() & 0xffffff));

        if (!mkdtemp(dir))
                return 1;
        snprintf(sock, sizeof(sock), "%s/ipcb.sock", dir);
        if ((broker = start_broker(sock)) < 0) {
                fprintf(stderr, "ipcb_bench_preload: no broker\n");
                return 1;
        }
        setenv("IPCBROKER_SOCKET", sock, 1);
        setenv("IPCBROKER_PRELOAD_PREFIX", "bench.", 1);
        if (!(h = dlopen(IPCB_PRELOAD_LIB, RTLD_NOW | RTLD_LOCAL))) {
                fprintf(stderr, "ipcb_bench_preload: %s\n", dlerror());
                return 1;
        }
        kern = (ops){ shm_open, shm_unlink, sem_open, sem_close, sem_unlink,
                      semget, semop, semctl };
        LOOKUP(&shim, h, shm_open);
        LOOKUP(&shim, h, shm_unlink);
        LOOKUP(&shim, h, sem_open);
        LOOKUP(&shim, h, sem_close);
        LOOKUP(&shim, h, sem_unlink);
        LOOKUP(&shim, h, semget);
        LOOKUP(&shim, h, semop);
        LOOKUP(&shim, h, semctl);

        snprintf(seg_name, sizeof(seg_name), "/ipcb-bench-preload-%d", (int)getpid());
        snprintf(sem_nm, sizeof(sem_nm), "/ipcb-bench-preload-%d", (int)getpid());
        /* the same names on both sides: /dev/shm for the kernel, the broker for the shim */
        for (int side = 0; side < 2; side++) {
                const ops *o = side ? &shim : &kern;
                int fd = o->shm_open(seg_name, O_CREAT | O_EXCL | O_RDWR, 0600);
                if (fd < 0 || ftruncate(fd, 4096) < 0) {
                        perror("shm_open");
                        return 1;
                }
                close(fd);
        }
        ksem = kern.sem_open(sem_nm, O_CREAT | O_EXCL, 0600, 1);
        ssem = shim.sem_open(sem_nm, O_CREAT | O_EXCL, 0600, 1);
        kid = kern.semget(key, 1, IPC_CREAT | IPC_EXCL | 0600);
        sid = shim.semget(key, 1, IPC_CREAT | IPC_EXCL | 0600);
        kid2 = kern.semget(key + 1, 2, IPC_CREAT | IPC_EXCL | 0600);
        sid2 = shim.semget(key + 1, 2, IPC_CREAT | IPC_EXCL | 0600);
        if (ksem == SEM_FAILED || ssem == SEM_FAILED || kid < 0 || sid < 0 ||
            kern.semctl(kid, 0, SETVAL, 1) < 0 || shim.semctl(sid, 0, SETVAL, 1) < 0 || kid2 < 0 ||
            sid2 < 0 || kern.semctl(kid2, 0, SETVAL, 1) < 0 || shim.semctl(sid2, 0, SETVAL, 1) < 0) {
                perror("setup");
                return 1;
        }

        if (floor_start(&fl) < 0) {
                perror("floor server");
                return 1;
        }
        row rows[] = {
                { "shm_open+mmap+munmap+close, kernel (/dev/shm)", run_shm, &kern, NULL, 0, 0, { 0 } },
                { "shm_open+mmap+munmap+close, shim (broker)", run_shm, &shim, NULL, 0, 0, { 0 } },
                { "sem_wait+sem_post, kernel sem_open", run_sem, &kern, ksem, 0, 0, { 0 } },
                { "sem_wait+sem_post, shim sem_open", run_sem, &shim, ssem, 0, 0, { 0 } },
                { "semop -1/+1 SEM_UNDO, kernel", run_semop_undo, &kern, &kid, 0, 0, { 0 } },
                { "semop -1/+1 SEM_UNDO, shim (undo handle)", run_semop_undo, &shim, &sid, 0, 0, { 0 } },
                { "semop -1/+1, kernel", run_semop_plain, &kern, &kid, 0, 0, { 0 } },
                { "semop -1/+1, shim", run_semop_plain, &shim, &sid, 0, 0, { 0 } },
                { "(floor) round trip + memfd; fstat+mmap+munmap+close", run_floor, NULL, &fl, 0, 0, { 0 } },
                { "semop 2 ops, a token there and back, kernel", run_semop_multi, &kern, &kid2, 0, 0, { 0 } },
                { "semop 2 ops, a token there and back, shim", run_semop_multi, &shim, &sid2, 0, 0, { 0 } },
        };
        enum { NROWS = sizeof(rows) / sizeof(rows[0]) };
        unsigned iters[NROWS], rounds = quick ? 3 : 21;
        double target_ns = quick ? 2e6 : 20e6;

        /* calibrate: about target_ns per row per round */
        for (unsigned r = 0; r < NROWS; r++) {
                unsigned n = 16;
                for (;;) {
                        double t0 = now_ns();
                        if (rows[r].run(rows[r].o, rows[r].state, n) < 0) {
                                fprintf(stderr, "%s: %s\n", rows[r].name, strerror(errno));
                                return 1;
                        }
                        double dt = now_ns() - t0;
                        if (dt > target_ns / 4 || n > (1u << 26)) {
                                iters[r] = (unsigned)((double)n * target_ns / (dt > 1 ? dt : 1)) + 1;
                                break;
                        }
                        n *= 4;
                }
        }
        /* every other round in reverse order, so that neither side of a
         * pair always runs first */
        for (unsigned k = 0; k < rounds; k++)
                for (unsigned i = 0; i < NROWS; i++) {
                        unsigned r = k % 2 ? NROWS - 1 - i : i;
                        double t0 = now_ns();
                        if (rows[r].run(rows[r].o, rows[r].state, iters[r]) < 0)
                                return 1;
                        rows[r].samples[k] = (now_ns() - t0) / iters[r];
                }
        printf("%-48s %12s %12s\n", "operation (one process, interleaved rounds)", "median ns/op",
               "min ns/op");
        for (unsigned r = 0; r < NROWS; r++) {
                qsort(rows[r].samples, rounds, sizeof(double), cmp_d);
                rows[r].med = rows[r].samples[rounds / 2];
                rows[r].min = rows[r].samples[0];
                printf("%-48s %12.1f %12.1f\n", rows[r].name, rows[r].med, rows[r].min);
        }
        /* the sem pair is ~50 ns of the same glibc code on either side: on
         * a shared machine its medians move by +-20% between runs, so it is
         * judged on the best round (what the code costs, not what the
         * neighbours took) */
        double shm_ratio = rows[1].med / rows[0].med, sem_ratio = rows[3].min / rows[2].min,
               undo_ratio = rows[5].med / rows[4].med, plain_ratio = rows[7].med / rows[6].med;
        double floor_ratio = rows[1].med / rows[8].med;
        printf("ratio shim/kernel shm_open+mmap+close: %.2fx (reference)\n", shm_ratio);
        printf("ratio shim/floor  shm_open+mmap+close: %.2fx (target <= 1.25) %s\n", floor_ratio,
               quick ? "not judged (--quick)" : floor_ratio <= 1.25 ? "ok" : "MISSED");
        printf("ratio shim/kernel sem_wait+sem_post:   %.3fx (best rounds; target <= 1.05) %s\n", sem_ratio,
               quick ? "not judged (--quick)" : sem_ratio <= 1.05 ? "ok" : "MISSED");
        printf("ratio shim/kernel semop SEM_UNDO:      %.2fx (goal < 1) %s\n", undo_ratio,
               quick ? "not judged (--quick)" : undo_ratio < 1 ? "ok" : "MISSED");
        printf("ratio shim/kernel semop plain:         %.2fx (reference)\n", plain_ratio);
        printf("ratio shim/kernel semop 2 operations:  %.2fx (reference: the shim's is a round trip)\n",
               rows[10].med / rows[9].med);

        kern.shm_unlink(seg_name);
        shim.shm_unlink(seg_name);
        kern.sem_close(ksem);
        shim.sem_close(ssem);
        kern.sem_unlink(sem_nm);
        shim.sem_unlink(sem_nm);
        kern.semctl(kid, 0, IPC_RMID);
        shim.semctl(sid, 0, IPC_RMID);
        kern.semctl(kid2, 0, IPC_RMID);
        shim.semctl(sid2, 0, IPC_RMID);
        close(fl.fd); /* the floor server exits */
        waitpid(fl.pid, NULL, 0);
        kill(broker, SIGTERM);
        waitpid(broker, &status, 0);
        unlink(sock);
        rmdir(dir);
        return 0;
}
