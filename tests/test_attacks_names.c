/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_attacks_names.c: attacks on names and on what survives a restart.
 *
 * Names: a uid that creates a name before the service that will use it
 * (squatting) is seen (the open reports the owner), refused by an open that
 * insists on an owner, and kept out of reserved prefixes entirely.
 *
 * Restart (the fake service manager of fakemgr.h keeps the fd store
 * and re-executes the daemon with it): an undo slot or a lock token held
 * across the restart goes back only to its holder, and a lock whose holder
 * dies is released as owner-died; a scribbled epoch does not make an undo
 * handle open a second one; a segment registered read-only survives.
 *
 * Every test ends with the harness fixture (harness.h): the daemon's fds back
 * at its idle count, the test process's fds as they were, a clean exit.  The
 * restart tests adopt their first daemon (an empty store) into it, as
 * test_store.c does, and check the last one against its idle count. */
#include "harness.h"
#include "fakemgr.h"
#include "multiuid.h"

#include "ipcbroker.h"
#include "proto.h"
#include "sempage.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static ipcbd d;

/* ---- raw requests ---- */

/* One request on a raw connection and its reply (2 s).  Returns the reply's
 * status; on success *ret (pointing into buf) and *ret_fd (-1 if none). */
static int raw_call(int fd, ipcb_msg *req, uint8_t *buf, ipcb_msg *ret, int *ret_fd) {
        static uint32_t id = 100;
        int fds[IPCB_FDS_MAX];
        unsigned nfds = IPCB_FDS_MAX;
        ssize_t len;

        req->hdr.id = ++id;
        len = ipcb__proto_encode(req, buf, IPCB_MSG_MAX);
        if (len < 0 || raw_send(fd, buf, (size_t)len, NULL, 0) < 0)
                return -EIO;
        len = raw_recv(fd, buf, IPCB_MSG_MAX, fds, &nfds, 2000);
        if (len <= 0 || ipcb__proto_decode(buf, (size_t)len, nfds, ret) < 0 || ret->hdr.id != id) {
                for (unsigned i = 0; i < nfds; i++)
                        close(fds[i]);
                return -EPROTO;
        }
        if (ret_fd)
                *ret_fd = nfds ? fds[0] : -1;
        else if (nfds)
                close(fds[0]);
        return ret->hdr.status;
}

static int raw_open(const char *path) {
        int fd = raw_connect(path);
        if (fd >= 0 && raw_hello(fd) != 0) {
                close(fd);
                return -EPROTO;
        }
        return fd;
}

/* ---- the plain daemon (names) ---- */

static void names_fini(void) {
        fixture_cleanup(&d);
}

/* A test on a plain daemon (fixture_begin in the body, fixture_end after). */
#define NAMES_TEST(suite, name) \
        FIXTURE_TEST(suite, name, &d, fixture_release_nothing, .fini = names_fini, .timeout = 60)

static int c_connect(ipcb_client **c) {
        int r = ipcb_connect(d.sock, c);
        if (r < 0)
                fprintf(stderr, "[uid %u] connect: %s\n", (unsigned)getuid(), ipcb_strerror(r));
        return r;
}

/* The squatter: creates segment and semaphore "svc.x", persistent, open to
 * all, before the service does. */
static int squat(void *arg) {
        ipcb_shm_options so = IPCB_SHM_OPTIONS_INIT;
        ipcb_sem_options mo = IPCB_SEM_OPTIONS_INIT;
        ipcb_client *c;
        ipcb_shm *s;
        ipcb_sem *m;
        int r;

        (void)arg;
        CHILD_CHECK(c_connect(&c) == 0, "connect");
        so.mode = mo.mode = 0666;
        so.flags = mo.flags = IPCB_SHM_PERSISTENT;
        r = ipcb_shm_create(c, "svc.x", 4096, &so, &s);
        CHILD_CHECK(r == 0, "squat segment: %s", ipcb_strerror(r));
        r = ipcb_sem_create(c, "svc.x", 1, &mo, &m);
        CHILD_CHECK(r == 0, "squat semaphore: %s", ipcb_strerror(r));
        ipcb_shm_close(s);
        ipcb_sem_close(m);
        ipcb_disconnect(c);
        return 0;
}

