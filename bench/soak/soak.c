/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* soak.c: ipcb_soak, the chaos soak's orchestrator (docs/performance.md,
 * "Soak").  Against a broker run by a service manager (bench/soak/run.sh
 * starts a real `systemd --user` and points $IPCBROKER_SOCKET at it), for
 * --minutes, all at once: producers and consumers of different uids
 * exchanging checked data, undo and plain token users, a uid filling its
 * quota, a hostile uid; random kill -9 of clients; a restart through the
 * manager every --restart-every seconds.  It checks continuously that
 * tokens add up, locks of the dead are freed, transients of the dead go,
 * persistent contents survive, data only moves forward, the broker never
 * restarts by itself; and at the end, with the load gone, that the broker's
 * fds, fd-store entries and per-uid counters are back at their baseline.
 * It prints a resource table as it goes and latency percentiles of a probe
 * at the end.  Exit status 1 on any broken invariant. */
#include "soak.h"

#include "ipcbroker.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

soak_shared *S;
const char *soak_socket;

static uint64_t t_start;
static volatile sig_atomic_t interrupted;

/* ---- shared helpers ---- */

uint64_t soak_now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void soak_sleep_us(unsigned us) {
        struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !interrupted)
                ;
}

uint64_t soak_rand(uint64_t *s) {
        uint64_t x = *s ? *s : 0x853c49e6748fea9bull;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return *s = x;
}

void soak_violation(const char *fmt, ...) {
        char msg[1400];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        atomic_fetch_add(&S->violations, 1);
        fprintf(stderr, "VIOLATION at %.1f s (pid %d): %s\n", (double)(soak_now_ns() - t_start) / 1e9,
                (int)getpid(), msg);
}

static uint64_t data_sum(const uint8_t *p, uint64_t seq) {
        uint64_t h = 0xcbf29ce484222325ull ^ seq;
        for (unsigned i = 0; i < SOAK_PAYLOAD; i += 8) {
                uint64_t v;
                memcpy(&v, p + i, 8);
                h = (h ^ v) * 0x100000001b3ull;
        }
        return h;
}

/* The sequence first, the payload, the sum last: a writer killed half way
 * leaves a sum that does not match. */
void soak_data_fill(void *data, uint64_t seq) {
        soak_data_hdr *h = data;
        uint8_t *p = (uint8_t *)(h + 1);
        uint64_t r = seq * 0x9e3779b97f4a7c15ull + 1;

        h->seq = seq;
        for (unsigned i = 0; i < SOAK_PAYLOAD; i += 8) {
                uint64_t v = soak_rand(&r);
                memcpy(p + i, &v, 8);
        }
        __atomic_thread_fence(__ATOMIC_RELEASE);
        h->sum = data_sum(p, seq);
}

bool soak_data_valid(const void *data, uint64_t *ret_seq) {
        const soak_data_hdr *h = data;
        *ret_seq = h->seq;
        return h->sum == data_sum((const uint8_t *)(h + 1), h->seq);
}

void soak_keep_fill(void *data, unsigned index) {
        uint64_t r = 0x1234567ull + index, *p = data;
        for (size_t i = 0; i < SOAK_KEEP_SIZE / 8; i++)
                p[i] = soak_rand(&r);
}

bool soak_keep_valid(const void *data, unsigned index) {
        uint64_t r = 0x1234567ull + index;
        const uint64_t *p = data;
        for (size_t i = 0; i < SOAK_KEEP_SIZE / 8; i++)
                if (p[i] != soak_rand(&r))
                        return false;
        return true;
}

/* ---- options ---- */

static double opt_minutes = 1;
static unsigned opt_grace = 5, opt_restart_every = 20, opt_kill_ms = 250, opt_row_every;
static const char *opt_report;
/* --without: parts of the load left out, to see what a figure comes from. */
enum { W_KILLS = 1, W_RESTARTS = 2, W_HOSTILE = 4, W_QUOTA = 8 };
static unsigned opt_without;

static void usage(FILE *f) {
        fprintf(f, "Usage: ipcb_soak [--minutes M] [--grace S] [--restart-every S] [--kill-every-ms N]\n"
                   "                 [--row-every S] [--report FILE]\n"
                   "Run by bench/soak/run.sh, which starts the broker under a user manager.\n"
                   "  --minutes M          how long the load runs (default 1)\n"
                   "  --grace S            the broker's --restore-grace (default 5)\n"
                   "  --restart-every S    restart the broker through the manager (default 20)\n"
                   "  --kill-every-ms N    mean time between kill -9 of a client (default 250)\n"
                   "  --row-every S        a row of the resource table (default 5, 60 past 10 min)\n"
                   "  --report FILE        also write the summary there (Markdown)\n"
                   "  --without LIST       leave out some of kills,restarts,hostile,quota\n"
                   "$IPCBROKER_SOCKET names the broker; $IPCB_SOAK_SYSTEMCTL the command that\n"
                   "drives its manager (default: systemctl --user).\n");
}

