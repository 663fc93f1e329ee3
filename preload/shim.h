/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* shim.h: what the modules of libipcbroker-preload.so share: the
 * configuration read from the environment at load time, the one broker
 * connection of the process (made on first use, made again in a forked
 * child), the routing decision of every call (serve through the broker,
 * pass through to the C library, or fail), the broker-name mapping and the
 * C library's own functions found with dlsym(RTLD_NEXT).  docs/preload.md
 * says what the user sees of all this. */
#pragma once

#include "ipcbroker.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Environment variables the launcher (ipcbroker-run) sets. */
#define SHIM_ENV_PREFIX    "IPCBROKER_PRELOAD_PREFIX"
#define SHIM_ENV_TRANSIENT "IPCBROKER_PRELOAD_TRANSIENT"
#define SHIM_ENV_FALLBACK  "IPCBROKER_PRELOAD_FALLBACK"
#define SHIM_ENV_EXCLUDE   "IPCBROKER_PRELOAD_EXCLUDE"
#define SHIM_ENV_SYSV      "IPCBROKER_PRELOAD_SYSV"
#define SHIM_PREFIX_DEFAULT "preload."
#define SHIM_PREFIX_MAX 64

typedef enum shim_fallback {
        SHIM_FALLBACK_FAIL,   /* no broker: the call fails with ENOTCONN */
        SHIM_FALLBACK_KERNEL, /* no broker: the kernel's IPC, for the process's lifetime */
} shim_fallback;

typedef struct shim_config {
        char prefix[SHIM_PREFIX_MAX + 1];
        bool transient; /* created objects die with the last process holding them */
        bool sysv;      /* serve System V calls (else pass them through) */
        shim_fallback fallback;
        char *exclude;  /* ':'-separated fnmatch patterns, or NULL */
} shim_config;

extern shim_config shim_cfg;

/* The one lock of the shim: guards the connection and every table.  Held
 * across broker requests, never across a wait for a semaphore. */
extern pthread_mutex_t shim_lock;

/* Routing of one call. */
typedef enum shim_route {
        SHIM_SERVE, /* *ret_client is the connection (lock held by the caller) */
        SHIM_PASS,  /* call the C library's own function */
        SHIM_FAIL,  /* fail with *ret_err (a positive errno) */
} shim_route;

/* Decide for a call on `what` (a POSIX name with its leading '/', or a
 * SysV key as "0x%08x"; NULL: not excludable).  With shim_lock held;
 * connects on first use.  The fallback decision (no broker at the first
 * call) holds for the process's lifetime (a forked child decides again). */
shim_route shim_route_call(const char *what, ipcb_client **ret_client, int *ret_err);

/* A fork generation: bumped in every forked child, so that tables can tell
 * entries inherited from the parent (whose broker handles belong to the
 * parent's connection and must not be released through it). */
extern unsigned shim_fork_gen;

/* Set errno to -r (r < 0) and return -1.  Maps the library's errors to
 * what callers of the POSIX and System V calls expect. */
int shim_fail(int r);

/* The process's umask, read without changing it. */
mode_t shim_umask(void);

/* Broker names (names.c).  POSIX name (leading '/'s already stripped) of
 * `kind_tag` ("shm" or "sem") into buf (IPCB_NAME_MAX + 1 bytes): prefix +
 * tag + '.' + encoded name.  0, -EINVAL, -ENAMETOOLONG. */
int shim_posix_name(const char *name, const char *kind_tag, char *buf);
/* Strip and check a POSIX name as glibc does: leading '/'s skipped, then
 * 1..NAME_MAX bytes without '/'.  Returns the stripped name or NULL with
 * *ret_err EINVAL / ENAMETOOLONG. */
const char *shim_posix_strip(const char *name, int *ret_err);

/* The C library's functions (dlsym(RTLD_NEXT)); NULL only if missing. */
void *shim_next(const char *symbol);
#define SHIM_NEXT(type, sym) ((type)shim_next(#sym))
