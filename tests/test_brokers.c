/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_brokers.c: which broker a program reaches, and what people are told.
 *   - a root system broker and a client of another uid with no environment
 *     at all (no XDG_RUNTIME_DIR, no IPCBROKER_SOCKET) meet, through the
 *     library and through ipcbrokerctl;
 *   - a user who runs a broker of their own reaches it by default, the
 *     system one with --system, and the system one again once theirs stops;
 *   - root uses the system broker even with a user's socket in reach;
 *   - no broker: the message names the path tried and what to do;
 *   - ipcbrokerd run by a user without XDG_RUNTIME_DIR, or --system as a
 *     user, says what to do instead of failing on /run;
 *   - ipcbrokerd --bogus: one line and a hint; ./dev.sh --help;
 *   - a socket passed by systemd-socket-activate is logged by its path and
 *     name; a broker run by hand says that stopping it destroys its objects.
 * The system broker's tests run in a private mount namespace with a tmpfs
 * on /run, so /run/ipcbroker of the machine is never touched; they need root
 * and skip, saying why, without it. */
#include "harness.h"
#include "multiuid.h"

#include "ipcbroker.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
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

#define NOBODY 65534u
#define USER_RT "/run/user/61001"
#define USER_SOCK USER_RT "/ipcbroker/ipcbroker.sock"

static ipcbd d, u; /* the system broker (the fixture's), a user's broker */
static char tmp[64];

#define BROKERS_TEST(name, ...) FIXTURE_TEST(brokers, name, &d, fixture_release_nothing, ##__VA_ARGS__)

static void sleep_ms(int ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static void teardown(void) {
        if (u.pid > 0) {
                kill(u.pid, SIGKILL);
                waitpid(u.pid, NULL, 0);
                u.pid = 0;
        }
        fixture_cleanup(&d);
        if (*tmp) {
                char cmd[128];
                snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
                if (system(cmd) != 0)
                        fprintf(stderr, "cannot remove %s\n", tmp);
                tmp[0] = '\0';
        }
}

/* A scratch directory (for captured output) every uid may write. */
static void scratch(void) {
        snprintf(tmp, sizeof(tmp), "/tmp/ipcbbr.XXXXXX");
        cr_assert_not_null(mkdtemp(tmp));
        cr_assert_eq(chmod(tmp, 01777), 0);
}

/* The environment of a program started with "none": only the sanitizers'
 * options (so that a sanitized build behaves as in every other suite), and
 * extra (NULL or one VAR=value). */
static char **bare_env(const char *extra) {
        static char *env[8];
        static const char *const keep[] = { "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS" };
        static char buf[3][512];
        unsigned n = 0;

        for (unsigned i = 0; i < 3; i++) {
                const char *v = getenv(keep[i]);
                if (v) {
                        snprintf(buf[i], sizeof(buf[i]), "%s=%s", keep[i], v);
                        env[n++] = buf[i];
                }
        }
        if (extra)
                env[n++] = (char *)extra;
        env[n] = NULL;
        return env;
}

/* Start argv as uid (-1: as we are) with environment envp; stdout and
 * stderr go to the file out (NULL: inherited). */
static pid_t spawn(uid_t uid, char **envp, const char *const *argv, const char *out) {
        pid_t pid;

        fflush(NULL);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (null < 0 || dup2(null, 0) < 0)
                        _exit(127);
                if (out) {
                        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
                        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
                                _exit(127);
                }
                close_range(3, ~0u, 0);
                if (uid != (uid_t)-1 && drop_to(uid, uid, NULL, 0) < 0)
                        _exit(126);
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                execve(argv[0], (char *const *)argv, envp);
                _exit(127);
        }
        return pid;
}