static void parse_args(int argc, char **argv) {
        static const struct option opts[] = {
                { "minutes", required_argument, NULL, 'm' },
                { "grace", required_argument, NULL, 'g' },
                { "restart-every", required_argument, NULL, 'r' },
                { "kill-every-ms", required_argument, NULL, 'k' },
                { "row-every", required_argument, NULL, 'R' },
                { "report", required_argument, NULL, 'o' },
                { "without", required_argument, NULL, 'w' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int ch;

        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (ch) {
                case 'm': opt_minutes = atof(optarg); break;
                case 'g': opt_grace = (unsigned)atoi(optarg); break;
                case 'r': opt_restart_every = (unsigned)atoi(optarg); break;
                case 'k': opt_kill_ms = (unsigned)atoi(optarg); break;
                case 'R': opt_row_every = (unsigned)atoi(optarg); break;
                case 'o': opt_report = optarg; break;
                case 'w': {
                        static const char *const parts[] = { "kills", "restarts", "hostile", "quota" };
                        char *save = NULL;
                        for (char *t = strtok_r(optarg, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                                unsigned i = 0;
                                while (i < 4 && strcmp(t, parts[i]))
                                        i++;
                                if (i == 4) {
                                        fprintf(stderr, "ipcb_soak: --without: unknown part '%s'\n", t);
                                        exit(2);
                                }
                                opt_without |= 1u << i;
                        }
                        break;
                }
                case 'h': usage(stdout); exit(0);
                default: usage(stderr); exit(2);
                }
        }
        if (optind < argc || opt_minutes <= 0 || opt_kill_ms == 0 || opt_restart_every < 5) {
                usage(stderr);
                exit(2);
        }
        if (!opt_row_every)
                opt_row_every = opt_minutes > 10 ? 60 : 5;
}

/* ---- the service manager ---- */

static int manager(char *out, size_t cap, const char *args) {
        const char *ctl = getenv("IPCB_SOAK_SYSTEMCTL");
        char cmd[512];
        FILE *f;
        int st;

        snprintf(cmd, sizeof(cmd), "%s %s 2>&1", ctl && *ctl ? ctl : "systemctl --user", args);
        if (!(f = popen(cmd, "r")))
                return -1;
        size_t n = fread(out, 1, cap - 1, f);
        out[n] = '\0';
        while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
                out[--n] = '\0';
        st = pclose(f);
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static long show(const char *prop) {
        char args[128], out[256];
        snprintf(args, sizeof(args), "show -p %s --value ipcbroker.service", prop);
        if (manager(out, sizeof(out), args) != 0)
                return -1;
        return strtol(out, NULL, 10);
}

/* ---- the broker's resources ---- */

typedef struct uid_usage {
        unsigned objects, handles, connections;
} uid_usage;

typedef struct sample {
        double t;
        long pid, fds, fdstore, rss_kib;
        unsigned objects;
        uid_usage uids; /* the soak's uids, summed */
        uid_usage root; /* uid 0: this process's */
        bool valid;     /* every query answered */
        uint64_t ops, kills, restarts, attacks, violations;
        char names[1024]; /* the objects that are not workers' transients */
        double p99_ms, max_ms; /* the probe outside restarts since the last row */
        double echo_max_ms;    /* the echo since the last row */
        double steal;          /* share of the CPUs' time the host took since the last row */
} sample;

static long count_fds(long pid) {
        char path[64];
        struct dirent *e;
        long n = 0;
        DIR *d;

        snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
        if (!(d = opendir(path)))
                return -1;
        while ((e = readdir(d)))
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return pid == (long)getpid() ? n - 1 : n;
}

/* What the fds of pid are, counted by kind ("socket 5 memfd:ipcbroker 20
 * ..."), to say what a difference from the baseline is made of. */
static void fd_kinds(long pid, char *out, size_t cap) {
        char kinds[32][48];
        unsigned counts[32] = { 0 }, n = 0;
        char path[320], link[64];
        struct dirent *e;
        size_t len = 0;
        DIR *d;

        out[0] = '\0';
        snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
        if (!(d = opendir(path)))
                return;
        while ((e = readdir(d))) {
                ssize_t k;
                unsigned i;
                if (e->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "/proc/%ld/fd/%s", pid, e->d_name);
                if ((k = readlink(path, link, sizeof(link) - 1)) < 0)
                        continue;
                link[k] = '\0';
                link[strcspn(link, "0123456789")] = '\0'; /* socket:[123] -> socket:[ */
                for (i = 0; i < n && strcmp(kinds[i], link); i++)
                        ;
                if (i == n && n < 32)
                        snprintf(kinds[n++], sizeof(kinds[0]), "%.47s", link);
                if (i < n)
                        counts[i]++;
        }
        closedir(d);
        for (unsigned i = 0; i < n && len < cap; i++)
                len += (size_t)snprintf(out + len, cap - len, "%s%s %u", i ? ", " : "", kinds[i], counts[i]);
}

static char base_fd_kinds[512];

static long rss_kib(long pid) {
        char path[64], line[256];
        long v = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%ld/status", pid);
        if (!(f = fopen(path, "re")))
                return -1;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %ld", &v) == 1)
                        break;
        fclose(f);
        return v;
}

static bool soak_uid(uid_t u) {
        return u == UID_PRODUCER || u == UID_CONSUMER || u == UID_UNDO || u == UID_HOSTILE ||
               u == UID_QUOTA;
}

static int quota_cb(const ipcb_quota_info *q, void *userdata) {
        uid_usage *u = userdata;
        if (q->uid == 0) {
                u[1].objects = (unsigned)q->objects;
                u[1].handles = q->handles;
                u[1].connections = q->connections;
        } else if (soak_uid(q->uid)) {
                u->objects += (unsigned)q->objects;
                u->handles += q->handles;
                u->connections += q->connections;
        }
        return 0;
}

typedef struct names {
        unsigned objects, stray; /* all; transients of workers (soak.tr., soak.q., soak.hostile.) */
        char first[64];
        char all[1024]; /* "kind:name " of the other objects */
} names;

static int list_cb(const ipcb_object_info *o, void *userdata) {
        names *n = userdata;
        size_t l = strlen(n->all);
        n->objects++;
        if (strncmp(o->name, SOAK_TR, strlen(SOAK_TR)) && strncmp(o->name, "soak.q.", 7) &&
            strncmp(o->name, "soak.hostile.", 13) && l < sizeof(n->all) - 1)
                snprintf(n->all + l, sizeof(n->all) - l, "%d:%.60s ", o->kind, o->name);
        if (!strncmp(o->name, SOAK_TR, strlen(SOAK_TR)) || !strncmp(o->name, "soak.q.", 7) ||
            !strncmp(o->name, "soak.hostile.", 13)) {
                if (!n->stray++)
                        snprintf(n->first, sizeof(n->first), "%.63s", o->name);
        }
        return 0;
}

/* ---- workers ---- */

/* The shared region: a memfd, mapped by every process; workers get it as
 * SHARED_FD. */
#define SHARED_FD 3
static int shared_fd = -1;

static int map_shared(int fd) {
        S = mmap(NULL, sizeof(*S), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        return S == MAP_FAILED ? -1 : 0;
}

/* ipcb_soak --worker SLOT T0: one worker, as the uid it was started with. */
static int worker_main(char **argv) {
        wslot *w;
        unsigned i = (unsigned)atoi(argv[2]);

        t_start = strtoull(argv[3], NULL, 10);
        soak_socket = getenv("IPCBROKER_SOCKET");
        if (!soak_socket || map_shared(SHARED_FD) < 0 || i >= SOAK_MAX_WORKERS) {
                fprintf(stderr, "ipcb_soak --worker: no socket or no shared region (run ipcb_soak)\n");
                return 2;
        }
        close(SHARED_FD);
        w = &S->w[i];
        return w->role == R_HOSTILE ? hostile_run(w) : worker_run(w);
}

static unsigned nworkers;
static uint64_t kills, kills_by_phase[P_NPHASES], restarts, checks, lock_checks;

static void spawn(wslot *w) {
        pid_t pid;

        atomic_store(&w->phase, P_IDLE);
        atomic_store(&w->held, 0);
        atomic_store(&w->pending, 0);
        atomic_store(&w->locked, 0);
        fflush(NULL);
        pid = fork();
        if (pid < 0) {
                perror("fork");
                exit(1);
        }
        if (pid == 0) {
                signal(SIGINT, SIG_IGN);
                char slot[16], t0[32];
                /* A client of its own: exec'd, with nothing of ours but the
                 * shared region (no mapping, no connection). */
                if (setgroups(0, NULL) < 0 || setresgid(w->uid, w->uid, w->uid) < 0 ||
                    setresuid(w->uid, w->uid, w->uid) < 0 ||
                    (shared_fd == SHARED_FD ? fcntl(SHARED_FD, F_SETFD, 0) : dup2(shared_fd, SHARED_FD)) < 0) {
                        perror("ipcb_soak: set ids");
                        _exit(1);
                }
                /* After the uid change, which clears it; exec keeps it. */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() == 1)
                        _exit(1);
                snprintf(slot, sizeof(slot), "%u", (unsigned)(w - S->w));
                snprintf(t0, sizeof(t0), "%llu", (unsigned long long)t_start);
                execl("/proc/self/exe", "ipcb_soak", "--worker", slot, t0, (char *)NULL);
                perror("ipcb_soak: exec");
                _exit(1);
        }
        atomic_store(&w->pid, pid);
}

static void add_worker(enum role r, unsigned index, uid_t uid) {
        wslot *w = &S->w[nworkers++];
        w->role = r;
        w->index = index;
        w->uid = uid;
        spawn(w);
}

/* Wait for worker w (pid): killed by us, or dead on its own, which is a
 * violation (a crash, a failed exec, an invariant it saw break). */
static void reap(wslot *w, pid_t pid, bool killed) {
        int st;

        if (waitpid(pid, &st, 0) != pid)
                return;
        if (killed && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
                return;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && atomic_load(&S->stop))
                return;
        if (WIFSIGNALED(st))
                soak_violation("worker %d (role %d) died of signal %d", (int)pid, (int)w->role, WTERMSIG(st));
        else
                soak_violation("worker %d (role %d) exited with status %d", (int)pid, (int)w->role,
                               WEXITSTATUS(st));
}

/* Workers that died on their own: reported, started again. */
static void check_workers(void) {
        for (unsigned i = 0; i < nworkers; i++) {
                wslot *w = &S->w[i];
                pid_t pid = atomic_load(&w->pid);
                siginfo_t si = { 0 };
                if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid) {
                        reap(w, pid, false);
                        spawn(w);
                }
        }
}

static bool killable(const wslot *w) {
        return w->role == R_PRODUCER || w->role == R_CONSUMER || w->role == R_UNDO || w->role == R_QUOTA;
}

/* ---- checks ---- */

static ipcb_client *oc;          /* the orchestrator's connection (root) */
static ipcb_shm *data_rw[SOAK_NDATA];
static uint64_t restart_end_ns;  /* when the last restart command returned */

/* Until when restart effects are allowed: the grace period and 2 s more. */
static uint64_t grace_until(void) {
        return restart_end_ns ? restart_end_ns + (opt_grace + 2) * 1000000000ull : 0;
}

static bool in_restart(void) {
        return (atomic_load(&S->restart_seq) & 1) || soak_now_ns() < grace_until();
}

/* A holder died with the lock of data segment i: the next locker must get
 * it within the bound (at once; after a restart, by the grace's end). */
static void check_lock_freed(unsigned i) {
        uint64_t now = soak_now_ns(), until = now + 1000000000ull;
        uint64_t seq;
        int r;

        if (in_restart() && grace_until() + 2000000000ull > until)
                until = grace_until() + 2000000000ull;
        lock_checks++;
        r = ipcb_shm_try_lock(data_rw[i], (int)((until - now) / 1000000));
        if (r < 0) {
                soak_violation("the lock of %s%u, held by a killed process, not free after %llu ms: %s",
                               SOAK_DATA, i, (unsigned long long)((soak_now_ns() - now) / 1000000),
                               strerror(-r));
                return;
        }
        /* Its holder died holding it, and nobody else locks this segment
         * until its producer is started again. */
        if (r != IPCB_OWNER_DIED)
                soak_violation("the lock of %s%u, held by a killed process, was handed on without "
                               "IPCB_OWNER_DIED", SOAK_DATA, i);
        atomic_fetch_add(&S->owner_died, r == IPCB_OWNER_DIED);
        if (!soak_data_valid(ipcb_shm_data(data_rw[i]), &seq)) {
                soak_data_fill(ipcb_shm_data(data_rw[i]), seq);
                atomic_fetch_add(&S->repairs, 1);
        }
        if ((r = ipcb_shm_unlock(data_rw[i])) < 0)
                soak_violation("unlock of %s%u after the check: %s", SOAK_DATA, i, strerror(-r));
}

/* Transients of killed producers, checked until gone or late. */
typedef struct pending_gone {
        pid_t pid;
        uint64_t deadline;
} pending_gone;
static pending_gone gone[256];
static unsigned ngone, gone_skipped;

static void expect_gone(pid_t pid) {
        uint64_t d = soak_now_ns() + 2000000000ull;
        if (grace_until() > d)
                d = grace_until();
        if (ngone < sizeof(gone) / sizeof(gone[0]))
                gone[ngone++] = (pending_gone){ pid, d };
        else
                gone_skipped++;
}

static void check_gone(void) {
        for (unsigned i = 0; i < ngone;) {
                ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
                unsigned left = 0;
                for (unsigned k = 0; k < SOAK_NTR; k++) {
                        char name[64];
                        snprintf(name, sizeof(name), SOAK_TR "%d.%u", (int)gone[i].pid, k);
                        int r = ipcb_stat(oc, IPCB_KIND_SHM, name, &info);
                        if (r != -ENOENT && r != 0 && !in_restart())
                                soak_violation("stat of %s: %s", name, strerror(-r));
                        if (r != -ENOENT)
                                left++;
                }
                /* A restart after the kill keeps them for its grace. */
                if (grace_until() > gone[i].deadline)
                        gone[i].deadline = grace_until();
                if (left && soak_now_ns() < gone[i].deadline) {
                        i++;
                        continue;
                }
                if (left)
                        soak_violation("%u transient(s) of killed pid %d still there past the bound", left,
                                       (int)gone[i].pid);
                gone[i] = gone[--ngone];
        }
}

static void kill_one(uint64_t *rng) {
        wslot *w;
        int locked, ph;
        pid_t pid;

        do
                w = &S->w[soak_rand(rng) % nworkers];
        while (!killable(w));
        pid = atomic_load(&w->pid);
        ph = atomic_load(&w->phase);
        kill(pid, SIGKILL);
        reap(w, pid, true);
        locked = atomic_load(&w->locked);
        kills++;
        kills_by_phase[ph]++;
        if (w->role == R_PRODUCER)
                expect_gone(pid);
        if (locked)
                check_lock_freed((unsigned)locked - 1);
        spawn(w);
}

/* Token sums, sampled every 100 ms.  A client between its atomic and its
 * bookkeeping makes one sample wrong; a sum that stays wrong for 2 s
 * (outside a restart's grace, for what the grace may keep) is a violation. */
static unsigned bad_undo_total, bad_undo_live, bad_plain;

static void check_tokens(void) {
        ipcb_object_info u = IPCB_OBJECT_INFO_INIT, p = IPCB_OBJECT_INFO_INIT;
        int live = 0, plain = 0, pend = 0;

        for (unsigned i = 0; i < nworkers; i++) {
                wslot *w = &S->w[i];
                if (w->role == R_UNDO)
                        live += atomic_load(&w->held), pend += abs(atomic_load(&w->pending));
                if (w->role == R_PLAIN)
                        plain += atomic_load(&w->held), pend += abs(atomic_load(&w->pending));
        }
        if (ipcb_stat(oc, IPCB_KIND_SEM, SOAK_UNDO, &u) < 0 || ipcb_stat(oc, IPCB_KIND_SEM, SOAK_PLAIN, &p) < 0) {
                if (!in_restart())
                        soak_violation("stat of the semaphores failed outside a restart");
                return;
        }
        /* Tokens are never made or lost: the count plus what undo slots
         * hold (the broker's view, kept over a restart) is the initial. */
        if (u.sem_value + u.sem_undo_held != SOAK_UNDO_INIT) {
                if (++bad_undo_total == 20)
                        soak_violation("%s: count %u + undo-held %u != %u for 2 s", SOAK_UNDO, u.sem_value,
                                       u.sem_undo_held, SOAK_UNDO_INIT);
        } else {
                bad_undo_total = 0;
        }
        /* What undo slots hold is what live holders took. */
        if (!in_restart() && (int)u.sem_undo_held != live) {
                if (++bad_undo_live == 20)
                        soak_violation("%s: undo-held %u, live holders took %d (pending %d) for 2 s",
                                       SOAK_UNDO, u.sem_undo_held, live, pend);
        } else {
                bad_undo_live = 0;
        }
        if ((int)p.sem_value + plain != (int)SOAK_PLAIN_INIT) {
                if (++bad_plain == 20)
                        soak_violation("%s: count %u + held %d != %u for 2 s", SOAK_PLAIN, p.sem_value, plain,
                                       SOAK_PLAIN_INIT);
        } else {
                bad_plain = 0;
        }
}

static void check_keep(const char *when) {
        for (unsigned i = 0; i < SOAK_NKEEP; i++) {
                char name[64];
                ipcb_shm *s;
                int r;

                snprintf(name, sizeof(name), SOAK_KEEP "%u", i);
                if ((r = ipcb_shm_open(oc, name, IPCB_READ_ONLY, &s)) < 0) {
                        if (!in_restart())
                                soak_violation("%s: %s: %s", when, name, strerror(-r));
                        continue;
                }
                if (ipcb_shm_size(s) != SOAK_KEEP_SIZE || !soak_keep_valid(ipcb_shm_data(s), i))
                        soak_violation("%s: %s lost its contents", when, name);
                ipcb_shm_close(s);
        }
}

static uint64_t last_seen[SOAK_NDATA], last_progress[SOAK_NDATA];

/* Data moves: every segment gets a newer sequence read at least every 10 s
 * (outside a restart's grace). */
static void check_progress(void) {
        uint64_t now = soak_now_ns();
        for (unsigned i = 0; i < SOAK_NDATA; i++) {
                uint64_t s = atomic_load(&S->max_seen[i]);
                if (s != last_seen[i] || in_restart()) {
                        last_seen[i] = s;
                        last_progress[i] = now;
                } else if (now - last_progress[i] > 10000000000ull) {
                        soak_violation("%s%u: no new data read for 10 s (sequence %llu)", SOAK_DATA, i,
                                       (unsigned long long)s);
                        last_progress[i] = now;
                }
        }
}

static int cmp_u32(const void *a, const void *b);

/* The probe's p99 and max outside restart windows since the last call:
 * the latency curve beside the resource curve. */
static void probe_since_last(sample *s) {
        static uint32_t seen[2], buf[1u << 16], echo_seen;
        uint32_t echo_upto = atomic_load(&S->nlat[L_ECHO]);
        unsigned n = 0;

        if (echo_upto > SOAK_LAT_CAP)
                echo_upto = SOAK_LAT_CAP;
        for (uint32_t i = echo_seen; i < echo_upto; i++)
                if (S->lat[L_ECHO][i] / 1e6 > s->echo_max_ms)
                        s->echo_max_ms = S->lat[L_ECHO][i] / 1e6;
        echo_seen = echo_upto;

        for (unsigned k = L_QUIET; k <= L_HOSTILE; k++) {
                uint32_t upto = atomic_load(&S->nlat[k]);
                if (upto > SOAK_LAT_CAP)
                        upto = SOAK_LAT_CAP;
                for (uint32_t i = seen[k]; i < upto && n < sizeof(buf) / sizeof(buf[0]); i++)
                        buf[n++] = S->lat[k][i];
                seen[k] = upto;
        }
        if (!n)
                return;
        qsort(buf, n, sizeof(buf[0]), cmp_u32);
        s->p99_ms = buf[(uint64_t)n * 99 / 100] / 1e6;
        s->max_ms = buf[n - 1] / 1e6;
}

/* Time the host's hypervisor kept the CPUs from this machine ("steal",
 * /proc/stat) and all time, in ticks since boot. */
static void cpu_ticks(uint64_t *ret_steal, uint64_t *ret_all) {
        unsigned long long v[8] = { 0 };
        FILE *f = fopen("/proc/stat", "re");

        *ret_steal = *ret_all = 0;
        if (!f)
                return;
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                   &v[6], &v[7]) == 8) {
                for (unsigned i = 0; i < 8; i++)
                        *ret_all += v[i];
                *ret_steal = v[7];
        }
        fclose(f);
}

