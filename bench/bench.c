/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench.c: ipcb_bench's harness.  Starts the real broker, sets up every row,
 * calibrates a batch size per row, then runs the repetitions interleaved
 * (rep 1 of every row, rep 2 of every row, ...), and prints one markdown
 * table plus the ratio lines with their verdicts.  Targets are not tests:
 * a MISS still exits 0; only a failure to run exits non-zero.  --quick
 * judges nothing ("not judged"): it only shows that every row runs. */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

/* The suites, in table order. */
static const bench_case *const suites[] = {
        ref_cases, shm_cases, sem_cases, loop_cases,
#ifdef IPCB_BENCH_QT
        qt_cases,
#endif
};
static const bench_ratio *const ratio_suites[] = {
        shm_ratios, sem_ratios, loop_ratios,
#ifdef IPCB_BENCH_QT
        qt_ratios,
#endif
};

typedef struct options {
        unsigned reps, batches;
        double batch_ns; /* aimed-for duration of one batch */
        const char *only; /* comma-separated row keys, NULL: all */
        bool quick, json, pin;
} options;

typedef struct row {
        const bench_case *bc;
        void *state;
        bool ready;
        unsigned n;        /* operations per batch */
        double *samples;   /* per-op ns, reps * batches */
        double *rep_median;
        double median, p99, rep_min, rep_max;
} row;

static volatile sig_atomic_t interrupted;

/* The first ^C stops after the current batch and still cleans up; a second
 * one (say, a broker that stopped answering) ends the process at once, and
 * PR_SET_PDEATHSIG takes the children with it. */
static void on_interrupt(int sig) {
        if (interrupted) {
                signal(sig, SIG_DFL);
                raise(sig);
        }
        interrupted = 1;
}

static double now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

/* Nearest-rank quantile of a sorted array. */
static double quantile(const double *v, size_t n, double q) {
        size_t i = (size_t)ceil(q * (double)n);
        return v[i == 0 ? 0 : i - 1];
}

