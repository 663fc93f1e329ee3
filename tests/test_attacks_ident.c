/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_attacks_ident.c: attacks on identity.  A client must never talk to
 * an impostor broker; the daemon must not serve from a directory others can
 * write, nor chmod what a swapped-in symlink points at; a peer in more
 * supplementary groups than fit a small buffer must not fall through to the
 * "other" class; and registering must not give anyone a second name for an
 * inode the broker already serves.  Clients run as uids 61001-61003
 * (multiuid.h); skipped when the tests do not run as root. */
#include "harness.h"
#include "fakemgr.h"
#include "multiuid.h"

#include "ipcbroker.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static ipcbd d;
static int fds_at_start;

static void setup(void) {
        signal(SIGPIPE, SIG_IGN);
        fds_at_start = self_fd_count();
}

static void teardown(void) {
        fixture_cleanup(&d);
}

TestSuite(ident, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(sockdir, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(groups, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(alias, .init = setup, .fini = teardown, .timeout = 60);

static void start(uid_t daemon_uid) {
        if (daemon_uid == 0)
                fixture_begin(&d, NULL);
        else
                fixture_begin_as(&d, daemon_uid, daemon_uid, NULL);
}

static int collect_name(const ipcb_object_info *i, void *ud) {
        ipcb_client *c = ud;
        if (i->kind == IPCB_KIND_SEM)
                ipcb_sem_unlink(c, i->name);
        else
                ipcb_unlink(c, i->name);
        return 0;
}

/* In the test body: remove what is left, then the daemon's fds and ours
 * must be back where they started, and the daemon must exit cleanly. */
static void end_checks(void) {
        ipcb_client *c;

        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        cr_assert_eq(ipcb_list(c, 0, collect_name, c), 0);
        ipcb_disconnect(c);
        fixture_end(&d);
}

static void sleep_ms(int ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static int wait_status(pid_t pid) {
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A directory /tmp/ipcbi.XXXXXX owned by uid:uid with `mode`. */
static void mkdir_owned(char *dir, size_t size, uid_t uid, mode_t mode) {
        snprintf(dir, size, "/tmp/ipcbi.XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        cr_assert_eq(chown(dir, uid, uid), 0);
        cr_assert_eq(chmod(dir, mode), 0);
}

/* ---- a fake broker ---- */

/* A fake broker: a process of uid `uid` listening on `path`, which accepts
 * one connection and reports (one byte on `report`) whether a datagram
 * arrived on it: 'D' a datagram, 'E' end of file without one, 'T' nothing
 * in time, 'X' a failure of its own. */
typedef struct fake {
        pid_t pid;
        int report; /* read end */
} fake;

static void fake_start(fake *f, uid_t uid, const char *path) {
        int ready[2], report[2];
        char c;

        cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);
        cr_assert_eq(pipe2(report, O_CLOEXEC), 0);
        f->pid = test_fork();
        if (f->pid == 0) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                char out = 'X', buf[4096];
                int l, fd;

                close(ready[0]);
                close(report[0]);
                if (drop_to(uid, uid, NULL, 0) < 0)
                        _exit(2);
                snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
                umask(0); /* every uid may connect, as to a real broker */
                l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
                if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 8) < 0)
                        _exit(3);
                if (write(ready[1], "r", 1) != 1)
                        _exit(4);
                struct pollfd p = { .fd = l, .events = POLLIN };
                if (poll(&p, 1, 10000) == 1 && (fd = accept4(l, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
                        struct pollfd q = { .fd = fd, .events = POLLIN };
                        if (poll(&q, 1, 3000) != 1)
                                out = 'T';
                        else
                                out = recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0 ? 'D' : 'E';
                        close(fd);
                }
                (void)!write(report[1], &out, 1);
                unlink(path);
                _exit(0);
        }
        close(ready[1]);
        close(report[1]);
        f->report = report[0];
        cr_assert_eq(read(ready[0], &c, 1), 1, "the fake broker did not start");
        close(ready[0]);
}

static char fake_finish(fake *f) {
        char c = '?';

        cr_assert_eq(read(f->report, &c, 1), 1, "no report from the fake broker");
        close(f->report);
        cr_assert_eq(wait_status(f->pid), 0, "fake broker failed");
        return c;
}

typedef struct dial {
        const char *path;
        int want; /* the exact result, or 1: anything but -EKEYREJECTED */
} dial;

static int c_dial(void *arg) {
        dial *x = arg;
        ipcb_client *c = NULL;
        int r;

        setenv("IPCBROKER_TIMEOUT_MS", "2000", 1);
        r = ipcb_connect(x->path, &c);
        if (r == 0)
                ipcb_disconnect(c);
        if (x->want == 1)
                CHILD_CHECK(r != -EKEYREJECTED, "a trusted broker was refused: %s",
                            ipcb_strerror(r));
        else
                CHILD_CHECK(r == x->want, "connect: %d %s", r, ipcb_strerror(r));
        if (r == -EKEYREJECTED)
                CHILD_CHECK(strstr(ipcb_strerror(r), "not a trusted broker"),
                            "unclear message: %s", ipcb_strerror(r));
        return 0;
}

/* A fake broker of uid 61002 in a directory it owns, which others may
 * write (/tmp-like 1777, 0777, or group-writable 0775): 61001's library
 * must hang up before sending anything. */
Test(ident, impostor_in_shared_dir_gets_no_request) {
        static const mode_t modes[] = { 01777, 0777, 0775 };
        char dir[64], path[96];

        SKIP_UNLESS_ROOT();
        for (unsigned i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
                fake f;
                dial x = { .path = path, .want = -EKEYREJECTED };

                mkdir_owned(dir, sizeof(dir), UID_B, modes[i]);
                snprintf(path, sizeof(path), "%s/ipcb.sock", dir);
                fake_start(&f, UID_B, path);
                int st = run_as(UID_A, false, c_dial, &x);
                char got = fake_finish(&f);
                rmdir(dir);
                cr_assert_eq(st, 0, "dir mode %04o: the client did not refuse", modes[i]);
                cr_assert_eq(got, 'E', "dir mode %04o: the impostor got '%c' (D: a request)",
                             modes[i], got);
        }
        cr_assert_eq(self_fd_count(), fds_at_start, "the test leaked fds");
}

/* The rule's other side: a broker of the directory's owner, where nobody
 * else can write, and a broker of the caller's own uid anywhere, are talked
 * to (these fakes get the HELLO, then hang up). */
Test(ident, trusted_fake_brokers_get_the_request) {
        char dir[64], path[96];
        fake f;
        dial x = { .path = path, .want = 1 };

        SKIP_UNLESS_ROOT();
        mkdir_owned(dir, sizeof(dir), UID_B, 0755);
        snprintf(path, sizeof(path), "%s/ipcb.sock", dir);
        fake_start(&f, UID_B, path);
        RUN_AS(UID_A, false, c_dial, &x);
        cr_assert_eq(fake_finish(&f), 'D', "the directory's owner was not asked");
        rmdir(dir);

        mkdir_owned(dir, sizeof(dir), 0, 01777);
        snprintf(path, sizeof(path), "%s/ipcb.sock", dir);
        fake_start(&f, UID_A, path);
        RUN_AS(UID_A, false, c_dial, &x);
        cr_assert_eq(fake_finish(&f), 'D', "a broker of the caller's own uid was not asked");
        rmdir(dir);
        cr_assert_eq(self_fd_count(), fds_at_start, "the test leaked fds");
}

static int c_create(void *arg) {
        ipcb_client *c;
        ipcb_shm *s;
        int r;

        (void)arg;
        r = ipcb_connect(d.sock, &c);
        CHILD_CHECK(r == 0, "connect: %s", ipcb_strerror(r));
        r = ipcb_shm_create(c, "legit", 4096, NULL, &s);
        CHILD_CHECK(r == 0, "create: %s", ipcb_strerror(r));
        ipcb_shm_close(s);
        ipcb_disconnect(c);
        return 0;
}

/* Real brokers: root; the client's own uid; 61010 in its own 0755 directory. */
Test(ident, legit_brokers_are_trusted) {
        static const uid_t daemons[] = { 0, UID_A, UID_D };

        SKIP_UNLESS_ROOT();
        for (unsigned i = 0; i < sizeof(daemons) / sizeof(daemons[0]); i++) {
                start(daemons[i]);
                RUN_AS(UID_A, false, c_create, NULL);
                end_checks();
        }
}

/* ---- the daemon's socket directory ---- */

/* Run the daemon as uid (0: as we are) on sock; up to 5 s for it to exit.
 * Its exit status, or -1 if it kept running (then killed).  Its stderr goes
 * to err (a file). */
static int daemon_run_briefly(uid_t uid, const char *sock, const char *err) {
        pid_t pid = test_fork();
        int st;

        if (pid == 0) {
                int fd = open(err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (fd < 0 || dup2(fd, 2) < 0)
                        _exit(126);
                if (uid != 0 && drop_to(uid, uid, NULL, 0) < 0)
                        _exit(125);
                execl(IPCBROKERD_PATH, IPCBROKERD_PATH, "--socket", sock, (char *)NULL);
                _exit(127);
        }
        for (int waited = 0; waited < 5000; waited += 10) {
                if (waitpid(pid, &st, WNOHANG) == pid)
                        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                sleep_ms(10);
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
}

/* A directory others can write, sticky (1777, like /tmp) or group-writable
 * (0775): anyone who can write it could put their own socket there first,
 * or swap ours.  The daemon refuses to start, and says why. */
Test(sockdir, daemon_refuses_shared_socket_dir) {
        static const struct {
                uid_t uid;
                mode_t mode;
        } cases[] = { { 0, 01777 }, { 0, 0775 }, { 0, 0770 }, { UID_D, 01777 }, { UID_D, 0775 } };
        char dir[64], sock[96], err[96];
        struct stat st;

        SKIP_UNLESS_ROOT();
        snprintf(err, sizeof(err), "/tmp/ipcbi-err.%d", (int)getpid());
        for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                mkdir_owned(dir, sizeof(dir), cases[i].uid, cases[i].mode);
                snprintf(sock, sizeof(sock), "%s/ipcb.sock", dir);
                int k = daemon_run_briefly(cases[i].uid, sock, err);
                bool said = file_contains(err, "writable by others");
                bool made = lstat(sock, &st) == 0;
                unlink(sock);
                rmdir(dir);
                cr_assert_eq(k, 1, "uid %u, mode %04o: the daemon did not refuse (%d)",
                             (unsigned)cases[i].uid, cases[i].mode, k);
                cr_assert(said, "uid %u, mode %04o: no clear log line", (unsigned)cases[i].uid,
                          cases[i].mode);
                cr_assert(!made, "mode %04o: a socket was made", cases[i].mode);
        }
        /* A user's daemon in root's /tmp-like directory is told to use one
         * of its own, not one "only uid 0 can write". */
        char want[64];
        snprintf(want, sizeof(want), "only uid %u can write", (unsigned)UID_D);
        mkdir_owned(dir, sizeof(dir), 0, 01777);
        snprintf(sock, sizeof(sock), "%s/ipcb.sock", dir);
        cr_assert_eq(daemon_run_briefly(UID_D, sock, err), 1);
        rmdir(dir);
        cr_assert(file_contains(err, want), "the refusal does not say \"%s\"", want);
        unlink(err);
        cr_assert_eq(self_fd_count(), fds_at_start, "the test leaked fds");
}

/* A symlink at the socket path before start: refused, its target untouched. */
Test(sockdir, symlink_at_socket_path_is_left_alone) {
        char dir[64], sock[96], victim[96], err[96];
        struct stat st;

        SKIP_UNLESS_ROOT();
        mkdir_owned(dir, sizeof(dir), 0, 0755);
        snprintf(sock, sizeof(sock), "%s/ipcb.sock", dir);
        snprintf(victim, sizeof(victim), "%s/victim", dir);
        snprintf(err, sizeof(err), "%s/err", dir);
        int fd = open(victim, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        close(fd);
        cr_assert_eq(chmod(victim, 0600), 0);
        cr_assert_eq(symlink(victim, sock), 0);
        cr_assert_eq(daemon_run_briefly(0, sock, err), 1);
        cr_assert_eq(stat(victim, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0600, "the symlink's target became %04o",
                     st.st_mode & 07777);
        cr_assert_eq(lstat(sock, &st), 0);
        cr_assert(S_ISLNK(st.st_mode), "the symlink was removed");
        unlink(sock);
        unlink(victim);
        unlink(err);
        rmdir(dir);
        cr_assert_eq(self_fd_count(), fds_at_start, "the test leaked fds");
}

/* The race: the daemon binds; before it can do anything else, the socket is
 * moved away and a symlink to a file put at the path (the daemon is stopped
 * right after bind(2) returns, with ptrace).  Whatever the daemon does to
 * set the socket's mode must not follow that symlink. */
Test(sockdir, symlink_swapped_in_after_bind_is_not_followed) {
        char dir[64], sock[96], moved[112], victim[96];
        struct __ptrace_syscall_info info;
        struct stat st;
        long last_nr = -1;
        bool swapped = false;
        int status, sig = 0, fd;

        SKIP_UNLESS_ROOT();
        mkdir_owned(dir, sizeof(dir), 0, 0755);
        snprintf(sock, sizeof(sock), "%s/ipcb.sock", dir);
        snprintf(moved, sizeof(moved), "%s/moved.sock", dir);
        snprintf(victim, sizeof(victim), "%s/victim", dir);
        fd = open(victim, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        close(fd);
        cr_assert_eq(chmod(victim, 0600), 0);

        pid_t pid = test_fork();
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (null < 0 || dup2(null, 0) < 0 || dup2(null, 2) < 0)
                        _exit(126);
                if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0)
                        _exit(125);
                execl(IPCBROKERD_PATH, IPCBROKERD_PATH, "--socket", sock, (char *)NULL);
                _exit(127);
        }
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFSTOPPED(status), "the daemon did not stop at exec (0x%x)", status);
        cr_assert_eq(ptrace(PTRACE_SETOPTIONS, pid, NULL,
                            (void *)(long)(PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL)), 0);
        while (!swapped) {
                cr_assert_eq(ptrace(PTRACE_SYSCALL, pid, NULL, (void *)(long)sig), 0);
                cr_assert_eq(waitpid(pid, &status, 0), pid);
                cr_assert(WIFSTOPPED(status), "the daemon ended before binding (0x%x)", status);
                sig = 0;
                if (WSTOPSIG(status) != (SIGTRAP | 0x80)) {
                        sig = WSTOPSIG(status) == SIGTRAP ? 0 : WSTOPSIG(status);
                        continue;
                }
                cr_assert_gt(ptrace(PTRACE_GET_SYSCALL_INFO, pid, (void *)sizeof(info), &info), 0);
                if (info.op == PTRACE_SYSCALL_INFO_ENTRY)
                        last_nr = (long)info.entry.nr;
                else if (info.op == PTRACE_SYSCALL_INFO_EXIT && last_nr == SYS_bind &&
                         info.exit.rval == 0 && lstat(sock, &st) == 0 && S_ISSOCK(st.st_mode)) {
                        cr_assert_eq(rename(sock, moved), 0);
                        cr_assert_eq(symlink(victim, sock), 0);
                        swapped = true;
                }
        }
        cr_assert_eq(ptrace(PTRACE_DETACH, pid, NULL, NULL), 0);
        /* Serving (on the moved socket): past whatever follows bind. */
        int k = -1;
        for (int i = 0; i < 500 && k != 0; i++) {
                fd = raw_connect(moved);
                if (fd >= 0) {
                        k = raw_hello(fd);
                        close(fd);
                }
                if (k != 0)
                        sleep_ms(10);
        }
        cr_assert_eq(k, 0, "the daemon does not serve");
        cr_assert_eq(stat(victim, &st), 0);
        mode_t mode = st.st_mode & 07777;
        kill(pid, SIGTERM);
        int ex = wait_status(pid);
        unlink(sock);
        unlink(moved);
        unlink(victim);
        rmdir(dir);
        cr_assert_eq(mode, 0600, "the daemon followed the symlink: its target became %04o", mode);
        cr_assert_eq(ex, 0, "daemon exit %d", ex);
        cr_assert_eq(self_fd_count(), fds_at_start, "the test leaked fds");
}

/* ---- supplementary groups ---- */

/* The kernel keeps supplementary groups sorted: the group that decides is
 * the highest, so that it comes last in what SO_PEERGROUPS reports. */
#define GID_LAST 199999u

typedef struct grp_job {
        unsigned ngroups; /* 62000.. then GID_LAST */
} grp_job;

static int c_many_groups(void *arg) {
        grp_job *j = arg;
        ipcb_client *c;
        ipcb_shm *s = NULL;
        int r;

        r = ipcb_connect(d.sock, &c);
        CHILD_CHECK(r == 0, "connect: %s", ipcb_strerror(r));
        /* Group denied, other allowed: a member is refused. */
        r = ipcb_shm_open(c, "deny-group", IPCB_READ_ONLY, &s);
        CHILD_CHECK(r == -EACCES, "%u groups: open of a group-denied segment: %s", j->ngroups,
                    ipcb_strerror(r));
        /* Group allowed, other denied: a member may. */
        r = ipcb_shm_open(c, "allow-group", IPCB_READ_ONLY, &s);
        CHILD_CHECK(r == 0, "%u groups: open of a group-allowed segment: %s", j->ngroups,
                    ipcb_strerror(r));
        ipcb_shm_close(s);
        /* The owner may give its object to its last group (transient: gone
         * with the handle). */
        r = ipcb_shm_create(c, "mine", 4096, NULL, &s);
        CHILD_CHECK(r == 0, "create: %s", ipcb_strerror(r));
        r = ipcb_chown(c, IPCB_KIND_SHM, "mine", (uid_t)-1, GID_LAST);
        CHILD_CHECK(r == 0, "%u groups: chgrp to the last one: %s", j->ngroups, ipcb_strerror(r));
        ipcb_shm_close(s);
        ipcb_disconnect(c);
        return 0;
}

static int run_with_groups(unsigned n, int (*fn)(void *), void *arg) {
        pid_t pid = test_fork();

        if (pid == 0) {
                gid_t *g = calloc(n, sizeof(gid_t));
                if (!g)
                        _exit(2);
                for (unsigned i = 0; i + 1 < n; i++)
                        g[i] = 62000 + i;
                g[n - 1] = GID_LAST;
                if (drop_to(UID_A, UID_A, g, n) < 0) {
                        fprintf(stderr, "setgroups(%u): %s\n", n, strerror(errno));
                        _exit(2);
                }
                free(g);
                fflush(NULL);
                _exit(fn(arg));
        }
        return wait_status(pid);
}

static void mkseg_group(ipcb_client *c, const char *name, unsigned mode) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_shm *s;

        o.mode = mode;
        o.flags = IPCB_SHM_PERSISTENT;
        cr_assert_eq(ipcb_shm_create(c, name, 4096, &o, &s), 0);
        ipcb_shm_close(s);
        cr_assert_eq(ipcb_chown(c, IPCB_KIND_SHM, name, (uid_t)-1, GID_LAST), 0);
}

/* Groups beyond the 64th, and beyond the 256th (SO_PEERGROUPS then says
 * ERANGE with the size it needs), up to NGROUPS_MAX: all count. */
Test(groups, many_groups_cannot_escape_to_other) {
        static const unsigned counts[] = { 1, 65, 100, 300, 65536 };
        ipcb_client *c;

        SKIP_UNLESS_ROOT();
        start(0);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        mkseg_group(c, "deny-group", 0604);
        mkseg_group(c, "allow-group", 0640);
        for (unsigned i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
                grp_job j = { .ngroups = counts[i] };
                cr_assert_eq(run_with_groups(counts[i], c_many_groups, &j), 0,
                             "a client in %u groups", counts[i]);
        }
        ipcb_disconnect(c);
        end_checks();
}

/* ---- registering what the broker already serves ---- */

static int c_create_victim(void *arg) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_client *c;
        ipcb_shm *s;
        int r;

        (void)arg;
        CHILD_CHECK(ipcb_connect(d.sock, &c) == 0, "connect");
        o.mode = 0666;
        o.flags = IPCB_SHM_PERSISTENT;
        r = ipcb_shm_create(c, "victim", 8192, &o, &s);
        CHILD_CHECK(r == 0, "create: %s", ipcb_strerror(r));
        memcpy(ipcb_shm_data(s), "owned by 61001", 15);
        ipcb_shm_close(s);
        ipcb_disconnect(c);
        return 0;
}

/* Open victim with `access`, register the received fd as `alias`. */
static int register_received(ipcb_client *c, const char *victim, int access, const char *alias) {
        ipcb_shm *s, *a = NULL;
        int r;

        r = ipcb_shm_open(c, victim, access, &s);
        if (r < 0)
                return 1000 + r;
        r = ipcb_shm_register(c, alias, ipcb_shm_fd(s), NULL, &a);
        ipcb_shm_close(a);
        ipcb_shm_close(s);
        return r;
}

static int c_alias_other(void *arg) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ipcb_client *c;
        int r;

        (void)arg;
        CHILD_CHECK(ipcb_connect(d.sock, &c) == 0, "connect");
        r = register_received(c, "victim", IPCB_READ_WRITE, "alias-rw");
        CHILD_CHECK(r == -EBADFD, "registering 61001's segment (read-write fd): %d %s", r,
                    ipcb_strerror(r));
        r = register_received(c, "victim", IPCB_READ_ONLY, "alias-ro");
        CHILD_CHECK(r == -EBADFD, "registering 61001's segment (read-only fd): %d %s", r,
                    ipcb_strerror(r));
        CHILD_CHECK(ipcb_stat(c, IPCB_KIND_SHM, "alias-rw", &info) == -ENOENT, "alias-rw exists");
        CHILD_CHECK(ipcb_stat(c, IPCB_KIND_SHM, "alias-ro", &info) == -ENOENT, "alias-ro exists");
        ipcb_disconnect(c);
        return 0;
}

/* 61002 may open 61001's segment; it must not become the owner of a second
 * name for it (which would outlive 61001's chmod and unlink, and let 61002
 * freeze it). */
Test(alias, register_other_uids_segment) {
        SKIP_UNLESS_ROOT();
        start(0);
        RUN_AS(UID_A, false, c_create_victim, NULL);
        RUN_AS(UID_B, false, c_alias_other, NULL);
        end_checks();
}

static int c_alias_own(void *arg) {
        ipcb_shm *s, *m1 = NULL, *m2 = NULL;
        ipcb_client *c;
        int fd, r;

        (void)arg;
        CHILD_CHECK(ipcb_connect(d.sock, &c) == 0, "connect");
        r = ipcb_shm_create(c, "own", 4096, NULL, &s);
        CHILD_CHECK(r == 0, "create: %s", ipcb_strerror(r));
        r = ipcb_shm_register(c, "own-again", ipcb_shm_fd(s), NULL, &m1);
        CHILD_CHECK(r == -EBADFD, "registering our own segment: %s", ipcb_strerror(r));
        ipcb_shm_close(s);
        /* A memfd of our own: once, not twice; again once its object is gone. */
        fd = memfd_create("mine", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        CHILD_CHECK(fd >= 0 && ftruncate(fd, 4096) == 0 && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0,
                    "memfd");
        r = ipcb_shm_register(c, "m1", fd, NULL, &m1);
        CHILD_CHECK(r == 0, "register: %s", ipcb_strerror(r));
        r = ipcb_shm_register(c, "m2", fd, NULL, &m2);
        CHILD_CHECK(r == -EBADFD, "registering a served memfd again: %s", ipcb_strerror(r));
        r = ipcb_shm_register(c, "m2", ipcb_shm_fd(m1), NULL, &m2);
        CHILD_CHECK(r == -EBADFD, "registering the handle's fd: %s", ipcb_strerror(r));
        ipcb_shm_close(m1); /* transient: destroyed */
        CHILD_CHECK(ipcb_sync(c) == 0, "sync");
        r = ipcb_shm_register(c, "m3", fd, NULL, &m2);
        CHILD_CHECK(r == 0, "register after the first object died: %s", ipcb_strerror(r));
        ipcb_shm_close(m2);
        close(fd);
        ipcb_disconnect(c);
        return 0;
}

Test(alias, register_own_segment_twice) {
        SKIP_UNLESS_ROOT();
        start(0);
        RUN_AS(UID_A, false, c_alias_own, NULL);
        end_checks();
}

/* Every memfd the broker holds (segments, their read-only descriptions,
 * semaphore pages, lock pages), reopened by root through /proc: none can be
 * registered. */
Test(alias, register_any_broker_memfd) {
        char dir[64], link[320], target[128];
        ipcb_client *c;
        ipcb_shm *s, *a = NULL, *ro;
        ipcb_sem *sem;
        struct dirent *e;
        unsigned tried = 0;

        SKIP_UNLESS_ROOT();
        start(0);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        cr_assert_eq(ipcb_shm_create(c, "seg", 4096, NULL, &s), 0);
        cr_assert_eq(ipcb_shm_open(c, "seg", IPCB_READ_ONLY, &ro), 0);
        cr_assert_eq(ipcb_shm_lock(s), 0); /* makes the lock page */
        cr_assert_eq(ipcb_shm_unlock(s), 0);
        cr_assert_eq(ipcb_sem_create(c, "sem", 1, NULL, &sem), 0);
        snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)d.pid);
        DIR *dp = opendir(dir);
        cr_assert_not_null(dp);
        while ((e = readdir(dp))) {
                if (e->d_name[0] == '.')
                        continue;
                snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
                ssize_t n = readlink(link, target, sizeof(target) - 1);
                if (n < 7 || strncmp(target, "/memfd:", 7) != 0)
                        continue;
                int fd = open(link, O_RDWR | O_CLOEXEC);
                cr_assert_geq(fd, 0, "open %s: %s", link, strerror(errno));
                int r = ipcb_shm_register(c, "alias", fd, NULL, &a);
                close(fd);
                ipcb_shm_close(a);
                cr_assert_eq(r, -EBADFD, "daemon fd %s registered: %s", e->d_name, ipcb_strerror(r));
                tried++;
        }
        closedir(dp);
        cr_assert_geq(tried, 3, "only %u broker memfds found", tried);
        ipcb_sem_close(sem);
        ipcb_shm_close(ro);
        ipcb_shm_close(s);
        ipcb_disconnect(c);
        end_checks();
}

/* ---- objects restored from the fd store ---- */

/* A holder keeps a segment's fd across a broker restart; the restored
 * object's inode is served again: registering it is refused. */
Test(alias, register_restored_segment) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_client *c;
        ipcb_shm *s, *a = NULL;
        fakemgr m;
        fakemgr_exec x = { 0 };
        char sock[96];
        int kept, r, ex;

        SKIP_UNLESS_ROOT();
        fakemgr_init(&m, "/tmp/ipcbi.XXXXXX", 16);
        snprintf(sock, sizeof(sock), "%s/ipcb.sock", m.dir);
        x.sock = sock;

        fakemgr_start(&m, &x);
        cr_assert_eq(ipcb_connect(sock, &c), 0);
        o.mode = 0644;
        o.flags = IPCB_SHM_PERSISTENT;
        cr_assert_eq(ipcb_shm_create(c, "kept", 4096, &o, &s), 0);
        kept = fcntl(ipcb_shm_fd(s), F_DUPFD_CLOEXEC, 3);
        cr_assert_geq(kept, 0);
        ipcb_shm_close(s);
        ipcb_disconnect(c);
        fakemgr_drain(&m, 100);
        ex = fakemgr_stop(&m);
        cr_assert(WIFEXITED(ex) && WEXITSTATUS(ex) == 0, "daemon exit status 0x%x", ex);
        cr_assert_gt(m.n, 1, "nothing stored");

        fakemgr_start(&m, &x);
        cr_assert_eq(ipcb_connect(sock, &c), 0);
        r = ipcb_shm_register(c, "alias", kept, NULL, &a);
        ipcb_shm_close(a);
        cr_assert_eq(r, -EBADFD, "registering a restored segment's inode: %s", ipcb_strerror(r));
        cr_assert_eq(ipcb_unlink(c, "kept"), 0);
        ipcb_disconnect(c);
        ex = fakemgr_stop(&m);
        cr_assert(WIFEXITED(ex) && WEXITSTATUS(ex) == 0, "daemon exit status 0x%x", ex);

        close(kept);
        unlink(sock);
        fakemgr_destroy(&m);
        cr_assert_eq(self_fd_count(), fds_at_start, "the test leaked fds");
}