static uint64_t steal0, all0; /* at the start */

/* The steal since the previous call (from the start, the first time). */
static double steal_since_last(void) {
        static uint64_t ls, la;
        uint64_t s, a;
        double r;

        cpu_ticks(&s, &a);
        if (!la) {
                ls = steal0;
                la = all0;
        }
        r = a > la ? (double)(s - ls) / (double)(a - la) : 0;
        ls = s;
        la = a;
        return r;
}

/* Each second's steal, for the latencies of that second (called every
 * turn of the main loop: a second it missed gets the steal of the span). */
static void steal_per_second(uint64_t now) {
        static uint64_t last_steal;
        static int64_t last_sec = -1;
        int64_t sec = (int64_t)((now - t_start) / 1000000000u);
        uint64_t s, a;

        if (sec == last_sec)
                return;
        cpu_ticks(&s, &a);
        for (int64_t x = last_sec < 0 ? sec : last_sec; x < sec && x < SOAK_SECS; x++)
                S->sec_steal[x] = (int32_t)(s - last_steal);
        last_sec = sec;
        last_steal = s;
}

static sample take_sample(void) {
        sample s = { .t = (double)(soak_now_ns() - t_start) / 1e9 };
        names n = { 0 };

        uid_usage u[2] = { { 0 } };

        s.pid = show("MainPID");
        s.fds = s.pid > 0 ? count_fds(s.pid) : -1;
        s.rss_kib = s.pid > 0 ? rss_kib(s.pid) : -1;
        s.fdstore = show("NFileDescriptorStore");
        s.valid = s.pid > 0 && s.fds > 0 && s.rss_kib > 0 && s.fdstore >= 0;
        if (ipcb_list(oc, 0, list_cb, &n) == 0)
                s.objects = n.objects;
        else
                s.valid = false;
        memcpy(s.names, n.all, sizeof(s.names));
        if (ipcb_quota_list(oc, quota_cb, u) < 0)
                s.valid = false;
        s.uids = u[0];
        s.root = u[1];
        s.ops = S->writes + S->reads + S->undo_ops + S->plain_ops + S->probe_ops;
        s.kills = kills;
        s.restarts = restarts;
        for (unsigned i = 0; i < hostile_nattacks; i++)
                s.attacks += S->attacks[i];
        s.violations = S->violations;
        probe_since_last(&s);
        s.steal = steal_since_last();
        return s;
}