/* The service: what it opened is visible, and an owned open refuses it. */
static int service_finds_squatter(void *arg) {
        ipcb_open_options o = IPCB_OPEN_OPTIONS_INIT;
        ipcb_handle_info info;
        ipcb_client *c;
        ipcb_shm *s = NULL;
        ipcb_sem *m = NULL;
        int r;

        (void)arg;
        CHILD_CHECK(c_connect(&c) == 0, "connect");
        /* A plain open succeeds, but says whose object it is. */
        r = ipcb_shm_open(c, "svc.x", IPCB_READ_WRITE, &s);
        CHILD_CHECK(r == 0, "plain open: %s", ipcb_strerror(r));
        CHILD_CHECK(ipcb_shm_info(s, &info) == 0, "info");
        CHILD_CHECK(info.uid == UID_B && info.gid == UID_B && info.mode == 0666,
                    "segment info %u:%u %o", (unsigned)info.uid, (unsigned)info.gid, info.mode);
        ipcb_shm_close(s);
        r = ipcb_sem_open(c, "svc.x", 0, &m);
        CHILD_CHECK(r == 0, "plain sem open: %s", ipcb_strerror(r));
        CHILD_CHECK(ipcb_sem_info(m, &info) == 0 && info.uid == UID_B && info.mode == 0666,
                    "semaphore info uid %u", (unsigned)info.uid);
        ipcb_sem_close(m);

        /* Insisting on owning it (default: our own uid) fails, atomically. */
        o.flags = IPCB_OPEN_OWNED;
        s = NULL;
        r = ipcb_shm_open_ex(c, "svc.x", IPCB_READ_WRITE, &o, &s);
        CHILD_CHECK(r == -EPERM && s == NULL, "owned open of a squatted segment: %s",
                    ipcb_strerror(r));
        r = ipcb_shm_open_ex(c, "svc.x", IPCB_READ_ONLY, &o, &s);
        CHILD_CHECK(r == -EPERM, "owned read-only open: %s", ipcb_strerror(r));
        o.flags = IPCB_OPEN_OWNED | IPCB_SEM_UNDO;
        r = ipcb_sem_open_ex(c, "svc.x", &o, &m);
        CHILD_CHECK(r == -EPERM, "owned open of a squatted semaphore: %s", ipcb_strerror(r));
        /* Naming the owner explicitly is honoured too. */
        o.flags = IPCB_OPEN_OWNED;
        o.owner = UID_A;
        r = ipcb_shm_open_ex(c, "svc.x", IPCB_READ_ONLY, &o, &s);
        CHILD_CHECK(r == -EPERM, "owned (explicit uid) open: %s", ipcb_strerror(r));
        o.owner = UID_B;
        r = ipcb_shm_open_ex(c, "svc.x", IPCB_READ_ONLY, &o, &s);
        CHILD_CHECK(r == 0, "open expecting the real owner: %s", ipcb_strerror(r));
        ipcb_shm_close(s);
        /* A bad options struct is refused before anything is sent. */
        o.struct_size = 1;
        r = ipcb_shm_open_ex(c, "svc.x", IPCB_READ_ONLY, &o, &s);
        CHILD_CHECK(r == -EINVAL, "short options: %s", ipcb_strerror(r));
        ipcb_disconnect(c);
        return 0;
}

/* Today a service that opens (or creates-else-opens) its well-known name
 * cannot tell that another uid made it first, nor refuse it. */
NAMES_TEST(names, squatter_precreates_service_name) {
        ipcb_open_options o = IPCB_OPEN_OPTIONS_INIT;
        ipcb_handle_info info;
        ipcb_client *c;
        ipcb_shm *s;
        ipcb_sem *m;

        SKIP_UNLESS_ROOT();
        fixture_begin(&d, NULL);
        RUN_AS(UID_B, false, squat, NULL);
        RUN_AS(UID_A, false, service_finds_squatter, NULL);

        /* Creates report their owner too, and an owner's owned open works. */
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        ipcb_shm_options po = IPCB_SHM_OPTIONS_INIT;
        po.flags = IPCB_SHM_PERSISTENT;
        cr_assert_eq(ipcb_shm_create(c, "own.seg", 4096, &po, &s), 0);
        cr_assert_eq(ipcb_shm_info(s, &info), 0);
        cr_assert(info.uid == 0 && info.gid == 0 && info.mode == 0600);
        ipcb_shm_close(s);
        o.flags = IPCB_OPEN_OWNED;
        cr_assert_eq(ipcb_shm_open_ex(c, "own.seg", IPCB_READ_WRITE, &o, &s), 0);
        cr_assert_eq(ipcb_shm_info(s, &info), 0);
        cr_assert_eq(info.uid, 0);
        ipcb_shm_close(s);
        o.flags = IPCB_OPEN_OWNED | IPCB_SEM_UNDO;
        cr_assert_eq(ipcb_sem_open_ex(c, "svc.x", &o, &m), -EPERM, "root expects itself");
        o.owner = UID_B;
        cr_assert_eq(ipcb_sem_open_ex(c, "svc.x", &o, &m), 0);
        cr_assert_eq(ipcb_sem_info(m, &info), 0);
        cr_assert_eq(info.uid, UID_B);
        ipcb_sem_close(m);
        cr_assert_eq(ipcb_shm_info(NULL, &info), -EINVAL);
        cr_assert_eq(ipcb_sem_info(NULL, &info), -EINVAL);

        /* The wire: owner without OWNED, unknown flags, a token without
         * RECLAIM are refused as invalid; OWNED with a wrong uid is -EPERM. */
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_SHM_OPEN }, rep;
        int fd = raw_open(d.sock);
        cr_assert_geq(fd, 0);
        req.shm_open.access = IPCB_WA_READ_ONLY;
        req.shm_open.name = (ipcb_name){ .ptr = "svc.x", .len = 5 };
        req.shm_open.owner = UID_B;
        cr_assert_eq(raw_call(fd, &req, buf, &rep, NULL), -EINVAL);
        req.shm_open.owner = 0;
        req.shm_open.flags = 0x80; /* a flag SHM_OPEN does not know */
        cr_assert_eq(raw_call(fd, &req, buf, &rep, NULL), -EINVAL);
        req.shm_open.flags = 0;
        req.shm_open.token = 1;
        cr_assert_eq(raw_call(fd, &req, buf, &rep, NULL), -EINVAL);
        req.shm_open.token = 0;
        req.shm_open.flags = IPCB_WF_OWNED;
        req.shm_open.owner = UID_C;
        cr_assert_eq(raw_call(fd, &req, buf, &rep, NULL), -EPERM);
        req.shm_open.owner = UID_B;
        int mfd = -1;
        cr_assert_eq(raw_call(fd, &req, buf, &rep, &mfd), 0);
        cr_assert_eq(rep.shm_reply.uid, UID_B);
        cr_assert_eq(rep.shm_reply.mode, 0666u);
        close(mfd);
        close(fd);

        cr_assert_eq(ipcb_unlink(c, "svc.x"), 0);
        cr_assert_eq(ipcb_unlink(c, "own.seg"), 0);
        cr_assert_eq(ipcb_sem_unlink(c, "svc.x"), 0);
        ipcb_disconnect(c);
}

