/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_access.c: access control, hard read-only handles, sealed publishing
 * (freeze, register, anonymous memfds) with clients of three uids
 * (61001 owner, 61002 reader in group 61100, 61003 stranger) and root, for a
 * daemon running as root and for one running as the unprivileged uid 61010.
 * Every client runs in a forked child that dropped its privileges
 * (multiuid.h); skipped when the tests do not run as root.
 *
 * Every test starts its own daemon in the harness fixture (harness.h) and
 * removes by name every object it made, persistent ones too: at its end the
 * daemon is back at its idle fd count, the test process at its own, and the
 * daemon exits 0. */
#include "harness.h"
#include "multiuid.h"

#include "ipcbroker.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

static ipcbd d;

static void start(uid_t daemon_uid, const char *const *args) {
        if (daemon_uid == 0)
                fixture_begin(&d, args);
        else
                fixture_begin_as(&d, daemon_uid, daemon_uid, args);
}

/* After a test that failed or skipped before fixture_end. */
static void teardown(void) {
        fixture_cleanup(&d);
}

TestSuite(access, .fini = teardown, .timeout = 60);
TestSuite(readonly, .fini = teardown, .timeout = 60);
TestSuite(publish, .fini = teardown, .timeout = 60);

/* Each body starts its daemon (start()) and removes every object it made,
 * persistent ones too (remove()); fixture_end (harness.h) follows: both fd
 * counts back, clean exit. */
#define ACCESS_TEST(suite, name) FIXTURE_TEST(suite, name, &d, fixture_release_nothing)

static uint8_t pat(size_t i) {
        return (uint8_t)(i * 7u + 3u);
}

/* ---- child bodies ---- */

typedef struct job {
        const char *name;
        unsigned mode, flags;
        int kind;
        pid_t daemon_pid;
} job;

static int c_connect(ipcb_client **c) {
        int r = ipcb_connect(d.sock, c);
        if (r < 0)
                fprintf(stderr, "[uid %u] connect: %s\n", (unsigned)getuid(), ipcb_strerror(r));
        return r;
}

/* Create a persistent segment of 64 KiB with the pattern, or a semaphore. */
static int create_obj(void *arg) {
        job *j = arg;
        ipcb_client *c;
        int r;

        CHILD_CHECK(c_connect(&c) == 0, "connect");
        if (j->kind == IPCB_KIND_SEM) {
                ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
                ipcb_sem *s;
                o.mode = j->mode;
                o.flags = IPCB_SEM_PERSISTENT;
                r = ipcb_sem_create(c, j->name, 1, &o, &s);
                CHILD_CHECK(r == 0, "sem create: %s", ipcb_strerror(r));
                ipcb_sem_close(s);
        } else {
                ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
                ipcb_shm *s;
                o.mode = j->mode;
                o.flags = IPCB_SHM_PERSISTENT | j->flags;
                r = ipcb_shm_create(c, j->name, 65536, &o, &s);
                CHILD_CHECK(r == 0, "create: %s", ipcb_strerror(r));
                uint8_t *p = ipcb_shm_data(s);
                for (size_t i = 0; i < 65536; i++)
                        p[i] = pat(i);
                ipcb_shm_close(s);
        }
        ipcb_disconnect(c);
        return 0;
}

/* Expected results of opening j->name RO and RW (0 or -errno). */
typedef struct expect_open {
        job j;
        int ro, rw;
} expect_open;

static int try_open(void *arg) {
        expect_open *e = arg;
        ipcb_client *c;
        int r;

        CHILD_CHECK(c_connect(&c) == 0, "connect");
        if (e->j.kind == IPCB_KIND_SEM) {
                ipcb_sem *s = NULL;
                r = ipcb_sem_open(c, e->j.name, 0, &s);
                CHILD_CHECK(r == e->rw, "sem open %s: %s, want %s", e->j.name, ipcb_strerror(r),
                            ipcb_strerror(e->rw));
                ipcb_sem_close(s);
        } else {
                ipcb_shm *s = NULL;
                r = ipcb_shm_open(c, e->j.name, IPCB_READ_ONLY, &s);
                CHILD_CHECK(r == e->ro, "open RO %s: %s, want %s", e->j.name, ipcb_strerror(r),
                            ipcb_strerror(e->ro));
                if (r == 0) {
                        const uint8_t *p = ipcb_shm_data(s);
                        CHILD_CHECK(p[100] == pat(100), "contents");
                }
                ipcb_shm_close(s);
                s = NULL;
                r = ipcb_shm_open(c, e->j.name, IPCB_READ_WRITE, &s);
                CHILD_CHECK(r == e->rw, "open RW %s: %s, want %s", e->j.name, ipcb_strerror(r),
                            ipcb_strerror(e->rw));
                ipcb_shm_close(s);
        }
        ipcb_disconnect(c);
        return 0;
}

