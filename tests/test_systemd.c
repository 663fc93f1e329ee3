/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_systemd.c: ipcbrokerd under real systemd tools.
 *   - systemd-socket-activate --seqpacket: started on the first connection;
 *   - a real `systemd --user` manager in a private mount namespace
 *     (RECIPES: /run/systemd/system on a private tmpfs), with the project's
 *     own user units (built in systemd/user/, ExecStart pointed at the build
 *     by a drop-in): socket activation, readiness, STATUS=, a fed watchdog,
 *     restart with objects and a client's handles surviving, stop + start
 *     with an empty store; a restart right after a burst of creates, which
 *     must keep every object (the daemon waits, bounded, until the manager
 *     has taken every fd it sent before it exits); and the hardening score
 *     of the system unit.
 * Skipped, with the reason, only when not root or unshare/the manager is
 * missing.
 *
 * The harness fixture (harness.h), as far as each setting allows: every test
 * checks the test process's own fds at its end.  socket_activate_tool adopts
 * the activated daemon (its child, exec'd by the tool in place): the whole
 * fixture, idle fds and exit status 0.  Under the user manager the daemon is
 * the manager's child: the last instance's fds must come back to its idle
 * count after its client leaves, and every instance's exit (restart, stop,
 * stop) must be a clean 0, as an ExecStopPost= drop-in records it. */
#include "harness.h"

#include "ipcbroker.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SYSTEMD_BIN "/lib/systemd/systemd"

static ipcbd d;

#define SYSTEMD_TEST(name, ...) FIXTURE_TEST(systemd, name, &d, fixture_release_nothing, ##__VA_ARGS__)

