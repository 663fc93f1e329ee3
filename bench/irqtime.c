/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* irqtime.c: the interrupts and the vCPU's stops inside a thread's CPU
 * time, from tracefs and perf (bench only).
 *
 * A kernel built without CONFIG_IRQ_TIME_ACCOUNTING (this VM's) charges
 * the hard and soft interrupts that land while a thread runs to that
 * thread: a loop turn timed by CLOCK_THREAD_CPUTIME_ID then includes, say,
 * an RCU softirq freeing inodes that some other close left behind.  The
 * kernel still says when each interrupt began and ended, and on top of
 * which task: a tracefs instance of our own records the entry and exit
 * events of the irq and irq_vectors subsystems, filtered on the thread's
 * tid, with the monotonic clock.  A span's own time is its CPU time less
 * the union of those intervals inside its wall window; that is what a
 * kernel with IRQ time accounting would have charged it.
 *
 * What is left is the host's: a guest told no steal time (this VM's) also
 * charges a thread the time its vCPU was descheduled.  That leaves a trace
 * too.  A sampling event of the thread's own (perf, cpu-clock, a sample
 * every PERIOD_NS while it runs) takes each sample in the timer interrupt;
 * while the vCPU is stopped no timer fires, so the next sample comes late.
 * A gap between two samples over GAP_MIN, across which the thread was on
 * its CPU (the event's count, its running time, grew by the whole gap) and
 * which ended in user mode, is a stop of the vCPU: a stretch the kernel
 * ran with interrupts off would end in the kernel, where it turns them
 * back on.  [previous sample + PERIOD_NS, sample] is taken off too.  A gap
 * that ends in the kernel is left in, counted as the thread's: every
 * figure stays an upper bound of the thread's own time.
 *
 * check_kernel() and irqtime_drain() check what this rests on.  Only
 * spans over SLOW are kept (a shorter one cannot be the longest over
 * 1 ms); the rest count at their raw CPU time. */
#include "irqtime.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define SLOW 0.5e6
#define SPANS_MAX 4096
#define CPUS_MAX 1024
#define TARGETS_MAX 4
#define PERIOD_NS 100000.0
#define GAP_MIN (3 * PERIOD_NS)
#define RING_PAGES 512 /* 2 MiB: 8 s of samples; read when half full */

typedef struct span {
        double t0, t1, cpu;
} span;

typedef struct ival {
        double t0, t1;
} ival;

typedef struct ivals {
        ival *v;
        size_t n, cap;
} ivals;

/* A thread traced: its interrupts read so far (in time order), and its
 * sampling event and the stops its samples showed. */
typedef struct target {
        pid_t tid;
        ivals irq, stops;
        int perf_fd;
        struct perf_event_mmap_page *ring;
        size_t ring_len;
        bool have_prev; /* the last sample, if nothing was lost since */
        double prev_time, prev_count;
} target;

static char inst[128];
static pid_t owner;
static int pipe_fd = -1;
/* targets[0]: the thread that opened; its spans only are kept */
static target targets[TARGETS_MAX];
static unsigned ntargets;
static span spans[SPANS_MAX];
static unsigned nspans;
static double fast_max, own_max;
static unsigned long own_over;
static bool lost;
/* per CPU, the outermost entry not yet matched by its exit (interrupts
 * nest: depth counts the open ones) */
static double open_at[CPUS_MAX];
static pid_t open_tid[CPUS_MAX];
static unsigned depth[CPUS_MAX];
static char line[512];
static size_t line_len;
static double last_drain;
static bool stops_allowed;             /* check_kernel() */
static unsigned long long hangs_seen; /* hrtimer hangs (/proc/timer_list) */

static double clock_mono_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void ivals_add(ivals *l, double t0, double t1) {
        if (l->n == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 4096;
                ival *v = realloc(l->v, cap * sizeof(*v));
                if (!v) {
                        lost = true;
                        return;
                }
                l->v = v;
                l->cap = cap;
        }
        l->v[l->n++] = (ival){ t0, t1 };
}

static void open_samples(target *g);
static void close_samples(target *g);
static void read_samples(target *g);

static int write_file(const char *dir, const char *name, const char *text) {
        char path[512];
        int fd, k = 0;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        if ((fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)) < 0)
                return -errno;
        if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
                k = -errno;
        close(fd);
        return k;
}