static void print_header(FILE *f) {
        fprintf(f, "| t (s) | broker pid | fds | fd store | RSS KiB | objects | soak uids: objects/handles/conns "
                   "| operations | kills | restarts | attacks | violations | probe p99 / max (ms) | echo max (ms) "
                   "| steal |\n"
                   "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---:|\n");
}

static void print_row(FILE *f, const sample *s) {
        fprintf(f, "| %.0f | %ld | %ld | %ld | %ld | %u | %u/%u/%u | %llu | %llu | %llu | %llu | %llu | %.1f / %.1f | %.1f | %.1f%% |\n", s->t,
                s->pid, s->fds, s->fdstore, s->rss_kib, s->objects, s->uids.objects, s->uids.handles,
                s->uids.connections, (unsigned long long)s->ops, (unsigned long long)s->kills,
                (unsigned long long)s->restarts, (unsigned long long)s->attacks,
                (unsigned long long)s->violations, s->p99_ms, s->max_ms, s->echo_max_ms, s->steal * 100);
        fflush(f);
}

static uint32_t restart_ms[4096]; /* how long each restart command took */

static void restart(void) {
        char out[512];
        int r;

        uint64_t t0 = soak_now_ns();

        atomic_fetch_add(&S->restart_seq, 1); /* odd: a window opens */
        r = manager(out, sizeof(out), "restart ipcbroker.service");
        restart_end_ns = soak_now_ns();
        if (restarts < sizeof(restart_ms) / sizeof(restart_ms[0]))
                restart_ms[restarts] = (uint32_t)((restart_end_ns - t0) / 1000000);
        restarts++;
        if (r != 0)
                soak_violation("systemctl restart failed (%d): %s", r, out);
}

