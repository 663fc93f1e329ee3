/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cases_shm.c: the segment rows and their floors, and the reference rows
 * that let a reader scale the numbers to another machine.
 *
 *   (a) open:   ipcb_shm_open(READ_WRITE) + ipcb_shm_close of an existing
 *               4 KiB segment  vs  a raw SOCK_SEQPACKET round trip returning a
 *               pre-made memfd + the same mmap/munmap/close.
 *   (b) create: ipcb_shm_create + ipcb_shm_close (+ ipcb_unlink when
 *               persistent)  vs  a raw round trip whose server creates, sizes
 *               and seals a memfd per request + the same mmap/munmap/close. */
#include "bench.h"

#include "ipcbroker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SEG_SIZE 4096
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#define OPEN_NAME "ipcb-bench.open"
#define CREATE_NAME "ipcb-bench.create"

/* Keeps the compiler from dropping work whose result is unused. */
static volatile uint64_t sink;

/* ---- reference ---- */

static int ref_setup(const bench_env *env, void **ret_state) {
        (void)env;
        *ret_state = NULL;
        return 0;
}

static void ref_teardown(void *state) {
        (void)state;
}

static int run_getppid(void *state, unsigned n) {
        (void)state;
        for (unsigned i = 0; i < n; i++)
                sink += (uint64_t)syscall(SYS_getppid);
        return 0;
}

static int run_clock(void *state, unsigned n) {
        struct timespec ts;

        (void)state;
        for (unsigned i = 0; i < n; i++) {
                clock_gettime(CLOCK_MONOTONIC, &ts);
                sink += (uint64_t)ts.tv_nsec;
        }
        return 0;
}

const bench_case ref_cases[] = {
        { "ref.clock", "reference", "(ref) clock_gettime(CLOCK_MONOTONIC), vDSO",
          ref_setup, run_clock, ref_teardown },
        { "ref.syscall", "reference", "(ref) bare syscall: syscall(SYS_getppid)",
          ref_setup, run_getppid, ref_teardown },
        {},
};

/* ---- the client half every row shares: map, maybe touch, unmap, close ---- */