/* Run argv to its end; its output (both streams) in out.  Exit status. */
static int run(uid_t uid, char **envp, const char *const *argv, char *out, size_t cap) {
        char path[96];
        int status = 0, fd;
        ssize_t n;
        pid_t pid;

        snprintf(path, sizeof(path), "%s/out", tmp);
        pid = spawn(uid, envp, argv, path);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        n = read(fd, out, cap - 1);
        close(fd);
        unlink(path);
        out[n > 0 ? n : 0] = '\0';
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static unsigned lines(const char *s) {
        unsigned n = 0;
        for (; *s; s++)
                n += *s == '\n';
        return n;
}

/* A private mount namespace whose /run is an empty tmpfs (mode 0755). */
static void private_run(void) {
        if (geteuid() != 0)
                cr_skip_test("needs root: a private mount namespace with a tmpfs on /run, "
                             "and clients of other uids");
        if (unshare(CLONE_NEWNS) < 0)
                cr_skip_test("unshare(CLONE_NEWNS): %s", strerror(errno));
        cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0, "%s", strerror(errno));
        cr_assert_eq(mount("tmpfs", "/run", "tmpfs", 0, "mode=0755"), 0, "%s", strerror(errno));
        unsetenv("IPCBROKER_SOCKET");
        unsetenv("XDG_RUNTIME_DIR");
}

/* The system broker, as root, started with args (no environment). */
static void start_system(const char *arg) {
        const char *argv[] = { IPCBROKERD_PATH, arg, NULL };
        pid_t pid;

        fixture_begin_bare(&d);
        pid = spawn((uid_t)-1, bare_env(NULL), argv, NULL);
        fixture_adopt(&d, pid, IPCB_SYSTEM_SOCKET);
}

/* Root publishes "pub" (0644, persistent) on the system broker. */
static void publish(void) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_client *c;
        ipcb_shm *s;

        o.mode = 0644;
        o.flags = IPCB_SHM_PERSISTENT;
        cr_assert_eq(ipcb_connect_system(&c), 0);
        cr_assert_eq(ipcb_shm_create(c, "pub", 4096, &o, &s), 0);
        memcpy(ipcb_shm_data(s), "from root", 10);
        cr_assert_eq(ipcb_shm_close(s), 0);
        ipcb_disconnect(c);
}

static void unpublish(void) {
        ipcb_client *c;

        cr_assert_eq(ipcb_connect_system(&c), 0);
        cr_assert_eq(ipcb_unlink(c, "pub"), 0);
        ipcb_disconnect(c);
}

/* A client with no environment: reads "pub" through ipcb_connect(NULL). */
static int read_pub(void *arg) {
        ipcb_client *c;
        ipcb_shm *s;
        char path[128];
        int r;

        (void)arg;
        clearenv();
        CHILD_CHECK(ipcb_socket_path(IPCB_BROKER_DEFAULT, path, sizeof(path)) == 0 &&
                            strcmp(path, IPCB_SYSTEM_SOCKET) == 0,
                    "default path %s", path);
        CHILD_CHECK((r = ipcb_connect(NULL, &c)) == 0, "connect: %s", ipcb_strerror(r));
        CHILD_CHECK((r = ipcb_shm_open(c, "pub", IPCB_READ_ONLY, &s)) == 0, "open: %s",
                    ipcb_strerror(r));
        CHILD_CHECK(strcmp(ipcb_shm_data(s), "from root") == 0, "read %s", (char *)ipcb_shm_data(s));
        ipcb_shm_close(s);
        ipcb_disconnect(c);
        return 0;
}

BROKERS_TEST(root_service_meets_user_without_environment, .timeout = 30, .fini = teardown) {
        const char *cat[] = { IPCBROKERCTL_PATH, "cat", "pub", NULL };
        char out[1024];

        private_run();
        scratch();
        start_system("--system");
        publish();
        RUN_AS(NOBODY, false, read_pub, NULL);
        /* The CLI, with an empty environment, as nobody. */
        cr_assert_eq(run(NOBODY, bare_env(NULL), cat, out, sizeof(out)), 0, "%s", out);
        cr_assert_eq(memcmp(out, "from root", 10), 0, "%s", out);
        /* A user with a runtime directory but no broker of their own: the same. */
        cr_assert_eq(run(NOBODY, bare_env("XDG_RUNTIME_DIR=/run/user/65534"), cat, out, sizeof(out)),
                     0, "%s", out);
        cr_assert_eq(memcmp(out, "from root", 10), 0, "%s", out);
        unpublish();
}