/* ---- setup ---- */

static void die(const char *what, int r) {
        fprintf(stderr, "ipcb_soak: %s: %s\n", what, strerror(-r));
        exit(1);
}

static void setup_objects(void) {
        char name[64];
        int r;

        for (unsigned i = 0; i < SOAK_NDATA; i++) {
                ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
                o.mode = 0644;
                o.flags = IPCB_SHM_PERSISTENT;
                snprintf(name, sizeof(name), SOAK_DATA "%u", i);
                if ((r = ipcb_shm_create(oc, name, SOAK_DATA_SIZE, &o, &data_rw[i])) < 0)
                        die(name, r);
                soak_data_fill(ipcb_shm_data(data_rw[i]), 0);
                if ((r = ipcb_chown(oc, IPCB_KIND_SHM, name, UID_PRODUCER, (gid_t)-1)) < 0)
                        die("chown", r);
        }
        for (unsigned i = 0; i < SOAK_NKEEP; i++) {
                ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
                ipcb_shm *s;
                o.mode = 0644;
                o.flags = IPCB_SHM_PERSISTENT;
                snprintf(name, sizeof(name), SOAK_KEEP "%u", i);
                if ((r = ipcb_shm_create(oc, name, SOAK_KEEP_SIZE, &o, &s)) < 0)
                        die(name, r);
                soak_keep_fill(ipcb_shm_data(s), i);
                ipcb_shm_close(s);
        }
        struct {
                const char *name;
                unsigned init;
        } sems[] = { { SOAK_UNDO, SOAK_UNDO_INIT }, { SOAK_PLAIN, SOAK_PLAIN_INIT }, { SOAK_VICTIM, 16 } };
        for (unsigned i = 0; i < 3; i++) {
                ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
                ipcb_sem *s;
                o.mode = 0666;
                o.flags = IPCB_SEM_PERSISTENT;
                if ((r = ipcb_sem_create(oc, sems[i].name, sems[i].init, &o, &s)) < 0)
                        die(sems[i].name, r);
                ipcb_sem_close(s);
        }
        {
                ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
                ipcb_shm *s;
                o.mode = 0666;
                o.flags = IPCB_SHM_PERSISTENT;
                if ((r = ipcb_shm_create(oc, SOAK_VICTIM, 4096, &o, &s)) < 0)
                        die(SOAK_VICTIM, r);
                /* Lock pages are made on first use: now, so that the
                 * baseline has them. */
                if (ipcb_shm_lock(s) < 0 || ipcb_shm_unlock(s) < 0)
                        die("lock", -EPROTO);
                ipcb_shm_close(s);
        }
        for (unsigned i = 0; i < SOAK_NDATA; i++) {
                if ((r = ipcb_shm_lock(data_rw[i])) < 0 || (r = ipcb_shm_unlock(data_rw[i])) < 0)
                        die("lock", r);
        }
        ipcb_sync(oc);
}

/* A semaphore's or a segment lock's notify eventfd, once made, lives as
 * long as the object in that broker (daemon/sempoll.c), and a restart
 * drops it: whether one exists depends on who polled, released or
 * unlocked since (a scribbled `pollers` word on the victim's lock page
 * makes unlockers ask for it).  Every measurement of the broker's fds
 * makes all four first, so that they always count. */
static void make_notify_fds(void) {
        static const char *const sems[] = { SOAK_UNDO, SOAK_PLAIN, SOAK_VICTIM };
        ipcb_shm *v;
        int r;

        if ((r = ipcb_shm_open(oc, SOAK_VICTIM, IPCB_READ_WRITE, &v)) < 0) {
                soak_violation("%s: %s", SOAK_VICTIM, strerror(-r));
        } else {
                if ((r = ipcb_shm_lock_get_fd(v)) < 0)
                        soak_violation("ipcb_shm_lock_get_fd(%s): %s", SOAK_VICTIM, strerror(-r));
                ipcb_shm_close(v);
        }
        for (unsigned i = 0; i < 3; i++) {
                ipcb_sem *s;
                if ((r = ipcb_sem_open(oc, sems[i], 0, &s)) < 0) {
                        soak_violation("%s: %s", sems[i], strerror(-r));
                        continue;
                }
                if ((r = ipcb_sem_get_fd(s)) < 0)
                        soak_violation("ipcb_sem_get_fd(%s): %s", sems[i], strerror(-r));
                ipcb_sem_close(s);
        }
        ipcb_sync(oc);
}

/* ---- the end ---- */

static int cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
        return (x > y) - (x < y);
}

/* The worst of each class by how much the host stole in its second (in
 * /proc/stat ticks: 100 a second per CPU): what the broker and the machine
 * do, apart from what the hypervisor does. */