typedef struct create_job {
        const char *name;
        int want; /* expected result of every create */
} create_job;

/* Create segment, semaphore and registered segment `name` (and remove
 * what was made). */
static int create_all(void *arg) {
        create_job *j = arg;
        ipcb_client *c;
        ipcb_shm *s;
        ipcb_sem *m;
        char reg[300];
        int r, fd;

        CHILD_CHECK(c_connect(&c) == 0, "connect");
        r = ipcb_shm_create(c, j->name, 4096, NULL, &s);
        CHILD_CHECK(r == j->want, "segment %s: %s, want %s", j->name, ipcb_strerror(r),
                    ipcb_strerror(j->want));
        if (r == 0)
                ipcb_shm_close(s);
        r = ipcb_sem_create(c, j->name, 1, NULL, &m);
        CHILD_CHECK(r == j->want, "semaphore %s: %s", j->name, ipcb_strerror(r));
        if (r == 0)
                ipcb_sem_close(m);
        snprintf(reg, sizeof(reg), "%s.reg", j->name);
        fd = memfd_create("reg", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        CHILD_CHECK(fd >= 0 && ftruncate(fd, 4096) == 0 && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0,
                    "memfd");
        r = ipcb_shm_register(c, reg, fd, NULL, &s);
        CHILD_CHECK(r == j->want, "register %s: %s", reg, ipcb_strerror(r));
        if (r == 0)
                ipcb_shm_close(s);
        close(fd);
        ipcb_disconnect(c);
        return 0;
}

/* The service holds its name against everyone else. */
static int service_owns(void *arg) {
        ipcb_open_options o = IPCB_OPEN_OPTIONS_INIT;
        ipcb_client *c;
        ipcb_shm *s;
        int r;

        ipcb_shm_options so = IPCB_SHM_OPTIONS_INIT;

        (void)arg;
        CHILD_CHECK(c_connect(&c) == 0, "connect");
        so.flags = IPCB_SHM_PERSISTENT;
        r = ipcb_shm_create(c, "svc.x", 4096, &so, &s);
        CHILD_CHECK(r == 0, "service create: %s", ipcb_strerror(r));
        ipcb_shm_close(s);
        o.flags = IPCB_OPEN_OWNED;
        r = ipcb_shm_open_ex(c, "svc.x", IPCB_READ_WRITE, &o, &s);
        CHILD_CHECK(r == 0, "service owned open: %s", ipcb_strerror(r));
        ipcb_shm_close(s);
        ipcb_disconnect(c);
        return 0;
}

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");
        cr_assert_not_null(f);
        fputs(text, f);
        fclose(f);
}

/* With `reserve = svc. uid:61001` the squatter cannot take the name first. */
NAMES_TEST(names, squatter_blocked_by_reserved_prefix) {
        char conf[] = "/tmp/ipcbt-reserve.XXXXXX";
        int cfd = mkstemp(conf);
        cr_assert_geq(cfd, 0);
        close(cfd);
        write_file(conf, "# who may create what\n"
                         "reserve = svc. uid:61001\n"
                         "reserve = svc.pub. group:61100\n"
                         "reserve = sys. root\n");
        const char *args[] = { "--config", conf, NULL };

        SKIP_UNLESS_ROOT();
        fixture_begin(&d, args);
        unlink(conf);
        create_job squat = { "svc.x", -EACCES }, other = { "svc.other", -EACCES },
                   sys = { "sys.clock", -EACCES }, pub = { "svc.pub.feed", 0 },
                   free_name = { "free.b", 0 }, near = { "svcx", 0 }, root = { "sys.root", 0 };
        /* The squatter, before and after the service: refused both times. */
        RUN_AS(UID_B, false, create_all, &squat);
        RUN_AS(UID_B, false, create_all, &other);
        RUN_AS(UID_C, false, create_all, &sys);
        RUN_AS(UID_A, false, service_owns, NULL);
        RUN_AS(UID_B, false, create_all, &squat);
        /* The longest prefix decides: svc.pub. is the group's alone, not
         * 61001's. */
        RUN_AS(UID_B, true, create_all, &pub);
        pub.want = -EACCES;
        RUN_AS(UID_C, false, create_all, &pub);
        RUN_AS(UID_A, false, create_all, &pub);
        /* Names outside every prefix (also "svcx": a prefix is bytes, and
         * "svc." ends with its dot) are free. */
        RUN_AS(UID_C, false, create_all, &free_name);
        RUN_AS(UID_C, false, create_all, &near);
        /* uid 0 may create anywhere (root override). */
        cr_assert_eq(create_all(&root), 0);

        ipcb_client *c;
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "svc.x", &info), 0);
        cr_assert_eq(info.uid, UID_A, "svc.x belongs to uid %u", (unsigned)info.uid);
        cr_assert_eq(ipcb_unlink(c, "svc.x"), 0);
        ipcb_disconnect(c);
}