static void expect(uid_t uid, bool shared, const char *name, int kind, int ro, int rw) {
        expect_open e = { .j = { .name = name, .kind = kind }, .ro = ro, .rw = rw };
        cr_assert_eq(run_as(uid, shared, try_open, &e), 0, "open '%s' as uid %u", name,
                     (unsigned)uid);
}

typedef struct manage {
        const char *name;
        int kind;
        int op; /* 0 unlink, 1 chmod, 2 chown uid, 3 chgrp, 4 freeze */
        unsigned arg;
        int want;
} manage;

static int do_manage(void *arg) {
        manage *m = arg;
        ipcb_client *c;
        int r = -EINVAL;

        CHILD_CHECK(c_connect(&c) == 0, "connect");
        switch (m->op) {
        case 0: r = m->kind == IPCB_KIND_SEM ? ipcb_sem_unlink(c, m->name) : ipcb_unlink(c, m->name); break;
        case 1: r = ipcb_chmod(c, m->kind, m->name, m->arg); break;
        case 2: r = ipcb_chown(c, m->kind, m->name, (uid_t)m->arg, (gid_t)-1); break;
        case 3: r = ipcb_chown(c, m->kind, m->name, (uid_t)-1, (gid_t)m->arg); break;
        case 4: r = ipcb_shm_freeze(c, m->name, NULL); break;
        }
        CHILD_CHECK(r == m->want, "op %d on %s: %s, want %s", m->op, m->name, ipcb_strerror(r),
                    ipcb_strerror(m->want));
        ipcb_disconnect(c);
        return 0;
}

static void as_manage(uid_t uid, bool shared, const char *name, int kind, int op, unsigned arg,
                      int want) {
        manage m = { name, kind, op, arg, want };
        cr_assert_eq(run_as(uid, shared, do_manage, &m), 0, "manage op %d '%s' as uid %u", op,
                     name, (unsigned)uid);
}

static void create_as(uid_t uid, const char *name, int kind, unsigned mode) {
        job j = { .name = name, .kind = kind, .mode = mode };
        RUN_AS(uid, true, create_obj, &j);
}

static void stat_root(const char *name, int kind, ipcb_object_info *info) {
        ipcb_client *c;
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        cr_assert_eq(ipcb_stat(c, kind, name, info), 0);
        ipcb_disconnect(c);
}

/* Root removes an object a test leaves (persistent ones hold the daemon's fds). */
static void remove_root(const char *name, int kind) {
        ipcb_client *c;
        int r;
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        r = kind == IPCB_KIND_SEM ? ipcb_sem_unlink(c, name) : ipcb_unlink(c, name);
        ipcb_disconnect(c);
        cr_assert_eq(r, 0, "unlink '%s': %s", name, ipcb_strerror(r));
}

/* ---- access control ---- */

ACCESS_TEST(access, default_mode_is_owner_only) {
        SKIP_UNLESS_ROOT();
        start(0, NULL);
        create_as(UID_A, "priv", IPCB_KIND_SHM, 0600);
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        stat_root("priv", IPCB_KIND_SHM, &info);
        cr_assert_eq(info.uid, UID_A, "owner from SO_PEERCRED");
        cr_assert_eq(info.gid, UID_A);
        cr_assert_eq(info.mode, 0600);
        expect(UID_A, false, "priv", IPCB_KIND_SHM, 0, 0);
        expect(UID_B, true, "priv", IPCB_KIND_SHM, -EACCES, -EACCES);
        expect(UID_C, false, "priv", IPCB_KIND_SHM, -EACCES, -EACCES);
        expect(0, false, "priv", IPCB_KIND_SHM, 0, 0); /* root override */
        remove_root("priv", IPCB_KIND_SHM);
}

ACCESS_TEST(access, group_bits_use_supplementary_groups) {
        SKIP_UNLESS_ROOT();
        start(0, NULL);
        create_as(UID_A, "grp", IPCB_KIND_SHM, 0640);
        /* The owner gives it to a group it is in (supplementary only). */
        as_manage(UID_A, true, "grp", IPCB_KIND_SHM, 3, GID_SHARED, 0);
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        stat_root("grp", IPCB_KIND_SHM, &info);
        cr_assert_eq(info.gid, GID_SHARED);
        expect(UID_B, true, "grp", IPCB_KIND_SHM, 0, -EACCES);         /* member: r */
        expect(UID_B, false, "grp", IPCB_KIND_SHM, -EACCES, -EACCES);  /* not a member now */
        expect(UID_C, false, "grp", IPCB_KIND_SHM, -EACCES, -EACCES);
        as_manage(UID_A, true, "grp", IPCB_KIND_SHM, 1, 0660, 0);
        expect(UID_B, true, "grp", IPCB_KIND_SHM, 0, 0);
        /* The owner without the owner's bit is refused even if group allows. */
        as_manage(UID_A, true, "grp", IPCB_KIND_SHM, 1, 0060, 0);
        expect(UID_A, true, "grp", IPCB_KIND_SHM, -EACCES, -EACCES);
        remove_root("grp", IPCB_KIND_SHM);
}

