/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_preload_posix.c: unchanged POSIX programs (preload/testprogs/
 * posix_prog.c: libc only) under ipcbroker-run against a real ipcbrokerd:
 * shm_open/shm_unlink and sem_open/sem_close/sem_unlink across processes
 * and uids (root and nobody), the name mapping, growable segments created
 * empty, transient mode (crash cleanup), the fallback policy, exclusions,
 * fork, exec and threads.  Every test checks that the objects are the
 * broker's (ipcb_stat) and that nothing new appears in /dev/shm or in the
 * kernel's SysV tables. */
#include "test_preload.h"

#include "ipcbroker.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

static ipcbd d;
static ipcb_client *c;
static char *kernel_before;

static void setup(void) {
        fixture_begin(&d, NULL);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        kernel_before = kernel_ipc_snapshot();
        umask(0); /* the programs' modes as given */
}

static void release(void) {
        if (kernel_before)
                kernel_ipc_assert_nothing_new(kernel_before, kernel_ipc_snapshot());
        kernel_before = NULL;
        ipcb_disconnect(c);
        c = NULL;
}

static void teardown(void) {
        release();
        fixture_cleanup(&d);
}

TestSuite(preload_posix, .init = setup, .fini = teardown, .timeout = 90);
#define CHECKED_TEST(name) FIXTURE_TEST(preload_posix, name, &d, release)

/* A name unique to this test process. */
static const char *uname_(const char *tag) {
        static char buf[8][128];
        static unsigned i;
        char *b = buf[i++ % 8];
        snprintf(b, sizeof(buf[0]), "/%s-%d", tag, (int)getpid());
        return b;
}

/* The broker name of POSIX name n (leading '/') of kind tag. */
static const char *bname(const char *tag, const char *n) {
        static char buf[4][300];
        static unsigned i;
        char *b = buf[i++ % 4];
        snprintf(b, sizeof(buf[0]), "preload.%s.%s", tag, n + 1);
        return b;
}

static int run(uid_t uid, const char *const *opts, const char *const *argv) {
        return preload_run(d.sock, uid, opts, argv);
}

CHECKED_TEST(segment_across_uids) {
        SKIP_UNLESS_ROOT_UIDS();
        const char *n = uname_("seg");
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        cr_assert_eq(run(0, NULL, ARGV(IPCB_POSIX_PROG, "create", n, "10000", "hello", "644")), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, bname("shm", n), &info), 0,
                     "the segment is the broker's");
        cr_expect_eq(info.size, 10000);
        cr_expect_eq(info.uid, 0);
        cr_expect_eq(info.mode, 0644);
        cr_expect_eq(info.flags & (IPCB_SHM_PERSISTENT | IPCB_SHM_GROWABLE),
                     IPCB_SHM_PERSISTENT | IPCB_SHM_GROWABLE);
        cr_expect_eq(info.handles, 0, "no handle kept: the segment is persistent");
        /* nobody reads it, cannot write it (mode 0644), cannot unlink it */
        cr_assert_eq(run(NOBODY, NULL, ARGV(IPCB_POSIX_PROG, "read", n, "hello")), 0);
        cr_assert_eq(run(NOBODY, NULL, ARGV(IPCB_POSIX_PROG, "open-fails", n, "2", "13")), 0,
                     "O_RDWR by another uid: EACCES");
        cr_assert_eq(run(0, NULL, ARGV(IPCB_POSIX_PROG, "read", n, "hello")), 0);
        cr_assert_eq(run(0, NULL, ARGV(IPCB_POSIX_PROG, "unlink", n)), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, bname("shm", n), &info), -ENOENT);
}

CHECKED_TEST(name_mapping_is_escaped_and_reversible) {
        char n[128], want[200];
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        /* any bytes but '/' (and leading slashes), escaped as +XX */
        snprintf(n, sizeof(n), "//sp ace+plus%%\xc3\xa9-%d", (int)getpid());
        snprintf(want, sizeof(want), "preload.shm.sp+20ace+2Bplus+25+C3+A9-%d", (int)getpid());
        cr_assert_eq(run(0, NULL, ARGV(IPCB_POSIX_PROG, "create", n, "100", "x")), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, want, &info), 0, "%s", want);
        cr_assert_eq(run(0, NULL, ARGV(IPCB_POSIX_PROG, "unlink", n + 1)), 0,
                     "the same name without its leading slashes");
        /* another prefix */
        cr_assert_eq(run(0, ARGV("--prefix", "app:"),
                         ARGV(IPCB_POSIX_PROG, "create", "/pfx", "100", "x")), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "app:shm.pfx", &info), 0);
        cr_assert_eq(ipcb_unlink(c, "app:shm.pfx"), 0);
        /* a name too long once escaped */
        char longn[260];
        memset(longn, '%', 200);
        longn[0] = '/';
        longn[200] = '\0';
        cr_assert_eq(run(0, NULL, ARGV(IPCB_POSIX_PROG, "open-fails", longn, "66", "36")), 0,
                     "ENAMETOOLONG");
}