static double median_of(double *v, size_t n) {
        qsort(v, n, sizeof(*v), cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Time one batch of n operations; per-op ns in *ret. */
static int batch(row *r, unsigned n, double *ret) {
        double t0 = now_ns();
        int k = r->bc->run(r->state, n);
        double t1 = now_ns();

        if (k < 0) {
                fprintf(stderr, "ipcb_bench: %s: %s\n", r->bc->name, strerror(-k));
                return k;
        }
        *ret = (t1 - t0) / n;
        return 0;
}

/* Find n so that a batch takes about batch_ns: double n until a batch takes
 * a quarter of that, then scale.  Each step keeps the fastest of three
 * batches, so that one preemption cannot make the estimate (and n) tiny. */
static int calibrate(row *r, const options *o) {
        double per_op = 0, t;
        unsigned n = 1;
        int k;

        if ((k = batch(r, 1, &t)) < 0) /* warm-up */
                return k;
        for (;;) {
                per_op = INFINITY;
                for (int i = 0; i < 3; i++) {
                        if ((k = batch(r, n, &t)) < 0)
                                return k;
                        per_op = fmin(per_op, t);
                }
                if (per_op * n >= o->batch_ns / 4 || n >= (1u << 24))
                        break;
                n *= 2;
        }
        double want = o->batch_ns / per_op;
        r->n = want < 1 ? 1 : want > (1u << 26) ? (1u << 26) : (unsigned)want;
        return 0;
}

static int run_rep(row *r, const options *o, unsigned rep) {
        double *out = r->samples + (size_t)rep * o->batches, warm;
        int k;

        if ((k = batch(r, r->n < 8 ? r->n : r->n / 8, &warm)) < 0)
                return k;
        for (unsigned b = 0; b < o->batches; b++) {
                if (interrupted)
                        return -EINTR;
                if ((k = batch(r, r->n, &out[b])) < 0)
                        return k;
        }
        r->rep_median[rep] = median_of(out, o->batches); /* sorts its slice: fine */
        return 0;
}

static void summarize(row *r, const options *o) {
        size_t total = (size_t)o->reps * o->batches;

        qsort(r->samples, total, sizeof(double), cmp_double);
        r->median = total % 2 ? r->samples[total / 2]
                              : (r->samples[total / 2 - 1] + r->samples[total / 2]) / 2;
        r->p99 = quantile(r->samples, total, 0.99);
        r->rep_min = r->rep_max = r->rep_median[0];
        for (unsigned i = 1; i < o->reps; i++) {
                r->rep_min = fmin(r->rep_min, r->rep_median[i]);
                r->rep_max = fmax(r->rep_max, r->rep_median[i]);
        }
}

static const row *find_row(const row *rows, size_t nrows, const char *key) {
        for (size_t i = 0; i < nrows; i++)
                if (strcmp(rows[i].bc->key, key) == 0)
                        return &rows[i];
        return NULL;
}

/* ---- output ---- */

static void fmt_ns(char *buf, size_t cap, double ns) {
        snprintf(buf, cap, ns < 100 ? "%.1f" : "%.0f", ns);
}

static void print_markdown(const row *rows, size_t nrows, const options *o, const bench_env *env) {
        struct utsname u;
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

        uname(&u);
        printf("# ipcb_bench: %u reps x %u batches, batch ~%.1f ms, %ld CPUs, %s %s, %s\n\n",
               o->reps, o->batches, o->batch_ns / 1e6, ncpu, u.sysname, u.release,
               env->pin ? "pinned: client CPU0, servers and broker CPU1" : "not pinned");
        printf("Per-operation times in ns (batch time / N); median and p99 over all batches.\n\n");
        printf("| section | benchmark | median ns | p99 ns | rep medians min..max ns | spread %% "
               "| reps x batches x N |\n");
        printf("|---|---|---:|---:|---:|---:|---|\n");
        for (size_t i = 0; i < nrows; i++) {
                const row *r = &rows[i];
                char med[32], p99[32], lo[32], hi[32];

                fmt_ns(med, sizeof(med), r->median);
                fmt_ns(p99, sizeof(p99), r->p99);
                fmt_ns(lo, sizeof(lo), r->rep_min);
                fmt_ns(hi, sizeof(hi), r->rep_max);
                printf("| %s | %s | %s | %s | %s..%s | %.0f | %ux%ux%u |\n", r->bc->section,
                       r->bc->name, med, p99, lo, hi,
                       100.0 * (r->rep_max - r->rep_min) / r->median, o->reps, o->batches, r->n);
        }
        printf("\n");
}

/* The ratio of medians, and the range of the per-repetition ratios (each
 * rep's median over the other row's median in the same rep). */
static void ratio_range(const row *num, const row *den, unsigned reps, double *lo, double *hi) {
        *lo = INFINITY;
        *hi = 0;
        for (unsigned i = 0; i < reps; i++) {
                double x = num->rep_median[i] / den->rep_median[i];
                *lo = fmin(*lo, x);
                *hi = fmax(*hi, x);
        }
}

static void json_str(const char *s) {
        putchar('"');
        for (; *s; s++) {
                if (*s == '"' || *s == '\\')
                        putchar('\\');
                putchar(*s);
        }
        putchar('"');
}

static void print_ratios(const row *rows, size_t nrows, const options *o) {
        bool first = true;

        if (!o->json)
                printf("Ratios (median / median; per-rep range in brackets):\n\n");
        for (size_t s = 0; s < sizeof(ratio_suites) / sizeof(ratio_suites[0]); s++) {
                for (const bench_ratio *br = ratio_suites[s]; br->label; br++) {
                        const row *num = find_row(rows, nrows, br->num);
                        const row *den = find_row(rows, nrows, br->den);
                        double lo, hi, x;
                        const char *verdict;

                        if (!num || !den)
                                continue;
                        x = num->median / den->median;
                        ratio_range(num, den, o->reps, &lo, &hi);
                        /* A quick run (a few hundred ms, 2 reps) shows that every
                         * row runs; its medians are too noisy to judge a target. */
                        verdict = br->target <= 0 ? "" : o->quick ? "not judged (--quick)"
                                  : x <= br->target ? "PASS" : "MISS";
                        if (o->json) {
                                printf("%s\n    {\"label\": ", first ? "" : ",");
                                json_str(br->label);
                                printf(", \"ratio\": %.3f, \"rep_min\": %.3f, \"rep_max\": %.3f, "
                                       "\"target\": %.2f, \"verdict\": \"%s\"}",
                                       x, lo, hi, br->target, verdict);
                        } else if (br->target > 0)
                                printf("- %s = %.2f [%.2f..%.2f], target <= %.2f: %s\n", br->label,
                                       x, lo, hi, br->target, verdict);
                        else
                                printf("- %s = %.2f [%.2f..%.2f]\n", br->label, x, lo, hi);
                        first = false;
                }
        }
}

static void print_json(const row *rows, size_t nrows, const options *o, const bench_env *env) {
        printf("{\n  \"reps\": %u, \"batches\": %u, \"pinned\": %s,\n  \"rows\": [", o->reps,
               o->batches, env->pin ? "true" : "false");
        for (size_t i = 0; i < nrows; i++) {
                const row *r = &rows[i];
                printf("%s\n    {\"key\": ", i ? "," : "");
                json_str(r->bc->key);
                printf(", \"section\": ");
                json_str(r->bc->section);
                printf(", \"name\": ");
                json_str(r->bc->name);
                printf(", \"median_ns\": %.1f, \"p99_ns\": %.1f, \"rep_min_ns\": %.1f, "
                       "\"rep_max_ns\": %.1f, \"n\": %u}",
                       r->median, r->p99, r->rep_min, r->rep_max, r->n);
        }
        printf("\n  ],\n  \"ratios\": [");
        print_ratios(rows, nrows, o);
        printf("\n  ]\n}\n");
}

/* ---- main ---- */

static void usage(FILE *f) {
        fprintf(f,
                "Usage: ipcb_bench [OPTIONS]\n"
                "Measure brokered segments, semaphores and segment locks against their floors, in one run.\n\n"
                "  --quick        a few hundred ms: shows that it runs (CI)\n"
                "  --reps N       interleaved repetitions (default 3)\n"
                "  --batches N    batches per repetition (default 200)\n"
                "  --batch-ms MS  aimed-for duration of one batch (default 2)\n"
                "  --only KEYS    run only these rows (comma-separated keys, e.g. open,floor.open)\n"
                "  --list         list the rows' keys and exit\n"
                "  --pin          client on CPU 0, broker and floor servers on CPU 1\n"
                "  --json         print JSON instead of markdown\n"
                "  -h, --help     show this help\n");
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *ret) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || end == s || *end || *s == '-' || v < lo || v > hi)
                return -EINVAL;
        *ret = (unsigned)v;
        return 0;
}