static void sleep_ms(int ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static bool have(const char *path) {
        return access(path, X_OK) == 0;
}

/* Run a shell command, return its first output line (trimmed) in out. */
static int sh(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int sh(char *out, size_t cap, const char *fmt, ...) {
        char cmd[2048];
        va_list ap;
        FILE *f;
        int st;

        va_start(ap, fmt);
        vsnprintf(cmd, sizeof(cmd), fmt, ap);
        va_end(ap);
        f = popen(cmd, "r");
        if (!f)
                return -1;
        if (out) {
                size_t n = fread(out, 1, cap - 1, f);
                out[n] = '\0';
                while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
                        out[--n] = '\0';
        } else {
                char sink[4096];
                while (fread(sink, 1, sizeof(sink), f) > 0)
                        ;
        }
        st = pclose(f);
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- systemd-socket-activate ---- */

static char sa_dir[64], sa_sock[96];

/* After the fixture has stopped the daemon (or the test failed). */
static void sa_teardown(void) {
        fixture_cleanup(&d);
        if (*sa_dir) {
                unlink(sa_sock);
                rmdir(sa_dir);
        }
}

SYSTEMD_TEST(socket_activate_tool, .timeout = 30, .fini = sa_teardown) {
        char *dir = sa_dir, *sock = sa_sock, link[64], exe[256];
        ipcb_client *c;
        ipcb_shm *s;
        ssize_t n;
        pid_t pid;

        if (!have("/usr/bin/systemd-socket-activate") && !have("/bin/systemd-socket-activate"))
                cr_skip_test("systemd-socket-activate not installed (package systemd)");
        fixture_begin_bare(&d);
        snprintf(sa_dir, sizeof(sa_dir), "/tmp/ipcbsa.XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        snprintf(sock, sizeof(sa_sock), "%s/ipcb.sock", dir);
        fflush(NULL);
        pid = fork();
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                execlp("systemd-socket-activate", "systemd-socket-activate", "--seqpacket", "-l",
                       sock, IPCBROKERD_PATH, (char *)NULL);
                _exit(127);
        }
        for (int i = 0; i < 500 && access(sock, F_OK) < 0; i++)
                sleep_ms(10);
        cr_assert_eq(access(sock, F_OK), 0, "systemd-socket-activate did not listen");
        /* The first connection (the fixture's probe) starts the broker,
         * which serves it: the tool exec'd it in its own process. */
        fixture_adopt(&d, pid, sock);
        snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
        n = readlink(link, exe, sizeof(exe) - 1);
        exe[n > 0 ? n : 0] = '\0';
        cr_assert(n > 0 && strstr(exe, "ipcbrokerd"), "process %d runs %s", (int)pid, exe);
        cr_assert_eq(ipcb_connect(sock, &c), 0);
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        cr_assert_eq(ipcb_shm_create(c, "activated", 4096, &o, &s), 0);
        cr_assert_eq(ipcb_shm_close(s), 0);
        ipcb_disconnect(c);
}

/* ---- the hardening score ---- */

static void bare_teardown(void) {
        fixture_cleanup(&d);
}

SYSTEMD_TEST(unit_exposure_score, .timeout = 30, .fini = bare_teardown) {
        char out[256];
        double score = 99;

        if (!have("/usr/bin/systemd-analyze") && !have("/bin/systemd-analyze"))
                cr_skip_test("systemd-analyze not installed (package systemd)");
        fixture_begin_bare(&d);
        cr_assert_eq(sh(out, sizeof(out),
                        "systemd-analyze security --offline=true %s/system/ipcbroker.service 2>&1 | "
                        "sed -n 's/.*Overall exposure level for ipcbroker.service: \\([0-9.]*\\).*/\\1/p'",
                        IPCB_UNIT_BUILD_DIR),
                     0);
        cr_assert_eq(sscanf(out, "%lf", &score), 1, "no score in: %s", out);
        fprintf(stderr, "ipcbroker.service: overall exposure level %.1f\n", score);
        cr_assert_leq(score, 1.5, "exposure %.1f above 1.5", score);
}

/* ---- a real user manager ---- */

static char rt[64], cfgdir[64], env[256], exits[96];
static pid_t mgr;

static void mgr_stop(void) {
        if (mgr > 0) {
                kill(mgr, SIGTERM);
                for (int i = 0; i < 300 && waitpid(mgr, NULL, WNOHANG) == 0; i++)
                        sleep_ms(10);
                kill(mgr, SIGKILL);
                waitpid(mgr, NULL, 0);
                mgr = 0;
        }
        if (*rt)
                sh(NULL, 0, "rm -rf %s %s", rt, cfgdir);
}

static void um_teardown(void) {
        mgr_stop();
        fixture_cleanup(&d);
}

static int ctl(char *out, size_t cap, const char *args) {
        return sh(out, cap, "%s systemctl --user %s 2>&1", env, args);
}

static void show(const char *prop, char *out, size_t cap) {
        char args[128];
        snprintf(args, sizeof(args), "show -p %s --value ipcbroker.service", prop);
        ctl(out, cap, args);
}

static void mgr_start(void) {
        char path[256], sock[128];
        FILE *f;

        if (geteuid() != 0)
                cr_skip_test("needs root (a private mount namespace for the user manager)");
        if (!have(SYSTEMD_BIN))
                cr_skip_test(SYSTEMD_BIN " not installed (package systemd)");
        if (unshare(CLONE_NEWNS) < 0)
                cr_skip_test("unshare(CLONE_NEWNS): %s", strerror(errno));
        cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
        mkdir("/run/systemd", 0755);
        cr_assert_eq(mount("tmpfs", "/run/systemd", "tmpfs", 0, "mode=0755"), 0, "%s", strerror(errno));
        cr_assert_eq(mkdir("/run/systemd/system", 0755), 0);

        snprintf(rt, sizeof(rt), "/tmp/ipcbrt.XXXXXX");
        snprintf(cfgdir, sizeof(cfgdir), "/tmp/ipcbcf.XXXXXX");
        cr_assert_not_null(mkdtemp(rt));
        cr_assert_not_null(mkdtemp(cfgdir));
        snprintf(env, sizeof(env), "XDG_RUNTIME_DIR=%s XDG_CONFIG_HOME=%s", rt, cfgdir);
        cr_assert_eq(sh(NULL, 0, "mkdir -p %s/systemd/user/ipcbroker.service.d && cp %s/user/ipcbroker.socket "
                                 "%s/user/ipcbroker.service %s/systemd/user/",
                        cfgdir, IPCB_UNIT_BUILD_DIR, IPCB_UNIT_BUILD_DIR, cfgdir),
                     0);
        snprintf(path, sizeof(path), "%s/systemd/user/ipcbroker.service.d/test.conf", cfgdir);
        f = fopen(path, "w");
        cr_assert_not_null(f);
        /* Every instance's end: SERVICE_RESULT EXIT_CODE EXIT_STATUS, a line each. */
        snprintf(exits, sizeof(exits), "%s/exits", rt);
        /* Under AddressSanitizer, LeakSanitizer cannot run inside the unit's
         * sandbox (it would abort the daemon at exit): leaks are checked by
         * every other suite. */
        fprintf(f, "[Service]\nEnvironment=ASAN_OPTIONS=detect_leaks=0\n"
                   "ExecStart=\nExecStart=%s --restore-grace 3 -v\nWatchdogSec=1s\n"
                   "ExecStopPost=/bin/sh -c 'echo \"$$SERVICE_RESULT $$EXIT_CODE $$EXIT_STATUS\" >> %s'\n",
                IPCBROKERD_PATH, exits);
        fclose(f);

        fflush(NULL);
        mgr = fork();
        if (mgr == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                setenv("XDG_RUNTIME_DIR", rt, 1);
                setenv("XDG_CONFIG_HOME", cfgdir, 1);
                int null = open("/dev/null", O_WRONLY);
                dup2(null, 1);
                dup2(null, 2);
                execl(SYSTEMD_BIN, SYSTEMD_BIN, "--user", "--log-target=console", "--log-level=warning",
                      (char *)NULL);
                _exit(127);
        }
        snprintf(path, sizeof(path), "%s/systemd/private", rt);
        for (int i = 0; i < 1000 && access(path, F_OK) < 0; i++)
                sleep_ms(10);
        if (access(path, F_OK) < 0) {
                mgr_stop();
                cr_skip_test("the user manager did not start");
        }
        cr_assert_eq(ctl(NULL, 0, "daemon-reload"), 0);
        cr_assert_eq(ctl(NULL, 0, "start ipcbroker.socket"), 0);
        snprintf(sock, sizeof(sock), "%s/ipcbroker/ipcbroker.sock", rt);
        cr_assert_eq(access(sock, F_OK), 0, "socket unit did not listen on %s", sock);
        setenv("IPCBROKER_SOCKET", sock, 1);
}

static bool active(void) {
        char out[64];
        show("ActiveState", out, sizeof(out));
        return strcmp(out, "active") == 0;
}

/* The instances' ends recorded so far: n lines, each a clean exit. */
static void expect_exits(unsigned n) {
        char out[512], want[512] = "";

        for (unsigned i = 0; i < n; i++)
                strcat(want, i ? "\nsuccess exited 0" : "success exited 0");
        sh(out, sizeof(out), "cat %s 2>&1", exits);
        cr_assert_str_eq(out, want, "ipcbrokerd's exits under the manager (result, code, status):\n%s",
                         out);
}

SYSTEMD_TEST(user_manager, .timeout = 120, .fini = um_teardown) {
        char out[512], pid1[32], pid2[32];
        ipcb_client *c, *c2;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ipcb_shm *p, *t;
        ipcb_sem *s, *u;
        ipcbd last = { 0 };

        fixture_begin_bare(&d);
        mgr_start();
        /* Socket activation on first connect; readiness. */
        cr_assert(!active(), "service started before any connection");
        cr_assert_eq(ipcb_connect(NULL, &c), 0);
        cr_assert(active(), "not active after the first connection");
        show("SubState", out, sizeof(out));
        cr_assert_str_eq(out, "running");

        ipcb_shm_options so = IPCB_SHM_OPTIONS_INIT;
        so.flags = IPCB_SHM_PERSISTENT;
        cr_assert_eq(ipcb_shm_create(c, "kept", 65536, &so, &p), 0);
        memset(ipcb_shm_data(p), 'k', 65536);
        ipcb_shm_options to = IPCB_SHM_OPTIONS_INIT;
        cr_assert_eq(ipcb_shm_create(c, "held", 4096, &to, &t), 0);
        ipcb_sem_options mo = IPCB_SEM_OPTIONS_INIT;
        mo.flags = IPCB_SEM_PERSISTENT;
        cr_assert_eq(ipcb_sem_create(c, "count", 7, &mo, &s), 0);
        cr_assert_eq(ipcb_sem_acquire(s), 0);
        cr_assert_eq(ipcb_sem_open(c, "count", IPCB_SEM_UNDO, &u), 0);
        cr_assert_eq(ipcb_sem_acquire(u), 0); /* 5 left */

        /* STATUS= in systemctl status; the watchdog (1 s) is fed for 4 s. */
        show("MainPID", pid1, sizeof(pid1));
        sleep_ms(4000);
        cr_assert(active(), "service died under the watchdog");
        show("MainPID", out, sizeof(out));
        cr_assert_str_eq(out, pid1, "restarted (watchdog?): %s -> %s", pid1, out);
        show("StatusText", out, sizeof(out));
        cr_assert_str_eq(out, "Serving 1 client, 3 objects");
        ctl(out, sizeof(out), "status ipcbroker.service --no-pager | grep Status:");
        cr_assert(strstr(out, "Serving 1 client, 3 objects"), "systemctl status: %s", out);
        show("NRestarts", out, sizeof(out));
        cr_assert_str_eq(out, "0");
        ctl(out, sizeof(out), "show -p NFileDescriptorStore --value ipcbroker.service");
        cr_log_info("fd store holds %s fds", out);

        /* Restart: objects, contents, counts, and this client's handles survive. */
        cr_assert_eq(ctl(out, sizeof(out), "restart ipcbroker.service"), 0, "%s", out);
        show("MainPID", pid2, sizeof(pid2));
        cr_assert_str_neq(pid1, pid2, "not restarted");
        cr_assert(active());
        expect_exits(1);
        cr_assert_eq(((char *)ipcb_shm_data(p))[65535], 'k', "mapping lost");
        ((char *)ipcb_shm_data(p))[0] = 'R';
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "kept", &info), 0, "no transparent reconnect");
        cr_assert_eq(info.handles, 1);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, "count", &info), 0);
        cr_assert_eq(info.sem_value, 5, "count %u (the undo token stays with its live holder)",
                     info.sem_value);
        cr_assert_eq(info.sem_undo_held, 1);
        cr_assert_eq(ipcb_connect(NULL, &c2), 0);
        ipcb_shm *p2;
        cr_assert_eq(ipcb_shm_open(c2, "kept", IPCB_READ_ONLY, &p2), 0);
        cr_assert_eq(((char *)ipcb_shm_data(p2))[0], 'R', "not the same memory");
        cr_assert_eq(ipcb_shm_close(p2), 0);
        cr_assert_eq(ipcb_sem_acquire(u), 0, "undo handle dead after restart");
        cr_assert_eq(ipcb_sem_held(u), 2, "the reclaimed slot lost its token");
        cr_assert_eq(ipcb_sem_release(s, 1), 0);
        cr_assert_eq(ipcb_sem_value(s), 5);
        sleep_ms(3500); /* past --restore-grace: the held transient stays */
        cr_assert_eq(ipcb_stat(c2, IPCB_KIND_SHM, "held", &info), 0, "held transient lost");
        cr_assert_eq(ipcb_shm_lock(p), 0);
        cr_assert_eq(ipcb_shm_unlock(p), 0);
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
        cr_assert_eq(ipcb_shm_close(t), 0);
        cr_assert_eq(ipcb_shm_close(p), 0);
        ipcb_disconnect(c2);
        ipcb_disconnect(c);

        /* Stop and start: the store is emptied with the service. */
        cr_assert_eq(ctl(out, sizeof(out), "stop ipcbroker.service"), 0, "%s", out);
        expect_exits(2);
        cr_assert_eq(ctl(out, sizeof(out), "start ipcbroker.socket"), 0, "%s", out);
        cr_assert_eq(ipcb_connect(NULL, &c), 0);
        /* Our connection is its only one: the idle count is one less. */
        show("MainPID", out, sizeof(out));
        last.pid = (pid_t)atoi(out);
        cr_assert_gt(last.pid, 0);
        last.base_fds = ipcbd_fd_count(&last) - 1;
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "kept", &info), -ENOENT, "store not emptied by stop");
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, "count", &info), -ENOENT);
        ipcb_disconnect(c);
        fixture_check_idle(&last);
        cr_assert_eq(ctl(out, sizeof(out), "stop ipcbroker.service ipcbroker.socket"), 0, "%s", out);
        expect_exits(3);
}