static void latency_by_steal(FILE *f) {
        static const enum lclass cls[] = { L_QUIET, L_HOSTILE, L_ECHO };
        static const struct { const char *label; double upto; } band[] = {
                { "under 1%", 0.01 }, { "1-5%", 0.05 }, { "5-20%", 0.20 }, { "over 20%", 2 },
        };
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        double per_sec = 100.0 * (double)(ncpu > 0 ? ncpu : 1);

        fprintf(f, "\n| steal in the second | seconds | quiet: requests, max (µs) | attacking: requests, max (µs) "
                   "| echo: max (µs) |\n|---|---:|---:|---:|---:|\n");
        for (unsigned b = 0; b < sizeof(band) / sizeof(band[0]); b++) {
                uint64_t n[3] = { 0 };
                uint32_t max[3] = { 0 };
                unsigned secs = 0;
                for (unsigned x = 0; x < SOAK_SECS; x++) {
                        double st = S->sec_steal[x] / per_sec;
                        if (S->sec_steal[x] < 0 || st >= band[b].upto || (b && st < band[b - 1].upto))
                                continue;
                        secs++;
                        for (unsigned c = 0; c < 3; c++) {
                                n[c] += S->sec_n[cls[c]][x];
                                if (S->sec_max_us[cls[c]][x] > max[c])
                                        max[c] = S->sec_max_us[cls[c]][x];
                        }
                }
                fprintf(f, "| %s | %u | %llu, %u | %llu, %u | %u |\n", band[b].label, secs, (unsigned long long)n[0],
                        max[0], (unsigned long long)n[1], max[1], max[2]);
        }
}

static void latency(FILE *f) {
        static const char *cls[] = { "hostile uid quiet", "hostile uid attacking", "around a restart",
                                     "an echo process instead (the machine's floor)" };

        fprintf(f, "| probe requests | count | p50 (µs) | p99 (µs) | p99.9 (µs) | max (µs) | max at (s) |\n"
                   "|---|---:|---:|---:|---:|---:|---:|\n");
        for (unsigned k = 0; k < L_NCLASSES; k++) {
                uint32_t n = atomic_load(&S->nlat[k]);
                if (n > SOAK_LAT_CAP)
                        n = SOAK_LAT_CAP;
                if (!n) {
                        fprintf(f, "| %s | 0 | | | | | |\n", cls[k]);
                        continue;
                }
                qsort(S->lat[k], n, sizeof(uint32_t), cmp_u32);
                fprintf(f, "| %s | %u | %.0f | %.0f | %.0f | %.0f | %.1f |\n", cls[k], n, S->lat[k][n / 2] / 1e3,
                        S->lat[k][(uint64_t)n * 99 / 100] / 1e3, S->lat[k][(uint64_t)n * 999 / 1000] / 1e3,
                        S->lat[k][n - 1] / 1e3, (double)(S->max_at[k] - t_start) / 1e9);
        }
}

static void summary(FILE *f, const sample *base, const sample *end, long own_base, long own_end) {
        static const char *ph[] = { "idle", "in a request", "holding a lock", "holding tokens" };
        uint64_t attacks = 0;

        fprintf(f, "\n## Soak: %.1f minutes\n\n", (double)(end->t) / 60);
        fprintf(f, "- operations: %llu data writes, %llu checked reads (%llu retried), %llu undo and %llu plain "
                   "token rounds, %llu probe requests (%llu refused around restarts)\n",
                (unsigned long long)S->writes, (unsigned long long)S->reads, (unsigned long long)S->read_retries,
                (unsigned long long)S->undo_ops, (unsigned long long)S->plain_ops,
                (unsigned long long)S->probe_ops, (unsigned long long)S->probe_errors);
        fprintf(f, "- kills: %llu (", (unsigned long long)kills);
        for (unsigned i = 0; i < P_NPHASES; i++)
                fprintf(f, "%s%llu %s", i ? ", " : "", (unsigned long long)kills_by_phase[i], ph[i]);
        fprintf(f, "); locks found owner-died %llu times, data repaired %llu times, %llu lock checks after a "
                   "holder's death\n",
                (unsigned long long)S->owner_died, (unsigned long long)S->repairs,
                (unsigned long long)lock_checks);
        {
                unsigned n = restarts < 4096 ? (unsigned)restarts : 4096;
                uint32_t sorted[4096];
                memcpy(sorted, restart_ms, n * sizeof(uint32_t));
                qsort(sorted, n, sizeof(uint32_t), cmp_u32);
                fprintf(f, "- restarts through the manager: %llu (the command took %u ms median, %u ms max)\n",
                        (unsigned long long)restarts, n ? sorted[n / 2] : 0, n ? sorted[n - 1] : 0);
        }
        fprintf(f, "- quota: filled %llu times, refused with EDQUOT %llu times, recovered %llu times\n",
                (unsigned long long)S->quota_fills, (unsigned long long)S->quota_refusals,
                (unsigned long long)S->quota_recoveries);
        fprintf(f, "- hostile attacks:");
        for (unsigned i = 0; i < hostile_nattacks; i++) {
                fprintf(f, "%s %llu %s", i ? "," : "", (unsigned long long)S->attacks[i], hostile_attack_names[i]);
                attacks += S->attacks[i];
        }
        fprintf(f, " (%llu in all)\n", (unsigned long long)attacks);
        fprintf(f, "- probe requests of 5 ms or more while it attacks, by the attack begun last:");
        for (unsigned i = 0; i < hostile_nattacks; i++)
                fprintf(f, "%s %u after %s (max %.1f ms)", i ? "," : "", S->slow_by_attack[i],
                        hostile_attack_names[i], S->max_by_attack_us[i] / 1e3);
        fprintf(f, "\n");
        fprintf(f, "- invariant checks: %llu\n", (unsigned long long)checks);
        fprintf(f, "- broker at the baseline / at the end: fds %ld / %ld, fd store %ld / %ld, RSS %ld / %ld KiB, "
                   "objects %u / %u; this process's fds %ld / %ld\n",
                base->fds, end->fds, base->fdstore, end->fdstore, base->rss_kib, end->rss_kib, base->objects,
                end->objects, own_base, own_end);
        fprintf(f, "- violations: %llu\n", (unsigned long long)S->violations);
        {
                uint64_t s, a;
                cpu_ticks(&s, &a);
                fprintf(f, "- the host's steal of this machine's CPUs: %.1f%% of their time\n\n",
                        a > all0 ? 100.0 * (double)(s - steal0) / (double)(a - all0) : 0);
        }
        latency(f);
        latency_by_steal(f);
}

/* Every object of the baseline is there at the end (any order). */
static void check_same_objects(const sample *base, const sample *end, const char *when) {
        char copy[sizeof(base->names)], have[sizeof(end->names) + 2], *save = NULL;

        memcpy(copy, base->names, sizeof(copy));
        snprintf(have, sizeof(have), " %s", end->names); /* every name between spaces */
        for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
                char want[80];
                snprintf(want, sizeof(want), " %s ", t);
                if (!strstr(have, want))
                        soak_violation("%s: %s of the baseline is gone (there: %s)", when, t, end->names);
        }
}