/* uid 61001 with its runtime directory: its own broker is preferred. */
static int user_prefers_own(void *arg) {
        ipcb_client *c, *sys;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ipcb_shm *s;
        char path[128];
        int r;

        clearenv();
        setenv("XDG_RUNTIME_DIR", USER_RT, 1);
        CHILD_CHECK(ipcb_socket_path(IPCB_BROKER_DEFAULT, path, sizeof(path)) == 0 &&
                            strcmp(path, USER_SOCK) == 0,
                    "default path %s", path);
        CHILD_CHECK((r = ipcb_connect(NULL, &c)) == 0, "connect: %s", ipcb_strerror(r));
        CHILD_CHECK(ipcb_stat(c, IPCB_KIND_SHM, "pub", &info) == -ENOENT, "reached the system broker");
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        CHILD_CHECK(ipcb_shm_create(c, "mine", 4096, &o, &s) == 0, "create");
        CHILD_CHECK((r = ipcb_connect_system(&sys)) == 0, "connect_system: %s", ipcb_strerror(r));
        CHILD_CHECK(ipcb_stat(sys, IPCB_KIND_SHM, "pub", &info) == 0, "system broker lacks pub");
        CHILD_CHECK(ipcb_stat(sys, IPCB_KIND_SHM, "mine", &info) == -ENOENT, "mine on the system broker");
        ipcb_disconnect(sys);
        CHILD_CHECK((r = ipcb_connect_user(&sys)) == 0, "connect_user: %s", ipcb_strerror(r));
        CHILD_CHECK(ipcb_stat(sys, IPCB_KIND_SHM, "mine", &info) == 0, "mine not on the user broker");
        ipcb_disconnect(sys);
        ipcb_shm_close(s);
        ipcb_disconnect(c);
        (void)arg;
        return 0;
}

/* The same user once its broker has stopped: the system broker again. */
static int user_falls_back(void *arg) {
        ipcb_client *c;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        int r;

        (void)arg;
        clearenv();
        setenv("XDG_RUNTIME_DIR", USER_RT, 1);
        CHILD_CHECK((r = ipcb_connect(NULL, &c)) == 0, "connect: %s", ipcb_strerror(r));
        CHILD_CHECK(ipcb_stat(c, IPCB_KIND_SHM, "pub", &info) == 0, "not the system broker");
        ipcb_disconnect(c);
        return 0;
}

BROKERS_TEST(user_broker_preferred, .timeout = 40, .fini = teardown) {
        const char *argv[] = { IPCBROKERD_PATH, NULL };
        const char *ctl_sys[] = { IPCBROKERCTL_PATH, "--system", "stat", "pub", NULL };
        const char *ctl_user[] = { IPCBROKERCTL_PATH, "--user", "stat", "pub", NULL };
        const char *ctl_def[] = { IPCBROKERCTL_PATH, "stat", "pub", NULL };
        char out[1024], path[128];
        const char *env = "XDG_RUNTIME_DIR=" USER_RT;

        private_run();
        scratch();
        start_system(NULL); /* root's default: the system broker */
        publish();
        cr_assert_eq(mkdir("/run/user", 0755), 0);
        cr_assert_eq(mkdir(USER_RT, 0700), 0);
        cr_assert_eq(chown(USER_RT, UID_A, UID_A), 0);
        /* A user's default: its own broker under XDG_RUNTIME_DIR. */
        u.pid = spawn(UID_A, bare_env(env), argv, NULL);
        for (int i = 0, fd; i < 500; i++) {
                if ((fd = raw_connect(USER_SOCK)) >= 0) {
                        close(fd);
                        break;
                }
                sleep_ms(10);
        }
        RUN_AS(UID_A, false, user_prefers_own, NULL);
        cr_assert_eq(run(UID_A, bare_env(env), ctl_sys, out, sizeof(out)), 0, "%s", out);
        cr_assert_neq(run(UID_A, bare_env(env), ctl_def, out, sizeof(out)), 0, "%s", out);
        cr_assert_neq(run(UID_A, bare_env(env), ctl_user, out, sizeof(out)), 0, "%s", out);

        /* Root keeps to the system broker, a user's socket in reach or not. */
        setenv("XDG_RUNTIME_DIR", USER_RT, 1);
        cr_assert_eq(ipcb_socket_path(IPCB_BROKER_DEFAULT, path, sizeof(path)), 0);
        cr_assert_str_eq(path, IPCB_SYSTEM_SOCKET);
        cr_assert_eq(ipcb_socket_path(IPCB_BROKER_USER, path, sizeof(path)), 0);
        cr_assert_str_eq(path, USER_SOCK);
        unsetenv("XDG_RUNTIME_DIR");
        cr_assert_eq(ipcb_socket_path(IPCB_BROKER_USER, path, sizeof(path)), -EDESTADDRREQ);

        ipcbd_stop(&u); /* exit status 0; it removes its socket */
        cr_assert_neq(access(USER_SOCK, F_OK), 0, "the user broker left its socket");
        RUN_AS(UID_A, false, user_falls_back, NULL);
        cr_assert_eq(run(UID_A, bare_env(env), ctl_def, out, sizeof(out)), 0, "%s", out);
        unpublish();
}