static int parse_options(int argc, char **argv, options *o) {
        static const struct option longopts[] = {
                { "quick", no_argument, NULL, 'q' },
                { "reps", required_argument, NULL, 'r' },
                { "batches", required_argument, NULL, 'b' },
                { "batch-ms", required_argument, NULL, 'm' },
                { "pin", no_argument, NULL, 'p' },
                { "only", required_argument, NULL, 'o' },
                { "list", no_argument, NULL, 'l' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        unsigned reps = 0, batches = 0, ms = 0;
        int c;

        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                switch (c) {
                case 'q': o->quick = true; break;
                case 'p': o->pin = true; break;
                case 'j': o->json = true; break;
                case 'o': o->only = optarg; break;
                case 'l':
                        for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
                                for (const bench_case *bc = suites[i]; bc->key; bc++)
                                        printf("%-18s %s | %s\n", bc->key, bc->section, bc->name);
                        exit(0);
                case 'r':
                        if (parse_uint(optarg, 1, 100, &reps) < 0)
                                goto bad;
                        break;
                case 'b':
                        if (parse_uint(optarg, 1, 100000, &batches) < 0)
                                goto bad;
                        break;
                case 'm':
                        if (parse_uint(optarg, 1, 1000, &ms) < 0)
                                goto bad;
                        break;
                case 'h': usage(stdout); exit(0);
                default: usage(stderr); return -EINVAL;
                }
        }
        if (optind != argc) {
                usage(stderr);
                return -EINVAL;
        }
        o->reps = reps ? reps : o->quick ? 2 : 3;
        o->batches = batches ? batches : o->quick ? 15 : 200;
        o->batch_ns = ms ? ms * 1e6 : o->quick ? 0.3e6 : 2e6;
        return 0;
bad:
        fprintf(stderr, "ipcb_bench: invalid value for --%s: %s\n",
                c == 'r' ? "reps" : c == 'b' ? "batches" : "batch-ms", optarg);
        return -EINVAL;
}

/* Is key in the comma-separated list (NULL: everything is)? */
static bool selected(const char *only, const char *key) {
        size_t len = strlen(key);

        if (!only)
                return true;
        for (const char *p = only; *p;) {
                size_t n = strcspn(p, ",");
                if (n == len && strncmp(p, key, n) == 0)
                        return true;
                p += n + (p[n] == ',');
        }
        return false;
}

static size_t collect_cases(const options *o, row **ret) {
        size_t n = 0, i = 0;
        row *rows;

        for (size_t s = 0; s < sizeof(suites) / sizeof(suites[0]); s++)
                for (const bench_case *bc = suites[s]; bc->key; bc++)
                        n += selected(o->only, bc->key);
        if (n == 0) {
                fprintf(stderr, "ipcb_bench: no row selected (see --list)\n");
                return 0;
        }
        rows = calloc(n, sizeof(*rows));
        if (!rows)
                return 0;
        for (size_t s = 0; s < sizeof(suites) / sizeof(suites[0]); s++)
                for (const bench_case *bc = suites[s]; bc->key; bc++)
                        if (selected(o->only, bc->key))
                                rows[i++].bc = bc;
        *ret = rows;
        return n;
}

static int run_all(row *rows, size_t nrows, const options *o, const bench_env *env) {
        int k;

        for (size_t i = 0; i < nrows; i++) {
                row *r = &rows[i];
                r->samples = calloc((size_t)o->reps * o->batches, sizeof(double));
                r->rep_median = calloc(o->reps, sizeof(double));
                if (!r->samples || !r->rep_median)
                        return -ENOMEM;
                if ((k = r->bc->setup(env, &r->state)) < 0) {
                        fprintf(stderr, "ipcb_bench: setting up '%s': %s\n", r->bc->name,
                                strerror(-k));
                        return k;
                }
                r->ready = true;
        }
        for (size_t i = 0; i < nrows; i++)
                if ((k = calibrate(&rows[i], o)) < 0)
                        return k;
        for (unsigned rep = 0; rep < o->reps; rep++)
                for (size_t i = 0; i < nrows; i++)
                        if ((k = run_rep(&rows[i], o, rep)) < 0)
                                return k;
        for (size_t i = 0; i < nrows; i++)
                summarize(&rows[i], o);
        return 0;
}

int main(int argc, char **argv) {
        options o = { 0 };
        bench_env env = { .cpu_client = -1, .cpu_server = -1 };
        struct sigaction sa = { .sa_handler = on_interrupt };
        broker b;
        row *rows = NULL;
        size_t nrows;
        int k, status = 0;

        if (parse_options(argc, argv, &o) < 0)
                return 2;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);

        env.pin = o.pin;
        if (o.pin) {
                if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
                        fprintf(stderr, "ipcb_bench: --pin needs two CPUs\n");
                        return 2;
                }
                env.cpu_client = 0;
                env.cpu_server = 1;
                if ((k = bench_pin(env.cpu_client)) < 0) {
                        fprintf(stderr, "ipcb_bench: sched_setaffinity: %s\n", strerror(-k));
                        return 1;
                }
        }
        nrows = collect_cases(&o, &rows);
        if (nrows == 0)
                return 1;
        if ((k = broker_start(&env, &b)) < 0) {
                fprintf(stderr, "ipcb_bench: cannot start %s: %s\n", IPCBROKERD_PATH,
                        strerror(-k));
                free(rows);
                return 1;
        }
        env.socket_path = b.socket_path;

        k = run_all(rows, nrows, &o, &env);
        if (k == 0) {
                if (o.json)
                        print_json(rows, nrows, &o, &env);
                else {
                        print_markdown(rows, nrows, &o, &env);
                        print_ratios(rows, nrows, &o);
                }
                fflush(stdout);
        } else {
                if (k == -EINTR)
                        fprintf(stderr, "ipcb_bench: interrupted\n");
                status = 1;
        }

        for (size_t i = nrows; i-- > 0;) {
                if (rows[i].ready)
                        rows[i].bc->teardown(rows[i].state);
                free(rows[i].samples);
                free(rows[i].rep_median);
        }
        free(rows);
        if (broker_stop(&b) < 0)
                status = 1;
        return status;
}