static void on_sigint(int sig) {
        (void)sig;
        interrupted = 1;
}

/* With the load gone: wait for what the broker settles, then everything
 * must be back at the baseline. */
static void settle_and_check(const sample *base, sample *end) {
        uint64_t until = soak_now_ns() + 20000000000ull;
        names n;
        ipcb_object_info u = IPCB_OBJECT_INFO_INIT, p = IPCB_OBJECT_INFO_INIT;
        bool ok = false;

        while (grace_until() > soak_now_ns())
                soak_sleep_us(100000);
        while (!ok && soak_now_ns() < until) {
                soak_sleep_us(200000);
                make_notify_fds();
                *end = take_sample();
                memset(&n, 0, sizeof(n));
                ipcb_list(oc, 0, list_cb, &n);
                ok = end->valid && end->uids.objects == 0 && end->uids.handles == 0 && end->uids.connections == 0 &&
                     end->root.objects == base->root.objects && end->root.handles == base->root.handles &&
                     n.stray == 0 && end->fds == base->fds && end->fdstore == base->fdstore &&
                     ipcb_stat(oc, IPCB_KIND_SEM, SOAK_UNDO, &u) == 0 && u.sem_value == SOAK_UNDO_INIT &&
                     u.sem_undo_held == 0 && ipcb_stat(oc, IPCB_KIND_SEM, SOAK_PLAIN, &p) == 0 &&
                     p.sem_value == SOAK_PLAIN_INIT;
        }
        if (ok)
                return;
        if (!end->valid)
                soak_violation("at the end the broker or its manager does not answer every query");
        if (end->root.objects != base->root.objects || end->root.handles != base->root.handles)
                soak_violation("uid 0: %u objects, %u handles at the baseline; %u, %u at the end",
                               base->root.objects, base->root.handles, end->root.objects, end->root.handles);
        if (end->uids.objects || end->uids.handles || end->uids.connections)
                soak_violation("at the end the soak uids still have %u objects, %u handles, %u connections",
                               end->uids.objects, end->uids.handles, end->uids.connections);
        if (n.stray)
                soak_violation("at the end %u transient(s) of workers remain (%s)", n.stray, n.first);
        if (end->fds != base->fds) {
                char now[512];
                fd_kinds(end->pid, now, sizeof(now));
                soak_violation("the broker's fds: %ld at the baseline (%s), %ld at the end (%s)", base->fds,
                               base_fd_kinds, end->fds, now);
        }
        if (end->fdstore != base->fdstore)
                soak_violation("fd store entries: %ld at the baseline, %ld at the end", base->fdstore,
                               end->fdstore);
        if (ipcb_stat(oc, IPCB_KIND_SEM, SOAK_UNDO, &u) == 0 &&
            (u.sem_value != SOAK_UNDO_INIT || u.sem_undo_held))
                soak_violation("%s at the end: count %u, undo-held %u (want %u, 0)", SOAK_UNDO, u.sem_value,
                               u.sem_undo_held, SOAK_UNDO_INIT);
        if (ipcb_stat(oc, IPCB_KIND_SEM, SOAK_PLAIN, &p) == 0 && p.sem_value != SOAK_PLAIN_INIT)
                soak_violation("%s at the end: count %u (want %u)", SOAK_PLAIN, p.sem_value, SOAK_PLAIN_INIT);
}