/* Objects created as fast as clients can while `systemctl restart` runs:
 * the FDSTORE=1 messages of the last ones may still wait in the manager's
 * socket when the daemon exits, and a manager that has seen its main PID
 * exit no longer takes them (NotifyAccess=main).  The daemon must not exit
 * before the manager has processed them (BARRIER=1), or the new instance
 * finds catalog records without their fds. */
#define BURST_THREADS 4
#define BURST_PER 2000

typedef struct burst {
        unsigned id, n;
        ipcb_client *c;
        bool ok[BURST_PER];
        ipcb_shm *held[BURST_PER];
        ipcb_sem *hsem[BURST_PER];
} burst;

static atomic_bool burst_stop;

static void *creator(void *arg) {
        ipcb_shm_options po = IPCB_SHM_OPTIONS_INIT, to = IPCB_SHM_OPTIONS_INIT;
        ipcb_sem_options so = IPCB_SEM_OPTIONS_INIT, tso = IPCB_SEM_OPTIONS_INIT;
        burst *b = arg;
        char name[64];
        unsigned i;

        po.flags = IPCB_SHM_PERSISTENT;
        so.flags = IPCB_SEM_PERSISTENT;
        for (i = 0; i < BURST_PER && !atomic_load(&burst_stop); i++) {
                ipcb_shm *s;
                ipcb_sem *m;
                snprintf(name, sizeof(name), "burst.%u.%u", b->id, i);
                switch (i % 4) {
                case 0: /* persistent segment, closed at once */
                        if ((b->ok[i] = ipcb_shm_create(b->c, name, 4096, &po, &s) == 0))
                                ipcb_shm_close(s);
                        break;
                case 1: /* transient segment, held */
                        b->ok[i] = ipcb_shm_create(b->c, name, 4096, &to, &b->held[i]) == 0;
                        break;
                case 2: /* persistent semaphore, closed at once */
                        if ((b->ok[i] = ipcb_sem_create(b->c, name, 1, &so, &m) == 0))
                                ipcb_sem_close(m);
                        break;
                default: /* transient semaphore, held */
                        b->ok[i] = ipcb_sem_create(b->c, name, 1, &tso, &b->hsem[i]) == 0;
                        break;
                }
        }
        b->n = i;
        return NULL;
}