CHECKED_TEST(posix_semantics) {
        SKIP_UNLESS_ROOT_UIDS();
        cr_assert_eq(run(0, NULL, ARGV(IPCB_POSIX_PROG, "semantics", uname_("sem-r"))), 0);
        cr_assert_eq(run(NOBODY, NULL, ARGV(IPCB_POSIX_PROG, "semantics", uname_("sem-n"))), 0);
}

CHECKED_TEST(semaphore_across_uids) {
        SKIP_UNLESS_ROOT_UIDS();
        const char *n = uname_("sem");
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        pid_t waiter;

        cr_assert_eq(run(0, NULL, ARGV(IPCB_POSIX_PROG, "sem-create", n, "0")), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, bname("sem", n), &info), 0);
        cr_expect_eq(info.size, 4096);
        cr_expect_eq(info.mode, 0666);
        /* nobody waits (glibc's sem_timedwait on the broker's page) ... */
        waiter = preload_spawn(d.sock, NOBODY, NULL, ARGV(IPCB_POSIX_PROG, "sem-wait", n, "20"),
                               NULL);
        for (int i = 0; i < 1000; i++) { /* until the waiter has it open */
                cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, bname("sem", n), &info), 0);
                if (info.handles > 0)
                        break;
                usleep(10000);
        }
        usleep(50 * 1000);
        cr_assert_eq(waitpid(waiter, NULL, WNOHANG), 0, "the waiter waits");
        /* ... root posts */
        cr_assert_eq(run(0, NULL, ARGV(IPCB_POSIX_PROG, "sem-post", n)), 0);
        cr_assert_eq(preload_wait(waiter, 20000), 0);
        cr_assert_eq(run(NOBODY, NULL, ARGV(IPCB_POSIX_PROG, "sem-value", n, "0")), 0);
        cr_assert_eq(run(NOBODY, NULL, ARGV(IPCB_POSIX_PROG, "sem-post", n)), 0);
        cr_assert_eq(run(0, NULL, ARGV(IPCB_POSIX_PROG, "sem-value", n, "1")), 0);
        cr_assert_eq(run(0, NULL, ARGV(IPCB_POSIX_PROG, "sem-unlink", n)), 0);
}

/* A hostile uid: cannot remove another uid's objects; a name it squats
 * with a segment that is not a semaphore page is refused, not used. */
CHECKED_TEST(hostile_uid) {
        SKIP_UNLESS_ROOT_UIDS();
        const char *n = uname_("host");
        ipcb_client *nc;
        ipcb_shm *squat;
        pid_t pid;
        int status;

        cr_assert_eq(run(0, NULL, ARGV(IPCB_POSIX_PROG, "create", n, "100", "x", "666")), 0);
        cr_assert_eq(run(0, NULL, ARGV(IPCB_POSIX_PROG, "sem-create", n, "1")), 0);
        cr_assert_eq(run(NOBODY, NULL, ARGV(IPCB_POSIX_PROG, "unlink-fails", n, "13")), 0,
                     "EACCES: not the owner");
        cr_assert_eq(run(0, NULL, ARGV(IPCB_POSIX_PROG, "unlink", n)), 0);
        cr_assert_eq(run(0, NULL, ARGV(IPCB_POSIX_PROG, "sem-unlink", n)), 0);
        /* nobody squats the semaphore's broker name with a plain segment */
        pid = test_fork();
        if (pid == 0) {
                ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
                o.mode = 0666;
                o.flags = IPCB_SHM_PERSISTENT;
                if (setresgid(NOBODY, NOBODY, NOBODY) < 0 || setresuid(NOBODY, NOBODY, NOBODY) < 0 ||
                    ipcb_connect(d.sock, &nc) < 0 || ipcb_shm_create(nc, bname("sem", n), 4096, &o, &squat) < 0)
                        _exit(1);
                ipcb_shm_close(squat);
                ipcb_disconnect(nc);
                _exit(0);
        }
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert_eq(status, 0);
        cr_assert_eq(run(0, NULL, ARGV(IPCB_POSIX_PROG, "sem-open-fails", n, "22")), 0,
                     "EINVAL: not a semaphore page");
        cr_assert_eq(ipcb_unlink(c, bname("sem", n)), 0);
}