int main(int argc, char **argv) {
        uint64_t rng = soak_now_ns(), next_kill, next_restart, next_check, next_row, next_toggle, end_ns;
        sample base, end, s;
        long own_base, own_end;
        FILE *report = NULL;
        int r;

        if (argc == 4 && !strcmp(argv[1], "--worker"))
                return worker_main(argv);
        parse_args(argc, argv);
        if (geteuid() != 0) {
                fprintf(stderr, "ipcb_soak: needs root (clients of several uids)\n");
                return 2;
        }
        soak_socket = getenv("IPCBROKER_SOCKET");
        if (!soak_socket || !*soak_socket) {
                fprintf(stderr, "ipcb_soak: $IPCBROKER_SOCKET is not set (run bench/soak/run.sh)\n");
                return 2;
        }
        shared_fd = memfd_create("ipcb-soak", MFD_CLOEXEC);
        if (shared_fd < 0 || ftruncate(shared_fd, sizeof(*S)) < 0 || map_shared(shared_fd) < 0) {
                perror("ipcb_soak: the shared region");
                return 1;
        }
        signal(SIGINT, on_sigint);
        signal(SIGTERM, on_sigint);
        t_start = soak_now_ns();
        S->t_start = t_start;
        for (unsigned i = 0; i < SOAK_SECS; i++)
                S->sec_steal[i] = -1;
        cpu_ticks(&steal0, &all0);
        if ((r = ipcb_connect(soak_socket, &oc)) < 0)
                die(soak_socket, r);
        ipcb_set_timeout(oc, 10000);
        setup_objects();
        /* The baseline is a restored broker's, as at the end. */
        restart();
        atomic_fetch_add(&S->restart_seq, 1);
        while (grace_until() > soak_now_ns())
                soak_sleep_us(100000);
        check_keep("after the first restart");
        make_notify_fds();
        base = take_sample();
        if (!base.valid || base.fdstore <= 0) {
                fprintf(stderr, "ipcb_soak: no baseline (broker pid %ld, fds %ld, fd store %ld)\n", base.pid,
                        base.fds, base.fdstore);
                return 1;
        }
        fd_kinds(base.pid, base_fd_kinds, sizeof(base_fd_kinds));
        own_base = count_fds(getpid());
        printf("ipcb_soak: %.1f minutes against %s (grace %u s, a restart every %u s, a kill every ~%u ms)\n",
               opt_minutes, soak_socket, opt_grace, opt_restart_every, opt_kill_ms);
        if (opt_without)
                printf("left out:%s%s%s%s\n", opt_without & W_KILLS ? " kills" : "",
                       opt_without & W_RESTARTS ? " restarts" : "", opt_without & W_HOSTILE ? " hostile" : "",
                       opt_without & W_QUOTA ? " quota" : "");
        printf("baseline: broker pid %ld, %ld fds, %ld fd store entries, %ld KiB RSS, %u objects\n\n", base.pid,
               base.fds, base.fdstore, base.rss_kib, base.objects);
        print_header(stdout);
        print_row(stdout, &base);

        for (unsigned i = 0; i < SOAK_NDATA; i++)
                add_worker(R_PRODUCER, i, UID_PRODUCER);
        add_worker(R_CONSUMER, 0, UID_CONSUMER);
        add_worker(R_CONSUMER, 1, UID_CONSUMER);
        add_worker(R_UNDO, 0, UID_UNDO);
        add_worker(R_UNDO, 1, UID_UNDO);
        add_worker(R_UNDO, 2, UID_CONSUMER);
        if (!(opt_without & W_QUOTA))
                add_worker(R_QUOTA, 0, UID_QUOTA);
        add_worker(R_PLAIN, 0, UID_PRODUCER);
        add_worker(R_PLAIN, 1, UID_CONSUMER);
        add_worker(R_PROBE, 0, UID_PRODUCER);
        if (!(opt_without & W_HOSTILE))
                add_worker(R_HOSTILE, 0, UID_HOSTILE);

        uint64_t now = soak_now_ns();
        end_ns = now + (uint64_t)(opt_minutes * 60e9);
        next_kill = now + opt_kill_ms * 1000000ull;
        next_restart = now + opt_restart_every * 1000000000ull;
        next_check = now + 5000000000ull;
        next_row = now + opt_row_every * 1000000000ull;
        next_toggle = now + 10000000000ull;
        for (unsigned i = 0; i < SOAK_NDATA; i++)
                last_progress[i] = now;
        while (!interrupted && (now = soak_now_ns()) < end_ns) {
                if (now >= next_kill && !(opt_without & W_KILLS)) {
                        kill_one(&rng);
                        next_kill = now + (soak_rand(&rng) % (2 * opt_kill_ms) + 1) * 1000000ull;
                }
                if (now >= next_restart && !(opt_without & W_RESTARTS)) {
                        restart();
                        next_restart = soak_now_ns() + opt_restart_every * 1000000000ull;
                }
                if ((atomic_load(&S->restart_seq) & 1) && now > restart_end_ns + 2000000000ull)
                        atomic_fetch_add(&S->restart_seq, 1); /* even: the window closes */
                if (now >= next_toggle) {
                        atomic_store(&S->hostile_on, !atomic_load(&S->hostile_on));
                        next_toggle = now + 10000000000ull;
                }
                steal_per_second(now);
                check_workers();
                check_tokens();
                check_gone();
                if (now >= next_check) {
                        long nr = show("NRestarts");
                        checks++;
                        check_keep("during the load");
                        check_progress();
                        if (nr != 0)
                                soak_violation("the manager restarted the broker by itself %ld times (it died?)", nr);
                        next_check = now + 5000000000ull;
                }
                if (now >= next_row) {
                        s = take_sample();
                        print_row(stdout, &s);
                        next_row = now + opt_row_every * 1000000000ull;
                }
                checks++;
                soak_sleep_us(100000);
        }

        /* The load stops: well-behaved clients finish, the rest is killed. */
        atomic_store(&S->stop, true);
        atomic_store(&S->hostile_on, false);
        for (unsigned i = 0; i < nworkers; i++) {
                wslot *w = &S->w[i];
                pid_t pid = atomic_load(&w->pid);
                siginfo_t si = { 0 };
                for (int k = 0; k < 100; k++) {
                        if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid)
                                break;
                        soak_sleep_us(50000);
                }
                bool late = si.si_pid != pid;
                if (late) /* still running after 5 s: not reaped yet, so still ours */
                        kill(pid, SIGKILL);
                reap(w, pid, late);
        }
        while (ngone) {
                check_gone();
                soak_sleep_us(100000);
        }
        settle_and_check(&base, &end);
        check_same_objects(&base, &end, "at the end");
        own_end = count_fds(getpid());
        if (own_end != own_base)
                soak_violation("this process's fds: %ld at the baseline, %ld at the end", own_base, own_end);
        print_row(stdout, &end);

        /* One more restart with nothing going on: contents survive, and the
         * broker comes back to the same fds. */
        restart();
        while (grace_until() > soak_now_ns())
                soak_sleep_us(100000);
        check_keep("after the last restart");
        make_notify_fds();
        for (unsigned i = 0; i < SOAK_NDATA; i++) {
                char name[64];
                uint64_t seq = 0;
                ipcb_shm *d;
                snprintf(name, sizeof(name), SOAK_DATA "%u", i);
                if ((r = ipcb_shm_open(oc, name, IPCB_READ_ONLY, &d)) < 0) {
                        soak_violation("%s after the last restart: %s", name, strerror(-r));
                        continue;
                }
                if (!soak_data_valid(ipcb_shm_data(d), &seq) || seq < atomic_load(&S->max_seen[i]))
                        soak_violation("%s after the last restart: sequence %llu (highest read %llu), sum %s", name,
                                       (unsigned long long)seq, (unsigned long long)S->max_seen[i],
                                       soak_data_valid(ipcb_shm_data(d), &seq) ? "right" : "wrong");
                ipcb_shm_close(d);
        }
        if ((r = (int)show("NRestarts")) != 0)
                soak_violation("the manager restarted the broker by itself %d times (it died?)", r);
        s = take_sample();
        if (!s.valid)
                soak_violation("after the last restart the broker or its manager does not answer every query");
        /* A fresh broker holding what the baseline's held: about its size. */
        if (s.rss_kib > base.rss_kib + base.rss_kib / 2)
                soak_violation("after the last restart the broker's RSS is %ld KiB, %ld at the baseline", s.rss_kib,
                               base.rss_kib);
        check_same_objects(&base, &s, "after the last restart");
        if (s.fds != base.fds || s.fdstore != base.fdstore)
                soak_violation("after the last restart: %ld fds, %ld fd store entries (baseline %ld, %ld)", s.fds,
                               s.fdstore, base.fds, base.fdstore);
        print_row(stdout, &s);

        /* The load ran: every kind of work happened. */
        struct {
                const char *what;
                uint64_t n;
        } ran[] = { { "data writes", S->writes }, { "checked reads", S->reads }, { "undo rounds", S->undo_ops },
                    { "plain rounds", S->plain_ops }, { "probe requests", S->probe_ops },
                    { "quota fills", S->quota_fills }, { "kills", kills }, { "restarts", restarts } };
        uint64_t attacks = 0;
        for (unsigned i = 0; i < hostile_nattacks; i++)
                attacks += S->attacks[i];
        for (unsigned i = 0; i < sizeof(ran) / sizeof(ran[0]); i++)
                if (!ran[i].n && !((opt_without & W_QUOTA) && !strcmp(ran[i].what, "quota fills")) &&
                    !((opt_without & W_KILLS) && !strcmp(ran[i].what, "kills")))
                        soak_violation("no %s happened: the load did not run", ran[i].what);
        if (!attacks && !(opt_without & W_HOSTILE))
                soak_violation("no hostile attack happened");
        if (gone_skipped)
                fprintf(stderr, "ipcb_soak: %u killed producers' transients were not followed (list full)\n",
                        gone_skipped);
        summary(stdout, &base, &end, own_base, own_end);
        if (opt_report && (report = fopen(opt_report, "w"))) {
                summary(report, &base, &end, own_base, own_end);
                fclose(report);
        }
        for (unsigned i = 0; i < SOAK_NDATA; i++)
                ipcb_shm_close(data_rw[i]);
        ipcb_disconnect(oc);
        printf("\nipcb_soak: %s\n", S->violations ? "FAILED: invariants broken (VIOLATION lines above)"
                                                  : "every invariant held");
        return S->violations ? 1 : 0;
}