/* A forked child keeps no trace_pipe open (rmdir would fail with EBUSY)
 * and reads no samples. */
static void forget_in_child(void) {
        if (pipe_fd >= 0)
                close(pipe_fd);
        pipe_fd = -1;
        for (unsigned i = 0; i < ntargets; i++)
                close_samples(&targets[i]);
        ntargets = 0;
}

static void remove_instance(void) {
        if (getpid() != owner || !inst[0])
                return;
        if (pipe_fd >= 0)
                close(pipe_fd);
        pipe_fd = -1;
        (void)rmdir(inst); /* disables its events and frees its buffers */
        inst[0] = '\0';
}

/* Filters subsystem sub's events on the targets' tids. */
static int set_filter(const char *sub) {
        char dir[256], filter[256];
        size_t l = 0;

        snprintf(dir, sizeof(dir), "%s/events/%s", inst, sub);
        for (unsigned i = 0; i < ntargets; i++)
                l += (size_t)snprintf(filter + l, sizeof(filter) - l, "%scommon_pid == %d",
                                      i ? " || " : "", (int)targets[i].tid);
        return write_file(dir, "filter", filter);
}

/* Enables every *_entry and *_exit event of subsystem sub, filtered. */
static int enable_events(const char *sub) {
        char dir[256], path[512];
        struct dirent *e;
        DIR *d;
        int k, n = 0;

        snprintf(dir, sizeof(dir), "%s/events/%s", inst, sub);
        if ((k = set_filter(sub)) < 0)
                return k;
        if (!(d = opendir(dir)))
                return -errno;
        while ((e = readdir(d))) {
                size_t l = strlen(e->d_name);
                bool entry = l > 6 && !strcmp(e->d_name + l - 6, "_entry");
                bool exit_ = l > 5 && !strcmp(e->d_name + l - 5, "_exit");
                if (!entry && !exit_)
                        continue;
                snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
                if ((k = write_file(path, "enable", "1")) < 0)
                        break;
                n++;
        }
        closedir(d);
        return k < 0 ? k : n ? 0 : -ENOENT;
}

/* Whether line `key` of file path (a "key value" or "key: value" text)
 * is found, and *ret the sum of its numbers over all such lines. */
static bool sum_of(const char *path, const char *key, unsigned long long *ret) {
        char l[512];
        bool found = false;
        FILE *f = fopen(path, "re");

        *ret = 0;
        while (f && fgets(l, sizeof(l), f)) {
                const char *p = strstr(l, key);
                if (!p)
                        continue;
                p += strlen(key);
                while (*p == ' ' || *p == ':' || *p == '\t')
                        p++;
                *ret += strtoull(p, NULL, 10);
                found = true;
        }
        if (f)
                fclose(f);
        return found;
}

/* The host's steal time so far (/proc/stat, all CPUs), in ticks. */
static unsigned long long steal_ticks(void) {
        unsigned long long v[8] = { 0 };
        FILE *f = fopen("/proc/stat", "re");

        if (f) {
                if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                           &v[4], &v[5], &v[6], &v[7]) != 8)
                        v[7] = ~0ULL; /* unknown: as if the host reported steal */
                fclose(f);
        }
        return f ? v[7] : ~0ULL;
}

/* What taking interrupts and stops off rests on, checked: a kernel that
 * charges interrupts to the thread (no IRQ time accounting in its config,
 * if the config can be read), high-resolution timers (else samples come a
 * tick apart), no steal time reported (else stops are not the thread's),
 * and tids as tracefs sees them (no pid namespace). */