/* Start the daemon with config text: its exit status (it must not serve). */
static int daemon_with_config(const char *text) {
        char conf[] = "/tmp/ipcbt-bad.XXXXXX", sock[64];
        int cfd = mkstemp(conf), status;
        pid_t pid;

        cr_assert_geq(cfd, 0);
        close(cfd);
        write_file(conf, text);
        snprintf(sock, sizeof(sock), "%s.sock", conf);
        fflush(NULL);
        pid = test_fork();
        if (pid == 0) {
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
                dup2(null, 2);
                execl(IPCBROKERD_PATH, IPCBROKERD_PATH, "--socket", sock, "--config", conf,
                      (char *)NULL);
                _exit(127);
        }
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        unlink(conf);
        unlink(sock);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* A reservation that does not parse must not silently leave the prefix
 * open: the daemon refuses to start, as with any bad key. */
NAMES_TEST(names, reserve_syntax_is_strict) {
        static const char *const bad[] = {
                "reserve = svc.\n",                  /* no owner */
                "reserve = svc. uid:61001 extra\n",  /* three words */
                "reserve = svc. user:61001\n",       /* unknown owner kind */
                "reserve = svc. uid:\n",             /* empty id */
                "reserve = svc. uid:4294967295\n",   /* (uid_t)-1 */
                "reserve = svc. uid:no-such-user-ipcb\n",
                "reserve = svc. group:no-such-group-ipcb\n",
                "reserve = .svc root\n",             /* not a name */
                "reserve = s/vc root\n",
                "reserve = svc. root\nreserve = svc. uid:1\n", /* twice */
                "reserve =\n",
        };
        fixture_begin_bare(&d);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                cr_assert_eq(daemon_with_config(bad[i]), 2, "accepted: %s", bad[i]);
}

/* ---- the fake service manager (fakemgr.h) and this suite's daemons ---- */

#define MAXSTORE 64

static fakemgr m;
static char msock[96], mlog[96];
static bool adopted; /* the first daemon of the test is the fixture's */

static void mgr_setup(void) {
        fixture_begin_bare(&d);
        adopted = false;
        fakemgr_init(&m, "/tmp/ipcbtn.XXXXXX", MAXSTORE);
        cr_assert_eq(chmod(m.dir, 0755), 0); /* clients of other uids */
        snprintf(msock, sizeof(msock), "%s/ipcb.sock", m.dir);
        snprintf(mlog, sizeof(mlog), "%s/log", m.dir);
}

/* Start the daemon with the store's fds in LISTEN_FDS; grace in seconds. */
static void mgr_start(const char *grace) {
        const char *const args[] = { "--restore-grace", grace, "-v", NULL };
        fakemgr_exec x = { .sock = msock, .args = args, .log = mlog };
        pid_t pid = fakemgr_start(&m, &x);

        /* The first daemon gives the idle fd count; the fixture follows the
         * later ones with it. */
        if (!adopted)
                fixture_adopt(&d, pid, msock);
        else
                d.pid = pid;
        adopted = true;
}

static void mgr_stop(void) {
        int status;

        if (m.pid <= 0)
                return;
        status = fakemgr_stop(&m);
        d.pid = 0;
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "daemon exit status 0x%x", status);
        cr_assert(m.stopping, "no STOPPING=1");
}

static void mgr_restart(const char *grace) {
        fakemgr_drain(&m, 100);
        mgr_stop();
        mgr_start(grace);
}

/* The daemon's fds at rest: sd_notify() opens a socket for each message
 * (status, fd store), so take the least of a few looks. */
static int mgr_fds(void) {
        ipcbd x = { .pid = m.pid };
        int least = ipcbd_fd_count(&x);

        for (int i = 0; i < 10; i++) {
                usleep(5000);
                int n = ipcbd_fd_count(&x);
                if (n < least)
                        least = n;
        }
        return least;
}

static bool mgr_wait_fds(int want) {
        ipcbd x = { .pid = m.pid };
        return ipcbd_wait_fds(&x, want, 5000);
}

/* The last stop of a test: the daemon back at the first one's idle count
 * (its clients gone, its objects unlinked). */
static void mgr_end(void) {
        fixture_check_idle(&d);
        mgr_stop();
}

/* What every test holds to its end: the store and the notify socket. */
static void mgr_release(void) {
        fakemgr_close(&m);
}

static void mgr_teardown(void) {
        if (m.pid > 0) {
                kill(m.pid, SIGKILL);
                waitpid(m.pid, NULL, 0);
                m.pid = 0;
                d.pid = 0;
        }
        mgr_release();
        fixture_cleanup(&d);
        unlink(msock);
        unlink(mlog);
        fakemgr_destroy(&m);
}

/* A test against the fake manager; fixture_end (the test process's fds)
 * after the body, which stops the daemon itself. */
#define RESTART_TEST(name) \
        FIXTURE_TEST(restart, name, &d, mgr_release, .init = mgr_setup, .fini = mgr_teardown, \
                     .timeout = 60)

/* ---- 6a: an undo slot goes back only to its holder ---- */

/* Reclaim undo slots 1..4 of "jobs" with a guessed nonce, as a raw client:
 * the number of slots the broker handed over (each is closed again, which
 * makes the broker give back the tokens it holds). */
static int steal_slots(void *arg) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_SEM_OPEN }, rep;
        const char *sock = arg;
        int fd = raw_open(sock), got = 0;

        CHILD_CHECK(fd >= 0, "raw connect");
        for (uint32_t slot = 1; slot <= 4; slot++) {
                int pfd = -1, r;
                req.sem_open.flags = IPCB_WF_UNDO | IPCB_WF_RECLAIM | slot << 16;
                req.sem_open.name = (ipcb_name){ .ptr = "jobs", .len = 4 };
                req.sem_open.nonce = 0x5eed0000u + slot;
                r = raw_call(fd, &req, buf, &rep, &pfd);
                if (r == 0) {
                        ipcb_msg cl = { .hdr.op = IPCB_OP_CLOSE };
                        cl.close.handle = rep.sem_reply.handle;
                        close(pfd);
                        raw_call(fd, &cl, buf, &rep, NULL);
                        got++;
                } else
                        CHILD_CHECK(r == -ESRCH, "reclaim of slot %u: %s", slot, strerror(-r));
        }
        close(fd);
        return got;
}

