/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* soak.h: what the soak's processes share.  The orchestrator maps one
 * anonymous shared region before it forks; workers of every uid write their
 * state and counters there, and the orchestrator checks the broker against
 * it (bench/soak/soak.c).  Nothing here talks to the broker. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Object names (one broker, one namespace per kind). */
#define SOAK_DATA      "soak.data."  /* + index: persistent segments, seqlock-checked */
#define SOAK_KEEP      "soak.keep."  /* + index: persistent segments, fixed contents */
#define SOAK_UNDO      "soak.undo"   /* semaphore, undo handles only */
#define SOAK_PLAIN     "soak.plain"  /* semaphore, plain handles only */
#define SOAK_VICTIM    "soak.victim" /* segment and semaphore the hostile uid may write */
#define SOAK_TR        "soak.tr."    /* + pid.k: transients held by producers */

#define SOAK_NDATA 2
#define SOAK_NKEEP 4
#define SOAK_DATA_SIZE (64u << 10)
#define SOAK_PAYLOAD 16384u
#define SOAK_KEEP_SIZE (64u << 10)
#define SOAK_UNDO_INIT 8u
#define SOAK_PLAIN_INIT 4u
#define SOAK_NTR 2

/* The uids (nobody and the ids below it: users nobody else has). */
#define UID_PRODUCER 65534u
#define UID_CONSUMER 65533u
#define UID_UNDO     65532u
#define UID_HOSTILE  65531u
#define UID_QUOTA    65530u

enum role {
        R_PRODUCER, /* writes a data segment under its lock; killed */
        R_CONSUMER, /* reads data segments read-only with the seqlock; killed */
        R_UNDO,     /* takes and gives undo tokens; killed */
        R_QUOTA,    /* fills its uid's object quota, frees, again; killed */
        R_PLAIN,    /* takes and gives plain tokens; never killed */
        R_PROBE,    /* times requests; never killed */
        R_HOSTILE,  /* attacks, rate-limited; never killed */
};

/* Where a worker is, for the kill statistics and the checks. */
enum phase {
        P_IDLE,
        P_REQUEST, /* inside a call that talks to the broker */
        P_LOCKED,  /* holds a segment lock */
        P_TOKENS,  /* holds semaphore tokens */
        P_NPHASES,
};

#define SOAK_MAX_WORKERS 16

typedef struct wslot {
        _Atomic pid_t pid;
        enum role role;
        unsigned index;        /* data segment of a producer, etc. */
        uid_t uid;
        _Atomic int phase;
        _Atomic int held;      /* tokens held (undo, plain) */
        _Atomic int pending;   /* tokens of an acquire or release in progress */
        _Atomic int locked;    /* data segment index + 1 whose lock it holds */
} wslot;

/* Latency classes of the probe: hostile uid quiet, hostile uid active,
 * around a restart (from the restart command to 2 s after it returned),
 * and the same round trip through a process that only echoes (what the
 * machine itself gives: no broker could do better). */
enum lclass { L_QUIET, L_HOSTILE, L_RESTART, L_ECHO, L_NCLASSES };
#define SOAK_LAT_CAP (1u << 21) /* samples per class */
#define SOAK_SECS (8 * 3600)    /* per-second figures of the first 8 hours */

typedef struct soak_shared {
        _Atomic bool stop;
        _Atomic bool hostile_on;
        _Atomic uint32_t restart_seq; /* odd while a restart window is open */
        wslot w[SOAK_MAX_WORKERS];
        _Atomic uint64_t max_seen[SOAK_NDATA]; /* highest data sequence a consumer read */

        /* Counters. */
        _Atomic uint64_t writes, reads, read_retries, owner_died, repairs;
        _Atomic uint64_t undo_ops, plain_ops, probe_ops, probe_errors;
        _Atomic uint64_t quota_fills, quota_refusals, quota_recoveries;
        _Atomic uint64_t attacks[16];
        _Atomic int last_attack; /* the hostile's attack begun last */
        /* Probe requests of 5 ms or more while it attacks, by last_attack. */
        uint32_t slow_by_attack[16], max_by_attack_us[16];
        _Atomic uint64_t violations;

        /* Probe latencies (ns, clamped to 2^32 - 1). */
        _Atomic uint32_t nlat[L_NCLASSES];
        uint64_t max_ns[L_NCLASSES], max_at[L_NCLASSES]; /* the probe's worst, and when (ns) */
        uint32_t lat[L_NCLASSES][SOAK_LAT_CAP];
        /* Each second's worst and count (by the probe) and the host's steal
         * in it, in /proc/stat ticks (by the orchestrator; -1: unknown). */
        uint64_t t_start;
        uint32_t sec_max_us[L_NCLASSES][SOAK_SECS], sec_n[L_NCLASSES][SOAK_SECS];
        int32_t sec_steal[SOAK_SECS];
} soak_shared;

extern soak_shared *S;
extern const char *soak_socket;

/* Record a broken invariant: a line on stderr, counted. */
void soak_violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
uint64_t soak_now_ns(void);
void soak_sleep_us(unsigned us);
uint64_t soak_rand(uint64_t *state);

/* Data segment contents: header then payload, all derived from seq. */
typedef struct soak_data_hdr {
        uint64_t seq;
        uint64_t sum;
} soak_data_hdr;
void soak_data_fill(void *data, uint64_t seq);
bool soak_data_valid(const void *data, uint64_t *ret_seq);
void soak_keep_fill(void *data, unsigned index);
bool soak_keep_valid(const void *data, unsigned index);

/* Workers (bench/soak/workers.c, bench/soak/hostile.c): run as the slot's
 * uid until S->stop, then return the exit status. */
int worker_run(wslot *w);
int hostile_run(wslot *w);

/* Names of the attacks, indexed like S->attacks. */
extern const char *const hostile_attack_names[];
extern const unsigned hostile_nattacks;