/* ---- the library's own check ---- */

static int c_register_files(void *arg) {
        char tmpl[] = "/tmp/ipcbi-file.XXXXXX", shm[64];
        ipcb_client *c;
        ipcb_shm *s = NULL;
        struct stat st;
        int fd, r;

        (void)arg;
        CHILD_CHECK(ipcb_connect(d.sock, &c) == 0, "connect");
        /* A regular file on disk, and a tmpfs file (seals work there too). */
        fd = mkstemp(tmpl);
        CHILD_CHECK(fd >= 0 && ftruncate(fd, 4096) == 0 && fchmod(fd, 0775) == 0, "file");
        r = ipcb_shm_register(c, "file", fd, NULL, &s);
        CHILD_CHECK(fstat(fd, &st) == 0, "fstat");
        close(fd);
        unlink(tmpl);
        CHILD_CHECK(r == -EBADFD, "regular file: %s", ipcb_strerror(r));
        CHILD_CHECK((st.st_mode & 07777) == 0775, "a refused file became %04o", st.st_mode & 07777);

        snprintf(shm, sizeof(shm), "/dev/shm/ipcbi-file.%d", (int)getpid());
        fd = open(shm, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        CHILD_CHECK(fd >= 0 && ftruncate(fd, 4096) == 0 && fchmod(fd, 0775) == 0, "shm file");
        r = ipcb_shm_register(c, "file", fd, NULL, &s);
        CHILD_CHECK(fstat(fd, &st) == 0, "fstat");
        close(fd);
        unlink(shm);
        CHILD_CHECK(r == -EBADFD, "tmpfs file: %s", ipcb_strerror(r));
        CHILD_CHECK((st.st_mode & 07777) == 0775, "a refused tmpfs file became %04o",
                    st.st_mode & 07777);
        ipcb_disconnect(c);
        return 0;
}

/* Not a memfd: refused before the library changes anything about it. */
Test(alias, refused_register_leaves_file_mode) {
        SKIP_UNLESS_ROOT();
        start(0);
        RUN_AS(UID_A, false, c_register_files, NULL);
        end_checks();
}