/* After a restart the broker keeps undo slots for their holders; today any
 * user of the semaphore may reclaim any of them, and a thief that closes
 * the stolen slot makes the broker give its tokens back while the real
 * holder gives them back again: 3 tokens become 5. */
RESTART_TEST(reclaim_of_another_holders_undo_slot) {
        ipcb_sem_options so = IPCB_SEM_OPTIONS_INIT;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ipcb_client *c, *c2;
        ipcb_sem *s, *u;
        int base;

        SKIP_UNLESS_ROOT();
        mgr_start("5");
        cr_assert_eq(ipcb_connect(msock, &c), 0);
        so.mode = 0666;
        so.flags = IPCB_SEM_PERSISTENT;
        so.max = 5;
        cr_assert_eq(ipcb_sem_create(c, "jobs", 3, &so, &s), 0);
        cr_assert_eq(ipcb_sem_open(c, "jobs", IPCB_SEM_UNDO, &u), 0);
        cr_assert_eq(ipcb_sem_acquire(u), 0);
        cr_assert_eq(ipcb_sem_acquire(u), 0);
        cr_assert_eq(ipcb_sem_held(u), 2);
        cr_assert_eq(ipcb_sem_value(s), 1);

        mgr_restart("5");
        base = mgr_fds();
        /* Another uid, and another process of the holder's own uid, both
         * guessing: neither gets the slot. */
        int stolen_b = run_as(UID_B, false, steal_slots, msock);
        int stolen_0 = run_as(0, false, steal_slots, msock);
        cr_assert_eq(ipcb_connect(msock, &c2), 0);
        cr_assert_eq(ipcb_stat(c2, IPCB_KIND_SEM, "jobs", &info), 0);
        unsigned after_thieves = info.sem_value;

        /* The holder takes its slot back and gives its two tokens back once. */
        cr_assert_eq(ipcb_sem_release(u, 2), 0);
        cr_assert_eq(ipcb_stat(c2, IPCB_KIND_SEM, "jobs", &info), 0);
        cr_assert_eq(info.sem_value, 3, "value %u: tokens were duplicated", info.sem_value);
        cr_assert_eq(stolen_b, 0, "another uid took a slot");
        cr_assert_eq(stolen_0, 0, "a same-uid process took a slot");
        cr_assert_eq(after_thieves, 1, "value %u after the thieves", after_thieves);
        cr_assert_eq(ipcb_sem_held(u), 0);
        cr_assert_eq(info.sem_undo_held, 0);
        /* Through the grace period's end nothing changes. */
        usleep(5300 * 1000);
        cr_assert_eq(ipcb_stat(c2, IPCB_KIND_SEM, "jobs", &info), 0);
        cr_assert_eq(info.sem_value, 3);
        cr_assert_eq(ipcb_sem_acquire(u), 0);
        cr_assert_eq(ipcb_sem_held(u), 1);
        cr_assert_eq(ipcb_sem_close(u), 0);
        cr_assert_eq(ipcb_sem_close(s), 0);
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_stat(c2, IPCB_KIND_SEM, "jobs", &info), 0);
        cr_assert_eq(info.sem_value, 3);
        ipcb_disconnect(c);
        ipcb_disconnect(c2);
        cr_assert(mgr_wait_fds(base), "daemon leaked fds");
        cr_assert_eq(ipcb_connect(msock, &c), 0);
        cr_assert_eq(ipcb_sem_unlink(c, "jobs"), 0);
        ipcb_disconnect(c);
        mgr_end();
}

/* ---- 6b: a scribbled epoch ---- */

typedef struct sleeper {
        ipcb_sem *u;
        int r;
} sleeper;

static void *sleep_acquire(void *arg) {
        sleeper *sl = arg;
        sl->r = ipcb_sem_try_acquire(sl->u, 5000);
        return NULL;
}