CHECKED_TEST(fork_child_inherits_and_reconnects) {
        cr_assert_eq(run(0, NULL, ARGV(IPCB_POSIX_PROG, "fork", uname_("fork"))), 0);
}

CHECKED_TEST(semaphore_without_memfd_create) {
        cr_assert_eq(run(0, NULL, ARGV(IPCB_POSIX_PROG, "sem-nomemfd", uname_("nomemfd"))), 0);
}

CHECKED_TEST(threads) {
        cr_assert_eq(run(0, NULL, ARGV(IPCB_POSIX_PROG, "threads", uname_("thr"))), 0);
}

static int count_cb(const ipcb_object_info *info, void *arg) {
        (void)info;
        ++*(int *)arg;
        return 0;
}

CHECKED_TEST(transient_mode_cleans_up_after_kill) {
        const char *n = uname_("crash");
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        int count = 0;

        cr_assert_eq(run(0, ARGV("--transient"), ARGV(IPCB_POSIX_PROG, "crash", n)),
                     128 + SIGKILL);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, bname("shm", n), &info), -ENOENT);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, bname("sem", n), &info), -ENOENT);
        cr_assert_eq(ipcb_list(c, 0, count_cb, &count), 0);
        cr_assert_eq(count, 0, "nothing left in the broker");
        /* without --transient they stay (POSIX: until unlinked) */
        cr_assert_eq(run(0, NULL, ARGV(IPCB_POSIX_PROG, "crash", n)), 128 + SIGKILL);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, bname("shm", n), &info), 0);
        cr_assert_eq(info.size, 65536);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, bname("sem", n), &info), 0);
        cr_assert_eq(ipcb_unlink(c, bname("shm", n)), 0);
        cr_assert_eq(ipcb_unlink(c, bname("sem", n)), 0);
}

CHECKED_TEST(transient_mode_lives_while_a_holder_does) {
        const char *n = uname_("hold");
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        pid_t waiter;

        cr_assert_eq(run(0, ARGV("--transient"), ARGV(IPCB_POSIX_PROG, "sem-create", n, "0")),
                     0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, bname("sem", n), &info), -ENOENT,
                     "closed by its only holder: gone");
        /* a transient semaphore held by a waiter stays until the waiter is done */
        cr_assert_eq(run(0, NULL, ARGV(IPCB_POSIX_PROG, "sem-create", n, "0")), 0);
        waiter = preload_spawn(d.sock, 0, ARGV("--transient"),
                               ARGV(IPCB_POSIX_PROG, "sem-wait", n, "20"), NULL);
        for (int i = 0; i < 1000; i++) { /* until the waiter has it open */
                cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, bname("sem", n), &info), 0);
                if (info.handles > 0)
                        break;
                usleep(10000);
        }
        cr_assert_gt(info.handles, 0);
        usleep(50 * 1000);
        cr_assert_eq(ipcb_unlink(c, bname("sem", n)), 0, "persistent one removed by name");
        cr_assert_eq(preload_wait(waiter, 300), -1, "the waiter was still waiting");
}

CHECKED_TEST(fallback_fail_and_kernel) {
        char nosock[160];
        const char *n = uname_("fb");
        int r;

        snprintf(nosock, sizeof(nosock), "%s/none.sock", d.dir);
        r = preload_run(nosock, 0, NULL, ARGV(IPCB_POSIX_PROG, "fails", n, "107"));
        cr_assert_eq(r, 0, "no broker, fallback fail: ENOTCONN");
        r = preload_run(nosock, 0, ARGV("--fallback", "fail"),
                        ARGV(IPCB_POSIX_PROG, "fails", n, "107"));
        cr_assert_eq(r, 0);
        /* the kernel's own IPC (the program removes it again) */
        r = preload_run(nosock, 0, ARGV("--fallback", "kernel"),
                        ARGV(IPCB_POSIX_PROG, "kernel", n));
        cr_assert_eq(r, 0, "no broker, fallback kernel: /dev/shm");
}