ACCESS_TEST(access, other_bits) {
        SKIP_UNLESS_ROOT();
        start(0, NULL);
        create_as(UID_A, "oth", IPCB_KIND_SHM, 0604);
        expect(UID_C, false, "oth", IPCB_KIND_SHM, 0, -EACCES);
        as_manage(UID_A, false, "oth", IPCB_KIND_SHM, 1, 0606, 0);
        expect(UID_C, false, "oth", IPCB_KIND_SHM, 0, 0);
        as_manage(UID_A, false, "oth", IPCB_KIND_SHM, 1, 0600, 0);
        expect(UID_C, false, "oth", IPCB_KIND_SHM, -EACCES, -EACCES);
        remove_root("oth", IPCB_KIND_SHM);
}

ACCESS_TEST(access, unlink_chmod_chown_need_ownership) {
        SKIP_UNLESS_ROOT();
        start(0, NULL);
        create_as(UID_A, "own", IPCB_KIND_SHM, 0666);
        for (int op = 0; op <= 4; op++)
                as_manage(UID_B, true, "own", IPCB_KIND_SHM, op, op == 2 ? UID_B : 0644, -EPERM);
        /* Even the owner cannot give the object away or to a foreign group. */
        as_manage(UID_A, true, "own", IPCB_KIND_SHM, 2, UID_B, -EPERM);
        as_manage(UID_A, true, "own", IPCB_KIND_SHM, 3, 4242, -EPERM);
        as_manage(UID_A, true, "own", IPCB_KIND_SHM, 1, 01000, -EINVAL);
        /* Root can. */
        as_manage(0, false, "own", IPCB_KIND_SHM, 2, UID_B, 0);
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        stat_root("own", IPCB_KIND_SHM, &info);
        cr_assert_eq(info.uid, UID_B);
        as_manage(UID_A, true, "own", IPCB_KIND_SHM, 0, 0, -EPERM);
        as_manage(UID_B, true, "own", IPCB_KIND_SHM, 0, 0, 0);
}

ACCESS_TEST(access, semaphores) {
        SKIP_UNLESS_ROOT();
        start(0, NULL);
        create_as(UID_A, "s1", IPCB_KIND_SEM, 0600);
        expect(UID_B, true, "s1", IPCB_KIND_SEM, 0, -EACCES);
        expect(UID_A, true, "s1", IPCB_KIND_SEM, 0, 0);
        as_manage(UID_B, true, "s1", IPCB_KIND_SEM, 1, 0666, -EPERM);
        as_manage(UID_A, true, "s1", IPCB_KIND_SEM, 3, GID_SHARED, 0);
        as_manage(UID_A, true, "s1", IPCB_KIND_SEM, 1, 0640, 0);
        expect(UID_B, true, "s1", IPCB_KIND_SEM, 0, -EACCES); /* needs r and w */
        as_manage(UID_A, true, "s1", IPCB_KIND_SEM, 1, 0660, 0);
        expect(UID_B, true, "s1", IPCB_KIND_SEM, 0, 0);
        expect(UID_C, false, "s1", IPCB_KIND_SEM, 0, -EACCES);
        as_manage(UID_B, true, "s1", IPCB_KIND_SEM, 0, 0, -EPERM);
        as_manage(UID_A, true, "s1", IPCB_KIND_SEM, 4, 0, -ENOENT); /* freeze: segments only */
        as_manage(UID_A, true, "s1", IPCB_KIND_SEM, 0, 0, 0);
}

ACCESS_TEST(access, no_root_override) {
        static const char *const args[] = { "--no-root-override", NULL };
        SKIP_UNLESS_ROOT();
        start(0, args);
        create_as(UID_A, "nr", IPCB_KIND_SHM, 0600);
        expect(0, false, "nr", IPCB_KIND_SHM, -EACCES, -EACCES);
        for (int op = 0; op <= 4; op++)
                as_manage(0, false, "nr", IPCB_KIND_SHM, op, op == 2 ? 0 : 0644, -EPERM);
        /* Root's own objects are still root's. */
        create_as(0, "mine", IPCB_KIND_SHM, 0600);
        expect(0, false, "mine", IPCB_KIND_SHM, 0, 0);
        expect(UID_A, false, "mine", IPCB_KIND_SHM, -EACCES, -EACCES);
        as_manage(UID_A, false, "nr", IPCB_KIND_SHM, 0, 0, 0);
        remove_root("mine", IPCB_KIND_SHM);
}

/* ---- hard read-only ---- */