static void bump_epoch(ipcb_sem_page *pg, bool wake) {
        atomic_fetch_add(&pg->epoch, 1);
        if (wake) {
                atomic_fetch_add(&pg->wake_seq, 1);
                syscall(SYS_futex, &pg->wake_seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
        }
}

/* The epoch is on the page every user may write.  Today a bump makes the
 * undo handle open a second broker handle with a new slot and forget the
 * first, whose slot keeps the tokens it held: they are stranded while the
 * connection lives and given back a second time when it ends. */
NAMES_TEST(epoch, scribbled_epoch_does_not_fork_the_undo_handle) {
        ipcb_sem_options so = IPCB_SEM_OPTIONS_INIT;
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_SEM_OPEN }, rep;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ipcb_client *c, *c2;
        ipcb_sem *u, *p;
        int fd, pfd = -1, base;

        fixture_begin(&d, NULL);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        cr_assert_eq(ipcb_connect(d.sock, &c2), 0);
        so.mode = 0666;
        so.max = 5;
        so.flags = IPCB_SEM_PERSISTENT | IPCB_SEM_UNDO;
        cr_assert_eq(ipcb_sem_create(c, "e", 3, &so, &u), 0);
        cr_assert_eq(ipcb_sem_open(c2, "e", 0, &p), 0);
        cr_assert_eq(ipcb_sem_acquire(u), 0);

        /* The scribbler: a second handle's mapping of the page. */
        fd = raw_open(d.sock);
        cr_assert_geq(fd, 0);
        req.sem_open.name = (ipcb_name){ .ptr = "e", .len = 1 };
        cr_assert_eq(raw_call(fd, &req, buf, &rep, &pfd), 0);
        ipcb_sem_page *pg = mmap(NULL, IPCB_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, pfd, 0);
        cr_assert_neq(pg, MAP_FAILED);
        close(pfd);
        cr_assert_eq(ipcb_stat(c2, IPCB_KIND_SEM, "e", &info), 0);
        unsigned handles = info.handles;
        base = ipcbd_fd_count(&d);

        bump_epoch(pg, false);
        cr_assert_eq(ipcb_sem_release(u, 1), 0);
        cr_assert_eq(ipcb_stat(c2, IPCB_KIND_SEM, "e", &info), 0);
        cr_assert_eq(info.handles, handles, "the undo handle opened another: %u handles",
                     info.handles);
        cr_assert_eq(info.sem_undo_held, 0, "%u tokens stranded in a forgotten slot",
                     info.sem_undo_held);
        cr_assert_eq(info.sem_value, 3);
        cr_assert_eq(ipcbd_fd_count(&d), base);

        /* Bumped (and woken) while the holder sleeps in acquire. */
        for (int i = 0; i < 3; i++)
                cr_assert_eq(ipcb_sem_acquire(p), 0);
        sleeper sl = { .u = u };
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, sleep_acquire, &sl), 0);
        while (atomic_load(&pg->waiters) == 0)
                usleep(1000);
        bump_epoch(pg, true);
        usleep(50 * 1000);
        bump_epoch(pg, true);
        usleep(50 * 1000);
        cr_assert_eq(ipcb_sem_release(p, 1), 0);
        pthread_join(t, NULL);
        cr_assert_eq(sl.r, 0, "acquire: %s", ipcb_strerror(sl.r));
        cr_assert_eq(ipcb_sem_held(u), 1);
        cr_assert_eq(ipcb_stat(c2, IPCB_KIND_SEM, "e", &info), 0);
        cr_assert_eq(info.handles, handles, "%u handles after a bump in acquire", info.handles);
        cr_assert_eq(info.sem_undo_held, 1);
        cr_assert_eq(info.sem_value, 0);
        cr_assert_eq(ipcb_sem_release(p, 2), 0);

        /* The count stays exact through close and disconnect. */
        cr_assert_eq(ipcb_sem_close(u), 0);
        ipcb_disconnect(c); /* its socket and pidfd */
        cr_assert(ipcbd_wait_fds(&d, base - 2, 5000));
        cr_assert_eq(ipcb_stat(c2, IPCB_KIND_SEM, "e", &info), 0);
        cr_assert_eq(info.sem_value, 3, "value %u: a stranded token came back twice",
                     info.sem_value);
        munmap(pg, IPCB_PAGE_SIZE);
        close(fd);
        cr_assert_eq(ipcb_sem_close(p), 0);
        cr_assert_eq(ipcb_sem_unlink(c2, "e"), 0);
        ipcb_disconnect(c2);
}

/* ---- 6c: a lock held across a restart ---- */

typedef struct holder {
        int go[2], done[2]; /* parent → child, child → parent */
        pid_t pid;
} holder;

/* A child that locks "L", says so, then on each byte from the parent makes
 * one round trip to the broker (reconnecting, after a restart) and answers. */
static void holder_start(holder *h, const char *sock) {
        char b;

        cr_assert_eq(pipe2(h->go, O_CLOEXEC), 0);
        cr_assert_eq(pipe2(h->done, O_CLOEXEC), 0);
        h->pid = test_fork();
        if (h->pid == 0) {
                ipcb_client *c;
                ipcb_shm *s;
                if (ipcb_connect(sock, &c) < 0 || ipcb_shm_open(c, "L", IPCB_READ_WRITE, &s) < 0 ||
                    ipcb_shm_lock(s) != 0)
                        _exit(1);
                (void)!write(h->done[1], "l", 1);
                while (read(h->go[0], &b, 1) == 1) {
                        int r = ipcb_sync(c);
                        (void)!write(h->done[1], r == 0 ? "s" : "f", 1);
                }
                _exit(0);
        }
        cr_assert_eq(read(h->done[0], &b, 1), 1);
        cr_assert_eq(b, 'l', "the holder could not lock");
}

static void holder_kill(holder *h) {
        kill(h->pid, SIGKILL);
        waitpid(h->pid, NULL, 0);
        close(h->go[0]);
        close(h->go[1]);
        close(h->done[0]);
        close(h->done[1]);
}

static ipcb_shm *mklockseg(ipcb_client *c) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_shm *s;

        o.mode = 0666;
        o.flags = IPCB_SHM_PERSISTENT;
        cr_assert_eq(ipcb_shm_create(c, "L", 4096, &o, &s), 0);
        return s;
}

/* The holder of a lock is alive at the restart, then dies before it talks
 * to the new broker.  Today nobody ever releases the lock: the next locker
 * waits forever. */