static int map_unmap_close(int fd, bool touch) {
        void *p = mmap(NULL, SEG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        int k = 0;

        if (p == MAP_FAILED)
                k = -errno;
        else {
                if (touch)
                        *(volatile char *)p = 1;
                munmap(p, SEG_SIZE);
        }
        close(fd);
        return k;
}

/* ---- floors ---- */

static int floor_setup(const bench_env *env, floor_mode mode, void **ret_state) {
        floor_server *s = malloc(sizeof(*s));
        int k;

        if (!s)
                return -ENOMEM;
        k = floor_server_start(env, mode, s);
        if (k < 0) {
                free(s);
                return k;
        }
        *ret_state = s;
        return 0;
}

static int floor_premade_setup(const bench_env *env, void **ret_state) {
        return floor_setup(env, FLOOR_PREMADE_FD, ret_state);
}

static int floor_create_setup(const bench_env *env, void **ret_state) {
        return floor_setup(env, FLOOR_CREATE_FD, ret_state);
}

static void floor_teardown(void *state) {
        floor_server_stop(state);
        free(state);
}

static int floor_run(void *state, unsigned n, bool touch) {
        for (unsigned i = 0; i < n; i++) {
                int fd = floor_round_trip(state), k;
                if (fd < 0)
                        return fd;
                if ((k = map_unmap_close(fd, touch)) < 0)
                        return k;
        }
        return 0;
}

/* The floor of a two-request operation such as create + unlink: a round
 * trip returning a new sealed memfd (mapped, unmapped, closed), then a
 * round trip answered without an fd. */
static int run_floor_two(void *state, unsigned n) {
        for (unsigned i = 0; i < n; i++) {
                int fd = floor_round_trip(state), k;
                if (fd < 0)
                        return fd;
                if ((k = map_unmap_close(fd, false)) < 0 || (k = floor_round_trip_plain(state)) < 0)
                        return k;
        }
        return 0;
}

static int run_floor(void *state, unsigned n) {
        return floor_run(state, n, false);
}

static int run_floor_touch(void *state, unsigned n) {
        return floor_run(state, n, true);
}

/* Local only: what creating a sealed segment costs with no broker at all. */
static int run_local_create(void *state, unsigned n) {
        (void)state;
        for (unsigned i = 0; i < n; i++) {
                int fd = memfd_create("ipcb-bench-local", MFD_CLOEXEC | MFD_ALLOW_SEALING), k;
                if (fd < 0)
                        return -errno;
                if (ftruncate(fd, SEG_SIZE) < 0 ||
                    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
                        k = -errno;
                        close(fd);
                        return k;
                }
                if ((k = map_unmap_close(fd, false)) < 0)
                        return k;
        }
        return 0;
}

/* Local only: what the create floor server does per request. */
static int run_local_create_floorseq(void *state, unsigned n) {
        (void)state;
        for (unsigned i = 0; i < n; i++) {
                int fd = memfd_create("ipcb-bench-local", MFD_CLOEXEC | MFD_ALLOW_SEALING), k = 0;
                if (fd < 0)
                        return -errno;
                if (ftruncate(fd, SEG_SIZE) < 0 ||
                    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
                        k = -errno;
                close(fd);
                if (k < 0)
                        return k;
        }
        return 0;
}

/* Local only: the daemon's own create sequence (daemon/os.c
 * os_memfd_sealed), to show how much of a brokered create is the daemon's
 * extra syscalls. */
static int run_local_create_daemon(void *state, unsigned n) {
        (void)state;
        for (unsigned i = 0; i < n; i++) {
                int rw, k = 0;

                rw = memfd_create("ipcb-bench-local", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
                if (rw < 0 && errno == EINVAL)
                        rw = memfd_create("ipcb-bench-local", MFD_CLOEXEC | MFD_ALLOW_SEALING);
                if (rw < 0)
                        return -errno;
                if (ftruncate(rw, SEG_SIZE) < 0 ||
                    fcntl(rw, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0 || fchmod(rw, 0600) < 0)
                        k = -errno;
                close(rw);
                if (k < 0)
                        return k;
        }
        return 0;
}

/* ---- brokered ---- */

typedef struct shm_state {
        ipcb_client *c;
        char name[64];    /* each row has its own segment name */
        bool unlink_open; /* the open row's segment was created by setup */
} shm_state;

static int brokered_setup(const bench_env *env, bool make_open_segment, void **ret_state) {
        static unsigned rows;
        shm_state *st = calloc(1, sizeof(*st));
        int k;

        if (!st)
                return -ENOMEM;
        snprintf(st->name, sizeof(st->name), "%s.%u",
                 make_open_segment ? OPEN_NAME : CREATE_NAME, ++rows);
        k = ipcb_connect(env->socket_path, &st->c);
        if (k < 0)
                goto fail;
        if (make_open_segment) {
                ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
                ipcb_shm *s;

                o.flags = IPCB_SHM_PERSISTENT;
                k = ipcb_shm_create(st->c, st->name, SEG_SIZE, &o, &s);
                if (k < 0)
                        goto fail;
                st->unlink_open = true;
                k = ipcb_shm_close(s);
                if (k < 0)
                        goto fail;
        }
        *ret_state = st;
        return 0;
fail:
        fprintf(stderr, "ipcb_bench: broker setup: %s\n", ipcb_strerror(k));
        if (st->unlink_open)
                (void)ipcb_unlink(st->c, st->name);
        ipcb_disconnect(st->c);
        free(st);
        return k;
}

static int open_setup(const bench_env *env, void **ret_state) {
        return brokered_setup(env, true, ret_state);
}

static int create_setup(const bench_env *env, void **ret_state) {
        return brokered_setup(env, false, ret_state);
}

static void brokered_teardown(void *state) {
        shm_state *st = state;

        if (st->unlink_open)
                (void)ipcb_unlink(st->c, st->name);
        ipcb_disconnect(st->c);
        free(st);
}

static int open_run(void *state, unsigned n, bool touch) {
        shm_state *st = state;

        for (unsigned i = 0; i < n; i++) {
                ipcb_shm *s;
                int k = ipcb_shm_open(st->c, st->name, IPCB_READ_WRITE, &s);
                if (k < 0)
                        return k;
                if (touch)
                        *(volatile char *)ipcb_shm_data(s) = 1;
                if ((k = ipcb_shm_close(s)) < 0)
                        return k;
        }
        return 0;
}

static int run_open(void *state, unsigned n) {
        return open_run(state, n, false);
}

static int run_open_touch(void *state, unsigned n) {
        return open_run(state, n, true);
}

static int create_run(void *state, unsigned n, bool persistent) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        shm_state *st = state;

        o.flags = persistent ? IPCB_SHM_PERSISTENT : 0;
        for (unsigned i = 0; i < n; i++) {
                ipcb_shm *s;
                int k = ipcb_shm_create(st->c, st->name, SEG_SIZE, &o, &s);
                if (k < 0)
                        return k;
                if ((k = ipcb_shm_close(s)) < 0)
                        return k;
                if (persistent && (k = ipcb_unlink(st->c, st->name)) < 0)
                        return k;
        }
        return 0;
}

static int run_create_persistent(void *state, unsigned n) {
        return create_run(state, n, true);
}

static int run_create_transient(void *state, unsigned n) {
        return create_run(state, n, false);
}

const bench_case shm_cases[] = {
        { "floor.open", "(a) open floor",
          "seqpacket RT 64 B, reply 64 B + 1 pre-made memfd; mmap+munmap+close",
          floor_premade_setup, run_floor, floor_teardown },
        { "floor.open.touch", "(a) open floor",
          "seqpacket RT 64 B, reply 64 B + 1 pre-made memfd; mmap+touch 1 B+munmap+close",
          floor_premade_setup, run_floor_touch, floor_teardown },
        { "open", "(a) open",
          "ipcb_shm_open(READ_WRITE)+ipcb_shm_close, 4 KiB, no touch",
          open_setup, run_open, brokered_teardown },
        { "open.touch", "(a) open",
          "ipcb_shm_open(READ_WRITE)+touch 1 B+ipcb_shm_close, 4 KiB",
          open_setup, run_open_touch, brokered_teardown },
        { "local.create", "(b) create floor",
          "(ref) local memfd_create+ftruncate+F_ADD_SEALS+mmap+munmap+close, no broker",
          ref_setup, run_local_create, ref_teardown },
        { "local.create.server", "(b) create floor",
          "(ref) local: the floor server's create sequence (memfd_create+ftruncate+F_ADD_SEALS; close)",
          ref_setup, run_local_create_floorseq, ref_teardown },
        { "local.create.daemon", "(b) create floor",
          "(ref) local: the daemon's create sequence (memfd_create+ftruncate+F_ADD_SEALS+fchmod; close)",
          ref_setup, run_local_create_daemon, ref_teardown },
        { "floor.create", "(b) create floor",
          "seqpacket RT 64 B, server memfd_create+ftruncate+F_ADD_SEALS per req, 1 fd; mmap+munmap+close",
          floor_create_setup, run_floor, floor_teardown },
        { "floor.create2", "(b) create floor",
          "seqpacket RT returning a new sealed memfd; mmap+munmap+close; then an RT without fd",
          floor_create_setup, run_floor_two, floor_teardown },
        { "create.persistent", "(b) create",
          "ipcb_shm_create(PERSISTENT)+ipcb_shm_close+ipcb_unlink, 4 KiB",
          create_setup, run_create_persistent, brokered_teardown },
        { "create.transient", "(b) create",
          "ipcb_shm_create(transient)+ipcb_shm_close, 4 KiB",
          create_setup, run_create_transient, brokered_teardown },
        {},
};

const bench_ratio shm_ratios[] = {
        { "(a) open+map+unmap+close, no touch: brokered / floor", "open", "floor.open", 1.25 },
        { "(a) open+map+touch+unmap+close: brokered / floor", "open.touch", "floor.open.touch", 1.25 },
        { "(b) create+map+close+unlink (persistent): brokered / floor", "create.persistent",
          "floor.create", 1.25 },
        { "(b) create+map+close+unlink (persistent): brokered / its two-round-trip floor",
          "create.persistent", "floor.create2", 1.25 },
        { "(b) create+map+close (transient): brokered / floor", "create.transient", "floor.create",
          1.25 },
        { "(ref) open floor / bare syscall", "floor.open", "ref.syscall", 0 },
        { "(ref) create floor / local-only create", "floor.create", "local.create", 0 },
        { "(ref) daemon's create sequence / floor server's, both local", "local.create.daemon",
          "local.create.server", 0 },
        {},
};