/* Every route to write access from a read-only handle must fail. */
static int routes_fail(ipcb_shm *s, pid_t daemon_pid) {
        int fd = ipcb_shm_fd(s), k;
        size_t size = ipcb_shm_size(s);
        uint8_t *data = ipcb_shm_data(s);
        char path[96];
        void *m;

        CHILD_CHECK(ipcb_shm_access(s) == IPCB_READ_ONLY, "not read-only");
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        k = open(path, O_RDWR | O_CLOEXEC);
        CHILD_CHECK(k < 0, "reopen %s O_RDWR succeeded", path);
        k = open(path, O_WRONLY | O_CLOEXEC);
        CHILD_CHECK(k < 0, "reopen %s O_WRONLY succeeded", path);
        snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)getpid(), fd);
        k = open(path, O_RDWR | O_CLOEXEC);
        CHILD_CHECK(k < 0, "reopen %s O_RDWR succeeded", path);
        /* The daemon's own descriptors of the same inode. */
        snprintf(path, sizeof(path), "/proc/%d/fd", (int)daemon_pid);
        DIR *dir = opendir(path);
        if (dir) {
                struct dirent *e;
                while ((e = readdir(dir))) {
                        char p2[400];
                        if (e->d_name[0] == '.')
                                continue;
                        snprintf(p2, sizeof(p2), "%s/%s", path, e->d_name);
                        k = open(p2, O_RDWR | O_CLOEXEC);
                        CHILD_CHECK(k < 0, "reopen %s O_RDWR succeeded", p2);
                }
                closedir(dir);
        }
        m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHILD_CHECK(m == MAP_FAILED, "mmap PROT_WRITE MAP_SHARED succeeded");
        CHILD_CHECK(mprotect(data, size, PROT_READ | PROT_WRITE) < 0, "mprotect succeeded");
        CHILD_CHECK(ftruncate(fd, (off_t)size * 2) < 0, "ftruncate grow succeeded");
        CHILD_CHECK(ftruncate(fd, 0) < 0, "ftruncate shrink succeeded");
        CHILD_CHECK(fallocate(fd, 0, 0, (off_t)size * 2) < 0, "fallocate succeeded");
        CHILD_CHECK(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096) < 0,
                    "punch hole succeeded");
        CHILD_CHECK(write(fd, "x", 1) < 0, "write succeeded");
        CHILD_CHECK(pwrite(fd, "x", 1, 0) < 0, "pwrite succeeded");
        CHILD_CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL) < 0, "F_ADD_SEALS succeeded");
        CHILD_CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) < 0, "F_ADD_SEALS succeeded");
        for (size_t i = 0; i < size; i += 4093)
                CHILD_CHECK(data[i] == pat(i), "contents changed at %zu", i);
        return 0;
}

static int reader_routes(void *arg) {
        job *j = arg;
        ipcb_client *c;
        ipcb_shm *s;
        int r;

        CHILD_CHECK(c_connect(&c) == 0, "connect");
        r = ipcb_shm_open(c, j->name, IPCB_READ_ONLY, &s);
        CHILD_CHECK(r == 0, "open RO %s: %s", j->name, ipcb_strerror(r));
        if (routes_fail(s, j->daemon_pid))
                return 1;
        /* A read-write open of what the mode makes read-only fails too. */
        ipcb_shm *w = NULL;
        r = ipcb_shm_open(c, j->name, IPCB_READ_WRITE, &w);
        CHILD_CHECK(r == (int)j->flags, "open RW %s: %s, want %s", j->name, ipcb_strerror(r),
                    ipcb_strerror((int)j->flags));
        ipcb_shm_close(w);
        ipcb_shm_close(s);
        ipcb_disconnect(c);
        return 0;
}

/* The owner publishes a memfd with the pattern (sealed shrink+grow). */
static int register_pattern(void *arg) {
        job *j = arg;
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_client *c;
        ipcb_shm *s;
        int fd, r;

        fd = memfd_create("pub", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        CHILD_CHECK(fd >= 0, "memfd_create");
        CHILD_CHECK(ftruncate(fd, 65536) == 0, "ftruncate");
        uint8_t *p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHILD_CHECK(p != MAP_FAILED, "mmap");
        for (size_t i = 0; i < 65536; i++)
                p[i] = pat(i);
        munmap(p, 65536);
        CHILD_CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | j->flags) == 0, "seal");
        CHILD_CHECK(c_connect(&c) == 0, "connect");
        o.mode = j->mode;
        o.flags = IPCB_SHM_PERSISTENT;
        r = ipcb_shm_register(c, j->name, fd, &o, &s);
        CHILD_CHECK(r == 0, "register: %s", ipcb_strerror(r));
        close(fd);
        ipcb_shm_close(s);
        ipcb_disconnect(c);
        return 0;
}