CHECKED_TEST(excluded_names_pass_through) {
        const char *n = uname_("excl");
        int count = 0;

        cr_assert_eq(run(0, ARGV("--exclude", "/nomatch", "-x", "/excl-*"),
                         ARGV(IPCB_POSIX_PROG, "kernel", n)), 0);
        cr_assert_eq(ipcb_list(c, 0, count_cb, &count), 0);
        cr_assert_eq(count, 0);
}

CHECKED_TEST(exec_carries_the_shim_or_not) {
        const char *n = uname_("exec");
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        cr_assert_eq(run(0, NULL, ARGV(IPCB_POSIX_PROG, "exec", IPCB_POSIX_PROG, "create", n,
                                       "100", "x")), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, bname("shm", n), &info), 0,
                     "the exec'd program is brokered too");
        cr_assert_eq(ipcb_unlink(c, bname("shm", n)), 0);
        cr_assert_eq(run(0, ARGV("--no-inherit"),
                         ARGV(IPCB_POSIX_PROG, "exec", IPCB_POSIX_PROG, "kernel", n)), 0,
                     "--no-inherit: the exec'd program uses the kernel");
}

CHECKED_TEST(launcher_finds_its_shim) {
        pid_t pid = test_fork();

        if (pid == 0) {
                /* no --lib: the shim next to the launcher (in a sanitizer
                 * build it then loads the runtimes itself, not first) */
                setenv("ASAN_OPTIONS", "detect_leaks=0:verify_asan_link_order=0", 1);
                execl(IPCB_PRELOAD_RUN, IPCB_PRELOAD_RUN, "--socket", d.sock, "--",
                      "/bin/sh", "-c", "case \"$LD_PRELOAD\" in */libipcbroker-preload.so) "
                      "exit 0;; esac; exit 1", (char *)NULL);
                _exit(121);
        }
        cr_assert_eq(preload_wait(pid, 10000), 0);
        cr_assert_eq(run(0, ARGV("--fallback", "other"), ARGV("/bin/true")), 2);
}

/* The shim exports the interposed calls and nothing else. */
CHECKED_TEST(exports_only_the_interposed_calls) {
        void *h = dlopen(IPCB_PRELOAD_LIB, RTLD_NOW | RTLD_LOCAL);

        cr_assert_not_null(h, "%s", dlerror());
        cr_expect_not_null(dlsym(h, "shm_open"));
        cr_expect_not_null(dlsym(h, "sem_close"));
        cr_expect_null(dlsym(h, "ipcb_connect"));
        cr_expect_null(dlsym(h, "shim_cfg"));
        cr_expect_null(dlsym(h, "shim_route_call"));
        dlclose(h);
}

/* The broker side: a growable segment may be created empty. */
CHECKED_TEST(growable_segment_created_empty) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_shm *s, *t;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        const char *n = "empty-growable";

        cr_assert_eq(ipcb_shm_create(c, n, 0, NULL, &s), -EINVAL, "not growable: size > 0");
        o.flags = IPCB_SHM_GROWABLE;
        cr_assert_eq(ipcb_shm_create(c, n, 0, &o, &s), 0);
        cr_assert_null(ipcb_shm_data(s));
        cr_assert_eq(ipcb_shm_size(s), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, n, &info), 0);
        cr_assert_eq(info.size, 0);
        cr_assert_eq(ipcb_shm_open(c, n, IPCB_READ_ONLY, &t), 0, "an empty one opens");
        cr_assert_null(ipcb_shm_data(t));
        cr_assert_eq(ipcb_shm_close(t), 0);
        cr_assert_eq(ftruncate(ipcb_shm_fd(s), 12345), 0, "grows");
        cr_assert_eq(ftruncate(ipcb_shm_fd(s), 100), -1, "does not shrink");
        cr_assert_eq(errno, EPERM);
        cr_assert_eq(ipcb_shm_open(c, n, IPCB_READ_WRITE, &t), 0);
        cr_assert_eq(ipcb_shm_size(t), 12345);
        cr_assert_not_null(ipcb_shm_data(t));
        ((char *)ipcb_shm_data(t))[12344] = 7;
        cr_assert_eq(ipcb_shm_close(t), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
}