RESTART_TEST(lock_holder_dies_after_restart) {
        ipcb_client *c;
        ipcb_shm *s, *l;
        holder h;

        mgr_start("1");
        cr_assert_eq(ipcb_connect(msock, &c), 0);
        s = mklockseg(c);
        cr_assert_eq(ipcb_shm_close(s), 0);
        ipcb_disconnect(c);
        holder_start(&h, msock);

        mgr_restart("1");
        holder_kill(&h);
        cr_assert_eq(ipcb_connect(msock, &c), 0);
        cr_assert_eq(ipcb_shm_open(c, "L", IPCB_READ_WRITE, &l), 0);
        cr_assert_eq(ipcb_shm_try_lock(l, 0), -EAGAIN, "the lock is held during the grace period");
        int r = ipcb_shm_try_lock(l, 5000);
        cr_assert_eq(r, IPCB_OWNER_DIED, "next locker: %s", r < 0 ? ipcb_strerror(r) : "locked");
        cr_assert(file_contains(mlog, "released as owner-died"));
        cr_assert_eq(ipcb_shm_unlock(l), 0);
        cr_assert_eq(ipcb_shm_close(l), 0);
        cr_assert_eq(ipcb_unlink(c, "L"), 0);
        ipcb_disconnect(c);
        mgr_end();
}

/* The holder reclaims its token after the restart: the grace period's end
 * must leave its lock alone, and its death later must release the lock
 * as owner-died (today the new broker does not know the token). */
RESTART_TEST(lock_reclaimed_then_holder_dies) {
        ipcb_client *c;
        ipcb_shm *s, *l;
        holder h;
        char b;

        mgr_start("1");
        cr_assert_eq(ipcb_connect(msock, &c), 0);
        s = mklockseg(c);
        cr_assert_eq(ipcb_shm_close(s), 0);
        ipcb_disconnect(c);
        holder_start(&h, msock);

        mgr_restart("1");
        cr_assert_eq(write(h.go[1], "g", 1), 1);
        cr_assert_eq(read(h.done[0], &b, 1), 1);
        cr_assert_eq(b, 's', "the holder could not reconnect");
        usleep(1500 * 1000);
        cr_assert(!file_contains(mlog, "released as owner-died"), "a reclaimed lock was released");
        cr_assert_eq(ipcb_connect(msock, &c), 0);
        cr_assert_eq(ipcb_shm_open(c, "L", IPCB_READ_WRITE, &l), 0);
        cr_assert_eq(ipcb_shm_try_lock(l, 0), -EAGAIN, "the live holder's lock was taken");
        holder_kill(&h);
        int r = ipcb_shm_try_lock(l, 5000);
        cr_assert_eq(r, IPCB_OWNER_DIED, "next locker: %s", r < 0 ? ipcb_strerror(r) : "locked");
        cr_assert_eq(ipcb_shm_unlock(l), 0);
        cr_assert_eq(ipcb_shm_close(l), 0);
        cr_assert_eq(ipcb_unlink(c, "L"), 0);
        ipcb_disconnect(c);
        mgr_end();
}

/* A stolen token: another uid that knows the holder's token (it is on the
 * page for all to read) cannot reclaim it without the nonce. */
RESTART_TEST(lock_token_reclaim_needs_the_nonce) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_SHM_OPEN }, rep;
        ipcb_client *c;
        ipcb_shm *s, *l;
        holder h;
        int fd;

        mgr_start("1");
        cr_assert_eq(ipcb_connect(msock, &c), 0);
        s = mklockseg(c);
        cr_assert_eq(ipcb_shm_close(s), 0);
        ipcb_disconnect(c);
        holder_start(&h, msock);
        mgr_restart("1");

        fd = raw_open(msock);
        cr_assert_geq(fd, 0);
        req.shm_open.access = IPCB_WA_READ_WRITE;
        req.shm_open.flags = IPCB_WF_RECLAIM;
        req.shm_open.name = (ipcb_name){ .ptr = "L", .len = 1 };
        for (uint32_t t = 1; t <= 3; t++) {
                req.shm_open.token = t;
                req.shm_open.nonce = 0xbad0000u + t;
                cr_assert_eq(raw_call(fd, &req, buf, &rep, NULL), -ESRCH, "token %u taken", t);
        }
        /* Locking writes: no token for a read-only handle, reclaimed or not. */
        req.shm_open.access = IPCB_WA_READ_ONLY;
        cr_assert_eq(raw_call(fd, &req, buf, &rep, NULL), -EINVAL);
        close(fd);
        holder_kill(&h);
        cr_assert_eq(ipcb_connect(msock, &c), 0);
        cr_assert_eq(ipcb_shm_open(c, "L", IPCB_READ_WRITE, &l), 0);
        cr_assert_eq(ipcb_shm_try_lock(l, 5000), IPCB_OWNER_DIED);
        cr_assert_eq(ipcb_shm_unlock(l), 0);
        cr_assert_eq(ipcb_shm_close(l), 0);
        cr_assert_eq(ipcb_unlink(c, "L"), 0);
        ipcb_disconnect(c);
        mgr_end();
}

/* A raw read-write handle on "L" and its lock token: *ret_token and
 * *ret_nonce from SHM_LOCK_PAGE. */
static void raw_token(int fd, uint32_t *ret_token, uint64_t *ret_nonce) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_SHM_OPEN }, rep;

        req.shm_open.access = IPCB_WA_READ_WRITE;
        req.shm_open.name = (ipcb_name){ .ptr = "L", .len = 1 };
        cr_assert_eq(raw_call(fd, &req, buf, &rep, NULL), 0);
        req = (ipcb_msg){ .hdr.op = IPCB_OP_SHM_LOCK_PAGE };
        req.shm_lock_page.handle = rep.shm_reply.handle;
        cr_assert_eq(raw_call(fd, &req, buf, &rep, NULL), 0);
        *ret_token = rep.lock_reply.token;
        *ret_nonce = rep.lock_reply.nonce;
        cr_assert_neq(*ret_token, 0);
}