static int check_kernel(bool *ret_stops) {
        char l[256], cfg[128];
        struct timespec res;
        struct utsname u;
        FILE *f;

        if (uname(&u) == 0) {
                snprintf(cfg, sizeof(cfg), "/boot/config-%s", u.release);
                if ((f = fopen(cfg, "re"))) {
                        bool irq_acct = false;
                        while (fgets(l, sizeof(l), f))
                                irq_acct |= strncmp(l, "CONFIG_IRQ_TIME_ACCOUNTING=y", 28) == 0;
                        fclose(f);
                        if (irq_acct)
                                return -EOPNOTSUPP; /* nothing to take off */
                }
        }
        if ((f = fopen("/proc/self/status", "re"))) {
                unsigned levels = 0;
                while (fgets(l, sizeof(l), f))
                        if (strncmp(l, "NSpid:", 6) == 0)
                                for (char *p = l + 6; (p = strpbrk(p, "0123456789")); p += strspn(p, "0123456789"))
                                        levels++;
                fclose(f);
                if (levels > 1)
                        return -EOPNOTSUPP; /* a pid namespace: tracefs's tids are not ours */
        }
        *ret_stops = clock_getres(CLOCK_MONOTONIC, &res) == 0 && res.tv_sec == 0 && res.tv_nsec <= 1000 &&
                     steal_ticks() == 0;
        return 0;
}

