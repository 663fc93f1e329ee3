/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench.h: the benchmark harness's contract.  A benchmark is one row of a
 * table of {section, name, setup, run-one-batch, teardown}; the harness
 * (bench.c) calibrates a batch size per row, runs every row in turn for each
 * repetition (interleaved, so that drift on a noisy machine hits all rows
 * alike), and reports the per-operation median and p99 over batches.  Floors
 * are rows too; a ratio line divides one row's median by another's.
 *
 * To add rows, write a cases_*.c file exporting a bench_case table (and a
 * bench_ratio table) and list them in bench.c's `suites` and `ratio_suites`. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* What every setup may use: the running broker and the CPU placement. */
typedef struct bench_env {
        const char *socket_path; /* the broker this run started */
        bool pin;                /* --pin: client on cpu_client, servers on cpu_server */
        int cpu_client, cpu_server;
} bench_env;

typedef struct bench_case {
        const char *key;     /* short id: ratio lines and --json refer to it */
        const char *section; /* table section */
        const char *name;    /* one line: what one operation is */
        /* Prepare the row (connect, create objects, start a server).  Returns
         * 0 and *ret_state, or a negative errno with nothing left behind. */
        int (*setup)(const bench_env *env, void **ret_state);
        /* Do n operations.  Returns 0 or a negative errno (the run stops). */
        int (*run)(void *state, unsigned n);
        /* Undo setup.  Accepts the state setup returned. */
        void (*teardown)(void *state);
} bench_case;

/* A ratio line: median(num) / median(den), judged against target (0: a
 * reference ratio with no verdict). */
typedef struct bench_ratio {
        const char *label;
        const char *num, *den; /* bench_case keys */
        double target;
} bench_ratio;

/* The suites (cases_*.c).  Each table ends with a zeroed entry. */
extern const bench_case ref_cases[];
extern const bench_case shm_cases[];
extern const bench_ratio shm_ratios[];
extern const bench_case sem_cases[];
extern const bench_ratio sem_ratios[];
extern const bench_case loop_cases[];
extern const bench_ratio loop_ratios[];
#ifdef IPCB_BENCH_QT /* cases_qt.cpp, built only when Qt 6 Core is found */
#ifdef __cplusplus
extern "C" {
#endif
extern const bench_case qt_cases[];
extern const bench_ratio qt_ratios[];
#ifdef __cplusplus
}
#endif
#endif

/* ---- helpers for cases (env.c) ---- */

/* Put the calling process on cpu (no-op when cpu < 0).  Returns 0 or -errno. */
int bench_pin(int cpu);

/* A forked floor server at the other end of a SOCK_SEQPACKET socketpair: it
 * blocks in recvmsg and answers each 64-byte request with a 64-byte reply
 * carrying one memfd (4 KiB, sealed F_SEAL_SHRINK|F_SEAL_GROW). */
typedef enum floor_mode {
        FLOOR_PREMADE_FD, /* the same pre-made memfd every time */
        FLOOR_CREATE_FD,  /* memfd_create+ftruncate+F_ADD_SEALS per request */
} floor_mode;

typedef struct floor_server {
        int fd;    /* client end */
        pid_t pid;
} floor_server;

/* Start a server; *ret is filled only on success. */
int floor_server_start(const bench_env *env, floor_mode mode, floor_server *ret);
/* Close the client end, then SIGTERM and reap the server. */
void floor_server_stop(floor_server *s);
/* One round trip: returns the received fd (the caller owns it) or -errno. */
int floor_round_trip(floor_server *s);
/* One round trip whose reply carries no fd (a request that only answers
 * with a status, like UNLINK).  Returns 0 or -errno. */
int floor_round_trip_plain(floor_server *s);

/* Fork a process that runs serve(arg, fds) and exits (0 if it returned >= 0).
 * The child dies with the parent (PR_SET_PDEATHSIG), is pinned like a floor
 * server, and keeps only 0-2 and the nkeep fds of keep (borrowed), which it
 * finds as fds[0..nkeep-1]; the parent's other fds, broker connections among
 * them, are closed in the child.  Returns 0 and *ret_pid, or -errno. */
#define BENCH_FORK_MAX_FDS 4
int bench_fork(const bench_env *env, const int *keep, unsigned nkeep,
               int (*serve)(void *arg, const int *fds), void *arg, pid_t *ret_pid);
/* SIGTERM the child and reap it (SIGKILL after 2 s).  pid <= 0: no-op. */
void bench_fork_stop(pid_t pid);

/* The broker the harness runs: started on a fresh temporary directory, and
 * ready (a connect succeeds) when broker_start returns 0. */
typedef struct broker {
        pid_t pid;
        char dir[64];
        char socket_path[96];
        char log_path[96];
} broker;

int broker_start(const bench_env *env, broker *ret);
/* SIGTERM, waitpid, remove the temporary directory.  Returns the daemon's
 * exit status (0 clean) or -1 if it had to be killed. */
int broker_stop(broker *b);