static void hard_readonly(uid_t daemon_uid) {
        start(daemon_uid, NULL);
        /* A brokered segment, a registered memfd, and a frozen segment. */
        create_as(UID_A, "ro-shm", IPCB_KIND_SHM, 0644);
        job reg = { .name = "ro-reg", .mode = 0644 };
        RUN_AS(UID_A, false, register_pattern, &reg);
        create_as(UID_A, "ro-frozen", IPCB_KIND_SHM, 0666);
        as_manage(UID_A, false, "ro-frozen", IPCB_KIND_SHM, 4, 0, 0);

        job j1 = { .name = "ro-shm", .daemon_pid = d.pid, .flags = (unsigned)-EACCES };
        job j2 = { .name = "ro-reg", .daemon_pid = d.pid, .flags = (unsigned)-EACCES };
        job j3 = { .name = "ro-frozen", .daemon_pid = d.pid, .flags = (unsigned)-EROFS };
        RUN_AS(UID_B, true, reader_routes, &j1);
        RUN_AS(UID_C, false, reader_routes, &j1);
        RUN_AS(UID_B, true, reader_routes, &j2);
        RUN_AS(UID_C, false, reader_routes, &j3);
        remove_root("ro-shm", IPCB_KIND_SHM);
        remove_root("ro-reg", IPCB_KIND_SHM);
        remove_root("ro-frozen", IPCB_KIND_SHM);
}

ACCESS_TEST(readonly, every_route_fails_daemon_root) {
        SKIP_UNLESS_ROOT();
        hard_readonly(0);
}

ACCESS_TEST(readonly, every_route_fails_daemon_unprivileged) {
        SKIP_UNLESS_ROOT();
        hard_readonly(UID_D);
}

ACCESS_TEST(access, daemon_unprivileged_serves_every_uid) {
        SKIP_UNLESS_ROOT();
        start(UID_D, NULL);
        char status[64];
        snprintf(status, sizeof(status), "/proc/%d/status", (int)d.pid);
        FILE *f = fopen(status, "re");
        cr_assert_not_null(f);
        char line[256];
        unsigned ruid = 0;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "Uid: %u", &ruid) == 1)
                        break;
        fclose(f);
        cr_assert_eq(ruid, UID_D, "the daemon runs as uid %u", ruid);
        create_as(UID_A, "u1", IPCB_KIND_SHM, 0640);
        as_manage(UID_A, true, "u1", IPCB_KIND_SHM, 3, GID_SHARED, 0);
        expect(UID_B, true, "u1", IPCB_KIND_SHM, 0, -EACCES);
        expect(UID_C, false, "u1", IPCB_KIND_SHM, -EACCES, -EACCES);
        expect(0, false, "u1", IPCB_KIND_SHM, 0, 0);
        create_as(UID_C, "s3", IPCB_KIND_SEM, 0666);
        expect(UID_B, false, "s3", IPCB_KIND_SEM, 0, 0);
        job reg = { .name = "u-reg", .mode = 0604 };
        RUN_AS(UID_B, false, register_pattern, &reg);
        expect(UID_C, false, "u-reg", IPCB_KIND_SHM, 0, -EACCES);
        remove_root("u1", IPCB_KIND_SHM);
        remove_root("s3", IPCB_KIND_SEM);
        remove_root("u-reg", IPCB_KIND_SHM);
}

/* ---- freeze ---- */

static int freeze_by_writer(void *arg) {
        (void)arg;
        ipcb_client *c;
        ipcb_shm *s, *t = NULL;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        unsigned seals = 0;
        int r;

        CHILD_CHECK(c_connect(&c) == 0, "connect");
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        o.mode = 0666;
        o.flags = IPCB_SHM_PERSISTENT;
        CHILD_CHECK(ipcb_shm_create(c, "frz", 8192, &o, &s) == 0, "create");
        for (size_t i = 0; i < 8192; i++)
                ((uint8_t *)ipcb_shm_data(s))[i] = pat(i);
        /* Our writable mapping exists: F_SEAL_FUTURE_WRITE. */
        r = ipcb_shm_freeze(c, "frz", &seals);
        CHILD_CHECK(r == 0, "freeze: %s", ipcb_strerror(r));
        CHILD_CHECK(seals & F_SEAL_FUTURE_WRITE, "seals 0x%x", seals);
        CHILD_CHECK(ipcb_stat(c, IPCB_KIND_SHM, "frz", &info) == 0, "stat");
        CHILD_CHECK(info.seals & F_SEAL_FUTURE_WRITE, "stat seals 0x%x", info.seals);
        CHILD_CHECK(info.seals & F_SEAL_GROW, "stat seals 0x%x", info.seals);
        r = ipcb_shm_open(c, "frz", IPCB_READ_WRITE, &t);
        CHILD_CHECK(r == -EROFS, "RW open after freeze: %s", ipcb_strerror(r));
        /* No new write access through the handle we hold either. */
        int fd = ipcb_shm_fd(s);
        CHILD_CHECK(write(fd, "x", 1) < 0, "write after freeze");
        void *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHILD_CHECK(m == MAP_FAILED, "new writable mapping after freeze");
        ipcb_shm_close(s);
        /* With no writable mapping left, a second freeze gets F_SEAL_WRITE. */
        r = ipcb_shm_freeze(c, "frz", &seals);
        CHILD_CHECK(r == 0 && (seals & F_SEAL_WRITE), "refreeze: %s seals 0x%x", ipcb_strerror(r),
                    seals);
        CHILD_CHECK(ipcb_shm_open(c, "frz", IPCB_READ_ONLY, &t) == 0, "RO open");
        CHILD_CHECK(((uint8_t *)ipcb_shm_data(t))[100] == pat(100), "contents");
        ipcb_shm_close(t);
        ipcb_disconnect(c);
        return 0;
}