int irqtime_open(void) {
        static const char *const bases[] = { "/sys/kernel/tracing", "/sys/kernel/debug/tracing" };
        const char *base = NULL;
        struct stat st;
        int k;

        for (unsigned i = 0; i < 2 && !base; i++)
                if (stat(bases[i], &st) == 0 && access(bases[i], W_OK) == 0)
                        base = bases[i];
        if (!base)
                return -EACCES;
        if ((k = check_kernel(&stops_allowed)) < 0)
                return k;
        (void)sum_of("/proc/timer_list", ".nr_hangs", &hangs_seen);
        owner = getpid();
        snprintf(inst, sizeof(inst), "%s/instances/ipcb-bench-%d", base, (int)owner);
        if (mkdir(inst, 0700) < 0 && errno != EEXIST) {
                k = -errno;
                inst[0] = '\0';
                return k;
        }
        atexit(remove_instance);
        pthread_atfork(NULL, NULL, forget_in_child);
        targets[0] = (target){ .tid = gettid(), .perf_fd = -1 };
        ntargets = 1;
        /* tracing off while it is set up; a stale instance (a pid used
         * again) loses what it held */
        if ((k = write_file(inst, "tracing_on", "0")) < 0 || (k = write_file(inst, "trace", "")) < 0 ||
            (k = write_file(inst, "trace_clock", "mono")) < 0 ||
            (k = write_file(inst, "buffer_size_kb", "16384")) < 0 ||
            (k = enable_events("irq")) < 0 || (k = enable_events("irq_vectors")) < 0 ||
            (k = write_file(inst, "tracing_on", "1")) < 0)
                goto fail;
        char path[256];
        snprintf(path, sizeof(path), "%s/trace_pipe", inst);
        if ((pipe_fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0) {
                k = -errno;
                goto fail;
        }
        open_samples(&targets[0]);
        return 0;
fail:
        remove_instance();
        ntargets = 0;
        return k;
}

static target *target_of(pid_t tid) {
        for (unsigned i = 0; i < ntargets; i++)
                if (targets[i].tid == tid)
                        return &targets[i];
        return NULL;
}

int irqtime_watch(pid_t tid) {
        int k;

        if (pipe_fd < 0)
                return -ENOTCONN;
        if (target_of(tid))
                return 0;
        if (ntargets == TARGETS_MAX)
                return -ENOSPC;
        targets[ntargets++] = (target){ .tid = tid, .perf_fd = -1 };
        if ((k = set_filter("irq")) < 0 || (k = set_filter("irq_vectors")) < 0) {
                ntargets--;
                (void)set_filter("irq");
                (void)set_filter("irq_vectors");
                return k;
        }
        open_samples(&targets[ntargets - 1]);
        return 0;
}

void irqtime_unwatch(pid_t tid) {
        target *t = target_of(tid);

        if (!t || t == &targets[0])
                return;
        irqtime_drain();
        free(t->irq.v);
        free(t->stops.v);
        close_samples(t);
        *t = targets[--ntargets];
        (void)set_filter("irq");
        (void)set_filter("irq_vectors");
}

bool irqtime_on(void) {
        return pipe_fd >= 0;
}

/* One line of trace_pipe: "<comm>-<pid> [<cpu>] <flags> <sec.usec>: <event>: ...". */
static void take_line(const char *l) {
        const char *p = strchr(l, '[');
        char *end;

        if (strstr(l, "LOST") && strstr(l, "EVENTS")) {
                /* An entry whose exit was lost would take all that follows
                 * for interrupt time: forget the open ones (an interval
                 * lost makes a span's own time too high, never too low). */
                lost = true;
                memset(depth, 0, sizeof(depth));
                return;
        }
        if (!p)
                return;
        long cpu = strtol(p + 1, &end, 10);
        if (*end != ']' || cpu < 0 || cpu >= CPUS_MAX)
                return;
        /* the tid ends "<comm>-<tid>" before the CPU */
        const char *q = p;
        while (q > l && q[-1] == ' ')
                q--;
        while (q > l && q[-1] >= '0' && q[-1] <= '9')
                q--;
        if (q == l || q[-1] != '-')
                return;
        pid_t tid = (pid_t)atoi(q);
        /* the timestamp: the first token after the CPU that is a number ending in ':' */
        for (p = end + 1; *p;) {
                while (*p == ' ')
                        p++;
                double sec = strtod(p, &end);
                if (end != p && *end == ':') {
                        const char *ev = end + 1;
                        while (*ev == ' ')
                                ev++;
                        const char *colon = strchr(ev, ':');
                        if (!colon)
                                return;
                        size_t n = (size_t)(colon - ev);
                        double t = sec * 1e9;
                        /* Interrupts nest on one CPU over one task: an event
                         * of another task means an entry or exit went
                         * unseen, so what was open is dropped. */
                        if (depth[cpu] > 0 && tid != open_tid[cpu])
                                depth[cpu] = 0;
                        if (n > 6 && !memcmp(colon - 6, "_entry", 6)) {
                                if (depth[cpu]++ == 0) {
                                        open_tid[cpu] = tid;
                                        open_at[cpu] = t;
                                }
                        } else if (n > 5 && !memcmp(colon - 5, "_exit", 5) && depth[cpu] > 0 &&
                                   --depth[cpu] == 0) {
                                /* trace_pipe rounds to the µs: each end may be
                                 * 0.5 µs out, so the interval is shrunk by that */
                                target *g = target_of(open_tid[cpu]);
                                if (g && t - open_at[cpu] > 1000)
                                        ivals_add(&g->irq, open_at[cpu] + 500, t - 500);
                        }
                        return;
                }
                while (*p && *p != ' ')
                        p++;
        }
}

static int cmp_ival(const void *a, const void *b) {
        double x = ((const ival *)a)->t0, y = ((const ival *)b)->t0;
        return (x > y) - (x < y);
}

/* Appends to *out the intervals of l (sorted, not overlapping) that
 * meet [t0, t1]. */
static void collect(const ivals *l, double t0, double t1, ivals *out) {
        size_t lo = 0, hi = l->n;

        while (lo < hi) { /* the first interval that ends after t0 */
                size_t mid = (lo + hi) / 2;
                if (l->v[mid].t1 <= t0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        for (size_t i = lo; i < l->n && l->v[i].t0 < t1; i++)
                ivals_add(out, l->v[i].t0, l->v[i].t1);
}

/* How much of [t0, t1] the intervals of a and of b cover together: a stop
 * of the vCPU may hold an interrupt taken as it ended. */
static double covered_in(const ivals *a, const ivals *b, double t0, double t1) {
        static ivals all;
        double sum = 0, covered = t0;

        all.n = 0;
        collect(a, t0, t1, &all);
        collect(b, t0, t1, &all);
        qsort(all.v, all.n, sizeof(ival), cmp_ival);
        for (size_t i = 0; i < all.n; i++) {
                double x = all.v[i].t0 > covered ? all.v[i].t0 : covered;
                double y = all.v[i].t1 < t1 ? all.v[i].t1 : t1;
                if (y > x) {
                        sum += y - x;
                        covered = y;
                }
        }
        return sum;
}

/* Reads g's samples since the last read into g->stops. */
static void read_samples(target *g) {
        struct perf_event_mmap_page *ring = g->ring;

        if (!ring)
                return;
        uint64_t head = __atomic_load_n(&ring->data_head, __ATOMIC_ACQUIRE), tail = ring->data_tail;
        const uint8_t *data = (const uint8_t *)ring + ring->data_offset;
        uint64_t size = ring->data_size;

        while (tail < head) {
                union {
                        struct perf_event_header h;
                        uint8_t b[64];
                } r;
                size_t off = tail % size, len, first;
                memcpy(&r.h, data + off, sizeof(r.h)); /* 8-aligned: a header never wraps */
                if (r.h.size == 0)
                        break;
                len = r.h.size < sizeof(r) ? r.h.size : sizeof(r);
                first = len < size - off ? len : size - off; /* a record may wrap */
                memcpy(r.b, data + off, first);
                memcpy(r.b + first, data, len - first);
                tail += r.h.size;
                if (r.h.type != PERF_RECORD_SAMPLE) {
                        /* lost or throttled samples: no gap across them */
                        if (r.h.type == PERF_RECORD_LOST || r.h.type == PERF_RECORD_THROTTLE ||
                            r.h.type == PERF_RECORD_UNTHROTTLE)
                                g->have_prev = false;
                        continue;
                }
                uint64_t f[2]; /* PERF_SAMPLE_TIME, PERF_SAMPLE_READ */
                memcpy(f, r.b + sizeof(r.h), sizeof(f));
                double t = (double)f[0], count = (double)f[1];
                bool user = (r.h.misc & PERF_RECORD_MISC_CPUMODE_MASK) == PERF_RECORD_MISC_USER;
                double slack = (t - g->prev_time) - (count - g->prev_count); /* off its CPU */
                if (g->have_prev && t - g->prev_time > GAP_MIN && user && slack <= PERIOD_NS / 10)
                        /* the timer is set again from the end of the last
                         * sample's interrupt, a few µs after its time */
                        ivals_add(&g->stops, g->prev_time + PERIOD_NS + 10000 + (slack > 0 ? slack : 0), t);
                g->have_prev = true;
                g->prev_time = t;
                g->prev_count = count;
        }
        __atomic_store_n(&ring->data_tail, tail, __ATOMIC_RELEASE);
}

/* The sampling event on thread g (needs root for another process's);
 * without it, g's stops stay in. */
static void open_samples(target *g) {
        if (!stops_allowed)
                return;
        struct perf_event_attr a = {
                .type = PERF_TYPE_SOFTWARE,
                .size = sizeof(a),
                .config = PERF_COUNT_SW_CPU_CLOCK,
                .sample_period = (uint64_t)PERIOD_NS,
                .sample_type = PERF_SAMPLE_TIME | PERF_SAMPLE_READ,
                .use_clockid = 1,
                .clockid = CLOCK_MONOTONIC,
        };
        size_t len = (size_t)(RING_PAGES + 1) * (size_t)sysconf(_SC_PAGESIZE);
        void *p;

        g->perf_fd = (int)syscall(SYS_perf_event_open, &a, g->tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
        if (g->perf_fd < 0)
                return;
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, g->perf_fd, 0);
        if (p == MAP_FAILED) {
                close(g->perf_fd);
                g->perf_fd = -1;
                return;
        }
        g->ring = p;
        g->ring_len = len;
}

static void close_samples(target *g) {
        if (g->ring)
                munmap(g->ring, g->ring_len);
        if (g->perf_fd >= 0)
                close(g->perf_fd);
        g->ring = NULL;
        g->perf_fd = -1;
        g->have_prev = false;
}

bool irqtime_stops_on(void) {
        return ntargets > 0 && targets[0].ring;
}

void irqtime_drain(void) {
        char buf[65536];
        ssize_t n;

        if (pipe_fd < 0)
                return;
        last_drain = clock_mono_ns();
        for (;;) {
                n = read(pipe_fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                for (ssize_t i = 0; i < n; i++) {
                        if (buf[i] != '\n') {
                                if (line_len < sizeof(line) - 1)
                                        line[line_len++] = buf[i];
                                continue;
                        }
                        line[line_len] = '\0';
                        take_line(line);
                        line_len = 0;
                }
        }
        for (unsigned i = 0; i < ntargets; i++) {
                read_samples(&targets[i]);
                qsort(targets[i].irq.v, targets[i].irq.n, sizeof(ival), cmp_ival);
        }
        /* A late sample is a stop only if the kernel did not hold its
         * timers back (an hrtimer hang delays the next interrupt) and the
         * host still reports no steal (else the stop was not charged). */
        unsigned long long hangs;
        (void)sum_of("/proc/timer_list", ".nr_hangs", &hangs);
        bool steal = stops_allowed && steal_ticks() != 0;
        if (hangs != hangs_seen || steal)
                for (unsigned i = 0; i < ntargets; i++)
                        targets[i].stops.n = 0;
        hangs_seen = hangs;
        if (steal) {
                stops_allowed = false;
                for (unsigned i = 0; i < ntargets; i++)
                        close_samples(&targets[i]);
        }
        /* Every span kept so far ended before this read began, and so
         * did the interrupts in it, and the samples that end the stops in
         * it (a stop over a timer's expiry ends with a sample).  Whatever
         * was missed only leaves a span's own time too high. */
        for (unsigned i = 0; i < nspans; i++) {
                double out = covered_in(&targets[0].irq, &targets[0].stops, spans[i].t0, spans[i].t1);
                double own = spans[i].cpu - out;
                if (own > own_max)
                        own_max = own;
                own_over += own > 1e6;
        }
        nspans = 0;
        if (ntargets)
                targets[0].irq.n = targets[0].stops.n = 0;
}

double irqtime_of(pid_t tid, double t0, double t1, bool *ret_lost) {
        const target *g;

        irqtime_drain();
        *ret_lost = lost;
        return (g = target_of(tid)) ? covered_in(&g->irq, &g->stops, t0, t1) : 0;
}

void irqtime_span(double t0, double t1, double cpu) {
        if (pipe_fd >= 0 && cpu >= SLOW && nspans < SPANS_MAX) {
                spans[nspans++] = (span){ t0, t1, cpu };
                return;
        }
        /* fast, or no room left before the next poll: counted raw */
        if (cpu > fast_max)
                fast_max = cpu;
        own_over += cpu > 1e6;
}

bool irqtime_poll(void) {
        if (pipe_fd < 0)
                return false;
        if (nspans >= SPANS_MAX / 2 || clock_mono_ns() - last_drain > 1e9) {
                irqtime_drain(); /* the trace buffer never fills */
                return true;
        }
        bool read = false;
        for (unsigned i = 0; i < ntargets; i++) {
                struct perf_event_mmap_page *ring = targets[i].ring;
                if (ring && ring->data_head - ring->data_tail > ring->data_size / 2) {
                        read_samples(&targets[i]);
                        read = true;
                }
        }
        return read;
}

void irqtime_reset(void) {
        irqtime_drain();
        fast_max = own_max = 0;
        own_over = 0;
        lost = false;
}

double irqtime_own_max(unsigned long *ret_over, bool *ret_lost) {
        irqtime_drain();
        *ret_over = own_over;
        *ret_lost = lost;
        return own_max > fast_max ? own_max : fast_max;
}