BROKERS_TEST(no_broker_message, .timeout = 30, .fini = teardown) {
        const char *list[] = { IPCBROKERCTL_PATH, "list", NULL };
        const char *list_user[] = { IPCBROKERCTL_PATH, "--user", "list", NULL };
        const char *list_sys[] = { IPCBROKERCTL_PATH, "--system", "list", NULL };
        char out[1024], msg[512];

        private_run();
        scratch();
        fixture_begin_bare(&d);
        /* No broker anywhere; a user without a runtime directory. */
        cr_assert_eq(run(NOBODY, bare_env(NULL), list, out, sizeof(out)), 1, "%s", out);
        cr_assert_eq(lines(out), 1, "%s", out);
        cr_assert(strstr(out, "no broker at " IPCB_SYSTEM_SOCKET " (the system broker)") &&
                          strstr(out, "systemctl start ipcbroker.socket") &&
                          strstr(out, "ipcbrokerd --user"),
                  "%s", out);
        /* With one: both paths named. */
        cr_assert_eq(run(NOBODY, bare_env("XDG_RUNTIME_DIR=/run/user/65534"), list, out, sizeof(out)),
                     1, "%s", out);
        cr_assert(strstr(out, "no broker at " IPCB_SYSTEM_SOCKET) &&
                          strstr(out, "/run/user/65534/ipcbroker/ipcbroker.sock either"),
                  "%s", out);
        cr_assert_eq(run(NOBODY, bare_env("XDG_RUNTIME_DIR=/run/user/65534"), list_user, out,
                         sizeof(out)),
                     1, "%s", out);
        cr_assert(strstr(out, "no broker at /run/user/65534/ipcbroker/ipcbroker.sock (your own broker)") &&
                          strstr(out, "--system"),
                  "%s", out);
        cr_assert_eq(run(NOBODY, bare_env(NULL), list_user, out, sizeof(out)), 1, "%s", out);
        cr_assert(strstr(out, "XDG_RUNTIME_DIR is not set"), "%s", out);
        cr_assert_eq(run(NOBODY, bare_env("IPCBROKER_SOCKET=/run/x.sock"), list_sys, out, sizeof(out)),
                     1, "%s", out);
        cr_assert(strstr(out, "no broker at " IPCB_SYSTEM_SOCKET " (the system broker)"), "%s", out);
        cr_assert_eq(run(NOBODY, bare_env("IPCBROKER_SOCKET=/run/x.sock"), list, out, sizeof(out)), 1,
                     "%s", out);
        cr_assert(strstr(out, "no broker at /run/x.sock ($IPCBROKER_SOCKET)") &&
                          strstr(out, "ipcbrokerd --socket /run/x.sock"),
                  "%s", out);
        /* The library's own: what a program prints. */
        ipcb_connect_error(-ENOENT, "/run/y.sock", IPCB_BROKER_DEFAULT, msg, sizeof(msg));
        cr_assert(strstr(msg, "no broker at /run/y.sock: start one with 'ipcbrokerd --socket /run/y.sock'"),
                  "%s", msg);
        ipcb_connect_error(-ENOENT, NULL, IPCB_BROKER_SYSTEM, msg, 12);
        cr_assert_eq(strlen(msg), 11, "not truncated to the buffer: %s", msg);
        cr_assert_str_eq(ipcb_connect_error(-ENOENT, NULL, 0, NULL, 0), "");
}