typedef struct list_find {
        const char *name;
        unsigned seals;
        bool found;
} list_find;

static int find_cb(const ipcb_object_info *i, void *ud) {
        list_find *f = ud;
        if (strcmp(i->name, f->name) == 0) {
                f->found = true;
                f->seals = i->seals;
        }
        return 0;
}

ACCESS_TEST(publish, freeze) {
        SKIP_UNLESS_ROOT();
        start(0, NULL);
        RUN_AS(UID_A, false, freeze_by_writer, NULL);
        as_manage(UID_B, false, "frz", IPCB_KIND_SHM, 4, 0, -EPERM);
        expect(UID_B, false, "frz", IPCB_KIND_SHM, 0, -EROFS);
        expect(0, false, "frz", IPCB_KIND_SHM, 0, -EROFS); /* root too */
        ipcb_client *c;
        list_find f = { .name = "frz" };
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        cr_assert_eq(ipcb_list(c, 0, find_cb, &f), 0);
        ipcb_disconnect(c);
        cr_assert(f.found && (f.seals & F_SEAL_WRITE), "list shows seals 0x%x", f.seals);
        remove_root("frz", IPCB_KIND_SHM);
}

/* ---- register ---- */

static bool readers_gone(void *arg) {
        struct pollfd p = { .fd = *(int *)arg, .events = POLLOUT };
        return poll(&p, 1, 0) == 1 && (p.revents & POLLERR);
}