SYSTEMD_TEST(restart_during_creates, .timeout = 150, .fini = um_teardown) {
        static burst b[BURST_THREADS];
        pthread_t th[BURST_THREADS];
        char out[512], path[256], log[128], name[64];
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        unsigned missing = 0, made = 0, created = 0;
        FILE *f;

        fixture_begin_bare(&d);
        raise_nofile(BURST_THREADS * BURST_PER + 2000);
        mgr_start();
        /* The broker's log, to look for dropped objects; room for them all. */
        snprintf(log, sizeof(log), "%s/broker.log", rt);
        snprintf(path, sizeof(path), "%s/systemd/user/ipcbroker.service.d/burst.conf", cfgdir);
        f = fopen(path, "w");
        cr_assert_not_null(f);
        fprintf(f, "[Service]\nStandardError=append:%s\nExecStart=\n"
                   "ExecStart=%s --restore-grace 3 --max-objects 50000 --max-fds 40000\n",
                log, IPCBROKERD_PATH);
        fclose(f);
        cr_assert_eq(ctl(NULL, 0, "daemon-reload"), 0);

        atomic_store(&burst_stop, false);
        for (unsigned t = 0; t < BURST_THREADS; t++) {
                memset(&b[t], 0, sizeof(b[t]));
                b[t].id = t;
                cr_assert_eq(ipcb_connect(NULL, &b[t].c), 0);
        }
        for (unsigned t = 0; t < BURST_THREADS; t++)
                cr_assert_eq(pthread_create(&th[t], NULL, creator, &b[t]), 0);
        sleep_ms(100);
        cr_assert_eq(ctl(out, sizeof(out), "restart ipcbroker.service"), 0, "%s", out);
        atomic_store(&burst_stop, true);
        for (unsigned t = 0; t < BURST_THREADS; t++)
                pthread_join(th[t], NULL);
        cr_assert(active());
        expect_exits(1);
        for (unsigned t = 0; t < BURST_THREADS; t++)
                for (unsigned i = 0; i < b[t].n; i++) {
                        if (!b[t].ok[i])
                                continue;
                        created++;
                        snprintf(name, sizeof(name), "burst.%u.%u", t, i);
                        int k = ipcb_stat(b[t].c, i % 4 < 2 ? IPCB_KIND_SHM : IPCB_KIND_SEM, name, &info);
                        if (k < 0 && missing++ < 5)
                                cr_log_error("%s lost in the restart: %s", name, strerror(-k));
                }
        for (unsigned t = 0; t < BURST_THREADS; t++)
                made += b[t].n;
        cr_log_info("%u creates tried, %u succeeded", made, created);
        sh(out, sizeof(out), "grep -c 'its fd is missing' %s", log);
        cr_assert_eq(missing, 0, "%u of %u objects lost in the restart (%s dropped in the log)", missing,
                     created, out);
        cr_assert_str_eq(out, "0", "the restored broker dropped objects whose fd was missing");
        for (unsigned t = 0; t < BURST_THREADS; t++) {
                for (unsigned i = 0; i < b[t].n; i++) {
                        if (b[t].held[i])
                                cr_assert_eq(ipcb_shm_close(b[t].held[i]), 0);
                        if (b[t].hsem[i])
                                cr_assert_eq(ipcb_sem_close(b[t].hsem[i]), 0);
                }
                ipcb_disconnect(b[t].c);
        }
        cr_assert_eq(ctl(out, sizeof(out), "stop ipcbroker.service ipcbroker.socket"), 0, "%s", out);
        expect_exits(2);
}