BROKERS_TEST(daemon_says_where_it_cannot_listen, .timeout = 30, .fini = teardown) {
        const char *def[] = { IPCBROKERD_PATH, NULL };
        const char *user[] = { IPCBROKERD_PATH, "--user", NULL };
        const char *sys[] = { IPCBROKERD_PATH, "--system", NULL };
        char out[2048];

        private_run();
        scratch();
        fixture_begin_bare(&d);
        cr_assert_eq(run(NOBODY, bare_env(NULL), def, out, sizeof(out)), 1, "%s", out);
        cr_assert(strstr(out, "$XDG_RUNTIME_DIR is not set") && strstr(out, "--socket PATH") &&
                          !strstr(out, "Permission denied"),
                  "%s", out);
        cr_assert_eq(lines(out), 1, "%s", out);
        cr_assert_eq(run(NOBODY, bare_env(NULL), user, out, sizeof(out)), 1, "%s", out);
        cr_assert(strstr(out, "$XDG_RUNTIME_DIR is not set"), "%s", out);
        cr_assert_eq(run(NOBODY, bare_env(NULL), sys, out, sizeof(out)), 1, "%s", out);
        cr_assert(strstr(out, "the system broker runs as root") && strstr(out, "--user"), "%s", out);
        cr_assert_neq(access("/run/ipcbroker", F_OK), 0);
}

/* ---- no root needed ---- */

Test(brokers, bogus_option, .timeout = 10, .fini = teardown) {
        const char *bogus[] = { IPCBROKERD_PATH, "--bogus", NULL };
        const char *extra[] = { IPCBROKERD_PATH, "stray", NULL };
        char out[2048];

        scratch();
        cr_assert_eq(run((uid_t)-1, bare_env(NULL), bogus, out, sizeof(out)), 2, "%s", out);
        cr_assert_str_eq(out, "ipcbrokerd: unknown option '--bogus' (try ipcbrokerd --help)\n");
        cr_assert_eq(run((uid_t)-1, bare_env(NULL), extra, out, sizeof(out)), 2, "%s", out);
        cr_assert_str_eq(out, "ipcbrokerd: unexpected argument 'stray' (try ipcbrokerd --help)\n");
}

Test(brokers, dev_sh_help, .timeout = 10, .fini = teardown) {
        const char *help[] = { "/bin/bash", IPCB_SOURCE_DIR "/dev.sh", "--help", NULL };
        const char *bad[] = { "/bin/bash", IPCB_SOURCE_DIR "/dev.sh", "bogus", NULL };
        static char path[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
        char *env[] = { path, NULL };
        char out[4096];

        scratch();
        cr_assert_eq(run((uid_t)-1, env, help, out, sizeof(out)), 0, "%s", out);
        cr_assert(strstr(out, "./dev.sh broker") && strstr(out, "./dev.sh test") &&
                          strstr(out, "--help"),
                  "%s", out);
        cr_assert_eq(run((uid_t)-1, env, bad, out, sizeof(out)), 2, "%s", out);
        cr_assert(strstr(out, "unknown command 'bogus'"), "%s", out);
}

/* Under systemd-socket-activate --fdname: the socket by its path and name. */
BROKERS_TEST(passed_socket_logged_by_path, .timeout = 30, .fini = teardown) {
        char sock[96], log[96], line[256];
        pid_t pid;

        if (access("/usr/bin/systemd-socket-activate", X_OK) < 0 &&
            access("/bin/systemd-socket-activate", X_OK) < 0)
                cr_skip_test("systemd-socket-activate not installed (package systemd)");
        scratch();
        fixture_begin_bare(&d);
        snprintf(sock, sizeof(sock), "%s/b.sock", tmp);
        snprintf(log, sizeof(log), "%s/log", tmp);
        const char *argv[] = { "/usr/bin/systemd-socket-activate", "--seqpacket", "-l", sock,
                               "--fdname=ipcbroker.socket", IPCBROKERD_PATH, NULL };
        if (access(argv[0], X_OK) < 0)
                argv[0] = "/bin/systemd-socket-activate";
        pid = spawn((uid_t)-1, bare_env(NULL), argv, log);
        for (int i = 0; i < 500 && access(sock, F_OK) < 0; i++)
                sleep_ms(10);
        fixture_adopt(&d, pid, sock); /* the probe starts it */
        snprintf(line, sizeof(line),
                 "listening on %s (socket ipcbroker.socket passed by the service manager as fd 3)", sock);
        cr_assert(file_contains(log, line), "no '%s' in %s", line, log);
        cr_assert(!file_contains(log, "unknown"), "'unknown' in the log");
        cr_assert(file_contains(log, "stopping it (Ctrl-C) destroys every one of them"),
                  "no word on what Ctrl-C destroys");
}