static int register_refusals(void *arg) {
        (void)arg;
        ipcb_client *c;
        ipcb_shm *s = NULL;
        int p[2], sv[2], fd, r;
        char tmpl[] = "/tmp/ipcbreg.XXXXXX";

        CHILD_CHECK(c_connect(&c) == 0, "connect");
        /* A pipe: refused, and the broker closed its copy. */
        CHILD_CHECK(pipe2(p, O_CLOEXEC) == 0, "pipe");
        r = ipcb_shm_register(c, "bad", p[0], NULL, &s);
        CHILD_CHECK(r == -EBADFD, "pipe: %s", ipcb_strerror(r));
        close(p[0]);
        CHILD_CHECK(wait_until(readers_gone, &p[1], 3000), "the broker kept the pipe");
        close(p[1]);
        /* A regular file. */
        fd = mkstemp(tmpl);
        CHILD_CHECK(fd >= 0, "mkstemp");
        unlink(tmpl);
        CHILD_CHECK(ftruncate(fd, 4096) == 0, "ftruncate");
        r = ipcb_shm_register(c, "bad", fd, NULL, &s);
        CHILD_CHECK(r == -EBADFD, "regular file: %s", ipcb_strerror(r));
        close(fd);
        /* A socket. */
        CHILD_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
        r = ipcb_shm_register(c, "bad", sv[0], NULL, &s);
        CHILD_CHECK(r == -EBADFD, "socket: %s", ipcb_strerror(r));
        close(sv[0]);
        close(sv[1]);
        /* A memfd without seals, and one that cannot be sealed at all. */
        fd = memfd_create("unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        CHILD_CHECK(fd >= 0 && ftruncate(fd, 4096) == 0, "memfd");
        r = ipcb_shm_register(c, "bad", fd, NULL, &s);
        CHILD_CHECK(r == -EBADFD, "unsealed memfd: %s", ipcb_strerror(r));
        /* Grow-sealed but not shrink-sealed: still refused. */
        CHILD_CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW) == 0, "seal grow");
        r = ipcb_shm_register(c, "bad", fd, NULL, &s);
        CHILD_CHECK(r == -EBADFD, "grow-only memfd: %s", ipcb_strerror(r));
        close(fd);
        fd = memfd_create("nosealing", MFD_CLOEXEC);
        CHILD_CHECK(fd >= 0 && ftruncate(fd, 4096) == 0, "memfd");
        r = ipcb_shm_register(c, "bad", fd, NULL, &s);
        CHILD_CHECK(r == -EBADFD, "memfd without sealing: %s", ipcb_strerror(r));
        close(fd);
        /* Sealed but empty: the size comes from fstat. */
        fd = memfd_create("empty", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        CHILD_CHECK(fd >= 0 && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0, "memfd");
        r = ipcb_shm_register(c, "bad", fd, NULL, &s);
        CHILD_CHECK(r == -EINVAL, "empty memfd: %s", ipcb_strerror(r));
        close(fd);
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        CHILD_CHECK(ipcb_stat(c, IPCB_KIND_SHM, "bad", &info) == -ENOENT, "nothing published");
        /* A good one; the name is then taken. */
        fd = memfd_create("good", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        CHILD_CHECK(fd >= 0 && ftruncate(fd, 8192) == 0, "memfd");
        CHILD_CHECK(pwrite(fd, "hello", 5, 0) == 5, "pwrite");
        CHILD_CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0, "seal");
        r = ipcb_shm_register(c, "good", fd, NULL, &s);
        CHILD_CHECK(r == 0, "register: %s", ipcb_strerror(r));
        CHILD_CHECK(ipcb_shm_access(s) == IPCB_READ_WRITE, "growable, unsealed: RW handle");
        CHILD_CHECK(memcmp(ipcb_shm_data(s), "hello", 5) == 0, "contents");
        CHILD_CHECK(ipcb_stat(c, IPCB_KIND_SHM, "good", &info) == 0, "stat");
        CHILD_CHECK(info.size == 8192 && (info.seals & F_SEAL_SHRINK) &&
                            (info.flags & IPCB_SHM_GROWABLE) && info.uid == getuid(),
                    "stat: size %llu seals 0x%x flags 0x%x", (unsigned long long)info.size,
                    info.seals, info.flags);
        ipcb_shm *s2 = NULL;
        r = ipcb_shm_register(c, "good", fd, NULL, &s2);
        CHILD_CHECK(r == -EEXIST, "second register: %s", ipcb_strerror(r));
        /* Transient: gone with our handle. */
        ipcb_shm_close(s);
        ipcb_sync(c);
        CHILD_CHECK(ipcb_stat(c, IPCB_KIND_SHM, "good", &info) == -ENOENT, "transient");
        /* Write-sealed: the handle is read-only and RW opens fail. */
        CHILD_CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW) == 0, "seal write");
        r = ipcb_shm_register(c, "sealed", fd, NULL, &s);
        CHILD_CHECK(r == 0 && ipcb_shm_access(s) == IPCB_READ_ONLY, "sealed: %s", ipcb_strerror(r));
        r = ipcb_shm_open(c, "sealed", IPCB_READ_WRITE, &s2);
        CHILD_CHECK(r == -EROFS, "RW open of write-sealed: %s", ipcb_strerror(r));
        ipcb_shm_close(s);
        close(fd);
        ipcb_disconnect(c);
        return 0;
}

ACCESS_TEST(publish, register_refusals_and_success) {
        SKIP_UNLESS_ROOT();
        start(0, NULL);
        RUN_AS(UID_A, false, register_refusals, NULL);
}

ACCESS_TEST(publish, registered_is_shared_live) {
        SKIP_UNLESS_ROOT();
        start(0, NULL);
        job reg = { .name = "pubreg", .mode = 0640 };
        RUN_AS(UID_A, false, register_pattern, &reg);
        as_manage(UID_A, false, "pubreg", IPCB_KIND_SHM, 3, GID_SHARED, -EPERM); /* not in it */
        as_manage(UID_A, true, "pubreg", IPCB_KIND_SHM, 3, GID_SHARED, 0);
        expect(UID_B, true, "pubreg", IPCB_KIND_SHM, 0, -EACCES);
        expect(UID_C, false, "pubreg", IPCB_KIND_SHM, -EACCES, -EACCES);
        as_manage(UID_A, false, "pubreg", IPCB_KIND_SHM, 0, 0, 0);
}