/* SHM_OPEN with RECLAIM of token, nonce: the status. */
static int raw_reclaim(int fd, uint32_t token, uint64_t nonce) {
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg req = { .hdr.op = IPCB_OP_SHM_OPEN }, rep;

        req.shm_open.access = IPCB_WA_READ_WRITE;
        req.shm_open.flags = IPCB_WF_RECLAIM;
        req.shm_open.name = (ipcb_name){ .ptr = "L", .len = 1 };
        req.shm_open.token = token;
        req.shm_open.nonce = nonce;
        return raw_call(fd, &req, buf, &rep, NULL);
}

/* A token that a live handle holds cannot be taken a second time: with two
 * handles on one token, the one that goes releases the lock as owner-died
 * under the other, which still holds it (its unlock then fails).  Before,
 * a broker that had not restarted took a RECLAIM of a live token from any
 * connection of the uid that showed the nonce, and one that had restarted
 * took the same token back twice (fails so). */
RESTART_TEST(lock_token_reclaimed_once) {
        ipcb_client *c;
        ipcb_shm *s;
        uint32_t token, t2;
        uint64_t nonce, n2;
        int fd, other;

        mgr_start("1");
        cr_assert_eq(ipcb_connect(msock, &c), 0);
        s = mklockseg(c);
        fd = raw_open(msock);
        other = raw_open(msock);
        cr_assert_geq(fd, 0);
        cr_assert_geq(other, 0);
        raw_token(fd, &token, &nonce);
        /* no restart: nothing to take back */
        cr_assert_eq(raw_reclaim(other, token, nonce), -ESRCH, "a live token reclaimed");
        raw_token(other, &t2, &n2);
        cr_assert_neq(t2, token);
        close(other);
        cr_assert_eq(ipcb_shm_close(s), 0);
        ipcb_disconnect(c);

        mgr_restart("5");
        close(fd); /* the old broker's connection */
        fd = raw_open(msock);
        other = raw_open(msock);
        cr_assert_geq(fd, 0);
        cr_assert_geq(other, 0);
        cr_assert_eq(raw_reclaim(fd, token, nonce), 0, "the token's holder could not reclaim it");
        cr_assert_eq(raw_reclaim(other, token, nonce), -ESRCH, "a token reclaimed twice");
        cr_assert_eq(raw_reclaim(fd, token, nonce), -ESRCH, "a token reclaimed twice on one connection");
        /* a token this broker gave is no old broker's */
        raw_token(other, &t2, &n2);
        cr_assert_eq(raw_reclaim(fd, t2, n2), -ESRCH, "a live token of this broker reclaimed");
        close(fd);
        close(other);
        cr_assert_eq(ipcb_connect(msock, &c), 0);
        cr_assert_eq(ipcb_unlink(c, "L"), 0);
        ipcb_disconnect(c);
        mgr_end();
}

/* ---- 6d: a segment registered read-only ---- */

/* A memfd published through an O_RDONLY description is stored as that
 * description; today the next broker drops it ("not open read-write"). */
RESTART_TEST(readonly_registered_segment_survives) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_handle_info info;
        ipcb_client *c;
        ipcb_shm *s, *r;
        char path[64];
        int mfd, ro;

        mgr_start("1");
        mfd = memfd_create("pub", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        cr_assert_geq(mfd, 0);
        cr_assert_eq(ftruncate(mfd, 8192), 0);
        cr_assert_eq(pwrite(mfd, "published", 9, 100), 9);
        cr_assert_eq(fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
        ro = open(path, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(ro, 0);
        cr_assert_eq(ipcb_connect(msock, &c), 0);
        o.mode = 0644;
        o.flags = IPCB_SHM_PERSISTENT;
        cr_assert_eq(ipcb_shm_register(c, "pub.ro", ro, &o, &s), 0);
        cr_assert_eq(ipcb_shm_access(s), IPCB_READ_ONLY);
        cr_assert_eq(ipcb_shm_info(s, &info), 0);
        cr_assert_eq(info.mode, 0644u);
        cr_assert_eq(ipcb_shm_close(s), 0);
        close(ro);
        ipcb_disconnect(c);

        mgr_restart("1");
        int base = mgr_fds();
        cr_assert(!file_contains(mlog, "not open read-write"), "the read-only segment was dropped");
        cr_assert_eq(ipcb_connect(msock, &c), 0);
        cr_assert_eq(ipcb_shm_open(c, "pub.ro", IPCB_READ_ONLY, &r), 0, "not restored");
        cr_assert_eq(memcmp((char *)ipcb_shm_data(r) + 100, "published", 9), 0);
        cr_assert_eq(ipcb_shm_size(r), 8192u);
        /* Still read-only for everyone. */
        cr_assert_eq(ipcb_shm_open(c, "pub.ro", IPCB_READ_WRITE, &s), -EROFS);
        cr_assert_eq(ipcb_shm_close(r), 0);
        /* And once more across a second restart. */
        ipcb_disconnect(c);
        mgr_restart("1");
        cr_assert_eq(mgr_fds(), base, "%d fds after the second restart, %d after the first",
                     mgr_fds(), base);
        cr_assert_eq(ipcb_connect(msock, &c), 0);
        cr_assert_eq(ipcb_shm_open(c, "pub.ro", IPCB_READ_ONLY, &r), 0, "lost at the second restart");
        cr_assert_eq(ipcb_shm_close(r), 0);
        cr_assert_eq(ipcb_unlink(c, "pub.ro"), 0);
        ipcb_disconnect(c);
        close(mfd);
        mgr_end();
}