static int anon_memfd(void *arg) {
        (void)arg;
        ipcb_client *c;
        unsigned seals = 0;
        struct stat st;
        int fd = -1, r;

        CHILD_CHECK(c_connect(&c) == 0, "connect");
        r = ipcb_memfd_sealed(c, 1 << 20, F_SEAL_SHRINK | F_SEAL_GROW, &fd, &seals);
        CHILD_CHECK(r == 0, "memfd: %s", ipcb_strerror(r));
        CHILD_CHECK(fstat(fd, &st) == 0 && st.st_size == 1 << 20, "size");
        int k = fcntl(fd, F_GET_SEALS);
        CHILD_CHECK(k >= 0 && (k & F_SEAL_SHRINK) && (k & F_SEAL_GROW) && (unsigned)k == seals,
                    "seals 0x%x / 0x%x", k, seals);
        CHILD_CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC), "cloexec");
        CHILD_CHECK(ftruncate(fd, 1 << 21) < 0 && ftruncate(fd, 4096) < 0, "size is sealed");
        CHILD_CHECK(pwrite(fd, "abc", 3, 100) == 3, "writable");
        close(fd);
        r = ipcb_memfd_sealed(c, 4096, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL,
                              &fd, &seals);
        CHILD_CHECK(r == 0 && (seals & F_SEAL_WRITE) && (seals & F_SEAL_SEAL), "write-sealed");
        CHILD_CHECK(pwrite(fd, "abc", 3, 0) < 0, "write-sealed memfd is writable");
        close(fd);
        CHILD_CHECK(ipcb_memfd_sealed(c, 0, 0, &fd, NULL) == -EINVAL, "size 0");
        CHILD_CHECK(ipcb_memfd_sealed(c, 4096, 0x100, &fd, NULL) == -EINVAL, "bad seal");
        CHILD_CHECK(ipcb_memfd_sealed(c, (size_t)1 << 40, 0, &fd, NULL) == -EFBIG, "too big");
        ipcb_disconnect(c);
        return 0;
}

ACCESS_TEST(publish, anonymous_sealed_memfd) {
        SKIP_UNLESS_ROOT();
        start(0, NULL);
        RUN_AS(UID_C, false, anon_memfd, NULL);
}

/* ---- the CLI ---- */

static int ctl(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int ctl(char *out, size_t cap, const char *fmt, ...) {
        char cmd[1024], args[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(args, sizeof(args), fmt, ap);
        va_end(ap);
        snprintf(cmd, sizeof(cmd), "%s --socket %s %s 2>&1", IPCBROKERCTL_PATH, d.sock, args);
        FILE *p = popen(cmd, "r");
        cr_assert_not_null(p);
        size_t n = fread(out, 1, cap - 1, p);
        out[n] = '\0';
        int st = pclose(p);
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

ACCESS_TEST(publish, ctl_chmod_chown_freeze_register_quota) {
        char out[8192], path[] = "/tmp/ipcbctl.XXXXXX";
        SKIP_UNLESS_ROOT();
        start(0, NULL);
        int fd = mkstemp(path);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, "published bytes\n", 16), 16);
        close(fd);
        cr_assert_eq(ctl(out, sizeof(out), "register %s doc --mode 0640", path), 0, "%s", out);
        unlink(path);
        cr_assert_eq(ctl(out, sizeof(out), "cat doc"), 0);
        cr_assert_str_eq(out, "published bytes\n");
        cr_assert_eq(ctl(out, sizeof(out), "stat doc"), 0);
        cr_assert(strstr(out, "mode: 0640") && strstr(out, "seals: shrink,grow,write"), "%s", out);
        cr_assert_eq(ctl(out, sizeof(out), "chmod doc 0644"), 0, "%s", out);
        cr_assert_eq(ctl(out, sizeof(out), "chown doc %u:%u", UID_A, GID_SHARED), 0, "%s", out);
        cr_assert_eq(ctl(out, sizeof(out), "stat doc --json"), 0);
        char want[128];
        snprintf(want, sizeof(want), "\"uid\":%u,\"gid\":%u,\"mode\":420", UID_A, GID_SHARED);
        cr_assert(strstr(out, want), "%s", out);
        cr_assert_eq(ctl(out, sizeof(out), "create plain 4096 --mode 0600"), 0, "%s", out);
        cr_assert_eq(ctl(out, sizeof(out), "freeze plain"), 0, "%s", out);
        cr_assert(strstr(out, "write"), "%s", out);
        cr_assert_eq(ctl(out, sizeof(out), "list"), 0);
        cr_assert(strstr(out, "MODE") && strstr(out, "SEALS") && strstr(out, "0644") &&
                  strstr(out, "shrink,grow,write"), "%s", out);
        cr_assert_eq(ctl(out, sizeof(out), "quota"), 0, "%s", out);
        cr_assert(strstr(out, "(exempt)"), "root's row: %s", out);
        cr_assert_eq(ctl(out, sizeof(out), "quota --uid 0 --json"), 0, "%s", out);
        cr_assert(strstr(out, "\"uid\":0,\"exempt\":true,\"objects\":2"), "%s", out);
        /* Refusals: one line, exit 1. */
        cr_assert_eq(ctl(out, sizeof(out), "register /dev/null empty"), 1, "%s", out);
        cr_assert_eq(ctl(out, sizeof(out), "chmod missing 0600"), 1, "%s", out);
        cr_assert_eq(ctl(out, sizeof(out), "chmod doc 999"), 2, "%s", out);
        cr_assert_eq(ctl(out, sizeof(out), "rm doc"), 0, "%s", out);
        cr_assert_eq(ctl(out, sizeof(out), "rm plain"), 0, "%s", out);
}
